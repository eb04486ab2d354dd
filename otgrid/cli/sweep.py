"""``otgrid sweep PROBLEMS.jsonl --out DIR``: many exact critics on a Dask cluster, resumable."""

from __future__ import annotations

import argparse
import contextlib
import math
import sys
import warnings
from pathlib import Path
from typing import Any

from otgrid.cli.common import (
    _check_unit_interval,
    _input_file,
    _output_path,
    _UsageError,
    one_line,
)
from otgrid.grid.spec import GRAMMAR

__all__ = ["add_sweep_parser", "run_sweep"]

_SHOWN = 20  # rows of the summary table printed (all of them are in DIR/summary.md)

_SCHEMA = """\
problems file: one JSON object per line (blank lines and lines starting with # skipped):
  {"mu": "normal([0, 0], 1)", "nu": "8gaussians", "bounds": [[-3, 3], [-3, 3]],
   "shape": [128, 128], "norm": "euclidean", "tol": 1e-6, "max_iter": 100000,
   "outside": "auto", "id": "any label"}
  Only "mu" is required ("nu" too, except after parallel_lines(theta)). "bounds": one
  [low, high] pair per axis, or one pair for every axis (default: a box holding both
  distributions); "shape": one size per axis, or one for every axis (default 512 in 1D,
  128 x 128 in 2D); "norm", "tol", "max_iter" override the options below for that line.
  A .npy path is read on the worker that solves the problem."""

_EXAMPLES = """\
examples:
  otgrid sweep problems.jsonl --out results/                 # a LocalCluster, one worker per core
  otgrid sweep problems.jsonl --out results/ --workers 2 --tol 1e-4
  otgrid sweep problems.jsonl --out results/ --scheduler tcp://10.0.0.5:8786

DIR/results.jsonl gets one JSON record per problem as soon as it is solved (W, bounds,
iterations, status; or the error of a problem that failed), DIR/critics/NNNNNN.npz its
critic ("critic"; "flow" too with --save-flow), DIR/summary.md a table. A crash or Ctrl-C
loses nothing that finished: run the same command again to solve only what is missing.
A malformed line, a bad spec or a failed solve is an error record for that problem; the
sweep goes on. Workers with a GPU solve on it (--backend auto).
Exit status: 0 when every problem has a record (errors included: their count is printed),
2 on bad input (one line on standard error), 1 when a result cannot be written, 130 when
interrupted (rerun to resume)."""


def _batch_size(text: str) -> int | str:
    if text == "auto":
        return text
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"'auto' or a positive integer, got {text!r}")
    return value


def _threads(text: str) -> int | str | None:
    if text in ("auto", "none"):
        return None if text == "none" else text
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"'auto', 'none' or a positive integer, got {text!r}")
    return value


def add_sweep_parser(sub: Any) -> None:
    """Add the ``sweep`` command to the sub-parsers ``sub``."""
    p = sub.add_parser(
        "sweep",
        help="the exact critics of many problems on a Dask cluster (resumable; needs dask)",
        description="Solve every problem of PROBLEMS.jsonl (one per line) on a Dask cluster,\n"
                    "writing each result to DIR as soon as it is done; rerun to resume.",
        epilog=f"{_SCHEMA}\n\n{GRAMMAR}\n\n{_EXAMPLES}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("problems", metavar="PROBLEMS.jsonl", help="problems file (schema below)")
    p.add_argument("--out", required=True, metavar="DIR",
                   help="results folder (created; an earlier run's results are kept)")
    p.add_argument("--scheduler", metavar="ADDRESS", default=None,
                   help="Dask scheduler address, e.g. tcp://10.0.0.5:8786 (default: start a "
                        "LocalCluster here)")
    p.add_argument("--workers", type=int, metavar="N", default=None,
                   help="worker processes of the LocalCluster (default: one per core; at "
                        "most 4 per core)")
    p.add_argument("--batch-size", type=_batch_size, default="auto", dest="batch_size",
                   metavar="N", help="problems per task, or 'auto' (default)")
    p.add_argument("--tol", type=float, default=1e-6,
                   help="relative gap at which to stop, in (0, 1), for lines without one "
                        "(default: 1e-6)")
    p.add_argument("--max-iter", type=int, default=100_000, dest="max_iter",
                   help="iteration limit for lines without one (default: 100000)")
    p.add_argument("--norm", choices=("euclidean", "cityblock"), default="euclidean",
                   help="gradient norm for lines without one (default: euclidean)")
    p.add_argument("--backend", choices=("auto", "numpy", "numba", "cuda"), default="auto",
                   help="solver backend on the workers (default: auto, the GPU of a worker "
                        "that has one for grids of 65536 cells or more)")
    p.add_argument("--float32", action="store_true",
                   help="iterate in float32 (the bounds are still certified in float64)")
    p.add_argument("--time-limit", type=float, default=None, dest="time_limit",
                   metavar="SECONDS", help="seconds per problem (default: none)")
    p.add_argument("--worker-threads", type=_threads, default="auto", dest="worker_threads",
                   metavar="N", help="Numba/BLAS threads per task: 'auto' (default: the "
                                     "machine's cores shared among its workers), 'none' "
                                     "(leave them) or N")
    p.add_argument("--retries", type=int, default=2,
                   help="Dask retries of a failed task (default: 2)")
    p.add_argument("--limit", type=int, default=None, metavar="N",
                   help="stop after N problems (rerun to go on)")
    p.add_argument("--save-flow", action="store_true", dest="save_flow",
                   help="also save each optimal flow in its .npz")
    p.add_argument("--retry-errors", action="store_true", dest="retry_errors",
                   help="solve again the problems recorded as errors by an earlier run")
    p.add_argument("--quiet", action="store_true", help="no progress line, no table")


def _check_args(args: argparse.Namespace) -> tuple[Path, Path]:
    from otgrid.distributed.cluster import WORKERS_PER_CORE, max_local_workers, usable_cores

    _check_unit_interval(args.tol, "--tol")
    if args.max_iter < 1:
        raise _UsageError(f"--max-iter must be >= 1; got {args.max_iter}.")
    if args.workers is not None and args.workers < 1:
        raise _UsageError(f"--workers must be >= 1; got {args.workers}.")
    if args.workers is not None and args.workers > max_local_workers():
        raise _UsageError(f"--workers {args.workers} is more than this machine can run: at most "
                          f"{max_local_workers()} ({WORKERS_PER_CORE} per core, "
                          f"{usable_cores()} cores here), each a Python process; for more, "
                          "start a Dask cluster on several machines and give --scheduler.")
    if args.workers is not None and args.scheduler is not None:
        raise _UsageError("--workers sizes the LocalCluster started here; with --scheduler, "
                          "size the cluster where it runs (give one of the two).")
    if args.retries < 0:
        raise _UsageError(f"--retries must be >= 0; got {args.retries}.")
    if args.limit is not None and args.limit < 1:
        raise _UsageError(f"--limit must be >= 1; got {args.limit}.")
    if args.time_limit is not None and not (math.isfinite(args.time_limit)
                                            and args.time_limit > 0):
        raise _UsageError(f"--time-limit must be a positive number; got {args.time_limit}.")
    if args.scheduler is not None and "://" not in args.scheduler \
            and ":" not in args.scheduler:
        raise _UsageError(f"--scheduler {args.scheduler!r} is not a scheduler address; give "
                          "one such as tcp://10.0.0.5:8786.")
    src = _input_file(args.problems, "PROBLEMS", "file of JSON lines")
    out = _output_path(args.out, "--out", folder=True)
    return src, out


def _read(src: Path) -> list[Any]:
    from otgrid.distributed import ProblemError, read_problems

    try:
        problems = read_problems(src)
    except UnicodeDecodeError:
        raise _UsageError(f"PROBLEMS {str(src)!r} is not UTF-8 text; give a file of JSON "
                          "lines.") from None
    except OSError as exc:
        raise _UsageError(f"PROBLEMS {str(src)!r} cannot be read: {exc.strerror or exc}."
                          ) from None
    if not problems:
        raise _UsageError(f"PROBLEMS {str(src)!r} holds no problem (one JSON object per line, "
                          "e.g. {\"mu\": \"normal(0, 1)\", \"nu\": \"normal(1, 1)\"}).")
    bad = sum(isinstance(p, ProblemError) for p in problems)
    if bad == len(problems):
        first = problems[0]
        raise _UsageError(f"PROBLEMS {str(src)!r}: no line is a valid problem; the first: "
                          f"{first.message}")
    return problems


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _print_table(records: list[dict]) -> None:
    rows = [("#", "id", "shape", "W", "rel. gap", "iter", "seconds", "status")]
    for r in records[:_SHOWN]:
        if r.get("status") == "ok":
            rows.append((str(r["index"]), r.get("id") or "", "x".join(map(str, r["grid"]["shape"])),
                         f"{r['w1']:.10g}", f"{r['relative_gap']:.2e}", str(r["iterations"]),
                         f"{r['seconds']:.3g}", r["solve_status"]))
        else:
            rows.append((str(r["index"]), r.get("id") or "", "", "", "", "", "",
                         f"error ({r.get('stage')}): {r.get('error')}"))
    widths = [max(len(row[k]) for row in rows) for k in range(len(rows[0]))]
    for row in rows:
        print("  " + "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    if len(records) > _SHOWN:
        print(f"  ... {len(records) - _SHOWN} more rows in the summary")


def _run(args: argparse.Namespace, problems: list[Any], out: Path) -> Any:
    import numpy as np

    from otgrid.distributed import sweep

    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            summary = sweep(
                problems, out, None, client=args.scheduler, workers=args.workers,
                batch_size=args.batch_size, retries=args.retries,
                worker_threads=args.worker_threads, progress=False if args.quiet else None,
                limit=args.limit, save_flow=args.save_flow, retry_errors=args.retry_errors,
                tol=args.tol, max_iter=args.max_iter, norm=args.norm, backend=args.backend,
                dtype=np.float32 if args.float32 else np.float64, time_limit=args.time_limit)
    except ImportError as exc:  # dask missing
        raise _UsageError(str(exc)) from None
    except ConnectionError as exc:
        raise _UsageError(f"--scheduler: {exc}") from None
    except ValueError as exc:  # out in use, results of other problems in out
        raise _UsageError(str(exc)) from None
    for w in caught:  # the count of problems that did not reach tol, on one line
        print(f"otgrid: warning: {w.message}", file=sys.stderr)
    return summary


def run_sweep(args: argparse.Namespace) -> int:
    """Handle ``otgrid sweep`` (arguments from :func:`add_sweep_parser`).

    Parameters
    ----------
    args : argparse.Namespace

    Returns
    -------
    int
        0 when every problem has a record (errors included) or ``--limit`` stopped the run,
        1 when a result could not be written, 130 when interrupted; bad input raises the
        CLI's usage error (exit status 2 in :func:`otgrid.cli.main`).
    """
    from otgrid.distributed import read_records
    from otgrid.distributed.store import write_summary

    src, out = _check_args(args)
    problems = _read(src)
    where = args.scheduler or (f"a LocalCluster of {_count(args.workers, 'worker')}"
                               if args.workers else "a LocalCluster (one worker per core)")
    print(f"sweep: {_count(len(problems), 'problem')} from {src}, results in {out}, on "
          f"{where}", flush=True)
    try:
        summary = _run(args, problems, out)
    except KeyboardInterrupt:
        records = read_records(out) if (out / "results.jsonl").is_file() else []
        with contextlib.suppress(OSError):
            write_summary(out, records, len(problems))
        print(f"otgrid: interrupted: {len(records)} of {len(problems)} problems are recorded "
              f"in {out}; run the same command again to resume.", file=sys.stderr)
        return 130
    except OSError as exc:
        print("otgrid: error: " + one_line(f"could not write the results: {exc}"),
              file=sys.stderr)
        return 1
    records = read_records(out)
    try:
        table = write_summary(out, records, len(problems))
    except OSError as exc:
        print("otgrid: error: " + one_line(f"could not write the summary: {exc}"),
              file=sys.stderr)
        return 1
    failed = sum(r.get("status") != "ok" for r in records)
    print(f"{summary.done_before} done before, {summary.solved} solved and {summary.failed} "
          f"failed now, {summary.remaining} left ({summary.seconds:.3g} s)")
    if not args.quiet:
        _print_table(records)
    print(f"results: {out / 'results.jsonl'}, critics: {out / 'critics'}, summary: {table}")
    if failed:
        print(f"otgrid: warning: {failed} of {len(problems)} problems failed (error records in "
              f"{out / 'results.jsonl'})", file=sys.stderr)
    if summary.remaining:
        print(f"stopped with {summary.remaining} problems left (--limit): run the same command "
              "again to go on.")
    return 0
