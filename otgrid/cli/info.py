"""``otgrid info``: the version, and which backends can run here (and why not)."""

from __future__ import annotations

import argparse
from typing import Any

import numpy as np

__all__ = ["add_info_parser", "run_info"]


def add_info_parser(sub: Any) -> None:
    """Add the ``info`` command to the sub-parsers ``sub``."""
    sub.add_parser(
        "info",
        help="version, and which backends can run here (and why not)",
        description="Print the otgrid version, for each backend of the grid critic whether it\n"
                    "can run on this machine (or a one-line reason why not), and the memory\n"
                    "available with the largest square 2D grid whose solve fits in it.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def run_info() -> int:
    """``otgrid info``: the version and the usable backends."""
    import platform

    import numba

    from otgrid._device import cuda_status
    from otgrid._version import __version__
    from otgrid.critic.backends import available_backends

    print(f"otgrid {__version__} (Python {platform.python_version()}, NumPy {np.__version__}, "
          f"Numba {numba.__version__})")
    status = dict(available_backends())
    status.setdefault("cuda", cuda_status())
    if status["cuda"] == "available":
        import cupy

        name = cupy.cuda.runtime.getDeviceProperties(0)["name"]
        status["cuda"] += f" ({name.decode() if isinstance(name, bytes) else name})"
    print("backends:")
    for name, state in status.items():
        print(f"  {name:<6} {state}")
    print(f"memory: {_memory_line()}")
    return 0


def _memory_line() -> str:
    """The memory available here and the largest square 2D grid whose solve fits in it."""
    from otgrid.critic.memory import available_memory, solve_memory

    avail = available_memory()
    if avail is None:
        return "unknown (no /proc/meminfo, cgroup limit or ulimit -v to read)"
    per_cell = solve_memory((1, 1)) + 16  # and the masses mu, nu
    side = int((avail / per_cell) ** 0.5)
    return (f"{avail / 2 ** 30:.3g} GiB available; the largest 2D critic that fits is about "
            f"{side} x {side} cells")


