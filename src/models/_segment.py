"""Load profiling and the models shared per customer segment.

Per meter, ``MeterState`` learns typical weekday and weekend curves and closes each local day into
a :class:`DailyProfile`. Here that becomes a :class:`LoadProfile` with descriptive figures and tags,
and two River models are shared by many meters:

* :class:`Segmenter` — one ``river.cluster.KMeans`` per customer class over the normalised
  48-point (weekday + weekend) curve; a cluster is named from its centroid's weekday curve
  (``segment_name``: ``evening-peak households``), not by its index.
* :class:`SegmentJudge` — per segment, a ``river.stats.RollingQuantile`` of the members' daily
  energy ratios (today over own history). A meter's sustained drop is only reported as possible
  theft if its segment did not drop with it (a holiday week, a mild spell, a plant shutdown).
"""

from __future__ import annotations

import math
import struct
import threading
from bisect import bisect_left, bisect_right, insort
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

import numpy as np
from river import cluster, stats

from gridwatch._schemas import Event, LoadProfile
from gridwatch._segnames import segment_name
from gridwatch.models._daily import _mean, per_thread
from gridwatch.models._meter import DailyProfile
from gridwatch.models._segment_codes import (
    CLASS_ONLY,
    COMPILED,
    DAYTIME,
    EVENING,
    FLAT,
    MORNING,
    NEW_CENTRE,
    NIGHT_HEAVY,
    NUMPY,
    OUT_SIZE,
    TWO_SHIFT,
    WEEKEND_CLOSED,
    shape_code,
)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

class _Scratch:
    """One thread's buffers for ``day_numbers``, with their addresses: the three curves in
    (72 doubles) and its numbers out (``OUT_SIZE``). A call fills them and is done with them
    before :meth:`Segmenter.profile` returns."""

    __slots__ = ("curves", "curves_at", "curves_in", "out", "out_at")

    def __init__(self) -> None:
        self.curves = np.empty(72, np.float64)
        self.curves_in = self.curves.data  # (what struct packs into)
        self.out = np.empty(OUT_SIZE, np.float64)
        self.curves_at = self.curves.ctypes.data
        self.out_at = self.out.ctypes.data


_SCRATCH = threading.local()
#: the three curves of a meter-day into the scratch buffer
_CURVES = struct.Struct("=72d")


def _scratch() -> _Scratch:
    """This thread's :class:`_Scratch`."""
    return per_thread(_SCRATCH, _Scratch)


@cache
def _keys(prefix: str, n: int) -> tuple[str, ...]:
    """The feature names ``prefix00`` .. of a curve of ``n`` hours ("d00".."d23": weekday
    hours), made once."""
    return tuple(f"{prefix}{h:02d}" for h in range(n))


def _norm(curve: tuple[float, ...] | np.ndarray) -> np.ndarray:
    c = np.asarray(curve, dtype=np.float64)
    m = _mean(np.abs(c))
    return c / m if m > 1e-9 else np.zeros_like(c)


def profile_tags(weekday: tuple[float, ...] | np.ndarray,
                 weekend: tuple[float, ...] | np.ndarray,
                 customer_class: str) -> tuple[str, ...]:
    """Plain-language tags a person (and an alert route) can match on, from the typical curves.

    For example ``evening-peak residential``, ``two-shift industrial``, ``flat 24 h``,
    ``weekend-closed commercial``.
    """
    c = np.asarray(weekday, dtype=np.float64)
    if c.size != 24:
        return (customer_class,)
    return _tags_of(_tag_code(c, np.asarray(weekend, dtype=np.float64)), customer_class)


def _tag_code(c: np.ndarray, w: np.ndarray) -> int:
    """The tags of a weekday curve ``c`` (24 values) and a day-off curve ``w`` as a code
    (``_segment_jit``'s: the shape's tag, plus the night-heavy and weekend-closed bits;
    ``CLASS_ONLY`` when the weekday curve's mean is not positive)."""
    c_mean = _mean(c)
    if c_mean <= 0:  # (a NaN mean goes on, as it always has: the tags it gives are kept)
        return CLASS_ONLY
    peak, low = float(c.max()), float(c.min())
    top = int(c.argmax())
    high_hours = int(np.count_nonzero(c >= 0.7 * peak))
    return shape_code(peak, low, top, high_hours, _mean(c[0:6]), _mean(c[8:20]), c_mean,
                      _mean(w) if w.size == 24 else math.nan)


#: the tag of each shape code
_SHAPES = {FLAT: "flat 24 h", EVENING: "evening-peak {}", TWO_SHIFT: "two-shift {}",
           DAYTIME: "daytime {}", MORNING: "morning-peak {}"}


@cache
def _tags_of(code: int, customer_class: str) -> tuple[str, ...]:
    """The tags a code of :func:`_tag_code` stands for, made once a code and class."""
    if code < 0:
        return (customer_class,)
    tags: list[str] = []
    shape = _SHAPES.get(code & 7)
    if shape is not None:
        tags.append(shape.format(customer_class))
    if code & NIGHT_HEAVY:
        tags.append("night-heavy")
    if code & WEEKEND_CLOSED:
        tags.append(f"weekend-closed {customer_class}")
    tags.append(customer_class)
    return tuple(dict.fromkeys(tags))


def load_profile(p: DailyProfile, segment: str, tags: tuple[str, ...],
                 night_day: tuple[float, float] | None = None) -> LoadProfile:
    """The stored form of one day's profile: peak/valley ratio, load factor, night/day ratio,
    month-on-month growth and the typical curve of the day's type. ``night_day``: the day
    curve's means over hours 0-5 and 8-19, when the caller has them."""
    if night_day is None:
        curve = np.asarray(p.day_curve, dtype=np.float64)
        night_day = (_mean(curve[0:6]), _mean(curve[8:20]))
    night_mean, day_mean = night_day
    typical = p.weekend_curve if p.is_day_off else p.weekday_curve
    return LoadProfile(
        meter_id=p.meter_id, day=p.day, customer_id=p.customer_id, segment=segment, tags=tags,
        daily_kwh=round(p.daily_kwh, 4), peak_kw=round(p.peak_kw, 4),
        valley_kw=round(p.valley_kw, 4),
        peak_valley_ratio=round(p.peak_kw / p.valley_kw, 4) if p.valley_kw > 1e-6 else None,
        load_factor=round(p.daily_kwh / 24 / p.peak_kw, 4) if p.peak_kw > 1e-6 else None,
        night_day_ratio=round(night_mean / day_mean, 4) if day_mean > 1e-6
        else None,
        mom_growth=p.mom_growth, curve=tuple(typical),
    )


#: the segmenter's features in order: the weekday curve's hours, then the weekend's
_FEATURES = _keys("d", 24) + _keys("e", 24)
_FEATURE_SET = frozenset(_FEATURES)


class Segmenter:
    """Online segmentation of one customer class by normalised load shape (River KMeans).

    Hyperparameters only in ``__init__``; the River model holds the learned state and pickles.
    """

    #: River's centres as one array (a row a centre, a column a feature of ``_row_keys``),
    #: kept between profiles by :meth:`nearest` and moved with them; never pickled (class
    #: defaults: snapshots, older ones too, carry neither)
    _rows: np.ndarray | None = None
    _row_keys: tuple[str, ...] = ()
    #: ``_rows`` and its address, for the compiled numbers (never pickled either)
    _rows_at: tuple[np.ndarray, int] | None = None

    def __init__(self, customer_class: str, n_clusters: int = 4, halflife: float = 0.05,
                 seed: int = 42, seed_distance: float = 2.0,
                 rename_distance: float = 0.5) -> None:
        self.customer_class = customer_class
        self.n_clusters = n_clusters
        self.halflife = halflife
        self.seed = seed
        self.seed_distance = seed_distance
        #: how far a centroid's weekday curve must move from where it was named before the
        #: name is looked at again (a name does not flicker on a shape near a boundary)
        self.rename_distance = rename_distance
        self.model = cluster.KMeans(n_clusters=n_clusters, halflife=halflife, mu=1.0,
                                    sigma=0.5, seed=seed)
        self.seen = 0
        self.seeded = 0

    @staticmethod
    def vector(weekday: tuple[float, ...] | np.ndarray,
               weekend: tuple[float, ...] | np.ndarray) -> np.ndarray:
        """The features of a meter's typical curves as one array: the weekday curve over its
        mean absolute value, then the weekend curve likewise, times the weekend's level
        against the weekday's (the values of :meth:`features`, in its order)."""
        wd_c = np.asarray(weekday, dtype=np.float64)
        we_c = np.asarray(weekend, dtype=np.float64)
        scale = _mean(wd_c) or 1.0
        we_level = _mean(we_c) / scale if scale > 1e-9 else 0.0
        return np.concatenate((_norm(wd_c), _norm(we_c) * we_level))

    @staticmethod
    def features(p: DailyProfile) -> dict[str, float]:
        """:meth:`vector` of ``p``'s typical curves, named (``d00``.. weekday hours, ``e00``..
        weekend hours): what River's KMeans learns from."""
        v = Segmenter.vector(p.weekday_curve, p.weekend_curve).tolist()
        n = len(p.weekday_curve)
        x = dict(zip(_keys("d", n), v[:n], strict=True))
        x.update(zip(_keys("e", len(v) - n), v[n:], strict=True))
        return x

    def assign(self, p: DailyProfile) -> tuple[str, tuple[str, ...]]:
        """Segment and tags for a meter's finished day; learns from the profile (score first).

        River's KMeans starts from random centres, which in 48 dimensions all sit far from the
        data, so one centre would take every profile; the first profiles that are far from every
        seeded centre seed the next one (farthest-first), after that it is plain online KMeans.
        """
        segment, tags, _ = self._assign(p)
        return segment, tags

    def profile(self, p: DailyProfile) -> LoadProfile:
        """:meth:`assign`, then :func:`load_profile`: the stored form of a meter's finished
        day with its segment and tags (their numbers in one compiled call where it is
        loaded)."""
        segment, tags, night_day = self._assign(p)
        return load_profile(p, segment, tags, night_day)

    def _assign(self, p: DailyProfile
                ) -> tuple[str, tuple[str, ...], tuple[float, float] | None]:
        """:meth:`assign`, and the day curve's night and day means when the compiled numbers
        (``_segment_jit.day_numbers``) gave them."""
        kernel = COMPILED[0]
        if kernel is not None:
            got = self._assign_compiled(kernel, p)
            if got is not None:
                return got
        wd = np.asarray(p.weekday_curve, dtype=np.float64)
        tags = profile_tags(wd, p.weekend_curve, self.customer_class)
        if p.daily_kwh <= 0 or not any(p.weekday_curve):
            return f"{self.customer_class}-unknown", tags, None
        v = self.vector(wd, p.weekend_curve)
        rows = self._kept_rows(v.size)
        if rows is not None:  # every centre seeded, their array kept: no names needed
            k = self._nearest_row(rows, v)
            self.seen += 1
            return self.name(k, self._move_row(rows, k, v)), tags, None
        return self._learn(self.features(p)), tags, None

    def _assign_compiled(self, kernel: Any, p: DailyProfile
                         ) -> tuple[str, tuple[str, ...], tuple[float, float]] | None:
        """:meth:`_assign` through ``day_numbers`` (the same numbers: see ``_segment_jit``):
        the tags, the features and what :meth:`_learn` does with them (a centre seeded, or
        the nearest moved) on the seeded centres' array; None (nothing changed) for curves not
        of 24 values or holding a NaN, which numpy's path takes."""
        wd, we, day = p.weekday_curve, p.weekend_curve, p.day_curve
        if len(wd) != 24 or len(we) != 24 or len(day) != 24:
            return None
        sc = _scratch()
        _CURVES.pack_into(sc.curves_in, 0, *wd, *we, *day)
        skip = p.daily_kwh <= 0 or not any(wd)
        seeding = self.seeded < self.n_clusters
        rows = None if skip or (not seeding and self.model.p != 2) else self._seeded_rows()
        rows_at = 0
        if rows is not None:
            kept = self._rows_at
            if kept is None or kept[0] is not rows:  # (its address, taken once an array)
                kept = self._rows_at = (rows, rows.ctypes.data)
            rows_at = kept[1]
        code, k = kernel(sc.curves_at, rows_at, -1 if rows is None else len(rows),
                         self.halflife, sc.out_at, self.seed_distance, seeding)
        if code == NUMPY:
            return None
        got = sc.out.tolist()
        tags = _tags_of(code, self.customer_class)
        night_day = (got[48], got[49])
        if skip:
            return f"{self.customer_class}-unknown", tags, night_day
        if rows is None:
            return self._learn(dict(zip(_FEATURES, got[:48], strict=True))), tags, night_day
        self.seen += 1
        if k == NEW_CENTRE:  # far from every seeded centre: the next one
            k = self.seeded
            self.model.centers[k].update(zip(_FEATURES, got[:48], strict=True))
            self.seeded += 1
            rows = self._rows = np.vstack((rows, sc.out[:48]))
            return self.name(k, rows[k]), tags, night_day
        row = rows[k]  # the nearest centre, moved in place: River's centre follows
        self.model.centers[k].update(zip(_FEATURES, row.tolist(), strict=True))
        return self.name(k, row), tags, night_day

    def _seeded_rows(self) -> np.ndarray | None:
        """The seeded centres as one array (a row a centre, its columns the 48 features in
        :meth:`features`' order): ``_rows``, built from River's centres when missing; None
        when a seeded centre's features are not those (a snapshot of another layout: numpy's
        path then learns)."""
        n = min(self.seeded, self.n_clusters)
        rows = self._rows
        if rows is not None and self._row_keys == _FEATURES and len(rows) == n:
            return rows
        centres = [self.model.centers[k] for k in range(n)]
        if any(c.keys() != _FEATURE_SET for c in centres):
            return None
        rows = self._rows = np.array([[c[f] for f in _FEATURES] for c in centres],
                                     dtype=np.float64).reshape(n, len(_FEATURES))
        self._row_keys = _FEATURES
        return rows

    def _learn(self, x: dict[str, float]) -> str:
        """The profile's features ``x`` seed the next centre (far from every seeded one) or
        move the nearest; its segment's name."""
        if self.seeded < self.n_clusters and self._far_from_seeds(x):
            k = self.seeded
            self.model.centers[k].update(x)
            self.seeded += 1
            self._rows = None
        else:
            k = self._nearest_seeded(x) if self.seeded < self.n_clusters else \
                self.nearest(x)
            self._move(k, x)
        self.seen += 1
        return self.name(k)

    def _move(self, k: int, x: dict[str, float]) -> None:
        """Centre ``k`` moves ``halflife`` of the way to ``x``: ``c += rate * (x - c)`` for
        each feature; on the centres' array where :meth:`nearest` keeps one for ``x``'s
        features, else on River's centre (the array, if any, is then dropped)."""
        rows = self._rows
        if rows is not None and self._row_keys == tuple(x):
            self._move_row(rows, k, np.fromiter(x.values(), np.float64, len(x)))
            return
        centre, rate = self.model.centers[k], self.halflife
        for i, xi in x.items():
            centre[i] += rate * (xi - centre[i])
        self._rows = None

    def _move_row(self, rows: np.ndarray, k: int, v: np.ndarray) -> np.ndarray:
        """Row ``k`` of the centres' array moves ``halflife`` of the way to ``v`` (the same
        float operations, element by element, as the loop over the features) and is written
        back to River's centre; returns the row."""
        row = rows[k]
        row += self.halflife * (v - row)
        self.model.centers[k].update(zip(self._row_keys, row.tolist(), strict=True))
        return row

    def segment_of(self, weekday: tuple[float, ...], weekend: tuple[float, ...]) -> str:
        """The segment a meter with these typical curves belongs to now (no learning)."""
        if self.seeded == 0 or not any(weekday):
            return f"{self.customer_class}-unknown"
        p = DailyProfile(meter_id="-", day=_EPOCH, customer_id=None,
                         customer_class=self.customer_class, daily_kwh=float(sum(weekday)),
                         peak_kw=0.0, valley_kw=0.0, day_curve=weekday, weekday_curve=weekday,
                         weekend_curve=weekend, is_day_off=False, mom_growth=None, ratio=None)
        x = self.features(p)
        k = self._nearest_seeded(x) if self.seeded < self.n_clusters else \
            self.nearest(x)
        return self.name(k)

    def name(self, k: int, row: np.ndarray | None = None) -> str:
        """Cluster ``k``'s name from its centroid (``segment_name``), kept while the centroid
        stays within ``rename_distance`` of where it was named or keeps its shape; a second
        cluster of the same shape gets a number (``evening-peak households 2``). ``row``: the
        centroid's features as the centres' array holds them, when the caller has it."""
        names: dict[int, tuple[str, str]] = self.__dict__.setdefault("names", {})
        anchors: dict[int, list[float]] = self.__dict__.setdefault("anchors", {})
        if row is not None:
            curve = row[:24].tolist()
        else:
            c = self.model.centers[k]
            curve = [float(c.get(key, 0.0)) for key in _keys("d", 24)]
        have = names.get(k)
        if have is not None and math.dist(curve, anchors[k]) <= getattr(
                self, "rename_distance", 0.5):
            return have[1]
        base = segment_name(curve, self.customer_class)
        anchors[k] = curve
        if have is not None and have[0] == base:
            return have[1]
        taken = {n for j, (_b, n) in names.items() if j != k}
        name, i = base, 2
        while name in taken:
            name, i = f"{base} {i}", i + 1
        names[k] = (base, name)
        return name

    def nearest(self, x: dict[str, float]) -> int:
        """River's ``KMeans.predict_one(x)``: the centre with the least sum of ``|c - x| ** p``
        over the features (the first of equals), computed on the centres as one array. A
        centre whose features are not ``x``'s (River would draw the missing ones at random)
        goes to River's own. The sums are added in another order than River's, which adds
        them in the order of a set of strings (so that River's own last bits change from one
        process to the next); only a tie closer than rounding could answer differently.

        The array (a row a centre, in the centres' order, a column a feature in ``x``'s order)
        is kept between calls while every change to the centres goes through :meth:`assign`;
        it is not pickled, and is built again from River's centres when missing."""
        model = self.model
        keys = x.keys()
        for c in model.centers.values():
            if c.keys() != keys:
                self._rows = None
                return int(model.predict_one(x))
        rows = self._rows
        if rows is None or self._row_keys != tuple(keys):
            rows = self._rows = np.array([[c[k] for k in keys] for c in model.centers.values()],
                                         dtype=np.float64)
            self._row_keys = tuple(keys)
        return self._nearest_row(rows, np.fromiter(x.values(), np.float64, len(x)))

    def _nearest_row(self, rows: np.ndarray, v: np.ndarray) -> int:
        diff = np.abs(rows - v)
        return list(self.model.centers)[int((diff ** self.model.p).sum(axis=1).argmin())]

    def _kept_rows(self, n: int) -> np.ndarray | None:
        """The centres' array :meth:`nearest` keeps, when every centre is seeded and its
        columns are the 48 features in :meth:`features`' order; else None."""
        if self.seeded < self.n_clusters or n != len(_FEATURES) or self._row_keys != _FEATURES:
            return None
        return self._rows

    def __getstate__(self) -> dict[str, object]:
        state = dict(self.__dict__)
        state.pop("_rows", None)
        state.pop("_row_keys", None)
        state.pop("_rows_at", None)
        return state

    def _dist(self, x: dict[str, float], k: int) -> float:
        """The Euclidean distance of ``x`` to centre ``k``: the square root of numpy's
        (pairwise) sum of the squared differences, in ``x``'s order (the compiled numbers sum
        in the same order; Python's ``sum`` adds in another from one version to the next)."""
        c = self.model.centers[k]
        n = len(x)
        d = np.fromiter(x.values(), np.float64, n) - np.fromiter((c[i] for i in x), np.float64, n)
        return math.sqrt(float(np.add.reduce(d * d)))

    def _nearest_seeded(self, x: dict[str, float]) -> int:
        return min(range(self.seeded), key=lambda k: self._dist(x, k))

    def _far_from_seeds(self, x: dict[str, float]) -> bool:
        return self.seeded == 0 or min(self._dist(x, k) for k in range(self.seeded)) \
            > self.seed_distance


@dataclass(slots=True)
class Verdict:
    """The segment's opinion on one meter's candidate event."""

    event: Event | None  # the event to raise (with segment evidence), or None if suppressed
    segment_median: float | None


#: Candidate kinds the segment judges: a drop or a rise the whole segment shares is the weather,
#: a holiday or a shutdown, not news about one customer.
LEVEL_KINDS = ("level_shift_up", "level_shift_down")


def is_candidate(event: Event) -> bool:
    """Whether an event of a meter goes to its segment's judge before it is raised."""
    return event.type == "possible_theft" or (
        event.type == "abnormal_consumption" and event.evidence.get("kind") in LEVEL_KINDS)


def _day_of(event: Event) -> int:
    """Ordinal of the day a day-judged event is about: the day closed by the reading that
    raised it (the same key as ``DailyProfile.day.toordinal()``)."""
    return (event.raised_at - timedelta(days=1)).toordinal()


class SegmentJudge:
    """Per-segment reference for whole-day candidates (possible theft, level shifts).

    Confirms a meter's candidate only if its segment did not move with it, judged on the
    candidate's own day whatever order candidates and days arrive in:

    * the median of the members' energy ratios (today over own history) on that day, from a
      River P² quantile per day, is not itself a drop (theft, level down: at least
      ``min_ratio``) or a rise (level up: at most ``1 / min_ratio``);
    * fewer than ``collective_share`` of the segment's members (at least ``min_collective``)
      raised a candidate of the same kind within a day of it.

    A meter whose own evidence is strong (``evidence["strong"]``: far below its usual, with its
    usual shape, for longer than needed) cannot be vetoed by the collective rule: its evidence is
    kept and the segment's view is added to it. A drop of the segment's median still vetoes it.
    """

    def __init__(self, segment: str, min_ratio: float = 0.7, window: int = 500,
                 min_samples: int = 10, collective_share: float = 0.1,
                 min_collective: int = 3, keep_days: int = 14) -> None:
        self.segment = segment
        self.min_ratio = min_ratio
        self.window = window
        self.min_samples = min_samples
        self.collective_share = collective_share
        self.min_collective = min_collective
        self.keep_days = keep_days
        self.days: dict[int, tuple[int, stats.Quantile]] = {}
        self.samples = 0
        #: candidate event times per kind, sorted (epoch seconds)
        self.candidates: dict[str, list[float]] = {}
        self.confirmed: set[tuple[str, str]] = set()
        self.suppressed = 0

    def learn(self, ratio: float, day: int = 0) -> None:
        """One member's finished day: its energy over its own history."""
        n, q = self.days.get(day) or (0, stats.Quantile(0.5))
        q.update(ratio)
        self.days[day] = (n + 1, q)
        self.samples += 1
        if len(self.days) > self.keep_days:
            del self.days[min(self.days)]

    def median(self, day: int) -> tuple[float | None, int]:
        """Median ratio of the segment's members on ``day`` and how many members it holds."""
        n, q = self.days.get(day, (0, None))
        return (q.get() if q is not None and n else None), n

    def judge(self, event: Event) -> Verdict:
        kind = str(event.evidence.get("kind", event.type)) if event.type != "possible_theft" \
            else "possible_theft"
        key = (event.meter_id, event.type)
        day = _day_of(event)
        med, members = self.median(day)
        if event.state == "resolved":
            if key in self.confirmed:
                self.confirmed.discard(key)
                return Verdict(event, med)
            return Verdict(None, med)
        t = event.raised_at.timestamp()
        times = self.candidates.setdefault(kind, [])
        insort(times, t)
        horizon = max(times[-1] - self.keep_days * 86_400, -math.inf)
        del times[:bisect_left(times, horizon)]
        near = bisect_right(times, t + 86_400) - bisect_left(times, t - 86_400)
        collective = near >= max(self.min_collective, self.collective_share * members)
        enough = members >= self.min_samples and med is not None
        shared = enough and med is not None and (
            med > 1 / self.min_ratio if kind == "level_shift_up" else med < self.min_ratio)
        strong = bool(event.evidence.get("strong"))
        if shared or (collective and not strong):
            self.suppressed += 1
            return Verdict(None, med)
        ev = dict(event.evidence)
        ev["segment"] = self.segment
        ev["segment_median_ratio"] = round(med, 3) if enough and med is not None else None
        ev["segment_candidates_24h"] = near
        if strong and collective:
            ev["segment_disagrees"] = True
        self.confirmed.add(key)
        return Verdict(event.model_copy(update={"evidence": {
            k: v for k, v in ev.items() if v is not None}}), med)
