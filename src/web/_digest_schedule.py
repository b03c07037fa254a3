"""When the weekly digest is due, and the workspace's scheduler that sends it.

The digest of a week is due on ``web.digest_weekday`` at ``web.digest_hour`` local time
(``web.digest_timezone``) and covers the seven days before that moment. The scheduler asks, at
start and then every minute, for the latest due moment at or before the clock's now: a
workspace started late in the week still sends that week's digest, once; weeks it slept
through entirely are not made up (``gridwatch digest`` builds the current one by hand).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from gridwatch.web._digest import Digest, pending, send_digests

if TYPE_CHECKING:
    import sqlite3

    from gridwatch._settings import Settings
    from gridwatch.alerts._registry import Registry

__all__ = ["DIGEST_EVERY_S", "DigestScheduler", "digest_zone", "last_due", "next_due"]

log = logging.getLogger("gridwatch.web.digest")

#: How often the running workspace looks whether a digest is due (and retries a failed send).
DIGEST_EVERY_S = 60.0


def _due_on(day: datetime, hour: int, tz: ZoneInfo) -> datetime:
    # A wall-clock time, so the hour stays the same local hour across DST changes; an hour
    # that does not exist that day (spring forward) is read with the offset before the change
    # (New York's 02:00 is 03:00 that Sunday). Normalised through UTC: a moment in a gap would
    # never compare equal to one in another zone.
    return datetime.combine(day.date(), time(hour), tzinfo=tz).astimezone(UTC).astimezone(tz)


def last_due(now: datetime, weekday: int, hour: int, tz: ZoneInfo) -> datetime:
    """The latest due moment at or before ``now`` (aware), in ``tz``."""
    local = now.astimezone(tz)
    day = local - timedelta(days=(local.weekday() - weekday) % 7)
    due = _due_on(day, hour, tz)
    if due.astimezone(UTC) > now.astimezone(UTC):
        due = _due_on(day - timedelta(days=7), hour, tz)
    return due


def next_due(now: datetime, weekday: int, hour: int, tz: ZoneInfo) -> datetime:
    """The first due moment strictly after ``now`` (aware), in ``tz``."""
    last = last_due(now, weekday, hour, tz)
    return _due_on(last + timedelta(days=7), hour, tz)


def digest_zone(settings: Settings) -> ZoneInfo:
    """``web.digest_timezone``, or the detection time zone when unset."""
    return ZoneInfo(settings.web.digest_timezone or settings.detection.timezone)


class DigestScheduler:
    """Sends the digest of the week just ended once it is due, at most once per manager and
    week across restarts and processes (claims in ``web_digest_sends``).

    ``run_once()`` does one look (the workspace's lifespan calls it every
    :data:`DIGEST_EVERY_S` seconds in a worker thread); ``clock`` and ``registry`` are passed
    in. It keeps a database connection of its own, opened on first use.
    """

    def __init__(self, settings: Settings, *, clock: Callable[[], datetime],
                 registry: Callable[[], Registry] | None = None, db_path: Path | str | None = None,
                 by: str = "workspace") -> None:
        self.settings = settings
        self.clock = clock
        self.zone = digest_zone(settings)
        self.db_path = db_path or settings.web.db or settings.alerts.state_db
        self.by = by
        self._registry = registry
        self._db: sqlite3.Connection | None = None
        # close() waits for a round in progress, so a claimed week is always marked after.
        self._lock = threading.Lock()

    def registry(self) -> Registry:
        if self._registry is not None:
            return self._registry()
        from gridwatch.alerts._registry import Registry

        return Registry.load(self.settings.alerts.registry)

    def due(self, now: datetime) -> datetime:
        w = self.settings.web
        return last_due(now, w.digest_weekday, w.digest_hour, self.zone)

    def run_once(self) -> list[Digest]:
        """Build, store and send what is due and not yet claimed; the digests handled."""
        with self._lock:
            return self._run_once()

    def _run_once(self) -> list[Digest]:
        w = self.settings.web
        if not w.digest_enabled:
            return []
        now = self.clock()
        due = self.due(now)
        week_start = (due - timedelta(days=7)).strftime("%Y-%m-%d")
        if self._db is None:
            from gridwatch.web._store import connect

            self._db = connect(self.db_path)
        registry = self.registry()
        if not pending(self._db, registry, week_start, now, max_attempts=w.digest_max_attempts,
                       retry_s=w.digest_retry_s):
            return []
        link = w.public_url or f"http://{w.host}:{w.port}"
        done = send_digests(self._db, registry, due,
                            smtp=self.settings.alerts.smtp if w.digest_send else None,
                            link=link, record=True, by=self.by, clock=self.clock,
                            max_attempts=w.digest_max_attempts, retry_s=w.digest_retry_s)
        for d in done:
            if not d.delivery.startswith("already"):
                log.info("digest of %s for %s: %s", d.week_start, d.manager_id, d.delivery)
        return done

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None
