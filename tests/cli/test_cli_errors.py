"""The command line's own failures: unusable paths, figure formats, Ctrl-C, clashing outputs,
oversized counts. Each is one ``otgrid: error:`` line (or ``otgrid: interrupted``), never a
traceback, with the exit status the help epilogs give: 2 for bad input, 1 for an output that
could not be written, 130 for Ctrl-C."""

from __future__ import annotations

import json
import logging
import os
import signal

import pytest

from otgrid.cli.main import main

NO_USER = "~otgrid_no_such_user_3f9a"   # '~user' that cannot be expanded
LONG = "a" * 300                         # a file name over 255 bytes
FAST = ["--shape", "32", "--quiet"]


def run(argv: list[str]) -> int:
    """``main(argv)``; a ``KeyboardInterrupt`` that escapes it fails the test (instead of
    stopping pytest)."""
    try:
        return main(argv)
    except KeyboardInterrupt:
        pytest.fail("KeyboardInterrupt escaped main()")


def one_line(capsys: pytest.CaptureFixture, rc: int, status: int, *words: str) -> str:
    err = capsys.readouterr().err
    assert rc == status, err
    assert err.startswith("otgrid: "), err
    assert err.count("\n") == 1 and err.endswith("\n"), err
    assert "Traceback" not in err
    for w in words:
        assert w in err, err
    return err


@pytest.fixture
def critic_file(tmp_path):
    torch = pytest.importorskip("torch")
    from otgrid.auditing.baselines import make_critic

    path = tmp_path / "critic.pt"
    torch.save(make_critic(1, (8, 8), seed=0).state_dict(), path)
    return str(path)


AUDIT = ["--mu", "normal(0, 1)", "--nu", "normal(1, 1)", "--bounds", "-5", "6", "--shape", "32",
         "--samples", "64"]


# --------------------------------------------------------------------------- 1. paths
@pytest.mark.parametrize("bad", [f"{NO_USER}/x", LONG])
@pytest.mark.parametrize("where", ["critic --figure", "critic --json", "critic MU .npy",
                                   "sco --figure", "sco --json", "audit CRITIC", "audit --json",
                                   "sweep PROBLEMS", "sweep --out"])
def test_unusable_paths_exit_2_with_one_line(where, bad, capsys, tmp_path, monkeypatch,
                                             request):
    """'~nosuchuser/...' was a RuntimeError traceback (Path.expanduser), a name over 255
    bytes an OSError one (File name too long), both with status 1."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "p.jsonl").write_text('{"mu": "normal(0, 1)", "nu": "normal(1, 1)"}\n')
    pair = ["normal(0, 1)", "normal(1, 1)", *FAST]
    argv = {
        "critic --figure": ["critic", *pair, "--figure", bad + ".png"],
        "critic --json": ["critic", *pair, "--no-figure", "--json", bad + ".json"],
        "critic MU .npy": ["critic", bad + ".npy", "normal(1, 1)", *FAST],
        "sco --figure": ["sco", "normal(1, 1)", *FAST, "--figure", bad + ".png"],
        "sco --json": ["sco", "normal(1, 1)", *FAST, "--no-figure", "--json", bad + ".json"],
        "audit CRITIC": ["audit", bad + ".pt", *AUDIT, "--no-figure"],
        "audit --json": ["audit", "critic.pt", *AUDIT, "--no-figure", "--json", bad + ".json"],
        "sweep PROBLEMS": ["sweep", bad + ".jsonl", "--out", "out"],
        "sweep --out": ["sweep", "p.jsonl", "--out", bad],
    }[where]
    if where == "audit --json":
        request.getfixturevalue("critic_file")
    words = ["cannot be expanded"] if bad != LONG else ["File name too long"]
    one_line(capsys, run(argv), 2, "otgrid: error:", *words)
    assert sorted(p.name for p in tmp_path.iterdir()) in (["p.jsonl"], ["critic.pt", "p.jsonl"])


# --------------------------------------------------------------------------- 2. and 8. figures
def test_a_figure_format_that_cannot_be_written_here_is_refused_up_front(capsys, tmp_path,
                                                                        monkeypatch):
    """--figure x.pgf without xelatex was a ~100-line traceback after the solve, although the
    list of accepted extensions named pgf."""
    from otgrid.cli import common

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(common.shutil, "which", lambda name: None)
    rc = run(["critic", "normal(0, 1)", "normal(1, 1)", *FAST, "--figure", "x.pgf"])
    err = one_line(capsys, rc, 2, "--figure 'x.pgf'", "pgf format needs", "png")
    assert "pgf," not in err and ", pgf" not in err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("command", ["critic", "sco"])
def test_an_exception_while_writing_the_figure_is_one_line(command, capsys, tmp_path,
                                                           monkeypatch):
    """Any failure of the figure is one line with status 1, and the JSON is still written."""
    from otgrid.cli import critic, sco

    def fail(*args):
        raise RuntimeError("no renderer\nsecond line")

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(critic, "_write_figure", fail)
    monkeypatch.setattr(sco, "_sco_figure", fail)
    dists = ["normal(0, 1)", "normal(1, 1)"] if command == "critic" else ["normal(1, 1)",
                                                                          "--steps", "2"]
    rc = run([command, *dists, *FAST, "--figure", "f.png", "--json", "r.json"])
    one_line(capsys, rc, 1, "otgrid: error: could not write the figure 'f.png'",
             "RuntimeError: no renderer")
    assert json.loads((tmp_path / "r.json").read_text())["figure"] is None


def test_an_eps_figure_logs_no_postscript_transparency_warning(capsys, tmp_path, monkeypatch,
                                                                caplog):
    monkeypatch.chdir(tmp_path)
    with caplog.at_level(logging.WARNING):
        rc = run(["critic", "normal(0, 1)", "normal(1, 1)", *FAST, "--figure", "x.eps"])
    assert rc == 0 and capsys.readouterr().err == ""
    assert not [r for r in caplog.records if "PostScript" in r.getMessage()]
    assert (tmp_path / "x.eps").read_bytes()[:4] == b"%!PS"


# --------------------------------------------------------------------------- 3. and 4. Ctrl-C
def test_ctrl_c_in_the_critic_solve_writes_the_outputs_and_exits_130(capsys, tmp_path,
                                                                     monkeypatch):
    """It exited 0, as if the solve had finished."""
    import otgrid.critic.solve as solve_mod

    real = solve_mod.solve_critic

    def interrupt(info):
        if info.iteration >= 20:
            raise KeyboardInterrupt

    monkeypatch.setattr(solve_mod, "solve_critic",
                        lambda *a, **k: real(*a, **{**k, "callback": interrupt}))
    monkeypatch.chdir(tmp_path)
    rc = run(["critic", "normal([0, 0], 1)", "8gaussians", "--shape", "32", "--figure", "f.png",
              "--json", "r.json"])
    captured = capsys.readouterr()
    assert rc == 130 and captured.err == ("otgrid: interrupted: stopped with the best bounds so "
                                          "far (printed above)\n")
    assert "stopped:      Interrupted" in captured.out
    assert json.loads((tmp_path / "r.json").read_text())["status"] == "interrupted"
    assert (tmp_path / "f.png").stat().st_size > 0


def test_ctrl_c_in_the_sco_fit_stops_after_the_step_and_writes_the_outputs(capsys, tmp_path,
                                                                           monkeypatch):
    """A real SIGINT during the fit was a traceback through otgrid/sco/loop.py, nothing
    written; now the fit stops after the current step, prints and writes what it has, 130."""
    import otgrid.sco.loop as loop

    real = loop.fit

    def fit(*args, callback=None, **kwargs):
        def cb(info):
            if info.step == 2:
                os.kill(os.getpid(), signal.SIGINT)
            return callback(info)
        return real(*args, callback=cb, **kwargs)

    monkeypatch.setattr(loop, "fit", fit)
    monkeypatch.chdir(tmp_path)
    rc = run(["sco", "normal(1, std=0.5)", *FAST, "--steps", "100", "--figure", "f.png",
              "--json", "r.json"])
    captured = capsys.readouterr()
    assert rc == 130, captured.err
    assert captured.err.splitlines()[-1].startswith("otgrid: interrupted: stopped after step")
    assert "Traceback" not in captured.err and "(interrupted)" in captured.out
    record = json.loads((tmp_path / "r.json").read_text())
    assert record["status"] == "interrupted" and 2 <= record["steps"] <= 3
    assert (tmp_path / "f.png").stat().st_size > 0
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler   # restored


def _interrupt(*args, **kwargs):
    raise KeyboardInterrupt


@pytest.mark.parametrize("where", ["critic setup", "sco fit", "audit solve", "sweep start"])
def test_ctrl_c_outside_a_solve_loop_is_one_line_and_130(where, capsys, tmp_path, monkeypatch,
                                                         request):
    """A KeyboardInterrupt anywhere else was a traceback wall."""
    import otgrid.cli.common as common
    import otgrid.cli.sweep as sweep
    import otgrid.critic.solve as solve_mod
    import otgrid.sco.loop as loop

    monkeypatch.chdir(tmp_path)
    (tmp_path / "p.jsonl").write_text('{"mu": "normal(0, 1)", "nu": "normal(1, 1)"}\n')
    if where == "critic setup":
        monkeypatch.setattr(common, "_discretize", _interrupt)
        monkeypatch.setattr("otgrid.cli.critic._discretize", _interrupt)
        argv = ["critic", "normal(0, 1)", "normal(1, 1)", *FAST]
    elif where == "sco fit":
        monkeypatch.setattr(loop, "fit", _interrupt)
        argv = ["sco", "normal(1, 1)", *FAST, "--json", "r.json"]
    elif where == "audit solve":
        request.getfixturevalue("critic_file")
        monkeypatch.setattr(solve_mod, "solve_critic", _interrupt)
        argv = ["audit", "critic.pt", *AUDIT]
    else:
        monkeypatch.setattr(sweep, "_read", _interrupt)
        argv = ["sweep", "p.jsonl", "--out", "out"]
    rc = run(argv)
    assert capsys.readouterr().err == "otgrid: interrupted\n"
    assert rc == 130


# --------------------------------------------------------------------------- 5. and 9. outputs
@pytest.mark.parametrize("command", ["critic", "sco"])
@pytest.mark.parametrize("json_path", ["out.png", "./sub/../out.png"])
def test_the_same_output_path_twice_is_refused(command, json_path, capsys, tmp_path,
                                               monkeypatch):
    """--figure P --json P wrote the figure, then the JSON over it, and reported both."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "sub").mkdir()
    dists = ["normal(0, 1)", "normal(1, 1)"] if command == "critic" else ["normal(1, 1)"]
    rc = run([command, *dists, *FAST, "--figure", "out.png", "--json", json_path])
    one_line(capsys, rc, 2, "--figure and --json name the same file")
    assert not (tmp_path / "out.png").exists()


@pytest.mark.parametrize("command", ["critic", "sco", "audit"])
def test_figure_and_no_figure_conflict(command, capsys, tmp_path, monkeypatch):
    """--no-figure --figure conf.png ignored --figure silently."""
    monkeypatch.chdir(tmp_path)
    args = {"critic": ["normal(0, 1)", "normal(1, 1)", *FAST], "sco": ["normal(1, 1)", *FAST],
            "audit": ["critic.pt", *AUDIT]}[command]
    rc = run([command, *args, "--no-figure", "--figure", "conf.png"])
    one_line(capsys, rc, 2, "argument --figure: not allowed with argument --no-figure")


# --------------------------------------------------------------------------- 6. workers
def test_sweep_workers_beyond_the_machine_are_refused(capsys, tmp_path, monkeypatch):
    """--workers 100000 started LocalCluster(n_workers=100000) and hung silently."""
    pytest.importorskip("distributed")
    from otgrid.distributed import cluster

    def no_cluster(*args, **kwargs):
        raise AssertionError("a LocalCluster was started")

    monkeypatch.setattr(cluster, "_local_cluster", no_cluster)
    monkeypatch.setattr(cluster, "usable_cores", lambda: 2)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "p.jsonl").write_text('{"mu": "normal(0, 1)", "nu": "normal(1, 1)"}\n')
    rc = run(["sweep", "p.jsonl", "--out", "out", "--workers", "100000"])
    one_line(capsys, rc, 2, "--workers 100000", "at most 8 (4 per core, 2 cores here)",
             "--scheduler")
    with pytest.raises(ValueError, match="at most 8"), cluster.connect(None, 9):
        pass


# --------------------------------------------------------------------------- 7. messages
@pytest.mark.parametrize(("argv", "words"), [
    (["sco", "normal(2, std=0.5)", "--seed", "-1"], ["--seed must be an integer >= 0"]),
    (["audit", "critic.pt", *AUDIT, "--seed", "-1"], ["--seed must be an integer >= 0"]),
    (["sco", "normal(2, std=0.5)", "--batch", "1000000000000"],
     ["--batch 1000000000000:", "8 GiB is available", "use --batch"]),
    (["sco", "normal(2, std=0.5)", "--masses", "samples", "--n-mass-samples", "100000000000"],
     ["--n-mass-samples 100000000000:", "use --n-mass-samples"]),
    (["audit", "critic.pt", *AUDIT[:-1], "100000000000"], ["--samples 100000000000:",
                                                           "use --samples"]),
    (["audit", "critic.pt", *AUDIT[:-1], "100000000000000000000000"],
     ["--samples 100000000000000000000000 is too large", "at most"]),
    (["audit", "critic.pt", "--mu", "normal([0, 0], 1)"],
     ["--nu is missing", "--mu 'normal([0, 0], 1)' --nu 'normal(1, 1)'"]),
    (["critic", "-", "-"], ["MU and NU are missing",
                            "e.g. otgrid critic 'normal(0, 1)' 'normal(1, 1)'"]),
    (["critic", "normal(0, 1", "-"], ["MU: invalid distribution"]),
])
def test_errors_name_the_option_to_change(argv, words, capsys, tmp_path, monkeypatch, request):
    from otgrid.critic import memory

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(memory, "available_memory", lambda: 8 * 2 ** 30)
    if argv[0] == "audit":
        request.getfixturevalue("critic_file")
    one_line(capsys, run([*argv, "--no-figure"] if argv[1] != "-" else argv), 2,
             "otgrid: error:", *words)
