"""The router's SQLite database: alert state, episodes, audit trail, pending group items and
the outbox. An episode is named by (fingerprint, onset), which survives a replay.

One file, WAL journal, ``synchronous=FULL``: when a router call returns, what it changed is on
disk. Every write happens inside one transaction per router call.
"""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

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
CREATE TABLE IF NOT EXISTS notified (
    recipient TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    episode INTEGER NOT NULL,
    last_sent_at TEXT NOT NULL,
    repeats INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (recipient, fingerprint, episode)
);
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


def ts(value: datetime) -> str:
    """Stored form of a time: ISO 8601 UTC with microseconds, so text order is time order."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_ts(value: str | None) -> datetime | None:
    if value is None:
        return None
    return datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


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
