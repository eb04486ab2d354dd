"""The CUDA backend of the grid critic: the loop body on the GPU (numba-cuda kernels, CuPy arrays).

:class:`CudaGridKernels` has the methods of :class:`otgrid.critic.backend_numpy.GridKernels`
(the NumPy reference), with the same batched array layout, so the Chambolle–Pock driver of
:mod:`otgrid.critic` runs on it unchanged as long as it allocates with ``kern.xp`` and keeps
steps and reductions as the methods return them:

- iterates stay on the device: the fused stencil kernels of ``otgrid.kernels.critic_cuda`` run one
  thread per cell, the Poisson solve is a DCT-II pair of ``cupyx.scipy.fft`` over the grid axes;
- reductions (``max_grad_norm``, ``flow_cost``, ``dot``, ...) run on the device and bring only
  the ``B`` results to the host, as float64 NumPy arrays (``(B,)``);
- the per-problem steps ``tau``, ``sigma`` are host arrays for the driver; their device copies
  are cached and uploaded again only when their values change (at restarts);
- :meth:`CudaGridKernels.repair` (a sequential sweep) runs on the host with the Numba CPU
  kernel: it costs a device-host round trip per call, at certificate checks only.

A :class:`CudaGridKernels` belongs to the device that is current when it is made: its
:meth:`~CudaGridKernels.session` (the solve) and every method run with that device current
(allocations, CuPy reductions and DCTs there), and every launch runs on the device of its
arrays (:func:`otgrid._device.launch`), whichever device the caller has made current.

Without a GPU the class runs under numba's CUDA simulator (``NUMBA_ENABLE_CUDASIM=1`` set before
``numba.cuda`` is first imported) on NumPy arrays, which is how it is tested on CI; otherwise it
raises ``RuntimeError`` with the reason (never a silent fallback to the CPU).
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

from otgrid._device import (
    array_module,
    fft_module,
    is_cupy_array,
    launch,
    require_cuda,
    simulator_enabled,
)
from otgrid.critic import operators as ops
from otgrid.critic.backend_numpy import GridKernels

__all__ = ["CudaGridKernels"]


def _on_own_device(method: Callable) -> Callable:
    """Run ``method`` with the object's device current (CuPy allocates and computes there)."""

    @functools.wraps(method)
    def wrapper(self: CudaGridKernels, *args: Any, **kwargs: Any) -> Any:
        if self.device is None:
            return method(self, *args, **kwargs)
        with self.xp.cuda.Device(self.device):
            return method(self, *args, **kwargs)

    return wrapper


class CudaGridKernels(GridKernels):
    """The loop body of the solver on a CUDA device, for one grid (1D or 2D), norm and dtype.

    Arrays carry a leading batch axis ``B``: grid functions ``(B, *shape)``, flows
    ``(B, ndim, *shape)``, device arrays of ``xp`` (CuPy on a GPU, NumPy under the simulator).
    Steps ``tau``, ``sigma``: arrays ``(B,)`` (host or device). Reductions return float64 NumPy
    arrays ``(B,)``.

    Parameters
    ----------
    shape : tuple of int
        Grid shape (1 or 2 axes, at least 2 cells each).
    dx : sequence of float
        Cell sizes.
    norm : {"euclidean", "cityblock"}
        Pointwise norm of the critic constraint.
    dtype : numpy dtype
        Working precision of the iterates (float32 or float64).

    Raises
    ------
    RuntimeError
        When no usable CUDA device is present (and the simulator is not enabled); the message
        says why (:func:`otgrid._device.cuda_status`).
    ValueError
        For a grid with more than 2 axes or a dtype other than float32/float64.
    """

    name = "cuda"
    # float64 transforms: float32 ones (as on the CPU) have not been measured on a GPU
    fast_poisson = False

    def __init__(self, shape: Sequence[int], dx: Sequence[float], norm: str, dtype: Any) -> None:
        require_cuda()
        super().__init__(shape, dx, norm, dtype)
        if self.ndim not in (1, 2):
            raise ValueError(f"backend='cuda' supports 1D and 2D grids; this grid has "
                             f"{self.ndim} axes. Use backend='numpy' (any number of axes).")
        if self.dtype not in (np.float32, np.float64):
            raise ValueError(f"backend='cuda' works in float32 or float64; got {self.dtype}.")
        from otgrid.kernels import critic_cuda as k

        self.xp = array_module()
        self._fft = fft_module(self.xp)
        self.n_cells = int(np.prod(self.shape))
        if self.ndim == 1:
            self._dual, self._res, self._gn = k.dual_step_1d, k.residual_1d, k.grad_norm_cells_1d
            self._gs, self._fn = k.grad_sq_cells_1d, k.flow_norm_cells_1d
            self._cf, self._ud = k.corrected_flow_1d, k.unit_directions_1d
        else:
            self._dual, self._res, self._gn = k.dual_step_2d, k.residual_2d, k.grad_norm_cells_2d
            self._gs, self._fn = k.grad_sq_cells_2d, k.flow_norm_cells_2d
            self._cf, self._ud = k.corrected_flow_2d, k.unit_directions_2d
        self._steps: dict[tuple, Any] = {}
        # the device current now (None under the simulator): the solve's arrays live there
        self.device = None if simulator_enabled() else self.xp.cuda.Device().id

    def _on_device(self) -> Any:
        """Context in which CuPy allocates on this object's device (none under the simulator)."""
        return contextlib.nullcontext() if self.device is None else self.xp.cuda.Device(
            self.device)

    @contextlib.contextmanager
    def session(self) -> Iterator[None]:
        """Context in which the loop runs: on this object's device (kernels use CuPy's stream)."""
        with self._on_device():
            yield

    # -- arrays --------------------------------------------------------------------------------
    @_on_own_device
    def to_device(self, a: Any, dtype: Any = None) -> Any:
        """A contiguous copy of ``a`` (NumPy or CuPy) on this object's device, in ``dtype``
        (default: the working one)."""
        return self.xp.array(a, dtype=self.dtype if dtype is None else dtype, order="C")

    def to_host(self, a: Any) -> np.ndarray:
        """The array as a NumPy array on the host."""
        return a.get() if is_cupy_array(a) else np.asarray(a)

    def _h(self, dt: np.dtype) -> tuple:
        """``1 / dx_k`` as scalars of ``dt`` (keeps the kernels' arithmetic in that precision)."""
        return tuple(dt.type(h) for h in self.inv_dx)

    def _device_steps(self, steps: Any, dt: np.dtype) -> Any:
        """A device copy of per-problem steps in ``dt``, cached by value (uploaded on change)."""
        if is_cupy_array(steps):
            return steps.astype(dt, copy=False)
        host = np.ascontiguousarray(steps, dtype=dt)
        key = (dt.str, host.tobytes())
        dev = self._steps.get(key)
        if dev is None:
            if len(self._steps) > 8:
                self._steps.clear()
            dev = self._steps[key] = self.xp.asarray(host)
        return dev

    def _per_cell(self, a: Any) -> Any:
        """A float64 scratch array ``(B, n_cells)`` for per-cell values before a reduction."""
        return self.xp.empty((a.shape[0], self.n_cells), dtype=np.float64)

    @_on_own_device
    def dot(self, a: Any, b: Any) -> np.ndarray:
        """``sum_i a_i b_i`` per problem, accumulated in float64 on the device."""
        nb = a.shape[0]
        prod = (a.reshape(nb, -1).astype(np.float64, copy=False)
                * b.reshape(nb, -1).astype(np.float64, copy=False))
        return self.to_host(prod.sum(axis=1))

    def sq_norm(self, a: Any) -> np.ndarray:
        """``sum_i a_i^2`` per problem, in float64."""
        return self.dot(a, a)

    # -- the Poisson solve ---------------------------------------------------------------------
    @_on_own_device
    def _solve(self, r: Any, inv_dx: tuple) -> Any:
        """Zero-mean solution ``u`` of ``D^T D u = r`` per problem on the grid of inverse cell
        sizes ``inv_dx`` (DCT-II over the grid axes)."""
        key = (np.dtype(r.dtype), inv_dx)
        inv = self._inv_lam.get(key)
        if inv is None:
            inv = self._inv_lam[key] = self.xp.asarray(
                ops.inverse_eigenvalues(self.shape, inv_dx, r.dtype))
        axes = tuple(range(1, 1 + self.ndim))
        rh = self._fft.dctn(r, type=2, norm="ortho", axes=axes)
        rh *= inv
        return self._fft.idctn(rh, type=2, norm="ortho", axes=axes, overwrite_x=True)

    # -- loop body -----------------------------------------------------------------------------
    @_on_own_device
    def dual_step(self, f: Any, u: Any, y: Any, f_out: Any, tau: Any, sigma: Any,
                  rho: float = 1.0) -> None:
        """The step relaxed by ``rho`` (1: the plain step): ``f_out = f + rho tau u``;
        ``y <- y + rho (shrink(y + sigma D(f + 2 tau u), sigma) - y)`` in place."""
        dt = np.dtype(f.dtype)
        launch(self._dual, f.size, f, u, y, f_out, self._device_steps(tau, dt),
               self._device_steps(sigma, dt), dt.type(rho), *self._h(dt),
               *(dt.type(w) for w in (self.axis_weights if self.ndim == 2 else ())), self.iso)

    @_on_own_device
    def residual(self, c: Any, y: Any, r: Any) -> None:
        """``r = c - D^T y`` in place."""
        launch(self._res, c.size, c, y, r, *self._h(c.dtype))

    # -- certificate and restarts --------------------------------------------------------------
    @_on_own_device
    def max_grad_norm(self, f: Any) -> np.ndarray:
        """``max_i |(Df)_i|`` in the constraint norm, per problem."""
        out = self._per_cell(f)
        launch(self._gn, f.size, f, out, *self._h(f.dtype), self.iso)
        return self.to_host(out.max(axis=1))

    @_on_own_device
    def grad_sq(self, f: Any) -> np.ndarray:
        """``sum_i |(Df)_i|_2^2`` per problem."""
        out = self._per_cell(f)
        launch(self._gs, f.size, f, out, *self._h(f.dtype))
        return self.to_host(out.sum(axis=1))

    @_on_own_device
    def flow_cost(self, y: Any, u: Any) -> np.ndarray:
        """``sum_i |y_i + (Du)_i|`` in the flow norm, per problem (float64 accumulation)."""
        out = self._per_cell(u)
        launch(self._fn, u.size, y, u, out, *self._h(u.dtype), self.iso)
        return self.to_host(out.sum(axis=1))

    @_on_own_device
    def corrected_flow(self, y: Any, u: Any) -> Any:
        """``y + D u`` (a new device array)."""
        out = self.xp.empty_like(y)
        launch(self._cf, u.size, y, u, out, *self._h(u.dtype))
        return out

    @_on_own_device
    def flow_critic(self, yc: Any) -> Any:
        """Critic from the directions of a feasible flow (see :meth:`GridKernels.flow_critic`).

        All on the device: the flow's per-cell norms and their maximum per problem, the unit
        directions above ``1e-9`` of that maximum, their ``D^T`` and one Poisson solve.
        """
        nb = yc.shape[0]
        zeros = self.xp.zeros((nb, *self.shape), dtype=yc.dtype)
        norms = self._per_cell(zeros)
        launch(self._fn, zeros.size, yc, zeros, norms, *self._h(yc.dtype), self.iso)
        top = norms.max(axis=1)
        yhat = self.xp.empty_like(yc)
        launch(self._ud, zeros.size, yc, top, yhat, self.iso)
        rhs = self.xp.empty_like(zeros)
        self.residual(zeros, yhat, rhs)  # rhs = -D^T yhat
        rhs *= -1
        return self.poisson(rhs)

    @_on_own_device
    def _on_host(self, sweep: Callable[[np.ndarray], Any], f: Any) -> Any:
        """``sweep`` (a certificate sweep of the host class) of ``f``, brought to the host
        and its result (an array, a list of arrays or None) back to the device (a round trip,
        at checks only)."""
        g = sweep(np.ascontiguousarray(self.to_host(f)))
        if isinstance(g, list):
            return [self.to_device(x, dtype=x.dtype) for x in g]
        return None if g is None else self.to_device(g, dtype=g.dtype)

    def level_rescale(self, f: Any) -> Any:
        """The level-rescaled critic of ``f``, on the host with the Numba CPU kernel (its
        histogram of slopes is a sequential pass) and back to the device; checks only."""
        return self._on_host(super().level_rescale, f)

    def ray_critics(self, f: Any) -> list[Any]:
        """The ray critics of ``f`` (sequential sweeps), on the host with the Numba CPU kernel
        and back to the device; checks only."""
        return self._on_host(super().ray_critics, f)

    def ascend(self, g: Any, c: Any, sweeps: int | None = None) -> Any:
        """The feasible ascent of the critics ``g`` (:meth:`GridKernels.ascend`), on the host
        with the Numba CPU kernel (Gauss-Seidel sweeps) and back to the device; checks only."""
        c_host = np.ascontiguousarray(self.to_host(c))
        return self._on_host(
            lambda gh: super(CudaGridKernels, self).ascend(gh, c_host, sweeps), g)

    def descend(self, p: Any, own: bool = False) -> Any:
        """The flows' descent (:meth:`GridKernels.descend`), on the host with the Numba CPU
        kernel (Gauss-Seidel sweeps) and back to the device; checks only."""
        return self._on_host(lambda ph: super(CudaGridKernels, self).descend(ph, own=own), p)

    def repair(self, f: Any) -> Any:
        """A feasible critic near ``f`` by the sequential sweep, run on the host (a round trip).

        The sweep of ``otgrid.kernels.critic_numba.repair_critic_{1d,2d}`` visits the cells in
        order, each depending on its already final forward neighbours, so it has no one-thread-
        per-cell form; it runs on the host with the Numba CPU kernel (the code every backend
        uses) and the result goes back to the device. Called at certificate checks only.
        """
        return self._on_host(super().repair, f)
