"""The words for how a worker process ended, shared by the worker and the parent.

``returncode_reason("x", 3)`` → ``Worker for job "x" exited with code 3``;
``returncode_reason("x", -11)`` → ``Worker for job "x" was killed by signal SIGSEGV (11)``;
``lost_reason("x", "...")`` → ``Worker for job "x" was lost: ...``.
A negative return code means "killed by that signal", as in :mod:`subprocess`.
"""

from __future__ import annotations

import signal

__all__ = [
    "exit_code_reason",
    "external_signal_reason",
    "is_self_inflicted",
    "lost_reason",
    "returncode_reason",
    "signal_reason",
]

# Signals a process gets for what it did itself (a crash, abort()), rather than from someone else.
_SELF_INFLICTED = frozenset(
    getattr(signal, name)
    for name in ("SIGSEGV", "SIGBUS", "SIGFPE", "SIGILL", "SIGABRT", "SIGSYS", "SIGTRAP")
    if hasattr(signal, name)
)


def exit_code_reason(name: str, code: int) -> str:
    """Why a run failed when its worker exited with ``code``."""
    return f'Worker for job "{name}" exited with code {code}'


def signal_reason(name: str, signum: int) -> str:
    """Why a run failed when its worker was killed by signal ``signum``."""
    return f'Worker for job "{name}" was killed by signal {_label(signum)} ({signum}){_oom_note(signum)}'


def returncode_reason(name: str, returncode: int) -> str:
    """Why a run failed, from a :mod:`subprocess`-style return code (negative = signal)."""
    if returncode < 0:
        return signal_reason(name, -returncode)
    return exit_code_reason(name, returncode)


def is_self_inflicted(signum: int) -> bool:
    """True for a signal a process gets for its own doing (SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT, ...),
    False for one someone sent it (SIGKILL, SIGTERM, ...)."""
    return signum in _SELF_INFLICTED


def lost_reason(name: str, reason: str) -> str:
    """Why a run failed whose worker vanished in a way its executor did not cause: ``reason`` says how."""
    return f'Worker for job "{name}" was lost: {reason}'


def external_signal_reason(name: str, signum: int) -> str:
    """Why a started run failed when its worker was killed by signal ``signum`` that its executor did
    not send (see :func:`lost_reason`)."""
    reason = f"the worker process was killed by signal {signum} ({_label(signum)}) while the job ran"
    return lost_reason(name, reason + _oom_note(signum))


def _label(signum: int) -> str:
    """``SIGKILL`` for 9, or ``signal`` for a number with no name."""
    try:
        return signal.Signals(signum).name
    except ValueError:
        return "signal"


def _oom_note(signum: int) -> str:
    """The hint a SIGKILL nobody asked for deserves: the OOM killer sends it."""
    if signum == getattr(signal, "SIGKILL", 9):
        return "; if nobody killed it, the system may have run out of memory"
    return ""
