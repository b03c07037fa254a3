"""A bounded, durable FIFO of line-protocol batches on disk.

Each appended batch is one segment file ``<seq>.lp`` (16 decimal digits, so names sort in
order), written to a temporary name, fsynced and renamed: a crash leaves either the whole
segment or none of it. Segments are read back oldest first and removed only once written, so
the spool survives restarts and hands points back in the order they came.

A spool may be shared by two threads (the storage writer drains it while the dataflow's worker
spools what the writer has not reached at an epoch's end): each operation holds a lock.
"""

from __future__ import annotations

import contextlib
import errno
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Spool"]

_SUFFIX = ".lp"
_DISK_FULL = frozenset({errno.ENOSPC, errno.EDQUOT})


@dataclass(frozen=True)
class _Segment:
    seq: int
    nbytes: int
    lines: int


class Spool:
    """Segments of line protocol under ``directory``, at most ``max_bytes`` in total.

    ``append`` returns False (and writes nothing) when the batch does not fit, or when the
    disk is full (then :attr:`disk_full` says so): the caller counts and reports what it could
    not keep.
    """

    def __init__(self, directory: Path, max_bytes: int, *, fsync: bool = True) -> None:
        self.directory = Path(directory)
        self.max_bytes = max_bytes
        self._fsync = fsync
        self.directory.mkdir(parents=True, exist_ok=True)
        for leftover in self.directory.glob("*.tmp"):
            leftover.unlink()  # an append that crashed before its rename: never acknowledged
        self._segments: dict[int, _Segment] = {}
        for path in sorted(self.directory.glob(f"*{_SUFFIX}")):
            try:
                seq = int(path.stem)
            except ValueError:
                continue
            data = path.read_bytes()
            self._segments[seq] = _Segment(seq, len(data), data.count(b"\n"))
        #: Why the last append failed for want of disk space (None when it did not).
        self.disk_full: str | None = None
        self._next = max(self._segments, default=0) + 1
        self._lock = threading.Lock()
        self._bytes = sum(s.nbytes for s in self._segments.values())
        self._lines = sum(s.lines for s in self._segments.values())

    def __len__(self) -> int:
        """Number of segments waiting."""
        return len(self._segments)

    @property
    def size_bytes(self) -> int:
        return self._bytes

    @property
    def points(self) -> int:
        """Number of points (lines) waiting."""
        return self._lines

    def fits(self, nbytes: int) -> bool:
        return self._bytes + nbytes <= self.max_bytes

    def append(self, lines: Sequence[str]) -> bool:
        """Store ``lines`` durably as the newest segment; False if they do not fit."""
        return not lines or self.add(lines) is not None

    def add(self, lines: Sequence[str]) -> int | None:
        """Store ``lines`` (at least one) durably as the newest segment and return its id, for
        :meth:`remove`; None if they do not fit."""
        data = ("\n".join(lines) + "\n").encode("utf-8")
        with self._lock:
            if not self.fits(len(data)):
                return None
            seq = self._next
            final = self.directory / f"{seq:016d}{_SUFFIX}"
            tmp = final.with_suffix(".tmp")
            try:
                with open(tmp, "wb") as fh:
                    fh.write(data)
                    if self._fsync:
                        fh.flush()
                        os.fsync(fh.fileno())
            except OSError as exc:
                with contextlib.suppress(OSError):
                    tmp.unlink()
                if exc.errno not in _DISK_FULL:
                    raise
                self.disk_full = f"{exc.strerror} ({self.directory})"
                return None
            self.disk_full = None
            os.replace(tmp, final)
            if self._fsync:
                self._sync_dir()
            self._next += 1
            self._segments[seq] = _Segment(seq, len(data), len(lines))
            self._bytes += len(data)
            self._lines += len(lines)
            return seq

    def take(self, max_lines: int) -> tuple[list[int], list[str]]:
        """The oldest segments, whole, up to ``max_lines`` lines (at least one segment), as
        ``(segment ids, lines)``; nothing is removed until :meth:`remove`."""
        seqs: list[int] = []
        lines: list[str] = []
        with self._lock:
            for seq in sorted(self._segments):
                seg = self._segments[seq]
                if seqs and len(lines) + seg.lines > max_lines:
                    break
                text = (self.directory / f"{seq:016d}{_SUFFIX}").read_text(encoding="utf-8")
                lines.extend(line for line in text.split("\n") if line)
                seqs.append(seq)
        return seqs, lines

    def remove(self, seqs: Sequence[int]) -> None:
        """Drop written segments (ids no longer held are passed over)."""
        with self._lock:
            for seq in seqs:
                seg = self._segments.pop(seq, None)
                if seg is None:
                    continue
                with contextlib.suppress(FileNotFoundError):
                    (self.directory / f"{seq:016d}{_SUFFIX}").unlink()
                self._bytes -= seg.nbytes
                self._lines -= seg.lines

    def _sync_dir(self) -> None:
        fd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
