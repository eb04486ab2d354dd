"""The explorer's HTTP server: static files and JSON endpoints on the standard library.

:class:`ExploreApp` holds the sessions and answers the endpoints; :class:`_Handler` (a
:class:`http.server.BaseHTTPRequestHandler`) turns requests into calls of the app;
:func:`start_server` runs a :class:`http.server.ThreadingHTTPServer` in a thread (tests,
benchmarks) and :func:`serve` runs it in the foreground (``otgrid explore``).

Endpoints (every request names its ``session``, a random id the page draws when it loads):

==========================  =================================================================
``GET /``                   the page (``static/index.html``); ``GET /static/NAME`` its files
``GET /api/config``         presets, colour maps, backends, grammar, limits, whether torch is
                            installed
``POST /api/critic/solve``  start a critic solve (cancels the tab's running one) -> job id
``POST /api/sco/start``     start an SCO run (paused) -> job id
``POST /api/sco/control``   ``play``, ``pause``, ``step``, ``stop`` the tab's SCO run
``GET /api/sco/state``      the SCO run's steps since ``since``
``POST /api/audit/upload``  a critic state dict (raw bytes, at most ``MAX_UPLOAD``)
``POST /api/audit/run``     start an audit -> job id
``GET /api/job``            a job's state, progress, and result or error (``view``, ``job``)
``POST /api/cancel``        cancel the tab's job of a ``view``
``GET /api/export``         the current figure (``format=png``) or numbers (``format=json``)
                            of a ``view``
==========================  =================================================================

Safety: the server binds 127.0.0.1 unless told otherwise; requests whose ``Host`` is not the
address it serves are refused (DNS rebinding); POST bodies must be JSON (or, for the upload,
``application/octet-stream``), which a page of another origin cannot send without a CORS
preflight that this server never grants; bodies are size-limited; specs are parsed by the
CLI's grammar, never evaluated; critic files are loaded with ``weights_only=True`` only.
"""

from __future__ import annotations

import json
import math
import sys
import threading
import webbrowser
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import Any
from urllib.parse import parse_qs, urlsplit

from otgrid.explore.jobs import Job, JobError
from otgrid.explore.session import SessionStore

__all__ = ["MAX_BODY", "MAX_UPLOAD", "ExploreApp", "serve", "start_server"]

MAX_BODY = 1 << 20
MAX_UPLOAD = 8 << 20
_STATIC_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
                 ".css": "text/css; charset=utf-8", ".png": "image/png",
                 ".svg": "image/svg+xml"}


def _json_safe(value: Any) -> Any:
    """NaN and infinities as None, recursively (JSON has no such numbers)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


class ExploreApp:
    """The explorer's state and endpoints, independent of HTTP.

    Parameters
    ----------
    max_sessions : int, optional
        Sessions (browser tabs) kept at once.
    load_critic : callable, optional
        ``load_critic(path, ndim, arch, allow_torchscript=False) -> torch.nn.Module``, the safe
        loader of uploaded critic files (``otgrid explore`` passes
        ``otgrid.cli.audit.load_critic``); without it the audit view refuses uploads.
    """

    def __init__(self, max_sessions: int = 32, load_critic: Any = None) -> None:
        self.sessions = SessionStore(max_sessions)
        self.load_critic = load_critic

    # ------------------------------------------------------------------ config
    def config(self) -> dict[str, Any]:
        """Presets, colour maps, backends, the grammar and the limits, for the page."""
        import importlib.util

        from otgrid._version import __version__
        from otgrid.critic.backends import available_backends
        from otgrid.explore.critic_view import MAX_TIME_LIMIT, TIME_LIMIT
        from otgrid.explore.problems import MAX_CELLS, PRESETS, SHAPES
        from otgrid.explore.render import colormaps
        from otgrid.grid.spec import GRAMMAR

        return {"version": __version__, "colormaps": colormaps(),
                "presets": {k: {"label": p.label, "mu": p.mu, "nu": p.nu,
                                "bounds": p.bounds} for k, p in PRESETS.items()},
                "backends": available_backends(), "grammar": GRAMMAR,
                "shapes": {str(k): v for k, v in SHAPES.items()},
                "max_cells": {str(k): v for k, v in MAX_CELLS.items()},
                "time_limit": TIME_LIMIT, "max_time_limit": MAX_TIME_LIMIT,
                "max_upload": MAX_UPLOAD,
                "torch": importlib.util.find_spec("torch") is not None,
                "uploads": self.load_critic is not None}

    # ------------------------------------------------------------------ jobs
    def critic_solve(self, data: dict[str, Any]) -> dict[str, Any]:
        """Start a critic solve for the tab; returns ``{"job": id}``."""
        from otgrid.explore.critic_view import critic_job, parse_critic_request

        session = self.sessions.get(data.get("session"))
        req = parse_critic_request(data)
        job = session.start("critic", Job("critic", critic_job(req, session.state["critic"])))
        return {"job": job.id}

    def sco_start(self, data: dict[str, Any]) -> dict[str, Any]:
        """Start an SCO run (paused at its first solve); returns ``{"job": id}``."""
        from otgrid.explore.sco_view import parse_sco_request, start_sco

        session = self.sessions.get(data.get("session"))
        req = parse_sco_request(data)
        return start_sco(session, req)

    def sco_control(self, data: dict[str, Any]) -> dict[str, Any]:
        """``play``, ``pause``, ``step`` (``n`` steps) or ``stop`` the tab's SCO run."""
        from otgrid.explore.sco_view import control_sco

        session = self.sessions.get(data.get("session"))
        return control_sco(session, str(data.get("action", "")), data.get("n", 1))

    def sco_state(self, query: dict[str, str]) -> dict[str, Any]:
        """The tab's SCO run from step ``since`` on (WGAN from ``wgan_since``)."""
        from otgrid.explore.sco_view import sco_state

        session = self.sessions.get(query.get("session"))
        try:
            since = max(0, int(query.get("since", "0")))
            wgan_since = max(0, int(query.get("wgan_since", str(since))))
        except ValueError:
            raise JobError("since: expected an integer.", "since") from None
        return sco_state(session, since, wgan_since)

    def audit_upload(self, query: dict[str, str], body: bytes) -> dict[str, Any]:
        """Keep an uploaded critic file in the tab's session."""
        from otgrid.explore.audit_view import store_upload

        session = self.sessions.get(query.get("session"))
        return store_upload(session, query.get("name", "critic.pt"), body)

    def audit_run(self, data: dict[str, Any]) -> dict[str, Any]:
        """Start an audit for the tab; returns ``{"job": id}``."""
        from otgrid.explore.audit_view import audit_job, parse_audit_request

        session = self.sessions.get(data.get("session"))
        req = parse_audit_request(data, session.state["audit"], self.load_critic)
        job = session.start("audit", Job("audit", audit_job(req, session.state["audit"])))
        return {"job": job.id}

    def job(self, query: dict[str, str]) -> dict[str, Any]:
        """A job's snapshot (state, progress, result or error)."""
        session = self.sessions.get(query.get("session"))
        view = query.get("view", "critic")
        return session.job(view, query.get("job")).snapshot()

    def cancel(self, data: dict[str, Any]) -> dict[str, Any]:
        """Cancel the tab's job of ``view``."""
        session = self.sessions.get(data.get("session"))
        view = str(data.get("view", "critic"))
        job = session.jobs.get(view)
        if job is not None:
            job.cancel()
        return {"cancelled": job is not None and job.running}

    def export(self, query: dict[str, str]) -> tuple[bytes, str, str]:
        """The tab's current figure or numbers of a view: ``(body, content type, file name)``."""
        from otgrid.explore.export import export

        session = self.sessions.get(query.get("session"))
        return export(session, query.get("view", "critic"), query.get("format", "png"))

    def close(self) -> None:
        """Cancel every running job."""
        self.sessions.close()


_POST_JSON = {"/api/critic/solve": "critic_solve", "/api/sco/start": "sco_start",
              "/api/sco/control": "sco_control", "/api/audit/run": "audit_run",
              "/api/cancel": "cancel"}
_GET_JSON = {"/api/job": "job", "/api/sco/state": "sco_state"}


class _Handler(BaseHTTPRequestHandler):
    server_version = "otgrid-explore"
    protocol_version = "HTTP/1.1"

    @property
    def app(self) -> ExploreApp:
        return self.server.app  # type: ignore[attr-defined]

    def log_message(self, format: str, *args: Any) -> None:
        if getattr(self.server, "verbose", False):
            super().log_message(format, *args)

    # ------------------------------------------------------------------ replies
    def _send(self, status: int, body: bytes, ctype: str, headers: dict[str, str] | None = None
              ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, payload: Any) -> None:
        body = json.dumps(_json_safe(payload), separators=(",", ":"), allow_nan=False).encode()
        self._send(status, body, "application/json")

    def _error(self, status: int, message: str, field: str = "") -> None:
        self._json(status, {"error": {"message": message, "field": field}})

    # ------------------------------------------------------------------ checks
    def _host_ok(self) -> bool:
        host = (self.headers.get("Host") or "").strip().lower()
        allowed = getattr(self.server, "allowed_hosts", None)
        return allowed is None or host in allowed

    def _body(self, limit: int) -> bytes | None:
        try:
            length = int(self.headers.get("Content-Length", "0"))
        except ValueError:
            length = -1
        if length < 0 or length > limit:
            self.close_connection = True
            self._error(HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                        f"request body of {length} bytes; at most {limit} are accepted.", "body")
            return None
        return self.rfile.read(length)

    def _query(self) -> tuple[str, dict[str, str]]:
        parts = urlsplit(self.path)
        return parts.path, {k: v[0] for k, v in parse_qs(parts.query).items()}

    # ------------------------------------------------------------------ methods
    def do_GET(self) -> None:
        if not self._host_ok():
            self._error(HTTPStatus.FORBIDDEN, "unexpected Host header.", "host")
            return
        path, query = self._query()
        try:
            if path in ("/", "/index.html"):
                self._static("index.html")
            elif path.startswith("/static/"):
                self._static(path[len("/static/"):])
            elif path == "/api/config":
                self._json(HTTPStatus.OK, self.app.config())
            elif path in _GET_JSON:
                self._json(HTTPStatus.OK, getattr(self.app, _GET_JSON[path])(query))
            elif path == "/api/export":
                body, ctype, name = self.app.export(query)
                self._send(HTTPStatus.OK, body, ctype,
                           {"Content-Disposition": f'attachment; filename="{name}"'})
            else:
                self._error(HTTPStatus.NOT_FOUND, f"no such page {path!r}.")
        except JobError as exc:
            self._error(HTTPStatus.BAD_REQUEST, str(exc), exc.field)

    do_HEAD = do_GET

    def do_POST(self) -> None:
        if not self._host_ok():
            self._error(HTTPStatus.FORBIDDEN, "unexpected Host header.", "host")
            return
        path, query = self._query()
        ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        try:
            if path == "/api/audit/upload":
                if ctype != "application/octet-stream":
                    raise JobError("upload the file as application/octet-stream.", "upload")
                body = self._body(MAX_UPLOAD)
                if body is not None:
                    self._json(HTTPStatus.OK, self.app.audit_upload(query, body))
                return
            if path not in _POST_JSON:
                self._error(HTTPStatus.NOT_FOUND, f"no such endpoint {path!r}.")
                return
            if ctype != "application/json":
                raise JobError("requests must be application/json.", "body")
            body = self._body(MAX_BODY)
            if body is None:
                return
            try:
                data = json.loads(body or b"{}")
            except (ValueError, UnicodeDecodeError):
                raise JobError("the request body is not valid JSON.", "body") from None
            if not isinstance(data, dict):
                raise JobError("the request body must be a JSON object.", "body")
            self._json(HTTPStatus.OK, getattr(self.app, _POST_JSON[path])(data))
        except JobError as exc:
            self._error(HTTPStatus.BAD_REQUEST, str(exc), exc.field)

    def _static(self, name: str) -> None:
        files = resources.files("otgrid.explore") / "static"
        suffix = "." + name.rsplit(".", 1)[-1] if "." in name else ""
        if "/" in name or "\\" in name or name.startswith(".") or suffix not in _STATIC_TYPES:
            self._error(HTTPStatus.NOT_FOUND, f"no such file {name!r}.")
            return
        item = files / name
        if not item.is_file():
            self._error(HTTPStatus.NOT_FOUND, f"no such file {name!r}.")
            return
        self._send(HTTPStatus.OK, item.read_bytes(), _STATIC_TYPES[suffix])


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = False

    def __init__(self, address: tuple[str, int], app: ExploreApp, verbose: bool = False) -> None:
        super().__init__(address, _Handler)
        self.app = app
        self.verbose = verbose
        host, port = self.server_address[:2]
        names = {str(host), "localhost", "127.0.0.1"} if host in ("127.0.0.1", "::1") else None
        self.allowed_hosts = None if names is None else (
            {f"{n}:{port}" for n in names} | {f"[::1]:{port}"})


def start_server(host: str = "127.0.0.1", port: int = 0, *, verbose: bool = False,
                 load_critic: Any = None) -> tuple[ThreadingHTTPServer, str]:
    """Start the explorer in a background thread.

    Parameters
    ----------
    host : str, optional
        Address to bind (127.0.0.1: this machine only).
    port : int, optional
        Port (0: a free one).
    verbose : bool, optional
        Log every request to standard error.
    load_critic : callable, optional
        The safe loader of uploaded critics (see :class:`ExploreApp`).

    Returns
    -------
    server : ThreadingHTTPServer
        Stop it with ``server.shutdown(); server.server_close()``; ``server.app`` is the
        :class:`ExploreApp`.
    url : str
        The page's address.

    Raises
    ------
    OSError
        When the address cannot be bound (e.g. the port is in use).
    """
    server = _Server((host, int(port)), ExploreApp(load_critic=load_critic), verbose)
    threading.Thread(target=server.serve_forever, name="otgrid-explore-server",
                     daemon=True).start()
    return server, _url(server)


def _url(server: ThreadingHTTPServer) -> str:
    host, port = server.server_address[:2]
    shown = "127.0.0.1" if host in ("0.0.0.0", "") else host
    return f"http://{shown if ':' not in str(shown) else f'[{shown}]'}:{port}/"


def serve(host: str = "127.0.0.1", port: int = 0, *, open_browser: bool = True,
          verbose: bool = False, load_critic: Any = None) -> None:
    """Run the explorer until Ctrl-C: print its address and open it in the browser.

    Parameters
    ----------
    host, port : optional
        As in :func:`start_server`.
    open_browser : bool, optional
        Open the page with :mod:`webbrowser`.
    verbose : bool, optional
        Log every request.
    load_critic : callable, optional
        The safe loader of uploaded critics (see :class:`ExploreApp`).

    Raises
    ------
    OSError
        When the address cannot be bound.
    """
    import warnings

    from otgrid.errors import ConvergenceWarning, OutsideMassWarning

    # the page shows both (the status of every solve, the mass outside the bounds); in the
    # terminal they would only repeat it (this process is the server's own)
    warnings.filterwarnings("ignore", category=ConvergenceWarning)
    warnings.filterwarnings("ignore", category=OutsideMassWarning)
    server = _Server((host, int(port)), ExploreApp(load_critic=load_critic), verbose)
    url = _url(server)
    print(f"otgrid explore: serving on {url} (Ctrl-C to stop)", flush=True)
    if host not in ("127.0.0.1", "localhost", "::1"):
        print(f"otgrid explore: warning: bound to {host}: other machines can reach this "
              "server and run solves on it.", file=sys.stderr, flush=True)
    if open_browser:
        threading.Thread(target=webbrowser.open, args=(url,), daemon=True).start()
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        print("otgrid explore: stopped.", flush=True)
    finally:
        server.app.close()
        server.server_close()
