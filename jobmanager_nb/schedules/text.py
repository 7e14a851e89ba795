"""later.js text schedules (``every 5 minutes``, ``at 10:15 am``, ``on the last day of the month``).

The language is a list of *constraints* on calendar units, aligned to the calendar rather than to the
last run. Clauses (case-insensitive, in any order):

=========================================  ==================================================
``every N <unit>``                          unit value in {first, first+N, ...} (seconds, minutes
                                            and hours count from 0; days and months from 1)
``every weekday`` / ``every weekend``       Monday-Friday / Saturday and Sunday
``on mon,wed,fri``, ``on mon through fri``  days of the week
``on the first|last|Nth <unit>``            one value of a unit (``day of the month``, ...)
``of jan,feb``, ``in 2027``                 months, years
``at 10:15 am``, ``at 17:30 and 18:00``     times of day (to the second)
``after 10:00``, ``before 12:00``           time-of-day bounds (``after`` inclusive)
``also``                                    starts another schedule; the union fires
``except``                                  what follows is excluded
=========================================  ==================================================

All the clauses of one schedule must hold. The schedule fires at the start of each period of its
finest constrained unit (its *tick*): ``every 5 minutes`` at second 0 of minutes 0, 5, ...;
``on monday`` at 00:00:00 on Mondays; ``of jan`` at 00:00:00 on January 1. This is later.js's
meaning; ``docs/schedules.md`` lists every phrase, what it fires at, and where we differ.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import tzinfo

from jobmanager_nb.errors import InvalidScheduleError
from jobmanager_nb.schedules.base import invalid
from jobmanager_nb.schedules.calendar import CalendarSchedule
from jobmanager_nb.schedules.describe import describe_calendar
from jobmanager_nb.schedules.rules import TIME_UNITS, RuleSpec, granularity

__all__ = ["TextSchedule", "parse_text"]

_TOKEN = re.compile(
    r"""
    (?P<time>(?P<th>\d{1,2}):(?P<tm>\d{1,2})(?::(?P<ts>\d{1,2}))?(?:\s*(?P<tap>am|pm)\b)?)
    |(?P<ampm>(?P<ah>\d{1,2})\s*(?P<aap>am|pm)\b)
    |(?P<num>(?P<digits>\d+)(?:st|nd|rd|th)?)
    |(?P<word>[a-z]+)
    |(?P<punct>[,@-])
    """,
    re.VERBOSE | re.IGNORECASE | re.ASCII,
)
_MAX_DIGITS = 9


@dataclass(frozen=True)
class _Token:
    kind: str  # "time", "num", "word", "punct", "end"
    text: str  # lower-cased
    position: int
    value: int = 0


# --- vocabulary -----------------------------------------------------------------------------------

_UNIT_NAMES = {
    "s": "second", "m": "minute", "h": "hour", "D": "day of the month", "d": "day of the week",
    "dy": "day of the year", "dc": "day instance", "wm": "week of the month", "wy": "week of the year",
    "M": "month", "Y": "year",
}  # fmt: skip
#: (first, last) values per unit, in later.js numbering (days of the week: Sunday 1 ... Saturday 7)
_TEXT_RANGES = {
    "s": (0, 59), "m": (0, 59), "h": (0, 23), "D": (1, 31), "d": (1, 7), "dy": (1, 366), "dc": (1, 5),
    "wm": (1, 6), "wy": (1, 53), "M": (1, 12), "Y": (1970, 9999),
}  # fmt: skip
#: units whose "last" value is a moving target (the last day of *this* month), stored as 0
_MOVING_LAST = frozenset({"D", "dy", "dc", "wm", "wy"})
_SIMPLE_UNITS = {
    "s": "s", "sec": "s", "secs": "s", "second": "s", "seconds": "s",
    "m": "m", "min": "m", "mins": "m", "minute": "m", "minutes": "m",
    "h": "h", "hr": "h", "hrs": "h", "hour": "h", "hours": "h",
    "month": "M", "months": "M", "year": "Y", "years": "Y",
}  # fmt: skip
_UNIT_WORDS = sorted({*_SIMPLE_UNITS, "day", "days", "week", "weeks"})
_WEEKDAY_STEMS = {
    "sun": 6, "mon": 0, "tue": 1, "tues": 1, "wed": 2, "wednes": 2, "thu": 3, "thur": 3, "thurs": 3,
    "fri": 4, "sat": 5, "satur": 5,
}  # fmt: skip
_WEEKDAY_WORDS = {
    **_WEEKDAY_STEMS,
    **{stem + "day": n for stem, n in _WEEKDAY_STEMS.items()},
    **{stem + "days": n for stem, n in _WEEKDAY_STEMS.items()},
}
_MONTH_WORDS = {
    "jan": 1, "january": 1, "feb": 2, "february": 2, "mar": 3, "march": 3, "apr": 4, "april": 4,
    "may": 5, "jun": 6, "june": 6, "jul": 7, "july": 7, "aug": 8, "august": 8, "sep": 9, "sept": 9,
    "september": 9, "oct": 10, "october": 10, "nov": 11, "november": 11, "dec": 12, "december": 12,
}  # fmt: skip
_WORD_TIMES = {"noon": 12 * 3600, "midnight": 0}
_KEYWORDS = (
    "every", "after", "before", "on", "of", "in", "at", "and", "also", "except", "daily", "hourly", "monthly",
)  # fmt: skip
_THROUGH = ("through", "to", "-")

#: reads one list item: (what was expected, words to suggest) -> value
_Item = Callable[[str, Iterable[str]], int]


def _later_weekday_to_python(value: int) -> int:
    """later.js numbers days of the week Sunday 1 … Saturday 7; Python Monday 0 … Sunday 6."""
    return (value - 2) % 7


# --- rule builder ---------------------------------------------------------------------------------


class _Builder:
    """Collects the constraints of one schedule (or one exception) while parsing."""

    def __init__(self, position: int) -> None:
        self.position = position
        self.values: dict[str, set[int]] = {}
        self.after: dict[str, int] = {}
        self.before: dict[str, int] = {}
        self.order: list[str] = []

    @property
    def is_empty(self) -> bool:
        return not (self.values or self.after or self.before)

    def add(self, unit: str, values: Iterable[int]) -> None:
        self.values.setdefault(unit, set()).update(values)
        self.order.append(unit)

    def bound(self, kind: str, unit: str, value: int) -> None:
        if kind == "after":
            self.after[unit] = max(value, self.after.get(unit, value))
        else:
            self.before[unit] = min(value, self.before.get(unit, value))
        self.order.append(unit)

    def tick(self) -> str:
        """The unit whose periods start the firing moments (later.js: the finest constrained unit)."""
        plain = [u for u in self.order if u in self.values]
        bounded = [u for u in self.order if u not in self.values]
        time_plain = [u for u in plain if u in TIME_UNITS]
        if time_plain:
            return _finest(time_plain)
        if any(u in TIME_UNITS for u in bounded):
            return "s"  # only time-of-day bounds: every second inside them, as in later.js
        return _finest(plain or bounded)

    def spec(self) -> RuleSpec:
        return RuleSpec(
            values={unit: frozenset(v) for unit, v in self.values.items()},
            after=dict(self.after),
            before=dict(self.before),
            tick=self.tick(),
        )


def _finest(units: list[str]) -> str:
    best = units[0]
    for unit in units[1:]:
        if granularity(unit) <= granularity(best):  # ties: the one added last, as later.js sorts
            best = unit
    return best


# --- parser ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ParsedText:
    rules: tuple[RuleSpec, ...]
    exceptions: tuple[RuleSpec, ...]
    notes: tuple[str, ...]
    shows_seconds: bool


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = self._tokenize(text)
        self.index = 0
        self.notes: list[str] = []
        self.shows_seconds = False

    # errors -------------------------------------------------------------------------------------

    def error(self, reason: str) -> InvalidScheduleError:
        return invalid(self.text, reason)

    def unexpected(self, token: _Token, expected: str, choices: Iterable[str] = ()) -> InvalidScheduleError:
        if token.kind == "end":
            return self.error(f"it ends too early: expected {expected} at position {token.position}")
        close = difflib.get_close_matches(token.text, list(choices), n=1, cutoff=0.6) if choices else []
        hint = f' (did you mean "{close[0]}"?)' if close else ""
        return self.error(f'expected {expected}, got "{token.text}" at position {token.position}{hint}')

    # tokens -------------------------------------------------------------------------------------

    def _tokenize(self, text: str) -> list[_Token]:
        tokens: list[_Token] = []
        position = 0
        length = len(text)
        while True:
            while position < length and text[position].isspace():
                position += 1
            if position >= length:
                tokens.append(_Token("end", "", position))
                return tokens
            match = _TOKEN.match(text, position)
            if match is None:
                raise self.error(f'unexpected character "{text[position]}" at position {position}')
            tokens.append(self._token(match, position))
            position = match.end()

    def _token(self, match: re.Match[str], position: int) -> _Token:
        raw = match.group().lower()
        if match.group("time") is not None:
            hour, minute = int(match.group("th")), int(match.group("tm"))
            second = int(match.group("ts") or 0)
            if len(match.group("tm")) != 2 or (match.group("ts") is not None and len(match.group("ts")) != 2):
                raise self.error(
                    f'"{raw}" at position {position} is not a time; write it as 10:05 or 10:05:30'
                )
            return _Token(
                "time", raw, position, self._seconds(raw, position, hour, minute, second, match.group("tap"))
            )
        if match.group("ampm") is not None:
            hour = int(match.group("ah"))
            return _Token("time", raw, position, self._seconds(raw, position, hour, 0, 0, match.group("aap")))
        if match.group("num") is not None:
            digits = match.group("digits")
            value = int(digits) if len(digits) <= _MAX_DIGITS else 10**_MAX_DIGITS
            return _Token("num", raw, position, value)
        if match.group("word") is not None:
            return _Token("word", raw, position)
        return _Token("punct", raw, position)

    def _seconds(self, raw: str, position: int, hour: int, minute: int, second: int, half: str | None) -> int:
        where = f'"{raw}" at position {position}'
        if half is not None:
            if not 1 <= hour <= 12:
                raise self.error(f"{where}: with am/pm the hour must be 1-12")
            hour = hour % 12 + (12 if half.lower() == "pm" else 0)
        elif hour > 23:
            raise self.error(f"{where}: hour {hour} is out of range 0-23")
        if minute > 59:
            raise self.error(f"{where}: minute {minute} is out of range 0-59")
        if second > 59:
            raise self.error(f"{where}: second {second} is out of range 0-59")
        if second:
            self.shows_seconds = True
        return hour * 3600 + minute * 60 + second

    def peek(self, ahead: int = 0) -> _Token:
        return self.tokens[min(self.index + ahead, len(self.tokens) - 1)]

    def take(self) -> _Token:
        token = self.peek()
        if token.kind != "end":
            self.index += 1
        return token

    def accept(self, *words: str) -> _Token | None:
        token = self.peek()
        if token.kind in ("word", "punct") and token.text in words:
            return self.take()
        return None

    def accept_phrase(self, *words: str) -> bool:
        for offset, word in enumerate(words):
            token = self.peek(offset)
            if token.kind not in ("word", "punct") or token.text != word:
                return False
        self.index += len(words)
        return True

    # grammar ------------------------------------------------------------------------------------

    def parse(self) -> ParsedText:
        rules: list[_Builder] = []
        exceptions: list[_Builder] = []
        current = _Builder(0)
        rules.append(current)
        target = rules
        while self.peek().kind != "end":
            token = self.take()
            word = token.text if token.kind in ("word", "punct") else ""
            if word == "every":
                self.parse_every(current)
            elif word == "daily":
                current.add("D", range(1, 32))
            elif word == "hourly":
                current.add("h", range(24))
            elif word == "monthly":
                current.add("M", range(1, 13))
            elif word in ("after", "before"):
                self.parse_bound(current, word, token)
            elif word == "on":
                if self.accept("the"):
                    self.parse_on_the(current)
                else:
                    self.parse_on(current)
            elif word == "of":
                current.add(
                    "M", self.parse_list(self.month, "a month name like jan or january", _MONTH_WORDS)
                )
            elif word == "in":
                current.add("Y", self.parse_list(self.year, "a year like 2027", ()))
            elif word in ("at", "@"):
                current.add("t", self.parse_list(self.time_of_day, "a time like 10:15, 17:30 or 5:00 pm", ()))
            elif word in ("and", ","):
                continue
            elif word in ("also", "except"):
                if current.is_empty:
                    raise self.error(f'nothing comes before "{word}" at position {token.position}')
                if word == "except":
                    target = exceptions
                current = _Builder(token.position)
                target.append(current)
            else:
                raise self.unexpected(
                    token, "a clause such as every, at, on, of, after, before, except", _KEYWORDS
                )
        if current.is_empty:
            if len(rules) == 1 and not exceptions and rules[0] is current:
                raise self.error("the schedule is empty")
            raise self.error(f"nothing comes after the clause at position {current.position}")
        return ParsedText(
            rules=tuple(b.spec() for b in rules),
            exceptions=tuple(b.spec() for b in exceptions),
            notes=tuple(self.notes),
            shows_seconds=self.shows_seconds or any("s" in b.values for b in (*rules, *exceptions)),
        )

    def parse_every(self, rule: _Builder) -> None:
        if self.accept("weekday", "weekdays"):
            rule.add("d", range(5))
            return
        if self.accept("weekend", "weekends"):
            rule.add("d", (5, 6))
            return
        if self.peek().kind == "word" and self.peek().text in _WEEKDAY_WORDS:
            rule.add("d", self.parse_list(self.weekday, "a day of the week", _WEEKDAY_WORDS))
            return
        count = 1
        count_token = self.peek()
        if count_token.kind == "num":
            self.take()
            count = count_token.value
            if count < 1:
                raise self.error(
                    f"every {count}: the count at position {count_token.position} must be 1 or more"
                )
        elif not (count_token.kind == "word" and count_token.text in _UNIT_WORDS):
            raise self.unexpected(
                count_token,
                "a number, a unit (second, minute, hour, day, week, month, year), weekday or weekend",
                [*_UNIT_WORDS, "weekday", "weekend"],
            )
        unit = self.unit()
        low, high = _TEXT_RANGES[unit]
        first, last = low, high
        if self.accept("starting", "start"):
            if not self.accept("at"):
                self.accept_phrase("on", "the") or self.accept("on")
            start = self.peek()
            if start.kind == "time":
                raise self.error(
                    f'"starting {start.text}" at position {start.position}: a start is a {_UNIT_NAMES[unit]} '
                    'number; to start at a time of day use "after", e.g. "every 5 minutes after 10:00"'
                )
            first = self.number_in(unit, "a number to start from")
            if self.unit() != unit:
                raise self.error(
                    f"the unit after the start at position {start.position} must match the unit counted"
                )
        elif self.accept_phrase("between", "the") or self.accept("between"):
            first = self.number_in(unit, "the first number of the range")
            if not self.accept("and"):
                raise self.unexpected(self.peek(), '"and" (between N and M)', ["and"])
            last = self.number_in(unit, "the last number of the range")
            if last < first:
                raise self.error(f"between {first} and {last}: the range is reversed")
        values = list(range(first, last + 1, count))
        if count > high - low and unit in ("s", "m", "h", "M", "D"):
            parent = {"s": "minute", "m": "hour", "h": "day", "M": "year", "D": "month"}[unit]
            name = _UNIT_NAMES[unit].split()[0]
            self.notes.append(
                f'"every {count} {name}s" counts {name}s within each {parent} (as later.js does), '
                f"so it fires only at {name} {first}"
            )
        if unit == "d":
            values = [_later_weekday_to_python(v) for v in values]
        rule.add(unit, values)

    def parse_bound(self, rule: _Builder, kind: str, token: _Token) -> None:
        nxt = self.peek()
        if nxt.kind == "time" or (nxt.kind == "word" and nxt.text in _WORD_TIMES):
            rule.bound(kind, "t", self.time_of_day())
            return
        if nxt.kind != "num":
            raise self.unexpected(nxt, f'a time like 10:00 after "{kind}"', ())
        self.take()
        unit = self.unit()
        if unit == "d":
            raise self.error(
                f'"{kind}" at position {token.position} cannot bound days of the week; '
                'use e.g. "on mon through fri"'
            )
        self.check_range(unit, nxt.value, nxt.position)
        rule.bound(kind, unit, nxt.value)

    def parse_on_the(self, rule: _Builder) -> None:
        which = self.peek()
        if self.accept("first"):
            values: list[int] | None = None
            edge = "first"
        elif self.accept("last"):
            values = None
            edge = "last"
        else:
            edge = ""
            values = self.parse_list(self.rank, 'a number like 15th, "first" or "last"', ["first", "last"])
        unit = self.unit()
        low, high = _TEXT_RANGES[unit]
        if unit == "Y" and edge:
            raise self.error(
                f'"on the {edge} year" at position {which.position} has no meaning; use "in 2027"'
            )
        if edge == "first":
            values = [low]
        elif edge == "last":
            values = [0 if unit in _MOVING_LAST else high]
        else:
            assert values is not None
            for value in values:
                self.check_range(unit, value, which.position)
        if unit == "d":
            values = [_later_weekday_to_python(v) for v in values]
        rule.add(unit, values)

    def parse_on(self, rule: _Builder) -> None:
        if self.accept("weekday", "weekdays"):
            rule.add("d", range(5))
        elif self.accept("weekend", "weekends"):
            rule.add("d", (5, 6))
        else:
            rule.add(
                "d", self.parse_list(self.weekday, "a day of the week like mon or monday", _WEEKDAY_WORDS)
            )

    # lists and values ---------------------------------------------------------------------------

    def parse_list(self, item: _Item, expected: str, choices: Iterable[str]) -> list[int]:
        """``item [through item] ((, | and) item [through item])*`` → values."""
        choices = list(choices)
        values: list[int] = []
        while True:
            start_token = self.peek()
            first = item(expected, choices)
            if self.accept(*_THROUGH):
                last = item(expected, choices)
                if last < first:
                    raise self.error(
                        f"the range at position {start_token.position} is reversed; "
                        "write it from first to last"
                    )
                values.extend(range(first, last + 1))
            else:
                values.append(first)
            separator = self.peek()
            if separator.kind in ("word", "punct") and separator.text in ("and", ","):
                following = self.peek(1)
                if self.is_item(item, following):
                    self.take()
                    continue
            return values

    def is_item(self, item: _Item, token: _Token) -> bool:
        if item == self.weekday:
            return token.kind == "word" and token.text in _WEEKDAY_WORDS
        if item == self.month:
            return token.kind == "word" and token.text in _MONTH_WORDS
        if item == self.time_of_day:
            return token.kind == "time" or (token.kind == "word" and token.text in _WORD_TIMES)
        return token.kind == "num"

    def weekday(self, expected: str = "a day of the week", choices: Iterable[str] = ()) -> int:
        token = self.take()
        if token.kind == "word" and token.text in _WEEKDAY_WORDS:
            return _WEEKDAY_WORDS[token.text]
        raise self.unexpected(token, expected, list(choices) or _WEEKDAY_WORDS)

    def month(self, expected: str = "a month", choices: Iterable[str] = ()) -> int:
        token = self.take()
        if token.kind == "word" and token.text in _MONTH_WORDS:
            return _MONTH_WORDS[token.text]
        raise self.unexpected(token, expected, list(choices) or _MONTH_WORDS)

    def year(self, expected: str = "a year", choices: Iterable[str] = ()) -> int:
        token = self.take()
        if token.kind != "num":
            raise self.unexpected(token, expected)
        self.check_range("Y", token.value, token.position)
        return token.value

    def rank(self, expected: str = "a number", choices: Iterable[str] = ()) -> int:
        token = self.take()
        if token.kind != "num":
            raise self.unexpected(token, expected, choices)
        return token.value

    def time_of_day(self, expected: str = "a time like 10:15", choices: Iterable[str] = ()) -> int:
        token = self.take()
        if token.kind == "time":
            return token.value
        if token.kind == "word" and token.text in _WORD_TIMES:
            return _WORD_TIMES[token.text]
        if token.kind == "num":
            raise self.error(
                f'"{token.text}" at position {token.position} is not a time; write it as {token.value}:00'
            )
        raise self.unexpected(token, expected, _WORD_TIMES)

    def number_in(self, unit: str, expected: str) -> int:
        token = self.take()
        if token.kind != "num":
            raise self.unexpected(token, expected)
        self.check_range(unit, token.value, token.position)
        return token.value

    def check_range(self, unit: str, value: int, position: int) -> None:
        low, high = _TEXT_RANGES[unit]
        if not low <= value <= high:
            shown = str(value) if value < 10**_MAX_DIGITS else "a number this large"
            raise self.error(
                f"{_UNIT_NAMES[unit]} {shown} at position {position} is out of range {low}-{high}"
            )

    def unit(self) -> str:
        token = self.take()
        if token.kind == "word":
            word = token.text
            if word in _SIMPLE_UNITS:
                return _SIMPLE_UNITS[word]
            if word in ("day", "days"):
                if self.accept_phrase("of", "the", "week"):
                    return "d"
                if self.accept_phrase("of", "the", "year"):
                    return "dy"
                if self.accept_phrase("of", "the", "month"):
                    return "D"
                if self.accept("instance", "instances"):
                    return "dc"
                return "D"
            if word in ("week", "weeks"):
                if self.accept_phrase("of", "the", "month"):
                    return "wm"
                self.accept_phrase("of", "the", "year")
                return "wy"
        if token.kind == "end":
            raise self.error(
                f"it ends too early: expected a unit (second, minute, hour, day, week, month or year) "
                f"at position {token.position}"
            )
        close = difflib.get_close_matches(token.text, _UNIT_WORDS, n=1, cutoff=0.6)
        hint = f' (did you mean "{close[0]}"?)' if close else ""
        raise self.error(f'unknown unit "{token.text}" at position {token.position}{hint}')


def parse_text(text: str) -> ParsedText:
    """Parse a later.js text schedule; raises :class:`InvalidScheduleError` saying what and where."""
    return _Parser(text).parse()


class TextSchedule(CalendarSchedule):
    """A later.js text schedule, matched in the wall-clock time of :attr:`tz`."""

    __slots__ = ("_parsed",)
    _parsed: ParsedText
    kind = "text"

    def __init__(self, text: str, tz: tzinfo) -> None:
        parsed = parse_text(text)
        super().__init__(text, tz, parsed.rules, parsed.exceptions)
        object.__setattr__(self, "_parsed", parsed)

    def describe(self) -> str:
        parsed = self._parsed
        return describe_calendar(
            parsed.rules, parsed.exceptions, show_seconds=parsed.shows_seconds, notes=parsed.notes
        )
