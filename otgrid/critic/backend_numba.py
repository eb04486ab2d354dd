"""The loop body of the critic solver with the fused Numba kernels (1D and 2D grids)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import numpy as np

from otgrid.critic import backend_numpy
from otgrid.critic import operators as ops
from otgrid.critic.backend_numpy import GridKernels

__all__ = ["FACR", "FACR_MAX_ASPECT", "FACR_MIN_CELLS", "FACR_TASKS_PER_THREAD", "FUSED_RESIDUAL",
           "LINES_MAX_ROUNDING", "PARALLEL_MIN_CELLS", "POISSON_LINES", "NumbaGridKernels"]

# Problems (grid cells x batch) smaller than this run the Numba kernels and the DCTs on one
# thread: below it a stencil pass takes microseconds and waking a second thread costs more (by
# orders of magnitude on a loaded machine). SciPy's DCT with workers=2 costs 0.50 ms instead of
# 0.08 ms at 64^2 and 0.75 ms instead of 0.25 ms at 128^2 (thread start-up per call), breaks
# even at 256^2 and wins from 512^2 on (1.8 ms instead of 3.0 ms), measured on 2 cores.
PARALLEL_MIN_CELLS = 1 << 18

# The iteration's 2D Poisson solve as a DCT pair along y and tridiagonal (Thomas) solves along
# x (``poisson_lines_2d``), instead of a DCT pair along both axes: half the transforms, for two
# light sweeps. Measured (one thread, 2-core Xeon, best of 20): float64 0.94 -> 0.50 ms at
# 256^2, 6.2 -> 3.3 ms at 512^2, 25.4 -> 11.9 ms at 1024^2; float32 0.51 -> 0.32, 2.3 -> 1.3,
# 12.3 -> 5.4 ms; the solutions agree to 1e-12 (float64) and 1e-6 (float32) relative. The
# certificate's solves (``poisson``) stay DCT pairs. (Those times are of scalar tridiagonal
# loops; vectorized, the float32 solves take 0.038 instead of 0.128 ms at 256^2.)
POISSON_LINES = True
# ... where the elimination is well conditioned in the step's dtype: eps(dtype) h_x^2 max m (the
# relative rounding of the smallest pivot, about eps sqrt(h_x^2 / lambda_1)) at most this, else
# the DCT pair. Square cells pass in float32 up to about 26 000 cells per axis (h_x^2 max m is
# 81 at 256^2, 327 at 1024^2); at 1024^2 cells about 9 times narrower along x than along y do
# not (a fuzzed 5 x 8 grid on (0, 1) x (0, 1e9) divided by a zero pivot).
LINES_MAX_ROUNDING = 1e-3

# The iteration's 2D Poisson solve with one step of cyclic reduction before the DCT pair
# (FACR(1), ``facr_*_2d``): the odd rows eliminated, the DCT pair and the x-solves on the
# even rows only, the odd rows recovered by tridiagonal solves along y (on blocks of rows
# transposed, so that the recurrences vectorize across rows: FACR_TILE_BYTES). Grids of at
# least FACR_MIN_CELLS cells, cells at most FACR_MAX_ASPECT times ... (see below).
FACR = True
FACR_MIN_CELLS = 128 * 128
# ... where (dx / dy)^2 is at most this: the reduced right-hand side B r of float32 rows
# loses about eps (dx / dy)^2 of their size in the low modes.
FACR_MAX_ASPECT = 4.0
# The odd rows' blocks: as many rows as make a transposed block (ny x rows) of about this
# many bytes, 8 to 32 rows. One thread, float32, the odd rows' solves: at 256^2 4 / 8 / 16 /
# 32 rows 83 / 58 / 48 / 43 us; at 512^2 (two threads) 177 / 132 / 126 / 234 us; at 1024^2
# 718 / 534 / 751 / 912 us: best where a block is 32 KiB.
FACR_TILE_BYTES = 32768
# On all threads, each problem's blocks are shared by this many tasks per thread, each with a
# buffer of its own that it reuses: at 512^2 / 1024^2 (two threads) 2 / 4 / 8 tasks per
# problem took 107 / 104 / 101 and 497 / 488 / 485 us against 121 and 571 with a buffer per
# block (one thread: one buffer, 36 against 38 us at 256^2). The same bits.
FACR_TASKS_PER_THREAD = 4

# On 2D grids the dual step also computes the residual of the new flow
# (``dual_step_residual_2d``, on all threads ``dual_step_residual_2d_blocks``): the flow is read
# once for both, the same bits. Measured (one problem, float64): one thread, medians of 5 x 200
# calls, the two passes 12.7 / 44.4 / 198 us at 64^2 / 128^2 / 256^2, fused 11.9 / 40.4 /
# 170 us; two threads, 5 x 20 calls, 0.42-0.45 / 1.68-1.79 ms at 512^2 / 1024^2, fused
# 0.32-0.34 / 1.31-1.32 ms; and one kernel call less an iteration.
FUSED_RESIDUAL = True


class NumbaGridKernels(GridKernels):
    """The loop body with the fused Numba kernels of ``otgrid.kernels.critic_numba``."""

    name = "numba"

    def __init__(self, shape, dx, norm, dtype) -> None:
        super().__init__(shape, dx, norm, dtype)
        from otgrid.kernels import critic_numba as k

        if self.ndim not in (1, 2):
            raise ValueError("the numba backend supports 1D and 2D grids only.")
        self._k = k
        self._lines: dict = {}
        # the residual rounded to the step's dtype by the residual kernel (two buffers, used in
        # turn), and the residual it copies (None once the step has taken it): _step_copy
        self._copies: list[np.ndarray | None] = [None, None]
        self._turn = 0
        self._copy_of: np.ndarray | None = None
        self._hs: dict = {}  # _h
        self._tails: dict = {}  # _step_args
        self._hx2: dict = {}  # _lines_solve
        self._facr: dict = {}  # _facr_for
        self._facr_bufs: dict = {}  # _facr_solve
        self._facr_force = False  # FACR below FACR_MIN_CELLS (warm_up's tiny problem)
        self._no_sums = np.empty((1, 0))  # poisson_lines_2d's s0 outside FACR
        self.threads = 1
        self.workers = 1
        self.with_batch(1)

    def with_batch(self, nb: int) -> None:
        """Use all threads (kernels and DCTs) when the passes are long enough to pay for them,
        else the one-thread kernels (which also compile about three times faster)."""
        self._bind(int(np.prod(self.shape)) * nb >= PARALLEL_MIN_CELLS)

    def _bind(self, parallel: bool) -> None:
        """Run the parallel kernels on all threads, or the one-thread ones. "All" is Numba's
        thread count in the calling thread (``numba.set_num_threads``; a Dask task's limit,
        ``otgrid.distributed.worker.thread_limit``), and the DCTs take as many workers (they
        took every core whatever that count before)."""
        self.threads = None if parallel else 1
        if parallel:
            import numba

            self.workers = max(1, min(os.cpu_count() or 1, numba.get_num_threads()))
        else:
            self.workers = 1
        suffix = f"_{self.ndim}d" + ("" if parallel else "_serial")
        names = ("dual_step", "residual", "grad_stats", "flow_cost")
        self._d, self._r, self._g, self._c = (getattr(self._k, n + suffix) for n in names)
        self._pl = getattr(self._k, "poisson_lines" + suffix, None)  # 2D only
        self._fr, self._fv = (getattr(self._k, n + suffix, None) for n in
                              ("facr_reduce", "facr_recover"))
        # the euclidean step on anisotropic cells (2D; see _weighted_step)
        self._dw = getattr(self._k, "dual_step_2d_weighted" + ("" if parallel else "_serial"))

    def warm_up(self, nb: int, coarse: bool = False) -> None:
        """Compile (or load from Numba's cache) the kernels a solve of ``nb`` problems runs, on a
        3-cell-per-axis problem of the same types, saying so when it compiles (a first run);
        ``coarse``: also the one-thread kernels that the coarse grids of a multilevel start
        run. Free once they are compiled."""
        from otgrid._threads import announce_compilation

        variants = [self.threads is None]
        if coarse and self.threads is None:
            variants.append(False)
        tiny = NumbaGridKernels((3,) * self.ndim, [1.0 / h for h in self.inv_dx], self.norm,
                                self.dtype)
        disp = []
        for parallel in variants:
            tiny._bind(parallel)
            disp += [tiny._r, tiny._g, tiny._c, tiny._sweep_kernel("repair_critic", nb)]
            # the loop's step: fused with the residual on 2D grids (the plain one unused there)
            if self._weighted_step():
                disp.append(tiny._dw)
            elif self.ndim == 2 and FUSED_RESIDUAL:
                disp.append(self._k.dual_step_residual_2d_blocks if parallel
                            else self._k.dual_step_residual_2d)
            else:
                disp.append(tiny._d)
            if self.ndim == 2 and POISSON_LINES:
                disp.append(tiny._pl)
            if self._facr_compiles(parallel):
                disp += [tiny._fr, tiny._fv]
            if self.ndim == 2 and backend_numpy.LEVEL_BINS:
                disp.append(tiny._sweep_kernel("level_rescale", nb))
            if self.ndim == 2 and backend_numpy.RAY_SWEEPS:
                disp.append(tiny._sweep_kernel("ray_critics", nb))
        announce_compilation(disp, "otgrid.solve_critic")
        for parallel in variants:
            tiny._bind(parallel)
            tiny._facr_force = self._facr_compiles(parallel)
            tiny.exercise(nb)

    def _facr_compiles(self, parallel: bool) -> bool:
        """Whether a solve on this grid runs the FACR kernels of this variant: the parallel
        ones on the grid itself, the one-thread ones on it or on a coarse grid of a
        multilevel start (a quarter of the cells)."""
        if self.ndim != 2 or not FACR or self.shape[0] < 3:
            return False
        cells = int(np.prod(self.shape))
        return cells >= FACR_MIN_CELLS if parallel else cells // 4 >= FACR_MIN_CELLS or (
            self.threads == 1 and cells >= FACR_MIN_CELLS)

    @contextlib.contextmanager
    def session(self) -> Iterator[None]:
        import numba

        before = numba.get_num_threads()
        if self.threads is not None:
            numba.set_num_threads(self.threads)
        try:
            yield
        finally:
            numba.set_num_threads(before)

    def poisson(self, r) -> np.ndarray:
        """:meth:`GridKernels.poisson` (the checks' float64 solves); on the parallel kernels of
        2D grids (from :data:`PARALLEL_MIN_CELLS` cells) by the DCT along y and the
        tridiagonal solves of :data:`POISSON_LINES` in ``r``'s dtype: 2.2 instead of 5.5 ms
        at 512^2, 9.7 instead of 23.9 ms at 1024^2, the same solution to about 1e-12. Smaller
        grids keep the DCT pair: a float64 specialisation of the tridiagonal kernel would add
        about 0.4 s to a first solve's compilation for about 0.5 ms per check."""
        m = self._lines_for(r.dtype, self.inv_dx) if self.threads is None else None
        return super().poisson(r) if m is None else self._lines_solve(r, m, self.inv_dx)

    def poisson_step(self, r) -> np.ndarray:
        """The iteration's Poisson solve (see :meth:`GridKernels.poisson_step`); on 2D grids a
        DCT pair along y and the tridiagonal solves of :data:`POISSON_LINES` along x. Right
        after :meth:`residual` of the same ``r`` it transforms the float32 copy that the
        residual's pass wrote: the solution then lives in one of two buffers, valid until the
        residual after next (the loop reads it before)."""
        if r is self._copy_of:
            # the copy :meth:`residual` rounded in its pass, transformed in place; the next
            # residual writes the other buffer, so the solution lasts until the one after
            copy, self._copy_of = self._copies[self._turn], None
            self._turn = 1 - self._turn
            f = self._facr_for(copy.dtype)
            if f is not None:
                return self._facr_solve(copy, f, own=True)
            m = self._lines_for(copy.dtype, self.step_inv_dx)
            # (without the tridiagonal path, the DCT pair of GridKernels._solve: a new array)
            if m is None:
                return self._solve(copy, self.step_inv_dx)
            return self._lines_solve(copy, m, self.step_inv_dx, own=True)
        dt = self._step_dtype(r)
        cast = r.dtype != dt
        f = self._facr_for(dt)
        if f is not None:
            return self._facr_solve(r.astype(dt) if cast else r, f, own=cast)
        m = self._lines_for(dt, self.step_inv_dx)
        if m is None:
            return super().poisson_step(r)
        # a cast is a new array that the transform may overwrite; the caller's r is not
        return self._lines_solve(r.astype(dt) if cast else r, m, self.step_inv_dx, own=cast)

    def _lines_for(self, dt, inv_dx: tuple) -> np.ndarray | None:
        """The inverse pivots of the tridiagonal solves in ``dt`` on the grid of inverse cell
        sizes ``inv_dx`` (the real one or the step's, :attr:`step_inv_dx`; computed once), or None
        where they do not apply (not 2D, :data:`POISSON_LINES` off, ill-conditioned). On the
        parallel kernels, whose checks solve in float64 by the same path (:meth:`poisson`),
        the float32 and float64 pivots come from one float64 computation (a loop over the
        rows: 13 ms at 1024^2)."""
        if self.ndim != 2 or not POISSON_LINES:
            return None
        m = self._lines.get((dt, inv_dx), self._lines)  # (self._lines: not computed yet)
        if m is not self._lines:
            return m
        dt = np.dtype(dt)
        if (dt, inv_dx) not in self._lines:
            both = self.threads is None and dt in (np.float32, np.float64)
            m = ops.tridiagonal_pivots(self.shape, inv_dx, np.float64)
            for d in (np.dtype(np.float32), np.dtype(np.float64)) if both else (dt,):
                self._lines[d, inv_dx] = self._line_factors(m, d, inv_dx)
        return self._lines[dt, inv_dx]

    def _lines_solve(self, a, m, inv_dx: tuple, own: bool = False) -> np.ndarray:
        """``(D^T D)^+ a`` on the grid of ``inv_dx`` by a DCT pair along y around the
        tridiagonal solves along x, in ``a``'s dtype (``m``: the pivots in it; ``own``: ``a``
        may be overwritten)."""
        key = (a.dtype, inv_dx[0])
        e = self._hx2.get(key)
        if e is None:  # (-h_x^2, h_x^2) in a's dtype, made once (a microsecond a call)
            hx2 = a.dtype.type(inv_dx[0] ** 2)
            e = self._hx2[key] = (-hx2, hx2)
        rh = ops.dct_lines(a, False, self.workers, overwrite=own)
        self._pl(rh, m, *e, self._no_sums)
        return ops.dct_lines(rh, True, self.workers, overwrite=True)

    def _facr_for(self, dt) -> tuple | None:
        """The FACR step's factors in ``dt`` on the step's grid (:attr:`step_inv_dx`; made
        once): the reduced system's pivots, those of the odd rows' solves, ``(c, 2 + 2c,
        2 + c, 1 / h_x^2, 0, 1)`` and ``(-h_x^2, h_x^2)``; None where FACR does not apply (not 2D,
        :data:`FACR` off, fewer than :data:`FACR_MIN_CELLS` cells or 3 rows, cells wider than
        :data:`FACR_MAX_ASPECT`, the reduced pivots ill-conditioned in ``dt``)."""
        if self.ndim != 2 or not FACR or not POISSON_LINES:
            return None
        f = self._facr.get(dt, self._facr)  # (self._facr: not made yet)
        if f is not self._facr:
            return f
        f = None
        inv_dx = self.step_inv_dx
        cells = int(np.prod(self.shape))
        if (self.shape[0] >= 3 and self.shape[1] >= 2 and self._fr is not None
                and (cells >= FACR_MIN_CELLS or self._facr_force)):
            hx2, hy2 = float(inv_dx[0]) ** 2, float(inv_dx[1]) ** 2
            c = hy2 / hx2
            m, q, qe = ops.facr_pivots(self.shape, inv_dx)
            m = self._line_factors(m, np.dtype(dt), inv_dx) if c <= FACR_MAX_ASPECT else None
            if m is not None:
                t = np.dtype(dt).type
                k = np.array([c, 2.0 + 2.0 * c, 2.0 + c, 1.0 / hx2, 0.0, 1.0], dtype=dt)
                f = (m, q.astype(dt), qe.astype(dt), k, (t(-hx2), t(hx2)))
        self._facr[dt] = f
        return f

    def _facr_solve(self, a, f: tuple, own: bool = False) -> np.ndarray:
        """``(D^T D)^+ a`` by FACR(1) (see :data:`FACR`) in ``a``'s dtype, into ``a`` where
        ``own``, else a new array; buffers kept between calls."""
        m, q, qe, k, e = f
        nb, nx, ny = a.shape
        bufs = self._facr_bufs.get((a.dtype, nb))
        if bufs is None:
            rows = (nx - 1) // 2
            width = FACR_TILE_BYTES // (ny * a.dtype.itemsize)
            width = min(32, max(8, 1 << max(0, width.bit_length() - 1)))
            # block buffers: one on one thread, FACR_TASKS_PER_THREAD per thread on all
            blocks = (rows + width - 1) // width + (nx % 2 == 0)
            per = 1 if self.threads == 1 else FACR_TASKS_PER_THREAD * self.workers
            tasks = nb * max(1, min(blocks, per))
            bufs = self._facr_bufs[a.dtype, nb] = (
                np.empty((nb, (nx + 1) // 2, ny), a.dtype), np.empty((nb, nx + 1)),
                np.empty((nb, ny), a.dtype), np.empty((tasks, ny, width), a.dtype))
        red, s0, w, tile = bufs
        # the transforms' threads from PARALLEL_MIN_CELLS of their own (half the grid's): at
        # 512^2 (256 x 512 transformed) one worker took 0.16 ms, two 0.14-0.24 ms
        workers = self.workers if red.size >= PARALLEL_MIN_CELLS else 1
        self._fr(a, red, s0, k, qe, w)
        ops.dct_lines(red, False, workers, overwrite=True)
        self._pl(red, m, *e, s0)  # mode 0 from s0: the whole grid's row sums
        out = a if own else np.empty_like(a)
        ops.dct_lines(red, True, workers, out=out[:, ::2])
        self._fv(a, out, s0, k, q, qe, tile)
        return out

    def _line_factors(self, m: np.ndarray, dt: np.dtype, inv_dx: tuple) -> np.ndarray | None:
        """The inverse Thomas pivots ``m`` of the step's x-solves (float64,
        ``ops.tridiagonal_pivots``) in ``dt``, or None where their smallest pivot is lost to
        rounding in ``dt`` (:data:`LINES_MAX_ROUNDING`)."""
        worst = float(np.finfo(dt).eps) * inv_dx[0] ** 2 * float(np.max(np.abs(m)))
        if not (np.all(np.isfinite(m)) and np.all(m >= 0) and worst <= LINES_MAX_ROUNDING):
            return None
        return m.astype(dt, copy=False)

    def dual_step(self, f, u, y, f_out, tau, sigma, rho: float = 1.0) -> None:
        if self._weighted_step():
            self._dw(f, u, y, f_out, *self._step_args(f.dtype, tau, sigma, rho)[:-1])
        else:
            self._d(f, u, y, f_out, *self._step_args(f.dtype, tau, sigma, rho))

    def _weighted_step(self) -> bool:
        """Whether the step is the euclidean one on anisotropic 2D cells: the kernel
        ``dual_step_2d_weighted``, unfused (the residual in a pass of its own)."""
        return self.iso and self.weighted and self.ndim == 2

    def _step_args(self, dt: np.dtype, tau, sigma, rho: float) -> tuple:
        """The step kernels' arguments after the arrays: steps, ``rho``, ``1 / dx``, in 2D the
        dual steps' axis weights, and the norm, as the kernels take them (``dt``: the iterates'
        dtype)."""
        tail = self._tails.get((dt, rho))
        if tail is None:  # (made once: a few microseconds an iteration on the coarse grids)
            w = tuple(dt.type(v) for v in self.axis_weights) if self.ndim == 2 else ()
            tail = self._tails[dt, rho] = (dt.type(rho), *self._h(dt), *w, self.iso)
        return (tau.astype(dt, copy=False), sigma.astype(dt, copy=False), *tail)

    def dual_step_residual(self, f, u, y, f_out, tau, sigma, rho, c, r) -> bool:
        """:meth:`GridKernels.dual_step_residual` on 2D grids with :data:`FUSED_RESIDUAL`: one
        pass, ``dual_step_residual_2d``, on the one-thread kernels (below
        :data:`PARALLEL_MIN_CELLS` cells: 256^2 and the coarse levels); on all threads
        ``dual_step_residual_2d_blocks``, one block of rows per thread (a row's residual reads
        the new flow of the row before: the first row of each block comes after the blocks)."""
        if self.ndim != 2 or not FUSED_RESIDUAL or self._weighted_step():
            return super().dual_step_residual(f, u, y, f_out, tau, sigma, rho, c, r)
        args = (f, u, y, f_out, *self._step_args(f.dtype, tau, sigma, rho), c, r,
                self._step_copy(r))
        if self.threads == 1:
            self._k.dual_step_residual_2d(*args)
        else:
            import numba

            self._k.dual_step_residual_2d_blocks(*args, numba.get_num_threads())
        return True

    def residual(self, c, y, r) -> None:
        if self.ndim == 1:
            self._r(c, y, r, *self._h(c.dtype))
        else:
            self._r(c, y, r, self._step_copy(r), *self._h(c.dtype))

    def _h(self, dt: np.dtype) -> tuple:
        """``1 / dx`` per axis as scalars of ``dt`` (what the kernels take), made once."""
        h = self._hs.get(dt)
        if h is None:
            h = self._hs[dt] = tuple(dt.type(v) for v in self.inv_dx)
        return h

    def _step_copy(self, r) -> np.ndarray:
        """Where the 2D residual kernel also writes ``r``, rounded: a buffer in the dtype of
        the Poisson step, which :meth:`poisson_step` of this same ``r`` then transforms (the
        cast in the residual's pass instead of a pass of its own: 0.13 ms at 512^2, 0.6-0.8 ms
        at 1024^2). Also where the step solves in ``r``'s own dtype (float32 iterates, the
        ablation's float64 step): with ``r`` as its own copy the fused kernel's loops failed
        LLVM's run-time check that the arrays do not overlap and ran scalar (float32, 0.19
        instead of 0.15 ms at 256^2), and the step transformed ``r`` into a fresh array every
        iteration. (The float64 certificate's residuals of float32 iterates write one too,
        unread: the kernel keeps one signature per dtype for a pass at checks only.)"""
        dt = self._step_dtype(r)
        buf = self._copies[self._turn]
        if buf is None or buf.shape != r.shape or buf.dtype != dt:
            # two buffers in turn, not one per iteration: a fresh 4 MB array at 1024^2 cost
            # 0.5-1 ms of page faults an iteration
            buf = self._copies[self._turn] = np.empty(r.shape, dtype=dt)
        self._copy_of = r
        return buf

    def _rows(self, a) -> int:
        """The partial results a reduction kernel writes for the grid functions ``a``: one per
        row of cells in 2D, one per problem in 1D."""
        return a.shape[0] * (a.shape[1] if self.ndim == 2 else 1)

    def _grad_stats(self, f) -> np.ndarray:
        """``(2, B, rows)``: per row of cells the largest ``|(Df)_i|`` and the sum of
        ``|(Df)_i|_2^2`` (one kernel for both: one compilation less on a first run)."""
        rows = np.empty((2, self._rows(f)))
        self._g(f, *self.inv_dx, self.iso, rows)
        return rows.reshape(2, f.shape[0], -1)

    def max_grad_norm(self, f) -> np.ndarray:
        return self._grad_stats(f)[0].max(axis=1)

    def grad_sq(self, f) -> np.ndarray:
        return self._grad_stats(f)[1].sum(axis=1)

    def flow_cost(self, y, u) -> np.ndarray:
        rows = np.empty(self._rows(u))
        self._c(y, u, *self.inv_dx, self.iso, rows)
        return rows.reshape(u.shape[0], -1).sum(axis=1)
