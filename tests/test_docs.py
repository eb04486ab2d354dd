"""The documentation builds with warnings as errors.

The build here does not run the demos (``OTGRID_DOCS_GALLERY=0``; tests/test_demos.py runs
them): it checks the pages, the API reference generated from every docstring, the
cross-references and the gallery pages' text. Set ``OTGRID_DOCS_TEST_GALLERY=1`` to run the
demos too, as the full documentation build does.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("sphinx", reason="sphinx is not installed (pip install -e '.[docs]')")
pytest.importorskip("numpydoc", reason="numpydoc is not installed (pip install -e '.[docs]')")
pytest.importorskip("sphinx_gallery",
                    reason="sphinx-gallery is not installed (pip install -e '.[docs]')")
pytest.importorskip("myst_parser", reason="myst-parser is not installed (pip install -e '.[docs]')")
pytest.importorskip("furo", reason="the furo theme is not installed (pip install -e '.[docs]')")

ROOT = Path(__file__).resolve().parents[1]


def test_docs_build_without_warnings(tmp_path):
    env = {**os.environ, "OTGRID_DEMO_FAST": "1", "OTGRID_DEMO_OUT": str(tmp_path / "demos"),
           "MPLBACKEND": "Agg"}
    if env.get("OTGRID_DOCS_TEST_GALLERY") != "1":
        env["OTGRID_DOCS_GALLERY"] = "0"
    out = tmp_path / "html"
    proc = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html",
         "-d", str(tmp_path / "doctrees"), str(ROOT / "docs"), str(out)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, f"sphinx-build failed:\n{proc.stdout}\n{proc.stderr}"
    for page in ("index", "install", "tutorial", "certificate", "choosing", "cli", "api",
                 "benchmarks", "references", "auto_examples/index",
                 "auto_examples/plot_parallel_lines", "_autosummary/otgrid.solve_critic"):
        assert (out / f"{page}.html").is_file(), f"{page}.html was not built"
    cli = (out / "cli.html").read_text(encoding="utf-8")
    assert "distribution grammar" in cli            # the generated --help text is included
    bench = list((out / "_generated" / "benchmarks").glob("*.html"))
    assert {p.stem for p in bench} == {p.stem for p in (ROOT / "benchmarks" / "results").glob(
        "*.md")}
