"""Events replayed after a crash (the engine redoing an epoch from its last snapshot) name the
same episode and the same transition: the router tells nobody twice, opens no second episode,
and every message speaks in event time."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

from _alerts_helpers import T0, Clock, Recorder, event, make_router
from _suite_helpers import wait_until

from gridwatch import Event


def told(rec: Recorder) -> Counter[tuple[str, str, str | None, str]]:
    """(recipient, alert, onset, transition) of every alert in every notification sent."""
    return Counter((n.recipient, a["fingerprint"], a["onset"], a["state_status"])
                   for n in rec.sent for a in n.alerts)


def run(router, clock: Clock, events: list[Event]) -> None:
    router.submit_many(events)
    for _ in range(3):
        clock.advance(400)
        router.tick()
        router.deliver_pending()


def test_replayed_firing_and_resolve_after_a_resolve_are_the_same_episode() -> None:
    clock, rec = Clock(), Recorder()
    router = make_router(clock=clock, notifiers={"mqtt": rec}, escalate_after_s=0,
                         repeat_interval_s=0)
    fire = event("r1", "outage", at=T0)
    clear = event("r1", "outage", state="resolved", at=T0 + timedelta(hours=1),
                  onset=fire.onset)
    run(router, clock, [fire, clear])
    first = told(rec)
    assert first == {("manager:M1", "r1/outage", "2026-05-04T01:45:00Z", "resolved"): 1}
    # The crash came after the resolve, before the snapshot: both events come again.
    run(router, clock, [fire, clear])
    run(router, clock, [fire])
    assert told(rec) == first
    row = router.alert("r1/outage")
    assert (row["episode"], row["state"]) == (1, "resolved")
    assert router.counters()["events_replayed"] == 3
    assert router.counters()["alerts_opened"] == 1
    # A later onset is a new episode.
    again = event("r1", "outage", at=T0 + timedelta(hours=5))
    run(router, clock, [again])
    assert router.alert("r1/outage")["episode"] == 2
    assert told(rec)[("manager:M1", "r1/outage", "2026-05-04T06:45:00Z", "firing")] == 1


def test_replay_of_two_episodes_in_one_epoch_does_not_touch_the_open_one() -> None:
    clock, rec = Clock(), Recorder()
    router = make_router(clock=clock, notifiers={"mqtt": rec}, escalate_after_s=0,
                         repeat_interval_s=0)
    a = event("r2", "outage", at=T0)
    a_end = event("r2", "outage", state="resolved", at=T0 + timedelta(minutes=30),
                  onset=a.onset)
    b = event("r2", "outage", at=T0 + timedelta(hours=2))
    epoch = [a, a_end, b]
    run(router, clock, epoch)
    first = told(rec)
    run(router, clock, epoch)  # the whole epoch again
    assert told(rec) == first
    row = router.alert("r2/outage")
    assert (row["episode"], row["state"]) == (2, "firing")
    # The late resolve of the first episode must not close the second one.
    run(router, clock, [a_end])
    assert router.alert("r2/outage")["state"] == "firing"


def test_idempotency_key_follows_the_episode_not_the_database() -> None:
    """Two routers with separate databases given the same events make the same keys: the key
    derives from (alert, onset, transition), not from counters of one database."""
    keys = []
    for _ in range(2):
        clock, rec = Clock(), Recorder()
        router = make_router(clock=clock, notifiers={"mqtt": rec}, escalate_after_s=0,
                             repeat_interval_s=0)
        fire = event("r3", "outage", at=T0)
        run(router, clock, [fire])
        run(router, clock, [event("r3", "outage", state="resolved",
                                  at=T0 + timedelta(hours=1), onset=fire.onset)])
        keys.append(sorted(n.key for n in rec.sent))
        router.close()
    assert keys[0] == keys[1] and len(keys[0]) == 2


def test_messages_carry_event_time_and_the_detection_clock_separately() -> None:
    clock, rec = Clock(T0 + timedelta(days=400)), Recorder()  # a replay of old data
    router = make_router(clock=clock, notifiers={"mqtt": rec}, escalate_after_s=0,
                         repeat_interval_s=0)
    fire = event("r4", "outage", at=T0)
    clear = event("r4", "outage", state="resolved", at=T0 + timedelta(hours=1),
                  onset=fire.onset)
    b = event("r4", "outage", at=T0 + timedelta(hours=3))
    # Episode 1 fires and clears and episode 2 fires before the group is flushed: the message
    # speaks of episode 1 as over, at the event time it ended.
    run(router, clock, [fire, clear, b])
    (msg,) = rec.sent
    by_episode = {a["episode"]: a for a in msg.alerts}
    one, two = by_episode[1], by_episode[2]
    assert one["state_status"] == "resolved"
    assert one["onset"] == "2026-05-04T01:45:00Z"
    assert one["ends_at"] == "2026-05-04T03:00:00Z"
    assert one["ends_at_local"] == "2026-05-04 11:00 CST"
    assert one["detected_at"].startswith("2027-06-08")
    assert two["onset"] == "2026-05-04T04:45:00Z" and two["ends_at"] is None
    assert two["raised_at"] == "2026-05-04T05:00:00Z"
    assert "2027" not in msg.body


def test_a_send_interrupted_by_a_crash_is_due_again_at_the_next_start(tmp_path) -> None:
    """A crash between claiming an outbox entry (its lease) and recording the send leaves it
    leased for two minutes; the next start of the owning process makes it due at once, and it
    goes out under the same key."""
    from gridwatch.alerts import RouterService
    from gridwatch.alerts._router import SEND_LEASE
    from gridwatch.alerts._store import ts

    clock, rec = Clock(), Recorder()
    db = tmp_path / "alerts.sqlite"
    router = make_router(db=db, clock=clock, notifiers={"mqtt": rec}, escalate_after_s=0)
    router.submit(event("r5", "outage"))
    clock.advance(31)
    assert router.tick() == 1
    (entry,) = router.outbox("pending")
    # The claim of a send that never finished.
    router.db.execute("UPDATE outbox SET next_attempt_at=? WHERE id=?",
                      (ts(clock.now + SEND_LEASE), entry["id"]))
    router.close()

    again = make_router(db=db, clock=clock, notifiers={"mqtt": rec}, escalate_after_s=0)
    assert again.deliver_pending() == 0  # still leased
    service = RouterService(again, interval_s=3600).start()  # its first round runs at once
    try:
        wait_until(lambda: rec.sent, 5, "the notification sent", every=0.05)
    finally:
        service.stop(close=True)
    assert [n.key for n in rec.sent] == [entry["key"]]


def test_store_reads_episodes_in_event_time() -> None:
    clock, rec = Clock(), Recorder()
    router = make_router(clock=clock, notifiers={"mqtt": rec}, escalate_after_s=0,
                         repeat_interval_s=0)
    fire = event("r6", "outage", at=T0)
    run(router, clock, [fire, event("r6", "outage", state="resolved",
                                    at=T0 + timedelta(hours=2), onset=fire.onset)])
    run(router, clock, [event("r6", "outage", at=T0 + timedelta(hours=4))])
    eps = router.store.episodes("r6/outage")
    assert [(e["episode"], e["onset"], e["ends_at"]) for e in eps] == [
        (1, "2026-05-04T01:45:00.000000Z", "2026-05-04T04:00:00.000000Z"),
        (2, "2026-05-04T05:45:00.000000Z", None)]
    assert eps[0]["resolved_at"] is not None and eps[1]["resolved_at"] is None
    assert router.store.alert("r6/outage")["episode"] == 2
