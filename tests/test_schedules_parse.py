"""parse_schedule: which ``at`` values become which schedules, and which are refused how."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from fractions import Fraction
from zoneinfo import ZoneInfo

import pytest

from jobmanager_nb.clock import FakeClock
from jobmanager_nb.errors import InvalidScheduleError, JobManagerError
from jobmanager_nb.schedules import (
    CronSchedule,
    DateSchedule,
    ImmediateSchedule,
    IntervalSchedule,
    Schedule,
    TextSchedule,
    describe_schedule,
    next_fire_times,
    parse_schedule,
)

UTC = timezone.utc
NOW = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("at", "kind"),
    [
        (None, ImmediateSchedule),
        (datetime(2026, 12, 1, 9, 0), DateSchedule),
        (datetime(2026, 12, 1, 9, 0, tzinfo=UTC), DateSchedule),
        (90, IntervalSchedule),
        (1.5, IntervalSchedule),
        (Fraction(3, 2), IntervalSchedule),
        (timedelta(minutes=5), IntervalSchedule),
        ("0 */5 * * * *", CronSchedule),
        ("*/5 * * * *", CronSchedule),
        ("@daily", CronSchedule),
        ("every 5 minutes", TextSchedule),
        ("@ 10:00", TextSchedule),
    ],
)
def test_each_kind_of_at_value(at: object, kind: type[Schedule]) -> None:
    assert type(parse_schedule(at, "UTC", now=NOW)) is kind


@pytest.mark.parametrize(
    "at",
    [[1, 2], ("every", "minute"), True, False, b"every 5 minutes", {"at": 5}, object(), 3 + 4j],
)
def test_other_types_raise_type_error_naming_the_accepted_ones(at: object) -> None:
    with pytest.raises(TypeError, match=r"None .*a datetime .*a number of seconds or a timedelta .*a string"):
        parse_schedule(at, "UTC")


def test_a_date_raises_type_error_with_a_hint() -> None:
    with pytest.raises(TypeError, match=r"datetime\(2026, 12, 1, 9, 0\)"):
        parse_schedule(date(2026, 12, 1), "UTC")


@pytest.mark.parametrize(
    "at", [0, -5, 0.0, -0.5, float("nan"), float("inf"), timedelta(0), timedelta(seconds=-1), 1e300]
)
def test_bad_intervals_raise_invalid_schedule_error(at: object) -> None:
    with pytest.raises(InvalidScheduleError, match=r"^Invalid schedule format: "):
        parse_schedule(at, "UTC", now=NOW)


def test_invalid_schedule_error_is_a_value_error_and_a_job_manager_error() -> None:
    with pytest.raises(ValueError) as caught:
        parse_schedule("every 5 minuets", "UTC")
    assert isinstance(caught.value, JobManagerError)


def test_an_already_parsed_schedule_is_returned_unchanged() -> None:
    schedule = parse_schedule("every 5 minutes", "UTC")
    assert parse_schedule(schedule) is schedule
    with pytest.raises(ValueError, match="already parsed"):
        parse_schedule(schedule, "Europe/Berlin")


def test_immediate_runs_once_now_and_schedules_nothing() -> None:
    schedule = parse_schedule(None, "UTC")
    assert schedule.is_immediate
    assert not schedule.is_recurring
    assert schedule.next_after(NOW) is None
    assert schedule.is_last(NOW)
    assert schedule.describe() == "once, now"
    assert next_fire_times(None, 3, NOW, "UTC") == []


def test_only_the_immediate_schedule_is_immediate() -> None:
    for at in (datetime(2026, 12, 1, tzinfo=UTC), 5, "every minute", "* * * * *"):
        assert not parse_schedule(at, "UTC", now=NOW).is_immediate


def test_next_fire_times_lists_the_next_n() -> None:
    assert next_fire_times("*/5 * * * *", 3, NOW, "UTC") == [
        datetime(2026, 1, 5, 9, 5, tzinfo=UTC),
        datetime(2026, 1, 5, 9, 10, tzinfo=UTC),
        datetime(2026, 1, 5, 9, 15, tzinfo=UTC),
    ]


def test_next_fire_times_accepts_a_parsed_schedule_and_stops_when_it_ends() -> None:
    once = parse_schedule(datetime(2026, 1, 5, 10, 0, tzinfo=UTC))
    assert next_fire_times(once, 5, NOW) == [datetime(2026, 1, 5, 10, 0, tzinfo=UTC)]


def test_next_fire_times_anchors_an_interval_at_after() -> None:
    assert next_fire_times(90, 2, NOW, "UTC") == [NOW + timedelta(seconds=90), NOW + timedelta(seconds=180)]


def test_next_fire_times_with_a_fake_clock() -> None:
    clock = FakeClock(datetime(2026, 1, 5, 9, 58, tzinfo=UTC))
    schedule = parse_schedule("every hour", "UTC")
    first = schedule.next_after(clock.now())
    assert first == datetime(2026, 1, 5, 10, 0, tzinfo=UTC)
    clock.advance(120)
    assert schedule.next_after(clock.now()) == datetime(2026, 1, 5, 11, 0, tzinfo=UTC)


def test_next_fire_times_refuses_a_naive_after_and_a_bad_n() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        next_fire_times("every minute", 3, datetime(2026, 1, 1))
    with pytest.raises(ValueError, match="non-negative"):
        next_fire_times("every minute", -1, NOW)


def test_a_naive_now_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        parse_schedule(60, now=datetime(2026, 1, 1))


@pytest.mark.parametrize(
    ("at", "text"),
    [
        ("0 */5 * * * *", "every 5 minutes, at second 0"),
        ("0 1/5 * * * *", "at second 0 of minutes 1, 6, 11, … (every 5 minutes from minute 1)"),
        ("every weekday at 9:00", "at 09:00 on weekdays (Monday to Friday)"),
        (datetime(2026, 12, 1, 9, 0), "once at 2026-12-01 09:00 CET"),
        (90, "every 90 seconds (from when it was added)"),
        (None, "once, now"),
    ],
)
def test_describe_schedule_examples(at: object, text: str) -> None:
    assert describe_schedule(at, "Europe/Berlin") == text


def test_unknown_timezone_names_are_invalid_with_a_suggestion() -> None:
    with pytest.raises(InvalidScheduleError, match=r'unknown timezone "Europe/Berln" .*did you mean "Europe/Berlin"'):
        parse_schedule("every 5 minutes", "Europe/Berln")


def test_a_timezone_of_the_wrong_type_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="tz must be"):
        parse_schedule("every 5 minutes", 5)  # type: ignore[arg-type]


def test_timezone_given_as_name_or_object() -> None:
    by_name = parse_schedule("at 9:00", "Europe/Berlin")
    by_object = parse_schedule("at 9:00", ZoneInfo("Europe/Berlin"))
    assert by_name == by_object
    assert by_name.tz == ZoneInfo("Europe/Berlin")


def test_schedules_are_immutable_values() -> None:
    schedule = parse_schedule("every 5 minutes", "UTC")
    with pytest.raises(AttributeError):
        schedule._spec = "every minute"  # type: ignore[misc]
    assert schedule == parse_schedule("every 5 minutes", "UTC")
    assert schedule != parse_schedule("every 5 minutes", "Europe/Berlin")
    assert len({schedule, parse_schedule("every 5 minutes", "UTC")}) == 1


def test_reprs_show_the_spec_and_zone() -> None:
    assert repr(parse_schedule("0 */5 * * * *", "UTC")) == "CronSchedule('0 */5 * * * *', tz='UTC')"
    assert repr(parse_schedule("every 5 minutes", "Europe/Berlin")) == (
        "TextSchedule('every 5 minutes', tz='Europe/Berlin')"
    )
    assert repr(parse_schedule(None, "UTC")) == "ImmediateSchedule()"
    assert repr(parse_schedule(datetime(2026, 12, 1, 9, 0, tzinfo=UTC))) == (
        "DateSchedule('2026-12-01T09:00:00+00:00')"
    )
    assert repr(parse_schedule(60, "UTC", now=NOW)) == "IntervalSchedule(60, anchor='2026-01-05T09:00:00+00:00')"
