"""gridwatch.reports: time-of-use tariffs (``config/tariffs/<region>.yaml``) and the numbers of
the customer's energy report.

Names are imported on first use (PEP 562), so the command line's start stays light."""

from __future__ import annotations

from typing import TYPE_CHECKING

from gridwatch._lazy import lazy_exports

if TYPE_CHECKING:
    from gridwatch.reports._energy import EnergySummary, energy_summary
    from gridwatch.reports._tariff import (
        Period,
        Tariff,
        TariffError,
        load_tariff,
        pf_adjustment,
    )

_EXPORTS: dict[str, str] = {
    "EnergySummary": "_energy",
    "energy_summary": "_energy",
    "Period": "_tariff",
    "Tariff": "_tariff",
    "TariffError": "_tariff",
    "load_tariff": "_tariff",
    "pf_adjustment": "_tariff",
}

__all__ = ["EnergySummary", "Period", "Tariff", "TariffError", "energy_summary", "load_tariff",
           "pf_adjustment"]

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
