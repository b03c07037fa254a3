"""gridwatch.reports: time-of-use tariffs (``config/tariffs/<region>.yaml``) and the numbers of
the customer's energy report."""

from gridwatch.reports._energy import EnergySummary, energy_summary
from gridwatch.reports._tariff import Period, Tariff, TariffError, load_tariff, pf_adjustment

__all__ = ["EnergySummary", "Period", "Tariff", "TariffError", "energy_summary", "load_tariff",
           "pf_adjustment"]
