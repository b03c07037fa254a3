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
