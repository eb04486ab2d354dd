"""The exact Wasserstein-1 critic on a grid: a certified Chambolle–Pock solver.

Problem (ARCHITECTURE.md §2). With ``c = mu - nu`` and forward differences ``D``,

.. math::

    W_{grid} = \\max_f \\langle c, f\\rangle \\ \\text{s.t.}\\ |(Df)_i| \\le 1
             = \\min_y \\sum_i |y_i|_* \\ \\text{s.t.}\\ D^\\top y = c .

The iteration (Chambolle & Pock 2011; Pinetz, Soukup & Pock, Alg. 1) is run with the primal step
preconditioned by ``(D^T D)^{-1}`` (Jacobs, Léger, Li & Osher 2019, "G-prox PDHG"):

.. code-block:: text

    u     = (D^T D)^+ (c - D^T y)              # one DCT pair
    f_new = f + tau u
    y     = shrink(y + sigma D(2 f_new - f), sigma),   sigma = 1 / tau

The preconditioned step needs ``tau sigma |D (D^T D)^{-1/2}|^2 = tau sigma <= 1`` whatever the
grid, and the same ``u`` is the Poisson correction that makes ``y + D u`` an exactly feasible
flow, so the upper bound of the certificate costs no extra solve.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from otgrid._validation import as_finite_array, check_choice, check_positive_int
from otgrid.backends import BACKENDS, make_kernels, resolve_backend
from otgrid.errors import ConvergenceWarning
from otgrid.grid import Grid

if TYPE_CHECKING:
    from otgrid.interp import GridFunction

__all__ = ["CheckInfo", "CriticResult", "SolveHistory", "solve_critic"]

Norm = Literal["euclidean", "cityblock"]
NORMS = ("euclidean", "cityblock")

# Default primal step tau = kappa_d * (number of cells) / W0, where W0 = sum_i |(D u0)_i| is the
# cost of the least-squares flow u0 = (D^T D)^+ c (an upper bound on W). tau scales like the
# inverse of a typical flow magnitude per cell. kappa_d was measured on Gaussian pairs, 8gaussians
# vs a Gaussian, point masses and random measures (64^2, 128^2 grids, 1D with 1024 cells):
# within a factor 2 of the best fixed tau on each of them.
_KAPPA = {1: 4.0}
_KAPPA_DEFAULT = 0.5


@dataclass(frozen=True)
class SolveHistory:
    """The certificate at every check of a solve.

    Attributes
    ----------
    iteration : ndarray of int
        Iteration number of each check.
    lower, upper : ndarray of float
        Best certified bounds on ``W_grid`` known at that check.
    seconds : ndarray of float
        Wall time since the start of the solve.
    """

    iteration: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    seconds: np.ndarray

    @property
    def gap(self) -> np.ndarray:
        """``upper - lower`` at each check."""
        return self.upper - self.lower

    def __len__(self) -> int:
        return len(self.iteration)


@dataclass(frozen=True)
class CheckInfo:
    """What a ``callback`` of :func:`solve_critic` receives at each check.

    Attributes
    ----------
    iteration : int
    lower, upper, gap : float
        Best certified bounds so far and their difference.
    seconds : float
        Wall time since the start of the solve.
    """

    iteration: int
    lower: float
    upper: float
    gap: float
    seconds: float


@dataclass(frozen=True, eq=False)
class CriticResult:
    """Result of :func:`solve_critic`: the critic, the flow and certified bounds on W.

    Attributes
    ----------
    w1 : float
        Estimate ``(lower + upper) / 2``; ``|w1 - W_grid| <= gap / 2``.
    lower : float
        Certified lower bound: ``<mu - nu, critic>`` for the feasible ``critic``.
    upper : float
        Certified upper bound: the cost ``sum_i |flow_i|`` of an exactly feasible flow.
    gap : float
        ``upper - lower``.
    critic : ndarray, shape grid.shape
        A feasible critic (``|(D critic)_i| <= 1`` in every cell, up to rounding), normalised so
        that ``sum((mu + nu) / 2 * critic) == 0``. It is high where ``mu`` has mass and low where
        ``nu`` has.
    flow : ndarray, shape (ndim, *grid.shape)
        Transport flux moving ``mu`` onto ``nu``: ``flow[k][i] / dx_k`` is the mass moved from
        cell ``i`` to cell ``i + e_k`` (negative: the other way). ``flow[k]`` is zero on the last
        index of axis ``k``. Its divergence equals ``mu - nu`` to rounding.
    iterations : int
        Iterations run.
    converged : bool
        Whether ``gap <= tol * upper`` (or the gap reached rounding level).
    status : {"converged", "max_iter", "callback"}
        Why the solve stopped.
    message : str
        Human-readable status.
    history : SolveHistory
        The bounds at every check.
    seconds : float
        Wall time of the solve.
    backend : str
        Backend that ran (``"numpy"`` or ``"numba"``).
    grid : Grid
        The grid.
    norm : {"euclidean", "cityblock"}
        The pointwise norm of the constraint.
    tol : float
        Requested relative gap.
    dtype : numpy.dtype
        Working precision of the iterates (the certificate is always computed in float64).
    step : float
        The primal step ``tau`` used (``sigma = 1 / tau``).
    """

    w1: float
    lower: float
    upper: float
    gap: float
    critic: np.ndarray = field(repr=False)
    flow: np.ndarray = field(repr=False)
    iterations: int
    converged: bool
    status: str
    message: str
    history: SolveHistory = field(repr=False)
    seconds: float
    backend: str
    grid: Grid
    norm: str
    tol: float
    dtype: np.dtype
    step: float

    @property
    def relative_gap(self) -> float:
        """``gap / upper`` (0 when ``upper == 0``)."""
        return self.gap / self.upper if self.upper > 0 else 0.0

    def interpolant(self) -> GridFunction:
        """The critic as a function of points: (bi)linear inside, 1-Lipschitz extension outside.

        Returns
        -------
        otgrid.interp.GridFunction
            ``f(x)`` and ``f.grad(x)`` for points ``x`` of shape ``(n, ndim)``.
        """
        from otgrid.interp import GridFunction

        return GridFunction(self.grid, self.critic)

    def __str__(self) -> str:
        return (f"W = {self.w1:.10g} in [{self.lower:.10g}, {self.upper:.10g}] "
                f"(relative gap {self.relative_gap:.2e}, {self.iterations} iterations, "
                f"{self.seconds:.3g} s, backend {self.backend}, {self.status})")


class _Best:
    """The best certified bounds seen so far, with the critic and flow that attain them."""

    def __init__(self) -> None:
        self.lower, self.upper = -np.inf, np.inf
        self.critic: np.ndarray | None = None
        self.flow: tuple[np.ndarray, np.ndarray] | None = None

    def update(self, cert, c64, f64, y64, u64, flow_candidates: bool) -> None:
        """Evaluate the certificate of the iterate ``(f, y)`` (``u`` its Poisson correction)."""
        upper = cert.flow_cost(y64, u64)
        if upper < self.upper:
            self.upper, self.flow = upper, (y64.copy(), u64)  # poisson returns a new u
        cands = [f64, cert.repair(f64)]
        if flow_candidates:
            g = cert.flow_critic(cert.corrected_flow(*self.flow))
            cands += [g, cert.repair(g)]
        for cand in cands:
            if cand is None:
                continue
            lip = max(1.0, cert.max_grad_norm(cand))
            lower = float(np.dot(c64.ravel(), cand.ravel())) / lip
            if lower > self.lower:
                self.lower, self.critic = lower, cand / lip


def _check_masses(x: Any, name: str, grid: Grid) -> np.ndarray:
    arr = as_finite_array(x, name, nonnegative=True)
    if arr.shape != grid.shape:
        raise ValueError(f"{name} must have the grid's shape {grid.shape}; got {arr.shape}. "
                         "Use grid.discretize(dist) or grid.histogram(samples) to build it.")
    if arr.sum() <= 0:
        raise ValueError(f"{name} has zero total mass; it must hold some mass.")
    return arr


def _trivial_result(grid, norm, tol, backend, dtype, t0) -> CriticResult:
    z = np.zeros(grid.shape)
    hist = SolveHistory(np.array([0]), np.array([0.0]), np.array([0.0]), np.array([0.0]))
    return CriticResult(0.0, 0.0, 0.0, 0.0, z, np.zeros((grid.ndim, *grid.shape)), 0, True,
                        "converged", "mu and nu are equal: W = 0.", hist,
                        time.perf_counter() - t0, backend, grid, norm, tol, np.dtype(dtype), 0.0)


def solve_critic(
    mu: Any,
    nu: Any,
    grid: Grid,
    *,
    norm: Norm = "euclidean",
    tol: float = 1e-6,
    max_iter: int = 100_000,
    backend: str = "auto",
    dtype: Any = np.float64,
    warm_start: CriticResult | None = None,
    callback: Callable[[CheckInfo], bool | None] | None = None,
    check_every: int = 10,
    step: float | None = None,
    verbose: bool = False,
) -> CriticResult:
    """Optimal Wasserstein-1 critic of two measures on a grid, with certified bounds on W.

    Solves the Kantorovich–Rubinstein dual on the grid (forward differences ``D``)

    .. math::

        W_{grid}(\\mu, \\nu) = \\max_f \\sum_i (\\mu_i - \\nu_i) f_i
        \\quad \\text{s.t.} \\quad |(Df)_i| \\le 1 \\ \\text{for every cell } i,

    and its dual, the Beckmann flow problem ``min sum_i |y_i|_* s.t. D^T y = mu - nu``, by a
    preconditioned Chambolle–Pock iteration, and stops when the certified relative gap is below
    ``tol``.

    Parameters
    ----------
    mu, nu : array_like, shape grid.shape
        Non-negative cell masses with equal totals (relative difference <= 1e-9); for instance
        from :meth:`Grid.discretize` or :meth:`Grid.histogram`.
    grid : Grid
        The grid both measures live on.
    norm : {"euclidean", "cityblock"}, optional
        ``"euclidean"``: ``|grad f|_2 <= 1``, a consistent discretisation of W1 with Euclidean
        ground cost (a second-order cone program in 2D). ``"cityblock"``: ``|d_k f| <= 1`` per
        axis, whose value is exactly the W1 with L1 ground cost between the discrete measures
        at the cell centres. In 1D both are the exact W1 of the discrete measures.
    tol : float, optional
        Relative gap ``(upper - lower) / upper`` at which to stop.
    max_iter : int, optional
        Iteration limit. A solve that reaches it returns ``converged=False`` and warns; its
        bounds still hold.
    backend : {"auto", "numpy", "numba"}, optional
        ``"numpy"``: readable vectorised reference (any dimension). ``"numba"``: fused parallel
        CPU kernels (1D, 2D). ``"auto"``: numba for 1D/2D, numpy otherwise.
    dtype : {numpy.float64, numpy.float32}, optional
        Precision of the iterates. The certificate is always evaluated in float64 from the
        current iterates, so the bounds hold in float32 too.
    warm_start : CriticResult, optional
        An earlier result on the same grid: its critic and flow start the iteration. The step
        is chosen from the new data (or given by ``step``), not taken from the earlier result.
    callback : callable, optional
        Called as ``callback(info)`` with a :class:`CheckInfo` at every check, the last one
        included; returning ``True`` stops the solve (``status="callback"``).
    check_every : int, optional
        Iterations between certificate evaluations (each costs about two grid passes).
    step : float, optional
        Primal step ``tau`` (``sigma = 1 / tau``). By default chosen from the data as
        ``kappa * n_cells / W0`` with ``W0`` the cost of the least-squares flow.
    verbose : bool, optional
        Print the bounds about once a second.

    Returns
    -------
    CriticResult
        Critic, flow, bounds ``lower <= W_grid <= upper``, diagnostics.

    Notes
    -----
    Certificate, valid for any iterate ``(f, y)``:

    - lower: ``<c, f / max(1, max_i |(Df)_i|)>`` (a feasible critic);
    - upper: ``sum_i |y_i + (Du)_i|_*`` with ``D^T D u = c - D^T y`` solved by a DCT-II, which
      makes ``y + Du`` exactly feasible.

    The best bounds seen over the run are returned (with their critic and flow). The solve
    stops when ``upper - lower <= tol * upper``, or when the gap is at rounding level
    (``1e3 * eps * sum|c| * diameter``), e.g. for equal measures.

    In 1D the flow is unique and the upper bound is exact from the first iteration.

    References
    ----------
    A. Chambolle, T. Pock, "A first-order primal-dual algorithm for convex problems with
    applications to imaging", J. Math. Imaging Vis. 40 (2011).
    T. Pinetz, D. Soukup, T. Pock, "What is optimized in Wasserstein GANs?" (Alg. 1).
    M. Jacobs, F. Léger, W. Li, S. Osher, "Solving large-scale optimization problems with a
    convergence rate independent of grid size", SIAM J. Numer. Anal. 57 (2019).

    Examples
    --------
    >>> import otgrid as og
    >>> grid = og.Grid((-8, 8), 512)
    >>> mu = grid.discretize(og.Normal(0.0, 1.0))
    >>> nu = grid.discretize(og.Normal(1.0, 1.0))
    >>> res = og.solve_critic(mu, nu, grid, tol=1e-8)
    >>> res.converged, round(res.w1, 6)
    (True, 1.0)
    """
    t0 = time.perf_counter()
    if not isinstance(grid, Grid):
        raise TypeError(f"grid must be an otgrid.Grid; got {type(grid).__name__}.")
    norm = check_choice(norm, "norm", NORMS)
    check_choice(backend, "backend", BACKENDS)
    tol = float(tol)
    if not (np.isfinite(tol) and tol > 0):
        raise ValueError(f"tol must be a positive number; got {tol}.")
    max_iter = check_positive_int(max_iter, "max_iter", minimum=0)
    check_every = check_positive_int(check_every, "check_every")
    dtype = np.dtype(dtype)
    if dtype not in (np.float32, np.float64):
        raise ValueError(f"dtype must be numpy.float64 or numpy.float32; got {dtype}.")
    if step is not None and not (np.isfinite(step) and step > 0):
        raise ValueError(f"step must be a positive number or None; got {step}.")
    if callback is not None and not callable(callback):
        raise TypeError("callback must be callable, e.g. callback(info) -> bool | None.")
    mu = _check_masses(mu, "mu", grid)
    nu = _check_masses(nu, "nu", grid)
    smu, snu = mu.sum(), nu.sum()
    if abs(smu - snu) > 1e-9 * max(smu, snu):
        raise ValueError(f"mu and nu must have equal total mass; got {smu:.12g} and {snu:.12g}. "
                         "Normalise both (e.g. mu / mu.sum()).")
    if warm_start is not None:
        if not isinstance(warm_start, CriticResult):
            raise TypeError("warm_start must be a CriticResult from an earlier solve_critic.")
        if warm_start.grid != grid:
            raise ValueError("warm_start was computed on a different grid "
                             f"({warm_start.grid!r}); it must be {grid!r}.")
    backend = resolve_backend(backend, grid.ndim)

    c64 = mu - nu * (smu / snu)
    c64 -= c64.mean()  # exact zero total (changes c by rounding only)
    weights = 0.5 * (mu + nu * (smu / snu))
    if not np.any(c64):
        return _trivial_result(grid, norm, tol, backend, dtype, t0)
    # Solve for c / max|c| and scale back (W is positively homogeneous in c): keeps squares of
    # tiny flows from underflowing and makes the default step independent of the mass scale.
    scale = float(np.abs(c64).max())
    c64 /= scale

    kern = make_kernels(backend, grid.shape, grid.dx, norm, dtype)
    cert = kern if dtype == np.float64 else make_kernels(backend, grid.shape, grid.dx, norm,
                                                         np.float64)
    diameter = float(np.sqrt(sum((b - a) ** 2 for a, b in grid.bounds)))
    floor = 1e3 * np.finfo(np.float64).eps * float(np.abs(c64).sum()) * diameter

    c = c64.astype(dtype)
    if warm_start is not None:
        f = np.ascontiguousarray(warm_start.critic, dtype=dtype)
        y = np.ascontiguousarray(-warm_start.flow / scale, dtype=dtype)
    else:
        f = np.zeros(grid.shape, dtype=dtype)
        y = np.zeros((grid.ndim, *grid.shape), dtype=dtype)
    tau = step
    if tau is None:  # from the new data, also on a warm start (its W may differ a lot)
        with kern.session():
            u0 = cert.poisson(c64)
            w0 = cert.flow_cost(np.zeros((grid.ndim, *grid.shape)), u0)
        tau = _KAPPA.get(grid.ndim, _KAPPA_DEFAULT) * grid.size / w0
    sigma = 1.0 / tau

    f_out = np.empty_like(f)
    r = np.empty_like(f)
    r64 = np.empty(grid.shape) if dtype != np.float64 else None
    best = _Best()
    hist: list[tuple[int, float, float, float]] = []
    status, k = "max_iter", 0
    last_print = t0
    # The critic recovered from the flow (complementary slackness) is exact in 1D and becomes
    # exact for the cityblock LP once the flow's sign pattern is right (measured: 5e3 instead of
    # > 4e4 iterations to 1e-7 at 32^2); for the euclidean norm in 2D it never beat the iterate
    # in our measurements, so it is not computed there (it costs a DCT pair per check).
    flow_candidates = grid.ndim == 1 or norm == "cityblock"

    with kern.session():
        for k in range(max_iter + 1):
            kern.residual(c, y, r)
            u = kern.poisson(r)
            if k % check_every == 0 or k == max_iter:
                if dtype == np.float64:
                    best.update(cert, c64, f, y, u, flow_candidates)
                else:  # the certificate is evaluated in float64 from the float32 iterates
                    y64 = y.astype(np.float64)
                    cert.residual(c64, y64, r64)
                    best.update(cert, c64, f.astype(np.float64), y64, cert.poisson(r64),
                                flow_candidates)
                now = time.perf_counter() - t0
                gap = best.upper - best.lower
                hist.append((k, scale * best.lower, scale * best.upper, now))
                if verbose and (time.perf_counter() - last_print >= 1.0 or k == 0):
                    last_print = time.perf_counter()
                    print(f"[otgrid] iter {k:7d}  lower {scale * best.lower:.10g}  upper "
                          f"{scale * best.upper:.10g}  rel. gap {gap / best.upper:.2e}",
                          flush=True)
                stop = callback is not None and callback(
                    CheckInfo(k, scale * best.lower, scale * best.upper, scale * gap, now))
                if gap <= tol * best.upper or gap <= floor:
                    status = "converged"
                    break
                if stop:
                    status = "callback"
                    break
                if k == max_iter:
                    break
            kern.dual_step(f, u, y, f_out, tau, sigma)
            f, f_out = f_out, f

    best_lower, best_upper = scale * best.lower, scale * best.upper
    critic = best.critic - np.sum(weights * best.critic) / np.sum(weights)
    with kern.session():
        flow = -scale * cert.corrected_flow(*best.flow)
    seconds = time.perf_counter() - t0
    gap = best_upper - best_lower
    rel = gap / best_upper if best_upper > 0 else 0.0
    converged = status == "converged"
    if converged:
        message = f"Converged: relative gap {rel:.2e} <= tol {tol:.1e} after {k} iterations."
    elif status == "callback":
        message = f"Stopped by the callback after {k} iterations (relative gap {rel:.2e})."
    else:
        message = (f"Reached max_iter={max_iter} with relative gap {rel:.2e} > tol {tol:.1e}; "
                   "the bounds still hold. Increase max_iter or loosen tol.")
        warnings.warn(message, ConvergenceWarning, stacklevel=2)
    history = SolveHistory(*(np.array(v) for v in zip(*hist, strict=True)))
    if verbose:
        print(f"[otgrid] {message}", flush=True)
    return CriticResult(
        w1=0.5 * (best_lower + best_upper), lower=best_lower, upper=best_upper, gap=gap,
        critic=critic, flow=flow, iterations=k, converged=converged, status=status,
        message=message, history=history, seconds=seconds, backend=backend, grid=grid,
        norm=norm, tol=tol, dtype=dtype, step=float(tau),
    )
