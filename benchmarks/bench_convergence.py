"""Issue 3 benchmark: otgrid's grid critic and its peers side by side, in one process.

Sections (``--sections``, default all, in this order):

``bandwidth``
    NumPy copy bandwidth, then the fused Numba kernels of one iteration (``residual``,
    ``dual_step``) and the DCT Poisson solve, timed apart at 256²..1024² in float64 and float32;
    achieved GB/s under a stated byte model and its fraction of the copy bandwidth.
``euclidean``
    N((0,0), I) vs N((2,1), I) and 8gaussians vs N(0, I) on [-4, 4]² at 64²..1024²: otgrid
    (float64, float32) to relative gap 1e-4 and 1e-6, and cvxpy + Clarabel (tol 1e-8) up to the
    size it finishes in ``--clarabel-limit`` seconds.
``ablation``
    Fixed step, adaptive restarts only, multilevel only, both, float32 (128², 256²).
``cityblock``
    ``norm="cityblock"`` to 1e-7 at 32², 64² against POT's ``ot.emd2`` with L1 cost.
``1d``
    N(0, 1) vs N(1, 1.5²) on [-8, 8] with 1024 .. 10^6 cells, to 1e-8, against the closed form,
    SciPy HiGHS and POT's ``wasserstein_1d``.
``batches``
    64 problems at 64² in one batch call vs 64 calls one after another.

Run from the repository root (test extras installed: cvxpy, clarabel, POT, matplotlib)::

    python benchmarks/bench_convergence.py                          # everything (long)
    python benchmarks/bench_convergence.py --quick                  # smoke test, about a minute
    python benchmarks/bench_convergence.py --sections bandwidth 1d  # a subset
    python benchmarks/bench_convergence.py --sections euclidean --sizes 64 128 256

Writes ``convergence.json``, ``convergence.md`` and ``convergence_iterations.png`` under
``benchmarks/results/`` (or ``--out-dir``); the JSON is rewritten after every section.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))  # when imported (tests)

# bench_first_release puts tests/ (the independent reference solvers) on sys.path
from bench_first_release import (
    ROOT,
    _fmt,
    _version,
    machine_info,
    problem,
)
from references import (
    emd2_cityblock,
    kr_lp_1d_highs,
    socp_2d_euclidean_cvxpy,
    w1_1d_closed_form,
)

import otgrid as og
from otgrid.critic.backends import make_kernels
from otgrid.grid.datasets import eight_gaussians

SECTIONS = ("bandwidth", "euclidean", "ablation", "cityblock", "1d", "batches")
BOUNDS = [(-4.0, 4.0), (-4.0, 4.0)]
CLARABEL_TOL = 1e-8
# Clarabel's time grows roughly like (cells)^1.35 on this SOCP; 1.5 keeps predictions safe.
CLARABEL_EXPONENT = 1.5
# HiGHS on the 1D LP, measured on the 2-core machine: 1e4 cells 0.24-0.42 s, 1e5 1.1-1.8 s
# (0.4 GB), 3e5 27 s (1.6 GB); 1e6 ran past 2 minutes at 16 GB and was stopped. No single power
# law fits (exponent ~0.7 below 1e5, ~2.4 above), so the prediction uses 2 and a hard cap on the
# cells (memory) backs it up.
HIGHS_EXPONENT = 2.0
HIGHS_MAX_CELLS = 300_000
CITYBLOCK_TOL = 1e-7
TOL_1D = 1e-8
BOUNDS_1D = (-8.0, 8.0)
BATCH_RADIUS = 0.5

FULL = {
    "bandwidth_sizes": [256, 512, 1024], "copy_mib": 256,
    "sizes": [64, 128, 256, 512, 1024], "tols": [1e-4, 1e-6],
    "ablation_sizes": [128, 256],
    "cityblock_sizes": [32, 64],
    "sizes_1d": [1024, 10_000, 100_000, 1_000_000],
    "batch": 64, "batch_n": 64,
}
QUICK = {
    "bandwidth_sizes": [64, 128], "copy_mib": 32,
    "sizes": [32, 64], "tols": [1e-4],
    "ablation_sizes": [64],
    "cityblock_sizes": [32],
    "sizes_1d": [1024, 10_000],
    "batch": 8, "batch_n": 32,
}

# The byte model of section 1, in grid-sized arrays (N cells of `itemsize` bytes, ndim = 2).
BYTE_MODEL = {
    "residual": "reads c and y (2 components), writes r: 4 N s",
    "dual_step": "reads f, u, y (2 components), writes f_out, y (2 components): 7 N s",
    "poisson": "DCT-II and its inverse, each one read + one write of the grid per axis: 8 N s "
               "(a lower bound: the eigenvalue scaling and SciPy's internal copies not counted)",
    "iteration": "residual + poisson + dual_step: 19 N s",
}
GRID_ARRAYS = {"residual": 4, "dual_step": 7, "poisson": 8}


# ------------------------------------------------------------------------------------ helpers
@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence the warnings whose content the report carries anyway (status, outside mass)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", og.ConvergenceWarning)
        warnings.simplefilter("ignore", og.OutsideMassWarning)
        yield


def _load() -> float:
    try:
        return float(os.getloadavg()[0])
    except OSError:  # pragma: no cover - not on Unix
        return float("nan")


def gaussian_pair(n: int) -> tuple[og.Grid, np.ndarray, np.ndarray]:
    """N((0,0), I) vs N((2,1), I) on an ``n x n`` grid over [-4, 4]^2."""
    return problem(n)


def eight_vs_normal(n: int) -> tuple[og.Grid, np.ndarray, np.ndarray]:
    """8gaussians (Gulrajani et al.) vs N(0, I) on an ``n x n`` grid over [-4, 4]^2."""
    grid = og.Grid(BOUNDS, (n, n))
    with _quiet():
        mu = grid.discretize(eight_gaussians(), outside="renormalize")
        nu = grid.discretize(og.Normal(mean=[0.0, 0.0], cov=1.0), outside="renormalize")
    return grid, mu, nu


PROBLEMS: dict[str, Callable[[int], tuple[og.Grid, np.ndarray, np.ndarray]]] = {
    "gaussian": gaussian_pair,
    "8gaussians": eight_vs_normal,
}


def problem_1d(n: int) -> tuple[og.Grid, np.ndarray, np.ndarray]:
    """N(0, 1) vs N(1, 1.5^2) on ``n`` cells over [-8, 8]."""
    grid = og.Grid(BOUNDS_1D, n)
    with _quiet():
        mu = grid.discretize(og.Normal(0.0, 1.0), outside="renormalize")
        nu = grid.discretize(og.Normal(1.0, 1.5**2), outside="renormalize")
    return grid, mu, nu


def run_otgrid(mu: np.ndarray, nu: np.ndarray, grid: og.Grid, **kw) -> dict:
    """One timed ``solve_critic`` call; its certificate, status and counters as a dict."""
    with _quiet():
        t0 = time.perf_counter()
        res = og.solve_critic(mu, nu, grid, backend="numba", **kw)
        seconds = time.perf_counter() - t0
    return _row(res, seconds)


def _row(res: og.CriticResult, seconds: float) -> dict:
    return {
        "iterations": int(res.iterations), "seconds": float(seconds),
        "lower": float(res.lower), "upper": float(res.upper), "w1": float(res.w1),
        "gap": float(res.gap), "rel_gap": float(res.relative_gap),
        "converged": bool(res.converged), "status": str(res.status),
        "levels": int(res.levels), "restarts": int(res.restarts),
        "dtype": np.dtype(res.dtype).name,
    }


def _inside(value: float, lower: float, upper: float, rel_slack: float) -> bool:
    slack = rel_slack * abs(value)
    return bool(lower - slack <= value <= upper + slack)


def _overlap(a: dict, b: dict) -> bool:
    return max(a["lower"], b["lower"]) <= min(a["upper"], b["upper"])


def _best_time(fn: Callable[[], object], repeat: int = 15, sample: float = 0.02) -> float:
    """Best over ``repeat`` samples of the mean time of one call (each sample >= ``sample`` s).

    Many short samples: on a shared machine the minimum is the figure least disturbed by
    other processes.
    """
    fn()
    loops = 1
    while True:
        t0 = time.perf_counter()
        for _ in range(loops):
            fn()
        dt = time.perf_counter() - t0
        if dt >= sample or loops >= 1 << 16:
            break
        loops *= 2
    best = dt / loops
    for _ in range(repeat - 1):
        t0 = time.perf_counter()
        for _ in range(loops):
            fn()
        best = min(best, (time.perf_counter() - t0) / loops)
    return best


def warm_up(cfg: dict, sections: list[str]) -> float:
    """Compile (or load from Numba's cache) every kernel the timed solves use; seconds taken.

    Tiny solves in float64 and float32, euclidean and cityblock, 1D, a batch, and a multilevel
    start; then two iterations at every benchmarked 2D size in both dtypes, so that the
    multi-threaded code paths of large grids are loaded before timing.
    """
    t0 = time.perf_counter()
    grid, mu, nu = gaussian_pair(8)
    with _quiet():
        for dt in (np.float64, np.float32):
            for norm in ("euclidean", "cityblock"):
                og.solve_critic(mu, nu, grid, norm=norm, tol=1e-3, dtype=dt, backend="numba")
            og.solve_critic(np.stack([mu, nu, mu]), nu, grid, tol=1e-3, dtype=dt,
                            backend="numba")
            g1, m1, n1 = problem_1d(64)
            og.solve_critic(m1, n1, g1, tol=1e-6, dtype=dt, backend="numba")
            g64, m64, n64 = gaussian_pair(64)
            og.solve_critic(m64, n64, g64, tol=1e-2, dtype=dt, multilevel=True,
                            backend="numba")
        sizes = set()
        if "euclidean" in sections:
            sizes |= set(cfg["sizes"])
        if "ablation" in sections:
            sizes |= set(cfg["ablation_sizes"])
        for n in sorted(sizes):
            grid, mu, nu = gaussian_pair(n)
            for dt in (np.float64, np.float32):
                og.solve_critic(mu, nu, grid, max_iter=2, dtype=dt, multilevel=False,
                                backend="numba")
    return time.perf_counter() - t0


# ------------------------------------------------------------------------ section 1: bandwidth
def copy_bandwidth(nbytes: int, repeat: int = 7) -> dict:
    """NumPy copy (``np.copyto``) of a float64 array of ``nbytes`` bytes: best GB/s.

    Bytes moved: one read and one write of the array (``2 * nbytes``); best of ``repeat``
    copies (each at least 10 ms: small arrays are copied several times per sample).
    """
    src = np.random.default_rng(0).random(max(nbytes // 8, 1))
    dst = np.empty_like(src)
    t = _best_time(lambda: np.copyto(dst, src), repeat=repeat, sample=0.01)
    moved = 2 * src.nbytes
    return {"mib": src.nbytes / (1 << 20), "repeat": repeat, "seconds": t, "bytes": moved,
            "gb_per_s": moved / t / 1e9}


def cache_sizes() -> dict:
    """CPU cache sizes as the kernel reports them (Linux sysfs), e.g. ``{"L3": "480M"}``."""
    out = {}
    base = Path("/sys/devices/system/cpu/cpu0/cache")
    for idx in sorted(base.glob("index*")) if base.exists() else []:
        try:
            level = (idx / "level").read_text().strip()
            kind = (idx / "type").read_text().strip()
            size = (idx / "size").read_text().strip()
        except OSError:
            continue
        if kind != "Instruction":
            out[f"L{level}"] = size
    return out


def time_kernels(n: int, dt: type, rng: np.random.Generator,
                 threads: int | None = None) -> tuple[dict, int, int]:
    """Seconds per call of ``residual``, ``dual_step`` and ``poisson`` on an ``n x n`` grid.

    The kernels object is the solver's own (``make_kernels("numba", ...)``), run inside its
    ``session()`` (the thread count the solver would use for one problem of this size), or
    with ``threads`` Numba threads and FFT workers when given. Returns the times, the Numba
    threads and the FFT workers.
    """
    import numba

    grid = og.Grid(BOUNDS, (n, n))
    kern = make_kernels("numba", grid.shape, grid.dx, "euclidean", dt)
    kern.with_batch(1)
    c = rng.standard_normal((1, n, n)).astype(dt)
    c -= c.mean()
    y = (0.1 * rng.standard_normal((1, 2, n, n))).astype(dt)
    f = rng.standard_normal((1, n, n)).astype(dt)
    u = (1e-3 * rng.standard_normal((1, n, n))).astype(dt)
    r, f_out = np.empty_like(f), np.empty_like(f)
    tau = np.array([1e-2])
    sigma = 1.0 / tau
    if threads is not None:
        kern.workers = threads
    with kern.session():
        if threads is not None:
            numba.set_num_threads(threads)
        times = {
            "residual": _best_time(lambda: kern.residual(c, y, r)),
            "dual_step": _best_time(lambda: kern.dual_step(f, u, y, f_out, tau, sigma)),
            "poisson": _best_time(lambda: kern.poisson(r)),
        }
        threads = numba.get_num_threads()
    return times, threads, kern.workers


def solver_threads(n: int) -> int:
    """Numba threads the solver uses for one ``n x n`` problem."""
    import numba

    kern = make_kernels("numba", (n, n), (1.0, 1.0), "euclidean", np.float64)
    kern.with_batch(1)
    with kern.session():
        return numba.get_num_threads()


def bench_bandwidth(cfg: dict) -> dict:
    """Section 1: kernel timings and achieved bandwidth against the copy bandwidth."""
    copy = copy_bandwidth(cfg["copy_mib"] << 20)
    print(f"[bandwidth] NumPy copy: {copy['gb_per_s']:.2f} GB/s "
          f"({cfg['copy_mib']} MiB, best of {copy['repeat']})", flush=True)
    rows = []
    rng = np.random.default_rng(1)
    for n in cfg["bandwidth_sizes"]:
        for dt, one in [(d, o) for d in (np.float64, np.float32) for o in (False, True)]:
            if one and solver_threads(n) == 1:
                continue  # the solver already runs this size on one thread
            times, threads, workers = time_kernels(n, dt, rng, 1 if one else None)
            item = np.dtype(dt).itemsize
            row = {"n": n, "dtype": np.dtype(dt).name, "threads": threads,
                   "fft_workers": workers, "solver_setting": not one}
            for name, t in times.items():
                nbytes = GRID_ARRAYS[name] * n * n * item
                row[name] = {"seconds": t, "bytes": nbytes, "gb_per_s": nbytes / t / 1e9,
                             "fraction_of_copy": nbytes / t / 1e9 / copy["gb_per_s"]}
            t_it = sum(times.values())
            b_it = sum(GRID_ARRAYS.values()) * n * n * item
            row["iteration"] = {"seconds": t_it, "bytes": b_it, "gb_per_s": b_it / t_it / 1e9,
                                "fraction_of_copy": b_it / t_it / 1e9 / copy["gb_per_s"]}
            # the same traffic as one iteration, as a copy: the cache level the kernels see
            same = copy_bandwidth(b_it // 2)
            row["iteration"]["same_traffic_copy_gb_per_s"] = same["gb_per_s"]
            row["iteration"]["fraction_of_same_traffic_copy"] = (
                b_it / t_it / 1e9 / same["gb_per_s"])
            rows.append(row)
            print(f"[bandwidth] {n}² {row['dtype']} {threads} thr: " + ", ".join(
                f"{k} {row[k]['seconds'] * 1e3:.3f} ms ({row[k]['gb_per_s']:.1f} GB/s, "
                f"{100 * row[k]['fraction_of_copy']:.0f}%)"
                for k in ("residual", "dual_step", "poisson", "iteration")), flush=True)
    return {"copy": copy, "byte_model": BYTE_MODEL, "caches": cache_sizes(), "rows": rows}


# ------------------------------------------------------------------------ section 2: euclidean
def bench_euclidean(cfg: dict, time_limit: float, max_iter: int,
                    clarabel_limit: float | None) -> dict:
    """Section 2: otgrid (float64, float32; each tol) and cvxpy + Clarabel, both problems."""
    rows, clarabel = [], []
    for pname, build in PROBLEMS.items():
        stopped: dict[tuple, int] = {}  # (dtype, tol) -> size that hit the time limit
        last = None  # (cells, seconds) of the last Clarabel solve
        for n in cfg["sizes"]:
            grid, mu, nu = build(n)
            for dt in (np.float64, np.float32):
                for tol in cfg["tols"]:
                    key = (np.dtype(dt).name, tol)
                    base = {"problem": pname, "n": n, "tol": tol, "dtype": key[0]}
                    if key in stopped:
                        rows.append({**base, "skipped": True,
                                     "reason": f"hit the time limit at n={stopped[key]}"})
                        continue
                    r = {**base, **run_otgrid(mu, nu, grid, tol=tol, dtype=dt,
                                              max_iter=max_iter, time_limit=time_limit),
                         "skipped": False}
                    rows.append(r)
                    if r["status"] == "time_limit":
                        stopped[key] = n
                    print(f"[euclidean] {pname:10s} {n:4d}² {key[0]} tol={tol:.0e}: "
                          f"{r['iterations']:6d} it, {r['seconds']:8.3f} s, {r['status']}, "
                          f"[{r['lower']:.10f}, {r['upper']:.10f}]", flush=True)
            if clarabel_limit is None:
                continue
            if last is not None:
                pred = last[1] * (n * n / last[0]) ** CLARABEL_EXPONENT
                if pred > clarabel_limit:
                    reason = (f"predicted {pred:.0f} s > {clarabel_limit:.0f} s "
                              f"(from n={round(np.sqrt(last[0]))}, exponent "
                              f"{CLARABEL_EXPONENT})")
                    clarabel.append({"problem": pname, "n": n, "skipped": True,
                                     "reason": reason})
                    print(f"[euclidean] {pname:10s} {n:4d}² Clarabel skipped: {reason}",
                          flush=True)
                    continue
            ref = socp_2d_euclidean_cvxpy(mu, nu, grid.dx, tol=CLARABEL_TOL)
            clarabel.append({"problem": pname, "n": n, "skipped": False, "value": ref.value,
                             "feasible_value": ref.feasible_value, "status": ref.status,
                             "seconds": ref.seconds, "solve_seconds": ref.solve_seconds,
                             "tol": ref.tol, "max_violation": ref.max_violation,
                             "attempts": [list(a) for a in ref.attempts]})
            last = (n * n, ref.seconds)
            print(f"[euclidean] {pname:10s} {n:4d}² Clarabel: {ref.seconds:8.3f} s, "
                  f"{ref.value:.10f}, {ref.status}", flush=True)
    refs = {(c["problem"], c["n"]): c for c in clarabel if not c["skipped"]}
    for r in rows:
        ref = refs.get((r["problem"], r["n"]))
        if r["skipped"] or ref is None:
            continue
        r["clarabel_inside"] = _inside(ref["value"], r["lower"], r["upper"], ref["tol"])
        r["clarabel_rel_diff"] = abs(r["w1"] - ref["value"]) / ref["value"]
        r["clarabel_over_otgrid"] = ref["seconds"] / r["seconds"]
    return {"clarabel_tol": CLARABEL_TOL, "time_limit": time_limit, "rows": rows,
            "clarabel": clarabel}


# ------------------------------------------------------------------------- section 3: ablation
VARIANTS: dict[str, dict] = {
    "fixed step": {"adaptive_step": False, "multilevel": False},
    "restarts only": {"adaptive_step": True, "multilevel": False},
    "multilevel only": {"adaptive_step": False, "multilevel": True},
    "both (default)": {"adaptive_step": True, "multilevel": True},
    "both, float32": {"adaptive_step": True, "multilevel": True, "dtype": np.float32},
}


def bench_ablation(cfg: dict, time_limit: float, max_iter: int) -> dict:
    """Section 3: each convergence idea on its own."""
    rows = []
    for pname, build in PROBLEMS.items():
        for n in cfg["ablation_sizes"]:
            grid, mu, nu = build(n)
            for tol in cfg["tols"]:
                for vname, kw in VARIANTS.items():
                    r = {"problem": pname, "n": n, "tol": tol, "variant": vname,
                         **run_otgrid(mu, nu, grid, tol=tol, max_iter=max_iter,
                                      time_limit=time_limit, **kw)}
                    rows.append(r)
                    print(f"[ablation] {pname:10s} {n:4d}² tol={tol:.0e} {vname:16s}: "
                          f"{r['iterations']:6d} it, {r['seconds']:8.3f} s, {r['status']}",
                          flush=True)
    return {"variants": {k: {kk: (np.dtype(vv).name if kk == "dtype" else vv)
                             for kk, vv in v.items()} for k, v in VARIANTS.items()},
            "rows": rows}


# ------------------------------------------------------------------------ section 4: cityblock
def bench_cityblock(cfg: dict, time_limit: float, max_iter: int) -> dict:
    """Section 4: the cityblock LP against POT's network simplex on the cell centres."""
    rows = []
    for n in cfg["cityblock_sizes"]:
        grid, mu, nu = gaussian_pair(n)
        r = run_otgrid(mu, nu, grid, norm="cityblock", tol=CITYBLOCK_TOL, max_iter=max_iter,
                       time_limit=time_limit)
        t0 = time.perf_counter()
        pot = emd2_cityblock(mu, nu, grid.centers)
        pot_s = time.perf_counter() - t0
        rel = abs(r["w1"] - pot) / pot
        row = {"n": n, "tol": CITYBLOCK_TOL, **r, "pot_value": pot, "pot_seconds": pot_s,
               "rel_diff": rel, "same_to_1e-6": bool(rel <= 1e-6),
               "pot_inside": _inside(pot, r["lower"], r["upper"], 1e-12),
               "pot_over_otgrid": pot_s / r["seconds"]}
        rows.append(row)
        print(f"[cityblock] {n:3d}²: otgrid {r['iterations']} it {r['seconds']:.3f} s "
              f"[{r['lower']:.10f}, {r['upper']:.10f}] {r['status']}; POT {pot:.10f} "
              f"{pot_s:.3f} s; rel. diff {rel:.1e}", flush=True)
    return {"tol": CITYBLOCK_TOL, "rows": rows}


# ------------------------------------------------------------------------------- section 5: 1D
def bench_1d(cfg: dict, time_limit: float, max_iter: int, highs_limit: float,
             highs_max_cells: int = HIGHS_MAX_CELLS) -> dict:
    """Section 5: 1D against the closed form, SciPy HiGHS and POT's ``wasserstein_1d``."""
    import ot

    rows = []
    last = None
    for n in cfg["sizes_1d"]:
        grid, mu, nu = problem_1d(n)
        r = run_otgrid(mu, nu, grid, tol=TOL_1D, max_iter=max_iter, time_limit=time_limit)
        exact = w1_1d_closed_form(mu, nu, grid.dx[0])
        x = grid.centers[0]
        t0 = time.perf_counter()
        pot = float(ot.wasserstein_1d(x, x, mu, nu, p=1))
        pot_s = time.perf_counter() - t0
        row = {"n": n, "tol": TOL_1D, **r, "closed_form": exact,
               "inside": _inside(exact, r["lower"], r["upper"], 1e-12),
               "rel_diff": abs(r["w1"] - exact) / exact,
               "pot_value": pot, "pot_seconds": pot_s, "pot_rel_diff": abs(pot - exact) / exact,
               "pot_over_otgrid": pot_s / r["seconds"]}
        pred = None if last is None else last[1] * (n / last[0]) ** HIGHS_EXPONENT
        if n > highs_max_cells:
            row["highs"] = {"skipped": True,
                            "reason": f"{n} cells > {highs_max_cells} (HiGHS needed 16 GB and "
                                      "over 2 min at 10^6 cells)"}
        elif pred is not None and pred > highs_limit:
            row["highs"] = {"skipped": True,
                            "reason": f"predicted {pred:.0f} s > {highs_limit:.0f} s "
                                      f"(from n={last[0]}, exponent {HIGHS_EXPONENT})"}
        else:
            t0 = time.perf_counter()
            hv, _ = kr_lp_1d_highs(mu, nu, grid.dx[0])
            hs = time.perf_counter() - t0
            last = (n, hs)
            row["highs"] = {"skipped": False, "value": hv, "seconds": hs,
                            "rel_diff": abs(hv - exact) / exact,
                            "over_otgrid": hs / r["seconds"]}
        rows.append(row)
        h = row["highs"]
        print(f"[1d] n={n:8d}: otgrid {r['iterations']} it {r['seconds']:.4f} s "
              f"{r['status']}, rel. diff {row['rel_diff']:.1e}; POT {pot_s:.4f} s; HiGHS "
              + (h["reason"] if h["skipped"] else f"{h['seconds']:.3f} s"), flush=True)
    return {"tol": TOL_1D, "rows": rows}


# -------------------------------------------------------------------------- section 6: batches
def bench_batches(cfg: dict, time_limit: float, max_iter: int) -> dict:
    """Section 6: one batch call against the same problems solved one after another."""
    nb, n = cfg["batch"], cfg["batch_n"]
    grid = og.Grid(BOUNDS, (n, n))
    theta = 2.0 * np.pi * np.arange(nb) / nb
    means = BATCH_RADIUS * np.stack([np.cos(theta), np.sin(theta)], axis=1)
    with _quiet():
        nu = grid.discretize(og.Normal(mean=[0.0, 0.0], cov=1.0), outside="renormalize")
        mus = np.stack([
            grid.discretize(og.Normal(mean=list(m), cov=1.0), outside="renormalize")
            for m in means])
    rows = []
    for tol in cfg["tols"]:
        with _quiet():
            t0 = time.perf_counter()
            batch = og.solve_critic(mus, nu, grid, tol=tol, max_iter=max_iter,
                                    time_limit=time_limit, backend="numba")
            batch_s = time.perf_counter() - t0
            seq, seq_s = [], 0.0
            for b in range(nb):
                t0 = time.perf_counter()
                seq.append(og.solve_critic(mus[b], nu, grid, tol=tol, max_iter=max_iter,
                                           time_limit=time_limit, backend="numba"))
                seq_s += time.perf_counter() - t0
        rb = [_row(x, x.seconds) for x in batch]
        rs = [_row(x, x.seconds) for x in seq]
        rel = [abs(a["w1"] - b["w1"]) / b["w1"] for a, b in zip(rb, rs, strict=True)]
        row = {"tol": tol, "problems": nb, "n": n, "batch_seconds": batch_s,
               "sequential_seconds": seq_s, "throughput_ratio": seq_s / batch_s,
               "batch_converged": sum(x["converged"] for x in rb),
               "sequential_converged": sum(x["converged"] for x in rs),
               "batch_statuses": sorted({x["status"] for x in rb}),
               "sequential_statuses": sorted({x["status"] for x in rs}),
               "bounds_overlap": sum(_overlap(a, b) for a, b in zip(rb, rs, strict=True)),
               "max_rel_diff": max(rel),
               "batch_iterations_max": max(x["iterations"] for x in rb),
               "sequential_iterations_total": sum(x["iterations"] for x in rs),
               "batch": rb, "sequential": rs}
        rows.append(row)
        print(f"[batches] {nb} x {n}² tol={tol:.0e}: batch {batch_s:.3f} s, sequential "
              f"{seq_s:.3f} s (x{row['throughput_ratio']:.2f}); bounds overlap "
              f"{row['bounds_overlap']}/{nb}", flush=True)
    return {"radius": BATCH_RADIUS, "rows": rows}


# -------------------------------------------------------------------------- figure and targets
def iteration_slopes(report: dict, tol: float = 1e-4) -> dict:
    """Least-squares exponent ``p`` in ``iterations ~ N^p`` per (problem, dtype), converged rows."""
    out = {}
    rows = report.get("sections", {}).get("euclidean", {}).get("rows", [])
    for pname in PROBLEMS:
        for dt in ("float64", "float32"):
            pts = [(r["n"] ** 2, r["iterations"]) for r in rows
                   if not r["skipped"] and r["problem"] == pname and r["dtype"] == dt
                   and r["tol"] == tol and r["converged"] and r["iterations"] > 0]
            if len(pts) >= 2:
                x, y = np.log([p[0] for p in pts]), np.log([p[1] for p in pts])
                out[f"{pname}/{dt}"] = {"exponent": float(np.polyfit(x, y, 1)[0]),
                                        "points": len(pts)}
    abl = report.get("sections", {}).get("ablation", {}).get("rows", [])
    for pname in PROBLEMS:  # single level (ablation), for comparison; not the target's figure
        pts = [(r["n"] ** 2, r["iterations"]) for r in abl
               if r["problem"] == pname and r["variant"] == "restarts only" and r["tol"] == tol
               and r["converged"] and r["iterations"] > 0]
        if len(pts) >= 2:
            x, y = np.log([p[0] for p in pts]), np.log([p[1] for p in pts])
            out[f"{pname}/single level"] = {"exponent": float(np.polyfit(x, y, 1)[0]),
                                            "points": len(pts), "reference_only": True}
    return out


def plot_iterations(report: dict, path: Path, tol: float = 1e-4) -> bool:
    """Iterations to ``tol`` against the number of cells (log-log) with a sqrt(N) line.

    Falls back to the smallest tolerance run when ``tol`` was not; False when nothing to plot.
    """
    rows = report.get("sections", {}).get("euclidean", {}).get("rows", [])
    abl = report.get("sections", {}).get("ablation", {}).get("rows", [])
    tols = {r["tol"] for r in rows + abl if not r.get("skipped")}
    if not tols:
        return False
    if tol not in tols:
        tol = min(tols)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.6))
    anchor, zeros = None, False
    for pname, color in zip(PROBLEMS, ("C0", "C1"), strict=True):
        for dt, marker in (("float64", "o"), ("float32", "s")):
            pts = sorted((r["n"] ** 2, r["iterations"], r["converged"]) for r in rows
                         if not r["skipped"] and r["problem"] == pname and r["dtype"] == dt
                         and r["tol"] == tol)
            if pts:
                # 0 fine iterations (converged on the coarse levels of the multilevel start)
                # drawn at 1, the log axis's floor, and marked
                x, y = [p[0] for p in pts], [max(p[1], 1) for p in pts]
                ax.loglog(x, y, marker=marker, color=color, ls="-" if dt == "float64" else ":",
                          label=f"{pname}, default, {dt}")
                bad = [p for p in pts if not p[2]]
                if bad:
                    ax.loglog([p[0] for p in bad], [p[1] for p in bad], "x", color="k", ms=10)
                zero = [p[0] for p in pts if p[1] == 0]
                if zero:
                    ax.loglog(zero, [1] * len(zero), "v", color="k", ms=9, mfc="none",
                              label=None if zeros else "0 (converged on coarse levels), at 1")
                    zeros = True
                anchor = anchor or next(((a, c) for a, c in zip(x, y, strict=True)
                                         if c > 1), None)
        pts = sorted((r["n"] ** 2, r["iterations"]) for r in abl
                     if r["problem"] == pname and r["variant"] == "restarts only"
                     and r["tol"] == tol)
        if pts:
            ax.loglog([p[0] for p in pts], [p[1] for p in pts], marker="^", color=color,
                      ls="--", label=f"{pname}, single level (restarts only)")
            anchor = anchor or pts[0]
    if anchor is not None:
        xs = np.array(sorted({r["n"] ** 2 for r in rows + abl if not r.get("skipped")}))
        ax.loglog(xs, anchor[1] * np.sqrt(xs / anchor[0]), "k--", lw=1, label="∝ √N")
    ax.set_xlabel("cells N")
    ax.set_ylabel(f"iterations to relative gap {tol:g} (finest level)")
    ax.set_title("otgrid grid critic, euclidean 2D")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


def _find(rows: list[dict], **kw) -> dict | None:
    for r in rows:
        if not r.get("skipped") and all(r.get(k) == v for k, v in kw.items()):
            return r
    return None


def targets(report: dict) -> list[dict]:
    """The issue's targets, each with the measured figure and met / not met."""
    sec = report.get("sections", {})
    eu = sec.get("euclidean", {}).get("rows", [])
    out = []

    def add(target: str, figure: str, met: bool | str | None) -> None:
        if not isinstance(met, str):
            met = "not measured" if met is None else ("met" if met else "not met")
        out.append({"target": target, "figure": figure, "met": met})

    for n, tol, limit in ((256, 1e-4, 0.3), (512, 1e-4, 1.0), (1024, 1e-4, 5.0),
                          (256, 1e-6, 2.0)):
        name = f"Gaussian pair, {n}², rel. gap {tol:.0e}, ≤ {limit:g} s"
        r64 = _find(eu, problem="gaussian", n=n, tol=tol, dtype="float64")
        r32 = _find(eu, problem="gaussian", n=n, tol=tol, dtype="float32")
        if r64 is None:
            add(name, "—", None)
            continue

        def fig(r: dict | None) -> str:
            if r is None:
                return "—"
            return f"{r['seconds']:.3f} s" + ("" if r["converged"] else f" ({r['status']})")

        ok64 = r64["converged"] and r64["seconds"] <= limit
        ok32 = r32 is not None and r32["converged"] and r32["seconds"] <= limit
        add(name, f"float64 {fig(r64)}; float32 {fig(r32)}",
            "met with float32 only" if ok32 and not ok64 else ok64)
    r = _find(eu, problem="gaussian", n=256, tol=1e-6, dtype="float64")
    if r is not None and "clarabel_over_otgrid" in r:
        add("≥ 20× faster than cvxpy+Clarabel at 256², rel. gap 1e-6 (Gaussian pair)",
            f"{r['clarabel_over_otgrid']:.1f}×", r["clarabel_over_otgrid"] >= 20)
    else:
        add("≥ 20× faster than cvxpy+Clarabel at 256², rel. gap 1e-6 (Gaussian pair)", "—", None)
    cb = _find(sec.get("cityblock", {}).get("rows", []), n=64)
    add("≥ 50× faster than POT emd2 at 64² cityblock",
        f"{cb['pot_over_otgrid']:.1f}× (same to 1e-6: {'yes' if cb['same_to_1e-6'] else 'no'})"
        if cb else "—", None if cb is None else cb["pot_over_otgrid"] >= 50)
    slopes = iteration_slopes(report)
    if slopes:
        fig_s = "; ".join(f"{k}: N^{v['exponent']:.2f}" for k, v in slopes.items())
        judged = [v for v in slopes.values() if not v.get("reference_only")]
        add("iterations to 1e-4 grow at most like √N (fitted exponent ≤ 0.5; default solver, "
            "finest-level iterations; single level from the ablation for reference)", fig_s,
            all(v["exponent"] <= 0.5 for v in judged) if judged else None)
    else:
        add("iterations to 1e-4 grow at most like √N", "—", None)
    bw = sec.get("bandwidth", {}).get("rows", [])
    if bw:
        top = max(r["n"] for r in bw)
        big = [r for r in bw if r["n"] == top and r.get("solver_setting", True)]
        fig_b = "; ".join(f"{r['n']}² {r['dtype']}: "
                          f"{100 * r['iteration']['fraction_of_copy']:.0f}% "
                          f"({100 * r['iteration']['fraction_of_same_traffic_copy']:.0f}% of a "
                          "same-traffic copy)" for r in big)
        vs_large = all(r["iteration"]["fraction_of_copy"] >= 0.5 for r in big)
        vs_same = all(r["iteration"]["fraction_of_same_traffic_copy"] >= 0.5 for r in big)
        add("an iteration moves its bytes at ≥ 50% of the copy bandwidth (largest size run)",
            fig_b, "met against the large copy only (arrays in cache)"
            if vs_large and not vs_same else vs_large)
    else:
        add("an iteration moves its bytes at ≥ 50% of the copy bandwidth", "—", None)
    return out


# ---------------------------------------------------------------------------------- Markdown
def _ms(s: float) -> str:
    return f"{s * 1e3:.3f}"


def _status(r: dict) -> str:
    return "converged" if r["converged"] else f"**{r['status']}**"


def _md_bandwidth(s: dict) -> list[str]:
    c = s["copy"]
    lines = ["## 1. Bandwidth of one iteration", "",
             f"NumPy copy (`np.copyto`, {c['mib']} MiB float64, one thread, best of "
             f"{c['repeat']}): **{c['gb_per_s']:.2f} GB/s** (read + write counted).", "",
             "Byte model (N cells of s bytes; only compulsory traffic, no write-allocate):", ""]
    lines += [f"- `{k}`: {v}" for k, v in s["byte_model"].items()]
    caches = ", ".join(f"{k} {v}" for k, v in s.get("caches", {}).items()) or "unknown"
    lines += ["", "Each kernel: best of 15 samples of the mean time over a loop of calls (random "
              "data, one problem), through the solver's own kernels object "
              "(`make_kernels(\"numba\", ...)`) and thread setting (Numba threads column; the "
              "DCT uses SciPy's `workers`); *iteration* is the sum of the three. % copy: "
              "achieved GB/s over the large-array copy above. CPU caches (sysfs): "
              f"{caches}. Where an iteration's arrays fit in a cache the kernels can beat the "
              "large-array copy, so the last column also compares the iteration with a copy "
              "moving the same number of bytes (same-traffic copy). Rows marked *forced* run "
              "the sizes the solver threads on one thread (Numba and FFT), for comparison.", "",
              "| n | dtype | threads | residual ms (GB/s, % copy) | dual_step ms (GB/s, % copy) "
              "| poisson ms (GB/s, % copy) | iteration ms (GB/s, % copy) "
              "| same-traffic copy GB/s (iteration %) |",
              "|---:|:---|---:|---:|---:|---:|---:|---:|"]
    for r in s["rows"]:
        cells = [f"{_ms(r[k]['seconds'])} ({r[k]['gb_per_s']:.1f}, "
                 f"{100 * r[k]['fraction_of_copy']:.0f}%)"
                 for k in ("residual", "dual_step", "poisson", "iteration")]
        it = r["iteration"]
        cells.append(f"{it['same_traffic_copy_gb_per_s']:.1f} "
                     f"({100 * it['fraction_of_same_traffic_copy']:.0f}%)")
        thr = f"{r['threads']}" + ("" if r.get("solver_setting", True) else " (forced)")
        lines.append(f"| {r['n']}² | {r['dtype']} | {thr} | " + " | ".join(cells) + " |")
    return [*lines, ""]


def _md_euclidean(s: dict) -> list[str]:
    lines = ["## 2. Euclidean 2D: otgrid vs cvxpy + Clarabel", "",
             "Problems on [-4, 4]²: `gaussian` = N((0,0), I) vs N((2,1), I); `8gaussians` = "
             "8gaussians vs N(0, I). otgrid defaults (adaptive restarts; multilevel start from "
             "128²), `time_limit` "
             f"{s['time_limit']:g} s per solve. Iterations count the finest level only (the "
             "coarse solves of the multilevel start are in the seconds, not the count). "
             f"Clarabel at tol {s['clarabel_tol']:g} (retried 10× looser if not `optimal`); "
             "\"in bounds\": Clarabel's value within [lower, upper] up to Clarabel's tolerance "
             "relative.", "",
             "| problem | n | dtype | tol | status | iterations | levels | seconds | lower "
             "| upper | gap / upper | Clarabel in bounds | rel. diff | Clarabel / otgrid s |",
             "|:---|---:|:---|---:|:---|---:|---:|---:|---:|---:|---:|:---:|---:|---:|"]
    for r in s["rows"]:
        if r["skipped"]:
            lines.append(f"| {r['problem']} | {r['n']}² | {r['dtype']} | {r['tol']:.0e} "
                         f"| skipped: {r['reason']} | | | | | | | | | |")
            continue
        inside = ("yes" if r["clarabel_inside"] else "**no**") if "clarabel_inside" in r else "—"
        lines.append(
            f"| {r['problem']} | {r['n']}² | {r['dtype']} | {r['tol']:.0e} | {_status(r)} "
            f"| {r['iterations']} | {r['levels']} | {r['seconds']:.3f} | {r['lower']:.10f} "
            f"| {r['upper']:.10f} | {r['rel_gap']:.1e} | {inside} "
            f"| {_fmt(r.get('clarabel_rel_diff', np.nan), '.1e')} "
            f"| {_fmt(r.get('clarabel_over_otgrid', np.nan), '.1f')} |")
    lines += ["", "| problem | n | Clarabel seconds (total) | Clarabel seconds (solver) | value "
              "| status | tol reached |", "|:---|---:|---:|---:|---:|:---|---:|"]
    for c in s["clarabel"]:
        if c["skipped"]:
            lines.append(f"| {c['problem']} | {c['n']}² | skipped: {c['reason']} | | | | |")
        else:
            lines.append(f"| {c['problem']} | {c['n']}² | {c['seconds']:.3f} "
                         f"| {c['solve_seconds']:.3f} | {c['value']:.10f} | {c['status']} "
                         f"| {c['tol']:.0e} |")
    return [*lines, ""]


def _md_ablation(s: dict) -> list[str]:
    lines = ["## 3. Ablation: each idea on its own", "",
             "Variants (`solve_critic` options): "
             + "; ".join(f"*{k}* = `{v}`" for k, v in s["variants"].items())
             + ". The coarse solves of the multilevel start always adapt the step, so "
             "*multilevel only* keeps the fixed step on the finest level only. Speed-up: "
             "seconds of *fixed step* / seconds of the variant.", "",
             "| problem | n | tol | variant | status | iterations | restarts | levels | seconds "
             "| speed-up vs fixed step |",
             "|:---|---:|---:|:---|:---|---:|---:|---:|---:|---:|"]
    base = {(r["problem"], r["n"], r["tol"]): r for r in s["rows"]
            if r["variant"] == "fixed step"}
    for r in s["rows"]:
        b = base.get((r["problem"], r["n"], r["tol"]))
        sp = b["seconds"] / r["seconds"] if b else np.nan
        lines.append(f"| {r['problem']} | {r['n']}² | {r['tol']:.0e} | {r['variant']} "
                     f"| {_status(r)} | {r['iterations']} | {r['restarts']} | {r['levels']} "
                     f"| {r['seconds']:.3f} | {_fmt(sp, '.2f')} |")
    return [*lines, ""]


def _md_cityblock(s: dict) -> list[str]:
    lines = ["## 4. Cityblock 2D: otgrid vs POT `ot.emd2`", "",
             f"Gaussian pair, `norm=\"cityblock\"`, tol {s['tol']:g}; POT: network simplex with "
             "L1 cost between the cell centres (`tests/references.py::emd2_cityblock`, cost "
             "matrix included in its seconds).", "",
             "| n | status | iterations | seconds | lower | upper | POT value | POT in bounds "
             "| rel. diff | same to 1e-6 | POT seconds | POT / otgrid s |",
             "|---:|:---|---:|---:|---:|---:|---:|:---:|---:|:---:|---:|---:|"]
    for r in s["rows"]:
        lines.append(f"| {r['n']}² | {_status(r)} | {r['iterations']} | {r['seconds']:.3f} "
                     f"| {r['lower']:.10f} | {r['upper']:.10f} | {r['pot_value']:.10f} "
                     f"| {'yes' if r['pot_inside'] else '**no**'} | {r['rel_diff']:.1e} "
                     f"| {'yes' if r['same_to_1e-6'] else '**no**'} | {r['pot_seconds']:.3f} "
                     f"| {r['pot_over_otgrid']:.1f} |")
    return [*lines, ""]


def _md_1d(s: dict) -> list[str]:
    lines = ["## 5. 1D: otgrid vs SciPy HiGHS and POT `wasserstein_1d`", "",
             f"N(0, 1) vs N(1, 1.5²) on [-8, 8]; otgrid to tol {s['tol']:g}; reference: the "
             "closed form `dx Σ|cumsum(μ − ν)|`. POT on the cell centres with the masses as "
             "weights.", "",
             "| cells | otgrid status | iterations | seconds | closed form in bounds "
             "| otgrid rel. diff | HiGHS seconds | HiGHS rel. diff | HiGHS / otgrid s "
             "| POT seconds | POT rel. diff | POT / otgrid s |",
             "|---:|:---|---:|---:|:---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in s["rows"]:
        h = r["highs"]
        hcols = (f"skipped: {h['reason']} | — | —" if h["skipped"] else
                 f"{h['seconds']:.3f} | {h['rel_diff']:.1e} | {h['over_otgrid']:.1f}")
        lines.append(f"| {r['n']} | {_status(r)} | {r['iterations']} | {r['seconds']:.4f} "
                     f"| {'yes' if r['inside'] else '**no**'} | {r['rel_diff']:.1e} | {hcols} "
                     f"| {r['pot_seconds']:.4f} | {r['pot_rel_diff']:.1e} "
                     f"| {r['pot_over_otgrid']:.2f} |")
    return [*lines, ""]


def _md_batches(s: dict) -> list[str]:
    lines = ["## 6. Batches: one call vs one after another", "",
             f"nu = N(0, I), mu_b = N(m_b, I) with m_b on the circle of radius {s['radius']:g} "
             "(equally spaced), [-4, 4]². Throughput ratio: sequential seconds / batch "
             "seconds. Agreement: the certified intervals of the two solves of each problem "
             "overlap.", "",
             "| problems | n | tol | batch seconds | sequential seconds | throughput ratio "
             "| converged (batch / seq.) | bounds overlap | max rel. diff of w1 |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in s["rows"]:
        lines.append(f"| {r['problems']} | {r['n']}² | {r['tol']:.0e} | {r['batch_seconds']:.3f} "
                     f"| {r['sequential_seconds']:.3f} | {r['throughput_ratio']:.2f} "
                     f"| {r['batch_converged']} / {r['sequential_converged']} "
                     f"| {r['bounds_overlap']} / {r['problems']} | {r['max_rel_diff']:.1e} |")
    return [*lines, ""]


_MD = {"bandwidth": _md_bandwidth, "euclidean": _md_euclidean, "ablation": _md_ablation,
       "cityblock": _md_cityblock, "1d": _md_1d, "batches": _md_batches}


def to_markdown(report: dict) -> str:
    """The report as a Markdown page: machine, one table per section, the targets."""
    m = report["machine"]
    v = m["versions"]
    lines = ["# Convergence benchmark: otgrid and its peers", "",
             f"Machine: {m['cpu_model'] or 'unknown CPU'}, {m['cpu_count']} CPUs "
             f"({m['cpu_usable']} usable, {m['numba_threads']} Numba threads), "
             f"{m['platform']}, Python {m['python']}.",
             "Versions: " + ", ".join(f"{k} {x}" for k, x in v.items()) + ".",
             f"Date: {m['date']}. Sections run: {', '.join(report['sections'])}. Warm-up "
             f"(Numba compilation / cache load, excluded): {report['warm_up_seconds']:.2f} s. "
             "Load average (1 min) at the start of each section: "
             + ", ".join(f"{k} {x:.2f}" for k, x in report["load"].items())
             + (" — **quick run (smoke test), not the benchmark**" if report["quick"] else "")
             + ".", "",
             "Seconds are the wall time of one call after the warm-up; otgrid's `lower`/`upper` "
             "are certified bounds on the grid W1. Compare only figures from the same report.",
             ""]
    for name in SECTIONS:
        if name in report["sections"]:
            lines += _MD[name](report["sections"][name])
    if report.get("figure"):
        lines += [f"![iterations to 1e-4]({report['figure']})", ""]
    lines += ["## Targets", "", "| target | measured | status |", "|:---|:---|:---|"]
    lines += [f"| {t['target']} | {t['figure']} | {t['met']} |" for t in report["targets"]]
    return "\n".join([*lines, ""])


def _write(report: dict, out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    report["targets"] = targets(report)
    if plot_iterations(report, out_dir / "convergence_iterations.png"):
        report["figure"] = "convergence_iterations.png"
    (out_dir / "convergence.json").write_text(json.dumps(report, indent=2) + "\n",
                                              encoding="utf-8")
    (out_dir / "convergence.md").write_text(to_markdown(report), encoding="utf-8")


# --------------------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> dict:
    """Run the chosen sections and write the JSON, the Markdown and the figure."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="smoke test: the smallest sizes of every section")
    parser.add_argument("--sections", nargs="+", choices=SECTIONS, default=list(SECTIONS))
    parser.add_argument("--sizes", type=int, nargs="+",
                        help="grid sides n of the euclidean section (default 64 .. 1024)")
    parser.add_argument("--tols", type=float, nargs="+",
                        help="relative gaps of the euclidean, ablation and batches sections "
                             "(default 1e-4 1e-6)")
    parser.add_argument("--ablation-sizes", type=int, nargs="+",
                        help="grid sides n of the ablation section (default 128 256)")
    parser.add_argument("--time-limit", type=float, default=180.0,
                        help="seconds per otgrid solve (default 180); reported when hit")
    parser.add_argument("--max-iter", type=int, default=1_000_000, help="otgrid's max_iter")
    parser.add_argument("--clarabel-limit", type=float, default=120.0,
                        help="skip Clarabel sizes predicted to take longer (seconds)")
    parser.add_argument("--no-clarabel", action="store_true", help="do not run Clarabel")
    parser.add_argument("--highs-limit", type=float, default=120.0,
                        help="skip HiGHS sizes predicted to take longer (seconds)")
    parser.add_argument("--highs-max-cells", type=int, default=HIGHS_MAX_CELLS,
                        help="never run HiGHS on more 1D cells than this (memory; default "
                             f"{HIGHS_MAX_CELLS})")
    parser.add_argument("--out-dir", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args(argv)
    cfg = dict(QUICK if args.quick else FULL)
    if args.sizes:
        cfg["sizes"] = sorted(args.sizes)
    if args.tols:
        cfg["tols"] = args.tols
    if args.ablation_sizes:
        cfg["ablation_sizes"] = sorted(args.ablation_sizes)
    sections = [s for s in SECTIONS if s in args.sections]
    machine = machine_info()
    machine["versions"].update({k: _version(k) for k in ("pot", "matplotlib")})
    report = {"name": "convergence", "quick": args.quick, "config": cfg, "machine": machine,
              "time_limit": args.time_limit, "max_iter": args.max_iter, "load": {},
              "sections": {}}
    report["warm_up_seconds"] = warm_up(cfg, sections)
    print(f"warm-up (numba compilation / cache): {report['warm_up_seconds']:.2f} s", flush=True)
    tl, mi = args.time_limit, args.max_iter
    runners = {
        "bandwidth": lambda: bench_bandwidth(cfg),
        "euclidean": lambda: bench_euclidean(cfg, tl, mi,
                                             None if args.no_clarabel else args.clarabel_limit),
        "ablation": lambda: bench_ablation(cfg, tl, mi),
        "cityblock": lambda: bench_cityblock(cfg, tl, mi),
        "1d": lambda: bench_1d(cfg, tl, mi, args.highs_limit, args.highs_max_cells),
        "batches": lambda: bench_batches(cfg, tl, mi),
    }
    for name in sections:
        report["load"][name] = _load()
        report["sections"][name] = runners[name]()
        _write(report, args.out_dir)
    print(f"wrote {args.out_dir / 'convergence.json'}, convergence.md and "
          "convergence_iterations.png")
    return report


if __name__ == "__main__":
    main()
