"""Fuzz targets of the text inputs: the distribution grammar and the ``.npy`` sample loader.

Both go through :func:`otgrid.grid.spec.parse_distribution` (what the command line parses MU,
NU and TARGET with). The property: a distribution comes back, or a ``ValueError`` with a
one-line message; nothing else, and within the time limit. An accepted distribution must then
be usable the way the command line uses it: its ``repr``, bounds that hold it
(:func:`~otgrid.grid.grid.bounds_holding`), a small grid on them and its masses there (finite,
non-negative, total 1), or a clean error at any of these steps.
"""

from __future__ import annotations

import io
import math
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from fuzz.harness import Outcome, Target, classify_exception
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

# --------------------------------------------------------------------------- spec strategies
_NAMES = ["normal", "gaussian", "uniform", "point", "dirac", "mixture", "parallel_lines",
          "8gaussians", "25gaussians", "swissroll", "eight_gaussians", "swiss_roll",
          "twentyfive_gaussians", "Normal", "__import__", "open", "exec", "lambda", "os.system",
          "normal.__class__", "_otgrid_dataset_8gaussians", "nan", "inf"]
_KEYWORDS = ["mean", "cov", "std", "low", "high", "x", "theta", "weights", "bogus"]

_NUMBER_TEXT = st.one_of(
    st.integers(-10, 10).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.floats(-1e3, 1e3).map(lambda v: f"{v:.3g}"),
    st.sampled_from(["0", "-0.0", "1e150", "-1e150", "1e151", "1.0000001e150", "1e-150",
                     "1e-320", "5e-324", "1e308", "1e309", "-1e400", "2e-308", "1e-160",
                     "1" + "0" * 200, "9" * 5000, "0x1F", "0o17", "0b11", "1_000", ".5", "5.",
                     "1j", "True", "None", "...", "'1'", "b'1'", "nan", "inf", "-inf", "1e",
                     "--1", "+-1", "~1", "not 1", "1 if 1 else 0", "(1)", "[]", "()", "{}"]),
)


def _value_text(depth: int) -> st.SearchStrategy[str]:
    """A number, or a (nested) list/tuple of numbers (ragged or empty now and then)."""
    if depth <= 0:
        return _NUMBER_TEXT
    inner = _value_text(depth - 1)
    return st.one_of(
        _NUMBER_TEXT,
        st.lists(inner, min_size=0, max_size=4).map(lambda xs: "[" + ", ".join(xs) + "]"),
        st.lists(inner, min_size=0, max_size=3).map(lambda xs: "(" + ",".join(xs) + ",)"),
    )


@st.composite
def _call_text(draw: Any, depth: int = 2) -> str:
    """A call of a grammar (or foreign) name with positional, keyword and weighted arguments."""
    name = draw(st.sampled_from(_NAMES))
    if draw(st.integers(0, 5)) == 0:
        return name                                     # a bare name
    args = []
    for _ in range(draw(st.integers(0, 4))):
        kind = draw(st.integers(0, 9))
        if kind <= 5 or depth <= 0:
            args.append(draw(_value_text(2)))
        elif kind <= 7:
            args.append(draw(_call_text(depth - 1)))
        else:
            w = draw(_NUMBER_TEXT)
            comp = draw(_call_text(depth - 1))
            op = draw(st.sampled_from(["*", "*", "/", "+", "**", "@"]))
            args.append(f"{w}{op}{comp}" if draw(st.booleans()) else f"{comp}{op}{w}")
    for _ in range(draw(st.integers(0, 2))):
        kw = draw(st.sampled_from(_KEYWORDS))
        args.append(f"{kw}={draw(_value_text(2))}" if kw != "**" else "**{}")
    if draw(st.integers(0, 15)) == 0:
        args.append("**kw")
    return f"{name}({', '.join(args)})"


_VALID_SPECS = [
    "normal(0, 1)", "normal([0, 0], 1)", "normal(2, std=0.5)", "uniform(-1, 1)",
    "uniform([0, 0], [0, 1])", "point([1, 2])", "dirac(0.5)", "8gaussians", "25gaussians",
    "swissroll", "mixture(0.3*normal(-2, 1), 0.7*normal(2, .5))",
    "normal(0, [[1, .5], [.5, 1]])", "mixture(point(0), uniform(1, 2))", "parallel_lines(0.5)",
    "normal([1, 2, 3], 1)", "normal(mean=1, cov=2)",
]


def _mutate(text: str, edits: list[tuple[int, int, str]]) -> str:
    """Apply (position, kind, character) edits: 0 insert, 1 delete, 2 replace."""
    chars = list(text)
    for pos, kind, ch in edits:
        if not chars:
            chars = [ch]
            continue
        i = pos % (len(chars) + (kind == 0))
        if kind == 0:
            chars.insert(i, ch)
        elif kind == 1 and i < len(chars):
            del chars[i]
        elif i < len(chars):
            chars[i] = ch
    return "".join(chars)


_GRAMMAR_CHARS = "normalifupdxtghs_0123456789.,()[]*+-eE =/\\'\"#;:{}\n\t@!~<>|&%$^`?"


@st.composite
def _nested(draw: Any) -> str:
    """Deep nesting: of mixtures, lists, parentheses or unary minus."""
    k = draw(st.sampled_from([10, 50, 99, 100, 101, 300, 1000, 3000, 9000]))
    form = draw(st.integers(0, 5))
    if form == 0:
        return "mixture(" * k + "point(0)" + ")" * k
    if form == 1:
        return "normal(" + "[" * k + "0" + "]" * k + ", 1)"
    if form == 2:
        return "(" * k + "normal(0, 1)" + ")" * k
    if form == 3:
        return "point(" + "-" * k + "1)"
    if form == 4:
        return "mixture(" + ", ".join(["0.5*point(0)"] * (k // 10 + 1)) + ")"
    return "normal(" + "[" * k + "0"          # unbalanced


def spec_texts() -> st.SearchStrategy[str]:
    """Texts for the grammar: grammar-built, valid ones mutated, deep, long, garbage."""
    return st.one_of(
        _call_text(),
        st.sampled_from(_VALID_SPECS),
        st.tuples(st.sampled_from(_VALID_SPECS),
                  st.lists(st.tuples(st.integers(0, 200), st.integers(0, 2),
                                     st.sampled_from(_GRAMMAR_CHARS)), min_size=1, max_size=4)
                  ).map(lambda t: _mutate(*t)),
        _nested(),
        st.text(alphabet=_GRAMMAR_CHARS, max_size=60),
        st.text(max_size=40),
        st.tuples(st.sampled_from(_VALID_SPECS), st.integers(1, 1200)).map(
            lambda t: "mixture(" + ", ".join([t[0]] * t[1]) + ")"),
        st.sampled_from(["", " ", "\x00", "normal(0, 1)\x00", "x.npy", ".npy", "normal(0,1);1",
                         "normal(0, 1) # comment", "normal(0, 1)\nnormal(1, 1)",
                         "__import__('os').system('true')", "normal(*[0, 1])",
                         "normal(0, 1)[0]", "normal(0, 1).mean", "[normal(0, 1)]",
                         "8gaussians()", "normal", "mixture()", "lambda: 1", "a" * 10_001]),
    )


@st.composite
def spec_inputs(draw: Any) -> tuple[str, Any]:
    """(text, ndim) for :func:`parse_distribution`."""
    ndim = draw(st.one_of(st.none(), st.integers(1, 3), st.sampled_from([0, -1, 4, True, 1.5])))
    return draw(spec_texts()), ndim


# --------------------------------------------------------------------------- shared checks
def check_distribution(dist: Any, ndim: Any) -> Outcome:
    """What the command line does with a parsed distribution, checked step by step."""
    from otgrid.grid import Grid
    from otgrid.grid.grid import MAX_COORDINATE, bounds_holding

    text = repr(dist)
    if "\n" in text:
        return Outcome("wrong", f"multi-line repr {text!r}")
    if ndim is not None and dist.ndim != ndim:
        return Outcome("wrong", f"asked for {ndim}D, got a {dist.ndim}D {text}")
    if dist.ndim > 3:
        return Outcome("ok")
    samples = dist.sample(8, rng=0)
    if samples.shape != (8, dist.ndim) or not np.all(np.isfinite(samples)):
        return Outcome("wrong", f"{text}.sample(8) gave shape {samples.shape}, finite="
                       f"{bool(np.all(np.isfinite(samples)))}")
    try:
        bounds = bounds_holding(dist)
        grid = Grid(bounds, 8 if dist.ndim < 3 else 4)
        masses = grid.discretize(dist)
    except (ValueError, TypeError) as exc:
        return classify_exception(exc)
    if any(abs(v) > MAX_COORDINATE for b in bounds for v in b):
        return Outcome("wrong", f"bounds_holding({text}) = {bounds} beyond 1e150")
    total = float(np.sum(masses))
    if not (np.all(np.isfinite(masses)) and masses.min() >= 0 and abs(total - 1) <= 1e-9):
        return Outcome("wrong", f"masses of {text} on {grid!r}: finite="
                       f"{bool(np.all(np.isfinite(masses)))}, min={masses.min()}, "
                       f"total={total!r}")
    return Outcome("ok")


def _one_line_value_error(exc: BaseException) -> Outcome:
    out = classify_exception(exc)
    if out.kind == "error" and (not isinstance(exc, ValueError) or "\n" in str(exc)):
        return Outcome("crash", f"not a one-line ValueError: {type(exc).__name__}: {exc!r}"[:600])
    return out


# --------------------------------------------------------------------------- spec target
def run_spec(example: tuple[str, Any]) -> Outcome:
    """Parse a text; a ValueError with a one-line message or a usable distribution."""
    from otgrid.grid.spec import parse_distribution, parse_parallel_lines

    text, ndim = example
    try:
        theta = parse_parallel_lines(text)
        if theta is not None and not (math.isfinite(theta) and abs(theta) <= 1e150):
            return Outcome("wrong", f"parallel_lines theta {theta!r} from {text[:80]!r}")
    except Exception as exc:  # the property: a one-line ValueError only
        out = _one_line_value_error(exc)
        if out.kind != "error":
            return out
    try:
        dist = parse_distribution(text, ndim=ndim)
    except Exception as exc:  # the property: a one-line ValueError only
        return _one_line_value_error(exc)
    return check_distribution(dist, ndim)


# 60 s: a parse is milliseconds, but the first one in a process may compile kernels on a loaded
# machine (a 20 s limit was once exceeded that way, and not again on re-execution)
SPEC = Target("spec grammar", spec_inputs(), run_spec, weight=6.0, timeout=60.0)


# --------------------------------------------------------------------------- npy strategies
_DTYPES = [np.float64, np.float32, np.float16, np.longdouble, np.int64, np.int8, np.uint64,
           np.uint8, np.bool_, np.complex128, ">f8", "<U3", "S2", "M8[s]", "m8[s]",
           np.dtype([("x", "f8"), ("y", "f8")])]


def _elements(dtype: np.dtype) -> st.SearchStrategy | None:
    if dtype.kind == "f":
        return st.one_of(st.floats(-10, 10, width=min(64, dtype.itemsize * 8)),
                         st.sampled_from([np.nan, np.inf, -np.inf, 1e150, -1e151, 1e300, 5e-324,
                                          0.0, -0.0, 65504.0])
                         .map(lambda v: _cast(v, dtype)))
    return None


def _cast(value: float, dtype: np.dtype) -> Any:
    """``value`` in ``dtype`` (overflowing to inf in a narrow one)."""
    with np.errstate(over="ignore"):
        return np.array(value).astype(dtype)[()]


@st.composite
def npy_arrays(draw: Any) -> np.ndarray:
    """Arrays of every shape and dtype the loader may meet."""
    dtype = np.dtype(draw(st.sampled_from(_DTYPES)))
    form = draw(st.integers(0, 9))
    if form <= 3:       # samples, (n, d) or (n,)
        n = draw(st.integers(1, 40))
        shape = draw(st.sampled_from([(n,), (n, 1), (n, 2), (n, 3), (n, 4), (n, 5)]))
    elif form <= 5:     # transposed: (d, n)
        shape = (draw(st.integers(1, 5)), draw(st.integers(1, 40)))
    else:               # anything: 0-d, empty, up to 5 dimensions
        shape = draw(hnp.array_shapes(min_dims=0, max_dims=5, min_side=0, max_side=5))
    if dtype.kind == "f" and dtype.itemsize <= 8:
        arr = draw(hnp.arrays(dtype, shape, elements=_elements(dtype)))
    else:
        arr = draw(hnp.arrays(dtype, shape))
    if draw(st.integers(0, 9)) == 0:
        arr = np.asfortranarray(arr)
    return arr


class Canary:
    """Unpickling this object creates the file ``path``: a loader that unpickles leaves it."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (self.path, "w"))


def _header_bomb(shape: str) -> bytes:
    """A .npy header declaring ``shape`` (float64), with a few bytes of data."""
    header = "{'descr': '<f8', 'fortran_order': False, 'shape': " + shape + ", }"
    header += " " * (63 - (len(header) + 10) % 64) + "\n"
    return b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header.encode() + b"\0" * 64


@st.composite
def npy_files(draw: Any) -> dict:
    """The bytes of a file named ``*.npy``: a saved array, damaged or not; a pickled object
    array; a header declaring a huge shape; random bytes; a folder; a missing file."""
    kind = draw(st.sampled_from(["array"] * 6 + ["truncated", "flipped", "pickle", "bomb",
                                                 "garbage", "folder", "missing", "empty"]))
    ndim = draw(st.one_of(st.none(), st.none(), st.integers(1, 5)))
    name = draw(st.sampled_from(["x.npy", "samples.NPY", "with space.npy", "a'b.npy",
                                 "ü.npy", "-x.npy"]))
    spec: dict[str, Any] = {"kind": kind, "ndim": ndim, "name": name, "data": b""}
    if kind in ("array", "truncated", "flipped"):
        buf = io.BytesIO()
        np.save(buf, draw(npy_arrays()), allow_pickle=False)
        data = buf.getvalue()
        if kind == "truncated":
            data = data[:draw(st.integers(0, max(0, len(data) - 1)))]
        elif kind == "flipped":
            pos = draw(st.integers(0, len(data) - 1))
            data = data[:pos] + bytes([draw(st.integers(0, 255))]) + data[pos + 1:]
        spec["data"] = data
    elif kind == "bomb":
        spec["data"] = _header_bomb(draw(st.sampled_from(
            ["(10**15,)", "(1000000000000000,)", "(4000000000, 2)", "(2, 10**18)", "(-1,)",
             "(3, -2)", "()", "(0, 2)", "(1e3,)", "('a',)", "(2**63,)", "(100000000,)"])))
    elif kind == "garbage":
        spec["data"] = draw(st.binary(max_size=300))
    elif kind == "pickle":
        spec["data"] = draw(st.integers(0, 2))   # which object array (written at run time)
    return spec


def write_npy(spec: dict, folder: Path) -> tuple[str, Path | None]:
    """Write the file of :func:`npy_files` in ``folder``; its path and the canary's path."""
    path = folder / spec["name"]
    canary = None
    if spec["kind"] == "folder":
        path.mkdir()
    elif spec["kind"] == "pickle":
        canary = folder / "unpickled"
        objs = [np.array([Canary(str(canary)), 1.0], dtype=object),
                np.array([[1.0, 2.0], [3.0, Canary(str(canary))]], dtype=object),
                np.array([1.0, 2.0, 3.0], dtype=object)]
        np.save(path, objs[spec["data"]], allow_pickle=True)
    elif spec["kind"] != "missing":
        path.write_bytes(spec["data"])
    return str(path), canary


def run_npy(spec: dict) -> Outcome:
    """Load a ``.npy`` file through the grammar: samples, or a one-line ValueError; a pickle
    is never unpickled."""
    from otgrid.grid.spec import parse_distribution

    with tempfile.TemporaryDirectory(prefix="otgrid-fuzz-") as tmp:
        path, canary = write_npy(spec, Path(tmp))
        try:
            dist = parse_distribution(path, ndim=spec["ndim"])
        except Exception as exc:  # the property: a one-line ValueError only
            out = _one_line_value_error(exc)
        else:
            out = check_distribution(dist, spec["ndim"])
        if canary is not None and os.path.exists(canary):
            return Outcome("wrong", "a pickled object array was unpickled (the canary file "
                           "exists)")
    return out


NPY = Target(".npy loader", npy_files(), run_npy, weight=3.0, timeout=60.0)
