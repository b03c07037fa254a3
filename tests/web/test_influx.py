"""The workspace against a real InfluxDB 1.6.7: the load curve around an alert drawn from the
stored readings and scores, verdicts exported (and kept pending while InfluxDB is away)."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from _web_helpers import (
    T0,
    Web,
    build_web,
    event,
    influx_sections,
    influxql,
    make_settings,
    store_load,
)

from gridwatch._services import Service, free_port
from gridwatch.storage import build_writer, to_lines
from gridwatch.web import Workspace

pytestmark = pytest.mark.services


@pytest.fixture
def iweb(tmp_path: Path, influxdb: Service) -> Iterator[Web]:
    db = f"w_{uuid.uuid4().hex[:10]}"
    w = build_web(tmp_path, influx=influx_sections(influxdb, tmp_path, db))
    w.seed(event("m1"))
    yield w
    for c in w.clients:
        c.close()
    w.router.close()
    w.ws.close()


def test_alert_page_draws_the_stored_load_around_the_event(iweb: Web) -> None:
    n = store_load(iweb)
    c = iweb.client()
    c.login("alice")
    html = c.get("/alert/m1/abnormal_consumption?hours=24").text
    points = re.search(r'<polyline class="readings" points="([^"]+)"', html)
    assert points is not None
    # the 24-hour window centred on the event holds every stored reading but the first
    assert n - 1 <= len(points.group(1).split()) <= n
    assert '<polygon class="band"' in html and 'class="mark mark-onset"' in html
    # zooming in asks for the chart fragment only, with fewer points
    frag = c.get("/alert/m1/abnormal_consumption/chart?hours=6",
                 headers={"HX-Request": "true"}).text
    zoomed = re.search(r'<polyline class="readings" points="([^"]+)"', frag)
    centre = T0 - timedelta(minutes=45 / 2)  # between onset and raise
    inside = [i for i in range(-48, 8) if centre - timedelta(hours=3) <= T0 + timedelta(
        minutes=15 * i) < centre + timedelta(hours=3)]
    assert zoomed is not None and len(zoomed.group(1).split()) == len(inside) == 21
    assert "<html" not in frag


def test_verdict_is_exported_to_influxdb(iweb: Web, influxdb: Service) -> None:
    c = iweb.client()
    c.login("alice")
    token = c.csrf("/alert/m1/abnormal_consumption")
    c.post("/alert/m1/abnormal_consumption/verdict",
           data={"csrf": token, "verdict": "confirmed", "note": "bypass found on site"})
    rows = influxql(influxdb, iweb.settings.influx.database, "SELECT * FROM verdict")
    assert len(rows) == 1
    row = rows[0]
    assert (row["meter_id"], row["type"], row["verdict"], row["grid_cell"], row["kind"],
            row["by"], row["note"]) == ("m1", "abnormal_consumption", "confirmed", "A",
                                        "sustained_rise", "alice", "bypass found on site")


def test_verdicts_wait_while_influxdb_is_away(tmp_path: Path, influxdb: Service) -> None:
    db = f"w_{uuid.uuid4().hex[:10]}"
    sections = influx_sections(influxdb, tmp_path, db)
    away = sections | {"url": f"http://127.0.0.1:{free_port()}"}
    w = build_web(tmp_path, influx=away)
    try:
        w.seed(event("m1"))
        c = w.client()
        c.login("alice")
        token = c.csrf("/alert/m1/abnormal_consumption")
        resp = c.post("/alert/m1/abnormal_consumption/verdict",
                      data={"csrf": token, "verdict": "false_alarm"})
        assert resp.status_code == 303  # the manager is not bothered
        html = c.get("/alert/m1/abnormal_consumption").text
        assert "Load data unavailable" in html
        with w.ws.lock:
            pending = w.ws.db.execute(
                "SELECT COUNT(*) FROM web_verdicts WHERE exported=0").fetchone()[0]
        assert pending == 1
    finally:
        w.router.close()
        w.ws.close()
    back = Workspace(make_settings(tmp_path, influx=sections))
    try:
        assert back.export_verdicts() == 1
        rows = influxql(influxdb, db, "SELECT * FROM verdict")
        assert [r["verdict"] for r in rows] == ["false_alarm"]
        assert back.export_verdicts() == 0
    finally:
        back.close()


def test_customer_page_shows_stored_profiles(iweb: Web) -> None:
    from gridwatch import LoadProfile

    curve = tuple(float(h) for h in range(24))
    lines = []
    for d in range(3):
        for m in ("m1", "m2"):
            lines += to_lines(LoadProfile(meter_id=m, customer_id="C1",
                                          day=T0.replace(hour=0) - timedelta(days=d + 1),
                                          segment="two_shift", tags=("night_load",),
                                          daily_kwh=100.0 + d, peak_kw=20, valley_kw=2,
                                          curve=curve))
    writer = build_writer(iweb.settings.influx)
    writer.write(lines)
    writer.close()
    c = iweb.client()
    c.login("alice")
    data = c.get("/customer/C1?format=json").json()
    assert data["daily_kwh"] == [["2026-05-01", 204.0], ["2026-05-02", 202.0],
                                 ["2026-05-03", 200.0]]
    assert data["curve"] == [2.0 * h for h in range(24)]  # the two meters' typical days
    assert [a["fingerprint"] for a in data["alerts"]] == ["m1/abnormal_consumption"]
    page = c.get("/customer/C1").text
    assert page.count('class="bar"') == 3 + 24
    alert_page = c.get("/alert/m1/abnormal_consumption").text
    assert alert_page.count('class="bar"') == 24  # m1's typical day beside its profile
    contact = iweb.client()
    contact.login("acme")
    portal = contact.get("/portal").text
    assert 'class="bar"' in portal and "abnormal_consumption" in portal
