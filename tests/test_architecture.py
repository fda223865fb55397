"""The package's import graph has one direction (docs/development.md).

Built from the source with `ast`, every import counted (module level and
inside functions alike, since a lazy import still makes a circle): no cycle
among `keras_pansharp` modules, and no private name crosses a package
boundary. A name with a leading underscore (or anything from a private
module such as `metrics/_inputs.py`) is shared only by the modules of one
subpackage; the modules directly in `keras_pansharp/` are separate concepts
and share none. No module is longer than about 700 lines.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "keras_pansharp"
MAX_LINES = 700


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted((ROOT / PACKAGE).rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


MODULES = _modules()


def _package(module: str) -> str:
    """The package a module belongs to (a package's `__init__` is its own)."""
    if MODULES[module].name == "__init__.py":
        return module
    return module.rsplit(".", 1)[0]


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def _imports(module: str):
    """`(line, target module, imported name or None)` of every import."""
    tree = ast.parse(MODULES[module].read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == PACKAGE:
                    yield node.lineno, alias.name, None
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = _package(module).split(".")
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            if base.split(".")[0] != PACKAGE:
                continue
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                if sub in MODULES:  # `from package import submodule`
                    yield node.lineno, sub, None
                else:
                    yield node.lineno, base, alias.name


def _graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {m: set() for m in MODULES}
    for module in MODULES:
        for _, target, _ in _imports(module):
            if target in MODULES and target != module:
                graph[module].add(target)
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def _private_crossings() -> list[str]:
    bad = []
    for module in MODULES:
        home = _package(module)
        for line, target, name in _imports(module):
            if target not in MODULES:
                continue
            private_module = any(_private(p) for p in target.split("."))
            if not (private_module or (name is not None and _private(name))):
                continue
            if _package(target) == home and home != PACKAGE:
                continue  # shared inside one subpackage
            what = f"{target}.{name}" if name else target
            bad.append(f"{MODULES[module].relative_to(ROOT)}:{line} imports {what}")
    return bad


def test_graph_sees_the_imports():
    # The checker reads what it should: the scene layer's known edges.
    graph = _graph()
    assert "keras_pansharp.inference" in graph["keras_pansharp.calibration"]
    assert "keras_pansharp.calibration" in graph["keras_pansharp.scene"]
    assert "keras_pansharp.scene" in graph["keras_pansharp.streaming"]


def test_cycle_and_crossing_detection_on_a_toy_graph():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(graph) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles():
    cycles = _cycles(_graph())
    assert not cycles, "import cycles: " + "; ".join(" <-> ".join(c) for c in cycles)


def test_no_private_name_crosses_a_package():
    bad = _private_crossings()
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("module", sorted(MODULES))
def test_modules_stay_short(module):
    lines = MODULES[module].read_text(encoding="utf-8").count("\n")
    assert lines <= MAX_LINES, f"{module}: {lines} lines (split it by concept)"
