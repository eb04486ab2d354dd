"""The reference gradient of the optimal critic at points, and where the grid determines it.

Wherever the optimal transport flow is non-zero, every optimal critic has the same gradient:
the unit vector against the flow (complementary slackness). The exact solve gives the flow on
the faces of the cells; this module turns it into a reference direction at arbitrary points
(the points where an audit evaluates the critic under audit) and says, point by point, whether
the grid actually resolves it:

1. **Cell directions.** The flow averaged over the two faces of each cell along each axis (the
   cell-centred flow), ``d = -y / |y|``, undefined where ``|y|`` is at most ``flow_tol`` times
   its largest value. The raw face values must not be used as a cell's direction: where the
   flow converges (a sink: an atom or a sharp mode of ``nu``, the apex of a cone-shaped
   potential) the faces of a cell carry opposite fluxes and their signs, not the transport,
   decide the direction — it comes out close to ``(1, 1) / sqrt(2)`` in every such cell.
2. **At a point.** The cell directions of the ``2^d`` cell centres around the point
   (the bilinear stencil of :class:`otgrid.grid.interp.GridFunction`) interpolated with the
   bilinear weights and normalised.
3. **Determinacy.** The reference at a point is *determined* when the ``2^d`` directions are
   all defined and every pair of them has a cosine of at least :data:`DETERMINED_COSINE`: the
   direction field is then smooth at the scale of a cell, and the interpolated direction is
   accurate (measured on the funnel pairs of :func:`otgrid.grid.datasets.funnel_pair`, whose
   optimal potential is known: an L2 cosine of 0.992–0.998 with the exact gradient on the
   determined points at 256 x 256). Near sinks, ridges (where the flow splits) and the edges
   of the flow's support the grid cannot resolve the gradient, whatever its resolution's
   constant factor.
4. **Sinks.** A sink whose apex can be located to sub-cell accuracy gets a radial reference
   ``(x - c) / |x - c|`` (the gradient of the cone ``|x - c| + b`` that an optimal critic is
   near an atom receiving mass from all around): the candidates are the cells where ``nu`` has
   a local maximum well above ``mu``; the apex ``c`` is located by mode seeking on samples of
   ``nu`` (the median of the samples in a ball around the current estimate, the ball shrinking
   by 0.7 per step while it holds at least :data:`SINK_MIN_SAMPLES` samples); it counts as
   located when that ball ends below :data:`SINK_LOCATED` cells, and the sink is kept when at
   least half of the determined-or-not cell directions at 1.5 to 4 cells from ``c`` agree with
   the radial direction (cosine >= 0.9). Undetermined points within :data:`SINK_RADIUS` cells of
   a kept sink use it — those within :data:`SINK_CORE` cells always, the others when the grid's
   own (undetermined) direction there agrees with the radial one (cosine >= 0.5).

Points that are neither determined nor near a kept sink keep the interpolated grid direction
(the best available, not resolved); points where no cell direction is defined (no transport
through them) have no reference.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.ndimage import maximum_filter
from scipy.spatial import cKDTree

from otgrid.critic.operators import centred_flow
from otgrid.grid.grid import Grid

__all__ = [
    "DETERMINED_COSINE",
    "KIND_DETERMINED",
    "KIND_NONE",
    "KIND_SINK",
    "KIND_UNDETERMINED",
    "ReferenceField",
    "cell_directions",
]

# Minimal pairwise cosine of the 2^d stencil directions for a determined point. Measured on the
# funnel pairs (4, 16, 64, 256 funnels, deg 8, 256 x 256, auditing the known potential): at 0.9
# the L2 cosine on the determined points is 0.9982 / 0.9977 / 0.9954 / 0.9916 for a determined
# mass of 0.58 / 0.51 / 0.41 / 0.28; at 0.99 it is 0.9992 / 0.9987 / 0.9972 / 0.9934 for
# 0.43 / 0.35 / 0.21 / 0.08.
DETERMINED_COSINE = 0.9
# Sinks: radius (in cells) within which undetermined points may use the radial reference, the
# core radius within which they always do, the size (in cells) below which the mode-seeking
# ball must end for the apex to count as located, the samples that ball must hold, and the
# samples of nu drawn for the mode seeking when nu is a distribution. The funnels' cusps are
# located to 1e-9 - 1e-5 cells; a Gaussian mode of nu (8gaussians, sigma 0.014, 8192 samples
# each) to a ball of 0.07 cells at 512 x 512 (0.05 rejected it, and the audit of the same
# critics jumped between 256 x 256 and 512 x 512).
SINK_RADIUS = 4.0
SINK_CORE = 2.0
SINK_LOCATED = 0.25
SINK_MIN_SAMPLES = 24
SINK_SAMPLES = 1 << 16
# nu must exceed this multiple of mu in a candidate sink cell.
_SINK_EXCESS = 2.0

KIND_NONE, KIND_DETERMINED, KIND_SINK, KIND_UNDETERMINED = 0, 1, 2, 3


def cell_directions(flow: np.ndarray, flow_tol: float) -> np.ndarray:
    """Unit vectors ``-y / |y|`` of the cell-centred flow ``y``, NaN where it is negligible.

    Parameters
    ----------
    flow : ndarray, shape (ndim, \\*shape)
        The staggered flow of a :class:`~otgrid.critic.result.CriticResult`.
    flow_tol : float
        Cells whose centred flow has a norm of at most ``flow_tol`` times the largest get NaN.

    Returns
    -------
    ndarray, shape (ndim, \\*shape)
        The direction of the optimal critic's gradient at each cell centre.
    """
    y = centred_flow(np.asarray(flow, dtype=np.float64))
    norm = np.sqrt(np.sum(y ** 2, axis=0))
    top = float(norm.max())
    out = np.full_like(y, np.nan)
    if top > 0:
        on = norm > flow_tol * top
        out[:, on] = -y[:, on] / norm[on]
    return out


@dataclass(frozen=True)
class ReferenceAt:
    """The reference gradient at some points.

    Attributes
    ----------
    directions : ndarray, shape (n, ndim)
        Unit reference gradients (NaN where there is none).
    kind : ndarray of int8, shape (n,)
        :data:`KIND_DETERMINED` (resolved by the grid), :data:`KIND_SINK` (radial, from a
        located sink), :data:`KIND_UNDETERMINED` (the interpolated grid direction, not resolved)
        or :data:`KIND_NONE` (no transport through the point: no reference).
    """

    directions: np.ndarray
    kind: np.ndarray


class ReferenceField:
    """The optimal critic's gradient as a field of points, with its determinacy.

    Parameters
    ----------
    grid : Grid
        The grid of the exact solve.
    flow : ndarray, shape (ndim, \\*grid.shape)
        Its optimal flow.
    mu, nu : ndarray, shape grid.shape
        The grid masses (for the sink candidates).
    nu_samples : ndarray, shape (m, ndim), optional
        Samples of ``nu`` for locating sinks below the cell size; without them no sink is used.
    flow_tol : float, optional
        See :func:`cell_directions`.

    Attributes
    ----------
    cells : ndarray, shape (ndim, \\*grid.shape)
        The cell directions.
    sinks : ndarray, shape (k, ndim)
        The located and kept sink apexes.
    """

    def __init__(self, grid: Grid, flow: np.ndarray, mu: np.ndarray, nu: np.ndarray,
                 nu_samples: np.ndarray | None = None, *, flow_tol: float = 1e-3) -> None:
        self.grid = grid
        self.cells = cell_directions(flow, flow_tol)
        self._h = np.asarray(grid.dx, dtype=np.float64)
        self._lo = np.array([b[0] for b in grid.bounds], dtype=np.float64) + self._h / 2
        self.sinks = _find_sinks(grid, self.cells, mu, nu, nu_samples)
        self._sink_tree = cKDTree(self.sinks) if len(self.sinks) else None

    def grid_reference(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The interpolated cell directions at ``x`` (n, ndim), whether every stencil direction
        is defined, and the minimal pairwise cosine of the stencil directions."""
        idx, w = _stencil(self.grid, self._lo, self._h, x)
        d = np.moveaxis(self.cells[(slice(None), *np.moveaxis(idx, -1, 0))], 0, -1)  # (n, 2^d, nd)
        defined = np.all(np.isfinite(d), axis=-1)
        ref = np.sum(np.where(defined[..., None], d, 0.0) * w[..., None], axis=1)
        norm = np.linalg.norm(ref, axis=1)
        ref = np.where(norm[:, None] > 0, ref / np.where(norm > 0, norm, 1.0)[:, None], np.nan)
        dz = np.where(defined[..., None], d, 0.0)
        pair = np.einsum("nai,nbi->nab", dz, dz)
        spread = np.min(pair.reshape(len(x), -1), axis=1)
        return ref, np.all(defined, axis=1), spread

    def at(self, x: Any) -> ReferenceAt:
        """The reference gradient at points ``x`` of shape (n, ndim); see :class:`ReferenceAt`."""
        x = np.asarray(x, dtype=np.float64).reshape(-1, self.grid.ndim)
        ref, full, spread = self.grid_reference(x)
        kind = np.full(len(x), KIND_UNDETERMINED, dtype=np.int8)
        kind[~np.isfinite(ref[:, 0])] = KIND_NONE
        determined = full & (spread >= DETERMINED_COSINE)
        kind[determined] = KIND_DETERMINED
        out = ref.copy()
        if self._sink_tree is not None:
            dist, which = self._sink_tree.query(x)
            v = x - self.sinks[which]
            r = np.linalg.norm(v, axis=1)
            radial = np.where(r[:, None] > 0, v / np.where(r > 0, r, 1.0)[:, None], np.nan)
            cells = dist / float(self._h.max())
            agrees = np.sum(np.nan_to_num(radial) * np.nan_to_num(ref), axis=1) >= 0.5
            use = (~determined & (r > 0) & (cells <= SINK_RADIUS)
                   & ((cells <= SINK_CORE) | agrees))
            out[use] = radial[use]
            kind[use] = KIND_SINK
        return ReferenceAt(out, kind)

    def cell_kind(self) -> np.ndarray:
        """The kind of reference at each cell centre, shape grid.shape (for figures)."""
        pts = self.grid.points()
        return self.at(pts).kind.reshape(self.grid.shape)


def _stencil(grid: Grid, lo: np.ndarray, h: np.ndarray, x: np.ndarray
             ) -> tuple[np.ndarray, np.ndarray]:
    """Cell indices (n, 2^d, d) and bilinear weights (n, 2^d) of the centres around ``x``."""
    shape = np.asarray(grid.shape)
    u = (x - lo) / h
    i0 = np.clip(np.floor(u).astype(np.intp), 0, np.maximum(shape - 2, 0))
    t = np.clip(u - i0, 0.0, 1.0)
    t = np.where(shape > 1, t, 0.0)
    corners = np.array(list(itertools.product((0, 1), repeat=grid.ndim)), dtype=np.intp)
    idx = np.minimum(i0[:, None, :] + corners[None], shape - 1)
    w = np.prod(np.where(corners[None] == 1, t[:, None, :], 1.0 - t[:, None, :]), axis=-1)
    return idx, w


def _find_sinks(grid: Grid, cells: np.ndarray, mu: np.ndarray, nu: np.ndarray,
                samples: np.ndarray | None) -> np.ndarray:
    """Apexes of the sinks of the flow located below the cell size and consistent with a radial
    field around them (see the module docstring); shape (k, ndim)."""
    d = grid.ndim
    if samples is None or len(samples) < SINK_MIN_SAMPLES:
        return np.empty((0, d))
    local = maximum_filter(nu, size=3, mode="constant")
    cand = np.argwhere((nu >= local) & (nu > _SINK_EXCESS * mu) & (nu > 0))
    if len(cand) == 0:
        return np.empty((0, d))
    h = np.asarray(grid.dx, dtype=np.float64)
    hmax = float(h.max())
    centres = np.stack([np.asarray(grid.centers[k])[cand[:, k]] for k in range(d)], axis=1)
    tree = cKDTree(samples)
    ring = _ring_offsets(d, 4)
    kept = []
    for cell, start in zip(cand, centres, strict=True):
        apex = _mode(tree, samples, start, 1.5 * hmax)
        if apex is None:
            continue
        if _radial_agreement(grid, cells, cell, apex, ring) >= 0.5:
            kept.append(apex)
    return np.array(kept).reshape(-1, d)


def _mode(tree: cKDTree, samples: np.ndarray, start: np.ndarray, radius: float
          ) -> np.ndarray | None:
    """Mode seeking from ``start``: the median of the samples in a shrinking ball; None when
    the ball cannot shrink below ``SINK_LOCATED`` cells while holding enough samples."""
    m, r, located = start.copy(), radius, radius * SINK_LOCATED / 1.5
    for _ in range(200):
        idx = tree.query_ball_point(m, r)
        if len(idx) < SINK_MIN_SAMPLES:
            break
        m = np.median(samples[idx], axis=0)
        r *= 0.7
    return m if r / 0.7 <= located else None


def _ring_offsets(d: int, reach: int) -> np.ndarray:
    """Integer offsets of the cells within ``reach`` cells (per axis) of a cell."""
    return np.array(list(itertools.product(range(-reach, reach + 1), repeat=d)), dtype=np.intp)


def _radial_agreement(grid: Grid, cells: np.ndarray, cell: np.ndarray, apex: np.ndarray,
                      offsets: np.ndarray) -> float:
    """Fraction of the defined cell directions at 1.5 to 4 cells from ``apex`` that agree with
    the radial direction (cosine >= 0.9); 0 when fewer than 4 are defined."""
    shape = np.asarray(grid.shape)
    idx = cell[None] + offsets
    inside = np.all((idx >= 0) & (idx < shape), axis=1)
    idx = idx[inside]
    h = np.asarray(grid.dx, dtype=np.float64)
    pos = np.stack([np.asarray(grid.centers[k])[idx[:, k]] for k in range(grid.ndim)], axis=1)
    v = pos - apex
    r = np.linalg.norm(v, axis=1) / float(h.max())
    dirs = cells[(slice(None), *idx.T)].T
    use = (r >= 1.5) & (r <= 4.0) & np.all(np.isfinite(dirs), axis=1)
    if np.count_nonzero(use) < 4:
        return 0.0
    cos = np.sum(dirs[use] * v[use], axis=1) / (r[use] * float(h.max()))
    return float(np.mean(cos >= 0.9))
