"""Figure of an audit: the audited critic beside the optimal one, and where their gradients agree.

Matplotlib is imported lazily and no backend is selected here. The report is read through its
attributes only: this module does not import :mod:`otgrid.auditing.report`, whose
:meth:`~otgrid.auditing.report.AuditReport.plot` calls it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from otgrid.auditing.reference import KIND_DETERMINED

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["plot_audit"]


def _new_figure(fig: Figure | None, size: tuple[float, float]) -> Figure:
    if fig is not None:
        return fig
    from matplotlib.figure import Figure

    return Figure(figsize=size, layout="constrained")


def _pointwise_cosine(report: Any) -> np.ndarray:
    """Cosine between ``grad f`` and ``grad f*`` per cell (NaN where the flow is zero)."""
    g, gs = report.grads, report.optimal_grads
    norm = np.sqrt(np.sum(g ** 2, axis=0))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(norm > 0, np.sum(g * gs, axis=0) / norm, 0.0) + 0 * gs[0]


def plot_audit(report: Any, *, fig: Figure | None = None, title: str | None = None
               ) -> Figure:
    """Draw an audit: audited vs optimal critic with both densities, and gradient agreement.

    1D: left, the optimal critic ``f*``, the audited critic shifted to the same weighted mean
    and its best affine fit ``s f + c`` over the two densities; right, ``f'`` and ``f*'`` (the
    unit slope against the optimal flow). 2D: the audited critic and the optimal one as images
    with the contours of ``mu`` and ``nu``, and the cosine between ``grad f`` and ``grad f*``
    where the optimal flow is non-zero.

    Parameters
    ----------
    report : AuditReport
        The result of :func:`otgrid.auditing.metrics.audit`.
    fig : matplotlib.figure.Figure, optional
        Figure to draw into (it is cleared); default a new standalone figure (no pyplot).
    title : str, optional
        A title line above the metrics line.

    Returns
    -------
    matplotlib.figure.Figure
    """
    if not hasattr(report, "optimal_values"):
        raise TypeError(f"report must be an AuditReport from otgrid.auditing.metrics.audit; got "
                        f"{type(report).__name__}.")
    grid = report.grid
    line = (f"w_ratio {report.w_ratio:.3f}   lipschitz {report.lipschitz:.3f}   "
            f"grad_cosine {report.grad_cosine:.3f} (determined {report.grad_cosine_determined:.3f}"
            f" on {report.determined_mass:.1%} of nu)   shape_error {report.shape_error:.3f}")
    undetermined = report.reference_kind != KIND_DETERMINED
    head = line if title is None else f"{title}\n{line}"
    if grid.ndim == 1:
        fig = _new_figure(fig, (11.0, 4.0))
        fig.clear()
        _plot_1d(fig, report, undetermined)
    else:
        fig = _new_figure(fig, (15.0, 4.8))
        fig.clear()
        _plot_2d(fig, report, undetermined)
    fig.suptitle(head, fontsize=10)
    return fig


def _plot_1d(fig: Figure, report: Any, undetermined: np.ndarray) -> None:
    """Left: the critics over the density fills (one legend for both); right: gradients."""
    grid = report.grid
    ax1, ax2 = fig.subplots(1, 2)
    x = grid.centers[0]
    w = (report.mu + report.nu) / 2
    w = w / w.sum()
    f, fs = report.values, report.optimal_values
    shifted = f - w @ f + w @ fs
    dens = ax1.twinx()
    dens.fill_between(x, report.mu / grid.dx[0], alpha=0.25, color="C0", label="μ density")
    dens.fill_between(x, report.nu / grid.dx[0], alpha=0.25, color="C3", label="ν density")
    dens.set_ylabel("density (mass / dx)")
    dens.set_ylim(bottom=0)
    ax1.plot(x, fs, color="k", lw=2, label="optimal f*")
    ax1.plot(x, shifted, color="C2", label="audited f (shifted)")
    if np.isfinite(report.shape_scale):
        ax1.plot(x, report.shape_scale * f + report.shape_shift, color="C2", ls="--",
                 label=f"best fit s f + c (s = {report.shape_scale:.3g})")
    ax1.set_xlabel("x")
    ax1.set_ylabel("critic")
    # one legend for the critics (ax1) and the density fills (its twin axes)
    handles, labels = ax1.get_legend_handles_labels()
    more, more_labels = dens.get_legend_handles_labels()
    ax1.legend(handles + more, labels + more_labels, loc="upper right", fontsize=8)
    ax1.set_zorder(dens.get_zorder() + 1)   # the critics and their legend above the fills
    ax1.patch.set_visible(False)
    ax1.set_title("critics")
    ax2.plot(x, report.optimal_grads[0], color="k", lw=2, label="f*' (flow direction)")
    ax2.plot(x, report.grads[0], color="C2", label="f'")
    ax2.axhline(1.0, color="0.6", lw=0.8, ls=":")
    ax2.axhline(-1.0, color="0.6", lw=0.8, ls=":")
    ax2.fill_between(x, -1.2, 1.2, where=undetermined, color="0.85", lw=0, step="mid",
                     label="grad f* not determined")
    sinks = np.asarray(report.sinks).reshape(-1)
    for k, c in enumerate(sinks):
        ax2.axvline(c, color="C3", lw=0.8, ls="--", label="located sink" if k == 0 else None)
    ax2.set_xlabel("x")
    ax2.set_ylabel("gradient")
    ax2.set_title("gradients")
    ax2.legend(fontsize=8)


def _plot_2d(fig: Figure, report: Any, undetermined: np.ndarray) -> None:
    """The audited and the optimal critic with the density contours; the gradient cosine."""
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    grid = report.grid
    axes = fig.subplots(1, 3)
    (a0, b0), (a1, b1) = grid.bounds
    ext = (a0, b0, a1, b1)
    xs, ys = grid.mesh()
    for ax, z, name, sym in ((axes[0], report.values, "audited critic f", "f"),
                             (axes[1], report.optimal_values, "optimal critic f*", "f*")):
        im = ax.imshow(z.T, origin="lower", extent=ext, cmap="viridis", aspect="equal")
        fig.colorbar(im, ax=ax, shrink=0.8, label=sym)
        proxies = []
        for m, col, label in ((report.mu, "w", "μ density"), (report.nu, "r", "ν density")):
            drawn = False
            if m.max() > 0:
                cs = ax.contour(xs, ys, m, levels=m.max() * np.array([0.1, 0.5]), colors=col,
                                linewidths=0.8)
                drawn = any(len(seg) for level in cs.allsegs for seg in level)
            # a density flat over the whole box draws no line: the legend says so
            proxies.append(Line2D([], [], color=col, lw=0.8, ls="-" if drawn else ":",
                                  label=label if drawn else f"{label}: flat, no contour"))
        # the white contour needs a grey legend box to show
        ax.legend(handles=proxies, loc="upper right", fontsize=8, facecolor="0.55",
                  framealpha=0.85)
        ax.set_title(name)
        ax.set_xlabel("x")
        ax.set_ylabel("y")
    ax = axes[2]
    cos = _pointwise_cosine(report)
    im = ax.imshow(cos.T, origin="lower", extent=ext, cmap="RdBu", vmin=-1, vmax=1,
                   aspect="equal")
    fig.colorbar(im, ax=ax, shrink=0.8, label="cos(grad f, grad f*)")
    handles = []
    shade = (undetermined & np.isfinite(cos)).astype(float)
    if shade.any():
        ax.contourf(xs, ys, shade, levels=[0.5, 1.5], colors="none", hatches=["////"])
        handles.append(Patch(facecolor="none", edgecolor="k", hatch="////",
                             label="grad f* not determined"))
    sinks = np.asarray(report.sinks).reshape(-1, 2)
    if len(sinks):
        (mark,) = ax.plot(sinks[:, 0], sinks[:, 1], "x", color="k", ms=5, label="located sink")
        handles.append(mark)
    if handles:
        ax.legend(handles=handles, loc="upper right", fontsize=8)
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    ax.set_title("gradient agreement\n(where the flow is non-zero)")
