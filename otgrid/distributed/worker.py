"""What runs on the workers: one task solves a batch of problems, or audits one critic.

Every function here is shipped to a Dask worker by :mod:`otgrid.distributed.cluster` and
returns plain picklable objects. No exception escapes a task for a problem's sake: a problem
that fails becomes a :class:`~otgrid.distributed.problems.ProblemError` in its place, so one
bad problem never kills its batch (a batch solve that raises is redone one problem at a time
to find the culprit). What does escape (a worker killed, memory exhausted) is the scheduler's
business: it reruns the task elsewhere.

Threads: several worker processes on one machine each get their share of its cores
(:func:`resolve_threads`); the Numba kernels and BLAS are limited to it for the task.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import time
import warnings
from collections.abc import Iterator
from typing import Any

import numpy as np

from otgrid.distributed.problems import Problem, ProblemError
from otgrid.grid.grid import Grid

__all__ = ["Solved", "audit_one", "exact_solve", "resolve_threads", "solve_batch"]

_BLAS: list[Any] = []  # the threadpoolctl controller of this process, found once

# Dask's nanny starts its workers with MALLOC_TRIM_THRESHOLD_=65536, so that glibc returns freed
# memory to the system at once. Setting it also pins glibc's mmap threshold at 128 kB: every
# array of a solve above that (a 256^2 float32 grid is 256 kB) is then mapped afresh and
# page-faulted in, and NumPy temporaries cost several times more. Measured (2-core machine, a
# batch of three 256^2 problems, tol 1e-4): 2.53 s in a worker against 1.92 s in the client
# process, 1.53 s in the worker once both thresholds were raised to these values; bench
# sweeps of 48 problems ran 0.63x the sequential loop on one worker at 256^2 before. A task
# raises them once per process (glibc on Linux only; nothing else is touched).
MALLOC_TRIM_THRESHOLD = 128 << 20
MALLOC_MMAP_THRESHOLD = 32 << 20
_MALLOC_DONE: list[bool] = []


@dataclasses.dataclass(frozen=True)
class Solved:
    """A problem solved on a worker: its index, the result, the worker's address, the worker
    process's seconds on it (discretisation included) and the warnings it raised (other than
    the ConvergenceWarning, which the result's ``converged`` and ``message`` already say)."""

    index: int
    result: Any
    worker: str
    seconds: float
    warnings: tuple[str, ...] = ()


# --------------------------------------------------------------------------- threads
def _worker_address() -> str | None:
    try:
        from distributed import get_worker

        return get_worker().address
    except (ImportError, ValueError):  # not inside a Dask task
        return None


def resolve_threads(worker_threads: int | str | None, slots_by_host: dict[str, int]
                    ) -> int | None:
    """Numba/BLAS threads for a task on this worker.

    Parameters
    ----------
    worker_threads : int, "auto" or None
        ``"auto"``: the cores of this machine divided by the task slots (worker threads
        summed over the worker processes) that the scheduler lists on its host, at least 1
        (None outside a Dask task); None: leave the process's settings; an int: that many.
    slots_by_host : dict of str to int
        Worker threads per host (:func:`otgrid.distributed.cluster.slots_by_host`).

    Returns
    -------
    int or None
        The threads, or None to leave them.
    """
    if worker_threads is None or isinstance(worker_threads, int):
        return worker_threads
    address = _worker_address()
    if address is None:
        return None
    from distributed import get_worker
    from distributed.comm import get_address_host

    slots = slots_by_host.get(get_address_host(address)) or get_worker().state.nthreads
    from otgrid.distributed.cluster import usable_cores

    return max(1, usable_cores() // max(1, slots))


def relax_malloc_trim() -> bool:
    """Raise glibc's trim and mmap thresholds in a process started with
    ``MALLOC_TRIM_THRESHOLD_`` set (Dask's workers), once per process.

    Returns
    -------
    bool
        Whether the thresholds were set (False: not glibc, not asked for, or already done).
    """
    if _MALLOC_DONE or "MALLOC_TRIM_THRESHOLD_" not in os.environ:
        return False
    _MALLOC_DONE.append(True)
    try:
        libc_version = os.confstr("CS_GNU_LIBC_VERSION") or ""
    except (ValueError, OSError, AttributeError):  # not glibc (macOS, Windows, musl)
        libc_version = ""
    if not libc_version.startswith("glibc"):
        return False
    import ctypes
    import ctypes.util

    try:
        mallopt = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").mallopt
    except (OSError, AttributeError):
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3  # glibc's <malloc.h>
    return bool(mallopt(m_trim_threshold, MALLOC_TRIM_THRESHOLD)
                and mallopt(m_mmap_threshold, MALLOC_MMAP_THRESHOLD))


@contextlib.contextmanager
def task_environment(threads: int | None) -> Iterator[None]:
    """The set-up of every task: :func:`relax_malloc_trim`, then :func:`thread_limit`."""
    relax_malloc_trim()
    with thread_limit(threads):
        yield


@contextlib.contextmanager
def thread_limit(threads: int | None) -> Iterator[None]:
    """Run the inside with ``threads`` Numba threads (thread-local in Numba) and BLAS threads.

    Parameters
    ----------
    threads : int or None
        The limit (capped by ``NUMBA_NUM_THREADS``); None changes nothing.
    """
    if threads is None:
        yield
        return
    import numba

    if not _BLAS:
        try:
            from threadpoolctl import ThreadpoolController
        except ImportError:
            _BLAS.append(None)
        else:
            _BLAS.append(ThreadpoolController())
    before = numba.get_num_threads()
    numba.set_num_threads(max(1, min(threads, numba.config.NUMBA_NUM_THREADS)))
    blas = (contextlib.nullcontext() if _BLAS[0] is None
            else _BLAS[0].limit(limits=threads, user_api="blas"))
    try:
        with blas:
            yield
    finally:
        numba.set_num_threads(before)


# --------------------------------------------------------------------------- solving
def _caught(records: list[warnings.WarningMessage]) -> tuple[str, ...]:
    from otgrid.errors import ConvergenceWarning

    return tuple(f"{w.category.__name__}: {w.message}" for w in records
                 if not issubclass(w.category, ConvergenceWarning))


def _materialize(problems: list[Problem], grid: Grid | None
                 ) -> tuple[dict[Any, list], list[Any]]:
    """Masses of every problem, grouped by (grid, options); failures as error records."""
    groups: dict[Any, list] = {}
    failed: list[Any] = []
    for p in problems:
        if p.error is not None:
            failed.append(p.error)
            continue
        t0 = time.perf_counter()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                mu, nu, g = p.materialize(grid)
            except Exception as exc:  # a bad spec, bad masses, a missing .npy file...
                failed.append(ProblemError.from_exception(p.index, "spec", exc, p.label))
                continue
        item = (p, mu, nu, time.perf_counter() - t0, _caught(caught))
        groups.setdefault((g, p.options), []).append(item)
    return groups, failed


def _solve_group(items: list, grid: Grid, kw: dict[str, Any], address: str) -> list[Any]:
    """Solve problems of one grid and options: together, or one by one if that fails."""
    from otgrid.critic.solve import solve_critic

    if len(items) > 1:
        t0 = time.perf_counter()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                results = solve_critic(np.stack([it[1] for it in items]),
                                       np.stack([it[2] for it in items]), grid, **kw)
            except Exception:  # some problem is bad: find it below, one by one
                results = None
        if results is not None:
            share = (time.perf_counter() - t0) / len(items)
            common = _caught(caught)
            return [Solved(p.index, r, address, prep + share, w + common)
                    for (p, _, _, prep, w), r in zip(items, results, strict=True)]
    out: list[Any] = []
    for p, mu, nu, prep, w in items:
        t0 = time.perf_counter()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                r = solve_critic(mu, nu, grid, **kw)
            except Exception as exc:
                out.append(ProblemError.from_exception(p.index, "solve", exc, p.label))
                continue
        out.append(Solved(p.index, r, address, prep + time.perf_counter() - t0,
                          w + _caught(caught)))
    return out


def solve_batch(problems: list[Problem], grid: Grid | None, solve_kw: dict[str, Any],
                worker_threads: int | str | None, slots_by_host: dict[str, int]) -> list[Any]:
    """Task: discretise and solve a batch of problems.

    Problems of one grid and options are solved by one batched :func:`otgrid.solve_critic`
    call (one by one when that raises, so that a bad problem fails alone).

    Parameters
    ----------
    problems : list of Problem
        The batch.
    grid : Grid or None
        The sweep's grid (a problem's own bounds and shape override it).
    solve_kw : dict
        Options of :func:`otgrid.solve_critic` (a problem's own override them).
    worker_threads, slots_by_host
        As for :func:`resolve_threads`.

    Returns
    -------
    list of Solved or ProblemError
        One per problem, sorted by index.
    """
    address = _worker_address() or "local"
    with task_environment(resolve_threads(worker_threads, slots_by_host)):
        groups, out = _materialize(problems, grid)
        for (g, options), items in groups.items():
            out += _solve_group(items, g, {**solve_kw, **dict(options)}, address)
    return sorted(out, key=lambda o: o.index)


# --------------------------------------------------------------------------- auditing
def exact_solve(mu: Any, nu: Any, grid: Grid, tol: float, max_iter: int, outside: str,
                worker_threads: int | str | None, slots_by_host: dict[str, int]) -> Any:
    """Task: the exact critic of ``mu`` and ``nu`` on ``grid`` (shared by every audit).

    Parameters
    ----------
    mu, nu : Distribution or ndarray
        The measures (distributions are discretised with ``outside``).
    grid : Grid
    tol, max_iter : float, int
        Options of :func:`otgrid.solve_critic`.
    outside : str
        Mass outside the grid, as in :meth:`otgrid.Grid.discretize`.
    worker_threads, slots_by_host
        As for :func:`resolve_threads`.

    Returns
    -------
    CriticResult
    """
    from otgrid.critic.solve import solve_critic
    from otgrid.distributed.problems import _masses

    with task_environment(resolve_threads(worker_threads, slots_by_host)):
        return solve_critic(_masses(mu, grid, outside, "mu"), _masses(nu, grid, outside, "nu"),
                            grid, tol=tol, max_iter=max_iter)


def audit_one(index: int, critic: Any, mu: Any, nu: Any, grid: Grid, exact: Any,
              arch: Any, audit_kw: dict[str, Any], worker_threads: int | str | None,
              slots_by_host: dict[str, int]) -> Any:
    """Task: load one critic (a state-dict file is read here, on the worker) and audit it
    against the shared exact solve.

    Parameters
    ----------
    index : int
        The critic's position in the input.
    critic : callable, torch.nn.Module, str or path-like
        The critic, or the path of a state-dict file
        (:func:`otgrid.distributed.critics.load_state_dict_critic`).
    mu, nu, grid, exact
        As for :func:`otgrid.audit` (``exact`` the shared solve).
    arch : optional
        Hidden widths of a state-dict file; default: read from the weights.
    audit_kw : dict
        Other options of :func:`otgrid.audit`.
    worker_threads, slots_by_host
        As for :func:`resolve_threads`.

    Returns
    -------
    AuditReport or ProblemError
        The report, or the error record of a critic that could not be loaded (stage
        ``"critic"``) or audited (``"audit"``).
    """
    from otgrid.auditing.metrics import audit
    from otgrid.distributed.critics import load_state_dict_critic

    label = str(critic) if isinstance(critic, (str, os.PathLike)) else None
    with task_environment(resolve_threads(worker_threads, slots_by_host)):
        if label is not None:
            try:
                critic = load_state_dict_critic(critic, grid.ndim, arch)
            except Exception as exc:
                return ProblemError.from_exception(index, "critic", exc, label)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return audit(critic, mu, nu, grid, exact=exact, **audit_kw)
        except Exception as exc:
            return ProblemError.from_exception(index, "audit", exc, label)
