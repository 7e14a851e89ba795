"""The words for how a worker process ended, shared by the worker and the parent.

``returncode_reason("x", 3)`` → ``Worker for job "x" exited with code 3``;
``returncode_reason("x", -11)`` → ``Worker for job "x" was killed by signal SIGSEGV (11)``.
A negative return code means "killed by that signal", as in :mod:`subprocess`.
"""

from __future__ import annotations

import signal

__all__ = ["exit_code_reason", "returncode_reason", "signal_reason"]


def exit_code_reason(name: str, code: int) -> str:
    """Why a run failed when its worker exited with ``code``."""
    return f'Worker for job "{name}" exited with code {code}'


def signal_reason(name: str, signum: int) -> str:
    """Why a run failed when its worker was killed by signal ``signum``."""
    try:
        label = signal.Signals(signum).name
    except ValueError:
        label = "signal"
    reason = f'Worker for job "{name}" was killed by signal {label} ({signum})'
    if signum == getattr(signal, "SIGKILL", 9):
        reason += "; if nobody killed it, the system may have run out of memory"
    return reason


def returncode_reason(name: str, returncode: int) -> str:
    """Why a run failed, from a :mod:`subprocess`-style return code (negative = signal)."""
    if returncode < 0:
        return signal_reason(name, -returncode)
    return exit_code_reason(name, returncode)
