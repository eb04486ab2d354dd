"""The iteration on anisotropic cells: per-axis dual steps and their shrinkage.

Cells much longer along one axis than the other made the plain iteration (one dual step for
every flow component, the primal step preconditioned by ``D^T D``) stall: fuzzed problems ran
to ``max_iter`` at relative gaps of 1e-5. The kernels now take dual steps ``sigma s_k`` per
axis and shrink in the metric ``diag(s_k)^{-1}`` (``backend_numpy.AXIS_WEIGHTS_MIN_RATIO``).
Here: the shrinkage against its definition (a root found by SciPy's brentq, the proximal
objective), every backend's weighted step against a reference written from the definition,
and solves of problems that stalled before against HiGHS and cvxpy + Clarabel.
"""

from __future__ import annotations

import numpy as np
import pytest
from references import (
    kr_lp_2d_cityblock_highs,
    socp_2d_euclidean_cvxpy,
    weighted_group_shrink_brentq,
)

import otgrid as og
from otgrid.critic import backend_numpy
from otgrid.critic import operators as ops
from otgrid.critic.backends import make_kernels


def _objective(w, v, a):
    return np.sqrt(np.sum(w ** 2)) + np.sum((w - v) ** 2 / (2 * a))


def test_the_weighted_group_shrinkage_is_the_proximal_map():
    from otgrid.kernels import critic_numba as k

    rng = np.random.default_rng(0)
    n = 400
    v = rng.standard_normal((2, n)) * 10.0 ** rng.uniform(-3, 3, n)
    a = 10.0 ** rng.uniform(-3, 3, (1, n)) * 10.0 ** -rng.uniform(0, 8, (2, n))
    want = np.stack([weighted_group_shrink_brentq(v[:, i], a[:, i]) for i in range(n)], axis=1)
    assert 0.2 * n < np.count_nonzero(want[0]) < 0.95 * n  # both branches are exercised
    # the NumPy reference on a grid of cells (weights per axis: one column of a at a time)
    for i in range(0, n, 37):
        got = ops.shrink_weighted_2(v[:, i:i + 1], a[:, i:i + 1])
        np.testing.assert_allclose(got[:, 0], want[:, i], rtol=1e-12, atol=1e-300)
    # the scalar function of the compiled kernels, in float64 and float32
    for dt, rtol in ((np.float64, 1e-12), (np.float32, 2e-5)):
        for i in range(n):
            vi, ai = v[:, i].astype(dt), a[:, i].astype(dt)
            got = np.array(k._group_shrink_weighted(*vi, *ai), dtype=np.float64)
            np.testing.assert_allclose(got, want[:, i], rtol=rtol,
                                       atol=rtol * float(np.abs(want[:, i]).max()))
            if dt == np.float64:  # no nearby point does better
                best = _objective(got, v[:, i], a[:, i])
                for _ in range(4):
                    near = got * (1 + 1e-6 * rng.standard_normal(2))
                    assert best <= _objective(near, v[:, i], a[:, i]) * (1 + 1e-14)
    # equal weights: the plain group shrinkage
    vv = rng.standard_normal((2, 5, 6))
    np.testing.assert_allclose(ops.shrink(vv, 0.7, "euclidean", (1.0, 1.0)),
                               ops.shrink(vv, 0.7, "euclidean"), rtol=1e-14, atol=1e-15)
    # cityblock: the soft threshold t s_k per component
    got = ops.shrink(vv, 0.7, "cityblock", (1.0, 0.25))
    thr = np.array([0.7, 0.175]).reshape(2, 1, 1)
    np.testing.assert_allclose(got, np.sign(vv) * np.maximum(np.abs(vv) - thr, 0), rtol=1e-15)


@pytest.mark.parametrize("norm", ["euclidean", "cityblock"])
@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_the_weighted_step_matches_its_definition(monkeypatch, norm, backend):
    """The step with per-axis dual steps ``sigma s_k`` (``s_k = dx_k / max dx``) and the
    shrinkage in their metric, against the definition (the reference proximal map above),
    relaxed, on a batch with a step per problem; the float32 kernels too."""
    monkeypatch.setattr(backend_numpy, "AXIS_WEIGHTS_MIN_RATIO",
                        {"euclidean": 1.0, "cityblock": 1.0})
    shape, dx = (7, 5), (0.3, 0.7)
    inv_dx = [1 / h for h in dx]
    s = np.array([0.3 / 0.7, 1.0]).reshape(2, 1, 1)
    rng = np.random.default_rng(1)
    nb = 2
    f, u = rng.standard_normal((nb, *shape)), 0.1 * rng.standard_normal((nb, *shape))
    y = rng.standard_normal((nb, 2, *shape))
    y[:, 0, -1, :] = 0
    y[:, 1, :, -1] = 0
    tau, rho = np.array([0.4, 3.0]), 1.6
    want_y = np.empty_like(y)
    for b in range(nb):
        a = (1 / tau[b]) * s
        v = y[b] + a * ops.grad(f[b] + 2 * tau[b] * u[b], inv_dx)
        if norm == "euclidean":
            w = np.empty_like(v)
            for i, j in np.ndindex(*shape):
                w[:, i, j] = weighted_group_shrink_brentq(v[:, i, j], a[:, 0, 0])
        else:
            w = np.sign(v) * np.maximum(np.abs(v) - a, 0)
        w[0, -1, :] = 0
        w[1, :, -1] = 0
        want_y[b] = y[b] + rho * (w - y[b])
    for dt, rtol in ((np.float64, 1e-11), (np.float32, 3e-5)):
        kern = make_kernels(backend, shape, dx, norm, dt)
        assert kern.weighted and np.allclose(kern.axis_weights, s.ravel())
        yy, fo = y.astype(dt), np.empty(f.shape, dtype=dt)
        kern.dual_step(f.astype(dt), u.astype(dt), yy, fo, tau, 1 / tau, rho)
        np.testing.assert_allclose(yy, want_y, rtol=rtol, atol=rtol)
        np.testing.assert_allclose(fo, f + rho * tau[:, None, None] * u, rtol=rtol, atol=rtol)


def test_the_metric_norms_and_the_step_grid():
    rng = np.random.default_rng(2)
    sq = make_kernels("numba", (6, 6), (0.5, 0.5), "cityblock", np.float64)
    assert not sq.weighted and sq.axis_weights == (1.0, 1.0) and sq.step_inv_dx == sq.inv_dx
    # the euclidean norm keeps the plain iteration below a ratio of 1 000
    assert not make_kernels("numba", (6, 6), (0.5, 400.0), "euclidean", np.float64).weighted
    kern = make_kernels("numba", (6, 5), (0.5, 2.0), "cityblock", np.float64)
    assert kern.weighted and kern.axis_weights == (0.25, 1.0)
    np.testing.assert_allclose(kern.step_inv_dx, (1.0, 0.5))  # sqrt(s_k) / dx_k
    f, y = rng.standard_normal((2, 6, 5)), rng.standard_normal((2, 2, 6, 5))
    g = np.stack([ops.grad(fb, kern.inv_dx) for fb in f])
    np.testing.assert_allclose(kern.grad_metric_sq(f),
                               0.25 * np.sum(g[:, 0] ** 2, axis=(1, 2))
                               + np.sum(g[:, 1] ** 2, axis=(1, 2)), rtol=1e-13)
    np.testing.assert_allclose(kern.flow_metric_sq(y),
                               np.sum(y[:, 0] ** 2, axis=(1, 2)) / 0.25
                               + np.sum(y[:, 1] ** 2, axis=(1, 2)), rtol=1e-13)
    np.testing.assert_array_equal(sq.flow_metric_sq(y), sq.sq_norm(y))


def _problem(shape, seed):
    rng = np.random.default_rng(seed)
    mu, nu = rng.random(shape) ** 3, rng.random(shape) ** 3
    return mu / mu.sum(), nu / nu.sum()


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_thin_cityblock_cells_converge(backend):
    # cells 6 250 times longer along y: with one dual step for both axes this problem ran to
    # 20 000 iterations at relative gaps of 5e-6 to 6e-6 (both backends); 734 with the weights
    grid = og.Grid([(0.0, 0.01), (0.0, 50.0)], (8, 5))
    mu, nu = _problem(grid.shape, 11)
    res = og.solve_critic(mu, nu, grid, norm="cityblock", tol=1e-6, max_iter=4000,
                          backend=backend)
    ref, _ = kr_lp_2d_cityblock_highs(mu, nu, grid.dx)
    assert res.converged and res.gap <= 1e-6 * res.upper
    assert res.lower <= ref * (1 + 1e-9) and res.upper >= ref * (1 - 1e-9)


def test_thin_euclidean_cells_converge():
    # cells 2 143 times longer along y, euclidean: without the weights 20 000 iterations ended
    # at a relative gap of 2.5e-6; with them about 5 900
    grid = og.Grid([(0.0, 1.0), (0.0, 3000.0)], (10, 14))
    mu, nu = _problem(grid.shape, 12)
    res = og.solve_critic(mu, nu, grid, norm="euclidean", tol=1e-6, max_iter=8000,
                          backend="numba")
    ref = socp_2d_euclidean_cvxpy(mu, nu, grid.dx).value
    assert res.converged and res.gap <= 1e-6 * res.upper
    assert res.lower <= ref * (1 + 1e-7) and res.upper >= ref * (1 - 1e-7)
