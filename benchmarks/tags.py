"""Tag evaluation for a million customers per day (target: 60 s on this machine).

One simulated day for ``--customers`` customers (10^6 by default), processed in chunks of
``--chunk`` (10^5) as one worker of a cluster would: the day's profiles folded into the feature
state (24-hour curves, tariff periods, rings), the attribute columns built from one record per
customer (registry, imported and billing attributes), and all tags of the shipped catalogue
evaluated. Reasons are written only for tags that appeared or left, so they are timed apart, per
100,000 customer-tags.

The feature state of each chunk is warmed with ``--warm-days`` days of history first (not timed);
every chunk starts from that history and gets its own random day, so the timed work is the same as
for distinct customers.

Baseline, measured in the same run: the least work any daily processing of the same data does,
one pass summing each customer's 24 hourly values (``curve.sum(axis=1)``). The figures are printed
beside it as a ratio.

    .venv/bin/python benchmarks/tags.py                    # 10^6 customers, about a minute
    .venv/bin/python benchmarks/tags.py --customers 200000  # quicker
"""

from __future__ import annotations

import argparse
import gc
import statistics
import time
from datetime import date, timedelta
from pathlib import Path

import numpy as np

from gridwatch.tags._catalogue import Catalogue
from gridwatch.tags._engine import Attributes, TagEngine
from gridwatch.tags._features import L, ProfileBatch, month_no, update
from gridwatch.tags._tariff import TouSchedule

REPO = Path(__file__).resolve().parents[1]
CLASSES = ("residential", "commercial", "industrial", "agricultural")
CLASS_P = (0.85, 0.1, 0.03, 0.02)


def day_batch(rng: np.random.Generator, n: int, day: date) -> ProfileBatch:
    """Household-like 24-hour curves with random level, evening peak and noise."""
    h = np.arange(24)
    level = rng.lognormal(0.0, 0.6, n)[:, None]
    peak_at = rng.integers(7, 22, n)[:, None]
    shape = 0.5 + np.exp(-(((h[None, :] - peak_at) / 2.5) ** 2))
    curve = (level * shape * rng.uniform(0.8, 1.2, (n, 24))).astype(np.float32)
    return ProfileBatch(
        day=np.full(n, day.toordinal(), np.int64), month=np.full(n, month_no(day), np.int64),
        curve=curve, peak_kw=curve.max(1) * 1.2, valley_kw=curve.min(1) * 0.8,
        day_off=np.full(n, day.weekday() >= 5), wd_curve=curve, we_curve=curve * 0.9)


def records(rng: np.random.Generator, n: int) -> list[dict]:
    cls = rng.choice(CLASSES, n, p=CLASS_P)
    kva = rng.lognormal(2.5, 1.2, n)
    late = rng.poisson(0.3, n)
    out = []
    for i in range(n):
        r = {"customer_class": str(cls[i]), "contracted_kva": float(kva[i]), "meters": 1,
             "phases": 1 if cls[i] == "residential" else 3, "has_export": bool(i % 17 == 0),
             "tariff": "tou", "voltage_v": 220.0, "bills_12m": 12.0,
             "late_payments_12m": float(late[i]), "on_time_share": 1 - late[i] / 12,
             "arrears": 0.0}
        if i % 5 == 0:
            r["programs"] = ("app", "e_billing")
            r["industry"] = "retail"
        out.append(r)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--customers", type=int, default=1_000_000)
    ap.add_argument("--chunk", type=int, default=100_000)
    ap.add_argument("--warm-days", type=int, default=60)
    args = ap.parse_args()

    cat = Catalogue.load(REPO / "config" / "tags")
    tou = TouSchedule.load(REPO / "config" / "tariffs" / "guangdong.yaml")
    engine = TagEngine(cat)
    rng = np.random.default_rng(7)
    chunk = min(args.chunk, args.customers)
    n_chunks = -(-args.customers // chunk)
    today = date(2024, 7, 15)

    t = time.perf_counter()
    warm = np.zeros((chunk, L), np.float32)
    rows = np.arange(chunk)
    for k in range(args.warm_days, 0, -1):
        update(warm, rows, day_batch(rng, chunk, today - timedelta(days=k)), tou)
    print(f"warm-up: {args.warm_days} days of history for {chunk:,} customers in "
          f"{time.perf_counter() - t:.1f} s (not timed below)")
    recs = records(rng, chunk)
    t = time.perf_counter()
    attrs = Attributes(recs, cat.names.kinds)
    for name, kind in cat.names.kinds.items():
        attrs.column(name)
        if kind == "text":
            attrs.text(name)
        elif kind == "set":
            attrs.members(name, "")
    attr_s = (time.perf_counter() - t) * n_chunks

    base_s = upd_s = eval_s = 0.0
    tagged: list[int] = []
    state = warm
    for _ in range(n_chunks):
        batch = day_batch(rng, chunk, today)
        state = warm.copy()
        gc.collect()
        t0 = time.perf_counter()
        kwh = batch.curve.sum(axis=1)
        t1 = time.perf_counter()
        update(state, rows, batch, tou)
        t2 = time.perf_counter()
        hits = engine.evaluate(state, attrs, today)
        t4 = time.perf_counter()
        base_s += t1 - t0
        upd_s += t2 - t1
        eval_s += t4 - t2
        per = np.sum([v for v in hits.values()], axis=0)
        tagged.append(int(np.median(per)))
        assert float(kwh.sum()) > 0
    total = upd_s + eval_s

    # reasons: for 100,000 customer-tags of this chunk, in English alone and in both
    # languages as the engine writes them (the slots' values shared between the two)
    env = engine.env(state, attrs, today)
    hits = engine.evaluate(state, attrs, today, env)

    def reasons(langs: tuple[str, ...]) -> float:
        want, done = 100_000, 0
        t = time.perf_counter()
        for tag in cat.tags:
            idx = np.flatnonzero(hits[tag.id])[: want - done]
            if len(idx):
                memo: dict[str, object] = {}
                for lang in langs:
                    engine.reasons(tag, env, idx, lang, memo)
                done += len(idx)
            if done >= want:
                break
        return (time.perf_counter() - t) * want / max(done, 1)

    reason_en_s = reasons(("en",))
    reason_s = reasons(("en", "zh"))

    n = n_chunks * chunk
    print(f"{n:,} customers, {len(cat)} tags, in {n_chunks} chunks of {chunk:,}")
    print(f"baseline (sum of each 24-hour curve): {base_s:.3f} s")
    print(f"fold the day into the features:       {upd_s:6.1f} s  ({upd_s / base_s:,.0f}x)")
    print(f"evaluate every tag:                   {eval_s:6.1f} s  ({eval_s / base_s:,.0f}x)")
    print(f"total per day:                        {total:6.1f} s  ({total / base_s:,.0f}x)  "
          f"target <= 60 s: {'met' if total <= 60 else 'NOT met'}")
    print(f"not daily: attribute columns {attr_s:.1f} s (when the registry or imports change); "
          f"reasons {reason_s:.2f} s per 100,000 customer-tags in zh and en "
          f"({reason_s / reason_en_s:.2f}x English alone, {reason_en_s:.2f} s; tags that "
          "changed)")
    print(f"median tags per customer (synthetic): {statistics.median(tagged)}")
    print(f"feature state: {L * 4:,} bytes per customer")


if __name__ == "__main__":
    main()
