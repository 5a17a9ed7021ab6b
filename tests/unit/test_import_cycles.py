"""No import cycles in the runtime (layers/) or the tooling (infra/): every import counts, also those inside
functions and under `if TYPE_CHECKING:` (a cycle there is still two modules that need each other's names)."""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# (the folder that holds the package, the package) for each tree checked.
TREES = [(ROOT / "layers" / "sklambda" / "python", "sklambda"), (ROOT / "infra", "sklambda_infra")]


def modules(base: Path, package: str) -> dict[str, Path]:
    """Every module of `package` under `base` by dotted name; a package is its `__init__.py`."""
    out = {}
    for path in sorted((base / package).rglob("*.py")):
        parts = list(path.relative_to(base).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def imports(name: str, path: Path, known: Iterable[str]) -> set[str]:
    """The known modules that module `name` imports anywhere in its body.

    `from p import x` is an import of `p.x` when that is a module, else of `p` (x is a name `p` defines).
    Relative imports are resolved against the module's package.
    """
    known = set(known)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, *([node.module] if node.module else [])])
            else:
                base = node.module or ""
            for alias in node.names:
                found.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base)
    return {m for m in found if m in known and m != name}


def find_cycles(graph: Mapping[str, set[str]]) -> list[list[str]]:
    """One cycle (first module repeated at the end) per strongly connected component of more than one module
    (Tarjan's algorithm, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[set[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                if len(component) > 1:
                    components.append(component)
    return [_one_cycle(graph, component) for component in components]


def _one_cycle(graph: Mapping[str, set[str]], component: set[str]) -> list[str]:
    """The shortest path from the component's first module back to itself (breadth first)."""
    start = min(component)
    paths = {start: [start]}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for child in sorted(graph[node] & component):
                if child == start:
                    return [*paths[node], start]
                if child not in paths:
                    paths[child] = [*paths[node], child]
                    following.append(child)
        frontier = following
    raise AssertionError(f"no cycle through {start} in {sorted(component)}")  # a component always has one


def import_graph(base: Path, package: str) -> dict[str, set[str]]:
    """Module -> the package's modules it imports."""
    found = modules(base, package)
    return {name: imports(name, path, found) for name, path in found.items()}


@pytest.mark.parametrize(("base", "package"), TREES, ids=[package for _, package in TREES])
def test_no_module_imports_itself_through_others(base: Path, package: str) -> None:
    # GIVEN every import of every module of the tree, wherever it is written
    graph = import_graph(base, package)
    assert len(graph) > 10  # the tree was found
    # THEN no chain of imports leads back to where it started
    cycles = [" -> ".join(cycle) for cycle in find_cycles(graph)]
    assert cycles == [], "import cycles:\n" + "\n".join(cycles)


def test_a_cycle_through_an_import_inside_a_function_or_type_checking_block_is_found_and_named(tmp_path) -> None:
    # GIVEN a package whose modules need each other only inside a function and under TYPE_CHECKING
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("from .engine import run\n")
    (pkg / "sub" / "engine.py").write_text("from pkg.sub.errors import Failed\n\ndef run():\n    raise Failed()\n")
    (pkg / "sub" / "errors.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from ..sub import engine\n"
        "class Failed(Exception):\n    def f(self):\n        from pkg.plain import x\n"
    )
    (pkg / "plain.py").write_text("x = 1\n")
    # WHEN the graph is read and searched
    graph = import_graph(tmp_path, "pkg")
    # THEN the relative and the in-function imports are edges, and the one cycle is named module by module
    assert graph["pkg.sub.errors"] == {"pkg.sub.engine", "pkg.plain"}
    assert graph["pkg.sub"] == {"pkg.sub.engine"}
    assert find_cycles(graph) == [["pkg.sub.engine", "pkg.sub.errors", "pkg.sub.engine"]]
