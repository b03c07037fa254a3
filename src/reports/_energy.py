"""The numbers of a customer's energy report, from its interval readings: energy and cost by
tariff period, maximum demand against the contracted capacity, load factor, the month's power
factor and its bill adjustment, and the saving of moving peak energy to the valley. Pure."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from gridwatch._schemas import Reading
from gridwatch.reports._tariff import Tariff, pf_adjustment

__all__ = ["EnergySummary", "energy_summary"]


@dataclass
class EnergySummary:
    kwh_by_period: dict[str, float] = field(default_factory=dict)
    cost_by_period: dict[str, float] = field(default_factory=dict)
    kwh: float = 0.0
    energy_cost: float = 0.0
    max_demand_kw: float = 0.0
    contracted_kva: float | None = None
    demand_of_contracted: float | None = None
    load_factor: float | None = None
    power_factor: float | None = None
    pf_adjustment_share: float = 0.0
    pf_adjustment_cost: float = 0.0
    shift_kwh: float = 0.0
    shift_saving: float = 0.0
    advice: list[str] = field(default_factory=list)


def energy_summary(readings: Iterable[Reading], tariff: Tariff, *,
                   contracted_kva: float | None = None, hours: float | None = None,
                   shiftable_share: float = 0.1) -> EnergySummary:
    """Summarise one customer's import readings (``kw`` averaged over each interval, stamped at
    the interval's end). ``hours`` is the period's length (for the load factor; the span of the
    readings by default); ``shiftable_share`` of the peak and sharp-peak energy is assumed
    movable to the valley for the advice."""
    s = EnergySummary(contracted_kva=contracted_kva)
    kvarh = 0.0
    pf_kwh = 0.0
    first = last = None
    for r in readings:
        dt_h = (r.interval_s or 900) / 3600
        start = r.ts.timestamp() - dt_h * 3600
        period = tariff.period_of(datetime.fromtimestamp(start, UTC))
        e = max(r.kw, 0.0) * dt_h
        s.kwh_by_period[period] = s.kwh_by_period.get(period, 0.0) + e
        s.kwh += e
        s.max_demand_kw = max(s.max_demand_kw, r.kw)
        if r.pf is not None and 0 < abs(r.pf) <= 1 and e > 0:
            kvarh += e * math.tan(math.acos(abs(r.pf)))
            pf_kwh += e
        first = start if first is None else min(first, start)
        last = start + dt_h * 3600 if last is None else max(last, start + dt_h * 3600)
    for period, e in s.kwh_by_period.items():
        s.cost_by_period[period] = e * tariff.price(period)
    s.energy_cost = sum(s.cost_by_period.values())
    span_h = hours if hours is not None else ((last - first) / 3600 if first is not None
                                              and last is not None else 0.0)
    if s.max_demand_kw > 0 and span_h > 0:
        s.load_factor = s.kwh / span_h / s.max_demand_kw
    if contracted_kva:
        s.demand_of_contracted = s.max_demand_kw / contracted_kva
    if pf_kwh > 0:
        s.power_factor = pf_kwh / math.hypot(pf_kwh, kvarh)
        s.pf_adjustment_share = pf_adjustment(round(s.power_factor, 2),
                                              tariff.power_factor_standard)
        s.pf_adjustment_cost = s.pf_adjustment_share * s.energy_cost
    valley = tariff.price("valley") if "valley" in tariff.multipliers else None
    if valley is not None:
        for period in ("sharp", "peak"):
            e = s.kwh_by_period.get(period, 0.0) * shiftable_share
            s.shift_kwh += e
            s.shift_saving += e * (tariff.price(period) - valley)
    s.advice = _advice(s, tariff, shiftable_share)
    return s


def _advice(s: EnergySummary, tariff: Tariff, share: float) -> list[str]:
    out = []
    if s.shift_kwh > 0:
        out.append(f"Moving {share:.0%} of the peak-period energy ({s.shift_kwh:,.0f} kWh) to the "
                   f"valley would save about {s.shift_saving:,.0f} {tariff.currency} over the "
                   "period.")
    if s.demand_of_contracted is not None:
        if s.demand_of_contracted > 0.95:
            out.append(f"Maximum demand reached {s.demand_of_contracted:.0%} of the contracted "
                       "capacity: raise the capacity or spread the starts of large loads.")
        elif s.demand_of_contracted < 0.4:
            out.append(f"Maximum demand was only {s.demand_of_contracted:.0%} of the contracted "
                       "capacity: a smaller capacity or billing by actual demand may cost less.")
    if s.power_factor is not None and s.power_factor < tariff.power_factor_standard:
        q_per_p = math.tan(math.acos(s.power_factor)) - math.tan(math.acos(0.95))
        kvar = s.max_demand_kw * q_per_p
        out.append(f"Power factor {s.power_factor:.2f} is below {tariff.power_factor_standard}: "
                   f"about {kvar:,.0f} kvar of compensation would bring it to 0.95 and turn the "
                   f"{s.pf_adjustment_cost:,.0f} {tariff.currency} surcharge into a rebate.")
    return out
