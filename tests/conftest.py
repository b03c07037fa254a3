"""Fixtures that start private servers on free loopback ports and stop them afterwards, and the
rules that keep the markers true.

A test that needs a server fails when the server cannot start (the binary is missing, or it
crashes); it never skips silently.

Markers (``make test-fast`` runs ``-m "not services and not slow"``):

* ``services``: the test starts a private server. A test whose fixtures include one of
  ``SERVICE_FIXTURES`` (directly or through another fixture) gets the marker at collection; a
  test that starts a server itself must carry it, or it fails saying so.
* ``slow``: the test takes more than a few seconds on a 2-core machine.

State: the run sets ``GRIDWATCH_ENGINE__DATA_DIR`` to a temporary directory of its own (inherited by
the ``gridwatch`` processes tests start), so a setting left at its default never writes into the
checkout, the user's state directory or ``/var/lib/gridwatch``.

With ``GRIDWATCH_REQUIRE_SERVICES=1`` (set by ``.ci/run``) the run stops before the first test
when a server binary is missing, and a skipped test counts as a failure.

Shared helpers: fixtures live in a folder's ``conftest.py``; plain helper functions and classes
live in a module named ``_<folder>_helpers.py`` beside the tests and are imported by name (the
test folders are on the import path through ``pythonpath`` in ``pyproject.toml``, since
``--import-mode=importlib`` cannot import a conftest).
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from pathlib import Path
from typing import Any

import pytest
from _suite_helpers import wait_until

from gridwatch import _services

#: Fixtures that start a private server; a test that uses one (even through another fixture)
#: is marked ``services``.
SERVICE_FIXTURES = frozenset({
    "mosquitto", "fresh_mosquitto", "influxdb", "victoria_metrics", "alertmanager",
    "smtp_server", "engine_process",
})

#: The servers' handles, built (not started) to check that every binary is installed.
_SERVER_FACTORIES = (_services.mosquitto, _services.influxdb, _services.victoria_metrics,
                     _services.alertmanager)


def require_services() -> bool:
    """Whether this run must have every server (``GRIDWATCH_REQUIRE_SERVICES`` set, not 0)."""
    return os.environ.get("GRIDWATCH_REQUIRE_SERVICES", "").strip() not in ("", "0")


def missing_servers(workdir: Path) -> list[str]:
    """What keeps a server from starting here: one line per missing binary or module."""
    missing: list[str] = []
    for factory in _SERVER_FACTORIES:
        try:
            factory(workdir / factory.__name__)
        except _services.ServiceError as exc:
            missing.append(str(exc))
    if importlib.util.find_spec("aiosmtpd") is None:
        missing.append("aiosmtpd is not installed: run 'make setup'")
    return missing


_DATA_DIR_VAR = "GRIDWATCH_ENGINE__DATA_DIR"
_saved_data_dir = pytest.StashKey[str | None]()
_test_data_dir = pytest.StashKey[str]()


def pytest_configure(config: pytest.Config) -> None:
    import tempfile

    config.stash[_saved_data_dir] = os.environ.get(_DATA_DIR_VAR)
    config.stash[_test_data_dir] = tempfile.mkdtemp(prefix="gridwatch-test-data-")
    os.environ[_DATA_DIR_VAR] = config.stash[_test_data_dir]


def pytest_unconfigure(config: pytest.Config) -> None:
    import shutil

    if _test_data_dir not in config.stash:
        return
    shutil.rmtree(config.stash[_test_data_dir], ignore_errors=True)
    saved = config.stash[_saved_data_dir]
    if saved is None:
        os.environ.pop(_DATA_DIR_VAR, None)
    else:
        os.environ[_DATA_DIR_VAR] = saved


def pytest_sessionstart(session: pytest.Session) -> None:
    if not require_services():
        return
    import tempfile

    with tempfile.TemporaryDirectory(prefix="gridwatch-preflight-") as tmp:
        missing = missing_servers(Path(tmp))
    if missing:
        pytest.exit("GRIDWATCH_REQUIRE_SERVICES is set and servers are missing:\n  "
                    + "\n  ".join(missing), returncode=pytest.ExitCode.USAGE_ERROR)


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # tryfirst: before ``-m`` deselects by marker.
    for item in items:
        if (SERVICE_FIXTURES.intersection(getattr(item, "fixturenames", ()))
                and item.get_closest_marker("services") is None):
            item.add_marker(pytest.mark.services)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]
                              ) -> Generator[None, Any, None]:
    outcome = yield
    report = outcome.get_result()
    if report.skipped and require_services() and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        report.longrepr = (f"{item.nodeid} was skipped, and GRIDWATCH_REQUIRE_SERVICES forbids "
                           f"skips: {report.longrepr}")


@pytest.fixture(autouse=True)
def _servers_only_when_marked(request: pytest.FixtureRequest,
                              monkeypatch: pytest.MonkeyPatch) -> None:
    """A test not marked ``services`` that starts a server fails, naming the marker."""
    if request.node.get_closest_marker("services") is not None:
        return

    def refuse(self: _services.Service) -> _services.Service:
        pytest.fail(f"{request.node.nodeid} starts {self.name} but is not marked "
                    f"@pytest.mark.services (make test-fast would start servers)")

    monkeypatch.setattr(_services.Service, "start", refuse)


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
        proc = self.proc

        def text() -> str:
            return self.log_path.read_bytes()[offset:].decode(errors="replace")

        def running() -> None:
            if proc.poll() is not None:
                raise AssertionError(f"engine exited with {proc.returncode}:\n{text()}")

        wait_until(lambda: ready_line in text(), timeout, f"the engine to log {ready_line!r}",
                   running, self.log)
        return self

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
        eng = EngineProcess(config, tmp_path / log_name, args)
        started.append(eng)  # (stopped after the test also when it never gets ready)
        return eng.start(ready_line, timeout)

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
