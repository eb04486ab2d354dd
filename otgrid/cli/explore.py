"""``otgrid explore``: serve the interactive explorer (:mod:`otgrid.explore`) on this machine."""

from __future__ import annotations

import argparse
import errno
from typing import Any

__all__ = ["add_explore_parser", "run_explore"]

_EPILOG = """\
examples:
  otgrid explore                      # a free port on 127.0.0.1, opens the browser
  otgrid explore --port 8765 --no-browser

The page runs in your browser; the solves run in this process (Ctrl-C stops it). It binds
127.0.0.1 (this machine only) unless --host is given. Exit status: 2 on bad input (e.g. a port
in use), 0 after Ctrl-C."""


def add_explore_parser(sub: Any) -> None:
    """Add the ``explore`` command to the sub-parsers ``sub``."""
    p = sub.add_parser(
        "explore",
        help="interactive explorer in the browser: critic, SCO and audit views",
        description="Serve a local web page to move distributions and watch the exact critic,\n"
                    "the flow and W with its certified bounds follow; train a generator by SCO\n"
                    "step by step; audit a neural critic against the optimal one.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--port", type=int, default=0,
                   help="port to listen on (default: a free one)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to bind (default 127.0.0.1: this machine only)")
    p.add_argument("--no-browser", action="store_true", help="do not open the browser")
    p.add_argument("--verbose", action="store_true", help="log every request")


def run_explore(args: argparse.Namespace) -> int:
    """``otgrid explore``: serve until Ctrl-C.

    Returns
    -------
    int
        0 after Ctrl-C; a port that cannot be bound raises the CLI's usage error (exit 2).
    """
    from otgrid.cli.audit import load_critic
    from otgrid.cli.common import _UsageError
    from otgrid.explore.server import serve

    if not 0 <= args.port <= 65535:
        raise _UsageError(f"--port must be in 0..65535 (0: a free port); got {args.port}.")
    try:
        serve(args.host, args.port, open_browser=not args.no_browser, verbose=args.verbose,
              load_critic=load_critic)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise _UsageError(f"--port {args.port}: the port is in use; choose another or "
                              "omit --port for a free one.") from None
        reason = exc.strerror or str(exc)
        raise _UsageError(f"cannot listen on {args.host}:{args.port}: {reason}.") from None
    return 0
