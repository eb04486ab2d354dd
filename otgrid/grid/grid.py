"""Regular rectangular grids: geometry, exact discretisation of distributions, histograms."""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np

from otgrid._validation import as_finite_array, check_choice, check_positive_int
from otgrid.errors import OutsideMassError, OutsideMassWarning
from otgrid.grid.distributions import bounding_box

__all__ = ["AUTO_OUTSIDE_TOL", "MAX_COORDINATE", "Grid", "bounds_holding"]

OutsideMode = Literal["auto", "raise", "renormalize", "fold"]
Scheme = Literal["nearest", "linear"]
_OUTSIDE = ("auto", "raise", "renormalize", "fold")
_SCHEMES = ("nearest", "linear")

#: ``outside="auto"``: the largest fraction of the total mass outside the grid, per axis of the
#: grid, that is renormalised away silently (``AUTO_OUTSIDE_TOL * ndim`` of the total); more is
#: an error. Dropping a fraction ``delta`` and rescaling changes W by at most about
#: ``2 delta`` times the box's diameter, i.e. at the level of the solver's default ``tol=1e-6``
#: when W is a fair fraction of the diameter. Per axis, because the usual box, a Gaussian's
#: ``mean +- 5 std`` on every axis, leaves 5.7e-7 outside per axis (1.15e-6 in 2D): it passes in
#: any dimension, and so do the bounds of :func:`bounds_holding` (about 4e-8 per axis).
AUTO_OUTSIDE_TOL = 1e-6
_EXPLICIT_OUTSIDE_TOL = 1e-12   # the round-off level of the explicit modes (absolute)

#: Largest ``|low|``, ``|high|`` of a grid, and the narrowest cell is ``1 / MAX_COORDINATE``:
#: squared coordinates and ``1 / dx**2`` (the Laplacian's eigenvalues) stay below 1e300, and
#: differences of coordinates stay finite.
MAX_COORDINATE = 1e150
#: Most cells on one axis (2**28): a grid stores its edges and centres, 16 bytes per cell and
#: axis, and a mass array on a longer axis alone needs 2 GiB.
MAX_AXIS_CELLS = 2**28
# cells narrower than this many float64 ulps of their coordinates cannot be told apart
_MIN_RELATIVE_DX = 64 * float(np.finfo(np.float64).eps)
_SPAN = 5.0     # bounds_holding: Gaussians to mean +- 5 std
_PAD = 0.05     # then padded by 5% of the widest extent on every axis


class Grid:
    r"""A regular grid of rectangular cells on a box in R^ndim.

    Axis ``k`` spans ``[low_k, high_k]`` with ``N_k`` cells of width
    ``dx_k = (high_k - low_k) / N_k``. Cell ``i`` of axis ``k`` is
    ``[low_k + i dx_k, low_k + (i + 1) dx_k)``; the last cell also holds ``high_k``. Its centre
    is ``low_k + (i + 1/2) dx_k``. Masses on the grid are float64 arrays of shape
    :attr:`shape`. A Grid is immutable and hashable.

    Parameters
    ----------
    bounds : (float, float) or sequence of (float, float)
        ``(low, high)`` for a 1D grid, or one ``(low, high)`` pair per axis. Finite, low < high,
        within ``+-MAX_COORDINATE`` (1e150). :func:`bounds_holding` gives bounds that hold
        given distributions or samples.
    shape : int or sequence of int
        Number of cells per axis (>= 2 each); an int means the same number on every axis. A
        cell must be at least ``1 / MAX_COORDINATE`` wide, and wider than 64 float64 ulps of
        its coordinates (so that its edges are distinct numbers). At most ``MAX_AXIS_CELLS``
        (2**28) cells per axis.

    Attributes
    ----------
    ndim : int
        Number of axes.
    shape : tuple of int
        Cells per axis.
    bounds : tuple of (float, float)
        ``(low, high)`` per axis.
    dx : tuple of float
        Cell width per axis.
    size : int
        Total number of cells.
    cell_volume : float
        ``prod(dx)``.

    Examples
    --------
    >>> import numpy as np
    >>> from otgrid.grid import Grid, Normal
    >>> grid = Grid([(-8, 8), (-8, 8)], 64)
    >>> grid.shape, grid.dx
    ((64, 64), (0.25, 0.25))
    >>> mu = grid.discretize(Normal([0.0, 0.0], 1.0))
    >>> mu.shape, round(float(mu.sum()), 12)
    ((64, 64), 1.0)
    >>> Grid((0, 1), 4).centers[0].tolist()
    [0.125, 0.375, 0.625, 0.875]
    """

    def __init__(self, bounds: Any, shape: int | Sequence[int]) -> None:
        b = as_finite_array(bounds, "bounds")
        if b.ndim == 1 and b.size == 2:
            b = b[None, :]
        if b.ndim != 2 or b.shape[1] != 2 or b.shape[0] == 0:
            raise ValueError("bounds must be (low, high) for a 1D grid or a sequence of "
                             f"(low, high) pairs, one per axis; got shape {b.shape}.")
        if np.any(b[:, 0] >= b[:, 1]):
            raise ValueError(f"bounds must satisfy low < high on every axis; got "
                             f"{[tuple(r) for r in b.tolist()]}.")
        if np.any(np.abs(b) > MAX_COORDINATE):
            raise ValueError(f"bounds must lie within +-{MAX_COORDINATE:g} (beyond, squared "
                             f"distances overflow); got {[tuple(r) for r in b.tolist()]}. "
                             "Rescale the problem (other units) or shift it towards 0.")
        ndim = b.shape[0]
        if isinstance(shape, (int, np.integer)) and not isinstance(shape, bool):
            shp = (check_positive_int(shape, "shape", minimum=2),) * ndim
        elif isinstance(shape, (Sequence, np.ndarray)) and not isinstance(shape, str):
            if len(shape) != ndim:
                raise ValueError(f"shape must have one entry per axis ({ndim}, from bounds); "
                                 f"got {tuple(shape)}.")
            shp = tuple(check_positive_int(s, f"shape[{k}]", minimum=2)
                        for k, s in enumerate(shape))
        else:
            raise TypeError(f"shape must be an int or a sequence of ints; got {shape!r}.")
        if max(shp) > MAX_AXIS_CELLS:
            raise ValueError(f"shape must have at most {MAX_AXIS_CELLS} cells per axis (2**28); "
                             f"got {shp}.")
        d = self.__dict__
        d["_bounds"] = tuple((float(lo), float(hi)) for lo, hi in b)
        d["_shape"] = shp
        d["_dx"] = tuple((hi - lo) / n for (lo, hi), n in zip(d["_bounds"], shp, strict=True))
        _check_spacing(d["_bounds"], d["_dx"])
        edges = []
        centers = []
        for (lo, hi), n, h in zip(d["_bounds"], shp, d["_dx"], strict=True):
            e = np.linspace(lo, hi, n + 1)
            c = lo + (np.arange(n) + 0.5) * h
            e.setflags(write=False)
            c.setflags(write=False)
            edges.append(e)
            centers.append(c)
        d["_edges"] = tuple(edges)
        d["_centers"] = tuple(centers)

    # ------------------------------------------------------------------ immutability, identity
    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"Grid is immutable; cannot set {name!r}. Build a new Grid.")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"Grid is immutable; cannot delete {name!r}.")

    def __reduce__(self) -> tuple[Any, ...]:
        return (Grid, (self._bounds, self._shape))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Grid):
            return NotImplemented
        return self._bounds == other._bounds and self._shape == other._shape

    def __hash__(self) -> int:
        return hash((self._bounds, self._shape))

    def __repr__(self) -> str:
        if self.ndim == 1:
            return f"Grid(bounds={self._bounds[0]}, shape={self._shape[0]})"
        return f"Grid(bounds={self._bounds}, shape={self._shape})"

    # ------------------------------------------------------------------ geometry
    @property
    def ndim(self) -> int:
        """Number of axes."""
        return len(self._shape)

    @property
    def shape(self) -> tuple[int, ...]:
        """Number of cells per axis."""
        return self._shape

    @property
    def bounds(self) -> tuple[tuple[float, float], ...]:
        """``(low, high)`` per axis."""
        return self._bounds

    @property
    def dx(self) -> tuple[float, ...]:
        """Cell width per axis, ``(high - low) / N``."""
        return self._dx

    @property
    def size(self) -> int:
        """Total number of cells."""
        return int(np.prod(self._shape))

    @property
    def cell_volume(self) -> float:
        """Volume (length, area) of one cell, ``prod(dx)``."""
        return float(np.prod(self._dx))

    @property
    def lower(self) -> np.ndarray:
        """Lower corner of the box, shape (ndim,)."""
        return np.array([lo for lo, _ in self._bounds])

    @property
    def upper(self) -> np.ndarray:
        """Upper corner of the box, shape (ndim,)."""
        return np.array([hi for _, hi in self._bounds])

    @property
    def edges(self) -> tuple[np.ndarray, ...]:
        """Cell edges per axis (read-only arrays of ``N_k + 1`` values)."""
        return self._edges

    @property
    def centers(self) -> tuple[np.ndarray, ...]:
        """Cell centres per axis (read-only arrays of ``N_k`` values)."""
        return self._centers

    def points(self) -> np.ndarray:
        """All cell centres in C (ravel) order.

        Returns
        -------
        numpy.ndarray, shape (size, ndim)
        """
        return np.stack([m.ravel() for m in self.mesh()], axis=1)

    def mesh(self) -> tuple[np.ndarray, ...]:
        """Coordinates of the cell centres, ``ndim`` arrays of shape :attr:`shape` (``"ij"``)."""
        return tuple(np.meshgrid(*self._centers, indexing="ij"))

    # ------------------------------------------------------------------ distributions
    def _extended_edges(self) -> tuple[np.ndarray, ...]:
        """Edges with an outer cell on each side: ``[-inf, e_0, ..., e_N, +inf]``.

        The upper inner edge is nudged up by one ulp so that the last grid cell keeps
        ``high`` (the grid is closed on the right), also for atoms lying exactly at ``high``.
        """
        return tuple(np.concatenate(([-np.inf], e[:-1], [np.nextafter(e[-1], np.inf)],
                                     [np.inf])) for e in self._edges)

    def _check_dist(self, dist: Any) -> None:
        if not (hasattr(dist, "cell_masses") and hasattr(dist, "ndim")):
            raise TypeError(f"dist must be an otgrid Distribution (with cell_masses); got "
                            f"{type(dist).__name__}. For an array of samples use "
                            "Grid.histogram.")
        if dist.ndim != self.ndim:
            raise ValueError(f"dist is {dist.ndim}D but the grid is {self.ndim}D; use a "
                             "distribution of the grid's dimension.")

    def _exterior(self, dist: Any) -> tuple[np.ndarray, float]:
        """Exact masses on the extended grid and the mass outside the bounds."""
        ext = np.asarray(dist.cell_masses(self._extended_edges()), dtype=np.float64)
        inner = tuple(slice(1, -1) for _ in range(self.ndim))
        outer = ext.copy()
        outer[inner] = 0.0
        return ext, float(outer.sum())

    def outside_mass(self, dist_or_samples: Any, weights: Any = None) -> float:
        """Mass lying outside the grid bounds.

        Parameters
        ----------
        dist_or_samples : Distribution or array_like, shape (n, ndim) (or (n,) in 1D)
            A distribution (its exact mass outside the box) or samples (the total weight of
            the samples outside the closed box).
        weights : array_like, shape (n,), optional
            Sample weights (default ``1/n`` each); only with samples.

        Returns
        -------
        float
        """
        if hasattr(dist_or_samples, "cell_masses"):
            if weights is not None:
                raise ValueError("weights applies to samples only; got a distribution.")
            self._check_dist(dist_or_samples)
            return self._exterior(dist_or_samples)[1]
        x, w = self._check_samples(dist_or_samples, weights)
        return float(w[self._outside_rows(x)].sum())

    def discretize(self, dist: Any, *, outside: OutsideMode = "auto",
                   outside_tol: float | None = None) -> np.ndarray:
        r"""Exact masses of a distribution on the cells of the grid.

        .. math:: \mu_i = P(X \in \text{cell}_i)

        computed by ``dist.cell_masses`` (CDF differences, quadrature for correlated
        Gaussians; see each distribution for its accuracy).

        Parameters
        ----------
        dist : Distribution
            Distribution of dimension :attr:`ndim`.
        outside : {"auto", "renormalize", "fold", "raise"}, optional
            What to do with the mass outside the bounds. ``"auto"`` (default): up to
            ``outside_tol`` (default :data:`AUTO_OUTSIDE_TOL` = 1e-6 of the mass per axis:
            1e-6 in 1D, 2e-6 in 2D) is dropped and the inside masses rescaled, silently; more
            raises :class:`OutsideMassError` (a ValueError) stating the fraction outside and
            bounds that hold the distribution, so that no W is ever computed from a grid that
            misses the measure.
            ``"renormalize"`` rescales the inside masses so that they sum to 1; ``"fold"``
            moves the outside mass into the boundary cells (the outermost edges become
            -inf/+inf along every axis, so each boundary cell receives the exact tail mass
            beyond it); with either, an outside mass above ``outside_tol`` triggers an
            :class:`~otgrid.errors.OutsideMassWarning` carrying the amount. ``"raise"`` raises
            :class:`OutsideMassError` when the outside mass exceeds ``outside_tol``. An amount
            below ``outside_tol`` is handled silently (renormalised away under ``"raise"``).
        outside_tol : float, optional
            Outside mass regarded as negligible (absolute, >= 0). Default: 1e-6 per axis (of the
            total mass 1) under ``"auto"``, 1e-12 (round-off) otherwise.

        Returns
        -------
        numpy.ndarray, shape :attr:`shape`
            Non-negative masses summing to 1 (up to round-off).

        Raises
        ------
        OutsideMassError
            With ``outside="auto"`` or ``"raise"`` and more mass outside than allowed.
        ValueError
            When no mass at all lies inside and the mass is to be renormalised.

        Examples
        --------
        >>> from otgrid.grid import Grid, Normal
        >>> Grid((-6, 7), 64).discretize(Normal(0.0, 1.0)).sum().round(12)  # 1e-9 outside
        np.float64(1.0)
        >>> Grid((10, 20), 64).discretize(Normal(0.0, 1.0))
        Traceback (most recent call last):
        ...
        otgrid.errors.OutsideMassError: outside='auto': 1 (100%) of the mass of ...
        """
        return self._discretize(dist, outside, outside_tol)[0]

    def _discretize(self, dist: Any, outside: str, outside_tol: float | None,
                    stacklevel: int = 4) -> tuple[np.ndarray, float]:
        """:meth:`discretize`, also returning the mass found outside the bounds."""
        check_choice(outside, "outside", _OUTSIDE)
        tol = _check_tol(outside_tol, outside, 1.0, self.ndim)
        self._check_dist(dist)
        ext, out_mass = self._exterior(dist)
        inner = tuple(slice(1, -1) for _ in range(self.ndim))
        what = f"the distribution {dist!r}"
        if outside == "fold":
            folded = ext
            for k in range(self.ndim):
                folded = np.moveaxis(folded, k, 0).copy()
                folded[1] += folded[0]
                folded[-2] += folded[-1]
                folded = np.moveaxis(folded[1:-1], 0, k)
            masses = np.ascontiguousarray(folded)
            self._report(out_mass, tol, what, outside, stacklevel)
            return masses, out_mass
        masses = np.ascontiguousarray(ext[inner])
        if out_mass > tol and outside in ("raise", "auto"):
            raise self._outside_error(out_mass, 1.0, what, outside, tol, dist)
        return self._renormalize(masses, 1.0, out_mass, tol, what, outside,
                                 stacklevel + 1), out_mass

    # ------------------------------------------------------------------ samples
    def histogram(self, samples: Any, weights: Any = None, *, scheme: Scheme = "nearest",
                  outside: OutsideMode = "auto", outside_tol: float | None = None
                  ) -> np.ndarray:
        r"""Deposit weighted samples on the grid.

        Parameters
        ----------
        samples : array_like, shape (n, ndim) (or (n,) in 1D)
            Sample points, finite, n >= 1.
        weights : array_like, shape (n,), optional
            Non-negative finite weights with a positive total; default ``1/n`` each.
        scheme : {"nearest", "linear"}, optional
            ``"nearest"``: each sample goes to the cell containing it. ``"linear"``
            (cloud-in-cell): each sample splits its weight among the ``2**ndim`` nearest cell
            centres with multilinear weights; between the outermost centre and the box edge
            the weight goes to the boundary cell. For samples at least half a cell away from
            the box edges the first moment is preserved exactly,
            :math:`\sum_i \mu_i c_i = \sum_j w_j x_j`.
        outside : {"auto", "renormalize", "fold", "raise"}, optional
            Samples outside the closed box: ``"auto"`` (default) drops them and rescales the
            rest when their weight is at most ``outside_tol`` (default
            :data:`AUTO_OUTSIDE_TOL` = 1e-6 of the total weight per axis), silently, and raises
            :class:`OutsideMassError` (with the fraction outside and bounds holding the
            samples) otherwise; ``"renormalize"`` drops them and rescales the rest;
            ``"fold"`` clips them onto the box; ``"raise"`` raises
            :class:`OutsideMassError` when their total weight exceeds ``outside_tol``. A
            renormalised or folded amount above ``outside_tol`` triggers an
            :class:`~otgrid.errors.OutsideMassWarning` carrying it; an amount below it is
            handled silently (dropped and renormalised under ``"raise"``).
        outside_tol : float, optional
            Outside weight regarded as negligible (absolute, >= 0). Default: 1e-6 of the
            total weight per axis under ``"auto"``, 1e-12 (round-off) otherwise.

        Returns
        -------
        numpy.ndarray, shape :attr:`shape`
            Masses summing to ``sum(weights)`` (1 by default).

        Raises
        ------
        OutsideMassError
            With ``outside="auto"`` or ``"raise"`` and more weight outside than allowed.

        Examples
        --------
        >>> import numpy as np
        >>> from otgrid.grid import Grid
        >>> g = Grid((0, 1), 2)
        >>> g.histogram([0.1, 0.6, 0.9]).round(6).tolist()
        [0.333333, 0.666667]
        >>> g.histogram([0.5], scheme="linear").tolist()
        [0.5, 0.5]
        """
        return self._histogram(samples, weights, scheme, outside, outside_tol)[0]

    def _histogram(self, samples: Any, weights: Any, scheme: str, outside: str,
                   outside_tol: float | None, stacklevel: int = 4
                   ) -> tuple[np.ndarray, float]:
        """:meth:`histogram`, also returning the weight found outside the bounds."""
        check_choice(scheme, "scheme", _SCHEMES)
        check_choice(outside, "outside", _OUTSIDE)
        x, w = self._check_samples(samples, weights)
        total = float(w.sum())
        tol = _check_tol(outside_tol, outside, total, self.ndim)
        out_rows = self._outside_rows(x)
        out_mass = float(w[out_rows].sum())
        what = f"the {x.shape[0]} samples (total weight {total:.6g})"
        if out_mass > tol and outside in ("raise", "auto"):
            raise self._outside_error(out_mass, total, what, outside, tol, x)
        if outside == "fold":
            x = np.clip(x, self.lower, self.upper)
            masses = self._deposit(x, w, scheme)
            self._report(out_mass, tol, what, outside, stacklevel)
            return masses, out_mass
        if out_rows.any():
            keep = ~out_rows
            x, w = x[keep], w[keep]
        masses = self._deposit(x, w, scheme) if x.shape[0] else np.zeros(self._shape)
        return self._renormalize(masses, total, out_mass, tol, what, outside,
                                 stacklevel + 1), out_mass


    def _check_samples(self, samples: Any, weights: Any) -> tuple[np.ndarray, np.ndarray]:
        x = as_finite_array(samples, "samples")
        if x.ndim == 1 and self.ndim == 1:
            x = x[:, None]
        if x.ndim != 2 or x.shape[1] != self.ndim:
            hint = " (for a single point use shape (1, ndim))" if x.ndim == 1 else ""
            raise ValueError(f"samples must have shape (n, {self.ndim}) for this {self.ndim}D "
                             f"grid{hint}; got shape {x.shape}.")
        n = x.shape[0]
        if n == 0:
            raise ValueError("samples is empty; pass at least one sample.")
        x = np.asfortranarray(x)                  # contiguous columns for the per-axis passes
        if weights is None:
            return x, np.full(n, 1.0 / n)
        w = as_finite_array(weights, "weights", ndim=1, nonnegative=True)
        if w.size != n:
            raise ValueError(f"weights must have one entry per sample ({n}); got {w.size}.")
        if not w.sum() > 0:
            raise ValueError(f"weights must have a positive total; got {w.sum()}.")
        return x, w

    def _outside_rows(self, x: np.ndarray) -> np.ndarray:
        out = np.zeros(x.shape[0], dtype=bool)
        for k, (lo, hi) in enumerate(self._bounds):
            col = x[:, k]
            out |= (col < lo) | (col > hi)
        return out

    def _index(self, col: np.ndarray, k: int) -> np.ndarray:
        """Cell index along axis ``k`` of coordinates in the closed box (exact w.r.t. edges)."""
        n = self._shape[k]
        e = self._edges[k]
        idx = np.floor((col - e[0]) / self._dx[k]).astype(np.intp)
        np.clip(idx, 0, n - 1, out=idx)
        idx -= col < e[idx]                      # floor may be one off near an edge
        idx += (col >= e[idx + 1]) & (idx < n - 1)
        return idx

    def _deposit(self, x: np.ndarray, w: np.ndarray, scheme: str) -> np.ndarray:
        """Deposit samples lying in the closed box (vectorised)."""
        if scheme == "nearest":
            idx = tuple(self._index(x[:, k], k) for k in range(self.ndim))
            flat = np.ravel_multi_index(idx, self._shape)
            return np.bincount(flat, weights=w, minlength=self.size).reshape(self._shape)
        lows = []
        fracs = []
        for k in range(self.ndim):
            n = self._shape[k]
            u = np.clip((x[:, k] - self._bounds[k][0]) / self._dx[k] - 0.5, 0.0, n - 1.0)
            i0 = np.minimum(np.floor(u).astype(np.intp), n - 2)
            lows.append(i0)
            fracs.append(u - i0)
        out = np.zeros(self.size)
        for corner in np.ndindex(*(2,) * self.ndim):
            wc = w.copy()
            idx = []
            for k, bit in enumerate(corner):
                wc *= fracs[k] if bit else 1.0 - fracs[k]
                idx.append(lows[k] + bit)
            flat = np.ravel_multi_index(tuple(idx), self._shape)
            out += np.bincount(flat, weights=wc, minlength=self.size)
        return out.reshape(self._shape)

    # ------------------------------------------------------------------ outside handling
    def _outside_error(self, amount: float, total: float, what: str, outside: str, tol: float,
                       source: Any) -> OutsideMassError:
        """The error for too much mass outside, with bounds that would hold ``source`` (a
        distribution or the samples)."""
        fraction = amount / total if total > 0 else 1.0
        try:
            suggested = bounds_holding(source)
        except (TypeError, ValueError, NotImplementedError):
            suggested = None
        if outside == "auto":
            limit = (f"more than the {tol / total:.3g} of the total that outside='auto' "
                     f"renormalizes away ({AUTO_OUTSIDE_TOL:g} per axis)")
        else:
            limit = f"more than outside_tol={tol:.3g}"
        fix = ("Enlarge the bounds" if suggested is None else
               f"Use bounds that hold it, e.g. {_fmt_pairs(suggested)},")
        return OutsideMassError(
            f"outside={outside!r}: {_fmt_fraction(fraction)} of the mass of {what} lies "
            f"outside the grid bounds {_fmt_pairs(self._bounds)}, {limit}. {fix} or pass "
            "outside='renormalize' (rescale the inside mass) or outside='fold' (move it into "
            "the boundary cells) to keep these bounds.",
            mass=amount, fraction=fraction, bounds=self._bounds, suggested_bounds=suggested)

    def _report(self, amount: float, tol: float, what: str, outside: str,
                stacklevel: int = 3) -> None:
        if amount <= tol:
            return
        how = {"renormalize": "dropped and the inside masses rescaled to the original total",
               "fold": "folded into the boundary cells"}[outside]
        warnings.warn(OutsideMassWarning(
            f"{amount:.6g} of the mass of {what} lies outside the grid bounds {self._bounds}; "
            f"it was {how}. Enlarge the bounds to avoid this.", mass=amount), stacklevel=stacklevel)

    def _renormalize(self, masses: np.ndarray, total: float, out_mass: float, tol: float,
                     what: str, outside: str, stacklevel: int) -> np.ndarray:
        inside = float(masses.sum())
        if not inside > 0:
            raise ValueError(f"No mass of {what} lies inside the grid bounds {self._bounds} "
                             f"(outside mass {out_mass:.6g}); enlarge the bounds.")
        if outside == "renormalize":
            self._report(out_mass, tol, what, outside, stacklevel=stacklevel)
        return masses * (total / inside)


def _check_tol(tol: Any, outside: str, total: float, ndim: int) -> float:
    """``outside_tol`` checked, or its default for the mode (``AUTO_OUTSIDE_TOL`` per axis of
    ``total`` under ``"auto"``)."""
    if tol is None:
        return AUTO_OUTSIDE_TOL * ndim * total if outside == "auto" else _EXPLICIT_OUTSIDE_TOL
    if isinstance(tol, bool) or not isinstance(tol, (int, float, np.floating, np.integer)):
        raise TypeError(f"outside_tol must be a real number or None; got {tol!r}.")
    tol = float(tol)
    if not (np.isfinite(tol) and tol >= 0):
        raise ValueError(f"outside_tol must be finite and >= 0; got {tol}.")
    return tol


def _check_spacing(bounds: tuple[tuple[float, float], ...], dx: tuple[float, ...]) -> None:
    """Cells must be at least ``1 / MAX_COORDINATE`` wide and wide enough for float64 to
    tell their edges apart at the magnitude of the coordinates."""
    for k, ((lo, hi), h) in enumerate(zip(bounds, dx, strict=True)):
        size = max(abs(lo), abs(hi))
        if h < 1.0 / MAX_COORDINATE or h < _MIN_RELATIVE_DX * size:
            raise ValueError(
                f"the cells of axis {k} are too narrow: dx = {h:.3g} for coordinates up to "
                f"{size:.3g} (a cell must be at least {1.0 / MAX_COORDINATE:g} wide and "
                f"{_MIN_RELATIVE_DX:.2g} times its coordinates, or float64 cannot tell its "
                "edges apart). Use fewer cells, or shift the problem towards 0.")


def _fmt_pairs(pairs: Sequence[tuple[float, float]]) -> str:
    """``(lo, hi)`` for one axis, ``[(lo, hi), ...]`` for several (compact numbers)."""
    text = [f"({lo:.6g}, {hi:.6g})" for lo, hi in pairs]
    return text[0] if len(text) == 1 else "[" + ", ".join(text) + "]"


def _fmt_fraction(f: float) -> str:
    """``0.0123457 (1.23%)``; ``1 (100%)``."""
    return f"{f:.6g} ({100 * f:.3g}%)"


def _round_out(value: float, exponent: int, up: bool) -> float:
    """``value`` rounded outward to a multiple of ``10**exponent``, computed so that short
    decimals come out exactly (``-56 / 10``, not ``-56 * 0.1``)."""
    scale = 10.0 ** abs(exponent)
    k = math.ceil(value * scale if exponent < 0 else value / scale) if up else \
        math.floor(value * scale if exponent < 0 else value / scale)
    return k / scale if exponent < 0 else k * scale


def bounds_holding(*items: Any) -> list[tuple[float, float]]:
    """Readable grid bounds holding (essentially all of) some distributions or samples.

    The union of the boxes of the items (:func:`~otgrid.grid.distributions.bounding_box`:
    Gaussians to ``mean +- 5 std``, samples and atoms as they lie), padded by 5% of its widest
    side on every axis and rounded outward to a tenth of that side's order of magnitude. On
    the bounds it returns a 1D Gaussian leaves about 4e-8 of its mass outside per axis, far
    below :data:`AUTO_OUTSIDE_TOL`.

    Parameters
    ----------
    *items : Distribution or array_like, shape (n, ndim) (or (n,) in 1D)
        Distributions of one dimension, or sample arrays.

    Returns
    -------
    list of (float, float)
        ``(low, high)`` per axis, ready for :class:`Grid`.

    Raises
    ------
    ValueError
        Without items, for items of different dimensions, or when the box exceeds
        :data:`MAX_COORDINATE`.

    Examples
    --------
    >>> from otgrid.grid import Normal
    >>> from otgrid.grid.grid import bounds_holding
    >>> bounds_holding(Normal(0.0, 1.0), Normal(1.0, 1.0))
    [(-6.0, 7.0)]
    >>> bounds_holding([[0.0, 1.0], [2.0, 3.0]])
    [(-0.1, 2.1), (0.9, 3.1)]
    """
    if not items:
        raise ValueError("bounds_holding needs at least one distribution or sample array.")
    boxes = []
    for item in items:
        if hasattr(item, "cell_masses") and hasattr(item, "ndim"):
            boxes.append(bounding_box(item, _SPAN))
        else:
            x = as_finite_array(item, "samples")
            x = x[:, None] if x.ndim == 1 else x
            if x.ndim != 2 or x.shape[0] == 0:
                raise ValueError(f"samples must have shape (n, ndim) with n >= 1; got "
                                 f"{x.shape}.")
            boxes.append((x.min(axis=0), x.max(axis=0)))
    if len({np.size(b[0]) for b in boxes}) != 1:
        raise ValueError("the items have different dimensions; give items of one dimension.")
    lo = np.min([b[0] for b in boxes], axis=0)
    hi = np.max([b[1] for b in boxes], axis=0)
    with np.errstate(over="ignore", invalid="ignore"):
        widest = float(np.max(hi - lo))
    if not (np.all(np.isfinite(lo)) and np.all(np.isfinite(hi))
            and max(float(np.max(np.abs(lo))), float(np.max(np.abs(hi)))) * (1 + _PAD)
            <= MAX_COORDINATE and widest * (1 + 2 * _PAD) <= MAX_COORDINATE):
        raise ValueError(f"the items reach beyond +-{MAX_COORDINATE:g}, where no grid can "
                         "go; rescale the problem (other units) or shift it towards 0.")
    if widest <= 0:
        widest = max(2.0, float(np.max(np.abs(hi))) * 1e-3)
    pad = _PAD * widest
    exponent = math.floor(math.log10(widest)) - 1
    return [(_round_out(a - pad, exponent, up=False), _round_out(b + pad, exponent, up=True))
            for a, b in zip(lo.tolist(), hi.tolist(), strict=True)]
