"""The ``numba.cuda`` decorators for the CUDA kernels, the grid limits and the launch grids.

numba-cuda is optional (the ``cuda`` extra): without it the kernel modules still import, and
using one of their kernels raises ``ImportError`` saying what to install.

Device functions are inlined into their kernels at numba's IR level (``inline="always"``):
a ``cuda.jit(device=True)`` function is otherwise compiled on its own for the compute
capability of the *current device*, so a kernel that calls one could not be compiled for a
given target (``numba.cuda.compile_ptx(..., cc=(9, 0))``) on a machine without a GPU. The
helpers are a few lines each; NVVM would inline them anyway.

Grid limits: a launch has at most :data:`MAX_GRID_X` blocks along the grid's axis x and
:data:`MAX_GRID_Y` along y (and z), whatever the device. Every kernel of this package strides
over its items (``for p in range(cuda.grid(1), n, cuda.gridsize(1))``, or over blocks and
vectors for the tiled point-cloud kernels), so a launch of :func:`grid_blocks` blocks covers any
number of items: the grid is capped, never the work. Tests lower the two limits (they are read
at call time) to run the striding paths on tiny problems.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

try:
    from numba import cuda
except ImportError as _exc:  # numba-cuda not installed (or its CUDA bindings missing)
    cuda = None
    IMPORT_ERROR = str(_exc)
else:
    IMPORT_ERROR = ""

__all__ = ["IMPORT_ERROR", "MAX_GRID_X", "MAX_GRID_Y", "cuda", "device", "grid_blocks", "kernel"]

# CUDA's limits on a launch grid (every compute capability numba-cuda supports): blocks along x,
# and along y or z.
MAX_GRID_X = 2**31 - 1
MAX_GRID_Y = 65_535


def grid_blocks(items: int, threads: int, limit: int | None = None) -> int:
    """Blocks to launch along one grid axis: ``ceil(items / threads)``, capped at ``limit``.

    The kernels stride over their items, so a capped grid still covers all of them (each
    thread then handles several).

    Parameters
    ----------
    items : int
        Threads needed along the axis (items, or rows rounded up to whole blocks); at least 0.
    threads : int
        Threads per block along the axis (1 for an axis of blocks, e.g. grid axis y).
    limit : int, optional
        Most blocks along the axis; default :data:`MAX_GRID_X` (read when called).

    Returns
    -------
    int
        At least 1 (an empty launch is a valid one that does nothing).

    Raises
    ------
    ValueError
        If ``threads`` is less than 1.

    Examples
    --------
    >>> grid_blocks(1000, 256)
    4
    >>> grid_blocks(10**13, 256)
    2147483647
    >>> grid_blocks(70_000, 1, limit=MAX_GRID_Y)
    65535
    """
    if threads < 1:
        raise ValueError(f"threads must be at least 1; got {threads}.")
    cap = MAX_GRID_X if limit is None else limit
    return max(1, min(-(-int(items) // int(threads)), int(cap)))


class _Unavailable:
    """Stands for a kernel when numba-cuda does not import: any use raises ImportError."""

    def __init__(self, func: Callable) -> None:
        self.__name__ = func.__name__
        self.__doc__ = func.__doc__
        self.py_func = func

    def _fail(self, *args: Any, **kwargs: Any) -> None:
        raise ImportError(f"The CUDA kernel {self.__name__} needs numba-cuda, which does not "
                          f"import here ({IMPORT_ERROR}). Install the extra: "
                          "pip install 'otgrid[cuda]'.")

    __call__ = __getitem__ = _fail


def kernel(func: Callable) -> Any:
    """``cuda.jit(func, cache=True)``, or a stand-in that raises ImportError when used.

    The Python function stays reachable as ``.py_func`` (numba's dispatchers and the stand-in;
    under the simulator, ``.fn``), for compiling it to PTX for a chosen target.
    """
    return _Unavailable(func) if cuda is None else cuda.jit(func, cache=True)


def device(func: Callable) -> Any:
    """``cuda.jit(device=True, inline="always")(func)``, or ``func`` itself without numba-cuda."""
    return func if cuda is None else cuda.jit(device=True, inline="always")(func)
