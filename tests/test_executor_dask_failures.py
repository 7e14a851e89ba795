"""DaskExecutor when Dask itself gives a run up: a task whose every Dask worker died before the job
could start (``distributed.scheduler.allowed-failures`` exhausted) ends the run failed, saying so,
with none of the job's code run. A real LocalCluster whose worker SIGKILLs itself as the task starts
executing there (jobs.dask_plugins). No mocks."""

from __future__ import annotations

from pathlib import Path

import pytest
from executor_helpers import WAIT, Recorder, count_files, dask_cluster, reference

from jobmanager_nb.executors import OffloadedTask
from jobmanager_nb.executors.dask import DaskExecutor

pytestmark = pytest.mark.timeout(120)

import distributed  # noqa: E402  (the test extra installs it: these tests never skip)


def test_a_task_whose_workers_all_died_before_the_start_fails_saying_so(tmp_path: Path) -> None:
    import dask

    with dask.config.set({"distributed.scheduler.allowed-failures": 0}), dask_cluster(n_workers=1) as cluster:
        executor = DaskExecutor(cluster)
        try:
            from jobs.dask_plugins import DieWhenExecuting

            executor.client.register_plugin(DieWhenExecuting("doomed-"), name="die-when-executing")
            task = reference("x", data={"dir": str(tmp_path), "sleep": 0})
            events = Recorder()
            executor.submit(
                OffloadedTask(task.run_id, "doomed", "reference", "jobs.dask_jobs:mark_start", task.data_json), events
            )
            outcome = events.outcome(timeout=WAIT)
            assert events.kinds() == ["exited"]
            assert (outcome.status, outcome.lost, outcome.cancelled) == ("failed", False, False)
            error = outcome.error or ""
            assert error.startswith('Worker for job "doomed": its Dask task failed before the job started'), error
            assert "KilledWorker" in error
            assert count_files(tmp_path) == 0
        finally:
            executor.shutdown(timeout=5)


def test_a_worker_frozen_at_connect_fails_the_version_check_in_bounded_time() -> None:
    """The version check asks every worker; a frozen one (SIGSTOP) must not hang the constructor: it fails
    within distributed.comm.timeouts.connect, saying what to do."""
    import os
    import signal
    import time

    import dask

    with dask_cluster(n_workers=1) as cluster, distributed.Client(cluster, set_as_default=False) as client:
        (pid,) = client.run(os.getpid).values()
        os.kill(pid, signal.SIGSTOP)
        try:
            began = time.monotonic()
            with (
                dask.config.set({"distributed.comm.timeouts.connect": "2s"}),
                pytest.raises(RuntimeError, match="did not all answer the version check within 2 s"),
            ):
                DaskExecutor(client)
            assert time.monotonic() - began < 30
        finally:
            os.kill(pid, signal.SIGCONT)
