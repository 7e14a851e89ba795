"""One-off jobs through the manager: Ghost's cases 11–22 with inline jobs, and persistence across managers."""

from __future__ import annotations

import asyncio
import threading

import pytest

from jobmanager_nb import JobFailedError, JobManager, OneOffAlreadyExecutedError
from jobmanager_nb.errors import JobConfigError
from jobmanager_nb.store import MemoryStore, TinyDBStore

WAIT = 10.0


@pytest.fixture
def store():
    return MemoryStore()


@pytest.fixture
def manager(store):
    m = JobManager(store)
    yield m
    m.close(timeout=5)


def statuses(events, name):
    return [e.kind for e in events if e.name == name and e.kind in ("queued", "started", "finished", "failed")]


def test_one_off_without_name_is_refused(manager):
    with pytest.raises(JobConfigError, match=r"The name parameter is required for a one off job\."):
        manager.add_one_off_job(lambda: None, offloaded=False)


def test_unique_one_off_inserts_a_record(manager, store):
    release = threading.Event()
    manager.add_one_off_job(lambda: release.wait(WAIT), name="unique", offloaded=False)
    assert store.get("unique") is not None
    release.set()
    manager.wait("unique", timeout=WAIT)


def test_finished_one_off_cannot_be_added_again(manager, store):
    manager.add_one_off_job(lambda: None, name="once", offloaded=False)
    manager.wait("once", timeout=WAIT)
    with pytest.raises(OneOffAlreadyExecutedError, match=r'A "once" one off job has already been executed\.'):
        manager.add_one_off_job(lambda: None, name="once", offloaded=False)


class Held:
    """An inline job that waits, while it runs, until the test lets it go; then returns or raises ``error``."""

    def __init__(self, error: Exception | None = None) -> None:
        self.error = error
        self.running = threading.Event()
        self.release = threading.Event()

    def __call__(self) -> None:
        self.running.set()
        self.release.wait(WAIT)
        if self.error is not None:
            raise self.error


def test_one_off_success_goes_queued_started_finished(manager, store):
    events = []
    manager.subscribe(events.append)
    job = Held()
    manager.add_one_off_job(job, name="ok", offloaded=False)
    assert job.running.wait(WAIT)
    during = store.get("ok")
    job.release.set()
    manager.wait("ok", timeout=WAIT)
    record = store.get("ok")
    assert statuses(events, "ok") == ["queued", "started", "finished"]
    assert during.status == "started" and during.started_at is not None and during.finished_at is None
    assert record.status == "finished" and record.started_at == during.started_at
    assert record.started_at <= record.finished_at
    assert record.attempts == 1


def test_one_off_failure_goes_queued_started_failed_and_waiting_raises_its_error(manager, store):
    events = []
    manager.subscribe(events.append)
    job = Held(RuntimeError("one-off failure"))
    manager.add_one_off_job(job, name="broken", offloaded=False)
    assert job.running.wait(WAIT)
    during = store.get("broken")
    job.release.set()
    with pytest.raises(JobFailedError, match="one-off failure"):
        manager.wait("broken", timeout=WAIT)
    record = store.get("broken")
    assert statuses(events, "broken") == ["queued", "started", "failed"]
    assert during.status == "started" and during.started_at is not None
    assert record.status == "failed" and "one-off failure" in record.error
    assert record.started_at == during.started_at and record.started_at <= record.finished_at


def test_failed_one_off_can_be_added_again_and_runs_again(manager, store):
    calls = []

    def broken():
        calls.append(1)
        raise RuntimeError("again")

    manager.add_one_off_job(broken, name="again", offloaded=False)
    with pytest.raises(JobFailedError):
        manager.wait("again", timeout=WAIT)
    manager.add_one_off_job(broken, name="again", offloaded=False)
    with pytest.raises(JobFailedError):
        manager.wait("again", timeout=WAIT)
    assert calls == [1, 1]
    assert store.get("again").attempts == 2


def test_rerun_of_a_failed_one_off(manager, store):
    state = {"fail": True}

    def flaky():
        if state["fail"]:
            raise RuntimeError("first time")
        return "second time"

    manager.add_one_off_job(flaky, name="flaky", offloaded=False)
    with pytest.raises(JobFailedError):
        manager.wait("flaky", timeout=WAIT)
    state["fail"] = False
    manager.rerun("flaky")
    assert manager.wait("flaky", timeout=WAIT).result == "second time"
    assert store.get("flaky").status == "finished"


def test_has_executed_successfully(manager):
    assert manager.has_executed_successfully("nothing") is False
    manager.add_one_off_job(lambda: None, name="good", offloaded=False)
    manager.wait("good", timeout=WAIT)
    assert manager.has_executed_successfully("good") is True

    def bad():
        raise RuntimeError("x")

    manager.add_one_off_job(bad, name="bad", offloaded=False)
    with pytest.raises(JobFailedError):
        manager.wait("bad", timeout=WAIT)
    assert manager.has_executed_successfully("bad") is False


def test_await_one_off_completion_returns_the_finished_record(manager):
    release = threading.Event()
    manager.add_one_off_job(lambda: release.wait(WAIT), name="slow", offloaded=False)

    async def main():
        task = asyncio.ensure_future(manager.await_one_off_completion("slow", timeout=WAIT))
        await asyncio.sleep(0)
        release.set()
        return await task

    record = asyncio.run(main())
    assert record.status == "finished"
    assert manager.wait_one_off("slow", timeout=WAIT).status == "finished"


def test_one_off_retries_keep_one_record_counting_attempts(store):
    m = JobManager(store, retry_backoff=0.01)
    try:
        calls = []

        def flaky():
            calls.append(1)
            if len(calls) < 3:
                raise RuntimeError("not yet")

        m.add_one_off_job(flaky, name="retry", offloaded=False, retries=2)
        m.wait("retry", timeout=WAIT)
        record = store.get("retry")
        assert record.status == "finished" and record.attempts == 3
        assert [r.name for r in store.records()] == ["retry"]
    finally:
        m.close(timeout=5)


def test_records_survive_a_new_manager_on_the_same_file(tmp_path):
    path = tmp_path / "jobs.json"
    with JobManager(path) as first:
        first.add_one_off_job(lambda: None, name="persisted", offloaded=False)
        first.wait("persisted", timeout=WAIT)
    with JobManager(path) as second:
        assert second.has_executed_successfully("persisted")
        with pytest.raises(OneOffAlreadyExecutedError):
            second.add_one_off_job(lambda: None, name="persisted", offloaded=False)
    assert TinyDBStore(path).get("persisted").status == "finished"


def test_invalid_job_leaves_no_orphan_queued_record(manager, store):
    with pytest.raises(Exception, match="does not exist"):
        manager.add_one_off_job("no/such/script.py", name="orphan")
    assert store.get("orphan") is None


def test_a_failed_script_one_off_can_be_rerun_from_a_later_session(tmp_path):
    path = tmp_path / "jobs.json"
    flag = tmp_path / "flag"
    script = tmp_path / "needs_flag.py"
    script.write_text(
        "import pathlib\n"
        "from jobmanager_nb import worker\n"
        "if not pathlib.Path(worker.data['flag']).exists():\n"
        "    raise RuntimeError('no flag yet')\n"
    )
    with JobManager(path) as first:
        first.add_one_off_job(str(script), name="needs-flag", data={"flag": str(flag)})
        with pytest.raises(JobFailedError, match="no flag yet"):
            first.wait("needs-flag", timeout=WAIT)
    flag.touch()
    with JobManager(path) as second:
        second.rerun("needs-flag")
        assert second.wait("needs-flag", timeout=WAIT).status == "finished"
        assert second.store.get("needs-flag").attempts == 2


def test_a_cell_function_one_off_cannot_be_rerun_from_a_later_session(tmp_path):
    path = tmp_path / "jobs.json"

    def broken():
        raise RuntimeError("x")

    with JobManager(path) as first:
        first.add_one_off_job(broken, name="cell", offloaded=False)
        with pytest.raises(JobFailedError):
            first.wait("cell", timeout=WAIT)
    with JobManager(path) as second, pytest.raises(LookupError, match="run the cell"):
        second.rerun("cell")
