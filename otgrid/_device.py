"""CUDA device detection, array-module helpers and kernel launches (CuPy + numba-cuda).

Nothing here imports CuPy or numba-cuda at module import: both are optional (the ``cuda``
extra). On a machine with a GPU, device arrays are CuPy arrays and the numba-cuda kernels of
``otgrid.kernels.critic_cuda`` run on them; with ``NUMBA_ENABLE_CUDASIM=1`` set before
``numba.cuda`` is first imported, the same kernels run in numba's CUDA simulator on NumPy
arrays (the array module is then NumPy), which is how the kernels are tested without a GPU.

A launch (:func:`launch`) runs on the device that holds its CuPy arrays, whatever device is
current, on a grid capped at CUDA's limits (the kernels stride over the rest, see
``otgrid/kernels/_cuda.py``).
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import os
import sys
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import numpy as np

__all__ = [
    "array_module",
    "cuda_status",
    "device_id",
    "fft_module",
    "get_array_module",
    "is_cupy_array",
    "launch",
    "on_device",
    "require_cuda",
    "simulator_enabled",
    "to_host",
]

THREADS_PER_BLOCK = 256
_SIMULATOR: bool | None = None  # whether numba.cuda is the simulator, once known


def is_cupy_array(a: Any) -> bool:
    """Whether ``a`` is a CuPy array (without importing CuPy when it is not loaded).

    Parameters
    ----------
    a : object

    Returns
    -------
    bool

    Examples
    --------
    >>> import numpy as np
    >>> is_cupy_array(np.zeros(3))
    False
    """
    cp = sys.modules.get("cupy")
    return cp is not None and isinstance(a, cp.ndarray)


def get_array_module(*arrays: Any) -> ModuleType:
    """``cupy`` if any argument is a CuPy array, else ``numpy``.

    Parameters
    ----------
    *arrays : array_like

    Returns
    -------
    module

    Examples
    --------
    >>> import numpy as np
    >>> get_array_module(np.zeros(2), [1.0]).__name__
    'numpy'
    """
    if any(is_cupy_array(a) for a in arrays):
        return sys.modules["cupy"]
    return np


def _installed(name: str) -> bool:
    """Whether a top-level module can be found, without importing it."""
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def _numba_cuda() -> ModuleType:
    """``numba.cuda`` (the simulator when ``NUMBA_ENABLE_CUDASIM=1`` was set before import)."""
    from numba import cuda

    return cuda


def simulator_enabled() -> bool:
    """Whether ``numba.cuda`` is numba's CUDA simulator in this process.

    Returns
    -------
    bool
        False also when numba-cuda is not installed.
    """
    global _SIMULATOR
    if _SIMULATOR is not None:
        return _SIMULATOR
    if not _installed("numba_cuda"):
        return False
    try:
        from numba.cuda.core import config
    except ImportError:  # pragma: no cover - older numba-cuda layouts
        import numba

        config = numba.config
    # fixed for the life of the process once numba.cuda is imported (as it now is)
    _SIMULATOR = bool(getattr(config, "ENABLE_CUDASIM", 0))
    return _SIMULATOR


@functools.lru_cache(maxsize=1)
def cuda_status() -> str:
    """Whether the CUDA backend can run here, or a one-line reason why not.

    Returns
    -------
    str
        ``"available"`` (a GPU, CuPy and numba-cuda), ``"available (simulator)"`` (numba's
        CUDA simulator, ``NUMBA_ENABLE_CUDASIM=1``: NumPy arrays, for tests only) or
        ``"unavailable: <reason>"``.

    Examples
    --------
    >>> cuda_status().startswith(("available", "unavailable: "))
    True
    """
    if not _installed("numba_cuda"):
        return ("unavailable: numba-cuda is not installed "
                "(pip install 'otgrid[cuda]' installs it with CuPy)")
    no_cupy = ("unavailable: CuPy is not installed (pip install cupy-cuda12x or cupy-cuda13x "
               "matching the CUDA driver, or pip install 'otgrid[cuda]')")
    sim_env = os.environ.get("NUMBA_ENABLE_CUDASIM", "0").strip() not in ("", "0")
    if not sim_env and "numba.cuda" not in sys.modules and not _installed("cupy"):
        return no_cupy  # without importing numba.cuda (about a second)
    try:
        cuda = _numba_cuda()
    except Exception as exc:  # ImportError, missing CUDA bindings, ...
        return f"unavailable: numba.cuda does not import ({_one_line(exc)})"
    if simulator_enabled():
        return "available (simulator)"
    if not _installed("cupy"):
        return no_cupy
    try:
        import cupy

        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:  # CUDARuntimeError: no driver, driver too old, ...
        return f"unavailable: CuPy finds no usable CUDA driver ({_one_line(exc)})"
    if count < 1:
        return "unavailable: no CUDA device is visible (check CUDA_VISIBLE_DEVICES)"
    try:
        if not cuda.is_available():
            return "unavailable: numba-cuda cannot use the CUDA driver (see numba -s)"
    except Exception as exc:  # pragma: no cover - driver errors
        return f"unavailable: numba-cuda driver error ({_one_line(exc)})"
    return "available"


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return (text[:160] + "...") if len(text) > 160 else (text or type(exc).__name__)


def require_cuda() -> None:
    """Raise ``RuntimeError`` with the reason when the CUDA backend cannot run here.

    Raises
    ------
    RuntimeError
        Without a usable GPU (CuPy, numba-cuda, driver, device) and outside the simulator.
    """
    status = cuda_status()
    if not status.startswith("available"):
        reason = status.removeprefix("unavailable: ")
        raise RuntimeError(f"backend='cuda' cannot run here: {reason}. Use backend='numba' (CPU) "
                           "or backend='auto'.")


def array_module() -> ModuleType:
    """The array module of the CUDA backend: CuPy on a GPU, NumPy under the simulator.

    Returns
    -------
    module
    """
    require_cuda()
    if simulator_enabled():
        return np
    import cupy

    return cupy


def fft_module(xp: ModuleType) -> ModuleType:
    """The FFT module that matches an array module: ``cupyx.scipy.fft`` or ``scipy.fft``.

    Parameters
    ----------
    xp : module
        ``numpy`` or ``cupy``.

    Returns
    -------
    module
        With SciPy's ``dctn`` / ``idctn`` signature.

    Examples
    --------
    >>> import numpy as np
    >>> fft_module(np).__name__
    'scipy.fft'
    """
    if xp is np:
        import scipy.fft

        return scipy.fft
    import cupyx.scipy.fft

    return cupyx.scipy.fft


def device_id(*arrays: Any) -> int | None:
    """The id of the GPU that holds the CuPy arrays among ``arrays``; None if there are none.

    Parameters
    ----------
    *arrays : object
        Arrays or other launch arguments; only CuPy arrays count.

    Returns
    -------
    int or None

    Raises
    ------
    ValueError
        When the CuPy arrays are on different devices (a kernel reads all of them).

    Examples
    --------
    >>> import numpy as np
    >>> device_id(np.zeros(2), 1.0) is None
    True
    """
    ids = {a.device.id for a in arrays if is_cupy_array(a)}
    if len(ids) > 1:
        raise ValueError(f"the arrays of one CUDA launch must be on one device; they are on "
                         f"devices {sorted(ids)}. Copy them to one device first "
                         "(cupy.asarray under cupy.cuda.Device(id)).")
    return ids.pop() if ids else None


@contextlib.contextmanager
def on_device(*arrays: Any) -> Iterator[None]:
    """Context in which CuPy allocates, and numba-cuda launches, on the arrays' device.

    ``cupy.cuda.Device(id)`` makes that device's primary context current, the one numba-cuda
    then reads for its launches (both use primary contexts). Nothing happens without CuPy
    arrays among ``arrays`` (NumPy arrays, the simulator).

    Parameters
    ----------
    *arrays : object
        See :func:`device_id`.
    """
    dev = device_id(*arrays)
    if dev is None:
        yield
        return
    with sys.modules["cupy"].cuda.Device(dev):
        yield


@functools.lru_cache(maxsize=16)
def _external_stream(dev: int, ptr: int) -> Any:
    """numba's handle on the CUDA stream ``ptr`` of device ``dev`` (0: the legacy default
    stream, CuPy's null stream); made while ``dev`` is current, as numba binds a stream to the
    current context."""
    cuda = _numba_cuda()
    return cuda.legacy_default_stream() if ptr == 0 else cuda.external_stream(ptr)


def launch(kernel: Any, n_threads: int, *args: Any) -> None:
    """Launch a numba-cuda kernel with one thread per item on the arrays' device and stream.

    The kernel runs on the device of its CuPy arrays (:func:`on_device`), not the one that
    happens to be current, on that device's current CuPy stream, so the ordering with CuPy's
    own work is kept and the host never waits. CuPy arrays are wrapped as numba device arrays
    without the stream synchronisation that numba would otherwise do on every launch. The grid
    has ``ceil(n_threads / THREADS_PER_BLOCK)`` blocks, capped at CUDA's limit
    (``otgrid.kernels._cuda.grid_blocks``): the kernels stride over the items. Under the
    simulator the arguments (NumPy arrays) are passed as they are.

    Parameters
    ----------
    kernel : numba.cuda dispatcher
        A ``@cuda.jit`` kernel that strides over ``n_threads`` items
        (``for p in range(cuda.grid(1), n, cuda.gridsize(1))``).
    n_threads : int
        Number of items.
    *args
        Kernel arguments.

    Raises
    ------
    ValueError
        When the CuPy arrays among ``args`` are on different devices.
    """
    if n_threads <= 0:
        return
    from otgrid.kernels._cuda import grid_blocks

    tpb = THREADS_PER_BLOCK
    if simulator_enabled():
        # The simulator runs every thread of a block as a Python thread: keep blocks small.
        tpb = min(tpb, 32)
        kernel[grid_blocks(n_threads, tpb), tpb](*args)
        return
    import cupy

    as_cuda_array = _numba_cuda().as_cuda_array
    with cupy.cuda.Device(device_id(*args)) as d:  # (None: the current device)
        conv = tuple(as_cuda_array(a, sync=False) if isinstance(a, cupy.ndarray) else a
                     for a in args)
        stream = _external_stream(d.id, cupy.cuda.get_current_stream().ptr)
        _configured(kernel, grid_blocks(n_threads, tpb), tpb, stream)(*conv)


@functools.lru_cache(maxsize=256)
def _configured(kernel: Any, blocks: int, tpb: int, stream: Any) -> Any:
    """``kernel[blocks, tpb, stream]``, kept: the launch configuration is built once."""
    return kernel[blocks, tpb, stream]


def to_host(v: Any) -> Any:
    """A host (NumPy) copy of a CuPy or numba device array, or a NumPy array of a PyTorch
    tensor (detached from autograd, copied from the GPU, bfloat16 as float32, which NumPy
    lacks); anything else unchanged.

    Parameters
    ----------
    v : object

    Returns
    -------
    object
        A NumPy array for those inputs, else ``v`` itself.
    """
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(v, torch.Tensor):
        t = v.detach()
        if t.device.type != "cpu":
            t = t.cpu()
        if t.dtype == torch.bfloat16:
            t = t.float()
        return t.resolve_conj().resolve_neg().numpy()
    if v is None or not hasattr(v, "__cuda_array_interface__"):
        return v
    if hasattr(v, "get"):  # CuPy
        return v.get()
    if hasattr(v, "copy_to_host"):  # numba device array
        return v.copy_to_host()
    return v
