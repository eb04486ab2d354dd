"""Every ``otgrid`` command shown in the README, the docs and the ``--help`` texts runs as shown.

The commands are collected by ``doc_blocks.py``: the shell blocks and transcripts of README.md
and docs/*.rst, and the ``examples:`` of the help texts of ``otgrid/cli/*.py``. A command shown
in several places runs once. Each runs as a user runs it -- ``python -m otgrid ...`` in a fresh
process, in a temporary folder, after the other shell commands of its block (``python -c``
making a critic file, ``printf`` writing problems) -- and is checked:

* exit status 0, no warning and no traceback on standard error, and every file named by
  ``--figure`` or ``--json`` written (a PNG, valid JSON);
* the outcome its comment or its page states (:data:`OUTCOMES`), against an independent truth
  where there is one: the 1D closed form ``W1 = int |F_mu - F_nu|`` (SciPy), ``W = |theta|``
  for the parallel lines, the SCO target's parameters;
* a transcript (``$ command`` then its output): the output shown, exactly, and exit status 2
  for an ``otgrid: error:`` line.

A comment that states a number must have a check in :data:`OUTCOMES`. The input files of the
help examples (``samples.npy``, ``critic.pt``, ``problems.jsonl``) are made here
(:data:`INPUTS`); commands that cannot run here are listed in :data:`NOT_RUN` with the reason.
The long ones are marked ``slow`` (``pytest -m "not slow"`` leaves them out).
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from doc_blocks import ROOT, Command, collect_blocks, help_examples
from scipy import integrate, stats

import otgrid

HAS_TORCH = importlib.util.find_spec("torch") is not None
HAS_DASK = importlib.util.find_spec("distributed") is not None
PNG = b"\x89PNG\r\n\x1a\n"
W_LINE = re.compile(r"^W \S+ (\S+)\s+in \[(\S+), (\S+)\]", re.MULTILINE)

# Commands shown that cannot run in a test (pattern of the command: why).
NOT_RUN = {
    r"^otgrid sweep .*--scheduler tcp://10\.0\.0\.5:8786$":
        "needs a Dask scheduler at that address (the example of a cluster run)",
    r"^otgrid explore\b": "serves the explorer until Ctrl-C (tests/explore starts and stops it)",
}


def _normalise(text: str) -> str:
    """The command as one line, ``.venv/bin/otgrid`` and ``python -m otgrid`` as ``otgrid``."""
    text = re.sub(r"^(\S*/)?(otgrid|python3? -m otgrid)(?= |$)", "otgrid", text.strip())
    return " ".join(text.split()) if "'" not in text else text


def _printed_w(out: str) -> tuple[float, float, float]:
    m = W_LINE.search(out)
    assert m is not None, f"no 'W ... in [lower, upper]' line in:\n{out}"
    return tuple(float(v) for v in m.groups())


def _w1_1d(cdf_mu: Callable, cdf_nu: Callable, lo: float, hi: float) -> float:
    """The closed form of W1 on the line: the integral of |F_mu - F_nu| (SciPy quadrature)."""
    val, _ = integrate.quad(lambda x: abs(cdf_mu(x) - cdf_nu(x)), lo, hi, limit=400)
    return val


# ------------------------------------------------------------------ outcomes to check
def _w_close(expected: float, tol: float) -> Callable:
    def check(out: str, err: str, cwd: Path) -> None:
        w, lower, upper = _printed_w(out)
        assert lower <= w <= upper
        assert abs(w - expected) <= tol, f"W = {w}, expected {expected} +- {tol}"
    return check


def _normal_pair_1d(out: str, err: str, cwd: Path) -> None:
    # the default bounds hold both Gaussians: nothing is said about outside mass
    assert "outside" not in out + err
    _w_close(1.0, 1e-3)(out, err, cwd)        # W1(N(0, 1), N(1, 1)) = |0 - 1|


def _parallel_lines(out: str, err: str, cwd: Path) -> None:
    # Arjovsky's pair: W = |theta| between the lines x = 0 and x = theta = 0.5; on the grid, the
    # distance between the centres of the cells that hold them (exact: the lines move as whole)
    m = re.search(r"^grid: 2D, bounds \[(\S+), (\S+)\] x .*shape (\d+) x", out, re.MULTILINE)
    lo, hi, n = float(m.group(1)), float(m.group(2)), int(m.group(3))
    dx = (hi - lo) / n
    offsets = [(x - lo) / dx for x in (0.0, 0.5)]
    w = _printed_w(out)[0]
    if all(abs(k - round(k)) > 1e-9 for k in offsets):     # inside cells, not on their edges
        centres = [lo + (np.floor(k) + 0.5) * dx for k in offsets]
        assert abs(w - (centres[1] - centres[0])) < 1e-5, (w, centres)
    assert abs(w - 0.5) <= dx, w


def _mixture_uniform(out: str, err: str, cwd: Path) -> None:
    def f_mu(x):
        return 0.3 * stats.norm.cdf(x, -2, 1) + 0.7 * stats.norm.cdf(x, 2, 0.5)

    truth = _w1_1d(f_mu, stats.uniform(-3, 6).cdf, -10, 10)
    _w_close(truth, 2e-3)(out, err, cwd)


def _gaussians_2d(out: str, err: str, cwd: Path) -> None:
    # 8gaussians against N(0, I) on [-6, 6]^2, 128 x 128 cells: the W the index page shows
    w, lower, upper = _printed_w(out)
    assert lower <= w <= upper and upper - lower <= 1e-4 * upper
    assert abs(w - 0.62359) < 1e-3, w


def _sco_shift(out: str, err: str, cwd: Path) -> None:
    # cli.rst: ends at loc 2, scale 0.5, parameter error about 0.002 (below 0.01)
    loc, scale = (float(v) for v in re.search(r"^params:\s+loc (\S+)\s+scale (\S+)$", out,
                                              re.MULTILINE).groups())
    error = float(re.search(r"\(parameter error (\S+)\)", out).group(1))
    assert error < 0.01 and abs(loc - 2) < 0.01 and abs(scale - 0.5) < 0.01, out[-600:]


def _sco_param_tol(out: str, err: str, cwd: Path) -> None:
    # a diagonal Gaussian target: its parameters are known; the fit stops within 0.01 of them
    error = float(re.search(r"\(parameter error (\S+)\)", out).group(1))
    assert error <= 0.01 and "(param_tol)" in out, out[-600:]


def _sco_affine(out: str, err: str, cwd: Path) -> None:
    # g(z) = A z + b with z ~ N(0, I) is N(b, A A^T): A A^T must reach the target covariance
    values = dict(re.findall(r"(A\[\d,\d\]|b\[\d\]) (\S+)", out.split("params:")[-1]))
    a = np.array([[float(values[f"A[{i},{j}]"]) for j in range(2)] for i in range(2)])
    np.testing.assert_allclose(a @ a.T, [[1.0, 0.5], [0.5, 1.0]], atol=0.03)
    assert max(abs(float(values[f"b[{i}]"])) for i in range(2)) < 0.03


def _sco_prox(out: str, err: str, cwd: Path) -> None:
    record = json.loads((cwd / "fit.json").read_text())
    assert record["param_error"] <= 0.02, record        # --stop-param-tol 0.02


def _samples(out: str, err: str, cwd: Path) -> None:
    record = json.loads((cwd / "w.json").read_text())
    assert record["lower"] <= record["w1"] <= record["upper"]
    # the samples are N((0.5, -0.5), 0.7^2 I): W1 to N(0, I) is about |mean shift| = 0.71
    assert 0.6 < record["w1"] < 0.85, record["w1"]


def _audit(out: str, err: str, cwd: Path) -> None:
    for metric in ("w_ratio", "lipschitz", "grad_cosine", "shape_error"):
        assert metric in out, out


def _info(out: str, err: str, cwd: Path) -> None:
    assert otgrid.__version__ in out and "numba" in out, out


def _version(out: str, err: str, cwd: Path) -> None:
    assert otgrid.__version__ in out, out


def _sweep(out: str, err: str, cwd: Path) -> None:
    lines = (cwd / "results" / "results.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    assert records and all(r["status"] == "ok" for r in records), records
    shift = [r for r in records if r.get("id") == "shift 1"]
    for r in shift:                                   # W1(N(0, 1), N(1, 1)) = 1
        assert abs(r["w1"] - 1.0) < 1e-3, r


# (pattern of the command, check, slow): the first match applies.
OUTCOMES: list[tuple[str, Callable, bool]] = [
    (r'^otgrid critic "normal\(0, 1\)" "normal\(1, 1\)"$', _normal_pair_1d, False),
    (r'^otgrid critic "parallel_lines\(0\.5\)" --bounds', _parallel_lines, True),
    (r'^otgrid critic "parallel_lines\(0\.5\)"$', _parallel_lines, True),
    (r'^otgrid critic "mixture\(', _mixture_uniform, True),
    (r'^otgrid critic 8gaussians "normal\(\[0, 0\], 1\)" --bounds -6 6 -6 6 --shape 128 128',
     _gaussians_2d, True),
    (r'^otgrid critic "normal\(\[0, 0\], 1\)" 8gaussians --tol', _gaussians_2d, True),
    (r'^otgrid critic samples\.npy', _samples, True),
    (r'^otgrid sco "normal\(2, std=0\.5\)"', _sco_shift, True),
    (r'^otgrid sco "normal\(\[0\.5', _sco_param_tol, True),
    (r'^otgrid sco .*--generator affine', _sco_affine, True),
    (r'^otgrid sco .*--prox', _sco_prox, True),
    (r'^otgrid audit ', _audit, True),
    (r'^otgrid info$', _info, False),
    (r'^otgrid --version$', _version, False),
    (r'^otgrid sweep ', _sweep, True),
]


def _make_samples(cwd: Path) -> None:
    rng = np.random.default_rng(0)
    np.save(cwd / "samples.npy", rng.normal([0.5, -0.5], 0.7, size=(4000, 2)))


def _make_critic(name: str, ndim: int, arch: str) -> Callable:
    def make(cwd: Path) -> None:
        import torch

        from otgrid.auditing.baselines import make_critic

        torch.save(make_critic(ndim, arch).state_dict(), cwd / name)
    return make


def _make_problems(cwd: Path) -> None:
    lines = [{"mu": "normal(0, 1)", "nu": "normal(1, 1)", "id": "shift 1"},
             {"mu": "normal(0, 1)", "nu": "normal(2, 1)", "shape": 256}]
    (cwd / "problems.jsonl").write_text("".join(json.dumps(d) + "\n" for d in lines))


# input files the help examples name: (file, maker); made when no earlier command makes them
INPUTS = {"samples.npy": _make_samples, "critic.pt": _make_critic("critic.pt", 1, "1d"),
          "critic_state.pt": _make_critic("critic_state.pt", 2, "2d"),
          "problems.jsonl": _make_problems}


def _examples() -> list[tuple[str, Command, list[str]]]:
    """(normalised command, one occurrence, where it is shown) for every otgrid command."""
    seen: dict[str, tuple[Command, list[str]]] = {}
    commands = [c for b in collect_blocks() if not b.not_run for c in b.commands]
    for cmd in [*commands, *help_examples()]:
        if cmd.kind != "otgrid":
            continue
        key = _normalise(cmd.text)
        where = cmd.block.id
        if key in seen:
            seen[key][1].append(where)
        else:
            seen[key] = (cmd, [where])
    return [(key, cmd, where) for key, (cmd, where) in seen.items()]


def _params():
    params = []
    for key, cmd, where in _examples():
        marks = []
        reason = next((r for pattern, r in NOT_RUN.items() if re.search(pattern, key)), None)
        if reason:
            marks.append(pytest.mark.skip(reason=f"not run here: {reason}"))
        slow = next((s for pattern, _, s in OUTCOMES if re.search(pattern, key)), False)
        if slow and cmd.expected is None:
            marks.append(pytest.mark.slow)
        params.append(pytest.param(key, cmd, id=f"{where[0]}:{key[:60]}", marks=marks))
    return params


def _run(text: str, cwd: Path, *, shell: bool = False) -> subprocess.CompletedProcess:
    """Run a shell command with bash, or an ``otgrid`` command as ``python -m otgrid``."""
    env = {**os.environ, "MPLBACKEND": "Agg", "COLUMNS": "100"}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    if shell:
        return subprocess.run(["bash", "-ec", text], cwd=cwd, env=env,
                              capture_output=True, text=True, timeout=600)
    argv = shlex.split(text)
    return subprocess.run([sys.executable, "-m", "otgrid", *argv[1:]], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)


def test_examples_are_collected():
    keys = [key for key, _, _ in _examples()]
    # one from each source at least: README, cli.rst (with its transcript), the help texts
    assert 'otgrid critic "normal(0, 1)" "normal(1, 1)"' in keys
    assert any(k.startswith("otgrid sco") for k in keys)
    assert any(k.endswith("--bounds 10 20") for k in keys)
    for pattern in NOT_RUN:
        assert any(re.search(pattern, k) for k in keys), f"NOT_RUN: {pattern!r} matches nothing"


@pytest.mark.parametrize(("key", "cmd"), _params())
def test_example_runs_as_documented(key, cmd, tmp_path):
    if key.startswith("otgrid audit") and not HAS_TORCH:
        pytest.skip("torch is not installed (the torch extra)")
    if key.startswith("otgrid sweep") and not HAS_DASK:
        pytest.skip("dask.distributed is not installed (the dask extra)")
    for before in cmd.before:                 # the block's other commands, in order
        proc = _run(before.text, tmp_path, shell=True)   # `python` is this interpreter
        assert proc.returncode == 0, f"{before.text}\n{proc.stdout}\n{proc.stderr}"
    for name, make in INPUTS.items():
        if re.search(rf"(^| ){re.escape(name)}( |$)", key) and not (tmp_path / name).exists():
            make(tmp_path)
    proc = _run(key, tmp_path)
    out, err = proc.stdout, proc.stderr
    assert "Traceback" not in err, err
    if cmd.expected is not None:              # a transcript: the output shown, exactly
        shown = cmd.expected.strip()
        assert (out + err).strip() == shown, f"shown:\n{shown}\ngot:\n{out}{err}"
        error = shown.splitlines()[-1].startswith("otgrid: error:")
        assert proc.returncode == (2 if error else 0)
        if error:                             # one line on standard error: the last one shown
            assert err.strip() == shown.splitlines()[-1]
        return
    assert proc.returncode == 0, f"exit status {proc.returncode}\n{out[-2000:]}\n{err}"
    assert not re.search(r"warn", err, re.IGNORECASE), err
    for flag in ("--figure", "--json"):
        m = re.search(rf"{flag} (\S+)", key)
        if m:
            path = tmp_path / m.group(1)
            assert path.is_file(), f"{flag} {m.group(1)} was not written"
            if flag == "--figure":
                assert path.read_bytes()[:8] == PNG
            else:
                json.loads(path.read_text())
    check = next((c for pattern, c, _ in OUTCOMES if re.search(pattern, key)), None)
    if check is None:
        assert not re.search(r"\d", cmd.comment), (
            f"{key!r} states {cmd.comment!r}: add its check to OUTCOMES")
    else:
        check(out, err, tmp_path)


def test_every_shell_command_of_the_docs_is_run_or_recognised():
    """Each command of a shell block is an otgrid command (run above), a demo (run by
    tests/test_demos.py), a set-up step (venv, pip, the suite, the docs build) or a command run
    before the otgrid commands of its block; a block not meant to run is marked."""
    demos = {p.name for p in (ROOT / "demos").glob("*.py")}
    for block in collect_blocks():
        if block.lang not in ("shell", "transcript") or block.not_run:
            continue
        assert block.commands, f"{block.id}: a shell block without a command"
        for cmd in block.commands:
            if cmd.kind == "demo":
                assert re.search(r"demos/(\w+\.py)", cmd.text).group(1) in demos, cmd.text
            elif cmd.kind == "shell":
                later = [c for c in block.commands if cmd in c.before]
                assert later, (f"{block.id}: {cmd.text!r} runs no otgrid command after it; "
                               "mark the block '.. not-run: REASON'")
