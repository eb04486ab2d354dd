"""The loop bodies of the point-cloud solvers, per backend (NumPy reference and fused Numba).

:mod:`otgrid.regularized` writes each algorithm once (Sinkhorn with Anderson acceleration, the
L-BFGS dual ascent) and calls the methods of a :class:`CloudOps` object. Every method works on a
batch of ``B`` problems at once: points ``x`` (B, n, d) and ``y`` (B, m, d), the ground cost
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
import time
from collections.abc import Iterator

import numpy as np
from scipy.spatial.distance import cdist
from scipy.special import logsumexp

__all__ = ["COST_KINDS", "CloudOps", "NumbaCloudOps", "make_ops"]

COST_KINDS = {"euclidean": 0, "sqeuclidean": 1, "cityblock": 2}
_DENSE = 3
# Problems with fewer pairs than this run the Numba kernels on one thread; larger ones choose
# between one thread and all of them by timing both (see _ThreadChooser). Measured on 2 cores
# (Sinkhorn, 2D, euclidean): on an idle machine two threads are 1.4x faster from n = m = 128
# and 2x from 512; while other processes kept the cores busy, each parallel region cost about
# 7 ms more than the serial loop (0.35 vs 7.1 ms per pass at n = 300, 25 vs 31 ms at 3000).
PARALLEL_MIN_PAIRS = 1 << 16
# ... and from PARALLEL_ALWAYS_PAIRS pairs they always run on all threads: each pass then does
# at least ~10 ms of work per thread, and timing the serial mode (one pass in PROBE_EVERY)
# cost a whole extra pass (n = 10^5: 14 s instead of 7 s).
PARALLEL_ALWAYS_PAIRS = 1 << 24
# The chooser re-times the mode it is not using once every PROBE_EVERY calls of a kernel.
PROBE_EVERY = 25
# In dimension >= DENSE_MIN_DIM the Numba backend precomputes the cost matrix (and its
# transpose) when it has at most DENSE_MAX_PAIRS entries: recomputing a d-dimensional distance
# in every pass costs O(d) per pair, reading it back costs O(1).
DENSE_MIN_DIM = 4
DENSE_MAX_PAIRS = 1 << 22
# The L2 dual (make_ops(..., many_passes=True)) precomputes the euclidean costs in any
# dimension: its kernel does little besides the distance, whose float64 square root then
# dominates. Measured (n = m = 1000, 2D, 2-core AMD EPYC): smooth_ot at lambda = 5e-8 2.12 s
# -> 0.91 s, at 0.05 0.146 s -> 0.082 s. Not for Sinkhorn (its exponential dominates: 0.038 s
# -> 0.086 s) nor for sqeuclidean (no square root; 0.105 s -> 0.122 s at lambda = 0.05).
# The fused Sinkhorn pass gives column sums from terms each >= exp(-100) times its row's sum
# (which is >= 1e-10): the dropped ones total < 4e-34 times the mass, negligible when every
# column sum is >= COL_FLOOR times its weight; otherwise the column pass runs as usual.
COL_FLOOR = 1e-10
# Rows per block of the NumPy backend: a block holds block x m costs (about 8 MB).
_NUMPY_BLOCK_PAIRS = 1 << 20


def _costs(x: np.ndarray, y: np.ndarray, cost: str) -> np.ndarray:
    """Dense ``c(x_i, y_j)`` for ``x`` (n, d) and ``y`` (m, d)."""
    return cdist(x, y, metric=cost)


def _median3(times: list[float]) -> float:
    """Median of the last three timings (plain Python: called once per kernel call)."""
    last = sorted(times[-3:])
    return last[len(last) // 2]


class _ThreadChooser:
    """Run each kernel on all threads or on one, whichever its recent calls found faster.

    The first two calls of a kernel run one way each; afterwards the faster mode (by the
    median of its last three timings) runs, and the other one is re-timed every
    ``PROBE_EVERY`` calls, so the choice follows the load of the machine. Every call does real
    work: the probes cost at most the difference between the modes.
    """

    def __init__(self, enabled: bool, always: bool = False) -> None:
        self.enabled = enabled
        self.always = always
        self.times: dict[tuple[str, bool], list[float]] = {}
        self.calls: dict[str, int] = {}

    def pick(self, name: str) -> bool:
        if self.always:
            return True
        if not self.enabled:
            return False
        k = self.calls.get(name, 0)
        self.calls[name] = k + 1
        par, ser = self.times.get((name, True)), self.times.get((name, False))
        if not par:
            return True
        if not ser:
            return False
        best = _median3(par) <= _median3(ser)
        return (not best) if k % PROBE_EVERY == 0 else best

    def record(self, name: str, parallel: bool, seconds: float) -> None:
        if self.enabled and not self.always:
            self.times.setdefault((name, parallel), []).append(seconds)


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


class NumbaCloudOps(CloudOps):
    """The same operations with the fused kernels of ``otgrid.kernels.pointcloud_numba``."""

    name = "numba"
    low_precision = True

    def __init__(self, x: np.ndarray, y: np.ndarray, cost: str,
                 many_passes: bool = False) -> None:
        super().__init__(x, y, cost)
        from otgrid.kernels import pointcloud_numba as k

        self._k = k
        self.xT = np.ascontiguousarray(np.transpose(x, (0, 2, 1)))
        self.yT = np.ascontiguousarray(np.transpose(y, (0, 2, 1)))
        pairs = self.B * self.n * self.m
        self.chooser = _ThreadChooser(pairs >= PARALLEL_MIN_PAIRS,
                                      always=pairs >= PARALLEL_ALWAYS_PAIRS)
        dense = self.d >= DENSE_MIN_DIM or (many_passes and cost == "euclidean")
        if dense and pairs <= DENSE_MAX_PAIRS:
            self.kind = _DENSE
            # the kernels' own distances, on all threads (SciPy's cdist runs on one: 7.6 ms
            # against 1.0 ms for 10^6 euclidean pairs on 2 cores)
            self.C = np.empty((self.B, self.n, self.m))
            self._run("cost_matrix_rows", self.xT, self.yT, COST_KINDS[cost], self.C)
        else:
            self.kind = COST_KINDS[cost]
            self.C = np.zeros((1, 1, 1))
        self._CT: np.ndarray | None = None
        self._low: tuple[np.ndarray, ...] | None = None

    @property
    def CT(self) -> np.ndarray:
        """The transposed cost matrix, formed on first use (the L2 dual never needs it)."""
        if self._CT is None:
            self._CT = (np.ascontiguousarray(np.transpose(self.C, (0, 2, 1)))
                        if self.kind == _DENSE else self.C)
        return self._CT

    @contextlib.contextmanager
    def session(self) -> Iterator[None]:
        """Dynamic scheduling of the row chunks (robust to other processes on the cores)."""
        import numba

        before = numba.get_parallel_chunksize()
        numba.set_parallel_chunksize(1)
        try:
            yield
        finally:
            numba.set_parallel_chunksize(before)

    def _args(self, side: str):
        if side == "rows":
            return self.xT, self.yT, self.C
        return self.yT, self.xT, self.CT

    def _run(self, name: str, *args) -> None:
        """Run kernel ``name`` on all threads or one, as the chooser says (and time it)."""
        parallel = self.chooser.pick(name)
        t0 = time.perf_counter()
        getattr(self._k, name if parallel else name + "_serial")(*args)
        self.chooser.record(name, parallel, time.perf_counter() - t0)

    def lse(self, side, h, shift, inv, want_cost=False, low=False):
        if low and not want_cost:
            return self._lse32(side, h, shift, inv), None
        p, q, c = self._args(side)
        out = np.empty((self.B, p.shape[2]))
        mc = np.empty_like(out) if want_cost else out
        self._run("lse_rows", p, q, c, np.ascontiguousarray(h), np.ascontiguousarray(shift),
                               np.ascontiguousarray(inv, dtype=np.float64), self.kind,
                               bool(want_cost), out, mc)
        return out, (mc if want_cost else None)

    def _args32(self, side: str):
        """:meth:`_args` in float32: coordinates centred per problem, made on first use."""
        if self._low is None:
            f32 = np.float32
            centre = (self.x.sum(axis=1) + self.y.sum(axis=1)) / (self.n + self.m)
            xT = np.transpose(self.x - centre[:, None], (0, 2, 1))
            yT = np.transpose(self.y - centre[:, None], (0, 2, 1))
            self._low = (np.ascontiguousarray(xT, dtype=f32),
                         np.ascontiguousarray(yT, dtype=f32),
                         np.ascontiguousarray(self.C, dtype=f32),
                         np.ascontiguousarray(self.CT, dtype=f32))
        xT, yT, C, CT = self._low
        return (xT, yT, C) if side == "rows" else (yT, xT, CT)

    def _fused(self, side, h, hs, inv, wa, want_cost, low, parts=0):
        """One :func:`sinkhorn_rows_cols` pass: ``(lse, mcost or None, column sums per chunk of
        rows (nq, B, m))``.

        ``h``, ``hs`` and ``inv`` are already in the pass's dtype (float32 with ``low``).
        ``parts > 0``: ``parts`` equal chunks of rows, else as many as suit the threads.
        """
        import numba

        p, q, c = self._args32(side) if low else self._args(side)
        rows = self.B * p.shape[2]
        parallel = self.chooser.pick("sinkhorn_rows_cols")
        if parts:
            nq = parts
        else:
            nq = min(rows, 4 * numba.get_num_threads()) if parallel else 1
        lse = np.empty((self.B, p.shape[2]))
        mcost = np.empty_like(lse) if want_cost else lse
        colpart = np.zeros((nq, self.B, q.shape[2]))
        t0 = time.perf_counter()
        getattr(self._k, "sinkhorn_rows_cols" if parallel else "sinkhorn_rows_cols_serial")(
            p, q, c, h, hs, inv, self.kind, wa, bool(want_cost), lse, mcost, colpart)
        self.chooser.record("sinkhorn_rows_cols", parallel, time.perf_counter() - t0)
        return lse, (mcost if want_cost else None), colpart

    def _lse32(self, side, h, shift, inv):
        """:meth:`lse` with float32 terms (the fused pass, its column sums unused).

        For starting points only (the multiscale c-transform): the result carries the
        float32 rounding of ``h`` (relative errors ~1e-7 x |h|).
        """
        f32 = np.float32
        hs = np.ascontiguousarray(shift * inv[:, None], dtype=f32)
        lse, _, _ = self._fused(side, np.ascontiguousarray(h, dtype=f32), hs,
                                np.ascontiguousarray(inv, dtype=f32),
                                np.zeros((self.B, hs.shape[1])), False, True)
        return lse + (shift * inv[:, None] - hs)

    def sinkhorn_iteration(self, la, lb, f, g, inv, low=False, want_cost=False, parts=0):
        """One fused pass (rows, then the columns from the same exponentials).

        ``low``: the pass computes costs and exponentials in float32 from centred float32
        coordinates (sums in float64); ``h = log b + g / eps`` is rounded to float32 first and
        the ``g`` it represents is returned as ``g_used``, so that the update stays consistent
        (the caller continues from ``g_used``). The columns come out as plan sums ``col_j =
        b_j exp(lse_c_j)``; where a column is not safely representable that way (zero weight,
        or ``col_j < COL_FLOOR b_j`` far from convergence, where dropped terms could matter)
        the column pass is run as usual (in float64).
        """
        dt = np.float32 if low else np.float64
        h = np.ascontiguousarray(lb + g * inv[:, None], dtype=dt)
        hs = np.ascontiguousarray(f * inv[:, None], dtype=dt)
        b = np.exp(lb)
        if low:  # the g that h represents (zero weights: log b is -1e30, g is not used)
            g = np.where(b > 0, (h - lb) / inv[:, None], g)
        parts = min(parts, self.n) if parts > 0 and self.B == 1 else 0
        lse, mc, colparts = self._fused("rows", h, hs, np.ascontiguousarray(inv, dtype=dt),
                                        np.ascontiguousarray(np.exp(la)), want_cost, low, parts)
        col = colparts.sum(axis=0)
        f = (hs - lse) / inv[:, None] if low else f - lse / inv[:, None]
        if np.all(col >= COL_FLOOR * b) and np.all(b > 0):
            return f, np.log(col) - lb, 1, g, mc, (colparts if parts else None)
        lse_c, _ = self.lse("cols", la + f * inv[:, None], g, inv)
        return f, lse_c, 2, g, mc, None

    def exp_apply(self, side, h, shift, inv, V):
        p, q, c = self._args(side)
        out = np.empty((self.B, p.shape[2], V.shape[1]))
        self._run("exp_apply_rows", p, q, c, np.ascontiguousarray(h),
                                     np.ascontiguousarray(shift),
                                     np.ascontiguousarray(inv, dtype=np.float64), self.kind,
                                     np.ascontiguousarray(V), out)
        return out

    def l2_dual(self, phi, psi, dphi, dpsi, wa, wb, inv, accurate=True):
        import numba

        parallel = self.chooser.pick("l2_dual_rows")
        nq = min(self.B * self.n, 4 * numba.get_num_threads()) if parallel else 1
        row = np.empty((self.B, self.n))
        colpart = np.zeros((nq, self.B, self.m))
        totals = np.zeros((nq, self.B, 3))
        c = np.ascontiguousarray
        t0 = time.perf_counter()
        getattr(self._k, "l2_dual_rows" if parallel else "l2_dual_rows_serial")(
            self.xT, self.yT, self.C, c(phi), c(psi), c(dphi), c(dpsi), c(wa), c(wb),
            c(inv, dtype=np.float64), self.kind, bool(accurate), row, colpart, totals)
        self.chooser.record("l2_dual_rows", parallel, time.perf_counter() - t0)
        tot = totals.sum(axis=0)
        return row, colpart.sum(axis=0), tot[:, 0], tot[:, 1], tot[:, 2]

    def l2_active(self, phi, psi, cap):
        c = np.ascontiguousarray
        phi, psi = c(phi), c(psi)
        indptr = np.zeros(self.B * self.n + 1, np.int64)
        none = np.zeros(0, np.int32)
        self._run("active_pairs_rows", self.xT, self.yT, self.C, phi, psi, self.kind, False,
                  indptr, none)
        np.cumsum(indptr, out=indptr)
        if indptr[-1] > cap:
            return None
        indices = np.empty(indptr[-1], np.int32)
        self._run("active_pairs_rows", self.xT, self.yT, self.C, phi, psi, self.kind, True,
                  indptr, indices)
        return indptr, indices

    def l2_apply(self, side, phi, psi, wb, inv, V):
        p, q, c = self._args(side)
        out = np.empty((self.B, p.shape[2], V.shape[1]))
        self._run("l2_apply_rows", p, q, c, np.ascontiguousarray(phi),
                                    np.ascontiguousarray(psi), np.ascontiguousarray(wb),
                                    np.ascontiguousarray(inv, dtype=np.float64), self.kind,
                                    np.ascontiguousarray(V), out)
        return out


def make_ops(backend: str, x: np.ndarray, y: np.ndarray, cost: str,
             many_passes: bool = False) -> CloudOps:
    """The loop body for a concrete backend (``"numpy"``, ``"numba"`` or ``"cuda"``).

    ``many_passes``: the caller will run the L2 kernels many times (the smooth dual), so the
    Numba backend stores euclidean costs of small problems instead of recomputing them.
    """
    if backend == "numba":
        return NumbaCloudOps(x, y, cost, many_passes)
    if backend == "cuda":
        from otgrid._regularized_cuda import CudaCloudOps

        return CudaCloudOps(x, y, cost)
    return CloudOps(x, y, cost)
