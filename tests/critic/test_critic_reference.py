"""``og.solve_critic`` against independent references (closed form, HiGHS, POT, cvxpy+Clarabel).

Every reference value comes from :mod:`references` (no otgrid code) or from a closed form; the
masses are integrated here with ``scipy.stats.norm`` so that the distributions module is not
under test either.
"""

from __future__ import annotations

import numpy as np
import pytest
from references import (
    emd2_cityblock,
    kr_lp_1d_highs,
    socp_2d_euclidean_cvxpy,
    w1_1d_closed_form,
)
from scipy.stats import norm as normal

import otgrid as og

BACKENDS = ["numpy", "numba"]
EXACT_SLACK = 1e-9  # bracketing slack against exact references (closed form, network simplex)
SOCP_SLACK = 1e-7  # bracketing slack against Clarabel (solved to 1e-10)


@pytest.fixture(params=BACKENDS)
def backend(request):
    return request.param


# ---------------------------------------------------------------------------------------------
# helpers (plain NumPy/SciPy)
# ---------------------------------------------------------------------------------------------
def _edges(low: float, high: float, n: int) -> np.ndarray:
    return np.linspace(low, high, n + 1)


def _gauss_1d(edges: np.ndarray, mean: float, sd: float = 1.0) -> np.ndarray:
    return np.diff(normal.cdf(edges, loc=mean, scale=sd))


def _gauss_2d(grid: og.Grid, mean) -> np.ndarray:
    (ax, bx), (ay, by) = grid.bounds
    m = np.outer(_gauss_1d(_edges(ax, bx, grid.shape[0]), mean[0]),
                 _gauss_1d(_edges(ay, by, grid.shape[1]), mean[1]))
    return m / m.sum()


def _random_pair(seed: int, shape, density: float = 1.0):
    rng = np.random.default_rng(seed)
    mu = rng.random(shape) * (rng.random(shape) < density)
    nu = rng.random(shape) * (rng.random(shape) < density)
    mu.flat[0] += 0.05
    nu.flat[-1] += 0.05
    return mu / mu.sum(), nu / nu.sum()


def _centers(grid: og.Grid):
    return tuple(a + (np.arange(n) + 0.5) * h
                 for (a, _), n, h in zip(grid.bounds, grid.shape, grid.dx, strict=True))


def _assert_brackets(res, ref: float, slack: float) -> None:
    assert res.lower <= ref * (1 + slack) + 1e-15, (res.lower, ref)
    assert res.upper >= ref * (1 - slack) - 1e-15, (res.upper, ref)


def _assert_solution_consistent(res, mu, nu, grid) -> None:
    """Spec properties of critic and flow, checked with plain NumPy differences."""
    f = res.critic
    c = mu - nu
    grads = []
    for k, h in enumerate(grid.dx):
        g = np.zeros_like(f)
        sl_hi = [slice(None)] * f.ndim
        sl_lo = [slice(None)] * f.ndim
        sl_hi[k], sl_lo[k] = slice(1, None), slice(None, -1)
        g[tuple(sl_lo)] = (f[tuple(sl_hi)] - f[tuple(sl_lo)]) / h
        grads.append(g)
    grads = np.stack(grads)
    if res.norm == "euclidean":
        lip = np.sqrt(np.sum(grads**2, axis=0)).max()
    else:
        lip = np.abs(grads).max()
    assert lip <= 1 + 1e-9  # feasible critic
    np.testing.assert_allclose(np.sum(c * f), res.lower, rtol=1e-9, atol=1e-14)
    np.testing.assert_allclose(np.sum((mu + nu) / 2 * f), 0.0, atol=1e-10)
    # the flow moves mu onto nu: net outflow equals mu - nu, zero on the last index of axis k,
    # its cost equals upper
    y = res.flow
    assert y.shape == (grid.ndim, *grid.shape)
    div = np.zeros_like(c)
    for k, h in enumerate(grid.dx):
        yk = np.moveaxis(y[k], k, 0)
        np.testing.assert_allclose(yk[-1], 0.0, atol=1e-14)
        d = yk.copy()  # outflow to i + e_k minus inflow from i - e_k
        d[1:] -= yk[:-1]
        div += np.moveaxis(d, 0, k) / h
    np.testing.assert_allclose(div, c, atol=1e-9 * np.abs(c).max())
    cost = np.sqrt(np.sum(y**2, axis=0)) if res.norm == "euclidean" else np.abs(y).sum(axis=0)
    np.testing.assert_allclose(cost.sum(), res.upper, rtol=1e-9)


# ---------------------------------------------------------------------------------------------
# 1D
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("seed", "density"), [(0, 1.0), (1, 0.3), (2, 0.1)])
def test_1d_closed_form_and_highs(backend, seed, density):
    grid = og.Grid((-3.0, 3.0), 80)
    (dx,) = grid.dx
    mu, nu = _random_pair(seed, grid.shape, density)
    tol = 1e-8
    res = og.solve_critic(mu, nu, grid, tol=tol, backend=backend)
    ref = w1_1d_closed_form(mu, nu, dx)
    ref_lp, critic_lp = kr_lp_1d_highs(mu, nu, dx)
    assert res.converged
    _assert_brackets(res, ref, EXACT_SLACK)
    assert abs(res.w1 - ref) <= tol * ref
    np.testing.assert_allclose(ref_lp, ref, rtol=1e-10)
    _assert_solution_consistent(res, mu, nu, grid)

    # The critic is determined where mass crosses the edge (C_i = F_mu(i) - F_nu(i) != 0):
    # W - lower = sum_i |C_i| |d_i - d*_i| with d* the exact differences, so each edge's error
    # is at most gap / |C_i|.
    C = np.cumsum(mu - nu)[:-1]
    d = np.diff(res.critic)
    d_lp = np.diff(critic_lp)
    assert np.sum(np.abs(C) * np.abs(d - d_lp)) <= res.gap + 1e-12 * ref
    mask = np.abs(C) > 1e-3 * np.abs(C).max()
    np.testing.assert_allclose(d[mask], d_lp[mask], rtol=0,
                               atol=res.gap / np.abs(C[mask]).min() + 1e-12)
    # the 1D flow is unique: mass C_i crosses edge i
    np.testing.assert_allclose(res.flow[0][:-1] / dx, C, atol=1e-12)


def test_1d_both_norms_equal(backend):
    grid = og.Grid((0.0, 2.0), 50)
    mu, nu = _random_pair(5, grid.shape, 0.4)
    ref = w1_1d_closed_form(mu, nu, grid.dx[0])
    for nrm in ("euclidean", "cityblock"):
        res = og.solve_critic(mu, nu, grid, norm=nrm, tol=1e-9, backend=backend)
        _assert_brackets(res, ref, EXACT_SLACK)
        assert abs(res.w1 - ref) <= 1e-9 * ref


def test_petzka_proposition_2(backend):
    """mu = N(0,1), nu = N(-1,1)/2 + N(1,1)/2: an optimal critic is -|x| (Petzka et al. Prop. 2)."""
    grid = og.Grid((-6.0, 6.0), 600)
    (dx,) = grid.dx
    edges = _edges(-6.0, 6.0, 600)
    x = -6.0 + (np.arange(600) + 0.5) * dx
    mu = _gauss_1d(edges, 0.0)
    nu = 0.5 * _gauss_1d(edges, -1.0) + 0.5 * _gauss_1d(edges, 1.0)
    mu, nu = mu / mu.sum(), nu / nu.sum()
    ref = w1_1d_closed_form(mu, nu, dx)
    # -|x| is optimal for the discrete problem too: its value is the exact W
    np.testing.assert_allclose(np.dot(mu - nu, -np.abs(x)), ref, rtol=1e-10)
    np.testing.assert_allclose(ref, 2 * normal.pdf(1) + 1 - 2 * normal.cdf(-1) - np.sqrt(2 / np.pi),
                               rtol=1e-4)  # E_nu|x| - E_mu|x| in the continuum

    tol = 1e-6
    res = og.solve_critic(mu, nu, grid, tol=tol, backend=backend)
    assert res.converged
    _assert_brackets(res, ref, EXACT_SLACK)
    assert abs(res.w1 - ref) <= tol * ref
    # where the CDFs differ substantially, critic + |x| is constant on each side of 0 (each
    # edge's error is at most gap / |C_i|: a few percent of dx here)
    C = np.cumsum(mu - nu)[:-1]
    thr = 1e-3
    atol = res.gap / thr + 1e-12
    mask = np.abs(C) > thr
    np.testing.assert_allclose(np.diff(res.critic)[mask], np.diff(-np.abs(x))[mask],
                               rtol=0, atol=atol)
    for side in (x[:-1] < 0, x[:-1] > 0):
        edges_ok = np.flatnonzero(mask & side)
        assert edges_ok.size > 100
        assert np.all(np.diff(edges_ok) == 1)  # one contiguous determined stretch per side
        cells = np.arange(edges_ok[0], edges_ok[-1] + 2)
        assert np.ptp(res.critic[cells] + np.abs(x[cells])) <= atol * 1.01


@pytest.mark.parametrize("shape", [(40,), (9, 7)])
def test_equal_measures_give_zero(backend, shape):
    lows_highs = [(-1.0, 1.0)] * len(shape)
    grid = og.Grid(lows_highs if len(shape) > 1 else lows_highs[0], shape)
    mu, _ = _random_pair(11, shape, 0.5)
    res = og.solve_critic(mu, mu.copy(), grid, tol=1e-6, backend=backend)
    assert res.converged
    assert 0.0 <= res.lower
    assert res.upper <= 1e-12
    assert abs(res.w1) <= 1e-12


# ---------------------------------------------------------------------------------------------
# 2D cityblock: exactly POT's emd2 with L1 ground cost between cell centres
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("bounds", "shape", "case"),
    [
        ([(0.0, 8.0), (0.0, 8.0)], (8, 8), "sparse"),
        ([(-1.0, 2.0), (0.0, 5.0)], (12, 10), "sparse"),
        ([(-4.0, 4.0), (-4.0, 4.0)], (16, 16), "gauss"),
        ([(-2.0, 2.0), (-1.0, 3.0)], (20, 12), "gauss"),  # dx_x != dx_y
    ],
)
def test_2d_cityblock_equals_emd2(backend, bounds, shape, case):
    grid = og.Grid(bounds, shape)
    if case == "sparse":
        mu, nu = _random_pair(shape[0] * shape[1], shape, 0.3)
    else:
        mu, nu = _gauss_2d(grid, (0.0, 0.0)), _gauss_2d(grid, (1.0, 0.5))
    ref = emd2_cityblock(mu, nu, _centers(grid))
    res = og.solve_critic(mu, nu, grid, norm="cityblock", tol=1e-6, backend=backend)
    assert res.converged
    _assert_brackets(res, ref, EXACT_SLACK)
    np.testing.assert_allclose(res.w1, ref, rtol=1e-6)
    _assert_solution_consistent(res, mu, nu, grid)


# ---------------------------------------------------------------------------------------------
# 2D Euclidean: the grid SOCP, solved by cvxpy + Clarabel
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("bounds", "shape", "case"),
    [
        ([(-4.0, 4.0), (-4.0, 4.0)], (16, 16), "gauss"),
        ([(-4.0, 4.0), (-4.0, 4.0)], (32, 32), "gauss"),
        ([(0.0, 1.0), (0.0, 1.0)], (16, 16), "random"),
        ([(0.0, 1.0), (0.0, 1.0)], (32, 32), "random"),
        ([(-2.0, 2.0), (-1.0, 3.0)], (20, 12), "gauss"),  # non-square, dx_x != dx_y
        ([(-3.0, 3.0), (0.0, 1.0)], (12, 24), "random"),
    ],
)
def test_2d_euclidean_equals_socp(backend, bounds, shape, case):
    grid = og.Grid(bounds, shape)
    if case == "random":
        mu, nu = _random_pair(shape[0] + 3 * shape[1], shape, 0.7)
    else:
        mu, nu = _gauss_2d(grid, (-0.5, 0.0)), _gauss_2d(grid, (1.0, 0.7))
    ref = socp_2d_euclidean_cvxpy(mu, nu, grid.dx)
    assert ref.status == "optimal"
    # |w1 - W| <= gap / 2 <= tol * upper / 2, so tol = 1e-5 must give 1e-5 agreement
    res = og.solve_critic(mu, nu, grid, norm="euclidean", tol=1e-5, backend=backend)
    assert res.converged
    _assert_brackets(res, ref.value, SOCP_SLACK)
    np.testing.assert_allclose(res.w1, ref.value, rtol=1e-5)
    _assert_solution_consistent(res, mu, nu, grid)


@pytest.mark.parametrize("norm", ["euclidean", "cityblock"])
def test_float32_bounds_bracket_reference(backend, norm):
    grid = og.Grid([(-3.0, 3.0), (-2.0, 2.0)], (24, 16))
    mu, nu = _gauss_2d(grid, (-0.5, 0.0)), _gauss_2d(grid, (1.0, 0.5))
    if norm == "euclidean":
        ref, slack = socp_2d_euclidean_cvxpy(mu, nu, grid.dx).value, SOCP_SLACK
    else:
        ref, slack = emd2_cityblock(mu, nu, _centers(grid)), EXACT_SLACK
    tol = 1e-5
    res = og.solve_critic(mu, nu, grid, norm=norm, tol=tol, backend=backend, dtype=np.float32)
    assert res.converged
    _assert_brackets(res, ref, slack)
    assert abs(res.w1 - ref) <= tol * ref


def test_warm_start_saves_iterations(backend):
    grid = og.Grid([(-4.0, 4.0), (-4.0, 4.0)], (24, 24))
    dx = grid.dx[0]
    mu = _gauss_2d(grid, (0.0, 0.0))
    nu0 = _gauss_2d(grid, (1.5, 0.5))
    nu1 = _gauss_2d(grid, (1.5 + dx, 0.5))  # nu shifted by one cell
    first = og.solve_critic(mu, nu0, grid, tol=1e-5, backend=backend)
    cold = og.solve_critic(mu, nu1, grid, tol=1e-5, backend=backend)
    warm = og.solve_critic(mu, nu1, grid, tol=1e-5, backend=backend, warm_start=first)
    assert first.converged and cold.converged and warm.converged
    assert warm.iterations < cold.iterations
    # both solutions bracket the same W
    assert warm.lower <= cold.upper * (1 + 1e-12)
    assert cold.lower <= warm.upper * (1 + 1e-12)
