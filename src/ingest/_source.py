"""Bytewax inputs: the journal (live or replay) and readings files (CSV or JSONL).

Both are ``FixedPartitionedSource`` s whose snapshot is the position of the next read: the next
journal offset, or the number of file lines consumed. With bytewax recovery on, a restarted
dataflow resumes there, so a crash loses nothing and redoes at most the last epoch.
``next_batch`` never blocks: it returns what is there (possibly nothing) and ``next_awake``
spaces out the polls when there was nothing.
"""

from __future__ import annotations

import csv
import gzip
import json
import logging
import math
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec
from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition
from pydantic import ValidationError

from gridwatch._schemas import DeviceTelemetry, Reading
from gridwatch.ingest._assemble import ReadingFields, reading_of_fields
from gridwatch.ingest._config import IngestSettings
from gridwatch.ingest._csvrows import FastRows
from gridwatch.ingest._deadletter import DeadLetter, DeadLetters
from gridwatch.ingest._decode import (
    INVALID_JSON,
    INVALID_UTF8,
    SCHEMA,
    DecodeError,
    Decoder,
    Item,
    describe_validation,
    micros,
)
from gridwatch.ingest._journal import (
    DEFAULT_HANDOVER_ITEMS,
    Journal,
    compact_readings,
    decode_record,
    journal_partitions,
    rebuild_fields,
    recent_items,
    release_recent_items,
)
from gridwatch.ingest._metrics import IngestMetrics

__all__ = ["FileShare", "FileSource", "JournalSource", "Rejected", "check_readings_file",
           "iter_readings_file", "replay_source"]

log = logging.getLogger("gridwatch.ingest.source")

_PART_PREFIX = "p"
#: About the most bytes a reading's record takes (a three-phase reading with its status is
#: about 250, a common one 120-160): a read of the journal stops at ``batch_size`` records
#: or this many bytes a record wanted, so a read of batch records (a message's readings in
#: one record) brings about as many readings as a read of reading records.
READING_BYTES = 200


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _part_name(partition: int) -> str:
    return f"{_PART_PREFIX}{partition:04d}"


# -- the journal ------------------------------------------------------------------------------
class _JournalPartition(StatefulSourcePartition[Item, int]):
    def __init__(self, source: JournalSource, partition: int, resume: int | None) -> None:
        self.source = source
        self.partition = partition
        self.journal = Journal(source.journal_dir, partition, readonly=True)
        #: what a writer of the partition in this process appended last (a live engine's
        #: collector): records it wrote are taken as the items it validated, not decoded
        self.recent = (recent_items(source.journal_dir, partition, source.handover_items)
                       if source.follow and source.handover_items > 0 else None)
        self.next_offset = resume if resume is not None else self.journal.start_offset
        self._lag_at = -math.inf  # when the lag gauge last scanned the journal's end
        self._idle = False
        self.undecodable = 0
        #: how much of ``recent.compacted`` the metrics have counted (the hand-over may
        #: outlive a partition of an earlier run in this process)
        self._compacted = self.recent.compacted if self.recent is not None else 0
        self._dead: DeadLetters | None = None

    def next_batch(self) -> list[Item]:
        records = self.journal.read(self.next_offset, self.source.batch_size,
                                    self.source.batch_size * READING_BYTES)
        if not records:
            known = self._known_end() if self.source.follow else None
            end = known if known is not None else self.journal.end_offset
            self._set_lag(end)
            if not self.source.follow:
                if self.next_offset < end:
                    log.error("journal p%d: replay stops at offset %d, before the end %d: "
                              "the record there is damaged", self.partition, self.next_offset,
                              end)
                raise StopIteration
            self._idle = True
            return []
        self._idle = False
        items: list[Item] = []
        letters: list[DeadLetter] = []
        known = None
        if self.recent is not None:
            before = self.recent.hits
            known = self.recent.take(records)
            if self.source.metrics is not None:
                hits = self.recent.hits - before
                label = str(self.partition)
                self.source.metrics.handover_hits.labels(label).inc(hits)
                self.source.metrics.handover_misses.labels(label).inc(len(known) - hits)
                compacted = self.recent.compacted  # (grows in the collector's thread)
                self.source.metrics.handover_compacted.labels(label).inc(
                    compacted - self._compacted)
                self._compacted = compacted
        if known is None or not any(known):
            # every record to decode (the engine of the process layout, or a hand-over that
            # kept none of them): first as one run, where each is in the collector's form
            given = rebuild_fields([data for _offset, data in records])
            if given is None:
                self._decode_each(records, None, items, letters)
            elif self.source.as_fields is True:
                self._read_up_to(records[-1][0], len(given))
                return [ReadingFields(given)]
            else:
                items = ReadingFields(given).readings()
        else:
            self._decode_each(records, known, items, letters)
        if letters and self.source.deadletter_dir is not None:
            if self._dead is None:
                self._dead = DeadLetters(self.source.deadletter_dir,
                                         self.source.deadletter_partition_base + self.partition)
            self._dead.put_many(letters)
        self._read_up_to(records[-1][0], len(items))
        return items

    def _read_up_to(self, offset: int, accepted: int) -> None:
        """The partition read up to record ``offset``, ``accepted`` readings of it."""
        self.next_offset = offset + 1
        self.source.accepted += accepted
        if self.source.metrics is not None:
            self._update_lag()

    def _decode_each(self, records: list[tuple[int, bytes]], known: list[Any] | None,
                     items: list[Item], letters: list[DeadLetter]) -> None:
        """Each record's item, from the hand-over (``known``) or decoded; a record that is not
        a reading goes to ``letters`` with its reason, counted, and the read goes on."""
        for i, (offset, data) in enumerate(records):
            if known is not None:
                item = known[i]
                if item is not None:
                    items.append(item)
                    continue
            try:
                items += decode_record(data)
            except ValueError as exc:
                reason, detail = _record_error(exc)
                self.undecodable += 1
                self.source.rejected_by_reason[reason] += 1
                log.error("journal p%d offset %d is not a reading (%s): %s", self.partition,
                          offset, reason, detail)
                letters.append(DeadLetter(reason, f"journal:{_part_name(self.partition)}",
                                          data, f"offset {offset}: {detail}",
                                          self.source.clock(), offset))

    def _update_lag(self) -> None:
        """The lag gauge after a batch: from the end known without a look at the disk, else
        from a scan of the journal's end (which reads and checks every record ahead of the
        reader: the reader does it again when it gets there) at most every ``lag_every_s``
        seconds."""
        end = self._known_end()
        if end is not None:
            self._set_lag(end)
            return
        now = time.monotonic()
        if now - self._lag_at >= self.source.lag_every_s:
            self._lag_at = now
            self._set_lag(self.journal.end_offset)

    def _known_end(self) -> int | None:
        """The partition's end as its writer knows it, with no look at the disk: the
        collector's in this process (from what it handed over), else what a writer in another
        process last told (the engine's collector process); None when neither knows it."""
        recent = self.recent
        if recent is not None and recent.end:
            return recent.end
        told = self.source.journal_end
        return told(self.partition) if told is not None else None

    def _set_lag(self, end: int) -> None:
        if self.source.metrics is not None:
            lag = max(0, end - self.next_offset)
            self.source.metrics.consumer_lag.labels(str(self.partition)).set(lag)

    def next_awake(self) -> datetime | None:
        if self._idle:
            return self.source.clock() + self.source.poll_interval
        return None

    def snapshot(self) -> int:
        return self.next_offset

    def close(self) -> None:
        self.journal.close()
        if self.recent is not None:
            release_recent_items(self.source.journal_dir, self.partition)
            self.recent = None
        if self._dead is not None:
            self._dead.close()


def _record_error(exc: ValueError) -> tuple[str, str]:
    """(reason, detail) of a journal record that is not a reading."""
    if isinstance(exc, ValidationError):
        first = exc.errors(include_url=False)[0]
        if first["type"] == "json_invalid":
            return INVALID_JSON, first["msg"]
        return describe_validation(exc)
    return SCHEMA, str(exc)


class JournalSource(FixedPartitionedSource[Item, int]):
    """Reads journal partitions; its partitions are the journal's, its state the next offset.

    ``partitions=None`` takes every partition present under ``journal_dir`` when the dataflow
    starts. ``follow=False`` ends each partition at the end of what is written (replay).
    A record that is not a reading is counted by reason in ``rejected_by_reason``, logged, and
    kept in ``deadletter_dir`` (a :class:`DeadLetters` store, one partition per journal
    partition) when given. A following source takes the records that a collector in this
    process appended last as the items it validated (at most ``handover_items`` per partition
    are kept for it, ``ingest.handover_items``; 0: decode every record), and counts them in
    ``metrics`` (``gridwatch_ingest_handover_hits`` and ``_misses``). The lag gauge
    (``gridwatch_ingest_consumer_lag``) follows that collector's end after every batch; else
    the end ``journal_end(partition)`` tells, when it tells one (the engine's collector
    process publishes its journal's end in shared memory: the records ahead of the reader
    are not read twice); else a scan of the journal's end at most every ``lag_every_s``
    seconds while the partition reads (and at every poll when it is idle).
    """

    def __init__(
        self,
        journal_dir: Path,
        partitions: list[int] | None = None,
        *,
        follow: bool = True,
        batch_size: int = 1000,
        poll_interval: timedelta = timedelta(milliseconds=100),
        metrics: IngestMetrics | None = None,
        clock: Callable[[], datetime] = _utc_now,
        deadletter_dir: Path | None = None,
        deadletter_partition_base: int = 0,
        handover_items: int = DEFAULT_HANDOVER_ITEMS,
        lag_every_s: float = 1.0,
        journal_end: Callable[[int], int | None] | None = None,
        as_fields: bool | None = None,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if handover_items < 0:
            raise ValueError(f"handover_items must be >= 0, got {handover_items}")
        self.handover_items = handover_items
        #: how often, at most, a partition with no collector in this process scans the
        #: journal's end for ``gridwatch_ingest_consumer_lag`` while it reads
        self.lag_every_s = lag_every_s
        #: a partition's end as its writer in another process tells it (None: not told)
        self.journal_end = journal_end
        #: a read of reading records all in the collector's form comes as one
        #: :class:`ReadingFields` item: the dataflow's summarized source asks for it (None:
        #: as the consumer asks, else readings) and groups the fields per cell, and only the
        #: readings that need one become objects; False keeps readings for any consumer
        self.as_fields = as_fields
        self.journal_dir = Path(journal_dir)
        self.partitions = partitions
        self.follow = follow
        self.batch_size = batch_size
        self.poll_interval = poll_interval
        self.metrics = metrics
        self.deadletter_dir = deadletter_dir
        #: Journal partition p keeps its dead letters in partition ``base + p`` of
        #: ``deadletter_dir``: a live engine shares the directory with its collector, whose
        #: partition p has one writer, so it gives a base above every collector partition.
        self.deadletter_partition_base = deadletter_partition_base
        #: The wall clock (UTC) that dates the next poll of an idle partition (and dead letters).
        self.clock = clock
        #: What this process's partitions have read: items, and records that were not items.
        self.accepted = 0
        self.rejected_by_reason: Counter[str] = Counter()

    def list_parts(self) -> list[str]:
        parts = self.partitions
        if parts is None:
            # Before any collector has written, follow partition 0 rather than nothing.
            parts = journal_partitions(self.journal_dir) or [0]
        return [_part_name(p) for p in parts]

    def build_part(self, step_id: str, for_part: str,
                   resume_state: int | None) -> _JournalPartition:
        return _JournalPartition(self, int(for_part[len(_PART_PREFIX):]), resume_state)


# -- readings files ---------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Rejected:
    """A row of a readings file that is not a valid reading: where, why, and the row itself."""

    path: str
    line: int
    reason: str
    detail: str
    raw: bytes

    def to_deadletter(self, now: datetime) -> DeadLetter:
        return DeadLetter(self.reason, f"file:{self.path}", self.raw, self.detail, now, self.line)


_CSV_FIELDS = {
    "meter_id", "kw", "kwh", "export_kwh", "voltage", "current", "pf", "freq", "interval_s",
    "status",
}
_TUPLE_FIELDS = {"voltage", "current", "status"}
#: No timestamp is too far ahead in a file (and no clock is read for it).
_FILE_CTX: dict[str, Any] = {"max_future": timedelta.max}
_NO_STALE_CHECK_S = 1e13  # about 300,000 years


def _csv_row(header: list[str], row: list[str]) -> dict[str, Any]:
    if len(row) != len(header):
        raise _RowError(SCHEMA, f"{len(row)} columns where the header has {len(header)}")
    doc: dict[str, Any] = {}
    for name, value in zip(header, row, strict=True):
        value = value.strip()
        if name in ("timestamp", "ts"):
            doc["ts"] = value
        elif name in _CSV_FIELDS and value != "":
            if name in _TUPLE_FIELDS:
                doc[name] = [v for v in value.split(";") if v]
            else:
                doc[name] = value
    return doc


class _RowError(Exception):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


def _kind(path: Path) -> str:
    """The file's suffix without a trailing ``.gz`` (``x.csv.gz`` → ``.csv``)."""
    p = path.with_suffix("") if path.suffix.lower() == ".gz" else path
    return p.suffix.lower()


@dataclass(frozen=True, slots=True)
class FileShare:
    """The part of a readings file that one process of a parallel replay reads.

    Every process reads the whole file but keeps only the lines whose meter (or device) id
    ``owner`` gives to ``index`` of ``count``; every line is kept by exactly one of them. The id
    is taken from the line before it is read as a reading (the ``meter_id`` column of a CSV
    row, the ``meter_id`` or ``device_id`` member of a JSON line), so a CSV line another
    process keeps costs a split, not a reading. A line whose id cannot be found that way (not
    UTF-8, not JSON, too few columns, no such member) is share 0's, which rejects it or reads
    it as usual: it is counted and dead-lettered once."""

    index: int
    count: int
    owner: Callable[[str], int]

    def __post_init__(self) -> None:
        if not 0 <= self.index < self.count:
            raise ValueError(f"share {self.index} is not one of 0..{self.count - 1}")


class _Ids(msgspec.Struct):
    """The members of a JSON line that say whose it is (any others are skipped unread)."""

    meter_id: Any = None
    device_id: Any = None


_read_ids = msgspec.json.Decoder(_Ids).decode


def _line_owner(share: FileShare, header: list[str] | None) -> Callable[[bytes], int]:
    """The share (0 .. ``count`` - 1) that keeps a raw data line (see :class:`FileShare`)."""
    col = header.index("meter_id") if header is not None else -1
    #: share by the id's raw bytes (a file's lines repeat their meters' ids), and by the id
    by_raw: dict[bytes, int] = {}
    by_id: dict[str, int] = {}
    owner, count = share.owner, share.count

    def id_of(line: bytes) -> str | None:
        """The id as the reader will read it, or None."""
        try:
            if col < 0:  # a JSON line
                try:
                    ids = _read_ids(line)
                    key = ids.meter_id or ids.device_id
                except msgspec.DecodeError:  # (JSON that only Python's reader takes: NaN)
                    doc = json.loads(line)
                    key = (doc.get("meter_id") or doc.get("device_id")
                           if isinstance(doc, dict) else None)
                # (stripped, as the reading's identifiers are)
                return key.strip() if isinstance(key, str) else None
            row = next(csv.reader([line.decode("utf-8")]))  # a quoted field: as CSV reads it
        except (ValueError, csv.Error, StopIteration):  # (UnicodeDecodeError, JSON errors)
            return None
        return row[col].strip() if col < len(row) else None

    def of_id(key: str) -> int:
        got = by_id.get(key)
        if got is None:
            got = by_id[key] = owner(key) % count
        return got

    def of(line: bytes) -> int:
        if col < 0 or b'"' in line:
            key = id_of(line)
            return 0 if key is None else of_id(key)
        fields = line.split(b",", col + 1)  # the common row: the id's bytes, as they are
        if col >= len(fields):
            return 0
        raw = fields[col]
        got = by_raw.get(raw)
        if got is None:
            try:
                got = of_id(raw.decode("utf-8").strip())
            except UnicodeDecodeError:
                got = 0
            by_raw[raw] = got
        return got

    return of


def _csv_header(path: Path, text: str) -> list[str]:
    """The column names of a CSV header line; ``ValueError`` without the needed ones."""
    header = [h.strip().lower() for h in next(csv.reader([text]))]
    missing = {"meter_id", "kw"} - set(header)
    if missing or not ({"timestamp", "ts"} & set(header)):
        raise ValueError(f"{path}: the CSV header must name meter_id, timestamp and kw "
                         f"(got {', '.join(header)})")
    return header


def check_readings_file(path: Path) -> None:
    """``ValueError`` at once, with the reason, for a file no replay can read: not a CSV or
    JSONL readings file by its name, or a CSV whose header lacks the needed columns (a bad
    data line is a rejected row, never an error). ``FileNotFoundError`` when it is missing."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"readings file {path} does not exist")
    if _kind(path) not in (".csv", ".jsonl", ".ndjson", ".json"):
        raise ValueError(f"{path}: expected a .csv or .jsonl readings file "
                         "(or .csv.gz, .jsonl.gz)")
    if _kind(path) != ".csv":
        return
    opener: Any = gzip.open if path.suffix.lower() == ".gz" else open
    with opener(path, "rb") as f:
        for raw in f:
            if raw.strip():
                try:
                    _csv_header(path, raw.rstrip(b"\r\n").decode("utf-8"))
                except UnicodeDecodeError:
                    raise ValueError(f"{path}: the CSV header is not UTF-8") from None
                return


def _numbered(path: Path, share: FileShare | None = None, as_fields: bool = False
              ) -> Iterator[tuple[int, Item | dict[str, Any] | Rejected]]:
    """``(line number, reading or rejection)`` for each data line of a CSV or JSONL file
    (either may be gzip-compressed: ``.csv.gz``, ``.jsonl.gz``); with ``share``, only the
    lines that share keeps (line numbers stay those of the file). ``as_fields``: a CSV row
    of the common form (:class:`FastRows`) is its reading's given fields instead."""
    is_csv = _kind(path) == ".csv"
    header: list[str] | None = None
    mine: Callable[[bytes], int] | None = None
    index = share.index if share is not None else 0
    if share is not None and share.count > 1 and not is_csv:
        mine = _line_owner(share, None)
    # Duplicates only: the bounded per-meter memory of the decoder, no stale check (files are
    # often sorted by meter, not by time).
    memory = Decoder(None, IngestSettings(max_backwards_s=_NO_STALE_CHECK_S))
    fast: FastRows | None = None  # the common CSV row, read without pydantic
    # the last time admitted and its microseconds (the rows of one time share the time's
    # object, read once by the fast rows: a file in time order asks for each time once)
    last_ts: Any = None
    last_key = 0
    opener: Any = gzip.open if path.suffix.lower() == ".gz" else open
    with opener(path, "rb") as f:
        for lineno, raw in enumerate(f, start=1):
            line_bytes = raw.rstrip(b"\r\n")
            if not line_bytes.strip():
                continue
            if mine is not None and mine(line_bytes) != index:
                continue  # another process's line
            try:
                text = line_bytes.decode("utf-8")
                if is_csv and header is None:
                    header = _csv_header(path, text)
                    fast = FastRows.of(header)
                    if share is not None and share.count > 1:
                        mine = _line_owner(share, header)
                    continue
                item: Any = None
                if fast is not None:  # the common CSV row (its fields, when asked)
                    item = fast.fields(text) if as_fields else fast.reading(text)
                elif not is_csv:  # a compact JSON line, read as a compact MQTT payload is
                    got = compact_readings(line_bytes, False)
                    item = got[0] if got else None
                if item is None:
                    item = _parse_line(text, header)
                try:
                    if type(item) is dict:
                        ts = item["ts"]
                        if ts is not last_ts:
                            last_ts, last_key = ts, micros(ts)
                        memory.admit_at(item["meter_id"], ts, last_key)
                    else:
                        memory.admit(item)
                except DecodeError as exc:
                    raise _RowError(exc.reason, exc.detail) from None
                yield lineno, item
            except UnicodeDecodeError as exc:
                yield lineno, Rejected(str(path), lineno, INVALID_UTF8,
                                       f"line {lineno} byte {exc.start}: {exc.reason}", line_bytes)
            except _RowError as exc:
                yield lineno, Rejected(str(path), lineno, exc.reason,
                                       f"line {lineno}: {exc.detail}", line_bytes)


def _parse_line(text: str, header: list[str] | None) -> Item:
    if header is not None:
        try:
            doc: Any = _csv_row(header, next(csv.reader([text])))
        except csv.Error as exc:
            raise _RowError(SCHEMA, f"not a CSV row: {exc}") from None
    else:
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as exc:
            raise _RowError(INVALID_JSON, f"column {exc.colno}: {exc.msg}") from None
        if not isinstance(doc, dict):
            raise _RowError(SCHEMA, f"expected a JSON object, got {type(doc).__name__}")
    try:
        if isinstance(doc, dict) and "device_id" in doc:
            return DeviceTelemetry.model_validate(doc, context=_FILE_CTX)
        return Reading.model_validate(doc, context=_FILE_CTX)
    except ValidationError as exc:
        raise _RowError(*describe_validation(exc)) from None


def iter_readings_file(path: Path) -> Iterator[Item | Rejected]:
    """Every row of a CSV (``meter_id,timestamp,kw`` at least; optional ``kwh``, ``voltage``,
    ``pf`` and the other reading fields, several phases separated by ``;``) or JSONL file (one
    reading in its wire form per line), as a reading or a :class:`Rejected` naming the line and
    the reason. Bad rows never stop the iteration; a CSV without the needed columns raises
    ``ValueError`` at once. Timestamps are not checked against the clock (replays may be of
    simulated futures); a repeated (meter, timestamp) is rejected as a duplicate.
    """
    for _, item in _numbered(Path(path)):
        yield item


class _FilePartition(StatefulSourcePartition[Item, int]):
    def __init__(self, source: FileSource, resume: int | None) -> None:
        self.source = source
        self.done_line = resume or 0
        #: lines before the data (a CSV's header), left out of the progress feed
        self._preamble = int(_kind(source.path) == ".csv")
        self._rows = _numbered(source.path, source.share, source.as_fields is True)
        self.rejected: Counter[str] = Counter()
        self._dead = (
            DeadLetters(source.deadletter_dir, source.deadletter_partition)
            if source.deadletter_dir is not None else None
        )

    def next_batch(self) -> list[Any]:
        items: list[Any] = []
        letters: list[DeadLetter] = []
        now = self.source.clock()
        exhausted = True
        for lineno, item in self._rows:
            if lineno <= self.done_line:
                continue
            self.done_line = lineno
            if isinstance(item, Rejected):
                self.rejected[item.reason] += 1
                self.source.rejected_by_reason[item.reason] += 1
                letters.append(item.to_deadletter(now))
                if self.source.metrics is not None:
                    self.source.metrics.file_rejected.labels(item.reason).inc()
            else:
                items.append(item)
            if len(items) + len(letters) >= self.source.batch_size:
                exhausted = False
                break
        self.source.accepted += len(items)
        if letters:
            if self._dead is not None:
                self._dead.put_many(letters)
            else:
                for d in letters:
                    log.warning("%s: rejected (%s) %s", self.source.path, d.reason, d.detail)
        progress = self.source.progress
        if progress is not None and items:
            last = items[-1]
            progress(self.done_line - self._preamble,
                     last["ts"] if type(last) is dict else last.ts)
        if exhausted and not items:
            raise StopIteration
        if self.source.as_fields is True and items:
            if all(type(x) is dict for x in items):
                return [ReadingFields(items)]
            return [reading_of_fields(x) if type(x) is dict else x for x in items]
        return items

    def snapshot(self) -> int:
        return self.done_line

    def close(self) -> None:
        if self._dead is not None:
            self._dead.close()


class FileSource(FixedPartitionedSource[Item, int]):
    """A readings file as a one-partition bytewax source; its state is the last line consumed.

    Rejected rows go to ``deadletter_dir`` (a :class:`DeadLetters` store) when given, and are
    counted in ``metrics`` (``gridwatch_ingest_file_rows_rejected``) and logged otherwise.
    With ``share`` (a process of a parallel replay) the partition is that share's lines,
    named ``file:<name>#<index>/<count>``, and the process lists only its own.
    ``progress(lines, event time)`` is called after each batch with the file's data lines
    consumed so far (as ``count_lines`` counts them) and the last reading's time (a progress
    bar's feed). ``as_fields`` as ``JournalSource``'s: a batch of CSV rows all in the common
    form (:class:`~gridwatch.ingest._csvrows.FastRows`) comes as one ``ReadingFields`` item
    when the consumer asks for it (the dataflow does); else readings.
    """

    def __init__(
        self,
        path: Path,
        *,
        deadletter_dir: Path | None = None,
        deadletter_partition: int = 0,
        batch_size: int = 1000,
        metrics: IngestMetrics | None = None,
        clock: Callable[[], datetime] = _utc_now,
        share: FileShare | None = None,
        progress: Callable[[int, datetime], None] | None = None,
        as_fields: bool | None = None,
    ) -> None:
        self.path = Path(path)
        self.share = share
        self.progress = progress
        #: a batch of CSV rows all of the common form comes as one :class:`ReadingFields`
        #: item (None: as the consumer asks, as ``JournalSource.as_fields``)
        self.as_fields = as_fields
        check_readings_file(self.path)
        self.deadletter_dir = deadletter_dir
        self.deadletter_partition = deadletter_partition
        self.batch_size = batch_size
        self.metrics = metrics
        #: The wall clock (UTC) that dates dead letters.
        self.clock = clock
        #: Rows read as items, and rows rejected by reason, in this process.
        self.accepted = 0
        self.rejected_by_reason: Counter[str] = Counter()

    def list_parts(self) -> list[str]:
        if self.share is not None and self.share.count > 1:
            return [f"file:{self.path.name}#{self.share.index}/{self.share.count}"]
        return [f"file:{self.path.name}"]

    def build_part(self, step_id: str, for_part: str,
                   resume_state: int | None) -> _FilePartition:
        return _FilePartition(self, resume_state)


def replay_source(
    path: Path, *, deadletter_dir: Path | None = None, batch_size: int = 1000,
    metrics: IngestMetrics | None = None, share: FileShare | None = None,
    progress: Callable[[int, datetime], None] | None = None,
) -> JournalSource | FileSource:
    """The bytewax source that replays ``path`` to its end: a journal directory (every
    partition under it), or a CSV/JSONL readings file. With ``share`` (a process of a parallel
    replay): the file's lines of that share (:class:`FileShare`, dead letters in the share's
    own partition), or the journal's partitions ``p`` with ``p % count == index``.
    ``progress``: a file source's progress feed (see :class:`FileSource`)."""
    path = Path(path)
    if path.is_dir():
        found = journal_partitions(path)
        if not found:
            raise ValueError(f"{path} is a directory but holds no journal partitions (p0000/ ...)")
        own = ([p for p in found if p % share.count == share.index]
               if share is not None and share.count > 1 else None)
        return JournalSource(path, partitions=own, follow=False, batch_size=batch_size,
                             metrics=metrics, deadletter_dir=deadletter_dir)
    return FileSource(path, deadletter_dir=deadletter_dir, batch_size=batch_size,
                      metrics=metrics, share=share, progress=progress,
                      deadletter_partition=share.index if share is not None else 0)

