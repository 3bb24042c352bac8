"""No import circles inside `service/`: each module's imports, function-level ones included, form a DAG.

A lazy import inside a function hides a circle from Python but not from a reader: protocol, feedback
and analytics once imported one another that way. The card log (service/card_log.py), the runtime
accessor (service/runtime.py) and the JSON helpers (service/http_json.py) sit below all three now.
"""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = "service"


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path, modules: set[str]) -> set[str]:
    """The package's own modules that `path` imports anywhere in its body (TYPE_CHECKING blocks too)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            # `from service import x` names the submodule x when there is one, else the package.
            names = [f"{node.module}.{alias.name}" if f"{node.module}.{alias.name}" in modules else node.module
                     for alias in node.names]
        else:
            continue
        found.update(name for name in names if name in modules)
    return found


def import_graph() -> dict[str, set[str]]:
    files = {module_name(path): path for path in (ROOT / PACKAGE).rglob("*.py") if "migrations" not in path.parts}
    modules = set(files)
    # A package's __init__ runs before any of its submodules: importing `service.x` imports `service`
    # too, but that edge is Python's, not the code's choice, so it is left out.
    return {name: imports_of(path, modules) - {name} for name, path in files.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    found, state, stack = [], {}, []

    def visit(node: str) -> None:
        state[node] = "open"
        stack.append(node)
        for target in sorted(graph[node]):
            if state.get(target) == "open":
                found.append([*stack[stack.index(target):], target])
            elif target not in state:
                visit(target)
        stack.pop()
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node)
    return found


def test_the_checker_finds_a_circle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c", "a"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_service_modules_import_one_another_without_a_circle():
    graph = import_graph()
    assert {"service.protocol", "service.feedback", "service.analytics", "service.card_log"} <= set(graph)
    assert "service.card_log" in graph["service.feedback"] and "service.card_log" in graph["service.analytics"]
    # The package's own __init__ (the app factory) sits on top; submodules never import it.
    importers_of_factory = sorted(name for name, targets in graph.items() if "service" in targets)
    found = cycles({name: targets - {"service"} for name, targets in graph.items()})
    assert not found, "import circles: " + "; ".join(" -> ".join(cycle) for cycle in found)
    assert importers_of_factory == ["service.cli", "service.wsgi"], importers_of_factory
