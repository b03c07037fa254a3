"""The plain-row path of CSV replay: a row it takes is exactly the reading validation gives,
and a row it is not sure of goes through validation (same reasons as before)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from gridwatch import Reading
from gridwatch.ingest import Rejected, iter_readings_file
from gridwatch.ingest._source import _csv_row, _plain_reading

HEADER = ["meter_id", "timestamp", "kw", "kwh", "voltage", "current", "pf", "freq"]

numbers = (st.floats(allow_nan=True, allow_infinity=True).map(repr)
           | st.integers(-10**6, 10**6).map(str)
           | st.sampled_from(["", "1.", ".5", "+1", "1e5", "-0", "1_0", " 1", "1e400",
                              "0x10", "nan", "2;", "230;231", "1;2;3;4", "200000"]))
cells = {
    "meter_id": st.from_regex(r"[A-Za-z0-9_.:\-]{0,70}", fullmatch=True)
    | st.sampled_from(["", " m1 ", "mé", "m1\u00a0"]),
    "timestamp": st.sampled_from([
        "2026-01-01T00:00:00Z", "2011-12-02T07:00:00+10:00", "2026-01-01T00:00:00",
        "1999-12-31T23:00:00Z", "2000-01-01T00:30:00+01:00", "2026-02-30T00:00:00Z",
        "2026-01-01T24:00:00Z", "2026-01-01T00:00:60Z", "2026-01-01 00:00:00Z",
        "2026-01-01T00:00:00.123456Z", "2026-01-01T00:00:00.5-03:30", "20260101T000000Z",
        "", "2026-01-01T00:00:00+25:00", "9999-12-31T23:59:59-01:00"]),
}


@st.composite
def rows(draw: st.DrawFn) -> list[str]:
    row = [draw(cells.get(name, numbers)) for name in HEADER]
    if draw(st.booleans()):  # a phase list of either column
        i = HEADER.index(draw(st.sampled_from(["voltage", "current"])))
        row[i] = ";".join(draw(st.lists(numbers, min_size=0, max_size=4)))
    return row


@settings(max_examples=1000, deadline=None)
@given(row=rows())
def test_a_plain_row_becomes_exactly_the_validated_reading(row: list[str]) -> None:
    doc = _csv_row(HEADER, row)
    try:
        want: Reading | None = Reading.model_validate(
            doc, context={"max_future": timedelta.max})
    except ValidationError:
        want = None
    got = _plain_reading(HEADER, row)
    if got is None:
        return  # validation decides, as before
    assert want is not None, f"taken, but validation rejects {row}"
    assert got == want and got.model_fields_set == want.model_fields_set
    assert got.model_dump_json() == want.model_dump_json()


def test_bad_rows_keep_their_line_and_reason(tmp_path: Path) -> None:
    path = tmp_path / "r.csv"
    path.write_text(
        "meter_id,timestamp,kw,voltage\n"
        "m1,2026-01-01T00:00:00Z,1.5,230\n"
        "m1,2026-01-01T00:15:00Z,nan,\n"
        "m2,2026-01-01T00:00:00Z,1e9,\n"
        'm3,"2026-01-01T00:00:00Z",2,"231;229"\n'
        "m4,2026-01-01T00:00:00Z,2,231;229;230;1\n"
        "m5,1999-01-01T00:00:00Z,2,\n"
        "m1,2026-01-01T00:00:00Z,1.5,230\n")
    got = list(iter_readings_file(path))
    assert [(g.line, g.reason) for g in got if isinstance(g, Rejected)] == [
        (3, "non_finite"), (4, "out_of_range"), (6, "out_of_range"), (7, "out_of_range"),
        (8, "duplicate")]
    readings = [g for g in got if isinstance(g, Reading)]
    assert [(r.meter_id, r.voltage) for r in readings] == [("m1", (230.0,)),
                                                           ("m3", (231.0, 229.0))]
