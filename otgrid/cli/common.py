"""Pieces shared by the commands: the usage error, the parser, distributions, grids, outputs."""

from __future__ import annotations

import argparse
import math
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from otgrid.grid.spec import parse_distribution, parse_parallel_lines

_DEFAULT_SHAPE = {1: 512, 2: 128}
_DEFAULT_SHAPE_ND = 32
_MAX_CELLS = 2 ** 27


class _UsageError(Exception):
    """Bad command-line input: reported on one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    """ArgumentParser that raises instead of exiting, so that ``main`` returns the status."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise _UsageError(f"{message} (see '{self.prog} --help')")


# --------------------------------------------------------------------------- output helpers
def one_line(text: str) -> str:
    """``text`` with every non-printable character (line breaks, carriage returns, escapes)
    written as its Python escape, so that a message stays on one line whatever the user typed."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in str(text))


def _symbol(preferred: str, fallback: str) -> str:
    """``preferred`` if standard output can encode it, else ``fallback``."""
    encoding = getattr(sys.stdout, "encoding", None)
    if not encoding:
        return preferred
    try:
        preferred.encode(encoding)
    except (UnicodeEncodeError, LookupError):
        return fallback
    return preferred


def _fmt_bounds(bounds: Sequence[tuple[float, float]]) -> str:
    return " x ".join(f"[{lo:.6g}, {hi:.6g}]" for lo, hi in bounds)


# --------------------------------------------------------------------------- distributions
def _dimension_hint(args: argparse.Namespace) -> int | None:
    """A dimension implied by --bounds (several pairs) or --shape (several values)."""
    if args.bounds is not None and len(args.bounds) % 2:
        raise _UsageError(f"--bounds needs LOW HIGH pairs; got {len(args.bounds)} value(s).")
    from_bounds = len(args.bounds) // 2 if args.bounds and len(args.bounds) > 2 else None
    from_shape = len(args.shape) if args.shape and len(args.shape) > 1 else None
    if from_bounds and from_shape and from_bounds != from_shape:
        raise _UsageError(f"--bounds gives {from_bounds} axes but --shape gives {from_shape}; "
                          "give one LOW HIGH pair and one N per axis.")
    return from_bounds or from_shape


def _parse(text: str, name: str, ndim: int | None) -> Any:
    try:
        return parse_distribution(text, ndim=ndim)
    except ValueError as exc:
        raise _UsageError(f"{name}: {exc}") from None


def _load_pair(mu_text: str, nu_text: str | None, hint: int | None) -> tuple[Any, Any, str]:
    """Parse MU and NU (or the parallel-lines pair); returns them and a label for the figure."""
    try:
        theta = parse_parallel_lines(mu_text)
    except ValueError as exc:
        raise _UsageError(f"MU: {exc}") from None
    nu_missing = nu_text is None or nu_text.strip() == "-"
    if theta is not None:
        if not nu_missing:
            raise _UsageError(f"MU {mu_text!r} is a pair of distributions by itself; omit NU "
                              f"(or write '-'), got NU {nu_text!r}.")
        if hint not in (None, 2):
            raise _UsageError(f"parallel_lines is 2D; --bounds/--shape describe {hint} axes.")
        from otgrid.grid.datasets import parallel_lines

        mu, nu = parallel_lines(theta)
        return mu, nu, f"parallel_lines({theta:g})"
    if nu_missing:
        raise _UsageError(f"NU is missing: give two distributions, e.g. otgrid critic "
                          f"{mu_text!r} 'normal(1, 1)' (only parallel_lines(theta) stands alone).")
    if parse_parallel_lines(nu_text) is not None:
        raise _UsageError("parallel_lines(theta) is a pair of distributions; give it as MU alone "
                          "(omit NU).")
    if hint is not None:
        return _parse(mu_text, "MU", hint), _parse(nu_text, "NU", hint), f"{mu_text}  vs  {nu_text}"
    mu = _parse(mu_text, "MU", None)
    nu = _parse(nu_text, "NU", None)
    if mu.ndim != nu.ndim:
        d = max(mu.ndim, nu.ndim)
        try:
            mu, nu = parse_distribution(mu_text, ndim=d), parse_distribution(nu_text, ndim=d)
        except ValueError:
            raise _UsageError(f"MU is {mu.ndim}D but NU is {nu.ndim}D; give two distributions "
                              "of the same dimension.") from None
    return mu, nu, f"{mu_text}  vs  {nu_text}"


def _default_bounds(mu: Any, nu: Any) -> list[tuple[float, float]]:
    """A box holding both distributions (Gaussians to mean +- 5 std), padded by 5% and rounded
    outward (:func:`otgrid.grid.grid.bounds_holding`)."""
    from otgrid.grid.grid import bounds_holding

    try:
        return bounds_holding(mu, nu)
    except ValueError as exc:
        raise _UsageError(f"no default bounds: {str(exc).rstrip('.')}.") from None


def _fmt_shape(shape: Sequence[int]) -> str:
    """``128 128``; a long list is shortened (``32 32 ... (1000 values)``), never repeated."""
    if len(shape) <= 4:
        return " ".join(map(str, shape))
    return f"{shape[0]} {shape[1]} ... ({len(shape)} values)"


def _check_memory(args: argparse.Namespace, shape: list[int]) -> None:
    """Refuse at once a grid whose solve would not fit in the memory available here."""
    from otgrid.critic.memory import check_memory
    from otgrid.errors import InsufficientMemoryError

    dtype = np.float32 if getattr(args, "float32", False) else np.float64
    try:
        # the masses mu and nu (2 grid arrays) are held besides the solver's own arrays
        check_memory(shape, 1, dtype, getattr(args, "backend", "auto"), extra_arrays=2)
    except InsufficientMemoryError as exc:
        fits = exc.fits[0] if len(set(exc.fits)) == 1 else " ".join(map(str, exc.fits))
        gib = 2 ** 30
        raise _UsageError(
            f"--shape {_fmt_shape(shape)}: the solve needs about {exc.needed / gib:.3g} GiB of "
            f"memory (estimate) but {exc.available / gib:.3g} GiB is available here; use "
            f"--shape {fits} (cells per axis) or less, or set OTGRID_MEMORY_CHECK=0 to try "
            "anyway."
        ) from None


def _make_grid(args: argparse.Namespace, ndim: int, mu: Any, nu: Any) -> Any:
    from otgrid.grid.grid import Grid

    if args.bounds is None:
        bounds = _default_bounds(mu, nu)
    else:
        pairs = [tuple(args.bounds[i:i + 2]) for i in range(0, len(args.bounds), 2)]
        if len(pairs) == 1:
            pairs = pairs * ndim
        if len(pairs) != ndim:
            raise _UsageError(f"--bounds gives {len(pairs)} LOW HIGH pairs but the distributions "
                              f"are {ndim}D; give one pair, or {ndim}.")
        bounds = pairs
    if args.shape is None:
        shape = [_DEFAULT_SHAPE.get(ndim, _DEFAULT_SHAPE_ND)] * ndim
    else:
        shape = list(args.shape) * ndim if len(args.shape) == 1 else list(args.shape)
        if len(shape) != ndim:
            raise _UsageError(f"--shape gives {len(shape)} values but the distributions are "
                              f"{ndim}D; give one N, or {ndim}.")
    if min(shape) >= 1 and math.prod(shape) > _MAX_CELLS:
        raise _UsageError(f"--shape {_fmt_shape(shape)} has {math.prod(shape)} cells; at most "
                          f"{_MAX_CELLS} are allowed here.")
    try:
        grid = Grid(bounds, shape)
    except (TypeError, ValueError) as exc:
        raise _UsageError(f"grid: {exc}") from None
    _check_memory(args, shape)
    return grid


def _discretize(grid: Any, dist: Any, outside: str, name: str = "",
                hold: Any = None) -> tuple[np.ndarray, float]:
    """Masses of ``dist`` on ``grid`` and the mass found outside the bounds (exact, also when
    ``"auto"`` renormalised it away silently). Bad input becomes a one-line usage error, which
    for too much mass outside names the fraction and suggests ``--bounds`` holding ``hold``
    (a list of distributions; default ``dist``)."""
    from otgrid.errors import OutsideMassError, OutsideMassWarning
    from otgrid.grid.distributions import Empirical
    from otgrid.grid.grid import bounds_holding

    prefix = f"{name}: " if name else ""
    with warnings.catch_warnings():  # the caller reports the amount in its own words
        warnings.simplefilter("ignore", OutsideMassWarning)
        try:
            if isinstance(dist, Empirical):
                return grid._histogram(dist.samples, dist.weights, "nearest", outside, None)
            return grid._discretize(dist, outside, None)
        except OutsideMassError as exc:
            try:
                suggest = bounds_holding(*(hold or [dist]))
            except ValueError:
                suggest = exc.suggested_bounds
            if suggest is not None and [tuple(b) for b in suggest] == list(grid.bounds):
                suggest = None  # ("raise": even the bounds holding the distributions miss some)
            fix = "enlarge --bounds" if suggest is None else (
                "use --bounds " + " ".join(f"{lo:.6g} {hi:.6g}" for lo, hi in suggest)
                + (" (a box holding the distributions)" if hold else ""))
            raise _UsageError(
                f"{prefix}{exc.fraction:.3g} of its mass ({100 * exc.fraction:.3g}%) lies "
                f"outside the bounds {_fmt_bounds(grid.bounds)}, more than --outside {outside} "
                f"allows; {fix}, or keep these bounds with --outside renormalize or --outside "
                "fold.") from None
        except (TypeError, ValueError) as exc:
            raise _UsageError(f"{prefix}{exc}") from None


def _check_unit_interval(value: float, flag: str) -> None:
    """A relative tolerance must lie in (0, 1)."""
    if not (math.isfinite(value) and 0 < value < 1):
        raise _UsageError(f"{flag} must be a relative gap in (0, 1), e.g. 1e-6; got {value:g}.")


def _check_output(path: str | None, what: str, figure: bool = False) -> Path | None:
    if path is None:
        return None
    p = Path(path).expanduser()
    if not p.parent.is_dir():
        raise _UsageError(f"{what} {path!r}: the folder {str(p.parent)!r} does not exist.")
    if p.is_dir():
        raise _UsageError(f"{what} {path!r} is a folder; give a file name.")
    if figure:
        from matplotlib.figure import Figure

        fmt = p.suffix.lower().lstrip(".")
        supported = Figure().canvas.get_supported_filetypes()
        if fmt not in supported:
            raise _UsageError(f"{what} {path!r}: unknown figure format {fmt!r}; use an "
                              f"extension among {', '.join(sorted(supported))}.")
    return p


def _is_parallel_lines(text: str) -> bool:
    """Whether ``text`` is the parallel-lines pair (a malformed one counts as not)."""
    try:
        return parse_parallel_lines(text) is not None
    except ValueError:
        return False


def _protect_negative_numbers(argv: list[str]) -> list[str]:
    """Let ``--bounds -1e3 1e3`` through: argparse (before Python 3.13) takes ``-1e3`` for an
    option. No option of ours looks like a number, so a leading space (which ``float`` ignores)
    is added to every argument that starts with ``-`` and reads as a number."""
    out = []
    for arg in argv:
        if arg.startswith("-") and arg != "-":
            try:
                float(arg)
            except ValueError:
                pass
            else:
                arg = " " + arg
        out.append(arg)
    return out


