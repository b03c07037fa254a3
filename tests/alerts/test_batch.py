"""A batch is the same as its events one by one: ``submit_many`` over a random batch (new alerts,
repeats, severity rises, resolves, replays, feeder outages that inhibit and release, a silence)
leaves the same alerts, episodes, audit trail, transitions, counters and JSONL lines, and after
the group wait the same notifications with the same idempotency keys, as ``submit`` of each event
in turn (hypothesis). Plus the inhibit index: which open alerts may mute an event."""

from __future__ import annotations

import json
import tempfile
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from _alerts_helpers import ROUTES, T0, Clock, Recorder, event, make_router
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as s

from gridwatch import Event
from gridwatch.alerts import Router
from gridwatch.alerts import _stages as st

INHIBIT_ROUTES = ROUTES + """
inhibit:
  - {source: feeder_outage, target: [outage, comm_loss], equal: [grid_cell]}
"""
METERS = ("m1", "m3", "r1", "r2", "r3")
TYPES = ("outage", "comm_loss", "abnormal_consumption")
ONSETS = (T0 - timedelta(minutes=15), T0 - timedelta(minutes=5))


@s.composite
def events(draw: s.DrawFn) -> Event:
    """One detector event: a meter's alert or a feeder outage of cell A or B."""
    at = T0 + timedelta(seconds=draw(s.integers(0, 600)))
    state = draw(s.sampled_from(("firing", "firing", "resolved")))
    severity = draw(s.sampled_from(("info", "warning", "critical")))
    onset = draw(s.sampled_from(ONSETS))
    if draw(s.integers(0, 5)) == 0:
        cell = draw(s.sampled_from(("A", "B")))
        behind = draw(s.sampled_from(((), ("r1", "r2"), ("m3",))))
        return event(f"FEED-{cell}", "feeder_outage", state=state, severity=severity, at=at,
                     onset=onset, grid_cell=cell, meters=behind)
    return event(draw(s.sampled_from(METERS)), draw(s.sampled_from(TYPES)), state=state,
                 severity=severity, at=at, onset=onset,
                 score=draw(s.floats(1, 20, allow_nan=False)))


def fresh(folder: Path, name: str) -> tuple[Router, Recorder, Clock]:
    clock, rec = Clock(), Recorder()
    router = make_router(clock=clock, notifiers={"mqtt": rec}, routes=INHIBIT_ROUTES,
                         jsonl_out=folder / f"{name}.jsonl")
    router.silence({"type": "comm_loss", "grid_cell": "B"}, T0 + timedelta(hours=1), by="ops")
    # The same silence id in both routers, so their records can be compared.
    router.db.execute("UPDATE silences SET id='S1'")
    return router, rec, clock


def snapshot(router: Router, rec: Recorder, folder: Path, name: str) -> dict[str, Any]:
    alerts = sorted(router.alerts(), key=lambda a: a["fingerprint"])
    audit = [(a["at"], a["fingerprint"], a["episode"], a["action"], a["by"], a["recipient"],
              a["detail"]) for a in router.audit_trail() if a["action"] != "silence_created"]
    jsonl = folder / f"{name}.jsonl"
    return {
        "alerts": alerts,
        "episodes": {a["fingerprint"]: router.episodes(a["fingerprint"]) for a in alerts},
        "audit": audit,
        "transitions": [t.model_dump() for t in router.transitions()[0]],
        "counters": router.counters(),
        "jsonl": [json.loads(x) for x in jsonl.read_text().splitlines()]
        if jsonl.exists() else [],
        "sent": [(n.key, n.recipient, n.channel, n.kind, n.status, n.subject, n.body)
                 for n in rec.sent],
        "outbox": [(o["key"], o["recipient"], o["status"]) for o in router.outbox()],
    }


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(s.lists(events(), min_size=1, max_size=30), s.integers(1, 30))
def test_a_batch_equals_its_events_one_by_one(batch: list[Event], cut: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        many, many_rec, many_clock = fresh(folder, "many")
        one, one_rec, one_clock = fresh(folder, "one")
        now = T0 + timedelta(minutes=11)
        # The batch in two submit_many calls (a replay or a resolve may cross them) ...
        opened = many.submit_many(batch[:cut], now) + many.submit_many(batch[cut:], now)
        # ... and each event on its own.
        opened_one = sum(one.submit_many((e,), now) for e in batch)
        assert opened == opened_one
        for router, clock in ((many, many_clock), (one, one_clock)):
            clock.now = now + timedelta(seconds=31)
            router.tick()
            router.deliver_pending()
        a = snapshot(many, many_rec, folder, "many")
        b = snapshot(one, one_rec, folder, "one")
        for key in a:
            assert a[key] == b[key], key
        many.close()
        one.close()


def test_a_failed_batch_leaves_nothing_and_the_next_one_counts_right() -> None:
    router = make_router(routes=INHIBIT_ROUTES)

    def broken() -> Any:
        yield event("r1", "outage")
        yield event("r2", "outage")
        raise RuntimeError("detector stream broke")

    with pytest.raises(RuntimeError):
        router.submit_many(broken())
    assert router.alerts() == [] and router.audit_trail() == [] and router.counters() == {}
    assert router.submit_many([event("r1", "outage"), event("r1", "outage")]) == 1
    assert router.counters() == {"events_submitted": 2, "alerts_opened": 1,
                                 "events_deduplicated": 1}
    assert [a["action"] for a in router.audit_trail()] == ["firing", "routed"]


@pytest.mark.parametrize(("rules", "expected"), [
    ([], {}),
    ([{"source": "feeder_outage", "target": ["outage", "comm_loss"]}],
     {"outage": ("feeder_outage",), "comm_loss": ("feeder_outage",)}),
    ([{"source": "feeder_outage", "target": "outage"},
      {"source": ["substation_outage", "feeder_outage"], "target": ["outage", "stuck_reading"]}],
     {"outage": ("feeder_outage", "substation_outage"),
      "stuck_reading": ("substation_outage", "feeder_outage")}),
])
def test_inhibit_sources_per_target_type(rules: list[dict[str, Any]],
                                         expected: dict[str, tuple[str, ...]]) -> None:
    parsed = [st.InhibitRule.model_validate(r) for r in rules]
    assert st.inhibit_sources(parsed) == expected


def test_only_an_open_source_of_the_same_cell_and_a_source_type_inhibits() -> None:
    router = make_router(routes=INHIBIT_ROUTES)
    router.submit_many([
        event("FEED-B", "feeder_outage", severity="critical", grid_cell="B"),  # other cell
        event("r1", "abnormal_consumption"),  # same cell, not a source type
        event("r2", "outage"),
    ])
    assert router.alert("r2/outage")["inhibited_by"] is None
    router.submit_many([
        event("FEED-A", "feeder_outage", severity="critical", grid_cell="A"),
        event("r3", "outage"),
        event("m3", "outage"),  # cell B: its feeder is down too
        event("r1", "abnormal_consumption", severity="critical"),  # never muted
    ])
    assert router.alert("r3/outage")["inhibited_by"] == "FEED-A/feeder_outage"
    assert router.alert("m3/outage")["inhibited_by"] == "FEED-B/feeder_outage"
    assert router.alert("r1/abnormal_consumption")["inhibited_by"] is None
    router.submit(event("FEED-A", "feeder_outage", state="resolved", grid_cell="A"))
    router.submit(event("r4", "outage"))  # the source is over
    assert router.alert("r3/outage")["inhibited_by"] is None
    assert router.alert("r4/outage")["inhibited_by"] is None
    assert "manager:M1" in json.loads(router.alert("r3/outage")["receivers"])


def test_in_a_storm_managers_are_sent_before_customers() -> None:
    clock, rec = Clock(), Recorder()
    router = make_router(clock=clock, notifiers={"mqtt": rec}, routes=INHIBIT_ROUTES)
    router.submit_many([event("m1", "abnormal_consumption"), event("m3", "abnormal_consumption"),
                        *(event(f"r{i}", "outage", severity="critical") for i in range(15))])
    clock.advance(31)
    assert router.tick() == 4  # M1 (a storm summary), M3, and the customers C1 and C2
    router.deliver_pending(limit=2)
    assert [n.recipient for n in rec.sent] == ["manager:M1", "manager:M3"]
    router.deliver_pending()
    assert [n.recipient for n in rec.sent][2:] == ["customer:C1", "customer:C2"]
    assert rec.sent[0].kind == "storm"


@pytest.mark.parametrize(("given", "ordered"), [
    (["customer:C1", "manager:M2", "receiver:ops", "manager:M1"],
     ["manager:M1", "manager:M2", "receiver:ops", "customer:C1"]),
    (["customer:B", "customer:A"], ["customer:A", "customer:B"]),
])
def test_recipient_order(given: list[str], ordered: list[str]) -> None:
    assert sorted(given, key=st.recipient_order) == ordered


def test_new_inhibit_rules_take_effect() -> None:
    router = make_router(routes=INHIBIT_ROUTES)
    router.submit(event("FEED-A", "feeder_outage", severity="critical", grid_cell="A"))
    router.submit(event("r1", "stuck_reading"))  # not a target of the routes' rule
    assert router.alert("r1/stuck_reading")["inhibited_by"] is None
    router.inhibit_rules = [*router.inhibit_rules, st.InhibitRule.model_validate(
        {"source": "feeder_outage", "target": "stuck_reading"})]
    router.submit(event("r2", "stuck_reading"))
    assert router.alert("r2/stuck_reading")["inhibited_by"] == "FEED-A/feeder_outage"
