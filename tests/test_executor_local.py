"""ProcessExecutor with real worker processes: Ghost's job fixtures, results, failures, output, cancel,
kill, shutdown, concurrency, and what happens when the parent dies. No mocks."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import types
from collections.abc import Iterator

import cloudpickle
import psutil
import pytest
from executor_helpers import JOBS, WAIT, Recorder, is_gone, reference, script, wait_gone
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


# --- Ghost's job fixtures -----------------------------------------------------------------------


def test_simple_script_posts_done_and_finishes(executor: ProcessExecutor) -> None:
    handle, events = start(executor, script("simple.py"))
    outcome = events.outcome()
    assert outcome.status == "finished" and outcome.error is None
    assert events.kinds() == ["started", "message", "exited"]
    assert events.messages() == ["done"]
    assert handle.done


def test_simple_script_worker_exits_by_itself_with_code_0(executor: ProcessExecutor) -> None:
    """The run settles at "done"; the process must then end on its own (a worker still there after
    the linger would be killed, which shows as a kill request and a negative code)."""
    handle, events = start(executor, script("simple.py"))
    assert events.outcome().status == "finished"
    process = handle.process  # type: ignore[attr-defined]
    wait_until(lambda: process.exited, WAIT)
    assert (process.returncode, process.kill_requested) == (0, False)
    assert wait_gone([process.pid], timeout=5) == []


def test_message_script_answers_a_message_from_the_parent(executor: ProcessExecutor) -> None:
    handle, events = start(executor, script("message.py"))
    events.wait_message(lambda m: m == "ready")
    handle.post_message("hello")
    assert events.outcome().status == "finished"
    assert events.messages() == ["ready", "Worker received: hello", "done"]


def test_graceful_script_stops_on_cancel_and_counts_as_cancelled(executor: ProcessExecutor) -> None:
    handle, events = start(executor, script("graceful.py"))
    events.wait_message(lambda m: m == "working")
    handle.cancel(grace=10)
    outcome = events.outcome()
    assert (outcome.status, outcome.error, outcome.cancelled) == ("failed", "cancelled", True)
    assert events.messages() == ["working", "cancelled"]
    assert "cleaning up after cancel" in events.output("stdout")


def test_timed_job_reports_done_after_its_sleep(executor: ProcessExecutor) -> None:
    _, events = start(executor, script("timed-job.py", data={"ms": 50}))
    assert events.outcome().status == "finished"
    assert events.messages() == ["done"]


def test_throwing_script_fails_once_with_the_traceback(fresh: ProcessExecutor) -> None:
    _, events = start(fresh, script("throws.py"))
    outcome = events.outcome()
    fresh.shutdown(timeout=5)  # every event has been delivered once shutdown returns
    assert outcome.status == "failed" and not outcome.cancelled
    assert outcome.error is not None
    assert outcome.error.startswith("Traceback (most recent call last):")
    assert 'throws.py", line 5, in fail' in outcome.error
    assert outcome.error.endswith("RuntimeError: job failed on purpose")
    assert "_child.py" not in outcome.error and "runpy" not in outcome.error
    assert events.kinds().count("exited") == 1


# --- targets, data and results ---------------------------------------------------------------


def test_function_by_reference_gets_the_data_and_returns_the_result(executor: ProcessExecutor) -> None:
    _, events = start(executor, reference("add", data={"a": 2, "b": 40}))
    outcome = events.outcome()
    assert (outcome.status, outcome.result, outcome.exit_code) == ("finished", 42, 0)


def test_function_without_parameters_is_called_without_data(executor: ProcessExecutor) -> None:
    _, events = start(executor, reference("no_parameters"))
    assert events.outcome().result == "called without data"


def test_function_with_a_parameter_gets_none_when_there_is_no_data(executor: ProcessExecutor) -> None:
    _, events = start(executor, reference("optional_parameter"))
    assert events.outcome().result == ("got", None)


def test_cell_function_is_shipped_by_value(executor: ProcessExecutor) -> None:
    cell = types.ModuleType("notebook_cell_17")  # like a notebook cell: not importable anywhere
    exec(
        textwrap.dedent(
            """
            FACTOR = 6

            class Box:
                def __init__(self, value):
                    self.value = value

            def cell_job(data):
                return Box(data["x"] * FACTOR)
            """
        ),
        cell.__dict__,
    )
    task = OffloadedTask("run-cell", "cell_job", "pickled", cloudpickle.dumps(cell.cell_job), data_json='{"x": 7}')
    _, events = start(executor, task)
    outcome = events.outcome()
    assert outcome.status == "finished", outcome.error
    assert type(outcome.result).__name__ == "Box" and outcome.result.value == 42


def test_async_function_is_run_to_completion(executor: ProcessExecutor) -> None:
    _, events = start(executor, reference("async_add", data={"a": 1, "b": 2}))
    assert events.outcome().result == 3
    _, events = start(executor, reference("returns_awaitable"))
    assert events.outcome().result == 42


def test_worker_sees_its_data_run_info_env_and_cwd(
    executor: ProcessExecutor, tmp_path: os.PathLike[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JOBMANAGER_NB_TEST_VAR", "set after the spares started")
    task = reference("about_this_run", name="about", cwd=str(tmp_path), run_info={"attempt": 3})
    _, events = start(executor, task)
    result = events.outcome().result
    assert result["in_worker"] is True and result["data"] is None
    assert result["run"] == {"name": "about", "run_id": task.run_id, "attempt": 3, "scheduled_for": None}
    assert result["name_attr"] == "about"
    assert result["env"] == "set after the spares started"
    assert result["cwd"] == str(tmp_path)
    assert result["pid"] != os.getpid()


def test_every_run_gets_a_fresh_process(executor: ProcessExecutor) -> None:
    pids = set()
    for _ in range(4):
        _, events = start(executor, reference("about_this_run"))
        pids.add(events.outcome().result["pid"])
    assert len(pids) == 4


def test_unpicklable_result_becomes_its_repr_with_a_note(executor: ProcessExecutor) -> None:
    _, events = start(executor, reference("unpicklable_result"))
    outcome = events.outcome()
    assert outcome.status == "finished"
    assert isinstance(outcome.result, str) and "lock" in outcome.result
    assert "cannot be pickled" in events.output("stderr")


def test_non_daemon_threads_finish_before_the_run_ends(executor: ProcessExecutor) -> None:
    _, events = start(executor, reference("non_daemon_thread"))
    assert events.outcome().result == "returned before the thread"
    assert "thread finished" in events.output("stdout")


# --- failures ----------------------------------------------------------------------------------


def test_exception_fails_with_the_full_traceback(executor: ProcessExecutor) -> None:
    _, events = start(executor, reference("raises"))
    outcome = events.outcome()
    assert outcome.status == "failed" and outcome.exit_code == 1
    assert outcome.error is not None
    assert outcome.error.startswith("Traceback (most recent call last):")
    assert "fixture_jobs.py" in outcome.error and "in raises" in outcome.error
    assert outcome.error.endswith("ValueError: bad value 42")


def test_sys_exit_without_code_succeeds(executor: ProcessExecutor) -> None:
    _, events = start(executor, reference("exits_zero"))
    assert events.outcome().status == "finished"


def test_sys_exit_3_fails_with_the_code(executor: ProcessExecutor) -> None:
    _, events = start(executor, reference("exits_three", name="X"))
    outcome = events.outcome()
    assert (outcome.status, outcome.error, outcome.exit_code) == ("failed", 'Worker for job "X" exited with code 3', 3)


def test_sys_exit_with_text_prints_it_and_fails_with_code_1(executor: ProcessExecutor) -> None:
    _, events = start(executor, reference("exits_with_text", name="X"))
    assert events.outcome().error == 'Worker for job "X" exited with code 1'
    assert "stopping with a message" in events.output("stderr")


def test_os_exit_3_is_a_crash_with_code_3(executor: ProcessExecutor) -> None:
    _, events = start(executor, reference("hard_exit_three", name="X"))
    outcome = events.outcome()
    assert (outcome.error, outcome.exit_code) == ('Worker for job "X" exited with code 3', 3)


def test_segfault_is_reported_with_the_signal(executor: ProcessExecutor) -> None:
    _, events = start(executor, reference("segfault", name="X"))
    outcome = events.outcome()
    assert outcome.error == 'Worker for job "X" was killed by signal SIGSEGV (11)'
    assert outcome.exit_code == -11
    assert not outcome.lost  # a crash of its own, not someone else's doing
    assert "Segmentation fault" in events.output("stderr")  # faulthandler's report reaches the output


def test_sigkill_from_outside_is_lost_and_mentions_memory(executor: ProcessExecutor) -> None:
    handle, events = start(executor, reference("pid_then_sleep", name="X"))
    _, pid = events.wait_message(lambda m: isinstance(m, tuple))
    assert handle.pid == pid  # type: ignore[attr-defined]
    os.kill(pid, signal.SIGKILL)
    outcome = events.outcome()
    assert (outcome.status, outcome.lost, outcome.cancelled, outcome.exit_code) == ("failed", True, False, -9)
    assert outcome.error == (
        'Worker for job "X" was lost: the worker process was killed by signal 9 (SIGKILL) while the job ran; '
        "if nobody killed it, the system may have run out of memory"
    )


def test_sigterm_from_outside_is_lost(executor: ProcessExecutor) -> None:
    handle, events = start(executor, reference("pid_then_sleep", name="X"))
    events.wait_message(lambda m: isinstance(m, tuple))
    os.kill(handle.pid, signal.SIGTERM)  # type: ignore[attr-defined]
    outcome = events.outcome()
    assert outcome.lost and outcome.error == (
        'Worker for job "X" was lost: the worker process was killed by signal 15 (SIGTERM) while the job ran'
    )


def test_pickle_that_cannot_load_in_the_worker_fails_once(fresh: ProcessExecutor) -> None:
    task = OffloadedTask("run-bad-pickle", "bad", "pickled", b"this is not a pickle")
    _, events = start(fresh, task)
    outcome = events.outcome()
    fresh.shutdown(timeout=5)
    assert outcome.status == "failed" and "UnpicklingError" in (outcome.error or "")
    assert events.kinds().count("exited") == 1


def test_failure_before_the_job_starts_is_reported_once(fresh: ProcessExecutor, tmp_path: os.PathLike[str]) -> None:
    task = reference("noop", cwd=os.path.join(tmp_path, "missing"))
    _, events = start(fresh, task)
    outcome = events.outcome()
    fresh.shutdown(timeout=5)
    assert outcome.status == "failed" and "cannot enter the working directory" in (outcome.error or "")
    assert events.kinds() == ["exited"]


def test_missing_reference_fails_with_a_clear_error(executor: ProcessExecutor) -> None:
    task = OffloadedTask("run-missing", "missing", "reference", "jobs.fixture_jobs:does_not_exist")
    _, events = start(executor, task)
    assert 'module "jobs.fixture_jobs" has no attribute "does_not_exist"' in (events.outcome().error or "")


# --- messages ----------------------------------------------------------------------------------


def test_unpicklable_messages_raise_type_error_in_the_sender(executor: ProcessExecutor) -> None:
    handle, events = start(executor, reference("unpicklable_message"))
    with pytest.raises(TypeError, match="cannot be pickled"):
        handle.post_message(threading.Lock())
    assert events.outcome().result.startswith("TypeError: worker.post_message() needs a picklable message")


def test_messages_posted_before_the_worker_has_the_task_arrive_after_it(fresh: ProcessExecutor) -> None:
    handle, events = start(fresh, script("message.py"))
    handle.post_message("early")  # most likely sent before the worker even read its task
    assert events.outcome().status == "finished"
    assert "Worker received: early" in events.messages()


# --- output and progress -----------------------------------------------------------------------


def test_all_output_is_captured_and_none_reaches_the_parent(capfd: pytest.CaptureFixture[str]) -> None:
    ex = ProcessExecutor(spares=0)
    try:
        _, events = start(ex, script("prints.py"))
        assert events.outcome().status == "finished"
    finally:
        ex.shutdown(timeout=5)
    assert events.output("stdout") == "line from print\nline from os.write\nline from echo\nlast line\n"
    assert events.output("stderr") == "line from stderr\n"
    leaked = capfd.readouterr()
    assert "line from" not in leaked.out + leaked.err


def test_output_progress_and_messages_arrive_in_order(executor: ProcessExecutor) -> None:
    _, events = start(executor, reference("mixed_output"))
    assert events.outcome().result == "ok"
    # Output written before a report arrives before it; between two reports, stdout and stderr are
    # two pipes, so only the order within each stream is kept.
    segments: list[dict[str, str]] = [{"stdout": "", "stderr": ""}]
    reports = []
    for event in events.events:
        if event.kind == "output":
            segments[-1][event.payload[0]] += event.payload[1]
        elif event.kind in ("progress", "message"):
            reports.append((event.kind, event.payload))
            segments.append({"stdout": "", "stderr": ""})
    assert reports == [("progress", (0.25, "a quarter")), ("message", "between"), ("progress", (1.0, None))]
    assert segments == [
        {"stdout": "one\n", "stderr": ""},
        {"stdout": "three\n", "stderr": "two\n"},
        {"stdout": "four\n", "stderr": ""},
        {"stdout": "five", "stderr": ""},
    ]


def test_output_is_bounded_per_run(executor: ProcessExecutor) -> None:
    _, events = start(executor, reference("flood"))
    assert events.outcome().result == "flooded"
    text = events.output()
    assert text.count("[output truncated") == 1
    assert len(text) <= (1 << 20) + 200


def test_progress_is_validated_in_the_worker(executor: ProcessExecutor) -> None:
    _, events = start(executor, reference("bad_progress"))
    assert events.outcome().result == ["ValueError", "ValueError", "ValueError", "TypeError", "TypeError", "TypeError"]
    assert not [e for e in events.events if e.kind == "progress"]


# --- done, cancel, kill --------------------------------------------------------------------------


def test_done_settles_at_once_and_a_lingering_worker_is_terminated(executor: ProcessExecutor) -> None:
    _, events = start(executor, reference("done_then_linger"))
    _, pid = events.wait_message(lambda m: isinstance(m, tuple))
    outcome = events.outcome(timeout=5)  # not the job's 60 s
    assert outcome.status == "finished"
    assert wait_gone([pid], timeout=5) == []


def test_cancel_obeyed(executor: ProcessExecutor) -> None:
    handle, events = start(executor, reference("obey_cancel"))
    events.wait_message(lambda m: m == "waiting")
    handle.cancel(grace=10)
    assert events.outcome().result == "stopped"


def test_cancel_ignored_is_killed_after_the_grace(executor: ProcessExecutor) -> None:
    handle, events = start(executor, reference("ignore_cancel", name="X"))
    events.wait_message(lambda m: m == "waiting")
    handle.cancel(grace=0.3)
    outcome = events.outcome(timeout=5)
    assert outcome.status == "failed" and outcome.cancelled and not outcome.lost
    assert outcome.error == 'Worker for job "X" did not stop within 0.3 s after cancel; killed'


def test_kill_ends_the_run_now(executor: ProcessExecutor) -> None:
    handle, events = start(executor, reference("pid_then_sleep", name="X"))
    _, pid = events.wait_message(lambda m: isinstance(m, tuple))
    handle.kill()
    outcome = events.outcome(timeout=5)
    assert outcome.error == 'Worker for job "X" was killed' and not outcome.cancelled
    assert not outcome.lost and outcome.exit_code == -9
    assert wait_gone([pid], timeout=5) == []


def test_kill_also_ends_what_the_job_started(executor: ProcessExecutor) -> None:
    handle, events = start(executor, reference("sleep_with_grandchild"))
    _, pid, grandchild = events.wait_message(lambda m: isinstance(m, tuple))
    handle.kill()
    events.outcome(timeout=5)
    assert wait_gone([pid, grandchild], timeout=5) == []


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


def test_listener_errors_are_logged_and_do_not_stop_the_executor(
    executor: ProcessExecutor, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(event: object) -> None:
        raise RuntimeError("listener bug")

    handle = executor.submit(reference("noop"), broken)
    assert handle.wait(WAIT)  # every event of that run was delivered (and each raised)
    _, events = start(executor, reference("add", data={"a": 1, "b": 1}))
    assert events.outcome().result == 2
    errors = [r for r in caplog.records if r.name == "jobmanager_nb" and r.exc_info]
    assert {r.args[1] for r in errors if isinstance(r.args, tuple)} >= {"started", "exited"}
    assert all("listener bug" in str(r.exc_info[1]) for r in errors if r.exc_info)


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
