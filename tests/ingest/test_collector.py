"""The collector against a private mosquitto: lossless, exactly once in the journal, bad input
dead-lettered with its reason."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from _ingest_helpers import (
    Listener,
    journal_keys,
    make_settings,
    mixed_messages,
    reading_doc,
)
from _suite_helpers import wait_until
from prometheus_client import CollectorRegistry, generate_latest

from gridwatch.ingest import Collector, read_deadletters

pytestmark = pytest.mark.services

# Each test has a broker of its own (``fresh_mosquitto``): exact counts must not see retained
# messages or sessions left by other tests of the run.


@pytest.mark.slow
def test_100k_mixed_readings_each_journaled_exactly_once(fresh_mosquitto, tmp_path: Path,
                                                        publisher_factory) -> None:
    settings = make_settings(fresh_mosquitto.port, tmp_path, client_id="gw-100k")
    registry = CollectorRegistry()
    collector = Collector(settings, registry=registry).start()
    try:
        collector.wait_ready(10)
        msgs = list(mixed_messages(0, 50_000, 500))
        expected = [k for _, _, keys in msgs for k in keys]
        assert len(expected) == 100_000
        pub = publisher_factory(fresh_mosquitto.port, client_id="pub-100k")
        pub.publish_all(msgs)
        pub.wait_all(120)
        wait_until(lambda: collector.stats.accepted >= 100_000, 120,
                   "100,000 readings in the journal")
        wait_until(lambda: collector.stats.acked >= len(msgs), 30, "every message acknowledged")
        stats = collector.stats
    finally:
        collector.stop()
    got = journal_keys(settings.ingest.journal_dir)
    assert len(got) == 100_000
    assert Counter(got) == Counter(expected)
    assert stats.received == len(msgs) and stats.accepted == 100_000
    assert stats.deadlettered == {}
    text = generate_latest(registry).decode()
    assert 'gridwatch_ingest_items_accepted_total{partition="0"} 100000.0' in text


def _bad_payloads(good_now: dict) -> list[tuple[str, bytes, str]]:
    """(topic, payload, expected reason) of each kind of bad input."""
    ts = good_now["ts"]
    return [
        ("meters/r/m1/reading", b"\xff\xfe{}", "invalid_utf8"),
        ("meters/r/m1/reading", b'{"meter_id": "m1", "ts": ', "invalid_json"),
        ("meters/r/m1/reading", json.dumps({"meter_id": "m1", "ts": ts}).encode(), "schema"),
        ("meters/r/m1/reading", b'{"meter_id":"m1","ts":"%s","kw":NaN}' % ts.encode(),
         "non_finite"),
        ("meters/r/m1/reading", json.dumps({"meter_id": "m1", "ts": ts, "kw": 1e9}).encode(),
         "out_of_range"),
        ("meters/r/m1/reading",
         json.dumps({"meter_id": "m1", "ts": "2999-01-01T00:00:00Z", "kw": 1}).encode(),
         "future_timestamp"),
        ("meters/r/m2/reading", json.dumps({"meter_id": "m1", "ts": ts, "kw": 1}).encode(),
         "topic_mismatch"),
        ("meters/r/m1/reading", b'{"meter_id":"m1","pad":"' + b"x" * 5000 + b'"}', "too_large"),
        ("meters/r/stale/reading",
         json.dumps({"meter_id": "stale", "ts": "2001-01-01T00:00:00Z", "kw": 1}).encode(),
         "stale_timestamp"),
        ("meters/r/m1/reading", json.dumps(good_now).encode(), "duplicate"),
    ]


@pytest.mark.slow
def test_malformed_payloads_dead_lettered_with_reason(fresh_mosquitto, tmp_path: Path,
                                                      publisher_factory) -> None:
    settings = make_settings(fresh_mosquitto.port, tmp_path, client_id="gw-bad",
                             max_payload_bytes=4096)
    collector = Collector(settings, registry=CollectorRegistry()).start()
    listener = Listener(fresh_mosquitto.port, settings.topics.deadletter)
    try:
        collector.wait_ready(10)
        pub = publisher_factory(fresh_mosquitto.port, client_id="pub-bad")
        first = {"meter_id": "m1", "ts": reading_doc(0)["ts"], "kw": 2.0}
        pub.publish("meters/r/m1/reading", json.dumps(first).encode())
        stale_anchor = {"meter_id": "stale", "ts": reading_doc(0)["ts"], "kw": 1.0}
        pub.publish("meters/r/stale/reading", json.dumps(stale_anchor).encode())
        kinds = _bad_payloads(first)
        expected_bad: Counter[str] = Counter()
        good_keys = [("m1", first["ts"]), ("stale", stale_anchor["ts"])]
        n_bad = 10_000
        for i in range(n_bad):
            topic, payload, reason = kinds[i % len(kinds)]
            pub.publish(topic, payload)
            expected_bad[reason] += 1
            d = reading_doc(1000 + i, meters=500)
            d["meter_id"] = f"g{d['meter_id']}"
            pub.publish(f"meters/r/{d['meter_id']}/reading", json.dumps(d).encode())
            good_keys.append((d["meter_id"], d["ts"]))
        # A batch holding one bad item keeps its good ones.
        batch = [reading_doc(j, meters=3) | {"meter_id": f"b{j % 3}"} for j in range(3)]
        batch.insert(1, {"meter_id": "b9", "ts": batch[0]["ts"], "kw": "lots"})
        pub.publish("meters/r/conc1/batch", json.dumps(batch).encode())
        expected_bad["schema"] += 1
        good_keys += [(d["meter_id"], d["ts"]) for d in batch if d["meter_id"] != "b9"]
        pub.wait_all(60)
        total = len(good_keys) + sum(expected_bad.values())
        wait_until(lambda: collector.stats.accepted + collector.stats.deadlettered_total >= total,
                   60, "every payload accepted or dead-lettered")
        wait_until(lambda: len(listener.messages) >= sum(expected_bad.values()), 30,
                   "dead letters on the dead-letter topic")
        stats = collector.stats
    finally:
        collector.stop()
        listener.close()
    assert stats.deadlettered == dict(expected_bad)
    assert Counter(journal_keys(settings.ingest.journal_dir)) == Counter(good_keys)
    letters = list(read_deadletters(settings.ingest.deadletter_dir))
    assert Counter(d.reason for d in letters) == expected_bad
    by_payload = {p: r for _, p, r in kinds}
    for d in letters:
        if d.index is None:
            assert by_payload[d.payload] == d.reason, d
        else:
            assert d.index == 1 and d.reason == "schema" and b"lots" in d.payload
    published = Counter(json.loads(m)["reason"] for m in listener.messages)
    assert published == expected_bad


def test_restart_skips_redelivered_duplicates(fresh_mosquitto, tmp_path: Path,
                                               publisher_factory) -> None:
    """A reading journaled before a restart is a duplicate after it (warm-up from the
    journal), so a redelivery never doubles it."""
    settings = make_settings(fresh_mosquitto.port, tmp_path, client_id="gw-warm")
    pub = publisher_factory(fresh_mosquitto.port, client_id="pub-warm")
    doc = reading_doc(5)
    with Collector(settings, registry=CollectorRegistry()) as c:
        c.wait_ready(10)
        pub.publish(f"meters/r/{doc['meter_id']}/reading", json.dumps(doc).encode())
        wait_until(lambda: c.stats.accepted == 1, 10, "the reading journaled")
    with Collector(settings, registry=CollectorRegistry()) as c:
        c.wait_ready(10)
        pub.publish(f"meters/r/{doc['meter_id']}/reading", json.dumps(doc).encode())
        wait_until(lambda: c.stats.deadlettered.get("duplicate") == 1, 10, "the duplicate")
    assert len(journal_keys(settings.ingest.journal_dir)) == 1


def test_restart_warms_up_from_batch_records_by_readings(fresh_mosquitto, tmp_path: Path,
                                                         publisher_factory) -> None:
    """Compact batches journaled whole (a record a message): the warm-up after a restart
    takes the records that hold the last ``dedup_warm_records`` readings, counted as
    readings, not records: with 150, the last two batches (200 readings) are duplicates
    when they come again, the first (beyond them) is taken."""
    settings = make_settings(fresh_mosquitto.port, tmp_path, client_id="gw-warm-batch",
                             dedup_warm_records=150)
    pub = publisher_factory(fresh_mosquitto.port, client_id="pub-warm-batch")
    batches = [json.dumps([reading_doc(i) for i in range(k * 100, k * 100 + 100)],
                          separators=(",", ":")).encode() for k in range(3)]
    with Collector(settings, registry=CollectorRegistry()) as c:
        c.wait_ready(10)
        for payload in batches:
            pub.publish("meters/r/c1/batch", payload)
            wait_until(lambda n=c.stats.accepted: c.stats.accepted == n + 100, 10,
                       "the batch journaled")
        assert c.journal is not None and c.journal.end_offset == 3  # a record a batch
    with Collector(settings, registry=CollectorRegistry()) as c:
        c.wait_ready(10)
        pub.publish("meters/r/c1/batch", batches[2])
        pub.publish("meters/r/c1/batch", batches[1])
        wait_until(lambda: c.stats.deadlettered.get("duplicate") == 200, 10, "200 duplicates")
        pub.publish("meters/r/c1/batch", batches[0])
        wait_until(lambda: c.stats.accepted == 100, 10, "the first batch taken again")
    assert len(journal_keys(settings.ingest.journal_dir)) == 400


def test_compact_readings_are_journaled_as_sent_with_and_without_a_reader_in_the_process(
        fresh_mosquitto, tmp_path: Path, publisher_factory) -> None:
    """Compact batches and single readings journaled by a collector with no reader of its
    journal in its process (the engine's collector process: the decoder makes no reading
    objects), then with one (the hand-over): each record is the reading as sent and reads
    back as the reading its validation gives; the reader takes the items of what was
    appended once it came, and finds none for what was appended before."""
    from pydantic import TypeAdapter

    from gridwatch import Reading
    from gridwatch.ingest._journal import (
        BATCH_TAG,
        READING_TAG,
        Journal,
        decode_item,
        decode_record,
        recent_items,
        release_recent_items,
    )

    settings = make_settings(fresh_mosquitto.port, tmp_path, client_id="gw-fields")
    pub = publisher_factory(fresh_mosquitto.port, client_id="pub-fields")
    docs = [reading_doc(i) for i in range(400)]

    def send(part: list[dict]) -> None:  # one batch of 100, then 100 single readings
        compact = {"separators": (",", ":")}
        pub.publish("meters/north/c1/batch", json.dumps(part[:100], **compact).encode())
        for d in part[100:]:
            pub.publish(f"meters/north/{d['meter_id']}/reading",
                        json.dumps(d, **compact).encode())

    journal_dir = settings.ingest.journal_dir
    with Collector(settings, registry=CollectorRegistry()) as c:
        c.wait_ready(10)
        send(docs[:200])
        wait_until(lambda: c.stats.accepted == 200, 30, "200 readings journaled")
        assert c.decoder.objects is False
        recent = recent_items(journal_dir, 0)
        try:
            send(docs[200:])
            wait_until(lambda: c.stats.accepted == 400, 30, "400 readings journaled")
            assert c.decoder.objects is True
            with Journal(journal_dir, 0, readonly=True) as j:
                records = j.read(j.start_offset, 1_000)
            items = recent.take(records)
        finally:
            release_recent_items(journal_dir, 0)
    assert c.stats.deadlettered == {}
    sent = [READING_TAG + json.dumps(d, separators=(",", ":")).encode() for d in docs]
    # Without a reader the batch is one record, the message as sent; with one, a record a
    # reading (the hand-over keeps an item a record).
    batch = BATCH_TAG + json.dumps(docs[:100], separators=(",", ":")).encode()
    got = [data for _, data in records]  # (each half in the order the broker delivered it)
    assert Counter(got[:101]) == Counter([batch, *sent[100:200]])
    assert Counter(got[101:]) == Counter(sent[200:])
    as_sent = TypeAdapter(list[Reading])
    for data in got:
        back = decode_record(data)
        want = as_sent.validate_json(data) if data.startswith(BATCH_TAG) \
            else [Reading.model_validate_json(data[len(READING_TAG):])]
        assert back == want
        assert [r.model_fields_set for r in back] == [r.model_fields_set for r in want]
    assert items[:101] == [None] * 101
    assert items[101:] == [decode_item(data) for data in got[101:]]


def test_second_collector_on_a_partition_is_refused(fresh_mosquitto, tmp_path: Path) -> None:
    from gridwatch.ingest import JournalLockedError

    settings = make_settings(fresh_mosquitto.port, tmp_path, client_id="gw-lock")
    with Collector(settings, registry=CollectorRegistry()) as first:
        first.wait_ready(10)
        with pytest.raises(JournalLockedError, match="partition 0"):
            Collector(settings, registry=CollectorRegistry()).start()
    # The refused one left nothing open: the partition can be taken again.
    with Collector(settings, registry=CollectorRegistry()) as again:
        again.wait_ready(10)


def test_device_telemetry_is_journaled_and_checked_against_its_topic(
        fresh_mosquitto, tmp_path: Path, publisher_factory) -> None:
    from gridwatch import DeviceTelemetry
    from gridwatch.ingest import Journal, decode_item

    settings = make_settings(fresh_mosquitto.port, tmp_path, client_id="gw-tele")
    ts = reading_doc(0)["ts"]
    good = {"device_id": "tx-7", "site": "sub-3", "ts": ts, "kind": "transformer",
            "metrics": {"oil_temp_c": 71.5, "load_pct": 88.0}}
    with Collector(settings, registry=CollectorRegistry()) as c:
        c.wait_ready(10)
        pub = publisher_factory(fresh_mosquitto.port, client_id="pub-tele")
        pub.publish("devices/sub-3/tx-7/telemetry", json.dumps(good).encode())
        pub.publish("devices/sub-9/tx-7/telemetry", json.dumps(good).encode())
        wait_until(lambda: c.stats.accepted + c.stats.deadlettered_total == 2, 10, "both")
        stats = c.stats
    assert stats.accepted == 1 and stats.deadlettered == {"topic_mismatch": 1}
    with Journal(settings.ingest.journal_dir, 0, readonly=True) as j:
        [(_, record)] = j.read(0, 10)
    item = decode_item(record)
    assert isinstance(item, DeviceTelemetry) and item.metrics["oil_temp_c"] == 71.5
