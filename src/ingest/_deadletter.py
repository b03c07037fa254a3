"""Dead letters: every rejected payload, kept with its reason, topic and arrival time.

They live in a journal of their own (same format and durability as the readings journal), one
JSON record per rejection, and are counted by reason. Nothing rejected disappears.
"""

from __future__ import annotations

import base64
import json
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from gridwatch.ingest._journal import Journal, journal_partitions

__all__ = ["DeadLetter", "DeadLetters", "read_deadletters"]


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One rejected payload (or batch item, or file row)."""

    reason: str
    topic: str
    payload: bytes
    detail: str
    received_at: datetime
    #: Batch item index, or line number of a file row, when there is one.
    index: int | None = None

    def to_json_dict(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "reason": self.reason,
            "topic": self.topic,
            "detail": self.detail,
            "received_at": self.received_at.isoformat().replace("+00:00", "Z"),
        }
        try:
            doc["payload"] = self.payload.decode("utf-8")
        except UnicodeDecodeError:
            doc["payload_b64"] = base64.b64encode(self.payload).decode("ascii")
        if self.index is not None:
            doc["index"] = self.index
        return doc

    def to_bytes(self) -> bytes:
        return json.dumps(self.to_json_dict(), separators=(",", ":")).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> DeadLetter:
        doc = json.loads(data)
        payload = (
            base64.b64decode(doc["payload_b64"]) if "payload_b64" in doc
            else doc["payload"].encode("utf-8", errors="surrogateescape")
        )
        return cls(
            reason=doc["reason"], topic=doc["topic"], payload=payload, detail=doc["detail"],
            received_at=datetime.fromisoformat(doc["received_at"]), index=doc.get("index"),
        )


class DeadLetters:
    """A durable store of rejected input, counted by reason.

    ``put`` writes one dead letter (and fsyncs); ``put_many`` writes many with one fsync, as the
    collector does for each batch of messages.
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
    ) -> None:
        self.directory = Path(directory)
        self.journal = Journal(
            self.directory, partition, segment_bytes=segment_bytes,
            retention_bytes=retention_bytes, retention=retention, segment_age=segment_age,
            fsync=fsync,
        )
        self.counts: Counter[str] = Counter()

    def put(self, reason: str, topic: str, payload: bytes, detail: str, *,
            index: int | None = None, now: datetime | None = None) -> None:
        """Keep one rejected payload with its reason."""
        self.put_many([DeadLetter(reason, topic, payload, detail, now or datetime.now(UTC),
                                  index)])

    def put_many(self, letters: Iterable[DeadLetter]) -> int:
        """Keep many dead letters durably (one write, one fsync); return how many."""
        letters = list(letters)
        if not letters:
            return 0
        self.journal.append([d.to_bytes() for d in letters])
        self.counts.update(d.reason for d in letters)
        return len(letters)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def close(self) -> None:
        self.journal.close()

    def __enter__(self) -> DeadLetters:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_deadletters(directory: Path) -> Iterator[DeadLetter]:
    """Every dead letter kept under ``directory``, partition by partition, oldest first."""
    for part in journal_partitions(directory):
        journal = Journal(directory, part, readonly=True)
        try:
            offset = journal.start_offset
            while True:
                batch = journal.read(offset, 10_000)
                if not batch:
                    break
                for off, data in batch:
                    yield DeadLetter.from_bytes(data)
                    offset = off + 1
        finally:
            journal.close()
