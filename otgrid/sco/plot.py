"""Figure of an SCO fit: certified W bounds, parameters, parameter error and critic work per step.

Matplotlib is imported lazily and no backend is selected here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from otgrid.sco.result import SCOResult

__all__ = ["plot_sco"]


def _check_sco(result: Any) -> None:
    for attr in ("lower", "upper", "trajectory", "critic_iterations", "param_names", "steps"):
        if not hasattr(result, attr):
            raise TypeError(f"result must be an SCOResult from otgrid.sco.fit; got "
                            f"{type(result).__name__} (no attribute {attr!r}).")


def _critic_work_panel(ax: Any, result: Any, steps: np.ndarray) -> None:
    """The critic's work per step: its iterations, or its time where no solve iterates.

    A 1D solve is exact at its first check (the flow solving ``D^T y = mu - nu`` is unique
    there) and takes no iteration, as does a solve whose warm start already meets its
    tolerance: a panel of zeros would say nothing, so it shows the critic's time per step.
    """
    iters = np.asarray(result.critic_iterations)
    crit = float(np.sum(getattr(result, "critic_seconds", [0.0])))
    gen = float(np.sum(getattr(result, "generator_seconds", [0.0])))
    totals = f"critic {crit:.3g} s, generator {gen:.3g} s in all"
    seconds = np.asarray(getattr(result, "critic_seconds", []), dtype=np.float64)
    if iters.max(initial=0) == 0 and seconds.size == steps.size:
        pos = seconds > 0          # log scale: the first solve also loads the kernels
        ax.semilogy(steps[pos], 1e3 * seconds[pos], color="C2", lw=1.0, label="critic solve")
        ax.set_ylabel("milliseconds")
        how = "1D: exact without iterating" if result.grid.ndim == 1 else "no iterations"
        ax.set_title(f"critic time per step ({how})\n{totals}", fontsize="medium")
    else:
        ax.plot(steps, iters, color="C2", lw=1.0, label="critic iterations")
        ax.set_ylim(bottom=0, top=max(1.0, 1.05 * float(iters.max(initial=0))))
        ax.set_ylabel("iterations")
        ax.set_title(f"critic iterations per step (warm-started)\n{totals}",
                     fontsize="medium")
    ax.set_xlabel("SCO step")


def plot_sco(result: SCOResult, *, fig: Figure | None = None, title: str | None = None
             ) -> Figure:
    """Learning curves of an SCO fit: certified W bounds, parameters, error, critic work.

    Panels, against the SCO step: the certified bounds ``lower <= W_grid <= upper`` (log
    scale; non-positive lower bounds are not drawn); every parameter, with its true value
    dashed when ``true_params`` was given; the parameter error ``max |theta - true_params|``
    (log scale, with the grid spacing for reference) when known; and the critic iterations
    of each warm-started solve (or, when no solve iterates -- a 1D critic is exact without
    iterating -- the critic's time per step).

    Parameters
    ----------
    result : SCOResult
        A result of :func:`otgrid.sco.fit`.
    fig : matplotlib.figure.Figure, optional
        An empty figure to draw into; by default a new one is made with
        ``matplotlib.pyplot``.
    title : str, optional
        A first title line, above the summary line.

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    TypeError
        When ``result`` is not an SCO result.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import otgrid as og
    >>> from otgrid.sco import LocationScale, fit
    >>> from otgrid.plot import plot_sco
    >>> res = fit(og.Normal(1.0, 0.25), LocationScale(0.0, 0.5), og.Grid((-4, 6), 100),
    ...           steps=50, rng=0, true_params=[1.0, 0.5])
    >>> fig = plot_sco(res)
    >>> len(fig.axes)
    4
    >>> import matplotlib.pyplot as plt
    >>> plt.close(fig)
    """
    _check_sco(result)
    err = getattr(result, "param_error", None)
    n_panels = 4 if err is not None else 3
    if fig is None:
        import matplotlib.pyplot as plt

        fig = plt.figure(figsize=(11.0, 7.0) if n_panels == 4 else (14.0, 4.0),
                         layout="constrained")
    axes = fig.subplots(2, 2).ravel() if n_panels == 4 else fig.subplots(1, 3)
    steps = np.arange(len(result.upper))
    lower = np.asarray(result.lower, dtype=np.float64)
    upper = np.asarray(result.upper, dtype=np.float64)

    ax = axes[0]
    pos = upper > 0
    ax.semilogy(steps[pos], upper[pos], color="C3", lw=1.2, label="upper bound")
    ok = lower > 0
    # dashed, so that the upper bound stays visible where the two coincide (1D: exact W)
    ax.semilogy(steps[ok], lower[ok], color="C0", lw=1.2, ls="--", label="lower bound")
    both = ok & pos
    ax.fill_between(steps[both], lower[both], upper[both], color="C3", alpha=0.15, lw=0)
    ax.set_xlabel("SCO step")
    ax.set_ylabel("W (certified bounds)")
    ax.set_title("Wasserstein-1 on the grid", fontsize="medium")
    ax.legend(fontsize="small")

    ax = axes[1]
    true = getattr(result, "true_params", None)
    if result.trajectory is None:  # fit(..., keep_trajectory=False): nothing to draw
        ax.text(0.5, 0.5, "parameter trajectory not kept\n(fit(..., keep_trajectory=True))",
                ha="center", va="center", transform=ax.transAxes, fontsize="small")
        ax.set_axis_off()
    traj = (np.empty((len(steps), 0)) if result.trajectory is None
            else np.asarray(result.trajectory, dtype=np.float64))
    for i, name in enumerate(result.param_names[:traj.shape[1]]):
        (line,) = ax.plot(steps, traj[:, i], lw=1.2, label=name)
        if true is not None:
            ax.axhline(true[i], color=line.get_color(), ls="--", lw=0.8)
    ax.set_xlabel("SCO step")
    ax.set_ylabel("parameter value")
    ax.set_title("parameters" + (" (dashed: true values)" if true is not None else ""),
                 fontsize="medium")
    if traj.shape[1]:
        ax.legend(fontsize="small", ncol=2)

    if err is not None:
        ax = axes[2]
        err = np.asarray(err, dtype=np.float64)
        ax.semilogy(steps[err > 0], err[err > 0], color="k", lw=1.2, label="max |θ - θ*|")
        dx = min(result.grid.dx)
        ax.axhline(dx, color="0.5", ls=":", lw=1.0, label=f"grid spacing dx = {dx:.3g}")
        ax.set_xlabel("SCO step")
        ax.set_ylabel("parameter error")
        ax.set_title("parameter error", fontsize="medium")
        ax.legend(fontsize="small")

    _critic_work_panel(axes[-1], result, steps)

    line = (f"SCO, {result.steps} steps: W ≈ {0.5 * (lower[-1] + upper[-1]):.4g} in "
            f"[{lower[-1]:.4g}, {upper[-1]:.4g}]  ({getattr(result, 'status', '?')})")
    fig.suptitle(line if title is None else f"{title}\n{line}", fontsize="medium")
    return fig
