"""DaskExecutor-specific behaviour on real Dask clusters (LocalCluster worker processes, and a
`dask worker` of our own where a test needs a worker no nanny restarts): a Dask worker killed
mid-run, the at-most-once start gate, cancel while queued on the scheduler, scripts missing on the
worker, version skew, Clients and clusters passed in, shutdown, and where a run's working directory
and environment come from. No mocks. The protocol-level contract is in test_executor_conformance.py."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from executor_helpers import WAIT, Recorder, count_files, dask_cluster, reference, script, wait_gone
from polling import wait_until

from jobmanager_nb.executors import OffloadedTask, RunHandle
from jobmanager_nb.executors.dask import DaskExecutor
from jobmanager_nb.executors.dask_worker import PLUGIN_NAME

pytestmark = pytest.mark.timeout(180)

import distributed  # noqa: E402  (the test extra installs it: these tests never skip)


@pytest.fixture(scope="module")
def cluster() -> Iterator[Any]:
    """Two workers, whose nannies restart them when a test kills one. (A LocalCluster also closes a
    worker's nanny when no worker of that name is there ``lost-worker-timeout`` after a removal: with
    workers killed again and again, one of those checks would fall between a kill and its restart.)"""
    import dask

    with dask.config.set({"distributed.deploy.lost-worker-timeout": "1h"}), dask_cluster() as local_cluster:
        yield local_cluster


@pytest.fixture(scope="module")
def client(cluster: Any) -> Iterator[Any]:
    with distributed.Client(cluster, set_as_default=False) as dask_client:
        yield dask_client


@pytest.fixture(scope="module")
def executor(client: Any) -> Iterator[DaskExecutor]:
    ex = DaskExecutor(client)
    yield ex
    ex.shutdown(timeout=5)


@pytest.fixture(autouse=True)
def _cluster_is_whole_again(request: pytest.FixtureRequest) -> Iterator[None]:
    """Tests that kill a worker leave the cluster waiting for its nanny to restart it: the next test
    starts with both workers there and no task left on the scheduler."""
    yield
    if "client" in request.fixturenames:
        dask_client = request.getfixturevalue("client")
        wait_for_workers(dask_client, 2)
        wait_until(lambda: not scheduler_tasks(dask_client), WAIT)


def wait_for_workers(dask_client: Any, count: int) -> None:
    """Wait until ``count`` workers are running (a nanny restarts a killed one in about a second; much
    more on a busy machine)."""

    def running() -> int:
        workers = dask_client.scheduler_info(n_workers=-1)["workers"].values()
        return sum(1 for w in workers if w.get("status") == "running")

    wait_until(lambda: running() >= count, 3 * WAIT, interval=0.05)


def start(executor: DaskExecutor, task: OffloadedTask) -> tuple[RunHandle, Recorder]:
    recorder = Recorder()
    return executor.submit(task, recorder), recorder


def marking(directory: Path, sleep: float = 60, name: str = "marking") -> OffloadedTask:
    """A run of jobs.dask_jobs:mark_start, which leaves one file in ``directory`` per start."""
    task = reference("x", data={"dir": str(directory), "sleep": sleep}, name=name)
    return OffloadedTask(task.run_id, name, "reference", "jobs.dask_jobs:mark_start", task.data_json)


def scheduler_tasks(dask_client: Any) -> list[str]:
    """The keys the scheduler still knows."""
    return list(dask_client.run_on_scheduler(lambda dask_scheduler: [str(k) for k in dask_scheduler.tasks]))


def worker_pids(dask_client: Any) -> dict[str, int]:
    return dict(dask_client.run(os.getpid))


def supervisors_left(dask_client: Any) -> int:
    """Placements of runs still waiting or running on any worker."""

    def count() -> int:
        from jobmanager_nb.executors import dask_worker

        return len(dask_worker._runs)

    return sum(dask_client.run(count).values())


def quiet(dask_client: Any) -> None:
    """Wait until no task is left on the scheduler and no placement on a worker (a rerun of a dead
    worker's task has been answered and is gone)."""
    wait_until(lambda: not scheduler_tasks(dask_client) and supervisors_left(dask_client) == 0, WAIT)


# --- the package stays light ---------------------------------------------------------------------


def test_importing_jobmanager_nb_does_not_import_distributed() -> None:
    code = (
        "import sys, jobmanager_nb\n"
        "from jobmanager_nb import JobManager, worker\n"
        "from jobmanager_nb.executors import ProcessExecutor, Executor\n"
        "print(sorted(m for m in ('distributed', 'dask') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stderr


def test_without_distributed_the_import_error_says_what_to_install() -> None:
    code = (
        "import sys\n"
        "sys.modules['distributed'] = None  # as if it were not installed\n"
        "try:\n"
        "    from jobmanager_nb.executors.dask import DaskExecutor\n"
        "except ImportError as exc:\n"
        "    print(exc)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "pip install 'jobmanager_nb[dask]'" in out.stdout, out.stderr


# --- where a run runs --------------------------------------------------------------------------------


def test_a_run_takes_one_dask_worker_thread_until_it_ends(executor: DaskExecutor, client: Any) -> None:
    """Two workers with one thread each: two runs at a time, the third waits on the scheduler."""
    runs = [start(executor, reference("obey_cancel")) for _ in range(3)]
    for _, events in runs[:2]:
        events.wait_message(lambda m: m == "waiting")
    third = runs[2][1]
    assert third.kinds() == []  # both slots are taken
    locations = {events.wait_for(lambda e: e.kind == "started").location for _, events in runs[:2]}
    assert locations == set(worker_pids(client))
    runs[0][0].cancel(grace=10)
    third.wait_message(lambda m: m == "waiting")  # it got the slot that freed up
    for handle, events in runs[1:]:
        handle.cancel(grace=10)
        assert events.outcome().result == "stopped"


def test_the_kernels_cwd_is_used_where_the_worker_has_it_else_the_workers_own(
    executor: DaskExecutor, tmp_path: Path
) -> None:
    _, events = start(executor, reference("about_this_run", cwd=str(tmp_path)))
    assert events.outcome().result["cwd"] == str(tmp_path)
    missing = tmp_path / "not-on-the-worker"
    _, events = start(executor, reference("about_this_run", cwd=str(missing)))
    outcome = events.outcome()
    assert outcome.status == "finished", outcome.error
    assert outcome.result["cwd"] != str(missing) and os.path.isdir(outcome.result["cwd"])


def test_the_job_sees_the_workers_environment_not_the_kernels(
    executor: DaskExecutor, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JOBMANAGER_NB_TEST_VAR", "only in the kernel")
    _, events = start(executor, reference("about_this_run"))
    assert events.outcome().result["env"] is None


def test_the_executor_names_a_dashboard_only_when_there_is_one(executor: DaskExecutor, client: Any) -> None:
    services = client.scheduler_info(n_workers=0).get("services", {})
    link = executor.dashboard_link
    if "dashboard" in services:
        assert isinstance(link, str) and link.startswith("http") and str(services["dashboard"]) in link
    else:
        assert link is None


# --- a Dask worker dies ----------------------------------------------------------------------------


def kill_worker(dask_client: Any, address: str, pid: int) -> None:
    """SIGKILL a Dask worker process and wait until the scheduler removed it (asking a dead worker
    anything waits for the whole connect timeout)."""
    os.kill(pid, signal.SIGKILL)
    wait_until(lambda: address not in dask_client.scheduler_info(n_workers=-1)["workers"], WAIT)


def kill_worker_of(dask_client: Any, events: Recorder) -> str:
    address = events.wait_for(lambda e: e.kind == "started").location
    assert isinstance(address, str)
    kill_worker(dask_client, address, worker_pids(dask_client)[address])
    return address


def test_a_run_whose_dask_worker_dies_fails_as_lost_and_started_once(
    executor: DaskExecutor, client: Any, tmp_path: Path
) -> None:
    _, events = start(executor, marking(tmp_path, name="X"))
    _, job_pid = events.wait_message(lambda m: isinstance(m, tuple))
    address = kill_worker_of(client, events)
    outcome = events.outcome()
    assert (outcome.status, outcome.lost, outcome.cancelled) == ("failed", True, False)
    assert outcome.error == f'Worker for job "X" was lost: the Dask worker {address} died while the job ran'
    assert events.kinds().count("exited") == 1
    assert wait_gone([job_pid], timeout=10) == []  # the job died with its Dask worker
    quiet(client)  # Dask's rerun of the task was placed, refused and is gone
    assert count_files(tmp_path) == 1


def test_killing_workers_at_random_moments_never_starts_a_job_twice(client: Any, tmp_path: Path) -> None:
    """Trials: submit a short job, SIGKILL one of the two workers at a random moment around its
    start. Every run ends; a job starts at most once (once if it finished); a lost run is one that
    was told to start; the next run works."""
    executor = DaskExecutor(client)
    rng = random.Random(20261205)
    trials = 20
    outcomes = []
    try:
        for trial in range(trials):
            marks = tmp_path / str(trial)
            marks.mkdir()
            _, events = start(executor, marking(marks, sleep=0.3, name=f"trial{trial}"))
            time.sleep(rng.uniform(0.0, 0.08))  # the moment of the kill: that is what is random here
            kill_worker(client, *rng.choice(sorted(worker_pids(client).items())))
            outcome = events.outcome(timeout=WAIT)
            outcomes.append((outcome.status, outcome.lost))
            quiet(client)
            starts = count_files(marks)
            assert starts <= 1, f"trial {trial}: the job started {starts} times"
            if outcome.status == "finished":
                assert starts == 1 and "started" in events.kinds()
            else:
                assert outcome.lost and "worker" in (outcome.error or "") and "lost" in (outcome.error or "")
            wait_for_workers(client, 2)
        _, events = start(executor, reference("add", data={"a": 1, "b": 2}))
        assert events.outcome().result == 3
    finally:
        executor.shutdown(timeout=5)
    assert len(outcomes) == trials


NO_NANNY = ("--no-nanny", "--nthreads", "1", "--no-dashboard")


def test_a_run_ends_lost_even_when_no_worker_is_left(tmp_path: Path) -> None:
    """A worker without a nanny (nobody restarts it), the only one: killed, its run still ends."""
    with distributed.LocalCluster(n_workers=0, processes=True, dashboard_address=None) as scheduler_only:
        worker = subprocess.Popen(
            [sys.executable, "-m", "distributed.cli.dask_worker", scheduler_only.scheduler_address, *NO_NANNY],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env={**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)},
        )
        try:
            executor = DaskExecutor(scheduler_only)
            try:
                wait_for_workers(executor.client, 1)
                _, events = start(executor, marking(tmp_path, name="X"))
                events.wait_message(lambda m: isinstance(m, tuple))
                worker.kill()
                outcome = events.outcome(timeout=WAIT)
                assert outcome.lost and "was lost: the Dask worker" in (outcome.error or "")
                assert count_files(tmp_path) == 1
            finally:
                executor.shutdown(timeout=5)
        finally:
            worker.kill()
            worker.wait()


def test_a_run_whose_dask_worker_closes_ends_lost_and_its_process_is_gone(tmp_path: Path) -> None:
    """A worker closed on purpose (not killed) kills the jobs still running on it as it closes."""
    with dask_cluster(n_workers=1) as one_worker:
        executor = DaskExecutor(one_worker)
        try:
            _, events = start(executor, marking(tmp_path, name="X"))
            _, job_pid = events.wait_message(lambda m: isinstance(m, tuple))

            async def close(dask_worker: Any) -> None:
                asyncio.get_running_loop().call_soon(lambda: asyncio.ensure_future(dask_worker.close()))

            executor.client.run(close)
            outcome = events.outcome(timeout=WAIT)
            assert outcome.lost and outcome.error is not None
            assert outcome.error.startswith('Worker for job "X" was lost: the Dask worker tcp://')
            assert wait_gone([job_pid], timeout=10) == []
            assert count_files(tmp_path) == 1
        finally:
            executor.shutdown(timeout=5)


# --- the start gate: cancel and kill before the start ------------------------------------------------


def test_cancel_and_kill_while_queued_on_the_scheduler_never_start_the_job(
    executor: DaskExecutor, client: Any, tmp_path: Path
) -> None:
    blockers = [start(executor, reference("obey_cancel")) for _ in range(2)]
    for _, events in blockers:
        events.wait_message(lambda m: m == "waiting")
    queued, queued_events = start(executor, marking(tmp_path, sleep=0))
    killed, killed_events = start(executor, marking(tmp_path, sleep=0, name="X"))
    queued.cancel()
    killed.kill()
    outcome = queued_events.outcome()
    assert (outcome.status, outcome.error, outcome.cancelled) == ("failed", "cancelled before it started", True)
    assert queued_events.kinds() == ["exited"]
    assert killed_events.outcome().error == 'Worker for job "X" was killed before it started'
    assert killed_events.kinds() == ["exited"]
    for handle, events in blockers:
        handle.cancel(grace=10)
        assert events.outcome().result == "stopped"
    quiet(client)
    assert count_files(tmp_path) == 0


def test_messages_posted_while_queued_arrive_after_the_start(executor: DaskExecutor) -> None:
    blockers = [start(executor, reference("obey_cancel")) for _ in range(2)]
    for _, events in blockers:
        events.wait_message(lambda m: m == "waiting")
    handle, events = start(executor, script("message.py"))
    handle.post_message("sent while queued")
    for blocker, _ in blockers:
        blocker.cancel(grace=10)
    assert events.outcome().status == "finished"
    assert events.messages() == ["ready", "Worker received: sent while queued", "done"]


def test_a_job_that_ignores_cancel_is_killed_after_the_grace_and_its_process_is_gone(executor: DaskExecutor) -> None:
    handle, events = start(executor, reference("pid_then_sleep", name="X"))
    _, pid = events.wait_message(lambda m: isinstance(m, tuple))
    handle.cancel(grace=0.2)
    outcome = events.outcome(timeout=5)
    assert outcome.cancelled and not outcome.lost
    assert outcome.error == 'Worker for job "X" did not stop within 0.2 s after cancel; killed'
    assert wait_gone([pid], timeout=5) == []


# --- targets the worker may not have ----------------------------------------------------------------


def test_a_script_missing_on_the_worker_fails_naming_the_file_the_worker_and_the_fix(
    executor: DaskExecutor, tmp_path: Path
) -> None:
    path = tmp_path / "not_on_the_worker.py"  # (without ship_scripts the kernel does not look for it)
    _, events = start(executor, OffloadedTask("run-missing-script", "S", "script", str(path)))
    outcome = events.outcome()
    assert outcome.status == "failed" and events.kinds() == ["exited"]
    assert outcome.error is not None
    assert f'the script "{path}" does not exist on the Dask worker tcp://' in outcome.error
    assert "ship_scripts=True" in outcome.error


def test_with_ship_scripts_the_source_travels_with_the_run(client: Any, tmp_path: Path) -> None:
    executor = DaskExecutor(client, ship_scripts=True)
    try:
        path = tmp_path / "shipped.py"
        path.write_text(
            "import sys\nfrom jobmanager_nb import worker\nworker.post_message(('ran', worker.data))\n"
            "raise RuntimeError('from the shipped script')\n"
        )
        _, events = start(executor, OffloadedTask("run-shipped", "S", "script", str(path), data_json="[1, 2]"))
        path.unlink()  # read at submit: the worker never needs the file
        outcome = events.outcome()
        assert events.messages() == [("ran", [1, 2])]
        assert outcome.status == "failed" and outcome.error is not None
        assert 'shipped.py", line 4, in <module>' in outcome.error
        assert outcome.error.endswith("RuntimeError: from the shipped script")

        _, events = start(executor, OffloadedTask("run-gone", "G", "script", str(tmp_path / "gone.py")))
        outcome = events.outcome()
        assert events.kinds() == ["exited"] and "cannot read the script" in (outcome.error or "")

        _, events = start(executor, script("simple.py"))  # the same file on the worker: run in place
        assert events.outcome().status == "finished"
    finally:
        executor.shutdown(timeout=5)


def test_a_reference_that_does_not_import_on_the_worker_says_so(executor: DaskExecutor) -> None:
    task = OffloadedTask("run-noimport", "N", "reference", "no_such_module_for_jobmanager_nb:job")
    _, events = start(executor, task)
    outcome = events.outcome()
    assert events.kinds() == ["exited"] and outcome.error is not None
    assert 'job "N": "no_such_module_for_jobmanager_nb:job" does not import on the Dask worker tcp://' in outcome.error
    assert "No module named 'no_such_module_for_jobmanager_nb'" in outcome.error


# --- versions -------------------------------------------------------------------------------------


def _set_version(version: str) -> str:
    import jobmanager_nb

    previous = str(jobmanager_nb.__version__)
    jobmanager_nb.__version__ = version
    return previous


def test_workers_with_other_versions_are_refused_with_a_clear_error(client: Any) -> None:
    import jobmanager_nb

    ours = jobmanager_nb.__version__
    previous = client.run(_set_version, "0.0.0+skewed")
    try:
        with pytest.raises(RuntimeError) as info:
            DaskExecutor(client)
        message = str(info.value)
        for address in previous:
            assert address in message
        assert f"jobmanager_nb {ours} in the kernel, 0.0.0+skewed on the worker" in message
        assert "Install the same" in message
    finally:
        client.run(_set_version, ours)


def test_a_worker_skewed_after_connecting_fails_the_run_placed_on_it(executor: DaskExecutor, client: Any) -> None:
    import jobmanager_nb

    ours = jobmanager_nb.__version__
    client.run(_set_version, "0.0.0+skewed")
    try:
        _, events = start(executor, reference("noop", name="V"))
        outcome = events.outcome()
    finally:
        client.run(_set_version, ours)
    assert events.kinds() == ["exited"] and outcome.error is not None
    assert outcome.error.startswith('job "V" cannot run on the Dask worker tcp://')
    assert f"jobmanager_nb {ours} in the kernel, 0.0.0+skewed on the worker" in outcome.error


# --- what the executor owns, and shutting down ---------------------------------------------------------


def test_a_client_passed_in_still_works_after_the_executor_and_its_manager_close(client: Any) -> None:
    from jobmanager_nb import JobManager

    executor = DaskExecutor(client)
    manager = JobManager(executor=executor)
    try:
        manager.add_job("jobs.fixture_jobs:add", name="sum", data={"a": 20, "b": 22})
        run = manager.wait("sum", timeout=WAIT)
        assert (run.status, run.result) == ("finished", 42)
    finally:
        manager.close()
    assert client.submit(sum, [1, 2, 3], pure=False).result(timeout=WAIT) == 6  # the manager left it open
    executor.shutdown(timeout=5)
    assert client.status == "running"
    assert client.submit(sum, [4, 5], pure=False).result(timeout=WAIT) == 9


def test_the_managers_timeout_stops_a_dask_run_as_it_stops_a_local_one(client: Any, tmp_path: Path) -> None:
    """timeout= on a job that ignores the "cancel" it gets: killed after kill_grace, ended timed_out, its
    process gone, started once."""
    import psutil
    from polling import wait_until

    from jobmanager_nb import JobFailedError, JobManager

    manager = JobManager(executor=DaskExecutor(client), kill_grace=0.5)
    try:
        manager.add_job("jobs.dask_jobs:mark_start", name="slow", data={"dir": str(tmp_path), "sleep": 60}, timeout=1.0)
        with pytest.raises(JobFailedError) as failed:
            manager.wait("slow", timeout=WAIT)
        run = failed.value.run
        assert run.outcome == "timed_out" and (run.error or "").startswith("timed out after 1 s"), run.error
        assert run.location is not None and run.location.startswith("tcp://")
        (marker,) = tmp_path.iterdir()
        pid = int(marker.read_text())

        def gone() -> bool:
            try:
                return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
            except psutil.NoSuchProcess:
                return True

        assert wait_until(gone, WAIT), f"the timed-out job's process {pid} is still running"
    finally:
        manager.close(timeout=5)


def test_a_cluster_passed_in_stays_open_and_an_address_works_too(cluster: Any, client: Any) -> None:
    for target in (cluster, cluster.scheduler_address):
        executor = DaskExecutor(target)
        try:
            _, events = start(executor, reference("add", data={"a": 1, "b": 1}))
            assert events.outcome().result == 2
        finally:
            executor.shutdown(timeout=5)
        assert cluster.status.name == "running"
        assert client.submit(sum, [1, 1], pure=False).result(timeout=WAIT) == 2


def test_an_executor_without_a_cluster_starts_and_closes_its_own(tmp_path: Path) -> None:
    executor = DaskExecutor()
    own_cluster = executor._own_cluster
    try:
        _, events = start(executor, reference("add", data={"a": 2, "b": 2}))
        assert events.outcome().result == 4
        link = executor.dashboard_link  # its own LocalCluster serves Dask's dashboard
        assert link is not None and link.startswith("http://") and link.endswith("/status"), link
    finally:
        executor.shutdown(timeout=5)
    assert own_cluster is not None and own_cluster.status.name == "closed"
    assert executor.client.status == "closed"
    executor.shutdown(timeout=5)  # twice: harmless
    assert executor.dashboard_link is None or isinstance(executor.dashboard_link, str)


def test_shutdown_cancels_running_jobs_kills_stragglers_and_is_idempotent(client: Any) -> None:
    executor = DaskExecutor(client)
    _, polite = start(executor, reference("obey_cancel"))
    stubborn_handle, stubborn = start(executor, reference("pid_then_sleep", name="X"))
    polite.wait_message(lambda m: m == "waiting")
    _, pid = stubborn.wait_message(lambda m: isinstance(m, tuple))
    _, queued = start(executor, reference("noop"))  # both slots are taken: it waits on the scheduler
    executor.shutdown(timeout=0.5)
    assert polite.outcome(timeout=0).result == "stopped"
    assert stubborn.outcome(timeout=0).error == 'Worker for job "X" did not stop within 0.5 s after cancel; killed'
    assert queued.outcome(timeout=0).error == "cancelled before it started" and queued.kinds() == ["exited"]
    assert wait_gone([pid], timeout=5) == []
    executor.shutdown(timeout=0.5)  # idempotent
    with pytest.raises(RuntimeError, match="shut down"):
        executor.submit(reference("noop"), Recorder())
    assert stubborn_handle.done


def test_the_worker_side_processes_are_shut_down_with_the_worker(client: Any, executor: DaskExecutor) -> None:
    """Each Dask worker keeps one ProcessExecutor for its runs (a worker plugin), made at connect."""

    def has_processes(dask_worker: Any) -> bool:
        return PLUGIN_NAME in dask_worker.plugins

    assert all(client.run(has_processes).values())


def test_a_run_still_ends_lost_when_someone_subscribes_the_all_topic_after_the_executor(
    client: Any, tmp_path: Path
) -> None:
    """The Client keeps one handler per topic: a handler for the scheduler's ``all`` topic set after the
    executor (by the user, by another library) replaces the executor's. A dead worker's run still ends
    lost, and that handler still hears every event."""
    executor = DaskExecutor(client)
    heard: list[Any] = []
    try:
        client.subscribe_topic("all", heard.append)
        _, events = start(executor, marking(tmp_path, name="X"))
        events.wait_message(lambda m: isinstance(m, tuple))
        address = kill_worker_of(client, events)
        outcome = events.outcome()
        assert (outcome.status, outcome.lost) == ("failed", True), outcome.error
        assert outcome.error == f'Worker for job "X" was lost: the Dask worker {address} died while the job ran'
        wait_until(lambda: any(e[1].get("action") == "remove-worker" for e in heard), WAIT)
        quiet(client)
        assert count_files(tmp_path) == 1
        executor.shutdown(timeout=5)
        # That handler stays: the Client's own again, or called by the watcher that another executor
        # on this Client (the module's) still needs.
        handler = client._event_handlers.get("all")
        assert heard.append in (handler, getattr(getattr(handler, "__self__", None), "previous", None))
    finally:
        executor.shutdown(timeout=5)
        if client._event_handlers.get("all") == heard.append:  # (not a watcher the module's executor needs)
            client.unsubscribe_topic("all")


def test_an_asynchronous_client_is_refused_saying_what_to_pass_instead(cluster: Any) -> None:
    async def refused() -> str:
        async with distributed.Client(cluster.scheduler_address, asynchronous=True, set_as_default=False) as ac:
            with pytest.raises(TypeError) as info:
                DaskExecutor(ac)
            return str(info.value)

    message = asyncio.run(refused())
    assert "synchronous Client" in message and "asynchronous=True" in message
    assert f'DaskExecutor("{cluster.scheduler_address}")' in message


class SlowListener(Recorder):
    """A listener that takes ``seconds`` over the ``started`` event (a busy kernel's manager)."""

    def __init__(self, seconds: float) -> None:
        super().__init__()
        self.seconds = seconds

    def __call__(self, event: Any) -> None:
        if event.kind == "started":
            time.sleep(self.seconds)  # the slowness under test
        super().__call__(event)


def test_a_slow_listener_is_not_taken_for_a_silent_scheduler(client: Any) -> None:
    """The scheduler is judged silent only when a probe went unanswered for the connect timeout, not
    when the executor's own thread was busy in a listener for that long."""
    import dask

    with dask.config.set({"distributed.comm.timeouts.connect": "1s"}):
        executor = DaskExecutor(client)
    try:
        events = SlowListener(2.5)
        handle = executor.submit(reference("obey_cancel"), events)
        events.wait_message(lambda m: m == "waiting")
        handle.cancel(grace=10)
        outcome = events.outcome()
        assert (outcome.status, outcome.result, outcome.lost) == ("finished", "stopped", False), outcome.error
    finally:
        executor.shutdown(timeout=5)


def test_every_version_that_must_match_is_compared() -> None:
    """Python's minor version, jobmanager_nb's and cloudpickle's: a difference in any is named, with both sides."""
    from jobmanager_nb.executors import dask_worker

    kernel = dask_worker.versions()
    assert set(kernel) == {"Python", "jobmanager_nb", "cloudpickle"}
    assert dask_worker.version_problems(kernel, dict(kernel)) == []
    for name in kernel:
        worker = {**kernel, name: "0.0.0+other"}
        assert dask_worker.version_problems(kernel, worker) == [
            f"{name} {kernel[name]} in the kernel, 0.0.0+other on the worker"
        ]
