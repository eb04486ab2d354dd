"""Fuzzing the distribution grammar and the ``.npy`` loader (see ``fuzz/targets_text.py``)."""

from __future__ import annotations

from fuzz.harness import check, fuzz_settings, guarded
from fuzz.targets_text import NPY, SPEC
from hypothesis import given


@fuzz_settings(SPEC.weight)
@given(SPEC.strategy)
def test_spec_grammar_accepts_or_refuses_in_one_line(example):
    check(guarded(lambda: SPEC.run(example), SPEC.timeout))


@fuzz_settings(NPY.weight)
@given(NPY.strategy)
def test_npy_loader_accepts_or_refuses_in_one_line(example):
    check(guarded(lambda: NPY.run(example), NPY.timeout))
