"""Load forecasts: accuracy on a periodic load, scores as forecasts come true, the warning
before a limit is crossed, the forecast measurement in a real InfluxDB, and forecasts leaving
the dataflow."""

from __future__ import annotations

import json
import math
import urllib.parse
import urllib.request
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from gridwatch._schemas import Forecast
from gridwatch.models._forecast import LoadForecaster, pinball
from gridwatch.storage import to_lines

T0 = datetime(2024, 4, 1, tzinfo=UTC)
STEP = timedelta(minutes=15)


def load(k: int, growth: float = 0.0) -> float:
    """Daily shape, lower at weekends, optionally growing by ``growth`` per day."""
    day = (T0 + k * STEP).weekday()
    shape = 100 + 60 * math.sin(2 * math.pi * (k % 96) / 96) + (0 if day < 5 else -20)
    return shape * (1 + growth * k / 96)


@pytest.mark.parametrize(("q", "actual", "forecast", "loss"), [
    (0.5, 10, 8, 1.0), (0.5, 8, 10, 1.0), (0.9, 10, 8, 1.8), (0.9, 8, 10, 0.2),
    (0.1, 10, 8, 0.2), (0.1, 8, 10, 1.8), (0.9, 5, 5, 0.0),
])
def test_pinball(q, actual, forecast, loss):
    assert pinball(actual, forecast, q) == pytest.approx(loss)


def test_a_periodic_load_is_forecast_closely_and_scored_as_it_comes():
    fc = LoadForecaster("tx-1", "transformer", 1000.0)
    made: list[Forecast] = []
    done: list[Forecast] = []
    for k in range(96 * 21):
        out, events = fc.update(T0 + (k + 1) * STEP, load(k))
        assert events == []  # far below the limit
        made.extend(f for f in out if f.actual is None)
        done.extend(f for f in out if f.actual is not None)
    assert all(f.p10 <= f.value <= f.p90 for f in made)
    assert {f.horizon for f in made} == {"1h", "1d"}
    # each forecast is scored once, when its interval comes, against the real value
    scored = [f for f in done if f.horizon == "1d"]
    assert len(scored) == fc.scores["1d"].n
    assert all(f.actual == pytest.approx(load(round((f.ts - T0) / STEP) - 1)) for f in scored)
    late = [abs(f.actual - f.value) / f.actual for f in scored if f.ts > T0 + timedelta(days=15)]
    assert late and sum(late) / len(late) < 0.02
    assert fc.scores["1d"].mape is not None and fc.scores["1h"].mape is not None
    assert fc.scores["1h"].scaled_pinball is not None and fc.scores["1h"].scaled_pinball < 0.05


def test_nothing_is_forecast_during_the_warm_up():
    fc = LoadForecaster("c-1", "customer", None, warmup_days=2)
    out = [f for k in range(96 * 2 - 1) for f in fc.update(T0 + (k + 1) * STEP, load(k))[0]]
    assert out == []


def test_growing_load_is_warned_before_it_crosses_the_limit():
    limit = 230.0
    fc = LoadForecaster("tx-1", "transformer", limit)
    warned = crossed = None
    for k in range(96 * 20):
        ts = T0 + (k + 1) * STEP
        value = load(k, growth=0.0 if k < 96 * 14 else 0.04)
        _, events = fc.update(ts, value)
        for e in events:
            if e.state == "firing" and warned is None:
                warned = ts
                assert e.type == "overload_forecast" and e.evidence["lead_min"] > 0
                assert e.evidence["limit"] == limit
        if value > limit and crossed is None:
            crossed = ts
    assert crossed is not None and warned is not None
    assert crossed - warned >= timedelta(minutes=30)


def test_holidays_count_as_sundays():
    fc = LoadForecaster("c-1", "customer", None, country="DE", tz="Europe/Berlin")
    easter_monday = datetime(2024, 4, 1, 12, tzinfo=UTC)
    sunday = datetime(2024, 3, 31, 12, tzinfo=UTC)
    assert fc._slots(easter_monday.timestamp()) == fc._slots(sunday.timestamp())
    assert fc._slots(easter_monday.timestamp())[0] != fc._slots(
        (easter_monday + timedelta(days=7)).timestamp())[0]


def _influx(url: str, db: str, q: str) -> list[dict]:
    body = urllib.request.urlopen(f"{url}/query?" + urllib.parse.urlencode({"db": db, "q": q}),
                                  timeout=10).read()
    rows = []
    for result in json.loads(body)["results"]:
        for series in result.get("series", []):
            rows.extend(dict(zip(series["columns"], r, strict=True)) for r in series["values"])
    return rows


@pytest.mark.services
def test_forecasts_and_their_actuals_share_one_point_in_influxdb(influxdb):
    db = f"fc_{uuid.uuid4().hex[:10]}"
    urllib.request.urlopen(urllib.request.Request(
        f"{influxdb.url}/query", data=urllib.parse.urlencode({"q": f"CREATE DATABASE {db}"})
        .encode(), method="POST"), timeout=10).read()
    fc = LoadForecaster("tx-1", "transformer", 500.0, grid_cell="c1")
    lines: list[str] = []
    for k in range(96 * 4):
        out, _ = fc.update(T0 + (k + 1) * STEP, load(k))
        for f in out:
            lines.extend(to_lines(f))
    req = urllib.request.Request(f"{influxdb.url}/write?db={db}&precision=ns",
                                 data="\n".join(lines).encode(), method="POST")
    assert urllib.request.urlopen(req, timeout=30).status == 204
    rows = _influx(influxdb.url, db, "SELECT value, p10, p90, actual, \"limit\" FROM forecast "
                                     "WHERE target = 'tx-1' AND horizon = '1d'")
    both = [r for r in rows if r["actual"] is not None and r["value"] is not None]
    assert len(both) == fc.scores["1d"].n > 0
    assert all(r["limit"] == 500.0 and r["p10"] <= r["value"] <= r["p90"] for r in both)
    ape = sum(abs(r["actual"] - r["value"]) / r["actual"] for r in both) / len(both)
    assert ape == pytest.approx(fc.scores["1d"].mape, abs=1e-4)  # values stored to 0.001
    pending = [r for r in rows if r["actual"] is None]
    assert len(pending) == 96  # tomorrow's, not yet come


@pytest.mark.services
def test_forecast_scores_command_reads_what_came_true(influxdb, tmp_path):
    from typer.testing import CliRunner

    from gridwatch.cli import app
    from gridwatch.models._forecast import score_stored

    db = f"fs_{uuid.uuid4().hex[:10]}"
    urllib.request.urlopen(urllib.request.Request(
        f"{influxdb.url}/query", data=urllib.parse.urlencode({"q": f"CREATE DATABASE {db}"})
        .encode(), method="POST"), timeout=10).read()
    fc = LoadForecaster("tx-1", "transformer", 500.0)
    lines: list[str] = []
    for k in range(96 * 5):
        out, _ = fc.update(T0 + (k + 1) * STEP, load(k) * (1.1 if k % 7 == 0 else 1.0))
        lines.extend(line for f in out for line in to_lines(f))
    req = urllib.request.Request(f"{influxdb.url}/write?db={db}&precision=ns",
                                 data="\n".join(lines).encode(), method="POST")
    assert urllib.request.urlopen(req, timeout=30).status == 204
    rows = _influx(influxdb.url, db, "SELECT * FROM forecast")
    stored = score_stored(rows)
    for h in ("1h", "1d"):
        assert stored[("transformer", h)].n == fc.scores[h].n
        assert stored[("transformer", h)].mape == pytest.approx(fc.scores[h].mape, abs=1e-4)
    cfg = tmp_path / "g.yaml"
    cfg.write_text(f"influx:\n  api: v1\n  url: {influxdb.url}\n  database: {db}\n")
    result = CliRunner().invoke(app, ["forecast-scores", "--from", "2024-04-01", "--to",
                                      "2024-05-01", "-c", str(cfg)], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert f"{100 * fc.scores['1d'].mape:.2f}" in result.output
    empty = CliRunner().invoke(app, ["forecast-scores", "--from", "2023-01-01", "--to",
                                     "2023-02-01", "-c", str(cfg)])
    assert empty.exit_code == 1


from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@settings(max_examples=100, deadline=None)
@given(st.lists(st.floats(min_value=-1e6, max_value=1e6, allow_nan=False), min_size=1,
                max_size=400),
       st.sampled_from([None, 50.0]))
def test_any_load_gives_finite_forecasts(values, limit):
    fc = LoadForecaster("c-1", "customer", limit, warmup_days=1)
    for k, v in enumerate(values):
        out, events = fc.update(T0 + (k + 1) * STEP, v)
        for f in out:
            assert all(math.isfinite(x) for x in (f.value, f.p10, f.p90))
            assert f.p10 <= f.value <= f.p90
        assert all(e.type == "capacity_forecast" for e in events)
