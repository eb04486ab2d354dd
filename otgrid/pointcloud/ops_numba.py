"""The loop body of the point-cloud solvers with the fused Numba kernels.

:class:`NumbaCloudOps` implements the interface of :class:`~otgrid.pointcloud.ops_numpy.CloudOps`
with the kernels of ``otgrid.kernels.pointcloud_numba`` and chooses, per kernel and by timing,
between one thread and all of them.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from otgrid.pointcloud.ops_numpy import COST_KINDS, CloudOps

# what the first-run note of the point-cloud kernels names (otgrid._threads)
COMPILE_NOTE = "otgrid point-cloud solvers"

__all__ = ["COMPILE_NOTE", "NumbaCloudOps"]

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


# A kernel's parallel version that is neither compiled nor in Numba's cache is compiled only
# once its one-thread version has run this many seconds in this process (tiered, as a JIT
# does): compiling a ``prange`` kernel costs seconds (the fused Sinkhorn pass: about 4 s on top
# of its loop body, whose machine code the parfor lowering generates again), which a short
# first solve should not pay. Spending as long in the slower mode as the compilation costs
# bounds the loss at twice the better choice (the ski-rental rule). Once compiled it is cached:
# later processes start in parallel.
PARALLEL_COMPILE_AFTER = 5.0
_SERIAL_SECONDS: dict[str, float] = {}  # per process: seconds of one-thread runs per kernel


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

    A first run compiles as little as it can (``compiled(name, parallel)`` false: the version
    is neither compiled nor cached). A parallel version not compiled runs only once the
    one-thread one has run for ``PARALLEL_COMPILE_AFTER`` seconds in this process (the
    problems of ``always`` included); a one-thread version not compiled while the parallel one
    is, is first timed at call ``PROBE_EVERY`` instead of call 2.
    """

    def __init__(self, enabled: bool, always: bool = False,
                 compiled: Callable[[str, bool], bool] | None = None) -> None:
        self.enabled = enabled
        self.always = always
        self.compiled = compiled
        self.times: dict[tuple[str, bool], list[float]] = {}
        self.calls: dict[str, int] = {}
        self._defer: dict[str, bool] = {}
        self._parallel_ready: set[str] = set()

    def _deferred(self, name: str, k: int) -> bool:
        """Whether the first probe of the one-thread ``name`` waits (see the class notes)."""
        if name not in self._defer:
            self._defer[name] = self.compiled is not None and not self.compiled(name, False)
        return self._defer[name] and k < PROBE_EVERY

    def _parallel_allowed(self, name: str) -> bool:
        """Whether the parallel ``name`` may run: compiled, cached, or worth compiling now."""
        if name in self._parallel_ready:
            return True
        if (self.compiled is None or self.compiled(name, True)
                or _SERIAL_SECONDS.get(name, 0.0) >= PARALLEL_COMPILE_AFTER):
            self._parallel_ready.add(name)
            return True
        return False

    def pick(self, name: str) -> bool:
        if not self.enabled:
            return False
        if not self._parallel_allowed(name):
            return False
        if self.always:
            return True
        k = self.calls.get(name, 0)
        self.calls[name] = k + 1
        par, ser = self.times.get((name, True)), self.times.get((name, False))
        if not par:
            return True
        if not ser:
            return self._deferred(name, k)
        best = _median3(par) <= _median3(ser)
        return (not best) if k % PROBE_EVERY == 0 else best

    def record(self, name: str, parallel: bool, seconds: float) -> None:
        if not self.enabled:
            return
        if not parallel:
            _SERIAL_SECONDS[name] = _SERIAL_SECONDS.get(name, 0.0) + seconds
        if not self.always:
            self.times.setdefault((name, parallel), []).append(seconds)



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
                                      always=pairs >= PARALLEL_ALWAYS_PAIRS,
                                      compiled=self._compiled)
        self._ready: set[tuple] = set()  # (kernel, parallel, dtype) compiled: _call
        dense = self.d >= DENSE_MIN_DIM or (many_passes and cost == "euclidean")
        if dense and pairs <= DENSE_MAX_PAIRS:
            self.kind = k.CostKind(_DENSE)
            # the kernels' own distances, on all threads (SciPy's cdist runs on one: 7.6 ms
            # against 1.0 ms for 10^6 euclidean pairs on 2 cores)
            self.C = np.empty((self.B, self.n, self.m))
            self._run("cost_matrix_rows", self.xT, self.yT, k.CostKind(COST_KINDS[cost]),
                      self.C)
        else:
            self.kind = k.CostKind(COST_KINDS[cost])
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

    def _version(self, name: str, parallel: bool) -> Any:
        """Kernel ``name``'s ``prange`` version (``parallel``) or its one-thread twin."""
        return getattr(self._k, name if parallel else name + "_serial")

    def _compiled(self, name: str, parallel: bool) -> bool:
        """Whether that version of kernel ``name`` is compiled in this process or in Numba's
        cache."""
        from otgrid._threads import needs_compilation

        return not needs_compilation([self._version(name, parallel)])

    def _kernel(self, name: str, parallel: bool) -> Any:
        """Kernel ``name`` (``parallel``: on all threads), noting a first run's compilation."""
        kernel = self._version(name, parallel)
        if not kernel.signatures:
            from otgrid._threads import announce_compilation

            announce_compilation([kernel], COMPILE_NOTE)
        return kernel

    def _call(self, name: str, parallel: bool, *args) -> None:
        """Run kernel ``name`` as ``parallel`` says and give the chooser its time, unless the
        call compiled it (or loaded it from the cache): that time is not the kernel's. At a
        kernel's first call on these operations (per dtype) it is compiled first, with the
        solve's clock stopped (:func:`otgrid._threads.compile_for`)."""
        kernel = self._kernel(name, parallel)
        key = (name, parallel, getattr(args[0], "dtype", None))
        if key not in self._ready:
            from otgrid._threads import compile_for

            compile_for(kernel, *args)
            self._ready.add(key)
        known = len(kernel.signatures)
        t0 = time.perf_counter()
        kernel(*args)
        seconds = time.perf_counter() - t0
        if len(kernel.signatures) == known:
            self.chooser.record(name, parallel, seconds)

    def _run(self, name: str, *args) -> None:
        """Run kernel ``name`` on all threads or one, as the chooser says (and time it)."""
        self._call(name, self.chooser.pick(name), *args)

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
        self._call("sinkhorn_rows_cols", parallel,
                   p, q, c, h, hs, inv, self.kind, wa, bool(want_cost), lse, mcost, colpart)
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
        self._call("l2_dual_rows", parallel,
                   self.xT, self.yT, self.C, c(phi), c(psi), c(dphi), c(dpsi), c(wa), c(wb),
                   c(inv, dtype=np.float64), self.kind, bool(accurate), row, colpart, totals)
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
