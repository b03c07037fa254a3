"""The router's decisions as small pure stages: inhibit → silence → dedup (episodes and
replays) → group → route → notify (the message's kind, its key, the retry backoff). Each takes
values (and the clock, ``now``) and returns values; the router does the IO.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Any, Literal, TypeVar
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, field_validator

from gridwatch._schemas import Event, Severity

OPEN_STATES = ("firing", "acknowledged")
DedupAction = Literal["new", "update", "refresh", "resolve", "resolve_unknown", "replay"]


@dataclass(frozen=True)
class AlertView:
    """What the stages need to know about a stored alert."""

    fingerprint: str
    episode: int
    state: str  # firing | acknowledged | resolved
    severity: Severity
    type: str
    meter_id: str
    grid_cell: str | None
    meters: tuple[str, ...] = ()


@dataclass(frozen=True)
class EpisodeView:
    """An episode the router has seen: its number, its onset (event time) and whether it is
    over. An episode is named by (fingerprint, onset), which a detector replaying an epoch
    after a crash reproduces."""

    episode: int
    onset: datetime
    resolved: bool


# ----------------------------------------------------------------------------------- dedup
def dedup(existing: AlertView | None, event: Event, seen: EpisodeView | None = None
          ) -> DedupAction:
    """One open alert per fingerprint: a firing event opens one, refreshes it, or (when the
    severity rises) updates it; a resolved event closes the open one.

    ``seen`` is the episode of the same fingerprint and the same onset, when the router knows
    one. An event of an episode that is already over is a replay (the engine redoing an epoch
    after a crash, or a detector's late word on an alert resolved by hand): it changes nothing,
    so a manager is never told twice of one episode or one transition."""
    if seen is not None and seen.resolved:
        return "replay"
    is_open = existing is not None and existing.state in OPEN_STATES
    if event.state == "resolved":
        return "resolve" if is_open else "resolve_unknown"
    if not is_open:
        return "new"
    assert existing is not None
    return "update" if event.severity.rank > existing.severity.rank else "refresh"


def episode_identity(fingerprint: str, onset: str) -> str:
    """The stable name of an episode (fingerprint and stored onset), as ``Event.episode_id``."""
    return f"{fingerprint}@{onset}"


# ----------------------------------------------------------------------------------- inhibit
class InhibitRule(BaseModel):
    """An open ``source`` alert mutes new ``target`` alerts that agree on the ``equal`` labels
    (and, when the source names meters, only those meters): a feeder outage mutes the outage and
    comm-loss alerts of the meters behind it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    source_types: tuple[str, ...] = Field(alias="source")
    target_types: tuple[str, ...] = Field(alias="target")
    equal: tuple[str, ...] = ("grid_cell",)

    @field_validator("source_types", "target_types", mode="before")
    @classmethod
    def _listify(cls, v: Any) -> Any:
        return (v,) if isinstance(v, str) else v


DEFAULT_INHIBIT = (
    InhibitRule.model_validate({"source": ["feeder_outage"],
                                "target": ["outage", "comm_loss", "register_frozen",
                                           "stuck_reading"]}),
)


def inhibit_sources(rules: Sequence[InhibitRule]) -> dict[str, tuple[str, ...]]:
    """For each type some rule mutes, the types of the alerts that may mute it."""
    out: dict[str, list[str]] = {}
    for rule in rules:
        for target in rule.target_types:
            sources = out.setdefault(target, [])
            sources.extend(t for t in rule.source_types if t not in sources)
    return {k: tuple(v) for k, v in out.items()}


def inhibited_by(event: Event, grid_cell: str | None, open_alerts: Iterable[AlertView],
                 rules: Sequence[InhibitRule]) -> str | None:
    """The fingerprint of the open alert that inhibits ``event``, or None."""
    for rule in rules:
        if event.type not in rule.target_types:
            continue
        for src in open_alerts:
            if src.state not in OPEN_STATES or src.type not in rule.source_types:
                continue
            if src.meter_id == event.meter_id and src.type == event.type:
                continue
            if "grid_cell" in rule.equal and src.grid_cell != grid_cell:
                continue
            if "meter_id" in rule.equal and src.meter_id != event.meter_id:
                continue
            if src.meters and event.meter_id not in src.meters:
                continue
            return src.fingerprint
    return None


# ----------------------------------------------------------------------------------- silence
@dataclass(frozen=True)
class Silence:
    id: str
    matchers: Mapping[str, str]
    starts_at: datetime
    ends_at: datetime
    by: str = ""
    comment: str = ""

    def active(self, now: datetime) -> bool:
        return self.starts_at <= now < self.ends_at


def silenced_by(labels: Mapping[str, Any], silences: Iterable[Silence], now: datetime
                ) -> list[str]:
    """Ids of the active silences whose matchers all equal the alert's labels."""
    return [s.id for s in silences
            if s.active(now) and all(str(labels.get(k)) == v for k, v in s.matchers.items())]


# ----------------------------------------------------------------------------------- group
def group_due(oldest_pending: datetime, last_flush: datetime | None, group_wait: timedelta,
              group_interval: timedelta) -> datetime:
    """When a recipient's pending notifications go out: ``group_wait`` after the first one of a
    new group, and no sooner than ``group_interval`` after the group's previous notification."""
    due = oldest_pending + group_wait
    if last_flush is not None and oldest_pending < last_flush + group_interval:
        due = max(oldest_pending, last_flush + group_interval)
    return due


def needs_repeat(last_sent: datetime, repeat_interval: timedelta, now: datetime) -> bool:
    return repeat_interval > timedelta(0) and now >= last_sent + repeat_interval


def needs_escalation(state: str, starts_at: datetime, escalated: bool, has_backup: bool,
                     after: timedelta, now: datetime) -> bool:
    """Escalate once: still firing (not acknowledged) ``after`` the alert started."""
    return state == "firing" and not escalated and has_backup and now >= starts_at + after


def recipient_order(recipient: str) -> tuple[int, str]:
    """Sort key of recipients at a flush: managers, then named receivers, then customers."""
    kind = recipient.partition(":")[0]
    return {"manager": 0, "receiver": 1}.get(kind, 2), recipient


# ----------------------------------------------------------------------------------- customers
def _parse_hhmm(value: str) -> time:
    h, m = value.split(":")
    return time(int(h), int(m))


def quiet_until(now: datetime, start: str, end: str, zone: str) -> datetime | None:
    """When the quiet hours around ``now`` end (aware UTC), or None when ``now`` is not quiet.
    ``start`` and ``end`` are local ``HH:MM``; a window may cross midnight."""
    tz = ZoneInfo(zone)
    local = now.astimezone(tz)
    t0, t1 = _parse_hhmm(start), _parse_hhmm(end)
    t = local.time()
    if t0 == t1:
        return None
    crosses = t0 > t1
    inside = (t >= t0 or t < t1) if crosses else (t0 <= t < t1)
    if not inside:
        return None
    end_day = local.date()
    if crosses and t >= t0:
        end_day = end_day + timedelta(days=1)
    end_local = datetime.combine(end_day, t1, tzinfo=tz)
    return end_local.astimezone(now.tzinfo)


def rate_allows(sent_times: Iterable[datetime], limit: int, window: timedelta, now: datetime
                ) -> datetime | None:
    """None when another notice may go out now, else when the next one may."""
    recent = sorted(t for t in sent_times if t > now - window)
    if len(recent) < limit:
        return None
    return recent[len(recent) - limit] + window


# ----------------------------------------------------------------------------------- notify
#: How telling a pending transition is: a message reports each alert once, by its most
#: telling transition.
KIND_RANK = {"resolved": 5, "escalation": 4, "update": 3, "firing": 2, "repeat": 1}
K = TypeVar("K")


def most_telling(items: Iterable[tuple[K, str]]) -> dict[K, str]:
    """One transition per alert: of the (alert, kind) items pending, the most telling kind of
    each alert, in the order the alerts first appear."""
    out: dict[K, str] = {}
    for key, kind in items:
        if key not in out or KIND_RANK[kind] > KIND_RANK[out[key]]:
            out[key] = kind
    return out


@dataclass(frozen=True)
class NotifyDecision:
    """What one message to one recipient is: its audience (``manager``, ``customer`` or
    ``storm``), its kind (``alert``, ``notice``, ``storm``, ``escalation``, ``resolved``),
    its status (``firing`` unless every alert in it is resolved) and how many still fire."""

    audience: str
    kind: str
    status: str
    firing: int


def notify_decision(audience: str, states: Sequence[str], kinds: Iterable[str],
                    storm_threshold: int) -> NotifyDecision:
    """Decide the message for a recipient of ``audience`` from the states of its alerts and
    their transitions: a manager with ``storm_threshold`` or more firing alerts gets one storm
    summary; all escalations make an escalation; all resolved a resolved message."""
    all_resolved = all(s == "resolved" for s in states)
    firing = sum(1 for s in states if s != "resolved")
    kind = "notice" if audience == "customer" else "alert"
    if audience == "manager" and firing >= storm_threshold:
        audience, kind = "storm", "storm"
    elif all(k == "escalation" for k in kinds):
        kind = "escalation"
    elif all_resolved:
        kind = "resolved"
    return NotifyDecision(audience, kind, "resolved" if all_resolved else "firing", firing)


def backoff(attempts: int, base_s: float, max_s: float) -> timedelta:
    """Exponential backoff after ``attempts`` failed attempts: base, 2·base, 4·base, ... ≤ max."""
    return timedelta(seconds=min(max_s, base_s * (2 ** max(0, attempts - 1))))


def idempotency_key(recipient: str, channel: str,
                    items: Iterable[tuple[str, str, int]]) -> str:
    """A key naming one notification of one set of transitions to one recipient on one channel.
    Items are (episode identity, transition kind, sequence); the identity is the fingerprint
    and the onset (:func:`episode_identity`), so the same transitions of the same episodes give
    the same key however often the engine recovers, and a receiver can drop a repeat."""
    body = "|".join(f"{ident}#{kind}#{seq}" for ident, kind, seq in sorted(items))
    return hashlib.sha256(f"{recipient}|{channel}|{body}".encode()).hexdigest()[:32]
