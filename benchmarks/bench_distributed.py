"""Throughput of otgrid.distributed on one machine: 1 and 2 Dask workers against a sequential loop.

Protocol (written to ``results/distributed.{md,json}``):

- problems: ``--problems`` (default 48) pairs at each size ``--sizes`` (default 128 and 256
  cells per axis) on the box [-6.5, 8.5] x [-6.5, 6.5]: ``mu = N((0, 0), I)`` against
  ``nu = N((s, t), sigma^2 I)`` with ``s`` in [0.2, 2.5], ``t`` in [-1, 1], ``sigma`` in
  [0.6, 1.0] (a fixed deterministic list), given as spec strings so that the workers
  discretise them; ``tol=--tol`` (default 1e-4);
- *sequential, one by one* (the baseline): the same problems solved one after the other in
  this process (``Grid.discretize`` + ``solve_critic``, Numba, one thread: the grids are below
  the size where the solver goes multi-threaded); and *sequential, batches*: the same in the
  batches that ``batch_size="auto"`` makes for 2 workers (the batched solver alone, no Dask),
  which separates the gain of batching from that of the workers;
- *dask, N workers*: :func:`otgrid.distributed.solve_many` on a ``LocalCluster`` of ``N``
  single-threaded worker processes, ``batch_size="auto"``, ``worker_threads="auto"`` (one
  Numba/BLAS thread per worker here). Each cluster is started and warmed up (each worker
  solves a problem of each size: imports and the Numba cache) before any clock;
- with ``--threads-study``: 2 workers with ``worker_threads=None`` (each worker keeps Numba's
  default, one thread per core) and batches of 4 at 256^2 (2^18 cells per batch, where the
  solver goes multi-threaded) against the same batches with ``worker_threads=1``;
- *per-task overhead*: ``--tasks`` (default 200) trivial problems (``mu == nu`` on 8 cells:
  ``W = 0`` without an iteration) at ``batch_size=1`` on 2 workers, through ``solve_many`` and
  through ``sweep`` (a record written and fsynced per problem): wall seconds per task, ``o``.
  And per size, from the 2-worker run, ``h = (wall x 2 - sequential wall) / problems``: the
  worker time per problem beyond the sequential compute.

Every answer of the cluster is checked against the sequential one (the same certified bounds).

The projection to a cluster of ``--nodes`` (default 100) machines like this one, ``W`` workers
in all (one per core), is ``min(W / (t + h), b / o)`` problems per second, with ``t`` the
sequential seconds per problem, ``b`` the batch size of a large sweep (``"auto"``), and ``o``
the per-task seconds of the scheduler and the client (``solve_many``; ``sweep``'s for a sweep to
disk). It is printed as a projection, computed from the measured numbers.

Run from the repository root on a quiet machine (about 12 minutes on 2 cores):
``python benchmarks/bench_distributed.py --update-docs`` (also writes the numbers into
docs/sweeps.rst); ``--quick`` for a smoke test (its report goes to a temporary folder unless
``--out-dir`` is given; never into results/ or the docs).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import otgrid as og
from otgrid.distributed import solve_many, sweep
from otgrid.distributed.cluster import MAX_AUTO_BATCH, auto_batch_size

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
DOCS_PAGE = ROOT / "docs" / "sweeps.rst"
DOCS_START, DOCS_END = ".. bench-distributed-start", ".. bench-distributed-end"
BOUNDS = [(-6.5, 8.5), (-6.5, 6.5)]
GOAL = 1.7  # speedup of 2 workers over the sequential loop that the issue asks for


# --------------------------------------------------------------------------- problems
def problem_list(n: int) -> list[tuple[str, str]]:
    """A fixed, deterministic list of ``n`` pairs of spec strings."""
    rng = np.random.default_rng(12345)
    pairs = []
    for _ in range(n):
        s, t, sigma = rng.uniform(0.2, 2.5), rng.uniform(-1, 1), rng.uniform(0.6, 1.0)
        pairs.append(("normal([0, 0], 1)", f"normal([{s:.4f}, {t:.4f}], {sigma ** 2:.6f})"))
    return pairs


def _masses(pairs: list[tuple[str, str]], grid: og.Grid) -> tuple[np.ndarray, np.ndarray]:
    from otgrid.grid.spec import parse_distribution

    mu = np.stack([grid.discretize(parse_distribution(a, ndim=2)) for a, _ in pairs])
    nu = np.stack([grid.discretize(parse_distribution(b, ndim=2)) for _, b in pairs])
    return mu, nu


def sequential(pairs: list[tuple[str, str]], grid: og.Grid, tol: float) -> tuple[float, list]:
    """The problems one by one in this process: wall seconds and results."""
    t0 = time.perf_counter()
    out = []
    for pair in pairs:
        mu, nu = _masses([pair], grid)
        out.append(og.solve_critic(mu[0], nu[0], grid, tol=tol))
    return time.perf_counter() - t0, out


def sequential_batched(pairs: list[tuple[str, str]], grid: og.Grid, tol: float,
                       batch: int) -> float:
    """The same problems in this process, in batches of ``batch`` (the batched solver)."""
    t0 = time.perf_counter()
    for i in range(0, len(pairs), batch):
        mu, nu = _masses(pairs[i:i + batch], grid)
        og.solve_critic(mu, nu, grid, tol=tol)
    return time.perf_counter() - t0


def check(results: list, ref: list) -> float:
    """Largest relative difference of the bounds to the sequential ones (must be ~1e-15)."""
    worst = 0.0
    for r, q in zip(results, ref, strict=True):
        if not hasattr(r, "lower"):
            raise RuntimeError(f"a problem failed on the cluster: {r}")
        worst = max(worst, abs(r.lower - q.lower) / q.upper, abs(r.upper - q.upper) / q.upper)
    return worst


# --------------------------------------------------------------------------- cluster runs
def cluster_run(client, pairs, grid, tol, **kw) -> tuple[float, list]:
    t0 = time.perf_counter()
    res = solve_many(pairs, grid, client=client, tol=tol, progress=False, **kw)
    return time.perf_counter() - t0, res


def warm_up(client, grids: list[og.Grid], n_workers: int) -> None:
    """Every worker imports otgrid and loads the Numba cache (a problem of each size each)."""
    for grid in grids:
        solve_many(problem_list(2 * n_workers), grid, client=client, batch_size=1, tol=1e-2,
                   progress=False)


def overhead(client, tasks: int, n_workers: int) -> dict:
    """Seconds per task of trivial tasks (batch 1), through solve_many and through sweep."""
    grid = og.Grid((0.0, 1.0), 8)
    flat = np.full(8, 1 / 8)
    trivial = [(flat, flat)] * tasks
    t0 = time.perf_counter()
    solve_many(trivial, grid, client=client, batch_size=1, progress=False)
    wall = time.perf_counter() - t0
    out = Path(tempfile.mkdtemp(prefix="otgrid-bench-"))
    try:
        t0 = time.perf_counter()
        sweep(trivial, out / "s", grid, client=client, batch_size=1, progress=False)
        wall_sweep = time.perf_counter() - t0
    finally:
        shutil.rmtree(out, ignore_errors=True)
    return {"tasks": tasks, "workers": n_workers, "solve_many_s_per_task": wall / tasks,
            "sweep_s_per_task": wall_sweep / tasks}


def _row(name, workers, wall, seq_wall, n, diff, **extra) -> dict:
    """One row; the overhead is the worker time per problem beyond the sequential compute,
    ``(wall x workers - sequential wall) / problems``."""
    return {"case": name, "workers": workers, "problems": n, "wall_s": wall,
            "problems_per_s": n / wall, "speedup_vs_sequential": seq_wall / wall,
            "overhead_s_per_problem": (wall * workers - seq_wall) / n if workers else None,
            "max_rel_diff_vs_sequential": diff, **extra}


def run_size(size: int, args, clients: dict) -> list[dict]:
    """Every case at one size."""
    grid = og.Grid(BOUNDS, (size, size))
    pairs = problem_list(args.problems)
    print(f"{size}^2: sequential, one by one ...", flush=True)
    seq_wall, ref = sequential(pairs, grid, args.tol)
    rows = [_row("sequential, one by one", 0, seq_wall, seq_wall, len(pairs), 0.0,
                 iterations_mean=float(np.mean([r.iterations for r in ref])),
                 converged=sum(r.converged for r in ref))]
    batch = auto_batch_size(len(pairs), grid.size, 2)
    print(f"{size}^2: sequential, batches of {batch} ...", flush=True)
    wall = sequential_batched(pairs, grid, args.tol, batch)
    rows.append(_row(f"sequential, batches of {batch} (auto for 2 workers)", 0, wall,
                     seq_wall, len(pairs), 0.0, batch=batch))
    for n, client in clients.items():
        print(f"{size}^2: dask, {n} worker(s) ...", flush=True)
        wall, res = cluster_run(client, pairs, grid, args.tol)
        rows.append(_row(f"dask, {n} worker(s), batch auto", n, wall, seq_wall, len(pairs),
                         check(res, ref), batch=auto_batch_size(len(pairs), grid.size, n)))
    if args.threads_study and size * size * 4 >= 1 << 18 and 2 in clients:
        for threads, label in ((None, "default threads (oversubscribed)"), (1, "1 thread")):
            print(f"{size}^2: dask, 2 workers, batch 4, {label} ...", flush=True)
            wall, res = cluster_run(clients[2], pairs, grid, args.tol, batch_size=4,
                                    worker_threads=threads)
            rows.append(_row(f"dask, 2 workers, batch 4, {label}", 2, wall, seq_wall,
                             len(pairs), check(res, ref), batch=4))
    for r in rows:
        r["size"] = size
    return rows


# --------------------------------------------------------------------------- projection
def projection(report: dict, nodes: int) -> list[dict]:
    """Problems per second of ``nodes`` machines like this one (a worker per core), per size:
    ``min(W / (t + h), b / o)``, from the measured ``t``, ``h`` and ``o``."""
    workers = nodes * report["machine"]["cores"]
    o = report["overhead"]
    out = []
    for size in sorted({r["size"] for r in report["rows"]}):
        rows = [r for r in report["rows"] if r["size"] == size]
        seq = rows[0]
        two = next((r for r in rows if r["case"].startswith("dask, 2 worker")), None)
        if two is None:
            continue
        t = seq["wall_s"] / seq["problems"]
        h = two["overhead_s_per_problem"]   # t + h: a worker's seconds per problem there
                                            # (h < 0 when batching gains more than it costs)
        b = auto_batch_size(10 ** 9, size * size, workers)   # a large sweep
        compute = workers / (t + h)
        entry = {"size": size, "nodes": nodes, "workers": workers, "t_s": t, "h_s": h,
                 "batch": b, "compute_bound_per_s": compute}
        for mode, key in (("solve_many", "solve_many_s_per_task"), ("sweep", "sweep_s_per_task")):
            ceiling = b / o[key]
            entry[f"{mode}_ceiling_per_s"] = ceiling
            entry[f"{mode}_projected_per_s"] = min(compute, ceiling)
        out.append(entry)
    return out


# --------------------------------------------------------------------------- report
def machine() -> dict:
    import dask
    import distributed
    import numba

    from otgrid.distributed.cluster import usable_cores

    return {"python": platform.python_version(), "platform": platform.platform(),
            "processor": platform.processor(), "cores": usable_cores(),
            "numba": numba.__version__, "numpy": np.__version__, "dask": dask.__version__,
            "distributed": distributed.__version__, "otgrid": og.__version__,
            "numba_threads": numba.config.NUMBA_NUM_THREADS}


def _table(report: dict) -> list[str]:
    lines = ["| size | case | wall s | problems/s | vs sequential | overhead s/problem | "
             "max rel. diff |", "|---|---|---|---|---|---|---|"]
    for r in report["rows"]:
        ovh = "" if r["overhead_s_per_problem"] is None else f"{r['overhead_s_per_problem']:.3f}"
        lines.append(f"| {r['size']}² | {r['case']} | {r['wall_s']:.1f} | "
                     f"{r['problems_per_s']:.2f} | {r['speedup_vs_sequential']:.2f}x | {ovh} | "
                     f"{r['max_rel_diff_vs_sequential']:.1e} |")
    return lines


def _goal_lines(report: dict) -> list[str]:
    out = []
    for r in report["rows"]:
        if r["case"].startswith("dask, 2 worker"):
            met = "met" if r["speedup_vs_sequential"] >= GOAL else "NOT met"
            out.append(f"- {r['size']}²: 2 workers {r['speedup_vs_sequential']:.2f}x the "
                       f"sequential loop (goal {GOAL}x: {met}).")
    if any((r["overhead_s_per_problem"] or 0.0) < 0 for r in report["rows"]):
        out.append("- A negative overhead: the workers solve their problems in batches of the "
                   "auto size, which took less time per problem here than solving them one by "
                   "one (see the sequential row with the same batches); the speed-up over the "
                   "one-by-one loop includes that gain.")
    return out


def _projection_lines(report: dict) -> list[str]:
    o = report["overhead"]
    lines = [f"Per-task overhead ({o['tasks']} trivial tasks, batch 1, {o['workers']} workers): "
             f"`solve_many` {1e3 * o['solve_many_s_per_task']:.1f} ms per task, `sweep` (a "
             f"record written and fsynced per problem) {1e3 * o['sweep_s_per_task']:.1f} ms "
             "per task.", ""]
    proj = report["projection"]
    if not proj:
        return lines
    p0 = proj[0]
    lines += [f"**Projection** (not a measurement) for {p0['nodes']} machines like this one, "
              f"{p0['workers']} single-threaded workers: problems/s = min(W / (t + h), b / o), "
              "with t the sequential seconds per problem, h the measured worker overhead per "
              "problem (2-worker run), b the auto batch size of a large sweep, o the measured "
              "seconds per task above. It assumes workers as fast as these cores, a network as "
              "fast as this loopback and one client.", "",
              "| size | t s | h s | b | compute bound /s | solve_many /s | sweep /s |",
              "|---|---|---|---|---|---|---|"]
    for p in proj:
        lines.append(f"| {p['size']}² | {p['t_s']:.3f} | {p['h_s']:.3f} | {p['batch']} | "
                     f"{p['compute_bound_per_s']:.0f} | {p['solve_many_projected_per_s']:.0f} | "
                     f"{p['sweep_projected_per_s']:.0f} |")
    return lines


def markdown(report: dict) -> str:
    m = report["machine"]
    head = [f"{m['cores']} cores ({m['processor'] or m['platform']}), Python {m['python']}, "
            f"dask/distributed {m['distributed']}, Numba {m['numba']}, otgrid {m['otgrid']}; "
            f"load average {report['loadavg_before'][0]:.2f} before, "
            f"{report['loadavg_after'][0]:.2f} after. tol = {report['tol']:g}, "
            f"{report['problems']} problems per size; produced by "
            "`benchmarks/bench_distributed.py`."]
    lines = ["# otgrid.distributed: sweep throughput on one machine", "", *head, "",
             *_table(report), "", *_goal_lines(report), "", *_projection_lines(report)]
    return "\n".join(lines) + "\n"


def docs_section(report: dict) -> str:
    """The reStructuredText that goes between the markers of docs/sweeps.rst."""
    m, o = report["machine"], report["overhead"]
    rows = [r for r in report["rows"] if not r["case"].startswith("sequential, batches")]
    text = [f"Measured on {m['cores']} cores (load average "
            f"{report['loadavg_before'][0]:.1f}), ``tol={report['tol']:g}``, "
            f"{report['problems']} problems per size:", "",
            ".. list-table::", "   :header-rows: 1", "",
            "   * - size", "     - case", "     - problems/s", "     - vs sequential"]
    for r in rows:
        text += [f"   * - {r['size']}²", f"     - {r['case']}",
                 f"     - {r['problems_per_s']:.2f}", f"     - {r['speedup_vs_sequential']:.2f}x"]
    if any((r["overhead_s_per_problem"] or 0.0) < 0 for r in report["rows"]):
        text += ["", "The workers solve their problems in batches (the auto size), which took "
                 "less time per problem than the one-by-one loop: the speed-ups include that "
                 "gain (the JSON and ``benchmarks/results/distributed.md`` have the sequential "
                 "loop with the same batches)."]
    text += ["", f"Measured overhead: ``o`` = {1e3 * o['solve_many_s_per_task']:.1f} ms per task "
             f"(``solve_many``), {1e3 * o['sweep_s_per_task']:.1f} ms (``sweep``)."]
    for p in report["projection"]:
        bound = ("compute-bound" if p["sweep_projected_per_s"] >= p["compute_bound_per_s"]
                 else "bound by the client and scheduler")
        text += ["", f"*Projection* for {p['nodes']} such machines ({p['workers']} workers) at "
                 f"{p['size']}² (``t`` = {p['t_s']:.3g} s, ``h`` = {p['h_s']:.3g} s, "
                 f"``b`` = {p['batch']}): about {p['solve_many_projected_per_s']:.0f} problems/s "
                 f"with ``solve_many``, {p['sweep_projected_per_s']:.0f} with ``sweep`` "
                 f"({bound})."]
    return "\n".join(text) + "\n"


def update_docs(report: dict, page: Path = DOCS_PAGE) -> None:
    """Replace the text between the markers of docs/sweeps.rst by :func:`docs_section`."""
    text = page.read_text(encoding="utf-8")
    pattern = re.compile(rf"({re.escape(DOCS_START)}\n\n).*?(\n{re.escape(DOCS_END)})", re.S)
    if not pattern.search(text):
        raise SystemExit(f"{page}: the markers {DOCS_START!r} and {DOCS_END!r} are missing")
    page.write_text(pattern.sub(lambda m: m.group(1) + docs_section(report) + m.group(2), text),
                    encoding="utf-8")


# --------------------------------------------------------------------------- main
def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[128, 256])
    parser.add_argument("--problems", type=int, default=48)
    parser.add_argument("--tol", type=float, default=1e-4)
    parser.add_argument("--tasks", type=int, default=200)
    parser.add_argument("--nodes", type=int, default=100, help="nodes of the projection")
    parser.add_argument("--threads-study", action="store_true", dest="threads_study",
                        help="also 2 workers with Numba's default threads (oversubscribed)")
    parser.add_argument("--quick", action="store_true",
                        help="smoke test: 8 problems at 64^2, 20 trivial tasks")
    parser.add_argument("--out-dir", type=Path, default=None,
                        help="where to write the report (default: benchmarks/results; "
                             "with --quick a temporary folder)")
    parser.add_argument("--update-docs", action="store_true", dest="update_docs",
                        help="write the numbers and the projection into docs/sweeps.rst")
    args = parser.parse_args(argv)
    if args.quick:
        args.sizes, args.problems, args.tasks = [64], 8, 20
        if args.update_docs:
            parser.error("--update-docs writes the docs from a full run, not from --quick")
        if args.out_dir is None:
            args.out_dir = Path(tempfile.mkdtemp(prefix="otgrid-bench-"))
    if args.out_dir is None:
        args.out_dir = RESULTS
    return args


def measure(args: argparse.Namespace) -> dict:
    """Start the clusters, run every case, measure the overhead; the report."""
    from distributed import Client, LocalCluster

    report = {"tol": args.tol, "problems": args.problems, "machine": machine(),
              "loadavg_before": list(os.getloadavg()), "rows": []}
    grids = [og.Grid(BOUNDS, (s, s)) for s in args.sizes]
    for grid in grids:  # Numba compiled (or loaded from its cache) before any clock
        sequential(problem_list(1), grid, 1e-2)
    clients, clusters = {}, []
    try:
        for n in (1, 2):
            clusters.append(LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                                         dashboard_address=":0"))
            clients[n] = Client(clusters[-1], set_as_default=False)
            warm_up(clients[n], grids, n)
        for s in args.sizes:
            report["rows"] += run_size(s, args, clients)
        print("per-task overhead ...", flush=True)
        report["overhead"] = overhead(clients[2], args.tasks, 2)
    finally:
        for c in clients.values():
            c.close()
        for cl in clusters:
            cl.close()
    report["loadavg_after"] = list(os.getloadavg())
    report["projection"] = projection(report, args.nodes)
    report["auto_batch_cap"] = MAX_AUTO_BATCH
    return report


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    t0 = time.perf_counter()
    report = measure(args)
    report["benchmark_seconds"] = time.perf_counter() - t0
    args.out_dir.mkdir(parents=True, exist_ok=True)
    name = "distributed_quick" if args.quick else "distributed"
    (args.out_dir / f"{name}.json").write_text(json.dumps(report, indent=2) + "\n")
    (args.out_dir / f"{name}.md").write_text(markdown(report), encoding="utf-8")
    if args.update_docs:
        update_docs(report)
        print(f"updated {DOCS_PAGE}")
    print(markdown(report))
    print(f"written to {args.out_dir} in {report['benchmark_seconds']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
