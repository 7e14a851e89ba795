"""Every error jobmanager_nb raises, under one :class:`JobManagerError`.

Each message names the job (or file, or schedule) it is about and says how to fix it.
Lookup failures are also :class:`LookupError`, bad values also :class:`ValueError`, so callers
can catch them the way they would catch the built-in equivalents.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from jobmanager_nb.model import JobRun

__all__ = [
    "CorruptStoreError",
    "DuplicateJobError",
    "InvalidRecordError",
    "InvalidScheduleError",
    "JobConfigError",
    "JobFailedError",
    "JobManagerError",
    "JobNotFoundError",
    "JobReferenceError",
    "OneOffAlreadyExecutedError",
    "StoreError",
    "StoreWriteError",
]


class JobManagerError(Exception):
    """Base class of every error raised by jobmanager_nb."""


class InvalidScheduleError(JobManagerError, ValueError):
    """An ``at`` value that is not a schedule; the message starts with ``Invalid schedule format``."""


class DuplicateJobError(JobManagerError, ValueError):
    """A job with this name is still registered; remove it first or pass ``replace=True``."""


class JobNotFoundError(JobManagerError, LookupError):
    """No job (or one-off record) with this name exists."""

    def __str__(self) -> str:  # LookupError would otherwise repr() the message
        return str(self.args[0]) if self.args else ""


class OneOffAlreadyExecutedError(JobManagerError, ValueError):
    """A one-off job that is queued, started or finished cannot be added again (only a failed one can)."""


class JobReferenceError(JobManagerError, ValueError):
    """A job that cannot be run as given: a missing file, an unimportable module, an unnamed lambda,
    or data that cannot cross a process boundary."""


class JobConfigError(JobManagerError, ValueError):
    """An option that does not fit the job (a timeout on a synchronous inline job, a missing name, ...)."""


class StoreError(JobManagerError):
    """The one-off store could not be read or written."""


class CorruptStoreError(StoreError, ValueError):
    """The store file is not a jobmanager_nb store (corrupt or foreign); it was left untouched."""


class StoreWriteError(StoreError):
    """The one-off store could not be written (or created): read-only or permission-denied folder, full
    disk, I/O error. The message names the file, the OS error and the fix.

    ``path`` is the store file (``None`` for a store that has no file); ``os_error`` is the
    :class:`OSError` behind it (``None`` if there was none). A change that raised this was not made: the
    file is as it was, so the same call can be retried once the fault is fixed.
    """

    def __init__(self, message: str, path: Path | None = None, os_error: OSError | None = None) -> None:
        super().__init__(message)
        self.path = path
        self.os_error = os_error

    def __reduce__(self) -> tuple[Any, ...]:  # keep path and os_error when pickled (e.g. across processes)
        return (type(self), (str(self), self.path, self.os_error))


class InvalidRecordError(StoreError, ValueError):
    """The store refused a change to a one-off record (a status change its rules forbid, such as finishing
    a job that never started, or a value that cannot be saved as JSON); nothing was written."""


class JobFailedError(JobManagerError):
    """A run failed. ``.run`` is the :class:`~jobmanager_nb.model.JobRun` describing it; for an inline
    job the original exception is ``__cause__``."""

    def __init__(self, message: str, run: JobRun | Any = None) -> None:
        super().__init__(message)
        self.run = run
