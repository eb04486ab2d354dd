"""Audit every WGAN baseline critic against the exact grid critic (issue 7).

Settings: 1D Gaussian pairs in the spirit of Pinetz et al., Fig. 1 (shifted, wider, identical;
the paper does not print its means and variances, the values below are ours), a 2D Gaussian
pair and 8gaussians vs N(0, I). Methods: weight clipping, gradient penalty (lambda 10),
one-sided Lipschitz penalty (lambda 10 and 0.1), spectral normalisation, with the optimisers of
otgrid.auditing.baselines. Networks: 2 x 16 ReLU in 1D, 2 x 128 ReLU in 2D. Every run uses seed 0.

The step counts are CPU-friendly (default 3000 critic updates, batch 256), far below the
papers' 10^5 - 10^6: the table measures these short runs, not converged critics.

Run:  python benchmarks/bench_audit.py [--steps N] [--batch B]
Writes benchmarks/results/audit.json and benchmarks/results/audit.md.
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
from otgrid.auditing import audit
from otgrid.auditing.baselines import train_critic
from otgrid.grid.datasets import eight_gaussians

RESULTS = Path(__file__).resolve().parent / "results"

SETTINGS = [
    ("1D shifted: N(0,1) vs N(1,1)", og.Normal(0.0, 1.0), og.Normal(1.0, 1.0),
     og.Grid((-7.0, 8.0), 512), "1d"),
    ("1D wider: N(0,1) vs N(0,2^2)", og.Normal(0.0, 1.0), og.Normal(0.0, 4.0),
     og.Grid((-11.0, 11.0), 512), "1d"),
    ("1D identical: N(0,1) vs N(0,1)", og.Normal(0.0, 1.0), og.Normal(0.0, 1.0),
     og.Grid((-7.0, 7.0), 512), "1d"),
    ("2D: N(0,I) vs N((1.5,1), 0.5^2 I)", og.Normal([0.0, 0.0], 1.0),
     og.Normal([1.5, 1.0], 0.25), og.Grid([(-5.0, 5.0), (-5.0, 5.0)], 96), "2d"),
    ("8gaussians vs N(0,I)", eight_gaussians(), og.Normal([0.0, 0.0], 1.0),
     og.Grid([(-4.0, 4.0), (-4.0, 4.0)], 96), "2d"),
]

METHODS = [("clip", {}), ("gp", {"lam": 10.0}), ("lp", {"lam": 10.0}), ("lp", {"lam": 0.1}),
           ("sn", {})]

COLUMNS = ("w_critic", "w_ratio", "w_ratio_samples", "lipschitz", "w_ratio_over_lipschitz",
           "grad_cosine", "grad_l2", "shape_error", "shape_scale", "frac_above_between")


def _label(method: str, kw: dict) -> str:
    return f"{method}(lam={kw['lam']:g})" if "lam" in kw else method


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--samples", type=int, default=4096)
    args = ap.parse_args()
    torch.set_num_threads(1)
    warnings.simplefilter("ignore", og.OutsideMassWarning)
    rows = []
    t_all = time.perf_counter()
    for name, mu, nu, grid, arch in SETTINGS:
        exact = og.solve_critic(grid.discretize(mu), grid.discretize(nu), grid, tol=1e-5)
        print(f"{name}: W* = {exact.w1:.6g} in [{exact.lower:.6g}, {exact.upper:.6g}] "
              f"({exact.seconds:.2f} s)", flush=True)
        for method, kw in METHODS:
            run = train_critic(mu, nu, method=method, arch=arch, steps=args.steps,
                               batch_size=args.batch, seed=0, **kw)
            rep = audit(run.critic, mu, nu, grid, exact=exact, samples=args.samples, seed=0)
            d = rep.to_dict()
            row = {"setting": name, "method": _label(method, kw), "arch": arch,
                   "steps": args.steps, "batch_size": args.batch, "seed": 0,
                   "train_seconds": round(run.seconds, 2), **d}
            rows.append(row)
            print(f"  {row['method']:<12} w_ratio {d['w_ratio']}  lip {d['lipschitz']:.3f}  "
                  f"cos {d['grad_cosine']}  shape {d['shape_error']}  "
                  f"({run.seconds:.1f} s)", flush=True)
    total = time.perf_counter() - t_all
    meta = {"steps": args.steps, "batch_size": args.batch, "samples": args.samples, "seed": 0,
            "torch": torch.__version__, "threads": 1, "machine": platform.machine(),
            "python": platform.python_version(), "total_seconds": round(total, 1),
            "exact_tol": 1e-5}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "audit.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))

    def fmt(v):
        return "n/a" if v is None else (f"{v:.3g}" if isinstance(v, float) else str(v))

    lines = ["# Audit of WGAN baseline critics against the exact grid critic", "",
             f"{args.steps} critic updates per run, batch {args.batch}, seed 0, "
             f"{args.samples} samples per measure for the sample metrics; torch "
             f"{torch.__version__} on 1 CPU thread; total {total:.0f} s "
             "(a shared 2-core machine: timings are noisy). Networks: 2x16 ReLU (1D), "
             "2x128 ReLU (2D). n/a: undefined (W* = 0 for identical measures). Written by "
             "benchmarks/bench_audit.py.", ""]
    head = ["setting", "method", *COLUMNS, "train s"]
    lines.append("| " + " | ".join(head) + " |")
    lines.append("|" + "---|" * len(head))
    for r in rows:
        lines.append("| " + " | ".join([r["setting"], r["method"],
                                        *(fmt(r[c]) for c in COLUMNS),
                                        fmt(r["train_seconds"])]) + " |")
    (RESULTS / "audit.md").write_text("\n".join(lines) + "\n")
    print(f"wrote {RESULTS / 'audit.json'} and audit.md in {total:.0f} s")


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
