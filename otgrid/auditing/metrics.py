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

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from otgrid._units import unit_scale
from otgrid._validation import (
    MASS_RTOL,
    as_array,
    as_rng,
    check_choice,
    check_positive_int,
    totals_rtol,
    unequal_totals_hint,
)
from otgrid.auditing.critics import _Critic
from otgrid.auditing.reference import (
    KIND_DETERMINED,
    KIND_NONE,
    KIND_SINK,
    SINK_SAMPLES,
    ReferenceAt,
    ReferenceField,
)
from otgrid.auditing.report import AuditReport
from otgrid.critic.result import CriticResult
from otgrid.critic.solve import solve_critic
from otgrid.errors import OutsideMassError
from otgrid.grid.grid import Grid

__all__ = ["audit"]

_DEFAULT_SAMPLES = 4096  # samples per measure for the sample metrics
# resolution="auto": refinement stops when no headline metric moves by more than this between
# two resolutions, or before a grid of more than _MAX_CELLS cells; the next level is predicted
# to cost 2^d times the last one (cells) times _GROWTH (iterations grow slowly with the grid).
_REFINE_TOL = 0.005
_MAX_CELLS = 2048 * 2048
_GROWTH = 1.5
_REFINE_KEYS = ("grad_cosine", "grad_cosine_determined", "determined_mass", "w_ratio")


# ============================================================================ inputs
def _masses(x: Any, grid: Grid, name: str, outside: str = "auto"
            ) -> tuple[np.ndarray, Any]:
    """Grid masses of ``x`` (a distribution or masses); also the distribution (or None).

    ``outside`` as in :meth:`Grid.discretize`: by default (``"auto"``) a distribution with more
    than 1e-6 (per axis) of its mass outside the grid raises
    :class:`~otgrid.grid.grid.OutsideMassError` naming ``name``, so that no audit runs on a grid
    that misses the measure."""
    if hasattr(x, "cell_masses") and hasattr(x, "ndim"):
        from otgrid.grid.distributions import Empirical

        try:
            if isinstance(x, Empirical):
                return grid.histogram(x.samples, x.weights, outside=outside), x
            return grid.discretize(x, outside=outside), x
        except OutsideMassError as exc:
            raise OutsideMassError(f"{name}: {exc}", mass=exc.mass, fraction=exc.fraction,
                                   bounds=exc.bounds,
                                   suggested_bounds=exc.suggested_bounds) from None
    arr = as_array(x, name)  # tensors detached, masked arrays refused
    if arr.shape != tuple(grid.shape):
        raise ValueError(f"{name} must be a distribution (otgrid.grid.distributions / datasets) or "
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


# ============================================================================ metrics
def _ratio(a: float, b: float) -> float:
    return a / b if b > 0 and math.isfinite(a) else math.nan


# The critic's values and gradients may have any size (a critic scaled by 1e-200 or 1e200 is
# as good a critic up to scale): norms, cosines and the shape fit square them, which
# underflowed to 0 or overflowed to inf from about 1e-154 / 1e154 (cosines of 0 and shape
# errors of 1 for a critic proportional to the optimal one). Where their largest magnitude is
# far from 1 they work on the numbers divided by a power of two near it (exact,
# otgrid._units), then scale back; other critics are audited as before.
def _unit(a: np.ndarray) -> float:
    """:func:`otgrid._units.unit_scale` of the largest magnitude in ``a`` (1 for none)."""
    return unit_scale(float(np.max(np.abs(a))) if a.size else 0.0)


def _norms(g: np.ndarray, axis: int | None = None) -> np.ndarray:
    """Euclidean norms of ``g`` along ``axis`` (all of it for None), without overflow or
    underflow in the squares."""
    u = _unit(g)
    return np.sqrt(np.sum((g / u) ** 2, axis=axis)) * u


def _shape_fit(f: np.ndarray, fstar: np.ndarray, w: np.ndarray) -> tuple[float, float, float]:
    """Weighted least squares ``s f + c ~ f*``: (relative error, s, c)."""
    w = w / w.sum()
    u = _unit(f)  # the fit of f / u, whose scale is s u (see _unit)
    f = f / u
    mf, ms = float(w @ f), float(w @ fstar)
    df, ds = f - mf, fstar - ms
    var_s = float(w @ ds ** 2)
    var_f = float(w @ df ** 2)
    if not var_s > 0:
        return math.nan, math.nan, math.nan
    s = float(w @ (df * ds)) / var_f if var_f > 1e-300 else 0.0
    c = ms - s * mf
    resid = float(w @ (s * f + c - fstar) ** 2)
    return math.sqrt(max(resid, 0.0) / var_s), s / u, c


# ============================================================================ audit phases
def _check_options(grid: Any, tau: Any, flow_tol: Any, fd_step: Any) -> float:
    """Validate the grid and the numeric options; return the finite-difference step."""
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
    return h


def _measures(mu: Any, nu: Any, grid: Grid, outside: str = "auto"
              ) -> tuple[np.ndarray, Any, np.ndarray, Any]:
    """Grid masses and distributions (or None) of ``mu`` and ``nu``, of equal total mass
    (within :func:`otgrid._validation.totals_rtol` of the inputs as given: 1e-9, or 16
    epsilons of float32 / float16 masses, whose ``nu`` is then rescaled to the total of
    ``mu`` in float64, as :func:`~otgrid.critic.solve.solve_critic` does)."""
    mu_m, mu_d = _masses(mu, grid, "mu", outside)
    nu_m, nu_d = _masses(nu, grid, "nu", outside)
    smu, snu = float(mu_m.sum()), float(nu_m.sum())
    diff = abs(smu - snu)
    if diff > totals_rtol(mu, nu) * max(smu, snu):
        raise ValueError(f"mu and nu must have equal total mass; got {smu:.12g} and "
                         f"{snu:.12g} (relative difference {diff / max(smu, snu):.2g}). "
                         f"{unequal_totals_hint(mu, nu)}")
    if diff > MASS_RTOL * max(smu, snu):  # low-precision masses: solve_critic takes them in float64
        nu_m = nu_m * (smu / snu)
    return mu_m, mu_d, nu_m, nu_d


def _wrap_critic(critic: Any, grid: Grid, h: float) -> _Critic:
    """The audited critic, checked on five probe cell centres."""
    probe = grid.points()[np.linspace(0, grid.size - 1, 5).astype(np.intp)]
    return _Critic(critic, grid.ndim, h, probe)


def _sample_points(samples: Any, mu_m: np.ndarray, mu_d: Any, nu_m: np.ndarray, nu_d: Any,
                   grid: Grid, rng: np.random.Generator
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Samples ``x_mu``, ``x_nu`` (given or drawn) and random points between them."""
    d = grid.ndim
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
    return x_mu, x_nu, x_between


def _exact_critic(exact: CriticResult | None, mu_m: np.ndarray, nu_m: np.ndarray, grid: Grid,
                  tol: float, max_iter: int) -> CriticResult:
    """The exact solve: ``exact`` when given (checked against ``grid``), else a new one."""
    if exact is None:
        return solve_critic(mu_m, nu_m, grid, tol=tol, max_iter=max_iter)
    if exact.grid != grid:
        raise ValueError("exact was solved on a different grid; pass a solve on this grid.")
    return exact


def _grid_values(f_: _Critic, grid: Grid) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The critic at the cell centres: values (grid shape), gradients ``(d, *shape)``, norms."""
    vals, grads = f_.value_and_grad(grid.points(), "the grid cell centres")
    vals = vals.reshape(grid.shape)
    grads = np.moveaxis(grads.reshape(*grid.shape, grid.ndim), -1, 0)
    gnorm = _norms(grads, axis=0)
    return vals, grads, gnorm


def _grid_metrics(vals: np.ndarray, gnorm: np.ndarray, fstar: np.ndarray, w_star: float,
                  mu_m: np.ndarray, nu_m: np.ndarray, tau: float) -> dict[str, float]:
    """Quadrature metrics: W ratio, Lipschitz constant and fractions above ``1 + tau``, shape."""
    w_crit = float(np.sum((mu_m - nu_m) * vals)) / float(mu_m.sum())
    above = gnorm > 1 + tau
    support = (mu_m + nu_m) / 2
    shape_err, s, c = _shape_fit(vals.ravel(), fstar.ravel(), support.ravel())
    return dict(w_critic=w_crit, w_ratio=_ratio(w_crit, w_star),
                lipschitz_grid=float(gnorm.max()), frac_above_area=float(above.mean()),
                frac_above_mu=float(mu_m[above].sum() / mu_m.sum()),
                frac_above_nu=float(nu_m[above].sum() / nu_m.sum()),
                shape_error=shape_err, shape_scale=s, shape_shift=c)


def _sample_gradients(f_: _Critic, x_mu: np.ndarray, x_nu: np.ndarray, x_between: np.ndarray
                      ) -> dict[str, np.ndarray]:
    """Values and gradients of the critic at the samples and at the points between them."""
    v_mu, g_mu = f_.value_and_grad(x_mu, "the samples of mu")
    v_nu, g_nu = f_.value_and_grad(x_nu, "the samples of nu")
    _, g_bt = f_.value_and_grad(x_between, "the points between mu and nu")
    return dict(v_mu=v_mu, g_mu=g_mu, v_nu=v_nu, g_nu=g_nu, g_bt=g_bt)


def _sample_metrics(s: dict[str, np.ndarray], w_star: float, tau: float) -> dict[str, float]:
    """Sample metrics: W ratio from sample means, Lipschitz constant at the sample points."""
    n_mu, n_nu, n_bt = (_norms(s[k], axis=1) for k in ("g_mu", "g_nu", "g_bt"))
    w_crit_s = float(s["v_mu"].mean() - s["v_nu"].mean())
    return dict(w_critic_samples=w_crit_s, w_ratio_samples=_ratio(w_crit_s, w_star),
                lipschitz_samples=float(max(n_mu.max(), n_nu.max(), n_bt.max())),
                frac_above_between=float(np.mean(n_bt > 1 + tau)))


def _cosines(g: np.ndarray, r: np.ndarray) -> tuple[float, float, float]:
    """L2 cosine, mean pointwise cosine and mean squared difference of the gradients ``g``
    against the unit reference directions ``r`` (equal weights), NaN for no points."""
    if len(g) == 0:
        return math.nan, math.nan, math.nan
    gs = g / _unit(g)  # the cosines do not depend on the scale (see _unit)
    gnorm = np.linalg.norm(gs, axis=1)
    inner = np.sum(gs * r, axis=1)
    norm_f = math.sqrt(float(np.mean(gnorm ** 2)))
    cos = float(np.mean(inner)) / norm_f if norm_f > 0 else 0.0
    pointwise = float(np.mean(np.where(gnorm > 0, inner / np.where(gnorm > 0, gnorm, 1.0), 0.0)))
    with np.errstate(over="ignore"):  # inf where the value itself is beyond float64
        l2 = float(np.mean(np.sum((g - r) ** 2, axis=1)))
    return cos, pointwise, l2


def _gradient_metrics(g_nu: np.ndarray, ref: ReferenceAt) -> dict[str, float]:
    """Gradient metrics under ``nu`` at its samples: against the best available reference
    (every sample with one) and against the reference the grid determines."""
    has = ref.kind != KIND_NONE
    det = ref.kind == KIND_DETERMINED
    cos, cos_pw, l2 = _cosines(g_nu[has], ref.directions[has])
    cos_det, _, l2_det = _cosines(g_nu[det], ref.directions[det])
    n = len(ref.kind)
    return dict(grad_cosine=cos, grad_cosine_pointwise=cos_pw, grad_l2=l2,
                grad_cosine_determined=cos_det, grad_l2_determined=l2_det,
                determined_mass=float(np.count_nonzero(det)) / n,
                sink_mass=float(np.count_nonzero(ref.kind == KIND_SINK)) / n,
                flow_coverage=float(np.count_nonzero(has)) / n)


def _sink_samples(samples: Any, nu_d: Any, x_nu: np.ndarray, seed: Any) -> np.ndarray | None:
    """Samples of ``nu`` that locate its sinks below the cell size: the given ``x_nu``, and
    ``SINK_SAMPLES`` more when ``nu`` is a distribution (from a generator of their own, so
    that the other draws of the audit do not change); None when ``nu`` is only grid masses
    (samples drawn uniformly in cells carry no information below the cell size)."""
    if isinstance(samples, tuple):
        return x_nu
    if nu_d is None:
        return None
    if isinstance(seed, np.random.Generator):
        rng = np.random.default_rng(seed.integers(2 ** 63))
    else:
        rng = np.random.default_rng(None if seed is None else [int(seed), 0x51_4B])
    extra = np.asarray(nu_d.sample(SINK_SAMPLES, rng=rng), dtype=np.float64)
    return np.concatenate([x_nu, extra.reshape(-1, x_nu.shape[1])])


def _generator_metrics(generator: Any, f_: _Critic, exact: CriticResult,
                       reference: ReferenceField, n_s: int, d: int,
                       rng: np.random.Generator) -> dict[str, float]:
    """Error and cosine of the generator gradient from ``f`` against the one from ``f*`` (the
    reference gradient at the generated points; the interpolant of ``f*`` where there is
    none)."""
    gen_err = gen_cos = math.nan
    if generator is not None:
        for attr in ("sample_latent", "sample", "vjp"):
            if not callable(getattr(generator, attr, None)):
                raise TypeError(f"generator must follow otgrid.sco.generators.ParametricGenerator "
                                f"(sample_latent, sample, vjp); it has no {attr!r}.")
        z = generator.sample_latent(n_s, rng=rng)
        xg = _check_points(generator.sample(z), d, "generator.sample(z)")
        _, gf = f_.value_and_grad(xg, "the generator's samples")
        ref = reference.at(xg)
        gs_x = np.where((ref.kind == KIND_NONE)[:, None],
                        exact.interpolant().grad(xg).reshape(xg.shape), ref.directions)
        gth_f = np.asarray(generator.vjp(z, gf), dtype=np.float64) / xg.shape[0]
        gth_s = np.asarray(generator.vjp(z, gs_x), dtype=np.float64) / xg.shape[0]
        ns, nf = float(_norms(gth_s)), float(_norms(gth_f))
        gen_err = float(_norms(gth_f - gth_s)) / ns if ns > 0 else math.nan
        unit = _unit(gth_f)
        gen_cos = (float((gth_f / unit) @ gth_s) / (nf / unit * ns) if nf > 0 and ns > 0
                   else math.nan)
    return dict(generator_grad_rel_error=gen_err, generator_grad_cosine=gen_cos)


@dataclass
class _Level:
    """One resolution of an audit: the grid, its exact solve and reference, the metrics that
    depend on the grid, the arrays of the report, and the time it took."""

    grid: Grid
    exact: CriticResult
    reference: ReferenceField
    metrics: dict[str, float]
    arrays: dict[str, np.ndarray] = field(repr=False)
    seconds: float = 0.0

    @property
    def w_star(self) -> float:
        return float(self.exact.w1)

    def summary(self) -> dict[str, Any]:
        """The row of this resolution in ``AuditReport.levels``."""
        row: dict[str, Any] = {"shape": tuple(int(n) for n in self.grid.shape),
                               "solve_seconds": float(self.exact.seconds),
                               "seconds": float(self.seconds), "w_star": self.w_star}
        row.update({k: float(self.metrics[k]) for k in _REFINE_KEYS})
        return row


def _audit_level(f_: _Critic, grid: Grid, mu_m: np.ndarray, nu_m: np.ndarray,
                 exact: CriticResult | None, tol: float, max_iter: int, flow_tol: float,
                 tau: float, at_samples: dict[str, np.ndarray], x_nu: np.ndarray,
                 sink_samples: np.ndarray | None) -> _Level:
    """Solve (or reuse) the exact critic on ``grid`` and compute what depends on the grid:
    the quadrature metrics, the reference field and the gradient metrics under ``nu``."""
    t0 = time.perf_counter()
    exact = _exact_critic(exact, mu_m, nu_m, grid, tol, max_iter)
    fstar = np.asarray(exact.critic, dtype=np.float64)
    vals, grads, gnorm = _grid_values(f_, grid)
    metrics = _grid_metrics(vals, gnorm, fstar, float(exact.w1), mu_m, nu_m, tau)
    reference = ReferenceField(grid, np.asarray(exact.flow, dtype=np.float64), mu_m, nu_m,
                               sink_samples, flow_tol=flow_tol)
    metrics.update(_gradient_metrics(at_samples["g_nu"], reference.at(x_nu)))
    arrays = dict(values=vals, optimal_values=fstar, grads=grads, mu=mu_m, nu=nu_m)
    return _Level(grid, exact, reference, metrics, arrays, time.perf_counter() - t0)


def _check_resolution(resolution: Any, time_budget: Any, mu: Any, nu: Any) -> float | None:
    """Validate ``resolution`` and ``time_budget``; the budget in seconds for ``"auto"``, None
    for ``"grid"``."""
    if resolution not in ("grid", "auto"):
        raise ValueError(f"resolution must be 'grid' or 'auto'; got {resolution!r}.")
    if not (isinstance(time_budget, (int, float)) and not isinstance(time_budget, bool)
            and math.isfinite(time_budget) and time_budget > 0):
        raise ValueError(f"time_budget must be a positive number of seconds; got {time_budget!r}.")
    if resolution == "grid":
        return None
    for name, x in (("mu", mu), ("nu", nu)):
        if not (hasattr(x, "cell_masses") and hasattr(x, "ndim")):
            raise ValueError(f"resolution='auto' refines the grid, so {name} must be a "
                             "distribution (otgrid.grid.distributions / datasets, or an "
                             "Empirical of samples), not masses on a fixed grid.")
    return float(time_budget)


def _refined(previous: _Level, last: _Level) -> bool:
    """Whether no headline metric moved by more than ``_REFINE_TOL`` between two resolutions."""
    return all(abs(last.metrics[k] - previous.metrics[k]) <= _REFINE_TOL
               for k in _REFINE_KEYS
               if math.isfinite(last.metrics[k]) and math.isfinite(previous.metrics[k]))


def _next_grid(levels: list[_Level], budget: float | None, elapsed: float) -> Grid | None:
    """The grid of the next resolution (twice the cells per axis), or None to stop."""
    if budget is None or (len(levels) >= 2 and _refined(levels[-2], levels[-1])):
        return None
    last = levels[-1]
    shape = tuple(2 * int(n) for n in last.grid.shape)
    if math.prod(shape) > _MAX_CELLS:
        return None
    if elapsed + last.seconds * 2 ** last.grid.ndim * _GROWTH > budget:
        return None
    return Grid(last.grid.bounds, shape)


def _stop_reason(levels: list[_Level], budget: float | None) -> str:
    """Why the refinement stopped (see ``AuditReport.refinement``)."""
    if budget is None:
        return "fixed"
    if len(levels) >= 2 and _refined(levels[-2], levels[-1]):
        return "converged"
    shape = tuple(2 * int(n) for n in levels[-1].grid.shape)
    return "max_cells" if math.prod(shape) > _MAX_CELLS else "time_budget"


def _package(metrics: dict[str, Any], last: _Level, f_: _Critic, tau: float, n_s: int,
             seed: int | None, levels: list[_Level], budget: float | None) -> AuditReport:
    """The AuditReport: the metrics, the combined Lipschitz constant, the exact solve's data
    at the last resolution, and the row of every resolution."""
    exact = last.exact
    w_ratio = metrics["w_ratio"]
    lip = max(metrics["lipschitz_grid"], metrics["lipschitz_samples"])
    return AuditReport(
        **metrics, w_star=float(exact.w1), w_star_lower=float(exact.lower),
        w_star_upper=float(exact.upper), lipschitz=lip,
        w_ratio_over_lipschitz=_ratio(w_ratio, lip) if math.isfinite(w_ratio) else math.nan,
        tau=float(tau), n_samples=int(n_s), seed=seed if isinstance(seed, int) else None,
        gradient_method=f_.gradient_method, critic_kind=f_.kind,
        exact_converged=bool(exact.converged), exact_gap=float(exact.gap),
        exact_seconds=float(exact.seconds), levels=tuple(lv.summary() for lv in levels),
        refinement=_stop_reason(levels, budget), exact=exact,
        optimal_grads=last.reference.cells, reference_kind=last.reference.cell_kind(),
        sinks=last.reference.sinks, **last.arrays)


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
    tol: float = 1e-4,
    max_iter: int = 100_000,
    exact: CriticResult | None = None,
    resolution: Literal["grid", "auto"] = "grid",
    time_budget: float = 60.0,
    outside: Literal["auto", "renormalize", "fold", "raise"] = "auto",
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
      ``grad f`` and ``grad f*`` and ``E_nu |grad f - grad f*|^2``, at the samples of ``nu``
      where the optimal flow is non-zero (there the optimal critic's gradient is the unit
      vector against the flow). The reference ``grad f*`` at a sample is the best available
      (:mod:`otgrid.auditing.reference`): the cell-centred flow's direction interpolated like
      the critic, or, near a sink of the flow located below the cell size, the radial direction
      from it; ``grad_cosine_determined`` and ``grad_l2_determined`` keep the samples where the
      grid resolves the reference (``determined_mass`` of them), the headline values all;
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
        :class:`otgrid.grid.interp.GridFunction`), otherwise by central differences with step
        ``fd_step``.
    mu, nu : Distribution or array_like, shape grid.shape
        Distributions (:mod:`otgrid.grid.distributions`, :mod:`otgrid.grid.datasets`;
        discretised exactly with :meth:`Grid.discretize`, an ``Empirical`` by histogram) or
        masses on the grid.
        Samples are drawn from a distribution with its ``sample`` method, and from masses by
        picking a cell with probability proportional to its mass and a uniform point in it.
    grid : Grid
        A 1D or 2D grid holding both measures.
    generator : ParametricGenerator, optional
        A generator (:mod:`otgrid.sco.generators` protocol: ``sample_latent``, ``sample``,
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
        Passed to :func:`otgrid.critic.solve_critic`. The default relative gap 1e-4 is chosen
        from the precision of the metrics (reported to 4 decimals): on the funnel pair with 64
        funnels at 256 x 256 the gradient metrics agree to 1e-4 between tol 1e-3 and 1e-6, and
        ``w_ratio`` is exact to the gap (measured: solve 2.1 s at 1e-4, 3.5 s at 1e-6).
    exact : CriticResult, optional
        A solve of the same ``mu``, ``nu`` on ``grid`` to reuse (skips the first solve).
    resolution : {"grid", "auto"}, optional
        ``"grid"``: audit on ``grid``. ``"auto"``: then on grids of the same bounds with twice
        the cells per axis, re-discretising ``mu`` and ``nu`` (which must be distributions),
        until no headline metric (``grad_cosine``, ``grad_cosine_determined``,
        ``determined_mass``, ``w_ratio``) moves by more than 0.005, the next grid is predicted
        to exceed ``time_budget`` or would have more than 2048 x 2048 cells. The report is that
        of the last grid; ``levels`` has a row per grid and ``refinement`` says why it stopped.
    time_budget : float, optional
        Seconds that ``resolution="auto"`` may spend in all (the first grid always runs).
    outside : {"auto", "renormalize", "fold", "raise"}, optional
        Mass of ``mu`` or ``nu`` outside the grid, as in :meth:`Grid.discretize`: by default
        (``"auto"``) more than 1e-6 (per axis) of either outside is an error
        (:class:`~otgrid.grid.grid.OutsideMassError`, a ValueError, with bounds that hold it).
    seed : int or None, optional
        Seed of the sampling. The samples of ``nu`` that locate sinks (65 536 more when ``nu``
        is a distribution) come from a generator of their own derived from it.

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
    >>> from otgrid.auditing import audit
    >>> grid = og.Grid((-7.0, 9.0), 256)
    >>> rep = audit(lambda x: -x[:, 0], og.Normal(0.0, 1.0), og.Normal(2.0, 1.0), grid)
    >>> round(rep.w_ratio, 3), round(rep.grad_cosine, 3), round(rep.shape_error, 3)
    (1.0, 1.0, 0.0)
    """
    h = _check_options(grid, tau, flow_tol, fd_step)
    budget = _check_resolution(resolution, time_budget, mu, nu)
    check_choice(outside, "outside", ("auto", "renormalize", "fold", "raise"))
    mu_m, mu_d, nu_m, nu_d = _measures(mu, nu, grid, outside)
    f_ = _wrap_critic(critic, grid, h)
    rng = as_rng(seed)
    x_mu, x_nu, x_between = _sample_points(samples, mu_m, mu_d, nu_m, nu_d, grid, rng)
    at_samples = _sample_gradients(f_, x_mu, x_nu, x_between)
    sink_samples = _sink_samples(samples, nu_d, x_nu, seed)
    levels: list[_Level] = []
    t_start = time.perf_counter()
    while True:
        level = _audit_level(f_, grid, mu_m, nu_m, exact, tol, max_iter, flow_tol, tau,
                             at_samples, x_nu, sink_samples)
        levels.append(level)
        grid = _next_grid(levels, budget, time.perf_counter() - t_start)
        if grid is None:
            break
        mu_m, _, nu_m, _ = _measures(mu, nu, grid, outside)
        exact = None
    last = levels[-1]
    metrics = dict(last.metrics)
    metrics.update(_sample_metrics(at_samples, last.w_star, tau))
    metrics.update(_generator_metrics(generator, f_, last.exact, last.reference,
                                      x_between.shape[0], last.grid.ndim, rng))
    return _package(metrics, last, f_, tau, x_between.shape[0], seed, levels, budget)
