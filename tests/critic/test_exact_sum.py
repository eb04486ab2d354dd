"""The exact sums of the rigorous certificate are ``math.fsum``, bit for bit.

``otgrid.kernels.certify_numba`` sums exactly in a superaccumulator and rounds with CPython's
final step of ``math.fsum``; ``certify._bucket_sum`` (NumPy, no compilation, for mid sizes)
counts the halves of the mantissas per exponent and rounds one Python integer. The
certificate's bounds rest on their results being exactly rounded, so both are compared with
``math.fsum`` itself (the independent reference) on data built to defeat naive and
compensated summation: cancelling pairs over 40 orders of magnitude, half-way cases across
partials, subnormals, values near overflow.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import otgrid as og
from otgrid.critic import certify as certify_module
from otgrid.critic.certify import _exact_sum, certify
from otgrid.kernels import certify_numba as k


def _compiled(*parts: np.ndarray) -> float:
    acc = np.zeros((k.LANES, k.CHUNKS), dtype=np.int64)
    for x in parts:
        assert k.exact_add(np.ascontiguousarray(x, dtype=np.float64), acc)
    return float(k.exact_result(acc, np.empty(k.CHUNKS)))


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


@pytest.mark.parametrize("kind", [1, 2, 5])
def test_long_compiled_sums_are_math_fsum_bit_for_bit(kind):
    # the accumulator's rows take consecutive values in turn: every remainder of the length
    # by the rows, and products (two deposits each) of odd and even lengths
    rng = np.random.default_rng(40 + kind)
    for extra in range(k.LANES):
        a = _adversarial(rng, kind, 50_000 + extra)
        assert _compiled(a) == math.fsum(a.tolist())
        b = np.clip(a, -1e150, 1e150)
        c = rng.standard_normal(b.size)
        acc = np.zeros((k.LANES, k.CHUNKS), dtype=np.int64)
        assert k.exact_add_products(b, c, acc)
        want = math.fsum(np.concatenate(certify_module._two_prod(b, c)).tolist())
        assert float(k.exact_result(acc, np.empty(k.CHUNKS))) == want


@pytest.mark.parametrize("kind", range(6))
def test_bucket_sum_is_math_fsum_bit_for_bit(kind, monkeypatch):
    rng = np.random.default_rng(100 + kind)
    for chunk in (1 << 25, 7):  # the default, and sums carried over many chunks
        monkeypatch.setattr(certify_module, "_BUCKET_CHUNK", chunk)
        for _ in range(150):
            a = _adversarial(rng, kind, int(rng.integers(0, 2000)))
            want = math.fsum(a.tolist())
            got = certify_module._bucket_sum(a)
            assert got == want and math.copysign(1.0, got) == math.copysign(1.0, want), a


def test_bucket_sum_in_every_binade_with_carries():
    rng = np.random.default_rng(12)
    exps = np.arange(-1070, 1000, 60)
    a = np.ldexp(1.0 + rng.random(exps.size), exps)
    x = np.concatenate([a, -a[:10]])
    assert certify_module._bucket_sum(x) == math.fsum(x.tolist())
    b = np.ldexp(1.0, np.arange(-1074, 1000, 7))
    for x in (b, -b, np.concatenate([b, -b[::3]]), np.concatenate([-b, b[1::5]]),
              np.concatenate([b * (2 - 2.0 ** -52), -b[::2]])):
        assert certify_module._bucket_sum(x) == math.fsum(x.tolist())


def test_mid_sized_sums_take_the_bucket_path_and_fail_as_math_fsum(monkeypatch):
    rng = np.random.default_rng(13)
    parts = [rng.standard_normal(3000) * 1e10, rng.standard_normal((30, 40)) * 1e-6]
    calls, original = [], certify_module._bucket_sum
    monkeypatch.setattr(certify_module, "_bucket_sum", lambda x: calls.append(1) or original(x))
    want = math.fsum(np.concatenate([np.ravel(p) for p in parts]).tolist())
    assert certify_module.BUCKET_SUM_FROM <= 4200 < certify_module.COMPILED_SUM_FROM
    assert _exact_sum(*parts) == want and calls
    monkeypatch.setattr(certify_module, "BUCKET_SUM_FROM", 0)
    assert math.isnan(_exact_sum(np.array([1.0, np.nan, 2.0])))
    assert _exact_sum(np.array([1.0, np.inf, 2.0])) == math.inf
    with pytest.raises(OverflowError):
        _exact_sum(np.array([1.7e308, 1.7e308, -1.0]))
    assert _exact_sum(np.array([1e308, 1e308, -1e308])) == 1e308  # math.fsum raises here


def test_large_sums_take_the_compiled_path_with_the_same_result(monkeypatch):
    rng = np.random.default_rng(7)
    parts = [rng.standard_normal(1000) * 1e10, rng.standard_normal((30, 40)) * 1e-6]
    want = math.fsum(np.concatenate([np.ravel(p) for p in parts]).tolist())
    calls, original = [], k.exact_result
    monkeypatch.setattr(k, "exact_result", lambda a, p: calls.append(1) or original(a, p))
    monkeypatch.setattr(certify_module, "COMPILED_SUM_FROM", 10)
    assert _exact_sum(*parts) == want and calls


def test_non_finite_data_and_overflow_fail_as_in_math_fsum(monkeypatch):
    monkeypatch.setattr(certify_module, "COMPILED_SUM_FROM", 0)
    assert math.isnan(_exact_sum(np.array([1.0, np.nan, 2.0])))
    assert _exact_sum(np.array([1.0, np.inf, 2.0])) == math.inf
    # math.fsum's partials overflow on the way to a representable sum; the accumulator does
    # not, and gives that sum
    data = np.array([1e308, 1e308, -1e308])
    with pytest.raises(OverflowError):
        math.fsum(data.tolist())
    assert _exact_sum(data) == 1e308


def test_certified_bounds_are_identical_on_every_path(monkeypatch):
    grid = og.Grid([(-6.0, 6.0), (-6.0, 6.0)], 24)
    mu = grid.discretize(og.Normal([0.5, 0.0], 0.7))
    nu = grid.discretize(og.Normal([-0.5, 0.3], 1.0))
    res = og.solve_critic(mu, nu, grid, tol=1e-5, backend="numpy")
    nu2 = nu * (1 + 1e-9)   # unequal totals: the ratio's TwoProduct path too
    args = (mu, nu2, float(np.sum(mu) / np.sum(nu2)), res.critic, res.flow, grid.dx,
            "euclidean")
    monkeypatch.setattr(certify_module, "COMPILED_SUM_FROM", 1 << 60)
    monkeypatch.setattr(certify_module, "BUCKET_SUM_FROM", 1 << 60)
    plain = certify(*args)
    monkeypatch.setattr(certify_module, "BUCKET_SUM_FROM", 0)
    buckets = certify(*args)
    monkeypatch.setattr(certify_module, "COMPILED_SUM_FROM", 0)
    compiled = certify(*args)
    for other in (buckets, compiled):
        assert (plain.lower, plain.upper, plain.residual) == (
            other.lower, other.upper, other.residual)
    assert plain.lower < plain.upper and abs(plain.lower - res.lower) <= 1e-6 * res.lower


def test_error_terms_of_products_and_every_binade():
    # the certificate's <c, g>: TwoProduct parts of values 10^-100 apart (math.fsum's own
    # algorithm keeps dozens of partials alive on such data; the accumulator has a fixed size)
    rng = np.random.default_rng(11)
    c = rng.standard_normal(200_000) * 10.0 ** rng.integers(-8, 0, 200_000)
    g = rng.standard_normal(200_000)
    parts = [*certify_module._two_prod(c, g), *certify_module._two_prod(c * 1e-17, g)]
    want = math.fsum(np.concatenate(parts).tolist())
    assert _compiled(*parts) == want
    # a value in every 60th binade from the subnormals to 2^1000, then some taken away
    exps = np.arange(-1070, 1000, 60)
    a = np.ldexp(1.0 + rng.random(exps.size), exps)
    rng.shuffle(a)
    assert _compiled(a, -a[:10]) == math.fsum([*a.tolist(), *(-a[:10]).tolist()])
    # sums of opposite signs straddling every chunk boundary: carries and borrows
    b = np.ldexp(1.0, np.arange(-1074, 1000, 7))
    for x in (b, -b, np.concatenate([b, -b[::3]]), np.concatenate([-b, b[1::5]])):
        assert _compiled(x) == math.fsum(x.tolist())


def test_sums_beyond_float64_fall_back_to_math_fsum(monkeypatch):
    # an exact sum above the largest float64 is not finite from the accumulator: math.fsum
    # decides (it raises), as it does for the NumPy path
    big = np.array([1.7e308, 1.7e308, -1.0])
    acc = np.zeros((k.LANES, k.CHUNKS), dtype=np.int64)
    assert k.exact_add(big, acc) and not math.isfinite(k.exact_result(acc, np.empty(k.CHUNKS)))
    monkeypatch.setattr(certify_module, "COMPILED_SUM_FROM", 0)
    with pytest.raises(OverflowError):
        _exact_sum(big)
    assert _exact_sum(np.array([1.7e308, 1.7e308, -1.7e308])) == 1.7e308


@pytest.mark.parametrize("kind", range(4))
def test_compiled_exact_dot_is_math_fsum_of_the_two_products(kind):
    # exact_add_products forms the TwoProducts inside the compiled sum: the exactly rounded sum
    # of the same floats as math.fsum of certify's _two_prod arrays, whatever their order
    rng = np.random.default_rng(20 + kind)
    for _ in range(200):
        m = int(rng.integers(0, 60))
        a = _adversarial(rng, kind, m)
        b = rng.standard_normal(a.size) * 10.0 ** rng.integers(-5, 5, a.size)
        if kind == 3:
            b = np.abs(b)
        a = np.clip(a, -1e150, 1e150)  # no product over- or underflows beyond what it can
        parts = [*certify_module._two_prod(a, b), *certify_module._two_prod(b * 1e-17, a)]
        want = math.fsum(np.concatenate(parts).tolist())
        acc = np.zeros((k.LANES, k.CHUNKS), dtype=np.int64)
        assert k.exact_add_products(a, b, acc) and k.exact_add_products(b * 1e-17, a, acc)
        got = float(k.exact_result(acc, np.empty(k.CHUNKS)))
        assert got == want and math.copysign(1.0, got) == math.copysign(1.0, want)


def test_exact_dot_falls_back_as_math_fsum_on_non_finite_data(monkeypatch):
    # non-finite products: the compiled sum stops and math.fsum of the TwoProducts decides
    # (an infinite product's error term is NaN, so the sum is NaN, as it always was)
    monkeypatch.setattr(certify_module, "COMPILED_SUM_FROM", 0)
    a = np.array([1.0, 2.0, 3.0])
    for b in ([1.0, np.nan, 1.0], [1.0, np.inf, 1.0], [1e308, 1e308, 1.0]):
        b = np.array(b)
        with np.errstate(all="ignore"):  # the TwoProducts of inf and nan
            plain = math.fsum(np.concatenate(certify_module._two_prod(a, b)).tolist())
            assert math.isnan(plain) and math.isnan(certify_module._exact_dot((a, b)))
    assert certify_module._exact_dot((a, np.array([0.5, 0.25, -1.0]))) == -2.0


@pytest.mark.parametrize("shape", [(37, 53), (1, 9), (9, 1), (300,), (1,)])
@pytest.mark.parametrize("ratio", [1.0, 1.0 + 3e-10, 0.7])
@pytest.mark.parametrize("dx", [(0.25, 0.5), (0.1, 0.3), (1 / 3, 0.125)])
def test_compiled_residual_terms_are_numpys_bit_for_bit(shape, ratio, dx):
    # the certificate's per-cell double-double residual terms: one compiled pass, the same
    # operations per cell as the NumPy passes (signs of zeros included)
    rng = np.random.default_rng(hash((shape, ratio, dx)) % 2**32)
    dx = dx[: len(shape)]
    mu = rng.random(shape) * rng.choice([1e-30, 1e-3, 1.0, 1e3], shape)
    nu = rng.random(shape) * rng.choice([0.0, 1.0], shape)
    y = rng.standard_normal((len(shape), *shape)) * rng.choice([0.0, 1e-9, 1.0, 1e5],
                                                               (len(shape), *shape))
    want = certify_module._residual_terms(mu, nu, ratio, y.copy(), dx)
    got = certify_module._residual_terms_compiled(mu, nu, ratio, y.copy(), dx)
    for w, g in zip(want, got, strict=True):
        assert g.shape == w.shape and np.array_equal(g.view(np.int64), w.view(np.int64))


def test_solves_compile_the_certificate_kernels_of_large_grids_before_the_clock(monkeypatch):
    # from COMPILED_SUM_FROM cells the final certificate runs compiled kernels: the solve's
    # warm-up compiles (or loads) them with its own, before its clock starts
    from otgrid.critic import solve as solve_module

    seen = []

    def recording(cells, ndim):
        seen.append((cells, ndim))
        certify_module.warm_up(cells, ndim)

    monkeypatch.setattr(solve_module, "warm_up_certificate", recording)
    monkeypatch.setattr(certify_module, "COMPILED_SUM_FROM", 12 * 10)
    grid = og.Grid([(-6.0, 6.0), (-7.0, 7.0)], (12, 10))
    mu = grid.discretize(og.Normal([0.5, 0.0], 0.7))
    nu = grid.discretize(og.Normal([-0.5, 0.3], 1.0))
    res = og.solve_critic(mu, nu, grid, tol=1e-5, backend="numba")
    assert seen == [(120, 2)] and res.converged
    for d in (k.exact_add, k.exact_add_products, k.exact_result, k.residual_terms_2d):
        assert d.signatures
    monkeypatch.setattr(certify_module, "COMPILED_SUM_FROM", 1 << 60)
    plain = og.solve_critic(mu, nu, grid, tol=1e-5, backend="numba")
    assert (plain.lower, plain.upper) == (res.lower, res.upper)


def test_solves_below_the_threshold_run_no_compiled_sum(monkeypatch):
    # what decides is the largest part of a sum (at most a flow's ndim x cells entries), as in
    # the warm-up: counting all parts, the four TwoProduct parts of <c, g> of a 256^2 grid
    # reached 2^18 and compiled the sums inside the certificate, unannounced (1.4 s)
    grid = og.Grid([(-6.0, 6.0), (-7.0, 7.0)], (12, 10))
    mu = grid.discretize(og.Normal([0.5, 0.0], 0.7))
    nu = grid.discretize(og.Normal([-0.5, 0.3], 1.0))
    calls = []
    original = certify_module._compiled_sum
    monkeypatch.setattr(certify_module, "_compiled_sum",
                        lambda *a: calls.append(1) or original(*a))
    monkeypatch.setattr(certify_module, "COMPILED_SUM_FROM", 2 * 120 + 1)
    monkeypatch.setattr(certify_module, "BUCKET_SUM_FROM", 1)
    below = og.solve_critic(mu, nu, grid, tol=1e-5, backend="numba")
    assert below.converged and not calls
    monkeypatch.setattr(certify_module, "COMPILED_SUM_FROM", 2 * 120)  # the flow's parts reach it
    at = og.solve_critic(mu, nu, grid, tol=1e-5, backend="numba")
    assert calls and (at.lower, at.upper) == (below.lower, below.upper)
