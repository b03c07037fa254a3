"""The generated mosquitto ACL, enforced by a private mosquitto without anonymous access: a
customer reads only its own notices, a manager only its own alerts; acknowledgements arrive on
the manager's command topic and are applied by the RouterService."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from _alerts_helpers import REGISTRY, Clock, Subscriber, event, make_router
from _suite_helpers import holds, wait_until
from pydantic import SecretStr

from gridwatch import _services
from gridwatch._settings import Settings
from gridwatch.alerts import (
    AlertSettings,
    CommandListener,
    MqttNotifier,
    Registry,
    RouterService,
    write_acl,
)
from gridwatch.alerts._acl import mosquitto_hash

pytestmark = [pytest.mark.services, pytest.mark.slow]


def test_mosquitto_hash_format() -> None:
    h = mosquitto_hash("pw", salt=b"0123456789ab")
    assert h.startswith("$7$101$MDEyMzQ1Njc4OWFi$") and len(h.split("$")[-1]) == 88


@pytest.fixture
def secured(tmp_path: Path):
    files = write_acl(Registry.model_validate(REGISTRY), AlertSettings(), tmp_path / "acl",
                      passwords={"gridwatch-alerts": "router-pass-for-tests"})
    with files.credentials.open() as fh:
        creds = {r["user"]: r["password"] for r in csv.DictReader(fh)}
    broker = _services.mosquitto(
        tmp_path / "broker", anonymous=False,
        extra_conf=f"password_file {files.passwd}\nacl_file {files.acl}\n").start()
    yield broker, creds, files
    broker.stop()


def test_acl_enforced_by_mosquitto(secured) -> None:
    broker, creds, files = secured
    assert oct(files.credentials.stat().st_mode & 0o777) == "0o600"
    assert set(creds) >= {"gridwatch-alerts", "M1", "M2", "M3", "C1", "C2"}
    assert "C3" not in creds  # residential, no notices: no login
    # Anonymous and wrong-password logins are refused.
    anon = Subscriber(broker.host, broker.port, "#")
    assert anon.wait_connected() and anon.connect_rc.is_failure
    anon.close()
    wrong = Subscriber(broker.host, broker.port, "#", username="C1", password="nope")
    assert wrong.wait_connected() and wrong.connect_rc.is_failure
    wrong.close()

    def login(user: str, topic: str) -> Subscriber:
        sub = Subscriber(broker.host, broker.port, topic, username=user, password=creds[user])
        assert sub.wait_connected() and not sub.connect_rc.is_failure, user
        assert sub.wait_subscribed(), user
        return sub

    c1_own = login("C1", "gridwatch/customers/C1/notices")
    c1_other = login("C1", "gridwatch/customers/C2/notices")
    c2_own = login("C2", "gridwatch/customers/C2/notices")
    m1_own = login("M1", "gridwatch/managers/M1/alerts")
    m2_spy = login("M2", "gridwatch/managers/M3/alerts")
    c1_wild = login("C1", "gridwatch/#")

    clock = Clock()
    notifier = MqttNotifier(broker.host, broker.port, username="gridwatch-alerts",
                            password=SecretStr(creds["gridwatch-alerts"]))
    router = make_router(clock=clock, notifiers={"mqtt": notifier}, escalate_after_s=0)
    router.submit(event("m1"))  # C1, cell A (M1)
    router.submit(event("m3"))  # C2, cell B (M3)
    clock.advance(30)
    router.tick()
    assert router.deliver_pending() == 4
    c2_own.wait_for(1)
    c1_own.wait_for(1)
    m1_own.wait_for(1)
    holds(lambda: not c1_other.messages and not m2_spy.messages, 0.5,
          "no notice reaches a reader it is not meant for")  # room for a wrong one to arrive
    assert [t for t, _ in c1_own.messages] == ["gridwatch/customers/C1/notices"]
    assert [t for t, _ in c2_own.messages] == ["gridwatch/customers/C2/notices"]
    assert c1_other.messages == []  # a customer cannot read another's notices
    assert m2_spy.messages == []  # nor a manager another manager's alerts
    assert [t for t, _ in c1_wild.messages] == ["gridwatch/customers/C1/notices"]
    assert [m["alerts"][0]["fingerprint"] for _, m in m1_own.messages] == [
        "m1/abnormal_consumption"]
    for s in (c1_own, c1_other, c2_own, m1_own, m2_spy, c1_wild):
        s.close()
    router.close()


def test_manager_acknowledges_over_mqtt(secured, tmp_path: Path) -> None:
    broker, creds, _ = secured
    settings = Settings.model_validate({
        "mqtt": {"host": broker.host, "port": broker.port},
        "alerts": {"mqtt_username": "gridwatch-alerts",
                   "mqtt_password": creds["gridwatch-alerts"],
                   "mqtt_client_id": "gw-alerts-ack-test"},
    })
    router = make_router(escalate_after_s=0, notifiers={})
    router.submit(event("m1"))
    router.submit(event("m3"))
    listener = CommandListener(settings)
    service = RouterService(router, interval_s=0.05, commands=listener).start()
    try:
        def publish(user: str, topic: str, payload: dict) -> None:
            c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"pub-{user}")
            c.username_pw_set(user, creds[user])
            c.connect(broker.host, broker.port)
            c.loop_start()
            c.publish(topic, json.dumps(payload), qos=1).wait_for_publish(5)
            c.loop_stop()
            c.disconnect()

        # The listener subscribes as it connects, before any client below can connect and
        # publish.
        wait_until(listener.connected.is_set, 5, "the command listener connected")
        # M2 (backup of cell A only) tries to write to M3's command topic: the broker drops it.
        publish("M2", "gridwatch/managers/M3/commands", {"fingerprint": "m3/abnormal_consumption"})
        # M2 acknowledges an alert of cell B, which it does not manage: rejected and audited.
        publish("M2", "gridwatch/managers/M2/commands", {"fingerprint": "m3/abnormal_consumption"})
        # M2 acknowledges an alert of cell A, where it is the backup manager.
        publish("M2", "gridwatch/managers/M2/commands", {"fingerprint": "m1/abnormal_consumption"})
        # Commands are handled in the order they arrive: once the last is, so are the others.
        wait_until(lambda: router.alert("m1/abnormal_consumption")["state"] == "acknowledged",
                   5, "m1's alert acknowledged by M2", every=0.05)
    finally:
        service.stop()
    assert router.alert("m1/abnormal_consumption")["acked_by"] == "manager:M2"
    assert router.alert("m3/abnormal_consumption")["state"] == "firing"
    rejected = [a for a in router.audit_trail() if a["action"] == "command_rejected"]
    assert len(rejected) == 1 and "does not manage cell 'B'" in rejected[0]["detail"]
    assert service.errors == 0
    router.close()
