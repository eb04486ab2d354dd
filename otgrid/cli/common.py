"""Pieces shared by the commands: the usage error, the parser, distributions, grids, outputs."""

from __future__ import annotations

import argparse
import contextlib
import logging
import math
import os
import shutil
import signal
import sys
import threading
import warnings
from collections.abc import Callable, Iterator, Sequence
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


def _pair_example(names: tuple[str, str], mu_text: str, nu_text: str) -> str:
    """A command line giving the pair: ``otgrid critic 'A' 'B'`` or ``--mu 'A' --nu 'B'``."""
    if names[0].startswith("--"):
        return f"{names[0]} {mu_text!r} {names[1]} {nu_text!r}"
    return f"otgrid critic {mu_text!r} {nu_text!r}"


def _load_pair(mu_text: str, nu_text: str | None, hint: int | None,
               names: tuple[str, str] = ("MU", "NU")) -> tuple[Any, Any, str]:
    """Parse MU and NU (or the parallel-lines pair); returns them and a label for the figure.
    ``names`` are what the messages call them (the arguments, or options such as ``--mu``)."""
    mu_name, nu_name = names
    try:
        theta = parse_parallel_lines(mu_text)
    except ValueError as exc:
        raise _UsageError(f"{mu_name}: {exc}") from None
    nu_missing = nu_text is None or nu_text.strip() == "-"
    if theta is not None:
        if not nu_missing:
            raise _UsageError(f"{mu_name} {mu_text!r} is a pair of distributions by itself; "
                              f"omit {nu_name} (or write '-'), got {nu_name} {nu_text!r}.")
        if hint not in (None, 2):
            raise _UsageError(f"parallel_lines is 2D; --bounds/--shape describe {hint} axes.")
        from otgrid.grid.datasets import parallel_lines

        mu, nu = parallel_lines(theta)
        return mu, nu, f"parallel_lines({theta:g})"
    if nu_missing:
        if mu_text.strip() in ("", "-"):
            raise _UsageError(f"{mu_name} and {nu_name} are missing ('-' stands for {nu_name} "
                              "only after parallel_lines(theta)); give two distributions, e.g. "
                              f"{_pair_example(names, 'normal(0, 1)', 'normal(1, 1)')}.")
        _parse(mu_text, mu_name, hint)  # a bad MU is reported first, not suggested back
        raise _UsageError(f"{nu_name} is missing: give two distributions, e.g. "
                          f"{_pair_example(names, mu_text, 'normal(1, 1)')} (only "
                          "parallel_lines(theta) stands alone).")
    if parse_parallel_lines(nu_text) is not None:
        raise _UsageError(f"parallel_lines(theta) is a pair of distributions; give it as "
                          f"{mu_name} alone (omit {nu_name}).")
    if hint is not None:
        return (_parse(mu_text, mu_name, hint), _parse(nu_text, nu_name, hint),
                f"{mu_text}  vs  {nu_text}")
    mu = _parse(mu_text, mu_name, None)
    nu = _parse(nu_text, nu_name, None)
    if mu.ndim != nu.ndim:
        d = max(mu.ndim, nu.ndim)
        try:
            mu, nu = parse_distribution(mu_text, ndim=d), parse_distribution(nu_text, ndim=d)
        except ValueError:
            raise _UsageError(f"{mu_name} is {mu.ndim}D but {nu_name} is {nu.ndim}D; give two "
                              "distributions of the same dimension.") from None
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


def _shown(text: str, limit: int = 240) -> str:
    """``repr(text)``, shortened in the middle when longer than ``limit`` characters."""
    if len(text) <= limit:
        return repr(text)
    half = (limit - 5) // 2
    return f"{text[:half] + '...' + text[-half:]!r} ({len(text)} characters)"


def _user_path(text: str, what: str) -> Path:
    """``text`` as a path with ``~`` and ``~user`` expanded; a user (or home) that cannot be
    found, or a NUL character, is a usage error naming ``what`` (the option or argument)."""
    try:
        return Path(text).expanduser()
    except RuntimeError:  # ~nosuchuser, or no home directory at all
        user = text.split("/", 1)[0]
        raise _UsageError(f"{what} {_shown(text)}: {user!r} cannot be expanded (no such user "
                          "or home folder); give the path without it.") from None


def _stat(p: Path, text: str, what: str) -> os.stat_result | None:
    """``p.stat()``, or None when nothing is there; any other failure (a name over 255 bytes,
    a path too long, no permission to look, a loop of links) is a usage error naming ``what``."""
    try:
        return p.stat()
    except FileNotFoundError:
        return None
    except NotADirectoryError:
        raise _UsageError(f"{what} {_shown(text)}: a part of the path before the last is a "
                          "file, not a folder.") from None
    except OSError as exc:
        raise _UsageError(f"{what} {_shown(text)}: {exc.strerror or exc}.") from None
    except ValueError:  # an embedded NUL character
        raise _UsageError(f"{what} {_shown(text)} is not a valid path.") from None


def _input_file(text: str, what: str, kind: str = "file") -> Path:
    """The path of a file to read, checked: it exists and is a regular file (one-line usage
    errors naming ``what`` otherwise; ``kind`` names what the file should be)."""
    p = _user_path(text, what)
    st = _stat(p, text, what)
    if st is None:
        raise _UsageError(f"{what} {_shown(text)}: no such file; give a {kind}.")
    if p.is_dir():
        raise _UsageError(f"{what} {_shown(text)} is a folder, not a {kind}.")
    if not p.is_file():
        raise _UsageError(f"{what} {_shown(text)} is not a regular file; give a {kind}.")
    return p


def _output_path(text: str, what: str, folder: bool = False) -> Path:
    """The path of a file (or with ``folder``, a folder) to write, checked before any work:
    its folder exists, the name is not too long, and it is not a folder (or, with ``folder``,
    not a file)."""
    p = _user_path(text, what)
    parent = _stat(p.parent, text, what)
    if parent is None or not p.parent.is_dir():
        where = "does not exist" if parent is None else "is not a folder"
        raise _UsageError(f"{what} {_shown(text)}: the folder {_shown(str(p.parent))} {where}.")
    st = _stat(p, text, what)
    if st is not None and folder and not p.is_dir():
        raise _UsageError(f"{what} {_shown(text)} is a file; give a folder.")
    if st is not None and not folder and p.is_dir():
        raise _UsageError(f"{what} {_shown(text)} is a folder; give a file name.")
    return p


def _unwritable_formats() -> dict[str, str]:
    """Figure formats matplotlib knows but cannot write on this machine, with the reason."""
    import matplotlib

    texsystem = str(matplotlib.rcParams["pgf.texsystem"])
    if shutil.which(texsystem) is None:
        return {"pgf": f"needs {texsystem} (matplotlib's pgf.texsystem), which is not installed "
                       "here"}
    return {}


def _check_output(path: str | None, what: str, figure: bool = False) -> Path | None:
    """A checked output path (:func:`_output_path`); with ``figure``, also a format that
    matplotlib can write here, read from the extension."""
    if path is None:
        return None
    p = _output_path(path, what)
    if figure:
        from matplotlib.figure import Figure

        fmt = p.suffix.lower().lstrip(".")
        missing = _unwritable_formats()
        supported = sorted(set(Figure().canvas.get_supported_filetypes()) - set(missing))
        if fmt in missing:
            raise _UsageError(f"{what} {_shown(path)}: the {fmt} format {missing[fmt]}; use an "
                              f"extension among {', '.join(supported)}.")
        if fmt not in supported:
            raise _UsageError(f"{what} {_shown(path)}: unknown figure format {fmt!r}; use an "
                              f"extension among {', '.join(supported)}.")
    return p


def _distinct_outputs(*outputs: tuple[str, Path | None]) -> None:
    """Refuse the same file given to two output options (``--figure P --json P``): the second
    write would replace the first. Paths are compared resolved (links, ``..``, ``~``)."""
    seen: dict[str, str] = {}
    for what, p in outputs:
        if p is None:
            continue
        try:
            key = os.path.normcase(os.path.realpath(p))
        except (OSError, ValueError):
            key = os.path.normcase(os.path.abspath(p))
        if key in seen:
            raise _UsageError(f"{seen[key]} and {what} name the same file {_shown(str(p))}; give "
                              "each output its own path.")
        seen[key] = what


class _PostScriptTransparency(logging.Filter):
    """Drop matplotlib's note that PostScript renders transparent artists opaque (the figures
    use transparency only for shading; the eps/ps output is as intended)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("The PostScript backend does not support "
                                              "transparency")


class _Outputs:
    """Writes a command's output files one after the other: each success is printed
    ("figure written to PATH"), each failure (any exception, e.g. a folder that cannot be
    written or a figure format whose tools are missing) is kept and the others are still
    written; :meth:`status` prints the failures on one ``otgrid: error:`` line and gives the
    exit status (1 after a failure, else 0)."""

    def __init__(self) -> None:
        self.failed: list[str] = []

    def write(self, noun: str, path: Path | None, fn: Callable[[], Any]) -> bool:
        """Run ``fn`` (which writes ``path``); whether it succeeded (False for no path)."""
        if path is None:
            return False
        ps_logger = logging.getLogger("matplotlib.backends.backend_ps")
        quiet = _PostScriptTransparency()
        ps_logger.addFilter(quiet)
        try:
            fn()
        except Exception as exc:  # any failure is reported on one line
            detail = exc.strerror if isinstance(exc, OSError) and exc.strerror else (
                f"{type(exc).__name__}: {str(exc).strip().splitlines()[0]}"
                if str(exc).strip() else type(exc).__name__)
            self.failed.append(f"the {noun} {_shown(str(path))} ({detail})")
            return False
        finally:
            ps_logger.removeFilter(quiet)
        print(f"{noun} written to {path}")
        return True

    def status(self) -> int:
        if not self.failed:
            return 0
        print("otgrid: error: " + one_line("could not write " + "; ".join(self.failed)),
              file=sys.stderr)
        return 1


@contextlib.contextmanager
def _ctrl_c_stops() -> Iterator[Callable[[], bool]]:
    """Turn the first Ctrl-C (SIGINT) inside into a request to stop: yields a function that
    says whether one came; a second Ctrl-C interrupts at once (``KeyboardInterrupt``). Outside
    the main thread, or when SIGINT is not Python's default handler, nothing changes."""
    hit = [False]

    def asked() -> bool:
        return hit[0]

    if (threading.current_thread() is not threading.main_thread()
            or signal.getsignal(signal.SIGINT) is not signal.default_int_handler):
        yield asked
        return

    def handler(signum: int, frame: Any) -> None:
        if hit[0]:
            raise KeyboardInterrupt
        hit[0] = True
        new_line = "\n" if sys.stderr.isatty() else ""  # after a progress line redrawn in place
        print(f"{new_line}otgrid: stopping after the current step (Ctrl-C again to quit at once)",
              file=sys.stderr, flush=True)

    signal.signal(signal.SIGINT, handler)
    try:
        yield asked
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def _check_seed(seed: int, flag: str = "--seed") -> None:
    if seed < 0:
        raise _UsageError(f"{flag} must be an integer >= 0; got {seed}.")


_MAX_COUNT = 2 ** 40  # no sample count above this can be held as an array


def _check_count_memory(flag: str, count: int, bytes_each: float, what: str) -> None:
    """Refuse at once a sample count (``--batch``, ``--samples``, ...) whose arrays, about
    ``bytes_each`` bytes per sample, would not fit in the memory available here."""
    from otgrid.critic.memory import ENV_SWITCH, _fmt_bytes, available_memory

    needed = count * bytes_each
    if count > _MAX_COUNT:
        raise _UsageError(f"{flag} {count} is too large ({what}); at most {_MAX_COUNT} "
                          "(2**40) is allowed.")
    if os.environ.get(ENV_SWITCH, "").strip() == "0" or needed <= 2 ** 26:
        return
    available = available_memory()
    if available is not None and needed > available:
        fits = max(1, int(available // bytes_each))
        raise _UsageError(f"{flag} {count}: {what} need about {_fmt_bytes(needed)} of memory "
                          f"(estimate) but {_fmt_bytes(available)} is available here; use "
                          f"{flag} {fits} or less, or set {ENV_SWITCH}=0 to try anyway.")


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


