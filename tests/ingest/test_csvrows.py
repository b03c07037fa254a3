"""The common CSV row read without pydantic answers exactly what the schema's validation
answers (hypothesis: equal readings, same given fields, or no answer and the validation
decides), and takes the rows of a plain meter_id,timestamp,kw file."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gridwatch import Reading
from gridwatch._schemas import ID_PATTERN
from gridwatch.ingest import iter_readings_file
from gridwatch.ingest._csvrows import FastRows
from gridwatch.ingest._source import _parse_line, _RowError

HEADERS = [
    ["meter_id", "timestamp", "kw"],
    ["ts", "meter_id", "kw", "kwh"],
    ["meter_id", "timestamp", "kw", "kwh", "export_kwh", "pf", "freq", "note"],
]


def _numbers() -> st.SearchStrategy[str]:
    plain = st.builds(lambda i, f, neg: f"{'-' if neg else ''}{i}{'.' + f if f else ''}",
                      st.integers(0, 10**13).map(str) | st.sampled_from(["0", "00", "007"]),
                      st.sampled_from(["", "0", "5", "25", "125", "999999999999", "1"]) |
                      st.integers(0, 10**15).map(str), st.booleans())
    odd = st.sampled_from(["1e3", "+1.5", " 2.5 ", "1_000", "inf", "nan", "-inf", "1.", ".5",
                           "0x10", "", " ", "1e400", "--1", "1,5"])
    return plain | odd | st.floats(allow_nan=True, allow_infinity=True).map(repr)


def _stamps() -> st.SearchStrategy[str]:
    base = st.datetimes(min_value=datetime(1990, 1, 1), max_value=datetime(2200, 1, 1))
    offset = st.sampled_from(["Z", "+00:00", "+10:00", "-05:30", "+23:59", "-00:00", "",
                              "z", "+24:00", "+1000"])
    frac = st.sampled_from(["", ".5", ".123456", ".1234567", ".000001"])
    built = st.builds(lambda d, f, o, sep: d.strftime(f"%Y-%m-%d{sep}%H:%M:%S") + f + o,
                      base, frac, offset, st.sampled_from(["T", "T", " "]))
    odd = st.sampled_from(["2024-02-30T00:00:00Z", "2024-01-01T24:00:00Z", "1700000000",
                           "2024-01-01", "0000-01-01T00:00:00Z", "2024-13-01T00:00:00Z",
                           "9999-12-31T23:30:00-01:00", "2000-01-01T05:00:00+06:00", ""])
    return built | odd


_ids = st.from_regex(ID_PATTERN, fullmatch=True) | st.sampled_from(
    ["", " m1 ", "-m1", "m 1", "m1\u00e9", "x" * 65, "m1;m2"])


@st.composite
def rows(draw: Any) -> tuple[list[str], str]:
    header = draw(st.sampled_from(HEADERS))
    cells = []
    for name in header:
        if name == "meter_id":
            v = draw(_ids)
        elif name in ("timestamp", "ts"):
            v = draw(_stamps())
        elif name == "note":
            v = draw(st.sampled_from(["", "x", "a b"]))
        else:
            v = draw(st.sampled_from([""]) | _numbers())
        if draw(st.integers(0, 9)) == 0:
            v = f" {v} "
        cells.append(v)
    text = ",".join(cells)
    if draw(st.integers(0, 19)) == 0:
        text = draw(st.sampled_from([text + ",", '"' + text + '"', text[: len(text) // 2]]))
    return header, text


def _same(a: Reading, b: Reading) -> bool:
    return (a == b and a.model_fields_set == b.model_fields_set
            and list(a.__dict__) == list(b.__dict__) and repr(a) == repr(b)
            and all(type(x) is type(y) for x, y in zip(a.__dict__.values(),
                                                        b.__dict__.values(), strict=True)))


@settings(max_examples=800, deadline=None)
@given(rows())
def test_a_row_read_fast_is_the_row_the_schema_validates(case: tuple[list[str], str]) -> None:
    header, text = case
    fast = FastRows.of(header)
    assert fast is not None
    got = fast.reading(text)
    if got is None:
        return  # the schema's validation reads it (and says why when it is bad)
    try:
        want = _parse_line(text, header)
    except _RowError as exc:  # pragma: no cover - the property is that this never happens
        pytest.fail(f"read fast, but the schema rejects it ({exc.reason}: {exc.detail})")
    assert isinstance(want, Reading) and _same(got, want)
    assert got.ts.tzinfo is UTC


def test_the_plain_rows_of_a_file_are_read_fast_and_the_others_validated(tmp_path) -> None:
    fast = FastRows.of(["meter_id", "timestamp", "kw"])
    assert fast is not None
    plain = ["m1,2011-12-02T07:00:00+10:00,0.25", "m1,2011-12-02T07:30:00Z,-3",
             "m2,2024-01-01T00:00:00.5Z,12.5"]
    assert all(fast.reading(t) is not None for t in plain)
    others = ['"m1",2011-12-02T08:00:00Z,1.0', "m1,2011-12-02 08:30:00Z,1.0",
              "m1,2011-12-02T09:00:00Z,1e3", "m1,1999-12-31T23:00:00Z,1.0",
              "m1,2011-12-02T09:30:00Z,200000", "m1,2011-12-02T10:00:00,1.0"]
    assert [fast.reading(t) for t in others] == [None] * len(others)
    # columns this does not read: every row is validated
    assert FastRows.of(["meter_id", "timestamp", "kw", "voltage"]) is None
    assert FastRows.of(["meter_id", "timestamp", "ts", "kw"]) is None
    # a file of both: the same readings and reasons as validation gives
    path = tmp_path / "r.csv"
    path.write_text("meter_id,timestamp,kw\n" + "\n".join(plain + others) + "\n"
                    "m1,2011-12-02T07:30:00Z,-3\n")
    got = list(iter_readings_file(path))
    readings = [x for x in got if isinstance(x, Reading)]
    rejected = [(x.line, x.reason) for x in got if not isinstance(x, Reading)]
    assert len(readings) == 3 + 3  # quoted, spaced time and 1e3 are valid, spelt otherwise
    assert readings[5].kw == 1000.0 and readings[3].meter_id == "m1"
    assert rejected == [(8, "out_of_range"), (9, "out_of_range"), (10, "schema"), (11, "duplicate")]
    assert readings[0].ts == datetime(2011, 12, 1, 21, tzinfo=UTC)
    assert readings[2].ts - readings[1].ts > timedelta(0)
