"""Figures of critics: the expected artists, orientation of 2D images, flow arrows, files."""

from __future__ import annotations

import os
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest

from otgrid.critic import solve_critic
from otgrid.grid import Grid, Normal, Uniform
from otgrid.plot import plot_critic, save_figure

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as pyplot

    yield pyplot
    pyplot.close("all")


@pytest.fixture(autouse=True)
def _close_figures(plt):
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def result_1d():
    grid = Grid((-6.0, 7.0), 48)
    mu = grid.discretize(Normal(0.0, 1.0), outside_tol=1e-8)
    nu = grid.discretize(Normal(1.0, 0.5), outside_tol=1e-8)
    return solve_critic(mu, nu, grid, backend="numpy", tol=1e-5), mu, nu


@pytest.fixture(scope="module")
def result_2d():
    # A non-square grid (20 x 12 cells on a non-square box), so a transposition would show.
    grid = Grid([(-3.0, 5.0), (-2.0, 2.0)], (20, 12))
    mu = grid.discretize(Normal([-1.0, 0.0], 0.5), outside="fold", outside_tol=0.01)
    nu = grid.discretize(Uniform([2.0, -1.0], [4.0, 1.0]))
    return solve_critic(mu, nu, grid, backend="numpy", tol=1e-3), mu, nu


def fake_result(grid, critic, flow=None, converged=True):
    """A minimal result object with known fields (plot_critic duck-types its input)."""
    return SimpleNamespace(grid=grid, critic=critic, flow=flow, w1=1.25, lower=1.0, upper=1.5,
                           norm="euclidean", converged=converged)


# --------------------------------------------------------------------------- 1D


def test_1d_critic_line_and_density_steps(plt, result_1d):
    from matplotlib.figure import Figure
    from matplotlib.patches import StepPatch

    res, mu, nu = result_1d
    fig = plot_critic(res, mu, nu)
    assert isinstance(fig, Figure)
    ax, dens = fig.axes                     # the critic axes and its twin for the densities
    (line,) = ax.get_lines()
    np.testing.assert_allclose(line.get_xdata(), res.grid.centers[0])
    np.testing.assert_allclose(line.get_ydata(), res.critic)
    steps = [p for p in dens.patches if isinstance(p, StepPatch)]
    assert len(steps) == 2
    dx = 13.0 / 48
    np.testing.assert_allclose(steps[0].get_data().values, mu / dx)
    np.testing.assert_allclose(steps[1].get_data().values, nu / dx)
    np.testing.assert_allclose(steps[0].get_data().edges, np.linspace(-6, 7, 49))
    title = ax.get_title()
    assert title.startswith("W ≈ ") and f"{res.w1:.6g}" in title
    assert f"{res.lower:.6g}" in title and f"{res.upper:.6g}" in title
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels[0] == "critic f" and len(labels) == 3


def test_1d_without_measures_has_one_axes_and_flow_arrows(plt, result_1d):
    from matplotlib.quiver import Quiver

    res, _, _ = result_1d
    fig = plot_critic(res, title="my pair")
    assert len(fig.axes) == 1
    assert fig.axes[0].get_title().splitlines()[0] == "my pair"
    fig = plot_critic(res, flow=True)
    (q,) = [c for c in fig.axes[0].collections if isinstance(c, Quiver)]
    assert 1 <= q.N <= 24
    # mu = N(0, 1) moves right onto nu = N(1, 1/2): all drawn arrows point right.
    assert np.all(q.U > 0) and np.all(q.V == 0)


# --------------------------------------------------------------------------- 2D


def test_2d_image_orientation_contours_and_colorbar(plt, result_2d):
    from matplotlib.contour import ContourSet
    from matplotlib.image import AxesImage

    res, mu, nu = result_2d
    fig = plot_critic(res, mu, nu)
    ax = fig.axes[0]
    assert len(fig.axes) == 2               # the image axes and the colour bar
    (im,) = [a for a in ax.get_children() if isinstance(a, AxesImage)]
    assert im.origin == "lower"
    np.testing.assert_allclose(im.get_extent(), [-3.0, 5.0, -2.0, 2.0])
    arr = np.asarray(im.get_array())
    assert arr.shape == (12, 20)            # rows are y, columns are x
    np.testing.assert_allclose(arr, res.critic.T)
    contours = [c for c in ax.collections if isinstance(c, ContourSet)]
    assert len(contours) == 2
    assert "W ≈" in ax.get_title() and "euclidean" in ax.get_title()


def test_2d_image_pixels_follow_x_to_the_right_and_y_up(plt):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    grid = Grid([(0.0, 4.0), (0.0, 2.0)], (8, 4))
    x, y = grid.mesh()
    fig = Figure(figsize=(4, 3))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    # critic = x + 10 y: increases to the right (slowly) and upward (quickly).
    plot_critic(fake_result(grid, x + 10 * y), ax=ax)
    fig.canvas.draw()
    rgba = np.asarray(fig.canvas.buffer_rgba())

    def colour_at(px, py):
        disp = ax.transData.transform((px, py))
        col, row = int(disp[0]), rgba.shape[0] - int(disp[1])
        return rgba[row, col, :3].astype(float)

    im = ax.get_images()[0]
    cmap, norm = im.get_cmap(), im.norm

    def expected(value):
        return np.array(cmap(norm(value))[:3]) * 255

    for px, py in [(0.25, 0.25), (3.75, 0.25), (0.25, 1.75), (3.75, 1.75)]:
        np.testing.assert_allclose(colour_at(px, py), expected(px + 10 * py), atol=3)


def test_2d_flow_arrows_are_subsampled_and_only_where_flow_is(plt):
    from matplotlib.quiver import Quiver

    grid = Grid([(0.0, 1.0), (0.0, 1.0)], (96, 96))
    flow = np.zeros((2, 96, 96))
    flow[0, 10:40, 20:70] = 1.0              # rightward flux in a band, zero elsewhere
    res = fake_result(grid, np.zeros(grid.shape), flow)
    fig = plot_critic(res, flow=True)
    (q,) = [c for c in fig.axes[0].collections if isinstance(c, Quiver)]
    assert 1 <= q.N <= 24 * 24
    assert np.all(q.U > 0) and np.all(q.V == 0)
    xy = q.get_offsets()
    assert np.all((xy[:, 0] > 8 / 96) & (xy[:, 0] < 44 / 96))
    assert np.all((xy[:, 1] > 18 / 96) & (xy[:, 1] < 72 / 96))
    # no flow at all: no arrows
    fig = plot_critic(fake_result(grid, np.zeros(grid.shape), np.zeros((2, 96, 96))), flow=True)
    assert not [c for c in fig.axes[0].collections if isinstance(c, Quiver)]


def test_2d_flow_of_a_real_solve_points_from_mu_to_nu(plt, result_2d):
    from matplotlib.quiver import Quiver

    res, mu, nu = result_2d
    fig = plot_critic(res, mu, nu, flow=True)
    (q,) = [c for c in fig.axes[0].collections if isinstance(c, Quiver)]
    assert q.N >= 1
    # mu sits left of nu: the mass-weighted flow points right.
    np.testing.assert_array_less(0.0, np.sum(q.U))
    assert np.sum(q.U) > 5 * abs(np.sum(q.V))


def test_draws_into_given_axes_and_marks_non_convergence(plt):
    fig, ax = plt.subplots()
    grid = Grid((0.0, 1.0), 10)
    out = plot_critic(fake_result(grid, np.zeros(10), converged=False), ax=ax)
    assert out is fig
    assert "not converged" in ax.get_title()


# --------------------------------------------------------------------------- errors, files


def test_bad_input(plt, result_1d):
    res, mu, _ = result_1d
    with pytest.raises(TypeError, match="CriticResult"):
        plot_critic(np.zeros(3))
    with pytest.raises(ValueError, match="shape"):
        plot_critic(res, mu[:-1])
    with pytest.raises(ValueError, match="non-finite"):
        plot_critic(res, np.full_like(mu, np.nan))
    grid3 = Grid([(0, 1)] * 3, 4)
    with pytest.raises(ValueError, match="1D and 2D"):
        plot_critic(fake_result(grid3, np.zeros(grid3.shape)))


def test_save_figure(plt, tmp_path, result_2d):
    res, mu, nu = result_2d
    fig = plot_critic(res, mu, nu, flow=True)
    out = save_figure(fig, tmp_path / "c.png")
    assert out == tmp_path / "c.png"
    assert out.read_bytes()[:8] == PNG_MAGIC
    assert save_figure(fig, str(tmp_path / "c.svg")).read_text().lstrip().startswith("<?xml")
    with pytest.raises(ValueError, match="does not exist"):
        save_figure(fig, tmp_path / "missing" / "c.png")
    with pytest.raises(ValueError, match="figure format"):
        save_figure(fig, tmp_path / "c.docx")


def test_importing_otgrid_does_not_choose_a_backend():
    code = ("import sys, matplotlib; import otgrid, otgrid.plot, otgrid.cli, otgrid.grid.spec; "
            "print('matplotlib.pyplot' in sys.modules, matplotlib.get_backend() == 'agg')")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, check=True, env={**os.environ, "MPLBACKEND": "svg"})
    assert done.stdout.split() == ["False", "False"]
