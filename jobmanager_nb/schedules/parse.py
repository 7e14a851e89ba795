"""From an ``at`` value to a :class:`Schedule`, plus the two conveniences built on it.

=====================================  ==========================================================
``at``                                 schedule
=====================================  ==========================================================
``None``                               :class:`ImmediateSchedule`: once, when the job is added
``datetime``                           :class:`DateSchedule`: once (naive = wall time in ``tz``)
``int``/``float`` seconds, timedelta   :class:`IntervalSchedule`: every interval, from ``now``
cron string (5 or 6 fields)            :class:`CronSchedule`
any other string                       :class:`TextSchedule` (later.js text)
=====================================  ==========================================================

Bad values raise :class:`InvalidScheduleError` ("Invalid schedule format: ..."); values of another
type (a list, a bool, a date) raise ``TypeError``.
"""

from __future__ import annotations

import numbers
from datetime import date, datetime, timedelta, tzinfo

from jobmanager_nb.clock import utc_now
from jobmanager_nb.schedules.base import Schedule, invalid, require_aware
from jobmanager_nb.schedules.cron import CronSchedule, looks_like_cron
from jobmanager_nb.schedules.simple import DateSchedule, ImmediateSchedule, IntervalSchedule
from jobmanager_nb.schedules.text import TextSchedule
from jobmanager_nb.schedules.timezones import resolve_tz

__all__ = ["describe_schedule", "next_fire_times", "parse_schedule"]

_ACCEPTED = (
    "None (run now), a datetime (run once), a number of seconds or a timedelta (repeat), "
    "or a string (cron or later.js text)"
)


def parse_schedule(at: object, tz: str | tzinfo | None = None, *, now: datetime | None = None) -> Schedule:
    """Turn an ``at`` value into a :class:`Schedule`.

    ``tz`` is the zone calendar schedules follow and naive datetimes are read in: ``None`` for the
    machine's local zone, an IANA name, or a ``tzinfo``. ``now`` (aware) is where an interval starts
    counting; it defaults to the current time. An already parsed schedule is returned as it is.
    """
    if isinstance(at, Schedule):
        if tz is not None:
            raise ValueError("this schedule is already parsed, with its own zone; pass tz=None")
        return at
    if isinstance(at, bool):
        raise TypeError(f"at must be {_ACCEPTED}; not a bool")
    if at is None:
        return ImmediateSchedule(resolve_tz(tz))
    if isinstance(at, datetime):
        zone = at.tzinfo if (tz is None and at.tzinfo is not None and at.utcoffset() is not None) else None
        return DateSchedule(at, zone if zone is not None else resolve_tz(tz))
    if isinstance(at, date):
        raise TypeError(
            f"at must be {_ACCEPTED}; for a date use a datetime, "
            f"e.g. datetime({at.year}, {at.month}, {at.day}, 9, 0)"
        )
    if isinstance(at, (timedelta, numbers.Real)):
        anchor = utc_now() if now is None else require_aware(now, "parse_schedule(now=...)")
        if isinstance(at, timedelta):
            return IntervalSchedule(at, anchor, resolve_tz(tz))
        try:
            seconds = float(at)
        except (TypeError, ValueError, OverflowError) as error:
            raise invalid(at, "an interval must be a number of seconds") from error
        return IntervalSchedule(seconds if not isinstance(at, int) else at, anchor, resolve_tz(tz))
    if isinstance(at, str):
        zone = resolve_tz(tz)
        if not at.strip():
            raise invalid(at, "the schedule is empty")
        if looks_like_cron(at):
            return CronSchedule(at, zone)
        return TextSchedule(at, zone)
    raise TypeError(f"at must be {_ACCEPTED}; not {type(at).__name__}")


def next_fire_times(
    at: object, n: int = 5, after: datetime | None = None, tz: str | tzinfo | None = None
) -> list[datetime]:
    """The next ``n`` runs of a schedule (or an ``at`` value) strictly after ``after`` (default: now).

    Fewer are returned when the schedule ends; an :class:`ImmediateSchedule` has none (it runs at add
    time, not at a scheduled moment).
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueError(f"n must be a non-negative int, not {n!r}")
    moment = utc_now() if after is None else require_aware(after, "next_fire_times(after=...)")
    schedule = parse_schedule(at, tz, now=moment)
    times: list[datetime] = []
    for _ in range(n):
        following = schedule.next_after(moment)
        if following is None:
            break
        times.append(following)
        moment = following
    return times


def describe_schedule(at: object, tz: str | tzinfo | None = None) -> str:
    """One line of English saying when a schedule (or an ``at`` value) runs."""
    return parse_schedule(at, tz).describe()
