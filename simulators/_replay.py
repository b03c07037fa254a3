"""Replay recorded meter data from CSV files, with a column mapping.

For example the Numenta Anomaly Benchmark files (``timestamp,value``, one series per file:
``ColumnMap(kw="value")`` and the meter id taken from the file name), or a utility's export with
``meter_id,timestamp,kw,kwh,...`` columns. Rows that do not make a valid :class:`Reading` are
counted per reason and skipped, never silently.
"""

from __future__ import annotations

import csv
import gzip
import heapq
import json
import re
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any
from zoneinfo import ZoneInfo

from pydantic import ValidationError

from gridwatch._schemas import Reading
from gridwatch.simulators._anomalies import Label
from gridwatch.simulators._targets import Row

_BAD_ID = re.compile(r"[^A-Za-z0-9_.:\-]")


def open_text(path: Path) -> IO[str]:
    """A CSV file for reading, gzip-compressed when its name ends in ``.gz``."""
    if path.suffix.lower() == ".gz":
        return gzip.open(path, "rt", newline="", encoding="utf-8")
    return path.open(newline="", encoding="utf-8")


def meter_id_from(path: Path) -> str:
    """A valid meter id from a file name (``ec2_cpu_utilization_5f5533.csv`` → the stem,
    ``site.csv.gz`` → ``site``)."""
    if path.suffix.lower() == ".gz":
        path = path.with_suffix("")
    stem = _BAD_ID.sub("_", path.stem).lstrip("_.:-") or "meter"
    return stem[:64]


@dataclass(frozen=True)
class ColumnMap:
    """Which CSV column holds what. Unset optional columns are not read.

    ``scale`` multiplies the power column (``0.001`` for W); naive timestamps are in
    ``timezone``; ``time_format`` is a ``strptime`` format (default: ISO 8601)."""

    timestamp: str = "timestamp"
    kw: str = "value"
    meter_id: str | None = None
    kwh: str | None = None
    voltage: str | None = None
    pf: str | None = None
    scale: float = 1.0
    timezone: str = "UTC"
    time_format: str | None = None

    @classmethod
    def parse(cls, text: str) -> ColumnMap:
        """From ``"timestamp=ts,kw=value,scale=0.001"`` (keys are the field names)."""
        names = {f.name for f in fields(cls)}
        kwargs: dict[str, Any] = {}
        for part in filter(None, (p.strip() for p in text.split(","))):
            key, sep, value = part.partition("=")
            key = key.strip()
            if not sep or key not in names:
                raise ValueError(
                    f"column mapping {part!r}: use key=column with key one of "
                    f"{', '.join(sorted(names))}")
            kwargs[key] = float(value) if key == "scale" else value.strip()
        try:
            ZoneInfo(kwargs.get("timezone", "UTC"))
        except (KeyError, ValueError):
            raise ValueError(f"column mapping: unknown time zone {kwargs['timezone']!r}") from None
        return cls(**kwargs)

    @classmethod
    def sniff(cls, path: Path) -> ColumnMap:
        """The mapping a header suggests: ``meter_id`` when present, ``kw`` or else ``value``
        for the power, ``timestamp`` (or ``ts``) for the time."""
        with open_text(path) as fh:
            header = next(csv.reader(fh), [])
        names = {h.strip() for h in header}
        return cls(timestamp="ts" if "ts" in names and "timestamp" not in names else "timestamp",
                   kw="kw" if "kw" in names else "value",
                   meter_id="meter_id" if "meter_id" in names else None)


@dataclass
class Replay:
    """Recorded readings from CSV files, merged into one time-ordered stream.

    ``skipped`` counts the rows that were dropped, by reason."""

    paths: Sequence[Path]
    columns: ColumnMap = ColumnMap()
    #: Move every timestamp so that the earliest one lands here (for live demos).
    shift_to: datetime | None = None
    region: str = "replay"
    skipped: Counter[str] = field(default_factory=Counter)
    meter_ids: set[str] = field(default_factory=set)
    first_problem: str | None = None

    def _parse_ts(self, text: str) -> datetime:
        c = self.columns
        ts = (datetime.strptime(text, c.time_format) if c.time_format
              else datetime.fromisoformat(text.strip().replace("Z", "+00:00")))
        if ts.tzinfo is None:
            ts = ts.replace(tzinfo=ZoneInfo(c.timezone))
        return ts.astimezone(UTC)

    def _file(self, path: Path, offset: timedelta) -> Iterator[Reading]:
        c = self.columns
        file_meter = meter_id_from(path)
        with open_text(path) as fh:
            reader = csv.DictReader(fh)
            missing = [col for col in (c.timestamp, c.kw, c.meter_id, c.kwh, c.voltage, c.pf)
                       if col and col not in (reader.fieldnames or ())]
            if missing:
                raise ValueError(f"{path}: no column(s) {missing} (columns are "
                                 f"{reader.fieldnames})")
            for line, row in enumerate(reader, start=2):
                try:
                    data: dict[str, Any] = {
                        "meter_id": row[c.meter_id] if c.meter_id else file_meter,
                        "ts": self._parse_ts(row[c.timestamp]) + offset,
                        "kw": float(row[c.kw]) * c.scale,
                    }
                    for key, col in (("kwh", c.kwh), ("voltage", c.voltage), ("pf", c.pf)):
                        if col and row[col] not in ("", None):
                            data[key] = float(row[col])
                    reading = Reading.model_validate(
                        data, context={"max_future": timedelta.max})
                except (ValueError, TypeError, ValidationError) as exc:
                    reason = ("invalid" if isinstance(exc, ValidationError)
                              else "unparsable")
                    self.skipped[f"{reason}: {path.name}"] += 1
                    if self.skipped.total() == 1:
                        self.first_problem = f"{path}:{line}: {exc}"
                    continue
                self.meter_ids.add(reading.meter_id)
                yield reading

    def _first_ts(self, path: Path) -> datetime | None:
        with open_text(path) as fh:
            for row in csv.DictReader(fh):
                try:
                    return self._parse_ts(row[self.columns.timestamp])
                except (ValueError, KeyError):
                    continue
        return None

    def offset(self) -> timedelta:
        """How far every timestamp moves (zero unless ``shift_to`` is set)."""
        if self.shift_to is None:
            return timedelta(0)
        firsts = [t for t in map(self._first_ts, self.paths) if t is not None]
        return self.shift_to - min(firsts) if firsts else timedelta(0)

    def readings(self) -> Iterator[Reading]:
        """All readings of all files, in time order (stable per file)."""
        offset = self.offset()
        streams = [self._file(p, offset) for p in self.paths]
        return heapq.merge(*streams, key=lambda r: r.ts)

    def chunks(self, size: int = 1000) -> Iterator[tuple[datetime, list[Row]]]:
        """Rows for the targets, grouped by timestamp (at most ``size`` per chunk)."""
        chunk: list[Row] = []
        ts: datetime | None = None
        for r in self.readings():
            if chunk and (r.ts != ts or len(chunk) >= size):
                assert ts is not None
                yield ts, chunk
                chunk = []
            ts = r.ts
            chunk.append((self.region, self.region, r.meter_id, r.to_json_dict()))
        if chunk and ts is not None:
            yield ts, chunk


def nab_labels(windows_file: Path, paths: Iterable[Path],
               offset: timedelta = timedelta(0)) -> list[Label]:
    """The NAB anomaly windows (``labels/combined_windows.json``) of the given data files, as
    labels of type ``abnormal_consumption`` (shape ``nab_window``), moved by ``offset`` (see
    :meth:`Replay.offset`)."""
    windows: dict[str, list[list[str]]] = json.loads(windows_file.read_text())
    by_name = {Path(k).name: v for k, v in windows.items()}
    out = []
    for path in paths:
        for start, end in by_name.get(path.name, []):
            out.append(Label(
                meter_id=meter_id_from(path), type="abnormal_consumption", shape="nab_window",
                start=datetime.fromisoformat(start).replace(tzinfo=UTC) + offset,
                end=datetime.fromisoformat(end).replace(tzinfo=UTC) + offset))
    return sorted(out, key=lambda lb: (lb.start, lb.meter_id))
