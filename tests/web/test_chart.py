"""The server-drawn charts: what they draw, and that no values break them."""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta
from xml.etree import ElementTree

from hypothesis import given, settings
from hypothesis import strategies as st

from gridwatch.web._chart import bar_chart, expected_band, load_chart

T = datetime(2026, 5, 4, tzinfo=UTC)


def test_load_chart_draws_readings_band_and_marks() -> None:
    readings = [(T + timedelta(minutes=15 * i), 1.0 + (i % 4)) for i in range(96)]
    # log-load scores with a spread of 0.25: z = |ln(kw / 2)| / 0.25
    scores = [(t, kw, 2.0, abs(math.log(kw / 2.0)) / 0.25) for t, kw in readings]
    band = expected_band(scores, band_hi=4.0, band_lo=2.0)
    lo, hi = band[0][2:]
    assert math.isclose(hi, 2.0 * math.exp(1.0)) and math.isclose(lo, 2.0 * math.exp(-0.5))
    svg = load_chart(readings, band, [(T + timedelta(hours=6), "onset"),
                                      (T + timedelta(hours=7), "raised")],
                     start=T, end=T + timedelta(days=1), labels={"onset": "Beginn"})
    root = ElementTree.fromstring(str(svg))
    ns = "{http://www.w3.org/2000/svg}"
    lines = {el.get("class"): el for el in root.iter(f"{ns}polyline")}
    assert len(lines["readings"].get("points").split()) == 96
    assert root.find(f"{ns}polygon").get("class") == "band"
    marks = [el.get("class") for el in root.iter(f"{ns}line") if "mark" in el.get("class")]
    assert marks == ["mark mark-onset", "mark mark-raised"]
    assert "Beginn" in str(svg)


def test_empty_window_says_so() -> None:
    svg = load_chart([], [], [], start=T, end=T + timedelta(hours=1),
                     labels={"no_data": "nothing here"})
    assert "nothing here" in str(svg) and "<polyline" not in str(svg)


def test_labels_are_escaped() -> None:
    svg = load_chart([], [], [(T, "onset")], start=T, end=T + timedelta(hours=1),
                     labels={"onset": "<script>x</script>"})
    assert "<script>" not in str(svg)


floats = st.floats(allow_nan=True, allow_infinity=True, width=32)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(-100, 2000), floats), max_size=40),
       st.lists(st.tuples(st.integers(0, 1000), floats, floats, floats), max_size=20),
       st.floats(min_value=0.1, max_value=20))
def test_charts_never_break(points, scores, z) -> None:
    readings = [(T + timedelta(minutes=m), v) for m, v in points]
    sc = [(T + timedelta(minutes=m), a, b, c) for m, a, b, c in scores]
    band = expected_band(sc, z)
    svg = str(load_chart(readings, band, [(T, "onset")], start=T,
                         end=T + timedelta(hours=12)))
    ElementTree.fromstring(svg)  # well-formed
    assert not re.search(r"nan|inf", svg.split(">", 1)[1].replace("aria-label", ""))
    bars = str(bar_chart([(str(i), v) for i, (_, v) in enumerate(points)]))
    ElementTree.fromstring(bars)
    assert all(math.isfinite(float(x)) for x in re.findall(r'height="([^"]+)"', bars))
