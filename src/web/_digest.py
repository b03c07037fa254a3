"""The weekly digest of one manager: alerts in their cells, verdicts, time to acknowledge and
the false-alarm trend, kept in the app and sent by email."""

from __future__ import annotations

import json
import logging
import sqlite3
import statistics
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

from gridwatch.alerts._registry import Registry
from gridwatch.web._alertdb import time_to_ack
from gridwatch.web._i18n import translate
from gridwatch.web._store import parse_ts, ts

__all__ = ["Digest", "SendState", "build_digest", "claim", "may_claim", "pending",
           "send_digests", "send_state", "send_states", "store_digest"]

log = logging.getLogger("gridwatch.web.digest")


@dataclass
class Digest:
    manager_id: str
    week_start: str  # ISO date of the first day covered
    cells: list[str]
    alerts: int = 0
    by_type: dict[str, int] = field(default_factory=dict)
    verdicts: dict[str, int] = field(default_factory=dict)
    median_ack_min: float | None = None
    unacknowledged: int = 0
    #: False alarms among judged verdicts, this week and the week before.
    false_alarm_rate: float | None = None
    false_alarm_rate_before: float | None = None
    text: str = ""
    #: What became of it: sent, failed, kept (in the app only), already sent/claimed/…
    delivery: str = ""
    error: str = ""


def _fa_rate(db: sqlite3.Connection, cells: list[str], start: datetime, end: datetime
             ) -> float | None:
    marks = ",".join("?" * len(cells))
    row = db.execute(
        f"SELECT SUM(verdict='false_alarm'), SUM(verdict IN ('false_alarm','confirmed')) FROM "
        f"web_verdicts WHERE grid_cell IN ({marks}) AND at >= ? AND at < ?",
        [*cells, ts(start), ts(end)]).fetchone()
    return (row[0] / row[1]) if row[1] else None


def build_digest(db: sqlite3.Connection, registry: Registry, manager_id: str, now: datetime,
                 lang: str = "zh") -> Digest:
    """The digest of the seven days before ``now`` for the cells ``manager_id`` manages."""
    start = now - timedelta(days=7)
    cells = [c.id for c in registry.cells if manager_id in (c.primary, c.backup)]
    d = Digest(manager_id, start.strftime("%Y-%m-%d"), cells)
    if cells:
        marks = ",".join("?" * len(cells))
        for r in db.execute(
                f"SELECT a.type, COUNT(*) FROM audit f JOIN alerts a ON a.fingerprint = "
                f"f.fingerprint WHERE f.action='firing' AND f.at >= ? AND f.at < ? AND "
                f"a.grid_cell IN ({marks}) GROUP BY a.type", [ts(start), ts(now), *cells]):
            d.by_type[r[0]] = r[1]
        d.alerts = sum(d.by_type.values())
        for r in db.execute(
                f"SELECT verdict, COUNT(*) FROM web_verdicts WHERE grid_cell IN ({marks}) AND "
                f"at >= ? AND at < ? GROUP BY verdict", [*cells, ts(start), ts(now)]):
            d.verdicts[r[0]] = r[1]
        acks = [m for _, _, m in time_to_ack(db, cells, start)]
        d.median_ack_min = statistics.median(acks) if acks else None
        d.unacknowledged = db.execute(
            f"SELECT COUNT(*) FROM alerts WHERE state='firing' AND grid_cell IN ({marks})",
            cells).fetchone()[0]
        d.false_alarm_rate = _fa_rate(db, cells, start, now)
        d.false_alarm_rate_before = _fa_rate(db, cells, start - timedelta(days=7), start)
    d.text = render_text(d, lang)
    return d


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{100 * v:.0f}%"


def render_text(d: Digest, lang: str) -> str:
    def t(k: str) -> str:
        return translate(lang, k)

    lines = [f"{t('digest')} {d.week_start} · {t('my_cells')}: {', '.join(d.cells) or '-'}",
             f"{t('open_alerts')} (7d): {d.alerts}  "
             + "  ".join(f"{k}={v}" for k, v in sorted(d.by_type.items())),
             f"{t('verdicts')}: " + ("  ".join(f"{t(k)}={v}" for k, v in sorted(
                 d.verdicts.items())) or "-"),
             f"{t('median_ack')}: " + ("-" if d.median_ack_min is None else
                                      f"{d.median_ack_min:.0f} {t('minutes')}"),
             f"{t('firing')}: {d.unacknowledged}",
             f"{t('false_alarm')}: {_pct(d.false_alarm_rate)} "
             f"({_pct(d.false_alarm_rate_before)} →)"]
    return "\n".join(lines)


def store_digest(db: sqlite3.Connection, d: Digest, now: datetime) -> None:
    """Keep the digest for the in-app page (one per manager and week; a rerun replaces it)."""
    body: dict[str, Any] = asdict(d)
    body.pop("delivery")
    body.pop("error")
    db.execute("INSERT INTO web_digests(manager_id, week_start, created_at, body) VALUES "
               "(?,?,?,?) ON CONFLICT(manager_id, week_start) DO UPDATE SET body=excluded.body, "
               "created_at=excluded.created_at",
               (d.manager_id, d.week_start, ts(now), json.dumps(body, ensure_ascii=False)))


@dataclass(frozen=True)
class SendState:
    """Where one manager's digest of one week stands (a row of ``web_digest_sends``)."""

    manager_id: str
    week_start: str
    status: str  # claimed | sent | failed | kept
    attempts: int
    claimed_at: str
    updated_at: str
    by: str
    recipient: str
    error: str


def send_state(db: sqlite3.Connection, manager_id: str, week_start: str) -> SendState | None:
    row = db.execute("SELECT manager_id, week_start, status, attempts, claimed_at, updated_at, "
                     "by, recipient, error FROM web_digest_sends WHERE manager_id=? AND "
                     "week_start=?", (manager_id, week_start)).fetchone()
    return None if row is None else SendState(*row)


def send_states(db: sqlite3.Connection, weeks: int = 4) -> list[SendState]:
    """The send records of the last ``weeks`` digest weeks, newest week first."""
    rows = db.execute(
        "SELECT manager_id, week_start, status, attempts, claimed_at, updated_at, by, "
        "recipient, error FROM web_digest_sends WHERE week_start IN (SELECT DISTINCT "
        "week_start FROM web_digest_sends ORDER BY week_start DESC LIMIT ?) "
        "ORDER BY week_start DESC, manager_id", (weeks,))
    return [SendState(*r) for r in rows]


def may_claim(state: SendState | None, now: datetime, *, max_attempts: int, retry_s: float,
              force: bool = False) -> bool:
    """Whether a sender may (re)claim a digest week: never claimed yet, a failed send with
    attempts left whose pause is over, or ``force``. A ``claimed`` row is never taken over:
    its sender may have handed the email to the server before it stopped, and a manager must
    not get the same week twice (``force`` sends it again by hand)."""
    if state is None or force:
        return True
    return (state.status == "failed" and state.attempts < max_attempts
            and now >= parse_ts(state.updated_at) + timedelta(seconds=retry_s))


def claim(db: sqlite3.Connection, manager_id: str, week_start: str, now: datetime, *,
          by: str, recipient: str = "", max_attempts: int = 3, retry_s: float = 1800.0,
          force: bool = False) -> tuple[bool, SendState | None]:
    """Record the send of ``manager_id``'s digest of ``week_start`` as ``claimed`` in one
    write transaction (so two senders, in one process or two, cannot both win); returns
    whether this caller claimed it, and the state it found."""
    db.execute("BEGIN IMMEDIATE")
    try:
        state = send_state(db, manager_id, week_start)
        won = may_claim(state, now, max_attempts=max_attempts, retry_s=retry_s, force=force)
        if won:
            db.execute(
                "INSERT INTO web_digest_sends(manager_id, week_start, status, attempts, "
                "claimed_at, updated_at, by, recipient) VALUES (?,?,'claimed',1,?,?,?,?) "
                "ON CONFLICT(manager_id, week_start) DO UPDATE SET status='claimed', "
                "attempts=attempts+1, updated_at=excluded.updated_at, by=excluded.by, "
                "recipient=excluded.recipient, error=''",
                (manager_id, week_start, ts(now), ts(now), by, recipient))
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise
    return won, state


def _finish(db: sqlite3.Connection, manager_id: str, week_start: str, now: datetime,
            status: str, error: str = "") -> None:
    db.execute("UPDATE web_digest_sends SET status=?, updated_at=?, error=? WHERE "
               "manager_id=? AND week_start=?", (status, ts(now), error, manager_id, week_start))


def pending(db: sqlite3.Connection, registry: Registry, week_start: str, now: datetime, *,
            max_attempts: int, retry_s: float) -> list[str]:
    """Managers whose digest of ``week_start`` is still to be built or sent."""
    return [m.id for m in registry.managers
            if may_claim(send_state(db, m.id, week_start), now, max_attempts=max_attempts,
                         retry_s=retry_s)]


def _email(smtp: Any, to: str, subject: str, text: str, key: str, now: datetime) -> str:
    """Send one digest through the alert router's email channel; returns the error ('' when
    the server took it)."""
    from gridwatch.alerts._channels import EmailNotifier, Notification

    try:
        sent = EmailNotifier(smtp).send(Notification(
            key=key, recipient=key.split("/")[1], channel="email", target=to, kind="digest",
            status="firing", subject=subject, body=text, created_at=now))
    except Exception as exc:  # whatever went wrong is recorded, never left 'claimed'
        return f"{type(exc).__name__}: {exc}"
    return "" if sent.ok else sent.detail


def send_digests(db: sqlite3.Connection, registry: Registry, now: datetime, *, smtp: Any = None,
                 link: str = "", record: bool | None = None, force: bool = False,
                 by: str = "cli", max_attempts: int = 3, retry_s: float = 1800.0,
                 clock: Callable[[], datetime] | None = None) -> list[Digest]:
    """Build, store and (with ``smtp``, the alert settings' SMTP section) email every manager's
    digest of the seven days before ``now``; managers without an email address get it in the
    app only.

    With ``smtp`` (or ``record``) each manager's week is claimed in ``web_digest_sends`` before
    anything is built or sent, so the digest of one week goes out at most once whoever sends
    it; a manager already claimed is skipped (``delivery`` says why, ``text`` is empty)
    unless ``force``. Without
    either, the digests are only built and stored (a preview; nothing is recorded). ``clock``
    (default: ``now``) dates the claims.
    """
    record = smtp is not None if record is None else record
    week_start = (now - timedelta(days=7)).strftime("%Y-%m-%d")
    out = []
    for mgr in registry.managers:
        to = mgr.email if smtp is not None and mgr.email else ""
        if record:
            at = clock() if clock else now
            won, state = claim(db, mgr.id, week_start, at, by=by, recipient=to,
                               max_attempts=max_attempts, retry_s=retry_s, force=force)
            if not won:  # not built again: what was kept for /digest stays as it was
                out.append(Digest(mgr.id, week_start, [], delivery=f"already {state.status}"
                                  if state else "skipped", error=state.error if state else ""))
                continue
        try:
            d = build_digest(db, registry, mgr.id, now, mgr.language)
            store_digest(db, d, now)
        except Exception as exc:  # a claimed week is never left without an outcome
            d = Digest(mgr.id, week_start, [], delivery="failed",
                       error=f"{type(exc).__name__}: {exc}")
            log.error("digest of %s for %s not built: %s", week_start, mgr.id, d.error)
            if not record:
                raise
            _finish(db, mgr.id, week_start, clock() if clock else now, d.delivery, d.error)
            out.append(d)
            continue
        out.append(d)
        if not to:
            d.delivery = "kept"
        else:
            error = _email(smtp, to,
                           f"gridwatch {translate(mgr.language, 'digest')} {d.week_start}",
                           d.text + (f"\n\n{link}/digest\n" if link else "\n"),
                           f"digest/{mgr.id}/{week_start}", now)
            d.delivery, d.error = ("failed", error) if error else ("sent", "")
            if error:  # recorded below, never left 'claimed'
                log.warning("digest of %s for %s not sent to %s: %s", week_start, mgr.id, to,
                            error)
        if record:
            _finish(db, mgr.id, week_start, clock() if clock else now, d.delivery, d.error)
    return out
