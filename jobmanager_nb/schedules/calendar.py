"""Calendar schedules (cron, later.js text): wall-clock rules turned into instants, daylight saving included.

Each rule is matched against the wall clock of the schedule's zone (see :mod:`.rules`). Turning a
matching wall-clock time into an instant follows one of two policies, chosen per rule:

*Fixed wall time* (the default: ``at 9:00``, ``30 2 * * *``, ``every 2 hours``, ``on monday``).
  A time the spring-forward gap skips fires once, at the first instant after the gap (several
  skipped times fire once, together). A time the fall-back overlap repeats fires once, the first
  time it occurs.

*Real time* (rules that fire in every hour the same way: ``every 5 minutes``, ``*/10 * * * * *``,
  ``0 * * * *``). These follow the clock through the change: in the gap there is nothing to match,
  and in the repeated hour they fire in both passes, because each pass is a distinct hour of real
  time. So ``every 15 minutes`` stays 15 minutes apart in real time across both changes.

Either way the results are strictly increasing instants: a moment is never returned twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta, tzinfo

from jobmanager_nb.schedules.base import Schedule, invalid, require_aware
from jobmanager_nb.schedules.rules import RuleSpec, WallRule
from jobmanager_nb.schedules.timezones import classify, from_utc, to_utc, transition, wall_of

__all__ = ["CalendarSchedule"]

_SECOND = timedelta(seconds=1)
_CHECK_FROM = datetime(1970, 1, 1)


def _next_fixed_wall_time(rule: WallRule, tz: tzinfo, moment: datetime) -> datetime | None:
    """Next instant (naive UTC) after ``moment`` under the fixed-wall-time policy."""
    wall, fold = wall_of(moment, tz)
    start = wall.replace(microsecond=0) + _SECOND
    if fold:
        # ``moment`` is in the second pass of a repeated hour: every repeated time already fired
        # in the first pass, so continue from the end of the overlap.
        own = classify(wall, tz)
        if own.is_repeated:
            change = transition(own.first, own.second, tz)
            start = max(start, change + own.offset_before)
    while True:
        found = rule.next_wall(start)
        if found is None:
            return None
        resolved = classify(found, tz)
        if resolved.first > moment:
            return resolved.first
        # A skipped time whose gap ended at or before ``moment``: continue after the gap.
        start = (resolved.first + resolved.offset_after if resolved.is_missing else found) + _SECOND


def _next_real_time(rule: WallRule, tz: tzinfo, moment: datetime) -> datetime | None:
    """Next instant (naive UTC) after ``moment`` under the real-time policy."""
    wall, fold = wall_of(moment, tz)
    start = wall.replace(microsecond=0) + _SECOND
    own = classify(wall, tz)
    if not own.is_repeated:
        return _first_pass(rule, tz, moment, start)
    change = transition(own.first, own.second, tz)
    overlap_start = change + own.offset_after
    overlap_end = change + own.offset_before
    if fold == 0:
        best = _first_pass(rule, tz, moment, start)
        found = rule.next_wall(overlap_start)
        if found is not None and found < overlap_end:
            second_pass = found - own.offset_after
            if best is None or second_pass < best:
                best = second_pass
        return best
    found = rule.next_wall(start)
    if found is not None and found < overlap_end:
        return found - own.offset_after
    return _first_pass(rule, tz, moment, overlap_end)


def _first_pass(rule: WallRule, tz: tzinfo, moment: datetime, start: datetime) -> datetime | None:
    """The first matching wall time from ``start`` that exists, at its first occurrence after ``moment``."""
    while True:
        found = rule.next_wall(start)
        if found is None:
            return None
        resolved = classify(found, tz)
        if resolved.is_missing:
            start = resolved.first + resolved.offset_after  # the first wall time after the gap
            continue
        if resolved.first > moment:
            return resolved.first
        start = found + _SECOND


class CalendarSchedule(Schedule):
    """A union of calendar rules minus exceptions, evaluated in the wall-clock time of :attr:`tz`."""

    __slots__ = ("_exception_specs", "_rule_specs", "_rules")
    _exception_specs: tuple[RuleSpec, ...]
    _rule_specs: tuple[RuleSpec, ...]
    _rules: tuple[WallRule, ...]
    is_recurring = True

    def __init__(
        self,
        spec: object,
        tz: tzinfo,
        rules: Sequence[RuleSpec],
        exceptions: Sequence[RuleSpec] = (),
    ) -> None:
        super().__init__(spec, tz)
        compiled = tuple(WallRule(rule, exceptions) for rule in rules)
        for rule in compiled:
            if rule.never_fires_in_a_day:
                raise invalid(spec, "it never fires: no time of day satisfies all of its conditions")
        if all(rule.next_wall(self._check_start(rule)) is None for rule in compiled):
            raise invalid(spec, "it never fires: no date satisfies all of its conditions")
        object.__setattr__(self, "_rules", compiled)
        object.__setattr__(self, "_rule_specs", tuple(rules))
        object.__setattr__(self, "_exception_specs", tuple(exceptions))

    @staticmethod
    def _check_start(rule: WallRule) -> datetime:
        years = rule.spec.values.get("Y")
        return _CHECK_FROM.replace(year=min(years)) if years else _CHECK_FROM

    @property
    def rules(self) -> tuple[RuleSpec, ...]:
        return self._rule_specs

    @property
    def exceptions(self) -> tuple[RuleSpec, ...]:
        return self._exception_specs

    @property
    def follows_real_time(self) -> bool:
        """True when every rule follows real time across daylight-saving changes (see module doc)."""
        return all(rule.follows_real_time for rule in self._rules)

    def next_after(self, moment: datetime) -> datetime | None:
        instant = to_utc(require_aware(moment))
        tz = self._tz
        best: datetime | None = None
        for rule in self._rules:
            try:
                if rule.follows_real_time:
                    found = _next_real_time(rule, tz, instant)
                else:
                    found = _next_fixed_wall_time(rule, tz, instant)
            except OverflowError:  # ran past datetime.max
                found = None
            if found is not None and (best is None or found < best):
                best = found
        if best is None:
            return None
        try:
            return from_utc(best, tz)
        except OverflowError:
            return None
