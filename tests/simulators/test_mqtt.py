"""Publishing to the private mosquitto: every simulated reading arrives, single or batched."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter

import paho.mqtt.client as mqtt
import pytest
from _suite_helpers import wait_until

from gridwatch.simulators import CapturedMqtt, MqttTarget, SimulateError, Simulation
from gridwatch.simulators._targets import Pacer, drain


class Subscriber:
    """A paho client subscribed to ``meters/#`` with QoS 1, collecting what arrives."""

    def __init__(self, host: str, port: int, client_id: str) -> None:
        self.messages: list[tuple[str, bytes]] = []
        self.lock = threading.Lock()
        ready = threading.Event()
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id,
                             protocol=mqtt.MQTTv5)
        client.on_connect = lambda c, u, f, rc, p: c.subscribe("meters/#", qos=1)
        client.on_subscribe = lambda c, u, mid, rcs, p: ready.set()
        client.on_message = self._on_message
        client.connect(host, port)
        client.loop_start()
        assert ready.wait(10), "subscription not acknowledged"
        self.client = client

    def _on_message(self, client, userdata, msg) -> None:
        with self.lock:
            self.messages.append((msg.topic, msg.payload))

    def readings(self) -> list[dict]:
        out = []
        with self.lock:
            for topic, payload in self.messages:
                doc = json.loads(payload)
                out.extend(doc if topic.endswith("/batch") else [doc])
        return out

    def wait_for(self, n: int, timeout: float = 30.0) -> list[dict]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and len(self.readings()) < n:
            time.sleep(0.05)
        return self.readings()

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.mark.services
@pytest.mark.parametrize("batch_size, qos", [(1, 1), (7, 1), (25, 0)])
def test_every_reading_arrives(mosquitto, make, batch_size: int, qos: int) -> None:
    fleet = make(duration="8h", anomalies={"warmup": "2h", "rate_per_meter_day": 0.5})
    sim = Simulation(fleet)
    expected = [d for _, rows in sim.chunks("dict") for *_, d in rows]
    sub = Subscriber(mosquitto.host, mosquitto.port, f"test-sub-{batch_size}")
    try:
        target = MqttTarget(mosquitto.host, mosquitto.port, qos=qos, batch_size=batch_size,
                            client_id=f"test-pub-{batch_size}")
        readings, messages = drain(sim.chunks(), target, Pacer(None))
        target.close()
        got = sub.wait_for(len(expected))
        topics = Counter(t.rsplit("/", 1)[1] for t, _ in sub.messages)
    finally:
        sub.close()
    assert readings == len(expected)
    key = lambda d: (d["meter_id"], d["ts"])  # noqa: E731
    assert sorted(got, key=key) == sorted(expected, key=key)
    if batch_size == 1:
        assert topics == {"reading": readings} and messages == readings
        region = {m.meter_id: m.region for m in sim.meters}
        for topic, payload in sub.messages[:50]:
            _, reg, meter, _ = topic.split("/")
            assert json.loads(payload)["meter_id"] == meter and region[meter] == reg
    else:
        assert topics == {"batch": messages} and messages < readings
        conc = {m.meter_id: m.concentrator_id for m in sim.meters}
        for topic, payload in sub.messages:
            batch = json.loads(payload)
            assert 1 <= len(batch) <= batch_size
            assert {conc[d["meter_id"]] for d in batch} == {topic.split("/")[2]}


@pytest.mark.services
def test_rate_limit_holds(mosquitto, make) -> None:
    fleet = make(duration="15min")  # 60 readings
    target = MqttTarget(mosquitto.host, mosquitto.port, qos=0, rate=100.0,
                        client_id="test-rate")
    t0 = time.monotonic()
    readings, _ = drain(Simulation(fleet).chunks(), target, Pacer(None))
    target.close()
    assert readings == 60
    assert time.monotonic() - t0 >= 0.55  # 60 messages at 100/s


def test_unreachable_broker_is_a_clear_error() -> None:
    from gridwatch._services import free_port

    port = free_port()
    with pytest.raises(SimulateError, match=f"127.0.0.1:{port}"):
        MqttTarget("127.0.0.1", port, connect_timeout=2)


@pytest.mark.services
def test_cli_publishes_with_the_settings_broker(mosquitto, tmp_path, monkeypatch) -> None:
    from pathlib import Path

    from typer.testing import CliRunner

    from gridwatch.cli import app

    fleet = Path(__file__).resolve().parents[2] / "config" / "fleets" / "small.yaml"
    monkeypatch.setenv("GRIDWATCH_MQTT__PORT", str(mosquitto.port))
    monkeypatch.setenv("GRIDWATCH_MQTT__HOST", mosquitto.host)
    sub = Subscriber(mosquitto.host, mosquitto.port, "test-sub-cli")
    try:
        res = CliRunner().invoke(app, [
            "simulate", "--fleet", str(fleet), "--duration", "1h", "--batch-size", "50",
            "--qos", "1", "--labels", str(tmp_path / "labels.jsonl"), "--speed", "x36000"])
        assert res.exit_code == 0, res.output
        n = 304 * 4
        got = sub.wait_for(n)
    finally:
        sub.close()
    assert len(got) == n
    assert f"127.0.0.1:{mosquitto.port}" in res.output
    assert (tmp_path / "labels.jsonl").exists()



@pytest.mark.parametrize("batch_size", [1, 40])
def test_collector_decoder_accepts_every_payload(make, batch_size: int) -> None:
    """What the simulator publishes is what the collector takes: topics and payloads pass the
    ingest decoder, with no duplicate and nothing running backwards, anomalies included."""
    from datetime import timedelta

    from gridwatch.ingest._decode import Decoder, decode

    fleet = make(anomalies={"warmup": "1d", "rate_per_meter_day": 0.3,
                            "counts": {"feeder_outage": 1, "clock_drift": 3}})
    sim = Simulation(fleet)
    target = CapturedMqtt(batch_size)
    n = drain(sim.chunks(), target, Pacer(None))[0]
    decoder = Decoder()
    now = fleet.end + timedelta(minutes=1)
    accepted = 0
    for topic, payload in target.captured:
        accepted += len(decode(topic, payload.encode(), settings=decoder, now=now))
    assert accepted == n


def _certificates(folder) -> dict[str, str]:
    """A throw-away CA and a server certificate for 127.0.0.1 (Debian's openssl)."""
    import subprocess

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=folder, check=True, capture_output=True)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt",
        "-days", "1", "-subj", "/CN=gridwatch-test-ca")
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr",
        "-subj", "/CN=127.0.0.1")
    (folder / "ext.cnf").write_text("subjectAltName=IP:127.0.0.1\n")
    run("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
        "-CAcreateserial", "-out", "server.crt", "-days", "1", "-extfile", "ext.cnf")
    return {"ca": str(folder / "ca.crt"), "server": str(folder / "server.crt"),
            "key": str(folder / "server.key")}


@pytest.mark.services
def test_publishes_over_tls(tmp_path, make) -> None:
    from gridwatch import _services
    from gridwatch.ingest._config import TlsSettings

    certs = _certificates(tmp_path)
    tls_port = _services.free_port()
    broker = _services.mosquitto(
        tmp_path / "mosquitto",
        extra_conf=(f"listener {tls_port} 127.0.0.1\ncafile {certs['ca']}\n"
                    f"certfile {certs['server']}\nkeyfile {certs['key']}\n")).start()
    try:
        sub = Subscriber(broker.host, broker.port, "test-sub-tls")  # on the plain listener
        fleet = make(duration="1h")
        with pytest.raises(SimulateError):  # the test CA is not in the system store
            MqttTarget("127.0.0.1", tls_port, tls=TlsSettings(enabled=True), connect_timeout=3)
        target = MqttTarget("127.0.0.1", tls_port, client_id="test-pub-tls", batch_size=5,
                            tls=TlsSettings(enabled=True, ca_file=certs["ca"]))
        n, _ = drain(Simulation(fleet).chunks(), target, Pacer(None))
        target.close()
        got = sub.wait_for(n)
        sub.close()
    finally:
        broker.stop()
    assert n == fleet.n_readings and len(got) == n


@pytest.mark.services
def test_gives_up_when_its_clock_says_the_broker_stayed_down(fresh_mosquitto) -> None:
    """The give-up timer reads the clock passed in: a broker down for exactly ``give_up_s`` is
    still waited for, a second more ends the run; no real minutes go by."""
    now = [1000.0]
    target = MqttTarget(fresh_mosquitto.host, fresh_mosquitto.port, give_up_s=300,
                        client_id="test-pub-giveup", reconnect_max_s=1, clock=lambda: now[0])
    try:
        assert target.down_since is None
        fresh_mosquitto.stop()
        wait_until(lambda: target.down_since is not None, 10, "the target sees the broker go")
        assert target.down_since == 1000.0
        target.write([("north", "c1", "m1", {"meter_id": "m1", "kw": 1.0})])  # waits, QoS 1
        now[0] = 1300.0
        with pytest.raises(SimulateError, match="not acknowledged after 0s"):
            target.flush(timeout=0)  # still waiting for the broker, only this flush ran out
        now[0] = 1301.0
        with pytest.raises(SimulateError, match="unreachable for 300s"):
            target.flush(timeout=0)
    finally:
        target.client.disconnect()
        target.client.loop_stop()
