"""CUDA kernels (numba-cuda) for regularized optimal transport between point clouds.

The GPU counterparts of :mod:`otgrid.kernels.pointcloud_numba`, pure functions on device arrays
(no imports from otgrid). They run under the CUDA simulator (``NUMBA_ENABLE_CUDASIM=1``) on
NumPy arrays; without numba-cuda the module still imports and a launch raises ImportError. The
ground cost ``c_ij = c(x_i, y_j)`` is recomputed from the coordinates for every pair: nothing
of size ``n x m`` is ever stored.

Layout (``B`` problems, ``n`` rows, ``m`` columns, dimension ``d <= MAX_DIM``; float64):
``xT`` (B, d, n), ``yT`` (B, d, m), ``inv`` (B,) = ``1 / eps`` (or ``1 / lambda``),
``kind`` in {``COST_EUCLIDEAN``, ``COST_SQEUCLIDEAN``, ``COST_CITYBLOCK``}.

Every kernel gives one thread one row ``i`` (one output) and sweeps the columns in tiles of
``blockDim.x`` points that the block stages in shared memory (coordinates and the per-column
vector), so each column is read from global memory once per block. The ``B * ceil(n / threads)``
blocks of rows are laid out problem by problem along the grid's axis x, the vectors of
``apply_rows`` along axis y; each block strides over both (block ``blk``, then ``blk +
gridDim.x``, ...; vector ``k``, then ``k + gridDim.y``, ...), so a grid capped at CUDA's limits
(:data:`otgrid.kernels._cuda.MAX_GRID_X`, ``MAX_GRID_Y``) covers any size. Launch with
:func:`launch_shape` (``apply_rows``: :func:`apply_shape`), ``threads <= MAX_THREADS``.
:data:`PTX_SIGNATURES` lists the argument types of the launches.

Kernels
-------
lse_rows(xT, yT, h, shift, inv, kind, want_cost, lse, mcost)
    ``lse[b, i] = log sum_j exp(h[b, j] + (shift[b, i] - c_ij) inv[b])`` by an *online*
    log-sum-exp (running maximum, rescaled sum: exact for any shift, nothing overflows); with
    ``want_cost`` also ``mcost[b, i] = sum_j p_ij c_ij / sum_j p_ij``. One Sinkhorn half-step
    (rows, ``x`` against ``y``; columns: the same kernel with ``yT`` and ``xT`` swapped).
l2_rows(xT, yT, phi, psi, dphi, dpsi, wa, wb, inv, kind, row, rowtot)
    With ``v_ij = (phi_i - psi_j - c_ij)_+`` and ``r_ij`` the same at ``(phi - dphi, psi -
    dpsi)``: ``row[b, i] = wa_i sum_j wb_j v_ij inv``, and per row the three partial totals
    ``rowtot[b, i] = wa_i (sum_j wb_j v^2 inv / 2, sum_j wb_j v c inv, sum_j wb_j (v^2 - r^2)
    inv / 2)``, the last summed as ``(dphi_i - dpsi_j)(v + r)`` where both are active (as the
    CPU kernel). The caller sums ``rowtot`` over ``i``.
l2_cols(xT, yT, phi, psi, wa, wb, inv, kind, col)
    ``col[b, j] = wb_j sum_i wa_i v_ij inv`` (one thread per column; rows staged in tiles).
apply_rows(xT, yT, s, hv, wv, inv, kind, mode, V, out)
    ``out[b, i, k] = sum_j K_ij V[b, k, j]`` with ``K_ij = exp(hv_j + (s_i - c_ij) inv)``
    (``mode == 0``, the Gibbs plan) or ``wv_j (s_i - hv_j - c_ij)_+ inv`` (``mode == 1``, the
    L2 pseudo-plan). The grid's axis y runs over the vectors ``k``.
"""

from __future__ import annotations

import math

from numba import float64
from numba import types as _t

from . import _cuda
from ._cuda import cuda, device, kernel

__all__ = [
    "COST_CITYBLOCK",
    "COST_EUCLIDEAN",
    "COST_SQEUCLIDEAN",
    "MAX_DIM",
    "MAX_THREADS",
    "PTX_SIGNATURES",
    "apply_rows",
    "apply_shape",
    "l2_cols",
    "l2_rows",
    "launch_shape",
    "lse_rows",
]

COST_EUCLIDEAN = 0
COST_SQEUCLIDEAN = 1
COST_CITYBLOCK = 2

# Threads per block (at most) = points per shared-memory tile; dimensions held per point.
MAX_THREADS = 128
MAX_DIM = 8
_NEG = -1e300


def launch_shape(batch: int, rows: int, threads: int = MAX_THREADS) -> tuple[int, int]:
    """``(blocks, threads)`` for a kernel with one thread per row of ``batch`` problems.

    Parameters
    ----------
    batch, rows : int
        Number of problems and of rows per problem.
    threads : int, optional
        Threads per block (at most :data:`MAX_THREADS`); fewer when ``rows`` is smaller.

    Returns
    -------
    tuple of int
        Blocks (``batch`` times the blocks per problem, at most ``MAX_GRID_X``: the kernels
        stride over the rest) and threads per block.

    Examples
    --------
    >>> launch_shape(3, 1000)
    (24, 128)
    >>> launch_shape(2, 5)
    (2, 5)
    """
    t = max(1, min(threads, MAX_THREADS, rows))
    return _cuda.grid_blocks(batch * ((rows + t - 1) // t), 1), t


def apply_shape(batch: int, rows: int, vectors: int,
                threads: int = MAX_THREADS) -> tuple[tuple[int, int], int]:
    """``((blocks_x, blocks_y), threads)`` for :func:`apply_rows` on ``vectors`` vectors.

    Parameters
    ----------
    batch, rows : int
        Number of problems and of rows per problem.
    vectors : int
        Number of vectors ``V[b, k]`` (grid axis y, at most ``MAX_GRID_Y`` = 65 535 blocks:
        the kernel strides over the rest).
    threads : int, optional
        Threads per block, as in :func:`launch_shape`.

    Returns
    -------
    tuple
        The grid ``(blocks_x, blocks_y)`` and the threads per block.

    Examples
    --------
    >>> apply_shape(1, 1000, 100_000)
    ((8, 65535), 128)
    """
    blocks, t = launch_shape(batch, rows, threads)
    return (blocks, _cuda.grid_blocks(vectors, 1, _cuda.MAX_GRID_Y)), t


@device
def _cost(xi, ys, t, d, kind):
    """``c(x_i, y_t)`` from the row's coordinates ``xi`` and the tile ``ys`` (MAX_DIM, tile)."""
    s = 0.0
    if kind == COST_CITYBLOCK:
        for k in range(d):
            s += abs(xi[k] - ys[k, t])
        return s
    for k in range(d):
        df = xi[k] - ys[k, t]
        s += df * df
    if kind == COST_EUCLIDEAN:
        return math.sqrt(s)
    return s


@device
def _blocks(batch, n):
    """Blocks of ``blockDim.x`` rows that cover ``n`` rows of each of ``batch`` problems."""
    return batch * ((n + cuda.blockDim.x - 1) // cuda.blockDim.x)


@device
def _row_of_block(blk, n):
    """``(b, i)`` of this thread in block ``blk``: blocks are laid out problem by problem."""
    nb = (n + cuda.blockDim.x - 1) // cuda.blockDim.x
    b = blk // nb
    i = (blk - b * nb) * cuda.blockDim.x + cuda.threadIdx.x
    return b, i


@kernel
def lse_rows(xT, yT, h, shift, inv, kind, want_cost, lse, mcost):
    """Online log-sum-exp of ``h_j + (shift_i - c_ij) inv`` over the columns, per row."""
    d = xT.shape[1]
    n = xT.shape[2]
    m = yT.shape[2]
    tid = cuda.threadIdx.x
    tpb = cuda.blockDim.x
    ys = cuda.shared.array((MAX_DIM, MAX_THREADS), float64)
    hs = cuda.shared.array(MAX_THREADS, float64)
    xi = cuda.local.array(MAX_DIM, float64)
    for blk in range(cuda.blockIdx.x, _blocks(xT.shape[0], n), cuda.gridDim.x):
        b, i = _row_of_block(blk, n)
        active = i < n
        sh = 0.0
        if active:
            for k in range(d):
                xi[k] = xT[b, k, i]
            sh = shift[b, i]
        iv = inv[b]
        mx = _NEG
        s = 0.0
        sc = 0.0
        for j0 in range(0, m, tpb):
            j = j0 + tid
            if j < m:
                for k in range(d):
                    ys[k, tid] = yT[b, k, j]
                hs[tid] = h[b, j]
            cuda.syncthreads()
            if active:
                for t in range(min(tpb, m - j0)):
                    c = _cost(xi, ys, t, d, kind)
                    v = hs[t] + (sh - c) * iv
                    if v > mx:  # new running maximum: rescale what was summed so far
                        r = math.exp(mx - v)
                        s = s * r + 1.0
                        sc = sc * r + c
                        mx = v
                    else:
                        e = math.exp(v - mx)
                        s += e
                        sc += e * c
            cuda.syncthreads()
        if active:
            lse[b, i] = mx + math.log(s)
            if want_cost:
                mcost[b, i] = sc / s


@kernel
def l2_rows(xT, yT, phi, psi, dphi, dpsi, wa, wb, inv, kind, row, rowtot):
    """Row sums and per-row totals of the L2 pseudo-plan (see the module docstring)."""
    d = xT.shape[1]
    n = xT.shape[2]
    m = yT.shape[2]
    tid = cuda.threadIdx.x
    tpb = cuda.blockDim.x
    ys = cuda.shared.array((MAX_DIM, MAX_THREADS), float64)
    ps = cuda.shared.array(MAX_THREADS, float64)
    dps = cuda.shared.array(MAX_THREADS, float64)
    bs = cuda.shared.array(MAX_THREADS, float64)
    xi = cuda.local.array(MAX_DIM, float64)
    for blk in range(cuda.blockIdx.x, _blocks(xT.shape[0], n), cuda.gridDim.x):
        b, i = _row_of_block(blk, n)
        active = i < n
        p = 0.0
        dp = 0.0
        if active:
            for k in range(d):
                xi[k] = xT[b, k, i]
            p = phi[b, i]
            dp = dphi[b, i]
        s1 = 0.0
        s2 = 0.0
        sc = 0.0
        sd = 0.0
        for j0 in range(0, m, tpb):
            j = j0 + tid
            if j < m:
                for k in range(d):
                    ys[k, tid] = yT[b, k, j]
                ps[tid] = psi[b, j]
                dps[tid] = dpsi[b, j]
                bs[tid] = wb[b, j]
            cuda.syncthreads()
            if active:
                for t in range(min(tpb, m - j0)):
                    c = _cost(xi, ys, t, d, kind)
                    v0 = p - ps[t] - c
                    dv = dp - dps[t]
                    u0 = v0 - dv
                    m1 = 1.0 if v0 > 0.0 else 0.0
                    m2 = 1.0 if u0 > 0.0 else 0.0
                    v = v0 * m1
                    vr = u0 * m2
                    de = (v - vr) + m1 * m2 * (dv - (v - vr))
                    bv = bs[t] * v
                    s1 += bv
                    s2 += bv * v
                    sc += bv * c
                    sd += bs[t] * de * (v + vr)
            cuda.syncthreads()
        if active:
            ai = wa[b, i]
            iv = inv[b]
            row[b, i] = ai * s1 * iv
            rowtot[b, i, 0] = ai * s2 * (0.5 * iv)
            rowtot[b, i, 1] = ai * sc * iv
            rowtot[b, i, 2] = ai * sd * (0.5 * iv)


@kernel
def l2_cols(xT, yT, phi, psi, wa, wb, inv, kind, col):
    """Column sums ``wb_j sum_i wa_i (phi_i - psi_j - c_ij)_+ inv`` (one thread per column)."""
    d = xT.shape[1]
    n = xT.shape[2]
    m = yT.shape[2]
    tid = cuda.threadIdx.x
    tpb = cuda.blockDim.x
    xs = cuda.shared.array((MAX_DIM, MAX_THREADS), float64)
    ph = cuda.shared.array(MAX_THREADS, float64)
    aa = cuda.shared.array(MAX_THREADS, float64)
    yj = cuda.local.array(MAX_DIM, float64)
    for blk in range(cuda.blockIdx.x, _blocks(xT.shape[0], m), cuda.gridDim.x):
        b, j = _row_of_block(blk, m)
        active = j < m
        q = 0.0
        if active:
            for k in range(d):
                yj[k] = yT[b, k, j]
            q = psi[b, j]
        s = 0.0
        for i0 in range(0, n, tpb):
            i = i0 + tid
            if i < n:
                for k in range(d):
                    xs[k, tid] = xT[b, k, i]
                ph[tid] = phi[b, i]
                aa[tid] = wa[b, i]
            cuda.syncthreads()
            if active:
                for t in range(min(tpb, n - i0)):
                    v = ph[t] - q - _cost(yj, xs, t, d, kind)
                    if v > 0.0:
                        s += aa[t] * v
            cuda.syncthreads()
        if active:
            col[b, j] = wb[b, j] * s * inv[b]


@kernel
def apply_rows(xT, yT, s, hv, wv, inv, kind, mode, V, out):
    """``out[b, i, k] = sum_j K_ij V[b, k, j]`` (Gibbs or L2 kernel; grid axis 1 is ``k``)."""
    d = xT.shape[1]
    n = xT.shape[2]
    m = yT.shape[2]
    tid = cuda.threadIdx.x
    tpb = cuda.blockDim.x
    ys = cuda.shared.array((MAX_DIM, MAX_THREADS), float64)
    hs = cuda.shared.array(MAX_THREADS, float64)
    ws = cuda.shared.array(MAX_THREADS, float64)
    vs = cuda.shared.array(MAX_THREADS, float64)
    xi = cuda.local.array(MAX_DIM, float64)
    for kv in range(cuda.blockIdx.y, V.shape[1], cuda.gridDim.y):
        for blk in range(cuda.blockIdx.x, _blocks(xT.shape[0], n), cuda.gridDim.x):
            b, i = _row_of_block(blk, n)
            active = i < n
            si = 0.0
            if active:
                for k in range(d):
                    xi[k] = xT[b, k, i]
                si = s[b, i]
            iv = inv[b]
            acc = 0.0
            for j0 in range(0, m, tpb):
                j = j0 + tid
                if j < m:
                    for k in range(d):
                        ys[k, tid] = yT[b, k, j]
                    hs[tid] = hv[b, j]
                    ws[tid] = wv[b, j]
                    vs[tid] = V[b, kv, j]
                cuda.syncthreads()
                if active:
                    for t in range(min(tpb, m - j0)):
                        c = _cost(xi, ys, t, d, kind)
                        if mode == 0:
                            acc += math.exp(hs[t] + (si - c) * iv) * vs[t]
                        else:
                            v = si - hs[t] - c
                            if v > 0.0:
                                acc += ws[t] * v * iv * vs[t]
                cuda.syncthreads()
            if active:
                out[b, i, kv] = acc


def _a(ndim: int) -> _t.Array:
    return _t.Array(_t.float64, ndim, "C")


# (kernel, argument types) of every launch of ``otgrid.pointcloud.ops_cuda``: float64
# C-contiguous numba device arrays, ``kind`` and ``mode`` Python ints, ``want_cost`` a bool.
PTX_SIGNATURES = [
    (lse_rows, (_a(3), _a(3), _a(2), _a(2), _a(1), _t.int64, _t.boolean, _a(2), _a(2))),
    (l2_rows, (_a(3), _a(3), _a(2), _a(2), _a(2), _a(2), _a(2), _a(2), _a(1), _t.int64, _a(2),
               _a(3))),
    (l2_cols, (_a(3), _a(3), _a(2), _a(2), _a(2), _a(2), _a(1), _t.int64, _a(2))),
    (apply_rows, (_a(3), _a(3), _a(2), _a(2), _a(2), _a(1), _t.int64, _t.int64, _a(3), _a(3))),
]
