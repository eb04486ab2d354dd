"""
Smoothed optimal transport: the cost as lambda -> 0, and sparse plans
=====================================================================

Sanjabi, Ba, Razaviyayn & Lee (*Solving approximate Wasserstein GANs to stationarity*, 2018)
replace the transport cost ``d_c = min_P <P, C>`` by the smooth surrogate
``d_lambda = min_P <P, C> + lambda I(P)`` with ``I`` the KL divergence to ``a b^T`` or the
L2 term ``sum_ij P_ij^2 / (2 a_i b_j)``. Their Lemma 3.2 brackets it:

``d_lambda - lambda I* <= d_c <= d_lambda``,

with ``I*`` the regularizer of an optimal plan. For two uniform clouds of ``K`` points each,
an optimal plan is a permutation, so ``I* = log K`` (KL) and ``I* = K / 2`` (L2)
(their Corollary 3.2.1). The exact ``d_c`` comes from SciPy's
``linear_sum_assignment`` (an assignment is optimal for uniform clouds of equal size), the
smoothed values from :func:`otgrid.smooth_ot`.

The second panel shows why the L2 regularizer is interesting: its plan
``P_ij = a_i b_j (phi_i - psi_j - c_ij)_+ / lambda`` has exact zeros, while the entropic plan
is positive everywhere (its small entries only underflow).

Run ``python demos/plot_smoothing.py`` (a few seconds); ``--paper`` or
``OTGRID_PAPER_SCALE=1`` uses more points and more values of lambda. Writes ``smoothing.png``
and ``smoothing.json`` to ``demos/output/`` (or ``$OTGRID_DEMO_OUT``).
"""

# %%
# Two point clouds and the exact transport cost
# ---------------------------------------------
import json
import os
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from scipy.optimize import linear_sum_assignment
from scipy.spatial.distance import cdist

import otgrid as og

PAPER = os.environ.get("OTGRID_PAPER_SCALE") == "1" or "--paper" in sys.argv
TINY = os.environ.get("OTGRID_DEMO_FAST") == "1"
try:
    _HERE = Path(__file__).resolve().parent
except NameError:  # run by sphinx-gallery or interactively
    _HERE = Path.cwd()
OUT = Path(os.environ.get("OTGRID_DEMO_OUT", _HERE / "output"))
OUT.mkdir(parents=True, exist_ok=True)

K = 256 if PAPER else (32 if TINY else 64)
lambdas = np.logspace(-3, 0, 13 if PAPER else (4 if TINY else 7))
rng = np.random.default_rng(0)
x = rng.normal(size=(K, 2))
y = 0.5 * rng.normal(size=(K, 2)) + [2.0, 0.0]
C = cdist(x, y)
rows, cols = linear_sum_assignment(C)
d_c = float(C[rows, cols].mean())
print(f"{K} + {K} points; exact transport cost d_c = {d_c:.6f} (linear_sum_assignment)")

# %%
# The smoothed cost for a range of lambda
# ---------------------------------------
# ``primal_objective`` is ``<P, C> + lambda I(P)`` at the returned plan.
i_star = {"l2": K / 2, "kl": np.log(K)}
table = {"l2": [], "kl": []}
sparsity = {"l2": [], "kl": []}
plans = {}
for reg in lambdas:
    for name in ("l2", "kl"):
        res = og.smooth_ot(x, y, reg=float(reg), regularizer=name, tol=1e-6, max_iter=50_000)
        P = res.plan()
        table[name].append(float(res.primal_objective))
        sparsity[name].append(float(np.mean(P > 1e-9 * P.max())))
        plans[name, reg] = P
        print(f"{name}  lambda = {reg:8.2e}: d_lambda = {res.primal_objective:.6f}, "
              f"d_lambda - d_c = {res.primal_objective - d_c:9.2e} <= lambda I* = "
              f"{reg * i_star[name]:9.2e};  plan entries > 1e-9 max: "
              f"{sparsity[name][-1]:.3f}  ({res.status})")

# %%
# The figure
# ----------
fig, axes = plt.subplots(1, 4, figsize=(18, 4.2), layout="constrained")
ax = axes[0]
for name, color in (("l2", "C3"), ("kl", "C0")):
    gap = np.array(table[name]) - d_c
    ax.loglog(lambdas, gap, "o-", color=color, label=f"{name.upper()}: d_λ - d_c")
    ax.loglog(lambdas, lambdas * i_star[name], "--", color=color,
              label=f"{name.upper()}: λ I* (Lemma 3.2)")
ax.set_xlabel("λ")
ax.set_title(f"smoothed minus exact cost (d_c = {d_c:.4f})")
ax.legend(fontsize="small")
ax = axes[1]
for name, color in (("l2", "C3"), ("kl", "C0")):
    ax.semilogx(lambdas, sparsity[name], "o-", color=color, label=name.upper())
ax.axhline(1 / K, color="0.5", ls=":", label="optimal plan (1 / K)")
ax.set_xlabel("λ")
ax.set_ylabel("fraction of entries > 1e-9 max P")
ax.set_title("plan density")
ax.legend(fontsize="small")
mid = lambdas[0]
order = np.argsort(cols)      # rows sorted by their assigned column: the optimum is diagonal
for ax, name in zip(axes[2:], ("l2", "kl"), strict=True):
    P = plans[name, mid][order]
    ax.imshow(np.log10(np.maximum(P / P.max(), 1e-12)), cmap="magma", vmin=-12, vmax=0)
    ax.set_title(f"{name.upper()} plan, λ = {mid:.2g} (log10 P / max P)")
    ax.set_xlabel("target point j")
    ax.set_ylabel("source point (sorted)")
fig.suptitle("Sanjabi et al.: smoothed OT approaches the exact cost; the L2 plan is sparse")
fig.savefig(OUT / "smoothing.png", dpi=110)
(OUT / "smoothing.json").write_text(json.dumps({
    "K": K, "lambdas": lambdas.tolist(), "d_c": d_c, "d_lambda": table,
    "density": sparsity, "x": x.tolist(), "y": y.tolist()}))
print(f"figure written to {OUT / 'smoothing.png'}")

# %%
# What to see
# -----------
# Both smoothed costs sit above ``d_c`` and approach it linearly in ``lambda``, well inside the
# (pessimistic) Lemma 3.2 bound. The L2 plan keeps only a small fraction of the ``K^2`` entries
# and tends to the permutation as ``lambda -> 0``; the entropic plan stays dense until its
# entries underflow.
