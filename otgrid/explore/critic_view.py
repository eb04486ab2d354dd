"""The critic view: solve the exact critic of the page's two measures, with live bounds.

:func:`parse_critic_request` checks what the page sent (measures, grid, norm, backend,
tolerance; every bad value becomes a :class:`~otgrid.explore.jobs.JobError` naming its field,
with the spec parser's own message for a bad spec). :func:`critic_job` returns the computation
that a :class:`~otgrid.explore.jobs.Job` runs: discretise, solve with
:func:`otgrid.critic.solve_critic` (warm-started from the session's last result on the same
grid, reporting the certified bounds at every check, stopped by the page's cancel or the time
limit), and build the payload the page draws (:func:`critic_payload`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from otgrid.critic.backends import available_backends
from otgrid.critic.result import CheckInfo, CriticResult
from otgrid.critic.solve import NORMS, solve_critic
from otgrid.explore.jobs import Job, JobError
from otgrid.explore.problems import Problem, ProblemError, build_problem, discretize, make_grid
from otgrid.explore.render import (
    contour_lines,
    encode_image,
    flow_arrows,
    gradient_norm,
    rounded,
)
from otgrid.grid.grid import Grid

__all__ = ["TIME_LIMIT", "CriticRequest", "critic_job", "critic_payload", "parse_critic_request"]

#: Default and largest time limit of one solve, in seconds.
TIME_LIMIT = 30.0
MAX_TIME_LIMIT = 300.0
#: Tightest tolerance at which the solver's multilevel start is used (see ``_multilevel``).
MULTILEVEL_MIN_TOL = 1e-6
_BACKENDS = ("auto", "numpy", "numba", "cuda")


@dataclass(frozen=True)
class CriticRequest:
    """A checked request of the critic view."""

    problem: Problem
    grid: Grid
    norm: str
    backend: str
    tol: float
    outside: str
    time_limit: float
    max_iter: int
    warm: bool = False


def _number(data: dict, key: str, default: float, lo: float, hi: float) -> float:
    value = data.get(key, default)
    try:
        value = float(default if value in (None, "") else value)
    except (TypeError, ValueError):
        raise JobError(f"{key}: expected a number; got {value!r}.", key) from None
    if not (math.isfinite(value) and lo <= value <= hi):
        raise JobError(f"{key}: must lie in [{lo:g}, {hi:g}]; got {value:g}.", key)
    return value


def _choice(data: dict, key: str, default: str, allowed: tuple[str, ...]) -> str:
    value = data.get(key) or default
    if value not in allowed:
        raise JobError(f"{key}: must be one of {', '.join(allowed)}; got {value!r}.", key)
    return str(value)


def parse_critic_request(data: dict[str, Any]) -> CriticRequest:
    """Check the page's critic request.

    Parameters
    ----------
    data : dict
        ``mu``, ``nu`` (``{"spec": text}`` or ``{"modes": [...]}``, see
        :func:`otgrid.explore.problems.build_problem`), ``shape`` (cells per axis),
        ``bounds`` (optional), ``norm``, ``backend``, ``tol``, ``outside``, ``time_limit``,
        ``warm_start`` (start from the session's last result on the same grid: the page asks
        for it while a mode is dragged, where the last solution is close; a new spec starts
        cold, with the solver's multilevel start).

    Returns
    -------
    CriticRequest

    Raises
    ------
    JobError
        With the field and a message for the page.
    """
    norm = _choice(data, "norm", "euclidean", NORMS)
    backend = _choice(data, "backend", "auto", _BACKENDS)
    if backend != "auto" and available_backends().get(backend) != "available":
        raise JobError(f"backend {backend!r} cannot run here: "
                       f"{available_backends().get(backend)}", "backend")
    tol = _number(data, "tol", 1e-4, 1e-10, 0.5)
    time_limit = _number(data, "time_limit", TIME_LIMIT, 0.1, MAX_TIME_LIMIT)
    max_iter = int(_number(data, "max_iter", 100_000, 1, 1e7))
    outside = _choice(data, "outside", "renormalize", ("renormalize", "fold", "auto", "raise"))
    try:
        problem = build_problem(data.get("mu"), data.get("nu"))
        bounds = data.get("bounds") or None
        grid = make_grid(problem, data.get("shape", 128), bounds, backend=backend)
    except ProblemError as exc:
        raise JobError(str(exc), exc.field) from None
    return CriticRequest(problem, grid, norm, backend, tol, outside, time_limit, max_iter,
                         bool(data.get("warm_start", False)))


def _warm(state: dict[str, Any], req: CriticRequest) -> CriticResult | None:
    """The session's last result, when asked for and it can start this solve (same grid and
    norm). A warm start from an unrelated problem is worse than a cold one (measured: 2539
    iterations from the two-Gaussian critic against 1413 cold for 8gaussians at 96^2)."""
    last = state.get("last")
    if not req.warm:
        return None
    if isinstance(last, CriticResult) and last.grid == req.grid and last.norm == req.norm:
        return last
    return None


def _multilevel(tol: float) -> bool | str:
    """The solver's multilevel start, except at tight tolerances.

    The coarse solves of the multilevel start do not call the solver's ``callback`` (they
    honour ``time_limit``), so a cancel waits for them; at ``tol >= MULTILEVEL_MIN_TOL`` they
    last about a second at 256 x 256 here and save a third of a cold solve, at tighter
    tolerances they can run for minutes (measured: 195 s before the first check at 256 x 256,
    tol 1e-10), so they are skipped.
    """
    return "auto" if tol >= MULTILEVEL_MIN_TOL else False


def critic_job(req: CriticRequest, state: dict[str, Any]) -> Callable[[Job], dict[str, Any] | None]:
    """The computation of one critic request, for a :class:`Job`.

    Parameters
    ----------
    req : CriticRequest
    state : dict
        The session's critic state: ``"last"`` (the last result, the warm start of the next
        solve on the same grid) and ``"export"`` are updated when the solve completes.

    Returns
    -------
    callable
        ``fn(job) -> dict`` (the payload of :func:`critic_payload`), or None when cancelled.
    """
    def run(job: Job) -> dict[str, Any] | None:
        t0 = time.perf_counter()
        try:
            mu, nu, outside = discretize(req.problem, req.grid, req.outside)
        except ProblemError as exc:
            raise JobError(str(exc), exc.field) from None
        warm = _warm(state, req)
        t_mass = time.perf_counter() - t0

        def callback(info: CheckInfo) -> bool:
            job.report(iteration=info.iteration, lower=info.lower, upper=info.upper,
                       seconds=round(info.seconds, 4))
            return job.cancelled

        res = solve_critic(mu, nu, req.grid, norm=req.norm, tol=req.tol, max_iter=req.max_iter,
                           backend=req.backend, warm_start=warm, callback=callback,
                           time_limit=req.time_limit, multilevel=_multilevel(req.tol))
        if job.cancelled or res.status == "callback":
            return None
        state["last"] = res
        t_solve = time.perf_counter() - t0 - t_mass
        payload = critic_payload(req, res, mu, nu, outside)
        payload["timing"] = {"masses": round(t_mass, 4), "solve": round(t_solve, 4),
                             "payload": round(time.perf_counter() - t0 - t_mass - t_solve, 4),
                             "warm_start": warm is not None}
        state["export"] = {"request": req, "result": res, "mu": mu, "nu": nu,
                           "numbers": numbers(req, res, outside, payload)}
        return payload

    return run


def numbers(req: CriticRequest, res: CriticResult, outside: dict[str, float],
            payload: dict[str, Any]) -> dict[str, Any]:
    """The numbers of a solve, for the JSON export."""
    out = {"mu": req.problem.specs["mu"], "nu": req.problem.specs["nu"],
           "w": res.w1, "lower": res.lower, "upper": res.upper, "gap": res.gap,
           "converged": bool(res.converged), "status": res.status, "message": res.message,
           "iterations": int(res.iterations), "seconds": res.seconds, "backend": res.backend,
           "norm": res.norm, "tol": res.tol,
           "grid": {"bounds": [list(b) for b in res.grid.bounds], "shape": list(res.grid.shape)},
           "outside_mass": outside, "known": req.problem.known,
           "history": {"iteration": res.history.iteration.tolist(),
                       "lower": res.history.lower.tolist(), "upper": res.history.upper.tolist(),
                       "seconds": res.history.seconds.tolist()}}
    if "closed_form" in payload:
        out["closed_form_1d"] = payload["closed_form"]
    return out


def _payload_1d(res: CriticResult, mu: np.ndarray, nu: np.ndarray) -> dict[str, Any]:
    grid = res.grid
    dx = grid.dx[0]
    cdf_mu, cdf_nu = np.cumsum(mu), np.cumsum(nu)
    # W1 of the discrete measures at the cell centres: dx * sum |F_mu - F_nu| (ARCHITECTURE §2)
    closed = math.fsum(np.abs(cdf_mu - cdf_nu).tolist()) * dx
    return {"x": rounded(grid.centers[0], 8), "critic": rounded(res.critic),
            "density_mu": rounded(mu / dx), "density_nu": rounded(nu / dx),
            "cdf_mu": rounded(cdf_mu), "cdf_nu": rounded(cdf_nu),
            "flow": rounded(res.flow[0] / dx), "closed_form": closed}


def _payload_2d(res: CriticResult, mu: np.ndarray, nu: np.ndarray) -> dict[str, Any]:
    grid = res.grid
    critic = np.asarray(res.critic)
    centers = (grid.centers[0], grid.centers[1])
    gnorm = gradient_norm(critic, grid.dx, res.norm)
    vol = grid.cell_volume
    return {"critic": encode_image(critic), "grad_norm": encode_image(gnorm, vmin=0.0, vmax=1.0),
            "density_mu": encode_image(mu / vol, vmin=0.0),
            "density_nu": encode_image(nu / vol, vmin=0.0),
            "contours": contour_lines(critic, centers),
            "arrows": flow_arrows(np.asarray(res.flow), centers, grid.dx),
            "grad_norm_max": float(gnorm.max())}


def critic_payload(req: CriticRequest, res: CriticResult, mu: np.ndarray, nu: np.ndarray,
                   outside: dict[str, float]) -> dict[str, Any]:
    """What the page draws of a solve.

    Returns
    -------
    dict
        ``w``, ``lower``, ``upper``, ``gap``, ``converged``, ``status``, ``message``,
        ``iterations``, ``seconds``, ``backend``, ``ndim``, ``bounds``, ``shape``, ``specs``,
        ``modes``, ``known``, ``outside_mass``, ``history``, and per dimension: in 1D the
        cell centres, critic, densities, CDFs, flow and the closed form
        ``dx sum |F_mu - F_nu|``; in 2D images (critic, ``|grad f|``, densities), critic
        contours and flow arrows.
    """
    grid = res.grid
    hist = res.history
    out = {"w": res.w1, "lower": res.lower, "upper": res.upper, "gap": res.gap,
           "converged": bool(res.converged), "status": res.status, "message": res.message,
           "iterations": int(res.iterations), "seconds": res.seconds, "backend": res.backend,
           "norm": res.norm, "tol": res.tol, "ndim": grid.ndim,
           "bounds": [list(b) for b in grid.bounds], "shape": list(grid.shape),
           "specs": req.problem.specs, "modes": req.problem.modes, "known": req.problem.known,
           "outside_mass": outside,
           "history": {"iteration": hist.iteration.tolist(), "lower": rounded(hist.lower, 10),
                       "upper": rounded(hist.upper, 10)}}
    extra = _payload_1d(res, mu, nu) if grid.ndim == 1 else _payload_2d(res, mu, nu)
    out.update(extra)
    return out
