"""Parametric generators for the SCO loop: ``x = g_theta(z)`` with a standard Gaussian latent.

A generator maps latent samples ``z`` (shape ``(n, latent_dim)``, drawn by
:meth:`~ParametricGenerator.sample_latent`) to points ``x`` (shape ``(n, ndim)``). The training
loop of :mod:`otgrid.sco` needs three things from it: its parameters as one flat float64
array (read and written through :attr:`~ParametricGenerator.params`), the samples
:meth:`~ParametricGenerator.sample`, and the vector-Jacobian product
:meth:`~ParametricGenerator.vjp`,

.. math::

    \\mathrm{vjp}(z, v) = \\sum_{j=1}^{n} \\Big(\\frac{\\partial g_\\theta(z_j)}{\\partial
    \\theta}\\Big)^{\\!\\top} v_j \\in \\mathbb R^{p},

the gradient with respect to ``theta`` of ``sum_j <v_j, g_theta(z_j)>``. Generators whose
pushforward of the latent law is known in closed form also provide ``cell_masses(grid)``, the
exact masses of that pushforward on the cells of a grid.

Built in: :class:`LocationScale` (``g(z) = scale * z + loc``, per axis) and :class:`Affine`
(``g(z) = A z + b``), both with exact cell masses for their Gaussian pushforwards.
"""

from __future__ import annotations

import warnings
from typing import Any, Protocol, runtime_checkable

import numpy as np

from otgrid._validation import as_finite_array, as_rng, check_choice, check_positive_int
from otgrid.errors import OutsideMassWarning
from otgrid.grid.distributions import Normal, PointMass
from otgrid.grid.grid import Grid

__all__ = ["Affine", "LocationScale", "ParametricGenerator", "has_cell_masses"]

_OUTSIDE = ("fold", "renormalize", "raise")


@runtime_checkable
class ParametricGenerator(Protocol):
    """What :func:`otgrid.sco.fit` needs from a generator ``x = g_theta(z)``.

    Any object with these members works (no subclassing needed); ``isinstance(obj,
    ParametricGenerator)`` checks that they are present.

    Attributes
    ----------
    ndim : int
        Dimension of the generated points ``x``.
    latent_dim : int
        Dimension of the latent samples ``z``.
    params : ndarray, shape (p,)
        The parameters ``theta`` as one flat float64 array; reading returns a copy, assigning
        an array of the same size sets them.

    Notes
    -----
    Optional: ``param_names``, a tuple of ``p`` names used in reports and figures.
    Optional: ``cell_masses(grid, *, outside="fold", outside_tol=1e-12)`` returning the exact
    masses of the pushforward of the latent law on the cells of ``grid`` (shape
    ``grid.shape``), with the semantics of :meth:`otgrid.grid.Grid.discretize` for the mass
    outside the bounds. :func:`has_cell_masses` tells whether a generator has it.
    """

    ndim: int
    latent_dim: int

    @property
    def params(self) -> np.ndarray: ...

    @params.setter
    def params(self, value: Any) -> None: ...

    def sample_latent(self, n: int, rng: Any = None) -> np.ndarray:
        """Draw ``n`` latent samples, shape ``(n, latent_dim)``."""
        ...

    def sample(self, z: Any) -> np.ndarray:
        """Generated points ``g_theta(z)``, shape ``(n, ndim)``."""
        ...

    def vjp(self, z: Any, grad_x: Any) -> np.ndarray:
        """``sum_j (d g_theta(z_j) / d theta)^T grad_x[j]``, shape ``(p,)``."""
        ...


def has_cell_masses(generator: Any) -> bool:
    """Whether ``generator`` provides exact cell masses of its pushforward (``cell_masses``).

    Parameters
    ----------
    generator : object
        A generator.

    Returns
    -------
    bool

    Examples
    --------
    >>> from otgrid.sco.generators import LocationScale, has_cell_masses
    >>> has_cell_masses(LocationScale(0.0, 1.0))
    True
    """
    return callable(getattr(generator, "cell_masses", None))


# --------------------------------------------------------------------------- shared helpers
def _check_outside(outside: Any, outside_tol: Any) -> float:
    check_choice(outside, "outside", _OUTSIDE)
    if isinstance(outside_tol, bool) or not isinstance(outside_tol, (int, float, np.number)):
        raise TypeError(f"outside_tol must be a real number; got {outside_tol!r}.")
    tol = float(outside_tol)
    if not (np.isfinite(tol) and tol >= 0):
        raise ValueError(f"outside_tol must be finite and >= 0; got {tol}.")
    return tol


def _check_grid(grid: Any, ndim: int) -> Grid:
    if not isinstance(grid, Grid):
        raise TypeError(f"grid must be an otgrid.Grid; got {type(grid).__name__}.")
    if grid.ndim != ndim:
        raise ValueError(f"grid is {grid.ndim}D but the generator produces {ndim}D points; use "
                         f"a {ndim}D grid.")
    return grid


class _GaussianLatent:
    """Shared plumbing: standard Gaussian latent, input checks for ``z`` and ``grad_x``."""

    ndim: int
    latent_dim: int

    @property
    def size(self) -> int:
        """Number of parameters ``p``."""
        return int(self.params.size)  # type: ignore[attr-defined]

    def sample_latent(self, n: int, rng: Any = None) -> np.ndarray:
        """Draw ``n`` standard Gaussian latent samples.

        Parameters
        ----------
        n : int
            Number of samples (>= 0).
        rng : None, int or numpy.random.Generator, optional
            Random source.

        Returns
        -------
        numpy.ndarray, shape (n, latent_dim)
        """
        n = check_positive_int(n, "n", minimum=0)
        return as_rng(rng).standard_normal((n, self.latent_dim))

    def _z(self, z: Any) -> np.ndarray:
        arr = as_finite_array(z, "z")
        if arr.ndim == 1 and self.latent_dim == 1:
            arr = arr[:, None]
        if arr.ndim != 2 or arr.shape[1] != self.latent_dim:
            raise ValueError(f"z must have shape (n, {self.latent_dim}) (latent samples, one "
                             f"per row); got shape {arr.shape}.")
        return arr

    def _grad_x(self, grad_x: Any, n: int) -> np.ndarray:
        arr = as_finite_array(grad_x, "grad_x")
        if arr.ndim == 1 and self.ndim == 1:
            arr = arr[:, None]
        if arr.shape != (n, self.ndim):
            raise ValueError(f"grad_x must have shape ({n}, {self.ndim}) (one gradient per "
                             f"generated point); got shape {arr.shape}.")
        return arr


# --------------------------------------------------------------------------- LocationScale
class LocationScale(_GaussianLatent):
    r"""Per-axis location-scale generator ``g(z) = scale * z + loc`` with ``z ~ N(0, I)``.

    The generator of Pinetz et al. (Sec. 5.1, 5.2): in 1D :math:`g(z) = \sigma z + \mu`, in 2D
    :math:`g(z) = (\sigma_1 z_1 + \mu_1, \sigma_2 z_2 + \mu_2)`. Its pushforward is
    :math:`\mathcal N(\mathrm{loc}, \mathrm{diag}(\mathrm{scale}^2))`.

    Parameters
    ----------
    loc : float or array_like, shape (ndim,)
        Location per axis.
    scale : float or array_like, shape (ndim,)
        Scale per axis (a scalar is used on every axis). A negative scale gives the same
        distribution as its absolute value; zero gives a point mass along that axis.

    Attributes
    ----------
    ndim, latent_dim : int
        Both equal to the number of axes.
    params : ndarray, shape (2 * ndim,)
        ``[loc_1, ..., loc_d, scale_1, ..., scale_d]``.

    Examples
    --------
    >>> import numpy as np
    >>> from otgrid.sco import LocationScale
    >>> g = LocationScale(loc=1.0, scale=2.0)
    >>> g.sample(np.array([[0.0], [1.0]])).ravel().tolist()
    [1.0, 3.0]
    >>> g.vjp(np.array([[0.0], [1.0]]), np.array([[1.0], [1.0]])).tolist()   # d/d(loc, scale)
    [2.0, 1.0]
    >>> g.params = [0.0, 1.0]
    >>> g
    LocationScale(loc=[0.0], scale=[1.0])
    """

    def __init__(self, loc: Any = 0.0, scale: Any = 1.0) -> None:
        loc = np.atleast_1d(as_finite_array(loc, "loc")).astype(np.float64)
        if loc.ndim != 1 or loc.size == 0:
            raise ValueError(f"loc must be a scalar or a 1-D vector; got shape {loc.shape}.")
        scale = as_finite_array(scale, "scale")
        if scale.ndim > 1:
            raise ValueError(f"scale must be a scalar or a 1-D vector; got shape {scale.shape}.")
        if scale.ndim == 1 and scale.size not in (1, loc.size):
            raise ValueError(f"scale must be a scalar or have one entry per axis ({loc.size}, "
                             f"from loc); got {scale.size} entries.")
        self.ndim = self.latent_dim = int(loc.size)
        self._theta = np.concatenate([loc, np.broadcast_to(scale, loc.shape)]).astype(np.float64)

    # -- parameters
    @property
    def params(self) -> np.ndarray:
        """``[loc, scale]`` as a flat float64 array (a copy), shape ``(2 * ndim,)``."""
        return self._theta.copy()

    @params.setter
    def params(self, value: Any) -> None:
        theta = np.ravel(as_finite_array(value, "params"))
        if theta.size != self._theta.size:
            raise ValueError(f"params must have {self._theta.size} entries ([loc, scale], "
                             f"{self.ndim} each); got {theta.size}.")
        self._theta = theta.astype(np.float64, copy=True)

    @property
    def param_names(self) -> tuple[str, ...]:
        """Names of the parameters, in the order of :attr:`params`."""
        if self.ndim == 1:
            return ("loc", "scale")
        return (tuple(f"loc[{k}]" for k in range(self.ndim))
                + tuple(f"scale[{k}]" for k in range(self.ndim)))

    @property
    def loc(self) -> np.ndarray:
        """Location per axis, shape (ndim,)."""
        return self._theta[: self.ndim].copy()

    @property
    def scale(self) -> np.ndarray:
        """Scale per axis, shape (ndim,)."""
        return self._theta[self.ndim:].copy()

    def __repr__(self) -> str:
        return f"LocationScale(loc={self.loc.tolist()}, scale={self.scale.tolist()})"

    # -- sampling and derivatives
    def sample(self, z: Any) -> np.ndarray:
        """Generated points ``scale * z + loc``.

        Parameters
        ----------
        z : array_like, shape (n, ndim) (or (n,) in 1D)
            Latent samples.

        Returns
        -------
        numpy.ndarray, shape (n, ndim)
        """
        z = self._z(z)
        return z * self.scale + self.loc

    def vjp(self, z: Any, grad_x: Any) -> np.ndarray:
        """Gradient w.r.t. ``[loc, scale]`` of ``sum_j <grad_x[j], g(z_j)>``.

        Parameters
        ----------
        z : array_like, shape (n, ndim)
            Latent samples.
        grad_x : array_like, shape (n, ndim)
            One vector per generated point.

        Returns
        -------
        numpy.ndarray, shape (2 * ndim,)
            ``[sum_j grad_x[j], sum_j grad_x[j] * z_j]``.
        """
        z = self._z(z)
        v = self._grad_x(grad_x, z.shape[0])
        return np.concatenate([v.sum(axis=0), (v * z).sum(axis=0)])

    # -- exact masses
    def distribution(self) -> Normal | PointMass:
        """The pushforward ``N(loc, diag(scale^2))`` (a point mass when every scale is 0).

        Raises
        ------
        ValueError
            When some but not all scales are zero (use :meth:`cell_masses`, which handles it).
        """
        var = self.scale ** 2
        if np.all(var > 0):
            return Normal(self.loc, var)
        if np.all(var == 0):
            return PointMass(self.loc)
        raise ValueError(f"the pushforward of {self!r} is degenerate along some axes only; it "
                         "is not an otgrid distribution (cell_masses handles it).")

    def cell_masses(self, grid: Grid, *, outside: str = "fold",
                    outside_tol: float = 1e-12) -> np.ndarray:
        r"""Exact masses of the pushforward :math:`\mathcal N(\mathrm{loc}, \mathrm{diag}(
        \mathrm{scale}^2))` on the cells of ``grid``.

        A product of 1D normal-CDF differences per axis (a point mass along an axis whose scale
        is 0), so exact to round-off.

        Parameters
        ----------
        grid : Grid
            A grid of dimension :attr:`ndim`.
        outside : {"fold", "renormalize", "raise"}, optional
            The mass outside the bounds, as in :meth:`otgrid.grid.Grid.discretize`: moved into
            the boundary cells (default), dropped with the rest rescaled, or an error.
        outside_tol : float, optional
            Outside mass regarded as round-off; above it an
            :class:`~otgrid.errors.OutsideMassWarning` carrying the amount is issued.

        Returns
        -------
        numpy.ndarray, shape grid.shape
            Masses summing to 1.

        Examples
        --------
        >>> from otgrid.grid import Grid
        >>> from otgrid.sco import LocationScale
        >>> grid = Grid((-1, 1), 2)
        >>> m = LocationScale(0.0, 1.0).cell_masses(grid, outside_tol=1.0)  # tails folded in
        >>> m.round(12).tolist()
        [0.5, 0.5]
        """
        tol = _check_outside(outside, outside_tol)
        grid = _check_grid(grid, self.ndim)
        loc, scale = self.loc, np.abs(self.scale)
        factors = []
        inside = 1.0
        for k in range(self.ndim):
            axis = Grid(grid.bounds[k], grid.shape[k])
            dist = Normal(loc[k], scale[k] ** 2) if scale[k] ** 2 > 0 else PointMass(loc[k])
            out_k = axis.outside_mass(dist)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", OutsideMassWarning)
                mode = "fold" if outside == "fold" else "renormalize"
                factors.append(axis.discretize(dist, outside=mode, outside_tol=1.0))
            inside *= 1.0 - out_k
        out = max(0.0, 1.0 - inside)
        masses = factors[0]
        for f in factors[1:]:
            masses = np.multiply.outer(masses, f)
        _report_outside(out, tol, outside, repr(self), grid)
        return np.ascontiguousarray(masses)


# --------------------------------------------------------------------------- Affine
class Affine(_GaussianLatent):
    r"""Affine generator ``g(z) = A z + b`` with ``z ~ N(0, I_k)``.

    Its pushforward is :math:`\mathcal N(b, A A^\top)`.

    Parameters
    ----------
    A : float or array_like, shape (ndim, latent_dim)
        The matrix (a scalar means 1D, ``A = [[a]]``).
    b : float or array_like, shape (ndim,)
        The offset.

    Attributes
    ----------
    ndim : int
        ``A.shape[0]``.
    latent_dim : int
        ``A.shape[1]``.
    params : ndarray, shape (ndim * latent_dim + ndim,)
        ``[A.ravel() (row-major), b]``.

    Notes
    -----
    Exact cell masses (:meth:`cell_masses`) need a non-singular covariance :math:`A A^\top`;
    a non-diagonal one is supported in 1D and 2D (the quadrature of
    :class:`otgrid.grid.distributions.Normal`, exact to round-off).

    Examples
    --------
    >>> import numpy as np
    >>> from otgrid.sco import Affine
    >>> g = Affine([[2.0, 0.0], [1.0, 1.0]], [0.0, 1.0])
    >>> g.sample(np.array([[1.0, 2.0]])).tolist()
    [[2.0, 4.0]]
    >>> g.distribution().cov.tolist()
    [[4.0, 2.0], [2.0, 2.0]]
    """

    def __init__(self, A: Any, b: Any = 0.0) -> None:
        A = as_finite_array(A, "A")
        if A.ndim == 0:
            A = A.reshape(1, 1)
        if A.ndim != 2 or A.size == 0:
            raise ValueError(f"A must be a matrix of shape (ndim, latent_dim) (or a scalar in "
                             f"1D); got shape {A.shape}.")
        b = np.atleast_1d(as_finite_array(b, "b")).astype(np.float64)
        if b.size == 1 and A.shape[0] > 1:
            b = np.full(A.shape[0], float(b[0]))
        if b.shape != (A.shape[0],):
            raise ValueError(f"b must have one entry per output axis ({A.shape[0]}, the rows of "
                             f"A); got shape {b.shape}.")
        self.ndim, self.latent_dim = int(A.shape[0]), int(A.shape[1])
        self._theta = np.concatenate([A.ravel(), b]).astype(np.float64)

    @property
    def params(self) -> np.ndarray:
        """``[A.ravel(), b]`` as a flat float64 array (a copy)."""
        return self._theta.copy()

    @params.setter
    def params(self, value: Any) -> None:
        theta = np.ravel(as_finite_array(value, "params"))
        if theta.size != self._theta.size:
            raise ValueError(f"params must have {self._theta.size} entries ([A.ravel(), b] with "
                             f"A of shape ({self.ndim}, {self.latent_dim})); got {theta.size}.")
        self._theta = theta.astype(np.float64, copy=True)

    @property
    def param_names(self) -> tuple[str, ...]:
        """Names of the parameters, in the order of :attr:`params`."""
        return (tuple(f"A[{i},{j}]" for i in range(self.ndim) for j in range(self.latent_dim))
                + tuple(f"b[{i}]" for i in range(self.ndim)))

    @property
    def A(self) -> np.ndarray:
        """The matrix, shape (ndim, latent_dim)."""
        return self._theta[: self.ndim * self.latent_dim].reshape(self.ndim,
                                                                 self.latent_dim).copy()

    @property
    def b(self) -> np.ndarray:
        """The offset, shape (ndim,)."""
        return self._theta[self.ndim * self.latent_dim:].copy()

    def __repr__(self) -> str:
        return f"Affine(A={self.A.tolist()}, b={self.b.tolist()})"

    def sample(self, z: Any) -> np.ndarray:
        """Generated points ``A z + b``.

        Parameters
        ----------
        z : array_like, shape (n, latent_dim)
            Latent samples.

        Returns
        -------
        numpy.ndarray, shape (n, ndim)
        """
        z = self._z(z)
        return z @ self.A.T + self.b

    def vjp(self, z: Any, grad_x: Any) -> np.ndarray:
        """Gradient w.r.t. ``[A.ravel(), b]`` of ``sum_j <grad_x[j], A z_j + b>``.

        Parameters
        ----------
        z : array_like, shape (n, latent_dim)
            Latent samples.
        grad_x : array_like, shape (n, ndim)
            One vector per generated point.

        Returns
        -------
        numpy.ndarray, shape (ndim * latent_dim + ndim,)
            ``[(grad_x^T z).ravel(), grad_x.sum(0)]``.
        """
        z = self._z(z)
        v = self._grad_x(grad_x, z.shape[0])
        return np.concatenate([(v.T @ z).ravel(), v.sum(axis=0)])

    def distribution(self) -> Normal:
        """The pushforward ``N(b, A A^T)``.

        Raises
        ------
        ValueError
            When ``A A^T`` is singular (the pushforward has no density).
        """
        A = self.A
        cov = A @ A.T
        cov = 0.5 * (cov + cov.T)
        try:
            return Normal(self.b, cov)
        except ValueError:
            rank = int(np.linalg.matrix_rank(A))
            raise ValueError(
                f"A = {A.tolist()} has rank {rank} < {self.ndim}: the pushforward N(b, A A^T) "
                "is degenerate and has no exact cell masses here. Use a full-rank A, or build "
                "the masses from samples (masses='samples' in otgrid.sco.fit).") from None

    def cell_masses(self, grid: Grid, *, outside: str = "fold",
                    outside_tol: float = 1e-12) -> np.ndarray:
        r"""Exact masses of the pushforward :math:`\mathcal N(b, A A^\top)` on the cells of
        ``grid``.

        Parameters
        ----------
        grid : Grid
            A grid of dimension :attr:`ndim` (1D or 2D when ``A A^T`` is not diagonal).
        outside : {"fold", "renormalize", "raise"}, optional
            The mass outside the bounds, as in :meth:`otgrid.grid.Grid.discretize`.
        outside_tol : float, optional
            Outside mass regarded as round-off; above it an
            :class:`~otgrid.errors.OutsideMassWarning` carrying the amount is issued.

        Returns
        -------
        numpy.ndarray, shape grid.shape
            Masses summing to 1.

        Raises
        ------
        ValueError
            When ``A A^T`` is singular, or with ``outside="raise"`` and mass outside.

        Examples
        --------
        >>> from otgrid.grid import Grid
        >>> from otgrid.sco import Affine
        >>> m = Affine([[1.0, 0.0], [0.5, 1.0]]).cell_masses(Grid([(-9, 9), (-9, 9)], 4))
        >>> round(float(m.sum()), 12)
        1.0
        """
        tol = _check_outside(outside, outside_tol)
        grid = _check_grid(grid, self.ndim)
        dist = self.distribution()
        if outside == "raise":
            return grid.discretize(dist, outside="raise", outside_tol=tol)
        amount = 0.0
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", OutsideMassWarning)
            masses = grid.discretize(dist, outside=outside, outside_tol=0.0)
        for w in caught:  # the grid's report is re-issued below, in the generator's words
            if issubclass(w.category, OutsideMassWarning):
                amount += float(getattr(w.message, "mass", 0.0))
            else:
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
        _report_outside(amount, tol, outside, repr(self), grid)
        return masses


def _report_outside(amount: float, tol: float, outside: str, what: str, grid: Grid) -> None:
    """Warn (or raise, for ``outside="raise"``) about generated mass outside the grid."""
    if amount <= tol:
        return
    if outside == "raise":
        raise ValueError(f"{amount:.6g} of the mass generated by {what} lies outside the grid "
                         f"bounds {grid.bounds}. Enlarge the bounds, or pass outside='fold' or "
                         "outside='renormalize'.")
    how = {"fold": "folded into the boundary cells",
           "renormalize": "dropped and the inside masses rescaled to 1"}[outside]
    warnings.warn(OutsideMassWarning(
        f"{amount:.6g} of the mass generated by {what} lies outside the grid bounds "
        f"{grid.bounds}; it was {how}. Enlarge the bounds to avoid this.", mass=amount),
        stacklevel=3)
