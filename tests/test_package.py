"""Packaging and documentation checks: what a user gets after ``pip install``."""

from __future__ import annotations

import doctest
import importlib
import importlib.metadata
import importlib.resources
import inspect
import pkgutil
import warnings
from pathlib import Path

import pytest

import otgrid


def test_version_matches_distribution_metadata():
    assert otgrid.__version__ == importlib.metadata.version("otgrid")


def test_kernels_are_installed_inside_the_package():
    import otgrid.kernels
    import otgrid.kernels.critic_numba
    import otgrid.kernels.interp_numba

    assert otgrid.kernels.__name__ == "otgrid.kernels"
    files = {p.name for p in importlib.resources.files("otgrid.kernels").iterdir()}
    assert {"critic_numba.py", "interp_numba.py", "pointcloud_numba.py"} <= files
    for sub in ("grid", "critic", "pointcloud", "sco", "auditing", "cli"):
        assert importlib.resources.files(f"otgrid.{sub}").joinpath("__init__.py").is_file()
    assert importlib.resources.files("otgrid").joinpath("py.typed").is_file()


def test_public_names_exist_and_are_documented():
    for name in otgrid.__all__:
        obj = getattr(otgrid, name)
        if inspect.isfunction(obj) or inspect.isclass(obj):
            doc = inspect.getdoc(obj) or ""
            assert len(doc) > 40, f"otgrid.{name} needs a docstring"


def _modules():
    """Every module of the package, subpackages included, under its own name (the 0.1.0 import
    paths, which are the same module objects under another name, are left out)."""
    names = ["otgrid"]
    for m in pkgutil.walk_packages(otgrid.__path__, prefix="otgrid."):
        if m.name.endswith("__main__") or m.name in COMPAT_PATHS:
            continue
        names.append(m.name)
    return names


# the import paths of otgrid 0.1.0 kept working (CHANGELOG.md), and the modules they are now
COMPAT_PATHS = {
    "otgrid.distributions": "otgrid.grid.distributions",
    "otgrid.datasets": "otgrid.grid.datasets",
    "otgrid.interp": "otgrid.grid.interp",
    "otgrid.backends": "otgrid.critic.backends",
    "otgrid.backends_cuda": "otgrid.critic.backend_cuda",
    "otgrid.regularized": "otgrid.pointcloud",
    "otgrid.sco_smoothed": "otgrid.sco.smoothed",
    "otgrid.generators": "otgrid.sco.generators",
    "otgrid.generators_torch": "otgrid.sco.generators_torch",
    "otgrid.critic_audit": "otgrid.auditing",
    "otgrid.audit_plot": "otgrid.auditing.plot",
    "otgrid.baselines": "otgrid.auditing.baselines",
    "otgrid.baselines_gan": "otgrid.auditing.gan",
}
# modules that need the optional torch extra
TORCH_MODULES = {"otgrid.auditing.baselines", "otgrid.auditing.gan",
                 "otgrid.sco.generators_torch", "otgrid.baselines", "otgrid.baselines_gan",
                 "otgrid.generators_torch"}


@pytest.mark.parametrize("old", sorted(COMPAT_PATHS))
def test_the_import_paths_of_0_1_0_still_work(old):
    """``import otgrid.<old>`` gives the module that now holds the code, whole."""
    if old in TORCH_MODULES:
        pytest.importorskip("torch", reason=f"{old} needs the 'torch' extra")
    mod = importlib.import_module(old)
    assert mod is importlib.import_module(COMPAT_PATHS[old])
    assert getattr(otgrid, old.split(".")[1]) is mod


def test_the_0_1_0_names_are_still_there():
    """What the 0.1.0 modules exported is still importable from their old paths."""
    import otgrid.cli
    from otgrid.backends import PARALLEL_MIN_CELLS, GridKernels, make_kernels  # noqa: F401
    from otgrid.critic import CheckInfo, CriticResult, SolveHistory, solve_critic  # noqa: F401
    from otgrid.critic_audit import AuditReport, audit  # noqa: F401
    from otgrid.grid import Grid  # noqa: F401
    from otgrid.plot import plot_critic, plot_sco, save_figure  # noqa: F401
    from otgrid.regularized import (  # noqa: F401
        RegularizedHistory,
        RegularizedInfo,
        RegularizedResult,
        sinkhorn,
        smooth_ot,
    )
    from otgrid.sco import SCOResult, SCOStep, WassersteinProx, fit, sco_gradient  # noqa: F401
    from otgrid.sco_smoothed import fit_smoothed, smoothed_gradient  # noqa: F401

    assert callable(otgrid.cli.main)


@pytest.mark.parametrize("modname", _modules())
def test_docstring_examples_run(modname):
    """Every ``Examples`` section in the package runs and prints what it says."""
    if modname in TORCH_MODULES:
        pytest.importorskip("torch", reason=f"{modname} needs the 'torch' extra")
    mod = importlib.import_module(modname)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = doctest.testmod(mod, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0, f"{result.failed} doctest(s) failed in {modname}"


def test_every_subpackage_is_listed_for_the_wheel():
    """``pyproject.toml`` lists the packages explicitly (``kernels/`` is mapped to
    ``otgrid.kernels``): a subpackage missing there would be absent from a non-editable install
    while every editable test still passed."""
    tomllib = pytest.importorskip("tomllib")
    root = Path(__file__).resolve().parents[1]
    listed = set(tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"][
        "packages"])
    on_disk = {"otgrid.kernels"} | {
        ".".join(p.parent.relative_to(root).parts) for p in (root / "otgrid").rglob("__init__.py")}
    assert listed == on_disk
