"""Waiting, with a timeout, for something that announces itself through a callback.

The manager tells whoever waits by calling a callback once, from the thread that released a run (or
emptied the queue). These two functions turn such a registration into a wait: one that blocks this
thread, and one that a coroutine awaits on its own loop. A registration returns a function that takes
the callback back: a wait that times out or is cancelled calls it, so nothing stale is left behind to
be called later (or to hold memory). (Blocking on the home loop's own thread is
:func:`jobmanager_nb.loops.run_blocking`'s job.)
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable
from typing import TypeVar

__all__ = ["Register", "Unregister", "wait_async", "wait_blocking"]

T = TypeVar("T")

Unregister = Callable[[], None]
"""Takes a registered callback back; harmless once it has been called."""
Register = Callable[[Callable[[T], None]], Unregister]
"""Takes a callback, promises to call it once, from any thread, with the awaited value, and returns
the function that unregisters it."""


def wait_blocking(register: Register[T], timeout: float | None, timeout_message: Callable[[], str]) -> T:
    """Block this thread until ``register``'s callback fires, and return its value.

    Raises ``TimeoutError(timeout_message())`` after ``timeout`` seconds (never, when ``None``), and
    unregisters the callback then, or when the wait is interrupted (``KeyboardInterrupt``). Must not
    run on the thread whose loop would fire the callback (use :func:`wait_async` there).
    """
    done = threading.Event()
    box: list[T] = []

    def settle(value: T) -> None:
        box.append(value)
        done.set()

    unregister = register(settle)
    try:
        fired = done.wait(timeout)
    finally:
        if not box:
            unregister()
    if not fired and not box:
        raise TimeoutError(timeout_message())
    return box[0]


async def wait_async(register: Register[T], timeout: float | None, timeout_message: Callable[[], str]) -> T:
    """Await ``register``'s callback on the running loop, whichever thread fires it; same timeout
    rule. A timeout or a cancellation of the awaiting task unregisters the callback; a callback that
    fires after this loop has closed does nothing."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def settle(value: T) -> None:
        with contextlib.suppress(RuntimeError):  # this loop has closed: nobody waits any more
            loop.call_soon_threadsafe(_resolve, future, value)

    unregister = register(settle)
    try:
        return await asyncio.wait_for(future, timeout)
    except asyncio.TimeoutError:
        raise TimeoutError(timeout_message()) from None
    finally:
        if not future.done() or future.cancelled():
            unregister()


def _resolve(future: asyncio.Future[T], value: T) -> None:
    if not future.done():  # a timed-out wait has already cancelled it
        future.set_result(value)
