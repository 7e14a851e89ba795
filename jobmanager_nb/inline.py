"""Runs inline jobs: FIFO, a few at a time, on one event loop, each with its own output.

:class:`InlineRunner` owns the queue of inline runs waiting for the home loop. Synchronous jobs run
one after another on the loop's thread; coroutines become tasks and interleave, at most
``concurrency`` at once. While a run executes, ``current_run()`` describes it and whatever it prints
goes to its sink. The runner reports through the callbacks it was given (start, finish, output,
progress); it keeps no other state about runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import os
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable
from typing import Any

from jobmanager_nb import capture
from jobmanager_nb.interrupts import InterruptsHeld
from jobmanager_nb.lifecycle import Outcome
from jobmanager_nb.loops import running_loop
from jobmanager_nb.model import RunContext, _current
from jobmanager_nb.state import RunState

__all__ = ["InlineRunner"]

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep

StartCallback = Callable[[RunState], "bool | None"]
"""``start(run)``: move ``run`` to started; False when it must not run (it was cancelled meanwhile, or its
start could not be recorded; whoever returned False has ended it); None when it cannot be started at this
moment (another thread holds the manager's state): the runner gives the GIL away and asks again."""
FinishCallback = Callable[..., None]
"""``finish(run, attempt, outcome, *, result=None, error=None, exc=None)``."""
OutputCallback = Callable[[RunState, str, str], None]
ProgressCallback = Callable[[RunState, float, "str | None"], None]

BREATHE_AFTER = 0.02
"""Seconds of back-to-back inline runs after which the loop gets a turn (cells, widget clicks)."""
YIELD_FOR = 0.00002
"""Seconds the loop's thread sleeps, the GIL released, when ``start`` says not now (another thread holds
the manager's state while it waits for the GIL): enough for that thread to wake and take the GIL (with
the kernel's timer slack, ~70 µs), so that it finishes and this one finds the lock free."""

INTERRUPTED = "interrupted by KeyboardInterrupt (the notebook's Interrupt button or Ctrl-C)"


class InlineRunner:
    """The inline queue of one manager, served on ``loop``.

    Code the runner does not own (the jobs) may raise anything, ``KeyboardInterrupt`` included: the
    run it hit ends (an Interrupt ends it ``cancelled``), the interrupt goes on to whoever runs the
    loop (the cell that was waiting), and the queue keeps serving the runs after it.
    """

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
        if capture_output:  # now, not at the first run: a run that starts while someone else has swapped
            capture.install()  # sys.stdout (a cell's redirect) would otherwise lose the routing when they restore it
            self._capture_installed = True
        self._pending: deque[RunState] = deque()
        self._active = 0  # touched only on the loop's thread
        self._pump_scheduled = False
        self._pumping = False  # a pump is serving the queue now (on the loop's thread)
        self.running_sync: RunState | None = None
        """The synchronous job executing now on the loop's thread, if any (read by the manager to refuse
        a wait that could never return)."""

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
            self._finish(run, run.attempt, "cancelled", error="the job manager's event loop is closed")

    def cancel(self, run: RunState) -> bool:
        """Cancel ``run``'s task if it is an async job in progress; False when there is none (a
        synchronous job cannot be interrupted; a run still queued here is ended by the manager and
        skipped by the pump)."""
        task = run.task
        if task is None:
            return False
        with contextlib.suppress(RuntimeError):  # the loop has closed: the task is gone with it
            self.loop.call_soon_threadsafe(task.cancel)
        return True

    def close(self) -> None:
        """Undo the output routing installed for the runs."""
        if self._capture_installed:
            capture.uninstall()
            self._capture_installed = False

    def ensure_pumping(self) -> None:
        """Make sure a pump will serve the queue (call it on the loop's thread). A Ctrl-C that lands as the
        loop calls a scheduled pump, before its first instruction can hold the signal back, drops that
        pump while the queue still counts on it; an extra pump finds nothing to do and costs nothing."""
        if self._pending and not self._pumping:
            self._pump_scheduled = True
            self.loop.call_soon(self._pump)

    def _pump(self) -> None:
        # A Ctrl-C is held back while runs are taken off the queue, started and ended, and reaches only
        # the jobs' own code: a run can never be left taken but not started, or started but never ended.
        with InterruptsHeld() as held:
            self._pumping = True
            try:
                self._serve(held)
            except BaseException:  # a job's Interrupt on its way to the cell: keep serving after it
                self._pump_scheduled = True
                with contextlib.suppress(RuntimeError):
                    self.loop.call_soon(self._pump)
                raise
            finally:
                self._pumping = False

    def _serve(self, held: InterruptsHeld) -> None:
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
            if run.phase != "dispatched":
                continue
            try:
                started = self._start(run)
            except BaseException as exc:  # the start could not be recorded: it never ran
                outcome: Outcome = "cancelled" if isinstance(exc, KeyboardInterrupt) else "failed"
                self._finish(run, run.attempt, outcome, error=f"{type(exc).__name__} before it started", exc=exc)
                raise
            if started is None:  # another thread holds the manager's state: let it run, then retry
                pending.appendleft(run)  # still first: FIFO order holds
                if self.loop.time() > deadline:
                    self.loop.call_soon(self._pump)
                    return
                time.sleep(YIELD_FOR)
                continue
            if not started:
                continue
            self._active += 1
            self._execute(run, held)
            # A Ctrl-C held back while the run ended goes to the cell now (as the hold ends), not to the next
            # run's code before it could start: the queue goes on at the next pump.
            if held.noted or self.loop.time() > deadline:
                self.loop.call_soon(self._pump)
                return

    def _execute(self, run: RunState, held: InterruptsHeld) -> None:
        """Call ``run``'s job; a Ctrl-C reaches only the job's own code (``held`` is suspended around it)."""
        d = run.definition
        attempt = run.attempt
        context = RunContext(
            run.job.name,
            run.run_id,
            attempt,
            run.scheduled_for,
            d.data,
            lambda fraction, text: self._progress(run, fraction, text),
        )
        context_token = _current.set(context)
        sink_token = None
        if self._capture:
            capture.reinstate()
            sink_token = capture.active_sink.set(lambda stream, text: self._output(run, stream, text))
        outer, self.running_sync = self.running_sync, run
        try:
            try:
                held.suspend()  # may raise a Ctrl-C noted meanwhile: resume() is due all the same
                if d.call_without_data:
                    assert d.target.func is not None
                    result = d.target.func()
                else:
                    result = d.target.call_inline(d.data)
            finally:
                held.resume()
            if result is not None and inspect.isawaitable(result):
                run.task = task = asyncio.ensure_future(self._await(run, attempt, result), loop=self.loop)
                task.add_done_callback(lambda done: self._task_gone(run, attempt, done, result))
                if run.cancel_requested:
                    task.cancel()
                return
        except (KeyboardInterrupt, SystemExit) as exc:
            self._done(run, attempt, exc=exc, outcome="cancelled" if isinstance(exc, KeyboardInterrupt) else None)
            if _someone_to_interrupt():
                raise
        except BaseException as exc:  # the job's own error, whatever it is
            self._done(run, attempt, exc=exc)
        else:
            self._done(run, attempt, result=result)
        finally:
            self.running_sync = outer
            if sink_token is not None:
                capture.active_sink.reset(sink_token)
            _current.reset(context_token)

    async def _await(self, run: RunState, attempt: int, awaitable: Any) -> None:
        # No hold spans the await: one would be left in force, or undone, by whatever ran meanwhile (other
        # tasks, the cell's end, when the kernel puts its own SIGINT handler back). The run's ending is made
        # under a hold of its own; a Ctrl-C in the few instructions outside both ends the task before the
        # run's ending, and _task_gone ends the run then.
        timeout = run.definition.timeout
        timer = None
        if timeout is not None:
            timer = self.loop.call_later(timeout, self._time_out, run, attempt)
        error: BaseException | None = None
        result: Any = None
        try:
            result = await awaitable
        except BaseException as exc:  # the job's own error, a cancel, or a Ctrl-C in its code
            error = exc
        with InterruptsHeld():
            try:
                if error is None:
                    self._done(run, attempt, result=result)
                elif isinstance(error, asyncio.CancelledError):
                    timed_out = run.timed_out_attempt == attempt
                    self._done(run, attempt, exc=error, outcome="timed_out" if timed_out else "cancelled")
                elif isinstance(error, (KeyboardInterrupt, SystemExit)):
                    outcome: Outcome | None = "cancelled" if isinstance(error, KeyboardInterrupt) else None
                    self._done(run, attempt, exc=error, outcome=outcome)
                else:  # the job's own error (its own TimeoutError included)
                    self._done(run, attempt, exc=error)
            finally:
                if timer is not None:
                    timer.cancel()
                run.task = None
                self._pump()
        if isinstance(error, (KeyboardInterrupt, SystemExit)) and _someone_to_interrupt():
            raise error

    def _task_gone(self, run: RunState, attempt: int, task: asyncio.Future[None], awaitable: Any) -> None:
        """An async run's task is done: if a Ctrl-C ended the task outside the job's code (at the task's
        first step, or as the job returned, before :meth:`_await` could hold it back), its run is ended here,
        cancelled, rather than left started for ever.

        A task that ended by passing a Ctrl-C on to the waiting cell has been heard: its exception is marked
        retrieved, so asyncio does not log it again as never retrieved."""
        if not task.cancelled():
            task.exception()
        if run.attempt != attempt or run.ended or run.task is None:
            return
        with InterruptsHeld():
            run.task = None
            self._active -= 1
            error = "cancelled" if run.cancel_requested else INTERRUPTED
            self._finish(run, attempt, "cancelled", error=error)
            self.ensure_pumping()
        if inspect.iscoroutine(awaitable):
            awaitable.close()  # never awaited when the Ctrl-C came first: no 'never awaited' warning

    def _time_out(self, run: RunState, attempt: int) -> None:
        task = run.task
        if task is not None and not task.done() and run.attempt == attempt:
            run.timed_out_attempt = attempt
            task.cancel()

    def _done(
        self,
        run: RunState,
        attempt: int,
        *,
        result: Any = None,
        exc: BaseException | None = None,
        outcome: Outcome | None = None,
    ) -> None:
        self._active -= 1
        # What the manager does next (its failure log, the events) is not the job's output: leave the run's
        # context first, so that none of it is captured into the run.
        sink_token = capture.active_sink.set(None)
        context_token = _current.set(None)
        try:
            self._report(run, attempt, result, exc, outcome)
        finally:
            _current.reset(context_token)
            capture.active_sink.reset(sink_token)

    def _report(
        self, run: RunState, attempt: int, result: Any, exc: BaseException | None, outcome: Outcome | None
    ) -> None:
        if exc is None:
            self._finish(run, attempt, "finished", result=result)
            return
        if outcome == "timed_out":
            error = f"timed out after {run.definition.timeout:g} s"
        elif outcome == "cancelled" and isinstance(exc, KeyboardInterrupt):
            error = f"{INTERRUPTED}\n{_user_traceback(exc)}"
        elif outcome == "cancelled":
            error = "cancelled"
        else:
            outcome = "failed"
            error = _user_traceback(exc)
        self._finish(run, attempt, outcome, error=error, exc=exc)


def _someone_to_interrupt() -> bool:
    """True on the main thread, where an Interrupt is meant for the code running there (the cell waiting
    for the job); on the private loop thread nobody is, so the run's ending is the whole story."""
    return threading.current_thread() is threading.main_thread()


def _user_traceback(exc: BaseException) -> str:
    """The traceback text of ``exc`` without the leading frames of jobmanager_nb itself."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename.startswith(_PACKAGE_DIR):
        tb = tb.tb_next
    return "".join(traceback.format_exception(type(exc), exc, tb if tb is not None else exc.__traceback__))
