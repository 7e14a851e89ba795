"""JobManager with inline jobs: Ghost's inline cases (ghost-semantics §4) and the fixed behaviours."""

from __future__ import annotations

import asyncio
import logging
import re
import threading
import time
from datetime import timedelta

import pytest
from polling import wait_until

import jobmanager_nb
from jobmanager_nb import (
    DuplicateJobError,
    FakeClock,
    InvalidScheduleError,
    JobConfigError,
    JobFailedError,
    JobManager,
    JobNotFoundError,
    JobReferenceError,
    OneOffAlreadyExecutedError,
    current_run,
)

WAIT = 10.0


class Ticks:
    """An inline job that records when each run was due, and lets the test wait for the next run."""

    def __init__(self) -> None:
        self.fired: list = []
        self._ran = threading.Semaphore(0)

    def __call__(self) -> None:
        self.fired.append(current_run().scheduled_for)
        self._ran.release()

    def next_run(self) -> bool:
        return self._ran.acquire(timeout=WAIT)


@pytest.fixture
def manager():
    m = JobManager()
    yield m
    m.close(timeout=5)


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def fake_manager(clock):
    m = JobManager(clock=clock)
    yield m
    m.close(timeout=5)


def test_public_interface_exists(manager):
    for name in (
        "add_job",
        "add_one_off_job",
        "has_executed_successfully",
        "await_completion",
        "await_one_off_completion",
        "all_settled",
        "remove_job",
        "shutdown",
        "wait",
        "wait_all",
        "close",
        "run_now",
        "pause",
        "resume",
        "post_message",
        "subscribe",
    ):
        assert callable(getattr(manager, name)), name


def test_inline_job_receives_its_data(manager):
    seen = []
    release = threading.Event()

    def job(data):
        release.wait(WAIT)
        seen.append(data)

    manager.add_job(job, data="test data", offloaded=False)
    assert manager.job("job").status in ("queued", "started")  # busy right after adding
    release.set()
    run = manager.wait("job", timeout=WAIT)
    assert seen == ["test data"]
    assert (run.name, run.kind, run.status) == ("job", "inline", "finished")
    assert run.started_at is not None and run.finished_at is not None
    assert run.started_at <= run.finished_at
    manager.wait_all(timeout=WAIT)
    assert manager.job("job").status == "finished"


def test_function_without_parameter_is_called_without_data(manager):
    calls = []
    manager.add_job(lambda: calls.append(1), name="no-arg", offloaded=False)
    manager.wait("no-arg", timeout=WAIT)
    assert calls == [1]


def test_data_for_a_function_without_parameter_is_refused(manager):
    def no_arg():
        pass

    with pytest.raises(JobConfigError, match="takes no argument"):
        manager.add_job(no_arg, data={"x": 1}, offloaded=False)


def test_failing_unnamed_inline_job_touches_no_record(manager):
    errors = []
    m = JobManager(error_handler=lambda error, meta: errors.append((error, meta)))
    try:

        def boom():
            raise ValueError("inline failure")

        m.add_job(boom, offloaded=False)
        with pytest.raises(JobFailedError) as info:
            m.wait("boom", timeout=WAIT)
        assert isinstance(info.value.__cause__, ValueError)
        assert "inline failure" in info.value.run.error
        assert m.one_off_records() == []
        assert len(errors) == 1 and errors[0][1]["name"] == "boom"
        assert isinstance(errors[0][0], ValueError)
    finally:
        m.close(timeout=5)


def failure_logs(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "jobmanager_nb" and "failed (run" in r.getMessage()]


def test_a_failure_nobody_handles_is_logged_with_its_traceback(manager, caplog):
    def boom():
        raise ValueError("logged failure")

    manager.add_job(boom, offloaded=False)
    with pytest.raises(JobFailedError):
        manager.wait("boom", timeout=WAIT)
    (record,) = failure_logs(caplog)
    message = record.getMessage()
    assert record.levelname == "ERROR" and message.startswith("jobmanager_nb: job 'boom' failed (run ")
    assert "Traceback" in message and "ValueError: logged failure" in message


@pytest.mark.parametrize("options", [{"error_handler": lambda error, meta: None}, {"log_failures": False}])
def test_a_failure_is_not_logged_when_a_handler_hears_of_it_or_logging_is_off(options, caplog):
    with JobManager(**options) as m:
        m.add_job(lambda: 1 / 0, name="boom", offloaded=False)
        with pytest.raises(JobFailedError):
            m.wait("boom", timeout=WAIT)
    assert failure_logs(caplog) == []


def test_a_retried_failure_is_logged_once_and_a_cancelled_run_not_at_all(caplog):
    with JobManager(retry_backoff=0.01) as m:
        attempts = []

        def always():
            attempts.append(current_run().attempt)
            raise RuntimeError("still broken")

        m.add_job(always, offloaded=False, retries=2)
        m.wait_all(timeout=WAIT)
        assert attempts == [1, 2, 3] and len(failure_logs(caplog)) == 1

        started = threading.Event()

        async def forever():
            started.set()
            await asyncio.sleep(3600)

        m.add_job(forever, offloaded=False)
        assert started.wait(WAIT) and m.cancel("forever")
        with pytest.raises(JobFailedError, match="cancelled"):
            m.wait("forever", timeout=WAIT)
    assert len(failure_logs(caplog)) == 1


@pytest.mark.parametrize(
    ("name", "builtin"),
    [
        ("InvalidScheduleError", ValueError),
        ("DuplicateJobError", Exception),
        ("JobNotFoundError", LookupError),
        ("OneOffAlreadyExecutedError", Exception),
        ("JobFailedError", Exception),
        ("JobReferenceError", Exception),
        ("JobConfigError", Exception),
    ],
)
def test_every_error_is_importable_from_the_package_under_job_manager_error(name, builtin):
    error = getattr(jobmanager_nb, name)
    assert name in jobmanager_nb.__all__
    assert issubclass(error, jobmanager_nb.JobManagerError) and issubclass(error, builtin)


def test_error_messages_name_the_job_and_the_fix(manager):
    def noop():
        pass

    def takes(data):
        pass

    manager.add_job(noop, name="tick", at="every 5 minutes", offloaded=False)
    fix = 'A job named "tick" is already registered. Remove it first with remove_job("tick"), pass replace=True'
    with pytest.raises(DuplicateJobError, match=re.escape(fix)):
        manager.add_job(noop, name="tick", at="every 5 minutes", offloaded=False)
    with pytest.raises(JobNotFoundError, match=re.escape('No job named "tock". Known jobs: tick.')):
        manager.remove_job("tock")
    with pytest.raises(InvalidScheduleError, match=re.escape('Invalid schedule format: "every 5 minuets"')):
        manager.add_job(noop, name="typo", at="every 5 minuets", offloaded=False)
    with pytest.raises(JobConfigError, match=r'Job "noop": timeout= .* Make it async, or offload it'):
        manager.add_job(noop, offloaded=False, timeout=1)
    with pytest.raises(JobReferenceError, match=r'Job "takes": data .* must be JSON.* Pass an id or a file path'):
        manager.add_job(takes, data={"when": object()})
    with pytest.raises(JobReferenceError, match=re.escape('pass one, e.g. add_job(..., name="refresh-prices")')):
        manager.add_job(lambda: None, offloaded=False)
    manager.add_one_off_job(noop, name="once", offloaded=False)
    manager.wait("once", timeout=WAIT)
    with pytest.raises(OneOffAlreadyExecutedError, match=re.escape('A "once" one off job has already been executed.')):
        manager.add_one_off_job(noop, name="once", offloaded=False)
    manager.add_job(lambda: 1 / 0, name="boom", offloaded=False)
    with pytest.raises(JobFailedError, match=re.escape('Job "boom" failed: ZeroDivisionError: division by zero')):
        manager.wait("boom", timeout=WAIT)


def test_invalid_schedule_is_refused(manager):
    with pytest.raises(InvalidScheduleError, match="Invalid schedule format"):
        manager.add_job(lambda: None, name="bad", at="every 5 minuets", offloaded=False)
    assert manager.jobs == []


def test_lambda_without_name_is_refused(manager):
    with pytest.raises(JobReferenceError, match="name"):
        manager.add_job(lambda: None, offloaded=False)


def test_dated_job_runs_once_and_not_before(fake_manager, clock):
    ran = threading.Event()
    count = []

    def dated():
        count.append(1)
        ran.set()

    fake_manager.add_job(dated, at=clock.now() + timedelta(milliseconds=10), offloaded=False)
    assert fake_manager.job("dated").status == "scheduled"
    clock.advance(0.005)
    assert not ran.is_set() and fake_manager.job("dated").status == "scheduled"
    clock.advance(0.005)
    assert ran.wait(WAIT)
    fake_manager.wait("dated", timeout=WAIT)
    clock.advance(3600)
    fake_manager.wait_all(timeout=WAIT)
    assert count == [1]
    # a job that cannot run again is unregistered: the name can be used again
    fake_manager.add_job(dated, at=clock.now() + timedelta(seconds=1), offloaded=False)


def test_past_date_is_reported_not_silently_dropped(fake_manager, clock):
    events = []
    fake_manager.subscribe(events.append)
    with pytest.warns(UserWarning, match="in the past"):
        fake_manager.add_job(lambda: None, name="late", at=clock.now() - timedelta(days=1), offloaded=False)
    assert fake_manager.flush_events()
    assert [e.kind for e in events if e.name == "late"] == ["added", "skipped"]


def test_duplicate_name_while_registered_is_refused(fake_manager, clock):
    fake_manager.add_job(lambda: None, name="tick", at="every 5 minutes", offloaded=False)
    with pytest.raises(DuplicateJobError, match='"tick" is already registered'):
        fake_manager.add_job(lambda: None, name="tick", at="every 5 minutes", offloaded=False)
    fake_manager.add_job(lambda: None, name="tick", at="every 10 minutes", offloaded=False, replace=True)
    assert fake_manager.job("tick").schedule == "every 10 minutes"


def test_inline_queue_pushes_may_share_a_name(manager):
    order = []
    for i in range(5):
        manager.add_job(lambda data: order.append(data), name="push", data=i, offloaded=False)
    manager.wait_all(timeout=WAIT)
    assert order == [0, 1, 2, 3, 4]  # FIFO
    assert manager.job("push").runs == 5


def test_recurring_inline_job_fires_on_each_tick(fake_manager, clock):
    refresh = Ticks()
    start = clock.now().replace(second=0, microsecond=0)
    fake_manager.add_job(refresh, name="refresh", at="every 5 minutes", offloaded=False)
    for i in range(1, 4):
        clock.set(start + timedelta(minutes=5 * i))
        assert refresh.next_run()
    assert [t.minute for t in refresh.fired] == [5, 10, 15]
    assert all(t.second == 0 for t in refresh.fired)


def test_overlapping_tick_is_skipped_visibly(fake_manager, clock):
    events = []
    fake_manager.subscribe(events.append)
    started = threading.Event()
    release = threading.Event()

    async def slow():
        started.set()
        while not release.is_set():
            await asyncio.sleep(0.01)

    start = clock.now().replace(second=0, microsecond=0)
    fake_manager.add_job(slow, at="every 1 minutes", offloaded=False)
    clock.set(start + timedelta(minutes=1))
    assert started.wait(WAIT)
    clock.set(start + timedelta(minutes=2))
    # the skip is decided on the timer thread: wait for its event
    deadline = threading.Event()
    for _ in range(1000):
        if any(e.kind == "skipped" for e in events):
            break
        deadline.wait(0.01)
    release.set()
    fake_manager.wait("slow", timeout=WAIT)
    skipped = [e for e in events if e.kind == "skipped"]
    assert len(skipped) == 1 and "still going" in skipped[0].data["reason"]
    assert fake_manager.job("slow").skipped == 1


def test_missed_ticks_run_once_not_in_a_burst(fake_manager, clock):
    tick = Ticks()
    fake_manager.add_job(tick, name="tick", at="every 1 minutes", offloaded=False)
    clock.advance(timedelta(hours=3))  # a suspended laptop
    assert tick.next_run()
    fake_manager.wait_all(timeout=WAIT)
    assert len(tick.fired) == 1
    assert fake_manager.job("tick").next_run > clock.now()


def test_pause_and_resume(fake_manager, clock):
    tick = Ticks()
    fake_manager.add_job(tick, name="tick", at="every 1 minutes", offloaded=False)
    fake_manager.pause("tick")
    assert fake_manager.job("tick").status == "paused"
    clock.advance(timedelta(minutes=5))
    fake_manager.resume("tick")  # missed ticks while paused: one run now
    assert tick.next_run()
    fake_manager.wait_all(timeout=WAIT)
    assert len(tick.fired) == 1
    assert fake_manager.job("tick").status == "scheduled"


def test_remove_job_unregisters_before_it_runs(fake_manager, clock):
    ran = []
    fake_manager.add_job(lambda: ran.append(1), name="later", at=clock.now() + timedelta(seconds=5), offloaded=False)
    fake_manager.remove_job("later")
    clock.advance(10)
    fake_manager.wait_all(timeout=WAIT)
    assert ran == []
    assert [j.name for j in fake_manager.jobs] == []


def test_remove_job_emits_removed(fake_manager):
    events = []
    fake_manager.subscribe(events.append)
    fake_manager.add_job(lambda: None, name="later", at="every 5 minutes", offloaded=False)
    fake_manager.remove_job("later")
    assert fake_manager.flush_events()
    assert [e.kind for e in events] == ["added", "scheduled", "removed"]


def test_a_failing_run_emits_failed_with_its_error(manager):
    events = []
    manager.subscribe(events.append)

    def boom():
        raise ValueError("inline failure")

    manager.add_job(boom, offloaded=False)
    with pytest.raises(JobFailedError):
        manager.wait("boom", timeout=WAIT)
    assert [e.kind for e in events] == ["added", "queued", "started", "failed"]
    failed = events[-1]
    assert failed.name == "boom" and failed.data["cancelled"] is False
    assert "Traceback" in failed.data["error"] and "ValueError: inline failure" in failed.data["error"]


@pytest.mark.parametrize("concurrency", [1, 3, 5])
def test_async_jobs_interleave_up_to_the_concurrency(concurrency):
    running = 0
    peak = 0
    release = threading.Event()

    async def job(data):
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        while not release.is_set():
            await asyncio.sleep(0.005)
        running -= 1

    with JobManager(inline_concurrency=concurrency) as m:
        for i in range(10):
            m.add_job(job, name="a", data=i, offloaded=False)
        wait_until(lambda: peak == concurrency, WAIT)  # as many as allowed run side by side ...
        release.set()
        m.wait_all(timeout=WAIT)
    assert peak == concurrency  # ... and never more
    assert m.runs("a")[-1].status == "finished" and len(m.runs("a")) == 10


def test_async_inline_timeout(manager):
    async def forever():
        await asyncio.sleep(3600)

    manager.add_job(forever, offloaded=False, timeout=0.05)
    with pytest.raises(JobFailedError, match="timed out"):
        manager.wait("forever", timeout=WAIT)


def test_sync_inline_timeout_is_refused(manager):
    def sync_job():
        pass

    with pytest.raises(JobConfigError, match="cannot stop a synchronous inline function"):
        manager.add_job(sync_job, offloaded=False, timeout=1)


def test_inline_output_is_captured_per_run(manager, capsys):
    def chatty():
        print("hello from the job")

    manager.add_job(chatty, offloaded=False)
    run = manager.wait("chatty", timeout=WAIT)
    assert run.output == "hello from the job\n"
    assert "hello from the job" not in capsys.readouterr().out


def test_current_run_knows_name_attempt_and_scheduled_time(fake_manager, clock):
    seen = []
    done = threading.Event()

    def job():
        seen.append(current_run())
        done.set()

    due = clock.now() + timedelta(seconds=30)
    fake_manager.add_job(job, at=due, offloaded=False)
    clock.set(due + timedelta(seconds=2))  # late
    assert done.wait(WAIT)
    (ctx,) = seen
    assert ctx.name == "job" and ctx.attempt == 1 and ctx.scheduled_for == due
    assert current_run() is None


def test_retries_with_backoff_then_success(manager):
    m = JobManager(retry_backoff=0.01)
    try:
        attempts = []

        def flaky():
            attempts.append(current_run().attempt)
            if len(attempts) < 3:
                raise RuntimeError("not yet")
            return "ok"

        m.add_job(flaky, offloaded=False, retries=3)
        run = m.wait_all(timeout=WAIT) or m.wait("flaky", timeout=WAIT)
        assert attempts == [1, 2, 3]
        assert run.result == "ok" and run.attempt == 3
    finally:
        m.close(timeout=5)


def test_retries_back_off_exponentially(fake_manager, clock):
    """retry_backoff=1.0 (the default): attempt n+1 is due 1, 2, 4 s after attempt n failed."""
    events = []
    fake_manager.subscribe(events.append)
    attempts = []

    def always():
        attempts.append(current_run().attempt)
        raise RuntimeError("still broken")

    def failures():
        return [e.data for e in events if e.kind == "failed"]

    fake_manager.add_job(always, offloaded=False, retries=3)
    for n, delay in enumerate([1.0, 2.0, 4.0], start=1):
        failed = wait_until(lambda n=n: len(failures()) >= n and failures()[n - 1], WAIT)
        assert failed["retrying"] is True and failed["retry_in"] == delay
        assert attempts == list(range(1, n + 1))  # the fake clock has not moved: no retry yet
        clock.advance(delay)  # now it is due
    with pytest.raises(JobFailedError, match="still broken"):
        fake_manager.wait("always", timeout=WAIT)
    assert attempts == [1, 2, 3, 4]
    assert "retrying" not in failures()[-1] and len(failures()) == 4


def test_wait_all_and_all_settled_return_normally_when_a_run_failed(manager):
    def boom():
        raise ValueError("nobody waits for this one")

    manager.add_job(boom, offloaded=False)
    assert manager.wait_all(timeout=WAIT) is None
    release = threading.Event()

    async def held():
        while not release.is_set():
            await asyncio.sleep(0.005)
        raise ValueError("failed while all_settled waited")

    manager.add_job(held, offloaded=False)

    async def main():
        settled = asyncio.ensure_future(manager.all_settled(timeout=WAIT))
        await asyncio.sleep(0)
        release.set()
        return await settled

    assert asyncio.run(main()) is None
    assert [r.status for r in manager.runs()] == ["failed", "failed"]


def test_wait_returns_last_run_when_nothing_is_running(manager):
    manager.add_job(lambda: 42, name="answer", offloaded=False)
    first = manager.wait("answer", timeout=WAIT)
    again = manager.wait("answer", timeout=WAIT)
    assert first.run_id == again.run_id and again.result == 42


def test_wait_before_add_waits_for_the_next_run(manager):
    box = []
    waiter = threading.Thread(target=lambda: box.append(manager.wait("future", timeout=WAIT)))
    waiter.start()
    # the waiter registers itself, then the job is added
    for _ in range(500):
        if "future" in manager._next_waiters:
            break
        threading.Event().wait(0.01)
    manager.add_job(lambda: "hi", name="future", offloaded=False)
    waiter.join(WAIT)
    assert box and box[0].result == "hi"


def test_wait_times_out_with_builtin_timeout_error(manager):
    release = threading.Event()
    manager.add_job(lambda: release.wait(WAIT), name="slow", offloaded=False)
    with pytest.raises(TimeoutError):
        manager.wait("slow", timeout=0.05)
    release.set()


def test_await_completion_from_a_running_event_loop(manager):
    async def main():
        manager.add_job(lambda: 7, name="seven", offloaded=False)
        return await manager.await_completion("seven", timeout=WAIT)

    assert asyncio.run(main()).result == 7


def test_manager_made_inside_a_running_loop_runs_inline_jobs_on_that_loop():
    async def main():
        loop = asyncio.get_running_loop()
        m = JobManager()
        seen = []

        async def job():
            seen.append(asyncio.get_running_loop() is loop)

        m.add_job(job, offloaded=False)
        await m.await_completion("job", timeout=WAIT)
        # a blocking wait on the loop's own thread must not deadlock
        m.add_job(lambda: 5, name="five", offloaded=False)
        assert m.wait("five", timeout=WAIT).result == 5
        await m.shutdown(timeout=5)
        return seen

    assert asyncio.run(main()) == [True]


def test_shutdown_waits_for_a_running_inline_job():
    m = JobManager()
    finished = []

    async def job():
        await asyncio.sleep(0.2)
        finished.append(1)

    m.add_job(job, offloaded=False)
    m.close(timeout=5)
    assert finished == [1]


def test_shutdown_stops_interval_job_and_leaves_no_timer(fake_manager, clock):
    fake_manager.add_job(lambda: None, name="every5", at="every 5 seconds", offloaded=False)
    assert fake_manager._timers.pending == 1
    fake_manager.close(timeout=5)
    assert fake_manager._timers.pending == 0
    with pytest.raises(Exception, match="shut down"):
        fake_manager.add_job(lambda: None, name="x", offloaded=False)


def test_events_arrive_in_order_and_a_failing_subscriber_is_harmless(manager):
    events = []

    def broken(event):
        raise RuntimeError("subscriber bug")

    manager.subscribe(broken)
    manager.subscribe(events.append)
    manager.add_job(lambda: print("x"), name="ev", offloaded=False)
    manager.wait("ev", timeout=WAIT)
    kinds = [e.kind for e in events]
    collapsed = [k for i, k in enumerate(kinds) if i == 0 or kinds[i - 1] != k]  # print() writes twice
    assert collapsed == ["added", "queued", "started", "output", "finished"]


def test_inline_job_reports_progress(manager):
    events = []
    manager.subscribe(events.append)

    def steps():
        current_run().progress(0.25, "a quarter")
        with pytest.raises(ValueError, match=r"from 0\.0 to 1\.0"):
            current_run().progress(2)

    manager.add_job(steps, offloaded=False)
    manager.wait("steps", timeout=WAIT)
    progress = [e.data for e in events if e.kind == "progress"]
    assert progress == [{"fraction": 0.25, "text": "a quarter"}]


def test_wait_from_another_thread_while_the_loop_runs_jobs(manager):
    release = threading.Event()
    manager.add_job(lambda: release.wait(WAIT) and "done", name="threaded", offloaded=False)
    results = []
    waiter = threading.Thread(target=lambda: results.append(manager.wait("threaded", timeout=WAIT)))
    waiter.start()
    release.set()
    waiter.join(WAIT)
    assert results and results[0].result == "done"


def test_inline_runs_wait_in_order_while_another_thread_holds_the_manager_and_the_loop_keeps_serving(manager):
    """To start a run, the private loop never waits on the manager's lock (that made a lock convoy with the
    thread adding jobs): it gives way, and starts the next run, still the first in line, once it is free."""
    busy, gate, holding, let_go = threading.Event(), threading.Event(), threading.Event(), threading.Event()
    order: list[int] = []

    def busy_loop() -> None:  # something else on the loop (a cell), while the runs are added
        busy.set()
        gate.wait(WAIT)

    manager._loop.call_soon_threadsafe(busy_loop)
    assert busy.wait(WAIT)

    def step(i: int):  # type: ignore[no-untyped-def]
        return lambda: order.append(i)

    for i in range(5):
        manager.add_job(step(i), name="step", offloaded=False)

    def hold() -> None:
        with manager._lock:  # what a thread preempted inside the manager looks like to the loop
            holding.set()
            let_go.wait(WAIT)

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert holding.wait(WAIT)
        gate.set()  # the loop is free; the first step waits for the lock, the others behind it

        async def ping() -> str:
            return "pong"

        assert asyncio.run_coroutine_threadsafe(ping(), manager._loop).result(WAIT) == "pong"
        assert order == []
    finally:
        let_go.set()
        holder.join(WAIT)
    manager.wait_all(timeout=WAIT)
    assert order == [0, 1, 2, 3, 4]


def test_inline_traceback_starts_at_the_users_code(manager):
    def broken():
        raise KeyError("missing")

    manager.add_job(broken, offloaded=False)
    with pytest.raises(JobFailedError) as info:
        manager.wait("broken", timeout=WAIT)
    error = info.value.run.error
    assert "jobmanager_nb" not in error and "in broken" in error and "KeyError" in error


def test_async_inline_reference_accepts_a_timeout(manager):
    manager.add_job("asyncio:sleep", name="nap", data=0.01, offloaded=False, timeout=5)
    manager.wait("nap", timeout=WAIT)


def test_cancel_stops_a_running_async_job_but_not_a_running_sync_one(manager):
    started = threading.Event()
    release = threading.Event()

    async def forever():
        started.set()
        await asyncio.sleep(3600)

    manager.add_job(forever, offloaded=False)
    assert started.wait(WAIT)
    assert manager.cancel("forever") is True
    with pytest.raises(JobFailedError, match="cancelled"):
        manager.wait("forever", timeout=WAIT)

    started.clear()

    def blocking():
        started.set()
        release.wait(WAIT)

    manager.add_job(blocking, offloaded=False)
    assert started.wait(WAIT)
    assert manager.cancel("blocking") is False  # cannot interrupt it: it finishes normally
    release.set()
    assert manager.wait("blocking", timeout=WAIT).status == "finished"


def test_inline_run_due_during_a_busy_cell_runs_right_after_it(clock):
    """The manager lives on a running loop (as in a kernel); while the loop's thread is busy in
    synchronous code (a long cell), a due inline run waits in the queue, then runs at once."""

    async def main():
        m = JobManager(clock=clock)
        ran_during_cell = []
        in_cell = True

        def refresh():
            ran_during_cell.append(in_cell)

        m.add_job(refresh, at=clock.now() + timedelta(seconds=1), offloaded=False)
        # the "cell": synchronous code on the loop's thread
        clock.advance(1)
        deadline = time.monotonic() + WAIT
        while m.job("refresh").status != "queued":  # the timer thread queued it meanwhile
            assert time.monotonic() < deadline, "the due run was never queued"
        assert ran_during_cell == []
        in_cell = False
        # the cell ends: the loop gets control back and runs the job
        await m.await_completion("refresh", timeout=WAIT)
        await m.shutdown(timeout=5)
        return ran_during_cell

    assert asyncio.run(main()) == [False]


def test_a_wait_that_starts_after_the_run_ended_still_waits_for_its_events(manager):
    """The run has ended (its state says finished) while its finished event is still being delivered:
    wait() and wait_all() called in that moment return only once the delivery is done."""
    delivering, let_go = threading.Event(), threading.Event()
    seen: list[str] = []

    def slow(event) -> None:
        if event.kind == "finished":
            delivering.set()
            let_go.wait(WAIT)
        seen.append(event.kind)

    manager.subscribe(slow)
    manager.add_job(lambda: None, name="x", offloaded=False)
    assert delivering.wait(WAIT)
    assert manager.job("x").last_run.status == "finished"  # ended, but not yet told
    returned: list[list[str]] = []
    waiters = [
        threading.Thread(target=lambda: (manager.wait("x", WAIT), returned.append(list(seen)))),
        threading.Thread(target=lambda: (manager.wait_all(WAIT), returned.append(list(seen)))),
    ]
    for thread in waiters:
        thread.start()
    waiters[0].join(0.2)
    assert returned == []
    let_go.set()
    for thread in waiters:
        thread.join(WAIT)
    assert [r[-1] for r in returned] == ["finished", "finished"]
