"""Date and interval schedules."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from jobmanager_nb.schedules import DateSchedule, IntervalSchedule, parse_schedule

UTC = timezone.utc
BERLIN = ZoneInfo("Europe/Berlin")
NOW = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


# --- dates ----------------------------------------------------------------------------------------


def test_a_date_fires_once_at_its_instant() -> None:
    at = datetime(2026, 1, 5, 10, 0, tzinfo=UTC)
    schedule = parse_schedule(at)
    assert isinstance(schedule, DateSchedule)
    assert not schedule.is_recurring
    assert schedule.next_after(NOW) == at
    assert schedule.next_after(at) is None
    assert schedule.is_last(at)
    assert not schedule.is_last(NOW)


def test_a_past_date_never_fires() -> None:
    assert parse_schedule(datetime(2020, 1, 1, tzinfo=UTC)).next_after(NOW) is None


def test_a_naive_date_is_wall_time_in_the_schedule_zone() -> None:
    schedule = parse_schedule(datetime(2026, 7, 1, 9, 0), "Europe/Berlin")
    assert isinstance(schedule, DateSchedule)
    assert schedule.at == datetime(2026, 7, 1, 7, 0, tzinfo=UTC)
    assert schedule.at.tzinfo == BERLIN


def test_an_aware_date_keeps_its_instant_and_shows_in_the_given_zone() -> None:
    schedule = parse_schedule(datetime(2026, 7, 1, 7, 0, tzinfo=UTC), "Europe/Berlin")
    assert isinstance(schedule, DateSchedule)
    assert schedule.at == datetime(2026, 7, 1, 7, 0, tzinfo=UTC)
    assert schedule.describe() == "once at 2026-07-01 09:00 CEST"


def test_a_naive_date_in_the_spring_gap_means_the_end_of_the_gap() -> None:
    schedule = parse_schedule(datetime(2026, 3, 29, 2, 30), "Europe/Berlin")
    assert isinstance(schedule, DateSchedule)
    assert schedule.at.strftime("%H:%M %Z") == "03:00 CEST"


def test_a_naive_repeated_date_means_the_first_occurrence_unless_fold_says_otherwise() -> None:
    first = parse_schedule(datetime(2026, 10, 25, 2, 30), "Europe/Berlin")
    second = parse_schedule(datetime(2026, 10, 25, 2, 30, fold=1), "Europe/Berlin")
    assert isinstance(first, DateSchedule) and isinstance(second, DateSchedule)
    assert first.at.astimezone(UTC) == datetime(2026, 10, 25, 0, 30, tzinfo=UTC)
    assert second.at.astimezone(UTC) == datetime(2026, 10, 25, 1, 30, tzinfo=UTC)


def test_date_descriptions() -> None:
    assert parse_schedule(datetime(2026, 12, 1, 9, 0), "Europe/Berlin").describe() == "once at 2026-12-01 09:00 CET"
    assert parse_schedule(datetime(2026, 12, 1, 9, 0, 5), "UTC").describe() == "once at 2026-12-01 09:00:05 UTC"


# --- intervals ------------------------------------------------------------------------------------


def test_an_interval_fires_every_interval_after_its_anchor() -> None:
    schedule = parse_schedule(90, "UTC", now=NOW)
    assert isinstance(schedule, IntervalSchedule)
    assert schedule.is_recurring
    assert schedule.anchor == NOW
    assert schedule.interval == timedelta(seconds=90)
    assert schedule.next_after(NOW) == NOW + timedelta(seconds=90)
    assert schedule.next_after(NOW + timedelta(seconds=90)) == NOW + timedelta(seconds=180)
    assert schedule.next_after(NOW + timedelta(seconds=100)) == NOW + timedelta(seconds=180)


def test_an_interval_before_its_anchor_starts_at_the_first_interval() -> None:
    schedule = parse_schedule(60, "UTC", now=NOW)
    assert schedule.next_after(NOW - timedelta(days=1)) == NOW + timedelta(seconds=60)


def test_an_interval_counts_real_time_across_daylight_saving() -> None:
    anchor = datetime(2026, 3, 29, 1, 30, tzinfo=BERLIN)
    schedule = parse_schedule(timedelta(hours=1), BERLIN, now=anchor)
    fired = schedule.next_after(anchor)
    assert fired is not None
    assert fired.astimezone(UTC) - anchor.astimezone(UTC) == timedelta(hours=1)
    assert fired.strftime("%H:%M %Z") == "03:30 CEST"


def test_fractional_intervals() -> None:
    schedule = parse_schedule(0.25, "UTC", now=NOW)
    assert schedule.next_after(NOW + timedelta(seconds=1)) == NOW + timedelta(seconds=1.25)


@pytest.mark.parametrize(
    ("at", "text"),
    [
        (90, "every 90 seconds (from when it was added)"),
        (1, "every second (from when it was added)"),
        (0.5, "every 0.5 seconds (from when it was added)"),
        (300, "every 5 minutes (from when it was added)"),
        (timedelta(hours=2), "every 2 hours (from when it was added)"),
        (86400, "every day (from when it was added)"),
    ],
)
def test_interval_descriptions(at: object, text: str) -> None:
    assert parse_schedule(at, "UTC", now=NOW).describe() == text


def test_intervals_compare_by_interval_and_anchor() -> None:
    assert parse_schedule(60, "UTC", now=NOW) == parse_schedule(timedelta(minutes=1), "UTC", now=NOW)
    assert parse_schedule(60, "UTC", now=NOW) != parse_schedule(60, "UTC", now=NOW + timedelta(seconds=1))
