"""The CUDA backend's kernels against the NumPy reference backend, and the solver on them.

Without a GPU every test runs in numba's CUDA simulator, in a subprocess
(:func:`test_kernels_under_the_simulator`; see ``_cuda_sim.py``), on tiny grids (1D n = 7,
2D 5 x 4, B = 1 and 2). On a machine with a GPU the same tests run directly on CuPy arrays.
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("numba_cuda", reason="numba-cuda is not installed (the 'cuda' extra)")

from _cuda_sim import (
    GPU_ONLY,
    NOT_HERE,
    OUTSIDE_ONLY,
    RUNS_HERE,
    STATUS,
    run_module_in_simulator,
)
from references import kr_lp_2d_cityblock_highs, socp_2d_euclidean_cvxpy, w1_1d_closed_form

import otgrid as og
from otgrid import backends
from otgrid.critic.backends import GridKernels

here = pytest.mark.skipif(not RUNS_HERE, reason=NOT_HERE)

CASES = [((7,), (0.5,)), ((5, 4), (0.5, 0.25))]
NORMS = ["euclidean", "cityblock"]


@pytest.mark.skipif(RUNS_HERE, reason=f"CUDA runs in this process, the tests ran directly "
                                       f"{OUTSIDE_ONLY}")
def test_kernels_under_the_simulator():
    out = run_module_in_simulator(__file__)
    assert "failed" not in out


def test_cuda_backend_without_a_device_raises_a_clear_error():
    from otgrid.critic.backend_cuda import CudaGridKernels

    if RUNS_HERE:
        pytest.skip(f"a CUDA device (or the simulator) is usable here {OUTSIDE_ONLY}")
    assert STATUS.startswith("unavailable: ")
    with pytest.raises(RuntimeError, match="backend='cuda' cannot run here"):
        CudaGridKernels((4, 4), (1.0, 1.0), "euclidean", np.float64)
    grid = og.Grid((0.0, 1.0), 8)
    mu, nu = np.full(8, 1 / 8), np.linspace(1.0, 2.0, 8) / 12.0
    with pytest.raises(RuntimeError, match="backend='cuda' cannot run here"):
        og.solve_critic(mu, nu, grid, backend="cuda")
    # "auto" never falls on the GPU without one, whatever the size
    assert backends.resolve_backend("auto", 2, 1 << 30) == "numba"
    assert og.solve_critic(mu, nu, grid, backend="auto").backend == "numba"


def test_cuda_backend_is_for_1d_and_2d_grids():
    with pytest.raises(ValueError, match="supports 1D and 2D grids"):
        backends.resolve_backend("cuda", 3)
    assert backends.resolve_backend("auto", 3, 1 << 30) == "numpy"
    assert "cuda" in backends.available_backends()


# ---------------------------------------------------------------------------------- helpers
def _tol(dtype) -> dict:
    return {"rtol": 1e-12, "atol": 1e-12} if dtype == np.float64 else {"rtol": 2e-5,
                                                                        "atol": 2e-5}


def _random_iterates(shape, nb, dtype, seed=0):
    """Random f, u, c and a flow y that is zero on the last index of its axis."""
    rng = np.random.default_rng(seed)
    f = rng.normal(size=(nb, *shape)).astype(dtype)
    u = rng.normal(size=(nb, *shape)).astype(dtype)
    c = rng.normal(size=(nb, *shape)).astype(dtype)
    y = rng.normal(size=(nb, len(shape), *shape)).astype(dtype)
    for k in range(len(shape)):
        idx = [slice(None)] * (len(shape) + 2)
        idx[1], idx[2 + k] = k, -1
        y[tuple(idx)] = 0
    return f, u, c, y


def _kernels(shape, dx, norm, dtype):
    from otgrid.critic.backend_cuda import CudaGridKernels

    return GridKernels(shape, dx, norm, dtype), CudaGridKernels(shape, dx, norm, dtype)


# ---------------------------------------------------------------------------------- kernels
@here
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("norm", NORMS)
@pytest.mark.parametrize(("shape", "dx"), CASES)
def test_loop_body_matches_numpy(shape, dx, norm, dtype):
    """dual_step (per-problem steps, changed between calls) and residual, B = 2."""
    ref, cu = _kernels(shape, dx, norm, dtype)
    assert cu.name == "cuda" and cu.shape == shape and cu.ndim == len(shape)
    assert cu.dtype == np.dtype(dtype)
    f, u, c, y = _random_iterates(shape, 2, dtype)
    with cu.session():
        fd, ud, yd = cu.to_device(f), cu.to_device(u), cu.to_device(y)
        for tau in (np.array([0.3, 1.7]), np.array([2.5, 0.05])):
            f_ref, y_ref = np.empty_like(f), y.copy()
            ref.dual_step(f, u, y_ref, f_ref, tau, 1.0 / tau)
            f_out, y_dev = cu.xp.empty_like(fd), yd.copy()
            cu.dual_step(fd, ud, y_dev, f_out, tau, 1.0 / tau)
            np.testing.assert_allclose(cu.to_host(f_out), f_ref, **_tol(dtype))
            np.testing.assert_allclose(cu.to_host(y_dev), y_ref, **_tol(dtype))
        r_ref = np.empty_like(c)
        ref.residual(c, y, r_ref)
        r = cu.xp.empty_like(fd)
        cu.residual(cu.to_device(c), yd, r)
        np.testing.assert_allclose(cu.to_host(r), r_ref, **_tol(dtype))


@here
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("norm", NORMS)
@pytest.mark.parametrize(("shape", "dx"), CASES)
def test_certificate_kernels_match_numpy(shape, dx, norm, dtype):
    """Reductions, corrected flow, Poisson solve, flow critic and repair, B = 2."""
    ref, cu = _kernels(shape, dx, norm, dtype)
    f, u, c, y = _random_iterates(shape, 2, dtype, seed=1)
    fd, ud, cd, yd = map(cu.to_device, (f, u, c, y))
    tol = _tol(dtype)
    for name, args, dev_args in [("max_grad_norm", (f,), (fd,)), ("grad_sq", (f,), (fd,)),
                                 ("flow_cost", (y, u), (yd, ud)), ("dot", (c, f), (cd, fd)),
                                 ("sq_norm", (y,), (yd,))]:
        got = getattr(cu, name)(*dev_args)
        assert isinstance(got, np.ndarray) and got.dtype == np.float64 and got.shape == (2,)
        np.testing.assert_allclose(got, getattr(ref, name)(*args), **tol, err_msg=name)
    np.testing.assert_allclose(cu.to_host(cu.corrected_flow(yd, ud)), ref.corrected_flow(y, u),
                               **tol)
    cz = c - c.mean(axis=tuple(range(1, c.ndim)), keepdims=True)
    u_dev = cu.poisson(cu.to_device(cz))
    assert u_dev.dtype == np.dtype(dtype)
    np.testing.assert_allclose(cu.to_host(u_dev), ref.poisson(cz), **tol)
    np.testing.assert_allclose(cu.to_host(cu.flow_critic(yd)), ref.flow_critic(y), **tol)
    np.testing.assert_allclose(cu.to_host(cu.repair(fd)), ref.repair(f), **tol)


@here
@pytest.mark.parametrize(("shape", "dx"), CASES)
def test_single_problem_batch(shape, dx):
    """B = 1 with a scalar-like step array, and the Poisson solve inverts D^T D."""
    ref, cu = _kernels(shape, dx, "euclidean", np.float64)
    f, u, c, y = _random_iterates(shape, 1, np.float64, seed=2)
    tau = np.array([0.7])
    f_ref, y_ref = np.empty_like(f), y.copy()
    ref.dual_step(f, u, y_ref, f_ref, tau, 1.0 / tau)
    f_out, yd = cu.xp.empty_like(cu.to_device(f)), cu.to_device(y)
    cu.dual_step(cu.to_device(f), cu.to_device(u), yd, f_out, tau, 1.0 / tau)
    np.testing.assert_allclose(cu.to_host(yd), y_ref, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(cu.to_host(f_out), f_ref, rtol=1e-12, atol=1e-12)
    # D^T D (poisson(r)) = r for a zero-mean r: residual(0, D u) = -D^T D u
    r = c - c.mean()
    ud = cu.poisson(cu.to_device(r))
    zeros = cu.xp.zeros_like(ud)
    back = cu.xp.empty_like(ud)
    cu.residual(zeros, cu.corrected_flow(cu.xp.zeros_like(yd), ud), back)
    np.testing.assert_allclose(-cu.to_host(back), r, atol=1e-12)


@here
def test_kernels_reject_bad_configurations():
    from otgrid.critic.backend_cuda import CudaGridKernels

    with pytest.raises(ValueError, match="1D and 2D"):
        CudaGridKernels((3, 3, 3), (1.0, 1.0, 1.0), "euclidean", np.float64)
    with pytest.raises(ValueError, match="float32 or float64"):
        CudaGridKernels((4,), (1.0,), "euclidean", np.float16)


# ---------------------------------------------------------------------------------- GPU code
def _compile_ptx_or_skip():
    """``numba.cuda.compile_ptx`` when the real CUDA target can compile here (NVRTC and NVVM
    found, e.g. from the ``cuda-toolkit`` wheels); skip otherwise. No GPU is needed."""
    from _cuda_sim import simulator_here

    if simulator_here():
        pytest.skip(f"compiling PTX needs the real CUDA target, not the simulator {OUTSIDE_ONLY}")
    from numba import cuda
    from numba import types as t

    def probe(a):
        a[0] = 1.0

    try:
        cuda.compile_ptx(probe, (t.float32[::1],), cc=(8, 0))
    except Exception as exc:  # NVRTC / NVVM libraries not found
        pytest.skip(f"the CUDA toolkit's NVRTC/NVVM are not installed here "
                    f"({type(exc).__name__}) {OUTSIDE_ONLY}")
    return cuda.compile_ptx


def test_grid_kernels_compile_for_the_gpu_in_single_precision():
    """Every grid kernel types and lowers on the real CUDA target (sm_80) with float32 arrays,
    and the float32 stencils do their arithmetic in float32 (float64 only in conversions)."""
    compile_ptx = _compile_ptx_or_skip()
    from numba import types as t

    from otgrid.kernels import critic_cuda as k

    def a(dt, nd):
        return t.Array(dt, nd, "C")

    f32, f64, b = t.float32, t.float64, t.boolean
    g1, y1, g2, y2, s = a(f32, 2), a(f32, 3), a(f32, 3), a(f32, 4), a(f32, 1)
    cells, top = a(f64, 2), a(f64, 1)
    sigs = {
        k.dual_step_1d: (g1, g1, y1, g1, s, s, f32, b),
        k.residual_1d: (g1, y1, g1, f32),
        k.grad_norm_cells_1d: (g1, cells, f32, b),
        k.grad_sq_cells_1d: (g1, cells, f32),
        k.flow_norm_cells_1d: (y1, g1, cells, f32, b),
        k.corrected_flow_1d: (y1, g1, y1, f32),
        k.unit_directions_1d: (y1, top, y1, b),
        k.dual_step_2d: (g2, g2, y2, g2, s, s, f32, f32, b),
        k.residual_2d: (g2, y2, g2, f32, f32),
        k.grad_norm_cells_2d: (g2, cells, f32, f32, b),
        k.grad_sq_cells_2d: (g2, cells, f32, f32),
        k.flow_norm_cells_2d: (y2, g2, cells, f32, f32, b),
        k.corrected_flow_2d: (y2, g2, y2, f32, f32),
        k.unit_directions_2d: (y2, top, y2, b),
    }
    for kern, sig in sigs.items():
        ptx, _ = compile_ptx(kern.py_func, sig, cc=(8, 0))
        assert ".entry" in ptx
        if kern in (k.dual_step_1d, k.dual_step_2d, k.residual_1d, k.residual_2d):
            arith = [ln for ln in ptx.splitlines() if ".f64" in ln
                     and not ln.strip().startswith((".reg", "cvt", "mov"))]
            assert not arith, f"{kern.py_func.__name__}: float64 arithmetic {arith[:3]}"


# ---------------------------------------------------------------------------------- solver
def _solve_on_cuda(monkeypatch, *args, **kwargs):
    """solve_critic on the CUDA backend."""
    return og.solve_critic(*args, backend="cuda", **kwargs)


def _masses(shape, nb, seed):
    rng = np.random.default_rng(seed)
    axes = tuple(range(1, 1 + len(shape)))
    mu, nu = rng.random((nb, *shape)), rng.random((nb, *shape))
    return mu / mu.sum(axis=axes, keepdims=True), nu / nu.sum(axis=axes, keepdims=True)


@here
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_solver_1d_matches_closed_form(monkeypatch, dtype):
    grid = og.Grid((0.0, 3.5), 7)
    mu, nu = _masses((7,), 2, seed=3)
    res = _solve_on_cuda(monkeypatch, mu, nu, grid, norm="euclidean", tol=1e-8, dtype=dtype)
    for b, r in enumerate(res):
        exact = w1_1d_closed_form(mu[b], nu[b], grid.dx[0])
        assert r.converged
        assert r.lower - 1e-9 <= exact <= r.upper + 1e-9
        assert r.w1 == pytest.approx(exact, rel=1e-7)


@here
@pytest.mark.parametrize(("norm", "dtype"), [("cityblock", np.float32),
                                             ("euclidean", np.float64)])
def test_solver_2d_matches_numpy_backend(monkeypatch, norm, dtype):
    grid = og.Grid([(0.0, 2.5), (0.0, 1.0)], (5, 4))
    mu, nu = _masses((5, 4), 1, seed=4)
    res = _solve_on_cuda(monkeypatch, mu[0], nu[0], grid, norm=norm, tol=1e-6, dtype=dtype)
    ref = og.solve_critic(mu[0], nu[0], grid, norm=norm, tol=1e-6, backend="numpy", dtype=dtype)
    assert res.converged and ref.converged
    assert isinstance(res.critic, np.ndarray) and res.critic.shape == grid.shape
    assert res.iterations == ref.iterations
    assert res.w1 == pytest.approx(ref.w1, rel=2e-6)
    if norm == "cityblock":  # an exact LP value from HiGHS brackets the certificate
        exact, _ = kr_lp_2d_cityblock_highs(mu[0], nu[0], grid.dx)
        assert res.lower - 1e-9 <= exact <= res.upper + 1e-9
    else:  # the SOCP solved by cvxpy + Clarabel to 1e-10
        pytest.importorskip("cvxpy", reason="cvxpy is not installed (the 'test' extra)")
        socp = socp_2d_euclidean_cvxpy(mu[0], nu[0], grid.dx)
        assert res.lower - 1e-7 <= socp.value <= res.upper + 1e-7


@here
def test_solver_batch_and_warm_start():
    grid = og.Grid([(0.0, 2.5), (0.0, 1.0)], (5, 4))
    mu, nu = _masses((5, 4), 3, seed=5)
    res = _solve_on_cuda(None, mu, nu, grid, tol=1e-6)
    assert [r.backend for r in res] == ["cuda"] * 3
    for b, r in enumerate(res):
        ref = og.solve_critic(mu[b], nu[b], grid, tol=1e-6, backend="numpy")
        assert r.converged
        assert r.lower <= ref.upper + 1e-12 and ref.lower <= r.upper + 1e-12
    warm = _solve_on_cuda(None, mu, nu, grid, tol=1e-6, warm_start=res)
    assert all(w.converged for w in warm)
    assert sum(w.iterations for w in warm) <= sum(r.iterations for r in res)


# ---------------------------------------------------------------------------------- real GPU
@pytest.mark.skipif(not STATUS == "available", reason=f"{GPU_ONLY} ({STATUS})")
def test_device_arrays_stay_on_the_gpu():
    import cupy

    _, cu = _kernels((16, 8), (0.1, 0.2), "euclidean", np.float32)
    assert cu.xp is cupy
    f, u, _, y = _random_iterates((16, 8), 3, np.float32)
    fd, ud, yd = map(cu.to_device, (f, u, y))
    assert isinstance(fd, cupy.ndarray) and fd.dtype == np.float32 and fd.flags.c_contiguous
    f_out = cupy.empty_like(fd)
    cu.dual_step(fd, ud, yd, f_out, np.array([0.1, 0.2, 0.3]), np.array([10.0, 5.0, 1 / 0.3]))
    assert isinstance(cu.poisson(fd - fd.mean(axis=(1, 2), keepdims=True)), cupy.ndarray)
    assert isinstance(cu.corrected_flow(yd, ud), cupy.ndarray)
    assert isinstance(cu.flow_cost(yd, ud), np.ndarray)


# ---------------------------------------------------------------------------------- CLI
def test_info_reports_the_cuda_backend(capsys):
    from otgrid.cli.main import main

    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"otgrid {og.__version__}")
    cuda_line = next(ln for ln in out.splitlines() if ln.split()[:1] == ["cuda"])
    assert cuda_line.split(None, 1)[1].startswith(STATUS)
    assert any(ln.split()[:2] == ["numba", "available"] for ln in out.splitlines())
