"""The loop body of the critic solver in plain NumPy: the readable reference backend.

:class:`GridKernels` defines the interface every backend implements (one object per grid, norm
and dtype), with the operators of :mod:`otgrid.critic.operators` (any number of axes). The
Numba and CUDA backends subclass it and replace the hot methods with fused kernels.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

import numpy as np

from otgrid.critic import operators as ops

__all__ = ["ASCENT_MIN_MASS", "ASCENT_SWEEPS", "ASCENT_TIGHT_TOL", "DESCENT_MIN_SLOPE",
           "DESCENT_SWEEPS", "LEVEL_BINS", "POISSON_STEP_DTYPE", "RAY_SWEEPS", "GridKernels"]

# The transforms of the iteration's Poisson solve with float64 iterates (None: float64 too).
# float32 halves the DCT pair's time (256^2: 0.50 ms against 0.92 ms; 1024^2: 6.8 ms against
# 14.3 ms, scipy.fft on 2 cores) and, being an error relative to the residual, changed no
# iteration count: the 256^2 problems of benchmarks/bench_hard.py at relative gaps 1e-4 and 1e-6
# (8gaussians: 16 518 iterations either way) and 8gaussians at 1024^2 (806), whose solve went
# from 33.5 s to 25.2 s. The certificate's flow corrections stay in float64.
POISSON_STEP_DTYPE: type | None = np.float32
_FLOAT64 = np.dtype(np.float64)
# ... for cells whose sides lie in this range (the solve divides them by a power of two near
# the largest, otgrid._units.UNITS_RANGE; only sides that differ by more than about
# 2^30 leave it): beyond, 1 / dx^2 leaves float32 and the step runs in the iterates' dtype
FLOAT32_STEP_DX = (2.0 ** -50, 2.0 ** 50)

# Bins of the value map of the level-rescaled critic (a candidate of Best.update; 0: none).
# It lowered the work to 1e-4 at 256^2 by 17 % on the hard problems of
# benchmarks/bench_hard.py (8gaussians 978 -> 807 fine-iteration equivalents), until the ray
# critics below: with them it was never the best candidate at any check of those problems
# (256^2 at 1e-4 and 1e-6, 512^2 funnel pairs, 1024^2 8gaussians), so it is off by default
# (one kernel less to compile) and kept for the benchmark's ablation.
LEVEL_BINS = 0

# Sweeps at most of the ray critics (a candidate pair of Best.update; 0: none), see
# ``otgrid.kernels.critic_numba.ray_critics_2d``; they converge in 3 to 6 sweeps (down and
# up the rows, each row both ways; the last sweep changes nothing) on the problems of
# benchmarks/bench_hard.py, and an unconverged pair is still a valid (rescaled) candidate.
# Work to 1e-4 at 256^2 (fine-iteration equivalents, against the level map):
# 8gaussians 787 -> 449, at the WGAN-GP scale 1 138 -> 790, its histogram 1 227 -> 815,
# 25gaussians 687 -> 380, swissroll 445 -> 344, funnel pairs with 4, 16, 64 funnels
# 793 -> 366, 1 514 -> 498, 846 -> 382 (the Gaussian pair 39 either way); 8gaussians at
# 1e-6 16 731 -> 12 267 iterations.
RAY_SWEEPS = 64

# Sweeps of the feasible ascent of the best certified critic (``ascend``, run by Best.update at
# checks near the tolerance; 0: none), see ``otgrid.kernels.critic_numba.ascend_critic_2d``.
# Near the optimum the extracted critics lose several times more of W than the iterate's own
# ``<c, f>`` does (the Gaussian pair at 256^2, 1e-6: 1e-6 against 2e-7); four sweeps give
# back about two thirds of it (one sweep 10 %, sixteen no more than four).
ASCENT_SWEEPS = 4
# ... twice as many in solves to a relative gap at or below this: near such a tolerance the
# lower bound decides the stop (the Gaussian pair at 256^2, 1e-6: 887 -> 820 iterations with 8
# sweeps, 776 with 16; 8gaussians 5 250 either way); to 1e-4 more sweeps changed no solve of
# the benchmark and only cost time (an ascent takes 67 ms with 4 sweeps at 1024^2).
ASCENT_TIGHT_TOL = 1e-5
# ... moving only the cells whose |c| is above this fraction of the largest: the others hold
# next to no mass (the tails of the measures), and pushing their values to the ends of their
# intervals gives nothing to W but a staircase critic there (see ascend_critic_2d).
ASCENT_MIN_MASS = 1e-6

# Sweeps of the flow's descent (``descend``, run by Best.update on each check's flow near the
# tolerance; 0: none), see ``otgrid.kernels.critic_numba.descend_flow_2d``: circulations around
# the plaquettes that lower the flow's cost and keep its divergence, the upper bound's side of
# the feasible ascent.
DESCENT_SWEEPS = 4
# ... moving only the plaquettes whose cost falls along the circulation by more than this
# fraction of (1/dx + 1/dy) per unit: the others would gain next to nothing.
DESCENT_MIN_SLOPE = 0.01


# The iteration on anisotropic cells (GridKernels.axis_weights): the dual step sigma s_k per
# axis with s_k = (dx_k / max dx)^AXIS_POWER, its shrinkage in the metric diag(s_k)^-1 and the
# primal step preconditioned by D^T S D (S = diag(s_k) on every cell) instead of D^T D
# (Pock & Chambolle 2011's diagonal preconditioning, alpha = 1 for AXIS_POWER = 1). With S = I
# such grids stall: 40 random problems (3 to 32 cells per axis, random measures, cells 2 to
# 1e4 times longer along one axis, both norms, relative gap 1e-6, 20 000 iterations at most;
# NumPy backend) failed 13 times, median 4 907 iterations; with s_k = dx_k / max dx once (a
# 9 x 31 euclidean grid, cells 4 381 times longer), median 647. (s_k = (dx_k / max dx)^2
# and ^0.5 on twelve such problems: 2 and 3 failures, and one at the limit, against 1.)
AXIS_POWER = 1.0
# ... used where max dx / min dx exceeds this, per norm (inf: never). Cityblock: always (the
# shrinkage stays a threshold per component: no cost per iteration; fewer iterations on every
# smooth anisotropic problem measured, e.g. 8gaussians-like pairs on 32 x 1024 and 32 x 2048
# cells, 1e-6: 2 282 -> 1 096 and 2 446 -> 917 iterations, 0.9 -> 0.36 s and 1.5 -> 0.67 s).
# Euclidean: its shrinkage in that metric is a Newton iteration per cell (13 times the plain
# step's time at 256^2), and on smooth problems of moderate anisotropy the iterations did not
# fall enough or rose (32 x 1024 cells: 11 897 -> 5 090 iterations, 3.4 -> 9.1 s; 32 x 2048:
# 14 233 -> 39 764), so only where the plain iteration stalls: at ratios from about 1 000 it
# failed on 6 of 6 random problems and 2 of 3 smooth ones (30 000 iterations), the weighted one
# on 1 and 1.
AXIS_WEIGHTS_MIN_RATIO = {"cityblock": 1.0, "euclidean": 1000.0}


class GridKernels:
    """The loop body of the solver for one grid, norm and dtype (NumPy reference version).

    Every array carries a leading batch axis ``B`` (one problem: ``B = 1``): grid functions
    have shape ``(B, *shape)``, flows ``(B, ndim, *shape)``; steps ``tau``, ``sigma`` are arrays
    of shape ``(B,)``; reductions return float64 arrays of shape ``(B,)`` on the host.

    Parameters
    ----------
    shape : tuple of int
        Grid shape.
    dx : sequence of float
        Cell sizes.
    norm : {"euclidean", "cityblock"}
        Pointwise norm of the critic constraint.
    dtype : numpy dtype
        Working precision of the iterates.

    Attributes
    ----------
    weighted : bool
        Whether the iteration runs in the metric of per-axis weights: cells whose sides differ
        by more than :data:`AXIS_WEIGHTS_MIN_RATIO` for the norm.
    axis_weights : tuple of float
        ``s_k = (dx_k / max dx)^AXIS_POWER`` (all 1 unless ``weighted``): the dual step is
        ``sigma s_k`` along axis ``k`` and its shrinkage the proximal map in the metric
        ``diag(s_k)^{-1}`` (``operators.shrink``); the primal step is preconditioned by
        ``D^T S D``. The fixed point, the flows and the certificate are those of the real grid.
    step_inv_dx : tuple of float
        ``sqrt(s_k) / dx_k``: the grid whose ``D^T D`` is ``D^T S D`` (:meth:`poisson_step`
        solves on it; :meth:`poisson`, the checks' solve, on the real one).
    """

    name = "numpy"
    xp = np
    # The iteration's Poisson solves in POISSON_STEP_DTYPE transforms (float64 iterates).
    fast_poisson = True

    def __init__(self, shape: Sequence[int], dx: Sequence[float], norm: str, dtype) -> None:
        self.shape = tuple(int(n) for n in shape)
        self.ndim = len(self.shape)
        self.inv_dx = tuple(1.0 / float(h) for h in dx)
        big, small = max(float(h) for h in dx), min(float(h) for h in dx)
        self.weighted = big / small > AXIS_WEIGHTS_MIN_RATIO[norm]
        self.axis_weights = tuple((float(h) / big) ** AXIS_POWER if self.weighted else 1.0
                                  for h in dx)
        # the inverse cell sizes sqrt(s_k) / dx_k whose plain D^T D is the step's D^T S D
        self.step_inv_dx = (tuple(float(np.sqrt(w) * h) for w, h in
                                  zip(self.axis_weights, self.inv_dx, strict=True))
                            if self.weighted else self.inv_dx)
        self.norm = norm
        self.iso = norm == "euclidean"
        self.dtype = np.dtype(dtype)
        self._inv_lam = {}
        self.workers = 1
        if not all(FLOAT32_STEP_DX[0] <= 1.0 / h <= FLOAT32_STEP_DX[1] for h in self.step_inv_dx):
            self.fast_poisson = False  # the float32 step's 1 / dx^2 would leave float32

    @contextlib.contextmanager
    def session(self) -> Iterator[None]:
        """Context in which the loop runs (the Numba backend sets its thread count here)."""
        yield

    def with_batch(self, nb: int) -> None:
        """Tell the kernels how many problems run together (the Numba backend picks threads)."""

    def warm_up(self, nb: int, coarse: bool = False) -> None:
        """Compile what a solve of ``nb`` problems runs (``coarse``: and its multilevel start)
        before the clock starts; nothing to compile here (the Numba backend compiles)."""

    def exercise(self, nb: int) -> None:
        """Run every method of the loop body and the certificate once on this object's grid
        with ``nb`` problems of zeros (compiles the kernels they call)."""
        shape = (1, *self.shape)
        f = self.xp.zeros(shape, dtype=self.dtype)
        y = self.xp.zeros((1, self.ndim, *self.shape), dtype=self.dtype)
        r, f_out = self.xp.zeros_like(f), self.xp.zeros_like(f)
        tau = np.ones(1)
        self.residual(f, y, r)
        u = self.poisson_step(r)
        self.poisson(r)  # the checks' solve
        # the loop's step (the plain one where the backend does not fuse the residual into it)
        self.dual_step_residual(f, u, y, f_out, tau, tau, 1.0, f, r)
        self.max_grad_norm(f)
        self.grad_sq(f)
        self.flow_cost(y, f)
        self.corrected_flow(y, f)
        if self.dtype == np.float64:  # the certificate repairs float64 critics only
            zeros = self.xp.zeros((nb, *self.shape), dtype=self.dtype)
            self.repair(zeros)
            self.level_rescale(zeros)
            self.ray_critics(zeros)

    # -- arrays --------------------------------------------------------------------------------
    def to_device(self, a: np.ndarray, dtype=None) -> np.ndarray:
        """A contiguous working copy of a host array (in ``dtype``, default the working one)."""
        return np.array(a, dtype=self.dtype if dtype is None else dtype, order="C")

    def to_host(self, a) -> np.ndarray:
        """The array as a NumPy array on the host."""
        return np.asarray(a)

    def dot(self, a, b) -> np.ndarray:
        """``sum_i a_i b_i`` per problem, in float64, each problem by the same call whatever
        the batch (``einsum`` over a batch rounds a row differently from the row alone, and
        the certificate's choice between near-equal candidates must not depend on the
        batch)."""
        nb = a.shape[0]
        a2, b2 = a.reshape(nb, -1), b.reshape(nb, -1)
        return np.array([np.dot(a2[i], b2[i]) for i in range(nb)], dtype=np.float64)

    def sq_norm(self, a) -> np.ndarray:
        """``sum_i a_i^2`` per problem, in float64."""
        return self.dot(a, a)

    def flow_metric_sq(self, dy) -> np.ndarray:
        """``sum_i sum_k dy_{i,k}^2 / s_k`` per problem, in float64: a flow's squared norm in
        the dual step's metric (:attr:`axis_weights`; :meth:`sq_norm` on square cells)."""
        if not self.weighted:
            return self.sq_norm(dy)
        inv = self.xp.asarray([1.0 / w for w in self.axis_weights]).reshape(
            (1, self.ndim) + (1,) * self.ndim)
        return self.dot(dy, dy * inv)

    def grad_metric_sq(self, f) -> np.ndarray:
        """``sum_i sum_k s_k (D_k f)_i^2`` per problem, in float64: ``|D f|^2`` in the metric
        of the iteration's primal step, ``D^T S D`` (:meth:`grad_sq` on square cells)."""
        if not self.weighted:
            return self.grad_sq(f)
        f64 = f.astype(np.float64, copy=False)
        return sum(self.sq_norm(self.xp.diff(f64, axis=1 + k)) * (h * h * w)
                   for k, (h, w) in enumerate(zip(self.inv_dx, self.axis_weights, strict=True)))

    def flush(self, y, below) -> None:
        """Set to zero, in place, the values of ``y`` ``(B, ...)`` whose magnitude is below
        ``below[b]`` (a host array ``(B,)``); array operations, so every backend shares it
        (one problem at a time: the temporaries of one problem's flow; a multiplication by the
        mask, not a masked assignment, which CuPy would synchronise with the host for)."""
        xp = self.xp
        for b, t in enumerate(np.asarray(below, dtype=np.float64)):
            yb = y[b]
            xp.multiply(yb, xp.abs(yb) >= t, out=yb)

    # -- shared: the Poisson solve -----------------------------------------------------------
    def poisson(self, r: np.ndarray) -> np.ndarray:
        """Zero-mean solution ``u`` of ``D^T D u = r`` per problem, dtype of ``r`` (DCT-II)."""
        return self._solve(r, self.inv_dx)

    def _solve(self, r, inv_dx: tuple) -> np.ndarray:
        """Zero-mean solution of the Neumann Poisson problem of the grid of inverse cell sizes
        ``inv_dx`` (the real one, or the step's: :attr:`step_inv_dx`) by a DCT-II pair."""
        key = (np.dtype(r.dtype), inv_dx)
        if key not in self._inv_lam:
            self._inv_lam[key] = ops.inverse_eigenvalues(self.shape, inv_dx, r.dtype)
        return ops.poisson_neumann(r, self._inv_lam[key], workers=self.workers)

    def poisson_step(self, r: np.ndarray) -> np.ndarray:
        """The Poisson solve of an iteration: :meth:`poisson` of a float64 residual in
        :data:`POISSON_STEP_DTYPE` transforms (when ``fast_poisson``), else in the residual's.

        The preconditioner is then applied with an error relative to the residual (float32:
        about 1e-7 of it), which vanishes with the residual: the iteration keeps its fixed
        point, and the certificate corrects its flows with float64 solves. The solution stays
        in the solve's dtype: :meth:`dual_step` reads it as it is (a cast to float64 would be
        one more pass over the grid for the same values).
        """
        dt = self._step_dtype(r)
        return self._solve(r if dt == r.dtype else r.astype(dt), self.step_inv_dx)

    def _step_dtype(self, r) -> np.dtype:
        """The dtype in which :meth:`poisson_step` solves for the residual ``r``."""
        dt = POISSON_STEP_DTYPE if self.fast_poisson else None
        return r.dtype if dt is None or r.dtype != _FLOAT64 else np.dtype(dt)

    # -- loop body ---------------------------------------------------------------------------
    def dual_step(self, f, u, y, f_out, tau, sigma, rho: float = 1.0) -> None:
        """The step relaxed by ``rho`` (1: the plain step): ``f_out = f + rho tau u``;
        ``y <- y + rho (shrink(y + sigma D(f + 2 tau u), sigma) - y)`` in place."""
        p = f.dtype.type(rho)
        w = None
        if self.weighted:
            w = np.asarray(self.axis_weights, dtype=f.dtype).reshape((-1,) + (1,) * self.ndim)
        for b in range(f.shape[0]):
            t, s = f.dtype.type(tau[b]), f.dtype.type(sigma[b])
            fb = f[b] + (2 * t) * u[b]
            np.add(f[b], (p * t) * u[b], out=f_out[b])
            g = ops.grad(fb, self.inv_dx)
            if w is None:
                y[b] += p * (ops.shrink(y[b] + s * g, s, self.norm) - y[b])
            else:  # per-axis dual steps sigma s_k, the shrinkage in their metric
                v = ops.shrink(y[b] + (s * w) * g, s, self.norm, self.axis_weights)
                y[b] += p * (v - y[b])

    def dual_step_residual(self, f, u, y, f_out, tau, sigma, rho, c, r) -> bool:
        """:meth:`dual_step`, and where a backend fuses them, :meth:`residual` of the new
        flow into ``r`` in the same pass; True when it did (then ``r`` is the next iteration's
        residual). Here: the step alone (False)."""
        self.dual_step(f, u, y, f_out, tau, sigma, rho)
        return False

    def residual(self, c, y, r) -> None:
        """``r = c - D^T y`` in place."""
        for b in range(c.shape[0]):
            np.subtract(c[b], ops.div_adjoint(y[b], self.inv_dx), out=r[b])

    # -- certificate and restarts --------------------------------------------------------------
    def max_grad_norm(self, f) -> np.ndarray:
        """``max_i |(Df)_i|`` in the constraint norm, per problem."""
        return np.array([ops.grad_norms(ops.grad(fb, self.inv_dx), self.norm).max()
                         for fb in f], dtype=np.float64)

    def grad_sq(self, f) -> np.ndarray:
        """``sum_i |(Df)_i|_2^2`` per problem."""
        return np.array([np.sum(ops.grad(fb.astype(np.float64), self.inv_dx) ** 2) for fb in f])

    def flow_cost(self, y, u) -> np.ndarray:
        """``sum_i |y_i + (Du)_i|`` in the flow norm, per problem."""
        return np.array([ops.flow_norms(yb + ops.grad(ub, self.inv_dx), self.norm).sum()
                         for yb, ub in zip(y, u, strict=True)], dtype=np.float64)

    def corrected_flow(self, y, u) -> np.ndarray:
        """``y + D u`` (a new array)."""
        return np.stack([yb + ops.grad(ub, self.inv_dx) for yb, ub in zip(y, u, strict=True)])

    def flow_critic(self, yc: np.ndarray) -> np.ndarray:
        """Critic recovered from a feasible flow by complementary slackness (least squares).

        At the optimum ``(Df)_i`` is the unit direction of the flow wherever the flow is not
        zero. This returns the least-squares solution of ``Df = yhat`` with ``yhat`` those
        directions (zero where the flow is negligible): one Poisson solve. In 1D it is the exact
        optimal critic of the flow ``yc``; in 2D a candidate that :meth:`repair` makes feasible.
        """
        rhs = np.empty(yc.shape[:1] + yc.shape[2:], dtype=yc.dtype)
        for b, yb in enumerate(yc):
            n = ops.flow_norms(yb, self.norm)
            top = n.max()
            keep = n > 1e-9 * top
            if self.iso:
                yhat = np.where(keep, yb / np.where(keep, n, 1.0), 0.0)
            else:
                yhat = np.where(np.abs(yb) > 1e-9 * top, np.sign(yb), 0.0)
            rhs[b] = ops.div_adjoint(yhat, self.inv_dx)
        return self.poisson(rhs)

    def _sweep_kernel(self, name: str, nb: int):
        """The Numba kernel ``<name>_<ndim>d`` of a certificate sweep: its one-thread twin for
        one problem (the parallel loop runs over the batch)."""
        from otgrid.kernels import critic_numba as k

        return getattr(k, f"{name}_{self.ndim}d" + ("_serial" if nb == 1 else ""))

    def level_rescale(self, f: np.ndarray) -> np.ndarray | None:
        """A feasible critic ``phi(f)`` by a nondecreasing map of the values (2D, with
        :data:`LEVEL_BINS` > 0; None otherwise): see
        ``otgrid.kernels.critic_numba.level_rescale_2d``. Shared by every backend, evaluated at
        checks only."""
        if self.ndim != 2 or not LEVEL_BINS:
            return None
        g = np.empty_like(f)
        self._sweep_kernel("level_rescale", f.shape[0])(f, g, *self.inv_dx, self.iso,
                                                          LEVEL_BINS)
        return g

    def ray_critics(self, f: np.ndarray) -> list[np.ndarray]:
        """Two feasible critics ``f - psi`` whose corrections ``psi`` follow the transport rays
        (2D, with :data:`RAY_SWEEPS` > 0; an empty list otherwise): see
        ``otgrid.kernels.critic_numba.ray_critics_2d``. Shared by every backend, evaluated at
        checks only."""
        if self.ndim != 2 or not RAY_SWEEPS:
            return []
        lo, hi, ex, ey = (np.empty_like(f) for _ in range(4))
        self._sweep_kernel("ray_critics", f.shape[0])(f, lo, hi, *self.inv_dx, self.iso,
                                                        RAY_SWEEPS, ex, ey)
        return [lo, hi]

    def ascend(self, g: np.ndarray, c: np.ndarray, sweeps: int | None = None
               ) -> np.ndarray | None:
        """A copy of the feasible critics ``g`` moved cell by cell towards ``sign(c)`` as far
        as their constraints allow, by ``sweeps`` sweeps (default :data:`ASCENT_SWEEPS`; 2D,
        when that is > 0; None otherwise): ``<c, g>`` grows and feasibility stays up to
        rounding. See ``otgrid.kernels.critic_numba.ascend_critic_2d``. Shared by every
        backend, evaluated at checks only."""
        sweeps = ASCENT_SWEEPS if sweeps is None else sweeps
        if self.ndim != 2 or not ASCENT_SWEEPS or not sweeps:
            return None
        from otgrid.kernels import critic_numba as k

        out = np.array(g, dtype=np.float64, order="C")
        c = np.ascontiguousarray(c, dtype=np.float64)
        cmin = ASCENT_MIN_MASS * np.abs(c).reshape(len(c), -1).max(axis=1)
        args = (out, c, *self.inv_dx, self.iso, int(sweeps), cmin)
        _compile_polish(k.ascend_critic_2d, *args)
        k.ascend_critic_2d(*args)
        return out

    def descend(self, p: np.ndarray, own: bool = False) -> np.ndarray | None:
        """A copy of the feasible flows ``p`` (``(B, 2, nx, ny)``) with circulations added
        around the plaquettes that lower ``sum_i |p_i|`` and keep ``D^T p`` (2D, Euclidean
        norm, with :data:`DESCENT_SWEEPS` > 0; None otherwise); ``own``: ``p`` itself where it
        is a float64 C-ordered host array (the caller's temporary: no copy). See
        ``otgrid.kernels.critic_numba.descend_flow_2d``. Shared by every backend, evaluated at
        checks only."""
        if self.ndim != 2 or not self.iso or not DESCENT_SWEEPS:
            return None
        from otgrid.kernels import critic_numba as k

        out = (np.asarray if own else np.array)(p, dtype=np.float64, order="C")
        _compile_polish(k.descend_flow_2d, out[0, 0], out[0, 1], *self.inv_dx, DESCENT_SWEEPS,
                        DESCENT_MIN_SLOPE)
        for b in range(len(out)):  # one problem after the other: the same bits in any batch
            k.descend_flow_2d(out[b, 0], out[b, 1], *self.inv_dx, DESCENT_SWEEPS,
                              DESCENT_MIN_SLOPE)
        return out

    def repair(self, f: np.ndarray) -> np.ndarray | None:
        """A critic near ``f`` made feasible by one sequential sweep (1D, 2D); None otherwise.

        Shared by every backend: it is part of the certificate, evaluated at checks only, and
        inherently sequential (see ``otgrid.kernels.critic_numba.repair_critic_2d``).
        """
        if self.ndim not in (1, 2):
            return None
        g = np.empty_like(f)
        dx = tuple(1.0 / h for h in self.inv_dx)
        kernel = self._sweep_kernel("repair_critic", f.shape[0])
        if self.ndim == 1:
            kernel(f, g, dx[0])
        else:
            kernel(f, g, dx[0], dx[1], self.iso)
        return g


def _compile_polish(kernel, *args) -> None:
    """Compile a polishing kernel of the certificate (the critic's ascent, the flow's descent)
    where a check first polishes, off the solve's clock and announced: not in the warm-up, so
    a solve whose checks never polish does not compile them (about 1.5 s of a first run)."""
    from otgrid._threads import compile_on_first_use

    compile_on_first_use(kernel, "otgrid.solve_critic", *args)
