"""Sequential Convex Optimization (SCO): train a parametric generator with the exact critic.

Pinetz, Soukup and Pock, "What is optimized in Wasserstein GANs?", Alg. 2. With the target
masses ``mu`` and the masses ``nu_theta`` of the generator on a grid, every step

.. code-block:: text

    f     = optimal critic of (mu, nu_theta)           # solve_critic, warm-started
    theta = theta + lr * (1/m) sum_j J_theta(z_j)^T grad f(g_theta(z_j))   # ascent on f
    nu_theta = masses of the new generator             # exact (closed form) or a histogram

The critic is high on the target and low on the generated measure, so moving the generated
points up the critic decreases W: by the envelope theorem
:math:`\\nabla_\\theta W(\\mu, \\nu_\\theta) = -\\nabla_\\theta \\mathbb E_z f(g_\\theta(z))`
for the optimal ``f``. Every step also certifies ``lower <= W_grid(mu, nu_theta) <= upper``.

The optional relaxed Wasserstein proximal update (Lin et al., "Wasserstein proximal of GANs",
Alg. 1) replaces the single step by ``inner_steps`` steps on

.. math::

    -\\frac1m \\sum_j f(g_\\theta(z_j)) + \\frac{1}{2h}\\,\\frac1m \\sum_j
    |g_\\theta(z_j) - g_{\\theta_k}(z_j)|^2 ,

the critic ``f`` held fixed, before the next critic solve.

The smoothed-WGAN step of Sanjabi et al. (Alg. 1), which needs no grid and steps along the
gradient of a *regularized* transport value of minibatches, is the separate
:func:`otgrid.sco.smoothed.fit_smoothed` (same generator protocol, its own result type: it
certifies no W bounds). Generators built on torch: :mod:`otgrid.sco.generators_torch`.
"""

from __future__ import annotations

import math
import sys
import time
import warnings
from collections.abc import Callable
from typing import Any, Literal, TextIO

import numpy as np

from otgrid._threads import numba_threads
from otgrid._validation import as_finite_array, as_rng, check_choice, check_positive_int
from otgrid.critic.backend_numba import PARALLEL_MIN_CELLS
from otgrid.critic.result import CriticResult
from otgrid.critic.solve import solve_critic
from otgrid.errors import ConvergenceWarning, OutsideMassWarning
from otgrid.grid.grid import Grid
from otgrid.grid.interp import GridFunction
from otgrid.sco.generators import ParametricGenerator, has_cell_masses
from otgrid.sco.gradient import _ascent
from otgrid.sco.optim import _SGD, _Adam, _check_generator, _Failure, _positive
from otgrid.sco.result import SCOResult, SCOStep, WassersteinProx

__all__ = ["fit"]

Optimizer = Literal["sgd", "adam"]
Masses = Literal["exact", "samples"]
_OPTIMIZERS = ("sgd", "adam")
_MASSES = ("exact", "samples")
_OUTSIDE = ("auto", "fold", "renormalize", "raise")


class _Progress:
    """A one-line text progress report (carriage returns on a terminal, lines otherwise)."""

    def __init__(self, total: int, stream: TextIO | None = None) -> None:
        self.total = total
        self.stream = stream if stream is not None else sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.every = 0.1 if self.tty else 2.0
        self.last = -math.inf
        self.width = 0

    def update(self, info: SCOStep, force: bool = False) -> None:
        now = time.perf_counter()
        if not force and now - self.last < self.every:
            return
        self.last = now
        params = np.array2string(info.params, precision=4, separator=", ",
                                 max_line_width=10_000)
        line = (f"[otgrid sco] step {info.step}/{self.total}  W in [{info.lower:.4g}, "
                f"{info.upper:.4g}]  critic {info.critic_iterations} it  params {params}  "
                f"{info.seconds:.1f} s")
        if self.tty:
            pad = max(0, self.width - len(line))
            self.stream.write("\r" + line + " " * pad)
            self.width = len(line)
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.tty and self.width:
            self.stream.write("\n")
            self.stream.flush()


def _box_distance(x: np.ndarray, grid: Grid) -> float:
    """Median distance of the points to the grid box, in units of the box diameter."""
    lo, hi = grid.lower, grid.upper
    d = np.sqrt(np.sum((np.maximum(lo - x, 0) + np.maximum(x - hi, 0)) ** 2, axis=1))
    return float(np.median(d)) / float(np.linalg.norm(hi - lo))


def _target_masses(target: Any, grid: Grid, outside: str, outside_tol: float) -> np.ndarray:
    if hasattr(target, "cell_masses") and hasattr(target, "ndim"):
        if target.ndim != grid.ndim:
            raise ValueError(f"target is {target.ndim}D but the grid is {grid.ndim}D; give a "
                             f"{grid.ndim}D distribution or masses of shape {grid.shape}.")
        if outside == "auto":  # the grid's own threshold: a target must lie on the grid
            return grid.discretize(target, outside="auto")
        return grid.discretize(target, outside=outside, outside_tol=outside_tol)
    try:
        mu = as_finite_array(target, "target", nonnegative=True)
    except TypeError:
        raise TypeError(f"target must be an otgrid distribution or an array of grid masses of "
                        f"shape {grid.shape}; got {type(target).__name__}.") from None
    if mu.shape != grid.shape:
        raise ValueError(f"target masses must have the grid's shape {grid.shape}; got "
                         f"{mu.shape}. Use grid.discretize(dist) or grid.histogram(samples).")
    total = float(mu.sum())
    if not total > 0:
        raise ValueError("target masses have zero total; they must hold some mass.")
    return mu / total


# --------------------------------------------------------------------------- the loop
def fit(
    target: Any,
    generator: ParametricGenerator,
    grid: Grid,
    *,
    steps: int = 1000,
    lr: float = 5e-3,
    batch: int = 128,
    optimizer: Optimizer = "sgd",
    masses: Masses = "exact",
    n_mass_samples: int = 50_000,
    critic_tol: float = 1e-3,
    critic_max_iter: int = 10_000,
    prox: WassersteinProx | None = None,
    keep_trajectory: bool | None = None,
    true_params: Any = None,
    stop_param_tol: float | None = None,
    stop_w_tol: float | None = None,
    outside: str = "auto",
    outside_tol: float = 1e-6,
    norm: str = "euclidean",
    backend: str = "auto",
    callback: Callable[[SCOStep], bool | None] | None = None,
    progress: bool = False,
    rng: Any = None,
) -> SCOResult:
    r"""Fit a parametric generator to a target by SCO with the exact grid critic.

    Minimises :math:`\theta \mapsto W_{grid}(\mu, \nu_\theta)` by Pinetz et al.'s Alg. 2:
    solve the critic of ``(mu, nu_theta)`` (warm-started from the previous step), step the
    parameters along the minibatch ascent direction of the interpolated critic at generated
    points, rebuild ``nu_theta`` and repeat. The generator is trained in place.

    Parameters
    ----------
    target : Distribution or array_like, shape grid.shape
        The target ``mu``: a distribution (discretised exactly on ``grid``) or grid masses
        (normalised to total 1).
    generator : ParametricGenerator
        E.g. :class:`otgrid.sco.generators.LocationScale`; its parameters are updated in place and
        end at ``result.params``.
    grid : Grid
        A 1D or 2D grid holding the target.
    steps : int, optional
        Maximum number of SCO steps (critic solves after the initial one).
    lr : float, optional
        Learning rate ``alpha`` (paper: 5e-3 with SGD).
    batch : int, optional
        Latent samples per generator step ``m`` (paper: 128).
    optimizer : {"sgd", "adam"}, optional
        ``"sgd"``: ``theta += lr * ascent`` as in the paper. ``"adam"``: Adam with
        ``betas=(0.9, 0.999)``, ``eps=1e-8``.
    masses : {"exact", "samples"}, optional
        How ``nu_theta`` is built: ``"exact"`` from ``generator.cell_masses`` (closed form),
        ``"samples"`` as a cloud-in-cell histogram of ``n_mass_samples`` generated points.
    n_mass_samples : int, optional
        Samples per histogram with ``masses="samples"`` (paper: 50 000).
    critic_tol : float, optional
        Relative gap of each critic solve.
    critic_max_iter : int, optional
        Iteration limit of each critic solve. Solves that stop there are counted and reported
        in one :class:`~otgrid.errors.ConvergenceWarning` at the end; their bounds still hold.
    prox : WassersteinProx, optional
        Use the relaxed Wasserstein proximal update (``prox.inner_steps`` optimizer steps per
        critic solve).
    keep_trajectory : bool, optional
        Keep the parameters of every step in ``result.trajectory`` (needed by
        :func:`otgrid.plot.plot_sco`). Default: when ``p * (steps + 1) <= 2**24`` (128 MiB),
        so an MLP generator trained for many steps does not fill the memory.
    true_params : array_like, shape (p,), optional
        Known optimal parameters: records ``result.param_error`` and enables
        ``stop_param_tol``.
    stop_param_tol : float, optional
        Stop once ``max |theta - true_params| <= stop_param_tol`` (needs ``true_params``).
    stop_w_tol : float, optional
        Stop once the certified upper bound on ``W_grid`` is ``<= stop_w_tol``.
    outside : {"auto", "fold", "renormalize", "raise"}, optional
        Mass outside the grid bounds. ``"auto"`` (default): a target distribution must lie on
        the grid -- more than :data:`~otgrid.grid.grid.AUTO_OUTSIDE_TOL` (1e-6 per axis) of it
        outside raises :class:`~otgrid.grid.grid.OutsideMassError` (less is renormalised away),
        and the generated mass outside is moved into the boundary cells (the critic then pushes
        it back). ``"fold"``, ``"renormalize"`` (dropped with the rest rescaled) or ``"raise"``
        (an error) apply to both the target and the generated mass. Samples outside the box
        still get a gradient from the critic's 1-Lipschitz extension, which points back into
        the box.
    outside_tol : float, optional
        Outside mass treated as round-off (with ``"auto"``, for the generated mass only). The
        first step whose generated mass outside the bounds exceeds it triggers one
        :class:`~otgrid.errors.OutsideMassWarning` with the amount; every step's amount is in
        ``result.outside_mass``.
    norm : {"euclidean", "cityblock"}, optional
        Pointwise norm of the critic constraint (see :func:`otgrid.solve_critic`).
    backend : {"auto", "numpy", "numba", "cuda"}, optional
        Critic solver backend (see :func:`otgrid.solve_critic`).
    callback : callable, optional
        ``callback(info)`` with an :class:`SCOStep` after every critic solve (the initial one
        included); returning ``True`` stops the fit (``status="callback"``).
    progress : bool, optional
        Print a progress line to standard error.
    rng : None, int or numpy.random.Generator, optional
        Random source of the latent samples.

    Returns
    -------
    SCOResult
        Final parameters, trajectory, certified W bounds per step, critic iterations and the
        split of the wall time.

    Raises
    ------
    TypeError, ValueError
        Bad input, found before the first step: wrong types or shapes, non-finite or empty
        initial parameters, ``masses="exact"`` with a generator without ``cell_masses``, an
        unknown option string, ``stop_param_tol`` without ``true_params``, a target
        distribution that misses the grid (:class:`~otgrid.grid.grid.OutsideMassError`, with
        ``outside="auto"`` or ``"raise"``).

    Warns
    -----
    ConvergenceWarning
        When the fit ends early on bad values (non-finite parameters or gradients, a
        generator flying off the grid, parameters without valid masses), when a stopping
        tolerance was given but not met, and when critic solves stopped at
        ``critic_max_iter``. The result then holds the last good state and says why.
    OutsideMassWarning
        Once, when generated mass first leaves the grid bounds (above ``outside_tol``).

    Notes
    -----
    A fit ends early, with a clear ``message`` and without NaNs in the result, when

    - the ascent direction or the updated parameters are not finite (``"non_finite"``);
    - the generated points move away from the grid and their median distance to the box
      exceeds its diameter (``"diverged"``: the learning rate is too large for the grid);
    - the generator's exact masses cannot be built at the new parameters (``"invalid_params"``,
      e.g. a singular ``A`` for :class:`~otgrid.sco.generators.Affine`).

    The parameters are then reset to the last state whose critic solve completed. The
    certified bounds refer to the masses given to the solver (``nu_theta`` after folding or
    renormalising the outside mass).

    See Also
    --------
    otgrid.sco.smoothed.fit_smoothed : the smoothed-WGAN step (Sanjabi et al., Alg. 1).
    otgrid.sco.generators_torch.TorchGenerator : any ``torch.nn.Module`` as a generator.

    References
    ----------
    T. Pinetz, D. Soukup, T. Pock, "What is optimized in Wasserstein GANs?" (Alg. 2).
    A. T. Lin, W. Li, S. Osher, G. Montúfar, "Wasserstein proximal of GANs" (Alg. 1).

    Examples
    --------
    >>> import otgrid as og
    >>> from otgrid.sco import LocationScale, fit
    >>> grid = og.Grid((-4, 6), 200)
    >>> gen = LocationScale(loc=0.0, scale=0.2)
    >>> res = fit(og.Normal(1.0, 0.25), gen, grid, steps=400, rng=0,
    ...           true_params=[1.0, 0.5], stop_param_tol=grid.dx[0])
    >>> res.converged, bool(res.param_error[-1] <= grid.dx[0])
    (True, True)
    """
    t_start = time.perf_counter()
    if not isinstance(grid, Grid):
        raise TypeError(f"grid must be an otgrid.Grid; got {type(grid).__name__}.")
    if grid.ndim not in (1, 2):
        raise ValueError(f"fit needs a 1D or 2D grid (the critic is interpolated there); got "
                         f"a {grid.ndim}D grid.")
    steps = check_positive_int(steps, "steps", minimum=0)
    lr = _positive(lr, "lr")
    batch = check_positive_int(batch, "batch")
    optimizer = check_choice(optimizer, "optimizer", _OPTIMIZERS)
    masses = check_choice(masses, "masses", _MASSES)
    n_mass_samples = check_positive_int(n_mass_samples, "n_mass_samples")
    critic_tol = _positive(critic_tol, "critic_tol")
    critic_max_iter = check_positive_int(critic_max_iter, "critic_max_iter")
    outside = check_choice(outside, "outside", _OUTSIDE)
    outside_tol = float(outside_tol)
    if not (math.isfinite(outside_tol) and outside_tol >= 0):
        raise ValueError(f"outside_tol must be finite and >= 0; got {outside_tol}.")
    stop_param_tol = _positive(stop_param_tol, "stop_param_tol", allow_none=True)
    stop_w_tol = _positive(stop_w_tol, "stop_w_tol", allow_none=True)
    if prox is not None and not isinstance(prox, WassersteinProx):
        raise TypeError(f"prox must be None or an otgrid.sco.WassersteinProx; got {prox!r}.")
    if callback is not None and not callable(callback):
        raise TypeError("callback must be callable, e.g. callback(info) -> bool | None.")
    rng = as_rng(rng)
    theta = _check_generator(generator, grid)
    if masses == "exact" and not has_cell_masses(generator):
        raise ValueError(f"masses='exact' needs a generator with exact cell masses "
                         f"(cell_masses); {type(generator).__name__} has none. Use "
                         "masses='samples'.")
    if true_params is not None:
        true_params = np.ravel(as_finite_array(true_params, "true_params"))
        if true_params.size != theta.size:
            raise ValueError(f"true_params must have {theta.size} entries (like "
                             f"generator.params); got {true_params.size}.")
    elif stop_param_tol is not None:
        raise ValueError("stop_param_tol needs true_params (the parameters to reach); pass "
                         "true_params=... or use stop_w_tol.")
    if keep_trajectory is None:
        keep_trajectory = theta.size * (steps + 1) <= 1 << 24
    mu = _target_masses(target, grid, outside, outside_tol)
    names = getattr(generator, "param_names", None)
    if names is None or len(names) != theta.size:
        names = tuple(f"theta[{i}]" for i in range(theta.size))
    run = _Run(mu=mu, generator=generator, grid=grid, theta=theta, steps=steps, lr=lr,
               batch=batch, optimizer=optimizer, masses=masses, n_mass_samples=n_mass_samples,
               critic_tol=critic_tol, critic_max_iter=critic_max_iter, prox=prox,
               true_params=true_params, stop_param_tol=stop_param_tol, stop_w_tol=stop_w_tol,
               outside="fold" if outside == "auto" else outside, outside_tol=outside_tol,
               norm=norm, backend=backend,
               callback=callback, progress=progress, rng=rng, keep=bool(keep_trajectory),
               names=tuple(str(n) for n in names), t_start=t_start)
    # Small grids run every kernel on one thread, as the solver's own loop does: outside that
    # loop (default step, final flow) and in the interpolant, waking a second thread costs more
    # than the work (measured: 10 ms per flow_cost call at 48^2 on a loaded 2-core machine).
    with numba_threads(grid.size < PARALLEL_MIN_CELLS):
        return run.run()


class _Run:
    """The state of one :func:`fit` (inputs already validated)."""

    def __init__(self, **kw: Any) -> None:
        self.__dict__.update(kw)
        self.inner = self.prox.inner_steps if self.prox is not None else 1
        self.rec: dict[str, list[Any]] = {k: [] for k in (
            "theta", "lower", "upper", "iters", "conv", "outside", "t_mass", "t_critic",
            "t_gen")}
        self.warned_outside = False
        self.updates = 0
        self.n_states = 0
        self.errors: list[float] = []

    # -- pieces of a step
    def build_masses(self) -> tuple[np.ndarray, float]:
        """``nu_theta`` at the generator's current parameters and the mass outside the grid."""
        gen, grid = self.generator, self.grid
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", OutsideMassWarning)
            if self.masses == "exact":
                nu = gen.cell_masses(grid, outside=self.outside, outside_tol=0.0)
            else:
                x = gen.sample(gen.sample_latent(self.n_mass_samples, self.rng))
                nu = grid.histogram(x, scheme="linear", outside=self.outside, outside_tol=0.0)
        amount = 0.0
        for w in caught:
            if issubclass(w.category, OutsideMassWarning):
                amount += float(getattr(w.message, "mass", 0.0))
            else:
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
        nu = np.asarray(nu, dtype=np.float64)
        if nu.shape != grid.shape or not np.all(np.isfinite(nu)):
            raise ValueError("the generator's masses are not finite or do not have the grid's "
                             f"shape {grid.shape}.")
        return nu, amount

    def solve(self, nu: np.ndarray, warm: CriticResult | None) -> CriticResult:
        """Critic of ``(mu, nu)``, warm-started, with the default step of these data.

        A warm start reuses the step of the solve it starts from, but the solver's default step
        ``kappa * n_cells / W_ls`` (``W_ls``: cost of the least-squares flow of ``mu - nu``)
        changes by orders of magnitude along a fit. With the stale step, solves near the
        optimum took up to 10^4 iterations instead of about 10^2 (48^2 grid, measured);
        solve_critic therefore picks the step from the new data on a warm start too.
        """
        kw = dict(norm=self.norm, backend=self.backend)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            return solve_critic(self.mu, nu, self.grid, tol=self.critic_tol,
                                max_iter=self.critic_max_iter, warm_start=warm, **kw)

    def record(self, theta: np.ndarray, res: CriticResult, out: float, t_mass: float,
               t_critic: float) -> SCOStep:
        rec = self.rec
        if not self.keep:
            rec["theta"].clear()  # only the latest state
        if self.true_params is not None:
            self.errors.append(float(np.max(np.abs(theta - self.true_params))))
        self.n_states += 1
        for key, value in (("theta", theta.copy()), ("lower", res.lower), ("upper", res.upper),
                           ("iters", res.iterations), ("conv", res.converged),
                           ("outside", out), ("t_mass", t_mass), ("t_critic", t_critic)):
            rec[key].append(value)
        k = self.n_states - 1
        if out > self.outside_tol and not self.warned_outside:
            self.warned_outside = True
            how = {"fold": "folded into the boundary cells",
                   "renormalize": "dropped and the rest rescaled",
                   "raise": "dropped"}[self.outside]
            warnings.warn(OutsideMassWarning(
                f"at SCO step {k}, {out:.3g} of the generated mass lies outside the grid bounds "
                f"{self.grid.bounds} ({how}); the critic's extension pulls such samples back. "
                "Enlarge the bounds if this persists (every step's amount is in "
                "result.outside_mass; this warning is given once).", mass=out), stacklevel=4)
        return SCOStep(k, theta.copy(), float(res.lower), float(res.upper),
                       int(res.iterations), float(out), time.perf_counter() - self.t_start)

    def check_stop(self, info: SCOStep) -> str | None:
        if self.stop_param_tol is not None and \
                np.max(np.abs(info.params - self.true_params)) <= self.stop_param_tol:
            return "param_tol"
        if self.stop_w_tol is not None and info.upper <= self.stop_w_tol:
            return "w_tol"
        if self.callback is not None and self.callback(info):
            return "callback"
        return None

    def generator_step(self, k: int, f: GridFunction, anchor: np.ndarray,
                       opt: _SGD | _Adam) -> None:
        """``inner`` optimizer steps from ``anchor``; raises _Failure on bad values."""
        gen, grid, batch, lr = self.generator, self.grid, self.batch, self.lr
        z_check = None
        far_before = 0.0
        for _ in range(self.inner):
            z = np.asarray(gen.sample_latent(batch, self.rng), dtype=np.float64)
            ascent, x = _ascent(f, gen, z)
            if z_check is None:
                z_check, far_before = z, _box_distance(x, grid)
            if self.prox is not None:
                current = gen.params
                gen.params = anchor
                x0 = np.asarray(gen.sample(z), dtype=np.float64).reshape(x.shape)
                gen.params = current
                ascent = ascent - np.asarray(gen.vjp(z, (x - x0) / self.prox.h)) / batch
            if not np.all(np.isfinite(ascent)):
                raise _Failure("non_finite", f"the ascent direction at SCO step {k} is not "
                               "finite (the generator's vjp returned NaN or inf)")
            new = opt.step(np.asarray(gen.params, dtype=np.float64).ravel(), ascent)
            if not np.all(np.isfinite(new)):
                raise _Failure("non_finite", f"the parameters became non-finite at SCO step "
                               f"{k} (lr={lr:g} too large?)")
            gen.params = new
        x_new = np.asarray(gen.sample(z_check), dtype=np.float64)
        x_new = x_new.reshape(x_new.shape[0], -1)
        if not np.all(np.isfinite(x_new)):
            raise _Failure("non_finite", f"the generated points became non-finite at SCO step "
                           f"{k}")
        far = _box_distance(x_new, grid)
        if far > 1.0 and far > far_before:
            raise _Failure("diverged", f"the generated points moved away from the grid at SCO "
                           f"step {k} (median distance {far:.3g} box diameters): the learning "
                           f"rate lr={lr:g} is too large for this grid; lower it")

    # -- the loop
    def run(self) -> SCOResult:
        gen = self.generator
        t0 = time.perf_counter()
        nu, out = self.build_masses()  # bad input at the start raises
        t1 = time.perf_counter()
        res = self.solve(nu, None)
        theta = self.theta
        info = self.record(theta, res, out, t1 - t0, time.perf_counter() - t1)
        bar = _Progress(self.steps) if self.progress else None
        opt = (_SGD if self.optimizer == "sgd" else _Adam)(self.lr, theta.size)
        status, failure = "steps", ""
        try:
            stop = self.check_stop(info)
            if bar is not None:
                bar.update(info, force=True)
            k = 0
            while stop is None and k < self.steps:
                k += 1
                tg = time.perf_counter()
                try:
                    self.generator_step(k, res.interpolant(), theta, opt)
                    theta_new = np.asarray(gen.params, dtype=np.float64).ravel().copy()
                    t0 = time.perf_counter()
                    try:
                        nu, out = self.build_masses()
                    except ValueError as exc:
                        raise _Failure("invalid_params", f"the generator's masses could not be "
                                       f"built at SCO step {k}: {exc}") from None
                except _Failure:
                    gen.params = theta
                    raise
                t1 = time.perf_counter()
                res = self.solve(nu, res)
                self.rec["t_gen"].append(t0 - tg)
                theta = theta_new
                self.updates += self.inner
                info = self.record(theta, res, out, t1 - t0, time.perf_counter() - t1)
                stop = self.check_stop(info)
                if bar is not None:
                    bar.update(info, force=stop is not None or k == self.steps)
        except _Failure as exc:
            status, failure = exc.status, exc.message
        finally:
            if bar is not None:
                bar.close()
        if stop is not None:
            status = stop
        return self.finish(res, status, failure)

    def finish(self, res: CriticResult, status: str, failure_message: str) -> SCOResult:
        rec, true_params = self.rec, self.true_params
        stop_param_tol, stop_w_tol = self.stop_param_tol, self.stop_w_tol
        critic_max_iter, critic_tol = self.critic_max_iter, self.critic_tol
        traj = np.array(rec["theta"])
        lower = np.array(rec["lower"], dtype=np.float64)
        upper = np.array(rec["upper"], dtype=np.float64)
        iters = np.array(rec["iters"], dtype=np.int64)
        conv = np.array(rec["conv"], dtype=bool)
        err = None if true_params is None else np.array(self.errors)
        steps_done = self.n_states - 1
        w_line = f"W in [{lower[-1]:.6g}, {upper[-1]:.6g}]"
        converged = status in ("param_tol", "w_tol")
        if status == "param_tol":
            message = (f"Converged at step {steps_done}: parameter error {err[-1]:.3g} <= "
                       f"stop_param_tol {stop_param_tol:g}; {w_line}.")
        elif status == "w_tol":
            message = (f"Converged at step {steps_done}: upper bound on W {upper[-1]:.3g} <= "
                       f"stop_w_tol {stop_w_tol:g}; {w_line}.")
        elif status == "callback":
            message = f"Stopped by the callback at step {steps_done}; {w_line}."
        elif status == "steps":
            message = f"Ran all {steps_done} steps; {w_line}."
            if stop_param_tol is not None or stop_w_tol is not None:
                what = []
                if stop_param_tol is not None:
                    what.append(f"parameter error {err[-1]:.3g} > stop_param_tol "
                                f"{stop_param_tol:g}")
                if stop_w_tol is not None:
                    what.append(f"upper bound on W {upper[-1]:.3g} > stop_w_tol {stop_w_tol:g}")
                message = (f"Reached steps={steps_done} before the stopping tolerance: "
                           f"{' and '.join(what)}; {w_line}. {_lr_hint(upper, self.lr)}")
                warnings.warn(message, ConvergenceWarning, stacklevel=4)
        else:
            message = (f"Stopped early: {failure_message}. The result holds the last good state "
                       f"(step {steps_done}, {w_line}) and the generator was reset to it.")
            warnings.warn(message, ConvergenceWarning, stacklevel=4)
        n_bad = int(np.count_nonzero(~conv))
        if n_bad:
            note = (f"{n_bad} of {conv.size} critic solves stopped at critic_max_iter="
                    f"{critic_max_iter} before critic_tol={critic_tol:g} (their bounds still "
                    "hold); increase critic_max_iter or loosen critic_tol.")
            message += " " + note
            warnings.warn(note, ConvergenceWarning, stacklevel=4)
        return SCOResult(
            params=traj[-1].copy(), trajectory=traj if self.keep else None, lower=lower,
            upper=upper,
            critic_iterations=iters, critic_converged=conv,
            outside_mass=np.array(rec["outside"], dtype=np.float64), param_error=err,
            true_params=None if true_params is None else true_params.copy(),
            param_names=self.names,
            masses_seconds=np.array(rec["t_mass"]), critic_seconds=np.array(rec["t_critic"]),
            generator_seconds=np.array(rec["t_gen"]), seconds=time.perf_counter() - self.t_start,
            steps=steps_done, generator_updates=self.updates, converged=converged, status=status,
            message=message, critic=res, grid=self.grid, lr=self.lr, batch=self.batch,
            optimizer=self.optimizer, masses=self.masses, prox=self.prox,
        )


def _lr_hint(upper: np.ndarray, lr: float) -> str:
    """Advice for a fit that ran out of steps: more steps, or a smaller lr if W stalled."""
    half = upper[len(upper) // 2:]
    if len(upper) >= 20 and half.min() >= 0.5 * half[0]:
        return (f"W did not halve over the second half of the run (from {half[0]:.3g} to "
                f"{half[-1]:.3g}): the parameters may be oscillating, as they do when lr={lr:g} "
                "is too large for the accuracy wanted; lower lr or increase steps.")
    return "Increase steps (W was still decreasing)."
