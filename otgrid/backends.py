"""Backends of the grid critic: one object per (backend, grid, norm, dtype) exposing the loop body.

The Chambolle–Pock driver in :mod:`otgrid.critic` is written once; it calls the methods of a
:class:`GridKernels` object. ``"numpy"`` implements them with the readable operators of
:mod:`otgrid.operators` (any number of axes); ``"numba"`` with the fused kernels of
``otgrid.kernels.grid_numba`` (1D and 2D); ``"cuda"`` with the numba-cuda kernels of
``otgrid.kernels.grid_cuda`` on CuPy arrays (:mod:`otgrid.backends_cuda`). All use the same DCT
Poisson solve.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from typing import Literal

import numpy as np

from otgrid import operators as ops

# Problems (grid cells x batch) smaller than this run the Numba kernels and the DCTs on one
# thread: below it a stencil pass takes microseconds and waking a second thread costs more (by
# orders of magnitude on a loaded machine). SciPy's DCT with workers=2 costs 0.50 ms instead of
# 0.08 ms at 64^2 and 0.75 ms instead of 0.25 ms at 128^2 (thread start-up per call), breaks
# even at 256^2 and wins from 512^2 on (1.8 ms instead of 3.0 ms), measured on 2 cores.
PARALLEL_MIN_CELLS = 1 << 18

# ``backend="auto"`` picks the GPU for problems (cells x batch) at least this large: below it
# the launches and the host round trips at checks cost more than the CPU's whole iteration.
CUDA_AUTO_MIN_CELLS = 1 << 16

__all__ = ["BACKENDS", "GridKernels", "available_backends", "make_kernels", "resolve_backend"]

Backend = Literal["auto", "numpy", "numba", "cuda"]
BACKENDS: tuple[str, ...] = ("auto", "numpy", "numba", "cuda")


def available_backends() -> dict[str, str]:
    """Which backends can run here, with the reason when one cannot.

    Returns
    -------
    dict
        Backend name -> ``"available"`` or a short reason why not.
    """
    out = {"numpy": "available"}
    try:
        import numba  # noqa: F401

        out["numba"] = "available"
    except ImportError as exc:  # pragma: no cover - numba is a runtime dependency
        out["numba"] = f"unavailable: numba does not import ({exc})"
    from otgrid._device import cuda_status

    out["cuda"] = cuda_status()
    return out


def resolve_backend(backend: str, ndim: int, cells: int = 0) -> str:
    """Turn ``"auto"`` into a concrete backend and check an explicit one can run.

    Parameters
    ----------
    backend : {"auto", "numpy", "numba", "cuda"}
        The requested backend.
    ndim : int
        Number of grid axes.
    cells : int, optional
        Cells of the whole problem (grid cells times batch size), for ``"auto"``.

    Returns
    -------
    str
        ``"auto"`` picks ``"cuda"`` for 1D and 2D problems of at least
        ``CUDA_AUTO_MIN_CELLS`` cells when a GPU is usable (:func:`otgrid._device.cuda_status`
        says exactly ``"available"``; never the simulator), ``"numba"`` for other 1D and 2D
        problems and ``"numpy"`` otherwise.

    Raises
    ------
    ValueError
        For an unknown backend, or ``"numba"``/``"cuda"`` on a grid with more than 2 axes.
    RuntimeError
        For ``"cuda"`` when no GPU can be used here (the message says why).
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(map(repr, BACKENDS))}; "
                         f"got {backend!r}.")
    if backend == "auto":
        if ndim not in (1, 2):
            return "numpy"
        if cells >= CUDA_AUTO_MIN_CELLS:
            from otgrid._device import cuda_status

            if cuda_status() == "available":
                return "cuda"
        return "numba"
    if backend in ("numba", "cuda") and ndim not in (1, 2):
        raise ValueError(f"backend={backend!r} supports 1D and 2D grids; this grid has {ndim} "
                         "axes. Use backend='numpy' (any number of axes).")
    if backend == "cuda":
        from otgrid._device import require_cuda

        require_cuda()
    return backend


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
    """

    name = "numpy"
    xp = np

    def __init__(self, shape: Sequence[int], dx: Sequence[float], norm: str, dtype) -> None:
        self.shape = tuple(int(n) for n in shape)
        self.ndim = len(self.shape)
        self.inv_dx = tuple(1.0 / float(h) for h in dx)
        self.norm = norm
        self.iso = norm == "euclidean"
        self.dtype = np.dtype(dtype)
        self._inv_lam = {}
        self.workers = 1

    @contextlib.contextmanager
    def session(self) -> Iterator[None]:
        """Context in which the loop runs (the Numba backend sets its thread count here)."""
        yield

    def with_batch(self, nb: int) -> None:
        """Tell the kernels how many problems run together (the Numba backend picks threads)."""

    # -- arrays --------------------------------------------------------------------------------
    def to_device(self, a: np.ndarray, dtype=None) -> np.ndarray:
        """A contiguous working copy of a host array (in ``dtype``, default the working one)."""
        return np.array(a, dtype=self.dtype if dtype is None else dtype, order="C")

    def to_host(self, a) -> np.ndarray:
        """The array as a NumPy array on the host."""
        return np.asarray(a)

    def dot(self, a, b) -> np.ndarray:
        """``sum_i a_i b_i`` per problem, in float64."""
        nb = a.shape[0]
        return np.einsum("bi,bi->b", a.reshape(nb, -1), b.reshape(nb, -1), dtype=np.float64)

    def sq_norm(self, a) -> np.ndarray:
        """``sum_i a_i^2`` per problem, in float64."""
        return self.dot(a, a)

    # -- shared: the Poisson solve -----------------------------------------------------------
    def poisson(self, r: np.ndarray) -> np.ndarray:
        """Zero-mean solution ``u`` of ``D^T D u = r`` per problem, dtype of ``r`` (DCT-II)."""
        dt = r.dtype
        if dt not in self._inv_lam:
            self._inv_lam[dt] = ops.inverse_eigenvalues(self.shape, self.inv_dx, dt)
        return ops.poisson_neumann(r, self._inv_lam[dt], workers=self.workers)

    # -- loop body ---------------------------------------------------------------------------
    def dual_step(self, f, u, y, f_out, tau, sigma) -> None:
        """``f_out = f + tau u``; ``y <- shrink(y + sigma D(f + 2 tau u), sigma)`` in place."""
        for b in range(f.shape[0]):
            t, s = f.dtype.type(tau[b]), f.dtype.type(sigma[b])
            fb = f[b] + (2 * t) * u[b]
            np.add(f[b], t * u[b], out=f_out[b])
            y[b] = ops.shrink(y[b] + s * ops.grad(fb, self.inv_dx), s, self.norm)

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

    def repair(self, f: np.ndarray) -> np.ndarray | None:
        """A critic near ``f`` made feasible by one sequential sweep (1D, 2D); None otherwise.

        Shared by every backend: it is part of the certificate, evaluated at checks only, and
        inherently sequential (see ``otgrid.kernels.grid_numba.repair_critic_2d``).
        """
        from otgrid.kernels import grid_numba as k

        g = np.empty_like(f)
        dx = tuple(1.0 / h for h in self.inv_dx)
        if self.ndim == 1:
            k.repair_critic_1d(f, g, dx[0])
        elif self.ndim == 2:
            k.repair_critic_2d(f, g, dx[0], dx[1], self.iso)
        else:
            return None
        return g


class NumbaGridKernels(GridKernels):
    """The loop body with the fused Numba kernels of ``otgrid.kernels.grid_numba``."""

    name = "numba"

    def __init__(self, shape, dx, norm, dtype) -> None:
        super().__init__(shape, dx, norm, dtype)
        from otgrid.kernels import grid_numba as k

        self._k = k
        self.threads = 1
        self.workers = 1
        self.with_batch(1)
        if self.ndim == 1:
            self._d, self._r, self._g = k.dual_step_1d, k.residual_1d, k.grad_sq_1d
            self._m, self._c, self._cf = k.max_grad_norm_1d, k.flow_cost_1d, k.corrected_flow_1d
        elif self.ndim == 2:
            self._d, self._r, self._g = k.dual_step_2d, k.residual_2d, k.grad_sq_2d
            self._m, self._c, self._cf = k.max_grad_norm_2d, k.flow_cost_2d, k.corrected_flow_2d
        else:
            raise ValueError("the numba backend supports 1D and 2D grids only.")

    def with_batch(self, nb: int) -> None:
        """Use all threads (kernels and DCTs) when the passes are long enough to pay for them."""
        if int(np.prod(self.shape)) * nb >= PARALLEL_MIN_CELLS:
            self.threads = None
            self.workers = os.cpu_count() or 1

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

    def dual_step(self, f, u, y, f_out, tau, sigma) -> None:
        t = f.dtype.type
        self._d(f, u, y, f_out, tau.astype(f.dtype), sigma.astype(f.dtype),
                *map(t, self.inv_dx), self.iso)

    def residual(self, c, y, r) -> None:
        t = c.dtype.type
        self._r(c, y, r, *map(t, self.inv_dx))

    def max_grad_norm(self, f) -> np.ndarray:
        return self._m(f, *self.inv_dx, self.iso)

    def grad_sq(self, f) -> np.ndarray:
        return self._g(f, *self.inv_dx)

    def flow_cost(self, y, u) -> np.ndarray:
        return self._c(y, u, *self.inv_dx, self.iso)

    def corrected_flow(self, y, u) -> np.ndarray:
        out = np.empty_like(y)
        self._cf(y, u, out, *map(y.dtype.type, self.inv_dx))
        return out


def make_kernels(backend: str, shape, dx, norm: str, dtype) -> GridKernels:
    """Build the loop body for a concrete backend (``"numpy"``, ``"numba"`` or ``"cuda"``)."""
    if backend == "cuda":
        from otgrid.backends_cuda import CudaGridKernels

        return CudaGridKernels(shape, dx, norm, dtype)
    if backend == "numba":
        return NumbaGridKernels(shape, dx, norm, dtype)
    return GridKernels(shape, dx, norm, dtype)
