"""Every CUDA kernel compiles to PTX for compute capability 9.0 (H100), on a machine with no GPU.

numba-cuda compiles a kernel for a chosen target without a GPU or a driver once it finds
NVIDIA's compiler libraries: libNVVM with its libdevice (the compiler) and libNVRTC (which it
asks for the supported architectures). The ``test`` extra installs both from NVIDIA's CUDA 12
wheels, ``cuda-toolkit[nvcc,nvrtc]==12.*``: ``nvidia-cuda-nvcc-cu12`` ships
``nvidia/cuda_nvcc/nvvm/lib64/libnvvm.so`` and ``nvvm/libdevice/libdevice.10.bc``,
``nvidia-cuda-nvrtc-cu12`` ships ``libnvrtc.so.12``; ``cuda-pathfinder`` (a numba-cuda
dependency) finds them in site-packages, with no ``CUDA_HOME``. The kernels inline their device
helpers (``inline="always"``, ``kernels/_cuda.py``): a separately compiled device function would
ask the absent device for its compute capability.

Checked here, in this process (never under the simulator, whose ``numba.cuda`` cannot compile):

* every ``(kernel, argument types)`` of the ``PTX_SIGNATURES`` of ``critic_cuda``,
  ``interp_cuda`` and ``pointcloud_cuda`` compiles for sm_90 (a failure names the signature);
  the lists hold every kernel of each module, the grid kernels for float32 and float64 iterates
  (``tests/critic/test_critic_cuda.py`` checks that the launches of a solve are in the list);
* the float32 grid kernels compute in float32: no ``.f64`` instruction at all in the iteration
  (``dual_step``, ``residual``) and the corrected flow; float64 arithmetic in the others only in
  ``critic_cuda.FLOAT64_ON_PURPOSE``, each of which does have some (the list stays exact);
* the checks are not vacuous: wrong argument types do not compile, and float64 arithmetic in a
  float32 kernel is found.
"""

from __future__ import annotations

import pytest

pytest.importorskip("numba_cuda", reason="numba-cuda is not installed (the 'test' extra)")

from _cuda_sim import OUTSIDE_ONLY, simulator_here

if simulator_here():  # pragma: no cover - only when the whole suite runs under the simulator
    pytest.skip(f"compiling PTX needs numba's real CUDA target {OUTSIDE_ONLY}",
                allow_module_level=True)

from numba import cuda
from numba import types as t

from otgrid.kernels import critic_cuda, interp_cuda, pointcloud_cuda

CC = (9, 0)  # H100
MODULES = (critic_cuda, interp_cuda, pointcloud_cuda)
ALL = [(mod, kern, sig) for mod in MODULES for kern, sig in mod.PTX_SIGNATURES]
# float32 kernels with no float64 instruction at all (not even a conversion): the hot loop
PURE_FLOAT32 = ("dual_step_1d", "dual_step_2d", "residual_1d", "residual_2d",
                "corrected_flow_1d", "corrected_flow_2d")
_DATA_MOVES = ("mov", "cvt", "ld", "st", "selp")


def _label(mod, kern, sig) -> str:
    return f"{mod.__name__.rsplit('.', 1)[1]}.{kern.__name__}[{sig[0].dtype}]"


def _compile(kern, sig) -> str:
    try:
        ptx, _ = cuda.compile_ptx(kern.py_func, tuple(sig), cc=CC)
    except Exception as exc:
        if "nvvm" in str(exc).lower() or "nvrtc" in str(exc).lower():
            pytest.fail(f"NVVM/NVRTC not found ({type(exc).__name__}: {exc}); install the test "
                        "extra: pip install -e '.[test]' (it brings cuda-toolkit[nvcc,nvrtc])")
        raise
    return ptx


def f64_instructions(ptx: str, arithmetic_only: bool) -> list[str]:
    """PTX instructions on float64 operands: all of them, or only the arithmetic (and
    comparisons), leaving out moves, conversions, loads and stores."""
    out = []
    for line in ptx.splitlines():
        words = line.split()
        if not words or words[0].startswith(("//", ".", "{", "}")):
            continue  # comments, directives (.reg .f64 declarations), braces
        op = words[1] if words[0].startswith("@") and len(words) > 1 else words[0]
        if ".f64" in op and not (arithmetic_only and op.split(".")[0] in _DATA_MOVES):
            out.append(line.strip())
    return out


def test_the_signature_lists_cover_every_kernel():
    for mod in MODULES:
        kernels = {name for name in mod.__all__ if hasattr(getattr(mod, name), "py_func")}
        listed = {kern.__name__ for kern, _ in mod.PTX_SIGNATURES}
        assert kernels and listed == kernels, mod.__name__
    dtypes = {}
    for kern, sig in critic_cuda.PTX_SIGNATURES:
        dtypes.setdefault(kern.__name__, set()).add(str(sig[0].dtype))
    assert all(d == {"float32", "float64"} for d in dtypes.values()), dtypes
    assert set(critic_cuda.FLOAT64_ON_PURPOSE) <= set(dtypes)


@pytest.mark.parametrize(("mod", "kern", "sig"), ALL, ids=[_label(*a) for a in ALL])
def test_kernel_compiles_for_sm90(mod, kern, sig):
    ptx = _compile(kern, sig)
    assert ".target sm_90" in ptx
    assert ptx.count(".entry ") == 1 and kern.__name__ in ptx
    if mod is not critic_cuda or sig[0].dtype != t.float32:
        return
    name = kern.__name__
    if name in PURE_FLOAT32:
        assert not f64_instructions(ptx, arithmetic_only=False), name
        return
    f64 = f64_instructions(ptx, arithmetic_only=True)
    if name in critic_cuda.FLOAT64_ON_PURPOSE:
        assert f64, f"{name} has no float64 arithmetic: take it off FLOAT64_ON_PURPOSE"
    else:
        assert not f64, f"float64 arithmetic in float32 {name}: {f64[:4]}"


def test_wrong_argument_types_do_not_compile():
    kern, sig = critic_cuda.PTX_SIGNATURES[0]
    assert kern is critic_cuda.dual_step_1d
    bad = (t.Array(t.float32, 3, "C"), *sig[1:])  # a 2D grid function where a 1D one goes
    with pytest.raises(Exception, match="wrong tuple length"):
        cuda.compile_ptx(kern.py_func, bad, cc=CC)


def test_the_float64_check_finds_float64_arithmetic():
    def scale(a):  # pragma: no cover - compiled, not run
        a[0] = a[0] * 0.1  # a float64 literal: the product is computed in float64

    ptx, _ = cuda.compile_ptx(scale, (t.Array(t.float32, 1, "C"),), cc=CC)
    assert any(ln.startswith("mul.f64") for ln in f64_instructions(ptx, arithmetic_only=True))
    assert not f64_instructions(".reg .f64 %fd<3>;\ncvt.f64.f32 %fd1, %f1;", True)
