"""The manager's pages and the closed loop, through the ASGI transport: ranking and filters,
the htmx fragment, verdicts in the trail and back to detection, the resolve reason in the
exported transitions, cell figures, language per account, the weekly digest."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from _web_helpers import T0, Web, build_web, event

from gridwatch.alerts._router import Router
from gridwatch.storage import to_lines
from gridwatch.web import score_verdicts, verdicts_for_detection
from gridwatch.web._digest import send_digests


def test_list_ranked_by_severity_then_age_with_filters(tmp_path: Path) -> None:
    w = build_web(tmp_path)
    try:
        w.seed(event("m1", severity="warning", at=T0 - timedelta(hours=3)))
        w.seed(event("m2", severity="warning", at=T0 - timedelta(hours=5)))
        w.seed(event("r1", "outage", severity="critical", at=T0))
        w.seed(event("r2", "meter_fault", severity="info", at=T0 - timedelta(hours=9)))
        c = w.client()
        c.login("alice")
        rows = c.get("/alerts?format=json").json()["alerts"]
        assert [r["fingerprint"] for r in rows] == [
            "r1/outage", "m2/abnormal_consumption", "m1/abnormal_consumption",
            "r2/meter_fault"]
        only = c.get("/alerts?type=outage&format=json").json()
        assert [r["meter_id"] for r in only["alerts"]] == ["r1"] and only["total"] == 1
        industrial = c.get("/alerts?class=industrial&format=json").json()["alerts"]
        assert {r["customer_id"] for r in industrial} == {"C1"}
        from gridwatch._schemas import LoadProfile

        w.router.update_profile(LoadProfile(meter_id="r2", day=T0, customer_id="C3",
                                            tags=("night_owl",), daily_kwh=3, peak_kw=1,
                                            valley_kw=0.1), T0)
        tagged = c.get("/alerts?tag=night_owl&format=json").json()["alerts"]
        assert {r["customer_id"] for r in tagged} == {"C3"}
        c.csrf("/alert/r1/outage")
        token = c.csrf("/alert/r1/outage")
        c.post("/alert/r1/outage/ack", data={"csrf": token})
        acked = c.get("/alerts?state=acknowledged&format=json").json()["alerts"]
        assert [r["fingerprint"] for r in acked] == ["r1/outage"]
        # the fragment htmx polls for: rows only, no page around them
        frag = c.get("/alerts?state=open", headers={"HX-Request": "true"})
        assert "<html" not in frag.text and "r2/meter_fault" in frag.text
        page = c.get("/alerts")
        assert 'hx-trigger="every 15s"' in page.text and "/static/htmx.min.js" in page.text
    finally:
        w.router.close()
        w.ws.close()


def test_verdict_is_kept_audited_and_fed_back(web: Web) -> None:
    c = web.client()
    c.login("alice")
    token = c.csrf("/alert/m1/abnormal_consumption")
    resp = c.post("/alert/m1/abnormal_consumption/verdict",
                  data={"csrf": token, "verdict": "false_alarm", "note": "planned shift"})
    assert resp.status_code == 303
    page = c.get("/alert/m1/abnormal_consumption?format=json").json()
    assert [(v["verdict"], v["note"], v["by"]) for v in page["verdicts"]] == [
        ("false_alarm", "planned shift", "alice")]
    trail = [(r["action"], r["by"]) for r in page["audit"]]
    assert ("verdict", "web:alice") in trail and trail[0] == ("firing", "detector")
    html = c.get("/alert/m1/abnormal_consumption").text
    assert "false_alarm: planned shift" in html
    assert c.post("/alert/m1/abnormal_consumption/verdict",
                  data={"csrf": token, "verdict": "maybe"}).status_code == 400
    fed = verdicts_for_detection(web.ws.db_path, T0 - timedelta(days=1))
    assert [(m, t, k, v) for m, t, k, v, _ in fed] == [
        ("m1", "abnormal_consumption", "sustained_rise", "false_alarm")]
    assert verdicts_for_detection(web.ws.db_path, T0 + timedelta(days=1)) == []
    scores = score_verdicts(web.ws.db)
    assert scores["type"]["abnormal_consumption"].false_alarm == 1
    assert scores["cell"]["A"].precision == 0.0


def test_resolve_reason_reaches_the_exported_transition(web: Web) -> None:
    c = web.client()
    c.login("alice")
    token = c.csrf("/alert/r1/outage")
    c.post("/alert/r1/outage/resolve", data={"csrf": token, "reason": "fuse replaced"})
    assert web.router.alert("r1/outage")["state"] == "resolved"
    transitions, _ = web.router.transitions()
    resolved = [t for t in transitions if t.state == "resolved"]
    assert [(t.fingerprint, t.by, t.reason) for t in resolved] == [
        ("r1/outage", "web:alice", "fuse replaced")]
    line = to_lines(resolved[0])[0]
    assert 'reason="fuse replaced"' in line
    firing = next(t for t in transitions if t.state == "firing")
    assert firing.reason == "" and "reason=" not in to_lines(firing)[0]


def test_cell_page_figures(tmp_path: Path) -> None:
    w = build_web(tmp_path)
    try:
        w.seed(event("m1"), now=T0)
        w.seed(event("r1", "outage"), now=T0)
        w.router.ack("m1/abnormal_consumption", by="M1", now=T0 + timedelta(minutes=10))
        w.router.ack("r1/outage", by="M1", now=T0 + timedelta(minutes=30))
        c = w.client()
        c.login("alice")
        fig = c.get("/cell/A?format=json").json()
        assert fig["median_ack_min"] == 20.0
        assert fig["by_type"] == {"abnormal_consumption": 1, "outage": 1}
        assert dict(fig["per_day"])["2026-05-04"] == 2
        assert fig["customers"] == ["C1", "C3"]
        assert "20 min" in c.get("/cell/A").text
    finally:
        w.router.close()
        w.ws.close()


def test_language_is_per_account(web: Web) -> None:
    en, zh = web.client(), web.client()
    en.login("bob")
    zh.login("carol")
    assert "My open alerts" in en.get("/alerts").text
    assert "我的待处理告警" in zh.get("/alerts").text
    token = en.csrf("/alerts")
    en.post("/language", data={"csrf": token, "language": "zh"})
    assert "我的待处理告警" in en.get("/alerts").text


def test_weekly_digest_in_app_and_by_email(web: Web, smtp_server) -> None:
    c = web.client()
    c.login("alice")
    token = c.csrf("/alert/m1/abnormal_consumption")
    c.post("/alert/m1/abnormal_consumption/verdict", data={"csrf": token,
                                                           "verdict": "confirmed"})
    smtp = web.settings.alerts.smtp.model_copy(update={"host": smtp_server.host,
                                                       "port": smtp_server.port})
    with web.ws.lock:
        digests = send_digests(web.ws.db, web.ws.registry, T0 + timedelta(days=1), smtp=smtp,
                               link="http://127.0.0.1:8080")
    alice = next(d for d in digests if d.manager_id == "M1")
    assert alice.alerts == 2 and alice.verdicts == {"confirmed": 1}
    assert alice.false_alarm_rate == 0.0
    # only Alice has an email address
    assert [e[1] for e in smtp_server.envelopes] == [["alice@example.org"]]
    body = smtp_server.messages[0].get_payload()
    assert "confirmed=1" in body and "http://127.0.0.1:8080/digest" in body
    page = c.get("/digest").text
    assert "confirmed=1" in page
    # how the week's email went, on the page: Alice's was sent, Bob has no address
    assert "Emailed to alice@example.org" in page and "digest-sent" in page
    bob = web.client()
    bob.login("bob")
    assert "Kept here only (no email)" in bob.get("/digest").text
    # a send that failed says so, with its attempts and the error
    week = alice.week_start
    with web.ws.lock:
        web.ws.db.execute("UPDATE web_digest_sends SET status='failed', attempts=2, "
                          "error='connection refused' WHERE manager_id='M1' AND "
                          "week_start=?", (week,))
    page = c.get("/digest").text
    assert "Email failed · 2× · connection refused" in page and "digest-failed" in page


def test_router_state_survives_the_web_tables(tmp_path: Path) -> None:
    """The workspace's tables sit beside the router's without disturbing it."""
    w = build_web(tmp_path)
    try:
        w.seed(event("m1"))
        w.router.close()
        again: Router = __import__("gridwatch.alerts._service", fromlist=["x"]).build_router(
            w.settings, notifiers={})
        assert again.alert("m1/abnormal_consumption") is not None
        again.close()
    finally:
        w.ws.close()


def test_tag_filter_takes_the_tag_literally(web: Web) -> None:
    from gridwatch._schemas import LoadProfile

    web.router.update_profile(LoadProfile(meter_id="r1", day=T0, customer_id="C3",
                                          tags=("night_owl",), daily_kwh=3, peak_kw=1,
                                          valley_kw=0.1), T0)
    c = web.client()
    c.login("alice")
    assert c.get("/alerts?tag=night_owl&format=json").json()["total"] == 1
    for pattern in ("night%", "night_ow_", "%"):
        assert c.get("/alerts", params={"tag": pattern, "format": "json"}).json()["total"] == 0


def test_language_switch_returns_to_this_site_only(web: Web) -> None:
    c = web.client()
    c.login("alice")
    token = c.csrf("/alerts")
    back = c.post("/language", data={"csrf": token, "language": "zh"},
                  headers={"referer": "http://testserver/cell/A?x=1"})
    assert back.headers["location"] == "/cell/A?x=1"
    away = c.post("/language", data={"csrf": token, "language": "en"},
                  headers={"referer": "http://elsewhere.example//evil"})
    assert away.headers["location"] == "/"
