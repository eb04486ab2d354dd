"""
The Beckmann transport flow
===========================

Besides the critic, :func:`otgrid.solve_critic` returns the optimal *flow* ``y`` of the
Beckmann problem, the dual of the critic problem:

``W_grid = min_y sum_i |y_i|  subject to  D^T y = mu - nu``,

a vector field that carries the mass of ``mu`` onto ``nu`` at least cost (Pinetz et al.,
Sec. 4; Beckmann 1952). ``flow[k][i] / dx_k`` is the mass moved from cell ``i`` to its
neighbour along axis ``k``. Two exact facts make good checks, for *any* feasible flow:

* its divergence is ``mu - nu`` (mass is conserved);
* its total, ``sum_i flow[:, i]``, is the difference of the means ``E_nu[x] - E_mu[x]``
  (integrate ``x`` against ``D^T y = mu - nu`` by parts), and its cost ``sum_i |y_i|`` is the
  certified upper bound on W.

Run ``python demos/plot_transport_flow.py`` (a few seconds); ``--paper`` or
``OTGRID_PAPER_SCALE=1`` uses 256 x 256 cells. Writes ``transport_flow.png`` and
``transport_flow.json`` to ``demos/output/`` (or ``$OTGRID_DEMO_OUT``).
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
from otgrid.plot import plot_critic

PAPER = os.environ.get("OTGRID_PAPER_SCALE") == "1" or "--paper" in sys.argv
TINY = os.environ.get("OTGRID_DEMO_FAST") == "1"
try:
    _HERE = Path(__file__).resolve().parent
except NameError:  # run by sphinx-gallery or interactively
    _HERE = Path.cwd()
OUT = Path(os.environ.get("OTGRID_DEMO_OUT", _HERE / "output"))
OUT.mkdir(parents=True, exist_ok=True)

n = 256 if PAPER else (32 if TINY else 96)
grid = og.Grid([(-4.0, 4.0), (-4.0, 4.0)], n)
problems = {
    "N(0, I) → 8gaussians": (og.Normal([0.0, 0.0], 1.0), og.datasets.eight_gaussians()),
    "two Gaussians → one": (
        og.Mixture([og.Normal([-1.5, 1.0], 0.25), og.Normal([-1.5, -1.0], 0.25)]),
        og.Normal([1.5, 0.0], [0.5, 0.25])),
}

# %%
# Solve and check the flow
# ------------------------
fig, axes = plt.subplots(1, 2, figsize=(13, 6), layout="constrained")
report = {"n": n, "problems": {}}
X, Y = grid.mesh()
for ax, (name, (a, b)) in zip(axes, problems.items(), strict=True):
    mu = grid.discretize(a, outside_tol=1e-3)
    nu = grid.discretize(b, outside_tol=1e-3)
    res = og.solve_critic(mu, nu, grid, tol=1e-5)
    plot_critic(res, mu, nu, ax=ax, flow=True, title=name)
    total = np.asarray(res.flow).reshape(2, -1).sum(axis=1)
    mean_diff = np.array([np.sum((nu - mu) * X), np.sum((nu - mu) * Y)])
    cost = float(np.sum(np.linalg.norm(np.asarray(res.flow), axis=0)))
    print(f"{name}: {res}")
    print(f"   sum of the flow {np.array2string(total, precision=6)}, E_nu[x] - E_mu[x] = "
          f"{np.array2string(mean_diff, precision=6)};  cost sum|y| = {cost:.6f} "
          f"(upper bound {res.upper:.6f})")
    report["problems"][name] = {
        "w1": res.w1, "lower": res.lower, "upper": res.upper, "flow_total": total.tolist(),
        "mean_difference": mean_diff.tolist(), "flow_cost": cost}
fig.suptitle("Optimal transport flow (Beckmann) over the critic and the densities")
fig.savefig(OUT / "transport_flow.png", dpi=110)
(OUT / "transport_flow.json").write_text(json.dumps(report))
print(f"figure written to {OUT / 'transport_flow.png'}")

# %%
# What to see
# -----------
# Arrows start where ``mu`` has mass and end on ``nu``; they run down the critic, which is
# steepest (slope 1) wherever mass actually moves. Against 8gaussians, the Gaussian's mass
# splits into eight streams, one per mode; the pair of Gaussians merges into one blob.
