"""The alert lifecycle with a hand-driven clock: grouping, dedup, escalation, repeats, quiet
hours, rate limit, storm summaries, silences, inhibition, retries and registry reloads."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import yaml
from _alerts_helpers import REGISTRY, T0, Clock, Recorder, event, make_router

from gridwatch import LoadProfile


def items_of(router, recipient: str | None = None) -> list[tuple]:
    rows = router.db.execute("SELECT recipient, items FROM notifications ORDER BY id").fetchall()
    out = []
    for r in rows:
        if recipient is None or r["recipient"] == recipient:
            out.extend((r["recipient"], *i) for i in json.loads(r["items"]))
    return out


def test_group_wait_then_one_notification_per_recipient_and_dedup() -> None:
    clock, rec = Clock(), Recorder()
    router = make_router(clock=clock, notifiers={"mqtt": rec})
    router.submit(event("m1"))
    assert router.tick() == 0  # group wait not over
    clock.advance(29)
    assert router.tick() == 0
    clock.advance(1)
    assert router.tick() == 2  # customer C1 and manager M1
    assert router.deliver_pending() == 2
    targets = sorted(n.target for n in rec.sent)
    assert targets == ["gridwatch/customers/C1/notices", "gridwatch/managers/M1/alerts"]
    # The same condition again: deduplicated, no new notification.
    router.submit(event("m1", at=clock.advance(60), score=9.0))
    clock.advance(400)
    assert router.tick() == 0
    assert router.alert("m1/abnormal_consumption")["score"] == 9.0
    assert router.counters()["events_deduplicated"] == 1
    customer_msg = next(n for n in rec.sent if n.recipient == "customer:C1")
    assert "200% above" in customer_msg.body and "Acme Steel" in customer_msg.body
    assert all(len(n.key) == 32 for n in rec.sent)


def test_escalates_once_to_the_backup_unless_acknowledged() -> None:
    clock, rec = Clock(), Recorder()
    router = make_router(clock=clock, notifiers={"mqtt": rec})
    router.submit(event("r1", "outage"))
    router.submit(event("r2", "outage"))
    router.ack("r2/outage", by="alice")
    for _ in range(10):
        clock.advance(600)
        router.tick()
        router.deliver_pending()
    escalations = [n for n in rec.sent if n.kind == "escalation"]
    assert [n.recipient for n in escalations] == ["manager:M2"]
    assert [a["fingerprint"] for a in escalations[0].alerts] == ["r1/outage"]
    assert "escalated to you" in escalations[0].body
    trail = [a["action"] for a in router.audit_trail("r1/outage")]
    assert trail.count("escalated") == 1
    assert any(a["action"] == "acknowledged" and a["by"] == "alice"
               for a in router.audit_trail("r2/outage"))


def test_repeat_for_managers_not_customers_and_resolved_notice() -> None:
    clock, rec = Clock(), Recorder()
    router = make_router(clock=clock, notifiers={"mqtt": rec}, escalate_after_s=0,
                         repeat_interval_s=3600)
    router.submit(event("m1"))
    clock.advance(30)
    router.tick()
    clock.advance(3600)
    router.tick()
    clock.advance(300)
    router.tick()
    repeats = [i for i in items_of(router) if i[3] == "repeat"]
    assert repeats == [("manager:M1", "m1/abnormal_consumption", 1, "repeat", 1)]
    router.submit(event("m1", state="resolved", at=clock.advance(10)))
    clock.advance(300)
    router.tick()
    router.deliver_pending()
    resolved = [n for n in rec.sent if n.status == "resolved"]
    assert sorted(n.recipient for n in resolved) == ["customer:C1", "manager:M1"]
    assert router.alert("m1/abnormal_consumption")["state"] == "resolved"
    # Firing again opens a new episode, notified again.
    router.submit(event("m1", at=clock.advance(60)))
    clock.advance(400)
    router.tick()
    assert router.alert("m1/abnormal_consumption")["episode"] == 2
    assert ("manager:M1", "m1/abnormal_consumption", 2, "firing", 0) in items_of(router)


def test_storm_gives_the_manager_one_summary_listing_every_meter() -> None:
    clock, rec = Clock(), Recorder()
    router = make_router(clock=clock, notifiers={"mqtt": rec}, storm_threshold=10)
    for i in range(25):
        router.submit(event(f"r{i}", "comm_loss"))
    clock.advance(30)
    assert router.tick() == 1
    router.deliver_pending()
    assert len(rec.sent) == 1
    storm = rec.sent[0]
    assert storm.kind == "storm" and storm.recipient == "manager:M1"
    assert len(storm.alerts) == 25
    for i in range(25):
        assert f"r{i} " in storm.body
    summarized = [a for a in router.audit_trail() if a["action"] == "summarized"]
    assert len(summarized) == 25
    assert router.counters()["storm_summaries"] == 1


def test_quiet_hours_hold_customer_notices_but_not_critical_ones() -> None:
    night = datetime(2026, 5, 4, 15, 0, tzinfo=UTC)  # 23:00 in Shanghai
    clock, rec = Clock(night), Recorder()
    router = make_router(clock=clock, notifiers={"mqtt": rec})
    router.submit(event("m1", at=night))
    router.submit(event("m3", "over_capacity_risk", severity="critical", at=night))
    clock.advance(30)
    router.tick()
    router.deliver_pending()
    got = {n.recipient: n for n in rec.sent}
    assert "manager:M1" in got and "manager:M3" in got
    assert "customer:C2" in got  # critical passes quiet hours
    assert "customer:C1" not in got  # warning waits for the morning
    assert any(a["action"] == "held_quiet_hours" for a in router.audit_trail())
    # 07:00 local = 23:00 UTC
    clock.now = datetime(2026, 5, 4, 23, 0, 1, tzinfo=UTC)
    router.tick()
    router.deliver_pending()
    assert [n.recipient for n in rec.sent].count("customer:C1") == 1
    holds = [a for a in router.audit_trail() if a["action"] == "held_quiet_hours"]
    assert len(holds) == 1  # recorded once, not at every tick


def test_customer_rate_limit_holds_then_releases() -> None:
    clock, rec = Clock(), Recorder()
    router = make_router(clock=clock, notifiers={"mqtt": rec}, customer_rate_per_hour=2,
                         group_interval_s=60)
    types = ["abnormal_consumption", "low_power_factor", "voltage_sag", "phase_imbalance"]
    for t in types:
        router.submit(event("m1", t))
        clock.advance(70)
        router.tick()
    router.deliver_pending()
    notices = [n for n in rec.sent if n.recipient == "customer:C1"]
    assert len(notices) == 2
    assert router.counters()["notices_held_rate_limited"] >= 1
    clock.advance(3600)
    router.tick()
    router.deliver_pending()
    notices = [n for n in rec.sent if n.recipient == "customer:C1"]
    fps = sorted(a["fingerprint"] for n in notices for a in n.alerts)
    assert fps == sorted(f"m1/{t}" for t in types)  # nothing dropped


def test_silence_mutes_and_expiry_routes() -> None:
    clock, rec = Clock(), Recorder()
    router = make_router(clock=clock, notifiers={"mqtt": rec})
    router.silence({"grid_cell": "A", "type": "comm_loss"}, T0 + timedelta(hours=1), by="ops")
    router.submit(event("r1", "comm_loss"))
    router.submit(event("m3", "comm_loss"))  # cell B: not silenced
    clock.advance(30)
    router.tick()
    assert [i[0] for i in items_of(router)] == ["manager:M3", "customer:C2"]  # managers first
    assert router.alert("r1/comm_loss")["silenced_by"]
    clock.advance(3600)
    router.tick()
    clock.advance(30)
    router.tick()
    assert ("manager:M1", "r1/comm_loss", 1, "firing", 0) in items_of(router)


def test_feeder_outage_inhibits_meter_outages_until_it_clears() -> None:
    clock, rec = Clock(), Recorder()
    router = make_router(clock=clock, notifiers={"mqtt": rec}, routes="""
route: {receivers: [cell_manager]}
inhibit:
  - {source: feeder_outage, target: [outage], equal: [grid_cell]}
""")
    router.submit(event("r0", "feeder_outage", severity="critical", meters=("r1", "r2")))
    router.submit(event("r1", "outage"))
    router.submit(event("r5", "outage"))  # not behind the feeder
    clock.advance(30)
    router.tick()
    fps = {i[1] for i in items_of(router)}
    assert fps == {"r0/feeder_outage", "r5/outage"}
    assert router.alert("r1/outage")["inhibited_by"] == "r0/feeder_outage"
    router.submit(event("r0", "feeder_outage", state="resolved", at=clock.advance(60)))
    clock.advance(600)
    router.tick()
    assert ("manager:M1", "r1/outage", 1, "firing", 0) in items_of(router)


def test_retries_with_backoff_then_delivers_once() -> None:
    clock, rec = Clock(), Recorder(fail_next=3)
    router = make_router(clock=clock, notifiers={"mqtt": rec},
                         retry={"base_s": 2, "max_s": 60, "max_attempts": 10})
    router.submit(event("r1", "outage"))
    clock.advance(30)
    router.tick()
    assert router.deliver_pending() == 0  # attempt 1 fails, next in 2 s
    assert router.deliver_pending() == 0  # not due yet: no attempt
    assert rec.fail_next == 2
    clock.advance(2)
    assert router.deliver_pending() == 0  # attempt 2 fails, next in 4 s
    clock.advance(3)
    assert router.deliver_pending() == 0 and rec.fail_next == 1  # not due
    clock.advance(1)
    assert router.deliver_pending() == 0  # attempt 3 fails, next in 8 s
    clock.advance(8)
    assert router.deliver_pending() == 1
    assert router.deliver_pending() == 0
    assert len(rec.sent) == 1
    assert router.outbox("delivered")[0]["attempts"] == 4


def test_non_retryable_failure_is_kept_as_failed() -> None:
    from gridwatch.alerts import Delivery

    class Refuses:
        def send(self, n):
            return Delivery.fail("HTTP 400")

    clock = Clock()
    router = make_router(clock=clock, notifiers={"mqtt": Refuses()})
    router.submit(event("r1", "outage"))
    clock.advance(30)
    router.tick()
    assert router.deliver_pending() == 0
    failed = router.outbox("failed")
    assert len(failed) == 1 and failed[0]["last_error"] == "HTTP 400"
    assert router.counters()["delivery_failed"] == 1


def test_registry_reload_keeps_alert_state(tmp_path: Path) -> None:
    reg_path = tmp_path / "registry.yaml"
    reg_path.write_text(yaml.safe_dump(REGISTRY))
    from gridwatch.alerts import Registry

    clock = Clock()
    router = make_router(clock=clock, db=tmp_path / "s.sqlite")
    router.registry = Registry.load(reg_path)
    router.registry_path = reg_path
    router.submit(event("r1", "outage"))
    changed = json.loads(json.dumps(REGISTRY))
    changed["cells"][0]["primary"] = "M3"
    reg_path.write_text(yaml.safe_dump(changed))
    import os

    os.utime(reg_path, (1e9, 2e9))
    assert router.maybe_reload()
    assert router.registry.cell("A").primary == "M3"
    assert router.alert("r1/outage")["state"] == "firing"
    reg_path.write_text("customers: [{id: broken}]")
    os.utime(reg_path, (1e9, 2.1e9))
    assert not router.maybe_reload()
    assert router.registry.cell("A").primary == "M3"
    assert any(a["action"] == "registry_reload_failed" for a in router.audit_trail())


def test_profile_tags_route_and_show(tmp_path: Path) -> None:
    clock, rec = Clock(), Recorder()
    router = make_router(clock=clock, notifiers={"mqtt": rec}, routes="""
route:
  receivers: [cell_manager]
  routes:
    - {match: {tags: [night_heavy]}, receivers: [backup_manager]}
""")
    router.update_profile(LoadProfile(meter_id="r3", customer_id="C3", day=T0, segment="res",
                                      tags=("night_heavy", "ev_charging"), daily_kwh=30,
                                      peak_kw=7, valley_kw=1))
    router.submit(event("r3"))
    router.submit(event("m3"))  # another customer, cell B
    clock.advance(30)
    router.tick()
    router.deliver_pending()
    by = {n.recipient: n for n in rec.sent}
    assert [a["fingerprint"] for a in by["manager:M2"].alerts] == ["r3/abnormal_consumption"]
    assert [a["fingerprint"] for a in by["manager:M3"].alerts] == ["m3/abnormal_consumption"]
    assert "ev_charging" in by["manager:M2"].body


def test_jsonl_has_every_alert_raised_and_resolve_unknown_is_counted(tmp_path: Path) -> None:
    out = tmp_path / "alerts.jsonl"
    router = make_router(jsonl_out=out)
    router.submit(event("m1"))
    router.submit(event("m1"))  # same alert: not a new line
    router.submit(event("r1", "outage", severity="critical", score=3.5))
    router.submit(event("r9", "comm_loss", state="resolved"))
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert [(x["meter_id"], x["type"]) for x in lines] == [("m1", "abnormal_consumption"),
                                                           ("r1", "outage")]
    for x in lines:
        assert {"meter_id", "type", "severity", "onset", "raised_at", "score"} <= set(x)
    assert lines[1]["severity"] == "critical" and lines[1]["score"] == 3.5
    assert router.counters()["resolved_without_open_alert"] == 1


def test_unknown_meter_and_no_manager_are_recorded_not_dropped() -> None:
    router = make_router()
    router.submit(event("ghost-meter", "tamper"))
    assert router.counters()["unrouted"] >= 1
    actions = [a["action"] for a in router.audit_trail("ghost-meter/tamper")]
    assert "unrouted" in actions


def test_submit_many_and_severity_rise_notifies_again() -> None:
    clock, rec = Clock(), Recorder()
    router = make_router(clock=clock, notifiers={"mqtt": rec}, escalate_after_s=0)
    opened = router.submit_many([event("r1", "outage"), event("r2", "outage"),
                                 event("r1", "outage")])
    assert opened == 2 and router.counters()["events_deduplicated"] == 1
    clock.advance(30)
    router.tick()
    router.submit(event("r1", "outage", severity="critical", at=clock.advance(10)))
    router.submit(event("r1", "outage", severity="critical", at=clock.advance(10)))
    clock.advance(300)
    router.tick()
    router.deliver_pending()
    kinds = [i[3] for i in items_of(router) if i[1] == "r1/outage"]
    assert kinds == ["firing", "update"]
    assert rec.sent[-1].alerts[0]["severity"] == "critical"


def test_transitions_for_storage_and_default_alertmanager() -> None:
    clock = Clock()
    router = make_router(clock=clock, alertmanager_url="http://127.0.0.1:9093", routes="""
route: {receivers: [cell_manager, am]}
receivers: {am: {alertmanager: default}}
""")
    router.submit(event("r1", "outage"))
    clock.advance(30)
    router.tick()
    router.ack("r1/outage", by="alice")
    first, last = router.transitions()
    assert [(t.state, t.by) for t in first] == [("firing", "detector"), ("acknowledged", "alice")]
    assert first[0].grid_cell == "A" and first[0].meter_id == "r1"
    router.submit(event("r1", "outage", state="resolved", at=clock.advance(5)))
    more, _ = router.transitions(last)
    assert [t.state for t in more] == ["resolved"]
    targets = {(o["channel"], o["target"]) for o in router.outbox()}
    assert ("alertmanager", "http://127.0.0.1:9093") in targets


def test_flap_within_group_wait_reports_both_episodes() -> None:
    clock, rec = Clock(), Recorder()
    router = make_router(clock=clock, notifiers={"mqtt": rec}, routes="route: "
                         "{receivers: [cell_manager]}")
    router.submit(event("r1", "outage", at=clock.now))
    router.submit(event("r1", "outage", state="resolved", at=clock.advance(5)))
    router.submit(event("r1", "outage", at=clock.advance(5)))
    clock.advance(30)
    router.tick()
    router.deliver_pending()
    [n] = rec.sent
    assert [(a["episode"], a["state"]) for a in n.alerts] == [(1, "resolved"), (2, "firing")]
    assert n.status == "firing"


def test_failed_entry_requeued_and_prune_keeps_audit() -> None:
    from gridwatch.alerts import Delivery

    class Flaky:
        ok = False

        def send(self, n):
            return Delivery.success() if self.ok else Delivery.fail("HTTP 404")

    clock, flaky = Clock(), Flaky()
    router = make_router(clock=clock, notifiers={"mqtt": flaky})
    router.submit(event("r1", "outage"))
    clock.advance(30)
    router.tick()
    assert router.deliver_pending() == 0
    [failed] = router.outbox("failed")
    flaky.ok = True
    router.requeue(failed["id"], by="ops")
    assert router.deliver_pending() == 1
    clock.advance(86400 * 8)
    assert router.prune(timedelta(days=7)) == 1
    assert router.outbox() == []
    actions = [a["action"] for a in router.audit_trail()]
    assert {"delivery_failed", "requeued", "delivered", "pruned"} <= set(actions)


def test_two_routers_on_one_database_send_once(tmp_path: Path) -> None:
    from gridwatch.alerts import Delivery

    clock = Clock()
    db = tmp_path / "shared.sqlite"
    other_sent: list[int] = []

    class WhileSending:
        """While router a is sending, router b tries to deliver the same outbox."""

        sent = 0

        def send(self, n):
            other_sent.append(b.deliver_pending())
            self.sent += 1
            return Delivery.success()

    rec_a, rec_b = WhileSending(), Recorder()
    a = make_router(db=db, clock=clock, notifiers={"mqtt": rec_a})
    b = make_router(db=db, clock=clock, notifiers={"mqtt": rec_b})
    a.submit(event("r1", "outage"))
    clock.advance(30)
    b.tick()
    assert a.tick() == 0  # b already flushed the group
    assert a.deliver_pending() == 1
    assert other_sent == [0] and rec_b.sent == [] and rec_a.sent == 1
