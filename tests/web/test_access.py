"""Every access rule of the workspace, tried from the wrong side: another manager's cell and
alert, another customer's meter and notice, forged forms, replayed and tampered cookies,
guessed passwords, disabled accounts."""

from __future__ import annotations

import re

from _web_helpers import PASSWORD, T0, Web

from gridwatch.web import _accounts as acc
from gridwatch.web._app import SESSION_COOKIE


def test_login_and_the_list_of_ones_own_cells(web: Web) -> None:
    c = web.client()
    resp = c.login("alice")
    assert resp.status_code == 303 and resp.headers["location"] == "/"
    cookie = resp.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=lax" in cookie
    data = c.get("/alerts?format=json").json()
    assert data["cells"] == ["A"]
    assert {a["fingerprint"] for a in data["alerts"]} == {"m1/abnormal_consumption",
                                                          "r1/outage"}
    # the backup manager of both cells sees both
    b = web.client()
    b.login("bob")
    assert b.get("/alerts?format=json").json()["total"] == 4
    # asking for a cell that is not one's own shows one's own cells only
    assert {a["grid_cell"] for a in c.get("/alerts?cell=B&format=json").json()["alerts"]} \
        == {"A"}


def test_another_managers_cell_alert_customer_are_out_of_reach(web: Web) -> None:
    c = web.client()
    c.login("alice")
    assert c.get("/alert/m3/outage").status_code == 404
    assert c.get("/alert/m3/outage/chart").status_code == 404
    assert c.get("/cell/B").status_code == 404
    assert c.get("/customer/C2").status_code == 404
    assert c.get("/alert/m1/abnormal_consumption").status_code == 200
    token = c.csrf("/alert/m1/abnormal_consumption")
    for action in ("ack", "resolve", "verdict"):
        resp = c.post(f"/alert/m3/outage/{action}",
                      data={"csrf": token, "verdict": "false_alarm", "reason": "x"})
        assert resp.status_code == 404
    row = web.router.alert("m3/outage")
    assert row is not None and row["state"] == "firing"
    with web.ws.lock:
        assert web.ws.db.execute("SELECT COUNT(*) FROM web_verdicts").fetchone()[0] == 0
        denied = web.ws.db.execute("SELECT COUNT(*) FROM web_audit WHERE action='denied' AND "
                                   "username='alice'").fetchone()[0]
    assert denied == 3


def test_forged_forms_are_refused(web: Web) -> None:
    c = web.client()
    c.login("alice")
    url = "/alert/m1/abnormal_consumption/ack"
    assert c.post(url, data={}).status_code == 403
    assert c.post(url, data={"csrf": "forged"}).status_code == 403
    other = web.client()
    other.login("bob")
    bobs = other.csrf("/alert/m1/abnormal_consumption")
    assert c.post(url, data={"csrf": bobs}).status_code == 403  # another session's token
    assert web.router.alert("m1/abnormal_consumption")["state"] == "firing"
    good = c.csrf("/alert/m1/abnormal_consumption")
    assert c.post(url, data={"csrf": good}).status_code == 303
    assert web.router.alert("m1/abnormal_consumption")["state"] == "acknowledged"
    assert web.router.alert("m1/abnormal_consumption")["acked_by"] == "web:alice"
    # a login form posted without the login page's cookie (cross-site) is refused too
    fresh = web.client()
    resp = fresh.post("/login", data={"username": "alice", "password": PASSWORD,
                                      "csrf": "anything"})
    assert resp.status_code == 403


def test_replayed_and_tampered_cookies_do_not_log_in(web: Web) -> None:
    c = web.client()
    c.login("alice")
    cookie = c.http.cookies[SESSION_COOKIE]
    token = c.csrf("/alerts")
    assert c.post("/logout", data={"csrf": token}).status_code == 303
    replay = web.client()
    replay.http.cookies.set(SESSION_COOKIE, cookie)
    resp = replay.get("/alerts")
    assert resp.status_code == 303 and resp.headers["location"].startswith("/login")
    assert replay.post("/alert/m1/abnormal_consumption/ack",
                       data={"csrf": token}).status_code == 401
    tampered = web.client()
    tampered.http.cookies.set(SESSION_COOKIE, cookie[:-2] + ("AA" if cookie[-2:] != "AA"
                                                             else "BB"))
    assert tampered.get("/alerts").status_code == 303


def test_new_password_and_disabled_account_end_sessions(web: Web) -> None:
    c = web.client()
    c.login("alice")
    assert c.get("/alerts").status_code == 200
    with web.ws.lock:
        acc.set_password(web.ws.db, "alice", "another long password", T0)
    assert c.get("/alerts").status_code == 303
    assert c.login("alice").status_code == 401
    assert c.login("alice", "another long password").status_code == 303
    with web.ws.lock:
        acc.set_disabled(web.ws.db, "alice", True, T0)
    assert c.get("/alerts").status_code == 303
    assert c.login("alice", "another long password").status_code == 401


def test_login_rate_limit(web: Web) -> None:
    c = web.client()
    for _ in range(web.settings.web.login_max_failures):
        assert c.login("alice", "wrong password!").status_code == 401
    # now even the right password is refused for a while
    resp = c.login("alice")
    assert resp.status_code == 429
    # another account from the same client address is throttled too
    assert c.login("bob").status_code == 429
    with web.ws.lock:
        actions = [r[0] for r in web.ws.db.execute("SELECT action FROM web_audit")]
    assert actions.count("login_failed") == 5 and "login_throttled" in actions


def test_customer_contact_sees_only_its_own_notices(web: Web) -> None:
    c = web.client()
    c.login("acme")
    notices = c.get("/portal?format=json").json()["notices"]
    # C1's m1 alert went to C1 as a notice; r1's outage belongs to another customer
    assert [n["fingerprint"] for n in notices] == ["m1/abnormal_consumption"]
    assert c.get("/portal/notice/m1/abnormal_consumption").status_code == 200
    assert c.get("/portal/notice/m3/abnormal_consumption").status_code == 404  # C2's
    assert c.get("/portal/notice/r1/outage").status_code == 404
    assert c.get("/alerts").status_code == 404  # manager pages
    assert c.get("/alert/m1/abnormal_consumption").status_code == 404
    assert c.get("/customer/C2").status_code == 404
    assert c.get("/cell/A").status_code == 404
    token = c.csrf("/portal/notice/m1/abnormal_consumption")
    assert c.post("/portal/notice/m3/abnormal_consumption/ack",
                  data={"csrf": token}).status_code == 404
    assert c.post("/portal/notice/m1/abnormal_consumption/ack",
                  data={"csrf": token}).status_code == 303
    assert "notice-ack" not in c.get("/portal/notice/m1/abnormal_consumption").text
    # the customer's acknowledgement does not acknowledge the manager's alert
    assert web.router.alert("m1/abnormal_consumption")["state"] == "firing"
    # a manager cannot use the portal either
    m = web.client()
    m.login("alice")
    assert m.get("/portal/notice/m1/abnormal_consumption").status_code == 404


def test_one_time_login_works_once(web: Web) -> None:
    with web.ws.lock:
        token = acc.issue_login_token(web.ws.db, "alice", T0)
    c = web.client()
    assert c.get(f"/login/once?token={token}").headers["location"] == "/"
    assert c.get("/alerts").status_code == 200
    again = web.client()
    assert again.get(f"/login/once?token={token}").headers["location"] == "/login"
    assert again.get("/alerts").status_code == 303


def test_pages_load_nothing_from_elsewhere(web: Web) -> None:
    c = web.client()
    c.login("alice")
    for url in ("/login", "/alerts", "/alert/m1/abnormal_consumption", "/customer/C1",
                "/cell/A", "/digest"):
        resp = c.get(url)
        assert resp.status_code == 200, url
        assert "default-src 'self'" in resp.headers["content-security-policy"]
        refs = re.findall(r'(?:src|href|action)="([^"]*)"', resp.text)
        assert refs and all(r.startswith(("/", "?", "#")) for r in refs), (url, refs)
    js = c.get("/static/htmx.min.js")
    assert js.status_code == 200 and "htmx" in js.text
    assert c.get("/static/htmx-LICENSE.txt").status_code == 200
