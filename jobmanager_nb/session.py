"""The one manager of this process (per kernel), shared by the magics, the dashboard and user code.

``%load_ext jobmanager_nb`` opens it; :func:`get_manager` returns it (opening it on first use when
the extension is not loaded, so plain code gets the same manager the magics would use).
"""

from __future__ import annotations

import atexit
import contextlib
import threading
from pathlib import Path
from typing import Any

from jobmanager_nb.manager import JobManager
from jobmanager_nb.store import DEFAULT_STORE_PATH

__all__ = ["close_manager", "current_manager", "get_manager", "open_manager"]

_lock = threading.Lock()
_manager: JobManager | None = None


def open_manager(store: str | Path | None = DEFAULT_STORE_PATH, **options: Any) -> JobManager:
    """Open the session manager (closing a previous one first). ``store=None`` keeps records in memory."""
    global _manager
    close_manager()
    with _lock:
        _manager = JobManager(store, **options)
        return _manager


def get_manager() -> JobManager:
    """The session manager; opened with the default store (``.jobmanager/jobs.json``) on first use."""
    with _lock:
        if _manager is not None:
            return _manager
    return open_manager()


def current_manager() -> JobManager | None:
    """The session manager if one is open, else None (never opens one)."""
    return _manager


def close_manager(timeout: float | None = 10.0) -> None:
    """Shut the session manager down (workers ended, timers stopped); a no-op when none is open."""
    global _manager
    with _lock:
        manager, _manager = _manager, None
    if manager is not None:
        with contextlib.suppress(TimeoutError):
            manager.close(timeout=timeout)


atexit.register(close_manager, 5.0)
