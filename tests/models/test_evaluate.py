"""Event-level metrics and the NAB scorer, on cases small enough to check by hand."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from gridwatch import Event, Severity
from gridwatch.models._evaluate import Label, evaluate_events, load_labels
from gridwatch.models._nab import (
    PROFILES,
    NabDetector,
    NabFile,
    nab_score,
    scaled_sigmoid,
)

T = datetime(2024, 5, 1, tzinfo=UTC)
H = timedelta(hours=1)


def ev(meter: str, etype: str, onset: datetime, raised: datetime, meters=()) -> Event:
    return Event(meter_id=meter, type=etype, severity=Severity.WARNING, score=1.0, onset=onset,
                 raised_at=raised, meters=meters)


def test_event_metrics_by_hand():
    labels = [Label("a", "outage", T, T + H), Label("b", "outage", T, T + H),
              Label("c", "tamper", T, T + H)]
    events = [ev("a", "outage", T, T + 0.5 * H),  # detected after 30 min
              ev("a", "outage", T + 10 * H, T + 10 * H),  # false alarm
              ev("cell:x", "outage", T, T + 2 * H, meters=("b",)),  # names b: 120 min
              ev("c", "stuck_reading", T, T)]  # wrong type: false alarm
    rep = evaluate_events(events, labels, meter_days=2.0)
    assert rep["outage"].precision == round(2 / 3, 3)
    assert rep["outage"].recall == 1.0
    assert rep["outage"].delay_median_min == 75.0
    assert rep["tamper"].recall == 0.0
    assert rep["stuck_reading"].false_alarms_per_1000_meter_days == 500.0
    assert rep["all"].labels == 3 and rep["all"].events == 4


def test_labels_file_errors_name_the_line(tmp_path):
    p = tmp_path / "l.jsonl"
    p.write_text(json.dumps({"meter_id": "a", "type": "outage", "start": "2024-05-01T00:00:00Z",
                             "end": "2024-05-01T01:00:00Z"}) + "\n{\"meter_id\": 1}\n")
    with pytest.raises(ValueError, match=":2:"):
        load_labels(p)


def _file(n: int, windows: list[tuple[int, int]]) -> NabFile:
    ts = [T + i * timedelta(minutes=5) for i in range(n)]
    return NabFile("cat/f.csv", ts, np.zeros(n), [(ts[a], ts[b]) for a, b in windows])


def test_nab_perfect_null_and_late_detections():
    f = _file(1000, [(400, 449), (700, 749)])
    perfect = np.zeros(1000)
    perfect[[400, 700]] = 1.0
    assert nab_score([f], [perfect], PROFILES).scores["standard"] == 100.0
    assert nab_score([f], [np.zeros(1000)], PROFILES).scores["standard"] == 0.0
    late = np.zeros(1000)
    late[[449, 749]] = 1.0  # at the right edge: worth scaledSigmoid(-1/50) of a window
    s = nab_score([f], [late], PROFILES).scores["standard"]
    expected = 100 * (2 * scaled_sigmoid(-1 / 50) / scaled_sigmoid(-1.0) + 2) / 4
    assert s == pytest.approx(expected, abs=0.1)
    # detections in the probation period (first 15%) count for nothing
    early = np.zeros(1000)
    early[10] = 1.0
    assert nab_score([f], [early], PROFILES).scores["standard"] == 0.0


def test_nab_detector_is_causal_and_finds_a_jump():
    rng = np.random.default_rng(0)
    x = rng.normal(10, 1, 3000)
    x[2000:] += 15
    s = NabDetector().run(x)
    assert s.min() >= 0.0 and s.max() <= 1.0
    assert s[2000:2010].max() >= 0.9 and s[500:1990].max() < 0.9
    s2 = NabDetector().run(np.concatenate([x[:2500], rng.normal(0, 1, 500)]))
    assert np.array_equal(s[:2500], s2[:2500])  # no look-ahead
