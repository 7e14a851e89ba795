"""ProcessExecutor-specific behaviour with real worker processes: the worker process itself (its exit, its
environment, its process group and SIGINT), queueing at max_workers, shutdown, the spawn start method,
spares, the fork server, and what happens when the parent dies. No mocks. The protocol-level tests
(Ghost's job fixtures, results, failures, messages, output, cancel, kill) run against every backend in
test_executor_conformance.py."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from executor_helpers import JOBS, WAIT, Recorder, count_files, is_gone, reference, script, wait_gone
from polling import wait_until

from jobmanager_nb.executors import Executor, OffloadedTask, ProcessExecutor, RunHandle

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="module")
def executor() -> Iterator[ProcessExecutor]:
    ex = ProcessExecutor(spares=2)
    yield ex
    ex.shutdown(timeout=5)


@pytest.fixture
def fresh() -> Iterator[ProcessExecutor]:
    """An executor of the test's own, shut down (and so fully drained) by the test or at its end."""
    ex = ProcessExecutor(spares=1)
    yield ex
    ex.shutdown(timeout=5)


def start(executor: Executor, task: OffloadedTask) -> tuple[RunHandle, Recorder]:
    recorder = Recorder()
    return executor.submit(task, recorder), recorder


# --- the worker process ---------------------------------------------------------------------------


def test_simple_script_worker_exits_by_itself_with_code_0(executor: ProcessExecutor) -> None:
    """The run settles at "done"; the process must then end on its own (a worker still there after
    the linger would be killed, which shows as a kill request and a negative code)."""
    handle, events = start(executor, script("simple.py"))
    assert events.outcome().status == "finished"
    process = handle.process  # type: ignore[attr-defined]
    wait_until(lambda: process.exited, WAIT)
    assert (process.returncode, process.kill_requested) == (0, False)
    assert wait_gone([process.pid], timeout=5) == []


# --- the environment ---------------------------------------------------------------------------


def test_worker_sees_the_kernels_environment_as_it_is_at_submit(
    executor: ProcessExecutor, tmp_path: os.PathLike[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """(The protocol part of this test, data, run info and cwd, is in test_executor_conformance.py; a
    Dask worker keeps its own environment instead, see test_executor_dask.py.)"""
    monkeypatch.setenv("JOBMANAGER_NB_TEST_VAR", "set after the spares started")
    _, events = start(executor, reference("about_this_run", name="about", cwd=str(tmp_path)))
    result = events.outcome().result
    assert result["env"] == "set after the spares started"
    assert result["cwd"] == str(tmp_path)


# --- failures ----------------------------------------------------------------------------------


def test_failure_before_the_job_starts_is_reported_once(fresh: ProcessExecutor, tmp_path: os.PathLike[str]) -> None:
    task = reference("noop", cwd=os.path.join(tmp_path, "missing"))
    _, events = start(fresh, task)
    outcome = events.outcome()
    fresh.shutdown(timeout=5)
    assert outcome.status == "failed" and "cannot enter the working directory" in (outcome.error or "")
    assert events.kinds() == ["exited"]


# --- cancel and kill of queued runs, signals ----------------------------------------------------


def test_cancel_and_kill_of_a_queued_run_end_it_without_starting() -> None:
    ex = ProcessExecutor(max_workers=1, spares=0)
    try:
        blocker, blocker_events = start(ex, reference("obey_cancel"))
        blocker_events.wait_message(lambda m: m == "waiting")
        queued, queued_events = start(ex, reference("noop"))
        killed, killed_events = start(ex, reference("noop", name="X"))
        queued.cancel()
        killed.kill()
        outcome = queued_events.outcome()
        assert (outcome.status, outcome.error, outcome.cancelled) == ("failed", "cancelled before it started", True)
        assert queued_events.kinds() == ["exited"]
        assert killed_events.outcome().error == 'Worker for job "X" was killed before it started'
        blocker.cancel()
        assert blocker_events.outcome().result == "stopped"
    finally:
        ex.shutdown(timeout=5)


def test_workers_ignore_sigint(executor: ProcessExecutor) -> None:
    handle, events = start(executor, reference("answer_pings"))
    _, pid, pgid = events.wait_message(lambda m: isinstance(m, tuple))
    assert pgid == pid != os.getpgrp()  # its own process group: the kernel's Interrupt never reaches it
    os.kill(pid, signal.SIGINT)
    os.killpg(pgid, signal.SIGINT)
    handle.post_message("ping")
    events.wait_message(lambda m: m == "pong")  # still alive and listening
    handle.cancel(grace=10)
    assert events.outcome().cancelled


# --- concurrency and shutdown --------------------------------------------------------------------


def test_fifty_jobs_with_four_workers_all_finish_with_their_results() -> None:
    ex = ProcessExecutor(max_workers=4, spares=1)
    running = 0
    most = 0
    lock = threading.Lock()

    def count(event: object) -> None:
        nonlocal running, most
        with lock:
            if getattr(event, "kind", None) == "started":
                running += 1
                most = max(most, running)
            elif getattr(event, "kind", None) == "exited":
                running -= 1

    recorders = []
    try:
        for i in range(50):
            recorder = Recorder()
            ex.submit(reference("add", data={"a": i, "b": 1000}), lambda e, r=recorder: (count(e), r(e)))
            recorders.append(recorder)
        results = [r.outcome(timeout=WAIT * 2).result for r in recorders]
    finally:
        ex.shutdown(timeout=5)
    assert results == [i + 1000 for i in range(50)]
    assert 1 <= most <= 4


def test_shutdown_cancels_running_jobs_kills_stragglers_and_leaves_no_process() -> None:
    me = psutil.Process()
    others = {p.pid for p in me.children(recursive=True)}  # e.g. the module-wide executor's processes
    ex = ProcessExecutor(spares=2)
    _, polite_events = start(ex, reference("obey_cancel"))
    _, stubborn_events = start(ex, reference("ignore_cancel", name="X"))
    polite_events.wait_message(lambda m: m == "waiting")
    stubborn_events.wait_message(lambda m: m == "waiting")
    ours = [p.pid for p in me.children(recursive=True) if p.pid not in others]
    assert len(ours) >= 3  # the fork server and at least the two jobs
    ex.shutdown(timeout=0.5)
    assert polite_events.outcome(timeout=0).result == "stopped"
    assert (
        stubborn_events.outcome(timeout=0).error == 'Worker for job "X" did not stop within 0.5 s after cancel; killed'
    )
    assert wait_gone(ours, timeout=5) == []
    ex.shutdown(timeout=0.5)  # idempotent
    with pytest.raises(RuntimeError, match="shut down"):
        ex.submit(reference("noop"), Recorder())


def test_spawn_start_method_runs_jobs_too() -> None:
    ex = ProcessExecutor(start_method="spawn", spares=0)
    try:
        _, events = start(ex, reference("add", data={"a": 1, "b": 2}))
        assert events.outcome().result == 3
        _, events = start(ex, script("simple.py"))
        assert events.outcome().status == "finished"
    finally:
        ex.shutdown(timeout=5)


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="start_method"):
        ProcessExecutor(start_method="fork")
    with pytest.raises(ValueError, match="max_workers"):
        ProcessExecutor(max_workers=0)


def test_parent_killed_leaves_no_orphans() -> None:
    parent = subprocess.Popen(
        [sys.executable, str(JOBS / "orphan_parent.py"), str(JOBS.parent)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert parent.stdout is not None
        line = parent.stdout.readline()
        assert line, parent.stderr.read() if parent.stderr else ""
        jobs = json.loads(line)["jobs"]  # two workers (one sleeping, one busy) and a sleeping grandchild
        tree = psutil.Process(parent.pid)
        # besides the jobs: the fork server and the two spares (which may still be starting)
        helpers = [pid for pid in wait_for_count(tree, len(jobs) + 3) if pid not in jobs]
        assert len(helpers) >= 3
        servers = [p.pid for p in tree.children() if "jobmanager_nb.processes.zygote" in " ".join(p.cmdline())]
        assert len(servers) == 1 and servers[0] in helpers  # the fork server must not outlive its parent either
        parent.send_signal(signal.SIGKILL)
        parent.wait(timeout=WAIT)
        assert wait_gone(jobs + helpers, timeout=10) == []
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()


def wait_for_count(tree: psutil.Process, count: int, timeout: float = WAIT) -> list[int]:
    """The pids below ``tree`` once there are at least ``count`` of them (polling the process table)."""
    deadline = time.monotonic() + timeout
    while True:
        pids = [p.pid for p in tree.children(recursive=True) if not is_gone(p.pid)]
        if len(pids) >= count or time.monotonic() > deadline:
            return pids
        time.sleep(0.02)


def _fork_server_of(ex_before: set[int]) -> psutil.Process:
    """The fork server started after ``ex_before`` was taken (waits for it to appear)."""
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        for child in psutil.Process().children():
            if child.pid not in ex_before and "jobmanager_nb.processes.zygote" in " ".join(child.cmdline()):
                return child
        time.sleep(0.02)  # polling the OS process table: there is nothing to wait on
    raise AssertionError("no fork server appeared")


def test_dead_spares_are_replaced_and_the_next_job_still_runs() -> None:
    before = {p.pid for p in psutil.Process().children()}
    ex = ProcessExecutor(spares=2)
    try:
        server = _fork_server_of(before)
        spares = wait_for_count(server, 2)
        for pid in spares:
            os.kill(pid, signal.SIGKILL)
        _, events = start(ex, reference("add", data={"a": 1, "b": 1}))
        assert events.outcome().result == 2
    finally:
        ex.shutdown(timeout=5)


def test_a_dead_fork_server_fails_its_runs_once_and_is_restarted() -> None:
    before = {p.pid for p in psutil.Process().children()}
    ex = ProcessExecutor(spares=1)
    try:
        server = _fork_server_of(before)
        _, events = start(ex, reference("pid_then_sleep", name="X"))
        events.wait_message(lambda m: isinstance(m, tuple))
        server.kill()
        outcome = events.outcome()
        assert outcome.status == "failed" and outcome.lost and outcome.error is not None
        assert outcome.error.startswith('Worker for job "X" was lost: the worker fork server died')
        _, events = start(ex, reference("add", data={"a": 2, "b": 3}))
        assert events.outcome().result == 5
    finally:
        ex.shutdown(timeout=5)


# --- held runs (what DaskExecutor's start gate uses) -------------------------------------------------


def test_a_held_run_is_prepared_but_starts_only_when_released(executor: ProcessExecutor, tmp_path: Path) -> None:
    marks = tmp_path / "marks"
    marks.mkdir()
    data = json.dumps({"dir": str(marks), "sleep": 0})
    task = OffloadedTask("run-held", "held", "reference", "jobs.dask_jobs:mark_start", data)
    events = Recorder()
    handle = executor.submit(task, events, hold=True)
    wait_until(lambda: handle.ready is not None, WAIT)  # its worker waits for go
    assert events.kinds() == [] and count_files(marks) == 0
    handle.release()
    assert events.outcome().result == "slept"
    assert events.kinds()[0] == "started" and count_files(marks) == 1


def test_a_held_run_cancelled_or_failing_before_its_release_never_starts(
    executor: ProcessExecutor, tmp_path: Path
) -> None:
    data = json.dumps({"dir": str(tmp_path), "sleep": 0})
    free = Recorder()
    executor.submit(OffloadedTask("run-h1", "h1", "reference", "jobs.dask_jobs:mark_start", data), free)
    events = Recorder()
    task = OffloadedTask("run-h2", "h2", "reference", "jobs.dask_jobs:mark_start", data)
    held = executor.submit(task, events, hold=True)
    wait_until(lambda: held.ready is not None, WAIT)  # its worker waits for go
    held.cancel()
    held.release()  # too late: it was cancelled
    assert events.outcome().error == "cancelled before it started" and events.kinds() == ["exited"]
    events = Recorder()
    executor.submit(OffloadedTask("run-h3", "h3", "reference", "jobs.fixture_jobs:does_not_exist"), events, hold=True)
    assert "has no attribute" in (events.outcome().error or "") and events.kinds() == ["exited"]
    assert free.outcome().result == "slept"
    assert count_files(tmp_path) == 1  # only the run that was not held started
