"""One line of English for a calendar schedule, built from its rules.

``0 */5 * * * *`` → "every 5 minutes, at second 0"; ``every weekday at 9:00`` → "at 09:00 on weekdays
(Monday to Friday)". The sentence is derived from the same compiled masks the matcher uses, so what
it says is what fires: a time of day that fires up to six times a day is listed outright.
"""

from __future__ import annotations

import calendar
import itertools
from collections.abc import Callable, Iterable, Sequence

from jobmanager_nb.schedules.rules import DAY_UNITS, RuleSpec

__all__ = ["describe_calendar", "join_words"]

_WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_LIST_TIMES_UP_TO = 6


def join_words(items: Sequence[str], word: str = "and") -> str:
    """``["a"]`` → ``a``; ``["a", "b"]`` → ``a and b``; ``["a", "b", "c"]`` → ``a, b and c``."""
    if not items:
        return ""
    if len(items) == 1:
        return items[0]
    return f"{', '.join(items[:-1])} {word} {items[-1]}"


def _runs(values: Sequence[int]) -> list[tuple[int, int]]:
    runs: list[tuple[int, int]] = []
    for value in values:
        if runs and value == runs[-1][1] + 1:
            runs[-1] = (runs[-1][0], value)
        else:
            runs.append((value, value))
    return runs


def _compact(values: Sequence[int], fmt: Callable[[int], str] = str) -> str:
    parts: list[str] = []
    for first, last in _runs(values):
        if last - first >= 2:
            parts.append(f"{fmt(first)}-{fmt(last)}")
        else:
            parts.extend(fmt(v) for v in range(first, last + 1))
    return join_words(parts)


def _step(values: Sequence[int], high: int) -> int | None:
    """The step of an arithmetic run that continues to the end of the range, else None."""
    if len(values) < 2:
        return None
    step = values[1] - values[0]
    if any(b - a != step for a, b in itertools.pairwise(values)) or values[-1] + step <= high:
        return None
    return step


def _phrase(values: Iterable[int], low: int, high: int, singular: str, plural: str) -> str:
    """``minute 5``, ``minutes 0 and 40``, ``minutes 1, 6, 11, … (every 5 minutes from minute 1)``."""
    ordered = sorted(values)
    if len(ordered) == 1:
        return f"{singular} {ordered[0]}"
    step = _step(ordered, high)
    if step is not None and step > 1 and len(ordered) > 3:
        head = ", ".join(str(v) for v in ordered[:3])
        origin = "" if ordered[0] == low else f" from {singular} {ordered[0]}"
        return f"{plural} {head}, … (every {step} {plural}{origin})"
    return f"{plural} {_compact(ordered)}"


def _even_step(values: frozenset[int], low: int, high: int) -> int | None:
    """N when the values are exactly low, low+N, ... and N divides the range: "every N units"."""
    ordered = sorted(values)
    if len(ordered) == high - low + 1:
        return 1
    step = _step(ordered, high)
    if step is None or ordered[0] != low or (high - low + 1) % step:
        return None
    return step


def _every(step: int, unit: str) -> str:
    return f"every {unit}" if step == 1 else f"every {step} {unit}s"


def _clock(second_of_day: int) -> str:
    hours, rest = divmod(second_of_day, 3600)
    minutes, seconds = divmod(rest, 60)
    return f"{hours:02d}:{minutes:02d}" + (f":{seconds:02d}" if seconds else "")


def _time_phrase(spec: RuleSpec, mask: bytes, show_seconds: bool, tick_starts_only: bool) -> str:
    fires = mask.count(1)
    if fires == 0:
        return "never"
    if fires <= _LIST_TIMES_UP_TO:
        times, position = [], mask.find(1)
        while position >= 0:
            times.append(_clock(position))
            position = mask.find(1, position + 1)
        return "at " + join_words(times)
    if "t" in spec.values:
        first, last = mask.find(1), mask.rfind(1)
        return f"at {fires} times of day between {_clock(first)} and {_clock(last)}"
    seconds, minutes, hours = spec.time_sets(tick_starts_only)
    text = _sub_daily(seconds, minutes, hours, show_seconds or seconds != {0})
    start, end = spec.after.get("t"), spec.before.get("t")
    if start is not None and end is not None:
        text += f", from {_clock(start)} until {_clock(end)}"
    elif start is not None:
        text += f", from {_clock(start)}"
    elif end is not None:
        text += f", before {_clock(end)}"
    return text


def _sub_daily(
    seconds: frozenset[int], minutes: frozenset[int], hours: frozenset[int], show_seconds: bool
) -> str:
    second_step = _even_step(seconds, 0, 59)
    minute_step = _even_step(minutes, 0, 59)
    hour_step = _even_step(hours, 0, 23)
    at_seconds = _phrase(seconds, 0, 59, "second", "seconds")
    at_minutes = _phrase(minutes, 0, 59, "minute", "minutes")
    seconds_note = f", at {at_seconds}" if show_seconds else ""
    if second_step == 1:
        text = "every second" + ("" if minute_step == 1 else f" of {at_minutes}")
    elif second_step is not None and minute_step == 1:
        text = _every(second_step, "second")
    elif minute_step is not None:
        text = _every(minute_step, "minute") + seconds_note
    elif len(minutes) == 1 and minutes == {0} and seconds == {0} and hour_step is not None:
        return _every(hour_step, "hour") + " at minute 0" + (", second 0" if show_seconds else "")
    elif len(minutes) == 1 and len(seconds) == 1:
        text = f"every hour at {at_minutes}" + (f", {at_seconds}" if show_seconds else "")
    else:
        text = f"at {at_seconds} of {at_minutes}" if show_seconds else f"at {at_minutes}"
    if hour_step == 1:
        return text
    return f"{text}, during {_phrase(hours, 0, 23, 'hour', 'hours')}"


def _weekday_phrase(days: frozenset[int]) -> str | None:
    ordered = sorted(days)
    if len(ordered) == 7:
        return None
    if ordered == [0, 1, 2, 3, 4]:
        return "on weekdays (Monday to Friday)"
    if ordered == [5, 6]:
        return "on weekends"
    parts: list[str] = []
    for first, last in _runs(ordered):
        if last - first >= 2:
            parts.append(f"{_WEEKDAYS[first]} to {_WEEKDAYS[last]}")
        else:
            parts.extend(_WEEKDAYS[d] + "s" for d in range(first, last + 1))
    return "on " + join_words(parts)


def _month_names(months: Iterable[int]) -> str:
    return join_words([calendar.month_name[m] for m in sorted(months)])


def _ordinal(number: int) -> str:
    suffix = "th" if 10 <= number % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(number % 10, "th")
    return f"{number}{suffix}"


def _with_last(values: frozenset[int], low: int, high: int, singular: str, plural: str, of: str) -> str:
    plain = sorted(v for v in values if v != 0)
    pieces = []
    if len(plain) == 1:
        pieces.append(f"the {_ordinal(plain[0])} {singular} of the {of}")
    elif plain:
        head, paren, note = _phrase(plain, low, high, singular, plural).partition(" (")
        pieces.append(f"{head} of the {of}" + (f" ({note}" if paren else ""))
    if 0 in values:
        pieces.append(f"the last {singular} of the {of}")
    return "on " + join_words(pieces, "and on")


def _day_phrases(spec: RuleSpec, tick_starts_only: bool) -> list[str]:
    values = spec.values
    parts: list[str] = []
    tick = spec.tick if tick_starts_only else ""
    months = values.get("M")
    if months is not None and len(months) == 12:
        months = None
    if tick == "M":
        parts.append("on the first day of " + (_month_names(months) if months else "every month"))
        months = None
    elif tick == "Y":
        parts.append("on January 1")
    elif tick == "wy":
        parts.append("on Mondays (the start of each ISO week)")
    elif tick == "wm":
        parts.append("on the 1st and on Sundays (the start of each week of the month)")
    elif tick == "dc":
        parts.append("on days 1, 8, 15, 22 and 29 (the start of each day instance)")
    day_text = None
    if "D" in values and len(values["D"] - {0}) < 31:
        day_text = _with_last(values["D"], 1, 31, "day", "days", "month")
    weekday_text = _weekday_phrase(values["d"]) if "d" in values else None
    if spec.day_or and day_text and weekday_text:
        parts.append(f"{day_text} or {weekday_text}")
    elif day_text and weekday_text:  # both must hold
        parts.append(f"{day_text}, only {weekday_text}")
    else:
        parts.extend(text for text in (day_text, weekday_text) if text)
    if "dy" in values:
        parts.append(_with_last(values["dy"], 1, 366, "day", "days", "year"))
    if "dc" in values:
        instances = values["dc"]
        named = [f"days {7 * n - 6}-{min(7 * n, 31)}" for n in sorted(instances) if n]
        if 0 in instances:
            named.append("the last 7 days")
        parts.append(f"in {join_words(named, 'or')} of the month")
    if "wm" in values:
        parts.append(_with_last(values["wm"], 1, 6, "week", "weeks", "month") + " (weeks start on Sunday)")
    if "wy" in values:
        parts.append(
            _with_last(values["wy"], 1, 53, "ISO week", "ISO weeks", "year").replace("on ", "in ", 1)
        )
    if months:
        parts.append("in " + _month_names(months))
    if "Y" in values:
        parts.append("in " + _compact(sorted(values["Y"])))
    for unit in DAY_UNITS:
        if unit in spec.after:
            parts.append(f"from {_unit_value_text(unit, spec.after[unit])}")
        if unit in spec.before:
            parts.append(f"before {_unit_value_text(unit, spec.before[unit])}")
    return parts


def _unit_value_text(unit: str, value: int) -> str:
    names = {"D": "day {} of the month", "dy": "day {} of the year", "dc": "day instance {}",
             "wm": "week {} of the month", "wy": "ISO week {}", "Y": "{}"}  # fmt: skip
    if unit == "M":
        return calendar.month_name[value] if 1 <= value <= 12 else f"month {value}"
    return names.get(unit, unit + " {}").format(value)


def _describe_rule(spec: RuleSpec, show_seconds: bool, *, tick_starts_only: bool = True) -> str:
    mask = spec.time_mask(tick_starts_only=tick_starts_only)
    whole_day = mask.count(1) == len(mask)
    time_text = (
        ""
        if (whole_day and not tick_starts_only)
        else _time_phrase(spec, mask, show_seconds, tick_starts_only)
    )
    day_parts = _day_phrases(spec, tick_starts_only)
    if not day_parts and tick_starts_only and 0 < mask.count(1) <= _LIST_TIMES_UP_TO:
        time_text = "every day " + time_text
    return " ".join(part for part in (time_text, *day_parts) if part)


def describe_calendar(
    rules: Sequence[RuleSpec],
    exceptions: Sequence[RuleSpec] = (),
    *,
    show_seconds: bool = False,
    notes: Sequence[str] = (),
) -> str:
    """English for a union of rules minus exceptions."""
    text = "; also ".join(_describe_rule(rule, show_seconds) for rule in rules)
    if exceptions:
        excluded = [_describe_rule(e, show_seconds, tick_starts_only=False) for e in exceptions]
        text += ", except " + join_words(excluded, "or")
    if notes:
        text += " (" + "; ".join(notes) + ")"
    return text
