"""The fuzz campaign's Hypothesis profiles: ``fuzz-ci`` (the default, small) and
``fuzz-campaign`` (``OTGRID_FUZZ_PROFILE=campaign``). They are applied per test by
``fuzz.harness.fuzz_settings`` rather than loaded globally, so that the rest of the suite keeps
its own settings."""

from __future__ import annotations

from fuzz.harness import register_profiles

register_profiles()
