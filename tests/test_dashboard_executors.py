"""Where runs run, on the dashboard and in the text table: the kind names the job's executor (``offloaded on dask``);
a run going on another machine (a Dask worker's address) says where after its state, linked to its executor's page
(``Executor.dashboard_link``); every started run's badge says where in its tooltip; the expanded row says where the
run ran and on which executor, and where each recent run ran. From snapshots, then live with real executors: a
``ProcessExecutor`` that reports its runs as on a remote worker and names a dashboard page stands in for Dask."""

from __future__ import annotations

import dataclasses
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from polling import wait_until

from jobmanager_nb import FakeClock, JobManager
from jobmanager_nb.executors import OffloadedTask, RunHandle, WorkerEvent
from jobmanager_nb.executors.local import ProcessExecutor
from jobmanager_nb.model import JobInfo, JobRun, RunMark
from jobmanager_nb.notebook.rows import _detail_html, _history_html, _ident_html, _status_html
from jobmanager_nb.notebook.table import JobTable
from jobmanager_nb.notebook.text import _kind_text, _state, render_text

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "manager_jobs"))
import mjobs  # noqa: E402

NOW = datetime(2026, 1, 5, 9, 0, 0, tzinfo=timezone.utc)
WAIT = 20.0
ADDRESS = "tcp://10.9.8.7:40331"
PAGE = "http://10.9.8.1:8787/status"


def info(**changes: Any) -> JobInfo:
    base = JobInfo(
        name="job",
        kind="offloaded",
        one_off=False,
        target="jobs/train.py",
        schedule="",
        schedule_description="once, now",
        status="idle",
        next_run=None,
        last_run=None,
        current_run=None,
        runs=0,
        failures=0,
        skipped=0,
        paused=False,
        recurring=False,
        executor="dask",
    )
    return replace(base, **changes)


def started(location: str | None) -> JobRun:
    return JobRun(
        name="job",
        run_id="r1",
        kind="offloaded",
        status="started",
        phase="started",
        started_at=NOW - timedelta(seconds=12),
        location=location,
    )


def status_of(snapshot: JobInfo, link: str | None = None) -> str:
    badge, after, details = _state(snapshot, NOW)
    return _status_html(snapshot, badge, after, details, link)


# ----------------------------------------------------------------------------- from snapshots


@pytest.mark.parametrize(
    ("snapshot", "words"),
    [
        (info(), "offloaded on dask"),
        (info(executor="local"), "offloaded on local"),
        (info(one_off=True, executor="spare"), "offloaded on spare · one-off"),
        (info(executor=None), "offloaded"),  # a record from before executors had names
        (info(kind="inline", executor=None), "inline"),
        (info(kind="inline", executor=None, one_off=True), "inline · one-off"),
    ],
)
def test_the_kind_names_the_jobs_executor(snapshot, words):
    assert _kind_text(snapshot) == words
    assert f'<span class="jm-c jm-c-kind">{words}</span>' in _ident_html(snapshot, NOW)


def test_the_executors_name_in_the_kind_links_to_its_page():
    html = _ident_html(info(one_off=True), NOW, PAGE)
    link = f'<a href="{PAGE}" target="_blank" rel="noopener" title="{PAGE}">dask</a>'
    assert f'<span class="jm-c jm-c-kind">offloaded on {link} · one-off</span>' in html
    assert "<a " not in _ident_html(info(), NOW)  # no page: plain words


def test_a_run_on_another_machine_says_where_after_its_state():
    html = status_of(info(status="started", current_run=started(ADDRESS)))
    assert '<span class="jm-where" title="on tcp://10.9.8.7:40331 (executor dask)">10.9.8.7:40331</span>' in html
    assert html.index("jm-s-started") < html.index("jm-where")  # the state first; the place gives way


def test_the_place_links_to_the_executors_page_when_it_has_one():
    html = status_of(info(status="started", current_run=started(ADDRESS)), PAGE)
    assert f'<a href="{PAGE}" target="_blank" rel="noopener">10.9.8.7:40331</a>' in html
    assert f"open {PAGE}" in html


def test_a_run_here_says_where_only_in_the_badges_tooltip():
    for place in ("local", "kernel"):
        html = status_of(info(status="started", current_run=started(place)))
        assert "jm-where" not in html
        assert f'<span class="jm-s jm-s-started" title="started · on {place}">started</span>' in html


def test_a_run_with_a_progress_bar_says_where_in_the_bars_tooltip():
    """The bar stands in for the ``started`` badge, so its tooltip says where the run runs instead."""
    for place in ("local", "kernel"):
        html = status_of(info(status="started", current_run=started(place), progress=(0.5, "half way")))
        assert "jm-s-started" not in html and "jm-where" not in html
        assert f'<span class="jm-prog" title="50% · half way · 12 s · ~12 s left · on {place}">' in html


def test_a_run_not_started_says_nothing_of_where():
    queued = replace(started(None), phase="dispatched", status="queued")
    html = status_of(info(status="queued", current_run=queued))
    assert "jm-where" not in html and " on " not in html


def test_a_place_is_escaped():
    html = status_of(info(status="started", current_run=started("tcp://<b>evil</b>:1")), 'http://x/"><script>')
    assert "<b>" not in html and "<script>" not in html
    assert "&lt;b&gt;evil&lt;/b&gt;:1" in html


def test_the_expanded_facts_say_where_it_ran_on_which_executor_with_its_page():
    ended = replace(started(ADDRESS), phase="ended", status="finished", outcome="finished", finished_at=NOW)
    html = _detail_html(info(status="finished", last_run=ended), NOW, PAGE)
    assert "on tcp://10.9.8.7:40331 · executor dask" in html
    assert f'<a class="jm-link" href="{PAGE}" target="_blank" rel="noopener">dask dashboard</a>' in html
    assert "dashboard</a>" not in _detail_html(info(status="finished", last_run=ended), NOW)


def test_each_recent_run_says_where_it_ran():
    marks = [
        RunMark("r1", "finished", NOW - timedelta(seconds=9), NOW - timedelta(seconds=8), None, ADDRESS),
        RunMark("r2", "failed", NOW - timedelta(seconds=5), NOW - timedelta(seconds=4), "boom", "local"),
        RunMark("r3", "cancelled", None, NOW, "cancelled before it started", None),
    ]
    html = _history_html(marks, [], NOW)
    assert f'<span class="jm-run-where" title="{ADDRESS}">10.9.8.7:40331</span>' in html
    assert '<span class="jm-run-where" title="local">local</span>' in html
    assert '<span class="jm-run-where" title=""></span>' in html  # never started: nowhere


def test_the_text_table_says_the_executor_and_where_a_remote_run_runs():
    with JobManager(clock=FakeClock(NOW)) as manager:
        rows = [
            info(name="remote", status="started", current_run=started(ADDRESS)),
            info(name="here", status="started", current_run=started("local"), executor="local"),
        ]
        lines = {row.split()[0]: row for row in render_text(manager, rows).splitlines()[2:]}
    assert "offloaded on dask" in lines["remote"] and "started · 12 s · on 10.9.8.7:40331" in lines["remote"]
    assert "offloaded on local" in lines["here"] and " on local" not in lines["here"].split("offloaded on local")[1]


# ----------------------------------------------------------------------------- live


class RemoteLikeExecutor(ProcessExecutor):
    """A real ProcessExecutor whose runs say they run on a remote worker, with a dashboard page: as a DaskExecutor."""

    def __init__(self) -> None:
        super().__init__(spares=1)

    @property
    def dashboard_link(self) -> str | None:
        return PAGE

    def submit(self, task: OffloadedTask, listener: Callable[[WorkerEvent], None]) -> RunHandle:
        def elsewhere(event: WorkerEvent) -> None:
            listener(dataclasses.replace(event, location=ADDRESS) if event.kind == "started" else event)

        return super().submit(task, elsewhere)


@pytest.fixture
def remote() -> Iterator[RemoteLikeExecutor]:
    executor = RemoteLikeExecutor()
    yield executor
    executor.shutdown(timeout=5)


@pytest.fixture
def open_table() -> Iterator[Callable[[JobManager], JobTable]]:
    tables: list[JobTable] = []

    def make(manager: JobManager) -> JobTable:
        table = JobTable(manager)
        tables.append(table)
        return table

    yield make
    for table in tables:
        table.close()


def test_a_live_row_on_a_named_executor_shows_where_and_links_its_page(open_table, remote):
    manager = JobManager(executors={"dask": remote}, kill_grace=1.0)
    try:
        begun = threading.Event()
        manager.subscribe(lambda event: begun.set() if event.kind == "started" else None)
        manager.add_job(mjobs.graceful, name="train", executor="dask")
        assert begun.wait(WAIT)
        table = open_table(manager)
        row = table.row("train")
        wait_until(lambda: row.status == "started")
        assert f'offloaded on <a href="{PAGE}"' in row.ident.value
        assert f'<a href="{PAGE}" target="_blank" rel="noopener">10.9.8.7:40331</a>' in row.status_html.value
        assert "· on 10.9.8.7:40331" in str(table)  # the text form says it too

        manager.cancel("train")
        wait_until(lambda: row.status == "cancelled")
        assert "jm-where" not in row.status_html.value  # ended: the row no longer says where it runs
        row.expand()
        assert f"on {ADDRESS} · executor dask" in row.detail.value
        assert f'href="{PAGE}"' in row.detail.value
        assert manager.job("train").recent[-1].location == ADDRESS
    finally:
        manager.close(timeout=10)


def test_a_live_row_on_the_built_in_executor_names_local(open_table):
    manager = JobManager()
    try:
        manager.add_job(mjobs.add, name="sum", data={"a": 1, "b": 2})
        manager.wait("sum", WAIT)
        table = open_table(manager)
        row = table.row("sum")
        wait_until(lambda: row.status == "finished")
        assert "offloaded on local" in row.ident.value
        row.expand()
        assert "on local · executor local" in row.detail.value and "jm-link" not in row.detail.value
    finally:
        manager.close(timeout=10)


class CountedPageExecutor(RemoteLikeExecutor):
    """Counts how often its page is asked for (a Dask client may ask its scheduler)."""

    asked = 0

    @property
    def dashboard_link(self) -> str | None:
        type(self).asked += 1
        return PAGE


def test_the_table_asks_for_an_executors_page_once_not_at_every_tick(open_table):
    executor = CountedPageExecutor()
    manager = JobManager(executors={"dask": executor}, kill_grace=1.0)
    try:
        begun = threading.Event()
        manager.subscribe(lambda event: begun.set() if event.kind == "started" else None)
        manager.add_job(mjobs.graceful, name="train", executor="dask")
        assert begun.wait(WAIT)
        table = open_table(manager)
        row = table.row("train")
        wait_until(lambda: "jm-where" in row.status_html.value)
        flushes = table.flushes
        wait_until(lambda: table.flushes >= flushes + 3)  # three more updates: the elapsed time ticks each second
        row.expand()
        assert f'href="{PAGE}"' in row.detail.value
        assert CountedPageExecutor.asked == 1
    finally:
        manager.close(timeout=10)
        executor.shutdown(timeout=5)
