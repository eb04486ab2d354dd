"""Per-tab state of the explorer: one :class:`Session` per browser tab, kept in a bounded store.

The page generates a random session id when it loads and sends it with every request, so two
tabs (even of one browser) never share a problem, a warm start, a running job or an upload.
A session holds, per view, the running or last job and what the view needs to go on (the last
critic result for a warm start, the SCO run, the uploaded critic). The store keeps the
:data:`MAX_SESSIONS` most recently used sessions and cancels the jobs of the ones it drops.
"""

from __future__ import annotations

import re
import threading
import time
from collections import OrderedDict
from typing import Any

from otgrid.explore.jobs import Job, JobError

__all__ = ["MAX_SESSIONS", "Session", "SessionStore"]

MAX_SESSIONS = 32
_SESSION_ID = re.compile(r"^[A-Za-z0-9_-]{8,64}$")


class Session:
    """The state of one browser tab.

    Attributes
    ----------
    id : str
    jobs : dict
        View name -> its current or last :class:`Job`.
    state : dict
        View name -> a dict of what the view keeps between requests (warm start, SCO run,
        upload, the last result for export).
    lock : threading.Lock
        Held while a request changes the session.
    """

    def __init__(self, session_id: str) -> None:
        self.id = session_id
        self.jobs: dict[str, Job] = {}
        self.state: dict[str, dict[str, Any]] = {"critic": {}, "sco": {}, "audit": {}}
        self.lock = threading.Lock()
        self.used = time.monotonic()

    def start(self, view: str, job: Job) -> Job:
        """Cancel the view's running job (a newer request supersedes it) and start ``job``."""
        with self.lock:
            old = self.jobs.get(view)
            if old is not None and old.running:
                old.cancel()
            self.jobs[view] = job
        return job.start()

    def job(self, view: str, job_id: str | None = None) -> Job:
        """The view's current job (which must be ``job_id`` when given)."""
        job = self.jobs.get(view)
        if job is None or (job_id and job.id != job_id):
            raise JobError(f"no such job for the {view} view (a newer request replaced it, or "
                           "the server restarted).", "job")
        return job

    def cancel_all(self) -> None:
        """Cancel every running job of the session."""
        for job in list(self.jobs.values()):
            job.cancel()


class SessionStore:
    """The sessions of a server: created on first use, the least recently used dropped.

    Parameters
    ----------
    max_sessions : int, optional
    """

    def __init__(self, max_sessions: int = MAX_SESSIONS) -> None:
        self._sessions: OrderedDict[str, Session] = OrderedDict()
        self._lock = threading.Lock()
        self.max_sessions = max_sessions

    def get(self, session_id: Any) -> Session:
        """The session of ``session_id`` (created when new).

        Raises
        ------
        JobError
            When the id is not 8 to 64 characters of ``[A-Za-z0-9_-]``.
        """
        if not isinstance(session_id, str) or not _SESSION_ID.match(session_id):
            raise JobError("missing or malformed session id (reload the page).", "session")
        with self._lock:
            session = self._sessions.pop(session_id, None) or Session(session_id)
            session.used = time.monotonic()
            self._sessions[session_id] = session
            while len(self._sessions) > self.max_sessions:
                _, dropped = self._sessions.popitem(last=False)
                dropped.cancel_all()
        return session

    def __len__(self) -> int:
        return len(self._sessions)

    def close(self) -> None:
        """Cancel every job of every session."""
        with self._lock:
            for session in self._sessions.values():
                session.cancel_all()
