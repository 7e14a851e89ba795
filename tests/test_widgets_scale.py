"""The dashboard with 500 jobs: built in chunks, a burst of 2,000 events applied in one update, 500 pauses.

What these take is measured by ``benchmarks/bench_dashboard.py`` (docs/performance.md), not asserted here."""

from __future__ import annotations

import pytest
from polling import wait_until

from jobmanager_nb import FakeClock, JobManager
from jobmanager_nb.notebook.table import JobTable

JOBS = 500
SLOW = 20.0  # seconds: building 500 rows takes a few


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


FIRST_ROWS: list[int] = []


@pytest.fixture(scope="module")
def table(manager):
    t = JobTable(manager)
    FIRST_ROWS.append(len(t.names))
    wait_until(lambda: len(t.names) == JOBS, SLOW)
    yield t
    t.close()


def test_500_jobs_are_built_in_chunks_in_the_managers_order(manager, table):
    # the constructor builds the first rows (as many as fit in 0.15 s), so the table shows at once; the
    # flusher builds the rest
    assert FIRST_ROWS[0] > 0
    assert table.names == [f"job{i:03d}" for i in range(JOBS)]


def test_500_jobs_running_at_once_land_in_one_update(manager, clock, table):
    flushes = table.flushes
    with table._lock:  # hold the flusher off until the whole burst is in, so that one flush applies it
        clock.advance(3600 + JOBS)  # every job fires: queued, started, finished, scheduled (2,000 events)
        wait_until(lambda: all(info.runs == 1 for info in manager.jobs), SLOW)
    wait_until(lambda: table.flushes > flushes and all(table.row(n).info.runs == 1 for n in table.names), SLOW)
    assert table.flushes - flushes == 1
    assert all("finished" in table.row(n).timing.value for n in table.names)
    widgets = {n: table.row(n).widget for n in table.names}
    table.refresh()  # re-read all 500 jobs; nothing changed, nothing is rebuilt
    assert all(table.row(n).widget is widgets[n] for n in table.names)


def test_pausing_500_jobs_gives_every_row_its_resume_button(manager, table):
    flushes = table.flushes
    with table._lock:
        for name in table.names:
            manager.pause(name)  # 500 "paused" events; every row needs a new Resume button
    wait_until(lambda: all(list(table.row(n).buttons) == ["run", "resume", "remove"] for n in table.names), SLOW)
    assert table.flushes - flushes < JOBS // 10  # coalesced (a flush builds for at most 0.15 s), not one by one
    assert all(table.row(n).status == "paused" for n in table.names)
