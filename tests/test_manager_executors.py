"""Named executors: the default, ``"local"``, executors added by name, the names a job remembers, where each run
ran (``JobRun.location``), and that ``close()`` shuts down only the executor the manager made. Every executor
here is a real ``ProcessExecutor`` (a second one stands in for a remote backend such as Dask)."""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from executor_helpers import CountingExecutor, Recorder, reference

from jobmanager_nb import Event, JobConfigError, JobManager, JobManagerError, TinyDBStore
from jobmanager_nb.executors.local import ProcessExecutor

HERE = Path(__file__).resolve().parent
JOBS = HERE / "manager_jobs"
sys.path.insert(0, str(JOBS))
import mjobs  # noqa: E402

WAIT = 30.0


class LinkedExecutor(CountingExecutor):
    """One that names a web page of its own, as DaskExecutor names the Dask dashboard."""

    @property
    def dashboard_link(self) -> str | None:
        return "http://127.0.0.1:8787/status"


@pytest.fixture
def spare() -> Iterator[CountingExecutor]:
    executor = CountingExecutor()
    yield executor
    executor.shutdown(timeout=5)


@pytest.fixture
def other() -> Iterator[CountingExecutor]:
    executor = CountingExecutor()
    yield executor
    executor.shutdown(timeout=5)


@pytest.fixture
def managers() -> Iterator[Callable[..., JobManager]]:
    made: list[JobManager] = []

    def make(**options: object) -> JobManager:
        manager = JobManager(kill_grace=1.0, **options)  # type: ignore[arg-type]
        made.append(manager)
        return manager

    yield make
    for manager in made:
        manager.close(timeout=10)


def still_works(executor: ProcessExecutor) -> None:
    """``executor`` runs a task to the end, used directly (no manager)."""
    recorder = Recorder()
    executor.submit(reference("add", {"a": 1, "b": 2}), recorder)
    outcome = recorder.outcome()
    assert (outcome.status, outcome.result) == ("finished", 3)


# -- naming executors


def test_a_job_with_executor_runs_on_the_named_executor(managers, spare):
    manager = managers(executors={"spare": spare})
    manager.add_job(mjobs.add, name="there", data={"a": 2, "b": 3}, executor="spare")
    run = manager.wait("there", timeout=WAIT)
    assert (run.status, run.result) == ("finished", 5)
    assert spare.submitted == ["there"]


def test_add_executor_names_an_executor_after_the_manager_is_made(managers, spare):
    manager = managers()
    manager.add_executor("spare", spare)
    manager.add_job(mjobs.add, name="there", data={"a": 1, "b": 1}, executor="spare")
    assert manager.wait("there", timeout=WAIT).result == 2
    assert spare.submitted == ["there"]
    assert manager.executors == {"spare": spare}
    assert manager.executor_names == ("default", "local", "spare")


def test_a_job_without_executor_goes_to_the_default_executor(managers, spare, other):
    manager = managers(executor=other, executors={"spare": spare})
    manager.add_job(mjobs.add, name="plain", data={"a": 1, "b": 2})
    assert manager.wait("plain", timeout=WAIT).result == 3
    assert (other.submitted, spare.submitted) == (["plain"], [])
    assert manager.job("plain").executor == "default"


def test_one_offs_retries_and_run_now_without_executor_go_to_the_default_too(managers, other, tmp_path):
    manager = managers(executor=other, store=tmp_path / "jobs.json", retry_backoff=0.01)
    manager.add_one_off_job("mjobs:fail", name="once", retries=1)
    with pytest.raises(Exception, match="failed"):
        manager.wait("once", timeout=WAIT)
    manager.add_job(mjobs.add, name="later", at=3600, data={"a": 1, "b": 2})
    manager.run_now("later")
    assert manager.wait("later", timeout=WAIT).result == 3
    assert other.submitted == ["once", "once", "later"]  # the one-off, its retry, the run now
    record = manager.store.get("once")
    assert record is not None and record.meta["executor"] == "default"
    assert manager._local is None  # the built-in one was never needed, so never made


def test_executor_none_is_the_default_too(managers, other):
    manager = managers(executor=other)
    manager.add_job(mjobs.add, name="plain", data={"a": 1, "b": 2}, executor=None)
    manager.add_job(mjobs.add, name="named", data={"a": 1, "b": 2}, executor="default")
    manager.wait("plain", timeout=WAIT)
    manager.wait("named", timeout=WAIT)
    assert sorted(other.submitted) == ["named", "plain"]


def test_local_means_the_built_in_executor_even_when_there_is_a_default(managers, other):
    manager = managers(executor=other)
    manager.add_job(mjobs.add, name="here", data={"a": 1, "b": 2}, executor="local")
    run = manager.wait("here", timeout=WAIT)
    assert (run.result, run.location) == (3, "local")
    assert other.submitted == []
    assert manager.job("here").executor == "local"


def test_without_a_default_of_its_own_a_job_remembers_local(managers):
    manager = managers()
    handle = manager.add_job(mjobs.add, name="here", data={"a": 1, "b": 2})
    manager.wait("here", timeout=WAIT)
    assert handle.info.executor == "local"


def test_a_job_remembers_its_executor_name_and_an_inline_job_has_none(managers, spare):
    manager = managers(executors={"spare": spare})
    manager.add_job(mjobs.add, name="remote", at=3600, data={"a": 1, "b": 2}, executor="spare")
    manager.add_job(lambda: None, name="inline", at=3600, offloaded=False)
    assert manager.job("remote").executor == "spare"
    assert manager.job("inline").executor is None


def test_a_replaced_job_takes_the_new_executor(managers, spare, other):
    manager = managers(executors={"spare": spare, "other": other})
    manager.add_job(mjobs.add, name="moving", at=3600, data={"a": 1, "b": 2}, executor="spare")
    manager.add_job(mjobs.add, name="moving", data={"a": 1, "b": 2}, executor="other", replace=True)
    manager.wait("moving", timeout=WAIT)
    assert (spare.submitted, other.submitted) == ([], ["moving"])


def test_run_now_and_retries_go_to_the_jobs_executor(managers, spare):
    manager = managers(executors={"spare": spare}, retry_backoff=0.01)
    manager.add_job(mjobs.fail, name="flaky", at=3600, retries=1, executor="spare")
    manager.run_now("flaky")
    with pytest.raises(Exception, match="failed"):
        manager.wait("flaky", timeout=WAIT)
    assert spare.submitted == ["flaky", "flaky"]  # the first attempt and its retry


# -- mistakes


def test_local_is_reserved(managers, spare):
    manager = managers()
    with pytest.raises(JobConfigError, match='"local" is reserved'):
        manager.add_executor("local", spare)
    with pytest.raises(JobConfigError, match='"default" is reserved'):
        manager.add_executor("default", spare)
    assert manager.executors == {}


def test_local_is_reserved_in_the_constructor_too(spare):
    with pytest.raises(JobConfigError, match='"local" is reserved'):
        JobManager(executors={"local": spare})


def test_a_name_that_is_not_a_name_is_refused(managers, spare):
    manager = managers()
    for bad in ("", " dask", 7):
        with pytest.raises(JobConfigError, match="non-empty string"):
            manager.add_executor(bad, spare)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="must be an Executor"):
        manager.add_executor("dask", object())  # type: ignore[arg-type]


def test_a_name_that_would_break_a_line_is_refused(managers, spare):
    """A name is printed in one-line errors and in one row of the text table: no line breaks, tabs or other
    control characters."""
    manager = managers()
    for bad in ("da\nsk", "da\tsk", "da\rsk", "da\x1bsk"):
        with pytest.raises(JobConfigError, match="control character"):
            manager.add_executor(bad, spare)
        with pytest.raises(JobConfigError, match="control character"):
            JobManager(executors={bad: spare})
    assert manager.executors == {}
    manager.add_executor("my dask", spare)  # a space inside is fine
    assert manager.executor_names == ("default", "local", "my dask")


def test_adding_a_name_twice_is_refused_unless_replace(managers, spare, other):
    manager = managers()
    manager.add_executor("dask", spare)
    manager.add_executor("dask", spare)  # the same executor again (a cell run twice): nothing happens
    with pytest.raises(JobConfigError, match=r'An executor named "dask" is already added.*replace=True'):
        manager.add_executor("dask", other)
    assert manager.executors == {"dask": spare}
    manager.add_executor("dask", other, replace=True)
    assert manager.executors == {"dask": other}


def test_replacing_an_executor_sends_the_next_runs_to_the_new_one(managers, spare, other):
    manager = managers(executors={"dask": spare})
    manager.add_job(mjobs.add, name="job", at=3600, data={"a": 1, "b": 2}, executor="dask")
    manager.add_executor("dask", other, replace=True)
    manager.run_now("job")
    manager.wait("job", timeout=WAIT)
    assert (spare.submitted, other.submitted) == ([], ["job"])


def test_replacing_an_executor_leaves_runs_going_there_and_a_run_cancelled_in_its_queue_never_starts(managers, other):
    busy = ProcessExecutor(max_workers=1, spares=0)  # one slot: the second run waits inside the executor
    try:
        manager = managers(executors={"dask": busy})
        started: list[str] = []
        going = threading.Event()

        def on_event(event: Event) -> None:
            if event.kind == "started":
                started.append(event.name)
                going.set()

        manager.subscribe(on_event)
        manager.add_job(mjobs.graceful, name="long", executor="dask")
        assert going.wait(WAIT)
        manager.add_job(mjobs.add, name="waiting", at=3600, data={"a": 1, "b": 2}, executor="dask")
        manager.run_now("waiting")
        current = manager.job("waiting").current_run
        assert current is not None and current.phase == "dispatched"  # queued inside the busy executor

        manager.add_executor("dask", other, replace=True)  # runs already there stay there
        assert manager.cancel("waiting")
        with pytest.raises(Exception, match="cancelled before it started"):
            manager.wait("waiting", timeout=WAIT)
        manager.run_now("waiting")  # the next run goes to the new one
        assert manager.wait("waiting", timeout=WAIT).result == 3
        assert other.submitted == ["waiting"]

        assert manager.cancel("long")  # the cancel reaches the run on the replaced executor
        with pytest.raises(Exception, match="cancelled"):
            manager.wait("long", timeout=WAIT)
        assert manager.flush_events()
        assert started == ["long", "waiting"]  # the cancelled run never started, in either executor
    finally:
        busy.shutdown(timeout=5)


def test_an_unknown_executor_is_refused_naming_the_known_ones_and_registers_nothing(managers, spare):
    manager = managers(executors={"spare": spare})
    with pytest.raises(JobConfigError) as info:
        manager.add_job(mjobs.add, name="lost", data={"a": 1, "b": 2}, executor="dask")
    message = str(info.value)
    assert 'Job "lost"' in message and '"dask"' in message
    assert "known: default, local, spare" in message
    assert 'add_executor("dask"' in message
    assert manager.jobs == [] and spare.submitted == []


def test_an_unknown_executor_leaves_no_one_off_record(managers, tmp_path):
    manager = managers(store=tmp_path / "jobs.json")
    with pytest.raises(JobConfigError, match='no executor named "dask"'):
        manager.add_one_off_job(mjobs.add, name="once", data={"a": 1, "b": 2}, executor="dask")
    assert manager.jobs == []
    assert manager.store.get("once") is None
    assert manager.one_off_records() == []
    manager.close()
    assert TinyDBStore(tmp_path / "jobs.json").records() == []  # nothing on disk either


def test_executor_with_an_inline_job_is_refused(managers, spare):
    manager = managers(executors={"spare": spare})
    for name in ("spare", "local", "default"):
        with pytest.raises(JobConfigError, match=r"inline.*Drop executor="):
            manager.add_job(lambda: None, name="inline", offloaded=False, executor=name)
        with pytest.raises(JobConfigError, match="inline"):
            manager.add_one_off_job(lambda: None, name="once", offloaded=False, executor=name)
    assert manager.jobs == [] and manager.store.get("once") is None


def test_add_executor_after_close_is_refused(spare):
    manager = JobManager()
    manager.close()
    with pytest.raises(Exception, match="shut down"):
        manager.add_executor("spare", spare)


# -- where a run ran


def test_an_offloaded_run_says_it_ran_locally(managers):
    manager = managers()
    manager.add_job(mjobs.add, name="here", data={"a": 1, "b": 2})
    run = manager.wait("here", timeout=WAIT)
    assert run.location == "local"
    assert manager.runs("here")[-1].location == "local"
    assert manager.job("here").recent[-1].location == "local"


def test_an_inline_run_says_it_ran_in_the_kernel(managers):
    manager = managers()
    manager.add_job(lambda: 42, name="inline", offloaded=False)
    run = manager.wait("inline", timeout=WAIT)
    assert (run.result, run.location) == (42, "kernel")
    assert manager.job("inline").recent[-1].location == "kernel"


def test_a_run_has_no_location_before_it_starts(managers, spare):
    manager = managers(executors={"spare": spare})
    manager.add_job(mjobs.add, name="later", at=3600, data={"a": 1, "b": 2}, executor="spare")
    assert manager.job("later").last_run is None
    run = manager.run_now("later")
    assert run is not None and run.location is None  # queued: it has not run anywhere yet
    assert manager.wait("later", timeout=WAIT).location == "local"


def test_the_running_run_shows_its_location(managers, spare):
    manager = managers(executors={"spare": spare})
    started = threading.Event()
    seen: list[Event] = []

    def on_event(event: Event) -> None:
        if event.kind == "started":
            seen.append(event)
            started.set()

    manager.subscribe(on_event)
    manager.add_job(mjobs.sleep_forever, name="long", executor="spare")
    assert started.wait(WAIT)
    current = manager.job("long").current_run
    assert current is not None and (current.phase, current.location) == ("started", "local")
    assert seen[0].data["location"] == "local"
    manager.cancel("long")
    with pytest.raises(Exception, match="cancel"):
        manager.wait("long", timeout=WAIT)


def test_the_inline_started_event_carries_the_location(managers):
    manager = managers()
    seen: list[Event] = []
    manager.subscribe(lambda event: seen.append(event) if event.kind == "started" else None)
    manager.add_job(lambda: None, name="inline", offloaded=False)
    manager.wait("inline", timeout=WAIT)
    assert manager.flush_events()
    assert [event.data["location"] for event in seen] == ["kernel"]


# -- dashboard links


def test_executor_link_is_the_executors_page_or_none(managers, spare):
    linked = LinkedExecutor()
    try:
        manager = managers(executors={"dask": linked, "spare": spare})
        assert manager.executor_link("dask") == "http://127.0.0.1:8787/status"
        assert manager.executor_link("spare") is None  # a ProcessExecutor has no page
        assert manager.executor_link("local") is None
        assert manager.executor_link("nope") is None
        assert manager.executor_link(None) is None
    finally:
        linked.shutdown(timeout=5)


def test_executor_link_of_the_default_is_the_default_executors(managers):
    linked = LinkedExecutor()
    try:
        manager = managers(executor=linked)
        assert manager.executor_link("default") == "http://127.0.0.1:8787/status"
    finally:
        linked.shutdown(timeout=5)


# -- one-offs


def test_a_one_off_remembers_its_executor_in_the_store(managers, spare, tmp_path):
    manager = managers(store=tmp_path / "jobs.json", executors={"spare": spare})
    manager.add_one_off_job("mjobs:fail", name="once", executor="spare")
    with pytest.raises(Exception, match="failed"):
        manager.wait("once", timeout=WAIT)
    record = manager.store.get("once")
    assert record is not None and record.meta["executor"] == "spare"
    manager.rerun("once")  # this session: the definition it was added with, so the same executor
    with pytest.raises(Exception, match="failed"):
        manager.wait("once", timeout=WAIT)
    assert spare.submitted == ["once", "once"]


def test_a_later_session_reruns_a_one_off_on_the_executor_of_the_same_name(managers, spare, other, tmp_path):
    first = managers(store=tmp_path / "jobs.json", executors={"spare": spare})
    first.add_one_off_job("mjobs:fail", name="once", executor="spare")
    with pytest.raises(Exception, match="failed"):
        first.wait("once", timeout=WAIT)
    first.close()
    later = managers(store=tmp_path / "jobs.json", executors={"spare": other})
    later.rerun("once")
    with pytest.raises(Exception, match="failed"):
        later.wait("once", timeout=WAIT)
    assert other.submitted == ["once"]


def test_a_later_session_without_the_executor_says_how_to_add_it(managers, spare, tmp_path):
    first = managers(store=tmp_path / "jobs.json", executors={"spare": spare})
    first.add_one_off_job("mjobs:fail", name="once", executor="spare")
    with pytest.raises(Exception, match="failed"):
        first.wait("once", timeout=WAIT)
    first.close()
    later = managers(store=tmp_path / "jobs.json")
    with pytest.raises(JobConfigError, match=r'no executor named "spare".*add_executor\("spare"'):
        later.rerun("once")
    record = later.store.get("once")
    assert record is not None and record.status == "failed"  # not claimed for a run that cannot happen


# -- close()


def test_close_leaves_the_callers_executors_running_and_usable(spare, other):
    manager = JobManager(executor=other, executors={"spare": spare})
    manager.add_job(mjobs.add, name="a", data={"a": 1, "b": 1}, executor="spare")
    manager.add_job(mjobs.add, name="b", data={"a": 1, "b": 1})
    manager.wait("a", timeout=WAIT)
    manager.wait("b", timeout=WAIT)
    manager.close(timeout=10)
    still_works(spare)
    still_works(other)
    again = JobManager(executors={"spare": spare})  # and another manager can use them
    try:
        again.add_job(mjobs.add, name="c", data={"a": 2, "b": 2}, executor="spare")
        assert again.wait("c", timeout=WAIT).result == 4
    finally:
        again.close(timeout=10)
    still_works(spare)


def test_close_shuts_down_the_built_in_executor_it_made(spare):
    manager = JobManager(executors={"spare": spare})
    manager.add_job(mjobs.add, name="here", data={"a": 1, "b": 1}, executor="local")
    manager.wait("here", timeout=WAIT)
    built_in = manager._local
    assert isinstance(built_in, ProcessExecutor)
    manager.close(timeout=10)
    with pytest.raises(RuntimeError, match="shut down"):
        built_in.submit(reference("add", {"a": 1, "b": 1}), Recorder())
    still_works(spare)


def test_close_cancels_the_managers_runs_on_a_callers_executor_but_keeps_the_executor(spare):
    manager = JobManager(executors={"spare": spare}, kill_grace=1.0)
    started = threading.Event()
    manager.subscribe(lambda event: started.set() if event.kind == "started" else None)
    manager.add_job(mjobs.sleep_forever, name="long", executor="spare")
    assert started.wait(WAIT)
    with pytest.raises(TimeoutError):  # sleep_forever does not stop when asked: it is killed
        manager.close(timeout=0.5)
    assert manager.runs("long")[-1].status == "failed"
    still_works(spare)


def test_close_shuts_down_the_built_in_executor_but_not_the_callers_default(other):
    manager = JobManager(executor=other)
    manager.add_job(mjobs.add, name="here", data={"a": 1, "b": 1}, executor="local")
    manager.add_job(mjobs.add, name="there", data={"a": 1, "b": 1})
    manager.wait("here", timeout=WAIT)
    manager.wait("there", timeout=WAIT)
    built_in = manager._local
    assert isinstance(built_in, ProcessExecutor) and built_in is not other
    manager.close(timeout=10)
    with pytest.raises(RuntimeError, match="shut down"):
        built_in.submit(reference("add", {"a": 1, "b": 1}), Recorder())
    still_works(other)


def test_no_built_in_executor_is_made_after_close_has_shut_it_down() -> None:
    """A run submitted while close() runs (add_job or run_now racing it) must not make a fresh built-in
    executor after close() looked for one: nobody would ever shut its fork server down."""
    m = JobManager()
    m.close()
    with pytest.raises(JobManagerError, match="shut down before this run could start"):
        m._executor_named(None)
    assert m._local is None
