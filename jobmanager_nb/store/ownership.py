"""Who owns a one-off record, and whether that process is still alive.

An :class:`~jobmanager_nb.store.records.Owner` is a pid plus that process's start time, the hostname
and a random token. A pid alone would mislead after the operating system reuses it; a pid whose
process started at the recorded time (within :data:`CREATE_TIME_TOLERANCE`) is the same process.

psutil is imported on first use, so importing this module costs nothing.
"""

from __future__ import annotations

import os
import secrets
import socket
import threading
from typing import Literal

from jobmanager_nb.store.records import Owner

__all__ = ["CREATE_TIME_TOLERANCE", "OwnerState", "current_owner", "owner_state"]

#: Seconds by which a live process's start time may differ from the recorded one. psutil reports
#: start times in clock ticks (1/100 s on Linux), computed the same way in every process.
CREATE_TIME_TOLERANCE = 0.01

OwnerState = Literal["alive", "gone", "elsewhere"]

_lock = threading.Lock()
_current: Owner | None = None


def current_owner() -> Owner:
    """The :class:`Owner` describing this process (one token per process, renewed after a fork)."""
    global _current
    with _lock:
        if _current is None or _current.pid != os.getpid():
            import psutil

            _current = Owner(
                pid=os.getpid(),
                create_time=psutil.Process().create_time(),
                hostname=socket.gethostname(),
                token=secrets.token_hex(8),
            )
        return _current


def owner_state(owner: Owner) -> OwnerState:
    """``"alive"``, ``"gone"``, or ``"elsewhere"`` (another host: this process cannot tell).

    Alive means: same host, a process with that pid exists, is not a zombie, and started at the
    recorded time. A process we may not inspect counts as alive (never fail someone else's job on a
    guess).
    """
    if owner.hostname != socket.gethostname():
        return "elsewhere"
    import psutil

    try:
        process = psutil.Process(owner.pid)
        started = process.create_time()
        if process.status() == psutil.STATUS_ZOMBIE:
            return "gone"
    except psutil.NoSuchProcess:
        return "gone"
    except psutil.AccessDenied:
        return "alive"
    return "alive" if abs(started - owner.create_time) <= CREATE_TIME_TOLERANCE else "gone"
