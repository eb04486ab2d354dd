"""The code blocks of README.md and docs/*.rst, and the example commands of the ``--help`` texts.

Shared by ``tests/test_docs_examples.py`` (Python blocks) and ``tests/test_cli_examples.py``
(shell blocks and ``otgrid`` commands). Every code block is collected:

* Markdown: fenced blocks (```` ```python ````, ```` ```bash ````, ...);
* reStructuredText: ``.. code-block:: LANG`` directives and ``::`` literal blocks (taken as
  shell: commands, or a transcript when their lines start with ``$``). ``literalinclude``
  (the generated ``--help`` texts) is not a block of its own: the examples of the help texts
  are read from ``otgrid/cli/*.py``.

A block that is not meant to run says so where it is written, on the line just before it (blank
lines between allowed): ``.. not-run: REASON`` in reStructuredText (a comment, not rendered) or
``<!-- not-run: REASON -->`` in Markdown. Shell commands that install packages or run the test
suite or the docs build themselves (:data:`SETUP`) are recognised and not run.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

PYTHON = {"python", "py", "python3", "pycon"}
SHELL = {"bash", "sh", "shell", "console", "literal"}

# Shell commands recognised as set-up and not run by the tests: creating the virtual
# environment, installing packages (network, minutes), running the test suite itself, building
# this documentation (tests/test_docs.py builds it with the same sphinx options).
SETUP = {
    "venv": re.compile(r"^python3(\.\d+)? -m venv "),
    "pip install": re.compile(r"^(\S*/)?(pip|python3?(\.\d+)? -m pip) install "),
    "the test suite": re.compile(r"^(\S*/)?(pytest|python3? -m pytest)\b"),
    "the docs build": re.compile(r"^(\S*/)?(sphinx-build|python3? -m sphinx)\b"),
}
# `python demos/NAME.py` runs a demo: tests/test_demos.py runs every demo (fast sizes).
DEMO = re.compile(r"^(\w+=\S+ )*(\S*/)?python3? (demos/\w+\.py)( .*)?$")
OTGRID = re.compile(r"^(\S*/)?(otgrid|python3? -m otgrid)( |$)")

_NOT_RUN_RST = re.compile(r"^\s*\.\. not-run:\s*(\S.*)$")
_NOT_RUN_MD = re.compile(r"^\s*<!--\s*not-run:\s*(\S.*?)\s*-->\s*$")


@dataclass
class Block:
    """One code block: where it is, its language, its text, and why it is not run (if so)."""

    path: Path
    line: int                      # 1-based line of the block's first line of code
    lang: str                      # "python", "shell" or "transcript"
    text: str
    not_run: str | None = None
    commands: list[Command] = field(default_factory=list)

    @property
    def id(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


@dataclass
class Command:
    """One shell command of a block (continuation lines joined, ``&&`` chains split)."""

    text: str                      # the command, without its trailing comment
    comment: str                   # the trailing ``# ...`` comment ("" if none)
    kind: str                      # "otgrid", "demo", "setup: ...", or "shell"
    expected: str | None = None    # transcripts: the output shown after the command
    block: Block | None = None
    before: list[Command] = field(default_factory=list)   # runnable commands earlier in the block


def doc_sources() -> list[Path]:
    """README.md and every page of docs/ (generated pages excluded)."""
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.rst"))]


def _not_run(lines: list[str], start: int, pattern: re.Pattern) -> str | None:
    """The reason of a not-run marker on the last non-blank line before ``lines[start]``."""
    i = start - 1
    while i >= 0 and not lines[i].strip():
        i -= 1
    if i >= 0 and (m := pattern.match(lines[i])):
        return m.group(1)
    return None


def _markdown_blocks(path: Path) -> list[Block]:
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks, i = [], 0
    while i < len(lines):
        m = re.match(r"^(\s*)```(\w*)\s*$", lines[i])
        if not m:
            i += 1
            continue
        lang = m.group(2).lower() or "text"
        j = i + 1
        while j < len(lines) and not lines[j].strip().startswith("```"):
            j += 1
        text = "\n".join(lines[i + 1:j])
        blocks.append(Block(path, i + 2, _lang(lang, text), text,
                            _not_run(lines, i, _NOT_RUN_MD)))
        i = j + 1
    return blocks


def _indented_body(lines: list[str], i: int) -> tuple[int, str]:
    """The body indented under line ``i`` (a directive's options skipped): first line, text."""
    indent = len(lines[i]) - len(lines[i].lstrip())
    j = i + 1
    while j < len(lines) and (not lines[j].strip() or lines[j].lstrip().startswith(":")):
        j += 1
    start, body = j, []
    while j < len(lines) and (not lines[j].strip()
                              or len(lines[j]) - len(lines[j].lstrip()) > indent):
        body.append(lines[j])
        j += 1
    while body and not body[-1].strip():
        body.pop()
    width = min((len(b) - len(b.lstrip()) for b in body if b.strip()), default=0)
    return start + 1, "\n".join(b[width:] for b in body)


def _rst_blocks(path: Path) -> list[Block]:
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks = []
    for i, line in enumerate(lines):
        stripped = line.strip()
        m = re.match(r"^\.\. (code-block|code|sourcecode)::\s*(\w*)\s*$", stripped)
        if m:
            lang = m.group(2).lower() or "text"
        elif stripped.endswith("::") and not stripped.startswith(".."):
            lang = "literal"
        else:
            continue
        start, text = _indented_body(lines, i)
        if text.strip():
            blocks.append(Block(path, start, _lang(lang, text), text,
                                _not_run(lines, i, _NOT_RUN_RST)))
    return blocks


def _lang(lang: str, text: str) -> str:
    if lang in PYTHON:
        return "python"
    if lang in SHELL:
        if any(ln.startswith("$ ") for ln in text.splitlines()):
            return "transcript"
        return "shell"
    return lang


def _split_comment(line: str) -> tuple[str, str]:
    """A shell line without its trailing comment (a ``#`` outside quotes), and the comment."""
    quote = None
    for k, ch in enumerate(line):
        if quote:
            if ch == quote:
                quote = None
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (k == 0 or line[k - 1].isspace()):
            return line[:k].rstrip(), line[k + 1:].strip()
    return line.rstrip(), ""


def classify(text: str) -> str:
    """The kind of one shell command: "otgrid", "demo", "setup: WHAT" or "shell"."""
    for what, pattern in SETUP.items():
        if pattern.match(text):
            return f"setup: {what}"
    if OTGRID.match(text):
        return "otgrid"
    if DEMO.match(text):
        return "demo"
    return "shell"


def _commands(block: Block) -> list[Command]:
    """The commands of a shell block or a transcript, in order."""
    lines = block.text.splitlines()
    logical: list[tuple[str, str | None]] = []     # (command line, shown output)
    buf = ""
    for raw in lines:
        if block.lang == "transcript":
            if raw.startswith("$ "):
                logical.append((raw[2:], ""))
            elif logical:
                text, out = logical[-1]
                logical[-1] = (text, (out + "\n" + raw.strip()).strip())
            continue
        if raw.rstrip().endswith("\\"):
            buf += raw.rstrip()[:-1] + " "
            continue
        logical.append((buf + raw, None))
        buf = ""
    commands: list[Command] = []
    for line, expected in logical:
        text, comment = _split_comment(line.strip())
        if not text:
            continue
        for part in re.split(r"\s+&&\s+", text):
            cmd = Command(" ".join(part.split()) if "'" not in part and '"' not in part
                          else part.strip(), comment, classify(part.strip()), expected, block)
            cmd.before = [c for c in commands if c.kind == "shell"]
            commands.append(cmd)
    return commands


def collect_blocks() -> list[Block]:
    """Every code block of README.md and docs/*.rst, shell blocks split into commands."""
    blocks = []
    for path in doc_sources():
        found = _markdown_blocks(path) if path.suffix == ".md" else _rst_blocks(path)
        for block in found:
            if block.lang in ("shell", "transcript"):
                block.commands = _commands(block)
            blocks.append(block)
    return blocks


def help_examples() -> list[Command]:
    """The commands of the ``examples:`` sections of the help texts (otgrid/cli/*.py)."""
    commands = []
    for path in sorted((ROOT / "otgrid" / "cli").glob("*.py")):
        source = path.read_text(encoding="utf-8")
        for m in re.finditer(r'"""\\?\nexamples:\n(.*?)\n\n', source, re.DOTALL):
            line = source[:m.start(1)].count("\n") + 1
            text = m.group(1).replace("\\\\\n", "\\\n")
            block = Block(path, line, "shell", "\n".join(t.strip() for t in text.splitlines()))
            block.commands = _commands(block)
            commands.extend(block.commands)
    return commands
