"""Fuzzing the public Python API (see ``fuzz/targets_api.py``)."""

from __future__ import annotations

from fuzz.harness import check, fuzz_settings, guarded
from fuzz.targets_api import CLOUD, GRID, SOLVE
from hypothesis import given


@fuzz_settings(SOLVE.weight)
@given(SOLVE.strategy)
def test_solve_critic_returns_certified_bounds_or_a_clean_error(example):
    check(guarded(lambda: SOLVE.run(example), SOLVE.timeout))


@fuzz_settings(GRID.weight)
@given(GRID.strategy)
def test_grid_and_discretize_accept_or_refuse_cleanly(example):
    check(guarded(lambda: GRID.run(example), GRID.timeout))


@fuzz_settings(CLOUD.weight)
@given(CLOUD.strategy)
def test_point_cloud_solvers_return_finite_values_or_a_clean_error(example):
    check(guarded(lambda: CLOUD.run(example), CLOUD.timeout))
