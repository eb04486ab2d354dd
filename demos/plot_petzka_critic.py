"""
A non-differentiable optimal critic: ``-|x|`` (Petzka et al., Prop. 2)
======================================================================

Petzka, Fischer & Lukovnikov (*On the regularization of Wasserstein GANs*, 2018), Prop. 2:
for the real data ``mu = N(0, 1)`` and the generated mixture
``nu = 1/2 N(-1, 1) + 1/2 N(1, 1)``, an optimal critic is ``f*(x) = -|x|``. It has a kink at 0,
so it is not differentiable there; and its gradient norm is 1 almost everywhere -- which is
what WGAN-GP's penalty enforces -- only because transport happens everywhere.

In 1D the optimal critic is unique up to a constant wherever ``F_mu != F_nu``: its slope is
``-sign(F_mu - F_nu)``, i.e. ``+1`` for ``x < 0`` and ``-1`` for ``x > 0`` here. So the exact
grid critic must match ``-|x| + const`` on the whole support, and
``W1 = E_nu|x| - E_mu|x|`` with ``E|N(m, 1)| = sqrt(2/pi) exp(-m^2/2) + m (1 - 2 Phi(-m))``.

Run ``python demos/plot_petzka_critic.py`` (a few seconds); ``--paper`` or
``OTGRID_PAPER_SCALE=1`` uses a finer grid. Writes ``petzka_critic.png`` and
``petzka_critic.json`` to ``demos/output/`` (or ``$OTGRID_DEMO_OUT``).

With ``--neural`` (or ``OTGRID_DEMO_NEURAL=1``) and torch installed, the script also draws the
level sets of critics trained with the gradient penalty (GP, Gulrajani et al.) and the
one-sided Lipschitz penalty (LP, Petzka et al.) after 10, 100 and ``OTGRID_DEMO_NEURAL_STEPS``
(default 1000) iterations, next to the exact critic, for the swiss roll against a Gaussian
(after the paper's Fig. 3, where the generator also trains; here it is held fixed so that the
exact critic is defined). Minutes on a CPU: the documentation build does not run this part.
"""

# %%
# Set-up and solve
# ----------------
import json
import os
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from scipy import stats

import otgrid as og

PAPER = os.environ.get("OTGRID_PAPER_SCALE") == "1" or "--paper" in sys.argv
TINY = os.environ.get("OTGRID_DEMO_FAST") == "1"
try:
    _HERE = Path(__file__).resolve().parent
except NameError:  # run by sphinx-gallery or interactively
    _HERE = Path.cwd()
OUT = Path(os.environ.get("OTGRID_DEMO_OUT", _HERE / "output"))
OUT.mkdir(parents=True, exist_ok=True)

cells = 4096 if PAPER else (256 if TINY else 1024)
grid = og.Grid((-10.0, 10.0), cells)
x = grid.centers[0]
real = og.Normal(0.0, 1.0)
fake = og.Mixture([og.Normal(-1.0, 1.0), og.Normal(1.0, 1.0)], [0.5, 0.5])
mu = grid.discretize(real, outside_tol=1e-12)
nu = grid.discretize(fake, outside_tol=1e-12)
res = og.solve_critic(mu, nu, grid, tol=1e-8)
print(res)

# %%
# Compare with ``-|x|`` and the closed-form W1
# --------------------------------------------
# Both critics are normalised the same way (``sum((mu + nu) / 2 * f) = 0``, the solver's
# convention), so they can be compared directly, not only up to a constant.
ref = -np.abs(x)
ref -= np.sum((mu + nu) / 2 * ref)
support = (mu + nu) / 2 / grid.dx[0] > 1e-4          # density above 1e-4
dev = float(np.max(np.abs(res.critic[support] - ref[support])))


def mean_abs(m: float) -> float:
    return np.sqrt(2 / np.pi) * np.exp(-m * m / 2) + m * (1 - 2 * stats.norm.cdf(-m))


w_exact = mean_abs(1.0) - mean_abs(0.0)
print(f"W = {res.w1:.6f} in [{res.lower:.6f}, {res.upper:.6f}]; closed form "
      f"E_nu|x| - E_mu|x| = {w_exact:.6f}")
print(f"max |f - (-|x| + c)| where the density > 1e-4 (|x| <= {np.abs(x[support]).max():.2f}): "
      f"{dev:.2e}  (dx = {grid.dx[0]:.3g})")

fig, (ax, ax2) = plt.subplots(1, 2, figsize=(12, 4.2), layout="constrained")
ax.plot(x, ref, color="0.6", lw=5, label="-|x| (Prop. 2), same normalisation")
ax.plot(x, res.critic, "C3", lw=1.5, label="exact grid critic")
ax.set_xlim(-5, 5)
ax.set_ylim(ref[np.abs(x) <= 5].min() - 0.2, ref.max() + 0.5)
ax.set_xlabel("x")
ax.set_ylabel("critic")
ax.set_title(f"W ≈ {res.w1:.5f} in [{res.lower:.5f}, {res.upper:.5f}]\n"
             f"closed form {w_exact:.5f}")
ax.legend(loc="lower center", fontsize="small")
dens = ax.twinx()
dens.fill_between(x, mu / grid.dx[0], alpha=0.3, color="C0", label="μ = N(0, 1) (real)")
dens.fill_between(x, nu / grid.dx[0], alpha=0.3, color="C2",
                  label="ν = ½N(-1, 1) + ½N(1, 1)")
dens.set_ylim(0, 1.2)
dens.set_ylabel("density")
dens.legend(loc="upper right", fontsize="small")
ax2.semilogy(x[support], np.abs(res.critic[support] - ref[support]) + 1e-17, "k", lw=1)
ax2.set_xlabel("x")
ax2.set_title("|grid critic - (-|x|)| on the support")
fig.suptitle("Petzka et al., Prop. 2: the optimal critic -|x|")
fig.savefig(OUT / "petzka_critic.png", dpi=120)
(OUT / "petzka_critic.json").write_text(json.dumps({
    "w1": res.w1, "lower": res.lower, "upper": res.upper, "w_closed_form": w_exact,
    "max_deviation": dev, "dx": grid.dx[0], "x": x.tolist(),
    "critic": np.asarray(res.critic).tolist(), "support": support.tolist()}))
print(f"figure written to {OUT / 'petzka_critic.png'}")

# %%
# GP vs LP level sets (optional, ``--neural``)
# --------------------------------------------
# Both networks (2 x 128 ReLU, Adam 1e-4, betas (0, 0.9), penalty weight 10) are trained
# in place by successive calls of :func:`otgrid.auditing.baselines.train_critic` (each call starts a
# new Adam state). Each panel shows ``f - mean f`` on the grid, on the exact critic's colour
# scale.
NEURAL = "--neural" in sys.argv or os.environ.get("OTGRID_DEMO_NEURAL") == "1"
if NEURAL:
    try:
        import torch

        from otgrid.auditing.baselines import train_critic
    except ImportError as exc:
        print(f"neural critics skipped: {exc}")
        NEURAL = False
if NEURAL:
    total = int(os.environ.get("OTGRID_DEMO_NEURAL_STEPS", 1000))
    marks = sorted({min(10, total), min(100, total), total})
    roll, gauss = og.datasets.swissroll(), og.Normal([0.0, 0.0], 0.5)
    grid2 = og.Grid([(-3.0, 3.0), (-3.0, 3.0)], 32 if TINY else 96)
    m2 = grid2.discretize(roll, outside_tol=1e-6)
    n2 = grid2.discretize(gauss, outside_tol=1e-3)
    exact2 = og.solve_critic(m2, n2, grid2, tol=1e-4)
    weight2 = (m2 + n2) / 2
    pts = torch.tensor(grid2.points())
    X2, Y2 = grid2.mesh()
    fig3, axes3 = plt.subplots(2, len(marks) + 1, figsize=(4 * (len(marks) + 1), 8),
                               layout="constrained", sharex=True, sharey=True)
    levels = np.linspace(exact2.critic.min(), exact2.critic.max(), 15)
    neural_report = {"steps": marks, "w_exact": exact2.w1}
    print(f"swiss roll vs N(0, 0.5 I): exact {exact2}")
    for row, method in enumerate(("gp", "lp")):
        net, done = None, 0
        for col, step in enumerate(marks):
            run = train_critic(roll, gauss, method=method, steps=step - done, batch_size=256,
                               seed=col, critic=net)
            net, done = run.critic, step
            with torch.no_grad():
                values = net(pts.to(next(net.parameters()).dtype)).numpy().reshape(grid2.shape)
            values = values - np.sum(weight2 * values)
            w_net = float(np.sum((m2 - n2) * values))
            print(f"{method} after {step:5d} steps: network W estimate on the grid {w_net:.4f} "
                  f"(exact {exact2.w1:.4f})")
            neural_report[f"{method}/{step}"] = w_net
            ax = axes3[row, col]
            ax.contourf(X2, Y2, values, levels=levels, cmap="viridis", extend="both")
            ax.contour(X2, Y2, m2, levels=[0.2 * m2.max()], colors="w", linewidths=0.8)
            ax.set_title(f"{method.upper()}, {step} steps: W_net = {w_net:.3f}",
                         fontsize="medium")
        ax = axes3[row, -1]
        ax.contourf(X2, Y2, exact2.critic, levels=levels, cmap="viridis", extend="both")
        ax.contour(X2, Y2, m2, levels=[0.2 * m2.max()], colors="w", linewidths=0.8)
        ax.set_title(f"exact critic: W = {exact2.w1:.3f}", fontsize="medium")
    for ax in axes3.ravel():
        ax.set_aspect("equal")
    fig3.suptitle("Level sets of GP and LP critics vs the exact critic: swiss roll (white "
                  "contour) vs N(0, 0.5 I) (Petzka et al., Fig. 3)")
    fig3.savefig(OUT / "petzka_levelsets.png", dpi=100)
    (OUT / "petzka_critic.json").write_text(json.dumps({
        **json.loads((OUT / "petzka_critic.json").read_text()), "neural": neural_report}))
    print(f"figure written to {OUT / 'petzka_levelsets.png'}")

# %%
# What to see
# -----------
# The grid critic lies on the tent ``-|x|`` across the support, kink included: the generated
# mass left of 0 moves right and the mass right of 0 moves left. A critic network with a
# smooth activation can only approximate the kink. With ``--neural``, the level sets show how
# far trained GP and LP critics are from the exact one after a given number of iterations.
