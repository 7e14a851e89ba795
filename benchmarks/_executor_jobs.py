"""No-op job bodies for ``bench_executor.py`` (imported by the worker processes)."""

import time


def noop() -> None:
    return None


def stamp() -> float:
    """The wall-clock time at which the job's body ran."""
    return time.time()
