"""Generate a fleet's readings interval by interval, vectorised over meters with numpy.

Per interval and meter: ``kW = profile × annual_kWh/8760 × day level × temperature factor ×
noise − PV``; then the injected anomalies; then voltage (cell offset, drop with load, noise,
clipped to the configured band), power factor (lower at light load, clipped to its band) and
current ``I = |P| / (phases × V × pf)``; the import and export registers integrate the metered
power. Memory is O(meters): nothing is kept across intervals except registers and state.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np

from gridwatch._schemas import CustomerClass, MeterStatus, Reading
from gridwatch.simulators._anomalies import Injection, Label, plan_anomalies
from gridwatch.simulators._load import PROFILE_NAMES, Climate, ProfileTable, temperature_factor
from gridwatch.simulators._population import build_meters
from gridwatch.simulators._spec import FleetSpec, SimMeter
from gridwatch.simulators._targets import Row

_FAIL = (MeterStatus.POWER_FAIL,)
_RESTORED = (MeterStatus.POWER_RESTORED,)
_REVERSE = (MeterStatus.REVERSE_FLOW,)
#: Spikes and level shifts stop at this share of the contracted capacity (in kW at full-load pf).
_MAX_ABNORMAL = 0.8
_EXP = ',"export_kwh":'
_PF = ',"pf":'


def iso_z(ts: datetime) -> str:
    """``2024-03-04T00:15:00Z``: the wire form of a UTC timestamp."""
    return ts.isoformat().replace("+00:00", "Z")


@dataclass
class Block:
    """One reading interval of the whole fleet. Arrays are indexed by meter index and already
    rounded to what a meter reports; ``present`` lists the meters that report."""

    k: int
    ts: datetime
    present: np.ndarray
    kw: np.ndarray
    kwh: np.ndarray
    export_kwh: np.ndarray
    voltage: np.ndarray  # (meters, 3); phases beyond a meter's own are ignored
    current: np.ndarray  # (meters, 3)
    pf: np.ndarray  # NaN: no power factor (no power)
    status: dict[int, tuple[MeterStatus, ...]]
    lag_s: dict[int, int]

    def __len__(self) -> int:
        return len(self.present)


class Simulation:
    """A fleet with a seed: its meters, its anomaly plan and labels, and its data.

    ``blocks()`` may be called more than once and always yields the same data."""

    def __init__(self, fleet: FleetSpec, seed: int | None = None,
                 meters: list[SimMeter] | None = None) -> None:
        self.fleet = fleet
        self.seed = fleet.seed if seed is None else seed
        self.meters = meters if meters is not None else build_meters(fleet, self.seed)
        self.labels: list[Label]
        self.plan: list[Injection]
        self.labels, self.plan = plan_anomalies(fleet, self.meters, self.seed)
        self._static()

    # -- set-up ------------------------------------------------------------------------------

    def _static(self) -> None:
        f, ms = self.fleet, self.meters
        n = len(ms)
        spec = {k: f.customers[k] for k in f.customers}
        ind = spec.get(CustomerClass.INDUSTRIAL)
        self.table = ProfileTable.for_fleet(f, ind.base_load if ind else 0.25)
        self.tz = ZoneInfo(f.timezone)
        self.prof_idx = np.array([PROFILE_NAMES.index(m.profile) for m in ms], dtype=np.int64)
        self.scale = np.array([m.annual_kwh / 8760.0 for m in ms])
        self.noise = np.array([spec[m.customer_class].noise for m in ms])
        self.daily_noise = np.array([spec[m.customer_class].daily_noise for m in ms])
        self.heating = np.array([spec[m.customer_class].heating_per_c for m in ms])
        self.cooling = np.array([spec[m.customer_class].cooling_per_c for m in ms])
        self.pv_kwp = np.array([m.pv_kwp for m in ms])
        self.pf_full = np.array([m.pf_full for m in ms])
        self.phases = np.array([m.phases for m in ms], dtype=np.int64)
        self.vn = np.array([m.nominal_voltage_v for m in ms])
        self.kva = np.array([m.contracted_kva for m in ms])
        self.cap_kw = self.kva * self.pf_full
        cells = sorted({m.grid_cell for m in ms})
        cell_no = {c: j for j, c in enumerate(cells)}
        self.cell_idx = np.array([cell_no[m.grid_cell] for m in ms], dtype=np.int64)
        self.export_meter = np.array([m.has_export for m in ms])
        rng = np.random.default_rng([self.seed, 4])
        v = f.voltage
        self.cell_offset = np.clip(rng.normal(0.0, v.cell_spread, len(cells)),
                                   -2 * v.cell_spread, 2 * v.cell_spread)
        annual = np.array([m.annual_kwh for m in ms])
        self.register0 = np.round(annual * rng.uniform(0.2, 6.0, n), 3)
        self.pv_site = rng.uniform(0.85, 1.0, n)  # orientation and shading per roof
        self.climate = Climate(f, rng)
        self.by_start: dict[int, list[Injection]] = {}
        for inj in self.plan:
            self.by_start.setdefault(inj.k0, []).append(inj)
        self.ids = [m.meter_id for m in ms]
        #: each meter's (region, concentrator, id): the targets' routing of its rows
        self._route = [(m.region, m.concentrator_id, m.meter_id) for m in ms]
        self._prefix: list[str] | None = None
        self.n = n

    # -- data --------------------------------------------------------------------------------

    def blocks(self) -> Iterator[Block]:
        """Every interval of the simulated period, in time order."""
        f = self.fleet
        n = self.n
        rng = np.random.default_rng([self.seed, 3])
        step, minutes = f.step, f.interval_min
        dt_h = minutes / 60.0
        lo_v, hi_v = f.voltage.band
        lo_pf, hi_pf = f.power_factor.band
        acc_imp = self.register0.copy()
        acc_exp = np.zeros(n)
        day_factor = np.ones(n)
        current_day = None
        active: list[Injection] = []
        restore: set[int] = set()
        for k in range(f.n_intervals):
            ts = f.start + k * step
            period = (ts - step).astimezone(self.tz)
            local = period.replace(tzinfo=None)
            if local.date() != current_day:
                current_day = local.date()
                z = rng.standard_normal(n)
                day_factor = np.exp(self.daily_noise * z - self.daily_noise ** 2 / 2)
            z_kw = rng.standard_normal(n)
            z_v = rng.standard_normal((n, 3))
            z_pf = rng.standard_normal(n)
            base = self.table.mean_over(local, minutes)[self.prof_idx]
            temp, normal = self.climate.temperature_c(local)
            tf = temperature_factor(temp, normal, self.heating, self.cooling)
            noise = np.maximum(1.0 + self.noise * z_kw, 0.05)
            load = base * self.scale * day_factor * tf * noise
            solar = local - (period.dst() or timedelta(0)) + step / 2
            pv = self.pv_kwp * self.pv_site * self.climate.pv_per_kwp(solar)

            ended = [a for a in active if a.k1 <= k]
            for a in ended:
                if a.shape in ("outage", "feeder_outage"):
                    restore.update(a.idx.tolist())
            active = [a for a in active if a.k1 > k] + self.by_start.get(k, [])
            down = np.zeros(n, dtype=bool)
            for a in active:
                i, p = a.idx, a.params
                if a.shape in ("spike", "level_shift"):
                    base_i = np.maximum(load[i], self.scale[i]) if a.shape == "spike" else load[i]
                    # abnormal, but not an over-capacity episode: that has its own label
                    load[i] = np.minimum(base_i * p["factor"],
                                         np.maximum(load[i], _MAX_ABNORMAL * self.cap_kw[i]))
                elif a.shape == "drop":
                    load[i] *= p["factor"]
                elif a.shape == "over_capacity_risk":
                    frac = (k - a.k0 + 1) / (a.k1 - a.k0)
                    target = p["peak_of_contracted"] * self.cap_kw[i] + pv[i]
                    load[i] = np.maximum(load[i], load[i] + frac * (target - load[i]))
                elif a.shape in ("outage", "feeder_outage"):
                    down[i] = True
            kw = np.where(down, 0.0, load - pv)

            ratio = np.minimum(np.abs(kw) / self.cap_kw, 1.5)
            volt = self.vn[:, None] * (1.0 + self.cell_offset[self.cell_idx][:, None]
                                       - f.voltage.load_drop * ratio[:, None]
                                       + f.voltage.noise * z_v)
            volt = np.clip(volt, self.vn[:, None] * (lo_v + 0.001),
                           self.vn[:, None] * (hi_v - 0.001))
            pf = (self.pf_full - f.power_factor.light_load_drop
                  * np.clip(1.0 - ratio / 0.3, 0.0, 1.0) + 0.005 * z_pf)
            pf = np.clip(pf, lo_pf + 0.001, hi_pf)
            metered = kw.copy()
            frozen = np.zeros(n, dtype=bool)
            status: dict[int, tuple[MeterStatus, ...]] = {}
            lag: dict[int, int] = {}
            absent: list[np.ndarray] = []
            theft: list[tuple[np.ndarray, float]] = []
            for a in active:
                i, p = a.idx, a.params
                if a.shape == "voltage_sag" or a.shape == "voltage_swell":
                    volt[i] *= p["factor"]
                elif a.shape == "low_power_factor":
                    pf[i] = p["pf"]
                elif a.shape == "possible_theft":
                    metered[i] *= p["factor"]
                    theft.append((i, p["factor"]))
                elif a.shape == "tamper":
                    metered[i] = -np.abs(kw[i])
                    if p.get("status_flag"):
                        status.update(dict.fromkeys(i.tolist(), _REVERSE))
                elif a.shape == "register_frozen":
                    frozen[i] = True
                elif a.shape == "clock_drift":
                    lag_s = round(p["lag_s_per_hour"] * (k - a.k0 + 1) * dt_h)
                    lag.update(dict.fromkeys(i.tolist(), int(lag_s)))
                elif a.shape in ("outage", "feeder_outage"):
                    if k == a.k0:
                        status.update(dict.fromkeys(i.tolist(), _FAIL))
                    else:
                        absent.append(i)
                elif a.shape == "comm_loss":
                    absent.append(i)
            volt[down] = 0.0
            pf[down] = np.nan
            with np.errstate(divide="ignore", invalid="ignore"):
                cur = (np.abs(kw) * 1000.0 / self.phases)[:, None] / (volt * pf[:, None])
            cur = np.where(down[:, None], 0.0, cur)
            for i, factor in theft:
                cur[i] *= factor

            kw_r = np.round(metered, 3) + 0.0
            inc = kw_r * dt_h
            acc_imp += np.where(frozen | (inc < 0), 0.0, inc)
            acc_exp += np.where(frozen | (inc > 0), 0.0, -inc)

            present_mask = np.ones(n, dtype=bool)
            for i in absent:
                present_mask[i] = False
            if restore:
                back = [j for j in restore if present_mask[j]]
                for j in back:
                    status[j] = _RESTORED
                restore.difference_update(back)
            yield Block(
                k=k, ts=ts, present=np.flatnonzero(present_mask), kw=kw_r,
                kwh=np.round(acc_imp, 3) + 0.0, export_kwh=np.round(acc_exp, 3) + 0.0,
                voltage=np.round(volt, 1) + 0.0, current=np.round(cur, 2) + 0.0,
                pf=np.round(pf, 3) + 0.0, status=status, lag_s=lag)

    def rows(self, block: Block) -> Iterator[tuple[int, dict[str, Any]]]:
        """``(meter index, wire dict)`` for every reading of a block; the dict equals
        ``Reading.to_json_dict()`` of the same reading."""
        ts_z = iso_z(block.ts)
        pres = block.present.tolist()
        kw = block.kw[block.present].tolist()
        kwh = block.kwh[block.present].tolist()
        exp = block.export_kwh[block.present].tolist()
        volt = block.voltage[block.present].tolist()
        cur = block.current[block.present].tolist()
        pf = block.pf[block.present].tolist()
        phases = self.phases[block.present].tolist()
        exporter = self.export_meter[block.present].tolist()
        interval_s = self.fleet.interval_min * 60
        ids, status, lag = self.ids, block.status, block.lag_s
        for j, i in enumerate(pres):
            ph = phases[j]
            d: dict[str, Any] = {
                "meter_id": ids[i],
                "ts": ts_z if i not in lag else iso_z(block.ts - timedelta(seconds=lag[i])),
                "kw": kw[j], "kwh": kwh[j],
            }
            if exporter[j] or exp[j] > 0:
                d["export_kwh"] = exp[j]
            d["voltage"] = volt[j][:ph]
            d["current"] = cur[j][:ph]
            if pf[j] == pf[j]:  # not NaN
                d["pf"] = pf[j]
            if i in status:
                d["status"] = [s.value for s in status[i]]
            d["interval_s"] = interval_s
            yield i, d

    def lines(self, block: Block) -> list[tuple[int, str]]:
        """``(meter index, JSON text)`` for every reading of a block: byte for byte
        ``json.dumps(wire dict, separators=(",", ":"))``, built without the dict (about four
        times faster, for the file and MQTT targets)."""
        if self._prefix is None:
            self._prefix = [f'{{"meter_id":{json.dumps(m)},"ts":"' for m in self.ids]
        p = block.present
        ts_z = iso_z(block.ts)
        rep = float.__repr__
        kw = list(map(rep, block.kw[p].tolist()))
        kwh = list(map(rep, block.kwh[p].tolist()))
        exp_v = block.export_kwh[p]
        show_exp = (self.export_meter[p] | (exp_v > 0)).tolist()
        exp = list(map(rep, exp_v.tolist()))
        vs = [list(map(rep, col)) for col in block.voltage[p].T.tolist()]
        cs = [list(map(rep, col)) for col in block.current[p].T.tolist()]
        pf_v = block.pf[p]
        pf_ok = (~np.isnan(pf_v)).tolist()
        pf = list(map(rep, pf_v.tolist()))
        phases = self.phases[p].tolist()
        tail = f',"interval_s":{self.fleet.interval_min * 60}}}'
        prefix, status, lag = self._prefix, block.status, block.lag_s
        out = []
        for j, i in enumerate(p.tolist()):
            if phases[j] == 3:
                v = f"[{vs[0][j]},{vs[1][j]},{vs[2][j]}]"
                c = f"[{cs[0][j]},{cs[1][j]},{cs[2][j]}]"
            else:
                v = f"[{','.join(col[j] for col in vs[:phases[j]])}]"
                c = f"[{','.join(col[j] for col in cs[:phases[j]])}]"
            ts = ts_z if i not in lag else iso_z(block.ts - timedelta(seconds=lag[i]))
            line = (f'{prefix[i]}{ts}","kw":{kw[j]},"kwh":{kwh[j]}'
                    f'{_EXP + exp[j] if show_exp[j] else ""},"voltage":{v},"current":{c}'
                    f'{_PF + pf[j] if pf_ok[j] else ""}')
            if i in status:
                line += ',"status":[' + ",".join(f'"{x.value}"' for x in status[i]) + "]"
            out.append((i, line + tail))
        return out

    def block_readings(self, block: Block) -> Iterator[Reading]:
        """The readings of one block as (trusted, unvalidated) :class:`Reading` objects."""
        construct = Reading.model_construct
        for i, d in self.rows(block):
            yield construct(
                meter_id=d["meter_id"],
                ts=block.ts - timedelta(seconds=block.lag_s[i]) if i in block.lag_s
                else block.ts,
                kw=d["kw"], kwh=d["kwh"], export_kwh=d.get("export_kwh"),
                voltage=tuple(d["voltage"]), current=tuple(d["current"]), pf=d.get("pf"),
                freq=None, status=block.status.get(i, ()), interval_s=d["interval_s"])

    def readings(self) -> Iterator[Reading]:
        """Every reading, in time order across meters (meter order within an interval)."""
        for block in self.blocks():
            yield from self.block_readings(block)

    def chunks(self, form: str = "json") -> Iterator[tuple[datetime, list[Row]]]:
        """Per interval: ``(ts, [(region, concentrator_id, meter_id, payload), ...])`` for the
        targets; the payload is the JSON text (``form="json"``) or the wire dict (``"dict"``)."""
        for block in self.blocks():
            yield block.ts, self.block_rows(block, form)

    def block_rows(self, block: Block, form: str = "json") -> list[Row]:
        """One interval's ``(region, concentrator_id, meter_id, payload)`` rows (``chunks``)."""
        route = self._route
        pairs = self.lines(block) if form == "json" else self.rows(block)
        return [(*route[i], x) for i, x in pairs]
