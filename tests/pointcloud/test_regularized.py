"""``sinkhorn`` and ``smooth_ot`` against independent references.

References: POT (``ot.bregman.sinkhorn_log``, ``ot.sinkhorn2``, ``ot.smooth.smooth_ot_dual``,
``ot.emd2``), SciPy (``linear_sum_assignment``, ``logsumexp``, ``cdist``) and dense NumPy
formulas evaluated here from the returned potentials. Conventions under test:

- POT's entropic plans equal ours for ``reg_POT = reg`` (``sum P log P`` and ``KL(P | a b^T)``
  differ by a constant on the feasible set); ``log_u = log a + f / reg`` up to a constant;
- POT's L2 term ``reg_POT / 2 ||P||^2`` equals our ``lambda / 2 sum P^2 / (a b)`` for uniform
  weights when ``reg_POT = lambda n m``.
"""

from __future__ import annotations

import warnings

import numpy as np
import ot
import pytest
from compile_stand_in import FirstCompile
from hypothesis import example, given, settings
from hypothesis import strategies as st
from scipy.optimize import linear_sum_assignment
from scipy.spatial.distance import cdist
from scipy.special import logsumexp

from otgrid.errors import ConvergenceWarning
from otgrid.kernels import pointcloud_numba as kern
from otgrid.pointcloud import RegularizedInfo, RegularizedResult, sinkhorn, smooth_ot

BACKENDS = ["numpy", "numba"]
COSTS = ["euclidean", "sqeuclidean", "cityblock"]


@pytest.fixture(params=BACKENDS)
def backend(request):
    return request.param


def _clouds(seed: int, n: int = 40, m: int = 30, d: int = 2, weights: bool = False):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d))
    y = rng.normal(size=(m, d)) + 0.7
    if not weights:
        return x, y, np.full(n, 1.0 / n), np.full(m, 1.0 / m)
    a = rng.random(n) + 0.2
    b = rng.random(m) + 0.2
    return x, y, a / a.sum(), b / b.sum()


def _centred(v: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Remove the weighted mean (potentials are defined up to an additive constant)."""
    return v - np.sum(w * v) / np.sum(w)


def _pot_sinkhorn(x, y, a, b, reg, cost):
    M = cdist(x, y, metric=cost)
    P, log = ot.bregman.sinkhorn_log(a, b, M, reg, stopThr=1e-14, numItermax=200_000, log=True)
    return M, P, reg * (log["log_u"] - np.log(a)), reg * (log["log_v"] - np.log(b))


# ------------------------------------------------------------------------------ Sinkhorn vs POT
@pytest.mark.parametrize("cost", COSTS)
def test_sinkhorn_matches_pot_log_domain(backend, cost):
    x, y, a, b = _clouds(0, weights=True)
    reg = 0.1
    M, P, f_pot, g_pot = _pot_sinkhorn(x, y, a, b, reg, cost)
    res = sinkhorn(x, y, a, b, reg=reg, cost=cost, tol=1e-12, backend=backend)
    assert res.converged
    np.testing.assert_allclose(res.transport_cost, np.sum(P * M), rtol=1e-9)
    np.testing.assert_allclose(res.plan(), P, atol=1e-12, rtol=1e-7)
    np.testing.assert_allclose(_centred(res.f, a), _centred(f_pot, a), atol=1e-8)
    np.testing.assert_allclose(_centred(res.g, b), _centred(g_pot, b), atol=1e-8)
    # ot.sinkhorn2 (dense, non-log) returns the same linear cost <P, M>
    val = ot.sinkhorn2(a, b, M, reg, stopThr=1e-13, numItermax=100_000)
    np.testing.assert_allclose(res.transport_cost, float(val), rtol=1e-8)


def test_sinkhorn_objectives_from_dense_plan(backend):
    """Primal <P, C> + eps KL(P | a b^T) and the dual, recomputed from the dense plan."""
    x, y, a, b = _clouds(1, weights=True)
    reg = 0.2
    res = sinkhorn(x, y, a, b, reg=reg, tol=1e-12, backend=backend)
    C = cdist(x, y)
    P = a[:, None] * b[None, :] * np.exp((res.f[:, None] + res.g[None, :] - C) / reg)
    kl = np.sum(P * np.log(P / np.outer(a, b))) - P.sum() + 1.0
    np.testing.assert_allclose(res.primal_objective, np.sum(P * C) + reg * kl, rtol=1e-10)
    dual = a @ res.f + b @ res.g - reg * (P.sum() - 1.0)
    np.testing.assert_allclose(res.objective, dual, rtol=1e-10)
    np.testing.assert_allclose(res.objective, res.primal_objective, rtol=1e-9)
    np.testing.assert_allclose(a @ res.f, b @ res.g, rtol=1e-10)  # the stated normalisation
    np.testing.assert_allclose(res.plan_mass, P.sum(), rtol=1e-12)
    grad = np.sqrt(np.sum((a - P.sum(1)) ** 2) + np.sum((b - P.sum(0)) ** 2))
    np.testing.assert_allclose(res.grad_norm, grad, rtol=1e-6, atol=1e-15)


@pytest.mark.parametrize("solver", ["sinkhorn", "l2", "kl"])
def test_marginals_within_tol(solver):
    x, y, a, b = _clouds(2, n=60, m=45, weights=True)
    tol = 1e-7
    if solver == "sinkhorn":
        res = sinkhorn(x, y, a, b, reg=0.05, tol=tol)
    else:
        res = smooth_ot(x, y, a, b, reg=0.05, regularizer=solver, tol=tol)
    P = res.plan()
    row = np.abs(P.sum(1) - a).sum()
    col = np.abs(P.sum(0) - b).sum()
    assert res.converged
    assert row + col <= tol
    np.testing.assert_allclose(res.marginal_errors, (row, col), rtol=1e-6, atol=1e-12)
    np.testing.assert_allclose(res.marginal_error, row + col, rtol=1e-6, atol=1e-12)


# ------------------------------------------------------------------------- smooth dual vs POT
@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # POT passes iprint to SciPy
@pytest.mark.parametrize("method", ["newton", "lbfgs"])
@pytest.mark.parametrize("cost", ["euclidean", "sqeuclidean"])
def test_smooth_l2_matches_pot_with_converted_reg(backend, cost, method):
    x, y, a, b = _clouds(3, n=30, m=25)
    lam = 0.05
    M = cdist(x, y, metric=cost)
    G, log = ot.smooth.smooth_ot_dual(a, b, M, lam * 30 * 25, reg_type="l2", stopThr=1e-15,
                                      numItermax=20_000, log=True)
    pot_err = np.abs(G.sum(1) - a).sum() + np.abs(G.sum(0) - b).sum()
    assert pot_err < 1e-6  # POT converged here: a valid reference
    res = smooth_ot(x, y, reg=lam, regularizer="l2", cost=cost, tol=1e-10, backend=backend,
                    method=method)
    assert res.converged
    assert res.method == method
    np.testing.assert_allclose(res.plan(), G, atol=10 * pot_err + 1e-12)  # POT's accuracy
    np.testing.assert_allclose(res.transport_cost, np.sum(G * M), rtol=1e-6)
    # POT's alpha, beta are phi and -psi up to a common constant (where rows/columns are active)
    np.testing.assert_allclose(_centred(res.phi, a), _centred(log["alpha"], a), atol=1e-5)
    np.testing.assert_allclose(_centred(-res.psi, b), _centred(log["beta"], b), atol=1e-5)


def test_smooth_l2_objective_is_lemma_4_1_dual(backend):
    """F(phi, psi) = <a, phi> - <b, psi> - sum a b (V_+)^2 / (2 lambda), from the dense V."""
    x, y, a, b = _clouds(4, n=35, m=20, weights=True)
    lam = 0.3
    res = smooth_ot(x, y, a, b, reg=lam, regularizer="l2", tol=1e-9, backend=backend)
    V = res.phi[:, None] - res.psi[None, :] - cdist(x, y)
    F = a @ res.phi - b @ res.psi - np.sum(np.outer(a, b) * np.maximum(V, 0) ** 2) / (2 * lam)
    np.testing.assert_allclose(res.objective, F, rtol=1e-12)
    pi = np.outer(a, b) * np.maximum(V, 0) / lam  # eq. (11)
    np.testing.assert_allclose(res.plan(), pi, rtol=1e-12, atol=1e-16)
    primal = np.sum(pi * cdist(x, y)) + lam * np.sum(pi**2 / np.outer(a, b)) / 2
    np.testing.assert_allclose(res.primal_objective, primal, rtol=1e-10)


def _l2_plan_cvxpy(C, a, b, lam):
    """``argmin <P, C> + lam/2 sum P^2 / (a b)`` over the transport plans (cvxpy + Clarabel)."""
    import cvxpy as cp

    P = cp.Variable(C.shape, nonneg=True)
    w = 1.0 / np.sqrt(np.outer(a, b))
    obj = cp.sum(cp.multiply(C, P)) + lam / 2 * cp.sum_squares(cp.multiply(w, P))
    prob = cp.Problem(cp.Minimize(obj), [cp.sum(P, axis=1) == a, cp.sum(P, axis=0) == b])
    prob.solve(solver=cp.CLARABEL, tol_gap_abs=1e-12, tol_gap_rel=1e-12, tol_feas=1e-12)
    assert prob.status == "optimal"
    return P.value, prob.value


@pytest.mark.parametrize("lam", [1e-3, 1e-5])
def test_smooth_l2_newton_sparse_matches_cvxpy(backend, lam):
    """Small lambda (a few active pairs per point): Newton alone, to the QP's solution."""
    x, y, a, b = _clouds(11, n=30, m=24, weights=True)
    C = cdist(x, y)
    P_ref, val_ref = _l2_plan_cvxpy(C, a, b, lam)
    res = smooth_ot(x, y, a, b, reg=lam, regularizer="l2", tol=1e-10, backend=backend,
                    method="newton")
    assert res.converged and res.method == "newton"
    P = res.plan()
    assert np.count_nonzero(P) < 0.25 * P.size  # the sparse regime Newton is for
    np.testing.assert_allclose(res.primal_objective, val_ref, rtol=1e-7)
    np.testing.assert_allclose(res.objective, val_ref, rtol=1e-7)  # no duality gap
    np.testing.assert_allclose(P, P_ref, atol=1e-6 * a.max())
    # the auto choice runs Newton here as well, and L-BFGS reaches the same plan
    auto = smooth_ot(x, y, a, b, reg=lam, regularizer="l2", tol=1e-10, backend=backend)
    assert auto.method.startswith("newton")
    np.testing.assert_allclose(auto.plan(), P, atol=1e-9 * a.max())


def test_smooth_l2_newton_batch_matches_single_solves():
    """A batch (one Newton system over both problems, a zero weight) = separate solves."""
    rng = np.random.default_rng(12)
    x = rng.normal(size=(2, 40, 2))
    y = rng.normal(size=(2, 30, 2)) + np.array([[[0.5, 0.0]], [[1.5, 1.0]]])
    a = rng.random((2, 40)) + 0.1
    a[1, 3] = 0.0
    b = np.full((2, 30), 1.0 / 30)
    a /= a.sum(axis=1, keepdims=True)
    res = smooth_ot(x, y, a, b, reg=1e-4, regularizer="l2", tol=1e-9, method="newton")
    assert res.converged and res.method == "newton"
    for k in range(2):
        one = smooth_ot(x[k], y[k], a[k], b[k], reg=1e-4, regularizer="l2", tol=1e-9,
                        method="lbfgs")
        np.testing.assert_allclose(res.plan()[k], one.plan(), atol=1e-8 * a.max())
        np.testing.assert_allclose(res.transport_cost[k], one.transport_cost, rtol=1e-7)
    assert np.all(res.plan()[1][3] == 0.0)


def test_smooth_l2_newton_tiny_reg_finite():
    """lambda = 1e-4 of the cost scale on larger clouds: Newton converges, nothing overflows."""
    x, y, a, b = _clouds(13, n=200, m=150)
    C = cdist(x, y)
    lam = 1e-4 * C.mean()
    res = smooth_ot(x, y, reg=lam, regularizer="l2", tol=1e-8)
    assert res.converged and res.method.startswith("newton")
    assert np.isfinite(res.objective) and np.all(np.isfinite(res.phi))
    # between the exact OT cost and it plus lambda I(G) for an optimal plan G of ot.emd
    # (optimality of P: <P, C> + lam I(P) <= <G, C> + lam I(G))
    G = ot.emd(a, b, C)
    exact = np.sum(G * C)
    assert exact - 1e-9 <= res.transport_cost <= exact + lam * np.sum(G**2 / np.outer(a, b)) / 2


def test_smooth_method_checks():
    x, y, _, _ = _clouds(14, n=10, m=8)
    with pytest.raises(ValueError, match="regularizer='l2'"):
        smooth_ot(x, y, reg=0.1, regularizer="kl", method="newton")
    with pytest.raises(ValueError, match="method"):
        smooth_ot(x, y, reg=0.1, method="bfgs")
    assert smooth_ot(x, y, reg=0.1, regularizer="kl").method == "lbfgs"


def test_active_pairs_kernel_matches_numpy():
    rng = np.random.default_rng(15)
    B, n, m = 2, 37, 1500  # more columns than one tile
    x, y = rng.normal(size=(B, n, 2)), rng.normal(size=(B, m, 2))
    phi, psi = rng.normal(size=(B, n)) + 1.0, rng.normal(size=(B, m))
    xT = np.ascontiguousarray(np.transpose(x, (0, 2, 1)))
    yT = np.ascontiguousarray(np.transpose(y, (0, 2, 1)))
    mask = np.stack([phi[k][:, None] - psi[k][None, :] - cdist(x[k], y[k]) > 0
                     for k in range(B)])
    for fn in (kern.active_pairs_rows, kern.active_pairs_rows_serial):
        indptr = np.zeros(B * n + 1, np.int64)
        fn(xT, yT, np.zeros((1, 1, 1)), phi, psi, kern.COST_EUCLIDEAN, False, indptr,
           np.zeros(0, np.int32))
        np.cumsum(indptr, out=indptr)
        indices = np.empty(indptr[-1], np.int32)
        fn(xT, yT, np.zeros((1, 1, 1)), phi, psi, kern.COST_EUCLIDEAN, True, indptr, indices)
        for r in range(B * n):
            k, i = divmod(r, n)
            want = np.nonzero(mask[k, i])[0] + k * m
            np.testing.assert_array_equal(indices[indptr[r]:indptr[r + 1]], want)


@pytest.mark.parametrize("dense", [False, True])
@pytest.mark.parametrize("accurate", [True, False])
def test_l2_dual_kernel_matches_numpy(accurate, dense):
    rng = np.random.default_rng(19)
    B, n, m, lam = 2, 45, 1300, 0.3  # more columns than one tile
    x, y = rng.normal(size=(B, n, 2)), rng.normal(size=(B, m, 2))
    phi, psi = rng.normal(size=(B, n)) + 1.0, rng.normal(size=(B, m))
    dphi, dpsi = 0.1 * rng.normal(size=(B, n)), 0.1 * rng.normal(size=(B, m))
    wa, wb = rng.random((B, n)), rng.random((B, m))
    xT = np.ascontiguousarray(np.transpose(x, (0, 2, 1)))
    yT = np.ascontiguousarray(np.transpose(y, (0, 2, 1)))
    C = np.stack([cdist(x[k], y[k]) for k in range(B)])
    kind, Ck = (kern.COST_DENSE, C) if dense else (kern.COST_EUCLIDEAN, np.zeros((1, 1, 1)))
    inv = np.full(B, 1.0 / lam)
    for fn, nq in ((kern.l2_dual_rows, 5), (kern.l2_dual_rows_serial, 1)):
        row, colpart, totals = np.empty((B, n)), np.zeros((nq, B, m)), np.zeros((nq, B, 3))
        fn(xT, yT, Ck, phi, psi, dphi, dpsi, wa, wb, inv, kind, accurate, row, colpart, totals)
        for k in range(B):
            v = np.maximum(phi[k][:, None] - psi[k][None, :] - C[k], 0.0)
            r = np.maximum((phi[k] - dphi[k])[:, None] - (psi[k] - dpsi[k])[None, :] - C[k],
                           0.0)
            w = wa[k][:, None] * wb[k][None, :] / lam
            np.testing.assert_allclose(row[k], (w * v).sum(axis=1), rtol=1e-12)
            np.testing.assert_allclose(colpart[:, k].sum(axis=0), (w * v).sum(axis=0),
                                       rtol=1e-12)
            tot = totals[:, k].sum(axis=0)
            np.testing.assert_allclose(tot[:2], [(w * v * v).sum() / 2, (w * v * C[k]).sum()],
                                       rtol=1e-12)
            # the change of the quadratic term since the reference, only when accurate
            want = (w * (v * v - r * r)).sum() / 2 if accurate else 0.0
            np.testing.assert_allclose(tot[2], want, rtol=1e-10, atol=0.0)


def test_smooth_l2_switches_to_the_pairwise_change_near_the_optimum(monkeypatch):
    # evaluations take dF as F - F(reference) while the change is far above F's rounding;
    # at lambda 1e-6 (costs ~2) L-BFGS needs the pairwise-summed change to reach 1e-8 ...
    from otgrid.pointcloud import smooth_dual as dual

    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(150, 2)), rng.normal(size=(120, 2)) + np.array([1.0, 0.5])
    kw = dict(reg=1e-6, regularizer="l2", tol=1e-8, method="lbfgs", max_iter=20000)
    res = smooth_ot(x, y, **kw)
    assert res.converged and res.marginal_error <= 1e-8
    # ... which the cheap change alone cannot give: L-BFGS stalls at its rounding floor
    monkeypatch.setattr(dual, "ACCURATE_BELOW", 0.0)
    with pytest.warns(ConvergenceWarning):
        cheap = smooth_ot(x, y, **kw)
    assert cheap.status == "stalled" and cheap.marginal_error > 1e-7


@pytest.mark.parametrize("cost", COSTS)
def test_cost_matrix_kernel_matches_cdist(cost):
    rng = np.random.default_rng(17)
    x, y = rng.normal(size=(2, 19, 5)), rng.normal(size=(2, 1300, 5))  # > 1 tile of columns
    xT = np.ascontiguousarray(np.transpose(x, (0, 2, 1)))
    yT = np.ascontiguousarray(np.transpose(y, (0, 2, 1)))
    kind = {"euclidean": kern.COST_EUCLIDEAN, "sqeuclidean": kern.COST_SQEUCLIDEAN,
            "cityblock": kern.COST_CITYBLOCK}[cost]
    for fn in (kern.cost_matrix_rows, kern.cost_matrix_rows_serial):
        out = np.empty((2, 19, 1300))
        fn(xT, yT, kind, out)
        for k in range(2):
            np.testing.assert_allclose(out[k], cdist(x[k], y[k], metric=cost), rtol=1e-14)


def test_laplacian_pcg_matches_dense_solve():
    from otgrid.kernels import laplacian_numba as lap

    rng = np.random.default_rng(16)
    R, K = 12, 9
    A = rng.random((R, K)) < 0.3
    A[5] = False  # an isolated row node
    indptr = np.concatenate([[0], np.cumsum(A.sum(axis=1))]).astype(np.int64)
    indices = np.concatenate([np.nonzero(A[r])[0] for r in range(R)]).astype(np.int32)
    ar, bc = rng.random(R) + 0.1, rng.random(K) + 0.1
    W = A * np.outer(ar, bc)
    L = np.block([[np.diag(W.sum(1)), -W], [-W.T, np.diag(W.sum(0))]])
    shift = rng.random(R + K) * 1e-3 + 1e-6
    g = rng.normal(size=R + K)
    z, out = rng.normal(size=R + K), np.empty(R + K)
    dg = np.empty(R + K)
    lap.laplacian_diagonal(indptr, indices, ar, bc, dg)
    np.testing.assert_allclose(dg, np.diag(L), rtol=1e-14, atol=0)
    lap.laplacian_apply(indptr, indices, ar, bc, dg, shift, z, out)
    np.testing.assert_allclose(out, (L + np.diag(shift)) @ z, rtol=1e-12, atol=1e-14)
    x = np.empty(R + K)
    its = lap.laplacian_pcg(indptr, indices, ar, bc, dg, shift, g, 1e-12, 10_000, x)
    assert 0 < its < 10_000
    np.testing.assert_allclose(x, np.linalg.solve(L + np.diag(shift), g), rtol=1e-8)


@pytest.mark.parametrize("cost", ["euclidean", "sqeuclidean"])
def test_smooth_kl_matches_pot_sinkhorn(backend, cost):
    """The KL dual of Lemma 4.1 has the entropic plan of POT with reg_POT = lambda."""
    x, y, a, b = _clouds(5, weights=True)
    lam = 0.1
    M, P, f_pot, _ = _pot_sinkhorn(x, y, a, b, lam, cost)
    # tol 1e-7: L-BFGS works on F, whose decrease near the optimum is O(err^2) and reaches the
    # rounding of F (~1e-16 relative) at a marginal error near 1e-8 (SciPy 1.17 stalls there)
    res = smooth_ot(x, y, a, b, reg=lam, regularizer="kl", cost=cost, tol=1e-7,
                    backend=backend)
    assert res.converged
    np.testing.assert_allclose(res.plan(), P, atol=2e-8)  # entries within the marginal error
    np.testing.assert_allclose(res.transport_cost, np.sum(P * M), rtol=1e-6)
    # phi - psi - lambda = f_pot + g_pot (pairwise), i.e. phi = f_pot + const
    np.testing.assert_allclose(_centred(res.phi, a), _centred(f_pot, a), atol=1e-6)


# ------------------------------------------------------------------------------ reg -> 0
@pytest.mark.parametrize("cost", COSTS)
def test_small_reg_approaches_exact_ot(cost):
    """Equal-size uniform clouds: emd2 == assignment; the regularized solutions bracket it."""
    n = 14
    rng = np.random.default_rng(6)
    x, y = rng.random((n, 2)), rng.random((n, 2))
    C = cdist(x, y, metric=cost)
    rows, cols = linear_sum_assignment(C)
    exact = C[rows, cols].mean()
    u = np.full(n, 1.0 / n)
    np.testing.assert_allclose(ot.emd2(u, u, C), exact, rtol=1e-12)
    errs = []
    for reg in (1e-1, 1e-2, 1e-3):
        reg_abs = reg * C.max()
        res = sinkhorn(x, y, reg=reg_abs, cost=cost, tol=1e-10)
        assert res.converged
        # 0 <= <P, C> - OT <= eps log(n) (from OT_eps <= OT + eps KL(P* | a b^T), KL >= 0)
        assert exact - 1e-9 <= res.transport_cost <= exact + reg_abs * np.log(n) + 1e-9
        errs.append(res.transport_cost - exact)
        for regularizer, bound, stol in (("l2", reg_abs * n / 2, 1e-9),
                                         ("kl", reg_abs * np.log(n), 1e-7)):
            sm = smooth_ot(x, y, reg=reg_abs, regularizer=regularizer, cost=cost, tol=stol)
            assert sm.converged
            # Sanjabi et al. Lemma 3.2 / Corollary 3.2.1: d_lam - lam I* <= d <= d_lam
            assert sm.objective - bound - 1e-8 <= exact <= sm.objective + 1e-8
    assert errs[2] < errs[0]
    assert errs[2] <= 1e-3 * C.max() * np.log(n)


@pytest.mark.parametrize("cost", ["euclidean", "sqeuclidean"])
def test_tiny_reg_is_finite_and_close_to_emd(cost):
    x, y, a, b = _clouds(7, n=25, m=25)
    C = cdist(x, y, metric=cost)
    reg = 1e-4 * C.max()
    exact = ot.emd2(a, b, C)
    res = sinkhorn(x, y, reg=reg, cost=cost, tol=1e-8, max_iter=50_000)
    assert res.converged
    P = res.plan()
    for arr in (res.f, res.g, P):
        assert np.all(np.isfinite(arr))
    assert exact - 1e-9 <= res.transport_cost <= exact + reg * np.log(25) + 1e-9
    for regularizer in ("l2", "kl"):
        sm = smooth_ot(x, y, reg=reg, regularizer=regularizer, cost=cost, tol=1e-6)
        assert np.all(np.isfinite(sm.f)) and np.all(np.isfinite(sm.g))
        assert sm.converged, sm.message
        np.testing.assert_allclose(sm.transport_cost, exact, rtol=1e-3)


# ---------------------------------------------------------------------- backends and the plan
@pytest.mark.parametrize("d", [1, 2, 5])
def test_numpy_and_numba_agree(d):
    """d = 5 runs the numba backend's precomputed-cost path; d = 1 and 2 the tiled one."""
    x, y, a, b = _clouds(8, n=50, m=37, d=d, weights=True)
    for solve in (lambda **kw: sinkhorn(x, y, a, b, reg=0.1, **kw),
                  lambda **kw: smooth_ot(x, y, a, b, reg=0.1, regularizer="l2", **kw),
                  lambda **kw: smooth_ot(x, y, a, b, reg=0.1, regularizer="kl", **kw)):
        # tol 1e-7: the KL dual by L-BFGS stalls near 1e-8 (F decreases by O(err^2), see
        # test_smooth_kl_matches_pot_sinkhorn)
        r1, r2 = solve(backend="numpy", tol=1e-7), solve(backend="numba", tol=1e-7)
        assert r1.backend == "numpy" and r2.backend == "numba"
        assert r1.converged and r2.converged
        np.testing.assert_allclose(r2.f, r1.f, atol=1e-6)
        np.testing.assert_allclose(r2.g, r1.g, atol=1e-6)
        np.testing.assert_allclose(r2.transport_cost, r1.transport_cost, rtol=1e-7)


@pytest.mark.parametrize("solver", ["sinkhorn", "l2", "kl"])
def test_apply_plan_matches_dense_plan(backend, solver):
    x, y, a, b = _clouds(9, n=33, m=21, weights=True)
    if solver == "sinkhorn":
        res = sinkhorn(x, y, a, b, reg=0.1, backend=backend)
    else:
        res = smooth_ot(x, y, a, b, reg=0.1, regularizer=solver, backend=backend)
    P = res.plan()
    rng = np.random.default_rng(0)
    v, V = rng.normal(size=21), rng.normal(size=(21, 3))
    u, U = rng.normal(size=33), rng.normal(size=(33, 2))
    np.testing.assert_allclose(res.apply_plan(v), P @ v, rtol=1e-10, atol=1e-15)
    np.testing.assert_allclose(res.apply_plan(V), P @ V, rtol=1e-10, atol=1e-15)
    np.testing.assert_allclose(res.apply_plan_T(u), P.T @ u, rtol=1e-10, atol=1e-15)
    np.testing.assert_allclose(res.apply_plan_T(U), P.T @ U, rtol=1e-10, atol=1e-15)
    with pytest.raises(ValueError, match="v must have shape"):
        res.apply_plan(np.ones(33))


def test_plan_too_large_raises_with_size():
    x, y, _, _ = _clouds(10)
    res = sinkhorn(x, y, reg=0.5)
    with pytest.raises(ValueError, match=r"1,200 entries.*apply_plan"):
        res.plan(max_bytes=1000)


def test_batch_matches_single_solves():
    rng = np.random.default_rng(11)
    X = rng.normal(size=(3, 20, 2))
    Y = rng.normal(size=(3, 15, 2)) + 1.0
    A = rng.random((3, 20)) + 0.1
    A /= A.sum(axis=1, keepdims=True)
    for solve in (lambda *args, **kw: sinkhorn(*args, reg=0.1, tol=1e-10, **kw),
                  lambda *args, **kw: smooth_ot(*args, reg=0.1, tol=1e-10, **kw)):
        batch = solve(X, Y, A)
        assert batch.batched and batch.f.shape == (3, 20) and batch.g.shape == (3, 15)
        assert batch.marginal_error.shape == (3,)
        for k in range(3):
            single = solve(X[k], Y[k], A[k])
            np.testing.assert_allclose(batch.transport_cost[k], single.transport_cost,
                                       rtol=1e-8)
            np.testing.assert_allclose(batch.plan()[k], single.plan(), atol=1e-10)
        v = rng.normal(size=(3, 15))
        np.testing.assert_allclose(batch.apply_plan(v),
                                   np.einsum("bij,bj->bi", batch.plan(), v), atol=1e-12)


def test_warm_start_saves_iterations():
    x, y, _, _ = _clouds(12, n=80, m=80)
    first = sinkhorn(x, y, reg=0.02, cost="sqeuclidean", tol=1e-9)
    y2 = y + 0.01
    cold = sinkhorn(x, y2, reg=0.02, cost="sqeuclidean", tol=1e-9)
    warm = sinkhorn(x, y2, reg=0.02, cost="sqeuclidean", tol=1e-9, warm_start=first)
    assert warm.converged and cold.converged
    assert warm.iterations < cold.iterations
    np.testing.assert_allclose(warm.transport_cost, cold.transport_cost, rtol=1e-8)
    s1 = smooth_ot(x, y, reg=0.02, tol=1e-8)
    s_cold = smooth_ot(x, y2, reg=0.02, tol=1e-8)
    s_warm = smooth_ot(x, y2, reg=0.02, tol=1e-8, warm_start=(s1.f, s1.g))
    assert s_warm.iterations < s_cold.iterations


def test_float32_matches_float64(backend):
    x, y, a, b = _clouds(13, weights=True)
    r64 = sinkhorn(x, y, a, b, reg=0.1, backend=backend)
    r32 = sinkhorn(x, y, a, b, reg=0.1, dtype=np.float32, backend=backend)
    assert r32.f.dtype == np.float32 and r32.plan().dtype == np.float32
    assert r32.apply_plan(np.ones(30)).dtype == np.float32
    assert r32.converged
    np.testing.assert_allclose(r32.transport_cost, r64.transport_cost, rtol=1e-5)
    np.testing.assert_allclose(r32.f, r64.f, atol=1e-4)
    s32 = smooth_ot(x, y, a, b, reg=0.1, dtype=np.float32, backend=backend)
    s64 = smooth_ot(x, y, a, b, reg=0.1, backend=backend)
    np.testing.assert_allclose(s32.transport_cost, s64.transport_cost, rtol=1e-5)


def test_one_dimensional_points_and_single_point():
    x = np.array([0.0, 1.0, 2.0])
    y = np.array([0.5, 1.5])
    res = sinkhorn(x, y, reg=0.01)
    assert res.f.shape == (3,) and res.x.shape == (3, 1)
    np.testing.assert_allclose(res.transport_cost, ot.emd2(np.full(3, 1 / 3), np.full(2, 0.5),
                                                           cdist(x[:, None], y[:, None])),
                               atol=0.01 * np.log(3))
    one = sinkhorn([[1.0, 2.0]], [[0.0, 0.0], [3.0, 4.0]], reg=0.1)
    np.testing.assert_allclose(one.transport_cost, (np.sqrt(5) + np.sqrt(8)) / 2, rtol=1e-9)


def test_zero_weights_are_allowed():
    x, y, a, b = _clouds(14, n=20, m=20, weights=True)
    a[3] = 0.0
    b[[0, 7]] = 0.0
    a, b = a / a.sum(), b / b.sum()
    _, P, _, _ = _pot_sinkhorn(x[a > 0], y[b > 0], a[a > 0], b[b > 0], 0.1, "euclidean")
    res = sinkhorn(x, y, a, b, reg=0.1, tol=1e-12)
    np.testing.assert_allclose(res.plan()[np.ix_(a > 0, b > 0)], P, atol=1e-12, rtol=1e-7)
    assert np.all(res.plan()[a == 0] == 0) and np.all(res.plan()[:, b == 0] == 0)


# ------------------------------------------------------------------ statistics and callbacks
def test_eq15_statistic_estimates_plan_mass():
    x, y, a, b = _clouds(15, weights=True)
    res = smooth_ot(x, y, a, b, reg=0.2, n_samples=200_000, rng=1)
    m = res.plan() / np.outer(a, b)  # m_ij = pi_ij / (a_i b_j)
    mean = np.sum(np.outer(a, b) * m)
    sd = np.sqrt(np.sum(np.outer(a, b) * m**2) - mean**2) / np.sqrt(200_000)
    assert abs(res.termination_statistic - mean) <= 5 * sd
    np.testing.assert_allclose(mean, 1.0, atol=1e-6)  # converged: pi has mass 1
    np.testing.assert_allclose(res.plan_mass, 1.0, atol=1e-6)


def test_non_convergence_warns_and_reports():
    x, y, _, _ = _clouds(16)
    with pytest.warns(ConvergenceWarning, match="increase max_iter"):
        res = sinkhorn(x, y, reg=1e-3, max_iter=3)
    assert not res.converged and res.status == "max_iter" and res.iterations == 3
    with pytest.warns(ConvergenceWarning, match="increase max_iter"):
        sm = smooth_ot(x, y, reg=1e-3, max_iter=3)
    assert not sm.converged and sm.status == "max_iter"


def test_callback_sees_progress_and_can_stop():
    x, y, _, _ = _clouds(17)
    seen: list[RegularizedInfo] = []

    def cb(info):
        seen.append(info)
        return info.iteration >= 4

    res = sinkhorn(x, y, reg=0.01, callback=cb, eps_scaling=False)
    assert res.status == "callback" and res.iterations == 4
    assert [i.iteration for i in seen] == [1, 2, 3, 4]
    assert len(res.history) == 4 and np.all(res.history.reg == 0.01)
    seen.clear()
    sm = smooth_ot(x, y, reg=0.01, callback=cb)
    assert sm.status == "callback" and seen[-1].iteration == 4


# ------------------------------------------------------------------------------ properties
@settings(max_examples=12, deadline=None)
@given(seed=st.integers(0, 10_000), shift=st.floats(-5, 5), cost=st.sampled_from(COSTS))
@example(seed=291, shift=0.0, cost="sqeuclidean")  # a Newton step once added 1e12 to g
def test_symmetry_and_translation(seed, shift, cost):
    """Swapping the clouds transposes the plan; translating both changes nothing."""
    x, y, a, b = _clouds(seed, n=9, m=7, weights=True)
    res = sinkhorn(x, y, a, b, reg=0.3, cost=cost, tol=1e-11, backend="numpy")
    swap = sinkhorn(y, x, b, a, reg=0.3, cost=cost, tol=1e-11, backend="numpy")
    moved = sinkhorn(x + shift, y + shift, a, b, reg=0.3, cost=cost, tol=1e-11,
                     backend="numpy")
    np.testing.assert_allclose(swap.plan(), res.plan().T, atol=1e-12)
    np.testing.assert_allclose(moved.transport_cost, res.transport_cost, rtol=1e-8)
    np.testing.assert_allclose(_centred(swap.g, a), _centred(res.f, a), atol=1e-8)


# ------------------------------------------------------------------------------ kernels
def test_fast_exp_accuracy():
    """Against exp in 80-bit extended precision (x86 long double): measured 3.7e-15."""
    t = np.concatenate([np.linspace(kern.EXP_LO, kern.EXP_HI, 20001), [-0.0, 1e-3, -7.25]])
    got = np.array([kern.fast_exp(v) for v in t], dtype=np.longdouble)
    ref = np.exp(t.astype(np.longdouble))
    rtol = 1e-14 if np.finfo(np.longdouble).eps < 1e-18 else 2e-14  # 80-bit or plain double
    assert np.max(np.abs(got / ref - 1)) <= rtol
    assert kern.fast_exp(kern.EXP_LO - 1.0) == 0.0


@pytest.mark.parametrize("cost", COSTS)
@pytest.mark.parametrize("d, m", [(3, 300), (2, 1100)])
def test_lse_kernel_matches_scipy_with_any_shift(cost, d, m):
    """Fast path (good shift) and the running-maximum path (shift far off) both exact (d = 2:
    the fused loops, over two tiles)."""
    rng = np.random.default_rng(18)
    x, y = rng.normal(size=(300, d)), rng.normal(size=(m, d))
    h = rng.normal(size=m)
    C = cdist(x, y, metric=cost)
    inv = 7.0
    ref = logsumexp(h[None, :] - C * inv, axis=1)
    for shift in (ref / inv, ref / inv + rng.normal(size=300) * 50, np.full(300, -1e3)):
        lse = np.empty((1, 300))
        mc = np.empty((1, 300))
        kind = {"euclidean": kern.COST_EUCLIDEAN, "sqeuclidean": kern.COST_SQEUCLIDEAN,
                "cityblock": kern.COST_CITYBLOCK}[cost]
        for fn in (kern.lse_rows, kern.lse_rows_serial):
            fn(np.ascontiguousarray(x.T[None]), np.ascontiguousarray(y.T[None]),
               np.zeros((1, 1, 1)), h[None], shift[None], np.array([inv]), kind, True, lse, mc)
            np.testing.assert_allclose(lse[0] - shift * inv, ref - 0.0, rtol=1e-12, atol=1e-11)
            w = np.exp(h[None, :] - C * inv - ref[:, None])
            np.testing.assert_allclose(mc[0], (w * C).sum(1), rtol=1e-11)


@pytest.mark.parametrize("d", [2, 3])
def test_exp_apply_kernel_matches_dense(d):
    """``sum_j exp(h_j + (shift_i - c_ij) inv) V_kj`` against NumPy, over two tiles."""
    rng = np.random.default_rng(19)
    n, m = 40, 1100
    x, y = rng.normal(size=(n, d)), rng.normal(size=(m, d))
    h, shift, inv = rng.normal(size=m), rng.normal(size=n), 3.0
    V = rng.normal(size=(1, 2, m))
    xT, yT = np.ascontiguousarray(x.T[None]), np.ascontiguousarray(y.T[None])
    for cost, kind in (("euclidean", kern.COST_EUCLIDEAN), ("sqeuclidean", kern.COST_SQEUCLIDEAN),
                       ("cityblock", kern.COST_CITYBLOCK)):
        E = np.exp(h[None, :] + (shift[:, None] - cdist(x, y, metric=cost)) * inv)
        for fn in (kern.exp_apply_rows, kern.exp_apply_rows_serial):
            out = np.empty((1, n, 2))
            fn(xT, yT, np.zeros((1, 1, 1)), h[None], shift[None], np.array([inv]), kind, V, out)
            assert np.all(np.abs(out[0] - E @ V[0].T) <= 1e-12 * (E @ np.abs(V[0]).T))


def test_rows_with_one_term_above_the_fast_range():
    """A row whose largest term exceeds EXP_HI (clamped by the fast exponential) and
    dominates its sum is recomputed exactly (it once passed as exact, its log-sum-exp 40)."""
    y = np.array([[0.0], [10.0], [20.0], [30.0]])
    x = np.array([[0.0], [1.0], [29.0]])
    h = np.zeros(4)
    inv = 10.0
    C = cdist(x, y, metric="cityblock")
    for shift in ([10.0, 10.0, 10.0], [18.2, 5.0, 7.0], [4.1, 4.0, 3.95]):
        shift = np.asarray(shift)
        t = h[None, :] + (shift[:, None] - C) * inv  # one term far above 40 in the first rows
        ref = logsumexp(t, axis=1)
        args = (np.ascontiguousarray(x.T[None]), np.ascontiguousarray(y.T[None]),
                np.zeros((1, 1, 1)))
        for fn in (kern.lse_rows, kern.lse_rows_serial):
            lse, mc = np.empty((1, 3)), np.empty((1, 3))
            fn(*args, h[None], shift[None], np.array([inv]), kern.COST_CITYBLOCK, True, lse,
               mc)
            np.testing.assert_allclose(lse[0] - shift * inv, ref - shift * inv, rtol=1e-12,
                                       atol=1e-10)
        for fn, nq in ((kern.sinkhorn_rows_cols, 2), (kern.sinkhorn_rows_cols_serial, 1)):
            lse, mc, colpart = np.empty((1, 3)), np.empty((1, 3)), np.zeros((nq, 1, 4))
            fn(*args, h[None], (shift * inv)[None], np.array([inv]), kern.COST_CITYBLOCK,
               np.ones((1, 3)), False, lse, mc, colpart)
            np.testing.assert_allclose(lse[0], ref, rtol=1e-12, atol=1e-10)
            np.testing.assert_allclose(colpart.sum(axis=0)[0],
                                       np.exp(t - ref[:, None]).sum(axis=0), rtol=1e-12,
                                       atol=1e-300)


def _fused_case(rng, B, n, m, d, cost):
    """Points, ``h``, row weights and ``1 / eps`` for the fused pass, with SciPy's row
    log-sum-exps ``ref`` of ``t = h_j - c_ij inv`` and the columns ``ref_col`` of the
    row-normalised plan."""
    x, y = rng.normal(size=(B, n, d)), rng.normal(size=(B, m, d))
    h = rng.normal(size=(B, m))
    wa = rng.random((B, n)) + 0.1
    inv = np.array([7.0, 3.0])
    C = np.stack([cdist(x[k], y[k], metric=cost) for k in range(B)])
    t = h[:, None, :] - C * inv[:, None, None]
    ref = logsumexp(t, axis=2)
    ref_col = (wa[:, :, None] * np.exp(t - ref[:, :, None])).sum(axis=1)
    kind = {"euclidean": kern.COST_EUCLIDEAN, "sqeuclidean": kern.COST_SQEUCLIDEAN,
            "cityblock": kern.COST_CITYBLOCK}[cost]
    return x, y, h, wa, inv, C, t, ref, ref_col, kind


@pytest.mark.parametrize("d, m", [(3, 50), (2, 1100)])
@pytest.mark.parametrize("cost", COSTS)
def test_fused_sinkhorn_kernel_matches_scipy(cost, d, m):
    """One pass: row log-sum-exps and the columns of the row-normalised plan (batch of 2).

    Shifts: good (terms O(1)), random (some rows take the running-maximum path), far off.
    d = 3: costs through the tile buffer; d = 2: the fused loops (two tiles, the second
    partial).
    """
    rng = np.random.default_rng(21)
    B, n = 2, 70
    x, y, h, wa, inv, C, t, ref, ref_col, kind = _fused_case(rng, B, n, m, d, cost)
    xT = np.ascontiguousarray(np.transpose(x, (0, 2, 1)))
    yT = np.ascontiguousarray(np.transpose(y, (0, 2, 1)))
    for shift in (ref / inv[:, None], ref / inv[:, None] + rng.normal(size=(B, n)) * 50,
                  np.full((B, n), -1e3)):
        for fn, nq in ((kern.sinkhorn_rows_cols, 5), (kern.sinkhorn_rows_cols_serial, 1)):
            lse, mc = np.empty((B, n)), np.empty((B, n))
            colpart = np.zeros((nq, B, m))
            hs = shift * inv[:, None]
            fn(xT, yT, np.zeros((1, 1, 1)), h, hs, inv, kind, wa, True, lse, mc, colpart)
            np.testing.assert_allclose(lse - hs, ref, rtol=1e-12, atol=1e-11)
            np.testing.assert_allclose(colpart.sum(axis=0), ref_col, rtol=1e-12)
            np.testing.assert_allclose(mc, (np.exp(t - ref[:, :, None]) * C).sum(2), rtol=1e-11)
            colpart[:] = 0.0  # without the mean costs (other loops in the kernel)
            fn(xT, yT, np.zeros((1, 1, 1)), h, hs, inv, kind, wa, False, lse, mc, colpart)
            np.testing.assert_allclose(lse - hs, ref, rtol=1e-12, atol=1e-11)
            np.testing.assert_allclose(colpart.sum(axis=0), ref_col, rtol=1e-12)


def test_a_literal_cost_kind_compiles_one_kind_and_computes_what_an_int_does():
    """``CostKind`` (what the solvers pass) types as a Numba literal, so the kernel compiles
    the loop of that kind only; the results are those of the ``int`` kind (to rounding: the
    loops are compiled with fastmath, so two compilations may sum in different orders)."""
    from numba import types

    rng = np.random.default_rng(4)
    x, y, h, wa, inv, _, _, ref, _, kind = _fused_case(rng, 1, 30, 40, 2, "euclidean")
    xT = np.ascontiguousarray(np.transpose(x, (0, 2, 1)))
    yT = np.ascontiguousarray(np.transpose(y, (0, 2, 1)))
    hs = ref
    outs = []
    for k in (kind, kern.CostKind(kind)):
        lse, mc, colpart = np.empty((1, 30)), np.empty((1, 30)), np.zeros((1, 1, 40))
        kern.sinkhorn_rows_cols_serial(xT, yT, np.zeros((1, 1, 1)), h, hs, inv, k, wa, True,
                                       lse, mc, colpart)
        outs.append((lse, mc, colpart))
    for a, b in zip(*outs, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-13, atol=1e-13)
    kinds = [sig[6] for sig in kern.sinkhorn_rows_cols_serial.signatures]
    assert types.literal(kind) in kinds and types.int64 in kinds


def test_fast_exp32_accuracy():
    t = np.concatenate([np.linspace(kern.EXP32_LO, kern.EXP_HI, 20001), [-0.0, 1e-3, -7.25]])
    t = t.astype(np.float32)
    got = np.array([kern.fast_exp32(v) for v in t], dtype=np.float64)
    ref = np.exp(t.astype(np.float64))
    np.testing.assert_allclose(got, ref, rtol=4.5e-7)
    near = np.abs(t) <= 30  # the terms that matter against a row sum of order 1
    np.testing.assert_allclose(got[near], ref[near], rtol=2.5e-7)
    low = kern.fast_exp32(np.float32(kern.EXP32_LO))
    assert kern.fast_exp32(np.float32(kern.EXP32_LO - 1.0)) == low
    assert kern.fast_exp32(np.float32(-1e30)) == low < 2e-38


@pytest.mark.parametrize("cost", COSTS)
def test_fused_sinkhorn_kernel_float32(cost):
    """The float32 pass: rows to float32 rounding, columns summed in float64 (batch of 2)."""
    rng = np.random.default_rng(25)
    B, n, m = 2, 150, 90  # n > FLUSH32: the column sums are flushed into float64 twice
    x, y, h, wa, inv, _, _, ref, ref_col, kind = _fused_case(rng, B, n, m, 2, cost)
    f32 = np.float32
    xT = np.ascontiguousarray(np.transpose(x, (0, 2, 1)), dtype=f32)
    yT = np.ascontiguousarray(np.transpose(y, (0, 2, 1)), dtype=f32)
    # the reference on the float32-rounded points and h (what the kernel is given)
    C32 = np.stack([cdist(x[k].astype(f32).astype(float), y[k].astype(f32).astype(float),
                          metric=cost) for k in range(B)])
    h32 = h.astype(f32)
    for shift in (ref, ref + rng.normal(size=(B, n)) * 50, np.full((B, n), -1e3)):
        hs = shift.astype(f32)
        t32 = h32.astype(float)[:, None, :] + hs.astype(float)[:, :, None] \
            - C32 * inv[:, None, None]
        ref32 = logsumexp(t32, axis=2)
        for fn, nq in ((kern.sinkhorn_rows_cols, 5), (kern.sinkhorn_rows_cols_serial, 1)):
            lse, mc = np.empty((B, n)), np.empty((B, n))
            colpart = np.zeros((nq, B, m))
            fn(xT, yT, np.zeros((1, 1, 1), f32), h32, hs, inv.astype(f32), kind, wa, True,
               lse, mc, colpart)
            # float32 t_ij: absolute errors ~ 6e-8 x the magnitude of its terms (|hs| <= 1e3)
            assert np.all(np.abs(lse - ref32) <= 2e-5 + 1.2e-7 * np.abs(hs))
            np.testing.assert_allclose(colpart.sum(axis=0), ref_col, rtol=5e-5)
            w = np.exp(t32 - ref32[:, :, None])
            np.testing.assert_allclose(mc, (w * C32).sum(2), rtol=2e-4)


def _dense_marginal_error(res) -> float:
    P = res.plan()
    return float(np.abs(P.sum(axis=1) - res.a).sum() + np.abs(P.sum(axis=0) - res.b).sum())


def test_mixed_precision_certified_against_pot():
    """Float32 iterations, a float64 finish: POT's cost, and the error the dense plan has."""
    x, y, a, b = _clouds(26, n=1100, m=1000, weights=True)  # 1.1e6 pairs: on by default
    res = sinkhorn(x, y, a, b, reg=0.05, tol=1e-6)
    assert res.converged and 0 < res.float32_passes < res.passes
    # the float32 iterations come first, the last (stopping) one is float64
    low = res.history.float32
    assert low.sum() == res.float32_passes and low[0] and not low[-1]
    assert np.all(np.diff(low.astype(int)) <= 0)
    err = _dense_marginal_error(res)
    assert err <= 1e-6
    np.testing.assert_allclose(res.marginal_error, err, rtol=1e-6, atol=1e-12)
    M = cdist(x, y)
    cost = float(ot.sinkhorn2(a, b, M, 0.05, stopThr=1e-10, numItermax=100_000))
    np.testing.assert_allclose(res.transport_cost, cost, rtol=1e-5)
    off = sinkhorn(x, y, a, b, reg=0.05, tol=1e-6, mixed_precision=False)
    assert off.float32_passes == 0
    np.testing.assert_allclose(_centred(res.f, a), _centred(off.f, a), atol=1e-5)


def test_mixed_precision_below_the_float32_floor():
    """A tol float32 cannot reach: the float64 iterations take over and meet it."""
    x, y, a, b = _clouds(27, n=400, m=300, weights=True)
    res = sinkhorn(x, y, a, b, reg=0.05, tol=1e-11, mixed_precision=True)
    assert res.converged and 0 < res.float32_passes < res.passes
    assert _dense_marginal_error(res) <= 1e-11
    f_ref = _pot_sinkhorn(x, y, a, b, 0.05, "euclidean")[2]
    np.testing.assert_allclose(_centred(res.f, a), _centred(f_ref, a), atol=1e-9)


def test_mixed_precision_batch_with_zero_weights():
    rng = np.random.default_rng(28)
    X, Y = rng.normal(size=(2, 300, 2)), rng.normal(size=(2, 250, 2)) + 1.0
    A = np.full((2, 300), 1 / 300)
    Bw = rng.random((2, 250))
    Bw[:, ::7] = 0.0
    Bw /= Bw.sum(axis=1, keepdims=True)
    res = sinkhorn(X, Y, A, Bw, reg=0.05, tol=1e-8, mixed_precision=True)
    assert res.converged and res.float32_passes > 0
    for k in range(2):
        one = sinkhorn(X[k], Y[k], A[k], Bw[k], reg=0.05, tol=1e-8, mixed_precision=False)
        np.testing.assert_allclose(res.transport_cost[k], one.transport_cost, rtol=1e-7)
        keep = Bw[k] > 0
        np.testing.assert_allclose(_centred(res.g[k][keep], Bw[k][keep]),
                                   _centred(one.g[keep], Bw[k][keep]), atol=1e-6)


def test_mixed_precision_stopped_early_reports_float64_errors():
    x, y, a, b = _clouds(29, n=300, m=300)
    with pytest.warns(ConvergenceWarning):
        res = sinkhorn(x, y, a, b, reg=0.01, tol=1e-9, max_iter=3, mixed_precision=True,
                       eps_scaling=False, multiscale=False)
    assert not res.converged and res.float32_passes == 3 and res.iterations == 3
    assert res.history.float32.tolist() == [True, True, True]
    np.testing.assert_allclose(res.marginal_error, _dense_marginal_error(res), rtol=1e-9)
    with pytest.raises(TypeError, match="mixed_precision"):
        sinkhorn(x, y, reg=0.1, mixed_precision="yes")


def test_fused_and_two_pass_iterations_agree():
    """The Numba solve (fused passes) against the NumPy one (two passes per iteration)."""
    x, y, a, b = _clouds(22, n=60, m=45, weights=True)
    r1 = sinkhorn(x, y, a, b, reg=0.02, backend="numba")
    r2 = sinkhorn(x, y, a, b, reg=0.02, backend="numpy")
    assert r1.passes < r2.passes
    np.testing.assert_allclose(r1.f, r2.f, atol=1e-9)
    np.testing.assert_allclose(r1.transport_cost, r2.transport_cost, rtol=1e-9)


@pytest.mark.parametrize("cost", ["euclidean", "sqeuclidean"])
@pytest.mark.parametrize("mixed", [False, True])
def test_multiscale_start_matches_pot(cost, mixed):
    """A subsample's solution as the start: same plan as POT's log-domain Sinkhorn.

    ``mixed``: the subsample's solve and its c-transform onto every point run in float32.
    """
    x, y, a, b = _clouds(23, n=300, m=260, weights=True)
    res = sinkhorn(x, y, a, b, reg=0.05, cost=cost, multiscale=True, tol=1e-9,
                   mixed_precision=mixed)
    assert res.converged and (res.float32_passes > 0) == mixed
    M, P, f_ref, _ = _pot_sinkhorn(x, y, a, b, 0.05, cost)
    np.testing.assert_allclose(res.transport_cost, np.sum(P * M), rtol=1e-8)
    np.testing.assert_allclose(_centred(res.f, a), _centred(f_ref, a), atol=1e-7)
    # the full problem ran at reg from the start (no eps-scaling stages)
    assert np.all(res.history.reg == 0.05)


def test_multiscale_batch_and_option_check():
    X = np.random.default_rng(24).normal(size=(2, 80, 2))
    Y = X[::-1] + 0.5
    both = sinkhorn(X, Y, reg=0.1, multiscale=True)
    for k in range(2):
        one = sinkhorn(X[k], Y[k], reg=0.1, multiscale=False)
        np.testing.assert_allclose(both.transport_cost[k], one.transport_cost, rtol=1e-6)
    with pytest.raises(TypeError, match="multiscale must be None, True or False"):
        sinkhorn(X[0], Y[0], reg=0.1, multiscale="yes")


# ------------------------------------------------------------------------------ bad input
@pytest.mark.parametrize(("kwargs", "match"), [
    ({"x": [[np.nan, 0.0]]}, "x contains 1 non-finite"),
    ({"a": [0.5, -0.5]}, "a must be non-negative"),
    ({"a": [0.3, 0.3]}, "equal totals"),
    ({"a": [0.0, 0.0]}, "a has zero total"),
    ({"b": [1.0]}, r"b must have shape \(2,\)"),
    ({"y": [[0.0, 1.0, 2.0]]}, "same dimension"),
    ({"x": np.zeros((0, 2))}, "x is empty"),
    ({"x": np.zeros((2, 2, 2))}, "both batches"),
    ({"reg": 0.0}, "reg must be a positive"),
    ({"reg": -1.0}, "reg must be a positive"),
    ({"reg": "big"}, "reg must be a positive"),
    ({"reg": 1e-300}, r"reg = 1e-300 is below 1e-09 of the largest cost"),
    ({"reg": 1e-12}, r"use reg >= 1\.41e-09"),
    ({"x": [[1e200, 0.0], [0.0, 0.0]]}, r"x has coordinates beyond \+-1e\+150"),
    ({"tol": None}, "tol must be a number; got NoneType None"),
    ({"cost": "cosine"}, "cost must be one of 'euclidean', 'sqeuclidean', 'cityblock'"),
    ({"backend": "gpu"}, "backend must be one of 'auto', 'numpy', 'numba', 'cuda'"),
    ({"tol": 0.0}, "tol must be a positive"),
    ({"max_iter": 0}, "max_iter must be >= 1"),
    ({"dtype": np.int64}, "dtype must be"),
    ({"warm_start": (np.zeros(3), np.zeros(1))}, "warm_start potentials must have shapes"),
    ({"warm_start": "previous"}, "warm_start must be a RegularizedResult"),
    ({"callback": 3}, "callback must be callable"),
])
@pytest.mark.parametrize("solver", [sinkhorn, smooth_ot])
def test_bad_input_names_the_argument(solver, kwargs, match):
    args = {"x": [[0.0, 0.0], [1.0, 0.0]], "y": [[0.0, 1.0]], "a": None, "b": None,
            "reg": 0.1}
    if "b" in kwargs:  # two target points for the weight-shape case
        args["y"] = [[0.0, 1.0], [1.0, 1.0]]
    args.update(kwargs)
    x, y, a, b = args.pop("x"), args.pop("y"), args.pop("a"), args.pop("b")
    with pytest.raises((ValueError, TypeError), match=match):
        solver(x, y, a, b, **args)


def test_masked_points_or_weights_are_refused():
    """Before, a masked array's mask was silently ignored (masked points took part)."""
    x, y, a, _ = _clouds(19, n=5, m=5, weights=True)
    xm = np.ma.masked_array(x, np.zeros_like(x, dtype=bool))
    xm[1, 0] = np.ma.masked
    with pytest.raises(TypeError, match=r"x is a masked array with 1 masked entries.*filled"):
        sinkhorn(xm, y, reg=0.1)
    with pytest.raises(TypeError, match=r"a is a masked array"):
        smooth_ot(x, y, np.ma.masked_less(a, np.median(a)), reg=0.1)
    plain = sinkhorn(np.ma.masked_array(x), y, reg=0.1)    # nothing masked: as the array
    assert plain.transport_cost == sinkhorn(x, y, reg=0.1).transport_cost


def test_tensors_that_require_grad_and_float16_weights_are_taken_as_data():
    """Before: torch's "Can't call numpy() on Tensor that requires grad", and float16 weights
    normalised in float16 refused (their totals differ by about 1e-4, above 1e-6)."""
    torch = pytest.importorskip("torch")
    x, y, _, _ = _clouds(19, n=5, m=5)
    ref = sinkhorn(x, y, reg=0.1)
    res = sinkhorn(torch.tensor(x, requires_grad=True), torch.tensor(y), reg=0.1)
    assert res.transport_cost == ref.transport_cost
    rng = np.random.default_rng(3)
    a, b = rng.random(40).astype(np.float16), rng.random(30).astype(np.float16)
    a, b = a / a.sum(), b / b.sum()
    ta, tb = float(np.sum(a, dtype=np.float64)), float(np.sum(b, dtype=np.float64))
    assert abs(ta - tb) > 1e-6 * max(ta, tb)       # the case: beyond the float64 tolerance
    xa, yb = rng.standard_normal((40, 2)), rng.standard_normal((30, 2))
    out = sinkhorn(xa, yb, a, b, reg=0.5)
    assert out.converged
    np.testing.assert_allclose(out.b.sum(), out.a.sum(), rtol=1e-12)   # b rescaled to sum(a)
    with pytest.raises(ValueError, match=r"float16 inputs; normalise both in float64"):
        sinkhorn(xa, yb, a, b * np.float16(1.1), reg=0.5)


def test_bad_options():
    x, y, _, _ = _clouds(19, n=5, m=5)
    with pytest.raises(ValueError, match="regularizer must be one of 'l2', 'kl'"):
        smooth_ot(x, y, reg=0.1, regularizer="entropy")
    with pytest.raises(ValueError, match="eps_scaling must be a factor in"):
        sinkhorn(x, y, reg=0.1, eps_scaling=2.0)
    with pytest.raises(ValueError, match="anderson must be >= 0"):
        sinkhorn(x, y, reg=0.1, anderson=-1)
    X = np.zeros((2, 5, 2))
    with pytest.raises(ValueError, match="same number of problems"):
        sinkhorn(X, np.zeros((3, 5, 2)), reg=0.1)
    with pytest.raises(ValueError, match=r"equal totals \(problem 1 of the batch\)"):
        sinkhorn(X, X, np.array([[0.5] * 2 + [0.0] * 3, [0.2] * 5]),
                 np.array([[0.2] * 5, [0.1] * 5]), reg=0.1)
    res = sinkhorn(x, y, reg=0.1)
    assert isinstance(res, RegularizedResult)
    with pytest.raises(ValueError, match="u must have shape"):
        res.apply_plan_T(np.ones((5, 2, 2)))


def test_warning_filter_is_not_needed_for_converged_solves():
    x, y, _, _ = _clouds(20)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sinkhorn(x, y, reg=0.05)
        smooth_ot(x, y, reg=0.05)


@pytest.mark.parametrize("solver", ["sinkhorn", "smooth_ot"])
def test_seconds_exclude_a_first_run_s_compilation(solver, monkeypatch):
    """A kernel compiled at its first use costs the result's ``seconds`` nothing (the solve's
    clock stops while it compiles), and it is compiled once, before it runs."""
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(60, 2)), rng.normal(size=(50, 2)) + 1.0
    solve = {"sinkhorn": sinkhorn, "smooth_ot": smooth_ot}[solver]
    solve(x, y, reg=0.5, backend="numba")  # the real kernels compiled (or cached)
    stand_ins = {}
    for name in ("sinkhorn_rows_cols", "l2_dual_rows"):
        for suffix in ("", "_serial"):
            stand_ins[name + suffix] = FirstCompile(getattr(kern, name + suffix))
            monkeypatch.setattr(kern, name + suffix, stand_ins[name + suffix])
    res = solve(x, y, reg=0.5, backend="numba")
    assert res.converged
    assert sum(s.compiled for s in stand_ins.values()) >= 1
    assert all(s.compiled <= 2 for s in stand_ins.values())  # per dtype at most
    assert res.seconds < 0.5
    assert res.history.seconds[-1] < 0.5
