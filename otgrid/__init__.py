"""otgrid: exact optimal transport in low dimension.

The optimal Wasserstein-1 critic of two measures on a 1D/2D grid, with certified bounds on W.

One subpackage per capability, each depending only on the ones before it:

- :mod:`otgrid.grid`: grids, distributions, datasets, the interpolant of a grid function;
- :mod:`otgrid.critic`: the certified Chambolle–Pock solver of the grid critic;
- :mod:`otgrid.pointcloud`: regularized OT between point clouds (Sinkhorn, smoothed duals);
- :mod:`otgrid.sco`: training generators with the exact critic (SCO, smoothed WGAN);
- :mod:`otgrid.auditing`: a critic against the optimal one, and the neural WGAN baselines;
- :mod:`otgrid.cli`: the ``otgrid`` command; :mod:`otgrid.plot`: every figure.

Below them: :mod:`otgrid.errors` and the private helpers (``_device``, ``_validation``,
``_threads``); the hot loops live in :mod:`otgrid.kernels`. The other top-level modules
(``otgrid.distributions``, ``otgrid.regularized``, ...) are the import paths of 0.1.0, kept
working as aliases of the modules that now hold the code (see CHANGELOG.md).

>>> import otgrid as og
>>> grid = og.Grid([(-6, 8), (-6, 7)], (64, 64))
>>> mu = grid.discretize(og.Normal([0, 0], 1.0))
>>> nu = grid.discretize(og.Normal([2, 1], 1.0))
>>> res = og.solve_critic(mu, nu, grid, tol=1e-4)
>>> res.lower <= res.upper
True
"""

from otgrid import sco
from otgrid._version import __version__
from otgrid.auditing import AuditReport, audit
from otgrid.critic import CheckInfo, CriticResult, SolveHistory, available_backends, solve_critic
from otgrid.errors import (
    ConvergenceWarning,
    InsufficientMemoryError,
    OutsideMassError,
    OutsideMassWarning,
)
from otgrid.grid import (
    Distribution,
    Empirical,
    Grid,
    GridFunction,
    Mixture,
    Normal,
    PointMass,
    Uniform,
    datasets,
)
from otgrid.pointcloud import RegularizedResult, sinkhorn, smooth_ot
from otgrid.sco import generators

#: Another name for :class:`PointMass` -- the same class (``og.Dirac is og.PointMass``), under
#: the name the papers give a measure with all its mass at one point. ``og.Dirac(location)``
#: (a float, or a point of shape ``(ndim,)``) discretizes to mass 1 in the cell that holds
#: ``location``; see :class:`PointMass` for its methods.
#:
#: Examples
#: --------
#: >>> import otgrid as og
#: >>> og.Grid((0, 1), 4).discretize(og.Dirac(0.3)).tolist()
#: [0.0, 1.0, 0.0, 0.0]
#: >>> og.Dirac is og.PointMass
#: True
Dirac = PointMass

__all__ = [
    "AuditReport",
    "CheckInfo",
    "ConvergenceWarning",
    "CriticResult",
    "Dirac",
    "Distribution",
    "Empirical",
    "Grid",
    "GridFunction",
    "InsufficientMemoryError",
    "Mixture",
    "Normal",
    "OutsideMassError",
    "OutsideMassWarning",
    "PointMass",
    "RegularizedResult",
    "SolveHistory",
    "Uniform",
    "__version__",
    "audit",
    "available_backends",
    "datasets",
    "generators",
    "sco",
    "sinkhorn",
    "smooth_ot",
    "solve_critic",
]
