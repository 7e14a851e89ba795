"""The interface every schedule has, and the helpers their parsers share.

A schedule answers one question: :meth:`Schedule.next_after` — the first moment strictly after a given
aware moment at which the job should run, or ``None`` when it never runs again. Schedules are
immutable values: equal inputs give equal schedules, and they can be shared between threads.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from datetime import datetime, tzinfo
from typing import Any, ClassVar

from jobmanager_nb.errors import InvalidScheduleError
from jobmanager_nb.schedules.timezones import tz_label

__all__ = ["Schedule", "invalid", "quote_spec", "require_aware"]


def quote_spec(spec: object) -> str:
    """How an ``at`` value appears in error messages: strings in double quotes, other values as repr."""
    if isinstance(spec, str):
        if '"' not in spec and spec.isprintable() and len(spec) <= 200:
            return f'"{spec}"'
        text = repr(spec)
        return text if len(text) <= 200 else text[:197] + "..."
    return repr(spec)


def invalid(spec: object, reason: str) -> InvalidScheduleError:
    """``Invalid schedule format: "<spec>": <reason>``, ready to raise."""
    return InvalidScheduleError(f"Invalid schedule format: {quote_spec(spec)}: {reason}")


def require_aware(moment: object, what: str = "next_after()") -> datetime:
    """Check that ``moment`` is a timezone-aware datetime and return it."""
    if not isinstance(moment, datetime):
        raise TypeError(f"{what} needs a timezone-aware datetime, not {type(moment).__name__}")
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(
            f"{what} needs a timezone-aware datetime, got naive {moment.isoformat()}; "
            "use e.g. datetime(..., tzinfo=timezone.utc) or datetime.now(timezone.utc)"
        )
    return moment


class Schedule(ABC):
    """When a job runs. Subclasses set ``kind``, ``is_recurring`` and implement :meth:`next_after`."""

    __slots__ = ("_spec", "_tz")
    _spec: object
    _tz: tzinfo

    kind: ClassVar[str] = "schedule"
    #: True for schedules that run more than once.
    is_recurring: ClassVar[bool] = False
    #: True only for :class:`ImmediateSchedule` (``at=None``): the job runs once, when it is added.
    is_immediate: ClassVar[bool] = False

    def __init__(self, spec: object, tz: tzinfo) -> None:
        object.__setattr__(self, "_spec", spec)
        object.__setattr__(self, "_tz", tz)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable")

    @property
    def spec(self) -> object:
        """The ``at`` value this schedule was made from, for display."""
        return self._spec

    @property
    def tz(self) -> tzinfo:
        """The zone whose wall clock the schedule follows; :meth:`next_after` answers in it."""
        return self._tz

    @abstractmethod
    def next_after(self, moment: datetime) -> datetime | None:
        """The first run strictly after ``moment`` (aware), in :attr:`tz`; ``None`` if there is none."""

    def is_last(self, moment: datetime) -> bool:
        """True when nothing runs after ``moment``."""
        return self.next_after(moment) is None

    @abstractmethod
    def describe(self) -> str:
        """One line of English saying when the job runs."""

    def _key(self) -> tuple[object, ...]:
        return (type(self), self._spec, tz_label(self._tz))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Schedule):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._spec!r}, tz={tz_label(self._tz)!r})"
