"""Time-of-use schedules (``config/tariffs/<region>.yaml``): which hour of which month is a
sharp (critical) peak, peak, flat or valley hour."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import yaml

__all__ = ["PERIODS", "TariffError", "TouSchedule"]

#: Period codes, in the order of the code: 0 valley, 1 flat, 2 peak, 3 sharp.
PERIODS = ("valley", "flat", "peak", "sharp")


class TariffError(ValueError):
    """A time-of-use file cannot be used; ``str()`` names the file and the problem."""


def _hours(spans: Any, where: str) -> list[int]:
    if not isinstance(spans, list):
        raise TariffError(f"{where}: expected a list of hour spans like '10-12'")
    out: list[int] = []
    for span in spans:
        m = re.fullmatch(r"\s*(\d{1,2})\s*-\s*(\d{1,2})\s*", str(span))
        if not m:
            raise TariffError(f"{where}: {span!r} is not an hour span like '10-12'")
        a, b = int(m.group(1)), int(m.group(2))
        if not (0 <= a < b <= 24):
            raise TariffError(f"{where}: {span!r} must run forward within 0-24")
        out.extend(range(a, b))
    return out


class TouSchedule:
    """A 12 x 24 table of period codes (month, local hour)."""

    def __init__(self, region: str, codes: np.ndarray, source: str = "") -> None:
        if codes.shape != (12, 24):
            raise TariffError(f"{region}: the schedule must be 12 months x 24 hours")
        self.region = region
        self.codes = codes.astype(np.int8)
        self.source = source
        #: (4, 12, 24) masks, one per period
        self.masks = np.stack([(self.codes == k) for k in range(4)]).astype(np.float32)

    @classmethod
    def from_dict(cls, data: Any, source: str = "tariff") -> TouSchedule:
        if not isinstance(data, dict):
            raise TariffError(f"{source}: the top level must be a mapping")
        region = str(data.get("region") or Path(source).stem)
        periods = data.get("periods") or {}
        if not isinstance(periods, dict):
            raise TariffError(f"{source}: periods must map peak/valley/flat to hour spans")
        unknown = set(periods) - {"peak", "valley", "flat"}
        if unknown:
            raise TariffError(f"{source}: periods: unknown period {sorted(unknown)[0]!r} "
                              f"(known: peak, valley, flat)")
        row = np.ones(24, np.int8)  # flat unless said otherwise
        seen: dict[int, str] = {}
        for name, code in (("valley", 0), ("flat", 1), ("peak", 2)):
            for h in _hours(periods.get(name, []), f"{source}: periods.{name}"):
                if h in seen:
                    raise TariffError(f"{source}: hour {h} is both {seen[h]} and {name}")
                seen[h] = name
                row[h] = code
        codes = np.tile(row, (12, 1))
        sharp = data.get("sharp")
        if sharp:
            months = sharp.get("months", list(range(1, 13)))
            if not all(isinstance(m, int) and 1 <= m <= 12 for m in months):
                raise TariffError(f"{source}: sharp.months must be month numbers 1-12")
            for h in _hours(sharp.get("hours", []), f"{source}: sharp.hours"):
                for m in months:
                    codes[m - 1, h] = 3
        return cls(region, codes, str(data.get("source", "")))

    @classmethod
    def load(cls, path: str | Path) -> TouSchedule:
        path = Path(path)
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise TariffError(f"{path}: cannot read: {exc.strerror or exc}") from None
        except yaml.YAMLError as exc:
            raise TariffError(f"{path}: not valid YAML: {exc}") from None
        return cls.from_dict(data, str(path))

    def period(self, month: int, hour: int) -> str:
        return PERIODS[int(self.codes[month - 1, hour])]

    def hours(self, period: str, month: int) -> int:
        return int((self.codes[month - 1] == PERIODS.index(period)).sum())
