"""Every figure of otgrid reads on its own: axis labels, titles, legends and colour bars.

One test per figure function and dimension (:func:`otgrid.plot.plot_critic`, ``plot_sco``,
``plot_audit``), on small problems. :func:`assert_readable` checks what any figure needs: every
data axes has both axis labels, every image a colour bar with a label, every legend entry a text,
and a title above it all. The tests then check what each figure must say: which curve is which
(the legend names mu and nu), that the critic's colour scale covers its whole range, that the
flow arrows have a scale key, that no panel is left empty. The demos' figures are checked by
tests/test_demos.py; the docs gallery shows them one per row at the page's width (its scraper,
docs/_gallery_scraper.py), never side by side at 42% of it.
"""

from __future__ import annotations

import numpy as np
import pytest

import otgrid as og
from otgrid.plot import plot_audit, plot_critic, plot_sco


@pytest.fixture(autouse=True)
def _agg():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    yield
    plt.close("all")


def _legend_texts(ax) -> list[str]:
    legend = ax.get_legend()
    return [] if legend is None else [t.get_text() for t in legend.get_texts()]


def assert_readable(fig) -> None:
    """Labels on every data axes, a labelled colour bar for every image, a title somewhere."""
    from matplotlib.image import AxesImage

    bars = [ax for ax in fig.axes if hasattr(ax, "_colorbar")]
    titles = [ax.get_title() for ax in fig.axes] + [fig._suptitle.get_text()
                                                   if fig._suptitle else ""]
    assert any(t.strip() for t in titles), "no title"
    for ax in fig.axes:
        if ax in bars:
            assert ax._colorbar.ax.get_ylabel() or ax.get_xlabel(), "a colour bar without label"
            continue
        if not (ax.lines or ax.images or ax.collections or ax.patches):
            continue
        # a twin axes (densities over a critic) shares its x axis, and its label, with another
        assert any(a.get_xlabel() for a in ax.get_shared_x_axes().get_siblings(ax)), \
            f"axes {ax.get_title()!r} has no x label"
        assert ax.get_ylabel(), f"axes {ax.get_title()!r} has no y label"
        for text in _legend_texts(ax):
            assert text.strip(), "an empty legend entry"
        for im in (a for a in ax.get_children() if isinstance(a, AxesImage)):
            assert im.colorbar is not None and im.colorbar.ax.get_ylabel(), \
                f"image of {ax.get_title()!r} without a labelled colour bar"


# ------------------------------------------------------------------------ plot_critic
def test_critic_1d_names_the_critic_and_both_densities():
    grid = og.Grid((-6.0, 7.0), 64)
    mu, nu = grid.discretize(og.Normal(0, 1)), grid.discretize(og.Normal(1, 1))
    res = og.solve_critic(mu, nu, grid, tol=1e-6)
    fig = plot_critic(res, mu, nu, flow=True)
    assert_readable(fig)
    ax = fig.axes[0]
    assert _legend_texts(ax) == ["critic f", "μ density (mass / dx)", "ν density (mass / dx)",
                                 "transport flow"]
    assert "W ≈" in ax.get_title()


def test_critic_2d_full_colour_range_flow_key_and_legend():
    from matplotlib.quiver import QuiverKey

    grid = og.Grid([(-6, 6), (-6, 6)], (32, 32))
    mu = grid.discretize(og.Normal([0, 0], 1.0))
    nu = grid.discretize(og.datasets.eight_gaussians())
    res = og.solve_critic(mu, nu, grid, tol=1e-3)
    fig = plot_critic(res, mu, nu, flow=True)
    assert_readable(fig)
    ax = fig.axes[0]
    (im,) = ax.images
    assert im.colorbar.ax.get_ylabel() == "critic f"
    # the colour scale covers the whole critic: nothing is clipped to one solid colour
    critic = np.asarray(res.critic)
    assert im.norm.vmin <= critic.min() and im.norm.vmax >= critic.max()
    assert im.norm(0.0) == pytest.approx(0.5)            # white at 0, red above, blue below
    keys = [a for a in ax.get_children() if isinstance(a, QuiverKey)]
    assert len(keys) == 1 and "arrow scale" in keys[0].text.get_text()
    assert _legend_texts(ax) == ["μ density", "ν density", "transport flow"]


# ------------------------------------------------------------------------ plot_sco
def _fit(target, grid, steps, **kw):
    from otgrid.generators import LocationScale

    ndim = grid.ndim
    gen = LocationScale(np.zeros(ndim), np.ones(ndim))
    return og.sco.fit(target, gen, grid, steps=steps, rng=0, **kw)


def test_sco_1d_no_empty_panel():
    # a 1D critic is exact without iterating: the last panel shows its time, not zeros
    res = _fit(og.Normal(1.0, 0.5), og.Grid((-5.0, 7.0), 128), 20,
               true_params=np.array([1.0, 0.5]))
    assert max(res.critic_iterations) == 0
    fig = plot_sco(res, title="demo")
    assert_readable(fig)
    assert len(fig.axes) == 4
    work = fig.axes[3]
    (line,) = work.lines
    assert len(line.get_xdata()) > 0 and np.all(np.asarray(line.get_ydata()) > 0)
    assert work.get_ylabel() == "milliseconds" and "exact" in work.get_title()
    assert _legend_texts(fig.axes[0]) == ["upper bound", "lower bound"]
    assert _legend_texts(fig.axes[1]) == ["loc", "scale"]


def test_sco_2d_shows_the_critic_iterations():
    grid = og.Grid([(-6.0, 6.0), (-6.0, 6.0)], 24)
    res = _fit(og.Normal([0.5, -0.3], [0.36, 0.16]), grid, 6)
    assert max(res.critic_iterations) > 0
    fig = plot_sco(res)
    assert_readable(fig)
    work = fig.axes[-1]
    assert work.get_ylabel() == "iterations"
    np.testing.assert_array_equal(work.lines[0].get_ydata(), res.critic_iterations)


# ------------------------------------------------------------------------ plot_audit
def test_audit_1d_legend_names_both_densities():
    grid = og.Grid((-6.0, 7.0), 64)
    mu, nu = grid.discretize(og.Normal(0, 1)), grid.discretize(og.Normal(1, 0.5))
    report = og.audit(lambda x: -0.8 * x[:, 0], mu, nu, grid)
    fig = plot_audit(report)
    assert_readable(fig)
    labels = _legend_texts(fig.axes[0])
    assert {"μ density", "ν density", "optimal f*"} <= set(labels), labels
    assert "grad f* not determined" in _legend_texts(fig.axes[1])


@pytest.mark.parametrize("flat_mu", [False, True], ids=["contours", "flat-mu"])
def test_audit_2d_colour_bars_and_density_legend(flat_mu):
    grid = og.Grid([(-3.0, 3.0), (-3.0, 3.0)], (24, 24))
    mu = (grid.discretize(og.Uniform([-3, -3], [3, 3])) if flat_mu
          else grid.discretize(og.Normal([-0.5, 0.0], 0.1)))
    nu = grid.discretize(og.Normal([0.8, 0.0], 0.1))
    report = og.audit(lambda x: -x[:, 0], mu, nu, grid)
    fig = plot_audit(report, title="shift")
    assert_readable(fig)
    bars = sorted(ax._colorbar.ax.get_ylabel() for ax in fig.axes if hasattr(ax, "_colorbar"))
    assert bars == ["cos(grad f, grad f*)", "f", "f*"]
    for ax in fig.axes[:2]:              # the two critic images (their colour bars come after)
        labels = _legend_texts(ax)
        assert labels[1] == "ν density"
        assert labels[0] == ("μ density: flat, no contour" if flat_mu else "μ density")
    assert "shift" in fig._suptitle.get_text()


def test_gallery_shows_each_figure_on_its_own_row(monkeypatch):
    """The docs gallery does not shrink the figures of a demo side by side (42% of the page):
    its scraper asks for one figure per row, and saves a 2x image as well."""
    import ast
    import sys
    from pathlib import Path

    pytest.importorskip("sphinx_gallery")
    import sphinx_gallery.scrapers as scrapers

    docs = Path(__file__).resolve().parents[1] / "docs"
    tree = ast.parse((docs / "conf.py").read_text())
    (gallery,) = [node.value for node in tree.body if isinstance(node, ast.Assign)
                  and getattr(node.targets[0], "id", "") == "sphinx_gallery_conf"]
    conf = {k.value: ast.literal_eval(v) for k, v in zip(gallery.keys, gallery.values,
                                                         strict=True)
            if k.value in ("image_scrapers", "image_srcset")}
    assert conf["image_scrapers"] == ("_gallery_scraper.single_image_scraper",)
    assert conf["image_srcset"] == ["2x"]
    monkeypatch.syspath_prepend(str(docs))
    sys.modules.pop("_gallery_scraper", None)
    from _gallery_scraper import single_image_scraper

    seen = {}
    monkeypatch.setattr(scrapers, "matplotlib_scraper",
                        lambda block, block_vars, conf: seen.update(block_vars) or "rst")
    assert single_image_scraper(None, {"multi_image": None}, {}) == "rst"
    assert seen["multi_image"] == "single"
