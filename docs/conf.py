"""Sphinx configuration of the otgrid documentation.

Build (from the repository root)::

    python -m sphinx -W --keep-going -b html docs docs/_build/html

Every script in ``demos/`` becomes a gallery page; the ``demos/plot_*.py`` ones are run in
their fast mode and their figures shown. Environment variables:

* ``OTGRID_DOCS_GALLERY=0``: run no demo (pages without figures; a quick check of the text, the
  API reference and the cross-references -- what ``tests/test_docs.py`` does);
* ``OTGRID_DOCS_RUN=<regex>``: run the demos whose path matches instead (``.`` for all);
* ``OTGRID_DEMO_FAST=1``: run the demos at their tiny test sizes.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import otgrid

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent

project = "otgrid"
author = "The otgrid developers"
copyright = "2026, The otgrid developers"
version = release = otgrid.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "numpydoc",
    "myst_parser",
    "sphinx_gallery.gen_gallery",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = ["_build", "_generated/*.txt", "auto_examples/*.ipynb",
                    "auto_examples/*.py", "auto_examples/*.zip", "auto_examples/*.json",
                    "auto_examples/*.md5", "auto_examples/*.codeobj.json"]
templates_path = ["_templates"]
suppress_warnings = ["myst.header"]
nitpicky = False
default_role = "code"

# -- API reference -------------------------------------------------------------------------
autosummary_generate = True
autosummary_imported_members = False
autodoc_default_options = {"members": True, "inherited-members": False,
                           "show-inheritance": False}
autodoc_typehints = "none"          # numpydoc's Parameters sections say it already
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_validation_checks: set[str] = set()

# -- Theme ---------------------------------------------------------------------------------
html_theme = "furo"
html_title = f"otgrid {release}"
html_static_path: list[str] = []

# -- Gallery -------------------------------------------------------------------------------
# Every script in demos/ is a gallery page (it needs a module docstring that opens with an
# underlined title). The scripts whose path matches `_RUN_PATTERN` are run and their figures
# shown: by default the plot_*.py ones (sphinx-gallery's convention). A script qualifies when
# it runs in a minute or less, uses no optional dependency (or skips that part with a message),
# does not rely on `__file__` (undefined under sphinx-gallery; the working directory is
# demos/), leaves its figures open (the gallery collects the open matplotlib figures) and does
# not call sys.exit. OTGRID_DOCS_RUN=<regex> overrides the pattern (e.g. OTGRID_DOCS_RUN=.).
_RUN_PATTERN = os.environ.get("OTGRID_DOCS_RUN", r"/plot_[^/]*\.py$")
_run_gallery = os.environ.get("OTGRID_DOCS_GALLERY", "1") != "0"
# The demos write their figures and JSON files here instead of demos/output/.
os.environ.setdefault("OTGRID_DEMO_OUT", tempfile.mkdtemp(prefix="otgrid-docs-demos-"))
os.environ.pop("OTGRID_PAPER_SCALE", None)           # the docs always use the fast sizes

sphinx_gallery_conf = {
    "examples_dirs": [str(ROOT / "demos")],
    "gallery_dirs": ["auto_examples"],
    "filename_pattern": _RUN_PATTERN,
    "ignore_pattern": r"(__init__|/_[^/]*)\.py$",
    "plot_gallery": "True" if _run_gallery else "False",
    "download_all_examples": False,
    "remove_config_comments": True,
    "min_reported_time": 1,
    "matplotlib_animations": False,
    "within_subsection_order": "FileNameSortKey",
    "show_memory": False,
    "capture_repr": (),
    # Figures at the size the demos draw them: one per row at the page's full width (not side
    # by side at 42% of it), and saved at 2x as well for sharp text on high-resolution screens.
    "image_scrapers": ("_gallery_scraper.single_image_scraper",),
    "image_srcset": ["2x"],
}
sys.path.insert(0, str(DOCS))          # for _gallery_scraper


# -- Generated pages: CLI help -------------------------------------------------------------
def _write_cli_help() -> None:
    """Write the ``--help`` text of each command to docs/_generated/ (included by cli.rst)."""
    out = DOCS / "_generated"
    out.mkdir(exist_ok=True)
    env = {**os.environ, "COLUMNS": "100"}
    for name, args in (("otgrid", []), ("critic", ["critic"]), ("sco", ["sco"]),
                       ("audit", ["audit"]), ("info", ["info"])):
        text = subprocess.run([sys.executable, "-m", "otgrid", *args, "--help"],
                              capture_output=True, text=True, check=True, env=env).stdout
        path = out / f"cli_{name}.txt"
        if not path.exists() or path.read_text() != text:
            path.write_text(text)


def _copy_benchmarks() -> None:
    """Copy benchmarks/results/*.md and the images they show to docs/_generated/benchmarks/.

    A new result file shows up in the documentation by itself (as a page of benchmarks.rst).
    """
    out = DOCS / "_generated" / "benchmarks"
    out.mkdir(parents=True, exist_ok=True)
    results = ROOT / "benchmarks" / "results"
    wanted = sorted([*results.glob("*.md"), *results.glob("*.png")])
    for old in [*out.glob("*.md"), *out.glob("*.png")]:
        if old.name not in {md.name for md in wanted}:
            old.unlink()
    for md in wanted:
        dest = out / md.name
        if not dest.exists() or dest.read_bytes() != md.read_bytes():
            shutil.copyfile(md, dest)


# Generated sources are rebuilt from scratch every time, so that a renamed or removed module or
# demo leaves no stale page behind.
for _stale in ("_autosummary", "auto_examples"):
    shutil.rmtree(DOCS / _stale, ignore_errors=True)
_write_cli_help()
_copy_benchmarks()
