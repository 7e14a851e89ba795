"""Plain data the manager hands out: runs, job views and the run context.

Everything here is a read-only snapshot (frozen dataclasses), safe to keep, compare and show;
nothing in this module does work.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from jobmanager_nb.lifecycle import Outcome, Phase

__all__ = [
    "DEFAULT_EXECUTOR",
    "INLINE_LOCATION",
    "LOCAL_EXECUTOR",
    "RECENT_RUNS",
    "JobInfo",
    "JobKind",
    "JobRun",
    "JobStatus",
    "RunContext",
    "RunMark",
    "RunStatus",
    "current_run",
]

JobKind = Literal["inline", "offloaded"]
RunStatus = Literal["queued", "started", "finished", "failed"]
JobStatus = Literal[
    "scheduled", "queued", "started", "retrying", "finished", "failed", "cancelled", "paused", "idle"
]
"""What a job is doing, derived from its runs' phases (:mod:`jobmanager_nb.lifecycle`): a run going
(``queued``, ``started``, ``retrying``) wins over ``paused`` (a paused job whose run still goes shows the
run); otherwise ``paused``, ``scheduled``, then the last run's ending (``finished``, ``cancelled``, or
``failed`` for every other outcome), or ``idle``."""

LOCAL_EXECUTOR = "local"
"""The executor name that always means the manager's built-in :class:`~jobmanager_nb.executors.local.ProcessExecutor`
(made on first use, shut down by :meth:`~jobmanager_nb.manager.JobManager.close`). Reserved: no executor can be
added under it."""
DEFAULT_EXECUTOR = "default"
"""The executor name that means the manager's default executor, the one ``JobManager(executor=...)`` was given
(an offloaded job added without ``executor=`` uses it). Reserved. Without a default of its own, a manager's
default is the built-in one, and such jobs say ``local``."""
INLINE_LOCATION = "kernel"
"""Where an inline run runs (:attr:`JobRun.location`): in this process, on the manager's home loop (a notebook's
kernel, or the process that made the manager)."""


@dataclass(frozen=True)
class RunContext:
    """What a running job knows about itself: ``jobmanager_nb.current_run()`` inline,
    ``worker.run`` offloaded. ``scheduled_for`` is the fire time the run covers (not when it
    actually started), so a late or retried run knows which period it is for."""

    name: str
    run_id: str
    attempt: int
    scheduled_for: datetime | None
    data: Any = None
    _report: Callable[[float, str | None], None] | None = field(default=None, repr=False, compare=False)

    def progress(self, fraction: float, text: str | None = None) -> None:
        """Report how far the run is (0.0–1.0); the dashboard shows it as a progress bar."""
        if not isinstance(fraction, (int, float)) or isinstance(fraction, bool) or not 0.0 <= fraction <= 1.0:
            raise ValueError(f"progress fraction must be a number from 0.0 to 1.0, not {fraction!r}")
        if self._report is not None:
            self._report(float(fraction), text)


@dataclass(frozen=True)
class JobRun:
    """One run of a job. ``error`` is text (with the traceback); ``output`` is the captured
    stdout/stderr text; ``result`` is the job's return value.

    ``status`` is the four-valued status one-off records use; ``phase`` is where the run is in its
    life (``queued``, ``dispatched``, ``started``, ``retrying``, ``ended``, ``released``) and
    ``outcome`` how it ended (``finished``, ``failed``, ``cancelled``, ``timed_out``, ``lost``; None
    while it has not). ``retry_at`` is when the next attempt starts, while ``phase`` is ``retrying``.

    ``location`` is where the run's code ran (its latest attempt), as its executor reported it when it started:
    ``"local"`` for a worker process on this machine (:class:`~jobmanager_nb.executors.local.ProcessExecutor`),
    a Dask worker's address (``tcp://10.0.0.5:40331``) for a Dask executor, ``"kernel"`` for an inline run
    (:data:`INLINE_LOCATION`); None until it started (and for an executor that does not say).
    """

    name: str
    run_id: str
    kind: JobKind
    status: RunStatus
    attempt: int = 1
    scheduled_for: datetime | None = None
    queued_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    result: Any = None
    error: str | None = None
    output: str = ""
    cancelled: bool = False
    phase: Phase = "ended"
    outcome: Outcome | None = None
    retry_at: datetime | None = None
    location: str | None = None

    @property
    def duration(self) -> float | None:
        """Seconds from start to finish, or None while not finished."""
        if self.started_at is None or self.finished_at is None:
            return None
        return (self.finished_at - self.started_at).total_seconds()

    @property
    def ok(self) -> bool:
        return self.status == "finished"


RECENT_RUNS = 20
"""Ended runs each job remembers as :class:`RunMark` (the dashboard's strip of recent runs)."""


@dataclass(frozen=True)
class RunMark:
    """One ended run, small enough to keep the last :data:`RECENT_RUNS` of every job: how it ended, when,
    how long it took, the last line of its error, and where it ran (:attr:`JobRun.location`)."""

    run_id: str
    outcome: Outcome
    started_at: datetime | None
    finished_at: datetime | None
    error_line: str | None = None
    location: str | None = None

    @property
    def duration(self) -> float | None:
        """Seconds from start to finish, or None for a run that never started."""
        if self.started_at is None or self.finished_at is None:
            return None
        return (self.finished_at - self.started_at).total_seconds()


@dataclass(frozen=True)
class JobInfo:
    """A registered job as a dashboard sees it."""

    name: str
    kind: JobKind
    one_off: bool
    target: str
    schedule: str
    schedule_description: str
    status: JobStatus
    next_run: datetime | None
    last_run: JobRun | None
    current_run: JobRun | None
    runs: int
    failures: int
    skipped: int
    paused: bool
    recurring: bool
    progress: tuple[float, str | None] | None = None
    registered: bool = True
    """False once the job cannot run again (a finished one-shot job): its name is free to reuse."""
    recent: tuple[RunMark, ...] = ()
    """The job's last ended runs, oldest first (at most :data:`RECENT_RUNS`)."""
    origin: Literal["this kernel", "earlier kernel"] = "this kernel"
    """``earlier kernel`` for a one-off the store remembers from a kernel before this one (the dashboard shows
    it so that it can be rerun); such a view is built from the stored record, not from a registered job."""
    rerun_hint: str | None = None
    """For an earlier kernel's one-off that cannot be rerun from here: why, and what to do instead."""
    executor: str | None = None
    """The name of the executor the job's offloaded runs go to: the ``executor=`` it was added with, or without
    one ``"default"`` (the manager's ``JobManager(executor=...)``) or ``"local"`` (the built-in, when the manager
    has no default of its own). None for an inline job."""


_current: contextvars.ContextVar[RunContext | None] = contextvars.ContextVar(
    "jobmanager_nb_current_run", default=None
)


def current_run() -> RunContext | None:
    """The run of the inline job executing now in this context, or None outside a job."""
    return _current.get()
