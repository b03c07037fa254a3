"""Event time without a funnel: a watermark per source partition, small summaries to the clock.

:class:`SummarizedSource` wraps the dataflow's source (any ``FixedPartitionedSource`` or
``DynamicSource``). Each of its partitions, on the worker that reads it, groups the readings of
every batch it reads by their watch key (grid cell or hash shard) into one
:class:`ReadingBatch` per key, and adds one :class:`Watermark`: the newest event time the
partition has read and the watch keys it has not announced before. Readings then cross to their
cell's worker once, as a batch; only the summaries go to the one ``clock`` key, which ticks the
watch keys whose meters may all have gone quiet (a cell that still hears from any meter keeps
its own watermark, see :class:`~gridwatch.stream.CellLogic`).
"""

from __future__ import annotations

import math
import pickle
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import Any

from bytewax.inputs import (
    DynamicSource,
    FixedPartitionedSource,
    Source,
    StatefulSourcePartition,
    StatelessSourcePartition,
)
from bytewax.operators import StatefulLogic
from pydantic import BaseModel

from gridwatch._schemas import Reading
from gridwatch.ingest._assemble import ReadingFields, reading_of_fields
from gridwatch.stream._threads import keep_thread_state

__all__ = ["ClockLogic", "ReadingBatch", "SummarizedSource", "Tick", "Watermark"]

_EMPTY: list[Any] = []
#: How often the clock looks whether the end of an epoch has released a watermark.
_RELEASE_POLL = timedelta(milliseconds=100)


@dataclass(frozen=True, slots=True)
class Tick:
    """The event-time watermark reached ``now`` (epoch seconds)."""

    now: float


class ReadingBatch:
    """Readings of one watch key, in the order source partition ``part`` read them.

    A batch read from the journal may hold its readings as their given fields only
    (:meth:`of_fields`, from a :class:`~gridwatch.ingest._assemble.ReadingFields` run): the
    reading objects are then made at the first look at :attr:`readings`, which the cell's
    compiled lane spares most of them (it reads the fields, :meth:`fields`).

    A batch of fields crosses between the processes of a cluster as its fields. A batch of
    readings crosses pickled as columns (one tuple per field of :class:`Reading`), not as a
    tuple of pydantic objects each carrying its own state dict: about half the bytes and less
    work on both sides. The readings come back equal, field for field, with the same set of
    explicitly given fields, and without a second validation (they were validated where they
    entered the engine).
    """

    __slots__ = ("_readings", "_wire", "given", "key", "part", "plain")

    def __init__(self, key: str, readings: tuple[Reading, ...], part: str = "") -> None:
        self.key = key
        self.part = part
        self._readings: tuple[Reading, ...] | None = readings
        #: the readings' given fields, when the batch was made of them
        self.given: list[dict[str, Any]] | None = None
        self._wire: bytes | None = None
        #: True when the grouping found every reading's meter known to the registry and none
        #: an industrial customer's (``MeterFacts``, as the batch was made): no industrial
        #: readings to look for. Not carried across processes.
        self.plain = False

    @classmethod
    def of_fields(cls, key: str, given: list[dict[str, Any]], part: str = "") -> ReadingBatch:
        """The batch of readings given as their fields (each as :class:`Reading` holds it)."""
        batch = cls.__new__(cls)
        batch.key, batch.part, batch._readings, batch.given = key, part, None, given
        batch._wire = None
        batch.plain = False
        return batch

    @property
    def readings(self) -> tuple[Reading, ...]:
        readings = self._readings
        if readings is None:
            assert self.given is not None
            readings = self._readings = tuple(map(reading_of_fields, self.given))
        return readings

    def reading(self, i: int) -> Reading:
        """Reading ``i`` (the others not made, when the batch holds fields)."""
        if self._readings is None:
            assert self.given is not None
            return reading_of_fields(self.given[i])
        return self._readings[i]

    def fields(self) -> list[dict[str, Any]]:
        """Each reading's fields, by name (its given ones, or all of them), in order."""
        if self.given is not None:
            return self.given
        return [r.__dict__ for r in self.readings]

    def meter_ids(self) -> list[str]:
        """Each reading's meter, in order."""
        if self.given is not None:
            return [f["meter_id"] for f in self.given]
        return [r.meter_id for r in self.readings]

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ReadingBatch):
            return NotImplemented
        return (self.key, self.part, self.readings) == (other.key, other.part, other.readings)

    __hash__ = None  # type: ignore[assignment]  # (its readings are made at first look)

    def __repr__(self) -> str:
        n = len(self.given) if self.given is not None else len(self.readings)
        return f"ReadingBatch(key={self.key!r}, {n} readings, part={self.part!r})"

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        # bytewax pickles an item that crosses to another process twice (timely sizes the
        # message, then writes it): the batch is pickled once, its bytes kept for the second.
        wire = self._wire
        if wire is None:
            wire = self._wire = pickle.dumps(self._reduced(), protocol=pickle.HIGHEST_PROTOCOL)
        return _batch_of_wire, (wire,)

    def _reduced(self) -> tuple[Any, tuple[Any, ...]]:
        if self.given is not None:  # (its fields, as they are: no readings made either side)
            return _batch_of_fields, (self.key, self.given, self.part)
        if all(type(r) is Reading for r in self.readings):
            return _batch_from_columns, (self.key, self.part, *_to_columns(self.readings))
        return ReadingBatch, (self.key, self.readings, self.part)


_FIELDS: tuple[str, ...] = tuple(Reading.model_fields)
_new = object.__new__
_set_dict = object.__setattr__
# pydantic's own slots of every model (what its ``__setstate__`` fills)
_set_fields_set = BaseModel.__dict__["__pydantic_fields_set__"].__set__
_set_extra = BaseModel.__dict__["__pydantic_extra__"].__set__
_set_private = BaseModel.__dict__["__pydantic_private__"].__set__


def _to_columns(readings: tuple[Reading, ...]
                ) -> tuple[tuple[tuple[Any, ...], ...], tuple[tuple[str, ...], ...],
                           tuple[int, ...]]:
    """(one tuple of values per field, the distinct sets of given fields, each reading's
    index into them)."""
    dicts = [r.__dict__ for r in readings]
    columns = tuple(tuple(d[f] for d in dicts) for f in _FIELDS)
    sets: dict[frozenset[str], int] = {}
    which = tuple(sets.setdefault(frozenset(r.__pydantic_fields_set__), len(sets))
                  for r in readings)
    return columns, tuple(tuple(sorted(s)) for s in sets), which


def _batch_of_wire(wire: bytes) -> ReadingBatch:
    make, args = pickle.loads(wire)
    return make(*args)


def _batch_of_fields(key: str, given: list[dict[str, Any]], part: str) -> ReadingBatch:
    return ReadingBatch.of_fields(key, given, part)


def _batch_from_columns(key: str, part: str, columns: tuple[tuple[Any, ...], ...],
                        sets: tuple[tuple[str, ...], ...], which: tuple[int, ...]
                        ) -> ReadingBatch:
    fields_sets = [set(s) for s in sets]
    fields = _FIELDS
    readings: list[Reading] = []
    append = readings.append
    # every column has one value per reading (``_to_columns``)
    for row, k in zip(zip(*columns, strict=False), which, strict=True):
        r = _new(Reading)
        _set_dict(r, "__dict__", dict(zip(fields, row, strict=False)))
        _set_fields_set(r, fields_sets[k].copy())
        _set_extra(r, None)
        _set_private(r, None)
        append(r)
    return ReadingBatch(key, tuple(readings), part)


@dataclass(frozen=True, slots=True)
class Watermark:
    """What one source partition has read so far: its newest event time, and the watch keys it
    sees for the first time in this batch. ``idle``: the partition has nothing more to read
    for now (caught up, or at its end), so it must not hold the fleet's watermark back."""

    part: str
    max_ts: float
    keys: tuple[str, ...] = ()
    idle: bool = False


def _group(items: list[Any], part: str, key_of: Callable[[Reading], str],
           announced: set[str], newest: float) -> tuple[list[Any], float]:
    if len(items) == 1 and type(items[0]) is ReadingFields:
        of_meter = getattr(key_of, "of_meter", None)
        if of_meter is not None:
            return _group_fields(items[0].given, part, key_of, of_meter, announced, newest)
        items = items[0].readings()
    readings = [x for x in items if type(x) is Reading]
    if len(readings) != len(items):  # telemetry, or a subclass of Reading
        readings = [x for x in items if isinstance(x, Reading)]
        out: list[Any] = [x for x in items if not isinstance(x, Reading)]
    else:
        out = []
    if not readings:
        return out, newest
    _check(key_of)
    groups: dict[str, list[Reading]] = {}
    get = groups.get
    for r in readings:
        key = key_of(r)
        group = get(key)
        if group is None:
            groups[key] = [r]
        else:
            group.append(r)
    try:  # one timestamp: validated readings are all aware (UTC)
        ts = max(r.ts for r in readings).timestamp()
    except TypeError:  # aware and naive times mixed (readings built without validation)
        ts = max(r.ts.timestamp() for r in readings)
    out.extend(ReadingBatch(k, tuple(rs), part) for k, rs in groups.items())
    return _summary(out, groups, part, ts, announced, newest)


#: No kept facts (a ``key_of`` that keeps none): every meter looked up as unknown.
_NO_FACTS: Mapping[str, tuple[str, bool]] = MappingProxyType({})


def _group_fields(given: list[dict[str, Any]], part: str, key_of: Callable[[Reading], str],
                  of_meter: Callable[[str], str], announced: set[str], newest: float
                  ) -> tuple[list[Any], float]:
    """:func:`_group` of readings given as their fields: batches of fields, no objects.

    With kept facts (``key_of.known``: meter id → its watch key and whether it is an
    industrial customer's, as :class:`~gridwatch.stream._flow.MeterFacts` keeps them) a
    batch whose meters were all known and none industrial is marked
    :attr:`ReadingBatch.plain`."""
    _check(key_of)
    groups: dict[str, list[dict[str, Any]]] = {}
    get = groups.get
    # (without kept facts every meter counts as unknown: no batch is plain)
    kept_get = getattr(key_of, "known", _NO_FACTS).get
    mixed: set[str] = set()  # the groups with a meter unknown or an industrial customer's
    for f in given:
        meter_id = f["meter_id"]
        kept = kept_get(meter_id)
        if kept is None:
            key = of_meter(meter_id)
            mixed.add(key)
        else:
            key = kept[0]
            if kept[1]:
                mixed.add(key)
        group = get(key)
        if group is None:
            groups[key] = [f]
        else:
            group.append(f)
    ts = max(f["ts"] for f in given).timestamp()  # (checked: all in UTC)
    out: list[Any] = []
    for k, fs in groups.items():
        batch = ReadingBatch.of_fields(k, fs, part)
        batch.plain = k not in mixed
        out.append(batch)
    return _summary(out, groups, part, ts, announced, newest)


def _check(key_of: Callable[[Reading], str]) -> None:
    check = getattr(key_of, "check", None)
    if check is not None:  # kept facts (``MeterFacts``): a registry reload seen once a batch
        check()


def _summary(out: list[Any], groups: dict[str, Any], part: str, ts: float,
             announced: set[str], newest: float) -> tuple[list[Any], float]:
    """``out`` and the batch's :class:`Watermark` (the watch keys first seen in ``groups``)."""
    if ts > newest:
        newest = ts
    fresh = tuple(k for k in groups if k not in announced)
    announced.update(fresh)
    out.append(Watermark(part, newest, fresh))
    return out, newest


class _Summarizing:
    """What both kinds of partition do: group each inner batch by watch key, with one
    ``Watermark``; an idle (or ended) partition says so once."""

    inner: Any

    def _setup(self, part: str, key_of: Callable[[Reading], str]) -> None:
        self.part = part
        self.key_of = key_of
        self.announced: set[str] = set()
        self.newest = -math.inf
        self.idle = False
        self.ended = False

    def next_batch(self) -> list[Any]:
        if self.ended:
            raise StopIteration
        try:
            items = list(self.inner.next_batch())
        except StopIteration:
            self.ended = True
            return self._idle()
        if not items:
            return self._idle()
        self.idle = False
        out, self.newest = _group(items, self.part, self.key_of, self.announced, self.newest)
        return out

    def _idle(self) -> list[Any]:
        if self.idle or self.newest == -math.inf:
            return _EMPTY
        self.idle = True
        return [Watermark(self.part, self.newest, (), idle=True)]

    def next_awake(self) -> datetime | None:
        return None if self.ended else self.inner.next_awake()

    def close(self) -> None:
        self.inner.close()


class _FixedPart(_Summarizing, StatefulSourcePartition[Any, Any]):
    def __init__(self, inner: StatefulSourcePartition[Any, Any], part: str,
                 key_of: Callable[[Reading], str]) -> None:
        self.inner = inner
        self._setup(part, key_of)

    def snapshot(self) -> Any:
        return self.inner.snapshot()


class _DynamicPart(_Summarizing, StatelessSourcePartition[Any]):
    def __init__(self, inner: StatelessSourcePartition[Any], part: str,
                 key_of: Callable[[Reading], str]) -> None:
        self.inner = inner
        self._setup(part, key_of)


class SummarizedSource(FixedPartitionedSource[Any, Any]):
    """``inner``'s items, with readings grouped per watch key and a watermark per batch.

    Recovery state is ``inner``'s, untouched. A ``DynamicSource`` is wrapped by
    :func:`summarized`, which returns a dynamic source instead.
    """

    def __init__(self, inner: FixedPartitionedSource[Any, Any],
                 key_of: Callable[[Reading], str]) -> None:
        self.inner = inner
        self.key_of = key_of

    def list_parts(self) -> list[str]:
        # (bytewax asks every worker, on the worker's own thread, as it builds the dataflow)
        keep_thread_state()
        return self.inner.list_parts()

    def build_part(self, step_id: str, for_part: str, resume_state: Any | None) -> _FixedPart:
        return _FixedPart(self.inner.build_part(step_id, for_part, resume_state), for_part,
                          self.key_of)


class _SummarizedDynamic(DynamicSource[Any]):
    def __init__(self, inner: DynamicSource[Any], key_of: Callable[[Reading], str]) -> None:
        self.inner = inner
        self.key_of = key_of

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _DynamicPart:
        keep_thread_state()  # (called on each worker's own thread)
        return _DynamicPart(self.inner.build(step_id, worker_index, worker_count),
                            f"w{worker_index}", self.key_of)


def summarized(source: Source[Any], key_of: Callable[[Reading], str]) -> Source[Any]:
    """Wrap a bytewax source so that it emits reading batches and watermarks. A source that
    can give a read's readings as their fields (``JournalSource.as_fields`` None: unless
    told not to) is asked to: their batches make reading objects only for the readings that
    need one."""
    if hasattr(source, "as_fields") and source.as_fields is None:
        source.as_fields = True
    if isinstance(source, FixedPartitionedSource):
        return SummarizedSource(source, key_of)
    if isinstance(source, DynamicSource):
        return _SummarizedDynamic(source, key_of)
    raise TypeError(f"unsupported source {type(source).__name__}")


class ClockLogic(StatefulLogic[Watermark, tuple[str, Tick], bytes]):
    """The fleet's event-time watermark from the partitions' summaries; sends a :class:`Tick`
    to every watch key it has heard of each time the watermark crosses a ``tick_s`` boundary.
    It sees one small item per source batch, never a reading.

    The watermark is the newest event time of the slowest partition that still has readings
    to give (a partition that is caught up or ended does not hold it back; when all are, the
    newest of all), minus ``lateness_s``: partitions read at their own pace (two processes
    replaying a journal drift apart), and a cell must not be ticked past readings that a
    slower partition has yet to deliver.

    **One epoch behind.** The ticks must not overtake readings on their way to a cell: bytewax
    does not order the items of two streams within an epoch, and the readings a summary speaks
    of may still be in flight to another process. But a stateful step takes the items of an
    epoch only after every item of the epochs before it, and bytewax calls ``snapshot()`` on a
    step's awoken keys at the end of each epoch, with or without recovery (bytewax 0.21's
    ``stateful_batch`` operator). So the clock releases, at that point, the watermark of the
    summaries received up to then, and ticks only up to the released watermark: every reading
    it speaks of reaches its cell first. At the end of a finite input (``on_eof``) the last
    watermark is released at once. Cells that still hear from their meters do not wait for
    the clock (they tick from their own readings); only wholly silent cells see the lag.

    ``notify_at`` is wall-clock in bytewax, so it is only used for the idle case: when nothing
    arrives for ``idle_s`` wall seconds the watermark advances by the wall time elapsed.

    ``release_ticks`` (a cluster whose partitions share the meters): every release that moves
    the watermark ticks every key, boundary or not, so that a cell holding readings for a
    partition that sends it nothing steps them within an epoch (see ``CellLogic``); a cell's
    watch still acts only on ``tick_s`` boundaries.
    """

    def __init__(self, resume: bytes | None, tick_s: float, lateness_s: float,
                 idle_s: float, release_ticks: bool = False) -> None:
        import pickle

        #: tick every key at each release, not only when a ``tick_s`` boundary is crossed
        self.release_ticks = release_ticks
        self.tick_s = tick_s
        self.lateness_s = lateness_s
        self.idle_s = idle_s
        self.wm = -math.inf
        self.next_tick = -math.inf
        self.keys: set[str] = set()
        self.parts: dict[str, float] = {}
        self.active: set[str] = set()
        #: the watermark of the summaries received so far, and the part of it released
        self.low = -math.inf
        self.released = -math.inf
        if resume:
            self.wm, self.next_tick, keys, self.parts, active, self.low = pickle.loads(resume)
            self.keys = set(keys)
            self.active = set(active)
            self.released = self.low  # every epoch before the resume point is over
        self.last_wall = datetime.now(UTC)

    def _ticks(self) -> list[tuple[str, Tick]]:
        if self.wm > -math.inf and self.wm >= self.next_tick:
            self.next_tick = (self.wm // self.tick_s + 1) * self.tick_s
            tick = Tick(self.wm)
            return [(k, tick) for k in sorted(self.keys)]
        return _EMPTY

    def on_item(self, value: Watermark) -> tuple[list[tuple[str, Tick]], bool]:
        self.keys.update(value.keys)
        self.last_wall = datetime.now(UTC)
        if value.max_ts > self.parts.get(value.part, -math.inf):
            self.parts[value.part] = value.max_ts
        if value.idle:
            self.active.discard(value.part)
        else:
            self.active.add(value.part)
        parts = self.parts
        low = min(parts[p] for p in self.active) if self.active else max(parts.values())
        self.low = max(self.low, low - self.lateness_s)
        return self._release(), StatefulLogic.RETAIN

    def _release(self) -> list[tuple[str, Tick]]:
        wm = self.released
        if wm > self.wm:
            if self.next_tick == -math.inf:
                self.next_tick = wm  # the first release ticks: it may be the only one
            self.wm = wm
            if self.release_ticks and wm < self.next_tick:
                # Cells that hold readings for a partition that sends them nothing may step
                # them up to here now, rather than at the next boundary.
                tick = Tick(wm)
                return [(k, tick) for k in sorted(self.keys)]
        return self._ticks()

    def on_eof(self) -> tuple[list[tuple[str, Tick]], bool]:
        self.released = self.low
        return self._release(), StatefulLogic.RETAIN

    def on_notify(self) -> tuple[list[tuple[str, Tick]], bool]:
        out = self._release()
        now = datetime.now(UTC)
        if self.idle_s > 0 and self.wm > -math.inf and \
                now - self.last_wall >= timedelta(seconds=self.idle_s):
            self.wm += (now - self.last_wall).total_seconds()
            self.last_wall = now
            out = out + self._ticks()
        return out, StatefulLogic.RETAIN

    def notify_at(self) -> datetime | None:
        """Soon, while a watermark waits for release (the last summaries before the input
        went quiet must still tick the cells: nothing else would wake the clock); after
        ``idle_s`` of silence in live mode."""
        if self.low > self.wm:
            return datetime.now(UTC) + _RELEASE_POLL
        if self.idle_s <= 0 or self.wm == -math.inf:
            return None
        return self.last_wall + timedelta(seconds=self.idle_s)

    def snapshot(self) -> bytes:
        """The end of an epoch: release the watermark received so far (see above)."""
        import pickle

        self.released = self.low
        return pickle.dumps((self.wm, self.next_tick, sorted(self.keys), self.parts,
                             sorted(self.active), self.low))
