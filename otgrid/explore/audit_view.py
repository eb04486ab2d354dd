"""The audit view: a neural critic (uploaded, or a baseline trained now) against the exact one.

An uploaded file is kept in the tab's session (at most ``MAX_UPLOAD`` bytes, see
:mod:`otgrid.explore.server`) and loaded only by the audit command's safe loader
(``otgrid.cli.audit.load_critic``: a state dict read with ``torch.load(...,
weights_only=True)``, TorchScript and pickled modules refused, torch >= 2.6), from a private
temporary file removed right after. The command line sits above the explorer in the layers
of the package, so ``otgrid explore`` hands that loader to the server
(:class:`~otgrid.explore.server.ExploreApp`'s ``load_critic``); without one, uploads are
refused with a message. A baseline is trained by
:func:`otgrid.auditing.baselines.train_critic` (weight clipping, gradient penalty, Lipschitz
penalty or spectral normalisation). The audit itself is :func:`otgrid.auditing.audit`; the page
shows its report table, its figure (:func:`otgrid.auditing.plot.plot_audit`) and the metric
maps of :func:`metric_maps` (Lipschitz excess, gradient cosine, where the reference is
undetermined).
"""

from __future__ import annotations

import base64
import importlib.util
import math
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from otgrid.critic.result import CheckInfo
from otgrid.critic.solve import solve_critic
from otgrid.explore.jobs import Job, JobError, one_torch_thread
from otgrid.explore.problems import Problem, ProblemError, build_problem, discretize, make_grid
from otgrid.explore.session import Session
from otgrid.grid.grid import Grid

__all__ = ["AuditRequest", "audit_job", "metric_maps", "parse_audit_request", "store_upload"]

METHODS = ("gp", "lp", "clip", "sn")
ARCHS = ("auto", "1d", "2d", "toy")
MAX_TRAIN_STEPS = 5000
_TIME_LIMIT = 60.0


@dataclass(frozen=True)
class AuditRequest:
    """A checked request of the audit view."""

    problem: Problem
    grid: Grid
    source: str
    arch: str | None
    method: str
    steps: int
    samples: int
    upload: dict[str, Any] | None
    loader: Any = None


def store_upload(session: Session, name: str, body: bytes) -> dict[str, Any]:
    """Keep an uploaded critic file (bytes) in the session for the next audit.

    Returns
    -------
    dict
        ``{"name", "bytes"}``.

    Raises
    ------
    JobError
        For an empty file.
    """
    if not body:
        raise JobError("the uploaded file is empty (0 bytes), not a saved critic.", "upload")
    clean = "".join(c for c in str(name)[-80:] if c.isprintable() and c not in "/\\") or "file"
    session.state["audit"]["upload"] = {"name": clean, "data": bytes(body)}
    return {"name": clean, "bytes": len(body)}


def _arch(value: Any) -> str | None:
    text = str(value or "auto").strip()
    if text == "auto":
        return None
    if text in ARCHS:
        return text
    parts = text.split(",")
    if not all(p.strip().isdigit() and 0 < int(p) <= 4096 for p in parts) or len(parts) > 8:
        raise JobError(f"arch: use auto, 1d, 2d, toy or hidden widths such as 64,64; got "
                       f"{text!r}.", "arch")
    return ",".join(p.strip() for p in parts)


def parse_audit_request(data: dict[str, Any], state: dict[str, Any], loader: Any = None
                        ) -> AuditRequest:
    """Check the page's audit request.

    Parameters
    ----------
    data : dict
        ``mu``, ``nu``, ``shape``, ``bounds`` (as in the critic view), ``source``
        (``"upload"`` or ``"baseline"``), ``arch``, ``method``, ``steps``, ``samples``.
    state : dict
        The session's audit state (holds the upload).
    loader : callable, optional
        ``loader(path, ndim, arch, allow_torchscript=False)``: the safe loader of critic files
        (``otgrid.cli.audit.load_critic``); needed for ``source="upload"``.

    Returns
    -------
    AuditRequest

    Raises
    ------
    JobError
    """
    if importlib.util.find_spec("torch") is None:
        raise JobError("the audit view needs torch: pip install 'otgrid[torch]'.", "source")
    source = data.get("source") or "baseline"
    if source not in ("upload", "baseline"):
        raise JobError("source: must be upload or baseline.", "source")
    upload = state.get("upload") if source == "upload" else None
    if source == "upload" and upload is None:
        raise JobError("no critic file uploaded in this tab: choose a file first.", "upload")
    if source == "upload" and loader is None:
        raise JobError("this server has no critic loader (start it with 'otgrid explore' to "
                       "audit uploaded files).", "upload")
    method = data.get("method") or "gp"
    if method not in METHODS:
        raise JobError(f"method: must be one of {', '.join(METHODS)}.", "method")
    try:
        steps = int(data.get("steps") or 400)
        samples = int(data.get("samples") or 4096)
    except (TypeError, ValueError):
        raise JobError("steps and samples must be integers.", "steps") from None
    if not (1 <= steps <= MAX_TRAIN_STEPS and 16 <= samples <= 100_000):
        raise JobError(f"steps must be in [1, {MAX_TRAIN_STEPS}], samples in [16, 100000].",
                       "steps")
    try:
        problem = build_problem(data.get("mu"), data.get("nu"))
        grid = make_grid(problem, data.get("shape") or (256 if problem.ndim == 1 else 96),
                         data.get("bounds") or None)
    except ProblemError as exc:
        raise JobError(str(exc), exc.field) from None
    return AuditRequest(problem, grid, source, _arch(data.get("arch")), method, steps, samples,
                        upload, loader)


def _load_upload(req: AuditRequest) -> Any:
    """The uploaded critic through the audit command's safe loader."""
    upload = req.upload
    fd, path = tempfile.mkstemp(suffix=".pt", prefix="otgrid-explore-")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(upload["data"])
        return req.loader(path, req.grid.ndim, req.arch, allow_torchscript=False)
    except Exception as exc:  # the loader's one-line errors (the CLI's usage error)
        message = str(exc).replace(repr(path), repr(upload["name"])).replace(path, upload["name"])
        raise JobError(message.replace("--torchscript", "the command line's --torchscript")
                       .replace("--arch", "an architecture"), "upload") from None
    finally:
        os.unlink(path)


def _baseline(req: AuditRequest, job: Job) -> Any:
    from otgrid.auditing.baselines import train_critic

    job.report(phase=f"training a {req.method} baseline ({req.steps} steps)")
    arch = req.arch if req.arch is not None else None
    if arch is not None and arch not in ARCHS:
        arch = tuple(int(w) for w in arch.split(","))
    with one_torch_thread():
        run = train_critic(req.problem.mu, req.problem.nu, method=req.method, arch=arch,
                           steps=req.steps, seed=0)
    return run.critic


def metric_maps(report: Any) -> Any:
    """Figure of the audit's metric maps: Lipschitz excess ``max(|grad f| - 1, 0)``, the
    cosine between ``grad f`` and ``grad f*`` where the flow moves mass, and the cells where
    the reference gradient is not determined by the grid.

    Parameters
    ----------
    report : AuditReport

    Returns
    -------
    matplotlib.figure.Figure
    """
    from matplotlib.figure import Figure

    from otgrid.auditing.reference import KIND_DETERMINED, KIND_NONE

    grid = report.grid
    g, gs = np.asarray(report.grads), np.asarray(report.optimal_grads)
    gnorm = np.sqrt(np.sum(g ** 2, axis=0))
    with np.errstate(invalid="ignore", divide="ignore"):
        cos = np.where(gnorm > 0, np.sum(g * gs, axis=0) / gnorm, np.nan)
    excess = np.maximum(gnorm - 1.0, 0.0)
    undetermined = ((report.reference_kind != KIND_DETERMINED)
                    & (report.reference_kind != KIND_NONE)).astype(float)
    panels = (("Lipschitz excess max(|grad f| - 1, 0)", excess, "magma", 0.0, None),
              ("cosine(grad f, grad f*) where mass moves", cos, "RdBu", -1.0, 1.0),
              ("reference not determined by the grid", undetermined, "Greys", 0.0, 1.0))
    fig = Figure(figsize=(13.0, 3.8) if grid.ndim == 2 else (13.0, 3.0))
    axes = fig.subplots(1, 3)
    for ax, (title, arr, cmap, lo, hi) in zip(axes, panels, strict=True):
        if grid.ndim == 1:
            ax.plot(grid.centers[0], arr, color="C0" if cmap != "RdBu" else "C3")
            ax.set_xlabel("x")
        else:
            (x0, x1), (y0, y1) = grid.bounds
            im = ax.imshow(np.asarray(arr, dtype=float).T, origin="lower", cmap=cmap,
                           extent=(x0, x1, y0, y1), vmin=lo, vmax=hi, aspect="auto",
                           interpolation="nearest")
            fig.colorbar(im, ax=ax, shrink=0.85)
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return fig


def _png64(fig: Any) -> str:
    import io

    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _table(report: Any) -> list[list[str]]:
    from otgrid.auditing.report import _TABLE

    rows = []
    for key, label, fmt in _TABLE:
        v = float(getattr(report, key))
        if key.startswith("generator") and not math.isfinite(v):
            continue
        rows.append([key, label.strip(), format(v, fmt) if math.isfinite(v) else "n/a"])
    return rows


def audit_job(req: AuditRequest, state: dict[str, Any]) -> Callable[[Job], dict[str, Any] | None]:
    """The computation of one audit request, for a :class:`Job`.

    Returns
    -------
    callable
        ``fn(job) -> dict`` with ``table`` (rows ``[key, label, value]``), ``metrics``
        (:meth:`AuditReport.to_dict`), ``figure`` and ``maps`` (base64 PNG), the critic's
        origin and timings; None when cancelled.
    """
    def run(job: Job) -> dict[str, Any] | None:
        from otgrid.auditing.metrics import audit

        t0 = time.perf_counter()
        if req.source == "upload":
            net = _load_upload(req)
            origin = f"uploaded file {req.upload['name']!r}"
        else:
            net = _baseline(req, job)
            origin = f"baseline trained now: {req.method}, {req.steps} steps"
        if job.cancelled:
            return None
        try:
            mu, nu, _ = discretize(req.problem, req.grid, "renormalize")
        except ProblemError as exc:
            raise JobError(str(exc), exc.field) from None
        job.report(phase="solving the exact critic")

        def callback(info: CheckInfo) -> bool:
            job.report(lower=info.lower, upper=info.upper, iteration=info.iteration)
            return job.cancelled

        exact = solve_critic(mu, nu, req.grid, tol=1e-4, callback=callback,
                             time_limit=_TIME_LIMIT)
        if job.cancelled:
            return None
        job.report(phase="computing the metrics")
        with one_torch_thread():
            rep = audit(net, req.problem.mu, req.problem.nu, req.grid, exact=exact,
                        samples=req.samples, outside="renormalize", seed=0)
        numbers = {**rep.to_dict(), "critic": origin, "mu": req.problem.specs["mu"],
                   "nu": req.problem.specs["nu"]}
        state["export"] = {"report": rep, "numbers": numbers}
        return {"table": _table(rep), "metrics": numbers, "origin": origin,
                "figure": _png64(rep.plot()), "maps": _png64(metric_maps(rep)),
                "seconds": round(time.perf_counter() - t0, 3)}

    return run
