"""Placement of grid cells on the workers that read their readings.

bytewax 0.21 sends an item of a keyed stream to worker ``h % worker_count``, where ``h`` is
Rust's ``DefaultHasher`` (SipHash-1-3 with both keys zero) over the key string, which Rust's
``Hash for str`` feeds as the string's UTF-8 bytes followed by one ``0xff`` byte (see
docs/scaling.md, "Where bytewax sends a key"). :func:`route` computes the same worker in
Python, so a cell can be given a key that lands on the worker chosen for it: the one that
reads the journal partition its meters arrive on. Its readings then never cross between
processes.

:class:`Placement` turns the configured placement (``engine.placement``: grid-cell patterns
per process) into those keys. The key of a cell is a function of the configuration only (the
cell, the patterns, the numbers of processes and workers), never of which partition delivered
first, so a restart or a recovery sees the same keys. Cells the placement does not name keep
their plain key, ``cell:<id>``.
"""

from __future__ import annotations

import fnmatch
import zlib
from collections.abc import Mapping, Sequence

__all__ = ["Placement", "placed_key", "route", "siphash13"]

_MASK = (1 << 64) - 1
#: Suffixes tried before giving up on a key (each lands on a given worker with probability
#: 1/workers, so 4096 tries miss only for absurd worker counts).
_MAX_TRIES = 4096


def _rotl(x: int, b: int) -> int:
    return ((x << b) | (x >> (64 - b))) & _MASK


def _round(v0: int, v1: int, v2: int, v3: int) -> tuple[int, int, int, int]:
    v0 = (v0 + v1) & _MASK
    v1 = _rotl(v1, 13) ^ v0
    v0 = _rotl(v0, 32)
    v2 = (v2 + v3) & _MASK
    v3 = _rotl(v3, 16) ^ v2
    v0 = (v0 + v3) & _MASK
    v3 = _rotl(v3, 21) ^ v0
    v2 = (v2 + v1) & _MASK
    v1 = _rotl(v1, 17) ^ v2
    v2 = _rotl(v2, 32)
    return v0, v1, v2, v3


def siphash13(data: bytes, k0: int = 0, k1: int = 0, *, c_rounds: int = 1,
              d_rounds: int = 3) -> int:
    """SipHash of ``data`` with the 128-bit key ``(k0, k1)``, as an unsigned 64-bit integer.

    The defaults are SipHash-1-3 with a zero key: Rust's ``DefaultHasher::new()``.
    ``c_rounds=2, d_rounds=4`` gives SipHash-2-4, the reference paper's variant."""
    v0 = k0 ^ 0x736F6D6570736575
    v1 = k1 ^ 0x646F72616E646F6D
    v2 = k0 ^ 0x6C7967656E657261
    v3 = k1 ^ 0x7465646279746573
    n = len(data)
    end = n - n % 8
    for i in range(0, end, 8):
        m = int.from_bytes(data[i:i + 8], "little")
        v3 ^= m
        for _ in range(c_rounds):
            v0, v1, v2, v3 = _round(v0, v1, v2, v3)
        v0 ^= m
    m = ((n & 0xFF) << 56) | int.from_bytes(data[end:], "little")
    v3 ^= m
    for _ in range(c_rounds):
        v0, v1, v2, v3 = _round(v0, v1, v2, v3)
    v0 ^= m
    v2 ^= 0xFF
    for _ in range(d_rounds):
        v0, v1, v2, v3 = _round(v0, v1, v2, v3)
    return v0 ^ v1 ^ v2 ^ v3


def route(key: str, workers: int) -> int:
    """The worker (0 .. ``workers`` - 1) bytewax 0.21 sends key ``key`` to in a stateful step
    of a dataflow run by ``workers`` workers in all."""
    if workers < 1:
        raise ValueError(f"workers must be at least 1, not {workers}")
    return siphash13(key.encode() + b"\xff") % workers


def placed_key(key: str, worker: int, workers: int) -> str:
    """``key`` itself when bytewax sends it to ``worker``, else the first of ``key#1``,
    ``key#2``, ... that it sends there. Deterministic: the same arguments give the same key."""
    if not 0 <= worker < workers:
        raise ValueError(f"worker {worker} is not one of 0..{workers - 1}")
    if route(key, workers) == worker:
        return key
    for i in range(1, _MAX_TRIES):
        candidate = f"{key}#{i}"
        if route(candidate, workers) == worker:
            return candidate
    raise ValueError(f"no key for {key!r} lands on worker {worker} of {workers}")


class Placement:
    """Which worker watches which grid cell, and the key that sends the cell there.

    ``cells``: process id -> grid-cell patterns (``fnmatch``: ``north-*``, ``city-c00?``, or a
    cell id). A cell matched by a process's pattern is watched on that process, on one of its
    ``workers_per_process`` workers (process ``p``'s workers are ``p * workers_per_process``
    onwards, as timely numbers them; a stable hash of the cell picks one). A cell no pattern
    matches is not placed: its key is the plain ``cell:<id>`` and bytewax's hash decides.

    ``exclusive``: each placed cell's readings reach only its own process (its collector is
    the only one subscribed to the cell's topics), so the cell steps them as they come rather
    than waiting for every partition of the cluster (see ``CellLogic``).
    """

    def __init__(self, cells: Mapping[int, Sequence[str]], processes: int,
                 workers_per_process: int = 1, *, exclusive: bool = False) -> None:
        if processes < 1 or workers_per_process < 1:
            raise ValueError("processes and workers_per_process must be at least 1")
        for pid in cells:
            if not 0 <= pid < processes:
                raise ValueError(f"the placement names process {pid}, but the cluster has "
                                 f"{processes} (ids 0..{processes - 1})")
        self.processes = processes
        self.workers_per_process = workers_per_process
        self.workers = processes * workers_per_process
        self.exclusive = exclusive
        self._patterns: list[tuple[str, int]] = [
            (pattern, pid) for pid in sorted(cells) for pattern in cells[pid]]
        self._keys: dict[str, str] = {}
        self._placed: dict[str, bool] = {}

    def process_of(self, cell: str) -> int | None:
        """The process the placement gives ``cell``, or None. Exact ids before patterns, then
        patterns in process order."""
        for pattern, pid in self._patterns:
            if pattern == cell:
                return pid
        for pattern, pid in self._patterns:
            if fnmatch.fnmatchcase(cell, pattern):
                return pid
        return None

    def worker_of(self, cell: str) -> int | None:
        """The worker that watches ``cell`` when it is placed, else None."""
        pid = self.process_of(cell)
        if pid is None:
            return None
        w = self.workers_per_process
        return pid * w + (zlib.crc32(cell.encode()) % w if w > 1 else 0)

    def key(self, cell: str) -> str:
        """The watch key of ``cell``: one bytewax routes to its worker when placed, else
        ``cell:<id>``. Computed once per cell."""
        key = self._keys.get(cell)
        if key is None:
            worker = self.worker_of(cell)
            plain = f"cell:{cell}"
            key = plain if worker is None else placed_key(plain, worker, self.workers)
            self._keys[cell] = key
        return key

    def is_placed(self, key: str) -> bool:
        """Whether watch key ``key`` is the key of a cell this placement places (a function of
        the key and the configuration, whichever worker asks)."""
        placed = self._placed.get(key)
        if placed is None:
            cell = key[5:].split("#", 1)[0] if key.startswith("cell:") else ""
            placed = bool(cell) and self.process_of(cell) is not None and \
                self.key(cell) == key
            self._placed[key] = placed
        return placed
