"""Verdicts: what a manager found an alert to be, kept with the alert, exported to InfluxDB and
handed back to detection.

``confirmed`` (the condition was real), ``false_alarm`` (it was not) or ``site_visit`` (someone
has to look). The detector reads them through :func:`verdicts_for_detection`; ``gridwatch
evaluate --verdicts`` scores detection against them (:func:`score_verdicts`).
"""

from __future__ import annotations

import sqlite3
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from gridwatch.web._store import parse_ts, ts

__all__ = [
    "VERDICTS",
    "VerdictFeed",
    "VerdictScore",
    "export_pending",
    "false_alarm_weights",
    "record_verdict",
    "score_verdicts",
    "verdict_lines",
    "verdicts_for_detection",
    "verdicts_of",
]

VERDICTS = ("confirmed", "false_alarm", "site_visit")
MAX_NOTE = 2000


def record_verdict(db: sqlite3.Connection, alert: Mapping[str, Any], verdict: str, note: str,
                   by: str, now: datetime) -> int:
    """Store a verdict on the alert's current episode; returns its id."""
    if verdict not in VERDICTS:
        raise ValueError(f"verdict {verdict!r} must be one of {', '.join(VERDICTS)}")
    evidence = alert.get("evidence") or {}
    kind = str(evidence.get("kind", "")) if isinstance(evidence, Mapping) else ""
    cur = db.execute(
        "INSERT INTO web_verdicts(fingerprint, episode, meter_id, type, kind, severity, "
        "grid_cell, customer_id, verdict, note, by, at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
        (alert["fingerprint"], alert["episode"], alert["meter_id"], alert["type"], kind,
         alert["severity"], alert.get("grid_cell"), alert.get("customer_id"), verdict,
         note.strip()[:MAX_NOTE], by, ts(now)))
    assert cur.lastrowid is not None
    return cur.lastrowid


def verdicts_of(db: sqlite3.Connection, fingerprint: str) -> list[dict[str, Any]]:
    return [dict(r) for r in db.execute(
        "SELECT * FROM web_verdicts WHERE fingerprint=? ORDER BY id", (fingerprint,))]


def _escape_tag(value: str) -> str:
    return (value.replace("\\", "\\\\").replace(",", r"\,").replace("=", r"\=")
            .replace(" ", r"\ ").replace("\n", " "))


def _escape_str(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ")


def verdict_lines(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """Line protocol of verdicts: measurement ``verdict``, tagged by meter, type, verdict, cell,
    customer and detector kind; the point's time is when the verdict was given (nanoseconds),
    so exporting it again overwrites it."""
    out = []
    for r in rows:
        tags = {"meter_id": r["meter_id"], "type": r["type"], "verdict": r["verdict"],
                "grid_cell": r["grid_cell"], "customer_id": r["customer_id"],
                "kind": r["kind"]}
        tag_text = "".join(f",{k}={_escape_tag(str(v))}" for k, v in sorted(tags.items()) if v)
        fields = (f'by="{_escape_str(r["by"])}",episode={float(r["episode"])},'
                  f'fingerprint="{_escape_str(r["fingerprint"])}",'
                  f'note="{_escape_str(r["note"])}",severity="{_escape_str(r["severity"])}"')
        at = parse_ts(r["at"])
        ns = int(at.timestamp()) * 1_000_000_000 + at.microsecond * 1000
        out.append(f"verdict{tag_text} {fields} {ns}")
    return out


def export_pending(db: sqlite3.Connection, writer: Any, limit: int = 5000) -> int:
    """Write verdicts not yet exported through ``writer`` (a storage ``PointWriter``) and mark
    them; a failed write leaves them pending and raises the writer's error."""
    rows = [dict(r) for r in db.execute(
        "SELECT * FROM web_verdicts WHERE exported=0 ORDER BY id LIMIT ?", (limit,))]
    if not rows:
        return 0
    writer.write(verdict_lines(rows))
    db.executemany("UPDATE web_verdicts SET exported=1 WHERE id=?", [(r["id"],) for r in rows])
    return len(rows)


def verdicts_for_detection(db_path: str | Path, since: datetime
                           ) -> list[tuple[str, str, str, str, datetime]]:
    """Every verdict given since ``since``, oldest first, as ``(meter_id, event_type, kind,
    verdict, at)``: ``kind`` is the detector's sub-kind from the alert's evidence (for example
    ``sustained_rise``), empty when the detector gave none. Pure read of the database file."""
    db = sqlite3.connect(f"file:{Path(db_path)}?mode=ro", uri=True)
    try:
        has = db.execute("SELECT 1 FROM sqlite_master WHERE name='web_verdicts'").fetchone()
        if not has:
            return []
        rows = db.execute("SELECT meter_id, type, kind, verdict, at FROM web_verdicts WHERE "
                          "at >= ? ORDER BY at, id", (ts(since),)).fetchall()
    finally:
        db.close()
    return [(m, t, k, v, parse_ts(a)) for m, t, k, v, a in rows]


def false_alarm_weights(verdicts: Iterable[tuple[str, str, str, str, datetime]], now: datetime,
                        half_life: timedelta = timedelta(days=14)
                        ) -> dict[tuple[str, str, str], float]:
    """How strongly managers have said a meter's alarm of one kind is false, fading with time:
    per ``(meter_id, event_type, kind)``, the sum of ``0.5 ** (age / half_life)`` over its
    ``false_alarm`` verdicts (the output of :func:`verdicts_for_detection`). A ``confirmed``
    verdict starts the sum again (the alarm was real after all); verdicts after ``now`` are
    ignored. Pure: a detector may turn the weight into a wider band or a higher threshold."""
    out: dict[tuple[str, str, str], float] = {}
    for meter_id, event_type, kind, verdict, at in sorted(verdicts, key=lambda v: v[4]):
        if at > now:
            continue
        key = (meter_id, event_type, kind)
        if verdict == "confirmed":
            out[key] = 0.0
        elif verdict == "false_alarm":
            out[key] = out.get(key, 0.0) + 0.5 ** ((now - at) / half_life)
    return {k: w for k, w in out.items() if w > 0}


@dataclass
class VerdictScore:
    """Precision of detection as judged by managers: confirmed / (confirmed + false alarm);
    ``site_visit`` verdicts are still open and count in neither."""

    confirmed: int = 0
    false_alarm: int = 0
    site_visit: int = 0

    @property
    def precision(self) -> float | None:
        judged = self.confirmed + self.false_alarm
        return self.confirmed / judged if judged else None


def score_verdicts(db: sqlite3.Connection, since: datetime | None = None
                   ) -> dict[str, dict[str, VerdictScore]]:
    """Precision by event type and by grid cell (keys ``type`` and ``cell``; ``all`` holds the
    total under ``"*"``), from each alert episode's latest verdict."""
    q = ("SELECT v.type, v.grid_cell, v.verdict FROM web_verdicts v WHERE v.id IN (SELECT "
         "MAX(id) FROM web_verdicts GROUP BY fingerprint, episode)")
    args: list[Any] = []
    if since is not None:
        q += " AND v.at >= ?"
        args.append(ts(since))
    out: dict[str, dict[str, VerdictScore]] = {
        "type": defaultdict(VerdictScore), "cell": defaultdict(VerdictScore),
        "all": defaultdict(VerdictScore)}
    for type_, cell, verdict in db.execute(q, args):
        for group, key in (("type", type_), ("cell", cell or "-"), ("all", "*")):
            score = out[group][key]
            setattr(score, verdict, getattr(score, verdict) + 1)
    return {k: dict(v) for k, v in out.items()}


class VerdictFeed:
    """The managers' verdicts on their way into detection (the closed loop): polls
    :func:`verdicts_for_detection` at most every ``every_s`` seconds of ``clock`` (the engine's
    wall clock: this is the IO edge) and hands each meter its new verdicts once, when the
    dataflow next steps it (``feed(meter_id)``). Starts ``lookback`` back, so a restarted engine
    learns again what its fresh meters missed; the detectors ignore a verdict they already took.
    """

    def __init__(self, db_path: str | Path, *, clock: Any, every_s: float = 30.0,
                 lookback: timedelta = timedelta(days=180)) -> None:
        self.db_path = Path(db_path)
        self.clock = clock
        self.every_s = every_s
        self.since: datetime = clock() - lookback
        self.next_poll: datetime | None = None
        self.pending: dict[str, list[tuple[str, str, str, str, datetime]]] = {}
        self._at_since: set[tuple[str, str, str, str, datetime]] = set()
        self.taken = 0

    def poll(self) -> None:
        now = self.clock()
        if self.next_poll is not None and now < self.next_poll:
            return
        self.next_poll = now + timedelta(seconds=self.every_s)
        if not self.db_path.exists():
            return
        try:
            rows = verdicts_for_detection(self.db_path, self.since)
        except sqlite3.Error:
            return  # the workspace is writing or not there yet: next time
        for row in rows:
            if row in self._at_since:
                continue  # read by the last poll (verdicts at exactly ``since``)
            self.pending.setdefault(row[0], []).append(row)
            self.taken += 1
        if rows:
            self.since = max(r[4] for r in rows)
            self._at_since = {r for r in rows if r[4] == self.since}

    def __call__(self, meter_id: str) -> list[tuple[str, str, str, str, datetime]]:
        self.poll()
        return self.pending.pop(meter_id, []) if self.pending else []

    def any_pending(self) -> bool:
        """Whether any meter has verdicts waiting (after a poll when one is due): the
        dataflow's cell asks once per batch, and calls the feed per reading only then."""
        self.poll()
        return bool(self.pending)
