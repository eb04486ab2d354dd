"""Fused Numba kernels for regularized optimal transport between point clouds.

Pure functions on arrays (no imports from otgrid). The ground cost ``c_ij = c(x_i, y_j)`` is
computed on the fly from the coordinates, one tile of ``TILE`` columns at a time, so no kernel
stores an ``n x m`` matrix; ``kind == COST_DENSE`` reads a precomputed cost matrix instead (the
small-problem path of the caller).

Layout, shared by every kernel (``B`` problems of ``n`` rows and ``m`` columns in ``d``
dimensions; all arrays float64 and C-contiguous):

- ``xT`` (B, d, n) and ``yT`` (B, d, m): coordinates, one row per axis, so that the tile loops
  run over contiguous memory and vectorize;
- ``C`` (B, n, m): the cost matrix when ``kind == COST_DENSE``, any (1, 1, 1) array otherwise;
- ``inv`` (B,): ``1 / eps`` (or ``1 / lambda``) per problem.

:func:`sinkhorn_rows_cols` also runs in float32 (coordinates, ``h``, shifts and ``inv`` all
float32; sums in float64): the mixed-precision iterations of ``otgrid.sinkhorn``.

Two loop bodies do all the work; both map one-to-one onto a CUDA block per row (a row of
threads over a tile of columns, a shared-memory reduction per tile):

- an *online log-sum-exp over tiles of columns* (:func:`lse_rows`, :func:`exp_apply_rows`):
  ``t_ij = h_j + (s_i - c_ij) / eps`` with a per-row shift ``s_i`` (the previous potential, so
  that the terms are O(1) and one pass suffices); a row whose terms leave the range where the
  fast exponential is exact is recomputed with a running maximum;
- *tiled weighted sums* of the L2 pseudo-plan ``(phi_i - psi_j - c_ij)_+ / lambda``
  (:func:`l2_dual_rows`, :func:`l2_apply_rows`), with per-chunk column partial sums.

Every kernel has a parallel version (``prange`` over chunks of ``ROWS_PER_CHUNK`` rows) and a
``*_serial`` one (same body, one thread): the caller runs small problems on one thread, where
waking threads costs more than it saves, and times both on large ones (on a busy machine the
OpenMP threads can lose to one thread). A parallel version compiles for seconds longer than its
twin (the parfor lowering generates the loop body's machine code again): on a first run the
caller compiles it only once the one-thread version has run long enough to pay for it.

Kernels
-------
lse_rows(xT, yT, C, h, shift, inv, kind, want_cost, lse, mcost)
    ``lse[b, i] = log sum_j exp(h[b, j] + (shift[b, i] - c_ij) inv[b])``; with ``want_cost``
    also ``mcost[b, i] = sum_j p_ij c_ij / sum_j p_ij`` (the mean cost of the row).
sinkhorn_rows_cols(xT, yT, C, h, hs, iv, kind, wa, want_cost, lse, mcost, colpart)
    The row log-sum-exps of ``h_j + hs_i - c_ij iv`` and, from the same exponentials, the
    column sums of the plan whose rows were just made exact: one pass per Sinkhorn iteration
    instead of two (float64 or float32).
exp_apply_rows(xT, yT, C, h, shift, inv, kind, V, out)
    ``out[b, i, k] = sum_j exp(h[b, j] + (shift[b, i] - c_ij) inv[b]) V[b, k, j]``.
l2_dual_rows(xT, yT, C, phi, psi, dphi, dpsi, wa, wb, inv, kind, accurate, row, colpart, totals)
    With ``v_ij = (phi_i - psi_j - c_ij)_+`` and ``r_ij`` the same at the reference point
    ``(phi - dphi, psi - dpsi)``: ``row[b, i] = wa_i sum_j wb_j v_ij inv``;
    ``colpart[q, b, j]`` = the chunk-``q`` part of ``wb_j sum_i wa_i v_ij inv``;
    ``totals[q, b] = (sum wa wb v^2 inv / 2, sum wa wb v c inv, sum wa wb (v^2 - r^2) inv /
    2)`` over chunk ``q``. The last one, the change of the first since the reference, is
    summed as ``(dphi_i - dpsi_j)(v + r)`` where both are active, so it is accurate to the
    rounding of the change itself, not of the total. Without ``accurate`` the reference is
    ignored (``dphi``, ``dpsi`` are not read; the last total is 0): the loop then does about
    a third of the arithmetic (measured at 10^6 stored costs, 2 threads, best of 300: 0.38 ms
    instead of 0.67 ms).
l2_apply_rows(xT, yT, C, phi, psi, wb, inv, kind, V, out)
    ``out[b, i, k] = sum_j wb_j (phi_i - psi_j - c_ij)_+ inv V[b, k, j]``.
cost_matrix_rows(xT, yT, kind, out)
    The dense cost matrix (the caller's small-problem path stores it).
active_pairs_rows(xT, yT, C, phi, psi, kind, fill, indptr, indices)
    The pairs with ``phi_i - psi_j - c_ij > 0`` in CSR form (a counting pass, then a filling
    pass): the sparsity of the L2 dual's Hessian, for its Newton method.
fast_exp(t), fast_exp32(t)
    ``exp(t)``, vectorizable: ``2^k p(r)`` with the power of two written into the exponent
    bits. float64: on ``[EXP_LO, EXP_HI]``, relative error < 1e-14, 0 below. float32: a
    degree-5 minimax polynomial, relative error < 2.5e-7 for ``|t| <= 30`` and < 4.5e-7 on
    ``[EXP32_LO, EXP_HI]``, ``exp(EXP32_LO)`` below (not 0).
newton_matrix(P, r, c, act, H), spd_solve(H, rhs, out)
    The dense Newton system of Sinkhorn's semi-dual and its Cholesky solve (small problems).
"""

from __future__ import annotations

import math

import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.extending import intrinsic, overload, typeof_impl

__all__ = [
    "COST_CITYBLOCK",
    "COST_DENSE",
    "COST_EUCLIDEAN",
    "COST_SQEUCLIDEAN",
    "EXP_HI",
    "EXP_LO",
    "ROWS_PER_CHUNK",
    "TILE",
    "CostKind",
    "active_pairs_rows",
    "active_pairs_rows_serial",
    "cost_matrix_rows",
    "cost_matrix_rows_serial",
    "exp_apply_rows",
    "exp_apply_rows_serial",
    "fast_exp",
    "l2_apply_rows",
    "l2_apply_rows_serial",
    "l2_dual_rows",
    "l2_dual_rows_serial",
    "lse_rows",
    "lse_rows_serial",
    "n_chunks",
    "newton_matrix",
    "sinkhorn_rows_cols",
    "sinkhorn_rows_cols_serial",
    "spd_solve",
]

COST_EUCLIDEAN = 0
COST_SQEUCLIDEAN = 1
COST_CITYBLOCK = 2
COST_DENSE = 3


class CostKind(int):
    """A cost kind (``COST_*``) that Numba types as a literal constant.

    Passed as a kernel's ``kind``, it makes the kernel (and the functions it calls with
    ``kind``) compile for that one kind: Numba prunes the branches of the other kinds before
    LLVM sees them. A plain ``int`` works too and compiles every kind's loop. Measured on the
    first ``sinkhorn`` of 500 x 500 points in 2D (a fresh cache, 2-core machine, 10 runs
    interleaved with the ``int`` version): median 4.27 s instead of 4.74 s; the tile loop
    itself compiled in 1.6 s instead of 2.3 s. A call costs about 2 us more than with an
    ``int`` (Numba types the argument in Python).
    """

    __slots__ = ()


_KIND_TYPES = {k: types.literal(k) for k in (COST_EUCLIDEAN, COST_SQEUCLIDEAN, COST_CITYBLOCK,
                                             COST_DENSE)}


@typeof_impl.register(CostKind)
def _typeof_cost_kind(val, c):
    return _KIND_TYPES[int(val)]


# Columns per tile: measured (float32 fused pass, n = 10^4, 2 threads) 1.40e9 pairs/s at 128,
# 1.46e9 at 256, 1.59e9 at 512, 1.69e9 at 1024; float64 unchanged (6.5e8-6.8e8).
TILE = 1024
# fast_exp: relative error <= 4e-15 on [EXP_LO, EXP_HI] (measured), 0 below EXP_LO.
EXP_LO = -100.0
EXP_HI = 40.0
# fast_exp32 (float32): relative error <= 2.5e-7 for |t| <= 30 and 4.5e-7 on [EXP32_LO,
# EXP_HI] (measured: 2.2e-7 and 4.1e-7; the smallest normal float32 is exp(-87.3)), clamped
# below, to exp(EXP32_LO) = 1.6e-38 rather than 0: a compare and a mask less per pair
# (measured: the fused float32 pass 3-9% faster), and every sum these terms enter is either
# >= _SUM_FLOOR = 1e-10 or redone with its exact maximum.
EXP32_LO = -87.0
# A fast-path row sum below _SUM_FLOOR is recomputed with a running maximum: the terms dropped
# below EXP_LO (< 4e-44 each) must stay negligible against the sum. So is one >= _SUM_CEIL =
# exp(EXP_HI) / 2, below the value of a term clamped at EXP_HI: every row with a clamped term
# is redone (the test is on the sum, not per term, so that the loop stays a vectorized sum).
# Not exp(EXP_HI) itself: fast_exp(EXP_HI) is 32 below it, and a row whose one clamped term
# dominated passed as exact (its log-sum-exp 40 instead of 182, in a solve that then reported
# convergence).
_SUM_FLOOR = 1e-10
_SUM_CEIL = 0.5 * math.exp(EXP_HI)
# Rows per prange iteration: enough work to amortise the buffers, small enough to balance.
ROWS_PER_CHUNK = 16
# float32 passes add their column sums into float64 every FLUSH32 rows (each float32 partial
# sum then adds at most FLUSH32 terms: relative error <= 64 x 6e-8).
FLUSH32 = 64


# exp(t) = 2^k exp(r), k = round(t / ln 2), r = t - k ln 2 (|r| <= 0.347, one FMA), a
# polynomial for exp(r) (float64: minimax, degree 10; float32: minimax, degree 5: < 2.5e-7
# for |t| <= 30)
# and 2^k built in the exponent bits. The rounding adds and subtracts 1.5 * 2^52 (2^23): the
# two must not be reassociated away, so these functions use every fast-math flag but
# ``reassoc``; the kernels that call them (and vectorize their reductions) use all of them.
_EXP_FLAGS = {"nnan", "ninf", "nsz", "contract", "afn", "arcp"}
_ROUND64 = 6755399441055744.0  # 1.5 * 2^52
_ROUND32 = np.float32(12582912.0)  # 1.5 * 2^23
_INV_LN2 = 1.4426950408889634
# float64: ln 2 in one double (2.3e-17 below ln 2): r is off by |k| x 2.3e-17 <= 3.4e-15 on
# [EXP_LO, EXP_HI], instead of the exact two-part reduction (one FMA more).
_LN2 = 0.6931471805599453
# exp(r) ~ 1 + r + P2 r^2 + ... + P10 r^10 on |r| <= ln(2) / 2: minimax for the relative error
# (Lawson's iteration in 50-digit arithmetic on 400 Chebyshev points), first two coefficients
# held at 1; 2.9e-16 in exact arithmetic. With the one-FMA reduction, fast_exp's relative
# error measured against 80-bit exp: 1.4e-15 for |t| <= 30, 3.7e-15 on [EXP_LO, EXP_HI] (the
# degree-11 Taylor polynomial with the two-part reduction it replaced: 8.8e-15, and 4-13% more
# time per float64 pair on one thread).
_P2 = 0.49999999999998324
_P3 = 0.16666666666611554
_P4 = 0.0416666666681365
_P5 = 0.008333333370870702
_P6 = 0.0013888888516224412
_P7 = 0.0001984118523548383
_P8 = 2.4801931718636947e-05
_P9 = 2.763499105998067e-06
_P10 = 2.7476797215399834e-07
_INV_LN2_32 = np.float32(1.4426950408889634)
# float32: one FMA with ln 2 rounded to float32 (1.9e-9 below ln 2) instead of the two-part
# reduction: r is off by k x 1.9e-9, i.e. <= 6e-8 for |t| <= 30 (the terms that matter against
# a row sum of order 1) and 2.4e-7 at t = EXP32_LO; measured: the fused pass 4-8% faster.
_LN2_32 = np.float32(0.6931471805599453)
# exp(r) ~ 1 + r + E2 r^2 + ... + E5 r^5 on |r| <= ln(2) / 2: the minimax fit (linear
# programme on 4001 points, HiGHS) with the first two coefficients held at 1, so that the
# last additions round well; relative error 7e-8 in exact arithmetic, 1.6e-7 evaluated in
# float32 with FMAs (the Taylor polynomial of degree 7 it replaced: 9e-8, two FMAs more; the
# fused float32 pass went from 1.15e9 to 1.29e9 pairs/s on one thread).
_E2 = np.float32(0.49999141693115234)
_E3 = np.float32(0.1666700839996338)
_E4 = np.float32(0.041898228228092194)
_E5 = np.float32(0.008318286389112473)
_F32 = np.float32


def _bitcast(src, dst, llvm_dst):
    """An intrinsic reinterpreting the bits of a ``src`` scalar as ``dst`` (an LLVM bitcast:
    free, and it vectorizes)."""
    @intrinsic
    def cast(typingctx, x):
        def codegen(context, builder, sig, args):
            return builder.bitcast(args[0], llvm_dst)
        return dst(src), codegen
    return cast


_f64_bits = _bitcast(types.float64, types.int64, ir.IntType(64))
_bits_f64 = _bitcast(types.int64, types.float64, ir.DoubleType())
_f32_bits = _bitcast(types.float32, types.int32, ir.IntType(32))
_bits_f32 = _bitcast(types.int32, types.float32, ir.FloatType())


@njit(cache=True, fastmath=_EXP_FLAGS)
def fast_exp(t):
    """``exp(t)`` for ``EXP_LO <= t <= EXP_HI`` (float64), 0 below ``EXP_LO``, clamped above."""
    tc = min(max(t, EXP_LO), EXP_HI)
    kd = tc * _INV_LN2 + _ROUND64
    ki = _f64_bits(kd)  # low bits: k = round(tc / ln 2)
    kd -= _ROUND64
    r = tc - kd * _LN2
    p = 1.0 + r * (1.0 + r * (_P2 + r * (_P3 + r * (_P4 + r * (_P5 + r * (_P6 + r * (
        _P7 + r * (_P8 + r * (_P9 + r * _P10)))))))))
    scale = _bits_f64((ki << 52) + (1023 << 52))  # 2^k
    return p * scale if t >= EXP_LO else 0.0


@njit(cache=True, fastmath=_EXP_FLAGS)
def fast_exp32(t):
    """``exp(t)`` in float32 for ``EXP32_LO <= t <= EXP_HI``, ``exp(EXP32_LO)`` below."""
    tc = min(max(t, _F32(EXP32_LO)), _F32(EXP_HI))
    kd = tc * _INV_LN2_32 + _ROUND32
    ki = _f32_bits(kd)
    kd -= _ROUND32
    r = tc - kd * _LN2_32
    p = _F32(1.0) + r * (_F32(1.0) + r * (_E2 + r * (_E3 + r * (_E4 + r * _E5))))
    scale = _bits_f32((ki << np.int32(23)) + np.int32(127 << 23))
    return p * scale


def _exp(t):
    """``fast_exp`` or ``fast_exp32`` by the type of ``t`` (compile-time choice)."""
    raise NotImplementedError  # pragma: no cover - only called from compiled code


@overload(_exp, jit_options={"fastmath": _EXP_FLAGS})
def _exp_overload(t):
    if isinstance(t, types.Float) and t.bitwidth == 32:
        return lambda t: fast_exp32(t)
    return lambda t: fast_exp(t)


def _flush_rows(like):
    """Rows between float64 flushes of the column sums: ``FLUSH32`` in float32, else all."""
    raise NotImplementedError  # pragma: no cover - only called from compiled code


@overload(_flush_rows)
def _flush_rows_overload(like):
    if like.dtype == types.float32:
        return lambda like: FLUSH32
    return lambda like: 1 << 62


def _cast(x, like):
    """``x`` converted to the dtype of the array ``like`` (float32 or float64)."""
    raise NotImplementedError  # pragma: no cover - only called from compiled code


@overload(_cast)
def _cast_overload(x, like):
    if like.dtype == types.float32:
        return lambda x, like: np.float32(x)
    return lambda x, like: np.float64(x)


@njit(cache=True)
def n_chunks(rows):
    """Number of chunks of ``ROWS_PER_CHUNK`` rows (the last one shorter) covering ``rows``."""
    return max(1, (rows + ROWS_PER_CHUNK - 1) // ROWS_PER_CHUNK)


# _cost_tile and _exp_tile are compiled once as functions of their own (LLVM inlines them
# where it pays), not inlined into every caller by Numba (``inline="always"``): the fused
# Sinkhorn pass then compiled in 5.9 s instead of 7.3 s (a 2-core machine, fresh cache), its
# speed within 1-5 % (3 000 x 3 000 points, float64 and float32, one and two threads).
@njit(cache=True, fastmath=True)
def _cost_tile(xT, yT, C, b, i, j0, w, kind, cbuf):
    """``cbuf[t] = c(x_i, y_{j0 + t})`` for ``t < w``, in the precision of ``cbuf``.

    Every inner loop of this module indexes slices from 0 (``ys[t]``, not ``yT[b, k, j0 +
    t]``): an index that Numba cannot prove non-negative gets a wraparound test per element,
    which turns the loop's vector loads into gathers (measured: 3x slower in float32).
    """
    if kind == COST_DENSE:
        cs = C[b, i, j0:j0 + w]
        for t in range(w):
            cbuf[t] = cs[t]
        return
    for t in range(w):
        cbuf[t] = 0.0
    for k in range(xT.shape[1]):
        xk = xT[b, k, i]
        ys = yT[b, k, j0:j0 + w]
        if kind == COST_CITYBLOCK:
            for t in range(w):
                cbuf[t] += abs(xk - ys[t])
        else:
            for t in range(w):
                df = xk - ys[t]
                cbuf[t] += df * df
    if kind == COST_EUCLIDEAN:
        for t in range(w):
            cbuf[t] = math.sqrt(cbuf[t])


@njit(cache=True, inline="always", fastmath=True)
def _exp_loop2(x0, x1, y0, y1, hh, sh, ivb, eb, cbuf, kind):
    """The loop of :func:`_exp_tile` in dimension 2: ``sum_t eb[t]``, with the costs left in
    ``cbuf``. ``kind`` is a constant at each call site, so that each inlined copy is a loop
    without branches (LLVM did not hoist the test out of the loop itself: measured 1.0e9
    instead of 1.3e9 pairs/s). Storing the costs always, rather than only for the mean costs,
    measured no slower and halves the copies the kernels compile."""
    st = _cast(0.0, eb)
    for t in range(eb.size):
        d0 = x0 - y0[t]
        d1 = x1 - y1[t]
        if kind == COST_CITYBLOCK:
            c = abs(d0) + abs(d1)
        elif kind == COST_EUCLIDEAN:
            c = _cast(math.sqrt(d0 * d0 + d1 * d1), eb)  # math.sqrt is float64 in Numba
        else:
            c = d0 * d0 + d1 * d1
        cbuf[t] = c
        e = _exp((hh[t] + sh) - c * ivb)
        eb[t] = e
        st += e
    return st


@njit(cache=True, fastmath=True)
def _exp_tile(xT, yT, C, h, b, i, j0, w, sh, ivb, kind, want_cost, cbuf, eb):
    """``eb[t] = exp(h[b, j0 + t] + sh - c_ij ivb)`` for the ``w`` columns of a tile from
    ``j0``: ``(sum_t eb[t], sum_t eb[t] c_ij)`` (the second 0 without ``want_cost``), all in
    the dtype of ``cbuf``.

    The one tile loop of :func:`lse_rows`, :func:`sinkhorn_rows_cols` and
    :func:`exp_apply_rows`. In dimension 2 the costs are computed inside the exponential's loop
    (before, a loop of their own per axis filled ``cbuf`` for the exponential's loop to read;
    now ``cbuf`` only serves the mean costs). Measured (n = m = 10^4, 2D Gaussian clouds,
    euclidean, near-converged potentials, 2 threads; with the degree-5 ``fast_exp32``): 1.76e9
    pairs/s in float32 instead of 1.56e9, 7.3e8 in float64 instead of 5.9e8; on one thread,
    float32, 1.23e9 instead of 0.92e9.
    """
    hh = h[b, j0:j0 + w]
    if kind != COST_DENSE and xT.shape[1] == 2:
        x0, x1 = xT[b, 0, i], xT[b, 1, i]
        y0, y1 = yT[b, 0, j0:j0 + w], yT[b, 1, j0:j0 + w]
        if kind == COST_EUCLIDEAN:
            st = _exp_loop2(x0, x1, y0, y1, hh, sh, ivb, eb, cbuf, COST_EUCLIDEAN)
        elif kind == COST_SQEUCLIDEAN:
            st = _exp_loop2(x0, x1, y0, y1, hh, sh, ivb, eb, cbuf, COST_SQEUCLIDEAN)
        else:
            st = _exp_loop2(x0, x1, y0, y1, hh, sh, ivb, eb, cbuf, COST_CITYBLOCK)
    else:
        _cost_tile(xT, yT, C, b, i, j0, w, kind, cbuf)
        st = _cast(0.0, cbuf)
        for t in range(w):
            e = _exp((hh[t] + sh) - cbuf[t] * ivb)
            eb[t] = e
            st += e
    sct = _cast(0.0, cbuf)
    if want_cost:
        for t in range(w):
            sct += eb[t] * cbuf[t]
    return st, sct


# ------------------------------------------------------------------- online log-sum-exp rows
@njit(cache=True, fastmath=True)
def _sk_row_robust(xT, yT, C, h, b, i, sh, ivb, kind, want_cost, cbuf, ebuf):
    """Row ``i`` with its exact maximum ``mx`` of ``t_ij = h_j + sh - c_ij ivb``: ``(mx, s,
    sc)``, whatever the shift ``sh``.

    ``ebuf`` receives ``exp(t_ij - mx)``, ``s`` their sum and ``sc`` the sum weighted by the
    costs. The rare path of :func:`_lse_chunk` and :func:`_sk_chunk`; a function of its own:
    inside the chunk's loop, this code stopped LLVM from vectorizing the fast path (measured:
    3x slower).
    """
    m = yT.shape[2]
    mx = _cast(-1e30, cbuf)
    for j0 in range(0, m, TILE):
        w = min(TILE, m - j0)
        _cost_tile(xT, yT, C, b, i, j0, w, kind, cbuf)
        hh = h[b, j0:j0 + w]
        eb = ebuf[j0:j0 + w]
        for t in range(w):
            v = (hh[t] + sh) - cbuf[t] * ivb
            eb[t] = v
            mx = max(mx, v)
    s = 0.0
    sc = 0.0
    for j0 in range(0, m, TILE):
        w = min(TILE, m - j0)
        eb = ebuf[j0:j0 + w]
        for t in range(w):
            e = _exp(eb[t] - mx)
            eb[t] = e
            s += e
        if want_cost:
            _cost_tile(xT, yT, C, b, i, j0, w, kind, cbuf)
            for t in range(w):
                sc += eb[t] * cbuf[t]
    return mx, s, sc


@njit(cache=True, fastmath=True)
def _lse_chunk(r0, r1, xT, yT, C, h, shift, inv, kind, want_cost, lse, mcost):
    n = xT.shape[2]
    m = yT.shape[2]
    cbuf = np.empty(TILE)
    ebuf = np.empty(m)  # for the rows that need their exact maximum
    for r in range(r0, r1):
        b = r // n
        i = r - b * n
        sh = shift[b, i]
        iv = inv[b]
        s = 0.0
        sc = 0.0
        for j0 in range(0, m, TILE):
            w = min(TILE, m - j0)
            st, sct = _exp_tile(xT, yT, C, h, b, i, j0, w, sh * iv, iv, kind, want_cost, cbuf,
                                ebuf[j0:j0 + w])
            s += st
            sc += sct
        if not _SUM_FLOOR <= s < _SUM_CEIL:  # redo the row with its exact maximum
            mx, s, sc = _sk_row_robust(xT, yT, C, h, b, i, sh * iv, iv, kind, want_cost,
                                       cbuf, ebuf)
            lse[b, i] = mx + math.log(s)
            if want_cost:
                mcost[b, i] = sc / s
        else:
            lse[b, i] = math.log(s)
            if want_cost:
                mcost[b, i] = sc / s


@njit(cache=True, parallel=True)
def lse_rows(xT, yT, C, h, shift, inv, kind, want_cost, lse, mcost):
    """Row log-sum-exp of ``h_j + (shift_i - c_ij) inv`` (parallel over chunks of rows)."""
    rows = xT.shape[0] * xT.shape[2]
    nch = n_chunks(rows)
    for q in prange(nch):
        _lse_chunk(q * rows // nch, (q + 1) * rows // nch, xT, yT, C, h, shift, inv, kind,
                   want_cost, lse, mcost)


@njit(cache=True)
def lse_rows_serial(xT, yT, C, h, shift, inv, kind, want_cost, lse, mcost):
    """:func:`lse_rows` on one thread."""
    rows = xT.shape[0] * xT.shape[2]
    _lse_chunk(0, rows, xT, yT, C, h, shift, inv, kind, want_cost, lse, mcost)


# ---------------------------------------------- fused Sinkhorn iteration: rows, then columns
@njit(cache=True, fastmath=True)
def _sk_chunk(q, r0, r1, xT, yT, C, h, hs, iv, kind, wa, want_cost, flush, lse, mcost,
              colpart, ebuf):
    """Rows ``r0:r1`` of :func:`sinkhorn_rows_cols`; arithmetic in the dtype of ``xT``."""
    n = xT.shape[2]
    m = yT.shape[2]
    cbuf = np.empty(TILE, xT.dtype)
    colloc = np.zeros(m, xT.dtype)  # column sums since the last flush into colpart[q]
    zero = _cast(0.0, cbuf)
    bcur = -1
    since = 0
    for r in range(r0, r1):
        b = r // n
        i = r - b * n
        if b != bcur or since == flush:
            if bcur >= 0:
                cp = colpart[q, bcur]
                for j in range(m):
                    cp[j] += colloc[j]
                    colloc[j] = zero
            bcur = b
            since = 0
        since += 1
        sh = hs[b, i]
        ivb = iv[b]
        s = 0.0
        sc = 0.0
        for j0 in range(0, m, TILE):
            w = min(TILE, m - j0)
            st, sct = _exp_tile(xT, yT, C, h, b, i, j0, w, sh, ivb, kind, want_cost, cbuf,
                                ebuf[j0:j0 + w])
            s += st
            sc += sct
        mx = 0.0
        if not _SUM_FLOOR <= s < _SUM_CEIL:  # recompute the row with its exact maximum
            mx, s, sc = _sk_row_robust(xT, yT, C, h, b, i, sh, ivb, kind, want_cost, cbuf,
                                       ebuf)
        lse[b, i] = mx + math.log(s)
        if want_cost:
            mcost[b, i] = sc / s
        wi = _cast(wa[b, i] / s, cbuf)  # row i of the plan with exact rows: wa_i e_ij / s_i
        for j in range(m):
            colloc[j] += wi * ebuf[j]
    if bcur >= 0:
        cp = colpart[q, bcur]
        for j in range(m):
            cp[j] += colloc[j]


@njit(cache=True, parallel=True)
def sinkhorn_rows_cols(xT, yT, C, h, hs, iv, kind, wa, want_cost, lse, mcost, colpart):
    """Row log-sum-exp and the columns of the row-normalised plan, in one pass (parallel).

    ``lse[b, i] = log sum_j exp(t_ij)`` with ``t_ij = h[b, j] + hs[b, i] - c_ij iv[b]`` and
    ``colpart[q, b, j]``, the chunk-``q`` part of ``sum_i wa[b, i] exp(t_ij - lse[b, i])``:
    the column sums of the plan whose rows were just made exact. Each exponential is computed
    once and serves both sums (the column pass of a Sinkhorn iteration costs one multiply-add
    per pair). With ``want_cost``, ``mcost[b, i] = sum_j e_ij c_ij / sum_j e_ij`` as well.

    ``xT``, ``yT``, ``C``, ``h``, ``hs`` and ``iv`` share one dtype, float64 or float32: the
    costs, the ``t_ij`` and the exponentials are computed in it (float32: 8 pairs per AVX2
    instruction instead of 4). Row sums are added in float64 tile by tile (``TILE`` terms), column
    sums in float64 every ``flush`` rows; ``lse``, ``mcost``, ``colpart`` and ``wa`` are
    float64. ``colpart`` (nq, B, m) must be zero on entry; each of its ``nq`` chunks of rows
    keeps two row buffers of ``m`` numbers.
    """
    rows = xT.shape[0] * xT.shape[2]
    nch = colpart.shape[0]
    m = yT.shape[2]
    for qq in prange(nch):
        # prange's index is unsigned after the parfor pass and signed before it: without the
        # cast the loop body compiled twice (3.3 s more for the first sinkhorn)
        q = np.int64(qq)
        ebuf = np.empty(m, xT.dtype)
        _sk_chunk(q, q * rows // nch, (q + 1) * rows // nch, xT, yT, C, h, hs, iv, kind, wa,
                  want_cost, _flush_rows(xT), lse, mcost, colpart, ebuf)


@njit(cache=True)
def sinkhorn_rows_cols_serial(xT, yT, C, h, hs, iv, kind, wa, want_cost, lse, mcost,
                              colpart):
    """:func:`sinkhorn_rows_cols` on one thread (``colpart.shape[0]`` may be 1)."""
    rows = xT.shape[0] * xT.shape[2]
    nch = colpart.shape[0]
    ebuf = np.empty(yT.shape[2], xT.dtype)
    for q in range(nch):
        _sk_chunk(q, q * rows // nch, (q + 1) * rows // nch, xT, yT, C, h, hs, iv, kind, wa,
                  want_cost, _flush_rows(xT), lse, mcost, colpart, ebuf)


# ------------------------------------------------------------ apply the Gibbs plan to vectors
@njit(cache=True, fastmath=True)
def _exp_apply_chunk(r0, r1, xT, yT, C, h, shift, inv, kind, V, out):
    n = xT.shape[2]
    m = yT.shape[2]
    nv = V.shape[1]
    cbuf = np.empty(TILE)
    ebuf = np.empty(TILE)
    acc = np.empty(nv)
    for r in range(r0, r1):
        b = r // n
        i = r - b * n
        sh = shift[b, i]
        iv = inv[b]
        acc[:] = 0.0
        s = 0.0
        for j0 in range(0, m, TILE):
            w = min(TILE, m - j0)
            st, _ = _exp_tile(xT, yT, C, h, b, i, j0, w, sh * iv, iv, kind, False, cbuf,
                              ebuf[:w])
            s += st
            for k in range(nv):
                vs = V[b, k, j0:j0 + w]
                sk = 0.0
                for t in range(w):
                    sk += ebuf[t] * vs[t]
                acc[k] += sk
        if s >= _SUM_CEIL:  # an entry may be above exp(EXP_HI): the exact values
            acc[:] = 0.0
            for j0 in range(0, m, TILE):
                w = min(TILE, m - j0)
                _cost_tile(xT, yT, C, b, i, j0, w, kind, cbuf)
                hh = h[b, j0:j0 + w]
                for t in range(w):
                    e = math.exp(hh[t] + (sh - cbuf[t]) * iv)
                    for k in range(nv):
                        acc[k] += e * V[b, k, j0 + t]
        for k in range(nv):
            out[b, i, k] = acc[k]


@njit(cache=True, parallel=True)
def exp_apply_rows(xT, yT, C, h, shift, inv, kind, V, out):
    """``out[b, i, :] = sum_j exp(h_j + (shift_i - c_ij) inv) V[b, :, j]`` (parallel)."""
    rows = xT.shape[0] * xT.shape[2]
    nch = n_chunks(rows)
    for q in prange(nch):
        _exp_apply_chunk(q * rows // nch, (q + 1) * rows // nch, xT, yT, C, h, shift, inv,
                         kind, V, out)


@njit(cache=True)
def exp_apply_rows_serial(xT, yT, C, h, shift, inv, kind, V, out):
    """:func:`exp_apply_rows` on one thread."""
    rows = xT.shape[0] * xT.shape[2]
    _exp_apply_chunk(0, rows, xT, yT, C, h, shift, inv, kind, V, out)


# ------------------------------------------------------------------- L2-regularized dual sums
@njit(cache=True, fastmath=True)
def _l2_chunk(q, r0, r1, xT, yT, C, phi, psi, dphi, dpsi, wa, wb, inv, kind, accurate, row,
              colpart, totals):
    n = xT.shape[2]
    m = yT.shape[2]
    cbuf = np.empty(TILE)
    colloc = np.zeros(m)  # this chunk's column sums (a local array: the loop vectorizes)
    bcur = -1
    for r in range(r0, r1):
        b = r // n
        i = r - b * n
        if b != bcur:  # a new problem of the batch: flush the column sums of the previous one
            if bcur >= 0:
                for j in range(m):
                    colpart[q, bcur, j] += colloc[j]
                    colloc[j] = 0.0
            bcur = b
        p = phi[b, i]
        dp = dphi[b, i] if accurate else 0.0
        ai = wa[b, i]
        iv = inv[b]
        aiv = ai * iv
        ps = psi[b]
        dps = dpsi[b]
        wbb = wb[b]
        s1 = 0.0
        s2 = 0.0
        sc = 0.0
        sd = 0.0
        for j0 in range(0, m, TILE):
            w = min(TILE, m - j0)
            _cost_tile(xT, yT, C, b, i, j0, w, kind, cbuf)
            pst = ps[j0:j0 + w]
            dpst = dps[j0:j0 + w]
            wbt = wbb[j0:j0 + w]
            col = colloc[j0:j0 + w]
            if not accurate:  # F alone: the caller takes its change as F - F(reference)
                for t in range(w):
                    c = cbuf[t]
                    v = max(p - pst[t] - c, 0.0)
                    bv = wbt[t] * v
                    s1 += bv
                    s2 += bv * v
                    sc += bv * c
                    col[t] += aiv * bv
                continue
            for t in range(w):
                c = cbuf[t]
                v0 = p - pst[t] - c
                dv = dp - dpst[t]  # V - V_ref from the (accurate) small differences
                u0 = v0 - dv
                m1 = 1.0 if v0 > 0.0 else 0.0
                m2 = 1.0 if u0 > 0.0 else 0.0
                v = v0 * m1
                vr = u0 * m2
                # v^2 - vr^2 = (v - vr)(v + vr), with v - vr = dv where both are active
                de = (v - vr) + m1 * m2 * (dv - (v - vr))
                bj = wbt[t]
                bv = bj * v
                s1 += bv
                s2 += bv * v
                sc += bv * c
                sd += bj * de * (v + vr)
                col[t] += aiv * bv
        row[b, i] = ai * s1 * iv
        totals[q, b, 0] += ai * s2 * (0.5 * iv)
        totals[q, b, 1] += ai * sc * iv
        totals[q, b, 2] += ai * sd * (0.5 * iv)
    if bcur >= 0:
        for j in range(m):
            colpart[q, bcur, j] += colloc[j]


@njit(cache=True, parallel=True)
def l2_dual_rows(xT, yT, C, phi, psi, dphi, dpsi, wa, wb, inv, kind, accurate, row, colpart,
                 totals):
    """Row sums, column partial sums and totals of the L2 pseudo-plan (parallel).

    ``colpart`` (nq, B, m) and ``totals`` (nq, B, 3) must be zero on entry; chunk ``q`` of the
    ``nq = colpart.shape[0]`` row chunks adds into ``colpart[q]`` and ``totals[q]``.
    """
    rows = xT.shape[0] * xT.shape[2]
    nch = colpart.shape[0]
    for qq in prange(nch):
        q = np.int64(qq)  # one signature of the loop body (see sinkhorn_rows_cols)
        _l2_chunk(q, q * rows // nch, (q + 1) * rows // nch, xT, yT, C, phi, psi, dphi,
                  dpsi, wa, wb, inv, kind, accurate, row, colpart, totals)


@njit(cache=True)
def l2_dual_rows_serial(xT, yT, C, phi, psi, dphi, dpsi, wa, wb, inv, kind, accurate, row,
                        colpart, totals):
    """:func:`l2_dual_rows` on one thread (``colpart.shape[0]`` may be 1)."""
    rows = xT.shape[0] * xT.shape[2]
    nch = colpart.shape[0]
    for q in range(nch):
        _l2_chunk(q, q * rows // nch, (q + 1) * rows // nch, xT, yT, C, phi, psi, dphi,
                  dpsi, wa, wb, inv, kind, accurate, row, colpart, totals)


@njit(cache=True, fastmath=True)
def _l2_apply_chunk(r0, r1, xT, yT, C, phi, psi, wb, inv, kind, V, out):
    n = xT.shape[2]
    m = yT.shape[2]
    nv = V.shape[1]
    cbuf = np.empty(TILE)
    ebuf = np.empty(TILE)
    for r in range(r0, r1):
        b = r // n
        i = r - b * n
        p = phi[b, i]
        iv = inv[b]
        for k in range(nv):
            out[b, i, k] = 0.0
        for j0 in range(0, m, TILE):
            w = min(TILE, m - j0)
            _cost_tile(xT, yT, C, b, i, j0, w, kind, cbuf)
            pst = psi[b, j0:j0 + w]
            wbt = wb[b, j0:j0 + w]
            for t in range(w):
                v = p - pst[t] - cbuf[t]
                ebuf[t] = wbt[t] * (v if v > 0.0 else 0.0) * iv
            for k in range(nv):
                vs = V[b, k, j0:j0 + w]
                s = 0.0
                for t in range(w):
                    s += ebuf[t] * vs[t]
                out[b, i, k] += s


@njit(cache=True, parallel=True)
def l2_apply_rows(xT, yT, C, phi, psi, wb, inv, kind, V, out):
    """``out[b, i, :] = sum_j wb_j (phi_i - psi_j - c_ij)_+ inv V[b, :, j]`` (parallel)."""
    rows = xT.shape[0] * xT.shape[2]
    nch = n_chunks(rows)
    for q in prange(nch):
        _l2_apply_chunk(q * rows // nch, (q + 1) * rows // nch, xT, yT, C, phi, psi, wb, inv,
                        kind, V, out)


@njit(cache=True)
def l2_apply_rows_serial(xT, yT, C, phi, psi, wb, inv, kind, V, out):
    """:func:`l2_apply_rows` on one thread."""
    rows = xT.shape[0] * xT.shape[2]
    _l2_apply_chunk(0, rows, xT, yT, C, phi, psi, wb, inv, kind, V, out)


# ------------------------------------------------------------------------- dense cost matrix
@njit(cache=True, fastmath=True)
def _cost_matrix_chunk(r0, r1, xT, yT, kind, out):
    n = xT.shape[2]
    m = yT.shape[2]
    for r in range(r0, r1):
        b = r // n
        i = r - b * n
        for j0 in range(0, m, TILE):
            w = min(TILE, m - j0)
            _cost_tile(xT, yT, out, b, i, j0, w, kind, out[b, i, j0:j0 + w])


@njit(cache=True, parallel=True)
def cost_matrix_rows(xT, yT, kind, out):
    """``out[b, i, j] = c(x_i, y_j)`` (``kind`` not ``COST_DENSE``; parallel)."""
    rows = xT.shape[0] * xT.shape[2]
    nch = n_chunks(rows)
    for q in prange(nch):
        _cost_matrix_chunk(q * rows // nch, (q + 1) * rows // nch, xT, yT, kind, out)


@njit(cache=True)
def cost_matrix_rows_serial(xT, yT, kind, out):
    """:func:`cost_matrix_rows` on one thread."""
    _cost_matrix_chunk(0, xT.shape[0] * xT.shape[2], xT, yT, kind, out)


# ------------------------------------------------- active pairs of the L2 pseudo-plan (Newton)
@njit(cache=True)
def _active_chunk(r0, r1, xT, yT, C, phi, psi, kind, fill, indptr, indices):
    """Rows ``r0 <= r < r1``: count (``indptr[r + 1]``) or list the pairs with ``v_ij > 0``.

    No fast-math: the counting and the filling loop must evaluate ``phi_i - psi_j - c_ij``
    identically (a reassociated sum in one of them could count a pair the other does not
    list); the filling loop also never writes past its row's count.
    """
    n = xT.shape[2]
    m = yT.shape[2]
    cbuf = np.empty(TILE)
    for r in range(r0, r1):
        b = r // n
        i = r - b * n
        p = phi[b, i]
        ps = psi[b]
        k = indptr[r] if fill else 0
        kend = indptr[r + 1] if fill else 0
        for j0 in range(0, m, TILE):
            w = min(TILE, m - j0)
            _cost_tile(xT, yT, C, b, i, j0, w, kind, cbuf)
            pst = ps[j0:j0 + w]
            if fill:
                col0 = b * m + j0
                for t in range(w):
                    if p - pst[t] - cbuf[t] > 0.0 and k < kend:
                        indices[k] = col0 + t
                        k += 1
            else:
                cnt = 0
                for t in range(w):
                    cnt += 1 if p - pst[t] - cbuf[t] > 0.0 else 0
                k += cnt
        if not fill:
            indptr[r + 1] = k


@njit(cache=True, parallel=True)
def active_pairs_rows(xT, yT, C, phi, psi, kind, fill, indptr, indices):
    """The active pairs ``v_ij = phi_i - psi_j - c_ij > 0`` in CSR form (parallel).

    Rows are the ``B n`` stacked rows ``r = b n + i``, column indices the stacked columns
    ``b m + j``. ``fill=False``: ``indptr[r + 1]`` receives the count of row ``r`` (the caller
    forms the cumulative sum); ``fill=True``: ``indices[indptr[r]:indptr[r + 1]]`` receives
    the columns of row ``r``, in increasing order.
    """
    rows = xT.shape[0] * xT.shape[2]
    nch = n_chunks(rows)
    for q in prange(nch):
        _active_chunk(q * rows // nch, (q + 1) * rows // nch, xT, yT, C, phi, psi, kind, fill,
                      indptr, indices)


@njit(cache=True)
def active_pairs_rows_serial(xT, yT, C, phi, psi, kind, fill, indptr, indices):
    """:func:`active_pairs_rows` on one thread."""
    rows = xT.shape[0] * xT.shape[2]
    _active_chunk(0, rows, xT, yT, C, phi, psi, kind, fill, indptr, indices)


# ----------------------------------------------------------------- dense Newton (small problems)
@njit(cache=True)
def newton_matrix(P, r, c, act, H):
    """``H[p, q] = delta_pq c[act[p]] - sum_i P[i, act[p]] P[i, act[q]] / r_i`` (one thread).

    The Jacobian (times eps) of the columns of the plan with respect to ``g`` when ``f = F(g)``;
    written here rather than with BLAS, whose threads fight the kernels' on small matrices.
    """
    n = P.shape[0]
    k = act.shape[0]
    for p in range(k):
        for q in range(k):
            H[p, q] = 0.0
    for i in range(n):
        if r[i] <= 0.0:
            continue
        w = 1.0 / r[i]
        for p in range(k):
            v = P[i, act[p]] * w
            if v == 0.0:
                continue
            for q in range(p, k):
                H[p, q] -= v * P[i, act[q]]
    for p in range(k):
        H[p, p] += c[act[p]]
        for q in range(p + 1, k):
            H[q, p] = H[p, q]


@njit(cache=True)
def spd_solve(H, rhs, out):
    """Solve ``H out = rhs`` by Cholesky (``H`` overwritten); False if ``H`` is not positive."""
    k = H.shape[0]
    for j in range(k):
        s = H[j, j]
        for t in range(j):
            s -= H[j, t] * H[j, t]
        if not s > 0.0:
            return False
        d = math.sqrt(s)
        H[j, j] = d
        for i in range(j + 1, k):
            s = H[i, j]
            for t in range(j):
                s -= H[i, t] * H[j, t]
            H[i, j] = s / d
    for i in range(k):
        s = rhs[i]
        for t in range(i):
            s -= H[i, t] * out[t]
        out[i] = s / H[i, i]
    for i in range(k - 1, -1, -1):
        s = out[i]
        for t in range(i + 1, k):
            s -= H[t, i] * out[t]
        out[i] = s / H[i, i]
    return True
