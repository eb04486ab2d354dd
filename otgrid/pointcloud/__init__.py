"""Regularized optimal transport between point clouds, in memory linear in the number of points.

- :func:`sinkhorn` (:mod:`~otgrid.pointcloud.sinkhorn`): entropic OT by log-domain Sinkhorn,
  with eps-scaling, a multiscale start, Anderson acceleration and a Newton polish
  (:mod:`~otgrid.pointcloud.sinkhorn_accel`), and a coarse correction on spatial clusters
  (:mod:`~otgrid.pointcloud.coarse`);
- :func:`smooth_ot` (:mod:`~otgrid.pointcloud.smooth`): the L2- or KL-regularized dual of
  Sanjabi et al., solved by :mod:`~otgrid.pointcloud.smooth_dual` (L-BFGS, semismooth Newton);
- both validate their input into a problem record (:mod:`~otgrid.pointcloud.problem`), run
  every sum over pairs through the operations of one backend
  (:mod:`~otgrid.pointcloud.backends`: NumPy reference :mod:`~otgrid.pointcloud.ops_numpy`,
  fused Numba :mod:`~otgrid.pointcloud.ops_numba`, CUDA :mod:`~otgrid.pointcloud.ops_cuda`)
  and return a :class:`RegularizedResult` (:mod:`~otgrid.pointcloud.result`).

Depends only on the shared helpers and ``otgrid.kernels.pointcloud_*``; independent of the grid.
"""

from otgrid.pointcloud.result import RegularizedHistory, RegularizedInfo, RegularizedResult
from otgrid.pointcloud.sinkhorn import sinkhorn
from otgrid.pointcloud.smooth import smooth_ot

__all__ = ["RegularizedHistory", "RegularizedInfo", "RegularizedResult", "sinkhorn", "smooth_ot"]
