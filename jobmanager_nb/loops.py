"""The event loop inline jobs run on, and blocking waits that do not deadlock it.

In a notebook the loop is the kernel's own (so inline jobs never run at the same moment as a cell).
With no running loop, :class:`LoopThread` starts a private one in a daemon thread.
:func:`run_blocking` waits for a coroutine from synchronous code: on the loop's own thread it runs
the loop re-entrantly (applying ``nest_asyncio2`` to that loop, lazily, the first time it is needed);
from any other thread it hands the coroutine to the loop and blocks on the result.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

__all__ = ["LoopThread", "run_blocking", "running_loop"]

T = TypeVar("T")

log = logging.getLogger("jobmanager_nb")

_patched: set[int] = set()


def running_loop() -> asyncio.AbstractEventLoop | None:
    """The loop running in this thread, if any."""
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


class LoopThread:
    """A private event loop served by a daemon thread."""

    def __init__(self, name: str = "jobmanager_nb-inline") -> None:
        self.loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._stopping = False
        self.thread = threading.Thread(target=self._serve, name=name, daemon=True)
        self.thread.start()
        self._ready.wait()

    def _serve(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.call_soon(self._ready.set)
        try:
            while not self._stopping:
                try:
                    self.loop.run_forever()
                except BaseException:  # a callback let something escape: keep serving the other ones
                    log.exception("jobmanager_nb: an error escaped the inline loop; it keeps running")
        finally:
            try:
                pending = asyncio.all_tasks(self.loop)
                for task in pending:
                    task.cancel()
                if pending:
                    self.loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            finally:
                self.loop.close()

    def stop(self, timeout: float = 5.0) -> None:
        if self.loop.is_closed():
            return
        self._stopping = True
        self.loop.call_soon_threadsafe(self.loop.stop)
        if threading.current_thread() is not self.thread:
            self.thread.join(timeout)


def run_blocking(loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, T]) -> T:
    """Wait for ``coro`` to finish on ``loop`` from synchronous code, without deadlocking it."""
    if running_loop() is loop:
        if id(loop) not in _patched:
            import nest_asyncio2

            nest_asyncio2.apply(loop)
            _patched.add(id(loop))
        try:
            task = asyncio.ensure_future(coro, loop=loop)
        except BaseException:  # an Interrupt before the wait began: it never will
            _drop(loop, coro)
            raise
        try:
            return loop.run_until_complete(task)
        except BaseException:
            _abandon(task)  # an Interrupt went through the nested loop: the wait is over, quietly
            raise
    if loop.is_running():
        return asyncio.run_coroutine_threadsafe(coro, loop).result()
    if loop.is_closed():
        coro.close()
        raise RuntimeError("the job manager's event loop is closed")
    # The loop exists but nobody runs it (e.g. it was captured inside asyncio.run() that has ended):
    # run it here, in this thread, for the duration of the wait.
    return loop.run_until_complete(coro)


def _drop(loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, Any]) -> None:
    """``coro`` will never be awaited here. An Interrupt inside ``ensure_future`` may have come after the
    task was made: cancel that task before its first step (closing the coroutine under it would make the
    step fail, logged as never retrieved); otherwise close the coroutine (no 'never awaited')."""
    for task in asyncio.all_tasks(loop):
        if task.get_coro() is coro:
            _abandon(task)
            return
    coro.close()


def _abandon(task: asyncio.Future[Any]) -> None:
    """Cancel ``task`` and retrieve its outcome whenever it comes (a task may still end with its own error
    after the cancel), so that nobody later logs it as never retrieved."""
    if not task.done():
        task.cancel()
        task.add_done_callback(_retrieve)
    else:
        _retrieve(task)


def _retrieve(task: asyncio.Future[Any]) -> None:
    if not task.cancelled():
        task.exception()
