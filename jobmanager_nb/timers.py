"""One thread that calls functions at wall-clock moments.

The thread sleeps until the earliest deadline (no polling). With a real clock the sleep is capped at
:data:`MAX_SLEEP` seconds so that a suspended laptop or a clock change is noticed soon after it
happens; with a fake clock it sleeps until the clock is moved. Callbacks run on the timer thread and
must be quick (they hand work to the inline queue or an executor).
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
from collections.abc import Callable
from datetime import datetime

from jobmanager_nb.clock import Clock

__all__ = ["MAX_SLEEP", "TimerHandle", "Timers"]

log = logging.getLogger("jobmanager_nb")

MAX_SLEEP = 30.0


class TimerHandle:
    """A pending call; :meth:`cancel` stops it from running (a no-op once it ran)."""

    __slots__ = ("callback", "cancelled", "when")

    def __init__(self, when: datetime, callback: Callable[[], None]) -> None:
        self.when = when
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class Timers:
    """A heap of :class:`TimerHandle` served by one daemon thread, started on first use."""

    def __init__(self, clock: Clock, *, thread_name: str = "jobmanager_nb-timers") -> None:
        self._clock = clock
        # ``with self._lock`` (a C lock) rather than ``with self._cond``: Condition.__enter__ is Python code,
        # and an Interrupt landing in it after the acquire would leave the lock held for ever.
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._heap: list[tuple[datetime, int, TimerHandle]] = []
        self._seq = itertools.count()
        self._stopped = False
        self._thread: threading.Thread | None = None
        self._thread_name = thread_name
        self._unsubscribe = clock.on_change(self._wake)

    def call_at(self, when: datetime, callback: Callable[[], None]) -> TimerHandle:
        """Run ``callback`` on the timer thread once the clock reaches ``when`` (aware)."""
        handle = TimerHandle(when, callback)
        with self._lock:
            if self._stopped:
                raise RuntimeError("the timers were stopped")
            heapq.heappush(self._heap, (when, next(self._seq), handle))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=self._thread_name, daemon=True)
                self._thread.start()
            elif self._heap[0][2] is handle:
                self._cond.notify()
        return handle

    def stop(self) -> None:
        """Drop every pending call and end the thread (waits for a callback in progress)."""
        with self._lock:
            self._stopped = True
            self._heap.clear()
            self._cond.notify()
            thread = self._thread
        self._unsubscribe()
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5)

    @property
    def pending(self) -> int:
        with self._lock:
            return sum(1 for _, _, h in self._heap if not h.cancelled)

    def _wake(self) -> None:
        with self._lock:
            self._cond.notify()

    def _run(self) -> None:
        real = self._clock.is_real
        while True:
            with self._lock:
                while True:
                    if self._stopped:
                        return
                    while self._heap and self._heap[0][2].cancelled:
                        heapq.heappop(self._heap)
                    if not self._heap:
                        self._cond.wait()
                        continue
                    delay = (self._heap[0][0] - self._clock.now()).total_seconds()
                    if delay <= 0:
                        _, _, handle = heapq.heappop(self._heap)
                        break
                    self._cond.wait(min(delay, MAX_SLEEP) if real else None)
            if handle.cancelled:
                continue
            try:
                handle.callback()
            except Exception:
                log.exception("jobmanager_nb: a timer callback failed")
