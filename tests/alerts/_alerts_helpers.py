"""Helpers for the alert router tests: a small registry, a router factory with a settable clock,
a recording notifier for pure tests, a real HTTP receiver and an MQTT subscriber.

Imported by name (``from _alerts_helpers import event``): its folder is on the import path
(``pythonpath``). The fixtures are in ``conftest.py``.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from gridwatch import Event
from gridwatch._services import free_port
from gridwatch.alerts import (
    AlertSettings,
    Delivery,
    Notification,
    Registry,
    Router,
    RouteTree,
    Templates,
)

REPO = Path(__file__).resolve().parents[2]
TEMPLATES = REPO / "config" / "templates"
#: Monday 2026-05-04 10:00 in Shanghai: outside the default quiet hours.
T0 = datetime(2026, 5, 4, 2, 0, tzinfo=UTC)

REGISTRY = {
    "managers": [
        {"id": "M1", "name": "Alice", "channels": ["mqtt"], "language": "en"},
        {"id": "M2", "name": "Bob", "channels": ["mqtt"], "language": "en"},
        {"id": "M3", "name": "Carol", "channels": ["mqtt"]},
    ],
    "cells": [
        {"id": "A", "primary": "M1", "backup": "M2"},
        {"id": "B", "primary": "M3", "backup": "M1"},
    ],
    "customers": [
        {"id": "C1", "name": "Acme Steel", "class": "industrial", "contracted_kva": 500,
         "grid_cell": "A", "meters": ["m1", {"id": "m2", "phases": 3}], "notices": True,
         "language": "en"},
        {"id": "C2", "name": "Beta Foods", "class": "industrial", "contracted_kva": 250,
         "grid_cell": "B", "meters": ["m3"], "notices": True},
        {"id": "C3", "name": "Flat 3", "class": "residential", "grid_cell": "A",
         "meters": [f"r{i}" for i in range(40)]},
    ],
}

ROUTES = """
route:
  receivers: [cell_manager]
  routes:
    - name: industrial
      match: {customer_class: industrial}
      receivers: [customer]
      continue: true
    - name: managers
      receivers: [cell_manager]
"""


@dataclass
class Recorder:
    """A notifier that keeps what it was given (pure router tests only)."""

    sent: list[Notification] = field(default_factory=list)
    fail_next: int = 0

    def send(self, notification: Notification) -> Delivery:
        if self.fail_next:
            self.fail_next -= 1
            return Delivery.retry("told to fail")
        self.sent.append(notification)
        return Delivery.success()


class Clock:
    def __init__(self, start: datetime = T0) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> datetime:
        self.now += timedelta(seconds=seconds)
        return self.now


def event(meter: str = "m1", type_: str = "abnormal_consumption", *, state: str = "firing",
          severity: str = "warning", at: datetime = T0, **kw: Any) -> Event:
    return Event(meter_id=meter, type=type_, severity=severity, score=kw.pop("score", 8.0),
                 onset=kw.pop("onset", at - timedelta(minutes=15)), raised_at=at, state=state,
                 summary=kw.pop("summary", "load far above usual"),
                 evidence=kw.pop("evidence", {"kw": 300.0, "expected_kw": 100.0}), **kw)


def make_router(*, db: Any = ":memory:", routes: str = ROUTES, registry: dict | None = None,
                notifiers: dict | None = None, clock: Clock | None = None,
                jsonl_out: Path | None = None, **settings: Any) -> Router:
    base: dict[str, Any] = {"group_wait_s": 30, "group_interval_s": 300,
                            "repeat_interval_s": 3600, "escalate_after_s": 1800}
    cfg = AlertSettings.model_validate(base | settings)
    tree = RouteTree.parse(yaml.safe_load(routes))
    return Router(Registry.model_validate(registry or REGISTRY), tree, db=db,
                  templates=Templates(TEMPLATES), notifiers=notifiers or {"mqtt": Recorder()},
                  settings=cfg, clock=clock or Clock(), jsonl_out=jsonl_out,
                  inhibit_rules=tree.inhibit)


# ------------------------------------------------------------------------------ HTTP receiver
@dataclass
class HttpReceiver:
    """A real HTTP server on a free loopback port: answers 503 ``fail_first`` times, then 200,
    and keeps every request it accepted."""

    port: int
    fail_first: int = 0
    accepted: list[dict[str, Any]] = field(default_factory=list)
    attempts: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"


# ------------------------------------------------------------------------------ MQTT
class Subscriber:
    """A paho client that subscribes and collects messages (QoS 1)."""

    def __init__(self, host: str, port: int, topic: str, *, username: str | None = None,
                 password: str | None = None, client_id: str | None = None) -> None:
        import paho.mqtt.client as mqtt

        self.messages: list[tuple[str, dict[str, Any]]] = []
        self.granted: list[Any] = []
        self._subscribed = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2,
                                  client_id=client_id or f"sub-{free_port()}",
                                  protocol=mqtt.MQTTv5)
        if username:
            self.client.username_pw_set(username, password)
        self.connect_rc: Any = None
        self._connected = threading.Event()

        def on_connect(c: Any, u: Any, flags: Any, rc: Any, props: Any = None) -> None:
            self.connect_rc = rc
            self._connected.set()
            if not rc.is_failure:
                c.subscribe(topic, qos=1)

        def on_subscribe(c: Any, u: Any, mid: Any, rcs: Any, props: Any = None) -> None:
            self.granted = list(rcs)
            self._subscribed.set()

        def on_message(c: Any, u: Any, msg: Any) -> None:
            self.messages.append((msg.topic, json.loads(msg.payload)))

        self.client.on_connect = on_connect
        self.client.on_subscribe = on_subscribe
        self.client.on_message = on_message
        self.client.connect(host, port)
        self.client.loop_start()

    def wait_subscribed(self, timeout: float = 5.0) -> bool:
        return self._subscribed.wait(timeout)

    def wait_connected(self, timeout: float = 5.0) -> bool:
        return self._connected.wait(timeout)

    def wait_for(self, n: int, timeout: float = 5.0) -> list[tuple[str, dict[str, Any]]]:
        deadline = time.monotonic() + timeout
        while len(self.messages) < n and time.monotonic() < deadline:
            time.sleep(0.02)
        return self.messages

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


