"""The documentation builds with warnings as errors, gallery included (fast mode).

The build runs the gallery's demos at their tiny test sizes (``OTGRID_DEMO_FAST=1``, about a
minute on 2 cores) and checks the pages, the API reference generated from every docstring, the
cross-references, and that every gallery page shows a figure. ``OTGRID_DOCS_TEST_GALLERY=0``
skips running the demos (tests/test_demos.py runs them too) for a quick check of the text.
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
    gallery = env.get("OTGRID_DOCS_TEST_GALLERY", "1") != "0"
    env["OTGRID_DOCS_GALLERY"] = "1" if gallery else "0"
    out = tmp_path / "html"
    proc = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-j", "auto", "-b", "html",
         "-d", str(tmp_path / "doctrees"), str(ROOT / "docs"), str(out)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, f"sphinx-build failed:\n{proc.stdout}\n{proc.stderr}"
    for page in ("index", "install", "tutorial", "certificate", "choosing", "cli", "api",
                 "benchmarks", "references", "auto_examples/index",
                 "auto_examples/plot_parallel_lines", "_autosummary/otgrid.solve_critic"):
        assert (out / f"{page}.html").is_file(), f"{page}.html was not built"
    dirac = (out / "_autosummary" / "otgrid.Dirac.html").read_text(encoding="utf-8")
    assert "alias of" not in dirac and "Another name for" in dirac   # a page of its own
    cli = (out / "cli.html").read_text(encoding="utf-8")
    assert "distribution grammar" in cli            # the generated --help text is included
    demos = sorted(p.stem for p in (ROOT / "demos").glob("*.py") if not p.name.startswith("_"))
    for stem in demos:  # every gallery page shows a figure (run, or committed for long demos)
        page = (out / "auto_examples" / f"{stem}.html").read_text(encoding="utf-8")
        if gallery or not stem.startswith("plot_"):
            assert "<img" in page and ".png" in page, f"gallery page {stem} shows no figure"
            # one figure per row at the page's width, never side by side at 42% of it
            assert "sphx-glr-multi-img" not in page, f"gallery page {stem} shrinks its figures"
    bench = list((out / "_generated" / "benchmarks").glob("*.html"))
    assert {p.stem for p in bench} == {p.stem for p in (ROOT / "benchmarks" / "results").glob(
        "*.md")}
