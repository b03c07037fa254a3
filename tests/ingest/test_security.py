"""TLS and passwords: the right credentials connect, wrong ones are refused with a clear error
that never shows the password."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from _ingest_helpers import (
    journal_keys,
    make_settings,
    reading_doc,
)
from _suite_helpers import wait_until
from prometheus_client import CollectorRegistry

from gridwatch import _services
from gridwatch.ingest import Collector, ConnectError

pytestmark = pytest.mark.services

USER = "meter-collector"
PASSWORD = "s3cret-Kx9-tls"


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def _make_ca(d: Path, name: str) -> None:
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
             "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.crt", "-days", "2",
             "-subj", f"/CN={name}", cwd=d)


def _make_cert(d: Path, name: str, ca: str, san: str | None) -> None:
    _openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={name}", cwd=d)
    ext = d / f"{name}.ext"
    ext.write_text(f"subjectAltName={san}\n" if san else "basicConstraints=CA:FALSE\n")
    _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.crt", "-CAkey", f"{ca}.key",
             "-CAcreateserial", "-out", f"{name}.crt", "-days", "2", "-extfile", str(ext),
             cwd=d)


@dataclass
class TlsBroker:
    service: _services.Service
    tls_port: int
    certs: Path


@pytest.fixture
def tls_broker(tmp_path: Path) -> Iterator[TlsBroker]:
    certs = tmp_path / "certs"
    certs.mkdir()
    _make_ca(certs, "ca")
    _make_ca(certs, "other-ca")
    _make_cert(certs, "server", "ca", "IP:127.0.0.1,DNS:localhost")
    _make_cert(certs, "client", "ca", None)
    passwd = certs / "passwd"
    binary = shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"
    subprocess.run([binary, "-c", "-b", str(passwd), USER, PASSWORD], check=True,
                   capture_output=True)
    tls_port = _services.free_port()
    extra = (
        f"password_file {passwd}\n"
        f"listener {tls_port} 127.0.0.1\n"
        f"cafile {certs / 'ca.crt'}\n"
        f"certfile {certs / 'server.crt'}\n"
        f"keyfile {certs / 'server.key'}\n"
        f"require_certificate true\n"
    )
    svc = _services.mosquitto(tmp_path / "mq-tls", extra_conf=extra, anonymous=False).start()
    wait_until(lambda: _services._tcp_open(tls_port), 10, "the TLS listener")
    yield TlsBroker(svc, tls_port, certs)
    svc.stop()


def _tls_settings(b: TlsBroker, tmp: Path, password: str, ca: str = "ca.crt", **mqtt):
    tls = {"enabled": True, "ca_file": b.certs / ca, "cert_file": b.certs / "client.crt",
           "key_file": b.certs / "client.key"}
    return make_settings(b.tls_port, tmp, client_id="gw-tls", mqtt_extra={
        "username": USER, "password": password, "tls": tls, **mqtt})


def test_tls_with_right_credentials_collects(tls_broker: TlsBroker, tmp_path: Path,
                                            publisher_factory) -> None:
    settings = _tls_settings(tls_broker, tmp_path, PASSWORD)
    with Collector(settings, registry=CollectorRegistry()) as c:
        c.wait_ready(15)
        pub = publisher_factory(tls_broker.service.port, client_id="pub-tls", username=USER,
                                password=PASSWORD)
        doc = reading_doc(1)
        pub.publish(f"meters/r/{doc['meter_id']}/reading", json.dumps(doc).encode())
        wait_until(lambda: c.stats.accepted == 1, 15, "the reading over TLS")
    assert journal_keys(settings.ingest.journal_dir) == [(doc["meter_id"], doc["ts"])]


def test_password_from_file(tls_broker: TlsBroker, tmp_path: Path) -> None:
    pw_file = tmp_path / "mqtt-password"
    pw_file.write_text(PASSWORD + "\n")
    settings = _tls_settings(tls_broker, tmp_path, None, password_file=pw_file)  # type: ignore
    with Collector(settings, registry=CollectorRegistry()) as c:
        c.wait_ready(15)


def test_wrong_password_refused_with_clear_error(tls_broker: TlsBroker, tmp_path: Path) -> None:
    wrong = "not-the-Pw-42"
    settings = _tls_settings(tls_broker, tmp_path, wrong)
    c = Collector(settings, registry=CollectorRegistry()).start()
    try:
        with pytest.raises(ConnectError) as err:
            c.wait_ready(15)
    finally:
        c.stop()
    msg = str(err.value)
    assert "bad user name or password" in msg.lower() or "not authorized" in msg.lower(), msg
    assert USER in msg and f"127.0.0.1:{tls_broker.tls_port}" in msg
    assert wrong not in msg and PASSWORD not in msg
    assert c.failed == msg


def test_untrusted_server_certificate_refused(tls_broker: TlsBroker, tmp_path: Path) -> None:
    settings = _tls_settings(tls_broker, tmp_path, PASSWORD, ca="other-ca.crt")
    c = Collector(settings, registry=CollectorRegistry()).start()
    try:
        with pytest.raises(ConnectError) as err:
            c.wait_ready(3)
    finally:
        c.stop()
    assert "certificate verify failed" in str(err.value).lower(), str(err.value)
    assert PASSWORD not in str(err.value)


def test_collect_command_refuses_wrong_password_from_environment(
        tls_broker: TlsBroker, tmp_path: Path) -> None:
    """``gridwatch collect`` exits 2 with the broker's refusal; the password (taken from
    GRIDWATCH_MQTT__PASSWORD) appears nowhere in its output."""
    import os
    import sys

    import yaml

    wrong = "wrong-Pw-from-env-7"
    cfg = {
        "mqtt": {"port": tls_broker.tls_port, "client_id": "gw-cli", "username": USER,
                 "tls": {"enabled": True, "ca_file": str(tls_broker.certs / "ca.crt"),
                         "cert_file": str(tls_broker.certs / "client.crt"),
                         "key_file": str(tls_broker.certs / "client.key")}},
        "ingest": {"journal_dir": str(tmp_path / "j"), "deadletter_dir": str(tmp_path / "d")},
    }
    config = tmp_path / "gw.yaml"
    config.write_text(yaml.safe_dump(cfg))
    env = {k: v for k, v in os.environ.items() if not k.startswith("GRIDWATCH_")}
    env["GRIDWATCH_MQTT__PASSWORD"] = wrong
    proc = subprocess.run(
        [sys.executable, "-m", "gridwatch", "collect", "--config", str(config), "-q"],
        env=env, capture_output=True, text=True, timeout=60,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 2, output
    assert "bad user name or password" in output.lower() or "not authorized" in output.lower()
    assert wrong not in output
