"""Background computations of the explorer: a worker thread per job, with progress and cancel.

A :class:`Job` runs one computation (a critic solve, an audit, an SCO run) in a daemon thread.
The computation receives the job and calls :meth:`Job.report` with what the page should show
while it runs (the certified bounds of a solve, the steps of an SCO run), and polls
:attr:`Job.cancelled` at its checkpoints (the solver's callback, the SCO step callback) to stop
early. The page polls :meth:`Job.snapshot` over HTTP.

At most :data:`MAX_RUNNING` jobs compute at once across all sessions (a process-wide
semaphore): the others wait in state ``"queued"``, so many tabs cannot oversubscribe the CPU.
"""

from __future__ import annotations

import contextlib
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterator
from typing import Any

__all__ = ["MAX_RUNNING", "Job", "JobError", "one_torch_thread"]

MAX_RUNNING = 2
_SLOTS = threading.BoundedSemaphore(MAX_RUNNING)
STATES = ("queued", "running", "done", "error", "cancelled")


@contextlib.contextmanager
def one_torch_thread() -> Iterator[None]:
    """Run torch on one thread inside the block (restored after).

    The explorer's networks are tiny: torch's thread pool only spins against the solver's
    threads. Measured on a loaded 2-core machine: 10 WGAN-GP steps took 21.6 s with torch's
    default 2 threads and 0.5 s with one.
    """
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class JobError(Exception):
    """A failure to show in the page: ``field`` names the input it concerns (or ``""``)."""

    def __init__(self, message: str, field: str = "") -> None:
        super().__init__(message)
        self.field = field


class Job:
    """One computation in a worker thread.

    Parameters
    ----------
    kind : str
        What it computes (``"critic"``, ``"sco"``, ``"audit"``), for the page.
    fn : callable
        ``fn(job) -> dict``: the computation; its return value is the job's result (a
        JSON-ready dict). It may raise :class:`JobError` (or a ``ValueError``) with a message
        for the page.
    exclusive : bool, optional
        Take one of the :data:`MAX_RUNNING` compute slots while running (False for jobs that
        mostly wait, such as a paused SCO run, which take slots for their own steps).

    Attributes
    ----------
    id : str
    state : {"queued", "running", "done", "error", "cancelled"}
    result : dict or None
    error : dict or None
        ``{"message": ..., "field": ...}``.
    """

    def __init__(self, kind: str, fn: Callable[[Job], dict[str, Any]], *,
                 exclusive: bool = True) -> None:
        self.id = uuid.uuid4().hex[:12]
        self.kind = kind
        self.state = "queued"
        self.result: dict[str, Any] | None = None
        self.error: dict[str, str] | None = None
        self._fn = fn
        self._exclusive = exclusive
        self._cancel = threading.Event()
        self._lock = threading.Lock()
        self._progress: dict[str, Any] = {}
        self._version = 0
        self.created = time.monotonic()
        self.finished: float | None = None
        self._thread = threading.Thread(target=self._run, name=f"otgrid-explore-{kind}-{self.id}",
                                        daemon=True)

    def start(self) -> Job:
        """Start the worker thread; returns the job."""
        self._thread.start()
        return self

    # ------------------------------------------------------------------ worker side
    @property
    def cancelled(self) -> bool:
        """Whether cancellation was asked for (the computation should stop at its next
        checkpoint)."""
        return self._cancel.is_set()

    def report(self, **progress: Any) -> None:
        """Publish progress for the page (merged into the previous progress)."""
        with self._lock:
            self._progress.update(progress)
            self._version += 1

    def _run(self) -> None:
        slot = False
        try:
            if self._exclusive:
                while not _SLOTS.acquire(timeout=0.05):
                    if self.cancelled:
                        self._finish("cancelled")
                        return
                slot = True
            if self.cancelled:
                self._finish("cancelled")
                return
            self.state = "running"
            result = self._fn(self)
            self.result = result
            self._finish("cancelled" if self.cancelled and result is None else "done")
        except JobError as exc:
            self.error = {"message": str(exc), "field": exc.field}
            self._finish("error")
        except (ValueError, TypeError, MemoryError) as exc:
            field = getattr(exc, "field", "")
            message = str(exc) or type(exc).__name__
            if isinstance(exc, MemoryError) and not str(exc):
                message = "out of memory; use fewer cells per axis."
            self.error = {"message": message, "field": field}
            self._finish("error")
        except Exception as exc:  # a bug: report it in the page instead of losing the thread
            last = traceback.format_exception_only(type(exc), exc)[-1].strip()
            self.error = {"message": f"internal error: {last}", "field": ""}
            self._finish("error")
        finally:
            if slot:
                _SLOTS.release()

    def _finish(self, state: str) -> None:
        self.finished = time.monotonic()
        self.state = state

    # ------------------------------------------------------------------ page side
    def cancel(self) -> None:
        """Ask the computation to stop at its next checkpoint."""
        self._cancel.set()

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the worker; whether it has finished."""
        self._thread.join(timeout)
        return not self._thread.is_alive()

    @property
    def running(self) -> bool:
        """Whether the job is queued or running."""
        return self.state in ("queued", "running")

    def snapshot(self, *, with_result: bool = True) -> dict[str, Any]:
        """The job's state for the page: id, kind, state, progress, and the result or error."""
        with self._lock:
            progress = dict(self._progress)
            version = self._version
        out: dict[str, Any] = {"job": self.id, "kind": self.kind, "state": self.state,
                               "progress": progress, "version": version,
                               "elapsed": round((self.finished or time.monotonic())
                                                - self.created, 4)}
        if self.state == "error":
            out["error"] = self.error
        if self.state == "done" and with_result:
            out["result"] = self.result
        return out
