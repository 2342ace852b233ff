"""The layering of the packages, checked on the source with ``ast`` (nothing is imported or run).

- ``dialogs/`` and ``audio/`` (pure libraries) import neither pipecat, ``telephony`` nor ``voicebot``;
- ``telephony/`` imports neither ``voicebot`` nor ``dialogs``;
- inside ``voicebot/``: ``storage`` imports neither ``voicebot.transfer`` nor ``voicebot.server``, and
  ``transfer`` does not import ``voicebot.server``.

Every import counts: module level, inside functions, ``importlib.import_module("...")`` / ``__import__("...")``
with a literal name, relative imports, and imports under ``if TYPE_CHECKING:`` too. A type-only import is not
a runtime dependency, but it still makes the lower layer's contract name a type of the upper one; the lower
layer declares a Protocol or dataclass instead, so the rule holds for types as well.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Rule:
    """Python files under ``folder`` (a package folder, or a module ``folder.py``) must not import ``banned``."""

    folder: str
    banned: tuple[str, ...]


@dataclass(frozen=True)
class Import:
    path: Path
    line: int
    module: str  # absolute dotted name; ``from a import b`` gives ``a.b``
    type_checking: bool


RULES = {
    "dialogs": Rule("dialogs", ("pipecat", "telephony", "voicebot")),
    "audio": Rule("audio", ("pipecat", "telephony", "voicebot")),
    "telephony": Rule("telephony", ("voicebot", "dialogs")),
    "storage": Rule("voicebot/storage", ("voicebot.transfer", "voicebot.server")),
    "transfer": Rule("voicebot/transfer", ("voicebot.server",)),
}


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


class _Imports(ast.NodeVisitor):
    def __init__(self, path: Path, package: str):
        self.path = path
        self.package = package  # dotted package the file belongs to, for relative imports
        self.found: list[Import] = []
        self._type_checking = 0

    def _add(self, node: ast.AST, module: str) -> None:
        self.found.append(Import(self.path, getattr(node, "lineno", 0), module, self._type_checking > 0))

    def _absolute(self, name: str, level: int) -> str:
        if not level:
            return name
        parts = self.package.split(".")
        base = parts[: len(parts) - (level - 1)] if level - 1 < len(parts) else []
        return ".".join([*base, name] if name else base)

    def visit_If(self, node: ast.If) -> None:
        if not _is_type_checking(node.test):
            self.generic_visit(node)
            return
        self._type_checking += 1
        for child in node.body:
            self.visit(child)
        self._type_checking -= 1
        for child in node.orelse:
            self.visit(child)

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self._add(node, alias.name)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        module = self._absolute(node.module or "", node.level)
        for alias in node.names:
            self._add(node, module if alias.name == "*" else f"{module}.{alias.name}".lstrip("."))

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
        if name in ("import_module", "__import__") and node.args:
            first = node.args[0]
            if isinstance(first, ast.Constant) and isinstance(first.value, str):
                target = first.value
                level = len(target) - len(target.lstrip("."))
                self._add(node, self._absolute(target[level:], level))
        self.generic_visit(node)


def files_of(root: Path, folder: str) -> list[Path]:
    """The Python files of ``folder`` under ``root``: the package folder's tree and/or the module ``folder.py``."""
    out = sorted((root / folder).rglob("*.py")) if (root / folder).is_dir() else []
    module = root / f"{folder}.py"
    return [module, *out] if module.is_file() else out


def imports_of(root: Path, path: Path) -> list[Import]:
    """Every import in the file ``path`` (under ``root``), in the order of the source."""
    parts = path.relative_to(root).with_suffix("").parts
    package = ".".join(parts if parts[-1] == "__init__" else parts[:-1]).removesuffix(".__init__")
    collector = _Imports(path, package)
    collector.visit(ast.parse(path.read_text(encoding="utf-8"), filename=str(path)))
    return collector.found


def violations(root: Path, rule: Rule) -> list[str]:
    """``file:line: imports X`` for each import under ``rule.folder`` of a banned module (or one inside it)."""
    out = []
    for path in files_of(root, rule.folder):
        for imp in imports_of(root, path):
            banned = next((b for b in rule.banned if imp.module == b or imp.module.startswith(b + ".")), None)
            if banned is not None:
                where = path.relative_to(root)
                note = " (under TYPE_CHECKING)" if imp.type_checking else ""
                out.append(f"{where}:{imp.line}: imports {imp.module}{note}; {rule.folder}/ may not import {banned}")
    return out


@pytest.mark.parametrize("name", ["dialogs", "audio", "telephony"])
def test_the_libraries_do_not_import_upward(name: str) -> None:
    rule = RULES[name]
    assert files_of(ROOT, rule.folder), f"no Python files under {rule.folder}/"
    found = violations(ROOT, rule)
    assert not found, "\n".join(found)


def test_storage_imports_neither_transfer_nor_server() -> None:
    found = violations(ROOT, RULES["storage"])
    assert not found, "\n".join(found)


def test_transfer_does_not_import_the_server() -> None:
    found = violations(ROOT, RULES["transfer"])
    assert not found, "\n".join(found)


def test_the_checker_names_every_kind_of_wrong_import(tmp_path: Path) -> None:
    def write(rel: str, text: str) -> None:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text, encoding="utf-8")

    write("audio/__init__.py", "")
    write("audio/good.py", "import numpy\nimport pipecatalog\nfrom audio.pcm import FRAME_MS\nfrom . import pcm\n")
    write("audio/bad.py", "\n".join([
        "from __future__ import annotations",
        "import importlib",
        "from typing import TYPE_CHECKING",
        "import pipecat.frames.frames",  # line 4
        "if TYPE_CHECKING:",
        "    from voicebot.server.app import create_app",  # line 6
        "def later():",
        "    from telephony import call",  # line 8
        "    return importlib.import_module('voicebot.live')",  # line 9
        "",
    ]))
    write("telephony/__init__.py", "")
    write("telephony/sip/__init__.py", "")
    write("telephony/sip/ua.py", "from audio.pcm import mix\nclass UA:\n    def turn(self):\n"
                                 "        from dialogs.engine import Turn\n")
    write("voicebot/storage/retention.py", "from voicebot import transfer\nfrom voicebot.storage import models\n"
                                           "from . import models as m\nfrom ..transfer.store import TransferRow\n"
                                           "from ..server import app\n")
    write("voicebot/transfer/__init__.py", "from voicebot.server.agent_phone import AgentPhone\n")

    assert violations(tmp_path, RULES["audio"]) == [
        "audio/bad.py:4: imports pipecat.frames.frames; audio/ may not import pipecat",
        "audio/bad.py:6: imports voicebot.server.app.create_app (under TYPE_CHECKING); audio/ may not import voicebot",
        "audio/bad.py:8: imports telephony.call; audio/ may not import telephony",
        "audio/bad.py:9: imports voicebot.live; audio/ may not import voicebot",
    ]
    assert violations(tmp_path, RULES["telephony"]) == [
        "telephony/sip/ua.py:4: imports dialogs.engine.Turn; telephony/ may not import dialogs",
    ]
    assert violations(tmp_path, RULES["storage"]) == [
        "voicebot/storage/retention.py:1: imports voicebot.transfer; voicebot/storage/ may not import voicebot.transfer",
        "voicebot/storage/retention.py:4: imports voicebot.transfer.store.TransferRow; "
        "voicebot/storage/ may not import voicebot.transfer",
        "voicebot/storage/retention.py:5: imports voicebot.server.app; voicebot/storage/ may not import voicebot.server",
    ]
    assert violations(tmp_path, RULES["transfer"]) == [
        "voicebot/transfer/__init__.py:1: imports voicebot.server.agent_phone.AgentPhone; "
        "voicebot/transfer/ may not import voicebot.server",
    ]
    assert violations(tmp_path, RULES["dialogs"]) == []  # no dialogs/ in this tree: nothing to break
