r"""The smoothed-WGAN generator step (Sanjabi et al., Alg. 1): train a generator on minibatches.

Instead of the exact grid critic of :func:`otgrid.sco.fit`, every step solves the
*regularized* transport problem between a minibatch of generated points
:math:`x_i = g_\theta(z_i)` and a minibatch of target samples :math:`y_j` (``S`` each),

.. math::

    d_{c,\lambda}(\theta) = \min_{P \in \Pi(a, b)} \sum_{ij} P_{ij}\, c(g_\theta(z_i), y_j)
    + \lambda\, I(P), \qquad a = b = \tfrac1S \mathbf 1,

by its smooth dual (:func:`otgrid.pointcloud.smooth_ot` for the L2 regularizer,
:func:`otgrid.pointcloud.sinkhorn` for KL), and steps the parameters along

.. math::

    \nabla_\theta d_{c,\lambda} = \frac{1}{S^2}\sum_{ij} m_{ij}\,
    \nabla_\theta c(g_\theta(z_i), y_j) = \mathrm{vjp}\Big(z,\ \Big[\sum_j P_{ij}\,
    \nabla_x c(x_i, y_j)\Big]_i\Big),

with :math:`m_{ij} = P_{ij} / (a_i b_j)` the pseudo-plan of the dual solution. By the envelope
theorem this is the exact gradient of the minibatch objective when the dual is solved exactly
(its error is :math:`O(\sqrt{\epsilon/\lambda})` for an :math:`\epsilon`-accurate dual). Each
dual solve is warm-started from the previous step's potentials carried over to the new points
by a c-transform (:func:`transfer_potentials`).

Use it where a grid is out of reach or for the regularized objective itself; unlike
:func:`otgrid.sco.fit` it certifies nothing about the unregularized W.
"""

from __future__ import annotations

import contextlib
import math
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from scipy.spatial.distance import cdist

from otgrid._threads import blas_threads, numba_threads
from otgrid._units import cloud_units
from otgrid._validation import as_finite_array, as_rng, check_choice, check_positive_int
from otgrid.errors import ConvergenceWarning
from otgrid.pointcloud.ops_numpy import cost_degree
from otgrid.pointcloud.result import RegularizedResult
from otgrid.pointcloud.sinkhorn import sinkhorn
from otgrid.pointcloud.smooth import smooth_ot
from otgrid.sco.generators import ParametricGenerator
from otgrid.sco.loop import _SGD, _Adam, _check_generator, _Failure, _positive

__all__ = ["SmoothedResult", "SmoothedStep", "fit_smoothed", "smoothed_gradient",
           "transfer_potentials"]

_REGULARIZERS = ("l2", "kl")
_COSTS = ("euclidean", "sqeuclidean", "cityblock")
_OPTIMIZERS = ("sgd", "adam")
# Below this many pairs per minibatch the dual solves run on one Numba thread. Measured (25
# Gaussians, S = 128, MLP generator in torch, loaded 2-core machine): 275 ms per step with two
# Numba threads, 30 ms with NUMBA_NUM_THREADS=1: Numba's idle OpenMP threads spin against
# torch's. (Where a solver sets its own thread count, OMP_WAIT_POLICY=PASSIVE in the
# environment also helps; the demos set it.)
_SERIAL_PAIRS = 1 << 18
# Below this many points per minibatch, BLAS runs on one thread during the fit (when
# threadpoolctl is installed). scipy's L-BFGS-B (smooth_ot) makes many tiny BLAS calls; with
# OpenBLAS threads on a loaded 2-core machine a 64 x 64 solve took 20 times longer (measured:
# 300 steps in 84 s against 4.1 s with one BLAS thread).
_SERIAL_BLAS_POINTS = 4096
# Generated points further than this many target-box diameters (median) from the box of the
# target minibatch count as diverged.
_FAR = 1.0


@dataclass(frozen=True)
class SmoothedStep:
    """What a ``callback`` of :func:`fit_smoothed` receives after every step.

    Attributes
    ----------
    step : int
        Steps done (1 after the first update).
    params : ndarray, shape (p,)
        The parameters after the step (a copy).
    objective : float
        Regularized transport value of the minibatch before the step.
    transport_cost : float
        ``<P, C>`` of that minibatch's (pseudo-)plan.
    dual_iterations : int
        Iterations of the dual solve of this step.
    seconds : float
        Wall time since the start of the fit.
    """

    step: int
    params: np.ndarray
    objective: float
    transport_cost: float
    dual_iterations: int
    seconds: float


@dataclass(frozen=True, eq=False)
class SmoothedResult:
    """Result of :func:`fit_smoothed`.

    Index ``k`` of the per-step arrays is the ``k``-th step (``k = 0``: the first); each entry
    describes the minibatch drawn at the parameters before that step.

    Attributes
    ----------
    params : ndarray, shape (p,)
        Final parameters: the last state that passed every check (also left in the generator).
    trajectory : ndarray, shape (steps + 1, p), or None
        Parameters after each step (row 0: the start); ``None`` when not kept (see
        ``keep_trajectory`` of :func:`fit_smoothed`).
    objective : ndarray, shape (steps,)
        Regularized transport value of each minibatch (the dual objective of its solve).
    transport_cost : ndarray, shape (steps,)
        ``<P, C>`` of each minibatch's (pseudo-)plan.
    marginal_error : ndarray, shape (steps,)
        Marginal error of each dual solve (its stopping criterion).
    dual_iterations : ndarray of int, shape (steps,)
        Iterations of each dual solve.
    dual_converged : ndarray of bool, shape (steps,)
        Whether each dual solve reached ``dual_tol``.
    param_error : ndarray, shape (steps + 1,), or None
        ``max_i |theta_i - true_params_i|`` after each step, when ``true_params`` was given.
    dual_seconds, generator_seconds : ndarray, shape (steps,)
        Wall time of each dual solve, and of the rest of each step (sampling, gradient, vjp,
        optimizer).
    seconds : float
        Total wall time.
    steps : int
        Steps completed.
    converged : bool
        Whether ``stop_param_tol`` was met.
    status : {"param_tol", "steps", "callback", "non_finite", "diverged"}
        Why the fit stopped.
    message : str
        Human-readable status.
    reg : float
    regularizer : str
    cost : str
    lr : float
    batch : int
    optimizer : str
    """

    params: np.ndarray
    trajectory: np.ndarray | None = field(repr=False)
    objective: np.ndarray = field(repr=False)
    transport_cost: np.ndarray = field(repr=False)
    marginal_error: np.ndarray = field(repr=False)
    dual_iterations: np.ndarray = field(repr=False)
    dual_converged: np.ndarray = field(repr=False)
    param_error: np.ndarray | None = field(repr=False)
    dual_seconds: np.ndarray = field(repr=False)
    generator_seconds: np.ndarray = field(repr=False)
    seconds: float
    steps: int
    converged: bool
    status: str
    message: str
    reg: float
    regularizer: str
    cost: str
    lr: float
    batch: int
    optimizer: str

    def __str__(self) -> str:
        last = f"{self.objective[-1]:.6g}" if self.objective.size else "n/a"
        return (f"smoothed WGAN: {self.steps} steps, last minibatch objective {last}, "
                f"{self.seconds:.3g} s ({self.status})")


# --------------------------------------------------------------------------- pieces
def _cost_gradient(x: np.ndarray, y: np.ndarray, P: np.ndarray, cost: str) -> np.ndarray:
    """``[sum_j P_ij grad_x c(x_i, y_j)]_i``, shape (n, d)."""
    if cost == "sqeuclidean":
        return 2.0 * (P.sum(axis=1)[:, None] * x - P @ y)
    out = np.empty_like(x)
    rows = max(1, (1 << 22) // max(1, y.shape[0] * x.shape[1]))
    for s in range(0, x.shape[0], rows):
        diff = x[s:s + rows, None, :] - y[None, :, :]
        if cost == "cityblock":
            unit = np.sign(diff)
        else:
            norm = np.sqrt(np.sum(diff * diff, axis=2, keepdims=True))
            unit = np.divide(diff, norm, out=np.zeros_like(diff), where=norm > 0)
        out[s:s + rows] = np.einsum("ij,ijk->ik", P[s:s + rows], unit)
    return out


def transfer_potentials(previous: RegularizedResult, x: Any, y: Any
                        ) -> tuple[np.ndarray, np.ndarray]:
    r"""Carry the potentials of a solve over to new point clouds (a warm start).

    With ``(x', y', f', g')`` the points and potentials of ``previous``, the new target
    potential is the c-transform of ``f'`` and the new source potential that of the result:

    .. math::

        g(y_j) = \min_i \big(c(x'_i, y_j) - f'_i\big), \qquad
        f(x_i) = \min_j \big(c(x_i, y_j) - g(y_j)\big),

    the unregularized limit of one Sinkhorn sweep. When the clouds change little (a small
    generator step, fresh samples from the same laws) this starts the next solve close to its
    solution.

    Parameters
    ----------
    previous : RegularizedResult
        A single (not batched) solve.
    x : array_like, shape (n, d)
        New source points.
    y : array_like, shape (m, d)
        New target points.

    Returns
    -------
    (f, g) : tuple of ndarray, shapes (n,) and (m,)
        Potentials for ``warm_start=`` of :func:`otgrid.pointcloud.smooth_ot` or
        :func:`otgrid.pointcloud.sinkhorn`.

    Examples
    --------
    >>> import numpy as np
    >>> from otgrid.pointcloud import sinkhorn
    >>> from otgrid.sco import transfer_potentials
    >>> rng = np.random.default_rng(0)
    >>> x, y = rng.normal(size=(50, 2)), rng.normal(size=(50, 2)) + 1.0
    >>> res = sinkhorn(x, y, reg=0.05)
    >>> f, g = transfer_potentials(res, x + 0.01, rng.normal(size=(40, 2)) + 1.0)
    >>> f.shape, g.shape
    ((50,), (40,))
    """
    if not isinstance(previous, RegularizedResult) or previous.batched:
        raise TypeError("previous must be a single (not batched) RegularizedResult.")
    x = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
    y = np.asarray(y, dtype=np.float64).reshape(len(y), -1)
    xo = np.asarray(previous.x, dtype=np.float64).reshape(len(previous.x), -1)
    fo = np.asarray(previous.f, dtype=np.float64)
    # costs formed in the unit of the points' spread and scaled back (exact): tiny or huge
    # coordinates would underflow or overflow when squared in the user's units
    xs, ys, e = cloud_units(np.concatenate([xo, x])[None], y[None])
    k = cost_degree(previous.cost) * e
    xos, xs, ys = xs[0, :len(xo)], xs[0, len(xo):], ys[0]
    g = np.min(np.ldexp(cdist(xos, ys, metric=previous.cost), k) - fo[:, None], axis=0)
    f = np.min(np.ldexp(cdist(xs, ys, metric=previous.cost), k) - g[None, :], axis=1)
    return f, g


def _solve(x: np.ndarray, y: np.ndarray, *, reg: float, regularizer: str, cost: str,
           tol: float, max_iter: int, warm: Any, backend: str) -> RegularizedResult:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        if regularizer == "kl":
            return sinkhorn(x, y, reg=reg, cost=cost, tol=tol, max_iter=max_iter,
                            warm_start=warm, backend=backend, n_samples=1)
        return smooth_ot(x, y, reg=reg, regularizer="l2", cost=cost, tol=tol,
                         max_iter=max_iter, warm_start=warm, backend=backend, n_samples=1)


def _points(a: Any, ndim: int, name: str) -> np.ndarray:
    arr = np.asarray(a, dtype=np.float64)
    if arr.ndim == 1 and ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2 or arr.shape[1] != ndim:
        raise ValueError(f"{name} must have shape (n, {ndim}); got {arr.shape}.")
    return arr


def smoothed_gradient(generator: ParametricGenerator, z: Any, y: Any, *, reg: float = 0.01,
                      regularizer: Literal["l2", "kl"] = "l2",
                      cost: Literal["euclidean", "sqeuclidean", "cityblock"] = "cityblock",
                      tol: float = 1e-6, max_iter: int = 10_000,
                      warm_start: RegularizedResult | tuple[Any, Any] | None = None,
                      backend: str = "auto") -> tuple[np.ndarray, RegularizedResult]:
    r"""Gradient of the regularized transport value of a minibatch w.r.t. the parameters.

    Solves the regularized problem between ``x = g_theta(z)`` and ``y`` (uniform weights) and
    returns :math:`\frac1{S^2}\sum_{ij} m_{ij} \nabla_\theta c(g_\theta(z_i), y_j)`, the
    derivative of its optimal value (envelope theorem), computed as one vjp of the generator.

    Parameters
    ----------
    generator : ParametricGenerator
        The generator (its current parameters).
    z : array_like, shape (n, latent_dim)
        Latent samples.
    y : array_like, shape (m, ndim)
        Target samples.
    reg : float, optional
        ``lambda`` (in units of the cost). Sanjabi et al. use 0.01 on the 25 Gaussians.
    regularizer : {"l2", "kl"}, optional
        ``"l2"``: :func:`~otgrid.pointcloud.smooth_ot` (L-BFGS on the dual of Lemma 4.1);
        ``"kl"``: :func:`~otgrid.pointcloud.sinkhorn` (the same plan as the KL dual).
    cost : {"euclidean", "sqeuclidean", "cityblock"}, optional
        ``c(x, y)``; Sanjabi et al. use ``|x - y|_1`` (``"cityblock"``).
    tol : float, optional
        Marginal-error tolerance of the dual solve.
    max_iter : int, optional
        Iteration limit of the dual solve.
    warm_start : RegularizedResult or (f, g), optional
        Starting potentials for the points ``x`` and ``y`` (e.g. from
        :func:`transfer_potentials`).
    backend : {"auto", "numpy", "numba"}, optional
        Backend of the dual solver.

    Returns
    -------
    gradient : ndarray, shape (p,)
        Descent on the objective is ``theta -= lr * gradient``.
    result : RegularizedResult
        The dual solve (``result.objective`` is the regularized value).

    Examples
    --------
    >>> import numpy as np
    >>> from otgrid.sco import LocationScale, smoothed_gradient
    >>> gen = LocationScale(loc=-1.0, scale=1.0)
    >>> rng = np.random.default_rng(0)
    >>> z = gen.sample_latent(200, rng)
    >>> grad, res = smoothed_gradient(gen, z, z, reg=0.01)     # target: the same points at 0
    >>> round(float(grad[0]), 1)           # d/d(loc) of ~|loc|: moving right decreases it
    -1.0
    """
    reg = _positive(reg, "reg")
    regularizer = check_choice(regularizer, "regularizer", _REGULARIZERS)
    cost = check_choice(cost, "cost", _COSTS)
    z = as_finite_array(z, "z")
    if z.ndim == 1:
        z = z[:, None]
    x = _points(generator.sample(z), generator.ndim, "generator.sample(z)")
    if not np.all(np.isfinite(x)):
        raise ValueError("the generated points are not finite (NaN or inf parameters?).")
    y = _points(as_finite_array(y, "y"), generator.ndim, "y")
    with blas_threads(max(x.shape[0], y.shape[0]) <= _SERIAL_BLAS_POINTS):
        res = _solve(x, y, reg=reg, regularizer=regularizer, cost=cost, tol=tol,
                     max_iter=max_iter, warm=warm_start, backend=backend)
    P = np.asarray(res.plan(), dtype=np.float64)
    grad = np.asarray(generator.vjp(z, _cost_gradient(x, y, P, cost)), dtype=np.float64)
    return grad, res


# --------------------------------------------------------------------------- the loop
def _target_sampler(target: Any, ndim: int) -> Callable[[int, np.random.Generator], np.ndarray]:
    if hasattr(target, "sample") and hasattr(target, "ndim"):
        if target.ndim != ndim:
            raise ValueError(f"target is {target.ndim}D but the generator produces {ndim}D "
                             "points.")
        return lambda n, rng: _points(target.sample(n, rng), ndim, "target.sample(n)")
    try:
        data = as_finite_array(target, "target")
    except TypeError:
        raise TypeError("target must be a distribution with sample(n, rng) or an array of "
                        f"samples of shape (N, {ndim}); got {type(target).__name__}.") from None
    data = _points(data, ndim, "target samples")
    if data.shape[0] == 0:
        raise ValueError("target holds no samples.")

    def draw(n: int, rng: np.random.Generator) -> np.ndarray:
        return data[rng.choice(data.shape[0], size=n, replace=n > data.shape[0])]

    return draw


def _far(x: np.ndarray, y: np.ndarray) -> float:
    """Median distance of ``x`` to the bounding box of ``y``, in box diameters."""
    lo, hi = y.min(axis=0), y.max(axis=0)
    diam = max(float(np.linalg.norm(hi - lo)), 1e-12)
    d = np.sqrt(np.sum((np.maximum(lo - x, 0) + np.maximum(x - hi, 0)) ** 2, axis=1))
    return float(np.median(d)) / diam


def _checked_options(*, steps: Any, lr: Any, batch: Any, reg: Any, regularizer: Any, cost: Any,
                     optimizer: Any, betas: Any, dual_tol: Any, dual_max_iter: Any,
                     stop_param_tol: Any, callback: Any) -> dict[str, Any]:
    """The numeric and string options of :func:`fit_smoothed`, checked and normalised.

    Raises TypeError or ValueError on bad input; ``betas`` comes back as a pair of floats.
    """
    steps = check_positive_int(steps, "steps", minimum=0)
    lr = _positive(lr, "lr")
    batch = check_positive_int(batch, "batch")
    reg = _positive(reg, "reg")
    regularizer = check_choice(regularizer, "regularizer", _REGULARIZERS)
    cost = check_choice(cost, "cost", _COSTS)
    optimizer = check_choice(optimizer, "optimizer", _OPTIMIZERS)
    try:
        b1, b2 = (float(b) for b in betas)
    except (TypeError, ValueError):
        raise TypeError(f"betas must be a pair of numbers in [0, 1); got {betas!r}.") from None
    if not (0 <= b1 < 1 and 0 <= b2 < 1):
        raise ValueError(f"betas must lie in [0, 1); got {betas!r}.")
    dual_tol = _positive(dual_tol, "dual_tol")
    dual_max_iter = check_positive_int(dual_max_iter, "dual_max_iter")
    stop_param_tol = _positive(stop_param_tol, "stop_param_tol", allow_none=True)
    if callback is not None and not callable(callback):
        raise TypeError("callback must be callable, e.g. callback(info) -> bool | None.")
    return dict(steps=steps, lr=lr, batch=batch, reg=reg, regularizer=regularizer, cost=cost,
                optimizer=optimizer, betas=(b1, b2), dual_tol=dual_tol,
                dual_max_iter=dual_max_iter, stop_param_tol=stop_param_tol, callback=callback)


def _checked_generator(generator: Any, true_params: Any, stop_param_tol: float | None
                       ) -> tuple[np.ndarray, np.ndarray | None]:
    """The generator's initial parameters and ``true_params`` as a flat array (or None).

    Raises TypeError or ValueError for a generator off the protocol, non-finite initial
    parameters, ``true_params`` of the wrong size, or ``stop_param_tol`` without them.
    """
    if not isinstance(generator, ParametricGenerator):
        raise TypeError("generator must follow otgrid.sco.generators.ParametricGenerator (params, "
                        "ndim, latent_dim, sample_latent, sample, vjp).")
    theta = _check_generator(generator, _NDim(generator.ndim))
    if true_params is not None:
        true_params = np.ravel(as_finite_array(true_params, "true_params"))
        if true_params.size != theta.size:
            raise ValueError(f"true_params must have {theta.size} entries (like "
                             f"generator.params); got {true_params.size}.")
    elif stop_param_tol is not None:
        raise ValueError("stop_param_tol needs true_params (the parameters to reach).")
    return theta, true_params


def fit_smoothed(
    target: Any,
    generator: ParametricGenerator,
    *,
    steps: int = 1000,
    lr: float = 3e-3,
    batch: int = 128,
    reg: float = 0.01,
    regularizer: Literal["l2", "kl"] = "l2",
    cost: Literal["euclidean", "sqeuclidean", "cityblock"] = "cityblock",
    optimizer: Literal["sgd", "adam"] = "adam",
    betas: tuple[float, float] = (0.5, 0.9),
    dual_tol: float = 1e-4,
    dual_max_iter: int = 1000,
    warm_start: bool = True,
    keep_trajectory: bool | None = None,
    true_params: Any = None,
    stop_param_tol: float | None = None,
    backend: str = "auto",
    callback: Callable[[SmoothedStep], bool | None] | None = None,
    progress: bool = False,
    rng: Any = None,
) -> SmoothedResult:
    r"""Train a generator with the smoothed-WGAN step (Sanjabi et al., Alg. 1).

    Every step draws ``batch`` latent samples and ``batch`` target samples, solves the
    regularized dual between the generated and the target minibatch (warm-started), and
    steps the parameters against :func:`smoothed_gradient`. The generator is trained in place.
    The defaults are those of Sanjabi et al. for the 25 Gaussians (Table 1): ``lambda = 0.01``,
    L2 regularizer, ``c = |x - y|_1``, batch 128 x 128, Adam with ``lr = 3e-3`` and
    ``betas = (0.5, 0.9)``.

    Parameters
    ----------
    target : Distribution or array_like, shape (N, ndim)
        A distribution with ``sample(n, rng)`` (e.g. :func:`otgrid.grid.datasets.
        twentyfive_gaussians`) or a data set (minibatches drawn without replacement).
    generator : ParametricGenerator
        E.g. :func:`otgrid.sco.generators_torch.mlp_generator`.
    steps : int, optional
        Generator steps (one dual solve each).
    lr : float, optional
        Learning rate.
    batch : int, optional
        ``S``: latent and target samples per step.
    reg, regularizer, cost
        The regularized problem (see :func:`smoothed_gradient`).
    optimizer : {"sgd", "adam"}, optional
        ``"sgd"``: ``theta -= lr * gradient`` (Alg. 1 as printed); ``"adam"``: Adam with
        ``betas`` and ``eps = 1e-8``.
    betas : (float, float), optional
        Adam's moment decays.
    dual_tol : float, optional
        Marginal-error tolerance of each dual solve (relative L1).
    dual_max_iter : int, optional
        Iteration limit of each dual solve; the step then uses the approximate dual (Alg. 1
        allows an epsilon-accurate oracle). Solves that stop there are counted in one warning.
    warm_start : bool, optional
        Start each dual solve from the previous potentials carried over to the new minibatch
        by :func:`transfer_potentials` (else from zero, with the solver's own continuation).
    keep_trajectory : bool, optional
        Keep the parameters of every step (``result.trajectory``). Default: when
        ``p * (steps + 1) <= 2**24`` (128 MiB).
    true_params : array_like, shape (p,), optional
        Known optimal parameters: records ``result.param_error``, enables ``stop_param_tol``.
    stop_param_tol : float, optional
        Stop once ``max |theta - true_params| <= stop_param_tol``.
    backend : {"auto", "numpy", "numba"}, optional
        Backend of the dual solver.
    callback : callable, optional
        ``callback(info)`` with a :class:`SmoothedStep` after every step; returning ``True``
        stops the fit.
    progress : bool, optional
        Print a progress line to standard error about every 2 s.
    rng : None, int or numpy.random.Generator, optional
        Random source of the latent and target minibatches.

    Returns
    -------
    SmoothedResult

    Raises
    ------
    TypeError, ValueError
        Bad input, found before the first step (types, shapes, options, non-finite initial
        parameters).

    Warns
    -----
    ConvergenceWarning
        When the fit ends early on bad values (non-finite points, gradients or parameters;
        generated points running away from the target), or when dual solves stopped at
        ``dual_max_iter``. The result then holds the last good state and says why.

    References
    ----------
    M. Sanjabi, J. Ba, M. Razaviyayn, J. D. Lee, "On the convergence and robustness of
    training GANs with regularized optimal transport" / "Solving approximate Wasserstein GANs
    to stationarity", NeurIPS 2018 (Alg. 1, Table 1).

    Examples
    --------
    >>> import otgrid as og
    >>> from otgrid.sco import LocationScale, fit_smoothed
    >>> gen = LocationScale(loc=-2.0, scale=0.3)
    >>> res = fit_smoothed(og.Normal(1.0, 0.25), gen, steps=150, lr=0.05, batch=32,
    ...                    reg=0.05, cost="euclidean", rng=0)
    >>> loc, scale = res.params                    # the sign of the scale is immaterial
    >>> bool(abs(loc - 1.0) < 0.15), bool(abs(abs(scale) - 0.5) < 0.15)
    (True, True)
    """
    t_start = time.perf_counter()
    opts = _checked_options(steps=steps, lr=lr, batch=batch, reg=reg, regularizer=regularizer,
                            cost=cost, optimizer=optimizer, betas=betas, dual_tol=dual_tol,
                            dual_max_iter=dual_max_iter, stop_param_tol=stop_param_tol,
                            callback=callback)
    theta, true_params = _checked_generator(generator, true_params, opts["stop_param_tol"])
    draw = _target_sampler(target, generator.ndim)
    rng = as_rng(rng)
    if keep_trajectory is None:
        keep_trajectory = theta.size * (opts["steps"] + 1) <= 1 << 24
    run = _SmoothedRun(generator=generator, theta=theta, true_params=true_params, draw=draw,
                       rng=rng, keep=bool(keep_trajectory), warm_start=warm_start,
                       backend=backend, progress=progress, t_start=t_start, **opts)
    run.run()
    return run.result()


class _SmoothedRun:
    """The state of one :func:`fit_smoothed` (inputs already validated).

    ``theta`` is the last good state (also the generator's parameters between steps), ``k`` the
    steps done, ``prev`` the dual solve of the last step (the next warm start).
    """

    def __init__(self, **kw: Any) -> None:
        self.__dict__.update(kw)
        theta = self.theta
        self.opt = (_SGD(self.lr, theta.size) if self.optimizer == "sgd"
                    else _Adam(self.lr, theta.size, self.betas))
        self.solve_kw = dict(reg=self.reg, regularizer=self.regularizer, cost=self.cost,
                             tol=self.dual_tol, max_iter=self.dual_max_iter,
                             backend=self.backend)
        self.rec: dict[str, list[Any]] = {k: [] for k in (
            "obj", "tc", "err", "it", "conv", "t_dual", "t_gen")}
        self.traj = [theta.copy()] if self.keep else None
        self.perr = ([] if self.true_params is None
                     else [float(np.max(np.abs(theta - self.true_params)))])
        self.status, self.failure = "steps", ""
        self.prev: RegularizedResult | None = None
        self.last_print = -math.inf
        self.k = 0

    # -- the loop
    def run(self) -> None:
        """All steps, under the thread settings of small minibatches; sets ``status``.

        A :class:`_Failure` resets the generator to the last good state and ends the loop.
        """
        serial = contextlib.ExitStack()
        serial.enter_context(numba_threads(self.batch * self.batch < _SERIAL_PAIRS))
        serial.enter_context(blas_threads(self.batch <= _SERIAL_BLAS_POINTS))
        try:
            while self.k < self.steps:
                if self.param_tol_met():
                    self.status = "param_tol"
                    break
                res, t0, t_dual = self.step()
                self.record(res, t0, t_dual)
                if self.report(res):
                    self.status = "callback"
                    break
            else:
                if self.param_tol_met():
                    self.status = "param_tol"
        except _Failure as exc:
            self.generator.params = self.theta
            self.status, self.failure = exc.status, exc.message
        finally:
            serial.close()

    def param_tol_met(self) -> bool:
        """Whether the last parameter error is within ``stop_param_tol``."""
        return bool(self.perr and self.stop_param_tol is not None
                    and self.perr[-1] <= self.stop_param_tol)

    # -- one step
    def step(self) -> tuple[RegularizedResult, float, float]:
        """One generator step; returns the dual solve, the step's start time and solve time.

        Raises :class:`_Failure` on bad values (the state then still is the last good one).
        """
        t0 = time.perf_counter()
        z, y, x = self.draw_minibatches()
        warm = None
        if self.warm_start and self.prev is not None:
            warm = transfer_potentials(self.prev, x, y)
        t1 = time.perf_counter()
        res = _solve(x, y, warm=warm, **self.solve_kw)
        t2 = time.perf_counter()
        grad = self.gradient(z, x, y, res)
        self.update(z, x, y, grad)
        self.prev = res
        self.k += 1
        return res, t0, t2 - t1

    def draw_minibatches(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Latent samples ``z``, target samples ``y`` and generated points ``x = g(z)``."""
        gen = self.generator
        z = np.asarray(gen.sample_latent(self.batch, self.rng), dtype=np.float64)
        y = self.draw(self.batch, self.rng)
        x = _points(gen.sample(z), gen.ndim, "generator.sample(z)")
        if not np.all(np.isfinite(x)):
            raise _Failure("non_finite", f"the generated points are not finite at step "
                           f"{self.k + 1}")
        return z, y, x

    def gradient(self, z: np.ndarray, x: np.ndarray, y: np.ndarray,
                 res: RegularizedResult) -> np.ndarray:
        """Gradient of the minibatch objective w.r.t. the parameters (one vjp)."""
        P = np.asarray(res.plan(), dtype=np.float64)
        grad = np.asarray(self.generator.vjp(z, _cost_gradient(x, y, P, self.cost)),
                          dtype=np.float64)
        if not np.all(np.isfinite(grad)) or not np.isfinite(res.objective):
            raise _Failure("non_finite", f"the gradient at step {self.k + 1} is not finite (the "
                           "generator's vjp or the dual solve returned NaN or inf)")
        return grad

    def update(self, z: np.ndarray, x: np.ndarray, y: np.ndarray, grad: np.ndarray) -> None:
        """Optimizer step; checks the new parameters and points, then keeps them as ``theta``."""
        gen, lr, k = self.generator, self.lr, self.k
        new = self.opt.step(self.theta, -grad)
        if not np.all(np.isfinite(new)):
            raise _Failure("non_finite", f"the parameters became non-finite at step "
                           f"{k + 1} (lr={lr:g} too large?)")
        gen.params = new
        x_new = _points(gen.sample(z), gen.ndim, "generator.sample(z)")
        if not np.all(np.isfinite(x_new)):
            raise _Failure("non_finite", f"the generated points became non-finite at step "
                           f"{k + 1} (lr={lr:g} too large?)")
        far, far_before = _far(x_new, y), _far(x, y)
        if far > _FAR and far > far_before:
            raise _Failure("diverged", f"the generated points moved away from the target "
                           f"at step {k + 1} (median distance {far:.3g} diameters of the "
                           f"target minibatch): lr={lr:g} is too large; lower it")
        self.theta = np.asarray(new, dtype=np.float64).copy()

    def record(self, res: RegularizedResult, t0: float, t_dual: float) -> None:
        """Append the step's solve statistics, timings, parameters and parameter error."""
        rec, theta = self.rec, self.theta
        for key, v in (("obj", res.objective), ("tc", res.transport_cost),
                       ("err", res.marginal_error), ("it", res.iterations),
                       ("conv", res.converged), ("t_dual", t_dual),
                       ("t_gen", time.perf_counter() - t0 - t_dual)):
            rec[key].append(v)
        if self.traj is not None:
            self.traj.append(theta.copy())
        if self.true_params is not None:
            self.perr.append(float(np.max(np.abs(theta - self.true_params))))

    def report(self, res: RegularizedResult) -> bool:
        """Progress line and callback after a step; True when the callback asks to stop."""
        k, steps = self.k, self.steps
        now = time.perf_counter()
        if self.progress and (now - self.last_print >= 2.0 or k == steps):
            self.last_print = now
            sys.stderr.write(f"[otgrid smoothed] step {k}/{steps}  objective "
                             f"{res.objective:.4g}  dual {res.iterations} it  "
                             f"{now - self.t_start:.1f} s\n")
            sys.stderr.flush()
        return bool(self.callback is not None and self.callback(SmoothedStep(
            k, self.theta.copy(), float(res.objective), float(res.transport_cost),
            int(res.iterations), now - self.t_start)))

    # -- the result
    def message(self, conv: np.ndarray) -> str:
        """The status line (warned on an early stop) and the note on unconverged dual solves.

        Called through :meth:`result` from :func:`fit_smoothed`: the warnings name the caller.
        """
        k = self.k
        if self.status == "param_tol":
            message = (f"Converged at step {k}: parameter error {self.perr[-1]:.3g} <= "
                       f"{self.stop_param_tol:g}.")
        elif self.status == "callback":
            message = f"Stopped by the callback at step {k}."
        elif self.status == "steps":
            message = f"Ran all {k} steps."
        else:
            message = (f"Stopped early: {self.failure}. The result holds the last good state "
                       f"(step {k}) and the generator was reset to it.")
            warnings.warn(message, ConvergenceWarning, stacklevel=4)
        n_bad = int(np.count_nonzero(~conv))
        if n_bad:
            note = (f"{n_bad} of {conv.size} dual solves stopped at dual_max_iter="
                    f"{self.dual_max_iter} before dual_tol={self.dual_tol:g} (their approximate "
                    "gradients were used); increase dual_max_iter or reg, or loosen dual_tol.")
            message += " " + note
            warnings.warn(note, ConvergenceWarning, stacklevel=4)
        return message

    def result(self) -> SmoothedResult:
        """The :class:`SmoothedResult` of the run (arrays of the recorded steps)."""
        rec, traj = self.rec, self.traj
        conv = np.array(rec["conv"], dtype=bool)
        message = self.message(conv)
        return SmoothedResult(
            params=self.theta.copy(), trajectory=None if traj is None else np.array(traj),
            objective=np.array(rec["obj"], dtype=np.float64),
            transport_cost=np.array(rec["tc"], dtype=np.float64),
            marginal_error=np.array(rec["err"], dtype=np.float64),
            dual_iterations=np.array(rec["it"], dtype=np.int64), dual_converged=conv,
            param_error=None if self.true_params is None else np.array(self.perr),
            dual_seconds=np.array(rec["t_dual"]), generator_seconds=np.array(rec["t_gen"]),
            seconds=time.perf_counter() - self.t_start, steps=self.k,
            converged=self.status == "param_tol", status=self.status, message=message,
            reg=self.reg, regularizer=self.regularizer, cost=self.cost, lr=self.lr,
            batch=self.batch, optimizer=self.optimizer)


class _NDim:
    """Stands in for a grid in :func:`otgrid.sco._check_generator` (only ``ndim`` is read)."""

    def __init__(self, ndim: int) -> None:
        self.ndim = ndim
