"""The rules of the house (DESIGN.md "Layout"), checked over the source: imports form a directed
graph without cycles; transports import ``app``, never each other; ``app`` imports no transport
but in the composition root, which alone registers lifetimes."""

from __future__ import annotations

import ast
import importlib
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("app", "rest", "sockets", "grpc_server")
TRANSPORTS = ("rest", "sockets", "grpc_server")
OURS = (*PACKAGES, "sql", "support_stubs")
COMPOSITION_ROOT = "app.server"


def _modules() -> dict[str, Path]:
    modules = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            modules[".".join(parts)] = path
    return modules


MODULES = _modules()


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    """Every import the module runs, at its top or inside functions (those count: an import
    inside a function is still an edge, and the usual way to hide a cycle), but not those only
    a type checker reads."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and _is_type_checking(node):
            yield from (n for child in node.orelse for n in _imports_in(child))
            continue
        yield from _imports_in(node)


def _imports_in(node: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    if isinstance(node, (ast.Import, ast.ImportFrom)):
        yield node
        return
    yield from _imports(node)


def _target(name: str) -> str | None:
    """The module of ours that ``name`` (a module or a name in one) refers to."""
    while name:
        if name in MODULES:
            return name
        name = name.rpartition(".")[0]
    return None


def _edges(module: str, path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    found: set[str] = set()
    for node in _imports(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            if node.level:  # relative: resolve against this module's package
                package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
                base = package[: len(package) - (node.level - 1)]
                prefix = ".".join(base + ([node.module] if node.module else []))
            else:
                prefix = node.module or ""
            names = [f"{prefix}.{alias.name}" for alias in node.names] + [prefix]
        for name in names:
            if name.split(".")[0] in OURS:
                target = _target(name)
                if target is not None and target != module:
                    found.add(target)
    return found


GRAPH = {module: _edges(module, path) for module, path in MODULES.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0

    def visit(node: str) -> None:
        nonlocal counter
        index[node] = low[node] = counter
        counter += 1
        stack.append(node)
        on_stack.add(node)
        for succ in graph.get(node, ()):
            if succ not in index:
                visit(succ)
                low[node] = min(low[node], low[succ])
            elif succ in on_stack:
                low[node] = min(low[node], index[succ])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def _top(module: str) -> str:
    return module.split(".")[0]


def test_the_imports_form_no_cycle() -> None:
    assert _cycles(GRAPH) == []


def test_the_cycle_check_finds_a_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_app_imports_no_transport_but_in_the_composition_root() -> None:
    offending = {
        module: sorted(t for t in targets if _top(t) in TRANSPORTS)
        for module, targets in GRAPH.items()
        if _top(module) == "app" and module != COMPOSITION_ROOT
    }
    assert {m: t for m, t in offending.items() if t} == {}


def test_no_transport_imports_another() -> None:
    offending = {
        module: sorted(t for t in targets if _top(t) in TRANSPORTS and _top(t) != _top(module))
        for module, targets in GRAPH.items()
        if _top(module) in TRANSPORTS
    }
    assert {m: t for m, t in offending.items() if t} == {}


def test_only_the_composition_root_registers_lifetimes() -> None:
    registering = []
    for module, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Attribute) and node.attr == "cleanup_ctx" and module != COMPOSITION_ROOT:
                registering.append(f"{module}:{node.lineno}")
    assert registering == []


AUDIT = "app.security.audit"


def test_only_the_change_helper_writes_audit_rows() -> None:
    """An audit row is written with its events (``audit.record_change``) or, for a peer's event
    stored as is, with that event (``audit.record_published``): no other module reaches the
    ``insert_audit`` query or the audit module's private row writer."""
    writing = []
    for module, path in MODULES.items():
        if module == AUDIT:
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Attribute) and node.attr in {"insert_audit", "_write_row"}:
                writing.append(f"{module}:{node.lineno}")
            if isinstance(node, ast.Name) and node.id == "insert_audit":
                writing.append(f"{module}:{node.lineno}")
    assert writing == []
    audit = importlib.import_module(AUDIT)
    assert hasattr(audit, "record_change") and not hasattr(audit, "record")  # the bare writer is private
