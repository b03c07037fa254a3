"""The tag profiler: features from daily profiles and events, attributes from the registry and
the imports, tags and reasons from the catalogue, kept in the tag store with their history.

This is what the engine (or ``gridwatch tags profile``) drives::

    prof = TagProfiler.from_config("config/tags", "config/tariffs/guangdong.yaml",
                                   registry, store, tz)
    prof.observe(daily_profiles)         # each DailyProfile the dataflow emits
    prof.observe_events(events)          # alerts by type
    prof.observe_transitions(changes)    # verdicts: acknowledged, closed by hand
    hits = prof.commit(day)              # tags of every customer, history updated
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, tzinfo
from pathlib import Path
from typing import Any

from gridwatch._registry import Registry
from gridwatch.tags._catalogue import Catalogue
from gridwatch.tags._engine import Attributes, TagEngine, TagHit
from gridwatch.tags._features import CustomerFeatures, FeatureTable
from gridwatch.tags._store import TagStore
from gridwatch.tags._strategy import Strategies, Strategy
from gridwatch.tags._tariff import TouSchedule

__all__ = ["Explanation", "TagProfiler", "all_have_reasons", "median_tags", "registry_record"]


def registry_record(registry: Registry | None, customer_id: str) -> dict[str, Any]:
    """The built-in attributes of a customer (``BUILTIN_ATTRIBUTES``) and its declared ones."""
    cust = registry.customer(customer_id) if registry is not None else None
    if cust is None:
        return {}
    volts = [m.nominal_voltage_v for m in cust.meters if m.nominal_voltage_v]
    rec: dict[str, Any] = {
        "customer_class": cust.customer_class.value, "grid_cell": cust.grid_cell,
        "tariff": cust.tariff, "contracted_kva": cust.contracted_kva,
        "meters": len(cust.meters), "phases": max((m.phases for m in cust.meters), default=None),
        "has_export": any(m.has_export for m in cust.meters), "notices": cust.notices,
        "voltage_v": max(volts) if volts else None,
    }
    if rec["contracted_kva"] is None:
        kva = [m.contracted_kva for m in cust.meters if m.contracted_kva]
        rec["contracted_kva"] = sum(kva) if kva else None
    rec.update(cust.attributes)
    return rec


@dataclass
class Explanation:
    customer_id: str
    day: date
    tags: list[TagHit]
    history: list[Any]
    strategies: list[Strategy]
    segment: str | None
    features: dict[str, float | None] = field(default_factory=dict)


class TagProfiler:
    def __init__(self, catalogue: Catalogue, tou: TouSchedule, *,
                 registry: Registry | None = None, store: TagStore | None = None,
                 strategies: Strategies | None = None, tz: tzinfo | None = None) -> None:
        self.catalogue = catalogue
        self.engine = TagEngine(catalogue)
        self.tou = tou
        self.registry = registry
        self.store = store
        self.strategies = strategies
        self.tz = tz
        self.table = FeatureTable(tou)
        self.classes: dict[str, str] = {}
        self.segments: dict[str, str] = {}
        self._current: dict[str, frozenset[str]] | None = None

    @classmethod
    def from_config(cls, catalogue: str | Path, tariff: str | Path, *,
                    registry: Registry | None = None, store: TagStore | None = None,
                    tz: tzinfo | None = None) -> TagProfiler:
        schema = dict(registry.attribute_schema) if registry is not None else {}
        cat = Catalogue.load(catalogue, schema)
        folder = Path(catalogue) if Path(catalogue).is_dir() else Path(catalogue).parent
        strat = Strategies.load(folder / "strategies.yaml", cat.by_id) \
            if (folder / "strategies.yaml").exists() else None
        return cls(cat, TouSchedule.load(tariff), registry=registry, store=store,
                   strategies=strat, tz=tz)

    def reopened(self, *, registry: Registry | None, store: TagStore | None,
                 tz: tzinfo | None) -> TagProfiler:
        """A new profiler of the same catalogue, schedule and strategies (nothing read again),
        with its own store and features."""
        return TagProfiler(self.catalogue, self.tou, registry=registry, store=store,
                           strategies=self.strategies, tz=tz)

    # ------------------------------------------------------------------ input
    def observe(self, profiles: Iterable[Any], segments: Mapping[str, str] | None = None
                ) -> None:
        """Fold finished days (``DailyProfile``) into the customers' features."""
        ps = list(profiles)
        for p in ps:
            self.classes[p.customer_id or p.meter_id] = p.customer_class
        self.table.observe(ps, self.tz)
        if segments:
            self.segments.update(segments)

    def observe_events(self, events: Iterable[Any]) -> int:
        return self.table.add_events(events)

    def observe_transitions(self, transitions: Iterable[Any]) -> int:
        """Verdicts on alerts, from the router's ``AlertTransition`` records."""
        return self.table.add_transitions(transitions)

    def load_features(self, customer_ids: Sequence[str]) -> None:
        """Bring the stored feature states of these customers into the table."""
        if self.store is None:
            return
        for cid in customer_ids:
            got = self.store.features(cid)
            if got is not None:
                state, klass, segment, _ = got
                row = self.table.rows([cid])[0]
                self.table.state[row] = CustomerFeatures.from_bytes(state).state[0]
                if klass:
                    self.classes[cid] = klass
                if segment:
                    self.segments[cid] = segment

    def resume(self) -> dict[str, date]:
        """Bring every stored feature state into the table (an engine starting again goes on
        from what it had folded in); returns, per customer, the last day those states were
        stored as of: days up to it are already counted in them."""
        through: dict[str, date] = {}
        if self.store is None:
            return through
        got = list(self.store.all_features())
        if not got:
            return through
        rows = self.table.rows([g[0] for g in got])
        self.table.dirty.clear()
        for row, (cid, state, klass, segment, day) in zip(rows, got, strict=True):
            self.table.state[row] = CustomerFeatures.from_bytes(state).state[0]
            if klass:
                self.classes[cid] = klass
            if segment:
                self.segments[cid] = segment
            through[cid] = day
        return through

    # ------------------------------------------------------------------ evaluation
    def records(self, customer_ids: Sequence[str], today: date) -> list[dict[str, Any]]:
        imported = self.store.attributes(customer_ids) if self.store else {}
        bills = self.store.billing_features(today, customer_ids) if self.store else {}
        out = []
        for cid in customer_ids:
            rec = registry_record(self.registry, cid)
            rec.update(imported.get(cid, {}))
            rec.update(bills.get(cid, {}))
            if rec.get("customer_class") is None and cid in self.classes:
                rec["customer_class"] = self.classes[cid]
            out.append(rec)
        return out

    def evaluate(self, today: date, customer_ids: Sequence[str] | None = None
                 ) -> dict[str, list[TagHit]]:
        ids = list(customer_ids) if customer_ids is not None else list(self.table.ids)
        if not ids:
            return {}
        state = self.table.subset(ids)
        attrs = Attributes(self.records(ids, today), self.catalogue.names.kinds)
        per = self.engine.tag_customers(state, attrs, today)
        return dict(zip(ids, per, strict=True))

    def commit(self, today: date) -> dict[str, list[TagHit]]:
        """Evaluate every customer, store the tags (history updated) and the features."""
        hits = self.evaluate(today)
        if self.store is not None:
            # only customers whose tags changed touch the store's tags (a million customers
            # a day, of whom a few change)
            if self._current is None:
                self._current = self.store.current_sets()
            changed = {}
            for cid, h in hits.items():
                now = frozenset(x.tag for x in h)
                if self._current.get(cid, frozenset()) != now:
                    changed[cid] = h
                    self._current[cid] = now
            self.store.apply(today, changed)
            # only the feature states that changed since the last commit are written again
            self.store.put_features(
                ((cid, self.table.state[self.table.index[cid]].tobytes(),
                  self.classes.get(cid), self.segments.get(cid))
                 for cid in self.table.take_dirty()), today)
        return hits

    def explain(self, customer_id: str, today: date) -> Explanation:
        hits = self.evaluate(today, [customer_id])[customer_id]
        history = self.store.history(customer_id) if self.store else []
        klass = registry_record(self.registry, customer_id).get("customer_class") \
            or self.classes.get(customer_id)
        segment = self.segments.get(customer_id)
        strategies = self.strategies.for_customer([h.tag for h in hits], segment, klass) \
            if self.strategies else []
        row = self.table.rows([customer_id])[0]
        feats = CustomerFeatures(self.table.state[row])
        figures: dict[str, float | None] = {}
        for name, days in (("kwh_per_day", 30), ("peak_share", 90), ("valley_share", 90),
                           ("night_share", 30), ("load_factor", 90), ("volatility", 30),
                           ("export_share", 30)):
            v = feats.value(name, today, days)
            figures[f"{name} ({days}d)"] = None if math.isnan(v) else round(v, 3)
        return Explanation(customer_id, today, hits, history, strategies, segment, figures)


def median_tags(hits: Mapping[str, Sequence[TagHit]]) -> float:
    return float(statistics.median(len(v) for v in hits.values())) if hits else 0.0


def all_have_reasons(hits: Mapping[str, Sequence[TagHit]]) -> bool:
    return all(h.reason and h.reason != f"tagged {h.tag}: " for v in hits.values() for h in v)

