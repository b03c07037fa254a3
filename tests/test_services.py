"""The fixtures really start the Debian servers and they answer on their ports."""

from __future__ import annotations

import json
import smtplib
import socket
import urllib.request

import paho.mqtt.client as mqtt
import paho.mqtt.publish as publish
import paho.mqtt.subscribe as subscribe
import pytest

from gridwatch import _services


@pytest.mark.services
def test_mosquitto_round_trip(mosquitto):
    # Retained, so the subscriber gets it whenever its subscription lands: no wait needed.
    where = {"hostname": mosquitto.host, "port": mosquitto.port}
    publish.single("t/round-trip", b"hello", qos=1, retain=True, **where)
    try:
        msg = subscribe.simple("t/round-trip", qos=1, **where)
    finally:
        publish.single("t/round-trip", b"", qos=1, retain=True, **where)  # clear it
    assert msg.payload == b"hello"
    assert mqtt.MQTTv5  # the client supports v5


@pytest.mark.services
def test_influxdb_v1_write_and_query(influxdb):
    base = influxdb.url
    urllib.request.urlopen(base + "/query", data=b"q=CREATE+DATABASE+t").read()
    req = urllib.request.Request(base + "/write?db=t", data=b"m,meter=a kw=1.5 1700000000000000000")
    assert urllib.request.urlopen(req).status == 204
    out = json.loads(urllib.request.urlopen(base + "/query?db=t&q=SELECT+kw+FROM+m").read())
    assert out["results"][0]["series"][0]["values"][0][1] == 1.5


@pytest.mark.services
def test_victoria_metrics_v2_write(victoria_metrics):
    base = victoria_metrics.url
    req = urllib.request.Request(base + "/api/v2/write?org=o&bucket=b&precision=s",
                                 data=b"m,meter=a kw=2.5 1700000000")
    assert urllib.request.urlopen(req).status == 204
    urllib.request.urlopen(base + "/internal/force_flush").read()
    out = urllib.request.urlopen(base + "/api/v1/export?match[]={__name__=~\"m.*\"}").read()
    rows = [json.loads(line) for line in out.splitlines()]
    assert rows and rows[0]["metric"]["meter"] == "a" and rows[0]["values"] == [2.5]


@pytest.mark.services
def test_alertmanager_ready(alertmanager):
    out = json.loads(urllib.request.urlopen(alertmanager.url + "/api/v2/status").read())
    assert "cluster" in out


def test_smtp_server_receives(smtp_server):
    with smtplib.SMTP(smtp_server.host, smtp_server.port) as s:
        s.sendmail("a@x", ["b@y"], "Subject: hi\r\n\r\nbody")
    assert smtp_server.messages[0]["Subject"] == "hi"


def test_free_ports_lie_below_the_ephemeral_range_and_are_never_handed_out_twice():
    """A port from bind(0) lies in the range the kernel gives outgoing connections, so a
    client elsewhere on the machine could take it before the server binds it."""
    low, _ = _services._ephemeral_range()
    ports = [_services.free_port() for _ in range(300)]
    assert len(set(ports)) == len(ports)
    assert all(10_000 <= p < low for p in ports)
    for p in ports[:20]:  # each is free to bind right now
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", p))


def test_free_port_passes_over_a_port_that_is_taken_or_already_handed_out(monkeypatch):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        given = _services.free_port()  # in _HANDED_OUT from now on
        fresh = _services.free_port()
        _services._HANDED_OUT.discard(fresh)
        offers = iter([busy, given, busy, fresh])

        class Offers:
            def randint(self, first: int, last: int) -> int:
                return next(offers)

        monkeypatch.setattr(_services, "_RNG", Offers())
        assert _services.free_port() == fresh
