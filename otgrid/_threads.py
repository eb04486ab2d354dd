"""Thread counts around hot sections: one BLAS thread, or one Numba thread, for small problems;
the note that Numba kernels are being compiled (a first run), and the solvers' clock, which
stands still while they compile.

Shared by the grid critic, the point-cloud solvers and the generator loops (below every
capability).
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Iterable, Iterator
from typing import Any

__all__ = ["COMPILE_MESSAGE", "LOGGER", "announce_compilation", "blas_one_thread",
           "blas_threads", "compile_for", "compile_on_first_use", "compiling",
           "needs_compilation", "notes_to_stderr", "numba_threads", "solve_clock"]

# The package's logger: silent unless the application configures logging (the command line
# sends its INFO records to standard error).
LOGGER = logging.getLogger("otgrid")
COMPILE_MESSAGE = "compiling kernels (first run only)"
_ANNOUNCED: set[str] = set()
# Seconds this process spent inside `compiling` blocks, the lock that guards the sum, and each
# thread's depth of nested blocks (only the outermost counts).
_COMPILING = [0.0]
_COMPILING_LOCK = threading.Lock()
_COMPILING_DEPTH = threading.local()


def solve_clock() -> float:
    """The clock of a solve's ``seconds`` and ``time_limit``: ``time.perf_counter()`` less the
    seconds this process spent inside :func:`compiling` blocks. A kernel compiled before or in
    the middle of a solve (its first run) thus counts in neither. Process-wide: a compilation
    in one thread also holds the clock of a solve running in another (which Numba's compiler
    lock mostly keeps waiting then anyway)."""
    return time.perf_counter() - _COMPILING[0]


@contextlib.contextmanager
def compiling() -> Iterator[None]:
    """Inside, :func:`solve_clock` stands still: wrap what compiles kernels (or loads them from
    Numba's cache) during a solve. Nested blocks count once."""
    depth = getattr(_COMPILING_DEPTH, "n", 0)
    _COMPILING_DEPTH.n = depth + 1
    t = time.perf_counter()
    try:
        yield
    finally:
        _COMPILING_DEPTH.n = depth
        if depth == 0:
            spent = time.perf_counter() - t
            with _COMPILING_LOCK:
                _COMPILING[0] += spent


def compile_for(kernel: Any, *args: Any) -> None:
    """Compile the Numba dispatcher ``kernel`` for the types of ``args`` (or load it from
    Numba's cache) inside :func:`compiling`, unless it holds code for them already: the call
    that follows only runs, and a solve's clock leaves the compilation out. Typing the
    arguments costs microseconds: call it at a kernel's first use in a solve, not per call."""
    from numba import typeof
    from numba.core.typing.typeof import Purpose

    sig = tuple(typeof(a, Purpose.argument) for a in args)
    if sig in kernel.overloads:
        return
    with compiling():
        kernel.compile(sig)


def compile_on_first_use(kernel: Any, what: str, *args: Any) -> None:
    """:func:`compile_for` where the dispatcher ``kernel`` holds no code yet in this process
    (a cheap test, for kernels called in loops with one set of argument types), announced as
    a first run of ``what`` (:func:`announce_compilation`) when it compiles."""
    if kernel.signatures:
        return
    announce_compilation([kernel], what)
    compile_for(kernel, *args)


def needs_compilation(dispatchers: Iterable[Any]) -> bool:
    """Whether calling one of these Numba dispatchers will compile it: it holds no compiled
    code in this process and Numba's on-disk cache has no index for it (a fresh install, a
    new ``NUMBA_CACHE_DIR``, or an edited source file). Best effort: a cache index written for
    other argument types counts as a hit."""
    for d in dispatchers:
        if d.signatures:
            continue
        try:
            index = d._cache._cache_file._index_path
        except AttributeError:  # not a caching dispatcher (or Numba's internals moved)
            return True
        if not os.path.exists(index):
            return True
    return False


class _StderrHandler(logging.StreamHandler):
    """INFO records of the ``otgrid`` logger as ``note: ...`` lines on the current
    ``sys.stderr`` (looked up at every record: test runners and shells swap it)."""

    def __init__(self) -> None:
        super().__init__()
        self.setFormatter(logging.Formatter("note: %(message)s"))

    @property
    def stream(self) -> Any:
        import sys

        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:  # StreamHandler.__init__ assigns it
        pass


@contextlib.contextmanager
def notes_to_stderr() -> Iterator[None]:
    """Inside, the ``otgrid`` logger's INFO records (the compilation note) go to standard error
    (the command line; a library caller configures logging itself)."""
    handler = _StderrHandler()
    level = LOGGER.level
    LOGGER.addHandler(handler)
    if LOGGER.getEffectiveLevel() > logging.INFO:
        LOGGER.setLevel(logging.INFO)
    try:
        yield
    finally:
        LOGGER.removeHandler(handler)
        LOGGER.setLevel(level)


def announce_compilation(dispatchers: Iterable[Any], what: str) -> bool:
    """Log :data:`COMPILE_MESSAGE` (INFO, logger ``"otgrid"``; once per ``what`` and process)
    when calling ``dispatchers`` will compile them; returns whether they need compiling."""
    if not needs_compilation(dispatchers):
        return False
    if what not in _ANNOUNCED:
        _ANNOUNCED.add(what)
        LOGGER.info("%s: %s ...", what, COMPILE_MESSAGE)
    return True

_CONTROLLER: list[Any] = []


def blas_one_thread() -> contextlib.AbstractContextManager:
    """One BLAS thread while L-BFGS runs, when ``threadpoolctl`` is installed.

    L-BFGS-B's own linear algebra works on vectors of length n + m, where BLAS threads only
    cost: on a 2-core machine with other work running, OpenBLAS's threads made each L-BFGS-B
    iteration 70 times slower (4.3 ms instead of 0.06 ms at n + m = 2000). The controller
    (the list of loaded BLAS libraries) is found once per process: finding it reads
    ``/proc/self/maps``, 2.7 ms per call.
    """
    if not _CONTROLLER:
        try:
            from threadpoolctl import ThreadpoolController
        except ImportError:  # optional: without it, BLAS keeps its own thread count
            _CONTROLLER.append(None)
        else:
            _CONTROLLER.append(ThreadpoolController())
    if _CONTROLLER[0] is None:
        return contextlib.nullcontext()
    return _CONTROLLER[0].limit(limits=1, user_api="blas")



@contextlib.contextmanager
def numba_threads(serial: bool) -> Iterator[None]:
    """Run the Numba kernels inside on one thread when ``serial`` (small problems)."""
    if not serial:
        yield
        return
    import numba

    before = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        yield
    finally:
        numba.set_num_threads(before)


@contextlib.contextmanager
def blas_threads(serial: bool) -> Iterator[None]:
    """One BLAS thread inside when ``serial`` and threadpoolctl is available."""
    if not serial:
        yield
        return
    with blas_one_thread():
        yield
