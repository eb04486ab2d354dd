"""The Dask side: which client to use, how to size batches, and the loop over finished tasks.

:func:`connect` opens the client of a call (an embedded ``LocalCluster`` by default, or a
scheduler address, or the user's client), :func:`run_tasks` submits the tasks, hands each
finished one to a callback in completion order (with a progress line) and cancels what is
left on Ctrl-C or when the callback asks to stop.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

__all__ = ["Progress", "auto_batch_size", "connect", "run_tasks", "slots_by_host", "usable_cores"]

# Tasks per worker thread that "auto" batching aims for, so that the last tasks balance out.
TASKS_PER_SLOT = 4
MAX_AUTO_BATCH = 64
_INSTALL = "pip install 'otgrid[dask]'"


def _import_distributed() -> Any:
    try:
        import distributed
    except ImportError:
        raise ImportError(f"otgrid.distributed needs Dask's distributed scheduler: {_INSTALL}."
                          ) from None
    return distributed


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity where the system says)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


WORKERS_PER_CORE = 4  # the most worker processes of a LocalCluster, per usable core


def max_local_workers() -> int:
    """The most worker processes a ``LocalCluster`` may start here: ``WORKERS_PER_CORE`` per
    usable core. More would only compete for the cores (each worker is a Python process with
    its own memory); a request such as ``workers=100000`` would hang while they start."""
    return WORKERS_PER_CORE * usable_cores()


def _local_cluster(distributed: Any, workers: int | None) -> Any:
    """A ``LocalCluster`` of single-threaded worker processes whose Ctrl-C is this process's.

    The worker processes are started with SIGINT ignored (they inherit it), so that Ctrl-C in a
    terminal, which signals the whole process group, interrupts the sweep here (which cancels
    the tasks and closes the cluster in order) instead of killing every worker mid-task. Its
    processes log errors only (a warning such as "still alive after 4 s, killing" when it is
    closed in the middle of a task says nothing a sweep's user can act on).
    """
    n = workers if workers is not None else usable_cores()
    with _sigint_ignored():
        return distributed.LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                                        dashboard_address=":0", silence_logs=logging.ERROR)


@contextlib.contextmanager
def _sigint_ignored() -> Iterator[None]:
    """Ignore SIGINT inside (main thread only: elsewhere signals cannot be changed)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    before = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:  # None: a handler not set from Python; Python's own is the closest
        signal.signal(signal.SIGINT, signal.default_int_handler if before is None else before)


@contextlib.contextmanager
def connect(client: Any = None, workers: int | None = None,
            timeout: float = 30.0) -> Iterator[Any]:
    """The ``distributed.Client`` of one call; what it opened is closed at the end.

    Parameters
    ----------
    client : distributed.Client, Cluster, str or None
        A client (used as it is), a cluster object (e.g. ``LocalCluster``, a dask-jobqueue
        cluster; a client is opened on it), a scheduler address such as
        ``"tcp://10.0.0.5:8786"``, or None: the current default client when there is one,
        else a new ``LocalCluster`` of ``workers`` processes (default: one per core) of one
        thread each.
    workers : int, optional
        Worker processes of the ``LocalCluster`` started for ``client=None``: at most
        :func:`max_local_workers` (4 per usable core).
    timeout : float
        Seconds to wait for a scheduler address to answer.

    Yields
    ------
    distributed.Client

    Raises
    ------
    ConnectionError
        When a scheduler address does not answer.
    ImportError
        Without ``distributed`` (the ``dask`` extra).
    """
    distributed = _import_distributed()
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int)
                                or workers < 1):
        raise ValueError(f"workers must be a positive integer (worker processes); got "
                         f"{workers!r}.")
    if workers is not None and workers > max_local_workers():
        raise ValueError(f"workers={workers} is more than this machine can run: at most "
                         f"{max_local_workers()} ({WORKERS_PER_CORE} per core, {usable_cores()} "
                         "cores here); for more, give the client of a cluster on several "
                         "machines.")
    if workers is not None and client is not None:
        raise ValueError("workers= sizes the LocalCluster started for client=None; with a "
                         "client, cluster or scheduler address, size the cluster there.")
    if client is None and workers is None:
        client = _default_client(distributed)
    if isinstance(client, distributed.Client):
        yield client
        return
    with contextlib.ExitStack() as stack:
        own = client is None
        if own:
            # runs last, after the cluster has closed: this process's log level as it was
            stack.callback(logging.getLogger("distributed").setLevel,
                           logging.getLogger("distributed").level)
            client = stack.enter_context(_local_cluster(distributed, workers))
        elif isinstance(client, os.PathLike):
            client = os.fspath(client)
        if isinstance(client, str):
            opened = _open_address(distributed, client, timeout)
        elif isinstance(client, distributed.deploy.Cluster):
            opened = distributed.Client(client)
        else:
            raise TypeError(f"client must be a distributed.Client, a Dask cluster, a scheduler "
                            f"address or None; got {type(client).__name__}.")
        stack.enter_context(opened)
        if own:
            stack.callback(_quiet_shutdown, opened)  # runs first, before the client closes
        yield opened


def _silence_distributed_logs() -> None:
    """Only critical messages from Dask's loggers in this process (run on workers too)."""
    logging.getLogger("distributed").setLevel(logging.CRITICAL)


def _quiet_shutdown(client: Any) -> None:
    """Before the ``LocalCluster`` started by :func:`connect` closes: its worker processes and
    this process's Dask loggers report nothing more (restored here once it has closed).

    Closing a cluster can race a worker's heartbeat against the scheduler's shutdown; the
    worker then logs "Failed to communicate with scheduler during heartbeat" at ERROR level
    with a traceback (dask/distributed#7192), on the standard error of a sweep that succeeded.
    Errors of the sweep itself reach the client as exceptions before this point.
    """
    with contextlib.suppress(Exception):  # a worker already gone cannot run it: nothing to say
        client.run(_silence_distributed_logs)
    _silence_distributed_logs()


def _default_client(distributed: Any) -> Any:
    """The current default client, or None."""
    try:
        return distributed.default_client()
    except ValueError:
        return None


def _open_address(distributed: Any, address: str, timeout: float) -> Any:
    """A client on the scheduler at ``address``; a ConnectionError that says so otherwise."""
    if "://" not in address and ":" not in address:
        raise ValueError(f"client {address!r} is not a scheduler address; give one such as "
                         "'tcp://10.0.0.5:8786'.")
    try:
        _probe(address, timeout)
        return distributed.Client(address, timeout=timeout)
    except (OSError, TimeoutError, ValueError) as exc:
        detail = str(exc).strip().splitlines()
        raise ConnectionError(f"cannot reach the Dask scheduler at {address!r} "
                              f"({type(exc).__name__}{': ' + detail[0] if detail else ''}); "
                              "check the address and that the scheduler runs.") from None


def _probe(address: str, timeout: float) -> None:
    """Open and close a TCP connection to a ``tcp://host:port`` address, so that a refused
    connection or an unknown host fails at once (Dask's client retries until its timeout);
    other protocols are left to Dask."""
    scheme, _, rest = address.rpartition("://")
    if scheme not in ("", "tcp"):
        return
    host, _, port = rest.rpartition(":")
    if not host or not port.isdigit():
        return
    with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
        pass


def slots_by_host(client: Any) -> dict[str, int]:
    """Worker threads summed per host, from the scheduler's list of workers.

    Parameters
    ----------
    client : distributed.Client

    Returns
    -------
    dict of str to int
        Host name or address to the worker threads on it.
    """
    out: dict[str, int] = {}
    try:
        listing = client.scheduler_info(n_workers=-1)  # recent versions list 5 by default
    except TypeError:  # older distributed: always all of them
        listing = client.scheduler_info()
    for info in listing["workers"].values():
        out[info["host"]] = out.get(info["host"], 0) + int(info.get("nthreads", 1))
    return out


def auto_batch_size(n_problems: int, cells: int, slots: int) -> int:
    """Problems per task for ``batch_size="auto"``.

    As many as keep ``batch x cells`` below the size at which the Numba backend goes
    multi-threaded (:data:`otgrid.critic.backend_numba.PARALLEL_MIN_CELLS`), so that every solve
    of a task runs on the one core its worker was given, and no more than leave
    :data:`TASKS_PER_SLOT` tasks per worker thread (load balance), nor 64.

    Parameters
    ----------
    n_problems : int
        Problems of the sweep.
    cells : int
        Cells of one problem's grid.
    slots : int
        Worker threads of the cluster.

    Returns
    -------
    int
        Problems per task, at least 1.
    """
    from otgrid.critic.backend_numba import PARALLEL_MIN_CELLS

    serial = max(1, (PARALLEL_MIN_CELLS - 1) // max(1, cells))
    balance = max(1, math.ceil(n_problems / (TASKS_PER_SLOT * max(1, slots))))
    return max(1, min(serial, balance, MAX_AUTO_BATCH))


class Progress:
    """A progress report on standard error, as ``otgrid sco`` prints one: a line redrawn in
    place (at most 5 times a second) on a terminal, a new line every 10 s otherwise.

    Parameters
    ----------
    total : int
        Items to do.
    enabled : bool or None
        Whether to report; None: when standard error is a terminal.
    what : str
        The items' name in the report.
    """

    def __init__(self, total: int, enabled: bool | None, what: str = "problems") -> None:
        self.stream = sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.enabled = self.tty if enabled is None else bool(enabled)
        self.every = 0.2 if self.tty else 10.0
        self.total, self.what = total, what
        self.done = self.errors = 0
        self.t0 = time.perf_counter()
        self._last = -math.inf
        self._width = 0

    def update(self, done: int, errors: int) -> None:
        """Count ``done`` more items, ``errors`` of them failed, and report if it is time."""
        self.done += done
        self.errors += errors
        now = time.perf_counter()
        if self.enabled and (now - self._last >= self.every or self.done == self.total):
            self._last = now
            self._draw(now - self.t0)

    def _draw(self, elapsed: float) -> None:
        frac = self.done / self.total if self.total else 1.0
        rate = self.done / elapsed if elapsed > 0 else 0.0
        eta = f", ETA {(self.total - self.done) / rate:.0f} s" if 0 < rate and frac < 1 else ""
        err = f", {self.errors} failed" if self.errors else ""
        line = (f"[otgrid sweep] [{'#' * int(24 * frac):<24}] {self.done}/{self.total} "
                f"{self.what}{err}, {rate:.3g}/s{eta}")
        if self.tty:
            self.stream.write("\r" + line + " " * max(0, self._width - len(line)))
            self._width = len(line)
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def close(self) -> None:
        """End the report (the state where it stopped, when it stopped early)."""
        if not (self.enabled and self.total):
            return
        if self.done != self.total:
            self._draw(time.perf_counter() - self.t0)
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()


def run_tasks(client: Any, fn: Callable[..., Any], batches: Sequence[Any], args: tuple,
              on_done: Callable[[int, Any, BaseException | None], bool | None], *,
              retries: int, name: str) -> None:
    """Submit ``fn(batch, *args)`` per batch and hand each finished task to ``on_done``.

    Parameters
    ----------
    client : distributed.Client
    fn : callable
        The task function (importable on the workers).
    batches : sequence
        One task per item.
    args : tuple
        The other arguments of every task (futures are resolved on the workers).
    on_done : callable
        ``on_done(i, value, error)`` for each finished task ``i``, in completion order;
        ``error`` is the exception of a task that failed (after the scheduler's retries, e.g.
        ``KilledWorker``), else None. Returning True stops the loop and cancels the tasks not
        yet finished, as does Ctrl-C (re-raised after cancelling).
    retries : int
        Dask retries of a task that raised.
    name : str
        Prefix of the task keys.
    """
    distributed = _import_distributed()
    token = f"{name}-{os.getpid()}-{time.time_ns()}"
    futures = {}
    for i, batch in enumerate(batches):
        fut = client.submit(fn, batch, *args, key=f"{token}-{i}", retries=retries, pure=False)
        futures[fut.key] = (i, fut)
    order = {key: i for key, (i, _) in futures.items()}
    try:
        for fut in distributed.as_completed([f for _, f in futures.values()],
                                            loop=client.loop):
            i = order[fut.key]
            try:
                value, error = fut.result(), None
            except Exception as exc:  # KilledWorker, CancelledError, a task that raised
                value, error = None, exc
            futures.pop(fut.key, None)
            fut.release()
            if on_done(i, value, error):
                break
    finally:
        left = [f for _, f in futures.values()]
        if left:
            client.cancel(left)
