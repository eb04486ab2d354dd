"""Regularized optimal transport between point clouds, in memory linear in the number of points.

Two solvers, one result type (:class:`RegularizedResult`):

- :func:`sinkhorn`: entropic OT, ``min_P <P, C> + eps KL(P | a b^T)``, by log-domain Sinkhorn
  iterations with eps-scaling and Anderson acceleration;
- :func:`smooth_ot`: the unconstrained dual of Sanjabi et al. (2018), Lemma 4.1, for the L2 or
  the KL regularizer, maximised by L-BFGS.

Both evaluate every sum over the ``n x m`` pairs with kernels that compute the costs on the fly
(``otgrid.kernels.pointcloud_numba`` on the CPU, ``otgrid.kernels.pointcloud_cuda`` with
``backend="cuda"``; the ``"numpy"`` backend is the readable reference), so no
``n x m`` matrix is stored; the plan is available as an operator (:meth:`RegularizedResult.
apply_plan`) and, when it fits in memory, as a matrix (:meth:`RegularizedResult.plan`).

Conventions (both solvers): weights ``a`` (n,) and ``b`` (m,) with equal totals, costs
``C_ij = c(x_i, y_j)``, potentials ``f`` (n,) and ``g`` (m,), the (pseudo-)plan
``P_ij = a_i b_j M(f_i + g_j - C_ij)``. Marginal errors are L1 norms relative to the total mass:
``||P 1 - a||_1 / sum(a)`` and ``||P^T 1 - b||_1 / sum(a)``.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from typing import Any, Literal

import numpy as np
from scipy.spatial.distance import cdist

from otgrid._regularized_base import (
    REGULARIZERS,
    RegularizedHistory,
    RegularizedInfo,
    RegularizedResult,
    _check_common,
    _check_scaling,
    _finish,
    _info_value,
    _log_weights,
    _normalise,
    _prepare,
    _Problem,
    _statistic,
    _warm,
)
from otgrid._regularized_coarse import CoarseCorrection, spatial_order
from otgrid._regularized_dual import solve_smooth_dual
from otgrid._regularized_ops import make_ops
from otgrid._validation import check_choice, check_positive_int
from otgrid.kernels import pointcloud_numba as kern

__all__ = [
    "RegularizedHistory",
    "RegularizedInfo",
    "RegularizedResult",
    "sinkhorn",
    "smooth_ot",
]

Cost = Literal["euclidean", "sqeuclidean", "cityblock"]
Regularizer = Literal["l2", "kl"]
Backend = Literal["auto", "numpy", "numba", "cuda"]
Method = Literal["auto", "newton", "lbfgs"]
METHODS: tuple[str, ...] = ("auto", "newton", "lbfgs")

# Anderson guard: the extrapolation restarts when the marginal error exceeds DIVERGENCE_FACTOR
# times the smallest of the last SAFEGUARD_WINDOW iterates. Measured (Gaussian and uniform 2D
# clouds, n = 500, both costs, reg 2e-3 to 5e-2): rejecting extrapolated iterates that raise
# the error (monotone or windowed tests) took up to 8x more iterations than this restart rule.
SAFEGUARD_WINDOW = 5
DIVERGENCE_FACTOR = 10.0
# ... and when the error has not reached a new minimum for STALL_WINDOW iterations, it restarts
# with half the depth (down to 0: plain Sinkhorn, which converges): an extrapolation that
# oscillates within the factor above may never converge (seen at reg 1e-3 of the cost range,
# n = 14, cityblock: marginal errors 0.1-1 for 10^5 iterations at depth 8, restarts or not).
STALL_WINDOW = 400
# Column sums are formed as b exp(lse_c) with lse_c clipped here (exp(700) ~ 1e304: finite).
LSE_COL_MAX = 700.0
# Newton polish for small problems (m <= NEWTON_MAX_M points per problem): tried after
# NEWTON_AFTER iterations at the target eps, then every NEWTON_EVERY, while not converged.
# Sinkhorn's linear rate tends to 1 when eps is small against the gaps between assignments
# (n = 14, eps = 1e-3 x cost scale: marginal error 9e-9 after 5000 Anderson iterations, 8e-11
# after 112 with Newton); Newton converges quadratically once close. Problems that converge
# within NEWTON_AFTER iterations never pay for the dense m x m solve; at m = 500 the dense
# solves cost more wall time than the Anderson iterations they save.
NEWTON_MAX_M = 256
NEWTON_AFTER = 50
NEWTON_EVERY = 50

# Multiscale start (see _multiscale_start): on by default from MULTISCALE_MIN_POINTS points in both
# clouds, with subsamples of 1 / MULTISCALE_RATIO of the points solved to MULTISCALE_TOL.
# Measured (2D Gaussian clouds, n = 6000, reg 0.05, euclidean): 13 to 15 full iterations after
# a subsample of n / 5 instead of 22 to 27 with eps-scaling, for about 1.4 passes of extra work.
MULTISCALE_MIN_POINTS = 5000
MULTISCALE_RATIO = 5
# Measured (n = 3e4, same clouds): the full problem took 15 iterations after subsamples solved
# to 1e-3, 1e-4 or 1e-5 (its start error, 0.014, is the subsample's sampling error), so 1e-3.
# Subsamples of n / 3 or n / 8 gave starts of 0.022 and 0.023 and the same 15 iterations.
MULTISCALE_TOL = 1e-3

# Mixed precision (numba backend): the iterations run their pair arithmetic in float32 (8 pairs
# per AVX2 instruction instead of 4) until the float32 marginal error is <= MIXED_SWITCH * tol
# (the float64 iteration that follows improves on it and measures it),
# or improves less than twofold in MIXED_STALL iterations below MIXED_STALL_BELOW (its floor);
# the iterations after that, and so the certified marginal error, are float64. On by default
# from MIXED_MIN_PAIRS pairs per problem. Measured (2D Gaussian clouds, euclidean, reg 0.05,
# n = 10^4, 2-core AMD EPYC): 1.76e9 float32 pairs/s per fused pass against 7.3e8 in float64.
MIXED_MIN_PAIRS = 1 << 20
MIXED_SWITCH = 1.0
MIXED_STALL = 3
MIXED_STALL_BELOW = 1e-4
# Once the last marginal error is <= NEAR_TOL * tol, every float64 iteration also measures
# <P, C> (a multiply-add per pair), so that a converged solve needs no final pass.
NEAR_TOL = 30.0

# Coarse correction (see otgrid._regularized_coarse): on by default with the Numba backend for
# single problems whose clouds both have at least COARSE_MIN_POINTS points; COARSE_ROWS row
# clusters (fewer when COARSE_ROWS x m column sums would exceed COARSE_MAX_ENTRIES numbers) and
# COARSE_COLS column clusters.
COARSE_MIN_POINTS = 2000
COARSE_ROWS = 64
COARSE_COLS = 256
COARSE_MAX_ENTRIES = 1 << 23
# Column clusters hold at least COARSE_MIN_CLUSTER points: a Newton solve on 256 clusters
# measured 16-20 ms, a float32 pass over 3000 x 3000 points about 5 ms; with 64 clusters at
# n = 3300 the solves took 3 ms and the coarse step no longer cost wall time where it saved
# no iterations.
COARSE_MIN_CLUSTER = 32

# eps-scaling is on by default when reg < AUTO_SCALING_RATIO * (bound on the costs): measured on
# Gaussian and uniform 2D clouds (n = 500, euclidean and sqeuclidean costs), it divides the
# iterations by up to 5 at reg / D = 2e-4 and costs a few when reg / D > 1e-2.
AUTO_SCALING_RATIO = 1e-2


# ------------------------------------------------------------------------------- Sinkhorn
class _Newton:
    """Newton steps on the semi-dual ``g -> <a, F(g)> + <b, g>``, dense, for small problems.

    With ``f = F(g)`` (rows exact) the columns ``c(g)`` of the plan have the Jacobian
    ``(diag(c) - P^T diag(1 / r) P) / eps`` (singular along the constants), so the Newton step
    solves ``(diag(c) - P^T diag(1 / r) P) d = eps (b - c)``; a step is kept for a problem only
    if it lowers that problem's marginal error (halving it up to ``MAX_HALVINGS`` times).
    """

    MAX_STEPS = 12
    MAX_HALVINGS = 8

    def __init__(self, prob: _Problem, ops, la: np.ndarray, lb: np.ndarray) -> None:
        self.p, self.ops, self.la, self.lb = prob, ops, la, lb
        self.C = [cdist(prob.x[k], prob.y[k], metric=prob.cost) for k in range(prob.B)]

    @staticmethod
    def eligible(prob: _Problem) -> bool:
        return prob.y.shape[1] <= NEWTON_MAX_M and prob.x.shape[1] <= 4 * NEWTON_MAX_M

    def _evaluate(self, f: np.ndarray, g: np.ndarray, eps: np.ndarray):
        inv = 1.0 / eps
        lse, _ = self.ops.lse("rows", self.lb + g * inv[:, None], f, inv)
        f = f - eps[:, None] * lse
        lse_c, _ = self.ops.lse("cols", self.la + f * inv[:, None], g, inv)
        with np.errstate(over="ignore"):  # a trial step too long: an infinite error
            err = np.abs(self.p.b * np.exp(lse_c) - self.p.b).sum(axis=1) / self.p.mass
        return f, err

    def _direction(self, k: int, f: np.ndarray, g: np.ndarray, eps: float) -> np.ndarray:
        p = self.p
        logp = self.la[k][:, None] + self.lb[k][None, :] + (f[:, None] + g[None, :]
                                                            - self.C[k]) / eps
        P = np.exp(np.minimum(logp, 700.0))
        r, c = P.sum(axis=1), P.sum(axis=0)
        act = np.flatnonzero(p.b[k] > 0)
        H = np.empty((act.size, act.size))
        kern.newton_matrix(P, r, c, act, H)
        H += (c[act].mean() / act.size)  # the constants direction: no change
        H[np.diag_indices_from(H)] += 1e-13 * c[act].max()
        d = np.zeros_like(g)
        sol = np.empty(act.size)
        if not kern.spd_solve(H, eps * (p.b[k][act] - c[act]), sol):
            raise np.linalg.LinAlgError("Newton matrix is not positive definite")
        # no step along the constants (they change nothing) and none longer than the costs'
        # range: an ill-conditioned H (a plan close to block-diagonal) returned one of 1e12,
        # which left g with a resolution of 1e-4 (the line search accepts any step that lowers
        # the error)
        sol -= np.average(sol, weights=p.b[k][act])
        d[act] = sol * min(1.0, p.diameter[k] / max(np.abs(sol).max(), 1e-300))
        return d

    def polish(self, f, g, err, eps, tol) -> tuple[np.ndarray, int, int]:
        """Newton steps from ``(f, g)`` (``f = F(g)``); returns ``(g, steps, passes)``."""
        steps = passes = 0
        f, g, err = f.copy(), g.copy(), err.copy()
        for _ in range(self.MAX_STEPS):
            todo = err > tol
            d = np.zeros_like(g)
            for k in np.flatnonzero(todo):
                try:
                    d[k] = self._direction(k, f[k], g[k], float(eps[k]))
                except np.linalg.LinAlgError:
                    todo[k] = False
            if not np.all(np.isfinite(d)):
                break
            t = np.ones(len(g))
            improved = np.zeros(len(g), bool)
            for _ in range(self.MAX_HALVINGS):
                g_try = g + t[:, None] * d
                f_try, e_try = self._evaluate(f, g_try, eps)
                passes += 2
                ok = todo & ~improved & (e_try < err)
                g[ok], f[ok], err[ok] = g_try[ok], f_try[ok], e_try[ok]
                improved |= ok
                t[todo & ~improved] *= 0.5
                if np.all(improved[todo]):
                    break
            if not np.any(improved):
                break
            steps += 1
            if np.all(err <= tol):
                break
        return g, steps, passes


class _Anderson:
    """Anderson acceleration (type II) of the fixed-point map ``g -> T(g)``, per problem.

    Keeps the last ``depth`` iterates ``g_k`` and residuals ``r_k = T(g_k) - g_k`` and returns
    ``sum_k alpha_k (g_k + r_k)`` with ``alpha`` minimising ``||sum_k alpha_k r_k||_b`` subject
    to ``sum alpha = 1`` (a ``depth x depth`` solve, Tikhonov-regularised). Weighting by ``b``
    makes the residual norm match the L1 marginal error to first order.
    """

    def __init__(self, depth: int, weights: np.ndarray) -> None:
        self.depth, self.w = depth, weights
        self.X: list[np.ndarray] = []
        self.R: list[np.ndarray] = []

    def reset(self) -> None:
        self.X.clear()
        self.R.clear()

    def step(self, g: np.ndarray, tg: np.ndarray) -> np.ndarray:
        if self.depth == 0:
            return tg
        self.X.append(g)
        self.R.append(tg - g)
        if len(self.X) > self.depth:
            self.X.pop(0)
            self.R.pop(0)
        k = len(self.R)
        if k == 1:
            return tg
        R = np.stack(self.R, axis=1)  # (B, k, m)
        H = np.einsum("bkm,blm->bkl", R * self.w[:, None, :], R)
        H += (1e-10 * np.trace(H, axis1=1, axis2=2) / k + 1e-300)[:, None, None] * np.eye(k)
        try:
            z = np.linalg.solve(H, np.ones((H.shape[0], k, 1)))[..., 0]
        except np.linalg.LinAlgError:
            self.reset()
            return tg
        alpha = z / z.sum(axis=1, keepdims=True)
        out = np.einsum("bk,bkm->bm", alpha, np.stack(self.X, axis=1) + R)
        if not np.all(np.isfinite(out)):
            self.reset()
            return tg
        return out


def _use_float32(mixed_precision: bool | None, pairs: int) -> bool:
    """Whether passes over ``pairs`` pairs run in float32 (``mixed_precision``'s default)."""
    return mixed_precision if mixed_precision is not None else pairs >= MIXED_MIN_PAIRS


def _columns(prob: _Problem, lse_c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Column sums ``b exp(lse_c)`` of the plan and its L1 column error (relative to the mass).

    ``lse_c`` is clipped at ``LSE_COL_MAX``: an extrapolated ``g`` can be far off (columns up to
    exp(1700) times b, seen at reg = 1e-4 of the costs); the error is then huge either way.
    """
    col = prob.b * np.exp(np.minimum(lse_c, LSE_COL_MAX))
    return col, np.abs(col - prob.b).sum(axis=1) / prob.mass


def _use_coarse(coarse: bool | None, prob: _Problem, backend: str) -> bool:
    """Whether the solve runs the coarse correction (``coarse``'s default)."""
    if backend != "numba" or prob.B != 1 or min(prob.x.shape[1], prob.y.shape[1]) < 2:
        return False
    return coarse if coarse is not None else min(prob.x.shape[1],
                                                   prob.y.shape[1]) >= COARSE_MIN_POINTS


def _coarse_clusters(prob: _Problem) -> tuple[int, int]:
    """Row and column clusters: COARSE_ROWS (halved while their column sums would hold more
    than COARSE_MAX_ENTRIES numbers, or there are fewer than 2 rows per cluster) and
    COARSE_COLS (halved while there are fewer than COARSE_MIN_CLUSTER columns per cluster)."""
    k, n, m = COARSE_ROWS, prob.x.shape[1], prob.y.shape[1]
    while k > 2 and (k * m > COARSE_MAX_ENTRIES or k > n // 2):
        k //= 2
    c = COARSE_COLS
    while c > 2 and c > m // COARSE_MIN_CLUSTER:
        c //= 2
    return k, c


class _Reordered:
    """``pair_costs`` of an ops object built on reordered points, in the caller's order."""

    def __init__(self, ops, order: tuple[np.ndarray, np.ndarray]) -> None:
        self.ops = ops
        self.xpos, self.ypos = np.argsort(order[0]), np.argsort(order[1])

    def pair_costs(self, i: np.ndarray, j: np.ndarray) -> np.ndarray:
        return self.ops.pair_costs(self.xpos[i], self.ypos[j])


def _annealing(eps_scaling: Any, reg: float, prob: _Problem, warm: bool) -> float | None:
    """The eps-scaling factor, or None: ``eps_scaling``'s default (off for large ``reg``)."""
    q = _check_scaling(eps_scaling, "eps_scaling", 0.5, warm)
    if eps_scaling is None and q is not None and reg > AUTO_SCALING_RATIO * prob.diameter.max():
        q = None  # measured: annealing costs a few iterations when reg is this large
    return q


def _multiscale_start(prob: _Problem, *, reg: float, backend: str, eps_scaling: Any,
                      anderson: int, max_iter: int, tol: float,
                      mixed_precision: bool | None, coarse: bool | None):
    """Potentials from a random subsample: ``(f, g, work in full passes)``, or None.

    The subsample (``1 / MULTISCALE_RATIO`` of each cloud, drawn with probabilities ``a`` and
    ``b``, uniform weights of the same total) is solved by the same iterations (so recursively
    multiscale) to ``max(tol, MULTISCALE_TOL)``, measured in float32 where its passes are (a
    start needs no float64 certificate). ``g`` on every ``y`` is its
    c-transform from the subsample's ``f`` (one pass over ``subsample x all``); ``f`` on every
    ``x`` is the value at the nearest subsample point, only the shift of the first row update
    (which recomputes ``f`` exactly from ``g``).
    """
    from scipy.spatial import cKDTree

    B, n, m = prob.B, prob.x.shape[1], prob.y.shape[1]
    ns, ms = n // MULTISCALE_RATIO, m // MULTISCALE_RATIO
    if min(ns, ms) < 2 or np.any((prob.a > 0).sum(axis=1) < ns) or np.any(
            (prob.b > 0).sum(axis=1) < ms):
        return None
    gen = np.random.default_rng(0)
    ix = np.stack([gen.choice(n, ns, replace=False, p=prob.a[k] / prob.a[k].sum())
                   for k in range(B)])
    iy = np.stack([gen.choice(m, ms, replace=False, p=prob.b[k] / prob.b[k].sum())
                   for k in range(B)])
    bi = np.arange(B)[:, None]
    xs, ys = prob.x[bi, ix], prob.y[bi, iy]
    a_s = np.repeat((prob.mass / ns)[:, None], ns, axis=1)
    b_s = np.repeat((prob.mass / ms)[:, None], ms, axis=1)
    sub = _prepare(xs, ys, a_s, b_s, prob.cost, np.float64)
    fs, gs, sub_passes = _solve(
        sub, None, _annealing(eps_scaling, reg, sub, False), reg=reg,
        tol=max(tol, MULTISCALE_TOL), max_iter=max_iter, backend=backend,
        eps_scaling=eps_scaling, anderson=anderson, multiscale=None,
        mixed_precision=mixed_precision, coarse=coarse, start_only=True)
    p = 1 if prob.cost == "cityblock" else 2
    f = np.stack([fs[k][cKDTree(xs[k]).query(prob.x[k], p=p)[1]] for k in range(B)])
    g0 = np.stack([gs[k][cKDTree(ys[k]).query(prob.y[k], p=p)[1]] for k in range(B)])
    inv = np.full(B, 1.0 / reg)
    ops = make_ops(backend, xs, prob.y, prob.cost)
    low = _use_float32(mixed_precision, ns * m)
    with ops.session():  # a start: float32 terms are accurate enough (mixed precision)
        lse, _ = ops.lse("cols", _log_weights(a_s) + fs * inv[:, None], g0, inv, low=low)
    g = g0 - reg * lse
    work = sub_passes * (ns * ms) / (n * m) + ns / n
    return f, g, work


def sinkhorn(
    x: Any,
    y: Any,
    a: Any = None,
    b: Any = None,
    *,
    reg: float,
    cost: Cost = "euclidean",
    tol: float = 1e-6,
    max_iter: int = 10_000,
    backend: Backend = "auto",
    dtype: Any = np.float64,
    warm_start: RegularizedResult | tuple[Any, Any] | None = None,
    eps_scaling: bool | float | None = None,
    anderson: int = 8,
    multiscale: bool | None = None,
    mixed_precision: bool | None = None,
    coarse: bool | None = None,
    callback: Callable[[RegularizedInfo], bool | None] | None = None,
    n_samples: int = 1000,
    rng: Any = 0,
    verbose: bool = False,
) -> RegularizedResult:
    """Entropic optimal transport between two point clouds by log-domain Sinkhorn iterations.

    Solves

    .. math::

        \\mathrm{OT}_\\varepsilon(a, b) = \\min_{P \\ge 0,\\ P 1 = a,\\ P^\\top 1 = b}
        \\langle P, C \\rangle + \\varepsilon\\, \\mathrm{KL}(P \\,|\\, a b^\\top),
        \\qquad C_{ij} = c(x_i, y_j),

    whose solution is ``P_ij = a_i b_j exp((f_i + g_j - C_ij) / eps)`` for the dual potentials
    ``(f, g)``, in memory O(n + m): every sum over pairs recomputes the costs from the
    coordinates, tile by tile.

    Parameters
    ----------
    x : array_like, shape (n, d), (n,) for 1D points, or (B, n, d) for a batch
        Source points.
    y : array_like, shape (m, d), (m,), or (B, m, d)
        Target points (same dimension ``d``; same batch size ``B``).
    a, b : array_like, shape (n,) and (m,) (batched: (B, n) and (B, m)), optional
        Non-negative weights with equal totals (relative difference <= 1e-6; ``b`` is then
        rescaled to ``sum(a)``). Uniform ``1/n`` and ``1/m`` by default.
    reg : float
        ``eps > 0``, in units of the cost. Small values (down to about 1e-4 of the cost scale)
        are stable (log domain) but need more iterations.
    cost : {"euclidean", "sqeuclidean", "cityblock"}, optional
        ``|x - y|_2``, ``|x - y|_2^2`` (no factor 1/2, like ``ot.dist``) or ``|x - y|_1``.
    tol : float, optional
        Stop when the marginal error ``(||P 1 - a||_1 + ||P^T 1 - b||_1) / sum(a)`` is
        ``<= tol`` (every problem of a batch).
    max_iter : int, optional
        Iteration limit (each iteration is one row and one column update).
    backend : {"auto", "numpy", "numba", "cuda"}, optional
        ``"numba"``: fused parallel CPU kernels (``"auto"``). ``"numpy"``: readable reference.
        ``"cuda"``: the kernels of ``otgrid.kernels.pointcloud_cuda`` on a GPU (numba-cuda;
        points of dimension <= 8); the iteration itself runs on the host and exchanges
        vectors of length n or m with the device per pass. Raises ``RuntimeError`` when no GPU
        is available (no silent fallback). Inputs may be CuPy arrays (copied to the host
        once); the result holds NumPy arrays.
    dtype : {numpy.float64, numpy.float32}, optional
        Precision of the points and of the returned arrays. The kernels accumulate in float64
        whatever ``dtype`` (float32 coordinates are rounded first), so ``tol`` applies as is.
    warm_start : RegularizedResult or (f, g), optional
        Potentials to start from (e.g. the previous step of a generator's training); the
        iteration starts at ``reg`` directly (no eps-scaling unless ``eps_scaling`` says so).
    eps_scaling : bool or float, optional
        Anneal eps from the cost scale down to ``reg`` by this factor per iteration (``True``:
        0.5). Default: on when ``reg`` is below 1/100 of the largest cost (where it saves
        iterations) and there is no ``warm_start``. With ``multiscale`` it applies to the
        subsample's solve; the full problem then starts at ``reg``.
    anderson : int, optional
        Depth of the Anderson acceleration at the final eps (0: plain Sinkhorn).
    multiscale : bool, optional
        Start from the solution of a random subsample of ``1 / MULTISCALE_RATIO`` of the
        points (solved the same way, recursively, to a marginal error of 1e-3), extended to
        every point by a c-transform; the full problem then runs at ``reg`` directly. Default:
        on when there is no ``warm_start`` and both clouds have at least
        ``MULTISCALE_MIN_POINTS`` (5000) points. Only the start changes: the solve still stops
        on the exact marginal error of the full problem. ``True`` on clouds too small for a
        subsample of 2 points (or with fewer positive weights than the subsample needs) runs
        the ordinary start.
    mixed_precision : bool, optional
        Run the iterations far from ``tol`` with their pair arithmetic (costs, exponentials)
        in float32, about 2.5 times as fast, and the last ones in float64: the switch happens
        once the float32 marginal error is <= ``tol`` or stops improving (its floor is about
        1e-7 to 1e-6), so the reported marginal error, ``converged`` and every returned number
        come from float64 passes, as without it. Default: on with the ``"numba"`` backend for
        problems of at least 2^20 pairs (``n m``). Ignored by the other backends.
    coarse : bool, optional
        Correct the potentials on spatial clusters of points after every iteration at the
        target eps (a two-level method, see the Notes): fewer iterations on large clouds, the
        same solution. Default: on with the ``"numba"`` backend for single problems (not
        batches) whose clouds both have at least ``COARSE_MIN_POINTS`` (2000) points.
        Ignored by the other backends and by batches.
    callback : callable, optional
        ``callback(info)`` with a :class:`RegularizedInfo` after every iteration; returning
        ``True`` stops the solve (``status="callback"``).
    n_samples : int, optional
        Pairs drawn for the eq. (15) statistic of Sanjabi et al. (see
        :attr:`RegularizedResult.termination_statistic`).
    rng : None, int or numpy.random.Generator, optional
        Random source of those pairs (seed 0 by default, so results are reproducible).
    verbose : bool, optional
        Print the marginal error about once a second.

    Returns
    -------
    RegularizedResult
        ``f``, ``g``, ``transport_cost = <P, C>``, the objective, marginal errors, diagnostics,
        and the plan as an operator (:meth:`RegularizedResult.apply_plan`).

    Notes
    -----
    One iteration (log domain, ``eps`` per problem):

    .. code-block:: text

        f_i <- -eps log sum_j b_j exp((g_j - C_ij) / eps)        # rows of P exact
        g~_j <- -eps log sum_i a_i exp((f_i - C_ij) / eps)       # column update
        g   <- Anderson(g, g~)                                    # or g~ (anderson=0)

    The column pass also measures the columns of the current plan, ``b_j exp((g_j - g~_j) /
    eps)``, so the stopping test is free: the solve stops as soon as the L1 column error of the
    pair ``(f, g)`` (whose rows are exact) is below ``tol``; a final pass measures the row
    error and ``<P, C>`` where the last iteration did not (see below). The log-sum-exps are
    shifted by the previous potential, so every pass is a single sweep over the pairs (a row
    whose sum leaves ``[1e-10, exp(40)]`` is redone with its exact maximum); nothing
    overflows for any ``reg``.

    With the ``"numba"`` backend an iteration is *one* pass: the exponentials of the row
    update, ``e_ij`` with row sums ``s_i``, give the columns of the new plan as well, since
    ``P_ij = a_i e_ij / s_i`` once the rows are exact; so ``g~`` costs one multiply-add per
    pair instead of a second cost evaluation and exponential (about half the work of the
    two-pass iteration; a solve at n = 10^4 went from 13.7 s to 8.3 s on a busy 2-core
    machine). Terms below
    ``exp(-100)`` of their row are dropped, which is exact to ``4e-34`` of the mass; a column
    whose sum falls below ``1e-10`` of its weight (zero weights, far from convergence) makes
    that iteration run the separate column pass instead. The ``"cuda"`` backend runs the two
    half-steps as two kernels with an online log-sum-exp (one thread per row, columns staged
    in shared-memory tiles).

    **Mixed precision** (``"numba"``, on by default from 2^20 pairs): the passes far from
    ``tol`` compute costs, ``t_ij`` and exponentials in float32 (from coordinates centred per
    problem; an exponential by ``2^k p(r)`` with a degree-5 polynomial, relative error <=
    2.5e-7 for the terms within exp(-30) of their row), sum rows in float64 tile by tile and
    columns in float64 every 64 rows. The potentials stay float64, and each pass returns the
    potential it actually used (``g`` rounded through float32), so rounding never accumulates
    from one iteration to the next: it only adds noise of about 1e-7 to 1e-6 to the float32
    marginal error (rounding of the coordinates is the largest part). Once that error is <=
    ``tol``, or improves less than twofold in 3 iterations below 1e-4, the solve goes on in
    float64; it stops only on a float64 iteration. With ``tol`` below the float32 floor the
    float64 iterations simply do more of the work. Measured at n = 10^4 (2D, euclidean, reg
    0.05, 2-core AMD EPYC): a float32 pass 1.76e9 pairs/s, a float64 pass 7.3e8 (1.56e9 and
    5.9e8 before the costs of 2D points were computed inside the exponential's loop).

    Once the marginal error is within 30 ``tol``, each float64 iteration also accumulates
    ``<P, C>`` (one multiply-add per pair) so that a converged solve needs no final pass: its
    rows are exact by construction (to the rounding of ``f``, about 1e-14, reported as 0).

    **Coarse correction** (``coarse``, ``"numba"``): Sinkhorn's error in ``g`` evolves, to first
    order, as ``dg <- M dg`` with ``M = diag(1/b) P^T diag(1/a) P``, an averaging through the
    plan: errors that vary from point to point die within a few iterations, smooth ones are the
    slow modes. As in a two-level multigrid method, the points are put in a spatial order
    (median splits, ``otgrid._regularized_coarse.spatial_order``) whose chunks are clusters, 64
    of rows (fewer when ``64 m`` exceeds 2^23) and up to 256 of columns (at least 32 points
    each); the fused pass returns the column sums of each row cluster (its chunks of rows), and
    after the update ``g~`` a correction constant on each column cluster makes the block sums of
    the plan match the cluster weights exactly (a 64 x 256 scaling problem, Newton's method on
    its semi-dual). At the solution the correction is 0, so the solution is unchanged; only the
    path to it. Measured (2D Gaussian clouds, euclidean, reg 0.05, mixed precision, 2-core AMD
    EPYC): n = 2 x 10^4, 11 iterations instead of 14 to 16; n = 5 x 10^4, 9 to 12 (six seeds)
    instead of 15 to 16 (two); n = 10^5, 10 instead of 13 (56.5 s instead of 69.9 s in the
    benchmark run). Each step costs the ``64 x m`` column sums (51 MB at m = 10^5) and a few
    milliseconds of Python (4.5 ms at m = 10^4).

    eps-scaling runs one iteration at ``eps_k = D q^k`` (``D`` a bound on the costs from the
    bounding box of the points) until ``reg``; it saves iterations at small ``reg``. At the
    target eps, Anderson acceleration (depth ``anderson``, least squares weighted by ``b``)
    extrapolates ``g``; its history restarts when the error jumps tenfold. Problems with at
    most 256 target points that are still not converged after 50 iterations at the target
    eps take dense Newton steps on the semi-dual (quadratic convergence where Sinkhorn's rate
    tends to 1: small ``reg`` against the gaps between assignments).

    Memory: O(B (n + m)) for the iterates (the coarse correction: 64 column sums per column,
    ``64 m`` numbers); the ``"numba"`` backend stores the ``n x m`` cost
    matrix (twice) only in dimension ``d >= 4`` when ``B n m <= 2^22``, and the Newton steps
    one ``n x m`` plan for ``m <= 256``. Each kernel call runs on all Numba threads or on one,
    whichever its recent calls found faster (the choice follows the load of the machine).

    A batch (leading axis ``B``) runs all problems through the same iterations, each with its
    own eps schedule, until every one meets ``tol``.

    **POT's convention.** ``ot.sinkhorn(a, b, M, reg)`` minimises ``<P, M> + reg sum P log P``,
    which differs from our objective by a constant on the feasible set: the plans agree for
    ``reg_POT = reg``; ``ot.sinkhorn2`` returns ``<P, M>``, our ``transport_cost``; POT's
    log-domain potentials are ``log_u = log a + f / reg`` and ``log_v = log b + g / reg`` (up
    to an additive constant).

    References
    ----------
    M. Cuturi, "Sinkhorn distances: lightspeed computation of optimal transport", NeurIPS 2013.
    B. Schmitzer, "Stabilized sparse scaling algorithms for entropy regularized transport
    problems", SIAM J. Sci. Comput. 41 (2019) (log domain, eps-scaling).
    J. Feydy, "Geometric data analysis, beyond convolutions", PhD thesis (2020) (online
    log-sum-exp reductions).
    H. F. Walker, P. Ni, "Anderson acceleration for fixed-point iterations", SIAM J. Numer.
    Anal. 49 (2011).

    Examples
    --------
    >>> import numpy as np
    >>> from otgrid.regularized import sinkhorn
    >>> rng = np.random.default_rng(0)
    >>> x, y = rng.normal(size=(200, 2)), rng.normal(size=(300, 2)) + [2.0, 1.0]
    >>> res = sinkhorn(x, y, reg=0.05)
    >>> res.converged, res.marginal_error <= 1e-6
    (True, True)
    >>> bary = res.apply_plan(y) / res.a[:, None]     # barycentric map, no 200 x 300 matrix
    >>> bary.shape
    (200, 2)
    """
    t0 = time.perf_counter()
    reg, tol, max_iter, backend = _check_common(reg, cost, tol, max_iter, backend, callback)
    anderson = check_positive_int(anderson, "anderson", minimum=0)
    n_samples = check_positive_int(n_samples, "n_samples")
    prob = _prepare(x, y, a, b, cost, dtype)
    warm = _warm(warm_start, prob)
    q = _annealing(eps_scaling, reg, prob, warm is not None)
    if multiscale not in (None, True, False):
        raise TypeError(f"multiscale must be None, True or False; got {multiscale!r}.")
    if mixed_precision not in (None, True, False):
        raise TypeError("mixed_precision must be None, True or False; got "
                        f"{mixed_precision!r}.")
    if coarse not in (None, True, False):
        raise TypeError(f"coarse must be None, True or False; got {coarse!r}.")
    return _solve(prob, warm, q, reg=reg, tol=tol, max_iter=max_iter, backend=backend,
                  eps_scaling=eps_scaling, anderson=anderson, multiscale=multiscale,
                  mixed_precision=mixed_precision, coarse=coarse, callback=callback,
                  n_samples=n_samples, rng=rng, verbose=verbose, t0=t0)


def _solve(prob: _Problem, warm, q, *, reg, tol, max_iter, backend, eps_scaling, anderson,
           multiscale, mixed_precision, coarse, callback=None, n_samples=1000, rng=0,
           verbose=False, t0=None, start_only=False):
    """The iterations of :func:`sinkhorn` on validated inputs: a RegularizedResult.

    ``start_only`` (a multiscale start): stop once the marginal error, in whatever precision
    the pass ran, is <= ``tol``, without the float64 and final passes, and return ``(f, g,
    passes)`` (arrays with the batch axis) instead.
    """
    cost = prob.cost
    t0 = time.perf_counter() if t0 is None else t0
    user_prob, order, corrector = prob, None, None
    if _use_coarse(coarse, prob, backend):
        # points in a spatial order: the fused pass's chunks of rows are clusters, and so
        # are chunks of consecutive columns
        parts, cols = _coarse_clusters(prob)
        order = (spatial_order(prob.x[0], parts), spatial_order(prob.y[0], cols))
        prob = dataclasses.replace(prob, x=prob.x[:, order[0]], a=prob.a[:, order[0]],
                                   y=prob.y[:, order[1]], b=prob.b[:, order[1]])
        if warm is not None:
            warm = (warm[0][:, order[0]], warm[1][:, order[1]])
        corrector = CoarseCorrection(prob.a[0], prob.b[0], parts, cols)
    start_passes = 0.0
    if warm is None and (multiscale or (multiscale is None and min(
            prob.x.shape[1], prob.y.shape[1]) >= MULTISCALE_MIN_POINTS)):
        start = _multiscale_start(prob, reg=reg, backend=backend, eps_scaling=eps_scaling,
                                  anderson=anderson, max_iter=max_iter, tol=tol,
                                  mixed_precision=mixed_precision, coarse=coarse)
        if start is not None:
            warm, start_passes = start[:2], start[2]
            q = None

    B = prob.B
    f, g = warm if warm is not None else (np.zeros(prob.x.shape[:2]), np.zeros(prob.y.shape[:2]))
    la, lb = _log_weights(prob.a), _log_weights(prob.b)
    schedule: list[np.ndarray] = []
    if q is not None:
        k = 0
        while np.any(prob.diameter * q**k > reg):
            schedule.append(np.maximum(prob.diameter * q**k, reg))
            k += 1
    target = np.full(B, reg)
    ops = make_ops(backend, prob.x, prob.y, cost)
    accel = _Anderson(anderson, prob.b / prob.mass[:, None])
    hist: list[tuple] = []
    status, it, passes = "max_iter", 0, 0
    last_print = t0
    recent: list[np.ndarray] = []  # errors of the iterates at the target eps
    best_err, since_best = np.full(B, np.inf), np.zeros(B, dtype=np.int64)
    at_target = 0
    newton = _Newton(prob, ops, la, lb) if _Newton.eligible(prob) else None
    low = ops.low_precision and _use_float32(mixed_precision, prob.x.shape[1] * prob.y.shape[1])
    low_errs: list[float] = []
    mcost = None

    with ops.session():
        while True:
            stage = it < len(schedule)
            eps = schedule[it] if stage else target
            inv = 1.0 / eps
            # row update f_i = -eps log sum_j b_j exp((g_j - C_ij) / eps) (shifted by f_i),
            # then the columns of P(f, g) and the update g~ (one fused pass with Numba); the
            # mean cost of each row comes along once the solve may stop (no final pass then)
            near = (not low and not stage and len(recent) > 0
                    and np.all(recent[-1] <= NEAR_TOL * tol))
            parts = corrector.parts if corrector is not None and not stage else 0
            f, lse_c, npass, g, mcost, colparts = ops.sinkhorn_iteration(
                la, lb, f, g, inv, low=low, want_cost=near, parts=parts)
            passes += npass
            it += 1
            col, err = _columns(prob, lse_c)  # a far-off g: huge error, the guard restarts
            tg = g - eps[:, None] * lse_c
            if colparts is not None:
                tg[0] += eps[0] * corrector.step(colparts[:, 0], col[0])
            objective = ((prob.a * f).sum(axis=1) + (prob.b * g).sum(axis=1)
                         - eps * (col.sum(axis=1) - prob.mass**2))
            now = time.perf_counter() - t0
            hist.append((it, float(eps.max()), err.copy(), objective, now, low))
            if verbose and (time.perf_counter() - last_print >= 1.0 or it == 1):
                last_print = time.perf_counter()
                print(f"[otgrid.sinkhorn] iter {it:6d}  eps {eps.max():.3e}  marginal error "
                      f"{err.max():.3e}" + ("  (float32)" if low else ""), flush=True)
            stop = callback is not None and callback(RegularizedInfo(
                it, float(eps.max()), _info_value(err, prob.batched),
                _info_value(objective, prob.batched), now))
            if not stage:
                # guard: the extrapolation restarts (fresh history) when the error jumps above
                # DIVERGENCE_FACTOR times the smallest of the last SAFEGUARD_WINDOW iterates
                recent.append(err.copy())
                improved = err < best_err
                best_err = np.where(improved, err, best_err)
                since_best = np.where(improved, 0, since_best + 1)
                if np.any(err > DIVERGENCE_FACTOR * np.min(recent[-SAFEGUARD_WINDOW:], axis=0)):
                    accel.reset()
                elif np.any(since_best >= STALL_WINDOW):
                    accel.reset()
                    accel.depth //= 2  # down to plain Sinkhorn (depth 0), which converges
                    since_best[:] = 0
            if start_only and not stage and np.all(err <= tol):
                status = "converged"
                break
            if low and not stage:
                # float32 until its error meets the tolerance or stops improving (less than
                # a factor 2 over MIXED_STALL iterations): the solve stops only on a float64
                # iteration, whose marginal error is the certified one
                low_errs.append(float(err.max()))
                if np.all(err <= MIXED_SWITCH * tol) or (
                        len(low_errs) > MIXED_STALL and low_errs[-1] <= MIXED_STALL_BELOW
                        and low_errs[-1] > 0.5 * low_errs[-1 - MIXED_STALL]):
                    low = False
            elif not stage and np.all(err <= tol):
                status = "converged"
                break
            if stop:
                status = "callback"
                break
            if it >= max_iter:
                break
            if stage:
                g = tg
                continue
            at_target += 1
            if (newton is not None and at_target >= NEWTON_AFTER
                    and (at_target - NEWTON_AFTER) % NEWTON_EVERY == 0):
                g_new, steps, npass = newton.polish(f, g, err, eps, tol)
                passes += npass
                if steps:  # Newton improved the iterate: continue from it, afresh
                    accel.reset()
                    g = g_new
                    continue
            g = accel.step(g, tg)

        if start_only:
            if order is not None:
                f, g = f[:, np.argsort(order[0])], g[:, np.argsort(order[1])]
            return f, g, passes
        if low:  # stopped early on a float32 iteration: measure its columns in float64
            lse_c, _ = ops.lse("cols", la + f * inv[:, None], g, inv)
            passes += 1
            col, err = _columns(prob, lse_c)
        if mcost is None or low:
            # final pass: rows of P(f, g) and <P, C> (the columns were measured just above)
            lse_r, mcost = ops.lse("rows", lb + g * inv[:, None], f, inv, want_cost=True)
            passes += 1
            rows = prob.a * np.exp(lse_r)
        else:  # the last iteration made the rows exact (to rounding) and measured <P, C>
            rows = prob.a.copy()
    f, g = _normalise(f, g, prob)
    stat_ops = ops
    if order is not None:  # back to the caller's order of the points
        bx, by = np.argsort(order[0]), np.argsort(order[1])
        f, rows, mcost, prob = f[:, bx], rows[:, bx], mcost[:, bx], user_prob
        g, col = g[:, by], col[:, by]
        stat_ops = _Reordered(ops, order)
    transport = (rows * mcost).sum(axis=1)
    mass_p = rows.sum(axis=1)
    objective = ((prob.a * f).sum(axis=1) + (prob.b * g).sum(axis=1)
                 - eps * (mass_p - prob.mass**2))
    primal = ((rows * f).sum(axis=1) + (col * g).sum(axis=1) - eps * (mass_p - prob.mass**2))
    with np.errstate(over="ignore"):
        stat = _statistic(stat_ops, prob, f, g, lambda v: np.exp(v / eps[:, None]), n_samples,
                          rng)
    if verbose:
        total = np.abs(rows - prob.a).sum(axis=1) / prob.mass + err
        print(f"[otgrid.sinkhorn] {status}: marginal error {total.max():.3e} after {it} "
              "iterations", flush=True)
    passes += int(np.ceil(start_passes))
    return _finish(prob, f=f, g=g, r=rows, c=col, transport=transport, objective=objective,
                   primal=primal, stat=stat, iterations=it, passes=passes, status=status,
                   tol=tol, hist=hist, t0=t0, backend=ops.name, method="sinkhorn",
                   regularizer="kl", reg=reg,
                   fix="increase max_iter, increase reg, or loosen tol.")


def smooth_ot(
    x: Any,
    y: Any,
    a: Any = None,
    b: Any = None,
    *,
    reg: float,
    regularizer: Regularizer = "l2",
    cost: Cost = "euclidean",
    tol: float = 1e-6,
    max_iter: int = 10_000,
    backend: Backend = "auto",
    dtype: Any = np.float64,
    warm_start: RegularizedResult | tuple[Any, Any] | None = None,
    reg_scaling: bool | float | None = None,
    method: Method = "auto",
    memory: int = 10,
    callback: Callable[[RegularizedInfo], bool | None] | None = None,
    n_samples: int = 1000,
    rng: Any = 0,
    verbose: bool = False,
) -> RegularizedResult:
    """Regularized optimal transport on the smooth dual of Sanjabi et al. (2018).

    Maximises the unconstrained concave dual of Lemma 4.1,

    .. math::

        F(\\phi, \\psi) = \\sum_i a_i \\phi_i - \\sum_j b_j \\psi_j
        - \\sum_{i,j} a_i b_j f_\\lambda(\\phi_i - \\psi_j - c_{ij}),
        \\qquad
        f_\\lambda(v) = \\frac{(v_+)^2}{2\\lambda} \\ (\\text{L2}),\\quad
        \\frac{\\lambda}{e} e^{v/\\lambda} \\ (\\text{KL}),

    the dual of ``min_P <P, C> + lambda I(P)`` over the transport plans, with
    ``I(P) = sum_ij P_ij^2 / (2 a_i b_j)`` (L2) or ``sum_ij P_ij log(P_ij / (a_i b_j))`` (KL).
    The pseudo-plan of eq. (11) is ``pi_ij = a_i b_j M(V_ij)``, ``V_ij = phi_i - psi_j - c_ij``,
    ``M(v) = v_+ / lambda`` or ``exp(v / lambda) / e``.

    Parameters
    ----------
    x, y, a, b
        As in :func:`sinkhorn` (points (n, d) and (m, d), or batches (B, n, d) and (B, m, d);
        weights with equal totals, uniform by default).
    reg : float
        ``lambda > 0``, in units of the cost.
    regularizer : {"l2", "kl"}, optional
        The strongly convex term ``I``.
    cost : {"euclidean", "sqeuclidean", "cityblock"}, optional
        As in :func:`sinkhorn`.
    tol : float, optional
        Stop when ``(||pi 1 - a||_1 + ||pi^T 1 - b||_1) / sum(a) <= tol``: the L1 norm of the
        gradient of ``F``, relative to the mass.
    max_iter : int, optional
        Limit on the Newton and L-BFGS iterations (over all continuation stages).
    backend, dtype, callback, n_samples, rng, verbose
        As in :func:`sinkhorn`.
    warm_start : RegularizedResult or (f, g), optional
        Potentials to start from (``phi = f``, ``psi = -g``).
    reg_scaling : bool or float, optional
        Continuation: solve for ``lambda_k = D q^k`` (``D`` a bound on the costs), each stage to
        a marginal error of 1e-3 and warm-starting the next, down to ``reg`` (``True``: q =
        0.1). It divides the iterations several times at small ``reg``. Default: on without
        ``warm_start``, off with it.
    method : {"auto", "newton", "lbfgs"}, optional
        ``"newton"`` (L2 only): semismooth Newton on the sparse Hessian of the active pairs
        (see Notes); ``"lbfgs"``: L-BFGS-B. ``"auto"``: for L2 with the ``"numpy"`` and
        ``"numba"`` backends, Newton iterations while at most a quarter of the pairs are
        active and L-BFGS for the rest of a stage where more are (there a Newton iteration
        costs several L-BFGS ones); L-BFGS otherwise (KL, whose Hessian is dense, and
        ``"cuda"``, where the active pairs would be listed on the host).
    memory : int, optional
        Number of correction pairs kept by L-BFGS (``maxcor``).

    Returns
    -------
    RegularizedResult
        ``f = phi`` and ``g = -psi`` (also as ``.phi``, ``.psi``), the dual objective
        ``F(phi, psi)``, the eq. (15) statistic (``termination_statistic``) next to the exact
        gradient norm (``grad_norm``) and marginal errors; the pseudo-plan as an operator.

    Notes
    -----
    ``F`` and its gradient ``(a - pi 1, -(b - pi^T 1))`` come from one pass over the pairs
    (L2: tiled sums of ``(V_ij)_+``; KL: a row and a column log-sum-exp pass).

    **Newton (L2).** ``-F`` is piecewise quadratic; its generalized Hessian is
    ``1 / lambda`` times the Laplacian of the bipartite graph of the active pairs
    (``V_ij > 0``), edge ``(i, j)`` weighing ``a_i b_j``: at small ``lambda`` only a few pairs
    per point are active and the Hessian is sparse. Each iteration lists the active pairs
    (two passes), solves the Newton system by conjugate gradients preconditioned with its
    diagonal (to a relative residual ``min(0.1, sqrt(error))``; a shift of 1e-10 of each
    node's full curvature makes it definite, and a node without active pairs gets its full
    curvature, a step of order ``lambda``), then backtracks until ``F`` increases by 1e-4 of
    the predicted amount (Armijo, on the pairwise-summed change of ``F``); a step of 1 is
    taken near the solution, where the convergence is quadratic (Lorenz, Manns, Meyer 2021).
    A stage with more than ``2^24`` active pairs (the sparse pattern takes 4 bytes per pair),
    or whose line search fails (near the rounding floor), continues with L-BFGS; the result's
    ``method`` is then ``"newton+lbfgs"``.

    **L-BFGS.** L-BFGS-B
    (``scipy.optimize.minimize``, ``jac=True``) runs on ``-F`` in the variables
    ``phi_i sqrt(a_i / mean(a))``, ``psi_j sqrt(b_j / mean(b))`` (a diagonal preconditioner:
    the curvature along ``phi_i`` is proportional to ``a_i``). The solve stops on the exact
    marginal error, not on eq. (15): the statistic is a necessary condition (its expectation,
    ``sum(pi) / sum(a)^2``, is 1 at the optimum) reported for comparison with the paper.

    For KL the maximisation is over ``phi`` alone, ``psi`` being the closed-form maximiser
    (a column log-sum-exp): no evaluation overflows however small ``lambda``. L-BFGS sees the
    change of ``F`` since a reference point. Near the optimum it is summed pair by pair, which
    stays accurate when the change is far below the rounding of ``F`` itself; for L2, while
    every change is more than ``1e4`` times the rounding of ``F`` (a bound from the size of its
    terms), the passes compute ``F`` alone and take the difference, which costs about 0.6 of
    the pairwise pass. When L-BFGS stops short of ``tol`` the reference moves to the current
    point and L-BFGS restarts. This reaches marginal
    errors of about 1e-12 for L2; for KL about 1e-9 when ``lambda`` is at least 1e-3 of the
    largest cost, and 1e-8 to 5e-8 below that (measured on random clouds of 300 to 1500
    points; use :func:`sinkhorn` for tighter entropic solutions); below that the status is
    ``"stalled"``. With ``threadpoolctl`` installed,
    BLAS runs on one thread during the solve (L-BFGS-B's vectors are short).

    **POT's convention.** ``ot.smooth.smooth_ot_dual(a, b, M, reg_POT, reg_type="l2")`` uses
    ``reg_POT / 2 * ||P||_2^2``; for uniform weights ``a_i b_j = 1 / (n m)`` this is our L2
    term with ``reg_POT = lambda * n * m`` (the plans agree; POT's ``alpha = phi`` and
    ``beta = -psi``). For non-uniform weights there is no exact conversion (our term weights
    ``P_ij^2`` by ``1 / (a_i b_j)``). The KL dual has the plan of :func:`sinkhorn` with
    ``eps = lambda``; its potentials satisfy ``f_smooth + g_smooth - lambda = f + g``.

    References
    ----------
    M. Sanjabi, J. Ba, M. Razaviyayn, J. D. Lee, "Solving approximate Wasserstein GANs to
    stationarity", arXiv:1802.08249 (2018) (Lemma 4.1, eqs. 11 and 15).
    M. Blondel, V. Seguy, A. Rolet, "Smooth and sparse optimal transport", AISTATS 2018.
    D. A. Lorenz, P. Manns, C. Meyer, "Quadratically regularized optimal transport", Applied
    Mathematics & Optimization 83 (2021) (semismooth Newton for the L2 dual).

    Examples
    --------
    >>> import numpy as np
    >>> from otgrid.regularized import smooth_ot
    >>> rng = np.random.default_rng(0)
    >>> x, y = rng.normal(size=(300, 2)), rng.normal(size=(300, 2)) + [2.0, 1.0]
    >>> res = smooth_ot(x, y, reg=0.05, regularizer="l2")
    >>> res.converged, res.marginal_error <= 1e-6
    (True, True)
    >>> bool(abs(res.termination_statistic - 1.0) < 0.2)     # eq. (15): close to 1
    True
    """
    t0 = time.perf_counter()
    reg, tol, max_iter, backend = _check_common(reg, cost, tol, max_iter, backend, callback)
    check_choice(regularizer, "regularizer", REGULARIZERS)
    memory = check_positive_int(memory, "memory")
    n_samples = check_positive_int(n_samples, "n_samples")
    check_choice(method, "method", METHODS)
    if method == "newton" and regularizer != "l2":
        raise ValueError("method='newton' is for regularizer='l2' (the KL dual's Hessian is "
                         "dense); use method='lbfgs' or 'auto'.")
    if method == "auto" and (regularizer != "l2" or backend == "cuda"):
        method = "lbfgs"
    prob = _prepare(x, y, a, b, cost, dtype)
    warm = _warm(warm_start, prob)
    q = _check_scaling(reg_scaling, "reg_scaling", 0.1, warm is not None)
    return solve_smooth_dual(prob, warm, reg=reg, regularizer=regularizer, tol=tol,
                             max_iter=max_iter, backend=backend, q=q, memory=memory,
                             callback=callback, n_samples=n_samples, rng=rng, verbose=verbose,
                             t0=t0, method=method)
