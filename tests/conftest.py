"""Fixtures that start private servers on free loopback ports and stop them afterwards.

A test that needs a server fails when the server cannot start (the binary is missing, or it
crashes); it never skips silently.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
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
class EngineProcess:
    """``gridwatch run`` as a process of its own, for tests that kill it or need it isolated."""

    config: Path
    log_path: Path
    args: tuple[str, ...] = ()
    proc: subprocess.Popen[bytes] | None = None

    def start(self, ready_line: str = "subscribed to", timeout: float = 60.0) -> EngineProcess:
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "gridwatch", "run", *self.args],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env=os.environ | {"GRIDWATCH_CONFIG": str(self.config)},
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.log_path.read_bytes()[offset:].decode(errors="replace")
            if ready_line in text:
                return self
            if self.proc.poll() is not None:
                raise AssertionError(f"engine exited with {self.proc.returncode}:\n{text}")
            time.sleep(0.1)
        raise AssertionError(f"engine not ready in {timeout}s:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.proc = None

    def kill(self) -> None:
        self.stop(signal.SIGKILL)


@pytest.fixture
def engine_process(tmp_path: Path) -> Iterator[Callable[..., EngineProcess]]:
    """Start ``gridwatch run`` with a config file; every engine started is stopped after."""
    started: list[EngineProcess] = []

    def start(config: Path, *args: str, log_name: str = "engine.log",
              ready_line: str = "subscribed to", timeout: float = 60.0) -> EngineProcess:
        eng = EngineProcess(config, tmp_path / log_name, args).start(ready_line, timeout)
        started.append(eng)
        return eng

    yield start
    for eng in started:
        eng.stop()


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
