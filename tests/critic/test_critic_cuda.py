"""The CUDA backend of the grid critic against references that share none of its code.

Without a GPU every test marked ``here`` runs in numba's CUDA simulator, in a subprocess
(:func:`test_kernels_under_the_simulator`; see ``_cuda_sim.py``), on tiny grids (1D n = 7,
2D 5 x 4, B = 1 and 2). On a machine with a GPU the same tests run directly on CuPy arrays.

References: the operators written out here as sparse matrices from their definition (forward
differences, zero on the last index of each axis), with the shrinkage and norms spelled out per
cell; dense least squares (``numpy.linalg.lstsq``) for the Poisson solve and the flow critic
(under the simulator the backend's own Poisson solve is SciPy's DCT); the 1D closed form, the
cityblock LP solved by SciPy's HiGHS and the euclidean SOCP solved by cvxpy + Clarabel for the
solver. The repair sweep is the Numba kernel every backend runs, so it is checked by what it
guarantees (feasibility, fixed points), not against another backend. Solves on two backends are
compared by tolerance on W and on the certified bounds, never by iteration counts (a GPU's DCT
rounds differently and moves restart and stopping decisions).

Grid limits: the ``limits`` fixture runs the kernel tests a second time with the launch grid
capped at 2 blocks of 4 threads, fewer threads than cells, so every kernel's grid-stride loop
covers cells beyond the grid (``otgrid/kernels/_cuda.py``).
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

pytest.importorskip("numba_cuda", reason="numba-cuda is not installed (the 'cuda' extra)")

from _cuda_sim import (
    GPU_ONLY,
    NOT_HERE,
    OUTSIDE_ONLY,
    RUNS_HERE,
    STATUS,
    run_module_in_simulator,
)
from references import (
    kr_lp_2d_cityblock_highs,
    socp_2d_euclidean_cvxpy,
    w1_1d_closed_form,
    weighted_group_shrink_brentq,
)

import otgrid as og
from otgrid import backends
from otgrid.critic import backend_numpy
from otgrid.critic.backends import make_kernels

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


# ---------------------------------------------------------------------------- grid limits
def test_launch_grids_stay_within_the_cuda_limits():
    """Pure arithmetic (no GPU): sizes beyond every limit give capped grids."""
    from otgrid.kernels._cuda import MAX_GRID_X, MAX_GRID_Y, grid_blocks

    assert (MAX_GRID_X, MAX_GRID_Y) == (2**31 - 1, 65_535)
    assert grid_blocks(1000, 256) == 4
    assert grid_blocks(256 * MAX_GRID_X, 256) == MAX_GRID_X  # exactly at the limit
    assert grid_blocks(256 * MAX_GRID_X + 1, 256) == MAX_GRID_X  # one thread more: capped
    assert grid_blocks(1 << 45, 256) == MAX_GRID_X
    assert grid_blocks(0, 256) == 1  # an empty launch is still a valid grid
    assert grid_blocks(70_000, 1, MAX_GRID_Y) == MAX_GRID_Y
    assert grid_blocks(65_535, 1, MAX_GRID_Y) == 65_535
    with pytest.raises(ValueError, match="threads"):
        grid_blocks(10, 0)


@pytest.fixture(params=["uncapped", "capped"])
def limits(request, monkeypatch):
    """``"capped"``: launches get at most 2 blocks of 4 threads (8 threads for 14 or 40 cells)."""
    if request.param == "capped":
        from otgrid import _device
        from otgrid.kernels import _cuda

        monkeypatch.setattr(_cuda, "MAX_GRID_X", 2)
        monkeypatch.setattr(_device, "THREADS_PER_BLOCK", 4)
    return request.param


# ------------------------------------------------------------------ independent references
def _tol(dtype) -> dict:
    return {"rtol": 1e-12, "atol": 1e-12} if dtype == np.float64 else {"rtol": 2e-5,
                                                                        "atol": 2e-5}


def _diff(n: int, h: float) -> sp.csr_matrix:
    """``(f_{i+1} - f_i) / h`` on ``n`` points, the last row zero."""
    d = sp.lil_matrix((n, n))
    for i in range(n - 1):
        d[i, i], d[i, i + 1] = -1.0 / h, 1.0 / h
    return d.tocsr()


def _grad_matrix(shape, dx) -> sp.csr_matrix:
    """``D``: (ndim * cells, cells), one block of rows per axis, C order (a flow's layout)."""
    if len(shape) == 1:
        return _diff(shape[0], dx[0])
    nx, ny = shape
    return sp.vstack([sp.kron(_diff(nx, dx[0]), sp.identity(ny)),
                      sp.kron(sp.identity(nx), _diff(ny, dx[1]))]).tocsr()


def _cell_norms(v: np.ndarray, norm: str, dual: bool) -> np.ndarray:
    """Per-cell norm of a flow-shaped ``v`` (ndim, *shape): 2-norm for "euclidean"; for
    "cityblock" the inf-norm of a gradient (``dual=False``) or the 1-norm of a flow."""
    if norm == "euclidean":
        return np.sqrt(np.sum(v * v, axis=0))
    return np.max(np.abs(v), axis=0) if not dual else np.sum(np.abs(v), axis=0)


class Dense:
    """The backend's operations written out from their definitions, in float64."""

    def __init__(self, shape, dx, norm, weighted=False):
        self.shape, self.norm, self.nd = tuple(shape), norm, len(shape)
        self.D = _grad_matrix(shape, dx).toarray()
        # the dual step's weights per axis (``weighted``): dx_k / max dx
        w = np.asarray(dx, dtype=np.float64) / max(dx) if weighted else np.ones(len(dx))
        self.w = w.reshape(-1, *(1,) * self.nd)

    def grad(self, f):  # (*shape) -> (ndim, *shape)
        return (self.D @ f.astype(np.float64).ravel()).reshape(self.nd, *self.shape)

    def div_t(self, y):  # D^T y: (ndim, *shape) -> (*shape)
        return (self.D.T @ y.astype(np.float64).ravel()).reshape(self.shape)

    def mask(self):
        """1 on the flow components that exist (not on the last index of their axis)."""
        return np.abs(self.D).sum(axis=1).reshape(self.nd, *self.shape) > 0

    def shrink(self, v, s):
        """``argmin_w |w| + sum_k (w_k - v_k)^2 / (2 s_k)`` per cell (``s``: per axis): the
        soft threshold ``s_k`` per component (cityblock); the euclidean one, with ``t = |w|``
        the root of ``sum_k v_k^2 / (t + s_k)^2 = 1`` by SciPy's brentq, ``w_k = v_k t /
        (t + s_k)`` (0 where ``sum_k (v_k / s_k)^2 <= 1``)."""
        s = np.broadcast_to(s, v.shape)
        if self.norm != "euclidean":
            return np.sign(v) * np.maximum(np.abs(v) - s, 0.0)
        out = np.zeros_like(v)
        for idx in np.ndindex(*v.shape[1:]):
            cell = (slice(None), *idx)
            out[cell] = weighted_group_shrink_brentq(v[cell], s[cell])
        return out

    def dual_step(self, f, u, y, tau, sigma, rho=1.0):
        fb = f + 2 * tau * u
        s = sigma * self.w
        plain = self.shrink(y + s * self.grad(fb), s) * self.mask()
        return f + rho * tau * u, y + rho * (plain - y)

    def lstsq(self, a, b):
        """Minimum-norm least-squares solution (zero mean where ``a``'s null space is 1)."""
        return np.linalg.lstsq(a, b.ravel(), rcond=None)[0]

    def poisson(self, r):
        return self.lstsq(self.D.T @ self.D, r).reshape(self.shape)

    def flow_critic(self, yc):
        n = _cell_norms(yc, self.norm, dual=True)
        keep = n > 1e-9 * n.max()
        if self.norm == "euclidean":
            yhat = np.where(keep, yc / np.where(keep, n, 1.0), 0.0)
        else:
            yhat = np.where(np.abs(yc) > 1e-9 * n.max(), np.sign(yc), 0.0)
        return self.lstsq(self.D, yhat).reshape(self.shape)


def _random_iterates(shape, nb, dtype, seed=0):
    """Random f, u, c and a flow y that is zero on the last index of its axis."""
    rng = np.random.default_rng(seed)
    f = rng.normal(size=(nb, *shape)).astype(dtype)
    u = rng.normal(size=(nb, *shape)).astype(dtype)
    c = rng.normal(size=(nb, *shape)).astype(dtype)
    y = rng.normal(size=(nb, len(shape), *shape)).astype(dtype)
    y *= Dense(shape, (1.0,) * len(shape), "euclidean").mask()
    return f, u, c, y


def _cuda_kernels(shape, dx, norm, dtype):
    from otgrid.critic.backend_cuda import CudaGridKernels

    return CudaGridKernels(shape, dx, norm, dtype)


# ---------------------------------------------------------------------------------- kernels
@here
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("norm", NORMS)
@pytest.mark.parametrize(("shape", "dx"), CASES)
@pytest.mark.parametrize("weighted", [False, True])
def test_loop_body_matches_the_definitions(shape, dx, norm, dtype, weighted, limits,
                                           monkeypatch):
    """dual_step (per-problem steps, changed between calls) and residual, B = 2; with or
    without the per-axis weights of anisotropic cells (``weighted``: used from any ratio of
    the cells' sides, else never; these are twice as long along x as along y)."""
    ratio = 1.0 if weighted else np.inf
    monkeypatch.setattr(backend_numpy, "AXIS_WEIGHTS_MIN_RATIO",
                        {"euclidean": ratio, "cityblock": ratio})
    ref, cu = Dense(shape, dx, norm, weighted), _cuda_kernels(shape, dx, norm, dtype)
    assert cu.weighted == (weighted and len(shape) == 2)
    assert cu.name == "cuda" and cu.shape == shape and cu.ndim == len(shape)
    assert cu.dtype == np.dtype(dtype)
    f, u, c, y = _random_iterates(shape, 2, dtype)
    tol = _tol(dtype)
    with cu.session():
        fd, ud, yd = cu.to_device(f), cu.to_device(u), cu.to_device(y)
        for tau, rho in ((np.array([0.3, 1.7]), 1.0), (np.array([2.5, 0.05]), 1.8)):
            f_out, y_dev = cu.xp.empty_like(fd), yd.copy()
            cu.dual_step(fd, ud, y_dev, f_out, tau, 1.0 / tau, rho)
            for b in range(2):
                f_ref, y_ref = ref.dual_step(f[b], u[b], y[b], tau[b], 1.0 / tau[b], rho)
                np.testing.assert_allclose(cu.to_host(f_out)[b], f_ref, **tol)
                np.testing.assert_allclose(cu.to_host(y_dev)[b], y_ref, **tol)
        r = cu.xp.empty_like(fd)
        cu.residual(cu.to_device(c), yd, r)
        for b in range(2):
            np.testing.assert_allclose(cu.to_host(r)[b], c[b] - ref.div_t(y[b]), **tol)


@here
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("norm", NORMS)
@pytest.mark.parametrize(("shape", "dx"), CASES)
def test_certificate_kernels_match_the_definitions(shape, dx, norm, dtype, limits):
    """Reductions, corrected flow, Poisson solve and flow critic, B = 2."""
    ref, cu = Dense(shape, dx, norm), _cuda_kernels(shape, dx, norm, dtype)
    f, u, c, y = _random_iterates(shape, 2, dtype, seed=1)
    fd, ud, cd, yd = map(cu.to_device, (f, u, c, y))
    tol = _tol(dtype)
    f64, u64, c64, y64 = (a.astype(np.float64) for a in (f, u, c, y))
    expected = {
        "max_grad_norm": [_cell_norms(ref.grad(fb), norm, dual=False).max() for fb in f],
        "grad_sq": [np.sum(ref.grad(fb) ** 2) for fb in f],
        "flow_cost": [_cell_norms(yb + ref.grad(ub), norm, dual=True).sum()
                      for yb, ub in zip(y64, u64, strict=True)],
        "dot": np.sum((c64 * f64).reshape(2, -1), axis=1),
        "sq_norm": np.sum((y64 * y64).reshape(2, -1), axis=1),
    }
    args = {"max_grad_norm": (fd,), "grad_sq": (fd,), "flow_cost": (yd, ud), "dot": (cd, fd),
            "sq_norm": (yd,)}
    for name, want in expected.items():
        got = getattr(cu, name)(*args[name])
        assert isinstance(got, np.ndarray) and got.dtype == np.float64 and got.shape == (2,)
        np.testing.assert_allclose(got, want, **tol, err_msg=name)
    for b, yc in enumerate(cu.to_host(cu.corrected_flow(yd, ud))):
        np.testing.assert_allclose(yc, y64[b] + ref.grad(u[b]), **tol)
    cz = c - c.mean(axis=tuple(range(1, c.ndim)), keepdims=True)
    u_dev = cu.poisson(cu.to_device(cz))
    assert u_dev.dtype == np.dtype(dtype)
    for b in range(2):
        np.testing.assert_allclose(cu.to_host(u_dev)[b], ref.poisson(cz[b]),
                                   rtol=tol["rtol"], atol=10 * tol["atol"])
    # the flow critic of a float64 flow (the certificate works in float64), with a cell on each
    # side of the threshold 1e-9 max|y| below which a flow counts as zero
    cert = _cuda_kernels(shape, dx, norm, np.float64)
    for b in range(2):
        top = _cell_norms(y64[b], norm, dual=True).max()
        for cell, size in ((0, 1.2e-9), (1, 0.3e-9)):
            y64[(b, slice(None), *(cell,) * len(shape))] = [-size * top, size * top][:len(shape)]
    g = cu.to_host(cert.flow_critic(cert.to_device(y64)))
    for b in range(2):
        np.testing.assert_allclose(g[b], ref.flow_critic(y64[b]), rtol=1e-10, atol=1e-10)


@here
@pytest.mark.parametrize("norm", NORMS)
@pytest.mark.parametrize(("shape", "dx"), CASES)
def test_repair_on_the_device_gives_feasible_critics(shape, dx, norm):
    """The repair (the Numba sweep, through a host round trip) by what it guarantees: a
    feasible critic in 1D and for the cityblock norm, whatever ``f``; ``f`` itself when ``f``
    is already feasible (any norm); every cell moved only where its constraint binds."""
    ref, cu = Dense(shape, dx, norm), _cuda_kernels(shape, dx, norm, np.float64)
    rng = np.random.default_rng(3)
    f = 3.0 * rng.normal(size=(2, *shape))
    g_dev = cu.repair(cu.to_device(f))
    assert type(g_dev) is type(cu.to_device(f)) and g_dev.dtype == np.float64
    g = cu.to_host(g_dev)
    for b in range(2):
        norms = _cell_norms(ref.grad(g[b]), norm, dual=False)
        if len(shape) == 1 or norm == "cityblock":
            assert norms.max() <= 1 + 1e-12
        moved = g[b] != f[b]
        assert np.all(norms[moved] >= 1 - 1e-12)  # moved cells sit on (or beyond) the bound
    lip = np.array([_cell_norms(ref.grad(fb), norm, dual=False).max() for fb in f])
    feasible = f / (1.001 * lip[:, None] if len(shape) == 1 else 1.001 * lip[:, None, None])
    np.testing.assert_array_equal(cu.to_host(cu.repair(cu.to_device(feasible))), feasible)


@here
@pytest.mark.parametrize("norm", NORMS)
@pytest.mark.parametrize(("shape", "dx"), CASES)
def test_level_rescale_on_the_device_gives_feasible_critics(shape, dx, norm, monkeypatch):
    """The level-rescaled critic (the Numba kernel through a host round trip; off by default,
    so switched on here): a device array, feasible on 2D grids and equal to the host kernels'
    result; None in 1D."""
    monkeypatch.setattr(backend_numpy, "LEVEL_BINS", 1024)
    ref, cu = Dense(shape, dx, norm), _cuda_kernels(shape, dx, norm, np.float64)
    f = 3.0 * np.random.default_rng(4).normal(size=(2, *shape))
    g_dev = cu.level_rescale(cu.to_device(f))
    if len(shape) != 2:
        assert g_dev is None
        return
    assert type(g_dev) is type(cu.to_device(f)) and g_dev.dtype == np.float64
    g = cu.to_host(g_dev)
    host = make_kernels("numba", shape, dx, norm, np.float64).level_rescale(f)
    np.testing.assert_array_equal(g, host)
    for b in range(2):  # feasible up to rounding: the map adds one rounding per bin
        slack = 4 * 1024 * np.finfo(float).eps * np.abs(g[b]).max() / min(dx)
        assert _cell_norms(ref.grad(g[b]), norm, dual=False).max() <= 1 + slack


@here
@pytest.mark.parametrize("norm", NORMS)
@pytest.mark.parametrize(("shape", "dx"), CASES)
def test_ascent_and_descent_on_the_device_match_the_host(shape, dx, norm):
    """The critic's ascent and the flow's descent (the Numba kernels through a host round
    trip): device arrays equal to the host kernels' results; None where they do not apply (1D;
    the descent with the cityblock norm)."""
    cu = _cuda_kernels(shape, dx, norm, np.float64)
    host = make_kernels("numba", shape, dx, norm, np.float64)
    rng = np.random.default_rng(5)
    g = host.repair(3.0 * rng.normal(size=(2, *shape)))
    g = g / np.maximum(1.0, host.max_grad_norm(g)).reshape(-1, *[1] * len(shape))
    c = rng.normal(size=(2, *shape))
    p = rng.normal(size=(2, len(shape), *shape))
    for dev, ref in ((cu.ascend(cu.to_device(g), cu.to_device(c)), host.ascend(g, c)),
                     (cu.descend(cu.to_device(p)), host.descend(p))):
        if ref is None:
            assert dev is None
            continue
        assert type(dev) is type(cu.to_device(g)) and dev.dtype == np.float64
        np.testing.assert_array_equal(cu.to_host(dev), ref)


@here
@pytest.mark.parametrize("norm", NORMS)
@pytest.mark.parametrize(("shape", "dx"), CASES)
def test_ray_critics_on_the_device_are_feasible(shape, dx, norm):
    """The ray critics (the Numba kernel through a host round trip): device arrays, feasible on
    2D grids up to rounding and equal to the host kernels' result; none in 1D."""
    ref, cu = Dense(shape, dx, norm), _cuda_kernels(shape, dx, norm, np.float64)
    f = 3.0 * np.random.default_rng(4).normal(size=(2, *shape))
    gs = cu.ray_critics(cu.to_device(f))
    if len(shape) != 2:
        assert gs == []
        return
    host = make_kernels("numba", shape, dx, norm, np.float64).ray_critics(f)
    assert len(gs) == 2
    for g_dev, g_host in zip(gs, host, strict=True):
        assert type(g_dev) is type(cu.to_device(f)) and g_dev.dtype == np.float64
        g = cu.to_host(g_dev)
        np.testing.assert_array_equal(g, g_host)
        for b in range(2):
            slack = 64 * np.finfo(float).eps * np.abs(g[b]).max() / min(dx)
            assert _cell_norms(ref.grad(g[b]), norm, dual=False).max() <= 1 + slack


@here
@pytest.mark.parametrize(("shape", "dx"), CASES)
def test_single_problem_batch_and_poisson_inverse(shape, dx, limits):
    """B = 1, and ``D^T D poisson(r) = r`` for a zero-mean ``r`` through the device kernels."""
    ref, cu = Dense(shape, dx, "euclidean"), _cuda_kernels(shape, dx, "euclidean", np.float64)
    f, u, c, y = _random_iterates(shape, 1, np.float64, seed=2)
    tau = np.array([0.7])
    f_out, yd = cu.xp.empty_like(cu.to_device(f)), cu.to_device(y)
    cu.dual_step(cu.to_device(f), cu.to_device(u), yd, f_out, tau, 1.0 / tau)
    f_ref, y_ref = ref.dual_step(f[0], u[0], y[0], 0.7, 1 / 0.7)
    np.testing.assert_allclose(cu.to_host(yd)[0], y_ref, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(cu.to_host(f_out)[0], f_ref, rtol=1e-12, atol=1e-12)
    r = c - c.mean()
    ud = cu.poisson(cu.to_device(r))
    back = cu.xp.empty_like(ud)  # residual(0, D u) = -D^T D u
    cu.residual(cu.xp.zeros_like(ud), cu.corrected_flow(cu.xp.zeros_like(yd), ud), back)
    np.testing.assert_allclose(-cu.to_host(back), r, atol=1e-12)


@here
def test_kernels_reject_bad_configurations():
    from otgrid.critic.backend_cuda import CudaGridKernels

    with pytest.raises(ValueError, match="1D and 2D"):
        CudaGridKernels((3, 3, 3), (1.0, 1.0, 1.0), "euclidean", np.float64)
    with pytest.raises(ValueError, match="float32 or float64"):
        CudaGridKernels((4,), (1.0,), "euclidean", np.float16)


@here
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_launches_are_the_signatures_compiled_to_ptx(monkeypatch, dtype):
    """Every launch a solve makes has argument types listed in ``PTX_SIGNATURES`` (compiled for
    sm_90 by ``tests/test_ptx.py``): the compiled signatures are the ones that run."""
    import numba

    from otgrid._device import is_cupy_array, launch
    from otgrid.critic import backend_cuda
    from otgrid.kernels import critic_cuda as k

    def typeof(a):
        if is_cupy_array(a):
            a = a.get()  # (the types numba gives a CuPy array and its host copy are the same)
        return numba.typeof(a)

    seen = set()

    def recording(kernel, n, *args):
        seen.add((kernel, tuple(typeof(a) for a in args)))
        launch(kernel, n, *args)

    monkeypatch.setattr(backend_cuda, "launch", recording)
    for grid in (og.Grid((0.0, 3.5), 7), og.Grid([(0.0, 2.5), (0.0, 1.0)], (5, 4))):
        mu, nu = _masses(grid.shape, 1, seed=7)
        for norm in NORMS:
            og.solve_critic(mu[0], nu[0], grid, norm=norm, tol=1e-4, dtype=dtype,
                            backend="cuda")
    listed = {(kern, tuple(sig)) for kern, sig in k.PTX_SIGNATURES}
    assert seen, "no launch recorded"
    missing = [(kern.__name__, sig) for kern, sig in seen if (kern, sig) not in listed]
    assert not missing, f"launches not compiled by tests/test_ptx.py: {missing}"


# ---------------------------------------------------------------------------------- solver
def _masses(shape, nb, seed):
    rng = np.random.default_rng(seed)
    axes = tuple(range(1, 1 + len(shape)))
    mu, nu = rng.random((nb, *shape)), rng.random((nb, *shape))
    return mu / mu.sum(axis=axes, keepdims=True), nu / nu.sum(axis=axes, keepdims=True)


def _brackets(res, exact: float, slack: float = 1e-9) -> None:
    assert res.lower <= exact * (1 + slack) + 1e-15, (res.lower, exact)
    assert res.upper >= exact * (1 - slack) - 1e-15, (res.upper, exact)


@here
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_solver_1d_matches_closed_form(dtype):
    grid = og.Grid((0.0, 3.5), 7)
    mu, nu = _masses((7,), 2, seed=3)
    res = og.solve_critic(mu, nu, grid, norm="euclidean", tol=1e-8, dtype=dtype, backend="cuda")
    for b, r in enumerate(res):
        exact = w1_1d_closed_form(mu[b], nu[b], grid.dx[0])
        assert r.converged and r.backend == "cuda"
        _brackets(r, exact)
        assert r.w1 == pytest.approx(exact, rel=1e-7)


@here
@pytest.mark.parametrize(("norm", "dtype"), [("cityblock", np.float32), ("cityblock", np.float64),
                                             ("euclidean", np.float32), ("euclidean", np.float64)])
def test_solver_2d_brackets_the_exact_value(norm, dtype):
    """The CUDA solve brackets the LP (HiGHS) / SOCP (Clarabel) value; so does the NumPy
    backend's, and the two W agree to the tolerance (not the same iterations)."""
    grid = og.Grid([(0.0, 2.5), (0.0, 1.0)], (5, 4))
    mu, nu = _masses((5, 4), 1, seed=4)
    tol = 1e-6
    res = og.solve_critic(mu[0], nu[0], grid, norm=norm, tol=tol, dtype=dtype, backend="cuda")
    ref = og.solve_critic(mu[0], nu[0], grid, norm=norm, tol=tol, dtype=dtype, backend="numpy")
    assert res.converged and ref.converged and res.backend == "cuda"
    assert isinstance(res.critic, np.ndarray) and res.critic.shape == grid.shape
    if norm == "cityblock":
        exact, _ = kr_lp_2d_cityblock_highs(mu[0], nu[0], grid.dx)
        slack = 1e-9
    else:
        pytest.importorskip("cvxpy", reason="cvxpy is not installed (the 'test' extra)")
        exact, slack = socp_2d_euclidean_cvxpy(mu[0], nu[0], grid.dx).value, 1e-7
    for r in (res, ref):
        _brackets(r, exact, slack)
        assert r.gap <= tol * r.upper + 1e-15
        assert abs(r.w1 - exact) <= r.gap + slack * exact
    assert abs(res.w1 - ref.w1) <= 2 * tol * exact


@here
def test_solver_batch_and_warm_start():
    grid = og.Grid([(0.0, 2.5), (0.0, 1.0)], (5, 4))
    mu, nu = _masses((5, 4), 3, seed=5)
    res = og.solve_critic(mu, nu, grid, tol=1e-6, norm="cityblock", backend="cuda")
    assert [r.backend for r in res] == ["cuda"] * 3
    for b, r in enumerate(res):
        exact, _ = kr_lp_2d_cityblock_highs(mu[b], nu[b], grid.dx)
        assert r.converged
        _brackets(r, exact)
    warm = og.solve_critic(mu, nu, grid, tol=1e-6, norm="cityblock", backend="cuda",
                           warm_start=res)
    assert all(w.converged for w in warm)
    for b, w in enumerate(warm):
        _brackets(w, kr_lp_2d_cityblock_highs(mu[b], nu[b], grid.dx)[0])
    assert sum(w.iterations for w in warm) <= sum(r.iterations for r in res)


# ---------------------------------------------------------------------------------- real GPU
@pytest.mark.skipif(not STATUS == "available", reason=GPU_ONLY)
def test_device_arrays_stay_on_the_gpu():
    import cupy

    cu = _cuda_kernels((16, 8), (0.1, 0.2), "euclidean", np.float32)
    assert cu.xp is cupy
    f, u, _, y = _random_iterates((16, 8), 3, np.float32)
    fd, ud, yd = map(cu.to_device, (f, u, y))
    assert isinstance(fd, cupy.ndarray) and fd.dtype == np.float32 and fd.flags.c_contiguous
    f_out = cupy.empty_like(fd)
    cu.dual_step(fd, ud, yd, f_out, np.array([0.1, 0.2, 0.3]), np.array([10.0, 5.0, 1 / 0.3]))
    assert isinstance(cu.poisson(fd - fd.mean(axis=(1, 2), keepdims=True)), cupy.ndarray)
    assert isinstance(cu.corrected_flow(yd, ud), cupy.ndarray)
    assert isinstance(cu.flow_cost(yd, ud), np.ndarray)


def _gpu_count() -> int:
    if STATUS != "available":
        return 0
    import cupy

    return cupy.cuda.runtime.getDeviceCount()


@pytest.mark.skipif(_gpu_count() < 2, reason=f"{GPU_ONLY}: two devices")
def test_launches_run_on_the_arrays_device():
    """Arrays on device 1 while device 0 is current: the kernels run on device 1."""
    import cupy

    shape, dx = (5, 4), (0.5, 0.25)
    ref = Dense(shape, dx, "euclidean")
    f, _, c, y = _random_iterates(shape, 1, np.float64, seed=6)
    with cupy.cuda.Device(1):
        cu = _cuda_kernels(shape, dx, "euclidean", np.float64)
        fd, cd, yd = cu.to_device(f), cu.to_device(c), cu.to_device(y)
        r = cupy.empty_like(fd)
    assert cu.device == 1 and r.device.id == 1
    with cupy.cuda.Device(0):
        cu.residual(cd, yd, r)
        got = cu.max_grad_norm(fd)
    np.testing.assert_allclose(r.get()[0], c[0] - ref.div_t(y[0]), atol=1e-12)
    np.testing.assert_allclose(got, [_cell_norms(ref.grad(f[0]), "euclidean", False).max()])
    with pytest.raises(ValueError, match="one device"):
        from otgrid._device import device_id

        device_id(fd, cupy.zeros(3))  # device 0's array beside device 1's


# ---------------------------------------------------------------------------------- CLI
def test_info_reports_the_cuda_backend(capsys):
    from otgrid.cli.main import main

    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"otgrid {og.__version__}")
    cuda_line = next(ln for ln in out.splitlines() if ln.split()[:1] == ["cuda"])
    assert cuda_line.split(None, 1)[1].startswith(STATUS)
    assert any(ln.split()[:2] == ["numba", "available"] for ln in out.splitlines())
