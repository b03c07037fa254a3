"""Each package's public face is what its ``__all__`` says, and every name in it exists."""

from __future__ import annotations

import importlib

import pytest

PACKAGES = [
    "gridwatch",
    "gridwatch.ingest",
    "gridwatch.stream",
    "gridwatch.models",
    "gridwatch.alerts",
    "gridwatch.storage",
    "gridwatch.simulators",
    "gridwatch.devices",
    "gridwatch.reports",
]


@pytest.mark.parametrize("name", PACKAGES)
def test_all_names_exist(name):
    mod = importlib.import_module(name)
    exported = getattr(mod, "__all__", [])
    missing = [n for n in exported if not hasattr(mod, n)]
    assert not missing, f"{name}.__all__ names missing attributes: {missing}"


def test_root_exports_public_names_only():
    import gridwatch

    public = {n for n in dir(gridwatch) if not n.startswith("_")}
    modules = {n for n in public if type(getattr(gridwatch, n)).__name__ == "module"}
    assert public - modules == set(gridwatch.__all__) - {"__version__"}


@pytest.mark.parametrize("name", [p for p in PACKAGES
                                  if hasattr(importlib.import_module(p), "_EXPORTS")])
def test_lazy_exports_match_all(name):
    """A package that imports its names on first use lists each of them in ``__all__``."""
    mod = importlib.import_module(name)
    assert sorted(set(mod.__all__) - {"__version__"}) == sorted(mod._EXPORTS)
    for exported, module in mod._EXPORTS.items():
        assert hasattr(importlib.import_module(f"{name}.{module}"), exported), exported
