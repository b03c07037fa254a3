"""Draw the meters of a fleet: customers, sizes, places on the grid, names."""

from __future__ import annotations

import numpy as np

from gridwatch._schemas import CustomerClass
from gridwatch.simulators._spec import ClassSpec, FleetSpec, SimMeter

#: Yearly maximum of each shape relative to its mean (BDEW profiles as calendarised by demandlib
#: 0.2.2 for 2023 and 2024; the industrial shift patterns of ``_load``). Used with the noise
#: levels to pick a contracted capacity that normal operation stays below.
_PROFILE_PEAK = {
    "h0": 1.87, "g0": 2.09, "g1": 4.22, "g2": 2.2, "g3": 1.35, "g4": 2.01, "g5": 2.23,
    "g6": 2.63, "l0": 2.11, "l1": 2.67, "l2": 1.87, "ind1": 2.38, "ind1w": 2.04, "ind2": 1.69,
    "ind2w": 1.36, "ind3": 1.31, "ind3w": 1.02,
}
#: Margin for weather: the temperature factor rarely exceeds this.
_WEATHER_MARGIN = 1.15

_FIRST = ("Anna", "Ben", "Clara", "David", "Emma", "Felix", "Greta", "Hannes", "Ida", "Jonas",
          "Lea", "Max", "Mia", "Noah", "Paul", "Sofia", "Tom", "Wei", "Li", "Yara")
_LAST = ("Bauer", "Becker", "Chen", "Fischer", "Hoffmann", "Koch", "Lange", "Meyer", "Neumann",
         "Richter", "Schmidt", "Schulz", "Wagner", "Wang", "Weber", "Wolf", "Zhang", "Klein")
_PLACE = ("Lindenhof", "Rosental", "Am Markt", "Seeblick", "Nordstern", "Bergheim", "Talweg",
          "Kastanie", "Sonnenhang", "Eichwald", "Hafen", "Mühlbach")
_BUSINESS = {"g0": "Services", "g1": "Offices", "g2": "Restaurant", "g3": "Cold Store",
             "g4": "Shop", "g5": "Bakery", "g6": "Sports Club"}
_INDUSTRY = ("Metal", "Plastics", "Paper", "Food", "Glass", "Chemicals", "Textile", "Timber")


def _choose(rng: np.random.Generator, weights: dict, n: int) -> list:
    keys = list(weights)
    p = np.array([weights[k] for k in keys], dtype=float)
    return [keys[i] for i in rng.choice(len(keys), size=n, p=p / p.sum())]


def _profiles(klass: CustomerClass, spec: ClassSpec, rng: np.random.Generator,
              n: int) -> list[str]:
    if klass is CustomerClass.INDUSTRIAL:
        shifts = _choose(rng, spec.shifts, n) if any(spec.shifts.values()) else [2] * n
        weekend = rng.random(n) < spec.weekend_share
        return [f"ind{s}{'w' if w else ''}" for s, w in zip(shifts, weekend, strict=True)]
    default = {CustomerClass.RESIDENTIAL: "h0", CustomerClass.COMMERCIAL: "g0",
               CustomerClass.AGRICULTURAL: "l0"}[klass]
    return _choose(rng, spec.profiles or {default: 1.0}, n)


def _name(klass: CustomerClass, profile: str, rng: np.random.Generator) -> str:
    pick = lambda seq: seq[int(rng.integers(len(seq)))]  # noqa: E731
    if klass is CustomerClass.RESIDENTIAL:
        return f"{pick(_FIRST)} {pick(_LAST)}"
    if klass is CustomerClass.COMMERCIAL:
        return f"{pick(_PLACE)} {_BUSINESS.get(profile, 'Services')}"
    if klass is CustomerClass.AGRICULTURAL:
        return f"{pick(_LAST)} Farm"
    return f"{pick(_PLACE)} {pick(_INDUSTRY)} Works"


def build_meters(fleet: FleetSpec, seed: int) -> list[SimMeter]:
    """The fleet's meters in a fixed order (class by class, as in the fleet file)."""
    rng = np.random.default_rng([seed, 1])
    cells: list[tuple[str, str]] = []  # (region, cell)
    cell_weight: list[float] = []
    for region in fleet.regions:
        for j in range(region.cells):
            cells.append((region.name, f"{region.name}-c{j:03d}"))
            cell_weight.append(region.weight / region.cells)
    cw = np.array(cell_weight) / sum(cell_weight)
    width = max(6, len(str(fleet.n_meters)))
    interval_s = fleet.interval_min * 60

    meters: list[SimMeter] = []
    per_cell: dict[str, int] = {}
    customer_no = 0
    for klass in CustomerClass:
        spec = fleet.customers.get(klass)
        if spec is None or spec.count == 0:
            continue
        n = spec.count
        profiles = _profiles(klass, spec, rng, n)
        cell_idx = rng.choice(len(cells), size=n, p=cw)
        annual = spec.annual_kwh.median * np.exp(spec.annual_kwh.sigma * rng.standard_normal(n))
        pf_full = rng.uniform(spec.pf[0], spec.pf[1], size=n)
        three = rng.random(n) < spec.three_phase_share
        pv = rng.random(n) < spec.pv_share
        kwp = spec.pv_kwp.median * np.exp(spec.pv_kwp.sigma * rng.standard_normal(n))
        noise_margin = (1 + 3 * spec.noise) * (1 + 2 * spec.daily_noise) * _WEATHER_MARGIN
        biggest = spec.contracted_kva[-1]
        for i in range(n):
            peak_ratio = _PROFILE_PEAK[profiles[i]] * noise_margin
            customer_id = f"c{customer_no:0{width}d}"
            customer_no += 1
            name = _name(klass, profiles[i], rng)
            region, cell = cells[int(cell_idx[i])]
            # Keep the expected peak inside the largest capacity on offer.
            cap_annual = biggest / spec.capacity_headroom * pf_full[i] / peak_ratio * 8760
            share = min(float(annual[i]), cap_annual) / spec.meters_per_customer
            need_kva = share / 8760 * peak_ratio / pf_full[i] * spec.capacity_headroom
            kva = next((c for c in spec.contracted_kva if c >= need_kva), biggest)
            for _ in range(spec.meters_per_customer):
                idx = len(meters)
                k = per_cell.get(cell, 0)
                per_cell[cell] = k + 1
                meters.append(SimMeter(
                    index=idx, meter_id=f"m{idx:0{width}d}", customer_id=customer_id,
                    customer_name=name, customer_class=klass, region=region, grid_cell=cell,
                    concentrator_id=f"dc-{cell}-{k // fleet.meters_per_concentrator:02d}",
                    contracted_kva=float(kva), phases=3 if three[i] else 1,
                    nominal_voltage_v=spec.nominal_voltage_v, has_export=bool(pv[i]),
                    profile=profiles[i], annual_kwh=round(share, 1), interval_s=interval_s,
                    pv_kwp=round(float(kwp[i]), 2) if pv[i] else 0.0,
                    pf_full=round(float(pf_full[i]), 3)))
    return meters
