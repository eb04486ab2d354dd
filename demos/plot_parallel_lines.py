"""
Parallel lines: only W1 is continuous
=====================================

Example 1 of Arjovsky, Chintala & Bottou (*Wasserstein GAN*, 2017): ``mu`` uniform on the
segment ``{0} x [0, 1]`` and ``nu_theta`` uniform on ``{theta} x [0, 1]``. As ``theta -> 0``

* ``W1(mu, nu_theta) = |theta|``, continuous, with gradient ``sign(theta)``;
* Jensen-Shannon ``JS = log 2``, ``KL = +inf`` and total variation ``TV = 1`` for every
  ``theta != 0``, and all three are 0 at ``theta = 0``: they jump, and give no gradient.

The W1 values come from the exact grid critic. The segments are represented by the linear
(cloud-in-cell) deposit of points ``(theta, z_j)``, so their masses move continuously with
``theta``; the discrete W1 is then exactly ``|theta|`` (the critic ``-x`` and the horizontal
flow certify it). The gradient that SCO follows comes from the critic by the envelope theorem,
``dW/dtheta = -mean_j d_x f(theta, z_j)`` (``f`` high on ``mu``), and must equal
``sign(theta)``. JS, KL and TV are the closed forms of the continuous segments.

Run ``python demos/plot_parallel_lines.py`` (a few seconds); ``--paper`` or
``OTGRID_PAPER_SCALE=1`` uses a finer grid and more values of theta. Writes
``parallel_lines.png`` and ``parallel_lines.json`` to ``demos/output/`` (or
``$OTGRID_DEMO_OUT``).
"""

# %%
# Set-up
# ------
import json
import os
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

import otgrid as og

PAPER = os.environ.get("OTGRID_PAPER_SCALE") == "1" or "--paper" in sys.argv
TINY = os.environ.get("OTGRID_DEMO_FAST") == "1"
try:
    _HERE = Path(__file__).resolve().parent
except NameError:  # run by sphinx-gallery or interactively
    _HERE = Path.cwd()
OUT = Path(os.environ.get("OTGRID_DEMO_OUT", _HERE / "output"))
OUT.mkdir(parents=True, exist_ok=True)

nx, ny = (256, 128) if PAPER else ((48, 24) if TINY else (64, 32))
n_theta = 81 if PAPER else (13 if TINY else 25)
grid = og.Grid([(-1.0, 1.0), (-0.5, 1.5)], (nx, ny))
# theta = 0 exactly, and values that avoid the cell centres (where the one-sided slope of the
# piecewise linear critic is not the one the linear deposit sees).
thetas = np.linspace(-0.8, 0.8, n_theta) + 0.25 * grid.dx[0]
thetas = np.sort(np.append(thetas, 0.0))
z = (np.arange(400) + 0.5) / 400                    # quadrature of U[0, 1]


def segment(theta: float) -> np.ndarray:
    """Masses of the segment {theta} x [0, 1] by the linear deposit of 400 points."""
    pts = np.column_stack([np.full_like(z, theta), z])
    return grid.histogram(pts, scheme="linear", outside="raise")


# %%
# One batched solve for all values of theta
# -----------------------------------------
# ``mu`` is shared; ``nu`` has a leading batch axis, and each problem stops on its own.
mu = segment(0.0)
nus = np.stack([segment(t) for t in thetas])
results = og.solve_critic(mu, nus, grid, tol=1e-7)
w1 = np.array([r.w1 for r in results])
lower = np.array([r.lower for r in results])
upper = np.array([r.upper for r in results])
grads = []
for t, r in zip(thetas, results, strict=True):
    f = r.interpolant()
    pts = np.column_stack([np.full_like(z, t), z])
    grads.append(-float(np.mean(f.grad(pts)[:, 0])))
grads = np.array(grads)

err_w = float(np.max(np.abs(w1 - np.abs(thetas))))
away = np.abs(thetas) > 0
err_g = float(np.max(np.abs(grads[away] - np.sign(thetas[away]))))
print(f"grid {grid.shape}, dx = {grid.dx}, {len(thetas)} values of theta")
print(f"max |W - |theta|| = {err_w:.2e}   (certified gaps <= {np.max(upper - lower):.1e})")
print(f"max |dW/dtheta - sign(theta)| for theta != 0: {err_g:.2e};  "
      f"at theta = 0: dW/dtheta = {grads[~away][0] + 0.0:.3g}")

# %%
# The figure
# ----------
js = np.where(away, np.log(2.0), 0.0)
tv = np.where(away, 1.0, 0.0)
fig, axes = plt.subplots(1, 3, figsize=(15, 4.2), layout="constrained")
ax = axes[0]
ax.plot(thetas, np.abs(thetas), color="0.6", lw=4, label="|θ| (closed form)")
ax.plot(thetas, w1, "C3.-", lw=1, label="W1, exact grid critic")
ax.set_title("Wasserstein-1: continuous")
ax = axes[1]
ax.plot(thetas, js, "C0.", label="JS (closed form)")
ax.plot(thetas, tv, "C2.", label="total variation")
ax.plot(thetas[away], np.full(int(away.sum()), 1.3), "C1^", ms=4, label="KL = +∞ (θ ≠ 0)")
ax.plot([0.0], [0.0], "C1^", ms=4)
ax.set_ylim(-0.05, 1.4)
ax.set_title("JS, KL, TV: jump at θ = 0")
ax = axes[2]
ax.plot(thetas, np.sign(thetas), color="0.6", lw=4, label="sign(θ)")
ax.plot(thetas, grads, "C3.", label="-mean ∂ₓf(θ, z) from the critic")
ax.set_title("gradient SCO follows: dW/dθ")
for ax in axes:
    ax.set_xlabel("θ")
    ax.legend(fontsize="small")
fig.suptitle("Arjovsky et al., Example 1: parallel lines")
fig.savefig(OUT / "parallel_lines.png", dpi=120)
(OUT / "parallel_lines.json").write_text(json.dumps({
    "theta": thetas.tolist(), "w1": w1.tolist(), "lower": lower.tolist(),
    "upper": upper.tolist(), "grad": grads.tolist(), "dx": list(grid.dx)}))
print(f"figure written to {OUT / 'parallel_lines.png'}")

# %%
# What to see
# -----------
# W1 is the V shape ``|theta|``; a generator that moves ``theta`` down its gradient reaches 0.
# JS, KL and TV are constant away from 0: their gradient is 0 everywhere it exists, which is
# why a GAN trained on them cannot learn this family.
