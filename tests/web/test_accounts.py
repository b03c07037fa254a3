"""Accounts without the app: expiry of sessions and one-time logins, the rate-limit window,
what a user name and a password must be."""

from __future__ import annotations

from datetime import timedelta

import pytest
from _web_helpers import T0

from gridwatch.web import _accounts as acc
from gridwatch.web._store import connect


@pytest.fixture
def db():  # type: ignore[no-untyped-def]
    conn = connect(":memory:")
    yield conn
    conn.close()


def test_sessions_expire(db) -> None:  # type: ignore[no-untyped-def]
    user = acc.add_user(db, "alice", "manager", "M1", "a long enough password", T0)
    sess = acc.new_session(db, user, T0, timedelta(hours=1))
    assert acc.session_user(db, sess.id, T0 + timedelta(minutes=59)) is not None
    assert acc.session_user(db, sess.id, T0 + timedelta(hours=1)) is None
    assert acc.session_user(db, "not-a-session", T0) is None
    # only a digest of the id is stored
    stored = db.execute("SELECT id FROM web_sessions").fetchone()[0]
    assert stored != sess.id and len(stored) == 64


def test_rate_limit_window_slides(db) -> None:  # type: ignore[no-untyped-def]
    window = timedelta(minutes=15)
    keys = ["user:alice", "client:10.0.0.1"]
    for i in range(3):
        acc.record_failure(db, keys, T0 + timedelta(minutes=i), window)
    assert not acc.check_rate(db, keys, T0 + timedelta(minutes=3), window, 3)
    assert acc.check_rate(db, ["user:bob"], T0 + timedelta(minutes=3), window, 3)
    assert acc.check_rate(db, keys, T0 + timedelta(minutes=15, seconds=1), window, 3)


def test_login_tokens_expire(db) -> None:  # type: ignore[no-untyped-def]
    acc.add_user(db, "alice", "manager", "M1", "a long enough password", T0)
    token = acc.issue_login_token(db, "alice", T0, timedelta(hours=1))
    assert acc.consume_login_token(db, token, T0 + timedelta(hours=2)) is None
    with pytest.raises(acc.AccountError):
        acc.issue_login_token(db, "nobody", T0)


@pytest.mark.parametrize(("username", "role", "language", "password", "problem"), [
    ("bad name", "manager", "zh", "a long enough password", "user name"),
    ("x" * 65, "manager", "zh", "a long enough password", "user name"),
    ("ok", "admin", "zh", "a long enough password", "role"),
    ("ok", "manager", "fr", "a long enough password", "language"),
    ("ok", "manager", "zh", "too short", "at least"),
])
def test_account_rules(db, username, role, language, password, problem) -> None:  # type: ignore
    with pytest.raises(acc.AccountError, match=problem):
        acc.add_user(db, username, role, "M1", password, T0, language=language)
    assert acc.list_users(db) == []
