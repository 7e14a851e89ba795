"""The wall-clock rule matcher: masks, ticks and day-level units."""

from __future__ import annotations

from datetime import datetime

from jobmanager_nb.schedules.rules import RuleSpec, WallRule


def rule(tick: str = "s", **values: set[int]) -> WallRule:
    return WallRule(RuleSpec(values={unit: frozenset(v) for unit, v in values.items()}, tick=tick))


def test_the_mask_of_a_minute_tick_holds_second_0_of_each_allowed_minute() -> None:
    mask = RuleSpec(values={"m": frozenset({0, 30})}, tick="m").time_mask()
    assert mask.count(1) == 48
    assert mask[0] == mask[1800] == 1
    assert mask[1] == 0


def test_the_mask_of_a_day_tick_holds_only_midnight() -> None:
    mask = RuleSpec(values={"d": frozenset({0})}, tick="d").time_mask()
    assert mask.find(1) == 0
    assert mask.count(1) == 1


def test_time_bounds_cut_the_mask() -> None:
    mask = RuleSpec(after={"t": 36000}, before={"t": 43200}, tick="s").time_mask()
    assert mask.find(1) == 36000
    assert mask.rfind(1) == 43199


def test_next_wall_is_inclusive() -> None:
    every_minute = rule("m", m=set(range(60)))
    moment = datetime(2026, 1, 5, 9, 0, 0)
    assert every_minute.next_wall(moment) == moment
    assert every_minute.next_wall(datetime(2026, 1, 5, 9, 0, 1)) == datetime(2026, 1, 5, 9, 1, 0)


def test_real_time_rules_are_the_ones_that_repeat_every_hour() -> None:
    assert rule("m", m={0, 15, 30, 45}).follows_real_time
    assert rule("s", s={0}, m={5}).follows_real_time
    assert not rule("h", h={0, 2, 4}).follows_real_time
    assert not rule("t", t={36000}).follows_real_time
    assert not rule("d", d={0}).follows_real_time


def test_last_day_values() -> None:
    last_day = rule("D", D={0})
    assert last_day.next_wall(datetime(2028, 2, 1)) == datetime(2028, 2, 29)
    assert last_day.next_wall(datetime(2027, 2, 1)) == datetime(2027, 2, 28)
    last_of_year = rule("dy", dy={0})
    assert last_of_year.next_wall(datetime(2028, 1, 1)) == datetime(2028, 12, 31)


def test_day_instance_and_week_of_month() -> None:
    # the last Friday (weekday 4) of January 2026 is the 30th
    assert rule("d", dc={0}, d={4}).next_wall(datetime(2026, 1, 1)) == datetime(2026, 1, 30)
    # weeks of the month start on Sunday: in February 2026 (starts on a Sunday) week 2 starts on the 8th
    assert rule("wm", wm={2}).next_wall(datetime(2026, 2, 1)) == datetime(2026, 2, 8)
    # March 2026 starts on a Sunday and has 31 days: week 5 starts on the 29th
    assert rule("wm", wm={0}).next_wall(datetime(2026, 3, 1)) == datetime(2026, 3, 29)


def test_iso_week_of_the_year() -> None:
    assert rule("wy", wy={1}).next_wall(datetime(2026, 6, 1)) == datetime(2027, 1, 4)
    # 2026 starts on a Thursday, so it has 53 ISO weeks; the last starts on Monday 28 December
    assert rule("wy", wy={0}).next_wall(datetime(2026, 1, 1)) == datetime(2026, 12, 28)


def test_a_far_year_is_found_and_a_past_one_is_not() -> None:
    assert rule("Y", Y={2500}).next_wall(datetime(2026, 1, 1)) == datetime(2500, 1, 1)
    assert rule("Y", Y={2020}).next_wall(datetime(2026, 1, 1)) is None


def test_day_or_matches_either_day_field() -> None:
    either = WallRule(RuleSpec(values={"D": frozenset({13}), "d": frozenset({4})}, day_or=True))
    both = WallRule(RuleSpec(values={"D": frozenset({13}), "d": frozenset({4})}))
    assert either.next_wall(datetime(2026, 1, 10)) == datetime(2026, 1, 13)
    assert both.next_wall(datetime(2026, 1, 10)) == datetime(2026, 2, 13)


def test_exceptions_remove_seconds_on_the_days_they_hold() -> None:
    spec = RuleSpec(values={"m": frozenset(range(0, 60, 5))}, tick="m")
    at_ten = RuleSpec(values={"t": frozenset({36000})}, tick="t")
    matcher = WallRule(spec, [at_ten])
    assert matcher.next_wall(datetime(2026, 1, 5, 9, 56)) == datetime(2026, 1, 5, 10, 5)
