"""The exact Wasserstein-1 critic on a grid: a certified Chambolle–Pock solver.

Problem (ARCHITECTURE.md §2). With ``c = mu - nu`` and forward differences ``D``,

.. math::

    W_{grid} = \\max_f \\langle c, f\\rangle \\ \\text{s.t.}\\ |(Df)_i| \\le 1
             = \\min_y \\sum_i |y_i|_* \\ \\text{s.t.}\\ D^\\top y = c .

The iteration (Chambolle & Pock 2011; Pinetz, Soukup & Pock, Alg. 1) is run with the primal step
preconditioned by ``(D^T D)^{-1}`` (Jacobs, Léger, Li & Osher 2019, "G-prox PDHG"):

.. code-block:: text

    u     = (D^T D)^+ (c - D^T y)              # one DCT pair
    f_hat = f + tau u
    y_hat = shrink(y + sigma D(2 f_hat - f), sigma),   sigma = 1 / tau
    f, y  = f + rho (f_hat - f), y + rho (y_hat - y)   # relaxed: iterate.RELAXATION[norm]

The preconditioned step needs ``tau sigma |D (D^T D)^{-1/2}|^2 = tau sigma <= 1`` whatever the
grid, and the same ``u`` is the Poisson correction that makes ``y + D u`` an exactly feasible
flow, so the upper bound of the certificate costs no extra solve.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Callable
from typing import Any, Literal

import numpy as np

from otgrid._device import is_cupy_array
from otgrid._threads import blas_one_thread, compiling, solve_clock
from otgrid._units import unit_scale
from otgrid._validation import (
    as_finite_array,
    as_number,
    check_choice,
    check_positive_int,
    totals_rtol,
    unequal_totals_hint,
)
from otgrid.critic.backends import BACKENDS, make_kernels, resolve_backend
from otgrid.critic.certify import CertifiedBounds, certify
from otgrid.critic.certify import warm_up as warm_up_certificate
from otgrid.critic.iterate import (
    continue_from_best,
    continue_in_float64,
    default_steps,
    iterate,
)
from otgrid.critic.memory import check_memory
from otgrid.critic.multilevel import (
    ML_AUTO_CELLS,
    ML_MIN_CELLS,
    coarse_deadline,
    multilevel_start,
)
from otgrid.critic.result import CheckInfo, CriticResult, SolveHistory
from otgrid.errors import ConvergenceWarning
from otgrid.grid.grid import Grid

__all__ = ["NORMS", "solve_critic"]

Norm = Literal["euclidean", "cityblock"]
NORMS = ("euclidean", "cityblock")


def _trivial_result(mu, nu, ratio, grid, norm, tol, backend, dtype, t0) -> CriticResult:
    """The result of a problem whose ``c`` rounded to zero: the zero critic and flow,
    certified (``W = 0`` exactly when ``mu == ratio nu`` in float64; otherwise the upper bound
    covers what the rounding hid)."""
    z = np.zeros(grid.shape)
    flow = np.zeros((grid.ndim, *grid.shape))
    cb = certify(mu, nu, ratio, z, flow, grid.dx, norm)
    hist = SolveHistory(np.array([0]), np.array([cb.lower]), np.array([cb.upper]),
                        np.array([0.0]))
    gap = cb.upper - cb.lower
    ok = gap <= tol * cb.upper
    msg = ("mu and nu are equal: W = 0." if cb.upper == 0 else
           f"mu and nu are equal up to rounding: W in [{cb.lower:.3g}, {cb.upper:.3g}].")
    return CriticResult(0.5 * (cb.lower + cb.upper), cb.lower, cb.upper, gap, z, flow, 0, ok,
                        "converged" if ok else "floor", msg, hist, solve_clock() - t0,
                        backend, grid, norm, tol, np.dtype(dtype), 0.0)


#: Largest total mass of a problem: with coordinates within ``MAX_COORDINATE`` (1e150), W and
#: every intermediate sum stay below 1e300.
MAX_TOTAL_MASS = 1e150


def _check_masses(x: Any, name: str, grid: Grid) -> tuple[np.ndarray, bool]:
    """Masses as a float64 array ``(B, *grid.shape)``; whether a batch axis was given."""
    arr = as_finite_array(x, name, nonnegative=True)
    if arr.shape == grid.shape:
        arr, batched = arr[None], False
    elif arr.ndim == grid.ndim + 1 and arr.shape[1:] == grid.shape and arr.shape[0] > 0:
        batched = True
    else:
        raise ValueError(f"{name} must have the grid's shape {grid.shape} (or (B, *{grid.shape}) "
                         f"for a batch of B problems); got {arr.shape}. Use grid.discretize(dist) "
                         "or grid.histogram(samples) to build it.")
    with np.errstate(over="ignore"):
        totals = arr.reshape(arr.shape[0], -1).sum(axis=1)
    if not np.all(totals <= MAX_TOTAL_MASS):
        which = "" if not batched else f" (problem {int(np.argmax(~(totals <= MAX_TOTAL_MASS)))})"
        raise ValueError(f"{name} has a total mass above {MAX_TOTAL_MASS:g}{which} (W could "
                         "overflow); rescale the masses (W scales with them).")
    if np.any(totals <= 0):
        which = "" if not batched else f" (problem {int(np.argmax(totals <= 0))})"
        raise ValueError(f"{name} has zero total mass{which}; it must hold some mass.")
    return arr, batched


def _warm_list(warm_start: Any, nb: int, batched: bool, grid: Grid) -> list:
    if warm_start is None:
        return [None] * nb
    items = list(warm_start) if batched and isinstance(warm_start, (list, tuple)) else None
    if items is None:
        if batched and nb > 1:
            raise TypeError("For a batch, warm_start must be a list of CriticResult (one per "
                            "problem, None allowed), e.g. the list a batch solve returned.")
        items = [warm_start] * nb
    if len(items) != nb:
        raise ValueError(f"warm_start has {len(items)} results for {nb} problems.")
    for w in items:
        if w is None:
            continue
        if not isinstance(w, CriticResult):
            raise TypeError("warm_start must be a CriticResult from an earlier solve_critic.")
        if w.grid != grid:
            raise ValueError("warm_start was computed on a different grid "
                             f"({w.grid!r}); it must be {grid!r}.")
    return items


def _message(status: str, k: int, rel: float, tol: float, max_iter: int,
             time_limit: float | None) -> str:
    if status == "converged":
        return f"Converged: relative gap {rel:.2e} <= tol {tol:.1e} after {k} iterations."
    if status == "floor":
        return (f"Stopped at the rounding floor after {k} iterations: the certified relative gap "
                f"{rel:.2e} is above tol {tol:.1e}, and float64 rounding (of <c, f>, of the "
                "flow's cost and of its divergence) does not let it shrink further. The bounds "
                "hold; loosen tol.")
    if status == "callback":
        return f"Stopped by the callback after {k} iterations (relative gap {rel:.2e})."
    if status == "interrupted":
        return (f"Interrupted (KeyboardInterrupt) after {k} iterations; relative gap {rel:.2e}. "
                "The bounds hold.")
    if status == "time_limit":
        return (f"Reached time_limit={time_limit:g} s after {k} iterations with relative gap "
                f"{rel:.2e} > tol {tol:.1e}; the bounds still hold.")
    return (f"Reached max_iter={max_iter} with relative gap {rel:.2e} > tol {tol:.1e}; "
            "the bounds still hold. Increase max_iter or loosen tol.")


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
    warm_start: CriticResult | list[CriticResult | None] | None = None,
    callback: Callable[[CheckInfo], bool | None] | None = None,
    check_every: int = 10,
    step: float | None = None,
    adaptive_step: bool = True,
    multilevel: bool | Literal["auto"] = "auto",
    time_limit: float | None = None,
    interrupt: Literal["raise", "return"] = "raise",
    verbose: bool = False,
) -> CriticResult | list[CriticResult]:
    """Optimal Wasserstein-1 critic of two measures on a grid, with certified bounds on W.

    Solves the Kantorovich–Rubinstein dual on the grid (forward differences ``D``)

    .. math::

        W_{grid}(\\mu, \\nu) = \\max_f \\sum_i (\\mu_i - \\nu_i) f_i
        \\quad \\text{s.t.} \\quad |(Df)_i| \\le 1 \\ \\text{for every cell } i,

    and its dual, the Beckmann flow problem ``min sum_i |y_i|_* s.t. D^T y = mu - nu``, by a
    preconditioned Chambolle–Pock iteration with adaptive restarts, and stops when the certified
    relative gap is below ``tol``. A stack of problems on one grid is solved together.

    Parameters
    ----------
    mu, nu : array_like, shape grid.shape or (B, \\*grid.shape)
        Non-negative cell masses with equal totals (relative difference <= 1e-9, or 16
        machine epsilons where an input holds float32 or float16 numbers, 1.9e-6 for float32:
        ``otgrid._validation.totals_rtol``; the solve rescales ``nu`` to the total of ``mu``
        and certifies the bounds of that problem), at most ``MAX_TOTAL_MASS`` = 1e150 each;
        for instance
        from :meth:`Grid.discretize` or :meth:`Grid.histogram`. A leading axis of length ``B``
        makes a batch of ``B`` problems (one of the two may be a single array, used for all);
        each problem stops on its own.
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
    backend : {"auto", "numpy", "numba", "cuda"}, optional
        ``"numpy"``: readable vectorised reference (any dimension). ``"numba"``: fused parallel
        CPU kernels (1D, 2D). ``"cuda"``: numba-cuda kernels on CuPy arrays on the GPU (1D, 2D;
        needs ``otgrid[cuda]`` and a GPU, else ``RuntimeError`` saying why). ``"auto"``: cuda
        for 1D/2D problems of at least ``otgrid.backends.CUDA_AUTO_MIN_CELLS`` cells (grid
        times batch) when a GPU is usable, numba for other 1D/2D problems, numpy otherwise.
    dtype : {numpy.float64, numpy.float32}, optional
        Precision of the iterates. The certificate is always evaluated in float64 from the
        current iterates, so the bounds hold in float32 too. A float32 solve whose gap stops
        improving (the precision floor of its iterates, a relative gap of about 2^-24 times
        the cells along the longest axis) goes on in float64 from its best certified critic
        and flow (``float64_from`` of the result says when); the coarse levels of its
        multilevel start iterate in float64 where their tolerance is near that floor
        (``otgrid.critic.multilevel.coarse_dtype``).
    warm_start : CriticResult or list of CriticResult, optional
        An earlier result on the same grid (a list, one per problem, for a batch): its critic
        and flow start the iteration. The step is chosen from the new data (or given by
        ``step``), not taken from the earlier result. Where the multilevel start applies
        (``multilevel``), a warm start whose certified relative gap on the new data is within
        10 % (``WARM_NEAR``; one check, the iteration's first) starts the iteration as it is,
        and a farther one gives way to the multilevel start, as without a warm start (a warm
        start from data whose W differs by a third took up to 13 times the iterations of a
        cold multilevel solve). ``multilevel=False`` keeps every warm start.
    callback : callable, optional
        Called as ``callback(info)`` with a :class:`CheckInfo` at every check of every running
        problem, the last one included; returning ``True`` stops that problem
        (``status="callback"``).
    check_every : int, optional
        Iterations between certificate evaluations (each costs a few grid passes); after
        ``50 * check_every`` iterations, checks come every 2 % of the iterations run. A first
        check (at the start) with a relative gap above ``10 * tol`` skips the next one (with
        ``check_every=10`` the second check comes at iteration 35). While a problem's relative
        gap is above ``3 * tol``, its checks are spaced further, to ``sqrt(64 k)`` iterations
        after ``k`` (at most ``2**25`` cell-iterations of one problem apart): stopping is then
        at most that late, and callbacks, progress lines and the time limit still come several
        times a second. Within ``3 * tol`` (float64 iterates), the next check comes when the gap
        would reach ``tol`` on the line through the last two checks, if that is later (within
        the same bound and a quarter of the iterations run): the gap falls ever slower there, so
        that line reaches ``tol`` first and the check comes before the stop. Each problem of a
        batch keeps its own schedule, so its result does not depend on the batch.
    step : float, optional
        Initial primal step ``tau`` (``sigma = 1 / tau``). By default chosen from the data as
        ``kappa * n_cells / W0`` with ``W0`` the cost of the least-squares flow.
    adaptive_step : bool, optional
        Adapt ``tau`` at restarts (PDLP's primal weight, kept within a factor 16 of the initial
        step and only moved in the direction that helps the lagging bound). ``False`` keeps the
        step fixed, as in plain Chambolle–Pock.
    multilevel : bool or "auto", optional
        Start from the solution of the problem coarsened by 2 per axis (recursively, down to
        32 cells per axis), solved to ``tol`` (to 2e-6 for a tighter ``tol``, at most 10 times
        looser: ``otgrid.critic.multilevel.coarse_tol``) and prolonged to this grid.
        ``"auto"``: on 2D grids of at least 128 x 128 cells (with a ``warm_start``, see there).
        The result's ``iterations`` counts the iterations on this grid only.
    time_limit : float, optional
        Seconds after which to stop (checked at every check); ``status="time_limit"``, the
        bounds hold. Like the result's ``seconds``, it excludes the compilation of the Numba
        kernels on a first run. The coarse solves of a multilevel start get at most half of it.
    interrupt : {"raise", "return"}, optional
        On ``KeyboardInterrupt`` (Ctrl-C): re-raise it, or return the best certified result so
        far with ``status="interrupted"`` (during a multilevel start's coarse solves: the
        interrupted solve's best iterates, prolonged and certified on this grid).
    verbose : bool, optional
        Print the bounds about once a second.

    Returns
    -------
    CriticResult or list of CriticResult
        Critic, flow, bounds ``lower <= W_grid <= upper``, diagnostics; a list, one per problem,
        when ``mu`` or ``nu`` had a batch axis.

    Raises
    ------
    InsufficientMemoryError
        (a :class:`MemoryError` and a :class:`ValueError`) when the estimated peak memory
        (:func:`otgrid.critic.memory.solve_memory`) exceeds what is available here, before
        anything large is allocated; ``OTGRID_MEMORY_CHECK=0`` skips the check.

    Notes
    -----
    Certificate, valid for any iterate ``(f, y)``:

    - lower: ``<c, f / max(1, max_i |(Df)_i|)>`` (a feasible critic), or the same for a critic
      repaired by a sequential sweep;
    - upper: ``sum_i |y_i + (Du)_i|_*`` with ``D^T D u = c - D^T y`` solved by a DCT-II, which
      makes ``y + Du`` exactly feasible.

    The best bounds seen over the run are returned (with their critic and flow). The solve
    stops when ``upper - lower <= tol * upper``, or when the gap is at rounding level
    (``1e3 * eps * sum|c| * diameter``), e.g. for equal measures.

    In 1D the flow is unique and the upper bound is exact from the first iteration.

    Any cell size works alike: on grids whose largest cell side is below ``2^-20`` or above
    ``2^20`` (in the grid's units) the iteration runs on cells divided by a power of two that
    brings them near 1 (exact), and its critic, flow, bounds and ``step`` are scaled back to
    the grid's units (``W`` of a box of side ``1e-30`` is ``1e-30`` times that of the unit
    box, to the same relative gap).

    References
    ----------
    A. Chambolle, T. Pock, "A first-order primal-dual algorithm for convex problems with
    applications to imaging", J. Math. Imaging Vis. 40 (2011).
    T. Pinetz, D. Soukup, T. Pock, "What is optimized in Wasserstein GANs?" (Alg. 1).
    M. Jacobs, F. Léger, W. Li, S. Osher, "Solving large-scale optimization problems with a
    convergence rate independent of grid size", SIAM J. Numer. Anal. 57 (2019).
    D. Applegate et al., "Practical large-scale linear programming using primal-dual hybrid
    gradient", NeurIPS 2021 (restarts and the primal weight).
    J. Liu, W. Yin, W. Li, Y. T. Chow, "Multilevel optimal transport: a fast approximation of
    Wasserstein-1 distances", SIAM J. Sci. Comput. 43 (2021).

    Examples
    --------
    >>> import otgrid as og
    >>> grid = og.Grid((-8, 8), 512)
    >>> mu = grid.discretize(og.Normal(0.0, 1.0))
    >>> nu = grid.discretize(og.Normal(1.0, 1.0))
    >>> res = og.solve_critic(mu, nu, grid, tol=1e-8)
    >>> res.converged, round(res.w1, 6)
    (True, 1.0)

    A batch: one ``mu`` against three shifted copies.

    >>> nus = np.stack([grid.discretize(og.Normal(s, 1.0)) for s in (0.5, 1.0, 2.0)])
    >>> [round(r.w1, 6) for r in og.solve_critic(mu, nus, grid, tol=1e-8)]
    [0.5, 1.0, 2.0]
    """
    t0 = solve_clock()
    opts = _validate_options(grid, norm, backend, tol, max_iter, check_every, dtype, step,
                             adaptive_step, multilevel, time_limit, interrupt, callback,
                             verbose, t0)
    check_memory(grid.shape, _batch_size(mu, nu, grid), opts.dtype, backend)
    prob = _prepare_problems(mu, nu, grid, warm_start, backend)
    live_results = _solve_live(prob, grid, opts) if prob.live.size else []
    # the ConvergenceWarnings are issued in _package_results, one frame below this one
    results = _package_results(prob, live_results, grid, opts)
    return results if prob.batched else results[0]


def _batch_size(mu: Any, nu: Any, grid: Grid) -> int:
    """Problems in one call, read from the shapes alone (before any copy is made)."""
    sizes = [np.shape(x)[0] for x in (mu, nu) if np.ndim(x) == grid.ndim + 1]
    return max([*sizes, 1])


@dataclasses.dataclass
class _Options:
    """The validated options of one :func:`solve_critic` call, with its start time ``t0`` and
    the ``deadline`` that ``time_limit`` sets (``None`` without one)."""

    norm: str
    tol: float
    max_iter: int
    check_every: int
    dtype: np.dtype
    step: float | None
    adaptive_step: bool
    multilevel: bool | str
    time_limit: float | None
    interrupt: str
    callback: Callable[[CheckInfo], bool | None] | None
    verbose: bool
    t0: float
    deadline: float | None


@dataclasses.dataclass
class _Problems:
    """The prepared problems: ``c64`` holds ``c = mu - nu`` per problem (``nu`` rescaled to the
    mass of ``mu``, centred, divided by ``scale = max|c|``), ``weights`` the cell weights
    ``(mu + nu) / 2`` that centre the returned critics, ``live`` the problems with
    ``scale > 0`` (the others have ``mu == nu``), ``warm`` the warm start of each problem,
    ``backend`` the resolved backend, ``batched`` whether a batch axis was given and
    ``on_gpu`` whether the results go back to the GPU as CuPy arrays. The iteration runs on
    cells of sizes ``dx`` (the grid's divided by ``length``, :func:`_length_scale`): a critic
    it finds is ``length`` times smaller than the grid's, a flow and ``W`` ``units = scale
    length`` times smaller than the grid's for the masses given, and its steps ``length``
    times larger."""

    nb: int
    mu: np.ndarray
    nu: np.ndarray
    ratio: np.ndarray
    c64: np.ndarray
    weights: np.ndarray
    scale: np.ndarray
    live: np.ndarray
    warm: list
    backend: str
    batched: bool
    on_gpu: bool
    length: float = 1.0
    dx: tuple = ()

    @property
    def units(self) -> np.ndarray:
        """What multiplies the iteration's ``W`` and flows, per problem: ``scale length``."""
        return self.scale * self.length


# float32 iterates need the iteration's 1 / dx^2 within float32: cells whose smallest side,
# divided by the length scale, is below this are refused for them (a fuzzed grid whose sides
# differ by 1e39 overflowed; beyond about 1e10 : 1 the certificate reaches its rounding floor
# anyway, see docs/choosing).
FLOAT32_MIN_DX = 2.0 ** -60


# The iteration runs on cells of unit size (up to a power of two, exactly) when the grid's
# largest cell side is outside 2^-UNITS_RANGE .. 2^UNITS_RANGE (otgrid._units): W, the critic
# and the flow scale with lengths, and on such grids float32 could not hold the iteration's
# Poisson step (its operator scales with 1 / dx^2): 2D boxes of side 1e-30 or 1e30 ran to
# max_iter with a lower bound of 0 (the float32 inverse eigenvalues overflowed to inf). Inside
# the range nothing is rescaled (the same bits as before).
def _length_scale(dx: tuple) -> float:
    """The power of two by which the iteration divides the cell sizes ``dx``
    (:func:`otgrid._units.unit_scale` of the largest)."""
    return unit_scale(max(float(d) for d in dx))


@dataclasses.dataclass
class _Start:
    """Starting iterates ``f0``, ``y0`` (device arrays) and steps ``tau`` of the live problems,
    with the number of multilevel ``levels`` each used (1: none), the iteration limit that remains
    (``max_iter``, 0 after an interrupted multilevel start), whether that start was
    ``interrupted``, and where every problem's start was checked already (kept warm starts,
    none within ``tol``) that check's ``Best``, ``best``: the iteration goes on from its
    bounds, its own first check ``check_every`` iterations later."""

    f0: Any
    y0: Any
    tau: np.ndarray
    levels: np.ndarray
    max_iter: int
    interrupted: bool
    best: Any = None


def _validate_options(grid: Grid, norm: str, backend: str, tol: float, max_iter: int,
                      check_every: int, dtype: Any, step: float | None, adaptive_step: bool,
                      multilevel: bool | str, time_limit: float | None, interrupt: str,
                      callback: Callable[[CheckInfo], bool | None] | None, verbose: bool,
                      t0: float) -> _Options:
    """Check the grid and the options of :func:`solve_critic` (in the order of its signature,
    raising ``TypeError`` or ``ValueError`` on the first bad one) and return them normalised
    (``tol`` a float, ``dtype`` a ``numpy.dtype``) together with the deadline."""
    if not isinstance(grid, Grid):
        raise TypeError(f"grid must be an otgrid.Grid; got {type(grid).__name__}.")
    norm = check_choice(norm, "norm", NORMS)
    check_choice(backend, "backend", BACKENDS)
    check_choice(interrupt, "interrupt", ("raise", "return"))
    tol = as_number(tol, "tol")
    if not (np.isfinite(tol) and 0 < tol < 1):
        raise ValueError(f"tol must be a relative gap in (0, 1), e.g. 1e-6; got {tol}.")
    max_iter = check_positive_int(max_iter, "max_iter", minimum=0)
    check_every = check_positive_int(check_every, "check_every")
    dtype = np.dtype(dtype)
    if dtype not in (np.float32, np.float64):
        raise ValueError(f"dtype must be numpy.float64 or numpy.float32; got {dtype}.")
    if dtype == np.float32 and not min(grid.dx) / _length_scale(grid.dx) >= FLOAT32_MIN_DX:
        raise ValueError(f"dtype=numpy.float32 cannot hold this grid's cells (sides from "
                         f"{min(grid.dx):.3g} to {max(grid.dx):.3g}: the iteration's 1 / dx^2 "
                         "overflows float32); use numpy.float64.")
    step = None if step is None else as_number(step, "step")
    if step is not None and not (np.isfinite(step) and step > 0):
        raise ValueError(f"step must be a positive number or None; got {step}.")
    time_limit = None if time_limit is None else as_number(time_limit, "time_limit")
    if time_limit is not None and not (np.isfinite(time_limit) and time_limit > 0):
        raise ValueError(f"time_limit must be a positive number of seconds or None; "
                         f"got {time_limit}.")
    if multilevel not in (True, False, "auto"):
        raise ValueError(f"multilevel must be True, False or 'auto'; got {multilevel!r}.")
    if callback is not None and not callable(callback):
        raise TypeError("callback must be callable, e.g. callback(info) -> bool | None.")
    deadline = None if time_limit is None else t0 + float(time_limit)
    return _Options(norm, tol, max_iter, check_every, dtype, step, adaptive_step, multilevel,
                    time_limit, interrupt, callback, verbose, t0, deadline)


def _prepare_problems(mu: Any, nu: Any, grid: Grid, warm_start: Any, backend: str) -> _Problems:
    """Turn the masses into the problems to solve: bring CuPy inputs to the host, check the
    masses and their equal totals, broadcast a single array against a batch, check the warm
    starts, resolve the backend, and form the scaled ``c = mu - nu`` and the weights of each
    problem (see :class:`_Problems`)."""
    on_gpu = is_cupy_array(mu) or is_cupy_array(nu)  # results go back to the GPU
    rtol, hint = totals_rtol(mu, nu), unequal_totals_hint(mu, nu)  # as given: their precision
    if is_cupy_array(mu):
        mu = mu.get()
    if is_cupy_array(nu):
        nu = nu.get()
    mu, mu_batched = _check_masses(mu, "mu", grid)
    nu, nu_batched = _check_masses(nu, "nu", grid)
    batched = mu_batched or nu_batched
    if mu_batched and nu_batched and mu.shape[0] != nu.shape[0]:
        raise ValueError(f"mu and nu hold {mu.shape[0]} and {nu.shape[0]} problems; a batch "
                         "needs the same number (or a single array on one side).")
    nb = max(mu.shape[0], nu.shape[0])
    mu = np.broadcast_to(mu, (nb, *grid.shape))
    nu = np.broadcast_to(nu, (nb, *grid.shape))
    smu = mu.reshape(nb, -1).sum(axis=1)
    snu = nu.reshape(nb, -1).sum(axis=1)
    bad = np.flatnonzero(np.abs(smu - snu) > rtol * np.maximum(smu, snu))
    if bad.size:
        b = int(bad[0])
        where = f" (problem {b})" if batched else ""
        rel = abs(smu[b] - snu[b]) / max(smu[b], snu[b])
        raise ValueError(f"mu and nu must have equal total mass{where}; got {smu[b]:.12g} and "
                         f"{snu[b]:.12g} (relative difference {rel:.2g}). {hint}")
    warm = _warm_list(warm_start, nb, batched, grid)
    backend = resolve_backend(backend, grid.ndim, grid.size * nb)

    ratio = (smu / snu).reshape((nb,) + (1,) * grid.ndim)
    c64 = mu - nu * ratio
    c64 -= c64.reshape(nb, -1).mean(axis=1).reshape((nb,) + (1,) * grid.ndim)
    weights = 0.5 * (mu + nu * ratio)
    # Solve for c / max|c| and scale back (W is positively homogeneous in c): keeps squares of
    # tiny flows from underflowing and makes the default step independent of the mass scale.
    scale = np.abs(c64).reshape(nb, -1).max(axis=1)
    live = np.flatnonzero(scale > 0)  # scale == 0: mu == nu, W = 0
    c64 = c64 / np.where(scale > 0, scale, 1.0).reshape((nb,) + (1,) * grid.ndim)
    length = _length_scale(grid.dx)
    return _Problems(nb, mu, nu, ratio.reshape(nb), c64, weights, scale, live, warm, backend,
                     batched, on_gpu, length, tuple(float(d) / length for d in grid.dx))


def _solve_live(prob: _Problems, grid: Grid, opts: _Options) -> list[CriticResult]:
    """Solve the live problems (those with ``mu != nu``) together: set up the iteration and
    certificate kernels, build the start, run the iteration, and return one
    :class:`CriticResult` per live problem, in the order of ``prob.live``."""
    live, units = prob.live, prob.units
    cl = np.ascontiguousarray(prob.c64[live])
    # The critic recovered from the flow (complementary slackness) is exact in 1D and becomes
    # exact for the cityblock LP once the flow's sign pattern is right (measured: 5e3 instead of
    # > 4e4 iterations to 1e-7 at 32^2); for the euclidean norm in 2D it never beat the iterate
    # in our measurements, so it is not computed there (it costs a DCT pair per check).
    flow_candidates = grid.ndim == 1 or opts.norm == "cityblock"
    dtype = opts.dtype
    kern = make_kernels(prob.backend, grid.shape, prob.dx, opts.norm, dtype)
    kern.with_batch(live.size)
    cert = kern if dtype == np.float64 else make_kernels(prob.backend, grid.shape, prob.dx,
                                                         opts.norm, np.float64)
    cert.with_batch(live.size)
    _warm_up(kern, cert, live.size, _use_multilevel(opts.multilevel, grid, prob.warm), opts,
             grid)
    # One BLAS thread: the loop's only BLAS calls are the certificate's dot products, and with
    # another process busy on a 2-core machine OpenBLAS's threads made the solves 1.5-2x slower
    # (the Gaussian pair at 256^2, 1e-6: 1.7-2.1 s against 1.1-1.25 s).
    with kern.session(), blas_one_thread():
        c_dev = cert.to_device(cl, np.float64)
        start = _build_start(kern, cert, c_dev, cl, prob, grid, opts, flow_candidates)
        best, outs = _run_iterations(kern, cert, c_dev, cl, start, prob, opts,
                                     flow_candidates)
        cbs = _certify_live(cert, best, range(live.size), prob, grid, opts, [None] * live.size)
        for _ in range(RECERTIFY):
            js, tols = _short_of_tol(cbs, outs, best, opts.tol)
            if not js:
                break
            continue_from_best(cert, c_dev, best, outs, js, tol=tols, max_iter=start.max_iter,
                               check_every=opts.check_every, adaptive=opts.adaptive_step,
                               deadline=opts.deadline, callback=opts.callback,
                               scale=units[live], t0=opts.t0, verbose=opts.verbose,
                               flow_candidates=flow_candidates, interrupt=opts.interrupt,
                               problem_ids=live, from_float32=dtype == np.float32)
            cbs = _certify_live(cert, best, js, prob, grid, opts, cbs)
    return [_result(cbs[j], outs[j], prob.weights[b], grid, opts.norm, opts.tol, prob.backend,
                    dtype, start.max_iter, opts.time_limit, int(start.levels[j]), prob.length)
            for j, b in enumerate(live)]


# A solve whose iteration stopped as converged but whose rigorous certificate (outward rounding,
# the flow's residual) ends above ``tol`` goes on this many times, from its best iterates, to a
# tolerance lowered by twice the difference. Measured: the anisotropic cityblock problem of
# the tests (64 x 64 on (0, 0.01) x (0, 100), tol 1e-9) stopped at a tracked relative gap of
# 9.76e-10 whose certificate was 1.005e-9, and was reported as stopped at the rounding floor.
RECERTIFY = 2


def _certify_live(cert: Any, best: Any, js: Any, prob: _Problems, grid: Grid, opts: _Options,
                  cbs: list) -> list:
    """:func:`~otgrid.critic.certify.certify` the best iterates of the live problems ``js``
    (positions in ``prob.live``); ``cbs`` with those entries replaced."""
    cbs = list(cbs)
    for j in js:
        b = prob.live[j]
        critic = cert.to_host(best.critic[j:j + 1])[0] * prob.length
        flow = cert.to_host(cert.corrected_flow(best.flow_y[j:j + 1], best.flow_u[j:j + 1]))[0]
        cbs[j] = certify(prob.mu[b], prob.nu[b], float(prob.ratio[b]), critic,
                         flow * prob.units[b], grid.dx, opts.norm)
    return cbs


def _short_of_tol(cbs: list, outs: list, best: Any, tol: float) -> tuple[list[int], list]:
    """The problems that stopped as converged with a certified gap above ``tol``, and the
    tolerance each goes on to: ``tol`` less twice what the certificate added to the tracked
    gap (at least ``tol / 4``)."""
    js, tols = [], []
    for j, (cb, o) in enumerate(zip(cbs, outs, strict=True)):
        if o.status != "converged" or cb.upper - cb.lower <= tol * cb.upper:
            continue
        up = best.upper[j]
        tracked = (up - best.lower[j]) / up if up > 0 else 0.0
        excess = (cb.upper - cb.lower) / cb.upper - tracked
        js.append(j)
        tols.append(max(tol - 2.0 * excess, tol / 4))
    return js, tols


def _warm_up(kern: Any, cert: Any, nb: int, coarse: bool, opts: _Options, grid: Grid) -> None:
    """Compile the kernels of the solve before its first iteration (a first run in a fresh
    environment; it logs "compiling kernels (first run only)" on the ``otgrid`` logger) with
    the solve's clock stopped (:func:`otgrid._threads.compiling`): ``seconds`` and
    ``time_limit`` exclude compilation. ``coarse``: a multilevel start will run the coarse
    grids' kernels too; the final certificate's kernels of large grids too
    (:func:`otgrid.critic.certify.warm_up`). The polishing kernels are compiled where a check
    first polishes (:meth:`GridKernels.ascend`), with the clock stopped as well."""
    with compiling():
        for k in (kern, cert) if cert is not kern else (kern,):
            k.warm_up(nb, coarse)
        warm_up_certificate(grid.size, grid.ndim)


# A warm start on a grid where the multilevel start applies starts the fine grid as it is when
# its certified relative gap on the new data is at most WARM_NEAR, else the multilevel start
# replaces it. Measured (work: fine-iteration equivalents; the rule at 0.05 / 0.1):
# - pairs of Gaussians N((0.5 - e, -0.3 + e), diag(0.36 + e, 0.16 + e)) against
#   N((0.5, -0.3), diag(0.36, 0.16)) on [-4, 4]^2, warm-started from e0 for e0 - de (six
#   (e0, de) from (0.001, 0.0005) to (0.3, 0.05)), tol 1e-3 / 1e-4 / 1e-5, 256^2, 18 solves:
#   work 7 102 with the warm start as it is (up to 2 540 iterations where W moved by a
#   third, its gap 0.55), 2 765 cold, 2 047 / 2 305;
# - 40 random pairs of Gaussian mixtures (128^2-256^2, both norms, float32 and float64, tol
#   1e-3 to 1e-6, the new nu mixing 0 / 1 / 30 / 100 % of another mixture into the old),
#   seconds summed in one run each: warm as it is 10.6, cold 7.5-7.7, the rule 7.6 / 7.5;
# - the explorer's drag (its Gaussian pair on [-6, 6]^2, tol 1e-4, mu's centre moved 0.1 a
#   solve: gaps 0.050-0.054), median seconds a solve at 128^2 / 256^2: as it is 0.025 /
#   0.112, the rule 0.051 / 0.148 (82-102 fine iterations from the multilevel start against
#   45) / 0.024 / 0.111.
# Warm starts seeding the multilevel start instead (restricted to every coarse grid, each grid
# starting from them plus the prolonged coarse correction): 1 840 / 2 116 work, but 8.0 s
# against 7.6 s cold on the mixtures (an unrelated warm start took twice a cold solve's
# iterations: 6 553 against 3 048), drags 0.032 / 0.118 at 0.05; not kept. Kept warm starts
# can still lose to a cold start at tight tolerances (a mixture mixing 1 % of another in:
# 9 169 against 1 552 iterations at 1e-6), as they did before; and on large grids: SCO's MLP
# steps with sampled masses at 512^2 (benchmarks/results/sco.md) kept their warm starts, 0.65-
# 0.71 s a solve against 0.30-0.31 s cold (0.61-0.65 s with the threshold at 5 %; at 128^2
# the two are even).
WARM_NEAR = 0.1


def _use_multilevel(multilevel: bool | str, grid: Grid, warm: list) -> bool:
    """Whether to start from the multilevel solution: when asked (``"auto"``: on 2D grids of
    at least ``ML_AUTO_CELLS`` cells), without a warm start, on a grid that can be coarsened."""
    use_ml = (multilevel is True or (multilevel == "auto" and grid.ndim == 2
                                     and grid.size >= ML_AUTO_CELLS))
    return use_ml and min(grid.shape) >= 2 * ML_MIN_CELLS


def _build_start(kern: Any, cert: Any, c_dev: Any, cl: np.ndarray, prob: _Problems,
                 grid: Grid, opts: _Options, flow_candidates: bool) -> _Start:
    """Starting iterates and steps of the live problems: the multilevel start when it applies
    (a ``KeyboardInterrupt`` during it, with ``interrupt="return"``, falls back to the zero
    start with no iterations left), else the warm starts or zeros. Where both apply, a warm
    start within :data:`WARM_NEAR` of the new problem's W (its certified relative gap) is
    kept as it is, and a farther one gives way to the multilevel start. The step is
    ``opts.step`` when given, else the multilevel one, else the default step from the data."""
    live, dtype = prob.live, opts.dtype
    use_ml = _use_multilevel(opts.multilevel, grid, prob.warm)
    max_iter, interrupted = opts.max_iter, False
    levels = np.ones(live.size, dtype=np.int64)
    f0 = kern.xp.zeros((live.size, *grid.shape), dtype=dtype)
    y0 = kern.xp.zeros((live.size, grid.ndim, *grid.shape), dtype=dtype)
    warm = np.array([prob.warm[b] is not None for b in live], dtype=bool)
    for j, b in enumerate(live):
        if warm[j]:
            f0[j] = kern.to_device(prob.warm[b].critic) * (1.0 / prob.length)
            y0[j] = kern.to_device(prob.warm[b].flow) * (-1.0 / prob.units[b])
    keep = np.zeros(live.size, dtype=bool)  # warm starts kept as they are
    gap, probe = np.full(live.size, np.inf), None
    if use_ml and warm.any():
        w = _xp_index(kern, warm)
        gap[warm], probe, stopped = _warm_gap(kern, cert, c_dev[w], f0[w], y0[w], opts,
                                              flow_candidates)
        keep = gap <= WARM_NEAR
        if stopped:  # Ctrl-C during that check: no multilevel start, no iterations
            keep, max_iter, interrupted = warm, 0, True
    tau = None
    if use_ml and not keep.all() and not interrupted:
        ml = ~keep  # (the coarse solves only for these)
        try:
            fm, ym, tau_ml, _, stopped = multilevel_start(
                prob.backend, grid.shape, prob.dx, opts.norm, dtype, cl[ml], opts.tol,
                opts.check_every, flow_candidates, max_iter, coarse_deadline(opts.deadline),
                opts.interrupt)
            if stopped:  # Ctrl-C during a coarse solve: its best, prolonged, is certified
                max_iter, interrupted = 0, True
            levels[ml] = 1 + int(np.floor(np.log2(min(grid.shape) / ML_MIN_CELLS)))
            f0[_xp_index(kern, ml)] = kern.to_device(fm)
            y0[_xp_index(kern, ml)] = kern.to_device(ym)
            tau = np.zeros(live.size)
            tau[ml] = tau_ml
        except KeyboardInterrupt:
            if opts.interrupt != "return":
                raise
            max_iter, interrupted, tau = 0, True, None
    if opts.step is not None:
        tau = np.full(live.size, float(opts.step) * prob.length)
    elif tau is None:  # from the new data, also on a warm start (its W may differ)
        tau = default_steps(cert, c_dev)
    elif keep.any():
        tau[keep] = default_steps(cert, c_dev[_xp_index(kern, keep)])
    # kept warm starts were just checked (_warm_gap): the iteration's first check, the same
    # bounds, would cost another (about 14 ms of a 128^2 explorer drag's 42)
    checked = probe if keep.all() and np.all(gap > opts.tol) else None
    return _Start(f0, y0, tau, levels, max_iter, interrupted, checked)


def _xp_index(kern: Any, mask: np.ndarray) -> Any:
    """``mask``'s indices as an index of ``kern``'s arrays."""
    return kern.xp.asarray(np.flatnonzero(mask))


def _warm_gap(kern: Any, cert: Any, c_dev: Any, f: Any, y: Any, opts: _Options,
              flow_candidates: bool) -> tuple[np.ndarray, Any, bool]:
    """The certified relative gap of each warm start ``(f, y)`` on its new problem (one check,
    no iterations; against :data:`WARM_NEAR`), that check's ``Best``, and whether a Ctrl-C
    stopped it (``opts.interrupt="return"``)."""
    best, outs = iterate(kern, cert, c_dev, f.copy(), y.copy(), np.ones(f.shape[0]),
                         tol=opts.tol, max_iter=0, check_every=opts.check_every,
                         adaptive=False, deadline=None, callback=None,
                         scale=np.ones(f.shape[0]), t0=solve_clock(), verbose=False,
                         flow_candidates=flow_candidates, interrupt=opts.interrupt,
                         polish=False)
    stopped = any(o.status == "interrupted" for o in outs)
    with np.errstate(invalid="ignore"):  # (no bounds yet where a Ctrl-C came first: nan)
        return (best.upper - best.lower) / np.abs(best.upper), best, stopped


def _run_iterations(kern: Any, cert: Any, c_dev: Any, cl: np.ndarray, start: _Start,
                    prob: _Problems, opts: _Options, flow_candidates: bool
                    ) -> tuple[Any, list]:
    """Run the iteration from ``start`` and, in float32, go on in float64 for the problems
    that stalled at float32's precision floor; after an interrupted multilevel start every
    problem is marked ``"interrupted"``. Returns the best certified iterates and the outcome
    of each live problem."""
    live = prob.live
    best, outs = iterate(
        kern, cert, c_dev, start.f0, start.y0, start.tau, tol=opts.tol,
        max_iter=start.max_iter, check_every=opts.check_every, adaptive=opts.adaptive_step,
        deadline=opts.deadline, callback=opts.callback, scale=prob.units[live], t0=opts.t0,
        verbose=opts.verbose, flow_candidates=flow_candidates,
        interrupt=opts.interrupt, problem_ids=live, best=start.best)
    if opts.dtype == np.float32:
        continue_in_float64(cert, c_dev, best, outs, tol=opts.tol, max_iter=start.max_iter,
                            check_every=opts.check_every, adaptive=opts.adaptive_step,
                            deadline=opts.deadline, callback=opts.callback,
                            scale=prob.units[live], t0=opts.t0, verbose=opts.verbose,
                            flow_candidates=flow_candidates,
                            interrupt=opts.interrupt, problem_ids=live)
    if start.interrupted:  # Ctrl-C during the coarse solves: the certificate of the start
        for o in outs:
            o.status = "interrupted"
    return best, outs


def _package_results(prob: _Problems, live_results: list[CriticResult], grid: Grid,
                     opts: _Options) -> list[CriticResult]:
    """One :class:`CriticResult` per problem: the solved ones in place, a trivial ``W = 0``
    result where ``mu == nu``, moved back to CuPy when the inputs were; warns with a
    :class:`ConvergenceWarning` for each problem stopped by ``max_iter`` or ``time_limit``
    (pointing at the caller of :func:`solve_critic`) and prints each message when verbose."""
    results: list[CriticResult | None] = [None] * prob.nb
    for b, r in zip(prob.live, live_results, strict=True):
        results[b] = r
    for b in range(prob.nb):
        if results[b] is None:
            results[b] = _trivial_result(prob.mu[b], prob.nu[b], float(prob.ratio[b]), grid,
                                         opts.norm, opts.tol, prob.backend, opts.dtype, opts.t0)
    if prob.on_gpu:  # outputs go back where the inputs came from
        import cupy

        results = [dataclasses.replace(r, critic=cupy.asarray(r.critic),
                                       flow=cupy.asarray(r.flow)) for r in results]
    for r in results:
        if r.status in ("max_iter", "time_limit", "floor"):
            # stacklevel 3: this helper, solve_critic, then the user's call
            warnings.warn(r.message, ConvergenceWarning, stacklevel=3)
        if opts.verbose:
            print(f"[otgrid] {r.message}", flush=True)
    return results


def _result(cb: CertifiedBounds, out: Any, weights: np.ndarray, grid: Grid, norm: str,
            tol: float, backend: str, dtype: Any, max_iter: int, time_limit: float | None,
            levels: int, length: float = 1.0) -> CriticResult:
    """A live problem's result from its certified bounds (:func:`~otgrid.critic.certify.
    certify`) and how its iteration ended: a solve stopped as converged whose certified gap
    exceeds ``tol`` (the outward rounding) ends at the rounding floor instead. ``length``:
    the iteration's length scale (its step is reported in the grid's units)."""
    lower, upper = cb.lower, cb.upper
    critic = cb.critic - np.sum(weights * cb.critic) / np.sum(weights)
    gap = upper - lower
    rel = gap / upper if upper > 0 else 0.0
    status = out.status
    if status == "converged" and gap > tol * upper:
        status = "floor"
    hist = SolveHistory(*(np.array(v) for v in zip(*out.history, strict=True)))
    return CriticResult(
        w1=0.5 * (lower + upper), lower=lower, upper=upper, gap=gap, critic=critic,
        flow=-cb.flow, iterations=out.iterations, converged=status == "converged",
        status=status, message=_message(status, out.iterations, rel, tol, max_iter, time_limit),
        history=hist, seconds=out.seconds, backend=backend, grid=grid, norm=norm, tol=tol,
        dtype=np.dtype(dtype), step=out.step / length, restarts=out.restarts, levels=levels,
        float64_from=out.float64_from)
