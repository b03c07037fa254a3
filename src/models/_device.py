"""Device detection: physical rules from the ratings plus River models shared per device kind.

Per kind, :class:`KindModel` holds one River ``BayesianLinearRegression`` per *channel* (a
quantity predicted from physics-derived features: a transformer's top-oil and hot-spot rise over
ambient from its load, a motor's winding and bearing rise from its current, a compressor's or
chiller's power from its output, an inverter's power from the irradiance). Its learned state is
per kind; each device keeps a compact :class:`DeviceState` (a few lag filters, the residual's
own bias and spread per channel, rule counters). Thermal features follow the exponential
equations of IEC 60076-7 (top-oil rise ``Δθ_or·((1+R·K²)/(1+R))^x`` with time constant
``τ_o``, hot-spot gradient ``H·g_r·K^y``), with ONAN distribution-transformer parameters.

Events (``meter_id`` is the device id; ``evidence["device_id"]`` and ``["device_kind"]`` say so
explicitly; ``customer_id`` and ``grid_cell`` come from the registry, so they route like meter
events): ``device_overload``, ``device_overheating``, ``phase_unbalance``, ``sensor_fault``
(stuck or drifting), ``off_shift_running``, ``inverter_trip``, ``compressor_wear``.
Pure: no IO, the clock is the telemetry's time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from gridwatch._schemas import DeviceTelemetry, Event, Severity
from gridwatch.devices import Device, DeviceKind

__all__ = [
    "DEVICE_EVENT_TYPES",
    "DeviceState",
    "DeviceThresholds",
    "KindModel",
    "oil_rise_ultimate",
]

DEVICE_EVENT_TYPES = ("device_overload", "device_overheating", "phase_unbalance", "sensor_fault",
                      "off_shift_running", "inverter_trip", "compressor_wear")

# IEC 60076-7 exponential thermal model, ONAN distribution transformer parameters.
_R, _X, _Y, _OIL_RISE, _HGR, _TAU_OIL = 5.0, 0.8, 1.6, 55.0, 23.0, 180.0
_TAU_MOTOR_WDG, _TAU_MOTOR_BRG = 40.0, 60.0


def oil_rise_ultimate(k: float) -> float:
    """Ultimate top-oil rise over ambient (K) at load factor ``k`` (IEC 60076-7 form)."""
    return _OIL_RISE * ((1 + _R * k * k) / (1 + _R)) ** _X


@dataclass(frozen=True)
class DeviceThresholds:
    """Rule thresholds (defaults suit 15-minute telemetry)."""

    overload: float = 1.0  # of rated kVA / current
    overload_n: int = 2
    unbalance: float = 0.2  # max phase deviation from the mean, share of the mean
    unbalance_min_load: float = 0.1
    unbalance_n: int = 3
    temp_residual_c: float = 6.0  # residual over the device's own bias that is abnormal
    temp_ok_c: float = 3.0  # a second sensor within this agrees with the model
    temp_n: int = 3
    stuck_n: int = 8
    off_shift_load: float = 0.2
    off_shift_n: int = 2
    trip_ratio: float = 0.1
    trip_min_expected: float = 0.15
    trip_n: int = 2
    wear_residual: float = 0.04  # rise of power over the model, share of rated power
    wear_n: int = 8
    resolve_n: int = 4
    warmup: int = 96  # readings per device before its residual rules apply
    kind_warmup: int = 200  # samples a kind's model has learned before it is trusted


class KindModel:
    """The River models of one device kind: one regression per channel, shared by every device
    of the kind (and pickled with the dataflow's snapshot)."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.models: dict[str, Any] = {}
        self.learned: dict[str, int] = {}
        self.ranges: dict[str, dict[str, tuple[float, float]]] = {}

    def _model(self, channel: str) -> Any:
        m = self.models.get(channel)
        if m is None:
            from river import linear_model

            m = self.models[channel] = linear_model.BayesianLinearRegression(alpha=0.01,
                                                                            beta=1.0)
            self.learned[channel] = 0
        return m

    def predict(self, channel: str, x: dict[str, float]) -> float | None:
        if self.learned.get(channel, 0) == 0:
            return None
        return float(self._model(channel).predict_one(x))

    def trusted(self, channel: str, n: int, x: dict[str, float] | None = None) -> bool:
        """The channel learned ``n`` samples and, given ``x``, has seen features like it (a
        linear model is not trusted to extrapolate: motors seen only at rest say nothing of
        motors at work)."""
        if self.learned.get(channel, 0) < n:
            return False
        if x is None:
            return True
        seen = self.ranges.get(channel, {})
        for key, v in x.items():
            lo, hi = seen.get(key, (v, v))
            margin = 0.1 * (hi - lo)
            if not lo - margin <= v <= hi + margin:
                return False
        return True

    def learn(self, channel: str, x: dict[str, float], y: float) -> None:
        self._model(channel).learn_one(x, y)
        self.learned[channel] += 1
        seen = self.ranges.setdefault(channel, {})
        for key, v in x.items():
            lo, hi = seen.get(key, (v, v))
            seen[key] = (min(lo, v), max(hi, v))


@dataclass
class _Rule:
    """Counters of one rule on one device."""

    hits: int = 0
    clear: int = 0
    firing: bool = False
    onset: float = 0.0


@dataclass
class DeviceState:
    """Compact per-device state: lag filters, residual bias/spread per channel, rule counters,
    and the last values of the temperature sensors (for a stuck sensor)."""

    device_id: str
    n: int = 0
    last_ts: float = 0.0
    lag: dict[str, float] = field(default_factory=dict)
    bias: dict[str, float] = field(default_factory=dict)
    var: dict[str, float] = field(default_factory=dict)
    smooth: dict[str, float] = field(default_factory=dict)
    rules: dict[str, _Rule] = field(default_factory=dict)
    stuck: dict[str, tuple[float, int, float, float, float, float]] = field(default_factory=dict)

    # -- helpers ---------------------------------------------------------------------------
    def _lagged(self, key: str, target: float, dt_min: float, tau: float) -> float:
        prev = self.lag.get(key)
        val = target if prev is None else prev + (target - prev) * (1 - math.exp(-dt_min / tau))
        self.lag[key] = val
        return val

    def _rule(self, name: str, cond: bool, need: int, t: float, resolve_n: int
              ) -> str | None:
        """Advance a rule; ``"firing"`` or ``"resolved"`` when its state changes."""
        r = self.rules.setdefault(name, _Rule())
        if cond:
            r.clear = 0
            if r.hits == 0:
                r.onset = t
            r.hits += 1
            if not r.firing and r.hits >= need:
                r.firing = True
                return "firing"
        else:
            r.hits = 0
            if r.firing:
                r.clear += 1
                if r.clear >= resolve_n:
                    r.firing = False
                    r.clear = 0
                    return "resolved"
        return None

    def _firing(self) -> bool:
        return any(r.firing for r in self.rules.values())

    # -- the step ----------------------------------------------------------------------------
    def step(self, t: DeviceTelemetry, dev: Device, model: KindModel,
             th: DeviceThresholds = DeviceThresholds()) -> list[Event]:
        """Judge one telemetry message of this device; learn from it when nothing is wrong.
        Returns the events that start or end with it."""
        ts = t.ts.timestamp()
        if ts <= self.last_ts:
            return []  # late or duplicate: the state moved on
        dt_min = (ts - self.last_ts) / 60 if self.last_ts else 15.0
        dt_min = min(dt_min, 240.0)
        self.last_ts = ts
        self.n += 1
        m, r = t.metrics, dev.ratings
        conds: dict[str, tuple[bool, int, float, dict[str, Any], str]] = {}
        residuals: dict[str, tuple[float, float]] = {}  # channel -> (residual-bias, z)
        samples: list[tuple[str, dict[str, float], float]] = []
        floors: dict[str, float] = {}

        def channel(name: str, x: dict[str, float], y: float | None, floor: float) -> None:
            if y is None:
                return
            x = x | {"one": 1.0}
            samples.append((name, x, y))
            floors[name] = floor
            pred = model.predict(name, x)
            if pred is None or not model.trusted(name, th.kind_warmup, x) \
                    or self.n <= th.warmup:
                return
            res = y - pred
            b = self.bias.get(name, res)
            sd = max(math.sqrt(self.var.get(name, 0.0)), floor)
            dev_res = res - b
            self.smooth[name] = self.smooth.get(name, dev_res) * 0.9 + 0.1 * dev_res
            residuals[name] = (dev_res, dev_res / sd)

        amps = [m[k] for k in ("current_a", "current_b", "current_c") if k in m]
        rated_i = r.rated_current_a
        if dev.kind is DeviceKind.TRANSFORMER and r.kva and r.voltage_v:
            rated_i = r.kva * 1000 / (math.sqrt(3) * r.voltage_v)
        kind = dev.kind
        amb = m.get("ambient_c")
        if kind is DeviceKind.TRANSFORMER and r.kva:
            kva = abs(m.get("kva", m.get("kw", 0.0) / 0.95))  # apparent power has no sign
            k = kva / r.kva
            conds["device_overload"] = (k > th.overload, th.overload_n, k,
                                        {"load_of_rated": round(k, 3), "kva": round(kva, 1),
                                         "rated_kva": r.kva}, "warning")
            if amb is not None:
                ult = self._lagged("ult", oil_rise_ultimate(k), dt_min, _TAU_OIL)
                x = {"ult": ult / _OIL_RISE, "k2": k * k}
                if "oil_temp_c" in m:
                    channel("oil", x, m["oil_temp_c"] - amb, 1.5)
                if "winding_temp_c" in m:
                    channel("hot", x | {"g": k ** _Y * _HGR / _OIL_RISE},
                            m["winding_temp_c"] - amb, 1.5)
            temps = {"oil": "oil_temp_c", "hot": "winding_temp_c"}
        elif kind is DeviceKind.MOTOR and rated_i:
            i_rel = (sum(amps) / len(amps) / rated_i) if amps else m.get("kw", 0.0) / (
                r.rated_kw or 1.0)
            if amb is not None:
                i2 = self._lagged("i2", i_rel * i_rel, dt_min, _TAU_MOTOR_WDG)
                i1 = self._lagged("i1", i_rel, dt_min, _TAU_MOTOR_BRG)
                if "winding_temp_c" in m:
                    channel("oil", {"i2": i2}, m["winding_temp_c"] - amb, 1.5)
                if "bearing_temp_c" in m:
                    channel("hot", {"i1": i1}, m["bearing_temp_c"] - amb, 1.5)
            temps = {"oil": "winding_temp_c", "hot": "bearing_temp_c"}
        else:
            temps = {}
        running = m.get("kw", 0.0) > th.off_shift_load * (r.power_kw or math.inf)
        if kind is DeviceKind.COMPRESSOR and r.rated_output and r.rated_kw and running \
                and "flow_m3min" in m:
            channel("power", {"out": m["flow_m3min"] / r.rated_output}, m["kw"] / r.rated_kw,
                    0.02)
        if kind is DeviceKind.CHILLER and r.rated_output and r.rated_kw and running \
                and "cooling_kw" in m:
            c = m["cooling_kw"] / r.rated_output
            channel("power", {"out": c, "out_amb": c * (amb or 20.0) / 20.0},
                    m["kw"] / r.rated_kw, 0.02)
        irr = m.get("irradiance_w_m2")
        if kind is DeviceKind.PV_INVERTER and r.rated_kw and irr is not None:
            x = {"irr": irr / 1000.0}
            pred = model.predict("power", x | {"one": 1.0})
            trusted = pred is not None and model.trusted("power", th.kind_warmup)
            expected = (pred if trusted and pred is not None else 0.8 * irr / 1000.0)
            trip = "trip" in t.status or (
                expected > th.trip_min_expected
                and m.get("kw", 0.0) / r.rated_kw < th.trip_ratio * expected)
            conds["inverter_trip"] = (trip, 1 if "trip" in t.status else th.trip_n,
                                      expected, {"kw": m.get("kw"), "irradiance_w_m2": irr,
                                                 "expected_kw": round(expected * r.rated_kw, 2)},
                                      "warning")
            if irr > 50 and not trip:
                channel("power", x, m.get("kw", 0.0) / r.rated_kw, 0.03)
        # overload of equipment by its current
        if kind is not DeviceKind.TRANSFORMER and rated_i and amps:
            k = sum(amps) / len(amps) / rated_i
            conds["device_overload"] = (k > 1.1 * th.overload, th.overload_n, k,
                                        {"current_of_rated": round(k, 3), "mean_current_a":
                                         round(k * rated_i, 1), "rated_current_a": rated_i},
                                        "warning")
        # three-phase unbalance
        if len(amps) == 3 and rated_i:
            mean = sum(amps) / 3
            dev_share = max(abs(a - mean) for a in amps) / mean if mean > 0 else 0.0
            cond = mean > th.unbalance_min_load * rated_i and dev_share > th.unbalance
            conds["phase_unbalance"] = (cond, th.unbalance_n, dev_share,
                                        {"unbalance": round(dev_share, 3),
                                         "current_a": amps[0], "current_b": amps[1],
                                         "current_c": amps[2]}, "warning")
        # temperatures: limits, both sensors above the model (overheating), one alone (sensor)
        if temps:
            limits = {"oil": r.temp_limit_c, "hot": r.hot_temp_limit_c}
            over_limit = any(limits[c] is not None and temps[c] in m
                             and m[temps[c]] > (limits[c] or math.inf) for c in temps)
            hot = [c for c in temps if c in residuals
                   and residuals[c][0] > th.temp_residual_c and residuals[c][1] > 4]
            off = [c for c in temps if c in residuals
                   and abs(residuals[c][0]) > th.temp_residual_c and abs(residuals[c][1]) > 4]
            ok = [c for c in temps if c in residuals and abs(residuals[c][0]) < th.temp_ok_c]
            ev = {f"{temps[c]}": m.get(temps[c]) for c in temps} | {
                f"{temps[c]}_above_model": round(residuals[c][0], 1) for c in residuals
                if c in temps}
            conds["device_overheating"] = (over_limit or len(hot) == len(temps) == 2,
                                           th.temp_n, max((residuals[c][0] for c in hot),
                                                          default=0.0), ev, "critical")
            drift = len(off) == 1 and len(ok) == 1
            stuck_sensor = self._stuck(m, temps, th)
            conds["sensor_fault"] = (
                drift or stuck_sensor is not None,
                1 if stuck_sensor is not None else th.temp_n,
                abs(residuals[off[0]][0]) if drift else float(th.stuck_n),
                ev | {"sensor": stuck_sensor or (temps[off[0]] if drift else None),
                      "mode": "stuck" if stuck_sensor else "drift"}, "warning")
        # running outside the shift
        if dev.shift is not None and r.power_kw:
            outside = dev.shift.hours_outside(t.ts)
            conds["off_shift_running"] = (running and outside > 0, th.off_shift_n,
                                          m.get("kw", 0.0) / r.power_kw,
                                          {"kw": m.get("kw"), "hours_outside_shift":
                                           round(outside, 2), "shift": f"{dev.shift.start_h:g}-"
                                           f"{dev.shift.end_h:g} h"}, "warning")
        # compressor wear: power above the kind's model at the same output, sustained
        if kind is DeviceKind.COMPRESSOR and "power" in residuals and running:
            s = self.smooth.get("power", 0.0)
            conds["compressor_wear"] = (s > th.wear_residual, th.wear_n, s,
                                        {"power_above_model_of_rated": round(s, 3),
                                         "flow_m3min": m.get("flow_m3min"),
                                         "kw": m.get("kw")}, "warning")

        events: list[Event] = []
        for name, (cond, need, score, evidence, sev) in conds.items():
            change = self._rule(name, cond, need, ts, th.resolve_n)
            if change is not None:
                events.append(self._event(name, change, dev, t, score, evidence, sev))
        # learn only from what looks normal: the kind's model, then this device's residual
        if not self._firing():
            for name, x, y in samples:
                rz = residuals.get(name)
                if rz is not None and (abs(rz[1]) > 4 or abs(rz[0]) > 2 * floors[name]):
                    continue
                pred = model.predict(name, x)
                if pred is not None and model.trusted(name, th.kind_warmup):
                    res = y - pred
                    b = self.bias.get(name)
                    if b is None:
                        self.bias[name], self.var[name] = res, 0.0
                    else:
                        a, d = 0.005, res - b
                        self.bias[name] = b + a * d
                        self.var[name] = (1 - a) * (self.var[name] + a * d * d)
                model.learn(name, x, y)
        return events

    def _stuck(self, m: dict[str, float], temps: dict[str, str], th: DeviceThresholds
               ) -> str | None:
        """A temperature sensor that repeats its value while load or ambient moved."""
        load = m.get("kva", m.get("kw", 0.0))
        amb = m.get("ambient_c", 0.0)
        out = None
        for c in ("oil", "hot"):
            key = temps.get(c)
            if key is None or key not in m:
                continue
            v = m[key]
            prev = self.stuck.get(key)
            if prev is not None and prev[0] == v:
                lo, hi = min(prev[2], load), max(prev[3], load)
                alo, ahi = min(prev[4], amb), max(prev[5], amb)
                self.stuck[key] = (v, prev[1] + 1, lo, hi, alo, ahi)
                moved = (hi - lo) > 0.05 * max(abs(hi), 1e-9) or (ahi - alo) >= 1.0
                if prev[1] + 1 >= th.stuck_n and moved:
                    out = key
            else:
                self.stuck[key] = (v, 1, load, load, amb, amb)
        return out

    def _event(self, etype: str, state: str, dev: Device, t: DeviceTelemetry, score: float,
               evidence: dict[str, Any], severity: str) -> Event:
        r = self.rules[etype]
        onset = datetime.fromtimestamp(r.onset, t.ts.tzinfo) if state == "firing" else t.ts
        what = {
            "device_overload": "loaded above its rating",
            "device_overheating": "overheating (temperatures above its thermal model)",
            "phase_unbalance": "three-phase current unbalance",
            "sensor_fault": "a temperature sensor disagrees with the others",
            "off_shift_running": "running outside its shift",
            "inverter_trip": "inverter produces nothing in sunshine",
            "compressor_wear": "draws more power for the same output (wear)",
        }[etype]
        summary = (f"{dev.kind.value} {dev.id}: {what}" if state == "firing"
                   else f"{dev.kind.value} {dev.id}: back to normal ({etype})")
        clean = {k: (round(v, 3) if isinstance(v, float) else v) for k, v in evidence.items()
                 if v is None or isinstance(v, str | int | float | bool)}
        return Event(
            meter_id=dev.id, type=etype,
            severity=Severity(severity) if state == "firing" else Severity.INFO,
            score=round(float(score), 4) if math.isfinite(score) else 0.0,
            onset=onset, raised_at=t.ts, state=state, summary=summary,
            evidence={"device_id": dev.id, "device_kind": dev.kind.value, "site": t.site}
            | clean,
            customer_id=dev.customer, grid_cell=dev.grid_cell)

