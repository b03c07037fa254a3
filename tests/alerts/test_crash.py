"""Kill the router (SIGKILL) between enqueue and delivery, restart it: the notification is
delivered exactly once, with the same idempotency key; a restart after delivery sends nothing."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from datetime import timedelta
from pathlib import Path

import pytest
import yaml
from _alerts_helpers import REGISTRY, REPO, T0, Subscriber, event
from _suite_helpers import holds

from gridwatch import load_settings
from gridwatch.alerts import build_router

pytestmark = [pytest.mark.services, pytest.mark.slow]

CHILD = textwrap.dedent("""
    import sys, time
    from datetime import datetime, timedelta
    from pathlib import Path
    from gridwatch import Event, load_settings
    from gridwatch.alerts import build_router

    t0 = datetime.fromisoformat(sys.argv[2])
    router = build_router(load_settings(Path(sys.argv[1])), clock=lambda: t0)
    router.submit(Event.model_validate_json(sys.argv[3]), now=t0)
    made = router.tick(t0 + timedelta(seconds=31))
    print(f"ENQUEUED {made}", flush=True)
    time.sleep(60)  # killed here, before deliver_pending
""")


def write_config(tmp_path: Path, mqtt_port: int) -> Path:
    (tmp_path / "registry.yaml").write_text(yaml.safe_dump(REGISTRY))
    (tmp_path / "routes.yaml").write_text("route: {receivers: [cell_manager]}\n")
    cfg = {
        "mqtt": {"host": "127.0.0.1", "port": mqtt_port},
        "alerts": {
            "registry": str(tmp_path / "registry.yaml"),
            "routes": str(tmp_path / "routes.yaml"),
            "templates": str(REPO / "config" / "templates"),
            "state_db": str(tmp_path / "state" / "alerts.sqlite"),
            "jsonl_out": str(tmp_path / "alerts.jsonl"),
            "mqtt_client_id": "gw-crash-test",
        },
    }
    path = tmp_path / "gridwatch.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_sigkill_between_enqueue_and_delivery(tmp_path: Path, mosquitto) -> None:
    config = write_config(tmp_path, mosquitto.port)
    sub = Subscriber(mosquitto.host, mosquitto.port, "gridwatch/managers/M1/alerts")
    assert sub.wait_subscribed()
    ev = event("r1", "outage", severity="critical")
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(config), T0.isoformat(), ev.model_dump_json()],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path,
        env=os.environ | {"PYTHONPATH": str(REPO)})
    try:
        line = child.stdout.readline()
        assert line.strip() == "ENQUEUED 1", child.stderr.read() if child.poll() else line
        os.kill(child.pid, signal.SIGKILL)
        assert child.wait(10) == -signal.SIGKILL
    finally:
        if child.poll() is None:
            child.kill()
    assert sub.messages == []
    settings = load_settings(config)

    later = T0 + timedelta(seconds=31)
    delivered = []
    for _restart in range(3):
        router = build_router(settings, clock=lambda: later)
        assert router.alert("r1/outage")["state"] == "firing"
        router.tick()
        delivered.append(router.deliver_pending())
        router.close()
    assert delivered == [1, 0, 0]
    msgs = sub.wait_for(1)
    holds(lambda: len(sub.messages) == 1, 0.3, "one notification, no second")
    sub.close()
    assert len(msgs) == 1
    assert msgs[0][0] == "gridwatch/managers/M1/alerts"
    payload = msgs[0][1]
    router = build_router(settings, clock=lambda: T0)
    [row] = router.outbox()
    assert row["status"] == "delivered" and payload["key"] == row["key"]
    assert payload["alerts"][0]["fingerprint"] == "r1/outage"
    line = json.loads((tmp_path / "alerts.jsonl").read_text().splitlines()[0])
    assert (line["meter_id"], line["type"], line["severity"]) == ("r1", "outage", "critical")
    router.close()
