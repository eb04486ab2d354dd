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
from typing import Any

import numpy as np

from otgrid._threads import solve_clock
from otgrid._validation import check_positive_int
from otgrid.pointcloud.backends import make_ops
from otgrid.pointcloud.coarse import CoarseCorrection, spatial_order
from otgrid.pointcloud.ops_numpy import log_weights
from otgrid.pointcloud.problem import (
    Backend,
    Cost,
    _check_common,
    _check_reg_scale,
    _check_scaling,
    _finish,
    _info_value,
    _normalise,
    _prepare,
    _Problem,
    _statistic,
    _warm,
)
from otgrid.pointcloud.result import RegularizedInfo, RegularizedResult
from otgrid.pointcloud.sinkhorn_accel import NEWTON_AFTER, NEWTON_EVERY, _Anderson, _Newton

__all__ = ["sinkhorn"]

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
    sub = _prepare(xs, ys, a_s, b_s, prob.cost, np.float64, rescale=False)  # prob's units
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
        lse, _ = ops.lse("cols", log_weights(a_s) + fs * inv[:, None], g0, inv, low=low)
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
        Non-negative weights with equal totals (relative difference <= 1e-6, or 16 machine
        epsilons of float32 / float16 weights; ``b`` is then rescaled to ``sum(a)``). Uniform
        ``1/n`` and ``1/m`` by default.
    reg : float
        ``eps > 0``, in units of the cost. Small values (down to about 1e-4 of the cost scale)
        are stable (log domain) but need more iterations; below ``1e-9`` times the largest cost
        (``otgrid.pointcloud.problem.MIN_REG_RELATIVE``) float64 cannot resolve the
        regularization and a ``ValueError`` says so.
    cost : {"euclidean", "sqeuclidean", "cityblock"}, optional
        ``|x - y|_2``, ``|x - y|_2^2`` (no factor 1/2, like ``ot.dist``) or ``|x - y|_1``.
        The solve measures the points in a power of two near their spread (centred, where
        that is outside ``2^-20 .. 2^20``) and ``reg`` and the costs alike, so the unit of
        the coordinates does not matter: results scale with it exactly. Clouds whose largest
        cost is below the smallest normal number of ``dtype`` (float64: 2.2e-308, reached by
        squared-euclidean costs of points less than about 1.5e-154 apart) cannot be
        represented: ``ValueError``.
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
    >>> from otgrid.pointcloud.sinkhorn import sinkhorn
    >>> rng = np.random.default_rng(0)
    >>> x, y = rng.normal(size=(200, 2)), rng.normal(size=(300, 2)) + [2.0, 1.0]
    >>> res = sinkhorn(x, y, reg=0.05)
    >>> res.converged, res.marginal_error <= 1e-6
    (True, True)
    >>> bary = res.apply_plan(y) / res.a[:, None]     # barycentric map, no 200 x 300 matrix
    >>> bary.shape
    (200, 2)
    """
    t0 = solve_clock()
    reg, tol, max_iter, backend = _check_common(reg, cost, tol, max_iter, backend, callback)
    anderson = check_positive_int(anderson, "anderson", minimum=0)
    n_samples = check_positive_int(n_samples, "n_samples")
    prob = _prepare(x, y, a, b, cost, dtype)
    reg = _check_reg_scale(reg, prob)  # in the solver's units, as the costs (see _Problem)
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
    t0 = solve_clock() if t0 is None else t0
    user_prob = prob
    prob, warm, order, corrector = _coarse_setup(prob, warm, coarse, backend)
    warm, q, start_passes = _start(prob, warm, q, multiscale, reg=reg, backend=backend,
                                   eps_scaling=eps_scaling, anderson=anderson,
                                   max_iter=max_iter, tol=tol,
                                   mixed_precision=mixed_precision, coarse=coarse)
    run = _Run(prob, warm, _eps_schedule(prob, q, reg), reg=reg, tol=tol, backend=backend,
               anderson=anderson, mixed_precision=mixed_precision, corrector=corrector, t0=t0)
    with run.ops.session():
        run.iterate(max_iter, callback, verbose, start_only)
        if start_only:
            f, g = run.f, run.g
            if order is not None:
                f, g = f[:, np.argsort(order[0])], g[:, np.argsort(order[1])]
            return f, g, run.passes
        rows = run.final_pass()
    return run.result(rows, user_prob, order, start_passes, n_samples=n_samples, rng=rng,
                      verbose=verbose)


def _coarse_setup(prob: _Problem, warm, coarse: bool | None, backend: str):
    """The coarse correction's setup: ``(prob, warm, order, corrector)``.

    With the correction, the points (and ``warm``) are put in a spatial order (``order``, the
    permutations of ``x`` and ``y``): the fused pass's chunks of rows are then clusters, and
    so are chunks of consecutive columns. Without it, ``order`` and ``corrector`` are None.
    """
    if not _use_coarse(coarse, prob, backend):
        return prob, warm, None, None
    parts, cols = _coarse_clusters(prob)
    order = (spatial_order(prob.x[0], parts), spatial_order(prob.y[0], cols))
    prob = dataclasses.replace(prob, x=prob.x[:, order[0]], a=prob.a[:, order[0]],
                               y=prob.y[:, order[1]], b=prob.b[:, order[1]])
    if warm is not None:
        warm = (warm[0][:, order[0]], warm[1][:, order[1]])
    return prob, warm, order, CoarseCorrection(prob.a[0], prob.b[0], parts, cols)


def _start(prob: _Problem, warm, q, multiscale: bool | None, **kw):
    """The start: ``(warm, q, passes it took)``.

    Without a warm start, the multiscale start where ``multiscale`` (or its default) says so
    and the subsample allows (the full problem then runs at ``reg``: ``q`` None); otherwise
    ``warm`` and ``q`` as given. ``kw``: the arguments of :func:`_multiscale_start`.
    """
    if warm is None and (multiscale or (multiscale is None and min(
            prob.x.shape[1], prob.y.shape[1]) >= MULTISCALE_MIN_POINTS)):
        start = _multiscale_start(prob, **kw)
        if start is not None:
            return start[:2], None, start[2]
    return warm, q, 0.0


def _eps_schedule(prob: _Problem, q: float | None, reg: float) -> list[np.ndarray]:
    """The eps of the eps-scaling iterations (per problem): ``max(D q^k, reg)`` while
    ``D q^k > reg`` for some problem (``D`` its bound on the costs); empty for ``q`` None."""
    schedule: list[np.ndarray] = []
    if q is not None:
        k = 0
        while np.any(prob.diameter * q**k > reg):
            schedule.append(np.maximum(prob.diameter * q**k, reg))
            k += 1
    return schedule


class _Run:
    """The state of one solve's iterations (arrays with the batch axis) and its phases.

    ``f``, ``g``: the potentials; ``eps``, ``inv``: the eps of the last iteration and its
    inverse; ``col``, ``err``: the columns of the last plan and its marginal errors;
    ``low``: whether the passes still run in float32; ``mcost``: the rows' mean costs, once
    an iteration has measured them; ``it``, ``passes``, ``hist``, ``status``: the counts.
    """

    def __init__(self, prob: _Problem, warm, schedule: list[np.ndarray], *, reg, tol,
                 backend, anderson, mixed_precision, corrector, t0) -> None:
        B = prob.B
        self.prob, self.reg, self.tol, self.corrector, self.t0 = prob, reg, tol, corrector, t0
        self.f, self.g = warm if warm is not None else (np.zeros(prob.x.shape[:2]),
                                                        np.zeros(prob.y.shape[:2]))
        self.la, self.lb = log_weights(prob.a), log_weights(prob.b)
        self.schedule = schedule
        self.target = np.full(B, reg)
        self.ops = make_ops(backend, prob.x, prob.y, prob.cost)
        self.accel = _Anderson(anderson, prob.b / prob.mass[:, None])
        self.hist: list[tuple] = []
        self.status, self.it, self.passes = "max_iter", 0, 0
        self.last_print = time.perf_counter()
        self.recent: list[np.ndarray] = []  # errors of the iterates at the target eps
        self.best_err, self.since_best = np.full(B, np.inf), np.zeros(B, dtype=np.int64)
        self.at_target = 0
        self.newton = _Newton(prob, self.ops, self.la, self.lb) if _Newton.eligible(prob) else None
        self.low = self.ops.low_precision and _use_float32(
            mixed_precision, prob.x.shape[1] * prob.y.shape[1])
        self.low_errs: list[float] = []
        self.mcost = None

    def iterate(self, max_iter: int, callback, verbose: bool, start_only: bool) -> None:
        """Sinkhorn iterations until a stopping rule holds (``status`` says which)."""
        while True:
            stage = self.it < len(self.schedule)  # an eps-scaling iteration
            self.eps = self.schedule[self.it] if stage else self.target
            self.inv = 1.0 / self.eps
            tg = self._pass(stage)
            stop = self._record(callback, verbose)
            if not stage:
                self._guard()
            status = self._stop_reason(stage, stop, start_only, max_iter)
            if status is not None:
                self.status = status
                return
            self._update_g(stage, tg)

    def _pass(self, stage: bool) -> np.ndarray:
        """One fused pass: the row update ``f``, the columns of ``P(f, g)`` (``col``, ``err``)
        and the column update ``g~`` (returned), coarse-corrected at the target eps."""
        # row update f_i = -eps log sum_j b_j exp((g_j - C_ij) / eps) (shifted by f_i),
        # then the columns of P(f, g) and the update g~ (one fused pass with Numba); the
        # mean cost of each row comes along once the solve may stop (no final pass then)
        near = (not self.low and not stage and len(self.recent) > 0
                and np.all(self.recent[-1] <= NEAR_TOL * self.tol))
        parts = self.corrector.parts if self.corrector is not None and not stage else 0
        self.f, lse_c, npass, self.g, self.mcost, colparts = self.ops.sinkhorn_iteration(
            self.la, self.lb, self.f, self.g, self.inv, low=self.low, want_cost=near,
            parts=parts)
        self.passes += npass
        self.it += 1
        # a far-off g: huge error, the guard restarts
        self.col, self.err = _columns(self.prob, lse_c)
        tg = self.g - self.eps[:, None] * lse_c
        if colparts is not None:
            tg[0] += self.eps[0] * self.corrector.step(colparts[:, 0], self.col[0])
        return tg

    def _record(self, callback, verbose: bool):
        """The iteration's history entry, verbose line and callback: the callback's answer
        (true: stop)."""
        prob, eps, err = self.prob, self.eps, self.err
        objective = ((prob.a * self.f).sum(axis=1) + (prob.b * self.g).sum(axis=1)
                     - eps * (self.col.sum(axis=1) - prob.mass**2))
        now = solve_clock() - self.t0
        self.hist.append((self.it, float(eps.max()), err.copy(), objective, now, self.low))
        eps_user = float(prob.to_user(eps.max()))
        if verbose and (time.perf_counter() - self.last_print >= 1.0 or self.it == 1):
            self.last_print = time.perf_counter()
            print(f"[otgrid.sinkhorn] iter {self.it:6d}  eps {eps_user:.3e}  marginal error "
                  f"{err.max():.3e}" + ("  (float32)" if self.low else ""), flush=True)
        return callback is not None and callback(RegularizedInfo(
            self.it, eps_user, _info_value(err, prob.batched),
            _info_value(prob.to_user(objective), prob.batched), now))

    def _guard(self) -> None:
        """Anderson's restart rules at the target eps (see SAFEGUARD_WINDOW, STALL_WINDOW)."""
        # the extrapolation restarts (fresh history) when the error jumps above
        # DIVERGENCE_FACTOR times the smallest of the last SAFEGUARD_WINDOW iterates
        err = self.err
        self.recent.append(err.copy())
        improved = err < self.best_err
        self.best_err = np.where(improved, err, self.best_err)
        self.since_best = np.where(improved, 0, self.since_best + 1)
        if np.any(err > DIVERGENCE_FACTOR * np.min(self.recent[-SAFEGUARD_WINDOW:], axis=0)):
            self.accel.reset()
        elif np.any(self.since_best >= STALL_WINDOW):
            self.accel.reset()
            self.accel.depth //= 2  # down to plain Sinkhorn (depth 0), which converges
            self.since_best[:] = 0

    def _stop_reason(self, stage: bool, stop, start_only: bool, max_iter: int) -> str | None:
        """The stopping checks after an iteration: the status to stop with, or None.

        Converged only at the target eps and, unless ``start_only``, on a float64 iteration
        (a float32 one may instead switch the precision); then the callback, then ``max_iter``.
        """
        if start_only and not stage and np.all(self.err <= self.tol):
            return "converged"
        if self.low and not stage:
            self._switch_precision()
        elif not stage and np.all(self.err <= self.tol):
            return "converged"
        if stop:
            return "callback"
        if self.it >= max_iter:
            return "max_iter"
        return None

    def _switch_precision(self) -> None:
        """Mixed precision: float64 from the next iteration once the float32 error meets the
        tolerance or stops improving (less than a factor 2 over MIXED_STALL iterations)."""
        # the solve stops only on a float64 iteration, whose marginal error is the certified one
        errs = self.low_errs
        errs.append(float(self.err.max()))
        if np.all(self.err <= MIXED_SWITCH * self.tol) or (
                len(errs) > MIXED_STALL and errs[-1] <= MIXED_STALL_BELOW
                and errs[-1] > 0.5 * errs[-1 - MIXED_STALL]):
            self.low = False

    def _update_g(self, stage: bool, tg: np.ndarray) -> None:
        """The next ``g``: ``g~`` during eps-scaling; at the target eps, the Newton polish when
        due and it improves the iterate, else Anderson's extrapolation of ``g~``."""
        if stage:
            self.g = tg
            return
        self.at_target += 1
        if (self.newton is not None and self.at_target >= NEWTON_AFTER
                and (self.at_target - NEWTON_AFTER) % NEWTON_EVERY == 0):
            g_new, steps, npass = self.newton.polish(self.f, self.g, self.err, self.eps,
                                                     self.tol)
            self.passes += npass
            if steps:  # Newton improved the iterate: continue from it, afresh
                self.accel.reset()
                self.g = g_new
                return
        self.g = self.accel.step(self.g, tg)

    def final_pass(self) -> np.ndarray:
        """The passes a stopped solve still needs: the rows of the plan ``P(f, g)``.

        After a float32 iteration, its columns measured in float64 first; then, unless the
        last iteration made the rows exact (to rounding) and measured ``<P, C>``, one pass
        for the rows and their mean costs ``mcost``.
        """
        prob, inv = self.prob, self.inv
        if self.low:  # stopped early on a float32 iteration: measure its columns in float64
            lse_c, _ = self.ops.lse("cols", self.la + self.f * inv[:, None], self.g, inv)
            self.passes += 1
            self.col, self.err = _columns(prob, lse_c)
        if self.mcost is None or self.low:
            # final pass: rows of P(f, g) and <P, C> (the columns were measured just above)
            lse_r, self.mcost = self.ops.lse("rows", self.lb + self.g * inv[:, None], self.f,
                                             inv, want_cost=True)
            self.passes += 1
            return prob.a * np.exp(lse_r)
        return prob.a.copy()

    def result(self, rows: np.ndarray, user_prob: _Problem, order, start_passes: float, *,
               n_samples, rng, verbose: bool) -> RegularizedResult:
        """The RegularizedResult (via ``_finish``), in the caller's order of the points."""
        f, g = _normalise(self.f, self.g, self.prob)
        prob, col, mcost, eps, stat_ops = self.prob, self.col, self.mcost, self.eps, self.ops
        if order is not None:  # back to the caller's order of the points
            bx, by = np.argsort(order[0]), np.argsort(order[1])
            f, rows, mcost, prob = f[:, bx], rows[:, bx], mcost[:, bx], user_prob
            g, col = g[:, by], col[:, by]
            stat_ops = _Reordered(self.ops, order)
        transport = (rows * mcost).sum(axis=1)
        mass_p = rows.sum(axis=1)
        objective = ((prob.a * f).sum(axis=1) + (prob.b * g).sum(axis=1)
                     - eps * (mass_p - prob.mass**2))
        primal = ((rows * f).sum(axis=1) + (col * g).sum(axis=1)
                  - eps * (mass_p - prob.mass**2))
        with np.errstate(over="ignore"):
            stat = _statistic(stat_ops, prob, f, g, lambda v: np.exp(v / eps[:, None]),
                              n_samples, rng)
        if verbose:
            total = np.abs(rows - prob.a).sum(axis=1) / prob.mass + self.err
            print(f"[otgrid.sinkhorn] {self.status}: marginal error {total.max():.3e} after "
                  f"{self.it} iterations", flush=True)
        passes = self.passes + int(np.ceil(start_passes))
        # warn_stack 4: a ConvergenceWarning points at the caller of sinkhorn, as before
        return _finish(prob, f=f, g=g, r=rows, c=col, transport=transport, objective=objective,
                       primal=primal, stat=stat, iterations=self.it, passes=passes,
                       status=self.status, tol=self.tol, hist=self.hist, t0=self.t0,
                       backend=self.ops.name, method="sinkhorn", regularizer="kl",
                       reg=self.reg, fix="increase max_iter, increase reg, or loosen tol.",
                       warn_stack=4)
