"""The executor contract, run against every backend: ProcessExecutor and DaskExecutor (on a local
two-worker Dask cluster) must behave the same at the protocol level: Ghost's job fixtures, targets,
data and results, failures, messages, output and progress, done, cancel and kill. Real worker
processes, no mocks. Backend-specific behaviour lives in test_executor_local.py and
test_executor_dask.py."""

from __future__ import annotations

import os
import signal
import textwrap
import threading
import types
from collections.abc import Iterator
from typing import Any

import cloudpickle
import pytest
from executor_helpers import WAIT, Recorder, dask_cluster, reference, script, wait_gone

from jobmanager_nb.executors import Executor, OffloadedTask, ProcessExecutor, RunHandle

pytestmark = pytest.mark.timeout(120)

BACKENDS = ["process", "dask"]


@pytest.fixture(scope="module")
def cluster() -> Iterator[Any]:
    """A two-worker LocalCluster, started only when a Dask test runs."""
    with dask_cluster() as local_cluster:
        yield local_cluster


def make_executor(backend: str, request: pytest.FixtureRequest, spares: int = 2) -> Executor:
    if backend == "process":
        return ProcessExecutor(spares=spares)
    from jobmanager_nb.executors.dask import DaskExecutor

    return DaskExecutor(request.getfixturevalue("cluster"))


@pytest.fixture(scope="module", params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="module")
def executor(backend: str, request: pytest.FixtureRequest) -> Iterator[Executor]:
    ex = make_executor(backend, request)
    yield ex
    ex.shutdown(timeout=5)


@pytest.fixture
def fresh(backend: str, request: pytest.FixtureRequest) -> Iterator[Executor]:
    """An executor of the test's own, shut down (and so fully drained) by the test or at its end."""
    ex = make_executor(backend, request, spares=1)
    yield ex
    ex.shutdown(timeout=5)


def start(executor: Executor, task: OffloadedTask) -> tuple[RunHandle, Recorder]:
    recorder = Recorder()
    return executor.submit(task, recorder), recorder


# --- Ghost's job fixtures -----------------------------------------------------------------------


def test_simple_script_posts_done_and_finishes(executor: Executor) -> None:
    handle, events = start(executor, script("simple.py"))
    outcome = events.outcome()
    assert outcome.status == "finished" and outcome.error is None
    assert events.kinds() == ["started", "message", "exited"]
    assert events.messages() == ["done"]
    assert handle.done


def test_message_script_answers_a_message_from_the_parent(executor: Executor) -> None:
    handle, events = start(executor, script("message.py"))
    events.wait_message(lambda m: m == "ready")
    handle.post_message("hello")
    assert events.outcome().status == "finished"
    assert events.messages() == ["ready", "Worker received: hello", "done"]


def test_graceful_script_stops_on_cancel_and_counts_as_cancelled(executor: Executor) -> None:
    handle, events = start(executor, script("graceful.py"))
    events.wait_message(lambda m: m == "working")
    handle.cancel(grace=10)
    outcome = events.outcome()
    assert (outcome.status, outcome.error, outcome.cancelled) == ("failed", "cancelled", True)
    assert events.messages() == ["working", "cancelled"]
    assert "cleaning up after cancel" in events.output("stdout")


def test_timed_job_reports_done_after_its_sleep(executor: Executor) -> None:
    _, events = start(executor, script("timed-job.py", data={"ms": 50}))
    assert events.outcome().status == "finished"
    assert events.messages() == ["done"]


def test_throwing_script_fails_once_with_the_traceback(fresh: Executor) -> None:
    _, events = start(fresh, script("throws.py"))
    outcome = events.outcome()
    fresh.shutdown(timeout=5)  # every event has been delivered once shutdown returns
    assert outcome.status == "failed" and not outcome.cancelled
    assert outcome.error is not None
    assert outcome.error.startswith("Traceback (most recent call last):")
    assert 'throws.py", line 5, in fail' in outcome.error
    assert outcome.error.endswith("RuntimeError: job failed on purpose")
    assert "runpy" not in outcome.error and not machinery_frames(outcome.error), outcome.error
    assert events.kinds().count("exited") == 1


def test_started_says_where_the_run_runs(executor: Executor, backend: str) -> None:
    _, events = start(executor, reference("noop"))
    started = events.wait_for(lambda e: e.kind == "started")
    assert isinstance(started.payload, int) and started.payload != os.getpid()
    if backend == "process":
        assert started.location == "local"
    else:
        assert isinstance(started.location, str) and started.location.startswith("tcp://")
    assert events.outcome().status == "finished"


# --- targets, data and results ---------------------------------------------------------------


def test_function_by_reference_gets_the_data_and_returns_the_result(executor: Executor) -> None:
    _, events = start(executor, reference("add", data={"a": 2, "b": 40}))
    outcome = events.outcome()
    assert (outcome.status, outcome.result, outcome.exit_code) == ("finished", 42, 0)


def test_function_without_parameters_is_called_without_data(executor: Executor) -> None:
    _, events = start(executor, reference("no_parameters"))
    assert events.outcome().result == "called without data"


def test_function_with_a_parameter_gets_none_when_there_is_no_data(executor: Executor) -> None:
    _, events = start(executor, reference("optional_parameter"))
    assert events.outcome().result == ("got", None)


def test_cell_function_is_shipped_by_value(executor: Executor) -> None:
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


def test_closure_over_notebook_state_travels_by_value(executor: Executor) -> None:
    offset = 1000
    seen: dict[str, int] = {"calls": 0}

    def closure(data: dict[str, int]) -> tuple[int, int]:
        seen["calls"] += 1  # the job's own copy
        return data["a"] + offset, seen["calls"]

    task = OffloadedTask("run-closure", "closure", "pickled", cloudpickle.dumps(closure), data_json='{"a": 1}')
    _, events = start(executor, task)
    assert events.outcome().result == (1001, 1)
    assert seen["calls"] == 0


def test_async_function_is_run_to_completion(executor: Executor) -> None:
    _, events = start(executor, reference("async_add", data={"a": 1, "b": 2}))
    assert events.outcome().result == 3
    _, events = start(executor, reference("returns_awaitable"))
    assert events.outcome().result == 42


def test_worker_sees_its_data_run_info_and_cwd(executor: Executor, tmp_path: os.PathLike[str]) -> None:
    task = reference("about_this_run", name="about", cwd=str(tmp_path), run_info={"attempt": 3})
    _, events = start(executor, task)
    result = events.outcome().result
    assert result["in_worker"] is True and result["data"] is None
    assert result["run"] == {"name": "about", "run_id": task.run_id, "attempt": 3, "scheduled_for": None}
    assert result["name_attr"] == "about"
    assert result["cwd"] == str(tmp_path)  # (the Dask workers here share this machine's file system)
    assert result["pid"] != os.getpid()


def test_every_run_gets_a_fresh_process(executor: Executor) -> None:
    pids = set()
    for _ in range(4):
        _, events = start(executor, reference("about_this_run"))
        pids.add(events.outcome().result["pid"])
    assert len(pids) == 4


def test_unpicklable_result_becomes_its_repr_with_a_note(executor: Executor) -> None:
    _, events = start(executor, reference("unpicklable_result"))
    outcome = events.outcome()
    assert outcome.status == "finished"
    assert isinstance(outcome.result, str) and "lock" in outcome.result
    assert "cannot be pickled" in events.output("stderr")


def test_non_daemon_threads_finish_before_the_run_ends(executor: Executor) -> None:
    _, events = start(executor, reference("non_daemon_thread"))
    assert events.outcome().result == "returned before the thread"
    assert "thread finished" in events.output("stdout")


def machinery_frames(traceback_text: str) -> list[str]:
    """The traceback lines that name a frame of the process machinery or an executor (none belong in a job's
    traceback: it shows the job's own frames)."""
    return [
        line
        for line in traceback_text.splitlines()
        if line.lstrip().startswith('File "')
        and any(part in line for part in ("/processes/", "/executors/", "distributed/", "jobmanager_nb/worker.py"))
    ]


# --- failures ----------------------------------------------------------------------------------


def test_exception_fails_with_the_full_traceback(executor: Executor) -> None:
    _, events = start(executor, reference("raises"))
    outcome = events.outcome()
    assert outcome.status == "failed" and outcome.exit_code == 1
    assert outcome.error is not None
    assert outcome.error.startswith("Traceback (most recent call last):")
    assert "fixture_jobs.py" in outcome.error and "in raises" in outcome.error
    assert outcome.error.endswith("ValueError: bad value 42")
    assert not machinery_frames(outcome.error), outcome.error  # the job's own frames only


def test_sys_exit_without_code_succeeds(executor: Executor) -> None:
    _, events = start(executor, reference("exits_zero"))
    assert events.outcome().status == "finished"


def test_sys_exit_3_fails_with_the_code(executor: Executor) -> None:
    _, events = start(executor, reference("exits_three", name="X"))
    outcome = events.outcome()
    assert (outcome.status, outcome.error, outcome.exit_code) == ("failed", 'Worker for job "X" exited with code 3', 3)


def test_sys_exit_with_text_prints_it_and_fails_with_code_1(executor: Executor) -> None:
    _, events = start(executor, reference("exits_with_text", name="X"))
    assert events.outcome().error == 'Worker for job "X" exited with code 1'
    assert "stopping with a message" in events.output("stderr")


def test_os_exit_3_is_a_crash_with_code_3(executor: Executor) -> None:
    _, events = start(executor, reference("hard_exit_three", name="X"))
    outcome = events.outcome()
    assert (outcome.error, outcome.exit_code) == ('Worker for job "X" exited with code 3', 3)


def test_segfault_is_reported_with_the_signal(executor: Executor) -> None:
    _, events = start(executor, reference("segfault", name="X"))
    outcome = events.outcome()
    assert outcome.error == 'Worker for job "X" was killed by signal SIGSEGV (11)'
    assert outcome.exit_code == -11
    assert not outcome.lost  # a crash of its own, not someone else's doing
    assert "Segmentation fault" in events.output("stderr")  # faulthandler's report reaches the output


def test_sigkill_from_outside_is_lost_and_mentions_memory(executor: Executor) -> None:
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


def test_sigterm_from_outside_is_lost(executor: Executor) -> None:
    handle, events = start(executor, reference("pid_then_sleep", name="X"))
    events.wait_message(lambda m: isinstance(m, tuple))
    os.kill(handle.pid, signal.SIGTERM)  # type: ignore[attr-defined]
    outcome = events.outcome()
    assert outcome.lost and outcome.error == (
        'Worker for job "X" was lost: the worker process was killed by signal 15 (SIGTERM) while the job ran'
    )


def test_pickle_that_cannot_load_in_the_worker_fails_once(fresh: Executor) -> None:
    task = OffloadedTask("run-bad-pickle", "bad", "pickled", b"this is not a pickle")
    _, events = start(fresh, task)
    outcome = events.outcome()
    fresh.shutdown(timeout=5)
    assert outcome.status == "failed" and "UnpicklingError" in (outcome.error or "")
    assert events.kinds() == ["exited"]


def test_missing_reference_fails_with_a_clear_error(executor: Executor) -> None:
    task = OffloadedTask("run-missing", "missing", "reference", "jobs.fixture_jobs:does_not_exist")
    _, events = start(executor, task)
    assert 'module "jobs.fixture_jobs" has no attribute "does_not_exist"' in (events.outcome().error or "")
    assert events.kinds() == ["exited"]


# --- messages ----------------------------------------------------------------------------------


def test_unpicklable_messages_raise_type_error_in_the_sender(executor: Executor) -> None:
    handle, events = start(executor, reference("unpicklable_message"))
    with pytest.raises(TypeError, match="cannot be pickled"):
        handle.post_message(threading.Lock())
    assert events.outcome().result.startswith("TypeError: worker.post_message() needs a picklable message")


def test_messages_posted_before_the_worker_has_the_task_arrive_after_it(fresh: Executor) -> None:
    handle, events = start(fresh, script("message.py"))
    handle.post_message("early")  # most likely sent before the worker even read its task
    assert events.outcome().status == "finished"
    assert "Worker received: early" in events.messages()


def test_messages_go_both_ways_in_order(executor: Executor) -> None:
    handle, events = start(executor, reference("answer_pings"))
    events.wait_message(lambda m: isinstance(m, tuple))
    for _ in range(5):
        handle.post_message("ping")
    events.wait_for(lambda e: events.messages().count("pong") == 5)
    handle.cancel(grace=10)
    assert events.outcome().cancelled
    assert events.messages()[1:] == ["pong"] * 5 + ["cancelled"]


# --- output and progress -----------------------------------------------------------------------


def test_all_output_is_captured_and_none_reaches_the_parent(
    backend: str, request: pytest.FixtureRequest, capfd: pytest.CaptureFixture[str]
) -> None:
    ex = make_executor(backend, request, spares=0)
    try:
        _, events = start(ex, script("prints.py"))
        assert events.outcome().status == "finished"
    finally:
        ex.shutdown(timeout=5)
    assert events.output("stdout") == "line from print\nline from os.write\nline from echo\nlast line\n"
    assert events.output("stderr") == "line from stderr\n"
    leaked = capfd.readouterr()
    assert "line from" not in leaked.out + leaked.err


def test_output_progress_and_messages_arrive_in_order(executor: Executor) -> None:
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


def test_output_arrives_while_the_job_runs(executor: Executor) -> None:
    task = OffloadedTask("run-live", "live", "reference", "jobs.dask_jobs:print_then_wait_for_cancel")
    handle, events = start(executor, task)
    events.wait_for(lambda e: e.kind == "output" and "printed while running" in e.payload[1])
    assert not handle.done
    handle.cancel(grace=10)
    assert events.outcome().result == "stopped"


def test_output_is_bounded_per_run(executor: Executor) -> None:
    _, events = start(executor, reference("flood"))
    assert events.outcome().result == "flooded"
    text = events.output()
    assert text.count("[output truncated") == 1
    assert len(text) <= (1 << 20) + 200


def test_progress_is_validated_in_the_worker(executor: Executor) -> None:
    _, events = start(executor, reference("bad_progress"))
    assert events.outcome().result == ["ValueError", "ValueError", "ValueError", "TypeError", "TypeError", "TypeError"]
    assert not [e for e in events.events if e.kind == "progress"]


# --- done, cancel, kill --------------------------------------------------------------------------


def test_done_settles_at_once_and_a_lingering_worker_is_terminated(executor: Executor) -> None:
    _, events = start(executor, reference("done_then_linger"))
    _, pid = events.wait_message(lambda m: isinstance(m, tuple))
    outcome = events.outcome(timeout=5)  # not the job's 60 s
    assert outcome.status == "finished"
    assert wait_gone([pid], timeout=5) == []


def test_cancel_obeyed(executor: Executor) -> None:
    handle, events = start(executor, reference("obey_cancel"))
    events.wait_message(lambda m: m == "waiting")
    handle.cancel(grace=10)
    assert events.outcome().result == "stopped"


def test_cancel_ignored_is_killed_after_the_grace(executor: Executor) -> None:
    handle, events = start(executor, reference("ignore_cancel", name="X"))
    events.wait_message(lambda m: m == "waiting")
    handle.cancel(grace=0.3)
    outcome = events.outcome(timeout=5)
    assert outcome.status == "failed" and outcome.cancelled and not outcome.lost
    assert outcome.error == 'Worker for job "X" did not stop within 0.3 s after cancel; killed'


def test_kill_ends_the_run_now(executor: Executor) -> None:
    handle, events = start(executor, reference("pid_then_sleep", name="X"))
    _, pid = events.wait_message(lambda m: isinstance(m, tuple))
    handle.kill()
    outcome = events.outcome(timeout=5)
    assert outcome.error == 'Worker for job "X" was killed' and not outcome.cancelled
    assert not outcome.lost and outcome.exit_code == -9
    assert wait_gone([pid], timeout=5) == []


def test_kill_also_ends_what_the_job_started(executor: Executor) -> None:
    handle, events = start(executor, reference("sleep_with_grandchild"))
    _, pid, grandchild = events.wait_message(lambda m: isinstance(m, tuple))
    handle.kill()
    events.outcome(timeout=5)
    assert wait_gone([pid, grandchild], timeout=5) == []


def test_cancel_and_kill_after_the_end_do_nothing(executor: Executor) -> None:
    handle, events = start(executor, reference("noop"))
    assert events.outcome().status == "finished"
    handle.cancel(grace=1)
    handle.kill()
    handle.post_message("late")
    assert events.kinds() == ["started", "exited"]


# --- listeners -----------------------------------------------------------------------------------


def test_listener_errors_are_logged_and_do_not_stop_the_executor(
    executor: Executor, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(event: object) -> None:
        raise RuntimeError("listener bug")

    handle = executor.submit(reference("noop"), broken)
    assert handle.wait(WAIT)  # type: ignore[attr-defined]  # every event of that run was delivered (and each raised)
    _, events = start(executor, reference("add", data={"a": 1, "b": 1}))
    assert events.outcome().result == 2
    errors = [r for r in caplog.records if r.name == "jobmanager_nb" and r.exc_info]
    assert {r.args[1] for r in errors if isinstance(r.args, tuple)} >= {"started", "exited"}
    assert all("listener bug" in str(r.exc_info[1]) for r in errors if r.exc_info)
