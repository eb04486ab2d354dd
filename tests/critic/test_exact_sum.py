"""The compiled exact sum of the rigorous certificate is ``math.fsum``, bit for bit.

``otgrid.kernels.exact_sum_numba`` ports CPython's ``math.fsum``; the certificate's bounds rest on
its results being exactly rounded, so it is compared with ``math.fsum`` itself (the independent
reference) on data built to defeat naive and compensated summation: cancelling pairs over 40
orders of magnitude, half-way cases across partials, subnormals, values near overflow.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import otgrid as og
from otgrid.critic import certify as certify_module
from otgrid.critic.certify import _exact_sum, certify
from otgrid.kernels import exact_sum_numba as k


def _compiled(*parts: np.ndarray) -> float:
    partials, n = np.zeros(k.PARTIALS), 0
    for x in parts:
        n = k.fsum_add(np.ascontiguousarray(x, dtype=np.float64), partials, n)
        assert n >= 0
    return float(k.fsum_result(partials, n))


def _adversarial(rng: np.random.Generator, kind: int, m: int) -> np.ndarray:
    if kind == 0:
        return rng.standard_normal(m)
    if kind == 1:       # random magnitudes over 600 decades
        return rng.standard_normal(m) * 10.0 ** rng.integers(-300, 300, m)
    if kind == 2:       # cancelling pairs: the sum is the few leftovers
        b = rng.standard_normal(m) * 10.0 ** rng.integers(-20, 20, m)
        a = np.concatenate([b, -b, [1e-16, 1.0, 1e16][: m % 4]])
        rng.shuffle(a)
        return a
    if kind == 3:       # half-way cases of the final rounding (math.fsum's own example first)
        pool = [1.0, -1.0, 2.0 ** -53, -(2.0 ** -53), 2.0 ** 53, 2.0 ** -1074]
        return np.array([1e-16, 1.0, 1e16, *rng.choice(pool, m)])
    if kind == 4:       # exact dyadic integers times powers of two
        return (rng.integers(-5, 5, m) * 2.0 ** rng.integers(-60, 60, m)).astype(float)
    return np.ldexp(rng.standard_normal(m), rng.integers(-1074, 1000, m))   # subnormal to huge


@pytest.mark.parametrize("kind", range(6))
def test_compiled_sum_is_math_fsum_bit_for_bit(kind):
    rng = np.random.default_rng(kind)
    for _ in range(300):
        a = _adversarial(rng, kind, int(rng.integers(0, 80)))
        want = math.fsum(a.tolist())
        got = _compiled(a)
        assert got == want and math.copysign(1.0, got) == math.copysign(1.0, want), a
        # split into parts: the partials carry over between arrays
        cut = int(rng.integers(0, a.size + 1))
        assert _compiled(a[:cut], a[cut:]) == want


def test_large_sums_take_the_compiled_path_with_the_same_result(monkeypatch):
    rng = np.random.default_rng(7)
    parts = [rng.standard_normal(1000) * 1e10, rng.standard_normal((30, 40)) * 1e-6]
    want = math.fsum(np.concatenate([np.ravel(p) for p in parts]).tolist())
    calls, original = [], k.fsum_result
    monkeypatch.setattr(k, "fsum_result", lambda p, n: calls.append(n) or original(p, n))
    monkeypatch.setattr(certify_module, "COMPILED_FSUM_ABOVE", 10)
    assert _exact_sum(*parts) == want and calls


def test_non_finite_data_and_overflow_fail_as_in_math_fsum(monkeypatch):
    monkeypatch.setattr(certify_module, "COMPILED_FSUM_ABOVE", 0)
    assert math.isnan(_exact_sum(np.array([1.0, np.nan, 2.0])))
    assert _exact_sum(np.array([1.0, np.inf, 2.0])) == math.inf
    with pytest.raises(OverflowError):
        _exact_sum(np.array([1e308, 1e308, -1e308]))


def test_certified_bounds_are_identical_on_either_path(monkeypatch):
    grid = og.Grid([(-6.0, 6.0), (-6.0, 6.0)], 24)
    mu = grid.discretize(og.Normal([0.5, 0.0], 0.7))
    nu = grid.discretize(og.Normal([-0.5, 0.3], 1.0))
    res = og.solve_critic(mu, nu, grid, tol=1e-5, backend="numpy")
    nu2 = nu * (1 + 1e-9)   # unequal totals: the ratio's TwoProduct path too
    args = (mu, nu2, float(np.sum(mu) / np.sum(nu2)), res.critic, res.flow, grid.dx,
            "euclidean")
    monkeypatch.setattr(certify_module, "COMPILED_FSUM_ABOVE", 1 << 60)
    plain = certify(*args)
    monkeypatch.setattr(certify_module, "COMPILED_FSUM_ABOVE", 0)
    compiled = certify(*args)
    assert (plain.lower, plain.upper, plain.residual) == (
        compiled.lower, compiled.upper, compiled.residual)
    assert plain.lower < plain.upper and abs(plain.lower - res.lower) <= 1e-6 * res.lower


def test_error_terms_of_products_many_partials_mid_sum():
    # the certificate's <c, g>: TwoProduct parts of values 10^-100 apart. Mid-sum, such data keep
    # dozens of partials alive (71 on a 1024^2 certificate: more than an early capacity of 64)
    rng = np.random.default_rng(11)
    c = rng.standard_normal(200_000) * 10.0 ** rng.integers(-8, 0, 200_000)
    g = rng.standard_normal(200_000)
    parts = [*certify_module._two_prod(c, g), *certify_module._two_prod(c * 1e-17, g)]
    want = math.fsum(np.concatenate(parts).tolist())
    assert _compiled(*parts) == want
    # distinct bit ranges 60 apart never combine: one partial each
    exps = np.arange(-1070, 1000, 60)
    a = np.ldexp(1.0 + rng.random(exps.size), exps)
    partials = np.zeros(k.PARTIALS)
    assert k.fsum_add(a, partials, 0) == a.size
    rng.shuffle(a)
    assert _compiled(a, -a[:10]) == math.fsum([*a.tolist(), *(-a[:10]).tolist()])
