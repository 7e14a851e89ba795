"""JobManager with offloaded jobs in real worker processes: Ghost's cases and the fixed behaviours."""

from __future__ import annotations

import importlib
import json
import os
import queue
import signal
import subprocess
import sys
import textwrap
import threading
import time
import traceback
from datetime import timedelta
from pathlib import Path

import cloudpickle
import psutil
import pytest
from polling import wait_until

from jobmanager_nb import FakeClock, JobFailedError, JobManager, JobReferenceError, OneOffAlreadyExecutedError
from jobmanager_nb.executors import Executor, RunHandle, RunOutcome, WorkerEvent
from jobmanager_nb.store import TinyDBStore

HERE = Path(__file__).resolve().parent
JOBS = HERE / "manager_jobs"
sys.path.insert(0, str(JOBS))
import mjobs  # noqa: E402

WAIT = 30.0


@pytest.fixture
def manager():
    m = JobManager(kill_grace=1.0)
    yield m
    m.close(timeout=10)


def test_job_without_at_runs_at_once_and_its_worker_exits_cleanly(manager):
    manager.add_job(str(JOBS / "simple.py"))
    run = manager.wait("simple", timeout=WAIT)
    assert run.status == "finished" and run.kind == "offloaded"


def test_function_by_reference_gets_data_and_returns_a_result(manager):
    manager.add_job(mjobs.add, data={"a": 2, "b": 3})
    run = manager.wait("add", timeout=WAIT)
    assert (run.name, run.kind, run.status, run.result) == ("add", "offloaded", "finished", 5)
    assert run.started_at is not None and run.finished_at is not None
    assert run.started_at <= run.finished_at


def test_script_sees_its_data_and_output_is_captured(manager, capfd):
    manager.add_job(str(JOBS / "uses_data.py"), data={"id": 7})
    run = manager.wait("uses_data", timeout=WAIT)
    assert run.output == "data is {'id': 7}\n"
    assert "data is" not in capfd.readouterr().out


def test_cell_defined_function_is_shipped_by_value(manager):
    namespace: dict = {"__name__": "__main__"}
    exec(
        textwrap.dedent(
            """
            FACTOR = 6
            def multiply(data):
                return FACTOR * data
            """
        ),
        namespace,
    )
    manager.add_job(namespace["multiply"], data=7)
    assert manager.wait("multiply", timeout=WAIT).result == 42


def test_lambda_with_a_name_is_shipped_by_value(manager):
    manager.add_job(lambda data: data * 2, name="double", data=21)
    assert manager.wait("double", timeout=WAIT).result == 42


def test_non_json_data_is_refused_at_add_time(manager):
    with pytest.raises(JobReferenceError, match="must be JSON"):
        manager.add_job(mjobs.add, data={"when": object()})
    assert manager.jobs == []


def test_missing_script_is_refused_with_the_path(manager):
    with pytest.raises(JobReferenceError, match="does not exist"):
        manager.add_job("jobs/no-such-job.py")


def test_unimportable_module_is_refused(manager):
    with pytest.raises(JobReferenceError, match="cannot import module"):
        manager.add_job("no_such_module_xyz:run")


def test_error_handler_hears_of_a_failing_offloaded_job_once_and_waiting_raises():
    errors = []
    m = JobManager(error_handler=lambda error, meta: errors.append((str(error), meta["name"])))
    try:
        m.add_job(mjobs.fail)
        with pytest.raises(JobFailedError, match="offloaded failure") as info:
            m.wait("fail", timeout=WAIT)
        assert "Traceback" in info.value.run.error
        assert len(errors) == 1 and errors[0][1] == "fail" and "offloaded failure" in errors[0][0]
    finally:
        m.close(timeout=10)


def test_failing_script_reports_the_exception(manager):
    manager.add_job(str(JOBS / "throws.py"))
    with pytest.raises(JobFailedError, match="script failure"):
        manager.wait("throws", timeout=WAIT)


def test_worker_messages_reach_the_handler_and_parent_messages_reach_the_worker():
    messages: queue.Queue = queue.Queue()
    m = JobManager(worker_message_handler=messages.put)
    try:
        m.add_job(mjobs.echo_messages)
        assert messages.get(timeout=WAIT) == {"name": "echo_messages", "message": "ready"}
        m.post_message("echo_messages", "ping")
        assert messages.get(timeout=WAIT) == {"name": "echo_messages", "message": ("echo", "ping")}
        m.post_message("echo_messages", "stop")
        assert m.wait("echo_messages", timeout=WAIT).result == "stopped"
    finally:
        m.close(timeout=10)


def test_done_posted_by_a_worker_reaches_the_message_handler():
    messages = []
    with JobManager(worker_message_handler=messages.append) as m:
        m.add_job(str(JOBS / "simple.py"))
        assert m.wait("simple", timeout=WAIT).status == "finished"
        assert messages == [{"name": "simple", "message": "done"}]


def test_crashing_worker_fails_the_run_with_the_exit_code(manager):
    manager.add_job(mjobs.crash)
    with pytest.raises(JobFailedError, match="exited with code 3"):
        manager.wait("crash", timeout=WAIT)


def test_timeout_cancels_then_kills_a_worker_that_ignores_cancel():
    ready = threading.Event()
    m = JobManager(kill_grace=0.2, worker_message_handler=lambda msg: ready.set())
    try:
        m.add_job(mjobs.ignore_cancel, timeout=0.5)
        with pytest.raises(JobFailedError, match=r"timed out after 0\.5 s"):
            m.wait("ignore_cancel", timeout=WAIT)
        assert ready.is_set()
    finally:
        m.close(timeout=10)


def test_cancel_stops_a_graceful_worker():
    ready = threading.Event()
    m = JobManager(worker_message_handler=lambda msg: msg["message"] == "ready" and ready.set())
    try:
        m.add_job(mjobs.graceful)
        assert ready.wait(WAIT)
        m.cancel("graceful")
        with pytest.raises(JobFailedError, match="cancel"):
            m.wait("graceful", timeout=WAIT)
    finally:
        m.close(timeout=10)


def test_remove_job_cancels_a_running_graceful_worker():
    ready = threading.Event()
    events = []
    m = JobManager(worker_message_handler=lambda msg: msg["message"] == "ready" and ready.set())
    try:
        m.subscribe(events.append)
        m.add_job(mjobs.graceful)
        assert ready.wait(WAIT)
        m.remove_job("graceful")
        failed = wait_until(lambda: [e for e in events if e.kind == "failed"], WAIT)
        assert failed[0].data["cancelled"] is True and failed[0].data["error"] == "cancelled"
        assert "removed" in [e.kind for e in events if e.name == "graceful"]
        (run,) = m.runs("graceful")
        assert run.status == "failed" and run.cancelled
        assert m.jobs == []
    finally:
        m.close(timeout=10)


def test_progress_and_output_arrive_as_events(manager):
    events = []
    manager.subscribe(events.append)
    manager.add_job(mjobs.chatty)
    run = manager.wait("chatty", timeout=WAIT)
    assert "to stdout" in run.output and "raw to stderr" in run.output
    kinds = [e.kind for e in events]
    assert "progress" in kinds and "output" in kinds
    progress = next(e for e in events if e.kind == "progress")
    assert progress.data == {"fraction": 0.5, "text": "half way"}


def test_worker_knows_its_run(manager):
    manager.add_job(mjobs.report)
    result = manager.wait("report", timeout=WAIT).result
    assert result["pid"] != os.getpid()
    assert "report" in str(result["run"])


def test_each_run_gets_a_fresh_process(manager):
    pids = set()
    for i in range(3):
        manager.add_job(mjobs.report, name=f"fresh{i}")
        pids.add(manager.wait(f"fresh{i}", timeout=WAIT).result["pid"])
    assert len(pids) == 3


def run_kinds(events, name):
    return [e.kind for e in events if e.name == name and e.kind in ("queued", "started", "finished", "failed")]


@pytest.mark.parametrize(
    ("verdict", "outcome"),
    [("done", "finished"), ("fail", "failed")],
)
def test_offloaded_one_off_goes_queued_started_then_finished_or_failed(tmp_path, verdict, outcome):
    """Ghost's offloaded one-off cases: a worker that posts done on request, and one that throws."""
    messages: queue.Queue = queue.Queue()
    events = []
    with JobManager(tmp_path / "jobs.json", worker_message_handler=messages.put) as m:
        m.subscribe(events.append)
        m.add_one_off_job(mjobs.wait_for_verdict, name="backup")
        assert m.store.get("backup").status in ("queued", "started")  # recorded before the worker runs
        assert messages.get(timeout=WAIT) == {"name": "backup", "message": "ready"}
        during = m.store.get("backup")
        m.post_message("backup", verdict)
        if verdict == "fail":
            with pytest.raises(JobFailedError, match="told to fail"):
                m.wait("backup", timeout=WAIT)
        else:
            m.wait("backup", timeout=WAIT)
        record = m.store.get("backup")
    assert run_kinds(events, "backup") == ["queued", "started", outcome]
    assert during.status == "started" and during.started_at is not None and during.finished_at is None
    assert record.status == outcome and record.attempts == 1
    assert record.started_at == during.started_at and record.started_at <= record.finished_at


def test_offloaded_one_off_success_and_failure(tmp_path):
    with JobManager(tmp_path / "jobs.json") as m:
        m.add_one_off_job(str(JOBS / "simple.py"), name="backup")
        m.wait("backup", timeout=WAIT)
        assert m.store.get("backup").status == "finished"
        with pytest.raises(OneOffAlreadyExecutedError, match=r'A "backup" one off job has already been executed\.'):
            m.add_one_off_job(str(JOBS / "simple.py"), name="backup")
        m.add_one_off_job(mjobs.fail, name="broken")
        with pytest.raises(JobFailedError):
            m.wait("broken", timeout=WAIT)
        assert m.store.get("broken").status == "failed"
        m.add_one_off_job(mjobs.fail, name="broken")  # a failed one-off can run again
        with pytest.raises(JobFailedError):
            m.wait("broken", timeout=WAIT)
        assert m.store.get("broken").attempts == 2


def test_offloaded_job_that_fails_is_retried_and_then_succeeds():
    events = []
    m = JobManager(retry_backoff=0.01)
    try:
        m.subscribe(events.append)
        m.add_job(mjobs.fail_first_attempt, retries=2)
        run = m.wait("fail_first_attempt", timeout=WAIT)
    finally:
        m.close(timeout=10)
    assert run.status == "finished" and run.attempt == 2 and run.result["attempt"] == 2
    (failed,) = [e.data for e in events if e.kind == "failed"]
    assert failed["retrying"] is True and "first attempt fails" in failed["error"]


def test_a_late_retried_offloaded_run_knows_its_scheduled_time_and_attempt():
    clock = FakeClock()
    events = []
    m = JobManager(clock=clock)
    try:
        m.subscribe(events.append)
        due = clock.now() + timedelta(seconds=30)
        m.add_job(mjobs.fail_first_attempt, at=due, retries=1)
        clock.set(due + timedelta(seconds=2))  # the run starts late
        (retry,) = wait_until(lambda: [e for e in events if e.kind == "failed"], WAIT)
        clock.advance(retry.data["retry_in"])
        run = m.wait("fail_first_attempt", timeout=WAIT)
    finally:
        m.close(timeout=10)
    assert run.result == {
        "name": "fail_first_attempt",
        "run_id": run.run_id,
        "attempt": 2,
        "scheduled_for": due.isoformat(),  # the period it covers, not when it started
    }


def test_scheduled_offloaded_job_starts_while_the_caller_is_busy():
    clock = FakeClock()
    started = threading.Event()
    m = JobManager(clock=clock, worker_message_handler=lambda msg: started.set())
    try:
        m.add_job(mjobs.echo_messages, at=clock.now() + timedelta(seconds=1))
        clock.advance(1)
        # the calling thread stays busy (a long synchronous cell) until the worker has said "ready"
        deadline = time.monotonic() + WAIT
        while not started.is_set():
            if time.monotonic() > deadline:
                raise AssertionError("the worker did not start while the caller was busy")
        m.post_message("echo_messages", "stop")
        m.wait("echo_messages", timeout=WAIT)
    finally:
        m.close(timeout=10)


def test_shutdown_cancels_running_workers_and_kills_stubborn_ones():
    ready = threading.Event()
    m = JobManager(kill_grace=0.2, worker_message_handler=lambda msg: ready.set())
    m.add_job(mjobs.ignore_cancel)
    assert ready.wait(WAIT)
    with pytest.raises(TimeoutError):
        m.close(timeout=0.3)
    assert m.runs("ignore_cancel")[-1].status == "failed"


KILLED_PARENT = """
import sys, time
sys.path.insert(0, {jobs!r})
from jobmanager_nb import JobManager
import mjobs
m = JobManager({store!r})
m.add_job(mjobs.sleep_forever)
m.add_one_off_job(mjobs.sleep_forever, name="interrupted")
import threading
seen = threading.Event()
count = []
def on_event(e):
    if e.kind == "started":
        count.append(1)
        if len(count) == 2:
            seen.set()
m.subscribe(on_event)
seen.wait(30)
print("STARTED", flush=True)
time.sleep(600)
"""


def test_parent_killed_with_sigkill_leaves_no_workers_and_a_rerunnable_one_off(tmp_path):
    store = tmp_path / "jobs.json"
    script = tmp_path / "parent.py"
    script.write_text(KILLED_PARENT.format(jobs=str(JOBS), store=str(store)))
    parent = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    try:
        assert parent.stdout.readline().strip() == "STARTED"
        children = psutil.Process(parent.pid).children(recursive=True)
        assert children
        parent.send_signal(signal.SIGKILL)
        parent.wait(WAIT)
        _, alive = psutil.wait_procs(children, timeout=10)
        assert alive == [], f"orphaned workers: {alive}"
    finally:
        if parent.poll() is None:
            parent.kill()
    reopened = TinyDBStore(store)
    record = reopened.get("interrupted")
    assert record.status == "failed" and "interrupted" in record.error
    with JobManager(store) as m:
        m.add_one_off_job(mjobs.add, name="interrupted", data={"a": 1, "b": 1})
        assert m.wait("interrupted", timeout=WAIT).result == 2


def test_wait_returns_only_after_subscribers_have_seen_the_run_end(manager):
    """The offloaded run ends on the executor's thread while the loop thread is still delivering an
    earlier event: wait() must not return before that delivery has reached the finished event."""
    holding = threading.Event()
    let_go = threading.Event()
    seen: list[tuple[str, str]] = []

    def slow(event) -> None:
        if (event.kind, event.name) == ("started", "holder"):
            holding.set()
            let_go.wait(WAIT)
        seen.append((event.kind, event.name))

    manager.subscribe(slow)
    manager.add_job(lambda: None, name="holder", offloaded=False)  # "started" is delivered on the loop thread
    assert holding.wait(WAIT)
    manager.add_job(mjobs.add, data={"a": 1, "b": 1})
    returned = threading.Event()
    seen_at_return: list[tuple[str, str]] = []

    def waiter() -> None:
        manager.wait("add", timeout=WAIT)
        seen_at_return.extend(seen)
        returned.set()

    thread = threading.Thread(target=waiter)
    thread.start()
    wait_until(lambda: manager.job("add").status == "finished", WAIT)  # the run's state, not its events
    assert not returned.wait(0.2)  # the run has ended, but its events are still queued
    let_go.set()
    assert returned.wait(WAIT)
    thread.join(WAIT)
    assert ("finished", "add") in seen_at_return


class ThreadRun(RunHandle):
    def __init__(self) -> None:
        self.ended = threading.Event()

    def post_message(self, message) -> None:
        pass

    def cancel(self, grace=None) -> None:
        pass

    def kill(self) -> None:
        pass

    @property
    def done(self) -> bool:
        return self.ended.is_set()


class ThreadExecutor(Executor):
    """A second backend written against the Executor interface alone: each run on a thread of this process."""

    def __init__(self) -> None:
        self.tasks = []
        self.threads = []
        self.shutdowns = 0

    def submit(self, task, listener):
        handle = ThreadRun()
        thread = threading.Thread(target=self._run, args=(task, listener, handle))
        self.tasks.append(task)
        self.threads.append(thread)
        thread.start()
        return handle

    @staticmethod
    def _run(task, listener, handle) -> None:
        listener(WorkerEvent("started", task.run_id))
        try:
            if task.target_kind == "pickled":
                func = cloudpickle.loads(task.target)
            else:
                module, _, qualname = task.target.partition(":")
                func = getattr(importlib.import_module(module), qualname)
            outcome = RunOutcome("finished", result=func(json.loads(task.data_json)))
        except Exception:
            outcome = RunOutcome("failed", error=traceback.format_exc())
        listener(WorkerEvent("exited", task.run_id, outcome=outcome))
        handle.ended.set()

    def shutdown(self, timeout=None) -> None:
        self.shutdowns += 1
        for thread in self.threads:
            thread.join(timeout)


def test_a_second_executor_backend_runs_offloaded_jobs_through_the_manager():
    executor = ThreadExecutor()
    events = []
    m = JobManager(executor=executor)
    m.subscribe(events.append)
    m.add_job(mjobs.add, data={"a": 2, "b": 3})
    assert m.wait("add", timeout=WAIT).result == 5
    m.add_job(lambda data: os.getpid(), name="where", data=None)
    assert m.wait("where", timeout=WAIT).result == os.getpid()  # it ran here, on our thread backend
    m.add_job(mjobs.fail)
    with pytest.raises(JobFailedError, match="offloaded failure"):
        m.wait("fail", timeout=WAIT)
    assert [t.name for t in executor.tasks] == ["add", "where", "fail"]
    assert [e.kind for e in events if e.name == "add"] == ["added", "queued", "started", "finished"]
    (failed,) = [e for e in events if e.kind == "failed"]
    assert failed.name == "fail" and "ValueError: offloaded failure" in failed.data["error"]
    assert executor.shutdowns == 0
    m.close(timeout=10)
    assert executor.shutdowns == 0  # the caller's executor: the manager never shuts it down
