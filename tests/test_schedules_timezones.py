"""Zone resolution and wall-clock classification."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from jobmanager_nb.errors import InvalidScheduleError
from jobmanager_nb.schedules import local_zone, parse_schedule, resolve_tz
from jobmanager_nb.schedules.timezones import classify, transition, tz_label

UTC = timezone.utc
BERLIN = ZoneInfo("Europe/Berlin")


def test_the_tz_variable_names_the_local_zone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "America/New_York")
    assert local_zone() == ZoneInfo("America/New_York")
    monkeypatch.setenv("TZ", ":Europe/Berlin")
    assert local_zone() == BERLIN
    monkeypatch.setenv("TZ", "/usr/share/zoneinfo/Asia/Tokyo")
    assert local_zone() == ZoneInfo("Asia/Tokyo")


def test_an_unusable_tz_variable_falls_back_to_the_system_zone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TZ", raising=False)
    system = local_zone()
    monkeypatch.setenv("TZ", "Not/AZone")
    assert tz_label(local_zone()) == tz_label(system)


def test_none_and_local_mean_the_local_zone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "Europe/Berlin")
    assert resolve_tz(None) == BERLIN
    assert resolve_tz("local") == BERLIN
    assert parse_schedule("at 9:00").tz == BERLIN


def test_names_and_tzinfo_objects() -> None:
    assert resolve_tz("Europe/Berlin") == BERLIN
    assert resolve_tz(" UTC ") == ZoneInfo("UTC")
    assert resolve_tz(UTC) is UTC
    fixed = timezone(timedelta(hours=5, minutes=30))
    assert resolve_tz(fixed) is fixed


@pytest.mark.parametrize("name", ["Europe/Berln", "", "Mars/Olympus", "../etc/passwd", "Europe//Berlin"])
def test_bad_names_are_invalid(name: str) -> None:
    with pytest.raises(InvalidScheduleError, match=r"^Invalid schedule format: unknown timezone"):
        resolve_tz(name)


def test_a_fixed_offset_zone_works_for_schedules() -> None:
    fixed = timezone(timedelta(hours=5, minutes=30))
    fired = parse_schedule("at 9:00", fixed).next_after(datetime(2026, 1, 1, tzinfo=UTC))
    assert fired == datetime(2026, 1, 1, 3, 30, tzinfo=UTC)


def test_classify_unique_repeated_and_missing_wall_times() -> None:
    assert classify(datetime(2026, 7, 1, 12, 0), BERLIN).is_unique
    repeated = classify(datetime(2026, 10, 25, 2, 30), BERLIN)
    assert repeated.is_repeated
    assert repeated.first == datetime(2026, 10, 25, 0, 30)
    assert repeated.second == datetime(2026, 10, 25, 1, 30)
    missing = classify(datetime(2026, 3, 29, 2, 30), BERLIN)
    assert missing.is_missing
    assert missing.first == missing.second == datetime(2026, 3, 29, 1, 0)  # 03:00 CEST


def test_transition_finds_the_exact_second() -> None:
    change = transition(datetime(2026, 3, 29, 0, 0), datetime(2026, 3, 29, 2, 0), BERLIN)
    assert change == datetime(2026, 3, 29, 1, 0)
    lord_howe = ZoneInfo("Australia/Lord_Howe")  # a 30-minute change
    change = transition(datetime(2026, 4, 4, 14, 0), datetime(2026, 4, 4, 16, 0), lord_howe)
    assert change.replace(tzinfo=UTC).astimezone(lord_howe).utcoffset() == timedelta(hours=10, minutes=30)
    assert (change - timedelta(seconds=1)).replace(tzinfo=UTC).astimezone(lord_howe).utcoffset() == timedelta(hours=11)
