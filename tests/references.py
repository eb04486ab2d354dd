"""Independent reference solvers for the grid Wasserstein-1 problem (tests and benchmarks only).

Nothing here imports :mod:`otgrid`: every function takes plain NumPy arrays and cell sizes and
solves the problem with a different method and a different library (closed form, SciPy's HiGHS
LP, POT's network simplex, cvxpy + Clarabel), so that the package's solver can be checked
against numbers it did not produce.

The discrete problem (ARCHITECTURE.md §2), with ``c = mu - nu`` and forward differences
``(Df)_{i,k} = (f_{i+e_k} - f_i) / dx_k`` (zero on the last index of axis ``k``):

.. math::

    W_{grid} = \\max_f \\langle c, f \\rangle \\quad
    \\text{s.t.}\\ |(Df)_i| \\le 1 \\ \\text{for every cell } i,

with ``|.|_2`` per cell for the Euclidean norm (an SOCP in 2D) and ``|.|_inf`` per cell for the
cityblock norm (an LP, equal to the L1-cost transport between cell centres).

The critics returned here are raw solver output, defined only up to an additive constant (and
not unique where no mass moves); compare them through differences on the region where they are
determined.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from scipy.optimize import linprog

__all__ = [
    "SOCPResult",
    "emd2_cityblock",
    "kr_lp_1d_highs",
    "kr_lp_2d_cityblock_highs",
    "socp_2d_euclidean_cvxpy",
    "w1_1d_closed_form",
    "weighted_group_shrink_brentq",
]

_HIGHS_OPTIONS = {
    "primal_feasibility_tolerance": 1e-10,
    "dual_feasibility_tolerance": 1e-10,
}


def _pair(mu: np.ndarray, nu: np.ndarray, ndim: int) -> tuple[np.ndarray, np.ndarray]:
    mu = np.asarray(mu, dtype=np.float64)
    nu = np.asarray(nu, dtype=np.float64)
    if mu.shape != nu.shape or mu.ndim != ndim:
        raise ValueError(
            f"mu and nu must be {ndim}-D arrays of the same shape; got {mu.shape} and {nu.shape}."
        )
    if not (np.all(np.isfinite(mu)) and np.all(np.isfinite(nu))):
        raise ValueError("mu and nu must be finite.")
    return mu, nu


def _dx2(dx: float | Sequence[float]) -> tuple[float, float]:
    dxs = np.broadcast_to(np.asarray(dx, dtype=np.float64), (2,))
    return float(dxs[0]), float(dxs[1])


def _forward_difference(n: int, h: float) -> sp.csr_matrix:
    """(n, n) forward difference ``(f_{i+1} - f_i) / h`` with a zero last row."""
    main = -np.ones(n)
    main[-1] = 0.0
    upper = np.ones(n - 1)
    return (sp.diags([main, upper], [0, 1], shape=(n, n), format="csr") / h).tocsr()


def _grad_2d(shape: tuple[int, int], dx: tuple[float, float]) -> tuple[sp.csr_matrix, ...]:
    """Sparse forward-difference operators on a C-ordered (nx, ny) array, zero on the last index."""
    nx, ny = shape
    d0 = sp.kron(_forward_difference(nx, dx[0]), sp.identity(ny), format="csr")
    d1 = sp.kron(sp.identity(nx), _forward_difference(ny, dx[1]), format="csr")
    return d0, d1


# --------------------------------------------------------------------------------------------
# 1D
# --------------------------------------------------------------------------------------------
def weighted_group_shrink_brentq(v: np.ndarray, a: np.ndarray) -> np.ndarray:
    """``argmin_w |w|_2 + sum_k (w_k - v_k)^2 / (2 a_k)`` for one cell ``v`` (``a > 0``), the
    group shrinkage in a diagonal metric, by SciPy's brentq.

    ``w = 0`` where ``|v / a| <= 1`` (``-v / a`` is then a subgradient of ``|.|`` at 0); else
    ``w_k = v_k t / (t + a_k)`` with ``t = |w|`` the root of ``sum_k v_k^2 / (t + a_k)^2 = 1``
    (the optimality condition ``(v_k - w_k) / a_k = w_k / |w|``), bracketed in ``[0, |v|]``.
    """
    from scipy.optimize import brentq

    v, a = np.asarray(v, dtype=np.float64), np.asarray(a, dtype=np.float64)
    if np.sum((v / a) ** 2) <= 1:
        return np.zeros_like(v)
    t = brentq(_shrink_root, 0.0, float(np.sqrt(np.sum(v ** 2))), args=(v, a), xtol=1e-300,
               rtol=1e-15)
    return v * t / (t + a)


def _shrink_root(t: float, v: np.ndarray, a: np.ndarray) -> float:
    """``sum_k v_k^2 / (t + a_k)^2 - 1``: its root is the norm of the shrunk cell."""
    return float(np.sum(v ** 2 / (t + a) ** 2) - 1)


def w1_1d_closed_form(mu: np.ndarray, nu: np.ndarray, dx: float) -> float:
    """Exact W1 between two 1D grid measures: ``dx * sum_i |F_mu(i) - F_nu(i)|``.

    Computed as ``cumsum(mu - nu)`` (the same number, without the cancellation of two large
    cumulative sums when the measures differ by tiny masses).

    Parameters
    ----------
    mu, nu : numpy.ndarray, shape (n,)
        Masses on the cells (equal totals).
    dx : float
        Cell width.

    Returns
    -------
    float
        The Wasserstein-1 distance between the two measures placed at the cell centres.
    """
    mu, nu = _pair(mu, nu, 1)
    return float(dx * np.sum(np.abs(np.cumsum(mu - nu))))


def kr_lp_1d_highs(mu: np.ndarray, nu: np.ndarray, dx: float) -> tuple[float, np.ndarray]:
    """Kantorovich–Rubinstein dual LP in 1D, solved by SciPy's HiGHS.

    ``max <mu - nu, f>`` s.t. ``|f_{i+1} - f_i| <= dx``, with ``f_0 = 0`` fixing the constant.

    Parameters
    ----------
    mu, nu : numpy.ndarray, shape (n,)
        Masses on the cells (equal totals).
    dx : float
        Cell width.

    Returns
    -------
    value : float
        The optimal value (W1).
    critic : numpy.ndarray, shape (n,)
        An optimal critic (``critic[0] == 0``).
    """
    mu, nu = _pair(mu, nu, 1)
    n = mu.size
    c = mu - nu
    diff = sp.diags([-np.ones(n - 1), np.ones(n - 1)], [0, 1], shape=(n - 1, n), format="csr")
    a_ub = sp.vstack([diff, -diff], format="csr")
    b_ub = np.full(2 * (n - 1), float(dx))
    bounds = [(0.0, 0.0)] + [(None, None)] * (n - 1)
    res = linprog(-c, A_ub=a_ub, b_ub=b_ub, bounds=bounds, method="highs",
                  options=_HIGHS_OPTIONS)
    if res.status != 0:
        raise RuntimeError(f"HiGHS failed on the 1D KR LP: {res.message}")
    return float(-res.fun), np.asarray(res.x)


# --------------------------------------------------------------------------------------------
# 2D cityblock
# --------------------------------------------------------------------------------------------
def emd2_cityblock(mu: np.ndarray, nu: np.ndarray, centers: Sequence[np.ndarray]) -> float:
    """Exact transport cost with L1 ground cost between cell centres (POT's network simplex).

    Only cells with non-zero mass enter the cost matrix, so sparse measures stay cheap.

    Parameters
    ----------
    mu, nu : numpy.ndarray, shape (n_0, ..., n_{d-1})
        Masses on the cells (equal totals).
    centers : sequence of numpy.ndarray
        One 1D array of cell centres per axis, ``len(centers[k]) == mu.shape[k]``.

    Returns
    -------
    float
        ``min_P <P, C>`` with ``C_ij = |x_i - y_j|_1``.
    """
    import ot

    mu = np.asarray(mu, dtype=np.float64)
    nu = np.asarray(nu, dtype=np.float64)
    if mu.shape != nu.shape or len(centers) != mu.ndim:
        raise ValueError(f"mu {mu.shape}, nu {nu.shape} and {len(centers)} centre arrays differ.")
    mesh = np.meshgrid(*[np.asarray(ck, dtype=np.float64) for ck in centers], indexing="ij")
    pts = np.stack([m.ravel() for m in mesh], axis=1)
    a, b = mu.ravel(), nu.ravel()
    sa, sb = a > 0, b > 0
    cost = ot.dist(pts[sa], pts[sb], metric="cityblock")
    return float(ot.emd2(a[sa], b[sb], cost, numItermax=50_000_000))


def kr_lp_2d_cityblock_highs(
    mu: np.ndarray, nu: np.ndarray, dx: float | Sequence[float]
) -> tuple[float, np.ndarray]:
    """The 2D grid KR LP with the cityblock norm, solved by SciPy's HiGHS.

    ``max <mu - nu, f>`` s.t. ``|f_{i+e_k} - f_i| <= dx_k`` on every pair of neighbouring cells,
    with ``f[0, 0] = 0``.

    Parameters
    ----------
    mu, nu : numpy.ndarray, shape (nx, ny)
        Masses on the cells (equal totals).
    dx : float or (float, float)
        Cell size per axis.

    Returns
    -------
    value : float
        The optimal value (W1 with L1 ground cost between cell centres).
    critic : numpy.ndarray, shape (nx, ny)
        An optimal critic (``critic[0, 0] == 0``).
    """
    mu, nu = _pair(mu, nu, 2)
    hx, hy = _dx2(dx)
    d0, d1 = _grad_2d(mu.shape, (1.0, 1.0))
    # drop the all-zero rows (last index of each axis)
    d0 = d0[np.diff(d0.indptr) > 0]
    d1 = d1[np.diff(d1.indptr) > 0]
    a_ub = sp.vstack([d0, -d0, d1, -d1], format="csr")
    b_ub = np.concatenate([np.full(2 * d0.shape[0], hx), np.full(2 * d1.shape[0], hy)])
    n = mu.size
    bounds = [(0.0, 0.0)] + [(None, None)] * (n - 1)
    c = (mu - nu).ravel()
    res = linprog(-c, A_ub=a_ub, b_ub=b_ub, bounds=bounds, method="highs",
                  options=_HIGHS_OPTIONS)
    if res.status != 0:
        raise RuntimeError(f"HiGHS failed on the 2D cityblock KR LP: {res.message}")
    return float(-res.fun), np.asarray(res.x).reshape(mu.shape)


# --------------------------------------------------------------------------------------------
# 2D Euclidean (SOCP)
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SOCPResult:
    """Output of :func:`socp_2d_euclidean_cvxpy`.

    Attributes
    ----------
    value : float
        Objective at the returned critic, ``<mu - nu, critic>``.
    feasible_value : float
        ``value / max(1, max_i |(D critic)_i|_2)``: the value of an exactly feasible critic, a
        lower bound on the optimum (equal to ``value`` to ~1e-10 when the solve succeeded).
    critic : numpy.ndarray, shape (nx, ny)
        The optimal critic, normalised to ``sum(critic) == 0``.
    status : str
        cvxpy's status of the last attempt (``"optimal"`` on success).
    seconds : float
        Wall time of all attempts (cvxpy compilation included).
    solve_seconds : float
        Time spent inside Clarabel over all attempts, as reported by cvxpy.
    max_violation : float
        ``max_i |(Df)_i|_2 - 1`` of the returned critic (<= ~1e-9 when feasible).
    tol : float
        Clarabel tolerance of the returned (last) attempt.
    attempts : tuple of (tol, status, seconds)
        Every attempt, in order.
    """

    value: float
    feasible_value: float
    critic: np.ndarray
    status: str
    seconds: float
    solve_seconds: float
    max_violation: float
    tol: float
    attempts: tuple[tuple[float, str, float], ...]

    def __iter__(self):  # lets callers write ``value, critic = socp_2d_euclidean_cvxpy(...)``
        return iter((self.value, self.critic))


def socp_2d_euclidean_cvxpy(
    mu: np.ndarray,
    nu: np.ndarray,
    dx: float | Sequence[float],
    *,
    tol: float = 1e-10,
    max_iter: int = 500,
    retries: int = 2,
) -> SOCPResult:
    """The 2D grid KR problem with the Euclidean norm per cell, solved by cvxpy + Clarabel.

    ``max <mu - nu, f>`` s.t. ``||((Df)_{i,x}, (Df)_{i,y})||_2 <= 1`` for every cell ``i``,
    forward differences with zero difference on the last index of each axis, ``sum(f) = 0``.
    The objective is scaled by ``1 / max|mu - nu|`` inside the solver (Clarabel otherwise stalls
    at ``optimal_inaccurate`` on measures with tiny masses, e.g. Gaussian tails).

    Parameters
    ----------
    mu, nu : numpy.ndarray, shape (nx, ny)
        Masses on the cells (equal totals).
    dx : float or (float, float)
        Cell size per axis.
    tol : float, optional
        Clarabel's ``tol_gap_abs``, ``tol_gap_rel`` and ``tol_feas``.
    max_iter : int, optional
        Clarabel's iteration limit.
    retries : int, optional
        When Clarabel does not report ``"optimal"`` (it sometimes ends at
        ``"optimal_inaccurate"`` near 1e-10), solve again with the tolerance 10 times larger,
        up to this many times; the status and tolerance of the last attempt are returned.

    Returns
    -------
    SOCPResult
        Value, critic, solver status and timings; unpacks as ``value, critic``.
    """
    import time
    import warnings

    import cvxpy as cp

    mu, nu = _pair(mu, nu, 2)
    d0, d1 = _grad_2d(mu.shape, _dx2(dx))
    n = mu.size
    c = (mu - nu).ravel()
    scale = float(np.abs(c).max()) or 1.0  # O(1) objective: Clarabel stalls on tiny masses
    f = cp.Variable(n)
    grad = cp.vstack([d0 @ f, d1 @ f])  # (2, n)
    constraints = [cp.SOC(np.ones(n), grad, axis=0), cp.sum(f) == 0]
    problem = cp.Problem(cp.Maximize((c / scale) @ f), constraints)
    attempts: list[tuple[float, str, float]] = []
    t_all = time.perf_counter()
    solve_seconds = 0.0
    for k in range(retries + 1):  # Clarabel sometimes stops at "optimal_inaccurate" near 1e-10
        t_k = tol * 10.0**k
        t0 = time.perf_counter()
        with warnings.catch_warnings():  # the status says it; cvxpy's warning is noise here
            warnings.filterwarnings("ignore", message="Solution may be inaccurate")
            problem.solve(solver=cp.CLARABEL, tol_gap_abs=t_k, tol_gap_rel=t_k, tol_feas=t_k,
                          max_iter=max_iter)
        attempts.append((t_k, str(problem.status), time.perf_counter() - t0))
        stats = problem.solver_stats
        if stats is not None and stats.solve_time is not None:
            solve_seconds += float(stats.solve_time)
        if problem.status == cp.OPTIMAL:
            break
    seconds = time.perf_counter() - t_all
    if f.value is None:
        raise RuntimeError(f"Clarabel returned no solution (status {problem.status!r}).")
    crit = np.asarray(f.value, dtype=np.float64)
    lip = float(np.hypot(d0 @ crit, d1 @ crit).max())
    return SOCPResult(
        value=float(c @ crit),
        feasible_value=float(c @ crit) / max(1.0, lip),
        critic=crit.reshape(mu.shape),
        status=str(problem.status),
        seconds=seconds,
        solve_seconds=solve_seconds,
        max_violation=lip - 1.0,
        tol=attempts[-1][0],
        attempts=tuple(attempts),
    )
