"""Cron expressions: Ghost's 6-field form (seconds first) and classic 5-field cron.

Six fields are ``second minute hour day-of-month month day-of-week``; five fields drop the second
(it is 0). Each field is a comma-separated list of ``*``, ``N``, ``A-B``, each optionally ``/STEP``;
``N/STEP`` means ``N-max/STEP`` (so ``1/5`` in the minute field is 1, 6, 11, ...). Month and weekday
names (``JAN``, ``MON``) and the macros ``@hourly``, ``@daily``/``@midnight``, ``@weekly``,
``@monthly`` and ``@yearly``/``@annually`` are accepted too; ``?``, ``L``, ``W`` and ``#`` are not.
Day-of-week 0 and 7 are both Sunday.

When day-of-month and day-of-week are both restricted, a 6-field expression fires on days that match
**both** (later.js, which Ghost uses); a 5-field expression fires on days that match **either**
(standard cron). For the 5-field rule a field counts as unrestricted when it is ``*``, or when it lists
every value while the other day field contains a ``*`` — the rule croniter applies.
"""

from __future__ import annotations

import calendar
import difflib
import re
from collections.abc import Mapping
from datetime import tzinfo

from jobmanager_nb.errors import InvalidScheduleError
from jobmanager_nb.schedules.base import invalid
from jobmanager_nb.schedules.calendar import CalendarSchedule
from jobmanager_nb.schedules.describe import describe_calendar
from jobmanager_nb.schedules.rules import RuleSpec

__all__ = ["CronSchedule", "looks_like_cron", "parse_cron"]

_FIELDS = ("second", "minute", "hour", "day of month", "month", "day of week")
_UNITS = ("s", "m", "h", "D", "M", "d")
_RANGES = ((0, 59), (0, 59), (0, 23), (1, 31), (1, 12), (0, 7))
_MONTHS = {
    name: number
    for number, name in enumerate(
        ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"), start=1
    )
}
_WEEKDAYS = {name: number for number, name in enumerate(("sun", "mon", "tue", "wed", "thu", "fri", "sat"))}
_MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_CRON_TOKEN = re.compile(r"[0-9*?,/\-LW#]+", re.ASCII)
_MAX_DIGITS = 6


def looks_like_cron(text: str) -> bool:
    """Whether a string is meant as cron rather than later.js text (which always starts with a word)."""
    stripped = text.strip()
    if not stripped:
        return False
    if stripped[0] in "0123456789*?":
        return True
    if stripped[0] == "@":
        return stripped[1:2].isalpha()
    tokens = stripped.split()
    cronish = sum(1 for token in tokens if _CRON_TOKEN.fullmatch(token))
    return 4 <= len(tokens) <= 7 and cronish >= len(tokens) - 1


class _Field:
    __slots__ = ("high", "index", "low", "name", "position", "spec", "text")

    def __init__(self, spec: str, index: int, text: str, position: int) -> None:
        self.spec = spec
        self.index = index
        self.name = _FIELDS[index]
        self.low, self.high = _RANGES[index]
        self.text = text
        self.position = position

    def error(self, reason: str) -> InvalidScheduleError:
        return invalid(self.spec, f"{reason} (the {self.name} field, at position {self.position})")

    def names(self) -> Mapping[str, int]:
        if self.index == 4:
            return _MONTHS
        if self.index == 5:
            return _WEEKDAYS
        return {}

    def number(self, token: str, *, range_end: bool = False) -> int:
        if token.isdigit() and token.isascii():
            if len(token) > _MAX_DIGITS:
                raise self.error(f"{self.name} {token} is out of range {self.low}-{self.high}")
            value = int(token)
        else:
            names = self.names()
            value_or_none = names.get(token.lower())
            if value_or_none is None:
                raise self.error(self._not_a_number(token))
            value = value_or_none
            if range_end and self.index == 5 and value == 0:
                value = 7  # MON-SUN: Sunday at the end of a range is day 7
        if not self.low <= value <= self.high:
            raise self.error(f"{self.name} {value} is out of range {self.low}-{self.high}")
        return value

    def _not_a_number(self, token: str) -> str:
        upper = token.upper()
        if token == "":
            return "a value is missing"
        if "?" in token:
            return "'?' is not supported (it means 'any' in Quartz cron); use '*'"
        if "#" in token:
            return (
                "'#' (nth weekday of the month) is not supported; "
                "use the text form, e.g. 'on the 2nd day instance on tuesday'"
            )
        if upper == "L" or upper.endswith("L") or upper == "LW":
            return "'L' (last) is not supported; use the text form, e.g. 'on the last day of the month'"
        if upper.endswith("W"):
            return "'W' (nearest weekday) is not supported"
        names = self.names()
        if names:
            close = difflib.get_close_matches(token.lower(), list(names), n=1, cutoff=0.6)
            hint = f' (did you mean "{close[0].upper()}"?)' if close else ""
            kind = "month" if self.index == 4 else "weekday"
            return f'{self.name} "{token}" is not a number or a {kind} name{hint}'
        return f'{self.name} "{token}" is not a number'

    def parse(self) -> frozenset[int]:
        values: set[int] = set()
        for item in self.text.split(","):
            values.update(self._item(item))
        if self.index == 5:
            values = {0 if v == 7 else v for v in values}
        return frozenset(values)

    def _item(self, item: str) -> range:
        if item == "":
            raise self.error("a list item is empty")
        base, slash, step_text = item.partition("/")
        step = 1
        if slash:
            if not (step_text.isdigit() and step_text.isascii()):
                raise self.error(f'the step "{step_text}" in "{item}" is not a number')
            step = int(step_text[: _MAX_DIGITS + 1])
            if step == 0:
                raise self.error(f'a step of 0 in "{item}" never advances; use 1 or more')
        top = 6 if self.index == 5 else self.high  # 7 is only an alias for Sunday
        if base == "*":
            return range(self.low, top + 1, step)
        first, dash, last = base.partition("-")
        if dash:
            low = self.number(first)
            high = self.number(last, range_end=True)
            if low > high:
                raise self.error(f'the range "{base}" is reversed; write it from low to high')
            return range(low, high + 1, step)
        value = self.number(first)
        if slash:
            return range(value, max(top, value) + 1, step)
        return range(value, value + 1)


def parse_cron(expression: str) -> tuple[RuleSpec, bool]:
    """Parse a cron expression into a rule; also says whether it had a seconds field."""
    text = expression.strip()
    if text.startswith("@"):
        macro = text.lower()
        if macro not in _MACROS:
            close = difflib.get_close_matches(macro, list(_MACROS), n=1, cutoff=0.6)
            hint = f' (did you mean "{close[0]}"?)' if close else ""
            known = ", ".join(_MACROS)
            raise invalid(expression, f'unknown cron macro "{text}"{hint}; known ones: {known}')
        text = _MACROS[macro]
        lead = 0
    else:
        lead = len(expression) - len(expression.lstrip())
    found = [(m.group(), m.start() + lead) for m in re.finditer(r"\S+", text)]
    if len(found) not in (5, 6):
        hint = ""
        if len(found) == 1 and found[0][0].replace(".", "", 1).isdigit():
            number = found[0][0]
            hint = f"; to repeat every {number} seconds pass a number (at={number}), not a string"
        raise invalid(
            expression,
            "a cron expression has 6 fields (second minute hour day-of-month month day-of-week) "
            f"or 5 (minute hour day-of-month month day-of-week), this one has {len(found)}{hint}",
        )
    has_seconds = len(found) == 6
    if not has_seconds:
        found.insert(0, ("0", -1))
    fields = [_Field(expression, index, token, position) for index, (token, position) in enumerate(found)]
    values = {_UNITS[i]: f.parse() for i, f in enumerate(fields)}
    day_text, weekday_text = fields[3].text, fields[5].text
    day_is_star = _is_wildcard(day_text, values["D"], 31, weekday_text)
    weekday_is_star = _is_wildcard(weekday_text, values["d"], 7, day_text)
    day_or = not has_seconds and not day_is_star and not weekday_is_star
    if day_is_star:
        del values["D"]
    if weekday_is_star:
        del values["d"]
    if "M" in values and len(values["M"]) == 12:
        del values["M"]
    if "d" in values:  # cron numbering (Sunday 0) to Python's (Monday 0)
        values["d"] = frozenset((v - 1) % 7 for v in values["d"])
    if "D" in values and not day_or:
        _check_days_exist(expression, values["D"], values.get("M"))
    return RuleSpec(values=values, tick="s", day_or=day_or), has_seconds


def _is_wildcard(text: str, values: frozenset[int], size: int, other_text: str) -> bool:
    return text == "*" or (len(values) == size and "*" in other_text)


def _check_days_exist(expression: str, days: frozenset[int], months: frozenset[int] | None) -> None:
    month_list = sorted(months) if months is not None else list(range(1, 13))
    longest = max(calendar.monthrange(2028, month)[1] for month in month_list)  # 2028: leap year
    if min(days) > longest:
        names = [calendar.month_name[m] for m in month_list]
        where = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]
        day_text = ", ".join(str(d) for d in sorted(days))
        raise invalid(expression, f"it never fires: day {day_text} does not occur in {where}")


class CronSchedule(CalendarSchedule):
    """A cron expression (5 or 6 fields), matched in the wall-clock time of :attr:`tz`."""

    __slots__ = ("_has_seconds",)
    _has_seconds: bool
    kind = "cron"

    def __init__(self, expression: str, tz: tzinfo) -> None:
        rule, has_seconds = parse_cron(expression)
        super().__init__(expression, tz, [rule])
        object.__setattr__(self, "_has_seconds", has_seconds)

    @property
    def has_seconds(self) -> bool:
        """True for the 6-field form (seconds first)."""
        return self._has_seconds

    def describe(self) -> str:
        return describe_calendar(self.rules, (), show_seconds=self._has_seconds)
