"""What a dashboard row says, in-process: the state words the run state machine gives (``queued · waiting for ...``,
``retrying in 4 s``, ``paused · running``, a running job like tqdm), the strip of recent runs, an earlier kernel's
one-off, the tracebacks shown, the summary counts and the text table, which says the same as the rows."""

from __future__ import annotations

import asyncio
import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from polling import wait_until

from jobmanager_nb import FakeClock, JobManager, JobNotFoundError
from jobmanager_nb.model import JobInfo, JobRun
from jobmanager_nb.notebook.rows import actions_for
from jobmanager_nb.notebook.table import JobTable
from jobmanager_nb.notebook.text import render_text, state_text, summary_counts, user_traceback

NOW = datetime(2026, 1, 5, 9, 0, 0, tzinfo=timezone.utc)
WAIT = 10.0


def info(**changes: Any) -> JobInfo:
    """A job snapshot with nothing going on; ``changes`` override its fields."""
    base = JobInfo(
        name="job",
        kind="inline",
        one_off=False,
        target="job()",
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
    )
    return replace(base, **changes)


def run(phase: str = "started", kind: str = "inline", **changes: Any) -> JobRun:
    status = "started" if phase == "started" else "queued"
    return JobRun(name="job", run_id="r1", kind=kind, status=status, phase=phase, **changes)  # type: ignore[arg-type]


def ended(outcome: str) -> JobRun:
    status = "finished" if outcome == "finished" else "failed"
    return JobRun(
        name="job",
        run_id="r0",
        kind="inline",
        status=status,  # type: ignore[arg-type]
        outcome=outcome,  # type: ignore[arg-type]
        cancelled=outcome == "cancelled",
        started_at=NOW - timedelta(seconds=5),
        finished_at=NOW - timedelta(seconds=4),
    )


@pytest.fixture
def gate() -> Iterator[threading.Event]:
    event = threading.Event()
    yield event
    event.set()


@pytest.fixture
def open_table() -> Iterator[Callable[..., JobTable]]:
    tables: list[JobTable] = []

    def make(manager: JobManager, **options: float) -> JobTable:
        table = JobTable(manager, **options)
        tables.append(table)
        return table

    yield make
    for table in tables:
        table.close()


def waits_for(gate: threading.Event) -> Callable[[], Any]:
    async def job() -> None:
        await asyncio.get_running_loop().run_in_executor(None, gate.wait, WAIT)

    return job


def state_is(table: JobTable, name: str, pattern: str) -> Callable[[], bool]:
    def check() -> bool:
        try:
            return re.fullmatch(pattern, table.row(name).state) is not None
        except JobNotFoundError:
            return False

    return check


# ----------------------------------------------------------------------------- the words, from snapshots


@pytest.mark.parametrize(
    ("snapshot", "words"),
    [
        (info(status="failed", last_run=ended("failed")), "failed"),
        (info(status="failed", last_run=ended("timed_out")), "failed · timed out"),
        (info(status="failed", last_run=ended("lost")), "failed · worker lost"),
        (info(status="cancelled", last_run=ended("cancelled")), "cancelled"),
        (info(status="queued", current_run=run("queued")), "queued"),
        (info(status="queued", current_run=run("dispatched")), "queued · waiting for the running cell"),
        (info(status="queued", current_run=run("dispatched", "offloaded")), "queued · waiting for a worker"),
        (
            info(status="retrying", current_run=run("retrying", retry_at=NOW + timedelta(seconds=3.6))),
            "retrying in 4 s",
        ),
        (info(status="retrying", current_run=run("retrying", retry_at=NOW)), "retrying now"),
        (info(status="started", current_run=run(started_at=NOW - timedelta(seconds=12.7))), "started · 12 s"),
        (
            info(status="started", paused=True, current_run=run(started_at=NOW - timedelta(seconds=3))),
            "paused · running · 3 s",
        ),
        (info(status="queued", paused=True, current_run=run("queued")), "paused · queued"),
        (
            info(status="retrying", paused=True, current_run=run("retrying", retry_at=NOW + timedelta(seconds=4))),
            "paused · retrying in 4 s",
        ),
    ],
)
def test_state_words_follow_the_run_state_machine(snapshot, words):
    assert state_text(snapshot, NOW) == words


def test_an_inline_run_handed_over_names_what_holds_the_queue():
    waiting = info(status="queued", current_run=run("dispatched"))
    assert state_text(waiting, NOW, ["blocker"]) == "queued · waiting for blocker"
    assert state_text(waiting, NOW, ["a", "b", "c"]) == "queued · waiting for a and 2 more"
    assert state_text(waiting, NOW, kernel_loop=False) == "queued · waiting for the inline queue"


def test_a_running_job_reads_like_tqdm():
    started = run(started_at=NOW - timedelta(seconds=12))
    going = info(status="started", current_run=started, progress=(0.42, "loading 3/7"))
    assert state_text(going, NOW) == "started · 42% · loading 3/7 · 12 s · ~17 s left"  # 12 s * 0.58 / 0.42
    slow = info(status="started", current_run=run(started_at=NOW - timedelta(minutes=10)), progress=(0.25, None))
    assert state_text(slow, NOW) == "started · 25% · 10 min 0 s · ~30 min left"
    done = info(status="started", current_run=started, progress=(1.0, "saving"))
    assert state_text(done, NOW) == "started · 100% · saving · 12 s"


def test_the_summary_counts_every_job_once():
    infos = [info(status=status) for status in ("finished", "finished", "failed", "idle", "started", "scheduled")]
    total, counts = summary_counts(infos)
    assert total == 6 and sum(count for _status, count in counts) == 6
    assert counts == [("started", 1), ("failed", 1), ("scheduled", 1), ("finished", 2), ("idle", 1)]


# ----------------------------------------------------------------------------- an earlier kernel's one-off


def earlier(hint: str | None, **changes: Any) -> JobInfo:
    fields: dict[str, Any] = {"status": "failed", "last_run": ended("failed"), **changes}
    return info(one_off=True, registered=False, origin="earlier kernel", rerun_hint=hint, **fields)


def test_an_earlier_kernels_one_off_gets_rerun_only_where_it_can_be_rerun():
    assert actions_for(earlier(None)) == ("rerun", "remove")
    assert actions_for(earlier("its code was a function defined in a notebook cell: run that cell again")) == (
        "remove",
    )
    going = earlier("it is started in another kernel", status="started", last_run=None, current_run=run())
    assert actions_for(going) == ("remove",)  # never Cancel: the run is another kernel's
    finished = earlier("it finished", status="finished", last_run=ended("finished"))
    assert actions_for(finished) == ("remove",)


def test_an_earlier_kernels_row_is_tagged_and_says_why_it_cannot_be_rerun(tmp_path, open_table):
    store = tmp_path / "jobs.json"
    with JobManager(store=store) as first:
        first.add_one_off_job(_boom, name="old-lambda", offloaded=False)
        with pytest.raises(Exception, match="boom"):
            first.wait("old-lambda", timeout=WAIT)
    with JobManager(store=store) as second:
        table = open_table(second)
        row = wait_until(lambda: table.row("old-lambda"))
        assert row.info.origin == "earlier kernel" and row.status == "failed"
        assert '<span class="jm-tag">earlier kernel</span>' in row.status_html.value
        assert list(row.buttons) == ["remove"] and row.info.rerun_hint
        hint = row.buttons_box.children[0]
        assert "jm-hint" in hint.value and "run the code that adds it again" in hint.value
        assert "(earlier kernel)" in str(table)


def _boom() -> None:
    raise RuntimeError("boom")


# ----------------------------------------------------------------------------- rows, live


def test_a_run_waiting_for_another_inline_job_says_so(open_table, gate):
    m = JobManager(inline_concurrency=1)
    try:
        table = open_table(m)
        m.add_job(waits_for(gate), name="blocker", offloaded=False)
        m.add_job(lambda: None, name="waiter", offloaded=False)
        wait_until(state_is(table, "waiter", "queued · waiting for blocker"))
        assert table.row("waiter").status == "queued"
        assert "· waiting for blocker" in table.row("waiter").status_html.value
        assert "waiting for blocker" in str(table)
    finally:
        gate.set()
        m.close(timeout=10)


def test_a_failed_attempt_counts_down_to_its_retry(open_table):
    clock = FakeClock()
    m = JobManager(clock=clock, retry_backoff=30)
    try:
        table = open_table(m, tick=0.05)
        m.add_job(_boom, name="retrier", offloaded=False, retries=2)
        wait_until(state_is(table, "retrier", r"retrying in (30|29) s"))
        row = table.row("retrier")
        assert row.status == "retrying" and list(row.buttons) == ["cancel", "remove"]
        assert '<span class="jm-s jm-s-retrying">retrying</span> <span class="jm-cap"' in row.status_html.value
        clock.advance(20)  # no event: the table's tick moves the countdown
        wait_until(state_is(table, "retrier", r"retrying in (10|9) s"))
    finally:
        m.close(timeout=10)


def test_a_paused_job_with_a_run_going_says_paused_running(open_table, gate):
    clock = FakeClock()
    m = JobManager(clock=clock)
    try:
        table = open_table(m, tick=0.05)
        m.add_job(waits_for(gate), name="ticker", at=3600, offloaded=False)
        m.run_now("ticker")
        wait_until(state_is(table, "ticker", "started · 0 s"))
        m.pause("ticker")
        wait_until(state_is(table, "ticker", "paused · running · 0 s"))
        row = table.row("ticker")
        assert row.status == "started" and row.info.paused
        assert list(row.buttons) == ["cancel", "resume", "remove"]
        clock.advance(7)  # the elapsed time moves with the table's tick
        wait_until(state_is(table, "ticker", "paused · running · 7 s"))
        assert "paused · running · 7 s" in str(table)
    finally:
        gate.set()
        m.close(timeout=10)


def test_a_progress_row_shows_its_words_over_a_bar(open_table, gate):
    clock = FakeClock()
    m = JobManager(clock=clock)

    async def loading() -> None:
        from jobmanager_nb import current_run

        context = current_run()
        assert context is not None
        context.progress(0.5, "loading <3/7>")
        await asyncio.get_running_loop().run_in_executor(None, gate.wait, WAIT)

    try:
        table = open_table(m, tick=0.05)
        m.add_job(loading, name="loader", offloaded=False)
        wait_until(lambda: "jm-progress" in table.row("loader").status_html.value)
        clock.advance(10)
        wait_until(state_is(table, "loader", "started · 50% · loading <3/7> · 10 s · ~10 s left"))
        html = table.row("loader").status_html.value
        assert "jm-s-started" not in html  # the bar stands for it
        assert '<span class="jm-cap">50% · loading &lt;3/7&gt; · 10 s · ~10 s left</span>' in html
        assert 'data-label="50%"' in html and "width:50.0%" in html
    finally:
        gate.set()
        m.close(timeout=10)


def test_recent_runs_are_a_strip_of_marks(open_table):
    clock = FakeClock()
    m = JobManager(clock=clock)
    calls = [0]

    def nightly() -> None:
        calls[0] += 1
        clock.advance(calls[0])  # each run takes a second longer than the last
        if calls[0] in (3, 4):
            raise RuntimeError(f"refresh failed <{calls[0]}>")

    try:
        m.add_job(nightly, name="nightly", at="every day at 02:00", offloaded=False)
        table = open_table(m)
        for expected in range(1, 5):
            m.run_now("nightly")
            wait_until(lambda expected=expected: table.row("nightly").info.runs == expected)
        wait_until(lambda: table.row("nightly").ident.value.count("jm-m ") == 4)
        html = table.row("nightly").ident.value
        marks = re.findall(r'<i class="jm-m (jm-m-\w+) jm-m-(\w+)" style="height:(\d+)%" title="([^"]*)"', html)
        assert [(shape, outcome) for shape, outcome, _h, _t in marks] == [
            ("jm-m-up", "finished"),
            ("jm-m-up", "finished"),
            ("jm-m-down", "failed"),
            ("jm-m-down", "failed"),
        ]
        heights = [int(h) for _s, _o, h, _t in marks]
        assert heights == sorted(heights) and heights[-1] == 48  # the slowest recent run is the tallest
        assert "4.0 s · failed\nRuntimeError: refresh failed &lt;4&gt;" in marks[-1][3]  # hover: time, duration, error
        assert '<span class="jm-c jm-c-runs">4</span>' in html
        assert "4 ✓✓✗✗" in render_text(m)  # the text table: the count, then the outcomes
    finally:
        m.close(timeout=10)


def test_the_expanded_traceback_leaves_out_ipythons_own_frames():
    ipython = pytest.importorskip("IPython")
    ipython_file = ipython.core.interactiveshell.__file__
    text = (
        "Traceback (most recent call last):\n"
        '  File "/tmp/ipykernel_1/123.py", line 3, in flaky\n'
        '    open("missing.txt")\n'
        f'  File "{ipython_file}", line 339, in _modified_open\n'
        "    return io_open(file, *args, **kwargs)\n"
        "           ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^\n"
        "FileNotFoundError: [Errno 2] No such file or directory: 'missing.txt'\n"
    )
    cleaned = user_traceback(text)
    assert "_modified_open" not in cleaned and "io_open" not in cleaned and "^^^" not in cleaned
    assert cleaned.splitlines() == [
        "Traceback (most recent call last):",
        '  File "/tmp/ipykernel_1/123.py", line 3, in flaky',
        '    open("missing.txt")',
        "FileNotFoundError: [Errno 2] No such file or directory: 'missing.txt'",
    ]


def test_the_expanded_row_lists_recent_runs_and_no_attempt_for_a_first_attempt(open_table):
    m = JobManager()
    try:
        m.add_one_off_job(_boom, name="once", offloaded=False)
        table = open_table(m)
        wait_until(lambda: table.row("once").status == "failed")
        row = table.row("once")
        row.expand()
        assert "attempt" not in row.detail.value  # a first attempt (or a rerun) is not "attempt 1"
        assert 'class="jm-error"' in row.detail.value and "RuntimeError: boom" in row.detail.value
    finally:
        m.close(timeout=10)


def test_the_expanded_row_opens_each_past_runs_output_and_keeps_it_open_while_the_live_run_prints(open_table):
    m = JobManager()
    calls = [0]
    talking, done = threading.Event(), threading.Event()

    async def chatty() -> None:
        calls[0] += 1
        print(f"run {calls[0]} says <hi>")
        if calls[0] == 2:
            raise RuntimeError("second run failed")
        if calls[0] == 3:  # the live run: prints again while the row is expanded, then waits
            await asyncio.get_running_loop().run_in_executor(None, talking.wait, WAIT)
            print("still going")
            await asyncio.get_running_loop().run_in_executor(None, done.wait, WAIT)

    try:
        m.add_job(chatty, name="chatty", at="every day at 02:00", offloaded=False)
        table = open_table(m)
        for expected in (1, 2):
            m.run_now("chatty")
            wait_until(lambda expected=expected: table.row("chatty").info.runs == expected)
        m.run_now("chatty")
        wait_until(lambda: table.row("chatty").status == "started")
        row = table.row("chatty")
        row.expand()
        wait_until(lambda: "run 3 says" in row.detail.value)
        history = row.history.value
        assert row.history in row.pane.children and "run 3 says" not in history  # the live run is the pane's
        pattern = r'<details class="jm-run" data-run="([^"]+)"><summary>(.*?)</summary>(.*?)</details>'
        details = re.findall(pattern, history, flags=re.S)
        ended = {run.run_id: run for run in m.runs("chatty")}
        assert [run_id for run_id, _s, _b in details] == [mark.run_id for mark in reversed(row.info.recent)]
        assert [ended[run_id].output for run_id, _s, _b in details] == ["run 2 says <hi>\n", "run 1 says <hi>\n"]
        (_id2, summary2, body2), (_id1, summary1, body1) = details  # newest first, each in its own <details>
        assert "failed" in summary2 and "RuntimeError: second run failed" in summary2
        assert '<pre class="jm-run-output">run 2 says &lt;hi&gt;\n</pre>' in body2 and "jm-run-error" in body2
        assert "Traceback" in body2 and "run 1" not in body2
        assert "finished" in summary1 and body1 == '<pre class="jm-run-output">run 1 says &lt;hi&gt;\n</pre>'
        assert 'class="jm-output"' not in history and 'class="jm-error"' not in history  # the live pane's classes

        renders: list[str] = []
        row.history.observe(lambda change: renders.append(change["new"]), names="value")
        talking.set()
        wait_until(lambda: "still going" in row.detail.value)  # an output event of the running run
        assert renders == [] and row.history.value == history  # did not re-render the list (an open run stays open)
        done.set()
        wait_until(lambda: len(renders) == 1 and "run 3 says" in row.history.value)  # the run ended: now listed
        assert row.history.value.count('<details class="jm-run"') == 3
        assert "run 3 says &lt;hi&gt;\nstill going\n</pre>" in row.history.value
    finally:
        talking.set()
        done.set()
        m.close(timeout=10)


def test_a_past_runs_shown_output_is_its_last_characters():
    from jobmanager_nb.model import RunMark
    from jobmanager_nb.notebook.rows import _OUTPUT_TAIL, _history_html

    marks = (RunMark("r1", "finished", NOW, NOW), RunMark("r2", "finished", NOW, NOW))
    long = replace(ended("finished"), run_id="r1", output="x" * 5 + "y" * _OUTPUT_TAIL)
    html = _history_html(marks, [long], NOW)
    assert "… 5 earlier characters not shown" in html and "x" not in html.split("<pre")[1]
    assert '<div class="jm-run" data-run="r2">' in html  # no output known: nothing to open
