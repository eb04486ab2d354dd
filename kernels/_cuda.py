"""The ``numba.cuda`` decorators for the CUDA kernels, or stand-ins when numba-cuda is missing.

numba-cuda is optional (the ``cuda`` extra): without it the kernel modules still import, and
using one of their kernels raises ``ImportError`` saying what to install.
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

__all__ = ["IMPORT_ERROR", "cuda", "device", "kernel"]


class _Unavailable:
    """Stands for a kernel when numba-cuda does not import: any use raises ImportError."""

    def __init__(self, func: Callable) -> None:
        self.__name__ = func.__name__
        self.__doc__ = func.__doc__

    def _fail(self, *args: Any, **kwargs: Any) -> None:
        raise ImportError(f"The CUDA kernel {self.__name__} needs numba-cuda, which does not "
                          f"import here ({IMPORT_ERROR}). Install the extra: "
                          "pip install 'otgrid[cuda]'.")

    __call__ = __getitem__ = _fail


def kernel(func: Callable) -> Any:
    """``cuda.jit(func, cache=True)``, or a stand-in that raises ImportError when used."""
    return _Unavailable(func) if cuda is None else cuda.jit(func, cache=True)


def device(func: Callable) -> Any:
    """``cuda.jit(device=True)(func)``, or ``func`` itself (only called from kernels)."""
    return func if cuda is None else cuda.jit(device=True)(func)
