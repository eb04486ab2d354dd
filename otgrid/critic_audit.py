"""Audit a (neural) Wasserstein-1 critic against the optimal critic of the grid problem.

:func:`audit` solves the exact critic ``f*`` of two measures on a grid with
:func:`otgrid.critic.solve_critic` (certified bounds ``lower <= W* <= upper``) and measures how
far a user's critic ``f`` is from it: the fraction of ``W*`` it recovers, its Lipschitz
constant, the agreement of its gradient with the optimal transport direction, its shape up to
scale and shift, and (with a generator) the gradient the generator receives.

Conventions, as everywhere in otgrid: a critic is *high where* ``mu`` *has mass*, and

.. math:: W^* = \\max_{\\mathrm{Lip}(f) \\le 1} E_\\mu f - E_\\nu f .

A critic trained with the opposite sign gives negative ratios and cosines; negate it first.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from otgrid._validation import as_rng, check_positive_int
from otgrid.grid import Grid

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from otgrid.critic import CriticResult

__all__ = ["AuditReport", "audit"]

_BATCH = 65_536          # points per critic call
_DEFAULT_SAMPLES = 4096  # samples per measure for the sample metrics


# ============================================================================ critic evaluation
def _torch_module(critic: Any) -> Any:
    """``torch`` if ``critic`` is a ``torch.nn.Module`` (torch already imported), else None."""
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(critic, torch.nn.Module):
        return torch
    return None


def _check_output(out: Any, n: int, what: str) -> np.ndarray:
    """Values returned by a critic for ``n`` points, as a float64 array of shape (n,)."""
    arr = np.asarray(out, dtype=np.float64)
    if arr.shape == (n, 1):
        arr = arr[:, 0]
    if arr.shape != (n,):
        hint = (" It looks non-vectorised (one value for a whole batch): the critic must map "
                "an array of shape (n, d) to n values at once.") if arr.ndim == 0 else ""
        raise ValueError(f"critic must return an array of shape (n,) (or (n, 1)) for {n} "
                         f"points of shape (n, d); {what} returned shape {arr.shape}.{hint}")
    bad = ~np.isfinite(arr)
    if bad.any():
        raise ValueError(f"critic returned {int(bad.sum())} non-finite value(s) (NaN or inf) "
                         f"out of {n} ({what}); an audit needs a finite critic everywhere on "
                         "the grid and at the sample points.")
    return arr


class _Critic:
    """Uniform access to values and gradients of a NumPy callable or a torch module."""

    def __init__(self, critic: Any, ndim: int, fd_step: float, probe: np.ndarray) -> None:
        self.ndim = ndim
        self.fd_step = fd_step
        self.torch = _torch_module(critic)
        if self.torch is None and not callable(critic):
            raise TypeError(f"critic must be a callable (n, d) -> (n,) or a torch.nn.Module; "
                            f"got {type(critic).__name__}.")
        self.critic = critic
        self.analytic = self.torch is None and callable(getattr(critic, "value_and_grad", None))
        if self.torch is not None:
            self.kind = "torch"
            self.gradient_method = "autograd"
        elif self.analytic:
            self.kind = "numpy"
            self.gradient_method = "value_and_grad"
        else:
            self.kind = "numpy"
            self.gradient_method = f"central differences, step {fd_step:.3g}"
        # Probe: a small batch of points must give well-shaped, finite values.
        self.values(probe, what=f"a probe batch of {probe.shape[0]} grid points")

    def _call_numpy(self, x: np.ndarray, what: str) -> np.ndarray:
        try:
            out = self.critic(x)
        except Exception as exc:  # a non-vectorised callable typically fails here
            raise ValueError(f"critic raised {type(exc).__name__}: {exc} when called on an "
                             f"array of shape {x.shape} ({what}). It must accept a batch of "
                             "points of shape (n, d) and return n values.") from exc
        return _check_output(out, x.shape[0], what)

    def _torch_eval(self, x: np.ndarray, grad: bool, what: str) -> tuple[np.ndarray, Any]:
        torch = self.torch
        try:
            dtype = next(self.critic.parameters()).dtype
        except StopIteration:
            dtype = torch.get_default_dtype()
        vals, grads = [], []
        for s in range(0, x.shape[0], _BATCH):
            xt = torch.as_tensor(x[s:s + _BATCH], dtype=dtype)
            if grad:
                xt.requires_grad_(True)
                with torch.enable_grad():
                    out = self.critic(xt)
                    v = _check_output(out.detach().cpu().numpy(), xt.shape[0], what)
                    (g,) = torch.autograd.grad(out.sum(), xt)
                grads.append(g.detach().cpu().numpy().astype(np.float64))
            else:
                with torch.no_grad():
                    v = _check_output(self.critic(xt).cpu().numpy(), xt.shape[0], what)
            vals.append(v)
        return np.concatenate(vals), (np.concatenate(grads) if grad else None)

    def values(self, x: np.ndarray, what: str = "the audit points") -> np.ndarray:
        if self.torch is not None:
            return self._torch_eval(x, False, what)[0]
        return np.concatenate([self._call_numpy(x[s:s + _BATCH], what)
                               for s in range(0, x.shape[0], _BATCH)])

    def value_and_grad(self, x: np.ndarray, what: str = "the audit points"
                       ) -> tuple[np.ndarray, np.ndarray]:
        if self.torch is not None:
            v, g = self._torch_eval(x, True, what)
        elif self.analytic:
            v, g = self.critic.value_and_grad(x)
            v = _check_output(v, x.shape[0], what)
            g = np.asarray(g, dtype=np.float64).reshape(x.shape)
        else:
            v = self.values(x, what)
            g = np.empty_like(x)
            h = self.fd_step
            for k in range(self.ndim):
                xp, xm = x.copy(), x.copy()
                xp[:, k] += h
                xm[:, k] -= h
                g[:, k] = (self.values(xp, what) - self.values(xm, what)) / (2 * h)
        if not np.all(np.isfinite(g)):
            raise ValueError(f"critic has non-finite gradients at {what}; an audit needs a "
                             "finite gradient everywhere.")
        return v, g


# ============================================================================ inputs
def _masses(x: Any, grid: Grid, name: str) -> tuple[np.ndarray, Any]:
    """Grid masses of ``x`` (a distribution or masses); also the distribution (or None)."""
    if hasattr(x, "cell_masses") and hasattr(x, "ndim"):
        from otgrid.distributions import Empirical

        if isinstance(x, Empirical):
            return grid.histogram(x.samples, x.weights), x
        return grid.discretize(x), x
    arr = np.asarray(x, dtype=np.float64)
    if arr.shape != tuple(grid.shape):
        raise ValueError(f"{name} must be a distribution (otgrid.distributions / datasets) or "
                         f"masses on the grid, shape {tuple(grid.shape)}; got "
                         f"{type(x).__name__} with shape {arr.shape}.")
    if not np.all(np.isfinite(arr)) or np.any(arr < 0) or not arr.sum() > 0:
        raise ValueError(f"{name} masses must be finite, non-negative, with a positive total.")
    return arr, None


def _sample(dist: Any, masses: np.ndarray, grid: Grid, n: int,
            rng: np.random.Generator) -> np.ndarray:
    """``n`` samples of a distribution, or of grid masses (a cell drawn by mass, then uniform)."""
    if dist is not None:
        return np.asarray(dist.sample(n, rng=rng), dtype=np.float64).reshape(n, grid.ndim)
    p = masses.ravel() / masses.sum()
    cells = rng.choice(p.size, size=n, p=p)
    idx = np.unravel_index(cells, grid.shape)
    return np.stack([grid.edges[k][idx[k]] + rng.random(n) * grid.dx[k]
                     for k in range(grid.ndim)], axis=1)


def _check_points(x: Any, ndim: int, name: str) -> np.ndarray:
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim == 1 and ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2 or arr.shape[1] != ndim or arr.shape[0] == 0:
        raise ValueError(f"{name} must be a non-empty array of shape (n, {ndim}); got shape "
                         f"{arr.shape}.")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains non-finite values.")
    return arr


# ============================================================================ the report
_TABLE = (
    # (key, label, format)
    ("w_star", "W* (exact, grid)", ".6g"),
    ("w_star_lower", "  certified lower bound", ".6g"),
    ("w_star_upper", "  certified upper bound", ".6g"),
    ("w_critic", "E_mu f - E_nu f (quadrature)", ".6g"),
    ("w_critic_samples", "E_mu f - E_nu f (samples)", ".6g"),
    ("w_ratio", "w_ratio (quadrature)", ".4f"),
    ("w_ratio_samples", "w_ratio (samples)", ".4f"),
    ("lipschitz", "lipschitz (max |grad f|)", ".4f"),
    ("lipschitz_grid", "  over the grid", ".4f"),
    ("lipschitz_samples", "  over the sample points", ".4f"),
    ("frac_above_area", "  fraction > 1+tau, by area", ".4f"),
    ("frac_above_mu", "  fraction > 1+tau, by mu", ".4f"),
    ("frac_above_nu", "  fraction > 1+tau, by nu", ".4f"),
    ("frac_above_between", "  fraction > 1+tau, between mu and nu", ".4f"),
    ("w_ratio_over_lipschitz", "w_ratio / lipschitz", ".4f"),
    ("grad_cosine", "grad_cosine (E_nu, L2)", ".4f"),
    ("grad_cosine_pointwise", "  mean pointwise cosine", ".4f"),
    ("grad_l2", "grad_l2 (E_nu |grad f - grad f*|^2)", ".4g"),
    ("flow_coverage", "  nu mass where the flow is non-zero", ".4f"),
    ("shape_error", "shape_error", ".4f"),
    ("shape_scale", "  best scale s", ".4g"),
    ("shape_shift", "  best shift c", ".4g"),
    ("generator_grad_rel_error", "generator_gradient relative error", ".4f"),
    ("generator_grad_cosine", "generator_gradient cosine", ".4f"),
)


@dataclass(frozen=True, eq=False)
class AuditReport:
    """Result of :func:`audit`: how a critic compares with the optimal critic on a grid.

    Every metric is a float (NaN where it is undefined, e.g. ratios when ``W* = 0``, and the
    generator metrics without a generator).

    Attributes
    ----------
    w_star, w_star_lower, w_star_upper : float
        The exact grid W1 (midpoint of the certificate) and its certified bounds.
    w_critic, w_critic_samples : float
        ``E_mu f - E_nu f`` by quadrature over the grid masses (``f`` at the cell centres) and
        by the mean over ``n_samples`` samples of each measure.
    w_ratio, w_ratio_samples : float
        The two above divided by ``w_star``; their difference is sampling error.
    lipschitz : float
        ``max |grad f|`` over the grid centres and the sample points; ``lipschitz_grid`` and
        ``lipschitz_samples`` are the two parts.
    frac_above_area, frac_above_mu, frac_above_nu, frac_above_between : float
        Fraction where ``|grad f| > 1 + tau``: of the grid cells (area), of the mass of ``mu``
        and of ``nu`` (grid masses), and of the points ``t x + (1 - t) y`` with ``x ~ mu``,
        ``y ~ nu`` paired at random and ``t ~ U(0, 1)`` (the points of a gradient penalty).
    w_ratio_over_lipschitz : float
        ``w_ratio / lipschitz``: the ratio of the critic rescaled to be 1-Lipschitz (a lower
        bound on what it certifies about ``W``).
    grad_cosine, grad_l2 : float
        Korotin et al.'s gradient metrics under ``nu``: the :math:`L^2(\\nu)` cosine
        ``<grad f, grad f*> / (|grad f| |grad f*|)`` and ``E_nu |grad f - grad f*|^2``, with
        ``grad f* = -flow / |flow|`` (the unit direction against the optimal transport flow)
        on the cells where the flow is non-zero; ``grad_cosine_pointwise`` is ``E_nu`` of the
        pointwise cosine and ``flow_coverage`` the mass of ``nu`` on those cells.
    shape_error, shape_scale, shape_shift : float
        ``min_{s, c} |s f + c - f*| / |f* - mean f*|`` in :math:`L^2((\\mu + \\nu)/2)` (the
        support of ``mu + nu`` only), and the minimising ``s`` and ``c``.
    generator_grad_rel_error, generator_grad_cosine : float
        With a generator: ``|G_f - G_*| / |G_*|`` and the cosine between
        ``G_f = E_z J_theta(z)^T grad f(g(z))`` and ``G_*``, the same with the interpolant of
        ``f*``.
    tau, n_samples, seed, gradient_method, critic_kind, exact_converged, exact_gap
        Settings and provenance.
    exact : CriticResult
        The exact solve (critic, flow, certificate).
    values, optimal_values : ndarray, shape grid.shape
        ``f`` and ``f*`` at the cell centres.
    grads, optimal_grads : ndarray, shape (ndim, \\*grid.shape)
        ``grad f`` at the cell centres and ``grad f*`` from the flow (NaN where the flow is
        zero).
    mu, nu : ndarray, shape grid.shape
        The grid masses.
    """

    w_star: float
    w_star_lower: float
    w_star_upper: float
    w_critic: float
    w_critic_samples: float
    w_ratio: float
    w_ratio_samples: float
    lipschitz: float
    lipschitz_grid: float
    lipschitz_samples: float
    frac_above_area: float
    frac_above_mu: float
    frac_above_nu: float
    frac_above_between: float
    w_ratio_over_lipschitz: float
    grad_cosine: float
    grad_cosine_pointwise: float
    grad_l2: float
    flow_coverage: float
    shape_error: float
    shape_scale: float
    shape_shift: float
    generator_grad_rel_error: float
    generator_grad_cosine: float
    tau: float
    n_samples: int
    seed: int | None
    gradient_method: str
    critic_kind: str
    exact_converged: bool
    exact_gap: float
    exact: CriticResult = field(repr=False)
    values: np.ndarray = field(repr=False)
    optimal_values: np.ndarray = field(repr=False)
    grads: np.ndarray = field(repr=False)
    optimal_grads: np.ndarray = field(repr=False)
    mu: np.ndarray = field(repr=False)
    nu: np.ndarray = field(repr=False)

    @property
    def grid(self) -> Grid:
        """The grid of the audit."""
        return self.exact.grid

    def to_dict(self) -> dict[str, Any]:
        """The metrics and settings as a JSON-friendly dict (no arrays).

        Returns
        -------
        dict
            Metric names to floats (NaN becomes ``None``), plus settings and the grid.
        """
        out: dict[str, Any] = {}
        for key, _, _ in _TABLE:
            v = float(getattr(self, key))
            out[key] = v if math.isfinite(v) else None
        out.update(tau=self.tau, n_samples=self.n_samples, seed=self.seed,
                   gradient_method=self.gradient_method, critic_kind=self.critic_kind,
                   exact_converged=bool(self.exact_converged), exact_gap=float(self.exact_gap),
                   grid={"bounds": [list(b) for b in self.grid.bounds],
                         "shape": list(self.grid.shape)})
        return out

    def to_json(self, **kwargs: Any) -> str:
        """:meth:`to_dict` as a JSON string (``kwargs`` go to :func:`json.dumps`)."""
        kwargs.setdefault("indent", 2)
        return json.dumps(self.to_dict(), **kwargs)

    def __str__(self) -> str:
        lines = [f"otgrid audit ({self.critic_kind} critic, gradients by "
                 f"{self.gradient_method}; grid {' x '.join(map(str, self.grid.shape))}, "
                 f"{self.n_samples} samples, tau = {self.tau:g})"]
        width = max(len(label) for _, label, _ in _TABLE)
        for key, label, fmt in _TABLE:
            v = float(getattr(self, key))
            if key.startswith("generator") and not math.isfinite(v):
                continue
            text = format(v, fmt) if math.isfinite(v) else "n/a"
            lines.append(f"  {label:<{width}}  {text}")
        if not self.exact_converged:
            lines.append("  (the exact solve did not reach its tolerance; the bounds hold)")
        return "\n".join(lines)

    def plot(self, **kwargs: Any) -> Figure:
        """Figure of the audit; see :func:`otgrid.audit_plot.plot_audit`."""
        from otgrid.audit_plot import plot_audit

        return plot_audit(self, **kwargs)


# ============================================================================ metrics
def _ratio(a: float, b: float) -> float:
    return a / b if b > 0 and math.isfinite(a) else math.nan


def _shape_fit(f: np.ndarray, fstar: np.ndarray, w: np.ndarray) -> tuple[float, float, float]:
    """Weighted least squares ``s f + c ~ f*``: (relative error, s, c)."""
    w = w / w.sum()
    mf, ms = float(w @ f), float(w @ fstar)
    df, ds = f - mf, fstar - ms
    var_s = float(w @ ds ** 2)
    var_f = float(w @ df ** 2)
    if not var_s > 0:
        return math.nan, math.nan, math.nan
    s = float(w @ (df * ds)) / var_f if var_f > 1e-300 else 0.0
    c = ms - s * mf
    resid = float(w @ (s * f + c - fstar) ** 2)
    return math.sqrt(max(resid, 0.0) / var_s), s, c


def _optimal_directions(flow: np.ndarray, flow_tol: float) -> np.ndarray:
    """``-flow / |flow|`` per cell, NaN where ``|flow| <= flow_tol * max |flow|``."""
    norm = np.sqrt(np.sum(flow ** 2, axis=0))
    top = float(norm.max())
    out = np.full_like(flow, np.nan)
    if top > 0:
        m = norm > flow_tol * top
        out[:, m] = -flow[:, m] / norm[m]
    return out


def audit(
    critic: Callable[[np.ndarray], Any] | Any,
    mu: Any,
    nu: Any,
    grid: Grid,
    *,
    generator: Any = None,
    samples: int | tuple[Any, Any] | None = None,
    tau: float = 0.05,
    flow_tol: float = 1e-3,
    fd_step: float | None = None,
    tol: float = 1e-6,
    max_iter: int = 100_000,
    exact: CriticResult | None = None,
    seed: int | None = 0,
) -> AuditReport:
    r"""Compare a critic with the optimal Wasserstein-1 critic of ``mu`` and ``nu`` on a grid.

    The optimal critic ``f*`` is computed by :func:`otgrid.critic.solve_critic` (unless
    ``exact`` is given); its certified bounds are reported. Then, with ``f`` the audited critic,

    * ``w_ratio = (E_mu f - E_nu f) / W*``, by quadrature (``f`` at the cell centres, weighted by
      the grid masses) and at the sample size (means over samples of each measure);
    * ``lipschitz = max |grad f|`` over the cell centres and the sample points, the fractions
      above ``1 + tau`` by area, by ``mu``, by ``nu`` and at points between ``mu`` and ``nu``,
      and ``w_ratio / lipschitz``;
    * ``grad_cosine`` and ``grad_l2`` (Korotin et al.): the :math:`L^2(\nu)` cosine between
      ``grad f`` and ``grad f* = -flow/|flow|`` and ``E_nu |grad f - grad f*|^2``, on the cells
      where the optimal flow is non-zero (there the optimal critic is unique up to a constant
      and its gradient is the unit vector against the flow);
    * ``shape_error = min_{s,c} |s f + c - f*| / |f* - mean f*|`` in
      :math:`L^2((\mu + \nu)/2)`, with ``s`` and ``c``;
    * with a ``generator``: the relative error and cosine between
      ``E_z J_theta^T grad f(g(z))`` and the same with the interpolant of ``f*``.

    See :class:`AuditReport` for every field.

    Parameters
    ----------
    critic : callable or torch.nn.Module
        A vectorised function mapping points of shape ``(n, d)`` to ``n`` values (shape ``(n,)``
        or ``(n, 1)``), high where ``mu`` has mass. Gradients: by autograd for a
        ``torch.nn.Module`` (evaluated in the dtype of its parameters, in the mode it is in:
        call ``.eval()`` first for spectral normalisation, dropout or batch norm), by the
        object's own ``value_and_grad(x)`` when it has one (e.g.
        :class:`otgrid.interp.GridFunction`), otherwise by central differences with step
        ``fd_step``.
    mu, nu : Distribution or array_like, shape grid.shape
        Distributions (:mod:`otgrid.distributions`, :mod:`otgrid.datasets`; discretised exactly
        with :meth:`Grid.discretize`, an ``Empirical`` by histogram) or masses on the grid.
        Samples are drawn from a distribution with its ``sample`` method, and from masses by
        picking a cell with probability proportional to its mass and a uniform point in it.
    grid : Grid
        A 1D or 2D grid holding both measures.
    generator : ParametricGenerator, optional
        A generator (:mod:`otgrid.generators` protocol: ``sample_latent``, ``sample``,
        ``vjp``); enables the ``generator_gradient`` metrics, estimated with ``n_samples``
        latent samples.
    samples : int or (array_like, array_like), optional
        The sample size ``n`` for the sample metrics (``n`` samples of each measure, drawn with
        ``seed``; default 4096), or the two sample arrays ``(x_mu, x_nu)`` of shape ``(n, d)``
        themselves.
    tau : float, optional
        Tolerance of the Lipschitz fractions: ``|grad f| > 1 + tau`` counts as a violation.
    flow_tol : float, optional
        A cell's flow is non-zero when its norm exceeds ``flow_tol`` times the largest one.
    fd_step : float, optional
        Step of the central differences (plain callables only); default ``1e-3 * min(dx)``.
    tol, max_iter : optional
        Passed to :func:`otgrid.critic.solve_critic`.
    exact : CriticResult, optional
        A solve of the same ``mu``, ``nu`` on ``grid`` to reuse (skips the solve).
    seed : int or None, optional
        Seed of the sampling.

    Returns
    -------
    AuditReport

    Raises
    ------
    TypeError
        If ``critic`` is neither callable nor a torch module, or ``grid`` is not a Grid.
    ValueError
        If the critic returns values of the wrong shape, NaN or inf (with a hint when it looks
        non-vectorised), or inputs are inconsistent.

    Examples
    --------
    >>> import numpy as np
    >>> import otgrid as og
    >>> from otgrid.critic_audit import audit
    >>> grid = og.Grid((-7.0, 9.0), 256)
    >>> rep = audit(lambda x: -x[:, 0], og.Normal(0.0, 1.0), og.Normal(2.0, 1.0), grid)
    >>> round(rep.w_ratio, 3), round(rep.grad_cosine, 3), round(rep.shape_error, 3)
    (1.0, 1.0, 0.0)
    """
    from otgrid.critic import solve_critic

    if not isinstance(grid, Grid):
        raise TypeError(f"grid must be an otgrid.Grid; got {type(grid).__name__}.")
    if grid.ndim not in (1, 2):
        raise ValueError(f"audit works on 1D and 2D grids; got a {grid.ndim}D grid.")
    if not (isinstance(tau, (int, float)) and tau >= 0):
        raise ValueError(f"tau must be a number >= 0; got {tau!r}.")
    if not (isinstance(flow_tol, (int, float)) and 0 <= flow_tol < 1):
        raise ValueError(f"flow_tol must be in [0, 1); got {flow_tol!r}.")
    h = 1e-3 * min(grid.dx) if fd_step is None else float(fd_step)
    if not h > 0:
        raise ValueError(f"fd_step must be > 0; got {fd_step!r}.")
    d = grid.ndim
    mu_m, mu_d = _masses(mu, grid, "mu")
    nu_m, nu_d = _masses(nu, grid, "nu")
    if abs(mu_m.sum() - nu_m.sum()) > 1e-9 * max(mu_m.sum(), nu_m.sum()):
        raise ValueError(f"mu and nu must have equal total mass; got {mu_m.sum():.12g} and "
                         f"{nu_m.sum():.12g}. Normalise both (e.g. divide by their sums).")
    probe = grid.points()[np.linspace(0, grid.size - 1, 5).astype(np.intp)]
    f_ = _Critic(critic, d, h, probe)
    rng = as_rng(seed)

    if isinstance(samples, tuple):
        if len(samples) != 2:
            raise ValueError("samples must be an int or a pair (x_mu, x_nu).")
        x_mu = _check_points(samples[0], d, "samples[0] (x_mu)")
        x_nu = _check_points(samples[1], d, "samples[1] (x_nu)")
    else:
        n = _DEFAULT_SAMPLES if samples is None else check_positive_int(samples, "samples")
        x_mu = _sample(mu_d, mu_m, grid, n, rng)
        x_nu = _sample(nu_d, nu_m, grid, n, rng)
    n_s = min(x_mu.shape[0], x_nu.shape[0])
    t = rng.random((n_s, 1))
    x_between = t * x_mu[rng.permutation(x_mu.shape[0])[:n_s]] + (1 - t) * x_nu[:n_s]

    # ---- the exact critic
    if exact is None:
        exact = solve_critic(mu_m, nu_m, grid, tol=tol, max_iter=max_iter)
    elif exact.grid != grid:
        raise ValueError("exact was solved on a different grid; pass a solve on this grid.")
    w_star = float(exact.w1)
    fstar = np.asarray(exact.critic, dtype=np.float64)

    # ---- the audited critic on the grid and at the samples
    pts = grid.points()
    vals, grads = f_.value_and_grad(pts, "the grid cell centres")
    vals = vals.reshape(grid.shape)
    grads = np.moveaxis(grads.reshape(*grid.shape, d), -1, 0)
    gnorm = np.sqrt(np.sum(grads ** 2, axis=0))
    v_mu, g_mu = f_.value_and_grad(x_mu, "the samples of mu")
    v_nu, g_nu = f_.value_and_grad(x_nu, "the samples of nu")
    _, g_bt = f_.value_and_grad(x_between, "the points between mu and nu")
    n_mu, n_nu, n_bt = (np.linalg.norm(g, axis=1) for g in (g_mu, g_nu, g_bt))

    total = float(mu_m.sum())
    w_crit = float(np.sum((mu_m - nu_m) * vals)) / total
    w_crit_s = float(v_mu.mean() - v_nu.mean())
    w_ratio = _ratio(w_crit, w_star)
    lip_grid = float(gnorm.max())
    lip_s = float(max(n_mu.max(), n_nu.max(), n_bt.max()))
    lip = max(lip_grid, lip_s)
    above = gnorm > 1 + tau

    # ---- gradients against the optimal flow direction, under nu
    gstar = _optimal_directions(np.asarray(exact.flow, dtype=np.float64), flow_tol)
    on = np.all(np.isfinite(gstar), axis=0)
    w_nu = np.where(on, nu_m, 0.0)
    cover = float(w_nu.sum()) / float(nu_m.sum())
    if w_nu.sum() > 0:
        w_nu = w_nu / w_nu.sum()
        gs = np.where(on, gstar, 0.0)
        inner = float(np.sum(w_nu * np.sum(grads * gs, axis=0)))
        norm_f = math.sqrt(float(np.sum(w_nu * gnorm ** 2)))
        norm_s = math.sqrt(float(np.sum(w_nu * np.sum(gs ** 2, axis=0))))
        cos = inner / (norm_f * norm_s) if norm_f > 0 else 0.0
        pw = np.sum(grads * gs, axis=0) / np.where(gnorm > 0, gnorm, 1.0)
        cos_pw = float(np.sum(w_nu * np.where(gnorm > 0, pw, 0.0)))
        l2 = float(np.sum(w_nu * np.sum((grads - gs) ** 2, axis=0)))
    else:
        cos = cos_pw = l2 = math.nan

    # ---- shape
    support = (mu_m + nu_m) / 2
    shape_err, s, c = _shape_fit(vals.ravel(), fstar.ravel(), support.ravel())

    # ---- generator
    gen_err = gen_cos = math.nan
    if generator is not None:
        for attr in ("sample_latent", "sample", "vjp"):
            if not callable(getattr(generator, attr, None)):
                raise TypeError(f"generator must follow otgrid.generators.ParametricGenerator "
                                f"(sample_latent, sample, vjp); it has no {attr!r}.")
        z = generator.sample_latent(n_s, rng=rng)
        xg = _check_points(generator.sample(z), d, "generator.sample(z)")
        _, gf = f_.value_and_grad(xg, "the generator's samples")
        gs_x = exact.interpolant().grad(xg).reshape(xg.shape)
        gth_f = np.asarray(generator.vjp(z, gf), dtype=np.float64) / xg.shape[0]
        gth_s = np.asarray(generator.vjp(z, gs_x), dtype=np.float64) / xg.shape[0]
        ns = float(np.linalg.norm(gth_s))
        nf = float(np.linalg.norm(gth_f))
        gen_err = float(np.linalg.norm(gth_f - gth_s)) / ns if ns > 0 else math.nan
        gen_cos = float(gth_f @ gth_s) / (nf * ns) if nf > 0 and ns > 0 else math.nan

    return AuditReport(
        w_star=w_star, w_star_lower=float(exact.lower), w_star_upper=float(exact.upper),
        w_critic=w_crit, w_critic_samples=w_crit_s, w_ratio=w_ratio,
        w_ratio_samples=_ratio(w_crit_s, w_star), lipschitz=lip, lipschitz_grid=lip_grid,
        lipschitz_samples=lip_s, frac_above_area=float(above.mean()),
        frac_above_mu=float(mu_m[above].sum() / mu_m.sum()),
        frac_above_nu=float(nu_m[above].sum() / nu_m.sum()),
        frac_above_between=float(np.mean(n_bt > 1 + tau)),
        w_ratio_over_lipschitz=_ratio(w_ratio, lip) if math.isfinite(w_ratio) else math.nan,
        grad_cosine=cos, grad_cosine_pointwise=cos_pw, grad_l2=l2, flow_coverage=cover,
        shape_error=shape_err, shape_scale=s, shape_shift=c,
        generator_grad_rel_error=gen_err, generator_grad_cosine=gen_cos,
        tau=float(tau), n_samples=int(n_s), seed=seed if isinstance(seed, int) else None,
        gradient_method=f_.gradient_method, critic_kind=f_.kind,
        exact_converged=bool(exact.converged), exact_gap=float(exact.gap), exact=exact,
        values=vals, optimal_values=fstar, grads=grads, optimal_grads=gstar, mu=mu_m, nu=nu_m)
