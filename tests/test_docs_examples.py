"""Every Python block of README.md and docs/*.rst runs, without a warning, and shows what it says.

The blocks of a page run in order in one namespace (a page builds on its earlier blocks), in a
temporary folder (the figures they write land there), with matplotlib's Agg backend and every
warning turned into an error. A statement whose comment starts with a value -- a Python literal,
optionally followed by ``:`` and words, e.g. ``f.lipschitz_constant   # 1.409: not 1-Lipschitz``
or ``res.converged   # True`` -- is checked against it, to the decimals shown (1.5 units of the
last place: the rounding of the value shown and that of another machine's arithmetic); a
``print(res)`` commented ``# W = 0.62 in [...]`` is checked against the W it prints. A block that
is not meant to run is marked ``.. not-run: REASON`` (Markdown: ``<!-- not-run: REASON -->``) on
the line before it (see ``doc_blocks.py``). The ``otgrid`` commands of the shell blocks run in
``tests/test_cli_examples.py``.
"""

from __future__ import annotations

import ast
import contextlib
import io
import re
import warnings
from pathlib import Path

import numpy as np
import pytest
from doc_blocks import ROOT, Block, collect_blocks

SLOW_PAGES = {"docs/sweeps.rst", "docs/audit.rst", "docs/tutorial.rst"}
W_PRINTED = re.compile(r"^W = (\d[0-9.eE+-]*) in \[")
_LITERALS = {"__builtins__": {}, "array": np.array, "nan": np.nan, "inf": np.inf}


def _pages() -> dict[str, list[Block]]:
    pages: dict[str, list[Block]] = {}
    for block in collect_blocks():
        if block.lang == "python" and not block.not_run:
            pages.setdefault(str(block.path.relative_to(ROOT)), []).append(block)
    return pages


def _shown_value(comment: str) -> tuple[object, int] | None:
    """The value a comment starts with, and its number of decimals (None if it shows none)."""
    for text in (comment, comment.split(":", 1)[0]):
        try:
            value = eval(text, _LITERALS)
        except Exception:
            continue
        if isinstance(value, (bool, int, float, tuple, list, np.ndarray)):
            decimals = max((len(d) for d in re.findall(r"\.(\d+)", text)), default=0)
            return value, decimals
    return None


def _assert_shown(value: object, shown: object, decimals: int, where: str) -> None:
    if isinstance(shown, bool) or isinstance(value, bool):
        assert value is shown or value == shown, f"{where}: {value!r}, the page shows {shown!r}"
        return
    got = np.asarray(value, dtype=object if isinstance(shown, tuple) else None)
    if isinstance(shown, tuple):
        assert len(value) == len(shown), f"{where}: {value!r}, the page shows {shown!r}"
        for v, s in zip(value, shown, strict=True):
            _assert_shown(v, s, decimals, where)
        return
    np.testing.assert_allclose(np.asarray(got, dtype=float), np.asarray(shown, dtype=float),
                               rtol=0, atol=1.5 * 10.0 ** -decimals if decimals else 0,
                               err_msg=f"{where}: the value differs from the one the page shows")


def _comment(lines: list[str], node: ast.stmt) -> str:
    """The comment after a statement, on its last line or alone on the next line."""
    line = lines[node.end_lineno - 1]
    m = re.search(r"#\s*(.*)$", line)
    if m and "#" not in line[:node.end_col_offset]:
        return m.group(1).strip()
    following = lines[node.end_lineno].strip() if node.end_lineno < len(lines) else ""
    return following[1:].strip() if following.startswith("#") else ""


def _run_block(block: Block, namespace: dict) -> None:
    lines = block.text.splitlines()
    tree = ast.parse(block.text, filename=block.id)
    for node in tree.body:
        where = f"{block.path.relative_to(ROOT)}:{block.line + node.lineno - 1}"
        comment = _comment(lines, node)
        shown = _shown_value(comment) if comment else None
        printed = W_PRINTED.match(comment)
        if isinstance(node, ast.Expr) and (shown or printed):
            code = compile(ast.Expression(node.value), where, "eval")
            out = io.StringIO()
            with contextlib.redirect_stdout(out):
                value = eval(code, namespace)
            if printed:
                w = float(W_PRINTED.match(out.getvalue()).group(1))
                stated = float(printed.group(1))
                assert abs(w - stated) <= 2e-4 * stated, f"{where}: W = {w}, shown {stated}"
            if shown and not printed:
                _assert_shown(value if out.getvalue() == "" else eval(
                    out.getvalue(), _LITERALS), *shown, where)
        else:
            exec(compile(ast.Module([node], []), where, "exec"), namespace)


def _params():
    return [pytest.param(page, blocks, id=page,
                         marks=[pytest.mark.slow] if page in SLOW_PAGES else [])
            for page, blocks in _pages().items()]


@pytest.mark.parametrize(("page", "blocks"), _params())
def test_python_blocks_run_without_warnings(page, blocks, tmp_path, monkeypatch):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": "__main__"}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            for block in blocks:
                _run_block(block, namespace)
    finally:
        plt.close("all")
        client = namespace.get("client")
        if client is not None and hasattr(client, "close"):
            client.close()
        cluster = namespace.get("cluster")
        if cluster is not None and hasattr(cluster, "close"):
            cluster.close()


def test_every_code_block_is_python_shell_or_marked():
    """A block of another language would run nowhere: it must be marked not-run."""
    for block in collect_blocks():
        assert block.lang in ("python", "shell", "transcript") or block.not_run, (
            f"{block.id}: a {block.lang!r} block that no test runs; mark it not-run")
    assert "README.md" in _pages() and "docs/tutorial.rst" in _pages()


def test_the_docs_build_command_is_the_same_everywhere():
    """README and install.rst give one docs-build command, with the virtual environment's paths
    (no activated environment needed); tests/test_docs.py builds with the same options."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    install = (ROOT / "docs" / "install.rst").read_text(encoding="utf-8")
    command = re.search(r"`(\.venv/bin/pip install -q -e \"\.\[docs\]\" && "
                        r"\.venv/bin/python -m sphinx [^`]+)`", readme)
    assert command, "README: no docs-build command with .venv/bin/ paths"
    block = next(b for b in collect_blocks() if b.path.name == "install.rst"
                 and "sphinx" in b.text)
    assert block.text.strip() == command.group(1), (block.text, command.group(1))
    assert "-W --keep-going -b html docs docs/_build/html" in command.group(1)
    assert "sphinx-build" not in readme and "sphinx-build" not in install
    assert "-W" in Path(ROOT / "tests" / "test_docs.py").read_text()


def test_pages_do_not_cite_internal_issue_numbers():
    """The README, the docs and the benchmark pages they include speak to users: no "issue 3"
    (the tracker's numbers mean nothing outside it)."""
    pages = [*[p for p in (ROOT / "docs").glob("*.rst")], ROOT / "README.md",
             *(ROOT / "benchmarks" / "results").glob("*.md")]
    for page in pages:
        for n, line in enumerate(page.read_text(encoding="utf-8").splitlines(), 1):
            assert not re.search(r"\bissues? #?\d+", line, re.IGNORECASE), \
                f"{page.relative_to(ROOT)}:{n}: {line}"
