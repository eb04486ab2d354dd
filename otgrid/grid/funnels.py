r"""Known-potential Wasserstein-1 benchmark pairs: "funnels" (Korotin, Kolesov & Burnaev, 2022).

A pair ``(Q, P)`` of 2D measures whose optimal Kantorovich potential (the optimal WGAN critic)
and Wasserstein-1 distance are known exactly, built as in Korotin, Kolesov and Burnaev,
*Kantorovich Strikes Back! Wasserstein GANs are not Optimal Transport?*, NeurIPS 2022 Datasets
and Benchmarks. See :class:`FunnelPair` for the construction and :class:`FunnelTarget` for the
exact cell masses of ``P``.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import numpy as np

from otgrid._validation import as_rng, check_positive_int
from otgrid.grid.distributions import (
    Distribution,
    Uniform,
    _as_points,
    _bin_points,
    _check_edges,
)
from otgrid.grid.funnel_geometry import _draw, _Geometry, _real

__all__ = ["FunnelCritic", "FunnelPair", "FunnelTarget"]

_RAYS_PER_CELL = 32    # rays spaced (arc length at the largest s) by min cell width / 32
_CHUNK = 1 << 18       # points per chunk (sampling, owners)
_RAY_CHUNK = 1 << 21   # grid-line crossings per chunk (cell masses)
_MAX_RAYS = 5e7        # cell masses refuse edges that would need more rays


# --------------------------------------------------------------------------- cell masses
def _locate(values: np.ndarray, edges: np.ndarray, side: str = "right") -> np.ndarray:
    return np.searchsorted(edges, values, side=side) - 1


def _line_deposits(start: np.ndarray, direc: np.ndarray, end: np.ndarray, other0: np.ndarray,
                   other_dir: np.ndarray, lines: np.ndarray, other_edges: np.ndarray,
                   mass: Any) -> tuple[np.ndarray, ...]:
    """Crossings of rays with the grid lines of one axis and their signed deposits.

    A ray crossing line ``l`` at radius ``rho`` (cumulative mass ``M(rho)``) leaves ``+M`` to
    the cell before the line and ``-M`` to the cell after it: the sum over a cell is the mass
    of the ray inside it, without sorting the crossings along the ray.
    """
    pos = direc > 0
    lo = np.where(pos, np.searchsorted(lines, start, "right"),
                  np.searchsorted(lines, end, "right"))
    hi = np.where(pos, np.searchsorted(lines, end, "left"),
                  np.searchsorted(lines, start, "left"))
    cnt = np.where(direc != 0, np.maximum(hi - lo, 0), 0)
    ray = np.repeat(np.arange(start.size), cnt)
    first = np.cumsum(cnt) - cnt
    line = lo[ray] + np.arange(ray.size) - first[ray]
    rho = (lines[line] - start[ray]) / direc[ray]
    j = _locate(other0[ray] + rho * other_dir[ray], other_edges)
    up = pos[ray]
    before = np.where(up, line - 1, line)
    after = np.where(up, line, line - 1)
    return before, after, j, mass(ray, rho)


class FunnelTarget(Distribution):
    r"""The target ``P = T#Q`` of a funnel pair (see :class:`FunnelPair`).

    Parameters
    ----------
    pair : FunnelPair
        The pair whose transport map pushes the uniform ``Q`` forward.

    Notes
    -----
    :meth:`cell_masses` integrates ``P`` in polar coordinates around each apex. Along the ray
    of angle :math:`\theta` (exit distance :math:`s`), ``Q`` carries the mass
    :math:`(r_b^2 - r_a^2) / 2 \cdot d\theta / (4L^2)` between radii :math:`r_a < r_b`, and
    :math:`T` maps :math:`r` to :math:`\rho = s (r/s)^{deg}`, so the part of the ray between
    :math:`\rho_a < \rho_b` receives exactly
    :math:`(r(\rho_b)^2 - r(\rho_a)^2)/2 \cdot d\theta / (4L^2)` with
    :math:`r(\rho) = s (\rho/s)^{1/deg}`. The radial integral is therefore exact; the angular
    one is a midpoint rule on each exact angular piece of the region (where one border is
    active, so the rule never straddles a kink of :math:`s(\theta)`), with enough rays that
    the arc length between two rays at the largest :math:`s` of the piece is at most
    ``w / 32``, ``w`` the smallest finite cell width (at most ``2L``). The weights of each
    piece are scaled so that the piece carries its exact (closed-form) mass, so the masses sum
    to 1 to round-off when the edges cover the box; a cell mass has the midpoint rule's
    error :math:`O((\text{ray spacing} / w)^2)`. Measured against 8 times more rays, on 64 x 64
    and 256 x 256 grids of the box (``n_funnels`` 4 to 256, ``deg = 8``): the masses differ by
    4e-5 to 7e-5 in total (sum of absolute differences), no cell by more than 1e-4 of the
    largest cell mass, and a cell by at most about 2% of its own mass (the worst are
    small-mass cells crossed by a region border near the ends of long rays). The crossings of
    the rays with the grid lines are found at once (ragged arrays, chunked over rays to bound
    memory); each one leaves the cumulative mass of its ray with a plus sign on the cell before
    it and a minus sign on the cell after it, so that :func:`numpy.bincount` sums every cell's
    mass without sorting the crossings along the rays (round-off below 0 is clipped to 0).
    Mass outside the edges is not included;
    ``-inf``/``+inf`` end edges are allowed. With ``deg = inf``, ``P`` has an atom of weight
    ``Q(R_k)`` at each apex, in the cell ``[e_i, e_{i+1})`` that contains it.

    Measured cost (2-core machine): a 256 x 256 grid of the box takes 0.8 to 0.9 s for
    ``n_funnels`` from 4 to 256 (the work is about a hundred line crossings per cell, so it
    grows like the number of cells, whatever ``n_funnels``). Edges that would need more than
    5e7 rays raise ``ValueError``.

    ``pdf`` is not provided (``P`` has a density only for finite ``deg``, singular at the
    apexes).

    Examples
    --------
    >>> import numpy as np
    >>> from otgrid.grid.funnels import FunnelPair
    >>> p = FunnelPair(4).target
    >>> e = np.linspace(-2.5, 2.5, 5)
    >>> m = p.cell_masses([e, e])
    >>> m.shape, round(float(m.sum()), 12)
    ((4, 4), 1.0)
    """

    def __init__(self, pair: FunnelPair) -> None:
        if not isinstance(pair, FunnelPair):
            raise TypeError(f"pair must be a FunnelPair; got {type(pair).__name__}.")
        self._pair = pair
        self.ndim = 2

    @property
    def pair(self) -> FunnelPair:
        """The funnel pair this measure is the target of."""
        return self._pair

    def __repr__(self) -> str:
        return f"FunnelTarget({self._pair!r})"

    @property
    def mean(self) -> np.ndarray:
        """Mean of ``P``, in closed form: ``sum_k c_k Q(R_k) + int s^3 e dtheta / (deg + 2)
        / (4L^2)`` over the exact angular pieces, shape (2,)."""
        pair = self._pair
        geo = pair._geo
        out = geo.c.T @ pair.region_masses
        if np.isfinite(pair.deg):
            out = out + geo.moment.sum(axis=0) / (pair.deg + 2) / (4 * pair.half_width ** 2)
        return out

    def sample(self, n: int, rng: Any = None) -> np.ndarray:
        """Draw ``n`` samples ``T(x)``, ``x ~ Q``: the second output of
        :meth:`FunnelPair.sample` (same ``rng``, same points), shape (n, 2)."""
        return self._pair.sample(n, rng)[1]

    def cell_masses(self, edges: Sequence[np.ndarray]) -> np.ndarray:
        """Cell masses of ``P`` by the polar quadrature of the class Notes.

        Parameters
        ----------
        edges : sequence of 2 1-D arrays
            Strictly increasing edges per axis (``-inf`` first and ``+inf`` last allowed).

        Returns
        -------
        numpy.ndarray, shape ``(len(edges[0]) - 1, len(edges[1]) - 1)``
            Mass of each cell; mass outside the edges is not included.
        """
        ex, ey = _check_edges(edges, 2)
        pair = self._pair
        if not np.isfinite(pair.deg):
            return _bin_points(pair._geo.c, pair.region_masses, (ex, ey))
        rays = self._rays(ex, ey)
        out = np.zeros((ex.size - 1) * (ey.size - 1))
        for chunk in _ray_chunks(rays, ex, ey):
            out += self._deposit(chunk, ex, ey)
        return np.maximum(out, 0.0).reshape(ex.size - 1, ey.size - 1)

    def _rays(self, ex: np.ndarray, ey: np.ndarray) -> dict[str, np.ndarray]:
        """Midpoint rays of every angular piece: apex, direction, exit distance, weight."""
        pair = self._pair
        geo = pair._geo
        L = pair.half_width
        widths = np.concatenate([np.diff(ex), np.diff(ey)])
        widths = widths[np.isfinite(widths)]
        w = min(float(widths.min()) if widths.size else 2 * L, 2 * L)
        A, B, C = geo.piece_A, geo.piece_B, geo.piece_C
        t0, t1 = geo.piece_t0, geo.piece_t1
        s_end = np.maximum(1.0 / (A + B * np.cos(t0) + C * np.sin(t0)),
                           1.0 / (A + B * np.cos(t1) + C * np.sin(t1)))
        count = np.maximum(1, np.ceil((t1 - t0) * s_end * _RAYS_PER_CELL / w))
        if count.sum() > _MAX_RAYS:
            raise ValueError(f"edges with cells as narrow as {w:.3g} need {count.sum():.3g} rays "
                             f"(at most {_MAX_RAYS:.0e}); use coarser edges, or histogram "
                             "samples of the target with Grid.histogram.")
        count = count.astype(np.intp)
        piece = np.repeat(np.arange(t0.size), count)
        idx = np.arange(piece.size) - (np.cumsum(count) - count)[piece]
        dth = (t1 - t0) / count
        th = t0[piece] + (idx + 0.5) * dth[piece]
        s = 1.0 / (A[piece] + B[piece] * np.cos(th) + C[piece] * np.sin(th))
        raw = dth[piece] * s * s / 2
        scale = geo.piece_area / np.bincount(piece, weights=raw, minlength=t0.size)
        weight = dth[piece] * scale[piece] / (4 * L * L)      # mass per unit s^2 / 2
        k = geo.piece_funnel[piece]
        return {"c": geo.c[k], "e": np.stack([np.cos(th), np.sin(th)], axis=1), "s": s,
                "w": weight}

    def _deposit(self, rays: dict[str, np.ndarray], ex: np.ndarray, ey: np.ndarray
                 ) -> np.ndarray:
        """Signed deposits of a chunk of rays on the flattened grid of cells."""
        c, e, s, w = rays["c"], rays["e"], rays["s"], rays["w"]
        end = c + s[:, None] * e
        power = 2.0 / self._pair.deg
        nx, ny = ex.size - 1, ey.size - 1

        def mass(ray: np.ndarray, rho: np.ndarray) -> np.ndarray:
            t = np.clip(rho / s[ray], 0.0, 1.0)
            return w[ray] * s[ray] ** 2 * t ** power / 2

        cells, vals = [], []
        xr = _line_deposits(c[:, 0], e[:, 0], end[:, 0], c[:, 1], e[:, 1], ex, ey, mass)
        yr = _line_deposits(c[:, 1], e[:, 1], end[:, 1], c[:, 0], e[:, 0], ey, ex, mass)
        for (before, after, j, m), swap in ((xr, False), (yr, True)):
            for i, sign in ((before, 1.0), (after, -1.0)):
                ix, iy = (j, i) if swap else (i, j)
                ok = (ix >= 0) & (ix < nx) & (iy >= 0) & (iy < ny)
                cells.append(ix[ok] * ny + iy[ok])
                vals.append(sign * m[ok])
        # the end of each ray: + its whole mass to the cell it ends in (approached from inside)
        ix = np.where(e[:, 0] > 0, _locate(end[:, 0], ex, "left"),
                      np.where(e[:, 0] < 0, _locate(end[:, 0], ex), _locate(c[:, 0], ex)))
        iy = np.where(e[:, 1] > 0, _locate(end[:, 1], ey, "left"),
                      np.where(e[:, 1] < 0, _locate(end[:, 1], ey), _locate(c[:, 1], ey)))
        ok = (ix >= 0) & (ix < nx) & (iy >= 0) & (iy < ny)
        cells.append(ix[ok] * ny + iy[ok])
        vals.append((w * s * s / 2)[ok])
        return np.bincount(np.concatenate(cells), weights=np.concatenate(vals),
                           minlength=nx * ny)


def _ray_chunks(rays: dict[str, np.ndarray], ex: np.ndarray, ey: np.ndarray
                ) -> list[dict[str, np.ndarray]]:
    """Split the rays so that each chunk crosses at most about ``_RAY_CHUNK`` grid lines."""
    c, e, s = rays["c"], rays["e"], rays["s"]
    end = c + s[:, None] * e
    cost = np.ones(s.size)
    for a, edges in ((0, ex), (1, ey)):
        lo = np.searchsorted(edges, np.minimum(c[:, a], end[:, a]))
        hi = np.searchsorted(edges, np.maximum(c[:, a], end[:, a]))
        cost += hi - lo
    cum = np.cumsum(cost)
    cuts = np.searchsorted(cum, np.arange(_RAY_CHUNK, cum[-1], _RAY_CHUNK))
    bounds = np.unique(np.concatenate([[0], cuts, [s.size]]))
    return [{key: val[a:b] for key, val in rays.items()}
            for a, b in itertools.pairwise(bounds)]


# --------------------------------------------------------------------------- the pair
class FunnelCritic:
    """The known optimal critic ``u`` of a funnel pair, as an object :func:`otgrid.audit`
    can evaluate: ``critic(x)`` gives ``u`` and ``critic.value_and_grad(x)`` gives ``u`` and
    its gradient, with the gradient 0 (a subgradient) at the apexes, where ``u`` has a cone
    (an audit needs finite gradients, and samples of ``P`` do land on the apexes in float64).

    Parameters
    ----------
    pair : FunnelPair
        The pair whose potential this is.

    Examples
    --------
    >>> from otgrid.grid.funnels import FunnelPair
    >>> f = FunnelPair(4).critic
    >>> v, g = f.value_and_grad([[0.0, 0.0], [1.0, 1.0]])
    >>> v.shape, g.shape
    ((2,), (2, 2))
    """

    def __init__(self, pair: FunnelPair) -> None:
        if not isinstance(pair, FunnelPair):
            raise TypeError(f"pair must be a FunnelPair; got {type(pair).__name__}.")
        self._pair = pair

    def __repr__(self) -> str:
        return f"FunnelCritic({self._pair!r})"

    def __call__(self, x: Any) -> np.ndarray:
        """``u(x)``, shape (m,) for points of shape (m, 2)."""
        return self._pair.potential(x)

    def value_and_grad(self, x: Any) -> tuple[np.ndarray, np.ndarray]:
        """``u(x)`` (m,) and its gradient (m, 2), 0 at an apex (instead of NaN)."""
        v, g = self._pair.value_and_grad(x)
        return v, np.where(np.isnan(g), 0.0, g)


class FunnelPair:
    r"""A pair ``(Q, P)`` of 2D measures with a known optimal critic and ``W_1`` ("funnels").

    After Korotin, Kolesov and Burnaev, *Kantorovich Strikes Back! Wasserstein GANs are not
    Optimal Transport?*, NeurIPS 2022 Datasets and Benchmarks. ``Q`` is uniform on the box
    :math:`B = [-L, L]^2`; ``n`` funnel apexes :math:`c_k` are uniform in ``B`` with small
    offsets :math:`b_k \ge 0`, and the potential is

    .. math:: u(x) = \min_k \big(|x - c_k| + b_k\big).

    The region :math:`R_k` where the k-th cone is the lowest is an additively weighted Voronoi
    cell; it is star-shaped around :math:`c_k` (along a ray from :math:`c_k`,
    :math:`|x - c_k| - |x - c_m|` never decreases). For :math:`x \in R_k`, :math:`x \ne c_k`,
    with :math:`r = |x - c_k|`, :math:`e = (x - c_k)/r` and :math:`s = s_k(e)` the distance
    from :math:`c_k` along :math:`e` to the border of :math:`R_k` (the box or a hyperbola
    branch :math:`s_m = (|d|^2 - \delta^2) / (2(\delta - d \cdot e))`, :math:`d = c_k - c_m`,
    :math:`\delta = b_k - b_m`), the transport map is

    .. math:: T(x) = c_k + s\,(r/s)^{deg}\,e, \qquad P = T_\# Q.

    :math:`T` moves mass along the rays of ``u`` (towards the apex) inside :math:`R_k`, so
    :math:`u(x) - u(T(x)) = |x - T(x)|`; as ``u`` is 1-Lipschitz,
    :math:`E_Q u - E_P u = E_Q|x - T(x)| \ge W_1(Q, P) \ge E_Q u - E_P u`: ``u`` is an optimal
    Kantorovich potential (high on ``Q``), ``T`` an optimal map, and

    .. math:: W_1(Q, P) = E_Q|x - T(x)| = \Big(\frac13 - \frac1{deg + 2}\Big) \frac{1}{4L^2}
              \sum_k \int_0^{2\pi} s_k(\theta)^3\, d\theta,

    while :math:`\sum_k \int s_k^2/2\, d\theta = 4L^2` (the regions tile the box).
    ``deg = numpy.inf`` is the limit where ``P`` is discrete: an atom of weight
    :math:`Q(R_k)` at each apex.

    Parameters
    ----------
    n_funnels : int, optional
        Number of funnels (>= 1).
    deg : float, optional
        Exponent of the radial contraction (> 1; ``numpy.inf`` for atoms at the apexes).
    half_width : float, optional
        ``L``, the half-width of the box (> 0).
    offset : float, optional
        Offsets are uniform in ``[0, offset]`` (>= 0); default ``0.1 * 2L / sqrt(n_funnels)``
        (a tenth of the typical spacing of the apexes).
    seed : int or None, optional
        Seed of the draw of apexes and offsets.

    Attributes
    ----------
    apexes : numpy.ndarray, shape (n_funnels, 2)
        The apexes :math:`c_k` (read-only).
    offsets : numpy.ndarray, shape (n_funnels,)
        The offsets :math:`b_k` (read-only).
    region_masses : numpy.ndarray, shape (n_funnels,)
        :math:`Q(R_k)`, in closed form (read-only).
    n_funnels, deg, half_width, offset, seed
        The parameters.

    Notes
    -----
    *The draw.* Apexes (uniform in the open box) and offsets are drawn, then, while some pair
    has :math:`|b_k - b_m| > |c_k - c_m| / 2` or :math:`|c_k - c_m| < 2 \cdot 10^{-6} L`, the
    apex and offset of the higher-indexed funnel of every such pair are drawn again (in
    increasing index order, from the same generator). The margin keeps every apex well
    inside its own region (:math:`u(c_k) = b_k < |c_k - c_m| + b_m`) and the borders tame
    hyperbolas (:math:`|\delta| \le |d|/2`).

    *The exact geometry.* On the circle of directions around :math:`c_k`, :math:`1/s_k` is the
    largest of functions :math:`A_j + B_j\cos\theta + C_j\sin\theta` (one per box side and per
    neighbouring apex), so the region is computed exactly as angular pieces with one active
    border: breakpoints are closed-form intersections, and each piece is checked to have no
    other border above it (intervals that fail are bisected). Each border is a conic with
    focus :math:`c_k` (eccentricity :math:`|d/\delta| \ge 2`, or a line), and in its
    hyperbolic parameter the integrals :math:`\int s^2/2`, :math:`\int s^3` and
    :math:`\int s^3 e` of a piece are closed forms. :meth:`w1` is therefore exact up to
    round-off: the area identity holds to about 1e-15, and adaptive quadrature
    (``scipy.integrate.quad``) of a brute-force :math:`s_k(\theta)^3` agrees to 2e-13 relative
    (``n_funnels = 4``; 8e-11 for 16, within quad's own error estimate), midpoint rules with
    2**14 and 2**16 rays per funnel to within their O(h^2) error (3e-8 to 6e-8, and 5e-9 to
    7e-9, for 4 and 16 funnels). The neighbours
    considered for region k are the nearest ones, with the check that any other apex has
    :math:`s_m \ge (|d| - |\delta|)/2 \ge \max s_k` (otherwise more neighbours are taken).

    *Points.* The owner of a point is found among its nearest apexes (``scipy.spatial.cKDTree``);
    it is exact because the owner lies within ``max b - min b`` of the nearest distance
    (points where the queried neighbours do not reach that far are done by brute force).
    Exit distances use the same formula as a brute-force minimum over all apexes, restricted
    to the apexes that can bound the region, so they agree with it bit for bit.

    Measured cost (2-core machine, ``n_funnels`` = 4 / 16 / 64 / 256): construction, which
    computes :meth:`w1`, 0.002 / 0.004 / 0.013 / 0.05 s (1024 funnels: 0.5 s);
    ``sample(10**6)`` 0.4 / 0.9 / 1.0 / 1.2 s; ``target.cell_masses`` on a 256 x 256 grid of
    the box 0.8 / 0.8 / 0.85 / 0.9 s.

    Examples
    --------
    >>> import numpy as np
    >>> import otgrid as og
    >>> pair = og.datasets.funnel_pair(16, seed=0)
    >>> x, y, g = pair.sample(1000, rng=1)
    >>> d = np.linalg.norm(x - y, axis=1)
    >>> bool(np.allclose(pair.potential(x) - pair.potential(y), d))
    True
    >>> est, se = pair.w1_monte_carlo(20_000, rng=2)
    >>> bool(abs(est - pair.w1()) < 5 * se)
    True
    """

    def __init__(self, n_funnels: int = 4, *, deg: float = 8.0, half_width: float = 2.5,
                 offset: float | None = None, seed: int | None = 0) -> None:
        n = check_positive_int(n_funnels, "n_funnels")
        deg = _real(deg, "deg")
        if not deg > 1:
            raise ValueError(f"deg must be > 1 (numpy.inf for atoms at the apexes); got {deg}.")
        L = _real(half_width, "half_width")
        if not (np.isfinite(L) and L > 0):
            raise ValueError(f"half_width must be finite and > 0; got {L}.")
        if offset is None:
            off = 0.1 * 2 * L / np.sqrt(n)
        else:
            off = _real(offset, "offset")
            if not (np.isfinite(off) and off >= 0):
                raise ValueError(f"offset must be finite and >= 0; got {off}.")
        if seed is not None:
            seed = check_positive_int(seed, "seed", minimum=0)
        self._n, self._deg, self._L, self._offset, self._seed = n, deg, L, float(off), seed
        c, b = _draw(n, L, self._offset, np.random.default_rng(seed))
        c.setflags(write=False)
        b.setflags(write=False)
        self._geo = _Geometry(c, b, L)
        self._source = Uniform([-L, -L], [L, L])
        masses = self._geo.region_area / (4 * L * L)
        masses.setflags(write=False)
        self._masses = masses

    # ------------------------------------------------------------------ parameters
    @property
    def n_funnels(self) -> int:
        """Number of funnels."""
        return self._n

    @property
    def deg(self) -> float:
        """Exponent of the radial contraction (``inf``: atoms at the apexes)."""
        return self._deg

    @property
    def half_width(self) -> float:
        """``L``: the box is ``[-L, L]^2``."""
        return self._L

    @property
    def offset(self) -> float:
        """Upper bound of the uniform offsets."""
        return self._offset

    @property
    def seed(self) -> int | None:
        """Seed of the draw."""
        return self._seed

    @property
    def apexes(self) -> np.ndarray:
        """Apexes ``c_k``, shape (n_funnels, 2), read-only."""
        return self._geo.c

    @property
    def offsets(self) -> np.ndarray:
        """Offsets ``b_k``, shape (n_funnels,), read-only."""
        return self._geo.b

    @property
    def region_masses(self) -> np.ndarray:
        """``Q(R_k)``: the area of each region over ``4L^2`` (closed form), read-only."""
        return self._masses

    def __repr__(self) -> str:
        return (f"FunnelPair(n_funnels={self._n}, deg={self._deg!r}, half_width={self._L!r}, "
                f"offset={self._offset!r}, seed={self._seed!r})")

    # ------------------------------------------------------------------ measures
    @property
    def source(self) -> Uniform:
        """``Q``: uniform on the box (exact cell masses)."""
        return self._source

    @property
    def target(self) -> FunnelTarget:
        """``P = T#Q`` (polar-quadrature cell masses, see :class:`FunnelTarget`)."""
        return FunnelTarget(self)

    @property
    def critic(self) -> FunnelCritic:
        """The optimal critic ``u`` as an auditable object (:class:`FunnelCritic`)."""
        return FunnelCritic(self)

    # ------------------------------------------------------------------ the potential
    def region(self, x: Any) -> np.ndarray:
        """Index of the funnel owning each point (argmin of ``|x - c_k| + b_k``; ties go to
        the lowest index).

        Parameters
        ----------
        x : array_like, shape (..., 2)
            Points (anywhere in the plane).

        Returns
        -------
        numpy.ndarray of int, shape (...)
        """
        pts, shape = _as_points(x, 2)
        return self._geo.owner(pts).reshape(shape)

    def value_and_grad(self, x: Any) -> tuple[np.ndarray, np.ndarray]:
        """``u(x)`` and its gradient ``(x - c_k) / |x - c_k|`` (``k`` the owner; NaN at an apex,
        where ``u`` has a cone point).

        Parameters
        ----------
        x : array_like, shape (..., 2)
            Points (anywhere in the plane).

        Returns
        -------
        value : numpy.ndarray, shape (...)
        grad : numpy.ndarray, shape (..., 2)
        """
        pts, shape = _as_points(x, 2)
        geo = self._geo
        k = geo.owner(pts)
        v = pts - geo.c[k]
        r = np.hypot(v[:, 0], v[:, 1])
        with np.errstate(invalid="ignore", divide="ignore"):
            g = v / r[:, None]
        return (r + geo.b[k]).reshape(shape), g.reshape((*shape, 2))

    def potential(self, x: Any) -> np.ndarray:
        """The optimal potential ``u(x) = min_k |x - c_k| + b_k`` (1-Lipschitz, high on ``Q``).

        Parameters
        ----------
        x : array_like, shape (..., 2)
            Points (anywhere in the plane).

        Returns
        -------
        numpy.ndarray, shape (...)
        """
        return self.value_and_grad(x)[0]

    def gradient(self, x: Any) -> np.ndarray:
        """Gradient of ``u``: the unit vector from the owning apex (NaN at an apex itself).

        Parameters
        ----------
        x : array_like, shape (..., 2)
            Points (anywhere in the plane).

        Returns
        -------
        numpy.ndarray, shape (..., 2)
        """
        return self.value_and_grad(x)[1]

    def exit_distance(self, x: Any) -> np.ndarray:
        """``s_k(e)``: the distance from the owning apex ``c_k``, along the ray through ``x``,
        to the border of the region ``R_k`` (the box or another region).

        Computed as the minimum over the box sides and the apexes that can bound ``R_k`` of
        the closed-form distances (class Notes); equal to the minimum over all apexes.

        Parameters
        ----------
        x : array_like, shape (..., 2)
            Points (the direction ``(1, 0)`` is used at an apex itself).

        Returns
        -------
        numpy.ndarray, shape (...)
        """
        pts, shape = _as_points(x, 2)
        return self._geo.rays(pts)[3].reshape(shape)

    # ------------------------------------------------------------------ the map
    def _check_box(self, pts: np.ndarray) -> None:
        out = np.any(np.abs(pts) > self._L, axis=1)
        if out.any():
            raise ValueError(f"x must lie in the box [-{self._L}, {self._L}]^2 (the support of "
                             f"Q); {int(out.sum())} point(s) lie outside.")

    def _map(self, pts: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``T(x)``, the ray direction ``e`` and ``|x - T(x)|`` for points of the box."""
        k, r, e, s = self._geo.rays(pts)
        t = np.minimum(r / s, 1.0)
        if np.isfinite(self._deg):
            rho = s * t ** self._deg
            dist = r * (1.0 - t ** (self._deg - 1.0))
        else:
            rho = np.zeros_like(r)
            dist = r
        return self._geo.c[k] + rho[:, None] * e, e, dist

    def transport(self, x: Any) -> np.ndarray:
        """The optimal map ``T(x) = c_k + s (r/s)^deg e`` (``c_k`` at the apex; ``deg = inf``:
        ``c_k`` everywhere).

        Parameters
        ----------
        x : array_like, shape (..., 2)
            Points of the box ``[-L, L]^2``.

        Returns
        -------
        numpy.ndarray, shape (..., 2)

        Raises
        ------
        ValueError
            If a point lies outside the box.
        """
        pts, shape = _as_points(x, 2)
        self._check_box(pts)
        return self._map(pts)[0].reshape((*shape, 2))

    def sample(self, n: int, rng: Any = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Coupled samples ``x ~ Q``, ``y = T(x) ~ P`` and the gradient of ``u`` at ``y``.

        The gradient is the ray direction ``e``, exact even where ``y`` rounds to the apex in
        float64 (common for ``deg = 8``: ``(r/s)^8`` underflows the apex's ulp).

        Parameters
        ----------
        n : int
            Number of samples (>= 0).
        rng : None, int or numpy.random.Generator, optional
            Random source.

        Returns
        -------
        x_q, y_p, grad_p : numpy.ndarray, shape (n, 2) each
        """
        n = check_positive_int(n, "n", minimum=0)
        gen = as_rng(rng)
        L = self._L
        x = -L + 2 * L * gen.random((n, 2))
        y = np.empty_like(x)
        g = np.empty_like(x)
        for s in range(0, n, _CHUNK):
            y[s:s + _CHUNK], g[s:s + _CHUNK], _ = self._map(x[s:s + _CHUNK])
        return x, y, g

    # ------------------------------------------------------------------ W1
    def w1(self) -> float:
        r"""The exact :math:`W_1(Q, P) = (1/3 - 1/(deg+2)) / (4L^2) \sum_k \int s_k^3 d\theta`.

        Computed in closed form on the exact angular pieces of the regions (class Notes):
        accurate to round-off, about 1e-14 relative.

        Returns
        -------
        float
        """
        frac = 1.0 / 3.0 - (1.0 / (self._deg + 2.0) if np.isfinite(self._deg) else 0.0)
        return frac * self._geo.cube / (4 * self._L ** 2)

    def w1_monte_carlo(self, n: int, rng: Any = None) -> tuple[float, float]:
        """Monte Carlo estimate of ``E_Q |x - T(x)|`` and its standard error.

        Parameters
        ----------
        n : int
            Number of samples (>= 2).
        rng : None, int or numpy.random.Generator, optional
            Random source.

        Returns
        -------
        estimate, standard_error : float
        """
        n = check_positive_int(n, "n", minimum=2)
        gen = as_rng(rng)
        L = self._L
        count, mean, m2 = 0, 0.0, 0.0
        for s in range(0, n, _CHUNK):
            m = min(_CHUNK, n - s)
            d = self._map(-L + 2 * L * gen.random((m, 2)))[2]
            mu, var = float(d.mean()), float(((d - d.mean()) ** 2).sum())
            delta = mu - mean
            tot = count + m
            mean += delta * m / tot
            m2 += var + delta * delta * count * m / tot
            count = tot
        return mean, float(np.sqrt(m2 / (n - 1) / n))
