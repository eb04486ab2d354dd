"""Run a CUDA test module in numba's CUDA simulator, in a subprocess (tests only).

numba-cuda reads ``NUMBA_ENABLE_CUDASIM`` when ``numba.cuda`` is first imported, and the rest of
the suite has imported it by then (the doctest sweep imports every module), so the simulator
runs in a fresh interpreter: ``python -m pytest <module>`` with the variable set. In that
interpreter (or in a process with a GPU) :data:`RUNS_HERE` is true and the module's tests run
directly; elsewhere they skip with the reason and :func:`run_module_in_simulator` runs them.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from otgrid._device import cuda_status

STATUS = cuda_status()
RUNS_HERE = STATUS.startswith("available")
# Skip reasons stay short: why CUDA cannot run here is printed once, in the header of the test
# session (conftest.py, pytest_report_header), not after each of the 35 skipped tests.
NOT_HERE = "no CUDA here: run in the simulator by test_*_under_the_simulator"
ROOT = Path(__file__).resolve().parents[1]
GPU_ONLY = "needs a CUDA GPU with CuPy"
OUTSIDE_ONLY = "[not a simulator test]"


def simulator_here() -> bool:
    """Whether ``numba.cuda`` is the simulator in this process."""
    from otgrid._device import simulator_enabled

    return simulator_enabled()


def run_module_in_simulator(path: str, timeout: float = 300.0) -> str:
    """Run the pytest module ``path`` with ``NUMBA_ENABLE_CUDASIM=1``; its output on success.

    Raises ``AssertionError`` with the tail of the output when a test fails.
    """
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1")
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-ra", str(path)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"simulator run of {Path(path).name} failed:\n{out[-6000:]}"
    assert " passed" in out, out[-2000:]
    # Only the tests that need a real GPU (CuPy arrays) or no CUDA at all may skip here.
    bad = [ln for ln in out.splitlines() if ln.startswith("SKIPPED")
           and GPU_ONLY not in ln and OUTSIDE_ONLY not in ln]
    assert not bad, "unexpected skips in the simulator:\n" + "\n".join(bad)
    return out
