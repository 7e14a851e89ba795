"""Waiting, with a timeout, for something that announces itself through a callback.

The manager tells whoever waits by calling a callback from the thread that settled a run (or
emptied the queue). These two functions turn such a registration into a wait: one that blocks this
thread, and one that a coroutine awaits on its own loop. (Blocking on the home loop's own thread is
:func:`jobmanager_nb.loops.run_blocking`'s job.)
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import TypeVar

__all__ = ["Register", "wait_async", "wait_blocking"]

T = TypeVar("T")

Register = Callable[[Callable[[T], None]], None]
"""Takes a callback and promises to call it once, from any thread, with the awaited value."""


def wait_blocking(register: Register[T], timeout: float | None, timeout_message: Callable[[], str]) -> T:
    """Block this thread until ``register``'s callback fires, and return its value.

    Raises ``TimeoutError(timeout_message())`` after ``timeout`` seconds (never, when ``None``).
    Must not run on the thread whose loop would fire the callback (use :func:`wait_async` there).
    """
    done = threading.Event()
    box: list[T] = []

    def settle(value: T) -> None:
        box.append(value)
        done.set()

    register(settle)
    if not done.wait(timeout):
        raise TimeoutError(timeout_message())
    return box[0]


async def wait_async(register: Register[T], timeout: float | None, timeout_message: Callable[[], str]) -> T:
    """Await ``register``'s callback on the running loop, whichever thread fires it; same timeout rule."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def settle(value: T) -> None:
        loop.call_soon_threadsafe(_resolve, future, value)

    register(settle)
    try:
        return await asyncio.wait_for(future, timeout)
    except asyncio.TimeoutError:
        raise TimeoutError(timeout_message()) from None


def _resolve(future: asyncio.Future[T], value: T) -> None:
    if not future.done():  # a timed-out wait has already cancelled it
        future.set_result(value)
