"""The router's SQLite database: alert state, episodes, audit trail, pending group items and
the outbox. An episode is named by (fingerprint, onset), which survives a replay.

One file, WAL journal, ``synchronous=FULL``: when a router call returns, what it changed is on
disk. Every write happens inside one transaction per router call.
"""

from __future__ import annotations

import functools
import json
import sqlite3
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from gridwatch._schemas import AlertTransition, Severity

SCHEMA = """
CREATE TABLE IF NOT EXISTS alerts (
    fingerprint TEXT PRIMARY KEY,
    episode INTEGER NOT NULL,
    meter_id TEXT NOT NULL,
    type TEXT NOT NULL,
    severity TEXT NOT NULL,
    score REAL NOT NULL,
    state TEXT NOT NULL,
    onset TEXT NOT NULL,
    raised_at TEXT NOT NULL,
    starts_at TEXT NOT NULL,
    ends_at TEXT,
    customer_id TEXT,
    grid_cell TEXT,
    summary TEXT NOT NULL DEFAULT '',
    evidence TEXT NOT NULL DEFAULT '{}',
    meters TEXT NOT NULL DEFAULT '[]',
    receivers TEXT NOT NULL DEFAULT '[]',
    silenced_by TEXT,
    inhibited_by TEXT,
    acked_by TEXT,
    acked_at TEXT,
    backup TEXT,
    escalated_at TEXT,
    updated_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS alerts_state ON alerts(state);
-- Inhibition looks up the open alerts of one cell and type; a resolved source finds what it
-- muted.
CREATE INDEX IF NOT EXISTS alerts_cell_type ON alerts(grid_cell, type);
CREATE INDEX IF NOT EXISTS alerts_inhibited_by ON alerts(inhibited_by)
    WHERE inhibited_by IS NOT NULL;
CREATE TABLE IF NOT EXISTS audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at TEXT NOT NULL,
    fingerprint TEXT,
    episode INTEGER,
    action TEXT NOT NULL,
    by TEXT NOT NULL,
    recipient TEXT,
    detail TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS audit_fp ON audit(fingerprint);
CREATE TABLE IF NOT EXISTS episodes (
    fingerprint TEXT NOT NULL,
    episode INTEGER NOT NULL,
    onset TEXT NOT NULL,
    raised_at TEXT NOT NULL,
    ends_at TEXT,
    opened_at TEXT NOT NULL,
    resolved_at TEXT,
    PRIMARY KEY (fingerprint, episode)
);
CREATE INDEX IF NOT EXISTS episodes_onset ON episodes(fingerprint, onset);
CREATE TABLE IF NOT EXISTS pending (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    recipient TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    episode INTEGER NOT NULL,
    kind TEXT NOT NULL,
    seq INTEGER NOT NULL DEFAULT 0,
    severity TEXT NOT NULL,
    created_at TEXT NOT NULL,
    UNIQUE (recipient, fingerprint, episode, kind, seq)
);
CREATE INDEX IF NOT EXISTS pending_fp ON pending(fingerprint, episode);
CREATE TABLE IF NOT EXISTS notified (
    recipient TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    episode INTEGER NOT NULL,
    last_sent_at TEXT NOT NULL,
    repeats INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (recipient, fingerprint, episode)
);
CREATE INDEX IF NOT EXISTS notified_fp ON notified(fingerprint, episode);
CREATE TABLE IF NOT EXISTS groups (
    recipient TEXT PRIMARY KEY,
    last_flush_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS notifications (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    recipient TEXT NOT NULL,
    kind TEXT NOT NULL,
    critical INTEGER NOT NULL,
    created_at TEXT NOT NULL,
    items TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    key TEXT NOT NULL UNIQUE,
    notification_id INTEGER NOT NULL,
    recipient TEXT NOT NULL,
    channel TEXT NOT NULL,
    target TEXT NOT NULL,
    payload TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT NOT NULL,
    created_at TEXT NOT NULL,
    delivered_at TEXT,
    last_error TEXT
);
CREATE INDEX IF NOT EXISTS outbox_due ON outbox(status, next_attempt_at);
CREATE TABLE IF NOT EXISTS silences (
    id TEXT PRIMARY KEY,
    matchers TEXT NOT NULL,
    starts_at TEXT NOT NULL,
    ends_at TEXT NOT NULL,
    by TEXT NOT NULL,
    comment TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS profiles (
    meter_id TEXT PRIMARY KEY,
    customer_id TEXT,
    segment TEXT NOT NULL,
    tags TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS profiles_customer ON profiles(customer_id);
CREATE TABLE IF NOT EXISTS counters (
    name TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
"""


@functools.lru_cache(maxsize=4096)
def ts(value: datetime) -> str:
    """Stored form of a time: ISO 8601 UTC with microseconds, so text order is time order.
    Cached: a batch stamps the same few instants (its ``now``, the events' onsets) on many
    rows."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_ts(value: str | None) -> datetime | None:
    """A stored time back (``None`` stays ``None``)."""
    if value is None:
        return None
    return _parse_ts(value)


@functools.lru_cache(maxsize=4096)
def _parse_ts(value: str) -> datetime:
    # The stored form only (ISO 8601, "Z"): fromisoformat is a twentieth of strptime's cost.
    if len(value) != 27 or value[-1] != "Z":
        raise ValueError(f"not a stored time: {value!r}")
    return datetime.fromisoformat(value[:-1]).replace(tzinfo=UTC)


def connect(path: Path | str) -> sqlite3.Connection:
    """Open (and create) the state database; ``:memory:`` for tests."""
    if str(path) != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None, timeout=30)
    db.row_factory = sqlite3.Row
    if str(path) != ":memory:":
        db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.executescript(SCHEMA)
    return db


def dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


class AlertStore:
    """The read side of the router's database: alerts, their episodes, the audit trail, the
    outbox, transitions and counters, as plain values. A web workspace or a report reads here
    (on the router's connection and lock, or its own read-only connection) without going
    through the router's decisions."""

    def __init__(self, db: sqlite3.Connection, lock: threading.RLock | None = None) -> None:
        self.db = db
        self._lock = lock or threading.RLock()

    def alerts(self, state: str | None = None, grid_cell: str | None = None
               ) -> list[dict[str, Any]]:
        q, args = "SELECT * FROM alerts WHERE 1=1", []
        if state:
            q += " AND state=?"
            args.append(state)
        if grid_cell:
            q += " AND grid_cell=?"
            args.append(grid_cell)
        with self._lock:
            return [dict(r) for r in self.db.execute(q + " ORDER BY starts_at", args)]

    def alert(self, fingerprint: str) -> dict[str, Any] | None:
        with self._lock:
            row = self.db.execute("SELECT * FROM alerts WHERE fingerprint=?",
                                  (fingerprint,)).fetchone()
        return dict(row) if row else None

    def episodes(self, fingerprint: str) -> list[dict[str, Any]]:
        """Every episode of an alert, oldest first: onset, raise and end in event time, and
        when the router opened and closed it."""
        with self._lock:
            return [dict(r) for r in self.db.execute(
                "SELECT * FROM episodes WHERE fingerprint=? ORDER BY episode", (fingerprint,))]

    def episode(self, fingerprint: str, episode: int) -> sqlite3.Row | None:
        with self._lock:
            row: sqlite3.Row | None = self.db.execute(
                "SELECT * FROM episodes WHERE fingerprint=? AND episode=?",
                (fingerprint, episode)).fetchone()
            return row

    def episode_by_onset(self, fingerprint: str, onset: datetime) -> sqlite3.Row | None:
        """The latest episode of ``fingerprint`` that began at ``onset`` (its identity)."""
        with self._lock:
            row: sqlite3.Row | None = self.db.execute(
                "SELECT * FROM episodes WHERE fingerprint=? AND onset=? ORDER BY episode DESC "
                "LIMIT 1", (fingerprint, ts(onset))).fetchone()
            return row

    # -- writes: inside the caller's transaction ------------------------------------------
    def open_episode(self, fingerprint: str, episode: int, onset: datetime,
                     raised_at: datetime, opened_at: datetime) -> None:
        with self._lock:
            self.db.execute("INSERT OR REPLACE INTO episodes(fingerprint, episode, onset, "
                            "raised_at, opened_at) VALUES (?,?,?,?,?)",
                            (fingerprint, episode, ts(onset), ts(raised_at), ts(opened_at)))

    def close_episode(self, fingerprint: str, episode: int, ends_at: datetime,
                      resolved_at: datetime) -> None:
        with self._lock:
            self.db.execute("UPDATE episodes SET ends_at=?, resolved_at=? WHERE fingerprint=? "
                            "AND episode=?", (ts(ends_at), ts(resolved_at), fingerprint, episode))

    def make_pending_due(self, now: datetime) -> int:
        """Every pending outbox entry due at ``now`` (leases and backoffs cleared)."""
        with self._lock:
            n: int = self.db.execute(
                "UPDATE outbox SET next_attempt_at=? WHERE status='pending' AND "
                "next_attempt_at > ?", (ts(now), ts(now))).rowcount
            return n

    def audit_trail(self, fingerprint: str | None = None) -> list[dict[str, Any]]:
        with self._lock:
            if fingerprint is None:
                rows = self.db.execute("SELECT * FROM audit ORDER BY id")
            else:
                rows = self.db.execute("SELECT * FROM audit WHERE fingerprint=? OR detail LIKE ? "
                                       "ORDER BY id", (fingerprint, f"%{fingerprint}%"))
            return [dict(r) for r in rows]

    def outbox(self, status: str | None = None) -> list[dict[str, Any]]:
        with self._lock:
            if status is None:
                rows = self.db.execute("SELECT * FROM outbox ORDER BY id")
            else:
                rows = self.db.execute("SELECT * FROM outbox WHERE status=? ORDER BY id",
                                       (status,))
            return [dict(r) for r in rows]

    def transitions(self, actions: tuple[str, ...], after_id: int = 0, limit: int = 10_000
                    ) -> tuple[list[AlertTransition], int]:
        """Audit entries of ``actions`` after entry ``after_id`` as ``AlertTransition`` values,
        and the id to pass next time."""
        with self._lock:
            rows = self.db.execute(
                "SELECT u.id, u.at, u.action, u.by, u.recipient, u.detail, a.fingerprint, "
                "a.meter_id, a.type, a.severity, a.grid_cell, a.customer_id FROM audit u JOIN "
                "alerts a ON "
                "a.fingerprint = u.fingerprint WHERE u.id > ? AND u.action IN (" +
                ",".join("?" * len(actions)) + ") ORDER BY u.id LIMIT ?",
                (after_id, *actions, limit)).fetchall()
            last = self.db.execute("SELECT COALESCE(MAX(id), 0) FROM audit").fetchone()[0]
        out = []
        for r in rows:
            at = parse_ts(r["at"])
            assert at is not None
            out.append(AlertTransition(
                fingerprint=r["fingerprint"], meter_id=r["meter_id"], type=r["type"],
                severity=Severity(r["severity"]), state=r["action"], at=at, by=r["by"],
                grid_cell=r["grid_cell"], customer_id=r["customer_id"],
                recipient=r["recipient"],
                reason=(r["detail"] or "") if r["action"] == "resolved" else ""))
        if len(rows) == limit:
            last = rows[-1]["id"]
        return out, last

    def counters(self) -> dict[str, int]:
        with self._lock:
            return {r["name"]: r["value"] for r in self.db.execute("SELECT * FROM counters")}
