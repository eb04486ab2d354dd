"""Fused Numba kernels for the Chambolle–Pock iteration of the grid critic (1D and 2D, batched).

Pure functions on arrays (no imports from otgrid). Conventions, shared with the NumPy reference
in ``otgrid/critic/operators.py``: every array carries a leading batch axis ``B`` (one problem is
``B = 1``); a grid function ``f`` has shape ``(B, *shape)``; a flow ``y`` has shape
``(B, ndim, *shape)``; forward differences ``(Df)_{i,k} = (f_{i+e_k} - f_i) h_k`` with
``h_k = 1/dx_k`` and ``(Df)_{i,k} = 0`` on the last index of axis ``k``. ``iso=True`` is the
euclidean (group) norm, ``iso=False`` the cityblock one (l1 on flows, l_inf on gradients).
Steps ``tau``, ``sigma`` are arrays of shape ``(B,)``: one per problem.

Kernels
-------
dual_step_1d(f, u, y, f_out, tau, sigma, rho, h, iso), dual_step_2d(..., rho, hx, hy, wx, wy, iso)
    The step relaxed by ``rho`` (a scalar of the arrays' dtype; 1: the plain step):
    ``f_out = f + rho tau u``; ``y <- y + rho (shrink(y + sigma D(f + 2 tau u), sigma) - y)``
    in place. In 2D with per-axis weights ``w_k`` (1 on square cells): the dual steps
    ``sigma w_k`` and the shrinkage in their metric (componentwise thresholds ``sigma w_k``,
    or ``shrink.group_shrink_weighted``), see ``otgrid.critic.operators.shrink``.
residual_1d(c, y, r, h), residual_2d(c, y, r, r2, hx, hy)
    ``r = c - D^T y``; in 2D also into ``r2``, rounded to its dtype (the float32 copy that the
    Poisson step transforms, in the same pass; ``r`` itself where no copy is needed).
grad_stats_{1d,2d}(f, h..., iso, rows)
    Per row of cells (2D: per ``(b, i)``, ``rows`` ``(2, B nx)``; 1D: per problem, ``(2, B)``):
    ``rows[0]`` the largest ``|(Df)_i|`` (2-norm or inf-norm per cell), ``rows[1]`` the sum of
    ``|(Df)_i|_2^2``; the caller reduces the rows.
flow_cost_{1d,2d}(y, u, h..., iso, rows)
    Per row of cells (``rows`` ``(B nx,)``; 1D ``(B,)``): ``sum_i |y_i + (Du)_i|`` (2-norm or
    1-norm per cell), the cost of the corrected flow; the caller sums the rows.
repair_critic_{1d,2d}(f, g, dx..., iso)
    A feasible critic near ``f`` by one sequential sweep per problem.
level_rescale_2d(f, g, hx, hy, iso, nbins)
    A feasible critic ``g = phi(f)`` by a nondecreasing piecewise-linear map of the values.
ascend_critic_2d(g, c, hx, hy, iso, sweeps, cmin)
    A feasible critic moved, cell by cell, as far towards ``sign(c)`` as its constraints allow:
    ``<c, g>`` grows, feasibility stays.
ray_critics_2d(f, g_lo, g_hi, hx, hy, iso, max_sweeps, ex, ey)
    Two feasible critics: the greatest function below ``f`` and the least above it whose
    changes along the grid edges stay within lengths set by boxes inside the cells'
    constraints (corrections that follow the transport rays); ``ex``, ``ey`` (shaped like
    ``f``) receive those lengths.
poisson_lines_2d(rh, m, e, hx2, s0)
    The tridiagonal x-solves of a 2D Neumann Poisson problem DCT-transformed along y.
facr_reduce_2d(r, R, s0, k, qe, w), facr_recover_2d(r, out, s0, k, q, qe, tile)
    The same problem with one step of cyclic reduction before the DCT (FACR(1)): the reduced
    right-hand side of the even rows (their x-solves: ``poisson_lines_2d`` with the whole
    grid's row sums ``s0`` for mode 0), the odd rows by solves along y.

Every kernel also exists as ``<name>_serial``: the same function compiled for one thread
(``prange`` runs as ``range``). Problems too small to gain from threads use those: they compile
about three times faster than the parallel versions (``parallel=True`` runs Numba's parfor
passes), which is most of a first run's cost. No kernel of a default solve allocates: the
reductions write one partial result per row into the caller's ``rows`` (an allocation inside a
kernel compiles NumPy's ``zeros`` and ``empty`` for about 0.5 s on a first run).
"""

from __future__ import annotations

import types

import numpy as np
from numba import njit, prange

from .shrink import group_shrink_weighted

__all__ = [
    "ascend_critic_2d",
    "dual_step_1d",
    "dual_step_1d_serial",
    "dual_step_2d",
    "dual_step_2d_serial",
    "dual_step_2d_weighted",
    "dual_step_2d_weighted_serial",
    "facr_recover_2d",
    "facr_recover_2d_serial",
    "facr_reduce_2d",
    "facr_reduce_2d_serial",
    "flow_cost_1d",
    "flow_cost_1d_serial",
    "flow_cost_2d",
    "flow_cost_2d_serial",
    "grad_stats_1d",
    "grad_stats_1d_serial",
    "grad_stats_2d",
    "grad_stats_2d_serial",
    "level_rescale_2d",
    "level_rescale_2d_serial",
    "poisson_lines_2d",
    "poisson_lines_2d_serial",
    "ray_critics_2d",
    "ray_critics_2d_serial",
    "repair_critic_1d",
    "repair_critic_1d_serial",
    "repair_critic_2d",
    "repair_critic_2d_serial",
    "residual_1d",
    "residual_1d_serial",
    "residual_2d",
    "residual_2d_serial",
]


def _serial(kernel):
    """``kernel`` compiled for one thread, cached by Numba under its own name.

    A copy of the Python function named ``<name>_serial``: Numba's cache files are named after
    the function, and the parallel and serial compilations must not share them. It is compiled
    with NumPy's error model, as Numba compiles the body of a ``prange`` loop: a float division
    by zero gives inf or nan instead of raising (no kernel divides by zero: every division is
    guarded), and without the check LLVM vectorizes the loops. Measured on one core, median of
    300 calls: ``dual_step_2d`` at 256^2 0.357 -> 0.112 ms (64^2 0.024 -> 0.015 ms), identical
    outputs.
    """
    fn = kernel.py_func
    clone = types.FunctionType(fn.__code__, fn.__globals__, fn.__name__ + "_serial",
                               fn.__defaults__, fn.__closure__)
    clone.__qualname__ = fn.__qualname__ + "_serial"
    clone.__doc__ = f"``{fn.__name__}`` on one thread."
    return njit(cache=True, error_model="numpy")(clone)


_group_shrink_weighted = njit(cache=True, inline="always")(group_shrink_weighted)


@njit(cache=True, inline="always")
def _soft(v, t):
    if v > t:
        return v - t
    if v < -t:
        return v + t
    return v * (t - t)  # 0.0 * v in the arguments' dtype (a float64 literal would promote)


# ----------------------------------------------------------------------------------------- 1D
@njit(cache=True, parallel=True)
def dual_step_1d(f, u, y, f_out, tau, sigma, rho, h, iso):
    nb, n = f.shape
    for b in prange(nb):
        tb = tau[b]
        sb = sigma[b]
        t2 = tb + tb
        rt = rho * tb
        for i in range(n - 1):
            fb0 = f[b, i] + t2 * u[b, i]
            fb1 = f[b, i + 1] + t2 * u[b, i + 1]
            y0 = y[b, 0, i]
            y[b, 0, i] = y0 + rho * (_soft(y0 + sb * (fb1 - fb0) * h, sb) - y0)
            f_out[b, i] = f[b, i] + rt * u[b, i]
        y[b, 0, n - 1] = 0.0
        f_out[b, n - 1] = f[b, n - 1] + rt * u[b, n - 1]


@njit(cache=True, parallel=True)
def residual_1d(c, y, r, h):
    nb, n = c.shape
    for b in prange(nb):
        r[b, 0] = c[b, 0] + y[b, 0, 0] * h
        for i in range(1, n - 1):
            r[b, i] = c[b, i] - (y[b, 0, i - 1] - y[b, 0, i]) * h
        r[b, n - 1] = c[b, n - 1] - y[b, 0, n - 2] * h


@njit(cache=True, parallel=True)
def grad_stats_1d(f, h, iso, rows):
    nb, n = f.shape
    for b in prange(nb):
        m = 0.0
        s = 0.0
        for i in range(n - 1):
            g = (f[b, i + 1] - f[b, i]) * h
            s += g * g
            g = abs(g)
            if g > m:
                m = g
        rows[0, b] = m
        rows[1, b] = s


@njit(cache=True, parallel=True)
def flow_cost_1d(y, u, h, iso, rows):
    nb, n = u.shape
    for b in prange(nb):
        s = 0.0
        for i in range(n - 1):
            s += abs(y[b, 0, i] + (u[b, i + 1] - u[b, i]) * h)
        rows[b] = s


# ----------------------------------------------------------------------------------------- 2D
@njit(cache=True, inline="always")
def _dual_step_row_2d(f, u, y, f_out, tau, sigma, rho, hx, hy, wx, wy, iso, row):
    """Row ``row`` (problem ``row // nx``, cells ``(i, :)``) of :func:`dual_step_2d`: the
    shrinkage of the cityblock norm with the per-axis dual steps ``sigma w_k``, or the plain
    one of the euclidean norm (``w_x = w_y``; otherwise :func:`dual_step_2d_weighted`)."""
    nx, ny = f.shape[1], f.shape[2]
    b = row // nx
    i = row - b * nx
    tb = tau[b]
    sx = sigma[b] * wx
    sy = sigma[b] * wy
    # the constants in the arrays' dtype: float64 literals would make float32 iterates compute
    # in float64 (a conversion per operand; the step took 0.27 instead of 0.21 ms at 256^2)
    zero = hx - hx
    one = hx / hx
    t2 = tb + tb
    rt = rho * tb
    for j in range(ny):
        fb = f[b, i, j] + t2 * u[b, i, j]
        f_out[b, i, j] = f[b, i, j] + rt * u[b, i, j]
        gx = zero
        gy = zero
        if i < nx - 1:
            gx = (f[b, i + 1, j] + t2 * u[b, i + 1, j] - fb) * hx
        if j < ny - 1:
            gy = (f[b, i, j + 1] + t2 * u[b, i, j + 1] - fb) * hy
        y0 = y[b, 0, i, j]
        y1 = y[b, 1, i, j]
        vx = y0 + sx * gx
        vy = y1 + sy * gy
        if iso:
            nv = np.sqrt(vx * vx + vy * vy)
            s = one - sx / nv if nv > sx else zero
            vx *= s
            vy *= s
        else:
            vx = _soft(vx, sx)
            vy = _soft(vy, sy)
        vx = y0 + rho * (vx - y0)
        vy = y1 + rho * (vy - y1)
        y[b, 0, i, j] = vx if i < nx - 1 else zero
        y[b, 1, i, j] = vy if j < ny - 1 else zero


@njit(cache=True, parallel=True)
def dual_step_2d_weighted(f, u, y, f_out, tau, sigma, rho, hx, hy, wx, wy):
    """:func:`dual_step_2d` of the euclidean norm with unequal dual steps ``sigma w_k``: the
    group shrinkage in their metric (``shrink.group_shrink_weighted``, a Newton iteration per
    cell). A kernel of its own, without the residual: a call of the weighted row (or its
    iterations inlined) in the fused kernels' loops kept LLVM from vectorizing them, and
    factoring the cell's arithmetic into helpers shared with :func:`_dual_step_row_2d` made
    that 12 times slower (0.21 -> 2.5 ms at 256^2, one thread); the lines below repeat it."""
    nb, nx, ny = f.shape
    for row in prange(nb * nx):
        b = row // nx
        i = row - b * nx
        tb = tau[b]
        sx = sigma[b] * wx
        sy = sigma[b] * wy
        zero = hx - hx
        t2 = tb + tb
        rt = rho * tb
        for j in range(ny):
            fb = f[b, i, j] + t2 * u[b, i, j]
            f_out[b, i, j] = f[b, i, j] + rt * u[b, i, j]
            gx = zero
            gy = zero
            if i < nx - 1:
                gx = (f[b, i + 1, j] + t2 * u[b, i + 1, j] - fb) * hx
            if j < ny - 1:
                gy = (f[b, i, j + 1] + t2 * u[b, i, j + 1] - fb) * hy
            y0 = y[b, 0, i, j]
            y1 = y[b, 1, i, j]
            vx, vy = _group_shrink_weighted(y0 + sx * gx, y1 + sy * gy, sx, sy)
            vx = y0 + rho * (vx - y0)
            vy = y1 + rho * (vy - y1)
            y[b, 0, i, j] = vx if i < nx - 1 else zero
            y[b, 1, i, j] = vy if j < ny - 1 else zero


@njit(cache=True, inline="always")
def _residual_row_2d(c, y, r, r2, hx, hy, row):
    """Row ``row`` of :func:`residual_2d`: it reads the flow of rows ``i - 1`` and ``i``."""
    nx, ny = c.shape[1], c.shape[2]
    b = row // nx
    i = row - b * nx
    zero = hx - hx  # (in the arrays' dtype, as in _dual_step_row_2d)
    for j in range(ny):
        d = zero
        if i < nx - 1:
            d -= y[b, 0, i, j] * hx
        if i > 0:
            d += y[b, 0, i - 1, j] * hx
        if j < ny - 1:
            d -= y[b, 1, i, j] * hy
        if j > 0:
            d += y[b, 1, i, j - 1] * hy
        v = c[b, i, j] - d
        r[b, i, j] = v
        r2[b, i, j] = v


@njit(cache=True, parallel=True)
def dual_step_2d(f, u, y, f_out, tau, sigma, rho, hx, hy, wx, wy, iso):
    nb, nx = f.shape[0], f.shape[1]
    for row in prange(nb * nx):
        _dual_step_row_2d(f, u, y, f_out, tau, sigma, rho, hx, hy, wx, wy, iso, row)


@njit(cache=True, parallel=True)
def residual_2d(c, y, r, r2, hx, hy):
    nb, nx = c.shape[0], c.shape[1]
    for row in prange(nb * nx):
        _residual_row_2d(c, y, r, r2, hx, hy, row)


@njit(cache=True, parallel=True)
def dual_step_residual_2d_blocks(f, u, y, f_out, tau, sigma, rho, hx, hy, wx, wy, iso, c, r, r2,
                                 nblocks):
    """:func:`dual_step_residual_2d` on all threads: the rows (of every problem, in order) in
    ``nblocks`` contiguous blocks, one task each; a block's rows after its first get their
    residual in the block's pass, the first row of every block (whose residual reads the last
    row of the block before) in a second, short parallel loop. The same bits."""
    nb, nx = f.shape[0], f.shape[1]
    rows = nb * nx
    per = (rows + nblocks - 1) // nblocks
    for blk in prange(nblocks):
        lo = blk * per
        hi = min(rows, lo + per)
        for row in range(lo, hi):
            _dual_step_row_2d(f, u, y, f_out, tau, sigma, rho, hx, hy, wx, wy, iso, row)
            if row > lo:
                _residual_row_2d(c, y, r, r2, hx, hy, row)
    for blk in prange(nblocks):
        lo = blk * per
        if lo < rows:
            _residual_row_2d(c, y, r, r2, hx, hy, lo)


@njit(cache=True, error_model="numpy")
def dual_step_residual_2d(f, u, y, f_out, tau, sigma, rho, hx, hy, wx, wy, iso, c, r, r2):
    """:func:`dual_step_2d`, then :func:`residual_2d` of the new flow, in one pass on one
    thread: the residual of row ``i`` follows the step of row ``i`` (it reads the new flow of
    rows ``i - 1`` and ``i``, both written), so the flow is read once. The same bits as the two
    kernels one after the other. NumPy's error model, as the one-thread twins."""
    nb, nx = f.shape[0], f.shape[1]
    for row in range(nb * nx):
        _dual_step_row_2d(f, u, y, f_out, tau, sigma, rho, hx, hy, wx, wy, iso, row)
        _residual_row_2d(c, y, r, r2, hx, hy, row)


@njit(cache=True, parallel=True)
def grad_stats_2d(f, hx, hy, iso, rows):
    nb, nx, ny = f.shape
    for row in prange(nb * nx):
        b = row // nx
        i = row - b * nx
        m = 0.0
        s = 0.0
        for j in range(ny):
            gx = (f[b, i + 1, j] - f[b, i, j]) * hx if i < nx - 1 else 0.0
            gy = (f[b, i, j + 1] - f[b, i, j]) * hy if j < ny - 1 else 0.0
            q = gx * gx + gy * gy
            s += q
            if iso:
                g = np.sqrt(q)
            else:
                g = max(abs(gx), abs(gy))
            if g > m:
                m = g
        rows[0, row] = m
        rows[1, row] = s


@njit(cache=True, parallel=True)
def flow_cost_2d(y, u, hx, hy, iso, rows):
    nb, nx, ny = u.shape
    for row in prange(nb * nx):
        b = row // nx
        i = row - b * nx
        s = 0.0
        for j in range(ny):
            vx = y[b, 0, i, j] + (u[b, i + 1, j] - u[b, i, j]) * hx if i < nx - 1 else 0.0
            vy = y[b, 1, i, j] + (u[b, i, j + 1] - u[b, i, j]) * hy if j < ny - 1 else 0.0
            if iso:
                s += np.sqrt(vx * vx + vy * vy)
            else:
                s += abs(vx) + abs(vy)
        rows[row] = s


# ------------------------------------------------------------------ certificate: critic repair
@njit(cache=True, parallel=True)
def repair_critic_1d(f, g, dx):
    """Feasible critic close to ``f``: backward sweep ``g_i = clip(f_i, g_{i+1} -+ dx)``.

    ``|g_{i+1} - g_i| <= dx`` holds for every ``i`` by construction.
    """
    nb, n = f.shape
    for b in prange(nb):
        g[b, n - 1] = f[b, n - 1]
        for i in range(n - 2, -1, -1):
            lo = g[b, i + 1] - dx
            hi = g[b, i + 1] + dx
            v = f[b, i]
            g[b, i] = lo if v < lo else (hi if v > hi else v)


@njit(cache=True, parallel=True)
def repair_critic_2d(f, g, dx, dy, iso):
    """Critic close to ``f`` made feasible cell by cell, in reverse raster order.

    Each ``g_ij`` is ``f_ij`` projected on the interval of values that satisfy the constraint of
    cell ``(i, j)`` given its forward neighbours, already final. For the cityblock norm the
    interval is never empty, so ``g`` is feasible. For the euclidean norm it is empty when the
    two neighbours differ by more than ``sqrt(dx^2 + dy^2)``; ``g_ij`` then minimises the
    violation, and the caller rescales by ``max(1, max |Dg|)`` as usual.
    """
    nb, nx, ny = f.shape
    a = 1.0 / (dx * dx)
    bb = 1.0 / (dy * dy)
    for b in prange(nb):
        for i in range(nx - 1, -1, -1):
            for j in range(ny - 1, -1, -1):
                v = f[b, i, j]
                if i == nx - 1 and j == ny - 1:
                    g[b, i, j] = v
                    continue
                if i == nx - 1:
                    lo = g[b, i, j + 1] - dy
                    hi = g[b, i, j + 1] + dy
                elif j == ny - 1:
                    lo = g[b, i + 1, j] - dx
                    hi = g[b, i + 1, j] + dx
                else:
                    A = g[b, i + 1, j]
                    B = g[b, i, j + 1]
                    if iso:
                        t = (a * A + bb * B) / (a + bb)
                        disc = (a + bb) - a * bb * (A - B) * (A - B)
                        half = np.sqrt(disc) / (a + bb) if disc > 0.0 else 0.0
                        lo = t - half
                        hi = t + half
                    else:
                        lo = max(A - dx, B - dy)
                        hi = min(A + dx, B + dy)
                g[b, i, j] = lo if v < lo else (hi if v > hi else v)


@njit(cache=True, parallel=True)
def level_rescale_2d(f, g, hx, hy, iso, nbins):
    """A feasible critic from ``f`` by a nondecreasing map of its values: ``g = phi(f)``.

    ``phi`` is piecewise linear on ``nbins`` equal bins of ``[min f, max f]``; its slope on a
    bin is ``min(1, 1 / |(Df)_i|)`` over the cells ``i`` whose constraint is violated and whose
    three values (the cell and its forward neighbours) span that bin. A difference of ``g`` is
    a difference of ``f`` times the mean slope between its two values, at most ``1 / |(Df)_i|``,
    so every cell's constraint holds (up to rounding; the caller still divides by
    ``max(1, max |Dg|)``). Where the violations sit at a few levels of ``f`` -- along a part of
    the transport rays -- this loses less of ``<c, f>`` than dividing all of ``f`` by its
    largest violation.
    """
    nb, nx, ny = f.shape
    for b in prange(nb):
        lo = f[b, 0, 0]
        hi = lo
        for i in range(nx):
            for j in range(ny):
                lo = min(lo, f[b, i, j])
                hi = max(hi, f[b, i, j])
        width = (hi - lo) / nbins if hi > lo else 1.0
        slope = np.ones(nbins)
        for i in range(nx):
            for j in range(ny):
                v = f[b, i, j]
                vmin = v
                vmax = v
                a = 0.0
                c = 0.0
                if i < nx - 1:
                    a = (f[b, i + 1, j] - v) * hx
                    vmin = min(vmin, f[b, i + 1, j])
                    vmax = max(vmax, f[b, i + 1, j])
                if j < ny - 1:
                    c = (f[b, i, j + 1] - v) * hy
                    vmin = min(vmin, f[b, i, j + 1])
                    vmax = max(vmax, f[b, i, j + 1])
                nrm = np.sqrt(a * a + c * c) if iso else max(abs(a), abs(c))
                if nrm <= 1.0:
                    continue
                s = 1.0 / nrm
                q1 = min(int((vmax - lo) / width), nbins - 1)
                for q in range(min(int((vmin - lo) / width), nbins - 1), q1 + 1):
                    slope[q] = min(slope[q], s)
        start = np.empty(nbins)  # phi at the start of each bin
        acc = lo
        for q in range(nbins):
            start[q] = acc
            acc += slope[q] * width
        for i in range(nx):
            for j in range(ny):
                t = f[b, i, j] - lo
                q = min(int(t / width), nbins - 1)
                g[b, i, j] = start[q] + slope[q] * (t - q * width)


@njit(cache=True, parallel=True)
def ray_critics_2d(f, g_lo, g_hi, hx, hy, iso, max_sweeps, ex, ey):
    """Two feasible critics near ``f`` whose corrections follow the transport rays.

    Each cell's constraint is replaced by a box inside it, ``|(Dg)_{i,k}| <= a_{i,k}`` with
    ``sum_k a_{i,k}^2 = 1`` (euclidean; ``a = 1`` for the cityblock norm, where the box is the
    constraint): ``a_{i,k} = |(Df)_{i,k}| / |(Df)_i|`` on a violated cell, so the box shrinks
    both differences by the cell's violation, and ``a_{i,k}^2 = (Df)_{i,k}^2 + (1 - |(Df)_i|^2)
    / 2`` on a cell with slack. A box bounds the change of ``g`` along each grid edge by a
    length ``a_{i,k} / h_k``: ``g_lo`` is the greatest function below ``f`` and ``g_hi`` the
    least one above it whose changes respect those lengths -- the inf- and sup-convolutions of
    ``f`` with the graph distance they define (a feasible ``f`` is its own), by Gauss-Seidel
    sweeps down and up the rows in turn until a sweep changes nothing (or ``max_sweeps``; an
    unconverged result is still rescaled by the caller). A sweep relaxes each row from its
    neighbours above and below, then along the row forwards and backwards while it is in
    cache: the work of two raster sweeps (of four directions) in one pass over memory. The
    result is the greatest function below ``f`` whose computed changes respect the lengths --
    whatever the order of the relaxations, bit for bit -- so this is the same result as the
    four raster sweeps gave, in 2-5 sweeps instead of 4-7 (plus the one that changes nothing):
    1.6-1.8 times faster on the iterates of bench_hard's checks (identical results; see
    ``otgrid.critic.backend_numpy.RAY_SWEEPS``). ``f - g_lo`` grows along each ray by
    the violations met on that ray, not by the largest one anywhere, which is what dividing
    ``f`` by ``max |Df|`` costs. Both are feasible up to rounding; the caller divides by
    ``max(1, max |Dg|)`` as for every candidate. The edge lengths are computed once per problem
    (rows in parallel); the two sides of a problem are then separate tasks of the parallel
    loop.
    """
    nb, nx, ny = f.shape
    # the length of each grid edge (into the caller's ex, ey, shaped like f): the largest
    # change of g its cell's box allows
    for row in prange(nb * nx):
        b = row // nx
        i = row - b * nx
        for j in range(ny):
            ax = 1.0
            ay = 1.0
            if iso and i < nx - 1 and j < ny - 1:
                a = (f[b, i + 1, j] - f[b, i, j]) * hx
                c = (f[b, i, j + 1] - f[b, i, j]) * hy
                n2 = a * a + c * c
                if n2 > 1.0:
                    s = 1.0 / np.sqrt(n2)
                    ax = abs(a) * s
                    ay = abs(c) * s
                else:
                    extra = 0.5 * (1.0 - n2)
                    ax = np.sqrt(a * a + extra)
                    ay = np.sqrt(c * c + extra)
            ex[b, i, j] = ax / hx
            ey[b, i, j] = ay / hy
    for task in prange(2 * nb):  # the two sides of a problem are independent: two tasks
        b = task // 2
        side = task - 2 * b
        g = g_lo[b] if side == 0 else g_hi[b]
        sg = 1.0 if side == 0 else -1.0  # side 1 works on -g: the least majorant of f
        for i in range(nx):
            for j in range(ny):
                g[i, j] = sg * f[b, i, j]
        for sweep in range(max_sweeps):
            changed = False
            for ii in range(nx):
                i = ii if sweep % 2 == 0 else nx - 1 - ii
                # the row from the rows above and below (whole-row passes), then along itself
                # forwards and backwards while it is in cache
                if i > 0:
                    for j in range(ny):
                        v = g[i - 1, j] + ex[b, i - 1, j]
                        if v < g[i, j]:
                            g[i, j] = v
                            changed = True
                if i < nx - 1:
                    for j in range(ny):
                        v = g[i + 1, j] + ex[b, i, j]
                        if v < g[i, j]:
                            g[i, j] = v
                            changed = True
                for j in range(1, ny):
                    v = g[i, j - 1] + ey[b, i, j - 1]
                    if v < g[i, j]:
                        g[i, j] = v
                        changed = True
                for j in range(ny - 2, -1, -1):
                    v = g[i, j + 1] + ey[b, i, j]
                    if v < g[i, j]:
                        g[i, j] = v
                        changed = True
            if not changed:
                break
        if side == 1:
            for i in range(nx):
                for j in range(ny):
                    g[i, j] = -g[i, j]

@njit(cache=True, inline="always")
def _behind(p, q, d, lo, hi, ok):
    """``[lo, hi]`` cut to the values a forward neighbour of a cell may take: the cell's value
    ``p``, its other (scaled) difference ``q``, the neighbour's spacing ``d``; ``ok`` False
    when no value fits (the cell violated beyond rounding)."""
    room = 1.0 - q * q
    if room < 0.0:
        return lo, hi, False
    w = np.sqrt(room) * d
    return max(lo, p - w), min(hi, p + w), ok


@njit(cache=True, error_model="numpy")
def ascend_critic_2d(g, c, hx, hy, iso, sweeps, cmin):
    """Raise a feasible critic where ``c > 0`` and lower it where ``c < 0``, in place.

    Gauss-Seidel sweeps in the four raster directions (``sweeps`` of them): each value ``g_ij``
    with ``|c_ij| > cmin[b]`` (per problem; the cells below hold next to no mass, and moving
    them would only give the critic a staircase there) moves to the end of the interval of
    values that keep feasible the three cells whose constraints it enters -- its own
    (forward differences to ``(i+1, j)`` and ``(i, j+1)``) and those of ``(i-1, j)`` and
    ``(i, j-1)`` (``g_ij`` is their forward neighbour) -- the end ``c_ij`` points to. So
    ``<c, g>`` never decreases and ``g`` stays feasible up to rounding (the caller divides by
    ``max(1, max |Dg|)`` as for every candidate). A value only moves the way that raises
    ``<c, g>`` (a tight constraint can put it a rounding error outside its interval); a cell
    whose interval is empty (``g`` infeasible there beyond rounding) is left alone. Near the
    optimum the extracted critics lose most of their value to their slack where mass sits:
    these moves give it back (the coordinate-wise optimality of W1's dual on the cells with
    mass). One thread, the problems one after the other (each gets the same bits in any
    batch); NumPy's error model, as the one-thread twins of the other kernels.
    """
    nb, nx, ny = g.shape
    hx2 = hx * hx
    hy2 = hy * hy
    inv_s2 = 1.0 / (hx2 + hy2)
    dx = 1.0 / hx
    dy = 1.0 / hy
    for b in range(nb):
        for sweep in range(sweeps):
            for ii in range(nx):
                i = ii if sweep % 2 == 0 else nx - 1 - ii
                for jj in range(ny):
                    j = jj if sweep % 4 < 2 else ny - 1 - jj
                    cij = c[b, i, j]
                    if abs(cij) <= cmin[b]:
                        continue
                    t = g[b, i, j]
                    lo = -np.inf
                    hi = np.inf
                    ok = True
                    # its own cell
                    if iso and i < nx - 1 and j < ny - 1:
                        a = g[b, i + 1, j]
                        d = g[b, i, j + 1]
                        t0 = (a * hx2 + d * hy2) * inv_s2
                        disc = t0 * t0 - (a * a * hx2 + d * d * hy2 - 1.0) * inv_s2
                        if disc < 0.0:
                            ok = False
                        else:
                            w = np.sqrt(disc)
                            lo = t0 - w
                            hi = t0 + w
                    else:
                        if i < nx - 1:
                            a = g[b, i + 1, j]
                            lo = max(lo, a - dx)
                            hi = min(hi, a + dx)
                        if j < ny - 1:
                            d = g[b, i, j + 1]
                            lo = max(lo, d - dy)
                            hi = min(hi, d + dy)
                    # the cell before it along x, and along y
                    if i > 0:
                        p = g[b, i - 1, j]
                        q = (g[b, i - 1, j + 1] - p) * hy if iso and j < ny - 1 else 0.0
                        lo, hi, ok = _behind(p, q, dx, lo, hi, ok)
                    if j > 0:
                        p = g[b, i, j - 1]
                        q = (g[b, i + 1, j - 1] - p) * hx if iso and i < nx - 1 else 0.0
                        lo, hi, ok = _behind(p, q, dy, lo, hi, ok)
                    if not ok or lo > hi:
                        continue
                    if cij > 0.0:
                        if hi > t:
                            g[b, i, j] = hi
                    elif lo < t:
                        g[b, i, j] = lo



NEWTON_STEPS = 2


@njit(cache=True, error_model="numpy")
def descend_flow_2d(p0, p1, hx, hy, sweeps, min_slope):
    """Lower the cost ``sum_i |(p0_i, p1_i)|_2`` of one feasible flow (its components ``p0``,
    ``p1``, each ``(nx, ny)``) in place, keeping its divergence: the upper bound's side of
    :func:`ascend_critic_2d`.

    Gauss-Seidel sweeps in the four raster directions (``sweeps`` of them) over the plaquettes
    ``(i, j)``-``(i + 1, j + 1)``: each adds the circulation ``t`` around its four edges that
    lowers the cost of the three cells it enters -- ``p0`` of ``(i, j)`` and ``(i, j + 1)`` by
    ``+- t hy``, ``p1`` of ``(i, j)`` and ``(i + 1, j)`` by ``-+ t hx`` (``hx, hy`` the inverse
    spacings) -- which leaves ``D^T p`` unchanged up to rounding. The cost along ``t`` is
    convex: ``NEWTON_STEPS`` Newton steps from ``t = 0``, safeguarded by bisection inside the
    bracket of the three cells' own minimisers, the step then halved until the cost falls. A
    plaquette moves only where the cost's slope at ``t = 0`` exceeds ``min_slope (hx + hy)``
    beyond the subgradient of its cells without flow (the others would gain next to nothing).
    The cells' norms are kept between moves. Returns how many plaquettes moved. One thread;
    one problem (2D arrays: with 4D indexing the kernel took twice as long to compile). The
    Euclidean norm only: with the cityblock norm the cost is piecewise linear along ``t`` and
    these moves stall at its kinks (a 20^2 Gaussian pair: 18.7 % above the optimum before,
    18.3 % after one sweep or 400).
    """
    nx, ny = p0.shape
    cost = np.empty((nx, ny))
    for i in range(nx):
        for j in range(ny):
            cost[i, j] = np.sqrt(p0[i, j] * p0[i, j] + p1[i, j] * p1[i, j])
    dd = hx * hx + hy * hy
    d_u = np.sqrt(dd)
    gmin = min_slope * (hx + hy)
    moved = 0
    for sweep in range(sweeps):
        for ii in range(nx - 1):
            i = ii if sweep % 2 == 0 else nx - 2 - ii
            for jj in range(ny - 1):
                j = jj if sweep % 4 < 2 else ny - 2 - jj
                u0 = p0[i, j]
                u1 = p1[i, j]
                v0 = p0[i, j + 1]
                v1 = p1[i, j + 1]
                w0 = p0[i + 1, j]
                w1 = p1[i + 1, j]
                na = cost[i, j]
                nc = cost[i, j + 1]
                nd = cost[i + 1, j]
                # the slope at t = 0; a cell without flow adds its subgradient's interval
                g = 0.0
                slack = gmin
                if na > 0.0:
                    g += (u0 * hy - u1 * hx) / na
                else:
                    slack += d_u
                if nc > 0.0:
                    g -= v0 * hy / nc
                else:
                    slack += hy
                if nd > 0.0:
                    g += w1 * hx / nd
                else:
                    slack += hx
                if abs(g) <= slack:
                    continue
                before = na + nc + nd
                # the minimiser lies between those of the three cells' norms
                ta = (u1 * hx - u0 * hy) / dd
                tv = v0 / hy
                tw = -w1 / hx
                lo = min(ta, min(tv, tw))
                hi = max(ta, max(tv, tw))
                t = 0.0
                for it in range(NEWTON_STEPS + 30):
                    a0 = u0 + t * hy
                    a1 = u1 - t * hx
                    c0 = v0 - t * hy
                    d1 = w1 + t * hx
                    na = np.sqrt(a0 * a0 + a1 * a1)
                    nc = np.sqrt(c0 * c0 + v1 * v1)
                    nd = np.sqrt(w0 * w0 + d1 * d1)
                    if it >= NEWTON_STEPS:  # the step found: halved until the cost falls
                        if na + nc + nd < before:
                            p0[i, j] = a0
                            p1[i, j] = a1
                            p0[i, j + 1] = c0
                            p1[i + 1, j] = d1
                            cost[i, j] = na
                            cost[i, j + 1] = nc
                            cost[i + 1, j] = nd
                            moved += 1
                            break
                        t *= 0.5
                        continue
                    g = 0.0
                    h = 0.0
                    if na > 0.0:
                        q = a0 * hy - a1 * hx
                        g += q / na
                        h += (dd * na * na - q * q) / (na * na * na)
                    if nc > 0.0:
                        q = -c0 * hy
                        g += q / nc
                        h += (hy * hy * nc * nc - q * q) / (nc * nc * nc)
                    if nd > 0.0:
                        q = d1 * hx
                        g += q / nd
                        h += (hx * hx * nd * nd - q * q) / (nd * nd * nd)
                    # the slope's sign narrows the bracket; Newton's step if it stays inside
                    if g > 0.0:
                        hi = min(hi, t)
                    else:
                        lo = max(lo, t)
                    step = t - g / h if h > 0.0 else lo - 1.0
                    t = step if lo < step < hi else 0.5 * (lo + hi)
    return moved

# --------------------------------------------------- the step's Poisson solve: tridiagonal lines
@njit(cache=True, inline="always")
def _neumann_line(v, hx2):
    """Solve ``hx2 tridiag(-1, 2, -1) u = v - mean(v)`` (Neumann ends) in place by integrating
    twice; ``u`` of zero mean."""
    n = v.shape[0]
    mean = 0.0
    for i in range(n):
        mean += v[i]
    mean /= n
    flux = 0.0
    w = 0.0
    tot = 0.0
    for i in range(n):
        flux += v[i] - mean
        v[i] = w
        tot += w
        w -= flux / hx2
    tot /= n
    for i in range(n):
        v[i] -= tot


@njit(cache=True, inline="always")
def _thomas_columns(rh, b, k0, k1, m, e):
    """The Thomas algorithm down axis 1 of ``rh[b]`` for the columns ``k0:k1`` (inverse pivots
    ``m``, off-diagonal ``e``), in place, over row slices (the inner loop over the columns
    vectorizes)."""
    n = rh.shape[1]
    w = k1 - k0
    row = rh[b, 0, k0:k1]
    piv = m[0, k0:k1]
    for k in range(w):
        row[k] *= piv[k]
    for i in range(1, n):
        prev = row
        row = rh[b, i, k0:k1]
        piv = m[i, k0:k1]
        for k in range(w):
            row[k] = (row[k] - e * prev[k]) * piv[k]
    for i in range(n - 2, -1, -1):
        nxt = row
        row = rh[b, i, k0:k1]
        piv = m[i, k0:k1]
        for k in range(w):
            row[k] -= e * piv[k] * nxt[k]


@njit(cache=True, parallel=True)
def poisson_lines_2d(rh, m, e, hx2, s0):
    """The x-direction solves of a 2D Neumann Poisson problem whose y axis is DCT-transformed.

    ``rh`` ``(B, nx, ny)``: the right-hand side after a DCT-II along y (in place: the solution
    before the inverse DCT). Column ``k`` solves ``(L_x + lambda_k) u = rh[:, k]`` with
    ``L_x = hx2 tridiag(-1, 2, -1)`` (Neumann ends) by the Thomas algorithm from the precomputed
    inverse pivots ``m`` ``(nx, ny)`` (``e = -hx2``, the off-diagonal; the upper factors are
    ``e m``); column 0 (``lambda_0 = 0``, singular) is integrated twice from its mean-free
    right-hand side and given zero mean. Threads take blocks of 128 columns; the recurrences
    run along x over row slices of a block, whose inner loop over ``k`` LLVM vectorizes (with
    2D indexing of ``rh`` it could not rule out that rows ``i`` and ``i - 1`` overlap, and the
    loops ran scalar: 0.128 -> 0.038 ms at 256^2 on one thread, 1.87 -> 0.84 ms at 1024^2 on
    two, identical results).

    The reduced system of FACR(1) (see below; ``rh`` its even rows, ``m`` its pivots) passes
    ``s0`` ``(B, nx_grid + 1)``, the row sums of the whole grid: column 0 is then that grid's
    1D Neumann problem, solved as above, its even rows kept, and ``s0[b, nx_grid]`` receives
    the mean of ``r``. Otherwise ``s0`` is ``(B, 0)`` (unused).
    """
    nb, ny = rh.shape[0], rh.shape[2]
    nblk = (ny + 127) // 128
    for task in prange(nb * nblk):
        b = task // nblk
        k0 = (task - b * nblk) * 128
        k1 = min(k0 + 128, ny)
        if k0 == 0:
            if s0.shape[1] == 0:
                _neumann_line(rh[b, :, 0], hx2)
            else:
                _facr_mode0(rh, s0, hx2, b)
            k0 = 1
        _thomas_columns(rh, b, k0, k1, m, e)


# ------------------------------------ the step's Poisson solve: one cyclic reduction (FACR(1))
# Rows i of the grid are vectors along y; with B = 2 I + A_y / hx2 (A_y the y-Laplacian),
# row i of D^T D u = r reads hx2 (-u[i-1] + B_i u[i] - u[i+1]) = r[i] (B_i = B - I on the
# first and last rows). Eliminating the odd rows leaves a tridiagonal system on the even
# rows whose right-hand side is R[t] = B r[2t] + r[2t-1] + r[2t+1] (+ B'^-1 r[nx-1] for an
# even nx, whose last row is odd: B' = B - I): half the rows to transform, then the odd rows
# by B u[i] = r[i] / hx2 + u[i-1] + u[i+1], a tridiagonal solve along y each.

@njit(cache=True, fastmath={"reassoc", "nsz"})
def _row_sum(row):
    """The sum of ``row`` in float64, reassociated (vectorized): it only feeds the mean and
    mode 0 (:func:`poisson_lines_2d`)."""
    s = 0.0
    for j in range(row.shape[0]):
        s += row[j]
    return s


@njit(cache=True, parallel=True)
def facr_reduce_2d(r, R, s0, k, qe, w):
    """The reduced right-hand side ``R`` ``(B, (nx + 1) // 2, ny)`` of the even rows of ``r``
    ``(B, nx, ny)`` (see above; ``ny >= 2``), and ``s0[b, i]`` the sum of row ``i`` of ``r``.
    ``k``: ``(c, 2 + 2c, 2 + c, 1 / hx2, 0, 1)`` in ``r``'s dtype, ``c = hy2 / hx2``; ``qe``
    the inverse Thomas pivots of ``B'``; ``w`` ``(B, ny)`` scratch."""
    nb, nx, ny = r.shape
    M = R.shape[1]
    c, dd, de = k[0], k[1], k[2]
    for task in prange(nb * M):
        b = task // M
        t = task - b * M
        i = 2 * t
        out = R[b, t]
        row = r[b, i]
        # a missing neighbour counts 0 times (its row: this one)
        wl = k[5] if i > 0 else k[4]
        wh = k[5] if i + 1 < nx else k[4]
        lo = r[b, i - 1] if i > 0 else row
        hi = r[b, i + 1] if i + 1 < nx else row
        out[0] = de * row[0] - c * row[1] + (wl * lo[0] + wh * hi[0])
        for j in range(1, ny - 1):
            out[j] = dd * row[j] - c * (row[j - 1] + row[j + 1]) + (wl * lo[j] + wh * hi[j])
        out[ny - 1] = de * row[ny - 1] - c * row[ny - 2] + (wl * lo[ny - 1] + wh * hi[ny - 1])
        s0[b, i] = _row_sum(row)
        if i + 1 < nx:
            s0[b, i + 1] = _row_sum(hi)
        if i + 2 == nx:  # B B'^-1 r[nx - 1] = r[nx - 1] + B'^-1 r[nx - 1]
            wb = w[b]
            _thomas_row(hi, wb, c, qe)
            for j in range(ny):
                out[j] += wb[j]


@njit(cache=True, inline="always")
def _thomas_row(src, out, c, q):
    """``out = T^-1 src`` for a symmetric tridiagonal ``T`` of off-diagonal ``-c`` along one
    row (inverse pivots ``q``): a scalar recurrence."""
    n = src.shape[0]
    y = c - c
    for j in range(n):
        y = (src[j] + c * y) * q[j]
        out[j] = y
    for j in range(n - 2, -1, -1):
        out[j] += c * q[j] * out[j + 1]


@njit(cache=True, inline="always")
def _facr_mode0(rh, s0, hx2, b):
    """Mode 0 of FACR(1)'s reduced system for problem ``b`` (see :func:`poisson_lines_2d`):
    from the row sums ``s0[b, :nx]`` of the whole grid (the reduced right-hand side's mode 0
    counts the mean of ``r`` unevenly), solved on the whole grid, its even rows kept."""
    M, ny = rh.shape[1], rh.shape[2]
    nx = s0.shape[1] - 1
    v = s0[b, :nx]
    tot = 0.0
    for i in range(nx):
        tot += v[i]
    s0[b, nx] = tot / (nx * ny)
    scale = 1.0 / np.sqrt(ny)  # the orthonormal DCT's mode 0 of a row
    for i in range(nx):
        v[i] *= scale
    _neumann_line(v, hx2)
    for t in range(M):
        rh[b, t, 0] = v[2 * t]


@njit(cache=True, parallel=True)
def facr_recover_2d(r, out, s0, k, q, qe, tile):
    """The odd rows of ``out`` ``(B, nx, ny)`` from its even rows (solved) and the odd rows of
    ``r`` (``out`` may be ``r``): ``B u[i] = (r[i] - mean r) / hx2 + u[i-1] + u[i+1]``. The
    odd rows go in blocks of ``tile.shape[2]`` rows, whose right-hand sides go transposed into a
    block buffer ``(ny, width)``: the recurrences along y run across the block's rows (the
    inner loop vectorizes). ``tile`` ``(B * T, ny, width)``: each problem's blocks are shared
    by ``T`` tasks, each reusing its own buffer (which stays in cache: a buffer per block,
    the half grid's size in all, was 13-18 % slower on two threads at 512^2 and 1024^2). The
    last row of an even ``nx`` (one neighbour, ``B'``) counts as one more block."""
    nb, nx, ny = r.shape
    c, inv = k[0], k[3]
    width = tile.shape[2]
    ntile = tile.shape[0] // nb
    full = (nx - 1) // 2  # odd rows with two even neighbours
    nblk = (full + width - 1) // width
    nwork = nblk + (1 if nx % 2 == 0 else 0)
    for task in prange(nb * ntile):
        b = task // ntile
        tb = tile[task]
        mu = r.dtype.type(s0[b, nx])
        for blk in range(task - b * ntile, nwork, ntile):
            if blk == nblk:
                i = nx - 1
                o, rr, lo = out[b, i], r[b, i], out[b, i - 1]
                for j in range(ny):
                    o[j] = (rr[j] - mu) * inv + lo[j]
                _thomas_row(o, o, c, qe)
                continue
            q0 = blk * width
            n = min(width, full - q0)
            for g in range(n):
                i = 2 * (q0 + g) + 1
                rr, lo, hi = r[b, i], out[b, i - 1], out[b, i + 1]
                for j in range(ny):
                    tb[j, g] = (rr[j] - mu) * inv + lo[j] + hi[j]
            for g in range(n, width):
                for j in range(ny):
                    tb[j, g] = 0.0
            # the recurrences with 2D indexing: 10-15 % faster here than over row views (and
            # than folding q_j into the block to take the multiply off the forward chain)
            p = q[0]
            for g in range(width):
                tb[0, g] *= p
            for j in range(1, ny):
                p = q[j]
                for g in range(width):
                    tb[j, g] = (tb[j, g] + c * tb[j - 1, g]) * p
            for jj in range(ny - 1):
                j = ny - 2 - jj
                cp = c * q[j]
                for g in range(width):
                    tb[j, g] += cp * tb[j + 1, g]
            for g in range(n):
                o = out[b, 2 * (q0 + g) + 1]
                for j in range(ny):
                    o[j] = tb[j, g]


# ------------------------------------------------------------- one-thread versions
dual_step_1d_serial = _serial(dual_step_1d)
dual_step_2d_serial = _serial(dual_step_2d)
dual_step_2d_weighted_serial = _serial(dual_step_2d_weighted)
flow_cost_1d_serial = _serial(flow_cost_1d)
flow_cost_2d_serial = _serial(flow_cost_2d)
grad_stats_1d_serial = _serial(grad_stats_1d)
grad_stats_2d_serial = _serial(grad_stats_2d)
poisson_lines_2d_serial = _serial(poisson_lines_2d)
facr_reduce_2d_serial = _serial(facr_reduce_2d)
facr_recover_2d_serial = _serial(facr_recover_2d)
repair_critic_1d_serial = _serial(repair_critic_1d)
repair_critic_2d_serial = _serial(repair_critic_2d)
level_rescale_2d_serial = _serial(level_rescale_2d)
ray_critics_2d_serial = _serial(ray_critics_2d)
residual_1d_serial = _serial(residual_1d)
residual_2d_serial = _serial(residual_2d)
