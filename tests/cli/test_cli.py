"""The command line, end to end and in process: printed values, files, exit codes."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time

import numpy as np
import pytest
from scipy.stats import norm

import otgrid
from otgrid.cli.main import main

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
W_LINE = re.compile(r"^W \S+ (\S+)  in \[(\S+), (\S+)\]$", re.MULTILINE)


def printed_w(out: str) -> tuple[float, float, float]:
    """(w1, lower, upper) from the CLI's output."""
    match = W_LINE.search(out)
    assert match is not None, out
    return tuple(float(v) for v in match.groups())


def w1_1d_closed_form(mu: np.ndarray, nu: np.ndarray, dx: float) -> float:
    """dx * sum |F_mu - F_nu| (cumulative masses): the exact 1D W1 of the discrete measures."""
    return dx * float(np.abs(np.cumsum(mu) - np.cumsum(nu)).sum())


def normal_masses(edges: np.ndarray, mean: float, std: float) -> np.ndarray:
    """Exact cell masses of N(mean, std^2), renormalised to the grid (scipy CDF differences)."""
    m = np.diff(norm.cdf(edges, loc=mean, scale=std))
    return m / m.sum()


def assert_one_line_error(capsys: pytest.CaptureFixture, rc: int, *words: str) -> str:
    err = capsys.readouterr().err
    assert rc == 2
    assert err.startswith("otgrid: error: ")
    assert err.count("\n") == 1 and err.endswith("\n") and len(err.splitlines()) == 1
    assert "Traceback" not in err
    for w in words:
        assert w in err, err
    return err


# --------------------------------------------------------------------------- 1D


def test_critic_1d_matches_closed_form(tmp_path, capsys):
    fig = tmp_path / "w.png"
    out_json = tmp_path / "w.json"
    rc = main(["critic", "normal(0, 1)", "normal(1, 1)", "--bounds", "-6", "7", "--shape", "64",
               "--tol", "1e-6", "--backend", "numpy", "--figure", str(fig),
               "--json", str(out_json)])
    out = capsys.readouterr().out
    assert rc == 0
    edges = np.linspace(-6.0, 7.0, 65)
    ref = w1_1d_closed_form(normal_masses(edges, 0, 1), normal_masses(edges, 1, 1), 13 / 64)
    np.testing.assert_allclose(ref, 1.0, atol=5e-3)   # close to the continuum W1 = 1
    w, lower, upper = printed_w(out)
    np.testing.assert_allclose(w, ref, rtol=1e-6)
    assert lower <= ref * (1 + 1e-9) and ref <= upper * (1 + 1e-9)
    assert "grid: 1D, bounds [-6, 7] (given), shape 64" in out
    assert "outside" not in out    # 1e-9 in the tails: renormalised silently ("auto")
    assert re.search(r"converged:\s+True", out)
    assert re.search(r"iterations:\s+\d+", out) and re.search(r"backend:\s+numpy", out)
    assert re.search(r"relative gap:\s+\S+", out) and re.search(r"seconds:\s+\S+", out)
    assert f"figure written to {fig}" in out
    assert fig.read_bytes()[:8] == PNG_MAGIC
    record = json.loads(out_json.read_text())
    np.testing.assert_allclose(record["w1"], ref, rtol=1e-6)
    assert record["bounds"] == [[-6.0, 7.0]] and record["shape"] == [64]
    assert record["converged"] is True and record["figure"] == str(fig)
    assert record["outside_mass"]["mu"] > 0 and record["outside"] == "auto"  # but recorded
    np.testing.assert_allclose(record["outside_mass"]["mu"], norm.cdf(-6) + norm.sf(7),
                               rtol=1e-6)


def test_critic_1d_samples_from_npy(tmp_path, capsys):
    rng = np.random.default_rng(1)
    samples = rng.uniform(-1.0, 2.0, size=500)
    path = tmp_path / "s.npy"
    np.save(path, samples)
    rc = main(["critic", str(path), "point(0.5)", "--bounds", "-1", "2", "--shape", "30",
               "--backend", "numpy", "--tol", "1e-8", "--no-figure", "--quiet"])
    out = capsys.readouterr().out
    assert rc == 0
    edges = np.linspace(-1.0, 2.0, 31)
    mu = np.histogram(samples, bins=edges)[0] / samples.size
    nu = np.zeros(30)
    nu[np.searchsorted(edges, 0.5, side="right") - 1] = 1.0
    ref = w1_1d_closed_form(mu, nu, 0.1)
    np.testing.assert_allclose(printed_w(out)[0], ref, rtol=1e-7)
    assert "Empirical(n=500, ndim=1)" in out


def test_default_bounds_hold_both_and_are_printed(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rc = main(["critic", "normal(0, 1)", "uniform(3, 4)", "--shape", "32", "--tol", "1e-3",
               "--backend", "numpy", "--no-figure", "--quiet"])
    out = capsys.readouterr().out
    assert rc == 0
    low, high = map(float, re.search(r"bounds \[(\S+), (\S+)\] \(default", out).groups())
    assert low <= -5.0 and high >= 5.0
    assert not (tmp_path / "critic.png").exists()   # --no-figure


def test_negative_numbers_in_scientific_notation_and_3d(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rc = main(["critic", "point(0)", "point(1)", "--bounds", "-1e1", "1e1", "--shape", "20",
               "--backend", "numpy", "--no-figure", "--quiet"])
    out = capsys.readouterr().out
    assert rc == 0 and "bounds [-10, 10] (given)" in out
    np.testing.assert_allclose(printed_w(out)[0], 1.0, rtol=1e-6)  # cells one dx = 1 apart
    rc = main(["critic", "normal([0, 0, 0], 1)", "point([1, 0, 0])", "--shape", "6",
               "--tol", "1e-2", "--quiet", "--figure", "never.png"])
    out = capsys.readouterr().out
    assert rc == 0 and "grid: 3D" in out and "no figure for a 3D problem" in out
    assert "figure written" not in out and not (tmp_path / "never.png").exists()


def test_progress_lines_unless_quiet(tmp_path, capsys):
    args = ["critic", "normal(0, 1)", "normal(1, 1)", "--shape", "32", "--tol", "1e-3",
            "--backend", "numpy", "--no-figure"]
    assert main(args) == 0
    assert re.search(r"^\s+iter\s+0\s+lower", capsys.readouterr().out, re.MULTILINE)
    assert main([*args, "--quiet"]) == 0
    assert "iter " not in capsys.readouterr().out


def test_not_converged_is_reported(capsys):
    rc = main(["critic", "normal([0, 0], 1)", "normal([1, 0], 1)", "--shape", "16",
               "--max-iter", "2", "--backend", "numpy", "--no-figure", "--quiet"])
    captured = capsys.readouterr()
    assert rc == 0
    assert re.search(r"converged:\s+False", captured.out)
    assert "otgrid: warning:" in captured.err and "max_iter" in captured.err


# --------------------------------------------------------------------------- 2D


def test_critic_2d_cityblock_matches_pot(tmp_path, capsys):
    ot = pytest.importorskip("ot")
    fig = tmp_path / "c2.png"
    rc = main(["critic", "normal([0, 0], 1)", "normal([1, -0.5], [0.5, 1])", "--bounds", "-4",
               "5", "-5", "4", "--shape", "24", "20", "--norm", "cityblock", "--tol", "1e-5",
               "--backend", "numpy", "--figure", str(fig), "--flow", "--quiet",
               "--outside", "renormalize"])  # 1e-4 outside, as the renormalised reference
    out = capsys.readouterr().out
    assert rc == 0
    ex, ey = np.linspace(-4, 5, 25), np.linspace(-5, 4, 21)
    mu = np.outer(normal_masses(ex, 0, 1), normal_masses(ey, 0, 1)).ravel()
    nu = np.outer(normal_masses(ex, 1, np.sqrt(0.5)), normal_masses(ey, -0.5, 1)).ravel()
    cx, cy = 0.5 * (ex[1:] + ex[:-1]), 0.5 * (ey[1:] + ey[:-1])
    pts = np.stack(np.meshgrid(cx, cy, indexing="ij"), axis=-1).reshape(-1, 2)
    ref = ot.emd2(mu, nu, ot.dist(pts, pts, metric="cityblock"))
    w, lower, upper = printed_w(out)
    np.testing.assert_allclose(w, ref, rtol=1e-5)
    assert lower <= ref * (1 + 1e-9) and ref <= upper * (1 + 1e-9)
    assert "grid: 2D, bounds [-4, 5] x [-5, 4] (given), shape 24 x 20" in out
    assert fig.read_bytes()[:8] == PNG_MAGIC


def test_dimension_is_inferred_and_scalars_broadcast(capsys):
    rc = main(["critic", "normal(0, 1)", "8gaussians", "--shape", "16", "--tol", "1e-2",
               "--backend", "numpy", "--no-figure", "--quiet"])
    out = capsys.readouterr().out
    assert rc == 0
    assert "Normal(mean=[0.0, 0.0], cov=1.0)" in out and "grid: 2D" in out
    rc = main(["critic", "normal(0, 1)", "normal(1, 1)", "--bounds", "-5", "6", "-5", "6",
               "--shape", "12", "--tol", "1e-2", "--backend", "numpy", "--no-figure",
               "--quiet"])
    out = capsys.readouterr().out
    assert rc == 0 and "grid: 2D" in out and "shape 12 x 12" in out


@pytest.mark.parametrize("nu", [[], ["-"]])
def test_parallel_lines_pair(nu, tmp_path, capsys):
    fig = tmp_path / "pl.png"
    # Bounds chosen so that x = 0 and x = 0.5 both lie at cell centres (dx = 1/32): the grid
    # problem is then the exact translation by 0.5, W = 0.5 (critic -x, flow along x).
    rc = main(["critic", "parallel_lines(0.5)", *nu, "--bounds", "-0.265625", "0.734375",
               "-0.25", "1.25", "--shape", "32", "--tol", "1e-5", "--backend", "numpy",
               "--figure", str(fig), "--quiet"])
    out = capsys.readouterr().out
    assert rc == 0
    w, lower, upper = printed_w(out)
    np.testing.assert_allclose(w, 0.5, rtol=1e-5)
    assert lower <= 0.5 * (1 + 1e-9) <= upper * (1 + 2e-9)
    assert fig.read_bytes()[:8] == PNG_MAGIC


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(("args", "words"), [
    (["critic", "normal(0)", "normal(1, 1)"], ["MU:", "normal(0)", "covariance"]),
    (["critic", "normal(0, 1)", "studentt(1)"], ["NU:", "unknown name 'studentt'"]),
    (["critic", "__import__('os').system('echo hi')", "normal(1, 1)"], ["MU:", "__import__"]),
    (["critic", "normal(0, 1)"], ["NU is missing"]),
    (["critic", "normal(0, 1)", "-"], ["NU is missing"]),
    (["critic", "parallel_lines(1)", "normal(0, 1)"], ["omit NU"]),
    (["critic", "normal(0, 1)", "parallel_lines(1)"], ["MU alone"]),
    (["critic", "normal([0, 0], 1)", "normal([0, 0, 0], 1)"], ["2D but NU is 3D"]),
    (["critic", "normal(0, 1)", "normal(1, 1)", "--bounds", "-1", "1", "2"], ["pairs"]),
    (["critic", "8gaussians", "swissroll", "--bounds", "-1", "1", "2"], ["LOW HIGH pairs"]),
    (["critic", "normal(0, 1)", "normal(1, 1)", "--bounds", "1", "-1"], ["low < high"]),
    (["critic", "8gaussians", "swissroll", "--bounds", "0", "1", "0", "1", "0", "1"],
     ["MU:", "it is 2D; expected 3D"]),
    (["critic", "8gaussians", "swissroll", "--bounds", "0", "1", "0", "1", "0", "1", "0", "1"],
     ["MU:", "expected 4D"]),
    (["critic", "normal(0, 1)", "normal(1, 1)", "--shape", "1"], ["shape", ">= 2"]),
    (["critic", "normal([0, 0], 1)", "normal(1, 1)", "--shape", "8", "8", "8"],
     ["MU:", "it is 2D; expected 3D"]),
    (["critic", "normal(0, 1)", "normal(1, 1)", "--bounds", "-1", "1", "-1", "1", "--shape",
      "4", "4", "4"], ["--bounds gives 2 axes but --shape gives 3"]),
    (["critic", "normal(0, 1)", "normal(1, 1)", "--tol", "-1"], ["--tol"]),
    (["critic", "normal(0, 1)", "normal(1, 1)", "--tol", "10"], ["--tol", "in (0, 1)", "got 10"]),
    (["critic", "normal(0, 1)", "normal(1, 1)", "--tol", "0"], ["--tol", "in (0, 1)", "got 0"]),
    (["critic", "normal(0, 1)", "normal(1, 1)", "--tol", "1"], ["--tol", "in (0, 1)"]),
    (["critic", "normal(0, 1)", "normal(1, 1)", "--tol", "nan"], ["--tol", "in (0, 1)"]),
    (["critic", "normal(0, 1)", "normal(1, 1)", "--max-iter", "0"], ["--max-iter"]),
    (["critic", "normal(0, 1)", "normal(1, 1)", "--bounds", "-1", "1", "--outside", "raise"],
     ["MU:", "0.317 of its mass (31.7%)", "--outside raise", "--bounds -6 7"]),
    (["critic", "point(5)", "point(6)", "--bounds", "-1", "1"],
     ["MU:", "1 of its mass (100%)", "use --bounds 4.9 6.1"]),
    (["critic", "point(5)", "point(6)", "--bounds", "-1", "1", "--outside", "renormalize"],
     ["MU:", "No mass"]),
    (["critic", "normal(0, 1)", "normal(1, 1)", "--norm", "manhattan"], ["invalid choice"]),
    (["critic", "normal(0, 1)", "normal(1, 1)", "--shape", "x"], ["invalid int value"]),
    (["critic", "normal(0, 1)", "normal(1, 1)", "--frobnicate"], ["unrecognized arguments"]),
    (["critic", "normal(0, 1)", "normal(1, 1)", "--figure", "/no/such/folder/c.png"],
     ["does not exist"]),
    (["critic", "normal(0, 1)", "normal(1, 1)", "--figure", "c.docx"], ["figure format"]),
    (["critic", "normal(0, 1)", "normal(1, 1)", "--json", "/no/such/folder/w.json"],
     ["--json", "does not exist"]),
    (["critic", "missing_file.npy", "normal(1, 1)"], ["no such file"]),
    ([], ["choose a command"]),
])
def test_bad_input_exits_2_with_one_line(args, words, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rc = main(args)
    assert_one_line_error(capsys, rc, *words)
    assert not (tmp_path / "critic.png").exists()


def test_backend_cuda_without_a_gpu_is_a_usage_error(capsys, tmp_path, monkeypatch):
    from otgrid._device import cuda_status

    if cuda_status().startswith("available"):
        pytest.skip(f"CUDA is usable here ({cuda_status()})")
    monkeypatch.chdir(tmp_path)
    rc = main(["critic", "normal(0, 1)", "normal(1, 1)", "--backend", "cuda"])
    assert_one_line_error(capsys, rc, "backend='cuda' cannot run here")
    assert not (tmp_path / "critic.png").exists()


def test_version(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"otgrid {otgrid.__version__}"


def test_help_documents_the_grammar(capsys):
    assert main(["critic", "--help"]) == 0
    out = capsys.readouterr().out
    for word in ("normal(mean, cov)", "std=", "uniform(low, high)", "point(x)", "mixture(",
                 "8gaussians", "swissroll", "parallel_lines(theta)", ".npy", "examples:",
                 "--bounds", "--shape", "--norm", "--outside", "--flow", "--json"):
        assert word in out
    assert main(["--help"]) == 0
    assert "critic" in capsys.readouterr().out


def test_python_dash_m(tmp_path):
    done = subprocess.run([sys.executable, "-m", "otgrid", "--version"], capture_output=True,
                          text=True, timeout=120, cwd=tmp_path, check=False)
    assert done.returncode == 0
    assert done.stdout.strip() == f"otgrid {otgrid.__version__}"
    done = subprocess.run([sys.executable, "-m", "otgrid", "critic", "normal(0)", "point(1)"],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path, check=False)
    assert done.returncode == 2
    assert done.stderr.startswith("otgrid: error: MU: invalid distribution")
    assert "Traceback" not in done.stderr


def test_float32_and_time_limit_flags(capsys):
    args = ["critic", "normal([0, 0], 1)", "normal([1, 0], 1)", "--bounds", "-5", "6", "-5", "5",
            "--shape", "40", "--tol", "1e-4", "--no-figure", "--quiet"]
    assert main([*args, "--float32", "--time-limit", "60"]) == 0
    out = capsys.readouterr().out
    np.testing.assert_allclose(printed_w(out)[0], 1.0, rtol=2e-2)  # grid error at dx = 0.25
    assert "converged:    True" in out
    assert main([*args, "--time-limit", "0"]) == 2
    assert "--time-limit must be a positive number" in capsys.readouterr().err


# --------------------------------------------------------------------------- careless input


def test_bounds_that_miss_the_distributions_are_an_error(capsys, tmp_path, monkeypatch):
    """The issue's case: with --bounds 10 20 the old default rescaled ~1e-23 of rounding crumbs
    to the whole mass and printed W ~= 0.01, converged, exit 0."""
    monkeypatch.chdir(tmp_path)
    rc = main(["critic", "normal(0, 1)", "normal(1, 1)", "--bounds", "10", "20"])
    captured = capsys.readouterr()
    assert "W " not in captured.out
    assert_captured_one_line(
        captured, rc, "MU: 1 of its mass (100%) lies outside the bounds [10, 20]",
        "--outside auto", "use --bounds -6 7", "--outside renormalize", "--outside fold")
    assert not (tmp_path / "critic.png").exists()
    rc = main(["critic", "normal(0, 1)", "normal(1, 1)", "--bounds", "10", "20", "--shape",
               "64", "--outside", "renormalize", "--no-figure", "--quiet"])
    out = capsys.readouterr().out                        # asked for: done, and said so
    assert rc == 0 and "MU: mass 1 lies outside the bounds (renormalized)" in out


def assert_captured_one_line(captured, rc: int, *words: str) -> None:
    assert rc == 2 and captured.err.startswith("otgrid: error: ")
    assert captured.err.count("\n") == 1 and "Traceback" not in captured.err
    for w in words:
        assert w in captured.err, captured.err


@pytest.mark.parametrize("pair", [
    ["normal(0, 1)", "normal(1, 1)"],
    ["normal([0, 0], 1)", "8gaussians"],
    ["mixture(0.3*normal(-2, 1), 0.7*normal(2, .5))", "uniform(-3, 3)"],
    ["parallel_lines(0.5)"],
    ["normal([0, 0], [[1, .5], [.5, 1]])", "swissroll"],
    ["normal([0, 0, 0], 1)", "point([1, 0, 0])"],
    ["normal(0, std=0.01)", "normal(100, std=3)"],
])
def test_default_bounds_are_silent(pair, capsys):
    """The default bounds (Gaussians to mean +- 5 std, padded) leave < 1e-6 outside: no line
    about it. Before, 'otgrid critic "normal(0, 1)" "normal(1, 1)"' printed 'mass 9.88e-10
    lies outside the bounds ... enlarge --bounds'."""
    shape = [] if pair == ["normal(0, 1)", "normal(1, 1)"] else ["--shape", "16"]
    rc = main(["critic", *pair, *shape, "--tol", "1e-2", "--backend", "numpy", "--no-figure",
               "--quiet"])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert "outside" not in captured.out and captured.err == ""
    assert printed_w(captured.out)


@pytest.mark.parametrize(("args", "words"), [
    (["normal(1e300, 1)", "normal(1, 1)"], ["MU:", "'1e300' is too large", "+-1e+150"]),
    (["point(1e308)", "point(-1e308)"], ["MU:", "'1e308' is too large"]),
    (["normal(0, 1)", "point(-1e308)"], ["NU:", "'1e308' is too large"]),
    (["normal(" + "1" * 320 + ", 1)", "normal(0, 1)"], ["MU:", "overflows float64"]),
    (["normal(0, 1)", "normal(1, 1)", "--bounds", "-1e300", "1e300"],
     ["grid: bounds must lie within +-1e+150"]),
    (["normal(0, 1)", "normal(1, 1)", "--bounds", "0", "1e-200"], ["grid:", "too narrow"]),
    (["normal(0, 1)", "normal(1, 1)", "--bounds", "1e15", "1.000000000000001e15"],
     ["grid:", "too narrow"]),
    (["normal(0, 1)", "normal(1, 1)", "--bounds", "-inf", "1"], ["grid:", "non-finite"]),
    (["normal(1e150, 1)", "normal(0, 1)"], ["no default bounds", "+-1e+150"]),
    (["uniform(-1e150, 1e150)", "normal(0, 1)"], ["no default bounds"]),
])
def test_extreme_numbers_exit_2_with_one_line(args, words, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rc = main(["critic", *args])
    assert_one_line_error(capsys, rc, *words)
    assert not (tmp_path / "critic.png").exists()


@pytest.mark.parametrize(("args", "words"), [
    (["normal(0, 1)", "normal(0, 1)", "\r", "--bogus"], ["unrecognized arguments: \\r --bogus"]),
    (["normal(0,\n1", "normal(1, 1)"], ["MU:", "'normal(0,\\n1'"]),
    (["normal(0, 1)", "normal(1, 1)\x1b[31m"], ["NU:", "\\x1b[31m"]),
])
def test_control_characters_in_arguments_stay_on_the_error_line(args, words, capsys, tmp_path,
                                                                 monkeypatch):
    # found by fuzzing: a carriage return typed in an argument split the error over two lines
    monkeypatch.chdir(tmp_path)
    assert_one_line_error(capsys, main(["critic", *args]), *words)


def test_extreme_numbers_in_a_real_process(tmp_path):
    """The same at the process level: exit status 2, one line, no traceback (it used to be an
    OverflowError traceback with status 1)."""
    done = subprocess.run([sys.executable, "-m", "otgrid", "critic", "point(1e308)",
                           "point(-1e308)"], capture_output=True, text=True, timeout=120,
                          cwd=tmp_path, check=False)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert "too large" in done.stderr


@pytest.mark.parametrize(("shape", "words"), [
    ((100, 5), ["MU:", "100 samples in 5D", "given explicitly", "5 LOW HIGH pairs in --bounds"]),
    ((2, 1000), ["MU:", "shape (2, 1000)", "looks transposed", "x.T"]),
])
def test_npy_of_a_high_or_transposed_dimension(shape, words, capsys, tmp_path, monkeypatch):
    """A (100, 5) array was solved as a 5D problem on a 32^5 grid (11 GB, minutes); a
    (2, 1000) one printed '--shape 32 32 32 ...' with 1000 values. Now: one quick line."""
    monkeypatch.chdir(tmp_path)
    np.save(tmp_path / "x.npy", np.random.default_rng(0).normal(size=shape))
    t0 = time.perf_counter()
    rc = main(["critic", "x.npy", "normal(0, 1)"])
    assert time.perf_counter() - t0 < 2.0
    err = assert_one_line_error(capsys, rc, *words)
    assert len(err) < 500 and err.count(" 32") == 0


def test_npy_in_5d_with_an_explicit_dimension_meets_the_memory_check(capsys, tmp_path,
                                                                       monkeypatch):
    from otgrid.critic import memory

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(memory, "available_memory", lambda: 8 * 2 ** 30)
    np.save(tmp_path / "x.npy", np.random.default_rng(0).normal(size=(100, 5)))
    rc = main(["critic", "x.npy", "normal(0, 1)", "--bounds", *["-5", "5"] * 5])
    assert_one_line_error(capsys, rc, "--shape 32 32 ... (5 values)", "GiB of memory")


@pytest.mark.parametrize("command", ["critic", "sco"])
def test_a_grid_too_large_for_the_memory_is_refused_at_once(command, capsys, tmp_path,
                                                             monkeypatch):
    """--shape 11000 11000 under an 8 GB limit died after 36 s with a raw _ArrayMemoryError;
    the estimate now refuses it before anything is allocated."""
    from otgrid.critic import memory

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(memory, "available_memory", lambda: 8 * 2 ** 30)
    dists = (["normal([0, 0], 1)", "normal([1, 1], 1)"] if command == "critic"
             else ["normal([0, 0], 1)"])
    t0 = time.perf_counter()
    rc = main([command, *dists, "--shape", "11000", "11000"])
    assert time.perf_counter() - t0 < 1.0
    needed = memory.solve_memory((11000, 11000)) + 2 * 8 * 11000 ** 2   # and mu, nu
    err = assert_one_line_error(capsys, rc, "--shape 11000 11000", f"{needed / 2 ** 30:.3g} GiB",
                                "(estimate)", "8 GiB is available", "OTGRID_MEMORY_CHECK=0")
    side = int(re.search(r"use --shape (\d+)", err).group(1))
    assert 1000 < side < 11000
    assert memory.solve_memory((side, side)) + 16 * side ** 2 <= 8 * 2 ** 30


def test_info_prints_the_memory_and_the_largest_grid(capsys, monkeypatch):
    from otgrid.critic import memory

    monkeypatch.setattr(memory, "available_memory", lambda: 8 * 2 ** 30)
    assert main(["info"]) == 0
    line = capsys.readouterr().out.splitlines()[-1]
    side = int(re.search(r"^memory: 8 GiB available; the largest 2D critic that fits is about "
                         r"(\d+) x \1 cells$", line).group(1))
    assert memory.solve_memory((side, side)) + 16 * side ** 2 <= 8 * 2 ** 30
    assert memory.solve_memory((side + 2, side + 2)) + 16 * (side + 2) ** 2 > 8 * 2 ** 30
    monkeypatch.setattr(memory, "available_memory", lambda: None)
    assert main(["info"]) == 0
    assert capsys.readouterr().out.splitlines()[-1].startswith("memory: unknown")
