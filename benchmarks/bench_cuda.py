"""Issue 4 benchmark: the CUDA backend of the grid critic on one GPU, against the Numba CPU backend.

Sections (all run, in this order; each adds to the report):

``bandwidth``
    CuPy device-to-device copy bandwidth (a 512 MiB array), then one iteration of the loop body
    (``residual``, the DCT Poisson solve, ``dual_step``) of ``CudaGridKernels`` at each size, in
    float64 and float32, timed with the device synchronised; achieved GB/s under the byte model
    below and its fraction of the copy bandwidth. Byte model per cell: ``residual`` reads
    ``c, y_0, y_1`` and writes ``r`` (4 values in 2D), ``dual_step`` reads ``f, u, y_0, y_1`` and
    writes ``f_out, y_0, y_1`` (7 values), the Poisson solve at least reads ``r`` and writes
    ``u`` twice (DCT, scaling, inverse DCT: 6 values) -- 17 values of the working dtype.
``solve``
    N((0,0), I) vs N((2,1), I) on [-4, 4]^2 (as ``bench_first_release.py``), euclidean norm, to
    relative gap ``--tol`` (1e-4): ``solve_critic`` with the CUDA kernels in float64 and float32,
    wall seconds of one call from NumPy masses in to NumPy results out (transfers included),
    iterations, bounds; the same with ``backend="numba"`` at the sizes of ``--numba-sizes`` and
    the speed-up.
``batch``
    ``--batch`` problems (N((0,0), I) against shifted Gaussians) at ``--batch-shape``: one
    batched call vs one call per problem, both on the GPU; throughput ratio.

Run on a machine with a GPU, from the repository root, with ``pip install -e .[cuda,test]``::

    python benchmarks/bench_cuda.py                           # 1024², 4096²; 256 x 128²
    python benchmarks/bench_cuda.py --sizes 1024 --batch 64   # a subset

Writes ``cuda.json`` and ``cuda.md`` under ``benchmarks/results/`` (or ``--out-dir``), with the
device named.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_first_release import ROOT, _version, machine_info, problem

import otgrid as og
from otgrid._device import cuda_status, simulator_enabled
from otgrid.critic.backend_cuda import CudaGridKernels

VALUES_PER_CELL = 17  # byte model of one iteration in 2D (see the module docstring)


def _sync() -> None:
    if not simulator_enabled():
        import cupy

        cupy.cuda.Device().synchronize()


def _timed(fn, repeat: int) -> float:
    """Best wall time of ``repeat`` calls, the device synchronised before and after each."""
    best = np.inf
    for _ in range(repeat):
        _sync()
        t0 = time.perf_counter()
        fn()
        _sync()
        best = min(best, time.perf_counter() - t0)
    return best


@contextlib.contextmanager
def cuda_solver() -> Iterator[str]:
    """Yields the backend name that runs ``solve_critic`` on the GPU."""
    yield "cuda"


def copy_bandwidth(nbytes: int, repeat: int) -> float:
    """Device-to-device copy bandwidth in GB/s (read + write)."""
    kern = CudaGridKernels((8, 8), (1.0, 1.0), "euclidean", np.float32)
    xp = kern.xp
    src = xp.ones(nbytes // 4, dtype=np.float32)
    dst = xp.empty_like(src)

    def copy():
        dst[...] = src

    t = _timed(copy, repeat)
    return 2 * src.nbytes / t / 1e9


def iteration_bandwidth(n: int, dtype, repeat: int, copy_gbs: float) -> dict:
    """Seconds and GB/s of one loop-body iteration (and of its parts) at n x n."""
    kern = CudaGridKernels((n, n), (8.0 / n, 8.0 / n), "euclidean", dtype)
    xp = kern.xp
    rng = np.random.default_rng(0)
    c = rng.normal(size=(1, n, n))
    c -= c.mean()
    c = kern.to_device(c)
    f = xp.zeros((1, n, n), dtype=dtype)
    y = xp.zeros((1, 2, n, n), dtype=dtype)
    r, f_out = xp.empty_like(f), xp.empty_like(f)
    tau = np.array([0.5])
    sigma = 1.0 / tau
    u = kern.poisson(r)
    parts = {
        "residual": lambda: kern.residual(c, y, r),
        "poisson": lambda: kern.poisson(r),
        "dual_step": lambda: kern.dual_step(f, u, y, f_out, tau, sigma),
    }

    def iteration():
        kern.residual(c, y, r)
        uu = kern.poisson(r)
        kern.dual_step(f, uu, y, f_out, tau, sigma)

    for fn in (*parts.values(), iteration):  # compile / plan the FFTs
        fn()
    item = np.dtype(dtype).itemsize
    cells = n * n
    out = {"n": n, "dtype": np.dtype(dtype).name}
    values = {"residual": 4, "poisson": 6, "dual_step": 7}
    for name, fn in parts.items():
        t = _timed(fn, repeat)
        gbs = values[name] * cells * item / t / 1e9
        out[name] = {"seconds": t, "gb_per_s": gbs, "fraction_of_copy": gbs / copy_gbs}
    t = _timed(iteration, repeat)
    gbs = VALUES_PER_CELL * cells * item / t / 1e9
    out["iteration"] = {"seconds": t, "gb_per_s": gbs, "fraction_of_copy": gbs / copy_gbs}
    return out


def solve(n: int, backend: str, dtype, tol: float, repeat: int) -> dict:
    grid, mu, nu = problem(n)
    best, res = np.inf, None
    for _ in range(repeat):
        t0 = time.perf_counter()
        if backend == "cuda":
            with cuda_solver() as name:
                res = og.solve_critic(mu, nu, grid, norm="euclidean", tol=tol, dtype=dtype,
                                      backend=name)
        else:
            res = og.solve_critic(mu, nu, grid, norm="euclidean", tol=tol, dtype=dtype,
                                  backend=backend)
        best = min(best, time.perf_counter() - t0)
    return {"n": n, "backend": backend, "dtype": np.dtype(dtype).name, "seconds": best,
            "iterations": res.iterations, "lower": res.lower, "upper": res.upper,
            "relative_gap": res.relative_gap, "converged": res.converged, "levels": res.levels}


def batch(nb: int, n: int, tol: float) -> dict:
    grid = og.Grid([(-4.0, 4.0), (-4.0, 4.0)], (n, n))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", og.OutsideMassWarning)
        mu = grid.discretize(og.Normal(mean=[0.0, 0.0], cov=1.0), outside="renormalize")
        shifts = np.linspace(0.25, 2.0, nb)
        nus = np.stack([
            grid.discretize(og.Normal(mean=[s, 0.5 * s], cov=1.0), outside="renormalize")
            for s in shifts])
    with cuda_solver() as name:
        og.solve_critic(mu, nus[:2], grid, tol=tol, backend=name)  # compile
        t0 = time.perf_counter()
        together = og.solve_critic(mu, nus, grid, tol=tol, backend=name)
        t_batch = time.perf_counter() - t0
        t0 = time.perf_counter()
        alone = [og.solve_critic(mu, nu, grid, tol=tol, backend=name) for nu in nus]
        t_seq = time.perf_counter() - t0
    diff = max(abs(a.w1 - b.w1) / max(b.upper, 1e-300) for a, b in zip(together, alone,
                                                                       strict=True))
    return {"problems": nb, "n": n, "batch_seconds": t_batch, "sequential_seconds": t_seq,
            "throughput_ratio": t_seq / t_batch, "max_relative_w1_difference": diff,
            "all_converged": all(r.converged for r in together)}


def device_name() -> str:
    if simulator_enabled():
        return "numba CUDA simulator (no GPU; timings meaningless)"
    import cupy

    props = cupy.cuda.runtime.getDeviceProperties(cupy.cuda.Device().id)
    name = props["name"]
    return name.decode() if isinstance(name, bytes) else str(name)


def markdown(report: dict) -> str:
    lines = [f"# CUDA backend on {report['device']}", "",
             f"Copy bandwidth: {report['copy_gb_per_s']:.0f} GB/s (device to device).", "",
             "| n | dtype | iteration ms | GB/s | of copy | residual | poisson | dual_step |",
             "|---|---|---|---|---|---|---|---|"]
    for b in report["bandwidth"]:
        it = b["iteration"]
        lines.append(f"| {b['n']} | {b['dtype']} | {1e3 * it['seconds']:.3f} | "
                     f"{it['gb_per_s']:.0f} | {100 * it['fraction_of_copy']:.0f} % | "
                     + " | ".join(f"{100 * b[p]['fraction_of_copy']:.0f} %"
                                  for p in ("residual", "poisson", "dual_step")) + " |")
    lines += ["", f"Gaussian pair, euclidean, relative gap {report['tol']:g} (NumPy in and out):",
              "", "| n | backend | dtype | seconds | iterations | rel. gap | speed-up vs numba |",
              "|---|---|---|---|---|---|---|"]
    numba_t = {(s["n"], s["dtype"]): s["seconds"] for s in report["solve"]
               if s["backend"] == "numba"}
    for s in report["solve"]:
        ref = numba_t.get((s["n"], s["dtype"]))
        speed = f"{ref / s['seconds']:.1f}x" if ref and s["backend"] == "cuda" else ""
        lines.append(f"| {s['n']} | {s['backend']} | {s['dtype']} | {s['seconds']:.3f} | "
                     f"{s['iterations']} | {s['relative_gap']:.1e} | {speed} |")
    if report.get("batch"):
        b = report["batch"]
        lines += ["", f"Batch of {b['problems']} problems at {b['n']}²: "
                      f"{b['batch_seconds']:.2f} s together, {b['sequential_seconds']:.2f} s one "
                      f"after another: {b['throughput_ratio']:.1f}x the throughput."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[1024, 4096])
    p.add_argument("--numba-sizes", type=int, nargs="*", default=[1024])
    p.add_argument("--tol", type=float, default=1e-4)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--batch-shape", type=int, default=128)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--copy-mib", type=int, default=512)
    p.add_argument("--out-dir", type=Path, default=ROOT / "benchmarks" / "results")
    args = p.parse_args(argv)
    status = cuda_status()
    if not status.startswith("available"):
        raise SystemExit(f"bench_cuda.py needs a GPU: {status}")
    report = {"device": device_name(), "machine": machine_info(), "tol": args.tol,
              "versions": {d: _version(d) for d in ("cupy-cuda12x", "cupy-cuda13x",
                                                    "numba-cuda")}}
    report["copy_gb_per_s"] = copy_bandwidth(args.copy_mib << 20, args.repeat)
    report["bandwidth"] = [iteration_bandwidth(n, dt, args.repeat, report["copy_gb_per_s"])
                           for n in args.sizes for dt in (np.float64, np.float32)]
    warm = min(64, *args.sizes)
    solve(warm, "cuda", np.float64, args.tol, 1)  # compile
    solve(warm, "cuda", np.float32, args.tol, 1)
    report["solve"] = [solve(n, "cuda", dt, args.tol, args.repeat)
                       for n in args.sizes for dt in (np.float64, np.float32)]
    report["solve"] += [solve(n, "numba", dt, args.tol, 1)
                        for n in args.numba_sizes for dt in (np.float64, np.float32)]
    report["batch"] = batch(args.batch, args.batch_shape, args.tol) if args.batch else None
    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / "cuda.json").write_text(json.dumps(report, indent=2, default=str) + "\n",
                                            encoding="utf-8")
    (args.out_dir / "cuda.md").write_text(markdown(report), encoding="utf-8")
    print(markdown(report))
    return report


if __name__ == "__main__":
    main()
