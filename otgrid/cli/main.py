"""The ``otgrid`` command line: the exact Wasserstein-1 critic of two distributions.

``otgrid critic MU NU`` discretises two distributions given in a small text grammar
(:mod:`otgrid.grid.spec`) on a grid, solves for the optimal critic with certified bounds
(:func:`otgrid.critic.solve_critic`), prints ``W`` with its bounds and writes a figure.
``otgrid sco TARGET`` fits a Gaussian generator to a target by SCO with the exact critic
(:func:`otgrid.sco.fit`), prints the final parameters and ``W`` and writes the learning curves.
``python -m otgrid`` runs the same program.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

from otgrid.cli.audit import add_audit_parser, run_audit
from otgrid.cli.common import _Parser, _protect_negative_numbers, _UsageError, one_line
from otgrid.cli.critic import add_critic_parser, run_critic
from otgrid.cli.explore import add_explore_parser, run_explore
from otgrid.cli.info import add_info_parser, run_info
from otgrid.cli.sco import add_sco_parser, run_sco
from otgrid.cli.sweep import add_sweep_parser, run_sweep

__all__ = ["main"]


def _build_parser() -> _Parser:
    from otgrid._version import __version__

    parser = _Parser(
        prog="otgrid",
        description="Exact optimal transport in low dimension: the Wasserstein-1 critic of two "
                    "distributions on a grid, with certified bounds.",
        epilog="Run 'otgrid critic --help' or 'otgrid sco --help' for the distribution grammar "
               "and examples.",
    )
    parser.add_argument("--version", action="version", version=f"otgrid {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    add_critic_parser(sub)
    add_sco_parser(sub)
    add_info_parser(sub)
    add_audit_parser(sub)
    add_explore_parser(sub)
    add_sweep_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``otgrid`` command line.

    Parameters
    ----------
    argv : sequence of str, optional
        The arguments after the program name; ``sys.argv[1:]`` by default.

    Returns
    -------
    int
        Exit status: 0 on success, 2 on bad input (a one-line message on standard error, never
        a traceback: grammar errors, extreme numbers, bounds that miss the distributions,
        grids too large for the memory available, paths that cannot be used), 1 when an
        output file could not be written, 130 when interrupted by Ctrl-C
        (``KeyboardInterrupt``: "otgrid: interrupted" on standard error, no traceback).

    Examples
    --------
    >>> from otgrid.cli import main
    >>> main(["critic", "point(0)", "point(1)", "--bounds", "-1", "2", "--shape", "12",
    ...       "--quiet", "--no-figure"])  # doctest: +ELLIPSIS
    MU: PointMass(location=0.0)
    NU: PointMass(location=1.0)
    grid: 1D, bounds [-1, 2] (given), shape 12, dx 0.25
    W ≈ 1  in [...]
    ...
    0
    """
    parser = _build_parser()
    try:
        argv = sys.argv[1:] if argv is None else list(argv)
        args = parser.parse_args(_protect_negative_numbers(argv))
        if args.command is None:
            raise _UsageError("choose a command, e.g. otgrid critic 'normal(0, 1)' "
                              "'normal(1, 1)' (see 'otgrid --help')")
        if args.command == "info":
            return run_info()
        if args.command == "audit":
            return run_audit(args)
        if args.command == "sco":
            return run_sco(args)
        if args.command == "explore":
            return run_explore(args)
        if args.command == "sweep":
            return run_sweep(args)
        return run_critic(args)
    except _UsageError as exc:
        print("otgrid: error: " + one_line(f"{exc}"),
              file=sys.stderr)
        return 2
    except MemoryError:  # the estimate checked before the solve fell short of the real need
        print("otgrid: error: out of memory; use a coarser --shape (fewer cells per axis).",
              file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # Ctrl-C outside a solve that stops by itself (critic, sco)
        print("otgrid: interrupted", file=sys.stderr)
        return 130
    except SystemExit as exc:  # --help and --version
        return exc.code if isinstance(exc.code, int) else 0
    except BrokenPipeError:  # e.g. `otgrid critic ... | head`: stop quietly
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        except (OSError, ValueError):
            pass
        return 1
