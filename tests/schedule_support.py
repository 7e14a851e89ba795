"""Shared by the cron and text schedule tests: a fixed Monday morning and the fire times after it."""

from __future__ import annotations

from datetime import datetime, timezone

from jobmanager_nb.schedules import parse_schedule

UTC = timezone.utc
#: Monday 2026-01-05, 09:02:30 UTC
MONDAY = datetime(2026, 1, 5, 9, 2, 30, tzinfo=UTC)


def fires(spec: str, n: int = 3, after: datetime = MONDAY) -> list[str]:
    """The next ``n`` fire times of ``spec`` (in UTC) after ``after``, as ``Mon 2026-01-05 09:05:00``."""
    schedule = parse_schedule(spec, "UTC")
    out: list[str] = []
    moment = after
    for _ in range(n):
        nxt = schedule.next_after(moment)
        assert nxt is not None
        out.append(nxt.strftime("%a %Y-%m-%d %H:%M:%S"))
        moment = nxt
    return out
