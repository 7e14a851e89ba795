"""An async inline job interrupted on the main thread's loop: the cell hears the Interrupt once, and asyncio
logs nothing afterwards (no 'Task exception was never retrieved' for the job's task or the wait's)."""

from __future__ import annotations

import asyncio
import gc
import subprocess
import sys
import textwrap
import warnings
from typing import Any

import pytest

from jobmanager_nb.loops import run_blocking

SCRIPT = textwrap.dedent(
    """
    import asyncio, gc
    from jobmanager_nb import JobManager

    async def job():
        await asyncio.sleep(0)
        raise KeyboardInterrupt  # what a Ctrl-C inside the job's code amounts to

    async def main():
        m = JobManager()
        m.add_job(job, name="a", offloaded=False)
        try:
            m.wait("a", 10)
        except KeyboardInterrupt:
            print("the cell was interrupted")
        print("outcome:", m.runs("a")[-1].outcome)
        await m.shutdown(timeout=10)

    asyncio.run(main())
    gc.collect()
    """
)


def test_an_interrupted_async_inline_job_leaves_no_never_retrieved_task_behind() -> None:
    done = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "the cell was interrupted" in done.stdout and "outcome: cancelled" in done.stdout, done.stdout
    assert "never retrieved" not in done.stderr, done.stderr


def test_an_interrupt_as_a_blocking_wait_makes_its_task_leaves_no_broken_task_behind(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A Ctrl-C inside ``ensure_future``, after the wait's task was made: that task is cancelled before its
    first step (its code never runs), and asyncio logs nothing (no 'cannot reuse already awaited coroutine'
    for a coroutine closed under a live task, no 'never awaited')."""
    ran: list[str] = []
    heard: list[dict[str, Any]] = []
    real = asyncio.ensure_future

    async def the_wait() -> int:
        ran.append("the wait ran")
        return 1

    def interrupted(coro: Any, *, loop: asyncio.AbstractEventLoop) -> Any:
        real(coro, loop=loop)
        raise KeyboardInterrupt

    async def main() -> None:
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(lambda _, context: heard.append(context))
        with monkeypatch.context() as patch:
            patch.setattr(asyncio, "ensure_future", interrupted)
            with pytest.raises(KeyboardInterrupt):
                run_blocking(loop, the_wait())
        for _ in range(3):
            await asyncio.sleep(0)

    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        asyncio.run(main())
        gc.collect()
    assert ran == [] and heard == [], (ran, heard)
