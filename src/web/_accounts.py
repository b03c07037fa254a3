"""Accounts, sessions, login rate limit, one-time logins and the web audit trail.

Passwords are hashed with argon2id (argon2-cffi's defaults, RFC 9106's second recommended
option). A session is a random id kept server-side with its CSRF token; the cookie carries the id
signed with the workspace key, so a cookie cannot be forged and a session ended on the server
(logout, new password, disabled account) cannot be replayed.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import sqlite3
from dataclasses import dataclass
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from gridwatch.web._store import parse_ts, ts

__all__ = [
    "AccountError",
    "Session",
    "User",
    "add_user",
    "audit",
    "check_rate",
    "consume_login_token",
    "end_session",
    "get_user",
    "issue_login_token",
    "list_users",
    "login",
    "new_session",
    "record_failure",
    "session_user",
    "set_disabled",
    "set_language",
    "set_password",
]

USERNAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@\-]{0,63}$")
MIN_PASSWORD = 10
_hasher = PasswordHasher()
#: Verified against when the account does not exist, so a wrong name costs as much as a wrong
#: password and timing does not tell which names exist.
_DUMMY_HASH = _hasher.hash(secrets.token_hex(16))


class AccountError(ValueError):
    """An account cannot be created or changed; ``str()`` says why."""


@dataclass(frozen=True)
class User:
    username: str
    role: str  # "manager" or "customer"
    subject: str  # the registry's manager id or customer id
    display_name: str
    language: str
    disabled: bool


@dataclass(frozen=True)
class Session:
    id: str
    user: User
    csrf: str


def _user(row: sqlite3.Row) -> User:
    return User(row["username"], row["role"], row["subject"], row["display_name"],
                row["language"], bool(row["disabled"]))


def _check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise AccountError(f"the password must have at least {MIN_PASSWORD} characters")


def add_user(db: sqlite3.Connection, username: str, role: str, subject: str, password: str,
             now: datetime, *, display_name: str = "", language: str = "zh") -> User:
    if not USERNAME.match(username):
        raise AccountError(f"user name {username!r} must be letters, digits and _.@- "
                           "(at most 64)")
    if role not in ("manager", "customer"):
        raise AccountError(f"role {role!r} must be manager or customer")
    if language not in ("zh", "en"):
        raise AccountError(f"language {language!r} must be zh or en")
    _check_password(password)
    try:
        db.execute(
            "INSERT INTO web_users(username, role, subject, display_name, language, "
            "password_hash, created_at, updated_at) VALUES (?,?,?,?,?,?,?,?)",
            (username, role, subject, display_name, language, _hasher.hash(password),
             ts(now), ts(now)))
    except sqlite3.IntegrityError:
        raise AccountError(f"user {username!r} exists already") from None
    user = get_user(db, username)
    assert user is not None
    return user


def get_user(db: sqlite3.Connection, username: str) -> User | None:
    row = db.execute("SELECT * FROM web_users WHERE username=?", (username,)).fetchone()
    return _user(row) if row else None


def list_users(db: sqlite3.Connection) -> list[User]:
    return [_user(r) for r in db.execute("SELECT * FROM web_users ORDER BY username")]


def set_password(db: sqlite3.Connection, username: str, password: str, now: datetime) -> None:
    """New password; every open session of the account ends."""
    _check_password(password)
    cur = db.execute("UPDATE web_users SET password_hash=?, updated_at=? WHERE username=?",
                     (_hasher.hash(password), ts(now), username))
    if not cur.rowcount:
        raise AccountError(f"no user {username!r}")
    db.execute("DELETE FROM web_sessions WHERE username=?", (username,))


def set_disabled(db: sqlite3.Connection, username: str, disabled: bool, now: datetime) -> None:
    cur = db.execute("UPDATE web_users SET disabled=?, updated_at=? WHERE username=?",
                     (int(disabled), ts(now), username))
    if not cur.rowcount:
        raise AccountError(f"no user {username!r}")
    if disabled:
        db.execute("DELETE FROM web_sessions WHERE username=?", (username,))


def set_language(db: sqlite3.Connection, username: str, language: str, now: datetime) -> None:
    if language not in ("zh", "en"):
        raise AccountError(f"language {language!r} must be zh or en")
    db.execute("UPDATE web_users SET language=?, updated_at=? WHERE username=?",
               (language, ts(now), username))


def login(db: sqlite3.Connection, username: str, password: str) -> User | None:
    """The user when the password is right and the account enabled; None otherwise."""
    row = db.execute("SELECT * FROM web_users WHERE username=?", (username,)).fetchone()
    stored = row["password_hash"] if row else _DUMMY_HASH
    try:
        _hasher.verify(stored, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return None
    if row is None or row["disabled"]:
        return None
    if _hasher.check_needs_rehash(stored):
        db.execute("UPDATE web_users SET password_hash=? WHERE username=?",
                   (_hasher.hash(password), username))
    return _user(row)


# ----------------------------------------------------------------------------- rate limit
def check_rate(db: sqlite3.Connection, keys: list[str], now: datetime, window: timedelta,
               max_failures: int) -> bool:
    """True while every key (account, client address) has fewer than ``max_failures`` failed
    logins within ``window``."""
    since = ts(now - window)
    for key in keys:
        n = db.execute("SELECT COUNT(*) FROM web_login_failures WHERE key=? AND at>=?",
                       (key, since)).fetchone()[0]
        if n >= max_failures:
            return False
    return True


def record_failure(db: sqlite3.Connection, keys: list[str], now: datetime,
                   window: timedelta) -> None:
    db.execute("DELETE FROM web_login_failures WHERE at < ?", (ts(now - window),))
    db.executemany("INSERT INTO web_login_failures(key, at) VALUES (?,?)",
                   [(k, ts(now)) for k in keys])


# ----------------------------------------------------------------------------- sessions
def new_session(db: sqlite3.Connection, user: User, now: datetime, ttl: timedelta,
                client: str = "") -> Session:
    sid = secrets.token_urlsafe(32)
    csrf = secrets.token_urlsafe(32)
    db.execute("DELETE FROM web_sessions WHERE expires_at < ?", (ts(now),))
    db.execute("INSERT INTO web_sessions(id, username, csrf, created_at, expires_at, client) "
               "VALUES (?,?,?,?,?,?)", (_digest(sid), user.username, csrf, ts(now),
                                        ts(now + ttl), client))
    return Session(sid, user, csrf)


def session_user(db: sqlite3.Connection, sid: str, now: datetime) -> Session | None:
    """The live session of ``sid`` (unexpired, account enabled), or None."""
    row = db.execute(
        "SELECT s.csrf, s.expires_at, u.* FROM web_sessions s JOIN web_users u "
        "ON u.username = s.username WHERE s.id=?", (_digest(sid),)).fetchone()
    if row is None or row["disabled"] or parse_ts(row["expires_at"]) <= now:
        return None
    return Session(sid, _user(row), row["csrf"])


def end_session(db: sqlite3.Connection, sid: str) -> None:
    db.execute("DELETE FROM web_sessions WHERE id=?", (_digest(sid),))


def _digest(secret: str) -> str:
    # Only digests of session ids and login tokens are stored: a copy of the database
    # does not hand out live sessions.
    return hashlib.sha256(secret.encode()).hexdigest()


# ----------------------------------------------------------------------------- one-time login
def issue_login_token(db: sqlite3.Connection, username: str, now: datetime,
                      ttl: timedelta = timedelta(hours=24)) -> str:
    """A token that logs ``username`` in once (the demo prints it as a link)."""
    if get_user(db, username) is None:
        raise AccountError(f"no user {username!r}")
    token = secrets.token_urlsafe(24)
    db.execute("INSERT INTO web_login_tokens(token_hash, username, expires_at) VALUES (?,?,?)",
               (_digest(token), username, ts(now + ttl)))
    return token


def consume_login_token(db: sqlite3.Connection, token: str, now: datetime) -> User | None:
    row = db.execute("SELECT * FROM web_login_tokens WHERE token_hash=?",
                     (_digest(token),)).fetchone()
    if row is None or row["used_at"] is not None or parse_ts(row["expires_at"]) <= now:
        return None
    cur = db.execute("UPDATE web_login_tokens SET used_at=? WHERE token_hash=? AND used_at IS "
                     "NULL", (ts(now), row["token_hash"]))
    if not cur.rowcount:
        return None
    user = get_user(db, row["username"])
    return user if user is not None and not user.disabled else None


# ----------------------------------------------------------------------------- audit
def audit(db: sqlite3.Connection, now: datetime, username: str, action: str,
          target: str = "", detail: str = "", client: str = "") -> None:
    """Record one action of an authenticated user (or of an anonymous login attempt)."""
    db.execute("INSERT INTO web_audit(at, username, action, target, detail, client) "
               "VALUES (?,?,?,?,?,?)", (ts(now), username, action, target, detail, client))


def same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())
