"""The tag store: one SQLite file under the data directory (``var/tags.sqlite`` beside the alert
state by default) holding imported customer, CRM and billing data, each customer's feature state,
its current tags with their reasons, and the tag history (when each tag appeared and left)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

__all__ = ["HistoryEntry", "TagStore"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS attrs (
    customer_id TEXT NOT NULL, source TEXT NOT NULL, data TEXT NOT NULL, imported_at TEXT,
    PRIMARY KEY (customer_id, source));
CREATE TABLE IF NOT EXISTS billing (
    customer_id TEXT NOT NULL, period TEXT NOT NULL, amount_due REAL NOT NULL,
    amount_paid REAL NOT NULL, due_date TEXT NOT NULL, paid_date TEXT,
    PRIMARY KEY (customer_id, period));
CREATE TABLE IF NOT EXISTS features (
    customer_id TEXT PRIMARY KEY, state BLOB NOT NULL, customer_class TEXT, segment TEXT,
    day TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS current (
    customer_id TEXT NOT NULL, tag TEXT NOT NULL, since TEXT NOT NULL, reason TEXT NOT NULL,
    dimension TEXT NOT NULL, reason_zh TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (customer_id, tag));
CREATE TABLE IF NOT EXISTS history (
    id INTEGER PRIMARY KEY AUTOINCREMENT, customer_id TEXT NOT NULL, tag TEXT NOT NULL,
    appeared TEXT NOT NULL, left TEXT, reason TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS history_customer ON history(customer_id, tag);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    """One stretch of time a customer carried a tag (``left`` None: still carries it)."""

    tag: str
    appeared: date
    left: date | None
    reason: str

    def describe(self, today: date, lang: str = "en") -> str:
        """``became night-heavy 14 days ago`` / ``was night-heavy from ... to ...`` (in
        Chinese with ``lang="zh"``: ``14 天前新增标签 night-heavy（2024-05-10）``)."""
        if lang == "zh":
            if self.left is None:
                days = (today - self.appeared).days
                when = "今天" if days == 0 else "昨天" if days == 1 else f"{days} 天前"
                return f"{when}新增标签 {self.tag}（{self.appeared.isoformat()}）"
            return (f"{self.appeared.isoformat()} 至 {self.left.isoformat()} 曾有标签 "
                    f"{self.tag}")
        if self.left is None:
            days = (today - self.appeared).days
            when = "today" if days == 0 else "yesterday" if days == 1 else f"{days} days ago"
            return f"became {self.tag} {when} ({self.appeared.isoformat()})"
        return (f"was {self.tag} from {self.appeared.isoformat()} to "
                f"{self.left.isoformat()}")


class TagStore:
    """Imported data, features, current tags and their history, in one SQLite file."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if str(path) != ":memory:":
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(str(path), timeout=30)
        self.db.row_factory = sqlite3.Row
        self.db.executescript(_SCHEMA)
        self.db.execute("PRAGMA journal_mode=WAL")
        # a store written before reasons came in Chinese too gains the column
        cols = {r["name"] for r in self.db.execute("PRAGMA table_info(current)")}
        if "reason_zh" not in cols:
            with self.db:
                self.db.execute("ALTER TABLE current ADD COLUMN reason_zh TEXT NOT NULL "
                                "DEFAULT ''")

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> TagStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def count(self, name: str, n: int = 1) -> None:
        with self.db:
            self.db.execute("INSERT INTO counters(name, value) VALUES (?, ?) ON CONFLICT(name) "
                            "DO UPDATE SET value = value + excluded.value", (name, n))

    def counters(self) -> dict[str, int]:
        return {r["name"]: r["value"] for r in self.db.execute("SELECT * FROM counters")}

    # -------------------------------------------------------------------- imported data
    def put_attributes(self, source: str, rows: Iterable[tuple[str, Mapping[str, Any]]],
                       at: str = "") -> int:
        """Merge attributes per customer (a later import of a column replaces it)."""
        n = 0
        with self.db:
            for cid, data in rows:
                old = self.db.execute("SELECT data FROM attrs WHERE customer_id=? AND source=?",
                                      (cid, source)).fetchone()
                merged = {**(json.loads(old["data"]) if old else {}), **data}
                self.db.execute(
                    "INSERT INTO attrs(customer_id, source, data, imported_at) VALUES (?,?,?,?) "
                    "ON CONFLICT(customer_id, source) DO UPDATE SET data=excluded.data, "
                    "imported_at=excluded.imported_at",
                    (cid, source, json.dumps(merged, ensure_ascii=False, sort_keys=True), at))
                n += 1
        return n

    def put_bills(self, rows: Iterable[tuple[str, str, float, float, str, str | None]]) -> int:
        """Bills (customer, period, amount due, amount paid, due date, paid date or None)."""
        n = 0
        with self.db:
            for row in rows:
                self.db.execute(
                    "INSERT INTO billing VALUES (?,?,?,?,?,?) ON CONFLICT(customer_id, period) "
                    "DO UPDATE SET amount_due=excluded.amount_due, amount_paid=excluded."
                    "amount_paid, due_date=excluded.due_date, paid_date=excluded.paid_date",
                    row)
                n += 1
        return n

    def attributes(self, customer_ids: Sequence[str] | None = None
                   ) -> dict[str, dict[str, Any]]:
        """Imported attributes per customer (customers file, then CRM file, merged)."""
        out: dict[str, dict[str, Any]] = {}
        rows = self._rows("SELECT customer_id, data FROM attrs", customer_ids,
                          "ORDER BY source DESC")
        wanted = set(customer_ids) if customer_ids is not None else None
        for r in rows:
            if wanted is None or r["customer_id"] in wanted:
                data = json.loads(r["data"])
                out.setdefault(r["customer_id"], {}).update(
                    {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})
        return out

    def billing_features(self, as_of: date, customer_ids: Sequence[str] | None = None
                         ) -> dict[str, dict[str, float]]:
        """Payment figures per customer as of a day (the names of ``BILLING_FEATURES``)."""
        start = (as_of - timedelta(days=365)).isoformat()
        today = as_of.isoformat()
        out: dict[str, dict[str, float]] = {}
        wanted = set(customer_ids) if customer_ids is not None else None
        for r in self._rows("SELECT * FROM billing", customer_ids,
                            "ORDER BY customer_id, period"):
            cid = r["customer_id"]
            if wanted is not None and cid not in wanted:
                continue
            f = out.setdefault(cid, {"bills_12m": 0.0, "late_payments_12m": 0.0,
                                     "arrears": 0.0, "unpaid_bills": 0.0, "amount_12m": 0.0,
                                     "_late_days": 0.0})
            due, paid = r["due_date"], r["paid_date"]
            if due > today:
                continue
            owed = r["amount_due"] - r["amount_paid"]
            if owed > 0.005:
                f["arrears"] += owed
                f["unpaid_bills"] += 1
            if due <= start:
                continue
            f["bills_12m"] += 1
            f["amount_12m"] += r["amount_due"]
            late = (paid is not None and paid > due) or (paid is None and owed > 0.005)
            if late:
                f["late_payments_12m"] += 1
                end = date.fromisoformat(paid) if paid else as_of
                f["_late_days"] += (end - date.fromisoformat(due)).days
        for f in out.values():
            late_days = f.pop("_late_days")
            if f["bills_12m"]:
                f["on_time_share"] = 1 - f["late_payments_12m"] / f["bills_12m"]
            if f["late_payments_12m"]:
                f["avg_days_late"] = late_days / f["late_payments_12m"]
        return out

    def _rows(self, query: str, customer_ids: Sequence[str] | None, order: str
              ) -> Iterable[sqlite3.Row]:
        """Rows of ``query`` for a few customers (by key) or for all of them."""
        if customer_ids is not None and len(customer_ids) <= 500:
            marks = ",".join("?" * len(customer_ids))
            return self.db.execute(f"{query} WHERE customer_id IN ({marks}) {order}",
                                   tuple(customer_ids))
        return self.db.execute(f"{query} {order}")

    def current_sets(self) -> dict[str, frozenset[str]]:
        """Every customer's current tags."""
        out: dict[str, set[str]] = {}
        for r in self.db.execute("SELECT customer_id, tag FROM current"):
            out.setdefault(r["customer_id"], set()).add(r["tag"])
        return {k: frozenset(v) for k, v in out.items()}

    # -------------------------------------------------------------------- features
    def put_features(self, rows: Iterable[tuple[str, bytes, str | None, str | None]],
                     day: date) -> None:
        with self.db:
            self.db.executemany(
                "INSERT INTO features VALUES (?,?,?,?,?) ON CONFLICT(customer_id) DO UPDATE "
                "SET state=excluded.state, customer_class=excluded.customer_class, "
                "segment=excluded.segment, day=excluded.day",
                [(c, s, k, seg, day.isoformat()) for c, s, k, seg in rows])

    def all_features(self) -> Iterable[tuple[str, bytes, str | None, str | None, date]]:
        """Every stored feature state: (customer, state, class, segment, day folded through)."""
        for r in self.db.execute("SELECT * FROM features"):
            yield (r["customer_id"], bytes(r["state"]), r["customer_class"], r["segment"],
                   date.fromisoformat(r["day"]))

    def features(self, customer_id: str) -> tuple[bytes, str | None, str | None, date] | None:
        r = self.db.execute("SELECT * FROM features WHERE customer_id=?",
                            (customer_id,)).fetchone()
        if r is None:
            return None
        return bytes(r["state"]), r["customer_class"], r["segment"], \
            date.fromisoformat(r["day"])

    # -------------------------------------------------------------------- tags
    def apply(self, day: date, tags: Mapping[str, Sequence[Any]]) -> tuple[int, int]:
        """Make ``tags`` (customer -> TagHit list) the current tags of those customers as of
        ``day``; a tag that appears opens a history entry, one that is gone closes it. Returns
        (appeared, left)."""
        appeared = left = 0
        d = day.isoformat()
        with self.db:
            for cid, hits in tags.items():
                now = {h.tag: h for h in hits}
                before = {r["tag"] for r in self.db.execute(
                    "SELECT tag FROM current WHERE customer_id=?", (cid,))}
                for tag in before - set(now):
                    self.db.execute("DELETE FROM current WHERE customer_id=? AND tag=?",
                                    (cid, tag))
                    self.db.execute("UPDATE history SET left=? WHERE customer_id=? AND tag=? "
                                    "AND left IS NULL", (d, cid, tag))
                    left += 1
                for tag, h in now.items():
                    zh = getattr(h, "reason_zh", "") or ""
                    if tag in before:
                        self.db.execute("UPDATE current SET reason=?, reason_zh=? WHERE "
                                        "customer_id=? AND tag=?", (h.reason, zh, cid, tag))
                        continue
                    self.db.execute("INSERT INTO current(customer_id, tag, since, reason, "
                                    "dimension, reason_zh) VALUES (?,?,?,?,?,?)",
                                    (cid, tag, d, h.reason, h.dimension, zh))
                    self.db.execute("INSERT INTO history(customer_id, tag, appeared, reason) "
                                    "VALUES (?,?,?,?)", (cid, tag, d, h.reason))
                    appeared += 1
        return appeared, left

    def current(self, customer_id: str) -> list[dict[str, Any]]:
        return [dict(r) for r in self.db.execute(
            "SELECT tag, since, reason, reason_zh, dimension FROM current WHERE customer_id=? "
            "ORDER BY dimension, tag", (customer_id,))]

    def history(self, customer_id: str, tag: str | None = None) -> list[HistoryEntry]:
        q = "SELECT * FROM history WHERE customer_id=?"
        args: tuple[Any, ...] = (customer_id,)
        if tag is not None:
            q += " AND tag=?"
            args += (tag,)
        return [HistoryEntry(r["tag"], date.fromisoformat(r["appeared"]),
                             date.fromisoformat(r["left"]) if r["left"] else None, r["reason"])
                for r in self.db.execute(q + " ORDER BY appeared, id", args)]

    def tag_counts(self, customer_ids: Sequence[str] | None = None) -> dict[str, int]:
        """How many of the customers (all when None) carry each tag now."""
        out: dict[str, int] = {}
        wanted = set(customer_ids) if customer_ids is not None else None
        for r in self.db.execute("SELECT customer_id, tag FROM current"):
            if wanted is None or r["customer_id"] in wanted:
                out[r["tag"]] = out.get(r["tag"], 0) + 1
        return dict(sorted(out.items(), key=lambda kv: (-kv[1], kv[0])))

    def tags_per_customer(self, customer_ids: Sequence[str] | None = None) -> dict[str, int]:
        out: dict[str, int] = {}
        wanted = set(customer_ids) if customer_ids is not None else None
        for r in self.db.execute("SELECT customer_id, count(*) AS n FROM current "
                                 "GROUP BY customer_id"):
            if wanted is None or r["customer_id"] in wanted:
                out[r["customer_id"]] = r["n"]
        return out

    def tags_per_dimension(self, customer_ids: Sequence[str] | None = None
                           ) -> dict[str, dict[str, int]]:
        """Customer -> dimension -> how many tags of that dimension it carries now."""
        out: dict[str, dict[str, int]] = {}
        wanted = set(customer_ids) if customer_ids is not None else None
        for r in self.db.execute("SELECT customer_id, dimension, count(*) AS n FROM current "
                                 "GROUP BY customer_id, dimension"):
            if wanted is None or r["customer_id"] in wanted:
                out.setdefault(r["customer_id"], {})[r["dimension"]] = r["n"]
        return out
