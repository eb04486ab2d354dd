"""The gallery's image scraper: every figure of a demo on its own row, at full width.

sphinx-gallery puts the figures of an example that draws several of them side by side at 42% of
the page width, where their labels cannot be read. This scraper asks for its single-image layout
instead (``multi_image = "single"``): one figure per row, as wide as the page allows, like the
figure a demo writes when run on its own. docs/conf.py names it in ``image_scrapers`` by its
qualified name (a function in the configuration could not be cached by Sphinx).
"""

from __future__ import annotations

from typing import Any


def single_image_scraper(block: Any, block_vars: dict, gallery_conf: dict) -> str:
    """sphinx-gallery's matplotlib scraper, with one figure per row."""
    from sphinx_gallery.scrapers import matplotlib_scraper

    block_vars["multi_image"] = "single"
    return matplotlib_scraper(block, block_vars, gallery_conf)
