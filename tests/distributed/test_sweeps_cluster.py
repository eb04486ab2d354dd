"""otgrid.distributed on a real Dask LocalCluster: 2 worker processes of one thread each.

One cluster serves the whole module. Every answer is checked against the same problem solved
one by one in this process by ``otgrid.solve_critic`` (or ``otgrid.audit``), the independent
reference here: the cluster must add no error of its own, whatever the batching, the worker
deaths or the interruptions.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import warnings

import numpy as np
import pytest

import otgrid as og
from otgrid.cli import main
from otgrid.distributed import (
    ProblemError,
    ProblemSpec,
    audit_many,
    load_arrays,
    read_records,
    solve_many,
    sweep,
)
from otgrid.distributed import store as store_module

distributed = pytest.importorskip("distributed", reason="needs the 'dask' extra")

GRID = og.Grid([(-5.5, 8.0), (-5.5, 5.5)], (24, 24))
TOL = 1e-4


@pytest.fixture(scope="module")
def client():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=":0") as cluster, \
            distributed.Client(cluster) as c:
        yield c


def reference(mu, nu, grid=GRID, **kw):
    """The problem solved alone, here (masses from the same distributions)."""
    kw.setdefault("tol", TOL)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", og.ConvergenceWarning)
        return og.solve_critic(grid.discretize(mu), grid.discretize(nu), grid, **kw)


def assert_same(res, ref):
    """Same certified bounds, iterations and critic as the one-by-one solve."""
    assert res.iterations == ref.iterations
    assert res.grid == ref.grid
    np.testing.assert_allclose([res.lower, res.upper, res.w1], [ref.lower, ref.upper, ref.w1],
                               rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(res.critic, ref.critic, rtol=0, atol=1e-11)


def shifted(s):
    return og.Normal([s, 0.0], 1.0)


ORIGIN = og.Normal([0.0, 0.0], 1.0)


# --------------------------------------------------------------------------- answers
@pytest.mark.parametrize("batch_size", ["auto", 1])
def test_answers_equal_one_by_one_solves(client, batch_size):
    """Specs (discretised on the workers), distributions and arrays, batched or not."""
    shifts = [0.5, 1.0, 1.5, 2.0]
    problems = [("normal([0, 0], 1)", f"normal([{s}, 0], 1)") for s in shifts[:2]]
    problems.append((ORIGIN, shifted(shifts[2])))
    problems.append((GRID.discretize(ORIGIN), GRID.discretize(shifted(shifts[3]))))
    results = solve_many(problems, GRID, client=client, batch_size=batch_size, tol=TOL)
    assert len(results) == len(shifts)
    for res, s in zip(results, shifts, strict=True):
        assert_same(res, reference(ORIGIN, shifted(s)))
        assert res.converged and abs(res.w1 - s) < 0.02  # the continuous W1 is the shift


def test_problem_specs_carry_their_own_grid_and_options(client):
    """A spec's bounds, shape, norm and tol override the sweep's; 1D next to 2D."""
    specs = [ProblemSpec("normal(0, 1)", "normal(1, 1)", bounds=((-6.0, 7.0),), shape=(64,),
                         tol=1e-8),
             ProblemSpec("normal([0, 0], 1)", "normal([1, 0], 1)",
                         bounds=((-5.5, 8.0), (-5.5, 5.5)), shape=(24,), norm="cityblock")]
    r1, r2 = solve_many(specs, None, client=client, tol=TOL)
    g1 = og.Grid((-6.0, 7.0), 64)
    assert_same(r1, reference(og.Normal(0.0, 1.0), og.Normal(1.0, 1.0), g1, tol=1e-8))
    assert_same(r2, reference(ORIGIN, shifted(1.0), norm="cityblock"))
    assert r1.tol == 1e-8 and r2.norm == "cityblock"


def test_a_bad_problem_is_isolated(client):
    """Bad problems become error records in their places; the others are solved right,
    including those batched with a bad one (the batch is redone one by one)."""
    good = GRID.discretize(ORIGIN)
    heavy = 2.0 * GRID.discretize(shifted(1.0))             # unequal total mass: solve fails
    problems = [("normal([0, 0], 1)", "normal([1, 0], 1)"),
                ("normal([0, 0], 1)", "bogus(3)"),             # not in the grammar
                (good, heavy),
                (good, np.ones((5, 5)) / 25),                  # not the grid's shape
                "not a pair",
                (good, GRID.discretize(shifted(0.5)))]
    with pytest.warns(RuntimeWarning, match="4 problem"):
        results = solve_many(problems, GRID, client=client, batch_size=6, tol=TOL)
    assert [type(r).__name__ for r in results] == [
        "CriticResult", "ProblemError", "ProblemError", "ProblemError", "ProblemError",
        "CriticResult"]
    assert [r.stage for r in results if isinstance(r, ProblemError)] == [
        "spec", "solve", "spec", "input"]
    assert "bogus" in results[1].message and "equal total mass" in results[2].message
    assert [r.index for r in results if isinstance(r, ProblemError)] == [1, 2, 3, 4]
    assert_same(results[0], reference(ORIGIN, shifted(1.0)))
    assert_same(results[5], reference(ORIGIN, shifted(0.5)))
    with pytest.raises(RuntimeError, match="1 of 2 problems failed"):
        solve_many(problems[:2], GRID, client=client, errors="raise", tol=TOL)


# --------------------------------------------------------------------------- resume
def test_resume_solves_only_the_missing_problems(client, tmp_path):
    out = tmp_path / "out"
    problems = [(ORIGIN, shifted(s)) for s in (0.5, 1.0, 1.5, 2.0, 2.5)]
    first = sweep(problems, out, GRID, client=client, batch_size=1, limit=2, tol=TOL)
    assert (first.solved, first.remaining, first.complete) == (2, 3, False)
    assert len(read_records(out)) == 2
    second = sweep(problems, out, GRID, client=client, batch_size=1, tol=TOL, save_flow=True)
    assert (second.done_before, second.solved, second.remaining) == (2, 3, 0)
    records = read_records(out)
    lines = (out / "results.jsonl").read_text().splitlines()
    assert sorted(json.loads(line)["index"] for line in lines) == [0, 1, 2, 3, 4]
    runs = [r["run"] for r in records]
    assert runs.count(first.run) == 2 and runs.count(second.run) == 3
    for rec, (mu, nu) in zip(records, problems, strict=True):
        ref = reference(mu, nu)
        np.testing.assert_allclose(rec["w1"], ref.w1, rtol=1e-12)
        arrays = load_arrays(out, rec["index"])
        np.testing.assert_allclose(arrays["critic"], ref.critic, atol=1e-11)
        assert ("flow" in arrays) == (rec["run"] == second.run)
    third = sweep(problems, out, GRID, client=client, tol=TOL)
    assert (third.done_before, third.solved) == (5, 0)
    with pytest.raises(ValueError, match="another problem 0"):
        sweep(problems, out, GRID, client=client, tol=1e-3)  # other options: other problems


def test_an_interrupted_sweep_keeps_what_finished(client, tmp_path, monkeypatch):
    """Ctrl-C (KeyboardInterrupt) after two records: both are on disk, the rest cancelled;
    the rerun completes the file with each problem once."""
    out = tmp_path / "out"
    problems = [(ORIGIN, shifted(s)) for s in (0.5, 1.0, 1.5, 2.0)]
    write = store_module.SweepStore.write
    calls = []

    def interrupted_write(self, record, arrays=None):
        if len(calls) == 2:
            raise KeyboardInterrupt
        calls.append(record["index"])
        write(self, record, arrays)

    monkeypatch.setattr(store_module.SweepStore, "write", interrupted_write)
    with pytest.raises(KeyboardInterrupt):
        sweep(problems, out, GRID, client=client, batch_size=1, tol=TOL)
    monkeypatch.undo()
    assert sorted(r["index"] for r in read_records(out)) == sorted(calls)
    again = sweep(problems, out, GRID, client=client, batch_size=1, tol=TOL)
    assert (again.done_before, again.solved) == (2, 2)
    lines = (out / "results.jsonl").read_text().splitlines()
    assert sorted(json.loads(line)["index"] for line in lines) == [0, 1, 2, 3]


# --------------------------------------------------------------------------- audit_many
def test_audit_many_equals_audits_one_by_one(client, tmp_path):
    """NumPy critics (sent with cloudpickle) against one exact solve shared by the tasks; a
    missing critic file and a critic that fails are error records (critic files themselves
    are loaded by the same worker function in test_sweeps_input, without a cluster)."""
    grid = og.Grid((-6.0, 8.0), 64)
    mu, nu = og.Normal(0.0, 1.0), og.Normal(2.0, 1.0)
    critics = [lambda x: -x[:, 0], str(tmp_path / "missing.pt"), lambda x: -0.5 * x[:, 0],
               lambda x: x[:3, 0]]   # the last gives 3 values for n points
    with pytest.warns(RuntimeWarning, match="2 problem"):
        reports = audit_many(critics, "normal(0, 1)", nu, grid, client=client, samples=256)
    assert [getattr(r, "stage", None) for r in reports] == [None, "critic", None, "audit"]
    assert "missing.pt" in reports[1].message
    exact = og.solve_critic(grid.discretize(mu), grid.discretize(nu), grid, tol=1e-4)
    for rep, critic in ((reports[0], critics[0]), (reports[2], critics[2])):
        ref = og.audit(critic, mu, nu, grid, exact=exact, samples=256)
        for key in ("w_ratio", "lipschitz", "grad_cosine", "shape_error"):
            np.testing.assert_allclose(getattr(rep, key), getattr(ref, key), rtol=1e-12,
                                       err_msg=key)
    assert reports[0].w_ratio == pytest.approx(1.0, abs=1e-3)
    assert reports[2].w_ratio == pytest.approx(0.5, abs=1e-3)


# --------------------------------------------------------------------------- command line
def test_cli_sweep_records_every_line_and_resumes(client, tmp_path, capsys):
    """``otgrid sweep`` on the module's cluster (--scheduler): a malformed line and a bad spec
    are error records, --limit stops early, a rerun completes, a third run has nothing to do;
    the default bounds are those of ``otgrid critic``."""
    lines = ['{"mu": "normal([0, 0], 1)", "nu": "normal([1, 0], 1)", "shape": 24, "id": "a"}',
             "# a comment",
             '{"mu": "normal([0, 0], 1)", "nu": "normal([1, 0], 1)", "id": "b"',   # bad JSON
             '{"mu": "normal([0, 0], 1)", "nu": "nowhere(2)"}',                  # bad spec
             '{"mu": "normal(0, 1)", "nu": "normal(2, 1)", "bounds": [-6, 8], "shape": 64}']
    src = tmp_path / "problems.jsonl"
    src.write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = tmp_path / "out"
    args = [str(src), "--out", str(out), "--scheduler", client.scheduler.address,
            "--tol", "1e-4"]
    rc = main(["sweep", *args, "--limit", "2"])
    assert rc == 0
    assert "run the same command again" in capsys.readouterr().out
    rc = main(["sweep", *args])
    cap = capsys.readouterr()
    assert rc == 0, cap.err
    assert "2 of 4 problems failed" in cap.err and "Traceback" not in cap.err
    records = read_records(out)
    assert [r["status"] for r in records] == ["ok", "error", "error", "ok"]
    assert [r.get("stage") for r in records] == [None, "input", "spec", None]
    assert records[1]["id"] is None and "line 3" in records[1]["message"]
    grid2d = og.Grid(og.grid.grid.bounds_holding(ORIGIN, shifted(1.0)), (24, 24))
    assert records[0]["grid"]["shape"] == [24, 24] and records[0]["id"] == "a"
    assert records[0]["grid"]["bounds"] == [list(b) for b in grid2d.bounds]
    ref = reference(ORIGIN, shifted(1.0), grid2d, tol=1e-4)
    np.testing.assert_allclose(records[0]["w1"], ref.w1, rtol=1e-12)
    grid1d = og.Grid((-6.0, 8.0), 64)
    np.testing.assert_allclose(
        records[3]["w1"],
        reference(og.Normal(0.0, 1.0), og.Normal(2.0, 1.0), grid1d, tol=1e-4).w1,
        rtol=1e-12)
    summary = (out / "summary.md").read_text(encoding="utf-8")
    assert summary.count("\n| ") == 5 and "nowhere" in summary
    assert main(["sweep", *args]) == 0
    assert "4 done before, 0 solved" in capsys.readouterr().out


# --------------------------------------------------------------------------- client death
@pytest.mark.filterwarnings("ignore::otgrid.errors.ConvergenceWarning")
def test_a_killed_client_loses_nothing_that_finished(client, tmp_path, capsys):
    """``kill -9`` of an ``otgrid sweep`` process once it has recorded a problem: every line
    it wrote is complete (with its arrays), and the same command run again records each other
    problem once, with the answers of one-by-one solves."""
    shifts = [0.25, 0.5, 0.75, 1.0]
    src = tmp_path / "problems.jsonl"
    src.write_text("".join(json.dumps({"mu": "normal([0, 0], 1)", "nu": f"normal([{s}, 0], 1)",
                                       "bounds": [[-5.5, 8.0], [-5.5, 5.5]], "shape": 24,
                                       "tol": 1e-12, "max_iter": 2000}) + "\n"
                           for s in shifts), encoding="utf-8")
    out = tmp_path / "out"
    argv = ["sweep", str(src), "--out", str(out), "--scheduler", client.scheduler.address,
            "--batch-size", "1", "--quiet"]
    proc = subprocess.Popen([sys.executable, "-m", "otgrid", *argv],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    results = out / "results.jsonl"
    deadline = time.monotonic() + 60
    while proc.poll() is None and time.monotonic() < deadline and not (
            results.is_file() and results.read_bytes().count(b"\n") >= 1):
        time.sleep(0.01)
    proc.kill()
    proc.wait(30)
    before = read_records(out)
    assert 1 <= len(before) <= len(shifts)
    for rec in before:                           # a line means its arrays are complete
        assert load_arrays(out, rec["index"])["critic"].shape == (24, 24)
    assert main(argv) == 0
    assert f"{len(before)} done before, {len(shifts) - len(before)} solved" in \
        capsys.readouterr().out
    lines = results.read_text().splitlines()
    assert sorted(json.loads(line)["index"] for line in lines) == list(range(len(shifts)))
    for rec, s in zip(read_records(out), shifts, strict=True):
        ref = reference(ORIGIN, shifted(s), tol=1e-12, max_iter=2000)
        np.testing.assert_allclose([rec["lower"], rec["upper"]], [ref.lower, ref.upper],
                                   rtol=1e-12)


# --------------------------------------------------------------------------- worker death
# (last of the module: the nanny's restart of the killed worker needs no wait)
SLOW = {"tol": 1e-12, "max_iter": 6_000}   # a fraction of a second per problem


class _KillOnFirstTask(distributed.WorkerPlugin):
    """On the first worker that starts a sweep task, SIGKILL its own process ``delay`` seconds
    later: in the middle of that task, whatever the machine's load. A file created with
    O_EXCL says which worker (the others, and the worker the nanny restarts, see it and
    spare themselves)."""

    name = "otgrid-test-kill-on-first-task"

    def __init__(self, flag: str, delay: float) -> None:
        self.flag, self.delay = flag, delay

    def setup(self, worker) -> None:
        self.worker = worker

    def transition(self, key, start, finish, **kwargs) -> None:
        if finish != "executing" or not str(key).startswith("otgrid-sweep"):
            return
        try:
            fd = os.open(self.flag, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            return
        os.write(fd, self.worker.address.encode())
        os.close(fd)
        threading.Timer(self.delay, os.kill, (os.getpid(), signal.SIGKILL)).start()


@pytest.mark.filterwarnings("ignore::otgrid.errors.ConvergenceWarning")  # tol 1e-12: max_iter
def test_a_killed_worker_loses_nothing(client, tmp_path):
    """SIGKILL a worker in the middle of a task: the scheduler reruns its task elsewhere and
    every problem is recorded exactly once, with the answer of a one-by-one solve."""
    shifts = [0.25, 0.5, 0.75, 1.0]
    problems = [(ORIGIN, shifted(s)) for s in shifts]
    flag = tmp_path / "killed"
    client.register_plugin(_KillOnFirstTask(str(flag), 0.05), name=_KillOnFirstTask.name)
    try:
        summary = sweep(problems, tmp_path / "out", GRID, client=client, batch_size=1,
                        progress=False, **SLOW)
    finally:
        client.unregister_worker_plugin(_KillOnFirstTask.name)
    killed = flag.read_text()
    assert killed not in client.scheduler_info()["workers"]   # it died
    assert (summary.solved, summary.failed, summary.remaining) == (4, 0, 0)
    lines = (tmp_path / "out" / "results.jsonl").read_text().splitlines()
    assert sorted(json.loads(line)["index"] for line in lines) == [0, 1, 2, 3]  # once each
    records = read_records(tmp_path / "out")
    assert all(r["status"] == "ok" for r in records)
    assert killed not in {r["worker"] for r in records}  # its task was finished elsewhere
    for rec, s in zip(records, shifts, strict=True):
        ref = reference(ORIGIN, shifted(s), **SLOW)
        assert rec["iterations"] == ref.iterations
        np.testing.assert_allclose([rec["lower"], rec["upper"]], [ref.lower, ref.upper],
                                   rtol=1e-12)
        np.testing.assert_allclose(load_arrays(tmp_path / "out", rec["index"])["critic"],
                                   ref.critic, atol=1e-11)


# --------------------------------------------------------------------------- shutdown
def test_an_own_cluster_goes_quiet_before_it_closes_and_the_log_level_comes_back():
    """The LocalCluster that ``connect`` starts: before it closes, its workers and this
    process log only critical messages (a worker's heartbeat can race the scheduler's shutdown
    and log an ERROR with a traceback on a sweep that succeeded, dask/distributed#7192); once
    it has closed, this process's level is what it was."""
    import logging

    from otgrid.distributed import cluster as cl

    logger = logging.getLogger("distributed")
    before = logger.level
    seen = []
    real = cl._quiet_shutdown

    def spy(c):
        real(c)
        seen.append(sorted(set(c.run(lambda: logging.getLogger("distributed").level).values())))
        seen.append(logger.level)

    try:
        cl._quiet_shutdown = spy
        with cl.connect(workers=1) as c:
            assert c.submit(sum, [1, 2]).result() == 3
            assert logger.level == before
    finally:
        cl._quiet_shutdown = real
    assert seen == [[logging.CRITICAL], logging.CRITICAL]
    assert logger.level == before
