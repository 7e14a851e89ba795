"""Calendar schedules across daylight-saving changes and month ends, on the real 2026 transitions.

Europe/Berlin: 2026-03-29 02:00 CET → 03:00 CEST; 2026-10-25 03:00 CEST → 02:00 CET.
America/New_York: 2026-03-08 02:00 EST → 03:00 EDT; 2026-11-01 02:00 EDT → 01:00 EST.
"""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jobmanager_nb.schedules import CalendarSchedule, next_fire_times, parse_schedule

UTC = timezone.utc
BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")


def stamps(spec: str, tz: ZoneInfo, after: datetime, n: int) -> list[str]:
    """Fire times as local wall time with zone abbreviation, e.g. ``03-29 03:00 CEST``."""
    return [t.strftime("%m-%d %H:%M %Z") for t in next_fire_times(spec, n, after, tz)]


# --- spring forward: the skipped hour -------------------------------------------------------------


def test_a_skipped_wall_time_fires_once_at_the_end_of_the_gap() -> None:
    after = datetime(2026, 3, 28, 12, 0, tzinfo=BERLIN)
    assert stamps("30 2 * * *", BERLIN, after, 3) == [
        "03-29 03:00 CEST",
        "03-30 02:30 CEST",
        "03-31 02:30 CEST",
    ]


def test_several_skipped_wall_times_fire_once_together() -> None:
    after = datetime(2026, 3, 28, 12, 0, tzinfo=BERLIN)
    assert stamps("0,15,30,45 2 * * *", BERLIN, after, 2) == ["03-29 03:00 CEST", "03-30 02:00 CEST"]


def test_a_skipped_text_time_fires_at_the_end_of_the_gap_in_new_york() -> None:
    after = datetime(2026, 3, 7, 12, 0, tzinfo=NEW_YORK)
    assert stamps("at 2:30 am", NEW_YORK, after, 2) == ["03-08 03:00 EDT", "03-09 02:30 EDT"]


def test_a_time_just_after_the_gap_is_not_doubled() -> None:
    after = datetime(2026, 3, 28, 12, 0, tzinfo=BERLIN)
    assert stamps("0 2,3 * * *", BERLIN, after, 3) == [
        "03-29 03:00 CEST",
        "03-30 02:00 CEST",
        "03-30 03:00 CEST",
    ]


def test_every_n_minutes_follows_real_time_through_the_gap() -> None:
    after = datetime(2026, 3, 29, 1, 20, tzinfo=BERLIN)
    fired = next_fire_times("every 15 minutes", 4, after, BERLIN)
    assert [t.strftime("%H:%M %Z") for t in fired] == ["01:30 CET", "01:45 CET", "03:00 CEST", "03:15 CEST"]
    gaps = {b.astimezone(UTC) - a.astimezone(UTC) for a, b in itertools.pairwise(fired)}
    assert gaps == {timedelta(minutes=15)}


def test_hourly_at_minute_30_skips_the_missing_hour_and_stays_an_hour_apart() -> None:
    after = datetime(2026, 3, 29, 0, 50, tzinfo=BERLIN)
    assert stamps("30 * * * *", BERLIN, after, 3) == [
        "03-29 01:30 CET",
        "03-29 03:30 CEST",
        "03-29 04:30 CEST",
    ]


def test_every_2_hours_moves_the_skipped_02_00_to_03_00() -> None:
    after = datetime(2026, 3, 29, 0, 30, tzinfo=BERLIN)
    assert stamps("every 2 hours", BERLIN, after, 3) == [
        "03-29 03:00 CEST",
        "03-29 04:00 CEST",
        "03-29 06:00 CEST",
    ]


# --- fall back: the repeated hour -----------------------------------------------------------------


def test_a_repeated_wall_time_fires_once_the_first_time() -> None:
    after = datetime(2026, 10, 24, 12, 0, tzinfo=BERLIN)
    fired = next_fire_times("30 2 * * *", 2, after, BERLIN)
    assert [t.strftime("%m-%d %H:%M %Z") for t in fired] == ["10-25 02:30 CEST", "10-26 02:30 CET"]


def test_a_repeated_text_time_fires_once_in_new_york() -> None:
    after = datetime(2026, 10, 31, 12, 0, tzinfo=NEW_YORK)
    assert stamps("at 1:30 am", NEW_YORK, after, 2) == ["11-01 01:30 EDT", "11-02 01:30 EST"]


def test_from_inside_the_second_pass_a_fixed_time_waits_for_the_next_day() -> None:
    second_pass = datetime(2026, 10, 25, 2, 10, tzinfo=BERLIN, fold=1)
    assert stamps("30 2 * * *", BERLIN, second_pass, 1) == ["10-26 02:30 CET"]


def test_every_n_minutes_fires_in_both_passes_of_the_repeated_hour() -> None:
    after = datetime(2026, 10, 25, 1, 50, tzinfo=BERLIN)
    fired = next_fire_times("*/20 * * * *", 8, after, BERLIN)
    assert [t.strftime("%H:%M %Z") for t in fired] == [
        "02:00 CEST", "02:20 CEST", "02:40 CEST",
        "02:00 CET", "02:20 CET", "02:40 CET",
        "03:00 CET", "03:20 CET",
    ]  # fmt: skip
    instants = [t.astimezone(UTC) for t in fired]
    assert all(b - a == timedelta(minutes=20) for a, b in itertools.pairwise(instants))


def test_every_30_minutes_fires_in_both_passes_in_new_york() -> None:
    after = datetime(2026, 11, 1, 0, 45, tzinfo=NEW_YORK)
    assert stamps("every 30 minutes", NEW_YORK, after, 5) == [
        "11-01 01:00 EDT", "11-01 01:30 EDT", "11-01 01:00 EST", "11-01 01:30 EST", "11-01 02:00 EST",
    ]  # fmt: skip


def test_from_inside_the_first_pass_the_second_pass_comes_next() -> None:
    first_pass_last = datetime(2026, 10, 25, 2, 40, tzinfo=BERLIN)
    assert stamps("*/20 * * * *", BERLIN, first_pass_last, 1) == ["10-25 02:00 CET"]


def test_from_inside_the_second_pass_sub_hourly_continues_in_it() -> None:
    second_pass = datetime(2026, 10, 25, 2, 10, tzinfo=BERLIN, fold=1)
    assert stamps("*/20 * * * *", BERLIN, second_pass, 3) == [
        "10-25 02:20 CET",
        "10-25 02:40 CET",
        "10-25 03:00 CET",
    ]


def test_every_hour_fires_in_both_passes() -> None:
    after = datetime(2026, 10, 25, 1, 30, tzinfo=BERLIN)
    assert stamps("every hour", BERLIN, after, 3) == [
        "10-25 02:00 CEST",
        "10-25 02:00 CET",
        "10-25 03:00 CET",
    ]


def test_the_real_time_policy_is_visible() -> None:
    every_5 = parse_schedule("every 5 minutes", BERLIN)
    at_9 = parse_schedule("at 9:00", BERLIN)
    assert isinstance(every_5, CalendarSchedule)
    assert isinstance(at_9, CalendarSchedule)
    assert every_5.follows_real_time
    assert not at_9.follows_real_time


# --- month ends and zones -------------------------------------------------------------------------


def test_results_are_aware_datetimes_in_the_schedule_zone() -> None:
    fired = parse_schedule("at 9:00", BERLIN).next_after(datetime(2026, 7, 1, tzinfo=UTC))
    assert fired == datetime(2026, 7, 1, 9, 0, tzinfo=BERLIN)
    assert fired is not None and fired.tzinfo is BERLIN


def test_wall_times_follow_the_zone_not_utc() -> None:
    # 13:30 UTC is 08:30 in New York in winter (EST) and 09:30 in summer (EDT)
    assert stamps("at 9:00", NEW_YORK, datetime(2026, 1, 5, 13, 30, tzinfo=UTC), 1) == ["01-05 09:00 EST"]
    assert stamps("at 9:00", NEW_YORK, datetime(2026, 7, 5, 13, 30, tzinfo=UTC), 1) == ["07-06 09:00 EDT"]


def test_last_day_of_the_month_in_every_month_of_a_leap_year() -> None:
    fired = next_fire_times("on the last day of the month", 12, datetime(2028, 1, 1, tzinfo=UTC), "UTC")
    assert [t.day for t in fired] == [31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]


def test_a_naive_moment_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        parse_schedule("every 5 minutes", "UTC").next_after(datetime(2026, 1, 1))


def test_a_moment_with_microseconds_gives_the_next_whole_second() -> None:
    schedule = parse_schedule("* * * * * *", "UTC")
    assert schedule.next_after(datetime(2026, 1, 1, 0, 0, 0, 1, tzinfo=UTC)) == datetime(
        2026, 1, 1, 0, 0, 1, tzinfo=UTC
    )


# --- properties ------------------------------------------------------------------------------------

_SPECS = [
    "* * * * * *", "*/7 * * * * *", "0 */5 * * * *", "30 * * * *", "0 2 * * *", "30 1,2,3 * * *",
    "*/10 1-3 * * *", "0 0 31 * *", "every 15 minutes", "every 40 minutes", "every hour", "every 2 hours",
    "at 2:30 am", "at 1:30 am also at 2:15 am", "every weekday at 2:00",
    "on the last day of the month at 2:30", "every 5 minutes except at 2:00",
    "every 10 minutes after 1:00 before 3:00", "every 30 seconds",
]  # fmt: skip
_ZONES = [UTC, BERLIN, NEW_YORK, ZoneInfo("Australia/Lord_Howe"), ZoneInfo("America/Santiago")]
_TRANSITION_DAYS = [
    datetime(2026, 3, 29, 0, 0, tzinfo=UTC), datetime(2026, 10, 24, 23, 0, tzinfo=UTC),
    datetime(2026, 3, 8, 5, 0, tzinfo=UTC), datetime(2026, 11, 1, 4, 0, tzinfo=UTC),
    datetime(2026, 4, 4, 14, 0, tzinfo=UTC), datetime(2026, 10, 3, 15, 0, tzinfo=UTC),
]  # fmt: skip

moments = st.one_of(
    st.builds(
        lambda base, seconds: base + timedelta(seconds=seconds),
        st.sampled_from(_TRANSITION_DAYS),
        st.floats(min_value=-4 * 3600, max_value=6 * 3600, allow_nan=False),
    ),
    st.datetimes(min_value=datetime(2025, 1, 1), max_value=datetime(2028, 1, 1)).map(lambda m: m.replace(tzinfo=UTC)),
)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(_SPECS), st.sampled_from(_ZONES), moments)
def test_next_after_is_strictly_increasing(spec: str, zone: timezone | ZoneInfo, start: datetime) -> None:
    schedule = parse_schedule(spec, zone)
    moment = start
    for _ in range(8):
        following = schedule.next_after(moment)
        assert following is not None
        assert following.astimezone(UTC) > moment.astimezone(UTC)
        moment = following


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(_SPECS), st.sampled_from(_ZONES), moments, st.floats(min_value=0, max_value=1))
def test_any_moment_before_the_next_fire_gives_that_fire(
    spec: str, zone: timezone | ZoneInfo, start: datetime, fraction: float
) -> None:
    schedule = parse_schedule(spec, zone)
    following = schedule.next_after(start)
    assert following is not None
    gap = following.astimezone(UTC) - start.astimezone(UTC)
    between = start.astimezone(UTC) + gap * fraction
    if between < following.astimezone(UTC):
        assert schedule.next_after(between) == following
