"""A tick reads only the alerts whose time has come; the boundaries are those of the pure stages
(``needs_escalation``: at ``starts_at + escalate_after``; ``needs_repeat``: at ``last_sent_at +
repeat_interval``), to the microsecond."""

from __future__ import annotations

from datetime import timedelta

from _alerts_helpers import T0, Clock, Recorder, event, make_router

TINY = timedelta(microseconds=1)


def actions(router, action: str) -> list[tuple[str, str | None]]:
    return [(a["fingerprint"], a["recipient"]) for a in router.audit_trail()
            if a["action"] == action]


def test_escalation_at_the_microsecond_it_is_due_and_not_before() -> None:
    clock, rec = Clock(), Recorder()
    router = make_router(clock=clock, notifiers={"mqtt": rec}, escalate_after_s=1800)
    router.submit(event("r1", "outage"))  # starts at T0 (the router's clock)
    router.tick(T0 + timedelta(seconds=1800) - TINY)
    assert actions(router, "escalated") == []
    router.tick(T0 + timedelta(seconds=1800))
    assert actions(router, "escalated") == [("r1/outage", "manager:M2")]
    router.tick(T0 + timedelta(seconds=3600))
    assert len(actions(router, "escalated")) == 1  # once


def test_repeat_at_the_microsecond_it_is_due_and_not_before() -> None:
    clock, rec = Clock(), Recorder()
    router = make_router(clock=clock, notifiers={"mqtt": rec}, escalate_after_s=0,
                         repeat_interval_s=3600)
    router.submit(event("r1", "outage"))
    sent_at = T0 + timedelta(seconds=30)
    assert router.tick(sent_at) == 1
    router.tick(sent_at + timedelta(seconds=3600) - TINY)
    assert not router.db.execute("SELECT 1 FROM pending WHERE kind='repeat'").fetchone()
    router.tick(sent_at + timedelta(seconds=3600))
    rows = router.db.execute("SELECT recipient, seq FROM pending WHERE kind='repeat'").fetchall()
    assert [tuple(r) for r in rows] == [("manager:M1", 1)]
