"""The read side: InfluxQL queries, the warm start and ``gridwatch report``."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

import hypothesis.strategies as st
import pytest
from _storage_helpers import T0, reading, samples
from hypothesis import given
from typer.testing import CliRunner

from gridwatch import MeterStatus, Reading, _services
from gridwatch.cli import app
from gridwatch.storage import InfluxReader, InfluxSink, ReadError
from gridwatch.storage._reader import READ_BYTES, _ns, _reading, lines_of, stored_fields


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


_NOW = datetime.now(UTC)
_LATE = _ns(_NOW + timedelta(minutes=5))  # (what the reader gives: Reading's tolerance)
_NS_2000 = 946_684_800 * 10**9
_NS_NOW = int(_NOW.timestamp()) * 10**9
# values near every limit of Reading's, of every JSON kind, and a few plain ones
_numbers = st.one_of(
    st.sampled_from([0, 1, -1, 0.5, 2.25, 40, 70, 39.999, 70.001, -1.0001, 1.0001, 86_400,
                     86_400.5, 86_401, 100_000, 100_000.5, -100_000, 500_000, 500_001, 1e12,
                     1e12 + 1e4, 10**30, -(10**30), 230.0, 5.5, 900, 900.0, 0.9999]),
    st.floats(allow_nan=False, allow_infinity=False, width=32), st.integers(-10**6, 10**6))
_values = st.one_of(_numbers, st.none(), st.booleans(),
                    st.sampled_from(["", "x", "2.5", "power_fail", "estimated,power_fail",
                                     "estimated,nope", "m-1"]))
_times = st.one_of(st.integers(_NS_2000 - 10**9, _NS_NOW + 10**12), st.none(),
                   st.sampled_from([_NS_2000, _NS_2000 - 1, 1.7e18, "2024-01-01T00:00:00Z"]))
_ids = st.one_of(st.sampled_from(["m-1", "M_2.x:y", "a" * 64, "a" * 65, "-m", "", "m 1",
                                  "m-1\n", "é"]), st.integers(0, 9), st.none())



#: each number column's limits, as ``Reading`` states them
_LIMITS = {"kw": (-100_000, 100_000), "kwh": (0, 1e12), "export_kwh": (0, 1e12),
           "pf": (-1, 1), "freq": (40, 70), "interval_s": (1, 86_400),
           **{f"v_{p}": (0, 500_000) for p in ("l1", "l2", "l3")},
           **{f"i_{p}": (0, 100_000) for p in ("l1", "l2", "l3")}}


def _within(lo: float, hi: float) -> st.SearchStrategy:
    return st.one_of(st.floats(lo, hi), st.integers(int(lo), int(hi)), st.sampled_from([lo, hi]))


def _edges(lo: float, hi: float) -> st.SearchStrategy:
    """Numbers on and just past each limit: the least step beyond it, and a bit more."""
    return st.sampled_from([lo, hi, math.nextafter(lo, -math.inf), math.nextafter(hi, math.inf),
                            lo - 0.5, hi + 0.5, int(lo) - 1, int(hi) + 1])


#: each column's values within Reading's limits (most rows are drawn of them, so that the
#: plain checks' answers are tested, not only their refusals)
_VALID = {**{c: _within(lo, hi) for c, (lo, hi) in _LIMITS.items()},
          "status": st.sampled_from(["power_fail", "estimated,power_fail", "reverse_flow"]),
          "meter_id": st.from_regex(r"[a-z0-9][a-z0-9_.:-]{0,8}", fullmatch=True),
          "time": st.integers(_NS_2000, _NS_NOW)}
#: each column's values of anything: on or past its limits, of another kind, absent
_ODD = {**{c: st.one_of(_edges(lo, hi), _values) for c, (lo, hi) in _LIMITS.items()},
        "time": _times, "meter_id": _ids}


@given(st.sets(st.sampled_from(("kwh", "export_kwh", "pf", "freq", "status", "interval_s"))),
       st.integers(0, 3), st.integers(0, 3), st.data())
def test_stored_fields_are_what_validation_gives_or_none(columns, volts, amps, data):
    """A stored row through the plain checks gives the fields ``Reading``'s validation of
    the same row gives, with the same types, or None (then validation decides): it never
    lets through a row that does not validate, nor changes a value."""
    phases = [f"v_l{p}" for p in range(1, volts + 1)] + [f"i_l{p}" for p in range(1, amps + 1)]
    cols = ["time", "meter_id", "kw", *sorted(columns), *phases]
    # each column within the limits but one at most, drawn of anything (on or past a limit,
    # of another kind, absent), so that each refusal is tested on its own, and the answers too
    odd = data.draw(st.integers(-1, len(cols) - 1))
    values = [data.draw(_ODD.get(c, _values) if i == odd else _VALID[c])
              for i, c in enumerate(cols)]
    _same_as_validation(cols, values)


def _same_as_validation(cols: list[str], values: list[Any]) -> dict[str, Any] | None:
    """The fields the plain checks make of a row, after holding them to ``Reading``'s
    validation of the same row (None: they refused it; then validation decides)."""
    fast = stored_fields(cols, None, _LATE)(values)
    row = {c: v for c, v in zip(cols, values, strict=True) if v is not None}
    try:
        valid = _reading(row)
    except (ValueError, KeyError, TypeError):  # (pydantic's ValidationError is a ValueError)
        valid = None
    if fast is None:
        return None
    assert valid is not None, (row, fast)
    want = {k: valid.__dict__[k] for k in valid.model_fields_set}
    typed = lambda d: {k: (repr(v), type(v)) for k, v in d.items()}  # noqa: E731
    assert typed(fast) == typed(want)
    return fast


def test_every_limit_of_every_number_column_is_the_validations():
    """Each number column on each of its limits and just past it, the others plain: the
    plain checks take the value on a limit, as validation does, and refuse the one past it
    (validation refuses it too)."""
    plain = {"time": _NS_NOW - 10**12, "meter_id": "m-1", "kw": 1.5, "kwh": 10.0,
             "export_kwh": 0.0, "pf": 0.9, "freq": 50.0, "interval_s": 900,
             **{f"v_l{p}": 230.0 for p in (1, 2, 3)}, **{f"i_l{p}": 5.0 for p in (1, 2, 3)}}
    cols = list(plain)
    for c, (lo, hi) in _LIMITS.items():
        for value, taken in ((lo, True), (hi, True), (math.nextafter(lo, -math.inf), False),
                             (math.nextafter(hi, math.inf), False), (int(lo) - 1, False),
                             (int(hi) + 1, False)):
            if c == "interval_s" and not taken and value == math.nextafter(hi, math.inf):
                continue  # (a whole number of seconds: 86,400 and a bit is 86,400)
            values = [value if k == c else v for k, v in plain.items()]
            got = _same_as_validation(cols, values)
            assert (got is not None) is taken, (c, value)


def test_stored_fields_vouch_for_every_row_the_engine_wrote(v1_settings):
    """Every row of readings as the engine writes them (all fields, some without any but
    ``kw``, a status of two flags) is made fields by the plain checks, none by validation,
    and they are the readings written."""
    s = v1_settings()
    plain = [reading(f"m-{k}", i) for i in range(30) for k in range(3)]
    bare = [Reading(meter_id="b-1", ts=T0 + timedelta(minutes=15 * i), kw=float(i),
                    status=(MeterStatus.POWER_FAIL, MeterStatus.ESTIMATED) if i == 3 else ())
            for i in range(10)]
    part = InfluxSink(s).build("s", 0, 1)
    part.write_batch(plain + bare)
    assert part.flush()
    with InfluxReader(s, chunk_size=7) as reader:
        rows = [(x["columns"], v) for x in reader.series('SELECT * FROM "reading"')
                for v in x["values"]]
        fields = [stored_fields(c, None, _LATE)(v) for c, v in rows]
        assert len(fields) == len(plain + bare) and None not in fields
        got = list(reader.recent_readings(T0))
        assert reader.skipped == 0
    key = lambda r: (r.meter_id, r.ts)  # noqa: E731
    assert sorted(got, key=key) == sorted(plain + bare, key=key)


def test_a_stored_row_that_does_not_validate_is_skipped_and_counted(v1_settings):
    """A row written by another hand, out of ``Reading``'s limits (a power factor of 3): the
    plain checks leave it to validation, which rejects it; the others come."""
    s = v1_settings()
    part = InfluxSink(s).build("s", 0, 1)
    part.write_batch([reading("m-1", i) for i in range(4)])
    assert part.flush()
    import urllib.request
    stamp = int((T0 + timedelta(minutes=15)).timestamp()) * 10**9
    urllib.request.urlopen(f"{s.url}/write?db={s.database}",
                           data=f"reading,meter_id=m-9 kw=1.5,pf=3 {stamp}".encode()).read()
    with InfluxReader(s) as reader:
        got = list(reader.recent_fields(T0))
        assert [f["meter_id"] for f in got] == ["m-1"] * 4 and reader.skipped == 1


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
