"""Cron expressions: Ghost's validity lists, the two day-matching rules, names, macros, errors, and
equivalence with croniter on random expressions (in UTC, where no daylight saving can differ)."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from croniter import croniter
from hypothesis import given, settings
from hypothesis import strategies as st
from schedule_support import UTC, fires

from jobmanager_nb.errors import InvalidScheduleError
from jobmanager_nb.schedules import CronSchedule, parse_schedule

# --- Ghost's own cron validity cases (ghost-semantics.md §4, items 26-27) --------------------------


@pytest.mark.parametrize("spec", ["* * * * * *", "1 * * * * *", "0 0 13-23 * * *"])
def test_ghost_valid_cron(spec: str) -> None:
    assert isinstance(parse_schedule(spec, "UTC"), CronSchedule)


@pytest.mark.parametrize("spec", ["0 123 * * * *", "a * * * *", "* 13-24 * * *"])
def test_ghost_invalid_cron(spec: str) -> None:
    with pytest.raises(InvalidScheduleError, match=r"^Invalid schedule format"):
        parse_schedule(spec, "UTC")


def test_out_of_range_names_the_field_and_position() -> None:
    with pytest.raises(InvalidScheduleError) as caught:
        parse_schedule("0 123 * * * *", "UTC")
    assert str(caught.value) == (
        'Invalid schedule format: "0 123 * * * *": minute 123 is out of range 0-59 (the minute field, at position 2)'
    )


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        ("a * * * *", 'minute "a" is not a number'),
        ("* 13-24 * * *", "hour 24 is out of range 0-23"),
        ("0 0 32 * *", "day of month 32 is out of range 1-31"),
        ("0 0 * 13 *", "month 13 is out of range 1-12"),
        ("0 0 * * 8", "day of week 8 is out of range 0-7"),
        ("60 * * * * *", "second 60 is out of range 0-59"),
        ("0 0 L * *", "'L' (last) is not supported"),
        ("0 0 * * 5L", "'L' (last) is not supported"),
        ("0 0 15W * *", "'W' (nearest weekday) is not supported"),
        ("0 0 * * 1#2", "'#' (nth weekday of the month) is not supported"),
        ("0 0 ? * 1", "'?' is not supported"),
        ("0 0 * * FRY", 'did you mean "FRI"'),
        ("0 0 * JUNE *", 'month "JUNE" is not a number or a month name'),
        ("*/0 * * * *", "a step of 0"),
        ("*/x * * * *", 'the step "x"'),
        ("30-10 * * * *", 'the range "30-10" is reversed'),
        ("1,,2 * * * *", "a list item is empty"),
        ("0 0 30 2 *", "it never fires: day 30 does not occur in February"),
        ("0 0 0 31 4,6 *", "day 31 does not occur in April or June"),
        ("* * * *", "this one has 4"),
        ("0 0 0 * * * 2026", "this one has 7"),
        ("300", "pass a number (at=300)"),
        ("@reboot", 'unknown cron macro "@reboot"'),
        ("@dayly", 'did you mean "@daily"'),
    ],
)
def test_errors_say_what_and_where(spec: str, fragment: str) -> None:
    with pytest.raises(InvalidScheduleError) as caught:
        parse_schedule(spec, "UTC")
    assert str(caught.value).startswith("Invalid schedule format: ")
    assert fragment in str(caught.value)


def test_positions_count_leading_whitespace() -> None:
    with pytest.raises(InvalidScheduleError, match=r"at position 4\)"):
        parse_schedule("  0 99 * * *", "UTC")


# --- meaning ---------------------------------------------------------------------------------------


def test_six_fields_put_seconds_first() -> None:
    assert fires("0 1/5 * * * *") == [
        "Mon 2026-01-05 09:06:00",
        "Mon 2026-01-05 09:11:00",
        "Mon 2026-01-05 09:16:00",
    ]
    assert fires("30 */5 * * * *", 1) == ["Mon 2026-01-05 09:05:30"]


def test_every_second() -> None:
    assert fires("* * * * * *", 2) == ["Mon 2026-01-05 09:02:31", "Mon 2026-01-05 09:02:32"]


def test_five_fields_are_classic_minute_first_cron_at_second_0() -> None:
    assert fires("*/15 9-17 * * *", 2) == ["Mon 2026-01-05 09:15:00", "Mon 2026-01-05 09:30:00"]
    schedule = parse_schedule("*/15 9-17 * * *", "UTC")
    assert isinstance(schedule, CronSchedule)
    assert not schedule.has_seconds


def test_ranges_with_steps() -> None:
    assert fires("10-30/5 * * * *", 6) == [
        "Mon 2026-01-05 09:10:00",
        "Mon 2026-01-05 09:15:00",
        "Mon 2026-01-05 09:20:00",
        "Mon 2026-01-05 09:25:00",
        "Mon 2026-01-05 09:30:00",
        "Mon 2026-01-05 10:10:00",
    ]


def test_six_fields_fire_only_on_days_matching_both_day_fields() -> None:
    # Friday the 13th
    assert fires("0 0 0 13 * 5", 3) == [
        "Fri 2026-02-13 00:00:00",
        "Fri 2026-03-13 00:00:00",
        "Fri 2026-11-13 00:00:00",
    ]


def test_five_fields_fire_on_days_matching_either_day_field() -> None:
    assert fires("0 0 13 * 5", 3) == [
        "Fri 2026-01-09 00:00:00",
        "Tue 2026-01-13 00:00:00",
        "Fri 2026-01-16 00:00:00",
    ]


def test_five_fields_with_one_day_field_star_use_the_other() -> None:
    assert fires("0 0 13 * *", 2) == ["Tue 2026-01-13 00:00:00", "Fri 2026-02-13 00:00:00"]
    assert fires("0 0 * * 5", 2) == ["Fri 2026-01-09 00:00:00", "Fri 2026-01-16 00:00:00"]


def test_day_of_week_0_and_7_are_both_sunday() -> None:
    assert fires("0 0 * * 0", 2) == fires("0 0 * * 7", 2) == ["Sun 2026-01-11 00:00:00", "Sun 2026-01-18 00:00:00"]
    assert fires("0 0 * * 5-7", 3) == [
        "Fri 2026-01-09 00:00:00",
        "Sat 2026-01-10 00:00:00",
        "Sun 2026-01-11 00:00:00",
    ]


def test_month_and_weekday_names() -> None:
    assert fires("0 9 * * MON-FRI", 5) == fires("0 9 * * 1-5", 5)
    assert fires("0 9 * * mon-sun", 7) == fires("0 9 * * *", 7)
    assert fires("0 0 1 JAN,jul *", 2) == ["Wed 2026-07-01 00:00:00", "Fri 2027-01-01 00:00:00"]


@pytest.mark.parametrize(
    ("macro", "same_as"),
    [
        ("@hourly", "0 * * * *"),
        ("@daily", "0 0 * * *"),
        ("@midnight", "0 0 * * *"),
        ("@weekly", "0 0 * * 0"),
        ("@monthly", "0 0 1 * *"),
        ("@yearly", "0 0 1 1 *"),
        ("@annually", "0 0 1 1 *"),
        ("@DAILY", "0 0 * * *"),
    ],
)
def test_macros(macro: str, same_as: str) -> None:
    assert fires(macro, 3) == fires(same_as, 3)


def test_the_31st_skips_short_months() -> None:
    assert fires("0 0 31 * *", 3) == [
        "Sat 2026-01-31 00:00:00",
        "Tue 2026-03-31 00:00:00",
        "Sun 2026-05-31 00:00:00",
    ]


def test_february_29_waits_for_a_leap_year() -> None:
    assert fires("0 0 29 2 *", 2) == ["Tue 2028-02-29 00:00:00", "Sun 2032-02-29 00:00:00"]


def test_surrounding_whitespace_is_ignored() -> None:
    assert fires("  */5 * * * *  ", 2) == fires("*/5 * * * *", 2)


# --- croniter equivalence --------------------------------------------------------------------------

_RANGES = [(0, 59), (0, 59), (0, 23), (1, 31), (1, 12), (0, 7)]


@st.composite
def _item(draw: st.DrawFn, low: int, high: int) -> str:
    kind = draw(st.integers(0, 5))
    span = high - low + 1
    if kind == 0:
        return "*"
    if kind == 1:
        return f"*/{draw(st.integers(1, span))}"
    first = draw(st.integers(low, high))
    if kind == 2 or first == high:
        return str(first)
    # croniter 7 expands a degenerate range such as "10-10" to "*", so ranges here are increasing
    last = draw(st.integers(first + 1, high))
    if kind == 3:
        return f"{first}-{last}"
    if kind == 4:
        return f"{first}-{last}/{draw(st.integers(1, span))}"
    return f"{first}/{draw(st.integers(1, span))}"


@st.composite
def _field(draw: st.DrawFn, index: int) -> str:
    low, high = _RANGES[index]
    items = draw(st.lists(_item(low, high), min_size=1, max_size=3))
    if len(items) > 1:  # croniter handles "*" inside a list in its own way; keep lists plain
        items = [item for item in items if item != "*"] or ["*"]
    return ",".join(items)


@st.composite
def cron_expressions(draw: st.DrawFn) -> tuple[str, bool]:
    with_seconds = draw(st.booleans())
    fields = [draw(_field(i)) for i in range(6)]
    return " ".join(fields if with_seconds else fields[1:]), with_seconds


@settings(max_examples=200, deadline=None)
@given(
    cron_expressions(),
    st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2035, 1, 1)).map(
        lambda moment: moment.replace(tzinfo=UTC)
    ),
)
def test_next_fire_times_equal_croniter_in_utc(expression: tuple[str, bool], start: datetime) -> None:
    text, with_seconds = expression
    try:
        schedule = parse_schedule(text, "UTC")
    except InvalidScheduleError as error:
        assert "never fires" in str(error)  # e.g. day 31 of February only
        return
    reference = croniter(text, start, second_at_beginning=with_seconds, day_or=not with_seconds)
    moment = start
    for _ in range(5):
        ours = schedule.next_after(moment)
        theirs = reference.get_next(datetime)
        assert ours == theirs, (text, moment)
        assert ours is not None
        moment = ours


@settings(max_examples=50, deadline=None)
@given(cron_expressions())
def test_next_after_a_fractional_moment_matches_croniter(expression: tuple[str, bool]) -> None:
    text, with_seconds = expression
    try:
        schedule = parse_schedule(text, "UTC")
    except InvalidScheduleError:
        return
    start = datetime(2026, 6, 1, 12, 0, 0, 500_000, tzinfo=UTC)
    reference = croniter(text, start, second_at_beginning=with_seconds, day_or=not with_seconds)
    assert schedule.next_after(start) == reference.get_next(datetime)
    assert schedule.next_after(start) > start + timedelta(0)
