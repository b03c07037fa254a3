"""The workspace's own tables: accounts, sessions, login failures, one-time logins, verdicts,
customer notice acknowledgements, digests and the web audit trail.

They live beside the alert router's tables (prefixed ``web_``) so an alert and its verdicts
are one join apart; the router never reads them.
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

__all__ = ["SCHEMA", "connect", "parse_ts", "ts"]

SCHEMA = """
CREATE TABLE IF NOT EXISTS web_users (
    username TEXT PRIMARY KEY,
    role TEXT NOT NULL CHECK (role IN ('manager', 'customer')),
    subject TEXT NOT NULL,
    display_name TEXT NOT NULL DEFAULT '',
    language TEXT NOT NULL DEFAULT 'zh',
    password_hash TEXT NOT NULL,
    disabled INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS web_sessions (
    id TEXT PRIMARY KEY,
    username TEXT NOT NULL,
    csrf TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    client TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS web_sessions_user ON web_sessions(username);
CREATE TABLE IF NOT EXISTS web_login_failures (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    key TEXT NOT NULL,
    at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS web_login_failures_key ON web_login_failures(key, at);
CREATE TABLE IF NOT EXISTS web_login_tokens (
    token_hash TEXT PRIMARY KEY,
    username TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    used_at TEXT
);
CREATE TABLE IF NOT EXISTS web_verdicts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    fingerprint TEXT NOT NULL,
    episode INTEGER NOT NULL,
    meter_id TEXT NOT NULL,
    type TEXT NOT NULL,
    kind TEXT NOT NULL DEFAULT '',
    severity TEXT NOT NULL,
    grid_cell TEXT,
    customer_id TEXT,
    verdict TEXT NOT NULL CHECK (verdict IN ('confirmed', 'false_alarm', 'site_visit')),
    note TEXT NOT NULL DEFAULT '',
    by TEXT NOT NULL,
    at TEXT NOT NULL,
    exported INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS web_verdicts_fp ON web_verdicts(fingerprint);
CREATE INDEX IF NOT EXISTS web_verdicts_at ON web_verdicts(at);
CREATE TABLE IF NOT EXISTS web_notice_acks (
    fingerprint TEXT NOT NULL,
    episode INTEGER NOT NULL,
    customer_id TEXT NOT NULL,
    by TEXT NOT NULL,
    at TEXT NOT NULL,
    PRIMARY KEY (fingerprint, episode, customer_id)
);
CREATE TABLE IF NOT EXISTS web_digests (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    manager_id TEXT NOT NULL,
    week_start TEXT NOT NULL,
    created_at TEXT NOT NULL,
    body TEXT NOT NULL,
    UNIQUE (manager_id, week_start)
);
-- One row per manager and digest week, written before the email goes out: at most one send
-- per week, whoever sends it (the workspace's schedule, ``gridwatch digest --send``).
-- claimed: being sent (or the sender stopped before it knew: never resent by itself);
-- sent; failed (error kept, tried again up to web.digest_max_attempts); kept: in the app only.
CREATE TABLE IF NOT EXISTS web_digest_sends (
    manager_id TEXT NOT NULL,
    week_start TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('claimed', 'sent', 'failed', 'kept')),
    attempts INTEGER NOT NULL DEFAULT 0,
    claimed_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    by TEXT NOT NULL DEFAULT '',
    recipient TEXT NOT NULL DEFAULT '',
    error TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (manager_id, week_start)
);
CREATE TABLE IF NOT EXISTS web_audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at TEXT NOT NULL,
    username TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL DEFAULT '',
    detail TEXT NOT NULL DEFAULT '',
    client TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS web_audit_target ON web_audit(target);
"""


def ts(value: datetime) -> str:
    """Stored form of a time, the router's: ISO 8601 UTC with microseconds."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_ts(value: str) -> datetime:
    return datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


def connect(path: Path | str) -> sqlite3.Connection:
    """Open the database holding the router's tables and create the workspace's own."""
    from gridwatch.alerts._store import connect as router_connect

    db = router_connect(path)
    db.executescript(SCHEMA)
    return db
