"""Regular rectangular grids: geometry, exact discretisation of distributions, histograms."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np

from otgrid._validation import as_finite_array, check_choice, check_positive_int
from otgrid.errors import OutsideMassWarning

__all__ = ["Grid"]

OutsideMode = Literal["raise", "renormalize", "fold"]
Scheme = Literal["nearest", "linear"]
_OUTSIDE = ("raise", "renormalize", "fold")
_SCHEMES = ("nearest", "linear")


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
        ``(low, high)`` for a 1D grid, or one ``(low, high)`` pair per axis. Finite, low < high.
    shape : int or sequence of int
        Number of cells per axis (>= 2 each); an int means the same number on every axis.

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
        d = self.__dict__
        d["_bounds"] = tuple((float(lo), float(hi)) for lo, hi in b)
        d["_shape"] = shp
        d["_dx"] = tuple((hi - lo) / n for (lo, hi), n in zip(d["_bounds"], shp, strict=True))
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

    def discretize(self, dist: Any, *, outside: OutsideMode = "renormalize",
                   outside_tol: float = 1e-12) -> np.ndarray:
        r"""Exact masses of a distribution on the cells of the grid.

        .. math:: \mu_i = P(X \in \text{cell}_i)

        computed by ``dist.cell_masses`` (CDF differences, quadrature for correlated
        Gaussians; see each distribution for its accuracy).

        Parameters
        ----------
        dist : Distribution
            Distribution of dimension :attr:`ndim`.
        outside : {"renormalize", "fold", "raise"}, optional
            What to do with the mass outside the bounds. ``"renormalize"`` rescales the inside
            masses so that they sum to 1; ``"fold"`` moves the outside mass into the boundary
            cells (the outermost edges become -inf/+inf along every axis, so each boundary cell
            receives the exact tail mass beyond it); ``"raise"`` raises ValueError when the
            outside mass exceeds ``outside_tol``. An outside mass above ``outside_tol`` with
            ``"renormalize"`` or ``"fold"`` triggers an :class:`~otgrid.errors.OutsideMassWarning`
            carrying the amount. Below ``outside_tol`` it is treated as round-off: it is
            handled the same way (renormalised away under ``"raise"``), silently.
        outside_tol : float, optional
            Outside mass regarded as round-off (absolute, >= 0).

        Returns
        -------
        numpy.ndarray, shape :attr:`shape`
            Non-negative masses summing to 1 (up to round-off).

        Raises
        ------
        ValueError
            With ``outside="raise"`` and more than ``outside_tol`` mass outside, or when no
            mass at all lies inside and ``outside="renormalize"``.
        """
        check_choice(outside, "outside", _OUTSIDE)
        tol = _check_tol(outside_tol)
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
            self._report(out_mass, tol, what, outside)
            return masses
        masses = np.ascontiguousarray(ext[inner])
        if out_mass > tol and outside == "raise":
            raise ValueError(self._raise_message(out_mass, what))
        return self._renormalize(masses, 1.0, out_mass, tol, what, outside)

    # ------------------------------------------------------------------ samples
    def histogram(self, samples: Any, weights: Any = None, *, scheme: Scheme = "nearest",
                  outside: OutsideMode = "renormalize", outside_tol: float = 1e-12
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
        outside : {"renormalize", "fold", "raise"}, optional
            Samples outside the closed box are dropped and the rest rescaled
            (``"renormalize"``), clipped onto the box (``"fold"``), or make the call raise
            ValueError when their total weight exceeds ``outside_tol`` (``"raise"``). A
            handled amount above ``outside_tol`` triggers an
            :class:`~otgrid.errors.OutsideMassWarning` carrying it; an amount below it is
            handled silently (dropped and renormalised under ``"raise"``).
        outside_tol : float, optional
            Outside weight regarded as round-off (absolute, >= 0).

        Returns
        -------
        numpy.ndarray, shape :attr:`shape`
            Masses summing to ``sum(weights)`` (1 by default).

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
        check_choice(scheme, "scheme", _SCHEMES)
        check_choice(outside, "outside", _OUTSIDE)
        tol = _check_tol(outside_tol)
        x, w = self._check_samples(samples, weights)
        total = float(w.sum())
        out_rows = self._outside_rows(x)
        out_mass = float(w[out_rows].sum())
        what = f"the {x.shape[0]} samples (total weight {total:.6g})"
        if out_mass > tol and outside == "raise":
            raise ValueError(self._raise_message(out_mass, what))
        if outside == "fold":
            x = np.clip(x, self.lower, self.upper)
            masses = self._deposit(x, w, scheme)
            self._report(out_mass, tol, what, outside)
            return masses
        if out_rows.any():
            keep = ~out_rows
            x, w = x[keep], w[keep]
        masses = self._deposit(x, w, scheme) if x.shape[0] else np.zeros(self._shape)
        return self._renormalize(masses, total, out_mass, tol, what, outside)

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
    def _raise_message(self, amount: float, what: str) -> str:
        return (f"{amount:.6g} of the mass of {what} lies outside the grid bounds "
                f"{self._bounds}. Enlarge the bounds, or pass outside='renormalize' (rescale "
                "the inside mass) or outside='fold' (move it into the boundary cells).")

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
                     what: str, outside: str) -> np.ndarray:
        inside = float(masses.sum())
        if not inside > 0:
            raise ValueError(f"No mass of {what} lies inside the grid bounds {self._bounds} "
                             f"(outside mass {out_mass:.6g}); enlarge the bounds.")
        if outside != "raise":
            self._report(out_mass, tol, what, outside, stacklevel=4)
        return masses * (total / inside)


def _check_tol(tol: Any) -> float:
    if isinstance(tol, bool) or not isinstance(tol, (int, float, np.floating, np.integer)):
        raise TypeError(f"outside_tol must be a real number; got {tol!r}.")
    tol = float(tol)
    if not (np.isfinite(tol) and tol >= 0):
        raise ValueError(f"outside_tol must be finite and >= 0; got {tol}.")
    return tol
