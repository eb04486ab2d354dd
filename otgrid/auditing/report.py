"""The result of an audit: :class:`AuditReport`, its table, its JSON and its figure."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from otgrid.grid.grid import Grid

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from otgrid.critic.result import CriticResult

__all__ = ["AuditReport"]

_TABLE = (
    # (key, label, format)
    ("w_star", "W* (exact, grid)", ".6g"),
    ("w_star_lower", "  certified lower bound", ".6g"),
    ("w_star_upper", "  certified upper bound", ".6g"),
    ("w_critic", "E_mu f - E_nu f (quadrature)", ".6g"),
    ("w_critic_samples", "E_mu f - E_nu f (samples)", ".6g"),
    ("w_ratio", "w_ratio (quadrature)", ".4f"),
    ("w_ratio_samples", "w_ratio (samples)", ".4f"),
    ("lipschitz", "lipschitz (max |grad f|)", ".4f"),
    ("lipschitz_grid", "  over the grid", ".4f"),
    ("lipschitz_samples", "  over the sample points", ".4f"),
    ("frac_above_area", "  fraction > 1+tau, by area", ".4f"),
    ("frac_above_mu", "  fraction > 1+tau, by mu", ".4f"),
    ("frac_above_nu", "  fraction > 1+tau, by nu", ".4f"),
    ("frac_above_between", "  fraction > 1+tau, between mu and nu", ".4f"),
    ("w_ratio_over_lipschitz", "w_ratio / lipschitz", ".4f"),
    ("grad_cosine", "grad_cosine (E_nu, L2)", ".4f"),
    ("grad_cosine_determined", "  where the grid determines grad f*", ".4f"),
    ("grad_cosine_pointwise", "  mean pointwise cosine", ".4f"),
    ("grad_l2", "grad_l2 (E_nu |grad f - grad f*|^2)", ".4g"),
    ("grad_l2_determined", "  where the grid determines grad f*", ".4g"),
    ("determined_mass", "nu mass where grad f* is determined", ".4f"),
    ("sink_mass", "nu mass with a radial (sink) reference", ".4f"),
    ("flow_coverage", "nu mass with a reference (flow > 0)", ".4f"),
    ("shape_error", "shape_error", ".4f"),
    ("shape_scale", "  best scale s", ".4g"),
    ("shape_shift", "  best shift c", ".4g"),
    ("generator_grad_rel_error", "generator_gradient relative error", ".4f"),
    ("generator_grad_cosine", "generator_gradient cosine", ".4f"),
)


@dataclass(frozen=True, eq=False)
class AuditReport:
    """Result of :func:`audit`: how a critic compares with the optimal critic on a grid.

    Every metric is a float (NaN where it is undefined, e.g. ratios when ``W* = 0``, and the
    generator metrics without a generator).

    Attributes
    ----------
    w_star, w_star_lower, w_star_upper : float
        The exact grid W1 (midpoint of the certificate) and its certified bounds.
    w_critic, w_critic_samples : float
        ``E_mu f - E_nu f`` by quadrature over the grid masses (``f`` at the cell centres) and
        by the mean over ``n_samples`` samples of each measure.
    w_ratio, w_ratio_samples : float
        The two above divided by ``w_star``; their difference is sampling error.
    lipschitz : float
        ``max |grad f|`` over the grid centres and the sample points; ``lipschitz_grid`` and
        ``lipschitz_samples`` are the two parts.
    frac_above_area, frac_above_mu, frac_above_nu, frac_above_between : float
        Fraction where ``|grad f| > 1 + tau``: of the grid cells (area), of the mass of ``mu``
        and of ``nu`` (grid masses), and of the points ``t x + (1 - t) y`` with ``x ~ mu``,
        ``y ~ nu`` paired at random and ``t ~ U(0, 1)`` (the points of a gradient penalty).
    w_ratio_over_lipschitz : float
        ``w_ratio / lipschitz``: the ratio of the critic rescaled to be 1-Lipschitz (a lower
        bound on what it certifies about ``W``).
    grad_cosine, grad_l2 : float
        Korotin et al.'s gradient metrics under ``nu``, at the samples of ``nu``: the
        :math:`L^2(\\nu)` cosine ``E<grad f, grad f*> / sqrt(E|grad f|^2 E|grad f*|^2)`` and
        ``E_nu |grad f - grad f*|^2``, where ``grad f*`` is the best available reference at
        each sample (:mod:`otgrid.auditing.reference`): the unit direction against the
        optimal flow, interpolated from the cell centres like the critic, or the radial
        direction from a located sink; samples with no reference (no transport through them)
        are left out. ``grad_cosine_pointwise`` is the mean pointwise cosine.
    grad_cosine_determined, grad_l2_determined : float
        The same on the samples where the grid determines the reference (the cell directions
        around the sample agree); the headline values above include the rest.
    determined_mass, sink_mass, flow_coverage : float
        Fractions of the samples of ``nu``: where the reference is determined by the grid,
        where it is radial around a located sink, and where there is one at all.
    shape_error, shape_scale, shape_shift : float
        ``min_{s, c} |s f + c - f*| / |f* - mean f*|`` in :math:`L^2((\\mu + \\nu)/2)` (the
        support of ``mu + nu`` only), and the minimising ``s`` and ``c``.
    generator_grad_rel_error, generator_grad_cosine : float
        With a generator: ``|G_f - G_*| / |G_*|`` and the cosine between
        ``G_f = E_z J_theta(z)^T grad f(g(z))`` and ``G_*``, the same with the interpolant of
        ``f*``.
    tau, n_samples, seed, gradient_method, critic_kind, exact_converged, exact_gap
        Settings and provenance.
    exact_seconds : float
        Wall time of the exact solve at the resolution reported (``exact.seconds``).
    levels : tuple of dict
        One row per resolution audited (one unless ``resolution="auto"``): ``shape``,
        ``solve_seconds``, ``seconds`` (solve and metrics), ``w_star`` and the headline
        metrics ``grad_cosine``, ``grad_cosine_determined``, ``determined_mass``, ``w_ratio``.
        The report's other fields are those of the last row.
    refinement : {"fixed", "converged", "time_budget", "max_cells"}
        Why there are no more rows: the grid was fixed (``resolution="grid"``), the metrics
        stopped changing, the next resolution would exceed ``time_budget``, or the largest
        grid was reached.
    exact : CriticResult
        The exact solve (critic, flow, certificate).
    values, optimal_values : ndarray, shape grid.shape
        ``f`` and ``f*`` at the cell centres.
    grads, optimal_grads : ndarray, shape (ndim, \\*grid.shape)
        ``grad f`` at the cell centres and the reference ``grad f*`` at the cell centres (from
        the cell-centred flow; NaN where the flow is negligible).
    reference_kind : ndarray of int8, shape grid.shape
        The kind of reference at each cell centre: ``KIND_DETERMINED``, ``KIND_SINK``,
        ``KIND_UNDETERMINED`` or ``KIND_NONE`` of :mod:`otgrid.auditing.reference`.
    sinks : ndarray, shape (k, ndim)
        The located sink apexes.
    mu, nu : ndarray, shape grid.shape
        The grid masses.
    """

    w_star: float
    w_star_lower: float
    w_star_upper: float
    w_critic: float
    w_critic_samples: float
    w_ratio: float
    w_ratio_samples: float
    lipschitz: float
    lipschitz_grid: float
    lipschitz_samples: float
    frac_above_area: float
    frac_above_mu: float
    frac_above_nu: float
    frac_above_between: float
    w_ratio_over_lipschitz: float
    grad_cosine: float
    grad_cosine_pointwise: float
    grad_l2: float
    grad_cosine_determined: float
    grad_l2_determined: float
    determined_mass: float
    sink_mass: float
    flow_coverage: float
    shape_error: float
    shape_scale: float
    shape_shift: float
    generator_grad_rel_error: float
    generator_grad_cosine: float
    tau: float
    n_samples: int
    seed: int | None
    gradient_method: str
    critic_kind: str
    exact_converged: bool
    exact_gap: float
    exact_seconds: float
    levels: tuple
    refinement: str
    exact: CriticResult = field(repr=False)
    values: np.ndarray = field(repr=False)
    optimal_values: np.ndarray = field(repr=False)
    grads: np.ndarray = field(repr=False)
    optimal_grads: np.ndarray = field(repr=False)
    reference_kind: np.ndarray = field(repr=False)
    sinks: np.ndarray = field(repr=False)
    mu: np.ndarray = field(repr=False)
    nu: np.ndarray = field(repr=False)

    @property
    def grid(self) -> Grid:
        """The grid of the audit."""
        return self.exact.grid

    def to_dict(self) -> dict[str, Any]:
        """The metrics and settings as a JSON-friendly dict (no arrays).

        Returns
        -------
        dict
            Metric names to floats (NaN becomes ``None``), plus settings and the grid.
        """
        out: dict[str, Any] = {}
        for key, _, _ in _TABLE:
            v = float(getattr(self, key))
            out[key] = v if math.isfinite(v) else None
        out.update(tau=self.tau, n_samples=self.n_samples, seed=self.seed,
                   gradient_method=self.gradient_method, critic_kind=self.critic_kind,
                   exact_converged=bool(self.exact_converged), exact_gap=float(self.exact_gap),
                   exact_seconds=float(self.exact_seconds), refinement=self.refinement,
                   levels=[{k: (list(v) if k == "shape" else v) for k, v in row.items()}
                           for row in self.levels],
                   sinks=len(self.sinks),
                   grid={"bounds": [list(b) for b in self.grid.bounds],
                         "shape": list(self.grid.shape)})
        return out

    def to_json(self, **kwargs: Any) -> str:
        """:meth:`to_dict` as a JSON string (``kwargs`` go to :func:`json.dumps`)."""
        kwargs.setdefault("indent", 2)
        return json.dumps(self.to_dict(), **kwargs)

    def __str__(self) -> str:
        lines = [f"otgrid audit ({self.critic_kind} critic, gradients by "
                 f"{self.gradient_method}; grid {' x '.join(map(str, self.grid.shape))}, "
                 f"{self.n_samples} samples, tau = {self.tau:g})"]
        if len(self.levels) > 1:
            shapes = ", ".join(" x ".join(map(str, row["shape"])) for row in self.levels)
            lines.append(f"  resolutions {shapes} ({self.refinement}); exact solve "
                         f"{self.exact_seconds:.3g} s at the last")
        width = max(len(label) for _, label, _ in _TABLE)
        for key, label, fmt in _TABLE:
            v = float(getattr(self, key))
            if key.startswith("generator") and not math.isfinite(v):
                continue
            if fmt == ".4f" and v != 0 and not 1e-4 <= abs(v) < 1e6:
                fmt = ".4g"  # (a critic of another scale: 3e+12, not 13 digits of zeros)
            text = "n/a" if math.isnan(v) else format(v, fmt)  # (inf: beyond float64)
            lines.append(f"  {label:<{width}}  {text}")
        if not self.exact_converged:
            lines.append("  (the exact solve did not reach its tolerance; the bounds hold)")
        return "\n".join(lines)

    def plot(self, **kwargs: Any) -> Figure:
        """Figure of the audit; see :func:`otgrid.auditing.plot.plot_audit`."""
        from otgrid.auditing.plot import plot_audit

        return plot_audit(self, **kwargs)
