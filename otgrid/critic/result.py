"""Result types of :func:`otgrid.solve_critic`: the critic, the flow, certified bounds on W.

:class:`CriticResult` is what a solve returns, :class:`SolveHistory` the bounds at every check,
:class:`CheckInfo` what a ``callback`` receives at each check.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from otgrid.grid.grid import Grid

if TYPE_CHECKING:
    from otgrid.grid.interp import GridFunction

__all__ = ["CheckInfo", "CriticResult", "SolveHistory"]


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
    problem : int
        Index of the problem in a batch (0 for a single problem).
    """

    iteration: int
    lower: float
    upper: float
    gap: float
    seconds: float
    problem: int = 0


@dataclass(frozen=True, eq=False)
class CriticResult:
    """Result of :func:`solve_critic`: the critic, the flow and certified bounds on W.

    Attributes
    ----------
    w1 : float
        Estimate ``(lower + upper) / 2``; ``|w1 - W_grid| <= gap / 2``.
    lower : float
        Certified lower bound: ``<mu - nu, g>`` for a critic ``g`` certified feasible, rounded
        outward (:func:`otgrid.critic.certify.certify`; ``critic`` is ``g`` re-centred).
    upper : float
        Certified upper bound: the cost ``sum_i |flow_i|`` of the flow plus a bound on the cost
        of routing its floating-point residual, rounded outward.
    gap : float
        ``upper - lower``.
    critic : ndarray, shape grid.shape
        A feasible critic (``|(D critic)_i| <= 1`` in every cell, up to rounding), normalised so
        that ``sum((mu + nu) / 2 * critic) == 0``. It is high where ``mu`` has mass and low where
        ``nu`` has. A CuPy array when the masses were CuPy arrays (so is ``flow``).
    flow : ndarray, shape (ndim, \\*grid.shape)
        Transport flux moving ``mu`` onto ``nu``: ``flow[k][i] / dx_k`` is the mass moved from
        cell ``i`` to cell ``i + e_k`` (negative: the other way). ``flow[k]`` is zero on the last
        index of axis ``k``. Its divergence equals ``mu - nu`` to rounding.
    iterations : int
        Iterations run.
    converged : bool
        Whether the certified ``gap <= tol * upper``.
    status : {"converged", "floor", "max_iter", "time_limit", "callback", "interrupted"}
        Why the solve stopped; ``"floor"``: float64 rounding keeps the certified gap above
        ``tol`` (see the docs' certificate page).
    message : str
        Human-readable status.
    history : SolveHistory
        The bounds at every check (those of the iteration, not rounded outward).
    seconds : float
        Wall time of the solve, excluding the compilation of the Numba kernels on a first run
        (logged as "compiling kernels (first run only)" on the ``otgrid`` logger), before the
        first iteration or, for the certificate's polishing kernels, at the first check that
        polishes.
    backend : str
        Backend that ran (``"numpy"``, ``"numba"`` or ``"cuda"``).
    grid : Grid
        The grid.
    norm : {"euclidean", "cityblock"}
        The pointwise norm of the constraint.
    tol : float
        Requested relative gap.
    dtype : numpy.dtype
        Working precision of the iterates (the certificate is always computed in float64).
    step : float
        The primal step ``tau`` at the end (``sigma = 1 / tau``).
    restarts : int
        Restarts of the iteration (each may adapt the step).
    levels : int
        Grid levels of the multilevel start (1: none).
    float64_from : int or None
        With ``dtype=float32``: the iteration at which the float32 iterates stopped improving
        the gap (their precision floor) and the solve went on in float64; None otherwise.
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
    restarts: int = 0
    levels: int = 1
    float64_from: int | None = None

    @property
    def relative_gap(self) -> float:
        """``gap / upper`` (0 when ``upper == 0``)."""
        return self.gap / self.upper if self.upper > 0 else 0.0

    def interpolant(self, *, lipschitz: bool = False) -> GridFunction:
        """The critic as a function of points: (bi)linear between the cell centres, extended
        outside their box.

        The plain interpolant (``lipschitz=False``) goes through the critic's values. In 1D
        it is 1-Lipschitz, and in 2D it has ``|d_k f| <= 1`` along each axis, i.e. it is
        1-Lipschitz for the cityblock distance ``|x - y|_1`` (what a ``norm="cityblock"``
        critic should be). For ``norm="euclidean"`` in 2D it is only sqrt(2)-Lipschitz: the
        gradient at a corner of a square pairs difference quotients of two different cells,
        and optimal critics reach ``lipschitz_constant`` of 1.32-1.41 (see
        :class:`~otgrid.grid.interp.GridFunction`).

        With ``lipschitz=True`` the values are first moved so that the interpolant is
        1-Lipschitz on the whole space (:meth:`GridFunction.to_lipschitz
        <otgrid.grid.interp.GridFunction.to_lipschitz>`: repair sweeps towards the corner
        constraints, then a division by the remaining Lipschitz constant; in 1D and for the
        cityblock norm only the division by ``max(1, lipschitz_constant)``, which keeps a
        feasible critic). Its values ``g`` give ``<mu - nu, g>``: a certified lower bound on
        ``W_grid`` and on the exact W1 between the discrete measures at the cell centres,
        and, minus the cell diameter, on the W1 of distributions supported in the grid whose
        cell masses are ``mu`` and ``nu``. It keeps 0.895-0.942 of ``W`` for 8 gaussians vs
        N(0, I) and 0.991-0.993 for N(0, I) vs N((2, 1), I) at 64^2-256^2 cells (the plain
        rescaling ``f / lipschitz_constant`` keeps 0.71-0.76). The values are not
        re-centred: their unweighted mean is that of the critic divided by the final
        rescaling, so the weighted mean of ``critic`` (zero) is kept only approximately;
        constants do not change gradients.

        Parameters
        ----------
        lipschitz : bool, optional
            Whether to return the 1-Lipschitz interpolant of a repaired critic instead of the
            interpolant of ``critic`` itself.

        Returns
        -------
        otgrid.grid.interp.GridFunction
            ``f(x)`` and ``f.grad(x)`` for points ``x`` of shape ``(n, ndim)``; its ``norm``
            is the critic's and ``f.lipschitz_constant`` its exact Lipschitz constant.
        """
        from otgrid.grid.interp import GridFunction

        if not isinstance(lipschitz, (bool, np.bool_)):
            raise TypeError(f"lipschitz must be True or False; got {type(lipschitz).__name__} "
                            f"{lipschitz!r}.")
        f = GridFunction(self.grid, self.critic, norm=self.norm)
        return f.to_lipschitz() if lipschitz else f

    def __str__(self) -> str:
        return (f"W = {self.w1:.10g} in [{self.lower:.10g}, {self.upper:.10g}] "
                f"(relative gap {self.relative_gap:.2e}, {self.iterations} iterations, "
                f"{self.seconds:.3g} s, backend {self.backend}, {self.status})")

