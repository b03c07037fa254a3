"""The dataflow with bytewax TestingSource/run_main: events, feeder grouping, sinks, recovery."""

from __future__ import annotations

from datetime import timedelta

import pytest
from _models_helpers import STEP, T0, WEEK, reading, residential, run, series
from bytewax.testing import TestingSink, TestingSource, run_main

from gridwatch import Event, LoadProfile, MeterMeta, Reading, Score, Settings
from gridwatch.models import Calendar, DetectionSettings
from gridwatch.stream import CellLogic, ReadingBatch, Sinks, Tick, build_flow, run_replay


def fleet(days: int, meters: int, skip=lambda m, i: False, bump=lambda m, i: 0.0):
    rs = []
    import numpy as np

    rng = np.random.default_rng(3)
    for i in range(days * 96):
        ts = T0 + i * STEP
        for m in range(meters):
            if skip(m, i):
                continue
            kw = residential(i, ts, rng) + bump(m, i)
            rs.append(reading(f"m{m}", ts, round(kw, 4)))
    return rs


def test_feeder_outage_is_one_event_naming_the_meters():
    meta = {f"m{m}": MeterMeta(meter_id=f"m{m}", grid_cell="C7" if m < 6 else "C8")
            for m in range(8)}
    out_at = 2 * 96 + 10

    def skip(m, i):
        return (m < 6 and out_at <= i < out_at + 16) or (m == 7 and out_at <= i < out_at + 12)

    res = run_replay(Settings(), fleet(3, 8, skip), meta)
    feeder = res.firing("feeder_outage")
    assert len(feeder) == 1
    assert feeder[0].meters == tuple(f"m{m}" for m in range(6))
    assert feeder[0].grid_cell == "C7"
    assert feeder[0].onset == T0 + out_at * STEP
    assert not [e for e in res.firing() if e.type in ("outage", "comm_loss")
                and e.meter_id in feeder[0].meters]
    alone = res.firing("comm_loss")
    assert [e.meter_id for e in alone] == ["m7"]  # one silent meter of C8 is its own event
    assert [e.type for e in res.events if e.state == "resolved"].count("feeder_outage") == 1


def test_spike_through_the_flow_and_scores_only_when_anomalous():
    spike = 8 * 96 + 30
    rs = fleet(9, 2, bump=lambda m, i: 6.0 if (m == 1 and spike <= i < spike + 8) else 0.0)
    res = run_replay(Settings(), rs)
    fired = res.firing("abnormal_consumption")
    assert [(e.meter_id, e.onset) for e in fired] == [("m1", T0 + spike * STEP)]
    assert fired[0].raised_at == fired[0].onset  # far beyond its record: news at once
    assert res.scores and all(s.anomalous for s in res.scores)
    assert len(res.scores) < 20
    assert res.profiles and all(isinstance(p, LoadProfile) for p in res.profiles)
    assert {p.meter_id for p in res.profiles} == {"m0", "m1"}


def test_sinks_receive_what_they_should():
    rs = fleet(2, 2, skip=lambda m, i: m == 0 and i > 150)
    points: list = []
    events: list = []
    flow = build_flow(Settings(detection={"score_sample_every": 10}), TestingSource(rs),
                      Sinks(points=TestingSink(points), events=TestingSink(events)))
    run_main(flow)
    kinds = {type(x) for x in points}
    assert {Reading, Score, Event, LoadProfile} <= kinds
    assert sum(isinstance(x, Reading) for x in points) == len(rs)
    assert [e.type for e in events if isinstance(e, Event)] == ["comm_loss"]


def test_cell_logic_snapshot_restores_an_anomaly_in_progress():
    s = DetectionSettings()
    cal = Calendar()
    shift = 3 * WEEK + 10
    rs = series(3 * WEEK + 60, lambda i, ts, rng: residential(i, ts, rng)
                    * (3.0 if i >= shift else 1.0))
    cut = shift + 2  # the shift has begun, not yet raised

    def cell(resume=None):
        return CellLogic(resume, s, cal, lambda m: None, 900.0, 0.0)

    def feed(logic, items, size=7):
        out = []
        for i in range(0, len(items), size):
            out.extend(logic.on_batch([ReadingBatch("cell:a", tuple(items[i:i + size]))])[0])
        return [x for x in out if isinstance(x, Event)]

    expected = feed(cell(), rs)
    first = cell()
    before = feed(first, rs[:cut])
    snap = first.snapshot()
    assert isinstance(snap, bytes) and len(snap) <= 4096 + 512
    restored = cell(snap)
    after = feed(restored, rs[cut:])
    assert before + after == expected
    fired = [e for e in after if e.type == "abnormal_consumption" and e.state == "firing"]
    assert fired and fired[0].onset < rs[cut].ts  # onset from before the restore
    # silence after restore is still seen, from a clock tick alone
    late = rs[-1].ts + timedelta(hours=2)
    assert [e.type for e in restored.on_batch([Tick(late.timestamp())])[0]] == ["comm_loss"]
    # without recovery the snapshot costs nothing
    assert CellLogic(None, s, cal, lambda m: None, 900.0, 0.0, snapshots=False).snapshot() == b""


def test_recovery_resumes_state_across_runs(tmp_path):
    """A real bytewax recovery: run half the stream, stop, resume; the shift begun in the first
    run is still recognised in the second."""
    from bytewax.recovery import RecoveryConfig, init_db_dir

    init_db_dir(tmp_path, 1)
    shift = 3 * WEEK + 10
    rs = series(3 * WEEK + 60, lambda i, ts, rng: residential(i, ts, rng)
                    * (3.0 if i >= shift else 1.0))
    cut = shift + 2
    out1: list = []
    out2: list = []
    settings = Settings()
    cfg = RecoveryConfig(str(tmp_path))
    # TestingSource's snapshot is its position in the list: the second run resumes after `cut`.
    run_main(build_flow(settings, TestingSource(rs[:cut]), Sinks(extra={"o": TestingSink(out1)})),
             recovery_config=cfg)
    run_main(build_flow(settings, TestingSource(rs), Sinks(extra={"o": TestingSink(out2)})),
             recovery_config=cfg)
    assert not [e for e in out1 if isinstance(e, Event)]
    fired = [e for e in out2 if isinstance(e, Event) and e.type == "abnormal_consumption"]
    assert fired and fired[0].onset < rs[cut].ts


def test_clock_ticks_every_interval_from_partition_summaries_and_when_idle():
    from datetime import UTC, datetime

    from gridwatch.stream import ClockLogic, Watermark

    t0 = T0.timestamp()
    clock = ClockLogic(None, 900.0, 0.0, 30.0)

    def epoch(*marks):
        """Summaries of one epoch, then its end (bytewax's snapshot): the ticks emitted."""
        out = [t for w in marks for t in clock.on_item(w)[0]]
        clock.snapshot()
        return out

    assert epoch(Watermark("p0", t0, ("cell:a",)), Watermark("p1", t0 - 3600, ("cell:b",))) == []
    # the slower partition holds the watermark back while it has readings to give ...
    # (the first release ticks at once: in a short replay it may be the only one)
    assert epoch(Watermark("p0", t0 + 900)) == [("cell:a", Tick(t0)), ("cell:b", Tick(t0))]
    assert clock.low == t0
    # ... and no longer once it is caught up (or ended); the ticks come one epoch later, when
    # every reading the summaries spoke of has reached its cell
    assert epoch(Watermark("p1", t0 - 3600, idle=True)) == []
    assert epoch(Watermark("p1", t0 + 1000)) == [("cell:a", Tick(t0 + 900)),
                                                 ("cell:b", Tick(t0 + 900))]
    assert epoch(Watermark("p0", t0 + 1200)) == []  # same interval: no tick
    assert clock.wm == t0 + 900
    due = clock.notify_at()
    assert due is not None and due > datetime.now(UTC)
    clock.last_wall -= timedelta(seconds=3600)  # an hour with no input at all
    ticks, _ = clock.on_notify()
    assert ticks and ticks[0][1].now >= t0 + 900 + 3600
    resumed = ClockLogic(clock.snapshot(), 900.0, 0.0, 30.0)
    assert resumed.wm == clock.wm and resumed.keys == {"cell:a", "cell:b"}
    assert resumed.parts == {"p0": t0 + 1200, "p1": t0 + 1000}
    assert resumed.active == {"p0", "p1"} and resumed.released == resumed.low == t0 + 1000


def test_cell_ticks_itself_while_its_meters_report():
    """A cell with readings does not wait for the clock: a meter silent among reporting
    neighbours is seen from the cell's own readings."""
    s = DetectionSettings()
    logic = CellLogic(None, s, Calendar(), lambda m: None, 900.0, 0.0)
    out = []
    for i in range(12):
        ts = T0 + i * STEP
        batch = [reading("m0", ts, 1.0)] + ([reading("m1", ts, 1.0)] if i < 2 else [])
        out.extend(logic.on_batch([ReadingBatch("shard:00", tuple(batch))])[0])
    lost = [e for e in out if isinstance(e, Event) and e.state == "firing"]
    assert [(e.meter_id, e.type) for e in lost] == [("m1", "comm_loss")]


def test_possible_theft_confirmed_by_segment_unless_shared():
    import numpy as np

    def run(dropping):
        rng = np.random.default_rng(5)
        rs = []
        for i in range(17 * 96):
            ts = T0 + i * STEP
            for m in range(12):
                kw = residential(i, ts, rng)
                if m in dropping and i >= 11 * 96 + 40:
                    kw *= 0.45
                rs.append(reading(f"m{m}", ts, round(kw, 4)))
        return run_replay(Settings(), rs).firing("possible_theft")

    alone = run({3})
    assert [e.meter_id for e in alone] == ["m3"]
    assert "households" in alone[0].evidence["segment"]  # a residential segment, by its shape
    # The whole segment dropped together: from the third candidate within 24 h on, the judge
    # sees a shared drop (the first ones cannot know yet).
    assert len(run(set(range(12)))) <= 2


def test_replay_is_deterministic():
    meta = {f"m{m}": MeterMeta(meter_id=f"m{m}", grid_cell="C1") for m in range(6)}
    rs = fleet(9, 6, skip=lambda m, i: 8 * 96 <= i < 8 * 96 + 10,
               bump=lambda m, i: 4.0 if (m == 2 and i == 8 * 96 + 40) else 0.0)
    a = run_replay(Settings(), rs, meta)
    b = run_replay(Settings(), rs, meta)
    assert a.events and [e.model_dump() for e in a.events] == [e.model_dump() for e in b.events]
    assert [p.model_dump() for p in a.profiles] == [p.model_dump() for p in b.profiles]


def test_cell_waits_for_its_slowest_partition():
    """Two source partitions feed one cell at different paces (two processes replaying a
    journal): the cell's watermark is the slower one's, so a meter whose readings come
    through the slower partition is not taken for silent."""
    logic = CellLogic(None, DetectionSettings(), Calendar(), lambda m: None, 900.0, 0.0)

    def batch(meter, part, idx):
        return ReadingBatch("shard:00", tuple(reading(meter, T0 + i * STEP, 1.0)
                                              for i in idx), part)

    out = logic.on_batch([batch("m1", "p1", range(1))])[0]
    out += logic.on_batch([batch("m0", "p0", range(12))])[0]  # p0 runs ahead
    out += logic.on_batch([batch("m1", "p1", range(1, 12))])[0]
    assert not [e for e in out if isinstance(e, Event)]
    # when p1 stops altogether, the clock's tick moves the cell on and m1's silence is seen
    late = (T0 + 20 * STEP).timestamp()
    assert sorted(e.meter_id for e in logic.on_batch([Tick(late)])[0]
            if isinstance(e, Event) and e.state == "firing") == ["m0", "m1"]


def _per_meter_reference(readings, meta, settings):
    """The dataflow's semantics one reading at a time, as the per-meter flow ran them: one
    fleet clock over every reading (newest event time minus lateness), a silence watch per
    cell ticked by it at each interval boundary, one ``MeterState`` per meter. Segment models
    (theft confirmation) are left out: they take the same samples either way."""
    import math

    from gridwatch.stream import CellWatch, Silence
    from gridwatch.stream._flow import watch_key

    det = settings.detection
    cal = Calendar(det.timezone, det.holiday_country)
    watches: dict = {}
    states: dict = {}
    wm = next_tick = -math.inf
    events = []
    for r in readings:
        m = meta.get(r.meter_id)
        key = watch_key(r.meter_id, m)
        watch = watches.setdefault(key, CellWatch(None, None, det))
        events += watch.on_reading(r, m)
        st = states.setdefault(r.meter_id, __import__("gridwatch.models").models.MeterState(
            r.meter_id))
        events += [e for e in st.step(r, m, None, det, cal).events if e.type != "possible_theft"]
        w = r.ts.timestamp() - det.lateness_s
        if w > wm:
            if next_tick == -math.inf:
                next_tick = (w // det.interval_s + 1) * det.interval_s
            wm = w
        if wm >= next_tick:
            next_tick = (wm // det.interval_s + 1) * det.interval_s
            for k in sorted(watches):
                for item in watches[k].tick(wm):
                    if isinstance(item, Silence):
                        events += states[item.meter_id].on_timer(
                            item.now, meta.get(item.meter_id), settings=det, quiet=item.quiet)
                    else:
                        events.append(item)
    return events


def test_batched_cell_flow_raises_what_the_per_meter_flow_raises():
    """Equivalence on a demo-like simulated fleet (the demo's eight days, fewer customers,
    its injected anomalies and feeder outage): the same events, with the same meter, type,
    state and onset. The moment an event is raised may differ by at most one reading interval:
    a cell ticks after its own first reading of an interval, the fleet clock ticked after the
    fleet's first."""
    from gridwatch.simulators import Fleet, Simulation

    fleet = Fleet.load("config/fleets/demo.yaml", customers={
        "residential": {"count": 60, "nominal_voltage_v": 220},
        "commercial": {"count": 12, "nominal_voltage_v": 220},
        "industrial": {"count": 3, "nominal_voltage_v": 220},
        "agricultural": {"count": 4, "nominal_voltage_v": 220}})
    sim = Simulation(fleet)
    meta = {m.meter_id: m.meta() for m in sim.meters}
    readings = [r for block in sim.blocks() for r in sim.block_readings(block)]
    settings = Settings()
    want = _per_meter_reference(readings, meta, settings)
    got = [e for e in run_replay(settings, readings, meta).events if e.type != "possible_theft"]

    def ident(e):
        return (e.meter_id, e.type, e.state, e.onset)

    assert len(want) > 20 and {e.type for e in want} >= {"feeder_outage"}
    assert sorted(map(ident, got)) == sorted(map(ident, want))
    raised = {ident(e): e.raised_at for e in want}
    assert all(abs((e.raised_at - raised[ident(e)]).total_seconds()) <= 900 for e in got)


def test_warm_start_steps_new_meters_over_their_history_quietly():
    """Meters without state are first stepped over their stored readings; events of that
    history are not raised again, and the history is asked for only at the cell's start."""
    shift = 3 * WEEK + 10
    rs = series(3 * WEEK + 60, lambda i, ts, rng: residential(i, ts, rng)
                    * (3.0 if i >= shift else 1.0))
    history, live = rs[:shift + 2], rs[shift + 2:]  # the shift began before the restart
    asked = []

    def warm(meter_ids, until):
        asked.append((tuple(meter_ids), until))
        return [given_fields(r) for r in history
                if r.meter_id in meter_ids and r.ts.timestamp() < until]

    def run(w):
        logic = CellLogic(None, DetectionSettings(), Calendar(), lambda m: None, 900.0, 0.0,
                          warm=w)
        out = []
        for i in range(0, len(live), 4):
            out.extend(logic.on_batch([ReadingBatch("shard:00", tuple(live[i:i + 4]))])[0])
        return logic, [e for e in out if isinstance(e, Event)]

    logic, events = run(warm)
    assert asked == [((live[0].meter_id,), live[0].ts.timestamp())]  # once, for the new meter
    assert logic.meters[live[0].meter_id].rec.n == len(rs)
    fired = [e for e in events if e.type == "abnormal_consumption" and e.state == "firing"]
    assert fired and fired[0].onset >= history[shift].ts  # the shift, seen thanks to history
    _, cold = run(None)
    assert not [e for e in cold if e.type == "abnormal_consumption"]  # blind without it


def test_a_warm_start_may_answer_for_more_of_the_cells_meters():
    """The warm start gives the history of a meter the cell did not ask about (another of its
    cell's meters): the cell steps it too, and when that meter's own readings come it is not
    new, so nothing more is asked. A batch of fields is asked about by its fields."""
    a = series(WEEK + 8, meter="a")
    b = series(WEEK + 8, meter="b", seed=8)
    asked = []

    def warm(meter_ids, until):
        asked.append(tuple(meter_ids))
        return [given_fields(r) for r in (*a[:WEEK], *b[:WEEK]) if r.ts.timestamp() < until]

    logic = CellLogic(None, DetectionSettings(), Calendar(), lambda m: None, 900.0, 0.0,
                      warm=warm)
    logic.on_batch([ReadingBatch.of_fields("shard:00", [r.__dict__ for r in a[WEEK:WEEK + 4]])])
    assert asked == [("a",)]
    assert logic.meters["b"].rec.n == WEEK  # stepped over its history, unasked
    # (through the lane, by a cell of its own: the state its readings stepped one by one give)
    assert logic.meters["b"].to_bytes() == run(b[:WEEK])[0].to_bytes()
    logic.on_batch([ReadingBatch("shard:00", (*a[WEEK + 4:], *b[WEEK:]))])
    assert asked == [("a",)]
    assert logic.meters["a"].rec.n == logic.meters["b"].rec.n == WEEK + 8


@pytest.mark.parametrize("resumed", [False, True], ids=["one-cell", "snapshot-between"])
def test_a_late_batch_of_a_warm_meter_is_not_learned_twice_nor_read_as_going_back(resumed):
    """A meter the warm start answered for before its own readings came (a concentrator that
    sends its hour late): its readings up to the newest stored one it was stepped over are not
    stepped again, and raise no clock drift, also in a cell resumed from a snapshot taken in
    between; a reading older than one stepped live still does."""
    a = series(WEEK + 8, meter="a")
    b = series(WEEK + 8, meter="b", seed=8)

    def warm(meter_ids, until):
        return [given_fields(r) for r in (*a[:WEEK], *b[:WEEK]) if r.ts.timestamp() < until]

    logic = CellLogic(None, DetectionSettings(), Calendar(), lambda m: None, 900.0, 0.0,
                      warm=warm)
    out = logic.on_batch([ReadingBatch("shard:00", tuple(a[WEEK:WEEK + 2]))])[0]
    if resumed:
        logic = CellLogic(logic.snapshot(), DetectionSettings(), Calendar(), lambda m: None,
                          900.0, 0.0, warm=warm)
    for batch in (b[WEEK - 3:WEEK + 2], a[WEEK + 2:WEEK + 4]):
        out += logic.on_batch([ReadingBatch("shard:00", tuple(batch))])[0]
    assert logic.warm_skipped == 3
    assert logic.meters["b"].rec.n == WEEK + 2
    assert not [e for e in out if isinstance(e, Event) and e.type == "clock_drift"]
    out = logic.on_batch([ReadingBatch("shard:00", (b[WEEK - 5],))])[0]  # truly backwards
    assert [e.type for e in out if isinstance(e, Event)] == ["clock_drift"]


def test_a_warm_start_never_steps_a_meter_that_has_a_state_nor_a_resumed_cell():
    """Readings the warm start gives of a meter that already has a state (stepped live, or
    seeded before) are not stepped; a cell resumed from a snapshot asks for nothing."""
    a, b, c = (series(WEEK + 4, meter=m, seed=k) for k, m in enumerate("abc"))
    asked = []

    def warm(meter_ids, until):  # (every meter's history, whatever is asked)
        asked.append(tuple(meter_ids))
        return [given_fields(r) for r in (*a[:WEEK], *b[:WEEK], *c[:WEEK])
                if r.ts.timestamp() < until]

    logic = CellLogic(None, DetectionSettings(), Calendar(), lambda m: None, 900.0, 0.0,
                      warm=warm)
    logic.on_batch([ReadingBatch("shard:00", (a[WEEK],))])
    assert [logic.meters[m].rec.n for m in "abc"] == [WEEK + 1, WEEK, WEEK]
    logic.meters.pop("c")  # (as if c were new to the cell: asked about with its batch)
    logic.on_batch([ReadingBatch("shard:00", (a[WEEK + 1], c[WEEK]))])
    assert asked == [("a",), ("c",)]
    assert [logic.meters[m].rec.n for m in "abc"] == [WEEK + 2, WEEK, WEEK + 1]
    assert not [m for m in "abc" if logic.meters[m].active]  # (no clock gone backwards)
    snapshot = logic.snapshot()
    resumed = CellLogic(snapshot, DetectionSettings(), Calendar(), lambda m: None, 900.0, 0.0,
                        warm=warm)
    d = series(WEEK + 4, meter="d", seed=3)
    resumed.on_batch([ReadingBatch("shard:00", (a[WEEK + 2], d[WEEK + 2]))])
    assert asked == [("a",), ("c",)] and resumed.meters["d"].rec.n == 1


@pytest.mark.parametrize("warm", [True, False], ids=["warm", "cold"])
def test_a_meter_silent_since_before_a_warm_start_is_found_silent(warm):
    """A meter of the cell whose stored readings stop two hours before the start and that
    sends nothing after it: the watch learns its last stored reading from the warm start,
    so its silence is judged (a communication loss, with the onset it has); a cold cell
    never saw the meter and stays blind to it. The meters that report are not flagged."""
    a, b = series(WEEK + 16, meter="a"), series(WEEK + 16, meter="b", seed=8)
    c = series(WEEK - 8, meter="c", seed=9)  # (its last stored reading: 2 hours before)

    def history(meter_ids, until):
        return [given_fields(r) for r in (*a[:WEEK], *b[:WEEK], *c)
                if r.ts.timestamp() < until]

    logic = CellLogic(None, DetectionSettings(), Calendar(), lambda m: None, 900.0, 0.0,
                      warm=history if warm else None)
    out = []
    for i in range(WEEK, WEEK + 16, 2):
        out += logic.on_batch([ReadingBatch("shard:00", (*a[i:i + 2], *b[i:i + 2]))])[0]
    silent = [e for e in out if isinstance(e, Event) and e.state == "firing"]
    if not warm:
        assert silent == [] and "c" not in logic.watch.slot
        return
    assert [(e.meter_id, e.type) for e in silent] == [("c", "comm_loss")]
    assert silent[0].onset > c[-1].ts  # (after its last reading, not at the start)
    assert logic.meters["c"].rec.n == len(c)


@pytest.mark.parametrize("apart", [True, False], ids=["days-apart", "together"])
def test_meters_silent_before_a_warm_start_are_a_feeder_outage_only_if_together(apart):
    """Five meters of a cell silent at the start: ones that fell silent days apart (dead or
    removed meters, each alerted long ago) are each raised on their own, with the onsets
    they had, and make no feeder outage; ones whose last stored readings end together just
    before the start (their silence not yet decided then) are one feeder outage, as live."""
    live = {m: series(WEEK + 16, meter=m, seed=k) for k, m in enumerate(("a", "b"))}
    quiet = {m: series(WEEK - (96 * k if apart else 2), meter=m, seed=9 + k)
             for k, m in enumerate(("c", "d", "e", "f", "g"), start=1)}
    meta = {m: MeterMeta(meter_id=m, grid_cell="cell-1") for m in (*live, *quiet)}

    def history(meter_ids, until):
        stored = [r for m in live for r in live[m][:WEEK]] + [r for q in quiet.values()
                                                               for r in q]
        return [given_fields(r) for r in sorted(stored, key=lambda r: r.ts)
                if r.ts.timestamp() < until]

    logic = CellLogic(None, DetectionSettings(), Calendar(), meta.get, 900.0, 0.0,
                      warm=history)
    out = []
    for i in range(WEEK, WEEK + 16, 2):
        batch = tuple(r for m in live for r in live[m][i:i + 2])
        out += logic.on_batch([ReadingBatch("cell:cell-1", batch)])[0]
    fired = sorted((e.meter_id, e.type) for e in out
                   if isinstance(e, Event) and e.state == "firing")
    if apart:
        assert fired == [(m, "comm_loss") for m in "cdefg"]
        onsets = {e.meter_id: e.onset for e in out if isinstance(e, Event)}
        assert all(onsets[m] == quiet[m][-1].ts + STEP for m in quiet)  # as they were
    else:
        assert fired == [("cell:cell-1", "feeder_outage")]


def test_two_workers_raise_what_one_raises():
    """Cells spread over two workers (each reading batch crosses once to its cell's worker,
    the clock sees summaries): the same events as one worker."""
    from bytewax.testing import cluster_main

    meta = {f"m{m}": MeterMeta(meter_id=f"m{m}", grid_cell=f"C{m % 3}") for m in range(15)}
    rs = fleet(9, 15, skip=lambda m, i: m % 3 == 1 and 8 * 96 <= i < 8 * 96 + 12,
               bump=lambda m, i: 4.0 if (m == 2 and i == 8 * 96 + 40) else 0.0)

    def run(workers):
        out: list = []
        flow = build_flow(Settings(), TestingSource(rs, batch_size=500),
                          Sinks(events=TestingSink(out)), meta, snapshots=False)
        if workers == 1:
            run_main(flow)
        else:
            cluster_main(flow, [], 0, worker_count_per_proc=workers)
        return sorted((e.meter_id, e.type, e.state, e.onset) for e in out
                      if isinstance(e, Event))

    one = run(1)
    assert ("cell:C1", "feeder_outage", "firing") in {e[:3] for e in one}
    assert run(2) == one


def given_fields(r: Reading) -> dict:
    """``r``'s given fields, as a reading read from the journal holds them."""
    return {k: v for k, v in r.__dict__.items() if k in r.model_fields_set}


def test_cell_steps_readings_split_over_two_partitions_in_event_time_order():
    """A shared MQTT subscription splits a meter's readings between two collectors' journal
    partitions, read at their own pace (here: the whole of one before the other). Told the
    cluster's partitions, a cell holds each reading until every partition has delivered up
    to its time, and raises what one partition read in order raises: no clock going
    backwards, no false silence; a real silence and a spike still raised."""
    meta = {f"m{m}": MeterMeta(meter_id=f"m{m}", grid_cell="C1") for m in range(6)}
    rs = fleet(9, 6, skip=lambda m, i: m == 4 and i >= 8 * 96 + 20,
               bump=lambda m, i: 6.0 if (m == 2 and i == 8 * 96 + 40) else 0.0)

    def run(batches, partitions=()):
        logic = CellLogic(None, DetectionSettings(), Calendar(), meta.get, 900.0, 0.0,
                          partitions=partitions)
        out = []
        for b in batches:
            out += logic.on_batch([b])[0]
        out += logic.on_eof()[0]
        assert not logic.held
        return sorted((e.meter_id, e.type, e.state, e.onset) for e in out
                      if isinstance(e, Event))

    def batches(rows, part):
        return [ReadingBatch("cell:C1", tuple(rows[i:i + 500]), part)
                for i in range(0, len(rows), 500)]

    in_order = run(batches(rs, "p0"))
    assert {e[:2] for e in in_order if e[2] == "firing"} >= {("m4", "comm_loss")}
    p0 = [r for k, r in enumerate(rs) if (k // 6) % 2 == 0]  # even intervals
    p1 = [r for k, r in enumerate(rs) if (k // 6) % 2 == 1]  # odd intervals
    split = run(batches(p0, "p0") + batches(p1, "p1"), partitions=("p0", "p1"))
    assert split == in_order
    # the same readings as their given fields (as read from a journal): held as fields
    as_fields = [ReadingBatch.of_fields(b.key, [given_fields(r) for r in b.readings], b.part)
                 for b in batches(p0, "p0") + batches(p1, "p1")]
    assert run(as_fields, partitions=("p0", "p1")) == in_order
    # the partitions' batches interleaved, some of readings and some of fields
    both = batches(p0, "p0")
    mixed = [x for pair in zip(both, as_fields[len(both):], strict=False) for x in pair]
    assert run(mixed, partitions=("p0", "p1")) == in_order


def test_in_a_cluster_the_clock_releases_held_readings_within_the_interval():
    """A cell told of two partitions holds what one sends while the other sends it nothing
    (a concentrator's batch reached one collector); the clock, which ticks every key at each
    release in a cluster, lets the cell step them without waiting for the next boundary."""
    from gridwatch.stream import ClockLogic, Watermark

    t0 = T0.timestamp()
    clock = ClockLogic(None, 900.0, 0.0, 0.0, release_ticks=True)
    plain = ClockLogic(None, 900.0, 0.0, 0.0)
    for c in (clock, plain):
        c.on_item(Watermark("p0", t0, ("cell:a",)))
        c.on_item(Watermark("p1", t0))
        c.snapshot()
        assert c.on_item(Watermark("p0", t0 + 300))[0] == [("cell:a", Tick(t0))]
        c.on_item(Watermark("p1", t0 + 300))
        c.snapshot()
    # the watermark moved within the interval: only the cluster's clock ticks
    assert clock.on_notify()[0] == [("cell:a", Tick(t0 + 300))]
    assert plain.on_notify()[0] == []

    cell = CellLogic(None, DetectionSettings(), Calendar(), lambda m: None, 900.0, 0.0,
                     partitions=("p0", "p1"))
    batch = ReadingBatch("cell:a", (reading("m0", T0, 1.0),
                                    reading("m0", T0 + timedelta(seconds=300), 1.0)),
                         "p0")
    cell.on_batch([batch])
    assert len(cell.held) == 2  # p1 has delivered nothing yet
    cell.on_batch([Tick(t0 + 300)])
    assert not cell.held and cell.meters["m0"].to_bytes()


def test_held_readings_survive_a_snapshot():
    """Readings a cell holds for a slower partition are part of its snapshot: restored from
    it, the cell steps them as the original would have."""
    rs = fleet(2, 3)
    mid = len(rs) // 2
    first = ReadingBatch("cell:a", tuple(rs[:mid]), "p0")
    second = ReadingBatch("cell:a", tuple(rs[mid:]), "p1")

    def cell(resume=None):
        return CellLogic(resume, DetectionSettings(), Calendar(), lambda m: None, 900.0, 0.0,
                         partitions=("p0", "p1"))

    original = cell()
    original.on_batch([first])
    assert len(original.held) == mid  # p1 has delivered nothing yet
    restored = cell(original.snapshot())
    assert [r for _, r in restored.held] == list(rs[:mid])
    for c in (original, restored):
        c.on_batch([second])
        c.on_eof()
        assert not c.held
    assert {m: s.to_bytes() for m, s in restored.meters.items()} == \
        {m: s.to_bytes() for m, s in original.meters.items()}
    # held as their fields, they survive it the same way
    fields = cell()
    fields.on_batch([ReadingBatch.of_fields("cell:a", [given_fields(r) for r in rs[:mid]],
                                            "p0")])
    again = cell(fields.snapshot())
    assert again.held == fields.held and len(again.held) == mid
    again.on_batch([second])
    again.on_eof()
    assert {m: s.to_bytes() for m, s in again.meters.items()} == \
        {m: s.to_bytes() for m, s in original.meters.items()}
