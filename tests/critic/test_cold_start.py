"""Issue 24's cold start: one-thread kernel twins, the compilation note, and the clock.

Problems below ``PARALLEL_MIN_CELLS`` run the ``*_serial`` twins of the critic kernels (the same
Python function compiled without ``parallel=True``, which compiles about three times faster);
they must compute exactly what the parallel kernels compute. A first run says "compiling
kernels (first run only)" on the ``otgrid`` logger, and a result's ``seconds`` excludes the
compilation.
"""

from __future__ import annotations

import logging
import warnings

import numpy as np
import pytest
from compile_stand_in import FirstCompile
from numba import njit

import otgrid as og
from otgrid import _threads
from otgrid.critic.backend_numba import NumbaGridKernels
from otgrid.kernels import critic_numba as k


def _arrays(shape, rng):
    nb = 2
    f = rng.standard_normal((nb, *shape))
    u = rng.standard_normal((nb, *shape))
    y = rng.standard_normal((nb, len(shape), *shape))
    return f, u, y


@pytest.mark.parametrize("shape", [(17,), (9, 13)])
@pytest.mark.parametrize("iso", [True, False])
def test_serial_twins_compute_what_the_parallel_kernels_compute(shape, iso):
    rng = np.random.default_rng(3)
    f, u, y = _arrays(shape, rng)
    d = f"_{len(shape)}d"
    h = (1.7, 0.6)[:len(shape)]
    tau = np.array([0.3, 2.0])
    outs = {}
    for suffix in ("", "_serial"):
        kern = {n: getattr(k, n + d + suffix) for n in (
            "dual_step", "residual", "grad_stats", "flow_cost", "repair_critic")}
        yy, f_out, r = y.copy(), np.empty_like(f), np.empty_like(f)
        # 2D: the dual steps' axis weights (unequal: cityblock on anisotropic cells)
        w = () if len(shape) == 1 else ((1.0, 1.0) if iso else (1.0, 0.35))
        kern["dual_step"](f, u, yy, f_out, tau, 1.0 / tau, 1.8, *h, *w, iso)
        if len(shape) == 1:
            kern["residual"](f, yy, r, *h)
        else:
            r32 = np.empty(f.shape, dtype=np.float32)
            kern["residual"](f, yy, r, r32, *h)
            np.testing.assert_array_equal(r32, r.astype(np.float32))
        g = np.empty_like(f)
        if len(shape) == 1:
            kern["repair_critic"](f, g, 1.0 / h[0])
        else:
            kern["repair_critic"](f, g, 1.0 / h[0], 1.0 / h[1], iso)
        rows = f.shape[0] * (shape[0] if len(shape) == 2 else 1)
        stats, cost = np.empty((2, rows)), np.empty(rows)
        kern["grad_stats"](f, *h, iso, stats)
        kern["flow_cost"](y, u, *h, iso, cost)
        outs[suffix] = [yy, f_out, r, g, stats, cost]
        if len(shape) == 2:  # the euclidean step on anisotropic cells
            yw, fw = y.copy(), np.empty_like(f)
            getattr(k, "dual_step_2d_weighted" + suffix)(f, u, yw, fw, tau, 1.0 / tau, 1.8, *h,
                                                         1.0, 0.35)
            outs[suffix] += [yw, fw]
    for a, b in zip(outs[""], outs["_serial"], strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-13, atol=1e-13)


def test_small_grids_bind_the_serial_twins_and_large_ones_the_parallel_kernels():
    small = NumbaGridKernels((64, 64), (0.1, 0.1), "euclidean", np.float64)
    assert small._d is k.dual_step_2d_serial and small.threads == 1
    small.with_batch(64)  # 64 x 64^2 cells: enough for the threads
    assert small._d is k.dual_step_2d and small.threads is None


def test_needs_compilation_and_the_note_once_per_process(caplog, monkeypatch):
    @njit
    def fresh(x):
        return x + 1

    assert _threads.needs_compilation([fresh])
    fresh(1)
    assert not _threads.needs_compilation([fresh])
    monkeypatch.setattr(_threads, "_ANNOUNCED", set())
    with caplog.at_level(logging.INFO, logger="otgrid"):
        assert _threads.announce_compilation([njit(lambda x: x)], "test")
        assert _threads.announce_compilation([njit(lambda x: x)], "test")
    notes = [r for r in caplog.records if _threads.COMPILE_MESSAGE in r.getMessage()]
    assert len(notes) == 1


def test_a_first_run_is_announced_and_its_seconds_exclude_the_compilation(caplog, monkeypatch):
    grid = og.Grid([(-8, 8), (-8, 8)], (16, 16))
    mu = grid.discretize(og.Normal([0, 0], 0.5), outside="renormalize")
    nu = grid.discretize(og.Normal([0.5, 0], 0.5), outside="renormalize")
    monkeypatch.setattr(_threads, "_ANNOUNCED", set())
    monkeypatch.setattr(_threads, "needs_compilation", lambda d: True)
    slow = NumbaGridKernels.warm_up

    def warm_up(self, nb, coarse=False):  # a compilation that takes 0.5 s
        import time

        slow(self, nb, coarse)
        time.sleep(0.5)

    monkeypatch.setattr(NumbaGridKernels, "warm_up", warm_up)
    with caplog.at_level(logging.INFO, logger="otgrid"):
        res = og.solve_critic(mu, nu, grid, tol=1e-4, backend="numba")
    assert res.converged
    assert any(_threads.COMPILE_MESSAGE in r.getMessage() for r in caplog.records)
    assert res.seconds < 0.5
    assert res.history.seconds[-1] < 0.5


def test_the_command_line_says_it_compiles_on_stderr(capsys, monkeypatch):
    from otgrid.cli.main import main

    monkeypatch.setattr(_threads, "_ANNOUNCED", set())
    monkeypatch.setattr(_threads, "needs_compilation", lambda d: True)
    args = ["critic", "normal([0, 0], 1)", "normal([1, 0], 1)", "--shape", "16", "--tol",
            "1e-2", "--backend", "numba", "--no-figure"]
    assert main(args) == 0
    err = capsys.readouterr().err
    assert "note: otgrid.solve_critic: compiling kernels (first run only)" in err
    monkeypatch.setattr(_threads, "_ANNOUNCED", set())
    assert main([*args, "--quiet"]) == 0
    assert "compiling" not in capsys.readouterr().err
    assert not _threads.LOGGER.handlers


def test_the_solve_clock_stands_still_while_compiling():
    import time

    t = _threads.solve_clock()
    with _threads.compiling():
        time.sleep(0.2)
        with _threads.compiling():  # nested: counted once
            time.sleep(0.2)
    assert _threads.solve_clock() - t < 0.1
    t = _threads.solve_clock()
    time.sleep(0.2)
    assert _threads.solve_clock() - t >= 0.2


def _polish_kernels(monkeypatch):
    ascend, descend = FirstCompile(k.ascend_critic_2d), FirstCompile(k.descend_flow_2d)
    monkeypatch.setattr(k, "ascend_critic_2d", ascend)
    monkeypatch.setattr(k, "descend_flow_2d", descend)
    return ascend, descend


def test_the_polishing_kernels_compile_where_a_check_first_polishes_off_the_clock(
        caplog, monkeypatch):
    grid = og.Grid([(-4, 4), (-4, 4)], (32, 32))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", og.OutsideMassWarning)
        mu = grid.discretize(og.datasets.eight_gaussians(), outside="renormalize")
        nu = grid.discretize(og.Normal([0, 0], 1.0), outside="renormalize")
    og.solve_critic(mu, nu, grid, tol=1e-4, backend="numba")  # every other kernel compiled
    ascend, descend = _polish_kernels(monkeypatch)
    monkeypatch.setattr(_threads, "_ANNOUNCED", set())
    with caplog.at_level(logging.INFO, logger="otgrid"):
        res = og.solve_critic(mu, nu, grid, tol=1e-4, backend="numba")
    assert res.converged
    assert ascend.compiled == descend.compiled == 1  # at the first check that polished
    assert ascend.calls and descend.calls
    assert any(_threads.COMPILE_MESSAGE in r.getMessage() for r in caplog.records)
    assert res.seconds < 0.5
    assert res.history.seconds[-1] < 0.5


def test_a_solve_that_never_polishes_does_not_compile_the_polishing_kernels(monkeypatch):
    grid = og.Grid([(-8, 8), (-8, 8)], (16, 16))
    mu = grid.discretize(og.Normal([0, 0], 0.5), outside="renormalize")
    nu = grid.discretize(og.Normal([0.5, 0], 0.5), outside="renormalize")
    ascend, descend = _polish_kernels(monkeypatch)
    res = og.solve_critic(mu, nu, grid, tol=1e-2, backend="numba")
    assert res.converged
    assert ascend.calls == descend.calls == ascend.compiled == descend.compiled == 0
