"""The handle ``add_job`` and ``add_one_off_job`` return."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from jobmanager_nb.model import JobInfo, JobRun, JobStatus

if TYPE_CHECKING:
    from jobmanager_nb.manager import JobManager

__all__ = ["JobHandle"]


class JobHandle:
    """What ``add_job`` and ``add_one_off_job`` return: the job's name and shortcuts to its manager.
    Cheap to create; every property reads the manager's current state."""

    __slots__ = ("_manager", "name")

    def __init__(self, manager: JobManager, name: str) -> None:
        self._manager = manager
        self.name = name

    @property
    def info(self) -> JobInfo:
        """A snapshot of the job now (status, next run, last run, counters)."""
        return self._manager.job(self.name)

    @property
    def status(self) -> JobStatus:
        return self.info.status

    @property
    def next_run(self) -> datetime | None:
        return self.info.next_run

    def wait(self, timeout: float | None = None) -> JobRun:
        """Same as ``manager.wait(name, timeout)``."""
        return self._manager.wait(self.name, timeout)

    def remove(self) -> None:
        """Same as ``manager.remove_job(name)``."""
        self._manager.remove_job(self.name)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, JobHandle) and other._manager is self._manager and other.name == self.name

    def __hash__(self) -> int:
        return hash((id(self._manager), self.name))

    def __repr__(self) -> str:
        return f"<JobHandle {self.name!r}>"
