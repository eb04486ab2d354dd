"""The ``"cuda"`` backend of the point-cloud solvers: :class:`CudaCloudOps` and GPU detection.

The loop bodies of :mod:`otgrid.pointcloud.ops_numpy` run as the numba-cuda kernels of
``otgrid.kernels.pointcloud_cuda``; the drivers (Sinkhorn with Anderson acceleration, L-BFGS)
stay on the host and exchange only vectors of length ``n`` or ``m`` with the device per pass
(the ``n x m`` work stays on the GPU). The coordinates are copied to the device once per solve.

The ops belong to the device that is current when they are made (numba-cuda's current
context): the coordinates are copied there, and every later allocation and launch of the ops
(the solve, and :class:`~otgrid.pointcloud.result` methods that apply the plan afterwards) runs
there, whatever device is current then. Launch grids stay within CUDA's limits
(``launch_shape`` / ``apply_shape`` of the kernels; the kernels stride over the rest), so any
number of vectors can be applied at once.

Detection is :func:`otgrid._device.require_cuda` (a GPU with CuPy and numba-cuda, or the CUDA
simulator, ``NUMBA_ENABLE_CUDASIM=1``, where the kernels run on NumPy arrays). Asking for
``backend="cuda"`` without them raises :class:`RuntimeError` naming what is missing; there is
no silent fallback to the CPU.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import numpy as np

from otgrid.pointcloud.ops_numpy import COST_KINDS, CloudOps

__all__ = ["CudaCloudOps", "cuda_unavailable_reason"]


def cuda_unavailable_reason() -> str | None:
    """Why the ``"cuda"`` backend cannot run here, or ``None`` when it can.

    Uses :func:`otgrid._device.cuda_status` (a GPU with CuPy and numba-cuda, or the CUDA
    simulator).

    Returns
    -------
    str or None
        A sentence naming what is missing (numba-cuda, CuPy, a GPU or its driver).
    """
    from otgrid._device import cuda_status

    status = cuda_status()
    return None if status.startswith("available") else status.removeprefix("unavailable: ")


class CudaCloudOps(CloudOps):
    """The operations of :class:`otgrid.pointcloud.ops_numpy.CloudOps` as CUDA kernels.

    Parameters
    ----------
    x : ndarray, shape (B, n, d)
    y : ndarray, shape (B, m, d)
        Float64 coordinates on the host (copied to the device once).
    cost : {"euclidean", "sqeuclidean", "cityblock"}

    Raises
    ------
    RuntimeError
        If no CUDA device (or numba-cuda) is available.
    ValueError
        If the points have more than ``MAX_DIM`` (8) coordinates.
    """

    name = "cuda"

    def __init__(self, x: np.ndarray, y: np.ndarray, cost: str) -> None:
        from otgrid._device import require_cuda

        require_cuda()
        super().__init__(x, y, cost)
        from numba import cuda

        from otgrid.kernels import pointcloud_cuda as k

        if self.d > k.MAX_DIM:
            raise ValueError(f"backend='cuda' supports points of dimension <= {k.MAX_DIM}; got "
                             f"d = {self.d}. Use backend='numba'.")
        self._cuda, self._k = cuda, k
        self.kind = COST_KINDS[cost]
        # the device current now (the simulator's has no id: its one device is 0)
        self._gpu = cuda.gpus[getattr(cuda.get_current_device(), "id", 0)]
        with self._gpu:
            self.dx = cuda.to_device(np.ascontiguousarray(np.transpose(x, (0, 2, 1))))
            self.dy = cuda.to_device(np.ascontiguousarray(np.transpose(y, (0, 2, 1))))

    @contextlib.contextmanager
    def session(self) -> Iterator[None]:
        """Context in which a solve runs: numba-cuda's context of this object's device."""
        with self._gpu:
            yield

    def _dev(self, v: np.ndarray):
        return self._cuda.to_device(np.ascontiguousarray(v, dtype=np.float64))

    def _pts_dev(self, side: str):
        return (self.dx, self.dy) if side == "rows" else (self.dy, self.dx)

    def lse(self, side, h, shift, inv, want_cost=False, low=False):
        with self._gpu:
            return self._lse(side, h, shift, inv, want_cost)

    def _lse(self, side, h, shift, inv, want_cost):
        p, q = self._pts_dev(side)
        rows = p.shape[2]
        out = self._cuda.device_array((self.B, rows))
        mc = self._cuda.device_array((self.B, rows)) if want_cost else out
        blocks, threads = self._k.launch_shape(self.B, rows)
        self._k.lse_rows[blocks, threads](p, q, self._dev(h), self._dev(shift), self._dev(inv),
                                          self.kind, bool(want_cost), out, mc)
        return out.copy_to_host(), (mc.copy_to_host() if want_cost else None)

    def l2_dual(self, phi, psi, dphi, dpsi, wa, wb, inv, accurate=True):
        with self._gpu:
            return self._l2_dual(phi, psi, dphi, dpsi, wa, wb, inv)

    def _l2_dual(self, phi, psi, dphi, dpsi, wa, wb, inv):
        cuda, k = self._cuda, self._k
        d_phi, d_psi, d_wa, d_wb, d_inv = (self._dev(v) for v in (phi, psi, wa, wb, inv))
        row = cuda.device_array((self.B, self.n))
        rowtot = cuda.device_array((self.B, self.n, 3))
        col = cuda.device_array((self.B, self.m))
        blocks, threads = k.launch_shape(self.B, self.n)
        k.l2_rows[blocks, threads](self.dx, self.dy, d_phi, d_psi, self._dev(dphi),
                                   self._dev(dpsi), d_wa, d_wb, d_inv, self.kind, row, rowtot)
        blocks, threads = k.launch_shape(self.B, self.m)
        k.l2_cols[blocks, threads](self.dx, self.dy, d_phi, d_psi, d_wa, d_wb, d_inv,
                                   self.kind, col)
        tot = rowtot.copy_to_host().sum(axis=1)
        return row.copy_to_host(), col.copy_to_host(), tot[:, 0], tot[:, 1], tot[:, 2]

    def _apply_kernel(self, side, s, hv, wv, inv, mode, V):
        with self._gpu:
            p, q = self._pts_dev(side)
            rows, nv = p.shape[2], V.shape[1]
            out = self._cuda.device_array((self.B, rows, nv))
            grid, threads = self._k.apply_shape(self.B, rows, nv)
            self._k.apply_rows[grid, threads](p, q, self._dev(s), self._dev(hv), self._dev(wv),
                                              self._dev(inv), self.kind, mode, self._dev(V),
                                              out)
            return out.copy_to_host()

    def exp_apply(self, side, h, shift, inv, V):
        return self._apply_kernel(side, shift, h, h, inv, 0, V)

    def l2_apply(self, side, phi, psi, wb, inv, V):
        return self._apply_kernel(side, phi, psi, wb, inv, 1, V)
