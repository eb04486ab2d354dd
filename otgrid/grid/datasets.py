"""The toy distributions of the WGAN literature, defined exactly as in the reference code.

``eight_gaussians``, ``twentyfive_gaussians`` and ``swissroll`` follow ``inf_train_gen`` in
``gan_toy.py`` of Gulrajani et al., *Improved Training of Wasserstein GANs* (NeurIPS 2017),
https://github.com/igul222/improved_wgan_training ; ``parallel_lines`` is Example 1 of Arjovsky,
Chintala and Bottou, *Wasserstein GAN* (ICML 2017). Each returns a
:class:`~otgrid.grid.distributions.Distribution` with exact (or quadrature-exact) cell masses.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from otgrid._validation import as_rng
from otgrid.grid.distributions import (
    Distribution,
    Mixture,
    Normal,
    Uniform,
    _as_points,
    _check_edges,
    _normal_cells,
)
from otgrid.grid.funnels import FunnelPair

__all__ = ["FunnelPair", "SwissRoll", "eight_gaussians", "funnel_pair", "parallel_lines",
           "swissroll", "twentyfive_gaussians"]

_T_LOW, _T_HIGH = 1.5 * np.pi, 4.5 * np.pi
_SR_NODES = 8          # Gauss–Legendre nodes per sub-interval of t
_SR_WIDTH = 1.0        # sub-interval width in units of noise / max speed (see SwissRoll Notes)
_CHUNK = 4_000_000
_MAX_NODES = 2_000_000


def eight_gaussians() -> Mixture:
    r"""The "8gaussians" toy distribution of Gulrajani et al. (2017).

    Reference code (``gan_toy.py``): centres ``(±1, 0), (0, ±1), (±1/√2, ±1/√2)`` scaled by 2;
    each point is a uniformly chosen centre plus ``0.02 * N(0, I)`` noise, and the whole
    dataset is divided by 1.414. Exactly:

    .. math:: \frac{1}{8}\sum_{k=1}^{8} \mathcal N\big(2 c_k / 1.414,\;
              (0.02 / 1.414)^2 I\big).

    Returns
    -------
    Mixture
        Eight isotropic 2D Gaussians with equal weights.

    Examples
    --------
    >>> from otgrid.grid.datasets import eight_gaussians
    >>> d = eight_gaussians()
    >>> d.ndim, len(d.components)
    (2, 8)
    """
    r = 1.0 / np.sqrt(2.0)
    centres = [(1, 0), (-1, 0), (0, 1), (0, -1), (r, r), (r, -r), (-r, r), (-r, -r)]
    std = 0.02 / 1.414
    return Mixture([Normal(np.array(c, dtype=float) * 2.0 / 1.414, std ** 2) for c in centres])


def twentyfive_gaussians() -> Mixture:
    r"""The "25gaussians" toy distribution of Gulrajani et al. (2017).

    Reference code (``gan_toy.py``): centres ``(2i, 2j)`` for ``i, j`` in ``-2..2``, each point
    a centre plus ``0.05 * N(0, I)`` noise (equally many per centre), the dataset divided by
    2.828. Exactly:

    .. math:: \frac{1}{25}\sum_{i,j=-2}^{2} \mathcal N\big((2i, 2j) / 2.828,\;
              (0.05 / 2.828)^2 I\big).

    Returns
    -------
    Mixture
        Twenty-five isotropic 2D Gaussians with equal weights.

    Examples
    --------
    >>> from otgrid.grid.datasets import twentyfive_gaussians
    >>> len(twentyfive_gaussians().components)
    25
    """
    std = 0.05 / 2.828
    comps = [Normal(np.array([2.0 * i, 2.0 * j]) / 2.828, std ** 2)
             for i in range(-2, 3) for j in range(-2, 3)]
    return Mixture(comps)


def swissroll() -> SwissRoll:
    """The "swissroll" toy distribution of Gulrajani et al. (2017).

    Reference code (``gan_toy.py``): ``sklearn.datasets.make_swiss_roll(noise=0.25)``, keeping
    coordinates 0 and 2, divided by 7.5. Exactly: ``t = 1.5π(1 + 2U)`` with ``U ~ U(0, 1)``, the
    point ``((t cos t, t sin t) + 0.25 Z) / 7.5`` with ``Z ~ N(0, I)``. See :class:`SwissRoll`.

    Returns
    -------
    SwissRoll
        ``SwissRoll(noise=0.25, scale=7.5)``.

    Examples
    --------
    >>> from otgrid.grid.datasets import swissroll
    >>> swissroll()
    SwissRoll(noise=0.25, scale=7.5)
    """
    return SwissRoll()


def parallel_lines(theta: float) -> tuple[Uniform, Uniform]:
    r"""Two parallel segments: Example 1 of Arjovsky, Chintala and Bottou (2017).

    ``mu`` is uniform on :math:`\{0\} \times [0, 1]` and ``nu`` uniform on
    :math:`\{\theta\} \times [0, 1]` (degenerate :class:`~otgrid.grid.distributions.Uniform`).
    Their Wasserstein-1 distance is :math:`W_1(\mu, \nu) = |\theta|` (translate every point by
    :math:`\theta` horizontally), while JS, KL and total variation are discontinuous at
    :math:`\theta = 0`.

    Parameters
    ----------
    theta : float
        Horizontal offset of the second segment (finite).

    Returns
    -------
    mu, nu : Uniform
        The two segment distributions.

    Examples
    --------
    >>> from otgrid.grid.datasets import parallel_lines
    >>> mu, nu = parallel_lines(0.5)
    >>> nu
    Uniform(low=[0.5, 0.0], high=[0.5, 1.0])
    """
    if isinstance(theta, bool) or not isinstance(theta, (int, float, np.integer, np.floating)):
        raise TypeError(f"theta must be a real number; got {theta!r}.")
    theta = float(theta)
    if not np.isfinite(theta):
        raise ValueError(f"theta must be finite; got {theta}.")
    return Uniform([0.0, 0.0], [0.0, 1.0]), Uniform([theta, 0.0], [theta, 1.0])


def funnel_pair(n_funnels: int = 4, *, deg: float = 8.0, half_width: float = 2.5,
                offset: float | None = None, seed: int | None = 0) -> FunnelPair:
    r"""A "funnels" pair with a known optimal critic and :math:`W_1` (Korotin et al., 2022).

    ``Q`` is uniform on :math:`[-L, L]^2`, ``u(x) = min_k |x - c_k| + b_k`` (random apexes
    :math:`c_k` and small offsets :math:`b_k`), and ``P`` is ``Q`` pushed along the rays of
    ``u`` towards the apexes by :math:`T(x) = c_k + s (r/s)^{deg} e`. Then ``u`` is an optimal
    critic (high on ``Q``) and :math:`W_1(Q, P) = E_Q|x - T(x)|`, known in closed form. From
    Korotin, Kolesov and Burnaev, *Kantorovich Strikes Back! Wasserstein GANs are not Optimal
    Transport?*, NeurIPS 2022 Datasets and Benchmarks. See
    :class:`~otgrid.grid.funnels.FunnelPair` for the construction and its accuracy.

    Parameters
    ----------
    n_funnels : int, optional
        Number of funnels (>= 1).
    deg : float, optional
        Radial contraction exponent (> 1; ``numpy.inf``: ``P`` has an atom at each apex).
    half_width : float, optional
        ``L`` (> 0).
    offset : float, optional
        Offsets uniform in ``[0, offset]``; default ``0.1 * 2L / sqrt(n_funnels)``.
    seed : int or None, optional
        Seed of the draw.

    Returns
    -------
    FunnelPair
        With ``source`` (``Q``), ``target`` (``P``), ``potential``, ``critic``, ``sample``
        (coupled samples) and ``w1()``.

    Examples
    --------
    >>> import otgrid as og
    >>> pair = og.datasets.funnel_pair(16)
    >>> pair.apexes.shape, round(pair.w1(), 6)
    ((16, 2), 0.559403)
    """
    return FunnelPair(n_funnels, deg=deg, half_width=half_width, offset=offset, seed=seed)


class SwissRoll(Distribution):
    r"""Noisy 2D swiss roll (scikit-learn's ``make_swiss_roll``, coordinates 0 and 2, scaled).

    .. math::

        X = \frac{1}{s}\Big( (t\cos t,\; t\sin t) + \eta Z \Big), \qquad
        t \sim \mathcal U[1.5\pi, 4.5\pi],\; Z \sim \mathcal N(0, I_2),

    with noise :math:`\eta` (0.25 in the WGAN-GP toy) and scale :math:`s` (7.5).

    Parameters
    ----------
    noise : float, optional
        Standard deviation of the Gaussian noise before scaling (> 0).
    scale : float, optional
        The data are divided by this (> 0).

    Notes
    -----
    Given :math:`t`, the two coordinates are independent normals, so the mass of the cell
    :math:`[a_x, b_x) \times [a_y, b_y)` is

    .. math::

        P = \frac{1}{3\pi}\int_{1.5\pi}^{4.5\pi} \Delta\Phi_x(t)\,\Delta\Phi_y(t)\,dt, \quad
        \Delta\Phi_x(t) = \Phi\Big(\frac{s b_x - t\cos t}{\eta}\Big)
                        - \Phi\Big(\frac{s a_x - t\cos t}{\eta}\Big),

    computed with a composite 8-point Gauss–Legendre rule on sub-intervals of :math:`t` of
    width at most :math:`\eta / \sqrt{1 + t_{\max}^2}` (the time the curve, at its fastest,
    takes to travel one noise standard deviation), i.e. about 535 sub-intervals for the default
    parameters. The integrand is entire and varies on that scale, so the rule is exact to
    round-off. Measured error (tests): halving the sub-interval width and going to 16 nodes
    changes no cell mass by more than 1e-15 (absolute) on a 64 x 64 grid, and the
    masses agree with a 2,000,000-sample histogram within sampling error.

    Examples
    --------
    >>> import numpy as np
    >>> from otgrid.grid.datasets import SwissRoll
    >>> d = SwissRoll()
    >>> e = np.array([-np.inf, 0.0, np.inf])
    >>> m = d.cell_masses([e, e])
    >>> round(float(m.sum()), 12)
    1.0
    """

    def __init__(self, noise: float = 0.25, scale: float = 7.5) -> None:
        self._noise = _positive(noise, "noise")
        self._scale = _positive(scale, "scale")
        self.ndim = 2
        self._rule: tuple[np.ndarray, np.ndarray] | None = None

    def _nodes(self) -> tuple[np.ndarray, np.ndarray]:
        """Quadrature nodes and weights in ``t`` (built on first use), weights sum to 1."""
        if self._rule is None:
            speed = np.sqrt(1.0 + _T_HIGH ** 2)
            h_max = _SR_WIDTH * self._noise / speed
            nsub = int(np.ceil((_T_HIGH - _T_LOW) / h_max))
            if nsub * _SR_NODES > _MAX_NODES:
                raise ValueError(
                    f"noise={self._noise!r} is too small for quadrature cell masses and "
                    f"densities ({nsub * _SR_NODES} nodes needed, at most {_MAX_NODES}); use "
                    "noise >= 1e-3, or histogram samples of it with Grid.histogram.")
            t, w = _composite_gl(_T_LOW, _T_HIGH, nsub, _SR_NODES)
            self._rule = (t, w / (_T_HIGH - _T_LOW))      # uniform density of t
        return self._rule

    @property
    def noise(self) -> float:
        """Noise standard deviation before scaling."""
        return self._noise

    @property
    def scale(self) -> float:
        """Divisor applied to the data."""
        return self._scale

    def __repr__(self) -> str:
        return f"SwissRoll(noise={self._noise!r}, scale={self._scale!r})"

    @property
    def mean(self) -> np.ndarray:
        """Mean, in closed form: ``E[t cos t], E[t sin t]`` over ``t ~ U[1.5π, 4.5π]``, scaled."""
        a, b = _T_LOW, _T_HIGH
        ex = (b * np.sin(b) + np.cos(b) - a * np.sin(a) - np.cos(a)) / (b - a)
        ey = (-b * np.cos(b) + np.sin(b) + a * np.cos(a) - np.sin(a)) / (b - a)
        return np.array([ex, ey]) / self._scale

    @property
    def cov(self) -> np.ndarray:
        """Covariance (quadrature over ``t`` plus the isotropic noise), shape (2, 2)."""
        t, w = _composite_gl(_T_LOW, _T_HIGH, 64, 16)   # smooth integrand: exact to round-off
        w = w / (_T_HIGH - _T_LOW)
        c = self._curve(t)
        m = w @ c
        second = (c * w[:, None]).T @ c
        return second - np.outer(m, m) + (self._noise / self._scale) ** 2 * np.eye(2)

    def _curve(self, t: np.ndarray) -> np.ndarray:
        return np.stack([t * np.cos(t), t * np.sin(t)], axis=1) / self._scale

    def sample(self, n: int, rng: Any = None) -> np.ndarray:
        """Draw ``n`` samples exactly as the reference code does, shape (n, 2)."""
        n = self._check_n(n)
        gen = as_rng(rng)
        t = _T_LOW * (1.0 + 2.0 * gen.random(n))
        pts = np.stack([t * np.cos(t), t * np.sin(t)], axis=1)
        pts += self._noise * gen.standard_normal((n, 2))
        return pts / self._scale

    def pdf(self, x: Any) -> np.ndarray:
        """Density ``E_t[N(x; c(t)/s, (η/s)^2 I)]`` by the same quadrature in ``t``."""
        pts, out_shape = _as_points(x, 2)
        t, w = self._nodes()
        sig = self._noise / self._scale
        c = self._curve(t)
        c2 = (c * c).sum(axis=1)
        out = np.empty(pts.shape[0])
        step = max(1, _CHUNK // c.shape[0])
        for start in range(0, pts.shape[0], step):
            p = pts[start:start + step]
            d2 = (p * p).sum(axis=1)[:, None] + c2[None, :] - 2.0 * (p @ c.T)
            out[start:start + step] = np.exp(-0.5 * np.maximum(d2, 0.0) / sig ** 2) @ w
        return (out / (2 * np.pi * sig ** 2)).reshape(out_shape)

    def cell_masses(self, edges: Sequence[np.ndarray]) -> np.ndarray:
        """Cell masses by quadrature over ``t`` (error in the class Notes).

        Parameters
        ----------
        edges : sequence of 2 1-D arrays
            Strictly increasing edges per axis (``-inf`` first and ``+inf`` last allowed).

        Returns
        -------
        numpy.ndarray, shape ``(len(edges[0]) - 1, len(edges[1]) - 1)``
        """
        ex, ey = _check_edges(edges, 2)
        t, wt = self._nodes()
        sig = self._noise / self._scale
        c = self._curve(t)
        out = np.zeros((ex.size - 1, ey.size - 1))
        step = max(1, _CHUNK // max(ex.size, ey.size))
        for start in range(0, t.size, step):
            sl = slice(start, start + step)
            px = _normal_cells((ex[None, :] - c[sl, 0, None]) / sig) * wt[sl, None]
            py = _normal_cells((ey[None, :] - c[sl, 1, None]) / sig)
            out += px.T @ py
        return out


def _composite_gl(a: float, b: float, nsub: int, nodes: int) -> tuple[np.ndarray, np.ndarray]:
    """Nodes and weights of the composite Gauss–Legendre rule on ``nsub`` equal pieces."""
    gx, gw = np.polynomial.legendre.leggauss(nodes)
    h = (b - a) / nsub
    mids = a + (np.arange(nsub) + 0.5) * h
    t = (mids[:, None] + 0.5 * h * gx).ravel()
    w = np.tile(0.5 * h * gw, nsub)
    return t, w


def _positive(x: Any, name: str) -> float:
    if isinstance(x, bool) or not isinstance(x, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a real number; got {x!r}.")
    x = float(x)
    if not (np.isfinite(x) and x > 0):
        raise ValueError(f"{name} must be finite and > 0; got {x}.")
    return x
