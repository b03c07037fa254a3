"""Fixtures that start private servers on free loopback ports and stop them afterwards.

A test that needs a server fails when the server cannot start (the binary is missing, or it
crashes); it never skips silently.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from pathlib import Path

import pytest

from gridwatch import _services


@pytest.fixture(scope="session")
def services_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("services")


@pytest.fixture(scope="session")
def mosquitto(services_dir: Path) -> Iterator[_services.Service]:
    """A private mosquitto shared by the session (persistent sessions, QoS 1)."""
    svc = _services.mosquitto(services_dir / "mosquitto").start()
    yield svc
    svc.stop()


@pytest.fixture
def fresh_mosquitto(tmp_path: Path) -> Iterator[_services.Service]:
    """A mosquitto of the test's own, for tests that kill or restart the broker."""
    svc = _services.mosquitto(tmp_path / "mosquitto").start()
    yield svc
    svc.stop()


@pytest.fixture(scope="session")
def influxdb(services_dir: Path) -> Iterator[_services.Service]:
    """A private InfluxDB 1.6.7 (v1 /write and InfluxQL /query)."""
    svc = _services.influxdb(services_dir / "influxdb").start()
    yield svc
    svc.stop()


@pytest.fixture(scope="session")
def victoria_metrics(services_dir: Path) -> Iterator[_services.Service]:
    """A private VictoriaMetrics (InfluxDB v2 write endpoint /api/v2/write)."""
    svc = _services.victoria_metrics(services_dir / "victoria-metrics").start()
    yield svc
    svc.stop()


@pytest.fixture(scope="session")
def alertmanager(services_dir: Path) -> Iterator[_services.Service]:
    """A private Prometheus Alertmanager."""
    svc = _services.alertmanager(services_dir / "alertmanager").start()
    yield svc
    svc.stop()


@dataclass
class SmtpSink:
    """A real SMTP server (aiosmtpd) on a loopback port; received messages are kept in order."""

    host: str
    port: int
    messages: list[Message] = field(default_factory=list)
    envelopes: list[tuple[str, list[str]]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


@pytest.fixture
def smtp_server() -> Iterator[SmtpSink]:
    from aiosmtpd.controller import Controller

    sink = SmtpSink("127.0.0.1", _services.free_port())

    class Handler:
        async def handle_DATA(self, server, session, envelope):
            with sink.lock:
                raw = envelope.original_content or envelope.content
                sink.messages.append(message_from_bytes(raw))
                sink.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
            return "250 OK"

    controller = Controller(Handler(), hostname=sink.host, port=sink.port)
    controller.start()
    yield sink
    controller.stop()
    asyncio.set_event_loop(None)
