"""Sample import files for a simulated fleet: customer attributes, CRM records and a year of
bills for every customer of a registry, drawn from a generator seeded by the customer's id, so
the same registry always gives the same files.

A simulated fleet has meters and nothing else: without these files the value and needs tags
(payment, programmes, declared needs, complaints) never appear. ``make demo`` writes them with
:func:`write_sample_imports` and brings them in with ``gridwatch import customers|crm|billing``,
exactly as a utility brings in its own exports. The shares below are illustrative, not
statistics of any utility.
"""

from __future__ import annotations

import csv
import random
from collections.abc import Iterable, Mapping
from datetime import date
from pathlib import Path
from typing import Any

__all__ = ["SAMPLE_FILES", "sample_rows", "write_sample_imports"]

#: Import kind -> file name, in the order they are imported.
SAMPLE_FILES = {"customers": "customers.csv", "crm": "crm.csv", "billing": "billing.csv"}

_CUSTOMER_COLUMNS = ("customer_id", "industry", "voltage_kv", "account_age_years",
                     "building_type", "heating", "rooftop_m2", "ev_owner", "critical_load",
                     "elderly", "low_income", "irrigated_area_mu")
_CRM_COLUMNS = ("customer_id", "programs", "needs", "labels", "complaints_12m", "satisfaction")
_BILL_COLUMNS = ("customer_id", "period", "amount_due", "amount_paid", "due_date", "paid_date")

_INDUSTRY = {
    "commercial": ["retail", "restaurant", "office", "hotel", "mall", "school", "hospital",
                   "telecom", "ev_charging"],
    "industrial": ["manufacturing", "electronics", "food_processing", "textiles",
                   "cold_storage", "chemicals"],
    "agricultural": ["irrigation", "greenhouse", "livestock", "aquaculture"],
}
_PROGRAMS = ["e_billing", "auto_debit", "app", "demand_response", "green_power",
             "energy_efficiency", "market_trading", "interruptible_load"]
_NEEDS = {
    "residential": ["energy_saving", "pv", "ev_charging", "heat_pump", "tariff_advice"],
    "commercial": ["energy_saving", "tariff_advice", "pv", "ev_charging", "power_quality",
                   "capacity_increase"],
    "industrial": ["storage", "capacity_increase", "power_quality", "demand_response",
                   "energy_audit", "backup_supply", "microgrid"],
    "agricultural": ["tariff_advice", "pv", "energy_saving", "capacity_increase"],
}
#: Mean monthly bill by class (yuan), before a customer's own factor.
_BILL = {"residential": 180.0, "commercial": 6_000.0, "industrial": 80_000.0,
         "agricultural": 2_500.0}


def _months_before(day: date, n: int) -> list[tuple[int, int]]:
    """The ``n`` whole months before the month of ``day``, oldest first."""
    y, m = day.year, day.month
    out = []
    for _ in range(n):
        y, m = (y, m - 1) if m > 1 else (y - 1, 12)
        out.append((y, m))
    return out[::-1]


def _add_days(d: date, n: int) -> date:
    return date.fromordinal(d.toordinal() + n)


def sample_rows(customers: Iterable[Mapping[str, Any]], as_of: date, seed: int = 0
                ) -> dict[str, list[dict[str, str]]]:
    """Rows of the three files for ``customers`` (registry entries with ``id`` and ``class``),
    with bills for the 12 months before ``as_of``'s month, each due on the 25th of the month
    after, up to the month before ``as_of``."""
    rows: dict[str, list[dict[str, str]]] = {k: [] for k in SAMPLE_FILES}
    for c in customers:
        cid, cls = str(c["id"]), str(c.get("class", "residential"))
        rng = random.Random(f"{seed}:{cid}")
        rows["customers"].append(_customer(cid, cls, rng))
        rows["crm"].append(_crm(cid, cls, rng))
        rows["billing"].extend(_bills(cid, cls, rng, as_of))
    return rows


def _flag(rng: random.Random, p: float) -> str:
    return "true" if rng.random() < p else "false"


def _customer(cid: str, cls: str, rng: random.Random) -> dict[str, str]:
    row = dict.fromkeys(_CUSTOMER_COLUMNS, "")
    row["customer_id"] = cid
    row["account_age_years"] = f"{rng.choice([0.5, 1.5, 3, 6, 12, 18, 25]):g}"
    row["rooftop_m2"] = str(rng.choice([0, 20, 40, 80, 300, 1200] if cls != "residential"
                                       else [0, 0, 15, 30, 45]))
    if cls == "residential":
        row["building_type"] = rng.choice(["apartment", "apartment", "house", "rural_house"])
        row["heating"] = rng.choice(["none", "electric", "heat_pump", "gas", "coal"])
        row["ev_owner"] = _flag(rng, 0.15)
        row["elderly"] = _flag(rng, 0.1)
        row["low_income"] = _flag(rng, 0.06)
    else:
        row["industry"] = rng.choice(_INDUSTRY[cls])
        row["voltage_kv"] = "10" if cls == "industrial" and rng.random() < 0.5 else "0.4"
        row["critical_load"] = _flag(rng, 0.3 if row["industry"] in (
            "hospital", "cold_storage", "telecom", "chemicals") else 0.03)
        if cls == "agricultural":
            row["irrigated_area_mu"] = str(rng.choice([30, 120, 600, 1500]))
    return row


def _crm(cid: str, cls: str, rng: random.Random) -> dict[str, str]:
    programs = sorted(p for p in _PROGRAMS[:3] if rng.random() < 0.4)
    if cls in ("commercial", "industrial"):
        programs += sorted(p for p in _PROGRAMS[3:] if rng.random() < 0.2)
    needs = sorted(n for n in _NEEDS[cls] if rng.random() < 0.12)
    labels = []
    if cls == "industrial" and rng.random() < 0.5:
        labels.append("key_account")
    if rng.random() < 0.04:
        labels.append("sensitive")
    if cls != "residential" and rng.random() < 0.1:
        labels.append("vip")
    complaints = rng.choices([0, 1, 2, 4], weights=[80, 12, 5, 3])[0]
    return {"customer_id": cid, "programs": "|".join(programs), "needs": "|".join(needs),
            "labels": "|".join(labels), "complaints_12m": str(complaints),
            "satisfaction": str(rng.choices([1, 2, 3, 4, 5], weights=[3, 5, 20, 42, 30])[0])}


def _bills(cid: str, cls: str, rng: random.Random, as_of: date) -> list[dict[str, str]]:
    # how this customer pays: on time, now and then late, often late, or stopped paying
    habit = rng.choices(["on_time", "occasional", "habitual", "arrears"],
                        weights=[70, 15, 9, 6])[0]
    factor = rng.lognormvariate(0.0, 0.5)
    months = _months_before(as_of, 13)[:-1]  # the last month's bill is not due yet
    out = []
    for i, (y, m) in enumerate(months):
        amount = round(_BILL[cls] * factor * rng.uniform(0.8, 1.25), 2)
        ny, nm = (y, m + 1) if m < 12 else (y + 1, 1)
        due = date(ny, nm, 25)
        late = (habit == "occasional" and rng.random() < 0.15) or \
            (habit == "habitual" and rng.random() < 0.5)
        unpaid = habit == "arrears" and i >= len(months) - 3
        if unpaid:
            paid_date, paid = "", 0.0
        else:
            when = _add_days(due, rng.randint(5, 40)) if late else \
                _add_days(due, -rng.randint(0, 20))
            paid_date, paid = min(when, as_of).isoformat(), amount
        out.append({"customer_id": cid, "period": f"{y:04d}-{m:02d}",
                    "amount_due": f"{amount:.2f}", "amount_paid": f"{paid:.2f}",
                    "due_date": due.isoformat(), "paid_date": paid_date})
    return out


def write_sample_imports(customers: Iterable[Mapping[str, Any]], as_of: date, folder: Path,
                         seed: int = 0) -> dict[str, Path]:
    """Write ``customers.csv``, ``crm.csv`` and ``billing.csv`` into ``folder``; returns the
    path of each import kind."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = sample_rows(customers, as_of, seed)
    columns = {"customers": _CUSTOMER_COLUMNS, "crm": _CRM_COLUMNS, "billing": _BILL_COLUMNS}
    out = {}
    for kind, name in SAMPLE_FILES.items():
        path = folder / name
        with path.open("w", newline="", encoding="utf-8") as f:
            w = csv.DictWriter(f, fieldnames=columns[kind])
            w.writeheader()
            w.writerows(rows[kind])
        out[kind] = path
    return out

