"""The distribution grammar of the command line: every form, bad input, and safety."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from otgrid.grid import Empirical, Mixture, Normal, PointMass, Uniform
from otgrid.grid.datasets import SwissRoll
from otgrid.grid.spec import GRAMMAR, parse_distribution, parse_parallel_lines

# --------------------------------------------------------------------------- every form


@pytest.mark.parametrize(("text", "mean", "cov"), [
    ("normal(0, 1)", [0.0], [[1.0]]),
    ("normal(-1.5, 4)", [-1.5], [[4.0]]),
    ("normal(2, std=0.5)", [2.0], [[0.25]]),
    ("normal(mean=1, cov=2)", [1.0], [[2.0]]),
    ("gaussian(0, 1)", [0.0], [[1.0]]),
    ("normal([0, 0], 1)", [0.0, 0.0], [[1.0, 0.0], [0.0, 1.0]]),
    ("normal([1, -2], [1, 4])", [1.0, -2.0], [[1.0, 0.0], [0.0, 4.0]]),
    ("normal((1, 2), ((2, 0.5), (0.5, 1)))", [1.0, 2.0], [[2.0, 0.5], [0.5, 1.0]]),
    ("normal(0, [[1, .5], [.5, 2]])", [0.0, 0.0], [[1.0, 0.5], [0.5, 2.0]]),
    ("normal([0, 1], std=[1, 3])", [0.0, 1.0], [[1.0, 0.0], [0.0, 9.0]]),
    ("normal(+1, 1E-2)", [1.0], [[0.01]]),
    ("  normal( 0 ,\n 1 )  ", [0.0], [[1.0]]),
])
def test_normal_forms(text, mean, cov):
    d = parse_distribution(text)
    assert isinstance(d, Normal)
    np.testing.assert_allclose(d.mean, mean, rtol=0, atol=0)
    np.testing.assert_allclose(d.cov, cov, rtol=1e-15)


def test_uniform_forms():
    d = parse_distribution("uniform(-1, 2)")
    assert isinstance(d, Uniform) and d.ndim == 1
    np.testing.assert_allclose([d.low[0], d.high[0]], [-1.0, 2.0])
    seg = parse_distribution("uniform([0, 0], [0, 1])")   # a segment in 2D
    assert seg.ndim == 2
    np.testing.assert_allclose(seg.low, [0.0, 0.0])
    np.testing.assert_allclose(seg.high, [0.0, 1.0])
    box = parse_distribution("uniform(low=0, high=[1, 2])")
    np.testing.assert_allclose(box.low, [0.0, 0.0])
    np.testing.assert_allclose(box.high, [1.0, 2.0])


@pytest.mark.parametrize("name", ["point", "dirac"])
def test_point_forms(name):
    d = parse_distribution(f"{name}([1, -2.5])")
    assert isinstance(d, PointMass)
    np.testing.assert_allclose(d.location, [1.0, -2.5])
    assert parse_distribution(f"{name}(3)").ndim == 1


def test_mixture_weighted_and_equal():
    m = parse_distribution("mixture(0.3*normal(-1, 1), 0.7*normal(1, 1))")
    assert isinstance(m, Mixture)
    np.testing.assert_allclose(m.weights, [0.3, 0.7])
    np.testing.assert_allclose([c.mean[0] for c in m.components], [-1.0, 1.0])
    # weight on either side, normalised
    m = parse_distribution("mixture(normal(-1, 1)*1, 3*point(2))")
    np.testing.assert_allclose(m.weights, [0.25, 0.75])
    m = parse_distribution("mixture(normal(-1, 1), normal(1, 1), uniform(0, 1))")
    np.testing.assert_allclose(m.weights, [1 / 3] * 3)


def test_mixture_nested_and_broadcast_to_the_vectors_dimension():
    m = parse_distribution("mixture(point(0), mixture(point([1, 1]), normal(0, 2)))")
    assert m.ndim == 2
    np.testing.assert_allclose(m.components[0].location, [0.0, 0.0])
    inner = m.components[1]
    np.testing.assert_allclose(inner.components[1].cov, 2.0 * np.eye(2))


@pytest.mark.parametrize(("text", "k"), [("8gaussians", 8), ("eight_gaussians", 8),
                                         ("25gaussians", 25), ("twentyfive_gaussians", 25)])
def test_gaussian_datasets(text, k):
    d = parse_distribution(text)
    assert isinstance(d, Mixture) and d.ndim == 2 and len(d.components) == k
    # Gulrajani et al.: 8 centres on a circle, 25 on a 5 x 5 square lattice (both centred).
    centres = np.array([c.mean for c in d.components])
    np.testing.assert_allclose(centres.mean(axis=0), [0.0, 0.0], atol=1e-12)
    if k == 8:
        radius = np.hypot(*centres.T)
        np.testing.assert_allclose(radius, radius[0], rtol=1e-12)
    else:
        xs = np.unique(np.round(centres[:, 0], 12))
        assert xs.size == 5
        np.testing.assert_allclose(np.diff(xs), np.diff(xs)[0], rtol=1e-9)


def test_swissroll_and_datasets_inside_a_mixture():
    assert isinstance(parse_distribution("swissroll"), SwissRoll)
    assert isinstance(parse_distribution("swiss_roll"), SwissRoll)
    m = parse_distribution("mixture(0.5*8gaussians, 0.5*normal(0, 1))")
    assert m.ndim == 2
    np.testing.assert_allclose(m.components[1].mean, [0.0, 0.0])


def test_ndim_broadcasts_scalars_and_checks_vectors():
    d = parse_distribution("normal(1, 2)", ndim=2)
    np.testing.assert_allclose(d.mean, [1.0, 1.0])
    np.testing.assert_allclose(d.cov, 2.0 * np.eye(2))
    u = parse_distribution("uniform(0, 1)", ndim=3)
    assert u.ndim == 3
    with pytest.raises(ValueError, match="2D; expected 1D"):
        parse_distribution("normal([0, 0], 1)", ndim=1)
    with pytest.raises(ValueError, match="2D; expected 1D"):
        parse_distribution("8gaussians", ndim=1)
    with pytest.raises(ValueError, match="ndim"):
        parse_distribution("normal(0, 1)", ndim=0)


# --------------------------------------------------------------------------- .npy files


def test_npy_samples(tmp_path):
    rng = np.random.default_rng(0)
    x2 = rng.normal(size=(50, 2))
    x1 = rng.normal(size=40)
    np.save(tmp_path / "two.npy", x2)
    np.save(tmp_path / "one.npy", x1)
    d = parse_distribution(str(tmp_path / "two.npy"))
    assert isinstance(d, Empirical) and d.ndim == 2
    np.testing.assert_array_equal(d.samples, x2)
    d = parse_distribution(f"  {tmp_path / 'one.npy'} ", ndim=1)
    assert d.ndim == 1
    np.testing.assert_array_equal(d.samples[:, 0], x1)
    with pytest.raises(ValueError, match="2D samples"):
        parse_distribution(str(tmp_path / "two.npy"), ndim=1)


def test_npy_errors(tmp_path):
    with pytest.raises(ValueError, match="no such file"):
        parse_distribution(str(tmp_path / "missing.npy"))
    np.save(tmp_path / "cube.npy", np.zeros((2, 2, 2)))
    with pytest.raises(ValueError, match=r"shape \(2, 2, 2\)"):
        parse_distribution(str(tmp_path / "cube.npy"))
    np.save(tmp_path / "empty.npy", np.zeros((0, 2)))
    with pytest.raises(ValueError, match="n >= 1"):
        parse_distribution(str(tmp_path / "empty.npy"))
    np.save(tmp_path / "text.npy", np.array(["a", "b"]))
    with pytest.raises(ValueError, match="expected numbers"):
        parse_distribution(str(tmp_path / "text.npy"))
    np.save(tmp_path / "objects.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError, match=r"holds Python objects \(a pickle\), which otgrid does "
                       "not load"):
        parse_distribution(str(tmp_path / "objects.npy"))
    np.save(tmp_path / "nan.npy", np.array([0.0, np.nan]))
    with pytest.raises(ValueError, match="non-finite"):
        parse_distribution(str(tmp_path / "nan.npy"))
    (tmp_path / "junk.npy").write_text("not numpy")
    with pytest.raises(ValueError, match="could not read"):
        parse_distribution(str(tmp_path / "junk.npy"))


@pytest.mark.parametrize("shape", ["(1000000000000000,)", "(4000000000, 2)", "(100000000,)"])
def test_npy_header_declaring_more_data_than_the_file_is_refused_before_reading(tmp_path, shape):
    # a header crafted (or damaged) to declare petabytes: refused from the header and the file
    # size, before numpy allocates (found by fuzzing: MemoryError, or minutes of allocation)
    header = "{'descr': '<f8', 'fortran_order': False, 'shape': " + shape + ", }"
    header += " " * (63 - (len(header) + 10) % 64) + "\n"
    path = tmp_path / "bomb.npy"
    path.write_bytes(b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little")
                     + header.encode() + b"\0" * 64)
    with pytest.raises(ValueError, match="truncated or damaged: its header declares"):
        parse_distribution(str(path))


@pytest.mark.parametrize(("shape", "ndim", "words"), [
    ((100, 5), None, ["100 samples in 5D", "given explicitly", "ndim=5", "--bounds", "x.T"]),
    ((2, 1000), None, ["(2, 1000)", "looks transposed", "2 sample(s) in 1000D", "x.T"]),
    ((3, 5), None, ["looks transposed", "For 5 samples in 3D"]),
    ((3, 5), 3, ["looks transposed"]),
    ((1000, 2), 3, ["2D samples", "expected 3D"]),
    ((1000,), 2, ["1D samples", "expected 2D"]),
])
def test_npy_of_a_high_or_transposed_dimension_is_refused_quickly(tmp_path, shape, ndim, words):
    """A (100, 5) array used to become a 5D problem on a 32^5 grid (33.5 M cells), a (2, 1000)
    one a 1000D problem: each is one clear error, raised before any grid exists."""
    path = tmp_path / "x.npy"
    np.save(path, np.random.default_rng(0).normal(size=shape))
    with pytest.raises(ValueError) as exc:
        parse_distribution(str(path), ndim=ndim)
    msg = str(exc.value)
    for w in words:
        assert w in msg, msg
    assert msg.count("looks transposed") <= 1 and "\n" not in msg


def test_npy_above_3d_is_read_when_the_dimension_is_given(tmp_path):
    path = tmp_path / "x.npy"
    x = np.random.default_rng(0).normal(size=(100, 5))
    np.save(path, x)
    d = parse_distribution(str(path), ndim=5)
    assert d.ndim == 5 and np.array_equal(d.samples, x)
    np.save(path, x[:, :3])
    assert parse_distribution(str(path)).ndim == 3          # 3D is read as it is


def test_npy_with_huge_values_is_refused(tmp_path):
    path = tmp_path / "x.npy"
    np.save(path, np.array([[0.0, 1e300], [1.0, 2.0]]))
    with pytest.raises(ValueError, match=r"values up to 1e\+300.*within \+-1e\+150"):
        parse_distribution(str(path))


# --------------------------------------------------------------------------- extreme numbers


@pytest.mark.parametrize(("text", "expected"), [
    ("normal(1e300, 1)", "'1e300' is too large: numbers must lie within"),
    ("point(1e308)", "too large"),
    ("point(-1e308)", "too large"),
    ("normal(0, 1e151)", "too large"),
    ("uniform([0, 0], [1, 2e150])", "too large"),
    ("mixture(1e200*point(0), 1*point(1))", "too large"),
    ("normal(" + "1" * 320 + ", 1)", "not a finite number \\(it overflows float64\\)"),
    ("normal(0x" + "f" * 300 + ", 1)", "overflows float64"),
    ("normal(-" + "9" * 400 + ", 1)", "overflows float64"),
    ("point(" + "1" * 5000 + ")", "a number has too many digits"),
    ("point(1e400)", "not a finite number"),
])
def test_extreme_numbers_are_refused_at_parse_time(text, expected):
    with pytest.raises(ValueError, match=expected) as info:
        parse_distribution(text)
    msg = str(info.value)
    assert msg.startswith("invalid distribution") and len(msg) < 600
    assert "1e+150" in msg


def test_numbers_up_to_the_limit_are_accepted():
    assert parse_distribution("point(1e150)").location.tolist() == [1e150]
    assert parse_distribution("normal(-1e150, 1e150)").cov.tolist() == [[1e150]]
    assert parse_distribution("point(" + "1" * 150 + ")").location[0] == float("1" * 150)


# --------------------------------------------------------------------------- parallel lines


def test_parallel_lines():
    assert parse_parallel_lines("parallel_lines(0.5)") == 0.5
    assert parse_parallel_lines(" parallel_lines(theta=-2) ") == -2.0
    assert parse_parallel_lines("normal(0, 1)") is None
    assert parse_parallel_lines("8gaussians") is None
    with pytest.raises(ValueError, match="missing argument"):
        parse_parallel_lines("parallel_lines()")
    with pytest.raises(ValueError, match="theta must be a number"):
        parse_parallel_lines("parallel_lines([1, 2])")
    with pytest.raises(ValueError, match="pair of distributions"):
        parse_distribution("parallel_lines(0.5)")


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(("text", "expected"), [
    ("", "empty"),
    ("   ", "empty"),
    ("normal(0)", "needs a covariance or a std"),
    ("normal()", "missing argument"),
    ("normal(0, 1, 2)", "at most 2 positional"),
    ("normal(0, cov=1, std=1)", "either cov or std"),
    ("normal(0, 1, mean=1)", "twice"),
    ("normal(0, var=1)", "no argument 'var'"),
    ("normal", "needs arguments"),
    ("mixture", "needs arguments"),
    ("uniform(0)", "missing argument"),
    ("point()", "missing argument"),
    ("foo(1)", "unknown name 'foo'"),
    ("student_t(0, 1)", "unknown name"),
    ("normal('a', 1)", "expected a number"),
    ("normal(0, True)", "expected a number"),
    ("normal(1j, 1)", "expected a number"),
    ("normal(0, 1e999)", "not a finite number"),
    ("normal(0, [])", "empty list"),
    ("normal([[0, 1], [2]], 1)", "ragged"),
    ("normal([0, 0], [1, 2, 3])", "different lengths"),
    ("normal([0, 0], [[1, 0, 0], [0, 1, 0]])", "shape"),
    ("normal(0, -1)", "must be > 0"),
    ("normal(0, std=0)", "std must be > 0"),
    ("normal(0, [[1, 2], [3, 4]])", "symmetric"),
    ("uniform(1, 0)", "low must be <= high"),
    ("mixture()", "at least one component"),
    ("mixture(0.3*normal(0, 1), normal(1, 1))", "every mixture component or to none"),
    ("mixture(-1*normal(0, 1))", "weights must be > 0"),
    ("mixture(normal(0, 1)+normal(1, 1))", "weight \\* component"),
    ("mixture(normal(0, 1)*normal(1, 1))", "numeric weight"),
    ("mixture(w=1)", "components only"),
    ("mixture(point(0), point([1, 1, 1]), point([1, 1]))", "different dimensions"),
    ("mixture(parallel_lines(1))", "cannot be a mixture component"),
    ("8gaussians(1)", "takes no arguments"),
    ("normal(0, 1) + normal(1, 1)", "expected a distribution"),
    ("2 * normal(0, 1)", "expected a distribution"),
    ("normal(0, 1", "not a valid expression"),
    ("normal(*[0, 1])", "expected a number"),
    ("normal(0, **{'cov': 1})", "'\\*\\*' is not allowed"),
    ("normal([0][0], 1)", "expected a number"),
    ("normal(0, 1 if 1 else 2)", "expected a number"),
])
def test_bad_input_is_a_clear_value_error(text, expected):
    with pytest.raises(ValueError, match=expected) as info:
        parse_distribution(text)
    assert str(info.value).startswith(f"invalid distribution {text!r}")


def test_non_string_is_a_type_error():
    with pytest.raises(TypeError, match="must be a string"):
        parse_distribution(3.0)


def test_long_text_is_shortened_in_the_message():
    text = "normal(" + "+" * 5000 + "x, 1)"
    with pytest.raises(ValueError) as info:
        parse_distribution(text)
    assert " ... " in str(info.value) and len(str(info.value)) < 500
    with pytest.raises(ValueError, match="too long"):
        parse_distribution("point(" + "0" * 20_000 + ")")
    with pytest.raises(ValueError, match="nested"):
        parse_distribution("[" * 5000 + "]" * 5000)


# --------------------------------------------------------------------------- safety


@pytest.mark.parametrize("template", [
    "__import__('pathlib').Path({path!r}).touch()",
    "normal(__import__('pathlib').Path({path!r}).touch(), 1)",
    "mixture(2*__import__('pathlib').Path({path!r}).touch())",
    "(lambda: __import__('pathlib').Path({path!r}).touch())()",
    "[__import__('pathlib').Path({path!r}).touch() for _ in [0]]",
    "eval(\"__import__('pathlib').Path({path!r}).touch()\")",
    "exec(\"import pathlib; pathlib.Path({path!r}).touch()\")",
    "open({path!r}, 'w')",
    "normal.__globals__",
    "normal(0, 1).__class__",
    "().__class__.__bases__[0].__subclasses__()",
    "f'{{normal}}'",
    "(x := 1)",
    "lambda: 0",
])
def test_specs_are_never_evaluated(tmp_path, template):
    target = tmp_path / "pwned"
    text = template.format(path=str(target))
    with pytest.raises(ValueError, match="invalid distribution"):
        parse_distribution(text)
    assert not target.exists()


def test_grammar_help_names_every_form():
    for word in ("normal(mean, cov)", "std=", "uniform(low, high)", "point(x)", "dirac(x)",
                 "mixture(", "8gaussians", "25gaussians", "swissroll", "parallel_lines(theta)",
                 ".npy"):
        assert word in GRAMMAR


# --------------------------------------------------------------------------- properties

_finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False)
_positive = st.floats(min_value=1e-6, max_value=1e6, allow_nan=False, allow_infinity=False)


@settings(max_examples=40, deadline=None)
@given(mean=st.lists(_finite, min_size=1, max_size=3), std=_positive)
def test_normal_round_trip(mean, std):
    d = parse_distribution(f"normal({mean!r}, std={std!r})")
    np.testing.assert_array_equal(d.mean, mean)
    np.testing.assert_allclose(np.diag(d.cov), std ** 2, rtol=1e-15)


@settings(max_examples=40, deadline=None)
@given(weights=st.lists(_positive, min_size=1, max_size=5))
def test_mixture_weights_are_normalised(weights):
    parts = ", ".join(f"{w!r}*point({i})" for i, w in enumerate(weights))
    m = parse_distribution(f"mixture({parts})")
    np.testing.assert_allclose(m.weights, np.array(weights) / np.sum(weights), rtol=1e-12)
    np.testing.assert_array_equal([c.location[0] for c in m.components], range(len(weights)))
