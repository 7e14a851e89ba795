"""jobmanager_nb: a notebook-native job manager (a Python port of Ghost's job manager).

Public names are imported lazily, so that ``import jobmanager_nb`` stays cheap (every offloaded
worker process imports it) and never imports IPython or ipywidgets. In IPython,
``%load_ext jobmanager_nb`` adds the ``%job``, ``%%job``, ``%%oneoff`` and ``%jobs`` magics.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from jobmanager_nb.clock import Clock, FakeClock, SystemClock
    from jobmanager_nb.errors import (
        CorruptStoreError,
        DuplicateJobError,
        InvalidScheduleError,
        JobConfigError,
        JobFailedError,
        JobManagerError,
        JobNotFoundError,
        JobReferenceError,
        OneOffAlreadyExecutedError,
        StoreError,
        StoreWriteError,
    )
    from jobmanager_nb.events import Event
    from jobmanager_nb.handle import JobHandle
    from jobmanager_nb.manager import JobManager
    from jobmanager_nb.model import JobInfo, JobRun, RunContext, RunMark, current_run
    from jobmanager_nb.schedules import Schedule, describe_schedule, next_fire_times, parse_schedule
    from jobmanager_nb.store import MemoryStore, OneOffRecord, TinyDBStore

_LAZY = {
    "Clock": "jobmanager_nb.clock",
    "FakeClock": "jobmanager_nb.clock",
    "SystemClock": "jobmanager_nb.clock",
    "CorruptStoreError": "jobmanager_nb.errors",
    "DuplicateJobError": "jobmanager_nb.errors",
    "InvalidScheduleError": "jobmanager_nb.errors",
    "JobConfigError": "jobmanager_nb.errors",
    "JobFailedError": "jobmanager_nb.errors",
    "JobManagerError": "jobmanager_nb.errors",
    "JobNotFoundError": "jobmanager_nb.errors",
    "JobReferenceError": "jobmanager_nb.errors",
    "OneOffAlreadyExecutedError": "jobmanager_nb.errors",
    "StoreError": "jobmanager_nb.errors",
    "StoreWriteError": "jobmanager_nb.errors",
    "Event": "jobmanager_nb.events",
    "JobManager": "jobmanager_nb.manager",
    "JobHandle": "jobmanager_nb.handle",
    "JobInfo": "jobmanager_nb.model",
    "JobRun": "jobmanager_nb.model",
    "RunContext": "jobmanager_nb.model",
    "RunMark": "jobmanager_nb.model",
    "current_run": "jobmanager_nb.model",
    "Schedule": "jobmanager_nb.schedules",
    "describe_schedule": "jobmanager_nb.schedules",
    "next_fire_times": "jobmanager_nb.schedules",
    "parse_schedule": "jobmanager_nb.schedules",
    "MemoryStore": "jobmanager_nb.store",
    "OneOffRecord": "jobmanager_nb.store",
    "TinyDBStore": "jobmanager_nb.store",
    "get_manager": "jobmanager_nb.session",
}

__all__ = [
    "Clock",
    "CorruptStoreError",
    "DuplicateJobError",
    "Event",
    "FakeClock",
    "InvalidScheduleError",
    "JobConfigError",
    "JobFailedError",
    "JobHandle",
    "JobInfo",
    "JobManager",
    "JobManagerError",
    "JobNotFoundError",
    "JobReferenceError",
    "JobRun",
    "MemoryStore",
    "OneOffAlreadyExecutedError",
    "OneOffRecord",
    "RunContext",
    "RunMark",
    "Schedule",
    "StoreError",
    "StoreWriteError",
    "SystemClock",
    "TinyDBStore",
    "current_run",
    "describe_schedule",
    "get_manager",
    "load_ipython_extension",
    "next_fire_times",
    "parse_schedule",
    "unload_ipython_extension",
    "worker",
]


def __getattr__(name: str) -> Any:
    if name == "worker":
        return importlib.import_module("jobmanager_nb.worker")
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'jobmanager_nb' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext jobmanager_nb``: one manager per kernel, the magics, and the dashboard."""
    from jobmanager_nb.notebook.extension import load_ipython_extension as load

    load(ipython)


def unload_ipython_extension(ipython: Any) -> None:
    """``%unload_ext jobmanager_nb``: the exact inverse of loading."""
    from jobmanager_nb.notebook.extension import unload_ipython_extension as unload

    unload(ipython)
