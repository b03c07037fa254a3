"""An append-only, checksummed, segmented journal: the durable record of everything accepted.

Layout: ``<directory>/p<partition:04d>/<base offset:020d>.log``. Each record is a 16-byte
header (payload length, CRC-32 of offset + payload, offset; little-endian) followed by the
payload. Offsets start at 0 and increase by one per record, across segments. A segment is closed
when the next append would take it past ``segment_bytes``, or once it has been open for
``segment_age``; closed segments are deleted by retention (total size, age of their last
write), never the active one.

One writer per partition (an exclusive ``flock`` on ``LOCK``), any number of readers, also in
other processes: a reader treats a partial record at the end of the last segment as not yet
written. The writer, on opening, cuts such a torn tail (a crash mid-write) off.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import logging
import operator
import os
import re
import struct
import threading
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, BinaryIO, NotRequired, TypedDict

import msgspec
from pydantic import TypeAdapter

from gridwatch._schemas import ID_PATTERN, DeviceTelemetry, MeterStatus, Reading
from gridwatch.ingest._assemble import Stamps, built, phases_agree, reading_of_fields
from gridwatch.ingest._config import IngestSettings

__all__ = [
    "Journal",
    "JournalCorruptError",
    "JournalLockedError",
    "RecentItems",
    "decode_item",
    "decode_record",
    "encode_item",
    "encode_items",
    "journal_partitions",
]

log = logging.getLogger("gridwatch.ingest.journal")

_HEADER = struct.Struct("<IIQ")
HEADER_SIZE = _HEADER.size
_OFFSET = struct.Struct("<Q")
#: A length above this in a header can only be garbage (a torn or corrupt header).
MAX_RECORD_BYTES = 64 * 1024 * 1024
_SEGMENT_RE = re.compile(r"^(\d{20})\.log$")
_PART_RE = re.compile(r"^p(\d{4,})$")
_READ_CHUNK = 1 << 20
#: The least a read asks of a segment file at once: each time a read goes to the file, it
#: asks for the records it still wants at the size of the records read last (a quarter
#: more), within ``_READ_MIN`` .. ``_READ_CHUNK`` (and a record larger than that whole).
_READ_MIN = 1 << 14


#: The most buffers one ``os.writev`` takes (the system's IOV_MAX; 1024 on Linux).
_IOV_MAX = min(os.sysconf("SC_IOV_MAX"), 1024)


def _write_all(fd: int, parts: list[bytes], size: int) -> None:
    """Write ``parts`` (``size`` bytes in all) to ``fd`` in order, gathered by ``os.writev``
    without joining them first (a join copied every record once more), short writes
    resumed."""
    i = 0
    n = len(parts)
    while i < n:
        chunk = parts[i:i + _IOV_MAX]
        want = sum(map(len, chunk)) if n > _IOV_MAX else size
        done = os.writev(fd, chunk)
        if done == want:
            i += len(chunk)
            continue
        # A short write: the rest of the part it stopped in, then on.
        for part in chunk:
            if done >= len(part):
                done -= len(part)
                i += 1
                continue
            view = memoryview(part)[done:]
            while view:
                view = view[os.write(fd, view):]
            i += 1
            break


#: A read's byte budget when it has none.
_NO_BUDGET = 1 << 62


def _records_for(want: int, budget: int, record_bytes: int) -> int:
    """How many records of ``record_bytes`` a read still wants: ``want``, or fewer when a
    byte ``budget`` ends it sooner."""
    return min(want, max(budget, 0) // record_bytes + 1)


def _read_size(records: int, record_bytes: int) -> int:
    """What a read asks of a segment file for ``records`` records of ``record_bytes``."""
    return min(_READ_CHUNK, max(_READ_MIN, records * record_bytes * 5 // 4))


class JournalCorruptError(RuntimeError):
    """A record inside a closed segment fails its checksum: the file was damaged on disk."""


class JournalLockedError(RuntimeError):
    """Another process already writes this partition."""


def partition_dir(directory: Path, partition: int) -> Path:
    return Path(directory) / f"p{partition:04d}"


def journal_partitions(directory: Path) -> list[int]:
    """The partitions present under a journal directory, in order."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    found = (_PART_RE.match(p.name) for p in directory.iterdir() if p.is_dir())
    return sorted(int(m.group(1)) for m in found if m)


def _crc(offset: int, payload: bytes | memoryview) -> int:
    return zlib.crc32(payload, zlib.crc32(_OFFSET.pack(offset)))


@dataclass
class _Cursor:
    """Where the record with offset ``offset`` starts: segment base and byte position."""

    offset: int
    base: int
    pos: int


class Journal:
    """One partition of the journal.

    ``append(records)`` writes the records in one write and, unless ``fsync=False``, one
    ``fsync``; it returns the offset of the last one. ``read(from_offset, max_n)`` returns
    ``(offset, payload)`` pairs in order. With ``readonly=True`` the journal only reads (no lock,
    no recovery, no retention) and follows a writer in another process. ``clock`` (steady
    seconds) times the active segment's age and ``wall_clock`` (epoch seconds) the closed
    segments' age against their files' modification times; both default to the real clocks.
    """

    def __init__(
        self,
        directory: Path,
        partition: int = 0,
        *,
        segment_bytes: int = 64 * 1024 * 1024,
        retention_bytes: int = 0,
        retention: timedelta | float = 0.0,
        segment_age: timedelta | float = 0.0,
        fsync: bool = True,
        readonly: bool = False,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        if partition < 0:
            raise ValueError(f"partition must be >= 0, got {partition}")
        if segment_bytes < HEADER_SIZE + 1:
            raise ValueError(f"segment_bytes must be > {HEADER_SIZE}, got {segment_bytes}")
        self.directory = Path(directory)
        self.partition = partition
        self.path = partition_dir(self.directory, partition)
        self._recent_key = self.path.resolve()
        self.segment_bytes = segment_bytes
        self.retention_bytes = retention_bytes
        self.retention_s = (
            retention.total_seconds() if isinstance(retention, timedelta) else float(retention)
        )
        self.segment_age_s = (
            segment_age.total_seconds() if isinstance(segment_age, timedelta)
            else float(segment_age)
        )
        self.fsync = fsync
        self.readonly = readonly
        #: Seconds on a steady clock, for the active segment's age (``segment_age``).
        self.clock = clock
        #: Seconds since the epoch, for the age of closed segments' files (``retention``).
        self.wall_clock = wall_clock
        self._active_since = clock()
        self.truncated_bytes = 0  # torn tail cut off at open
        self._lock_fd: int | None = None
        self._fd: int | None = None
        self._active_size = 0
        self._bases: list[int] = []
        self._cursor: _Cursor | None = None
        self._tail: _Cursor | None = None  # reader: scanned end of the last segment
        self._rfile: tuple[int, BinaryIO] | None = None
        #: bytes a record took on disk in the last read (header included): sizes the next
        self._record_bytes = 256
        if readonly:
            self._refresh()
            return
        self.path.mkdir(parents=True, exist_ok=True)
        self._lock()
        self._refresh()
        if not self._bases:
            self._create_segment(0)
        self._recover_tail()
        self._apply_retention()

    # -- opening -------------------------------------------------------------------------
    def _lock(self) -> None:
        fd = os.open(self.path / "LOCK", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise JournalLockedError(
                f"journal partition {self.partition} in {self.directory} is already open for "
                f"writing by another process (one collector per partition)"
            ) from None
        self._lock_fd = fd

    def _refresh(self) -> None:
        if not self.path.is_dir():
            self._bases = []
            return
        found = (_SEGMENT_RE.match(n) for n in os.listdir(self.path))
        self._bases = sorted(int(m.group(1)) for m in found if m)

    def _seg_path(self, base: int) -> Path:
        return self.path / f"{base:020d}.log"

    def _create_segment(self, base: int) -> None:
        fd = os.open(self._seg_path(base), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        if self.fsync:
            os.fsync(fd)
            dfd = os.open(self.path, os.O_RDONLY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)
        if self._fd is not None:
            os.close(self._fd)
        self._fd = fd
        self._active_size = 0
        self._active_since = self.clock()
        if base not in self._bases:
            self._bases.append(base)

    def _scan(self, base: int, start: _Cursor | None = None,
              verify: bool = True) -> tuple[_Cursor, bool]:
        """Walk the records of one segment from ``start`` to the first incomplete or bad one.

        Returns the cursor just past the last good record and whether a bad record stopped it.
        """
        cur = start or _Cursor(base, base, 0)
        path = self._seg_path(base)
        try:
            f = open(path, "rb")  # noqa: SIM115 - closed below
        except FileNotFoundError:
            return cur, False
        # The loop keeps the next offset and its byte position in plain ints (no cursor
        # object per record: this runs over every record a live reader's end check sees).
        want, pos = cur.offset, cur.pos
        unpack = _HEADER.unpack_from
        with f:
            f.seek(pos)
            buf = b""
            i = 0  # where the next record starts in buf (no copy per record)
            bad = False
            while True:
                if len(buf) - i < HEADER_SIZE:
                    more = f.read(_READ_CHUNK)
                    if not more:
                        break
                    buf = buf[i:] + more
                    i = 0
                    continue
                length, crc, offset = unpack(buf, i)
                if length > MAX_RECORD_BYTES or offset != want:
                    bad = True
                    break
                end = i + HEADER_SIZE + length
                if len(buf) < end:
                    more = f.read(max(_READ_CHUNK, end - len(buf)))
                    buf = buf[i:] + more
                    end -= i
                    i = 0
                    if len(buf) < end:
                        while more and len(buf) < end:
                            more = f.read(end - len(buf))
                            buf += more
                        if len(buf) < end:
                            break
                if verify and _crc(offset, memoryview(buf)[i + HEADER_SIZE:end]) != crc:
                    bad = True
                    break
                want += 1
                pos += end - i
                i = end
            leftover = len(buf) > i or f.read(1) != b""
        return _Cursor(want, base, pos), bad or leftover

    def _recover_tail(self) -> None:
        base = self._bases[-1]
        end, damaged = self._scan(base)
        path = self._seg_path(base)
        size = path.stat().st_size
        if damaged or size != end.pos:
            self.truncated_bytes = size - end.pos
            with open(path, "r+b") as f:
                f.truncate(end.pos)
                f.flush()
                os.fsync(f.fileno())
        if self._fd is None:
            self._fd = os.open(path, os.O_WRONLY | os.O_APPEND)
        self._active_size = end.pos
        self._next = end.offset
        self._tail = end

    # -- writing -------------------------------------------------------------------------
    @property
    def handing_over(self) -> bool:
        """Whether a reader of this partition in this process takes the items of what is
        appended (:class:`RecentItems`); without one, ``append`` needs no items."""
        return self._recent_key in _RECENT

    def append(self, records: Sequence[bytes], items: Sequence[Any] | None = None) -> int:
        """Append ``records`` durably (one write, one fsync); return the last record's offset.

        With no records, returns the offset of the last record already in the journal (-1 when
        the journal is empty). ``items``: what each record encodes (``records[i]`` is
        ``encode_item(items[i])``), handed to a reader of this partition in this process (see
        :class:`RecentItems`), which takes them when it reads these records from disk.
        """
        if self.readonly or self._fd is None:
            raise RuntimeError("journal is open read-only or closed")
        if not records:
            return self._next - 1
        parts: list[bytes] = []
        append = parts.append
        header = _HEADER.pack
        pack_offset = _OFFSET.pack
        crc32 = zlib.crc32
        offset = self._next
        for rec in records:
            length = len(rec)
            if length > MAX_RECORD_BYTES:
                raise ValueError(f"record of {length} bytes exceeds {MAX_RECORD_BYTES}")
            append(header(length, crc32(rec, crc32(pack_offset(offset))), offset))  # _crc
            append(rec)
            offset += 1
        size = HEADER_SIZE * len(records) + sum(map(len, records))
        if self._active_size > 0 and (
            self._active_size + size > self.segment_bytes
            or (self.segment_age_s > 0
                and self.clock() - self._active_since > self.segment_age_s)
        ):
            self._roll()
        before = self._active_size
        if items is not None:
            # Handed over before the write, so a reader that finds the records on disk at once
            # finds their items too. Safe if the write fails: a reader takes an item only for
            # the very bytes it reads at that offset, and those decode to an equal item.
            recent = _RECENT.get(self._recent_key)
            if recent is not None:
                recent.add(self._next, records, items)
        try:
            _write_all(self._fd, parts, size)
            if self.fsync:
                os.fsync(self._fd)
        except OSError:
            # Leave no half-written batch behind: the caller will not acknowledge it.
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, before)
            raise
        self._active_size += size
        self._next = offset
        self._tail = _Cursor(offset, self._bases[-1], self._active_size)
        return offset - 1

    def _roll(self) -> None:
        if self._fd is not None and self.fsync:
            os.fsync(self._fd)
        self._create_segment(self._next)
        self._apply_retention()

    def _apply_retention(self) -> None:
        if self.readonly or len(self._bases) < 2:
            return
        now = self.wall_clock()
        sizes = {b: self._seg_path(b).stat().st_size for b in self._bases}
        total = sum(sizes.values())
        for base in list(self._bases[:-1]):
            path = self._seg_path(base)
            too_big = self.retention_bytes > 0 and total > self.retention_bytes
            too_old = self.retention_s > 0 and now - path.stat().st_mtime > self.retention_s
            if not (too_big or too_old):
                break
            path.unlink(missing_ok=True)
            total -= sizes[base]
            self._bases.remove(base)

    def enforce_retention(self) -> None:
        """Delete closed segments past the retention limits (done at every roll and open)."""
        self._apply_retention()

    # -- reading -------------------------------------------------------------------------
    @property
    def start_offset(self) -> int:
        """The first offset still kept (retention deletes older segments)."""
        if self.readonly:
            self._refresh()
        return self._bases[0] if self._bases else 0

    @property
    def end_offset(self) -> int:
        """The offset the next record will get: one past the last complete record."""
        if not self.readonly:
            return self._next
        self._refresh()
        if not self._bases:
            return 0
        last = self._bases[-1]
        start = self._tail if self._tail is not None and self._tail.base == last else None
        cur = self._cursor
        if cur is not None and cur.base == last and (start is None or cur.offset > start.offset):
            # The records before the read cursor were read and checked already: the end is
            # found by scanning from there, not from the segment's start.
            start = _Cursor(cur.offset, cur.base, cur.pos)
        if start is not None:
            try:
                if self._seg_path(last).stat().st_size < start.pos:
                    start = None  # the writer cut a torn tail off: scan again
            except FileNotFoundError:
                start = None
        self._tail, _ = self._scan(last, start)
        return self._tail.offset

    @property
    def size_bytes(self) -> int:
        total = 0
        for base in self._bases:
            with contextlib.suppress(FileNotFoundError):
                total += self._seg_path(base).stat().st_size
        return total

    @property
    def segments(self) -> list[int]:
        """Base offsets of the segments present."""
        if self.readonly:
            self._refresh()
        return list(self._bases)

    def _locate(self, offset: int) -> _Cursor | None:
        if self._cursor is not None and self._cursor.offset == offset:
            return self._cursor
        if self.readonly or not self._bases or offset >= self._bases[-1]:
            self._refresh()
        if not self._bases:
            return None
        if offset < self._bases[0]:
            log.warning("journal %s: offsets %d..%d were deleted by retention before they were "
                        "read; going on from %d", self.path, offset, self._bases[0] - 1,
                        self._bases[0])
            offset = self._bases[0]
        base = max(b for b in self._bases if b <= offset)
        cur = _Cursor(base, base, 0)
        if offset > base:
            # Skip headers (no checksum) to the wanted record.
            cur = self._skip(base, offset)
            if cur.offset != offset:
                return None  # not written yet
        return cur

    def _skip(self, base: int, offset: int) -> _Cursor:
        cur = _Cursor(base, base, 0)
        with open(self._seg_path(base), "rb") as f:
            while cur.offset < offset:
                f.seek(cur.pos)
                head = f.read(HEADER_SIZE)
                if len(head) < HEADER_SIZE:
                    break
                length, _, off = _HEADER.unpack(head)
                if off != cur.offset or length > MAX_RECORD_BYTES:
                    break
                cur = _Cursor(cur.offset + 1, base, cur.pos + HEADER_SIZE + length)
        return cur

    def _file(self, base: int) -> BinaryIO:
        if self._rfile is not None and self._rfile[0] == base:
            return self._rfile[1]
        self._close_reader()
        f = open(self._seg_path(base), "rb")  # noqa: SIM115 - kept for sequential reads
        self._rfile = (base, f)
        return f

    def _close_reader(self) -> None:
        if self._rfile is not None:
            self._rfile[1].close()
            self._rfile = None

    def read(self, from_offset: int, max_n: int = 1000,
             max_bytes: int | None = None) -> list[tuple[int, bytes]]:
        """Up to ``max_n`` records from ``from_offset`` on, as ``(offset, payload)`` pairs;
        with ``max_bytes``, no more records once their payloads hold that many bytes (at
        least one record: a reader of batch records and reading records alike gets about as
        many readings a read).

        Starts at :attr:`start_offset` when ``from_offset`` was deleted by retention. Returns
        fewer (or none) at the end of what is written.
        """
        out: list[tuple[int, bytes]] = []
        cur = self._locate(max(0, from_offset))
        budget = [max_bytes if max_bytes is not None else _NO_BUDGET]
        while cur is not None and len(out) < max_n:
            cur = self._read_segment(cur, max_n - len(out), out, budget)
            if cur is None or budget[0] <= 0:
                break
        return out

    def _read_segment(self, cur: _Cursor, want: int, out: list[tuple[int, bytes]],
                      budget: list[int]) -> _Cursor | None:
        """Read from one segment; return the cursor to go on with, or None to stop for now.
        ``budget[0]``: the payload bytes still wanted, lowered by what is read (at or below
        0: enough)."""
        try:
            f = self._file(cur.base)
        except FileNotFoundError:
            self._refresh()
            later = [b for b in self._bases if b > cur.base]
            log.warning("journal %s: segment %d was deleted by retention while being read; "
                        "going on from %s", self.path, cur.base, later[0] if later else "its end")
            return _Cursor(later[0], later[0], 0) if later else None
        # The next offset and its byte position in the file as plain ints in the loop (one
        # cursor object per call, not per record).
        base, next_offset, file_pos = cur.base, cur.offset, cur.pos
        start = file_pos
        f.seek(file_pos)
        # (as much as the records still wanted are likely to take, not a whole chunk: a read
        # of 250 records of 120 bytes copied 1 MiB and kept 30 KiB)
        size = self._record_bytes
        left = budget[0]
        buf = f.read(_read_size(_records_for(want, left, size), size))
        got = 0
        pos = 0
        unpack = _HEADER.unpack_from
        crc32 = zlib.crc32
        pack_offset = _OFFSET.pack
        append = out.append
        while got < want:
            if len(buf) - pos < HEADER_SIZE:
                more = f.read(_read_size(_records_for(want - got, left, size), size))
                if not more:
                    break
                buf = buf[pos:] + more
                pos = 0
                continue
            length, crc, offset = unpack(buf, pos)
            end = pos + HEADER_SIZE + length
            if length > MAX_RECORD_BYTES or offset != next_offset:
                return self._bad_record(_Cursor(next_offset, base, file_pos), "header")
            if len(buf) < end:
                more = f.read(max(_read_size(_records_for(want - got, left, size), size),
                                    end - len(buf)))
                if not more:
                    break
                buf = buf[pos:] + more
                pos = 0
                continue
            payload = buf[pos + HEADER_SIZE:end]
            if crc32(payload, crc32(pack_offset(offset))) != crc:  # _crc, inlined
                return self._bad_record(_Cursor(next_offset, base, file_pos), "checksum")
            append((offset, payload))
            got += 1
            next_offset += 1
            file_pos += HEADER_SIZE + length
            pos = end
            left -= length
            if left <= 0:
                break
        cur = self._cursor = _Cursor(next_offset, base, file_pos)
        budget[0] = left
        if got:
            self._record_bytes = (file_pos - start) // got + 1
        if got >= want or left <= 0:
            return cur
        # End of this segment's complete records: go on in the next segment, if there is one.
        if cur.base == (self._bases[-1] if self._bases else cur.base):
            self._refresh()
        nxt = [b for b in self._bases if b > cur.base]
        if nxt and nxt[0] == cur.offset:
            return _Cursor(cur.offset, nxt[0], 0)
        return None

    def _bad_record(self, cur: _Cursor, what: str) -> _Cursor | None:
        self._refresh()
        if self._bases and cur.base != self._bases[-1]:
            raise JournalCorruptError(
                f"{self._seg_path(cur.base)}: bad {what} at byte {cur.pos} (offset {cur.offset})"
            )
        # The end of the last segment: a record being written, or a torn tail; stop here.
        self._cursor = cur
        return None

    # -- closing -------------------------------------------------------------------------
    def close(self) -> None:
        self._close_reader()
        if self._fd is not None:
            if self.fsync:
                with contextlib.suppress(OSError):
                    os.fsync(self._fd)
            os.close(self._fd)
            self._fd = None
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def stats(self) -> dict[str, Any]:
        return {
            "partition": self.partition,
            "segments": len(self.segments),
            "start_offset": self.start_offset,
            "end_offset": self.end_offset,
            "bytes": self.size_bytes,
        }


# -- the record wire form ---------------------------------------------------------------------
_DECODE_CTX = {"max_future": timedelta.max}

#: The version tag of a reading record written by this version: leading JSON whitespace (any
#: JSON reader still parses the record) saying "the JSON wire form of a :class:`Reading` the
#: collector validated, as :func:`encode_item` writes it". :func:`decode_item` rebuilds such a
#: record without validating it again (the journal's CRC already vouches for the bytes); any
#: other record (an older journal, another writer, telemetry) is validated in full.
READING_TAG = b" \t"
_TAG_LEN = len(READING_TAG)
#: The version tag of a batch record: a whole compact message of readings the collector
#: validated and accepted, every one of them, its JSON array as it was sent (one record a
#: message, where :data:`READING_TAG` records hold one reading each). Written where no reader
#: in the collector's process takes its items over (:attr:`Journal.handing_over`: the
#: hand-over keeps an item a record); read back by :func:`decode_record` and
#: :func:`rebuild_fields` into the same readings, field for field.
BATCH_TAG = b" \n"
if len(BATCH_TAG) != _TAG_LEN:  # pragma: no cover
    raise ImportError("the record tags must be of one length")

_FIELDS: tuple[str, ...] = tuple(Reading.model_fields)
#: A reading's field values in field order, from its ``__dict__``.
_values = operator.itemgetter(*_FIELDS)


_PHASES = msgspec.Meta(min_length=1, max_length=3)
_Volt = Annotated[float, msgspec.Meta(ge=0, le=500_000)]
_Amp = Annotated[float, msgspec.Meta(ge=0, le=100_000)]
_Volts = Annotated[tuple[_Volt, ...], _PHASES]
_Amps = Annotated[tuple[_Amp, ...], _PHASES]
_Kw = Annotated[float, msgspec.Meta(ge=-100_000, le=100_000)]
_Register = Annotated[float, msgspec.Meta(ge=0, le=1e12)]
_Pf = Annotated[float, msgspec.Meta(ge=-1, le=1)]
_Freq = Annotated[float, msgspec.Meta(ge=40, le=70)]
_Interval = Annotated[int, msgspec.Meta(ge=1, le=86_400)]


class _Written(TypedDict):
    """A tagged reading record as :func:`encode_item` writes it, or as a compact payload sent
    it (:func:`compact_readings`: a lone number for one phase), each field typed and bounded
    as :class:`Reading` holds it (what msgspec checks while it parses). The identifier's
    pattern and the phases' agreement are the collector's checks, vouched for by the tag."""

    meter_id: str
    ts: datetime
    kw: _Kw
    kwh: NotRequired[_Register | None]
    export_kwh: NotRequired[_Register | None]
    voltage: NotRequired[_Volts | _Volt | None]
    current: NotRequired[_Amps | _Amp | None]
    pf: NotRequired[_Pf | None]
    freq: NotRequired[_Freq | None]
    status: NotRequired[tuple[MeterStatus, ...]]
    interval_s: NotRequired[_Interval | None]


_ID = ID_PATTERN.removeprefix("^").removesuffix("$")
#: Identifiers one a line, each of :data:`ID_PATTERN` (whose class has no line break): the
#: identifiers of a whole batch checked in one call
_identifiers = re.compile(f"{_ID}(?:\n{_ID})*").fullmatch


class _Sent(TypedDict):
    """A reading as a meter or a concentrator sends it, in the common form that
    :func:`compact_readings` takes: typed and bounded as :class:`Reading` is, a lone number
    allowed for one phase. (The identifier's and the timestamp's forms are checked after
    the parse: msgspec's pattern check per string costs more than the whole parse.)"""

    meter_id: str
    ts: str
    kw: _Kw
    kwh: NotRequired[_Register | None]
    export_kwh: NotRequired[_Register | None]
    voltage: NotRequired[_Volts | _Volt | None]
    current: NotRequired[_Amps | _Amp | None]
    pf: NotRequired[_Pf | None]
    freq: NotRequired[_Freq | None]
    status: NotRequired[tuple[MeterStatus, ...]]
    interval_s: NotRequired[_Interval | None]


_written = msgspec.json.Decoder(_Written).decode
_written_batch = msgspec.json.Decoder(list[_Written]).decode
_msgspec_error = msgspec.MsgspecError
_WHITESPACE = b" \t\n\r"  #: JSON's whitespace


#: Items kept for a reader when nothing says otherwise (``ingest.handover_items``).
DEFAULT_HANDOVER_ITEMS: int = IngestSettings.model_fields["handover_items"].default


#: How many of the newest items the hand-over keeps as the collector's objects; older ones
#: still there are made compact (:class:`RecentItems`). Half the default ring: a dataflow
#: behind a burst of a 100,000-meter interval takes most of it before it is compacted.
HANDOVER_LOOSE = 65_536


class RecentItems:
    """The items the writer of one journal partition appended last in this process, by offset,
    for a reader of the partition in the same process (``gridwatch run``: the collector thread
    writes, the dataflow reads): the hand-over.

    The reader still reads every record from the journal: it takes the item in place of
    decoding the record only when the record it read is byte for byte the one appended with
    the item. (The writer hands the items over just before it writes their records, so a
    reader polling the journal never finds a record whose item is still to come; an item of
    a write that failed is never taken for other bytes.) So what the reader yields equals,
    field for field, what decoding would give (it is the item the collector validated, and
    ``decode_item`` of its record equals it: a property the tests check). A reader that falls
    behind by more than ``capacity`` items, or reads after a restart, decodes as before. Only
    a partition that a reader in this process follows (:func:`recent_items`) keeps items;
    each is taken once.

    The items are kept in a ring of ``capacity`` slots (the record at offset ``o`` in slot
    ``o % capacity``, so the oldest go first). The newest ``loose`` items are kept as they
    came, which costs nothing when the reader keeps up; a reading older than that and not yet
    taken (a reader behind a burst) is made compact: one flat tuple of its offset, its
    record, its set of given fields (one shared frozen set per combination) and its field
    values (the very objects the collector validated), which ``take`` puts together again
    as pydantic does after validation. About a third of the memory of the pydantic object,
    whose ``__dict__`` and set of given fields take most of it.
    """

    def __init__(self, capacity: int = DEFAULT_HANDOVER_ITEMS,
                 loose: int = HANDOVER_LOOSE) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        if loose < 0:
            raise ValueError(f"loose must be >= 0, got {loose}")
        self._lock = threading.Lock()
        self._ring: list[tuple[Any, ...] | None] = [None] * capacity
        self._sets: dict[frozenset[str], frozenset[str]] = {}
        self.loose = loose
        self._compact_from = 0  # items before this offset are compact (or gone)
        #: one past the newest offset the writer has handed over (0: none yet): the journal's
        #: end as the writer in this process knows it, without a look at the disk
        self.end = 0
        self.readers = 0
        #: records a reader took from memory, and those it had to decode
        self.hits = 0
        self.misses = 0
        #: readings made compact (a reader more than ``loose`` items behind)
        self.compacted = 0

    @property
    def capacity(self) -> int:
        """How many items are kept at most; setting it keeps the newest that still fit."""
        return len(self._ring)

    @capacity.setter
    def capacity(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        with self._lock:
            kept = sorted((e for e in self._ring if e is not None), key=_first)[-capacity:]
            ring: list[tuple[Any, ...] | None] = [None] * capacity
            for e in kept:
                ring[e[0] % capacity] = e
            self._ring = ring

    def add(self, first: int, records: Sequence[bytes], items: Sequence[Any]) -> None:
        """Keep ``items[i]`` as the item of the record at offset ``first + i``."""
        n = len(records)
        if n != len(items):
            raise ValueError(f"{n} records but {len(items)} items")
        with self._lock:
            ring = self._ring
            cap = len(ring)
            skip = max(0, n - cap)  # more than the ring holds: only the last ``cap`` stay
            for i in range(skip, n):
                offset = first + i
                ring[offset % cap] = (offset, records[i], items[i])
            end = first + n
            if end > self.end:
                self.end = end
            if end - self._compact_from > self.loose:
                self._compact(max(self._compact_from, end - cap), end - self.loose)

    def _compact(self, start: int, stop: int) -> None:
        """Make the items of offsets ``start`` to ``stop`` still kept compact (lock held)."""
        ring = self._ring
        cap = len(ring)
        sets = self._sets
        values = _values
        made = 0
        for offset in range(start, stop):
            slot = offset % cap
            kept = ring[slot]
            if kept is None or len(kept) != 3 or kept[0] != offset:
                continue  # taken, already compact, or overwritten
            item = kept[2]
            if type(item) is Reading:
                given = frozenset(item.__pydantic_fields_set__)
                given = sets.setdefault(given, given)
                ring[slot] = (offset, kept[1], given, *values(item.__dict__))
                made += 1
        self.compacted += made
        self._compact_from = max(self._compact_from, stop)

    def take(self, records: Sequence[tuple[int, bytes]]) -> list[Any]:
        """For each ``(offset, payload)`` read from the journal, its item when this process
        appended exactly that payload at that offset, else None (decode it)."""
        out: list[Any] = []
        append = out.append
        hits = 0
        with self._lock:
            ring = self._ring
            cap = len(ring)
            for offset, data in records:
                slot = offset % cap
                kept = ring[slot]
                if kept is None or kept[0] != offset or kept[1] != data:
                    append(None)
                    continue
                ring[slot] = None
                hits += 1
                if len(kept) == 3:  # as it came
                    append(kept[2])
                    continue
                append(built(_kept_dict(kept), set(kept[2])))
        # (not ``out.count(None)``: that calls the models' ``__eq__``)
        self.hits += hits
        self.misses += len(out) - hits
        return out


def _first(entry: tuple[Any, ...]) -> Any:
    return entry[0]


def _kept_dict(k: tuple[Any, ...]) -> dict[str, Any]:
    """The ``__dict__`` of a reading kept as ``(offset, record, given, *values)``: a dict
    display, about 2.5 times as fast as ``dict(zip(fields, values))``."""
    return {"meter_id": k[3], "ts": k[4], "kw": k[5], "kwh": k[6], "export_kwh": k[7],
            "voltage": k[8], "current": k[9], "pf": k[10], "freq": k[11], "status": k[12],
            "interval_s": k[13]}


if tuple(_kept_dict((None,) * 3 + _FIELDS)) != _FIELDS or \
        [*_kept_dict((None,) * 3 + _FIELDS).values()] != [*_FIELDS]:
    raise ImportError("_kept_dict must list Reading's fields in their order")  # pragma: no cover


_RECENT: dict[Path, RecentItems] = {}
_RECENT_LOCK = threading.Lock()


def recent_items(directory: Path, partition: int,
                 capacity: int = DEFAULT_HANDOVER_ITEMS) -> RecentItems:
    """The recent items of one partition in this process: a reader calls this, and from then
    until it calls :func:`release_recent_items` a writer of the partition in this process
    keeps what it appends there (at most ``capacity`` items: the largest any reader asked)."""
    path = partition_dir(Path(directory), partition).resolve()
    with _RECENT_LOCK:
        recent = _RECENT.get(path)
        if recent is None:
            recent = _RECENT[path] = RecentItems(capacity)
        elif capacity > recent.capacity:
            recent.capacity = capacity
        recent.readers += 1
        return recent


def release_recent_items(directory: Path, partition: int) -> None:
    """A reader of the partition is done; with no reader left, the writer keeps nothing."""
    path = partition_dir(Path(directory), partition).resolve()
    with _RECENT_LOCK:
        recent = _RECENT.get(path)
        if recent is not None:
            recent.readers -= 1
            if recent.readers <= 0:
                del _RECENT[path]


#: pydantic-core's serialisers, called directly: ``model_dump_json`` is this call plus a
#: Python wrapper and a decode to ``str`` that ``.encode()`` then undoes.
_READING_JSON = Reading.__pydantic_serializer__.to_json
_TELEMETRY_JSON = DeviceTelemetry.__pydantic_serializer__.to_json


@functools.cache
def _readings() -> TypeAdapter[list[Reading]]:
    """A batch record's readings, validated in full (one not in the collector's form; made
    when first needed, as such a record is rare)."""
    return TypeAdapter(list[Reading])


def encode_item(item: Reading | DeviceTelemetry) -> bytes:
    """The journal record of a reading or telemetry: its JSON wire form (what
    ``Reading.to_json_dict()`` gives, serialised by pydantic: the bytes of
    ``item.model_dump_json(exclude_none=True, exclude_defaults=True)``), a reading behind
    :data:`READING_TAG`."""
    if type(item) is Reading:
        return READING_TAG + _READING_JSON(item, exclude_none=True, exclude_defaults=True)
    return _TELEMETRY_JSON(item, exclude_none=True, exclude_defaults=True)


def encode_items(items: Sequence[Reading | DeviceTelemetry]) -> list[bytes]:
    """``[encode_item(item) for item in items]``, in one loop."""
    tag = READING_TAG
    dump = _READING_JSON
    return [tag + dump(item, exclude_none=True, exclude_defaults=True)
            if type(item) is Reading else encode_item(item) for item in items]


def _fields_of(doc: Any) -> bool:
    """Whether a record's decoded fields (:class:`_Written`) are a reading's, as it holds them:
    its time in UTC and its phases agreeing (a lone phase number made a tuple, in place);
    else validation says why not."""
    return doc["ts"].tzinfo is UTC and phases_agree(doc)


def _rebuild(data: bytes) -> Reading | None:
    """The reading a tagged record holds, or None when the record is not in the form
    :func:`encode_item` or :func:`compact_readings` writes (then it is validated in full).

    msgspec's typed decoder parses the record and checks each field's type and range in one
    pass (:class:`_Written`); the record is taken only if it has no whitespace beyond the tag
    (the writer writes none) and one ``":`` per field decoded: without whitespace every key is
    followed by ``":``, so an equal count means no key the decoder skipped (an unknown field)
    and none given twice. Anything else (a value with ``":`` in it too) goes to validation,
    which gives the same reading or the reason it is not one."""
    try:
        doc = _written(data)
    except _msgspec_error:
        return None
    if data.count(b'":') != len(doc) \
            or len(data.translate(None, _WHITESPACE)) != len(data) - _TAG_LEN:
        return None
    return reading_of_fields(doc) if _fields_of(doc) else None


def rebuild_fields(records: Sequence[bytes]) -> list[dict[str, Any]] | None:
    """The given fields of the readings a run of tagged reading records holds, in order (a
    :data:`READING_TAG` record's reading, a :data:`BATCH_TAG` record's readings), each record
    in the form :func:`encode_item` or :func:`compact_fields` writes (each field as
    :class:`Reading` holds it: :func:`~gridwatch.ingest._assemble.reading_of_fields` makes
    the reading, the one :func:`decode_record` gives); None when any record is not (then the
    caller decodes them one by one, which says which record is what).

    :func:`_rebuild`'s checks, made over the whole run at once. Each record holds its tag,
    which is JSON whitespace, so a run with as much whitespace as its tags has none beyond
    them in any record; then each record has at least one ``":`` a field decoded, so a run
    with as many as its fields has exactly that in each record. The tags are checked before
    anything is parsed, so a read with telemetry in it (untagged) is parsed once, record by
    record."""
    tag, batch_tag, tag_len = READING_TAG, BATCH_TAG, _TAG_LEN
    batches = 0
    for data in records:
        head = data[:tag_len]
        if head != tag:
            if head != batch_tag:
                return None
            batches += 1
    try:
        if not batches:
            docs: list[Any] = list(map(_written, records))
        else:
            docs = []
            for data in records:
                if data[:tag_len] == tag:
                    docs.append(_written(data))
                else:
                    got = _written_batch(data)
                    if not got:
                        return None
                    docs += got
    except _msgspec_error:
        return None
    run = b"".join(records)
    if len(run) - len(run.translate(None, _WHITESPACE)) != tag_len * len(records) \
            or run.count(b'":') != sum(map(len, docs)):
        return None
    for doc in docs:
        if not _fields_of(doc):
            return None
    return docs


_sent_batch = msgspec.json.Decoder(list[_Sent]).decode
_sent_one = msgspec.json.Decoder(_Sent).decode
_NOT_COMPACT = b" \t\n\r\\"  #: JSON's whitespace, and the backslash of an escape
#: Timestamps read, by their text: the readings of one interval share one.
_STAMPS = Stamps(4_096)
_UNSEEN: Any = object()


def compact_readings(payload: bytes, batch: bool,
                     records: list[bytes] | None = None) -> list[Reading] | None:
    """The readings of a payload (``batch``: a JSON array of them, else one JSON object) in
    the common compact form, each equal, field for field and in its given fields, to what
    ``Reading``'s validation gives; None for any payload not in that form, or not valid,
    which the caller then validates with pydantic (which says why it is not valid).

    The readings of :func:`compact_fields` (which says what the form is, and what goes in
    ``records``)."""
    given = compact_fields(payload, batch, records)
    return None if given is None else list(map(reading_of_fields, given))


def compact_fields(payload: bytes, batch: bool, records: list[bytes] | None = None,
                   whole: bool = False) -> list[dict[str, Any]] | None:
    """The given fields of each reading of a payload (``batch``: a JSON array of them, else
    one JSON object) in the common compact form, each as :class:`Reading` holds it (what
    :func:`~gridwatch.ingest._assemble.reading_of_fields` takes: the reading ``Reading``'s
    validation gives, field for field and in its given fields); None for any payload not in
    that form, or not valid, which the caller then validates with pydantic (which says why
    it is not valid). No reading object is made: a collector with no reader in its process
    journals the records and needs none.

    The form: no whitespace and no escape anywhere, no field twice and none unknown (every
    key is followed by ``":``, so the count of those equals the fields decoded), each
    identifier of :data:`ID_PATTERN`, each timestamp in the plain ISO spelling
    (:class:`~gridwatch.ingest._assemble.Stamps`, as a CSV file's rows), not before 2000, and
    as many voltage as current phases.
    msgspec checks types and ranges while it parses; with the checks after it, a batch is
    read about 1.5 times as fast as by pydantic's validation of the same readings
    (``benchmarks/records.py --only decode``).

    ``records``, when given, gets each reading's journal record: :data:`READING_TAG` and the
    reading's JSON object as it was sent, which :func:`decode_item` rebuilds into the same
    reading, field for field and in its given fields (no second pass of pydantic's
    serialiser over the reading). Only when every timestamp is in UTC (``Z``: what the
    record's reader takes as it is) and the payload splits into exactly one object a reading
    (a string holding ``},{`` would split one more); else it stays empty, and the caller
    writes :func:`encode_item`'s records. ``whole``: a batch's one record instead,
    :data:`BATCH_TAG` and the payload as it was sent (:func:`split_batch_record` cuts it
    into the readings' records when some of them are not accepted)."""
    if len(payload.translate(None, _NOT_COMPACT)) != len(payload):
        return None
    try:
        docs = _sent_batch(payload) if batch else [_sent_one(payload)]
    except _msgspec_error:
        return None
    if not docs or payload.count(b'":') != sum(map(len, docs)) or \
            _identifiers("\n".join([doc["meter_id"] for doc in docs])) is None:
        return None
    known = _STAMPS.known
    utc = True
    for doc in docs:
        text = doc["ts"]
        ts = known.get(text, _UNSEEN)
        if ts is _UNSEEN:
            ts = _STAMPS.read(text)
        if ts is None:
            return None
        if text[-1:] != "Z":
            utc = False
        doc["ts"] = ts  # (the field as ``Reading`` holds it)
        if not phases_agree(doc):
            return None
    if records is not None and utc:
        if not batch:
            records.append(READING_TAG + payload)
        elif whole and len(payload) + _TAG_LEN <= MAX_RECORD_BYTES:
            records.append(BATCH_TAG + payload)
        else:
            records += _split(payload, len(docs))
    return docs  # type: ignore[return-value]


def split_batch_record(data: bytes, count: int) -> list[bytes]:
    """The :data:`READING_TAG` records of the ``count`` readings of a batch record that
    :func:`compact_fields` wrote, each reading's JSON object cut out of it as sent (raises
    ``ValueError`` for anything else)."""
    if data[:_TAG_LEN] != BATCH_TAG:
        raise ValueError("not a batch record")
    records = _split(data[_TAG_LEN:], count)
    if not records:
        raise ValueError(f"a batch record that does not split into {count} readings")
    return records


def _split(payload: bytes, count: int) -> list[bytes]:
    """The reading records of a compact batch payload of ``count`` readings, cut at each
    ``},{`` (none when it does not cut into that many). The compact form's checks leave no
    ``},{`` inside a reading: its identifiers are of :data:`ID_PATTERN`, its timestamps and
    statuses have none, its other values are numbers; so a batch that
    :func:`compact_fields` takes always cuts so."""
    if payload[:2] != b"[{" or payload[-2:] != b"}]":  # (JSON has nothing else around them)
        return []
    parts = payload[2:-2].split(b"},{")
    if len(parts) != count:
        return []
    tag = READING_TAG
    return [tag + b"{" + part + b"}" for part in parts]


def decode_record(data: bytes) -> list[Reading | DeviceTelemetry]:
    """The items a journal record holds: a :data:`BATCH_TAG` record's readings, in order,
    else :func:`decode_item`'s one item (raises as it does, ``ValueError`` or a pydantic
    ``ValidationError``, for a record that is not what it says).

    A batch record in the form :func:`compact_fields` writes is rebuilt as it was written,
    as :func:`rebuild_fields` does; any other is validated in full, its readings as a
    compact batch's are."""
    if data[:_TAG_LEN] != BATCH_TAG:
        return [decode_item(data)]
    given = rebuild_fields([data])
    if given is not None:
        return list(map(reading_of_fields, given))
    items = _readings().validate_json(data, context=_DECODE_CTX)
    if not items:
        raise ValueError("a batch record with no readings")
    return items


def decode_item(data: bytes) -> Reading | DeviceTelemetry:
    """Parse a journal record back (raises ``ValueError``, a pydantic ``ValidationError`` for
    a record that is not a valid reading or telemetry).

    A record with :data:`READING_TAG` is rebuilt as it was written, without a second
    validation; an untagged one, or a tagged one not in the form :func:`encode_item` writes,
    goes through the model's validation."""
    if data[:_TAG_LEN] == READING_TAG:
        reading = _rebuild(data)
        if reading is not None:
            return reading
    if b'"device_id"' in data:
        return DeviceTelemetry.model_validate_json(data, context=_DECODE_CTX)
    return Reading.model_validate_json(data, context=_DECODE_CTX)
