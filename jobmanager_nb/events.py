"""Events the manager publishes, and the bus that delivers them.

Subscribers receive every :class:`Event` in the order it was published, never while the manager
holds a lock, from whichever thread published it (the scheduler thread, the executor's I/O thread
or the inline loop). A subscriber that raises is logged and otherwise ignored. Whoever waits for a
run is released only after its last event has reached every subscriber
(:meth:`EventBus.after_delivery`).
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

__all__ = ["Event", "EventBus", "EventKind", "Subscriber"]

log = logging.getLogger("jobmanager_nb")

EventKind = Literal[
    "added",
    "removed",
    "queued",
    "started",
    "finished",
    "failed",
    "skipped",
    "output",
    "progress",
    "message",
    "paused",
    "resumed",
    "scheduled",
]


@dataclass(frozen=True)
class Event:
    """Something that happened to job ``name``.

    ``run_id`` names the run for run events. ``data`` depends on ``kind``: ``started`` →
    ``{"attempt"}``; ``output`` → ``{"stream", "text"}``; ``progress`` → ``{"fraction", "text"}``;
    ``failed`` → ``{"error", "cancelled"}``, or ``{"error", "retrying": True, "retry_in"}`` when the
    run will be retried in ``retry_in`` seconds; ``skipped`` → ``{"reason"}``; ``message`` →
    ``{"message"}``; ``scheduled`` → ``{"next_run"}``; the others → ``{}``.
    """

    kind: EventKind
    name: str
    at: datetime
    run_id: str | None = None
    data: dict[str, Any] = field(default_factory=dict)


Subscriber = Callable[[Event], None]


class _Deferred:
    """An action queued behind the events published before it."""

    __slots__ = ("action",)

    def __init__(self, action: Callable[[], None]) -> None:
        self.action = action


class EventBus:
    """In-order delivery without a dedicated thread: the first publisher to find the bus idle
    drains the queue; publishers arriving meanwhile only enqueue."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: deque[Event | _Deferred] = deque()
        self._subscribers: tuple[Subscriber, ...] = ()
        self._draining = False
        self._drainer: int | None = None  # the thread delivering, while one is
        self.has_subscribers = False
        """True while anyone listens; publishers skip building events otherwise."""

    def subscribe(self, callback: Subscriber) -> Callable[[], None]:
        """Deliver every later event to ``callback``; returns a function that unsubscribes it."""
        with self._lock:
            self._subscribers = (*self._subscribers, callback)
            self.has_subscribers = True

        def unsubscribe() -> None:
            with self._lock:
                self._subscribers = tuple(s for s in self._subscribers if s is not callback)
                self.has_subscribers = bool(self._subscribers)

        return unsubscribe

    def publish(self, event: Event) -> None:
        """Queue ``event`` and deliver everything queued unless another thread is delivering."""
        with self._lock:
            if not self._subscribers:
                return
            self._pending.append(event)
            if self._draining:
                return
            self._draining = True
            self._drainer = threading.get_ident()
        self._drain()

    def after_delivery(self, action: Callable[[], None]) -> None:
        """Run ``action`` once every event published so far has reached the subscribers.

        Runs it now, on this thread, when nothing is being delivered or this thread is the one
        delivering (a subscriber that publishes must not wait for itself); otherwise the thread
        that is delivering runs it right after those events. An error in a deferred action is
        logged.
        """
        with self._lock:
            if self._draining and self._drainer != threading.get_ident():
                self._pending.append(_Deferred(action))
                return
        action()

    def _drain(self) -> None:
        while True:
            with self._lock:
                if not self._pending:
                    self._draining = False
                    self._drainer = None
                    return
                item = self._pending.popleft()
                subscribers = self._subscribers
            if isinstance(item, _Deferred):
                try:
                    item.action()
                except Exception:
                    log.exception("jobmanager_nb: releasing a waiter failed")
                continue
            event = item
            for subscriber in subscribers:
                try:
                    subscriber(event)
                except Exception:
                    log.exception("jobmanager_nb: an event subscriber failed on %s %r", event.kind, event.name)
