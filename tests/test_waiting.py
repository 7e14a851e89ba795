"""Waits on a callback registration: blocking and awaitable, a value from another thread, timeouts."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable

import pytest

from jobmanager_nb.waiting import wait_async, wait_blocking

WAIT = 10.0


def later(value: str, go: threading.Event) -> Callable[[Callable[[str], None]], Callable[[], None]]:
    """A registration whose callback fires from another thread once ``go`` is set."""

    def register(settle: Callable[[str], None]) -> Callable[[], None]:
        threading.Thread(target=lambda: (go.wait(WAIT), settle(value))).start()
        return lambda: None

    return register


def never(settle: Callable[[str], None]) -> Callable[[], None]:
    """A registration that never fires."""
    return lambda: None


class Registry:
    """A registration that keeps its callbacks until they are taken back, like the manager's."""

    def __init__(self) -> None:
        self.callbacks: list[Callable[[str], None]] = []

    def register(self, settle: Callable[[str], None]) -> Callable[[], None]:
        self.callbacks.append(settle)
        return lambda: self.callbacks.remove(settle)


def test_blocking_wait_returns_the_value_another_thread_delivers() -> None:
    go = threading.Event()
    threading.Timer(0.01, go.set).start()
    assert wait_blocking(later("done", go), WAIT, lambda: "unused") == "done"


def test_a_callback_fired_during_registration_is_not_missed() -> None:
    def at_once(settle: Callable[[str], None]) -> Callable[[], None]:
        settle("at once")
        return lambda: None

    assert wait_blocking(at_once, 0, lambda: "unused") == "at once"


def test_a_timed_out_blocking_wait_takes_its_callback_back() -> None:
    registry = Registry()
    for _ in range(100):
        with pytest.raises(TimeoutError):
            wait_blocking(registry.register, 0, lambda: "timed out")
    assert registry.callbacks == []


def test_a_timed_out_or_cancelled_async_wait_takes_its_callback_back() -> None:
    registry = Registry()

    async def main() -> None:
        with pytest.raises(TimeoutError):
            await wait_async(registry.register, 0.01, lambda: "timed out")
        task = asyncio.ensure_future(wait_async(registry.register, None, lambda: "unused"))
        await asyncio.sleep(0)
        assert len(registry.callbacks) == 1
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert registry.callbacks == []


def test_a_callback_that_fires_after_its_loop_closed_is_harmless() -> None:
    fired: list[Callable[[str], None]] = []

    def keep(settle: Callable[[str], None]) -> Callable[[], None]:
        fired.append(settle)
        return lambda: None  # a registry that forgets to take it back

    async def main() -> None:
        with pytest.raises(TimeoutError):
            await wait_async(keep, 0.01, lambda: "timed out")

    asyncio.run(main())
    fired[0]("after asyncio.run() ended")  # the loop is closed: nothing is raised


def test_blocking_wait_raises_the_timeout_message() -> None:
    with pytest.raises(TimeoutError, match=r'^Job "x" did not complete within 0\.05 s\.$'):
        wait_blocking(never, 0.05, lambda: 'Job "x" did not complete within 0.05 s.')


def test_async_wait_returns_the_value_another_thread_delivers_and_keeps_the_loop_free() -> None:
    async def main() -> tuple[str, int]:
        go = threading.Event()
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                if ticks == 3:
                    go.set()  # only a loop that keeps running gets here
                await asyncio.sleep(0)

        task = asyncio.create_task(ticker())
        value = await wait_async(later("done", go), WAIT, lambda: "unused")
        task.cancel()
        return value, ticks

    value, ticks = asyncio.run(main())
    assert value == "done" and ticks >= 3


def test_async_wait_raises_the_timeout_message_and_a_late_callback_is_harmless() -> None:
    fired: list[Callable[[str], None]] = []

    def keep(settle: Callable[[str], None]) -> Callable[[], None]:
        fired.append(settle)
        return lambda: None

    async def main() -> None:
        with pytest.raises(TimeoutError, match=r"^still running: a$"):
            await wait_async(keep, 0.05, lambda: "still running: a")
        fired[0]("too late")  # the future was cancelled by the timeout: nothing breaks
        await asyncio.sleep(0)

    asyncio.run(main())
