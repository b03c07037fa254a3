"""Power quality: voltage sag and swell, phase imbalance, low power factor."""

from __future__ import annotations

from gridwatch._schemas import Event, MeterMeta, Reading
from gridwatch.models._alarms import cond, r3
from gridwatch.models._config import DetectionSettings
from gridwatch.models._record import F16, GLOBAL, LV_KW, MeterRecord

__all__ = ["judge"]


def judge(rec: MeterRecord, r: Reading, t: float, meta: MeterMeta | None,
          s: DetectionSettings, ev: list[Event]) -> None:
    volts = r.voltage
    if volts:
        phases = meta.phases if meta else len(volts)
        three = phases == 3 or len(volts) == 3
        nominal = (meta.nominal_voltage_v if meta and meta.nominal_voltage_v else
                   s.three_phase_nominal_v if three else s.nominal_voltage_v)
        lo_pct = s.three_phase_pct if three else s.voltage_low_pct
        hi_pct = s.three_phase_pct if three else s.voltage_high_pct
        lo, hi = nominal * (1 - lo_pct / 100), nominal * (1 + hi_pct / 100)
        if len(volts) == 1:
            v0 = volts[0]
            live: list[float] | tuple[float, ...] = volts if v0 > 1.0 else ()
            vmin = v0 if live else 0.0
            vmax = v0
        else:
            live = [v for v in volts if v > 1.0]
            vmin = min(live) if live else 0.0
            vmax = max(volts)
        sag = bool(live) and vmin < lo
        if sag or "voltage_sag" in rec.cnt or "voltage_sag" in rec.act:
            cond(rec, ev, "voltage_sag", sag, t, meta,
                 summary=f"voltage {vmin:.1f} V below the {lo:.1f} V limit",
                 score=(lo - vmin) / nominal * 100, ev=lambda: {
                     "observed_v": r3(vmin, 1), "limit_v": r3(lo, 1),
                     "nominal_v": nominal, "limit_pct": -lo_pct})
        swell = vmax > hi
        if swell or "voltage_swell" in rec.cnt or "voltage_swell" in rec.act:
            cond(rec, ev, "voltage_swell", swell, t, meta,
                 summary=f"voltage {vmax:.1f} V above the {hi:.1f} V limit",
                 score=(vmax - hi) / nominal * 100, ev=lambda: {
                     "observed_v": r3(vmax, 1), "limit_v": r3(hi, 1),
                     "nominal_v": nominal, "limit_pct": hi_pct})
        unb = None
        kind = ""
        if len(live) == 3:
            mean_v = sum(live) / 3
            v_unb = max(abs(v - mean_v) for v in live) / mean_v * 100
            if v_unb > s.voltage_unbalance_pct:
                unb, kind = v_unb, "voltage"
        if unb is None and r.current and len(r.current) == 3 and r.kw > s.min_kw:
            mean_i = sum(r.current) / 3
            if mean_i > 1.0:
                i_unb = max(abs(i - mean_i) for i in r.current) / mean_i * 100
                if i_unb > s.current_unbalance_pct:
                    unb, kind = i_unb, "current"
        if unb is not None or "phase_imbalance" in rec.cnt or "phase_imbalance" in rec.act:
            cond(rec, ev, "phase_imbalance", unb is not None, t, meta, fire_after=2,
                 clear_after=2, summary=f"{kind} unbalance {unb or 0:.1f}% between phases",
                 ev=lambda: {"kind": kind, "unbalance_pct": r3(unb or 0, 2),
                             "voltage": str(r.voltage), "current": str(r.current)})
    pf_r = r.pf
    if pf_r is not None:
        pf = abs(pf_r)
        low = pf < s.min_power_factor and r.kw > s.min_kw
        if low and pf >= s.severe_power_factor:
            # Power factor falls at light load by nature: a mildly low one is judged at a
            # real load only (30% of the contracted capacity, else the meter's own average
            # load); a severely low one at any load.
            kva = meta.contracted_kva if meta and meta.contracted_kva else None
            typical = F16[rec.h[LV_KW + GLOBAL]]
            low = r.kw >= (0.3 * kva if kva else typical)
        if not low and "low_power_factor" not in rec.cnt and "low_power_factor" not in rec.act:
            return  # nothing wrong, nothing pending
        # hysteresis: while raised, a reading just above the limit (or at light load)
        # neither clears it nor counts against it
        hold = (not low and "low_power_factor" in rec.act
                and (pf < s.min_power_factor + 0.02 or r.kw <= s.min_kw))
        if not hold:
            cond(rec, ev, "low_power_factor", low, t, meta, fire_after=s.pf_readings,
                 clear_after=s.pf_readings,
                 summary=f"power factor {pf:.2f} below {s.min_power_factor}",
                 score=s.min_power_factor - pf, ev=lambda: {
                     "observed_pf": r.pf, "limit_pf": s.min_power_factor,
                     "kw": r.kw})
