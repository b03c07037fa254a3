"""gridwatch.reports: time-of-use tariffs and the customer's monthly energy report."""

__all__: list[str] = []
