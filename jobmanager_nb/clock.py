"""Time as an object, so the scheduler can be driven by a fake clock in tests.

:class:`SystemClock` reads the real time. :class:`FakeClock` only moves when told to; whoever sleeps
until a deadline registers a wake-up callback with :meth:`Clock.on_change` so that moving a fake clock
wakes them at once instead of after a real sleep.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Protocol, runtime_checkable

__all__ = ["Clock", "FakeClock", "SystemClock", "utc_now"]


def utc_now() -> datetime:
    """The current time as an aware UTC datetime."""
    return datetime.now(timezone.utc)


@runtime_checkable
class Clock(Protocol):
    """What the scheduler needs to know about time."""

    def now(self) -> datetime:
        """The current moment, timezone-aware (UTC)."""
        ...

    def on_change(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Call ``callback`` whenever the clock jumps (never, for the system clock); returns an unsubscriber."""
        ...

    @property
    def is_real(self) -> bool:
        """True when time passes by itself, so waiting in real seconds is meaningful."""
        ...


class SystemClock:
    """The machine's wall clock."""

    is_real = True

    def now(self) -> datetime:
        return datetime.now(timezone.utc)

    def on_change(self, callback: Callable[[], None]) -> Callable[[], None]:
        return lambda: None

    def __repr__(self) -> str:
        return "SystemClock()"


class FakeClock:
    """A clock that stands still until :meth:`advance` or :meth:`set` moves it. Thread-safe."""

    is_real = False

    def __init__(self, start: datetime | None = None) -> None:
        if start is None:
            start = datetime(2026, 1, 5, 9, 0, 0, tzinfo=timezone.utc)
        if start.tzinfo is None:
            raise ValueError("FakeClock needs a timezone-aware start, e.g. datetime(..., tzinfo=timezone.utc)")
        self._now = start.astimezone(timezone.utc)
        self._lock = threading.Lock()
        self._listeners: list[Callable[[], None]] = []

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def advance(self, seconds: float | timedelta) -> datetime:
        """Move forward by ``seconds`` and wake every listener; returns the new time."""
        step = seconds if isinstance(seconds, timedelta) else timedelta(seconds=seconds)
        if step < timedelta(0):
            raise ValueError("FakeClock.advance() only moves forward; use set() to jump back")
        with self._lock:
            self._now += step
            now = self._now
        self._notify()
        return now

    def set(self, moment: datetime) -> None:
        """Jump to ``moment`` (aware) and wake every listener."""
        if moment.tzinfo is None:
            raise ValueError("FakeClock.set() needs a timezone-aware datetime")
        with self._lock:
            self._now = moment.astimezone(timezone.utc)
        self._notify()

    def on_change(self, callback: Callable[[], None]) -> Callable[[], None]:
        with self._lock:
            self._listeners.append(callback)

        def unsubscribe() -> None:
            with self._lock:
                if callback in self._listeners:
                    self._listeners.remove(callback)

        return unsubscribe

    def _notify(self) -> None:
        with self._lock:
            listeners = list(self._listeners)
        for listener in listeners:
            listener()

    def __repr__(self) -> str:
        return f"FakeClock({self.now().isoformat()})"
