"""A small, safe text grammar for distributions (used by the command line).

``parse_distribution("mixture(0.3*normal(-1, 1), 0.7*normal(2, 0.5))")`` returns the otgrid
distribution the text describes. The text is parsed with :func:`ast.parse` (``mode="eval"``) and
interpreted by walking a whitelist of node types: calls of the names below, numeric literals,
unary minus, list/tuple literals, and ``weight * component`` inside ``mixture``. Nothing is ever
evaluated, so a spec cannot run code, read attributes or import modules.

Grammar (``x``, ``mean``, ``low``, ``high``: a number or a list ``[x, y]``; ``cov``: a scalar
variance, a list of per-axis variances or a matrix ``[[a, b], [b, c]]``)::

    normal(mean, cov)           Gaussian; also normal(mean, std=s), normal(mean=..., cov=...);
                                alias gaussian(...)
    uniform(low, high)          uniform on the box [low, high] (low == high on an axis: a
                                segment)
    point(x), dirac(x)          all the mass at x
    mixture(c1, c2, ...)        equal weights, or mixture(0.3*c1, 0.7*c2) (weights normalised)
    8gaussians, 25gaussians, swissroll
                                the classic 2D toy datasets of the WGAN literature (bare names)
    parallel_lines(theta)       Arjovsky's pair {0} x U[0, 1] and {theta} x U[0, 1] (a PAIR of
                                distributions: see :func:`parse_parallel_lines`)
    path/to/samples.npy         an (n, d) or (n,) array of samples -> Empirical (d <= 3 unless
                                ``ndim`` is given; a (d, n) array with d <= 3 < n is taken
                                for a transposed one and rejected)

Every number must be finite and within ``+-MAX_COORDINATE`` (1e150): beyond, grid spacings
and squared distances overflow float64, so such a spec is rejected with a message instead of
producing a meaningless W.

The dimension is that of the vectors in the text (``normal(0, 1)`` is 1D, ``normal([0, 0], 1)``
is 2D), or ``ndim`` when given: scalars are then broadcast (``normal(0, 1)`` with ``ndim=2`` is
the standard 2D Gaussian).
"""

from __future__ import annotations

import ast
import math
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from otgrid.grid.distributions import Distribution, Empirical, Mixture, Normal, PointMass, Uniform
from otgrid.grid.grid import MAX_COORDINATE

__all__ = ["GRAMMAR", "parse_distribution", "parse_parallel_lines"]

GRAMMAR = """\
distribution grammar (numbers, or lists [x, y] in 2D; nothing is evaluated):
  normal(mean, cov)      Gaussian; cov: a variance, a list of variances or a matrix,
                         e.g. normal(0, 1), normal([0, 0], 1), normal(0, [[1, .5], [.5, 1]])
  normal(mean, std=s)    Gaussian given its standard deviation, e.g. normal(2, std=0.5)
  uniform(low, high)     uniform on a box, e.g. uniform(-1, 1)  uniform([0, 0], [1, 2])
  point(x) | dirac(x)    all the mass at x, e.g. point([1, 1])
  mixture(c1, c2, ...)   equal weights, or weighted (normalised):
                         mixture(0.3*normal(-2, 1), 0.7*normal(2, 1))
  8gaussians | 25gaussians | swissroll
                         the 2D toy datasets of the WGAN literature
  parallel_lines(theta)  Arjovsky's pair {0}xU[0,1], {theta}xU[0,1]; MU alone, W = |theta|
  FILE.npy               samples: an (n, d) or (n,) array, d <= 3 (histogrammed)
numbers must be finite, within +-1e150"""

_MAX_LENGTH = 10_000

# Names that are not Python identifiers are rewritten before parsing.
_DATASET_ALIASES = {
    "8gaussians": "8gaussians",
    "eight_gaussians": "8gaussians",
    "25gaussians": "25gaussians",
    "twentyfive_gaussians": "25gaussians",
    "swissroll": "swissroll",
    "swiss_roll": "swissroll",
}
_DIGIT_NAME = re.compile(r"\b(8gaussians|25gaussians)\b")
_DIGIT_PREFIX = "_otgrid_dataset_"

# name -> (canonical name, positional parameters, extra keyword-only parameters)
_FUNCTIONS: dict[str, tuple[str, tuple[str, ...], tuple[str, ...]]] = {
    "normal": ("normal", ("mean", "cov"), ("std",)),
    "gaussian": ("normal", ("mean", "cov"), ("std",)),
    "uniform": ("uniform", ("low", "high"), ()),
    "point": ("point", ("x",), ()),
    "dirac": ("point", ("x",), ()),
    "parallel_lines": ("parallel_lines", ("theta",), ()),
}

_EXAMPLES = {
    "normal": "normal(0, 1), normal([0, 0], 1), normal(0, std=2)",
    "uniform": "uniform(-1, 1), uniform([0, 0], [1, 1])",
    "point": "point(0.5), point([1, 2])",
    "mixture": "mixture(normal(-1, 1), normal(1, 1)) or mixture(0.3*point(0), 0.7*point(1))",
    "parallel_lines": "parallel_lines(0.5)",
}


class _SpecError(ValueError):
    """Internal: an error about a fragment; turned into a ValueError quoting the whole text."""


# --------------------------------------------------------------------------- intermediate tree
@dataclass(frozen=True)
class _Node:
    """A parsed call: canonical name, its numeric arguments (floats or arrays) or components."""

    name: str
    args: dict[str, Any] = field(default_factory=dict)
    components: tuple[_Node, ...] = ()
    weights: tuple[float, ...] | None = None
    source: str = ""


def _fragment(node: ast.AST, text: str) -> str:
    seg = ast.get_source_segment(text, node)
    if seg is None:
        return type(node).__name__
    seg = seg.replace(_DIGIT_PREFIX, "")
    return seg if len(seg) <= 60 else seg[:28] + " ... " + seg[-28:]


def _number(node: ast.AST, text: str) -> float:
    """A numeric literal, possibly with unary minus/plus."""
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        value = _number(node.operand, text)
        return -value if isinstance(node.op, ast.USub) else value
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        try:
            value = float(node.value)
        except OverflowError:  # an integer literal beyond float64
            value = math.inf
        if not math.isfinite(value):
            raise _SpecError(f"{_fragment(node, text)!r} is not a finite number (it overflows "
                             f"float64); numbers must lie within +-{MAX_COORDINATE:g}")
        if abs(value) > MAX_COORDINATE:
            raise _SpecError(f"{_fragment(node, text)!r} is too large: numbers must lie within "
                             f"+-{MAX_COORDINATE:g} (beyond, grid spacings and squared "
                             "distances overflow); rescale the problem (other units)")
        return value
    raise _SpecError(f"expected a number, got {_fragment(node, text)!r}")


def _value(node: ast.AST, text: str) -> float | np.ndarray:
    """A number or a (nested) list/tuple of numbers, as a float or a float64 array."""
    if isinstance(node, (ast.List, ast.Tuple)):
        items = [_value(e, text) for e in node.elts]
        if not items:
            raise _SpecError(f"empty list {_fragment(node, text)!r}; expected numbers in it")
        shapes = {np.shape(v) for v in items}
        if len(shapes) != 1:
            raise _SpecError(f"ragged list {_fragment(node, text)!r}: every row of a matrix "
                             "must have the same length")
        return np.array(items, dtype=np.float64)
    if isinstance(node, (ast.Constant, ast.UnaryOp)):
        return _number(node, text)
    raise _SpecError(f"expected a number or a list of numbers, got {_fragment(node, text)!r}")


def _call(node: ast.AST, text: str) -> _Node:
    """A whitelisted call (or bare dataset name)."""
    if isinstance(node, ast.Name):
        name = node.id
        if name.startswith(_DIGIT_PREFIX):
            name = name[len(_DIGIT_PREFIX):]
        if name in _DATASET_ALIASES:
            return _Node(_DATASET_ALIASES[name], source=_fragment(node, text))
        if name in _FUNCTIONS or name == "mixture":
            canonical = _FUNCTIONS[name][0] if name in _FUNCTIONS else name
            raise _SpecError(f"{name!r} needs arguments, e.g. {_EXAMPLES[canonical]}")
        raise _SpecError(f"unknown name {name!r}; expected one of {_known_names()}")
    if not isinstance(node, ast.Call):
        raise _SpecError(f"expected a distribution such as normal(0, 1), got "
                         f"{_fragment(node, text)!r}")
    if not isinstance(node.func, ast.Name):
        raise _SpecError(f"only plain names can be called (e.g. normal(0, 1)); got "
                         f"{_fragment(node.func, text)!r}")
    name = node.func.id
    if name.startswith(_DIGIT_PREFIX):
        name = name[len(_DIGIT_PREFIX):]
    src = _fragment(node, text)
    if name in _DATASET_ALIASES:
        raise _SpecError(f"{name!r} takes no arguments; write it as a bare name, e.g. {name}")
    if name == "mixture":
        return _mixture(node, text, src)
    if name not in _FUNCTIONS:
        raise _SpecError(f"unknown name {name!r}; expected one of {_known_names()}")
    canonical, positional, keyword_only = _FUNCTIONS[name]
    example = _EXAMPLES[canonical]
    if len(node.args) > len(positional):
        raise _SpecError(f"{name}() takes at most {len(positional)} positional argument(s) "
                         f"({', '.join(positional)}); got {len(node.args)} in {src!r}. "
                         f"Expected e.g. {example}")
    args: dict[str, Any] = {}
    for pname, arg in zip(positional, node.args, strict=False):
        args[pname] = _value(arg, text)
    for kw in node.keywords:
        if kw.arg is None:
            raise _SpecError(f"'**' is not allowed in {src!r}")
        if kw.arg not in positional + keyword_only:
            allowed = ", ".join(positional + keyword_only)
            raise _SpecError(f"{name}() has no argument {kw.arg!r} (allowed: {allowed}); "
                             f"in {src!r}")
        if kw.arg in args:
            raise _SpecError(f"{name}() got argument {kw.arg!r} twice in {src!r}")
        args[kw.arg] = _value(kw.value, text)
    required = ("mean",) if canonical == "normal" else positional
    missing = [p for p in required if p not in args]
    if missing:
        raise _SpecError(f"{name}() is missing argument(s) {', '.join(missing)} in {src!r}. "
                         f"Expected e.g. {example}")
    if canonical == "normal":
        if "cov" in args and "std" in args:
            raise _SpecError(f"give normal() either cov or std, not both; got {src!r}")
        if "cov" not in args and "std" not in args:
            raise _SpecError(f"normal() needs a covariance or a std, e.g. {example}; got {src!r}")
    return _Node(canonical, args=args, source=src)


def _mixture(node: ast.Call, text: str, src: str) -> _Node:
    if node.keywords:
        raise _SpecError(f"mixture() takes components only (weights as 0.3*component); "
                         f"got keyword(s) in {src!r}")
    if not node.args:
        raise _SpecError(f"mixture() needs at least one component, e.g. {_EXAMPLES['mixture']}")
    comps, weights = [], []
    for arg in node.args:
        weight = None
        if isinstance(arg, ast.BinOp):
            if not isinstance(arg.op, ast.Mult):
                raise _SpecError(f"only 'weight * component' is allowed in a mixture; got "
                                 f"{_fragment(arg, text)!r}")
            if isinstance(arg.left, (ast.Constant, ast.UnaryOp)):
                weight, arg = _number(arg.left, text), arg.right
            elif isinstance(arg.right, (ast.Constant, ast.UnaryOp)):
                weight, arg = _number(arg.right, text), arg.left
            else:
                raise _SpecError(f"expected 'weight * component' with a numeric weight; got "
                                 f"{_fragment(arg, text)!r}")
            if not weight > 0:
                raise _SpecError(f"mixture weights must be > 0; got {weight:g} in {src!r}")
        comp = _call(arg, text)
        if comp.name == "parallel_lines":
            raise _SpecError("parallel_lines(theta) is a pair of distributions and cannot be a "
                             "mixture component")
        comps.append(comp)
        weights.append(weight)
    given = [w is not None for w in weights]
    if any(given) and not all(given):
        raise _SpecError(f"give a weight to every mixture component or to none; got {src!r}")
    return _Node("mixture", components=tuple(comps),
                 weights=tuple(weights) if all(given) else None, source=src)


def _known_names() -> str:
    names = [*_FUNCTIONS, "mixture", "8gaussians", "25gaussians", "swissroll"]
    return ", ".join(names)


def _parse_tree(text: str) -> _Node:
    """Parse ``text`` into the intermediate tree (no distribution built yet)."""
    if len(text) > _MAX_LENGTH:
        raise _SpecError(f"the text is too long ({len(text)} characters; at most {_MAX_LENGTH})")
    if _DIGIT_PREFIX in text:
        raise _SpecError(f"unknown name containing {_DIGIT_PREFIX!r}")
    rewritten = _DIGIT_NAME.sub(lambda m: _DIGIT_PREFIX + m.group(1), text)
    try:
        tree = ast.parse(rewritten.strip(), mode="eval")
    except SyntaxError as exc:
        if "integer string conversion" in str(exc.msg):
            raise _SpecError(f"a number has too many digits; numbers must lie within "
                             f"+-{MAX_COORDINATE:g}") from None
        raise _SpecError(f"not a valid expression ({exc.msg})") from None
    except (RecursionError, MemoryError):
        raise _SpecError("the expression is nested too deeply") from None
    try:
        return _call(tree.body, rewritten.strip())
    except RecursionError:
        raise _SpecError("the expression is nested too deeply") from None


# --------------------------------------------------------------------------- dimensions
def _intrinsic_dim(node: _Node) -> int | None:
    """Dimension fixed by the text (vector lengths, datasets), or None when all are scalars."""
    if node.name in ("8gaussians", "25gaussians", "swissroll", "parallel_lines"):
        return 2
    if node.name == "mixture":
        dims = {d for c in node.components if (d := _intrinsic_dim(c)) is not None}
        if len(dims) > 1:
            raise _SpecError(f"mixture components have different dimensions {sorted(dims)} "
                             f"in {node.source!r}")
        return dims.pop() if dims else None
    dims = set()
    for pname, v in node.args.items():
        if isinstance(v, np.ndarray):
            if v.ndim > 2 or (v.ndim == 2 and not (pname == "cov" and v.shape[0] == v.shape[1])):
                raise _SpecError(f"argument {pname} of {node.source!r} has shape {v.shape}; "
                                 "expected a number or a vector" +
                                 (" or a square matrix" if pname == "cov" else ""))
            dims.add(v.shape[0])
    if len(dims) > 1:
        raise _SpecError(f"the vectors in {node.source!r} have different lengths "
                         f"{sorted(dims)}; they must all have one entry per axis")
    return dims.pop() if dims else None


def _vector(v: float | np.ndarray, d: int, what: str, node: _Node) -> np.ndarray:
    arr = np.asarray(v, dtype=np.float64)
    if arr.ndim == 0:
        return np.full(d, float(arr))
    if arr.shape != (d,):
        raise _SpecError(f"{what} of {node.source!r} has {arr.size} entries; expected {d} "
                         f"(one per axis)")
    return arr


def _build(node: _Node, d: int) -> Distribution:
    """Build the distribution of ``node`` in dimension ``d`` (scalars broadcast)."""
    if node.name == "normal":
        mean = _vector(node.args["mean"], d, "mean", node)
        if "std" in node.args:
            std = np.asarray(node.args["std"], dtype=np.float64)
            if std.ndim > 1:
                raise _SpecError(f"std of {node.source!r} must be a number or a vector")
            if np.any(std <= 0):
                raise _SpecError(f"std must be > 0 in {node.source!r}")
            cov = _vector(std, d, "std", node) ** 2
        else:
            cov = np.asarray(node.args["cov"], dtype=np.float64)
            if cov.ndim == 0:
                cov = np.full(d, float(cov))
            elif cov.ndim == 1:
                cov = _vector(cov, d, "cov", node)
            elif cov.shape != (d, d):
                raise _SpecError(f"cov of {node.source!r} has shape {cov.shape}; expected "
                                 f"({d}, {d})")
        return _wrap(Normal, node, mean, cov)
    if node.name == "uniform":
        low = _vector(node.args["low"], d, "low", node)
        high = _vector(node.args["high"], d, "high", node)
        return _wrap(Uniform, node, low, high)
    if node.name == "point":
        return _wrap(PointMass, node, _vector(node.args["x"], d, "x", node))
    if node.name == "mixture":
        comps = [_build(c, d) for c in node.components]
        return _wrap(Mixture, node, comps, node.weights)
    if node.name in ("8gaussians", "25gaussians", "swissroll"):
        if d != 2:
            raise _SpecError(f"{node.name} is a 2D dataset; it cannot be used in {d}D")
        return _dataset(node.name)
    if node.name == "parallel_lines":
        raise _SpecError("parallel_lines(theta) is a pair of distributions, not one; give it as "
                         "MU alone on the command line (NU omitted or '-'), or use "
                         "parse_parallel_lines")
    raise _SpecError(f"unknown distribution {node.name!r}")  # pragma: no cover


def _wrap(cls: type, node: _Node, *args: Any) -> Distribution:
    """Call a constructor, turning its validation errors into spec errors."""
    try:
        return cls(*args)
    except (TypeError, ValueError) as exc:
        raise _SpecError(f"in {node.source!r}: {str(exc).rstrip('.')}") from None


def _dataset(name: str) -> Distribution:
    from otgrid.grid import datasets

    return {
        "8gaussians": datasets.eight_gaussians,
        "25gaussians": datasets.twentyfive_gaussians,
        "swissroll": datasets.swissroll,
    }[name]()


def _npy_path(text: str) -> Path:
    """The path of a ``.npy`` file, ``~`` expanded, checked to be a regular file; every
    failure (no such user, a name over 255 bytes, no permission to look) is a spec error."""
    try:
        path = Path(text).expanduser()
    except RuntimeError:  # ~nosuchuser, or no home directory
        raise _SpecError(f"{text.split('/', 1)[0]!r} cannot be expanded (no such user or home "
                         "folder); give the path without it") from None
    try:
        st = path.stat()
    except FileNotFoundError:
        raise _SpecError(f"no such file {str(path)!r}; expected a .npy file of samples") from None
    except (OSError, ValueError) as exc:  # ENAMETOOLONG, EACCES, ELOOP, ENOTDIR; NUL
        reason = getattr(exc, "strerror", None) or "not a valid path"
        raise _SpecError(f"cannot open {str(path)!r} ({reason}); expected a .npy file of "
                         "samples") from None
    if not stat.S_ISREG(st.st_mode):
        raise _SpecError(f"{str(path)!r} is not a file; expected a .npy file of samples")
    return path


def _load_npy(text: str, ndim: int | None) -> Empirical:
    path = _npy_path(text)
    shape, dtype = _npy_header(path)
    if dtype.hasobject:
        raise _SpecError(f"{str(path)!r} holds Python objects (a pickle), which otgrid does not "
                         "load (unpickling can run code); save a numeric array")
    if dtype.kind not in "biuf":
        raise _SpecError(f"{str(path)!r} holds a {dtype} array; expected numbers")
    if len(shape) not in (1, 2) or shape[0] == 0 or math.prod(shape) == 0:
        raise _SpecError(f"{str(path)!r} holds an array of shape {shape}; expected "
                         "(n, d) or (n,) samples with n >= 1")
    _check_sample_shape(shape, ndim, str(path))
    try:
        samples = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        detail = str(exc).splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise _SpecError(f"could not read {str(path)!r} as a .npy array ({detail})") from None
    try:
        dist = Empirical(samples)
    except (TypeError, ValueError) as exc:
        raise _SpecError(f"invalid samples in {str(path)!r}: {str(exc).rstrip('.')}") from None
    top = float(np.max(np.abs(dist.samples)))
    if top > MAX_COORDINATE:
        raise _SpecError(f"{str(path)!r} holds values up to {top:.3g} in magnitude; they must "
                         f"lie within +-{MAX_COORDINATE:g} (rescale the samples)")
    return dist


def _npy_header(path: Path) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype from the header of a ``.npy`` file, checked against the file's size
    before any data is read: a header that declares more data than the file holds (damaged,
    truncated, or crafted to make the loader allocate petabytes) is refused."""
    from numpy.lib import format as npy_format

    try:
        with path.open("rb") as fh:
            version = npy_format.read_magic(fh)
            if version == (1, 0):
                shape, _, dtype = npy_format.read_array_header_1_0(fh)
            elif version == (2, 0):
                shape, _, dtype = npy_format.read_array_header_2_0(fh)
            else:
                raise ValueError(f"unsupported .npy format version {version}")
            offset = fh.tell()
    except Exception as exc:  # numpy's header parser lets out what it meets on a damaged
        # file: ValueError, SyntaxError, tokenize.TokenError, UnicodeDecodeError...
        detail = str(exc).splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise _SpecError(f"could not read {str(path)!r} as a .npy array ({detail})") from None
    if dtype.hasobject:
        return shape, dtype
    declared = math.prod(shape) * dtype.itemsize
    held = path.stat().st_size - offset
    if declared > held:
        raise _SpecError(f"{str(path)!r} is truncated or damaged: its header declares an array "
                         f"of shape {shape} ({declared} bytes) but the file holds {held} bytes "
                         "of data")
    return shape, dtype


# samples of a higher dimension need it given explicitly (ndim, or the CLI's --bounds/--shape)
_MAX_IMPLICIT_DIM = 3


def _check_sample_shape(shape: tuple[int, ...], ndim: int | None, path: str) -> None:
    """Reject sample arrays of the wrong dimension, those that look transposed (``(d, n)``
    with ``d <= 3 < n``) and, unless ``ndim`` says so, those above 3D (``(n, d)``, ``d > 3``)."""
    if len(shape) == 1:
        if ndim not in (None, 1):
            raise _SpecError(f"{path!r} holds 1D samples (shape {shape}); expected {ndim}D")
        return
    n, d = shape
    if d == ndim:
        return
    transposed = n <= _MAX_IMPLICIT_DIM < d and ndim in (None, n)
    if transposed:
        raise _SpecError(f"{path!r} holds an array of shape {shape}, which looks transposed: "
                         f"samples are rows, so this is {n} sample(s) in {d}D. For {d} samples "
                         f"in {n}D save the transpose (numpy.save(path, x.T))")
    if ndim is not None:
        raise _SpecError(f"{path!r} holds {d}D samples (shape {shape}); expected {ndim}D")
    if d > _MAX_IMPLICIT_DIM:
        raise _SpecError(f"{path!r} holds {n} samples in {d}D (shape {shape}); samples above "
                         f"{_MAX_IMPLICIT_DIM}D need their dimension given explicitly (ndim={d}; "
                         f"on the command line {d} LOW HIGH pairs in --bounds or {d} values in "
                         "--shape), and a grid in that dimension only fits in memory when it is "
                         "coarse. If the array is transposed, save x.T")


# --------------------------------------------------------------------------- public API
def _check_ndim(ndim: Any) -> int | None:
    if ndim is None:
        return None
    if isinstance(ndim, bool) or not isinstance(ndim, (int, np.integer)) or ndim < 1:
        raise ValueError(f"ndim must be None or a positive integer; got {ndim!r}.")
    return int(ndim)


def _quote(text: str, limit: int = 120) -> str:
    """``repr`` of the text, shortened in the middle when it is long."""
    if len(text) > limit:
        text = text[: limit // 2] + " ... " + text[-limit // 2:]
    return repr(text)


def _fail(text: str, exc: _SpecError) -> ValueError:
    return ValueError(f"invalid distribution {_quote(text)}: {str(exc).rstrip('.')}.")


def parse_distribution(text: str, ndim: int | None = None) -> Distribution:
    """Build a distribution from its text description (a safe grammar, never evaluated).

    Parameters
    ----------
    text : str
        The description, e.g. ``"normal(0, 1)"``, ``"normal([0, 0], [[1, .5], [.5, 2]])"``,
        ``"uniform(-1, 1)"``, ``"point([1, 2])"``,
        ``"mixture(0.3*normal(-1, 1), 0.7*normal(1, 1))"``, ``"8gaussians"``, ``"25gaussians"``,
        ``"swissroll"`` or a path ending in ``.npy`` holding samples of shape (n, d) or (n,).
        The full grammar is in the module docstring and in :data:`GRAMMAR`.
    ndim : int, optional
        Required dimension. Scalars in the text are broadcast to it (``normal(0, 1)`` with
        ``ndim=2`` is the standard 2D Gaussian). By default the dimension is the length of the
        vectors in the text (1 when there are none; 2 for the datasets).

    Returns
    -------
    Distribution
        A :class:`~otgrid.grid.distributions.Normal`,
        :class:`~otgrid.grid.distributions.Uniform`, :class:`~otgrid.grid.distributions.PointMass`,
        :class:`~otgrid.grid.distributions.Mixture` or :class:`~otgrid.grid.distributions.Empirical`
        (``.npy`` files).

    Raises
    ------
    ValueError
        When the text is not in the grammar (unknown name, wrong number of arguments,
        non-numeric argument, inconsistent dimensions, missing file...); the message quotes
        the text and says what was expected. ``parallel_lines(theta)`` describes a pair and is
        rejected here: use :func:`parse_parallel_lines`.
    TypeError
        When ``text`` is not a string.

    Examples
    --------
    >>> from otgrid.grid.spec import parse_distribution
    >>> parse_distribution("normal(0, std=2)")
    Normal(mean=0.0, cov=4.0)
    >>> parse_distribution("uniform(0, 1)", ndim=2)
    Uniform(low=[0.0, 0.0], high=[1.0, 1.0])
    >>> parse_distribution("mixture(0.25*point(-1), 0.75*point(1))").weights.tolist()
    [0.25, 0.75]
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be a string such as 'normal(0, 1)'; got "
                        f"{type(text).__name__}.")
    ndim = _check_ndim(ndim)
    stripped = text.strip()
    if not stripped:
        raise ValueError(f"invalid distribution {text!r}: it is empty; expected e.g. "
                         "'normal(0, 1)'.")
    try:
        if stripped.lower().endswith(".npy"):
            return _load_npy(stripped, ndim)
        tree = _parse_tree(stripped)
        intrinsic = _intrinsic_dim(tree)
        if ndim is not None and intrinsic is not None and intrinsic != ndim:
            raise _SpecError(f"it is {intrinsic}D; expected {ndim}D")
        d = ndim if ndim is not None else (intrinsic or 1)
        return _build(tree, d)
    except _SpecError as exc:
        raise _fail(text, exc) from None


def parse_parallel_lines(text: str) -> float | None:
    """Return ``theta`` if ``text`` is ``parallel_lines(theta)``, else None.

    ``parallel_lines(theta)`` names Arjovsky's pair of distributions in 2D: ``P_0``, uniform
    on the segment ``{0} x [0, 1]``, and ``P_theta``, uniform on ``{theta} x [0, 1]``, whose
    Wasserstein-1 distance is ``|theta|``.

    Parameters
    ----------
    text : str
        A distribution description.

    Returns
    -------
    float or None
        ``theta``, or None when the text is another distribution (or not valid at all: that
        error is left to :func:`parse_distribution`). The pair itself is
        ``otgrid.grid.datasets.parallel_lines(theta)``.

    Raises
    ------
    ValueError
        When the text is a malformed ``parallel_lines`` call (e.g. a missing or non-numeric
        ``theta``).

    Examples
    --------
    >>> from otgrid.grid.spec import parse_parallel_lines
    >>> parse_parallel_lines("parallel_lines(0.5)")
    0.5
    >>> parse_parallel_lines("normal(0, 1)") is None
    True
    """
    if not isinstance(text, str) or not text.strip().startswith("parallel_lines"):
        return None
    try:
        node = _parse_tree(text.strip())
        if node.name != "parallel_lines":
            return None
        theta = node.args["theta"]
        if isinstance(theta, np.ndarray):
            raise _SpecError("theta must be a number")
        return float(theta)
    except _SpecError as exc:
        raise _fail(text, exc) from None
