"""The manager's bookkeeping: how a job is defined, a job's live state, and one run's state.

Plain mutable records guarded by the manager's lock; :meth:`RunState.snapshot` and :func:`job_info`
turn them into the frozen :class:`~jobmanager_nb.model.JobRun` and :class:`~jobmanager_nb.model.JobInfo`
that users see. Nothing here runs jobs or takes locks.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from jobmanager_nb.executors.base import RunHandle
from jobmanager_nb.jobs import JobTarget
from jobmanager_nb.lifecycle import FINAL, Outcome, Phase, run_status
from jobmanager_nb.model import RECENT_RUNS, JobInfo, JobKind, JobRun, JobStatus, RunMark, RunStatus
from jobmanager_nb.schedules import Schedule
from jobmanager_nb.timers import TimerHandle

__all__ = [
    "HISTORY_EXC_LIMIT",
    "HISTORY_LIMIT",
    "HISTORY_OUTPUT_LIMIT",
    "OUTPUT_LIMIT",
    "JobDefinition",
    "JobState",
    "RunState",
    "job_info",
    "one_off_meta",
]

OUTPUT_LIMIT = 1_000_000
"""Characters of captured output kept per run (the newest are kept)."""
HISTORY_LIMIT = 1_000
"""Finished runs kept for ``JobManager.runs()``, and unregistered jobs kept for the views."""
HISTORY_OUTPUT_LIMIT = 8_000_000
"""Characters of captured output kept across all ended runs; past it the oldest runs' output is dropped
(their ``output`` then starts with a note saying how much was dropped). Output is also kept for at most
the ``HISTORY_LIMIT`` most recent ended runs that printed (every one still in the history among them), so
that runs printing a line each never pile up behind a budget they do not fill."""
HISTORY_EXC_LIMIT = 5
"""Ended runs, at most, that keep their exception object (and so the frames its traceback pins, locals
included, for ``wait()``'s ``JobFailedError.__cause__`` and the ``error_handler``): the most recent ones
that failed, and only while each is still its job's last run (a run keeps it at least until its waiters
were told). Older runs keep the traceback text only (``JobRun.error``), so jobs failing with large local
variables pin this many of them, not one per job."""

_run_ids = itertools.count(1)


@dataclass(frozen=True)
class JobDefinition:
    """How to run a job; replaced as a whole by ``add_job(..., replace=True)``."""

    target: JobTarget
    kind: JobKind
    data: Any
    data_json: str
    offload: tuple[Literal["script", "reference", "pickled"], str | bytes] | None
    timeout: float | None
    retries: int
    one_off: bool
    schedule: Schedule | None
    spec: Any
    call_without_data: bool
    executor: str | None = None
    """The name of the executor offloaded runs go to (resolved when the job is added; None for inline jobs)."""


class RunState:
    """Mutable state of one run; :meth:`snapshot` gives the public :class:`JobRun`.

    ``phase`` changes only through :func:`jobmanager_nb.lifecycle.advance`. ``attempt`` numbers the
    dispatches: a report that names an older attempt (a timed-out worker that answers late) is dropped.
    Output is kept in a deque trimmed from the front, so each write costs O(1) however much was printed.
    """

    __slots__ = (
        "attempt",
        "callbacks",
        "cancel_requested",
        "definition",
        "end_callbacks",
        "error",
        "exc",
        "finished_at",
        "handle",
        "job",
        "location",
        "outcome",
        "output",
        "output_dropped",
        "output_size",
        "phase",
        "queued_at",
        "result",
        "retry_at",
        "retry_timer",
        "returned",
        "run_id",
        "scheduled_for",
        "started_at",
        "store_error",
        "task",
        "timed_out_attempt",
        "timeout_timer",
    )

    def __init__(self, job: JobState, definition: JobDefinition, scheduled_for: datetime | None, now: datetime) -> None:
        self.job = job
        self.definition = definition
        self.run_id = f"r{next(_run_ids)}"
        self.phase: Phase = "queued"
        self.outcome: Outcome | None = None
        self.attempt = 1
        self.scheduled_for = scheduled_for
        self.queued_at = now
        self.started_at: datetime | None = None
        self.location: str | None = None  # where the latest attempt runs, once started
        self.finished_at: datetime | None = None
        self.retry_at: datetime | None = None
        self.result: Any = None
        self.error: str | None = None
        self.exc: BaseException | None = None
        self.output: deque[str] | None = None
        self.output_size = 0
        self.output_dropped = 0
        self.cancel_requested = False
        self.returned = False  # the job's code returned normally (a one-off is then recorded finished)
        self.timed_out_attempt = 0  # the attempt the manager's timeout stopped, if any
        self.handle: RunHandle | None = None
        self.task: asyncio.Future[Any] | None = None
        self.timeout_timer: TimerHandle | None = None
        self.retry_timer: TimerHandle | None = None
        self.store_error: BaseException | None = None  # the one-off record could not be written
        self.callbacks: list[Callable[[RunState | None], None]] | None = None  # told at release
        self.end_callbacks: list[Callable[[RunState | None], None]] | None = None  # told when it ends

    @property
    def status(self) -> RunStatus:
        return run_status(self.phase, self.outcome)

    @property
    def ended(self) -> bool:
        return self.phase in FINAL

    @property
    def cancelled(self) -> bool:
        return self.outcome == "cancelled"

    def snapshot(self) -> JobRun:
        output = "".join(self.output) if self.output else ""
        dropped = self.output_dropped
        if len(output) > OUTPUT_LIMIT:
            dropped += len(output) - OUTPUT_LIMIT
            output = output[-OUTPUT_LIMIT:]
        if dropped:
            output = f"[{dropped:,} earlier characters of output were dropped]\n{output}"
        return JobRun(
            name=self.job.name,
            run_id=self.run_id,
            kind=self.definition.kind,
            status=self.status,
            attempt=self.attempt,
            scheduled_for=self.scheduled_for,
            queued_at=self.queued_at,
            started_at=self.started_at,
            finished_at=self.finished_at,
            result=self.result,
            error=self.error,
            output=output,
            cancelled=self.cancelled,
            phase=self.phase,
            outcome=self.outcome,
            retry_at=self.retry_at if self.phase == "retrying" else None,
            location=self.location,
        )

    def add_output(self, text: str) -> None:
        """Keep ``text``; only the newest :data:`OUTPUT_LIMIT` characters are shown. Trimming waits for a
        quarter of the limit of slack and then cuts once, so each write costs O(1) amortised whatever
        the sizes of the writes."""
        output = self.output
        if output is None:
            output = self.output = deque()
        output.append(text)
        self.output_size += len(text)
        if self.output_size > OUTPUT_LIMIT + OUTPUT_LIMIT // 4:
            while self.output_size - len(output[0]) >= OUTPUT_LIMIT:
                oldest = output.popleft()
                self.output_size -= len(oldest)
                self.output_dropped += len(oldest)
            excess = self.output_size - OUTPUT_LIMIT
            if excess > 0:
                output[0] = output[0][excess:]
                self.output_size -= excess
                self.output_dropped += excess

    def mark(self) -> RunMark:
        """The small record of this ended run that its job keeps for the dashboard's strip."""
        assert self.outcome is not None
        error = self.error.strip().splitlines()[-1] if self.error and self.error.strip() else None
        return RunMark(self.run_id, self.outcome, self.started_at, self.finished_at, error, self.location)

    def drop_output(self) -> int:
        """Forget the captured output (the history's budget is spent); returns the characters freed."""
        freed = self.output_size
        if self.output:
            self.output_dropped += freed
        self.output = None
        self.output_size = 0
        return freed


class JobState:
    """A registered (or recently finished) job and its counters."""

    __slots__ = (
        "active",
        "definition",
        "failures",
        "last_run",
        "name",
        "next_run",
        "paused",
        "paused_at",
        "progress",
        "recent",
        "registered",
        "runs",
        "skipped",
        "timer",
    )

    def __init__(self, name: str, definition: JobDefinition) -> None:
        self.name = name
        self.definition = definition
        self.registered = True
        self.paused = False
        self.paused_at: datetime | None = None
        self.timer: TimerHandle | None = None
        self.next_run: datetime | None = None
        self.active: dict[str, RunState] = {}  # queued or running, in order, by run id
        self.last_run: RunState | None = None
        self.runs = 0
        self.failures = 0
        self.skipped = 0
        self.progress: tuple[float, str | None] | None = None
        self.recent: deque[RunMark] = deque(maxlen=RECENT_RUNS)

    @property
    def recurring(self) -> bool:
        schedule = self.definition.schedule
        return schedule is not None and schedule.is_recurring


def job_info(job: JobState) -> JobInfo:
    """The public snapshot of ``job``. Call with the manager's lock held."""
    d = job.definition
    current = next(reversed(job.active.values())) if job.active else None
    status: JobStatus
    if current is not None:
        phases = {run.phase for run in job.active.values()}
        status = "started" if "started" in phases else "retrying" if "retrying" in phases else "queued"
    elif job.paused:
        status = "paused"
    elif job.next_run is not None:
        status = "scheduled"
    elif job.last_run is not None:
        outcome = job.last_run.outcome
        status = "finished" if outcome == "finished" else "cancelled" if outcome == "cancelled" else "failed"
    else:
        status = "idle"
    spec = d.spec
    return JobInfo(
        name=job.name,
        kind=d.kind,
        one_off=d.one_off,
        target=d.target.label,
        schedule="" if spec is None else str(spec),
        schedule_description=d.schedule.describe() if d.schedule is not None else "once, now",
        status=status,
        next_run=job.next_run,
        last_run=job.last_run.snapshot() if job.last_run is not None else None,
        current_run=current.snapshot() if current is not None else None,
        runs=job.runs,
        failures=job.failures,
        skipped=job.skipped,
        paused=job.paused,
        recurring=job.recurring,
        progress=job.progress,
        registered=job.registered,
        recent=tuple(job.recent),
        executor=d.executor,
    )


def one_off_meta(d: JobDefinition) -> dict[str, Any]:
    """What a one-off record remembers of its job: enough to show it, and to rerun a script or
    reference job from a later session (data only when it is JSON and small), on the executor of the same
    name."""
    meta: dict[str, Any] = {"kind": d.kind, "target": d.target.label, "target_type": d.target.type}
    if d.executor is not None:
        meta["executor"] = d.executor  # a rerun from a later session goes to the executor of that name
    if d.target.type == "script" and d.target.path is not None:
        meta["job"] = str(d.target.path)
    elif d.target.type == "reference" and d.target.reference is not None:
        meta["job"] = d.target.reference
    else:
        return meta
    if d.timeout is not None:
        meta["timeout"] = d.timeout
    if d.retries:
        meta["retries"] = d.retries
    if d.data is not None:
        try:
            encoded = json.dumps(d.data, allow_nan=False)
        except (TypeError, ValueError):
            encoded = ""
        if encoded and len(encoded) <= 4_000:
            meta["data"] = d.data
    return meta
