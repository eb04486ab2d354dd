"""The coarse correction of Sinkhorn (otgrid.pointcloud.coarse and sinkhorn(coarse=...)).

References: dense plans built with NumPy from the returned potentials, POT's log-domain
Sinkhorn, and a textbook matrix scaling for the coarse problem.
"""

from __future__ import annotations

import numpy as np
import ot
import pytest
from scipy.spatial.distance import cdist

from otgrid.pointcloud import sinkhorn
from otgrid.pointcloud.coarse import CoarseCorrection, _coarse_newton, spatial_order


def _clouds(seed: int, n: int, m: int):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 2))
    y = rng.normal(size=(m, 2)) + np.array([2.0, 1.0])
    a = rng.random(n) + 0.2
    b = rng.random(m) + 0.2
    return x, y, a / a.sum(), b / b.sum()


def _centred(v: np.ndarray, w: np.ndarray) -> np.ndarray:
    return v - np.sum(w * v) / np.sum(w)


def _dense_errors(x, y, a, b, res, cost="euclidean"):
    """Marginal error and <P, C> of the plan of the returned potentials, built with NumPy."""
    C = cdist(x, y, metric=cost)
    P = a[:, None] * b[None, :] * np.exp((res.f[:, None] + res.g[None, :] - C) / res.reg)
    err = np.abs(P.sum(axis=1) - a).sum() + np.abs(P.sum(axis=0) - b).sum()
    return float(err), float((P * C).sum())


def test_spatial_order_cells():
    rng = np.random.default_rng(0)
    p = rng.normal(size=(1001, 2)) * [3.0, 1.0]  # widest along x
    order = spatial_order(p, 4)
    assert np.array_equal(np.sort(order), np.arange(1001))
    q = p[order]
    cut = [k * 1001 // 4 for k in range(5)]
    # first split: along x at the chunk boundary 500
    assert q[: cut[2], 0].max() <= q[cut[2]:, 0].min()
    # second level: each half split along its own widest axis
    for lo, mid, hi in ((cut[0], cut[1], cut[2]), (cut[2], cut[3], cut[4])):
        half = q[lo:hi]
        ax = int(np.argmax(np.ptp(half, axis=0)))
        assert q[lo:mid, ax].max() <= q[mid:hi, ax].min()
    # points on a line: the cells are consecutive intervals
    t = rng.random(64)
    line = np.stack([t, 0 * t], axis=1)
    o = spatial_order(line, 8)
    cells = t[o].reshape(8, 8)
    assert np.all(cells.max(axis=1)[:-1] <= cells.min(axis=1)[1:])


def _matrix_scaling(S, A, Bw, iters=200_000):
    """Textbook alternate scaling of S to row sums A and column sums Bw: (u, v) in logs."""
    u, v = np.zeros(S.shape[0]), np.zeros(S.shape[1])
    for _ in range(iters):
        u = np.log(A / (S * np.exp(v)[None, :]).sum(axis=1))
        v = np.log(Bw / (S * np.exp(u)[:, None]).sum(axis=0))
        rows = (S * np.exp(u[:, None] + v[None, :])).sum(axis=1)
        if np.abs(rows - A).sum() < 1e-15:
            break
    return u, v


def test_coarse_newton_matches_matrix_scaling():
    rng = np.random.default_rng(1)
    K, L = 12, 20
    S = np.exp(-cdist(rng.random((K, 2)), rng.random((L, 2))) / 0.3) * rng.random((K, L))
    A = rng.random(K) + 0.1
    Bw = rng.random(L) + 0.1
    Bw *= A.sum() / Bw.sum()
    v = _coarse_newton(S, A, Bw)
    assert abs((Bw * v).sum()) < 1e-12  # the constant chosen
    _, v_ref = _matrix_scaling(S, A, Bw)
    np.testing.assert_allclose(_centred(v, Bw), _centred(v_ref, Bw), atol=1e-9)
    # the scaled matrix has the block marginals (u from the rows)
    Sv = S * np.exp(v)[None, :]
    P = Sv * (A / Sv.sum(axis=1))[:, None]
    np.testing.assert_allclose(P.sum(axis=0), Bw, rtol=1e-10)


def test_coarse_step_is_zero_at_the_solution():
    """At a converged plan, the block marginals are exact: no correction."""
    x, y, a, b = _clouds(2, 300, 280)
    ref = sinkhorn(x, y, a, b, reg=0.1, tol=1e-12, coarse=False)
    ox, oy = spatial_order(x, 8), spatial_order(y, 16)
    C = cdist(x[ox], y[oy])
    P = a[ox, None] * b[None, oy] * np.exp((ref.f[ox, None] + ref.g[None, oy] - C) / 0.1)
    P *= (a[ox] / P.sum(axis=1))[:, None]  # rows exact, as after the row update
    parts = np.add.reduceat(P, np.arange(8) * 300 // 8, axis=0)
    corr = CoarseCorrection(a[ox], b[oy], 8, 16)
    v = corr.step(parts, P.sum(axis=0))
    assert np.abs(v).max() < 1e-9
    # away from it: after the update g~ and the correction, one scaling per row cluster
    # makes every block marginal exact (rows and columns)
    g = ref.g[oy] + 0.05 * np.sin(3 * y[oy, 0])
    P = np.exp((g[None, :] - C) / 0.1) * b[None, oy]
    P *= (a[ox] / P.sum(axis=1))[:, None]
    col = P.sum(axis=0)
    rb = np.arange(8) * 300 // 8
    v = corr.step(np.add.reduceat(P, rb, axis=0), col)
    assert np.abs(v).max() > 1e-3
    Pn = P * (b[oy] / col * np.exp(v))[None, :]
    blocks = np.add.reduceat(np.add.reduceat(Pn, rb, axis=0), corr.cb, axis=1)
    blocks *= (corr.A / blocks.sum(axis=1))[:, None]  # e^(u_K)
    np.testing.assert_allclose(blocks.sum(axis=0), corr.Bw, rtol=1e-9)


@pytest.mark.parametrize("cost", ["euclidean", "cityblock"])
def test_coarse_solve_matches_plain_solve_and_pot(cost):
    """Same solution with and without the correction (reordered points, non-uniform weights),
    fewer iterations with it; POT's Sinkhorn agrees on <P, C>."""
    x, y, a, b = _clouds(3, 2300, 2100)
    on = sinkhorn(x, y, a, b, reg=0.05, cost=cost, coarse=True)
    off = sinkhorn(x, y, a, b, reg=0.05, cost=cost, coarse=False)
    assert on.converged and off.converged
    assert on.iterations < off.iterations
    for res in (on, off):
        err, tc = _dense_errors(x, y, a, b, res, cost)
        assert err <= 1e-6
        np.testing.assert_allclose(res.marginal_error, err, rtol=1e-5, atol=1e-12)
        np.testing.assert_allclose(res.transport_cost, tc, rtol=1e-9)
    np.testing.assert_allclose(_centred(on.f, a), _centred(off.f, a), atol=2e-5)
    np.testing.assert_allclose(_centred(on.g, b), _centred(off.g, b), atol=2e-5)
    M = cdist(x, y, metric=cost)
    ref = float(ot.sinkhorn2(a, b, M, 0.05, stopThr=1e-10, numItermax=100_000))
    np.testing.assert_allclose(on.transport_cost, ref, rtol=1e-5)
    # the eq. (15) statistic is drawn in the caller's order: the same pairs either way
    np.testing.assert_allclose(on.termination_statistic, off.termination_statistic, rtol=1e-3)


def test_coarse_zero_weights_and_warm_start():
    x, y, a, b = _clouds(4, 2100, 2050)
    b[::9] = 0.0
    b /= b.sum()
    res = sinkhorn(x, y, a, b, reg=0.05, coarse=True)
    assert res.converged
    err, _ = _dense_errors(x, y, a, b, res)
    assert err <= 1e-6
    # a warm start (in the caller's order) from the solution converges at once
    again = sinkhorn(x, y, a, b, reg=0.05, coarse=True, warm_start=res)
    assert again.converged and again.iterations <= 2
    keep = b > 0
    np.testing.assert_allclose(_centred(again.g[keep], b[keep]),
                               _centred(res.g[keep], b[keep]), atol=1e-6)


def test_coarse_option_is_checked_and_ignored_where_unsupported():
    x, y, a, b = _clouds(5, 60, 50)
    with pytest.raises(TypeError, match="coarse must be None, True or False"):
        sinkhorn(x, y, reg=0.1, coarse="yes")
    # NumPy backend and batches: no coarse step, same results
    r1 = sinkhorn(x, y, a, b, reg=0.1, backend="numpy", coarse=True)
    r0 = sinkhorn(x, y, a, b, reg=0.1, backend="numpy", coarse=False)
    assert r1.iterations == r0.iterations
    np.testing.assert_allclose(r1.f, r0.f)
    X, Y = np.stack([x, x + 0.1]), np.stack([y, y])
    rb = sinkhorn(X, Y, reg=0.1, coarse=True)
    assert rb.converged
    # tiny clouds with coarse=True: two clusters, still the same solution
    small = sinkhorn(x, y, a, b, reg=0.1, coarse=True, tol=1e-10)
    ref = sinkhorn(x, y, a, b, reg=0.1, coarse=False, tol=1e-10)
    np.testing.assert_allclose(_centred(small.f, a), _centred(ref.f, a), atol=1e-9)
    np.testing.assert_allclose(small.transport_cost, ref.transport_cost, rtol=1e-10)
