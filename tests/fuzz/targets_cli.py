"""Fuzz targets of the command line: random commands, options and values for ``otgrid``.

The contract (``otgrid.cli.main.main``): exit status 0, 2 on bad input with exactly one line
``otgrid: error: ...`` on standard error, 1 only when an output file cannot be written; never a
traceback, nothing printed twice on standard error, where a successful run prints only
``otgrid: warning: ...`` lines and progress lines ``[otgrid COMMAND] ...``; on success the
printed ``W`` lies inside the printed bounds. Runs in-process (``main(argv)``) and, for a few
examples, as a real process (``python -m otgrid``). Every solve is kept tiny: ``--shape`` at
most 32 per axis, a small ``--max-iter``, ``--time-limit`` and ``--steps`` unless the example
sets them (to bad values).
"""

from __future__ import annotations

import contextlib
import io
import math
import os
import re
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from fuzz.harness import Outcome, Target, python
from fuzz.targets_text import spec_texts
from hypothesis import strategies as st

# --------------------------------------------------------------------------- values
_SPECS = ["normal(0, 1)", "normal(1, 1)", "normal(0.5, std=0.3)", "uniform(-1, 1)", "point(0)",
          "point(1)", "dirac(-0.5)", "mixture(point(0), point(1))", "normal([0, 0], 1)",
          "normal([1, 0], 0.5)", "uniform([0, 0], [1, 1])", "point([0, 1])", "8gaussians",
          "swissroll", "parallel_lines(0.5)", "parallel_lines(0)", "normal([0, 0, 0], 1)",
          "uniform([0, 0, 0], [1, 1, 1])", "-", "point(1e150)", "normal(0, 1e-300)",
          "normal(1e10, 1)", "uniform(0, 1e-9)", "{npy:1d}", "{npy:2d}", "{npy:3d}",
          "{npy:5d}", "{npy:transposed}", "{npy:pickle}", "{npy:nan}", "{npy:huge}",
          "{npy:missing}"]

_NUM = st.one_of(
    st.sampled_from(["0", "1", "-1", "2", "0.5", "-3", "1e-3", "1e3", "-1e3", "1e150", "1e151",
                     "-1e200", "1e-320", "nan", "inf", "-inf", "1e", "abc", "", "0x10", "1_0",
                     "--", "-0"]),
    st.floats(-20, 20).map(lambda v: f"{v:.3g}"),
)
_POS_NUM = st.one_of(st.sampled_from(["1e-3", "1e-6", "0.5", "0.1", "1", "0", "-1", "nan",
                                      "inf", "1e-300", "0.999999", "2", "x"]),
                     st.floats(1e-9, 0.99).map(lambda v: f"{v:.2g}"))
_SMALL_SHAPE = st.lists(st.one_of(st.integers(2, 32).map(str),
                                  st.sampled_from(["1", "0", "-4", "x", "2.5", "1000000",
                                                   "100000000000000000000"])),
                        min_size=1, max_size=4)
_MAX_ITER = st.one_of(st.integers(1, 400).map(str),
                      st.sampled_from(["0", "-5", "x", "1e3", "99999999999999999999"]))
_OUTPUT = st.sampled_from(["{tmp}/out.png", "{tmp}/out.svg", "{tmp}/out.pdf", "{tmp}/out.xyz",
                           "{tmp}/out", "{tmp}", "{tmp}/missing/out.png", "/proc/otgrid.png",
                           "/proc/otgrid.json", "{tmp}/out.json", "{tmp}/a file.png",
                           "{tmp}/out.PNG", "/dev/null", "{tmp}/ü.png", "-", ""])

# option -> strategy of its values (a list of tokens; [] for a flag)
_COMMON = {
    "--bounds": st.lists(_NUM, min_size=1, max_size=7),
    "--shape": _SMALL_SHAPE,
    "--norm": st.sampled_from(["euclidean", "cityblock", "l2", ""]).map(lambda v: [v]),
    "--backend": st.sampled_from(["auto", "numpy", "numba", "cuda", "gpu"]).map(lambda v: [v]),
    "--outside": st.sampled_from(["auto", "renormalize", "fold", "raise", "drop"]).map(
        lambda v: [v]),
    "--figure": _OUTPUT.map(lambda v: [v]),
    "--no-figure": st.just([]),
    "--quiet": st.just([]),
    "--json": _OUTPUT.map(lambda v: [v]),
}
_CRITIC = {
    **_COMMON,
    "--tol": _POS_NUM.map(lambda v: [v]),
    "--max-iter": _MAX_ITER.map(lambda v: [v]),
    "--time-limit": _POS_NUM.map(lambda v: [v]),
    "--float32": st.just([]),
    "--flow": st.just([]),
}
_SCO = {
    **_COMMON,
    "--generator": st.sampled_from(["location-scale", "affine", "mlp"]).map(lambda v: [v]),
    "--init-loc": st.lists(_NUM, min_size=1, max_size=3),
    "--init-scale": st.lists(_NUM, min_size=1, max_size=3),
    "--steps": st.sampled_from(["0", "1", "2", "3", "-1", "x"]).map(lambda v: [v]),
    "--lr": _POS_NUM.map(lambda v: [v]),
    "--batch": st.sampled_from(["1", "2", "16", "0", "-3"]).map(lambda v: [v]),
    "--optimizer": st.sampled_from(["sgd", "adam", "lbfgs"]).map(lambda v: [v]),
    "--masses": st.sampled_from(["exact", "samples", "none"]).map(lambda v: [v]),
    "--n-mass-samples": st.sampled_from(["1", "100", "0", "-1"]).map(lambda v: [v]),
    "--critic-tol": _POS_NUM.map(lambda v: [v]),
    "--prox": st.just([]),
    "--prox-h": _POS_NUM.map(lambda v: [v]),
    "--prox-steps": st.sampled_from(["1", "2", "0", "-1"]).map(lambda v: [v]),
    "--stop-param-tol": _POS_NUM.map(lambda v: [v]),
    "--stop-w-tol": _POS_NUM.map(lambda v: [v]),
    "--seed": st.sampled_from(["0", "1", "-1", "x", "99999999999999999999999"]).map(
        lambda v: [v]),
}
_AUDIT = {
    **{k: v for k, v in _COMMON.items() if k not in ("--norm", "--backend", "--quiet")},
    "--mu": st.sampled_from(_SPECS).map(lambda v: [v]),
    "--nu": st.sampled_from(_SPECS).map(lambda v: [v]),
    "--arch": st.sampled_from(["1d", "2d", "toy", "8,8", "0", "x,y", "", "8"]).map(
        lambda v: [v]),
    "--torchscript": st.just([]),
    "--samples": st.sampled_from(["1", "16", "64", "0", "-1"]).map(lambda v: [v]),
    "--seed": st.sampled_from(["0", "3", "-1"]).map(lambda v: [v]),
    "--tau": _POS_NUM.map(lambda v: [v]),
    "--tol": _POS_NUM.map(lambda v: [v]),
    "--resolution": st.sampled_from(["grid", "auto", "fine"]).map(lambda v: [v]),
    "--time-budget": _POS_NUM.map(lambda v: [v]),
}
_CRITIC_FILES = ["{pt:state1d}", "{pt:state2d}", "{pt:missing}", "{pt:empty}", "{pt:garbage}",
                 "{tmp}", "{npy:1d}"]
_OPTIONS = {"critic": _CRITIC, "sco": _SCO, "audit": _AUDIT}
# the defaults that keep a solve tiny, added when the example leaves the option out
_TINY = {"critic": {"--shape": ["16"], "--max-iter": ["300"], "--time-limit": ["3"]},
         "sco": {"--shape": ["16"], "--steps": ["2"], "--batch": ["8"],
                 "--n-mass-samples": ["500"]},
         "audit": {"--shape": ["16"], "--samples": ["64"], "--time-budget": ["2"]}}


@st.composite
def cli_inputs(draw: Any, in_process: bool = True) -> dict:
    """An ``otgrid`` command line (with ``{tmp}``, ``{npy:...}``, ``{pt:...}`` placeholders)."""
    command = draw(st.sampled_from(["critic"] * 5 + ["sco"] * 3 + ["audit"] * 2
                                   + ["info", "", "bogus", "--version", "--help"]))
    spec = st.one_of(st.sampled_from(_SPECS), st.sampled_from(_SPECS), spec_texts())
    if command == "critic":
        positional = [draw(spec) for _ in range(draw(st.sampled_from([2, 2, 2, 1, 0, 3])))]
    elif command == "sco":
        positional = [draw(spec) for _ in range(draw(st.sampled_from([1, 1, 1, 0, 2])))]
    elif command == "audit":
        positional = [draw(st.sampled_from(_CRITIC_FILES))]
    else:
        positional = [draw(spec) for _ in range(draw(st.integers(0, 1)))]
    table = _OPTIONS.get(command, {})
    chosen = draw(st.lists(st.sampled_from(sorted(table)), max_size=7, unique=True)) if table \
        else []
    options = [[name, *draw(table[name])] for name in chosen]
    if command == "audit" and "--mu" not in chosen and draw(st.integers(0, 5)):
        options.append(["--mu", draw(st.sampled_from(_SPECS[:8]))])
    for name, value in _TINY.get(command, {}).items():
        if name not in chosen:
            options.append([name, *value])
    if command in _TINY and draw(st.integers(0, 2)) and "--figure" not in chosen:
        options.append(["--no-figure"])
    if draw(st.integers(0, 20)) == 0:
        options.append([draw(st.sampled_from(["--bogus", "-x", "--shape=", "--tol=1e-3"]))])
    order = draw(st.permutations(range(len(options))))
    argv = [command] if command else []
    argv += positional
    for i in order:
        argv += options[i]
    if draw(st.integers(0, 30)) == 0 and argv:
        argv.insert(draw(st.integers(0, len(argv))), draw(st.sampled_from(["--", "-", "-h"])))
    return {"argv": argv, "raw": (not in_process) and draw(st.integers(0, 5)) == 0}


# --------------------------------------------------------------------------- files
def _make_npy(kind: str, folder: Path) -> str:
    path = folder / f"{kind}.npy"
    rng = np.random.default_rng(0)
    arrays = {"1d": rng.normal(size=50), "2d": rng.normal(size=(50, 2)),
              "3d": rng.normal(size=(30, 3)), "5d": rng.normal(size=(30, 5)),
              "transposed": rng.normal(size=(2, 50)), "nan": np.array([0.0, np.nan]),
              "huge": np.array([0.0, 1e200])}
    if kind == "pickle":
        np.save(path, np.array([1.0, None], dtype=object), allow_pickle=True)
    elif kind in arrays:
        np.save(path, arrays[kind])
    return str(path)


def _make_pt(kind: str, folder: Path) -> str:
    path = folder / f"{kind}.pt"
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "garbage":
        path.write_bytes(b"PK\x03\x04 not a zip" * 10)
    elif kind.startswith("state"):
        import torch

        from otgrid.auditing.baselines import make_critic

        torch.manual_seed(0)
        net = make_critic(int(kind[-2]), (8, 8))
        torch.save(net.state_dict(), path)
    return str(path)


def materialise(argv: list[str], folder: Path) -> list[str]:
    """Replace the placeholders by paths in ``folder`` (creating the files they name)."""
    out = []
    for arg in argv:
        arg = arg.replace("{tmp}", str(folder))
        arg = re.sub(r"\{npy:(\w+)\}", lambda m: _make_npy(m.group(1), folder), arg)
        arg = re.sub(r"\{pt:(\w+)\}", lambda m: _make_pt(m.group(1), folder), arg)
        out.append(arg)
    return out


# --------------------------------------------------------------------------- the contract
_W_LINE = re.compile(r"^W (?:≈|~=) (\S+)\s+in \[(\S+), (\S+)\]", re.MULTILINE)
_W_ONLY = re.compile(r"^W in \[(\S+), (\S+)\]", re.MULTILINE)


def _unwritable(argv: list[str]) -> bool:
    return any(a.startswith("/proc/") or a.startswith("/dev/") for a in argv)


def check_output(argv: list[str], rc: Any, out: str, err: str) -> Outcome:
    """The command-line contract on one run's status and output."""
    shown = " ".join(repr(a) if (" " in a or not a) else a for a in argv)[:400]
    if "Traceback" in out or "Traceback" in err:
        return Outcome("traceback", f"otgrid {shown}\n{(err or out)[-1500:]}")
    lines = err.splitlines()
    if rc == 2:
        if len(lines) != 1 or not lines[0].startswith("otgrid: error: "):
            return Outcome("crash", f"exit 2 without exactly one error line: otgrid {shown}\n"
                           f"stderr: {err[-1500:]!r}")
        return Outcome("error", lines[0][:200])
    if rc == 1:
        # the write fails after the solve (a path such as /proc/x passes the early check as
        # root): the solve's own warnings may come first, the error line is the last one
        if not (_unwritable(argv) and lines and lines[-1].startswith("otgrid: error: could not "
                                                                     "write")
                and all(ln.startswith(("otgrid: warning: ", "[otgrid ")) for ln in lines[:-1])):
            return Outcome("crash", f"exit 1: otgrid {shown}\nstderr: {err[-1500:]!r}")
        return Outcome("error", lines[0][:200])
    if rc != 0:
        return Outcome("crash", f"exit {rc!r}: otgrid {shown}\nstderr: {err[-1500:]!r}")
    if len(set(lines)) != len(lines) or any(not ln.startswith(("otgrid: warning: ", "[otgrid "))
                                            for ln in lines):
        return Outcome("crash", f"exit 0 with repeated or foreign lines on stderr: otgrid "
                       f"{shown}\nstderr: {err[-1500:]!r}")
    return _check_w(shown, out)


def _check_w(shown: str, out: str) -> Outcome:
    """On success the printed W (if any) lies inside the printed bounds, all finite."""
    for m in _W_LINE.finditer(out):
        w, lo, hi = (float(v) for v in m.groups())
        if not (all(math.isfinite(v) for v in (w, lo, hi)) and lo <= w <= hi):
            return Outcome("wrong", f"W {w} outside [{lo}, {hi}]: otgrid {shown}")
    for m in _W_ONLY.finditer(out):
        lo, hi = (float(v) for v in m.groups())
        if not (math.isfinite(lo) and math.isfinite(hi) and lo <= hi):
            return Outcome("wrong", f"bounds [{lo}, {hi}]: otgrid {shown}")
    return Outcome("ok", checked=bool(_W_LINE.search(out) or _W_ONLY.search(out)))


def run_cli(example: dict) -> Outcome:
    """``main(argv)`` in-process, in a fresh folder, standard output and error captured."""
    from otgrid.cli.main import main

    cwd = os.getcwd()
    with tempfile.TemporaryDirectory(prefix="otgrid-fuzz-") as tmp:
        argv = materialise(example["argv"], Path(tmp))
        out, err = io.StringIO(), io.StringIO()
        os.chdir(tmp)
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                rc = main(argv)
        finally:
            os.chdir(cwd)
        return check_output(argv, rc, out.getvalue(), err.getvalue())


def run_cli_process(example: dict) -> Outcome:
    """``python -m otgrid ...`` as a real process (60 s limit); with ``raw``, one argument
    carries bytes that are not UTF-8."""
    with tempfile.TemporaryDirectory(prefix="otgrid-fuzz-") as tmp:
        argv = materialise(example["argv"], Path(tmp))
        args: list[Any] = [a.replace("\x00", "") for a in argv]  # no NUL in a real argv
        if example["raw"] and args:
            args[-1] = os.fsencode(args[-1]) + b"\xff\xfe"
        env = {**os.environ, "PYTHONIOENCODING": "utf-8"}
        try:
            done = subprocess.run([python(), "-m", "otgrid", *args], capture_output=True,
                                  cwd=tmp, timeout=60, env=env)
        except subprocess.TimeoutExpired:
            return Outcome("hang", f"python -m otgrid {argv!r} ran past 60 s")
        out = done.stdout.decode("utf-8", "replace")
        err = done.stderr.decode("utf-8", "replace")
        return check_output(argv, done.returncode, out, err)


CLI = Target("CLI (in-process)", cli_inputs(), run_cli, weight=2.0, timeout=60.0)
CLI_PROCESS = Target("CLI (subprocess)", cli_inputs(in_process=False), run_cli_process,
                     weight=0.1, timeout=90.0)
