"""The CUDA interpolant (``kernels/interp_cuda.py``) against the Numba one and closed forms.

Without a GPU the tests run in numba's CUDA simulator in a subprocess (see ``_cuda_sim.py``),
through ``GridFunction._value_and_grad_cuda``: the path CuPy points take, fed NumPy arrays.
With a GPU they run directly, and CuPy points in give CuPy arrays out. The ``limits`` fixture
runs the comparisons a second time on a launch grid capped at 2 blocks of 4 threads (fewer
threads than points: the kernels' grid-stride loops cover the rest).
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("numba_cuda", reason="numba-cuda is not installed (the 'cuda' extra)")

from _cuda_sim import GPU_ONLY, NOT_HERE, OUTSIDE_ONLY, RUNS_HERE, STATUS, run_module_in_simulator

from otgrid.grid import Grid, GridFunction

here = pytest.mark.skipif(not RUNS_HERE, reason=NOT_HERE)


@pytest.mark.skipif(RUNS_HERE, reason=f"CUDA runs in this process, the tests ran directly "
                                       f"{OUTSIDE_ONLY}")
def test_interpolant_under_the_simulator():
    out = run_module_in_simulator(__file__)
    assert "failed" not in out


@pytest.fixture(params=["uncapped", "capped"])
def limits(request, monkeypatch):
    """``"capped"``: launches get at most 2 blocks of 4 threads."""
    if request.param == "capped":
        from otgrid import _device
        from otgrid.kernels import _cuda

        monkeypatch.setattr(_cuda, "MAX_GRID_X", 2)
        monkeypatch.setattr(_device, "THREADS_PER_BLOCK", 4)
    return request.param


def _device_eval(f: GridFunction, x: np.ndarray):
    """Value and gradient on the device, brought back to the host."""
    from otgrid._device import array_module

    xp = array_module()
    val, grad = f._value_and_grad_cuda(xp.asarray(x))
    if xp is not np:
        val, grad = val.get(), grad.get()
    return val, grad


@here
def test_1d_matches_numba_inside_on_centres_and_outside(limits):
    rng = np.random.default_rng(0)
    grid = Grid((0.0, 1.75), 7)
    f = GridFunction(grid, rng.normal(size=7))
    x = np.concatenate([rng.uniform(-1.0, 3.0, 24), grid.centers[0], [-0.2, 2.5]])
    val, grad = _device_eval(f, x)
    ref_val, ref_grad = f.value_and_grad(x)
    assert val.shape == ref_val.shape and grad.shape == ref_grad.shape == (x.size, 1)
    np.testing.assert_allclose(val, ref_val, rtol=0, atol=1e-13)
    np.testing.assert_allclose(grad, ref_grad, rtol=0, atol=1e-13)
    # closed form: linear in [c0, c_last], f(P x) - dist outside
    c = grid.centers[0]
    np.testing.assert_allclose(val[-2:], [f.values[0] - (c[0] + 0.2), f.values[-1] - (2.5 - c[-1])],
                               atol=1e-13)


@here
@pytest.mark.parametrize("steep", [False, True])
def test_2d_matches_numba(steep, limits):
    """Lipschitz samples (the McShane branch outside) and steep ones (the cap branch too)."""
    rng = np.random.default_rng(1)
    grid = Grid([(-1.0, 1.5), (0.0, 2.0)], (5, 4))
    mesh = grid.mesh()
    vals = 0.6 * np.sin(0.9 * mesh[0] - 0.8 * mesh[1] + 0.3)
    if steep:
        vals = vals + 2.0 * rng.normal(size=grid.shape)
    f = GridFunction(grid, vals)
    x = rng.uniform([-3.0, -2.0], [3.5, 4.0], size=(48, 2))
    x = np.concatenate([x, np.stack([g.ravel() for g in mesh], axis=1)])  # centres: exact
    val, grad = _device_eval(f, x)
    ref_val, ref_grad = f.value_and_grad(x)
    np.testing.assert_allclose(val, ref_val, rtol=0, atol=1e-12)
    np.testing.assert_allclose(grad, ref_grad, rtol=0, atol=1e-12)
    np.testing.assert_allclose(val[48:], vals.ravel(), atol=1e-13)


@here
def test_2d_closed_forms():
    """Bilinear functions are reproduced inside; outside, with Lipschitz samples, the value is
    the McShane maximum over the boundary (brute force on a dense boundary sampling)."""
    grid = Grid([(0.0, 1.0), (0.0, 2.0)], (5, 4))
    m0, m1 = grid.mesh()
    f = GridFunction(grid, 0.2 + 0.3 * m0 - 0.25 * m1 + 0.1 * m0 * m1)
    c0, c1 = grid.centers
    rng = np.random.default_rng(2)
    inside = rng.uniform([c0[0], c1[0]], [c0[-1], c1[-1]], size=(20, 2))
    val, grad = _device_eval(f, inside)
    x0, x1 = inside.T
    np.testing.assert_allclose(val, 0.2 + 0.3 * x0 - 0.25 * x1 + 0.1 * x0 * x1, atol=1e-13)
    np.testing.assert_allclose(grad, np.stack([0.3 + 0.1 * x1, -0.25 + 0.1 * x0], 1), atol=1e-13)
    # outside: M(x) = max over boundary points z of f(z) - |x - z|
    s = np.linspace(0.0, 1.0, 4001)
    t0, t1 = c0[0] + s * (c0[-1] - c0[0]), c1[0] + s * (c1[-1] - c1[0])
    edges = [np.stack([t0, np.full_like(s, v)], 1) for v in (c1[0], c1[-1])]
    edges += [np.stack([np.full_like(s, v), t1], 1) for v in (c0[0], c0[-1])]
    z = np.concatenate(edges)
    fz = 0.2 + 0.3 * z[:, 0] - 0.25 * z[:, 1] + 0.1 * z[:, 0] * z[:, 1]
    outside = np.array([[-1.0, 0.7], [2.0, -0.5], [0.5, 3.0], [1.4, 2.2], [-0.3, -0.4]])
    val, grad = _device_eval(f, outside)
    brute = np.max(fz[None] - np.linalg.norm(outside[:, None] - z[None], axis=2), axis=1)
    np.testing.assert_allclose(val, brute, atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(grad, axis=1), 1.0, atol=1e-12)


@here
def test_single_points_and_bad_input():
    grid = Grid([(0.0, 1.0), (0.0, 1.0)], (4, 4))
    f = GridFunction(grid, np.zeros(grid.shape))
    val, grad = _device_eval(f, np.array([0.3, 0.6]))
    assert val.shape == () and grad.shape == (2,)
    with pytest.raises(ValueError, match="shape"):
        _device_eval(f, np.zeros((3, 3)))
    with pytest.raises(ValueError, match="finite"):
        _device_eval(f, np.array([[0.1, np.nan]]))


@here
def test_launches_are_the_signatures_compiled_to_ptx(monkeypatch):
    """The launches of both kernels have the argument types of ``interp_cuda.PTX_SIGNATURES``
    (compiled for sm_90 by ``tests/test_ptx.py``)."""
    import numba

    from otgrid import _device
    from otgrid.kernels import interp_cuda as k

    seen = set()
    launch = _device.launch

    def recording(kernel, n, *args):
        host = [a.get() if _device.is_cupy_array(a) else a for a in args]
        seen.add((kernel, tuple(numba.typeof(a) for a in host)))
        launch(kernel, n, *args)

    monkeypatch.setattr(_device, "launch", recording)
    rng = np.random.default_rng(4)
    _device_eval(GridFunction(Grid((0.0, 1.0), 5), rng.normal(size=5)), rng.normal(size=6))
    _device_eval(GridFunction(Grid([(0.0, 1.0), (0.0, 2.0)], (3, 4)), rng.normal(size=(3, 4))),
                 rng.normal(size=(6, 2)))
    assert {kern for kern, _ in seen} == {k.interp1d_value_grad, k.interp2d_value_grad}
    assert seen <= {(kern, tuple(sig)) for kern, sig in k.PTX_SIGNATURES}


@pytest.mark.skipif(not STATUS == "available", reason=GPU_ONLY)
def test_cupy_points_give_cupy_values():
    import cupy

    grid = Grid([(0.0, 1.0), (0.0, 1.0)], (16, 16))
    m0, m1 = grid.mesh()
    f = GridFunction(grid, 0.5 * m0 - 0.3 * m1)
    x = np.random.default_rng(3).uniform(-0.5, 1.5, size=(1000, 2))
    val, grad = f.value_and_grad(cupy.asarray(x))
    assert isinstance(val, cupy.ndarray) and isinstance(grad, cupy.ndarray)
    ref_val, ref_grad = f.value_and_grad(x)
    np.testing.assert_allclose(val.get(), ref_val, atol=1e-12)
    np.testing.assert_allclose(grad.get(), ref_grad, atol=1e-12)
    assert isinstance(f(cupy.asarray(x)), cupy.ndarray)
    assert isinstance(f.grad(cupy.asarray(x)), cupy.ndarray)
    g = GridFunction(grid, cupy.asarray(f.values))  # samples on the GPU too
    np.testing.assert_array_equal(g.values, f.values)
    np.testing.assert_allclose(g(cupy.asarray(x)).get(), ref_val, atol=1e-12)


def _gpu_count() -> int:
    if STATUS != "available":
        return 0
    import cupy

    return cupy.cuda.runtime.getDeviceCount()


@pytest.mark.skipif(_gpu_count() < 2, reason=f"{GPU_ONLY}: two devices")
def test_points_on_another_device_are_evaluated_there():
    """Points on device 1 while device 0 is current: samples copied there, outputs there."""
    import cupy

    grid = Grid([(0.0, 1.0), (0.0, 1.0)], (8, 8))
    m0, m1 = grid.mesh()
    f = GridFunction(grid, 0.5 * m0 - 0.3 * m1)
    x = np.random.default_rng(5).uniform(-0.5, 1.5, size=(100, 2))
    with cupy.cuda.Device(1):
        xd = cupy.asarray(x)
    with cupy.cuda.Device(0):
        val, grad = f.value_and_grad(xd)
    assert val.device.id == 1 and grad.device.id == 1
    ref_val, ref_grad = f.value_and_grad(x)
    np.testing.assert_allclose(val.get(), ref_val, atol=1e-12)
    np.testing.assert_allclose(grad.get(), ref_grad, atol=1e-12)
