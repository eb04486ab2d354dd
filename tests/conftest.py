"""Test-session settings: Hypothesis runs derandomized under CI (``CI`` set), so that a CI run
is reproducible; local runs keep exploring new random examples (and keep the ones that failed
in ``.hypothesis/``)."""

from __future__ import annotations

import os

from hypothesis import settings

settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")
