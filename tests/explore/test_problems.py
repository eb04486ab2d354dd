"""The explorer's problems (presets, specs, dragged modes, grids) and its image encoding."""

from __future__ import annotations

import base64

import numpy as np
import pytest

import otgrid as og
from otgrid.explore.problems import (
    PRESETS,
    ProblemError,
    build_problem,
    build_target,
    discretize,
    make_grid,
    modes_to_spec,
    spec_modes,
)
from otgrid.explore.render import encode_image, flow_arrows, gradient_norm
from otgrid.grid.spec import parse_distribution


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_builds_a_grid_holding_it(name):
    p = PRESETS[name]
    problem = build_problem({"spec": p.mu}, {"spec": p.nu})
    grid = make_grid(problem, 32, p.bounds)
    a, b, outside = discretize(problem, grid)
    np.testing.assert_allclose([a.sum(), b.sum()], [1.0, 1.0], rtol=1e-12)
    assert max(outside.values()) < 1e-4
    assert problem.ndim == (1 if name.endswith("1d") else 2)


def test_dragged_modes_become_the_grammar_and_back():
    modes = [{"x": [-1.0, 0.5], "std": 0.4, "w": 1.0}, {"x": [2.0, 0.0], "std": 0.7, "w": 3.0}]
    text = modes_to_spec(modes)
    assert text == "mixture(0.25*normal([-1, 0.5], std=0.4), 0.75*normal([2, 0], std=0.7))"
    back = spec_modes(parse_distribution(text))
    np.testing.assert_allclose([m["x"] for m in back], [m["x"] for m in modes])
    np.testing.assert_allclose([m["std"] for m in back], [0.4, 0.7])
    np.testing.assert_allclose([m["w"] for m in back], [0.25, 0.75])
    problem = build_problem({"modes": modes}, {"spec": "normal([0, 0], 1)"})
    assert problem.specs["mu"] == text and problem.modes["nu"][0]["std"] == 1.0
    assert spec_modes(parse_distribution("normal([0, 0], [[1, 0.5], [0.5, 1]])")) is None


def test_bad_measures_name_their_field():
    with pytest.raises(ProblemError) as exc:
        build_problem({"modes": [{"x": [0, 0], "std": -1}]}, {"spec": "normal([0, 0], 1)"})
    assert exc.value.field == "mu"
    with pytest.raises(ProblemError, match="not read by the explorer") as exc:
        build_problem({"spec": "normal(0, 1)"}, {"spec": "samples.npy"})
    assert exc.value.field == "nu"
    with pytest.raises(ProblemError, match="leave the second box empty"):
        build_problem({"spec": "parallel_lines(1)"}, {"spec": "normal(0, 1)"})
    with pytest.raises(ProblemError, match="1D and 2D"):
        build_problem({"spec": "normal([0, 0, 0], 1)"}, {"spec": "normal([1, 0, 0], 1)"})
    with pytest.raises(ProblemError) as exc:
        make_grid(build_problem({"spec": "normal(0, 1)"}, {"spec": "normal(1, 1)"}), 1 << 17)
    assert exc.value.field == "shape"
    with pytest.raises(ProblemError, match="pair of measures"):
        build_target({"spec": "funnel_pair(4)"})


def test_funnel_pair_knows_its_w():
    problem = build_problem({"spec": "funnel_pair(4)"}, {"spec": ""})
    assert problem.known["value"] == pytest.approx(og.datasets.funnel_pair(4).w1())
    grid = make_grid(problem, 48)
    assert grid.bounds == ((-2.5, 2.5), (-2.5, 2.5))


def test_encode_image_is_a_256_level_quantisation_top_row_first():
    v = np.arange(12.0).reshape(3, 4)  # [i_x, i_y]
    img = encode_image(v)
    q = np.frombuffer(base64.b64decode(img["data"]), dtype=np.uint8).reshape(4, 3)
    assert (img["width"], img["height"], img["vmin"], img["vmax"]) == (3, 4, 0.0, 11.0)
    np.testing.assert_array_equal(q, np.round(v.T[::-1] / 11 * 255).astype(np.uint8))


def test_gradient_norm_and_arrows_of_a_solved_critic():
    grid = og.Grid([(-3, 3), (-3, 3)], (24, 24))
    mu = grid.discretize(og.Normal([-1, 0], 0.09))
    nu = grid.discretize(og.Normal([1, 0], 0.09))
    res = og.solve_critic(mu, nu, grid, tol=1e-5)
    g = gradient_norm(res.critic, grid.dx, "euclidean")
    assert g.max() <= 1 + 1e-9 and g.max() > 0.99  # feasible, active where mass moves
    arrows = np.array(flow_arrows(res.flow, grid.centers, grid.dx, per_axis=8))
    assert np.max(np.hypot(arrows[:, 2], arrows[:, 3])) == pytest.approx(1.0, abs=1e-3)
    assert np.all(arrows[np.abs(arrows[:, 3]) < 0.2][:, 2] > 0)  # mass moves to +x
