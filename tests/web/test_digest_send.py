"""The weekly digest sent by the running workspace, at most once per manager and week: two
schedulers on one database (a restart, a second process), the workspace under uvicorn, failed
sends and their bounded retries, a crash between claim and send, ``gridwatch digest --send``
after the workspace sent it, and restarts at any times (hypothesis), all through a real SMTP
server (aiosmtpd)."""

from __future__ import annotations

import sqlite3
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml
from _web_helpers import Web, build_web, make_settings
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from gridwatch._services import free_port
from gridwatch._settings import Settings
from gridwatch.cli import app
from gridwatch.web import WebServer
from gridwatch.web._digest import claim, send_state
from gridwatch.web._digest_schedule import DigestScheduler
from gridwatch.web._store import connect

# Monday 7 December 2026, 08:00 in Shanghai; the week just ended starts on 30 November.
DUE = datetime(2026, 12, 7, 0, 0, tzinfo=UTC)
WEEK = "2026-11-30"
MANAGERS = 3  # M1 (Alice, the only one with an email address), M2, M3


def digest_web(tmp: Path, smtp_server: Any = None, smtp_port: int | None = None,
               **web: Any) -> Web:
    smtp = {"host": "127.0.0.1", "port": smtp_port or (smtp_server.port if smtp_server
                                                       else free_port()), "timeout_s": 5}
    return build_web(tmp, alerts={"smtp": smtp}, detection={"timezone": "Asia/Shanghai"},
                     web={"digest_retry_s": 600} | web)


def scheduler(w: Web, now: datetime) -> DigestScheduler:
    return DigestScheduler(w.settings, clock=lambda: now, db_path=w.ws.db_path)


def stored(db: sqlite3.Connection) -> list[tuple[str, str]]:
    return [tuple(r) for r in db.execute(
        "SELECT manager_id, week_start FROM web_digests ORDER BY manager_id")]


def close(w: Web) -> None:
    w.router.close()
    w.ws.close()


def test_two_schedulers_past_the_due_time_send_once(tmp_path: Path, smtp_server) -> None:
    w = digest_web(tmp_path, smtp_server)
    try:
        # a second before the due time it is still the week before that is due
        early = scheduler(w, DUE - timedelta(seconds=1))
        assert {d.week_start for d in early.run_once()} == {"2026-11-23"}
        early.close()
        smtp_server.messages.clear()
        smtp_server.envelopes.clear()
        first = scheduler(w, DUE + timedelta(minutes=1))
        done = first.run_once()
        assert {d.manager_id: d.delivery for d in done} == {"M1": "sent", "M2": "kept",
                                                           "M3": "kept"}
        assert first.run_once() == []  # the next tick finds nothing to do
        first.close()
        # a restart later that week, and a second process
        for now in (DUE + timedelta(hours=3), DUE + timedelta(days=6, hours=23)):
            again = scheduler(w, now)
            assert again.run_once() == []
            again.close()
        assert [e[1] for e in smtp_server.envelopes] == [["alice@example.org"]]
        assert f"{WEEK}" in smtp_server.messages[0]["Subject"]
        assert [r for r in stored(w.ws.db) if r[1] == WEEK] == [
            ("M1", WEEK), ("M2", WEEK), ("M3", WEEK)]
        state = send_state(w.ws.db, "M1", WEEK)
        assert state is not None and (state.status, state.attempts) == ("sent", 1)
        assert state.by == "workspace" and state.recipient == "alice@example.org"
        # the in-app page shows it
        c = w.client()
        c.login("bob")
        assert WEEK in c.get("/digest").text
        # the next week is due a week later, once
        nxt = scheduler(w, DUE + timedelta(days=7))
        assert [d.delivery for d in nxt.run_once()] == ["sent", "kept", "kept"]
        nxt.close()
        assert len(smtp_server.envelopes) == 2
    finally:
        close(w)


def test_concurrent_schedulers_claim_each_week_once(tmp_path: Path, smtp_server) -> None:
    w = digest_web(tmp_path, smtp_server)
    try:
        scheds = [scheduler(w, DUE + timedelta(minutes=5)) for _ in range(4)]
        barrier = threading.Barrier(len(scheds))
        results: list[list[str]] = []

        def run(s: DigestScheduler) -> None:
            barrier.wait()
            results.append([d.delivery for d in s.run_once()])

        threads = [threading.Thread(target=run, args=(s,)) for s in scheds]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        for s in scheds:
            s.close()
        assert len(smtp_server.envelopes) == 1
        assert sum(r.count("sent") for r in results) == 1
        assert len(stored(w.ws.db)) == MANAGERS
    finally:
        close(w)


def test_failed_send_is_kept_and_retried_a_bounded_number_of_times(tmp_path: Path,
                                                                  smtp_server) -> None:
    dead = free_port()  # nothing listens here
    w = digest_web(tmp_path, smtp_port=dead, digest_max_attempts=2)
    try:
        t = DUE + timedelta(minutes=1)
        d1 = scheduler(w, t).run_once()
        m1 = next(d for d in d1 if d.manager_id == "M1")
        assert m1.delivery == "failed" and "Connection" in m1.error
        state = send_state(w.ws.db, "M1", WEEK)
        assert state is not None and (state.status, state.attempts) == ("failed", 1)
        assert state.error == m1.error
        # the digest is in the app all the same
        assert len(stored(w.ws.db)) == MANAGERS
        # not before the pause is over
        assert scheduler(w, t + timedelta(seconds=599)).run_once() == []
        # the second and last attempt, still failing
        assert "failed" in [d.delivery for d in scheduler(w, t + timedelta(seconds=600))
                            .run_once()]
        state = send_state(w.ws.db, "M1", WEEK)
        assert state is not None and (state.status, state.attempts) == ("failed", 2)
        assert scheduler(w, t + timedelta(days=1)).run_once() == []
    finally:
        close(w)
    # the SMTP server back: a failed week with attempts left goes out on the next try
    w = digest_web(tmp_path / "again", smtp_server)
    try:
        good = w.settings
        bad = good.model_copy(update={"alerts": good.alerts.model_copy(update={
            "smtp": good.alerts.smtp.model_copy(update={"port": dead})})})
        t = DUE + timedelta(minutes=1)
        assert DigestScheduler(bad, clock=lambda: t, db_path=w.ws.db_path).run_once()
        assert smtp_server.envelopes == []
        later = DigestScheduler(good, clock=lambda: t + timedelta(hours=1),
                                db_path=w.ws.db_path)
        assert [d.delivery for d in later.run_once() if d.manager_id == "M1"] == ["sent"]
        state = send_state(w.ws.db, "M1", WEEK)
        assert state is not None and (state.status, state.attempts, state.error) == (
            "sent", 2, "")
        assert len(smtp_server.envelopes) == 1
    finally:
        close(w)


def test_a_claim_whose_sender_stopped_is_not_sent_again(tmp_path: Path, smtp_server) -> None:
    """A crash between claim and send (or after the server took the email): the week stays
    claimed and nobody resends it by itself."""
    w = digest_web(tmp_path, smtp_server)
    try:
        won, _ = claim(w.ws.db, "M1", WEEK, DUE, by="workspace", recipient="alice@example.org")
        assert won
        done = scheduler(w, DUE + timedelta(days=2)).run_once()
        assert {d.manager_id: d.delivery for d in done}["M1"] == "already claimed"
        assert smtp_server.envelopes == []
    finally:
        close(w)


def test_a_digest_that_cannot_be_stored_is_recorded_failed_and_retried(tmp_path: Path,
                                                                       smtp_server) -> None:
    w = digest_web(tmp_path, smtp_server)
    try:
        w.ws.db.execute("CREATE TRIGGER refuse BEFORE INSERT ON web_digests BEGIN "
                        "SELECT RAISE(ABORT, 'the disk says no'); END")
        t = DUE + timedelta(minutes=1)
        done = scheduler(w, t).run_once()
        assert {d.delivery for d in done} == {"failed"}
        state = send_state(w.ws.db, "M1", WEEK)
        assert state is not None and state.status == "failed"
        assert "the disk says no" in state.error
        assert smtp_server.envelopes == [] and stored(w.ws.db) == []
        w.ws.db.execute("DROP TRIGGER refuse")
        later = scheduler(w, t + timedelta(hours=1)).run_once()
        assert [d.delivery for d in later] == ["sent", "kept", "kept"]
        assert len(smtp_server.envelopes) == 1
    finally:
        close(w)


def test_digest_off_and_send_off(tmp_path: Path, smtp_server) -> None:
    w = digest_web(tmp_path, smtp_server, digest_enabled=False)
    try:
        assert scheduler(w, DUE + timedelta(hours=1)).run_once() == []
        assert stored(w.ws.db) == []
    finally:
        close(w)
    w = digest_web(tmp_path / "kept", smtp_server, digest_send=False)
    try:
        done = scheduler(w, DUE + timedelta(hours=1)).run_once()
        assert [d.delivery for d in done] == ["kept"] * MANAGERS
        assert smtp_server.envelopes == [] and len(stored(w.ws.db)) == MANAGERS
    finally:
        close(w)


def test_the_running_workspace_sends_it_and_a_restart_does_not(tmp_path: Path,
                                                              smtp_server) -> None:
    w = digest_web(tmp_path, smtp_server)
    close(w)
    for _ in range(2):  # a start after the due time, then a restart
        server = WebServer(w.settings, host="127.0.0.1", port=free_port(),
                           clock=lambda: DUE + timedelta(hours=2)).start()
        try:
            deadline = time.monotonic() + 20
            db = connect(w.settings.alerts.state_db)
            while send_state(db, "M3", WEEK) is None and time.monotonic() < deadline:
                time.sleep(0.1)
            db.close()
            time.sleep(0.5)
        finally:
            server.stop()
        assert [e[1] for e in smtp_server.envelopes] == [["alice@example.org"]]
    db = connect(w.settings.alerts.state_db)
    assert stored(db) == [("M1", WEEK), ("M2", WEEK), ("M3", WEEK)]
    db.close()


def config_file(tmp: Path, smtp_port: int) -> tuple[Path, Settings]:
    s = make_settings(tmp)
    data = {"alerts": {"registry": str(s.alerts.registry), "routes": str(s.alerts.routes),
                       "templates": str(s.alerts.templates), "state_db": str(s.alerts.state_db),
                       "jsonl_out": None,
                       "smtp": {"host": "127.0.0.1", "port": smtp_port, "timeout_s": 5}},
            "web": {"secret_file": str(tmp / "web.secret")}, "influx": {"enabled": False},
            "detection": {"timezone": "Asia/Shanghai"}}
    path = tmp / "gridwatch.yaml"
    path.write_text(yaml.safe_dump(data))
    from gridwatch._settings import load_settings

    return path, load_settings(path)


def test_cli_after_the_workspace_says_already_sent(tmp_path: Path, smtp_server) -> None:
    cfg, s = config_file(tmp_path, smtp_server.port)
    run = CliRunner().invoke
    # the workspace sends this week's digest (real clock, like the CLI's)
    sched = DigestScheduler(s, clock=lambda: datetime.now(UTC))
    assert [d.delivery for d in sched.run_once() if d.manager_id == "M1"] == ["sent"]
    sched.close()
    out = run(app, ["digest", "--send", "-c", str(cfg)])
    assert out.exit_code == 0, out.output
    assert "already sent" in out.output
    assert len(smtp_server.envelopes) == 1
    forced = run(app, ["digest", "--send", "--force", "-c", str(cfg)])
    assert forced.exit_code == 0, forced.output
    assert len(smtp_server.envelopes) == 2
    status = run(app, ["digest", "--status", "-c", str(cfg)])
    assert status.exit_code == 0
    line = next(r for r in status.output.splitlines() if " M1 " in r)
    assert "M1 sent attempts=2 to=alice@example.org by=cli" in line, status.output


def test_cli_send_failure_exits_non_zero(tmp_path: Path) -> None:
    cfg, _ = config_file(tmp_path, free_port())
    out = CliRunner().invoke(app, ["digest", "--send", "-c", str(cfg)])
    assert out.exit_code == 1 and "failed" in out.output
    status = CliRunner().invoke(app, ["digest", "--status", "-c", str(cfg)])
    assert "failed" in status.output and "Connection" in status.output


def test_existing_database_gets_the_send_table(tmp_path: Path) -> None:
    db = connect(tmp_path / "old.sqlite")
    db.execute("DROP TABLE web_digest_sends")
    db.close()
    db = connect(tmp_path / "old.sqlite")
    assert claim(db, "M1", WEEK, DUE, by="cli")[0]
    db.close()


# ---------------------------------------------------------------- any restarts, any failures
RUN = st.tuples(st.integers(0, 21 * 24 * 60),  # minutes after the first due time - 1 day
                st.booleans())  # the SMTP server reachable on this run


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(runs=st.lists(RUN, min_size=1, max_size=8))
def test_once_per_week_over_any_restarts(tmp_path_factory, smtp_server, runs) -> None:
    """Schedulers started and stopped at any times, sometimes without SMTP: per manager and
    week at most one email, never more attempts than allowed, and every week that saw a run
    (the week ended by the latest due time) either went out or is recorded as failed."""
    tmp = tmp_path_factory.mktemp("restarts")
    base = make_settings(tmp, alerts={"smtp": {"host": "127.0.0.1", "port": smtp_server.port,
                                               "timeout_s": 5}},
                         detection={"timezone": "Asia/Shanghai"},
                         web={"digest_max_attempts": 2, "digest_retry_s": 3600})
    dead = base.model_copy(update={"alerts": base.alerts.model_copy(update={
        "smtp": base.alerts.smtp.model_copy(update={"port": free_port()})})})
    smtp_server.envelopes.clear()
    smtp_server.messages.clear()
    db_path = tmp / "state.sqlite"
    start = DUE - timedelta(days=1)
    for minutes, reachable in sorted(runs):
        now = start + timedelta(minutes=minutes)
        s = DigestScheduler(base if reachable else dead, clock=lambda now=now: now,
                            db_path=db_path)
        s.run_once()
        s.close()
    # a run covers the week ended by the latest due time before it (Shanghai: no DST)
    weeks_run = {(start + timedelta(minutes=m) - DUE) // timedelta(days=7) for m, _ in runs}
    weeks = {(DUE + timedelta(days=7 * k - 7)).strftime("%Y-%m-%d") for k in weeks_run}
    sent = [m["Subject"].split()[-1] for m in smtp_server.messages]
    assert len(sent) == len(set(sent))  # one email per week at most
    assert set(sent) <= weeks
    db = connect(db_path)
    try:
        for week in weeks:
            state = send_state(db, "M1", week)
            assert state is not None and 1 <= state.attempts <= 2
            assert state.status == ("sent" if week in sent else "failed")
            for mgr in ("M2", "M3"):
                other = send_state(db, mgr, week)
                assert other is not None and other.status == "kept"
        assert {w for _, w in stored(db)} == weeks
    finally:
        db.close()
