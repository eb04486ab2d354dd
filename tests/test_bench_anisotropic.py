"""benchmarks/bench_anisotropic.py solves its problems with both policies and writes a report."""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import bench_anisotropic as ba

from otgrid.critic import backend_numpy


def test_the_benchmark_runs_both_policies_and_checks_highs(tmp_path):
    default = dict(backend_numpy.AXIS_WEIGHTS_MIN_RATIO)
    report = ba.main(["--problems", "2", "--sets", "fuzz", "--out-dir", str(tmp_path)])
    assert backend_numpy.AXIS_WEIGHTS_MIN_RATIO == default  # restored
    rows = report["rows"]
    assert [r["norm"] for r in rows] == ["cityblock", "euclidean"]
    for r in rows:
        assert r["ratio"] >= 2 and set(ba.POLICIES) <= set(r)
        for p in ba.POLICIES:
            assert r[p]["lower"] <= r[p]["upper"] and r[p]["iterations"] > 0
    assert report["highs_checked"] == 2 and report["highs_contained"] == 2
    md = (tmp_path / "anisotropic.md").read_text()
    assert "| fuzz | cityblock | 1 | plain |" in md and "HiGHS' value: 2 of 2" in md
    assert json.loads((tmp_path / "anisotropic.json").read_text())["tol"] == ba.TOL
