"""The loop body of the point-cloud solvers in NumPy: the interface and its reference version.

:mod:`otgrid.pointcloud.sinkhorn` and :mod:`otgrid.pointcloud.smooth_dual` write each algorithm
once (Sinkhorn with Anderson acceleration, the L-BFGS dual ascent, semismooth Newton) and call
the methods of a :class:`CloudOps` object, built by :func:`otgrid.pointcloud.backends.make_ops`
(:mod:`~otgrid.pointcloud.ops_numba`, :mod:`~otgrid.pointcloud.ops_cuda` implement the same
methods with fused kernels). Every method works on a batch of ``B`` problems at once: points
``x`` (B, n, d) and ``y`` (B, m, d), the ground cost
``c_ij = c(x_i, y_j)`` never stored as an ``n x m`` matrix (except by the Numba backend on small
problems in high dimension, where reading a precomputed matrix is faster than recomputing it).

``side="rows"`` reduces over the columns ``j`` for every row ``i`` (``x`` against ``y``);
``side="cols"`` reduces over the rows for every column (``y`` against ``x``, the same costs).

- ``lse(side, h, shift, inv, want_cost, low)``: ``lse_i = log sum_j exp(h_j + (shift_i -
  c_ij) inv)`` and, with ``want_cost``, the mean cost ``sum_j p_ij c_ij / sum_j p_ij`` of each
  row (``low``: float32 terms where the backend has ``low_precision``, for starting points);
- ``sinkhorn_iteration(la, lb, f, g, inv, low, want_cost, parts)``: one Sinkhorn iteration,
  ``f <- F(g)`` (rows exact) then the column log-sum-exp ``lse_c`` of the new plan, shifted by
  ``g``; returns ``(f, lse_c, passes, g_used, mcost, colparts)`` (the NumPy backend: two
  ``lse`` passes; Numba: one fused pass whose exponentials serve both sums, in float32 with
  ``low`` where the backend has ``low_precision``; ``g_used`` is the ``g`` the pass
  represented, ``mcost`` the mean cost of each row with ``want_cost``, else None;
  ``colparts`` (parts, B, m), with the Numba backend, ``parts > 0`` and a single problem, the
  column sums of the new plan over ``parts`` equal chunks of consecutive rows, ``q n // parts
  <= i < (q + 1) n // parts``, else None);
- ``exp_apply(side, h, shift, inv, V)``: ``sum_j exp(h_j + (shift_i - c_ij) inv) V[:, j]``;
- ``l2_dual(phi, psi, dphi, dpsi, wa, wb, inv, accurate=True)``: row and column sums of
  ``wa_i wb_j (phi_i - psi_j - c_ij)_+ inv``, and the totals ``Q = sum wa wb v_+^2 inv / 2``,
  ``sum wa wb v_+ c inv`` and ``Q - Q(phi - dphi, psi - dpsi)`` summed pairwise from the
  differences (accurate to the rounding of the change, however small); with ``accurate=False``
  the last total is not computed (0; the Numba pass then costs about 0.6 of the accurate one;
  the CUDA backend always computes it);
- ``l2_apply(side, phi, psi, wb, inv, V)``: ``sum_j wb_j (phi_i - psi_j - c_ij)_+ inv V[:, j]``;
- ``l2_active(phi, psi, cap)``: the pairs with ``phi_i - psi_j - c_ij > 0`` as CSR arrays
  ``(indptr, indices)`` over the stacked rows ``b n + i`` and columns ``b m + j``, or None when
  there are more than ``cap`` of them;
- ``pair_costs(i, j)``: ``c(x_i, y_j)`` for index arrays (B, S).
"""


from __future__ import annotations

import contextlib
from collections.abc import Iterator

import numpy as np
from scipy.spatial.distance import cdist
from scipy.special import logsumexp

__all__ = ["COST_KINDS", "LOG_ZERO", "CloudOps", "cost_degree", "log_weights"]

COST_KINDS = {"euclidean": 0, "sqeuclidean": 1, "cityblock": 2}


def cost_degree(cost: str) -> int:
    """Homogeneity of the cost: ``c(s x, s y) = s^p c(x, y)``.

    Parameters
    ----------
    cost : {"euclidean", "sqeuclidean", "cityblock"}

    Returns
    -------
    int
        ``p``: 2 for sqeuclidean, else 1.
    """
    return 2 if cost == "sqeuclidean" else 1


# log of a zero weight: finite, because the kernels are compiled with fastmath (no infinities).
LOG_ZERO = -1e30
_NUMPY_BLOCK_PAIRS = 1 << 20


def _costs(x: np.ndarray, y: np.ndarray, cost: str) -> np.ndarray:
    """Dense ``c(x_i, y_j)`` for ``x`` (n, d) and ``y`` (m, d)."""
    return cdist(x, y, metric=cost)



def log_weights(w: np.ndarray) -> np.ndarray:
    """``log w`` elementwise, with :data:`LOG_ZERO` for zero weights."""
    with np.errstate(divide="ignore"):
        return np.where(w > 0, np.log(np.where(w > 0, w, 1.0)), LOG_ZERO)


class CloudOps:
    """NumPy reference implementation: dense over blocks of rows, ``scipy`` reductions.

    Parameters
    ----------
    x : ndarray, shape (B, n, d)
    y : ndarray, shape (B, m, d)
        Float64 coordinates.
    cost : {"euclidean", "sqeuclidean", "cityblock"}
        The ground cost.
    """

    name = "numpy"
    # Whether sinkhorn_iteration(low=True) and lse(low=True) compute in float32 (else they
    # ignore ``low``).
    low_precision = False

    def __init__(self, x: np.ndarray, y: np.ndarray, cost: str) -> None:
        self.x, self.y, self.cost = x, y, cost
        self.B, self.n, self.d = x.shape
        self.m = y.shape[1]

    @contextlib.contextmanager
    def session(self) -> Iterator[None]:
        """Context in which a solve runs (the Numba backend sets its threading here)."""
        yield

    def _pts(self, side: str) -> tuple[np.ndarray, np.ndarray]:
        return (self.x, self.y) if side == "rows" else (self.y, self.x)

    def _blocks(self, side: str) -> Iterator[tuple[int, slice, np.ndarray]]:
        """``(b, rows, costs of those rows)`` over the problems and blocks of rows."""
        p, q = self._pts(side)
        step = max(1, _NUMPY_BLOCK_PAIRS // max(1, q.shape[1]))
        for b in range(self.B):
            for i0 in range(0, p.shape[1], step):
                sl = slice(i0, min(i0 + step, p.shape[1]))
                yield b, sl, _costs(p[b, sl], q[b], self.cost)

    def lse(self, side, h, shift, inv, want_cost=False, low=False):
        p = self._pts(side)[0]
        out = np.empty(p.shape[:2])
        mc = np.empty(p.shape[:2]) if want_cost else None
        for b, sl, c in self._blocks(side):
            t = h[b][None, :] + (shift[b, sl][:, None] - c) * inv[b]
            out[b, sl] = logsumexp(t, axis=1)
            if want_cost:
                w = np.exp(t - out[b, sl][:, None])
                mc[b, sl] = (w * c).sum(axis=1) / w.sum(axis=1)
        return out, mc

    def sinkhorn_iteration(self, la, lb, f, g, inv, low=False, want_cost=False, parts=0):
        eps = 1.0 / inv
        lse, mc = self.lse("rows", lb + g * inv[:, None], f, inv, want_cost=want_cost)
        f = f - eps[:, None] * lse
        lse_c, _ = self.lse("cols", la + f * inv[:, None], g, inv)
        return f, lse_c, 2, g, mc, None

    def exp_apply(self, side, h, shift, inv, V):
        p = self._pts(side)[0]
        out = np.empty((*p.shape[:2], V.shape[1]))
        with np.errstate(over="ignore"):
            for b, sl, c in self._blocks(side):
                e = np.exp(h[b][None, :] + (shift[b, sl][:, None] - c) * inv[b])
                out[b, sl] = e @ V[b].T
        return out

    def l2_dual(self, phi, psi, dphi, dpsi, wa, wb, inv, accurate=True):
        row = np.empty((self.B, self.n))
        col = np.zeros((self.B, self.m))
        tot = np.zeros((self.B, 3))
        for b, sl, c in self._blocks("rows"):
            v0 = phi[b, sl][:, None] - psi[b][None, :] - c
            v = np.maximum(v0, 0.0)
            w = wa[b, sl][:, None] * wb[b][None, :] * inv[b]
            pv = w * v
            row[b, sl] = pv.sum(axis=1)
            col[b] += pv.sum(axis=0)
            tot[b, :2] += (0.5 * np.sum(pv * v), np.sum(pv * c))
            if accurate:
                dv = dphi[b, sl][:, None] - dpsi[b][None, :]
                r = np.maximum(v0 - dv, 0.0)
                dq = np.where((v > 0) & (r > 0), dv * (v + r), v * v - r * r)
                tot[b, 2] += 0.5 * np.sum(w * dq)
        return row, col, tot[:, 0], tot[:, 1], tot[:, 2]

    def l2_apply(self, side, phi, psi, wb, inv, V):
        p = self._pts(side)[0]
        out = np.empty((*p.shape[:2], V.shape[1]))
        for b, sl, c in self._blocks(side):
            v = np.maximum(phi[b, sl][:, None] - psi[b][None, :] - c, 0.0)
            out[b, sl] = (v * (wb[b][None, :] * inv[b])) @ V[b].T
        return out

    def l2_active(self, phi, psi, cap):
        rows, parts = [], []
        total = 0
        for b, sl, c in self._blocks("rows"):
            mask = phi[b, sl][:, None] - psi[b][None, :] - c > 0.0
            rows.append(mask.sum(axis=1))
            total += int(rows[-1].sum())
            if total > cap:
                return None
            parts.append(np.nonzero(mask)[1].astype(np.int32) + np.int32(b * self.m))
        indptr = np.zeros(self.B * self.n + 1, np.int64)
        np.cumsum(np.concatenate(rows), out=indptr[1:])
        return indptr, np.concatenate(parts)

    def pair_costs(self, i: np.ndarray, j: np.ndarray) -> np.ndarray:
        bi = np.arange(self.B)[:, None]
        diff = self.x[bi, i] - self.y[bi, j]
        if self.cost == "cityblock":
            return np.abs(diff).sum(axis=-1)
        sq = np.einsum("...k,...k->...", diff, diff)
        return np.sqrt(sq) if self.cost == "euclidean" else sq
