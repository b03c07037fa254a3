"""``gridwatch import customers|billing|crm FILE.csv``: data a meter cannot know, validated row by
row with one-line errors that name the file, the row and the column.

* customers: ``customer_id`` and any attributes declared with ``source: customers``;
* crm: ``customer_id`` and any attributes declared with ``source: crm`` (sets as ``a|b``);
* billing: ``customer_id, period (YYYY-MM), amount_due, amount_paid, due_date, paid_date``
  (dates ``YYYY-MM-DD``; an empty ``paid_date`` is a bill not paid yet).

An empty cell leaves the attribute unknown. A file with any bad row imports nothing unless
``skip_bad`` is set, in which case the good rows are imported and the bad ones counted.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from gridwatch._registry import AttributeSpec
from gridwatch._schemas import ID_PATTERN
from gridwatch.tags._store import TagStore

__all__ = ["IMPORT_KINDS", "ImportResult", "import_csv"]

IMPORT_KINDS = ("customers", "billing", "crm")
BILLING_COLUMNS = ("customer_id", "period", "amount_due", "amount_paid", "due_date", "paid_date")
_ID = re.compile(ID_PATTERN)


@dataclass
class ImportResult:
    kind: str
    rows: int = 0
    imported: int = 0
    bad: int = 0
    errors: list[str] = field(default_factory=list)


def _date(text: str, col: str) -> str:
    try:
        return date.fromisoformat(text).isoformat()
    except ValueError:
        raise ValueError(f"{col}: {text!r} is not a date like 2024-05-31") from None


def _money(text: str, col: str) -> float:
    try:
        x = float(text)
    except ValueError:
        raise ValueError(f"{col}: {text!r} is not an amount") from None
    if not (x == x and abs(x) < 1e12):
        raise ValueError(f"{col}: {text!r} is not a finite amount")
    if x < 0:
        raise ValueError(f"{col}: {text!r} is negative")
    return x


def _bill(row: Mapping[str, str]) -> tuple[str, str, float, float, str, str | None]:
    period = row.get("period", "")
    if not re.fullmatch(r"\d{4}-(0[1-9]|1[0-2])", period):
        raise ValueError(f"period: {period!r} is not a month like 2024-05")
    due = _date(row.get("due_date", ""), "due_date")
    paid_text = row.get("paid_date", "")
    paid = _date(paid_text, "paid_date") if paid_text else None
    amount_due = _money(row.get("amount_due", ""), "amount_due")
    amount_paid = _money(row.get("amount_paid", "") or "0", "amount_paid")
    if paid is None and amount_paid > 0:
        raise ValueError("paid_date: empty although amount_paid is not zero")
    return row["customer_id"], period, amount_due, amount_paid, due, paid


def import_csv(kind: str, path: str | Path, store: TagStore,
               schema: Mapping[str, AttributeSpec], *,
               known_customers: Collection[str] | None = None, skip_bad: bool = False,
               max_errors: int = 50) -> ImportResult:
    """Validate and import one CSV file into ``store``."""
    if kind not in IMPORT_KINDS:
        raise ValueError(f"unknown import {kind!r} (known: {', '.join(IMPORT_KINDS)})")
    path = Path(path)
    res = ImportResult(kind)
    allowed = {n: s for n, s in schema.items() if s.source == kind}
    try:
        fh = path.open(newline="", encoding="utf-8-sig")
    except OSError as exc:
        res.errors.append(f"{path}: cannot read: {exc.strerror or exc}")
        return res
    attrs: list[tuple[str, dict[str, Any]]] = []
    bills: list[tuple[str, str, float, float, str, str | None]] = []
    with fh:
        reader = csv.DictReader(fh)
        header = [h.strip() for h in (reader.fieldnames or [])]
        if "customer_id" not in header:
            res.errors.append(f"{path}: row 1: no customer_id column")
            res.bad += 1
            return res
        if kind == "billing":
            extra = [h for h in header if h not in BILLING_COLUMNS]
            missing = [h for h in BILLING_COLUMNS if h not in header and h != "paid_date"]
            if extra or missing:
                res.errors.append(f"{path}: row 1: "
                                  + (f"unknown column {extra[0]!r} " if extra else "")
                                  + (f"missing column {missing[0]!r} " if missing else "")
                                  + f"(columns: {', '.join(BILLING_COLUMNS)})")
                res.bad += 1
                return res
        else:
            unknown = [h for h in header if h != "customer_id" and h not in allowed]
            if unknown:
                res.errors.append(
                    f"{path}: row 1: column {unknown[0]!r} is not an attribute declared with "
                    f"source {kind} (declared: {', '.join(allowed) or 'none'})")
                res.bad += 1
                return res
        for n, raw in enumerate(reader, start=2):
            res.rows += 1
            row = {(k or "").strip(): (v or "").strip() for k, v in raw.items() if k}
            if None in raw:
                _err(res, f"{path}: row {n}: more cells than columns", max_errors)
                continue
            cid = row.get("customer_id", "")
            try:
                if not _ID.fullmatch(cid):
                    raise ValueError(f"customer_id: {cid!r} is not a valid id")
                if known_customers is not None and cid not in known_customers:
                    raise ValueError(f"customer_id: {cid!r} is not in the registry")
                if kind == "billing":
                    bills.append(_bill(row))
                    continue
                data: dict[str, Any] = {}
                for col, text in row.items():
                    if col == "customer_id" or text == "":
                        continue
                    try:
                        data[col] = allowed[col].check(text)
                    except ValueError as exc:
                        raise ValueError(f"{col}: {exc}") from None
                attrs.append((cid, data))
            except ValueError as exc:
                _err(res, f"{path}: row {n}: {exc}", max_errors)
    if res.errors and not skip_bad:
        store.count(f"import_{kind}_rejected_files")
        return res
    if res.errors:
        store.count(f"import_{kind}_bad_rows", res.bad)
    res.imported = store.put_bills(bills) if kind == "billing" else \
        store.put_attributes(kind, attrs, date.today().isoformat())
    return res


def _err(res: ImportResult, msg: str, max_errors: int) -> None:
    res.bad += 1
    if len(res.errors) < max_errors:
        res.errors.append(msg)
    elif len(res.errors) == max_errors:
        res.errors.append("... more errors not shown")
