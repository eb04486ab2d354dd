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
OpenMP threads can lose to one thread).

Kernels
-------
lse_rows(xT, yT, C, h, shift, inv, kind, want_cost, lse, mcost)
    ``lse[b, i] = log sum_j exp(h[b, j] + (shift[b, i] - c_ij) inv[b])``; with ``want_cost``
    also ``mcost[b, i] = sum_j p_ij c_ij / sum_j p_ij`` (the mean cost of the row).
sinkhorn_rows_cols(xT, yT, C, h, shift, inv, kind, wa, lse, colpart)
    :func:`lse_rows` and, from the same exponentials, the column sums of the plan whose rows
    were just made exact: one pass per Sinkhorn iteration instead of two.
exp_apply_rows(xT, yT, C, h, shift, inv, kind, V, out)
    ``out[b, i, k] = sum_j exp(h[b, j] + (shift[b, i] - c_ij) inv[b]) V[b, k, j]``.
l2_dual_rows(xT, yT, C, phi, psi, dphi, dpsi, wa, wb, inv, kind, row, colpart, totals)
    With ``v_ij = (phi_i - psi_j - c_ij)_+`` and ``r_ij`` the same at the reference point
    ``(phi - dphi, psi - dpsi)``: ``row[b, i] = wa_i sum_j wb_j v_ij inv``;
    ``colpart[q, b, j]`` = the chunk-``q`` part of ``wb_j sum_i wa_i v_ij inv``;
    ``totals[q, b] = (sum wa wb v^2 inv / 2, sum wa wb v c inv, sum wa wb (v^2 - r^2) inv /
    2)`` over chunk ``q``. The last one, the change of the first since the reference, is
    summed as ``(dphi_i - dpsi_j)(v + r)`` where both are active, so it is accurate to the
    rounding of the change itself, not of the total.
l2_apply_rows(xT, yT, C, phi, psi, wb, inv, kind, V, out)
    ``out[b, i, k] = sum_j wb_j (phi_i - psi_j - c_ij)_+ inv V[b, k, j]``.
fast_exp(t)
    ``exp(t)`` for ``t`` in ``[EXP_LO, EXP_HI]`` (0 below), vectorizable.
newton_matrix(P, r, c, act, H), spd_solve(H, rhs, out)
    The dense Newton system of Sinkhorn's semi-dual and its Cholesky solve (small problems).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

__all__ = [
    "COST_CITYBLOCK",
    "COST_DENSE",
    "COST_EUCLIDEAN",
    "COST_SQEUCLIDEAN",
    "EXP_HI",
    "EXP_LO",
    "ROWS_PER_CHUNK",
    "TILE",
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

TILE = 256
# fast_exp is exact to ~1e-13 (relative) on [EXP_LO, EXP_HI] and returns 0 below EXP_LO.
EXP_LO = -100.0
EXP_HI = 40.0
# A fast-path row sum below this is recomputed with a running maximum: the terms dropped below
# EXP_LO (< 4e-44 each) must stay negligible against the sum.
_SUM_FLOOR = 1e-10
# Rows per prange iteration: enough work to amortise the buffers, small enough to balance.
ROWS_PER_CHUNK = 16

# exp(t) = (exp(c) exp(t / 256 - c))^256 with c the centre of [EXP_LO, EXP_HI] / 256, a
# degree-12 Taylor polynomial on |t / 256 - c| <= 0.274 (remainder < 1e-17) and 8 squarings.
_C0 = (EXP_LO + EXP_HI) / 512.0
_EXP_C0 = math.exp(_C0)


@njit(cache=True, inline="always", fastmath=True)
def fast_exp(t):
    """``exp(t)`` for ``EXP_LO <= t <= EXP_HI``, 0 below ``EXP_LO``, clamped above."""
    tc = min(max(t, EXP_LO), EXP_HI)
    u = tc * (1.0 / 256.0) - _C0
    p = 1.0 + u * (1.0 + u * (1.0 / 2.0 + u * (1.0 / 6.0 + u * (1.0 / 24.0 + u * (
        1.0 / 120.0 + u * (1.0 / 720.0 + u * (1.0 / 5040.0 + u * (1.0 / 40320.0 + u * (
            1.0 / 362880.0 + u * (1.0 / 3628800.0 + u * (1.0 / 39916800.0 + u * (
                1.0 / 479001600.0))))))))))))
    p *= _EXP_C0
    p *= p
    p *= p
    p *= p
    p *= p
    p *= p
    p *= p
    p *= p
    p *= p
    return p if t >= EXP_LO else 0.0


@njit(cache=True)
def n_chunks(rows):
    """Number of chunks of ``ROWS_PER_CHUNK`` rows (the last one shorter) covering ``rows``."""
    return max(1, (rows + ROWS_PER_CHUNK - 1) // ROWS_PER_CHUNK)


@njit(cache=True, inline="always", fastmath=True)
def _cost_tile(xT, yT, C, b, i, j0, w, kind, cbuf):
    """``cbuf[t] = c(x_i, y_{j0 + t})`` for ``t < w``."""
    if kind == COST_DENSE:
        for t in range(w):
            cbuf[t] = C[b, i, j0 + t]
        return
    for t in range(w):
        cbuf[t] = 0.0
    for k in range(xT.shape[1]):
        xk = xT[b, k, i]
        if kind == COST_CITYBLOCK:
            for t in range(w):
                cbuf[t] += abs(xk - yT[b, k, j0 + t])
        else:
            for t in range(w):
                df = xk - yT[b, k, j0 + t]
                cbuf[t] += df * df
    if kind == COST_EUCLIDEAN:
        for t in range(w):
            cbuf[t] = math.sqrt(cbuf[t])


# ------------------------------------------------------------------- online log-sum-exp rows
@njit(cache=True, fastmath=True)
def _lse_row_robust(xT, yT, C, h, b, i, sh, iv, kind, cbuf):
    """Two passes with the exact row maximum: ``(lse, mean cost)`` whatever the shift."""
    m = yT.shape[2]
    mx = -1e300
    for j0 in range(0, m, TILE):
        w = min(TILE, m - j0)
        _cost_tile(xT, yT, C, b, i, j0, w, kind, cbuf)
        for t in range(w):
            v = h[b, j0 + t] + (sh - cbuf[t]) * iv
            if v > mx:
                mx = v
    s = 0.0
    sc = 0.0
    for j0 in range(0, m, TILE):
        w = min(TILE, m - j0)
        _cost_tile(xT, yT, C, b, i, j0, w, kind, cbuf)
        for t in range(w):
            e = fast_exp(h[b, j0 + t] + (sh - cbuf[t]) * iv - mx)
            s += e
            sc += e * cbuf[t]
    return mx + math.log(s), sc / s


@njit(cache=True, fastmath=True)
def _lse_chunk(r0, r1, xT, yT, C, h, shift, inv, kind, want_cost, lse, mcost):
    n = xT.shape[2]
    m = yT.shape[2]
    cbuf = np.empty(TILE)
    for r in range(r0, r1):
        b = r // n
        i = r - b * n
        sh = shift[b, i]
        iv = inv[b]
        s = 0.0
        sc = 0.0
        over = 0.0
        for j0 in range(0, m, TILE):
            w = min(TILE, m - j0)
            _cost_tile(xT, yT, C, b, i, j0, w, kind, cbuf)
            if want_cost:
                for t in range(w):
                    v = h[b, j0 + t] + (sh - cbuf[t]) * iv
                    e = fast_exp(v)
                    s += e
                    sc += e * cbuf[t]
                    over += 1.0 if v > EXP_HI else 0.0
            else:
                for t in range(w):
                    v = h[b, j0 + t] + (sh - cbuf[t]) * iv
                    s += fast_exp(v)
                    over += 1.0 if v > EXP_HI else 0.0
        if over > 0.0 or not s >= _SUM_FLOOR:
            lse[b, i], mc = _lse_row_robust(xT, yT, C, h, b, i, sh, iv, kind, cbuf)
            if want_cost:
                mcost[b, i] = mc
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
def _sk_chunk(q, r0, r1, xT, yT, C, h, shift, inv, kind, wa, lse, colpart, ebuf):
    n = xT.shape[2]
    m = yT.shape[2]
    cbuf = np.empty(TILE)
    colloc = np.zeros(m)
    bcur = -1
    for r in range(r0, r1):
        b = r // n
        i = r - b * n
        if b != bcur:
            if bcur >= 0:
                for j in range(m):
                    colpart[q, bcur, j] += colloc[j]
                    colloc[j] = 0.0
            bcur = b
        sh = shift[b, i]
        iv = inv[b]
        s = 0.0
        over = 0.0
        for j0 in range(0, m, TILE):
            w = min(TILE, m - j0)
            _cost_tile(xT, yT, C, b, i, j0, w, kind, cbuf)
            for t in range(w):
                v = h[b, j0 + t] + (sh - cbuf[t]) * iv
                e = fast_exp(v)
                ebuf[j0 + t] = e
                s += e
                over += 1.0 if v > EXP_HI else 0.0
        mx = 0.0
        if over > 0.0 or not s >= _SUM_FLOOR:  # recompute the row with its exact maximum
            mx = -1e300
            for j0 in range(0, m, TILE):
                w = min(TILE, m - j0)
                _cost_tile(xT, yT, C, b, i, j0, w, kind, cbuf)
                for t in range(w):
                    v = h[b, j0 + t] + (sh - cbuf[t]) * iv
                    ebuf[j0 + t] = v
                    if v > mx:
                        mx = v
            s = 0.0
            for j in range(m):
                e = fast_exp(ebuf[j] - mx)
                ebuf[j] = e
                s += e
        lse[b, i] = mx + math.log(s)
        wi = wa[b, i] / s  # row i of the plan with exact rows: wa_i e_ij / s_i
        for j in range(m):
            colloc[j] += wi * ebuf[j]
    if bcur >= 0:
        for j in range(m):
            colpart[q, bcur, j] += colloc[j]


@njit(cache=True, parallel=True)
def sinkhorn_rows_cols(xT, yT, C, h, shift, inv, kind, wa, lse, colpart):
    """Row log-sum-exp and the columns of the row-normalised plan, in one pass (parallel).

    ``lse[b, i] = log sum_j exp(t_ij)`` with ``t_ij = h[b, j] + (shift[b, i] - c_ij) inv[b]``
    (as :func:`lse_rows`), and ``colpart[q, b, j]``, the chunk-``q`` part of
    ``sum_i wa[b, i] exp(t_ij - lse[b, i])``: the column sums of the plan whose rows were just
    made exact. Each exponential is computed once and serves both sums (the column pass of a
    Sinkhorn iteration costs one multiply-add per pair). ``colpart`` (nq, B, m) must be zero on
    entry; each of its ``nq`` chunks of rows keeps a row buffer of ``m`` floats.
    """
    rows = xT.shape[0] * xT.shape[2]
    nch = colpart.shape[0]
    m = yT.shape[2]
    for q in prange(nch):
        ebuf = np.empty(m)
        _sk_chunk(q, q * rows // nch, (q + 1) * rows // nch, xT, yT, C, h, shift, inv, kind,
                  wa, lse, colpart, ebuf)


@njit(cache=True)
def sinkhorn_rows_cols_serial(xT, yT, C, h, shift, inv, kind, wa, lse, colpart):
    """:func:`sinkhorn_rows_cols` on one thread (``colpart.shape[0]`` may be 1)."""
    rows = xT.shape[0] * xT.shape[2]
    nch = colpart.shape[0]
    ebuf = np.empty(yT.shape[2])
    for q in range(nch):
        _sk_chunk(q, q * rows // nch, (q + 1) * rows // nch, xT, yT, C, h, shift, inv, kind,
                  wa, lse, colpart, ebuf)


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
        over = 0.0
        for j0 in range(0, m, TILE):
            w = min(TILE, m - j0)
            _cost_tile(xT, yT, C, b, i, j0, w, kind, cbuf)
            for t in range(w):
                v = h[b, j0 + t] + (sh - cbuf[t]) * iv
                ebuf[t] = fast_exp(v)
                over += 1.0 if v > EXP_HI else 0.0
            for k in range(nv):
                s = 0.0
                for t in range(w):
                    s += ebuf[t] * V[b, k, j0 + t]
                acc[k] += s
        if over > 0.0:  # entries above exp(EXP_HI): the exact (possibly overflowing) values
            acc[:] = 0.0
            for j0 in range(0, m, TILE):
                w = min(TILE, m - j0)
                _cost_tile(xT, yT, C, b, i, j0, w, kind, cbuf)
                for t in range(w):
                    e = math.exp(h[b, j0 + t] + (sh - cbuf[t]) * iv)
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
def _l2_chunk(q, r0, r1, xT, yT, C, phi, psi, dphi, dpsi, wa, wb, inv, kind, row, colpart,
              totals):
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
        dp = dphi[b, i]
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
            for t in range(w):
                c = cbuf[t]
                v0 = p - ps[j0 + t] - c
                dv = dp - dps[j0 + t]  # V - V_ref from the (accurate) small differences
                u0 = v0 - dv
                m1 = 1.0 if v0 > 0.0 else 0.0
                m2 = 1.0 if u0 > 0.0 else 0.0
                v = v0 * m1
                vr = u0 * m2
                # v^2 - vr^2 = (v - vr)(v + vr), with v - vr = dv where both are active
                de = (v - vr) + m1 * m2 * (dv - (v - vr))
                bj = wbb[j0 + t]
                bv = bj * v
                s1 += bv
                s2 += bv * v
                sc += bv * c
                sd += bj * de * (v + vr)
                colloc[j0 + t] += aiv * bv
        row[b, i] = ai * s1 * iv
        totals[q, b, 0] += ai * s2 * (0.5 * iv)
        totals[q, b, 1] += ai * sc * iv
        totals[q, b, 2] += ai * sd * (0.5 * iv)
    if bcur >= 0:
        for j in range(m):
            colpart[q, bcur, j] += colloc[j]


@njit(cache=True, parallel=True)
def l2_dual_rows(xT, yT, C, phi, psi, dphi, dpsi, wa, wb, inv, kind, row, colpart, totals):
    """Row sums, column partial sums and totals of the L2 pseudo-plan (parallel).

    ``colpart`` (nq, B, m) and ``totals`` (nq, B, 3) must be zero on entry; chunk ``q`` of the
    ``nq = colpart.shape[0]`` row chunks adds into ``colpart[q]`` and ``totals[q]``.
    """
    rows = xT.shape[0] * xT.shape[2]
    nch = colpart.shape[0]
    for q in prange(nch):
        _l2_chunk(q, q * rows // nch, (q + 1) * rows // nch, xT, yT, C, phi, psi, dphi,
                  dpsi, wa, wb, inv, kind, row, colpart, totals)


@njit(cache=True)
def l2_dual_rows_serial(xT, yT, C, phi, psi, dphi, dpsi, wa, wb, inv, kind, row, colpart,
                        totals):
    """:func:`l2_dual_rows` on one thread (``colpart.shape[0]`` may be 1)."""
    rows = xT.shape[0] * xT.shape[2]
    nch = colpart.shape[0]
    for q in range(nch):
        _l2_chunk(q, q * rows // nch, (q + 1) * rows // nch, xT, yT, C, phi, psi, dphi,
                  dpsi, wa, wb, inv, kind, row, colpart, totals)


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
            for t in range(w):
                v = p - psi[b, j0 + t] - cbuf[t]
                ebuf[t] = wb[b, j0 + t] * (v if v > 0.0 else 0.0) * iv
            for k in range(nv):
                s = 0.0
                for t in range(w):
                    s += ebuf[t] * V[b, k, j0 + t]
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
