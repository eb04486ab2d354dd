"""Export of a view: its current figure as PNG (drawn with matplotlib) and its numbers as JSON.

The figures are drawn on the server with the package's own plotting functions
(:func:`otgrid.critic.plot.plot_critic` with the flow, :func:`otgrid.auditing.plot.plot_audit`)
on a standalone Agg figure (never pyplot: requests run in threads), so an exported figure is
the one the rest of otgrid draws, not a screenshot of the page.
"""

from __future__ import annotations

import io
import json
import math
from typing import Any

import numpy as np

from otgrid.explore.jobs import JobError
from otgrid.explore.session import Session

__all__ = ["export"]

_FORMATS = ("png", "json")


def _png(fig: Any) -> bytes:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    return buf.getvalue()


def _critic_figure(item: dict[str, Any]) -> Any:
    from matplotlib.figure import Figure

    from otgrid.critic.plot import plot_critic

    res = item["result"]
    fig = Figure(figsize=(7.0, 5.2) if res.grid.ndim == 2 else (8.0, 4.2))
    ax = fig.add_subplot()
    specs = item["request"].problem.specs
    title = specs["mu"] if not specs["nu"] else f"{specs['mu']}  vs  {specs['nu']}"
    plot_critic(res, item["mu"], item["nu"], ax=ax, flow=True, title=title[:90])
    return fig


def _sco_figure(item: dict[str, Any]) -> Any:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10.0, 4.0))
    ax_w, ax_p = fig.subplots(1, 2)
    for name, rows, colour in (("SCO (exact critic)", item["records"], "C0"),
                               ("WGAN-GP", item.get("wgan", []), "C3")):
        if not rows:
            continue
        steps = [r["step"] for r in rows]
        ax_w.fill_between(steps, [r["lower"] for r in rows], [r["upper"] for r in rows],
                          color=colour, alpha=0.3)
        ax_w.plot(steps, [0.5 * (r["lower"] + r["upper"]) for r in rows], color=colour,
                  label=name)
        traj = np.array([r["params"] for r in rows])
        d = item["ndim"]
        xs, ys = (traj[:, 0], traj[:, 1]) if d == 2 else (traj[:, 0], traj[:, -1])
        ax_p.plot(xs, ys, "-", color=colour, label=name)
        ax_p.plot(xs[-1:], ys[-1:], "o", color=colour)
    ax_w.set_yscale("log")
    ax_w.set_xlabel("generator step")
    ax_w.set_ylabel("certified W_grid (band: bounds)")
    ax_w.legend()
    ax_p.set_xlabel("loc[0]" if item["ndim"] == 2 else "loc")
    ax_p.set_ylabel("loc[1]" if item["ndim"] == 2 else "last parameter (scale)")
    ax_p.set_title("parameter trajectory")
    fig.suptitle(f"SCO on {item['target']}"[:100])
    fig.tight_layout()
    return fig


def _clean(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, np.generic):
        return _clean(value.item())
    return value


def export(session: Session, view: str, fmt: str) -> tuple[bytes, str, str]:
    """The current figure or numbers of a view of a session.

    Parameters
    ----------
    session : Session
    view : {"critic", "sco", "audit"}
    fmt : {"png", "json"}

    Returns
    -------
    body : bytes
    content_type : str
    filename : str

    Raises
    ------
    JobError
        For an unknown view or format, or a view with nothing to export yet.
    """
    if view not in ("critic", "sco", "audit"):
        raise JobError(f"view must be critic, sco or audit; got {view!r}.", "view")
    if fmt not in _FORMATS:
        raise JobError(f"format must be png or json; got {fmt!r}.", "format")
    if view == "sco":
        from otgrid.explore.sco_view import export_item

        item = export_item(session)
    else:
        item = session.state[view].get("export")
    if not item:
        raise JobError(f"nothing to export in the {view} view yet: run it first.", "view")
    name = f"otgrid_explore_{view}.{fmt}"
    if fmt == "json":
        body = json.dumps(_clean(item["numbers"]), indent=2, allow_nan=False).encode()
        return body, "application/json", name
    if view == "critic":
        fig = _critic_figure(item)
    elif view == "sco":
        fig = _sco_figure(item)
    else:
        fig = item["report"].plot()
    return _png(fig), "image/png", name
