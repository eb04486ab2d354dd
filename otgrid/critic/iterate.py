"""The preconditioned Chambolle–Pock loop on a batch of grid problems, with its stopping rules.

:func:`iterate` runs the loop body of any backend (``kern``: the iteration's kernels in the
working dtype; ``cert``: the same in float64, for the certificate), checks the certificate
every few iterations, restarts, and lets each problem of the batch stop on its own.
:func:`continue_in_float64` takes over the problems whose float32 iterates stalled.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from otgrid._threads import solve_clock
from otgrid.critic import backend_numpy
from otgrid.critic.certificate import Best
from otgrid.critic.restart import RESTART_EVERY, decide_restarts, restart
from otgrid.critic.result import CheckInfo

__all__ = ["FLOOR_FACTOR", "RELAXATION", "Outcome", "continue_from_best", "continue_in_float64",
           "default_steps", "iterate", "rounding_floor"]

# Multiple of eps (sum |c| |f| + upper) below which a gap counts as rounding (status "floor").
FLOOR_FACTOR = 64.0

# Default primal step tau = kappa_d * (number of cells) / W0, where W0 = sum_i |(D u0)_i| is the
# cost of the least-squares flow u0 = (D^T D)^+ c (an upper bound on W). tau scales like the
# inverse of a typical flow magnitude per cell. kappa_d was measured on Gaussian pairs, 8gaussians
# vs a Gaussian, point masses and random measures (64^2, 128^2 grids, 1D with 1024 cells):
# within a factor 2 of the best fixed tau on each of them.
_KAPPA = {1: 4.0}
_KAPPA_DEFAULT = 0.5

_CHECK_FRACTION = 0.02
# While a problem's gap is above _CHECK_FAR times the tolerance, its checks are spaced out to
# sqrt(_CHECK_SQRT k) iterations after k run (at most _CHECK_CELLS cell-iterations of one problem
# apart: about 0.3 s at 1024^2 on 2 cores, so callbacks, progress lines and time limits still come
# often; a batch of B problems runs B times longer between them). Each problem of a batch keeps its
# own schedule: where it stops does not depend on its batch. A check costs 1-4 iterations (two
# sweeps, a float64 Poisson solve, several reductions); stopping can only be late by the interval,
# and a gap within _CHECK_FAR of the tolerance brings back the plain schedule (so does a float32
# gap within _F32_STALL_GAP: the stall rule counts checks). Measured (work to 1e-4 in fine-
# iteration equivalents, the 9 bench_hard problems; seconds of the same runs, best of two) against
# checks every 10 (then 2 %): 64^2 7 047 -> 7 141 work, 0.92 -> 0.74 s; 128^2 5 491 -> 5 524, 2.71
# -> 2.18 s; 256^2 7 495 -> 7 475, 12.0 -> 9.4 s; 512^2 funnel pairs 4 227 -> 4 262, 24.1 -> 17.6
# s; 1024^2 8gaussians 528 -> 518, 15.3 -> 12.9 s; 256^2 at 1e-6 (Gaussian pair, 8gaussians)
# unchanged. sqrt(256 k) saved as much time at 256^2 but cost 5 % more work at 64^2 and 128^2;
# _CHECK_FAR 1.5 and 2 lost up to 20 % on single problems, 5 did not gain.
_CHECK_FAR = 3.0
_CHECK_SQRT = 64.0
_CHECK_CELLS = 1 << 25
# Within _CHECK_FAR of the tolerance, the next check comes when the gap would reach the target
# on the line through the last two checks' gaps (if later than the plain schedule): the gap
# falls slower and slower there (convex in k), so the secant reaches the target first and the
# check comes before the stop, not after it. At most _CHECK_CELLS cell-iterations and a quarter
# of the iterations run later (the same bound as far checks; float64 iterates only: the float32
# stall rule counts checks). With the ray critics a check costs 8-10 iterations at 256^2-1024^2.
_CHECK_PREDICT = True
# A problem whose gap at its first check (a start: a solve's, or a level's of the multilevel
# cascade) is above _CHECK_FIRST_FAR times the tolerance skips the check check_every iterations
# later: its next one is the far schedule's after that (35 iterations with check_every 10):
# 10 iterations after a start the gap had hardly moved on any level of bench_hard's problems
# (at 256^2 5.9e-3 -> 5.9e-3, 512^2 2.7e-3 -> 2.7e-3, 1024^2 1.7e-3 -> 1.3e-3 on 8gaussians),
# and a check costs 8-25 iterations from 256^2 up. The same work, every iteration count
# unchanged (the nine problems at 64^2 and 256^2, 1e-4 and 1e-6; 512^2 funnel pairs; 1024^2
# 8gaussians and 16 funnels); seconds 1.97 -> 1.78 on the 512^2 funnel pairs, 9.11 -> 8.60 on
# the two 1024^2 problems twice, 1.61 -> 1.57 on the nine at 256^2.
_CHECK_FIRST_FAR = 10.0
# float32 iterates: a problem whose relative gap has not fallen by 10 % over this many checks has
# hit the precision floor of its float32 iterates (measured: 8gaussians vs N(0, I) at 64^2 stays
# at a relative gap of 2e-6 for 10^6 iterations); it continues in float64 from its best
# certified critic and flow.
_F32_STALL_CHECKS = 15
# ... counted only once the relative gap is below this (far above float32's floor; a plateau of
# the iteration at a larger gap is not the precision limit).
_F32_STALL_GAP = 1e-4
# The check's best critic of a problem is improved by the feasible ascent (``cert.ascend``) at
# checks whose relative gap is then below _ASCENT_NEAR tol: only there can a better lower bound
# stop the solve sooner, and each ascent costs about nine iterations at 256^2. It ascends the
# critic extracted from this check's iterate, not the best kept so far: once the kept one has
# been ascended it sits at a fixed point of the sweeps, and later ascents of it gained nothing
# while the iterate went on improving (the Gaussian pair at 256^2, 1e-6: the lower bound stayed
# 8e-7 below Clarabel's value for the last 700 iterations). Measured against ascending the kept
# best (work, the nine problems at 256^2, 1e-4): 3 721 -> 3 333; 1e-6, the Gaussian pair 1 283
# -> 981 iterations, 8gaussians 5 355 -> 5 597 (both, two ascents a check: 997 and 5 250).
# The same checks lower their flow by the descent (``cert.descend``): at 256^2, 1e-4, work
# 3 333 -> 2 885 (8gaussians at the WGAN-GP scale 548 -> 390 iterations); 1e-6, 981 -> 887
# and 5 597 -> 5 250; 512^2 funnel pairs 2 157 -> 1 979 work; 1024^2 8gaussians the same 155.
# A slope threshold of 0.1 instead of 0.01: 2 943 work; 8 sweeps instead of 4: 2 862, 2: 2 959.
# The multilevel start's coarse solves do neither (``polish=False``; see
# multilevel.ASCEND_COARSE).
# Measured, interleaved in one process against no ascent (cells above ASCENT_MIN_MASS only):
# 256^2, the nine problems of benchmarks/bench_hard.py at 1e-4, work 4 036 -> 3 721 (5.33 ->
# 4.98 s); 1e-6, the Gaussian pair 1 763 -> 1 283 iterations (2.08 -> 1.61 s), 8gaussians
# 12 386 -> 5 355 (9.77 -> 4.46 s). Moving every cell with mass: 3 588; 960 and 5 250, and at
# 512^2 the three funnel pairs' work 1 291 -> 1 239 (8.91 -> 8.95 s). Below 10 tol instead:
# 3 637; 963 and 7 918; 1 183 work but 9.06 -> 10.27 s at 512^2 (an ascent there takes 18 ms).
_ASCENT_NEAR = 3.0
# ... and below _ASCENT_NEAR_TIGHT tol in solves to ASCENT_TIGHT_TOL and below (with twice the
# ascent's sweeps), where the polished bounds are several times closer than the raw ones (the
# lower bound of 8gaussians at 256^2, 1e-6: 2.7e-6 -> 6.2e-7 at the first polish). Measured
# against 3 tol there: 8gaussians 5 250 -> 3 664 iterations (3.89-4.41 -> 3.15-3.21 s) at 1e-6,
# 720 -> 535 at 1e-5 (1.07-1.30 -> 0.97-1.04 s); the Gaussian pair 820 -> 803 and 174 -> 175;
# to 1e-4, 6 tol changed the nine problems' work 2 885 -> 2 839 for more polishing time.
_ASCENT_NEAR_TIGHT = 6.0
# The iteration is relaxed (over-relaxed PDHG): each step moves the iterate rho times as far
# as the plain preconditioned step would, f <- f + rho tau u, y <- y + rho (y_plain - y), with
# rho = RELAXATION[norm]. It is the relaxed proximal point method in the metric of the
# preconditioned iteration, which converges for rho in (0, 2) also where that metric is
# degenerate (here tau sigma = 1): Bredies, Chenchene, Lorenz & Naldi 2022, "Degenerate
# preconditioned proximal point algorithms", SIAM J. Optim. 32(3). Measured on the nine problems
# of benchmarks/bench_hard.py (work in fine-iteration equivalents, numba backend), euclidean:
# 256^2, 1e-6 (the default tolerance), rho 1 / 1.8 / 1.9: 27 206 / 16 898 / 18 487 (every
# problem less at both); 128^2, 1e-6, rho 1 / 1.7 / 1.8 / 1.9: 17 244 / 11 731 / 10 740 /
# 11 093; 256^2, 1e-4, rho 1 / 1.6 / 1.8 / 1.9: 2 885 / 2 141 / 2 050 / 1 949; 128^2, 1e-4:
# 2 915 / 2 270 / 2 295 / 2 293; 64^2, 1e-4: 3 717 / 2 388 / 2 319 / 2 254. Cityblock (an LP;
# the critic also recovered from the flow), 128^2, 1e-6, rho 1.3 / 1.5 / 1.7: 4 466 / 3 918 /
# 4 427; on five of the problems rho 1 / 1.5 / 1.9: 2 480 / 2 243 / 4 284, and at 256^2, 1e-4,
# 1 010 / 861 / 934.
RELAXATION = {"euclidean": 1.8, "cityblock": 1.5}
# The relaxed step leaves (1 - rho) y where the plain step zeroes a flow value, so the values
# that stay zero decay geometrically towards subnormal numbers (|1 - rho|^k: float32's after
# about 400 iterations, float64's after about 3 200), whose arithmetic is many times slower on
# CPUs: a float32 solve of 8gaussians at 256^2, 1e-6, took 1.9 instead of 0.8 ms an iteration
# with 10 % of its flow values subnormal (5.95 s instead of 2.85 s). Every _FLUSH_EVERY
# iterations the flow's values below _FLUSH sigma are set to zero: far below what the iteration
# resolves (its flow values are about 1e-3 sigma), far above the subnormal range even after
# _FLUSH_EVERY more steps of decay. (Inside the dual step's pass the test cost 14-40 % of it.)
_FLUSH = 2.0 ** -80
_FLUSH_EVERY = 32
# no problem due at an iteration (iterate)
_NONE = np.empty(0, dtype=np.int64)


@dataclass
class Outcome:
    """How one problem of a batch ended."""

    status: str = "max_iter"
    iterations: int = 0
    seconds: float = 0.0
    step: float = 0.0
    restarts: int = 0
    history: list = field(default_factory=list)
    float64_from: int | None = None



def default_steps(kern, c64) -> np.ndarray:
    """``tau = kappa * n_cells / W0`` per problem, ``W0`` the cost of the least-squares flow."""
    u0 = kern.poisson(c64)
    w0 = kern.flow_cost(kern.xp.zeros((c64.shape[0], kern.ndim, *kern.shape)), u0)
    return _KAPPA.get(kern.ndim, _KAPPA_DEFAULT) * float(np.prod(kern.shape)) / w0



def iterate(kern, cert, c64, f, y, tau, *, tol, max_iter, check_every, adaptive, deadline,
             callback, scale, t0, verbose, flow_candidates, interrupt, problem_ids=None,
             k0=0, polish=True, best=None):
    """Run the preconditioned Chambolle–Pock loop on a batch; return (best, outcomes).

    ``c64``: float64 device array ``(B, *shape)`` (scaled); ``f``, ``y``: starting iterates in
    the working dtype; ``tau``: starting steps ``(B,)``. Problems leave the batch as soon as they
    stop (converged, callback, max_iter, time limit), so the others run on smaller arrays.
    With float32 iterates, a problem whose gap stalls (``_F32_STALL_CHECKS``) stops with status
    ``"stalled"``. ``problem_ids``: the problems' indices for :class:`CheckInfo`; ``k0``:
    iterations already run (a continuation), counted in ``max_iter`` and the history.
    ``best``: the :class:`Best` of a check of the start that the caller has just made (a warm
    start's): the iteration goes on from its bounds, its own first check ``check_every``
    iterations later.
    """
    xp = kern.xp
    nb, dt = c64.shape[0], kern.dtype
    checked = best is not None  # the start's check made already
    best = best if checked else Best(cert, nb, kern.shape)
    out = [Outcome() for _ in range(nb)]
    ids = np.arange(nb)
    c = c64 if dt == np.float64 else c64.astype(dt)
    tau = np.asarray(tau, dtype=np.float64).copy()
    tau0 = tau.copy()
    sigma = 1.0 / tau  # (again whenever tau changes: restarts, problems leaving)
    # near the tolerance each check polishes its bounds (descent, ascent); not when ``polish``
    # is off (the coarse solves of a multilevel start)
    polish_below = polish_near(tol) if polish else None
    sweeps = ascent_sweeps(tol)
    rho = RELAXATION[kern.norm]
    restart_every = RESTART_EVERY[kern.norm]
    f_out, r = xp.empty_like(f), xp.empty_like(f)
    # the flow before a step whose restart criteria are read (then its move): a buffer kept
    # between checks (two fresh flow arrays per such step cost their page faults: 0.79 against
    # 0.25 ms at 256^2), released at each check, whose candidates need the memory
    y_keep = None
    # restart state (per problem): anchors, the fixed-point residual at the last restart
    f_anchor, y_anchor = f.copy(), y.copy()
    res0 = np.full(nb, np.nan)
    res_prev = np.full(nb, np.inf)
    k_restart = np.zeros(nb, dtype=np.int64)
    pending = np.zeros(nb, dtype=bool)
    any_pending = False  # pending.any(), kept where pending changes (not tested every turn)
    pids = np.arange(nb) if problem_ids is None else np.asarray(problem_ids)
    watch_stall = dt == np.float32
    stall_ref = np.full(nb, np.inf)
    stall_count = np.zeros(nb, dtype=np.int64)
    last_print = time.perf_counter()
    k = k0
    # each problem's next check
    nxt = np.full(nb, k0 + check_every if checked else k0, dtype=np.int64)
    first_due = int(nxt.min())
    last_k = np.full(nb, -1, dtype=np.int64)  # each problem's last check and its gap
    last_gap = np.full(nb, np.inf)
    r_next = False  # r is already the residual of y (the dual step computed it)
    try:
        while True:
            if not r_next:
                kern.residual(c, y, r)
            u = kern.poisson_step(r)
            if any_pending:
                restart(kern, cert, c64, f, y, u, tau, tau0, f_anchor, y_anchor, pending,
                         res0, res_prev, k_restart, k, out, ids)
                any_pending, sigma = False, 1.0 / tau
            # (the test of every problem only from the first one due: microseconds a turn)
            due = np.flatnonzero((nxt <= k) | (k >= max_iter)) if k >= first_due else _NONE
            if due.size:
                y_keep = None
                # each problem on its own schedule (_next_interval), so that a problem's
                # checks, and where it stops, do not depend on the batch it runs in
                sel = slice(None) if due.size == len(ids) else xp.asarray(due)
                _update_bounds(kern, cert, best, ids[due], c64[sel], f[sel], y[sel], r[sel],
                               u[sel], flow_candidates, polish_below, sweeps, tol)
                now = solve_clock() - t0
                done = np.zeros(len(ids), dtype=bool)
                floor = rounding_floor(cert, c64[sel], best, ids[due])
                for jj, j in enumerate(due):
                    b = ids[j]
                    lo, up = best.lower[b], best.upper[b]
                    gap = up - lo
                    out[b].history.append((k, scale[b] * lo, scale[b] * up, now))
                    stop = callback is not None and callback(CheckInfo(
                        k, scale[b] * lo, scale[b] * up, scale[b] * gap, now, int(pids[b])))
                    if watch_stall and gap <= _F32_STALL_GAP * up:
                        if gap < 0.9 * stall_ref[b]:
                            stall_ref[b], stall_count[b] = gap, 0
                        else:
                            stall_count[b] += 1
                    status = _status(gap, up, tol, floor[jj], stop, k, max_iter, deadline,
                                     watch_stall and stall_count[b] >= _F32_STALL_CHECKS)
                    if status is not None:
                        done[j] = True
                        out[b].status, out[b].iterations, out[b].seconds = status, k, now
                        out[b].step = float(tau[j])
                    else:
                        nxt[j] = k + _check_interval(k, k0, gap, up, tol, floor[jj], last_k[j],
                                                     last_gap[j], check_every, kern.shape,
                                                     watch_stall)
                    last_k[j], last_gap[j] = k, gap
                if verbose and (time.perf_counter() - last_print >= 1.0 or k == k0
                                or done.all()):
                    last_print = time.perf_counter()
                    print(_progress(best, scale, ids[due[0]], k, len(ids) if nb > 1 else 0),
                          flush=True)
                if done.all():
                    break
                if done.any():
                    keep = np.flatnonzero(~done)
                    ids, tau, tau0, nxt = ids[keep], tau[keep], tau0[keep], nxt[keep]
                    last_k, last_gap = last_k[keep], last_gap[keep]
                    res0, res_prev = res0[keep], res_prev[keep]
                    k_restart, pending = k_restart[keep], pending[keep]
                    any_pending, sigma = bool(pending.any()), 1.0 / tau
                    # the grid arrays of the remaining problems one at a time (r too: a restart
                    # check below may read it), each released as its copy is made
                    grids = [c64, c, f, y, u, f_anchor, y_anchor, r]
                    c64 = c = f = y = u = f_anchor = y_anchor = r = f_out = None
                    c64, c, f, y, u, f_anchor, y_anchor, r = _kept_rows(grids, xp.asarray(keep))
                    f_out = xp.empty_like(f)
                first_due = min(int(nxt.min()), max_iter)
            check_restart = adaptive and k > 0 and k % restart_every == 0
            if check_restart:
                y_keep, ur = _kept_copy(xp, y, y_keep), kern.dot(u, r)
            r_next = kern.dual_step_residual(f, u, y, f_out, tau, sigma, rho, c, r)
            f, f_out = f_out, f
            if rho != 1.0 and k % _FLUSH_EVERY == 0:
                kern.flush(y, _FLUSH / tau)
                r_next = False
            if check_restart:
                dy = xp.subtract(y, y_keep, out=y_keep)
                res = _fixed_point_residual(kern, tau, ur, dy, rho)
                decide_restarts(res, res0, res_prev, k_restart, k, pending)
                any_pending = bool(pending.any())
            k += 1
    except KeyboardInterrupt:
        if interrupt != "return":
            raise
        now = solve_clock() - t0
        for j, b in enumerate(ids):
            out[b].status, out[b].iterations, out[b].seconds = "interrupted", k, now
            out[b].step = float(tau[j])
            out[b].history.append((k, scale[b] * best.lower[b], scale[b] * best.upper[b], now))
    return best, out



def _kept_rows(grids: list, kx) -> list:
    """``[a[kx] for a in grids]``, made in place one at a time so that each array is released
    as soon as its rows are copied, not after every copy (a batch's peak memory when problems
    leave it; ``grids`` is emptied of the old arrays). Arrays that are the same object stay
    one: ``c`` is ``c64`` itself with float64 iterates."""
    first = [next(j for j in range(i + 1) if grids[j] is a) for i, a in enumerate(grids)]
    for i in range(len(grids)):
        grids[i] = grids[first[i]] if first[i] < i else grids[i][kx]
    return grids


def _kept_copy(xp, a, buf):
    """``a`` copied into ``buf``, or into a new buffer where ``buf`` is None or shaped
    otherwise; the copy."""
    if buf is None or buf.shape != a.shape:
        buf = xp.empty_like(a)
    xp.copyto(buf, a)
    return buf


def _fixed_point_residual(kern, tau: np.ndarray, ur: np.ndarray, dy, rho: float) -> np.ndarray:
    """The fixed-point residual of the iterate in the norm of the preconditioned iteration,
    per problem: ``sqrt(|D df|^2 / tau + tau |dy|^2)`` for the plain step's ``df = tau u``
    (``|D u|^2 = <u, r> = ur``, which can round to a tiny negative number near convergence)
    and ``dy`` (the relaxed step moved ``y`` ``rho`` times as far: ``dy`` is that move). On
    anisotropic cells the norms are the step's metric (``|D u|^2`` in ``D^T S D``, which ``u``
    solves, so still ``<u, r>``; ``|dy|^2`` in ``S^{-1}``: ``kern.flow_metric_sq``)."""
    return np.sqrt(np.maximum(tau * ur + tau * (kern.flow_metric_sq(dy) / rho ** 2), 0.0))


def _check_interval(k: int, k0: int, gap: float, up: float, tol: float, floor: float,
                    k_last: int, gap_last: float, check_every: int, shape: tuple[int, ...],
                    f32: bool) -> int:
    """Iterations from check ``k`` (gap ``gap`` below the upper bound ``up``) to a problem's
    next one: spaced by :func:`_next_interval` while the gap is far from ``tol``, then where
    the line through its last two checks reaches ``tol`` (or the rounding ``floor``) if later
    (:func:`_predicted_interval`; not for float32 iterates, ``f32``, whose gaps stall near
    their rounding)."""
    far = gap > _CHECK_FAR * tol * up and not (f32 and gap <= _F32_STALL_GAP * up)
    step = _next_interval(k, k0, far, check_every, shape, gap > _CHECK_FIRST_FAR * tol * up)
    if _CHECK_PREDICT and not far and not f32:
        step = max(step, _predicted_interval(k, k0, gap, k_last, gap_last,
                                             max(tol * up, floor), shape))
    return step


def _progress(best, scale, b: int, k: int, running: int) -> str:
    """The progress line of ``verbose`` solves: problem ``b``'s bounds at iteration ``k``
    (``running``: problems still running in a batch; 0 for a lone problem)."""
    lo, up = scale[b] * best.lower[b], scale[b] * best.upper[b]
    return (f"[otgrid] iter {k:7d}  lower {lo:.10g}  upper {up:.10g}  rel. gap "
            f"{(best.upper[b] - best.lower[b]) / best.upper[b]:.2e}"
            + (f"  ({running} problems running)" if running else ""))


def _next_interval(k: int, k0: int, far: bool, check_every: int, shape: tuple[int, ...],
                   very_far: bool = False) -> int:
    """Iterations from check ``k`` to a problem's next one: ``check_every``, then 2 % of the
    iterations run (the certificate stays a small share of long solves); while its gap is far
    from the tolerance (``far``), ``sqrt(_CHECK_SQRT (k - k0))`` if longer, at most
    ``_CHECK_CELLS`` cell-iterations of one problem. After the first check (``k = k0``) of a
    gap above ``_CHECK_FIRST_FAR tol`` (``very_far``), the check after the next one: the next
    is skipped."""
    step = max(check_every, int(_CHECK_FRACTION * k))
    if far:
        step = max(step, min(int(np.sqrt(_CHECK_SQRT * (k - k0))), _max_interval(shape)))
    if very_far and k == k0:
        step += _next_interval(k + step, k0, True, check_every, shape)
    return step


def _max_interval(shape: tuple[int, ...]) -> int:
    """The longest spaced interval between a problem's checks: ``_CHECK_CELLS`` cell-iterations
    of one problem on a grid of ``shape``."""
    return _CHECK_CELLS // int(np.prod(shape))


def _predicted_interval(k: int, k0: int, gap: float, k_last: int, gap_last: float,
                        target: float, shape: tuple[int, ...]) -> int:
    """Iterations from check ``k`` until the gap reaches ``target`` on the line through the
    last two checks (``k_last``, ``gap_last``) and this one; 0 without two checks of this run
    or without progress. At most ``_CHECK_CELLS`` cell-iterations and ``(k - k0) / 4``."""
    if k_last < k0 or not gap_last > gap > target:
        return 0
    rate = (gap_last - gap) / (k - k_last)
    cap = min(_max_interval(shape), (k - k0) // 4)
    return int(min((gap - target) / rate, cap))


def _status(gap, up, tol, floor, stop, k, max_iter, deadline, stalled) -> str | None:
    """Why a problem stops at this check (its gap, upper bound and rounding floor; the
    callback's answer; the float32 stall), in this order of precedence; None: it goes on."""
    if gap <= tol * up:
        return "converged"
    if gap <= floor:
        return "floor"
    if stop:
        return "callback"
    if k >= max_iter:
        return "max_iter"
    if deadline is not None and solve_clock() >= deadline:
        return "time_limit"
    return "stalled" if stalled else None


def polish_near(tol: float) -> float:
    """The relative gap below which a solve to ``tol`` polishes its bounds (the flow's descent,
    the critic's ascent): ``_ASCENT_NEAR tol``, ``_ASCENT_NEAR_TIGHT tol`` from
    ``ASCENT_TIGHT_TOL`` down."""
    tight = tol <= backend_numpy.ASCENT_TIGHT_TOL
    return (_ASCENT_NEAR_TIGHT if tight else _ASCENT_NEAR) * tol


def ascent_sweeps(tol: float) -> int:
    """The feasible ascent's sweeps in a solve to ``tol``: ``ASCENT_SWEEPS``, twice as many
    from ``ASCENT_TIGHT_TOL`` down (see ``otgrid.critic.backend_numpy``)."""
    return backend_numpy.ASCENT_SWEEPS * (2 if tol <= backend_numpy.ASCENT_TIGHT_TOL else 1)


def _update_bounds(kern, cert, best: Best, ids, c64, f, y, r, u, flow_candidates,
                   polish_below: float | None, ascend_sweeps: int | None = None,
                   tol: float = 0.0) -> None:
    """Evaluate the certificate of the problems ``ids`` (their iterates ``f``, ``y``, residual
    ``r`` and step correction ``u``) in float64: the flow corrected by a float64 Poisson solve
    (the step's may be float32); a problem whose relative gap is then below ``polish_below``
    (None: none; and above ``tol``: it stops) also has its flow lowered by the descent and its
    best critic improved by the feasible ascent (``ascend_sweeps`` sweeps)."""
    if kern.dtype == np.float64:
        # (the step's u solves D^T S D u = r on anisotropic cells: not the correction)
        uc = cert.poisson(r) if kern.fast_poisson or kern.weighted else u
        best.update(cert, ids, c64, f, y, uc, flow_candidates, polish_below, ascend_sweeps,
                    tol)
    else:  # from the float32 iterates
        y64 = y.astype(np.float64)
        r64 = cert.xp.empty(c64.shape)
        cert.residual(c64, y64, r64)
        best.update(cert, ids, c64, f.astype(np.float64), y64, cert.poisson(r64),
                    flow_candidates, polish_below, ascend_sweeps, tol)


def rounding_floor(cert, c64, best: Best, ids: np.ndarray) -> np.ndarray:
    """The gap below which the float64 bounds cannot be trusted to improve, per active problem:
    ``FLOOR_FACTOR eps (sum_i |c_i| |f_i| + upper)`` for the best critic ``f`` (the rounding
    of ``<c, f>`` and of the flow's cost). It follows ``W``'s scale, not the box's: 0.1.0 used
    ``1e3 eps sum|c| diameter``, which stopped a thin anisotropic problem (64 x 64 on
    (0, 0.01) x (0, 100), cityblock) at a relative gap of 1.5e-7 instead of 1e-9."""
    ix = cert.xp.asarray(ids)
    size = cert.dot(cert.xp.abs(c64), cert.xp.abs(best.critic[ix])) + best.upper[ids]
    return FLOOR_FACTOR * np.finfo(np.float64).eps * size


def continue_in_float64(cert, c64, best, outs, *, problem_ids, scale, **kw) -> None:
    """Run the problems that stalled in float32 on in float64 (in place in ``best``, ``outs``).

    They restart from their best certified critic and exactly feasible flow, with their last
    step; bounds only improve (the better of the two runs is kept per side).
    """
    stalled = [j for j, o in enumerate(outs) if o.status == "stalled"]
    continue_from_best(cert, c64, best, outs, stalled, problem_ids=problem_ids, scale=scale,
                       from_float32=True, **kw)


def continue_from_best(cert, c64, best, outs, js, *, problem_ids, scale, tol,
                       from_float32: bool, **kw) -> None:
    """Run the problems ``js`` on in float64 from their best certified critic and exactly
    feasible flow, with their last step, to ``tol`` (a float or one per problem of ``js``), in
    place in ``best`` and ``outs``; bounds only improve (the better of the two runs is kept
    per side). ``from_float32``: the iterates so far were float32; an outcome's
    ``float64_from`` (unless set already) becomes the iteration it went on from."""
    xp = cert.xp
    tols = np.broadcast_to(np.asarray(tol, dtype=np.float64), (len(js),))
    for j, tj in zip(js, tols, strict=True):
        jx = xp.asarray([j])
        k0 = outs[j].iterations
        sub, (new,) = iterate(cert, cert, c64[jx], best.critic[jx].copy(),
                               cert.corrected_flow(best.flow_y[jx], best.flow_u[jx]),
                               np.array([outs[j].step]), problem_ids=[problem_ids[j]],
                               scale=scale[[j]], k0=k0, tol=float(tj), **kw)
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
        if from_float32 and o.float64_from is None:
            o.float64_from = k0
