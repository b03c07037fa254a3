"""The alert router: events in, notifications out, everything durable in between.

``submit`` runs an event through inhibit → silence → dedup → route and stores the alert and its
pending notifications; ``tick`` escalates, repeats and flushes groups (group wait and interval,
quiet hours, customer rate limit, storm summaries) into the outbox; ``deliver_pending`` sends
the outbox through the notifiers with retries and exponential backoff. Each call is one SQLite
transaction: when it returns, its effect survives a crash. The decisions themselves are the pure
functions in ``_stages``; this module does the bookkeeping.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sqlite3
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TextIO

from gridwatch._schemas import AlertTransition, Event, LoadProfile, Severity
from gridwatch.alerts import _messages as msg
from gridwatch.alerts import _stages as st
from gridwatch.alerts._channels import Delivery, Notification, Notifier
from gridwatch.alerts._config import AlertSettings
from gridwatch.alerts._registry import Customer, Registry, RegistryError
from gridwatch.alerts._routes import RouteTree
from gridwatch.alerts._store import AlertStore, connect, dumps, parse_ts, ts
from gridwatch.alerts._templates import Templates

log = logging.getLogger("gridwatch.alerts")

Clock = Callable[[], datetime]
#: How long a delivery attempt holds its outbox entry before another process may retry it.
SEND_LEASE = timedelta(seconds=120)
#: Audit actions that are changes of an alert's state.
TRANSITION_ACTIONS = ("firing", "acknowledged", "escalated", "resolved", "silenced",
                      "unsilenced", "inhibited", "uninhibited", "severity_raised")
AUDIT_INSERT = ("INSERT INTO audit(at, fingerprint, episode, action, by, recipient, detail) "
                "VALUES (?,?,?,?,?,?,?)")
COUNTER_ADD = ("INSERT INTO counters(name, value) VALUES (?, ?) ON CONFLICT(name) "
               "DO UPDATE SET value = value + excluded.value")
SILENCE_KEYS = ("fingerprint", "meter_id", "type", "severity", "customer_id", "grid_cell",
                "customer_class")


class UnknownAlert(KeyError):
    """No open alert has this fingerprint."""

    def __str__(self) -> str:
        return f"no open alert with fingerprint {self.args[0]!r}"


def utcnow() -> datetime:
    return datetime.now(UTC)


class Router:
    """Ownership-aware alert routing with a durable lifecycle, outbox and audit trail."""

    def __init__(
        self,
        registry: Registry,
        routes: RouteTree,
        *,
        db: sqlite3.Connection | str | Path = ":memory:",
        templates: Templates,
        notifiers: Mapping[str, Notifier] | None = None,
        settings: AlertSettings | None = None,
        clock: Clock | None = None,
        jsonl_out: Path | None = None,
        inhibit_rules: Sequence[st.InhibitRule] = st.DEFAULT_INHIBIT,
        registry_path: Path | None = None,
    ) -> None:
        self.registry = registry
        self.routes = routes
        self.templates = templates
        self.notifiers: dict[str, Notifier] = dict(notifiers or {})
        self.settings = settings or AlertSettings()
        self.clock: Clock = clock or utcnow
        self.inhibit_rules = tuple(inhibit_rules)
        self.db = db if isinstance(db, sqlite3.Connection) else connect(db)
        self._lock = threading.RLock()
        self.store = AlertStore(self.db, self._lock)
        self._deliver_lock = threading.Lock()
        self._jsonl_path = jsonl_out
        self._jsonl: TextIO | None = None
        self.registry_path = registry_path
        self._registry_mtime = self._mtime(registry_path)
        #: ``tag_notes(customer_id, day)``: the customer's tags with their reasons for its
        #: messages (``gridwatch.tags._notes.TagNotes.for_message``); None: ids only.
        self.tag_notes: Callable[[str, Any], list[dict[str, Any]]] | None = None
        self._inhibit_index: tuple[tuple[st.InhibitRule, ...], dict[str, tuple[str, ...]]] = (
            self.inhibit_rules, st.inhibit_sources(self.inhibit_rules))
        # While a batch is submitted: audit rows and counter increments collected for one
        # ``executemany`` each at the end of its transaction, and the silences read once.
        self._audit_buf: list[tuple[Any, ...]] | None = None
        self._count_buf: Counter[str] | None = None
        self._silence_cache: list[st.Silence] | None = None

    # ------------------------------------------------------------------------------ plumbing
    @contextlib.contextmanager
    def _tx(self, *, synced: bool = True) -> Iterator[sqlite3.Connection]:
        """One transaction under the router's lock. ``synced=False`` commits without waiting
        for the disk (WAL with ``synchronous=NORMAL``: it survives the process being killed,
        not a power cut), for writes whose loss only repeats work a restart repeats anyway."""
        with self._lock:
            if not synced:
                self.db.execute("PRAGMA synchronous=NORMAL")
            try:
                self.db.execute("BEGIN IMMEDIATE")
                try:
                    yield self.db
                except BaseException:
                    self.db.execute("ROLLBACK")
                    raise
                self.db.execute("COMMIT")
            finally:
                if not synced:
                    self.db.execute("PRAGMA synchronous=FULL")

    def _audit(self, at: datetime, action: str, *, fingerprint: str | None = None,
               episode: int | None = None, by: str = "gridwatch", recipient: str | None = None,
               detail: str = "") -> None:
        values = (ts(at), fingerprint, episode, action, by, recipient, detail)
        if self._audit_buf is not None:
            self._audit_buf.append(values)
        else:
            self.db.execute(AUDIT_INSERT, values)

    def _audit_many(self, rows: list[tuple[Any, ...]]) -> None:
        """Audit rows (``at, fingerprint, episode, action, by, recipient, detail``), in order."""
        if self._audit_buf is not None:
            self._audit_buf.extend(rows)
        else:
            self.db.executemany(AUDIT_INSERT, rows)

    def _count(self, name: str, n: int = 1) -> None:
        if self._count_buf is not None:
            self._count_buf[name] += n
        else:
            self.db.execute(COUNTER_ADD, (name, n))

    @contextlib.contextmanager
    def _batch(self) -> Iterator[None]:
        """Collect the audit rows and counter increments of a batch and write them in one
        ``executemany`` each before the caller's transaction commits (in the order they were
        made, so audit ids keep the order of the decisions); the silences are read once."""
        self._audit_buf, self._count_buf = [], Counter()
        self._silence_cache = self._silences()
        try:
            yield
            self.db.executemany(AUDIT_INSERT, self._audit_buf)
            self.db.executemany(COUNTER_ADD, sorted(self._count_buf.items()))
        finally:
            self._audit_buf = self._count_buf = self._silence_cache = None

    def close(self) -> None:
        for notifier in self.notifiers.values():
            closer = getattr(notifier, "close", None)
            if callable(closer):
                closer()
        if self._jsonl is not None:
            self._jsonl.close()
            self._jsonl = None
        with self._lock:
            self.db.close()

    # ------------------------------------------------------------------------------ registry
    @staticmethod
    def _mtime(path: Path | None) -> float | None:
        try:
            return path.stat().st_mtime if path else None
        except OSError:
            return None

    def maybe_reload(self, now: datetime | None = None) -> bool:
        """Reload the registry when its file changed; alert state is untouched. A broken new
        file keeps the old registry and is recorded in the audit trail."""
        mtime = self._mtime(self.registry_path)
        if self.registry_path is None or mtime is None or mtime == self._registry_mtime:
            return False
        self._registry_mtime = mtime
        now = now or self.clock()
        try:
            registry = Registry.load(self.registry_path)
        except RegistryError as exc:
            log.error("registry reload failed, keeping the previous one: %s", exc)
            with self._tx():
                self._audit(now, "registry_reload_failed", detail=str(exc))
                self._count("registry_reload_failed")
            return False
        self.registry = registry
        with self._tx():
            self._audit(now, "registry_reloaded", detail=f"{len(registry.customers)} customers")
        return True

    def update_profile(self, profile: LoadProfile, now: datetime | None = None) -> None:
        """Remember a meter's latest load-profile segment and tags, for routes matching on
        ``tags`` and ``segment`` and for the manager's message."""
        now = now or self.clock()
        with self._tx() as db:
            db.execute(
                "INSERT INTO profiles(meter_id, customer_id, segment, tags, updated_at) "
                "VALUES (?,?,?,?,?) ON CONFLICT(meter_id) DO UPDATE SET customer_id=excluded."
                "customer_id, segment=excluded.segment, tags=excluded.tags, "
                "updated_at=excluded.updated_at",
                (profile.meter_id, profile.customer_id, profile.segment,
                 dumps(sorted(profile.tags)), ts(now)))

    def _profile(self, meter_id: str, customer_id: str | None
                 ) -> tuple[str | None, tuple[str, ...]]:
        rows = self.db.execute(
            "SELECT segment, tags FROM profiles WHERE meter_id = ? OR (customer_id IS NOT NULL "
            "AND customer_id = ?) ORDER BY meter_id = ? DESC", (meter_id, customer_id, meter_id)
        ).fetchall()
        tags: set[str] = set()
        for row in rows:
            tags.update(json.loads(row["tags"]))
        return (rows[0]["segment"] if rows else None), tuple(sorted(tags))

    def labels(self, row: Mapping[str, Any]) -> dict[str, Any]:
        """The labels routes and silences match on."""
        cust = self.registry.customer(row["customer_id"]) if row["customer_id"] else None
        return self._labels(row, cust)

    def _labels(self, row: Mapping[str, Any], cust: Customer | None) -> dict[str, Any]:
        segment, tags = self._profile(row["meter_id"], row["customer_id"])
        return {
            "fingerprint": row["fingerprint"], "meter_id": row["meter_id"], "type": row["type"],
            "severity": row["severity"], "customer_id": row["customer_id"],
            "grid_cell": row["grid_cell"],
            "customer_class": cust.customer_class.value if cust else None,
            "tags": tags, "segment": segment,
        }

    # ------------------------------------------------------------------------------ submit
    def submit(self, event: Event, now: datetime | None = None) -> None:
        """Take one detector event. Durable when it returns: the alert, its audit entries and
        its pending notifications are committed."""
        self.submit_many((event,), now)

    def submit_many(self, events: Iterable[Event], now: datetime | None = None) -> int:
        """Take a batch of events in one transaction (one disk sync for the lot, which is what
        a replay wants); returns how many opened a new alert."""
        now = now or self.clock()
        lines: list[dict[str, Any]] = []
        with self._tx(), self._batch():
            for event in events:
                line = self._submit_locked(event, now)
                if line is not None:
                    lines.append(line)
        for line in lines:
            self._write_jsonl(line)
        return len(lines)

    def _submit_locked(self, event: Event, now: datetime) -> dict[str, Any] | None:
        db = self.db
        self._count("events_submitted")
        fp = event.fingerprint
        row = db.execute("SELECT * FROM alerts WHERE fingerprint = ?", (fp,)).fetchone()
        view = self._view(row) if row else None
        action = st.dedup(view, event, self._seen_episode(fp, event.onset, row))
        if action == "replay":
            # An event of an episode that is already over: the engine redoing an epoch after a
            # crash. Nothing changes and nobody is told again.
            self._count("events_replayed")
            self._audit(now, "replay_ignored", fingerprint=fp, by="detector",
                        detail=f"{event.state} of {event.episode_id}, an episode already over")
            return None
        if action == "resolve_unknown":
            self._count("resolved_without_open_alert")
            self._audit(now, "resolve_unknown", fingerprint=fp, by="detector",
                        detail="resolved event without an open alert")
            return None
        if action == "resolve":
            self._resolve_locked(row, by="detector", now=now, ends_at=event.raised_at)
            return None
        if action in ("refresh", "update"):
            assert row is not None
            severity = event.severity if action == "update" else Severity(row["severity"])
            db.execute(
                "UPDATE alerts SET score=?, raised_at=?, evidence=?, summary=?, severity=?, "
                "updated_at=? WHERE fingerprint=?",
                (event.score, ts(event.raised_at), dumps(event.evidence),
                 event.summary or row["summary"], severity.value, ts(now), fp))
            self._count("events_deduplicated")
            if action == "update":
                self._audit(now, "severity_raised", fingerprint=fp, episode=row["episode"],
                            by="detector", detail=f"{row['severity']} -> {severity.value}")
                for r in self._recipients_of(fp, row["episode"]):
                    self._pend(r, fp, row["episode"], "update", severity, now,
                               seq=severity.rank)
            return None
        return self._open_locked(event, row, now)

    def _inhibit_sources(self) -> dict[str, tuple[str, ...]]:
        """For each target type of the inhibit rules, the source types that may mute it (an
        event of another type never looks at the open alerts); follows ``inhibit_rules``."""
        rules, sources = self._inhibit_index
        if rules is not self.inhibit_rules:
            rules = self.inhibit_rules = tuple(self.inhibit_rules)
            sources = st.inhibit_sources(rules)
            self._inhibit_index = (rules, sources)
        return sources

    def _seen_episode(self, fp: str, onset: datetime, row: Mapping[str, Any] | None
                      ) -> st.EpisodeView | None:
        """The episode of ``fp`` whose onset is ``onset``, if the router has seen one."""
        found = self.store.episode_by_onset(fp, onset)
        if found is not None:
            return st.EpisodeView(found["episode"], onset, found["resolved_at"] is not None)
        if row is not None and row["onset"] == ts(onset):
            # A database from before episodes were recorded: the alert row is the episode.
            return st.EpisodeView(row["episode"], onset, row["state"] == "resolved")
        return None

    def _episode_identity(self, fp: str, episode: int) -> str:
        """``fingerprint@onset`` of an episode: what idempotency keys are made of."""
        found = self.store.episode(fp, episode)
        if found is None:
            found = self.db.execute("SELECT onset FROM alerts WHERE fingerprint=?",
                                    (fp,)).fetchone()
        return st.episode_identity(fp, found["onset"] if found else f"#{episode}")

    def _view(self, row: Mapping[str, Any]) -> st.AlertView:
        return st.AlertView(
            fingerprint=row["fingerprint"], episode=row["episode"], state=row["state"],
            severity=Severity(row["severity"]), type=row["type"], meter_id=row["meter_id"],
            grid_cell=row["grid_cell"], meters=tuple(json.loads(row["meters"])))

    def _open_locked(self, event: Event, prev: Mapping[str, Any] | None, now: datetime
                     ) -> dict[str, Any]:
        db = self.db
        fp = event.fingerprint
        cust = self.registry.customer_for_meter(event.meter_id)
        customer_id = event.customer_id or (cust.id if cust else None)
        grid_cell = event.grid_cell or (cust.grid_cell if cust else None)
        episode = (prev["episode"] + 1) if prev else 1
        db.execute(
            "INSERT OR REPLACE INTO alerts(fingerprint, episode, meter_id, type, severity, score, "
            "state, onset, raised_at, starts_at, customer_id, grid_cell, summary, evidence, "
            "meters, updated_at) VALUES (?,?,?,?,?,?,'firing',?,?,?,?,?,?,?,?,?)",
            (fp, episode, event.meter_id, event.type, event.severity.value, event.score,
             ts(event.onset), ts(event.raised_at), ts(now), customer_id, grid_cell,
             event.summary, dumps(event.evidence), dumps(list(event.meters)), ts(now)))
        self.store.open_episode(fp, episode, event.onset, event.raised_at, now)
        self._count("alerts_opened")
        self._audit(now, "firing", fingerprint=fp, episode=episode, by="detector",
                    detail=f"{event.severity.value} score={event.score:.3g}")
        row = db.execute("SELECT * FROM alerts WHERE fingerprint = ?", (fp,)).fetchone()
        source = None
        source_types = self._inhibit_sources().get(event.type)
        if source_types:
            # Only the open alerts of this cell that may mute this type (index alerts_cell_type).
            open_rows = db.execute(
                "SELECT * FROM alerts WHERE grid_cell IS ? AND type IN (" +
                ",".join("?" * len(source_types)) + ") AND state IN ('firing','acknowledged') "
                "AND fingerprint != ?", (grid_cell, *source_types, fp)).fetchall()
            source = st.inhibited_by(event, grid_cell, [self._view(r) for r in open_rows],
                                     self.inhibit_rules)
        if source is not None:
            db.execute("UPDATE alerts SET inhibited_by=? WHERE fingerprint=?", (source, fp))
            self._count("alerts_inhibited")
            self._audit(now, "inhibited", fingerprint=fp, episode=episode, detail=f"by {source}")
        else:
            self._route_locked(row, now)
        return {
            "fingerprint": fp, "episode": episode, "meter_id": event.meter_id,
            "type": event.type, "severity": event.severity.value, "score": event.score,
            "onset": event.onset.isoformat().replace("+00:00", "Z"),
            "raised_at": event.raised_at.isoformat().replace("+00:00", "Z"),
            "customer_id": customer_id, "grid_cell": grid_cell, "summary": event.summary,
            "evidence": event.evidence, "inhibited_by": source,
        }

    def _write_jsonl(self, line: dict[str, Any]) -> None:
        if self._jsonl_path is None:
            return
        if self._jsonl is None:
            self._jsonl_path.parent.mkdir(parents=True, exist_ok=True)
            self._jsonl = open(self._jsonl_path, "a", encoding="utf-8")  # noqa: SIM115
        self._jsonl.write(json.dumps(line, ensure_ascii=False, sort_keys=True) + "\n")
        self._jsonl.flush()

    def _route_locked(self, row: Mapping[str, Any], now: datetime) -> None:
        """Silence check, then the routing tree → recipients → pending group items."""
        fp, episode = row["fingerprint"], row["episode"]
        cust = self.registry.customer(row["customer_id"]) if row["customer_id"] else None
        labels = self._labels(row, cust)
        silences = self._silence_cache if self._silence_cache is not None else self._silences()
        silenced = st.silenced_by(labels, silences, now)
        if silenced:
            self.db.execute("UPDATE alerts SET silenced_by=? WHERE fingerprint=?",
                            (",".join(silenced), fp))
            self._count("alerts_silenced")
            self._audit(now, "silenced", fingerprint=fp, episode=episode,
                        detail=",".join(silenced))
            return
        recipients: list[str] = []
        backup: str | None = None
        cell = self.registry.cell(row["grid_cell"]) if row["grid_cell"] else None
        for receiver in self.routes.receivers_for(labels):
            if receiver in ("cell_manager", "backup_manager"):
                mid = None
                if cell is not None:
                    mid = cell.primary if receiver == "cell_manager" else cell.backup
                if mid is None:
                    self._count("unrouted")
                    self._audit(now, "unrouted", fingerprint=fp, episode=episode,
                                detail=f"{receiver}: no manager for cell {row['grid_cell']!r}")
                    continue
                recipients.append(f"manager:{mid}")
                if receiver == "cell_manager" and cell is not None:
                    backup = cell.backup
            elif receiver == "customer":
                if cust is None or not cust.notices:
                    self._audit(now, "customer_not_notified", fingerprint=fp, episode=episode,
                                detail="customer unknown" if cust is None else
                                f"{cust.id} has not opted in to notices")
                    continue
                recipients.append(f"customer:{cust.id}")
            else:
                recipients.append(f"receiver:{receiver}")
        recipients = list(dict.fromkeys(recipients))
        self.db.execute("UPDATE alerts SET receivers=?, backup=?, silenced_by=NULL "
                        "WHERE fingerprint=?", (dumps(recipients), backup, fp))
        if not recipients:
            self._count("unrouted")
            self._audit(now, "unrouted", fingerprint=fp, episode=episode,
                        detail="no receiver matched")
        for r in recipients:
            self._pend(r, fp, episode, "firing", Severity(row["severity"]), now)
        self._audit(now, "routed", fingerprint=fp, episode=episode,
                    detail=",".join(recipients) or "-")

    def _pend(self, recipient: str, fp: str, episode: int, kind: str, severity: Severity,
              now: datetime, seq: int = 0) -> None:
        self.db.execute(
            "INSERT OR IGNORE INTO pending(recipient, fingerprint, episode, kind, seq, severity, "
            "created_at) VALUES (?,?,?,?,?,?,?)",
            (recipient, fp, episode, kind, seq, severity.value, ts(now)))

    def _recipients_of(self, fp: str, episode: int) -> list[str]:
        """Who was told (or is about to be told) about this episode of the alert."""
        rows = self.db.execute(
            "SELECT recipient FROM notified WHERE fingerprint=? AND episode=? UNION "
            "SELECT recipient FROM pending WHERE fingerprint=? AND episode=? "
            "AND kind IN ('firing','escalation')", (fp, episode, fp, episode)).fetchall()
        return sorted({r["recipient"] for r in rows})

    # ------------------------------------------------------------------------------ people
    def ack(self, fingerprint: str, by: str, now: datetime | None = None) -> None:
        """Acknowledge an open alert: no more repeats, no escalation. Raises UnknownAlert."""
        now = now or self.clock()
        with self._tx() as db:
            row = self._open_alert(db, fingerprint)
            if row["state"] == "acknowledged":
                self._audit(now, "ack_repeated", fingerprint=fingerprint,
                            episode=row["episode"], by=by)
                return
            db.execute("UPDATE alerts SET state='acknowledged', acked_by=?, acked_at=?, "
                       "updated_at=? WHERE fingerprint=?", (by, ts(now), ts(now), fingerprint))
            self._audit(now, "acknowledged", fingerprint=fingerprint, episode=row["episode"],
                        by=by)

    def resolve(self, fingerprint: str, by: str, now: datetime | None = None,
                reason: str = "") -> None:
        """Resolve an open alert by hand; recipients who were told get a resolved notice."""
        now = now or self.clock()
        with self._tx() as db:
            row = self._open_alert(db, fingerprint)
            self._resolve_locked(row, by=by, now=now, ends_at=now, reason=reason)

    @staticmethod
    def _open_alert(db: sqlite3.Connection, fingerprint: str) -> Any:
        """The firing or acknowledged alert of ``fingerprint``; UnknownAlert when none is."""
        row = db.execute("SELECT * FROM alerts WHERE fingerprint=? AND state IN "
                         "('firing','acknowledged')", (fingerprint,)).fetchone()
        if row is None:
            raise UnknownAlert(fingerprint)
        return row

    def _resolve_locked(self, row: Mapping[str, Any], *, by: str, now: datetime,
                        ends_at: datetime, reason: str = "") -> None:
        fp, episode = row["fingerprint"], row["episode"]
        self.db.execute("UPDATE alerts SET state='resolved', ends_at=?, updated_at=? "
                        "WHERE fingerprint=?", (ts(ends_at), ts(now), fp))
        self.store.close_episode(fp, episode, ends_at, now)
        self._count("alerts_resolved")
        self._audit(now, "resolved", fingerprint=fp, episode=episode, by=by, detail=reason)
        for r in self._recipients_of(fp, episode):
            self._pend(r, fp, episode, "resolved", Severity(row["severity"]), now)
        # Alerts this one was muting now speak for themselves.
        for muted in self.db.execute(
                "SELECT * FROM alerts WHERE inhibited_by=? AND state IN ('firing','acknowledged')",
                (fp,)).fetchall():
            self.db.execute("UPDATE alerts SET inhibited_by=NULL WHERE fingerprint=?",
                            (muted["fingerprint"],))
            self._audit(now, "uninhibited", fingerprint=muted["fingerprint"],
                        episode=muted["episode"], detail=f"{fp} resolved")
            self._route_locked(muted, now)

    def silence(self, matchers: Mapping[str, str], until: datetime, by: str,
                now: datetime | None = None, comment: str = "") -> str:
        """Mute notifications of alerts whose labels equal all ``matchers`` until ``until``;
        returns the silence id. Alerts still open when it ends are routed then."""
        now = now or self.clock()
        bad = [k for k in matchers if k not in SILENCE_KEYS]
        if bad or not matchers:
            raise ValueError(f"silence matchers must be some of {', '.join(SILENCE_KEYS)} "
                             f"(got {', '.join(bad) or 'none'})")
        if until <= now:
            raise ValueError(f"silence end {until.isoformat()} is not in the future")
        sid = uuid.uuid4().hex[:12]
        with self._tx() as db:
            db.execute("INSERT INTO silences(id, matchers, starts_at, ends_at, by, comment) "
                       "VALUES (?,?,?,?,?,?)",
                       (sid, dumps(dict(matchers)), ts(now), ts(until), by, comment))
            self._audit(now, "silence_created", by=by,
                        detail=f"{sid} {dumps(dict(matchers))} until {ts(until)} {comment}")
        return sid

    def _silences(self) -> list[st.Silence]:
        return [st.Silence(id=r["id"], matchers=json.loads(r["matchers"]),
                           starts_at=parse_ts(r["starts_at"]),
                           ends_at=parse_ts(r["ends_at"]),
                           by=r["by"], comment=r["comment"])
                for r in self.db.execute("SELECT * FROM silences")]

    # ------------------------------------------------------------------------------ tick
    def tick(self, now: datetime | None = None) -> int:
        """Escalate, repeat and flush due groups into the outbox; returns notifications made."""
        now = now or self.clock()
        with self._tx():
            silences = self._silences()
            self._unsilence(silences, now)
            self._escalate(silences, now)
            self._repeat(silences, now)
            return self._flush(silences, now)

    def _unsilence(self, silences: list[st.Silence], now: datetime) -> None:
        for row in self.db.execute("SELECT * FROM alerts WHERE silenced_by IS NOT NULL AND "
                                   "state IN ('firing','acknowledged')").fetchall():
            if not st.silenced_by(self.labels(row), silences, now):
                self._audit(now, "unsilenced", fingerprint=row["fingerprint"],
                            episode=row["episode"])
                self._route_locked(row, now)

    def _escalate(self, silences: list[st.Silence], now: datetime) -> None:
        after = timedelta(seconds=self.settings.escalate_after_s)
        if after <= timedelta(0):
            return  # escalation off
        # Only the alerts old enough are read (stored times sort as times): an idle tick
        # during a storm costs a scan in SQLite, not a row object per open alert.
        for row in self.db.execute(
                "SELECT * FROM alerts WHERE state='firing' AND escalated_at IS NULL AND backup "
                "IS NOT NULL AND silenced_by IS NULL AND inhibited_by IS NULL AND starts_at <= ?",
                (ts(now - after),)).fetchall():
            starts = parse_ts(row["starts_at"])
            assert starts is not None
            if not st.needs_escalation(row["state"], starts, False, True, after, now):
                continue
            if st.silenced_by(self.labels(row), silences, now):
                continue
            self.db.execute("UPDATE alerts SET escalated_at=? WHERE fingerprint=?",
                            (ts(now), row["fingerprint"]))
            self._pend(f"manager:{row['backup']}", row["fingerprint"], row["episode"],
                       "escalation", Severity(row["severity"]), now)
            self._count("alerts_escalated")
            self._audit(now, "escalated", fingerprint=row["fingerprint"], episode=row["episode"],
                        recipient=f"manager:{row['backup']}")

    def _repeat(self, silences: list[st.Silence], now: datetime) -> None:
        every = timedelta(seconds=self.settings.repeat_interval_s)
        if every <= timedelta(0):
            return
        for row in self.db.execute(
                "SELECT n.recipient, n.last_sent_at, n.repeats, a.* FROM notified n JOIN alerts a "
                "ON a.fingerprint = n.fingerprint AND a.episode = n.episode WHERE "
                "a.state='firing' AND a.silenced_by IS NULL AND n.recipient NOT LIKE 'customer:%' "
                "AND n.last_sent_at <= ?", (ts(now - every),)).fetchall():
            last = parse_ts(row["last_sent_at"])
            assert last is not None
            if not st.needs_repeat(last, every, now):
                continue
            if st.silenced_by(self.labels(row), silences, now):
                continue
            seq = row["repeats"] + 1
            self.db.execute("UPDATE notified SET repeats=?, last_sent_at=? WHERE recipient=? "
                            "AND fingerprint=? AND episode=?",
                            (seq, ts(now), row["recipient"], row["fingerprint"], row["episode"]))
            self._pend(row["recipient"], row["fingerprint"], row["episode"], "repeat",
                       Severity(row["severity"]), now, seq=seq)

    def _flush(self, silences: list[st.Silence], now: datetime) -> int:
        s = self.settings
        wait, interval = timedelta(seconds=s.group_wait_s), timedelta(seconds=s.group_interval_s)
        made = 0
        # Managers first, then named receivers, then customers: the outbox is sent in the
        # order it was filled, and in a storm the managers must hear first.
        recipients = sorted((r["recipient"] for r in self.db.execute(
            "SELECT DISTINCT recipient FROM pending")), key=st.recipient_order)
        for recipient in recipients:
            items = self.db.execute("SELECT * FROM pending WHERE recipient=? ORDER BY id",
                                    (recipient,)).fetchall()
            oldest = min(parse_ts(i["created_at"]) for i in items)
            g = self.db.execute("SELECT last_flush_at FROM groups WHERE recipient=?",
                                (recipient,)).fetchone()
            last = parse_ts(g["last_flush_at"]) if g else None
            if now < st.group_due(oldest, last, wait, interval):
                continue
            eligible = list(items)
            if recipient.startswith("customer:"):
                eligible = self._customer_gate(recipient, items, now)
            if eligible:
                made += self._make_notification(recipient, eligible, silences, now)
        return made

    def _customer_gate(self, recipient: str, items: list[sqlite3.Row], now: datetime
                       ) -> list[sqlite3.Row]:
        """Quiet hours and the rate limit hold back non-critical notices (never drop them)."""
        s = self.settings
        reason = None
        q = s.quiet_hours
        if q.enabled and st.quiet_until(now, q.start, q.end, q.timezone) is not None:
            reason = "quiet_hours"
        else:
            sent = [parse_ts(r["created_at"]) for r in self.db.execute(
                "SELECT created_at FROM notifications WHERE recipient=? AND critical=0 AND "
                "created_at > ?", (recipient, ts(now - timedelta(hours=1))))]
            if st.rate_allows(sent, s.customer_rate_per_hour, timedelta(hours=1),
                              now) is not None:
                reason = "rate_limited"
        if reason is None:
            return items
        held = [i for i in items if i["severity"] != Severity.CRITICAL.value]
        for i in held:
            cur = self.db.execute(
                "UPDATE pending SET seq = seq WHERE id=? AND NOT EXISTS (SELECT 1 FROM audit "
                "WHERE action=? AND fingerprint=? AND episode=? AND recipient=?)",
                (i["id"], f"held_{reason}", i["fingerprint"], i["episode"], recipient))
            if cur.rowcount:
                self._count(f"notices_held_{reason}")
                self._audit(now, f"held_{reason}", fingerprint=i["fingerprint"],
                            episode=i["episode"], recipient=recipient, detail=i["kind"])
        return [i for i in items if i["severity"] == Severity.CRITICAL.value]

    # ------------------------------------------------------------------------------ messages
    def _channels_for(self, recipient: str) -> tuple[list[tuple[str, str]], str, str, str]:
        """(channel, target) pairs, language, audience and display name of a recipient."""
        return msg.channels_for(recipient, self.registry, self.routes, self.settings)

    def _alert_context(self, row: Any, kind: str, labels: dict[str, Any] | None = None
                       ) -> dict[str, Any]:
        resolved_at = None
        if row["state"] == "resolved":
            ep = self.store.episode(row["fingerprint"], row["episode"])
            resolved_at = ep["resolved_at"] if ep else row["updated_at"]
        return msg.alert_context(row, kind, registry=self.registry,
                                 labels=labels if labels is not None else self.labels(row),
                                 settings=self.settings, resolved_at=resolved_at,
                                 tag_notes=self.tag_notes)

    def _make_notification(self, recipient: str, items: list[sqlite3.Row],
                           silences: list[st.Silence], now: datetime) -> int:
        db = self.db
        keep: list[sqlite3.Row] = []
        alerts: dict[str, sqlite3.Row] = {}
        labels: dict[str, dict[str, Any]] = {}  # per fingerprint, computed once

        def labels_of(row: Any) -> dict[str, Any]:
            found = labels.get(row["fingerprint"])
            if found is None:
                found = labels[row["fingerprint"]] = self.labels(row)
            return found

        for i in items:
            row = alerts.get(i["fingerprint"]) or db.execute(
                "SELECT * FROM alerts WHERE fingerprint=?", (i["fingerprint"],)).fetchone()
            if i["kind"] != "resolved" and row["episode"] == i["episode"] and \
                    st.silenced_by(labels_of(row), silences, now):
                db.execute("DELETE FROM pending WHERE id=?", (i["id"],))
                self._count("notifications_silenced")
                self._audit(now, "suppressed_by_silence", fingerprint=i["fingerprint"],
                            episode=i["episode"], recipient=recipient, detail=i["kind"])
                continue
            keep.append(i)
            alerts[i["fingerprint"]] = row
        if not keep:
            return 0
        channels, lang, audience, name = self._channels_for(recipient)
        if not channels:
            for i in keep:
                db.execute("DELETE FROM pending WHERE id=?", (i["id"],))
                self._count("undeliverable")
                self._audit(now, "undeliverable", fingerprint=i["fingerprint"],
                            episode=i["episode"], recipient=recipient,
                            detail="recipient has no usable channel in the registry")
            return 0
        # One entry per alert in the message, with the most telling kind.
        kinds = st.most_telling(((i["fingerprint"], i["episode"]), i["kind"]) for i in keep)
        contexts = []
        for (fp, episode), kind_of in kinds.items():
            actx = self._alert_context(alerts[fp], kind_of, labels_of(alerts[fp]))
            if episode != actx["episode"]:
                # An earlier episode (fired and cleared before this flush): say so, with its
                # own times (event time; the wall clock of detection separately).
                ep = self.store.episode(fp, episode)
                actx |= {"episode": episode, "state": "resolved", "state_status": "resolved"}
                if ep is not None:
                    actx |= msg.episode_times(ep["onset"], ep["raised_at"], ep["ends_at"],
                                              ep["opened_at"], ep["resolved_at"],
                                              self.settings.quiet_hours.timezone)
                else:
                    actx |= {"ends_at": None, "ends_at_local": None}
                actx["annotations"] = actx["annotations"] | {"episode": str(episode),
                                                             "onset": actx["onset"]}
            contexts.append(actx)
        contexts.sort(key=lambda a: (-Severity(a["severity"]).rank, a["fingerprint"]))
        decision = st.notify_decision(audience, [a["state"] for a in contexts],
                                      kinds.values(), self.settings.storm_threshold)
        audience, kind, status = decision.audience, decision.kind, decision.status
        firing = decision.firing
        critical = any(a["severity"] == Severity.CRITICAL.value for a in contexts)
        ctx: dict[str, Any] = {
            "alerts": contexts, "top": contexts[0], "kind": kind, "status": status,
            "recipient_name": name, "customer_name": name, "firing": firing,
            "by_type": sorted(Counter(a["type"] for a in contexts).items()),
            "by_cell": sorted(Counter(a["grid_cell"] or "-" for a in contexts).items()),
            "cells": sorted({a["grid_cell"] or "-" for a in contexts}),
            "window_local": contexts[0]["raised_at_local"],
        }
        subject, body = self.templates.render(audience, lang, ctx)
        item_keys = [(i["fingerprint"], i["episode"], i["kind"], i["seq"]) for i in keep]
        identities = [(self._episode_identity(i["fingerprint"], i["episode"]), i["kind"],
                       i["seq"]) for i in keep]
        cur = db.execute("INSERT INTO notifications(recipient, kind, critical, created_at, items) "
                         "VALUES (?,?,?,?,?)", (recipient, kind, int(critical), ts(now),
                                                dumps(item_keys)))
        nid = cur.lastrowid
        for channel, target in channels:
            key = st.idempotency_key(recipient, channel + ":" + target, identities)
            n = Notification(key=key, recipient=recipient, channel=channel, target=target,
                             kind=kind, status=status, subject=subject, body=body,
                             language=lang, created_at=now, alerts=tuple(contexts))
            db.execute(
                "INSERT OR IGNORE INTO outbox(key, notification_id, recipient, channel, target, "
                "payload, status, next_attempt_at, created_at) VALUES (?,?,?,?,?,?,'pending',?,?)",
                (key, nid, recipient, channel, target, n.model_dump_json(), ts(now), ts(now)))
        # The group's items leave pending, are remembered as told and audited, in one
        # ``executemany`` each (in the items' order).
        db.executemany("DELETE FROM pending WHERE id=?", [(i["id"],) for i in keep])
        db.executemany(
            "INSERT INTO notified(recipient, fingerprint, episode, last_sent_at) VALUES "
            "(?,?,?,?) ON CONFLICT DO UPDATE SET last_sent_at=excluded.last_sent_at",
            [(recipient, i["fingerprint"], i["episode"], ts(now)) for i in keep
             if i["kind"] in ("firing", "escalation", "update")])
        via = ",".join(c for c, _ in channels)
        self._audit_many([
            (ts(now), i["fingerprint"], i["episode"],
             "summarized" if kind == "storm" else "notified", "gridwatch", recipient,
             f"{i['kind']} via {via} #{nid}") for i in keep])
        db.execute("INSERT INTO groups(recipient, last_flush_at) VALUES (?,?) ON CONFLICT DO "
                   "UPDATE SET last_flush_at=excluded.last_flush_at", (recipient, ts(now)))
        self._count("notifications")
        if kind == "storm":
            self._count("storm_summaries")
        return 1

    # ------------------------------------------------------------------------------ deliver
    def deliver_pending(self, now: datetime | None = None, limit: int = 200) -> int:
        """Send due outbox entries; returns how many were delivered. A failure is retried with
        exponential backoff until ``retry.max_attempts``, then kept as ``failed``."""
        now = now or self.clock()
        retry = self.settings.retry
        delivered = 0
        with self._deliver_lock:
            with self._lock:
                rows = self.db.execute(
                    "SELECT * FROM outbox WHERE status='pending' AND next_attempt_at <= ? "
                    "ORDER BY id LIMIT ?", (ts(now), limit)).fetchall()
            for row in rows:
                # Claim the entry with a lease, so a second router process on the same database
                # does not send it too; a crash mid-send lets the lease run out and it is retried.
                # The claim is not synced to disk: lost in a power cut, it leaves the entry due,
                # which is what a restart makes it anyway (``release_leases``).
                with self._tx(synced=False) as db:
                    claimed = db.execute(
                        "UPDATE outbox SET next_attempt_at=? WHERE id=? AND status='pending' "
                        "AND next_attempt_at=?",
                        (ts(now + SEND_LEASE), row["id"], row["next_attempt_at"])).rowcount
                if not claimed:
                    continue
                n = Notification.model_validate_json(row["payload"])
                notifier = self.notifiers.get(row["channel"])
                try:
                    result = notifier.send(n) if notifier else Delivery.retry(
                        f"no notifier configured for channel {row['channel']!r}")
                except Exception as exc:  # a notifier bug must not stop the outbox
                    log.exception("notifier %s raised", row["channel"])
                    result = Delivery.retry(f"{exc.__class__.__name__}: {exc}")
                attempts = row["attempts"] + 1
                fps = ",".join(a["fingerprint"] for a in n.alerts)
                with self._tx() as db:
                    if result.ok:
                        delivered += 1
                        db.execute("UPDATE outbox SET status='delivered', attempts=?, "
                                   "delivered_at=?, last_error=NULL WHERE id=?",
                                   (attempts, ts(now), row["id"]))
                        self._count("delivered")
                        self._audit(now, "delivered", recipient=row["recipient"],
                                    detail=f"{row['channel']} key={row['key']} alerts={fps}")
                    elif result.retryable and attempts < retry.max_attempts:
                        nxt = now + st.backoff(attempts, retry.base_s, retry.max_s)
                        db.execute("UPDATE outbox SET attempts=?, next_attempt_at=?, "
                                   "last_error=? WHERE id=?",
                                   (attempts, ts(nxt), result.detail, row["id"]))
                        self._count("delivery_retries")
                        self._audit(now, "delivery_retry", recipient=row["recipient"],
                                    detail=f"{row['channel']} key={row['key']} attempt "
                                           f"{attempts}: {result.detail}; next {ts(nxt)}")
                    else:
                        db.execute("UPDATE outbox SET status='failed', attempts=?, last_error=? "
                                   "WHERE id=?", (attempts, result.detail, row["id"]))
                        self._count("delivery_failed")
                        self._audit(now, "delivery_failed", recipient=row["recipient"],
                                    detail=f"{row['channel']} key={row['key']} alerts={fps}: "
                                           f"{result.detail}")
                        log.error("delivery of %s via %s failed for good: %s", row["key"],
                                  row["channel"], result.detail)
        return delivered

    def release_leases(self, now: datetime | None = None) -> int:
        """Make every pending outbox entry due now: at the start of the process that owns the
        database, an entry leased by a send that a crash interrupted is retried at once
        instead of after its lease (with the same idempotency key), and entries in a retry
        backoff get one attempt now. Returns how many entries were made due."""
        now = now or self.clock()
        with self._tx():
            n = self.store.make_pending_due(now)
            if n:
                self._audit(now, "outbox_due_at_start", detail=f"{n} pending entries")
        return n

    # ------------------------------------------------------------------------------ queries
    # The read side lives in the store (``self.store``); these keep the router's face.
    def alerts(self, state: str | None = None, grid_cell: str | None = None
               ) -> list[dict[str, Any]]:
        return self.store.alerts(state, grid_cell)

    def alert(self, fingerprint: str) -> dict[str, Any] | None:
        return self.store.alert(fingerprint)

    def episodes(self, fingerprint: str) -> list[dict[str, Any]]:
        return self.store.episodes(fingerprint)

    def audit_trail(self, fingerprint: str | None = None) -> list[dict[str, Any]]:
        return self.store.audit_trail(fingerprint)

    def outbox(self, status: str | None = None) -> list[dict[str, Any]]:
        return self.store.outbox(status)

    def transitions(self, after_id: int = 0, limit: int = 10_000
                    ) -> tuple[list[AlertTransition], int]:
        """State changes recorded after audit entry ``after_id`` as ``gridwatch.AlertTransition``
        values (for storage), and the id to pass next time."""
        return self.store.transitions(TRANSITION_ACTIONS, after_id, limit)

    def requeue(self, outbox_id: int, by: str, now: datetime | None = None) -> None:
        """Give a ``failed`` outbox entry a fresh set of attempts (after fixing the channel)."""
        now = now or self.clock()
        with self._tx() as db:
            cur = db.execute("UPDATE outbox SET status='pending', attempts=0, next_attempt_at=? "
                             "WHERE id=? AND status='failed'", (ts(now), outbox_id))
            if not cur.rowcount:
                raise KeyError(f"no failed outbox entry with id {outbox_id}")
            self._audit(now, "requeued", by=by, detail=f"outbox #{outbox_id}")

    def prune(self, older_than: timedelta, now: datetime | None = None) -> int:
        """Delete delivered outbox entries and resolved alerts' pending leftovers older than
        ``older_than``; the audit trail is kept. Returns the number of outbox rows removed."""
        now = now or self.clock()
        with self._tx() as db:
            cur = db.execute("DELETE FROM outbox WHERE status='delivered' AND delivered_at < ?",
                             (ts(now - older_than),))
            db.execute("DELETE FROM notifications WHERE created_at < ? AND id NOT IN "
                       "(SELECT notification_id FROM outbox)", (ts(now - older_than),))
            if cur.rowcount:
                self._audit(now, "pruned", detail=f"{cur.rowcount} delivered outbox entries")
            return cur.rowcount

    def counters(self) -> dict[str, int]:
        return self.store.counters()
