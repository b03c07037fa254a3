"""The packages of gridwatch import one another in one direction only: no circle, in
particular none between the alert router and the tag system (routes match tags; the tag
system reads the registry, which belongs to neither). Every import counts, at the top of a
module or inside a function."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
#: folder -> the package it is (``gridwatch.simulators`` lives in simulators/)
ROOTS = {REPO / "src": "gridwatch", REPO / "simulators": "gridwatch.simulators"}


def _package_of(root: Path, base: str, path: Path) -> str | None:
    parts = path.relative_to(root).parts
    if base == "gridwatch.simulators":
        return "simulators"
    return parts[0] if len(parts) > 1 else None  # top-level modules belong to no package


def package_graph() -> dict[str, set[str]]:
    packages = {p.name for p in (REPO / "src").iterdir() if (p / "__init__.py").exists()}
    packages.add("simulators")
    edges: dict[str, set[str]] = {p: set() for p in packages}
    for root, base in ROOTS.items():
        for path in root.rglob("*.py"):
            here = _package_of(root, base, path)
            if here is None:
                continue
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                elif isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                else:
                    continue
                for name in names:
                    parts = name.split(".")
                    if parts[0] == "gridwatch" and len(parts) > 1 and parts[1] in packages \
                            and parts[1] != here:
                        edges[here].add(parts[1])
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Every circle of the graph, each once (from its smallest name)."""
    found: list[list[str]] = []

    def walk(start: str, node: str, path: list[str]) -> None:
        for nxt in sorted(edges.get(node, ())):
            if nxt == start:
                found.append([*path, start])
            elif nxt not in path and nxt > start:
                walk(start, nxt, [*path, nxt])

    for start in sorted(edges):
        walk(start, start, [start])
    return found


def test_the_cycle_finder_finds_circles():
    assert cycles({"a": {"b"}, "b": {"a"}, "c": {"a"}}) == [["a", "b", "a"]]
    assert cycles({"a": {"b"}, "b": {"c"}, "c": set()}) == []


def test_tags_does_not_import_alerts():
    graph = package_graph()
    assert "tags" in graph["alerts"]  # routes match tags ...
    assert "alerts" not in graph["tags"]  # ... and the tag system never needs the router


def test_no_package_import_circle():
    assert cycles(package_graph()) == []


def test_the_registry_keeps_its_names():
    import gridwatch._registry as shared
    import gridwatch.alerts as alerts
    import gridwatch.alerts._registry as old

    for name in old.__all__:
        assert getattr(old, name) is getattr(shared, name), name
    assert alerts.Registry is shared.Registry and alerts.RegistryError is shared.RegistryError
