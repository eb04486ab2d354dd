"""Option and result types of :func:`otgrid.sco.fit`: the proximal step, each step, the fit."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from otgrid._validation import check_positive_int
from otgrid.critic.result import CriticResult
from otgrid.grid.grid import Grid

__all__ = ["STATUSES", "SCOResult", "SCOStep", "WassersteinProx"]

STATUSES = ("param_tol", "w_tol", "steps", "callback", "non_finite", "diverged",
            "invalid_params")


@dataclass(frozen=True)
class WassersteinProx:
    """Options of the relaxed Wasserstein proximal generator update.

    Each SCO step then makes ``inner_steps`` optimizer steps on
    ``-mean_j f(g_theta(z_j)) + mean_j |g_theta(z_j) - g_theta_k(z_j)|^2 / (2 h)`` (fresh
    latent samples each time) with the critic ``f`` of the current step held fixed, where
    ``theta_k`` are the parameters at the start of the step.

    Parameters
    ----------
    h : float, optional
        Proximal step (> 0); the paper uses 0.1 and 0.2.
    inner_steps : int, optional
        Generator steps per critic solve (``l`` in the paper, which uses 5 and 10).

    Examples
    --------
    >>> from otgrid.sco import WassersteinProx
    >>> WassersteinProx(h=0.2, inner_steps=5)
    WassersteinProx(h=0.2, inner_steps=5)
    """

    h: float = 0.2
    inner_steps: int = 5

    def __post_init__(self) -> None:
        h = self.h
        if isinstance(h, bool) or not isinstance(h, (int, float, np.number)) or not (
                math.isfinite(h) and h > 0):
            raise ValueError(f"h must be a positive number (the proximal step); got {h!r}.")
        object.__setattr__(self, "h", float(h))
        object.__setattr__(self, "inner_steps", check_positive_int(self.inner_steps,
                                                                   "inner_steps"))


@dataclass(frozen=True)
class SCOStep:
    """What a ``callback`` of :func:`fit` receives after every critic solve.

    Attributes
    ----------
    step : int
        SCO steps done (0 for the initial solve).
    params : ndarray, shape (p,)
        The parameters (a copy).
    lower, upper : float
        Certified bounds on ``W_grid(mu, nu_theta)`` at these parameters.
    critic_iterations : int
        Iterations of this critic solve.
    outside_mass : float
        Generated mass outside the grid bounds.
    seconds : float
        Wall time since the start of the fit.
    """

    step: int
    params: np.ndarray
    lower: float
    upper: float
    critic_iterations: int
    outside_mass: float
    seconds: float


@dataclass(frozen=True, eq=False)
class SCOResult:
    """Result of :func:`fit`.

    Index ``k`` of the per-step arrays is the state after ``k`` SCO steps (``k = 0``: the
    start); every array holds only states whose critic solve completed, so no entry is NaN.

    Attributes
    ----------
    params : ndarray, shape (p,)
        Final parameters: the last state that passed every check (also left in the generator).
    trajectory : ndarray, shape (steps + 1, p), or None
        Parameters after each step; ``None`` when not kept (``keep_trajectory`` of
        :func:`fit`, by default off for generators with many parameters such as MLPs).
    lower, upper : ndarray, shape (steps + 1,)
        Certified bounds on ``W_grid(mu, nu_theta_k)`` (the masses given to the solver).
    critic_iterations : ndarray of int, shape (steps + 1,)
        Iterations of each critic solve (warm-started from the previous one).
    critic_converged : ndarray of bool, shape (steps + 1,)
        Whether each solve reached ``critic_tol``.
    outside_mass : ndarray, shape (steps + 1,)
        Generated mass outside the grid bounds at each step (handled as ``outside`` says).
    param_error : ndarray, shape (steps + 1,), or None
        ``max_i |theta_i - true_params_i|`` when ``true_params`` was given.
    true_params : ndarray, shape (p,), or None
        The ``true_params`` given to :func:`fit`.
    param_names : tuple of str
        Names of the parameters (the generator's ``param_names``, or ``theta[i]``).
    masses_seconds, critic_seconds : ndarray, shape (steps + 1,)
        Wall time spent building ``nu_theta`` and solving for the critic at each step.
    generator_seconds : ndarray, shape (steps,)
        Wall time of each generator update (sampling, interpolant, vjp, optimizer).
    seconds : float
        Total wall time.
    steps : int
        SCO steps completed (critic solves after the initial one).
    generator_updates : int
        Optimizer steps taken (``steps * prox.inner_steps`` with a proximal update).
    converged : bool
        Whether a stopping tolerance (``stop_param_tol`` or ``stop_w_tol``) was met.
    status : {"param_tol", "w_tol", "steps", "callback", "non_finite", "diverged", \
"invalid_params"}
        Why the fit stopped.
    message : str
        Human-readable status.
    critic : CriticResult
        The critic solve at the final parameters.
    grid : Grid
    lr : float
    batch : int
    optimizer : str
    masses : str
    prox : WassersteinProx or None
    """

    params: np.ndarray
    trajectory: np.ndarray | None = field(repr=False)
    lower: np.ndarray = field(repr=False)
    upper: np.ndarray = field(repr=False)
    critic_iterations: np.ndarray = field(repr=False)
    critic_converged: np.ndarray = field(repr=False)
    outside_mass: np.ndarray = field(repr=False)
    param_error: np.ndarray | None = field(repr=False)
    true_params: np.ndarray | None = field(repr=False)
    param_names: tuple[str, ...] = field(repr=False)
    masses_seconds: np.ndarray = field(repr=False)
    critic_seconds: np.ndarray = field(repr=False)
    generator_seconds: np.ndarray = field(repr=False)
    seconds: float
    steps: int
    generator_updates: int
    converged: bool
    status: str
    message: str
    critic: CriticResult = field(repr=False)
    grid: Grid
    lr: float
    batch: int
    optimizer: str
    masses: str
    prox: WassersteinProx | None

    @property
    def w1(self) -> float:
        """Final estimate ``(lower + upper) / 2`` of ``W_grid``."""
        return float(0.5 * (self.lower[-1] + self.upper[-1]))

    @property
    def w_history(self) -> np.ndarray:
        """``(lower + upper) / 2`` at every step, shape (steps + 1,)."""
        return 0.5 * (self.lower + self.upper)

    def __str__(self) -> str:
        return (f"SCO: {self.steps} steps, W = {self.w1:.6g} in [{self.lower[-1]:.6g}, "
                f"{self.upper[-1]:.6g}], params {np.array2string(self.params, precision=5)}, "
                f"{self.seconds:.3g} s ({self.status})")
