"""The loop body of the critic solver with the fused Numba kernels (1D and 2D grids)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import numpy as np

from otgrid.critic.backend_numpy import GridKernels

__all__ = ["PARALLEL_MIN_CELLS", "NumbaGridKernels"]

# Problems (grid cells x batch) smaller than this run the Numba kernels and the DCTs on one
# thread: below it a stencil pass takes microseconds and waking a second thread costs more (by
# orders of magnitude on a loaded machine). SciPy's DCT with workers=2 costs 0.50 ms instead of
# 0.08 ms at 64^2 and 0.75 ms instead of 0.25 ms at 128^2 (thread start-up per call), breaks
# even at 256^2 and wins from 512^2 on (1.8 ms instead of 3.0 ms), measured on 2 cores.
PARALLEL_MIN_CELLS = 1 << 18


class NumbaGridKernels(GridKernels):
    """The loop body with the fused Numba kernels of ``otgrid.kernels.critic_numba``."""

    name = "numba"

    def __init__(self, shape, dx, norm, dtype) -> None:
        super().__init__(shape, dx, norm, dtype)
        from otgrid.kernels import critic_numba as k

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
