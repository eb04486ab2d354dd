"""SCO benchmark: wall time per step and its split, warm vs cold critic solves, proximal option.

Problem: fit ``g(z) = scale * z + loc`` (2D, diagonal) to N((0.5, -0.3), diag(0.6^2, 0.4^2)) on
[-4, 4]^2 with :func:`otgrid.sco.fit` at the paper's defaults (SGD, lr 5e-3, batch 128, exact
masses, critic_tol 1e-3, Euclidean norm, backend numba, CPU).

1. **Per step** at 128^2 and 512^2, in two phases: *far* (start loc (-1, 1), the right scales:
   the critic changes little between steps) and *near* (start 0.01-0.02 from the optimum: W is
   ~1e-2 and the critic's sign pattern changes every step). Mean seconds per SCO step, split
   into building the masses, the critic re-solve and the generator step; critic iterations.
2. **Warm vs cold**: the masses of the same steps re-solved (a) cold, (b) warm-started as
   ``solve_critic(warm_start=previous)`` does by itself (it reuses the previous step size), and
   (c) as ``fit`` does (warm start with the default step size of the new data).
3. **Relaxed Wasserstein proximal** (``prox=WassersteinProx(h, l)``): SCO steps (critic solves)
   and seconds to reach a parameter error below dx / 2, and the error floor after a fixed
   number of steps, against plain SCO and against ``l`` generator steps per solve without the
   proximal term (h = 1e9), in 1D (256 cells) and 2D (48^2).
4. **MLP generator** (needs torch): SCO on the 8 Gaussians with the paper's MLP (2 x 128,
   ReLU, 17 154 parameters) and sampled masses (10 000 and 50 000 generated points per
   histogram) at 128^2 and 512^2: seconds per step split into masses (sampling the MLP +
   histogram), critic re-solve and generator step (minibatch of 128 through the MLP and back).
5. **Smoothed-WGAN step** (needs torch): :func:`otgrid.sco.smoothed.fit_smoothed` on the 25
   Gaussians (MLP 2 x 128 tanh, Sanjabi et al.'s Table 1 settings) at minibatch S = 128 and
   512: seconds per step split into the dual solve and the rest, dual iterations, with the
   warm start (potentials carried over by c-transforms) against cold solves.

Run from the repository root::

    python benchmarks/bench_sco.py               # full run (several minutes: 512^2 cold solves)
    python benchmarks/bench_sco.py --quick       # smoke test
    python benchmarks/bench_sco.py --sections mlp smoothed --merge   # rerun 4-5 only, keep
                                                                     # the rest of sco.json

Writes ``benchmarks/results/sco.json`` and ``sco.md`` (or ``--out-dir``).
"""

from __future__ import annotations

import argparse
import contextlib
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

import otgrid as og
from otgrid.critic.backends import PARALLEL_MIN_CELLS
from otgrid.sco import WassersteinProx, fit
from otgrid.sco.generators import LocationScale

ROOT = Path(__file__).resolve().parents[1]
BOUNDS = [(-4.0, 4.0), (-4.0, 4.0)]
TARGET = og.Normal([0.5, -0.3], [0.36, 0.16])
TRUE = np.array([0.5, -0.3, 0.6, 0.4])
STARTS = {"far": ([-1.0, 1.0], [0.6, 0.4]),
          "near": ([0.52, -0.31], [0.61, 0.39]),
          "whole fit": ([0.5, -0.3], [0.05, 0.05])}
REPLAY_MAX_ITER = 2000


def machine_info() -> dict:
    import numba

    def version(name: str) -> str:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return "not installed"

    cpu = platform.processor() or ""
    with contextlib.suppress(OSError), open("/proc/cpuinfo", encoding="utf-8") as fh:
        for line in fh:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "platform": platform.platform(), "python": platform.python_version(),
        "cpu_model": cpu, "cpu_count": os.cpu_count(),
        "numba_threads": numba.get_num_threads(),
        "load_average_at_start": list(os.getloadavg()),
        "environment": {k: os.environ.get(k, "unset") for k in (
            "OPENBLAS_NUM_THREADS", "OMP_WAIT_POLICY", "NUMBA_NUM_THREADS")},
        "versions": {n: version(n) for n in ("otgrid", "numpy", "numba", "scipy")},
    }


@contextlib.contextmanager
def kernel_threads(cells: int):
    """The thread policy of ``fit``: one Numba thread below PARALLEL_MIN_CELLS cells."""
    import numba

    before = numba.get_num_threads()
    if cells < PARALLEL_MIN_CELLS:
        numba.set_num_threads(1)
    try:
        yield
    finally:
        numba.set_num_threads(before)


def quiet(fn, *args, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", og.OutsideMassWarning)
        warnings.simplefilter("ignore", og.ConvergenceWarning)
        return fn(*args, **kw)


# --------------------------------------------------------------------------- 1 and 2
def per_step_and_warm_vs_cold(n: int, phase: str, steps: int, cold: bool) -> dict:
    """One fit of ``steps`` steps from ``STARTS[phase]``, then its masses re-solved 2-3 ways."""
    grid = og.Grid(BOUNDS, n)
    loc, scale = STARTS[phase]
    res = quiet(fit, TARGET, LocationScale(loc, scale), grid, steps=steps, rng=0,
                true_params=TRUE)
    k = slice(1, None)  # step 0 is the initial cold solve
    row = {
        "n": n, "phase": phase, "steps": int(res.steps),
        "w_start": float(res.upper[0]), "w_end": float(res.upper[-1]),
        "param_error_end": float(res.param_error[-1]),
        "initial_cold_solve_seconds": float(res.critic_seconds[0]),
        "initial_cold_solve_iterations": int(res.critic_iterations[0]),
        "masses_seconds_per_step": float(res.masses_seconds[k].mean()),
        "critic_seconds_per_step": float(res.critic_seconds[k].mean()),
        "generator_seconds_per_step": float(res.generator_seconds.mean()),
        "critic_iterations_per_step": float(res.critic_iterations[k].mean()),
        "critic_iterations_max": int(res.critic_iterations[k].max()),
    }
    row["seconds_per_step"] = (row["masses_seconds_per_step"] + row["critic_seconds_per_step"]
                               + row["generator_seconds_per_step"])
    # replay the same masses: cold, and warm-started as fit does (solve_critic picks the step
    # from the new data on a warm start too: fit once computed it with a solve of its own)
    mu = quiet(grid.discretize, TARGET, outside="fold")
    nus = [quiet(LocationScale(t[:2], t[2:]).cell_masses, grid) for t in res.trajectory]
    modes = {"warm_fit": []} | ({"cold": []} if cold else {})
    with kernel_threads(grid.size):
        first = quiet(og.solve_critic, mu, nus[0], grid, tol=1e-3, max_iter=10_000)
        prev = {m: first for m in modes}
        for nu in nus[1:]:
            for mode in modes:
                t0 = time.perf_counter()
                if mode == "cold":
                    r = quiet(og.solve_critic, mu, nu, grid, tol=1e-3,
                              max_iter=REPLAY_MAX_ITER)
                else:
                    r = quiet(og.solve_critic, mu, nu, grid, tol=1e-3,
                              max_iter=REPLAY_MAX_ITER, warm_start=prev[mode])
                modes[mode].append((time.perf_counter() - t0, r.iterations, r.converged))
                prev[mode] = r
    for mode, rows in modes.items():
        arr = np.array(rows, dtype=np.float64)
        row[f"{mode}_seconds_per_solve"] = float(arr[:, 0].mean())
        row[f"{mode}_iterations_per_solve"] = float(arr[:, 1].mean())
        row[f"{mode}_unconverged"] = int(np.count_nonzero(arr[:, 2] == 0))
    return row


# --------------------------------------------------------------------------- 4 and 5
def mlp_study(sizes: list[int], samples: list[int], steps: int) -> list[dict]:
    """SCO steps of the paper's MLP on the 8 Gaussians, sampled masses: the split per step."""
    from otgrid.grid.datasets import eight_gaussians
    from otgrid.sco.generators_torch import mlp_generator

    rows = []
    for n in sizes:
        grid = og.Grid([(-2.0, 2.0), (-2.0, 2.0)], n)
        mu = quiet(grid.discretize, eight_gaussians())
        for m in samples:
            gen = mlp_generator(seed=0)
            res = quiet(fit, mu, gen, grid, steps=steps, lr=1e-3, optimizer="adam",
                        masses="samples", n_mass_samples=m, rng=0)
            k = slice(1, None)
            row = {"n": n, "mass_samples": m, "steps": int(res.steps), "parameters": gen.size,
                   "masses_seconds_per_step": float(res.masses_seconds[k].mean()),
                   "critic_seconds_per_step": float(res.critic_seconds[k].mean()),
                   "generator_seconds_per_step": float(res.generator_seconds.mean()),
                   "critic_iterations_per_step": float(res.critic_iterations[k].mean()),
                   "initial_cold_solve_seconds": float(res.critic_seconds[0]),
                   "initial_cold_solve_iterations": int(res.critic_iterations[0]),
                   "w_start": float(res.upper[0]), "w_end": float(res.upper[-1])}
            row["seconds_per_step"] = (row["masses_seconds_per_step"]
                                       + row["critic_seconds_per_step"]
                                       + row["generator_seconds_per_step"])
            # replay: the histograms of the same parameters (fresh samples, fixed seed) solved
            # cold and warm-started as fit does (a chain of warm starts)
            nus = []
            for theta in res.trajectory:
                gen.params = theta
                x = gen.sample(gen.sample_latent(m, np.random.default_rng(1)))
                nus.append(quiet(grid.histogram, x, scheme="linear", outside="fold"))
            with kernel_threads(grid.size):
                prev = quiet(og.solve_critic, mu, nus[0], grid, tol=1e-3, max_iter=10_000)
                cold, warm = [], []
                for nu in nus[1:]:
                    t0 = time.perf_counter()
                    r = quiet(og.solve_critic, mu, nu, grid, tol=1e-3, max_iter=10_000)
                    cold.append((time.perf_counter() - t0, r.iterations))
                    t0 = time.perf_counter()
                    prev = quiet(og.solve_critic, mu, nu, grid, tol=1e-3, max_iter=10_000,
                                 warm_start=prev)
                    warm.append((time.perf_counter() - t0, prev.iterations))
            cold_a, warm_a = np.array(cold), np.array(warm)
            row.update(cold_seconds_per_solve=float(cold_a[:, 0].mean()),
                       cold_iterations_per_solve=float(cold_a[:, 1].mean()),
                       warm_seconds_per_solve=float(warm_a[:, 0].mean()),
                       warm_iterations_per_solve=float(warm_a[:, 1].mean()))
            rows.append(row)
            print(f"  MLP {n}² {m} samples: {row}", flush=True)
    return rows


def smoothed_study(batches: list[int], steps: int) -> list[dict]:
    """fit_smoothed on the 25 Gaussians: dual solve vs the rest, warm vs cold duals."""
    from otgrid.grid.datasets import twentyfive_gaussians
    from otgrid.sco.generators_torch import mlp_generator
    from otgrid.sco.smoothed import fit_smoothed

    rows = []
    for S in batches:
        for warm in (True, False):
            gen = mlp_generator(4, 2, activation="tanh", seed=0)
            # 200 steps of training first, so the timed steps are not the very first ones
            quiet(fit_smoothed, twentyfive_gaussians(), gen, steps=200, batch=128, rng=1)
            res = quiet(fit_smoothed, twentyfive_gaussians(), gen, steps=steps, batch=S,
                        warm_start=warm, rng=0)
            k = slice(1, None)  # the first solve of a fit is always cold
            row = {"batch": S, "warm_start": warm, "steps": int(res.steps),
                   "dual_seconds_per_step": float(res.dual_seconds[k].mean()),
                   "other_seconds_per_step": float(res.generator_seconds[k].mean()),
                   "dual_iterations_per_step": float(res.dual_iterations[k].mean()),
                   "dual_unconverged": int(np.count_nonzero(~res.dual_converged))}
            row["seconds_per_step"] = row["dual_seconds_per_step"] + row[
                "other_seconds_per_step"]
            rows.append(row)
            print(f"  smoothed S={S} warm={warm}: {row}", flush=True)
    return rows


# --------------------------------------------------------------------------- 3
def prox_study(quick: bool) -> list[dict]:
    configs = [("plain SCO", None), ("prox h=0.1, l=10", WassersteinProx(0.1, 10)),
               ("prox h=0.2, l=5", WassersteinProx(0.2, 5)),
               ("l=5 steps, no prox term (h=1e9)", WassersteinProx(1e9, 5))]
    problems = [
        ("1D", og.Grid((-5.0, 7.0), 256), og.Normal(1.0, 0.25), np.array([1.0, 0.5]),
         [(1.0, 0.02), (1.0, 2.5), (-1.5, 0.5), (3.0, 0.1)], 1000),
        ("2D", og.Grid(BOUNDS, 48), TARGET, TRUE,
         [([0.5, -0.3], [0.05, 0.05]), ([0.5, -0.3], [1.6, 1.2]), ([-1.0, 1.0], [0.6, 0.4])],
         800),
    ]
    seeds = [0] if quick else [0, 1, 2]
    out = []
    for name, grid, target, true, starts, floor_steps in problems:
        dx = grid.dx[0]
        for label, prox in configs:
            reach_steps, reach_seconds, failed = [], [], 0
            for seed in seeds:
                for start in starts:
                    res = quiet(fit, target, LocationScale(*start), grid, steps=1000, rng=seed,
                                prox=prox, true_params=true, stop_param_tol=dx / 2)
                    if res.converged:
                        reach_steps.append(res.steps)
                        reach_seconds.append(res.seconds)
                    else:
                        failed += 1
            # error floor: a fixed budget of steps from the first start, mean over the last 25%
            res = quiet(fit, target, LocationScale(*starts[-1]), grid,
                        steps=200 if quick else floor_steps, rng=0, prox=prox,
                        true_params=true)
            tail = res.param_error[-max(1, len(res.param_error) // 4):]
            out.append({
                "problem": name, "dx": dx, "config": label,
                "runs": len(seeds) * len(starts), "reached_dx_over_2": len(reach_steps),
                "not_reached_in_1000_steps": failed,
                "median_steps_to_dx_over_2": float(np.median(reach_steps)) if reach_steps
                else None,
                "median_seconds_to_dx_over_2": float(np.median(reach_seconds)) if reach_steps
                else None,
                "floor_steps": int(res.steps),
                "floor_mean_param_error": float(tail.mean()),
                "floor_mean_w_upper": float(res.upper[-len(tail):].mean()),
            })
            print(f"  prox {name} {label}: {out[-1]}", flush=True)
    return out


# --------------------------------------------------------------------------- report
def _f(x, spec=".3g") -> str:
    return "—" if x is None else format(x, spec)


def to_markdown(rep: dict) -> str:
    m = rep["machine"]
    lines = [
        "# SCO benchmark: time per step, warm vs cold critic solves, proximal option",
        "",
        "Problem: fit g(z) = scale·z + loc (2D, diagonal) to N((0.5, −0.3), diag(0.6², 0.4²)) "
        "on [−4, 4]², paper defaults (SGD, lr 5e-3, batch 128), exact masses, critic_tol "
        "1e-3, Euclidean norm, Numba backend on the CPU (no GPU on the machine that measured it).",
        "",
        f"Machine: {m['cpu_model'] or 'unknown CPU'}, {m['cpu_count']} CPUs, "
        f"{m['numba_threads']} Numba threads, load average at start "
        f"{', '.join(f'{v:.1f}' for v in m['load_average_at_start'])} (a shared machine: "
        f"timings are indicative), Python {m['python']}, numpy {m['versions']['numpy']}, "
        f"numba {m['versions']['numba']}, scipy {m['versions']['scipy']}. Date {m['date']}.",
        "",
        "## Wall time per SCO step and its split",
        "",
        "*far*: start loc (−1, 1), right scales (W ≈ 2 → 1.5). *near*: start 0.01–0.02 from the "
        "optimum (W ≈ 1e-2): the critic's sign pattern changes at every step, so warm starts "
        "help less. *whole fit*: 400 steps from loc right, scales 12 and 8 times too small "
        "(W falls from 0.5 to 3e-3). Means over the steps after the initial cold solve.",
        "",
        "| grid | phase | steps | s / step | masses | critic | generator | critic it. / step "
        "(max) | initial cold solve |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rep["per_step"]:
        lines.append(
            f"| {r['n']}² | {r['phase']} | {r['steps']} | {r['seconds_per_step']:.4f} "
            f"| {r['masses_seconds_per_step']:.4f} | {r['critic_seconds_per_step']:.4f} "
            f"| {r['generator_seconds_per_step']:.4f} | {r['critic_iterations_per_step']:.0f} "
            f"({r['critic_iterations_max']}) | {r['initial_cold_solve_seconds']:.2f} s, "
            f"{r['initial_cold_solve_iterations']} it. |")
    lines += [
        "",
        "## Warm vs cold critic solves (the same masses re-solved)",
        "",
        "*cold*: no warm start. *warm, as fit*: `solve_critic(warm_start=previous)`, what "
        "`fit` does (the step is chosen from the new data, not taken from the previous solve). "
        f"Each solve is capped at {REPLAY_MAX_ITER} iterations here; 'capped' counts the solves "
        "that hit the cap.",
        "",
        "| grid | phase | cold s (it.) | warm, as fit s (it.; capped) | saving vs cold |",
        "|---|---|---:|---:|---:|",
    ]
    for r in rep["per_step"]:
        cold = (f"{r['cold_seconds_per_solve']:.4f} ({r['cold_iterations_per_solve']:.0f})"
                if "cold_seconds_per_solve" in r else "—")
        saving = (f"{r['cold_seconds_per_solve'] / r['warm_fit_seconds_per_solve']:.1f}×"
                  if "cold_seconds_per_solve" in r else "—")
        lines.append(
            f"| {r['n']}² | {r['phase']} | {cold} "
            f"| {r['warm_fit_seconds_per_solve']:.4f} ({r['warm_fit_iterations_per_solve']:.0f}; "
            f"{r['warm_fit_unconverged']}) | {saving} |")
    lines += [
        "",
        "From 128² a cold solve starts from the multilevel solution (`multilevel=\"auto\"`); its "
        "iterations count the finest grid only, and at critic_tol 1e-3 the prolonged coarse "
        "solution is often certified at once (0 iterations). A warm start on such a grid is "
        "kept as it is when its certified gap on the new data is within 10 % (one check), as "
        "every warm start of these steps is; a farther one gives way to the multilevel start "
        "(`solve_critic`'s `warm_start`). A saving below 1× means that the warm start as `fit` "
        "uses it costs more than a cold solve: its ten or more iterations and checks on the "
        "fine grid against the coarse solves.",
        "",
        "## Relaxed Wasserstein proximal update",
        "",
        "SCO steps (= critic solves) and seconds to reach max |θ − θ*| < dx/2 (median over "
        "starts × seeds, at most 1000 steps), and the error floor (mean error and W over the "
        "last quarter of a fixed budget of steps from one start).",
        "",
        "| problem | update | reached | median steps | median s | floor steps | floor error "
        "| floor W |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rep["prox"]:
        lines.append(
            f"| {r['problem']} (dx {r['dx']:.3g}) | {r['config']} "
            f"| {r['reached_dx_over_2']}/{r['runs']} | {_f(r['median_steps_to_dx_over_2'], '.0f')} "
            f"| {_f(r['median_seconds_to_dx_over_2'], '.2f')} | {r['floor_steps']} "
            f"| {r['floor_mean_param_error']:.2e} | {r['floor_mean_w_upper']:.2e} |")
    lines += ["", "Total benchmark time: " f"{rep['seconds']:.0f} s.", ""]
    lines += _markdown_new_sections(rep)
    lines += _markdown_demos(ROOT / "benchmarks" / "results" / "demos_sco.json")
    return "\n".join(lines)


def _markdown_demos(path: Path) -> list[str]:
    """The runs of demos/sco_8gaussians.py and demos/smoothed_25gaussians.py, if recorded."""
    if not path.exists():
        return []
    runs = json.loads(path.read_text(encoding="utf-8"))
    lines = ["## Acceptance demos (recorded by the demo scripts in demos_sco.json)", ""]
    for key, r in sorted(runs.items()):
        st = r["settings"]
        if key.startswith("sco_8gaussians"):
            lines.append(
                f"- `{key}` (demos/sco_8gaussians.py): MLP 2 × 128 ReLU, {st['grid']}² grid, "
                f"{st['mass_samples']} samples per histogram, {st['optimizer']} lr {st['lr']:g}, "
                f"{r['steps']} steps in {r['seconds']:.0f} s (critic "
                f"{r['seconds_split']['critic']:.0f} s, masses {r['seconds_split']['masses']:.0f}"
                f" s, generator {r['seconds_split']['generator']:.0f} s); certified W_grid "
                f"(50 000 fresh samples) from [{r['w_start'][0]:.4g}, {r['w_start'][1]:.4g}] to "
                f"[{r['w_final'][0]:.4g}, {r['w_final'][1]:.4g}]; {r['machine']}, {r['date']}.")
        else:
            lines.append(
                f"- `{key}` (demos/smoothed_25gaussians.py): MLP 2 × 128 tanh, latent "
                f"{st['latent_dim']}, λ {st['reg']:g} ({st['regularizer']}, {st['cost']}), "
                f"Adam lr {st['lr']:g}, S = {st['batch']}, {r['steps_done']} steps in "
                f"{r['seconds']:.0f} s (dual {r['seconds_split']['dual']:.0f} s, other "
                f"{r['seconds_split']['generator']:.0f} s, {r['dual_iterations_mean']:.0f} dual "
                f"it. / step): **{r['modes_recovered']}/25 modes recovered** ({r['criterion']}); "
                f"{100 * r['fraction_within_3_std']:.1f}% of the points within 3 std of a mode; "
                f"W_grid (128², 50 000 points) in [{r['w_grid_128'][0]:.4g}, "
                f"{r['w_grid_128'][1]:.4g}]; {r['machine']}, {r['date']}.")
    lines.append("")
    return lines


def _machine_line(m: dict) -> str:
    return (f"Measured {m['date']}, load average at start "
            f"{', '.join(f'{v:.1f}' for v in m['load_average_at_start'])} on {m['cpu_count']} "
            f"CPUs (a shared machine: timings are indicative), torch "
            f"{m['versions'].get('torch', '?')}, environment "
            + ", ".join(f"{k}={v}" for k, v in m.get("environment", {}).items()) + ".")


def _markdown_new_sections(rep: dict) -> list[str]:
    lines: list[str] = []
    if rep.get("mlp"):
        lines += [
            "## SCO with an MLP generator (8 Gaussians, sampled masses)",
            "",
            "The paper's generator (2 × 128 ReLU, 17 154 parameters, torch float64, "
            "`TorchGenerator`), Adam lr 1e-3, batch 128, `masses=\"samples\"` (cloud-in-cell "
            "histogram of the given number of generated points), critic_tol 1e-3, grid "
            "[−2, 2]², a few steps from the initialisation (W ≈ 1.37, where each Adam step "
            "moves the whole generated cloud). *masses*: sampling the MLP and the histogram; "
            "*critic*: the warm-started "
            "re-solve; *generator*: the minibatch forward/backward and the optimizer. Means over "
            "the steps after the initial cold solve. "
            + _machine_line(rep["mlp_machine"]),
            "",
            "| grid | mass samples | steps | s / step | masses | critic | generator "
            "| critic it. / step | initial cold solve | W start → end | replay: cold s (it.) "
            "| replay: warm s (it.) |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for r in rep["mlp"]:
            lines.append(
                f"| {r['n']}² | {r['mass_samples']} | {r['steps']} "
                f"| {r['seconds_per_step']:.4f} | {r['masses_seconds_per_step']:.4f} "
                f"| {r['critic_seconds_per_step']:.4f} | {r['generator_seconds_per_step']:.4f} "
                f"| {r['critic_iterations_per_step']:.0f} "
                f"| {r['initial_cold_solve_seconds']:.2f} s, "
                f"{r['initial_cold_solve_iterations']} it. "
                f"| {r['w_start']:.3g} → {r['w_end']:.3g} "
                f"| {_f(r.get('cold_seconds_per_solve'), '.3f')} "
                f"({_f(r.get('cold_iterations_per_solve'), '.0f')}) "
                f"| {_f(r.get('warm_seconds_per_solve'), '.3f')} "
                f"({_f(r.get('warm_iterations_per_solve'), '.0f')}) |")
        lines += [
            "",
            "*replay*: the parameters of the same steps, their histograms rebuilt from fresh "
            "samples (fixed seed) and solved cold, and warm-started from the previous replayed "
            "solve (as `fit` does); means over the steps after the first.",
            ""]
    if rep.get("smoothed"):
        lines += [
            "## Smoothed-WGAN step (Sanjabi et al. Alg. 1), 25 Gaussians",
            "",
            "`fit_smoothed` with the MLP 2 × 128 tanh (latent 4), λ = 0.01, L2 regularizer "
            "(`smooth_ot`, L-BFGS), c = |x − y|₁, Adam lr 3e-3, dual_tol 1e-4, after 200 "
            "steps of training at S = 128. *dual*: the regularized dual solve of the "
            "minibatch; *other*: sampling, the warm start (c-transforms), the pseudo-plan and "
            "cost gradient, the generator vjp and the optimizer. *warm*: potentials of the "
            "previous step carried over by c-transforms (`transfer_potentials`); *cold*: the "
            "solver's own start. " + _machine_line(rep["smoothed_machine"]),
            "",
            "| S | dual start | steps | s / step | dual | other | dual it. / step "
            "| unconverged |",
            "|---:|---|---:|---:|---:|---:|---:|---:|",
        ]
        for r in rep["smoothed"]:
            lines.append(
                f"| {r['batch']} | {'warm' if r['warm_start'] else 'cold'} | {r['steps']} "
                f"| {r['seconds_per_step']:.4f} | {r['dual_seconds_per_step']:.4f} "
                f"| {r['other_seconds_per_step']:.4f} | {r['dual_iterations_per_step']:.1f} "
                f"| {r['dual_unconverged']} |")
        lines.append("")
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="tiny run (smoke test)")
    ap.add_argument("--sizes", nargs="+", type=int, default=[128, 512])
    ap.add_argument("--steps", nargs="+", type=int, default=[100, 6],
                    help="SCO steps per phase, one per size")
    ap.add_argument("--no-cold", nargs="*", type=int, default=[], dest="no_cold",
                    help="sizes for which the cold re-solves are skipped")
    ap.add_argument("--out-dir", default=str(ROOT / "benchmarks" / "results"))
    ap.add_argument("--sections", nargs="+", default=["grid", "prox", "mlp", "smoothed"],
                    choices=["grid", "prox", "mlp", "smoothed"],
                    help="parts to run (grid: 1-2, prox: 3, mlp: 4, smoothed: 5)")
    ap.add_argument("--merge", action="store_true",
                    help="keep the other sections of an existing JSON report")
    ap.add_argument("--mlp-steps", type=int, default=10, dest="mlp_steps")
    ap.add_argument("--smoothed-steps", type=int, default=100, dest="smoothed_steps")
    ap.add_argument("--render", action="store_true",
                    help="only rewrite the markdown from the existing JSON report")
    args = ap.parse_args(argv)
    if args.render:
        out = Path(args.out_dir)
        rep = json.loads((out / "sco.json").read_text(encoding="utf-8"))
        (out / "sco.md").write_text(to_markdown(rep), encoding="utf-8")
        print(f"wrote {out / 'sco.md'}")
        return 0
    if args.quick:
        args.sizes, args.steps = [32], [5]
    if len(args.steps) != len(args.sizes):
        ap.error("--steps needs one value per size")
    t0 = time.perf_counter()
    out = Path(args.out_dir)
    stem = "sco_quick" if args.quick else "sco"
    old = out / f"{stem}.json"
    rep = json.loads(old.read_text()) if args.merge and old.exists() else {
        "machine": machine_info(), "per_step": [], "prox": []}
    if "grid" in args.sections:
        rep["machine"] = machine_info()
        # compile outside the timings
        quiet(fit, TARGET, LocationScale(*STARTS["far"]), og.Grid(BOUNDS, 16), steps=2, rng=0)
        quiet(fit, og.Normal(1.0, 0.25), LocationScale(0.0, 1.0), og.Grid((-5, 7), 32),
              steps=2)
        runs = [(n, phase, steps) for n, steps in zip(args.sizes, args.steps, strict=True)
                for phase in ("far", "near")]
        runs.append((16, "whole fit", 50) if args.quick else (48, "whole fit", 400))
        rep["per_step"] = []
        for n, phase, steps in runs:
            row = per_step_and_warm_vs_cold(n, phase, steps, cold=n not in args.no_cold)
            rep["per_step"].append(row)
            print(f"  {n}² {phase}: {row}", flush=True)
    if "prox" in args.sections:
        rep["prox"] = prox_study(args.quick)
    torch_ok = True
    try:
        import torch
    except ImportError:
        torch_ok = False
        print("  torch is not installed: sections mlp and smoothed skipped", flush=True)
    if torch_ok and {"mlp", "smoothed"} & set(args.sections):
        torch.set_num_threads(min(2, os.cpu_count() or 1))
        info = machine_info()
        info["versions"]["torch"] = torch.__version__
        if "mlp" in args.sections:
            rep["mlp_machine"] = info
            rep["mlp"] = mlp_study([32] if args.quick else [128, 512],
                                   [2000] if args.quick else [10_000, 50_000],
                                   3 if args.quick else args.mlp_steps)
        if "smoothed" in args.sections:
            rep["smoothed_machine"] = info
            rep["smoothed"] = smoothed_study([32] if args.quick else [128, 512],
                                             5 if args.quick else args.smoothed_steps)
    if "grid" in args.sections or "prox" in args.sections or "seconds" not in rep:
        rep["seconds"] = time.perf_counter() - t0
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{stem}.json").write_text(json.dumps(rep, indent=2) + "\n", encoding="utf-8")
    (out / f"{stem}.md").write_text(to_markdown(rep), encoding="utf-8")
    print(f"wrote {out / (stem + '.json')} and {out / (stem + '.md')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
