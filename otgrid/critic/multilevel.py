"""Multilevel start: the problem coarsened by 2 per axis, solved (recursively) and prolonged."""

from __future__ import annotations

import time

import numpy as np

from otgrid.critic.backends import make_kernels
from otgrid.critic.iterate import default_steps, iterate

__all__ = ["ML_AUTO_CELLS", "ML_MIN_CELLS", "coarsen", "multilevel_start", "prolong"]

# Coarsen by 2 per axis while the coarse grid keeps at least this many cells per axis.
ML_MIN_CELLS = 32
# "auto" uses the multilevel start on 2D grids with at least this many cells.
ML_AUTO_CELLS = 128 * 128
# The coarse problems are solved to this multiple of the requested relative gap.
_ML_COARSE_TOL = 10.0


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
                      flow_candidates, max_iter, deadline):
    """Solve the coarsened problems (recursively) and prolong: starting iterates and steps."""
    shape_c = tuple((n + 1) // 2 for n in grid_shape)
    dx_c = tuple(2.0 * h for h in dx)
    cc = coarsen(c64_host)
    kern = make_kernels(backend, shape_c, dx_c, norm, dtype)
    cert = kern if kern.dtype == np.float64 else make_kernels(backend, shape_c, dx_c, norm,
                                                              np.float64)
    nb = cc.shape[0]
    with kern.session():
        c_dev = cert.to_device(cc, np.float64)
        if min(shape_c) >= 2 * ML_MIN_CELLS:
            f0, y0, tau, _ = multilevel_start(backend, shape_c, dx_c, norm, dtype, cc, tol,
                                            check_every, flow_candidates, max_iter,
                                            deadline)
            f0, y0 = kern.to_device(f0), kern.to_device(y0)
        else:
            f0 = kern.xp.zeros((nb, *shape_c), dtype=kern.dtype)
            y0 = kern.xp.zeros((nb, len(shape_c), *shape_c), dtype=kern.dtype)
            tau = default_steps(cert, c_dev)
        best, outs = iterate(kern, cert, c_dev, f0, y0, tau, tol=_ML_COARSE_TOL * tol,
                              max_iter=max_iter, check_every=check_every, adaptive=True,
                              deadline=deadline,
                              callback=None, scale=np.ones(nb), t0=time.perf_counter(),
                              verbose=False, flow_candidates=flow_candidates,
                              interrupt="raise")
        critic = cert.to_host(best.critic)
        flow = cert.to_host(cert.corrected_flow(best.flow_y, best.flow_u))
    f, y = prolong(critic, flow, tuple(grid_shape))
    steps = np.array([o.step for o in outs]) * 2.0 ** len(grid_shape)
    return f, y, steps, sum(o.iterations for o in outs) / nb

