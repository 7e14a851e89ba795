"""Schedules: what ``at`` means, and when a job runs next.

:func:`parse_schedule` turns an ``at`` value into a :class:`Schedule`; every schedule answers
``next_after(moment)`` (strictly after an aware moment; ``None`` when it never runs again),
``is_recurring``, ``is_last(moment)``, ``describe()``, ``spec`` and ``tz``. See ``docs/schedules.md``
for the schedule language, daylight-saving rules and the differences from Ghost and later.js.
"""

from __future__ import annotations

from jobmanager_nb.errors import InvalidScheduleError
from jobmanager_nb.schedules.base import Schedule
from jobmanager_nb.schedules.calendar import CalendarSchedule
from jobmanager_nb.schedules.cron import CronSchedule
from jobmanager_nb.schedules.parse import describe_schedule, next_fire_times, parse_schedule
from jobmanager_nb.schedules.simple import DateSchedule, ImmediateSchedule, IntervalSchedule
from jobmanager_nb.schedules.text import TextSchedule
from jobmanager_nb.schedules.timezones import local_zone, resolve_tz

__all__ = [
    "CalendarSchedule",
    "CronSchedule",
    "DateSchedule",
    "ImmediateSchedule",
    "IntervalSchedule",
    "InvalidScheduleError",
    "Schedule",
    "TextSchedule",
    "describe_schedule",
    "local_zone",
    "next_fire_times",
    "parse_schedule",
    "resolve_tz",
]
