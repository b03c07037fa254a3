"""Bytewax inputs: the journal source (replay, follow, resume from its snapshot, recovery after
kill -9 of the engine) and the readings-file source (CSV, JSONL; bad rows dead-lettered)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import bytewax.operators as op
import pytest
from _ingest_helpers import (
    compact_docs,
    reading_doc,
)
from _suite_helpers import wait_until
from bytewax.dataflow import Dataflow
from bytewax.testing import TestingSink, run_main
from hypothesis import given, settings
from hypothesis import strategies as st

from gridwatch import DeviceTelemetry, Reading
from gridwatch.ingest import (
    FileShare,
    FileSource,
    IngestMetrics,
    Journal,
    JournalSource,
    Rejected,
    encode_item,
    iter_readings_file,
    read_deadletters,
)
from gridwatch.ingest._assemble import ReadingFields

HERE = Path(__file__).parent


def _fill(journal_dir: Path, part: int, docs: list[dict]) -> list[Reading]:
    items = [Reading.model_validate(d) for d in docs]
    with Journal(journal_dir, part) as j:
        j.append([encode_item(r) for r in items])
    return items


def _run(source) -> list:
    out: list = []
    flow = Dataflow("t")
    op.output("out", op.input("in", flow, source), TestingSink(out))
    run_main(flow)
    return out


def test_journal_source_replays_every_partition(tmp_path: Path) -> None:
    a = _fill(tmp_path, 0, [reading_doc(i) for i in range(2500)])
    b = _fill(tmp_path, 2, [reading_doc(i) for i in range(2500, 3000)])
    tele = DeviceTelemetry(device_id="d1", site="s1", ts=datetime(2026, 1, 1, tzinfo=UTC),
                           metrics={"oil_temp_c": 55.0})
    with Journal(tmp_path, 2) as j:
        j.append([encode_item(tele)])
    source = JournalSource(tmp_path, follow=False, batch_size=300)
    got = _run(source)
    assert source.accepted == 3001
    assert Counter(map(repr, got)) == Counter(map(repr, [*a, *b, tele]))
    only = _run(JournalSource(tmp_path, [2], follow=False))
    assert only == [*b, tele]


def test_journal_partition_follows_snapshots_and_resumes(tmp_path: Path) -> None:
    items = _fill(tmp_path, 0, [reading_doc(i) for i in range(10)])
    metrics = IngestMetrics()
    now = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    src = JournalSource(tmp_path, follow=True, batch_size=4, metrics=metrics,
                        poll_interval=timedelta(milliseconds=250), clock=lambda: now)
    assert src.list_parts() == ["p0000"]
    part = src.build_part("in", "p0000", None)
    assert part.next_batch() == items[:4] and part.snapshot() == 4
    assert part.next_awake() is None
    assert metrics.consumer_lag.labels("0")._value.get() == 6
    resumed = src.build_part("in", "p0000", part.snapshot())
    assert resumed.next_batch() == items[4:8]
    assert resumed.next_batch() == items[8:]
    assert resumed.next_batch() == []  # following: nothing new yet, and no blocking
    assert resumed.next_awake() == now + timedelta(milliseconds=250)  # by the source's clock
    more = _fill(tmp_path, 0, [reading_doc(i) for i in range(10, 12)])
    assert resumed.next_batch() == more and resumed.snapshot() == 12
    replay = JournalSource(tmp_path, follow=False).build_part("in", "p0000", 12)
    with pytest.raises(StopIteration):
        replay.next_batch()


def test_journal_source_skips_undecodable_records(tmp_path: Path) -> None:
    good = _fill(tmp_path, 0, [reading_doc(1)])
    with Journal(tmp_path, 0) as j:
        j.append([b'{"not": "a reading"}'])
    _fill(tmp_path, 0, [reading_doc(2)])
    got = _run(JournalSource(tmp_path, follow=False))
    assert got[0] == good[0] and len(got) == 2


CSV = (
    "meter_id,timestamp,kw,kwh,voltage,pf\n"
    "m1,2026-01-01T00:00:00Z,1.5,100,230.5,0.98\n"
    "m1,2026-01-01T00:15:00Z,oops,,,\n"
    "m2,2026-01-01T00:00:00Z,nan,,,\n"
    ",2026-01-01T00:00:00Z,1,,,\n"
    "m3,2026-01-01T00:00:00,1,,,\n"
    "m1,2026-01-01T00:00:00Z,1.5,100,230.5,0.98\n"
    "m4,2026-01-01T00:00:00Z,2,,231;229;230,\n"
    "m5,2026-01-01T00:00:00Z,2,1,2\n"
    "m6,2026-01-01T00:00:00Z,-200000,,,\n"
)


def _write_csv(path: Path) -> Path:
    data = CSV.encode()
    # An invalid UTF-8 line (line 11) that must be reported, not crash the reader.
    path.write_bytes(data + b"m7,2026-01-01T00:00:00Z,\xff\xfe,,,\n"
                     + b"m8,2026-01-01T00:30:00Z,3.25,,,\n")
    return path


def test_csv_rows_read_or_rejected_with_line_and_reason(tmp_path: Path) -> None:
    rows = list(iter_readings_file(_write_csv(tmp_path / "readings.csv")))
    good = [r for r in rows if isinstance(r, Reading)]
    bad = [r for r in rows if isinstance(r, Rejected)]
    assert [(r.meter_id, r.kw) for r in good] == [("m1", 1.5), ("m4", 2.0), ("m8", 3.25)]
    assert good[0].voltage == (230.5,) and good[0].pf == 0.98
    assert good[1].voltage == (231.0, 229.0, 230.0)
    assert [(r.line, r.reason) for r in bad] == [
        (3, "schema"), (4, "non_finite"), (5, "schema"), (6, "schema"), (7, "duplicate"),
        (9, "schema"), (10, "out_of_range"), (11, "invalid_utf8")]
    assert all(f"line {r.line}" in r.detail for r in bad)


def test_csv_without_needed_columns_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_text("meter,when,power\nm1,2026-01-01T00:00:00Z,1\n")
    with pytest.raises(ValueError, match="meter_id, timestamp and kw"):
        list(iter_readings_file(path))


def test_jsonl_file_source_dead_letters_bad_lines(tmp_path: Path) -> None:
    path = tmp_path / "readings.jsonl"
    lines = [json.dumps(reading_doc(i)) for i in range(5)]
    lines.insert(2, "{broken")
    lines.insert(4, json.dumps({"meter_id": "m1", "ts": "2026-01-01T00:00:00Z", "kw": 1e9}))
    lines.insert(5, "")
    path.write_text("\n".join(lines) + "\n")
    dead = tmp_path / "dead"
    received = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    source = FileSource(path, deadletter_dir=dead, batch_size=2, clock=lambda: received)
    got = _run(source)
    assert source.accepted == 5
    assert source.rejected_by_reason == {"invalid_json": 1, "out_of_range": 1}
    assert [r.to_json_dict() for r in got] == [reading_doc(i) for i in range(5)]
    letters = list(read_deadletters(dead))
    assert [(d.reason, d.index) for d in letters] == [("invalid_json", 3), ("out_of_range", 5)]
    assert letters[0].payload == b"{broken"
    assert {d.received_at for d in letters} == {received}


def test_file_source_resumes_after_its_snapshot(tmp_path: Path) -> None:
    path = _write_csv(tmp_path / "r.csv")
    src = FileSource(path, batch_size=3)
    part = src.build_part("in", src.list_parts()[0], None)
    first = part.next_batch()
    resumed = src.build_part("in", src.list_parts()[0], part.snapshot())
    rest: list = []
    while True:
        try:
            rest.extend(resumed.next_batch())
        except StopIteration:
            break
    assert [r.meter_id for r in first + rest] == ["m1", "m4", "m8"]


@pytest.mark.slow
def test_engine_kill_9_with_recovery_loses_nothing(tmp_path: Path) -> None:
    journal, out, rec = tmp_path / "journal", tmp_path / "out", tmp_path / "recovery"
    out.mkdir()
    rec.mkdir()
    n = 3000
    expected = Counter(
        (r.meter_id, r.ts.isoformat().replace("+00:00", "Z"))
        for r in _fill(journal, 0, [reading_doc(i) for i in range(n)])
    )
    subprocess.run([sys.executable, "-m", "bytewax.recovery", str(rec), "1"], check=True)
    env = os.environ | {"GW_JOURNAL": str(journal), "GW_OUT": str(out), "GW_BATCH": "50"}
    env["PYTHONPATH"] = os.pathsep.join([str(HERE), env.get("PYTHONPATH", "")])
    cmd = [sys.executable, "-m", "bytewax.run", "_ingest_flow:build()", "-r", str(rec),
           "-s", "1", "-b", "0"]

    def lines() -> list[str]:
        return [ln for f in out.glob("*.txt") for ln in f.read_text().splitlines()]

    proc = subprocess.Popen(cmd, env=env | {"GW_DELAY_S": "0.001"}, cwd=HERE)
    try:
        wait_until(lambda: len(lines()) >= n // 2, 60, "the run half way")
        time.sleep(0.3)  # the fault: kill a little after half way, mid-epoch
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    before = len(lines())
    assert before < n, "the run finished before the kill: slow it down"
    subprocess.run(cmd, env=env, cwd=HERE, check=True, timeout=120)
    got = Counter(tuple(ln.split("|")) for ln in lines())
    assert set(got) == set(expected), f"lost {len(set(expected) - set(got))} readings"
    redone = sum(got.values()) - n
    # At most the epoch in progress at the kill is done again (1 s of about 1,000 readings/s).
    print(f"killed after {before} lines; redone {redone}")
    assert redone <= 1500, redone


def test_replay_source_picks_journal_or_file(tmp_path: Path) -> None:
    from gridwatch.ingest import replay_source

    items = _fill(tmp_path / "j", 1, [reading_doc(i) for i in range(3)])
    assert _run(replay_source(tmp_path / "j")) == items
    path = _write_csv(tmp_path / "r.csv")
    assert [r.meter_id for r in _run(replay_source(path))] == ["m1", "m4", "m8"]
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no journal partitions"):
        replay_source(tmp_path / "empty")


@settings(max_examples=60, deadline=None)
# Lone surrogates (category Cs) cannot stand in a UTF-8 file; invalid bytes are covered by the
# binary rows and by the test that writes \xff\xfe into a CSV row.
@given(rows=st.lists(st.text(alphabet=st.characters(blacklist_characters="\r\n\x0b\x0c\x1c"
                                                    "\x1d\x1e\x85\u2028\u2029",
                                                    blacklist_categories=("Cs",)), max_size=40)
                     | st.binary(max_size=40).map(lambda b: b.replace(b"\n", b"").decode(
                         "utf-8", errors="ignore")),
                     max_size=20),
       jsonl=st.booleans())
def test_any_file_rows_are_read_or_rejected_never_raise(rows: list[str], jsonl: bool) -> None:
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / ("r.jsonl" if jsonl else "r.csv")
        header = [] if jsonl else ["meter_id,timestamp,kw"]
        path.write_text("\n".join([*header, *rows]) + "\n", encoding="utf-8")
        out = list(iter_readings_file(path))
        # Blank lines (ASCII whitespace only) are skipped; every other line gives one result.
        data_rows = [r for r in rows if r.encode().rstrip(b"\r").strip()]
        assert len(out) == len(data_rows)
        assert all(isinstance(o, Reading | DeviceTelemetry | Rejected) for o in out)


_METERS = ("m1", "m2", " m3", "m-4", "e\u00e9", "m,5", 'm"6')


def _csv_line(meter: str, minute: int, kw: str) -> bytes:
    # a meter id with a comma or a quote is quoted as the csv module quotes it
    field = meter if not any(c in meter for c in ',"') else '"' + meter.replace('"', '""') + '"'
    return f"{field},2026-01-01T00:{minute:02d}:00Z,{kw}".encode()


def _json_line(meter: str, minute: int, kw: str) -> bytes:
    key = "device_id" if meter == "m-4" else "meter_id"
    return json.dumps({key: meter, "ts": f"2026-01-01T00:{minute:02d}:00Z", "kw": kw,
                       **({"kind": "transformer", "load_kva": 1.0} if key == "device_id"
                          else {})}).encode()


_line = st.tuples(st.sampled_from(_METERS), st.integers(0, 5),
                  st.sampled_from(["1.5", "0", "-2", "x", "1e9"]))
_junk = st.sampled_from([b"", b"   ", b"\xff\xfe,2026", b"{broken", b"m1", b"[1,2]",
                         b'{"meter_id": 7}', b"m1,,", b'"m1', b"\x00"])


def _batches(source: FileSource) -> list[list]:
    part = source.build_part("in", source.list_parts()[0], None)
    out = []
    try:
        while True:
            out.append(part.next_batch())
    except StopIteration:
        return out
    finally:
        part.close()


def test_common_rows_come_as_their_fields_when_asked(tmp_path: Path) -> None:
    path = tmp_path / "r.csv"
    path.write_bytes(b"\n".join([b"meter_id,timestamp,kw", _csv_line("m1", 0, "1.5"),
                                  _csv_line("m2", 0, "-2"), _csv_line("m1", 1, "0")]) + b"\n")
    batches = _batches(FileSource(path, batch_size=10, as_fields=True))
    assert len(batches) == 1 and len(batches[0]) == 1
    fields = batches[0][0]
    assert type(fields) is ReadingFields
    assert [g["meter_id"] for g in fields.given] == ["m1", "m2", "m1"]
    assert fields.readings() == [x for x in iter_readings_file(path) if isinstance(x, Reading)]


@settings(max_examples=80, deadline=None)
@given(lines=st.lists(st.one_of(_line, _junk), max_size=40), size=st.integers(1, 7))
def test_a_file_source_asked_for_fields_reads_what_it_reads_as_readings(
        lines: list, size: int) -> None:
    """``as_fields``: a batch of rows all in the common form is one ``ReadingFields`` item, a
    batch with any other row its readings; either way the same readings, in order, the same
    rows rejected for the same reasons, and the same count, as the source gives as readings
    (and ``iter_readings_file``). A consumer that does not ask gets readings."""
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "r.csv"
        path.write_bytes(b"\n".join([b"meter_id,timestamp,kw",
                                      *(x if isinstance(x, bytes) else _csv_line(*x)
                                        for x in lines)]) + b"\n")
        want = [x for x in iter_readings_file(path) if isinstance(x, Reading)]
        sources = {flag: FileSource(path, batch_size=size, as_fields=flag,
                                    deadletter_dir=Path(d) / f"dead-{flag}")
                   for flag in (None, True)}
        got = {flag: _batches(src) for flag, src in sources.items()}
        assert [x for batch in got[None] for x in batch] == want
        made = []
        for batch in got[True]:
            if batch and type(batch[0]) is ReadingFields:
                assert len(batch) == 1
                made += batch[0].readings()
            else:
                assert all(type(x) is Reading for x in batch)
                made += batch
        assert made == want
        assert all(a.model_fields_set == b.model_fields_set
                   for a, b in zip(made, want, strict=True))
        assert sources[True].accepted == sources[None].accepted == len(want)
        assert sources[True].rejected_by_reason == sources[None].rejected_by_reason
        assert [(x.reason, x.index) for x in read_deadletters(Path(d) / "dead-True")] == \
            [(x.reason, x.index) for x in read_deadletters(Path(d) / "dead-None")]


@settings(max_examples=80, deadline=None)
@given(lines=st.lists(st.one_of(_line, _junk), max_size=30), jsonl=st.booleans(),
       count=st.integers(2, 4))
def test_the_shares_of_a_file_read_each_line_once_as_the_whole_file_does(
        lines: list, jsonl: bool, count: int) -> None:
    """A parallel replay's processes each read the file with their own share: together they
    give every line's result exactly once, the result reading the whole file gives (readings,
    rejections with their reasons, duplicates found), and all of a meter's lines in one share."""
    import zlib

    from gridwatch.ingest._source import _numbered

    def owner(meter_id: str) -> int:
        return zlib.crc32(meter_id.encode())

    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / ("r.jsonl" if jsonl else "r.csv")
        out = [] if jsonl else [b"meter_id,timestamp,kw"]
        for x in lines:
            out.append(x if isinstance(x, bytes) else (_json_line if jsonl else _csv_line)(*x))
        path.write_bytes(b"\n".join(out) + b"\n")
        whole = list(_numbered(path))
        shares = [list(_numbered(path, FileShare(i, count, owner))) for i in range(count)]
    got = sorted((x for share in shares for x in share), key=lambda x: x[0])
    assert got == whole
    where: dict[str, set[int]] = {}
    for i, share in enumerate(shares):
        for _, item in share:
            if not isinstance(item, Rejected):
                name = item.meter_id if isinstance(item, Reading) else item.device_id
                where.setdefault(name, set()).add(i)
                assert owner(name) % count == i
    assert all(len(s) == 1 for s in where.values())


def test_a_file_share_is_one_partition_with_its_own_dead_letters(tmp_path: Path) -> None:
    from gridwatch.ingest import replay_source

    path = tmp_path / "r.csv"
    path.write_text("meter_id,timestamp,kw\n"
                    "a,2026-01-01T00:00:00Z,1\n"
                    "b,2026-01-01T00:00:00Z,x\n"
                    "a,2026-01-01T00:15:00Z,2\n"
                    "not,a,row,at,all\n")
    owner = {"a": 0, "b": 1, "not": 1}.__getitem__
    dead = tmp_path / "dead"
    sources = [replay_source(path, deadletter_dir=dead, share=FileShare(i, 2, owner))
               for i in range(2)]
    assert [s.list_parts() for s in sources] == [["file:r.csv#0/2"], ["file:r.csv#1/2"]]
    assert [(r.meter_id, r.kw) for r in _run(sources[0])] == [("a", 1.0), ("a", 2.0)]
    assert _run(sources[1]) == []
    assert sources[1].rejected_by_reason == {"schema": 2}
    letters = list(read_deadletters(dead))
    assert sorted(d.index for d in letters) == [3, 5]  # once each, in share 1's partition
    with Journal(dead, 1, readonly=True) as own:
        assert len(own.read(own.start_offset, 10)) == 2
    with pytest.raises(ValueError, match=r"share 2 is not one of 0\.\.1"):
        FileShare(2, 2, owner)


def test_a_file_source_reports_its_progress_in_data_lines(tmp_path: Path) -> None:
    path = tmp_path / "r.csv"
    rows = [f"m{k},2026-01-01T00:{k:02d}:00Z,1" for k in range(25)]
    rows.insert(7, "m1,bad,1")
    path.write_text("meter_id,timestamp,kw\n" + "\n".join(rows) + "\n")
    seen: list[tuple[int, datetime]] = []
    source = FileSource(path, batch_size=10, progress=lambda n, ts: seen.append((n, ts)))
    assert len(_run(source)) == 25
    assert [n for n, _ in seen] == [10, 20, 26]  # the bad row counts as a line read
    assert seen[-1][1] == datetime(2026, 1, 1, 0, 24, tzinfo=UTC)


def test_a_journal_share_is_every_count_th_partition(tmp_path: Path) -> None:
    from gridwatch.ingest import replay_source

    for part in range(5):
        _fill(tmp_path / "j", part, [reading_doc(part)])
    shares = [replay_source(tmp_path / "j", share=FileShare(i, 2, len)).list_parts()
              for i in range(2)]
    assert shares == [["p0000", "p0002", "p0004"], ["p0001", "p0003"]]


def test_a_timestamp_past_the_last_instant_is_a_bad_row_not_a_crash(tmp_path: Path) -> None:
    path = tmp_path / "far.csv"
    path.write_text("meter_id,timestamp,kw\n"
                    "m1,9999-12-31T23:59:59-01:00,1\n"
                    "m1,2026-01-01T00:00:00Z,1\n")
    got = list(iter_readings_file(path))
    assert isinstance(got[0], Rejected) and got[0].line == 2 and "out of range" in got[0].detail
    assert isinstance(got[1], Reading)


@settings(max_examples=150, deadline=None)
@given(docs=st.lists(compact_docs, min_size=1, max_size=6))
def test_compact_jsonl_lines_are_read_as_their_validation_reads_them(
        docs: list[dict[str, object]]) -> None:
    """A JSON line in the compact form is read by msgspec's path (as a compact MQTT payload
    is); the same lines with JSON's spaces go through pydantic's validation. Both files give
    the same readings, with the same given fields, and the same rejections."""
    from gridwatch.ingest._source import _numbered

    def read(lines: list[bytes]) -> list[tuple]:
        with tempfile.TemporaryDirectory() as d:
            path = Path(d) / "r.jsonl"
            path.write_bytes(b"\n".join(lines) + b"\n")
            return [(n, item.model_dump_json(), item.model_fields_set)
                    if isinstance(item, Reading) else (n, item.reason)
                    for n, item in _numbered(path)]

    compact = [json.dumps(d, separators=(",", ":")).encode() for d in docs]
    spaced = [json.dumps(d).encode() for d in docs]
    assert compact != spaced  # (the second file is read by pydantic)
    assert read(compact) == read(spaced)
