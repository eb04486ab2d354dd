"""First-release benchmark: otgrid's grid critic (numba) vs cvxpy + Clarabel on the same SOCP.

Problem: mu = N((0, 0), I), nu = N((2, 1), I) on [-4, 4]^2, masses from ``Grid.discretize``,
Euclidean norm (the SOCP of ARCHITECTURE.md §2). For every size and tolerance, otgrid reports
iterations, seconds (the Numba compilation is excluded by a warm-up solve on a tiny grid),
certified lower/upper bounds and the gap; cvxpy + Clarabel solves the identical SOCP once per
size (seconds, value, status), skipped where its predicted time exceeds ``--cvxpy-limit``.

Run from the repository root::

    python benchmarks/bench_first_release.py                      # 64 128 256, tol 1e-4 1e-6
    python benchmarks/bench_first_release.py --sizes 64 128 --tols 1e-4
    python benchmarks/bench_first_release.py --quick              # smoke test, seconds

Writes ``benchmarks/results/first_release.json`` and ``first_release.md`` (or ``--out-dir``).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import sys
import time
import warnings
from importlib import metadata
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the independent reference solvers live with the tests

from references import socp_2d_euclidean_cvxpy  # noqa: E402

import otgrid as og  # noqa: E402

BOUNDS = [(-4.0, 4.0), (-4.0, 4.0)]
MEAN_MU = (0.0, 0.0)
MEAN_NU = (2.0, 1.0)
CVXPY_TOL = 1e-10
# Clarabel's time grows roughly like (cells)^1.35 here; 1.5 keeps the prediction conservative.
CVXPY_EXPONENT = 1.5


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def machine_info() -> dict:
    """CPU, thread and library versions of this run."""
    import numba

    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not on Linux
        usable = os.cpu_count()
    cpu_model = platform.processor() or ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu_model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu_model": cpu_model,
        "cpu_count": os.cpu_count(),
        "cpu_usable": usable,
        "numba_threads": numba.get_num_threads(),
        "versions": {name: _version(name) for name in
                     ("otgrid", "numpy", "numba", "scipy", "cvxpy", "clarabel")},
    }


def problem(n: int) -> tuple[og.Grid, np.ndarray, np.ndarray]:
    """The Gaussian pair on an ``n x n`` grid over [-4, 4]^2."""
    grid = og.Grid(BOUNDS, (n, n))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", og.OutsideMassWarning)
        mu = grid.discretize(og.Normal(mean=list(MEAN_MU), cov=1.0), outside="renormalize")
        nu = grid.discretize(og.Normal(mean=list(MEAN_NU), cov=1.0), outside="renormalize")
    return grid, mu, nu


def warm_up(sizes: list[int]) -> float:
    """Compile the Numba kernels; returns the seconds it took.

    A full solve on a tiny grid, then two iterations at every benchmarked size, so that any
    size-dependent code path (e.g. single- vs multi-threaded kernels) is compiled before timing.
    """
    t0 = time.perf_counter()
    grid, mu, nu = problem(8)
    og.solve_critic(mu, nu, grid, norm="euclidean", tol=1e-3, backend="numba")
    for n in sizes:
        grid, mu, nu = problem(n)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", og.ConvergenceWarning)
            og.solve_critic(mu, nu, grid, norm="euclidean", max_iter=2, backend="numba")
    return time.perf_counter() - t0


def run_otgrid(n: int, tol: float, max_iter: int, repeat: int) -> dict:
    """Solve with the numba backend; best wall time over ``repeat`` runs."""
    grid, mu, nu = problem(n)
    best = np.inf
    res = None
    for _ in range(repeat):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", og.ConvergenceWarning)
            t0 = time.perf_counter()
            res = og.solve_critic(mu, nu, grid, norm="euclidean", tol=tol, max_iter=max_iter,
                                  backend="numba")
            best = min(best, time.perf_counter() - t0)
    return {
        "solver": "otgrid-numba",
        "n": n,
        "tol": tol,
        "iterations": int(res.iterations),
        "seconds": float(best),
        "lower": float(res.lower),
        "upper": float(res.upper),
        "w1": float(res.w1),
        "gap": float(res.gap),
        "outside_mass_nu": float(grid.outside_mass(og.Normal(mean=list(MEAN_NU), cov=1.0))),
        "rel_gap": float(res.gap / res.upper) if res.upper > 0 else 0.0,
        "converged": bool(res.converged),
        "status": str(res.status),
    }


def run_cvxpy(n: int) -> dict:
    """Solve the identical SOCP with cvxpy + Clarabel."""
    grid, mu, nu = problem(n)
    ref = socp_2d_euclidean_cvxpy(mu, nu, grid.dx, tol=CVXPY_TOL)
    return {
        "solver": "cvxpy-clarabel",
        "n": n,
        "tol": ref.tol,
        "attempts": [list(a) for a in ref.attempts],
        "seconds": ref.seconds,
        "solve_seconds": ref.solve_seconds,
        "value": ref.value,
        "status": ref.status,
        "max_violation": ref.max_violation,
        "skipped": False,
    }


def _fmt(x: float, spec: str = ".3g") -> str:
    return format(x, spec) if np.isfinite(x) else "—"


def to_markdown(report: dict) -> str:
    """The report as a Markdown page (machine info and two tables)."""
    m = report["machine"]
    v = m["versions"]
    lines = [
        "# First-release benchmark: otgrid vs cvxpy + Clarabel",
        "",
        "Problem: W1 grid SOCP (Euclidean norm), mu = N((0,0), I), nu = N((2,1), I) on "
        "[-4, 4]², masses from `Grid.discretize`.",
        "",
        f"Machine: {m['cpu_model'] or 'unknown CPU'}, {m['cpu_count']} CPUs "
        f"({m['cpu_usable']} usable, {m['numba_threads']} Numba threads), {m['platform']}, "
        f"Python {m['python']}.",
        f"Versions: otgrid {v['otgrid']}, numpy {v['numpy']}, numba {v['numba']}, "
        f"scipy {v['scipy']}, cvxpy {v['cvxpy']}, clarabel {v['clarabel']}.",
        f"Date: {m['date']}. Numba warm-up (compilation, excluded below): "
        f"{report['warm_up_seconds']:.2f} s.",
        "",
        "## otgrid (backend `numba`)",
        "",
        "| n | tol | iterations | seconds | lower | upper | gap | gap / upper | converged "
        "| rel. diff. to Clarabel |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|:---:|---:|",
    ]
    refs = {r["n"]: r for r in report["cvxpy"] if not r["skipped"]}
    for r in report["otgrid"]:
        ref = refs.get(r["n"])
        diff = abs(r["w1"] - ref["value"]) / ref["value"] if ref else float("nan")
        lines.append(
            f"| {r['n']} | {r['tol']:.0e} | {r['iterations']} | {r['seconds']:.3f} "
            f"| {r['lower']:.10f} | {r['upper']:.10f} | {r['gap']:.2e} | {r['rel_gap']:.2e} "
            f"| {'yes' if r['converged'] else 'no'} | {_fmt(diff, '.1e')} |"
        )
    if report["otgrid"]:
        lines += ["", "Mass of nu outside [-4, 4]² (renormalised away by `Grid.discretize`): "
                  f"{report['otgrid'][0]['outside_mass_nu']:.2e}."]
    lines += [
        "",
        f"## cvxpy + Clarabel (tol_gap_abs = tol_gap_rel = tol_feas = {CVXPY_TOL:g}, "
        "retried at 10x that if not `optimal`)",
        "",
        "| n | seconds (total) | seconds (Clarabel) | value | status | max constraint violation "
        "| tolerance reached |",
        "|---:|---:|---:|---:|:---|---:|---:|",
    ]
    for r in report["cvxpy"]:
        if r["skipped"]:
            lines.append(f"| {r['n']} | skipped | — | — | {r['reason']} | — | — |")
        else:
            lines.append(
                f"| {r['n']} | {r['seconds']:.3f} | {r['solve_seconds']:.3f} "
                f"| {r['value']:.10f} | {r['status']} | {r['max_violation']:.1e} "
                f"| {r['tol']:.0e} |"
            )
    lines += [
        "",
        "Seconds are wall time of one call (best of `--repeat`), after the warm-up. otgrid's "
        "`lower`/`upper` are certified bounds on the grid W1; Clarabel's value is its objective "
        "at the returned critic.",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    """Run the benchmark and write the JSON and Markdown reports."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 128, 256],
                        help="grid sizes n (an n x n grid), default 64 128 256")
    parser.add_argument("--tols", type=float, nargs="+", default=[1e-4, 1e-6],
                        help="relative tolerances for otgrid, default 1e-4 1e-6")
    parser.add_argument("--quick", action="store_true",
                        help="smoke test: sizes 32 64, tol 1e-4 (overrides --sizes/--tols)")
    parser.add_argument("--max-iter", type=int, default=100_000, help="otgrid's max_iter")
    parser.add_argument("--repeat", type=int, default=1, help="timed runs per case (best kept)")
    parser.add_argument("--cvxpy-limit", type=float, default=120.0,
                        help="skip cvxpy sizes predicted to take longer than this (seconds)")
    parser.add_argument("--no-cvxpy", action="store_true", help="do not run cvxpy at all")
    parser.add_argument("--out-dir", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args(argv)
    sizes = [32, 64] if args.quick else sorted(args.sizes)
    tols = [1e-4] if args.quick else args.tols

    report = {"name": "first_release", "machine": machine_info(),
              "problem": {"bounds": BOUNDS, "mean_mu": MEAN_MU, "mean_nu": MEAN_NU, "cov": 1.0,
                          "norm": "euclidean"},
              "warm_up_seconds": warm_up(sizes), "otgrid": [], "cvxpy": []}
    print(f"warm-up (numba compilation): {report['warm_up_seconds']:.2f} s", flush=True)

    for n in sizes:
        for tol in tols:
            r = run_otgrid(n, tol, args.max_iter, args.repeat)
            report["otgrid"].append(r)
            print(f"otgrid  n={n:4d} tol={tol:.0e}: {r['iterations']:6d} it, "
                  f"{r['seconds']:8.3f} s, [{r['lower']:.10f}, {r['upper']:.10f}], "
                  f"gap/upper={r['rel_gap']:.1e}", flush=True)

    last = None  # (cells, seconds) of the last cvxpy solve, to predict the next one
    for n in sizes:
        if args.no_cvxpy:
            report["cvxpy"].append({"n": n, "skipped": True, "reason": "--no-cvxpy"})
            continue
        if last is not None:
            predicted = last[1] * (n * n / last[0]) ** CVXPY_EXPONENT
            if predicted > args.cvxpy_limit:
                reason = (f"predicted {predicted:.0f} s > {args.cvxpy_limit:.0f} s "
                          f"(extrapolated from n={int(np.sqrt(last[0]))})")
                report["cvxpy"].append({"n": n, "skipped": True, "reason": reason})
                print(f"cvxpy   n={n:4d}: skipped, {reason}", flush=True)
                continue
        r = run_cvxpy(n)
        report["cvxpy"].append(r)
        last = (n * n, r["seconds"])
        print(f"cvxpy   n={n:4d}: {r['seconds']:8.3f} s, value {r['value']:.10f}, "
              f"{r['status']}", flush=True)

    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / "first_release.json").write_text(json.dumps(report, indent=2) + "\n",
                                                     encoding="utf-8")
    (args.out_dir / "first_release.md").write_text(to_markdown(report), encoding="utf-8")
    print(f"wrote {args.out_dir / 'first_release.json'} and first_release.md")
    return report


if __name__ == "__main__":
    main()
