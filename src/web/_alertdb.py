"""Read side of the alert router's SQLite tables (alerts, audit, profiles), as the workspace
needs them: lists ranked by severity and age, one alert's trail, per-cell figures.

Only reads: changes of an alert's state go through :class:`gridwatch.alerts.Router`, so the
router's rules (audit, resolved notices) apply to the web as to the command line.
"""

from __future__ import annotations

import json
import sqlite3
import statistics
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from gridwatch.web._store import parse_ts, ts

__all__ = [
    "AlertPage",
    "CellFigures",
    "alert",
    "alert_trail",
    "alerts_of_customer",
    "cell_figures",
    "list_alerts",
    "profile",
]

OPEN_STATES = ("firing", "acknowledged")
_SEVERITY_ORDER = "CASE a.severity WHEN 'critical' THEN 0 WHEN 'warning' THEN 1 ELSE 2 END"


@dataclass
class AlertPage:
    rows: list[dict[str, Any]]
    total: int
    types: list[str]
    offset: int
    limit: int


def _marks(n: int) -> str:
    return ",".join("?" * n)


def list_alerts(db: sqlite3.Connection, cells: Sequence[str], *,
                states: Sequence[str] = OPEN_STATES, type_: str | None = None,
                customer_ids: Iterable[str] | None = None, tag: str | None = None,
                limit: int = 100, offset: int = 0) -> AlertPage:
    """Alerts in ``cells``, most severe first and oldest first within a severity.

    ``customer_ids`` (the customers of a class, from the registry) and ``tag`` (a load-profile
    tag) narrow the list; the page holds ``limit`` rows from ``offset`` and ``total`` counts
    them all.
    """
    if not cells:
        return AlertPage([], 0, [], offset, limit)
    where = [f"a.grid_cell IN ({_marks(len(cells))})", f"a.state IN ({_marks(len(states))})"]
    args: list[Any] = [*cells, *states]
    base_args = list(args)
    if type_:
        where.append("a.type = ?")
        args.append(type_)
    if customer_ids is not None:
        ids = list(customer_ids)
        where.append(f"a.customer_id IN ({_marks(len(ids))})" if ids else "0")
        args.extend(ids)
    if tag:
        where.append("EXISTS (SELECT 1 FROM profiles p WHERE (p.meter_id = a.meter_id OR "
                     "p.customer_id = a.customer_id) AND p.tags LIKE ? ESCAPE '\\')")
        literal = tag.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        args.append(f'%"{literal}"%')
    clause = " AND ".join(where)
    total = db.execute(f"SELECT COUNT(*) FROM alerts a WHERE {clause}", args).fetchone()[0]
    rows = db.execute(
        f"SELECT a.fingerprint, a.episode, a.meter_id, a.type, a.severity, a.score, a.state, "
        f"a.onset, a.raised_at, a.customer_id, a.grid_cell, a.summary, a.acked_by, "
        f"a.inhibited_by, a.silenced_by, (SELECT v.verdict FROM web_verdicts v WHERE "
        f"v.fingerprint = a.fingerprint AND v.episode = a.episode ORDER BY v.id DESC LIMIT 1) "
        f"AS verdict FROM alerts a WHERE {clause} ORDER BY {_SEVERITY_ORDER}, a.onset, "
        f"a.fingerprint LIMIT ? OFFSET ?", [*args, limit, offset]).fetchall()
    types = [r[0] for r in db.execute(
        f"SELECT DISTINCT a.type FROM alerts a WHERE a.grid_cell IN ({_marks(len(cells))}) "
        f"AND a.state IN ({_marks(len(states))}) ORDER BY a.type", base_args)]
    return AlertPage([dict(r) for r in rows], total, types, offset, limit)


def alert(db: sqlite3.Connection, fingerprint: str) -> dict[str, Any] | None:
    row = db.execute("SELECT * FROM alerts WHERE fingerprint=?", (fingerprint,)).fetchone()
    if row is None:
        return None
    out = dict(row)
    out["evidence"] = json.loads(out["evidence"] or "{}")
    return out


def alert_trail(db: sqlite3.Connection, fingerprint: str) -> list[dict[str, Any]]:
    """The router's audit entries for the alert and the workspace's (verdicts, acks of
    notices, views of nobody's business), oldest first."""
    rows = [{"at": r["at"], "action": r["action"], "by": r["by"], "detail": r["detail"],
             "episode": r["episode"]} for r in db.execute(
        "SELECT at, action, by, detail, episode FROM audit WHERE fingerprint=?", (fingerprint,))]
    rows += [{"at": r["at"], "action": r["action"], "by": f"web:{r['username']}",
              "detail": r["detail"], "episode": None} for r in db.execute(
        "SELECT at, action, username, detail FROM web_audit WHERE target=? AND action IN "
        "('verdict', 'notice_acknowledged')", (f"alert:{fingerprint}",))]
    rows.sort(key=lambda r: r["at"])
    return rows


def profile(db: sqlite3.Connection, meter_ids: Sequence[str]) -> tuple[str | None, list[str]]:
    """Latest segment and the union of tags of the meters (from the router's profile table)."""
    if not meter_ids:
        return None, []
    rows = db.execute(f"SELECT segment, tags FROM profiles WHERE meter_id IN "
                      f"({_marks(len(meter_ids))}) ORDER BY updated_at DESC",
                      list(meter_ids)).fetchall()
    tags: set[str] = set()
    for r in rows:
        tags.update(json.loads(r["tags"]))
    return (rows[0]["segment"] if rows else None), sorted(tags)


def alerts_of_customer(db: sqlite3.Connection, customer_id: str, *, notices_only: bool = False,
                       limit: int = 200) -> list[dict[str, Any]]:
    """The customer's alerts, newest first; with ``notices_only`` those the router sent to the
    customer itself."""
    q = ("SELECT a.*, (SELECT v.verdict FROM web_verdicts v WHERE v.fingerprint = a.fingerprint "
         "AND v.episode = a.episode ORDER BY v.id DESC LIMIT 1) AS verdict, (SELECT n.at FROM "
         "web_notice_acks n WHERE n.fingerprint = a.fingerprint AND n.episode = a.episode AND "
         "n.customer_id = a.customer_id) AS notice_acked_at FROM alerts a WHERE a.customer_id=?")
    args: list[Any] = [customer_id]
    if notices_only:
        q += " AND a.receivers LIKE ?"
        args.append(f'%"customer:{customer_id}"%')
    rows = db.execute(q + " ORDER BY a.starts_at DESC LIMIT ?", [*args, limit]).fetchall()
    return [dict(r) for r in rows]


@dataclass
class CellFigures:
    per_day: list[tuple[str, int]] = field(default_factory=list)
    by_type: dict[str, int] = field(default_factory=dict)
    verdicts: dict[str, int] = field(default_factory=dict)
    ack_minutes: list[float] = field(default_factory=list)
    open_alerts: int = 0

    @property
    def median_ack_min(self) -> float | None:
        return statistics.median(self.ack_minutes) if self.ack_minutes else None


def time_to_ack(db: sqlite3.Connection, cells: Sequence[str], since: datetime
                ) -> list[tuple[str, str, float]]:
    """(cell, fingerprint, minutes) from each episode's firing to its acknowledgement, for
    episodes that fired since ``since``."""
    rows = db.execute(
        f"SELECT f.fingerprint, a.grid_cell, f.at AS fired, (SELECT MIN(k.at) FROM audit k "
        f"WHERE k.fingerprint = f.fingerprint AND k.episode = f.episode AND "
        f"k.action = 'acknowledged') AS acked FROM audit f JOIN alerts a ON a.fingerprint = "
        f"f.fingerprint WHERE f.action = 'firing' AND f.at >= ? AND a.grid_cell IN "
        f"({_marks(len(cells))})", [ts(since), *cells]).fetchall()
    out = []
    for r in rows:
        if r["acked"]:
            minutes = (parse_ts(r["acked"]) - parse_ts(r["fired"])).total_seconds() / 60
            out.append((r["grid_cell"], r["fingerprint"], minutes))
    return out


def cell_figures(db: sqlite3.Connection, cell_id: str, now: datetime, days: int = 30
                 ) -> CellFigures:
    since = now - timedelta(days=days)
    fig = CellFigures()
    per_day: Counter[str] = Counter()
    for r in db.execute(
            "SELECT f.at, a.type FROM audit f JOIN alerts a ON a.fingerprint = f.fingerprint "
            "WHERE f.action = 'firing' AND f.at >= ? AND a.grid_cell = ?", (ts(since), cell_id)):
        per_day[r["at"][:10]] += 1
        fig.by_type[r["type"]] = fig.by_type.get(r["type"], 0) + 1
    for d in range(days, -1, -1):
        day = (now - timedelta(days=d)).strftime("%Y-%m-%d")
        fig.per_day.append((day, per_day.get(day, 0)))
    for r in db.execute("SELECT verdict, COUNT(*) AS n FROM web_verdicts WHERE grid_cell=? AND "
                        "at >= ? GROUP BY verdict", (cell_id, ts(since))):
        fig.verdicts[r["verdict"]] = r["n"]
    fig.ack_minutes = [m for _, _, m in time_to_ack(db, [cell_id], since)]
    fig.open_alerts = db.execute(
        "SELECT COUNT(*) FROM alerts WHERE grid_cell=? AND state IN ('firing','acknowledged')",
        (cell_id,)).fetchone()[0]
    return fig
