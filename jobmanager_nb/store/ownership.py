"""Who owns a one-off record, and whether that process is still alive.

An :class:`~jobmanager_nb.store.records.Owner` is a pid plus what tells that pid's process apart from a
later one that reuses the pid, the hostname and a random token:

* **On Linux**, the process start in clock ticks since boot (field 22 of ``/proc/<pid>/stat``) and the
  boot id (``/proc/sys/kernel/random/boot_id``). Both are fixed for the life of the process and owe
  nothing to the wall clock, so they are compared exactly: same boot id and same start ticks is the same
  process; another boot id means the machine has rebooted since, so the owner is gone.
* **Otherwise** (no ``/proc``, or a record written by an older version without those fields), psutil's
  ``create_time``: wall-clock seconds, compared within :data:`CREATE_TIME_TOLERANCE`. On Linux psutil
  derives it from the boot time, which the kernel reports in whole seconds as "now minus uptime": it
  moves when the wall clock is stepped (NTP, resume from suspend), and a step of a fraction of a second
  can move it by a whole second. Elsewhere it is stamped at process start and does not move.

``create_time`` is recorded on every platform, for display and as that fallback. On Linux the owner's pid
namespace is recorded too (``pid_ns``): a kernel in a container that shares the host's hostname, boot id
and notebook folder counts its pids in another namespace, where looking its pid up here would find
another process or none. An owner in another namespace is ``"elsewhere"``, like one on another host.
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

#: Seconds by which a live process's wall-clock start time may differ from the recorded one, when the
#: exact Linux identity is not available on both sides. Wide enough for the whole-second rounding of
#: Linux's boot time plus the clock steps NTP makes on a running machine (normally well under a
#: second); narrow enough that a reused pid is not mistaken for the owner, since the pid counter would
#: have to wrap around within those seconds. A larger step can still make a live owner of such a record
#: look gone; records written by this version on Linux do not depend on it.
CREATE_TIME_TOLERANCE = 5.0

OwnerState = Literal["alive", "gone", "elsewhere"]

_PROC = "/proc"
_BOOT_ID = "/proc/sys/kernel/random/boot_id"
_PID_NS = "/proc/self/ns/pid"

_lock = threading.Lock()
_current: Owner | None = None


def current_owner() -> Owner:
    """The :class:`Owner` describing this process (one token per process, renewed after a fork).

    On Linux it carries the boot-relative identity (``start_ticks``, ``boot_id``) and the pid namespace
    (``pid_ns``); elsewhere those are None.
    """
    global _current
    with _lock:
        if _current is None or _current.pid != os.getpid():
            import psutil

            pid = os.getpid()
            stat, boot_id = _proc_stat(pid), _boot_id()
            exact = stat is not None and boot_id is not None
            _current = Owner(
                pid=pid,
                create_time=psutil.Process().create_time(),
                hostname=socket.gethostname(),
                token=secrets.token_hex(8),
                start_ticks=stat[1] if exact and stat is not None else None,
                boot_id=boot_id if exact else None,
                pid_ns=_pid_ns(),
            )
        return _current


def owner_state(owner: Owner) -> OwnerState:
    """``"alive"``, ``"gone"``, or ``"elsewhere"`` (another machine or pid namespace: this process cannot tell).

    Which machine: when both sides have a boot id, it decides (a hostname may change while the machine
    runs): the same boot id is this machine; another one with the same hostname is this machine since
    rebooted (gone); another one with another hostname is another machine. Without boot ids the hostname
    decides. On this machine, the pid means something only in the owner's pid namespace: an owner whose
    recorded namespace is not this process's (or this process's cannot be read) is elsewhere, as is one
    without a recorded namespace whose hostname differs though the boot id matches (a container).

    Alive means: a process with that pid exists, is not a zombie, and is the recorded one. When the owner
    has ``start_ticks`` and ``boot_id`` and this machine has a boot id, "the recorded one" is decided
    exactly by those; otherwise by ``create_time`` within :data:`CREATE_TIME_TOLERANCE`. A process we may
    not inspect counts as alive (never fail someone else's job on a guess).
    """
    boot_id = _boot_id() if owner.boot_id is not None else None
    same_host = owner.hostname == socket.gethostname()
    if boot_id is not None and owner.boot_id is not None:
        if boot_id != owner.boot_id:
            return "gone" if same_host else "elsewhere"
        same_boot = True
    else:
        if not same_host:
            return "elsewhere"
        same_boot = False
    if owner.pid_ns is not None:
        if _pid_ns() != owner.pid_ns:
            return "elsewhere"
    elif not same_host:
        return "elsewhere"  # same kernel, other hostname, namespace unknown: likely a container
    if same_boot and owner.start_ticks is not None:
        state = _state_by_ticks(owner.pid, owner.start_ticks)
        if state is not None:
            return state
    return _state_by_create_time(owner)


def _state_by_ticks(pid: int, start_ticks: int) -> OwnerState | None:
    """Decide by ``/proc/<pid>/stat``; None when that cannot tell (then psutil and ``create_time`` do)."""
    try:
        stat = _read_proc_stat(pid)
    except FileNotFoundError:
        # No such process, or one that /proc hides from us (hidepid): only the first is gone.
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return "gone"
        except OSError:
            pass
        return None
    except OSError:
        return None
    if stat is None:
        return None
    state, ticks = stat
    if state in ("Z", "X"):  # a zombie (exited, not yet reaped) or dead
        return "gone"
    return "alive" if ticks == start_ticks else "gone"


def _state_by_create_time(owner: Owner) -> OwnerState:
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


def _proc_stat(pid: int) -> tuple[str, int] | None:
    """``(state, start_ticks)`` of ``pid`` from ``/proc``, or None where that cannot be read."""
    try:
        return _read_proc_stat(pid)
    except OSError:
        return None


def _read_proc_stat(pid: int) -> tuple[str, int] | None:
    """Fields 3 (state) and 22 (start time in clock ticks since boot) of ``/proc/<pid>/stat``.

    Raises ``OSError`` when the file cannot be opened; None when its content is not understood.
    """
    with open(f"{_PROC}/{pid}/stat", "rb") as file:
        data = file.read()
    # Field 2 is the command name in parentheses, which may itself hold spaces and parentheses.
    end = data.rfind(b")")
    if end < 0:
        return None
    fields = data[end + 1 :].split()
    try:
        return fields[0].decode("ascii"), int(fields[19])
    except (IndexError, ValueError):
        return None


def _pid_ns() -> tuple[int, int] | None:
    """This process's pid namespace as ``(st_dev, st_ino)`` of ``/proc/self/ns/pid``, or None without it."""
    try:
        st = os.stat(_PID_NS)
    except OSError:
        return None
    return (st.st_dev, st.st_ino)


def _boot_id() -> str | None:
    """This boot of the machine (a random UUID renewed by every boot), or None without ``/proc``."""
    try:
        with open(_BOOT_ID, encoding="ascii") as file:
            text = file.read().strip()
    except (OSError, ValueError):
        return None
    return text or None
