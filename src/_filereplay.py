"""Replaying a readings file through the engine's dataflow with no broker and no database,
for the measuring commands (``evaluate``, ``falsealarms``) and the benchmarks.

The file is read as the dataflow goes (never held in memory as readings); what is kept is every
event and each meter's reading times and kW, which the measurements need.
"""

from __future__ import annotations

import gzip
import zlib
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from gridwatch._schemas import DeviceTelemetry, Event, MeterMeta, Reading

__all__ = [
    "Progress",
    "ReplayRun",
    "count_lines",
    "half_of",
    "infer_interval",
    "meter_meta_from",
    "registry_lookups",
    "replay_file",
    "warn_late",
    "with_interval",
]


def count_lines(path: Path) -> int:
    """Data lines of a readings file (for a progress bar); gzip is read through."""
    opener: Any = gzip.open if path.suffix.lower() == ".gz" else open
    n = 0
    with opener(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            n += block.count(b"\n")
    return max(n - (1 if _kind(path) == ".csv" else 0), 0)


def _kind(path: Path) -> str:
    p = path.with_suffix("") if path.suffix.lower() == ".gz" else path
    return p.suffix.lower()


def infer_interval(path: Path, sample: int = 50_000) -> int | None:
    """The most common step between a meter's consecutive readings in the first ``sample``
    readings of the file, in seconds (``None`` if there are none)."""
    from gridwatch.ingest import iter_readings_file

    last: dict[str, float] = {}
    steps: Counter[int] = Counter()
    for i, item in enumerate(iter_readings_file(path)):
        if i >= sample:
            break
        if not isinstance(item, Reading):
            continue
        t = item.ts.timestamp()
        prev = last.get(item.meter_id)
        if prev is not None and t > prev:
            steps[round(t - prev)] += 1
        last[item.meter_id] = t
    return steps.most_common(1)[0][0] if steps else None


@dataclass
class ReplayRun:
    """What a replay of a file raised, with each meter's reading times and kW (in time
    order)."""

    events: list[Event]
    times: dict[str, np.ndarray]
    kw: dict[str, np.ndarray]
    readings: int
    rejected: Counter[str]
    #: readings more than ``detection.lateness_s`` older than the newest before them (a file
    #: not in time order: silence is then judged against the wrong watermark)
    late: int = 0
    #: apparent power (kW over the reading's power factor, unit when it has none), for the
    #: over-capacity lead time
    kva: dict[str, np.ndarray] = field(default_factory=dict)
    #: device telemetry records in the file (replayed only with the registry's devices)
    telemetry: int = 0
    #: each replayed device's first and last telemetry time (epoch seconds)
    device_span: dict[str, tuple[float, float]] = field(default_factory=dict)

    def meter_days(self, meters: Iterable[str] | None = None) -> float:
        """Observed meter-days: per meter, first to last reading."""
        keys = self.times if meters is None else [m for m in meters if m in self.times]
        return sum(float(self.times[m][-1] - self.times[m][0]) / 86_400 for m in keys
                   if len(self.times[m]))

    def device_days(self) -> float:
        """Observed device-days: per replayed device, first to last telemetry record."""
        return sum(b - a for a, b in self.device_span.values()) / 86_400


def half_of(meter_id: str) -> str:
    """``tune`` or ``held``: the stable half of a data set a meter belongs to (CRC-32 of its id,
    even or odd). Tune detectors on one half and report them on the other."""
    return "tune" if zlib.crc32(meter_id.encode()) % 2 == 0 else "held"


def replay_file(settings: Any, path: Path,
                meta: Mapping[str, MeterMeta] | Callable[[str], MeterMeta | None] | None = None,
                on_progress: Callable[[int, datetime], None] | None = None,
                every: int = 10_000, keep: Callable[[str], bool] | None = None,
                devices: Callable[[str], Any] | None = None) -> ReplayRun:
    """Run the engine's dataflow over ``path`` (read as it goes, never all in memory) and keep
    every event and each meter's reading times. ``on_progress(readings, event time)`` is called
    every ``every`` readings. With ``keep``, only the meters it accepts are replayed.
    ``devices``: the registry's device facts; with them, the file's device telemetry goes
    through the device steps too (without, it is skipped and counted in ``telemetry``)."""
    from bytewax.testing import TestingSink, TestingSource, run_main

    from gridwatch.ingest import iter_readings_file
    from gridwatch.stream import Sinks, build_flow

    times: dict[str, list[float]] = defaultdict(list)
    kws: dict[str, list[float]] = defaultdict(list)
    kvas: dict[str, list[float]] = defaultdict(list)
    rejected: Counter[str] = Counter()
    count = [0]
    late = [0]
    newest = [float("-inf")]
    lateness = float(settings.detection.lateness_s)

    telemetry = [0]
    span: dict[str, tuple[float, float]] = {}

    def items() -> Iterator[Reading | DeviceTelemetry]:
        for item in iter_readings_file(path):
            if isinstance(item, DeviceTelemetry):
                telemetry[0] += 1
                if devices is not None and (keep is None or keep(item.device_id)):
                    t = item.ts.timestamp()
                    a, b = span.get(item.device_id, (t, t))
                    span[item.device_id] = (min(a, t), max(b, t))
                    yield item
                continue
            if not isinstance(item, Reading):
                if hasattr(item, "reason"):
                    rejected[item.reason] += 1
                continue
            if keep is not None and not keep(item.meter_id):
                continue
            t = item.ts.timestamp()
            if t < newest[0] - lateness:
                late[0] += 1
            newest[0] = max(newest[0], t)
            times[item.meter_id].append(t)
            kws[item.meter_id].append(item.kw)
            # apparent power as the capacity check sees it (power factor at least 0.5)
            kvas[item.meter_id].append(
                item.kw / max(abs(item.pf), 0.5) if item.pf is not None else item.kw)
            count[0] += 1
            if on_progress is not None and count[0] % every == 0:
                on_progress(count[0], item.ts)
            yield item

    out: list[Any] = []
    flow = build_flow(settings, TestingSource(items(), batch_size=1000),
                      Sinks(events=TestingSink(out)), meta, devices=devices)
    run_main(flow)
    order = {m: np.argsort(np.asarray(v), kind="stable") for m, v in times.items()}
    return ReplayRun(
        events=[x for x in out if isinstance(x, Event)],
        times={m: np.asarray(v)[order[m]] for m, v in times.items()},
        kw={m: np.asarray(v)[order[m]] for m, v in kws.items()},
        kva={m: np.asarray(v)[order[m]] for m, v in kvas.items()},
        readings=count[0], rejected=rejected, late=late[0], telemetry=telemetry[0],
        device_span=span)


def with_interval(settings: Any, interval_s: int) -> Any:
    """``settings`` with ``detection.interval_s`` set."""
    det = settings.detection.model_copy(update={"interval_s": int(interval_s)})
    return settings.model_copy(update={"detection": det})


def registry_lookups(settings: Any, registry: Path | None
                     ) -> tuple[Callable[[str], MeterMeta | None] | None,
                                Callable[[str], Any] | None]:
    """Meter facts and device facts from ``registry``, else from the settings' registry when
    it exists (read once); the device facts are None when the registry lists no device."""
    from gridwatch.alerts import Registry

    path = registry if registry is not None else Path(settings.alerts.registry)
    if registry is None and not path.exists():
        return None, None
    reg = Registry.load(path)
    return reg.meta_table().get, (reg.device if reg.devices else None)


def meter_meta_from(settings: Any, registry: Path | None
                    ) -> Callable[[str], MeterMeta | None] | None:
    """Meter facts from ``registry``, else from the settings' registry when it exists."""
    return registry_lookups(settings, registry)[0]


class Progress:
    """Progress of a long replay on stderr: a bar on a terminal, else a line every
    ``every_s`` seconds (logs of batch jobs)."""

    def __init__(self, console: Any, total: int, title: str = "replay",
                 every_s: float = 30.0, unit: str = "readings") -> None:
        import time

        self.console = console
        self.title = title
        self.unit = unit
        self.total = total
        self.every_s = every_s
        self._clock = time.monotonic
        self._t0 = self._clock()
        self._last = self._t0
        self._bar: Any = None
        if console.is_terminal:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )
            from rich.progress import Progress as Bar

            self._bar = Bar(TextColumn(f"[bold]{title}"), BarColumn(), MofNCompleteColumn(),
                            TextColumn("{task.fields[at]}"), TimeElapsedColumn(),
                            TimeRemainingColumn(), console=console)
            self._task = self._bar.add_task(title, total=total, at="")

    def __enter__(self) -> Progress:
        if self._bar is not None:
            self._bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.update(self._task, completed=self.total)
            self._bar.stop()

    def __call__(self, n: int, ts: datetime) -> None:
        if self._bar is not None:
            self._bar.update(self._task, completed=n, at=ts.strftime("%Y-%m-%d"))
            return
        now = self._clock()
        if now - self._last >= self.every_s:
            self._last = now
            rate = n / max(now - self._t0, 1e-9)
            left = (self.total - n) / rate if rate > 0 else 0.0
            self.console.print(f"{self.title}: {n:,} of {self.total:,} {self.unit} "
                               f"({n / max(self.total, 1):.0%}), at {ts:%Y-%m-%d}, "
                               f"{rate:,.0f}/s, about {left:,.0f} s left", highlight=False)


def warn_late(console: Any, run: ReplayRun, path: Path) -> None:
    """A warning when the file was not in time order."""
    if run.late:
        console.print(f"[yellow]warning:[/] {run.late:,} readings of {path} came more than "
                      "detection.lateness_s behind the newest reading before them: sort the "
                      "file by time (silence is judged at the event-time watermark)")

