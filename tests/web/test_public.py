"""gridwatch.web's public face: every name in ``__all__`` exists, and the package data (templates,
the vendored htmx and its licence, the style sheet) is where the app looks for it."""

from __future__ import annotations

import importlib
import tomllib
from pathlib import Path

from _web_helpers import REPO


def test_all_names_exist() -> None:
    mod = importlib.import_module("gridwatch.web")
    missing = [n for n in mod.__all__ if not hasattr(mod, n)]
    assert not missing


def test_package_data_is_declared_and_present() -> None:
    meta = tomllib.loads((REPO / "pyproject.toml").read_text())
    setup = meta["tool"]["setuptools"]
    assert "gridwatch.web" in setup["packages"]
    patterns = setup["package-data"]["gridwatch.web"]
    web = REPO / "src" / "web"
    found = {p.relative_to(web).as_posix() for pat in patterns for p in web.glob(pat)}
    assert {"static/htmx.min.js", "static/htmx-LICENSE.txt", "static/app.css",
            "templates/base.html", "templates/alert.html"} <= found
    on_disk = {p.relative_to(web).as_posix() for p in (web / "templates").glob("*")} | {
        p.relative_to(web).as_posix() for p in (web / "static").glob("*")}
    assert on_disk <= found, on_disk - found
    licence = (web / "static" / "htmx-LICENSE.txt").read_text()
    assert "2.0.11" in licence and "Zero-Clause BSD" in licence
    assert 'version:"2.0.11"' in Path(web / "static" / "htmx.min.js").read_text()
