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

from gridwatch.alerts import Registry
from gridwatch.models._device import DeviceState, DeviceThresholds, KindModel
from gridwatch.models._evaluate import evaluate_events
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--days", type=int, default=8)
    ap.add_argument("--seed", type=int, default=3)
    ap.add_argument("--flow", action="store_true", help="run the whole bytewax dataflow")
    args = ap.parse_args()
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
