"""Thread counts around hot sections: one BLAS thread, or one Numba thread, for small problems.

Shared by the point-cloud solvers and the generator loops (below every capability).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

__all__ = ["blas_one_thread", "blas_threads", "numba_threads"]

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
