"""Two-level Sinkhorn: a correction of the potentials on clusters of points (coarse scaling).

Sinkhorn's error in ``g`` evolves, to first order, as ``dg <- M dg`` with ``M = diag(1/b) P^T
diag(1/a) P``, an averaging operator (a step of diffusion through the plan): errors that vary
from point to point die within a few iterations, smooth ones (varying over the scale of the
clouds) are the slow modes. Like the coarse grid of a multigrid method, this module corrects
those on clusters: rows and columns are grouped into spatially compact clusters ``K`` and
``L``, and after the Sinkhorn update ``g~`` a correction ``v_L`` constant on each column cluster
is chosen so that the *block* marginals of the plan are exact,

.. code-block:: text

    S'_KL = sum_{i in K, j in L} P_ij b_j / col_j      (the plan after the update g~, f fixed)
    find u_K, v_L:  sum_L S'_KL e^(u_K + v_L) = A_K = sum_{i in K} a_i,
                    sum_K S'_KL e^(u_K + v_L) = B_L = sum_{j in L} b_j,
    g <- g~ + eps v_L(j)                               (u is absorbed by the next row update)

a ``K x L`` scaling problem solved by Newton's method on its semi-dual in ``v``. At a solution
``col = b`` and ``v = 0``: the fixed point, hence the result, is unchanged; only the path to it.

The row clusters are the chunks of consecutive rows of the fused Numba pass (whose column sums
per chunk are ``sum_{i in K} P_ij``, the only extra data needed), so the rows are put in a
spatial order first: :func:`spatial_order` (median splits along the widest axis).
"""

from __future__ import annotations

import numpy as np

from otgrid._threads import blas_one_thread

__all__ = ["CoarseCorrection", "spatial_order"]

# Newton on the coarse semi-dual: stop at an L1 norm of the gradient of NEWTON_RTOL times the
# mass, after NEWTON_STEPS steps, or when a step of 2^-NEWTON_HALVINGS no longer decreases the
# objective; once the decrease a full step promises is at the rounding of the objective
# (relative NEWTON_FLAT), full steps without line search, while the gradient halves.
# Measured on one hard problem (d = 1, cityblock, reg = 1.2e-3 of the costs, n = 3328; 373
# iterations without the correction): coarse solves stopped at 1/100 of the marginal error,
# or where the line search first saw rounding, gave 427 and 441 iterations; solved to 1e-12,
# 63 to 111.
NEWTON_RTOL = 1e-12
NEWTON_FLAT = 1e-14
NEWTON_STEPS = 30
NEWTON_HALVINGS = 12


def spatial_order(p: np.ndarray, k: int) -> np.ndarray:
    """Order of the points ``p`` (n, d) whose ``k`` chunks ``[q n // k, (q + 1) n // k)`` are cells.

    Recursive median splits along the widest axis of each cell (a k-d tree with ``k`` leaves;
    ``k`` a power of two), each split exactly at the chunk boundary ``q n // k``.

    Parameters
    ----------
    p : ndarray, shape (n, d)
        Points.
    k : int
        Number of cells, a power of two.

    Returns
    -------
    ndarray of int64, shape (n,)
        A permutation: ``p[order]`` has its cells as consecutive chunks.
    """
    n = p.shape[0]
    order = np.arange(n)
    level = 1
    while level < k:
        for q in range(level):
            s, e = q * n // level, (q + 1) * n // level
            mid = (2 * q + 1) * n // (2 * level)
            if e - s < 2 or mid in (s, e):
                continue
            seg = order[s:e]
            pts = p[seg]
            axis = int(np.argmax(pts.max(axis=0) - pts.min(axis=0)))
            part = np.argpartition(pts[:, axis], mid - s - 1)
            order[s:e] = seg[part]
        level *= 2
    return order


def _coarse_newton(S: np.ndarray, A: np.ndarray, Bw: np.ndarray) -> np.ndarray:
    """``v`` (L,) with ``sum_K A_K softmax_L(log S_K + v)_L = B_L``; ``sum_L B_L v_L = 0``.

    Newton's method with backtracking on the convex semi-dual ``F(v) = sum_K A_K log sum_L
    S_KL e^(v_L) - sum_L B_L v_L``; zeros when it fails (the correction is then skipped).
    """
    L = S.shape[1]
    keep = A > 0
    lS, A = np.log(np.maximum(S[keep], 1e-300)), A[keep]
    mass = Bw.sum()
    v = np.zeros(L)

    def value(v):
        z = lS + v
        mx = z.max(axis=1, keepdims=True)
        lse = mx[:, 0] + np.log(np.exp(z - mx).sum(axis=1))
        return (A * lse).sum() - (Bw * v).sum(), np.exp(z - lse[:, None])

    F, pi = value(v)
    last, v_last = np.inf, v
    for _ in range(NEWTON_STEPS):
        Api = A[:, None] * pi
        grad = Api.sum(axis=0) - Bw
        gnorm = np.abs(grad).sum()
        if gnorm <= NEWTON_RTOL * mass:
            break
        if gnorm > 0.5 * last:  # full steps (below) that stopped converging: rounding
            v = v_last
            break
        H = np.diag(Api.sum(axis=0)) - Api.T @ pi
        # the constant is free (F(v + c) = F(v)): fix it with a rank-one term, and keep the
        # solve regular where a column cluster has (numerically) no mass
        H += np.outer(Bw, Bw) / mass + (1e-12 * np.trace(H) / L) * np.eye(L)
        try:
            d = -np.linalg.solve(H, grad)
        except np.linalg.LinAlgError:
            return np.zeros(L)
        slope, t = grad @ d, 1.0
        if -slope <= NEWTON_FLAT * (abs(F) + mass):
            # the decrease is below the rounding of F, where a line search sees noise: full
            # steps (Newton's local regime) while the gradient keeps halving
            last, v_last = gnorm, v
            v = v + d
            F, pi = value(v)
            continue
        last = np.inf
        for _ in range(NEWTON_HALVINGS):
            Fn, pin = value(v + t * d)
            if Fn <= F + 1e-4 * t * slope:
                break
            t *= 0.5
        else:
            break
        v, F, pi = v + t * d, Fn, pin
    if not np.all(np.isfinite(v)):
        return np.zeros(L)
    return v - (Bw * v).sum() / mass


class CoarseCorrection:
    """The coarse step of one problem: clusters, their weights, and :meth:`step`.

    Parameters
    ----------
    a : ndarray, shape (n,)
        Row weights, rows in :func:`spatial_order` for ``parts`` cells.
    b : ndarray, shape (m,)
        Column weights, columns in :func:`spatial_order` for ``col_clusters`` cells.
    parts : int
        Number of row clusters (chunks of consecutive rows).
    col_clusters : int
        Number of column clusters (chunks of consecutive columns).
    """

    def __init__(self, a: np.ndarray, b: np.ndarray, parts: int, col_clusters: int) -> None:
        n, m = a.shape[0], b.shape[0]
        self.parts = parts
        self.A = np.add.reduceat(a, np.arange(parts) * n // parts)
        self.cb = np.arange(col_clusters) * m // col_clusters
        self.sizes = np.diff(np.append(self.cb, m))
        self.b = b
        self.Bw = np.add.reduceat(b, self.cb)

    def step(self, colparts: np.ndarray, col: np.ndarray) -> np.ndarray:
        """The correction ``v_L(j)`` (m,) of ``g / eps`` after the update ``g~``.

        Parameters
        ----------
        colparts : ndarray, shape (parts, m)
            Column sums of the plan ``P(f, g)`` (rows exact) over each row cluster;
            overwritten.
        col : ndarray, shape (m,)
            Their total (every column positive).

        Returns
        -------
        ndarray, shape (m,)
            ``v`` on every column (add ``eps v`` to ``g~``).
        """
        colparts *= self.b / col  # in place: (parts, m) numbers, 51 MB at m = 10^5
        S = np.add.reduceat(colparts, self.cb, axis=1)
        with blas_one_thread():  # BLAS threads left spinning slow the next Numba pass
            v = _coarse_newton(S, self.A, self.Bw)
        return np.repeat(v, self.sizes)
