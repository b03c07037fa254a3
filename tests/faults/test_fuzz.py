"""100,000 fuzzed payloads through a real broker and the real collector: broken JSON, wrong
types, huge numbers, NaN, mismatched topics, invalid UTF-8, truncated batches, deep nesting,
lone surrogates, oversized payloads, duplicates — mixed with good readings. Nothing crashes,
every message is accounted for: its readings are in the journal or it is a dead letter (on
disk, with a reason), and ``received = published``."""

from __future__ import annotations

import json
import random
import re
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from _faults_helpers import Publisher, journal_keys
from _suite_helpers import holds, wait_until
from prometheus_client import CollectorRegistry

from gridwatch._settings import Settings
from gridwatch.ingest import REASONS, Collector, read_deadletters
from gridwatch.ingest._config import IngestSettings, MqttSettings, TopicSettings

N = 100_000
SEED = 20261126
MAX_PAYLOAD = 65_536
_INDEX = re.compile(r"^[FBD](\d+)")


def _ts(rng: random.Random, now: datetime) -> str:
    return (now - timedelta(minutes=rng.randint(1, 1200))).isoformat().replace("+00:00", "Z")


def _reading(rng: random.Random, meter: str, now: datetime) -> dict[str, Any]:
    doc: dict[str, Any] = {"meter_id": meter, "ts": _ts(rng, now),
                           "kw": round(rng.uniform(0, 50), 3)}
    if rng.random() < 0.5:
        doc["kwh"] = round(rng.uniform(0, 1e6), 2)
    if rng.random() < 0.5:
        doc["voltage"] = [round(rng.uniform(200, 240), 1) for _ in range(rng.choice((1, 3)))]
    if rng.random() < 0.3:
        doc["pf"] = round(rng.uniform(0.5, 1), 3)
    return doc


_WRONG = [None, True, "1.5", "abc", [], {}, [1, 2], {"v": 1}, "", "NaN", 1e400, -0.0,
          "2026-01-01", 12345678901234567890123, -(10**40)]
_BAD_TS = ["2026-05-01T00:00:00", "yesterday", "", "2026-13-45T99:99:99Z", "1970-01-01T00:00:00Z",
           "9999-12-31T23:59:59Z", "2026-05-01T23:59:60Z", 1714521600, None,
           "2026-05-01T00:00:00+25:00", "0001-01-01T00:00:00Z", "2026-05-01T00:00:00.123456789Z"]
_LITERALS = [b"", b" ", b"null", b"[]", b"{}", b'"x"', b"123", b"true", b"[null]", b"[[]]",
             b"[{}]", b"\xef\xbb\xbf{}", b"{\"meter_id\":", b"NaN", b"\x00", b"[1,2,3]"]


def fuzz_message(i: int, rng: random.Random, now: datetime) -> tuple[str, bytes, str]:
    """(topic, payload, kind) of the i-th message; the topic names the index so every dead
    letter and every journaled reading can be traced back to its message."""
    meter = f"F{i}"
    single = f"meters/fz/{meter}/reading"
    batch_topic = f"meters/fz/B{i}/batch"
    k = rng.random()
    if k < 0.10:
        return single, json.dumps(_reading(rng, meter, now)).encode(), "good"
    if k < 0.18:
        items: list[Any] = [_reading(rng, f"F{i}x{j}", now) for j in range(rng.randint(1, 6))]
        if rng.random() < 0.5:
            bad = rng.randrange(len(items))
            items[bad] = rng.choice([{"meter_id": f"F{i}x{bad}", "kw": "high"}, None, 7, [],
                                     {"meter_id": f"F{i}x{bad}", "ts": "now", "kw": 1}])
        if rng.random() < 0.3:
            body: Any = {"concentrator_id": f"B{i}", "sent_at": _ts(rng, now), "readings": items}
        else:
            body = items
        return batch_topic, json.dumps(body).encode(), "batch"
    if k < 0.28:
        good = json.dumps([_reading(rng, f"F{i}x{j}", now) for j in range(rng.randint(1, 5))])
        cut = rng.randrange(0, len(good))
        return rng.choice([batch_topic, single]), good[:cut].encode(), "truncated"
    if k < 0.36:
        raw = bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 200)))
        return rng.choice([single, batch_topic]), raw, "random_bytes"
    if k < 0.51:
        doc = _reading(rng, meter, now)
        field = rng.choice(["kw", "kwh", "voltage", "pf", "meter_id", "status", "export_kwh",
                            "interval_s", "current", "freq"])
        doc[field] = rng.choice(_WRONG)
        try:
            text = json.dumps(doc)
        except (OverflowError, ValueError):
            text = json.dumps(doc | {field: None})
        return single, text.encode(), "wrong_type"
    if k < 0.59:
        doc = _reading(rng, meter, now)
        text = json.dumps(doc)
        huge = rng.choice(["1e308", "1e999", "-1e999", "9" * 400, "-" + "9" * 5000, "1e-999",
                           "123456789012345678901234567890.5"])
        text = re.sub(r'"kw": [^,}]+', f'"kw": {huge}', text)
        return single, text.encode(), "huge"
    if k < 0.64:
        text = json.dumps(_reading(rng, meter, now))
        lit = rng.choice(["NaN", "Infinity", "-Infinity"])
        field = rng.choice(["kw", "kwh", "pf"])
        if f'"{field}"' not in text:
            field = "kw"
        text = re.sub(rf'"{field}": [^,}}]+', f'"{field}": {lit}', text)
        return single, text.encode(), "non_finite"
    if k < 0.69:
        doc = _reading(rng, meter, now)
        if rng.random() < 0.5:
            doc.pop(rng.choice(["kw", "ts", "meter_id"]))
        else:
            doc[rng.choice(["extra", "KW", "meter", ""])] = 1
        return single, json.dumps(doc).encode(), "fields"
    if k < 0.77:
        doc = _reading(rng, meter, now)
        future = (now + timedelta(hours=rng.randint(1, 1000))).isoformat()
        doc["ts"] = rng.choice([*_BAD_TS, future])
        return single, json.dumps(doc).encode(), "bad_ts"
    if k < 0.80:
        doc = _reading(rng, rng.choice(["F0", f"X{i}", "", "F" + "9" * 300]), now)
        return single, json.dumps(doc).encode(), "mismatch"
    if k < 0.85:
        return rng.choice([single, batch_topic]), rng.choice(_LITERALS), "literal"
    if k < 0.8505:
        depth = rng.choice([1000, 100_000])
        return batch_topic, b"[" * depth + b"]" * depth, "deep"
    if k < 0.90:
        doc = _reading(rng, meter, now)
        where = rng.choice(["status", "meter_id", "key"])
        text = json.dumps(doc)
        if where == "status":
            text = text[:-1] + ', "status": ["\\ud800", "ok\\u0000"]}'
        elif where == "meter_id":
            text = text.replace(f'"{meter}"', f'"{meter}\\udfff"', 1)
        else:
            text = text[:-1] + ', "\\ud83d": 1}'
        return single, text.encode(), "surrogate"
    if k < 0.93:
        doc = {"device_id": f"D{i}", "site": f"s{i}", "ts": _ts(rng, now),
               "kind": rng.choice(["inverter", "meter", "", 5]),
               "metrics": rng.choice([{"ac_kw": 3.2}, {"t": "hot"}, {"x": float("nan")}, []]),
               "status": rng.choice([[], ["derated"], "bad"])}
        text = json.dumps(doc) if rng.random() < 0.9 else json.dumps(doc)[:-3]
        return f"devices/s{i}/D{i}/telemetry", text.encode(), "telemetry"
    if k < 0.9302:
        return single, b'{"meter_id": "' + b"x" * (MAX_PAYLOAD + 10) + b'"}', "too_large"
    if k < 0.95:
        # The same reading twice in one message list: the second is a duplicate.
        r = _reading(rng, f"F{i}x0", now)
        return batch_topic, json.dumps([r, r]).encode(), "duplicate"
    doc = _reading(rng, meter, now)
    doc["pf"] = rng.choice([1.5, -2.0, 1e9])
    doc["voltage"] = rng.choice([[-5.0], [1e7], []])
    return single, json.dumps(doc).encode(), "out_of_range"


@pytest.mark.services
@pytest.mark.slow
def test_100k_fuzzed_payloads(tmp_path: Path, fresh_mosquitto) -> None:
    rng = random.Random(SEED)
    now = datetime.now(UTC)
    messages = [fuzz_message(i, rng, now) for i in range(N)]
    kinds = Counter(kind for _t, _p, kind in messages)
    settings = Settings(
        mqtt=MqttSettings(host=fresh_mosquitto.host, port=fresh_mosquitto.port,
                          client_id="fuzz-collector", reconnect_min_s=1, reconnect_max_s=2),
        topics=TopicSettings(),
        ingest=IngestSettings(journal_dir=tmp_path / "journal",
                              deadletter_dir=tmp_path / "deadletter",
                              max_payload_bytes=MAX_PAYLOAD, fsync_every_ms=20),
    )
    collector = Collector(settings, registry=CollectorRegistry()).start()
    pub = None
    try:
        collector.wait_ready(15)
        pub = Publisher(fresh_mosquitto)
        for start in range(0, N, 20_000):  # message ids wrap at 65,535
            infos = [pub.client.publish(topic, payload, qos=1)
                     for topic, payload, _k in messages[start:start + 20_000]]
            for info in infos:
                info.wait_for_publish(60)
                assert info.is_published()
        wait_until(lambda: collector.stats.received >= N or collector.failed, 120,
                   "every message received", detail=lambda: collector.stats)
        wait_until(lambda: collector.stats.acked >= N or collector.failed, 30,
                   "every message acknowledged", detail=lambda: collector.stats)
        holds(lambda: collector.stats.received <= N, 0.5,
              "nothing received beyond the messages sent")  # room for a late double
        stats = collector.stats
        assert collector.failed is None, collector.failed
    finally:
        if pub is not None:
            pub.close()
        collector.stop()

    assert stats.received == N and stats.acked == N, stats
    letters = list(read_deadletters(tmp_path / "deadletter"))
    journal = journal_keys(tmp_path / "journal")
    # received = accepted + dead-lettered, counted per item (a batch has several).
    assert stats.accepted == sum(journal.values())
    assert stats.deadlettered_total == len(letters)
    assert Counter(d.reason for d in letters) == Counter(stats.deadlettered)
    # Every dead letter carries a known reason and says what was wrong; no decoder bug.
    assert all(d.reason in REASONS and d.detail for d in letters)
    assert "internal_error" not in stats.deadlettered, [
        (d.topic, d.detail) for d in letters if d.reason == "internal_error"][:5]
    # Every message left a trace: a journaled item or a dead letter naming its topic.
    traced: set[int] = set()
    for d in letters:
        traced.add(int(re.match(r"^\w+/\D*(\d+)/", d.topic).group(1)))
    for meter, _ts in journal:
        traced.add(int(_INDEX.match(meter).group(1)))
    missing = [(i, messages[i][2], messages[i][1][:80]) for i in range(N) if i not in traced]
    assert not missing, missing[:10]
    # The good readings are all in the journal, once.
    for i, (_topic, payload, kind) in enumerate(messages):
        if kind == "good":
            doc = json.loads(payload)
            ts = datetime.fromisoformat(doc["ts"]).astimezone(UTC)
            key = (doc["meter_id"], ts.isoformat().replace("+00:00", "Z"))
            assert journal[key] == 1, (i, key)
    assert kinds["good"] > 5_000 and len(Counter(d.reason for d in letters)) >= 10
