"""Packaging and documentation checks: what a user gets after ``pip install``."""

from __future__ import annotations

import doctest
import importlib
import importlib.metadata
import importlib.resources
import inspect
import pkgutil
import warnings

import pytest

import otgrid


def test_version_matches_distribution_metadata():
    assert otgrid.__version__ == importlib.metadata.version("otgrid")


def test_kernels_are_installed_inside_the_package():
    import otgrid.kernels
    import otgrid.kernels.grid_numba
    import otgrid.kernels.interp_numba

    assert otgrid.kernels.__name__ == "otgrid.kernels"
    files = {p.name for p in importlib.resources.files("otgrid.kernels").iterdir()}
    assert {"grid_numba.py", "interp_numba.py"} <= files
    assert importlib.resources.files("otgrid").joinpath("py.typed").is_file()


def test_public_names_exist_and_are_documented():
    for name in otgrid.__all__:
        obj = getattr(otgrid, name)
        if inspect.isfunction(obj) or inspect.isclass(obj):
            doc = inspect.getdoc(obj) or ""
            assert len(doc) > 40, f"otgrid.{name} needs a docstring"


def _modules():
    names = ["otgrid"]
    for pkg in (otgrid, importlib.import_module("otgrid.kernels")):
        names += [f"{pkg.__name__}.{m.name}" for m in pkgutil.iter_modules(pkg.__path__)
                  if m.name != "__main__"]
    return names


# modules that need the optional torch extra
TORCH_MODULES = {"otgrid.baselines", "otgrid.baselines_gan", "otgrid.generators_torch"}


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
