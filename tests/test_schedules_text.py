"""later.js text schedules: every phrase Ghost users write, with its exact fire times, and the errors."""

from __future__ import annotations

from datetime import datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from schedule_support import MONDAY, UTC, fires

from jobmanager_nb.errors import InvalidScheduleError
from jobmanager_nb.schedules import TextSchedule, parse_schedule

# --- the phrases of ghost-semantics.md §3 ---------------------------------------------------------


def test_every_5_minutes_fires_on_the_five_minute_marks_at_second_0() -> None:
    assert fires("every 5 minutes") == [
        "Mon 2026-01-05 09:05:00",
        "Mon 2026-01-05 09:10:00",
        "Mon 2026-01-05 09:15:00",
    ]


def test_every_40_minutes_fires_at_minute_0_and_40_not_every_40_minutes() -> None:
    assert fires("every 40 minutes", 4) == [
        "Mon 2026-01-05 09:40:00",
        "Mon 2026-01-05 10:00:00",
        "Mon 2026-01-05 10:40:00",
        "Mon 2026-01-05 11:00:00",
    ]


def test_every_2_hours_fires_on_even_hours() -> None:
    assert fires("every 2 hours") == [
        "Mon 2026-01-05 10:00:00",
        "Mon 2026-01-05 12:00:00",
        "Mon 2026-01-05 14:00:00",
    ]


def test_every_n_seconds_counts_from_second_0() -> None:
    assert fires("every 5 seconds") == [
        "Mon 2026-01-05 09:02:35",
        "Mon 2026-01-05 09:02:40",
        "Mon 2026-01-05 09:02:45",
    ]


@pytest.mark.parametrize(
    ("spec", "first"),
    [
        ("every 30 sec", "Mon 2026-01-05 09:03:00"),
        ("every 30 secs", "Mon 2026-01-05 09:03:00"),
        ("every 1 second", "Mon 2026-01-05 09:02:31"),
        ("every 10 min", "Mon 2026-01-05 09:10:00"),
        ("every 15 mins", "Mon 2026-01-05 09:15:00"),
        ("every 1 minute", "Mon 2026-01-05 09:03:00"),
        ("every 1 hour", "Mon 2026-01-05 10:00:00"),
        ("every 3 hours", "Mon 2026-01-05 12:00:00"),
    ],
)
def test_unit_spellings(spec: str, first: str) -> None:
    assert fires(spec, 1) == [first]


def test_every_n_days_counts_day_of_month_from_1() -> None:
    assert fires("every 2 days") == [
        "Wed 2026-01-07 00:00:00",
        "Fri 2026-01-09 00:00:00",
        "Sun 2026-01-11 00:00:00",
    ]


def test_every_2_days_restarts_each_month_so_the_31st_and_the_1st_both_fire() -> None:
    after = datetime(2026, 1, 30, tzinfo=UTC)
    assert fires("every 2 days", 2, after) == ["Sat 2026-01-31 00:00:00", "Sun 2026-02-01 00:00:00"]


def test_every_n_months_counts_from_january() -> None:
    assert fires("every 3 months", 4) == [
        "Wed 2026-04-01 00:00:00",
        "Wed 2026-07-01 00:00:00",
        "Thu 2026-10-01 00:00:00",
        "Fri 2027-01-01 00:00:00",
    ]


def test_every_weekday_fires_at_midnight_monday_to_friday() -> None:
    assert fires("every weekday", 5) == [
        "Tue 2026-01-06 00:00:00",
        "Wed 2026-01-07 00:00:00",
        "Thu 2026-01-08 00:00:00",
        "Fri 2026-01-09 00:00:00",
        "Mon 2026-01-12 00:00:00",
    ]


def test_every_weekend_fires_at_midnight_saturday_and_sunday() -> None:
    assert fires("every weekend") == [
        "Sat 2026-01-10 00:00:00",
        "Sun 2026-01-11 00:00:00",
        "Sat 2026-01-17 00:00:00",
    ]


def test_at_10_15_am() -> None:
    assert fires("at 10:15 am", 2) == ["Mon 2026-01-05 10:15:00", "Tue 2026-01-06 10:15:00"]


def test_at_17_30() -> None:
    assert fires("at 17:30", 2) == ["Mon 2026-01-05 17:30:00", "Tue 2026-01-06 17:30:00"]


def test_at_12_am_is_midnight_and_12_pm_is_noon() -> None:
    assert fires("at 12:00 am", 1) == ["Tue 2026-01-06 00:00:00"]
    assert fires("at 12:30 pm", 1) == ["Mon 2026-01-05 12:30:00"]


def test_at_5_pm_every_weekday_skips_the_weekend() -> None:
    friday_evening = datetime(2026, 1, 9, 18, 0, tzinfo=UTC)
    assert fires("at 5:00 pm every weekday", 2, friday_evening) == [
        "Mon 2026-01-12 17:00:00",
        "Tue 2026-01-13 17:00:00",
    ]


def test_on_monday_fires_at_the_start_of_mondays() -> None:
    assert fires("on monday", 2) == ["Mon 2026-01-12 00:00:00", "Mon 2026-01-19 00:00:00"]


def test_on_a_list_of_days() -> None:
    assert fires("on mon,wed,fri") == [
        "Wed 2026-01-07 00:00:00",
        "Fri 2026-01-09 00:00:00",
        "Mon 2026-01-12 00:00:00",
    ]


def test_on_a_range_of_days() -> None:
    assert fires("on fri through sun") == fires("on fri-sun") == fires("on friday, saturday and sunday")


def test_on_the_first_day_of_the_month() -> None:
    assert fires("on the first day of the month", 2) == ["Sun 2026-02-01 00:00:00", "Sun 2026-03-01 00:00:00"]


def test_on_the_last_day_of_the_month_at_23_00() -> None:
    assert fires("on the last day of the month at 23:00", 3) == [
        "Sat 2026-01-31 23:00:00",
        "Sat 2026-02-28 23:00:00",
        "Tue 2026-03-31 23:00:00",
    ]


@pytest.mark.parametrize(("year", "day"), [(2027, "Sun 2027-02-28"), (2028, "Tue 2028-02-29")])
def test_last_day_of_february_in_common_and_leap_years(year: int, day: str) -> None:
    after = datetime(year, 2, 1, tzinfo=UTC)
    assert fires("on the last day of the month at 23:00", 1, after) == [f"{day} 23:00:00"]


def test_on_the_15th_day_of_the_month() -> None:
    assert fires("on the 15th day of the month", 2) == ["Thu 2026-01-15 00:00:00", "Sun 2026-02-15 00:00:00"]


def test_on_several_days_of_the_month() -> None:
    assert fires("on the 1st and 15th day of the month", 2) == [
        "Thu 2026-01-15 00:00:00",
        "Sun 2026-02-01 00:00:00",
    ]


def test_of_jan_feb_fires_at_the_start_of_each_month() -> None:
    assert fires("of jan,feb") == [
        "Sun 2026-02-01 00:00:00",
        "Fri 2027-01-01 00:00:00",
        "Mon 2027-02-01 00:00:00",
    ]


def test_after_10_before_12_alone_fires_every_second_of_the_window() -> None:
    assert fires("after 10:00 before 12:00", 2) == ["Mon 2026-01-05 10:00:00", "Mon 2026-01-05 10:00:01"]
    last_second = datetime(2026, 1, 5, 11, 59, 58, tzinfo=UTC)
    assert fires("after 10:00 before 12:00", 2, last_second) == [
        "Mon 2026-01-05 11:59:59",
        "Tue 2026-01-06 10:00:00",
    ]


def test_after_and_before_bound_a_repeating_schedule() -> None:
    after = datetime(2026, 1, 5, 11, 50, tzinfo=UTC)
    assert fires("every 5 minutes after 10:00 before 12:00", 3, after) == [
        "Mon 2026-01-05 11:55:00",
        "Tue 2026-01-06 10:00:00",
        "Tue 2026-01-06 10:05:00",
    ]


def test_every_5_minutes_except_at_10_00_skips_10_00() -> None:
    after = datetime(2026, 1, 5, 9, 52, tzinfo=UTC)
    assert fires("every 5 minutes except at 10:00") == [
        "Mon 2026-01-05 09:05:00",
        "Mon 2026-01-05 09:10:00",
        "Mon 2026-01-05 09:15:00",
    ]
    assert fires("every 5 minutes except at 10:00", 3, after) == [
        "Mon 2026-01-05 09:55:00",
        "Mon 2026-01-05 10:05:00",
        "Mon 2026-01-05 10:10:00",
    ]


def test_except_on_a_day_excludes_the_whole_day() -> None:
    sunday_night = datetime(2026, 1, 11, 23, 0, tzinfo=UTC)
    assert fires("every hour except on monday", 2, sunday_night) == [
        "Tue 2026-01-13 00:00:00",
        "Tue 2026-01-13 01:00:00",
    ]


def test_at_11_30_am_also_at_4_00_pm_is_the_union() -> None:
    assert fires("at 11:30 am also at 4:00 pm", 3) == [
        "Mon 2026-01-05 11:30:00",
        "Mon 2026-01-05 16:00:00",
        "Tue 2026-01-06 11:30:00",
    ]


# --- later.js grammar beyond the common phrases ---------------------------------------------------


def test_several_times_with_and() -> None:
    assert fires("at 10:00 and 14:00", 3) == [
        "Mon 2026-01-05 10:00:00",
        "Mon 2026-01-05 14:00:00",
        "Tue 2026-01-06 10:00:00",
    ]


def test_every_n_minutes_starting_on_a_minute() -> None:
    assert fires("every 5 minutes starting on the 2nd minute", 2) == [
        "Mon 2026-01-05 09:07:00",
        "Mon 2026-01-05 09:12:00",
    ]


def test_every_n_minutes_between_two_minutes() -> None:
    assert fires("every 10 minutes between 5 and 25", 4) == [
        "Mon 2026-01-05 09:05:00",
        "Mon 2026-01-05 09:15:00",
        "Mon 2026-01-05 09:25:00",
        "Mon 2026-01-05 10:05:00",
    ]


def test_in_a_year() -> None:
    assert fires("at 09:00 in 2027", 1) == ["Fri 2027-01-01 09:00:00"]
    last = parse_schedule("at 09:00 in 2027", "UTC")
    assert last.next_after(datetime(2027, 12, 31, 9, 0, tzinfo=UTC)) is None
    assert last.is_last(datetime(2027, 12, 31, 10, 0, tzinfo=UTC))


def test_on_the_last_day_of_the_week_is_saturday_as_in_later_js() -> None:
    assert fires("on the last day of the week", 1) == ["Sat 2026-01-10 00:00:00"]


def test_on_the_nth_day_instance_gives_the_nth_weekday_of_the_month() -> None:
    # the 2nd Tuesday of the month: Tuesdays in days 8-14
    assert fires("on the 2nd day instance on tuesday", 2) == [
        "Tue 2026-01-13 00:00:00",
        "Tue 2026-02-10 00:00:00",
    ]
    assert fires("on the last day instance on friday at 17:00", 2) == [
        "Fri 2026-01-30 17:00:00",
        "Fri 2026-02-27 17:00:00",
    ]


def test_iso_week_of_the_year() -> None:
    assert fires("on the 3rd week of the year", 1) == ["Mon 2026-01-12 00:00:00"]


def test_day_of_the_year() -> None:
    assert fires("on the 100th day of the year", 1) == ["Fri 2026-04-10 00:00:00"]


# --- phrases we accept beyond Ghost (one obvious meaning each) -----------------------------------


@pytest.mark.parametrize(
    ("spec", "same_as"),
    [
        ("every minute", "every 1 minute"),
        ("every hour", "every 1 hour"),
        ("every second", "every 1 second"),
        ("hourly", "every 1 hour"),
        ("every day at 10:00", "at 10:00"),
        ("daily at 9:00", "at 9:00"),
        ("every monday", "on monday"),
        ("every mon, fri", "on mon,fri"),
        ("on weekdays", "every weekday"),
        ("every weekdays", "every weekday"),
        ("at noon", "at 12:00"),
        ("at midnight", "at 0:00"),
        ("at 5pm", "at 17:00"),
        ("at 5 pm", "at 17:00"),
        ("at 10:15am", "at 10:15 am"),
        ("@ 10:15", "at 10:15"),
        ("  Every 5 Minutes  ", "every 5 minutes"),
        ("EVERY WEEKDAY AT 9:00", "at 9:00 every weekday"),
        ("every 2 hrs", "every 2 hours"),
        ("monthly", "on the first day of the month"),
        ("every 5minutes", "every 5 minutes"),
    ],
)
def test_extra_phrases_mean_what_they_say(spec: str, same_as: str) -> None:
    assert fires(spec, 4) == fires(same_as, 4)


def test_times_with_seconds() -> None:
    assert fires("at 10:15:30", 1) == ["Mon 2026-01-05 10:15:30"]


def test_every_90_minutes_counts_within_the_hour_like_later_js_and_says_so() -> None:
    schedule = parse_schedule("every 90 minutes", "UTC")
    assert fires("every 90 minutes", 2) == ["Mon 2026-01-05 10:00:00", "Mon 2026-01-05 11:00:00"]
    assert "counts minutes within each hour" in schedule.describe()


def test_a_text_schedule_is_a_recurring_text_schedule() -> None:
    schedule = parse_schedule("every 5 minutes", "UTC")
    assert isinstance(schedule, TextSchedule)
    assert schedule.kind == "text"
    assert schedule.is_recurring
    assert schedule.spec == "every 5 minutes"


# --- errors ---------------------------------------------------------------------------------------


def error_of(spec: str) -> str:
    with pytest.raises(InvalidScheduleError) as caught:
        parse_schedule(spec, "UTC")
    message = str(caught.value)
    assert message.startswith("Invalid schedule format")
    return message


def test_a_misspelt_unit_names_position_and_suggestion() -> None:
    assert error_of("every 5 minuets") == (
        'Invalid schedule format: "every 5 minuets": unknown unit "minuets" at position 8 (did you mean "minutes"?)'
    )


@pytest.mark.parametrize(
    ("spec", "fragments"),
    [
        ("evry 5 minutes", ['got "evry" at position 0', 'did you mean "every"']),
        ("on funday", ['"funday" at position 3', 'did you mean "sunday"']),
        ("of janury", ['"janury" at position 3', 'did you mean "january"']),
        ("every 5", ["ends too early", "position 7"]),
        ("at", ["ends too early", "position 2"]),
        ("at 25:00", ["hour 25 is out of range 0-23"]),
        ("at 10:60", ["minute 60 is out of range 0-59"]),
        ("at 13:00 pm", ["with am/pm the hour must be 1-12"]),
        ("at 10", ['"10" at position 3 is not a time', "10:00"]),
        ("every 0 minutes", ["must be 1 or more"]),
        ("on the 32nd day of the month", ["day of the month 32 at position 7 is out of range 1-31"]),
        ("on fri through mon", ["reversed"]),
        ("every 5 minutes also", ["nothing comes after"]),
        ("except at 10:00", ['nothing comes before "except"']),
        ("every 5 minutes!", ['unexpected character "!" at position 15']),
        ("", ["empty"]),
        ("   ", ["empty"]),
        ("every 5 minutes starting at 10:00", ['use "after"']),
        ("every 10 minutes between 10:00 and 12:00", ["between"]),
        ("on the 31st day of the month of feb", ["never fires"]),
        ("every hour after 23:30", ["never fires"]),
        ("on the 99999999999999999999th day of the month", ["a number this large", "out of range"]),
    ],
)
def test_errors_say_what_and_where(spec: str, fragments: list[str]) -> None:
    message = error_of(spec)
    for fragment in fragments:
        assert fragment in message, message


_VOCABULARY = (
    "every", "after", "before", "on", "the", "of", "in", "at", "@", "and", "also", "except", "first",
    "last", "day", "days", "week", "weeks", "month", "months", "year", "years", "second", "seconds",
    "sec", "min", "mins", "minute", "minutes", "hour", "hours", "h", "m", "s", "weekday", "weekend",
    "mon", "monday", "tue", "wed", "fri", "sat", "sun", "jan", "feb", "dec", "through", "to", "-", ",",
    "starting", "start", "between", "instance", "daily", "hourly", "noon", "midnight", "5", "0", "1",
    "7", "31", "59", "60", "90", "2027", "1969", "15th", "1st", "2nd", "10:00", "23:59", "5:00", "pm",
    "am", "12:00", "24:00", "10:15", "*", "*/5", "?", "L", "#",
)  # fmt: skip


@settings(max_examples=250, deadline=None)
@given(st.text(max_size=40))
def test_any_text_parses_or_raises_invalid_schedule_error(text: str) -> None:
    try:
        parse_schedule(text, "UTC")
    except InvalidScheduleError as error:
        assert str(error).startswith("Invalid schedule format")


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(_VOCABULARY), min_size=1, max_size=7).map(" ".join))
def test_any_word_salad_parses_or_raises_invalid_schedule_error(text: str) -> None:
    try:
        schedule = parse_schedule(text, "UTC")
    except InvalidScheduleError as error:
        assert str(error).startswith("Invalid schedule format")
    else:
        schedule.describe()
        schedule.next_after(MONDAY)
