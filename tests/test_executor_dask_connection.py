"""DaskExecutor when the kernel's Client loses its scheduler: a ``dask scheduler`` and a ``dask worker``
started here as processes (stopped by pid, always), the scheduler killed or frozen mid-run. Every run in
flight ends (lost once its job was told to start) with an error naming the scheduler's address and what
to do, submits fail at once while the connection is gone, and the job does not go on running. No mocks;
waits on events with deadlines, never blind sleeps."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from executor_helpers import WAIT, Recorder, count_files, reference, stop_process_tree, wait_gone
from polling import wait_until

from jobmanager_nb.executors import OffloadedTask
from jobmanager_nb.executors.dask import DaskExecutor

pytestmark = pytest.mark.timeout(120)


TESTS = Path(__file__).resolve().parent
DASK = shutil.which("dask", path=str(Path(sys.executable).parent)) or shutil.which("dask")


class Cli:
    """A ``dask scheduler`` and a one-thread ``dask worker`` of one test's own, started by pid (the test
    kills, freezes or restarts the scheduler); :meth:`stop_all` stops every process started here."""

    def __init__(self, home: Path) -> None:
        assert DASK is not None, "the dask command is missing: distributed installs it"
        self.home = home
        self.scheduler_file = home / "scheduler.json"
        self.env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(TESTS), *filter(None, [os.environ.get("PYTHONPATH")])]),
            "DASK_TEMPORARY_DIRECTORY": str(home),
        }
        self.started: list[subprocess.Popen[bytes]] = []
        self.address = ""
        self.scheduler = self.start_scheduler(port=0)
        self.worker = self.start_worker()

    def _popen(self, command: list[str]) -> subprocess.Popen[bytes]:
        process = subprocess.Popen(
            command, cwd=self.home, env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        self.started.append(process)
        return process

    def start_scheduler(self, port: int) -> subprocess.Popen[bytes]:
        """A scheduler on ``port`` (0: any), waited for until it wrote its address."""
        self.scheduler_file.unlink(missing_ok=True)
        command = [DASK or "dask", "scheduler", "--scheduler-file", str(self.scheduler_file), "--host", "127.0.0.1"]
        scheduler = self._popen([*command, "--port", str(port), "--no-dashboard"])

        def address() -> str | None:
            assert scheduler.poll() is None, "dask scheduler exited"
            try:
                return str(json.loads(self.scheduler_file.read_text())["address"])
            except (FileNotFoundError, ValueError, KeyError):
                return None  # not written yet, or half written

        self.address = wait_until(address, timeout=60)
        return scheduler

    def start_worker(self) -> subprocess.Popen[bytes]:
        command = [DASK or "dask", "worker", "--scheduler-file", str(self.scheduler_file), "--nthreads", "1"]
        return self._popen([*command, "--no-dashboard", "--host", "127.0.0.1"])

    def stop_all(self) -> None:
        for process in reversed(self.started):
            stop_process_tree(process, at_once=True)




@pytest.fixture
def cli(tmp_path: Path) -> Iterator[Cli]:
    processes = Cli(tmp_path)
    try:
        yield processes
    finally:
        processes.stop_all()


def marking(directory: Path) -> OffloadedTask:
    """A run of jobs.dask_jobs:mark_start: one file in ``directory`` per start, its pid, a 60 s sleep."""
    task = reference("x", data={"dir": str(directory), "sleep": 60}, name="X")
    return OffloadedTask(task.run_id, "X", "reference", "jobs.dask_jobs:mark_start", task.data_json)


def start_marking(executor: DaskExecutor, directory: Path) -> tuple[Recorder, int]:
    directory.mkdir()
    executor.client.wait_for_workers(1, timeout=60)
    events = Recorder()
    executor.submit(marking(directory), events)
    _, pid = events.wait_message(lambda m: isinstance(m, tuple), timeout=60)
    return events, pid


def test_a_run_ends_lost_when_the_scheduler_is_killed_and_submits_then_fail_clearly(cli: Cli, tmp_path: Path) -> None:
    executor = DaskExecutor(cli.address)
    try:
        events, job_pid = start_marking(executor, tmp_path / "marks")
        cli.scheduler.kill()
        outcome = events.outcome(timeout=WAIT)
        assert (outcome.status, outcome.lost, outcome.cancelled) == ("failed", True, False)
        error = outcome.error or ""
        assert error.startswith(
            f'Worker for job "X" was lost: the connection to the Dask scheduler at {cli.address} was lost '
            "while the job ran on the Dask worker tcp://127.0.0.1:"
        ), error
        assert "check that the scheduler is running and reachable from this kernel" in error
        assert events.kinds().count("exited") == 1

        after = Recorder()
        executor.submit(reference("noop", name="N"), after)
        failed = after.outcome(timeout=5)
        assert after.kinds() == ["exited"] and not failed.lost
        assert (failed.error or "").startswith(
            f'job "N" was not submitted: the connection to the Dask scheduler at {cli.address} was lost; check'
        ), failed.error
        assert wait_gone([job_pid], timeout=WAIT) == []  # its Dask worker lost the scheduler too
        assert count_files(tmp_path / "marks") == 1
    finally:
        began = time.monotonic()
        executor.shutdown(timeout=2)
        assert time.monotonic() - began < 15


def test_a_run_ends_lost_when_the_scheduler_stops_answering_and_its_job_is_then_killed(
    cli: Cli, tmp_path: Path
) -> None:
    """A frozen scheduler (SIGSTOP: the connection stays open, nothing answers) is noticed after
    ``distributed.comm.timeouts.connect``; once it answers again the job it was running is killed on
    its worker (nobody hears it any more) and new runs work."""
    import dask

    with dask.config.set({"distributed.comm.timeouts.connect": "2s"}):
        executor = DaskExecutor(cli.address)
    try:
        events, job_pid = start_marking(executor, tmp_path / "marks")
        cli.scheduler.send_signal(signal.SIGSTOP)
        frozen = time.monotonic()
        links: list[str | None] = []  # (the dashboard's table asks for it from its own thread)
        asker = threading.Thread(target=lambda: links.append(executor.dashboard_link), daemon=True)
        asker.start()
        asker.join(WAIT)
        assert links == [None], "asking a frozen scheduler for its dashboard never returned"
        outcome = events.outcome(timeout=WAIT)
        assert time.monotonic() - frozen < 10
        assert (outcome.status, outcome.lost) == ("failed", True)
        error = outcome.error or ""
        assert error.startswith(
            f'Worker for job "X" was lost: the connection to the Dask scheduler at {cli.address} was lost '
            "(it has not answered for "
        ), error
        assert "while the job ran on the Dask worker" in error

        after = Recorder()
        executor.submit(reference("noop", name="N"), after)
        assert "was not submitted: the connection to the Dask scheduler" in (after.outcome(timeout=5).error or "")

        cli.scheduler.send_signal(signal.SIGCONT)
        assert wait_gone([job_pid], timeout=WAIT) == []

        def works_again() -> bool:
            again = Recorder()
            executor.submit(reference("add", data={"a": 1, "b": 2}), again)
            return again.outcome(timeout=WAIT).result == 3

        wait_until(works_again, timeout=WAIT, interval=0.5)
        assert count_files(tmp_path / "marks") == 1
    finally:
        cli.scheduler.send_signal(signal.SIGCONT)
        executor.shutdown(timeout=2)


def test_after_the_client_reconnects_runs_work_again(cli: Cli, tmp_path: Path) -> None:
    """The scheduler comes back at the same address: Dask's Client reconnects by itself, but its new
    connection has no topic subscriptions; the executor subscribes its own again before the next
    submit goes out, so a run submitted the moment the Client is back gets its events."""
    executor = DaskExecutor(cli.address)
    try:
        events, _ = start_marking(executor, tmp_path / "marks")
        address = cli.address
        cli.scheduler.kill()
        assert events.outcome(timeout=WAIT).lost
        # (a dask worker whose scheduler is gone closes by itself, after a while)
        stop_process_tree(cli.worker, at_once=True)
        cli.scheduler_file.unlink()
        cli.worker = cli.start_worker()  # it waits for the scheduler's file, then joins at once
        cli.scheduler = cli.start_scheduler(port=int(address.rsplit(":", 1)[1]))
        assert cli.address == address
        wait_until(lambda: executor.client.status == "running", WAIT, interval=0.001)
        again = Recorder()
        executor.submit(reference("add", data={"a": 2, "b": 3}), again)
        outcome = again.outcome(timeout=WAIT)
        assert (outcome.status, outcome.result) == ("finished", 5), outcome.error
        assert again.kinds() == ["started", "exited"]
    finally:
        executor.shutdown(timeout=2)
