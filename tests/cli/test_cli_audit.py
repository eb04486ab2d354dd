"""``otgrid audit``: which critic files it loads, and how it refuses the others.

State dicts are read with ``torch.load(..., weights_only=True)``; TorchScript (which runs code)
only with ``--torchscript`` / ``allow_torchscript=True`` and a warning; a pickled module, foreign
or damaged files and torch older than 2.6 are refused with one line of otgrid's own words: no
ANSI escape codes, no advice to turn ``weights_only`` off.
"""

from __future__ import annotations

import builtins
import os
import pickle
import warnings
import zipfile

import pytest

torch = pytest.importorskip("torch")

from otgrid.auditing.baselines import make_critic  # noqa: E402
from otgrid.cli.audit import _is_torchscript, load_critic  # noqa: E402
from otgrid.cli.common import _UsageError  # noqa: E402
from otgrid.cli.main import main  # noqa: E402

pytestmark = [pytest.mark.filterwarnings("ignore::otgrid.errors.OutsideMassWarning"),
              pytest.mark.filterwarnings("ignore::DeprecationWarning")]  # torch.jit >= 2.9

PAIR = ["--mu", "normal(0, 1)", "--nu", "normal(1, 1)", "--bounds", "-5", "6", "--shape", "64",
        "--samples", "100", "--no-figure"]
MODULE_MESSAGE = ("is a pickled torch module, which otgrid does not load (it could run code): "
                  "save its state_dict() instead: torch.save(net.state_dict(), path)")


class _Wrapper(torch.nn.Module):
    """A user's own module class around a critic (pickled by reference to this test module)."""

    def __init__(self) -> None:
        super().__init__()
        self.net = make_critic(1, (8, 8), seed=0)


class _Planter:
    """Unpickling this object calls ``open(marker, "w")``: it creates the file ``marker``."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return builtins.open, (self.marker, "w")


@pytest.fixture
def net():
    return make_critic(1, (8, 8), seed=0)


def _write(kind: str, path, net) -> None:
    """Write a critic file of the given kind to ``path``."""
    if kind == "state_dict":
        torch.save(net.state_dict(), str(path))
    elif kind == "state_dict_legacy":
        torch.save(net.state_dict(), str(path), _use_new_zipfile_serialization=False)
    elif kind == "module":
        torch.save(net, str(path))
    elif kind == "module_legacy":
        torch.save(net, str(path), _use_new_zipfile_serialization=False)
    elif kind == "module_custom":
        torch.save(_Wrapper(), str(path))
    elif kind == "torchscript":
        torch.jit.save(torch.jit.script(net), str(path))
    elif kind == "random":
        path.write_bytes(os.urandom(4096))
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "plain_pickle":
        path.write_bytes(pickle.dumps({"0.weight": [1.0]}))
    elif kind == "other_zip":
        with zipfile.ZipFile(path, "w") as z:
            z.writestr("critic/readme.txt", "not a critic")
    elif kind == "wrong_dimension":
        torch.save(make_critic(2, (4,), seed=0).state_dict(), str(path))
    elif kind == "tensor":
        torch.save(torch.zeros(3), str(path))
    elif kind == "checkpoint":
        torch.save({"model": net.state_dict(), "epoch": 3}, str(path))
    elif kind == "directory":
        path.mkdir()
    elif kind != "missing":
        raise AssertionError(kind)


def _audit(capsys, path, *extra: str) -> tuple[int, str, str]:
    rc = main(["audit", str(path), *PAIR, *extra])
    cap = capsys.readouterr()
    return rc, cap.out, cap.err


def _assert_clean(out: str, err: str) -> None:
    """otgrid's own words only: no ANSI codes, no traceback, no advice to drop weights_only."""
    for text in (out, err):
        assert "\x1b[" not in text
        assert "weights_only=False" not in text and "Traceback" not in text


# --------------------------------------------------------------------------- refused files
@pytest.mark.parametrize(("kind", "words"), [
    ("module", [MODULE_MESSAGE]),
    ("module_legacy", [MODULE_MESSAGE]),
    ("module_custom", [MODULE_MESSAGE]),
    ("torchscript", ["is TorchScript, which runs code", "pass --torchscript if you trust"]),
    ("random", ["is not a torch file", "torch.save(net.state_dict(), path)"]),
    ("empty", ["is empty (0 bytes)"]),
    ("plain_pickle", ["is not a torch file"]),
    ("other_zip", ["is not a torch file"]),
    ("wrong_dimension", ["does not fit the distributions: it takes 2D points, MU and NU are 1D"]),
    ("tensor", ["holds a Tensor, not a state dict"]),
    ("checkpoint", ["entry 'model' is not a tensor (OrderedDict)", "own state dict"]),
    ("missing", ["no such file"]),
    ("directory", ["is a folder"]),
])
def test_refused_with_one_line(tmp_path, capsys, net, kind, words):
    path = tmp_path / "critic.pt"
    _write(kind, path, net)
    rc, out, err = _audit(capsys, path)
    assert rc == 2
    assert out == ""
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"otgrid: error: CRITIC {str(path)!r}")
    for w in words:
        assert w in lines[0]
    _assert_clean(out, err)


def test_wrong_widths_with_arch(tmp_path, capsys, net):
    path = tmp_path / "critic.pt"
    torch.save(net.state_dict(), str(path))
    rc, out, err = _audit(capsys, path, "--arch", "4,4")
    assert rc == 2 and len(err.splitlines()) == 1
    assert "does not fit a 1D ReLU MLP with hidden widths (4, 4): size mismatch for 0.weight" in err
    _assert_clean(out, err)


def test_pickled_code_does_not_run(tmp_path, capsys):
    """A file whose unpickling would create ``marker`` is refused without creating it."""
    marker = tmp_path / "planted"
    path = tmp_path / "critic.pt"
    torch.save({"0.weight": _Planter(str(marker))}, str(path))
    rc, out, err = _audit(capsys, path)
    assert rc == 2 and len(err.splitlines()) == 1
    assert "holds a pickled" in err and "open" in err and "could run code" in err
    assert not marker.exists()
    _assert_clean(out, err)
    with pytest.raises(_UsageError):
        load_critic(str(path), 1, allow_torchscript=True)
    assert not marker.exists()


# --------------------------------------------------------------------------- loaded files
@pytest.mark.parametrize("kind", ["state_dict", "state_dict_legacy"])
def test_state_dict_loads_without_warning(tmp_path, capsys, net, kind):
    path = tmp_path / "critic.pt"
    _write(kind, path, net)
    rc, out, err = _audit(capsys, path)
    assert rc == 0, err
    assert "w_ratio" in out
    assert "warning" not in err
    _assert_clean(out, err)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loaded = load_critic(str(path), 1)
    x = torch.linspace(-3, 3, 11).reshape(-1, 1)
    torch.testing.assert_close(loaded(x), net(x), rtol=0, atol=0)
    assert not loaded.training


def test_state_dicts_are_read_weights_only(tmp_path, monkeypatch, net):
    path = tmp_path / "critic.pt"
    torch.save(net.state_dict(), str(path))
    calls = []
    real_load = torch.load

    def spy(*args, **kwargs):
        calls.append(kwargs)
        return real_load(*args, **kwargs)

    monkeypatch.setattr(torch, "load", spy)
    load_critic(str(path), 1, allow_torchscript=True)
    assert [c.get("weights_only") for c in calls] == [True]


def test_torchscript_opt_in_loads_and_warns_once(tmp_path, capsys, net):
    path = tmp_path / "critic.pt"
    _write("torchscript", path, net)
    rc, out, err = _audit(capsys, path, "--torchscript")
    assert rc == 0, err
    assert "w_ratio" in out
    warned = [line for line in err.splitlines() if line.startswith("otgrid: warning:")]
    assert len(warned) == 1, err
    assert "TorchScript" in warned[0] and "runs the code" in warned[0]
    assert "files you trust" in warned[0]
    _assert_clean(out, err)


def test_load_critic_torchscript_parameter(tmp_path, net):
    path = tmp_path / "critic.pt"
    _write("torchscript", path, net)
    with pytest.raises(_UsageError, match="pass --torchscript if you trust the file"):
        load_critic(str(path), 1)
    with pytest.warns(UserWarning, match="runs the code it holds; load only files you trust"):
        loaded = load_critic(str(path), 1, allow_torchscript=True)
    x = torch.linspace(-3, 3, 11).reshape(-1, 1)
    torch.testing.assert_close(loaded(x), net(x), rtol=0, atol=0)


def test_torchscript_is_recognised_by_its_entries(tmp_path, net):
    """torch.jit.save writes ``code/`` and ``constants.pkl`` into the archive; torch.save (a
    state dict or a whole module) writes neither, though both write ``version``."""
    files = {}
    for kind in ("torchscript", "state_dict", "module"):
        files[kind] = tmp_path / f"{kind}.pt"
        _write(kind, files[kind], net)
    for kind, path in files.items():
        with zipfile.ZipFile(path) as z:
            rest = {n.split("/", 1)[1] for n in z.namelist()}
        assert "version" in rest
        assert ("constants.pkl" in rest) == (kind == "torchscript")
        assert any(r.startswith("code/") for r in rest) == (kind == "torchscript")
        assert _is_torchscript(path) == (kind == "torchscript")


# --------------------------------------------------------------------------- torch version
@pytest.mark.parametrize("version", ["2.5.1", "2.5.1+cu121", "2.1.0", "1.13.1", "unknown"])
def test_old_torch_refused(tmp_path, capsys, monkeypatch, net, version):
    path = tmp_path / "critic.pt"
    torch.save(net.state_dict(), str(path))
    monkeypatch.setattr(torch, "__version__", version)
    rc, out, err = _audit(capsys, path)
    assert rc == 2
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert "needs torch >= 2.6" in lines[0] and f"torch {version} is installed" in lines[0]
    assert "CVE-2025-32434" in lines[0]
    _assert_clean(out, err)


@pytest.mark.parametrize("version", ["2.6.0", "2.10.1+cpu", "2.13.0"])
def test_recent_torch_accepted(tmp_path, monkeypatch, net, version):
    path = tmp_path / "critic.pt"
    torch.save(net.state_dict(), str(path))
    monkeypatch.setattr(torch, "__version__", version)
    assert load_critic(str(path), 1) is not None


def test_help_documents_the_rules(capsys):
    assert main(["audit", "--help"]) == 0
    out = capsys.readouterr().out
    assert "--torchscript" in out and "weights_only=True" in out
    assert "torch.save(net.state_dict(), path)" in out
