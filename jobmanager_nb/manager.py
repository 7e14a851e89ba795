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
import dataclasses
import inspect
import logging
import os
import sys
import threading
import time
import warnings
from collections import deque
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any

from jobmanager_nb.clock import Clock, SystemClock
from jobmanager_nb.errors import (
    DuplicateJobError,
    InvalidRecordError,
    JobConfigError,
    JobFailedError,
    JobManagerError,
    JobNotFoundError,
    OneOffAlreadyExecutedError,
    StoreError,
)
from jobmanager_nb.events import Event, EventBus, Subscriber
from jobmanager_nb.executors.base import Executor, OffloadedTask, RunOutcome, WorkerEvent
from jobmanager_nb.handle import JobHandle
from jobmanager_nb.inline import InlineRunner
from jobmanager_nb.interrupts import InterruptsHeld
from jobmanager_nb.jobs import check_json_data, offload_target, resolve_target, takes_no_argument
from jobmanager_nb.lifecycle import FINAL, Outcome, advance
from jobmanager_nb.loops import LoopThread, run_blocking, running_loop
from jobmanager_nb.model import DEFAULT_EXECUTOR, INLINE_LOCATION, LOCAL_EXECUTOR, JobInfo, JobRun
from jobmanager_nb.schedules import describe_schedule, parse_schedule
from jobmanager_nb.state import (
    HISTORY_EXC_LIMIT,
    HISTORY_LIMIT,
    HISTORY_OUTPUT_LIMIT,
    JobDefinition,
    JobState,
    RunState,
    job_info,
    one_off_meta,
)
from jobmanager_nb.store import MemoryStore, OneOffRecord, OneOffStore, TinyDBStore, current_owner
from jobmanager_nb.timers import TimerHandle, Timers
from jobmanager_nb.waiting import Register, Unregister, wait_async, wait_blocking

__all__ = ["JobHandle", "JobManager"]

log = logging.getLogger("jobmanager_nb")

STORE_RETRY_PAUSES = (0.05, 0.2)
"""Seconds between the tries of a one-off record write the store refused (then it surfaces)."""

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

    Offloaded runs go to an executor. ``executor`` is the default one (every offloaded job added without
    ``executor=``); without it, the built-in :class:`~jobmanager_nb.executors.local.ProcessExecutor`, made on
    the first offloaded run. ``executors`` names more (``{"dask": DaskExecutor(...)}``; or later,
    :meth:`add_executor`), which a job picks with ``add_job(..., executor="dask")``. The name ``"local"``
    always means the built-in one, ``"default"`` the default; both are reserved. :meth:`close` shuts down only
    the built-in executor: the ones passed in stay open (they are the caller's to shut down).
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
        executors: Mapping[str, Executor] | None = None,
        loop: asyncio.AbstractEventLoop | None = None,
        tz: Any = None,
        retry_backoff: float = 1.0,
        kill_grace: float = 5.0,
        capture_inline_output: bool = True,
        log_failures: bool = True,
    ) -> None:
        if inline_concurrency < 1:
            raise ValueError("inline_concurrency must be at least 1")
        if executor is not None and not isinstance(executor, Executor):
            raise TypeError(f"executor must be an Executor (ProcessExecutor, DaskExecutor, ...), not {executor!r}")
        named = dict(executors or {})
        for executor_name, named_executor in named.items():
            _check_executor(executor_name, named_executor)
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
        self._history_output = 0  # characters of output kept by the runs in _with_output
        self._with_output: deque[RunState] = deque()
        self._with_exc: deque[RunState] = deque()  # ended runs that still hold their exception
        self._next_waiters: dict[str, list[Callable[[RunState | None], None]]] = {}
        self._idle_waiters: list[Callable[[], None]] = []
        self._names: set[str] = set()  # every name ever added: waiting for any other could never end
        self._trim_above = 2 * HISTORY_LIMIT  # _jobs is trimmed when it grows past this
        self._unwritten: dict[str, tuple[str, str | None]] = {}  # one-off endings the store refused
        self._unwritten_timer: TimerHandle | None = None
        self._unwritten_delay = 1.0
        self._sleep: Callable[[float], None] = time.sleep
        self._store_closed = False
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
            start=self._start_inline,
            finish=self._end,
            output=self._on_output,
            progress=self._on_progress,
            capture_output=capture_inline_output,
        )

        # The default executor: the caller's (never shut down here), or, once made, the built-in one.
        self._executor: Executor | None = executor
        self._default_given = executor is not None
        self._local: Executor | None = None  # the built-in ProcessExecutor, made on first use: ours to shut down
        self._local_shut = False  # shutdown has taken the built-in one (or its absence): none is made after
        self._named: dict[str, Executor] = named  # the caller's, by name (never shut down here)
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
        executor: str | None = None,
    ) -> JobHandle:
        """Register ``job`` to run now (``at=None``), at a datetime, every N seconds, or on a cron or
        text schedule. Returns a :class:`JobHandle` (``.name``, ``.info``, ``.wait()``).

        ``executor`` names the executor its offloaded runs go to (see :meth:`add_executor`); None is the
        manager's default. An unknown name, or any name for an inline job, is a :class:`JobConfigError`."""
        definition, name = self._define(job, name, at, data, offloaded, timeout, retries, executor, one_off=False)
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
        executor: str | None = None,
    ) -> JobHandle:
        """Run ``job`` once, ever: its state is kept in the store under ``name``. Only a failed one-off
        can be added again (a rerun); otherwise :class:`OneOffAlreadyExecutedError` is raised. ``executor``
        as for :meth:`add_job`; a mistake in it is raised before anything is written to the store."""
        if not name:
            raise JobConfigError("The name parameter is required for a one off job.")
        definition, name = self._define(job, name, None, data, offloaded, timeout, retries, executor, one_off=True)
        self._check_open()
        with self._lock:
            existing = self._jobs.get(name)
            if existing is not None and existing.registered and existing.active:
                raise OneOffAlreadyExecutedError(
                    f'A "{name}" one off job has already been executed. It is running now; wait for it with '
                    f'wait("{name}").'
                )
        self._flush_unwritten()  # an ending the store refused earlier decides whether this is a rerun
        self._store.claim(name, self._owner, meta=one_off_meta(definition))
        return self._register(name, definition, replace=True)

    def rerun(self, name: str) -> JobHandle:
        """Run a failed one-off job again, with the definition it was added with. A script or
        ``module:function`` one-off can be rerun from a later session too (its record remembers it, and the
        name of its executor, which must then be added to this manager: :class:`JobConfigError` otherwise);
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
                    executor=_stored_executor(meta),
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
            executor=d.executor,
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
        executor: str | None,
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
        executor = self._executor_for_job(name, executor, offloaded)
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
            executor=executor,
        )
        return definition, name

    def _executor_for_job(self, name: str, executor: str | None, offloaded: bool) -> str | None:
        """The executor name job ``name`` remembers: ``executor`` when it is known, else the default's name
        (``default``, or ``local`` when the default is the built-in one); None for an inline job."""
        if executor is None:
            if not offloaded:
                return None
            return DEFAULT_EXECUTOR if self._default_given else LOCAL_EXECUTOR
        if not isinstance(executor, str):
            raise JobConfigError(f'Job "{name}": executor= is the name of an executor (a string), not {executor!r}.')
        if not offloaded:
            raise JobConfigError(
                f'Job "{name}": executor="{executor}" sends offloaded runs somewhere, and this job is inline '
                "(offloaded=False). Drop executor=, or offload the job."
            )
        with self._lock:
            known = executor in (LOCAL_EXECUTOR, DEFAULT_EXECUTOR) or executor in self._named
        if not known:
            raise JobConfigError(
                f'Job "{name}": no executor named "{executor}" (known: {", ".join(self.executor_names)}). Add it '
                f'first with add_executor("{executor}", executor) (in a notebook: '
                f'jobmanager_nb.get_manager().add_executor("{executor}", ...)), or use one of those.'
            )
        return executor

    # ------------------------------------------------------------------ executors

    def add_executor(self, name: str, executor: Executor, *, replace: bool = False) -> None:
        """Make ``executor`` available as ``add_job(..., executor=name)`` (and ``add_one_off_job``). It stays
        the caller's: :meth:`close` never shuts it down. ``"local"`` and ``"default"`` are reserved
        (:class:`JobConfigError`). Adding the same executor under the same name again does nothing; another one
        under a name already added is refused unless ``replace=True``, which sends the next runs of the jobs
        that use the name to the new executor (runs going on stay where they are)."""
        self._check_open()
        _check_executor(name, executor)
        with self._lock:
            current = self._named.get(name)
            if current is not None and current is not executor and not replace:
                raise JobConfigError(
                    f'An executor named "{name}" is already added ({type(current).__name__}). Pass replace=True '
                    f"to put this one in its place (the jobs that use it send their next runs to the new one), or "
                    "choose another name."
                )
            self._named[name] = executor

    @property
    def executors(self) -> dict[str, Executor]:
        """The executors added by name (``executors=`` and :meth:`add_executor`), a copy; ``"local"`` and
        ``"default"`` are not listed."""
        with self._lock:
            return dict(self._named)

    @property
    def executor_names(self) -> tuple[str, ...]:
        """Every name ``executor=`` accepts: ``default``, ``local``, then the added ones, sorted."""
        with self._lock:
            return (DEFAULT_EXECUTOR, LOCAL_EXECUTOR, *sorted(self._named))

    def executor_link(self, name: str | None) -> str | None:
        """The web page of executor ``name`` (its ``dashboard_link``: a Dask dashboard), or None: for the
        built-in one, an unknown name, or an executor without one. Never starts an executor."""
        with self._lock:
            if name in (None, DEFAULT_EXECUTOR):
                executor = self._executor if self._default_given else None
            else:
                executor = self._named.get(name)
        if executor is None:
            return None
        try:
            link = executor.dashboard_link
        except Exception:  # a page that cannot be named now (a closed client) is no page
            log.debug("jobmanager_nb: the dashboard link of executor %r failed", name, exc_info=True)
            return None
        return link if isinstance(link, str) and link else None

    def _executor_named(self, name: str | None) -> Executor:
        """The executor that runs a job whose definition names ``name``; makes the built-in one on first use."""
        with self._lock:
            if name not in (None, DEFAULT_EXECUTOR, LOCAL_EXECUTOR):
                assert name is not None
                return self._named[name]  # known: checked when the job was added, and names are never removed
            if name != LOCAL_EXECUTOR and self._executor is not None:
                return self._executor
            if self._local is None:
                if self._local_shut:  # a run submitted while close() ran: a new executor would never be shut down
                    raise JobManagerError("the job manager was shut down before this run could start")
                from jobmanager_nb.executors.local import ProcessExecutor

                self._local = ProcessExecutor()
                if self._executor is None:
                    self._executor = self._local
            return self._local

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
                self._names.add(name)
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
        """Forget the oldest unregistered jobs once more than twice ``HISTORY_LIMIT`` are known, down to
        ``HISTORY_LIMIT``. Jobs still queued or running stay; when they keep the table large, the next look
        waits for ``HISTORY_LIMIT`` more jobs, so a burst of thousands of queued jobs with a name each costs
        one scan per ``HISTORY_LIMIT`` jobs added, not one per job."""
        if len(self._jobs) <= self._trim_above:
            return
        stale = [n for n, j in self._jobs.items() if not j.registered and not j.active]
        for n in stale[: len(self._jobs) - HISTORY_LIMIT]:
            del self._jobs[n]
        self._trim_above = max(2 * HISTORY_LIMIT, len(self._jobs) + HISTORY_LIMIT)

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
        """Hand ``run`` (queued) to the inline queue or the executor: queued → dispatched. An Interrupt on
        the way ends the run (cancelled; a worker already given it is told to cancel) and goes on."""
        try:
            self._hand_over(run)
        except BaseException as exc:
            handle = run.handle
            if handle is not None:
                handle.cancel(grace=self._kill_grace)
            outcome: Outcome = "cancelled" if isinstance(exc, KeyboardInterrupt) else "failed"
            self._end(run, run.attempt, outcome, error=f"{type(exc).__name__} while it was handed over", retry=False)
            raise

    def _hand_over(self, run: RunState) -> None:
        offloaded = run.definition.kind == "offloaded"
        if offloaded and run.definition.one_off and not self._record_start(run):
            return
        with self._lock:
            if not advance(run, "dispatched"):
                return  # cancelled, removed or shut down before it was handed over
        if self._bus.has_subscribers:
            self._bus.publish(Event("queued", run.job.name, self._clock.now(), run.run_id, {"attempt": run.attempt}))
        if offloaded:
            self._submit_offloaded(run)
        else:
            self._inline.push(run)

    def _start_inline(self, run: RunState) -> bool | None:
        """The inline queue is about to call ``run``'s job (on the home loop): dispatched → started.

        None (not now: ask again in a moment) when the home loop is the manager's own thread and another
        thread holds the manager's lock. That thread is waiting for the GIL, which this one holds; blocking
        here would hand it the lock while it cannot run, and hand the next lock it wants back to this
        thread: a lock convoy, two context switches per job, which halved a plain script's inline
        throughput at random. The queue gives the GIL away instead, and then finds the lock free. (On
        the main thread, a notebook's, the lock is only ever taken with ``with``: an Interrupt could
        land between a non-blocking acquire and its release.)"""
        if self._loop_thread is not None:
            if not self._lock.acquire(blocking=False):
                return None
            self._lock.release()
        if run.definition.one_off and not self._record_start(run):
            return False
        now = self._clock.now()
        with self._lock:
            if not advance(run, "started"):
                return False
            run.started_at = now
            run.location = INLINE_LOCATION
        if self._bus.has_subscribers:
            data = {"attempt": run.attempt, "location": INLINE_LOCATION}
            self._bus.publish(Event("started", run.job.name, now, run.run_id, data))
        return True

    def _record_start(self, run: RunState) -> bool:
        """Write a one-off's ``started`` record before its code can run. When the store refuses even after
        a few tries, the run ends failed without running (nothing ran, so nothing can run twice)."""
        with self._lock:
            if run.ended:
                return False
        error = self._store_write(run.job.name, "started", None)
        if error is None:
            return True
        run.store_error = error
        text = f"the job did not run: {error}"
        # The record still says queued (or started, for a retry) under a live owner: unless the failure is
        # written once the store takes writes again, the one-off could never be rerun in this session and
        # wait_one_off would poll it for ever.
        self._keep_unwritten(run.job.name, "failed", text)
        self._end(run, run.attempt, "failed", error=text, exc=error, retry=False)
        return False

    # offloaded ------------------------------------------------------------

    def _submit_offloaded(self, run: RunState) -> None:
        d = run.definition
        assert d.offload is not None
        kind, target = d.offload
        attempt = run.attempt
        task = OffloadedTask(
            run_id=run.run_id,
            name=run.job.name,
            target_kind=kind,
            target=target,
            data_json=d.data_json,
            run_info={
                "name": run.job.name,
                "run_id": run.run_id,
                "attempt": attempt,
                "scheduled_for": run.scheduled_for.isoformat() if run.scheduled_for else None,
            },
            cwd=os.getcwd(),
            sys_path=tuple(p for p in sys.path if isinstance(p, str)),
        )
        try:
            executor = self._executor_named(d.executor)
            handle = executor.submit(task, lambda event: self._on_worker_event(run, attempt, event))
        except Exception as exc:
            self._end(run, attempt, "failed", error=f"could not start a worker: {type(exc).__name__}: {exc}", exc=exc)
            return
        with self._lock:
            if run.attempt == attempt and not run.ended:
                run.handle = handle
                cancel = run.cancel_requested
            else:
                cancel = not handle.done
        if cancel:  # cancelled while it was being submitted: the executor must not start it
            handle.cancel(grace=self._kill_grace)

    def _on_worker_event(self, run: RunState, attempt: int, event: WorkerEvent) -> None:
        """What the executor reports for ``attempt`` of ``run`` (on the executor's I/O thread); reports
        for an older attempt or an ended run are dropped."""
        kind = event.kind
        if run.attempt != attempt or run.ended:
            return
        if kind == "started":
            now = self._clock.now()
            with self._lock:
                if run.attempt != attempt or not advance(run, "started"):
                    return
                run.started_at = now
                run.location = event.location
                timeout = run.definition.timeout
                if timeout is not None:
                    deadline = now + timedelta(seconds=timeout)
                    run.timeout_timer = self._timers.call_at(deadline, lambda: self._on_timeout(run, attempt))
            if self._bus.has_subscribers:
                data = {"attempt": attempt, "location": event.location}
                self._bus.publish(Event("started", run.job.name, now, run.run_id, data))
        elif kind == "output":
            stream, text = event.payload
            self._on_output(run, stream, text)
        elif kind == "progress":
            fraction, text = event.payload
            self._on_progress(run, fraction, text)
        elif kind == "message":
            self._on_message(run, event.payload)
        elif kind == "exited":
            self._on_exited(run, attempt, event.outcome)

    def _on_message(self, run: RunState, message: Any) -> None:
        name = run.job.name
        handler = self._message_handler
        if handler is not None:
            payload = {"name": name, "message": message}

            def deliver() -> None:
                try:
                    handler(payload)
                except BaseException:  # code we do not own, Ctrl-C included
                    log.exception("jobmanager_nb: worker_message_handler failed for job %r", name)

            self._bus.call_soon(deliver)  # never on the executor's thread: a slow handler stalls no job
        if self._bus.has_subscribers:
            self._bus.publish(Event("message", name, self._clock.now(), run.run_id, {"message": message}))

    def _on_exited(self, run: RunState, attempt: int, outcome: RunOutcome | None) -> None:
        outcome = outcome or RunOutcome("failed", error="the worker ended without reporting")
        if run.timeout_timer is not None:
            run.timeout_timer.cancel()
        timed_out = run.timed_out_attempt == attempt  # the manager's timeout stopped it, however it then ended
        if outcome.status == "finished" and not timed_out:
            self._end(run, attempt, "finished", result=outcome.result)
            return
        error = outcome.error or ("it stopped when asked" if outcome.status == "finished" else "failed")
        ending: Outcome
        if timed_out:
            ending = "timed_out"
            error = f"timed out after {run.definition.timeout:g} s ({error})"
        elif outcome.cancelled:
            ending = "cancelled"
        elif outcome.lost:
            ending = "lost"
        else:
            ending = "failed"
        self._end(run, attempt, ending, error=error)

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

    def _on_timeout(self, run: RunState, attempt: int) -> None:
        with self._lock:
            if run.attempt != attempt or run.phase != "started" or run.handle is None:
                return
            run.timed_out_attempt = attempt
            handle = run.handle
        handle.cancel(grace=self._kill_grace)

    # ending ---------------------------------------------------------------

    def _end(
        self,
        run: RunState,
        attempt: int,
        outcome: Outcome,
        *,
        result: Any = None,
        error: str | None = None,
        exc: BaseException | None = None,
        retry: bool = True,
    ) -> None:
        """The one way an attempt of a run ends: into a retry when attempts are left (a failure, a
        timeout or a lost worker; never a cancel), otherwise into ``ended``. Dropped when ``attempt``
        is not the run's current one or the run has ended already (ended is final). A SIGINT that
        arrives meanwhile (an inline run ending on the kernel's thread) is delivered once the ending is
        whole: an Interrupt in between would leave the run ended but never released."""
        with InterruptsHeld():
            self._end_held(run, attempt, outcome, result=result, error=error, exc=exc, retry=retry)

    def _end_held(
        self,
        run: RunState,
        attempt: int,
        outcome: Outcome,
        *,
        result: Any,
        error: str | None,
        exc: BaseException | None,
        retry: bool,
    ) -> None:
        job = run.job
        events: list[Event] = []
        with self._lock:
            if run.attempt != attempt or run.ended:
                return
            run.returned = outcome == "finished"  # its code completed: a one-off is recorded finished
            if outcome == "finished" and run.cancel_requested:  # it stopped because it was asked to
                outcome, error = "cancelled", "cancelled: the job returned after it was asked to stop"
            now = self._clock.now()
            retry = (
                retry
                and outcome in ("failed", "timed_out", "lost")
                and run.attempt <= run.definition.retries
                and not run.cancel_requested
                and not self._closing
            )
            if retry:
                advance(run, "retrying")
                delay = self._retry_backoff * (2 ** (run.attempt - 1))
                run.retry_at = now + timedelta(seconds=delay)
                run.error = error
                run.handle = None
                run.task = None
                run.retry_timer = self._timers.call_at(run.retry_at, lambda: self._retry_due(run, attempt))
                events.append(
                    Event(
                        "failed",
                        job.name,
                        now,
                        run.run_id,
                        {"error": error, "retrying": True, "retry_in": delay, "retry_at": run.retry_at},
                    )
                )
            else:
                advance(run, "ended")
                self._ended(run, now, outcome, result, error, exc)
                if self._bus.has_subscribers:
                    data: dict[str, Any] = {"outcome": outcome}
                    if error is not None:
                        data.update(error=error, cancelled=outcome == "cancelled")
                    events.append(Event("finished" if error is None else "failed", job.name, now, run.run_id, data))
        if retry:
            self._publish(events)
            return
        self._after_end(run, events)

    def _ended(
        self, run: RunState, now: datetime, outcome: Outcome, result: Any, error: str | None, exc: BaseException | None
    ) -> None:
        """Bookkeeping of a run that just ended; called with the lock held."""
        job = run.job
        run.finished_at = now
        run.result = result
        run.error = error
        run.exc = exc
        run.outcome = outcome
        run.retry_at = None
        run.handle = None
        run.task = None
        for timer in (run.timeout_timer, run.retry_timer):
            if timer is not None:
                timer.cancel()
        run.timeout_timer = run.retry_timer = None
        job.active.pop(run.run_id, None)
        previous = job.last_run
        if previous is not None and previous is not run and previous.phase == "released":
            previous.exc = None  # older runs keep the traceback text only (an unreleased one: at its release)
        job.last_run = run
        job.recent.append(run.mark())
        job.runs += 1
        job.progress = None
        if error is not None:
            job.failures += 1
        if job.registered and not job.active and job.timer is None and not job.paused:
            job.registered = False
        self._keep_in_history(run)
        waiting = None
        if self._next_waiters and self._jobs.get(job.name) is job:  # not a removed job's late ending
            waiting = self._next_waiters.pop(job.name, None)
        if waiting:  # whoever waited for the next run of this job waits for this one
            run.callbacks = (run.callbacks or []) + waiting

    def _keep_in_history(self, run: RunState) -> None:
        """Keep ``run`` for :meth:`runs`, within the budget: at most ``HISTORY_LIMIT`` runs;
        ``HISTORY_OUTPUT_LIMIT`` characters of output over at most ``HISTORY_LIMIT`` runs that printed
        (the oldest output goes first); ``HISTORY_EXC_LIMIT`` exception objects (the oldest go first,
        once released: their error handler and waiters have had them)."""
        self._history.append(run)
        if run.output_size:
            self._history_output += run.output_size
            with_output = self._with_output
            with_output.append(run)
            while len(with_output) > HISTORY_LIMIT or (
                self._history_output > HISTORY_OUTPUT_LIMIT and len(with_output) > 1
            ):
                self._history_output -= with_output.popleft().drop_output()
        if run.exc is not None:
            self._with_exc.append(run)
            self._trim_exceptions()

    def _trim_exceptions(self) -> None:
        """Drop the exception objects of released runs past the ``HISTORY_EXC_LIMIT`` most recent (a run
        not yet released keeps its own: its waiters and error handler are still to have it). Called with
        the lock held."""
        with_exc = self._with_exc
        excess = sum(1 for r in with_exc if r.exc is not None) - HISTORY_EXC_LIMIT
        for r in with_exc:
            if excess <= 0:
                break
            if r.exc is not None and r.phase == "released":
                r.exc = None
                excess -= 1
        self._with_exc = deque(r for r in with_exc if r.exc is not None)

    def _after_end(self, run: RunState, events: list[Event]) -> None:
        """What follows an ending, outside the lock: the one-off record, the waits made from the event
        thread, the error handler or the failure log, the events, then (after their delivery, and
        whatever is raised on the way) the release of the run's waiters."""
        try:
            error = run.error
            if run.definition.one_off and run.store_error is None:
                # A job whose code returned is finished in the store even when it ended cancelled (asked to
                # stop, it stopped cleanly): its work is done, so it must never be runnable a second time.
                status = "finished" if run.returned else "failed"
                try:
                    store_error = self._store_write(run.job.name, status, error)
                except BaseException:  # an Interrupt mid-write: keep the ending, write it later
                    self._keep_unwritten(run.job.name, status, error)
                    raise
                if store_error is not None:
                    run.store_error = store_error
                    self._keep_unwritten(run.job.name, status, error)
            if run.end_callbacks is not None:  # rare: waits made from the event thread
                with self._lock:
                    told, run.end_callbacks = run.end_callbacks or [], None
                for callback in told:  # they cannot wait for its delivery: told now
                    _tell(callback, run)
            self._publish(events)
            handler = self._error_handler
            if handler is not None and (error is not None or run.store_error is not None):
                self._bus.call_soon(lambda: self._report_error(run, handler))
            elif error is not None and self._log_failures and run.outcome != "cancelled":
                log.error("jobmanager_nb: job %r failed (run %s):\n%s", run.job.name, run.run_id, error)
            elif run.store_error is not None and self._log_failures:
                log.error("jobmanager_nb: %s", run.store_error)
        finally:
            self._bus.after_delivery(lambda: self._release(run))

    def _retry_due(self, run: RunState, attempt: int) -> None:
        """The backoff of ``attempt`` is over: the next attempt is queued and dispatched."""
        with self._lock:
            if run.attempt != attempt or run.phase != "retrying" or self._closing:
                return
            advance(run, "queued")
            run.attempt += 1
            run.retry_at = None
            run.retry_timer = None
        self._dispatch(run)

    def _release(self, run: RunState) -> None:
        """Tell whoever waits for ``run`` (and for the manager to go idle) that it has ended. Runs once,
        after the run's last event has reached every subscriber (``EventBus.after_delivery``). Each
        waiter is told in isolation: one that fails never keeps the others from hearing."""
        with self._lock:
            if not advance(run, "released"):
                return
            callbacks, run.callbacks = run.callbacks or [], None
            if run.job.last_run is not run:
                run.exc = None  # a newer run of its job has ended: this one keeps the traceback text only
            elif len(self._with_exc) > HISTORY_EXC_LIMIT:
                self._trim_exceptions()
            self._active_count -= 1
            idle: list[Callable[[], None]] = []
            if self._active_count == 0 and self._idle_waiters:
                idle, self._idle_waiters = self._idle_waiters, []
        interrupt: BaseException | None = None
        for callback in callbacks:
            interrupt = _tell(callback, run) or interrupt
        for waiter in idle:
            interrupt = _tell(_ignoring_run(waiter), run) or interrupt
        if interrupt is not None and not self._bus.on_bus_thread:
            raise interrupt  # every waiter has heard; now the Ctrl-C goes on to the code it interrupted

    def _report_error(self, run: RunState, handler: ErrorHandler) -> None:
        error: BaseException
        if run.error is None and run.store_error is not None:
            error = run.store_error
        elif run.exc is not None and not isinstance(run.exc, (asyncio.CancelledError, KeyboardInterrupt)):
            error = run.exc
        else:
            error = JobFailedError(f'Job "{run.job.name}" failed: {run.error}', run.snapshot())
        meta = {
            "name": run.job.name,
            "run_id": run.run_id,
            "attempt": run.attempt,
            "kind": run.definition.kind,
            "outcome": run.outcome,
        }
        if run.store_error is not None:
            meta["store_error"] = run.store_error
        try:
            handler(error, meta)
        except BaseException:  # code we do not own, Ctrl-C included
            log.exception("jobmanager_nb: error_handler failed for job %r", run.job.name)

    # the one-off store ---------------------------------------------------

    def _store_write(self, name: str, status: str, error: str | None) -> StoreError | None:
        """Write one-off ``name``'s record as ``status``, trying a few times over about half a second.
        Returns None once written, or the :class:`StoreError` that says why it could not be."""
        self._flush_unwritten()
        failure: BaseException | None = None
        for pause in (*STORE_RETRY_PAUSES, None):
            try:
                if status == "started":
                    self._store.mark_started(name, self._owner)
                elif status == "finished":
                    self._store.mark_finished(name)
                else:
                    self._store.mark_failed(name, error or "failed")
                return None
            except InvalidRecordError as exc:  # a rule, not a fault: retrying cannot help
                failure = exc
                break
            except Exception as exc:
                failure = exc
            if pause is not None:
                self._sleep(pause)
        return _store_error(self._store, name, status, failure)

    def _keep_unwritten(self, name: str, status: str, error: str | None) -> None:
        """Remember an ending the store refused, and keep trying to write it (backing off to every
        30 s) until it is written or the manager closes."""
        with self._lock:
            self._unwritten[name] = (status, error)
            if self._unwritten_timer is None and not self._closing:
                self._unwritten_delay = 1.0
                self._arm_unwritten()

    def _arm_unwritten(self) -> None:
        when = self._clock.now() + timedelta(seconds=self._unwritten_delay)
        self._unwritten_timer = self._timers.call_at(when, self._retry_unwritten)

    def _retry_unwritten(self) -> None:
        self._flush_unwritten()
        with self._lock:
            self._unwritten_timer = None
            if self._unwritten and not self._closing:
                self._unwritten_delay = min(self._unwritten_delay * 2, 30.0)
                self._arm_unwritten()

    def _flush_unwritten(self) -> list[str]:
        """Write the endings the store refused earlier; returns the names still unwritten."""
        with self._lock:
            pending = list(self._unwritten.items())
        left: list[str] = []
        for name, (status, error) in pending:
            try:
                if status == "finished":
                    self._store.mark_finished(name)
                else:
                    self._store.mark_failed(name, error or "failed")
            except InvalidRecordError:
                pass  # someone else settled the record meanwhile: nothing left to write
            except Exception:
                left.append(name)
                continue
            with self._lock:
                if self._unwritten.get(name) == (status, error):
                    del self._unwritten[name]
        return left

    def _publish(self, events: list[Event]) -> None:
        for event in events:
            self._bus.publish(event)

    # ------------------------------------------------------------------ control

    def remove_job(self, name: str) -> None:
        """Unregister ``name``: its schedule stops, and its queued, running or retrying runs are cancelled
        (a queued one never starts)."""
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
            self._cancel_run(run, "removed")
        self._publish([Event("removed", name, self._clock.now())])

    def cancel(self, name: str) -> bool:
        """Cancel the queued, running or retrying runs of ``name`` (the job stays registered). Returns True
        if any run could be cancelled. A queued run never starts; an offloaded one is sent ``"cancel"``
        and killed after ``kill_grace`` seconds; an ``async`` inline one is cancelled at its next
        ``await``; a synchronous inline function that is already running cannot be interrupted, so it is
        left to finish (and False is returned when that is all there was)."""
        with self._lock:
            job = self._require(name)
            active = list(job.active.values())
        cancelled = [self._cancel_run(run, "cancelled") for run in active]
        return any(cancelled)

    def _cancel_run(self, run: RunState, why: str, *, kill: bool = True) -> bool:
        """Cancel ``run`` in whatever phase it is; False when it cannot be (a running synchronous
        inline job, or a run that has ended). A worker is killed ``kill_grace`` seconds later when
        ``kill`` is true (shutdown kills at its own deadline instead)."""
        with self._lock:
            phase = run.phase
            if phase in ("queued", "retrying") or (phase == "dispatched" and run.definition.kind == "inline"):
                end_now = True  # nothing runs it: it ends here and never starts
            else:
                end_now = False
                if phase in FINAL:
                    return False
                if run.definition.kind == "inline" and run.task is None:
                    return False  # a synchronous function is running: it cannot be interrupted
                run.cancel_requested = True
                handle = run.handle
        if end_now:
            reason = "during its retry backoff" if phase == "retrying" else "before it started"
            self._end(run, run.attempt, "cancelled", error=f"{why} {reason}", retry=False)
            return True
        if run.definition.kind == "inline":
            return self._inline.cancel(run)
        if handle is not None:  # dispatched or started: the executor ends it (and never starts a cancelled run)
            handle.cancel(grace=self._kill_grace if kill else None)
        return True  # still being submitted: _submit_offloaded cancels it once the handle exists

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
        """Receive every :class:`Event` from now on, in order, on the event thread; returns an
        unsubscribe function."""
        return self._bus.subscribe(callback)

    def flush_events(self, timeout: float | None = 5.0) -> bool:
        """Block until every event published so far has reached the subscribers (they are delivered on
        a thread of their own); False if ``timeout`` seconds passed first."""
        return self._bus.flush(timeout)

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
    def added_names(self) -> frozenset[str]:
        """Every name this manager has added, removed and finished ones included (so a one-off record
        under any other name was written by an earlier kernel, or by another one)."""
        with self._lock:
            return frozenset(self._names)

    @property
    def store(self) -> OneOffStore:
        return self._store

    @property
    def clock(self) -> Clock:
        return self._clock

    def has_executed_successfully(self, name: str) -> bool:
        """True when a one-off record for ``name`` exists and has not failed (an ending the store refused
        to record counts as recorded: this manager keeps it until the store takes it)."""
        with self._lock:
            unwritten = self._unwritten.get(name)
        if unwritten is not None:
            return unwritten[0] == "finished"
        ask = getattr(self._store, "has_executed_successfully", None)
        if callable(ask):  # the store's own rule: an orphaned record (its kernel is gone) does not count
            return bool(ask(name))
        record = self._store.get(name)
        return record is not None and record.has_executed_successfully

    def describe(self, at: Any) -> str:
        """One line of English for a schedule."""
        return describe_schedule(at, self._tz)

    # ------------------------------------------------------------------ waiting

    def _when_settled(self, name: str, callback: Callable[[RunState | None], None]) -> Unregister:
        """Call ``callback(run)`` when the run of ``name`` that is queued or running now ends; if none
        is, at once with the last ended run; if there was none, when the next run of ``name`` ends;
        ``callback(None)`` if the manager shuts down first. Returns the function that takes it back.

        From the event thread (a subscriber or a handler that waits), the callback is told when the run
        ends, not after its events were delivered: that thread cannot wait for itself."""
        early = self._bus.on_bus_thread
        with self._lock:
            job = self._jobs.get(name)
            target: RunState | None = None
            if job is not None and job.active:
                target = next(reversed(job.active.values()))
            elif job is not None and job.last_run is not None and job.last_run.phase == "ended" and not early:
                target = job.last_run  # ended, but its last events are still on their way to subscribers
            if target is not None:
                attr = "end_callbacks" if early and not target.ended else "callbacks"
                waiting = getattr(target, attr)
                if waiting is None:
                    waiting = []
                    setattr(target, attr, waiting)
                waiting.append(callback)
                return lambda: self._forget(waiting, callback)
            last = job.last_run if job is not None else None
            if last is None and not self._closing:
                waiting = self._next_waiters.setdefault(name, [])
                waiting.append(callback)
                return lambda: self._forget(waiting, callback, name)
        callback(last)  # the last ended run, or None: the manager is shut down and no run will come
        return _nothing

    def _forget(self, waiting: list[Any], callback: Any, name: str | None = None) -> None:
        """Take ``callback`` back out of ``waiting`` (a wait that timed out or was cancelled)."""
        with self._lock:
            with contextlib.suppress(ValueError):
                waiting.remove(callback)
            if name is not None and not waiting and self._next_waiters.get(name) is waiting:
                del self._next_waiters[name]

    def _outcome(self, name: str, run: RunState | None) -> JobRun:
        if run is None:
            raise JobManagerError(
                f'The job manager was shut down before a run of "{name}" ended; create a new JobManager to run it.'
            )
        snapshot = run.snapshot()
        if run.status == "failed":
            last_line = run.error.strip().splitlines()[-1] if run.error and run.error.strip() else "failed"
            raise JobFailedError(f'Job "{run.job.name}" failed: {last_line}', snapshot) from run.exc
        if run.store_error is not None and self._error_handler is None:
            raise run.store_error
        return snapshot

    def _check_wait(self, name: str | None, timeout: float | None) -> None:
        """Refuse, at once, a wait that could never return; on the home loop's thread, first make sure the
        inline queue is served (a Ctrl-C may have dropped its pump: :meth:`InlineRunner.ensure_pumping`)."""
        if running_loop() is self._loop:
            self._inline.ensure_pumping()
        if name is not None and timeout is None:
            with self._lock:
                known = name in self._names
            if not known:
                names = ", ".join(sorted(self._jobs)) or "none"
                raise JobNotFoundError(
                    f'No job named "{name}" has been added to this manager, so waiting for it would never end. '
                    f"Known jobs: {names}. To wait for a job that will be added later, pass timeout=."
                )
        if name is None and self._bus.on_bus_thread:
            raise JobManagerError(
                "wait_all() and all_settled() cannot run in an event subscriber, error_handler or "
                "worker_message_handler: that thread delivers the events they would wait for. Wait for one job "
                "with wait(name), or call wait_all() from your own thread."
            )
        current = self._inline.running_sync
        if current is None or running_loop() is not self._loop:
            return
        if name is None:
            what = "for every job (wait_all)"
        else:
            with self._lock:
                job = self._jobs.get(name)
                target = next(reversed(job.active.values())) if job is not None and job.active else None
                if target is not None:
                    waits_forever = target.definition.kind == "inline"
                else:  # it would wait for the next run: one that cannot come while this job holds the loop
                    waits_forever = job is None or (job.last_run is None and job.definition.kind == "inline")
            if not waits_forever:
                return
            what = f'for inline job "{name}"'
        raise JobManagerError(
            f'Job "{current.job.name}" is a synchronous inline job and waits {what}, which cannot run until '
            f'"{current.job.name}" returns, so the wait would never end. Make "{current.job.name}" an async def '
            "job and await manager.await_completion(...) instead, or offload one of them (offloaded=True)."
        )

    async def await_completion(self, name: str, timeout: float | None = None) -> JobRun:
        """Wait for the run of ``name`` (see :meth:`wait`)."""
        self._check_wait(name, timeout)
        run = await wait_async(self._settled_run(name), timeout, lambda: _not_completed(name, timeout))
        return self._outcome(name, run)

    def wait(self, name: str, timeout: float | None = None) -> JobRun:
        """Block until the run of ``name`` that is queued or running now ends (or, if none is, return
        the last one that ended; if there was none, wait for the next). Returns the :class:`JobRun`;
        raises :class:`JobFailedError` if it failed and :class:`TimeoutError` when time runs out.

        Without a timeout, a name that was never added raises :class:`JobNotFoundError` at once (a typo
        must not hang the notebook); with one, the wait may see a job added later. A synchronous inline
        job that waits for an inline job gets :class:`JobManagerError` at once (it would never end).
        When a one-off's ending could not be written to the store, this raises that
        :class:`~jobmanager_nb.errors.StoreError` unless an ``error_handler`` heard of it."""
        self._check_wait(name, timeout)
        if running_loop() is self._loop:
            return run_blocking(self._loop, self.await_completion(name, timeout))
        run = wait_blocking(self._settled_run(name), timeout, lambda: _not_completed(name, timeout))
        return self._outcome(name, run)

    def _settled_run(self, name: str) -> Register[RunState | None]:
        return lambda settle: self._when_settled(name, settle)

    async def await_one_off_completion(self, name: str, timeout: float | None = None) -> OneOffRecord:
        """Wait until one-off ``name``'s stored record is finished (returned) or failed (raises). A run
        of this manager whose ending the store refused is answered from memory (and the store error
        raised unless an ``error_handler`` heard of it), never polled for ever."""
        record = self._store.get(name)
        if record is None:
            raise JobNotFoundError(f'No one-off job "{name}" is in the store. Add it with add_one_off_job first.')
        if record.is_active:
            with self._lock:
                job = self._jobs.get(name)
                ending = job is not None and job.last_run is not None and job.last_run.phase == "ended"
                ours = job is not None and job.definition.one_off and (bool(job.active) or ending)
                ours = ours or name in self._unwritten
            if ours:
                with contextlib.suppress(JobFailedError):
                    await self.await_completion(name, timeout)
            else:
                await self._poll_record(name, timeout)
            record = self._store.get(name)
            assert record is not None
            with self._lock:
                unwritten = self._unwritten.get(name)
            if record.is_active and unwritten is not None:
                status, error = unwritten
                record = dataclasses.replace(record, status=status, error=error)  # type: ignore[arg-type]
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
        """Wait until no run is queued, running or retrying (failures do not raise)."""
        self._check_wait(None, timeout)
        await wait_async(self._idle, timeout, lambda: self._still_running(timeout))

    def wait_all(self, timeout: float | None = None) -> None:
        """Blocking twin of :meth:`all_settled`."""
        self._check_wait(None, timeout)
        if running_loop() is self._loop:
            run_blocking(self._loop, self.all_settled(timeout))
            return
        wait_blocking(self._idle, timeout, lambda: self._still_running(timeout))

    def _idle(self, settle: Callable[[None], None]) -> Unregister:
        return self._when_idle(lambda: settle(None))

    def _still_running(self, timeout: float | None) -> str:
        return f"Jobs were still running after {timeout} s: {self._active_names()}."

    def _when_idle(self, callback: Callable[[], None]) -> Unregister:
        with self._lock:
            if self._active_count > 0:
                self._idle_waiters.append(callback)
                return lambda: self._forget(self._idle_waiters, callback)
        callback()
        return _nothing

    def _active_names(self) -> str:
        with self._lock:
            return ", ".join(sorted(n for n, j in self._jobs.items() if j.active)) or "none"


    # ------------------------------------------------------------------ shutdown

    async def shutdown(self, timeout: float | None = None) -> None:
        """Stop every schedule, cancel what waits (queued offloaded runs, retry backoffs), cancel running
        workers and wait for them and for the inline queue. Workers still running after ``timeout``
        seconds (default ``kill_grace``) are killed and :class:`TimeoutError` is raised. An executor (the
        default or a named one) or a store passed in by the caller is left open: only what the manager created
        (the built-in executor, a store it opened from a path) is closed. One-off
        endings the store refused are written now; if it still refuses, :class:`StoreError` is raised."""
        await asyncio.get_running_loop().run_in_executor(None, self._shutdown_sync, timeout)

    def close(self, timeout: float | None = None) -> None:
        """Blocking twin of :meth:`shutdown`."""
        if running_loop() is self._loop:
            run_blocking(self._loop, self.shutdown(timeout))
        else:
            self._shutdown_sync(timeout)

    def _shutdown_sync(self, timeout: float | None) -> None:
        with self._lock:
            closed = self._closed
        if closed:  # closed before: only what the store refused then is left to do
            self._finish_store()
            return
        with self._lock:
            self._closing = True
            for job in self._jobs.values():
                if job.timer is not None:
                    job.timer.cancel()
                    job.timer = None
                job.next_run = None
            if self._unwritten_timer is not None:
                self._unwritten_timer.cancel()
                self._unwritten_timer = None
            active = [r for j in self._jobs.values() for r in j.active.values()]
            waiting, self._next_waiters = self._next_waiters, {}
        for callbacks in waiting.values():  # a wait for a run that can no longer come
            for callback in callbacks:
                _tell(callback, None)
        for run in active:
            if run.phase == "retrying" or run.definition.kind == "offloaded":
                self._cancel_run(run, "shut down", kill=False)
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
                handle = run.handle
                if handle is not None:
                    handle.kill()
                elif not self._inline.cancel(run):
                    self._cancel_run(run, "shut down")
            done.wait(5.0)
            with self._lock:
                left = [r for j in self._jobs.values() for r in j.active.values()]
            for run in left:  # nothing answers for it any more: end it, so that its waiters hear
                self._end(run, run.attempt, "cancelled", error="still running when the manager shut down", retry=False)
        with self._lock:
            local, self._local_shut = self._local, True
        if local is not None:  # the built-in one, which the manager made; the caller's stay open
            local.shutdown(timeout=0 if timed_out else 1.0)
        self._timers.stop()
        self._bus.close()
        with self._lock:
            self._closed = True
        self._inline.close()
        if self._loop_thread is not None:
            self._loop_thread.stop()
        try:
            self._finish_store()
        finally:
            if timed_out:
                raise TimeoutError(f"Jobs still running {bound:g} s after shutdown began were stopped: {stuck}.")

    def _finish_store(self) -> None:
        """Write the endings the store refused, then close the store if the manager made it. While the store
        still refuses, it stays open and :class:`StoreError` says so: calling :meth:`close` again once the
        disk has room (or the folder is writable) writes them."""
        unwritten = self._flush_unwritten()
        if unwritten:
            raise StoreError(
                f"The store {_store_location(self._store)} still refuses to record how these one-off jobs ended: "
                f"{', '.join(sorted(unwritten))}. Their records still say started. Free space (or make the folder "
                "writable) and call close() again to write them; otherwise the next kernel will reconcile them as "
                "interrupted, and they may run again."
            )
        if self._owns_store and not self._store_closed:
            self._store_closed = True
            close = getattr(self._store, "close", None)
            if callable(close):
                close()

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


_RESERVED_EXECUTORS = {
    LOCAL_EXECUTOR: "the built-in local process executor, which every manager has",
    DEFAULT_EXECUTOR: "the manager's default executor (JobManager(executor=...))",
}


def _check_executor(name: object, executor: object) -> None:
    """Refuse an executor name that is reserved or not a name, and an executor that is not one."""
    if not isinstance(name, str) or not name.strip() or name != name.strip():
        raise JobConfigError(f"An executor's name is a non-empty string without surrounding spaces, not {name!r}.")
    if not name.isprintable():  # it is printed in one-line errors and in one row of the text table
        raise JobConfigError(
            f"An executor's name is one line of text: {name!r} has a control character (a line break, a tab, ...)."
        )
    reserved = _RESERVED_EXECUTORS.get(name)
    if reserved is not None:
        raise JobConfigError(f'"{name}" is reserved: it means {reserved}. Add this executor under another name.')
    if not isinstance(executor, Executor):
        raise TypeError(
            f'executor "{name}" must be an Executor (ProcessExecutor, DaskExecutor, ...), not {type(executor).__name__}'
        )


def _stored_executor(meta: dict[str, Any]) -> str | None:
    """The executor name a one-off record remembers (None when it has none, or none that is a name)."""
    name = meta.get("executor")
    return name if isinstance(name, str) and meta.get("kind") == "offloaded" else None


def _not_completed(name: str, timeout: float | None) -> str:
    return f'Job "{name}" did not complete within {timeout} s.'


def _ignoring_run(waiter: Callable[[], None]) -> Callable[[RunState | None], None]:
    return lambda _: waiter()


def _nothing() -> None:
    """The unregister function of a callback that was called at once."""


def _tell(callback: Callable[[RunState | None], None], run: RunState | None) -> BaseException | None:
    """Call one waiter's callback in isolation: its error is logged and never reaches the other waiters.
    A ``KeyboardInterrupt`` or ``SystemExit`` is returned, for the caller to raise once everyone heard."""
    try:
        callback(run)
    except Exception:
        log.exception("jobmanager_nb: telling a waiter that a run ended failed")
    except BaseException as exc:  # re-raised by the caller after the other waiters
        return exc
    return None


def _store_location(store: OneOffStore) -> str:
    path = getattr(store, "path", None)
    return str(path) if path is not None else repr(store)


def _store_error(store: OneOffStore, name: str, status: str, failure: BaseException | None) -> StoreError:
    """The error that says a one-off's record could not be written, naming the store and the cause."""
    if isinstance(failure, StoreError):
        return failure
    error = StoreError(
        f'Could not record one-off job "{name}" as {status} in the store {_store_location(store)}: '
        f"{type(failure).__name__}: {failure}. Check that the disk has space and the folder is writable."
    )
    error.__cause__ = failure
    return error
