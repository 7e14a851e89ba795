"""Dask worker plugins for DaskExecutor's tests (``jobs.dask_plugins``): importable on the workers of a
LocalCluster, which inherit the tests' ``sys.path``."""

from __future__ import annotations

import os
import signal
from typing import Any

from distributed.diagnostics.plugin import WorkerPlugin


class DieWhenExecuting(WorkerPlugin):
    """SIGKILLs its Dask worker the moment a task whose key starts with ``prefix`` starts executing
    there: before the task's code (a supervising task) runs, so before it could report ``ready``."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix

    def transition(self, key: Any, start: str, finish: str, **kwargs: Any) -> None:
        if finish == "executing" and str(key).startswith(self.prefix):
            os.kill(os.getpid(), signal.SIGKILL)
