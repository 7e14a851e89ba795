"""Calendar rules: sets of allowed values per calendar unit, and the fast wall-clock matcher they compile to.

A :class:`RuleSpec` is what both the cron parser and the later.js text parser produce: for each unit
the allowed values, optional lower/upper bounds, and the *tick* (the unit whose start is a firing
moment). A :class:`WallRule` answers "first matching wall-clock second at or after this one" with two
precomputed bitmaps: a 86,400-byte mask of the seconds of a day that fire, and (cached per month) a
32-byte map of the days of a month that fire. ``bytes.find`` scans both in C, so a lookup costs a
few microseconds whatever the schedule.

Units (later.js names): ``s`` second 0-59, ``m`` minute 0-59, ``h`` hour 0-23, ``t`` second of the
day 0-86399, ``D`` day of month 1-31, ``d`` weekday (Python numbering: Monday 0 … Sunday 6), ``dy``
day of year 1-366, ``dc`` day instance 1-5 (days 1-7 are instance 1, 8-14 instance 2, ...), ``wm``
week of month 1-6 (weeks start on Sunday), ``wy`` ISO week 1-53, ``M`` month 1-12, ``Y`` year.
For ``D``, ``dy``, ``dc``, ``wm`` and ``wy`` the value 0 means "the last one".
"""

from __future__ import annotations

import bisect
import calendar
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime

__all__ = ["DAY_UNITS", "TIME_UNITS", "UNIT_RANGES", "RuleSpec", "WallRule", "granularity"]

TIME_UNITS = ("s", "m", "h", "t")
DAY_UNITS = ("D", "d", "dy", "dc", "wm", "wy", "M", "Y")
UNIT_RANGES: Mapping[str, tuple[int, int]] = {
    "s": (0, 59),
    "m": (0, 59),
    "h": (0, 23),
    "t": (0, 86399),
    "D": (1, 31),
    "d": (0, 6),
    "dy": (1, 366),
    "dc": (1, 5),
    "wm": (1, 6),
    "wy": (1, 53),
    "M": (1, 12),
    "Y": (1970, 9999),
}
_GRANULARITY = {
    "s": 0, "t": 0, "m": 1, "h": 2, "D": 3, "d": 3, "dy": 3, "dc": 4, "wm": 4, "wy": 4, "M": 5, "Y": 6,
}  # fmt: skip
_DAY = 3
_LAST_CAPABLE = frozenset({"D", "dy", "dc", "wm", "wy"})
_SECONDS_PER_DAY = 86400
_CACHE_LIMIT = 4096
_HORIZON_YEARS = 401  # the Gregorian calendar repeats every 400 years


def granularity(unit: str) -> int:
    """0 second, 1 minute, 2 hour, 3 day, 4 week, 5 month, 6 year."""
    return _GRANULARITY[unit]


@dataclass(frozen=True)
class RuleSpec:
    """One conjunction of constraints (a later.js "schedule", or a cron expression)."""

    values: Mapping[str, frozenset[int]] = field(default_factory=dict)
    after: Mapping[str, int] = field(default_factory=dict)  # unit value >= bound
    before: Mapping[str, int] = field(default_factory=dict)  # unit value < bound
    tick: str = "s"
    #: classic cron: a day matching day-of-month OR day-of-week is enough
    day_or: bool = False

    def allowed(self, unit: str) -> frozenset[int]:
        """The values of a time unit (s, m, h) that pass its set and bounds."""
        low, high = UNIT_RANGES[unit]
        values = self.values.get(unit, frozenset(range(low, high + 1)))
        lower = self.after.get(unit, low)
        upper = self.before.get(unit, high + 1)
        return frozenset(v for v in values if lower <= v < upper)

    def time_mask(self, *, tick_starts_only: bool = True) -> bytes:
        """86,400 bytes, 1 for each second of the day at which this rule fires (or, for an exception,
        holds). Equal rules share one mask, so a thousand jobs on the same schedule cost one."""
        key = (
            tuple(sorted((unit, tuple(sorted(v))) for unit, v in self.values.items())),
            tuple(sorted(self.after.items())),
            tuple(sorted(self.before.items())),
            self.tick,
            tick_starts_only,
        )
        mask = _MASKS.get(key)
        if mask is None:
            if len(_MASKS) >= _MASK_CACHE_LIMIT:
                _MASKS.clear()
            mask = _MASKS[key] = self._build_time_mask(tick_starts_only)
        return mask

    def time_sets(self, tick_starts_only: bool) -> tuple[frozenset[int], frozenset[int], frozenset[int]]:
        """The seconds, minutes and hours this rule allows; with ``tick_starts_only``, only those at
        which a tick starts (``every 2 hours`` fires at second 0 of minute 0, not through the hour)."""
        seconds, minutes, hours = self.allowed("s"), self.allowed("m"), self.allowed("h")
        if tick_starts_only:
            level = granularity(self.tick)
            if level >= 1:
                seconds &= {0}
            if level >= 2:
                minutes &= {0}
            if level >= _DAY:
                hours &= {0}
        return seconds, minutes, hours

    def _build_time_mask(self, tick_starts_only: bool) -> bytes:
        seconds, minutes, hours = self.time_sets(tick_starts_only)
        second_block = bytes(1 if s in seconds else 0 for s in range(60))
        minute_block = b"".join(second_block if m in minutes else bytes(60) for m in range(60))
        mask = bytearray(b"".join(minute_block if h in hours else bytes(3600) for h in range(24)))
        exact = self.values.get("t")
        if exact is not None:
            kept = bytearray(_SECONDS_PER_DAY)
            for second in exact:
                if 0 <= second < _SECONDS_PER_DAY and mask[second]:
                    kept[second] = 1
            mask = kept
        start = self.after.get("t")
        if start is not None:
            start = max(0, min(start, _SECONDS_PER_DAY))
            mask[:start] = bytes(start)
        end = self.before.get("t")
        if end is not None:
            end = max(0, min(end, _SECONDS_PER_DAY))
            mask[end:] = bytes(_SECONDS_PER_DAY - end)
        return bytes(mask)


_MASKS: dict[tuple[object, ...], bytes] = {}
_MASK_CACHE_LIMIT = 256


class _Month:
    """One month of the calendar, with the per-day values of each day-level unit computed on demand."""

    __slots__ = ("days", "first_weekday", "month", "year")

    def __init__(self, year: int, month: int) -> None:
        self.year = year
        self.month = month
        self.first_weekday, self.days = calendar.monthrange(year, month)  # Monday 0

    def weekday(self, day: int) -> int:
        return (self.first_weekday + day - 1) % 7

    def values(self, unit: str) -> tuple[list[int], list[int]]:
        """For days 1..n (index 0 unused): each day's value of ``unit``, and the unit's last value as
        seen from that day (for the "last" value 0), or -1 where "last" has no meaning."""
        days = range(self.days + 1)
        n = self.days
        if unit == "D":
            return list(days), [n] * (n + 1)
        if unit == "d":
            return [self.weekday(d) for d in days], [-1] * (n + 1)
        if unit == "M":
            return [self.month] * (n + 1), [-1] * (n + 1)
        if unit == "Y":
            return [self.year] * (n + 1), [-1] * (n + 1)
        if unit == "dy":
            offset = date(self.year, self.month, 1).toordinal() - date(self.year, 1, 1).toordinal()
            return [offset + d for d in days], [366 if calendar.isleap(self.year) else 365] * (n + 1)
        if unit == "dc":
            instances = [(d - 1) // 7 + 1 for d in days]
            return instances, [instances[d] if d > n - 7 else -1 for d in days]
        if unit == "wm":
            # later.js: weeks of the month start on Sunday; week 1 holds the 1st
            shift = (self.first_weekday + 1) % 7  # days of week 1 before the 1st
            weeks = [(d - 1 + shift) // 7 + 1 for d in days]
            return weeks, [weeks[n]] * (n + 1)
        if unit == "wy":
            weeks, lasts = [0], [-1]
            for d in range(1, n + 1):
                iso_year, week, _ = date(self.year, self.month, d).isocalendar()
                weeks.append(week)
                lasts.append(date(iso_year, 12, 28).isocalendar()[1])
            return weeks, lasts
        raise KeyError(unit)


def _bits(flags: Iterable[bool]) -> int:
    result = 0
    for index, flag in enumerate(flags):
        if flag:
            result |= 1 << index
    return result


#: a day-level condition: for a month, a bitmask of its days (bit d = day d) that satisfy it
_DayCheck = Callable[[_Month], int]


def _day_checks(spec: RuleSpec) -> list[_DayCheck]:
    checks: list[_DayCheck] = []

    def value_check(unit: str, wanted: frozenset[int]) -> _DayCheck:
        wants_last = unit in _LAST_CAPABLE and 0 in wanted

        def check(month: _Month) -> int:
            values, lasts = month.values(unit)
            return _bits(
                d > 0 and (value in wanted or (wants_last and value == last))
                for d, (value, last) in enumerate(zip(values, lasts, strict=True))
            )

        return check

    def bound_check(unit: str, low: int | None, high: int | None) -> _DayCheck:
        def check(month: _Month) -> int:
            values = month.values(unit)[0]
            return _bits(
                d > 0 and (low is None or value >= low) and (high is None or value < high)
                for d, value in enumerate(values)
            )

        return check

    day_or = spec.day_or and "D" in spec.values and "d" in spec.values
    for unit in DAY_UNITS:
        if unit in spec.values and unit not in ("M", "Y") and not (day_or and unit in ("D", "d")):
            checks.append(value_check(unit, spec.values[unit]))
        if unit in spec.after or unit in spec.before:
            checks.append(bound_check(unit, spec.after.get(unit), spec.before.get(unit)))
    if day_or:
        by_day, by_weekday = value_check("D", spec.values["D"]), value_check("d", spec.values["d"])
        checks.append(lambda month: by_day(month) | by_weekday(month))
    return checks


def _tick_start_check(tick: str) -> _DayCheck | None:
    """Days on which a period of the (day-level or coarser) tick unit starts."""
    if tick == "dc":
        return lambda month: _bits(d % 7 == 1 for d in range(month.days + 1))
    if tick == "wm":
        return lambda month: _bits(d == 1 or (d > 0 and month.weekday(d) == 6) for d in range(month.days + 1))
    if tick == "wy":
        return lambda month: _bits(d > 0 and month.weekday(d) == 0 for d in range(month.days + 1))
    if tick == "M":
        return lambda month: 1 << 1
    if tick == "Y":
        return lambda month: (1 << 1) if month.month == 1 else 0
    return None


class _Exception:
    """A later.js ``except`` clause compiled for exclusion: the days it covers and, on those days, the
    seconds it covers."""

    __slots__ = ("checks", "cover", "months", "years")

    def __init__(self, spec: RuleSpec) -> None:
        self.checks = _day_checks(spec)
        self.months = spec.values.get("M")
        self.years = spec.values.get("Y")
        self.cover = int.from_bytes(spec.time_mask(tick_starts_only=False), "big")

    def days_in(self, month: _Month) -> int:
        """Bitmask of the days of ``month`` this exception covers (at least in part)."""
        if (self.months is not None and month.month not in self.months) or (
            self.years is not None and month.year not in self.years
        ):
            return 0
        days = (1 << (month.days + 1)) - 2
        for check in self.checks:
            days &= check(month)
        return days


class WallRule:
    """A :class:`RuleSpec` (minus any exceptions) compiled for fast wall-clock matching."""

    __slots__ = (
        "_checks",
        "_exceptions",
        "_masks",
        "_month_cache",
        "_months",
        "_year_list",
        "_years",
        "follows_real_time",
        "mask",
        "spec",
    )

    def __init__(self, spec: RuleSpec, exceptions: Iterable[RuleSpec] = ()) -> None:
        self.spec = spec
        self.mask = spec.time_mask()
        checks = _day_checks(spec)
        tick_check = _tick_start_check(spec.tick)
        if tick_check is not None:
            checks.append(tick_check)
        self._checks = checks
        self._exceptions = [_Exception(e) for e in exceptions]
        self._masks: dict[tuple[int, ...], bytes] = {(): self.mask}
        self._month_cache: dict[tuple[int, int], tuple[bytes, tuple[bytes, ...] | None]] = {}
        self._months = spec.values.get("M")
        self._years = spec.values.get("Y")
        self._year_list = None if self._years is None else sorted(self._years)
        #: fires in every hour the same way (e.g. every 5 minutes): follows real time across DST changes
        self.follows_real_time = (
            granularity(spec.tick) < _DAY and any(self.mask) and self.mask == self.mask[:3600] * 24
        )

    @property
    def never_fires_in_a_day(self) -> bool:
        return not any(self.mask)

    def _masked(self, key: tuple[int, ...]) -> bytes:
        mask = self._masks.get(key)
        if mask is None:
            cover = 0
            for index in key:
                cover |= self._exceptions[index].cover
            bits = int.from_bytes(self.mask, "big") & ~cover
            mask = bits.to_bytes(_SECONDS_PER_DAY, "big")
            self._masks[key] = mask
        return mask

    def _month(self, year: int, month: int) -> tuple[bytes, tuple[bytes, ...] | None]:
        key = (year, month)
        cached = self._month_cache.get(key)
        if cached is not None:
            return cached
        days = bytearray(32)
        masks: list[bytes] | None = None
        if (self._months is None or month in self._months) and (self._years is None or year in self._years):
            view = _Month(year, month)
            allowed = (1 << (view.days + 1)) - 2
            for check in self._checks:
                allowed &= check(view)
            if allowed and self._exceptions:
                masks = [b""] * 32
                covered = [e.days_in(view) for e in self._exceptions]
                partial = 0
                for index, days_covered in enumerate(covered):
                    if self._masked((index,)).find(1) < 0:  # excludes every firing time of the day
                        allowed &= ~days_covered
                    else:
                        partial |= days_covered
                for number in range(1, view.days + 1):
                    if not allowed >> number & 1:
                        continue
                    if not partial >> number & 1:
                        masks[number] = self.mask
                        continue
                    active = tuple(i for i, days_covered in enumerate(covered) if days_covered >> number & 1)
                    mask = self._masked(active) if active else self.mask
                    if mask.find(1) < 0:
                        allowed &= ~(1 << number)
                    else:
                        masks[number] = mask
            for number in range(1, view.days + 1):
                if allowed >> number & 1:
                    days[number] = 1
        if len(self._month_cache) >= _CACHE_LIMIT:
            self._month_cache.clear()
        result = (bytes(days), None if masks is None else tuple(masks))
        self._month_cache[key] = result
        return result

    def next_wall(self, start: datetime) -> datetime | None:
        """The first matching wall-clock time at or after ``start`` (naive; fractions of a second are
        ignored), or ``None`` if there is none within 400 years."""
        year, month, wanted_day = start.year, start.month, start.day
        second = start.hour * 3600 + start.minute * 60 + start.second
        years, year_set = self._year_list, self._years
        if years is not None:
            first = bisect.bisect_left(years, year)
            if first == len(years):
                return None
            if years[first] > year:
                year, month, wanted_day, second = years[first], 1, 1, 0
        limit = min(9999, year + _HORIZON_YEARS)
        while year <= limit:
            if years is not None and year_set is not None and year not in year_set:
                later = bisect.bisect_right(years, year)
                if later == len(years):
                    return None
                year, month, wanted_day, second = years[later], 1, 1, 0
                continue
            days, masks = self._month(year, month)
            day = days.find(1, wanted_day)
            if day != wanted_day:
                second = 0
            while day > 0:
                mask = self.mask if masks is None else masks[day]
                found = mask.find(1, second)
                if found >= 0:
                    return datetime(year, month, day, found // 3600, found // 60 % 60, found % 60)
                second = 0
                day = days.find(1, day + 1)
            wanted_day, second = 1, 0
            month += 1
            if month == 13:
                month = 1
                year += 1
        return None
