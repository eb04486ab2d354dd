"""SCO against WGAN and WGAN-GP (issue 7): Gaussian fits and 8gaussians, reduced CPU sizes.

1. **Gaussian fits** (Pinetz et al., Figs. 3-4): fit ``g(z) = scale * z + loc`` from loc 0,
   scale 1 to N(1, 0.5^2) (1D) and to N((1, -0.5), diag(0.5^2, 1.5^2)) (2D). SCO
   (:func:`otgrid.sco.fit`, SGD lr 5e-3, batch 128, exact masses, critic_tol 1e-3; 256 cells /
   64^2 on [-4, 4]^d) against WGAN (weight clipping, RMSProp 5e-5) and WGAN-GP (Adam 1e-4,
   betas (0, 0.9), lam 10), 5 critic updates per generator update, batch 256, critic 2x16
   (1D) / 2x128 (2D). Parameter error ``max_i |theta_i - theta*_i|`` (with |scale|) against
   generator steps and against seconds: one figure per setting.
2. **8gaussians**: the 2x128 ReLU generator of Pinetz et al. (latent N(0, I_2)) trained by
   WGAN and WGAN-GP; the exact grid W1 between 8gaussians and 50 000 generated points
   (histogram, 128^2 on [-3, 3]^2) at the end. SCO on this problem needs an MLP generator in
   otgrid.sco (another helper's work); it is not run here.

The step counts are far below the papers' 10^5 - 10^6 (CPU, shared machine); they are
stated in the output. Every run uses seed 0.

Run:  python benchmarks/bench_gan.py [--gan-steps N] [--sco-steps N] [--gauss8-steps N]
Writes benchmarks/results/gan.json, gan.md, gan_1d.png, gan_2d.png.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
import warnings
from pathlib import Path

import numpy as np
import torch

import otgrid as og
from otgrid.auditing.gan import LocationScaleNet, make_generator, train_gan
from otgrid.grid.datasets import eight_gaussians
from otgrid.sco import fit
from otgrid.sco.generators import LocationScale

RESULTS = Path(__file__).resolve().parent / "results"

FITS = [
    ("1d", og.Normal(1.0, 0.25), np.array([1.0, 0.5]), og.Grid((-4.0, 4.0), 256)),
    ("2d", og.Normal([1.0, -0.5], [0.25, 2.25]), np.array([1.0, -0.5, 0.5, 1.5]),
     og.Grid([(-4.0, 4.0), (-4.0, 4.0)], 64)),
]


def _err(params: np.ndarray, truth: np.ndarray) -> float:
    d = truth.size // 2
    p = np.asarray(params, dtype=np.float64).copy()
    p[d:] = np.abs(p[d:])
    return float(np.max(np.abs(p - truth)))


def _sco(target, truth, grid, steps):
    d = grid.ndim
    gen = LocationScale(np.zeros(d), np.ones(d)) if d > 1 else LocationScale(0.0, 1.0)
    res = fit(target, gen, grid, steps=steps, keep_trajectory=True, rng=0)
    solve = np.cumsum(res.masses_seconds + res.critic_seconds)
    gen_t = np.concatenate([[0.0], np.cumsum(res.generator_seconds)])
    n = len(res.trajectory)
    return {"steps": list(range(n)),
            "seconds": (solve[:n] + gen_t[:n]).tolist(),
            "error": [_err(p, truth) for p in res.trajectory],
            "final_params": res.params.tolist(), "final_w_upper": float(res.upper[-1])}


def _gan(method, target, truth, steps, arch):
    d = truth.size // 2
    gen = LocationScaleNet(np.zeros(d), np.ones(d))
    run = train_gan(target, gen, method=method, steps=steps, arch=arch, seed=0,
                    record_every=max(1, steps // 100))
    return {"steps": [r["step"] for r in run.records],
            "seconds": [r["seconds"] for r in run.records],
            "error": [_err(np.array(r["params"]), truth) for r in run.records],
            "final_params": run.records[-1]["params"], "settings": run.settings}


def _figure(name, curves, path):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 4), layout="constrained")
    FigureCanvasAgg(fig)
    ax1, ax2 = fig.subplots(1, 2)
    for label, c in curves.items():
        ax1.semilogy(c["steps"], np.maximum(c["error"], 1e-4), label=label)
        ax2.semilogy(c["seconds"], np.maximum(c["error"], 1e-4), label=label)
    ax1.set_xlabel("generator steps")
    ax2.set_xlabel("seconds (training only)")
    for ax in (ax1, ax2):
        ax.set_ylabel("max |theta - theta*|")
        ax.legend()
    fig.suptitle(f"{name} Gaussian fit: SCO vs WGAN vs WGAN-GP (seed 0)")
    fig.savefig(path, dpi=110)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--gan-steps", type=int, default=1500)
    ap.add_argument("--sco-steps", type=int, default=400)
    ap.add_argument("--gauss8-steps", type=int, default=1500)
    args = ap.parse_args()
    torch.set_num_threads(1)
    warnings.simplefilter("ignore")
    out: dict = {"meta": {"gan_steps": args.gan_steps, "sco_steps": args.sco_steps,
                          "gauss8_steps": args.gauss8_steps, "n_critic": 5, "seed": 0,
                          "torch": torch.__version__, "threads": 1,
                          "python": platform.python_version()}}
    t_all = time.perf_counter()
    md = ["# SCO vs WGAN / WGAN-GP (reduced CPU run)", "",
          f"Gaussian fits: SCO {args.sco_steps} steps; WGAN and WGAN-GP {args.gan_steps} "
          f"generator steps x 5 critic updates, batch 256. 8gaussians: "
          f"{args.gauss8_steps} generator steps. Seed 0, torch on 1 CPU thread, shared "
          "2-core machine (timings noisy). Written by benchmarks/bench_gan.py.", "",
          "| setting | method | final max param error | seconds | final params |",
          "|---|---|---|---|---|"]
    for name, target, truth, grid in FITS:
        arch = "1d" if name == "1d" else "2d"
        curves = {"SCO": _sco(target, truth, grid, args.sco_steps),
                  "WGAN": _gan("clip", target, truth, args.gan_steps, arch),
                  "WGAN-GP": _gan("gp", target, truth, args.gan_steps, arch)}
        out[name] = curves
        _figure(name.upper(), curves, RESULTS / f"gan_{name}.png")
        for label, c in curves.items():
            md.append(f"| {name.upper()} Gaussian fit | {label} | {c['error'][-1]:.3g} | "
                      f"{c['seconds'][-1]:.1f} | "
                      f"{[round(p, 3) for p in c['final_params']]} |")
            print(f"{name} {label}: error {c['error'][-1]:.3g} after {c['steps'][-1]} steps, "
                  f"{c['seconds'][-1]:.1f} s", flush=True)
    target = eight_gaussians()
    grid = og.Grid([(-3.0, 3.0), (-3.0, 3.0)], 128)
    mu = grid.discretize(target)
    out["8gaussians"] = {}
    md += ["", "| 8gaussians | method | exact grid W1 (50 000 generated points) | seconds |",
           "|---|---|---|---|"]
    for label, method in (("WGAN", "clip"), ("WGAN-GP", "gp")):
        gen = make_generator(2, 2, seed=0)
        run = train_gan(target, gen, method=method, steps=args.gauss8_steps, arch="2d",
                        latent_dim=2, seed=0, record_every=args.gauss8_steps)
        with torch.no_grad():
            z = torch.as_tensor(np.random.default_rng(1).standard_normal((50_000, 2)),
                                dtype=torch.float32)
            x = gen(z).double().numpy()
        nu = grid.histogram(x, outside="fold")
        res = og.solve_critic(mu, nu, grid, tol=1e-4)
        out["8gaussians"][label] = {"w_lower": res.lower, "w_upper": res.upper,
                                    "seconds": run.seconds, "steps": args.gauss8_steps}
        md.append(f"| | {label} | {res.w1:.4g} in [{res.lower:.4g}, {res.upper:.4g}] | "
                  f"{run.seconds:.1f} |")
        print(f"8gaussians {label}: W = {res.w1:.4g} ({run.seconds:.1f} s)", flush=True)
    total = time.perf_counter() - t_all
    out["meta"]["total_seconds"] = round(total, 1)
    md += ["", f"Total {total:.0f} s. Figures: gan_1d.png, gan_2d.png (parameter error against "
           "steps and seconds)."]
    (RESULTS / "gan.json").write_text(json.dumps(out, indent=2))
    (RESULTS / "gan.md").write_text("\n".join(md) + "\n")
    print(f"wrote gan.json, gan.md and figures in {total:.0f} s")


if __name__ == "__main__":
    main()
