"""benchmarks/bench_hard.py builds its problems, measures the coarse work and writes a report."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import bench_hard


def test_problems_have_equal_masses_on_their_grid():
    for name, make in bench_hard.PROBLEMS.items():
        if name.startswith("funnel") and name != "funnel4":
            continue
        grid, mu, nu = make(16)
        assert mu.shape == nu.shape == grid.shape, name
        assert abs(mu.sum() - nu.sum()) < 1e-12, name


def test_a_solve_counts_the_coarse_work_and_the_report_renders(tmp_path):
    row = bench_hard.solve("gaussian", 128, 1e-3)
    assert row["converged"] and len(row["coarse_iterations"]) == 2
    assert row["work"] >= row["iterations"]
    row["ratio"] = 1.0
    report = {"machine": {"date": "d", "cpu_model": "c", "cpu_usable": 1, "numba_threads": 1},
              "load": 0.0, "warm_up_s": 0.0, "large_limit": 1.0, "baseline_file": None,
              "table": [row]}
    text = bench_hard.to_markdown(report, {"machine": {"date": "d"}, "table": [row]})
    assert "N(0,I) vs N((2,1),I)" in text and "## Goals (this run)" in text
    assert np.isfinite(row["seconds"])


def test_the_poisson_section_times_the_rest_of_the_iteration_as_the_solver_runs_it(monkeypatch):
    from otgrid.critic import backend_numba

    fused = bench_hard._time_iteration(32, np.float64)
    assert fused["fused"] and fused["residual_ms"] == 0.0 and 0 < fused["poisson_share"] < 1
    monkeypatch.setattr(backend_numba, "FUSED_RESIDUAL", False)
    apart = bench_hard._time_iteration(32, np.float64)
    assert not apart["fused"] and apart["residual_ms"] > 0
    lines = bench_hard._md_other({"poisson": [fused, apart]})
    assert any("| fused |" in line for line in lines)
