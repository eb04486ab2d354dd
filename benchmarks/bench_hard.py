"""Issue 24 benchmark: the exact grid critic on hard problems, side by side with the easy one.

Sections (``--sections``, default all, in this order):

``table``
    Every problem of :data:`PROBLEMS` at 256², relative gap 1e-4, numba backend: iterations,
    seconds, certified bounds, and the ratio of iterations to the Gaussian pair's.
``growth``
    The same problems at 64² and 128² (with the 256² rows of ``table``: iteration growth with n,
    plotted in ``hard.png``).
``tight``
    The Gaussian pair and 8gaussians (r 2, σ 0.2) at 256², relative gap 1e-6, against
    cvxpy + Clarabel solving the same discretised SOCP in the same run (its own solve time);
    Clarabel's value must lie in otgrid's certified interval (up to Clarabel's tolerance).
``large``
    8gaussians (r 2, σ 0.2) at 1024² and the funnel pairs at 512², relative gap 1e-4.
``ablation``
    The solver's optional stages switched off one at a time (256², 1e-4, a subset of problems).
``poisson``
    The share of one iteration spent in the DCT Poisson solve at 256² .. 1024².
``cold``
    The first ``solve_critic`` and the first ``sinkhorn`` in fresh processes with an empty
    Numba cache (``NUMBA_CACHE_DIR`` pointed at a new folder), then again with the cache filled.

Run from the repository root (test extras installed: cvxpy, clarabel)::

    python benchmarks/bench_hard.py                     # everything (about 3 minutes)
    python benchmarks/bench_hard.py --quick             # smoke test (about a minute)
    python benchmarks/bench_hard.py --sections table tight
    python benchmarks/bench_hard.py --baseline-json benchmarks/results/hard_baseline.json

``--baseline-json`` adds the iterations and seconds of an earlier run (e.g. the solver before
issue 24) as columns. Writes ``hard.json``, ``hard.md`` and ``hard.png`` under
``benchmarks/results/`` (or ``--out-dir``); the JSON is rewritten after every section.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_first_release import ROOT, machine_info
from references import socp_2d_euclidean_cvxpy

import otgrid as og
from otgrid.grid.datasets import (
    eight_gaussians,
    funnel_pair,
    swissroll,
    twentyfive_gaussians,
)

SECTIONS = ("table", "growth", "tight", "large", "ablation", "poisson", "cold")
BOUNDS = [(-4.0, 4.0), (-4.0, 4.0)]
CLARABEL_TOL = 1e-8
FUNNELS = (4, 16, 64)
HIST_SAMPLES = 10_000
# The Gaussian pair's iterations at 256², 1e-4 when issue 24 was filed.
ISSUE_GAUSSIAN = 240

FULL = {"n": 256, "growth": [64, 128], "large_8g": 1024, "large_funnel": 512,
        "large_limit": 120.0, "funnels": FUNNELS, "poisson_sizes": [256, 512, 1024],
        "ablation_problems": ["gaussian", "8g_r2", "8g_wgan", "8g_hist", "swissroll"]}
QUICK = {"n": 64, "growth": [32], "large_8g": 128, "large_funnel": 128,
         "large_limit": 30.0, "funnels": (4,), "poisson_sizes": [128],
         "ablation_problems": ["gaussian", "8g_r2"]}


# ------------------------------------------------------------------------------------ problems
@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence the warnings whose content the report carries anyway (status, outside mass)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", og.ConvergenceWarning)
        warnings.simplefilter("ignore", og.OutsideMassWarning)
        yield


def _ring(radius: float, std: float) -> og.Mixture:
    """Eight equal isotropic Gaussians on a circle of ``radius`` (the 8gaussians layout)."""
    r = 1.0 / np.sqrt(2.0)
    centres = [(1, 0), (-1, 0), (0, 1), (0, -1), (r, r), (r, -r), (-r, r), (-r, -r)]
    return og.Mixture([og.Normal(np.array(c, dtype=float) * radius, std ** 2) for c in centres])


def _versus_normal(dist_or_masses: Callable[[og.Grid], np.ndarray], n: int,
                   bounds=BOUNDS) -> tuple[og.Grid, np.ndarray, np.ndarray]:
    grid = og.Grid(bounds, (n, n))
    with _quiet():
        mu = dist_or_masses(grid)
        nu = grid.discretize(og.Normal(mean=[0.0, 0.0], cov=1.0), outside="renormalize")
    return grid, mu, nu * (mu.sum() / nu.sum())


def _discretized(dist: og.Distribution) -> Callable[[og.Grid], np.ndarray]:
    return lambda grid: grid.discretize(dist, outside="renormalize")


def gaussian(n: int):
    """N((0,0), I) vs N((2,1), I) on [-4, 4]^2 (the easy case)."""
    grid = og.Grid(BOUNDS, (n, n))
    with _quiet():
        mu = grid.discretize(og.Normal(mean=[0.0, 0.0], cov=1.0), outside="renormalize")
        nu = grid.discretize(og.Normal(mean=[2.0, 1.0], cov=1.0), outside="renormalize")
    return grid, mu, nu


def eight_r2(n: int):
    """8 Gaussians on a circle of radius 2, std 0.2, vs N(0, I)."""
    return _versus_normal(_discretized(_ring(2.0, 0.2)), n)


def eight_wgan(n: int):
    """8gaussians at the WGAN-GP reference scale (radius sqrt 2, std 0.02/sqrt 2) vs N(0, I)."""
    return _versus_normal(_discretized(eight_gaussians()), n)


def eight_hist(n: int):
    """A histogram of 10 000 samples of 8gaussians (WGAN-GP scale, seed 0) vs N(0, I)."""
    x = eight_gaussians().sample(HIST_SAMPLES, rng=np.random.default_rng(0))
    return _versus_normal(lambda grid: grid.histogram(x, outside="renormalize"), n)


def gaussians25(n: int):
    """25gaussians (WGAN-GP scale) vs N(0, I)."""
    return _versus_normal(_discretized(twentyfive_gaussians()), n)


def swiss(n: int):
    """swissroll (WGAN-GP scale) vs N(0, I)."""
    return _versus_normal(_discretized(swissroll()), n)


def funnels(k: int) -> Callable[[int], tuple]:
    """The funnel pair with ``k`` funnels (deg 8, half-width 2.5, seed 0) on its square."""
    def make(n: int):
        pair = funnel_pair(k)
        L = pair.half_width
        grid = og.Grid([(-L, L), (-L, L)], (n, n))
        with _quiet():
            mu = grid.discretize(pair.source, outside="renormalize")
            nu = grid.discretize(pair.target, outside="renormalize")
        return grid, mu, nu * (mu.sum() / nu.sum())
    make.__doc__ = f"funnel pair, {k} funnels"
    return make


PROBLEMS: dict[str, Callable[[int], tuple]] = {
    "gaussian": gaussian,
    "8g_r2": eight_r2,
    "8g_wgan": eight_wgan,
    "8g_hist": eight_hist,
    "25gaussians": gaussians25,
    "swissroll": swiss,
    **{f"funnel{k}": funnels(k) for k in FUNNELS},
}
LABELS = {
    "gaussian": "N(0,I) vs N((2,1),I)",
    "8g_r2": "8gaussians (r 2, σ 0.2) vs N(0,I)",
    "8g_wgan": "8gaussians WGAN-GP scale (r √2, σ 0.02/√2) vs N(0,I)",
    "8g_hist": "histogram of 10 000 samples of 8gaussians vs N(0,I)",
    "25gaussians": "25gaussians vs N(0,I)",
    "swissroll": "swissroll vs N(0,I)",
    **{f"funnel{k}": f"funnel pair, {k} funnels" for k in FUNNELS},
}


def _problem_names(cfg: dict) -> list[str]:
    return [p for p in PROBLEMS if not p.startswith("funnel")
            or int(p[6:]) in cfg["funnels"]]


# ----------------------------------------------------------------------------------- measuring
@contextlib.contextmanager
def _coarse_iterations() -> Iterator[list[tuple[int, int]]]:
    """Record ``(cells, iterations)`` of every coarse solve of the multilevel start (the
    result's ``iterations`` counts the fine grid's only)."""
    from otgrid.critic import multilevel

    calls: list[tuple[int, int]] = []
    inner = multilevel.iterate

    def iterate(kern, *args, **kw):
        best, outs = inner(kern, *args, **kw)
        calls.append((int(np.prod(kern.shape)), max(o.iterations for o in outs)))
        return best, outs

    multilevel.iterate = iterate
    try:
        yield calls
    finally:
        multilevel.iterate = inner


def solve(name: str, n: int, tol: float, time_limit: float | None = None, **kw) -> dict:
    """One timed ``solve_critic`` (numba backend) of a problem; its figures as a dict.

    ``work``: the iterations of every level in fine-grid iterations (a coarse iteration costs
    its share of the cells): the fine iterations plus ``sum iterations * cells / n^2`` of the
    coarse solves of the multilevel start.
    """
    grid, mu, nu = PROBLEMS[name](n)
    with _quiet(), _coarse_iterations() as coarse:
        t0 = time.perf_counter()
        res = og.solve_critic(mu, nu, grid, tol=tol, backend="numba", time_limit=time_limit,
                              **kw)
        seconds = time.perf_counter() - t0
    work = res.iterations + sum(it * cells / grid.size for cells, it in coarse)
    row = {"problem": name, "n": n, "tol": tol, "iterations": int(res.iterations),
           "coarse_iterations": [it for _, it in coarse], "work": float(work),
           "seconds": seconds, "lower": float(res.lower), "upper": float(res.upper),
           "w1": float(res.w1), "rel_gap": float(res.relative_gap),
           "converged": bool(res.converged), "status": str(res.status),
           "restarts": int(res.restarts)}
    print(f"[{name} {n}² tol {tol:g}] {row['iterations']} it (coarse {row['coarse_iterations']}"
          f", work {work:.0f}), {seconds:.2f} s, {row['status']}, W in [{row['lower']:.8g}, "
          f"{row['upper']:.8g}]", flush=True)
    return row


def warm_up() -> float:
    """Compile (or load from the cache) the kernels the timed solves use; seconds taken."""
    t0 = time.perf_counter()
    for n in (64, 512):
        with _quiet():
            grid, mu, nu = gaussian(n)
            og.solve_critic(mu, nu, grid, tol=1e-2, backend="numba", max_iter=50)
    return time.perf_counter() - t0


def bench_table(cfg: dict, tol: float = 1e-4) -> list[dict]:
    """Section ``table``: every problem at ``cfg['n']``, ratio of iterations to the easy case."""
    rows = [solve(p, cfg["n"], tol) for p in _problem_names(cfg)]
    base = rows[0]["work"]
    for r in rows:
        r["ratio"] = r["work"] / max(base, 1.0)
    return rows


def bench_growth(cfg: dict, tol: float = 1e-4) -> list[dict]:
    """Section ``growth``: the problems on coarser grids."""
    return [solve(p, n, tol) for n in cfg["growth"] for p in _problem_names(cfg)]


def bench_tight(cfg: dict, tol: float = 1e-6) -> list[dict]:
    """Section ``tight``: otgrid at 1e-6 and cvxpy + Clarabel on the same SOCP, same run."""
    rows = []
    for p in ("gaussian", "8g_r2"):
        r = solve(p, cfg["n"], tol)
        grid, mu, nu = PROBLEMS[p](cfg["n"])
        ref = socp_2d_euclidean_cvxpy(mu, nu, grid.dx, tol=CLARABEL_TOL)
        slack = ref.tol * abs(ref.value)
        r.update(clarabel_value=float(ref.value), clarabel_status=str(ref.status),
                 clarabel_seconds=float(ref.seconds),
                 clarabel_solve_seconds=float(ref.solve_seconds),
                 clarabel_inside=bool(r["lower"] - slack <= ref.value <= r["upper"] + slack),
                 clarabel_over_otgrid=float(ref.solve_seconds) / r["seconds"])
        print(f"    Clarabel {ref.value:.10g} ({ref.status}) in {ref.solve_seconds:.1f} s "
              f"(total {ref.seconds:.1f} s): inside {r['clarabel_inside']}, "
              f"{r['clarabel_over_otgrid']:.1f}x", flush=True)
        rows.append(r)
    return rows


def bench_large(cfg: dict, tol: float = 1e-4) -> list[dict]:
    """Section ``large``: 8gaussians (r 2) at 1024², the funnel pairs at 512²."""
    lim = cfg["large_limit"]
    rows = [solve("8g_r2", cfg["large_8g"], tol, time_limit=lim)]
    rows += [solve(f"funnel{k}", cfg["large_funnel"], tol, time_limit=lim)
             for k in cfg["funnels"]]
    return rows


def _coarse_tol_x10(tol: float) -> float:
    """The coarse solves' relative gap of 0.1.0: 10 times the requested one."""
    return 10.0 * tol


# The ablation: module attributes of the solver set to other values, one variant at a time
# (module, attribute, value). "coarse tol x10": the multilevel start's coarse solves stop at 10
# times the requested relative gap, as in 0.1.0 (now at the requested gap, floor 1e-5).
# (``iterate.RELAXATION`` and ``RESTART_EVERY`` are read from ``otgrid.critic.iterate``, which
# imports ``RESTART_EVERY``: the variant sets it there.)
ABLATIONS: dict[str, list[tuple[str, str, object]]] = {
    "default": [],
    "coarse tol x10 (0.1.x)": [("otgrid.critic.multilevel", "coarse_tol", _coarse_tol_x10)],
    "no ray critics": [("otgrid.critic.backend_numpy", "RAY_SWEEPS", 0)],
    "level map instead of the ray critics": [("otgrid.critic.backend_numpy", "RAY_SWEEPS", 0),
                                             ("otgrid.critic.backend_numpy", "LEVEL_BINS", 1024)],
    "float64 Poisson step": [("otgrid.critic.backend_numpy", "POISSON_STEP_DTYPE", None)],
    "Poisson step as a DCT pair on both axes": [
        ("otgrid.critic.backend_numba", "POISSON_LINES", False)],
    "Poisson step without the cyclic reduction (FACR off)": [
        ("otgrid.critic.backend_numba", "FACR", False)],
    "checks every check_every (no spacing)": [
        ("otgrid.critic.iterate", "_CHECK_FAR", float("inf"))],
    "near tol every check_every (no predicted check)": [
        ("otgrid.critic.iterate", "_CHECK_PREDICT", False)],
    "no feasible ascent": [("otgrid.critic.backend_numpy", "ASCENT_SWEEPS", 0)],
    "no flow descent": [("otgrid.critic.backend_numpy", "DESCENT_SWEEPS", 0)],
    "polish (ascent, descent) in the coarse solves too": [
        ("otgrid.critic.multilevel", "ASCEND_COARSE", True)],
    "plain steps (no relaxation)": [
        ("otgrid.critic.iterate", "RELAXATION", {"euclidean": 1.0, "cityblock": 1.0})],
    "restart criteria every 64 (not 32)": [
        ("otgrid.critic.iterate", "RESTART_EVERY", {"euclidean": 64, "cityblock": 64})],
    "no skipped first check": [("otgrid.critic.iterate", "_CHECK_FIRST_FAR", float("inf"))],
}


def bench_ablation(cfg: dict, tol: float = 1e-4) -> list[dict]:
    """Section ``ablation``: each variant of :data:`ABLATIONS` on a subset of the problems."""
    import importlib

    rows = []
    for label, changes in ABLATIONS.items():
        saved = []
        try:
            for mod, attr, value in changes:
                m = importlib.import_module(mod)
                if not hasattr(m, attr):
                    raise AttributeError(f"{mod}.{attr}")
                saved.append((m, attr, getattr(m, attr)))
                setattr(m, attr, value)
            for p in cfg["ablation_problems"]:
                rows.append({"variant": label, **solve(p, cfg["n"], tol)})
        except AttributeError as exc:  # an older solver without that constant
            print(f"[ablation] {label}: skipped ({exc} missing)", flush=True)
        finally:
            for m, attr, value in saved:
                setattr(m, attr, value)
    return rows


def _time_iteration(n: int, dt: type, fast: bool = True) -> dict:
    """Best times of the three parts of one iteration at ``n x n`` with ``dt`` iterates;
    ``fast``: the Poisson solve as the solver runs it (``poisson_step``: float32 for float64
    residuals; a DCT pair along y and tridiagonal solves along x), else the DCT pair on both
    axes in the iterates' dtype. The Poisson time is that of the residual followed by the step,
    less the residual's: on 2D Numba grids the residual's pass writes the float32 copy that the
    step transforms (the cast, counted in the residual's time; a cast of its own before). The
    rest is timed as the solver runs it: the relaxed dual step and the residual, or, on the
    one-thread kernels (below ``PARALLEL_MIN_CELLS``), the dual step that computes the next
    residual in its pass (``fused``; the residual's column is then 0). Until 2026-12-07 11:30
    the dual step's time included a copy of the flow (two grid arrays) made inside the timed
    call: the dual step's figures were too large (at 1024^2 by about a millisecond) and the
    Poisson shares too small."""
    from otgrid.critic.backend_numpy import GridKernels
    from otgrid.critic.backends import make_kernels

    kern = make_kernels("numba", (n, n), (8.0 / n, 8.0 / n), "euclidean", dt)
    kern.with_batch(1)
    # not kern.poisson: from 512^2 the Numba kernels' float64 solves take the tridiagonal path
    solve = kern.poisson_step if fast else (lambda r: GridKernels.poisson(kern, r))
    rng = np.random.default_rng(0)
    c = rng.standard_normal((1, n, n)).astype(dt)
    c -= c.mean()
    f = np.zeros_like(c)
    f_out, r = np.empty_like(c), np.empty_like(c)
    y = (0.01 * rng.standard_normal((1, 2, n, n))).astype(dt)
    tau = np.array([1.0])
    def residual_and_step():  # as the solver runs them: the step reads the residual's pass
        kern.residual(c, y, r)
        return solve(r)

    from otgrid.critic.iterate import RELAXATION

    rho = RELAXATION["euclidean"]
    with kern.session():
        u = residual_and_step()
        t_res = _best(lambda: kern.residual(c, y, r))
        t_poi = max(_best(residual_and_step) - t_res, 0.0)
        yy = y.copy()  # the dual step updates it in place: the same cost every call
        fused = kern.dual_step_residual(f, u, yy, f_out, tau, 1.0 / tau, rho, c, r)
        if fused:  # the residual of the next iteration is computed in the step's pass
            t_res = 0.0
            t_dual = _best(lambda: kern.dual_step_residual(f, u, yy, f_out, tau, 1.0 / tau,
                                                           rho, c, r))
        else:
            t_dual = _best(lambda: kern.dual_step(f, u, yy, f_out, tau, 1.0 / tau, rho))
    total = t_res + t_poi + t_dual
    from otgrid.critic import backend_numba

    transforms = "float32" if dt == np.float32 or (fast and kern.fast_poisson) else "float64"
    if fast and getattr(backend_numba, "FACR", False) and kern._facr_for(np.dtype(np.float32)):
        transforms += ", FACR(1): DCT along y of the even rows + tridiagonal along x"
    elif fast and backend_numba.POISSON_LINES:
        transforms += ", DCT along y + tridiagonal along x"
    else:
        transforms += ", DCT pair on both axes"
    row = {"n": n, "dtype": np.dtype(dt).name, "transforms": transforms,
           "residual_ms": 1e3 * t_res, "poisson_ms": 1e3 * t_poi, "dual_step_ms": 1e3 * t_dual,
           "poisson_share": t_poi / total, "default": dt == np.float64 and fast,
           "fused": bool(fused)}
    print(f"[poisson {n}² {row['dtype']} iterates, Poisson {transforms}] residual "
          f"{1e3 * t_res:.2f} ms, poisson {1e3 * t_poi:.2f} ms, dual {1e3 * t_dual:.2f} ms: "
          f"{100 * t_poi / total:.0f} %", flush=True)
    return row


def bench_poisson(cfg: dict) -> list[dict]:
    """Section ``poisson``: the Poisson solve's share of one iteration: float64 iterates with the
    solver's step (float32, tridiagonal lines on 2D Numba grids: the default) and with the float64
    DCT pair (the solver before), float32 iterates."""
    return [_time_iteration(n, dt, fast) for n in cfg["poisson_sizes"]
            for dt, fast in ((np.float64, True), (np.float64, False), (np.float32, True))]


def _best(fn: Callable[[], object], repeat: int = 15) -> float:
    fn()
    best = np.inf
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


_COLD_SCRIPTS = {
    "solve_critic": (
        "import time, warnings; import numpy as np; import otgrid as og\n"
        "warnings.simplefilter('ignore')\n"
        "g = og.Grid([(-4, 4), (-4, 4)], (256, 256))\n"
        "mu = g.discretize(og.Normal(mean=[0, 0], cov=1.0), outside='renormalize')\n"
        "nu = g.discretize(og.Normal(mean=[2, 1], cov=1.0), outside='renormalize')\n"
        "c = time.process_time(); t = time.perf_counter()\n"
        "r = og.solve_critic(mu, nu, g, tol=1e-4, backend='numba')\n"
        "t1 = time.perf_counter(); c1 = time.process_time()\n"
        "og.solve_critic(mu, nu, g, tol=1e-4, backend='numba')\n"
        "t2 = time.perf_counter()\n"
        "print(c1 - c, t1 - t, t2 - t1, r.seconds)\n"),
    "sinkhorn": (
        "import time; import numpy as np; import otgrid as og\n"
        "rng = np.random.default_rng(0)\n"
        "x = rng.normal(size=(500, 2)); y = rng.normal(size=(500, 2)) + [2, 1]\n"
        "c = time.process_time(); t = time.perf_counter(); r = og.sinkhorn(x, y, reg=0.1)\n"
        "t1 = time.perf_counter(); c1 = time.process_time(); og.sinkhorn(x, y, reg=0.1)\n"
        "t2 = time.perf_counter()\n"
        "print(c1 - c, t1 - t, t2 - t1, r.seconds)\n"),
}


def source_layout(tree: Path, dest: Path) -> Path:
    """An importable copy of the otgrid source checkout ``tree`` (its ``otgrid/`` with
    ``kernels/`` as ``otgrid/kernels``, as the installed package maps them) under ``dest``;
    returns the folder to put on ``PYTHONPATH``."""
    import shutil

    shutil.copytree(tree / "otgrid", dest / "otgrid", ignore=shutil.ignore_patterns(
        "__pycache__"), dirs_exist_ok=True)
    shutil.rmtree(dest / "otgrid" / "kernels", ignore_errors=True)
    shutil.copytree(tree / "kernels", dest / "otgrid" / "kernels",
                    ignore=shutil.ignore_patterns("__pycache__"))
    return dest


def _cold_run(code: str, cache: str, pythonpath: str | None) -> tuple[list[float], float, bool]:
    env = {**os.environ, "NUMBA_CACHE_DIR": cache}
    env.pop("PYTHONPATH", None)
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    t0 = time.perf_counter()
    # not from the repository root: `python -c` puts the working folder first on sys.path
    proc = subprocess.run([sys.executable, "-W", "ignore", "-c", code], env=env, cwd=cache,
                          capture_output=True, text=True, timeout=900, check=True)
    wall = time.perf_counter() - t0
    return ([float(v) for v in proc.stdout.split()[-4:]], wall,
            "compiling kernels" in proc.stderr)


def bench_cold(cfg: dict, baseline_path: str | None = None) -> list[dict]:
    """Section ``cold``: first and second call in a fresh process, empty then filled cache;
    with ``baseline_path`` (a :func:`source_layout`), the baseline solver in turn, interleaved.
    The child processes send the ``otgrid`` logger to standard error, as the CLI does."""
    trees = [("this tree", None)] + ([("baseline", baseline_path)] if baseline_path else [])
    prelude = ("import logging, sys; logging.basicConfig(stream=sys.stderr, level=logging.INFO)"
               "\n")
    rows = []
    for name, code in _COLD_SCRIPTS.items():
        for solver, path in trees:
            with tempfile.TemporaryDirectory(prefix="otgrid-numba-") as cache:
                for state in ("empty cache", "filled cache"):
                    (cpu, first, second, reported), wall, said = _cold_run(prelude + code,
                                                                           cache, path)
                    rows.append({"call": name, "solver": solver, "cache": state,
                                 "first_call_cpu_s": cpu,
                                 "first_call_s": first, "second_call_s": second,
                                 "reported_seconds": reported, "process_s": wall,
                                 "announced": said})
                    print(f"[cold {name}, {solver}, {state}] first call {first:.2f} s (CPU "
                          f"{cpu:.2f} s), second "
                          f"{second:.2f} s, process {wall:.1f} s, announced {said}", flush=True)
    return rows


# ------------------------------------------------------------------------------------- report
# What was measured and tried for issue 24 (appended to hard.md; the figures are from the
# runs named there, on a shared 2-core machine).
NOTES = """## Notes (shared 2-core machine)

The screening figures below (items 1-2 of "Kept" and the first four items of "Tried") were
measured on a 2-core machine shared with three other jobs (load average 5 to 10): **their
seconds are inflated and noisy**, compare them only side by side; iteration counts are
deterministic. Items 3-6 and the later tries: the same machine without other jobs (load about
1), one run each unless said.
Rerun this script on a quiet machine for the seconds (the command is in the header of
`bench_hard.py`). "work" counts the iterations of every level of the multilevel start in fine
iterations (a coarse iteration costs its share of the cells); the result's `iterations` counts
the fine grid's only.

### Where the iterations go

8gaussians (r 2, σ 0.2) vs N(0, I), 256², 1e-4, the solver before this issue; at each check,
the iterate's `<c, f>` against the upper bound, the largest constraint violation
(`max ‖Df‖ - 1`), what the rescaled iterate loses, and the cells violating `‖Df‖ <= 1`:

| check (iteration) | 1 - ⟨c,f⟩/upper | max ‖Df‖ - 1 | rescaled loses | cells | their μ+ν |
|---|---:|---:|---:|---:|---:|
| first after the multilevel start | 2.7e-3 | 1.0e-1 | 9.5e-2 | 14 932 | 0.50 |
| ~60 | 1.1e-4 | 2.8e-3 | 2.9e-3 | 20 665 | 1.03 |
| ~500 | 9.0e-5 | 3.6e-4 | 4.5e-4 | 16 378 | 0.73 |
| ~1 500 | 4.3e-5 | 2.0e-4 | 2.4e-4 | 10 198 | 0.36 |
| 2 395 (stop) | 2.5e-5 | 5.6e-5 | 8.0e-5 | 7 856 | 0.22 |

The flow (upper bound) is settled early; the critic is not only badly *extracted*: the iterate
itself is 1e-4 .. 2.5e-5 below W in value and violates its constraint by 1e-4 .. 2e-3 on 10-30 %
of the cells, which hold most of the mass (the transport region, not the empty cells between
the modes). The repair sweep of the certificate (`repair_critic_2d`) loses about 30 % of W on
this problem at every check (the rescaled iterate is always the better candidate).

### Kept

1. **The multilevel start solves its coarse problems to the requested tolerance** (they stopped
   at 10 times it), but not below 1e-5 unless that is more than 10 times looser
   (`otgrid.critic.multilevel.coarse_tol`; at 1e-6 and below nothing changed), and the coarse
   solves get at most half of a `time_limit` (`coarse_deadline`). The screen that chose it
   (256², 1e-4, fine iterations / seconds under load, with restarts every 16 at the time),
   coarse ×10 → ×1: 8gaussians (r 2) 2 008 / 26.1 s → 480 / 7.3 s; WGAN-GP scale 3 758 / 68.7 s
   → 1 077 / 23.8 s; its histogram 3 406 / 67.2 s → 1 163 / 25.8 s; 25gaussians 2 442 / 18.4 s
   → 733 / 3.8 s; swissroll 2 490 / 7.9 s → 330 / 2.2 s; Gaussian pair 150 / 1.9 s → 0 / 0.7 s;
   funnels 4, 16, 64: 978 → 941, 1 651 → 1 557, 905 → 791. ×3: 733, 190, 1 119, 2 589, 2 490,
   629, 959, 1 588, 791 (same order); ×0.5: about ×1. At 1e-6 the coarse solves to 1e-6 cost
   more than they saved on 8gaussians r 2 (the 128² level alone took 33 667 iterations; 18 958
   fine-iteration equivalents in all against 17 678 with 1e-5), hence the 1e-5 floor. The
   funnel pairs with 4 and 16 funnels take about 17 % more work with it (tables above).
2. **Cold start**: every critic kernel has a one-thread twin (`<name>_serial`, the same Python
   function compiled without `parallel=True`, cached under its own name) used below
   `PARALLEL_MIN_CELLS`; Numba's parfor passes made the parallel kernels compile about three
   times slower (4 kernels: 71-75 s against 23-30 s on the loaded machine). `solve_critic`
   compiles its kernels on a 3 x 3 problem before its clock starts (`seconds` and `time_limit`
   exclude compilation) and logs "compiling kernels (first run only)" on the `otgrid` logger
   when Numba has neither compiled nor cached them; `otgrid critic` prints that line on
   standard error. The point-cloud solvers log the same note, and their thread chooser no
   longer compiles the one-thread kernel for a probe on the second call when it is not cached
   (it probes at call 25), so a short first solve compiles one fused kernel instead of two.
   Measured (section above, the two solvers alternately, each in a fresh process with an empty
   Numba cache): the first `solve_critic` at 256² 9.9 s → 3.5 s (compilation about 9.2 s →
   3.3 s); the first `sinkhorn` (500 x 500 points) is unchanged, 13 s (it runs more than 25
   passes, so both kernels still compile): that goal is missed (see 6).
3. **The level-rescaled critic** (`level_rescale_2d`, a candidate of the certificate's lower
   bound in 2D): `g = phi(f)` with `phi` nondecreasing and piecewise linear on 1 024 bins of
   values, its slope on a bin `min(1, 1/|(Df)_i|)` over the violated cells spanning the bin
   (feasible by construction). On the iterate of 8gaussians (r 2) at its stop (617
   iterations, 256²), whose violations are at most 8.9e-5 (99th percentile 2.7e-5, the largest
   ones on a stretch of the rays towards the modes on the axes), it loses 6.8e-5 of `<c, f>`
   instead of 8.9e-5 (256 to 16 384 bins alike). Work to 1e-4 at 256² (fine-iteration
   equivalents, identical runs but for it): 8gaussians (r 2) 978 → 807, WGAN-GP scale
   1 264 → 1 151, histogram 1 418 → 1 226, 25gaussians 861 → 680, swissroll 624 → 451,
   funnels 4, 16, 64: 1 243 → 792, 1 890 → 1 513, 668 → 836 (its coarse levels stop sooner,
   the fine one then needs more); 1024² 8gaussians 806 → 370 fine iterations; 512² funnels
   1 257 → 530, 2 799 → 1 498, 1 186 → 1 413. At 1e-6, 8gaussians 16 518 → 16 848 (+2 %).
   The ablation section has the rows without it.
4. **The iteration's Poisson solve in float32** for float64 iterates on the CPU
   (`POISSON_STEP_DTYPE`): an error relative to the residual (about 1e-7 of it with the DCT
   pair), which vanishes with it, so the fixed point is unchanged; the checks still correct
   the flow with a float64 DCT pair. Every iteration count of this report's problems at 1e-4
   and 1e-6 stayed the same; 8gaussians at 1024² 33.5 s → 25.2 s, at 256² and 1e-6
   28.7 s → 24.1 s (one run each, quiet machine).
5. **The Poisson step on 2D Numba grids as a DCT pair along y and tridiagonal solves along x**
   (`poisson_lines_2d`, Thomas factors precomputed per grid): half the transforms for two light
   sweeps. One thread, best of 20: float64 0.94 → 0.50 ms at 256², 6.2 → 3.3 ms at 512²,
   25.4 → 11.9 ms at 1024²; float32 0.51 → 0.32, 2.3 → 1.3, 12.3 → 5.4 ms. The solutions agree
   with the DCT pair to 1e-12 (float64); in float32 the error is larger on rough right-hand
   sides (5e-6 of the solution for white noise at 256², against 3e-7) and alike on smooth ones
   (5e-7); no iteration count changed. Column blocks of 32 or 64 instead of 128 made no
   measurable difference.
6. **Point-cloud cold start**: the thread chooser compiles a kernel's `prange` version only
   once its one-thread twin has run 5 s in the process (`PARALLEL_COMPILE_AFTER`, a
   ski-rental rule; cached afterwards, so later processes start in parallel), and the `prange`
   index is cast to `int64` before the loop body is called (unsigned after the parfor pass, it
   compiled the body a second time: 3.3 s); a call that compiled does not count as one-thread
   work (the first bench run above had the first `sinkhorn` compile both versions, 14.7 s,
   because its 7 s of compilation counted); `_cost_tile` and `_exp_tile` are compiled once as
   functions of their own rather than inlined by Numba into every caller (the fused pass 7.3 s
   → 5.9 s to compile, its speed within 1-5 % at 3 000 x 3 000 points). First `sinkhorn`
   (500 x 500, empty cache, section above, interleaved with the baseline) 14.3 s → 4.3 s; first
   `smooth_ot` 10.9 s → 5.2 s (separately, before the last two changes); the warm passes are as
   fast as before (5 000 x 5 000 points: 0.203 / 0.208 / 0.203 s against 0.204 / 0.197 /
   0.201 s). The first `solve_critic` compiles two more small kernels than before this session
   (the tridiagonal Poisson step and the level rescaling, about 0.5 s each) and its
   `max_grad_norm` no longer compiles NumPy's reduction: 3.5 s → 4.2 s (section above).
7. **Checks spaced while the gap is far from the tolerance** (`otgrid.critic.iterate`,
   `_CHECK_FAR` 3, `_CHECK_SQRT` 64, `_CHECK_CELLS` 2^25): a check costs one to four
   iterations (profile of 512², 4 funnels: 30 % of the solve in checks with one every 10
   iterations; 1024² 8gaussians: 25 %). While every gap is above 3 × tol the next check comes
   `sqrt(64 k)` iterations after `k` (at most 2^25 cell-iterations later: 512 iterations at
   256², 32 at 1024²), else every `check_every` as before. Screen (work / seconds summed over
   the 9 problems, best of two, the plain schedule first, one process): 64² 7 047 / 0.92 s →
   7 141 / 0.74 s; 128² 5 491 / 2.71 s → 5 524 / 2.18 s; 256² 7 495 / 12.0 s → 7 475 / 9.4 s;
   512² funnel pairs 4 227 / 24.1 s → 4 262 / 17.6 s; 1024² 8gaussians 528 / 15.3 s →
   518 / 12.9 s; 256² at 1e-6 unchanged (19 795 / 19 682 work). Other settings (256²,
   64²): `sqrt(4 k)` everywhere (no gap test) 7 721 work / 9.8 s, `sqrt(256 k)` with the gap test
   7 006 / 8.7 s at 256² but 7 367 at 64², `_CHECK_FAR` 1.5 or 2 up to 20 % more work on single
   problems, 5 no gain over 3. The ablation has the plain schedule's row. In a batch each
   problem keeps its own schedule (first written for the batch as a whole, which made
   `bench_distributed`'s batched bounds differ from single solves by up to tol, 6.7e-5; now
   5.5e-11): the single solves of this report are unchanged by that.
8. **A certificate short of tol sends the solve on**: with fewer checks, the anisotropic
   cityblock problem of the tests (tol 1e-9) stopped where the tracked gap was 9.76e-10 but the
   rigorous one 1.005e-9 (the 0.1.x "floor" case); the solve now goes on from its best iterates
   to `tol` less twice the difference (`solve.RECERTIFY`, twice at most): 2.9e-11 after 9 279
   iterations.
9. **The rigorous certificate's exact sums compiled** (`otgrid.kernels.exact_sum_numba`:
   `math.fsum`'s algorithm, bit for bit, tested against it on adversarial data; above 2^18
   entries, so 256² solves do not compile it): `certify` at 1024² 1.8 s → 1.0 s (three
   alternated runs each). Dozens of partials can be alive mid-sum (71 at 1024²), so the
   capacity is the float64 bit range, not the 40 that non-adjacent partials would need.
   (Replaced by an exact superaccumulator in 17, `otgrid.kernels.certify_numba`.)
10. **The tridiagonal step only where it is well conditioned** (`LINES_MAX_ROUNDING`): its
   last pivot is about `sqrt(lambda_1 h_x^2)`, a difference of numbers of size `h_x^2`; a fuzzed
   5 x 8 grid on (0, 1) x (0, 1e9) divided by zero. Such grids take the DCT pair.
11. **The one-thread kernels compiled with NumPy's error model** (`critic_numba._serial`), as
   Numba compiles the body of a `prange` loop: with Python's, every float division carries a
   zero test that kept LLVM from vectorizing the loop. The parallel `dual_step_2d` run on one
   thread was 3.6x faster than its one-thread twin (0.19 against 0.69 ms at 256²), which every
   grid below 2^18 cells used (256² and every coarse level). Now 0.357 → 0.112 ms at 256²
   (one core, median of 300), identical outputs; the other kernels unchanged within noise. The
   9 problems at 256², 1e-4, interleaved, best of two: 9.56 s → 7.75 s, the same work. The
   first `solve_critic` compiles no slower (3.5 / 3.6 / 3.6 s against 3.9 / 3.9 / 3.8 s,
   alternated, empty caches). The Poisson solve's share at 256² rises accordingly: the rest of
   the iteration got cheaper.
12. **The ray critics** (`ray_critics_2d`, candidates of the certificate's lower bound;
   `RAY_SWEEPS`). On 8gaussians' iterate at its stop (256², 1e-4, 503 iterations), the
   largest violation of `|Df| <= 1` was 1.2e-4 but its mean weighted by the corrected flow
   1.2e-5: every global repair pays the former. Each cell's constraint is replaced by a box
   inside it (the cell's differences scaled by `1 / |(Df)_i|` where it is violated, the slack
   shared out where it is not), so every grid edge gets a length, the most `g` may change
   along it; the ray critics are the greatest function below `f` and the least above it that
   respect those lengths (four raster sweeps, label-correcting, until one changes nothing: 3
   to 8). On that iterate they prove a relative gap of 4.5e-5 instead of 1.0e-4 (16 funnels
   1.5e-5, WGAN-GP scale 6.4e-5, both against 1.04e-4). Work at 256², 1e-4, interleaved in one
   process: 7 475 → 4 062 over the nine problems (8gaussians 787 → 449, WGAN-GP scale
   1 138 → 790, histogram 1 227 → 815, 25gaussians 687 → 380, swissroll 445 → 344, funnels
   793 → 366, 1 514 → 498, 846 → 382; the Gaussian pair 39 either way); seconds 11.4 → 7.8.
   512² funnel pairs 5.08 / 8.34 / 7.04 s → 2.13 / 3.81 / 2.46 s; 1024² 8gaussians 13.0 s →
   9.7 s (work 518 → 256); 8gaussians at 1e-6 16 731 → 12 267 iterations; the Gaussian pair at
   1e-6 unchanged (1 787: there the repair sweep stays the best candidate; the boxes let the
   correction grow along any path on which `f` increases, which picks up scattered small
   violations). Since then the level map was never the best candidate at any check of these
   problems (256² at 1e-4 and 1e-6, 512² funnels, 1024²), so it is off (`LEVEL_BINS = 0`;
   the ablation has both rows): the first `solve_critic` compiles the ray kernel (0.7 to 0.9 s)
   instead of the level map's (0.6 s). Cost per check, 2 threads (edge lengths by rows, then
   the two sides as separate tasks): 11 ms at 512², 62 ms at 1024² (best of 5, on a 16-funnel
   iterate); one thread below 2^18 cells (about 4 ms at 256²).
   Variants measured on the captured iterates: corrections advected along the gradient
   (semi-Lagrangian, not edge-exact) left violations of 3e-4; boxes without the slack share
   4.96e-5 instead of 4.51e-5; a box keeping the smaller difference and cutting the larger one,
   or a margin that buys cross-ray freedom, within 1 %.
13. **The check near the tolerance comes when the gap would reach it** (`_CHECK_PREDICT`,
   `otgrid.critic.iterate._predicted_interval`): with the ray critics a check costs 8-10
   iterations (512² 16 funnels: 28 ms of candidates and 8 ms of float64 Poisson solve per
   check, 2.5 ms per iteration; 1024² 8gaussians 105 + 30 ms against 16 ms), and near tol
   the gap falls about 5 % per 10 iterations, so checks every 10 cost more than the iterations
   between them (16 funnels at 512²: 15 checks from 1.8e-4 to 9.9e-5). The next check now
   comes where the line through the last two checks' gaps reaches tol, if later than
   `check_every` (the gap is convex in k there, so the line reaches tol first), at most
   2^25 cell-iterations and a quarter of the iterations run later. Interleaved in one process
   against the plain schedule: 256², the nine problems, 4 062 → 4 036 work, 5.80 → 4.83 s;
   512² funnels and 8gaussians 1 646 → 1 641 work, 8.93 → 8.10 s; 1024² 8gaussians 256 → 250
   work, 7.60 → 6.19 s; 256² at 1e-6: Gaussian pair 1 787 → 1 763 iterations, 1.91 → 1.52 s,
   8gaussians 12 267 → 12 386, 9.80 → 9.76 s; 64² and 128² the same work. The ablation has the
   plain schedule's row.
14. **Fewer compilations on a first run**: the critic kernels no longer allocate (a reduction
   writes one partial result per row into the caller's buffer; NumPy's `zeros` and `empty`
   compiled inside the kernels for about 0.5 s), one `grad_stats` kernel gives both the
   largest gradient and the sum of squares (it was two kernels), and the corrected flow (once
   per solve) is formed by NumPy: the first `solve_critic` at 256², five fresh-cache runs
   alternated with the tree before, 3.73 / 4.28 / 4.66 / 4.01 / 4.17 s against 4.62 / 6.34 /
   6.29 / 4.54 / 5.30 s (median difference 1.1 s). The point-cloud kernels take the cost kind as
   `CostKind`, which Numba types as a literal, so a kernel compiles its one kind's loop: the
   first `sinkhorn` (500 x 500 points), ten alternated runs, median 4.27 s against 4.74 s (the
   tile loop 1.6 s against 2.3 s to compile); about 2 us more per kernel call.
15. **The step's float32 Poisson solution is not cast back to float64**: the dual step reads it
   as it is, the same iterates bit for bit, one pass less per iteration (0.1 ms at 512², 0.45
   ms at 1024²).
16. **The step's tridiagonal solves vectorized** (`poisson_lines_2d`): the recurrences indexed
   rows `i` and `i - 1` of one 2D array, which LLVM could not prove apart, so the loops ran
   scalar (the note below that called them memory-bound was wrong). They now recur over row
   slices of a block of columns and read only the inverse pivots (`tridiagonal_pivots`; the
   upper factors are `-h_x^2` times them): float32, best of 40, 0.128 → 0.038 ms at 256² on
   one thread, 0.44 → 0.21 ms at 512² and 1.87 → 0.84 ms at 1024² on two; the same results
   to the last bit on square grids. The Poisson section above is the rerun.
17. **The final certificate of large grids compiled** (from 2^18 cells, so a 256² solve
   compiles none of it; the solve's warm-up compiles it before its clock starts): the
   residual's per-cell double-double terms in one pass (`kernels/certify_numba.py`, which now
   also holds the exact sums: the
   NumPy passes' operations in their order, the same bits) instead of about thirty NumPy passes
   with their temporaries; the TwoProducts of `<c, g>` formed inside the exact sum; the exact
   sums in a superaccumulator (32-bit integer chunks, then `math.fsum`'s final rounding step: 8
   instead of 44 ns per value on a 1024² certificate). The same bounds bit for bit. `certify`
   of 8gaussians' result at 512² 0.34 → 0.05 s, at 1024² 0.84 → 0.21 s (medians of five);
   inside a 1024² solve its profile had shown 1.9 s. 1024² 8gaussians to 1e-4, three
   alternated runs each with the tree before 16: 8.55 / 9.38 / 8.86 s → 6.81 / 7.47 / 7.11 s
   (16 and the first two parts of 17).
18. **The checks' float64 Poisson solve by the tridiagonal path on the parallel kernels**
   (grids from 512²; `NumbaGridKernels.poisson`): 2.2 instead of 5.5 ms at 512², 9.7 instead
   of 23.9 ms at 1024² (best of 15), the same solution to about 1e-12. 1024² 8gaussians, three
   alternated pairs after a compiling one: 6.18 / 5.96 / 6.54 → 6.18 / 5.91 / 5.92 s (most of
   its checks are on the serial coarse levels, which keep the DCT pair); 512² 16 funnels and
   8gaussians within the noise (3.47-4.29 against 3.53-4.48 s for the two).
19. **The feasible ascent of the best critic near the tolerance** (`ascend_critic_2d`,
   `ASCENT_SWEEPS` 4, at checks whose gap is below 3 tol, not in the coarse solves). On the
   Gaussian pair at 256², 1e-6, the iterate's `<c, f>` was within 2e-7 of W from iteration
   ~400 on while the best extracted critic (the repair sweep) lost 1e-6: the lower bound
   decided the stop (1 763 iterations). The ascent moves each value with mass towards
   `sign(c)` to the end of the interval the constraints of its three cells allow
   (Gauss-Seidel, four raster directions): on that solve's iterates four sweeps took the loss
   from 1.38e-6 to 4.3e-7 and from 8.3e-7 to 3.1e-7 (one sweep: 10 % of that; sixteen: no
   more than four), for 4.5 ms at 256² (about nine iterations; 18 ms at 512², 76 ms at
   1024²). Interleaved in one process, against no ascent: 256², 1e-4, the nine problems,
   work 4 036 → 3 588 (6.65 → 6.56 s); 1e-6, the Gaussian pair 1 763 → 960 iterations
   (1.86 → 1.48 s), 8gaussians 12 386 → 5 250 (9.55 → 5.82 s); 512², the funnel pairs,
   work 1 291 → 1 239 (8.91 → 8.95 s). Moving every cell with mass, however little, pushed
   the critic's tails to a staircase (mean |second difference| 1.2e-4 → 8.7e-2 in a corner
   of the tutorial's 8gaussians critic): only cells with `|c|` above 1e-6 of the largest
   move (`ASCENT_MIN_MASS`), which keeps the tails as they were and gives 3 721 work at 1e-4
   (5.33 → 4.98 s), 1 283 and 5 355 iterations at 1e-6 (2.08 → 1.61 s, 9.77 → 4.46 s).
   Which checks ascend: below 10 tol, 3 637 work at 1e-4;
   963 and 7 918 iterations at 1e-6; at 512² 1 183 work but 9.06 → 10.27 s. With the coarse
   solves ascending too (work at 1e-4; iterations at 1e-6): every check 3 692; 781 and 3 964;
   below max(3 tol, 1e-2) 3 754; 781 and 4 090; below max(3 tol, 1e-3) 3 732; 556 and 7 135;
   below 10 tol 3 732; 546 and 5 352. The coarse solves ascending made the tutorial's
   8gaussians (128², 1e-4) take 653 iterations instead of 410 (they stop sooner and hand over
   a worse start), hence not by default (an ablation row); at 1e-6 they help, and so does
   ascending only the critic the last coarse solve hands over (542 and 4 651 iterations, but
   the tutorial's 721): a lead for tight tolerances. The critic's value at checks also
   compares candidates whose lower bounds differ by rounding: `GridKernels.dot` now sums each
   problem by the same call whatever the batch (`einsum` rounded a row of a batch differently
   from the row alone, and the ascent amplified which candidate won to 6e-10 of W between a
   batch and a lone solve).
20. **The ascent starts from the check's own best critic** (not the best kept so far, which
   once ascended sits at a fixed point of the sweeps: on the Gaussian pair at 256², 1e-6, the
   lower bound stayed 8e-7 below Clarabel's value for the last 700 of 1 283 iterations while
   the iterate went on). Work at 1e-4, the nine problems, 3 721 → 3 333; at 1e-6 the Gaussian
   pair 1 283 → 981 iterations, 8gaussians 5 355 → 5 597 (ascending both: 997 and 5 250).
21. **The flow's descent near the tolerance** (`descend_flow_2d`, `DESCENT_SWEEPS` 4,
   `DESCENT_MIN_SLOPE` 0.01, Euclidean norm): at the same checks as the ascent, Gauss-Seidel
   sweeps over the plaquettes add to each the circulation (no divergence) that lowers the cost
   of its three cells (safeguarded Newton steps). On 8gaussians at the WGAN-GP scale (256²,
   1e-4) the upper bound was the lagging side at the end (7e-5 against 3e-5) and four sweeps
   halve that lag. Interleaved: work at 1e-4 3 333 → 2 885 (WGAN-GP scale 548 → 390, its
   histogram 558 → 400, 25gaussians 211 → 164, 4 and 16 funnels 210 → 174 and 335 → 286);
   1e-6 981 → 887 and 5 597 → 5 250; 512² funnel pairs 2 157 → 1 979 work (16 funnels 1.8-2.0
   → 1.3-1.6 s); 1024² 8gaussians the same 155. 8 sweeps 2 862, 2 sweeps 2 959, slope 0.1
   2 943. About 4 ms a call at 256² on solver flows (17 ms on random ones, every plaquette
   moving). With the cityblock norm the cost is piecewise linear along each circulation and
   the sweeps stall at its kinks (18.7 % → 18.3 % above the optimum, one sweep or 400): off.
   A first version without the bracket diverged on a 2×2 grid (a Newton step from a far point
   with almost no curvature); the test that caught it stays. On 2D arrays of one problem: with
   4D indexing the kernel took twice as long to compile (1.3-1.9 s instead of about 1 s).
22. **Tight tolerances polish more** (`ASCENT_TIGHT_TOL` 1e-5): twice the ascent's sweeps
   (the Gaussian pair at 1e-6 887 → 820 iterations; 16 sweeps 776; at 1e-4 8 sweeps changed
   no solve and cost time at 1024²), and polishing from 6 tol instead of 3 tol
   (`_ASCENT_NEAR_TIGHT`): 8gaussians 5 250 → 3 664 iterations at 1e-6 (3.9-4.4 → 3.2 s), 720
   → 535 at 1e-5; at 1e-4, 6 tol gave 2 839 work instead of 2 885 for more polishing time
   (kept at 3 tol). A check whose gap already meets the tolerance does not polish.
23. **One BLAS thread in the critic's loop**: its only BLAS calls are the certificate's dot
   products; with another process busy on this 2-core machine, OpenBLAS's threads made the
   Gaussian pair at 1e-6 take 1.7-2.1 s instead of 1.1-1.25 s (8gaussians at 1e-4 0.56-0.83
   instead of 0.35-0.40 s). Earlier runs of this benchmark on a loaded machine paid that.
24. **Exact sums of mid-sized certificates in NumPy** (`certify._bucket_sum`, from 1 024
   entries below the compiled path: mantissa halves counted per exponent by `bincount`, one
   Python integer rounded once): `math.fsum`'s bits, `certify` at 256² 0.092 → 0.043 s. The
   compiled path is now chosen by a sum's largest part, as the warm-up counts (all parts
   together, the four TwoProduct parts of `<c, g>` at 256² reached 2^18 and compiled the sums
   inside the certificate, unannounced: 1.4 s of the first solve).
25. **The step's DCTs through SciPy's compiled transform** (`operators.dct_lines`, checked
   against `scipy.fft.dct` at first use): `scipy.fft`'s dispatch cost about 6 µs a call; an
   iteration at 64² 68 → 53 µs, at 128² 171 → 148 µs.
26. **The polishing kernels compile where a check first polishes** (the ascent and the
   descent, about 1.5 s of a first run together), not before the first iteration: the cold
   section's solve (the Gaussian pair, certified at its first fine check) no longer compiles
   them; the first `solve_critic` on an empty cache 6.85 / 6.22 → 4.61 / 5.13 s (two runs,
   interleaved with the tree before). The solves' clock stands still while kernels compile
   (`otgrid._threads.solve_clock`, `compiling`), so `seconds` and `time_limit` exclude a
   compilation in the middle of a solve as they did the warm-up's.
27. **At 1e-6 the coarse problems are solved to 2e-6** (`multilevel._ML_COARSE_FLOOR`, 1e-5
   before; solves to 1e-5 and looser unchanged): the nine problems at 256², 1e-6, work
   48 819 → 27 206 (the Gaussian pair 950 → 725, 474 fine iterations instead of 803;
   8gaussians 4 304 → 4 317, 3 664 → 2 859 fine iterations; WGAN-GP scale 8 554 → 6 660,
   histogram 12 143 → 4 931, 25gaussians 11 095 → 2 766, swissroll 5 573 → 1 994, funnels
   2 294 → 1 661, 2 856 → 3 005, 1 050 → 1 147). At 128², 1e-6: work 24 074 → 19 245, seconds
   summed over the nine 6.76 → 5.41. The coarse iterations cost more per cell than the fine
   ones (29, 50, 144 µs an iteration at 32², 64², 128² against 527 µs at 256²), so the
   seconds fall less than the work.
28. **The residual's pass writes the Poisson step's float32 copy** (`residual_2d`'s output
   `r2`): the step transforms it instead of casting the float64 residual in a pass of its own
   (0.13 ms at 512², 0.6-0.8 ms at 1024²). The same bits; an iteration at 512² 2.51 / 2.32 →
   2.14 / 2.25 ms, at 1024² 12.8 / 13.5 → 12.0 / 12.8 ms (two interleaved runs). The Poisson
   section times the residual and the step together, less the residual: the cast now counts
   in the residual's time (before, in the Poisson solve's).
29. **Less Python per iteration** (the same bits): the kernels' scalar
   arguments made once per dtype, the steps passed without copies, the step's dtype decided
   once, the check schedule read only from the first problem due. Interleaved, three runs
   each: 32² 28.8-43.2 → 22.6-29.0 µs an iteration, 64² 52.9-54.2 → 45.3-53.4 µs, 128²
   157-165 → 141-150 µs, 256² within the noise.
30. **The iteration over-relaxed** (`otgrid.critic.iterate.RELAXATION`, 1.8 with the euclidean
   norm, 1.5 with the cityblock one): each step moves the critic and the flow `rho` times as
   far as the plain preconditioned step, `f += rho tau u`, `y += rho (y_plain - y)` (the
   extrapolation inside the step unchanged): the relaxed proximal point method in the
   iteration's metric, convergent for `rho` in (0, 2) also where that metric is degenerate, as
   here with `tau sigma = 1` (Bredies, Chenchene, Lorenz & Naldi 2022). One more multiply-add
   per value in the dual step's pass; every backend's `dual_step` takes `rho`. Work summed over
   the nine problems (numba backend), `rho` = 1 against the others: 256², 1e-6 27 206 → 16 898
   (1.8) / 18 487 (1.9), every problem less at both; 128², 1e-6 17 244 → 11 731 (1.7) / 10 740
   (1.8) / 11 093 (1.9); 256², 1e-4 2 885 → 2 141 (1.6) / 2 050 (1.8) / 1 949 (1.9); 128²,
   1e-4 2 915 → 2 270 / 2 295 / 2 293 (1.6 / 1.8 / 1.9); 64², 1e-4 3 717 → 2 388 / 2 319 /
   2 254; 512² funnel pairs 990 → 661 (1.8), 1024² 8gaussians 155 → 96. The cityblock norm
   (an LP, with the critic recovered from the flow) wants less: 128², 1e-6, 1.3 / 1.5 / 1.7
   give 4 466 / 3 918 / 4 427; on five of the problems 1 / 1.5 / 1.9 give 2 480 / 2 243 /
   4 284, and at 256², 1e-4, 1 010 / 861 / 934. 1.8 rather than 1.9 for the euclidean norm
   because 1e-6 is the default tolerance. A batch of 4 at 64² now polishes at its checks, and
   its traced peak rose to 30.6 grid arrays per problem, above the memory estimate (29): the
   check frees its candidate critics before the polish allocates, and the descent no longer
   copies a whole batch's flows (27.4).
31. **Restart criteria every 32 iterations with the euclidean norm** (`RESTART_EVERY`, per
   norm; 64 before and still with the cityblock one). Every 16 was tried twice before (1e-6
   suffered); with the relaxation, 32 against 64 (work summed over the nine): 256², 1e-4
   2 050 → 1 776, 1e-6 16 898 → 16 709 (every 16: 18 627; every 128 at 1e-4: 2 433); 128²,
   1e-4 2 295 → 1 688, 1e-6 10 740 → 10 296 (every 48: 1 867 and 11 423); 64², 1e-6 26 361 →
   18 152; 512² funnel pairs 661 → 574; 1024² 8gaussians 96 → 92. At 1e-6 the Gaussian pair
   takes 747 instead of 467 and 8gaussians 2 051 instead of 2 710 (counts at 1e-6 swing by
   problem). Cityblock, 128², 1e-6: 3 918 → 4 461 (but 861 → 747 on five problems at 256²,
   1e-4): 64 stays there. Every 64 on the coarse levels and 32 on the fine grid: 17 872 work at
   256², 1e-6, and 2 040 at 1e-4 (the Gaussian pair back to 467). With both, the coarse
   floor (1e-6 / 2e-6 / 4e-6: 17 277 / 16 709 / 22 323 at 256², 1e-6) and the polish
   thresholds (`_ASCENT_NEAR_TIGHT` 4 / 6 / 10: 16 793 / 16 709 / 16 555; `_ASCENT_NEAR`
   2 / 3 / 5 at 1e-4: 1 830 / 1 776 / 1 613 work for 1.58 / 1.57 / 1.71 s) were measured again
   and kept.
32. **No subnormal flow values**: where the plain step zeroes a flow value the relaxed one
   leaves `(1 - rho) y`, which decays geometrically (0.8^k) into subnormal numbers, float32's
   after about 400 iterations and float64's after about 3 200; their arithmetic is many times
   slower on CPUs. A float32 solve of 8gaussians at 256², 1e-6 (2 312 fine iterations) took
   5.95 s with 10 % of its flow values subnormal (1.9 ms an iteration against 0.8 ms with plain
   steps). Every 32 iterations the flow's values below `2^-80 sigma` are set to zero
   (`GridKernels.flush`, array operations shared by every backend): 2.98 s, the same iterations
   and bounds (float64: the same too). The same test inside the dual step's pass cost 14-40 %
   of that kernel (the loop vectorizes less), hence the separate pass.
33. **The residual in the dual step's pass** on 2D grids (`dual_step_residual_2d`,
   `FUSED_RESIDUAL`): a row's residual reads the new flow of that row and the row before, both
   written by then, so one sequential pass does both and reads the flow once. On all threads
   (`dual_step_residual_2d_blocks`, from 512²) each thread takes a block of rows and the first
   row of every block gets its residual after the blocks (it reads the block before): 0.42-0.45
   → 0.32-0.34 ms at 512², 1.68-1.79 → 1.31-1.32 ms at 1024² (two threads, 5 x 20 calls); in
   solves to 1e-4, whose time is mostly coarse levels and checks, 512² 16 funnels 0.60 → 0.58 s
   and 1024² 8gaussians 1.32 → 1.29 s (medians of three, interleaved, the same bits).
   The same bits (tested on kernels and solves). One problem, float64, medians of 5 x 200
   calls: 12.7 / 44.4 / 198 µs → 11.9 / 40.4 / 170 µs at 64² / 128² / 256², and one kernel call
   less an iteration; the Gaussian pair at 256², 1e-6: 0.561 / 0.567 → 0.516 s (interleaved,
   the same 609 iterations), 8gaussians at 1e-4: 0.183 / 0.184 → 0.175 / 0.176 s.
34. **The Poisson section measured the dual step with a copy of the flow** (`y.copy()` inside
   the timed call, two grid arrays): its dual-step figures were too large (1024²: 2.15 ms
   against 0.97 ms without the copy; 512²: 0.55 against 0.24) and every Poisson share too
   small. The shares reported as met before (256² 42-47 % this morning, 512² 46-48 % at
   10:37) were that error: corrected, in the same conditions, 256² 54-55 %, 512² 59-61 %,
   1024² 54-65 % (at 256² with the residual in the dual step's pass, which makes the rest of
   the iteration shorter: with the two passes about 51 %); since the fused pass runs on all
   threads too (item 33), 65-71 % at 512² and 60-70 % at 1024² (the section above). The goal is
   missed at every size; the transforms (a DCT pair along y, 0.15 ms of the step's 0.20 ms at
   256²) are what is left, and cyclic reduction before them (FACR(1), estimated above) the
   lever.

35. **The ray critics' sweeps down and up the rows, each row both ways**
   (`ray_critics_2d`): a sweep relaxes each row from the rows above and below, then along the
   row forwards and backwards while it is in cache, instead of one raster direction of four.
   The greatest function below `f` within the edge lengths (its computed sums) does not depend
   on the order of the relaxations, so the critics are the same bit for bit (checked on every
   check's iterate of 1024² 8gaussians, 512² 16 funnels, 256² 8gaussians at 1e-6 and the
   WGAN-GP scale at 1e-4; a test compares them with SciPy's Dijkstra on the kernel's own edge
   lengths). 2-5 sweeps instead of 4-7 before the one that changes nothing; summed over those
   checks 68 → 39 ms (the three at 1024²), 30 → 17 ms (512²), 14-30 → 8-17 ms (256²). Solves
   identical, 5-7 % faster at 1e-4 from 256² up (1024² 8gaussians 1.67 → 1.55 s, 512² 16
   funnels 0.67-0.70 → 0.63-0.64 s, WGAN-GP scale 0.236 → 0.225 s), 1-2 % at 1e-6.

36. **The certificate's exact sums in four accumulator rows** (`kernels/certify_numba.py`,
   `LANES`): consecutive values go to different rows, so that their additions to the same
   chunks do not wait for one another, and a value's sign is applied without a branch (random
   signs mispredicted half the time): 12.7-13.0 → 2.5-2.6 ns per value, `math.fsum`'s sums bit
   for bit. The final certificate of a 1024² solve spent 0.21 s in them, now 0.055 s: 1024²
   8gaussians 1.58 → 1.44 s, its bounds identical to the last bit.
37. **A first check far from the tolerance skips the next one** (`_CHECK_FIRST_FAR`, 10 tol):
   10 iterations after a start (a solve's, or each level's of the multilevel cascade) the gap
   had hardly moved on any level (256² 5.9e-3 → 5.9e-3, 512² 2.7e-3 → 2.7e-3, 1024² 1.7e-3 →
   1.3e-3 on 8gaussians), and a check costs 8-25 iterations from 256² up; the next check is
   the one the far schedule put after it (35 with `check_every` 10). Every iteration count
   unchanged (the nine problems at 64² and 256², 1e-4 and 1e-6, the 512² funnel pairs,
   1024²); the 512² funnel pairs 1.97 → 1.78 s summed, the two 1024² problems (8gaussians, 16
   funnels) twice 9.11 → 8.60 s. (A first version jumped a fixed 35 iterations capped by the
   far schedule's bound, 32 at 1024², and stopped 8gaussians there at 42 iterations instead
   of 35.)
38. **Float32 iterates in float32 arithmetic** in the Numba step and residual kernels: float64
   literals had promoted every operation, and with the residual as its own rounded copy the
   fused kernel failed LLVM's run-time overlap check and ran scalar. The step 0.127 → 0.089
   ms and the residual 0.122 → 0.084 ms at 256²; the nine problems at 256², 1e-4, in float32
   4.23 → 3.52 s (float64 3.6-3.7 s, the same work). Float32 iterates were slower than
   float64 ones before; now about as fast (the Poisson step is float32 in both, the checks
   float64).
39. **The parallel path's DCTs take Numba's thread count** (`numba.set_num_threads`, a Dask
   task's limit) instead of a worker per core; the tridiagonal pivots of both dtypes from one
   float64 computation (13 ms each at 1024²); the Laplacian's eigenvalues and their inverses
   in place (5.8 → 2.3 ms at 1024²). The same results.
40. **Less Python per iteration, again** (the same bits): `sigma = 1 / tau` made when `tau`
   changes, not every iteration; pending restarts as a flag, not `pending.any()` per
   iteration; the Numba step's constant arguments and the tridiagonal step's `-h_x^2, h_x^2`
   once per dtype; the pivots in one dictionary look-up. 8gaussians at 256², 1e-6, three
   alternated processes (best of three solves each): 1.31-1.40 → 1.25-1.29 s; an iteration of
   a 32² solve 26.1-26.6 → 24.5-25.4 µs. Where that solve's time goes (1.36-1.44 s in these
   runs): the coarse levels 0.6 s (32² 1 577 iterations at 28 µs, 64² 2 000 at 57 µs, 128²
   2 846 at 155 µs, whose kernels alone take 11, 33 and 111 µs; at 32² the Python around them
   is still more than half); the fine grid 0.8 s: 1 190 iterations of about 0.43 ms of kernels
   (the fused step 0.21, the Poisson step 0.22), eight plain checks of 5-6 ms (ray critics 1.5,
   the float64 DCT pair 1.0, repair 0.5, four gradient norms 0.5), three polishing checks of
   18-20 ms (ascent 9, descent 4.5) and six restarts of 3.3 ms.
41. **The flow before a restart-criteria step in a kept buffer** (`iterate._kept_copy`,
   released at each check, whose candidates need the memory): the step every 32 iterations
   copied the flow and formed its move as two fresh flow arrays, whose page faults cost 0.79
   instead of 0.25 ms at 256². The same bits; 8gaussians and the Gaussian pair at 256², 1e-6
   about 2 % faster (three alternated processes each, with item 40's second part: 1.21-1.29
   → 1.19-1.25 s and 0.63-0.65 → 0.62-0.63 s).
42. **One step of cyclic reduction before the DCT (FACR(1))** on 2D Numba grids from 128²
   (`backend_numba.FACR`, `FACR_MIN_CELLS`; cells at most twice as long along x as along y,
   `FACR_MAX_ASPECT`: the reduced right-hand side `B r` loses about `eps (dx/dy)^2` of the
   rows' size): the odd rows eliminated (`facr_reduce_2d`, which also sums every row for mode
   0), the DCT pair and the x-solves (`poisson_lines_2d`, the reduced system's pivots
   `operators.facr_pivots`) on the even rows, mode 0 there from the whole grid's row sums,
   the inverse DCT written into the even rows of the output, and the odd rows by solves along
   y (`facr_recover_2d`) on blocks of rows transposed so that the recurrences
   vectorize across rows; a block of about 32 KiB was best (`FACR_TILE_BYTES`; at 256² 4 / 8
   / 16 / 32 rows 83 / 58 / 48 / 43 µs, at 1024² 718 / 534 / 751 / 912 µs). The half
   transforms run on one worker below 2^18 transformed values (two took 0.14-0.24 against
   0.16 ms at 512²). Float64: 1e-11 of the DCT pair's solution (tested on grids of 3 to 130
   rows, odd and even); float32: within the lines' own error (2.3e-6 against 5.3e-6 of the
   solution on a grid of cells 2.3 times longer along y). The step (copy path, medians of 7):
   64² 16.5 → 16.5 µs (hence the threshold), 128² 54 → 49 µs, 256² 206-211 → 168-174 µs,
   512² 0.97-1.26 → 0.65-0.71 ms, 1024² 3.5-4.6 → 2.4-2.6 ms. The Poisson share (this
   section's method) 59 → 49 % at 256², 72 → 62 % at 512², 71 → 61 % at 1024². Solves: the
   nine problems at 256², 1e-4, the same iterations and seconds (their fine iterations are
   few); at 1e-6 work 16 709 → 16 213 (25gaussians 2 069 → 1 559 fine iterations, the others
   within 11) and 10.3 → 9.8-9.9 s; 8gaussians at 1e-6 1.12-1.16 → 1.09-1.16 s (three
   alternated processes); the 512² funnel pairs 0.61-0.66 → 0.52-0.61 s each. The kernels
   added about 1.5 s to a first solve's compilation (cold section: 2.70 → 4.08-4.36 s, the
   same machine and minutes); with mode 0 inside `poisson_lines_2d` (a kernel less, no
   second call) 3.74-3.92 s. The odd rows' recurrences with 2D indexing of the block: 10-15 %
   faster than over row views (256², one thread: 43 → 37 µs in one run). A previous estimate
   (under "Tried and not kept") had the odd rows' solves as scalar recurrences at 0.11 ms:
   transposed blocks made them 0.04 ms.

### Tried and not kept

- **FFTW's DCTs** (`REDFT10` / `REDFT01` through pyFFTW 0.14 from PyPI, planned with
  `FFTW_MEASURE`, one thread): along the contiguous axis of a float32 256² array 0.17 ms
  against pocketfft's 0.08 ms (512²: 0.75 against 0.34 ms; float64 at 256² 0.18 against
  0.13 ms): FFTW's even/odd transforms are not its fast path. pocketfft along the contiguous
  axis is also faster than across it (float32, 0.089 against 0.107 ms at 256², 0.35 against
  0.53 ms at 512²), the axis the step transforms.
- **The euclidean shrinkage's square root and division**: they are not what bounds the step.
  A copy of the plain step without either (timing only) took 0.110 instead of 0.120 ms at
  256² (medians of 300); with a float32 reciprocal square root refined by two Newton steps,
  0.172 ms.
- **The coarse solves polishing at tight tolerances, with today's solver** (the relaxation,
  restarts every 32, the 2e-6 floor; the coarse levels of solves to 1e-5 and below polish):
  256², 1e-6, the nine problems 16 709 → 21 390 work (11.4 → 14.3 s summed).
- **A critic from the flow's magnitudes** (a second-order finish's first step): at the
  optimum `D^T (Λ D f) = c` with `Λ` the magnitude of the optimal flow in each cell, so the
  corrected flow's magnitudes give a weighted Poisson problem for the critic. Solved as
  `D^T (Λ + ε) D g = c + ε D^T D f` (`f` the iterate) by conjugate gradients preconditioned
  by the DCT Poisson solve (5-8 iterations for ε = max Λ, 19-26 for 0.1 max Λ, 236-300 for
  1e-3 max Λ) on 8gaussians' fine iterates (256², 1e-6): its best extracted candidate and
  that candidate's ascent lose as much as the iterate's own (at iteration 720, 5.31e-6 and
  1.10e-6 of W against 5.37e-6 and 1.10e-6; at 934, 3.39e-6 and 6.61e-7 against 3.43e-6 and
  6.59e-7; smaller ε worse: 6.0e-6 and 1.36e-6 at 1e-3 max Λ). The flow's magnitudes carry
  nothing that the iterate lacks.
- **Polishing checks at least 32 iterations apart** (near the tolerance the predicted check
  put them 11-30 iterations apart, and at 256² one costs 17-19 ms, about 38 iterations: the
  Gaussian pair at 1e-6 polished at seven checks, 125 ms of its 0.65 s): the nine problems at
  256², 1e-6, work 16 709 → 16 533, seconds 11.45 → 11.18 summed (8gaussians 1 190 → 1 015
  iterations, 1.37 → 1.21 s; the Gaussian pair 609 → 623, 0.68 → 0.67 s; the others within
  25 iterations); 24 apart 16 571 work (10.77 → 10.75 s), 40 apart 16 622 (11.11 s); at 1e-4
  1 776 → 1 787 work (1.96 → 1.95 s), at 1e-5 5 492 → 5 616 (4.81 → 4.71 s; the Gaussian
  pair 20 → 96 fine iterations, 0.18 → 0.26 s), 128² at 1e-6 10 296 → 10 352 (2.14 → 2.13 s).
  One problem gains, the rest is noise: not kept.
- **Skipping the descent where its last one gained less than 2 % of the gap** (on the
  Gaussian pair at 1e-6 each of its seven descents took at most 1.3 % of the gap off, 4-11 ms
  each; on 8gaussians, 16 funnels and 25gaussians 0-41 %, varying from check to check): 256²,
  1e-6, work 16 709 → 18 746 (the WGAN-GP scale 3 575 → 4 833 fine iterations, its histogram
  2 337 → 2 895), seconds 11.55 → 12.3; at 1e-4 the same work.
- **More ascent sweeps, or ascending every candidate**: the ascent reaches its fixed point in
  4-8 sweeps (8gaussians' iterate at 934: 4, 8, 16, 64 sweeps leave 6.78e-7, 6.59e-7,
  6.59e-7, 6.59e-7 of W) and ascending the best candidate is the best ascent (from the ray
  critic above, the one below, the rescaled iterate, the repair: 6.60e-7, 7.70e-7, 3.51e-6,
  1.5e-1).

- **The Poisson step through a real FFT of permuted rows** (Makhoul: the rows' even and odd
  values interleaved, `r2c`/`c2r` of pocketfft, the twiddles as a reflection of each pair of
  modes inside the tridiagonal kernel; the same solutions to float32 rounding): pocketfft's
  `r2c` + `c2r` take 0.049 + 0.060 ms against its DCT pair's 0.073 + 0.073 at 256², but the
  two permutations (0.018-0.027 ms each at 256², not vectorized) and the reflections (the
  tridiagonal kernel 0.020 → 0.036 ms) ate it: 0.18 → 0.23 ms at 256², 0.87 → 1.04 ms at 512²,
  3.1 → 3.5 ms at 1024² (one version with in-place permutations 2.3 ms at 1024², not
  reproduced). Folding the permutations into the residual's and the step's kernels would
  leave at most 0.02 ms at 256².
- **FACR(1) again, with every part timed** (the even rows' reduced right-hand side 0.020 ms,
  their DCT pair 0.042 + 0.042, the x-solves 0.010, the odd rows' y-solves on transposed
  blocks with the even rows copied back 0.051): about 0.165 ms at 256² against 0.178-0.19 ms,
  not the 0.14 ms of the FACR(1) entry below; slower at 512² and 1024². Not built.
- **Numba's idle OpenMP threads against pocketfft's**: the parallel kernels' worker threads
  spin after each kernel (libgomp's default), and the DCTs' second worker (`workers=2` from
  512²) then shares a core with them: the step's Poisson solve at 1024² took 3.1 ms against
  the 1.9 ms of its parts timed alone; with `OMP_WAIT_POLICY=PASSIVE` (or `GOMP_SPINCOUNT`
  1 000) 2.1 ms. Whole solves on the idle machine (alternated processes, best of two, three
  rounds): 512² 16 funnels 0.64-0.66 s by default against 0.70-0.71 s passive, 1024²
  8gaussians 1.58-1.62 against 1.60-1.61 s; with one other busy process 3.4-3.6 s against
  1.7-1.9 s (1024²) and 1.4-1.6 s against 0.7 s (512²). An environment variable read when
  libgomp loads is the user's choice, not a library's: documented in `docs/choosing.rst`. The
  DCTs on one worker instead (no second thread to fight): idle 3-6 % faster at 512² and 1024²,
  with a busy process up to 25 % slower (1024² 8gaussians 4.3-4.8 → 5.1-5.3 s, 512² 1.3-1.4 →
  1.6-1.7 s). Not changed.
- **The parallel kernels from 256² (or 128²)** (`PARALLEL_MIN_CELLS` 2^16 or 2^14, the DCTs on
  one worker): idle, 8gaussians at 256², 1e-6 1.04 → 0.94-0.99 s (0.96 from 128²), the
  Gaussian pair 0.54 → 0.47 s, the WGAN-GP scale at 1e-4 0.24 → 0.21 s; with one other busy
  process 1.04 → 3.3 s (5.1 s from 128²), 0.55 → 2.7 s, 0.26 → 1.8 s. A threshold that makes
  solves three to seven times slower on a shared machine stays where it is.
- **One-thread kernels with two-worker DCTs from 512²** (no OpenMP threads to spin at all):
  idle up to 20 % slower (512² 16 funnels 0.60 → 0.69-0.72 s, 1024² 8gaussians 1.43-1.76 →
  1.64-1.73 s), with one other busy process 2-3 times faster (3.84 → 2.06 s, 2.08 → 0.67 s,
  512² 8gaussians 1.16 → 0.51 s). A two-core trade-off (on more cores the kernels would lose
  far more); `OMP_WAIT_POLICY=PASSIVE` gives the same robustness (docs/choosing).
- **Checks nearer together close to the tolerance on the finest grid only** (the predicted
  check at most k/8 or k/16 iterations later there, the coarse grids unchanged so that their
  hand-over stays the same): 256², 1e-6, the nine problems' fine iterations 13 250 → 13 123 /
  12 929 (8gaussians 1 190 → 1 071 / 1 011), seconds 8.89 → 8.82 / 9.00: the extra checks
  cost what the iterations save.
- **The coarse solves to twice the tolerance again** (`coarse_tol` × 2; × 3 in brackets), with
  today's solver, work summed: the nine problems at 1e-4, 128² 1 688 → 1 606 (1 586), 256²
  1 776 → 1 721 (1 821), 512² 1 633 → 1 519 (1 676); at 1e-3, 256², 573 → 544 (579); at 1e-5,
  256², 5 492 → 5 611 (6 985); the 512² funnel pairs and 1024² 8gaussians / 16 funnels (two
  runs) 1 027 → 926 (934), 16.4 → 15.1 s. Less work at 1e-4 in sum, but single problems move
  both ways (8gaussians at 256² 178 → 214) and 1e-5 loses; a tolerance-dependent factor
  would be tuned to these nine. Not changed.
- **The ray critics by a work queue** (label-correcting: the cells whose neighbours lower them,
  then their neighbours when they change; the same result bit for bit): 12-40 times slower
  than the sweeps on the checks' iterates (1024²: 2.8 s against 70 ms for three checks): many
  cells change, and many more than once.

- **Restart criteria every 16 iterations** (instead of 64): at 1e-4, 256², fewer iterations on
  every problem (Gaussian 240 → 150, 8gaussians r 2 2 395 → 2 008, WGAN-GP scale 4 575 → 3 758,
  histogram 4 399 → 3 406, 25gaussians 2 854 → 2 442, swissroll 3 028 → 2 490, 4 funnels
  997 → 978), but at 1e-6 on 64² 2.4x more on 8gaussians (21 358 against 8 952) and 1.4x on the
  Gaussian pair (2 490 against 1 751), and the anisotropic cityblock test problem (tol 1e-9) then
  stops at the rounding floor (a relative gap of 1.005e-9). With the coarse solves at ×1 its
  gain at 1e-4 shrinks (8gaussians r 2: 617 → 480).
- **PDLP's primal weight without the veto** (a step change only in the direction that helps the
  lagging bound): at 128², restarts every 16, far fewer iterations on the near-atomic problems
  (Gaussian 220 → 130, WGAN-GP scale 1 651 → 420, histogram 2 214 → 370, swissroll 2 048 → 280)
  but 8gaussians r 2 at 256² took 5 575 (every 16), 5 799 (every 32), 8 437 (every 64) against
  2 395; with the weight capped at 4x or 2x of its start instead of 16x: 3 211 and 2 395 at 128²
  (1 931 with the veto). The drift of the weight is problem-dependent; the veto stays.
- **No step adaptation** (fixed tau): 8gaussians r 2 at 128² 1 469 instead of 2 539, but the
  Gaussian pair needs the adaptation (restarts without weight updates: 500 instead of 220).
  Fixed tau times 0.25, 1, 4, 16 of the default: 2 640, 1 469, 4 066, 15 878 (adaptive: 1 684,
  2 539, 2 490, 1 857).
- **Reflected restarted Halpern PDHG** (r²HPDHG, Lu & Yang 2024; restarts on the fixed-point
  residual), written with NumPy passes around the fused step (its seconds not comparable):
  256², restart checks every 16: Gaussian 200, 8gaussians r 2 2 589, WGAN-GP scale 1 894,
  histogram 1 894, 25gaussians 2 969, swissroll 2 799, 4 funnels 1 257 (baseline 240, 2 395,
  4 575, 4 399, 2 854, 3 028, 997); every 32: 230, 2 442, 2 589, 3 406, 1 651, 719, 1 498.
  Better on the near-atomic pairs, worse on the others; not worth fused kernels in three
  backends.
- **A lowering sweep** (Gauss-Seidel in four sweep directions, only ever lowering values: the
  cell's value when its forward differences are too negative, its forward neighbours when too
  positive): feasible after 5 sweeps (10 ms at 256²) but on 8gaussians it lost 2.5 % of
  `<c, f>` (the uniform rescaling 8.9e-5): the euclidean forward-difference constraint is not
  closed under minima, and lowering one value steepens its neighbours' descents, an
  avalanche down from every mode.
- **The critic rebuilt from the flow by weighted least squares** (unit flow directions on the
  flow's support, the iterate's gradient elsewhere with weight 1e-2 or 1e-4; 40 DCT-
  preconditioned CG steps), then rescaled: it lost 1e-2 to 5e-1 of W at every check (the
  directions are far from a gradient field).
- **Removing the least-squares gradient of the excess** (the part of `Df` beyond the unit ball,
  one Poisson solve per pass) before rescaling: on 8gaussians' iterate at its stop the largest
  violation went 8.9e-5 → 5.7e-5 in six passes and the level-rescaled loss 7.4e-5 → 6.4e-5 of
  W, for a solve per pass per check.
- **The running average of the iterate since the last restart** as a candidate: never the best
  (bounds identical to the last digit on 8gaussians, its WGAN-GP variant and 16 funnels).
- **A fresh default step on the fine grid** instead of the coarse grid's adapted one (which had
  drifted to 0.1-0.8 of the default on the hard problems, 8 times it on the Gaussian pair):
  work at 256², 1e-4 (before the level rescaling) 8gaussians r 2 978 → 1 094, WGAN-GP scale
  1 264 → 1 128, histogram 1 418 → 1 144, 25gaussians 861 → 833, swissroll 624 → 716,
  funnels 1 243 → 1 182, 1 890 → 1 061, 668 → 732: 12 % less in all but worse on three of eight;
  the geometric mean of both steps was worse than either. Not kept: no consistent rule.
- **The level-rescaled critic in the restarts' veto** (`losses`, which judges the critic by
  its plain rescaling and the repair sweep): work at 256², 1e-4, 8gaussians r 2 807 → 633,
  WGAN-GP scale 1 151 → 1 171, histogram 1 226 → 1 185, 25gaussians 680 → 659, swissroll
  451 → 495, the funnel pairs unchanged: 2 % less in all, worse on two of eight.
- **Restarting at the best certified critic** (and flow) instead of the current iterate: work
  7 456 → 7 382 (critic) and 7 590 (both) summed over the eight hard problems at 256², better
  and worse by problem.
- **The coarse solves' tolerance again, with the level rescaling** (multiples of
  `coarse_tol`): ×0.3, ×0.5, ×2 give 8 035, 7 810, 7 591 work summed over the eight hard
  problems at 256², 1e-4, against 7 456 at ×1, and the Gaussian pair 69, 54, 125 against 39.
  ×1 stays.
- **Which candidate gives the lower bound** (256², 1e-4, checks that improved it): on the
  Gaussian pair the repair sweep at every level (55 of 56); on 8gaussians, its WGAN-GP variant
  and the funnel pairs the level rescaling (245 of 248 on 8gaussians); the plain rescaled
  iterate once per solve. Both sweeps stay.
- **A better global level map** (the level rescaling's family, `g = phi(f)` with one
  nondecreasing `phi`): (a) slope 0 on the bins where the integral of `M(t) = sum_{f_i > t} c_i`
  is negative (a guaranteed gain in exact arithmetic): work at 256², 1e-4, identical on all 9
  problems (7 475); (b) the slopes of an LP (HiGHS; 1 024 bins, every violated cell's two
  chords' mean slopes at most `1 / |(Df)_i|`, objective `sum_q s_q int_q M`) on the iterate at
  the stop: 8gaussians r 2 loses 8.92e-5 of W instead of 9.04e-5 (52 k constraints), the
  16-funnel pair 1.03e-4 instead of 9.94e-5 (the per-axis linearisation is looser there). The
  one-map family is exhausted; what is left is spatial (per region).
- **A Thomas pass reading one factor array** (`cp = e m` computed in the backward sweep
  instead of read): no measurable difference at 256² .. 1024² (float32 1024²: 1.67 / 1.77 ms
  against 1.55 / 1.69 ms, column blocks of 32, 64, 128 alike).
- **With the ray critics: the restarts' veto judging the critic by them too** (`losses`):
  work 4 062 → 4 075 over the nine problems at 256²; **restarting the primal iterate at the
  best certified critic**: 4 062 → 72 001 (the iteration loses its dual pairing); **the critic
  recovered from the flow** (least squares of the flow's directions), then its ray critics:
  gaps of 1.3e-2 to 3.6e-2 at the iterates where the ray critics of `f` prove 1.5e-5 to
  6.4e-5. **The ray critics of `(1 - eps) f`** (less violation, more slack, `eps` of `<c, f>`
  lost): eps 1e-6 to 3e-5 gave 4.49e-5 to 5.26e-5 on 8gaussians against 4.51e-5, worse on 16
  funnels (1.58e-5 to 3.25e-5 against 1.54e-5) and the WGAN-GP scale. **Boxes with room `t`
  added to the smaller difference of a violated cell** (for decreases across the rays), the
  larger one cut to match: worse at every `t` from 1e-4 (6.2e-5 against 4.5e-5 on
  8gaussians) to 1e-1 (5.0e-2): the larger difference pays at first order.
- **The coarse solves' tolerance once more, with the ray critics** (multiples of
  `coarse_tol`, work summed over the nine problems at 256², 1e-4): ×0.25 4 771, ×0.5 4 303,
  ×2 4 272 against 4 062 at ×1, which stays.
- **The fused Sinkhorn pass on Python threads** (a `nogil` one-thread kernel per chunk of rows
  instead of `prange`): the first `sinkhorn` compiled in 4.4 s, but the passes were 5-10 %
  slower from 5 000 x 5 000 points and up to 35 % at 1 500 x 1 500 (thread wake-ups; Numba's
  threads spin), so the tiered compilation (6) was kept instead.

- **Ray critic sweeps that skip settled rows** (a row is swept again only if it or a
  neighbouring row changed since its last sweep; the same result bit for bit): on captured
  256² iterates 4.8 → 4.5 ms, on 512² fields 10-45 % less where 9-12 sweeps were needed, but
  no difference measurable inside solves (the checks of 512² 16 funnels 14.9 against 8.8 ms,
  the order of the two calls deciding). **A branch-free update** in the sweeps: the same
  (2.46 against 2.47 ms at 256², 23.6 against 21.6 ms at 512²). **Sweeps indexed by
  arithmetic** instead of a conditional per index: compiled no faster (0.76-0.84 s).
- **The norm as a Numba literal** (compiling only the euclidean or the cityblock loops, like
  `CostKind`): dual step 0.37-0.61 s against 0.41-0.67 s to compile, the ray kernel the same;
  within the machine's noise, not kept.
- **The step's Poisson solve in preallocated buffers** (no fresh arrays per iteration): no
  page faults either way after the first calls (glibc reuses the memory), times within noise.
- **`check_every` 20 or 30** instead of 10 (before the predicted check): 256², the nine
  problems, work 4 062 / 4 075 / 4 111, seconds 6.1 / 5.5 / 5.5; 512² funnels and
  8gaussians 11.4 / 11.1 / 10.4 s and 12.4 / 10.8 / 11.0 s in two runs. The predicted check
  (13) gains more and keeps `check_every`'s meaning.
- **Restart criteria every 32 or 16 iterations again** (with the ray critics and the predicted
  checks; `RESTART_EVERY` 64): 256², the nine problems, work 4 036 / 3 983 / 3 981, seconds
  4.73 / 4.86 / 4.89, better and worse by problem (8gaussians 443 / 418 / 400, WGAN-GP scale
  796 / 811 / 847); 64 stays.
- **The residual written straight in float32 for the step** (a float32-output specialisation
  of the residual kernel on iterations no check reads the residual, the Poisson solve in place
  in a kept buffer): an iteration in a tight loop 0.61 → 0.53 ms at 256², 3.3 → 2.8 ms at 512²,
  10.6 → 9.1 ms at 1024² (medians), but inside solves, alternated in one process: 256² WGAN-GP
  scale 0.854 → 0.840 s (30 pairs), 512² 16 funnels 2.5 → 2.2 s (medians of 6, paired ratio
  0.98), 1024² 8gaussians paired ratio 0.97 (6 pairs); the fine iterations are a minority of
  these solves' time. Not worth 0.3 s (1.05 s parallel) more compilation on a first run.
- **A plaquette descent without a slope threshold or bracket** (the first prototype: up to 12
  Newton/bisection steps on every plaquette): 20 ms a sweep at 256², far too slow for what it
  gave; on the Gaussian pair at 1e-6 it lowered the upper bound's lag only from 4.9e-7 to
  4.1e-7 (the flow's error there is smooth, where Gauss-Seidel is slow).
- **Cyclic reduction before the DCT (FACR(1))** (estimated, not built; built since, item
  42, with the odd rows' solves on transposed blocks as estimated here): it halves the
  transforms but needs a tridiagonal solve along the contiguous axis per odd row (a scalar
  recurrence, about 0.1 ms at 256²); with the stencil for the reduced right-hand side it would
  take the step from 0.25 to about 0.21 ms, a share of 52 %. A timing prototype since
  (float32, one problem, interior formulas only: times, not solutions; medians of 30): at 256²
  the current step 0.18 ms, FACR(1) 0.22 ms: the half-row DCTs take 0.038 ms each (the full
  ones 0.071), the x-solves on the even rows 0.010 (all rows 0.019), the reduced right-hand
  side 0.019, and the odd rows' solves along y 0.110 (scalar recurrences over blocks of 16
  rows, strided) decide it. At 512² (two threads) 0.72-1.11 against 0.96-1.01 ms: half-row
  DCTs 0.152 against 0.282 ms, x-solves 0.082 against 0.183, the odd rows 0.41 ms as written.
  At 1024² 3.35-3.39 against 3.56-3.73 ms. The odd rows' solves on a transposed buffer per
  block of 16 rows (the recurrences vectorized across them; the same solutions) take 0.039 /
  0.11 / 0.63 ms at 256² / 512² / 1024² instead of 0.105 / 0.41 / 1.78: the step would then
  take about 0.14 ms at 256² (0.18 now), 0.53 ms at 512² and 2.5 ms at 1024², shares of about
  46 %, 61 % and 65 % beside the fused rest of the iteration (0.17, 0.34, 1.32 ms). The lead
  for 256²; at 512² and up the transforms stay most of the iteration even halved.
- **Other coarse floors at 1e-6** (six of the problems at 256²: the Gaussian pair, 8gaussians,
  WGAN-GP scale, 25gaussians, 16 funnels, swissroll; work summed): 1e-5 (before) 33 332,
  5e-6 on the first two 782 and 3 999, 4e-6 30 977, 3e-6 25 796, 2e-6 19 467; 1e-6 took the
  Gaussian pair to 1 007. Iteration counts at 1e-6 swing by problem with any change
  (25gaussians 11 095, 5 207, 2 766, 5 296 at 1e-5, 3e-6, 2e-6, 4e-6); the sum fell with the
  floor down to 2e-6.
- **The coarse solves polishing at tight tolerances** (`ASCEND_COARSE`): at 1e-6 alone, the
  six problems 58 250 work (the WGAN-GP scale 28 624); with the 2e-6 floor the nine 30 492
  against 27 206 without. At 1e-5 it helped three of four problems (the Gaussian pair 322 →
  204, 8gaussians 1 175 → 801) but not the WGAN-GP scale (1 648 → 1 742).
- **Keeping 1e-5 on the grids coarsened twice or more** (2e-6 on the first coarse grid only,
  since the deeper grids' own discretisation error is larger): at 128², 1e-6, work 25 130 and
  6.73 s against 19 245 and 5.41 s with 2e-6 on every coarse grid.
- **With the relaxation: the primal weight's cap at 64 (not 16) or its update's `theta` 0.3
  (not 0.5)**: 256², 1e-6, work 16 620 and 20 456 against 16 709, by problem 705 / 2 657 /
  3 370 / 4 352 ... against 747 / 2 051 / 4 120 / 2 912: no consistent change.
- **With the relaxation: the coarse solves handing over their last iterates** (`f`, `y` as the
  iteration left them, instead of the best certified critic and the corrected flow): 256²,
  1e-6, 18 616 work against 16 709; with the coarse solves polishing too, 22 053. **The primal
  weight within 4 times its start** (not 16): 27 218 (1e-6) and 1 840 (1e-4, against 1 776).
  **Another relaxation on the coarse levels**: 1.9 there 16 461, 1.6 19 650 (the fine grid at
  1.8): within the swing of single problems (the Gaussian pair 747 → 388 at 1.9, 8gaussians
  2 051 → 2 509).
- **The predicted check at most k/8 or k/16 iterations later** (not k/4: on 8gaussians at
  1e-6 the check after the first polished one, flat against it, was put 238 iterations
  later and the gap was then 0.80 tol): 256², 1e-6, 18 845 and 19 650 work against 16 709
  (8gaussians 2 051 → 2 944 and 3 026: the polish at other checks changes the path).
- **The fine grid's first step at half or twice the prolonged one** (the coarse grid's adapted
  step times 2^d): 256², 1e-6, 21 100 and 19 932 work against 16 709.
- **The predicted check aimed below the tolerance** (the line through the last two checks'
  gaps taken to 0.8 or 0.6 tol, so that fewer checks approach tol from above): 256², 1e-6,
  17 990 and 19 474 work against 16 709.
- **SciPy's DCT on one worker from 384² to 768²** (the parallel kernels' DCT pair uses all
  cores from 512²): a DCT pair along y in float32, medians of 40, three rounds: 512² 0.61 ms on
  one worker against 0.48-0.53 on two, 640² 0.99-1.02 against 1.22-1.27, 768² 1.44-1.51
  against 1.02-1.65: no clear threshold to move.
- **A multigrid V-cycle instead of the exact Poisson solve** (estimated, not built): at 256²
  a V(1,1) cycle in float32 streams about seven passes over the grid (0.2-0.3 ms), no less
  than the DCT along y and the tridiagonal solves (0.26 ms), and it would make the
  preconditioner inexact.
- **The odd rows of FACR(1) by a truncated kernel instead of the recurrences** (2026-12-07,
  prototype): `B^-1` along y decays like `r^|k|` (`r = 2 - sqrt(3)` on square cells, 0.5 at
  `FACR_MAX_ASPECT`), so each odd row is a symmetric FIR filter of its right-hand side with
  mirrored ends (13 taps a side for float32 on square cells, 28 for float64; same solutions to
  3.7e-7 / 1.2e-15 of the largest value), along the contiguous axis with no transposes. One
  thread, 128 / 256 / 512 rows (medians of 7): float32 39-44 / 142-169 / 565-685 µs against
  the transposed recurrences' 34-37 / 114 (two threads) / 530; float64 137-176 µs at 256²
  against 54. Each tap loads two neighbours and the accumulator: load-bound, slower.
- **The odd rows' blocks, measured by part** (one thread; gather with the transpose /
  recurrences / scatter back): 256² 18 / 10 / 8 µs, 512² 96 / 68 / 29 µs, 1024² 355 / 478 /
  175 µs. The recurrences are latency-bound (each row of the block reloads the one it just
  stored): at 1024² blocks of 8 / 16 / 32 / 64 rows take 492 / 286 / 154 / 115 µs in the
  recurrences, but the whole pass 942 / 1 228 / 1 405 / 1 806 µs, the transposes of wide
  blocks leaving L1; transposes in chunks of 16 or 64 columns did not help. (Kept since,
  `FACR_TASKS_PER_THREAD`: a few block buffers per thread, each reused, instead of one per
  block, the half grid's size in all: on two threads 512² 117-121 → 98-100 µs, 1024²
  532-554 → 467-484 µs, in four alternated rounds; one thread, one buffer, 38 → 36 µs at
  256²; the same bits.) **FACR(2)** estimated from these parts (a second reduction on the
  even rows, a quarter of the transforms, two solves along y per row of the second level):
  about 0.48 ms at 512² (0.63-0.65 now) and 1.9 ms at 1024² (2.2-2.4), shares of 54-55 %:
  not half either, not built.
- **The fused step on both threads from 128²** (the rest of the iteration on one, as now):
  the kernel alone 34.7 → 22.8 µs at 128² and 147 → 76 µs at 256², but 8gaussians and the
  Gaussian pair at 256², 1e-6, 1.10-1.13 and 0.55-0.57 s against 1.04-1.14 and 0.53-0.56 s
  (alternated processes): each thread's half of the grid has to travel to the other core for
  the Poisson step on one. **The x-solves on one thread at 512²** (two threads took 78-85 µs
  against 46-48 on one in isolation): 8gaussians, 16 funnels and the Gaussian pair at 1e-5
  4.19-4.26 against 4.15-4.22 s in all, noise; the whole 512² iteration on one thread
  (`PARALLEL_MIN_CELLS` 2^19) 4.64-4.90 against 4.06-4.08 s.
- **The coarse levels' predicted check at most k/8 or k/16 iterations later** (2026-12-07;
  the fine grid's at k/4 as before): the coarse solves overshoot their tolerance by up to a
  quarter of their iterations (8gaussians' 128² level: 2.7e-6 at iteration 2 277, 1.2e-6 at
  the next check, 2 846), but stopping them sooner hands over worse starts: 256², 1e-6, the
  nine problems' work 18 920 (k/16) and 18 956 (k/8) against 16 213 (8gaussians 2 051 →
  2 929 / 2 962).
- **The multilevel start from 64² ("auto" from 128² now, `ML_AUTO_CELLS`)** (2026-12-07,
  one coarse level of 32²; the nine problems at 64², best of 3 each, summed): euclidean
  1e-4 work 2 200 → 2 037 but 0.138 → 0.156 s (the coarse level's set-up outweighs what it
  saves at 10-20 ms a solve), 1e-6 18 152 → 8 416 work, 0.70 → 0.49 s (8gaussians 5 297 →
  1 178 and swissroll 6 050 → 515 fine iterations, the Gaussian pair and the funnel pairs
  slower); cityblock 1e-4 0.162 → 0.145 s, 1e-6 0.280 → 0.225 s (the convergence report's
  cityblock Gaussian pair at 64², 1e-7: 1 756 → 390 fine iterations, 0.071 → 0.040 s, 45×
  POT's time there instead of about 25×). Mixed by norm and tolerance on solves of a tenth of
  a second: `multilevel=True` is the documented switch; not changed.
- **A second-order finish: log-barrier Newton steps on the critic** (2026-12-07, a NumPy
  prototype; each PCG iteration costs about one iteration's transforms and stencils). From the
  certified critic of a 1e-4 solve of 8gaussians (r 2) at 256² (`<c, f>` 7.5e-5 of W short),
  shrunk strictly inside the constraints, the barrier problem `max <c, f> + mu sum_i log(1 -
  |(Df)_i|^2)` (its gradient's flow `2 mu g_i / (1 - |g_i|^2)`, the Hessian `D^T B D` with a
  2 x 2 block `B_i` per cell) by damped Newton steps, each solved by conjugate gradients
  preconditioned by the DCT Poisson solve to a relative residual of 1e-2. Shrunk by 1e-6
  (`mu` from the gap, 9.7e-10): 30 Newton steps took 131 219 PCG iterations (about 4 400
  each; steps of 1/128 to 1) for a lower bound 2.6e-5 of W short; six stages of `mu / 10`
  later (391 697 PCG iterations) it was still 1.3e-5 short. Shrunk by 1e-2 (a point nearer the
  central path, `mu` 1.3e-7): 92, 469, 718 PCG iterations for the first three Newton steps,
  then the cap of 3 000 or near it (2 679, 2 739) as the iterate neared the constraints. A
  symmetric diagonal scaling around the DCT solve (each cell's mean barrier weight) hit the
  3 000 cap at every step. The barrier's weights span many orders of magnitude between the
  cells on the constraints and the others, which a constant-coefficient Poisson solve cannot
  precondition; the fine level's whole way from 1e-4 to 1e-6 costs about 1 100 iterations.
  A finish of this kind needs a preconditioner for strongly varying coefficients (algebraic
  multigrid, or a sparse factorisation, as Clarabel's): not pursued.

### Not done (next sessions)

- **Anisotropic cells want per-axis dual steps** (done since, in a later session: see
  `results/anisotropic.md`, `backend_numpy.AXIS_WEIGHTS_MIN_RATIO`). A fuzzed 6 x 3 cityblock
  problem on (0, 10) x (0, 0.01) (cells 500 times longer along x) stopped at `max_iter` with
  a relative gap of 1.8e-5 even at the default tol 1e-6; per-axis dual steps `sigma s_k`
  with `s_k = dx_k / max dx`, the shrinkage in their metric and the primal step preconditioned
  by `D^T S D` converge on it in 691 iterations. (`S = diag(dx_k^2)`, this note's first
  prototype, took fewer on that problem but failed on two of twelve such problems, against
  one.) Square cells give
  `S = I`: none of this benchmark's problems changed (same bits).

- At 1e-6 the lower bound decides the stop, for two different reasons. On the Gaussian pair
  the iterate's `<c, f>` is within 2e-7 of W from iteration ~380 on, but its constraint
  violations (2-3e-4, in 164 cells at the edges of the box holding 5e-4 of `|c|`) cost the
  repaired critic 2e-6 and the ascended one 9e-7 for the last 230 iterations: a feasible
  critic that moves the low-mass cells instead of the rays through them (a `|c|`-weighted
  projection) would stop it near 400. On 8gaussians (both scales) the iterate itself is 1e-6
  below W for hundreds of iterations while its violations shrink, and the ascent makes up
  for part of it (the lower bound ends 6e-7 below W): there the iteration's own tail is slow.

- The middle phase decides the work ratio: on the WGAN-GP-scale 8gaussians at 256², 1e-4, the
  prolonged 128² solution starts the fine grid 4.4e-2 off (its near-atoms are narrower than a
  cell: the coarse problem is another problem), and the gap then falls from 6.4e-3 at
  iteration 35 to 1e-4 at 390, both bounds lagging alike.
- The coarse grids' iterations carry much Python: with the 2e-6 floor the Gaussian pair at
  1e-6 spends about a sixth of its time there and 8gaussians two fifths. Before item 40 an
  iteration took 28, 57 and 155 µs at 32², 64², 128² inside 8gaussians' solve, its kernels
  alone 11, 33 and 111 µs (item 40 took about 1.5 µs off); a whole iteration in one compiled
  call (the DCTs included) is what is left.
  Measured again on 2026-12-07 (8gaussians at 256², 1e-6; each level's time less its checks,
  per iteration): 14.8, 33.3, 97.4 µs at 32², 64², 128² (1 577, 2 000, 2 846 iterations:
  0.026, 0.073, 0.295 s of the 0.97 s solve; the fine grid's 1 190 iterations 0.54 s), the
  step and the Poisson step alone in a loop 12.3, 29.9 and 85.5 µs: the Python left is
  2-12 µs an iteration, under 0.04 s of this solve. The 128² level's iterations, not their
  overhead, are the coarse levels' cost.
- With the ray critics, the iterate itself lags: on the WGAN-GP-scale 8gaussians at 256² its
  `<c, f>` is still 7e-5 below the flow's cost when the ray critics lose only 3e-5 more, and
  that difference falls by about 2 % per 10 iterations. A second-order finish (Newton
  steps on the barrier's weighted Laplacian, DCT-preconditioned CG) was measured since
  (tried and not kept, above): thousands of PCG iterations per Newton step. The boxes
  of the ray critics could also use the ball's second-order room across the rays.
- The Poisson step is still about half of an iteration at 256² and three fifths from 512²
  with FACR(1) (item 42): the half DCT pair (0.042 ms each at 256², pocketfft on one thread)
  and the odd rows' solves (0.043-0.048 ms, their transposes) are most of it. A real FFT of
  permuted rows did not pay (tried above); pocketfft is within about twice the arithmetic of
  a real FFT. What is left is a transform fused with its neighbours (the residual's pass
  writing the DCT's input, the step's reading its output), a second reduction step (FACR(2):
  a quarter of the transforms, a pentadiagonal right-hand side and two solves along y per
  eliminated row), or in-register transposes for the odd rows.
- The polishing checks near a tight tolerance: on the Gaussian pair at 1e-6 seven of them
  (17-19 ms each at 256², about 38 iterations) take a fifth of the solve, and its descents
  there gain at most 1.3 % of the gap. Spacing them out and skipping idle descents did not
  generalize (tried above); a cheaper polish might: the ascent reaches its fixed point in
  4-8 sweeps, and its Gauss-Seidel sweep over the cells could run in three colour classes
  (cells `(i, j)` by `(i + 2 j) mod 3`: no two values of one class share a cell's
  constraint), whose updates are independent and would vectorize.
- A check still costs 8-10 iterations; from 512² the ray critics' sweeps are memory-bound (the
  critic and two edge-length arrays streamed per sweep): float32 edge lengths, rounded down,
  would stream a third less.
- The checks' float64 Poisson solve on the one-thread kernels (grids below 512², the coarse
  levels) could take the tridiagonal path too (0.49 instead of 0.94 ms at 256²), but its
  float64 specialisation adds about 0.4 s to a first 256² solve's compilation for about
  0.5 ms per check; left as a DCT pair.
"""

def _fmt(x, spec: str = ".3g") -> str:
    return "—" if x is None or (isinstance(x, float) and not np.isfinite(x)) else format(x, spec)


def _base_row(baseline: dict | None, section: str, **key) -> dict | None:
    if not baseline:
        return None
    for r in baseline.get(section, []):
        if all(r.get(k) == v for k, v in key.items()):
            return r
    return None


def _md_table(rows: list[dict], baseline: dict | None, title: str, section: str) -> list[str]:
    lines = [f"## {title}", "",
             "| problem | n | tol | iterations (fine) | coarse iterations | work | work ratio to "
             "Gaussian | seconds | rel. gap | status | baseline iterations | baseline work | "
             "baseline seconds |",
             "|---|---:|---:|---:|---|---:|---:|---:|---:|---|---:|---:|---:|"]
    for r in rows:
        b = _base_row(baseline, section, problem=r["problem"], n=r["n"], tol=r["tol"])
        lines.append(
            f"| {LABELS[r['problem']]} | {r['n']} | {r['tol']:g} | {r['iterations']:,} "
            f"| {'/'.join(map(str, r.get('coarse_iterations', []))) or '—'} "
            f"| {_fmt(r.get('work'), ',.0f')} "
            f"| {_fmt(r.get('ratio'), '.1f')} | {r['seconds']:.2f} | {r['rel_gap']:.1e} "
            f"| {r['status']} | {_fmt(b and b['iterations'], ',')} "
            f"| {_fmt(b and b.get('work'), ',.0f')} | {_fmt(b and b['seconds'], '.2f')} |")
    return [*lines, ""]


def _md_tight(rows: list[dict], baseline: dict | None) -> list[str]:
    lines = ["## 256², relative gap 1e-6, against cvxpy + Clarabel (same run)", "",
             f"Clarabel at tol {CLARABEL_TOL:g}; its own solve time (cvxpy's compilation "
             "excluded). *inside*: Clarabel's value lies in otgrid's certified interval (up to "
             "Clarabel's tolerance).", "",
             "| problem | iterations | seconds | certified W | Clarabel W | inside | Clarabel "
             "s | Clarabel / otgrid | baseline iterations | baseline seconds |",
             "|---|---:|---:|---|---:|---|---:|---:|---:|---:|"]
    for r in rows:
        b = _base_row(baseline, "tight", problem=r["problem"])
        lines.append(
            f"| {LABELS[r['problem']]} | {r['iterations']:,} | {r['seconds']:.2f} "
            f"| [{r['lower']:.9f}, {r['upper']:.9f}] | {r['clarabel_value']:.9f} "
            f"| {'yes' if r['clarabel_inside'] else '**no**'} "
            f"| {r['clarabel_solve_seconds']:.1f} | {r['clarabel_over_otgrid']:.1f}× "
            f"| {_fmt(b and b['iterations'], ',')} | {_fmt(b and b['seconds'], '.2f')} |")
    return [*lines, ""]


def _md_other(report: dict) -> list[str]:
    lines = []
    if report.get("ablation"):
        lines += ["## Ablation (256², 1e-4)", "", "| variant | problem | iterations | seconds |",
                  "|---|---|---:|---:|"]
        lines += [f"| {r['variant']} | {LABELS[r['problem']]} | {r['iterations']:,} "
                  f"| {r['seconds']:.2f} |" for r in report["ablation"]]
        lines.append("")
    if report.get("poisson"):
        lines += ["## The Poisson solve's share of an iteration", "",
                  "The solver's default: float64 iterates, the Poisson step in float32 (the "
                  "casts counted in it); the float64 DCT pair is the solver before this work. "
                  "The rest of the iteration as the solver runs it: *fused*, the residual "
                  "computed in the dual step's pass (the one-thread kernels, below 2^18 cells).",
                  "",
                  "| n | iterates | Poisson solve | residual ms | Poisson ms "
                  "| dual step ms | share |",
                  "|---:|---|---|---:|---:|---:|---:|"]
        lines += [f"| {r['n']} | {r['dtype']} | {r.get('transforms', r['dtype'])}"
                  f"{' (default)' if r.get('default') else ''} | "
                  f"{'fused' if r.get('fused') else format(r['residual_ms'], '.2f')} "
                  f"| {r['poisson_ms']:.2f} | {r['dual_step_ms']:.2f} "
                  f"| {100 * r['poisson_share']:.0f} % |" for r in report["poisson"]]
        lines.append("")
    if report.get("cold"):
        lines += ["## Cold start (fresh process, `NUMBA_CACHE_DIR` in a new folder)", "",
                  "| call | solver | Numba cache | first call s | its CPU s | second call s | "
                  "result.seconds (first) | process s | announced |",
                  "|---|---|---|---:|---:|---:|---:|---:|---|"]
        lines += [f"| {r['call']} | {r.get('solver', 'this tree')} | {r['cache']} "
                  f"| {r['first_call_s']:.2f} | {_fmt(r.get('first_call_cpu_s'), '.2f')} "
                  f"| {r['second_call_s']:.2f} | {_fmt(r['reported_seconds'], '.2f')} "
                  f"| {r['process_s']:.1f} | {'yes' if r['announced'] else 'no'} |"
                  for r in report["cold"]]
        lines.append("")
    return lines


def goals(report: dict) -> list[str]:
    """The issue's goals, each with the figure of this run and met / missed."""
    out = ["## Goals (this run)", "", "| goal | figure | met |", "|---|---|---|"]

    def add(goal: str, figure: str, met: bool | None) -> None:
        out.append(f"| {goal} | {figure} | {'—' if met is None else ('yes' if met else 'no')} |")

    for r in report.get("table", []):
        if r["problem"] != "gaussian":
            add(f"{LABELS[r['problem']]}: ≤ 3× the Gaussian pair's work ({r['n']}², 1e-4)",
                f"{r['ratio']:.1f}× (work {r['work']:,.0f}: {r['work'] / ISSUE_GAUSSIAN:.1f}× "
                f"the previous solver's {ISSUE_GAUSSIAN} on the Gaussian pair)",
                r["ratio"] <= 3 and r["converged"])
    # "reruns": section -> rows of the same section run again (this machine's speed varies):
    # a timing goal shows every run and is judged on their median
    reruns = report.get("reruns", {})
    for r in report.get("tight", []):
        runs = [r, *[x for rows in reruns.get("tight", []) for x in rows
                     if x.get("problem") == r["problem"] and x.get("n") == r["n"]]]
        ratios = [x["clarabel_over_otgrid"] for x in runs]
        shown = (f"{ratios[0]:.1f}×" if len(ratios) == 1 else
                 f"{ratios[0]:.1f}× (reruns: {', '.join(f'{v:.1f}×' for v in ratios[1:])}; "
                 f"median {np.median(ratios):.1f}×)")
        add(f"{LABELS[r['problem']]}, {r['n']}², 1e-6: ≥ 20× faster than Clarabel", shown,
            float(np.median(ratios)) >= 20 and all(x["converged"] for x in runs))

    def again(section: str, r: dict, *keys: str) -> list[dict]:
        return [x for rows in reruns.get(section, []) for x in rows
                if all(x.get(k) == r.get(k) for k in keys)]

    def figures(values: list[float], unit: str) -> str:
        if len(values) == 1:
            return f"{values[0]:.1f}{unit}"
        return (f"{values[0]:.1f}{unit} (reruns: {', '.join(f'{v:.1f}{unit}' for v in values[1:])}"
                f"; median {np.median(values):.1f}{unit})")

    for r in report.get("large", []):
        lim = 20.0 if r["problem"] == "8g_r2" else 3.0
        runs = [r, *again("large", r, "problem", "n")]
        secs = [x["seconds"] for x in runs]
        add(f"{LABELS[r['problem']]} at {r['n']}², 1e-4, in ≤ {lim:g} s",
            f"{figures(secs, ' s')}, {r['status']}",
            all(x["converged"] for x in runs) and float(np.median(secs)) <= lim)
    poisson_reruns = report.get("poisson_reruns", {})  # n -> shares of reruns of the section
    for r in report.get("poisson", []):
        if r.get("default", r["dtype"] == "float64"):
            more = poisson_reruns.get(str(r["n"]), [])
            shares = [r["poisson_share"], *more]
            add(f"Poisson solve ≤ half an iteration ({r['n']}², float64 iterates, Poisson "
                f"{r.get('transforms', 'float64')})",
                f"{100 * r['poisson_share']:.0f} %" + (
                    f" (reruns: {', '.join(f'{100 * x:.0f} %' for x in more)})" if more else ""),
                max(shares) <= 0.5)
    for r in report.get("cold", []):
        if r.get("solver", "this tree") == "this tree" and r["cache"] == "empty cache":
            runs = [r, *again("cold", r, "call", "solver", "cache")]
            comp = [x["first_call_s"] - x["second_call_s"] for x in runs]
            add(f"first `{r['call']}`: ≤ 5 s of compilation, announced",
                f"≈ {figures(comp, ' s')}, announced: {'yes' if r['announced'] else 'no'}",
                float(np.median(comp)) <= 5 and all(x["announced"] for x in runs))
    return [*out, ""]


def to_markdown(report: dict, baseline: dict | None) -> str:
    m = report["machine"]
    lines = ["# The exact critic on hard problems", "",
             f"Run {m['date']} on {m['cpu_model']} ({m['cpu_usable']} usable cores, Numba "
             f"threads {m['numba_threads']}); load average at start {report['load']:.2f}. "
             "Compilation excluded (warm-up "
             f"{report.get('warm_up_s', float('nan')):.1f} s). Seconds are wall time of one "
             "call; compare only rows of one report.", ""]
    if baseline:
        lines += [f"Baseline columns: `{report['baseline_file']}` (run "
                  f"{baseline['machine']['date']}).", ""]
    if report.get("sources"):  # a report assembled from several runs
        lines += ["Sections from separate runs (load average at their start):", ""]
        lines += [f"- {sec}: {src}" for sec, src in report["sources"].items()]
        lines.append("")
    if report.get("table"):
        lines += _md_table(report["table"], baseline, "256², relative gap 1e-4", "table")
    if report.get("growth"):
        lines += _md_table(report["growth"], baseline, "Coarser grids (iteration growth)",
                           "growth")
    if report.get("tight"):
        lines += _md_tight(report["tight"], baseline)
    if report.get("large"):
        lines += _md_table(report["large"], baseline,
                           f"Large grids, relative gap 1e-4 (time limit "
                           f"{report['large_limit']:g} s)", "large")
    return "\n".join(lines + _md_other(report) + goals(report) + [NOTES])


def plot_growth(report: dict, path: Path) -> bool:
    """Work to 1e-4 (all levels, in fine iterations) against n, one line per problem (the
    ``growth``, ``table`` and converged ``large`` rows)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:  # pragma: no cover - matplotlib is a runtime dependency
        return False
    rows = report.get("growth", []) + report.get("table", []) + [
        r for r in report.get("large", []) if r["converged"]]
    if not rows:
        return False
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    for p in PROBLEMS:
        pts = sorted((r["n"], max(r.get("work", r["iterations"]), 1.0)) for r in rows
                     if r["problem"] == p)
        if pts:
            ax.plot(*zip(*pts, strict=True), marker="o", label=LABELS[p])
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("cells per axis")
    ax.set_ylabel("work to relative gap 1e-4 (fine-grid iterations)")
    ax.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


def _write(report: dict, baseline: dict | None, out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "hard.json").write_text(json.dumps(report, indent=1, default=str))
    (out_dir / "hard.md").write_text(to_markdown(report, baseline))
    plot_growth(report, out_dir / "hard.png")


def _baseline_run(layout: Path, sections: list[str], quick: bool, out_dir: Path,
                  limit: float) -> Path:
    """Run this script's timed sections on the baseline solver (``layout`` on PYTHONPATH) in a
    child process; returns the JSON it wrote (``hard_baseline.json`` in ``out_dir``)."""
    tmp = out_dir / "baseline-run"
    cmd = [sys.executable, __file__, "--out-dir", str(tmp), "--large-limit", str(limit),
           "--sections",
           *[s for s in sections if s not in ("cold", "ablation")]] + (["--quick"] if quick
                                                                       else [])
    env = {**os.environ, "PYTHONPATH": str(layout)}
    print(f"[baseline] {' '.join(cmd[1:])} (PYTHONPATH={layout})", flush=True)
    subprocess.run(cmd, env=env, check=True, timeout=3600)
    dest = out_dir / "hard_baseline.json"
    dest.write_text((tmp / "hard.json").read_text())
    return dest


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sections", nargs="+", choices=SECTIONS, default=list(SECTIONS))
    parser.add_argument("--quick", action="store_true", help="small grids, a smoke test")
    parser.add_argument("--baseline-json", type=Path, default=None,
                        help="an earlier hard.json whose iterations and seconds become columns")
    parser.add_argument("--baseline-tree", type=Path, default=None,
                        help="a source checkout of the baseline solver (folders otgrid/ and "
                             "kernels/): its cold start is timed beside this one's and, without "
                             "--baseline-json, its timed sections are run first")
    parser.add_argument("--out-dir", type=Path, default=ROOT / "benchmarks" / "results")
    parser.add_argument("--large-limit", type=float, default=None,
                        help="time limit of each solve of the large section (default 120 s)")
    args = parser.parse_args(argv)
    cfg = dict(QUICK if args.quick else FULL)
    if args.large_limit is not None:
        cfg["large_limit"] = args.large_limit
    layout = None
    if args.baseline_tree is not None:
        layout = source_layout(args.baseline_tree, Path(tempfile.mkdtemp(prefix="otgrid-base-")))
        if args.baseline_json is None and set(args.sections) - {"cold", "ablation"}:
            args.baseline_json = _baseline_run(layout, args.sections, args.quick,
                                               args.out_dir, cfg["large_limit"])
    baseline = json.loads(args.baseline_json.read_text()) if args.baseline_json else None
    report = {"machine": machine_info(), "load": os.getloadavg()[0], "quick": args.quick,
              "large_limit": cfg["large_limit"],
              "baseline_file": str(args.baseline_json) if args.baseline_json else None}
    run = {"table": bench_table, "growth": bench_growth, "tight": bench_tight,
           "large": bench_large, "ablation": bench_ablation, "poisson": bench_poisson,
           "cold": lambda c: bench_cold(c, str(layout) if layout else None)}
    if set(args.sections) - {"cold", "poisson"}:
        report["warm_up_s"] = warm_up()
    for sec in SECTIONS:
        if sec in args.sections:
            report[sec] = run[sec](cfg)
            _write(report, baseline, args.out_dir)
    return report


if __name__ == "__main__":
    main()
