"""The workspace test kit: settings over a temporary state database and registry, the alert
router to seed alerts, accounts, and a client that calls the app through httpx's ASGI
transport (no server, no network).

Imported by name (``from _web_helpers import build_web``): its folder is on the import path
(``pythonpath``). The fixtures are in ``conftest.py``.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import urllib.parse
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import yaml

from gridwatch import Event, Reading, Score
from gridwatch._services import Service
from gridwatch._settings import Settings
from gridwatch.alerts._router import Router
from gridwatch.alerts._service import build_router
from gridwatch.storage import build_writer, to_lines
from gridwatch.web import _accounts as acc
from gridwatch.web._app import Workspace
from gridwatch.web._asgi import create_app

REPO = Path(__file__).resolve().parents[2]
T0 = datetime(2026, 5, 4, 2, 0, tzinfo=UTC)
PASSWORD = "correct horse battery"

REGISTRY = {
    "managers": [
        {"id": "M1", "name": "Alice", "language": "en", "email": "alice@example.org",
         "channels": ["mqtt", "email"]},
        {"id": "M2", "name": "Bob", "language": "en"},
        {"id": "M3", "name": "Carol"},
    ],
    "cells": [
        {"id": "A", "name": "Cell A", "primary": "M1", "backup": "M2"},
        {"id": "B", "name": "Cell B", "primary": "M3", "backup": "M2"},
    ],
    "customers": [
        {"id": "C1", "name": "Acme Steel", "class": "industrial", "contracted_kva": 500,
         "grid_cell": "A", "meters": ["m1", "m2"], "notices": True, "language": "en"},
        {"id": "C2", "name": "Beta Foods", "class": "industrial", "contracted_kva": 250,
         "grid_cell": "B", "meters": ["m3"], "notices": True},
        {"id": "C3", "name": "Flat 3", "class": "residential", "grid_cell": "A",
         "meters": ["r1", "r2"]},
    ],
}

ROUTES = """
route:
  receivers: [cell_manager]
  routes:
    - name: industrial
      match: {customer_class: industrial, type: [abnormal_consumption, over_capacity_risk]}
      receivers: [customer]
      continue: true
    - name: managers
      receivers: [cell_manager]
"""


def event(meter: str = "m1", type_: str = "abnormal_consumption", *, severity: str = "warning",
          at: datetime = T0, **kw: Any) -> Event:
    return Event(meter_id=meter, type=type_, severity=severity, score=kw.pop("score", 8.0),
                 onset=kw.pop("onset", at - timedelta(minutes=45)), raised_at=at,
                 summary=kw.pop("summary", "load far above usual"),
                 evidence=kw.pop("evidence", {"kind": "sustained_rise", "observed_kw": 300.0,
                                              "expected_kw": 100.0}), **kw)


def make_settings(tmp: Path, **sections: Any) -> Settings:
    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / "registry.yaml").write_text(yaml.safe_dump(REGISTRY, allow_unicode=True))
    (tmp / "routes.yaml").write_text(ROUTES)
    templates = tmp / "templates"
    if not templates.exists():
        shutil.copytree(REPO / "config" / "templates", templates)
    alerts = {"registry": str(tmp / "registry.yaml"), "routes": str(tmp / "routes.yaml"),
              "templates": str(templates), "state_db": str(tmp / "alerts.sqlite"),
              "jsonl_out": None} | sections.pop("alerts", {})
    web = {"secret_file": str(tmp / "web.secret")} | sections.pop("web", {})
    influx = {"enabled": False, "spool_dir": str(tmp / "spool")} | sections.pop("influx", {})
    return Settings(alerts=alerts, web=web, influx=influx, **sections)


class Client:
    """A synchronous face on ``httpx.AsyncClient`` over the ASGI transport; keeps cookies."""

    def __init__(self, app: Any) -> None:
        self.loop = asyncio.new_event_loop()
        self.http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                      base_url="http://testserver")

    def get(self, url: str, **kw: Any) -> httpx.Response:
        return self.loop.run_until_complete(self.http.get(url, **kw))

    def post(self, url: str, **kw: Any) -> httpx.Response:
        return self.loop.run_until_complete(self.http.post(url, **kw))

    def csrf(self, url: str) -> str:
        """The CSRF token of the form on page ``url``."""
        resp = self.get(url)
        assert resp.status_code == 200, resp.text
        m = re.search(r'name="csrf" value="([^"]+)"', resp.text)
        assert m, resp.text
        return m.group(1)

    def login(self, username: str, password: str = PASSWORD) -> httpx.Response:
        token = self.csrf("/login")
        return self.post("/login", data={"username": username, "password": password,
                                         "csrf": token, "next": "/"})

    def close(self) -> None:
        self.loop.run_until_complete(self.http.aclose())
        self.loop.close()


@dataclass
class Web:
    settings: Settings
    ws: Workspace
    router: Router
    app: Any
    clients: list[Client]

    def client(self) -> Client:
        c = Client(self.app)
        self.clients.append(c)
        return c

    def add_user(self, username: str, role: str, subject: str, language: str = "en") -> None:
        with self.ws.lock:
            acc.add_user(self.ws.db, username, role, subject, PASSWORD, T0, language=language)

    def seed(self, *events: Event, now: datetime = T0) -> None:
        self.router.submit_many(events, now)


def build_web(tmp: Path, **sections: Any) -> Web:
    settings = make_settings(tmp, **sections)
    router = build_router(settings, notifiers={})
    ws = Workspace(settings, clock=lambda: T0 + timedelta(hours=1))
    web = Web(settings, ws, router, create_app(ws), [])
    web.add_user("alice", "manager", "M1")
    web.add_user("bob", "manager", "M2")
    web.add_user("carol", "manager", "M3", language="zh")
    web.add_user("acme", "customer", "C1")
    web.add_user("beta", "customer", "C2", language="zh")
    return web


def influxql(svc: Service, db: str, q: str) -> list[dict[str, Any]]:
    url = f"{svc.url}/query?" + urllib.parse.urlencode({"db": db, "q": q, "epoch": "ns"})
    with urllib.request.urlopen(url, timeout=10) as resp:
        doc = json.loads(resp.read())
    rows = []
    for s in doc["results"][0].get("series", []):
        for values in s["values"]:
            row = dict(s.get("tags") or {})
            row.update({c: v for c, v in zip(s["columns"], values, strict=True)
                        if v is not None})
            rows.append(row)
    return rows


def influx_sections(svc: Service, tmp: Path, db: str) -> dict[str, Any]:
    req = urllib.request.Request(f"{svc.url}/query", data=urllib.parse.urlencode(
        {"q": f'CREATE DATABASE "{db}"'}).encode())
    urllib.request.urlopen(req, timeout=10).read()
    return {"enabled": True, "api": "v1", "url": svc.url, "database": db,
            "spool_dir": str(tmp / "spool"), "spool_fsync": False, "timeout_ms": 3000,
            "retry_initial_ms": 100, "retry_max_ms": 500}


def store_load(w: Web, meter: str = "m1") -> int:
    """A day of 15-minute readings around T0 with a jump in the last hour, and its scores."""
    lines = []
    n = 0
    for i in range(-48, 8):
        at = T0 + timedelta(minutes=15 * i)
        kw = 100.0 + (200.0 if i >= -3 else (i % 3))
        lines += to_lines(Reading(meter_id=meter, ts=at, kw=kw, kwh=1000 + i + 48))
        lines += to_lines(Score(meter_id=meter, ts=at, kw=kw, expected_kw=100.0,
                                score=abs(kw - 100.0) / 2.0))
        n += 1
    writer = build_writer(w.settings.influx)
    writer.write(lines)
    writer.close()
    return n




CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


def chromium(profile_dir: Path) -> Any:
    """Debian's headless chromium under Selenium, its requests logged (``requested_urls``) so a
    test can show every script, style sheet and font came from gridwatch itself."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service as DriverService

    for binary in (CHROMIUM, CHROMEDRIVER):
        assert Path(binary).exists(), f"{binary} is missing: run scripts/bootstrap.sh"
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", f"--user-data-dir={profile_dir}",
                 "--window-size=1280,900"):
        opts.add_argument(flag)
    opts.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    driver = webdriver.Chrome(options=opts, service=DriverService(CHROMEDRIVER))
    driver.set_page_load_timeout(30)
    return driver


#: what chromium answers a read of a node of the document a page load is replacing
_TORN_DOWN = "does not belong to the document"


def page_wait(driver: Any, timeout: float = 20.0) -> Any:
    """A ``WebDriverWait`` for the browser tests that reads again when a page load replaced
    what the condition read: a stale node, or chromium's inspector error for a node of the
    document being torn down (after a form posts, a read of the old page may get it). Any
    other error still ends the wait at once, and a condition never met still times out."""
    from selenium.common.exceptions import StaleElementReferenceException, WebDriverException
    from selenium.webdriver.support.ui import WebDriverWait

    def across_loads(condition: Any) -> Any:
        def check(d: Any) -> Any:
            try:
                return condition(d)
            except WebDriverException as exc:
                if _TORN_DOWN in (exc.msg or ""):
                    return False
                raise
        return check

    class PageWait(WebDriverWait):
        def until(self, method: Any, message: str = "") -> Any:
            return super().until(across_loads(method), message)

    return PageWait(driver, timeout, ignored_exceptions=(StaleElementReferenceException,))


def requested_urls(driver: Any) -> list[str]:
    """Every URL the browser asked for since the log was last read."""
    urls = []
    for entry in driver.get_log("performance"):
        msg = json.loads(entry["message"])["message"]
        if msg.get("method") == "Network.requestWillBeSent":
            urls.append(msg["params"]["request"]["url"])
    return urls
