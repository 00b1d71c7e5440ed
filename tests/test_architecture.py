"""The package's layout as rules: a root that reads as a table of contents, no import cycle of any
length, and imports that follow the data flow (DESIGN.md) as allow-lists.

Every import is parsed with ``ast`` from every module, wherever it stands: module level, inside
functions, under ``if TYPE_CHECKING:``. ``from . import name`` counts as importing the submodule
``name`` when there is one, else the package's ``__init__`` (so ``from . import __version__``
is an edge to the package root, which imports everything).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import deepfake_attention

PACKAGE = "deepfake_attention"
ROOT = Path(deepfake_attention.__file__).resolve().parent
LEAVES = {"version", "files", "crops"}
"""Small modules of shared constants, types and file helpers that import nothing of the package."""
ALLOWED = {
    "data": {"data"} | LEAVES,
    "model": {"model"} | LEAVES,
    "explain": {"explain", "model"} | LEAVES,
    "metrics": {"metrics"} | LEAVES,
    "device": set(),
    "checkpoint": {"checkpoint", "data", "model"} | LEAVES,
}
"""Component -> the only components it may import (a component is a root module or a sub-package)."""
FORBIDDEN = {
    "train": {"analysis", "evaluation", "service", "cli", "recipe", "interop", "demo"},
}
SERVICE_ALLOWED = {"service", "analysis", "detector", "checkpoint", "device", "data.media"} | LEAVES
"""The web service goes through the same analysis functions as ``analyze``: it may not reach into
faces, transforms or renderers itself."""
MAX_ROOT_MODULES = 8


def _modules() -> dict[str, tuple[Path, bool]]:
    found = {}
    for path in ROOT.rglob("*.py"):
        parts = [PACKAGE, *path.relative_to(ROOT).with_suffix("").parts]
        is_package = parts[-1] == "__init__"
        found[".".join(parts[:-1] if is_package else parts)] = (path, is_package)
    return found


MODULES = _modules()


def _imports(name: str) -> set[str]:
    """The package's modules that module ``name`` imports, anywhere in its source."""
    path, is_package = MODULES[name]
    base = name if is_package else name.rsplit(".", 1)[0]
    targets: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets.update(alias.name for alias in node.names if alias.name in MODULES)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = base.split(".")
                module = ".".join(parts[: len(parts) - node.level + 1] + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            if module.split(".")[0] != PACKAGE:
                continue
            for alias in node.names:
                sub = f"{module}.{alias.name}"
                targets.add(sub if sub in MODULES else module)
    return {target for target in targets if target in MODULES}


GRAPH = {name: _imports(name) for name in MODULES}


def _component(name: str) -> str:
    parts = name.split(".")
    return parts[1] if len(parts) > 1 else ""


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (or a self-import): Tarjan's algorithm."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in sorted(graph[node]):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1 or node in graph[node]:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_cycle_finder_finds_cycles_of_any_length() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"a"}}) == [["a"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_parser_sees_function_level_and_type_checking_imports() -> None:
    # analysis.pipeline imports the report inside a function; the package root imports the analysis stage.
    assert "deepfake_attention.analysis.report" in GRAPH["deepfake_attention.analysis.pipeline"]
    assert "deepfake_attention.analysis" in GRAPH[PACKAGE]


def test_no_import_cycle() -> None:
    assert _cycles(GRAPH) == []


def test_package_root_is_a_table_of_contents() -> None:
    modules = sorted(p.stem for p in ROOT.glob("*.py") if p.stem not in ("__init__", "__main__"))
    assert len(modules) <= MAX_ROOT_MODULES, modules
    for folder in (p for p in ROOT.iterdir() if (p / "__init__.py").is_file()):
        doc = ast.get_docstring(ast.parse((folder / "__init__.py").read_text(encoding="utf-8")))
        assert doc and len(doc) > 40, f"{folder.name}/__init__.py must say in its docstring what the stage takes and gives"


@pytest.mark.parametrize("leaf", sorted(LEAVES))
def test_leaves_import_nothing_of_the_package(leaf: str) -> None:
    assert GRAPH[f"{PACKAGE}.{leaf}"] == set()


def _violations() -> list[str]:
    bad = []
    for name, targets in GRAPH.items():
        component = _component(name)
        for target in sorted(targets):
            other = _component(target)
            if component in ALLOWED and other not in ALLOWED[component] | {component}:
                bad.append(f"{name} -> {target}")
            if other in FORBIDDEN.get(component, ()):
                bad.append(f"{name} -> {target}")
            if component == "service" and other not in SERVICE_ALLOWED and ".".join(target.split(".")[1:3]) not in SERVICE_ALLOWED:
                bad.append(f"{name} -> {target}")
    return bad


def test_imports_follow_the_data_flow() -> None:
    assert _violations() == []
