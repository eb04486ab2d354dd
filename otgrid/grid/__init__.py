"""Grids and measures: where every exact computation of otgrid starts.

- :mod:`~otgrid.grid.grid`: :class:`Grid` (bounds, cells, spacing) turns a distribution into
  exact cell masses (``discretize``) or samples into a histogram (``histogram``).
- :mod:`~otgrid.grid.distributions`: :class:`Normal`, :class:`Uniform`, :class:`PointMass`,
  :class:`Empirical`, :class:`Mixture`, each able to integrate itself over cells.
- :mod:`~otgrid.grid.datasets`: the toy datasets of the WGAN papers, with exact cell masses.
- :mod:`~otgrid.grid.funnels`: :class:`FunnelPair`, benchmark pairs with a known optimal critic
  and :math:`W_1` (Korotin et al., 2022).
- :mod:`~otgrid.grid.interp`: :class:`GridFunction`, a grid function (a critic) as a function
  of points, with its gradient.
- :mod:`~otgrid.grid.spec`: the safe grammar ``"normal([0, 0], 1)"``, ``"8gaussians"``, ... that
  the command line parses into distributions.

Depends only on the shared helpers and the interpolation kernels; everything else builds on it.
"""

from otgrid.grid import datasets
from otgrid.grid.distributions import (
    Dirac,
    Distribution,
    Empirical,
    Mixture,
    Normal,
    PointMass,
    Uniform,
)
from otgrid.grid.funnels import FunnelPair
from otgrid.grid.grid import Grid
from otgrid.grid.interp import GridFunction
from otgrid.grid.spec import parse_distribution

__all__ = [
    "Dirac",
    "Distribution",
    "Empirical",
    "FunnelPair",
    "Grid",
    "GridFunction",
    "Mixture",
    "Normal",
    "PointMass",
    "Uniform",
    "datasets",
    "parse_distribution",
]
