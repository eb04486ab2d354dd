"""Multilevel start: the problem coarsened by 2 per axis, solved (recursively) and prolonged."""

from __future__ import annotations

import numpy as np

from otgrid._threads import solve_clock
from otgrid.critic.backends import make_kernels
from otgrid.critic.iterate import default_steps, iterate

__all__ = ["F32_FLOOR_MARGIN", "ML_AUTO_CELLS", "ML_MIN_CELLS", "coarse_dtype", "coarse_tol",
           "coarsen", "multilevel_start", "prolong"]

# Coarsen by 2 per axis while the coarse grid keeps at least this many cells per axis.
ML_MIN_CELLS = 32
# "auto" uses the multilevel start on 2D grids with at least this many cells.
ML_AUTO_CELLS = 128 * 128
# Whether the coarse solves of the multilevel start polish their certified bounds near their
# tolerance (the critic's feasible ascent, the flow's descent), as the fine solve does (see
# otgrid.critic.iterate; the figures below are from before the descent).
# Measured at 256^2 against the fine solve alone ascending: the nine problems of
# benchmarks/bench_hard.py at 1e-4, work 3 637 -> 3 732; the tutorial's 8gaussians (128^2,
# 1e-4) 410 -> 653 iterations: the coarse solves stop sooner and start the finer ones worse.
# At 1e-6 it helps (the Gaussian pair 963 -> 546 iterations, 8gaussians 7 918 -> 5 352), and so
# does ascending only the critic the last coarse solve hands over (542 and 4 651, but the
# tutorial's 721): left for tight tolerances to decide.
ASCEND_COARSE = False
# The coarse problems are solved to the requested relative gap, but never below
# _ML_COARSE_FLOOR unless that is more than 10 times the requested gap: coarse_tol(tol) =
# max(tol, min(10 tol, _ML_COARSE_FLOOR)). Until 0.1.0 it was 10 tol.
# Measured (benchmarks/bench_hard.py, 256^2, fine iterations / seconds including the coarse
# levels, a 2-core machine shared with other jobs), at relative gap 1e-4, 10 tol -> tol:
# 8gaussians (r 2, sigma 0.2) vs N(0, I) 2 008 / 26.1 s -> 480 / 7.3 s, 8gaussians at the
# WGAN-GP scale 3 758 / 68.7 s -> 1 077 / 23.8 s, its 10^4-sample histogram 3 406 / 67.2 s ->
# 1 163 / 25.8 s, 25gaussians 2 442 / 18.4 s -> 733 / 3.8 s, swissroll 2 490 / 7.9 s -> 330 /
# 2.2 s, the Gaussian pair 150 / 1.9 s -> 0 / 0.7 s (the prolonged coarse solution is certified
# at once), funnel pairs (4, 16, 64 funnels) 978 / 3.5 s -> 941 / 4.4 s, 1 651 / 6.9 s ->
# 1 557 / 6.2 s, 905 / 2.7 s -> 791 / 2.3 s (restarts every 16 iterations at the time). At
# 1e-6 a coarse solve to 1e-6 cost more than it saved on 8gaussians (r 2): the 128^2 level took
# 33 667 iterations, 18 958 fine-iteration equivalents in all against 17 678 with 1e-5 --
# the coarse grid's own discretisation error makes a very tight coarse solve pointless.
# With today's solver (the certificate's polish, the level rescaling) a floor of 2e-6 pays at
# 1e-6 instead (the coarse solves to 2e-6, not 1e-5): the nine problems of bench_hard.py at
# 256^2, work 48 819 -> 27 206 (the Gaussian pair 950 -> 725, 8gaussians 4 304 -> 4 317, its
# WGAN-GP scale 8 554 -> 6 660, its histogram 12 143 -> 4 931, 25gaussians 11 095 -> 2 766,
# swissroll 5 573 -> 1 994, funnels 4 / 16 / 64 2 294 -> 1 661, 2 856 -> 3 005, 1 050 ->
# 1 147). 3e-6 and 4e-6 gave 25 796 and 30 977 on six of them against 19 467 (33 332 at 1e-5);
# at 1e-6 itself the Gaussian pair took 1 007. Iteration counts at 1e-6 swing by problem with
# any change; the sum moved consistently with the floor. At 128^2, 1e-6: work 24 074 -> 19 245,
# seconds summed 6.76 -> 5.41 (one run; the choosing page's Gaussian pair on [-5, 7]^2 2 562
# -> 1 151 iterations). Keeping 1e-5 on the grids coarsened twice and more (where the coarse
# grid's own error is larger) was worse there: 25 130 work, 6.73 s. Solves to 1e-5 and above:
# unchanged.
_ML_COARSE_FLOOR = 2e-6
# A float32 solve runs a coarse level in float64 where the level's tolerance is below
# F32_FLOOR_MARGIN times float32's precision floor on that grid, 2^-24 times its cells along
# the longest axis (a float32 critic's rounding, relative to its range, over a cell: the
# repaired critic's loss). Measured on 8gaussians vs N(0, I) on [-4, 4]^2 at 1e-6: float32
# iterates stall at relative gaps of about 8.7e-6, 1.0e-5 and 1.8e-5 at 128^2, 256^2 and
# 512^2; coarse solves to 2e-6 stopped there and handed over starts far worse than float64
# ones: 4 833 / 4 647 / 13 196 fine iterations (0.78 / 3.3 / 26 s) where float64 solves took
# 1 795 / 3 579 / 2 787, and 2 404 / 3 775 / 3 618 (0.57 / 2.7 / 10.2 s) with float64 coarse
# levels. (The fine level still goes on in float64 when it stalls: iterate.)
F32_FLOOR_MARGIN = 4.0


def coarse_deadline(deadline: float | None) -> float | None:
    """The deadline of a coarse solve: half the time left to the finer level's ``deadline``
    (``None``: none). A solve with a ``time_limit`` keeps at least half of it for its own
    grid; each coarser level gets at most half of what the level above it had left."""
    if deadline is None:
        return None
    now = solve_clock()
    return now + 0.5 * max(deadline - now, 0.0)


def coarse_tol(tol: float) -> float:
    """The relative gap to which the coarse problems of a solve to ``tol`` are solved."""
    return max(tol, min(10.0 * tol, _ML_COARSE_FLOOR))


def coarse_dtype(dtype, shape: tuple[int, ...], tol: float) -> np.dtype:
    """The iterates' dtype of a coarse level on a grid of ``shape`` in a solve to ``tol`` with
    ``dtype`` iterates: float64 where float32 iterates would stall near the level's tolerance
    (:data:`F32_FLOOR_MARGIN`), else ``dtype``."""
    dtype = np.dtype(dtype)
    floor = 2.0 ** -24 * max(shape)
    if dtype == np.float32 and coarse_tol(tol) < F32_FLOOR_MARGIN * floor:
        return np.dtype(np.float64)
    return dtype


def coarsen(c: np.ndarray) -> np.ndarray:
    """Sum 2 x ... x 2 blocks of the grid axes of ``c`` ``(B, *shape)``; odd sizes padded."""
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


def prolong(critic: np.ndarray, flow: np.ndarray, shape: tuple[int, ...]):
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


def multilevel_start(backend, grid_shape, dx, norm, dtype, c64_host, tol, check_every,
                      flow_candidates, max_iter, deadline, interrupt="raise"):
    """Solve the coarsened problems (recursively) and prolong: starting iterates and steps.
    ``interrupt="return"``: a ``KeyboardInterrupt`` during a coarse solve stops it with its best
    certified iterates, which the finer grids then prolong without iterating.
    Returns the starting critic and flow on this grid (host), the steps, the coarse solve's
    iterations (a mean over the batch) and whether a coarse solve was interrupted."""
    shape_c = tuple((n + 1) // 2 for n in grid_shape)
    dx_c = tuple(2.0 * h for h in dx)
    cc = coarsen(c64_host)
    kern = make_kernels(backend, shape_c, dx_c, norm, coarse_dtype(dtype, shape_c, tol))
    cert = kern if kern.dtype == np.float64 else make_kernels(backend, shape_c, dx_c, norm,
                                                              np.float64)
    nb = cc.shape[0]
    with kern.session():
        c_dev = cert.to_device(cc, np.float64)
        stopped = False
        if min(shape_c) >= 2 * ML_MIN_CELLS:
            f0, y0, tau, _, stopped = multilevel_start(
                backend, shape_c, dx_c, norm, dtype, cc, tol, check_every, flow_candidates,
                max_iter, coarse_deadline(deadline), interrupt)
            if stopped:  # Ctrl-C below: that start goes on up without iterating here
                f, y = prolong(f0, y0, tuple(grid_shape))
                return f, y, np.asarray(tau) * 2.0 ** len(grid_shape), 0.0, True
            f0, y0 = kern.to_device(f0), kern.to_device(y0)
        else:
            f0 = kern.xp.zeros((nb, *shape_c), dtype=kern.dtype)
            y0 = kern.xp.zeros((nb, len(shape_c), *shape_c), dtype=kern.dtype)
            tau = default_steps(cert, c_dev)
        best, outs = iterate(kern, cert, c_dev, f0, y0, tau, tol=coarse_tol(tol),
                              max_iter=max_iter, check_every=check_every, adaptive=True,
                              deadline=deadline,
                              callback=None, scale=np.ones(nb), t0=solve_clock(),
                              verbose=False, flow_candidates=flow_candidates,
                              interrupt=interrupt, polish=ASCEND_COARSE)
        critic = cert.to_host(best.critic)
        flow = cert.to_host(cert.corrected_flow(best.flow_y, best.flow_u))
    f, y = prolong(critic, flow, tuple(grid_shape))
    steps = np.array([o.step for o in outs]) * 2.0 ** len(grid_shape)
    stopped = any(o.status == "interrupted" for o in outs)
    return f, y, steps, sum(o.iterations for o in outs) / nb, stopped
