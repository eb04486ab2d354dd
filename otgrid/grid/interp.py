"""The interpolant of a grid function (a critic): value and gradient at arbitrary points.

A critic computed on a grid is a set of samples at the cell centres. To use it on samples of a
generator, :class:`GridFunction` turns it into a function on the whole space: (bi)linear
interpolation inside the box of the cell centres (Pinetz, Soukup and Pock, eqs. 24-26) and an
extension outside it whose gradient points back into the box.
:attr:`GridFunction.lipschitz_constant` is the exact Lipschitz constant of the interpolant and
:meth:`GridFunction.to_lipschitz` a nearby interpolant that is 1-Lipschitz everywhere (the
bilinear interpolant of a feasible 2D grid critic is only sqrt(2)-Lipschitz).
"""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from otgrid._device import is_cupy_array
from otgrid._validation import as_finite_array, check_choice, check_positive_int
from otgrid.grid.grid import Grid
from otgrid.kernels.interp_numba import (
    interp1d_value_grad,
    interp2d_value_grad,
    lipschitz_repair_2d,
)

if TYPE_CHECKING:
    from numpy.typing import ArrayLike

__all__ = ["GridFunction"]

Norm = Literal["euclidean", "cityblock"]
NORMS = ("euclidean", "cityblock")
# Corner gradients of norm <= 1 + _REPAIR_TOL are left to the final division of to_lipschitz:
# on saturated critics they are most of the projections, and the division by the largest
# remaining corner gradient (a few percent above 1 after 16 sweeps) covers them anyway.
_REPAIR_TOL = 1e-3


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

    **Lipschitz constant.** :attr:`lipschitz_constant` is the exact Lipschitz constant
    :math:`L` of :math:`F` on :math:`B` for the distance of ``norm``: :math:`|x - y|`
    (``"euclidean"``) or :math:`|x - y|_1` (``"cityblock"``, the sup of
    :math:`\max_k |\partial_k F|`). In 1D, :math:`L = \max_i |f_{i+1} - f_i| / \Delta`. In 2D,
    on the square between the centres :math:`(i, j)` and :math:`(i+1, j+1)`,
    :math:`\partial_0 F` interpolates linearly in :math:`x_1` between the axis-0 difference
    quotients :math:`a_j, a_{j+1}` of its two rows and :math:`\partial_1 F` interpolates in
    :math:`x_0` between the axis-1 quotients :math:`b_i, b_{i+1}` of its two columns, so the
    convex :math:`|\nabla F|^2` is largest at a corner:

    .. math::

        L = \max_{\text{squares}} \sqrt{\max(a_j^2, a_{j+1}^2) + \max(b_i^2, b_{i+1}^2)}
        \quad \text{(euclidean)}, \qquad
        L = \max(\max |a|, \max |b|) \quad \text{(cityblock)}.

    On the whole space, extension included: in 1D and for ``"cityblock"`` the constant is
    exactly :math:`\max(1, L)` (the extension has slopes of norm at most 1, in the max norm
    for the cap :math:`C`, and tends to 1 far away); for ``"euclidean"`` in 2D it is exactly 1
    when :math:`L \le 1` (then :math:`F = M` outside) and lies in
    :math:`[L, \max(L, \sqrt{1 + L_\partial^2})]` when :math:`L > 1`, :math:`L_\partial \le L`
    being the largest slope along :math:`\partial B` (the cap's gradient has norm
    :math:`\sqrt{s^2 + d^2 / (D^2 + d^2)}`, :math:`s` the slope along the boundary at
    :math:`Px`). So ``lipschitz_constant <= 1`` exactly when :math:`F` is 1-Lipschitz on the
    whole space.

    For a *feasible grid critic* (:math:`|(Df)_i| \le 1` in every cell, forward differences,
    see :func:`otgrid.solve_critic`) every difference quotient is at most 1 in absolute value,
    so :math:`|\partial_k F| \le 1`: :math:`F` is 1-Lipschitz for :math:`|x - y|_1` on the
    whole space -- the property a ``"cityblock"`` critic should have -- and the 1D
    interpolant is exactly 1-Lipschitz. For the Euclidean norm in 2D, however, a corner of a
    square pairs the axis-0 quotient of one row with the axis-1 quotient of a column that
    belong to different cells, and both can be 1: the bilinear interpolant of a feasible
    critic is only :math:`\sqrt{2}`-Lipschitz (:math:`L \le \sqrt{2}`,
    :math:`L_\partial \le 1`). Optimal critics reach it: :math:`L = 1.402, 1.410, 1.413` at
    :math:`64^2, 128^2, 256^2` cells for ``eight_gaussians()`` vs ``Normal([0, 0], 1)`` on
    :math:`[-4, 4]^2`. The samples themselves need not be 1-Lipschitz on the lattice (e.g.
    :math:`f_{00} = 0`, :math:`f_{10} = f_{01} = 1/\sqrt{2}`, :math:`f_{11} = 1 + 1/\sqrt{2}`
    with unit spacing is feasible), so no interpolant through them is 1-Lipschitz in general;
    :meth:`to_lipschitz` moves them.

    Parameters
    ----------
    grid : Grid
        A 1D or 2D grid (``grid.ndim`` in {1, 2}).
    values : array_like, shape grid.shape
        Samples at the cell centres ``grid.centers`` (e.g. the critic of a solve); a CuPy
        array is copied to the host once.
    norm : {"euclidean", "cityblock"}, optional
        The distance in which :attr:`lipschitz_constant` is measured and :meth:`to_lipschitz`
        makes the function 1-Lipschitz (the norm of the critic's constraint;
        :meth:`otgrid.CriticResult.interpolant` passes it). It does not change the values.

    Attributes
    ----------
    grid : Grid
        The grid.
    values : ndarray, shape grid.shape
        A read-only float64 copy of the samples.
    ndim : int
        Dimension of the points (``grid.ndim``).
    norm : str
        The distance of :attr:`lipschitz_constant`.
    lipschitz_constant : float
        Exact Lipschitz constant of the interpolant on the box of centres (cached).

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

    A feasible 2D critic whose bilinear interpolant has slope sqrt(2) at a corner, and the
    1-Lipschitz interpolant near it:

    >>> s = 0.5 ** 0.5
    >>> f = GridFunction(Grid([(0.0, 2.0), (0.0, 2.0)], 2), [[0.0, s], [s, 1.0 + s]])
    >>> round(f.lipschitz_constant, 6)
    1.414214
    >>> g = f.to_lipschitz()
    >>> bool(g.lipschitz_constant <= 1.0)
    True
    """

    def __init__(self, grid: Grid, values: ArrayLike, *, norm: Norm = "euclidean") -> None:
        _check_grid(grid)
        norm = check_choice(norm, "norm", NORMS)
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
        self._norm = norm
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

    @property
    def norm(self) -> str:
        """The distance of :attr:`lipschitz_constant`: ``"euclidean"`` or ``"cityblock"``."""
        return self._norm

    @cached_property
    def lipschitz_constant(self) -> float:
        """Exact Lipschitz constant of the (bi)linear interpolant on the box of centres.

        Measured for the distance of :attr:`norm`; the formula, and what it says about the
        extension outside the box, are in the class description. ``lipschitz_constant <= 1``
        exactly when the interpolant is 1-Lipschitz on the whole space.
        """
        return _lipschitz_constant(self._values, self._dx, self._norm)

    def to_lipschitz(self, *, sweeps: int = 16) -> GridFunction:
        r"""A nearby interpolant that is 1-Lipschitz on the whole space.

        In 1D and for ``norm="cityblock"`` the bound is attained by a rescaling: the values
        divided by :math:`\max(1, L)`, :math:`L` = :attr:`lipschitz_constant` (for a feasible
        grid critic :math:`L \le 1` up to rounding, so the values are kept). For
        ``"euclidean"`` in 2D the values first go through ``sweeps`` repair sweeps that push
        them towards the *corner constraints* (:math:`a^2 + b^2 \le 1` for the four pairs of
        an axis-0 and an axis-1 difference quotient of every square, i.e.
        :math:`|\nabla F| \le 1` at the four corners); the result is then divided by
        :math:`\max(1, L)` of its own interpolant, so its :attr:`lipschitz_constant` is at
        most 1 (to rounding) and, by the class description, the whole function, extension
        included, is 1-Lipschitz.

        A sweep visits the samples in raster order and, at every sample :math:`p`, enforces
        each violated corner constraint
        :math:`((g_{p + s_0 e_0} - g_p)/\Delta_0)^2 + ((g_{p + s_1 e_1} - g_p)/\Delta_1)^2
        \le 1` (:math:`s_k = \pm 1`): the three values move to the nearest point at which
        that corner gradient is scaled to unit norm, keeping their sum (Gauss-Seidel
        projections, in the spirit of the repair of the critic in the certificate); the
        sweeps alternate between the four raster orientations, and corner gradients of norm
        at most :math:`1 + 10^{-3}` are left to the final division. Values that already satisfy
        every corner constraint are left unchanged, and every move keeps the plain sum of the
        values, so the result has the unweighted mean of the input divided by
        :math:`\max(1, L)`; it is not re-centred otherwise (the weighted mean of a critic
        stays zero only approximately). A single sweep that projects each value on the
        interval left by its final neighbours (as the certificate's repair does for the cell
        constraints) is unstable here: the corner constraints of a saturated critic are tight
        and that sweep keeps less than 20% of W.

        **What is certified.** Let :math:`g` be the returned values and :math:`G` their
        interpolant (1-Lipschitz for the distance of :attr:`norm`). For masses ``mu``,
        ``nu`` on the grid with equal totals, :math:`\langle \mu - \nu, g \rangle` is a
        lower bound on (i) the exact W1 between the discrete measures
        :math:`\sum_i \mu_i \delta_{x_i}` and :math:`\sum_i \nu_i \delta_{x_i}` at the
        cell centres for that distance (Kantorovich-Rubinstein duality; POT's ``emd2`` with
        that cost), and (ii) ``W_grid`` (the corner constraints imply the cell
        constraints), so also on ``res.upper``. For probability distributions supported in
        the grid's bounds whose cell masses are exactly ``mu`` and ``nu``,
        :math:`W_1(\mu, \nu) \ge \langle \mu - \nu, g\rangle - \delta` with
        :math:`\delta` the cell diameter (:math:`\sqrt{\sum_k \Delta_k^2}`, or
        :math:`\sum_k \Delta_k` for ``"cityblock"``), because
        :math:`|G(x) - G(c(x))| \le \delta / 2` between a point and its cell's centre. For
        ``"euclidean"`` in 2D the plain critic certifies only ``W_grid`` (``res.lower``): (i)
        and the bound on :math:`W_1(\mu, \nu)` need a 1-Lipschitz interpolant.

        **How much is lost.** The fraction :math:`\langle \mu - \nu, g\rangle / W_{grid}` kept
        from optimal critics (``solve_critic(mu, nu, grid, tol=1e-6)`` on :math:`[-4, 4]^2`,
        ``mu`` first; ``N((2, 1), I)`` loses 2.4% of its mass outside the box, renormalised),
        for the plain rescaling :math:`f / L` and for this method with the default 16 and with
        64 sweeps; "best" is the largest value of any critic that satisfies the corner
        constraints (cvxpy + Clarabel, on the grids where it is affordable):

        =====================  =====  =====  =====  =========  =========  =====
        problem                cells  L(f)   f / L  16 sweeps  64 sweeps  best
        =====================  =====  =====  =====  =========  =========  =====
        8 gaussians, N(0, I)   64^2   1.402  0.713  0.895      0.911      0.949
        8 gaussians, N(0, I)   128^2  1.410  0.709  0.920      0.928      0.963
        8 gaussians, N(0, I)   256^2  1.413  0.708  0.942      0.951
        N(0, I), N((2, 1), I)  64^2   1.316  0.760  0.991      0.994      0.999
        N(0, I), N((2, 1), I)  128^2  1.346  0.743  0.992      0.995      1.000
        N(0, I), N((2, 1), I)  256^2  1.353  0.739  0.993      0.996
        =====================  =====  =====  =====  =========  =========  =====

        The repair costs about 30 ms at :math:`256^2` and 0.5 s at :math:`1024^2` cells (16
        sweeps, one core), proportionally more with more sweeps.

        Parameters
        ----------
        sweeps : int, optional
            Number of repair sweeps (2D euclidean only; 0: only the division by
            :math:`\max(1, L)`, the plain rescaling).

        Returns
        -------
        GridFunction
            Same grid and norm, new values; ``lipschitz_constant <= 1`` (to rounding).
        """
        sweeps = check_positive_int(sweeps, "sweeps", minimum=0)
        vals = self._values
        if self.ndim == 2 and self._norm == "euclidean" and sweeps > 0 and (
                self.lipschitz_constant > 1.0):
            vals = lipschitz_repair_2d(vals, self._dx[0], self._dx[1], sweeps, _REPAIR_TOL)
        lip = _lipschitz_constant(vals, self._dx, self._norm)
        if lip > 1.0:
            # Rounding the quotients moves each value by eps |v|, a difference quotient by up
            # to 2 eps max|v| / dx: divide by that much more so the constant stays <= 1.
            eps = np.finfo(np.float64).eps
            margin = 4.0 * eps * (1.0 + np.abs(vals).max() / min(self._dx))
            vals = vals / (lip * (1.0 + margin))
        return GridFunction(self._grid, vals, norm=self._norm)

    def __repr__(self) -> str:
        return f"GridFunction(grid={self._grid!r}, norm={self._norm!r})"

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

        ``x`` is a CuPy array (a NumPy array under numba's CUDA simulator). Everything runs on
        the device that holds ``x``, whatever device is current: the samples and centres are
        copied there once and kept (per device), the outputs are allocated there, and the
        kernels of ``otgrid.kernels.interp_cuda`` compute value and gradient in one pass, one
        thread per point, in float64.
        """
        from otgrid._device import array_module, device_id, get_array_module, launch, on_device
        from otgrid.kernels import interp_cuda as k

        xp = get_array_module(x)
        if xp is np:
            xp = array_module()  # raises with the reason when CUDA cannot run here
        with on_device(x):
            arr = xp.asarray(x, dtype=np.float64)
            if not bool(xp.isfinite(arr).all()):
                raise ValueError("x must contain only finite values (no NaN or inf).")
            pts, single = self._shape_points(arr, xp)
            key = f"{xp.__name__}:{device_id(x)}"
            dev = self._device.get(key)
            if dev is None:
                dev = self._device[key] = (
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
                launch(k.interp2d_value_grad, n, pts, dev[0], dev[1], dev[2],
                       1.0 / self._dx[0], 1.0 / self._dx[1], diam, val, g)
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


def _lipschitz_constant(values: np.ndarray, dx: tuple[float, ...], norm: str) -> float:
    """Exact Lipschitz constant of the (bi)linear interpolant of ``values`` on the box of
    centres, for the distance of ``norm`` (see :class:`GridFunction`)."""
    if values.ndim == 1:
        return float(np.abs(np.diff(values)).max() / dx[0])
    a = np.abs(np.diff(values, axis=0)) / dx[0]  # axis-0 quotients, shape (N0 - 1, N1)
    b = np.abs(np.diff(values, axis=1)) / dx[1]  # axis-1 quotients, shape (N0, N1 - 1)
    if norm == "cityblock":
        return float(max(a.max(), b.max()))
    a_sq = np.maximum(a[:, :-1], a[:, 1:])  # per square, the larger of its two rows
    b_sq = np.maximum(b[:-1, :], b[1:, :])  # per square, the larger of its two columns
    return float(np.sqrt((a_sq * a_sq + b_sq * b_sq).max()))


def _check_grid(grid: object) -> None:
    """Raise a TypeError unless ``grid`` is an :class:`otgrid.grid.Grid`."""
    if not isinstance(grid, Grid):
        raise TypeError(
            f"grid must be an otgrid.grid.Grid; got {type(grid).__name__}. "
            "Build one with otgrid.grid.Grid(bounds, shape)."
        )
