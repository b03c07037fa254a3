"""Device-fault detection on a simulated fleet: event recall and precision per fault type.

    .venv/bin/python benchmarks/devices.py [--days 8] [--seed 3] [--flow]

Simulates a fleet with transformers and industrial equipment (``DeviceSimulation``), injects
every device fault, runs the detector and scores its events against the labels with the same
matching as ``gridwatch evaluate`` (an event of the label's type about the device, raised in the
labelled span plus two hours' grace). ``--flow`` runs the whole bytewax dataflow (meters and
devices) instead of the device detector alone. Prints a table and the target (0.9 / 0.9).
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from gridwatch._evaluate import evaluate_events
from gridwatch.alerts import Registry
from gridwatch.models._device import DeviceState, DeviceThresholds, KindModel
from gridwatch.simulators import Fleet, registry_dict
from gridwatch.simulators._devices import DeviceSimulation
from gridwatch.simulators._engine import Simulation

FAULTS = {"overload": 4, "overheating": 4, "unbalance": 4, "sensor_stuck": 3, "sensor_drift": 3,
          "off_shift": 5, "inverter_trip": 4, "compressor_wear": 3}


def device_fleet(days: int = 8, seed: int = 3, industrial: int = 10, cells: int = 6,
                 faults: dict[str, int] | None = None) -> Fleet:
    """The evaluation fleet: a few grid cells, industrial sites with equipment and PV."""
    return Fleet.from_dict({
        "name": "devices", "seed": seed, "start": "2024-04-01T00:00:00Z",
        "duration": f"{days}d", "timezone": "Europe/Berlin",
        "regions": [{"name": "a", "cells": cells}],
        "customers": {"residential": {"count": 150}, "commercial": {"count": 15},
                      "industrial": {"count": industrial}},
        "anomalies": {"rate_per_meter_day": 0},
        "devices": {"faults": FAULTS if faults is None else faults, "warmup": "3d",
                    "pv_share": 0.7},
    })


def registry_for(ds: DeviceSimulation) -> Registry:
    data = registry_dict(ds.sim.meters) | {"devices": ds.registry_devices()}
    return Registry.model_validate(data)


def detect(ds: DeviceSimulation, registry: Registry) -> list[Any]:
    """The device detector alone (pure), as the dataflow's device step runs it."""
    models: dict[str, KindModel] = {}
    states: dict[str, DeviceState] = {}
    th = DeviceThresholds()
    events = []
    for t in ds.telemetry_only():
        dev = registry.device(t.device_id)
        if dev is None:
            continue
        model = models.setdefault(dev.kind.value, KindModel(dev.kind.value))
        state = states.setdefault(dev.id, DeviceState(dev.id))
        events.extend(state.step(t, dev, model, th))
    return events


def forecast_run(days: int, seed: int, growth: int) -> None:
    """Day-ahead and hour-ahead transformer forecasts: MAPE and scaled pinball loss after the
    first two weeks, and the lead of the overload warning on foreseeable overloads (load
    growing for days until the daily peak passes the rating), beside the seasonal-naive
    baseline (the same interval a week before) measured on the same data."""
    import statistics

    from gridwatch.models._forecast import LoadForecaster, pinball

    fleet = device_fleet(days, seed, faults={"load_growth": growth})
    ds = DeviceSimulation(Simulation(fleet))
    registry = registry_for(ds)
    fcs: dict[str, LoadForecaster] = {}
    states: dict[str, DeviceState] = {}
    model = KindModel("transformer")
    cut = fleet.start.timestamp() + 14 * 86400
    grown = {lab.meter_id for lab in ds.labels}
    err: dict[str, list[float]] = {"1h": [], "1d": []}
    pin: dict[str, list[float]] = {"1h": [], "1d": []}
    base_err: list[float] = []
    history: dict[tuple[str, float], float] = {}
    actual_sum = 0.0
    warned: dict[str, float] = {}
    overloaded: dict[str, float] = {}
    t0 = time.perf_counter()
    for t in ds.telemetry_only():
        dev = registry.device(t.device_id)
        if dev is None or dev.kind.value != "transformer":
            continue
        kva = t.metrics["kva"]
        ts = t.ts.timestamp()
        history[(dev.id, ts)] = kva
        fc = fcs.setdefault(dev.id, LoadForecaster(dev.id, "transformer", dev.ratings.kva,
                                                   tz=fleet.timezone, country=fleet.country))
        forecasts, warnings = fc.update(t.ts, kva)
        for f in forecasts:
            if f.actual is None or ts < cut or dev.id in grown or f.actual <= 0:
                continue
            err[f.horizon].append(abs(f.actual - f.value) / f.actual)
            pin[f.horizon].append(sum(pinball(f.actual, v, q) for v, q in
                                      ((f.p10, 0.1), (f.value, 0.5), (f.p90, 0.9))) / 3)
            if f.horizon == "1d":
                actual_sum += f.actual
                week_ago = history.get((dev.id, ts - 7 * 86400))
                if week_ago is not None:
                    base_err.append(abs(f.actual - week_ago) / f.actual)
        for e in warnings:
            if e.state == "firing":
                warned.setdefault(dev.id, ts)
        for e in states.setdefault(dev.id, DeviceState(dev.id)).step(t, dev, model):
            if e.type == "device_overload" and e.state == "firing":
                overloaded.setdefault(dev.id, ts)
    took = time.perf_counter() - t0
    n_1d = len(err["1d"]) or 1
    print(f"{sum(d.kind == 'transformer' for d in ds.devices)} transformers, {days} days, "
          f"scored from day 14 on transformers without a fault; {took:.1f} s")
    for h in ("1h", "1d"):
        mape = 100 * statistics.fmean(err[h]) if err[h] else float("nan")
        sp = sum(pin[h]) / max(actual_sum * len(pin[h]) / n_1d, 1e-9)
        print(f"  {h} ahead: MAPE {mape:.1f} %   scaled pinball {sp:.4f}   ({len(err[h])} scored)")
    if base_err:
        b = 100 * statistics.fmean(base_err)
        d = 100 * statistics.fmean(err["1d"])
        print(f"  seasonal-naive baseline (a week before): MAPE {b:.1f} %; day-ahead / "
              f"baseline = {d / b:.2f}")
    leads = []
    for dev_id in sorted(grown):
        w, o = warned.get(dev_id), overloaded.get(dev_id)
        lead = (o - w) / 60 if w is not None and o is not None and w <= o else 0.0
        leads.append(lead)
        def when(x: float | None) -> str:
            return "-" if x is None else time.strftime("%m-%d %H:%M", time.gmtime(x))

        print(f"  {dev_id}: warned {when(w)}, overloaded {when(o)}, lead {lead:.0f} min")
    if leads:
        print(f"target day-ahead MAPE <= 8 %: {100 * statistics.fmean(err['1d']):.1f} %; "
              f"median overload lead >= 30 min: {statistics.median(leads):.0f} min")


def report_run(seed: int, png: str | None) -> None:
    """A simulated April (Asia/Shanghai, Jiangsu tariff) in a private InfluxDB 1.6.7: the time
    of ``gridwatch energy-report`` for one industrial customer, beside the time of only
    reading that customer's readings back (the baseline, same run)."""
    import tempfile
    import urllib.parse
    import urllib.request
    from pathlib import Path

    import yaml
    from typer.testing import CliRunner

    from gridwatch import _services
    from gridwatch.cli import app
    from gridwatch.storage import InfluxReader, InfluxSettings, to_lines

    fleet = Fleet.from_dict({
        "name": "report", "seed": seed, "start": "2024-03-31T16:00:00Z", "duration": "30d",
        "timezone": "Asia/Shanghai", "country": "CN", "latitude": 32.0,
        "regions": [{"name": "a", "cells": 1}],
        "customers": {"residential": {"count": 10}, "industrial": {"count": 2}},
        "anomalies": {"rate_per_meter_day": 0},
        "devices": {"faults": {"off_shift": 2, "compressor_wear": 1, "unbalance": 1,
                               "inverter_trip": 1}, "warmup": "5d", "pv_share": 1.0}})
    ds = DeviceSimulation(Simulation(fleet))
    data = registry_dict(ds.sim.meters) | {"devices": ds.registry_devices()}
    for c in data["customers"]:
        c["tariff"] = "cn-jiangsu"
    registry = Registry.model_validate(data)
    cust = next(c for c in registry.customers if c.customer_class.value == "industrial")
    mine = {m.id for m in cust.meters}
    lines: list[str] = []
    for item in ds.stream():
        if getattr(item, "meter_id", None) in mine:
            lines.extend(to_lines(item))
    lines.extend(line for e in detect(ds, registry) if e.customer_id == cust.id
                 for line in to_lines(e))
    with tempfile.TemporaryDirectory() as tmp:
        svc = _services.influxdb(Path(tmp) / "influxdb").start()
        try:
            urllib.request.urlopen(urllib.request.Request(
                f"{svc.url}/query", data=b"q=CREATE+DATABASE+gw", method="POST")).read()
            for i in range(0, len(lines), 10_000):
                urllib.request.urlopen(urllib.request.Request(
                    f"{svc.url}/write?db=gw&precision=ns",
                    data="\n".join(lines[i:i + 10_000]).encode(), method="POST")).read()
            reg_path, cfg = Path(tmp) / "registry.yaml", Path(tmp) / "gridwatch.yaml"
            reg_path.write_text(yaml.safe_dump(data), encoding="utf-8")
            cfg.write_text(f"influx: {{api: v1, url: '{svc.url}', database: gw}}\n"
                           f"alerts: {{registry: '{reg_path}'}}\n", encoding="utf-8")
            t0 = time.perf_counter()
            with InfluxReader(InfluxSettings(api="v1", url=svc.url, database="gw")) as reader:
                n = sum(len(reader.readings(m, fleet.start, fleet.end + fleet.step))
                        for m in sorted(mine))
            base = time.perf_counter() - t0
            args = ["energy-report", "--customer", cust.id, "--month", "2024-04", "--out",
                    str(Path(tmp) / "out"), "-c", str(cfg)] + (["--png", png] if png else [])
            first = time.perf_counter()
            CliRunner().invoke(app, args, env={"COLUMNS": "200"})  # imports, font cache
            first = time.perf_counter() - first
            t0 = time.perf_counter()
            res = CliRunner().invoke(app, args, env={"COLUMNS": "200"})
            took = time.perf_counter() - t0
            print(res.output.strip())
            pdf = Path(tmp) / "out" / f"{cust.id}-2024-04.pdf"
            print(f"first run (imports, font cache) {first:.2f} s")
            print(f"{n} readings of {cust.id}: report {took:.2f} s, reading them back "
                  f"{base:.2f} s (ratio {took / base:.1f}); PDF {pdf.stat().st_size:,} bytes; "
                  f"target <= 2 s")
        finally:
            svc.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--days", type=int, default=8)
    ap.add_argument("--seed", type=int, default=3)
    ap.add_argument("--flow", action="store_true", help="run the whole bytewax dataflow")
    ap.add_argument("--forecast", action="store_true",
                    help="transformer forecasts and overload warnings (default 21 days)")
    ap.add_argument("--growth", type=int, default=4,
                    help="foreseeable overloads (load growth) in the forecast run")
    ap.add_argument("--report", action="store_true",
                    help="time gridwatch energy-report on a simulated month in InfluxDB")
    ap.add_argument("--png", help="with --report: write the summary page here")
    args = ap.parse_args()
    if args.report:
        report_run(args.seed, args.png)
        return
    if args.forecast:
        forecast_run(args.days if args.days != 8 else 21, args.seed, args.growth)
        return
    fleet = device_fleet(args.days, args.seed)
    ds = DeviceSimulation(Simulation(fleet))
    registry = registry_for(ds)
    t0 = time.perf_counter()
    if args.flow:
        from gridwatch._settings import Settings
        from gridwatch.stream import run_replay

        res = run_replay(Settings(), ds.stream(), registry.meter_meta, devices=registry.device)
        events = [e for e in res.events if "device_id" in e.evidence]
    else:
        events = detect(ds, registry)
    took = time.perf_counter() - t0
    device_days = len(ds.devices) * args.days
    reports = evaluate_events(events, ds.labels, device_days)
    print(f"{len(ds.devices)} devices, {args.days} days, {len(ds.labels)} labelled faults, "
          f"{sum(e.state == 'firing' for e in events)} events; {took:.1f} s "
          f"({'dataflow' if args.flow else 'detector alone'})")
    print(f"{'type':<20}{'labels':>7}{'found':>7}{'events':>8}{'recall':>8}{'precision':>10}"
          f"{'delay p50 min':>15}")
    for name, rep in reports.items():
        print(f"{name:<20}{rep.labels:>7}{rep.detected:>7}{rep.events:>8}"
              f"{rep.recall if rep.recall is not None else '-':>8}"
              f"{rep.precision if rep.precision is not None else '-':>10}"
              f"{rep.delay_median_min if rep.delay_median_min is not None else '-':>15}")
    allr = reports["all"]
    print(f"target recall >= 0.9: {allr.recall}; precision >= 0.9: {allr.precision}")


if __name__ == "__main__":
    main()
