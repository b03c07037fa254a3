"""The cells' lane (``gridwatch.stream._lane``) against the per-reading path: the same events,
scores and profiles in the same order, and the same state to the byte, with reading batches
of objects and of their given fields (as read from the journal), on random streams
(statuses, three phases, gaps, duplicates, repeated values, spikes, drops, export after a
run above or below the band, contracted capacities, meters the registry does not know) and
on the demo fleet with anomalies injected."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest
from _models_helpers import demo_slice, sgsc45_slice
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import gridwatch.models._quiet as quiet_mod
import gridwatch.stream._logic as logic
from gridwatch import Event, MeterMeta, Reading
from gridwatch.ingest._journal import encode_items, rebuild_fields
from gridwatch.models import Calendar, DetectionSettings
from gridwatch.models._quiet import use_compiled
from gridwatch.stream import ReadingBatch
from gridwatch.stream._flow import watch_key
from gridwatch.stream._logic import CellLogic

_T0 = datetime(2026, 3, 2, tzinfo=UTC).timestamp()


@contextmanager
def lane(on: bool) -> Iterator[dict[str, int]]:
    """The lane on or off; counts the readings that went through the per-reading path."""
    counted = {"each": 0}
    real_kernel, real_each = logic.lane_kernel, CellLogic._steps_each

    def each(self: CellLogic, timed: Any, *args: Any, **kwargs: Any) -> None:
        counted["each"] += len(timed)
        real_each(self, timed, *args, **kwargs)

    was = use_compiled(True)
    if not on:
        logic.lane_kernel = lambda: None  # type: ignore[assignment]
    CellLogic._steps_each = each  # type: ignore[method-assign]
    try:
        yield counted
    finally:
        logic.lane_kernel = real_kernel  # type: ignore[assignment]
        CellLogic._steps_each = real_each  # type: ignore[method-assign]
        use_compiled(was)


def as_fields(key: str, readings: list[Reading]) -> ReadingBatch:
    """The batch of ``readings`` as the dataflow gets it from the journal: their records
    decoded into their given fields, no reading objects."""
    given = rebuild_fields(encode_items(readings))
    assert given is not None
    return ReadingBatch.of_fields(key, given, "p0")


@contextmanager
def full_path_only() -> Iterator[None]:
    """Every reading through the full path: no quiet path (nor the lane: run the cells with
    ``on=False``)."""
    import gridwatch.models._meter as meter_mod

    old = meter_mod.FAST_PATH
    meter_mod.FAST_PATH = False
    try:
        yield
    finally:
        meter_mod.FAST_PATH = old


class _Waiting:
    """A verdict feed that says a verdict waits (``waiting``) and has none for any meter: a
    batch then takes the per-reading path whole, as when a manager's verdict is on its way,
    with the same outcome."""

    def __init__(self) -> None:
        self.waiting = False

    def any_pending(self) -> bool:
        return self.waiting

    def __call__(self, meter_id: str) -> list[tuple[str, str, str, str, datetime]]:
        return []


def run_cells(batches: list[tuple[str, list[Reading]]], metas: dict[str, MeterMeta],
              s: DetectionSettings, on: bool, fields: bool = False,
              waits: list[bool] | None = None
              ) -> tuple[list[Any], dict[str, bytes], int]:
    """Batches (cell key, readings) through their cells: outputs, snapshots, and how many
    readings went through the per-reading path. ``fields``: each batch as its readings'
    fields (:func:`as_fields`); ``waits``: whether a verdict waits at each batch, in turn
    (:class:`_Waiting`)."""
    cal = Calendar(s.timezone, s.holiday_country)
    cells: dict[str, CellLogic] = {}
    out: list[Any] = []
    feed = _Waiting()
    turns = itertools.cycle(waits or [False])
    with lane(on) as counted:
        for key, readings in batches:
            feed.waiting = next(turns)
            cell = cells.get(key)
            if cell is None:
                cell = cells[key] = CellLogic(None, s, cal, metas.get, float(s.interval_s),
                                              float(s.lateness_s), verdicts=feed)
            batch = as_fields(key, readings) if fields else \
                ReadingBatch(key, tuple(readings), "p0")
            out.extend(cell.on_batch([batch])[0])
        for cell in cells.values():
            out.extend(cell.on_eof()[0])
    return out, {k: c.snapshot() for k, c in cells.items()}, counted["each"]


def _meta(i: int, kind: str) -> MeterMeta | None:
    if kind == "none":
        return None
    industrial = kind.startswith("industrial")  # (a class that judges theft within the day)
    return MeterMeta(meter_id=f"m{i}", grid_cell="c1", customer_class=(
        "industrial" if industrial else "residential"),
        contracted_kva=6.9 if kind in ("kva", "kva_stated") or industrial else None,
        has_export=kind in ("export", "industrial_export"),
        phases=3 if industrial else 1,
        # registered intervals: as the random streams' readings, and half-hourly
        interval_s={"stated": 900, "kva_stated": 1800}.get(kind))


@st.composite
def fleets(draw: st.DrawFn) -> dict[str, Any]:
    n = draw(st.integers(1, 6))
    return {
        "seed": draw(st.integers(0, 2**32 - 1)),
        "metas": [draw(st.sampled_from(["none", "plain", "kva", "stated", "kva_stated",
                                           "industrial", "export", "industrial_export"]))
                  for _ in range(n)],
        "volts": draw(st.sampled_from(["none", "one", "three", "two"])),
        "intervals": draw(st.integers(30, 500)),
        # batch sizes taken in turn (the lane takes a batch of one reading as well), and
        # whether a verdict waits at each batch in turn: such a batch takes the per-reading
        # path whole, whose steps must take their meters off the lane until it sets their
        # rows again
        "chunks": draw(st.lists(st.sampled_from([1, 3, 17, 64]), min_size=1, max_size=4)),
        "waits": draw(st.lists(st.booleans(), min_size=1, max_size=3)),
        "scores": draw(st.sampled_from([0, 7])),
        # meters that join the cell later, each at an interval of its own (new to the cell in
        # the middle of a batch, after readings whose watermarks tick), and readings a few
        # seconds apart within an interval
        "join": draw(st.booleans()),
        "jitter": draw(st.sampled_from([0.0, 20.0])),
        **{k: draw(st.sampled_from([0.0, 0.0, 0.01, 0.05]))
           for k in ("status", "gap", "dup", "stuck", "spike", "pf", "silence", "neg",
                     "low")},
    }


def _readings(f: dict[str, Any]) -> list[Reading]:
    rng = np.random.default_rng(f["seed"])
    out = []
    last: dict[int, float] = {}
    away: set[int] = set()
    n = len(f["metas"])
    joins = rng.integers(0, max(1, f["intervals"] // 2), n) if f.get("join") else [0] * n
    for k in range(f["intervals"]):
        for i in range(n):
            if k < joins[i]:
                continue
            t = _T0 + 900.0 * k + round(float(rng.uniform(0, f.get("jitter", 0.0))), 3)
            hour = (t % 86_400) / 3600
            u = rng.random(8)
            if u[0] < f["silence"]:
                away ^= {i}
            if i in away or u[1] < f["gap"]:
                continue
            kw = round(1.0 + 0.8 * math.exp(-(((hour - 19) / 2) ** 2))
                       + float(rng.normal(0, 0.08)), 3)
            if u[2] < f["stuck"] and i in last:
                kw = last[i]
            elif u[3] < f["spike"]:
                kw *= 8
            elif u[7] < f["neg"]:  # (exporting, on a meter with export)
                kw = -0.5
            elif u[7] > 1 - f["low"]:
                kw *= 0.1
            last[i] = kw
            extra: dict[str, Any] = {}
            if f["volts"] == "one":
                extra["voltage"] = round(float(rng.normal(230, 3)), 1)
            elif f["volts"] in ("three", "two"):
                n_v = 3 if f["volts"] == "three" else 2
                extra["voltage"] = [round(float(v), 1) for v in rng.normal(230, 2, n_v)]
                extra["current"] = [round(float(c), 2) for c in rng.uniform(4, 6, n_v)]
            if u[4] < f["pf"]:
                extra["pf"] = float(rng.choice([0.97, 0.6]))
            if u[5] < f["status"]:
                extra["status"] = [str(rng.choice(["power_fail", "magnetic_tamper", "estimated"]))]
            r = Reading(meter_id=f"m{i}", ts=datetime.fromtimestamp(t, UTC), kw=kw, **extra)
            out.append(r)
            if u[6] < f["dup"]:
                out.append(r)
    return out


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(f=fleets())
def test_random_streams_identical_with_and_without_the_lane(f: dict[str, Any]) -> None:
    metas = {f"m{i}": m for i, kind in enumerate(f["metas"])
             if (m := _meta(i, kind)) is not None}
    s = DetectionSettings(score_sample_every=f["scores"], warmup_h=2, daily_min_days=1)
    readings = _readings(f)
    batches = []
    k = 0
    for size in itertools.cycle(f["chunks"]):
        if k >= len(readings):
            break
        batches.append(("c1", readings[k:k + size]))
        k += size
    off = run_cells(batches, metas, s, on=False, waits=f["waits"])
    on = run_cells(batches, metas, s, on=True, waits=f["waits"])
    assert on[0] == off[0]
    assert on[1] == off[1]
    assert off[2] == len(readings)
    given = run_cells(batches, metas, s, on=True, fields=True, waits=f["waits"])
    assert given[:2] == on[:2]
    assert given[2] == on[2]  # (the same readings left to Python)


def _evening_peaks(meters: int, intervals: int, step_s: float,
                   kw_of: Callable[[int, int, float], float] | None = None,
                   t0: float = _T0) -> list[Reading]:
    """Readings of ``meters`` meters every ``step_s`` seconds from ``t0``: a daily curve with
    an evening peak, a little apart per meter; ``kw_of(k, i, kw)`` may change meter ``i``'s
    kW at interval ``k``."""
    readings = []
    for k in range(intervals):
        t = t0 + step_s * k
        hour = (t % 86_400) / 3600
        for i in range(meters):
            kw = round(1.0 + 0.8 * math.exp(-(((hour - 19) / 2) ** 2)) + 0.01 * i, 3)
            if kw_of is not None:
                kw = kw_of(k, i, kw)
            readings.append(Reading(meter_id=f"m{i}", ts=datetime.fromtimestamp(t, UTC),
                                    kw=kw))
    return readings


def _through_python(readings: list[Reading], metas: dict[str, MeterMeta],
                    s: DetectionSettings) -> int:
    """Run ``readings`` in batches of 64 with and without the lane; assert the same outputs
    and states; the readings the per-reading path took with the lane on."""
    batches = [("c1", readings[k:k + 64]) for k in range(0, len(readings), 64)]
    off = run_cells(batches, metas, s, on=False)
    on = run_cells(batches, metas, s, on=True)
    assert on[0] == off[0]
    assert on[1] == off[1]
    assert run_cells(batches, metas, s, on=True, fields=True) == on
    return on[2]


def test_runs_above_and_below_the_band_end_in_the_lane() -> None:
    """Meters with export, warm, then spikes and drops, some followed at once by an exporting
    reading (not judged: the run stays open and the reading is learned at the band's edge,
    in Python) and the others by a reading inside the band (the lane ends the run): the same
    outputs and states with and without the lane, and the lane took the spikes and drops that
    raise nothing, and most readings after a run."""
    def runs(k: int, i: int, kw: float) -> float:
        if k > 300 and (k + i) % 10 in (3, 6):  # (3: spike, 6: drop)
            return 6.0 if (k + i) % 10 == 3 else 0.05
        if k > 300 and (k + i) % 20 in (4, 17):  # right after one, exporting
            return -0.5
        return kw

    s = DetectionSettings(warmup_h=2)
    metas = {f"m{i}": m for i in range(8) if (m := _meta(i, "export")) is not None}
    readings = _evening_peaks(8, 1500, 900.0, runs)
    python = _through_python(readings, metas, s)
    # measured: 0.159 of the readings through Python (exporting readings after a run, and
    # what follows an alarm), 0.318 when spikes and drops left the lane; 0.463 if a run kept
    # its meter off the lane
    assert python < 0.25 * len(readings), f"per-reading path took {python} of {len(readings)}"


@contextmanager
def runs_judged() -> Iterator[dict[str, int]]:
    """Counts the lane's readings that started, went on with or ended a run beyond the band
    (``RUNS``: their runs go back to the record)."""
    counted = {"runs": 0}
    real = quiet_mod.runs_of

    def counting(row: np.ndarray) -> Any:
        counted["runs"] += 1
        return real(row)

    quiet_mod.runs_of = counting  # type: ignore[assignment]
    try:
        yield counted
    finally:
        quiet_mod.runs_of = real  # type: ignore[assignment]


def test_runs_and_episodes_beyond_the_band_are_judged_in_the_lane() -> None:
    """Ten warm days, then an episode on each meter every four days: a low run whose kW rises
    and falls (its highest kW is kept); a burst far beyond the meter's record (a spike alarm
    at once, raised in Python) easing back through the band's outer half, where the episode
    goes on, to its inner half, where it ends after an hour; a drop for 18 hours (a sustained
    drop raised after 12 or so) recovering the same way; a high run that stays short of an
    alarm; single readings above and below the band. The same outputs and states with and
    without the lane; the lane judged the runs' readings that raise nothing and the
    episodes' that neither raise nor end one."""
    start = 960  # (ten days of 15-minute readings)
    # (from 1.55 on: between the band's inner and outer top, the episode not yet over; nine
    # readings, so that a calm count gone wrong meets the readings back inside)
    easing = (6.0, 6.0, 4.0, 4.0, 3.0, 2.2, 1.55, 1.5, 1.45, 1.5, 1.4, 1.35, 1.45, 1.3, 1.35)
    rising = (0.3, 0.4, 0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95, 1.0)

    def episodes(k: int, i: int, kw: float) -> float:
        kw += 0.001 * ((7 * k + i) % 5)  # (no value repeats: no stuck reading)
        e = (k - start) % 384  # (an episode every fourth day)
        if k < start:
            return kw
        if i == 0:
            return (0.05, 0.12, 0.08, 0.15, 0.06, 0.1, 0.09, 0.07)[e % 8] if e < 16 else kw
        if i == 1:
            return easing[e] if e < len(easing) else kw
        if i == 2:
            return 0.1 if e < 72 else rising[e - 72] if e < 72 + len(rising) else kw
        if i == 3:
            return kw * 1.6 if e < 16 and e % 4 else kw
        return (6.0, 0.05)[e % 2] if e < 6 else kw

    s = DetectionSettings(warmup_h=2, score_sample_every=11)
    metas = {f"m{i}": m for i in range(5) if (m := _meta(i, "plain")) is not None}
    # (ending five readings into an episode: the runs then open are in the states compared)
    readings = _evening_peaks(5, start + 384 * 4 + 5, 900.0, episodes)
    with runs_judged() as judged:
        python = _through_python(readings, metas, s)
    events = [e for e in run_cells([("c1", readings[k:k + 64])
                                    for k in range(0, len(readings), 64)], metas, s,
                                   on=True)[0] if getattr(e, "state", None)]
    kinds = {(e.state, e.evidence.get("kind")) for e in events}
    assert {("firing", "spike"), ("firing", "sustained_drop"), ("resolved", "spike"),
            ("resolved", "sustained_drop")} <= kinds, kinds
    # measured: the lane judged 580 readings of runs and episodes (the lane on, with reading
    # objects and with fields); 272 of the 12,505 readings went through Python
    assert judged["runs"] > 400, judged
    assert python < 400, f"per-reading path took {python} of {len(readings)}"


def test_real_households_identical_with_and_without_the_lane() -> None:
    """Real household load (sgsc45: heavy-tailed, with the file's own gaps), half-hourly, in
    batches of 200: the same outputs and states with and without the lane, which judges most
    of the readings beyond the band and those of an abnormal-consumption episode (its
    anomalous scores among them)."""
    readings = sgsc45_slice(4, 20_000)
    s = DetectionSettings(interval_s=1800, score_sample_every=7)
    batches = [("c1", readings[k:k + 200]) for k in range(0, len(readings), 200)]
    off = run_cells(batches, {}, s, on=False)
    with runs_judged() as judged:
        on = run_cells(batches, {}, s, on=True)
    assert on[0] == off[0]
    assert on[1] == off[1]
    assert any(getattr(o, "state", None) == "firing" for o in off[0])
    # measured: 927 readings of runs and episodes judged in the lane, 820 anomalous scores;
    # 77 readings through Python (a day's first reading during a daily run, what raises or
    # ends an alarm), against 1,251 when a reading beyond the band or of an episode, and the
    # rest of the first batch of a meter new to the cell, left the lane
    assert judged["runs"] > 600, judged
    assert sum(1 for o in on[0] if getattr(o, "anomalous", False)) > 500
    assert on[2] < 200, f"per-reading path took {on[2]} of {len(readings)}"
    assert run_cells(batches, {}, s, on=True, fields=True) == on


def test_a_new_meters_later_readings_in_its_first_batch_take_the_lane() -> None:
    """A batch that holds many readings of meters new to the cell (a file sorted by meter, a
    backlog): a meter's first reading that comes after a reading whose watermark may tick
    is given its slot and row when the lane reaches it (the ticks before it done first, as
    the per-reading path does them), and its later readings in the batch take the lane
    with it (their rows are made again).
    The same outputs and states both ways."""
    s = DetectionSettings(warmup_h=2, score_sample_every=9)
    metas = {f"m{i}": m for i in range(3) if (m := _meta(i, "plain")) is not None}
    by_time = _evening_peaks(3, 300, 900.0, lambda k, i, kw: kw + 0.001 * ((7 * k + i) % 5))
    readings = sorted(by_time, key=lambda r: r.meter_id)  # (stable: each meter in time order)
    batches = [("c1", readings)]
    off = run_cells(batches, metas, s, on=False)
    on = run_cells(batches, metas, s, on=True)
    assert on[0] == off[0]
    assert on[1] == off[1]
    assert run_cells(batches, metas, s, on=True, fields=True) == on
    # measured: 1 of the 900 readings through Python (the cell's first: m1's and m2's
    # first come after readings of m0 whose watermark may tick, and are given their slots
    # once those ticks are done, as first sight starts again at the reading); 2 when first
    # sight stopped for the rest of the chunk at the first reading that may tick; 3 when each
    # meter's first went through Python; 636 when the rows of a batch's chunk were made only
    # as it started
    assert on[2] == 1, f"per-reading path took {on[2]} of {len(readings)}"


def test_meters_new_to_the_cell_take_the_lane_from_their_first_reading() -> None:
    """A fleet's first interval (every meter new to its cell, as at start-up) and the next,
    in 100-reading batches: the lane gives each new meter its slot, record and row before it
    steps the batch, so only the cell's very first reading (which sets its first tick) goes
    through Python; a meter whose first reading carries a status goes through Python, and so
    does its next reading (a last gasp's); the new meters after it in that batch are given
    their slots once it has its own (first sight starts again past it, so the slots come in
    the per-reading path's order) and take the lane. The same outputs and states as without
    the lane."""
    s = DetectionSettings(warmup_h=2, score_sample_every=13)
    metas = {f"m{i}": m for i in range(400)
             if (m := _meta(i, ("plain", "kva", "stated", "none")[i % 4])) is not None}
    readings = _evening_peaks(400, 3, 900.0)
    batches = [("c1", readings[k:k + 100]) for k in range(0, len(readings), 100)]
    off = run_cells(batches, metas, s, on=False)
    on = run_cells(batches, metas, s, on=True)
    assert on[:2] == off[:2]
    assert run_cells(batches, metas, s, on=True, fields=True) == on
    # measured: 1 of the 1,200 readings through Python; 400 when a new meter's first
    # reading went through Python to set its row
    assert on[2] == 1, on[2]
    gasp = list(readings)
    gasp[250] = Reading(**{**gasp[250].model_dump(), "status": ["power_fail"]})
    batches = [("c1", gasp[k:k + 100]) for k in range(0, len(gasp), 100)]
    off = run_cells(batches, metas, s, on=False)
    on = run_cells(batches, metas, s, on=True)
    assert on[:2] == off[:2]
    # (the cell's first reading; the gasp; the gasping meter's next reading, as after any
    # last gasp). Measured: 1 + 50 + 1 when the 49 new meters after the gasp in its batch
    # went through Python too (first sight stopped at the gasp for the rest of the chunk)
    assert on[2] == 1 + 1 + 1, on[2]


def test_meters_new_past_a_tick_take_the_lane_from_their_first_reading() -> None:
    """New meters whose first readings come after the cell's watermark passes a tick, in the
    batch that holds it (a fleet joining as time goes on, a start-up spread over an
    interval): the lane does the ticks before the first of them, as the per-reading path
    does, and gives them their slots there, so they take the lane from their first reading.
    The same outputs and states as without the lane, with a reading of a meter that falls
    silent (the ticks find it) and a meter with a theft window among the new ones."""
    s = DetectionSettings(warmup_h=2, score_sample_every=11)
    kinds = ("plain", "kva", "stated", "industrial")
    metas = {f"m{i}": m for i in range(150) if (m := _meta(i, kinds[i % 4])) is not None}
    first = _evening_peaks(150, 12, 900.0)
    old = [r for r in first if int(r.meter_id[1:]) < 100]
    new = [r.model_copy(update={"ts": r.ts + timedelta(seconds=2)}) for r in first
           if int(r.meter_id[1:]) >= 100 and r.ts > first[0].ts]  # (their clocks 2 s on)
    # the old meters' first interval, then the new meters' first readings ahead of the old
    # meters' second (so that the first reading past the tick is a new meter's), then on;
    # one old meter stops reading after its second interval
    t1 = new[0].ts
    readings = old[:100] + [r for r in new if r.ts == t1] + [
        r for r in sorted(old[100:] + [r for r in new if r.ts != t1], key=lambda r: r.ts)
        if not (r.meter_id == "m7" and r.ts > t1)]
    batches = [("c1", readings[:250]), ("c1", readings[250:])]
    off = run_cells(batches, metas, s, on=False)
    on = run_cells(batches, metas, s, on=True)
    assert on[:2] == off[:2]
    assert run_cells(batches, metas, s, on=True, fields=True) == on
    assert [(e.meter_id, e.type) for e in on[0] if isinstance(e, Event)] == [
        ("m7", "comm_loss")]
    # measured: the cell's first reading alone through Python; 2 when the new meters'
    # first sight came before the ticks their first reading passes (the first through
    # Python, which ticks, the rest in the lane after it); 51 when first sight stopped
    # for the rest of the chunk at the first reading that may tick; 38 when the lane left
    # the first reading of a meter with a theft window to Python (the window opened there)
    assert on[2] == 1, on[2]


def test_an_exporting_meter_of_a_theft_class_holds_no_window_until_it_draws() -> None:
    """A meter whose class judges theft within the day is given its theft window when its
    lane row is first set (the kernel opens it in place at its first judged hour), and a
    meter with export judges no hour while it exports: its record, snapshot and all, is the
    per-reading path's, which allocates no window until a reading draws from the grid."""
    s = DetectionSettings(warmup_h=2)
    metas = {f"m{i}": m for i in range(12) if (m := _meta(i, "industrial_export")) is not None}
    exporting = _evening_peaks(12, 16, 900.0, lambda k, i, kw: -kw)
    batches = [("c1", exporting[k:k + 48]) for k in range(0, len(exporting), 48)]
    off = run_cells(batches, metas, s, on=False)
    on = run_cells(batches, metas, s, on=True)
    assert on[:2] == off[:2]
    # (most readings took the lane, so the windows were allocated there; the meters' readings
    # at the end of the warm-up go through Python)
    assert on[2] < len(exporting) // 10, on[2]
    drawing = exporting + _evening_peaks(12, 8, 900.0, t0=_T0 + 16 * 900.0)
    batches = [("c1", drawing[k:k + 48]) for k in range(0, len(drawing), 48)]
    assert run_cells(batches, metas, s, on=True)[:2] == run_cells(batches, metas, s, on=False)[:2]


def test_a_resumed_cell_takes_the_lane_from_each_meters_first_reading() -> None:
    """A cell resumed from its snapshot (a restart with recovery) has no lane rows: it makes
    each meter's row from its resumed record before the batch steps, so the meters' first
    readings after the resume take the lane. Outputs and the final state as the cell that
    ran on without a break, and as without the lane."""
    s = DetectionSettings(warmup_h=2, score_sample_every=7)
    metas = {f"m{i}": m for i in range(60) if (m := _meta(i, "plain")) is not None}
    readings = _evening_peaks(60, 200, 900.0, lambda k, i, kw: kw + 0.001 * ((7 * k + i) % 5))
    cut = 60 * 120
    cal = Calendar(s.timezone, s.holiday_country)

    def run(on: bool) -> tuple[list[Any], bytes, int]:
        with lane(on) as counted:
            cell = CellLogic(None, s, cal, metas.get, float(s.interval_s), 0.0)
            out: list[Any] = []
            for k in range(0, cut, 120):
                out += cell.on_batch([ReadingBatch("c1", tuple(readings[k:k + 120]), "p0")])[0]
            cell = CellLogic(cell.snapshot(), s, cal, metas.get, float(s.interval_s), 0.0)
            counted["each"] = 0
            out.append("resumed")
            for k in range(cut, len(readings), 120):
                out += cell.on_batch([ReadingBatch("c1", tuple(readings[k:k + 120]), "p0")])[0]
            return out, cell.snapshot(), counted["each"]

    off, on = run(False), run(True)
    assert on[:2] == off[:2]
    after = on[0][on[0].index("resumed"):]
    assert sum(type(o).__name__ == "Score" for o in after) > 100  # (sampled scores)
    assert any(type(o).__name__ == "DailyProfile" for o in after)
    # measured: none of the 4,800 readings after the resume through Python; 60 (each
    # meter's first) when a meter's row was only set after a reading through Python
    assert on[2] == 0, on[2]


def test_half_hourly_contracted_meters_with_a_registered_interval_take_the_lane() -> None:
    """Meters with a contracted kVA and a registered interval (half-hourly, against the
    settings' 15 minutes), read every half hour: the load forecast's steps follow the
    registered interval, which the lane keeps with each meter's row (the kernel checks it,
    and hands a reading back to Python if it differs). The same outputs and states with and
    without the lane, and the lane took most of their readings."""
    s = DetectionSettings(warmup_h=2)
    metas = {f"m{i}": m for i in range(6) if (m := _meta(i, "kva_stated")) is not None}
    readings = _evening_peaks(6, 1000, 1800.0)
    python = _through_python(readings, metas, s)
    # measured: 0.325 of the readings through Python
    assert python < 0.5 * len(readings), f"per-reading path took {python} of {len(readings)}"


def test_demo_fleet_identical_with_and_without_the_lane() -> None:
    """A slice of the demo fleet (every class, three-phase meters, export, contracted
    capacities), anomalies injected from the second day, in 200-reading chunks grouped by
    cell as the dataflow groups them: the same outputs and states both ways, and most
    readings took the lane."""
    fleet, metas, readings, labels = demo_slice("1d")
    s = DetectionSettings(timezone=fleet.timezone, holiday_country=fleet.country,
                          score_sample_every=50)
    batches = []
    for k in range(0, len(readings), 200):
        groups: dict[str, list[Reading]] = {}
        for r in readings[k:k + 200]:
            groups.setdefault(watch_key(r.meter_id, metas.get(r.meter_id)), []).append(r)
        batches.extend(groups.items())
    off = run_cells(batches, metas, s, on=False)
    on = run_cells(batches, metas, s, on=True)
    assert labels and any(getattr(o, "state", None) == "firing" for o in off[0])
    assert on[0] == off[0]
    assert on[1] == off[1]
    assert off[2] == len(readings)
    assert on[2] < 0.2 * len(readings), f"per-reading path took {on[2]} of {len(readings)}"
    # as the dataflow gets them from the journal: fields, readings made only for Python
    assert run_cells(batches, metas, s, on=True, fields=True) == on


@pytest.mark.parametrize("kind", ["plain", "kva"])
def test_a_reloaded_registry_entry_takes_the_reading_through_python(kind: str) -> None:
    """A reading whose registry entry is another object than the one its meter's row was set
    with (a reload) goes through Python, which sets the row again from the new entry: the
    same outputs and states as without the lane, and the row holds the new entry."""
    s = DetectionSettings(warmup_h=2, score_sample_every=5)
    readings = [Reading(meter_id=f"m{i}", ts=datetime.fromtimestamp(_T0 + 900.0 * k, UTC),
                        kw=1.0 + 0.1 * ((k + i) % 5)) for k in range(300) for i in range(20)]
    results = []
    for on in (False, True):
        metas = {f"m{i}": m for i in range(20) if (m := _meta(i, kind)) is not None}
        cal = Calendar(s.timezone, s.holiday_country)
        out: list[Any] = []
        with lane(on) as counted:
            cell = CellLogic(None, s, cal, metas.get, 900.0, float(s.lateness_s))
            for k in range(0, len(readings), 50):
                if k == 4000:  # the registry reloaded: new entries, one with a new voltage
                    metas = {m: e.model_copy() for m, e in metas.items()}
                    metas["m0"] = metas["m0"].model_copy(update={"nominal_voltage_v": 240.0})
                    cell._kept.lookup = metas.get
                out.extend(cell.on_batch([ReadingBatch("c1", tuple(readings[k:k + 50]),
                                                       "p0")])[0])
        results.append((out, cell.snapshot()))
        if on:
            assert cell.lane is not None
            assert cell.lane.metas[cell.watch.slot["m0"]] is metas["m0"]
            assert counted["each"] < 0.2 * len(readings)
    assert results[0] == results[1]


@contextmanager
def closes_counted() -> Iterator[dict[str, int]]:
    """Counts the days closed by the compiled kernel in a cell's lane (``lane``), by the
    kernel through the per-reading path (``step``), and by Python (``python``)."""
    from gridwatch.models import _daily

    counted = {"lane": 0, "step": 0, "python": 0}
    real_closed, real_turn = _daily.closed_profile, _daily.turn_day
    real_done = CellLogic._lane_done
    in_lane = [False]

    def closed(*args: Any) -> Any:
        counted["lane" if in_lane[0] else "step"] += 1
        return real_closed(*args)

    def turn(*args: Any) -> Any:
        counted["python"] += 1
        return real_turn(*args)

    def done(self: CellLogic, *args: Any) -> Any:
        in_lane[0] = True
        try:
            return real_done(self, *args)
        finally:
            in_lane[0] = False

    _daily.closed_profile, _daily.turn_day = closed, turn  # type: ignore[assignment]
    CellLogic._lane_done = done  # type: ignore[method-assign]
    try:
        yield counted
    finally:
        _daily.closed_profile, _daily.turn_day = real_closed, real_turn  # type: ignore[assignment]
        CellLogic._lane_done = real_done  # type: ignore[method-assign]


def test_a_days_close_takes_the_lane() -> None:
    """Two weeks of household meters read every 15 minutes from 20 February, in batches of
    64: the first reading of each local day closes the day before in the lane's kernel (its
    profile made from the close buffer), with the same outputs and states as the full path
    alone, whose every close is Python's. The month changes (month-on-month growth from
    March on); half the meters peak at midnight instead of the evening, so that a day's
    first reading is often its highest (the day's extremes and record peak start from it).
    Daily thresholds near the usual (a day at 0.95 of its energy
    is low, at 1.15 high) let three meters' days start daily runs from day 6, too small a
    change for the band: two at 0.88 of their load with its shape, one at 1.25. Their
    closes are Python's (a run starts or goes on), and raise possible theft (a candidate for
    the segment's judge) and a level shift."""
    days = 14
    rng = np.random.default_rng(7)
    noise = rng.normal(1.0, 0.03, (96 * days, 20))

    def faults(k: int, i: int, kw: float) -> float:
        if i >= 10:  # (the peak at midnight)
            kw = 1.0 + 0.8 * math.exp(-((min(k % 96, 96 - k % 96) / 8) ** 2)) + 0.01 * i
        kw *= noise[k, i]
        if k // 96 >= 6:
            kw *= {1: 0.88, 2: 0.88, 3: 1.25}.get(i, 1.0)
        return round(kw, 3)

    s = DetectionSettings(warmup_h=2, daily_min_days=3, theft_ratio=0.95, level_ratio=1.15,
                          theft_days=3, level_days=3)
    readings = _evening_peaks(20, 96 * days, 900.0, faults,
                              datetime(2026, 2, 20, tzinfo=UTC).timestamp())
    batches = [("c1", readings[k:k + 64]) for k in range(0, len(readings), 64)]
    with closes_counted() as full_closes, full_path_only():
        full = run_cells(batches, {}, s, on=False)
    with closes_counted() as on_closes:
        on = run_cells(batches, {}, s, on=True)
    assert on[0] == full[0]
    assert on[1] == full[1]
    events = [o.event if isinstance(o, logic.TheftCandidate) else o for o in on[0]]
    fired = {(str(e.type), (e.evidence or {}).get("kind"), e.meter_id) for e in events
             if getattr(e, "state", None) == "firing"}
    assert fired == {("possible_theft", None, "m1"), ("possible_theft", None, "m2"),
                     ("abnormal_consumption", "level_shift_up", "m3")}, fired
    # every meter starts each day (the first without a day before to close: in the kernel,
    # the first reading sets up its day), all in Python on the full path
    assert full_closes == {"lane": 0, "step": 0, "python": 20 * days}
    profiles = [o for o in on[0] if type(o).__name__ == "DailyProfile"]
    assert len(profiles) == 20 * (days - 1)
    assert sum(p.mom_growth is not None for p in profiles) >= 20 * 4
    assert sum(on_closes.values()) == 20 * (days - 1)
    # measured: 239 of the 260 closes in the lane, 21 in Python (the days of the three
    # meters' runs)
    assert on_closes["lane"] >= 0.8 * 20 * (days - 1), on_closes
    assert run_cells(batches, {}, s, on=True, fields=True) == on
