"""The lifecycle as a state machine (hypothesis): random firing, clearing, acknowledging, replays
and time passing against a simple model.

Properties: the router's state of every alert equals the model's; a replay of an event that
opened or closed an episode (the engine redoing an epoch after a crash) changes nothing; no
transition is notified twice to one recipient, nor under two idempotency keys; escalation
happens exactly for the episodes that stayed firing and unacknowledged past the escalation
delay, once each; at the end every alert is resolved, nothing is pending and every
notification was delivered exactly once.
"""

from __future__ import annotations

import json
from collections import Counter
from datetime import timedelta

from _alerts_helpers import Clock, Recorder, event, make_router
from hypothesis import HealthCheck, settings
from hypothesis import strategies as s
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

METERS = ("m1", "m3", "r1", "r2")
TYPES = ("outage", "abnormal_consumption")
ESCALATE = 1800


class Lifecycle(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.clock = Clock()
        self.rec = Recorder()
        self.router = make_router(clock=self.clock, notifiers={"mqtt": self.rec},
                                  group_wait_s=30, group_interval_s=300,
                                  repeat_interval_s=3600, escalate_after_s=ESCALATE)
        # fingerprint -> (state, episode, started_at, acked)
        self.model: dict[str, dict] = {}
        self.expected_escalations: set[tuple[str, int]] = set()
        #: events that opened or closed an episode, for replays
        self.history: list = []

    @rule(meter=s.sampled_from(METERS), type_=s.sampled_from(TYPES),
          severity=s.sampled_from(["info", "warning", "critical"]))
    def fire(self, meter: str, type_: str, severity: str) -> None:
        fp = f"{meter}/{type_}"
        ev = event(meter, type_, severity=severity, at=self.clock.now)
        self.router.submit(ev)
        m = self.model.get(fp)
        if m is not None and m["state"] == "resolved" and ev.onset in m["onsets"]:
            return  # the same onset as an episode already over: a replay, not a new episode
        if m is None or m["state"] == "resolved":
            self.model[fp] = {"state": "firing", "episode": (m["episode"] + 1) if m else 1,
                              "started": self.clock.now, "onset": ev.onset,
                              "onsets": (m["onsets"] if m else set()) | {ev.onset}}
            self.history.append(ev)

    @rule(meter=s.sampled_from(METERS), type_=s.sampled_from(TYPES))
    def clear(self, meter: str, type_: str) -> None:
        fp = f"{meter}/{type_}"
        m = self.model.get(fp)
        # a detector resolves the episode it raised: the resolve carries that episode's onset
        extra = {"onset": m["onset"]} if m is not None and m["state"] != "resolved" else {}
        ev = event(meter, type_, state="resolved", at=self.clock.now, **extra)
        self.router.submit(ev)
        if fp in self.model and self.model[fp]["state"] != "resolved":
            self.model[fp]["state"] = "resolved"
            self.history.append(ev)

    @rule(data=s.data())
    def replay(self, data: s.DataObject) -> None:
        """Resubmit an event that opened or closed an episode: nothing changes."""
        if not self.history:
            return
        ev = data.draw(s.sampled_from(self.history))
        before = self.router.counters().get("alerts_opened", 0)
        self.router.submit(ev)
        assert self.router.counters().get("alerts_opened", 0) == before

    @rule(meter=s.sampled_from(METERS), type_=s.sampled_from(TYPES))
    def ack(self, meter: str, type_: str) -> None:
        fp = f"{meter}/{type_}"
        m = self.model.get(fp)
        if m is None or m["state"] == "resolved":
            return
        self.router.ack(fp, by="tester")
        m["state"] = "acknowledged"

    @rule(seconds=s.sampled_from([5, 31, 299, 400, 1700, 1900, 4000]))
    def time_passes(self, seconds: int) -> None:
        self.clock.advance(seconds)
        for fp, m in self.model.items():
            if m["state"] == "firing" and self.clock.now >= m["started"] + timedelta(
                    seconds=ESCALATE):
                self.expected_escalations.add((fp, m["episode"]))
        self.router.tick()
        self.router.deliver_pending()

    @invariant()
    def states_agree(self) -> None:
        for fp, m in self.model.items():
            row = self.router.alert(fp)
            assert row is not None
            assert (row["state"], row["episode"]) == (m["state"], m["episode"]), fp

    @invariant()
    def no_transition_notified_twice(self) -> None:
        items: Counter = Counter()
        for r in self.router.db.execute("SELECT recipient, items FROM notifications"):
            for i in json.loads(r["items"]):
                items[(r["recipient"], *i)] += 1
        assert all(n == 1 for n in items.values()), items.most_common(3)
        keys = [n.key for n in self.rec.sent]
        assert len(keys) == len(set(keys))
        # Per recipient, each (alert, onset, transition) reaches the receiver once.
        told: Counter = Counter()
        for n in self.rec.sent:
            for a in n.alerts:
                told[(n.recipient, a["fingerprint"], a["onset"], a["state_status"],
                      a["kind"])] += 1
        assert all(v == 1 for k, v in told.items() if k[4] != "repeat"), told.most_common(3)

    @invariant()
    def escalation_exactly_once(self) -> None:
        done = Counter((a["fingerprint"], a["episode"]) for a in self.router.audit_trail()
                       if a["action"] == "escalated")
        assert all(n == 1 for n in done.values())
        assert set(done) == self.expected_escalations

    def teardown(self) -> None:
        # Clear everything, let time pass: every alert ends resolved, the outbox drains.
        for fp, m in self.model.items():
            if m["state"] != "resolved":
                meter, type_ = fp.split("/")
                self.router.submit(event(meter, type_, state="resolved", at=self.clock.now))
        for _ in range(3):
            self.clock.advance(400)
            self.router.tick()
            self.router.deliver_pending()
        assert all(a["state"] == "resolved" for a in self.router.alerts())
        assert self.router.db.execute("SELECT COUNT(*) FROM pending").fetchone()[0] == 0
        assert self.router.outbox("pending") == [] and self.router.outbox("failed") == []
        assert len(self.rec.sent) == len(self.router.outbox("delivered"))
        # Everyone told about a firing episode was told it resolved.
        items = _items(self.router)
        told = {(i[0], i[1], i[2]) for i in items if i[3] in ("firing", "escalation", "update")}
        resolved = {(i[0], i[1], i[2]) for i in items if i[3] == "resolved"}
        assert told <= resolved
        self.router.close()


def _items(router) -> list[tuple]:
    out = []
    for r in router.db.execute("SELECT recipient, items FROM notifications"):
        out.extend((r["recipient"], *i) for i in json.loads(r["items"]))
    return out


def test_lifecycle_state_machine() -> None:
    run_state_machine_as_test(
        Lifecycle,
        settings=settings(max_examples=60, stateful_step_count=25, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow]),
    )
