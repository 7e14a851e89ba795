"""Backends that run offloaded jobs: one interface (:mod:`.base`), one module per backend.

:class:`ProcessExecutor` (:mod:`.local`) runs each run in a fresh local process; it is the default.
``DaskExecutor`` (:mod:`.dask`, with its worker side in :mod:`.dask_worker`) runs each run in a fresh
process on a Dask worker; it is not imported here (only those two modules import ``distributed``):
``from jobmanager_nb.executors.dask import DaskExecutor`` (``pip install 'jobmanager_nb[dask]'``).
"""

from __future__ import annotations

from jobmanager_nb.executors.base import (
    Executor,
    OffloadedTask,
    RunHandle,
    RunOutcome,
    TargetKind,
    WorkerEvent,
    WorkerEventKind,
)
from jobmanager_nb.executors.local import ProcessExecutor

__all__ = [
    "Executor",
    "OffloadedTask",
    "ProcessExecutor",
    "RunHandle",
    "RunOutcome",
    "TargetKind",
    "WorkerEvent",
    "WorkerEventKind",
]
