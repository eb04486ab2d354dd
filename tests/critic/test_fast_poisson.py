"""The iteration's Poisson solve: float32 transforms for float64 iterates (CPU backends), and
on 2D Numba grids a DCT pair along one axis with tridiagonal solves along the other.

The preconditioner is then applied with an error relative to the residual: the solves must
reach the same certified answers, and the certificate's flow corrections stay in float64.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import otgrid as og
from otgrid.critic import backend_numpy
from otgrid.critic.backends import make_kernels


@pytest.mark.parametrize("backend", ["numpy", "numba"])
@pytest.mark.parametrize("shape", [(300,), (40, 56)])
def test_poisson_step_runs_float32_transforms_of_a_float64_residual(backend, shape):
    kern = make_kernels(backend, shape, [0.1] * len(shape), "euclidean", np.float64)
    r = np.random.default_rng(0).standard_normal((2, *shape))
    r -= r.mean(axis=tuple(range(1, r.ndim)), keepdims=True)
    exact, fast = kern.poisson(r), kern.poisson_step(r)
    assert fast.dtype == np.float32 and kern.fast_poisson  # no cast back: one pass less
    err = np.abs(fast - exact).max() / np.abs(exact).max()
    assert 1e-12 < err < 1e-5  # float32 transforms, not float64 ones


@pytest.mark.parametrize("backend", ["numpy", "numba"])
@pytest.mark.parametrize("shape", [(300,), (40, 56)])
def test_the_dual_step_reads_the_float32_solution_as_its_float64_cast(backend, shape):
    """The step's solution stays float32; the dual step of the float64 iterates computes with
    it exactly what it computed with the solution cast to float64 (bit for bit)."""
    kern = make_kernels(backend, shape, [0.1] * len(shape), "euclidean", np.float64)
    rng = np.random.default_rng(7)
    f = rng.standard_normal((2, *shape))
    y0 = rng.standard_normal((2, len(shape), *shape))
    u32 = rng.standard_normal((2, *shape)).astype(np.float32)
    tau = np.array([0.37, 1.9])
    outs = []
    for u in (u32, u32.astype(np.float64)):
        y, f_out = y0.copy(), np.empty_like(f)
        kern.dual_step(f, u, y, f_out, tau, 1.0 / tau)
        outs.append((y, f_out))
    for a, b in zip(*outs, strict=True):
        np.testing.assert_array_equal(a, b)


def test_poisson_step_in_float64_without_the_float32_transforms(monkeypatch):
    from otgrid.critic import backend_numba

    kern = make_kernels("numba", (32, 32), [0.1, 0.1], "euclidean", np.float64)
    r = np.random.default_rng(1).standard_normal((1, 32, 32))
    r -= r.mean()
    monkeypatch.setattr(backend_numpy, "POISSON_STEP_DTYPE", None)
    monkeypatch.setattr(backend_numba, "POISSON_LINES", False)  # the DCT pair itself
    np.testing.assert_array_equal(kern.poisson_step(r), kern.poisson(r))
    kern32 = make_kernels("numba", (32, 32), [0.1, 0.1], "euclidean", np.float32)
    r32 = r.astype(np.float32)
    np.testing.assert_array_equal(kern32.poisson_step(r32), kern32.poisson(r32))


@pytest.mark.parametrize("shape", [(2, 7), (7, 2), (3, 3), (40, 56), (130, 257)])
def test_poisson_lines_solve_the_neumann_problem(monkeypatch, shape):
    """The step's 2D solve (a DCT pair along y, tridiagonal solves along x) in float64: the
    zero-mean solution of ``D^T S D u = r - mean(r)`` (checked by applying ``D^T S D``, which
    is ``D^T D`` of the grid of inverse cell sizes ``kern.step_inv_dx``: these cells are not
    square), equal to the DCT pair's; the one-thread and parallel kernels agree. The checks'
    solves are those of the real grid's ``D^T D``."""
    from otgrid.critic import backend_numba
    from otgrid.critic import operators as ops

    monkeypatch.setattr(backend_numpy, "POISSON_STEP_DTYPE", None)
    # the step in the metric of per-axis weights (by default from a ratio of 1 000 in the
    # euclidean norm)
    monkeypatch.setattr(backend_numpy, "AXIS_WEIGHTS_MIN_RATIO", {"euclidean": 1.0})
    dx = (0.3, 0.7)
    kern = make_kernels("numba", shape, dx, "euclidean", np.float64)
    r = np.random.default_rng(2).standard_normal((2, *shape)) + 5.0  # a mean to ignore
    inv_dx = tuple(1 / h for h in dx)
    step = kern.step_inv_dx
    w = np.array(kern.axis_weights).reshape(2, 1, 1)
    assert kern.weighted and step != inv_dx
    outs = []
    for parallel in (False, True):
        kern._bind(parallel)
        u = kern.poisson_step(r)
        for b in range(2):
            lap = ops.div_adjoint(w * ops.grad(u[b], inv_dx), inv_dx)  # D^T S D u
            np.testing.assert_allclose(lap, ops.div_adjoint(ops.grad(u[b], step), step),
                                       atol=1e-10 * np.abs(lap).max())
            want = r[b] - r[b].mean()
            assert abs(u[b].mean()) <= 1e-12 * np.abs(u[b]).max()
            np.testing.assert_allclose(lap, want, atol=1e-9 * np.abs(want).max())
        dct_pair = ops.poisson_neumann(r, ops.inverse_eigenvalues(shape, step))
        np.testing.assert_allclose(u, dct_pair, rtol=0, atol=1e-11 * np.abs(u).max())
        # the checks' float64 solves of the real grid: the tridiagonal path on the parallel
        # kernels only
        real = ops.poisson_neumann(r, ops.inverse_eigenvalues(shape, inv_dx))
        got = kern.poisson(r)
        np.testing.assert_allclose(got, real, rtol=0, atol=1e-11 * np.abs(got).max())
        lines = kern._lines_solve(r.copy(), kern._lines_for(np.float64, inv_dx), inv_dx)
        assert np.array_equal(got, lines) == parallel
        outs.append(u)
    np.testing.assert_array_equal(outs[0], outs[1])
    monkeypatch.setattr(backend_numba, "POISSON_LINES", False)
    np.testing.assert_array_equal(kern.poisson_step(r), kern._solve(r, step))


@pytest.mark.parametrize("shape", [(3, 5), (4, 3), (5, 8), (8, 5), (6, 2), (9, 2), (130, 129),
                                   (129, 130)])
@pytest.mark.parametrize("dx", [(0.3, 0.7), (0.6, 0.3)])
def test_facr_solves_the_neumann_problem(monkeypatch, shape, dx):
    """The step's 2D solve with one cyclic reduction (FACR(1): odd rows eliminated, the DCT
    pair on the even rows, the odd rows by solves along y) on grids of even and odd rows, down
    to 3, in float64: the zero-mean solution of ``D^T D u = r - mean(r)``, equal to the DCT
    pair's (SciPy's transforms on both axes); the one-thread and parallel kernels agree bit
    for bit; in float32 within float32's rounding."""
    from otgrid.critic import operators as ops

    monkeypatch.setattr(backend_numpy, "POISSON_STEP_DTYPE", None)
    kern = make_kernels("numba", shape, dx, "euclidean", np.float64)
    kern._facr_force = True  # (below FACR_MIN_CELLS the solver keeps the lines)
    assert kern._facr_for(np.dtype(np.float64)) is not None
    r = np.random.default_rng(3).standard_normal((2, *shape)) + 5.0  # a mean to ignore
    want = ops.poisson_neumann(r, ops.inverse_eigenvalues(shape, kern.step_inv_dx))
    outs = []
    for parallel in (False, True):
        kern._bind(parallel)
        u = kern.poisson_step(r)
        np.testing.assert_allclose(u, want, rtol=0, atol=1e-11 * np.abs(want).max())
        assert np.all(np.abs(u.mean(axis=(1, 2))) <= 1e-12 * np.abs(u).max())
        outs.append(u)
    np.testing.assert_array_equal(outs[0], outs[1])
    # float32: the solver's residuals have zero mean up to rounding (a mean of 5 times their
    # spread costs float32 digits in every mode: the reduced rows carry 4 times it)
    r -= r.mean(axis=(1, 2), keepdims=True)
    want = ops.poisson_neumann(r, ops.inverse_eigenvalues(shape, kern.step_inv_dx))
    kern32 = make_kernels("numba", shape, dx, "euclidean", np.float32)
    kern32._facr_force = True
    u32 = kern32.poisson_step(r.astype(np.float32))
    assert u32.dtype == np.float32 and kern32._facr_for(np.dtype(np.float32)) is not None
    np.testing.assert_allclose(u32, want, rtol=0, atol=1e-5 * np.abs(want).max())  # as the lines


def test_facr_applies_from_128_squared_on_cells_of_moderate_aspect():
    from otgrid.critic.backend_numba import FACR_MAX_ASPECT, NumbaGridKernels

    f32 = np.dtype(np.float32)
    for n, used in ((64, False), (128, True), (1024, True)):
        kern = NumbaGridKernels((n, n), (8.0 / n, 8.0 / n), "euclidean", np.float64)
        assert (kern._facr_for(f32) is not None) == used
    # (dx / dy)^2 above FACR_MAX_ASPECT: the reduced right-hand side would lose precision
    ratio = 1.01 * np.sqrt(FACR_MAX_ASPECT)
    kern = NumbaGridKernels((256, 256), (ratio / 256, 1.0 / 256), "euclidean", np.float64)
    assert kern._facr_for(f32) is None and kern._lines_for(f32, kern.step_inv_dx) is not None


def _eight_gaussians(n: int):
    grid = og.Grid([(-5, 5), (-5, 5)], (n, n))
    r = 1 / np.sqrt(2)
    ring = og.Mixture([og.Normal(np.array(c) * 2.0, 0.04) for c in
                       [(1, 0), (-1, 0), (0, 1), (0, -1), (r, r), (r, -r), (-r, r), (-r, -r)]])
    with warnings.catch_warnings():  # renormalising the tails is meant
        warnings.simplefilter("ignore", og.OutsideMassWarning)
        mu = grid.discretize(ring, outside="renormalize")
        nu = grid.discretize(og.Normal([0.0, 0.0], 1.0), outside="renormalize")
    return grid, mu, nu * (mu.sum() / nu.sum())


@pytest.mark.parametrize("n, tol", [(128, 1e-4), pytest.param(64, 1e-6, marks=pytest.mark.slow)])
def test_solves_reach_the_same_certified_answer_either_way(monkeypatch, n, tol):
    """8 Gaussians vs N(0, I) (a multimodal problem, multilevel start): both converge and their
    certified intervals overlap; the float32 transforms cost no extra iterations (measured
    identical counts; allowed 10 % either way)."""
    grid, mu, nu = _eight_gaussians(n)
    fast = og.solve_critic(mu, nu, grid, tol=tol, backend="numba")
    monkeypatch.setattr(backend_numpy, "POISSON_STEP_DTYPE", None)
    exact = og.solve_critic(mu, nu, grid, tol=tol, backend="numba")
    assert fast.converged and exact.converged
    assert fast.relative_gap <= tol and exact.relative_gap <= tol
    assert max(fast.lower, exact.lower) <= min(fast.upper, exact.upper)
    assert abs(fast.iterations - exact.iterations) <= 0.1 * exact.iterations + 20


def test_checks_correct_the_flow_in_float64(monkeypatch):
    """At every check the certificate gets the float64 solution of ``D^T D u = c - D^T y``
    (not the float32-transform one of the step), so that the tracked upper bound is the cost
    of a flow feasible to float64 rounding."""
    from otgrid.critic import iterate as it

    checked = []

    class Checked(it.Best):
        def update(self, cert, ids, c64, f64, y64, u64, flow_candidates, *polish):
            r = cert.xp.empty_like(c64)
            cert.residual(c64, y64, r)
            exact = cert.poisson(r)
            scale = float(np.abs(exact).max())
            checked.append(float(np.abs(u64 - exact).max()) / scale if scale else 0.0)
            super().update(cert, ids, c64, f64, y64, u64, flow_candidates, *polish)

    monkeypatch.setattr(it, "Best", Checked)
    grid, mu, nu = _eight_gaussians(64)
    assert og.solve_critic(mu, nu, grid, tol=1e-6, backend="numba").converged
    assert len(checked) > 10 and max(checked) < 1e-12


def test_the_cuda_kernels_keep_float64_transforms():
    from otgrid.critic.backend_cuda import CudaGridKernels

    assert CudaGridKernels.fast_poisson is False


def test_extreme_anisotropy_falls_back_to_the_dct_pair():
    # cells 1e9 / 8 / 0.2 times longer along y than x: the x-solves' last pivot is lost to
    # rounding (a fuzzed problem divided by zero); the step falls back to the DCT pair
    from otgrid.critic.backend_numba import NumbaGridKernels

    kern = NumbaGridKernels((5, 8), (0.2, 1.25e8), "euclidean", np.float64)
    assert kern._lines_for(np.dtype(np.float32), kern.step_inv_dx) is None
    r = np.random.default_rng(0).standard_normal((1, 5, 8))
    r -= r.mean()
    with np.errstate(all="raise"):
        u = kern.poisson_step(r)
    want = kern._solve(r, kern.step_inv_dx)
    np.testing.assert_allclose(u, want, rtol=1e-5, atol=1e-5 * np.abs(u).max())
    grid = og.Grid([(0.0, 1.0), (0.0, 1e9)], (5, 8))
    mu, nu = np.zeros(grid.shape), np.zeros(grid.shape)
    mu[4, 7], nu[4, 6] = 1.0, 1.0
    res = og.solve_critic(mu, nu, grid, backend="numba", tol=1e-6)
    assert res.converged and res.lower <= 1.25e8 <= res.upper


def test_square_grids_keep_the_tridiagonal_step():
    from otgrid.critic.backend_numba import NumbaGridKernels

    for n in (64, 1024):
        kern = NumbaGridKernels((n, n), (8.0 / n, 8.0 / n), "euclidean", np.float64)
        assert kern._lines_for(np.dtype(np.float32), kern.step_inv_dx) is not None


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dct_lines_is_scipys_dct_bit_for_bit_on_either_path(dtype, monkeypatch):
    # the step's transforms call SciPy's compiled DCT directly (scipy.fft's dispatch cost
    # 6 us a call: 68 -> 53 us an iteration at 64^2); the public functions where that private
    # module does not check out: the same bits either way, and the input kept unless overwritten
    import scipy.fft

    from otgrid.critic import operators as ops

    x = np.random.default_rng(1).standard_normal((2, 33, 48)).astype(dtype)
    want = {False: scipy.fft.dct(x, type=2, norm="ortho", axis=-1),
            True: scipy.fft.idct(x, type=2, norm="ortho", axis=-1)}
    assert ops._pocketfft_dct() is not None  # the SciPy this suite installs has it
    for direct in (True, False):
        if not direct:
            monkeypatch.setattr(ops, "_pocketfft_dct", lambda: None)
        for inverse in (False, True):
            keep = x.copy()
            got = ops.dct_lines(x, inverse)
            assert got.dtype == dtype and np.array_equal(got, want[inverse])
            assert np.array_equal(x, keep) and got is not x
            own = x.copy()
            got = ops.dct_lines(own, inverse, overwrite=True)  # own may be used up
            assert np.array_equal(got, want[inverse]) and (got is own or not direct)


@pytest.mark.parametrize("shape", [(40, 56), (131, 130)])
def test_the_step_transforms_the_residual_kernel_s_float32_copy_bit_for_bit(shape):
    """On 2D Numba grids the residual's pass also writes the float32 copy of ``r`` that the
    step transforms: the same solution as the step of a cast of ``r``, which the next residual
    does not overwrite (the copies take turns in two buffers). The second grid runs FACR(1),
    in the copy itself."""
    kern = make_kernels("numba", shape, [0.1, 0.07], "euclidean", np.float64)
    assert (kern._facr_for(np.dtype(np.float32)) is not None) == (shape[0] > 100)
    rng = np.random.default_rng(11)
    c = rng.standard_normal((2, *shape))
    c -= c.mean(axis=(1, 2), keepdims=True)
    y = rng.standard_normal((2, 2, *shape))
    r = np.empty_like(c)
    kern.residual(c, y, r)
    u = kern.poisson_step(r)
    assert u.dtype == np.float32
    np.testing.assert_array_equal(u, kern.poisson_step(r.copy()))  # the cast's path
    kept = u.copy()
    kern.residual(c, 2.0 * y, r)  # the next iteration's residual
    np.testing.assert_array_equal(u, kept)
    u2 = kern.poisson_step(r)
    assert u2 is not u and not np.shares_memory(u2, u)
    np.testing.assert_array_equal(u2, kern.poisson_step(r.copy()))


def test_without_the_tridiagonal_path_the_step_reads_the_copy_too():
    """Where the tridiagonal solves are ill-conditioned in float32 the step falls back to the
    DCT pair; the residual still writes its float32 copy (the kernel keeps the one signature
    that the warm-up compiled on its tiny grid), and the step reads it: the same solution."""
    kern = make_kernels("numba", (5, 8), [1.0 / 5, 1e9 / 8], "euclidean", np.float64)
    assert kern._lines_for(np.dtype(np.float32), kern.step_inv_dx) is None
    rng = np.random.default_rng(5)
    c = rng.standard_normal((1, 5, 8))
    c -= c.mean()
    y = rng.standard_normal((1, 2, 5, 8))
    r = np.empty_like(c)
    kern.residual(c, y, r)
    assert kern._copy_of is r  # the copy was written
    u = kern.poisson_step(r)
    np.testing.assert_array_equal(u, backend_numpy.GridKernels.poisson_step(kern, r))
