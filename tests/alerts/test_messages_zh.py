"""A Chinese reader's message reads in Chinese: every alert type the engine raises goes through
a real router (the shipped registry, routes and templates) to a Chinese manager and, where the
routes say so, a Chinese customer; the message holds no English word outside ids, units, URLs
and commands (``_zh_samples.english_words``), and says the summary, evidence, segment and
customer class in Chinese."""

from __future__ import annotations

from datetime import timedelta

import pytest
import yaml
from _alerts_helpers import T0, Clock, Recorder
from _zh_samples import SAMPLES, english_words

from gridwatch import Event
from gridwatch._schemas import LoadProfile
from gridwatch.alerts import AlertSettings, Registry, Router, RouteTree, Templates
from gridwatch.alerts._messages import alert_context

from _alerts_helpers import REPO  # isort: skip

CONFIG = REPO / "config"


def shipped_router(rec: Recorder, clock: Clock) -> Router:
    tree = RouteTree.parse(yaml.safe_load((CONFIG / "routes.yaml").read_text(encoding="utf-8")))
    registry = Registry.model_validate(
        yaml.safe_load((CONFIG / "registry.yaml").read_text(encoding="utf-8")))
    return Router(registry, tree, db=":memory:", templates=Templates(CONFIG / "templates"),
                  notifiers={"mqtt": rec}, settings=AlertSettings.model_validate({}),
                  clock=clock, inhibit_rules=tree.inhibit)


def submit(type_: str, evidence: dict, summary: str, *, state: str = "firing"):
    rec, clock = Recorder(), Clock()
    router = shipped_router(rec, clock)
    router.update_profile(LoadProfile(meter_id="MTR-0001", day=T0, customer_id="C0001",
                                      segment="sharp evening-peak plants",
                                      tags=("night-heavy", "pv-candidate"), daily_kwh=900.0,
                                      peak_kw=120.0, valley_kw=10.0))
    router.submit(Event(meter_id="MTR-0001", type=type_, severity="warning", score=4.0,
                        onset=T0 - timedelta(minutes=30), raised_at=T0, state=state,
                        summary=summary, evidence=evidence, customer_id="C0001",
                        grid_cell="CELL-A"))
    clock.advance(60)
    router.tick()
    router.deliver_pending()
    return router, rec.sent


STORED = "2026-05-04T02:00:00.000000Z"
IDS = ("MTR-0001", "C0001", "CELL-A", "TX-01", "S1")


@pytest.mark.parametrize(("type_", "evidence", "summary"), SAMPLES,
                         ids=[f"{t}-{e.get('kind', e.get('device_kind', ''))}"
                              for t, e, _ in SAMPLES])
def test_every_alert_type_reads_in_chinese_through_the_router(type_, evidence, summary):
    router, sent = submit(type_, evidence, summary)
    try:
        fps = [r["fingerprint"] for r in router.db.execute("SELECT fingerprint FROM alerts")]
        zh = [n for n in sent if n.language == "zh"]
        assert any(n.recipient == "manager:M001" for n in zh), sent
        for n in zh:
            text = n.subject + "\n" + n.body
            assert english_words(text, (*IDS, *fps)) == [], text
            # the detector's English summary itself is not what the reader gets
            assert summary not in text
        body = next(n.body for n in zh if n.recipient == "manager:M001")
        assert "工业" in body and "尖峰晚高峰型工厂" in body  # class and segment
        assert "industrial" not in body and "plants" not in body
        assert "night-heavy" not in body and "pv-candidate" not in body  # tags by their names
        assert "依据：" in body
    finally:
        router.close()


def test_numbers_and_units_stay_as_the_detector_gave_them():
    ev = {"observed_v": 190.2, "limit_v": 198.0, "nominal_v": 220.0, "limit_pct": -10}
    router, sent = submit("voltage_sag", ev, "voltage 190.2 V below the 198.0 V limit")
    try:
        body = next(n.body for n in sent if n.recipient == "manager:M001")
        assert "电压 190.2 V，低于下限 198.0 V" in body
        assert "实测电压 190.2 V" in body and "额定电压 220 V" in body
        assert "限值偏差 -10 %" in body
    finally:
        router.close()


def test_an_english_reader_keeps_the_detectors_text():
    ev = {"observed_v": 190.2, "limit_v": 198.0, "nominal_v": 220.0, "limit_pct": -10}
    row = {"fingerprint": "f", "episode": 1, "state": "firing", "type": "voltage_sag",
           "severity": "warning", "score": 1.0, "meter_id": "m", "customer_id": None,
           "grid_cell": "A", "summary": "voltage 190.2 V below the 198.0 V limit",
           "evidence": __import__("json").dumps(ev), "acked_by": None,
           "onset": STORED, "raised_at": STORED, "ends_at": None, "starts_at": STORED}
    labels = {"customer_class": "industrial", "tags": (), "segment": "daytime businesses"}
    ctx = alert_context(row, "firing", registry=Registry.model_validate({}), labels=labels,
                        settings=AlertSettings.model_validate({}), resolved_at=None)
    # the ids stay English for routing; only the shown words change
    assert ctx["customer_class"] == "industrial" and ctx["segment"] == "daytime businesses"
    assert ctx["labels"]["customer_class"] == "industrial"
    assert ctx["summary"] == row["summary"]
    assert ctx["zh"]["customer_class"] == "工业" and ctx["zh"]["segment"] == "白天型商户"
    assert ctx["zh"]["summary"] == "电压 190.2 V，低于下限 198.0 V"
    assert ("实测电压", "190.2 V") in ctx["zh"]["evidence"]


def test_a_resolved_alert_says_so_in_chinese():
    ev = {"observed_v": 190.2, "limit_v": 198.0, "nominal_v": 220.0, "limit_pct": -10}
    rec, clock = Recorder(), Clock()
    router = shipped_router(rec, clock)
    try:
        base = dict(meter_id="MTR-0101", type="voltage_sag", severity="warning", score=4.0,
                    onset=T0 - timedelta(minutes=30), evidence=ev, customer_id="C0002",
                    grid_cell="CELL-A")
        router.submit(Event(**base, raised_at=T0, summary="voltage 190.2 V below the limit"))
        clock.advance(60)
        router.tick()
        router.deliver_pending()
        router.submit(Event(**base | {"severity": "info"}, raised_at=clock.now,
                            state="resolved", summary="voltage back inside its limits"))
        clock.advance(400)
        router.tick()
        router.deliver_pending()
        last = [n for n in rec.sent if n.status == "resolved"]
        assert last, rec.sent
        fps = [r["fingerprint"] for r in router.db.execute("SELECT fingerprint FROM alerts")]
        for n in last:
            assert english_words(n.subject + n.body, (*IDS, "MTR-0101", "C0002", *fps)) == []
    finally:
        router.close()


def test_a_storm_summary_reads_in_chinese():
    rec, clock = Recorder(), Clock()
    router = shipped_router(rec, clock)
    try:
        meters = [("MTR-0001", "C0001"), ("MTR-0002", "C0001"), ("MTR-0101", "C0002")]
        events = [Event(meter_id=m, type=t, severity="warning", score=4.0,
                        onset=T0 - timedelta(minutes=30), raised_at=T0, summary=s,
                        evidence=e, customer_id=c, grid_cell="CELL-A")
                  for (t, e, s) in SAMPLES[:12] for m, c in meters]
        router.submit_many(events)
        clock.advance(60)
        router.tick()
        router.deliver_pending()
        storm = [n for n in rec.sent if n.kind == "storm"]
        assert storm, [n.kind for n in rec.sent]
        for n in storm:
            assert n.language == "zh"
            assert english_words(n.subject + "\n" + n.body,
                                 (*IDS, "MTR-0002", "MTR-0101", "C0002")) == [], n.body
    finally:
        router.close()
