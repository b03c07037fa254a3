"""Tags computed by the running engine.

The dataflow hands each finished meter-day (``DailyProfile``) to a :class:`DaySink`; the alert
sink hands over the events it routes and the load profiles (for the customer's segment).
:class:`LiveTags` folds them into the customers' features and, when a day is over, evaluates
the catalogue as of that day (event time), keeps the tags and their history in the tag store,
and tells the alert router which tags each customer carries, so routes match the tags the
engine computed.

A day is over when a profile of a later day arrives, or when no profile has arrived for
``settle_s`` seconds (the profiles of a day arrive together, just after its last reading);
a late profile of a day already evaluated is folded in and the day evaluated again.

Everything runs on one thread of its own (``start``), fed through a queue, so the dataflow's
workers never wait for an evaluation and the tag store has one writer. ``handle`` and
``settle`` are the same work called directly, for tests and replays.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime, tzinfo
from typing import Any

from bytewax.outputs import DynamicSink, StatelessSinkPartition

from gridwatch._schemas import Event, LoadProfile
from gridwatch.tags._engine import TagHit
from gridwatch.tags._features import _local_date
from gridwatch.tags._notes import tags_db_path, tags_row_id
from gridwatch.tags._profiler import TagProfiler

__all__ = ["DaySink", "LiveTags", "Publish", "router_publisher", "tags_row_id"]

log = logging.getLogger("gridwatch.tags")

#: ``publish(customer_id, segment, tags, day)``: where a customer's new tag set goes.
Publish = Callable[[str, str | None, tuple[str, ...], date], None]

def router_publisher(router: Any) -> Publish:
    """Hands a customer's tags to the alert router (``Router.update_profile``) as a profile
    row of its own, which the router joins by customer id with the meters' rows."""

    def publish(customer_id: str, segment: str | None, tags: tuple[str, ...], day: date
                ) -> None:
        router.update_profile(LoadProfile(
            meter_id=tags_row_id(customer_id), customer_id=customer_id,
            day=datetime(day.year, day.month, day.day, tzinfo=UTC),
            segment=segment or "unknown", tags=tags, daily_kwh=0.0, peak_kw=0.0,
            valley_kw=0.0))

    return publish


class LiveTags:
    """Tags of the running engine: features from the day profiles, evaluation at day close."""

    def __init__(self, make_profiler: Callable[[], TagProfiler], *,
                 publish: Publish | None = None, settle_s: float = 5.0,
                 registry_of: Callable[[], Any] | None = None,
                 transitions: Callable[[int], tuple[list[Any], int]] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._make_profiler = make_profiler
        self._registry_of = registry_of
        #: ``transitions(after_id) -> (AlertTransition list, next id)``: the router's alert
        #: state changes, read before each evaluation for the verdict features
        self._transitions = transitions
        self._transition_pos = 0
        self.profiler: TagProfiler | None = None
        self.publish = publish
        self.settle_s = settle_s
        self.clock = clock
        self.pending: date | None = None  # the latest day with profiles not yet evaluated
        self.last_day: date | None = None  # the latest day evaluated
        self._last_seen = 0.0
        self._published: dict[str, frozenset[str]] = {}
        #: per customer, the day its stored features were folded through when the engine
        #: started: a replay after recovery hands those days again, and they are not counted
        #: twice
        self.through: dict[str, date] = {}
        self.skipped = 0
        self.hits: dict[str, list[TagHit]] = {}
        self.evaluations = 0
        self.errors = 0
        self._queue: queue.Queue[tuple[str, list[Any]]] = queue.Queue(maxsize=10_000)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._idle = threading.Event()
        self._idle.set()

    # ------------------------------------------------------------------ feeding
    def put_days(self, days: Sequence[Any]) -> None:
        """Finished meter-days (``DailyProfile``), from the dataflow."""
        if days:
            self._put("days", list(days))

    def put_events(self, events: Sequence[Event]) -> None:
        firing = [e for e in events if e.state == "firing" and e.customer_id]
        if firing:
            self._put("events", firing)

    def put_profiles(self, profiles: Sequence[LoadProfile]) -> None:
        if profiles:
            self._put("profiles", list(profiles))

    def put_transitions(self, transitions: Sequence[Any]) -> None:
        if transitions:
            self._put("transitions", list(transitions))

    def _put(self, kind: str, items: list[Any]) -> None:
        if self._thread is None:  # not started: do the work here
            self.handle(kind, items)
            return
        self._idle.clear()
        self._queue.put((kind, items))

    def submit_wrapper(self, submit: Callable[[list[Event]], object] | None
                       ) -> Callable[[list[Event]], object]:
        """``submit`` (the router's) that also counts the events into the features."""

        def both(events: list[Event]) -> object:
            self.put_events(events)
            return submit(events) if submit is not None else None

        return both

    def profile_wrapper(self, on_profile: Callable[[LoadProfile], None] | None
                        ) -> Callable[[LoadProfile], None]:
        def both(profile: LoadProfile) -> None:
            self.put_profiles([profile])
            if on_profile is not None:
                on_profile(profile)

        return both

    # ------------------------------------------------------------------ work
    def _prof(self) -> TagProfiler:
        if self.profiler is None:
            self.profiler = self._make_profiler()
            self.through = self.profiler.resume()
            if self.through:
                self.last_day = max(self.through.values())
                # the router starts empty: it hears each customer's stored tags again
                store = self.profiler.store
                for cid, tags in (store.current_sets().items() if store is not None else ()):
                    if self.publish is not None:
                        self.publish(cid, self.profiler.segments.get(cid),
                                     tuple(sorted(tags)), self.through.get(cid, self.last_day))
                    self._published[cid] = tags
                log.info("tags: features of %d customers resumed, through %s",
                         len(self.through), self.last_day)
        return self.profiler

    def handle(self, kind: str, items: list[Any]) -> None:
        prof = self._prof()
        if kind == "days":
            by_day: dict[date, list[Any]] = {}
            for p in items:
                local = _local_date(p.day, prof.tz)
                # a day the resumed features already hold (a replay after recovery)
                if self.through and local <= self.through.get(p.customer_id or p.meter_id,
                                                              date.min):
                    self.skipped += 1
                    continue
                by_day.setdefault(local, []).append(p)
            for day in sorted(by_day):
                if self.pending is not None and day > self.pending:
                    self.commit(self.pending)  # a later day: the pending one is over
                prof.observe(by_day[day])
                if self.pending is None or day > self.pending:
                    self.pending = day
                if self.last_day is not None and day <= self.last_day and \
                        self.pending < self.last_day:
                    self.pending = self.last_day  # a late profile: evaluate again
            self._last_seen = self.clock()
        elif kind == "events":
            if self.through:  # alerts of days already counted in the resumed features
                items = [e for e in items if _local_date(e.onset, prof.tz)
                         > self.through.get(e.customer_id, date.min)]
            prof.observe_events(items)
        elif kind == "profiles":
            for lp in items:
                if lp.customer_id and lp.segment and not lp.segment.endswith("-unknown"):
                    prof.segments[lp.customer_id] = lp.segment
        elif kind == "transitions":
            prof.observe_transitions(items)

    def settle(self, force: bool = False) -> date | None:
        """Evaluate the pending day when its profiles stopped arriving ``settle_s`` ago (or
        now with ``force``); returns the day evaluated."""
        if self.pending is None:
            return None
        if not force and self.clock() - self._last_seen < self.settle_s:
            return None
        day = self.pending
        self.commit(day)
        return day

    def commit(self, day: date) -> dict[str, list[TagHit]]:
        prof = self._prof()
        if self._registry_of is not None:  # the router's registry follows its file
            prof.registry = self._registry_of()
        while self._transitions is not None:  # verdicts: acknowledged, closed by hand
            got, self._transition_pos = self._transitions(self._transition_pos)
            if not got:
                break
            prof.observe_transitions(got)
        hits = prof.commit(day)
        self.hits = hits
        self.evaluations += 1
        self.last_day = max(day, self.last_day) if self.last_day else day
        if self.pending is not None and self.pending <= day:
            self.pending = None
        if self.publish is not None:
            for cid, h in hits.items():
                now = frozenset(x.tag for x in h)
                if self._published.get(cid) != now:
                    self.publish(cid, prof.segments.get(cid), tuple(sorted(now)), day)
                    self._published[cid] = now
        log.info("tags of %d customers evaluated as of %s", len(hits), day)
        return hits

    # ------------------------------------------------------------------ thread
    def start(self) -> LiveTags:
        self._thread = threading.Thread(target=self._run, name="gridwatch-tags", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 30.0) -> None:
        """Fold in what is queued, evaluate the pending day, and end the thread."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def wait_idle(self, timeout: float = 30.0) -> bool:
        """Wait until everything queued so far has been folded in."""
        return self._idle.wait(timeout)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                kind, items = self._queue.get(timeout=0.5)
            except queue.Empty:
                kind, items = "", []
            try:
                if kind:
                    self.handle(kind, items)
                self.settle()
            except Exception:  # counted and logged; the engine goes on without this batch
                self.errors += 1
                log.exception("tag evaluation failed (%s)", kind or "settle")
            if self._queue.empty():
                self._idle.set()
        # stopping: what has arrived is folded in, and the last day evaluated
        try:
            while not self._queue.empty():
                self.handle(*self._queue.get_nowait())
            self.settle(force=True)
        except Exception:
            self.errors += 1
            log.exception("tag evaluation failed at stop")
        self._idle.set()


class _DayPartition(StatelessSinkPartition[Any]):
    def __init__(self, live: LiveTags) -> None:
        self._live = live

    def write_batch(self, items: list[Any]) -> None:
        self._live.put_days(items)


class DaySink(DynamicSink[Any]):
    """The dataflow's finished meter-days, to :class:`LiveTags`."""

    def __init__(self, live: LiveTags) -> None:
        self.live = live

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _DayPartition:
        return _DayPartition(self.live)


def live_tags(settings: Any, router: Any, tz: tzinfo | None, process_id: int = 0
              ) -> LiveTags | None:
    """The engine's ``LiveTags`` from its settings (``alerts.tags_catalogue``, ``tariff``,
    ``tags_db``), or None when the catalogue is turned off, missing or broken (logged).
    Each process of a cluster tags the customers of its own cells, in a store of its own by
    default (``tags.p<id>.sqlite``)."""
    a = settings.alerts
    catalogue = getattr(a, "tags_catalogue", None)
    if catalogue is None or not catalogue.exists():
        if catalogue is not None:
            log.warning("no tag catalogue at %s: the engine computes no tags", catalogue)
        return None
    from gridwatch.tags._store import TagStore

    db = tags_db_path(a, process_id)
    # the catalogue is read and checked now: a broken file is said at start, once, and the
    # engine runs on without tags rather than failing later on its tag thread
    checked_with = router.registry if router is not None else None
    try:
        checked = TagProfiler.from_config(catalogue, a.tariff, registry=checked_with)
    except (ValueError, OSError) as exc:  # CatalogueError, TariffError, a missing file
        log.error("the engine computes no tags: %s", exc)
        return None

    def make() -> TagProfiler:
        """The profiler of the catalogue read at start (not read again on the tag thread,
        where parsing it held the dataflow's workers up mid-stream), unless the registry was
        reloaded since: its attribute schema may have changed what the catalogue may use."""
        registry = router.registry if router is not None else None
        if registry is not checked_with:
            return TagProfiler.from_config(catalogue, a.tariff, registry=registry,
                                           store=TagStore(db), tz=tz)
        return checked.reopened(registry=registry, store=TagStore(db), tz=tz)
    return LiveTags(make, publish=router_publisher(router) if router is not None else None,
                    settle_s=float(getattr(a, "tags_settle_s", 5.0)),
                    registry_of=(lambda: router.registry) if router is not None else None,
                    transitions=router.transitions if router is not None else None)

