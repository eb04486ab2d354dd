"""Grid arrays made ready for the page's canvases: compact images, contour lines, flow arrows.

The page draws on ``<canvas>`` elements itself (no plotting library in the browser), so the
server sends what it needs in a compact, JSON-friendly form:

- :func:`encode_image`: a 2D array quantised to 256 levels between its minimum and maximum,
  as base64 bytes (the page maps each level through a colour map);
- :func:`contour_lines`: the level lines of a 2D array as polylines, computed by
  ``contourpy`` (a dependency of matplotlib);
- :func:`flow_arrows`: the optimal flow summed over blocks of cells, as arrows;
- :func:`colormaps`: matplotlib's colour maps as 256 hex colours, for the page.
"""

from __future__ import annotations

import base64
import math
from typing import Any

import numpy as np

__all__ = ["MAX_IMAGE", "colormaps", "contour_lines", "encode_image", "flow_arrows",
           "gradient_norm", "rounded"]

#: Largest image side sent to the page (finer grids are shown subsampled).
MAX_IMAGE = 256
_COLORMAPS = ("viridis", "RdBu_r", "magma", "Blues", "Reds")


def rounded(values: Any, digits: int = 6) -> list:
    """A float array as a (nested) list of numbers with ``digits`` significant digits."""
    arr = np.asarray(values, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        scale = np.where(arr == 0, 0, np.floor(np.log10(np.abs(arr))))
    factor = 10.0 ** (digits - 1 - np.nan_to_num(scale))
    out = np.round(arr * factor) / factor
    return np.where(np.isfinite(arr), out, 0.0).tolist()


def _stride(shape: tuple[int, ...]) -> int:
    return max(1, math.ceil(max(shape) / MAX_IMAGE))


def encode_image(values: np.ndarray, *, vmin: float | None = None,
                 vmax: float | None = None) -> dict[str, Any]:
    """A 2D array ``(nx, ny)`` as an image for the page.

    Parameters
    ----------
    values : ndarray, shape (nx, ny)
        Indexed ``[i_x, i_y]`` (the grid's order); the page draws ``x`` to the right, ``y`` up.
    vmin, vmax : float, optional
        The range mapped to levels 0 and 255 (default: the array's).

    Returns
    -------
    dict
        ``{"width", "height", "data" (base64 of row-major uint8 levels, top row first),
        "vmin", "vmax"}``; arrays larger than :data:`MAX_IMAGE` are subsampled.
    """
    s = _stride(values.shape)
    v = np.asarray(values, dtype=float)[::s, ::s]
    lo = float(np.nanmin(v)) if vmin is None else float(vmin)
    hi = float(np.nanmax(v)) if vmax is None else float(vmax)
    span = hi - lo if hi > lo else 1.0
    q = np.clip(np.nan_to_num((v - lo) / span * 255.0 + 0.5, nan=0.0), 0, 255).astype(np.uint8)
    rows = np.ascontiguousarray(q.T[::-1])  # rows are y, top row = largest y
    return {"width": int(rows.shape[1]), "height": int(rows.shape[0]),
            "data": base64.b64encode(rows.tobytes()).decode("ascii"), "vmin": lo, "vmax": hi}


def contour_lines(values: np.ndarray, centers: tuple[np.ndarray, np.ndarray], levels: int = 14,
                  *, max_points: int = 4000) -> list[dict[str, Any]]:
    """Level lines of a 2D array at ``levels`` equally spaced values.

    Parameters
    ----------
    values : ndarray, shape (nx, ny)
    centers : (ndarray, ndarray)
        The cell centres along x and y.
    levels : int, optional
    max_points : int, optional
        Points per level kept (longer lines are thinned).

    Returns
    -------
    list of dict
        ``{"level": value, "lines": [[[x, y], ...], ...]}``.
    """
    import contourpy

    z = np.asarray(values, dtype=float)
    lo, hi = float(np.min(z)), float(np.max(z))
    if not hi > lo:
        return []
    gen = contourpy.contour_generator(centers[0], centers[1], z.T, line_type="Separate")
    out = []
    for level in np.linspace(lo, hi, levels + 2)[1:-1]:
        lines = gen.lines(float(level))
        total = sum(len(line) for line in lines) or 1
        step = max(1, math.ceil(total / max_points))
        out.append({"level": float(level),
                    "lines": [rounded(line[::step] if len(line) > 2 * step else line, 5)
                              for line in lines if len(line) > 1]})
    return out


def gradient_norm(critic: np.ndarray, dx: tuple[float, ...], norm: str) -> np.ndarray:
    """``|(Df)_i|`` per cell (forward differences, zero on the last index of each axis), in
    the norm of the constraint (Euclidean, or the largest axis slope for ``"cityblock"``)."""
    parts = []
    for k, h in enumerate(dx):
        d = np.zeros_like(critic)
        sl = [slice(None)] * critic.ndim
        sl[k] = slice(0, -1)
        d[tuple(sl)] = np.diff(critic, axis=k) / h
        parts.append(d)
    stack = np.abs(np.stack(parts))
    return stack.max(axis=0) if norm == "cityblock" else np.sqrt((stack ** 2).sum(axis=0))


def flow_arrows(flow: np.ndarray, centers: tuple[np.ndarray, np.ndarray], dx: tuple[float, ...],
                per_axis: int = 22) -> list[list[float]]:
    """The flow summed over blocks of cells, as arrows ``[x, y, u, v]`` (``u, v`` scaled so
    that the longest arrow is 1; arrows below 2 % of it are left out)."""
    nx, ny = flow.shape[1:]
    bx, by = max(1, nx // per_axis), max(1, ny // per_axis)
    mx, my = nx // bx, ny // by
    # flow[k][i] / dx_k is the mass moved from cell i to i + e_k
    u = (flow[0][:mx * bx, :my * by] / dx[0]).reshape(mx, bx, my, by).sum(axis=(1, 3))
    v = (flow[1][:mx * bx, :my * by] / dx[1]).reshape(mx, bx, my, by).sum(axis=(1, 3))
    x = centers[0][:mx * bx].reshape(mx, bx).mean(axis=1)
    y = centers[1][:my * by].reshape(my, by).mean(axis=1)
    length = np.hypot(u, v)
    top = float(length.max())
    if not top > 0:
        return []
    keep = length > 0.02 * top
    X, Y = np.meshgrid(x, y, indexing="ij")
    rows = np.stack([X[keep], Y[keep], u[keep] / top, v[keep] / top], axis=1)
    return rounded(rows, 4)


def colormaps() -> dict[str, list[str]]:
    """matplotlib's colour maps used by the page, as 256 hex colours each."""
    from matplotlib import colormaps as cmaps

    out = {}
    for name in _COLORMAPS:
        rgba = cmaps[name](np.linspace(0.0, 1.0, 256))
        out[name] = ["#{:02x}{:02x}{:02x}".format(*(round(255 * c) for c in row[:3]))
                     for row in rgba]
    return out
