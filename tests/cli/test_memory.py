"""otgrid.critic.memory: the estimate against measured peaks, the memory available, the check.

Here beside the command line, its main user (``otgrid critic/sco/audit`` call the check before
building a grid).
"""

from __future__ import annotations

import math
import os
import tracemalloc
import warnings

import numpy as np
import pytest

import otgrid as og
from otgrid.critic import memory
from otgrid.critic.memory import (
    InsufficientMemoryError,
    available_memory,
    check_memory,
    solve_memory,
)

GIB = 2 ** 30


# --------------------------------------------------------------------------- the estimate
def test_estimate_grows_like_the_cells_and_the_batch():
    for shape in [(1 << 14,), (64, 64), (16, 16, 16)]:
        finer = tuple(2 * n for n in shape)
        assert solve_memory(finer) == 2 ** len(shape) * solve_memory(shape)
    one = solve_memory((256, 256))
    assert one == 8 * 256 ** 2 * 52             # 52 grid arrays for one 2D problem
    batches = [solve_memory((256, 256), batch=b) for b in (1, 2, 4, 8, 16)]
    assert batches == sorted(batches) and batches[0] == one
    assert batches[4] == 2 * batches[3]         # large batches: linear in the batch
    assert solve_memory((256, 256), backend="numpy") >= solve_memory((256, 256), backend="numba")
    assert solve_memory((16, 16, 16)) == solve_memory((16, 16, 16), backend="numpy")  # auto
    assert solve_memory(100) == solve_memory((100,))


@pytest.mark.parametrize(("kw", "exc", "match"), [
    ({"shape": "big"}, TypeError, "shape must be an int or a sequence"),
    ({"shape": (0, 4)}, ValueError, "at least one axis"),
    ({"shape": (4, 4), "batch": 0}, ValueError, "batch must be a positive integer"),
    ({"shape": (4, 4), "batch": True}, ValueError, "batch"),
    ({"shape": (4, 4), "dtype": np.int64}, ValueError, "dtype must be numpy.float64"),
    ({"shape": (4, 4), "backend": "gpu"}, ValueError, "backend must be one of"),
])
def test_bad_arguments(kw, exc, match):
    with pytest.raises(exc, match=match):
        solve_memory(**kw)


def _traced_peak(mu, nu, grid, **kw) -> int:
    """Peak of the memory traced by tracemalloc during one solve (JIT warmed up before)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        og.solve_critic(mu, nu, grid, tol=1e-2, **kw)      # compile outside the measurement
        tracemalloc.start()
        try:
            og.solve_critic(mu, nu, grid, tol=1e-4, **kw)
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()


@pytest.mark.parametrize(("ndim", "n", "batch", "backend", "dtype"), [
    (1, 1 << 14, 1, "numba", np.float64),
    (2, 128, 1, "numba", np.float64),
    (2, 64, 4, "numba", np.float64),
    # FACR(1)'s buffers (from 128^2): half a grid array per problem more
    pytest.param(2, 128, 4, "numba", np.float64, marks=pytest.mark.slow),
    (3, 16, 1, "numpy", np.float64),
    # problems stopping at different checks (the batch's arrays copied while its start is held)
    (2, 64, 16, "numba", np.float64),
    # float32 iterates: their checks work in float64 and set the peak
    (2, 64, 16, "numba", np.float32),
    (1, 1 << 12, 16, "numba", np.float32),
])
def test_estimate_holds_the_measured_peak(ndim, n, batch, backend, dtype):
    """The estimate is at or above the arrays a solve really holds (traced by tracemalloc)
    and not far above: measured 34.6-48 grid arrays for one problem (estimate 48-56), 27.0 per
    problem for a batch of 4 (estimate 33; 26.5 at 128^2, where FACR's buffers come in),
    31.8 / 27.2 for 16 different problems in float64 / float32 (33), 20.3 in 1D (26). See the
    module docstring for peak RSS."""
    lo = -6.0 if batch <= 4 else -8.0  # (bounds that hold every nu of the batch)
    grid = og.Grid([(lo, 10.0 if batch > 4 else 7.0)] * ndim, n)
    mu = grid.discretize(og.Normal([0.0] * ndim, 1.0))
    step = 0.25 if batch <= 4 else 0.1
    nus = [grid.discretize(og.Normal([0.5 + step * b] * ndim, 1.0)) for b in range(batch)]
    nu = nus[0] if batch == 1 else np.stack(nus)
    peak = _traced_peak(mu, nu, grid, backend=backend, dtype=dtype)
    estimate = solve_memory(grid.shape, batch=batch, dtype=dtype, backend=backend)
    assert peak <= estimate <= 1.4 * peak, (peak / (8 * grid.size * batch),
                                            estimate / (8 * grid.size * batch))


# --------------------------------------------------------------------------- available memory
def _tree(tmp_path, files: dict[str, str]):
    for rel, text in files.items():
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return tmp_path


MEMINFO = "MemTotal:       16000000 kB\nMemFree:         1000000 kB\nMemAvailable:    8000000 kB\n"


def test_available_memory_reads_meminfo(tmp_path, monkeypatch):
    monkeypatch.setattr(memory, "_address_space_limit", lambda: None)
    root = _tree(tmp_path, {"proc/meminfo": MEMINFO})
    assert available_memory(root=root) == 8_000_000 * 1024


def test_available_memory_takes_the_cgroup_v2_limit(tmp_path, monkeypatch):
    monkeypatch.setattr(memory, "_address_space_limit", lambda: None)
    root = _tree(tmp_path, {
        "proc/meminfo": MEMINFO,
        "proc/self/cgroup": "0::/user.slice/job-7\n",
        "sys/fs/cgroup/user.slice/job-7/memory.max": "4294967296\n",
        "sys/fs/cgroup/user.slice/job-7/memory.current": "1073741824\n",
    })
    assert available_memory(root=root) == 3 * GIB
    (root / "sys/fs/cgroup/user.slice/job-7/memory.max").write_text("max\n")  # no limit
    assert available_memory(root=root) == 8_000_000 * 1024


def test_available_memory_takes_the_container_root_and_cgroup_v1(tmp_path, monkeypatch):
    monkeypatch.setattr(memory, "_address_space_limit", lambda: None)
    root = _tree(tmp_path, {"sys/fs/cgroup/memory.max": "2147483648\n",
                            "sys/fs/cgroup/memory.current": "0\n"})
    assert available_memory(root=root) == 2 * GIB             # no meminfo: the cgroup alone
    root = _tree(tmp_path / "v1", {
        "proc/self/cgroup": "12:cpu:/x\n5:memory:/docker/abc\n",
        "sys/fs/cgroup/memory/docker/abc/memory.limit_in_bytes": "1073741824\n",
        "sys/fs/cgroup/memory/docker/abc/memory.usage_in_bytes": "536870912\n",
    })
    assert available_memory(root=root) == GIB // 2


def test_available_memory_takes_ulimit_v(tmp_path, monkeypatch):
    monkeypatch.setattr(memory, "_address_space_limit", lambda: 3 * GIB)
    monkeypatch.setattr(memory, "_THREAD_RESERVE", 2 ** 20)
    root = _tree(tmp_path, {"proc/meminfo": MEMINFO,
                            "proc/self/status": "Name:\tpython\nVmSize:\t 1048576 kB\n"})
    threads = 2 ** 20 * (os.cpu_count() or 1)          # what the solver's threads reserve
    assert available_memory(root=root) == 3 * GIB - GIB - threads


def test_available_memory_unknown_is_none(tmp_path, monkeypatch):
    monkeypatch.setattr(memory, "_address_space_limit", lambda: None)
    assert available_memory(root=tmp_path) is None
    root = _tree(tmp_path, {"proc/meminfo": "MemTotal: 1 kB\n"})   # no MemAvailable line
    assert available_memory(root=root) is None


def test_available_memory_here_is_plausible():
    m = available_memory()
    assert m is None or 0 <= m < 1 << 50


# --------------------------------------------------------------------------- the check
def test_check_memory_refuses_with_the_estimate_and_a_shape_that_fits(monkeypatch):
    monkeypatch.delenv(memory.ENV_SWITCH, raising=False)
    with pytest.raises(InsufficientMemoryError) as exc:
        check_memory((11000, 11000), available=8 * GIB)
    err = exc.value
    assert isinstance(err, MemoryError) and isinstance(err, ValueError)
    assert err.needed == solve_memory((11000, 11000)) and err.available == 8 * GIB
    assert err.shape == (11000, 11000)
    assert solve_memory(err.fits) <= 8 * GIB < solve_memory(tuple(n + 50 for n in err.fits))
    for words in ("11000 x 11000 grid", "46.9 GiB", "8 GiB is available",
                  f"{err.fits[0]} x {err.fits[1]} cells fits", "OTGRID_MEMORY_CHECK=0"):
        assert words in str(err), str(err)


def test_check_memory_passes_and_counts_extra_arrays(monkeypatch):
    monkeypatch.delenv(memory.ENV_SWITCH, raising=False)
    est = solve_memory((64, 64))
    assert check_memory((64, 64), available=GIB) == est
    assert check_memory((64, 64), extra_arrays=2, available=GIB) == est + 2 * 8 * 64 * 64
    with pytest.raises(InsufficientMemoryError, match="4 problems"):
        check_memory((64, 64), batch=4, available=est)
    monkeypatch.setattr(memory, "available_memory", lambda: None)   # unknown: no refusal
    assert check_memory((11000, 11000)) == solve_memory((11000, 11000))

    def must_not_be_read():
        raise AssertionError("small solves do not read the memory available")

    monkeypatch.setattr(memory, "available_memory", must_not_be_read)
    assert check_memory((128, 128)) == solve_memory((128, 128))      # 3.4 MiB: no look
    with pytest.raises(ValueError, match="extra_arrays"):
        check_memory((64, 64), extra_arrays=-1.0)


def test_the_environment_switch_skips_the_check(monkeypatch):
    monkeypatch.setenv(memory.ENV_SWITCH, "0")
    assert check_memory((11000, 11000), available=GIB) == solve_memory((11000, 11000))
    monkeypatch.setenv(memory.ENV_SWITCH, "1")
    with pytest.raises(InsufficientMemoryError):
        check_memory((11000, 11000), available=GIB)


def test_the_fitting_shape_keeps_the_aspect():
    fits = memory._fitting_shape((4000, 1000), needed=16.0, available=4.0)
    assert fits == (2000, 500)
    assert memory._fitting_shape((10,), needed=1.0, available=0.0) == (2,)
    assert math.isclose(memory._fitting_shape((100, 100, 100), 8.0, 1.0)[0], 50)
