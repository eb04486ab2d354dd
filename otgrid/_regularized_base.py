"""Result types, input validation and the finishing step shared by the point-cloud solvers.

Public names are re-exported by :mod:`otgrid.regularized`; see there for the conventions.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.spatial.distance import cdist

from otgrid._regularized_cuda import to_host
from otgrid._regularized_ops import CloudOps, make_ops
from otgrid._validation import as_finite_array, as_rng, check_choice, check_positive_int
from otgrid.errors import ConvergenceWarning

__all__ = [
    "BACKENDS",
    "COSTS",
    "REGULARIZERS",
    "RegularizedHistory",
    "RegularizedInfo",
    "RegularizedResult",
]

COSTS: tuple[str, ...] = ("euclidean", "sqeuclidean", "cityblock")
REGULARIZERS: tuple[str, ...] = ("l2", "kl")
BACKENDS: tuple[str, ...] = ("auto", "numpy", "numba", "cuda")

# log of a zero weight: finite, because the kernels are compiled with fastmath (no infinities).
LOG_ZERO = -1e30
# Relative difference of sum(a) and sum(b) accepted (b is then rescaled to sum(a)).
WEIGHT_RTOL = 1e-6
PLAN_MAX_BYTES = 1 << 30


# ------------------------------------------------------------------------------ result types
@dataclass(frozen=True)
class RegularizedHistory:
    """Progress of a solve, one entry per iteration.

    Attributes
    ----------
    iteration : ndarray of int, shape (k,)
    reg : ndarray of float, shape (k,)
        Regularization in force at that iteration (larger than the target during eps-scaling or
        reg-continuation; the largest over a batch).
    marginal_error : ndarray, shape (k,) or (k, B)
        ``(||P 1 - a||_1 + ||P^T 1 - b||_1) / sum(a)`` of the iterate at that regularization.
    objective : ndarray, shape (k,) or (k, B)
        Dual objective of the iterate at that regularization.
    seconds : ndarray of float, shape (k,)
        Wall time since the start of the solve.
    float32 : ndarray of bool, shape (k,)
        Whether that iteration's pass ran in float32 (mixed precision of :func:`sinkhorn`): its
        marginal error is then a float32 measurement.
    """

    iteration: np.ndarray
    reg: np.ndarray
    marginal_error: np.ndarray
    objective: np.ndarray
    seconds: np.ndarray
    float32: np.ndarray

    def __len__(self) -> int:
        return len(self.iteration)


@dataclass(frozen=True)
class RegularizedInfo:
    """What a ``callback`` of :func:`sinkhorn` or :func:`smooth_ot` receives every iteration.

    Attributes
    ----------
    iteration : int
    reg : float
        Regularization in force (larger than the target during eps-scaling / continuation).
    marginal_error : float or ndarray of shape (B,)
    objective : float or ndarray of shape (B,)
        Dual objective of the iterate.
    seconds : float
    """

    iteration: int
    reg: float
    marginal_error: Any
    objective: Any
    seconds: float


@dataclass(frozen=True, eq=False)
class RegularizedResult:
    """Potentials, costs and diagnostics of a regularized transport problem.

    The (pseudo-)plan is ``P_ij = a_i b_j M(f_i + g_j - C_ij)`` with ``M(v) = exp(v / reg)``
    (:func:`sinkhorn`), ``exp(v / reg - 1)`` (:func:`smooth_ot`, ``"kl"``) or ``v_+ / reg``
    (:func:`smooth_ot`, ``"l2"``). Batched solves (inputs with a leading axis ``B``) give arrays
    with that leading axis where a single solve gives scalars.

    Attributes
    ----------
    f : ndarray, shape (n,) or (B, n)
        Potential of the source points ``x``. Potentials are defined up to ``(f + s, g - s)``;
        the returned pair is normalised so that ``<a, f> = <b, g>``.
    g : ndarray, shape (m,) or (B, m)
        Potential of the target points ``y``.
    transport_cost : float or ndarray
        ``<P, C> = sum_ij P_ij C_ij`` (what POT's ``sinkhorn2`` returns).
    objective : float or ndarray
        Dual objective at ``(f, g)``: a lower bound on the regularized optimal value (weak
        duality), equal to it at convergence. For :func:`sinkhorn`, ``<a, f> + <b, g> - reg (
        sum P - sum(a)^2)``; for :func:`smooth_ot`, ``F(phi, psi)`` of Lemma 4.1.
    primal_objective : float or ndarray
        ``<P, C> + reg I(P)`` of the returned (pseudo-)plan, ``I`` the regularizer (generalised
        KL to ``a b^T`` for Sinkhorn, ``sum P^2 / (2 a b)`` or ``sum P log(P / (a b))`` for the
        smooth dual). It equals ``objective`` when the marginals are exact.
    marginal_error : float or ndarray
        ``(||P 1 - a||_1 + ||P^T 1 - b||_1) / sum(a)``: the stopping criterion.
    marginal_errors : tuple of (float or ndarray)
        The two terms: ``(||P 1 - a||_1 / sum(a), ||P^T 1 - b||_1 / sum(a))``.
    grad_norm : float or ndarray
        Euclidean norm of the gradient of the dual, ``||(a - P 1, b - P^T 1)||_2``.
    termination_statistic : float or ndarray
        Sanjabi et al. eq. (15): the mean of ``m_k = M(f_i + g_j - C_ij)`` over ``n_samples``
        pairs ``(i, j)`` drawn independently from ``a`` and ``b``; close to 1 at the optimum.
    plan_mass : float or ndarray
        ``sum_ij P_ij``, the exact expectation of the statistic times ``sum(a)^2``.
    iterations : int
        Iterations run (Sinkhorn: pairs of row and column updates, eps-scaling and Newton
        steps included; L-BFGS: its iterations, summed over continuation stages and restarts).
        A batch runs all its problems through the same iterations.
    passes : int
        Passes over the ``n x m`` pairs (the unit of work; the multiscale start of
        :func:`sinkhorn` counts as its share of a pass, rounded up).
    converged : bool
        Whether ``marginal_error <= tol`` (for every problem of a batch).
    status : {"converged", "max_iter", "callback", "stalled"}
        Why the solve stopped (``"stalled"``: L-BFGS could not make progress any more).
    message : str
        Human-readable status.
    history : RegularizedHistory
    seconds : float
    backend : {"numpy", "numba", "cuda"}
    method : {"sinkhorn", "lbfgs", "newton", "newton+lbfgs"}
        The algorithm (``smooth_ot``: ``"newton+lbfgs"`` when L-BFGS ran some of the
        iterations of a Newton solve).
    regularizer : {"kl", "l2"}
    reg : float
    cost : {"euclidean", "sqeuclidean", "cityblock"}
    tol : float
    dtype : numpy.dtype
    x, y : ndarray, shape (n, d) and (m, d), or (B, n, d) and (B, m, d)
        The points, in ``dtype``.
    a, b : ndarray, shape (n,) and (m,), or (B, n) and (B, m)
        The weights used (``b`` rescaled to the total of ``a``).
    float32_passes : int
        How many of the ``passes`` computed their pair arithmetic in float32 (the
        mixed-precision iterations of :func:`sinkhorn`; 0 otherwise). The marginal errors
        these iterations put into ``history`` are float32 measurements; the solve stops, and
        every number above is computed, on float64 passes.
    """

    f: np.ndarray = field(repr=False)
    g: np.ndarray = field(repr=False)
    transport_cost: Any
    objective: Any
    primal_objective: Any
    marginal_error: Any
    marginal_errors: tuple
    grad_norm: Any
    termination_statistic: Any
    plan_mass: Any
    iterations: int
    passes: int
    converged: bool
    status: str
    message: str
    history: RegularizedHistory = field(repr=False)
    seconds: float
    backend: str
    method: str
    regularizer: str
    reg: float
    cost: str
    tol: float
    dtype: np.dtype
    x: np.ndarray = field(repr=False)
    y: np.ndarray = field(repr=False)
    a: np.ndarray = field(repr=False)
    b: np.ndarray = field(repr=False)
    float32_passes: int = 0

    @property
    def batched(self) -> bool:
        """Whether the result holds a batch of problems (leading axis ``B``)."""
        return self.x.ndim == 3

    @property
    def phi(self) -> np.ndarray:
        """``phi = f`` in the notation of Sanjabi et al. (``V = phi_i - psi_j - c_ij``)."""
        return self.f

    @property
    def psi(self) -> np.ndarray:
        """``psi = -g`` in the notation of Sanjabi et al."""
        return -self.g

    # -- the plan as an operator ---------------------------------------------------------------
    def _batch(self):
        x = self.x if self.batched else self.x[None]
        y = self.y if self.batched else self.y[None]
        f = self.f if self.batched else self.f[None]
        g = self.g if self.batched else self.g[None]
        a = self.a if self.batched else self.a[None]
        b = self.b if self.batched else self.b[None]
        return (x.astype(np.float64), y.astype(np.float64), f.astype(np.float64),
                g.astype(np.float64), a.astype(np.float64), b.astype(np.float64))

    def _vectors(self, v: Any, name: str, length: int) -> tuple[np.ndarray, bool]:
        """``v`` as (B, k, length) float64, and whether it had a trailing ``k`` axis."""
        arr = as_finite_array(v, name)
        lead = (self.x.shape[0],) if self.batched else ()
        if arr.shape[:len(lead) + 1] != (*lead, length) or arr.ndim > len(lead) + 2:
            want = f"({', '.join(map(str, (*lead, length)))}) or " \
                   f"({', '.join(map(str, (*lead, length)))}, k)"
            raise ValueError(f"{name} must have shape {want}; got {arr.shape}.")
        matrix = arr.ndim == len(lead) + 2
        if not self.batched:
            arr = arr[None]
        if not matrix:
            arr = arr[..., None]
        return np.ascontiguousarray(np.swapaxes(arr, 1, 2)), matrix

    def _apply(self, vec: Any, transpose: bool) -> np.ndarray:
        x, y, f, g, a, b = self._batch()
        name, length = ("u", x.shape[1]) if transpose else ("v", y.shape[1])
        V, matrix = self._vectors(vec, name, length)
        ops = make_ops(self.backend, x, y, self.cost)
        inv = np.full(x.shape[0], 1.0 / self.reg)
        side, (fa, gb, wa, wb) = ("cols", (g, f, b, a)) if transpose else ("rows", (f, g, a, b))
        with ops.session():
            if self.regularizer == "l2":
                out = ops.l2_apply(side, fa, -gb, wb, inv, V)
            else:
                off = 0.0 if self.method == "sinkhorn" else -1.0
                h = _log_weights(wb) + gb / self.reg + off
                out = ops.exp_apply(side, h, fa, inv, V)
        out *= wa[..., None]
        if not matrix:
            out = out[..., 0]
        return (out if self.batched else out[0]).astype(self.dtype, copy=False)

    def apply_plan(self, v: Any) -> np.ndarray:
        """``P v`` without forming ``P`` (one pass over the pairs).

        Parameters
        ----------
        v : array_like, shape (m,) or (m, k) (batched: (B, m) or (B, m, k))

        Returns
        -------
        ndarray, shape (n,) or (n, k) (batched: (B, n) or (B, n, k))
            ``sum_j P_ij v_j``; e.g. ``apply_plan(y) / a[:, None]`` is the barycentric map.
        """
        return self._apply(v, transpose=False)

    def apply_plan_T(self, u: Any) -> np.ndarray:
        """``P^T u`` without forming ``P`` (one pass over the pairs).

        Parameters
        ----------
        u : array_like, shape (n,) or (n, k) (batched: (B, n) or (B, n, k))

        Returns
        -------
        ndarray, shape (m,) or (m, k) (batched: (B, m) or (B, m, k))
        """
        return self._apply(u, transpose=True)

    def plan(self, max_bytes: int | None = None) -> np.ndarray:
        """The dense (pseudo-)plan ``P``, when it fits in memory.

        Parameters
        ----------
        max_bytes : int, optional
            Largest plan (in bytes of ``dtype``) to build; 1 GiB by default.

        Returns
        -------
        ndarray, shape (n, m) or (B, n, m)

        Raises
        ------
        ValueError
            If the plan is larger than ``max_bytes``; use :meth:`apply_plan` instead.
        """
        limit = PLAN_MAX_BYTES if max_bytes is None else check_positive_int(max_bytes,
                                                                            "max_bytes")
        x, y, f, g, a, b = self._batch()
        size = x.shape[0] * x.shape[1] * y.shape[1] * np.dtype(self.dtype).itemsize
        if size > limit:
            raise ValueError(
                f"the plan has {x.shape[0] * x.shape[1] * y.shape[1]:,} entries "
                f"({size / 2**30:.3g} GiB in {np.dtype(self.dtype).name}), more than "
                f"max_bytes={limit:,}; use apply_plan / apply_plan_T (no n x m storage) or "
                "pass a larger max_bytes.")
        out = np.empty((x.shape[0], x.shape[1], y.shape[1]), dtype=self.dtype)
        for k in range(x.shape[0]):
            v = f[k][:, None] + g[k][None, :] - cdist(x[k], y[k], metric=self.cost)
            if self.regularizer == "l2":
                mv = np.maximum(v, 0.0) / self.reg
            else:
                off = 0.0 if self.method == "sinkhorn" else -1.0
                with np.errstate(over="ignore"):
                    mv = np.exp(v / self.reg + off)
            out[k] = a[k][:, None] * b[k][None, :] * mv
        return out if self.batched else out[0]

    def __str__(self) -> str:
        def fmt(v):
            arr = np.asarray(v)
            return f"{float(arr):.10g}" if arr.ndim == 0 else f"max {arr.max():.3e}"

        return (f"{self.method} ({self.regularizer}, reg={self.reg:g}, {self.cost}): "
                f"<P, C> = {fmt(self.transport_cost)}, objective {fmt(self.objective)}, "
                f"marginal error {fmt(self.marginal_error)}, {self.iterations} iterations, "
                f"{self.seconds:.3g} s, backend {self.backend}, {self.status}")


# ------------------------------------------------------------------------------- validation
@dataclass
class _Problem:
    """Validated float64 inputs with a batch axis, and what the drivers need to know."""

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

    @property
    def B(self) -> int:
        """Number of problems (1 for a single solve)."""
        return self.x.shape[0]


def _log_weights(w: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore"):
        return np.where(w > 0, np.log(np.where(w > 0, w, 1.0)), LOG_ZERO)


def _points(v: Any, name: str, dtype: np.dtype) -> np.ndarray:
    arr = as_finite_array(v, name, dtype=dtype)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim not in (2, 3):
        raise ValueError(f"{name} must have shape (n,), (n, d) or (B, n, d) for a batch; "
                         f"got {arr.shape}.")
    if arr.shape[-2] == 0:
        raise ValueError(f"{name} is empty (shape {arr.shape}); it must hold at least one "
                         "point.")
    if arr.shape[-1] == 0:
        raise ValueError(f"{name} has points of dimension 0 (shape {arr.shape}).")
    return arr


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


def _prepare(x, y, a, b, cost: str, dtype: Any) -> _Problem:
    dtype = np.dtype(dtype)
    x, y, a, b = (to_host(v) for v in (x, y, a, b))  # CuPy inputs: one copy to the host
    if dtype not in (np.float32, np.float64):
        raise ValueError(f"dtype must be numpy.float64 or numpy.float32; got {dtype}.")
    xu = _points(x, "x", dtype)
    yu = _points(y, "y", dtype)
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
    aw = _weights(a, "a", xu.shape[:-1], dtype)
    bw = _weights(b, "b", yu.shape[:-1], dtype)
    if not batched:
        aw, bw = aw[None], bw[None]
    sa, sb = aw.sum(axis=1), bw.sum(axis=1)
    bad = np.abs(sa - sb) > WEIGHT_RTOL * np.maximum(sa, sb)
    if np.any(bad):
        k = int(np.argmax(bad))
        where = f" (problem {k} of the batch)" if batched else ""
        raise ValueError(f"a and b must have equal totals{where}; got sum(a) = {sa[k]:.12g} "
                         f"and sum(b) = {sb[k]:.12g}. Normalise both (e.g. a / a.sum()).")
    bw = bw * (sa / sb)[:, None]
    return _Problem(x64, y64, aw, bw, sa, _cost_bound(x64, y64, cost), batched, cost, dtype,
                    xu, yu)


def _check_common(reg, cost, tol, max_iter, backend, callback) -> tuple[float, float, int, str]:
    try:
        reg = float(reg)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"reg must be a positive number; got {reg!r}.") from exc
    if not (np.isfinite(reg) and reg > 0):
        raise ValueError(f"reg must be a positive finite number (in units of the cost); got "
                         f"{reg}.")
    check_choice(cost, "cost", COSTS)
    tol = float(tol)
    if not (np.isfinite(tol) and tol > 0):
        raise ValueError(f"tol must be a positive number; got {tol}.")
    max_iter = check_positive_int(max_iter, "max_iter")
    check_choice(backend, "backend", BACKENDS)
    if callback is not None and not callable(callback):
        raise TypeError("callback must be callable, e.g. callback(info) -> bool | None.")
    return reg, tol, max_iter, ("numba" if backend == "auto" else backend)


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
    return (f.reshape(prob.B, -1).copy(), g.reshape(prob.B, -1).copy())


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
    iteration; every float32 iteration is one float32 pass (``float32_passes``).
    """
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
    ob_arr = np.array(ob, dtype=float).reshape(len(it), prob.B)
    history = RegularizedHistory(
        np.array(it, dtype=int), np.array(rg, dtype=float),
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
        seconds=time.perf_counter() - t0, backend=backend, method=method,
        regularizer=regularizer, reg=reg, cost=prob.cost, tol=tol, dtype=prob.dtype,
        x=prob.x_user, y=prob.y_user, a=out(prob.a).astype(prob.dtype),
        b=out(prob.b).astype(prob.dtype), float32_passes=int(history.float32.sum()))


def _info_value(v: np.ndarray, batched: bool):
    return v.copy() if batched else float(v[0])
