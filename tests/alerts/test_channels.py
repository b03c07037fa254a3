"""Each channel against its real server: mosquitto, an HTTP receiver, aiosmtpd (plain and with
STARTTLS + login), Prometheus Alertmanager and apprise (posting to the HTTP receiver)."""

from __future__ import annotations

import hashlib
import hmac
import json
import ssl
import subprocess
from datetime import timedelta
from pathlib import Path

import pytest
import requests
from _alerts_helpers import REGISTRY, Clock, Subscriber, event, make_router
from _suite_helpers import wait_until
from pydantic import SecretStr

from gridwatch._services import free_port
from gridwatch.alerts import (
    AlertmanagerNotifier,
    AppriseNotifier,
    EmailNotifier,
    MqttNotifier,
    WebhookNotifier,
)
from gridwatch.alerts._config import SmtpSettings

pytestmark = pytest.mark.services


def registry_with(manager_update: dict) -> dict:
    reg = json.loads(json.dumps(REGISTRY))
    reg["managers"][0].update(manager_update)
    return reg


def test_mqtt_manager_alert_and_customer_notice(mosquitto) -> None:
    sub = Subscriber(mosquitto.host, mosquitto.port, "gridwatch/#")
    assert sub.wait_subscribed()
    clock = Clock()
    mqtt = MqttNotifier(mosquitto.host, mosquitto.port, client_id="router-test-1")
    router = make_router(clock=clock, notifiers={"mqtt": mqtt})
    router.submit(event("m1", "over_capacity_risk", evidence={"current_kva": 470.0}))
    clock.advance(30)
    router.tick()
    assert router.deliver_pending() == 2
    msgs = dict(sub.wait_for(2))
    sub.close()
    router.close()
    assert set(msgs) == {"gridwatch/managers/M1/alerts", "gridwatch/customers/C1/notices"}
    notice = msgs["gridwatch/customers/C1/notices"]
    assert notice["recipient"] == "customer:C1" and len(notice["key"]) == 32
    assert "94% of the contracted capacity" in notice["body"]
    assert notice["alerts"][0]["fingerprint"] == "m1/over_capacity_risk"


def test_mqtt_broker_down_is_retryable(tmp_path: Path) -> None:
    from _alerts_helpers import T0

    from gridwatch.alerts import Notification

    n = Notification(key="k", recipient="manager:M1", channel="mqtt", target="t", kind="alert",
                     status="firing", subject="s", body="b", created_at=T0)
    result = MqttNotifier("127.0.0.1", free_port(), timeout_s=1).send(n)
    assert not result.ok and result.retryable


def test_webhook_fails_three_times_then_delivered_once(http_receiver) -> None:
    http_receiver.fail_first = 3
    secret = SecretStr("s3cr3t-for-tests")
    clock = Clock()
    router = make_router(
        clock=clock, registry=registry_with({"channels": ["webhook"],
                                             "webhook": http_receiver.url}),
        notifiers={"webhook": WebhookNotifier(secret), "mqtt": MqttNotifier("127.0.0.1", 1)},
        retry={"base_s": 1, "max_s": 30, "max_attempts": 10},
    )
    router.submit(event("r1", "outage", severity="critical"))
    clock.advance(30)
    router.tick()
    delivered = 0
    for _ in range(30):
        delivered += router.deliver_pending()
        clock.advance(1)
    assert http_receiver.attempts == 4
    assert delivered == 1 and len(http_receiver.accepted) == 1
    req = http_receiver.accepted[0]
    body = req["body"]
    expected = "sha256=" + hmac.new(b"s3cr3t-for-tests", body, hashlib.sha256).hexdigest()
    assert req["headers"]["X-Gridwatch-Signature"] == expected
    payload = json.loads(body)
    assert payload["version"] == "4" and payload["status"] == "firing"
    assert payload["receiver"] == "manager:M1" and payload["groupKey"]
    assert {"groupLabels", "commonLabels", "commonAnnotations", "externalURL",
            "truncatedAlerts"} <= set(payload)
    alert = payload["alerts"][0]
    assert alert["status"] == "firing" and alert["labels"]["alertname"] == "outage"
    assert alert["labels"]["meter_id"] == "r1" and alert["fingerprint"] == "r1/outage"
    assert {"annotations", "startsAt", "endsAt", "generatorURL"} <= set(alert)
    assert req["headers"]["Idempotency-Key"] == router.outbox("delivered")[0]["key"]
    trail = [a["action"] for a in router.audit_trail()]
    assert trail.count("delivery_retry") == 3 and trail.count("delivered") == 1
    router.close()


def test_email_over_smtp(smtp_server) -> None:
    clock = Clock()
    smtp = SmtpSettings(host=smtp_server.host, port=smtp_server.port, sender="gw@example.org")
    router = make_router(clock=clock,
                         registry=registry_with({"channels": ["email"],
                                                 "email": "alice@example.org"}),
                         notifiers={"email": EmailNotifier(smtp), "mqtt": MqttNotifier("x", 1)})
    router.submit(event("r1", "outage"))
    clock.advance(30)
    router.tick()
    assert router.deliver_pending() == 1
    msg = smtp_server.messages[0]
    assert smtp_server.envelopes[0] == ("gw@example.org", ["alice@example.org"])
    assert "outage" in msg["Subject"]
    assert msg["X-Idempotency-Key"] == router.outbox("delivered")[0]["key"]
    assert "Acknowledge: gridwatch alerts ack r1/outage" in msg.get_payload(decode=True).decode()
    router.close()


@pytest.fixture
def tls_smtp(tmp_path: Path):
    """aiosmtpd requiring STARTTLS and login, with a self-signed certificate."""
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult

    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert, key)
    received: list = []

    class Handler:
        async def handle_DATA(self, server, session, envelope):
            received.append((session.authenticated, envelope.content))
            return "250 OK"

    def auth(server, session, envelope, mechanism, data):
        ok = data.login == b"gw" and data.password == b"pa55-for-tests"
        return AuthResult(success=ok)

    port = free_port()
    controller = Controller(Handler(), hostname="127.0.0.1", port=port, tls_context=server_ctx,
                            require_starttls=True, authenticator=auth, auth_require_tls=True)
    controller.start()
    yield port, cert, received
    controller.stop()


def test_email_starttls_and_login(tls_smtp) -> None:
    port, cert, received = tls_smtp
    clock = Clock()
    smtp = SmtpSettings(host="127.0.0.1", port=port, starttls=True, username="gw",
                        password=SecretStr("pa55-for-tests"))
    client_ctx = ssl.create_default_context(cafile=str(cert))
    router = make_router(clock=clock,
                         registry=registry_with({"channels": ["email"],
                                                 "email": "alice@example.org"}),
                         notifiers={"email": EmailNotifier(smtp, tls_context=client_ctx)})
    router.submit(event("r1", "outage"))
    clock.advance(30)
    router.tick()
    assert router.deliver_pending() == 1
    assert len(received) == 1 and received[0][0] is True
    # Without STARTTLS the server refuses to take the mail: not delivered, not retried blindly.
    plain = EmailNotifier(smtp.model_copy(update={"starttls": False, "username": None}))
    from gridwatch.alerts import Notification

    n = Notification.model_validate_json(router.outbox("delivered")[0]["payload"])
    result = plain.send(n)
    assert not result.ok and "530" in result.detail and not result.retryable
    assert len(received) == 1
    router.close()


def test_alertmanager_receives_and_resolves(alertmanager) -> None:
    clock = Clock()
    routes = f"""
route:
  receivers: [cell_manager, am]
receivers:
  am: {{alertmanager: "{alertmanager.url}"}}
"""
    from datetime import UTC, datetime

    clock.now = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=60)
    router = make_router(clock=clock, routes=routes, escalate_after_s=0,
                         notifiers={"alertmanager": AlertmanagerNotifier()})
    router.submit(event("r7", "tamper", at=clock.now))
    clock.advance(30)
    router.tick()
    router.deliver_pending()
    assert router.outbox("delivered")[0]["channel"] == "alertmanager"

    def am_alerts() -> list[dict]:
        resp = requests.get(f"{alertmanager.url}/api/v2/alerts",
                            params={"filter": 'meter_id="r7"'}, timeout=5)
        resp.raise_for_status()
        return resp.json()

    found = am_alerts()
    assert len(found) == 1
    assert found[0]["labels"]["alertname"] == "tamper"
    assert found[0]["labels"]["grid_cell"] == "A"
    assert found[0]["status"]["state"] == "active"
    router.submit(event("r7", "tamper", state="resolved", at=clock.now))
    clock.advance(300)
    router.tick()
    assert router.deliver_pending() == 1
    # Resolved alerts leave the active list.
    wait_until(lambda: am_alerts() == [], 5, "no active alert for r7", detail=am_alerts)
    router.close()


def test_apprise_json_url_reaches_receiver(http_receiver) -> None:
    clock = Clock()
    url = f"json://127.0.0.1:{http_receiver.port}/hook"
    router = make_router(clock=clock, registry=registry_with({"channels": ["apprise"],
                                                              "apprise": [url]}),
                         notifiers={"apprise": AppriseNotifier()})
    router.submit(event("r1", "outage"))
    clock.advance(30)
    router.tick()
    assert router.deliver_pending() == 1
    assert len(http_receiver.accepted) == 1
    body = json.loads(http_receiver.accepted[0]["body"])
    assert "outage" in body["title"] and "r1" in body["message"]
    http_receiver.fail_first = 10**6  # now the service refuses: retryable, retried later
    router.submit(event("r2", "outage", at=clock.advance(400)))
    clock.advance(400)
    router.tick()
    assert router.deliver_pending() == 0
    pending = router.outbox("pending")
    assert len(pending) == 1 and pending[0]["attempts"] == 1
    router.close()
