"""The manager's bookkeeping: how a job is defined, a job's live state, and one run's state.

Plain mutable records guarded by the manager's lock; :meth:`RunState.snapshot` and :func:`job_info`
turn them into the frozen :class:`~jobmanager_nb.model.JobRun` and :class:`~jobmanager_nb.model.JobInfo`
that users see. Nothing here runs jobs or takes locks.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from jobmanager_nb.executors.base import RunHandle
from jobmanager_nb.jobs import JobTarget
from jobmanager_nb.model import JobInfo, JobKind, JobRun, JobStatus, RunStatus
from jobmanager_nb.schedules import Schedule
from jobmanager_nb.timers import TimerHandle

__all__ = ["HISTORY_LIMIT", "OUTPUT_LIMIT", "JobDefinition", "JobState", "RunState", "job_info", "one_off_meta"]

OUTPUT_LIMIT = 1_000_000
"""Characters of captured output kept per run (the newest are kept)."""
HISTORY_LIMIT = 1_000
"""Finished runs kept for ``JobManager.runs()``, and unregistered jobs kept for the views."""

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


class RunState:
    """Mutable state of one run; :meth:`snapshot` gives the public :class:`JobRun`."""

    __slots__ = (
        "attempt",
        "callbacks",
        "cancelled",
        "definition",
        "error",
        "exc",
        "finished_at",
        "handle",
        "job",
        "output",
        "output_size",
        "queued_at",
        "released",
        "result",
        "run_id",
        "scheduled_for",
        "settled",
        "started_at",
        "status",
        "task",
        "timed_out",
        "timeout_timer",
    )

    def __init__(self, job: JobState, definition: JobDefinition, scheduled_for: datetime | None, now: datetime) -> None:
        self.job = job
        self.definition = definition
        self.run_id = f"r{next(_run_ids)}"
        self.status: RunStatus = "queued"
        self.attempt = 1
        self.scheduled_for = scheduled_for
        self.queued_at = now
        self.started_at: datetime | None = None
        self.finished_at: datetime | None = None
        self.result: Any = None
        self.error: str | None = None
        self.exc: BaseException | None = None
        self.output: list[str] | None = None
        self.output_size = 0
        self.cancelled = False
        self.timed_out = False
        self.handle: RunHandle | None = None
        self.task: asyncio.Future[Any] | None = None
        self.timeout_timer: TimerHandle | None = None
        self.callbacks: list[Callable[[RunState], None]] | None = None
        self.settled = False  # ended: no second finish
        self.released = False  # its waiters were told, after its events reached the subscribers

    def snapshot(self) -> JobRun:
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
            output="".join(self.output) if self.output else "",
            cancelled=self.cancelled,
        )

    def add_output(self, text: str) -> None:
        if self.output is None:
            self.output = []
        self.output.append(text)
        self.output_size += len(text)
        while self.output_size > OUTPUT_LIMIT and len(self.output) > 1:
            self.output_size -= len(self.output.pop(0))


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
        "registered",
        "running",
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
        self.running = 0
        self.last_run: RunState | None = None
        self.runs = 0
        self.failures = 0
        self.skipped = 0
        self.progress: tuple[float, str | None] | None = None

    @property
    def recurring(self) -> bool:
        schedule = self.definition.schedule
        return schedule is not None and schedule.is_recurring


def job_info(job: JobState) -> JobInfo:
    """The public snapshot of ``job``. Call with the manager's lock held."""
    d = job.definition
    current = next(reversed(job.active.values())) if job.active else None
    status: JobStatus
    if job.paused:
        status = "paused"
    elif current is not None:
        status = "started" if job.running else "queued"
    elif job.next_run is not None:
        status = "scheduled"
    elif job.last_run is not None:
        status = job.last_run.status
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
    )


def one_off_meta(d: JobDefinition) -> dict[str, Any]:
    """What a one-off record remembers of its job: enough to show it, and to rerun a script or
    reference job from a later session (data only when it is JSON and small)."""
    meta: dict[str, Any] = {"kind": d.kind, "target": d.target.label, "target_type": d.target.type}
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
