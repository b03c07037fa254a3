"""A customer's tags in the workspace: the customer page and the alert page list the tags the
engine computed, each with its reason, and the recent tag history ("became night-heavy 12 days
ago"), from the tag store; the JSON of the pages carries them too. Checked through the ASGI app
and in a real browser (Debian's chromium, headless, Selenium)."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from _web_helpers import build_web, event, page_wait

from gridwatch._services import free_port
from gridwatch.tags._engine import TagHit
from gridwatch.tags._live import router_publisher
from gridwatch.tags._notes import tags_db_path
from gridwatch.tags._store import TagStore
from gridwatch.web import WebServer

NIGHT = TagHit("night-heavy", "tagged night-heavy: 48 % of energy between 00:00 and 06:00 "
               "over 30 days", "usage", "夜间用电为主：近 30 天 0–6 点用电占 48 %")
EVENING = TagHit("evening-peak", "tagged evening-peak: the typical weekday peaks at 19:00",
                 "usage")
SMALL = TagHit("residential-customer", "tagged residential-customer: registered as "
               "residential", "basic")


def tag_customer(w) -> None:
    """C3 was evening-peak from 1 April, became night-heavy on 10 April (no longer
    evening-peak); the engine's last day is 22 April. The router knows its tags too."""
    store = TagStore(tags_db_path(w.settings.alerts))
    store.apply(date(2026, 4, 1), {"C3": [EVENING, SMALL]})
    store.apply(date(2026, 4, 10), {"C3": [NIGHT, SMALL]})
    store.put_features([("C3", b"\0" * 8, "residential", "night-heavy households")],
                       date(2026, 4, 22))
    store.close()
    router_publisher(w.router)("C3", "night-heavy households",
                               ("night-heavy", "residential-customer"), date(2026, 4, 22))


@pytest.fixture
def tagged(tmp_path: Path):
    w = build_web(tmp_path)
    w.seed(event("r1", "outage", severity="critical"))
    tag_customer(w)
    yield w
    for c in w.clients:
        c.close()
    w.router.close()
    w.ws.close()


def test_customer_page_lists_tags_with_reasons_and_history(tagged):
    c = tagged.client()
    c.login("alice")
    html = c.get("/customer/C3").text
    assert "48 % of energy between 00:00 and 06:00 over 30 days" in html
    assert "became night-heavy 12 days ago (2026-04-10)" in html
    assert "was evening-peak from 2026-04-01 to 2026-04-10" in html
    assert "night-heavy households" in html  # the segment, by its name
    got = c.get("/customer/C3?format=json").json()
    notes = {n["tag"]: n for n in got["tag_notes"]}
    assert set(notes) == {"night-heavy", "residential-customer"}
    assert notes["night-heavy"]["reason"] == NIGHT.reason
    assert notes["night-heavy"]["since"] == "2026-04-10" and notes["night-heavy"]["days"] == 12
    assert got["tag_history"][0].startswith("became ")
    assert "night-heavy" in got["tags"]


def test_the_customer_page_speaks_the_users_language_and_groups_by_dimension(tagged):
    tagged.add_user("dora", "manager", "M1", language="zh")
    c = tagged.client()
    c.login("dora")
    html = c.get("/customer/C3").text
    assert "夜间用电为主：近 30 天 0–6 点用电占 48 %" in html
    assert "tagged night-heavy" not in html and "2026-04-10 起，12 天" in html
    # grouped by dimension, basic facts first; a tag without a Chinese reason keeps its own
    notes = html[html.index('id="tag-notes"'):]
    assert notes.index("基本属性") < notes.index('data-tag="residential-customer"') \
        < notes.index("用电行为") < notes.index("夜间用电为主")
    assert SMALL.reason in html
    assert "12 天前新增标签 night-heavy（2026-04-10）" in html
    assert "2026-04-01 至 2026-04-10 曾有标签 evening-peak" in html and "became" not in html
    en = tagged.client()
    en.login("alice")
    page = en.get("/customer/C3").text
    assert NIGHT.reason in page and "夜间用电为主" not in page
    notes = page[page.index('id="tag-notes"'):]
    assert notes.index("Basic attributes") < notes.index("Usage behaviour")


def test_alert_page_lists_the_customers_tags(tagged):
    c = tagged.client()
    c.login("alice")
    html = c.get("/alert/r1/outage").text
    assert "48 % of energy between 00:00 and 06:00" in html
    assert "became night-heavy 12 days ago" in html
    prof = c.get("/alert/r1/outage?format=json").json()["profile"]
    assert prof["tag_notes"][0]["tag"] == "residential-customer"  # basic first
    assert "night-heavy" in prof["tags"]


def test_a_customer_without_tags_shows_none(tmp_path):
    w = build_web(tmp_path)  # no tag store at all
    try:
        c = w.client()
        c.login("alice")
        resp = c.get("/customer/C3")
        assert resp.status_code == 200
        assert 'id="tag-notes"' not in resp.text
        assert c.get("/customer/C3?format=json").json()[
            "tag_notes"] == []
        c.close()
    finally:
        w.router.close()
        w.ws.close()


# ---------------------------------------------------------------- in a real browser
@pytest.mark.slow
def test_tags_and_history_shown_in_chromium(tagged, browser) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec

    server = WebServer(tagged.settings, host="127.0.0.1", port=free_port()).start()
    try:
        d = browser
        wait = page_wait(d)
        d.get(f"{server.url}/customer/C3")  # type: ignore[attr-defined]
        wait.until(ec.presence_of_element_located((By.ID, "login-form")))
        d.find_element(By.ID, "username").send_keys("alice")  # type: ignore[attr-defined]
        d.find_element(By.ID, "password").send_keys("correct horse battery")  # type: ignore
        d.find_element(By.ID, "login-submit").click()  # type: ignore[attr-defined]
        wait.until(ec.invisibility_of_element_located((By.ID, "login-form")))
        for page in ("/customer/C3", "/alert/r1/outage"):
            d.get(f"{server.url}{page}")  # type: ignore[attr-defined]
            wait.until(ec.visibility_of_element_located((By.ID, "tag-notes")))
            notes = d.find_element(By.ID, "tag-notes")  # type: ignore[attr-defined]
            night = notes.find_element(By.CSS_SELECTOR, 'li[data-tag="night-heavy"]')
            assert "48 % of energy between 00:00 and 06:00 over 30 days" in night.text
            assert "became night-heavy 12 days ago" in night.text
            assert night.is_displayed()
            history = d.find_element(By.ID, "tag-history")  # type: ignore[attr-defined]
            assert history.is_displayed()
            assert "was evening-peak from 2026-04-01 to 2026-04-10" in history.text
    finally:
        server.stop()
