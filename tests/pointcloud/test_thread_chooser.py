"""The point-cloud thread chooser on a first run (issue 24's cold start).

A one-thread kernel that Numba has not compiled (nor cached) is first timed at call
``PROBE_EVERY`` instead of call 2, so that a short first solve compiles one kernel, not two.
"""

from __future__ import annotations

from otgrid.pointcloud.ops_numba import PROBE_EVERY, _ThreadChooser


def _modes(chooser: _ThreadChooser, calls: int) -> list[bool]:
    out = []
    for _ in range(calls):
        parallel = chooser.pick("k")
        chooser.record("k", parallel, 1.0 if parallel else 2.0)
        out.append(parallel)
    return out


def test_a_compiled_serial_kernel_is_probed_on_the_second_call():
    modes = _modes(_ThreadChooser(True, compiled=lambda name: True), 3)
    assert modes == [True, False, True]


def test_an_uncompiled_serial_kernel_waits_for_call_probe_every():
    modes = _modes(_ThreadChooser(True, compiled=lambda name: False), PROBE_EVERY + 2)
    assert all(modes[:PROBE_EVERY]) and modes[PROBE_EVERY] is False
