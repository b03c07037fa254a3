"""Imports go one way: no circle between the package's modules, none between its packages.

The graph is read from the source of ``src/`` and ``simulators/`` (no module is imported):
every import statement counts, at module level, inside functions and under ``TYPE_CHECKING``.
"""

from __future__ import annotations

import ast
import itertools
from collections.abc import Iterable, Mapping
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
#: Where each part of the package lives (pyproject.toml's package-dir).
ROOTS = {"gridwatch": REPO / "src", "gridwatch.simulators": REPO / "simulators"}

#: Pairs that still import each other; their edges (both ways) are left out of the checks.
KNOWN_MODULE_PAIRS: list[tuple[str, str]] = []
KNOWN_PACKAGE_PAIRS: list[tuple[str, str]] = []


def _without(graph: dict[str, set[str]],
             pairs: Iterable[tuple[str, str]]) -> dict[str, set[str]]:
    out = {node: set(deps) for node, deps in graph.items()}
    for a, b in pairs:
        out.get(a, set()).discard(b)
        out.get(b, set()).discard(a)
    return out


def test_no_circle_between_modules() -> None:
    graph = import_graph(ROOTS)
    assert {"gridwatch.cli", "gridwatch.simulators._fleet", "gridwatch.ingest._decode"} <= set(
        graph)
    assert circles(_without(graph, KNOWN_MODULE_PAIRS)) == []


def test_no_circle_between_packages() -> None:
    packages = subpackages(ROOTS)
    assert {"gridwatch.ingest", "gridwatch.simulators", "gridwatch.alerts"} <= packages
    graph = package_graph(import_graph(ROOTS), packages)
    assert circles(_without(graph, KNOWN_PACKAGE_PAIRS)) == []


def test_the_simulator_is_a_one_way_chain() -> None:
    graph = import_graph(ROOTS)
    order = ["gridwatch.simulators._device_spec", "gridwatch.simulators._spec",
             "gridwatch.simulators._population", "gridwatch.simulators._engine",
             "gridwatch.simulators._fleet"]
    for lower, upper in itertools.pairwise(order):
        assert lower in graph[upper], f"{upper} should import {lower}"
    for i, lower in enumerate(order):
        assert not set(order[i + 1:]) & graph[lower], f"{lower} imports a module above it"


def test_command_modules_never_import_the_command_line_back() -> None:
    graph = import_graph(ROOTS)
    assert "gridwatch.cli" in graph and "gridwatch.ingest._cli" in graph
    importers = sorted(name for name, deps in graph.items() if "gridwatch.cli" in deps)
    assert importers == ["gridwatch.__main__"]
    # The shared pieces sit below every command module.
    assert not any(d.startswith(("gridwatch.cli", "gridwatch.ingest._cli", "gridwatch.alerts._cli",
                                 "gridwatch.storage._cli", "gridwatch.simulators._cli"))
                   for d in graph["gridwatch._cli_common"])


def _package(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def test_the_graph_sees_every_kind_of_import(tmp_path: Path) -> None:
    # The checks above must be able to fail: relative, function-level and TYPE_CHECKING imports
    # all make edges, and a circle through them is found.
    src = _package(tmp_path / "src", {
        "__init__.py": "",
        "a/__init__.py": "from .x import f\n",
        "a/x.py": "def f():\n    from ..b import y\n",
        "b/__init__.py": "",
        "b/y.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.a import x\n",
        "c.py": "import pkg.b.y\nimport json\n",
    })
    graph = import_graph({"pkg": src})
    assert graph == {
        "pkg": set(), "pkg.a": {"pkg.a.x"}, "pkg.a.x": {"pkg.b.y"}, "pkg.b": set(),
        "pkg.b.y": {"pkg.a.x"}, "pkg.c": {"pkg.b.y"},
    }
    assert circles(graph) == [["pkg.a.x", "pkg.b.y"]]
    assert subpackages({"pkg": src}) == {"pkg.a", "pkg.b"}
    assert circles(package_graph(graph, {"pkg.a", "pkg.b"})) == [["pkg.a", "pkg.b"]]


def test_circles_finds_long_and_separate_circles() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": {"e"}, "e": {"d"}, "f": {"a"}}
    assert circles(graph) == [["a", "b", "c"], ["d", "e"]]
    assert circles({"a": {"b"}, "b": set()}) == []


# -- the graph -------------------------------------------------------------------------------
def _modules(roots: Mapping[str, Path]) -> dict[str, tuple[Path, bool]]:
    """Module name → (its file, whether it is a package's ``__init__``)."""
    found: dict[str, tuple[Path, bool]] = {}
    for package, root in roots.items():
        for path in sorted(root.rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            is_package = parts[-1] == "__init__"
            if is_package:
                parts = parts[:-1]
            found[".".join((package, *parts))] = (path, is_package)
    return found


def import_graph(roots: Mapping[str, Path]) -> dict[str, set[str]]:
    """Module → the modules of the same tree it imports.

    ``roots`` maps a package name to its folder (pyproject.toml's ``package-dir``). Every import
    statement counts: at module level, inside functions, and under ``if TYPE_CHECKING:`` (a type
    named in a signature is a dependency too). Relative imports are resolved; ``from a.b import
    c`` is an edge to ``a.b.c`` when that is a module, else to ``a.b``. Implicit imports of
    parent packages are not edges.
    """
    modules = _modules(roots)

    def known(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {}
    for name, (path, is_package) in modules.items():
        deps: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = name if is_package else name.rpartition(".")[0]
                    for _ in range(node.level - 1):
                        anchor = anchor.rpartition(".")[0]
                    base = f"{anchor}.{base}" if base else anchor
                for alias in node.names:
                    full = f"{base}.{alias.name}"
                    target = full if full in modules else known(base)
                    if target:
                        deps.add(target)
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    target = known(alias.name)
                    if target:
                        deps.add(target)
        deps.discard(name)
        graph[name] = deps
    return graph


def subpackages(roots: Mapping[str, Path]) -> set[str]:
    """The packages one level below the top (``gridwatch.ingest``, ``gridwatch.simulators``,
    ...); the top package's own modules (``gridwatch.cli``, ``gridwatch._settings``) belong to
    none of them."""
    return {name for name, (_, is_package) in _modules(roots).items()
            if is_package and name.count(".") == 1}


def package_graph(graph: Mapping[str, Iterable[str]],
                  packages: set[str]) -> dict[str, set[str]]:
    """Package → the other packages (of ``packages``) its modules import."""
    out: dict[str, set[str]] = {p: set() for p in packages}
    for module, deps in graph.items():
        source = _owner(module, packages)
        if source is None:
            continue
        for dep in deps:
            target = _owner(dep, packages)
            if target is not None and target != source:
                out[source].add(target)
    return out


def _owner(module: str, packages: set[str]) -> str | None:
    for package in sorted(packages, key=len, reverse=True):
        if module == package or module.startswith(package + "."):
            return package
    return None


def circles(graph: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """The strongly connected parts of ``graph`` with more than one node (each sorted): every
    circle of imports lies inside one of them (Tarjan's algorithm, without recursion)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for start in sorted(graph):
        if start in index:
            continue
        work: list[tuple[str, list[str]]] = [(start, sorted(graph.get(start, ())))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, todo = work[-1]
            if todo:
                nxt = todo.pop()
                if nxt not in index:
                    index[nxt] = low[nxt] = len(index)
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, sorted(graph.get(nxt, ()))))
                elif nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                part = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    part.append(member)
                    if member == node:
                        break
                if len(part) > 1:
                    found.append(sorted(part))
    return sorted(found)
