"""The workspace in a real browser: Debian's chromium, headless, driven by Selenium through
Debian's chromedriver, against ``gridwatch serve``'s app under uvicorn with InfluxDB 1.6.7.

A manager logs in, sees only their cells' alerts, opens one, sees the load curve drawn, gives a
verdict, finds it in the audit trail and in InfluxDB, and cannot reach another manager's alert.
Every request the browser makes is recorded (Chrome's performance log) and none may leave
127.0.0.1. Screenshots of the main pages are kept under ``var/screenshots``.
"""

from __future__ import annotations

import urllib.parse
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from _web_helpers import (
    REPO,
    Web,
    build_web,
    event,
    influx_sections,
    influxql,
    page_wait,
    requested_urls,
    store_load,
)

from gridwatch._services import Service, free_port
from gridwatch.web import WebServer

pytestmark = [pytest.mark.services, pytest.mark.slow]

SHOTS = REPO / "var" / "screenshots"


@pytest.fixture
def served(tmp_path: Path, influxdb: Service) -> Iterator[tuple[Web, WebServer]]:
    sections = influx_sections(influxdb, tmp_path, f"b_{uuid.uuid4().hex[:10]}")
    w = build_web(tmp_path, influx=sections, web={"poll_s": 2})
    w.seed(event("m1", summary="sustained rise: 300 kW where 100 kW is usual"),
           event("r1", "outage", severity="critical"), event("m3"),
           event("m3", "outage", severity="critical"))
    store_load(w)
    server = WebServer(w.settings, host="127.0.0.1", port=free_port()).start()
    yield w, server
    server.stop()
    w.router.close()
    w.ws.close()


def test_manager_flow_in_chromium(served: tuple[Web, WebServer], browser: object,
                                  influxdb: Service) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec

    w, server = served
    d = browser
    wait = page_wait(d)  # (it reads again across the page loads of the form posts)
    SHOTS.mkdir(parents=True, exist_ok=True)
    seen: list[str] = []

    d.get(f"{server.url}/alerts")  # type: ignore[attr-defined]
    wait.until(ec.presence_of_element_located((By.ID, "login-form")))
    d.save_screenshot(str(SHOTS / "login.png"))  # type: ignore[attr-defined]
    d.find_element(By.ID, "username").send_keys("alice")  # type: ignore[attr-defined]
    d.find_element(By.ID, "password").send_keys("correct horse battery")  # type: ignore
    d.find_element(By.ID, "login-submit").click()  # type: ignore[attr-defined]
    wait.until(ec.presence_of_element_located((By.ID, "alert-list")))
    assert d.execute_script("return typeof htmx") == "object"  # type: ignore[attr-defined]
    links = [a.get_attribute("href") for a in
             d.find_elements(By.CSS_SELECTOR, "a.alert-link")]  # type: ignore[attr-defined]
    paths = sorted(urllib.parse.urlparse(h).path for h in links)
    assert paths == ["/alert/m1/abnormal_consumption", "/alert/r1/outage"]  # cell A only
    d.save_screenshot(str(SHOTS / "alerts.png"))  # type: ignore[attr-defined]
    # a new alert in the manager's cell appears without a reload (htmx polls the rows)
    marker = d.execute_script("window.gwMarker = 1; return window.gwMarker")  # type: ignore
    w.seed(event("r2", "meter_fault", severity="critical"))
    wait.until(ec.presence_of_element_located(
        (By.CSS_SELECTOR, 'a.alert-link[href="/alert/r2/meter_fault"]')))
    assert d.execute_script("return window.gwMarker") == marker  # same page, not reloaded
    seen += requested_urls(d)

    d.find_element(By.CSS_SELECTOR, 'a[href="/alert/m1/abnormal_consumption"]').click()  # type: ignore
    wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "svg.chart polyline.readings")))
    drawn = d.execute_script(  # type: ignore[attr-defined]
        "return document.querySelector('svg.chart polyline.readings').getBBox().width")
    assert drawn > 100  # the curve is laid out across the chart, not just present
    d.save_screenshot(str(SHOTS / "alert.png"))  # type: ignore[attr-defined]

    # zoom through htmx: only the chart is swapped
    d.find_element(By.CSS_SELECTOR, '#chart-box a[href="?hours=6"]').click()  # type: ignore
    zoomed = (By.CSS_SELECTOR, '#chart-box a.on[href="?hours=6"]')
    wait.until(ec.presence_of_element_located(zoomed))
    assert d.current_url.endswith("/alert/m1/abnormal_consumption")  # type: ignore

    d.find_element(By.ID, "verdict-false_alarm").click()  # type: ignore[attr-defined]
    d.find_element(By.ID, "verdict-note").send_keys("planned night shift")  # type: ignore
    d.find_element(By.ID, "verdict-submit").click()  # type: ignore[attr-defined]
    wait.until(ec.text_to_be_present_in_element((By.ID, "audit"), "planned night shift"))
    trail = d.find_element(By.ID, "audit").text  # type: ignore[attr-defined]
    assert "verdict" in trail and "web:alice" in trail
    rows = influxql(influxdb, w.settings.influx.database, "SELECT * FROM verdict")
    assert [(r["meter_id"], r["verdict"], r["by"]) for r in rows] == [
        ("m1", "false_alarm", "alice")]
    seen += requested_urls(d)

    d.get(f"{server.url}/alert/m3/outage")  # type: ignore[attr-defined]
    assert "Not found" in d.find_element(By.TAG_NAME, "main").text  # type: ignore
    assert "m3" not in d.find_element(By.TAG_NAME, "main").text  # type: ignore
    d.get(f"{server.url}/cell/A")  # type: ignore[attr-defined]
    wait.until(ec.presence_of_element_located((By.ID, "median-ack")))
    d.save_screenshot(str(SHOTS / "cell.png"))  # type: ignore[attr-defined]

    d.set_window_size(390, 844)  # a phone  # type: ignore[attr-defined]
    d.get(f"{server.url}/alert/m1/abnormal_consumption")  # type: ignore[attr-defined]
    wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "svg.chart polyline.readings")))
    width = d.execute_script("return document.documentElement.scrollWidth")  # type: ignore
    wide = d.execute_script(  # type: ignore[attr-defined]
        "return [...document.querySelectorAll('body *')].filter(e => "
        "e.getBoundingClientRect().right > document.documentElement.clientWidth + 1)"
        ".map(e => e.tagName + '.' + e.className).slice(0, 10)")
    assert width <= 400, wide  # nothing wider than the phone's screen
    d.save_screenshot(str(SHOTS / "alert-phone.png"))  # type: ignore[attr-defined]
    seen += requested_urls(d)

    # the customer's contact: its notices, in Chinese, on the phone
    token = d.find_element(By.CSS_SELECTOR, "#logout").find_element(  # type: ignore
        By.XPATH, "..")
    token.submit()
    wait.until(ec.presence_of_element_located((By.ID, "login-form")))
    d.find_element(By.ID, "username").send_keys("beta")  # type: ignore[attr-defined]
    d.find_element(By.ID, "password").send_keys("correct horse battery")  # type: ignore
    d.find_element(By.ID, "login-submit").click()  # type: ignore[attr-defined]
    wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, 'a[href^="/portal/notice/"]')))
    notices = [a.get_attribute("href") for a in d.find_elements(  # type: ignore
        By.CSS_SELECTOR, 'a[href^="/portal/notice/"]')]
    assert [urllib.parse.urlparse(h).path for h in notices] == [
        "/portal/notice/m3/abnormal_consumption"]
    assert "我的通知" in d.find_element(By.TAG_NAME, "main").text  # type: ignore
    d.save_screenshot(str(SHOTS / "portal-phone.png"))  # type: ignore[attr-defined]
    d.get(f"{server.url}/portal/notice/m1/abnormal_consumption")  # type: ignore # C1's
    assert "未找到" in d.find_element(By.TAG_NAME, "main").text  # type: ignore
    seen += requested_urls(d)

    assert seen, "the performance log recorded no request"
    # The browser's own pages (chrome://, the blank tab) never touch the network; anything
    # else must go to the workspace on 127.0.0.1.
    local = ("chrome:", "chrome-search:", "chrome-untrusted:", "data:", "about:", "blob:")
    outside = [u for u in seen if not u.startswith(local)
               and urllib.parse.urlparse(u).hostname != "127.0.0.1"]
    assert outside == []
    assert any(u.endswith("/static/htmx.min.js") for u in seen)
    for name in ("login", "alerts", "alert", "cell", "alert-phone", "portal-phone"):
        assert (SHOTS / f"{name}.png").stat().st_size > 5000
