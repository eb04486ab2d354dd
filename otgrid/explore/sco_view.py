"""The SCO view: a Gaussian or affine generator trained step by step with the exact critic.

The run is :func:`otgrid.sco.fit` in a worker thread whose step callback waits for the page's
permission (:class:`SCORun`): ``play`` lets it run, ``pause`` holds it after the current step,
``step`` allows ``n`` more steps, ``stop`` ends it. Every step's parameters and certified
bounds on ``W_grid(target, generator)`` are recorded for the page, which polls
:func:`sco_state`.

With torch installed and a location-scale generator, the same budget of WGAN-GP generator
steps (:func:`otgrid.auditing.gan.train_gan`, five critic updates each, from the same
initial parameters) runs beside it in a second thread, never ahead of SCO, and each of its
generators gets the same certified W (:func:`otgrid.critic.solve_critic` on the same grid).
"""

from __future__ import annotations

import importlib.util
import math
import threading
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from otgrid.critic.solve import solve_critic
from otgrid.explore.jobs import Job, JobError, one_torch_thread
from otgrid.explore.problems import (
    Problem,
    ProblemError,
    build_target,
    make_grid,
    spec_modes,
)
from otgrid.explore.render import encode_image, rounded
from otgrid.explore.session import Session
from otgrid.grid.distributions import Distribution, Normal
from otgrid.grid.grid import Grid

__all__ = ["SCORequest", "SCORun", "control_sco", "export_item", "parse_sco_request",
           "sco_state", "start_sco"]

MAX_STEPS = 5000
GENERATORS = ("location-scale", "affine")
_WAIT = 0.1


@dataclass(frozen=True)
class SCORequest:
    """A checked request of the SCO view."""

    target: Distribution
    target_spec: str
    generator: str
    loc: np.ndarray
    scale: float
    grid: Grid
    lr: float
    optimizer: str
    steps: int
    critic_tol: float
    wgan: bool


def _float(data: dict, key: str, default: float, lo: float, hi: float) -> float:
    try:
        v = float(data.get(key, default) if data.get(key) not in (None, "") else default)
    except (TypeError, ValueError):
        raise JobError(f"{key}: expected a number; got {data.get(key)!r}.", key) from None
    if not (math.isfinite(v) and lo <= v <= hi):
        raise JobError(f"{key}: must lie in [{lo:g}, {hi:g}]; got {v:g}.", key)
    return v


def _loc(data: dict, ndim: int) -> np.ndarray:
    raw = data.get("loc", 0.0)
    try:
        loc = np.atleast_1d(np.asarray(raw if raw not in (None, "") else 0.0, dtype=float))
    except (TypeError, ValueError):
        raise JobError(f"loc: expected a number or [x, y]; got {raw!r}.", "loc") from None
    if loc.size == 1:
        loc = np.full(ndim, float(loc[0]))
    if loc.shape != (ndim,) or not np.all(np.isfinite(loc)) or np.max(np.abs(loc)) > 1e4:
        raise JobError(f"loc: give {ndim} finite number(s) (the target is {ndim}D).", "loc")
    return loc


def parse_sco_request(data: dict[str, Any]) -> SCORequest:
    """Check the page's SCO request.

    Parameters
    ----------
    data : dict
        ``target`` (``{"spec": text}``), ``generator`` (``"location-scale"`` or
        ``"affine"``), initial ``loc`` and ``scale``, ``shape``, ``lr``, ``optimizer``,
        ``steps``, ``critic_tol``, ``wgan``.

    Returns
    -------
    SCORequest

    Raises
    ------
    JobError
    """
    try:
        target = build_target(data.get("target"), "target")
    except ProblemError as exc:
        raise JobError(str(exc), exc.field) from None
    generator = data.get("generator") or "location-scale"
    if generator not in GENERATORS:
        raise JobError(f"generator: must be one of {', '.join(GENERATORS)}.", "generator")
    d = target.ndim
    loc = _loc(data, d)
    scale = _float(data, "scale", 1.0, 1e-3, 1e3)
    optimizer = data.get("optimizer") or "adam"
    if optimizer not in ("sgd", "adam"):
        raise JobError("optimizer: must be sgd or adam.", "optimizer")
    start = Normal(loc, scale ** 2)
    problem = Problem(target, start, d, {"mu": str(data["target"].get("spec", "")), "nu": ""})
    shape = data.get("shape") or (256 if d == 1 else 64)
    try:
        grid = make_grid(problem, shape, data.get("bounds") or None)
    except ProblemError as exc:
        raise JobError(str(exc), exc.field) from None
    return SCORequest(target, problem.specs["mu"], generator, loc, scale, grid,
                      _float(data, "lr", 0.05, 1e-6, 10.0), optimizer,
                      int(_float(data, "steps", 500, 1, MAX_STEPS)),
                      _float(data, "critic_tol", 1e-3, 1e-8, 0.5), bool(data.get("wgan", True)))


class _Stop(Exception):
    """Raised in the WGAN callback to end its training."""


class SCORun:
    """The state of one SCO run: permission to step, and the records of both trainings.

    Attributes
    ----------
    records, wgan : list of dict
        ``{"step", "params", "lower", "upper", "iterations"}`` per step of SCO and of WGAN.
    allowed : float
        Steps SCO may have done (``inf`` while playing).
    """

    def __init__(self, req: SCORequest, job_cancelled: Any) -> None:
        self.req = req
        self.cond = threading.Condition()
        self.allowed = 0.0
        self.stopped = False
        self.records: list[dict[str, Any]] = []
        self.wgan: list[dict[str, Any]] = []
        self.status = "running"
        self.message = ""
        self.wgan_message = ""
        self._cancelled = job_cancelled

    def halted(self) -> bool:
        """Whether the run must end (stopped from the page, or the job cancelled)."""
        return self.stopped or self._cancelled()

    def wait_sco(self, done: int) -> bool:
        """Block until SCO may do step ``done + 1``; whether to stop instead."""
        with self.cond:
            while not self.halted() and self.allowed <= done:
                self.cond.wait(_WAIT)
        return self.halted()

    def wait_wgan(self, done: int) -> bool:
        """Block until WGAN may do step ``done + 1`` (SCO has done it); whether to stop."""
        with self.cond:
            while not self.halted() and (len(self.records) - 1 <= done
                                         and self.status == "running"):
                self.cond.wait(_WAIT)
        return self.halted() or len(self.records) - 1 <= done

    def control(self, action: str, n: int) -> None:
        """``play``, ``pause``, ``step`` (``n`` more steps) or ``stop``."""
        with self.cond:
            done = len(self.records) - 1
            if action == "play":
                self.allowed = math.inf
            elif action == "pause":
                self.allowed = max(done, 0)
            elif action == "step":
                self.allowed = max(done, 0) + n
            elif action == "stop":
                self.stopped = True
            self.cond.notify_all()

    def paused(self) -> bool:
        """Whether SCO is waiting for permission."""
        return self.status == "running" and self.allowed <= len(self.records) - 1


def _record(step: int, params: np.ndarray, lower: float, upper: float, iters: int
            ) -> dict[str, Any]:
    return {"step": int(step), "params": rounded(params, 8), "lower": float(lower),
            "upper": float(upper), "iterations": int(iters)}


def _generator(req: SCORequest) -> Any:
    from otgrid.sco.generators import Affine, LocationScale

    if req.generator == "affine":
        return Affine(req.scale * np.eye(req.loc.size), req.loc)
    return LocationScale(req.loc, req.scale)


def _run_sco(run: SCORun, job: Job) -> None:
    from otgrid.sco.loop import fit

    req = run.req

    def callback(info: Any) -> bool:
        with run.cond:
            run.records.append(_record(info.step, info.params, info.lower, info.upper,
                                       info.critic_iterations))
            run.cond.notify_all()
        job.report(steps=info.step, lower=info.lower, upper=info.upper)
        return run.wait_sco(info.step)

    res = fit(req.target, _generator(req), req.grid, steps=req.steps, lr=req.lr,
              optimizer=req.optimizer, critic_tol=req.critic_tol, outside="fold",
              callback=callback, rng=0)
    run.message = res.message


def _run_wgan(run: SCORun, target_masses: np.ndarray) -> None:
    """WGAN-GP from the same start, one generator step per SCO step, certified W each."""
    from otgrid.auditing.gan import LocationScaleNet, train_gan
    from otgrid.sco.generators import LocationScale

    req = run.req
    warm: list[Any] = [None]

    def callback(generator: Any, step: int) -> None:
        if run.halted():
            raise _Stop
        theta = generator.params()
        d = req.loc.size
        gen = LocationScale(theta[:d], np.abs(theta[d:]))
        masses = gen.cell_masses(req.grid, outside="fold", outside_tol=1.0)
        res = solve_critic(target_masses, masses, req.grid, tol=req.critic_tol,
                           max_iter=10_000, warm_start=warm[0])
        warm[0] = res
        with run.cond:
            run.wgan.append(_record(step, theta, res.lower, res.upper, res.iterations))
        if run.wait_wgan(step):
            raise _Stop

    try:
        with one_torch_thread():
            train_gan(req.target, LocationScaleNet(req.loc, req.scale), method="gp",
                      steps=req.steps, record_every=1, callback=callback, seed=0,
                      generator_lr=max(req.lr * 0.1, 1e-4))
        run.wgan_message = f"WGAN-GP: {len(run.wgan) - 1} generator steps (5 critic steps each)."
    except _Stop:
        run.wgan_message = f"WGAN-GP: stopped after {len(run.wgan) - 1} generator steps."
    except Exception as exc:  # the comparison must not take the SCO run down with it
        run.wgan_message = f"WGAN-GP failed: {str(exc).splitlines()[0] if str(exc) else exc!r}"


def _target_masses(req: SCORequest) -> np.ndarray:
    return req.grid.discretize(req.target, outside="renormalize", outside_tol=1.0)


def start_sco(session: Session, req: SCORequest) -> dict[str, Any]:
    """Start an SCO run for a session (paused after its initial solve).

    Returns
    -------
    dict
        ``{"job": id, "wgan": whether the WGAN comparison runs}``.
    """
    state = session.state["sco"]
    wgan = (req.wgan and req.generator == "location-scale"
            and importlib.util.find_spec("torch") is not None)

    def fn(job: Job) -> dict[str, Any]:
        run: SCORun = state["run"]
        masses = _target_masses(req)
        worker = None
        if wgan:
            worker = threading.Thread(target=_run_wgan, args=(run, masses), daemon=True,
                                      name="otgrid-explore-wgan")
            worker.start()
        try:
            _run_sco(run, job)
        finally:
            with run.cond:
                run.status = "finished"
                run.cond.notify_all()
            if worker is not None:
                worker.join(timeout=30.0)
        return {"steps": len(run.records) - 1, "message": run.message}

    job = Job("sco", fn, exclusive=False)
    old = state.get("run")
    if old is not None:
        old.control("stop", 0)
    state["run"] = SCORun(req, lambda: job.cancelled)
    state["wgan_enabled"] = wgan
    session.start("sco", job)
    return {"job": job.id, "wgan": wgan}


def control_sco(session: Session, action: str, n: Any = 1) -> dict[str, Any]:
    """Apply ``play``, ``pause``, ``step`` or ``stop`` to the session's SCO run."""
    if action not in ("play", "pause", "step", "stop"):
        raise JobError("action must be play, pause, step or stop.", "action")
    run = session.state["sco"].get("run")
    if run is None:
        raise JobError("no SCO run in this tab: press Start first.", "action")
    try:
        n = int(n)
    except (TypeError, ValueError):
        n = 1
    run.control(action, min(max(n, 1), MAX_STEPS))
    return {"ok": True, "action": action}


def _target_view(req: SCORequest) -> dict[str, Any]:
    grid = req.grid
    masses = _target_masses(req)
    out: dict[str, Any] = {"ndim": grid.ndim, "bounds": [list(b) for b in grid.bounds],
                           "shape": list(grid.shape), "generator": req.generator,
                           "target": req.target_spec, "modes": spec_modes(req.target)}
    if grid.ndim == 1:
        out["x"] = rounded(grid.centers[0], 8)
        out["density"] = rounded(masses / grid.dx[0])
    else:
        out["density"] = encode_image(masses / grid.cell_volume, vmin=0.0)
    return out


def sco_state(session: Session, since: int, wgan_since: int | None = None) -> dict[str, Any]:
    """The session's SCO run: status and the records of SCO from step ``since`` and of WGAN
    from step ``wgan_since`` (default ``since``; WGAN lags behind SCO).

    Returns
    -------
    dict
        ``state``, ``paused``, ``steps``, ``message``, ``wgan_message``, ``records``,
        ``wgan``, ``wgan_enabled``, and with ``since == 0`` the target (``view``).
    """
    state = session.state["sco"]
    run: SCORun | None = state.get("run")
    if run is None:
        raise JobError("no SCO run in this tab: press Start first.", "action")
    job = session.jobs.get("sco")
    with run.cond:
        wgan_since = since if wgan_since is None else wgan_since
        records, wgan = run.records[since:], run.wgan[wgan_since:]
    out = {"state": job.state if job is not None else "done", "paused": run.paused(),
           "steps": len(run.records) - 1, "max_steps": run.req.steps, "message": run.message,
           "wgan_message": run.wgan_message, "wgan_enabled": state.get("wgan_enabled", False),
           "records": records, "wgan": wgan, "since": since, "wgan_since": wgan_since}
    if job is not None and job.state == "error":
        out["error"] = job.error
    if since == 0:
        if state.get("view") is None or state.get("view_run") is not run:
            state["view"], state["view_run"] = _target_view(run.req), run
        out["view"] = state["view"]
    return out


def export_item(session: Session) -> dict[str, Any] | None:
    """What the export of the SCO view needs (None before a run)."""
    run: SCORun | None = session.state["sco"].get("run")
    if run is None or not run.records:
        return None
    with run.cond:
        records, wgan = list(run.records), list(run.wgan)
    req = run.req
    numbers = {"target": req.target_spec, "generator": req.generator, "lr": req.lr,
               "optimizer": req.optimizer, "critic_tol": req.critic_tol,
               "grid": {"bounds": [list(b) for b in req.grid.bounds],
                        "shape": list(req.grid.shape)},
               "sco": records, "wgan": wgan, "message": run.message,
               "wgan_message": run.wgan_message, "exported_at": time.time()}
    return {"records": records, "wgan": wgan, "ndim": req.grid.ndim, "target": req.target_spec,
            "numbers": numbers}

