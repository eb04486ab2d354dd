"""Input validation, the problem record and the finishing step shared by the point-cloud solvers.

:func:`_prepare` checks the points and weights and builds a :class:`_Problem`; the solvers
(:mod:`~otgrid.pointcloud.sinkhorn`, :mod:`~otgrid.pointcloud.smooth_dual`) run on it and
:func:`_finish` packages their potentials as a
:class:`~otgrid.pointcloud.result.RegularizedResult`.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from otgrid._device import to_host
from otgrid._threads import solve_clock
from otgrid._units import cloud_units
from otgrid._validation import (
    as_finite_array,
    as_number,
    as_rng,
    check_choice,
    check_positive_int,
    totals_rtol,
    unequal_totals_hint,
)
from otgrid.errors import ConvergenceWarning
from otgrid.grid.grid import MAX_COORDINATE
from otgrid.pointcloud.ops_numpy import CloudOps, cost_degree
from otgrid.pointcloud.result import RegularizedHistory, RegularizedResult

__all__ = ["BACKENDS", "COSTS", "REGULARIZERS"]

Cost = Literal["euclidean", "sqeuclidean", "cityblock"]
Regularizer = Literal["l2", "kl"]
Backend = Literal["auto", "numpy", "numba", "cuda"]
COSTS: tuple[str, ...] = ("euclidean", "sqeuclidean", "cityblock")
REGULARIZERS: tuple[str, ...] = ("l2", "kl")
BACKENDS: tuple[str, ...] = ("auto", "numpy", "numba", "cuda")

# Relative difference of sum(a) and sum(b) accepted (b is then rescaled to sum(a)); 16 machine
# epsilons of float32 / float16 weights where more (otgrid._validation.totals_rtol).
WEIGHT_RTOL = 1e-6
#: Smallest ``reg`` accepted, relative to the largest cost of the problem: below it the
#: regularization is lost in the float64 rounding of the costs and potentials (measured: the
#: L2 dual stalls at 15x the true cost from 1e-12, log-domain Sinkhorn returns inf or divides
#: by zero from about 1e-20).
MIN_REG_RELATIVE = 1e-9
#: Largest cost, and largest ``reg`` times the total mass, of an L2-regularized problem
#: (``smooth_ot(regularizer="l2")``) in the solver's units (the points measured in a power of
#: two near their spread: costs of order 1): its dual squares numbers of those sizes (the
#: costs, and ``reg`` times plan entries), which overflow float64 from about 1e154. Measured
#: before this bound (and before the units): squared-euclidean costs of 1e154 and more stalled
#: at marginal errors of 1 to 2, with a transport cost of 0, 1.4 times the optimum or inf.
L2_MAX_SCALE = 1e140
#: Largest coordinate of a float32 problem (float64: ``otgrid.grid.grid.MAX_COORDINATE``, 1e150):
#: squared distances stay below float32's 3.4e38.
MAX_COORDINATE_FLOAT32 = 1e18


# ------------------------------------------------------------------------------- validation
@dataclass
class _Problem:
    """Validated float64 inputs with a batch axis, and what the drivers need to know.

    ``x``, ``y`` are measured in the length unit of their spread
    (:func:`otgrid._units.cloud_units`): the costs, ``diameter``, the potentials and ``reg``
    inside the solvers are ``2^-cost_exp`` times the user's (:meth:`to_solver`,
    :meth:`to_user`); ``x_user``, ``y_user`` are the points as given.
    """

    x: np.ndarray
    y: np.ndarray
    a: np.ndarray
    b: np.ndarray
    mass: np.ndarray
    diameter: np.ndarray
    batched: bool
    cost: str
    dtype: np.dtype
    x_user: np.ndarray
    y_user: np.ndarray
    cost_exp: int = 0

    @property
    def B(self) -> int:
        """Number of problems (1 for a single solve)."""
        return self.x.shape[0]

    def to_user(self, v):
        """A cost, potential or ``reg`` of the solver in the user's units (exact)."""
        return np.ldexp(v, self.cost_exp) if self.cost_exp else v

    def to_solver(self, v):
        """A cost, potential or ``reg`` in the user's units in those of the solver (exact)."""
        return np.ldexp(v, -self.cost_exp) if self.cost_exp else v


def _points(v: Any, name: str, dtype: np.dtype) -> tuple[np.ndarray, np.ndarray]:
    """The points in ``dtype``, and in float64 before their rounding to ``dtype``."""
    raw = as_finite_array(v, name)
    arr = raw.astype(dtype, copy=False)
    if arr.ndim == 1:
        arr, raw = arr[:, None], raw[:, None]
    if arr.ndim not in (2, 3):
        raise ValueError(f"{name} must have shape (n,), (n, d) or (B, n, d) for a batch; "
                         f"got {arr.shape}.")
    if arr.shape[-2] == 0:
        raise ValueError(f"{name} is empty (shape {arr.shape}); it must hold at least one "
                         "point.")
    if arr.shape[-1] == 0:
        raise ValueError(f"{name} has points of dimension 0 (shape {arr.shape}).")
    limit = MAX_COORDINATE if dtype == np.float64 else MAX_COORDINATE_FLOAT32
    biggest = float(np.max(np.abs(raw))) if raw.size else 0.0
    if biggest > limit:
        raise ValueError(f"{name} has coordinates beyond +-{limit:g} (in {dtype}, squared "
                         f"distances overflow); got max |{name}| = {biggest:.3g}. Rescale the "
                         "points (other units) or shift them towards 0.")
    return arr, raw


def _weights(w: Any, name: str, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    if w is None:
        return np.full(shape, 1.0 / shape[-1])
    arr = as_finite_array(w, name, dtype=dtype, nonnegative=True).astype(np.float64)
    if arr.shape != shape:
        raise ValueError(f"{name} must have shape {shape} (one weight per point); got "
                         f"{arr.shape}.")
    tot = arr.sum(axis=-1)
    if np.any(tot <= 0):
        raise ValueError(f"{name} has zero total weight; give at least one point a positive "
                         "weight.")
    return arr


def _cost_bound(x: np.ndarray, y: np.ndarray, cost: str) -> np.ndarray:
    """Upper bound on every cost of each problem, from the bounding box of both clouds."""
    span = np.maximum(x.max(axis=1), y.max(axis=1)) - np.minimum(x.min(axis=1), y.min(axis=1))
    if cost == "cityblock":
        return span.sum(axis=-1)
    sq = (span * span).sum(axis=-1)
    return np.sqrt(sq) if cost == "euclidean" else sq


def _check_representable(diameter: np.ndarray, cost_exp: int, cost: str,
                         dtype: np.dtype) -> None:
    """Refuse costs whose largest (``diameter``, in the solver's units, times
    ``2^cost_exp``) is below the smallest normal number of ``dtype``: the costs, potentials
    and transport cost could not be returned (they would be 0 or subnormal)."""
    top = float(np.max(diameter)) if diameter.size else 0.0
    tiny = float(np.finfo(dtype).tiny)
    if not (np.isfinite(top) and top > 0) or np.ldexp(top, cost_exp) >= tiny:
        return
    size = 10.0 ** (np.log10(top) + cost_exp * np.log10(2.0))
    raise ValueError(f"the {cost} costs between the points are at most about {size:.3g}, below "
                     f"the smallest normal {dtype.name} ({tiny:.3g}): the costs, potentials "
                     "and transport cost cannot be represented. Measure the points in a "
                     "smaller unit (multiply them by a large number, and reg by that number"
                     f"{'' if cost_degree(cost) == 1 else ' squared'}).")


def _prepare(x, y, a, b, cost: str, dtype: Any, rescale: bool = True) -> _Problem:
    """Validate the inputs into a :class:`_Problem`, its points in the unit of their spread
    (``rescale``; else as given, e.g. a subsample of a problem already in that unit)."""
    dtype = np.dtype(dtype)
    given = [w for w in (a, b) if w is not None]  # their precision, before any conversion
    rtol = totals_rtol(*given, rtol=WEIGHT_RTOL)
    hint = unequal_totals_hint(*given, rtol=WEIGHT_RTOL)
    x, y, a, b = (to_host(v) for v in (x, y, a, b))  # CuPy inputs: one copy to the host
    if dtype not in (np.float32, np.float64):
        raise ValueError(f"dtype must be numpy.float64 or numpy.float32; got {dtype}.")
    xu, xr = _points(x, "x", dtype)
    yu, yr = _points(y, "y", dtype)
    if xu.ndim != yu.ndim:
        raise ValueError(f"x and y must both be single clouds (n, d) or both batches (B, n, d); "
                         f"got shapes {xu.shape} and {yu.shape}.")
    if xu.shape[-1] != yu.shape[-1]:
        raise ValueError(f"x and y must have points of the same dimension; got d = "
                         f"{xu.shape[-1]} for x and {yu.shape[-1]} for y.")
    batched = xu.ndim == 3
    if batched and xu.shape[0] != yu.shape[0]:
        raise ValueError(f"x and y must hold the same number of problems; got batches of "
                         f"{xu.shape[0]} and {yu.shape[0]}.")
    x64 = xu.astype(np.float64) if batched else xu.astype(np.float64)[None]
    y64 = yu.astype(np.float64) if batched else yu.astype(np.float64)[None]
    e = 0
    if rescale:  # small or large coordinates: costs neither underflow nor overflow
        x64, y64, e = cloud_units(x64, y64)
    cost_exp = cost_degree(cost) * e
    diameter = _cost_bound(x64, y64, cost)
    _check_representable(diameter, cost_exp, cost, dtype)
    if rescale and dtype != np.float64:  # spreads that the rounding to dtype flushed to 0
        xr, yr, er = cloud_units(*((xr, yr) if batched else (xr[None], yr[None])))
        _check_representable(_cost_bound(xr, yr, cost), cost_degree(cost) * er, cost, dtype)
    aw = _weights(a, "a", xu.shape[:-1], dtype)
    bw = _weights(b, "b", yu.shape[:-1], dtype)
    if not batched:
        aw, bw = aw[None], bw[None]
    sa, sb = aw.sum(axis=1), bw.sum(axis=1)
    bad = np.abs(sa - sb) > rtol * np.maximum(sa, sb)
    if np.any(bad):
        k = int(np.argmax(bad))
        where = f" (problem {k} of the batch)" if batched else ""
        raise ValueError(f"a and b must have equal totals{where}; got sum(a) = {sa[k]:.12g} "
                         f"and sum(b) = {sb[k]:.12g}. {hint}")
    bw = bw * (sa / sb)[:, None]
    return _Problem(x64, y64, aw, bw, sa, diameter, batched, cost, dtype, xu, yu, cost_exp)


def _check_common(reg, cost, tol, max_iter, backend, callback) -> tuple[float, float, int, str]:
    try:
        reg = float(reg)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"reg must be a positive number; got {reg!r}.") from exc
    if not (np.isfinite(reg) and reg > 0):
        raise ValueError(f"reg must be a positive finite number (in units of the cost); got "
                         f"{reg}.")
    check_choice(cost, "cost", COSTS)
    tol = as_number(tol, "tol")
    if not (np.isfinite(tol) and tol > 0):
        raise ValueError(f"tol must be a positive number; got {tol}.")
    max_iter = check_positive_int(max_iter, "max_iter")
    check_choice(backend, "backend", BACKENDS)
    if callback is not None and not callable(callback):
        raise TypeError("callback must be callable, e.g. callback(info) -> bool | None.")
    return reg, tol, max_iter, ("numba" if backend == "auto" else backend)


def _check_reg_scale(reg: float, prob: _Problem) -> float:
    """Refuse a ``reg`` below :data:`MIN_REG_RELATIVE` times the problem's largest cost, or
    too far above it to be represented in the solver's units; return ``reg`` in those units.
    """
    top = float(np.max(prob.diameter)) if prob.diameter.size else 0.0
    scale = float(prob.to_user(top))
    reg_solver = float(prob.to_solver(reg))
    if not np.isfinite(reg_solver):
        raise ValueError(f"reg = {reg:.3g} is more than 1e308 times the largest cost "
                         f"({scale:.3g}): their ratio overflows float64. The plan no longer "
                         "depends on reg there (it is the product of the weights); use a "
                         "smaller reg.")
    if np.isfinite(top) and reg_solver < MIN_REG_RELATIVE * top:
        raise ValueError(f"reg = {reg:.3g} is below {MIN_REG_RELATIVE:g} of the largest cost "
                         f"({scale:.3g}), where float64 rounding swamps the regularization; use "
                         f"reg >= {MIN_REG_RELATIVE * scale:.3g} (for the unregularized W1 of a "
                         "1D/2D problem, use solve_critic).")
    return reg_solver


def _check_l2_range(reg: float, prob: _Problem) -> None:
    """Refuse an L2-regularized problem whose costs or ``reg`` (both in the solver's units)
    times its mass exceed :data:`L2_MAX_SCALE`."""
    cost = float(np.max(prob.diameter)) if prob.diameter.size else 0.0
    mass = float(np.max(prob.mass)) if prob.mass.size else 0.0
    user_cost, user_reg = float(prob.to_user(cost)), float(prob.to_user(reg))
    if cost > L2_MAX_SCALE:
        raise ValueError(f"the costs reach {user_cost:.3g}, {cost:.3g} times the unit of the "
                         f"points' spread, above {L2_MAX_SCALE:g}: the L2-regularized dual "
                         "squares them, which overflows float64. Use regularizer='kl'.")
    if reg * mass > L2_MAX_SCALE:
        unit = "" if not prob.cost_exp else f" (in units of the costs' size: {reg:.3g})"
        raise ValueError(f"reg = {user_reg:.3g}{unit} times the total mass ({mass:.3g}) is "
                         f"above {L2_MAX_SCALE:g}: the L2-regularized dual squares numbers of "
                         "that size, which overflows float64. The plan hardly changes once reg "
                         f"is far above the largest cost ({user_cost:.3g}): use a smaller reg.")


def _check_scaling(value: Any, name: str, default: float, warm: bool) -> float | None:
    """``None``/``True``/``False``/factor -> the annealing factor in (0, 1), or None (off)."""
    if value is None:
        return None if warm else default
    if value is True:
        return default
    if value is False:
        return None
    try:
        q = float(value)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name} must be None, a bool or a factor in (0, 1); got "
                        f"{value!r}.") from exc
    if not 0.0 < q < 1.0:
        raise ValueError(f"{name} must be a factor in (0, 1) (or True / False); got {value}.")
    return q


def _warm(warm_start: Any, prob: _Problem) -> tuple[np.ndarray, np.ndarray] | None:
    """``(f, g)`` as (B, n), (B, m) float64 from a result or a pair of arrays."""
    if warm_start is None:
        return None
    if isinstance(warm_start, RegularizedResult):
        f, g = warm_start.f, warm_start.g
    elif isinstance(warm_start, (tuple, list)) and len(warm_start) == 2:
        f, g = warm_start
    else:
        raise TypeError("warm_start must be a RegularizedResult or a pair (f, g) of "
                        f"potentials; got {type(warm_start).__name__}.")
    f = as_finite_array(f, "warm_start f")
    g = as_finite_array(g, "warm_start g")
    lead = (prob.B,) if prob.batched else ()
    want_f, want_g = (*lead, prob.x.shape[1]), (*lead, prob.y.shape[1])
    if f.shape != want_f or g.shape != want_g:
        raise ValueError(f"warm_start potentials must have shapes {want_f} and {want_g} (one "
                         f"value per point); got {f.shape} and {g.shape}.")
    return (prob.to_solver(f.reshape(prob.B, -1)).copy(),
            prob.to_solver(g.reshape(prob.B, -1)).copy())


# ----------------------------------------------------------------------------- shared pieces
def _normalise(f: np.ndarray, g: np.ndarray, prob: _Problem) -> tuple[np.ndarray, np.ndarray]:
    """Shift ``(f + s, g - s)`` so that ``<a, f> = <b, g>`` for every problem."""
    s = ((prob.a * f).sum(axis=1) - (prob.b * g).sum(axis=1)) / (2.0 * prob.mass)
    return f - s[:, None], g + s[:, None]


def _statistic(ops: CloudOps, prob: _Problem, f, g, mfun, n_samples: int, rng) -> np.ndarray:
    """Sanjabi et al. eq. (15): mean of M(V) over pairs drawn independently from a and b."""
    gen = as_rng(rng)
    ii = np.stack([gen.choice(prob.x.shape[1], n_samples, p=prob.a[k] / prob.a[k].sum())
                   for k in range(prob.B)])
    jj = np.stack([gen.choice(prob.y.shape[1], n_samples, p=prob.b[k] / prob.b[k].sum())
                   for k in range(prob.B)])
    bi = np.arange(prob.B)[:, None]
    v = f[bi, ii] + g[bi, jj] - ops.pair_costs(ii, jj)
    return mfun(v).mean(axis=1)


def _scalar(v: np.ndarray, prob: _Problem):
    return v.astype(np.float64) if prob.batched else float(v[0])


def _finish(prob: _Problem, *, f, g, r, c, transport, objective, primal, stat, iterations,
            passes, status, tol, hist, t0, backend, method, regularizer, reg, fix,
            warn_stack: int = 3) -> RegularizedResult:
    """Package the final iterate (arrays with a batch axis) into a RegularizedResult.

    ``hist``: ``(iteration, reg, marginal errors, objectives, seconds, float32)`` per
    iteration; every float32 iteration is one float32 pass (``float32_passes``). Costs,
    potentials and ``reg`` come in the solver's units and go out in the user's.
    """
    f, g, transport, objective, primal, reg = (
        prob.to_user(v) for v in (f, g, transport, objective, primal, reg))
    row_err = np.abs(r - prob.a).sum(axis=1) / prob.mass
    col_err = np.abs(c - prob.b).sum(axis=1) / prob.mass
    err = row_err + col_err
    grad = np.sqrt(((prob.a - r) ** 2).sum(axis=1) + ((prob.b - c) ** 2).sum(axis=1))
    converged = bool(np.all(err <= tol))
    if converged:
        status = "converged"
    worst = float(err.max())
    if status == "converged":
        message = (f"Converged: marginal error {worst:.2e} <= tol {tol:.1e} after {iterations} "
                   "iterations.")
    elif status == "callback":
        message = f"Stopped by the callback after {iterations} iterations (marginal error " \
                  f"{worst:.2e})."
    else:
        message = (f"Stopped ({status}) after {iterations} iterations with marginal error "
                   f"{worst:.2e} > tol {tol:.1e}; {fix}")
        warnings.warn(message, ConvergenceWarning, stacklevel=warn_stack)
    it, rg, me, ob, sec, low = (zip(*hist, strict=True) if hist else ((),) * 6)
    me_arr = np.array(me, dtype=float).reshape(len(it), prob.B)
    ob_arr = prob.to_user(np.array(ob, dtype=float).reshape(len(it), prob.B))
    history = RegularizedHistory(
        np.array(it, dtype=int), prob.to_user(np.array(rg, dtype=float)),
        me_arr if prob.batched else me_arr[:, 0], ob_arr if prob.batched else ob_arr[:, 0],
        np.array(sec, dtype=float), np.array(low, dtype=bool))
    out = (lambda v: v) if prob.batched else (lambda v: v[0])
    return RegularizedResult(
        f=out(f).astype(prob.dtype), g=out(g).astype(prob.dtype),
        transport_cost=_scalar(transport, prob), objective=_scalar(objective, prob),
        primal_objective=_scalar(primal, prob), marginal_error=_scalar(err, prob),
        marginal_errors=(_scalar(row_err, prob), _scalar(col_err, prob)),
        grad_norm=_scalar(grad, prob), termination_statistic=_scalar(stat, prob),
        plan_mass=_scalar(r.sum(axis=1), prob), iterations=int(iterations), passes=int(passes),
        converged=converged, status=status, message=message, history=history,
        seconds=solve_clock() - t0, backend=backend, method=method,
        regularizer=regularizer, reg=float(reg), cost=prob.cost, tol=tol, dtype=prob.dtype,
        x=prob.x_user, y=prob.y_user, a=out(prob.a).astype(prob.dtype),
        b=out(prob.b).astype(prob.dtype), float32_passes=int(history.float32.sum()))


def _info_value(v: np.ndarray, batched: bool):
    return v.copy() if batched else float(v[0])
