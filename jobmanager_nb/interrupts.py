"""Holding a Ctrl-C back while a change of state is made in several steps.

A notebook's Interrupt button sends the kernel a SIGINT, which Python turns into a ``KeyboardInterrupt``
at whatever instruction the main thread is running. Bookkeeping split by it (a run taken off the queue but
never started, a run ended but never released) leaves waits that never return. :class:`InterruptsHeld`
is the one tool for that: on the main thread it swaps in a SIGINT handler that only notes the signal, and
delivers a noted signal to the handler that was there as soon as the block ends. Code that must stay
interruptible inside such a block (a job's own code) runs between :meth:`InterruptsHeld.suspend` and
:meth:`InterruptsHeld.resume`.

Elsewhere (signals only ever reach the main thread), or when the SIGINT handler is not Python's to swap
(ignored, or set from C), it does nothing. Entering and leaving costs about a microsecond on the main
thread, through CPython's ``_signal`` (the :mod:`signal` module's enum wrappers cost ten times more).
"""

from __future__ import annotations

import importlib
import signal
import threading
from types import ModuleType
from typing import Any

__all__ = ["InterruptsHeld"]


def _raw_signals() -> ModuleType:
    """CPython's ``_signal``: the functions ``signal`` wraps in enum conversions."""
    try:
        return importlib.import_module("_signal")
    except ImportError:  # another Python
        return signal


_SIGNALS: Any = _raw_signals()
_SIGINT = int(signal.SIGINT)


class InterruptsHeld:
    """``with InterruptsHeld():`` delays a SIGINT that arrives inside the block to the block's end (see
    the module's docstring). Blocks nest: an inner block notes the signal for the outer one."""

    __slots__ = ("arrived", "previous")

    def __enter__(self) -> InterruptsHeld:
        self.previous: Any = None
        self.arrived = False
        if threading.current_thread() is not threading.main_thread():
            return self
        previous = _SIGNALS.getsignal(_SIGINT)
        if previous is None or previous == signal.SIG_IGN or previous == signal.SIG_DFL:
            return self
        try:
            _SIGNALS.signal(_SIGINT, self._arrived)
        except ValueError:  # not the main interpreter
            return self
        self.previous = previous
        return self

    def _arrived(self, signum: int, frame: object) -> None:
        self.arrived = True

    def suspend(self) -> None:
        """From here a SIGINT interrupts at once, as outside the block and every block around it (one noted
        meanwhile, by this block or by those around it, is raised now)."""
        previous = self.previous
        if previous is not None:
            arrived = self.arrived
            self.arrived = False
            outer = getattr(previous, "__self__", None)
            while type(outer) is InterruptsHeld:  # nested in a hold in force: suspend past it too
                arrived = arrived or outer.arrived
                outer.arrived = False
                previous = outer.previous
                outer = getattr(previous, "__self__", None)
            _SIGNALS.signal(_SIGINT, previous)
            if arrived:
                _SIGNALS.raise_signal(_SIGINT)

    def resume(self) -> None:
        """Hold SIGINTs back again, after :meth:`suspend` (call it in a ``finally`` that covers the
        :meth:`suspend` too: a noted signal raised there must not leave the hold off)."""
        if self.previous is not None:
            _SIGNALS.signal(_SIGINT, self._arrived)

    def __exit__(self, *exc: object) -> None:
        previous = self.previous
        if previous is not None:
            _SIGNALS.signal(_SIGINT, previous)
            if self.arrived:
                _SIGNALS.raise_signal(_SIGINT)  # now, to the handler it was meant for
