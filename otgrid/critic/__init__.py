"""The exact Wasserstein-1 critic on a grid: a certified Chambolle–Pock solver.

:func:`solve_critic` (:mod:`~otgrid.critic.solve`) validates the masses, picks a backend and a
start, runs the loop and packages a :class:`CriticResult` (:mod:`~otgrid.critic.result`).
How the parts call each other:

- :mod:`~otgrid.critic.multilevel` builds the start from the coarsened problem (recursively,
  by the same loop); a warm start or zeros otherwise;
- :mod:`~otgrid.critic.iterate` runs the preconditioned Chambolle–Pock loop on a batch, written
  once for every backend; it evaluates :mod:`~otgrid.critic.certificate` (bounds that hold
  whatever the iterate) at every check and :mod:`~otgrid.critic.restart` retunes the step;
- the loop body comes from :mod:`~otgrid.critic.backends`: ``"numpy"``
  (:mod:`~otgrid.critic.backend_numpy`, the readable reference, on the operators of
  :mod:`~otgrid.critic.operators`), ``"numba"`` and ``"cuda"`` (fused kernels of
  ``otgrid.kernels.critic_numba`` / ``critic_cuda``);
- :mod:`~otgrid.critic.plot` draws a result.
"""

from otgrid.critic.backends import available_backends
from otgrid.critic.result import CheckInfo, CriticResult, SolveHistory
from otgrid.critic.solve import solve_critic

__all__ = ["CheckInfo", "CriticResult", "SolveHistory", "available_backends", "solve_critic"]
