"""Job bodies for the APScheduler peer, kept tiny: spawn children import this module to unpickle a job."""

from __future__ import annotations

import threading
import time

_lock = threading.Lock()
_count = 0
_target = 0
finished = threading.Event()


def arm(target: int) -> None:
    """Reset the completion counter: :data:`finished` is set once :func:`count` has run ``target`` times."""
    global _count, _target
    with _lock:
        _count = 0
        _target = target
        finished.clear()


def count() -> None:
    """An inline no-op that counts its completions (threads only: the counter lives in this process)."""
    global _count
    with _lock:
        _count += 1
        if _count == _target:
            finished.set()


def noop() -> None:
    """A no-op job."""


def stamp() -> float:
    """Return the wall-clock time (s since the epoch) at which the job body starts."""
    return time.time()
