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
        fig = _new_figure(fig, (10.0, 4.0))
        fig.clear()
        ax1, ax2 = fig.subplots(1, 2)
        x = grid.centers[0]
        w = (report.mu + report.nu) / 2
        w = w / w.sum()
        f, fs = report.values, report.optimal_values
        shifted = f - w @ f + w @ fs
        dens = ax1.twinx()
        dens.fill_between(x, report.mu / grid.dx[0], alpha=0.25, color="C0", label="mu")
        dens.fill_between(x, report.nu / grid.dx[0], alpha=0.25, color="C3", label="nu")
        dens.set_ylabel("density")
        dens.set_ylim(bottom=0)
        ax1.plot(x, fs, color="k", lw=2, label="optimal f*")
        ax1.plot(x, shifted, color="C2", label="audited f (shifted)")
        if np.isfinite(report.shape_scale):
            ax1.plot(x, report.shape_scale * f + report.shape_shift, color="C2", ls="--",
                     label=f"best fit s f + c (s = {report.shape_scale:.3g})")
        ax1.set_xlabel("x")
        ax1.set_ylabel("critic")
        ax1.legend(loc="upper right", fontsize=8)
        ax1.set_title("critics")
        ax2.plot(x, report.optimal_grads[0], color="k", lw=2, label="f*' (flow direction)")
        ax2.plot(x, report.grads[0], color="C2", label="f'")
        ax2.axhline(1.0, color="0.6", lw=0.8, ls=":")
        ax2.axhline(-1.0, color="0.6", lw=0.8, ls=":")
        ax2.fill_between(x, -1.2, 1.2, where=undetermined, color="0.85", lw=0, step="mid",
                         label="grad f* not determined")
        for c in np.asarray(report.sinks).reshape(-1):
            ax2.axvline(c, color="C3", lw=0.8, ls="--")
        ax2.set_xlabel("x")
        ax2.set_title("gradients")
        ax2.legend(fontsize=8)
    else:
        fig = _new_figure(fig, (14.0, 4.5))
        fig.clear()
        axes = fig.subplots(1, 3)
        (a0, b0), (a1, b1) = grid.bounds
        ext = (a0, b0, a1, b1)
        xs, ys = grid.mesh()
        for ax, z, name in ((axes[0], report.values, "audited critic f"),
                            (axes[1], report.optimal_values, "optimal critic f*")):
            im = ax.imshow(z.T, origin="lower", extent=ext, cmap="viridis", aspect="equal")
            fig.colorbar(im, ax=ax, shrink=0.8)
            for m, col in ((report.mu, "w"), (report.nu, "r")):
                if m.max() > 0:
                    ax.contour(xs, ys, m, levels=m.max() * np.array([0.1, 0.5]), colors=col,
                               linewidths=0.8)
            ax.set_title(f"{name}\n(contours: mu white, nu red)")
        cos = _pointwise_cosine(report)
        im = axes[2].imshow(cos.T, origin="lower", extent=ext, cmap="RdBu", vmin=-1, vmax=1,
                            aspect="equal")
        fig.colorbar(im, ax=axes[2], shrink=0.8)
        shade = (undetermined & np.isfinite(cos)).astype(float)
        if shade.any():
            axes[2].contourf(xs, ys, shade, levels=[0.5, 1.5], colors="none", hatches=["////"])
        sinks = np.asarray(report.sinks).reshape(-1, 2)
        if len(sinks):
            axes[2].plot(sinks[:, 0], sinks[:, 1], "x", color="k", ms=5, label="sinks")
        axes[2].set_title("cos(grad f, grad f*) where the flow is non-zero\n"
                          "(hatched: not determined by the grid; x: located sinks)")
    fig.suptitle(head, fontsize=10)
    return fig
