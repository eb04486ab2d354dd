"""SCO with the exact critic fits Gaussians in 1D and 2D (Pinetz et al., Sec. 5.1-5.2, Figs. 3-4).
===============================================================================================

The generator ``g(z) = sigma * z + mu`` (per axis, ``z ~ N(0, I)``) is trained by Sequential
Convex Optimization at the paper's defaults (SGD, ``alpha = 5e-3``, ``m = 128``): at every step
the optimal critic of the target and the generated measure is solved on a grid (warm-started),
and the parameters move up the interpolated critic at 128 generated points. Every step also
certifies ``lower <= W <= upper``.

- 1D: target N(1, 0.5^2), start sigma 25 times too small and mu off by 4 sigma;
- 2D: target N((0.5, -0.3), diag(0.6^2, 0.4^2)), start mu off by several sigma, sigma 6 times
  too small on one axis and 4 times too large on the other.

Run from the repository root (about 10-30 s)::

    python demos/sco_gaussians.py                      # writes demos/output/sco_1d.png, sco_2d.png
    python demos/sco_gaussians.py --out-dir /tmp/sco --steps 1000

Prints the final parameters, their error and the certified W for both fits. The committed
figures (default settings, written with ``--out-dir demos/figures``; the gallery does not run
this script):

.. image:: /../demos/figures/sco_1d.png
   :alt: SCO fitting a 1D Gaussian

.. image:: /../demos/figures/sco_2d.png
   :alt: SCO fitting a 2D Gaussian
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np

import otgrid as og
from otgrid.plot import plot_sco, save_figure
from otgrid.sco import fit
from otgrid.sco.generators import LocationScale

HERE = Path(__file__).resolve().parent


def run(name: str, target: og.Normal, start: tuple, grid: og.Grid, steps: int,
        out_dir: Path) -> None:
    true = np.concatenate([target.mean, np.sqrt(np.diag(target.cov))])
    gen = LocationScale(*start)
    print(f"{name}: target {target!r}, start {gen!r}, grid {grid!r}")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = fit(target, gen, grid, steps=steps, rng=0, true_params=true, progress=True)
    for w in caught:
        print(f"  note: {w.message}")
    first = int(np.argmax(res.param_error < min(grid.dx)))
    print(f"  final params {np.array2string(res.params, precision=4)} (true "
          f"{np.array2string(true, precision=4)}), error {res.param_error[-1]:.2e}")
    print(f"  error first below dx = {min(grid.dx):.3g} at step {first}; W = {res.w1:.3e} in "
          f"[{res.lower[-1]:.3e}, {res.upper[-1]:.3e}] (start {res.upper[0]:.3g})")
    print(f"  {res.steps} steps in {res.seconds:.1f} s (critic {res.critic_seconds.sum():.1f} s, "
          f"masses {res.masses_seconds.sum():.1f} s, generator "
          f"{res.generator_seconds.sum():.1f} s)")
    fig = plot_sco(res, title=f"SCO, {name}: {target!r}")
    path = save_figure(fig, out_dir / f"sco_{name}.png")
    plt.close(fig)
    print(f"  figure written to {path}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out-dir", default=str(HERE / "output"), help="folder for the figures")
    ap.add_argument("--steps", type=int, default=1000, help="SCO steps per fit (default 1000)")
    ap.add_argument("--shape-2d", type=int, default=48, dest="shape_2d",
                    help="cells per axis of the 2D grid (default 48)")
    args = ap.parse_args(argv)
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    run("1d", og.Normal(1.0, 0.25), (3.0, 0.02), og.Grid((-5.0, 7.0), 256), args.steps, out)
    run("2d", og.Normal([0.5, -0.3], [0.36, 0.16]), ([-1.0, 1.0], [0.1, 1.6]),
        og.Grid([(-4.0, 4.0), (-4.0, 4.0)], args.shape_2d), args.steps, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
