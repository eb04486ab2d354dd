"""otgrid.distributed without a cluster: problem specs and files, the results folder (crash
safety, resume bookkeeping), batch sizes, input checks, and the command line's bad input."""

from __future__ import annotations

import contextlib
import json
import os

import numpy as np
import pytest

import otgrid as og
from otgrid.cli import main
from otgrid.distributed import (
    ProblemError,
    ProblemSpec,
    load_arrays,
    read_problems,
    read_records,
    solve_many,
    sweep,
)
from otgrid.distributed.cluster import Progress, auto_batch_size, connect
from otgrid.distributed.problems import as_problems
from otgrid.distributed.store import SweepStore

pytest.importorskip("distributed", reason="needs the 'dask' extra")


# --------------------------------------------------------------------------- specs and files
def test_problem_spec_from_dict_normalises_bounds_and_shape():
    spec = ProblemSpec.from_dict({"mu": "normal(0, 1)", "nu": "normal(1, 1)",
                                  "bounds": [-4, 4], "shape": 32, "tol": 1e-4, "id": 7})
    assert spec.bounds == ((-4.0, 4.0),) and spec.shape == (32,) and spec.id == "7"
    assert ProblemSpec.from_dict(spec.to_dict()) == spec
    two = ProblemSpec.from_dict({"mu": "8gaussians", "nu": "normal(0, 1)",
                                 "bounds": [[-3, 3], [-2, 2]], "shape": [16, 8]})
    assert two.bounds == ((-3.0, 3.0), (-2.0, 2.0)) and two.shape == (16, 8)


@pytest.mark.parametrize("data, words", [
    ({"nu": "normal(0, 1)"}, ["'mu'", "missing"]),
    ({"mu": "normal(0, 1)", "shpe": 3}, ["'shpe'", "the keys are"]),
    ({"mu": "normal(0, 1)", "tol": 2}, ["tol", "(0, 1)"]),
    ({"mu": "normal(0, 1)", "shape": [0]}, ["shape", "positive integer"]),
    ({"mu": "normal(0, 1)", "bounds": "wide"}, ["bounds", "[low, high]"]),
    ({"mu": "normal(0, 1)", "norm": "l2"}, ["norm", "cityblock"]),
    ({"mu": 3}, ["mu", "spec string"]),
    (["normal(0, 1)"], ["JSON object"]),
])
def test_problem_spec_errors_name_the_key_and_the_fix(data, words):
    with pytest.raises(ValueError) as info:
        ProblemSpec.from_dict(data)
    for w in words:
        assert w in str(info.value)


def test_read_problems_keeps_bad_lines_as_error_records(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text('{"mu": "normal(0, 1)", "nu": "normal(1, 1)"}\n'
                    "\n# comment\n"
                    '{"mu": "normal(0, 1)", "nu": \n'
                    '{"mu": "normal(0, 1)", "size": 3, "id": "x"}\n'
                    '{"mu": "parallel_lines(0.5)"}\n', encoding="utf-8")
    items = read_problems(path)
    assert [type(p).__name__ for p in items] == ["ProblemSpec", "ProblemError", "ProblemError",
                                                 "ProblemSpec"]
    assert items[1].index == 1 and items[1].stage == "input" and "line 4" in items[1].message
    assert items[2].label == "x" and "'size'" in items[2].message
    assert items[3].nu is None


def test_fingerprints_identify_problems_across_runs():
    grid = og.Grid((-6.0, 6.0), 16)
    mu = grid.discretize(og.Normal(0.0, 1.0))
    a = as_problems([("normal(0, 1)", "normal(1, 1)"), (mu, mu), (og.Normal(0.0, 1.0), mu)],
                    grid, {"tol": 1e-4})
    b = as_problems([("normal(0, 1)", "normal(1, 1)"), (mu, mu.copy()),
                     (og.Normal(0.0, 1.0), mu)], grid, {"tol": 1e-4})
    assert [p.key for p in a] == [p.key for p in b]
    c = as_problems([("normal(0, 1)", "normal(1, 1)")], grid, {"tol": 1e-6})
    d = as_problems([("normal(0, 1)", "normal(2, 1)")], grid, {"tol": 1e-4})
    assert len({a[0].key, c[0].key, d[0].key}) == 3


def test_materialize_matches_the_grid_and_the_defaults_of_the_cli():
    """A spec without bounds gets a box holding both distributions and 128 x 128 in 2D; a
    dimension-free spec next to a 2D one is 2D (as in otgrid critic)."""
    from otgrid.grid.grid import bounds_holding

    (p,) = as_problems([("normal(0, 1)", "8gaussians")])
    mu, nu, grid = p.materialize(None)
    expected = og.Grid(bounds_holding(og.Normal([0.0, 0.0], 1.0), og.datasets.eight_gaussians()),
                       (128, 128))
    assert grid == expected
    np.testing.assert_array_equal(mu, expected.discretize(og.Normal([0.0, 0.0], 1.0)))
    (q,) = as_problems([{"mu": "parallel_lines(0.5)", "bounds": [[-1, 1], [-0.5, 1.5]],
                         "shape": 32}])
    mu, nu, grid = q.materialize(None)
    assert grid.shape == (32, 32) and mu.sum() == pytest.approx(nu.sum()) == pytest.approx(1.0)


# --------------------------------------------------------------------------- the folder
def _record(i, status="ok"):
    return {"index": i, "key": f"k{i}", "status": status, "w1": float(i)}


def test_a_line_cut_by_a_crash_is_dropped_and_duplicates_compacted(tmp_path):
    store = SweepStore(tmp_path)
    with store.opened():
        store.write(_record(0), {"critic": np.ones((3, 3))})
        store.write(_record(1, "error"))
        store.write(_record(1))          # a rerun of an error record
    lines = (tmp_path / "results.jsonl").read_text().splitlines()
    assert [json.loads(x)["index"] for x in lines] == [0, 1]    # compacted at close
    with (tmp_path / "results.jsonl").open("a") as fh:
        fh.write('{"index": 2, "key": "k2", "stat')            # the crash, mid-line
    store = SweepStore(tmp_path)
    with store.opened():
        assert sorted(store.done) == [0, 1]
        store.write(_record(2))
    assert [r["index"] for r in read_records(tmp_path)] == [0, 1, 2]
    assert [r["status"] for r in read_records(tmp_path)] == ["ok", "ok", "ok"]
    np.testing.assert_array_equal(load_arrays(tmp_path, 0)["critic"], np.ones((3, 3)))
    with pytest.raises(KeyError, match="problem 1 has no arrays"):
        load_arrays(tmp_path, 1)


def test_a_folder_in_use_is_refused(tmp_path):
    with SweepStore(tmp_path).opened(), pytest.raises(ValueError, match="in use"):
        with SweepStore(tmp_path).opened():
            pass


def test_read_records_of_a_folder_without_results(tmp_path):
    with pytest.raises(FileNotFoundError, match="sweep folder"):
        read_records(tmp_path)


# --------------------------------------------------------------------------- options
def test_auto_batch_size_keeps_batches_serial_and_balanced():
    assert auto_batch_size(48, 256 * 256, 2) == 3      # 3 x 65536 < 2^18
    assert auto_batch_size(48, 128 * 128, 2) == 6      # 48 / (4 x 2)
    assert auto_batch_size(48, 128 * 128, 1) == 12
    assert auto_batch_size(10_000, 16 * 16, 2) == 64   # the cap
    assert auto_batch_size(3, 512 * 512, 2) == 1


@pytest.mark.parametrize("kw, exc, words", [
    ({"tol": 0}, ValueError, ["tol", "(0, 1)"]),
    ({"tolerance": 1e-4}, TypeError, ["'tolerance'", "max_iter"]),
    ({"batch_size": 0}, ValueError, ["batch_size"]),
    ({"retries": -1}, ValueError, ["retries"]),
    ({"worker_threads": 0}, ValueError, ["worker_threads"]),
    ({"errors": "ignore"}, ValueError, ["errors", "'record'"]),
    ({"norm": "l1"}, ValueError, ["norm"]),
])
def test_bad_options_fail_before_any_cluster_starts(kw, exc, words):
    grid = og.Grid((-4.0, 4.0), 16)
    with pytest.raises(exc) as info:
        solve_many([("normal(0, 1)", "normal(1, 1)")], grid, **kw)
    for w in words:
        assert w in str(info.value)


def test_bad_client_arguments(tmp_path):
    with pytest.raises(TypeError, match=r"distributed\.Client"), connect(3.5):
        pass
    with pytest.raises(ValueError, match="workers must be a positive"), connect(None, 0):
        pass
    with pytest.raises(ValueError, match="not a scheduler address"), connect("nowhere"):
        pass
    with pytest.raises(ConnectionError, match="cannot reach the Dask scheduler"):
        with connect("tcp://127.0.0.1:9", timeout=1):
            pass
    with pytest.raises(ValueError, match="limit"):
        sweep([("normal(0, 1)", "normal(1, 1)")], tmp_path / "o", limit=0)


def test_input_errors_need_no_cluster(tmp_path):
    """Problems that all fail at their description are recorded without starting workers."""
    items = [ProblemError(0, "input", "JSONDecodeError", "line 1 is not valid JSON"), "junk"]
    with pytest.warns(RuntimeWarning, match="2 problem"):
        results = solve_many(items, None)
    assert [r.stage for r in results] == ["input", "input"]
    summary = sweep(items, tmp_path / "o")
    assert (summary.failed, summary.remaining) == (2, 0)
    assert [r["status"] for r in read_records(tmp_path / "o")] == ["error", "error"]


# --------------------------------------------------------------------------- command line
@pytest.mark.parametrize("case, words", [
    ("missing", ["no such file"]),
    ("folder", ["is a folder"]),
    ("empty", ["holds no problem"]),
    ("all-bad", ["no line is a valid problem", "line 1"]),
    ("out-file", ["--out", "is a file"]),
    ("workers", ["--workers must be >= 1"]),
    ("both", ["--scheduler", "one of the two"]),
    ("tol", ["--tol"]),
    ("batch", ["--batch-size"]),
    ("scheduler", ["--scheduler", "not a scheduler address"]),
    ("refused", ["--scheduler", "cannot reach the Dask scheduler"]),
    ("in-use", ["in use by another sweep"]),
    ("other-sweep", ["holds the result of another problem 0"]),
    ("not-utf8", ["not UTF-8"]),
])
def test_cli_bad_input_is_one_line_exit_2(tmp_path, capsys, case, words):
    good = tmp_path / "good.jsonl"
    good.write_text('{"mu": "normal(0, 1)", "nu": "normal(1, 1)"}\n', encoding="utf-8")
    (tmp_path / "empty.jsonl").write_text("# nothing\n\n", encoding="utf-8")
    (tmp_path / "bad.jsonl").write_text("{oops\n[1, 2]\n", encoding="utf-8")
    (tmp_path / "file").write_text("x", encoding="utf-8")
    out = str(tmp_path / "out")
    argv = {"missing": [str(tmp_path / "nope.jsonl"), "--out", out],
            "folder": [str(tmp_path), "--out", out],
            "empty": [str(tmp_path / "empty.jsonl"), "--out", out],
            "all-bad": [str(tmp_path / "bad.jsonl"), "--out", out],
            "out-file": [str(good), "--out", str(tmp_path / "file")],
            "workers": [str(good), "--out", out, "--workers", "0"],
            "both": [str(good), "--out", out, "--workers", "1", "--scheduler", "tcp://x:1"],
            "tol": [str(good), "--out", out, "--tol", "2"],
            "batch": [str(good), "--out", out, "--batch-size", "many"],
            "scheduler": [str(good), "--out", out, "--scheduler", "nowhere"],
            "refused": [str(good), "--out", out, "--scheduler", "tcp://127.0.0.1:9"],
            "in-use": [str(good), "--out", out],
            "other-sweep": [str(good), "--out", out],
            "not-utf8": [str(tmp_path / "latin1.jsonl"), "--out", out]}[case]
    (tmp_path / "latin1.jsonl").write_bytes(b'{"mu": "normal(0, 1)", "id": "\xe9"}\n')
    if case == "other-sweep":   # a folder holding the record of another problem 0
        with SweepStore(out).opened() as store:
            store.write({"index": 0, "key": "another", "status": "ok", "w1": 1.0})
    lock = SweepStore(out).opened() if case == "in-use" else contextlib.nullcontext()
    with lock:
        rc = main(["sweep", *argv])
    err = capsys.readouterr().err
    assert rc == 2, err
    assert err.startswith("otgrid: error: ") and err.count("\n") == 1
    assert "Traceback" not in err
    for w in words:
        assert w in err, err


def test_cli_help_shows_the_schema_and_examples(capsys):
    assert main(["sweep", "--help"]) == 0
    out = capsys.readouterr().out
    for words in ("PROBLEMS.jsonl", "--scheduler ADDRESS", "--workers N", '"mu"', "examples:",
                  "otgrid sweep problems.jsonl --out results/", "Exit status"):
        assert words in out
    assert main(["--help"]) == 0
    assert "sweep" in capsys.readouterr().out


# --------------------------------------------------------------------------- progress
@pytest.mark.parametrize("tty", [True, False])
def test_progress_redraws_on_a_terminal_and_prints_lines_otherwise(monkeypatch, tty):
    class Stream(list):
        def write(self, text):
            self.append(text)

        def flush(self):
            pass

        def isatty(self):
            return tty

    stream = Stream()
    monkeypatch.setattr("sys.stderr", stream)
    bar = Progress(4, None)
    assert bar.enabled is tty
    bar = Progress(4, True)
    bar.every = 0.0
    bar.update(1, 0)
    bar.update(2, 1)
    bar.close()                      # stopped early: shows where
    text = "".join(stream)
    assert "1/4 problems" in text and "3/4 problems, 1 failed" in text
    assert text.count("\r") == (3 if tty else 0)
    assert text.count("\n") == (1 if tty else 3)
    stream.clear()
    quiet = Progress(4, False)
    quiet.update(4, 0)
    quiet.close()
    assert stream == []


# --------------------------------------------------------------------------- audit tasks
def test_a_critic_file_is_loaded_and_audited_by_the_worker_function(tmp_path):
    """What an audit_many task runs on a worker, here in-process: a state-dict file loaded as
    ``otgrid audit`` loads it gives the audit of the network it was saved from; a foreign file
    and a file of another dimension are error records of stage "critic"."""
    torch = pytest.importorskip("torch")
    from otgrid.auditing.baselines import make_critic
    from otgrid.distributed.worker import audit_one

    grid = og.Grid((-6.0, 8.0), 64)
    mu, nu = og.Normal(0.0, 1.0), og.Normal(2.0, 1.0)
    exact = og.solve_critic(grid.discretize(mu), grid.discretize(nu), grid, tol=1e-4)
    net = make_critic(1, (8, 8), seed=3, dtype=torch.float64).eval()
    torch.save(net.state_dict(), tmp_path / "critic.pt")
    torch.save(make_critic(2, (8, 8), seed=3).state_dict(), tmp_path / "critic2d.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a torch file")
    kw = {"samples": 256}
    rep = audit_one(0, str(tmp_path / "critic.pt"), mu, nu, grid, exact, None, kw, 1, {})
    ref = og.audit(net, mu, nu, grid, exact=exact, **kw)
    for key in ("w_ratio", "lipschitz", "grad_cosine", "shape_error"):
        np.testing.assert_allclose(getattr(rep, key), getattr(ref, key), rtol=1e-12,
                                   err_msg=key)
    for name, words in (("junk.pt", "torch.load(weights_only=True)"),
                        ("critic2d.pt", "2D points"),
                        ("missing.pt", "does not exist")):
        err = audit_one(5, str(tmp_path / name), mu, nu, grid, exact, None, kw, 1, {})
        assert isinstance(err, ProblemError) and err.stage == "critic", err
        assert err.index == 5 and err.label == str(tmp_path / name) and words in err.message


def test_worker_threads_auto_shares_the_cores_of_a_machine():
    from otgrid.distributed.cluster import usable_cores
    from otgrid.distributed.worker import resolve_threads

    assert resolve_threads(None, {}) is None and resolve_threads(3, {}) == 3
    assert resolve_threads("auto", {}) is None          # not inside a Dask task
    assert usable_cores() == len(os.sched_getaffinity(0))


def test_worker_tasks_relax_glibc_trimming_only_where_dask_set_it(monkeypatch):
    # Dask's nanny sets MALLOC_TRIM_THRESHOLD_, which pins glibc's mmap threshold and made a
    # 256^2 batch 1.3-1.7x slower in a worker; a task raises both thresholds once per process
    from otgrid.distributed import worker

    monkeypatch.setattr(worker, "_MALLOC_DONE", [])
    monkeypatch.delenv("MALLOC_TRIM_THRESHOLD_", raising=False)
    assert worker.relax_malloc_trim() is False and worker._MALLOC_DONE == []
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "65536")
    try:
        glibc = os.confstr("CS_GNU_LIBC_VERSION").startswith("glibc")
    except (ValueError, OSError, AttributeError):
        glibc = False
    assert worker.relax_malloc_trim() is glibc
    assert worker.relax_malloc_trim() is False  # once per process
