"""Training generators with an exact critic: SCO, its proximal variant, the smoothed-WGAN step.

- :func:`fit` (:mod:`~otgrid.sco.loop`): Pinetz et al.'s Sequential Convex Optimization. Each
  step solves the exact critic (:func:`otgrid.solve_critic`, warm-started), moves the
  generator up its interpolant (:func:`sco_gradient`, :mod:`~otgrid.sco.gradient`) with the
  optimizers of :mod:`~otgrid.sco.optim` (optionally several relaxed Wasserstein-proximal
  steps, :class:`WassersteinProx`), recomputes the generator's masses, and records an
  :class:`SCOStep` in the :class:`SCOResult` (:mod:`~otgrid.sco.result`).
- :func:`fit_smoothed` (:mod:`~otgrid.sco.smoothed`): Sanjabi et al.'s smoothed-WGAN step on
  minibatches, through :func:`otgrid.sinkhorn` / :func:`otgrid.smooth_ot`; no grid.
- Generators (:mod:`~otgrid.sco.generators`): the :class:`ParametricGenerator` protocol,
  :class:`LocationScale` and :class:`Affine` with exact cell masses; any ``torch.nn.Module``
  through :mod:`~otgrid.sco.generators_torch` (torch extra).
- :mod:`~otgrid.sco.plot` draws the learning curves of a fit.

Builds on the grid, the critic solver and the point-cloud solvers; the audit does not use it.
"""

from otgrid.sco import generators
from otgrid.sco.generators import Affine, LocationScale, ParametricGenerator
from otgrid.sco.gradient import sco_gradient
from otgrid.sco.loop import fit
from otgrid.sco.result import SCOResult, SCOStep, WassersteinProx
from otgrid.sco.smoothed import (
    SmoothedResult,
    SmoothedStep,
    fit_smoothed,
    smoothed_gradient,
    transfer_potentials,
)

__all__ = [
    "Affine",
    "LocationScale",
    "ParametricGenerator",
    "SCOResult",
    "SCOStep",
    "SmoothedResult",
    "SmoothedStep",
    "WassersteinProx",
    "fit",
    "fit_smoothed",
    "generators",
    "sco_gradient",
    "smoothed_gradient",
    "transfer_potentials",
]
