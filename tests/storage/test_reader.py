"""The read side: InfluxQL queries, the warm start and ``gridwatch report``."""

from __future__ import annotations

from datetime import timedelta

import hypothesis.strategies as st
import pytest
from _storage_helpers import T0, reading, samples
from hypothesis import given
from typer.testing import CliRunner

from gridwatch import _services
from gridwatch.cli import app
from gridwatch.storage import InfluxReader, InfluxSink, ReadError
from gridwatch.storage._reader import READ_BYTES, lines_of


@given(st.lists(st.binary(max_size=12).map(lambda b: b.replace(b"\x00", b"\n")), max_size=12))
def test_lines_of_a_chunked_stream_are_its_lines_wherever_the_chunks_break(chunks):
    whole = b"".join(chunks).split(b"\n")
    if whole[-1] == b"":
        whole.pop()
    assert list(lines_of(chunks)) == whole
    # the same stream, cut elsewhere: one byte a chunk, then all in one
    stream = b"".join(chunks)
    assert list(lines_of([stream[i:i + 1] for i in range(len(stream))])) == whole
    assert list(lines_of([stream])) == whole


def test_a_chunk_of_rows_longer_than_a_read_comes_whole(v1_settings):
    """A chunk of the response is one line of JSON, here several times what is read at a
    time: every row comes back, in order."""
    s = v1_settings()
    readings = [reading(f"m-{k}", i) for i in range(60) for k in range(40)]
    part = InfluxSink(s).build("s", 0, 1)
    part.write_batch(readings)
    assert part.flush()
    with InfluxReader(s, chunk_size=100_000) as reader:
        raw = list(reader.series('SELECT * FROM "reading"'))
        assert sum(len(x["values"]) for x in raw) == len(readings)
        assert len(str(raw)) > 3 * READ_BYTES  # (the line, as JSON, is longer still)
        got = list(reader.recent_readings(T0))
    key = lambda r: (r.meter_id, r.ts)  # noqa: E731
    assert sorted(got, key=key) == sorted(readings, key=key)


def test_recent_readings_for_a_warm_start(v1_settings):
    s = v1_settings()
    readings = [reading(f"m-{k}", i) for i in range(20) for k in range(3)]
    part = InfluxSink(s).build("s", 0, 1)
    part.write_batch(readings)
    assert part.flush()
    since = T0 + timedelta(minutes=15 * 5)
    with InfluxReader(s, chunk_size=7) as reader:  # several chunks
        got = list(reader.recent_readings(since))
        assert [r.ts for r in got] == sorted(r.ts for r in got)  # oldest first
        key = lambda r: (r.ts, r.meter_id)  # noqa: E731
        assert sorted(got, key=key) == sorted((r for r in readings if r.ts >= since), key=key)
        some = list(reader.recent_readings(since, ["m-2", "m-0"], group=1))
        assert sorted(some, key=lambda r: (r.meter_id, r.ts)) == sorted(
            (r for r in readings if r.ts >= since and r.meter_id != "m-1"),
            key=lambda r: (r.meter_id, r.ts))
        assert list(reader.recent_readings(since + timedelta(days=30))) == []


def test_query_errors_name_the_query(v1_settings):
    with InfluxReader(v1_settings()) as reader, pytest.raises(ReadError, match="SELEC kw"):
        list(reader.series("SELEC kw FROM reading"))
    port = _services.free_port()
    with InfluxReader(v1_settings(url=f"http://127.0.0.1:{port}")) as reader, \
            pytest.raises(ReadError, match=str(port)):
        list(reader.recent_readings(T0))


def test_report_prints_readings_profile_and_events(v1_settings, tmp_path):
    s = v1_settings()
    objs = samples("m-7")
    readings = [reading("m-7", i) for i in range(8)]
    part = InfluxSink(s).build("s", 0, 1)
    part.write_batch([*readings, objs["profile"], objs["event"], reading("m-8", 1)])
    assert part.flush()
    cfg = tmp_path / "gridwatch.yaml"
    cfg.write_text(f"influx:\n  api: v1\n  url: {s.url}\n  database: {s.database}\n")
    result = CliRunner().invoke(app, ["report", "--meter", "m-7", "--from", "2024-05-01",
                                      "--to", "2024-05-02", "--config", str(cfg)],
                                env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    out = result.output
    assert "meter m-7" in out and "customer c-1" in out and "grid cell cell-7" in out
    assert f"{len(readings)} (2024-05-01 00:00 … 2024-05-01 01:45)" in out
    kws = [r.kw for r in readings]
    assert f"{min(kws):.2f} / {sum(kws) / len(kws):.2f} / {max(kws):.2f}" in out
    assert f"{readings[-1].kwh - readings[0].kwh:.1f} kWh" in out
    assert "segment residential" in out and "12.5" in out
    assert "abnormal_consumption" in out and "warning" in out


def test_report_rejects_an_empty_period(v1_settings, tmp_path):
    s = v1_settings()
    cfg = tmp_path / "gridwatch.yaml"
    cfg.write_text(f"influx:\n  api: v1\n  url: {s.url}\n  database: {s.database}\n")
    result = CliRunner().invoke(app, ["report", "-m", "m-1", "--from", "2024-05-02",
                                      "--to", "2024-05-01", "-c", str(cfg)])
    assert result.exit_code == 2
    assert "not after" in result.output
