"""Audit a critic against the optimal one, and the neural WGAN baselines to audit.

- :func:`audit` (:mod:`~otgrid.auditing.metrics`): solves the exact critic with
  :func:`otgrid.solve_critic`, evaluates the user's critic through
  :mod:`~otgrid.auditing.critics` (a NumPy callable or a ``torch.nn.Module``), computes the
  metrics and returns an :class:`AuditReport` (:mod:`~otgrid.auditing.report`: table, JSON, and
  the figure of :mod:`~otgrid.auditing.plot`).
- :mod:`~otgrid.auditing.baselines`: WGAN critics (weight clipping, gradient penalty, Lipschitz
  penalty, spectral normalisation) trained on two distributions; :mod:`~otgrid.auditing.gan`:
  the full GANs (torch extra, imported only when used).

Builds on the grid and the critic solver.
"""

from otgrid.auditing.metrics import audit
from otgrid.auditing.report import AuditReport

__all__ = ["AuditReport", "audit"]
