"""The exact Wasserstein-1 critic on a grid: a certified Chambolle–Pock solver.

Problem (ARCHITECTURE.md §2). With ``c = mu - nu`` and forward differences ``D``,

.. math::

    W_{grid} = \\max_f \\langle c, f\\rangle \\ \\text{s.t.}\\ |(Df)_i| \\le 1
             = \\min_y \\sum_i |y_i|_* \\ \\text{s.t.}\\ D^\\top y = c .

The iteration (Chambolle & Pock 2011; Pinetz, Soukup & Pock, Alg. 1) is run with the primal step
preconditioned by ``(D^T D)^{-1}`` (Jacobs, Léger, Li & Osher 2019, "G-prox PDHG"):

.. code-block:: text

    u     = (D^T D)^+ (c - D^T y)              # one DCT pair
    f_new = f + tau u
    y     = shrink(y + sigma D(2 f_new - f), sigma),   sigma = 1 / tau

The preconditioned step needs ``tau sigma |D (D^T D)^{-1/2}|^2 = tau sigma <= 1`` whatever the
grid, and the same ``u`` is the Poisson correction that makes ``y + D u`` an exactly feasible
flow, so the upper bound of the certificate costs no extra solve.
"""

from __future__ import annotations

import dataclasses
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from otgrid._device import is_cupy_array
from otgrid._validation import as_finite_array, check_choice, check_positive_int
from otgrid.backends import BACKENDS, make_kernels, resolve_backend
from otgrid.errors import ConvergenceWarning
from otgrid.grid import Grid

if TYPE_CHECKING:
    from otgrid.interp import GridFunction

__all__ = ["CheckInfo", "CriticResult", "SolveHistory", "solve_critic"]

Norm = Literal["euclidean", "cityblock"]
NORMS = ("euclidean", "cityblock")

# Default primal step tau = kappa_d * (number of cells) / W0, where W0 = sum_i |(D u0)_i| is the
# cost of the least-squares flow u0 = (D^T D)^+ c (an upper bound on W). tau scales like the
# inverse of a typical flow magnitude per cell. kappa_d was measured on Gaussian pairs, 8gaussians
# vs a Gaussian, point masses and random measures (64^2, 128^2 grids, 1D with 1024 cells):
# within a factor 2 of the best fixed tau on each of them.
_KAPPA = {1: 4.0}
_KAPPA_DEFAULT = 0.5


@dataclass(frozen=True)
class SolveHistory:
    """The certificate at every check of a solve.

    Attributes
    ----------
    iteration : ndarray of int
        Iteration number of each check.
    lower, upper : ndarray of float
        Best certified bounds on ``W_grid`` known at that check.
    seconds : ndarray of float
        Wall time since the start of the solve.
    """

    iteration: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    seconds: np.ndarray

    @property
    def gap(self) -> np.ndarray:
        """``upper - lower`` at each check."""
        return self.upper - self.lower

    def __len__(self) -> int:
        return len(self.iteration)


@dataclass(frozen=True)
class CheckInfo:
    """What a ``callback`` of :func:`solve_critic` receives at each check.

    Attributes
    ----------
    iteration : int
    lower, upper, gap : float
        Best certified bounds so far and their difference.
    seconds : float
        Wall time since the start of the solve.
    problem : int
        Index of the problem in a batch (0 for a single problem).
    """

    iteration: int
    lower: float
    upper: float
    gap: float
    seconds: float
    problem: int = 0


@dataclass(frozen=True, eq=False)
class CriticResult:
    """Result of :func:`solve_critic`: the critic, the flow and certified bounds on W.

    Attributes
    ----------
    w1 : float
        Estimate ``(lower + upper) / 2``; ``|w1 - W_grid| <= gap / 2``.
    lower : float
        Certified lower bound: ``<mu - nu, critic>`` for the feasible ``critic``.
    upper : float
        Certified upper bound: the cost ``sum_i |flow_i|`` of an exactly feasible flow.
    gap : float
        ``upper - lower``.
    critic : ndarray, shape grid.shape
        A feasible critic (``|(D critic)_i| <= 1`` in every cell, up to rounding), normalised so
        that ``sum((mu + nu) / 2 * critic) == 0``. It is high where ``mu`` has mass and low where
        ``nu`` has. A CuPy array when the masses were CuPy arrays (so is ``flow``).
    flow : ndarray, shape (ndim, \\*grid.shape)
        Transport flux moving ``mu`` onto ``nu``: ``flow[k][i] / dx_k`` is the mass moved from
        cell ``i`` to cell ``i + e_k`` (negative: the other way). ``flow[k]`` is zero on the last
        index of axis ``k``. Its divergence equals ``mu - nu`` to rounding.
    iterations : int
        Iterations run.
    converged : bool
        Whether ``gap <= tol * upper`` (or the gap reached rounding level).
    status : {"converged", "max_iter", "time_limit", "callback", "interrupted"}
        Why the solve stopped.
    message : str
        Human-readable status.
    history : SolveHistory
        The bounds at every check.
    seconds : float
        Wall time of the solve.
    backend : str
        Backend that ran (``"numpy"``, ``"numba"`` or ``"cuda"``).
    grid : Grid
        The grid.
    norm : {"euclidean", "cityblock"}
        The pointwise norm of the constraint.
    tol : float
        Requested relative gap.
    dtype : numpy.dtype
        Working precision of the iterates (the certificate is always computed in float64).
    step : float
        The primal step ``tau`` at the end (``sigma = 1 / tau``).
    restarts : int
        Restarts of the iteration (each may adapt the step).
    levels : int
        Grid levels of the multilevel start (1: none).
    float64_from : int or None
        With ``dtype=float32``: the iteration at which the float32 iterates stopped improving
        the gap (their precision floor) and the solve went on in float64; None otherwise.
    """

    w1: float
    lower: float
    upper: float
    gap: float
    critic: np.ndarray = field(repr=False)
    flow: np.ndarray = field(repr=False)
    iterations: int
    converged: bool
    status: str
    message: str
    history: SolveHistory = field(repr=False)
    seconds: float
    backend: str
    grid: Grid
    norm: str
    tol: float
    dtype: np.dtype
    step: float
    restarts: int = 0
    levels: int = 1
    float64_from: int | None = None

    @property
    def relative_gap(self) -> float:
        """``gap / upper`` (0 when ``upper == 0``)."""
        return self.gap / self.upper if self.upper > 0 else 0.0

    def interpolant(self) -> GridFunction:
        """The critic as a function of points: (bi)linear inside, 1-Lipschitz extension outside.

        Returns
        -------
        otgrid.interp.GridFunction
            ``f(x)`` and ``f.grad(x)`` for points ``x`` of shape ``(n, ndim)``.
        """
        from otgrid.interp import GridFunction

        return GridFunction(self.grid, self.critic)

    def __str__(self) -> str:
        return (f"W = {self.w1:.10g} in [{self.lower:.10g}, {self.upper:.10g}] "
                f"(relative gap {self.relative_gap:.2e}, {self.iterations} iterations, "
                f"{self.seconds:.3g} s, backend {self.backend}, {self.status})")


# ----------------------------------------------------------------------------- solver internals
# Adaptive primal weight with restarts (PDLP: Applegate et al. 2021, "Practical large-scale
# linear programming using primal-dual hybrid gradient", §3.3-3.4), measured in this solver on
# the Gaussian pair and 8gaussians vs N(0, I) at 64^2 (iterations to relative gap 1e-4 / 1e-6):
# fixed step 620 / 22 220 and 1 280 / 25 550; PDLP restarts with the primal weight update
# (theta = 0.5) 240 / 6 550 and 7 520 / 16 880 -- the weight drifts until the critic (lower
# bound) stalls; restarting to the average never won. Kept: the PDLP update, but a step change
# is only applied in the direction that helps the lagging side of the certificate (the critic's
# infeasibility loss vs the flow's correction loss), and tau stays within [tau0/16, 16 tau0]:
# 240 / 1 920 and 1 280 / 6 940.
_RESTART_EVERY = 64
_PW_THETA = 0.5
_PW_CAP = 16.0
_BETA_SUFFICIENT, _BETA_NECESSARY, _BETA_ARTIFICIAL = 0.2, 0.8, 0.36
_CHECK_FRACTION = 0.02
# float32 iterates: a problem whose relative gap has not fallen by 10 % over this many checks has
# hit the precision floor of its float32 iterates (measured: 8gaussians vs N(0, I) at 64^2 stays
# at a relative gap of 2e-6 for 10^6 iterations); it continues in float64 from its best
# certified critic and flow.
_F32_STALL_CHECKS = 15
# ... counted only once the relative gap is below this (far above float32's floor; a plateau of
# the iteration at a larger gap is not the precision limit).
_F32_STALL_GAP = 1e-4


class _Best:
    """Per problem: the best certified bounds seen so far, with the critic and flow attaining them.

    Arrays are indexed by the problem's position in the caller's batch; ``ids`` maps the active
    (not yet finished) problems of the iteration to those positions.
    """

    def __init__(self, cert, nb: int, shape: tuple[int, ...]) -> None:
        xp = cert.xp
        self.lower = np.full(nb, -np.inf)
        self.upper = np.full(nb, np.inf)
        self.critic = xp.zeros((nb, *shape))
        self.flow_y = xp.zeros((nb, len(shape), *shape))
        self.flow_u = xp.zeros((nb, *shape))

    def update(self, cert, ids, c64, f64, y64, u64, flow_candidates: bool) -> None:
        """Evaluate the certificate of the iterates ``(f, y)`` (``u`` their Poisson corrections)."""
        upper = cert.flow_cost(y64, u64)
        xp = cert.xp
        for j in np.flatnonzero(upper < self.upper[ids]):
            b = ids[j]
            self.upper[b] = upper[j]
            self.flow_y[b] = y64[j]
            self.flow_u[b] = u64[j]
        cands = [f64, cert.repair(f64)]
        if flow_candidates:
            ix = xp.asarray(ids)
            g = cert.flow_critic(cert.corrected_flow(self.flow_y[ix], self.flow_u[ix]))
            cands += [g, cert.repair(g)]
        for cand in cands:
            if cand is None:
                continue
            lip = np.maximum(1.0, cert.max_grad_norm(cand))
            lower = cert.dot(c64, cand) / lip
            for j in np.flatnonzero(lower > self.lower[ids]):
                b = ids[j]
                self.lower[b] = lower[j]
                self.critic[b] = cand[j] / lip[j]


@dataclass
class _Outcome:
    """How one problem of a batch ended."""

    status: str = "max_iter"
    iterations: int = 0
    seconds: float = 0.0
    step: float = 0.0
    restarts: int = 0
    history: list = field(default_factory=list)
    float64_from: int | None = None


def _default_steps(kern, c64) -> np.ndarray:
    """``tau = kappa * n_cells / W0`` per problem, ``W0`` the cost of the least-squares flow."""
    u0 = kern.poisson(c64)
    w0 = kern.flow_cost(kern.xp.zeros((c64.shape[0], kern.ndim, *kern.shape)), u0)
    return _KAPPA.get(kern.ndim, _KAPPA_DEFAULT) * float(np.prod(kern.shape)) / w0


def _losses(cert, c64, f64, y64, u64) -> tuple[np.ndarray, np.ndarray]:
    """What the certificate loses on each side at the iterate ``(f, y)``, per problem.

    Lower side: ``<c, f>`` minus the certified lower bound of ``f`` (rescaled or repaired), the
    price of the critic's infeasibility. Upper side: the cost of the corrected flow ``y + Du``
    minus ``sum |y|``, the price of the flow's divergence error.
    """
    cf = cert.dot(c64, f64)
    low = cf / np.maximum(1.0, cert.max_grad_norm(f64))
    rep = cert.repair(f64)
    if rep is not None:
        low = np.maximum(low, cert.dot(c64, rep) / np.maximum(1.0, cert.max_grad_norm(rep)))
    up = cert.flow_cost(y64, u64) - cert.flow_cost(y64, cert.xp.zeros_like(u64))
    return cf - low, up


def _iterate(kern, cert, c64, f, y, tau, *, tol, max_iter, check_every, adaptive, deadline,
             callback, scale, t0, verbose, flow_candidates, floor, interrupt, problem_ids=None,
             k0=0):
    """Run the preconditioned Chambolle–Pock loop on a batch; return (best, outcomes).

    ``c64``: float64 device array ``(B, *shape)`` (scaled); ``f``, ``y``: starting iterates in
    the working dtype; ``tau``: starting steps ``(B,)``. Problems leave the batch as soon as they
    stop (converged, callback, max_iter, time limit), so the others run on smaller arrays.
    With float32 iterates, a problem whose gap stalls (``_F32_STALL_CHECKS``) stops with status
    ``"stalled"``. ``problem_ids``: the problems' indices for :class:`CheckInfo`; ``k0``:
    iterations already run (a continuation), counted in ``max_iter`` and the history.
    """
    xp = kern.xp
    nb = c64.shape[0]
    dt = kern.dtype
    best = _Best(cert, nb, kern.shape)
    out = [_Outcome() for _ in range(nb)]
    ids = np.arange(nb)
    c = c64 if dt == np.float64 else c64.astype(dt)
    tau = np.asarray(tau, dtype=np.float64).copy()
    tau0 = tau.copy()
    f_out, r = xp.empty_like(f), xp.empty_like(f)
    # restart state (per problem): anchors, the fixed-point residual at the last restart
    f_anchor, y_anchor = f.copy(), y.copy()
    res0 = np.full(nb, np.nan)
    res_prev = np.full(nb, np.inf)
    k_restart = np.zeros(nb, dtype=np.int64)
    pending = np.zeros(nb, dtype=bool)
    pids = np.arange(nb) if problem_ids is None else np.asarray(problem_ids)
    watch_stall = dt == np.float32
    stall_ref = np.full(nb, np.inf)
    stall_count = np.zeros(nb, dtype=np.int64)
    last_print = time.perf_counter()
    k = next_check = k0
    try:
        while True:
            kern.residual(c, y, r)
            u = kern.poisson(r)
            if adaptive and pending.any():
                _restart(kern, cert, c64, f, y, u, tau, tau0, f_anchor, y_anchor, pending,
                         res0, res_prev, k_restart, k, out, ids)
            if k >= next_check or k >= max_iter:
                # checks every check_every iterations, then every 2 % of the iterations run:
                # the certificate stays a small share of the work in long solves
                next_check = k + max(check_every, int(_CHECK_FRACTION * k))
                if dt == np.float64:
                    best.update(cert, ids, c64, f, y, u, flow_candidates)
                else:  # the certificate is evaluated in float64 from the float32 iterates
                    y64 = y.astype(np.float64)
                    r64 = xp.empty(c64.shape)
                    cert.residual(c64, y64, r64)
                    best.update(cert, ids, c64, f.astype(np.float64), y64, cert.poisson(r64),
                                flow_candidates)
                now = time.perf_counter() - t0
                done = np.zeros(len(ids), dtype=bool)
                for j, b in enumerate(ids):
                    lo, up = best.lower[b], best.upper[b]
                    gap = up - lo
                    out[b].history.append((k, scale[b] * lo, scale[b] * up, now))
                    status = None
                    stop = callback is not None and callback(CheckInfo(
                        k, scale[b] * lo, scale[b] * up, scale[b] * gap, now, int(pids[b])))
                    if watch_stall and gap <= _F32_STALL_GAP * up:
                        if gap < 0.9 * stall_ref[b]:
                            stall_ref[b], stall_count[b] = gap, 0
                        else:
                            stall_count[b] += 1
                    if gap <= tol * up or gap <= floor[b]:
                        status = "converged"
                    elif stop:
                        status = "callback"
                    elif k >= max_iter:
                        status = "max_iter"
                    elif deadline is not None and time.perf_counter() >= deadline:
                        status = "time_limit"
                    elif watch_stall and stall_count[b] >= _F32_STALL_CHECKS:
                        status = "stalled"
                    if status is not None:
                        done[j] = True
                        out[b].status, out[b].iterations, out[b].seconds = status, k, now
                        out[b].step = float(tau[j])
                if verbose and (time.perf_counter() - last_print >= 1.0 or k == 0
                                or done.all()):
                    last_print = time.perf_counter()
                    b = ids[0]
                    print(f"[otgrid] iter {k:7d}  lower {scale[b] * best.lower[b]:.10g}  upper "
                          f"{scale[b] * best.upper[b]:.10g}  rel. gap "
                          f"{(best.upper[b] - best.lower[b]) / best.upper[b]:.2e}"
                          + (f"  ({len(ids)} problems running)" if nb > 1 else ""), flush=True)
                if done.all():
                    break
                if done.any():
                    keep = np.flatnonzero(~done)
                    kx = xp.asarray(keep)
                    ids, tau, tau0 = ids[keep], tau[keep], tau0[keep]
                    c64, c, f, y, u = c64[kx], c[kx], f[kx], y[kx], u[kx]
                    f_anchor, y_anchor = f_anchor[kx], y_anchor[kx]
                    res0, res_prev = res0[keep], res_prev[keep]
                    k_restart, pending = k_restart[keep], pending[keep]
                    f_out, r = xp.empty_like(f), xp.empty_like(f)
            check_restart = adaptive and k > 0 and k % _RESTART_EVERY == 0
            if check_restart:
                y_prev = y.copy()
                ur = kern.dot(u, r)
            kern.dual_step(f, u, y, f_out, tau, 1.0 / tau)
            f, f_out = f_out, f
            if check_restart:
                # fixed-point residual of the iterate in the norm of the preconditioned
                # iteration: |D df|^2 / tau + tau |dy|^2 with df = tau u, |D u|^2 = <u, r>
                # (<u, r> = |Du|^2 >= 0 can round to a tiny negative number near convergence)
                res = np.sqrt(np.maximum(tau * ur + tau * kern.sq_norm(y - y_prev), 0.0))
                _decide_restarts(res, res0, res_prev, k_restart, k, pending)
            k += 1
    except KeyboardInterrupt:
        if interrupt != "return":
            raise
        now = time.perf_counter() - t0
        for j, b in enumerate(ids):
            out[b].status, out[b].iterations, out[b].seconds = "interrupted", k, now
            out[b].step = float(tau[j])
            out[b].history.append((k, scale[b] * best.lower[b], scale[b] * best.upper[b], now))
    return best, out


def _continue_in_float64(cert, c64, best, outs, *, problem_ids, scale, **kw) -> None:
    """Run the problems that stalled in float32 on in float64 (in place in ``best``, ``outs``).

    They restart from their best certified critic and exactly feasible flow, with their last
    step; bounds only improve (the better of the two runs is kept per side).
    """
    xp = cert.xp
    for j in [j for j, o in enumerate(outs) if o.status == "stalled"]:
        jx = xp.asarray([j])
        k0 = outs[j].iterations
        sub, (new,) = _iterate(cert, cert, c64[jx], best.critic[jx].copy(),
                               cert.corrected_flow(best.flow_y[jx], best.flow_u[jx]),
                               np.array([outs[j].step]), problem_ids=[problem_ids[j]],
                               scale=scale[[j]], k0=k0, **kw)
        if sub.lower[0] > best.lower[j]:
            best.lower[j] = sub.lower[0]
            best.critic[j] = sub.critic[0]
        if sub.upper[0] < best.upper[j]:
            best.upper[j] = sub.upper[0]
            best.flow_y[j] = sub.flow_y[0]
            best.flow_u[j] = sub.flow_u[0]
        o = outs[j]
        o.status, o.iterations, o.seconds, o.step = (new.status, new.iterations, new.seconds,
                                                     new.step)
        o.restarts += new.restarts
        o.history += new.history[1:]  # its first check (at k0) re-evaluates the start
        o.float64_from = k0


def _decide_restarts(res, res0, res_prev, k_restart, k, pending) -> None:
    """PDLP's restart criteria on the fixed-point residual, per problem (in place)."""
    first = np.isnan(res0)
    res0[first] = res[first]
    since = k - k_restart
    do = ~first & ((res <= _BETA_SUFFICIENT * res0)
                   | ((res <= _BETA_NECESSARY * res0) & (res > res_prev))
                   | (since >= _BETA_ARTIFICIAL * k))
    res_prev[:] = np.where(first, np.inf, res)
    pending |= do


def _restart(kern, cert, c64, f, y, u, tau, tau0, f_anchor, y_anchor, pending, res0, res_prev,
             k_restart, k, out, ids) -> None:
    """Restart the pending problems at the current iterate: new primal weight, new anchors."""
    xp = kern.xp
    js = np.flatnonzero(pending)
    jx = xp.asarray(js)
    fj, yj, uj = f[jx], y[jx], u[jx]
    f64 = fj if kern.dtype == np.float64 else fj.astype(np.float64)
    y64 = yj if kern.dtype == np.float64 else yj.astype(np.float64)
    df = np.sqrt(cert.grad_sq((fj - f_anchor[jx]).astype(np.float64)))
    dy = np.sqrt(cert.sq_norm((yj - y_anchor[jx]).astype(np.float64)))
    ok = (df > 0) & (dy > 0)
    proposal = tau[js].copy()
    proposal[ok] = np.exp(_PW_THETA * np.log(df[ok] / dy[ok])
                          + (1 - _PW_THETA) * np.log(tau[js][ok]))
    proposal = np.clip(proposal, tau0[js] / _PW_CAP, tau0[js] * _PW_CAP)
    c64j = c64[jx]
    if kern.dtype != np.float64:
        r64 = xp.empty(c64j.shape)
        cert.residual(c64j, y64, r64)
        u64 = cert.poisson(r64)
    else:
        u64 = uj
    low_loss, up_loss = _losses(cert, c64j, f64, y64, u64)
    veto = ((proposal > tau[js]) & (low_loss > up_loss)) | (
        (proposal < tau[js]) & (up_loss > low_loss))
    tau[js] = np.where(veto, tau[js], proposal)
    f_anchor[jx] = fj
    y_anchor[jx] = yj
    res0[js] = np.nan
    res_prev[js] = np.inf
    k_restart[js] = k
    pending[js] = False
    for j in js:
        out[ids[j]].restarts += 1


# ------------------------------------------------------------------------------- multilevel
# Coarsen by 2 per axis while the coarse grid keeps at least this many cells per axis.
_ML_MIN_CELLS = 32
# "auto" uses the multilevel start on 2D grids with at least this many cells.
_ML_AUTO_CELLS = 128 * 128
# The coarse problems are solved to this multiple of the requested relative gap.
_ML_COARSE_TOL = 10.0


def _coarsen(c: np.ndarray) -> np.ndarray:
    """Sum 2 x ... x 2 blocks of the trailing grid axes of ``c`` (B, *shape); odd sizes padded."""
    nd = c.ndim - 1
    pad = [(0, 0)] + [(0, n % 2) for n in c.shape[1:]]
    c = np.pad(c, pad)
    shape = [c.shape[0]]
    for n in c.shape[1:]:
        shape += [n // 2, 2]
    return c.reshape(shape).sum(axis=tuple(range(2, 2 + 2 * nd, 2)))


def _interp_axis(a: np.ndarray, axis: int, n_fine: int, staggered: bool) -> np.ndarray:
    """Linear interpolation along ``axis`` from a coarse grid to the twice finer one.

    Cell values sit at cell centres (fine cell ``i`` is at coarse coordinate ``i/2 - 1/4``);
    staggered values at the upper faces (fine face ``i`` is at coarse face ``(i - 1)/2``).
    """
    n_c = a.shape[axis]
    i = np.arange(n_fine)
    pos = (i - 1) / 2.0 if staggered else i / 2.0 - 0.25
    top = max(n_c - (2 if staggered else 1), 0)
    pos = np.clip(pos, 0.0, top)
    i0 = np.minimum(np.floor(pos).astype(np.int64), max(top - 1, 0))
    w = pos - i0
    i1 = np.minimum(i0 + 1, n_c - 1)
    sh = [1] * a.ndim
    sh[axis] = n_fine
    w = w.reshape(sh)
    return np.take(a, i0, axis=axis) * (1 - w) + np.take(a, i1, axis=axis) * w


def _prolong(critic: np.ndarray, flow: np.ndarray, shape: tuple[int, ...]):
    """Coarse critic ``(B, *shape_c)`` and flow ``(B, ndim, *shape_c)`` on the fine grid."""
    nd = len(shape)
    f = critic
    for k, n in enumerate(shape):
        f = _interp_axis(f, 1 + k, n, False)
    comps = []
    for k in range(nd):
        yk = flow[:, k]
        for a, n in enumerate(shape):
            yk = _interp_axis(yk, 1 + a, n, a == k)
        idx = [slice(None)] * (nd + 1)
        idx[1 + k] = slice(shape[k] - 1, None)
        yk[tuple(idx)] = 0.0
        comps.append(yk / 2.0 ** nd)
    return f, np.stack(comps, axis=1)


def _multilevel_start(backend, grid_shape, dx, norm, dtype, c64_host, tol, check_every,
                      flow_candidates, floor_scale, max_iter, deadline):
    """Solve the coarsened problems (recursively) and prolong: starting iterates and steps."""
    shape_c = tuple((n + 1) // 2 for n in grid_shape)
    dx_c = tuple(2.0 * h for h in dx)
    cc = _coarsen(c64_host)
    kern = make_kernels(backend, shape_c, dx_c, norm, dtype)
    cert = kern if kern.dtype == np.float64 else make_kernels(backend, shape_c, dx_c, norm,
                                                              np.float64)
    nb = cc.shape[0]
    with kern.session():
        c_dev = cert.to_device(cc, np.float64)
        if min(shape_c) >= 2 * _ML_MIN_CELLS:
            f0, y0, tau, _ = _multilevel_start(backend, shape_c, dx_c, norm, dtype, cc, tol,
                                            check_every, flow_candidates, floor_scale, max_iter,
                                            deadline)
            f0, y0 = kern.to_device(f0), kern.to_device(y0)
        else:
            f0 = kern.xp.zeros((nb, *shape_c), dtype=kern.dtype)
            y0 = kern.xp.zeros((nb, len(shape_c), *shape_c), dtype=kern.dtype)
            tau = _default_steps(cert, c_dev)
        best, outs = _iterate(kern, cert, c_dev, f0, y0, tau, tol=_ML_COARSE_TOL * tol,
                              max_iter=max_iter, check_every=check_every, adaptive=True,
                              deadline=deadline,
                              callback=None, scale=np.ones(nb), t0=time.perf_counter(),
                              verbose=False, flow_candidates=flow_candidates,
                              floor=floor_scale * np.abs(cc).reshape(nb, -1).sum(1),
                              interrupt="raise")
        critic = cert.to_host(best.critic)
        flow = cert.to_host(cert.corrected_flow(best.flow_y, best.flow_u))
    f, y = _prolong(critic, flow, tuple(grid_shape))
    steps = np.array([o.step for o in outs]) * 2.0 ** len(grid_shape)
    return f, y, steps, sum(o.iterations for o in outs) / nb


def _trivial_result(grid, norm, tol, backend, dtype, t0) -> CriticResult:
    z = np.zeros(grid.shape)
    hist = SolveHistory(np.array([0]), np.array([0.0]), np.array([0.0]), np.array([0.0]))
    return CriticResult(0.0, 0.0, 0.0, 0.0, z, np.zeros((grid.ndim, *grid.shape)), 0, True,
                        "converged", "mu and nu are equal: W = 0.", hist,
                        time.perf_counter() - t0, backend, grid, norm, tol, np.dtype(dtype), 0.0)


def _check_masses(x: Any, name: str, grid: Grid) -> tuple[np.ndarray, bool]:
    """Masses as a float64 array ``(B, *grid.shape)``; whether a batch axis was given."""
    arr = as_finite_array(x, name, nonnegative=True)
    if arr.shape == grid.shape:
        arr, batched = arr[None], False
    elif arr.ndim == grid.ndim + 1 and arr.shape[1:] == grid.shape and arr.shape[0] > 0:
        batched = True
    else:
        raise ValueError(f"{name} must have the grid's shape {grid.shape} (or (B, *{grid.shape}) "
                         f"for a batch of B problems); got {arr.shape}. Use grid.discretize(dist) "
                         "or grid.histogram(samples) to build it.")
    totals = arr.reshape(arr.shape[0], -1).sum(axis=1)
    if np.any(totals <= 0):
        which = "" if not batched else f" (problem {int(np.argmax(totals <= 0))})"
        raise ValueError(f"{name} has zero total mass{which}; it must hold some mass.")
    return arr, batched


def _warm_list(warm_start: Any, nb: int, batched: bool, grid: Grid) -> list:
    if warm_start is None:
        return [None] * nb
    items = list(warm_start) if batched and isinstance(warm_start, (list, tuple)) else None
    if items is None:
        if batched and nb > 1:
            raise TypeError("For a batch, warm_start must be a list of CriticResult (one per "
                            "problem, None allowed), e.g. the list a batch solve returned.")
        items = [warm_start] * nb
    if len(items) != nb:
        raise ValueError(f"warm_start has {len(items)} results for {nb} problems.")
    for w in items:
        if w is None:
            continue
        if not isinstance(w, CriticResult):
            raise TypeError("warm_start must be a CriticResult from an earlier solve_critic.")
        if w.grid != grid:
            raise ValueError("warm_start was computed on a different grid "
                             f"({w.grid!r}); it must be {grid!r}.")
    return items


def _message(status: str, k: int, rel: float, tol: float, max_iter: int,
             time_limit: float | None) -> str:
    if status == "converged":
        return f"Converged: relative gap {rel:.2e} <= tol {tol:.1e} after {k} iterations."
    if status == "callback":
        return f"Stopped by the callback after {k} iterations (relative gap {rel:.2e})."
    if status == "interrupted":
        return (f"Interrupted (KeyboardInterrupt) after {k} iterations; relative gap {rel:.2e}. "
                "The bounds hold.")
    if status == "time_limit":
        return (f"Reached time_limit={time_limit:g} s after {k} iterations with relative gap "
                f"{rel:.2e} > tol {tol:.1e}; the bounds still hold.")
    return (f"Reached max_iter={max_iter} with relative gap {rel:.2e} > tol {tol:.1e}; "
            "the bounds still hold. Increase max_iter or loosen tol.")


def solve_critic(
    mu: Any,
    nu: Any,
    grid: Grid,
    *,
    norm: Norm = "euclidean",
    tol: float = 1e-6,
    max_iter: int = 100_000,
    backend: str = "auto",
    dtype: Any = np.float64,
    warm_start: CriticResult | list[CriticResult | None] | None = None,
    callback: Callable[[CheckInfo], bool | None] | None = None,
    check_every: int = 10,
    step: float | None = None,
    adaptive_step: bool = True,
    multilevel: bool | Literal["auto"] = "auto",
    time_limit: float | None = None,
    interrupt: Literal["raise", "return"] = "raise",
    verbose: bool = False,
) -> CriticResult | list[CriticResult]:
    """Optimal Wasserstein-1 critic of two measures on a grid, with certified bounds on W.

    Solves the Kantorovich–Rubinstein dual on the grid (forward differences ``D``)

    .. math::

        W_{grid}(\\mu, \\nu) = \\max_f \\sum_i (\\mu_i - \\nu_i) f_i
        \\quad \\text{s.t.} \\quad |(Df)_i| \\le 1 \\ \\text{for every cell } i,

    and its dual, the Beckmann flow problem ``min sum_i |y_i|_* s.t. D^T y = mu - nu``, by a
    preconditioned Chambolle–Pock iteration with adaptive restarts, and stops when the certified
    relative gap is below ``tol``. A stack of problems on one grid is solved together.

    Parameters
    ----------
    mu, nu : array_like, shape grid.shape or (B, \\*grid.shape)
        Non-negative cell masses with equal totals (relative difference <= 1e-9); for instance
        from :meth:`Grid.discretize` or :meth:`Grid.histogram`. A leading axis of length ``B``
        makes a batch of ``B`` problems (one of the two may be a single array, used for all);
        each problem stops on its own.
    grid : Grid
        The grid both measures live on.
    norm : {"euclidean", "cityblock"}, optional
        ``"euclidean"``: ``|grad f|_2 <= 1``, a consistent discretisation of W1 with Euclidean
        ground cost (a second-order cone program in 2D). ``"cityblock"``: ``|d_k f| <= 1`` per
        axis, whose value is exactly the W1 with L1 ground cost between the discrete measures
        at the cell centres. In 1D both are the exact W1 of the discrete measures.
    tol : float, optional
        Relative gap ``(upper - lower) / upper`` at which to stop.
    max_iter : int, optional
        Iteration limit. A solve that reaches it returns ``converged=False`` and warns; its
        bounds still hold.
    backend : {"auto", "numpy", "numba", "cuda"}, optional
        ``"numpy"``: readable vectorised reference (any dimension). ``"numba"``: fused parallel
        CPU kernels (1D, 2D). ``"cuda"``: numba-cuda kernels on CuPy arrays on the GPU (1D, 2D;
        needs ``otgrid[cuda]`` and a GPU, else ``RuntimeError`` saying why). ``"auto"``: cuda
        for 1D/2D problems of at least ``otgrid.backends.CUDA_AUTO_MIN_CELLS`` cells (grid
        times batch) when a GPU is usable, numba for other 1D/2D problems, numpy otherwise.
    dtype : {numpy.float64, numpy.float32}, optional
        Precision of the iterates. The certificate is always evaluated in float64 from the
        current iterates, so the bounds hold in float32 too. A float32 solve whose gap stops
        improving (the precision floor of its iterates, typically a relative gap near 1e-6)
        goes on in float64 from its best certified critic and flow (``float64_from`` of the
        result says when).
    warm_start : CriticResult or list of CriticResult, optional
        An earlier result on the same grid (a list, one per problem, for a batch): its critic
        and flow start the iteration. The step is chosen from the new data (or given by
        ``step``), not taken from the earlier result. A warm start replaces the multilevel start.
    callback : callable, optional
        Called as ``callback(info)`` with a :class:`CheckInfo` at every check of every running
        problem, the last one included; returning ``True`` stops that problem
        (``status="callback"``).
    check_every : int, optional
        Iterations between certificate evaluations (each costs a few grid passes); after
        ``50 * check_every`` iterations, checks come every 2 % of the iterations run.
    step : float, optional
        Initial primal step ``tau`` (``sigma = 1 / tau``). By default chosen from the data as
        ``kappa * n_cells / W0`` with ``W0`` the cost of the least-squares flow.
    adaptive_step : bool, optional
        Adapt ``tau`` at restarts (PDLP's primal weight, kept within a factor 16 of the initial
        step and only moved in the direction that helps the lagging bound). ``False`` keeps the
        step fixed, as in plain Chambolle–Pock.
    multilevel : bool or "auto", optional
        Start from the solution of the problem coarsened by 2 per axis (recursively, down to
        32 cells per axis), prolonged to this grid. ``"auto"``: on 2D grids of at least
        128 x 128 cells, unless ``warm_start`` is given.
    time_limit : float, optional
        Seconds after which to stop (checked at every check); ``status="time_limit"``, the
        bounds hold.
    interrupt : {"raise", "return"}, optional
        On ``KeyboardInterrupt`` (Ctrl-C): re-raise it, or return the best certified result so
        far with ``status="interrupted"``.
    verbose : bool, optional
        Print the bounds about once a second.

    Returns
    -------
    CriticResult or list of CriticResult
        Critic, flow, bounds ``lower <= W_grid <= upper``, diagnostics; a list, one per problem,
        when ``mu`` or ``nu`` had a batch axis.

    Notes
    -----
    Certificate, valid for any iterate ``(f, y)``:

    - lower: ``<c, f / max(1, max_i |(Df)_i|)>`` (a feasible critic), or the same for a critic
      repaired by a sequential sweep;
    - upper: ``sum_i |y_i + (Du)_i|_*`` with ``D^T D u = c - D^T y`` solved by a DCT-II, which
      makes ``y + Du`` exactly feasible.

    The best bounds seen over the run are returned (with their critic and flow). The solve
    stops when ``upper - lower <= tol * upper``, or when the gap is at rounding level
    (``1e3 * eps * sum|c| * diameter``), e.g. for equal measures.

    In 1D the flow is unique and the upper bound is exact from the first iteration.

    References
    ----------
    A. Chambolle, T. Pock, "A first-order primal-dual algorithm for convex problems with
    applications to imaging", J. Math. Imaging Vis. 40 (2011).
    T. Pinetz, D. Soukup, T. Pock, "What is optimized in Wasserstein GANs?" (Alg. 1).
    M. Jacobs, F. Léger, W. Li, S. Osher, "Solving large-scale optimization problems with a
    convergence rate independent of grid size", SIAM J. Numer. Anal. 57 (2019).
    D. Applegate et al., "Practical large-scale linear programming using primal-dual hybrid
    gradient", NeurIPS 2021 (restarts and the primal weight).
    J. Liu, W. Yin, W. Li, Y. T. Chow, "Multilevel optimal transport: a fast approximation of
    Wasserstein-1 distances", SIAM J. Sci. Comput. 43 (2021).

    Examples
    --------
    >>> import otgrid as og
    >>> grid = og.Grid((-8, 8), 512)
    >>> mu = grid.discretize(og.Normal(0.0, 1.0))
    >>> nu = grid.discretize(og.Normal(1.0, 1.0))
    >>> res = og.solve_critic(mu, nu, grid, tol=1e-8)
    >>> res.converged, round(res.w1, 6)
    (True, 1.0)

    A batch: one ``mu`` against three shifted copies.

    >>> nus = np.stack([grid.discretize(og.Normal(s, 1.0)) for s in (0.5, 1.0, 2.0)])
    >>> [round(r.w1, 6) for r in og.solve_critic(mu, nus, grid, tol=1e-8)]
    [0.5, 1.0, 2.0]
    """
    t0 = time.perf_counter()
    if not isinstance(grid, Grid):
        raise TypeError(f"grid must be an otgrid.Grid; got {type(grid).__name__}.")
    norm = check_choice(norm, "norm", NORMS)
    check_choice(backend, "backend", BACKENDS)
    check_choice(interrupt, "interrupt", ("raise", "return"))
    tol = float(tol)
    if not (np.isfinite(tol) and tol > 0):
        raise ValueError(f"tol must be a positive number; got {tol}.")
    max_iter = check_positive_int(max_iter, "max_iter", minimum=0)
    check_every = check_positive_int(check_every, "check_every")
    dtype = np.dtype(dtype)
    if dtype not in (np.float32, np.float64):
        raise ValueError(f"dtype must be numpy.float64 or numpy.float32; got {dtype}.")
    if step is not None and not (np.isfinite(step) and step > 0):
        raise ValueError(f"step must be a positive number or None; got {step}.")
    if time_limit is not None and not (np.isfinite(time_limit) and time_limit > 0):
        raise ValueError(f"time_limit must be a positive number of seconds or None; "
                         f"got {time_limit}.")
    if multilevel not in (True, False, "auto"):
        raise ValueError(f"multilevel must be True, False or 'auto'; got {multilevel!r}.")
    if callback is not None and not callable(callback):
        raise TypeError("callback must be callable, e.g. callback(info) -> bool | None.")
    on_gpu = is_cupy_array(mu) or is_cupy_array(nu)  # results go back to the GPU
    if is_cupy_array(mu):
        mu = mu.get()
    if is_cupy_array(nu):
        nu = nu.get()
    mu, mu_batched = _check_masses(mu, "mu", grid)
    nu, nu_batched = _check_masses(nu, "nu", grid)
    batched = mu_batched or nu_batched
    if mu_batched and nu_batched and mu.shape[0] != nu.shape[0]:
        raise ValueError(f"mu and nu hold {mu.shape[0]} and {nu.shape[0]} problems; a batch "
                         "needs the same number (or a single array on one side).")
    nb = max(mu.shape[0], nu.shape[0])
    mu = np.broadcast_to(mu, (nb, *grid.shape))
    nu = np.broadcast_to(nu, (nb, *grid.shape))
    smu = mu.reshape(nb, -1).sum(axis=1)
    snu = nu.reshape(nb, -1).sum(axis=1)
    bad = np.flatnonzero(np.abs(smu - snu) > 1e-9 * np.maximum(smu, snu))
    if bad.size:
        b = int(bad[0])
        where = f" (problem {b})" if batched else ""
        raise ValueError(f"mu and nu must have equal total mass{where}; got {smu[b]:.12g} and "
                         f"{snu[b]:.12g}. Normalise both (e.g. mu / mu.sum()).")
    warm = _warm_list(warm_start, nb, batched, grid)
    backend = resolve_backend(backend, grid.ndim, grid.size * nb)
    deadline = None if time_limit is None else t0 + float(time_limit)

    ratio = (smu / snu).reshape((nb,) + (1,) * grid.ndim)
    c64 = mu - nu * ratio
    c64 -= c64.reshape(nb, -1).mean(axis=1).reshape((nb,) + (1,) * grid.ndim)
    weights = 0.5 * (mu + nu * ratio)
    # Solve for c / max|c| and scale back (W is positively homogeneous in c): keeps squares of
    # tiny flows from underflowing and makes the default step independent of the mass scale.
    scale = np.abs(c64).reshape(nb, -1).max(axis=1)
    live = np.flatnonzero(scale > 0)  # scale == 0: mu == nu, W = 0
    c64 = c64 / np.where(scale > 0, scale, 1.0).reshape((nb,) + (1,) * grid.ndim)
    diameter = float(np.sqrt(sum((b - a) ** 2 for a, b in grid.bounds)))
    floor_scale = 1e3 * np.finfo(np.float64).eps * diameter
    # The critic recovered from the flow (complementary slackness) is exact in 1D and becomes
    # exact for the cityblock LP once the flow's sign pattern is right (measured: 5e3 instead of
    # > 4e4 iterations to 1e-7 at 32^2); for the euclidean norm in 2D it never beat the iterate
    # in our measurements, so it is not computed there (it costs a DCT pair per check).
    flow_candidates = grid.ndim == 1 or norm == "cityblock"
    use_ml = (multilevel is True or (multilevel == "auto" and grid.ndim == 2
                                     and grid.size >= _ML_AUTO_CELLS))
    use_ml = use_ml and all(w is None for w in warm) and min(grid.shape) >= 2 * _ML_MIN_CELLS

    results: list[CriticResult | None] = [None] * nb
    levels = 1
    interrupted = False
    if live.size:
        cl = np.ascontiguousarray(c64[live])
        kern = make_kernels(backend, grid.shape, grid.dx, norm, dtype)
        kern.with_batch(live.size)
        cert = kern if dtype == np.float64 else make_kernels(backend, grid.shape, grid.dx, norm,
                                                             np.float64)
        cert.with_batch(live.size)
        with kern.session():
            c_dev = cert.to_device(cl, np.float64)
            f0 = y0 = tau = None
            if use_ml:
                try:
                    f0, y0, tau, _ = _multilevel_start(
                        backend, grid.shape, grid.dx, norm, dtype, cl, tol, check_every,
                        flow_candidates, floor_scale, max_iter, deadline)
                    f0, y0 = kern.to_device(f0), kern.to_device(y0)
                    levels = 1 + int(np.floor(np.log2(min(grid.shape) / _ML_MIN_CELLS)))
                except KeyboardInterrupt:
                    if interrupt != "return":
                        raise
                    use_ml, max_iter, interrupted = False, 0, True
            if not use_ml:
                f0 = kern.xp.zeros((live.size, *grid.shape), dtype=dtype)
                y0 = kern.xp.zeros((live.size, grid.ndim, *grid.shape), dtype=dtype)
                for j, b in enumerate(live):
                    if warm[b] is not None:
                        f0[j] = kern.to_device(warm[b].critic)
                        y0[j] = kern.to_device(warm[b].flow) * (-1.0 / scale[b])
            if step is not None:
                tau = np.full(live.size, float(step))
            elif tau is None:  # from the new data, also on a warm start (its W may differ)
                tau = _default_steps(cert, c_dev)
            best, outs = _iterate(
                kern, cert, c_dev, f0, y0, tau, tol=tol, max_iter=max_iter,
                check_every=check_every, adaptive=adaptive_step, deadline=deadline,
                callback=callback, scale=scale[live], t0=t0, verbose=verbose,
                flow_candidates=flow_candidates,
                floor=floor_scale * np.abs(cl).reshape(live.size, -1).sum(1),
                interrupt=interrupt, problem_ids=live)
            if dtype == np.float32:
                _continue_in_float64(cert, c_dev, best, outs, tol=tol, max_iter=max_iter,
                                     check_every=check_every, adaptive=adaptive_step,
                                     deadline=deadline, callback=callback, scale=scale[live],
                                     t0=t0, verbose=verbose, flow_candidates=flow_candidates,
                                     floor=floor_scale * np.abs(cl).reshape(live.size, -1).sum(1),
                                     interrupt=interrupt, problem_ids=live)
            if interrupted:  # Ctrl-C during the coarse solves: the certificate of the start
                for o in outs:
                    o.status = "interrupted"
            critics = cert.to_host(best.critic)
            flows = cert.to_host(cert.corrected_flow(best.flow_y, best.flow_u))
        for j, b in enumerate(live):
            results[b] = _result(best.lower[j], best.upper[j], critics[j], flows[j], outs[j],
                                 scale[b], weights[b], grid, norm, tol, backend, dtype, max_iter,
                                 time_limit, levels)
    for b in range(nb):
        if results[b] is None:
            results[b] = _trivial_result(grid, norm, tol, backend, dtype, t0)
    if on_gpu:  # outputs go back where the inputs came from
        import cupy

        results = [dataclasses.replace(r, critic=cupy.asarray(r.critic),
                                       flow=cupy.asarray(r.flow)) for r in results]
    for r in results:
        if r.status in ("max_iter", "time_limit"):
            warnings.warn(r.message, ConvergenceWarning, stacklevel=2)
        if verbose:
            print(f"[otgrid] {r.message}", flush=True)
    return results if batched else results[0]


def _result(lower, upper, critic, flow, out, scale, weights, grid, norm, tol, backend, dtype,
            max_iter, time_limit, levels) -> CriticResult:
    lower, upper = float(scale * lower), float(scale * upper)
    critic = critic - np.sum(weights * critic) / np.sum(weights)
    gap = upper - lower
    rel = gap / upper if upper > 0 else 0.0
    hist = SolveHistory(*(np.array(v) for v in zip(*out.history, strict=True)))
    return CriticResult(
        w1=0.5 * (lower + upper), lower=lower, upper=upper, gap=gap, critic=critic,
        flow=-scale * flow, iterations=out.iterations, converged=out.status == "converged",
        status=out.status,
        message=_message(out.status, out.iterations, rel, tol, max_iter, time_limit),
        history=hist, seconds=out.seconds, backend=backend, grid=grid, norm=norm, tol=tol,
        dtype=np.dtype(dtype), step=out.step, restarts=out.restarts, levels=levels,
        float64_from=out.float64_from)
