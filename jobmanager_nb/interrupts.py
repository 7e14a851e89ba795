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


_MAIN_THREAD = threading.main_thread().ident


class InterruptsHeld:
    """``with InterruptsHeld():`` delays a SIGINT that arrives inside the block to the block's end (see
    the module's docstring).

    Blocks nest. Inside a block in force, a new block installs nothing: the one in force (its ``owner``)
    notes the signal and delivers it at its own end, and :meth:`suspend` opens that one. Inside a suspended
    block (a job's code that enters a block of its own), the new block installs its handler, which passes
    the signal on once it is suspended in turn. Suspending flips a flag the installed handler reads: no
    handler is swapped per job."""

    __slots__ = ("arrived", "open", "owner", "previous")

    def __enter__(self) -> InterruptsHeld:
        self.previous: Any = None
        self.owner: InterruptsHeld | None = None
        self.arrived = False
        self.open = False
        if threading.get_ident() != _MAIN_THREAD:
            return self
        previous = _SIGNALS.getsignal(_SIGINT)
        if previous is None or previous == signal.SIG_IGN or previous == signal.SIG_DFL:
            return self
        outer = getattr(previous, "__self__", None)
        if type(outer) is InterruptsHeld and not outer.open:
            self.owner = outer  # a block in force around this one holds the signal already
            return self
        try:
            _SIGNALS.signal(_SIGINT, self._arrived)
        except ValueError:  # not the main interpreter
            return self
        self.previous = previous
        self.owner = self
        return self

    def _arrived(self, signum: int, frame: object) -> None:
        if self.open:  # suspended: the handler outside decides (raises KeyboardInterrupt)
            self.previous(signum, frame)
        else:
            self.arrived = True

    @property
    def noted(self) -> bool:
        """A SIGINT arrived and is held back for the end of the block in force."""
        owner = self.owner
        return owner is not None and owner.arrived

    def suspend(self) -> None:
        """From here a SIGINT interrupts at once, as outside the block and every block around it (one noted
        meanwhile is raised now)."""
        owner = self.owner
        if owner is not None:
            owner.open = True
            if owner.arrived:
                owner.arrived = False
                _SIGNALS.raise_signal(_SIGINT)

    def resume(self) -> None:
        """Hold SIGINTs back again, after :meth:`suspend` (call it in a ``finally`` that covers the
        :meth:`suspend` too: a noted signal raised there must not leave the hold off)."""
        owner = self.owner
        if owner is not None:
            owner.open = False

    def __exit__(self, *exc: object) -> None:
        if self.owner is self:
            _SIGNALS.signal(_SIGINT, self.previous)
            if self.arrived:
                _SIGNALS.raise_signal(_SIGINT)  # now, to the handler it was meant for
