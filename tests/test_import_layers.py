"""The import graph of lmlab (DESIGN.md, "Data flows one way"): no circles, no upward imports.

Parsed with ``ast`` (nothing is imported), function-level imports included; imports
under ``if TYPE_CHECKING:`` are annotations only and are left out, as import-linter does.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "src" / "lmlab"

# Family folders and stages, and what each may never import. Orchestration (cli, recipes/) is
# above all of them.
FORBIDDEN = {
    "lmlab.models": ("lmlab.cli", "lmlab.recipes", "lmlab.tasks", "lmlab.train", "lmlab.objectives",
                     "lmlab.data", "lmlab.eval", "lmlab.report", "lmlab.interop", "lmlab.ngram",
                     "lmlab.embeddings"),
    "lmlab.nn": ("lmlab.cli", "lmlab.recipes", "lmlab.tasks", "lmlab.train", "lmlab.objectives",
                 "lmlab.models", "lmlab.data", "lmlab.eval", "lmlab.report", "lmlab.interop"),
    "lmlab.objectives": ("lmlab.cli", "lmlab.recipes", "lmlab.tasks", "lmlab.train", "lmlab.models",
                         "lmlab.report", "lmlab.interop"),
    "lmlab.train": ("lmlab.cli", "lmlab.recipes", "lmlab.tasks", "lmlab.objectives", "lmlab.models",
                    "lmlab.report", "lmlab.interop", "lmlab.ngram", "lmlab.embeddings"),
    "lmlab.ngram": ("lmlab.cli", "lmlab.recipes", "lmlab.tasks", "lmlab.train", "lmlab.data",
                    "lmlab.models", "lmlab.objectives"),
    "lmlab.data": ("lmlab.cli", "lmlab.recipes", "lmlab.tasks", "lmlab.train", "lmlab.models",
                   "lmlab.objectives", "lmlab.ngram", "lmlab.embeddings", "lmlab.report"),
    "lmlab.tasks": ("lmlab.cli", "lmlab.recipes"),
    "lmlab.eval": ("lmlab.cli", "lmlab.recipes", "lmlab.tasks", "lmlab.train"),
    "lmlab.interop": ("lmlab.cli", "lmlab.recipes", "lmlab.tasks", "lmlab.train"),
    "lmlab.protocols": ("lmlab.",),
    "lmlab.errors": ("lmlab.",),
    "lmlab.io": ("lmlab.config", "lmlab.pretrained", "lmlab.registry", "lmlab.cli", "lmlab.models"),
    "lmlab.config": ("lmlab.pretrained", "lmlab.registry", "lmlab.cli", "lmlab.models"),
    "lmlab.pretrained": ("lmlab.cli", "lmlab.recipes", "lmlab.models", "lmlab.train", "lmlab.tasks"),
    # a table of strings: it imports only errors (and config, lazily); families are named, never imported
    "lmlab.registry": ("lmlab.cli", "lmlab.recipes", "lmlab.models", "lmlab.tasks", "lmlab.train", "lmlab.data",
                       "lmlab.ngram", "lmlab.embeddings", "lmlab.interop", "lmlab.pretrained"),
    "lmlab.report": ("lmlab.cli", "lmlab.recipes", "lmlab.tasks", "lmlab.train", "lmlab.models", "lmlab.objectives",
                     "lmlab.interop", "lmlab.ngram", "lmlab.embeddings", "lmlab.data"),
    "lmlab.recipes": ("lmlab.cli",),
}


def _module_name(path: Path) -> tuple[str, list[str]]:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
        return ".".join(parts), parts
    return ".".join(parts), parts[:-1]


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(tree: ast.AST, package: list[str]) -> set[str]:
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            if module.startswith("lmlab"):
                found.add(module)
                found.update(f"{module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith("lmlab"))
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def _graph() -> dict[str, set[str]]:
    raw = {}
    for path in ROOT.rglob("*.py"):
        name, package = _module_name(path)
        raw[name] = _imports(ast.parse(path.read_text(encoding="utf-8")), package)
    return {name: {d for d in deps if d in raw and d != name} for name, deps in raw.items()}


def _strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm (iterative): the components with more than one module."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components = []
    counter = 0
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            advanced = False
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                    advanced = True
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            if advanced:
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    components.append(sorted(component))
    return components


def _without_package_edges(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    """A package's ``__init__`` re-exporting its own modules is not a circle with them."""
    packages = {name for name in graph if (ROOT.parent / name.replace(".", "/") / "__init__.py").exists()}
    return {name: {d for d in deps if not (name in packages and d.startswith(name + "."))}
            for name, deps in graph.items()}


def test_no_import_circles():
    circles = _strongly_connected(_without_package_edges(_graph()))
    assert circles == [], f"import circles: {circles}"


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_no_upward_imports(layer):
    graph = _graph()
    bad = []
    for name, deps in sorted(graph.items()):
        if not (name == layer or name.startswith(layer + ".")):
            continue
        for dep in sorted(deps):
            if any(dep == f or dep.startswith(f if f.endswith(".") else f + ".") or dep == f.rstrip(".")
                   for f in FORBIDDEN[layer]):
                bad.append(f"{name} -> {dep}")
    assert bad == [], f"upward imports from {layer}: {bad}"


def test_the_graph_is_read():
    graph = _graph()
    assert "lmlab.train.trainer" in graph and "lmlab.train.checkpoint" in graph["lmlab.train.trainer"]
