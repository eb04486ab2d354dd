"""The ``"cuda"`` backend of ``sinkhorn`` / ``smooth_ot`` and its kernels.

Simulator tests: ``NUMBA_ENABLE_CUDASIM=1`` must be set before numba is imported, so each runs
a script in a fresh interpreter (tiny problems, n, m <= 8: the simulator runs every GPU thread
as a Python thread). References: SciPy's ``logsumexp`` and dense NumPy formulas on ``cdist``
costs (kernels), POT's ``sinkhorn_log`` and ``smooth_ot_dual`` and the ``"numba"`` backend
(solvers). Real-GPU tests run only where ``otgrid._device.cuda_status()`` is ``"available"``
(a GPU with CuPy and numba-cuda) and skip with that reason otherwise.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from otgrid.pointcloud import sinkhorn, smooth_ot

pytest.importorskip("numba.cuda", reason="numba-cuda is not installed")


def _status() -> str:
    from otgrid._device import cuda_status

    return cuda_status()


STATUS = _status()
REAL_GPU = STATUS == "available"  # a GPU with CuPy and numba-cuda, not the simulator
needs_gpu = pytest.mark.skipif(not REAL_GPU, reason="needs a CUDA GPU with CuPy")


def _simulate(body: str) -> None:
    """Run ``body`` under the CUDA simulator in a fresh interpreter; fail with its output."""
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1")
    code = "import numpy as np\nfrom scipy.spatial.distance import cdist\n" + \
        textwrap.dedent(body)
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                          text=True, timeout=180)
    assert proc.returncode == 0, f"simulated script failed:\n{proc.stdout}\n{proc.stderr}"
    assert "SIM-OK" in proc.stdout, proc.stdout + proc.stderr


def test_simulated_kernels_match_dense_references():
    _simulate("""
        from numba import cuda
        from scipy.special import logsumexp
        from otgrid.kernels import pointcloud_cuda as k
        assert cuda.simulator_is_active() if hasattr(cuda, "simulator_is_active") else True
        rng = np.random.default_rng(0)
        B, n, m, d = 2, 7, 5, 3
        x, y = rng.normal(size=(B, n, d)), rng.normal(size=(B, m, d))
        xT = np.ascontiguousarray(np.transpose(x, (0, 2, 1)))
        yT = np.ascontiguousarray(np.transpose(y, (0, 2, 1)))
        inv = np.array([3.0, 0.5])
        for kind, cost in enumerate(["euclidean", "sqeuclidean", "cityblock"]):
            C = np.stack([cdist(x[b], y[b], metric=cost) for b in range(B)])
            h = rng.normal(size=(B, m))
            # online log-sum-exp, with a shift far off (nothing may overflow) and block
            # sizes that split the rows and the column tiles (3 threads: tiles of 3)
            for shift in (rng.normal(size=(B, n)), np.full((B, n), 1e3)):
                t = h[:, None, :] + (shift[:, :, None] - C) * inv[:, None, None]
                ref = logsumexp(t, axis=2)
                w = np.exp(t - ref[:, :, None])
                for threads in (3, 128):
                    lse, mc = np.empty((B, n)), np.empty((B, n))
                    blocks, tpb = k.launch_shape(B, n, threads)
                    k.lse_rows[blocks, tpb](xT, yT, h, shift, inv, kind, True, lse, mc)
                    np.testing.assert_allclose(lse, ref, rtol=1e-13, atol=1e-12)
                    np.testing.assert_allclose(mc, (w * C).sum(2) / w.sum(2), rtol=1e-12)
            # L2 dual sums at (phi, psi) and the change since (phi - dphi, psi - dpsi)
            phi, psi = rng.normal(size=(B, n)) + 2.0, rng.normal(size=(B, m))
            dphi, dpsi = rng.normal(size=(B, n)) * 0.3, rng.normal(size=(B, m)) * 0.3
            wa, wb = rng.random((B, n)) + 0.1, rng.random((B, m)) + 0.1
            V = np.maximum(phi[:, :, None] - psi[:, None, :] - C, 0.0)
            R = np.maximum((phi - dphi)[:, :, None] - (psi - dpsi)[:, None, :] - C, 0.0)
            W = wa[:, :, None] * wb[:, None, :] * inv[:, None, None]
            row, rowtot = np.empty((B, n)), np.empty((B, n, 3))
            col = np.empty((B, m))
            blocks, tpb = k.launch_shape(B, n, 4)
            k.l2_rows[blocks, tpb](xT, yT, phi, psi, dphi, dpsi, wa, wb, inv, kind, row,
                                   rowtot)
            blocks, tpb = k.launch_shape(B, m, 2)
            k.l2_cols[blocks, tpb](xT, yT, phi, psi, wa, wb, inv, kind, col)
            np.testing.assert_allclose(row, (W * V).sum(2), rtol=1e-13)
            np.testing.assert_allclose(col, (W * V).sum(1), rtol=1e-13)
            tot = rowtot.sum(1)
            np.testing.assert_allclose(tot[:, 0], 0.5 * (W * V * V).sum((1, 2)), rtol=1e-13)
            np.testing.assert_allclose(tot[:, 1], (W * V * C).sum((1, 2)), rtol=1e-13)
            np.testing.assert_allclose(tot[:, 2], 0.5 * (W * (V * V - R * R)).sum((1, 2)),
                                       rtol=1e-12, atol=1e-14)
            # both plan kernels applied to two vectors
            Vec = rng.normal(size=(B, 2, m))
            for mode in (0, 1):
                out = np.empty((B, n, 2))
                grid, tpb = k.apply_shape(B, n, 2, 4)
                assert grid == (4, 2)
                k.apply_rows[grid, tpb](xT, yT, phi, psi if mode else h, wb, inv, kind, mode,
                                        Vec, out)
                K = (np.exp(h[:, None, :] + (phi[:, :, None] - C) * inv[:, None, None])
                     if mode == 0 else wb[:, None, :] * V * inv[:, None, None])
                np.testing.assert_allclose(out, np.einsum("bij,bkj->bik", K, Vec),
                                           rtol=1e-12, atol=1e-14)
        print("SIM-OK")
    """)


def test_simulated_solvers_match_pot_and_numba():
    _simulate("""
        import warnings
        import ot
        from otgrid.pointcloud import sinkhorn, smooth_ot
        rng = np.random.default_rng(1)
        x, y = rng.normal(size=(7, 2)), rng.normal(size=(6, 2)) + 0.5
        a = rng.random(7) + 0.2; a /= a.sum()
        b = np.full(6, 1.0 / 6)
        for cost in ("sqeuclidean",):  # (every cost is checked in the kernel test)
            M = cdist(x, y, metric=cost)
            res = sinkhorn(x, y, a, b, reg=0.3, cost=cost, backend="cuda", tol=1e-10,
                           max_iter=300)
            assert res.backend == "cuda" and res.converged, res
            P = ot.bregman.sinkhorn_log(a, b, M, 0.3, stopThr=1e-14, numItermax=100000)
            np.testing.assert_allclose(res.transport_cost, (P * M).sum(), rtol=1e-8)
            np.testing.assert_allclose(res.plan(), P, atol=1e-9)
            ref = sinkhorn(x, y, a, b, reg=0.3, cost=cost, backend="numba", tol=1e-10)
            np.testing.assert_allclose(res.f, ref.f, atol=1e-12)
            v = rng.normal(size=(6, 2))
            np.testing.assert_allclose(res.apply_plan(v), P @ v, atol=1e-9)
        # L2 dual against POT with reg_POT = lambda n m (uniform weights)
        a7 = np.full(7, 1.0 / 7)
        M = cdist(x, y)
        lam = 0.2
        s = smooth_ot(x, y, reg=lam, regularizer="l2", backend="cuda", tol=1e-9,
                      reg_scaling=False, max_iter=300)
        assert s.backend == "cuda" and s.converged, s
        G = ot.smooth.smooth_ot_dual(a7, b, M, lam * 42, reg_type="l2", stopThr=1e-14,
                                     numItermax=10000)
        np.testing.assert_allclose(s.plan(), G, atol=1e-7)
        u = rng.normal(size=7)
        np.testing.assert_allclose(s.apply_plan_T(u), G.T @ u, atol=1e-7)
        # a batch of two problems
        X, Y = rng.normal(size=(2, 5, 2)), rng.normal(size=(2, 4, 2))
        rb = sinkhorn(X, Y, reg=0.5, backend="cuda", tol=1e-9, max_iter=300)
        rn = sinkhorn(X, Y, reg=0.5, backend="numba", tol=1e-9)
        np.testing.assert_allclose(rb.transport_cost, rn.transport_cost, rtol=1e-10)
        # dimension beyond the kernels' tiles: a clear error
        try:
            sinkhorn(rng.normal(size=(3, 9)), rng.normal(size=(3, 9)), reg=1.0, backend="cuda")
        except ValueError as exc:
            assert "dimension <= 8" in str(exc), exc
        else:
            raise AssertionError("d = 9 should be refused by backend='cuda'")
        print("SIM-OK")
    """)


def test_launch_shapes_stay_within_the_cuda_limits():
    """Pure arithmetic (no GPU): more row blocks or vectors than a grid axis holds."""
    from otgrid.kernels import pointcloud_cuda as k
    from otgrid.kernels._cuda import MAX_GRID_X, MAX_GRID_Y

    assert k.launch_shape(3, 1000) == (24, 128)
    assert k.launch_shape(2, 5) == (2, 5)  # fewer threads than rows of a tile
    assert k.launch_shape(10**7, 10**9) == (MAX_GRID_X, 128)
    assert k.apply_shape(2, 300, 7) == ((6, 7), 128)
    assert k.apply_shape(1, 10, 100_000) == ((1, MAX_GRID_Y), 10)  # vectors beyond 65 535
    assert k.apply_shape(1, 10, MAX_GRID_Y) == ((1, MAX_GRID_Y), 10)


def test_simulated_kernels_stride_beyond_a_capped_grid():
    """With the grid capped at 2 blocks along x and 2 along y, every kernel covers 8 blocks of
    rows and 5 vectors by striding; the results match the dense references; so do the ops."""
    _simulate("""
        from otgrid.kernels import _cuda
        from otgrid.kernels import pointcloud_cuda as k
        from otgrid.pointcloud.ops_cuda import CudaCloudOps
        _cuda.MAX_GRID_X, _cuda.MAX_GRID_Y = 2, 2
        rng = np.random.default_rng(4)
        B, n, m, d, nv = 2, 7, 5, 2, 5
        x, y = rng.normal(size=(B, n, d)), rng.normal(size=(B, m, d))
        xT = np.ascontiguousarray(np.transpose(x, (0, 2, 1)))
        yT = np.ascontiguousarray(np.transpose(y, (0, 2, 1)))
        C = np.stack([cdist(x[b], y[b], metric="sqeuclidean") for b in range(B)])
        inv, h, shift = np.array([2.0, 0.7]), rng.normal(size=(B, m)), rng.normal(size=(B, n))
        assert k.launch_shape(B, n, 2) == (2, 2)  # 8 blocks of rows needed
        assert k.launch_shape(B, m, 2) == (2, 2)  # 6 blocks of columns needed
        assert k.apply_shape(B, n, nv, 2) == ((2, 2), 2)  # 5 vectors
        t = h[:, None, :] + (shift[:, :, None] - C) * inv[:, None, None]
        lse, mc = np.full((B, n), np.nan), np.full((B, n), np.nan)
        k.lse_rows[2, 2](xT, yT, h, shift, inv, k.COST_SQEUCLIDEAN, True, lse, mc)
        np.testing.assert_allclose(lse, np.log(np.exp(t).sum(2)), rtol=1e-13)
        phi, psi = rng.normal(size=(B, n)) + 2.0, rng.normal(size=(B, m))
        wa, wb = rng.random((B, n)) + 0.1, rng.random((B, m)) + 0.1
        V = np.maximum(phi[:, :, None] - psi[:, None, :] - C, 0.0)
        W = wa[:, :, None] * wb[:, None, :] * inv[:, None, None]
        row, rowtot, col = np.full((B, n), np.nan), np.full((B, n, 3), np.nan), np.full((B, m),
                                                                                        np.nan)
        z = np.zeros((B, n)), np.zeros((B, m))
        k.l2_rows[2, 2](xT, yT, phi, psi, *z, wa, wb, inv, k.COST_SQEUCLIDEAN, row, rowtot)
        k.l2_cols[2, 2](xT, yT, phi, psi, wa, wb, inv, k.COST_SQEUCLIDEAN, col)
        np.testing.assert_allclose(row, (W * V).sum(2), rtol=1e-13)
        np.testing.assert_allclose(col, (W * V).sum(1), rtol=1e-13)
        Vec = rng.normal(size=(B, nv, m))
        out = np.full((B, n, nv), np.nan)
        k.apply_rows[(2, 2), 2](xT, yT, shift, h, wb, inv, k.COST_SQEUCLIDEAN, 0, Vec, out)
        np.testing.assert_allclose(out, np.einsum("bij,bkj->bik", np.exp(t), Vec), rtol=1e-12)
        # through the ops (their own launch shapes, 128 threads: 2 blocks, 5 vectors)
        ops = CudaCloudOps(x, y, "sqeuclidean")
        with ops.session():
            got = ops.exp_apply("rows", h, shift, inv, Vec)
        np.testing.assert_allclose(got, np.einsum("bij,bkj->bik", np.exp(t), Vec), rtol=1e-12)
        print("SIM-OK")
    """)


def test_simulated_launches_are_the_signatures_compiled_to_ptx():
    """Every kernel launch of a Sinkhorn and an L2 solve (recorded in the simulator) has the
    argument types of ``PTX_SIGNATURES``, which ``tests/test_ptx.py`` compiles for sm_90."""
    _simulate("""
        import numba
        from otgrid.kernels import pointcloud_cuda as k
        from otgrid.pointcloud import sinkhorn, smooth_ot
        seen = set()

        def typeof(a):
            return numba.typeof(a.copy_to_host() if hasattr(a, "copy_to_host") else a)

        class Recording:
            def __init__(self, kern):
                self.kern = kern

            def __getitem__(self, config):
                def run(*args):
                    seen.add((self.kern.__name__, tuple(typeof(a) for a in args)))
                    return self.kern[config](*args)
                return run

        for name in ("lse_rows", "l2_rows", "l2_cols", "apply_rows"):
            setattr(k, name, Recording(getattr(k, name)))
        rng = np.random.default_rng(5)
        x, y = rng.normal(size=(5, 2)), rng.normal(size=(4, 2))
        res = sinkhorn(x, y, reg=0.5, backend="cuda", tol=1e-6, max_iter=50)
        res.apply_plan(rng.normal(size=(4, 3)))
        sm = smooth_ot(x, y, reg=0.5, regularizer="l2", backend="cuda", tol=1e-6, max_iter=50)
        sm.apply_plan(rng.normal(size=(4, 2)))
        listed = {(kern.__name__, tuple(sig)) for kern, sig in k.PTX_SIGNATURES}
        assert {name for name, _ in seen} == {"lse_rows", "l2_rows", "l2_cols", "apply_rows"}
        missing = seen - listed
        assert not missing, missing
        print("SIM-OK")
    """)


@pytest.mark.skipif(STATUS.startswith("available"),
                    reason="the cuda backend can run here: no error to check")
def test_cuda_without_gpu_raises_clear_error():
    x = np.zeros((3, 2))
    for solver in (sinkhorn, smooth_ot):
        with pytest.raises(RuntimeError,
                           match=r"backend='cuda' cannot run here: .*backend='numba'"):
            solver(x, x + 1.0, reg=0.1, backend="cuda")


@needs_gpu
@pytest.mark.parametrize("cost", ["euclidean", "sqeuclidean"])
def test_gpu_sinkhorn_matches_numba(cost):
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(3000, 2)), rng.normal(size=(2500, 2)) + 1.0
    g = sinkhorn(x, y, reg=0.05, cost=cost, backend="cuda")
    c = sinkhorn(x, y, reg=0.05, cost=cost, backend="numba")
    assert g.converged and c.converged
    np.testing.assert_allclose(g.transport_cost, c.transport_cost, rtol=1e-6)
    np.testing.assert_allclose(g.f - g.f.mean(), c.f - c.f.mean(), atol=1e-5)


@needs_gpu
def test_gpu_smooth_l2_matches_numba():
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(1500, 3)), rng.normal(size=(1200, 3)) + 0.5
    g = smooth_ot(x, y, reg=0.1, backend="cuda")
    c = smooth_ot(x, y, reg=0.1, backend="numba")
    assert g.converged and c.converged
    np.testing.assert_allclose(g.objective, c.objective, rtol=1e-8)
