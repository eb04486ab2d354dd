"""The public calls: :func:`solve_many`, :func:`sweep` (to a folder, resumable) and
:func:`audit_many`."""

from __future__ import annotations

import dataclasses
import inspect
import math
import os
import time
import uuid
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

import numpy as np

from otgrid.distributed import cluster
from otgrid.distributed.problems import Problem, ProblemError, as_problems
from otgrid.distributed.store import SweepStore, read_records, result_record
from otgrid.distributed.worker import Solved, audit_one, exact_solve, solve_batch
from otgrid.errors import ConvergenceWarning
from otgrid.grid.grid import Grid

__all__ = ["SweepSummary", "audit_many", "solve_many", "sweep"]

WorkerThreads = int | Literal["auto"] | None
_NOT_SOLVE_KW = ("mu", "nu", "grid", "warm_start", "interrupt")


# --------------------------------------------------------------------------- checks
def _check_common(grid: Any, batch_size: Any, retries: Any, worker_threads: Any) -> None:
    if grid is not None and not isinstance(grid, Grid):
        raise TypeError(f"grid must be an otgrid.Grid or None; got {type(grid).__name__}.")
    if batch_size != "auto" and (isinstance(batch_size, bool) or not isinstance(batch_size, int)
                                 or batch_size < 1):
        raise ValueError(f"batch_size must be 'auto' or a positive integer; got {batch_size!r}.")
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise ValueError(f"retries must be an integer >= 0; got {retries!r}.")
    if worker_threads not in (None, "auto") and (
            isinstance(worker_threads, bool) or not isinstance(worker_threads, int)
            or worker_threads < 1):
        raise ValueError(f"worker_threads must be 'auto', None or a positive integer; got "
                         f"{worker_threads!r}.")


def _check_solve_kw(solve_kw: dict[str, Any]) -> dict[str, Any]:
    """The solver options, checked on the client (a typo fails at once, not once per
    problem on the workers)."""
    from otgrid.critic.solve import NORMS, solve_critic

    allowed = [p for p in inspect.signature(solve_critic).parameters if p not in _NOT_SOLVE_KW]
    for key in solve_kw:
        if key not in allowed:
            raise TypeError(f"unknown solver option {key!r}; the options of solve_critic that "
                            f"a sweep passes on are {', '.join(allowed)}.")
    if "norm" in solve_kw and solve_kw["norm"] not in NORMS:
        raise ValueError(f"norm must be one of {', '.join(map(repr, NORMS))}; got "
                         f"{solve_kw['norm']!r}.")
    tol = solve_kw.get("tol", 1e-6)
    if isinstance(tol, bool) or not isinstance(tol, (int, float)) or not (
            math.isfinite(tol) and 0 < tol < 1):
        raise ValueError(f"tol must be a relative gap in (0, 1), e.g. 1e-6; got {tol!r}.")
    if "dtype" in solve_kw and np.dtype(solve_kw["dtype"]) not in (np.float32, np.float64):
        raise ValueError(f"dtype must be numpy.float64 or numpy.float32; got "
                         f"{solve_kw['dtype']!r}.")
    return dict(solve_kw)


def _cells(problems: list[Problem], grid: Grid | None) -> int:
    """Cells of a typical problem (for the batch size): the first that says, else 128^2."""
    for p in problems:
        if p.shape is not None:
            nd = len(p.bounds) if p.bounds is not None and len(p.bounds) > 1 else (
                grid.ndim if grid is not None else 2)
            return math.prod(p.shape) if len(p.shape) > 1 else p.shape[0] ** nd
        for side in (p.mu, p.nu):
            if isinstance(side, np.ndarray):
                return side.size
    return grid.size if grid is not None else 128 * 128


def _batches(todo: list[Problem], size: int) -> list[list[Problem]]:
    return [todo[i:i + size] for i in range(0, len(todo), size)]


def _plan(client: Any, todo: list[Problem], grid: Grid | None,
          batch_size: int | str) -> tuple[list[list[Problem]], dict[str, int]]:
    slots = cluster.slots_by_host(client)
    if batch_size == "auto":
        batch_size = cluster.auto_batch_size(len(todo), _cells(todo, grid),
                                             sum(slots.values()) or 1)
    return _batches(todo, int(batch_size)), slots


def _lost(batch: list[Problem], exc: BaseException) -> list[ProblemError]:
    """Error records for a batch whose task failed (its workers died too often, or a task
    that raised past the retries)."""
    return [ProblemError.from_exception(p.index, "cluster", exc, p.label) for p in batch]


def _warn_unconverged(bad: list[int], total: int) -> None:
    """One ConvergenceWarning naming the problems (indices ``bad``) that did not reach tol."""
    if bad:
        shown = ", ".join(map(str, bad[:10])) + (", ..." if len(bad) > 10 else "")
        warnings.warn(f"{len(bad)} of {total} problems did not reach tol (problems "
                      f"{shown}); their bounds hold. Increase max_iter or loosen tol.",
                      ConvergenceWarning, stacklevel=3)


def _warn_failed(errors: list[ProblemError]) -> None:
    if errors:
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        warnings.warn(f"{len(errors)} problem(s) failed; their places hold ProblemError "
                      f"records. First: {errors[0]}{more}", RuntimeWarning, stacklevel=3)


# --------------------------------------------------------------------------- solve_many
def solve_many(
    problems: Iterable[Any],
    grid: Grid | None,
    *,
    client: Any = None,
    batch_size: int | Literal["auto"] = "auto",
    workers: int | None = None,
    retries: int = 2,
    worker_threads: WorkerThreads = "auto",
    progress: bool | None = None,
    errors: Literal["record", "raise"] = "record",
    **solve_kw: Any,
) -> list[Any]:
    """Solve many problems on a Dask cluster; results in input order.

    Each problem is solved by :func:`otgrid.solve_critic`; problems are grouped into batches
    (masses with a leading batch axis), one task per batch.

    Parameters
    ----------
    problems : iterable
        Pairs ``(mu, nu)`` whose sides are arrays of cell masses on ``grid``, otgrid
        distributions or distribution spec strings (:mod:`otgrid.grid.spec`), or
        :class:`~otgrid.distributed.ProblemSpec` objects (or dicts in their schema).
        Distributions and specs are discretised on the workers, so that no grid array crosses
        the network; arrays travel with the tasks.
    grid : Grid or None
        The grid of the problems. A :class:`ProblemSpec` may give its own ``bounds`` and
        ``shape``; None is allowed when every problem is distributions or specs (default
        bounds hold both distributions, default shape 512 in 1D, 128 x 128 in 2D).
    client : distributed.Client, Cluster, str or None, optional
        Where to run: a client, a cluster object, a scheduler address
        (``"tcp://host:8786"``), or None: the current default Dask client if there is one,
        else a ``LocalCluster`` started for this call, one single-threaded worker process per
        core (``workers`` to choose), closed at the end.
    batch_size : int or "auto", optional
        Problems per task. ``"auto"``: as many as keep a batch's cells (grid cells x batch)
        below 2**18, where the Numba solver stays on one thread, and at most a quarter of
        the problems per worker thread (and 64).
    workers : int, optional
        Worker processes of the ``LocalCluster`` started for ``client=None``.
    retries : int, optional
        Dask retries of a task that raised on a worker (a problem's own errors never raise:
        they become records). A task whose worker died is rerun by the scheduler anyway, up
        to its ``distributed.scheduler.allowed-failures`` (3 by default).
    worker_threads : int, "auto" or None, optional
        Numba and BLAS threads of each task. ``"auto"``: the cores of the worker's machine
        divided by the worker threads of all the workers on it (1 for a ``LocalCluster`` of
        one process per core), so that worker processes sharing a machine do not
        oversubscribe it; None: leave the worker's settings.
    progress : bool, optional
        A progress line on standard error; default: when standard error is a terminal.
    errors : {"record", "raise"}, optional
        A problem that fails (a bad spec, masses of unequal totals, a task lost with its
        workers): ``"record"`` puts a :class:`~otgrid.distributed.ProblemError` in its place
        (and warns once with the count); ``"raise"`` raises a RuntimeError after the sweep.
    **solve_kw
        Options of :func:`otgrid.solve_critic` (``tol``, ``max_iter``, ``norm``, ``backend``,
        ``dtype``, ``time_limit``, ...). ``backend="auto"`` (the default) runs on the GPU of a
        worker that has a usable one (problems of 65 536 cells or more), so that a mixed
        cluster works.

    Returns
    -------
    list of CriticResult or ProblemError
        One per problem, in input order.

    Examples
    --------
    >>> import otgrid as og
    >>> from otgrid.distributed import solve_many
    >>> grid = og.Grid((-6.0, 8.0), 256)
    >>> pairs = [("normal(0, 1)", f"normal({s}, 1)") for s in (0.5, 1.0, 2.0)]
    >>> results = solve_many(pairs, grid, workers=1, tol=1e-8)  # doctest: +SKIP
    >>> [round(r.w1, 6) for r in results]                       # doctest: +SKIP
    [0.5, 1.0, 2.0]
    """
    from otgrid._validation import check_choice

    _check_common(grid, batch_size, retries, worker_threads)
    check_choice(errors, "errors", ("record", "raise"))
    solve_kw = _check_solve_kw(solve_kw)
    items = as_problems(problems, grid, solve_kw)
    results: list[Any] = [p.error for p in items]
    todo = [p for p in items if p.error is None]
    bar = cluster.Progress(len(items), progress)
    bar.update(len(items) - len(todo), len(items) - len(todo))

    def on_done(i: int, value: Any, exc: BaseException | None) -> None:
        outs = _lost(batches[i], exc) if exc is not None else value
        for o in outs:
            results[o.index] = o.result if isinstance(o, Solved) else o
        bar.update(len(outs), sum(isinstance(o, ProblemError) for o in outs))

    try:
        if todo:
            with cluster.connect(client, workers) as c:
                batches, slots = _plan(c, todo, grid, batch_size)
                cluster.run_tasks(c, solve_batch, batches,
                                  (grid, solve_kw, worker_threads, slots), on_done,
                                  retries=retries, name="otgrid-solve")
    finally:
        bar.close()
    failed = [r for r in results if isinstance(r, ProblemError)]
    if failed and errors == "raise":
        raise RuntimeError(f"{len(failed)} of {len(results)} problems failed; first: "
                           f"{failed[0]}")
    _warn_failed(failed)
    _warn_unconverged([i for i, r in enumerate(results)
                       if not isinstance(r, ProblemError) and not r.converged], len(results))
    return results


# --------------------------------------------------------------------------- sweep
@dataclasses.dataclass(frozen=True)
class SweepSummary:
    """What a :func:`sweep` run did.

    Attributes
    ----------
    out : Path
        The results folder.
    total : int
        Problems in the sweep.
    done_before : int
        Problems that already had a record (skipped; a resumed sweep).
    solved : int
        Problems solved by this run.
    failed : int
        Problems of this run recorded as errors.
    remaining : int
        Problems without a record after this run (stopped by ``limit`` or Ctrl-C): rerun the
        same sweep to finish.
    seconds : float
        Wall time of the run.
    run : str
        The id of this run, stored in its records.
    """

    out: Path
    total: int
    done_before: int
    solved: int
    failed: int
    remaining: int
    seconds: float
    run: str

    @property
    def complete(self) -> bool:
        """Whether every problem has a record."""
        return self.remaining == 0

    def records(self) -> list[dict[str, Any]]:
        """The records of the folder (:func:`otgrid.distributed.read_records`)."""
        return read_records(self.out)


def _error_record(e: ProblemError, p: Problem, run: str) -> dict[str, Any]:
    return {"index": e.index, **p.describe(), "id": p.label or e.label, "key": p.key,
            "status": "error", "stage": e.stage, "error": e.error, "message": e.message,
            "run": run}


def _to_run(items: list[Problem], store: SweepStore, retry_errors: bool) -> list[Problem]:
    """The problems without a usable record. A record of other problems (another key) in
    the folder is an error, except an error record (its problem may have been fixed)."""
    todo = []
    for p in items:
        rec = store.done.get(p.index)
        if rec is None:
            todo.append(p)
        elif rec.get("status") == "error":
            if rec.get("key") != p.key or retry_errors or rec.get("stage") == "cluster":
                todo.append(p)
        elif rec.get("key") != p.key:
            raise ValueError(f"out {str(store.out)!r} holds the result of another problem "
                             f"{p.index} (other specs, grid or solver options); use a new "
                             "folder for a new sweep, or remove this one.")
    return todo


def sweep(
    problems: Iterable[Any],
    out: str | os.PathLike,
    grid: Grid | None = None,
    *,
    client: Any = None,
    batch_size: int | Literal["auto"] = "auto",
    workers: int | None = None,
    retries: int = 2,
    worker_threads: WorkerThreads = "auto",
    progress: bool | None = None,
    limit: int | None = None,
    save_flow: bool = False,
    retry_errors: bool = False,
    **solve_kw: Any,
) -> SweepSummary:
    """Solve many problems on a Dask cluster, streaming the results to a folder; resumable.

    Like :func:`solve_many`, but every finished problem is written at once to ``out``
    (``results.jsonl``, one JSON record per problem, and ``critics/NNNNNN.npz``; format in
    :mod:`otgrid.distributed.store`), so that a crash or Ctrl-C loses nothing that finished,
    and running the same sweep again solves only the problems without a record.

    Parameters
    ----------
    problems : iterable
        As for :func:`solve_many`; also the output of :func:`read_problems` (whose
        :class:`ProblemError` items, malformed lines, are recorded as they are). Problem
        ``i`` is the ``i``-th item: a resumed sweep must list the same problems in the same
        order (each record keeps a fingerprint of its problem, grid and solver options, and
        a mismatch with a solved record raises ValueError).
    out : str or path-like
        The results folder (created if needed).
    grid : Grid, optional
        As for :func:`solve_many`.
    client, batch_size, workers, retries, worker_threads, progress
        As for :func:`solve_many`.
    limit : int, optional
        Stop after this many problems were recorded by this run (the tasks left are
        cancelled); a later run goes on from there.
    save_flow : bool, optional
        Also save each optimal flow (``"flow"`` in the ``.npz``; ``ndim`` times the critic's
        size).
    retry_errors : bool, optional
        Solve again the problems recorded as errors (by default only those of stage
        ``"cluster"`` are).
    **solve_kw
        Options of :func:`otgrid.solve_critic`.

    Returns
    -------
    SweepSummary

    Raises
    ------
    KeyboardInterrupt
        On Ctrl-C, after cancelling the tasks left; every finished problem is on disk.

    Examples
    --------
    >>> from otgrid.distributed import read_records, sweep
    >>> pairs = [("normal(0, 1)", "normal(1, 1)")]
    >>> summary = sweep(pairs, "sweep_out", workers=1)   # doctest: +SKIP
    >>> read_records("sweep_out")[0]["w1"]                 # doctest: +SKIP
    """
    _check_common(grid, batch_size, retries, worker_threads)
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ValueError(f"limit must be a positive integer or None; got {limit!r}.")
    solve_kw = _check_solve_kw(solve_kw)
    items = as_problems(problems, grid, solve_kw)
    run, t0 = uuid.uuid4().hex[:12], time.perf_counter()
    store = SweepStore(out, save_flow=save_flow)
    with store.opened():
        todo = _to_run(items, store, retry_errors)
        done_before = len(items) - len(todo)
        counts = _record_run(store, items, todo, grid, run, limit, client, workers,
                             batch_size, retries, worker_threads, progress, solve_kw)
    remaining = sum(1 for p in items if p.index not in store.done)
    mine = [r for r in store.done.values() if r.get("run") == run and r["status"] == "ok"]
    _warn_unconverged(sorted(r["index"] for r in mine if not r["converged"]), len(mine))
    return SweepSummary(Path(out), len(items), done_before, counts[0], counts[1], remaining,
                        time.perf_counter() - t0, run)


def _record_run(store: SweepStore, items: list[Problem], todo: list[Problem],
                grid: Grid | None, run: str, limit: int | None, client: Any,
                workers: int | None, batch_size: Any, retries: int, worker_threads: Any,
                progress: bool | None, solve_kw: dict[str, Any]) -> tuple[int, int]:
    """Record the problems of ``todo`` as they finish; ``(solved, failed)`` by this run."""
    by_index = {p.index: p for p in items}
    counts = [0, 0]
    bar = cluster.Progress(len(todo), progress)

    def record(o: Any) -> None:
        p = by_index[o.index]
        if isinstance(o, ProblemError):
            store.write(_error_record(o, p, run))
            counts[1] += 1
            return
        arrays = {"critic": np.asarray(o.result.critic)}
        if store.save_flow:
            arrays["flow"] = np.asarray(o.result.flow)
        store.write({"index": o.index, **p.describe(), "key": p.key, "status": "ok",
                     **result_record(o.result), "seconds": o.seconds, "worker": o.worker,
                     "warnings": list(o.warnings), "run": run}, arrays)
        counts[0] += 1

    def on_done(i: int, value: Any, exc: BaseException | None) -> bool:
        outs = _lost(batches[i], exc) if exc is not None else value
        for o in outs:
            record(o)
        bar.update(len(outs), sum(isinstance(o, ProblemError) for o in outs))
        return limit is not None and sum(counts) >= limit

    try:
        pending = [p for p in todo if p.error is None]
        for p in todo:
            if p.error is not None and not (limit is not None and sum(counts) >= limit):
                record(p.error)
                bar.update(1, 1)
        if pending and not (limit is not None and sum(counts) >= limit):
            with cluster.connect(client, workers) as c:
                batches, slots = _plan(c, pending, grid, batch_size)
                cluster.run_tasks(c, solve_batch, batches,
                                  (grid, solve_kw, worker_threads, slots), on_done,
                                  retries=retries, name="otgrid-sweep")
    finally:
        bar.close()
    return counts[0], counts[1]


# --------------------------------------------------------------------------- audit_many
def _audit_measure(x: Any, grid: Grid, name: str) -> Any:
    """A spec string parsed (on the client: it is small), anything else as it is."""
    if isinstance(x, str):
        from otgrid.grid.spec import parse_distribution

        try:
            return parse_distribution(x, ndim=grid.ndim)
        except ValueError as exc:
            raise ValueError(f"{name}: {exc}") from None
    return x


def audit_many(
    critics: Iterable[Any],
    mu: Any,
    nu: Any,
    grid: Grid,
    *,
    client: Any = None,
    workers: int | None = None,
    exact: Any = None,
    tol: float = 1e-4,
    max_iter: int = 100_000,
    outside: Literal["auto", "renormalize", "fold", "raise"] = "auto",
    arch: Any = None,
    retries: int = 2,
    worker_threads: WorkerThreads = "auto",
    progress: bool | None = None,
    **audit_kw: Any,
) -> list[Any]:
    """Audit many critics against one exact critic, on a Dask cluster; reports in input order.

    The exact critic of ``mu`` and ``nu`` is solved once (on a worker, or given as
    ``exact``) and shared with every audit task; each critic is then audited by
    :func:`otgrid.audit` with ``exact=`` that solve.

    Parameters
    ----------
    critics : iterable
        ``torch.nn.Module`` objects, NumPy callables ``(n, d) -> (n,)`` (sent to the workers
        with cloudpickle), or paths of state-dict files (``torch.save(net.state_dict(),
        path)`` of a :func:`otgrid.auditing.baselines.make_critic` network), each loaded on
        its worker with ``torch.load(path, weights_only=True)`` as ``otgrid audit`` does
        (:func:`otgrid.distributed.critics.load_state_dict_critic`). Paths must be readable
        on the workers. TorchScript files are not loaded (they run code).
    mu, nu : Distribution, spec string or array_like
        As for :func:`otgrid.audit` (a spec string is parsed here, in ``grid``'s dimension).
    grid : Grid
    client, workers, retries, worker_threads, progress
        As for :func:`solve_many`.
    exact : CriticResult, optional
        A solve of ``mu``, ``nu`` on ``grid`` to reuse (scattered to the workers once).
    tol, max_iter : optional
        Options of the exact solve (and of the audit).
    outside : {"auto", "renormalize", "fold", "raise"}, optional
        Mass outside the grid, as in :func:`otgrid.audit`.
    arch : optional
        Hidden widths of the state-dict files; default: read from the weights.
    **audit_kw
        Other options of :func:`otgrid.audit` (``samples``, ``tau``, ``seed``, ...).

    Returns
    -------
    list of AuditReport or ProblemError
        One per critic: a critic that cannot be loaded (stage ``"critic"``) or audited
        (``"audit"``) gets an error record.

    Raises
    ------
    ValueError
        When the exact solve of ``mu`` and ``nu`` fails (every audit needs it).
    """
    if not isinstance(grid, Grid):
        raise TypeError(f"grid must be an otgrid.Grid; got {type(grid).__name__}.")
    _check_common(grid, 1, retries, worker_threads)
    mu, nu = _audit_measure(mu, grid, "mu"), _audit_measure(nu, grid, "nu")
    items = list(critics)
    reports: list[Any] = [None] * len(items)
    bar = cluster.Progress(len(items), progress, what="critics")
    kw = {**audit_kw, "tol": tol, "max_iter": max_iter, "outside": outside}
    try:
        with cluster.connect(client, workers) as c:
            slots = cluster.slots_by_host(c)
            mu_f, nu_f = c.scatter([mu, nu], broadcast=True)
            if exact is None:
                exact_f = c.submit(exact_solve, mu_f, nu_f, grid, tol, max_iter, outside,
                                   worker_threads, slots, pure=False, retries=retries)
                try:
                    exact_f.result()
                except (ValueError, TypeError) as exc:
                    raise ValueError(f"the exact solve of mu and nu failed: {exc}") from None
            else:
                exact_f = c.scatter(exact, broadcast=True)

            def on_done(i: int, value: Any, exc: BaseException | None) -> None:
                reports[i] = (ProblemError.from_exception(i, "cluster", exc)
                              if exc is not None else value)
                bar.update(1, int(isinstance(reports[i], ProblemError)))

            tasks = [(i, critic) for i, critic in enumerate(items)]
            cluster.run_tasks(c, _audit_task, tasks,
                              (mu_f, nu_f, grid, exact_f, arch, kw, worker_threads, slots),
                              on_done, retries=retries, name="otgrid-audit")
    finally:
        bar.close()
    _warn_failed([r for r in reports if isinstance(r, ProblemError)])
    return reports


def _audit_task(task: tuple[int, Any], *args: Any) -> Any:
    """Task: one ``(index, critic)`` through :func:`otgrid.distributed.worker.audit_one`."""
    index, critic = task
    return audit_one(index, critic, *args)
