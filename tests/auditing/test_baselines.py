"""Tests of otgrid.auditing.baselines (torch): determinism and the constraint of each method."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import otgrid as og  # noqa: E402
from otgrid.auditing.baselines import ARCHITECTURES, make_critic, train_critic  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::otgrid.errors.OutsideMassWarning")

MU, NU = og.Normal(0.0, 1.0), og.Normal(2.0, 1.0)
MU2, NU2 = og.Normal([0.0, 0.0], 1.0), og.Normal([2.0, 1.0], 1.0)


def _weights(net):
    return [p.detach().clone() for p in net.parameters()]


@pytest.mark.parametrize("method", ["clip", "gp", "lp", "sn"])
def test_same_seed_same_weights(method):
    a = train_critic(MU, NU, method=method, steps=4, batch_size=16, seed=7)
    b = train_critic(MU, NU, method=method, steps=4, batch_size=16, seed=7)
    c = train_critic(MU, NU, method=method, steps=4, batch_size=16, seed=8)
    for p, q in zip(_weights(a.critic), _weights(b.critic), strict=True):
        torch.testing.assert_close(p, q, rtol=0, atol=0)
    np.testing.assert_array_equal(a.w_estimate, b.w_estimate)
    assert any(not torch.equal(p, q) for p, q in zip(_weights(a.critic), _weights(c.critic),
                                                     strict=True))


def test_training_does_not_touch_global_rng():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    train_critic(MU, NU, method="gp", steps=2, batch_size=8, seed=0)
    torch.testing.assert_close(torch.rand(3), expected)


@pytest.mark.parametrize(("arch", "c"), [("1d", 0.1), ("2d", 0.01)])
def test_clipping_bounds_weights(arch, c):
    mu, nu = (MU, NU) if arch == "1d" else (MU2, NU2)
    run = train_critic(mu, nu, method="clip", steps=3, batch_size=16, seed=0, lr=1.0)
    assert run.settings["clip"] == c
    assert run.settings["optimizer"] == "RMSprop"
    for p in run.critic.parameters():
        assert float(p.detach().abs().max()) <= np.float32(c)
    # with lr = 1 RMSProp moves every weight by about 1: the clip is active
    assert max(float(p.detach().abs().max()) for p in run.critic.parameters()) == pytest.approx(c)


@pytest.mark.parametrize("method", ["gp", "lp"])
def test_penalties_finite_and_correct(method):
    run = train_critic(MU2, NU2, method=method, steps=3, batch_size=32, seed=0, lam=0.1)
    assert np.all(np.isfinite(run.penalty)) and np.all(np.isfinite(run.w_estimate))
    assert np.all(run.penalty >= 0)
    assert run.settings["betas"] == (0.0, 0.9)
    # the penalty of GP at step 0 equals lam * E(|grad f(x_t)| - 1)^2 on a fresh network, which
    # PyTorch's default init makes far from 1-Lipschitz; LP is one-sided so it is <= GP
    if method == "lp":
        gp = train_critic(MU2, NU2, method="gp", steps=1, batch_size=32, seed=0, lam=0.1)
        assert run.penalty[0] <= gp.penalty[0] + 1e-12


def test_spectral_norm_close_to_one():
    run = train_critic(MU2, NU2, method="sn", steps=5, batch_size=32, seed=0)
    net = run.critic
    for mod in net:
        if isinstance(mod, torch.nn.Linear):
            w = mod.weight.detach()
            sigma = torch.linalg.matrix_norm(w, ord=2).item()
            assert sigma == pytest.approx(1.0, abs=5e-3)


def test_architectures_and_output_shape():
    for name, widths in ARCHITECTURES.items():
        net = make_critic(2, name)
        lins = [m for m in net if isinstance(m, torch.nn.Linear)]
        assert [m.out_features for m in lins] == [*widths, 1]
        assert net(torch.zeros(5, 2)).shape == (5, 1)


def test_bad_arguments():
    with pytest.raises(ValueError, match="method"):
        train_critic(MU, NU, method="wgan")
    with pytest.raises(ValueError, match="arch"):
        make_critic(1, "huge")
    with pytest.raises(TypeError, match="sample"):
        train_critic(3.0, NU, steps=1)


def test_trained_critic_audits(capsys):
    from otgrid.auditing import audit

    run = train_critic(MU, NU, method="gp", steps=200, batch_size=64, seed=0, progress=True)
    grid = og.Grid((-7.0, 9.0), 128)
    rep = audit(run.critic, MU, NU, grid, samples=200)
    assert rep.critic_kind == "torch"
    assert 0.0 < rep.w_ratio          # it learned the sign; not more is asserted at 200 steps
    out = capsys.readouterr()
    assert "200" in out.out + out.err          # the progress line/bar reached the last step


# --------------------------------------------------------------------------- command line
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize("form", ["torchscript", "state_dict", "state_dict_sn"])
def test_cli_audit(tmp_path, capsys, form):
    from otgrid.cli.main import main

    net = make_critic(1, (8, 8), spectral_norm=form.endswith("sn"), seed=0)
    path = tmp_path / "critic.pt"
    if form == "torchscript":
        torch.jit.save(torch.jit.script(net), str(path))
    else:
        torch.save(net.state_dict(), str(path))
    fig, js = tmp_path / "a.png", tmp_path / "a.json"
    rc = main(["audit", str(path), "--mu", "normal(0, 1)", "--nu", "normal(1, 1)",
               "--bounds", "-5", "6", "--shape", "64", "--samples", "100", "--figure", str(fig),
               "--json", str(js), *(["--torchscript"] if form == "torchscript" else [])])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "w_ratio" in out and "shape_error" in out
    assert fig.stat().st_size > 0
    import json

    d = json.loads(js.read_text())
    from otgrid.auditing import audit

    ref = audit(net.eval(), og.Normal(0.0, 1.0), og.Normal(1.0, 1.0), og.Grid((-5, 6), 64),
                samples=10)
    # same critic, same grid
    np.testing.assert_allclose(d["w_ratio"], ref.w_ratio, rtol=1e-6)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_cli_audit_bad_input(tmp_path, capsys):
    from otgrid.cli.main import main

    path = tmp_path / "junk.pt"
    path.write_text("not a model")
    assert main(["audit", str(path), "--mu", "normal(0, 1)", "--nu", "normal(1, 1)",
                 "--no-figure"]) == 2
    assert "neither TorchScript nor a state dict" in capsys.readouterr().err
    assert main(["audit", str(tmp_path / "missing.pt"), "--mu", "normal(0, 1)", "--nu",
                 "normal(1, 1)", "--no-figure"]) == 2
    assert "no such file" in capsys.readouterr().err
    net = make_critic(2, (4,), seed=0)
    torch.save(net.state_dict(), str(path))
    assert main(["audit", str(path), "--mu", "normal(0, 1)", "--nu", "normal(1, 1)",
                 "--no-figure"]) == 2
    assert "does not fit" in capsys.readouterr().err


# --------------------------------------------------------------------------- full GAN
@pytest.mark.parametrize("method", ["clip", "gp"])
def test_gan_deterministic_and_records(method):
    from otgrid.auditing.gan import LocationScaleNet, train_gan

    runs = []
    for _ in range(2):
        g = LocationScaleNet(0.0, 2.0)
        runs.append(train_gan(og.Normal(1.0, 0.25), g, method=method, steps=4, n_critic=2,
                              batch_size=16, seed=3, record_every=2,
                              callback=lambda gen, step: step * 10))
    a, b = runs
    assert [r["step"] for r in a.records] == [0, 2, 4]
    assert [r["callback"] for r in a.records] == [0, 20, 40]
    np.testing.assert_array_equal(a.records[-1]["params"], b.records[-1]["params"])
    assert a.records[-1]["params"] != a.records[0]["params"]     # the generator moved
    if method == "clip":
        assert all(float(p.detach().abs().max()) <= np.float32(0.1)
                   for p in a.critic.parameters())


def test_make_generator_shapes():
    from otgrid.auditing.gan import make_generator

    g = make_generator(2, 2, seed=0)
    assert g(torch.zeros(7, 2)).shape == (7, 2)
    torch.testing.assert_close(make_generator(2, 2, seed=0)[0].weight, g[0].weight)
