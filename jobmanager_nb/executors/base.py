"""The one interface every offloaded-job backend implements.

The manager hands an :class:`OffloadedTask` (plain, picklable data) to an :class:`Executor` together
with a listener. The executor runs the task in a fresh process (or on a cluster) and reports what
happens as :class:`WorkerEvent` objects, in order, ending with exactly one ``exited`` event that
carries the :class:`RunOutcome`. A second backend is one new module implementing :class:`Executor`.
"""

from __future__ import annotations

import pickle
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = [
    "Executor",
    "OffloadedTask",
    "RunHandle",
    "RunOutcome",
    "TargetKind",
    "WorkerEvent",
    "WorkerEventKind",
    "pickle_message",
]

TargetKind = Literal["script", "reference", "pickled"]
WorkerEventKind = Literal["started", "message", "progress", "output", "exited"]


@dataclass(frozen=True)
class OffloadedTask:
    """Everything a worker process needs to run one run of one job.

    ``target`` is a script path (``script``: run as ``__main__``), a ``"package.module:function"``
    string (``reference``: imported and called with the data), or cloudpickle bytes of a callable
    (``pickled``: shipped by value). ``data_json`` is the job's data as JSON text (``"null"`` for none).
    ``run_info`` is what ``worker.run`` shows inside the job: name, run_id, attempt, scheduled_for.
    """

    run_id: str
    name: str
    target_kind: TargetKind
    target: str | bytes
    data_json: str = "null"
    run_info: dict[str, Any] = field(default_factory=dict)
    cwd: str | None = None
    sys_path: tuple[str, ...] = ()


@dataclass(frozen=True)
class RunOutcome:
    """How a run ended. ``status`` is ``finished`` or ``failed``; ``error`` is the reason (with the
    traceback text for exceptions); ``result`` is the function's return value (None for scripts).

    ``lost`` is True when the job had started and its worker then vanished in a way the executor
    did not cause, so how far the job got is unknown: killed by a signal the executor did not send
    (SIGKILL from outside, the OOM killer), or its fork server or connection gone. The run is then
    ``failed`` and ``error`` contains ``lost:`` followed by the reason. A kill the executor did
    itself (``kill()``, a cancel's grace running out, shutdown), a crash the process caused itself
    (SIGSEGV, SIGABRT, ...) and a run that never started are not lost.
    """

    status: Literal["finished", "failed"]
    result: Any = None
    error: str | None = None
    exit_code: int | None = None
    cancelled: bool = False
    lost: bool = False


@dataclass(frozen=True)
class WorkerEvent:
    """One thing a worker did. ``started``: the job's code is about to run (``payload`` is the worker
    process's pid, ``location`` where it runs: ``"local"``, or a Dask worker's address). ``message``: the
    job posted ``payload`` (``"done"`` included). ``progress``: ``payload`` is ``(fraction, text)``.
    ``output``: ``payload`` is ``(stream, text)`` with stream ``stdout`` or ``stderr``.
    ``exited``: the last event of a run, ``outcome`` says how it ended."""

    kind: WorkerEventKind
    run_id: str
    payload: Any = None
    outcome: RunOutcome | None = None
    location: str | None = None


class RunHandle(ABC):
    """The parent's grip on one running offloaded run."""

    @abstractmethod
    def post_message(self, message: Any) -> None:
        """Send ``message`` to the job (it arrives at ``worker.on_message`` callbacks)."""

    @abstractmethod
    def cancel(self, grace: float | None = None) -> None:
        """Send ``"cancel"``; when ``grace`` is a number, kill the process if it has not exited by then."""

    @abstractmethod
    def kill(self) -> None:
        """End the process now; the run fails with a reason saying it was killed."""

    @property
    @abstractmethod
    def done(self) -> bool:
        """True once the ``exited`` event has been delivered."""


class Executor(ABC):
    """Runs offloaded tasks, one fresh process per run."""

    @property
    def dashboard_link(self) -> str | None:
        """The address of a web page that shows this executor's work (a Dask dashboard), or None."""
        return None

    @abstractmethod
    def submit(self, task: OffloadedTask, listener: Callable[[WorkerEvent], None]) -> RunHandle:
        """Start ``task``; ``listener`` receives its events in order, from a background thread."""

    @abstractmethod
    def shutdown(self, timeout: float | None = None) -> None:
        """Cancel every running run, wait up to ``timeout`` seconds, kill what is left, free resources."""


def pickle_message(job_name: str, message: Any) -> bytes:
    """``message`` as the bytes a :meth:`RunHandle.post_message` sends to job ``job_name``; ``TypeError``
    saying what to send instead when it cannot be pickled (every executor raises the same one)."""
    try:
        return pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception as exc:
        raise TypeError(
            f'cannot send this {type(message).__name__} to job "{job_name}": it cannot be pickled '
            f"({type(exc).__name__}: {exc}). Send plain data (str, numbers, lists, dicts)."
        ) from exc
