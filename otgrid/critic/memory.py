"""How much memory a critic solve needs, how much this machine has, and a check before solving.

:func:`solve_memory` estimates the peak memory of :func:`otgrid.critic.solve_critic` from the
arrays it holds at once, counted in *grid arrays* (float64 arrays of the grid's shape, 8 bytes
per cell):

- **iteration** (per problem of the batch): the iterates ``f`` and ``y`` (``1 + d`` arrays on a
  ``d``-dimensional grid), ``f_out``, the residual ``r``, the Poisson correction ``u``, the
  restart anchors (``1 + d``), the best critic and flow of the certificate (``2 + d``), the
  scaled data ``c`` (two copies) and the DCT buffers and check-time temporaries (the repaired
  critic, the restart's differences, the float64 Poisson correction of a check beside the
  step's float32 one): ``17 + 6 d`` arrays in all with the compiled backends, ``21 + 6 d``
  with ``backend="numpy"`` (its operators build their temporaries), and in a batch ``2 + d``
  more (problems leaving it, below); float32 iterates count the same (their checks work in
  float64);
- **certificate** (after the iteration): ``8 + 4 d`` arrays per problem stay (masses, data,
  critics and flows of the batch), and the rigorous float64 certificate of one problem at a
  time (:mod:`otgrid.critic.certify`) adds ``36`` -- most of it the exact sum ``math.fsum``
  over the four error-free parts of ``<c, g>`` as a Python list (40 bytes per entry). From
  2^18 entries the sums run compiled, without the list: less (512^2, traced peak of the solve
  41.0 grid arrays instead of 44.0; the estimate is kept). (38 until the certificate's scale
  and ``<c, g>`` stopped forming TwoSum temporaries: traced peaks then 38.6 -> 34.6 grid
  arrays in 1D at 2^14 cells, 40.8 at 128^2, 48.0 in 3D at 16^3 with the NumPy backend.)

The peak is the larger of the two phases. The multilevel start holds a quarter of the
iteration's arrays at a time and never sets the peak. Measured (peak RSS of the solve, NumPy
1D/2D/3D, Linux, glibc; before the certificate of large grids ran compiled, with less memory,
and the estimate was 2 arrays higher): 49.75 grid arrays at 512^2, 48.5 at 256^2 (both 2D,
estimate 54), 54.1 at 1024^2, 49.3 and 44.1 in 1D at 2^18 and 2^20 cells (estimate 50), 53.0
in 3D at 64^3 with the NumPy backend (estimate 58), 27.7 per problem for a batch of 4 at 256^2
(estimate 28 then). The estimate is meant to be at or slightly above the measured peak. Since
then: the float32 Poisson step with a float64 correction at checks (one array more per problem,
counted: 28.6 per problem for a batch of 4 at 64^2, estimate 29) and its Thomas factors (one
array per grid, in the margin). The relaxed iteration brings that batch's checks near the
tolerance, where they polish: 30.6 per problem until the check's candidate critics were freed
before the polish allocates and the descent stopped copying the flows of a whole batch (27.4;
28.4 with restart criteria every 32 iterations); 26.9 since the descent also works in the
corrected flow it is given.

Two gaps found and closed on 2026-12-07 (tracemalloc peaks, grid arrays per problem against
the estimate then): **batches whose problems stop at different checks** -- the remaining
problems' arrays are copied while the solve still holds the batch's starting critic, flow and
data (``2 + d`` arrays per problem), and until then all of them were copied before any was
released: 47.8 for 16 different problems at 64^2 (estimate 29) with the checks' schedule of
that morning, 32.3 with the one that skips a far first check (the peak depends on which
problems leave when), 31.8 since the copies are made one at a time (``iterate._kept_rows``);
``2 + d`` per problem is now counted for batches. And
**float32 iterates**, whose estimate halved the iteration's arrays: their checks work in
float64 and set the peak, 25.2-28.0 at 64^2 and 32^2 in batches of 8-32 (estimate 18.5-20.5),
20.3 in 1D (14.5), 28.4-30.0 in 3D with the NumPy backend (24.5); they now count as float64
iterates. Estimates since (float64 / float32): batch 4 at 64^2 33 against 27.0 / 25.6, batch 16
at 64^2 33 against 31.8 / 27.2, batch 32 at 32^2 33 against 28.0 / 28.0, batch 16 in 1D 26
against 19.8 / 20.3, batch 8 in 3D (NumPy) 44 against 36.1 / 30.0. Anisotropic cells (the
per-axis dual steps of ``backend_numpy.AXIS_WEIGHTS_MIN_RATIO``: the restarts' norms in their
metric, the step's own Poisson factors) add one to two arrays inside the margin: 256^2 47.7 ->
48.7 (cityblock, cells twice as long; estimate 52), 49.0 (euclidean, 2 000 times); batch 4 at
64^2 31.5 (cityblock) and 29.6 (euclidean, against 27.8 on square cells; estimate 33).

:func:`available_memory` reads what this process may still use (``MemAvailable`` of
``/proc/meminfo``, the cgroup's ``memory.max`` minus ``memory.current``, and the
address-space limit ``ulimit -v``); :func:`check_memory` compares the two and raises
:class:`InsufficientMemoryError` before anything large is allocated.
"""

from __future__ import annotations

import math
import os
import resource
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from otgrid.errors import InsufficientMemoryError

__all__ = ["available_memory", "check_memory", "solve_memory"]

# grid arrays (float64, one per cell) per problem: see the module docstring
_ITERATE_BASE = 17
_ITERATE_BASE_NUMPY = 21
_ITERATE_PER_AXIS = 6
_KEPT_BASE = 8
_KEPT_PER_AXIS = 4
_CERTIFICATE = 36
_LEAVING_BASE = 2
_BACKENDS = ("auto", "numpy", "numba", "cuda")
# Under ``ulimit -v`` the address space counts, not the resident memory: the threads of Numba
# and scipy.fft that start with a large solve reserve address space of their own (glibc keeps a
# 64 MiB heap per thread arena). Measured on 2 cores: the virtual size grew by 203 MiB plus
# 57.7 grid arrays over a 512^2 and a 1024^2 solve (the resident size by 52-56 grid arrays).
_THREAD_RESERVE = 128 * 2 ** 20  # per CPU
# Estimates up to this size pass without reading the memory available (reading it takes about
# 0.1 ms, a noticeable share of the small solves of an SCO loop; every machine has this much).
_ALWAYS_FITS = 64 * 2 ** 20
# set to 0 to skip the check (e.g. on a machine with swap, or when the estimate is wrong)
ENV_SWITCH = "OTGRID_MEMORY_CHECK"


def _check_shape(shape: Any) -> tuple[int, ...]:
    if isinstance(shape, (int, np.integer)) and not isinstance(shape, bool):
        shape = (shape,)
    try:
        out = tuple(int(n) for n in shape)
    except (TypeError, ValueError):
        raise TypeError(f"shape must be an int or a sequence of ints (cells per axis); "
                        f"got {shape!r}.") from None
    if not out or any(n < 1 for n in out):
        raise ValueError(f"shape must hold at least one axis of >= 1 cells; got {shape!r}.")
    return out


def _grid_arrays(ndim: int, batch: int, dtype: Any, backend: str) -> float:
    """Peak of a solve in grid arrays (float64 per cell), see the module docstring."""
    base = _ITERATE_BASE_NUMPY if backend == "numpy" else _ITERATE_BASE
    # float32 iterates count as float64 ones: their checks copy f, y and u to float64 and make
    # every temporary in float64, which sets the peak (see the module docstring)
    iterate = base + _ITERATE_PER_AXIS * ndim
    if batch > 1:
        # problems leaving a batch: the remaining ones' rows are copied, while the caller
        # still holds the batch's starting critic, flow and data
        iterate += _LEAVING_BASE + ndim
    if backend == "cuda":
        iterate = 0.0  # the iteration lives on the GPU; the host holds the certificate phase
    kept = _KEPT_BASE + _KEPT_PER_AXIS * ndim
    return max(batch * iterate, batch * kept + _CERTIFICATE)


def solve_memory(shape: int | Sequence[int], batch: int = 1, dtype: Any = np.float64,
                 backend: str = "auto") -> int:
    """Estimated peak host memory of :func:`otgrid.critic.solve_critic`, in bytes.

    Parameters
    ----------
    shape : int or sequence of int
        Cells per axis of the grid.
    batch : int, optional
        Number of problems solved together (a leading batch axis of ``mu`` or ``nu``).
    dtype : {numpy.float64, numpy.float32}, optional
        Precision of the iterates (float32 ones are counted as float64 ones: the checks copy
        them to float64 and set the peak).
    backend : {"auto", "numpy", "numba", "cuda"}, optional
        The solver backend. ``"auto"`` counts as ``"numpy"`` above 2 axes and ``"numba"``
        otherwise. For ``"cuda"`` the host memory of the certificate is counted; the GPU's
        memory is not estimated.

    Returns
    -------
    int
        Bytes: ``8 * cells * arrays``, with ``arrays`` the number of grid-sized float64 arrays
        alive at the peak (module docstring; about 52 for one 2D problem in float64).

    Examples
    --------
    >>> from otgrid.critic.memory import solve_memory
    >>> solve_memory((512, 512)) / 2**20          # MiB; measured peak RSS: 99.5 MiB (older)
    104.0
    >>> solve_memory((256, 256), batch=8) / solve_memory((256, 256), batch=4)   # the batch
    2.0
    """
    shp = _check_shape(shape)
    if isinstance(batch, bool) or not isinstance(batch, (int, np.integer)) or batch < 1:
        raise ValueError(f"batch must be a positive integer (problems solved together); got "
                         f"{batch!r}.")
    if np.dtype(dtype) not in (np.float32, np.float64):
        raise ValueError(f"dtype must be numpy.float64 or numpy.float32; got {dtype!r}.")
    if backend not in _BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(map(repr, _BACKENDS))}; got "
                         f"{backend!r}.")
    if backend == "auto":
        backend = "numpy" if len(shp) > 2 else "numba"
    cells = math.prod(shp)
    return math.ceil(8 * cells * _grid_arrays(len(shp), int(batch), dtype, backend))


# --------------------------------------------------------------------------- available memory
def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="ascii", errors="replace")
    except OSError:
        return None


def _meminfo_available(root: Path) -> int | None:
    """``MemAvailable`` of ``/proc/meminfo`` in bytes (None when absent)."""
    text = _read(root / "proc" / "meminfo")
    if text is None:
        return None
    for line in text.splitlines():
        if line.startswith("MemAvailable:"):
            parts = line.split()
            try:
                value = int(parts[1])
            except (IndexError, ValueError):
                return None
            unit = parts[2].lower() if len(parts) > 2 else "kb"
            return value * (1024 if unit == "kb" else 1)
    return None


def _cgroup_dirs(root: Path) -> list[Path]:
    """The directories of this process's memory cgroup (v2 unified, then v1), most specific
    first; the cgroup root itself is always tried (inside a container it is the container's)."""
    base = root / "sys" / "fs" / "cgroup"
    dirs = []
    text = _read(root / "proc" / "self" / "cgroup") or ""
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        rel = parts[2].lstrip("/")
        if parts[0] == "0" and parts[1] == "":
            dirs.append(base / rel)
        elif "memory" in parts[1].split(","):
            dirs.append(base / "memory" / rel)
    return [*dirs, base, base / "memory"]


def _cgroup_available(root: Path) -> int | None:
    """The cgroup limit minus the cgroup's usage, in bytes (None without a limit)."""
    for d in _cgroup_dirs(root):
        for limit_name, usage_name in (("memory.max", "memory.current"),
                                       ("memory.limit_in_bytes", "memory.usage_in_bytes")):
            limit = _read(d / limit_name)
            if limit is None:
                continue
            limit = limit.strip()
            if limit == "max" or not limit.isdigit() or int(limit) >= 1 << 60:
                return None  # unlimited (v1 writes a huge number)
            usage = (_read(d / usage_name) or "0").strip()
            return max(int(limit) - (int(usage) if usage.isdigit() else 0), 0)
    return None


def _address_space_limit() -> int | None:
    """The soft ``RLIMIT_AS`` (``ulimit -v``) in bytes, None when unlimited."""
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    return None if soft == resource.RLIM_INFINITY or soft < 0 else int(soft)


def _address_space_available(root: Path) -> int | None:
    """``ulimit -v`` minus this process's virtual size (``VmSize``) and the address space the
    solver's threads reserve, in bytes."""
    limit = _address_space_limit()
    if limit is None:
        return None
    reserve = _THREAD_RESERVE * (os.cpu_count() or 1)
    text = _read(root / "proc" / "self" / "status") or ""
    for line in text.splitlines():
        if line.startswith("VmSize:"):
            try:
                return max(limit - int(line.split()[1]) * 1024 - reserve, 0)
            except (IndexError, ValueError):
                break
    return max(limit - reserve, 0)


def available_memory(*, root: str | os.PathLike[str] = "/") -> int | None:
    """Memory this process may still allocate, in bytes, or None when it cannot be told.

    The smallest of: ``MemAvailable`` in ``/proc/meminfo`` (what the kernel can hand out
    without swapping), the limit of this process's memory cgroup minus its current usage
    (cgroup v2 ``memory.max`` / ``memory.current``, or v1 ``memory.limit_in_bytes`` /
    ``memory.usage_in_bytes``), and the address-space limit (``ulimit -v``) minus the
    process's virtual size and 128 MiB per CPU that the solver's threads reserve.

    Parameters
    ----------
    root : path, optional
        Directory under which ``proc/`` and ``sys/fs/cgroup/`` are read (a test can point it to
        a fake tree).

    Returns
    -------
    int or None
        None when none of these sources exists (e.g. not Linux and no ``ulimit -v``).

    Examples
    --------
    >>> from otgrid.critic.memory import available_memory
    >>> m = available_memory()
    >>> m is None or m >= 0
    True
    """
    base = Path(root)
    known = [v for v in (_meminfo_available(base), _cgroup_available(base),
                         _address_space_available(base)) if v is not None]
    return min(known) if known else None


# --------------------------------------------------------------------------- the check
def _fmt_bytes(n: float) -> str:
    for unit, size in (("TiB", 2 ** 40), ("GiB", 2 ** 30), ("MiB", 2 ** 20), ("KiB", 2 ** 10)):
        if n >= size:
            return f"{n / size:.3g} {unit}"
    return f"{int(n)} bytes"


def _fitting_shape(shape: tuple[int, ...], needed: float, available: float) -> tuple[int, ...]:
    """The shape scaled by the same factor on every axis so that the estimate fits."""
    s = (max(available, 0.0) / needed) ** (1.0 / len(shape)) if needed > 0 else 1.0
    return tuple(max(2, math.floor(n * s)) for n in shape)


def check_memory(shape: int | Sequence[int], batch: int = 1, dtype: Any = np.float64,
                 backend: str = "auto", *, extra_arrays: float = 0.0,
                 available: int | None = None) -> int:
    """Raise before solving when the solve would not fit in the memory available here.

    Parameters
    ----------
    shape, batch, dtype, backend
        As in :func:`solve_memory`.
    extra_arrays : float, optional
        Further float64 grid arrays (per problem) the caller will hold during the solve, e.g.
        2 for the masses ``mu`` and ``nu`` when they are not built yet.
    available : int, optional
        Bytes available; default :func:`available_memory`.

    Returns
    -------
    int
        The estimate, in bytes. The check passes without looking when the estimate is at most
        64 MiB, when the available memory is unknown, or when the environment variable
        ``OTGRID_MEMORY_CHECK`` is ``0``.

    Raises
    ------
    InsufficientMemoryError
        When the estimate exceeds the available memory; the message gives both and a grid
        shape that would fit.

    Examples
    --------
    >>> from otgrid.critic.memory import check_memory
    >>> check_memory((64, 64), available=2**30) == solve_memory((64, 64))
    True
    >>> check_memory((11000, 11000), available=8 * 2**30)
    Traceback (most recent call last):
    ...
    otgrid.errors.InsufficientMemoryError: solve_critic on a 11000 x 11000 grid ...
    """
    shp = _check_shape(shape)
    needed = solve_memory(shp, batch, dtype, backend)
    if not (math.isfinite(extra_arrays) and extra_arrays >= 0):
        raise ValueError(f"extra_arrays must be a number >= 0; got {extra_arrays!r}.")
    needed += int(8 * math.prod(shp) * int(batch) * extra_arrays)
    if os.environ.get(ENV_SWITCH, "1").strip() == "0":
        return needed
    if available is None and needed <= _ALWAYS_FITS:
        return needed
    if available is None:
        available = available_memory()
    if available is None or needed <= available:
        return needed
    fits = _fitting_shape(shp, needed, available)
    grid = " x ".join(map(str, shp))
    problems = f"{batch} problems on a" if batch > 1 else "a"
    raise InsufficientMemoryError(
        f"solve_critic on {problems} {grid} grid needs about {_fmt_bytes(needed)} of memory, "
        f"but only {_fmt_bytes(available)} is available here; use a coarser grid (about "
        f"{' x '.join(map(str, fits))} cells fits), or set {ENV_SWITCH}=0 to try anyway.",
        needed=needed, available=int(available), shape=shp, fits=fits)
