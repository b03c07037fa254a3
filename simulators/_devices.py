"""Device telemetry of a simulated fleet, consistent with its meters, with labelled faults.

* **Transformers**, one per grid cell, feed every meter of the cell: their active power is the
  sum of the cell's metered power plus 2 % losses, their apparent power that over a power factor
  of 0.95. Temperatures follow the exponential thermal model of IEC 60076-7 (top-oil rise
  ``Δθ_or·((1+R·K²)/(1+R))^x`` reached with time constant ``τ_o``; hot-spot gradient
  ``H·g_r·K^y`` on top), with parameters typical of oil-immersed ONAN distribution
  transformers (R = 5, x = 0.8, y = 1.6, Δθ_or = 55 K, H·g_r = 23 K, τ_o = 180 min).
* **Equipment** of an industrial site (motors, compressors, chillers, furnaces) is on the
  site's first meter: while the site is in its shift each machine draws a fixed share of that
  meter's power; outside the shift it is off. A compressor's output (air flow) follows its
  power; a chiller's cooling follows its power times a COP that falls with the outdoor heat.
* **PV inverters** follow the fleet's sun and sky clearness.

Faults (``DeviceSpec.faults``): a neighbouring feeder switched onto a transformer (overload), a
failed transformer cooling (overheating), three-phase unbalance, a temperature sensor stuck or
drifting, equipment running outside its shift, an inverter tripping in sunshine, a compressor's
power rising at constant output (wear). Each has a :class:`~gridwatch.simulators.Label` with
the device id as ``meter_id`` and the detector's event type as ``type``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from gridwatch._schemas import CustomerClass, DeviceTelemetry, Reading
from gridwatch.simulators._anomalies import Label
from gridwatch.simulators._device_spec import FAULT_EVENT, DeviceSpec
from gridwatch.simulators._engine import Block, Simulation, iso_z
from gridwatch.simulators._load import SHIFT_HOURS
from gridwatch.simulators._population import _PROFILE_PEAK
from gridwatch.simulators._targets import DeviceBatch, Row

__all__ = ["DeviceSimulation", "SimDevice", "thermal_oil_rise", "wire_dict"]

#: Standard distribution-transformer sizes, kVA (IEC 60076 preferred ratings).
TX_SIZES = (50, 100, 160, 250, 315, 400, 500, 630, 800, 1000, 1250, 1600, 2000, 2500, 3150)
#: IEC 60076-7 style thermal parameters of an ONAN distribution transformer.
R_LOSS, X_OIL, Y_WDG, OIL_RISE_K, HOTSPOT_GRAD_K, TAU_OIL_MIN = 5.0, 0.8, 1.6, 55.0, 23.0, 180.0
#: Motor winding rise at rated current and its time constant; bearing rise.
MOTOR_RISE_K, MOTOR_TAU_MIN, BEARING_RISE_K, BEARING_TAU_MIN = 75.0, 40.0, 30.0, 60.0
#: Share of a customer class's yearly peaks that coincide at the transformer's peak.
_DIVERSITY = {CustomerClass.INDUSTRIAL: 1.0, CustomerClass.COMMERCIAL: 0.8,
              CustomerClass.RESIDENTIAL: 0.5, CustomerClass.AGRICULTURAL: 0.6}
_EQUIPMENT = ("motor", "compressor", "chiller", "furnace")
#: Kinds each fault can happen to.
ELIGIBLE = {
    "overload": ("transformer",), "load_growth": ("transformer",), "overheating": ("transformer",),
    "unbalance": ("transformer", "motor", "compressor"),
    "sensor_stuck": ("transformer", "motor"), "sensor_drift": ("transformer", "motor"),
    "off_shift": _EQUIPMENT, "inverter_trip": ("pv_inverter",),
    "compressor_wear": ("compressor",),
}
#: Fault durations in hours (shortest, longest).
DURATION_H = {
    "overload": (2, 6), "load_growth": (72, 120), "overheating": (6, 24), "unbalance": (4, 24),
    "sensor_stuck": (6, 24), "sensor_drift": (12, 36), "off_shift": (1.5, 4),
    "inverter_trip": (1, 3), "compressor_wear": (48, 96),
}


def wire_dict(t: DeviceTelemetry) -> dict[str, Any]:
    """Device telemetry as its JSON message (what the collector decodes)."""
    return t.model_dump(mode="json", exclude_defaults=True) | {"device_id": t.device_id,
                                                               "ts": iso_z(t.ts)}


def thermal_oil_rise(k: float) -> float:
    """Ultimate top-oil rise (K) over ambient at load factor ``k`` (IEC 60076-7 form)."""
    return OIL_RISE_K * ((1 + R_LOSS * k * k) / (1 + R_LOSS)) ** X_OIL


@dataclass
class SimDevice:
    """One simulated device with its registry facts and simulation parameters."""

    device_id: str
    kind: str
    site: str  # the grid cell of a transformer, the customer of equipment
    grid_cell: str
    customer_id: str | None
    meters: tuple[int, ...]  # meter indices: a transformer's cell, the equipment's site meter
    ratings: dict[str, float]
    shift: dict[str, Any] | None = None
    share: float = 0.0  # equipment: share of the site meter's power while in shift
    profile: str = ""
    asym: tuple[float, float, float] = (1.0, 1.0, 1.0)
    state: dict[str, float] = field(default_factory=dict)

    def registry_entry(self) -> dict[str, Any]:
        """The device as a ``devices:`` entry of the registry."""
        d: dict[str, Any] = {"id": self.device_id, "kind": self.kind,
                             "ratings": dict(self.ratings)}
        if self.kind == "transformer":
            d["grid_cell"] = self.grid_cell
        else:
            d["customer"] = self.customer_id
        if self.shift is not None:
            d["shift"] = dict(self.shift)
        return d


@dataclass
class _Fault:
    shape: str
    dev: int
    k0: int
    k1: int
    params: dict[str, Any]


class DeviceSimulation:
    """The devices of a fleet simulation, their telemetry and fault labels.

    ``stream()`` yields every reading of the meter simulation and, after each interval's
    readings, that interval's device telemetry: one time-ordered stream for the dataflow."""

    def __init__(self, sim: Simulation, spec: DeviceSpec | None = None) -> None:
        self.sim = sim
        self.fleet = sim.fleet
        self.spec = spec or sim.fleet.devices or DeviceSpec()
        self.rng = np.random.default_rng([sim.seed, 11])
        self.devices = self._build()
        self.labels: list[Label]
        self._faults: list[_Fault]
        self.labels, self._faults = self._plan()
        self._restart()

    def _restart(self) -> None:
        self._trng = np.random.default_rng([self.sim.seed, 12])
        for dev in self.devices:
            dev.state.clear()

    # -- set-up ------------------------------------------------------------------------------
    def _build(self) -> list[SimDevice]:
        rng, ms, f = self.rng, self.sim.meters, self.fleet
        out: list[SimDevice] = []
        if self.spec.transformers:
            by_cell: dict[str, list[int]] = {}
            for m in ms:
                by_cell.setdefault(m.grid_cell, []).append(m.index)
            for cell in sorted(by_cell):
                idx = by_cell[cell]
                # the meters' yearly peaks do not all coincide (industrial shifts do): a
                # diversified peak, with 30 % headroom of the transformer over it
                peak = sum(_DIVERSITY[ms[i].customer_class] * ms[i].annual_kwh / 8760
                           * _PROFILE_PEAK[ms[i].profile] for i in idx) * 1.15 / 0.95
                # beyond the largest unit: several in parallel, counted as one bank
                kva = next((s for s in TX_SIZES if s >= 1.3 * peak),
                           TX_SIZES[-1] * math.ceil(1.3 * peak / TX_SIZES[-1]))
                out.append(SimDevice(
                    f"tx-{cell}", "transformer", cell, cell, None, tuple(idx),
                    {"kva": float(kva), "voltage_v": 400.0, "temp_limit_c": 105.0,
                     "hot_temp_limit_c": 120.0},
                    asym=tuple(1.0 + rng.uniform(-0.06, 0.06, 3))))
        sites: dict[str, list[int]] = {}
        for m in ms:
            if m.customer_class is CustomerClass.INDUSTRIAL:
                sites.setdefault(m.customer_id, []).append(m.index)
        for cust in sorted(sites):
            meter = ms[sites[cust][0]]
            shifts = int(meter.profile[3])
            lo, hi = SHIFT_HOURS[shifts]
            shift = {"start_h": lo, "end_h": hi, "weekends": meter.profile.endswith("w"),
                     "timezone": f.timezone}
            in_shift_kw = meter.annual_kwh / 8760 * _PROFILE_PEAK[meter.profile] / 1.1
            n = self.spec.equipment_per_site
            shares: np.ndarray | list[float] = rng.dirichlet(np.ones(n)) * 0.6 if n else []
            for j in range(n):
                kind = _EQUIPMENT[j % len(_EQUIPMENT)]
                share = float(shares[j])
                loading = float(rng.uniform(0.55, 0.8))
                rated_kw = round(max(share * in_shift_kw / loading, 1.0), 1)
                ratings: dict[str, float] = {"rated_kw": rated_kw}
                if kind in ("motor", "compressor", "chiller"):
                    ratings["rated_current_a"] = round(rated_kw * 1000 / (
                        math.sqrt(3) * 400 * 0.86), 1)
                    ratings["voltage_v"] = 400.0
                if kind == "motor":
                    ratings["temp_limit_c"] = 155.0  # insulation class F
                    ratings["hot_temp_limit_c"] = 95.0
                if kind == "compressor":
                    ratings["rated_output"] = round(rated_kw / 6.5, 2)  # m³/min at ~6.5 kW each
                if kind == "chiller":
                    ratings["rated_output"] = round(rated_kw * 5.0, 1)  # cooling kW, COP 5
                if kind == "furnace":
                    ratings["temp_limit_c"] = 1100.0
                out.append(SimDevice(
                    f"{kind[:3]}-{cust}-{j}", kind, cust, meter.grid_cell, cust,
                    (meter.index,), ratings, shift=shift, share=share, profile=meter.profile,
                    asym=tuple(1.0 + rng.uniform(-0.03, 0.03, 3))))
            if rng.random() < self.spec.pv_share:
                kwp = round(float(in_shift_kw * rng.uniform(0.2, 0.5)), 1)
                out.append(SimDevice(f"pv-{cust}", "pv_inverter", cust, meter.grid_cell, cust,
                                     (meter.index,), {"rated_kw": max(kwp, 5.0)}))
        return out

    def registry_devices(self) -> list[dict[str, Any]]:
        """The ``devices:`` section of the fleet's registry."""
        return [d.registry_entry() for d in self.devices]

    # -- faults ------------------------------------------------------------------------------
    def _local(self, k: int) -> datetime:
        f = self.fleet
        return (f.start + k * f.step).astimezone(self.sim.tz).replace(tzinfo=None)

    def _in_shift(self, dev: SimDevice, k: int) -> bool:
        """The site is in its shift when its profile is above half-way between its base and its
        working level (this follows ramps, weekends and public holidays)."""
        f = self.fleet
        period = (f.start + k * f.step - f.step).astimezone(self.sim.tz).replace(tzinfo=None)
        level = float(self.sim.table.mean_over(period, f.interval_min)[
            self.sim.prof_idx[dev.meters[0]]])
        return level > self._half(dev.profile)

    def _half(self, profile: str) -> float:
        prof = self.sim.table.profile(profile)
        return float(prof.min() + prof.max()) / 2

    def _plan(self) -> tuple[list[Label], list[_Fault]]:
        f, rng = self.fleet, self.rng
        step_h = f.interval_min / 60
        n_int = f.n_intervals
        k_min = int(self.spec.warmup / f.step)
        busy: dict[int, list[tuple[int, int]]] = {}
        labels: list[Label] = []
        faults: list[_Fault] = []
        for shape in FAULT_EVENT:
            cands = [j for j, d in enumerate(self.devices) if d.kind in ELIGIBLE[shape]]
            for _ in range(self.spec.faults.get(shape, 0)):
                for _attempt in range(200):
                    if not cands or k_min >= n_int:
                        break
                    j = cands[int(rng.integers(len(cands)))]
                    dev = self.devices[j]
                    lo, hi = DURATION_H[shape]
                    dur = max(2, round(float(rng.uniform(lo, hi)) / step_h))
                    k0 = int(rng.integers(k_min, n_int))
                    # equipment shows unbalance only while it runs: a span inside the shift
                    if shape == "unbalance" and dev.kind != "transformer" and not all(
                            self._in_shift(dev, k) for k in range(k0, min(k0 + dur, n_int))):
                        continue
                    if shape == "off_shift":
                        # a whole run outside the shift, at least an hour clear of its edges
                        span = range(k0 - round(1 / step_h), k0 + dur + round(1 / step_h))
                        if any(self._in_shift(dev, k) for k in span if 0 <= k < n_int):
                            continue
                    if shape == "inverter_trip":
                        local = self._local(k0)
                        if not 10 <= local.hour < 13 or self._sun(k0) < 0.25:
                            continue
                    k1 = k0 + dur
                    if k1 > n_int:
                        continue  # a fault runs its course inside the simulated period
                    if shape == "compressor_wear" and sum(
                            self._in_shift(dev, k) for k in range((k0 + k1) // 2, k1)) < 16:
                        continue  # wear shows only while it runs: four hours at least
                    if all(not (k0 < b1 + 8 and b0 < k1 + 8) for b0, b1 in busy.get(j, ())):
                        break
                else:
                    continue
                if not cands or k_min >= n_int:
                    break
                busy.setdefault(j, []).append((k0, k1))
                params = self._params(shape, dev)
                faults.append(_Fault(shape, j, k0, k1, params))
                labels.append(Label(
                    meter_id=dev.device_id, type=FAULT_EVENT[shape], shape=shape,
                    start=f.start + k0 * f.step, end=f.start + k1 * f.step,
                    customer_id=dev.customer_id, grid_cell=dev.grid_cell,
                    params={"device_kind": dev.kind} | params))
        order = sorted(range(len(labels)), key=lambda i: (labels[i].start, labels[i].meter_id))
        return [labels[i] for i in order], [faults[i] for i in order]

    def _params(self, shape: str, dev: SimDevice) -> dict[str, Any]:
        u = lambda lo, hi: round(float(self.rng.uniform(lo, hi)), 3)  # noqa: E731
        match shape:
            case "overload":
                return {"load_of_rated": u(1.15, 1.4)}
            case "load_growth":
                return {"peak_of_rated_at_end": 1.2}
            case "overheating":
                return {"cooling_factor": u(1.5, 1.9)}
            case "unbalance":
                return {"phase": int(self.rng.integers(3)), "factor": u(1.35, 1.6)}
            case "sensor_stuck" | "sensor_drift":
                sensor = "oil_temp_c" if dev.kind == "transformer" else "winding_temp_c"
                out: dict[str, Any] = {"sensor": sensor}
                if shape == "sensor_drift":
                    out["c_per_h"] = u(1.0, 2.5) * (1 if self.rng.random() < 0.5 else -1)
                return out
            case "off_shift":
                return {"loading": u(0.5, 0.8)}
            case "compressor_wear":
                return {"extra_power": u(0.18, 0.3)}
        return {}

    def _sun(self, k: int) -> float:
        """PV output per kWp at interval ``k`` (the fleet's sun and clearness)."""
        f = self.fleet
        period = (f.start + k * f.step - f.step).astimezone(self.sim.tz)
        solar = period.replace(tzinfo=None) - (period.dst() or timedelta(0)) + f.step / 2
        return self.sim.climate.pv_per_kwp(solar)

    # -- data --------------------------------------------------------------------------------
    def telemetry(self, block: Block) -> list[DeviceTelemetry]:
        """Every device's telemetry for one interval of the meter simulation."""
        f, rng = self.fleet, self._trng
        k, dt_min = block.k, float(f.interval_min)
        local = self._local(k)
        ambient, _ = self.sim.climate.temperature_c(local)
        sun = self._sun(k)
        active = {(x.dev, x.shape): x for x in self._faults if x.k0 <= k < x.k1}
        out: list[DeviceTelemetry] = []
        construct = DeviceTelemetry.model_construct
        for j, dev in enumerate(self.devices):
            faults = {shape: x for (jj, shape), x in active.items() if jj == j}
            metrics, status = self._device_step(dev, block, faults, ambient, sun, dt_min, rng)
            out.append(construct(device_id=dev.device_id, site=dev.site, ts=block.ts,
                                 kind=dev.kind, metrics=metrics, status=status))
        return out

    def _device_step(self, dev: SimDevice, block: Block, faults: dict[str, _Fault],
                     ambient: float, sun: float, dt_min: float, rng: np.random.Generator
                     ) -> tuple[dict[str, float], tuple[str, ...]]:
        r, st = dev.ratings, dev.state
        status: tuple[str, ...] = ()
        m: dict[str, float] = {}
        if dev.kind == "pv_inverter":
            irr = 1000.0 * sun / 0.8 * float(rng.normal(1.0, 0.02))
            kw = r["rated_kw"] * sun * float(rng.normal(1.0, 0.015))
            if "inverter_trip" in faults:
                kw, status = 0.0, ("trip",)
            m = {"kw": round(max(kw, 0.0), 2), "irradiance_w_m2": round(max(irr, 0.0), 1),
                 "module_temp_c": round(ambient + 0.03 * max(irr, 0.0), 1)}
            return m, status
        if dev.kind == "transformer":
            kw = float(block.kw[list(dev.meters)].sum()) * 1.02
            if "load_growth" in faults:
                # new connections or a heat wave: load grows until the daily peak passes the
                # rating by about a fifth at the end of the span (foreseeable, unlike a switch)
                x = faults["load_growth"]
                if block.k == x.k0 or "growth" not in st:
                    st["growth"] = max(0.1, 1.2 * r["kva"] * 0.95 / max(st.get("peak", 1.0),
                                                                         1.0) - 1)
                kw *= 1 + st["growth"] * (block.k - x.k0 + 1) / (x.k1 - x.k0)
            else:
                st.pop("growth", None)
                st["peak"] = max(abs(kw), st.get("peak", abs(kw)) * 0.998)
            if "overload" in faults:
                target = faults["overload"].params["load_of_rated"] * r["kva"] * 0.95
                kw = max(kw, target * float(rng.normal(1.0, 0.01)))
            kva = abs(kw) / 0.95
            load = kva / r["kva"]
            cool = faults["overheating"].params["cooling_factor"] if "overheating" in faults \
                else 1.0
            ult = thermal_oil_rise(load) * cool
            rise = st.get("rise", ult)
            rise += (ult - rise) * (1 - math.exp(-dt_min / TAU_OIL_MIN))
            st["rise"] = rise
            oil = ambient + rise + float(rng.normal(0, 0.3))
            wdg = oil + HOTSPOT_GRAD_K * load ** Y_WDG + float(rng.normal(0, 0.3))
            amps = kva * 1000 / (math.sqrt(3) * r["voltage_v"])
            m = {"kw": round(kw, 2), "kva": round(kva, 2), "load_pct": round(100 * load, 2),
                 "oil_temp_c": oil, "winding_temp_c": wdg, "ambient_c": round(ambient, 1)}
            temps: tuple[str, ...] = ("oil_temp_c", "winding_temp_c")
        else:
            site_kw = max(float(block.kw[dev.meters[0]]), 0.0)
            running = self._in_shift(dev, block.k)
            if "off_shift" in faults:
                kw = faults["off_shift"].params["loading"] * r["rated_kw"]
                running = True
            elif running:
                kw = dev.share * site_kw
            else:
                kw = 0.0
            kw = min(kw * float(rng.normal(1.0, 0.02)), r["rated_kw"]) if running else 0.0
            load = kw / r["rated_kw"]
            m = {"kw": 0.0, "running": float(running), "ambient_c": round(ambient, 1)}
            temps = ()
            if dev.kind == "compressor":
                # power = 25 % unloaded + 75 % × output share; wear raises power, not output
                frac = max(0.0, (load - 0.25) / 0.75) if running else 0.0
                m["flow_m3min"] = round(frac * r["rated_output"], 3)
                if "compressor_wear" in faults:
                    x = faults["compressor_wear"]
                    grow = (block.k - x.k0 + 1) / (x.k1 - x.k0)
                    kw *= 1 + x.params["extra_power"] * grow
                    load = kw / r["rated_kw"]
                m["pressure_bar"] = round(7.0 + float(rng.normal(0, 0.05)), 2) if running \
                    else 0.0
            elif dev.kind == "chiller":
                cop = max(2.5, 5.0 - 0.06 * (ambient - 20.0))
                m["cooling_kw"] = round(kw * cop, 2)
            elif dev.kind == "furnace":
                prev = st.get("chamber", ambient)
                target = 850.0 if running else ambient
                prev += (target - prev) * (1 - math.exp(-dt_min / 90.0))
                st["chamber"] = prev
                m["chamber_temp_c"] = round(prev + float(rng.normal(0, 1.0)), 1)
            elif dev.kind == "motor":
                i_rel = load
                for key, gain, tau, power in (("wdg", MOTOR_RISE_K, MOTOR_TAU_MIN, 2.0),
                                              ("brg", BEARING_RISE_K, BEARING_TAU_MIN, 1.0)):
                    ult = gain * i_rel ** power
                    prev = st.get(key, ult)
                    prev += (ult - prev) * (1 - math.exp(-dt_min / tau))
                    st[key] = prev
                m["winding_temp_c"] = ambient + st["wdg"] + float(rng.normal(0, 0.3))
                m["bearing_temp_c"] = ambient + st["brg"] + float(rng.normal(0, 0.3))
                temps = ("winding_temp_c", "bearing_temp_c")
            m["kw"] = round(kw, 2)
        if "current_a" not in m and dev.kind != "furnace" and (
                dev.kind == "transformer" or "rated_current_a" in r):
            if dev.kind == "transformer":
                amps = m["kva"] * 1000 / (math.sqrt(3) * r["voltage_v"])
            else:
                amps = m["kw"] * 1000 / (math.sqrt(3) * r["voltage_v"] * 0.86)
            phases = np.array(dev.asym) * amps * rng.normal(1.0, 0.01, 3)
            if "unbalance" in faults:
                p = faults["unbalance"].params
                phases[p["phase"]] *= p["factor"]
                phases[(p["phase"] + 1) % 3] *= 0.75
            for name, v in zip(("current_a", "current_b", "current_c"), phases, strict=True):
                m[name] = round(max(float(v), 0.0), 1)
        for sensor in temps:
            value = m[sensor]
            for shape in ("sensor_stuck", "sensor_drift"):
                sf = faults.get(shape)
                if sf is None or sf.params["sensor"] != sensor:
                    continue
                if shape == "sensor_stuck":
                    held = st.setdefault(f"stuck_{sensor}_{sf.k0}", round(value, 1))
                    value = held
                else:
                    value += sf.params["c_per_h"] * (block.k - sf.k0 + 1) * dt_min / 60
            m[sensor] = round(value, 1)
        return m, status

    def stream(self) -> Iterator[Reading | DeviceTelemetry]:
        """Readings and device telemetry, interval by interval, in event-time order."""
        self._restart()
        for block in self.sim.blocks():
            yield from self.sim.block_readings(block)
            yield from self.telemetry(block)

    def telemetry_only(self) -> Iterator[DeviceTelemetry]:
        """Only the device telemetry (the meters are still simulated: the devices follow them)."""
        self._restart()
        for block in self.sim.blocks():
            yield from self.telemetry(block)

    def write_files(self, readings: Path, registry: Path | None = None,
                    labels: Path | None = None) -> int:
        """Write the stream as JSONL (what ``gridwatch replay`` and the file source read: a
        line with ``device_id`` is device telemetry), the registry with its ``devices:``
        section, and the device-fault labels. Returns the lines written."""
        import json

        import yaml

        from gridwatch.simulators._anomalies import write_labels
        from gridwatch.simulators._registry import registry_dict

        readings.parent.mkdir(parents=True, exist_ok=True)
        n = 0
        with readings.open("w", encoding="utf-8") as fh:
            for item in self.stream():
                d = item.to_json_dict() if isinstance(item, Reading) else wire_dict(item)
                fh.write(json.dumps(d, separators=(",", ":")) + "\n")
                n += 1
        if registry is not None:
            data = registry_dict(self.sim.meters) | {"devices": self.registry_devices()}
            registry.parent.mkdir(parents=True, exist_ok=True)
            registry.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
        if labels is not None:
            write_labels(self.labels, labels)
        return n

    def mqtt_messages(self, prefix: str = "devices") -> Iterator[tuple[datetime,
                                                                       list[tuple[str, bytes]]]]:
        """Per interval: the device telemetry as MQTT messages, ``(topic, JSON payload)`` on
        ``<prefix>/<site>/<device>/telemetry`` (the collector's ``topics.telemetry``)."""
        import json

        for block in self._blocks_with_restart():
            msgs = []
            for t in self.telemetry(block):
                msgs.append((f"{prefix}/{t.site}/{t.device_id}/telemetry",
                             json.dumps(wire_dict(t), separators=(",", ":")).encode()))
            yield block.ts, msgs

    def chunks(self, form: str = "json") -> Iterator[tuple[datetime, list[Row] | DeviceBatch]]:
        """The targets' chunks of the meters (``Simulation.chunks``) with, after each
        interval's readings, that interval's device telemetry as a :class:`DeviceBatch`; one
        pass over the meter simulation. ``form`` as in ``Simulation.chunks``."""
        import json

        for block in self._blocks_with_restart():
            yield block.ts, self.sim.block_rows(block, form)
            batch = DeviceBatch()
            for t in self.telemetry(block):
                d = wire_dict(t)
                batch.append((t.site, t.device_id,
                              json.dumps(d, separators=(",", ":")) if form == "json" else d))
            yield block.ts, batch

    def _blocks_with_restart(self) -> Iterator[Block]:
        self._restart()
        yield from self.sim.blocks()
