"""Fuzzing the ``otgrid`` command line, in-process and as a real process
(see ``fuzz/targets_cli.py``)."""

from __future__ import annotations

from fuzz.harness import check, fuzz_settings, guarded
from fuzz.targets_cli import CLI, CLI_PROCESS
from hypothesis import given


@fuzz_settings(CLI.weight)
@given(CLI.strategy)
def test_cli_exits_0_1_or_2_with_one_line(example):
    check(guarded(lambda: CLI.run(example), CLI.timeout))


@fuzz_settings(CLI_PROCESS.weight)
@given(CLI_PROCESS.strategy)
def test_cli_process_exits_0_1_or_2_with_one_line(example):
    check(guarded(lambda: CLI_PROCESS.run(example), CLI_PROCESS.timeout))
