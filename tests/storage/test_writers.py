"""The v1 and v2 writers against real servers, and how HTTP failures are classified."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
from _storage_helpers import influxql, reading, samples, vm_export

from gridwatch import _services
from gridwatch.storage import (
    PointWriter,
    RejectedPointsError,
    RetryableWriteError,
    V1Writer,
    V2Writer,
    build_writer,
    to_line_protocol,
    to_points,
)
from gridwatch.storage._writer import parse_retry_after


def test_build_writer_follows_api(v1_settings, v2_settings):
    assert isinstance(build_writer(v1_settings()), V1Writer)
    assert isinstance(build_writer(v2_settings()), V2Writer)
    assert isinstance(build_writer(v2_settings()), PointWriter)


@pytest.mark.parametrize(("url", "gzip", "compressed"), [
    ("http://127.0.0.1:8086", None, False), ("http://127.8.9.1:8086", None, False),
    ("http://localhost:8086", None, False), ("http://[::1]:8086", None, False),
    ("https://influx.example.org", None, True), ("http://10.1.2.3:8086", None, True),
    ("http://db:8086", None, True), ("http://127.0.0.1:8086", True, True),
    ("https://influx.example.org", False, False)])
def test_request_bodies_are_compressed_unless_the_database_is_on_this_machine(url, gzip,
                                                                             compressed):
    from gridwatch.storage._config import InfluxSettings

    assert InfluxSettings(url=url, gzip=gzip).compress is compressed


@pytest.mark.parametrize("gzip", [True, False])
def test_v1_writes_every_measurement_with_documented_tags(v1_settings, influxdb, gzip):
    s = v1_settings(gzip=gzip)
    objs = samples()
    writer = V1Writer(s)
    writer.write([p for o in objs.values() for p in to_points(o)])
    writer.close()
    [r] = influxql(influxdb, s.database, "SELECT * FROM reading")
    want = objs["reading"]
    assert r["meter_id"] == "m-1" and r["kw"] == want.kw and r["v_l2"] == want.voltage[1]
    assert r["time"] == int(want.ts.timestamp()) * 10**9
    [e] = influxql(influxdb, s.database, "SELECT * FROM event")
    assert (e["type"], e["severity"], e["grid_cell"], e["ev_observed_kw"]) == (
        "abnormal_consumption", "warning", "cell-7", 4.0)
    [p] = influxql(influxdb, s.database, "SELECT * FROM profile")
    assert p["segment"] == "residential" and p["h23"] == 23 / 4
    [a] = influxql(influxdb, s.database, "SELECT * FROM alert")
    assert a["state"] == "acknowledged" and a["recipient"] == "alice@example.org"
    [t] = influxql(influxdb, s.database, "SELECT * FROM telemetry")
    assert (t["device_id"], t["site"], t["temp_c"]) == ("m-1-inv", "site-3", 41.5)
    [sc] = influxql(influxdb, s.database, "SELECT * FROM score")
    assert sc["anomalous"] is True and sc["expected_kw"] == 2.0
    # Tags are tags on the server too (SHOW TAG KEYS), fields are fields.
    tag_keys = {row["tagKey"] for row in influxql(influxdb, s.database,
                                                      "SHOW TAG KEYS FROM event")}
    assert tag_keys == {"meter_id", "type", "severity", "customer_id", "grid_cell"}


def test_v1_field_type_conflict_is_rejected_with_the_servers_message(v1_settings, influxdb):
    s = v1_settings()
    writer = V1Writer(s)
    writer.write(to_points(reading("m-1", 0)))
    bad = 'reading,meter_id=m-2 kw="high" 1714521600000000000'
    good = to_line_protocol(to_points(reading("m-3", 0)))[0]
    with pytest.raises(RejectedPointsError) as info:
        writer.write([bad, good])
    assert "field type conflict" in info.value.message
    assert info.value.points == [bad, good]
    # A partial write: the valid point is stored.
    assert [r["meter_id"] for r in influxql(influxdb, s.database, "SELECT * FROM reading")] \
        == ["m-1", "m-3"]


def test_unreachable_server_is_retryable(v1_settings, v2_settings):
    port = _services.free_port()
    for s in (v1_settings(url=f"http://127.0.0.1:{port}"),
              v2_settings(url=f"http://127.0.0.1:{port}")):
        with pytest.raises(RetryableWriteError) as info:
            build_writer(s).write(to_points(reading("m-1", 0)))
        assert info.value.retry_after is None
        assert str(port) in str(info.value)


def test_v2_writes_through_influxdb_client(v2_settings, victoria_metrics):
    meter = f"m-{uuid.uuid4().hex[:8]}"
    objs = samples(meter)
    writer = V2Writer(v2_settings())
    writer.write([p for o in objs.values() for p in to_points(o)])
    writer.close()
    series = {s["metric"]["__name__"]: s for s in
              vm_export(victoria_metrics, f'{{meter_id="{meter}"}}')}
    r = objs["reading"]
    assert series["reading_kw"]["values"] == [r.kw]
    assert series["reading_kw"]["timestamps"] == [int(r.ts.timestamp() * 1000)]
    assert series["reading_kw"]["metric"] == {"__name__": "reading_kw", "meter_id": meter}
    assert series["event_score"]["metric"]["type"] == "abnormal_consumption"
    assert series["event_score"]["metric"]["grid_cell"] == "cell-7"
    assert series["profile_daily_kwh"]["metric"]["segment"] == "residential"
    assert series["score_expected_kw"]["values"] == [2.0]


class _Overloaded(BaseHTTPRequestHandler):
    """Answers every write the way an overloaded or misconfigured server does."""

    status = 503
    retry_after = "7"
    body = b'{"error":"overloaded"}'

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(self.status)
        if self.retry_after:
            self.send_header("Retry-After", self.retry_after)
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def overloaded() -> Iterator[type[_Overloaded]]:
    """A plain HTTP endpoint (not an InfluxDB stand-in) to check the status classification."""
    server = HTTPServer(("127.0.0.1", 0), _Overloaded)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _Overloaded.url = f"http://127.0.0.1:{server.server_address[1]}"  # type: ignore[attr-defined]
    yield _Overloaded
    server.shutdown()
    _Overloaded.status, _Overloaded.retry_after = 503, "7"


@pytest.mark.parametrize("api", ["v1", "v2"])
@pytest.mark.parametrize(("status", "retry_after", "expected"), [
    (503, "7", 7.0), (429, "2", 2.0), (500, None, None)])
def test_5xx_and_429_are_retryable_honouring_retry_after(
        overloaded, v1_settings, v2_settings, api, status, retry_after, expected):
    overloaded.status, overloaded.retry_after = status, retry_after
    make = v1_settings if api == "v1" else v2_settings
    writer = build_writer(make(url=overloaded.url, database="x") if api == "v1"
                          else make(url=overloaded.url))
    with pytest.raises(RetryableWriteError) as info:
        writer.write(to_points(reading("m-1", 0)))
    assert info.value.retry_after == expected
    assert str(status) in str(info.value)


def test_retry_after_forms():
    assert parse_retry_after("12") == 12.0
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0
