"""The weekly digest of one manager: alerts in their cells, verdicts, time to acknowledge and
the false-alarm trend, kept in the app and sent by email."""

from __future__ import annotations

import json
import smtplib
import sqlite3
import statistics
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from email.message import EmailMessage
from typing import Any

from gridwatch.alerts._registry import Registry
from gridwatch.web._alertdb import time_to_ack
from gridwatch.web._i18n import translate
from gridwatch.web._store import ts

__all__ = ["Digest", "build_digest", "send_digests", "store_digest"]


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
    db.execute("INSERT INTO web_digests(manager_id, week_start, created_at, body) VALUES "
               "(?,?,?,?) ON CONFLICT(manager_id, week_start) DO UPDATE SET body=excluded.body, "
               "created_at=excluded.created_at",
               (d.manager_id, d.week_start, ts(now), json.dumps(body, ensure_ascii=False)))


def send_digests(db: sqlite3.Connection, registry: Registry, now: datetime, *, smtp: Any = None,
                 link: str = "") -> list[Digest]:
    """Build, store and (with ``smtp``, the alert settings' SMTP section) email every manager's
    digest; managers without an email address get it in the app only."""
    out = []
    for mgr in registry.managers:
        d = build_digest(db, registry, mgr.id, now, mgr.language)
        store_digest(db, d, now)
        out.append(d)
        if smtp is not None and mgr.email:
            msg = EmailMessage()
            msg["Subject"] = f"gridwatch {translate(mgr.language, 'digest')} {d.week_start}"
            msg["From"] = smtp.sender
            msg["To"] = mgr.email
            msg.set_content(d.text + (f"\n\n{link}/digest\n" if link else "\n"))
            with smtplib.SMTP(smtp.host, smtp.port, timeout=smtp.timeout_s) as s:
                if smtp.starttls:
                    s.starttls()
                if smtp.username and smtp.password:
                    s.login(smtp.username, smtp.password.get_secret_value())
                s.send_message(msg)
    return out
