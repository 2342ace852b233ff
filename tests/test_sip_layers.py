"""The SIP stack is layered as PJSIP's: the endpoint knows nothing of calls or registrations, the INVITE
session and registration are its clients, the call leg and the user agent sit on top. Checked on the source
with ``ast`` (imports point only downward, no cycle) and by importing each module alone in a fresh interpreter."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Lower layers first; a module may import only modules of a lower layer (and telephony outside these).
LAYERS = [
    {"telephony.sip.message", "telephony.sip.auth"},
    {"telephony.sip.transport", "telephony.sip.transaction", "telephony.sip.dialog"},
    {"telephony.sip.endpoint"},
    {"telephony.sip.invite", "telephony.sip.registration"},
    {"telephony.call"},
    {"telephony.sip.ua"},
    {"telephony.server"},
]
RANK = {module: rank for rank, layer in enumerate(LAYERS) for module in layer}


def module_path(module: str) -> Path:
    return ROOT / (module.replace(".", "/") + ".py")


def imports(module: str, for_type_checkers: bool = True) -> set[str]:
    """The telephony modules ``module`` imports (at the top or inside functions); without
    ``for_type_checkers`` only those it imports when it runs (not under ``if TYPE_CHECKING:``)."""
    tree = ast.parse(module_path(module).read_text(), str(module_path(module)))
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if not for_type_checkers and isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for stmt in node.orelse:
                visit(stmt)
            return
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return {name for name in found if name.startswith("telephony.") and module_path(name).exists()}


def test_sip_modules_import_only_downward() -> None:
    """Not even for type annotations: a layer that names the one above it is coupled to it."""
    wrong = []
    for module, rank in RANK.items():
        for imported in imports(module):
            if imported in RANK and RANK[imported] >= rank:
                wrong.append(f"{module} imports {imported}")
    assert wrong == []


def test_endpoint_knows_nothing_of_calls_and_the_session_nothing_of_rtp() -> None:
    assert not {m for m in imports("telephony.sip.endpoint") if m.startswith(("telephony.rtp", "telephony.sdp"))}
    assert not {m for m in imports("telephony.sip.invite") if m.startswith("telephony.rtp")}
    assert "telephony.call" not in imports("telephony.bridge", for_type_checkers=False)


def test_no_import_cycle_in_telephony() -> None:
    modules = {".".join(p.relative_to(ROOT).with_suffix("").parts) for p in (ROOT / "telephony").rglob("*.py")}
    graph = {m: imports(m, for_type_checkers=False) & modules for m in modules}
    done: set[str] = set()

    def walk(module: str, path: list[str]) -> None:
        if module in path:
            raise AssertionError("import cycle: " + " -> ".join(path[path.index(module):] + [module]))
        if module in done:
            return
        for imported in sorted(graph[module]):
            walk(imported, path + [module])
        done.add(module)

    for module in sorted(graph):
        walk(module, [])


def test_each_module_imports_alone() -> None:
    modules = sorted(RANK) + ["telephony.bridge"]
    code = "import importlib, sys\nimportlib.import_module(sys.argv[1])"
    for module in modules:
        result = subprocess.run([sys.executable, "-c", code, module], capture_output=True, text=True, cwd=ROOT,
                                timeout=120)
        assert result.returncode == 0, f"{module}: {result.stderr[-2000:]}"
