"""Properties of ``solve_critic`` on random small problems (Hypothesis), and its input checks.

Certified bounds make the properties exact statements: two solves of problems with the same W
must give overlapping intervals ``[lower, upper]``, and an independent reference value must lie
inside every interval. Those statements hold whether or not a solve reached its tolerance, so
the solves here are capped at ``MAX_ITER`` (Hypothesis finds measures, e.g. a few point masses on
a 1e-8 background, on which the gap shrinks very slowly) and are not required to converge.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from references import emd2_cityblock, socp_2d_euclidean_cvxpy, w1_1d_closed_form

import otgrid as og

BACKENDS = ["numpy", "numba"]
NORMS = ["euclidean", "cityblock"]
TOL = 1e-6
MAX_ITER = 20_000
SLACK = 1e-9  # relative slack for bracketing exact references
SOCP_SLACK = 1e-7  # ... and Clarabel's value (solved to 1e-10)
SETTINGS = settings(max_examples=12, deadline=None)

@st.composite
def pair(draw, shape):
    """Two non-negative arrays of ``shape`` with EXACTLY equal totals (possibly sparse).

    Integer counts cross-multiplied by the other total, then scaled by a power of two, so that
    ``sum(mu) == sum(nu)`` and ``mu - nu`` are exact in float64 and the references are exact.
    """
    counts = st.integers(0, 1000)
    a = draw(hnp.arrays(np.int64, shape, elements=counts))
    b = draw(hnp.arrays(np.int64, shape, elements=counts))
    a.flat[draw(st.integers(0, a.size - 1))] += 1  # every measure holds mass
    b.flat[draw(st.integers(0, b.size - 1))] += 1
    mu, nu = a * b.sum(), b * a.sum()  # equal integer totals, < 2**53
    scale = 2.0 ** -int(np.round(np.log2(mu.sum())))
    return mu * scale, nu * scale


@st.composite
def problem_1d(draw):
    n = draw(st.integers(4, 24))
    low = draw(st.floats(-3.0, 0.0))
    width = draw(st.floats(0.5, 5.0))
    mu, nu = draw(pair((n,)))
    return og.Grid((low, low + width), n), mu, nu


@st.composite
def problem_2d(draw):
    shape = (draw(st.integers(2, 7)), draw(st.integers(2, 7)))
    bounds = [(0.0, draw(st.floats(0.5, 3.0))), (-1.0, draw(st.floats(-0.5, 2.0)))]
    mu, nu = draw(pair(shape))
    return og.Grid(bounds, shape), mu, nu


def _centers(grid: og.Grid):
    return tuple(a + (np.arange(n) + 0.5) * h
                 for (a, _), n, h in zip(grid.bounds, grid.shape, grid.dx, strict=True))


def _solve(mu, nu, grid, **kw):
    kw.setdefault("tol", TOL)
    kw.setdefault("max_iter", MAX_ITER)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", og.ConvergenceWarning)
        res = og.solve_critic(mu, nu, grid, **kw)
    assert res.lower <= res.upper * (1 + 1e-12) + 1e-15
    if res.converged:
        assert res.gap <= kw["tol"] * res.upper + 1e-12
    return res


def _assert_same_w(a, b) -> None:
    """Two certified intervals of the same W overlap; the estimates agree to the gaps."""
    assert a.lower <= b.upper * (1 + 1e-12) + 1e-15, (a.lower, b.upper)
    assert b.lower <= a.upper * (1 + 1e-12) + 1e-15, (b.lower, a.upper)
    assert abs(a.w1 - b.w1) <= 0.5 * (a.gap + b.gap) + 1e-12 * max(a.upper, b.upper) + 1e-15


def _assert_brackets(res, ref: float) -> None:
    assert res.lower <= ref * (1 + SLACK) + 1e-15, (res.lower, ref)
    assert res.upper >= ref * (1 - SLACK) - 1e-15, (res.upper, ref)


# ---------------------------------------------------------------------------------------------
# symmetry and sign
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("backend", BACKENDS)
@SETTINGS
@given(prob=problem_1d())
def test_symmetry_1d(backend, prob):
    grid, mu, nu = prob
    a = _solve(mu, nu, grid, backend=backend)
    b = _solve(nu, mu, grid, backend=backend)
    _assert_same_w(a, b)
    assert a.lower >= -1e-12 and b.lower >= -1e-12
    # critic(nu, mu) = -critic(mu, nu) on every edge the flow crosses: each difference is
    # within gap / |C_i| of the exact one (C_i = F_mu(i) - F_nu(i))
    C = np.abs(np.cumsum(mu - nu)[:-1])
    mask = C > 1e-3
    da, db = np.diff(a.critic)[mask], np.diff(b.critic)[mask]
    np.testing.assert_array_less(np.abs(da + db), (a.gap + b.gap) / C[mask] + 1e-12)


@pytest.mark.parametrize("norm", NORMS)
@pytest.mark.parametrize("backend", BACKENDS)
@SETTINGS
@given(prob=problem_2d())
def test_symmetry_and_sign_2d(backend, norm, prob):
    grid, mu, nu = prob
    a = _solve(mu, nu, grid, norm=norm, backend=backend)
    b = _solve(nu, mu, grid, norm=norm, backend=backend)
    _assert_same_w(a, b)
    assert a.lower >= -1e-12 and b.lower >= -1e-12
    # -critic(mu, nu) is a feasible critic for (nu, mu), worth exactly a.lower there
    np.testing.assert_allclose(np.sum((nu - mu) * -a.critic), a.lower, rtol=1e-9, atol=1e-15)
    assert a.lower <= b.upper * (1 + 1e-12) + 1e-15


# ---------------------------------------------------------------------------------------------
# translation
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("backend", BACKENDS)
@SETTINGS
@given(data=st.data())
def test_translation_1d(backend, data):
    m = data.draw(st.integers(2, 12), label="support length")
    pad = data.draw(st.integers(1, 8), label="padding")
    mu0, nu0 = data.draw(pair((m,)))
    n = m + pad
    grid = og.Grid((0.0, 0.25 * n), n)
    shift = data.draw(st.integers(1, pad), label="shift")
    mu, nu = np.zeros(n), np.zeros(n)
    mu[:m], nu[:m] = mu0, nu0
    a = _solve(mu, nu, grid, backend=backend)
    b = _solve(np.roll(mu, shift), np.roll(nu, shift), grid, backend=backend)
    _assert_same_w(a, b)


@pytest.mark.parametrize("norm", NORMS)
@pytest.mark.parametrize("backend", BACKENDS)
@SETTINGS
@given(data=st.data())
def test_translation_2d(backend, norm, data):
    inner = (data.draw(st.integers(2, 4)), data.draw(st.integers(2, 4)))
    pad = (data.draw(st.integers(1, 3)), data.draw(st.integers(1, 3)))
    mu0, nu0 = data.draw(pair(inner))
    shape = (inner[0] + pad[0], inner[1] + pad[1])
    grid = og.Grid([(0.0, 0.3 * shape[0]), (0.0, 0.2 * shape[1])], shape)
    mu, nu = np.zeros(shape), np.zeros(shape)
    mu[: inner[0], : inner[1]] = mu0
    nu[: inner[0], : inner[1]] = nu0
    shift = (data.draw(st.integers(0, pad[0])), data.draw(st.integers(0, pad[1])))
    a = _solve(mu, nu, grid, norm=norm, backend=backend)
    b = _solve(np.roll(mu, shift, axis=(0, 1)), np.roll(nu, shift, axis=(0, 1)), grid,
               norm=norm, backend=backend)
    _assert_same_w(a, b)


# ---------------------------------------------------------------------------------------------
# bounds bracket independent references; the backends agree
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("backend", BACKENDS)
@SETTINGS
@given(prob=problem_1d())
def test_bounds_bracket_closed_form_1d(backend, prob):
    grid, mu, nu = prob
    res = _solve(mu, nu, grid, backend=backend)
    _assert_brackets(res, w1_1d_closed_form(mu, nu, grid.dx[0]))


@pytest.mark.parametrize("backend", BACKENDS)
@SETTINGS
@given(prob=problem_2d())
def test_bounds_bracket_emd2_cityblock(backend, prob):
    grid, mu, nu = prob
    res = _solve(mu, nu, grid, norm="cityblock", backend=backend)
    _assert_brackets(res, emd2_cityblock(mu, nu, _centers(grid)))


@pytest.mark.parametrize("norm", NORMS)
@SETTINGS
@given(prob=problem_2d())
def test_numpy_and_numba_agree(norm, prob):
    grid, mu, nu = prob
    a = _solve(mu, nu, grid, norm=norm, backend="numpy")
    b = _solve(mu, nu, grid, norm=norm, backend="numba")
    assert a.backend == "numpy" and b.backend == "numba"
    _assert_same_w(a, b)


# ---------------------------------------------------------------------------------------------
# scale: W(a mu, a nu) = a W(mu, nu)
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("norm", NORMS)
@pytest.mark.parametrize("backend", BACKENDS)
@SETTINGS
@given(prob=problem_2d(), k=st.integers(-200, 200))
def test_scale_equivariance(backend, norm, prob, k):
    # every step of the solver is homogeneous, and scaling by 2**k is exact in float64
    grid, mu, nu = prob
    a = _solve(mu, nu, grid, norm=norm, backend=backend)
    b = _solve(mu * 2.0**k, nu * 2.0**k, grid, norm=norm, backend=backend)
    np.testing.assert_allclose([b.lower, b.upper], np.array([a.lower, a.upper]) * 2.0**k,
                               rtol=1e-12)
    np.testing.assert_allclose(b.critic, a.critic, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("tiny", [1e-100, 1e-160, 1e-200, 1e-300])
def test_tiny_masses_1d(backend, tiny):
    # found by Hypothesis: masses of 1e-230 gave a ZeroDivisionError in the default step
    grid = og.Grid((0.0, 1.0), 4)
    mu = np.array([1.0, tiny, 0.0, 0.0])
    nu = np.array([1.0, 0.0, 0.0, tiny])  # sum(mu) == sum(nu) exactly; W = tiny * 2 * dx
    res = _solve(mu, nu, grid, backend=backend)
    _assert_brackets(res, tiny * 2 * 0.25)
    assert res.converged


@pytest.mark.parametrize("norm", NORMS)
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("tiny", [1e-100, 1e-160, 1e-200, 1e-300])
def test_tiny_masses_2d(backend, norm, tiny):
    # the same with two cells exchanging a tiny mass across the diagonal of a 2 x 2 grid;
    # W is homogeneous, so the reference is tiny * W(unit problem), computed independently
    grid = og.Grid([(0.0, 1.0), (0.0, 1.0)], (2, 2))
    unit_mu = np.array([[0.0, 1.0], [0.0, 0.0]])
    unit_nu = np.array([[0.0, 0.0], [1.0, 0.0]])
    if norm == "cityblock":
        unit = emd2_cityblock(unit_mu, unit_nu, _centers(grid))  # = 1.0 (L1 distance)
    else:
        unit = socp_2d_euclidean_cvxpy(unit_mu, unit_nu, grid.dx).value  # = sqrt(2) / 2
    mu = np.array([[1.0, tiny], [0.0, 0.0]])
    nu = np.array([[1.0, 0.0], [tiny, 0.0]])
    res = _solve(mu, nu, grid, norm=norm, backend=backend)
    assert res.lower >= 0.0
    assert res.lower <= tiny * unit * (1 + SOCP_SLACK)
    assert res.upper >= tiny * unit * (1 - SOCP_SLACK)
    assert res.converged


# ---------------------------------------------------------------------------------------------
# bad input
# ---------------------------------------------------------------------------------------------
def _good():
    grid = og.Grid([(0.0, 1.0), (0.0, 2.0)], (4, 5))
    rng = np.random.default_rng(0)
    mu, nu = rng.random(grid.shape), rng.random(grid.shape)
    return grid, mu / mu.sum(), nu / nu.sum()


def test_good_input_solves():
    grid, mu, nu = _good()
    _solve(mu, nu, grid, backend="numpy")


@pytest.mark.parametrize("which", ["mu", "nu"])
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_mass_raises(which, bad):
    grid, mu, nu = _good()
    arrays = {"mu": mu, "nu": nu}
    arrays[which][1, 2] = bad
    with pytest.raises(ValueError, match=which):
        og.solve_critic(arrays["mu"], arrays["nu"], grid)


@pytest.mark.parametrize("which", ["mu", "nu"])
def test_negative_mass_raises(which):
    grid, mu, nu = _good()
    arrays = {"mu": mu, "nu": nu}
    arrays[which][0, 0] = -0.1
    with pytest.raises(ValueError, match=rf"{which}.*negative|negative.*{which}"):
        og.solve_critic(arrays["mu"], arrays["nu"], grid)


def test_unequal_totals_raise():
    grid, mu, nu = _good()
    with pytest.raises(ValueError, match=r"(?s)mu.*nu.*total|total.*mu.*nu"):
        og.solve_critic(mu, 2 * nu, grid)


@pytest.mark.parametrize("which", ["mu", "nu"])
@pytest.mark.parametrize("shape", [(5, 4), (20,), (4, 5, 1)])
def test_wrong_shape_raises(which, shape):
    grid, mu, nu = _good()
    arrays = {"mu": mu, "nu": nu}
    arrays[which] = np.full(shape, 1.0 / np.prod(shape))
    with pytest.raises(ValueError, match=rf"(?s){which}.*shape"):
        og.solve_critic(arrays["mu"], arrays["nu"], grid)


def test_zero_mass_raises():
    grid, mu, _ = _good()
    with pytest.raises(ValueError, match="nu"):
        og.solve_critic(mu, np.zeros(grid.shape), grid)


def test_unknown_norm_raises():
    grid, mu, nu = _good()
    with pytest.raises(ValueError, match=r"(?s)norm.*'euclidean'.*'cityblock'.*'manhattan'"):
        og.solve_critic(mu, nu, grid, norm="manhattan")


def test_unknown_backend_raises():
    grid, mu, nu = _good()
    with pytest.raises(ValueError, match=r"(?s)backend.*'numpy'.*'numba'.*'fortran'"):
        og.solve_critic(mu, nu, grid, backend="fortran")


@pytest.mark.parametrize("tol", [0.0, -1e-6, np.nan])
def test_bad_tol_raises(tol):
    grid, mu, nu = _good()
    with pytest.raises(ValueError, match="tol"):
        og.solve_critic(mu, nu, grid, tol=tol)


@pytest.mark.parametrize("grid", [None, ((0.0, 1.0), (0.0, 2.0)), (4, 5), "grid"])
def test_grid_must_be_a_grid(grid):
    _, mu, nu = _good()
    with pytest.raises(TypeError, match="grid"):
        og.solve_critic(mu, nu, grid)


def test_warm_start_must_be_a_result():
    grid, mu, nu = _good()
    with pytest.raises(TypeError, match="warm_start"):
        og.solve_critic(mu, nu, grid, warm_start=np.zeros(grid.shape))
