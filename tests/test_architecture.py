"""The shape of the package: no import cycles, dependencies pointing one way, short functions.

The import graph is read from the source (every ``import`` statement, those inside functions and
``if TYPE_CHECKING:`` blocks included), not from what happens to be imported at run time. The
layers, from the bottom:

0. shared helpers (``otgrid.errors``, ``otgrid._device``, ``_validation``, ``_threads``,
   ``_units``, ``_version``) and the kernels (``otgrid.kernels``: pure array code, no other
   otgrid import);
1. ``otgrid.grid``;
2. ``otgrid.critic`` and ``otgrid.pointcloud``;
3. ``otgrid.sco`` and ``otgrid.auditing``;
4. ``otgrid.plot`` (every figure, gathered from the capabilities);
5. ``otgrid.explore`` (the interactive explorer, over everything below);
6. ``otgrid.cli``;
7. the package itself, ``python -m otgrid`` and the 0.1.0 import paths.

A module may import from its own capability and from lower layers only; two capabilities of one
layer do not import each other.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "otgrid"
KERNELS = ROOT / "kernels"
# functions longer than this (lines of code: docstrings, comments and blank lines not counted)
# should be split into named phases; kernels/ is exempt (hot loops stay whole)
MAX_FUNCTION_LINES = 120

CAPABILITY_LAYER = {"grid": 1, "critic": 2, "pointcloud": 2, "sco": 3, "auditing": 3, "plot": 4,
                    "distributed": 4, "explore": 5, "cli": 6}
SHARED = {"otgrid.errors", "otgrid._device", "otgrid._validation", "otgrid._threads",
          "otgrid._units", "otgrid._version"}


def _module_files() -> dict[str, Path]:
    """Dotted module name -> source file, for the package and the kernels."""
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    for path in KERNELS.glob("*.py"):
        name = "otgrid.kernels" if path.stem == "__init__" else f"otgrid.kernels.{path.stem}"
        out[name] = path
    return out


MODULES = _module_files()


def _imports(name: str, path: Path) -> list[tuple[str, list[str], int]]:
    """``(target module, imported names, line)`` for every otgrid import in ``path``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    is_pkg = path.name == "__init__.py"
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(a.name, [], node.lineno) for a in node.names if a.name.startswith("otgrid")]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = name.split(".") if is_pkg else name.split(".")[:-1]
                parent = parent[:len(parent) - node.level + 1]
                base = ".".join(parent + ([base] if base else []))
            if not base.startswith("otgrid"):
                continue
            names = [a.name for a in node.names]
            sub = [f"{base}.{n}" for n in names if f"{base}.{n}" in MODULES]
            rest = [n for n in names if f"{base}.{n}" not in MODULES]
            out += [(s, [], node.lineno) for s in sub]
            if rest:
                out.append((base, rest, node.lineno))
    return out


GRAPH = {name: _imports(name, path) for name, path in MODULES.items()}


def _layer(module: str) -> tuple[int, str]:
    """``(layer, capability)`` of a module."""
    parts = module.split(".")
    if module in SHARED or parts[:2] == ["otgrid", "kernels"]:
        return 0, "shared"
    if len(parts) > 1 and parts[1] in CAPABILITY_LAYER:
        return CAPABILITY_LAYER[parts[1]], parts[1]
    return 7, "top"


def test_every_otgrid_import_names_a_module_of_the_package():
    for name, edges in GRAPH.items():
        for target, _, line in edges:
            assert target in MODULES, f"{MODULES[name]}:{line} imports {target}: no such module"


def test_no_import_cycles():
    """Tarjan's strongly connected components of the module graph are all single modules."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w, _, _ in GRAPH[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1 or any(t == v for t, _, _ in GRAPH[v]):
                cycles.append(sorted(comp))

    for v in sorted(GRAPH):
        if v not in index:
            visit(v)
    assert not cycles, f"import cycles: {cycles}"


def test_the_cycle_check_finds_a_cycle(tmp_path, monkeypatch):
    """The check above is not vacuous: a planted two-module cycle is reported."""
    a, b = tmp_path / "a.py", tmp_path / "b.py"
    a.write_text("from otgrid.grid import b\n")
    b.write_text("def f():\n    import otgrid.grid.a\n")
    planted = {"otgrid.grid.a": a, "otgrid.grid.b": b}
    monkeypatch.setattr(f"{__name__}.MODULES", {**MODULES, **planted})
    graph = {**GRAPH, **{n: _imports(n, p) for n, p in planted.items()}}
    monkeypatch.setattr(f"{__name__}.GRAPH", graph)
    with pytest.raises(AssertionError, match=r"otgrid\.grid\.a"):
        test_no_import_cycles()


def test_dependencies_point_down_the_layers():
    bad = []
    for name, edges in GRAPH.items():
        layer, cap = _layer(name)
        for target, _, line in edges:
            t_layer, t_cap = _layer(target)
            if t_cap == cap:
                continue
            if t_layer >= layer:
                bad.append(f"{MODULES[name].relative_to(ROOT)}:{line} ({cap}) imports {target} "
                           f"({t_cap})")
    assert not bad, "imports against the layering:\n" + "\n".join(bad)


def test_kernels_import_nothing_from_otgrid():
    for name, edges in GRAPH.items():
        if name.startswith("otgrid.kernels"):
            assert all(t.startswith("otgrid.kernels") for t, _, _ in edges), name


def test_imported_names_exist():
    """``from otgrid.x import name``: ``name`` is defined in ``otgrid.x`` (moved code leaves no
    stale import behind, also in functions that the suite may not call)."""
    has_torch = importlib.util.find_spec("torch") is not None
    missing = []
    for name, edges in GRAPH.items():
        for target, names, line in edges:
            if not names:
                continue
            try:
                mod = importlib.import_module(target)
            except ImportError:
                if has_torch:
                    raise
                continue  # a torch module without torch
            missing += [f"{MODULES[name].relative_to(ROOT)}:{line}: {target}.{n}"
                        for n in names if not hasattr(mod, n)]
    assert not missing, "imported names that do not exist:\n" + "\n".join(missing)


def _code_lines(lines: list[str], node: ast.AST) -> int:
    skip = set()
    body = node.body
    if (body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)
            and isinstance(body[0].value.value, str)):
        skip = set(range(body[0].lineno, body[0].end_lineno + 1))
    return sum(1 for i in range(node.lineno, node.end_lineno + 1)
               if i not in skip and lines[i - 1].strip()
               and not lines[i - 1].strip().startswith("#"))


def test_functions_read_as_phases():
    """No function outside the kernels is longer than MAX_FUNCTION_LINES lines of code."""
    long = []
    for path in PACKAGE.rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        lines = text.splitlines()
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = _code_lines(lines, node)
                if n > MAX_FUNCTION_LINES:
                    long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name}: {n} lines")
    assert not long, "functions to split into named phases:\n" + "\n".join(long)
