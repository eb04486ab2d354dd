"""The fuzz campaign's machinery: settings profiles, outcome classes, a per-example time limit.

Every fuzz target is a :class:`Target`: a Hypothesis strategy of inputs and a function that runs
one input and returns an :class:`Outcome`. The tests (``tests/fuzz/test_fuzz_*.py``) assert that
each outcome is ``ok`` or ``error``; ``benchmarks/bench_fuzz.py`` runs the same targets with a
large budget and counts the outcomes instead.

Outcome classes:

- ``ok``: the input was accepted and the result passed every check (``checked``: it was also
  compared with an independent reference);
- ``error``: a clean rejection: a ``ValueError`` or ``TypeError`` (``otgrid.errors`` subclasses
  included) with a non-empty message, raised by otgrid's own code (not leaked from NumPy or
  SciPy); for the command line, exit status 2 with one line ``otgrid: error: ...``;
- ``crash``: any other exception, or a command-line status/output that breaks the contract;
- ``traceback``: a Python traceback in the command's output;
- ``hang``: the example ran past its time limit;
- ``wrong``: a result whose certified bounds exclude the reference value (or a result that
  breaks an invariant such as ``lower <= upper``), without any flag saying so.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import sys
import threading
import time
import traceback
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parents[2]
PACKAGE_DIRS = (str(ROOT / "otgrid") + os.sep, str(ROOT / "kernels") + os.sep)

KINDS = ("ok", "error", "crash", "traceback", "hang", "wrong")
BAD_KINDS = ("crash", "traceback", "hang", "wrong")

# --------------------------------------------------------------------------- profiles
#: Examples per unit weight of a target: ``fuzz-ci`` (the default, and under ``CI``) keeps the
#: whole folder well under a minute on a 2-core machine; ``fuzz-campaign`` is the campaign.
PROFILES = {"fuzz-ci": 20, "fuzz-campaign": 2000}
#: Seconds one example may run before it counts as a hang.
EXAMPLE_TIMEOUT = 30.0


def register_profiles() -> None:
    """Register the ``fuzz-ci`` and ``fuzz-campaign`` Hypothesis profiles (idempotent)."""
    common = dict(deadline=None, print_blob=True,
                  suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                         HealthCheck.filter_too_much,
                                         HealthCheck.function_scoped_fixture])
    settings.register_profile("fuzz-ci", max_examples=PROFILES["fuzz-ci"],
                              derandomize=bool(os.environ.get("CI")), **common)
    settings.register_profile("fuzz-campaign", max_examples=PROFILES["fuzz-campaign"],
                              **common)


def profile_name() -> str:
    """``fuzz-campaign`` when ``OTGRID_FUZZ_PROFILE=campaign``, else ``fuzz-ci``."""
    return ("fuzz-campaign" if os.environ.get("OTGRID_FUZZ_PROFILE", "").lower() == "campaign"
            else "fuzz-ci")


def fuzz_settings(weight: float = 1.0) -> settings:
    """The active profile, with ``weight`` times its examples (at least 2); the examples per
    unit weight can be set with ``OTGRID_FUZZ_EXAMPLES``."""
    register_profiles()
    parent = settings.get_profile(profile_name())
    base = int(os.environ.get("OTGRID_FUZZ_EXAMPLES") or parent.max_examples)
    return settings(parent, max_examples=max(2, round(base * weight)))


# --------------------------------------------------------------------------- outcomes
@dataclasses.dataclass
class Outcome:
    """How one input fared: its class (one of :data:`KINDS`) and what to report."""

    kind: str
    detail: str = ""
    checked: bool = False

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown outcome kind {self.kind!r}")


@dataclasses.dataclass
class Target:
    """A fuzz target: a strategy of inputs and the function that runs one."""

    name: str
    strategy: st.SearchStrategy
    run: Callable[[Any], Outcome]
    weight: float = 1.0
    timeout: float = EXAMPLE_TIMEOUT


class Hang(BaseException):
    """Raised in the main thread when an example runs past its time limit (a BaseException,
    so that no ``except Exception`` of the code under test swallows it)."""


@contextlib.contextmanager
def time_limit(seconds: float):
    """Raise :class:`Hang` in the main thread after ``seconds`` (no limit in other threads)."""
    if threading.current_thread() is not threading.main_thread() or seconds <= 0:
        yield
        return

    def _fire(signum, frame):
        raise Hang(f"ran past the {seconds:g} s time limit")

    old = signal.signal(signal.SIGALRM, _fire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def _raised_by_otgrid(exc: BaseException) -> bool:
    """Whether the innermost frame of ``exc``'s traceback is otgrid's own code."""
    tb = exc.__traceback__
    last = None
    while tb is not None:
        last = tb
        tb = tb.tb_next
    return last is not None and last.tb_frame.f_code.co_filename.startswith(PACKAGE_DIRS)


def short_traceback(exc: BaseException, limit: int = 6) -> str:
    """The last ``limit`` frames of ``exc`` and its message (for the report)."""
    lines = traceback.format_exception(type(exc), exc, exc.__traceback__)
    frames = [ln for ln in lines if ln.startswith("  File")]
    tail = "".join(frames[-limit:])
    return f"{tail}{type(exc).__name__}: {exc}".replace(str(ROOT) + os.sep, "")


def classify_exception(exc: BaseException) -> Outcome:
    """``error`` for a clean ValueError/TypeError raised by otgrid with a one-line, non-empty
    message; ``hang`` for :class:`Hang`; ``crash`` otherwise."""
    if isinstance(exc, Hang):
        return Outcome("hang", str(exc))
    if isinstance(exc, (ValueError, TypeError)):
        msg = str(exc)
        if not msg.strip():
            return Outcome("crash", "empty error message\n" + short_traceback(exc))
        if not _raised_by_otgrid(exc):
            return Outcome("crash", "error leaked from a library (not raised by otgrid)\n"
                           + short_traceback(exc))
        return Outcome("error", f"{type(exc).__name__}: {msg.splitlines()[0][:200]}")
    return Outcome("crash", short_traceback(exc))


@contextlib.contextmanager
def numeric_warnings_as_errors():
    """RuntimeWarnings issued in otgrid's code are errors (as in the test suite's
    ``filterwarnings``); otgrid's own warnings (convergence, outside mass) are let through."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        warnings.filterwarnings("error", category=RuntimeWarning, module=r"otgrid.*")
        yield


def guarded(fn: Callable[[], Outcome], timeout: float = EXAMPLE_TIMEOUT) -> Outcome:
    """Run ``fn`` under the time limit, RuntimeWarnings from otgrid as errors; any exception
    it lets out is classified by :func:`classify_exception`."""
    try:
        with numeric_warnings_as_errors(), time_limit(timeout):
            return fn()
    except (Exception, Hang) as exc:  # what the code under test let out
        return classify_exception(exc)


def check(outcome: Outcome) -> None:
    """Assertion of the fuzz tests: the outcome is ``ok`` or ``error``."""
    assert outcome.kind in ("ok", "error"), f"{outcome.kind}: {outcome.detail}"


def elapsed(t0: float) -> float:
    """Seconds since ``t0`` (``time.perf_counter``)."""
    return time.perf_counter() - t0


def python() -> str:
    """The interpreter running the campaign (the project's virtualenv)."""
    return sys.executable
