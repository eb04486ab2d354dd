"""otgrid: exact optimal transport in low dimension.

The optimal Wasserstein-1 critic of two measures on a 1D/2D grid, with certified bounds on W.

>>> import otgrid as og
>>> grid = og.Grid([(-4, 4), (-4, 4)], (64, 64))
>>> mu = grid.discretize(og.Normal([0, 0], 1.0))
>>> nu = grid.discretize(og.Normal([2, 1], 1.0))
>>> res = og.solve_critic(mu, nu, grid, tol=1e-4)
>>> res.lower <= res.upper
True
"""

from otgrid import datasets, generators, sco
from otgrid.backends import available_backends
from otgrid.critic import CheckInfo, CriticResult, SolveHistory, solve_critic
from otgrid.critic_audit import AuditReport, audit
from otgrid.distributions import (
    Dirac,
    Distribution,
    Empirical,
    Mixture,
    Normal,
    PointMass,
    Uniform,
)
from otgrid.errors import ConvergenceWarning, OutsideMassWarning
from otgrid.grid import Grid
from otgrid.interp import GridFunction
from otgrid.regularized import RegularizedResult, sinkhorn, smooth_ot

__version__ = "0.1.0"

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
    "Mixture",
    "Normal",
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
