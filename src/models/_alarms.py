"""The alarm lifecycle every detector shares: fire once per episode, resolve when the condition
that raised it has cleared (with hysteresis), never hide a different anomaly.

An open alarm lives in ``MeterRecord.act`` (event type -> onset). A detector calls :func:`cond`
with whether its condition holds on this reading, or :func:`fire` / :func:`resolve` directly
when it judges episodes itself. Event times are the meter's: the onset is when the condition
began, ``raised_at`` the reading or timer that raised it.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from gridwatch._schemas import Event, MeterMeta, Severity
from gridwatch.models._record import MeterRecord, drop, put

__all__ = ["cond", "dt", "event", "feedback", "fire", "iso", "r3", "resolve", "verdict"]


def iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat().replace("+00:00", "Z")


def dt(t: float) -> datetime:
    return datetime.fromtimestamp(t, UTC)


def r3(x: float, nd: int = 3) -> float:
    return round(float(x), nd)


def event(rec: MeterRecord, etype: str, sev: Severity, score: float, onset: float, t: float,
          meta: MeterMeta | None, summary: str, ev: dict[str, Any],
          state: str = "firing") -> Event:
    return Event(
        meter_id=rec.meter_id, type=etype, severity=sev, score=r3(score),
        onset=dt(onset), raised_at=dt(t), state=state, summary=summary,
        evidence={k: v for k, v in ev.items() if v is not None},
        customer_id=meta.customer_id if meta else None,
        grid_cell=meta.grid_cell if meta else None,
    )


def fire(rec: MeterRecord, etype: str, sev: Severity, score: float, onset: float, t: float,
         meta: MeterMeta | None, summary: str, ev: dict[str, Any]) -> Event:
    put(rec, "act", etype, onset)
    return event(rec, etype, sev, score, onset, t, meta, summary, ev)


def resolve(rec: MeterRecord, etype: str, t: float, meta: MeterMeta | None, summary: str,
            ev: dict[str, Any] | None = None) -> Event:
    onset = rec.act[etype]
    drop(rec, "act", etype)
    drop(rec, "clr", etype)
    evidence = dict(ev or {})
    evidence["lasted_min"] = r3((t - onset) / 60, 1)
    return event(rec, etype, Severity.INFO, 0.0, onset, t, meta, summary, evidence, "resolved")


def cond(rec: MeterRecord, out: list[Event], etype: str, bad: bool, t: float,
         meta: MeterMeta | None, *, fire_after: int = 1, clear_after: int = 1,
         sev: Severity = Severity.WARNING, score: float = 1.0, summary: str = "",
         ev: Callable[[], dict[str, Any]] | dict[str, Any] | None = None) -> None:
    """Fire ``etype`` after ``fire_after`` bad readings in a row, resolve after ``clear_after``
    good ones. ``ev`` builds the evidence (called only when the alarm fires)."""
    if not bad and etype not in rec.cnt and etype not in rec.act:
        return  # the common case: nothing wrong, nothing pending
    if bad:
        drop(rec, "clr", etype)
        n = rec.cnt.get(etype, 0) + 1
        put(rec, "cnt", etype, n)
        if n == 1:
            put(rec, "since", etype, t)
        if etype not in rec.act and n >= fire_after:
            evidence = ev() if callable(ev) else dict(ev or {})
            evidence.setdefault("readings", n)
            out.append(fire(rec, etype, sev, score, rec.since[etype], t, meta, summary, evidence))
        return
    drop(rec, "cnt", etype)
    drop(rec, "since", etype)
    if etype in rec.act:
        c = rec.clr.get(etype, 0) + 1
        if c >= clear_after:
            out.append(resolve(rec, etype, t, meta, f"{etype.replace('_', ' ')} cleared"))
        else:
            put(rec, "clr", etype, c)


def feedback(rec: MeterRecord, etype: str, kind: str, t: float, half_life_s: float) -> float:
    """The managers' false-alarm weight for ``etype``/``kind`` at event time ``t`` (0: none)."""
    if not rec.fb:
        return 0.0
    w, at, _ = rec.fb.get(f"{etype}:{kind}", (0.0, 0.0, 0.0))
    return w * 0.5 ** (max(t - at, 0.0) / half_life_s) if w else 0.0


def verdict(rec: MeterRecord, etype: str, kind: str, outcome: str, t: float,
            half_life_s: float, given: float | None = None) -> bool:
    """Take a manager's verdict on one of this meter's alarms at event time ``t``:
    ``false_alarm`` adds one to the fading weight of that kind of alarm, ``confirmed`` clears it.
    ``given`` (when the verdict was given) makes it idempotent: a verdict no later than the last
    one taken for that kind is ignored (a replay after recovery). Returns whether it was taken."""
    key = f"{etype}:{kind}"
    last = rec.fb.get(key, (0.0, 0.0, 0.0))[2]
    if given is not None and given <= last:
        return False
    stamp = given if given is not None else last
    if outcome == "confirmed":
        put(rec, "fb", key, (0.0, t, stamp))
    elif outcome == "false_alarm":
        put(rec, "fb", key, (feedback(rec, etype, kind, t, half_life_s) + 1.0, t, stamp))
    else:
        return False
    return True
