"""Backends of the grid critic: which one runs, and the object that exposes its loop body.

The Chambolle–Pock driver (:mod:`otgrid.critic.iterate`) is written once; it calls the methods
of a :class:`~otgrid.critic.backend_numpy.GridKernels` object built here by
:func:`make_kernels`. ``"numpy"`` implements them with the readable operators of
:mod:`otgrid.critic.operators` (any number of axes); ``"numba"`` with the fused kernels of
``otgrid.kernels.critic_numba`` (1D and 2D, :mod:`otgrid.critic.backend_numba`); ``"cuda"``
with the numba-cuda kernels of ``otgrid.kernels.critic_cuda`` on CuPy arrays
(:mod:`otgrid.critic.backend_cuda`). All use the same DCT Poisson solve.
"""

from __future__ import annotations

from typing import Literal

from otgrid.critic.backend_cuda import CudaGridKernels
from otgrid.critic.backend_numba import PARALLEL_MIN_CELLS, NumbaGridKernels
from otgrid.critic.backend_numpy import GridKernels

# ``backend="auto"`` picks the GPU for problems (cells x batch) at least this large: below it
# the launches and the host round trips at checks cost more than the CPU's whole iteration.
CUDA_AUTO_MIN_CELLS = 1 << 16

__all__ = [
    "BACKENDS",
    "CUDA_AUTO_MIN_CELLS",
    "PARALLEL_MIN_CELLS",
    "GridKernels",
    "available_backends",
    "make_kernels",
    "resolve_backend",
]

Backend = Literal["auto", "numpy", "numba", "cuda"]
BACKENDS: tuple[str, ...] = ("auto", "numpy", "numba", "cuda")


def available_backends() -> dict[str, str]:
    """Which backends can run here, with the reason when one cannot.

    Returns
    -------
    dict
        Backend name -> ``"available"`` or a short reason why not.
    """
    out = {"numpy": "available"}
    try:
        import numba  # noqa: F401

        out["numba"] = "available"
    except ImportError as exc:  # pragma: no cover - numba is a runtime dependency
        out["numba"] = f"unavailable: numba does not import ({exc})"
    from otgrid._device import cuda_status

    out["cuda"] = cuda_status()
    return out


def resolve_backend(backend: str, ndim: int, cells: int = 0) -> str:
    """Turn ``"auto"`` into a concrete backend and check an explicit one can run.

    Parameters
    ----------
    backend : {"auto", "numpy", "numba", "cuda"}
        The requested backend.
    ndim : int
        Number of grid axes.
    cells : int, optional
        Cells of the whole problem (grid cells times batch size), for ``"auto"``.

    Returns
    -------
    str
        ``"auto"`` picks ``"cuda"`` for 1D and 2D problems of at least
        ``CUDA_AUTO_MIN_CELLS`` cells when a GPU is usable (:func:`otgrid._device.cuda_status`
        says exactly ``"available"``; never the simulator), ``"numba"`` for other 1D and 2D
        problems and ``"numpy"`` otherwise.

    Raises
    ------
    ValueError
        For an unknown backend, or ``"numba"``/``"cuda"`` on a grid with more than 2 axes.
    RuntimeError
        For ``"cuda"`` when no GPU can be used here (the message says why).
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(map(repr, BACKENDS))}; "
                         f"got {backend!r}.")
    if backend == "auto":
        if ndim not in (1, 2):
            return "numpy"
        if cells >= CUDA_AUTO_MIN_CELLS:
            from otgrid._device import cuda_status

            if cuda_status() == "available":
                return "cuda"
        return "numba"
    if backend in ("numba", "cuda") and ndim not in (1, 2):
        raise ValueError(f"backend={backend!r} supports 1D and 2D grids; this grid has {ndim} "
                         "axes. Use backend='numpy' (any number of axes).")
    if backend == "cuda":
        from otgrid._device import require_cuda

        require_cuda()
    return backend


def make_kernels(backend: str, shape, dx, norm: str, dtype) -> GridKernels:
    """Build the loop body for a concrete backend (``"numpy"``, ``"numba"`` or ``"cuda"``)."""
    if backend == "cuda":
        return CudaGridKernels(shape, dx, norm, dtype)
    if backend == "numba":
        return NumbaGridKernels(shape, dx, norm, dtype)
    return GridKernels(shape, dx, norm, dtype)
