"""Events the manager publishes, and the bus that delivers them.

Subscribers receive every :class:`Event` in the order it was published, on the bus's own thread
(``jobmanager_nb-events``), never on a worker's, the timer's or the inline loop's: a subscriber that
blocks, or waits for a job, stalls no job. A subscriber that raises — even ``KeyboardInterrupt`` — is
logged and the others still get the event. Actions queued with :meth:`EventBus.after_delivery` run in
the same order, once the events published before them have reached every subscriber; that is how a
run's waiters are released only after its last event was delivered.
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

    ``run_id`` names the run for run events. ``data`` depends on ``kind``: ``queued`` and ``started`` →
    ``{"attempt"}``; ``output`` → ``{"stream", "text"}`` (consecutive writes are merged into one event
    when a subscriber falls behind; ``"dropped"`` then counts the characters left out past
    ``OUTPUT_BATCH_LIMIT``); ``progress`` → ``{"fraction", "text"}``; ``finished`` → ``{"outcome"}``;
    ``failed`` → ``{"outcome", "error", "cancelled"}`` (outcome ``failed``, ``cancelled``, ``timed_out`` or
    ``lost``), or ``{"error", "retrying": True, "retry_in", "retry_at"}`` when the run will be retried in
    ``retry_in`` seconds; ``skipped`` → ``{"reason"}``; ``message`` → ``{"message"}``; ``scheduled`` →
    ``{"next_run"}``; the others → ``{}``.
    """

    kind: EventKind
    name: str
    at: datetime
    run_id: str | None = None
    data: dict[str, Any] = field(default_factory=dict)


Subscriber = Callable[[Event], None]


OUTPUT_BATCH_LIMIT = 1_000_000
"""Characters one merged ``output`` event carries at most (the newest are kept)."""


class _OutputBatch:
    """Consecutive ``output`` events of one run and stream, waiting for a subscriber that fell behind:
    delivered as one event, so a printing job can never queue millions of them."""

    __slots__ = ("chunks", "dropped", "first", "size")

    def __init__(self, first: Event) -> None:
        self.first = first
        self.chunks: deque[str] = deque([first.data["text"]])
        self.size = len(first.data["text"])
        self.dropped = 0

    def matches(self, event: Event) -> bool:
        first = self.first
        same_run = event.run_id == first.run_id and event.name == first.name
        return same_run and event.data["stream"] == first.data["stream"]

    def add(self, text: str) -> None:
        self.chunks.append(text)
        self.size += len(text)
        while self.size > OUTPUT_BATCH_LIMIT and len(self.chunks) > 1:
            oldest = self.chunks.popleft()
            self.size -= len(oldest)
            self.dropped += len(oldest)

    def event(self) -> Event:
        if len(self.chunks) == 1 and not self.dropped:
            return self.first
        data = {**self.first.data, "text": "".join(self.chunks)}
        if self.dropped:
            data["dropped"] = self.dropped
        first = self.first
        return Event(first.kind, first.name, first.at, first.run_id, data)


class _Deferred:
    """An action queued behind the events published before it."""

    __slots__ = ("action",)

    def __init__(self, action: Callable[[], None]) -> None:
        self.action = action


class EventBus:
    """In-order delivery from one daemon thread, started when the first event or action needs it."""

    def __init__(self, thread_name: str = "jobmanager_nb-events") -> None:
        # Held with ``with self._lock`` (a C-level lock, whose ``with`` a KeyboardInterrupt cannot split),
        # never ``with self._cond``: Condition.__enter__ is Python code, and an interrupt landing in it
        # after the acquire (a Ctrl-C while an inline job prints) would leave the lock held for ever.
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._pending: deque[Event | _OutputBatch | _Deferred] = deque()
        self._subscribers: tuple[Subscriber, ...] = ()
        self._busy = False  # the thread holds an item it has not finished delivering
        self._thread: threading.Thread | None = None
        self._thread_name = thread_name
        self._stopped = False
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

    @property
    def on_bus_thread(self) -> bool:
        """True when called from a subscriber or an action (the bus's own thread)."""
        return self._thread is not None and threading.current_thread() is self._thread

    def publish(self, event: Event) -> None:
        """Queue ``event`` for every subscriber; returns at once."""
        with self._lock:
            if not self._subscribers or self._stopped:
                return
            if event.kind == "output":
                last = self._pending[-1] if self._pending else None
                if isinstance(last, _OutputBatch) and last.matches(event):
                    last.add(event.data["text"])  # a subscriber fell behind: merge, never pile up
                    return
                self._enqueue(_OutputBatch(event))
                return
            self._enqueue(event)

    def call_soon(self, action: Callable[[], None]) -> None:
        """Run ``action`` on the bus thread, after the events published so far (for code the manager
        does not own, such as an error handler, which must never run on a worker's thread)."""
        with self._lock:
            if not self._stopped:
                self._enqueue(_Deferred(action))
                return
        _run_isolated(action)

    def after_delivery(self, action: Callable[[], None]) -> None:
        """Run ``action`` once every event published so far has reached the subscribers: now, on this
        thread, when nothing is waiting to be delivered; otherwise on the bus thread right after those
        events. An error in ``action`` is logged."""
        with self._lock:
            if (self._pending or self._busy) and not self._stopped:
                self._enqueue(_Deferred(action))
                return
        _run_isolated(action)

    def flush(self, timeout: float | None = None) -> bool:
        """Block until everything published so far was delivered; False if ``timeout`` ran out first.
        From the bus's own thread it returns at once (it cannot wait for itself)."""
        if self.on_bus_thread:
            return True
        done = threading.Event()
        self.after_delivery(done.set)
        return done.wait(timeout)

    def close(self, timeout: float = 5.0) -> bool:
        """Deliver what is queued, then end the thread. False if it was still busy after ``timeout``
        seconds (a subscriber that does not return); later events and actions are then run inline."""
        with self._lock:
            self._stopped = True
            self._cond.notify_all()
            thread = self._thread
        if thread is None or thread is threading.current_thread():
            return True
        thread.join(timeout)
        return not thread.is_alive()

    def _enqueue(self, item: Event | _OutputBatch | _Deferred) -> None:
        """Called with the lock held."""
        self._pending.append(item)
        if self._thread is None:
            thread = threading.Thread(target=self._serve, name=self._thread_name, daemon=True)
            thread.start()
            self._thread = thread  # not before: a start() that an interrupt cut short leaves None behind
        else:
            self._cond.notify()

    def _serve(self) -> None:
        with self._lock:
            if self._thread is None:  # the start() that made this thread was interrupted: it serves anyway
                self._thread = threading.current_thread()
            elif self._thread is not threading.current_thread():
                return  # this one's start() was interrupted and the next item started another
        while True:
            with self._lock:
                self._busy = False
                while not self._pending:
                    if self._stopped:
                        return
                    self._cond.wait()
                item = self._pending.popleft()
                self._busy = True
                subscribers = self._subscribers
            if isinstance(item, _Deferred):
                _run_isolated(item.action)
                continue
            if isinstance(item, _OutputBatch):
                item = item.event()
            for subscriber in subscribers:
                try:
                    subscriber(item)
                except BaseException:  # a subscriber is code we do not own, Ctrl-C included
                    log.exception("jobmanager_nb: an event subscriber failed on %s %r", item.kind, item.name)


def _run_isolated(action: Callable[[], None]) -> None:
    try:
        action()
    except BaseException:  # one failing action never stops the ones after it
        log.exception("jobmanager_nb: an action queued on the event bus failed")
