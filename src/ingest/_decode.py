"""Decoding of MQTT payloads into readings and device telemetry.

A pure core: :class:`Decoder` takes a topic, the payload bytes and the receiving clock and returns
what it accepted plus one :class:`Rejection` per bad item, so the good readings of a batch that
holds a bad one are kept. It remembers, per meter, the newest accepted timestamp and a bounded set
of accepted timestamps, to reject readings that run backwards too far and duplicates of readings
already accepted (QoS 1 delivers at least once; a redelivery after a crash must not double).

Reason codes are short stable strings, used as Prometheus label values and in dead letters.
"""

from __future__ import annotations

import json
from array import array
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final, TypeAlias, cast

from pydantic import ValidationError
from pydantic_core import CoreSchema, SchemaValidator

from gridwatch._schemas import DeviceTelemetry, Reading, _check_timestamp
from gridwatch.ingest._assemble import YEAR_2000, phases_agree, reading_of_fields
from gridwatch.ingest._config import IngestSettings, TopicSettings
from gridwatch.ingest._journal import BATCH_TAG, compact_fields, split_batch_record

__all__ = [
    "REASONS",
    "DecodeError",
    "DecodeResult",
    "Decoder",
    "Item",
    "Rejection",
    "decode",
    "describe_validation",
    "micros",
    "topic_matches",
]

Item: TypeAlias = Reading | DeviceTelemetry

INVALID_UTF8: Final = "invalid_utf8"
INVALID_JSON: Final = "invalid_json"
SCHEMA: Final = "schema"
NON_FINITE: Final = "non_finite"
OUT_OF_RANGE: Final = "out_of_range"
FUTURE_TIMESTAMP: Final = "future_timestamp"
STALE_TIMESTAMP: Final = "stale_timestamp"
DUPLICATE: Final = "duplicate"
TOO_LARGE: Final = "too_large"
UNKNOWN_TOPIC: Final = "unknown_topic"
TOPIC_MISMATCH: Final = "topic_mismatch"
EMPTY_BATCH: Final = "empty_batch"
INTERNAL_ERROR: Final = "internal_error"

#: Every reason code the decoder (and the file reader) can give.
REASONS: Final[tuple[str, ...]] = (
    INVALID_UTF8, INVALID_JSON, SCHEMA, NON_FINITE, OUT_OF_RANGE, FUTURE_TIMESTAMP,
    STALE_TIMESTAMP, DUPLICATE, TOO_LARGE, UNKNOWN_TOPIC, TOPIC_MISMATCH, EMPTY_BATCH,
    INTERNAL_ERROR,
)

# The schema checks the future itself against this context; the decoder does it with its own
# tolerance so it can give the reason ``future_timestamp`` rather than a generic schema error.
_NO_FUTURE_CHECK: Final = timedelta.max


_PHASE_FIELDS: Final = ("voltage", "current")


def _scalar_or_tuple(field: dict[str, Any], name: str) -> dict[str, Any]:
    """``Reading``'s schema of a per-phase field (``voltage``, ``current``) without the Python
    function that turns a lone number into a one-phase tuple (``_scalar_to_tuple``): a lone
    number is taken by a strict float of the phases' own limits (an int or a float, never a
    bool or a string, as that function lets through), a list by the tuple as before;
    :func:`_finish` makes the tuple of the lone number."""
    inner = field["schema"]["schema"]
    if field["schema"]["type"] != "default" or inner["type"] != "function-before" or \
            inner["function"]["function"] != Reading._scalar_to_tuple or \
            inner["schema"]["type"] != "nullable" or \
            inner["schema"]["schema"]["type"] != "tuple" or \
            len(inner["schema"]["schema"]["items_schema"]) != 1:
        raise ImportError(f"Reading.{name} is not validated as _decode expects")
    phases = inner["schema"]["schema"]
    lone = {**phases["items_schema"][0], "strict": True}
    either = {"type": "nullable",
              "schema": {"type": "union", "choices": [lone, phases]}}
    return {**field, "schema": {**field["schema"], "schema": either}}


def _without_python_checks() -> tuple[SchemaValidator, SchemaValidator]:
    """Validators of one reading and of a list of them: ``Reading``'s own core schema, less
    its Python validators (the timestamp's, ``_check_timestamp``, the per-phase fields'
    ``_scalar_to_tuple`` and the model's ``_phases_agree``), which pydantic-core would call
    per reading. :func:`_finish` does their work in one plain loop; whatever it cannot vouch
    for is validated by ``Reading``."""
    top = Reading.__pydantic_core_schema__
    if top["type"] != "function-after" or top["schema"]["type"] != "model":
        raise ImportError("Reading's core schema is not the shape _decode expects")
    model = dict(top["schema"])
    fields_schema = dict(model["schema"])
    fields = dict(fields_schema["fields"])
    ts = dict(fields["ts"])
    if ts["schema"]["type"] != "function-after" or \
            ts["schema"]["function"]["function"] is not _check_timestamp:
        raise ImportError("Reading.ts is not validated by _check_timestamp as _decode expects")
    ts["schema"] = ts["schema"]["schema"]
    fields["ts"] = ts
    for name in _PHASE_FIELDS:
        fields[name] = _scalar_or_tuple(fields[name], name)
    fields_schema["fields"] = fields
    model["schema"] = fields_schema
    model.pop("ref", None)
    one = cast(CoreSchema, model)
    return (SchemaValidator(one),
            SchemaValidator(cast(CoreSchema, {"type": "list", "items_schema": one})))


_ONE_UNCHECKED, _LIST_UNCHECKED = _without_python_checks()


def _finish(items: list[Reading]) -> bool:
    """Do for readings validated without ``Reading``'s Python validators what those would have
    done: the timestamp aware, in UTC, not before 2000 (``_check_timestamp``; the future is
    the decoder's own check), a lone voltage or current number as a one-phase tuple
    (``_scalar_to_tuple``) and as many voltage as current phases (``_phases_agree``).
    False when an item needs the full validation (which then says why)."""
    for item in items:
        d = item.__dict__
        ts = d["ts"]
        if ts.utcoffset() is None:  # naive (a tzinfo that gives no offset too)
            return False
        try:
            ts = ts.astimezone(UTC)
        except OverflowError:
            return False
        if ts < YEAR_2000:
            return False
        d["ts"] = ts
        if not phases_agree(d):
            return False
    return True


_RANGE_ERRORS: Final = frozenset({
    "greater_than", "greater_than_equal", "less_than", "less_than_equal",
    "too_long", "too_short",
})


class DecodeError(ValueError):
    """A payload (or one item of it) cannot be accepted. ``reason`` is a stable code from
    :data:`REASONS`; ``detail`` says which value was wrong and why."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True, slots=True)
class Rejection:
    """One rejected payload or batch item: why, and the bytes to keep as a dead letter.

    ``index`` is the position of the item in a batch (``None`` for the whole payload).
    """

    reason: str
    detail: str
    payload: bytes
    index: int | None = None


@dataclass(slots=True)
class DecodeResult:
    accepted: list[Item] = field(default_factory=list)
    rejected: list[Rejection] = field(default_factory=list)
    #: the journal record of each accepted item, in order, when the decoder has them (a
    #: compact payload's readings as sent: ``compact_readings``); None: write
    #: ``encode_items(accepted)``
    records: list[bytes] | None = None
    #: readings accepted as their given fields only (each as ``Reading`` holds it: what
    #: ``reading_of_fields`` takes), in order after those of ``accepted``, when the decoder
    #: makes no objects (``Decoder.objects``); their records are in ``records``
    given: list[dict[str, Any]] | None = None

    @property
    def count(self) -> int:
        """How many items were accepted, as objects or as their fields."""
        return len(self.accepted) + (len(self.given) if self.given is not None else 0)


def describe_validation(exc: ValidationError) -> tuple[str, str]:
    """Map a pydantic error to ``(reason, detail)``: the first bad field, its problem and value."""
    errors = exc.errors(include_url=False)
    first = errors[0]
    loc = ".".join(str(p) for p in first["loc"]) or "(root)"
    kind = first["type"]
    msg = first["msg"]
    value = first.get("input")
    if kind == "finite_number":
        reason = NON_FINITE
    elif kind in _RANGE_ERRORS or (kind == "value_error" and "before 2000" in msg):
        reason = OUT_OF_RANGE
    else:
        reason = SCHEMA
    if kind == "extra_forbidden":
        msg = "unknown field"
    shown = "" if isinstance(value, dict | list) else f" (got {value!r:.80})"
    more = f"; and {len(errors) - 1} more" if len(errors) > 1 else ""
    return reason, f"{loc}: {msg}{shown}{more}"


_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_MICRO: Final = timedelta(microseconds=1)


def topic_matches(topic_filter: str, topic: str) -> bool:
    """Whether ``topic`` matches the MQTT subscription ``topic_filter`` (MQTT 3.1.1/5 §4.7).

    ``+`` matches one level, a final ``#`` the rest (the parent level included: ``a/#`` matches
    ``a``); a topic starting with ``$`` matches no filter that starts with a wildcard. The same
    answers as paho-mqtt's ``topic_matches_sub`` (a property test compares them), without
    importing an MQTT client into the decoder.
    """
    return _matches(topic_filter.split("/"), topic.split("/"), not topic.startswith("$"))


def _matches(pattern: list[str], levels: list[str], wild_first: bool) -> bool:
    """:func:`topic_matches` on a filter and a topic already split into levels."""
    for i in range(len(levels) + 1):
        wild = wild_first or i > 0
        if wild and i == len(pattern) - 1 and pattern[i] == "#":
            return True
        if i == len(levels):
            return i == len(pattern)
        if i >= len(pattern):
            return False
        if pattern[i] != levels[i] and not (wild and pattern[i] == "+"):
            return False
    return False  # unreachable: the loop returns at i == len(levels)


def micros(ts: datetime) -> int:
    """An aware time in microseconds since the epoch (:meth:`Decoder.admit_at`'s key)."""
    return (ts - _EPOCH) // _MICRO


def _level(topic_levels: list[str], level: int) -> str | None:
    return topic_levels[level] if level < len(topic_levels) else None


class Decoder:
    """Turns MQTT messages into validated items; keeps the small per-meter memory that duplicate
    and stale-timestamp checks need.

    Not thread-safe: one decoder belongs to one collector's writer thread.
    """

    def __init__(
        self,
        topics: TopicSettings | None = None,
        ingest: IngestSettings | None = None,
        *,
        max_meters: int = 2_000_000,
    ) -> None:
        self.topics = topics or TopicSettings()
        t = self.topics
        #: (kind, filter levels), in the order a topic is matched against them
        self._routes = [(kind, flt.split("/")) for kind, filters in (
            ("reading", t.reading_filters), ("batch", t.batch_filters),
            ("telemetry", (t.telemetry,))) for flt in filters]
        ingest = ingest or IngestSettings()
        self.max_payload_bytes = ingest.max_payload_bytes
        self.max_future = timedelta(seconds=ingest.max_future_s)
        self.max_backwards = timedelta(seconds=ingest.max_backwards_s)
        self._max_backwards_us = self.max_backwards // _MICRO
        self.per_meter = ingest.dedup_per_meter
        self.max_meters = max_meters
        #: Whether accepted readings are made :class:`Reading` objects. A collector whose
        #: journal has no reader in its process (the engine's collector process) needs only
        #: their records: with False, a compact payload whose records are kept as sent gives
        #: its readings as their fields (:attr:`DecodeResult.given`), checked and remembered
        #: exactly as objects are, and anything else its objects as before.
        self.objects = True
        # meter_id -> array of accepted timestamps (microseconds since the epoch): element 0
        # is the newest, the rest the last ``per_meter`` accepted, oldest first. Compact on
        # purpose: a collector may see a million meters.
        self._seen: dict[str, array[int]] = {}

    # -- memory of accepted readings -------------------------------------------------------
    def remember(self, item: Item) -> None:
        """Record an accepted reading (also used to warm up from the journal after a restart)."""
        if isinstance(item, Reading):
            self.remember_key(item.meter_id, item.ts)

    def remember_key(self, meter_id: str, ts: datetime) -> None:
        """Record that ``meter_id`` has an accepted reading at ``ts``."""
        key = micros(ts)
        entry = self._seen.get(meter_id)
        if entry is None:
            if len(self._seen) >= self.max_meters:
                # Forget the meter first seen longest ago (insertion order).
                del self._seen[next(iter(self._seen))]
            self._seen[meter_id] = array("q", (key, key))
            return
        if key in entry[1:]:
            return
        if key > entry[0]:
            entry[0] = key
        entry.append(key)
        if len(entry) > self.per_meter + 1:
            del entry[1]

    def admit(self, item: Item) -> None:
        """Check ``item`` against the per-meter memory (duplicate, stale) and remember it;
        raises :class:`DecodeError` when it must be rejected. One lookup: this runs for every
        reading."""
        if isinstance(item, Reading):
            self.admit_at(item.meter_id, item.ts)

    def admit_at(self, meter_id: str, ts: datetime, key: int | None = None) -> None:
        """:meth:`admit` of a reading of ``meter_id`` at ``ts`` (an aware time); ``key``, when
        given, is ``ts`` in microseconds since the epoch (readings of one interval share it)."""
        if key is None:
            key = (ts - _EPOCH) // _MICRO
        entry = self._seen.get(meter_id)
        if entry is None:
            if len(self._seen) >= self.max_meters:
                del self._seen[next(iter(self._seen))]
            self._seen[meter_id] = array("q", (key, key))
            return
        if key > entry[0]:  # newer than any kept: neither a duplicate nor stale (in order)
            entry[0] = key
        else:
            if key in entry[1:]:
                raise DecodeError(DUPLICATE, f"meter {meter_id} already has a reading at "
                                  f"{ts.isoformat()}")
            if entry[0] - key > self._max_backwards_us:
                self._check_history(meter_id, ts)  # raises with the full message
        entry.append(key)
        if len(entry) > self.per_meter + 1:
            del entry[1]

    def _check_history(self, meter_id: str, ts: datetime) -> None:
        entry = self._seen.get(meter_id)
        if entry is None:
            return
        key = micros(ts)
        if key in entry[1:]:
            raise DecodeError(
                DUPLICATE, f"meter {meter_id} already has a reading at {ts.isoformat()}"
            )
        behind = timedelta(microseconds=entry[0] - key)
        if behind > self.max_backwards:
            newest = _EPOCH + timedelta(microseconds=entry[0])
            raise DecodeError(
                STALE_TIMESTAMP,
                f"meter {meter_id}: ts {ts.isoformat()} is {behind} before "
                f"its newest reading {newest.isoformat()} (tolerance {self.max_backwards})",
            )

    # -- decoding -------------------------------------------------------------------------
    def decode_message(self, topic: str, payload: bytes, now: datetime) -> DecodeResult:
        """Decode one message. Never raises for bad input: every problem becomes a rejection."""
        result = DecodeResult()
        try:
            kind, levels = self._classify(topic, payload)
        except DecodeError as exc:
            result.rejected.append(Rejection(exc.reason, exc.detail, payload))
            return result
        sent: list[bytes] = []
        given = self._compact(kind, payload, sent, whole=not self.objects)
        if given is not None and sent and not self.objects:
            self._checked_fields(result, given, levels if kind == "reading" else None, now,
                                 payload, sent)
            return result
        fast = self._validated(kind, payload, now) if given is None \
            else list(map(reading_of_fields, given))
        if fast is not None:
            if kind == "batch":
                self._checked_batch(result, fast, now, sent)
            else:
                self._checked(result, fast[0], levels, now, payload, None)
                if sent and result.accepted:
                    result.records = sent
            return result
        try:
            doc = _parse_json(payload)
        except DecodeError as exc:
            result.rejected.append(Rejection(exc.reason, exc.detail, payload))
            return result
        if kind == "batch":
            try:
                raw_items = self._batch_items(doc, levels)
            except DecodeError as exc:
                result.rejected.append(Rejection(exc.reason, exc.detail, payload))
                return result
            for index, raw in enumerate(raw_items):
                self._one(result, "reading", raw, None, now, payload, index)
        else:
            self._one(result, kind, doc, levels, now, payload, None)
        return result

    @staticmethod
    def _compact(kind: str, payload: bytes, records: list[bytes],
                 whole: bool = False) -> list[dict[str, Any]] | None:
        """The given fields of a payload's readings in the common compact form, read by
        msgspec (:func:`compact_fields`, which puts their journal records in ``records`` when
        it can: with ``whole``, a batch's one record); None for a payload not in that
        form."""
        if kind == "reading":
            return compact_fields(payload, batch=False, records=records)
        if kind == "batch" and payload[:1] == b"[":
            return compact_fields(payload, batch=True, records=records, whole=whole)
        return None

    @staticmethod
    def _validated(kind: str, payload: bytes, now: datetime) -> list[Item] | None:
        """Validate straight from the JSON bytes, by pydantic's parser (no Python dicts), a
        payload not in the compact form when the whole of it is good; ``None`` sends it down
        the item-by-item path, which finds the exact reason of each problem."""
        ctx = {"now": now, "max_future": _NO_FUTURE_CHECK}
        try:
            if kind == "reading":
                one = [_ONE_UNCHECKED.validate_json(payload)]
                return one if _finish(one) else None
            if kind == "telemetry":
                return [DeviceTelemetry.model_validate_json(payload, context=ctx)]
            if payload.lstrip()[:1] == b"[":
                items = _LIST_UNCHECKED.validate_json(payload)
                return items if items and _finish(items) else None
        except (ValidationError, ValueError):
            return None
        return None

    def _checked(self, result: DecodeResult, item: Item, levels: list[str] | None,
                 now: datetime, payload: bytes | None, index: int | None) -> None:
        """The checks after validation (clock, topic, history) of a fast-path item."""
        try:
            self._check_clock(item, now)
            if levels is not None:
                self._check_topic(item, levels)
            self.admit(item)
        except DecodeError as exc:
            where = "" if index is None else f"batch item {index}: "
            data = payload if payload is not None else _wire(item)
            result.rejected.append(Rejection(exc.reason, where + exc.detail, data, index))
            return
        result.accepted.append(item)

    def _checked_batch(self, result: DecodeResult, items: list[Item], now: datetime,
                       records: list[bytes]) -> None:
        """:meth:`_checked` of every item of a batch (no topic check: a batch's items name
        their own meters), the clock's limit computed once for the message; ``records``, the
        items' journal records when there are (else empty), kept for those accepted."""
        latest = self._latest(now)
        accepted = result.accepted
        admit = self.admit
        for index, item in enumerate(items):
            try:
                if item.ts > latest:  # item.ts - now > max_future, in whole microseconds
                    self._check_clock(item, now)  # raises with the full message
                admit(item)
            except DecodeError as exc:
                result.rejected.append(Rejection(exc.reason, f"batch item {index}: "
                                                 f"{exc.detail}", _wire(item), index))
                continue
            accepted.append(item)
        if records:
            result.records = _accepted_records(records, result.rejected)

    def _checked_fields(self, result: DecodeResult, given: list[dict[str, Any]],
                        levels: list[str] | None, now: datetime, payload: bytes,
                        records: list[bytes]) -> None:
        """:meth:`_checked` of a reading (``levels``: its topic's) or :meth:`_checked_batch`
        of a batch's readings (``levels`` None), as their given fields: the same checks and
        memory. A reading that fails one goes to :meth:`_checked` as its object, which
        finds the same failure and rejects it as the objects' path does."""
        latest = self._latest(now)
        want = None if levels is None else _level(levels, self.topics.meter_id_level)
        kept: list[dict[str, Any]] = []
        admit_at = self.admit_at
        keys: dict[datetime, int] = {}  # each timestamp in microseconds, once a message
        for index, doc in enumerate(given):
            ts, meter_id = doc["ts"], doc["meter_id"]
            if ts <= latest and (want is None or meter_id == want):
                key = keys.get(ts)
                if key is None:
                    key = keys[ts] = (ts - _EPOCH) // _MICRO
                try:
                    admit_at(meter_id, ts, key)  # (remembers it only when it is admitted)
                except DecodeError:
                    pass
                else:
                    kept.append(doc)
                    continue
            if levels is None:
                self._checked(result, reading_of_fields(doc), None, now, None, index)
            else:
                self._checked(result, reading_of_fields(doc), levels, now, payload, None)
        if kept:
            result.given = kept
            if result.rejected and records[0][:len(BATCH_TAG)] == BATCH_TAG:
                # a batch's one record, but not all its readings accepted: theirs apart
                # (it always cuts so; were it not, the collector dead-letters the message)
                records = split_batch_record(records[0], len(given))
            result.records = _accepted_records(records, result.rejected)

    def _latest(self, now: datetime) -> datetime:
        """The latest timestamp the receiving clock ``now`` accepts."""
        try:
            return now + self.max_future
        except OverflowError:  # a tolerance past the calendar's end: nothing is too far ahead
            return datetime.max.replace(tzinfo=UTC)

    def _one(self, result: DecodeResult, kind: str, raw: Any, levels: list[str] | None,
             now: datetime, payload: bytes, index: int | None) -> None:
        try:
            item = self._validate(kind, raw, levels, now)
            self.admit(item)
        except DecodeError as exc:
            data = payload if index is None else _dump_item(raw)
            where = "" if index is None else f"batch item {index}: "
            result.rejected.append(Rejection(exc.reason, where + exc.detail, data, index))
            return
        result.accepted.append(item)

    def _classify(self, topic: str, payload: bytes) -> tuple[str, list[str]]:
        if len(payload) > self.max_payload_bytes:
            raise DecodeError(
                TOO_LARGE, f"payload of {len(payload)} bytes exceeds the limit of "
                f"{self.max_payload_bytes} (ingest.max_payload_bytes)",
            )
        levels = topic.split("/")
        wild_first = not topic.startswith("$")
        for kind, pattern in self._routes:
            if _matches(pattern, levels, wild_first):
                return kind, levels
        raise DecodeError(UNKNOWN_TOPIC, f"topic {topic!r:.200} matches no configured topic")

    def _batch_items(self, doc: Any, levels: list[str]) -> list[Any]:
        if isinstance(doc, dict):
            extra = set(doc) - {"concentrator_id", "sent_at", "readings"}
            if extra:
                raise DecodeError(SCHEMA, f"batch has unknown field(s) {sorted(extra)}")
            conc = doc.get("concentrator_id")
            topic_id = _level(levels, self.topics.meter_id_level)
            if conc is not None and topic_id is not None and conc != topic_id:
                raise DecodeError(
                    TOPIC_MISMATCH, f"concentrator_id {conc!r:.80} differs from the topic's "
                    f"{topic_id!r}",
                )
            doc = doc.get("readings")
        if not isinstance(doc, list):
            raise DecodeError(
                SCHEMA, f"a batch must be a JSON array of readings or an object with 'readings', "
                f"not {type(doc).__name__}",
            )
        if not doc:
            raise DecodeError(EMPTY_BATCH, "batch holds no readings")
        return doc

    def _validate(self, kind: str, raw: Any, levels: list[str] | None, now: datetime) -> Item:
        if not isinstance(raw, dict):
            raise DecodeError(SCHEMA, f"expected a JSON object, got {type(raw).__name__}")
        ctx = {"now": now, "max_future": _NO_FUTURE_CHECK}
        item: Item
        try:
            if kind == "telemetry":
                item = DeviceTelemetry.model_validate(raw, context=ctx)
            else:
                item = Reading.model_validate(raw, context=ctx)
        except ValidationError as exc:
            raise DecodeError(*describe_validation(exc)) from None
        self._check_clock(item, now)
        if levels is not None:
            self._check_topic(item, levels)
        return item

    def _check_clock(self, item: Item, now: datetime) -> None:
        if item.ts - now > self.max_future:
            raise DecodeError(
                FUTURE_TIMESTAMP, f"ts {item.ts.isoformat()} is {item.ts - now} ahead of the "
                f"receiving clock (tolerance {self.max_future})",
            )

    def _check_topic(self, item: Item, levels: list[str]) -> None:
        t = self.topics
        if isinstance(item, Reading):
            want = _level(levels, t.meter_id_level)
            if want is not None and item.meter_id != want:
                raise DecodeError(
                    TOPIC_MISMATCH,
                    f"meter_id {item.meter_id!r} differs from the topic's {want!r}",
                )
            return
        for name, lvl in (("site", t.site_level), ("device_id", t.device_id_level)):
            want = _level(levels, lvl)
            got = getattr(item, name)
            if want is not None and got != want:
                raise DecodeError(
                    TOPIC_MISMATCH, f"{name} {got!r} differs from the topic's {want!r}"
                )


def _parse_json(payload: bytes) -> Any:
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DecodeError(INVALID_UTF8, f"byte {exc.start}: {exc.reason}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise DecodeError(
            INVALID_JSON, f"line {exc.lineno} column {exc.colno}: {exc.msg}"
        ) from None
    except RecursionError:
        raise DecodeError(INVALID_JSON, "nested too deeply") from None
    except ValueError as exc:
        # Python refuses to convert integers of more than sys.get_int_max_str_digits() digits.
        raise DecodeError(OUT_OF_RANGE, f"number too long: {str(exc)[:80]}") from None


def _accepted_records(records: list[bytes], rejected: list[Rejection]) -> list[bytes]:
    """The journal records of a message's items (one a batch item) but those rejected."""
    if not rejected:
        return records
    dropped = {r.index for r in rejected}
    return [rec for i, rec in enumerate(records) if i not in dropped]


def _wire(item: Item) -> bytes:
    return item.model_dump_json(exclude_none=True, exclude_defaults=True).encode()


def _dump_item(raw: Any) -> bytes:
    """The JSON of one batch item, for its dead letter (NaN kept as the sender wrote it)."""
    try:
        return json.dumps(raw, allow_nan=True, separators=(",", ":")).encode()
    except (TypeError, ValueError, RecursionError):
        return repr(raw).encode(errors="replace")


def decode(
    topic: str,
    payload: bytes,
    *,
    settings: Decoder | TopicSettings | IngestSettings | Any = None,
    now: datetime | None = None,
) -> list[Item]:
    """Decode one message strictly: every item, or :class:`DecodeError` for the first bad one.

    ``settings`` may be a :class:`Decoder` (whose duplicate memory is then used and updated),
    the root ``Settings``, or its topic or ingest section. The collector uses
    :meth:`Decoder.decode_message` instead, which keeps the good items of a batch with a bad one.
    """
    now = now or datetime.now(UTC)
    if isinstance(settings, Decoder):
        decoder = settings
    elif hasattr(settings, "topics") and hasattr(settings, "ingest"):  # the root Settings
        decoder = Decoder(settings.topics, settings.ingest)
    elif isinstance(settings, TopicSettings):
        decoder = Decoder(settings)
    elif isinstance(settings, IngestSettings):
        decoder = Decoder(None, settings)
    else:
        decoder = Decoder()
    result = decoder.decode_message(topic, payload, now)
    if result.rejected:
        first = result.rejected[0]
        raise DecodeError(first.reason, first.detail)
    return result.accepted
