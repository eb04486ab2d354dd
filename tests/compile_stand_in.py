"""A stand-in for a Numba dispatcher on its first run (shared by the tests of the clock that
leaves compilation out of a solve's ``seconds``)."""

from __future__ import annotations

import time
from typing import Any


class FirstCompile:
    """A Numba dispatcher that has never been compiled: compiling it (``compile``, as
    :func:`otgrid._threads.compile_for` does) takes ``delay`` seconds more; calls run the real
    kernel and are counted."""

    def __init__(self, real: Any, delay: float = 0.5) -> None:
        self.real, self.delay, self.compiled, self.calls = real, delay, 0, 0

    @property
    def signatures(self) -> list:
        return self.real.signatures if self.compiled else []

    @property
    def overloads(self) -> dict:
        return self.real.overloads if self.compiled else {}

    def compile(self, sig: tuple) -> Any:
        time.sleep(self.delay)
        self.compiled += 1
        return self.real.compile(sig)

    def __call__(self, *args: Any) -> Any:
        self.calls += 1
        return self.real(*args)
