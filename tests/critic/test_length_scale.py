"""Grids of very small or very large cells: the iteration runs on cells of unit size and scales
back (``otgrid.critic.solve._length_scale``). Before, 2D boxes of side 1e-30 or 1e30 ran to
``max_iter`` with a lower bound of 0: the float32 Poisson step's inverse eigenvalues (which
scale with ``dx^2``) overflowed or vanished in float32."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from references import kr_lp_2d_cityblock_highs, socp_2d_euclidean_cvxpy

import otgrid as og
from otgrid._units import UNITS_RANGE as LENGTH_RANGE
from otgrid.critic.solve import _length_scale

SIDES = [2.0 ** -100, 1e-30, 1e30, 1e120]


def _masses(shape=(8, 10), seed=3):
    rng = np.random.default_rng(seed)
    mu, nu = rng.random(shape), rng.random(shape)
    return mu, nu * (mu.sum() / nu.sum())


def _solve(mu, nu, grid, **kw):
    """A solve that must not over- or underflow anywhere (RuntimeWarning raised)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        return og.solve_critic(mu, nu, grid, backend="numba", **kw)


def test_the_length_scale_is_one_on_ordinary_grids_and_a_power_of_two_beyond():
    assert _length_scale((1.0 / 256, 1.0 / 256)) == 1.0
    assert _length_scale((2.0 ** LENGTH_RANGE,)) == 1.0
    assert _length_scale((2.0 ** -LENGTH_RANGE, 1e-9)) == 1.0
    for dx in ((1e30, 1e29), (1e-30,), (3e-31, 1e-31), (2.0 ** 100,)):
        s = _length_scale(dx)
        assert np.frexp(s)[0] == 0.5                      # a power of two: exact rescaling
        assert 0.5 <= max(dx) / s < 1.0


@pytest.mark.parametrize("side", SIDES)
def test_euclidean_bounds_on_tiny_and_huge_boxes_contain_clarabel(side):
    mu, nu = _masses()
    unit = og.Grid([(0.0, 1.0), (0.0, 1.25)], mu.shape)
    ref = socp_2d_euclidean_cvxpy(mu, nu, unit.dx).value * side   # W scales with lengths
    res = _solve(mu, nu, og.Grid([(0.0, side), (0.0, 1.25 * side)], mu.shape), tol=1e-6)
    assert res.converged, res.message
    assert res.lower <= ref * (1 + 1e-7) and ref * (1 - 1e-7) <= res.upper
    assert res.upper - res.lower <= 1e-6 * res.upper
    assert np.all(np.isfinite(res.critic)) and np.all(np.isfinite(res.flow))


@pytest.mark.parametrize("side", [1e-30, 1e30])
def test_cityblock_bounds_on_tiny_and_huge_boxes_contain_highs(side):
    mu, nu = _masses(seed=4)
    unit = og.Grid([(0.0, 1.0), (0.0, 1.25)], mu.shape)
    ref = kr_lp_2d_cityblock_highs(mu, nu, unit.dx)[0] * side
    res = _solve(mu, nu, og.Grid([(0.0, side), (0.0, 1.25 * side)], mu.shape), tol=1e-7,
                 norm="cityblock")
    assert res.converged, res.message
    assert res.lower <= ref * (1 + 1e-9) and ref * (1 - 1e-9) <= res.upper


@pytest.mark.parametrize("side", [1e-30, 1e30])
def test_the_critic_and_flow_come_back_in_the_grids_units(side):
    mu, nu = _masses()
    grid = og.Grid([(0.0, side), (0.0, 1.25 * side)], mu.shape)
    res = _solve(mu, nu, grid, tol=1e-6)
    # the critic is 1-Lipschitz in the grid's lengths, and <mu - nu, critic> is W
    gx = np.diff(res.critic, axis=0)[:, :-1] / grid.dx[0]
    gy = np.diff(res.critic, axis=1)[:-1, :] / grid.dx[1]
    assert np.max(np.hypot(gx, gy)) <= 1.0 + 1e-9
    assert np.sum((mu - nu) * res.critic) == pytest.approx(res.lower, rel=1e-6)
    # a warm start from them (and the step the solve ended with) is already near the optimum
    again = _solve(mu, nu, grid, tol=1e-6, warm_start=res, step=res.step)
    assert again.converged and again.iterations <= 50
    assert again.lower <= res.upper and res.lower <= again.upper


@pytest.mark.parametrize("side", [1e-30, 1e30])
def test_float32_iterates_on_tiny_and_huge_boxes(side):
    mu, nu = _masses()
    grid = og.Grid([(0.0, side), (0.0, 1.25 * side)], mu.shape)
    ref = _solve(mu, nu, grid, tol=1e-6)
    res = _solve(mu, nu, grid, tol=1e-5, dtype=np.float32)
    assert res.converged, res.message
    assert res.lower <= ref.upper and ref.lower <= res.upper


def test_float32_iterates_refuse_cells_float32_cannot_hold():
    # a fuzzed grid whose sides differ by about 1e39 overflowed float32's 1 / dx^2
    mu, nu = _masses((8, 8))
    grid = og.Grid([(3.5, 1e30), (0.0, 1e-9)], (8, 8))
    with pytest.raises(ValueError, match="float32 cannot hold this grid's cells"):
        og.solve_critic(mu, nu, grid, dtype=np.float32)
    # float64: valid bounds, loose at the rounding floor (said by a ConvergenceWarning)
    with pytest.warns(og.ConvergenceWarning, match="rounding floor"):
        res = _solve(mu, nu, grid, tol=1e-2, max_iter=200)
    assert res.status == "floor"
    assert 0.0 <= res.lower <= res.upper and np.isfinite(res.upper)


def test_float64_iterates_on_cells_float32_cannot_hold_take_a_float64_step():
    # a fuzzed grid (sides 1.25e-31 and 2e8): the float32 Poisson step's tridiagonal factors
    # overflowed float32; the step now runs in float64 there, with no over- or underflow
    mu, nu = _masses((8, 5), seed=6)
    grid = og.Grid([(0.0, 1e-30), (0.0, 1e9)], (8, 5))
    with pytest.warns(og.ConvergenceWarning, match="rounding floor"):
        res = _solve(mu, nu, grid, tol=1e-6, max_iter=500)
    assert 0.0 <= res.lower <= res.upper and np.isfinite(res.upper)
    # W is at least the transport along the long axis alone (the 1D closed form of the
    # masses summed over the short axis, which any flow must at least carry)
    along = np.cumsum(mu.sum(axis=0) - nu.sum(axis=0))[:-1]
    assert res.upper >= np.sum(np.abs(along)) * grid.dx[1] * (1 - 1e-9)
