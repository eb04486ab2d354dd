"""Which loop body runs a point-cloud solve: the factory of the per-backend operations."""

from __future__ import annotations

import numpy as np

from otgrid.pointcloud.ops_cuda import CudaCloudOps
from otgrid.pointcloud.ops_numba import NumbaCloudOps
from otgrid.pointcloud.ops_numpy import CloudOps

__all__ = ["make_ops"]


def make_ops(backend: str, x: np.ndarray, y: np.ndarray, cost: str,
             many_passes: bool = False) -> CloudOps:
    """The loop body for a concrete backend (``"numpy"``, ``"numba"`` or ``"cuda"``).

    ``many_passes``: the caller will run the L2 kernels many times (the smooth dual), so the
    Numba backend stores euclidean costs of small problems instead of recomputing them.
    """
    if backend == "numba":
        return NumbaCloudOps(x, y, cost, many_passes)
    if backend == "cuda":
        return CudaCloudOps(x, y, cost)
    return CloudOps(x, y, cost)
