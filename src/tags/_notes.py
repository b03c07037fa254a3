"""A customer's tags as a person reads them: each current tag with its reason and since when,
and the recent tag history ("became night-heavy 12 days ago"), read from the tag store.

Alert messages (the router's template context) and the workspace's customer and alert pages
show them. Each read opens its own read-only connection, so any thread may call it, and a
store that does not exist yet reads as no tags.
"""

from __future__ import annotations

import hashlib
import sqlite3
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from gridwatch.tags._store import HistoryEntry

__all__ = ["TAGS_ROW", "TagNote", "TagNotes", "tags_db_path", "tags_row_id"]

_DIMENSIONS = ("basic", "usage", "value", "needs")

#: Meter-id prefix of the alert router's profile row that holds a customer's catalogue tags.
TAGS_ROW = "tags:"


def tags_row_id(customer_id: str) -> str:
    """The router profile row of a customer's catalogue tags (an identifier of at most 64
    characters; a long customer id is hashed)."""
    rid = f"{TAGS_ROW}{customer_id}"
    if len(rid) <= 64:
        return rid
    return f"{TAGS_ROW}{hashlib.sha1(customer_id.encode()).hexdigest()}"


def tags_db_path(alerts: Any, process_id: int = 0) -> Path:
    """The tag store of the settings' ``alerts`` section: ``tags_db``, a relative one taken
    beside the alert state database; by default ``tags.sqlite`` there (``tags.p<id>.sqlite``
    for process ``id`` > 0 of a cluster)."""
    db = Path(getattr(alerts, "tags_db", None)
              or ("tags.sqlite" if not process_id else f"tags.p{process_id}.sqlite"))
    return db if db.is_absolute() else Path(alerts.state_db).parent / db


@dataclass(frozen=True, slots=True)
class TagNote:
    """One tag a customer carries: its reason, since when, and how long ago that was."""

    tag: str
    dimension: str
    reason: str
    since: date
    days: int  # days between ``since`` and the day the note is read for
    #: The reason in Chinese ("" in a store written before reasons came in Chinese).
    reason_zh: str = ""

    def text(self, lang: str) -> str:
        """The reason in ``lang`` (English when there is none in that language)."""
        return self.reason_zh if lang == "zh" and self.reason_zh else self.reason

    @property
    def became(self) -> str:
        return HistoryEntry(self.tag, self.since, None, self.reason).describe(
            date.fromordinal(self.since.toordinal() + self.days))

    def as_dict(self) -> dict[str, Any]:
        return {"tag": self.tag, "dimension": self.dimension, "reason": self.reason,
                "reasons": {"en": self.reason, "zh": self.text("zh")},
                "since": self.since.isoformat(), "days": self.days, "became": self.became}


class TagNotes:
    """Reads the tag store at ``path`` for messages and pages."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def _connect(self) -> sqlite3.Connection | None:
        if not self.path.exists():
            return None
        db = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=5)
        db.row_factory = sqlite3.Row
        return db

    def as_of(self, customer_id: str) -> date | None:
        """The last day the engine evaluated the customer's tags (event time)."""
        db = self._connect()
        if db is None:
            return None
        try:
            row = db.execute("SELECT day FROM features WHERE customer_id=?",
                             (customer_id,)).fetchone()
        except sqlite3.OperationalError:
            return None
        finally:
            db.close()
        return date.fromisoformat(row["day"]) if row else None

    def current(self, customer_id: str, as_of: date | None = None) -> list[TagNote]:
        """The customer's tags now, by dimension, each with its reason; ``days`` counted to
        ``as_of`` (default: the last day evaluated)."""
        db = self._connect()
        if db is None:
            return []
        try:
            rows = db.execute("SELECT * FROM current WHERE customer_id=?",
                              (customer_id,)).fetchall()
            if as_of is None:
                row = db.execute("SELECT day FROM features WHERE customer_id=?",
                                 (customer_id,)).fetchone()
                as_of = date.fromisoformat(row["day"]) if row else None
        except sqlite3.OperationalError:  # the engine has not made its tables yet
            return []
        finally:
            db.close()
        notes = []
        has_zh = bool(rows) and "reason_zh" in set(rows[0].keys())  # a Row's `in` sees values
        for r in rows:
            since = date.fromisoformat(r["since"])
            day = as_of or since
            zh = r["reason_zh"] if has_zh else ""
            notes.append(TagNote(r["tag"], r["dimension"], r["reason"], since,
                                 max((day - since).days, 0), zh or ""))
        order = {d: i for i, d in enumerate(_DIMENSIONS)}
        notes.sort(key=lambda n: (order.get(n.dimension, 9), n.days, n.tag))
        return notes

    def for_message(self, customer_id: str, day: date, limit: int | None = None
                    ) -> list[dict[str, Any]]:
        """The customer's tags for an alert raised on ``day``: the newest first (a tag that
        just appeared says most), then usage, needs, value and basic facts; at most ``limit``
        (all by default: the message context chooses the few it shows, see
        ``gridwatch.tags._relevance``). Each with its reason in English (``reason``) and per
        language (``reasons``). A store that cannot be read gives none: a message never waits
        for its tags."""
        try:
            notes = self.current(customer_id, day)
        except (sqlite3.Error, OSError, ValueError):
            return []
        order = {"usage": 0, "needs": 1, "value": 2, "basic": 3}
        notes.sort(key=lambda n: (n.days, order.get(n.dimension, 9), n.tag))
        return [n.as_dict() for n in notes[:limit]]

    def history(self, customer_id: str, as_of: date | None = None, limit: int = 10,
                lang: str = "en") -> list[str]:
        """The most recent changes of the customer's tags, newest first, as sentences in
        ``lang`` (``became night-heavy 12 days ago (2024-05-10)``, ``was evening-peak from ...
        to ...``)."""
        db = self._connect()
        if db is None:
            return []
        try:
            rows = db.execute(
                "SELECT tag, appeared, left, reason FROM history WHERE customer_id=? "
                "ORDER BY COALESCE(left, appeared) DESC, id DESC LIMIT ?",
                (customer_id, limit)).fetchall()
            if as_of is None:
                row = db.execute("SELECT day FROM features WHERE customer_id=?",
                                 (customer_id,)).fetchone()
                as_of = date.fromisoformat(row["day"]) if row else None
        except sqlite3.OperationalError:
            return []
        finally:
            db.close()
        out = []
        for r in rows:
            e = HistoryEntry(r["tag"], date.fromisoformat(r["appeared"]),
                             date.fromisoformat(r["left"]) if r["left"] else None, r["reason"])
            out.append(e.describe(as_of or e.appeared, lang))
        return out
