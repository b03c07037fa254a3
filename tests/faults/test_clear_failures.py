"""Clear failures: refused MQTT or InfluxDB credentials end every command with one line and exit
code 2 (never a traceback); a running sink treats HTTP 401/403 as a configuration error (logged,
counted, the points kept in the spool, no retry storm); credentials inside URLs are masked
wherever they are printed."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry

from gridwatch import _services
from gridwatch._settings import load_settings, mask_credentials
from gridwatch.storage import StorageMetrics
from gridwatch.storage._config import InfluxSettings
from gridwatch.storage._sink import InfluxSinkPartition
from gridwatch.storage._spool import Spool
from gridwatch.storage._writer import AUTH_RETRY_S, InfluxAuthError, V1Writer, check_credentials

ADMIN, ADMIN_PW = "gwadmin", "Adm1n-pw-42"
MQTT_USER, MQTT_PW = "collector", "Coll-pw-17"
WRONG = "Wr0ng-secret-99"


@pytest.fixture
def auth_influx(tmp_path: Path) -> Iterator[_services.Service]:
    """A private InfluxDB 1.6.7 with authentication on, one admin and one database."""
    svc = _services.influxdb(tmp_path / "influx-auth")
    conf = svc.workdir / "influxdb.conf"
    conf.write_text(conf.read_text().replace("[http]\n", "[http]\n  auth-enabled = true\n"))
    svc.start()
    try:
        # With no user yet, InfluxDB takes the first admin without a login.
        for q, login in ((f"CREATE USER {ADMIN} WITH PASSWORD '{ADMIN_PW}' WITH ALL PRIVILEGES",
                          {}), ("CREATE DATABASE guarded", {"u": ADMIN, "p": ADMIN_PW})):
            qs = urllib.parse.urlencode(login)  # InfluxDB reads u and p from the URL only
            body = urllib.parse.urlencode({"q": q}).encode()
            urllib.request.urlopen(f"{svc.url}/query?{qs}", data=body, timeout=5).read()
        yield svc
    finally:
        svc.stop()  # also when setting it up failed: no server outlives its test


@pytest.fixture
def auth_broker(tmp_path: Path) -> Iterator[_services.Service]:
    """A private mosquitto that wants a login."""
    passwd = tmp_path / "mq-passwd"
    binary = shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"
    subprocess.run([binary, "-c", "-b", str(passwd), MQTT_USER, MQTT_PW], check=True,
                   capture_output=True)
    svc = _services.mosquitto(tmp_path / "mq-auth", extra_conf=f"password_file {passwd}\n",
                              anonymous=False).start()
    yield svc
    svc.stop()


def config(tmp_path: Path, broker: _services.Service, influx_url: str,
           **sections: dict[str, Any]) -> Path:
    cfg: dict[str, Any] = {
        "mqtt": {"host": broker.host, "port": broker.port, "client_id": "gw-clear"},
        "ingest": {"journal_dir": str(tmp_path / "journal"),
                   "deadletter_dir": str(tmp_path / "deadletter")},
        "influx": {"api": "v1", "url": influx_url, "database": "guarded",
                   "spool_dir": str(tmp_path / "spool"), "timeout_ms": 3000},
        "alerts": {"state_db": str(tmp_path / "alerts.sqlite"),
                   "jsonl_out": str(tmp_path / "alerts.jsonl")},
    }
    for name, values in sections.items():
        cfg[name] = cfg.get(name, {}) | values
    path = tmp_path / "gw.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def gridwatch(*args: str, env: dict[str, str] | None = None, timeout: float = 60
              ) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("GRIDWATCH_")}
    return subprocess.run([sys.executable, "-m", "gridwatch", *args], env=base | (env or {}),
                          capture_output=True, text=True, timeout=timeout, check=False)


def one_line_exit_2(proc: subprocess.CompletedProcess[str]) -> str:
    out = proc.stdout + proc.stderr
    assert proc.returncode == 2, out
    assert "Traceback" not in out, out
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, proc.stderr
    return out


@pytest.mark.services
@pytest.mark.slow
def test_run_with_a_refused_mqtt_login_is_one_line_and_exit_2(
        tmp_path: Path, auth_broker, influxdb) -> None:
    cfg = config(tmp_path, auth_broker, influxdb.url, mqtt={"username": MQTT_USER})
    proc = gridwatch("run", "--config", str(cfg), env={"GRIDWATCH_MQTT__PASSWORD": WRONG})
    out = one_line_exit_2(proc)
    assert "refused" in out.lower(), out
    assert WRONG not in out


@pytest.mark.services
def test_simulate_with_a_refused_mqtt_login_is_one_line_and_exit_2(
        tmp_path: Path, auth_broker, influxdb) -> None:
    cfg = config(tmp_path, auth_broker, influxdb.url, mqtt={"username": MQTT_USER})
    proc = gridwatch("simulate", "--config", str(cfg), "--duration", "1h",
                     "--labels", str(tmp_path / "labels.jsonl"),
                     env={"GRIDWATCH_MQTT__PASSWORD": WRONG})
    out = one_line_exit_2(proc)
    assert "refused the connection" in out.lower() and WRONG not in out, out


@pytest.mark.services
@pytest.mark.slow
@pytest.mark.parametrize("command", ["run", "replay"])
def test_refused_influx_credentials_are_one_line_and_exit_2(
        tmp_path: Path, mosquitto, auth_influx, command: str) -> None:
    url = f"http://{ADMIN}:{WRONG}@127.0.0.1:{auth_influx.port}"
    cfg = config(tmp_path, mosquitto, url)
    args = ["run"] if command == "run" else ["replay", str(_readings(tmp_path))]
    proc = gridwatch(*args, "--config", str(cfg))
    out = one_line_exit_2(proc)
    assert "refused the credentials (HTTP 401" in out, out
    assert WRONG not in out and "http://***@127.0.0.1" in out


def _readings(tmp_path: Path) -> Path:
    path = tmp_path / "readings.csv"
    path.write_text("meter_id,timestamp,kw\nm1,2024-03-05T00:00:00Z,1.0\n")
    return path


@pytest.mark.services
def test_right_influx_credentials_pass_the_check(auth_influx) -> None:
    ok = InfluxSettings(api="v1", url=auth_influx.url, database="guarded", username=ADMIN,
                        password=ADMIN_PW)
    check_credentials(ok)
    with pytest.raises(InfluxAuthError, match="HTTP 401"):
        check_credentials(ok.model_copy(update={"password": None}))
    # An InfluxDB that cannot be reached is an outage, not a configuration error.
    check_credentials(ok.model_copy(update={"url": f"http://127.0.0.1:{_services.free_port()}"}))


class CountingWriter(V1Writer):
    """The real v1 writer, counting its requests."""

    calls = 0

    def write(self, points: Any) -> None:
        self.calls += 1
        super().write(points)


@pytest.mark.services
def test_sink_keeps_points_and_backs_off_on_refused_credentials(
        tmp_path: Path, auth_influx, caplog: pytest.LogCaptureFixture) -> None:
    settings = InfluxSettings(api="v1", url=auth_influx.url, database="guarded",
                              username=ADMIN, password=WRONG, retry_initial_ms=10,
                              retry_max_ms=20, spool_dir=tmp_path / "spool")
    writer = CountingWriter(settings)
    now = [1000.0]
    metrics = StorageMetrics(CollectorRegistry())
    sink = InfluxSinkPartition(settings, writer, Spool(tmp_path / "spool", 1 << 24),
                               tmp_path / "dead.jsonl", metrics, clock=lambda: now[0],
                               sleep=lambda _s: None)
    lines = [f"reading,meter_id=m{i} kw=1.0 {1709596800000000000 + i}" for i in range(50)]
    sink.write_batch(lines[:25])
    assert writer.calls == 1
    for step in range(20):  # 20 batches over 20 s: no new attempt before AUTH_RETRY_S
        now[0] += 1.0
        sink.write_batch(lines[25 + step:26 + step])
    assert writer.calls == 1, "a refused login must not be retried every batch"
    assert sink.spool.points == 45 and sink.rejected == 0
    assert any("refused the credentials" in r.getMessage() for r in caplog.records)
    failures = metrics.registry.get_sample_value("gridwatch_storage_write_failures_total",
                                                 {"worker": "0"})
    assert failures == 1
    now[0] += AUTH_RETRY_S
    sink.write_batch(lines[45:])
    assert writer.calls == 2 and sink.spool.points == 50
    assert not os.path.exists(tmp_path / "dead.jsonl")


def test_check_config_masks_credentials_in_urls(tmp_path: Path) -> None:
    secret = "pw-in-url-3141"
    cfg = tmp_path / "gw.yaml"
    cfg.write_text(yaml.safe_dump({
        "influx": {"url": f"http://writer:{secret}@influx.example:8086"},
        "alerts": {"alertmanager_url": f"https://am:{secret}@am.example/api/v2/alerts",
                   "state_db": str(tmp_path / "a.sqlite")}}))
    proc = gridwatch("check-config", "--config", str(cfg))
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert secret not in out
    assert "http://***@influx.example:8086" in out
    # A bad value that holds a URL is masked in the one-line error too.
    cfg.write_text(yaml.safe_dump({"influx": {"url": f"http://writer:{secret}@h:8086",
                                              "api": "v9"}}))
    proc = gridwatch("check-config", "--config", str(cfg))
    assert proc.returncode == 2 and secret not in proc.stdout + proc.stderr


def test_removed_snapshot_setting_is_named() -> None:
    from gridwatch._settings import ConfigError

    with pytest.raises(ConfigError, match="snapshot_every_s was removed"):
        load_settings(None, engine={"snapshot_every_s": 10})


def test_mask_credentials() -> None:
    assert mask_credentials("http://u:p@h:1/x?db=a&p=s3cret&u=bob") == \
        "http://***@h:1/x?db=a&p=***&u=bob"
    assert mask_credentials("mqtts://tok@broker:8883 and plain http://h/x") == \
        "mqtts://***@broker:8883 and plain http://h/x"
