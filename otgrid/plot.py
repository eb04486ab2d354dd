"""Figures: every figure function of otgrid in one place, and :func:`save_figure`.

- :func:`plot_critic` (from :mod:`otgrid.critic.plot`): a 1D or 2D critic over the two
  densities, optionally with the transport flow;
- :func:`plot_sco` (from :mod:`otgrid.sco.plot`): the learning curves of an SCO fit;
- :func:`plot_audit` (from :mod:`otgrid.auditing.plot`): an audited critic against the optimal one;
- :func:`save_figure`: write any of them to a file.

Matplotlib is imported lazily, and the backend is never chosen here: ``import otgrid`` does not
call ``matplotlib.use``. Scripts that only write files can select the non-interactive ``Agg``
backend themselves before the first plot (the command line does).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from otgrid.auditing.plot import plot_audit
from otgrid.critic.plot import plot_critic
from otgrid.sco.plot import plot_sco

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["plot_audit", "plot_critic", "plot_sco", "save_figure"]


def save_figure(fig: Figure, path: str | Path, *, dpi: int = 150) -> Path:
    """Write a figure to a file; the format follows the extension (``.png``, ``.pdf``, ``.svg``).

    Parameters
    ----------
    fig : matplotlib.figure.Figure
        The figure, e.g. from :func:`plot_critic`.
    path : str or pathlib.Path
        Output file; its folder must exist.
    dpi : int, optional
        Resolution of raster formats.

    Returns
    -------
    pathlib.Path
        The path written.

    Raises
    ------
    ValueError
        When the folder of ``path`` does not exist or the extension is not a format
        matplotlib can write.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import matplotlib.pyplot as plt
    >>> import tempfile, pathlib
    >>> from otgrid.plot import save_figure
    >>> fig, ax = plt.subplots()
    >>> out = save_figure(fig, pathlib.Path(tempfile.mkdtemp()) / "empty.png")
    >>> out.read_bytes()[:4] == b"\\x89PNG"
    True
    >>> plt.close(fig)
    """
    path = Path(path).expanduser()
    if not path.parent.is_dir():
        raise ValueError(f"path {str(path)!r}: its folder {str(path.parent)!r} does not exist; "
                         "create it first or choose another path.")
    fmt = path.suffix.lower().lstrip(".")
    supported = fig.canvas.get_supported_filetypes()
    if fmt not in supported:
        raise ValueError(f"path {str(path)!r}: unknown figure format {fmt!r}; use one of "
                         f"{', '.join(sorted(supported))}.")
    fig.savefig(path, dpi=dpi, bbox_inches="tight")
    return path
