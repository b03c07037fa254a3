"""The journal: append/read round trips across segments, torn-tail recovery, retention, locks,
checksums; property-based with hypothesis."""

from __future__ import annotations

import os
import random
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from gridwatch.ingest import (
    DeadLetters,
    Journal,
    JournalCorruptError,
    JournalLockedError,
    journal_partitions,
    read_deadletters,
)
from gridwatch.ingest._journal import HEADER_SIZE

records = st.binary(min_size=0, max_size=200)
batches = st.lists(st.lists(records, min_size=0, max_size=12), min_size=1, max_size=15)


def _read_all(j: Journal, start: int = 0, step: int = 7) -> list[tuple[int, bytes]]:
    out: list[tuple[int, bytes]] = []
    off = start
    while chunk := j.read(off, step):
        out.extend(chunk)
        off = chunk[-1][0] + 1
    return out


@settings(max_examples=60, deadline=None)
@given(batches=batches, seg=st.integers(40, 600), step=st.integers(1, 50),
       start=st.integers(0, 200))
def test_append_read_round_trip(batches: list[list[bytes]], seg: int, step: int,
                                start: int) -> None:
    with tempfile.TemporaryDirectory() as d:
        written: list[bytes] = []
        with Journal(Path(d), 3, segment_bytes=seg, fsync=False) as j:
            for b in batches:
                last = j.append(b)
                written.extend(b)
                assert last == len(written) - 1
                assert j.end_offset == len(written)
            assert [p for _, p in _read_all(j, step=step)] == written
        assert journal_partitions(Path(d)) == [3]
        # A reader (as another process would be) and a reopened writer agree.
        with Journal(Path(d), 3, readonly=True) as r:
            got = _read_all(r, start, step)
            assert got == list(enumerate(written))[start:]
            assert r.end_offset == len(written)
        with Journal(Path(d), 3, segment_bytes=seg, fsync=False) as j:
            assert j.truncated_bytes == 0 and j.end_offset == len(written)
            j.append([b"after"])
            assert _read_all(j)[-1] == (len(written), b"after")


@settings(max_examples=40, deadline=None)
@given(sizes=st.lists(st.sampled_from([0, 10, 120, 5_000, 40_000, 300_000]), min_size=1,
                      max_size=40),
       seg=st.sampled_from([1_000, 100_000, 2_000_000]), step=st.integers(1, 20))
def test_records_of_any_size_come_back_whole_in_reads_of_any_length(
        sizes: list[int], seg: int, step: int) -> None:
    """A read asks a segment file for about as many bytes as its records took in the read
    before: records much larger than the last ones (or a read's first) still come back
    whole, and small ones after large ones too."""
    written = [bytes([k % 251]) * n for k, n in enumerate(sizes)]
    with tempfile.TemporaryDirectory() as d:
        with Journal(Path(d), 0, segment_bytes=seg, fsync=False) as j:
            j.append(written)
            assert _read_all(j, step=step) == list(enumerate(written))
        with Journal(Path(d), 0, readonly=True) as r:
            assert _read_all(r, step=step) == list(enumerate(written))


@settings(max_examples=60, deadline=None)
@given(batches=batches, seg=st.integers(40, 600), cut=st.floats(0, 1),
       garbage=st.binary(min_size=1, max_size=40))
def test_torn_tail_is_cut_and_appends_go_on(batches: list[list[bytes]], seg: int, cut: float,
                                           garbage: bytes) -> None:
    with tempfile.TemporaryDirectory() as d:
        written = [r for b in batches for r in b]
        with Journal(Path(d), 0, segment_bytes=seg, fsync=False) as j:
            for b in batches:
                j.append(b)
            last_seg = Path(d) / "p0000" / f"{j.segments[-1]:020d}.log"
            before_last = j.segments[-1]
        size = last_seg.stat().st_size
        # A crash mid-write: the last segment is cut anywhere, or ends in garbage.
        if size and cut < 0.5:
            with open(last_seg, "r+b") as f:
                f.truncate(int(size * cut * 2))
        else:
            with open(last_seg, "ab") as f:
                f.write(garbage)
        with Journal(Path(d), 0, segment_bytes=seg, fsync=False) as j:
            kept = [p for _, p in _read_all(j)]
            assert kept == written[: len(kept)]
            assert len(kept) >= before_last
            if not (size and cut < 0.5):
                assert len(kept) == len(written)
            assert j.end_offset == len(kept)
            assert j.append([b"x", b"y"]) == len(kept) + 1
            assert [p for _, p in _read_all(j)] == [*kept, b"x", b"y"]


def test_reader_stops_at_a_partial_record_then_sees_it_complete(tmp_path: Path) -> None:
    with Journal(tmp_path, 0) as j:
        j.append([b"one"])
        seg = tmp_path / "p0000" / f"{0:020d}.log"
        r = Journal(tmp_path, 0, readonly=True)
        assert r.read(0, 10) == [(0, b"one")]
        j.append([b"two-longer"])
        data = seg.read_bytes()
        # Hide the tail as if the write were in progress.
        seg.write_bytes(data[: len(data) - 3])
        assert r.read(1, 10) == [] and r.end_offset == 1
        seg.write_bytes(data)
        assert r.read(1, 10) == [(1, b"two-longer")]
        r.close()


def test_checksum_damage_in_a_closed_segment_is_an_error(tmp_path: Path) -> None:
    with Journal(tmp_path, 0, segment_bytes=64, fsync=False) as j:
        for i in range(10):
            j.append([f"record-{i}".encode() * 3])
        first = tmp_path / "p0000" / f"{0:020d}.log"
        data = bytearray(first.read_bytes())
        data[HEADER_SIZE + 2] ^= 0xFF
        first.write_bytes(bytes(data))
        with pytest.raises(JournalCorruptError, match="checksum"):
            j.read(0, 10)


@settings(max_examples=30, deadline=None)
@given(n=st.integers(20, 200), seg=st.integers(60, 300), keep=st.integers(0, 1000))
def test_retention_by_size_keeps_a_readable_suffix(n: int, seg: int, keep: int) -> None:
    with tempfile.TemporaryDirectory() as d, Journal(
        Path(d), 0, segment_bytes=seg, retention_bytes=keep, fsync=False
    ) as j:
        for i in range(n):
            j.append([f"{i:05d}".encode()])
        start = j.start_offset
        if keep:
            # Closed segments go once the total passes the limit; the active one always stays.
            assert j.size_bytes <= keep + seg or len(j.segments) == 1
            if keep < n * (HEADER_SIZE + 5) - 2 * seg:
                assert start > 0
        else:
            assert start == 0
        got = _read_all(j, 0)
        assert got[0][0] == start
        assert got == [(i, f"{i:05d}".encode()) for i in range(start, n)]


def test_retention_by_age_deletes_old_closed_segments(tmp_path: Path) -> None:
    # A fixed wall clock, before the files were written (none looks old), then moved on and
    # the files' times set against it.
    clock = [1_000_000_000.0]
    with Journal(tmp_path, 0, segment_bytes=64, retention=3600, fsync=False,
                 wall_clock=lambda: clock[0]) as j:
        for i in range(5):
            j.append([b"x" * 50 + bytes([i])])
        closed = j.segments[:-1]
        assert len(closed) == 4
        now = clock[0] = 2_000_000_000.0
        for base, age in zip(closed, (7200, 3601, 3599, 10), strict=True):
            os.utime(tmp_path / "p0000" / f"{base:020d}.log", (now - age, now - age))
        os.utime(tmp_path / "p0000" / f"{j.segments[-1]:020d}.log", (now, now))
        j.append([b"y" * 60])  # rolls, and retention runs
        # Older than an hour by the journal's clock: gone; younger: kept, and all after it.
        assert j.segments == [*closed[2:], 4, 5]
        assert _read_all(j)[0][0] == j.start_offset == closed[2]


def test_an_append_of_more_records_than_one_gathered_write_takes(tmp_path: Path) -> None:
    """Records are written by ``os.writev`` without a join, at most 1,024 buffers (512
    records) a call: thousands in one append come back in order, across a segment's end."""
    rng = random.Random(5)
    batch = [rng.randbytes(rng.randint(0, 300)) for _ in range(3_000)]
    with Journal(tmp_path, 0, segment_bytes=400_000, fsync=False) as j:
        j.append(batch[:10])
        assert j.append(batch[10:]) == len(batch) - 1
        assert [p for _, p in _read_all(j, step=999)] == batch
    with Journal(tmp_path, 0, readonly=True) as r:
        assert [p for _, p in _read_all(r, step=1_000)] == batch


@settings(max_examples=200, deadline=None)
@given(parts=st.lists(st.binary(min_size=0, max_size=40), max_size=60),
       limits=st.lists(st.integers(0, 120), min_size=1, max_size=8),
       iov=st.integers(1, 7))
def test_a_gathered_write_resumes_after_short_writes(parts: list[bytes], limits: list[int],
                                                     iov: int) -> None:
    """``_write_all`` writes every part in order whatever ``os.writev`` takes at once: here
    it takes at most ``limits[k]`` bytes at its k-th call (then all it is given), over
    ``iov`` buffers a call."""
    from unittest import mock

    from gridwatch.ingest import _journal

    calls = iter(limits)
    real = os.writev

    def short(fd: int, bufs: list[bytes]) -> int:
        cap = next(calls, None)
        data = b"".join(bufs)[:cap]
        return real(fd, [data]) if data else 0

    with mock.patch.object(_journal.os, "writev", short), \
            mock.patch.object(_journal, "_IOV_MAX", iov), tempfile.TemporaryFile() as f:
        _journal._write_all(f.fileno(), parts, sum(map(len, parts)))
        f.seek(0)
        assert f.read() == b"".join(parts)


def test_one_writer_per_partition(tmp_path: Path) -> None:
    with Journal(tmp_path, 1), pytest.raises(JournalLockedError, match="partition 1"):
        Journal(tmp_path, 1)
    Journal(tmp_path, 1).close()  # the lock goes with the writer


def test_fsynced_appends_and_empty_appends(tmp_path: Path) -> None:
    with Journal(tmp_path, 0) as j:
        assert j.append([]) == -1
        assert j.append([b"a", b"b"]) == 1
        assert j.append([]) == 1


def test_deadletters_keep_reason_payload_and_count(tmp_path: Path) -> None:
    with DeadLetters(tmp_path) as dl:
        dl.put("invalid_utf8", "meters/r/m1/reading", b"\xff\x00", "byte 0")
        dl.put("schema", "meters/r/m1/reading", b'{"a":1}', "kw: missing", index=3)
        assert dl.counts == {"invalid_utf8": 1, "schema": 1} and dl.total == 2
    letters = list(read_deadletters(tmp_path))
    assert [(d.reason, d.payload, d.index) for d in letters] == [
        ("invalid_utf8", b"\xff\x00", None), ("schema", b'{"a":1}', 3)]


def test_reading_past_the_end_waits_for_that_offset(tmp_path: Path) -> None:
    with Journal(tmp_path, 0, segment_bytes=100, fsync=False) as j:
        j.append([b"a"] * 5)
        r = Journal(tmp_path, 0, readonly=True)
        assert r.read(8, 10) == []
        j.append([f"r{i}".encode() for i in range(5, 12)])
        assert [o for o, _ in r.read(8, 10)] == [8, 9, 10, 11]
        r.close()


class JournalMachine(RuleBasedStateMachine):
    """Appends, reads, reopenings and torn tails in any order agree with a plain list."""

    def __init__(self) -> None:
        super().__init__()
        self.dir = tempfile.TemporaryDirectory()
        self.path = Path(self.dir.name)
        self.model: list[bytes] = []
        self.journal = Journal(self.path, 0, segment_bytes=120, fsync=False)
        self.reader = Journal(self.path, 0, readonly=True)

    @rule(batch=st.lists(records, max_size=6))
    def append(self, batch: list[bytes]) -> None:
        last = self.journal.append(batch)
        self.model.extend(batch)
        assert last == len(self.model) - 1

    @rule(start=st.integers(0, 80), n=st.integers(1, 30), use_reader=st.booleans())
    def read(self, start: int, n: int, use_reader: bool) -> None:
        j = self.reader if use_reader else self.journal
        assert j.read(start, n) == list(enumerate(self.model))[start:start + n]

    @rule(start=st.integers(0, 80), n=st.integers(1, 30), budget=st.integers(0, 400),
          use_reader=st.booleans())
    def read_bytes(self, start: int, n: int, budget: int, use_reader: bool) -> None:
        """A read bounded in bytes too: the records up to the one that brings their payloads
        to ``budget`` bytes (at least one)."""
        j = self.reader if use_reader else self.journal
        want: list[tuple[int, bytes]] = []
        held = 0
        for off, rec in list(enumerate(self.model))[start:start + n]:
            want.append((off, rec))
            held += len(rec)
            if held >= budget:
                break
        assert j.read(start, n, budget) == want

    @rule()
    def reopen(self) -> None:
        self.journal.close()
        self.journal = Journal(self.path, 0, segment_bytes=120, fsync=False)
        assert self.journal.end_offset == len(self.model)

    @rule(garbage=st.binary(min_size=1, max_size=30))
    def crash_with_torn_tail(self, garbage: bytes) -> None:
        self.journal.close()
        last = sorted((self.path / "p0000").glob("*.log"))[-1]
        with open(last, "ab") as f:
            f.write(garbage)
        assert self.reader.end_offset == len(self.model)  # a reader never counts the tail
        self.journal = Journal(self.path, 0, segment_bytes=120, fsync=False)
        assert self.journal.end_offset == len(self.model)

    @invariant()
    def ends_agree(self) -> None:
        assert self.journal.end_offset == len(self.model)
        assert self.reader.end_offset == len(self.model)

    def teardown(self) -> None:
        self.journal.close()
        self.reader.close()
        self.dir.cleanup()


TestJournalMachine = JournalMachine.TestCase
TestJournalMachine.settings = settings(max_examples=40, stateful_step_count=25, deadline=None)


def test_segments_also_roll_by_age(tmp_path: Path) -> None:
    now = [100.0]  # a fixed steady clock, moved by hand
    with Journal(tmp_path, 0, segment_age=60, fsync=False, clock=lambda: now[0]) as j:
        j.append([b"a"])
        now[0] += 60  # exactly the limit: not older than it yet
        j.append([b"b"])
        assert j.segments == [0]
        now[0] += 0.5
        j.append([b"c"])
        assert j.segments == [0, 2]
        now[0] += 59  # the new segment's age counts from its creation
        j.append([b"d"])
        assert j.segments == [0, 2]
        assert [p for _, p in _read_all(j)] == [b"a", b"b", b"c", b"d"]


def test_a_reader_at_the_end_finds_the_end_from_where_it_read(tmp_path: Path) -> None:
    """A reader that has read to the end of the last segment looks for the end from its read
    position, not from the segment's start (a replay's last poll used to check every record
    of the segment again): a record it has read and checked is not checked twice, records
    appended since are."""
    with Journal(tmp_path, 0, fsync=False) as j:
        j.append([b"x" * 100] * 50)
        r = Journal(tmp_path, 0, readonly=True)
        assert len(_read_all(r)) == 50
        seg = tmp_path / "p0000" / f"{0:020d}.log"
        data = bytearray(seg.read_bytes())
        data[HEADER_SIZE + 5] ^= 0xFF  # damage a record already read
        seg.write_bytes(bytes(data))
        assert r.end_offset == 50
        j.append([b"y" * 10] * 3)
        assert r.end_offset == 53 and [p for _, p in r.read(50, 10)] == [b"y" * 10] * 3
        # a fresh reader scans the segment from its start and stops at the damage
        fresh = Journal(tmp_path, 0, readonly=True)
        assert fresh.end_offset == 0
        fresh.close()
        r.close()
