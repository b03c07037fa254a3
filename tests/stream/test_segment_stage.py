"""The segment stage of a replay whose processes run apart: the processes hand over their
meters' finished days and theft candidates, and the parent runs one segment stage over all
of them in the order of the days (``gridwatch._replay_cluster``)."""

from __future__ import annotations

import random
import zlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from bytewax.testing import TestingSink, TestingSource, run_main
from hypothesis import given, settings
from hypothesis import strategies as st

from gridwatch import Event, Reading, Settings
from gridwatch._replay_cluster import DaysOut, _segments, day_order, read_days
from gridwatch.models import DailyProfile
from gridwatch.stream import Sinks, build_flow
from gridwatch.stream._logic import TheftCandidate

T0 = datetime(2024, 4, 8, tzinfo=UTC)
METERS = [f"H-{i}" for i in range(18)] + ["T-1"]


def _readings() -> list[Reading]:
    """Eleven days of 19 households, half-hourly, two daily shapes; from the sixth day on,
    T-1's load is a third of its usual (a bypass: the same shape, scaled)."""
    out = []
    for i in range(11 * 48):
        ts = T0 + timedelta(minutes=30 * i)
        hour, day = (i % 48) / 2, i // 48
        for k, m in enumerate(METERS):
            if k % 2:
                kw = 0.3 + (1.2 if 17 <= hour < 22 else 0.0)
            else:
                kw = 0.2 + (0.9 if 8 <= hour < 18 else 0.0)
            kw *= 1 + 0.08 * (((i * 13 + k * 7) % 11) - 5) / 5
            if m == "T-1" and day >= 5:
                kw /= 3
            out.append(Reading(meter_id=m, ts=ts, kw=round(kw, 3)))
    return out


@pytest.fixture(scope="module")
def days(tmp_path_factory: pytest.TempPathFactory) -> list:
    """Every finished day and theft candidate of the readings, as one process hands them on
    (in that order)."""
    out: list = []
    run_main(build_flow(Settings(), TestingSource(_readings(), batch_size=500), Sinks(),
                        snapshots=False, days_out=TestingSink(out)))
    return out


def test_a_process_hands_on_every_finished_day_and_candidate(days: list, tmp_path: Path
                                                             ) -> None:
    profiles = [x for x in days if isinstance(x, DailyProfile)]
    candidates = [x for x in days if isinstance(x, TheftCandidate)]
    assert len(profiles) == 10 * len(METERS)  # each meter's first ten days closed
    assert {c.event.meter_id for c in candidates} == {"T-1"}
    # written to one file with its index and read back in the order of the segment stage:
    # every one, a meter's candidate before its day
    _split(days, 1, 0, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["days.0.index", "days.0.pickle"]
    ordered = list(read_days(tmp_path))
    assert ordered == sorted(days, key=day_order)
    at = ordered.index(candidates[0])
    assert isinstance(ordered[at + 1], DailyProfile) and ordered[at + 1].meter_id == "T-1"


def _split(days: list, n: int, seed: int, directory: Path) -> Path:
    """The days as ``n`` processes hand them on to ``directory``: each meter's in one process
    (by a seeded hash), in their own order, in batches of any size."""
    def share(meter_id: str) -> int:
        return zlib.crc32(f"{seed}:{meter_id}".encode()) % n

    def meter(x: object) -> str:
        return x.event.meter_id if isinstance(x, TheftCandidate) else x.meter_id  # type: ignore[attr-defined]

    for i in range(n):
        sink = DaysOut(directory, i).build("days", 0, 1)
        mine = [x for x in days if share(meter(x)) == i]
        rng = random.Random(seed + i)
        while mine:  # in batches of any size, as the dataflow's epochs give them
            k = rng.randint(1, 40)
            sink.write_batch(mine[:k])
            mine = mine[k:]
        sink.close()
    return directory


@settings(max_examples=8, deadline=None)
@given(n=st.integers(1, 4), seed=st.integers(0, 10_000))
def test_the_segment_stage_writes_the_same_events_however_the_days_were_split(
        days: list, tmp_path_factory: pytest.TempPathFactory, n: int, seed: int) -> None:
    """Whichever process each meter was in, and in whatever batches the processes handed
    their days on, the one segment stage writes the same events, byte for byte, a possible
    theft judged by its segment among them."""
    whole = tmp_path_factory.mktemp("whole") / "events.jsonl"
    fired, _ = _segments(Settings(), _split(days, 1, 0, whole.parent / "days"), False,
                         whole, 1)
    assert fired["possible_theft"] == 1
    events = [Event.model_validate_json(x) for x in whole.read_text().splitlines()]
    assert [(e.meter_id, e.type, e.state) for e in events] == [
        ("T-1", "possible_theft", "firing")]
    out = tmp_path_factory.mktemp("split") / "events.jsonl"
    _segments(Settings(), _split(days, n, seed, out.parent / "days"), False, out, n)
    assert out.read_bytes() == whole.read_bytes()


def test_the_segment_stage_says_how_far_it_is(days: list, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """The user is told when the segment stage starts, and then how far it is (every
    ``_SAY_EVERY_S`` seconds; here every day)."""
    from gridwatch import _replay_cluster

    said: list[str] = []
    monkeypatch.setattr(_replay_cluster, "_SAY_EVERY_S", 0.0)
    got = list(read_days(_split(days, 2, 1, tmp_path), _replay_cluster._told(said.append)))
    assert len(got) == len(days)
    assert said == ["segment stage: the meter-days of 10 days, from every process, in the "
                    "order of the days"] + [f"segment stage: day {k} of 10" for k in range(2, 11)]
    said.clear()
    monkeypatch.setattr(_replay_cluster, "_SAY_EVERY_S", 3600.0)
    list(read_days(tmp_path, _replay_cluster._told(said.append)))
    assert len(said) == 1  # the start only, within the hour


def test_days_without_their_index_are_refused(days: list, tmp_path: Path) -> None:
    """A process whose dataflow did not end wrote no index: its days are not read as if
    they were all there."""
    _split(days, 2, 0, tmp_path)
    (tmp_path / "days.1.index").unlink()  # (process 1 died before its sink's close)
    with pytest.raises(ValueError, match="has no index"):
        list(read_days(tmp_path))
