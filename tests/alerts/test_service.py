"""``RouterService.from_settings``: the thread ticks and delivers on its own, with the channels
``build_router`` makes from the settings, against a real mosquitto."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from _alerts_helpers import REGISTRY, REPO, Subscriber, event
from _suite_helpers import holds

from gridwatch import load_settings
from gridwatch.alerts import RouterService

pytestmark = pytest.mark.services


def test_service_delivers_in_the_background(tmp_path: Path, mosquitto) -> None:
    (tmp_path / "registry.yaml").write_text(yaml.safe_dump(REGISTRY))
    cfg = {"mqtt": {"host": mosquitto.host, "port": mosquitto.port},
           "alerts": {"registry": str(tmp_path / "registry.yaml"),
                      "routes": str(REPO / "config" / "routes.yaml"),
                      "templates": str(REPO / "config" / "templates"),
                      "state_db": str(tmp_path / "alerts.sqlite"),
                      "jsonl_out": str(tmp_path / "alerts.jsonl"),
                      "group_wait_s": 0.2, "service_interval_s": 0.05,
                      "mqtt_client_id": "gw-service-test"}}
    (tmp_path / "gridwatch.yaml").write_text(yaml.safe_dump(cfg))
    settings = load_settings(tmp_path / "gridwatch.yaml")
    sub = Subscriber(mosquitto.host, mosquitto.port, "gridwatch/managers/M1/alerts")
    assert sub.wait_subscribed()
    service = RouterService.from_settings(settings).start()
    try:
        from datetime import UTC, datetime

        service.router.submit(event("r1", "outage", at=datetime.now(UTC)))
        msgs = sub.wait_for(1, timeout=5)
        assert [m["alerts"][0]["fingerprint"] for _, m in msgs] == ["r1/outage"]
        service.router.ack("r1/outage", by="alice")
        holds(lambda: service.errors == 0, 0.3, "the service's rounds run without errors")
    finally:
        service.stop(close=True)
        sub.close()
    assert len(sub.messages) == 1
