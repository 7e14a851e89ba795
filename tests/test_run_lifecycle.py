"""The run lifecycle under the paths users take every day: Cancel, the Interrupt button, close(), a
failing store, endless sessions. One test (or a few) per defect of the lifecycle issue, through the
public API; each failed on the code before the run state machine."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import gc
import os
import signal
import sys
import threading
import time
import tracemalloc
import weakref
from datetime import timedelta
from pathlib import Path

import pytest
from store_faults import write_fault

from jobmanager_nb import (
    FakeClock,
    JobFailedError,
    JobManager,
    JobManagerError,
    JobNotFoundError,
    MemoryStore,
    OneOffAlreadyExecutedError,
    StoreError,
    TinyDBStore,
)
from jobmanager_nb.events import Event
from jobmanager_nb.executors.local import ProcessExecutor
from jobmanager_nb.state import HISTORY_EXC_LIMIT, HISTORY_LIMIT, HISTORY_OUTPUT_LIMIT, OUTPUT_LIMIT

JOBS = Path(__file__).resolve().parent / "manager_jobs"
sys.path.insert(0, str(JOBS))
import lifecycle_jobs  # noqa: E402
import mjobs  # noqa: E402

WAIT = 30.0


def ended_run(manager: JobManager, name: str, timeout: float = WAIT):  # type: ignore[no-untyped-def]
    """The run ``manager.wait`` reports, failed or not."""
    try:
        return manager.wait(name, timeout)
    except JobFailedError as failed:
        return failed.run


# 1. Cancel that does not cancel ------------------------------------------------------------------


def test_a_run_cancelled_while_queued_in_a_busy_executor_never_runs(tmp_path: Path) -> None:
    executor = ProcessExecutor(max_workers=1)
    ready = threading.Event()
    m = JobManager(executor=executor, worker_message_handler=lambda message: ready.set())
    flag, marker = tmp_path / "flag", tmp_path / "marker"
    try:
        m.add_job(lifecycle_jobs.hold, name="holder", data={"flag": str(flag)})
        assert ready.wait(WAIT)
        m.add_job(lifecycle_jobs.touch, name="toucher", data={"marker": str(marker)})
        assert m.cancel("toucher") is True
        run = ended_run(m, "toucher")
        assert (run.status, run.outcome, run.cancelled) == ("failed", "cancelled", True)
        flag.touch()  # the slot frees up: a cancelled run must not take it
        assert m.wait("holder", WAIT).result == "released"
        m.wait_all(WAIT)
    finally:
        m.close(timeout=10)
        executor.shutdown(timeout=10)
    assert not marker.exists()


def test_remove_job_right_after_add_job_means_the_job_never_runs(tmp_path: Path) -> None:
    """A run removed before its worker was told to go never runs; one that had started is cancelled. (The
    executor may start a run in the moment between the two calls: then it shows as started.)"""
    m = JobManager()
    try:
        for i in range(20):
            m.add_job(lifecycle_jobs.touch, name=f"touch{i}", data={"marker": str(tmp_path / f"touch{i}")})
            m.remove_job(f"touch{i}")
        m.wait_all(WAIT)
    finally:
        m.close(timeout=10)  # the executor's processes are gone after this: a late start would show now
    runs = m.runs()
    assert len(runs) == 20 and {run.outcome for run in runs} <= {"cancelled", "finished"}
    never_started = [run.name for run in runs if run.started_at is None]
    assert never_started, "every run started before its remove_job: the gate was never exercised"
    assert [name for name in never_started if (tmp_path / name).exists()] == []


def test_removing_a_job_during_its_retry_backoff_drops_the_next_attempt() -> None:
    clock = FakeClock()
    m = JobManager(clock=clock, inline_concurrency=1, retry_backoff=5)
    attempts: list[int] = []

    def flaky() -> None:
        attempts.append(1)
        raise RuntimeError("fails every time")

    try:
        m.add_job(flaky, offloaded=False, retries=3)
        assert wait_for(lambda: m.job("flaky").status == "retrying")
        m.remove_job("flaky")
        m.wait_all(WAIT)
        run = m.runs("flaky")[-1]
        assert run.outcome == "cancelled" and "during its retry backoff" in (run.error or "")
        # The backoff ends; a sentinel due just after it runs behind any retry on the one-slot queue.
        m.add_job(lambda: "sentinel", name="sentinel", offloaded=False, at=clock.now() + timedelta(seconds=6))
        clock.advance(timedelta(seconds=7))
        assert m.wait("sentinel", WAIT).result == "sentinel"
        assert attempts == [1]
    finally:
        m.close(timeout=5)


def wait_for(predicate, timeout: float = WAIT) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


# 2. One Interrupt breaks the manager for good -----------------------------------------------------


def test_an_interrupt_in_a_synchronous_inline_job_ends_that_run_and_the_queue_goes_on() -> None:
    async def main() -> None:
        m = JobManager()  # the home loop is this one, on the main thread: like a kernel's

        def interrupted() -> None:
            raise KeyboardInterrupt  # what the Interrupt button raises in the code running in the kernel

        try:
            m.add_job(interrupted, offloaded=False)
            with pytest.raises(KeyboardInterrupt):
                m.wait("interrupted", WAIT)  # the cell waiting for it is interrupted too
            (run,) = m.runs("interrupted")
            assert run.outcome == "cancelled" and "KeyboardInterrupt" in (run.error or "")
            m.add_job(lambda: 42, name="after", offloaded=False)
            assert (await m.await_completion("after", WAIT)).result == 42
            m.add_job(mjobs.add, data={"a": 1, "b": 2})
            assert (await m.await_completion("add", WAIT)).result == 3
        finally:
            await m.shutdown(timeout=10)

    asyncio.run(main())


def test_an_interrupt_in_an_inline_job_on_the_private_loop_never_stops_that_loop() -> None:
    m = JobManager()  # no running loop here: inline jobs run on the manager's own loop thread
    try:

        def interrupted() -> None:
            raise KeyboardInterrupt

        m.add_job(interrupted, offloaded=False)
        assert ended_run(m, "interrupted").outcome == "cancelled"
        m.add_job(lambda: "still here", name="after", offloaded=False)
        assert m.wait("after", WAIT).result == "still here"
    finally:
        m.close(timeout=5)


# 3. An Interrupt during event delivery wedges the bus ----------------------------------------------


def test_an_interrupt_in_a_subscriber_does_not_stop_delivery_waits_or_close() -> None:
    m = JobManager()
    seen: list[str] = []
    interrupted: list[bool] = []

    def subscriber(event: Event) -> None:
        if event.kind == "started" and not interrupted:
            interrupted.append(True)
            raise KeyboardInterrupt
        seen.append(event.kind)

    m.subscribe(subscriber)
    m.add_job(lambda: 1, name="first", offloaded=False)
    assert m.wait("first", WAIT).result == 1
    m.add_job(lambda: 2, name="second", offloaded=False)
    assert m.wait("second", WAIT).result == 2
    assert m.flush_events(WAIT)
    assert interrupted and seen.count("finished") == 2
    m.close(timeout=5)


def test_a_real_sigint_while_a_printing_job_runs_and_a_slow_subscriber_listens_leaves_all_working() -> None:
    async def main() -> None:
        signal.signal(signal.SIGINT, signal.default_int_handler)  # as ipykernel does while a cell runs
        m = JobManager()
        started = threading.Event()

        def slow_subscriber(event: Event) -> None:
            if event.kind == "output":
                time.sleep(0.0001)

        def printer() -> None:
            started.set()
            for i in range(2_000_000):
                print(i)

        def interrupt() -> None:
            assert started.wait(WAIT)
            os.kill(os.getpid(), signal.SIGINT)

        m.subscribe(slow_subscriber)
        try:
            m.add_job(printer, offloaded=False)
            threading.Thread(target=interrupt).start()
            # The Interrupt reaches the waiting cell, as itself or as the cancelled run it ended.
            with pytest.raises((KeyboardInterrupt, JobFailedError)):
                m.wait("printer", WAIT)
            assert m.job("printer").status == "cancelled"
            m.add_job(lambda: "inline after", name="inline", offloaded=False)
            m.add_job(mjobs.add, data={"a": 2, "b": 2})
            assert (await m.await_completion("inline", WAIT)).result == "inline after"
            assert (await m.await_completion("add", WAIT)).result == 4
            await m.all_settled(WAIT)
        finally:
            await m.shutdown(timeout=10)

    asyncio.run(main())


# 4. close() during a retry backoff ---------------------------------------------------------------


def test_close_during_a_retry_backoff_returns_at_once_and_later_waits_return() -> None:
    m = JobManager(retry_backoff=60)

    def flaky() -> None:
        raise RuntimeError("fails")

    m.add_job(flaky, offloaded=False, retries=2)
    assert wait_for(lambda: m.job("flaky").status == "retrying")
    started = time.monotonic()
    m.close(timeout=5)  # no TimeoutError: nothing runs during a backoff
    assert time.monotonic() - started < 5
    run = ended_run(m, "flaky", timeout=5)
    assert run.outcome == "cancelled" and run.attempt == 1
    m.wait_all(timeout=5)


# 5. A stale waiter blocks the others -------------------------------------------------------------


def test_a_timed_out_wait_in_a_finished_asyncio_run_does_not_block_the_other_waiters() -> None:
    m = JobManager()
    gate = threading.Event()
    try:
        m.add_job(lambda: gate.wait(WAIT), name="slow", offloaded=False)

        async def impatient() -> None:
            with pytest.raises(TimeoutError):
                await m.await_completion("slow", timeout=0.01)

        asyncio.run(impatient())  # its loop is closed now
        heard: list[object] = []
        waiter = threading.Thread(target=lambda: heard.append(m.wait("slow", WAIT).result))
        waiter.start()
        all_waiter = threading.Thread(target=lambda: heard.append(m.wait_all(WAIT)))
        all_waiter.start()
        gate.set()
        waiter.join(WAIT)
        all_waiter.join(WAIT)
        assert sorted(map(str, heard)) == ["None", "True"]
    finally:
        m.close(timeout=5)


# 6. A store write that fails at the end of a one-off ---------------------------------------------


def test_a_one_off_whose_finished_record_cannot_be_written_is_never_runnable_again(tmp_path: Path) -> None:
    with write_fault(errno.ENOSPC, tmp_path) as fault:
        path = fault.folder / "jobs.json"
        m = JobManager(path)

        def succeeds_then_the_disk_fills() -> str:
            fault.start()
            return "done"

        closed = False
        try:
            m.add_one_off_job(succeeds_then_the_disk_fills, name="refresh", offloaded=False)
            with pytest.raises(StoreError) as raised:  # no error handler: the wait says what went wrong
                m.wait("refresh", WAIT)
            assert str(path) in str(raised.value) and "No space left on device" in str(raised.value)
            assert m.job("refresh").last_run.outcome == "finished"  # the job itself succeeded
            with pytest.raises(StoreError):  # waiting on the one-off says so too, instead of polling for ever
                m.wait_one_off("refresh", timeout=WAIT)
            assert m.has_executed_successfully("refresh")
            with pytest.raises(OneOffAlreadyExecutedError):
                m.add_one_off_job(succeeds_then_the_disk_fills, name="refresh", offloaded=False)
            fault.clear()
            m.close(timeout=5)  # at the latest, close() writes what the store refused
            closed = True
        finally:
            fault.clear()
            if not closed:
                m.close(timeout=5)
        assert TinyDBStore(path).get("refresh").status == "finished"  # type: ignore[union-attr]
        other = JobManager(path)  # a later kernel: the one-off is done, not rerunnable
        try:
            with pytest.raises(OneOffAlreadyExecutedError):
                other.add_one_off_job(succeeds_then_the_disk_fills, name="refresh", offloaded=False)
        finally:
            other.close(timeout=5)


def test_an_error_handler_hears_of_a_record_that_could_not_be_written(tmp_path: Path) -> None:
    heard: list[tuple[BaseException, dict[str, object]]] = []
    told = threading.Event()

    def on_error(error: BaseException, meta: dict[str, object]) -> None:
        heard.append((error, meta))
        told.set()

    with write_fault(errno.EACCES, tmp_path) as fault:
        m = JobManager(fault.folder / "jobs.json", error_handler=on_error)
        try:

            def succeeds_then_the_folder_is_locked() -> str:
                fault.start()
                return "done"

            m.add_one_off_job(succeeds_then_the_folder_is_locked, name="report", offloaded=False)
            assert m.wait("report", WAIT).result == "done"  # the handler heard of it: the wait succeeds
            assert told.wait(WAIT)
            ((error, meta),) = heard
            assert isinstance(error, StoreError) and meta["store_error"] is error and meta["name"] == "report"
            assert m.wait_one_off("report", timeout=WAIT).status == "finished"  # from memory: the file says started
        finally:
            fault.clear()
            m.close(timeout=5)
        assert TinyDBStore(fault.folder / "jobs.json").get("report").status == "finished"  # type: ignore[union-attr]


# A worker killed by something nobody asked for -------------------------------------------------


def test_a_worker_killed_from_outside_ends_its_run_as_lost() -> None:
    pids: list[int] = []
    posted = threading.Event()

    def on_message(message: dict[str, object]) -> None:
        pids.append(int(message["message"]))  # type: ignore[call-overload]
        posted.set()

    m = JobManager(worker_message_handler=on_message)
    try:
        m.add_job(lifecycle_jobs.post_pid_then_sleep)
        assert posted.wait(WAIT)
        os.kill(pids[0], signal.SIGKILL)
        run = ended_run(m, "post_pid_then_sleep")
        assert run.outcome == "lost" and run.status == "failed" and "lost" in (run.error or "")
    finally:
        m.close(timeout=10)


def test_a_job_that_returns_cleanly_after_seeing_its_cancel_ends_cancelled() -> None:
    ready = threading.Event()
    m = JobManager(worker_message_handler=lambda message: ready.set())
    try:
        m.add_job(lifecycle_jobs.stop_when_asked)
        assert ready.wait(WAIT)
        assert m.cancel("stop_when_asked") is True
        run = ended_run(m, "stop_when_asked")
        assert (run.outcome, run.result, m.job("stop_when_asked").status) == ("cancelled", "stopped", "cancelled")

        async def stops_when_cancelled() -> str:
            try:
                await asyncio.sleep(60)
            except asyncio.CancelledError:
                return "cleaned up"
            return "slept"

        m.add_job(stops_when_cancelled, offloaded=False)
        assert wait_for(lambda: m.job("stops_when_cancelled").status == "started")
        assert m.cancel("stops_when_cancelled") is True
        assert ended_run(m, "stops_when_cancelled").outcome == "cancelled"
    finally:
        m.close(timeout=10)


# Found in review -----------------------------------------------------------------------------------


class InterruptingStore(MemoryStore):
    """A memory store whose next write of ``status`` raises KeyboardInterrupt (an Interrupt landing while a
    record is written), once."""

    def __init__(self, status: str) -> None:
        super().__init__()
        self.status = status

    def _interrupt(self, status: str) -> None:
        if self.status == status:
            self.status = ""
            raise KeyboardInterrupt

    def mark_started(self, name, owner):  # type: ignore[no-untyped-def]
        self._interrupt("started")
        return super().mark_started(name, owner)

    def mark_finished(self, name):  # type: ignore[no-untyped-def]
        self._interrupt("finished")
        return super().mark_finished(name)


def test_an_interrupt_while_an_inline_one_offs_start_is_recorded_leaves_the_queue_working() -> None:
    m = JobManager(InterruptingStore("started"))
    try:
        m.add_one_off_job(lambda: "never", name="first", offloaded=False)
        run = ended_run(m, "first")
        assert run.outcome == "cancelled" and run.started_at is None
        m.add_job(lambda: "after", name="after", offloaded=False)
        assert m.wait("after", WAIT).result == "after"
    finally:
        m.close(timeout=5)


def test_an_interrupt_while_a_one_offs_ending_is_recorded_still_releases_it_and_writes_it_later() -> None:
    store = InterruptingStore("finished")
    m = JobManager(store)
    try:
        m.add_one_off_job(lambda: "done", name="once", offloaded=False)
        m.wait_all(WAIT)  # released although the write was interrupted
        assert m.job("once").last_run.outcome == "finished"
        assert m.has_executed_successfully("once")
    finally:
        m.close(timeout=5)  # writes the kept ending
    assert store.get("once").status == "finished"  # type: ignore[union-attr]


def test_a_one_off_whose_code_returned_after_a_cancel_is_recorded_finished(tmp_path: Path) -> None:
    """Shown as cancelled (it stopped when asked), recorded finished (its code completed): never run twice."""
    path = tmp_path / "jobs.json"
    ready = threading.Event()
    with JobManager(path, worker_message_handler=lambda message: ready.set()) as m:
        m.add_one_off_job(lifecycle_jobs.stop_when_asked, name="migrate")
        assert ready.wait(WAIT)
        m.cancel("migrate")
        run = ended_run(m, "migrate")
        assert (run.outcome, run.result) == ("cancelled", "stopped")
    assert TinyDBStore(path).get("migrate").status == "finished"  # type: ignore[union-attr]
    with JobManager(path) as later, pytest.raises(OneOffAlreadyExecutedError):
        later.add_one_off_job(lifecycle_jobs.stop_when_asked, name="migrate")


def test_close_again_writes_what_the_store_refused_the_first_time(tmp_path: Path) -> None:
    with write_fault(errno.ENOSPC, tmp_path) as fault:
        path = fault.folder / "jobs.json"
        m = JobManager(path, error_handler=lambda error, meta: None)

        def fills_the_disk() -> str:
            fault.start()
            return "done"

        m.add_one_off_job(fills_the_disk, name="report", offloaded=False)
        assert m.wait("report", WAIT).result == "done"
        with pytest.raises(StoreError, match="call close\\(\\) again"):
            m.close(timeout=5)
        fault.clear()
        m.close(timeout=5)
        assert TinyDBStore(path).get("report").status == "finished"  # type: ignore[union-attr]


def test_wait_all_in_a_subscriber_is_refused_instead_of_wedging_the_events() -> None:
    m = JobManager()
    raised: list[BaseException] = []
    told = threading.Event()

    def subscriber(event: Event) -> None:
        if event.kind == "finished":
            try:
                m.wait_all(timeout=1)
            except JobManagerError as exc:
                raised.append(exc)
            told.set()

    m.subscribe(subscriber)
    try:
        m.add_job(lambda: None, name="one", offloaded=False)
        assert told.wait(WAIT) and "wait(name)" in str(raised[0])
        m.add_job(lambda: 2, name="two", offloaded=False)
        assert m.wait("two", WAIT).result == 2  # the events still flow
    finally:
        m.close(timeout=5)


def test_the_managers_own_failure_log_is_not_captured_into_the_failed_runs_output() -> None:
    import logging

    handler = logging.StreamHandler(sys.stderr)  # as a notebook's logging setup writes to stderr
    logging.getLogger("jobmanager_nb").addHandler(handler)
    m = JobManager()
    try:

        def fails() -> None:
            print("the job's own line")
            raise ValueError("boom")

        m.add_job(fails, offloaded=False)
        run = ended_run(m, "fails")
        assert run.output == "the job's own line\n"
    finally:
        logging.getLogger("jobmanager_nb").removeHandler(handler)
        m.close(timeout=5)


# 7. Output past the cap turns quadratic ----------------------------------------------------------


def test_a_job_printing_550k_lines_keeps_the_newest_output_in_linear_time() -> None:
    m = JobManager()
    try:

        def printer() -> None:
            for i in range(550_000):
                print(i)

        m.add_job(printer, offloaded=False)
        run = m.wait("printer", timeout=20)  # the list-based buffer took ~30 s of the kernel's thread
        assert run.output.endswith("549999\n")
        kept = run.output.split("\n", 1)[1]
        assert run.output.startswith("[") and "earlier characters of output were dropped" in run.output
        assert OUTPUT_LIMIT - 10 <= len(kept) <= OUTPUT_LIMIT
    finally:
        m.close(timeout=5)


# 8. History keeps failed runs alive --------------------------------------------------------------


class Payload:
    def __init__(self) -> None:
        self.data = bytearray(20_000_000)


def test_only_the_latest_failed_run_of_a_job_keeps_its_exception_and_frames() -> None:
    m = JobManager()
    refs: list[weakref.ref[Payload]] = []

    def failing() -> None:
        local = Payload()
        refs.append(weakref.ref(local))
        raise ValueError("boom")

    try:
        for _ in range(15):
            m.add_job(failing, offloaded=False)
            with contextlib.suppress(JobFailedError):
                m.wait("failing", WAIT)
        gc.collect()
        assert sum(ref() is not None for ref in refs) == 1  # the latest run keeps its exception
        runs = m.runs("failing")
        assert len(runs) == 15 and all("ValueError: boom" in (run.error or "") for run in runs)
    finally:
        m.close(timeout=5)


def test_failed_runs_of_many_jobs_keep_only_the_latest_exceptions_and_frames() -> None:
    m = JobManager(log_failures=False)
    refs: list[weakref.ref[Payload]] = []

    def failing() -> None:
        local = Payload()
        refs.append(weakref.ref(local))
        raise ValueError("boom")

    try:
        for i in range(HISTORY_EXC_LIMIT + 5):  # one name each: every run is its job's last run
            m.add_job(failing, name=f"failing-{i}", offloaded=False)
            m.wait_all(WAIT)
        gc.collect()
        alive = [ref() is not None for ref in refs]
        assert sum(alive) == HISTORY_EXC_LIMIT and alive[-HISTORY_EXC_LIMIT:] == [True] * HISTORY_EXC_LIMIT
        with pytest.raises(JobFailedError) as failed:
            m.wait(f"failing-{HISTORY_EXC_LIMIT + 4}", WAIT)
        assert isinstance(failed.value.__cause__, ValueError)  # the newest still has its exception
        with pytest.raises(JobFailedError) as failed:
            m.wait("failing-0", WAIT)
        assert failed.value.__cause__ is None and "ValueError: boom" in (failed.value.run.error or "")
    finally:
        m.close(timeout=5)


def test_runs_that_print_a_line_each_do_not_pile_up_in_the_output_budget() -> None:
    m = JobManager()

    def chatty() -> None:
        print("refreshed")

    def batch(runs: int) -> None:
        for _ in range(runs):
            m.add_job(chatty, offloaded=False)
        m.wait_all(WAIT)

    try:
        tracemalloc.start()  # before the warm-up, so the runs it keeps are traced too (and their successors)
        batch(HISTORY_LIMIT + 100)  # the history is full
        gc.collect()
        before = tracemalloc.take_snapshot()
        batch(2 * HISTORY_LIMIT)
        gc.collect()
        grown = sum(stat.size_diff for stat in tracemalloc.take_snapshot().compare_to(before, "filename"))
        tracemalloc.stop()
        assert grown < 500_000, f"{grown:,} bytes kept by {2 * HISTORY_LIMIT:,} more runs that printed a line"
        assert m.runs("chatty", limit=1)[0].output == "refreshed\n"
    finally:
        m.close(timeout=5)


def test_output_kept_across_the_history_is_capped() -> None:
    m = JobManager()
    try:

        def printer(digit: str):  # type: ignore[no-untyped-def]
            return lambda: print(digit * 999_999)

        for i in range(60):
            m.add_job(printer(str(i % 10)), name="printer", offloaded=False)
            m.wait("printer", WAIT)
        runs = m.runs("printer")
        kept = sum(len(run.output) for run in runs)
        assert len(runs) == 60 and kept <= HISTORY_OUTPUT_LIMIT + 60 * 100
        assert runs[-1].output == "9" * 999_999 + "\n"  # the newest run keeps its output whole
        assert "were dropped" in runs[0].output
    finally:
        m.close(timeout=5)


# 9. A synchronous inline job that waits for another inline job ------------------------------------


def test_a_synchronous_inline_job_waiting_for_an_inline_job_gets_an_error_at_once() -> None:
    m = JobManager()
    try:

        def outer() -> object:
            m.add_job(lambda: "inner ran", name="inner", offloaded=False)
            return m.wait("inner")

        m.add_job(outer, offloaded=False)
        run = ended_run(m, "outer")
        assert run.outcome == "failed" and "JobManagerError" in (run.error or "")
        assert "async def" in (run.error or "") and "offloaded=True" in (run.error or "")
        assert m.wait("inner", WAIT).result == "inner ran"
    finally:
        m.close(timeout=5)


def test_a_synchronous_inline_job_may_still_wait_for_an_offloaded_job() -> None:
    m = JobManager()
    try:

        def outer() -> object:
            m.add_job(mjobs.add, data={"a": 20, "b": 22})
            return m.wait("add", WAIT).result

        m.add_job(outer, offloaded=False)
        assert m.wait("outer", WAIT).result == 42
    finally:
        m.close(timeout=5)


# 11. Timeouts are mislabelled ---------------------------------------------------------------------


def test_a_retry_after_a_timeout_that_fails_on_its_own_is_not_called_timed_out() -> None:
    m = JobManager(kill_grace=0.2, retry_backoff=0.01)
    try:
        m.add_job(lifecycle_jobs.slow_then_value_error, timeout=0.5, retries=1)
        run = ended_run(m, "slow_then_value_error")
        assert run.attempt == 2 and run.outcome == "failed"
        assert "ValueError: the second attempt's own error" in (run.error or "")
        assert not (run.error or "").startswith("timed out")
    finally:
        m.close(timeout=10)


def test_a_jobs_own_timeout_error_is_a_failure_with_its_traceback() -> None:
    m = JobManager()
    try:

        async def query() -> None:
            raise TimeoutError("the database did not answer")

        m.add_job(query, offloaded=False, timeout=30)
        inline = ended_run(m, "query")
        assert inline.outcome == "failed" and "TimeoutError: the database did not answer" in (inline.error or "")
        assert "in query" in (inline.error or "")
        m.add_job(lifecycle_jobs.own_timeout, timeout=30)
        offloaded = ended_run(m, "own_timeout")
        assert offloaded.outcome == "failed" and not (offloaded.error or "").startswith("timed out")
        assert "TimeoutError: the database did not answer" in (offloaded.error or "")
    finally:
        m.close(timeout=10)


def test_an_offloaded_job_stopped_by_its_timeout_is_timed_out_even_when_it_stops_cleanly() -> None:
    m = JobManager(kill_grace=5)
    try:
        m.add_job(lifecycle_jobs.stop_when_asked, timeout=0.3)
        run = ended_run(m, "stop_when_asked")
        assert run.outcome == "timed_out" and (run.error or "").startswith("timed out after 0.3 s")
    finally:
        m.close(timeout=10)


def test_the_managers_own_timeout_is_labelled_timed_out() -> None:
    m = JobManager()
    try:

        async def sleepy() -> None:
            await asyncio.sleep(60)

        m.add_job(sleepy, offloaded=False, timeout=0.05)
        run = ended_run(m, "sleepy")
        assert run.outcome == "timed_out" and run.error == "timed out after 0.05 s"
    finally:
        m.close(timeout=5)


# 12. wait() on a name never registered; timed-out waits leave callbacks behind -----------------------


def test_waiting_without_a_timeout_for_a_name_never_added_raises_at_once() -> None:
    m = JobManager()
    try:
        m.add_job(lambda: None, name="refresh", offloaded=False)
        outcome: list[BaseException] = []

        def typo() -> None:
            try:
                m.wait("refersh")
            except BaseException as exc:
                outcome.append(exc)

        thread = threading.Thread(target=typo, daemon=True)
        thread.start()
        thread.join(WAIT)
        assert not thread.is_alive(), "wait() on an unknown name blocked"
        (error,) = outcome
        assert isinstance(error, JobNotFoundError) and "refersh" in str(error) and "refresh" in str(error)
        assert "timeout=" in str(error)
        with pytest.raises(TimeoutError):
            m.wait("added-later", timeout=0.01)  # with a timeout it may wait for a job added later
    finally:
        m.close(timeout=5)


def test_twenty_thousand_timed_out_waits_leave_nothing_behind() -> None:
    clock = FakeClock()
    m = JobManager(clock=clock)
    try:
        m.add_job(lambda: None, name="nightly", at="every day", offloaded=False)
        with pytest.raises(TimeoutError):
            m.wait("nightly", timeout=0)  # warm up
        tracemalloc.start()
        before = tracemalloc.take_snapshot()
        for _ in range(20_000):
            with pytest.raises(TimeoutError):
                m.wait("nightly", timeout=0)
        gc.collect()
        grown = sum(stat.size_diff for stat in tracemalloc.take_snapshot().compare_to(before, "filename"))
        tracemalloc.stop()
        assert grown < 1_000_000, f"{grown:,} bytes kept by 20,000 timed-out waits"
    finally:
        m.close(timeout=5)


# Smaller ones -------------------------------------------------------------------------------------


def test_a_job_in_its_retry_backoff_says_retrying_and_when() -> None:
    clock = FakeClock()
    m = JobManager(clock=clock, retry_backoff=4)

    def flaky() -> None:
        raise RuntimeError("fails")

    try:
        m.add_job(flaky, offloaded=False, retries=1)
        assert wait_for(lambda: m.job("flaky").status == "retrying")
        current = m.job("flaky").current_run
        assert current is not None and current.phase == "retrying"
        assert current.retry_at is not None and current.retry_at - clock.now() == timedelta(seconds=4)
        clock.advance(timedelta(seconds=4))
        run = ended_run(m, "flaky")
        assert run.attempt == 2 and run.outcome == "failed" and m.job("flaky").status == "failed"
    finally:
        m.close(timeout=5)


def test_a_subscriber_that_waits_for_an_offloaded_job_stalls_no_worker() -> None:
    m = JobManager()
    heard: list[object] = []
    done = threading.Event()

    def subscriber(event: Event) -> None:
        if event.kind == "started" and event.name == "add":
            heard.append(m.wait("add", WAIT).result)  # blocks this (the event) thread only
            done.set()

    m.subscribe(subscriber)
    try:
        m.add_job(mjobs.add, data={"a": 1, "b": 1})
        assert done.wait(WAIT) and heard == [2]
    finally:
        m.close(timeout=10)


def test_an_error_handler_that_waits_for_another_offloaded_job_stalls_no_worker() -> None:
    heard: list[object] = []
    done = threading.Event()
    m: JobManager

    def on_error(error: BaseException, meta: dict[str, object]) -> None:
        m.add_job(mjobs.add, data={"a": 2, "b": 3})
        heard.append(m.wait("add", WAIT).result)
        done.set()

    m = JobManager(error_handler=on_error)
    try:
        m.add_job(mjobs.fail)
        with pytest.raises(JobFailedError):
            m.wait("fail", WAIT)
        assert done.wait(WAIT) and heard == [5]
    finally:
        m.close(timeout=10)


def test_close_leaves_a_callers_executor_running() -> None:
    executor = ProcessExecutor()
    m = JobManager(executor=executor)
    m.add_job(mjobs.add, data={"a": 1, "b": 2})
    assert m.wait("add", WAIT).result == 3
    m.close(timeout=10)
    other = JobManager(executor=executor)  # still usable by another manager
    try:
        other.add_job(mjobs.add, data={"a": 3, "b": 4})
        assert other.wait("add", WAIT).result == 7
    finally:
        other.close(timeout=10)
        executor.shutdown(timeout=10)


def test_waits_for_a_run_that_can_no_longer_come_end_when_the_manager_closes() -> None:
    m = JobManager()
    m.add_job(lambda: None, name="nightly", at="every day", offloaded=False)
    raised: list[BaseException] = []

    def waiter() -> None:
        try:
            m.wait("nightly", WAIT)
        except BaseException as exc:
            raised.append(exc)

    thread = threading.Thread(target=waiter)
    thread.start()
    assert wait_for(lambda: bool(m._next_waiters))
    m.close(timeout=5)
    thread.join(WAIT)
    (error,) = raised
    assert isinstance(error, JobManagerError) and "shut down" in str(error)
