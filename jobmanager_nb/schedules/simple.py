"""The three schedules that need no calendar: now, once at a date, and a fixed interval.

- :class:`ImmediateSchedule` (``at=None``) runs once, when the job is added. Nothing is *scheduled*,
  so :meth:`~ImmediateSchedule.next_after` is always ``None``; the manager runs it at add time.
- :class:`DateSchedule` runs once at an instant. A naive datetime means wall time in the schedule's
  zone; a wall time that a daylight-saving change skips means the first instant after the gap, one
  that happens twice means the first of the two.
- :class:`IntervalSchedule` runs at ``anchor + k * interval`` for k = 1, 2, ...: real elapsed time
  from when it was made (the ``now`` given to the parser), unaffected by daylight saving.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta, tzinfo

from jobmanager_nb.schedules.base import Schedule, invalid, require_aware
from jobmanager_nb.schedules.timezones import classify, from_utc, to_utc

__all__ = ["DateSchedule", "ImmediateSchedule", "IntervalSchedule", "format_duration"]

_MICROSECOND = timedelta(microseconds=1)


class ImmediateSchedule(Schedule):
    """``at=None``: run once, as soon as the job is added."""

    __slots__ = ()
    kind = "immediate"
    is_immediate = True

    def __init__(self, tz: tzinfo) -> None:
        super().__init__(None, tz)

    def next_after(self, moment: datetime) -> datetime | None:
        require_aware(moment)
        return None

    def describe(self) -> str:
        return "once, now"

    def __repr__(self) -> str:
        return "ImmediateSchedule()"


class DateSchedule(Schedule):
    """Run once, at :attr:`at`."""

    __slots__ = ("_at",)
    _at: datetime
    kind = "date"

    def __init__(self, when: datetime, tz: tzinfo) -> None:
        super().__init__(when, tz)
        if when.tzinfo is None or when.utcoffset() is None:
            resolution = classify(when.replace(fold=0), tz)
            # an explicit fold=1 asks for the second of two equal wall times
            instant = resolution.second if when.fold == 1 else resolution.first
            at = from_utc(instant, tz)
        else:
            at = when.astimezone(tz)
        object.__setattr__(self, "_at", at)

    @property
    def at(self) -> datetime:
        """The instant it runs, aware, in :attr:`tz`."""
        return self._at

    def next_after(self, moment: datetime) -> datetime | None:
        require_aware(moment)
        return self._at if to_utc(self._at) > to_utc(moment) else None

    def describe(self) -> str:
        at = self._at
        stamp = at.strftime("%Y-%m-%d %H:%M:%S" if at.second or at.microsecond else "%Y-%m-%d %H:%M")
        if at.microsecond:
            stamp += f".{at.microsecond:06d}".rstrip("0")
        return f"once at {stamp} {at.tzname() or at.strftime('%z')}"

    def __repr__(self) -> str:
        return f"DateSchedule({self._at.isoformat()!r})"


def format_duration(seconds: float) -> str:
    """``90`` → ``"90 seconds"``, ``7200`` → ``"2 hours"``, ``1`` → ``"second"`` (for "every ...")."""
    for size, unit in ((86400, "day"), (3600, "hour"), (60, "minute")):
        if seconds >= size and seconds % size == 0:
            count = int(seconds // size)
            return unit if count == 1 else f"{count} {unit}s"
    if seconds == 1:
        return "second"
    text = f"{seconds:.6f}".rstrip("0").rstrip(".") if seconds != int(seconds) else str(int(seconds))
    return f"{text} seconds"


class IntervalSchedule(Schedule):
    """Run every :attr:`interval`, counted from :attr:`anchor` (the moment the schedule was made)."""

    __slots__ = ("_anchor", "_anchor_utc", "_interval", "_step")
    _anchor: datetime
    _anchor_utc: datetime
    _interval: timedelta
    _step: int
    kind = "interval"
    is_recurring = True

    def __init__(self, every: float | timedelta, anchor: datetime, tz: tzinfo) -> None:
        super().__init__(every, tz)
        require_aware(anchor, "the interval anchor (now=)")
        if isinstance(every, timedelta):
            interval = every
        else:
            seconds = float(every)
            if not math.isfinite(seconds):
                raise invalid(every, "an interval must be a finite number of seconds")
            if seconds <= 0:
                raise invalid(every, "an interval must be a positive number of seconds")
            if seconds > timedelta.max.total_seconds():
                raise invalid(every, "the interval is too long")
            interval = timedelta(seconds=seconds)
        if interval < _MICROSECOND:
            raise invalid(every, "an interval must be positive (at least one microsecond)")
        object.__setattr__(self, "_interval", interval)
        object.__setattr__(self, "_step", interval // _MICROSECOND)
        object.__setattr__(self, "_anchor", anchor.astimezone(tz))
        object.__setattr__(self, "_anchor_utc", to_utc(anchor))

    @property
    def interval(self) -> timedelta:
        return self._interval

    @property
    def anchor(self) -> datetime:
        """The moment the interval counts from; the first run is one interval after it."""
        return self._anchor

    def next_after(self, moment: datetime) -> datetime | None:
        require_aware(moment)
        elapsed = (to_utc(moment) - self._anchor_utc) // _MICROSECOND
        count = elapsed // self._step + 1 if elapsed >= 0 else 1
        try:
            instant = self._anchor_utc + timedelta(microseconds=count * self._step)
        except OverflowError:
            return None
        return from_utc(instant, self._tz)

    def describe(self) -> str:
        return f"every {format_duration(self._interval.total_seconds())} (from when it was added)"

    def _key(self) -> tuple[object, ...]:
        return (type(self), self._interval, self._anchor_utc)

    def __repr__(self) -> str:
        return f"IntervalSchedule({self._spec!r}, anchor={self._anchor.isoformat()!r})"
