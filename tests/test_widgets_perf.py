"""The dashboard stays responsive with 500 jobs: building the table and applying bursts of events."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from jobmanager_nb import FakeClock, JobManager
from jobmanager_nb.widgets import JobTable

JOBS = 500


def wait_until(predicate: Callable[[], object], timeout: float = 20.0, interval: float = 0.01) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout} s")


def noop() -> None:
    pass


# One manager and one table for the whole module (building 500 rows is the slow part); the tests run
# in file order: build, fire everything, pause everything.


@pytest.fixture(scope="module")
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(scope="module")
def manager(clock):
    m = JobManager(clock=clock)  # the fake clock only moves when the test says so
    for i in range(JOBS):
        m.add_job(noop, name=f"job{i:03d}", at=3600 + i, offloaded=False)
    yield m
    m.close(timeout=5)


BUILD: dict[str, float] = {}


@pytest.fixture(scope="module")
def table(manager):
    started = time.perf_counter()
    t = JobTable(manager)
    BUILD["first"], BUILD["first_rows"] = time.perf_counter() - started, len(t.names)
    wait_until(lambda: len(t.names) == JOBS)
    BUILD["all"] = time.perf_counter() - started
    yield t
    t.close()


def test_500_jobs_build_in_short_flushes(manager, table, capsys):
    # the constructor builds the first rows; the flusher builds the rest in chunks, in the manager's order
    assert BUILD["first_rows"] > 0
    assert table.names == [f"job{i:03d}" for i in range(JOBS)]
    with capsys.disabled():
        print(
            f"\n{JOBS} jobs: the first {BUILD['first_rows']:.0f} rows after {BUILD['first']:.2f} s, all {JOBS} after "
            f"{BUILD['all']:.2f} s in {table.flushes} flushes, the longest {table.max_flush_seconds * 1000:.0f} ms"
        )
    assert table.max_flush_seconds < 1.0


def test_500_jobs_running_at_once_land_in_one_fast_flush(manager, clock, table, capsys):
    flushes = table.flushes
    with table._lock:  # hold the flusher off until the whole burst is in, so that one flush applies it
        clock.advance(3600 + JOBS)  # every job fires: queued, started, finished, scheduled (2,000 events)
        wait_until(lambda: all(info.runs == 1 for info in manager.jobs))
    wait_until(lambda: table.flushes > flushes and all(table.row(n).info.runs == 1 for n in table.names))
    burst = table.last_flush_seconds
    assert table.flushes - flushes == 1
    assert all("finished" in table.row(n).timing.value for n in table.names)
    started = time.perf_counter()
    table.refresh()  # re-read all 500 jobs; nothing changed
    refresh = time.perf_counter() - started
    with capsys.disabled():
        print(
            f"\n{JOBS} jobs fired at once (2,000 events): one flush of {burst * 1000:.0f} ms; "
            f"a full refresh with nothing to change {refresh * 1000:.0f} ms"
        )
    assert burst < 0.5 and refresh < 0.5


def test_pausing_500_jobs_makes_500_buttons_in_short_flushes(manager, table, capsys):
    flushes, table.max_flush_seconds = table.flushes, 0.0
    started = time.perf_counter()
    with table._lock:
        for name in table.names:
            manager.pause(name)  # 500 "paused" events; every row needs a new Resume button
    wait_until(lambda: all(list(table.row(n).buttons) == ["run", "resume", "remove"] for n in table.names))
    total = time.perf_counter() - started
    with capsys.disabled():
        print(
            f"\n{JOBS} jobs paused at once: applied in {table.flushes - flushes} flushes, "
            f"longest {table.max_flush_seconds * 1000:.0f} ms, all shown after {total:.2f} s"
        )
    assert table.max_flush_seconds < 0.5
    assert all(table.row(n).status == "paused" for n in table.names)
