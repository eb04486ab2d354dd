"""The point-cloud thread chooser on a first run (the cold start).

A first run compiles as little as it can. A parallel kernel that Numba has neither compiled
nor cached runs only once the one-thread kernel has run ``PARALLEL_COMPILE_AFTER`` seconds in
the process (a first short solve compiles the one-thread kernel only); a one-thread kernel not
compiled while the parallel one is, is first timed at call ``PROBE_EVERY`` instead of call 2.
"""

from __future__ import annotations

import pytest

from otgrid.pointcloud import ops_numba
from otgrid.pointcloud.ops_numba import PARALLEL_COMPILE_AFTER, PROBE_EVERY, _ThreadChooser


@pytest.fixture(autouse=True)
def _fresh_process(monkeypatch):
    """No one-thread seconds spent yet in this 'process'."""
    monkeypatch.setattr(ops_numba, "_SERIAL_SECONDS", {})


def _modes(chooser: _ThreadChooser, calls: int, serial_s: float = 2.0,
           name: str = "k") -> list[bool]:
    out = []
    for _ in range(calls):
        parallel = chooser.pick(name)
        chooser.record(name, parallel, 1.0 if parallel else serial_s)
        out.append(parallel)
    return out


def test_compiled_kernels_both_run_from_the_second_call():
    modes = _modes(_ThreadChooser(True, compiled=lambda name, parallel: True), 3)
    assert modes == [True, False, True]


def test_an_uncompiled_serial_kernel_waits_for_call_probe_every():
    chooser = _ThreadChooser(True, compiled=lambda name, parallel: parallel)
    modes = _modes(chooser, PROBE_EVERY + 2)
    assert all(modes[:PROBE_EVERY]) and modes[PROBE_EVERY] is False


@pytest.mark.parametrize("always", [False, True])
def test_an_uncompiled_parallel_kernel_waits_for_enough_serial_work(always):
    """Serial until the one-thread runs add up to PARALLEL_COMPILE_AFTER seconds, then the
    parallel kernel (compiled at that call) -- also for the problems that always run in
    parallel once it exists."""
    chooser = _ThreadChooser(True, always=always, compiled=lambda name, parallel: not parallel)
    step = 0.75
    runs = int(PARALLEL_COMPILE_AFTER / step) + 1  # until the seconds reach the threshold
    assert _modes(chooser, runs, serial_s=step) == [False] * runs
    assert ops_numba._SERIAL_SECONDS["k"] == pytest.approx(runs * step)
    assert chooser.pick("k") is True


def test_serial_seconds_count_across_solves_of_the_process():
    """Many short solves add up: the tenth chooser of the process may compile."""
    compiled = lambda name, parallel: not parallel  # noqa: E731
    for _ in range(int(PARALLEL_COMPILE_AFTER)):
        assert _modes(_ThreadChooser(True, compiled=compiled), 1, serial_s=1.0) == [False]
    assert _modes(_ThreadChooser(True, compiled=compiled), 1) == [True]


def test_disabled_chooser_runs_serial_and_counts_nothing():
    chooser = _ThreadChooser(False, compiled=lambda name, parallel: False)
    assert _modes(chooser, 4) == [False] * 4
    assert ops_numba._SERIAL_SECONDS == {}


def test_a_compilation_does_not_count_as_serial_work():
    """A kernel's first call compiles it before running it (seconds, not the kernel's time):
    only the runs add to the one-thread seconds and to the chooser's timings."""
    import types

    import numpy as np
    from numba import njit

    def body(x):
        return x + 1.0

    ops = ops_numba.NumbaCloudOps(np.zeros((1, 3, 2)), np.ones((1, 4, 2)), "euclidean")
    ops._k = types.SimpleNamespace(fresh=njit(body), fresh_serial=njit(body))
    ops.chooser = _ThreadChooser(True, compiled=lambda name, parallel: True)
    ops._call("fresh", False, 1.0)  # compiles (about 0.1 s or more), then runs
    assert ops._k.fresh_serial.signatures
    assert 0 < ops_numba._SERIAL_SECONDS["fresh"] < 0.01
    ops._call("fresh", False, 1.0)
    assert len(ops.chooser.times[("fresh", False)]) == 2


def test_a_call_that_compiles_anyway_does_not_count_as_serial_work():
    """Arguments of other types than at the kernel's first call compile it inside the call:
    that call adds nothing to the one-thread seconds or the chooser's timings."""
    import types

    import numpy as np
    from numba import njit

    def body(x):
        return x + 1.0

    ops = ops_numba.NumbaCloudOps(np.zeros((1, 3, 2)), np.ones((1, 4, 2)), "euclidean")
    ops._k = types.SimpleNamespace(fresh=njit(body), fresh_serial=njit(body))
    ops.chooser = _ThreadChooser(True, compiled=lambda name, parallel: True)
    ops._call("fresh", False, 1.0)
    before = ops_numba._SERIAL_SECONDS["fresh"]
    ops._call("fresh", False, 1)  # an int: the same key (no dtype attribute), compiles
    assert len(ops._k.fresh_serial.signatures) == 2
    assert ops_numba._SERIAL_SECONDS["fresh"] == before
    assert len(ops.chooser.times[("fresh", False)]) == 1
