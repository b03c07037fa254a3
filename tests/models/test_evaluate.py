"""Event-level metrics and the NAB scorer, on cases small enough to check by hand."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from gridwatch import Event, Severity
from gridwatch._evaluate import Label, evaluate_events, load_labels
from gridwatch._nab import (
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


def test_device_false_alarms_are_per_device_day_not_per_meter_day():
    labels = [Label("tx1", "device_overload", T, T + H)]
    events = [ev("tx1", "device_overload", T, T + 0.5 * H),  # detected
              ev("tx2", "device_overheating", T, T),  # a device's false alarm
              ev("m1", "stuck_reading", T, T)]  # a meter's false alarm
    rep = evaluate_events(events, labels, meter_days=100.0, device_days=4.0)
    assert rep["device_overheating"].false_alarms_per_1000_meter_days == 250.0
    assert rep["stuck_reading"].false_alarms_per_1000_meter_days == 10.0
    assert rep["device_overload"].false_alarms_per_1000_meter_days == 0.0
    # every false alarm over every observed day
    assert rep["all"].false_alarms_per_1000_meter_days == round(2 / 104 * 1000, 2)
    # without device-days the device types have no rate, rather than one per meter-day
    assert evaluate_events(events, labels, meter_days=100.0)[
        "device_overheating"].false_alarms_per_1000_meter_days is None


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


# -- false alarms on real load ---------------------------------------------------------------
def _run(events, times, kw=None):
    from collections import Counter

    from gridwatch._filereplay import ReplayRun

    times = {m: np.asarray(t, dtype=float) for m, t in times.items()}
    return ReplayRun(events=events, times=times,
                     kw=kw or {m: np.ones(len(t)) for m, t in times.items()},
                     readings=sum(len(t) for t in times.values()), rejected=Counter())


def silence(meter: str, last: datetime, raised: datetime, state: str = "firing") -> Event:
    return Event(meter_id=meter, type="comm_loss", severity=Severity.WARNING, score=4.0,
                 onset=last + timedelta(minutes=30), raised_at=raised, state=state,
                 evidence={"kind": "silence", "last_reading_at": last.isoformat()})


def consumption(meter: str, t: datetime, kind: str, score: float, state: str = "firing",
                summary: str = "") -> Event:
    return Event(meter_id=meter, type="abnormal_consumption", severity=Severity.WARNING,
                 score=score, onset=t, raised_at=t, state=state, summary=summary,
                 evidence={"kind": kind} if state == "firing" else {})


def test_false_alarm_rates_silence_checks_and_worst_meters():
    from gridwatch._falsealarms import analyse

    step = 1800.0
    t0 = T.timestamp()
    a = [t0 + k * step for k in range(480)]  # 10 days, no gap
    b = [t0 + k * step for k in range(240)] + [t0 + k * step for k in range(250, 480)]  # a gap
    c = [t0 + k * step for k in range(96)]  # ends after 2 of the 10 days
    at = lambda k: T + k * timedelta(minutes=30)  # noqa: E731
    events = [
        silence("b", at(239), at(245)),  # on the file's gap: right
        silence("b", at(239), at(250), state="resolved"),
        silence("c", at(95), at(101)),  # after the meter's data ends: right
        silence("a", at(100), at(106)),  # no gap in the file: judged
        *(consumption("a", at(10 + k), "spike", float(k), summary=f"s{k}") for k in range(5)),
        consumption("a", at(30), "spike", 1.0, state="resolved"),
        consumption("b", at(40), "sustained_drop", 2.0, summary="drop"),
    ]
    rep = analyse(_run(events, {"a": a, "b": b, "c": c}), step, silence_intervals=4, top=2)
    assert rep.meter_days == pytest.approx((479 + 479 + 95) * step / 86_400)
    assert rep.silence == {"comm_loss/after_end": 1, "comm_loss/no_gap": 1,
                           "comm_loss/on_gap": 1}
    assert rep.firing_by_type == {"abnormal_consumption": 6, "comm_loss": 3}
    assert rep.resolved_by_type == {"comm_loss": 1, "abnormal_consumption": 1}
    assert rep.firing_by_kind["abnormal_consumption/spike"] == 5
    assert rep.alarms == 7  # 6 consumption + the unexplained silence
    assert rep.per_1000(rep.alarms) == pytest.approx(7 / rep.meter_days * 1000, abs=0.01)
    assert [w.meter_id for w in rep.worst] == ["a", "b"]
    worst = rep.worst[0]
    assert worst.alarms == 6
    assert worst.counts == {"abnormal_consumption/spike": 5, "comm_loss/silence": 1}
    assert worst.typical == "s2"  # the median-score spike
    assert "6 alarms" in worst.line()
    js = rep.to_json_dict()
    assert js["alarms"] == 7 and js["worst_meters"][0]["reason"] == worst.line()


def test_falsealarms_command_on_a_small_file(tmp_path):
    """Two meters, one with a recorded gap of five hours: its communication-loss alarm is
    reported apart as explained by the file; --json carries the same figures."""
    from typer.testing import CliRunner

    from gridwatch.cli import app

    rng = np.random.default_rng(3)
    lines = ["meter_id,timestamp,kw"]
    for k in range(21 * 48):
        ts = (T + k * timedelta(minutes=30)).isoformat()
        for m in ("h1", "h2"):
            if m == "h2" and 500 <= k < 510:
                continue
            lines.append(f"{m},{ts},{rng.lognormal(-1, 0.5):.3f}")
    src = tmp_path / "load.csv.gz"
    import gzip

    src.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode()))
    out = tmp_path / "fa.json"
    res = CliRunner().invoke(app, ["falsealarms", str(src), "--json", str(out)])
    assert res.exit_code == 0, res.output
    js = json.loads(out.read_text())
    assert js["interval_s"] == 1800 and js["meters"] == 2
    assert js["readings"] == 2 * 21 * 48 - 10
    assert js["silence_alarms"].get("comm_loss/on_gap", 0) >= 1
    assert js["silence_alarms"].get("comm_loss/no_gap", 0) == 0
    assert "alarms under judgement" in res.output

    from gridwatch._filereplay import half_of

    for half in ("tune", "held"):
        out_h = tmp_path / f"{half}.json"
        res = CliRunner().invoke(app, ["falsealarms", str(src), "--half", half, "--json",
                                       str(out_h)])
        assert res.exit_code == 0, res.output
        mine = [m for m in ("h1", "h2") if half_of(m) == half]
        got = json.loads(out_h.read_text())
        assert got["meters"] == len(mine)
        assert got["readings"] == sum(21 * 48 - (10 if m == "h2" else 0) for m in mine)
    res = CliRunner().invoke(app, ["falsealarms", str(src), "--half", "both"])
    assert res.exit_code == 2


# -- firing and resolutions, unknown types, shapes, over-capacity lead -------------------------
def test_resolutions_are_counted_apart_and_never_scored():
    from gridwatch._evaluate import evaluate_events

    labels = [Label("a", "outage", T, T + H)]
    fire = ev("a", "outage", T, T + 0.5 * H)
    res = fire.model_copy(update={"state": "resolved", "raised_at": T + 3 * H})
    late = ev("a", "outage", T + 20 * H, T + 20 * H).model_copy(update={"state": "resolved"})
    rep = evaluate_events([fire, res, late], labels, meter_days=1.0)
    assert rep["outage"].events == 1 and rep["outage"].resolutions == 2
    assert rep["outage"].precision == 1.0
    assert rep["all"].false_alarms_per_1000_meter_days == 0.0


def test_unknown_label_types_are_found_and_labels_keep_shape_and_params(tmp_path):
    from gridwatch._evaluate import load_labels, unknown_types

    p = tmp_path / "l.jsonl"
    p.write_text('{"meter_id":"a","type":"outage","start":"2024-05-01T00:00:00Z"}\n'
                 '{"meter_id":"a","type":"kettle","start":"2024-05-01T00:00:00Z"}\n'
                 '{"meter_id":"b","type":"abnormal_consumption","shape":"spike","factor":5,'
                 '"start":"2024-05-01T00:00:00Z","end":"2024-05-01T01:00:00Z"}\n')
    labs = load_labels(p)
    assert unknown_types(labs) == {"kettle": 1}
    assert labs[2].shape == "spike" and labs[2].params == {"factor": 5}
    assert labs[0].shape == "outage" and labs[0].end == labs[0].start


def test_recall_and_delay_per_shape():
    from gridwatch._evaluate import evaluate_shapes

    labels = [Label("a", "abnormal_consumption", T, T + H, "spike"),
              Label("b", "abnormal_consumption", T, T + H, "spike"),
              Label("a", "abnormal_consumption", T + 5 * H, T + 9 * H, "drop")]
    events = [ev("a", "abnormal_consumption", T, T + 0.5 * H),
              ev("a", "abnormal_consumption", T + 5 * H, T + 6 * H)]
    rep = evaluate_shapes(events, labels)
    assert list(rep) == ["drop", "spike", "all"]
    assert rep["spike"].labels == 2 and rep["spike"].recall == 0.5
    assert rep["spike"].delay_median_min == 30.0
    assert rep["drop"].recall == 1.0 and rep["drop"].delay_median_min == 60.0
    assert rep["all"].detected == 2
    assert rep["spike"].alarms_per_fault == 1.0


def test_alarms_per_fault_counts_a_flapping_episode():
    from gridwatch._evaluate import evaluate_shapes

    theft = Label("a", "possible_theft", T, T + 48 * H, "theft")
    flaps = [ev("a", "possible_theft", T + k * H, T + (k + 1) * H) for k in range(0, 40, 8)]
    rep = evaluate_shapes(flaps, [theft])
    assert rep["theft"].detected == 1 and rep["theft"].alarms_per_fault == 5.0


def test_over_capacity_lead_before_the_crossing():
    from gridwatch._evaluate import capacity_leads

    lab = Label("a", "over_capacity_risk", T, T + 4 * H, "over_capacity",
                {"contracted_kva": 10.0})
    never = Label("b", "over_capacity_risk", T, T + 4 * H, "over_capacity",
                  {"contracted_kva": 10.0})
    ts = np.array([(T + k * timedelta(minutes=15)).timestamp() for k in range(16)])
    kw_a = np.linspace(5, 12, 16)  # crosses 10 kVA at the 11th reading (k = 11)
    warn = ev("a", "over_capacity_risk", T + H, T + 2 * H)
    leads = capacity_leads([warn], [lab, never], {"a": ts, "b": ts},
                           {"a": kw_a, "b": np.full(16, 3.0)})
    k = int(np.argmax(kw_a >= 10.0))
    assert leads[0]["lead_min"] == pytest.approx(k * 15 - 120)
    assert leads[1]["crossing"] is None and leads[1]["lead_min"] is None


# -- NAB with thresholds and parameters fixed on one half ---------------------------------------
def _names(half: str, n: int) -> list[str]:
    from gridwatch._nab import nab_half

    out = []
    i = 0
    while len(out) < n:
        name = f"cat/f{i}.csv"
        if nab_half(name) == half:
            out.append(name)
        i += 1
    return out


def test_nab_threshold_fixed_on_the_tuning_half():
    from gridwatch._nab import nab_split_score

    def file(name):
        f = _file(1000, [(400, 500)])
        return NabFile(name, f.timestamps, f.values, f.windows)

    tune = [file(n) for n in _names("tune", 2)]
    held = [file(n) for n in _names("held", 2)]
    files = tune + held
    scores = []
    for f in files:
        s = np.zeros(1000)
        s[400] = 1.0 if f in tune else 0.5  # held-out files only reach 0.5
        scores.append(s)
    res = nab_split_score(files, scores, PROFILES, "x")
    assert res.tune == [f.name for f in tune] and res.held == [f.name for f in held]
    assert res.thresholds["standard"] == 1.0
    assert res.on_tune["standard"] == pytest.approx(100.0, abs=0.2)
    assert res.on_held["standard"] == 0.0  # nothing detected at the tuning half's threshold
    assert res.swept_on_all["standard"] == pytest.approx(100.0, abs=0.2)
    assert res.on_held["standard"] < res.on_all["standard"] < res.swept_on_all["standard"]


def test_nab_parameters_chosen_without_the_held_out_half():
    from gridwatch._nab import tune_detector

    rng = np.random.default_rng(5)

    def file(name, jump):
        x = rng.normal(0, 1, 1500)
        x[1000:] += jump
        f = _file(1500, [(990, 1100)])
        return NabFile(name, f.timestamps, x, f.windows)

    tune = [file(n, 8.0) for n in _names("tune", 2)]
    grid = {"alpha": (0.02, 0.2), "refractory": (50,)}
    a = tune_detector(tune + [file(n, 8.0) for n in _names("held", 2)], PROFILES, grid)
    b = tune_detector(tune + [file(n, -30.0) for n in _names("held", 2)], PROFILES, grid)
    assert a.params == b.params and a.params["alpha"] in grid["alpha"]
    assert a.on_tune == b.on_tune


def test_a_file_out_of_time_order_is_warned_about(tmp_path):
    from typer.testing import CliRunner

    from gridwatch.cli import app

    lines = ["meter_id,timestamp,kw"]
    for m in ("h1", "h2"):  # sorted by meter, not by time
        for k in range(96):
            lines.append(f"{m},{(T + k * timedelta(minutes=30)).isoformat()},0.5")
    src = tmp_path / "by_meter.csv"
    src.write_text("\n".join(lines) + "\n")
    res = CliRunner().invoke(app, ["falsealarms", str(src), "--json", str(tmp_path / "o.json")])
    assert res.exit_code == 0, res.output
    text = " ".join(res.output.split())  # the console wraps long lines
    assert "95 readings" in text and "sort the file by time" in text


def test_replay_file_keeps_times_kw_and_apparent_power_per_meter(tmp_path):
    from gridwatch import Settings
    from gridwatch._filereplay import replay_file

    lines = ["meter_id,timestamp,kw,pf"]
    for k in range(8):
        ts = (T + k * timedelta(minutes=15)).isoformat()
        lines.append(f"a,{ts},{1 + k},0.8")
        lines.append(f"b,{ts},{2 + k},")
    lines.append(f"a,{T.isoformat()},9,0.8")  # a duplicate: rejected and counted
    src = tmp_path / "r.csv"
    src.write_text("\n".join(lines) + "\n")
    seen = []
    run = replay_file(Settings(), src, on_progress=lambda n, ts: seen.append(n), every=5)
    assert run.readings == 16 and run.rejected == {"duplicate": 1} and run.late == 0
    assert seen == [5, 10, 15]
    assert run.times["a"][0] == T.timestamp() and len(run.times["b"]) == 8
    assert run.kw["a"].tolist() == [float(1 + k) for k in range(8)]
    assert run.kva["a"] == pytest.approx(run.kw["a"] / 0.8)
    assert run.kva["b"].tolist() == run.kw["b"].tolist()
    assert run.meter_days() == pytest.approx(2 * 7 * 15 / 1440)
