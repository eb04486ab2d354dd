"""
Wasserstein-2 vs Euclidean proximal steps on two Diracs
=======================================================

The example of *Wasserstein proximal of GANs* (Lin et al., ICLR 2019 submission, Sec. 2.3 and
Prop. 5). The model is ``rho_theta = alpha delta_a + (1 - alpha) delta_b`` with
``theta = (a, b)``, the target ``theta* = (a*, b*)``, and the loss is the Wasserstein-1
distance

``F(theta) = W1(rho_theta, rho_theta*) = alpha |a - a*| + (1 - alpha) |b - b*|``

(for ``a < b`` and ``a* < b*``). A proximal step is
``theta_{k+1} = argmin_theta F(theta) + d(theta, theta_k)^2 / (2 h)`` with either

* the Wasserstein-2 metric on the model, ``d_W^2 = alpha (a - a_k)^2 + (1 - alpha) (b - b_k)^2``
  (the squared distance moved, weighted by the mass that moves), whose step is the shrinkage
  of each coordinate towards its target by ``h``; or
* the Euclidean metric on the parameters, ``d_E^2 = (a - a_k)^2 + (b - b_k)^2``, whose step
  shrinks ``a`` by ``alpha h`` and ``b`` by ``(1 - alpha) h``.

Prop. 5: the Wasserstein step decreases F at least as much as the Euclidean one. Here the
loss along both trajectories is measured with the exact grid critic of otgrid (point masses
on a fine 1D grid) and compared with the closed form.

Run ``python demos/plot_wasserstein_proximal.py`` (a few seconds); ``--paper`` or
``OTGRID_PAPER_SCALE=1`` uses a finer grid. Writes ``wasserstein_proximal.png`` and
``wasserstein_proximal.json`` to ``demos/output/`` (or ``$OTGRID_DEMO_OUT``).
"""

# %%
# The two proximal maps
# ---------------------
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

alpha, h = 0.2, 0.4
target = np.array([-1.0, 1.0])          # (a*, b*)
start = np.array([-4.0, 4.5])           # (a_0, b_0)
steps = 16


def shrink(v: np.ndarray, v_star: np.ndarray, t: np.ndarray) -> np.ndarray:
    """argmin_u |u - v*| + (u - v)^2 / (2 t), coordinate-wise: move towards v* by t at most."""
    return v_star + np.sign(v - v_star) * np.maximum(np.abs(v - v_star) - t, 0.0)


def loss(theta: np.ndarray) -> float:
    return float(alpha * abs(theta[0] - target[0]) + (1 - alpha) * abs(theta[1] - target[1]))


weights = np.array([alpha, 1 - alpha])
paths = {"Wasserstein-2 proximal": [start], "Euclidean proximal": [start]}
for _ in range(steps):
    # W2: alpha |a - a*| + alpha (a - a_k)^2 / (2h)  ->  shrink a towards a* by h (same for b)
    paths["Wasserstein-2 proximal"].append(shrink(paths["Wasserstein-2 proximal"][-1], target,
                                                  np.array([h, h])))
    # Euclidean: alpha |a - a*| + (a - a_k)^2 / (2h)  ->  shrink a by alpha h, b by (1 - alpha) h
    paths["Euclidean proximal"].append(shrink(paths["Euclidean proximal"][-1], target,
                                              weights * h))
paths = {k: np.array(v) for k, v in paths.items()}

# %%
# The loss along each path, by the exact critic
# ---------------------------------------------
# ``rho_theta`` and ``rho_theta*`` are discretised on a 1D grid (each Dirac falls in one cell,
# so the grid value is within one cell width of the closed form).
cells = 8000 if PAPER else (1000 if TINY else 4000)
grid = og.Grid((-6.0, 6.0), cells)


def dirac_pair(theta: np.ndarray) -> og.Mixture:
    return og.Mixture([og.PointMass(theta[0]), og.PointMass(theta[1])], weights)


mu = grid.discretize(dirac_pair(target))
measured, closed = {}, {}
for name, path in paths.items():
    nus = np.stack([grid.discretize(dirac_pair(t)) for t in path])
    results = og.solve_critic(mu, nus, grid, tol=1e-9)
    measured[name] = np.array([r.w1 for r in results])
    closed[name] = np.array([loss(t) for t in path])
    err = float(np.max(np.abs(measured[name] - closed[name])))
    print(f"{name:23s}: F after 1, 2, 4 steps = "
          f"{', '.join(f'{closed[name][k]:.3f}' for k in (1, 2, 4))};  "
          f"max |W_grid - F| = {err:.2e} (dx = {grid.dx[0]:.2g})")
wins = bool(np.all(closed["Wasserstein-2 proximal"] <= closed["Euclidean proximal"] + 1e-12))
print(f"Prop. 5 (W2 step never worse, every step): {wins}")

# %%
# The figure
# ----------
fig, (ax, ax2) = plt.subplots(1, 2, figsize=(12, 4.8), layout="constrained")
A, B = np.meshgrid(np.linspace(-5, 1, 300), np.linspace(-0.5, 5, 300))
F = alpha * np.abs(A - target[0]) + (1 - alpha) * np.abs(B - target[1])
ax.contour(A, B, F, levels=12, colors="0.75", linewidths=0.8)
for (name, path), color in zip(paths.items(), ("C3", "C0"), strict=True):
    ax.plot(path[:, 0], path[:, 1], "o-", color=color, ms=3, label=name)
ax.plot(*target, "k*", ms=12, label="θ* = (a*, b*)")
ax.set_xlabel("a (mass α)")
ax.set_ylabel("b (mass 1 - α)")
ax.set_aspect("equal")
ax.set_title(f"parameter paths over level sets of W1 (α = {alpha}, h = {h})")
ax.legend(fontsize="small")
for (name, path), color in zip(paths.items(), ("C3", "C0"), strict=True):
    k = np.arange(len(path))
    ax2.plot(k, closed[name], "-", color=color, lw=3, alpha=0.4)
    ax2.plot(k, measured[name], "o", color=color, ms=4, label=f"{name} (exact grid critic)")
ax2.set_xlabel("proximal step k")
ax2.set_ylabel("W1(ρ_θk, ρ_θ*)")
ax2.set_title("loss: markers from otgrid, lines closed form")
ax2.legend(fontsize="small")
fig.suptitle("Wasserstein proximal of GANs, Prop. 5: two Diracs")
fig.savefig(OUT / "wasserstein_proximal.png", dpi=120)
(OUT / "wasserstein_proximal.json").write_text(json.dumps({
    "alpha": alpha, "h": h, "target": target.tolist(), "dx": grid.dx[0],
    "paths": {k: v.tolist() for k, v in paths.items()},
    "w1_grid": {k: v.tolist() for k, v in measured.items()}}))
print(f"figure written to {OUT / 'wasserstein_proximal.png'}")

# %%
# What to see
# -----------
# The Wasserstein step moves each Dirac by the same distance ``h``: the path heads straight
# for the target. The Euclidean step moves the light Dirac (mass ``alpha``) only ``alpha h``,
# so it follows the gradient of the level sets and takes ``1 / alpha`` times as many steps to
# bring ``a`` home.
