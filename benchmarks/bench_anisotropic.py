"""The critic solver on anisotropic cells: the per-axis dual steps against the plain iteration.

``otgrid.critic.backend_numpy.AXIS_WEIGHTS_MIN_RATIO`` decides, per norm, from which ratio of
the cells' sides the iteration takes a dual step per axis (``sigma dx_k / max dx``) and shrinks
in its metric; this script solves the same problems with that policy (``default``) and with
the plain iteration everywhere (``plain``: the policy set to infinity), side by side:

* ``fuzz``: random problems (3 to 32 cells per axis, measures ``U(0, 1)^3`` per cell, boxes 2
  to 1e4 times longer along a random axis, the two norms in turn), relative gap 1e-6, at most
  20 000 iterations; the cityblock certificates are checked against SciPy's HiGHS (the LP of
  ``tests/references.py``): the bounds must contain its value.
* ``smooth``: a Gaussian against eight Gaussians on a ring on ``n x a n`` cells of a square
  (cells ``a`` times longer along x), and smooth pairs on boxes with side ratios of 1 500 to
  3 000.

Usage::

    python benchmarks/bench_anisotropic.py                 # writes results/anisotropic.{md,json}
    python benchmarks/bench_anisotropic.py --problems 10   # a quick look

Iteration counts and statuses are deterministic; seconds are this machine's (numba backend).
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from bench_first_release import ROOT, machine_info
from references import kr_lp_2d_cityblock_highs

import otgrid as og
from otgrid.critic import backend_numpy

TOL = 1e-6
MAX_ITER = 20_000
POLICIES = {"plain": {"euclidean": np.inf, "cityblock": np.inf},
            "default": dict(backend_numpy.AXIS_WEIGHTS_MIN_RATIO)}


def fuzz_problems(count: int, seed: int = 1) -> list[dict]:
    """``count`` random anisotropic problems (see the module docstring)."""
    rng = np.random.default_rng(seed)
    out = []
    for t in range(count):
        shape = tuple(int(v) for v in rng.integers(3, 33, size=2))
        ratio = 10 ** rng.uniform(0.3, 4)
        side = rng.uniform(0.5, 2.0)
        box = ([(0, side * ratio), (0, side)] if rng.random() < 0.5
               else [(0, side), (0, side * ratio)])
        mu, nu = rng.random(shape) ** 3, rng.random(shape) ** 3
        out.append({"name": f"fuzz{t}", "grid": og.Grid(box, shape), "mu": mu / mu.sum(),
                    "nu": nu / nu.sum(), "norm": ("cityblock", "euclidean")[t % 2]})
    return out


def _ring_pair(grid: og.Grid, unit: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
    """N(0, I) against eight Gaussians (variance 0.25) on the circle of radius 2, in the
    coordinates divided by ``unit``."""
    x, y = np.meshgrid(grid.centers[0] / unit[0], grid.centers[1] / unit[1], indexing="ij")
    mu = np.exp(-(x ** 2 + y ** 2) / 2)
    nu = sum(np.exp(-((x - 2 * np.cos(a)) ** 2 + (y - 2 * np.sin(a)) ** 2) / 0.5)
             for a in np.arange(8) * np.pi / 4)
    return mu / mu.sum(), nu / nu.sum()


def smooth_problems() -> list[dict]:
    """The ring pair on elongated cells of a square, and on elongated boxes."""
    out = []
    for a in (4, 16, 32):
        grid = og.Grid([(-4.0, 4.0), (-4.0, 4.0)], (32, 32 * a))
        mu, nu = _ring_pair(grid, (1.0, 1.0))
        for norm in ("cityblock", "euclidean"):
            out.append({"name": f"ring 32x{32 * a}", "grid": grid, "mu": mu, "nu": nu,
                        "norm": norm})
    for shape, box in (((16, 64), [(-4.0 * 400, 4.0 * 400), (-4.0, 4.0)]),
                       ((48, 24), [(-4.0, 4.0), (-4.0 * 1500, 4.0 * 1500)]),
                       ((64, 64), [(-4.0, 4.0), (-4.0 * 1500, 4.0 * 1500)])):
        grid = og.Grid(box, shape)
        unit = (box[0][1] / 4.0, box[1][1] / 4.0)
        mu, nu = _ring_pair(grid, unit)
        sides = (box[0][1] - box[0][0], box[1][1] - box[1][0])
        out.append({"name": f"ring box {max(sides) / min(sides):g}:1",
                    "grid": grid, "mu": mu, "nu": nu, "norm": "euclidean"})
    return out


def run(problem: dict, check: bool) -> dict:
    """Solve one problem with each policy; the cityblock bounds against HiGHS (``check``)."""
    grid = problem["grid"]
    ratio = max(grid.dx) / min(grid.dx)
    row = {"name": problem["name"], "shape": list(grid.shape), "ratio": float(ratio),
           "norm": problem["norm"]}
    ref = None
    if check and problem["norm"] == "cityblock":
        ref, _ = kr_lp_2d_cityblock_highs(problem["mu"], problem["nu"], grid.dx)
        row["highs"] = float(ref)
    for policy, ratios in POLICIES.items():
        backend_numpy.AXIS_WEIGHTS_MIN_RATIO = ratios
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = og.solve_critic(problem["mu"], problem["nu"], grid, norm=problem["norm"],
                                  tol=TOL, max_iter=MAX_ITER, backend="numba")
        row[policy] = {"status": res.status, "iterations": int(res.iterations),
                       "seconds": float(res.seconds),
                       "rel_gap": float(res.gap / res.upper), "lower": float(res.lower),
                       "upper": float(res.upper)}
        if ref is not None:
            row[policy]["contains_highs"] = bool(
                res.lower <= ref * (1 + 1e-9) and res.upper >= ref * (1 - 1e-9))
    backend_numpy.AXIS_WEIGHTS_MIN_RATIO = POLICIES["default"]
    return row


def _summary(rows: list[dict]) -> list[str]:
    lines = ["| set | norm | problems | policy | not converged | median iterations | "
             "mean iterations | seconds |", "|---|---|---:|---|---:|---:|---:|---:|"]
    for group in ("fuzz", "smooth"):
        for norm in ("cityblock", "euclidean"):
            sel = [r for r in rows if r["set"] == group and r["norm"] == norm]
            if not sel:
                continue
            for policy in POLICIES:
                its = [r[policy]["iterations"] for r in sel]
                bad = sum(r[policy]["status"] != "converged" for r in sel)
                secs = sum(r[policy]["seconds"] for r in sel)
                lines.append(f"| {group} | {norm} | {len(sel)} | {policy} | {bad} | "
                             f"{np.median(its):,.0f} | {np.mean(its):,.0f} | {secs:.1f} |")
    return lines


def _table(rows: list[dict]) -> list[str]:
    lines = ["| set | problem | cells | side ratio | norm | plain | default |",
             "|---|---|---|---:|---|---|---|"]
    for r in rows:
        cells = [f"{r[p]['status']} {r[p]['iterations']:,} ({r[p]['seconds']:.2f} s)"
                 for p in POLICIES]
        lines.append(f"| {r['set']} | {r['name']} | {r['shape'][0]} x {r['shape'][1]} | "
                     f"{r['ratio']:,.0f} | {r['norm']} | {cells[0]} | {cells[1]} |")
    return lines


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--problems", type=int, default=40, help="fuzzed problems (40)")
    parser.add_argument("--sets", default="fuzz,smooth", help="fuzz, smooth or both (default)")
    parser.add_argument("--out-dir", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args(argv)
    rows = []
    sets = [("fuzz", lambda: fuzz_problems(args.problems)), ("smooth", smooth_problems)]
    for group, make in sets:
        if group not in args.sets.split(","):
            continue
        problems = make()
        for p in problems:
            row = run(p, check=group == "fuzz")
            row["set"] = group
            rows.append(row)
            print(f"{group:6s} {row['name']:28s} {row['norm']:9s} ratio {row['ratio']:9.1f}  "
                  + "  ".join(f"{k} {row[k]['status']} {row[k]['iterations']}"
                              for k in POLICIES), flush=True)
    highs = [r[p].get("contains_highs") for r in rows for p in POLICIES
             if "contains_highs" in r[p]]
    report = {"machine": machine_info(), "tol": TOL, "max_iter": MAX_ITER,
              "policies": {k: {n: (None if v == np.inf else v) for n, v in d.items()}
                           for k, d in POLICIES.items()},
              "rows": rows, "highs_checked": len(highs), "highs_contained": sum(highs)}
    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / "anisotropic.json").write_text(json.dumps(report, indent=1) + "\n")
    m = report["machine"]
    md = ["# The critic solver on anisotropic cells", "",
          f"`python benchmarks/bench_anisotropic.py`, {m['date']}, {m['cpu_model']} "
          f"({m['cpu_usable']} usable cores), numba backend, relative gap {TOL:g}, at most "
          f"{MAX_ITER:,} iterations. `plain`: one dual step for every axis (the iteration "
          "before the per-axis weights); `default`: "
          f"`AXIS_WEIGHTS_MIN_RATIO = {POLICIES['default']}` (per-axis dual steps from that "
          "ratio of the cells' sides). Seconds: the results' own (the solve with its "
          "checks, without compilation).", "",
          f"Cityblock certificates that contain SciPy HiGHS' value: {sum(highs)} of "
          f"{len(highs)}.", "", "## Summary", "", *_summary(rows), "", "## Problems", "",
          *_table(rows), ""]
    (args.out_dir / "anisotropic.md").write_text("\n".join(md))
    return report


if __name__ == "__main__":
    main()
