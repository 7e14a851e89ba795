"""Job bodies for ``bench_manager.py``, kept tiny: every worker process imports this module to run one."""

from __future__ import annotations

import time

completed = 0
"""Inline runs of :func:`count` so far (inline jobs run one at a time on the manager's loop thread)."""


def noop() -> None:
    """A no-op job."""


def count() -> None:
    """An inline no-op that counts its completions, so the benchmark can check that all of them ran."""
    global completed
    completed += 1


def stamp() -> float:
    """Return the wall-clock time (s since the epoch) at which the job body starts."""
    return time.time()
