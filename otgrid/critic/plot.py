"""Figure of a grid critic: the critic over the two densities, and the transport flow.

Matplotlib is imported lazily, and the backend is never chosen here: ``import otgrid`` does not
call ``matplotlib.use``. Scripts that only write files can select the non-interactive ``Agg``
backend themselves before the first plot (the command line does).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

from otgrid.critic.operators import centred_flow

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from otgrid.critic.result import CriticResult

__all__ = ["plot_critic"]

_ARROWS = 24          # flow arrows per axis, about
_NEGLIGIBLE = 0.02    # arrows shorter than this fraction of the longest one are not drawn


def _check_result(result: Any) -> None:
    for attr in ("grid", "critic", "w1", "lower", "upper"):
        if not hasattr(result, attr):
            raise TypeError(f"result must be a CriticResult from otgrid.solve_critic; got "
                            f"{type(result).__name__} (no attribute {attr!r}).")
    if result.grid.ndim not in (1, 2):
        raise ValueError(f"plot_critic draws 1D and 2D critics; this one is {result.grid.ndim}D. "
                         "Plot a slice of result.critic yourself.")


def _check_masses(x: Any, name: str, shape: tuple[int, ...]) -> np.ndarray | None:
    if x is None:
        return None
    arr = np.asarray(x, dtype=np.float64)
    if arr.shape != shape:
        raise ValueError(f"{name} must be masses on the result's grid, shape {shape}; got shape "
                         f"{arr.shape}.")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains non-finite values; pass the masses given to "
                         "solve_critic.")
    return arr


def _title(result: Any, title: str | None) -> str:
    line = (f"W ≈ {result.w1:.6g}  in [{result.lower:.6g}, {result.upper:.6g}]")
    if getattr(result, "norm", None) and result.grid.ndim > 1:
        line += f"  ({result.norm})"
    if getattr(result, "converged", True) is False:
        line += "  (not converged)"
    return line if title is None else f"{title}\n{line}"


def _new_axes(ax: Axes | None, figsize: tuple[float, float]) -> tuple[Figure, Axes]:
    if ax is not None:
        return ax.figure, ax
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=figsize, layout="constrained")
    return fig, ax


def _block_sums(a: np.ndarray, blocks: tuple[int, ...]) -> np.ndarray:
    """Sum ``a`` over consecutive blocks along each axis (the last block may be shorter)."""
    for axis, b in enumerate(blocks):
        starts = np.arange(0, a.shape[axis], b)
        a = np.add.reduceat(a, starts, axis=axis)
    return a


def _arrow_proxy(line_cls: Any) -> Any:
    """A legend entry for the flow arrows (a quiver's own legend handle is a plain box)."""
    return line_cls([], [], color="0.15", marker=r"$\rightarrow$", markersize=12,
                    linestyle="None", label="transport flow")


def _plot_1d(result: Any, mu: np.ndarray | None, nu: np.ndarray | None, ax: Axes,
             flow: bool) -> None:
    grid = result.grid
    x = grid.centers[0]
    edges = grid.edges[0]
    dx = grid.dx[0]
    handles = []
    (line,) = ax.plot(x, np.asarray(result.critic), color="C3", lw=2, label="critic f", zorder=3)
    handles.append(line)
    ax.set_xlabel("x")
    ax.set_ylabel("critic f(x)")
    ax.set_xlim(edges[0], edges[-1])
    if mu is not None or nu is not None:
        dens = ax.twinx()
        for masses, label, color in ((mu, "μ", "C0"), (nu, "ν", "C2")):
            if masses is None:
                continue
            art = dens.stairs(masses / dx, edges, fill=True, alpha=0.3, color=color,
                              label=f"{label} density (mass / dx)")
            handles.append(art)
        dens.set_ylabel("density (mass / dx)")
        dens.set_ylim(bottom=0)
        ax.set_zorder(dens.get_zorder() + 1)   # the critic line above the densities
        ax.patch.set_visible(False)
    if flow and getattr(result, "flow", None) is not None:
        y = np.asarray(result.flow)[0]
        b = max(1, math.ceil(y.size / _ARROWS))
        u = _block_sums(centred_flow(y[None])[0], (b,))
        xc = _block_sums(x, (b,)) / _block_sums(np.ones_like(x), (b,))
        top = float(np.abs(u).max())
        big = np.abs(u) > _NEGLIGIBLE * top
        if top > 0:
            lo, hi = ax.get_ylim()
            yb = np.full(int(big.sum()), lo + 0.05 * (hi - lo))
            scale = top / (0.9 * b * dx)
            ax.quiver(xc[big], yb, u[big], np.zeros_like(yb), angles="xy",
                      scale_units="xy", scale=scale, color="0.15", width=0.004,
                      label="transport flow", zorder=4)
            from matplotlib.lines import Line2D

            handles.append(_arrow_proxy(Line2D))
    ax.legend(handles=handles, loc="best", fontsize="small")


def _colour_norm(critic: np.ndarray) -> Any:
    """Colour scale of a 2D critic: its whole range, diverging at 0 (negative values -- where
    ``nu`` dominates -- take the blue half of the map, positive ones the red half, however
    unequal the two ranges are).

    0.1.0 used a range symmetric around 0 fitted to the cells with mass, which saturated the
    rest of the box (``otgrid critic "normal([0, 0], 1)" 8gaussians`` came out mostly red).
    """
    from matplotlib.colors import Normalize, TwoSlopeNorm

    lo, hi = float(critic.min()), float(critic.max())
    if lo < 0 < hi:
        return TwoSlopeNorm(vcenter=0.0, vmin=lo, vmax=hi)
    if hi <= lo:
        lo, hi = lo - 1.0, hi + 1.0
    return Normalize(vmin=lo, vmax=hi)


def _plot_2d(result: Any, mu: np.ndarray | None, nu: np.ndarray | None, ax: Axes,
             flow: bool) -> None:
    from matplotlib.lines import Line2D

    grid = result.grid
    (x0, x1), (y0, y1) = grid.bounds
    critic = np.asarray(result.critic)
    norm = _colour_norm(critic)
    # Arrays are indexed [ix, iy]; imshow wants rows = y, hence the transpose.
    im = ax.imshow(critic.T, origin="lower", extent=(x0, x1, y0, y1), cmap="RdBu_r",
                   norm=norm, interpolation="nearest")
    ratio = (x1 - x0) / (y1 - y0)
    ax.set_aspect("equal" if 0.2 <= ratio <= 5 else "auto")
    bar = ax.figure.colorbar(im, ax=ax, label="critic f")
    lo, hi = norm.vmin, norm.vmax
    if lo < 0 < hi:  # the two halves of a diverging scale get their own ticks
        bar.set_ticks(np.unique(np.concatenate([np.linspace(lo, 0.0, 3),
                                                np.linspace(0.0, hi, 5)])))
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    X, Y = grid.mesh()
    proxies = []
    for masses, label, color, style in ((mu, "μ", "k", "solid"),
                                        (nu, "ν", "tab:green", "solid")):
        if masses is None:
            continue
        dens = masses / grid.cell_volume
        top = float(dens.max())
        if top <= 0:
            continue
        levels = top * np.array([0.05, 0.25, 0.5, 0.75])
        ax.contour(X, Y, dens, levels=levels, colors=color, linewidths=1.0, linestyles=style)
        proxies.append(Line2D([], [], color=color, lw=1.0, label=f"{label} density"))
    if flow and getattr(result, "flow", None) is not None:
        y = centred_flow(np.asarray(result.flow))
        blocks = tuple(max(1, math.ceil(n / _ARROWS)) for n in grid.shape)
        u = _block_sums(y[0], blocks)
        v = _block_sums(y[1], blocks)
        count = _block_sums(np.ones(grid.shape), blocks)
        xc = _block_sums(X, blocks) / count
        yc = _block_sums(Y, blocks) / count
        norm = np.hypot(u, v)
        top = float(norm.max())
        big = norm > _NEGLIGIBLE * top if top > 0 else np.zeros(norm.shape, dtype=bool)
        if np.any(big):
            width = min(blocks[0] * grid.dx[0], blocks[1] * grid.dx[1])
            q = ax.quiver(xc[big], yc[big], u[big], v[big], angles="xy", scale_units="xy",
                          scale=top / (0.9 * width), color="0.15", width=0.003,
                          label="transport flow")
            key = float(f"{top / 2:.1g}")
            ax.quiverkey(q, 0.97, 1.03, key, f"arrow scale: flow {key:g} (mass x length, "
                         f"{blocks[0]} x {blocks[1]} cells) ", labelpos="W",
                         coordinates="axes", fontproperties={"size": "x-small"})
            proxies.append(_arrow_proxy(Line2D))
    if proxies:
        ax.legend(handles=proxies, loc="upper center", bbox_to_anchor=(0.5, -0.1),
                  ncol=len(proxies), fontsize="small", frameon=False)
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)


def plot_critic(result: CriticResult, mu: Any = None, nu: Any = None, *,
                ax: Axes | None = None, flow: bool = False, title: str | None = None) -> Figure:
    """Draw a 1D or 2D critic with the two measures (and, optionally, the transport flow).

    1D: the critic ``f`` as a line, and the densities ``mu / dx`` and ``nu / dx`` as filled
    steps on a second y-axis. 2D: the critic as an image (x to the right, y up), contour lines
    of the densities ``mu / cell_volume`` and ``nu / cell_volume``, and a colour bar. The title
    gives ``W`` and its certified bounds.

    Parameters
    ----------
    result : CriticResult
        A result of :func:`otgrid.solve_critic` on a 1D or 2D grid.
    mu, nu : array_like, shape result.grid.shape, optional
        The cell masses given to the solver; each is drawn when given.
    ax : matplotlib.axes.Axes, optional
        Axes to draw into; by default a new figure is made with ``matplotlib.pyplot``.
    flow : bool, optional
        Also draw the optimal flow ``result.flow`` as arrows: in 2D a quiver of the flow summed
        over blocks of cells (about 24 arrows per axis), leaving out arrows shorter than 1e-3 of
        the longest; in 1D arrows along the bottom of the axes.
    title : str, optional
        A first title line, above the line that gives ``W``.

    Returns
    -------
    matplotlib.figure.Figure
        The figure holding the axes.

    Raises
    ------
    TypeError
        When ``result`` is not a critic result.
    ValueError
        When the grid is not 1D or 2D, or ``mu``/``nu`` do not have the grid's shape.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> from otgrid.critic import solve_critic
    >>> from otgrid.grid import Grid, Normal
    >>> from otgrid.plot import plot_critic
    >>> grid = Grid((-8, 9), 64)
    >>> mu = grid.discretize(Normal(0.0, 1.0))
    >>> nu = grid.discretize(Normal(1.0, 1.0))
    >>> res = solve_critic(mu, nu, grid, backend="numpy")
    >>> fig = plot_critic(res, mu, nu)
    >>> fig.axes[0].get_title().split("  ")[0]
    'W ≈ 1'
    >>> import matplotlib.pyplot as plt
    >>> plt.close(fig)
    """
    _check_result(result)
    shape = tuple(result.grid.shape)
    mu = _check_masses(mu, "mu", shape)
    nu = _check_masses(nu, "nu", shape)
    if np.shape(result.critic) != shape:
        raise ValueError(f"result.critic has shape {np.shape(result.critic)}; expected the "
                         f"grid's shape {shape}.")
    if result.grid.ndim == 1:
        fig, ax = _new_axes(ax, (7.0, 4.0))
        _plot_1d(result, mu, nu, ax, flow)
    else:
        fig, ax = _new_axes(ax, (6.5, 5.5))
        _plot_2d(result, mu, nu, ax, flow)
    ax.set_title(_title(result, title), fontsize="medium", pad=14 if result.grid.ndim == 2 else 6)
    return fig
