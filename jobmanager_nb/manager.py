"""The :class:`JobManager`: registers jobs, keeps time, runs them inline or offloaded, and reports.

Inline runs go through a FIFO queue on the *home loop* (the event loop that was running when the
manager was made — in a notebook the kernel's — or a private loop thread). Offloaded runs go to an
:class:`~jobmanager_nb.executors.base.Executor` (fresh worker processes by default). A single timer
thread fires schedules on time whatever the caller is doing. One-off jobs drive the store's state
machine. Everything that happens is published as an :class:`~jobmanager_nb.events.Event`.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import os
import sys
import threading
import warnings
from collections import deque
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any

from jobmanager_nb.clock import Clock, SystemClock
from jobmanager_nb.errors import (
    DuplicateJobError,
    JobConfigError,
    JobFailedError,
    JobManagerError,
    JobNotFoundError,
    OneOffAlreadyExecutedError,
)
from jobmanager_nb.events import Event, EventBus, Subscriber
from jobmanager_nb.executors.base import Executor, OffloadedTask, RunOutcome, WorkerEvent
from jobmanager_nb.handle import JobHandle
from jobmanager_nb.inline import InlineRunner
from jobmanager_nb.jobs import check_json_data, offload_target, resolve_target, takes_no_argument
from jobmanager_nb.loops import LoopThread, run_blocking, running_loop
from jobmanager_nb.model import JobInfo, JobRun
from jobmanager_nb.schedules import describe_schedule, parse_schedule
from jobmanager_nb.state import HISTORY_LIMIT, JobDefinition, JobState, RunState, job_info, one_off_meta
from jobmanager_nb.store import MemoryStore, OneOffRecord, OneOffStore, TinyDBStore, current_owner
from jobmanager_nb.timers import Timers
from jobmanager_nb.waiting import Register, wait_async, wait_blocking

__all__ = ["JobHandle", "JobManager"]

log = logging.getLogger("jobmanager_nb")

ErrorHandler = Callable[[BaseException, dict[str, Any]], None]
MessageHandler = Callable[[dict[str, Any]], None]


class JobManager:
    """Registers and runs jobs: inline (in this process, FIFO) or offloaded (fresh worker processes).

    ``store`` keeps one-off job records: a path to a TinyDB JSON file, a store object, or None for
    memory only. ``error_handler(error, meta)`` hears of every failed run (``meta["name"]``); without
    one, each failed run (after its last retry, unless cancelled) is logged at ERROR on the
    ``jobmanager_nb`` logger with its traceback (``log_failures=False`` turns that off).
    ``worker_message_handler({"name", "message"})`` of every message a worker posts. Use it as a
    context manager, or call :meth:`close` when done.
    """

    def __init__(
        self,
        store: str | os.PathLike[str] | OneOffStore | None = None,
        *,
        error_handler: ErrorHandler | None = None,
        worker_message_handler: MessageHandler | None = None,
        inline_concurrency: int = 3,
        clock: Clock | None = None,
        executor: Executor | None = None,
        loop: asyncio.AbstractEventLoop | None = None,
        tz: Any = None,
        retry_backoff: float = 1.0,
        kill_grace: float = 5.0,
        capture_inline_output: bool = True,
        log_failures: bool = True,
    ) -> None:
        if inline_concurrency < 1:
            raise ValueError("inline_concurrency must be at least 1")
        self._clock: Clock = clock or SystemClock()
        self._tz = tz
        self._error_handler = error_handler
        self._log_failures = log_failures and error_handler is None
        self._message_handler = worker_message_handler
        self._retry_backoff = retry_backoff
        self._kill_grace = kill_grace

        self._lock = threading.RLock()
        self._bus = EventBus()
        self._jobs: dict[str, JobState] = {}
        self._history: deque[RunState] = deque(maxlen=HISTORY_LIMIT)
        self._next_waiters: dict[str, list[Callable[[RunState], None]]] = {}
        self._idle_waiters: list[Callable[[], None]] = []
        self._active_count = 0
        self._closing = False
        self._closed = False

        self._owns_store = not (store is not None and not isinstance(store, (str, os.PathLike)))
        if store is None:
            self._store: OneOffStore = MemoryStore()
        elif isinstance(store, (str, os.PathLike)):
            self._store = TinyDBStore(Path(store))
        else:
            self._store = store
        self._owner = current_owner()
        self.reconciled: list[OneOffRecord] = list(getattr(self._store, "reconciled", []) or [])

        self._loop_thread: LoopThread | None = None
        if loop is None:
            loop = running_loop()
        if loop is None:
            self._loop_thread = LoopThread()
            loop = self._loop_thread.loop
        self._loop: asyncio.AbstractEventLoop = loop
        self._inline = InlineRunner(
            loop,
            inline_concurrency,
            start=lambda run: self._publish(self._mark_started(run)),
            finish=self._finish,
            output=self._on_output,
            progress=self._on_progress,
            capture_output=capture_inline_output,
        )

        self._executor = executor
        self._timers = Timers(self._clock)

    # ------------------------------------------------------------------ registration

    def add_job(
        self,
        job: Any,
        *,
        name: str | None = None,
        at: Any = None,
        data: Any = None,
        offloaded: bool = True,
        timeout: float | None = None,
        replace: bool = False,
        retries: int = 0,
    ) -> JobHandle:
        """Register ``job`` to run now (``at=None``), at a datetime, every N seconds, or on a cron or
        text schedule. Returns a :class:`JobHandle` (``.name``, ``.info``, ``.wait()``)."""
        definition, name = self._define(job, name, at, data, offloaded, timeout, retries, one_off=False)
        return self._register(name, definition, replace=replace)

    def add_one_off_job(
        self,
        job: Any,
        *,
        name: str | None = None,
        data: Any = None,
        offloaded: bool = True,
        timeout: float | None = None,
        retries: int = 0,
    ) -> JobHandle:
        """Run ``job`` once, ever: its state is kept in the store under ``name``. Only a failed one-off
        can be added again (a rerun); otherwise :class:`OneOffAlreadyExecutedError` is raised."""
        if not name:
            raise JobConfigError("The name parameter is required for a one off job.")
        definition, name = self._define(job, name, None, data, offloaded, timeout, retries, one_off=True)
        self._check_open()
        with self._lock:
            existing = self._jobs.get(name)
            if existing is not None and existing.registered and existing.active:
                raise OneOffAlreadyExecutedError(
                    f'A "{name}" one off job has already been executed. It is running now; wait for it with '
                    f'wait("{name}").'
                )
        self._store.claim(name, self._owner, meta=one_off_meta(definition))
        return self._register(name, definition, replace=True)

    def rerun(self, name: str) -> JobHandle:
        """Run a failed one-off job again, with the definition it was added with. A script or
        ``module:function`` one-off can be rerun from a later session too (its record remembers it);
        a function from a notebook cell needs that cell run again."""
        with self._lock:
            job = self._jobs.get(name)
        if job is None or not job.definition.one_off:
            record = self._store.get(name)
            meta = record.meta if record is not None else {}
            rerunnable = meta.get("target_type") in ("script", "reference") and isinstance(meta.get("job"), str)
            if record is not None and rerunnable:
                return self.add_one_off_job(
                    meta["job"],
                    name=name,
                    data=meta.get("data"),
                    offloaded=meta.get("kind") == "offloaded",
                    timeout=meta.get("timeout"),
                    retries=int(meta.get("retries", 0)),
                )
            hint = (
                " Its record is in the store, but this session does not know its code: run the cell or code "
                "that adds it again."
                if record is not None
                else ""
            )
            raise JobNotFoundError(f'No one-off job "{name}" is known to this manager.{hint}')
        d = job.definition
        return self.add_one_off_job(
            d.target.func if d.target.type == "callable" else (d.target.path or d.target.reference),
            name=name,
            data=d.data,
            offloaded=d.kind == "offloaded",
            timeout=d.timeout,
            retries=d.retries,
        )

    def _define(
        self,
        job: Any,
        name: str | None,
        at: Any,
        data: Any,
        offloaded: bool,
        timeout: float | None,
        retries: int,
        *,
        one_off: bool,
    ) -> tuple[JobDefinition, str]:
        target = resolve_target(job, name, offloaded=offloaded)
        name = name or target.default_name
        if not name:
            raise JobConfigError("The job needs a name: pass name=...")
        if not isinstance(name, str):
            raise TypeError(f"name must be a string, not {type(name).__name__}")
        if timeout is not None and (not isinstance(timeout, (int, float)) or timeout <= 0):
            raise JobConfigError(f'Job "{name}": timeout must be a positive number of seconds, not {timeout!r}.')
        if not isinstance(retries, int) or retries < 0:
            raise JobConfigError(f'Job "{name}": retries must be a whole number >= 0, not {retries!r}.')
        schedule = None if at is None else parse_schedule(at, self._tz, now=self._clock.now())
        call_without_data = False
        if target.func is not None and takes_no_argument(target.func):
            if data is not None:
                raise JobConfigError(
                    f'Job "{name}": data was given but the function takes no argument. Add a parameter '
                    "(def job(data): ...) or drop data=."
                )
            call_without_data = True
        if offloaded:
            data_json = check_json_data(data, name)
            offload = offload_target(target, name)
        else:
            data_json = "null"
            offload = None
            if timeout is not None and target.type == "script":
                raise JobConfigError(
                    f'Job "{name}": timeout= cannot stop an inline script; offload it (offloaded=True) instead.'
                )
            if timeout is not None and target.func is not None and not inspect.iscoroutinefunction(target.func):
                raise JobConfigError(
                    f'Job "{name}": timeout= cannot stop a synchronous inline function (Python cannot interrupt '
                    "it safely). Make it async, or offload it with offloaded=True."
                )
        definition = JobDefinition(
            target=target,
            kind="offloaded" if offloaded else "inline",
            data=data,
            data_json=data_json,
            offload=offload,
            timeout=float(timeout) if timeout is not None else None,
            retries=retries,
            one_off=one_off,
            schedule=schedule,
            spec=at,
            call_without_data=call_without_data,
        )
        return definition, name

    def _register(self, name: str, definition: JobDefinition, *, replace: bool) -> JobHandle:
        self._check_open()
        now = self._clock.now()
        events: list[Event] = []
        to_dispatch: RunState | None = None
        with self._lock:
            job = self._jobs.get(name)
            queue_push = definition.kind == "inline" and definition.schedule is None and not definition.one_off
            if job is not None and job.registered and not replace:
                busy = job.active or job.timer is not None
                if busy and not (queue_push and job.definition.kind == "inline" and job.definition.schedule is None):
                    raise DuplicateJobError(
                        f'A job named "{name}" is already registered. Remove it first with remove_job("{name}"), '
                        "pass replace=True to replace it, or choose another name."
                    )
            if job is None:
                job = JobState(name, definition)
                self._jobs[name] = job
                self._trim_jobs()
            else:
                if job.timer is not None:
                    job.timer.cancel()
                    job.timer = None
                job.definition = definition
                job.registered = True
                job.paused = False
                job.next_run = None
            if self._bus.has_subscribers:
                events.append(Event("added", name, now))
            schedule = definition.schedule
            if schedule is None:
                to_dispatch = self._new_run(job, None, now)
            else:
                first = schedule.next_after(now)
                if first is None:
                    job.registered = False
                    job.skipped += 1
                    reason = f"the date {schedule.spec} is in the past, so the job will not run"
                    warnings.warn(f'Job "{name}": {reason}.', stacklevel=3)
                    events.append(Event("skipped", name, now, data={"reason": reason}))
                else:
                    self._arm(job, first)
                    events.append(Event("scheduled", name, now, data={"next_run": first}))
        self._publish(events)
        if to_dispatch is not None:
            self._dispatch(to_dispatch)
        return JobHandle(self, name)

    def _trim_jobs(self) -> None:
        if len(self._jobs) <= 2 * HISTORY_LIMIT:
            return
        stale = [n for n, j in self._jobs.items() if not j.registered and not j.active]
        for n in stale[: len(self._jobs) - HISTORY_LIMIT]:
            del self._jobs[n]

    # ------------------------------------------------------------------ time

    def _arm(self, job: JobState, when: datetime) -> None:
        job.next_run = when
        job.timer = self._timers.call_at(when, lambda: self._on_due(job, when))

    def _on_due(self, job: JobState, due: datetime) -> None:
        now = self._clock.now()
        events: list[Event] = []
        to_dispatch: RunState | None = None
        with self._lock:
            if self._closing or not job.registered or job.paused or job.next_run != due:
                return
            job.timer = None
            if job.active:
                job.skipped += 1
                events.append(
                    Event(
                        "skipped",
                        job.name,
                        now,
                        data={"reason": f"the run for {due.isoformat()} was skipped: the previous run is still going"},
                    )
                )
            else:
                to_dispatch = self._new_run(job, due, now)
            schedule = job.definition.schedule
            nxt = schedule.next_after(max(now, due)) if schedule is not None else None
            if nxt is not None:
                self._arm(job, nxt)
                events.append(Event("scheduled", job.name, now, data={"next_run": nxt}))
            else:
                job.next_run = None
                if not job.active and to_dispatch is None:
                    job.registered = False
        self._publish(events)
        if to_dispatch is not None:
            self._dispatch(to_dispatch)

    # ------------------------------------------------------------------ running

    def _new_run(self, job: JobState, scheduled_for: datetime | None, now: datetime) -> RunState:
        run = RunState(job, job.definition, scheduled_for, now)
        job.active[run.run_id] = run
        self._active_count += 1
        return run

    def _dispatch(self, run: RunState) -> None:
        if self._bus.has_subscribers:
            self._bus.publish(Event("queued", run.job.name, self._clock.now(), run.run_id))
        if run.definition.kind == "inline":
            self._inline.push(run)
        else:
            self._submit_offloaded(run)

    def _mark_started(self, run: RunState) -> list[Event]:
        """Record that ``run`` starts now. Inline runs call this on the home loop, offloaded ones on the
        executor's thread; the store is written before anything else can observe the run."""
        if run.definition.one_off:
            self._store_call(run, "started")
        now = self._clock.now()
        if run.definition.kind == "inline":  # only the home loop touches inline runs here
            self._started(run, now)
        else:
            with self._lock:
                self._started(run, now)
        if self._bus.has_subscribers:
            return [Event("started", run.job.name, now, run.run_id, {"attempt": run.attempt})]
        return []

    @staticmethod
    def _started(run: RunState, now: datetime) -> None:
        if run.started_at is None:
            run.job.running += 1
        run.status = "started"
        run.started_at = now

    # offloaded ------------------------------------------------------------

    def _get_executor(self) -> Executor:
        with self._lock:
            if self._executor is None:
                from jobmanager_nb.executors.local import ProcessExecutor

                self._executor = ProcessExecutor()
            return self._executor

    def _submit_offloaded(self, run: RunState) -> None:
        d = run.definition
        assert d.offload is not None
        kind, target = d.offload
        task = OffloadedTask(
            run_id=run.run_id,
            name=run.job.name,
            target_kind=kind,
            target=target,
            data_json=d.data_json,
            run_info={
                "name": run.job.name,
                "run_id": run.run_id,
                "attempt": run.attempt,
                "scheduled_for": run.scheduled_for.isoformat() if run.scheduled_for else None,
            },
            cwd=os.getcwd(),
            sys_path=tuple(p for p in sys.path if isinstance(p, str)),
        )
        try:
            run.handle = self._get_executor().submit(task, lambda event: self._on_worker_event(run, event))
        except Exception as exc:
            self._finish(run, error=f"could not start a worker: {type(exc).__name__}: {exc}", exc=exc)

    def _on_worker_event(self, run: RunState, event: WorkerEvent) -> None:
        kind = event.kind
        name = run.job.name
        if kind == "started":
            if run.settled:
                return
            events = self._mark_started(run)
            with self._lock:
                timeout = run.definition.timeout
                if timeout is not None:
                    deadline = self._clock.now() + timedelta(seconds=timeout)
                    run.timeout_timer = self._timers.call_at(deadline, lambda: self._on_timeout(run))
            self._publish(events)
        elif kind == "output":
            stream, text = event.payload
            self._on_output(run, stream, text)
        elif kind == "progress":
            fraction, text = event.payload
            self._on_progress(run, fraction, text)
        elif kind == "message":
            if self._message_handler is not None:
                try:
                    self._message_handler({"name": name, "message": event.payload})
                except Exception:
                    log.exception("jobmanager_nb: worker_message_handler failed for job %r", name)
            if self._bus.has_subscribers:
                self._bus.publish(Event("message", name, self._clock.now(), run.run_id, {"message": event.payload}))
        elif kind == "exited":
            outcome = event.outcome or RunOutcome("failed", error="the worker ended without reporting")
            if run.timeout_timer is not None:
                run.timeout_timer.cancel()
            if outcome.status == "finished":
                self._finish(run, result=outcome.result)
            else:
                error = outcome.error or "failed"
                if run.timed_out:
                    error = f"timed out after {run.definition.timeout:g} s ({error})"
                self._finish(run, error=error, cancelled=outcome.cancelled and not run.timed_out)

    def _on_output(self, run: RunState, stream: str, text: str) -> None:
        run.add_output(text)
        if self._bus.has_subscribers:
            data = {"stream": stream, "text": text}
            self._bus.publish(Event("output", run.job.name, self._clock.now(), run.run_id, data))

    def _on_progress(self, run: RunState, fraction: float, text: str | None) -> None:
        run.job.progress = (fraction, text)
        if self._bus.has_subscribers:
            data = {"fraction": fraction, "text": text}
            self._bus.publish(Event("progress", run.job.name, self._clock.now(), run.run_id, data))

    def _on_timeout(self, run: RunState) -> None:
        if run.settled or run.handle is None:
            return
        run.timed_out = True
        run.handle.cancel(grace=self._kill_grace)

    # settling -------------------------------------------------------------

    def _finish(
        self,
        run: RunState,
        *,
        result: Any = None,
        error: str | None = None,
        exc: BaseException | None = None,
        cancelled: bool = False,
    ) -> None:
        job = run.job
        events: list[Event] = []
        with self._lock:
            if run.settled:
                return
            now = self._clock.now()
            if error is not None and not cancelled and run.attempt <= run.definition.retries and not self._closing:
                delay = self._retry_backoff * (2 ** (run.attempt - 1))
                run.attempt += 1
                run.status = "queued"
                run.error = error
                run.handle = None
                events.append(
                    Event("failed", job.name, now, run.run_id, {"error": error, "retrying": True, "retry_in": delay})
                )
                self._timers.call_at(now + timedelta(seconds=delay), lambda: self._dispatch(run))
                retry = True
            else:
                retry = False
                run.finished_at = now
                run.result = result
                run.error = error
                run.exc = exc
                run.cancelled = cancelled
                run.status = "failed" if error is not None else "finished"
                if job.active.pop(run.run_id, None) is not None and run.started_at is not None:
                    job.running -= 1
                job.last_run = run
                job.runs += 1
                job.progress = None
                if error is not None:
                    job.failures += 1
                if job.registered and not job.active and job.timer is None and not job.paused:
                    job.registered = False
                self._history.append(run)
                if self._bus.has_subscribers:
                    data: dict[str, Any] = {"error": error, "cancelled": cancelled} if error is not None else {}
                    events.append(Event("failed" if error is not None else "finished", job.name, now, run.run_id, data))
                fast = not run.definition.one_off and (error is None or self._error_handler is None)
                if fast:
                    self._settle(run)
        if retry:
            self._publish(events)
            return
        if not fast:
            self._settle_after_side_effects(run, error)
        if error is not None and self._log_failures and not cancelled:
            log.error("jobmanager_nb: job %r failed (run %s):\n%s", job.name, run.run_id, error)
        self._publish(events)
        self._bus.after_delivery(lambda: self._release(run))

    def _settle(self, run: RunState) -> None:
        """Mark ``run`` ended; whoever waits for the next run of its job now waits for this one.
        Called with the lock held."""
        run.settled = True
        if self._next_waiters:
            waiting = self._next_waiters.pop(run.job.name, None)
            if waiting:
                run.callbacks = (run.callbacks or []) + waiting

    def _settle_after_side_effects(self, run: RunState, error: str | None) -> None:
        """Write the one-off record and tell the error handler, then settle: whoever waits for the run
        sees the store already updated."""
        if run.definition.one_off:
            self._store_call(run, "failed" if error is not None else "finished")
        if error is not None and self._error_handler is not None:
            self._report_error(run)
        with self._lock:
            self._settle(run)

    def _release(self, run: RunState) -> None:
        """Tell whoever waits for ``run`` (and for the manager to go idle) that it has ended. Runs once
        the run's last event has reached every subscriber (``EventBus.after_delivery``)."""
        with self._lock:
            run.released = True
            callbacks, run.callbacks = run.callbacks or [], None
            self._active_count -= 1
            idle: list[Callable[[], None]] = []
            if self._active_count == 0 and self._idle_waiters:
                idle, self._idle_waiters = self._idle_waiters, []
        for callback in callbacks:
            callback(run)
        for waiter in idle:
            waiter()

    def _report_error(self, run: RunState) -> None:
        assert self._error_handler is not None
        error: BaseException
        if run.exc is not None and not isinstance(run.exc, asyncio.CancelledError):
            error = run.exc
        else:
            error = JobFailedError(f'Job "{run.job.name}" failed: {run.error}', run.snapshot())
        meta = {"name": run.job.name, "run_id": run.run_id, "attempt": run.attempt, "kind": run.definition.kind}
        try:
            self._error_handler(error, meta)
        except Exception:
            log.exception("jobmanager_nb: error_handler failed for job %r", run.job.name)

    def _store_call(self, run: RunState, what: str) -> None:
        name = run.job.name
        try:
            if what == "started":
                self._store.mark_started(name, self._owner)
            elif what == "finished":
                self._store.mark_finished(name)
            else:
                self._store.mark_failed(name, run.error or "failed")
        except Exception:
            log.exception("jobmanager_nb: could not record one-off job %r as %s", name, what)

    def _publish(self, events: list[Event]) -> None:
        if not events:
            return
        for event in events:
            self._bus.publish(event)

    # ------------------------------------------------------------------ control

    def remove_job(self, name: str) -> None:
        """Unregister ``name``: its schedule stops, queued runs are dropped, a running run is cancelled."""
        with self._lock:
            job = self._require(name)
            del self._jobs[name]
            if job.timer is not None:
                job.timer.cancel()
                job.timer = None
            job.registered = False
            job.next_run = None
            active = list(job.active.values())
        for run in active:
            self._cancel_run(run)
        self._publish([Event("removed", name, self._clock.now())])

    def cancel(self, name: str) -> bool:
        """Cancel the queued or running runs of ``name`` (the job stays registered). Returns True if
        any run could be cancelled; a synchronous inline function that is already running cannot be
        interrupted, so it is left to finish (and False is returned when that is all there was)."""
        with self._lock:
            job = self._require(name)
            active = list(job.active.values())
        cancelled = [self._cancel_run(run) for run in active]
        return any(cancelled)

    def _cancel_run(self, run: RunState) -> bool:
        if run.status == "queued":
            self._finish(run, error="cancelled before it started", cancelled=True)
            return True
        if run.handle is not None:
            run.handle.cancel(grace=self._kill_grace)
            return True
        return self._inline.cancel(run)

    def run_now(self, name: str) -> JobRun | None:
        """Start a run of ``name`` now, outside its schedule. Returns the new run, or None (and a
        ``skipped`` event) when a run of it is still going."""
        self._check_open()
        with self._lock:
            job = self._require(name)
            busy = bool(job.active)
        if job.definition.one_off and not busy:
            self._store.claim(name, self._owner, meta=one_off_meta(job.definition))
        now = self._clock.now()
        with self._lock:
            if job.active:
                job.skipped += 1
                run = None
            else:
                run = self._new_run(job, now, now)
                if not job.recurring and job.timer is None:
                    job.registered = True
        if run is None:
            self._publish([Event("skipped", name, now, data={"reason": "run now: a run is still going"})])
            return None
        self._dispatch(run)
        return run.snapshot()

    def pause(self, name: str) -> None:
        """Stop firing ``name``'s schedule until :meth:`resume` (a running run is not interrupted)."""
        with self._lock:
            job = self._require(name)
            if job.definition.schedule is None:
                raise JobConfigError(f'Job "{name}" has no schedule to pause.')
            if job.paused:
                return
            job.paused = True
            job.paused_at = self._clock.now()
            if job.timer is not None:
                job.timer.cancel()
                job.timer = None
        self._publish([Event("paused", name, self._clock.now())])

    def resume(self, name: str) -> None:
        """Fire ``name``'s schedule again. A tick missed while paused runs once, now."""
        now = self._clock.now()
        to_dispatch: RunState | None = None
        with self._lock:
            job = self._require(name)
            if not job.paused:
                return
            job.paused = False
            schedule = job.definition.schedule
            assert schedule is not None
            missed = schedule.next_after(job.paused_at) if job.paused_at is not None else None
            if missed is not None and missed <= now and not job.active:
                to_dispatch = self._new_run(job, missed, now)
            nxt = schedule.next_after(now)
            if nxt is not None:
                self._arm(job, nxt)
            job.registered = nxt is not None or to_dispatch is not None or bool(job.active)
        self._publish([Event("resumed", name, now)])
        if to_dispatch is not None:
            self._dispatch(to_dispatch)

    def post_message(self, name: str, message: Any) -> None:
        """Send ``message`` to the running worker of offloaded job ``name``."""
        with self._lock:
            job = self._require(name)
            handles = [r.handle for r in job.active.values() if r.handle is not None and r.status == "started"]
        if not handles:
            raise JobNotFoundError(f'Job "{name}" has no running worker to send a message to.')
        for handle in handles:
            handle.post_message(message)

    def _require(self, name: str) -> JobState:
        job = self._jobs.get(name)
        if job is None:
            known = ", ".join(sorted(self._jobs)) or "none"
            raise JobNotFoundError(f'No job named "{name}". Known jobs: {known}.')
        return job

    def _check_open(self) -> None:
        if self._closing:
            raise JobManagerError("This job manager is shut down; create a new JobManager to add jobs.")

    # ------------------------------------------------------------------ views

    def subscribe(self, callback: Subscriber) -> Callable[[], None]:
        """Receive every :class:`Event` from now on, in order; returns an unsubscribe function."""
        return self._bus.subscribe(callback)

    @property
    def jobs(self) -> list[JobInfo]:
        """A snapshot of every known job (registered ones and recently finished ones)."""
        with self._lock:
            return [job_info(job) for job in self._jobs.values()]

    def job(self, name: str) -> JobInfo:
        """A snapshot of job ``name``."""
        with self._lock:
            return job_info(self._require(name))

    def runs(self, name: str | None = None, limit: int = 100) -> list[JobRun]:
        """The most recent finished runs (newest last), optionally of one job."""
        with self._lock:
            picked = [r for r in self._history if name is None or r.job.name == name]
            return [r.snapshot() for r in picked[-limit:]]

    def one_off_records(self) -> list[OneOffRecord]:
        """Every one-off record in the store."""
        return self._store.records()

    @property
    def store(self) -> OneOffStore:
        return self._store

    @property
    def clock(self) -> Clock:
        return self._clock

    def has_executed_successfully(self, name: str) -> bool:
        """True when a one-off record for ``name`` exists and has not failed."""
        record = self._store.get(name)
        return record is not None and record.has_executed_successfully

    def describe(self, at: Any) -> str:
        """One line of English for a schedule."""
        return describe_schedule(at, self._tz)

    # ------------------------------------------------------------------ waiting

    def _when_settled(self, name: str, callback: Callable[[RunState], None]) -> None:
        """Call ``callback(run)`` when the run of ``name`` that is queued or running now ends; if none
        is, at once with the last ended run; if there was none, when the next run of ``name`` ends."""
        with self._lock:
            job = self._jobs.get(name)
            if job is not None and job.active:
                run = next(reversed(job.active.values()))
                if run.callbacks is None:
                    run.callbacks = []
                run.callbacks.append(callback)
                return
            last = job.last_run if job is not None else None
            if last is None:
                self._next_waiters.setdefault(name, []).append(callback)
                return
            if not last.released:  # ended, but its last events are still on their way to subscribers
                last.callbacks = [*(last.callbacks or []), callback]
                return
        callback(last)

    @staticmethod
    def _outcome(run: RunState) -> JobRun:
        snapshot = run.snapshot()
        if run.status == "failed":
            last_line = run.error.strip().splitlines()[-1] if run.error and run.error.strip() else "failed"
            raise JobFailedError(f'Job "{run.job.name}" failed: {last_line}', snapshot) from run.exc
        return snapshot

    async def await_completion(self, name: str, timeout: float | None = None) -> JobRun:
        """Wait for the run of ``name`` (see :meth:`wait`)."""
        run = await wait_async(self._settled_run(name), timeout, lambda: _not_completed(name, timeout))
        return self._outcome(run)

    def wait(self, name: str, timeout: float | None = None) -> JobRun:
        """Block until the run of ``name`` that is queued or running now ends (or, if none is, return
        the last one that ended; if there was none, wait for the next). Returns the :class:`JobRun`;
        raises :class:`JobFailedError` if it failed and :class:`TimeoutError` when time runs out."""
        if running_loop() is self._loop:
            return run_blocking(self._loop, self.await_completion(name, timeout))
        run = wait_blocking(self._settled_run(name), timeout, lambda: _not_completed(name, timeout))
        return self._outcome(run)

    def _settled_run(self, name: str) -> Register[RunState]:
        return lambda settle: self._when_settled(name, settle)

    async def await_one_off_completion(self, name: str, timeout: float | None = None) -> OneOffRecord:
        """Wait until one-off ``name``'s stored record is finished (returned) or failed (raises)."""
        record = self._store.get(name)
        if record is None:
            raise JobNotFoundError(f'No one-off job "{name}" is in the store. Add it with add_one_off_job first.')
        if record.is_active:
            with self._lock:
                ours = name in self._jobs and bool(self._jobs[name].active)
            if ours:
                with contextlib.suppress(JobFailedError):
                    await self.await_completion(name, timeout)
            else:
                await self._poll_record(name, timeout)
            record = self._store.get(name)
            assert record is not None
        if record.status == "failed":
            raise JobFailedError(f'One-off job "{name}" failed: {record.error}', record)
        return record

    async def _poll_record(self, name: str, timeout: float | None) -> None:
        # The record belongs to another process sharing the store file: nothing tells us when it
        # changes, so look every half second.
        async def poll() -> None:
            while True:
                record = self._store.get(name)
                if record is None or not record.is_active:
                    return
                await asyncio.sleep(0.5)

        try:
            await asyncio.wait_for(poll(), timeout)
        except asyncio.TimeoutError:
            raise TimeoutError(f'One-off job "{name}" did not complete within {timeout} s.') from None

    def wait_one_off(self, name: str, timeout: float | None = None) -> OneOffRecord:
        """Blocking twin of :meth:`await_one_off_completion`."""
        record: OneOffRecord = run_blocking(self._loop, self.await_one_off_completion(name, timeout))
        return record

    async def all_settled(self, timeout: float | None = None) -> None:
        """Wait until no run is queued or running (failures do not raise)."""
        await wait_async(self._idle, timeout, lambda: self._still_running(timeout))

    def wait_all(self, timeout: float | None = None) -> None:
        """Blocking twin of :meth:`all_settled`."""
        if running_loop() is self._loop:
            run_blocking(self._loop, self.all_settled(timeout))
            return
        wait_blocking(self._idle, timeout, lambda: self._still_running(timeout))

    def _idle(self, settle: Callable[[None], None]) -> None:
        self._when_idle(lambda: settle(None))

    def _still_running(self, timeout: float | None) -> str:
        return f"Jobs were still running after {timeout} s: {self._active_names()}."

    def _when_idle(self, callback: Callable[[], None]) -> None:
        with self._lock:
            if self._active_count > 0:
                self._idle_waiters.append(callback)
                return
        callback()

    def _active_names(self) -> str:
        with self._lock:
            return ", ".join(sorted(n for n, j in self._jobs.items() if j.active)) or "none"

    # ------------------------------------------------------------------ shutdown

    async def shutdown(self, timeout: float | None = None) -> None:
        """Stop every schedule, cancel running workers and wait for them and for the inline queue.
        Workers still running after ``timeout`` seconds are killed and :class:`TimeoutError` is raised."""
        await asyncio.get_running_loop().run_in_executor(None, self._shutdown_sync, timeout)

    def close(self, timeout: float | None = None) -> None:
        """Blocking twin of :meth:`shutdown`."""
        if running_loop() is self._loop:
            run_blocking(self._loop, self.shutdown(timeout))
        else:
            self._shutdown_sync(timeout)

    def _shutdown_sync(self, timeout: float | None) -> None:
        with self._lock:
            if self._closed:
                return
            self._closing = True
            for job in self._jobs.values():
                if job.timer is not None:
                    job.timer.cancel()
                    job.timer = None
                job.next_run = None
            active = [r for j in self._jobs.values() for r in j.active.values()]
        for run in active:
            if run.handle is not None:
                run.handle.cancel()
        bound = self._kill_grace if timeout is None else timeout
        done = threading.Event()
        self._when_idle(done.set)
        timed_out = not done.wait(bound)
        stuck = ""
        if timed_out:
            stuck = self._active_names()
            with self._lock:
                active = [r for j in self._jobs.values() for r in j.active.values()]
            for run in active:
                if run.handle is not None:
                    run.handle.kill()
                else:
                    self._inline.cancel(run)
            done.wait(5.0)
        if self._executor is not None:
            self._executor.shutdown(timeout=0 if timed_out else 1.0)
        self._timers.stop()
        with self._lock:
            self._closed = True
        self._inline.close()
        if self._owns_store:
            close = getattr(self._store, "close", None)
            if callable(close):
                close()
        if self._loop_thread is not None:
            self._loop_thread.stop()
        if timed_out:
            raise TimeoutError(f"Jobs still running {bound:g} s after shutdown began were stopped: {stuck}.")

    def __enter__(self) -> JobManager:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    async def __aenter__(self) -> JobManager:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.shutdown()

    def __repr__(self) -> str:
        with self._lock:
            registered = sum(1 for j in self._jobs.values() if j.registered)
            return f"<JobManager {registered} jobs registered, {self._active_count} active>"


def _not_completed(name: str, timeout: float | None) -> str:
    return f'Job "{name}" did not complete within {timeout} s.'
