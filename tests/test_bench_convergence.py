"""Smoke test of benchmarks/bench_convergence.py (issue 3): sections run and the report is written.

No timing is asserted; the values are checked against the 1D closed form and SciPy HiGHS.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

pytest.importorskip("ot", reason="POT is needed by the 1D section (pip install -e .[test])")
pytest.importorskip("matplotlib", reason="matplotlib draws the iterations figure")

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import bench_convergence as bc


@pytest.fixture(scope="module")
def small_report() -> dict:
    cfg = {"sizes": [16], "tols": [1e-3], "sizes_1d": [256, 512]}
    return {
        "name": "convergence", "quick": True, "config": cfg, "machine": bc.machine_info(),
        "time_limit": 30.0, "max_iter": 100_000, "warm_up_seconds": 0.0,
        "load": {"euclidean": 0.0, "1d": 0.0},
        "sections": {
            "euclidean": bc.bench_euclidean(cfg, 30.0, 100_000, clarabel_limit=None),
            "1d": bc.bench_1d(cfg, 30.0, 100_000, highs_limit=60.0),
        },
    }


def test_1d_section_matches_the_closed_form_highs_and_pot(small_report):
    rows = small_report["sections"]["1d"]["rows"]
    assert [r["n"] for r in rows] == [256, 512]
    for r in rows:
        assert r["converged"]
        assert r["inside"], (r["lower"], r["closed_form"], r["upper"])
        assert r["rel_diff"] <= 1e-8
        assert not r["highs"]["skipped"]
        assert r["highs"]["rel_diff"] <= 1e-8
        assert r["pot_rel_diff"] <= 1e-8


def test_euclidean_rows_are_certified(small_report):
    rows = small_report["sections"]["euclidean"]["rows"]
    assert {(r["problem"], r["dtype"]) for r in rows} == {
        (p, d) for p in ("gaussian", "8gaussians") for d in ("float64", "float32")}
    for r in rows:
        assert r["converged"] and r["lower"] <= r["upper"]
        assert r["rel_gap"] <= 1e-3
    assert small_report["sections"]["euclidean"]["clarabel"] == []


def test_report_files_and_targets(small_report, tmp_path):
    bc._write(small_report, tmp_path)
    data = json.loads((tmp_path / "convergence.json").read_text(encoding="utf-8"))
    md = (tmp_path / "convergence.md").read_text(encoding="utf-8")
    assert (tmp_path / "convergence_iterations.png").stat().st_size > 0
    assert set(data["sections"]) == {"euclidean", "1d"}
    assert "## 2. Euclidean 2D" in md and "## 5. 1D" in md and "## Targets" in md
    status = {t["target"]: t["met"] for t in data["targets"]}
    # nothing at 256² or above was run: those targets must say so, not pass
    assert status["Gaussian pair, 256², rel. gap 1e-04, ≤ 0.3 s"] == "not measured"
    assert status["≥ 50× faster than POT emd2 at 64² cityblock"] == "not measured"


def test_the_iterations_figure_marks_runs_that_need_no_fine_iteration(small_report, tmp_path):
    """A solve that converges on the coarse levels has 0 fine iterations, which a log axis
    cannot show: it is drawn at 1 and marked, and the sqrt(N) line starts from a positive
    point."""
    import copy

    import matplotlib.pyplot as plt

    report = copy.deepcopy(small_report)
    rows = report["sections"]["euclidean"]["rows"]
    rows[0]["iterations"] = 0
    drawn = {}
    real = plt.Figure.savefig

    def keep(fig, *a, **kw):
        drawn["axes"] = fig.axes[0]
        return real(fig, *a, **kw)

    plt.Figure.savefig = keep
    try:
        assert bc.plot_iterations(report, tmp_path / "it.png", tol=1e-3)
    finally:
        plt.Figure.savefig = real
    labels = [h.get_label() for h in drawn["axes"].get_lines()]
    assert "0 (converged on coarse levels), at 1" in labels
    for line in drawn["axes"].get_lines():
        assert min(line.get_ydata()) >= 1  # every point visible on the log axis
