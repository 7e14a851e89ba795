"""Runs inline jobs: FIFO, a few at a time, on one event loop, each with its own output.

:class:`InlineRunner` owns the queue of inline runs waiting for the home loop. Synchronous jobs run
one after another on the loop's thread; coroutines become tasks and interleave, at most
``concurrency`` at once. While a run executes, ``current_run()`` describes it and whatever it prints
goes to its sink. The runner reports through the callbacks it was given (start, finish, output,
progress); it keeps no other state about runs.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import traceback
from collections import deque
from collections.abc import Callable
from typing import Any

from jobmanager_nb import capture
from jobmanager_nb.loops import running_loop
from jobmanager_nb.model import RunContext, _current
from jobmanager_nb.state import RunState

__all__ = ["InlineRunner"]

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep

StartCallback = Callable[[RunState], None]
FinishCallback = Callable[..., None]
"""``finish(run, *, result=None, error=None, exc=None, cancelled=False)``."""
OutputCallback = Callable[[RunState, str, str], None]
ProgressCallback = Callable[[RunState, float, "str | None"], None]

BREATHE_AFTER = 0.02
"""Seconds of back-to-back inline runs after which the loop gets a turn (cells, widget clicks)."""


class InlineRunner:
    """The inline queue of one manager, served on ``loop``."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        concurrency: int,
        *,
        start: StartCallback,
        finish: FinishCallback,
        output: OutputCallback,
        progress: ProgressCallback,
        capture_output: bool = True,
    ) -> None:
        self.loop = loop
        self._concurrency = concurrency
        self._start = start
        self._finish = finish
        self._output = output
        self._progress = progress
        self._capture = capture_output
        self._capture_installed = False
        self._pending: deque[RunState] = deque()
        self._active = 0  # touched only on the loop's thread
        self._pump_scheduled = False

    def push(self, run: RunState) -> None:
        """Queue ``run``; thread-safe.

        The hand-off needs no lock: deque.append/popleft are atomic, and the pump re-checks the
        queue after clearing ``_pump_scheduled``, so a run appended at any moment is picked up.
        """
        self._pending.append(run)
        if self._pump_scheduled:
            return
        self._pump_scheduled = True
        if running_loop() is self.loop:
            self.loop.call_soon(self._pump)
            return
        try:
            self.loop.call_soon_threadsafe(self._pump)
        except RuntimeError:  # the loop is closed: nobody will ever run it
            self._pump_scheduled = False
            self._finish(run, error="the job manager's event loop is closed", cancelled=True)

    def cancel(self, run: RunState) -> bool:
        """Cancel ``run``'s task if it is an async job in progress; False when there is none (a
        synchronous job cannot be interrupted; a queued run is skipped by the pump once settled)."""
        task = run.task
        if task is None:
            return False
        self.loop.call_soon_threadsafe(task.cancel)
        return True

    def close(self) -> None:
        """Undo the output routing installed for the runs."""
        if self._capture_installed:
            capture.uninstall()
            self._capture_installed = False

    def _pump(self) -> None:
        pending = self._pending
        deadline = self.loop.time() + BREATHE_AFTER
        while True:
            if self._active >= self._concurrency or not pending:
                self._pump_scheduled = False
                if not pending or self._active >= self._concurrency:
                    return
                self._pump_scheduled = True
                continue
            run = pending.popleft()
            if run.settled or run.status != "queued":
                continue
            self._active += 1
            self._start(run)
            self._execute(run)
            if self.loop.time() > deadline:
                self.loop.call_soon(self._pump)
                return

    def _execute(self, run: RunState) -> None:
        d = run.definition
        context = RunContext(
            run.job.name,
            run.run_id,
            run.attempt,
            run.scheduled_for,
            d.data,
            lambda fraction, text: self._progress(run, fraction, text),
        )
        context_token = _current.set(context)
        sink_token = None
        if self._capture:
            if not self._capture_installed:
                capture.install()
                self._capture_installed = True
            sink_token = capture.active_sink.set(lambda stream, text: self._output(run, stream, text))
        try:
            if d.call_without_data:
                assert d.target.func is not None
                result = d.target.func()
            else:
                result = d.target.call_inline(d.data)
            if result is not None and inspect.isawaitable(result):
                awaitable = result if d.timeout is None else asyncio.wait_for(result, d.timeout)
                run.task = asyncio.ensure_future(self._await(run, awaitable), loop=self.loop)
                return
        except Exception as exc:
            self._done(run, exc=exc)
        except KeyboardInterrupt as exc:
            self._done(run, exc=exc)
            raise
        else:
            self._done(run, result=result)
        finally:
            if sink_token is not None:
                capture.active_sink.reset(sink_token)
            _current.reset(context_token)

    async def _await(self, run: RunState, awaitable: Any) -> None:
        try:
            result = await awaitable
        except asyncio.CancelledError as exc:
            self._done(run, exc=exc, cancelled=True)
        except (asyncio.TimeoutError, TimeoutError) as exc:
            run.timed_out = run.definition.timeout is not None
            self._done(run, exc=exc)
        except Exception as exc:
            self._done(run, exc=exc)
        else:
            self._done(run, result=result)
        finally:
            self._pump()

    def _done(
        self, run: RunState, *, result: Any = None, exc: BaseException | None = None, cancelled: bool = False
    ) -> None:
        self._active -= 1
        if exc is None:
            self._finish(run, result=result)
            return
        if cancelled:
            error = "cancelled"
        elif run.timed_out:
            error = f"timed out after {run.definition.timeout:g} s"
        else:
            error = _user_traceback(exc)
        self._finish(run, error=error, exc=exc, cancelled=cancelled)


def _user_traceback(exc: BaseException) -> str:
    """The traceback text of ``exc`` without the leading frames of jobmanager_nb itself."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename.startswith(_PACKAGE_DIR):
        tb = tb.tb_next
    return "".join(traceback.format_exception(type(exc), exc, tb if tb is not None else exc.__traceback__))
