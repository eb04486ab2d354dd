"""Conjugate gradients on weighted bipartite graph Laplacians (Numba, one thread).

Pure functions on arrays (no imports from otgrid): the Newton system of the L2-regularized
dual (``otgrid.smooth_ot``), whose Hessian is the Laplacian of the graph of active pairs.

The graph has ``R`` row nodes and ``K`` column nodes and one edge per entry of a CSR pattern
``(indptr, indices)`` (``indices`` < ``K``), the edge ``(r, c)`` weighing ``ar[r] * bc[c]``.
A vector ``z`` of length ``R + K`` holds the row values ``u = z[:R]`` then the column values
``w = z[R:]``; the Laplacian acts as

.. math::

    (L z)_r = ar_r \\sum_{c \\sim r} bc_c (u_r - w_c), \\qquad
    (L z)_c = bc_c \\sum_{r \\sim c} ar_r (w_c - u_r),

and ``shift`` (length ``R + K``) adds ``shift * z`` (``L`` is singular: constant on every
connected component is in its null space).

Kernels
-------
laplacian_diagonal(indptr, indices, ar, bc, out)
    ``out = diag(L)``: the weighted degrees.
laplacian_apply(indptr, indices, ar, bc, dg, shift, z, out)
    ``out = (L + diag(shift)) z`` given ``dg = diag(L)``.
laplacian_pcg(indptr, indices, ar, bc, dg, shift, g, rtol, maxiter, x)
    Solve ``(L + diag(shift)) x = g`` from ``x = 0`` by conjugate gradients preconditioned
    with the diagonal, to ``||residual||_2 <= rtol ||g||_2``; returns the iterations.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

__all__ = ["laplacian_apply", "laplacian_diagonal", "laplacian_pcg"]


@njit(cache=True)
def _edge_sums(indptr, indices, bw, au, srow, tcol):
    """``srow[r] = sum_{c ~ r} bw[c]`` and ``tcol[c] = sum_{r ~ c} au[r]`` (one edge pass).

    Both products of ``L`` reduce to these sums because the edge weights are separable.
    """
    R = indptr.shape[0] - 1
    for c in range(tcol.shape[0]):
        tcol[c] = 0.0
    for r in range(R):
        s = 0.0
        a = au[r]
        for k in range(indptr[r], indptr[r + 1]):
            c = indices[k]
            s += bw[c]
            tcol[c] += a
        srow[r] = s


@njit(cache=True)
def laplacian_diagonal(indptr, indices, ar, bc, out):
    """``out[:R] = ar_r sum_{c ~ r} bc_c`` and ``out[R:] = bc_c sum_{r ~ c} ar_r``."""
    R = indptr.shape[0] - 1
    _edge_sums(indptr, indices, bc, ar, out[:R], out[R:])
    for r in range(R):
        out[r] *= ar[r]
    for c in range(bc.shape[0]):
        out[R + c] *= bc[c]


@njit(cache=True)
def laplacian_apply(indptr, indices, ar, bc, dg, shift, z, out):
    """``out = (L + diag(shift)) z``, given ``dg = diag(L)`` (one pass over the edges).

    ``(L z)_r = dg_r u_r - ar_r sum_{c ~ r} bc_c w_c`` and
    ``(L z)_c = dg_c w_c - bc_c sum_{r ~ c} ar_r u_r``.
    """
    R = indptr.shape[0] - 1
    K = bc.shape[0]
    bw = np.empty(K)
    au = np.empty(R)
    for c in range(K):
        bw[c] = bc[c] * z[R + c]
    for r in range(R):
        au[r] = ar[r] * z[r]
    _edge_sums(indptr, indices, bw, au, out[:R], out[R:])
    for r in range(R):
        out[r] = (dg[r] + shift[r]) * z[r] - ar[r] * out[r]
    for c in range(K):
        out[R + c] = (dg[R + c] + shift[R + c]) * z[R + c] - bc[c] * out[R + c]


@njit(cache=True)
def laplacian_pcg(indptr, indices, ar, bc, diag, shift, g, rtol, maxiter, x):
    """Jacobi-preconditioned CG for ``(L + diag(shift)) x = g`` from ``x = 0`` (``diag = diag(L)``).

    Stops when ``||g - (L + diag(shift)) x||_2 <= rtol ||g||_2`` or after ``maxiter``
    iterations (returned). ``L + diag(shift)`` must be positive definite (``shift > 0``).
    """
    N = g.shape[0]
    dg = np.empty(N)  # the preconditioner
    for k in range(N):
        dg[k] = 1.0 / (diag[k] + shift[k])
        x[k] = 0.0
    r = g.copy()
    z = r * dg
    p = z.copy()
    q = np.empty(N)
    rz = 0.0
    gg = 0.0
    for k in range(N):
        rz += r[k] * z[k]
        gg += g[k] * g[k]
    stop = rtol * rtol * gg
    if gg == 0.0:
        return 0
    for it in range(1, maxiter + 1):
        laplacian_apply(indptr, indices, ar, bc, diag, shift, p, q)
        pq = 0.0
        for k in range(N):
            pq += p[k] * q[k]
        if not pq > 0.0:
            return it - 1
        alpha = rz / pq
        rr = 0.0
        for k in range(N):
            x[k] += alpha * p[k]
            r[k] -= alpha * q[k]
            rr += r[k] * r[k]
        if rr <= stop or not math.isfinite(rr):
            return it
        rz_new = 0.0
        for k in range(N):
            z[k] = r[k] * dg[k]
            rz_new += r[k] * z[k]
        beta = rz_new / rz
        rz = rz_new
        for k in range(N):
            p[k] = z[k] + beta * p[k]
    return maxiter
