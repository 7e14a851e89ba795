"""Per-run capture of what inline jobs print.

:func:`install` puts a thin proxy in front of ``sys.stdout`` and ``sys.stderr``. Text written while a
capture sink is active in the current context (a thread, or an asyncio task) goes to that sink;
everything else passes straight through to the stream that was there before. So an inline job's
prints land in its own run record instead of whichever notebook cell happens to be executing.
"""

from __future__ import annotations

import contextvars
import sys
import threading
from collections.abc import Callable
from typing import Any, TextIO

__all__ = ["RoutingStream", "Sink", "active_sink", "install", "reinstate", "uninstall"]

Sink = Callable[[str, str], None]
"""Receives ``(stream_name, text)``."""

active_sink: contextvars.ContextVar[Sink | None] = contextvars.ContextVar("jobmanager_nb_sink", default=None)

_lock = threading.Lock()
_users = 0


class RoutingStream:
    """A text stream that sends writes to the active sink, or else to ``target``."""

    def __init__(self, target: TextIO, stream_name: str) -> None:
        self._target = target
        self._name = stream_name

    def write(self, text: str) -> int:
        sink = active_sink.get()
        if sink is None:
            return self._target.write(text)
        sink(self._name, text)
        return len(text)

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        if active_sink.get() is None:
            self._target.flush()

    @property
    def target(self) -> TextIO:
        return self._target

    def __getattr__(self, name: str) -> Any:
        return getattr(self._target, name)


def install() -> None:
    """Route sys.stdout/sys.stderr through :class:`RoutingStream` (reference-counted)."""
    global _users
    with _lock:
        _users += 1
        if _users == 1:
            if not isinstance(sys.stdout, RoutingStream):
                sys.stdout = RoutingStream(sys.stdout, "stdout")
            if not isinstance(sys.stderr, RoutingStream):
                sys.stderr = RoutingStream(sys.stderr, "stderr")


def reinstate() -> None:
    """Put the routing back in front of ``sys.stdout``/``sys.stderr`` if someone replaced them meanwhile
    (``contextlib.redirect_stdout``, IPython's ``capture_output``, a test runner); called before each
    captured run, so a run never prints past its sink. Cheap: two ``isinstance`` checks."""
    if isinstance(sys.stdout, RoutingStream) and isinstance(sys.stderr, RoutingStream):
        return
    with _lock:
        if _users == 0:
            return
        if not isinstance(sys.stdout, RoutingStream):
            sys.stdout = RoutingStream(sys.stdout, "stdout")
        if not isinstance(sys.stderr, RoutingStream):
            sys.stderr = RoutingStream(sys.stderr, "stderr")


def uninstall() -> None:
    """Undo one :func:`install`; the last one puts the original streams back if ours are still there."""
    global _users
    with _lock:
        if _users == 0:
            return
        _users -= 1
        if _users == 0:
            if isinstance(sys.stdout, RoutingStream):
                sys.stdout = sys.stdout.target
            if isinstance(sys.stderr, RoutingStream):
                sys.stderr = sys.stderr.target
