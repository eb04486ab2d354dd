"""The teaching demos (demos/plot_*.py) run in their fast mode and show the right numbers.

Each demo runs as a subprocess with this interpreter (the installed package), at its tiny test
size (``OTGRID_DEMO_FAST=1``), writing into a temporary folder (``OTGRID_DEMO_OUT``). The
checks read the JSON the demo writes and compare it with closed forms computed here, from
SciPy, never from otgrid. The command-line demos (demos/sco_*.py, demos/smoothed_*.py) get a
smoke run with very few steps, their figure and JSON paths pointing into the temporary folder.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from numpy.testing import assert_allclose
from scipy import integrate, stats
from scipy.optimize import linear_sum_assignment
from scipy.spatial.distance import cdist

DEMOS = Path(__file__).resolve().parents[1] / "demos"
PNG = b"\x89PNG\r\n\x1a\n"
# demo script -> the figure and the JSON file it writes
OUTPUTS = {
    "plot_critics_1d.py": "critics_1d",
    "plot_critics_2d.py": "critics_2d",
    "plot_parallel_lines.py": "parallel_lines",
    "plot_petzka_critic.py": "petzka_critic",
    "plot_smoothing.py": "smoothing",
    "plot_wasserstein_proximal.py": "wasserstein_proximal",
    "plot_transport_flow.py": "transport_flow",
    "plot_sco_vs_wgan.py": "sco_vs_wgan",
}
# demos that write several figures instead of "<stem>.png"
FIGURES = {"plot_sco_vs_wgan.py": ("sco_vs_wgan_1d", "sco_vs_wgan_2d")}
# Two demos also train the neural baselines (a few steps: a smoke run) when torch is installed.
HAS_TORCH = importlib.util.find_spec("torch") is not None
_NEURAL = {"OTGRID_DEMO_NEURAL": "1", "OTGRID_DEMO_NEURAL_STEPS": "20"} if HAS_TORCH else {}
EXTRA_ENV = {"plot_critics_1d.py": _NEURAL, "plot_petzka_critic.py": _NEURAL}
# Command-line demos: script -> (arguments, "{out}" standing for the temporary folder; the
# figures it writes there; whether it needs torch). A few steps each: a smoke run, not a fit.
SCRIPTS = {
    "sco_gaussians.py": (["--steps", "20", "--shape-2d", "24", "--out-dir", "{out}"],
                         ("sco_1d.png", "sco_2d.png"), False),
    "sco_8gaussians.py": (["--steps", "5", "--grid", "32", "--mass-samples", "2000",
                           "--figure", "{out}/sco_8gaussians.png",
                           "--json", "{out}/demos_sco.json"], ("sco_8gaussians.png",), True),
    "smoothed_25gaussians.py": (["--steps", "20", "--figure", "{out}/smoothed_25gaussians.png",
                                 "--json", "{out}/demos_sco.json"],
                                ("smoothed_25gaussians.png",), True),
}


def _launch(script: str, out: Path) -> subprocess.Popen:
    env = {**os.environ, "OTGRID_DEMO_FAST": "1", "OTGRID_DEMO_OUT": str(out),
           "MPLBACKEND": "Agg"}
    for name in ("OTGRID_PAPER_SCALE", "OTGRID_DEMO_SCO_STEPS", "OTGRID_DEMO_GAN_STEPS"):
        env.pop(name, None)
    env.update(EXTRA_ENV.get(script, {}))
    args = [a.replace("{out}", str(out)) for a in SCRIPTS[script][0]] if script in SCRIPTS else []
    return subprocess.Popen([sys.executable, str(DEMOS / script), *args], cwd=out, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.fixture(scope="module")
def demo_runs(tmp_path_factory) -> dict:
    """Run every demo once, two at a time; script -> (return code, stdout, stderr, folder)."""
    runs: dict = {}
    pending = list(OUTPUTS) + [s for s, (_, _, torch) in SCRIPTS.items() if HAS_TORCH or not torch]
    active: list = []
    while pending or active:
        while pending and len(active) < 2:
            script = pending.pop(0)
            out = tmp_path_factory.mktemp(OUTPUTS.get(script, Path(script).stem))
            active.append((script, out, _launch(script, out)))
        script, out, proc = active.pop(0)
        try:
            stdout, stderr = proc.communicate(timeout=600)
        except subprocess.TimeoutExpired:
            proc.kill()
            stdout, stderr = proc.communicate()
        runs[script] = (proc.returncode, stdout, stderr, out)
    return runs


def run_demo(script: str, runs: dict) -> dict:
    """Check that a demo ran, wrote its figure; return its JSON numbers."""
    code, stdout, stderr, out = runs[script]
    assert code == 0, f"{script} failed:\n{stdout}\n{stderr}"
    stem = OUTPUTS[script]
    for name in FIGURES.get(script, (stem,)):
        figure = out / f"{name}.png"
        assert figure.is_file(), f"{script} did not write {figure.name}:\n{stdout}"
        assert figure.read_bytes()[:8] == PNG
    assert "figure written to" in stdout
    return json.loads((out / f"{stem}.json").read_text())


def run_script(script: str, runs: dict) -> Path:
    """Check that a command-line demo ran and wrote its figures; return its folder."""
    if SCRIPTS[script][2] and not HAS_TORCH:
        pytest.skip(f"torch is not installed: {script} needs it")
    code, stdout, stderr, out = runs[script]
    assert code == 0, f"{script} failed:\n{stdout}\n{stderr}"
    for name in SCRIPTS[script][1]:
        assert (out / name).read_bytes()[:8] == PNG, f"{script} did not write {name}"
    assert "figure written to" in stdout
    return out


def test_every_plot_demo_is_tested():
    assert sorted(p.name for p in DEMOS.glob("plot_*.py")) == sorted(OUTPUTS)
    others = {p.name for p in DEMOS.glob("*.py")} - set(OUTPUTS)
    assert sorted(others) == sorted(SCRIPTS)


@pytest.mark.parametrize("path", sorted(DEMOS.glob("*.py")), ids=lambda p: p.name)
def test_demo_docstring_has_gallery_title(path):
    """sphinx-gallery needs a module docstring that opens with an underlined title."""
    doc = ast.get_docstring(ast.parse(path.read_text()), clean=False)
    assert doc, f"{path.name}: no module docstring"
    lines = doc.strip("\n").splitlines()
    assert len(lines) >= 2 and re.fullmatch(r"=+", lines[1]) and len(lines[1]) >= len(
        lines[0].rstrip()), f"{path.name}: the docstring must open with 'Title' + '====='"


def test_critics_1d(demo_runs):
    r = run_demo("plot_critics_1d.py", demo_runs)
    dx = r["dx"]
    s = r["settings"]
    assert_allclose(s["shifted"]["w1"], 2.0, atol=dx ** 2)                  # |m1 - m2|
    assert_allclose(s["wider"]["w1"], np.sqrt(2 / np.pi), atol=dx ** 2)     # |s1 - s2| E|Z|
    assert s["identical"]["upper"] <= 1e-12
    assert np.max(np.abs(s["identical"]["critic"])) <= 1e-9
    for name, v in s.items():
        assert v["lower"] <= v["upper"]
        x = np.asarray(v["x"])
        (m1, s1), (m2, s2) = v["mu"], v["nu"]
        faces = x[:-1] + dx / 2
        gap = stats.norm.cdf(faces, m1, s1) - stats.norm.cdf(faces, m2, s2)
        slope = np.diff(v["critic"]) / dx
        clear = np.abs(gap) > 1e-3                      # the critic is unique there
        assert_allclose(slope[clear], -np.sign(gap[clear]), atol=1e-6, err_msg=name)


@pytest.mark.skipif(not HAS_TORCH, reason="torch is not installed: no neural baselines")
def test_critics_1d_neural_smoke(demo_runs):
    """The optional neural critics of the 1D demo run (30 steps: a smoke run, not a fit)."""
    r = run_demo("plot_critics_1d.py", demo_runs)
    out = demo_runs["plot_critics_1d.py"][3]
    assert (out / "critics_1d_neural.png").read_bytes()[:8] == PNG
    neural = r["neural"]
    assert neural["steps"] == 20
    for name in r["settings"]:
        for method in ("clip", "gp"):
            v = neural[f"{name}/{method}"]
            assert np.isfinite(v["w_estimate"])
            assert len(v["critic"]) == r["cells"]
            assert np.all(np.isfinite(v["critic"]))


def test_critics_2d(demo_runs):
    r = run_demo("plot_critics_2d.py", demo_runs)
    p = r["pairs"]
    for v in p.values():
        assert v["converged"] and v["lower"] <= v["upper"]
    # a translation by 2 m = (2, 1): W1 = |(2, 1)|, up to the O(dx) grid discretisation
    assert_allclose(p["shifted"]["w1"], np.sqrt(5.0), atol=0.1 * r["dx"])
    # N(0, I) vs N(0, diag(1.5^2, 0.5^2)): W1 of the x-marginals <= W1 <= Gaussian W2
    lo, hi = 0.5 * np.sqrt(2 / np.pi), np.hypot(0.5, 0.5)
    assert lo < p["covariances"]["w1"] < hi
    assert 0 < p["8gaussians"]["w1"] < 1.5     # every mode lies within 1.42 of the origin


def test_parallel_lines(demo_runs):
    r = run_demo("plot_parallel_lines.py", demo_runs)
    theta = np.asarray(r["theta"])
    assert np.any(theta == 0) and np.any(theta < 0) and np.any(theta > 0)
    assert_allclose(r["w1"], np.abs(theta), atol=1e-6)                     # W1 = |theta|
    assert np.all(np.asarray(r["lower"]) <= np.asarray(r["upper"]))
    grad = np.asarray(r["grad"])
    away = theta != 0
    assert_allclose(grad[away], np.sign(theta[away]), atol=1e-4)         # dW/dtheta


def test_petzka_critic(demo_runs):
    r = run_demo("plot_petzka_critic.py", demo_runs)
    x = np.asarray(r["x"])
    critic = np.asarray(r["critic"])
    mix = 0.5 * stats.norm.pdf(x, -1, 1) + 0.5 * stats.norm.pdf(x, 1, 1)
    support = (stats.norm.pdf(x) + mix) / 2 > 1e-3
    shift = np.mean(critic[support] + np.abs(x[support]))
    assert_allclose(critic[support], -np.abs(x[support]) + shift, atol=1e-6)
    # W1 = int |F_mu - F_nu|, by quadrature of the CDFs

    def cdf_gap(t):
        return abs(stats.norm.cdf(t) - 0.5 * stats.norm.cdf(t, -1, 1)
                   - 0.5 * stats.norm.cdf(t, 1, 1))

    exact = integrate.quad(cdf_gap, -40, 40, points=[0.0], limit=400)[0]
    assert_allclose(r["w1"], exact, atol=r["dx"] ** 2)


@pytest.mark.skipif(not HAS_TORCH, reason="torch is not installed: no neural baselines")
def test_petzka_levelsets_smoke(demo_runs):
    """The optional GP / LP level-set panel runs (20 steps: a smoke run, not a fit)."""
    r = run_demo("plot_petzka_critic.py", demo_runs)
    out = demo_runs["plot_petzka_critic.py"][3]
    assert (out / "petzka_levelsets.png").read_bytes()[:8] == PNG
    neural = r["neural"]
    assert neural["steps"] == [10, 20]
    # swiss roll vs a Gaussian: W1 is positive and below the largest distance on the grid
    assert 0 < neural["w_exact"] < 6 * np.sqrt(2)
    for key in ("gp/10", "gp/20", "lp/10", "lp/20"):
        assert np.isfinite(neural[key])


def test_smoothing(demo_runs):
    r = run_demo("plot_smoothing.py", demo_runs)
    x, y = np.asarray(r["x"]), np.asarray(r["y"])
    K = len(x)
    C = cdist(x, y)
    rows, cols = linear_sum_assignment(C)
    d_c = C[rows, cols].mean()
    lambdas = np.asarray(r["lambdas"])
    i_star = {"l2": K / 2, "kl": np.log(K)}
    for name in ("l2", "kl"):
        d = np.asarray(r["d_lambda"][name])
        # Lemma 3.2 of Sanjabi et al.: d_c <= d_lambda <= d_c + lambda I*
        assert np.all(d >= d_c - 1e-5), name
        assert np.all(d <= d_c + lambdas * i_star[name] + 1e-5), name
        assert np.all(np.diff(d) > 0), name                      # increasing in lambda
    # the L2 plan is sparser than the entropic one at the smallest lambda
    assert r["density"]["l2"][0] < r["density"]["kl"][0]


def test_wasserstein_proximal(demo_runs):
    r = run_demo("plot_wasserstein_proximal.py", demo_runs)
    alpha, h = r["alpha"], r["h"]
    a_star, b_star = r["target"]
    loss = {}
    for name, path in r["paths"].items():
        path = np.asarray(path)
        loss[name] = alpha * np.abs(path[:, 0] - a_star) + (1 - alpha) * np.abs(
            path[:, 1] - b_star)
        # two Diracs, each in one cell: within one cell width of the closed form
        assert_allclose(r["w1_grid"][name], loss[name], atol=r["dx"])
    w2, euc = loss["Wasserstein-2 proximal"], loss["Euclidean proximal"]
    assert np.all(w2 <= euc + 1e-12)                                    # Prop. 5
    # the W2 step moves both Diracs by h: it reaches the target after ceil(max dist / h) steps
    start = np.asarray(r["paths"]["Wasserstein-2 proximal"][0])
    k = int(np.ceil(np.max(np.abs(start - [a_star, b_star])) / h))
    assert w2[k] == 0 and w2[k - 1] > 0


def test_transport_flow(demo_runs):
    r = run_demo("plot_transport_flow.py", demo_runs)
    p = r["problems"]
    for name, v in p.items():
        # any feasible flow sums to E_nu[x] - E_mu[x] and costs at least its norm
        assert_allclose(v["flow_total"], v["mean_difference"], atol=1e-9, err_msg=name)
        assert v["lower"] >= np.linalg.norm(v["mean_difference"]) * (1 - 1e-4)
        assert_allclose(v["flow_cost"], v["upper"], rtol=1e-9)
    # means of the continuous measures: 0 for 8gaussians vs N(0, I), (3, 0) for the other pair
    assert_allclose(p["N(0, I) → 8gaussians"]["mean_difference"], [0, 0], atol=1e-9)
    assert_allclose(p["two Gaussians → one"]["mean_difference"], [3, 0], atol=2e-3)


def test_sco_vs_wgan(demo_runs):
    """SCO's learning curves: the parameter error falls (150 steps at lr 5e-3: by <= 0.75)."""
    r = run_demo("plot_sco_vs_wgan.py", demo_runs)
    assert r["seed"] == 0 and r["sco_steps"] == 150
    for name, d in (("1d", 1), ("2d", 2)):
        s = r["settings"][name]
        sco = s["SCO"]
        assert len(sco["steps"]) == len(sco["error"]) == len(sco["seconds"]) == 151
        assert np.all(np.diff(sco["seconds"]) >= 0)
        # start loc 0, scale 1: the error of the start is 1 in both settings
        assert_allclose(sco["error"][0], 1.0)
        # SGD moves each loc by at most lr |grad f| <= 5e-3 per step (f is 1-Lipschitz)
        assert 1.0 - 150 * 5e-3 - 1e-9 <= sco["error"][-1] < 0.5
        params = np.asarray(sco["final_params"])
        assert params.shape == (2 * d,)
        truth = np.asarray(s["target_params"])
        assert_allclose(np.max(np.abs(np.r_[params[:d], np.abs(params[d:])] - truth)),
                        sco["error"][-1])
        lower, upper = sco["final_w"]
        assert 0 <= lower <= upper


@pytest.mark.skipif(not HAS_TORCH, reason="torch is not installed: no WGAN baselines")
def test_sco_vs_wgan_baselines(demo_runs):
    """The WGAN baselines ran (20 generator steps) and end further from the target than SCO."""
    r = run_demo("plot_sco_vs_wgan.py", demo_runs)
    assert r["torch"] and r["gan_steps"] == 20
    for name in ("1d", "2d"):
        s = r["settings"][name]
        for method in ("WGAN", "WGAN-GP"):
            c = s[method]
            assert c["steps"][0] == 0 and c["steps"][-1] == 20
            assert_allclose(c["error"][0], 1.0)
            assert np.all(np.isfinite(c["error"]))
            assert c["settings"]["n_critic"] == 5 and c["settings"]["batch_size"] == 256
            assert s["SCO"]["error"][-1] < c["error"][-1], (name, method)


def test_sco_gaussians_script(demo_runs):
    out = run_script("sco_gaussians.py", demo_runs)
    assert "error" in demo_runs["sco_gaussians.py"][1]
    assert sorted(p.name for p in out.iterdir()) == ["sco_1d.png", "sco_2d.png"]


def test_sco_8gaussians_script(demo_runs):
    out = run_script("sco_8gaussians.py", demo_runs)
    rec = json.loads((out / "demos_sco.json").read_text())["sco_8gaussians"]
    assert rec["steps"] == 5 and rec["settings"]["grid"] == 32
    for lower, upper in (rec["w_start"], rec["w_final"]):
        assert 0 <= lower <= upper


def test_smoothed_25gaussians_script(demo_runs):
    out = run_script("smoothed_25gaussians.py", demo_runs)
    rec = json.loads((out / "demos_sco.json").read_text())["smoothed_25gaussians"]
    assert rec["steps_done"] == 20 and 0 <= rec["modes_recovered"] <= 25
    lower, upper = rec["w_grid_128"]
    assert 0 <= lower <= upper
