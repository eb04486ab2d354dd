"""The interpolant of a grid function (a critic): value and gradient at arbitrary points.

A critic computed on a grid is a set of samples at the cell centres. To use it on samples of a
generator, :class:`GridFunction` turns it into a function on the whole space: (bi)linear
interpolation inside the box of the cell centres (Pinetz, Soukup and Pock, eqs. 24-26) and a
1-Lipschitz extension outside it whose gradient points back into the box.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from otgrid._device import is_cupy_array
from otgrid._validation import as_finite_array
from otgrid.grid.grid import Grid
from otgrid.kernels.interp_numba import interp1d_value_grad, interp2d_value_grad

if TYPE_CHECKING:
    from numpy.typing import ArrayLike

__all__ = ["GridFunction"]


class GridFunction:
    r"""Continuous (bi)linear interpolant of samples at the cell centres of a 1D or 2D grid.

    Let :math:`c^k_0 < \dots < c^k_{N_k-1}` be the cell centres of axis :math:`k`
    (``grid.centers[k]``, spacing :math:`\Delta_k`) and :math:`f_i` the samples. Call
    :math:`B = \prod_k [c^k_0, c^k_{N_k-1}]` the box of the centres, :math:`P` the Euclidean
    projection onto :math:`B` and :math:`d(x) = |x - Px|` the distance to it.

    **Inside** :math:`B` the function is the interpolant of Pinetz et al. (eqs. 24-26) with the hat
    kernel :math:`\phi(t) = \max(0, 1 - |t|)`,

    .. math::

        f(x) = \sum_i f_i \prod_k \phi\!\left(\frac{x_k - c^k_{i_k}}{\Delta_k}\right),

    i.e. linear interpolation in 1D and bilinear interpolation in 2D, exact for
    :math:`a + b x` (1D) and :math:`a + b x + c y + d x y` (2D). The gradient is the exact
    gradient of that piecewise (bi)linear function; on a cell boundary it is taken from the cell
    given by ``floor`` (right-continuous), and at the upper end of :math:`B` from the last cell.

    **Outside** :math:`B` the function is extended so that it stays continuous, is 1-Lipschitz
    (Euclidean norm) whenever :math:`f` is 1-Lipschitz on :math:`B`, and has a gradient that
    points back into :math:`B` (:math:`\langle \nabla F(x), x - Px \rangle < 0`): a generator
    whose samples left the box is pulled back by the critic.

    * 1D: :math:`F(x) = f(Px) - d(x)`, gradient :math:`-\operatorname{sign}(x - Px)`.
    * 2D: :math:`F(x) = \min\big(M(x),\ C(x)\big)` with the McShane (smallest 1-Lipschitz)
      extension of :math:`f` restricted to the boundary :math:`\partial B`,

      .. math::

          M(x) = \max_{z \in \partial B} \big[ f(z) - |x - z| \big],

      and the boundary cap, with :math:`D` the diameter of :math:`B`,

      .. math::

          C(x) = f(Px) - \left(\sqrt{D^2 + d(x)^2} - D\right).

      On each piece of the boundary polygon between two consecutive centres, :math:`f` is
      linear, :math:`f = \alpha + g s` in the arc length :math:`s`, and
      :math:`\alpha + g s - \sqrt{(s - s_x)^2 + h^2}` (:math:`s_x`, :math:`h`: the coordinates
      of :math:`x` along and across the piece) is concave in :math:`s`; it is maximised in
      closed form at :math:`s = s_x + g h / \sqrt{1 - g^2}` clamped to the piece when
      :math:`|g| < 1`, at the end the slope points to when :math:`|g| \ge 1`. The best piece
      gives :math:`M` and its maximiser :math:`z^*`; this costs :math:`O(N_0 + N_1)` per
      outside point.

      Why both terms: :math:`M` alone is exactly 1-Lipschitz and, when :math:`f` is
      1-Lipschitz on :math:`\partial B`, :math:`M \le C` (because
      :math:`|x - z|^2 \ge |Px - z|^2 + d^2` for :math:`z \in B`), so then :math:`F = M`
      everywhere outside; the cap :math:`C` equals :math:`f` on :math:`\partial B`, so the
      minimum keeps :math:`F` continuous across :math:`\partial B` even when the samples are
      slightly non-Lipschitz (where :math:`M > f` on the boundary). The simpler
      :math:`f(Px) - d(x)` is not used: its gradient
      :math:`\nabla_t f(Px) - (x - Px)/d` has norm up to :math:`\sqrt{2}` when :math:`f` has a
      tangential slope, and it never exceeds :math:`M` (take :math:`z = Px`), so it cannot
      serve as a cap either.

      Gradient of the active branch (:math:`M` on ties): :math:`-(x - z^*)/|x - z^*|` for
      :math:`M` (envelope theorem), and
      :math:`\nabla_t f(Px) - (x - Px)/\sqrt{D^2 + d^2}` for :math:`C`, where
      :math:`\nabla_t f(Px)` is :math:`\nabla f(Px)` with the components along clamped axes set
      to zero (the derivative of :math:`P`).

    Parameters
    ----------
    grid : Grid
        A 1D or 2D grid (``grid.ndim`` in {1, 2}).
    values : array_like, shape grid.shape
        Samples at the cell centres ``grid.centers`` (e.g. the critic of a solve); a CuPy
        array is copied to the host once.

    Attributes
    ----------
    grid : Grid
        The grid.
    values : ndarray, shape grid.shape
        A read-only float64 copy of the samples.
    ndim : int
        Dimension of the points (``grid.ndim``).

    Notes
    -----
    Points are given as an array of shape ``(n, ndim)``; in 1D also ``(n,)``. A single point of
    shape ``(ndim,)`` (in 2D) or a scalar (in 1D) gives a scalar value and a gradient of shape
    ``(ndim,)``. In 1D an array of shape ``(n,)`` is always ``n`` points (so shape ``(1,)`` is
    one point, returned as arrays of shapes ``(1,)`` and ``(1, 1)``). Evaluation runs in
    compiled, parallel Numba kernels that return value and gradient in one pass. Points given
    as a CuPy array are evaluated on their GPU by the numba-cuda kernels of
    ``otgrid.kernels.interp_cuda`` (one thread per point, float64; needs ``otgrid[cuda]``) and
    the results are CuPy arrays: no transfer to the host.

    References
    ----------
    .. [1] T. Pinetz, D. Soukup, T. Pock, "What is optimized in Wasserstein GANs?", eqs. 24-26.
    .. [2] E. J. McShane, "Extension of range of functions", Bull. AMS 40 (1934), 837-842.

    Examples
    --------
    >>> import numpy as np
    >>> from otgrid.grid import Grid, GridFunction
    >>> grid = Grid((0.0, 1.0), 4)                  # centres 0.125, 0.375, 0.625, 0.875
    >>> f = GridFunction(grid, 0.5 * grid.centers[0])
    >>> f(np.array([0.25, 0.5]))
    array([0.125, 0.25 ])
    >>> f.grad(0.5)
    array([0.5])
    >>> float(f(1.875))                             # outside: f(0.875) - 1.0
    -0.5625
    """

    def __init__(self, grid: Grid, values: ArrayLike) -> None:
        _check_grid(grid)
        if grid.ndim not in (1, 2):
            raise ValueError(
                f"grid must be 1D or 2D for GridFunction; got a grid with ndim={grid.ndim}. "
                "Interpolation is implemented for 1D (linear) and 2D (bilinear) grids only."
            )
        if is_cupy_array(values):  # a critic on the GPU: a host copy for the CPU path
            values = values.get()
        vals = np.array(as_finite_array(values, "values"), dtype=np.float64, order="C", copy=True)
        if vals.shape != tuple(grid.shape):
            raise ValueError(
                f"values must have the grid's shape {tuple(grid.shape)}; got shape {vals.shape}. "
                "Pass one sample per cell centre, indexed like grid.mesh()."
            )
        vals.setflags(write=False)
        self._grid = grid
        self._values = vals
        self._centers = tuple(
            np.ascontiguousarray(c, dtype=np.float64) for c in grid.centers
        )
        self._dx = tuple(float(d) for d in grid.dx)
        self._device: dict[str, tuple] = {}  # device copies of values and centres, per xp

    @property
    def grid(self) -> Grid:
        """The grid whose cell centres carry the samples."""
        return self._grid

    @property
    def values(self) -> np.ndarray:
        """Read-only float64 samples at the cell centres, shape ``grid.shape``."""
        return self._values

    @property
    def ndim(self) -> int:
        """Dimension of the points."""
        return int(self._grid.ndim)

    def __repr__(self) -> str:
        return f"GridFunction(grid={self._grid!r})"

    def __call__(self, x: ArrayLike) -> np.ndarray:
        """Values at points.

        Parameters
        ----------
        x : array_like, shape (n, ndim) or (ndim,); in 1D also (n,) or a scalar
            Points (a CuPy array: evaluated on its GPU, CuPy arrays returned).

        Returns
        -------
        ndarray, shape (n,) (or () for a single point)
            Values of the interpolant (extended outside the box of the centres).
        """
        return self.value_and_grad(x)[0]

    def grad(self, x: ArrayLike) -> np.ndarray:
        """Gradients at points.

        Parameters
        ----------
        x : array_like, shape (n, ndim) or (ndim,); in 1D also (n,) or a scalar
            Points (a CuPy array: evaluated on its GPU, CuPy arrays returned).

        Returns
        -------
        ndarray, shape (n, ndim) (or (ndim,) for a single point)
            Gradients of the interpolant (of the active branch outside the box).
        """
        return self.value_and_grad(x)[1]

    def value_and_grad(self, x: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
        """Values and gradients at points, computed in one pass.

        Parameters
        ----------
        x : array_like, shape (n, ndim) or (ndim,); in 1D also (n,) or a scalar
            Points (a CuPy array: evaluated on its GPU, CuPy arrays returned).

        Returns
        -------
        values : ndarray, shape (n,) (or () for a single point)
        grads : ndarray, shape (n, ndim) (or (ndim,) for a single point)
        """
        if is_cupy_array(x):
            return self._value_and_grad_cuda(x)
        pts, single = self._points(x)
        if self.ndim == 1:
            val, g = interp1d_value_grad(pts[:, 0].copy(), self._values, self._centers[0],
                                         self._dx[0])
            g = g.reshape(-1, 1)
        else:
            val, g = interp2d_value_grad(pts, self._values, self._centers[0],
                                         self._centers[1], self._dx[0], self._dx[1])
        if single:
            return val.reshape(()), g.reshape(self.ndim)
        return val, g

    def _value_and_grad_cuda(self, x: Any) -> tuple[Any, Any]:
        """:meth:`value_and_grad` on the CUDA device: device points in, device arrays out.

        ``x`` is a CuPy array (a NumPy array under numba's CUDA simulator). The samples and
        centres are copied to the device once per array module and kept; the kernels of
        ``otgrid.kernels.interp_cuda`` compute value and gradient in one pass, one thread per
        point, in float64.
        """
        from otgrid._device import array_module, get_array_module, launch
        from otgrid.kernels import interp_cuda as k

        xp = get_array_module(x)
        if xp is np:
            xp = array_module()  # raises with the reason when CUDA cannot run here
        arr = xp.asarray(x, dtype=np.float64)
        if not bool(xp.isfinite(arr).all()):
            raise ValueError("x must contain only finite values (no NaN or inf).")
        pts, single = self._shape_points(arr, xp)
        dev = self._device.get(xp.__name__)
        if dev is None:
            dev = self._device[xp.__name__] = (
                xp.array(self._values), *(xp.array(c) for c in self._centers))
        n = pts.shape[0]
        val = xp.empty(n, dtype=np.float64)
        if self.ndim == 1:
            g = xp.empty(n, dtype=np.float64)
            launch(k.interp1d_value_grad, n, pts[:, 0], dev[0], dev[1], 1.0 / self._dx[0],
                   val, g)
            g = g.reshape(-1, 1)
        else:
            lo = [c[0] for c in self._centers]
            hi = [c[-1] for c in self._centers]
            diam = float(np.sqrt((hi[0] - lo[0]) ** 2 + (hi[1] - lo[1]) ** 2))
            g = xp.empty((n, 2), dtype=np.float64)
            launch(k.interp2d_value_grad, n, pts, dev[0], dev[1], dev[2], 1.0 / self._dx[0],
                   1.0 / self._dx[1], diam, val, g)
        if single:
            return val.reshape(()), g.reshape(self.ndim)
        return val, g

    def _points(self, x: ArrayLike) -> tuple[np.ndarray, bool]:
        """Validate ``x``; return it as a C-contiguous (n, ndim) array and a single-point flag."""
        return self._shape_points(as_finite_array(x, "x"), np)

    def _shape_points(self, arr: Any, xp: Any) -> tuple[Any, bool]:
        """Check the shape of points ``arr`` (an array of ``xp``); (n, ndim) C-contiguous."""
        ndim = self.ndim
        if ndim == 1:
            if arr.ndim == 0:
                return arr.reshape(1, 1), True
            if arr.ndim == 1:
                return xp.ascontiguousarray(arr.reshape(-1, 1)), False
            if arr.ndim == 2 and arr.shape[1] == 1:
                return xp.ascontiguousarray(arr), False
            raise ValueError(
                f"x must be a scalar or have shape (n,) or (n, 1) for a 1D grid; got shape "
                f"{arr.shape}."
            )
        if arr.ndim == 1 and arr.shape[0] == ndim:
            return xp.ascontiguousarray(arr.reshape(1, ndim)), True
        if arr.ndim == 2 and arr.shape[1] == ndim:
            return xp.ascontiguousarray(arr), False
        raise ValueError(
            f"x must have shape (n, {ndim}) or ({ndim},) for a {ndim}D grid; got shape "
            f"{arr.shape}. Stack the points as rows."
        )


def _check_grid(grid: object) -> None:
    """Raise a TypeError unless ``grid`` is an :class:`otgrid.grid.Grid`."""
    if not isinstance(grid, Grid):
        raise TypeError(
            f"grid must be an otgrid.grid.Grid; got {type(grid).__name__}. "
            "Build one with otgrid.grid.Grid(bounds, shape)."
        )
