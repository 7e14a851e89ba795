"""The real Dask command line: a scheduler and a worker started with ``dask scheduler`` / ``dask worker``
(as on a machine of one's own), and a JobManager whose ``"dask"`` executor is connected by address. A script,
a ``module:function`` reference and a closure all run there, end with their results, and say where they ran.

The processes are started by this module and stopped by pid (always, also when a test fails); readiness is
waited for (the scheduler file, then the worker joining), never slept for.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import distributed
import pytest
from executor_helpers import stop_process_tree
from polling import wait_until

from jobmanager_nb import JobManager
from jobmanager_nb.executors.dask import DaskExecutor

TESTS = Path(__file__).resolve().parent
DASK = shutil.which("dask", path=str(Path(sys.executable).parent)) or shutil.which("dask")
READY_TIMEOUT = 60.0


@dataclass(frozen=True)
class CliCluster:
    scheduler: str  # tcp://127.0.0.1:PORT
    worker: str  # the worker's own address (where the jobs run)




def _scheduler_address(scheduler_file: Path, scheduler: subprocess.Popen[bytes]) -> str | None:
    if scheduler.poll() is not None:
        raise AssertionError(f"dask scheduler exited with {scheduler.returncode}")
    try:
        return json.loads(scheduler_file.read_text())["address"]
    except (FileNotFoundError, ValueError, KeyError):
        return None  # not written yet, or half written


@pytest.fixture(scope="module")
def cli_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CliCluster]:
    if DASK is None:
        pytest.fail("the dask command is missing: distributed installs it (pip install -e '.[test]')")
    home = tmp_path_factory.mktemp("dask-cli")
    scheduler_file = home / "scheduler.json"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(TESTS), *filter(None, [os.environ.get("PYTHONPATH")])]),
        "DASK_TEMPORARY_DIRECTORY": str(home),
    }
    logs = (home / "scheduler.log").open("wb"), (home / "worker.log").open("wb")
    started: list[subprocess.Popen[bytes]] = []
    try:
        command = [DASK, "scheduler", "--scheduler-file", str(scheduler_file), "--host", "127.0.0.1", "--port", "0"]
        scheduler = subprocess.Popen(
            [*command, "--no-dashboard"], cwd=home, env=env, stdout=logs[0], stderr=subprocess.STDOUT
        )
        started.append(scheduler)
        address = wait_until(lambda: _scheduler_address(scheduler_file, scheduler), timeout=READY_TIMEOUT)
        command = [DASK, "worker", "--scheduler-file", str(scheduler_file), "--nthreads", "1", "--no-dashboard"]
        worker = subprocess.Popen(
            [*command, "--host", "127.0.0.1", "--local-directory", str(home / "worker")],
            cwd=home,
            env=env,
            stdout=logs[1],
            stderr=subprocess.STDOUT,
        )
        started.append(worker)
        with distributed.Client(address, timeout=READY_TIMEOUT) as client:
            client.wait_for_workers(1, timeout=READY_TIMEOUT)
            (worker_address,) = client.scheduler_info()["workers"]
        yield CliCluster(address, worker_address)
    finally:
        for process in reversed(started):  # the worker first, so that it does not wait for a gone scheduler
            stop_process_tree(process)
        for log in logs:
            log.close()


@pytest.fixture
def dask_manager(cli_cluster: CliCluster) -> Iterator[JobManager]:
    executor = DaskExecutor(cli_cluster.scheduler)
    try:
        with JobManager(executors={"dask": executor}) as manager:
            yield manager
    finally:
        executor.shutdown(timeout=10)  # the manager never shuts down an executor it was given


def test_a_script_job_runs_on_the_cli_worker_with_its_output(cli_cluster: CliCluster, dask_manager: JobManager):
    dask_manager.add_job(str(TESTS / "jobs" / "prints.py"), name="script", executor="dask")
    run = dask_manager.wait("script", timeout=60)
    assert (run.status, run.location) == ("finished", cli_cluster.worker)
    assert "line from print" in run.output and "last line" in run.output


def test_a_reference_job_imports_its_module_on_the_worker_and_returns_its_result(
    cli_cluster: CliCluster, dask_manager: JobManager
):
    dask_manager.add_job("jobs.fixture_jobs:add", name="reference", data={"a": 2, "b": 40}, executor="dask")
    run = dask_manager.wait("reference", timeout=60)
    assert (run.status, run.result, run.location) == ("finished", 42, cli_cluster.worker)


def test_a_closure_is_shipped_to_the_worker_by_value_and_returns_its_result(
    cli_cluster: CliCluster, dask_manager: JobManager
):
    factor = 7

    def times_factor(data: int) -> tuple[int, int]:
        return data * factor, os.getpid()

    dask_manager.add_one_off_job(times_factor, name="closure", data=6, executor="dask")
    run = dask_manager.wait("closure", timeout=60)
    assert run.status == "finished" and run.location == cli_cluster.worker
    value, pid = run.result
    assert value == 42 and pid != os.getpid()
