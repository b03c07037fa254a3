"""Local time, time-of-week slots and holidays.

A holiday is scored against the Sunday slots of the time-of-week baseline, so a holiday looks like
what it is (a day off) and is not abnormal by itself; weekends have their own slots.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from functools import lru_cache
from zoneinfo import ZoneInfo

__all__ = ["SLOTS", "Calendar", "calendar_for"]

SLOTS = 168  #: hours of a week
SUNDAY = 6
_MAX_QUARTERS = 8_192  #: quarters one calendar remembers (85 days; about 1 MB)
_MAX_DAYS = 1_024  #: local days one calendar remembers (:meth:`Calendar.day`)


@lru_cache(maxsize=64)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


@lru_cache(maxsize=256)
def _holiday_set(country: str, year: int) -> frozenset[date]:
    import holidays

    try:
        return frozenset(holidays.country_holidays(country, years=year).keys())
    except NotImplementedError:
        return frozenset()


class Calendar:
    """Maps an event time (epoch seconds, UTC) to local day, time-of-week slot and day type."""

    __slots__ = ("_days", "_q", "country", "tz")

    def __init__(self, timezone: str = "UTC", holiday_country: str | None = None) -> None:
        self.tz = _zone(timezone)
        self.country = holiday_country
        #: quarter hour since the epoch -> (day type, slot, day ordinal): the fleet's readings
        #: share a few quarters, so most readings find theirs here with one dict lookup
        self._q: dict[int, tuple[int, int, int]] = {}
        #: local day ordinal -> :meth:`day` (every meter of the fleet closes the same days)
        self._days: dict[int, tuple[datetime, float, bool, datetime]] = {}

    def local(self, t: float) -> datetime:
        return datetime.fromtimestamp(t, UTC).astimezone(self.tz)

    def is_holiday(self, d: date) -> bool:
        return self.country is not None and d in _holiday_set(self.country, d.year)

    def info(self, t: float) -> tuple[int, int, int]:
        """(day type 0..6, time-of-week slot 0..167, local day ordinal) of event time ``t``."""
        # Every time zone offset is a multiple of 15 minutes: cache per quarter hour.
        q = int(t // 900)
        info = self._q.get(q)
        if info is None:
            if len(self._q) >= _MAX_QUARTERS:
                self._q.clear()
            info = self._q[q] = _quarter_info(self.tz.key, self.country, q)
        return info

    def day_type(self, t: float) -> int:
        """0..6 weekday, with a public holiday counted as Sunday."""
        return self.info(t)[0]

    def slot(self, t: float) -> int:
        """Hour of the week, 0..167 (Monday 00h is 0), holidays counted as Sunday."""
        return self.info(t)[1]

    def hour(self, t: float) -> int:
        return self.info(t)[1] % 24

    def day_number(self, t: float) -> int:
        """Local calendar day as an ordinal (changes at local midnight)."""
        return self.info(t)[2]

    def is_day_off(self, t: float) -> bool:
        return self.day_type(t) >= 5

    def day(self, day_no: int) -> tuple[datetime, float, bool, datetime]:
        """Local day ``day_no`` (an ordinal): its local midnight, that as epoch seconds,
        whether the day is off (weekend or holiday, judged at its local noon) and its midnight
        in UTC. Kept for the next meter that closes the same day."""
        got = self._days.get(day_no)
        if got is None:
            start = datetime.fromordinal(day_no).replace(tzinfo=self.tz)
            t = start.timestamp()
            if len(self._days) >= _MAX_DAYS:
                self._days.clear()
            got = self._days[day_no] = (start, t, self.is_day_off(t + 43_200),
                                        start.astimezone(UTC))
        return got


@lru_cache(maxsize=65_536)
def _quarter_info(tz: str, country: str | None, quarter: int) -> tuple[int, int, int]:
    loc = datetime.fromtimestamp(quarter * 900, UTC).astimezone(_zone(tz))
    d = loc.date()
    holiday = country is not None and d in _holiday_set(country, d.year)
    wd = SUNDAY if holiday else loc.weekday()
    return wd, wd * 24 + loc.hour, d.toordinal()


@lru_cache(maxsize=64)
def calendar_for(timezone: str, holiday_country: str | None) -> Calendar:
    """One shared calendar per (time zone, holiday country): for meters of other regions."""
    return Calendar(timezone, holiday_country)
