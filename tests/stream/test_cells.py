"""The cell's per-batch work: a watch tick that skips (nothing can be due) answers what a full
look answers (hypothesis), meter facts are looked up once per meter and follow a registry
reload, and a verdict feed with nothing waiting is asked once per batch, not per reading."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

import gridwatch.stream._logic as logic
from gridwatch import Event, MeterMeta, Reading
from gridwatch.models import Calendar, DetectionSettings
from gridwatch.stream import CellLogic, CellWatch, ReadingBatch, Silence
from gridwatch.stream._partition import Tick

T0 = datetime(2024, 1, 1, tzinfo=UTC)
BASE = T0.timestamp()
STEP = 900.0


def _out(items: list[Any]) -> list[Any]:
    return [x.model_dump() if isinstance(x, Event) else x for x in items]


# operations on a watch: a reading (meter, step, interval, last gasp) or a tick (step)
# times in quarter intervals over a few hours: ticks land near deadlines
_steps = st.integers(0, 160).map(lambda q: q / 4)
_ops = st.lists(st.one_of(
    st.tuples(st.just("r"), st.integers(0, 7), _steps, st.sampled_from([900, 1800, 3600]),
              st.sampled_from([False] * 9 + [True])),
    st.tuples(st.just("t"), _steps)), min_size=30, max_size=300)


@settings(max_examples=200, deadline=None)
@given(_ops, st.sampled_from([None, "C1"]), st.integers(1, 4), st.integers(0, 2))
def test_a_skipped_tick_answers_what_a_full_look_answers(ops: list[Any], cell: str | None,
                                                         silence: int, hold: int) -> None:
    """The watch skips ticks before ``due`` (no reporting meter can be past its deadline, none
    held); a twin that looks at every tick gives the same answers and ends in the same state."""
    s = DetectionSettings(silence_intervals=silence, feeder_hold_intervals=hold,
                          feeder_outage_meters=3)
    fast = CellWatch(None, cell, s)
    full = CellWatch(None, cell, s)
    for op in ops:
        if op[0] == "r":
            _, m, step, iv, gasp = op
            t = BASE + step * STEP
            assert _out(fast.seen(f"m{m}", t, iv, gasp)) == _out(full.seen(f"m{m}", t, iv, gasp))
        else:
            now = BASE + op[1] * STEP
            full.due = -math.inf  # always the full look
            assert _out(fast.tick(now)) == _out(full.tick(now))
        assert fast.state() == full.state()
        # the meters back from a feeder outage, kept as they change, as counted afresh
        assert fast._feeder_back == fast._count_back()


@settings(max_examples=150, deadline=None)
@given(_ops, st.sampled_from([None, "C1"]), st.integers(0, 300))
def test_a_watch_resumed_from_its_snapshot_goes_on_as_the_original(
        ops: list[Any], cell: str | None, cut: int) -> None:
    """The watch's columns come back from its snapshot (the tuples it has always kept): a
    watch resumed after any operation answers and ends as the one that ran on."""
    s = DetectionSettings(silence_intervals=2, feeder_hold_intervals=1, feeder_outage_meters=3)
    original = CellWatch(None, cell, s)
    resumed: CellWatch | None = None
    for i, op in enumerate(ops):
        if i == cut:
            resumed = CellWatch(original.state(), None, s)
        for w in (original, resumed):
            if w is None:
                continue
            if op[0] == "r":
                _, m, step, iv, gasp = op
                got = _out(w.seen(f"m{m}", BASE + step * STEP, iv, gasp))
            else:
                w.due = -math.inf  # (``due`` is not in the snapshot: the first tick looks)
                got = _out(w.tick(BASE + op[1] * STEP))
            if w is original:
                want = got
            else:
                assert got == want
            assert w._feeder_back == w._count_back()
    if resumed is not None:
        assert resumed.state() == original.state()


@settings(max_examples=150, deadline=None)
@given(_ops, _ops, st.sampled_from([None, "C1"]), st.integers(0, 160), st.integers(0, 300))
def test_a_watch_that_learned_its_meters_skips_no_tick_it_should_look_at(
        history: list[Any], live: list[Any], cell: str | None, start_q: int,
        cut: int) -> None:
    """A warm start's watch learns each meter a history watch saw (its readings only, never
    ticked) that it does not know, at ``start``, after any of its own operations (a cell
    warm-starts until its second tick); with readings and ticks from ``start`` on, it answers
    as a twin that looks at every tick (the ``due`` a learned meter sets holds), and a meter
    whose silence was decided before ``start`` stays alerted, raising nothing, until it
    reports again."""
    s = DetectionSettings(silence_intervals=2, feeder_hold_intervals=1, feeder_outage_meters=3)
    seen = CellWatch(None, cell, s)
    for op in history:
        if op[0] == "r":
            _, m, step, iv, gasp = op
            seen.seen(f"h{m}", BASE + step * STEP, iv, gasp)
    start = BASE + start_q / 4 * STEP
    fast, full = CellWatch(None, cell, s), CellWatch(None, cell, s)
    decided: set[str] = set()
    for i, op in enumerate(live):
        if i == cut:
            for m, noted in sorted(seen.meters.items()):
                if noted[0] <= start:  # (a history ends before the start)
                    assert fast.learn(m, *noted, start) == full.learn(m, *noted, start)
                    if fast.state()[1][m][2] == logic._ALERTED:
                        decided.add(m)
        if op[0] == "r":
            _, m, step, iv, gasp = op
            meter = f"h{m}" if m % 2 else f"m{m}"  # (some of them learned meters)
            t = start + step * STEP
            decided.discard(meter)
            assert _out(fast.seen(meter, t, iv, gasp)) == _out(full.seen(meter, t, iv, gasp))
        else:
            now = start + op[1] * STEP
            full.due = -math.inf  # always the full look
            got = fast.tick(now)
            assert _out(got) == _out(full.tick(now))
            assert not {x.meter_id for x in got if isinstance(x, Silence)} & decided
        assert fast.state() == full.state()


def test_quiet_cell_ticks_skip_and_a_silent_meter_is_still_seen() -> None:
    """A cell whose meters all report: its ticks find nothing and skip; then one meter stops
    and, ``silence_intervals`` later, it is reported silent at the same tick as before."""
    s = DetectionSettings()
    w = CellWatch(None, None, s)
    for i in range(8):
        for m in ("m0", "m1"):
            if m == "m1" and i >= 3:
                continue
            w.seen(m, BASE + i * STEP, 900, False)
        if i < 6:
            assert w.tick(BASE + i * STEP) == [] and w.due > BASE + i * STEP
    # m1 last reported at step 2: silent from step 2 + silence_intervals on, then held
    assert w.tick(BASE + (2 + s.silence_intervals) * STEP) == []
    assert w.due == -math.inf  # a held meter: every tick looks
    got = w.tick(BASE + (2 + s.silence_intervals + s.feeder_hold_intervals) * STEP)
    assert [(x.meter_id, x.quiet) for x in got if isinstance(x, Silence)] == [("m1", False)]


def test_a_large_cells_feeder_outage_is_resolved_as_before() -> None:
    """2,000 meters of one cell fall silent together, then report again one by one, a few
    silent once more on the way: the outage is resolved at the reading that brings 80 % of
    its meters back, counting those that came back and are silent again, as a count over
    every meter of the outage at each reading gives (kept as meters change, not counted
    each time)."""
    s = DetectionSettings(feeder_outage_meters=10)
    w = CellWatch(None, "C1", s)
    for m in range(2000):
        w.seen(f"m{m}", BASE, 900, False)
    out = w.tick(BASE + 5 * STEP)
    assert [x.state for x in out if isinstance(x, Event)] == ["firing"]
    got: list[tuple[int, Any]] = []
    for m in range(2000):
        got += [(m, x) for x in w.seen(f"m{m}", BASE + 6 * STEP, 900, False)]
        if m == 300:  # (301 meters back, then silent again: in the outage once more)
            w.tick(BASE + 6 * STEP + 5 * STEP)
            assert w._feeder_back == w._count_back() == 0
        assert w._feeder_back == w._count_back()
    # 80 % of 2,000 back: the 1,600th meter back after the 301 went silent again
    [(at, resolved)] = got
    assert at == 301 + 1599
    assert resolved.state == "resolved" and resolved.evidence["meters_back"] == 1600
    assert w.feeder_onset is None and w._feeder_back == 0


def _reading(meter: str, i: int, kw: float = 1.0) -> Reading:
    return Reading(meter_id=meter, ts=T0 + timedelta(seconds=STEP * i), kw=kw)


@settings(max_examples=300, deadline=None)
@given(st.integers(-10**6, 2 * 10**9), st.integers(1, 4000), st.integers(-5000, 400_000),
       st.sampled_from([0.0, 0.5, 0.25]))
def test_boundaries_counted_at_once_are_those_stepped_one_at_a_time(
        b: int, tick_s: int, span: int, frac: float) -> None:
    """``_quiet_ticks``: the boundaries ``b + k * tick_s`` before ``stop``, at least one,
    as the cell's loop would count them one addition at a time."""
    stop = b + span + frac
    n = logic._quiet_ticks(float(b), stop, float(tick_s))
    stepped, x = 1, float(b) + tick_s
    while x < stop:
        stepped, x = stepped + 1, x + tick_s
    assert n == stepped


def test_boundaries_of_a_fraction_of_a_second_are_stepped_one_at_a_time() -> None:
    assert logic._quiet_ticks(0.1, 1000.0, 0.1) == 1
    assert logic._quiet_ticks(0.5, 1000.0, 1.0) == 1


def _year_apart(cell: CellLogic) -> list[Any]:
    """Three meters report for a day, the last readings of one in the day's last hour; then
    a tick a year later (a replayed year beside live meters), which finds that meter silent
    on the way, and readings of all three."""
    out: list[Any] = []
    for i in range(96):
        meters = ("m0", "m1", "m2") if i < 93 else ("m0", "m1")
        out += cell.on_batch([ReadingBatch("cell:C1", tuple(_reading(m, i) for m in meters))])[0]
    year = 365 * 96
    out.append("the jump")
    out += cell.on_batch([Tick(BASE + (year + 0.5) * STEP)])[0]
    out += cell.on_batch([ReadingBatch("cell:C1", tuple(
        _reading(m, year + 1) for m in ("m0", "m1", "m2")))])[0]
    return out


def test_a_watermark_a_year_ahead_passes_its_quiet_boundaries_at_once() -> None:
    """A cell whose watermark jumps a year: the same events, silence among them, the same
    state and the same count of ticks as stepping the year's 35,040 boundaries one at a time,
    in a handful of steps."""
    registry = {f"m{i}": MeterMeta(meter_id=f"m{i}", grid_cell="C1") for i in range(3)}
    s = DetectionSettings()
    real = logic._quiet_ticks
    calls = {"n": 0}

    def counted(b: float, stop: float, tick_s: float) -> int:
        calls["n"] += 1
        return real(b, stop, tick_s)

    one_by_one = CellLogic(None, s, Calendar(), registry.get, STEP, 0.0)
    logic._quiet_ticks = lambda b, stop, tick_s: 1  # type: ignore[assignment]
    try:
        want = _year_apart(one_by_one)
    finally:
        logic._quiet_ticks = real  # type: ignore[assignment]
    at_once = CellLogic(None, s, Calendar(), registry.get, STEP, 0.0)
    logic._quiet_ticks = counted  # type: ignore[assignment]
    try:
        got = _year_apart(at_once)
    finally:
        logic._quiet_ticks = real  # type: ignore[assignment]
    assert _out(got) == _out(want)
    jumped = got[got.index("the jump"):]
    assert any(isinstance(x, Event) and x.meter_id == "m2" and x.state == "firing"
               for x in jumped), "m2's silence is raised on the way"
    assert at_once.snapshot() == one_by_one.snapshot()
    assert at_once._ticks_seen == one_by_one._ticks_seen > 365 * 96
    assert calls["n"] < 100, calls


def test_meter_facts_are_looked_up_once_per_meter_and_follow_a_reload() -> None:
    registry = {f"m{i}": MeterMeta(meter_id=f"m{i}", grid_cell="C1") for i in range(3)}
    calls: list[str] = []

    def lookup(meter_id: str) -> MeterMeta | None:
        calls.append(meter_id)
        return registry.get(meter_id)

    cell = CellLogic(None, DetectionSettings(), Calendar(), lookup, STEP, 0.0)
    for i in range(4):
        cell.on_batch([ReadingBatch("cell:C1", tuple(_reading(f"m{m}", i) for m in range(4)))])
    known = [c for c in calls if c != "m3"]
    # the three known meters once each, then one probe per later batch; the unknown m3 once
    # per batch (it may be added to the registry at any time)
    assert len(known) == 3 + 3 and calls.count("m3") == 4
    assert cell.watch.cell == "C1"
    # a reload makes new objects: the next batch sees them (here: a new grid cell's interval)
    registry = {f"m{i}": MeterMeta(meter_id=f"m{i}", grid_cell="C1", interval_s=1800)
                for i in range(4)}
    cell.on_batch([ReadingBatch("cell:C1", tuple(_reading(f"m{m}", 4) for m in range(4)))])
    assert {m: v[1] for m, v in cell.watch.meters.items()} == {f"m{i}": 1800 for i in range(4)}


class _Feed:
    """A verdict feed as the engine's ``VerdictFeed`` is: callable per meter, with
    ``any_pending``."""

    def __init__(self) -> None:
        self.pending: dict[str, list[tuple[str, str, str, str, datetime]]] = {}
        self.calls = 0
        self.asked = 0

    def any_pending(self) -> bool:
        self.asked += 1
        return bool(self.pending)

    def __call__(self, meter_id: str) -> list[tuple[str, str, str, str, datetime]]:
        self.calls += 1
        return self.pending.pop(meter_id, [])


def test_a_feed_with_nothing_waiting_is_asked_once_per_batch() -> None:
    feed = _Feed()
    cell = CellLogic(None, DetectionSettings(), Calendar(), lambda _m: None, STEP, 0.0,
                     verdicts=feed)
    for i in range(3):
        cell.on_batch([ReadingBatch("shard:00", tuple(_reading(f"m{m}", i) for m in range(5)))])
    assert (feed.asked, feed.calls) == (3, 0)
    given_at = T0 + timedelta(hours=1)
    feed.pending["m2"] = [("m2", "abnormal_consumption", "spike", "false_alarm", given_at)]
    cell.on_batch([ReadingBatch("shard:00", tuple(_reading(f"m{m}", 3) for m in range(5)))])
    assert feed.calls == 5 and not feed.pending  # each meter asked; m2 took its verdict
    assert cell.meters["m2"].verdict("abnormal_consumption", "spike", "false_alarm",
                                     given_at.timestamp(), settings=DetectionSettings(),
                                     given=given_at) is False  # already taken


def test_a_plain_verdict_function_is_still_asked_per_reading() -> None:
    asked: list[str] = []

    def verdicts(meter_id: str) -> list[tuple[str, str, str, str, datetime]]:
        asked.append(meter_id)
        return []

    cell = CellLogic(None, DetectionSettings(), Calendar(), lambda _m: None, STEP, 0.0,
                     verdicts=verdicts)
    cell.on_batch([ReadingBatch("shard:00", tuple(_reading(f"m{m}", 0) for m in range(4)))])
    assert asked == ["m0", "m1", "m2", "m3"]
