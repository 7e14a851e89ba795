"""The dashboard in-process (no kernel): rows, status, buttons, clicks, expansion, escaping, live updates."""

from __future__ import annotations

import asyncio
import re
import threading
import time
from collections.abc import Awaitable, Callable, Iterator

import ipywidgets as W
import pytest
from polling import wait_until

from jobmanager_nb import FakeClock, JobManager, JobNotFoundError
from jobmanager_nb.notebook.rows import actions_for
from jobmanager_nb.notebook.table import JobTable
from jobmanager_nb.notebook.text import countdown, css_slug, duration, render_text

WAIT = 10.0
XSS = "<img src=x onerror=alert(1)>"


def status_is(table: JobTable, name: str, status: str) -> Callable[[], bool]:
    def check() -> bool:
        try:
            return table.row(name).status == status
        except JobNotFoundError:
            return False

    return check


@pytest.fixture
def manager() -> Iterator[JobManager]:
    m = JobManager(kill_grace=1.0)
    yield m
    m.close(timeout=10)


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


@pytest.fixture
def gate() -> Iterator[threading.Event]:
    """Released at teardown at the latest, so a waiting job never outlives its test."""
    event = threading.Event()
    yield event
    event.set()


def waits_for(gate: threading.Event, before: str = "", after: str = "") -> Callable[[], Awaitable[None]]:
    """An async inline job that waits for ``gate`` without blocking the manager's loop."""

    async def job() -> None:
        if before:
            print(before)
        await asyncio.get_running_loop().run_in_executor(None, gate.wait, WAIT)
        if after:
            print(after)

    return job


# ----------------------------------------------------------------------------- rows and status


def test_rows_appear_for_existing_and_new_jobs_in_manager_order(manager, open_table):
    manager.add_job(lambda: None, name="first", at=3600, offloaded=False)
    table = open_table(manager)
    assert table.names == ["first"] and table.row("first").status == "scheduled"
    manager.add_job(lambda: None, name="second", at="0 2 * * *", offloaded=False)
    wait_until(lambda: table.names == ["first", "second"])
    row = table.row("second")
    assert row.status == "scheduled"
    assert manager.job("second").schedule_description in row.ident.value
    assert "jm-row" in row.widget._dom_classes and "jm-row-second" in row.widget._dom_classes
    assert row.widget in table.widget.children[-1].children


def test_row_lookup_error_names_the_rows(manager, open_table):
    manager.add_job(lambda: None, name="only", at=3600, offloaded=False)
    table = open_table(manager)
    with pytest.raises(LookupError, match=r'no row for "ghost".*only'):
        table.row("ghost")


def test_status_follows_inline_runs_queued_started_finished(open_table, gate):
    m = JobManager(inline_concurrency=1)
    try:
        table = open_table(m)
        m.add_job(waits_for(gate), name="blocker", offloaded=False)
        m.add_job(lambda: print("after"), name="waiter", offloaded=False)
        wait_until(status_is(table, "blocker", "started"))
        wait_until(status_is(table, "waiter", "queued"))
        assert "jm-s-started" in table.row("blocker").status_html.value
        gate.set()
        wait_until(status_is(table, "blocker", "finished"))
        wait_until(status_is(table, "waiter", "finished"))
        timing = table.row("waiter").timing.value  # last run: start · duration · outcome, then next run
        start, took = r"\d\d:\d\d:\d\d", r"(&lt;1 ms|\d+ ms|[\d.]+ s)"
        last = (  # the duration is a span of its own, which narrow cells hide
            rf'<span class="jm-c jm-c-last" [^>]*>{start}<span class="jm-took"> · {took}</span> · '
            r'<span class="jm-o-finished">finished</span></span>'
        )
        assert re.search(last, timing), timing
        runs = table.row("waiter").ident.value  # the run count follows the strip of recent runs
        assert re.search(r'<span class="jm-c jm-c-runs"[^>]*>1</span>', runs), runs
        assert table.row("waiter").buttons.keys() == {"remove"}  # a one-shot job that ran is done
    finally:
        m.close(timeout=10)


def test_failed_inline_run_shows_failed(manager, open_table):
    def boom() -> None:
        raise ValueError("nope")

    table = open_table(manager)
    manager.add_job(boom, name="boom", offloaded=False)
    wait_until(status_is(table, "boom", "failed"))
    row = table.row("boom")
    assert "jm-s-failed" in row.status_html.value and "jm-o-failed" in row.timing.value


def test_offloaded_job_shows_a_progress_bar_then_finishes(manager, open_table, tmp_path):
    script = tmp_path / "crunch.py"
    script.write_text(
        "import pathlib, time\n"
        "from jobmanager_nb import worker\n"
        "worker.progress(0.5, 'half way <b>')\n"
        "flag = pathlib.Path(worker.data['flag'])\n"
        "while not flag.exists():\n"
        "    time.sleep(0.01)\n"
        "print('crunched')\n"
    )
    flag = tmp_path / "go"
    table = open_table(manager)
    manager.add_job(str(script), data={"flag": str(flag)})
    wait_until(lambda: "jm-progress" in table.row("crunch").status_html.value)
    row = table.row("crunch")
    assert row.status == "started" and row.buttons.keys() == {"cancel", "remove"}
    assert 'data-label="50%"' in row.status_html.value and "width:50.0%" in row.status_html.value
    assert "half way &lt;b&gt;" in row.status_html.value
    assert "offloaded" in row.ident.value
    flag.touch()
    wait_until(status_is(table, "crunch", "finished"), timeout=30)
    assert "jm-progress" not in row.status_html.value
    row.expand()
    assert "crunched" in row.detail.value


# ----------------------------------------------------------------------------- buttons


def test_buttons_match_each_state(manager, open_table, gate):
    def fail() -> None:
        raise RuntimeError("x")

    table = open_table(manager)
    manager.add_job(lambda: None, name="recurring", at=3600, offloaded=False)
    manager.add_one_off_job(fail, name="bad-oneoff", offloaded=False)
    manager.add_one_off_job(lambda: None, name="good-oneoff", offloaded=False)
    manager.add_job(waits_for(gate), name="busy", offloaded=False)
    manager.add_job(lambda: None, name="plain", offloaded=False)
    wait_until(status_is(table, "bad-oneoff", "failed"))
    wait_until(status_is(table, "good-oneoff", "finished"))
    wait_until(status_is(table, "busy", "started"))
    wait_until(status_is(table, "plain", "finished"))
    assert list(table.row("recurring").buttons) == ["run", "pause", "remove"]
    assert list(table.row("bad-oneoff").buttons) == ["rerun", "remove"]
    assert '<span class="jm-c jm-c-kind">inline · one-off</span>' in table.row("bad-oneoff").ident.value
    assert '<span class="jm-c jm-c-kind">inline</span>' in table.row("recurring").ident.value
    assert list(table.row("good-oneoff").buttons) == ["remove"]
    assert list(table.row("busy").buttons) == ["cancel", "remove"]
    assert list(table.row("plain").buttons) == ["remove"]  # ran once, no longer registered
    manager.pause("recurring")
    wait_until(status_is(table, "recurring", "paused"))
    assert list(table.row("recurring").buttons) == ["run", "resume", "remove"]
    # what is shown is exactly what applies: the button box holds the same buttons
    row = table.row("recurring")
    assert tuple(row.buttons.values()) == row.buttons_box.children
    assert all(isinstance(b, W.Button) for b in row.buttons.values())
    assert "jm-btn-resume" in row.buttons["resume"]._dom_classes


def test_run_now_button_starts_a_run(manager, open_table):
    table = open_table(manager)
    manager.add_job(lambda: print("ran"), name="nightly", at="0 3 * * *", offloaded=False)
    wait_until(lambda: "nightly" in table.names)
    table.row("nightly").buttons["run"].click()
    wait_until(lambda: table.row("nightly").info.runs == 1)
    wait_until(lambda: re.search(r'<span class="jm-c jm-c-runs"[^>]*>1</span>', table.row("nightly").ident.value))
    assert table.row("nightly").status == "scheduled"  # it keeps its schedule
    assert "finished" in table.row("nightly").timing.value
    assert table.message == ""


def test_cancel_button_cancels_a_queued_run(open_table, gate):
    m = JobManager(inline_concurrency=1)
    try:
        table = open_table(m)
        m.add_job(waits_for(gate), name="blocker", offloaded=False)
        m.add_job(lambda: None, name="queued-one", offloaded=False)
        wait_until(status_is(table, "queued-one", "queued"))
        table.row("queued-one").buttons["cancel"].click()
        wait_until(status_is(table, "queued-one", "cancelled"))
        assert "cancelled" in table.row("queued-one").timing.value
        assert table.row("blocker").status == "started"
    finally:
        gate.set()
        m.close(timeout=10)


def test_cancel_button_stops_a_running_offloaded_job(manager, open_table, tmp_path):
    script = tmp_path / "sleeper.py"
    script.write_text("import time\nfrom jobmanager_nb import worker\nworker.cancelled.wait(60)\n")
    table = open_table(manager)
    manager.add_job(str(script))
    wait_until(status_is(table, "sleeper", "started"), timeout=30)
    table.row("sleeper").buttons["cancel"].click()
    wait_until(lambda: table.row("sleeper").status in ("finished", "failed", "cancelled"), timeout=30)
    assert "cancel" not in table.row("sleeper").buttons


def test_rerun_button_reruns_a_failed_one_off(manager, open_table):
    attempts: list[int] = []

    def flaky() -> None:
        attempts.append(1)
        if len(attempts) < 2:
            raise RuntimeError("first time fails")

    table = open_table(manager)
    manager.add_one_off_job(flaky, name="flaky", offloaded=False)
    wait_until(status_is(table, "flaky", "failed"))
    table.row("flaky").buttons["rerun"].click()
    wait_until(status_is(table, "flaky", "finished"))
    assert len(attempts) == 2 and list(table.row("flaky").buttons) == ["remove"]
    assert manager.store.get("flaky").status == "finished"


def test_pause_and_resume_buttons(manager, open_table):
    table = open_table(manager)
    manager.add_job(lambda: None, name="ticker", at=3600, offloaded=False)
    wait_until(lambda: "ticker" in table.names)
    table.row("ticker").buttons["pause"].click()
    wait_until(status_is(table, "ticker", "paused"))
    assert manager.job("ticker").paused and "paused" in table.row("ticker").timing.value
    table.row("ticker").buttons["resume"].click()
    wait_until(status_is(table, "ticker", "scheduled"))
    assert not manager.job("ticker").paused


def test_remove_button_removes_the_row(manager, open_table):
    table = open_table(manager)
    manager.add_job(lambda: None, name="keep", at=3600, offloaded=False)
    manager.add_job(lambda: None, name="drop", at=3600, offloaded=False)
    wait_until(lambda: table.names == ["keep", "drop"])
    row = table.row("drop")
    row.buttons["remove"].click()
    wait_until(lambda: table.names == ["keep"])
    assert row.widget not in table.widget.children[-1].children
    assert row.widget.comm is None  # its widgets are closed
    with pytest.raises(JobNotFoundError):
        manager.job("drop")


def test_a_refused_click_shows_one_line_and_raises_nothing(manager, open_table):
    table = open_table(manager)
    manager.add_job(lambda: None, name="gone", at=3600, offloaded=False)
    wait_until(lambda: "gone" in table.names)
    stale = table.row("gone").buttons["pause"]
    manager.remove_job("gone")  # the button is still on screen for up to 0.1 s
    stale.click()
    assert table.message.startswith('⚠ Could not pause gone: No job named "gone"')
    assert "\n" not in table.message and "Traceback" not in table.message
    assert table._message.layout.display is None  # shown
    manager.add_job(lambda: None, name="fine", at=3600, offloaded=False)
    wait_until(lambda: "fine" in table.names)
    table.row("fine").buttons["pause"].click()
    assert table.message == "" and table._message.layout.display == "none"


# ----------------------------------------------------------------------------- expansion and escaping


def test_expanding_shows_output_and_traceback(manager, open_table):
    def noisy() -> None:
        print("line one")
        print("line two")
        raise KeyError("the missing key")

    table = open_table(manager)
    manager.add_job(noisy, name="noisy", offloaded=False)
    wait_until(status_is(table, "noisy", "failed"))
    row = table.row("noisy")
    assert row.detail is None and not row.expanded
    row.toggle.click()  # the ▸ button
    assert row.expanded and row.pane in row.widget.children and row.toggle.description == "▾"
    assert "line one\nline two" in row.detail.value
    assert "Traceback (most recent call last)" in row.detail.value and "KeyError: &#x27;the missing key&#x27;" in (
        row.detail.value
    )
    row.toggle.click()
    assert not row.expanded and row.pane not in row.widget.children and row.toggle.description == "▸"


def test_expanded_row_follows_live_output(manager, open_table, gate):
    table = open_table(manager)
    manager.add_job(waits_for(gate, "before", "after"), name="talker", offloaded=False)
    wait_until(status_is(table, "talker", "started"))
    table.row("talker").expand()
    wait_until(lambda: "before" in table.row("talker").detail.value)
    gate.set()
    wait_until(lambda: "after" in table.row("talker").detail.value)


def test_every_user_string_is_html_escaped(manager, open_table):
    def evil() -> None:
        print("<script>alert(2)</script>")
        raise ValueError("<b>bold</b>")

    table = open_table(manager)
    manager.add_job(evil, name=XSS, offloaded=False)
    wait_until(status_is(table, XSS, "failed"))
    row = table.row(XSS)
    row.expand()
    html = row.ident.value + row.status_html.value + row.timing.value + row.detail.value + table._summary.value
    assert "<img" not in html and "<script>" not in html and "<b>bold" not in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in row.ident.value
    assert "&lt;script&gt;" in row.detail.value
    assert row.css_class == f"jm-row-{css_slug(XSS)}" and css_slug(XSS).startswith("img-src-x-onerror-alert-1-")
    # a refused click with the name in the message is escaped too
    stale = row.buttons["remove"]
    manager.remove_job(XSS)
    stale.click()  # a second remove: refused, with the name in the message
    assert "<img" not in table._message.value and "&lt;img" in table._message.value


def test_css_slugs_are_safe_and_distinct():
    assert css_slug("nightly-report_2") == "nightly-report_2"
    assert css_slug("a b") != css_slug("a-b") and css_slug("a b").startswith("a-b-")
    assert css_slug("Ärger") != css_slug("rger")
    assert all(ch.isalnum() or ch in "-_" for ch in css_slug('"; } * { color: red'))


# ----------------------------------------------------------------------------- live updates


def test_countdown_ticks_once_a_second_while_a_row_has_a_next_run(open_table):
    clock = FakeClock()
    m = JobManager(clock=clock)
    try:
        m.add_job(lambda: None, name="often", at=3000, offloaded=False)
        table = open_table(m, tick=0.05)
        next_cell = lambda: table.row("often").timing.value  # noqa: E731
        assert "in 50 min" in next_cell()
        clock.advance(1800)  # no event: only the tick notices
        wait_until(lambda: "in 20 min" in next_cell())
        clock.advance(1190)
        wait_until(lambda: "in 10 s" in next_cell())
    finally:
        m.close(timeout=5)


def test_no_countdown_means_no_wakeups(manager, open_table):
    table = open_table(manager, tick=0.02, interval=0.01)
    manager.add_job(lambda: None, name="once", offloaded=False)
    wait_until(status_is(table, "once", "finished"))
    assert manager.flush_events()  # the run's last events have reached the table (they come on their own thread)
    wait_until(lambda: not table._wake.is_set())
    assert table._wake.wait(0.3) is False  # a flush that was under way has ended by now
    settled = table.flushes
    assert table._thread.is_alive() and table._wake.wait(0.3) is False  # nothing wakes the flusher
    assert table.flushes == settled


def test_a_burst_of_1000_events_is_coalesced_into_few_flushes(manager, open_table, gate):
    async def chatty() -> None:
        await asyncio.get_running_loop().run_in_executor(None, gate.wait, WAIT)
        for i in range(500):
            print(i)  # print writes the text and the newline: two output events each
            if i % 10 == 9:
                await asyncio.sleep(0.01)  # spread the burst over half a second or more

    table = open_table(manager)
    written: list[str] = []  # the text of the output events (consecutive writes may arrive merged)
    manager.subscribe(lambda event: written.append(event.data["text"]) if event.kind == "output" else None)
    manager.add_job(chatty, name="chatty", offloaded=False)
    wait_until(status_is(table, "chatty", "started"))
    row = table.row("chatty")
    row.expand()
    changes: list[str] = []
    row.detail.observe(lambda change: changes.append("detail"), names="value")
    row.status_html.observe(lambda change: changes.append("status"), names="value")
    flushes_before = table.flushes
    started = time.monotonic()
    gate.set()
    wait_until(lambda: table.row("chatty").status == "finished" and "\n499\n" in row.detail.value)
    elapsed = time.monotonic() - started
    flushes = table.flushes - flushes_before
    assert manager.flush_events()
    outputs = len(written)
    assert "".join(written) == "".join(f"{i}\n" for i in range(500)) and elapsed >= 0.5
    bound = elapsed / 0.1 + 2  # at most one flush per 0.1 s, plus the first and the last
    assert 2 <= flushes <= bound, (flushes, elapsed)
    assert changes.count("detail") <= flushes and changes.count("status") <= 2
    print(
        f"\n{outputs} output events (1000 writes) in {elapsed:.2f} s -> {flushes} flushes, "
        f"{len(changes)} widget value changes"
    )


def test_widget_mutations_never_overlap(open_table):
    """The flusher thread (fed by the timer and loop threads) and clicks on this thread take turns."""
    m = JobManager()
    inside = [0]
    overlaps: list[int] = []
    guard = threading.Lock()

    def observer(change: object) -> None:
        with guard:
            inside[0] += 1
            if inside[0] > 1:
                overlaps.append(inside[0])
        time.sleep(0.0005)  # widen the window in which a concurrent change would be seen
        with guard:
            inside[0] -= 1

    try:
        for i in range(5):
            m.add_job(lambda: print("tick"), name=f"fast{i}", at=0.05, offloaded=False)
        table = open_table(m, interval=0.01)
        for name in table.names:
            row = table.row(name)
            for widget in (row.widget, row.toggle, row.status_html, row.timing, row.buttons_box):
                widget.observe(observer)
        deadline = time.monotonic() + 0.6
        while time.monotonic() < deadline:
            for name in table.names:
                row = table.row(name)
                row.toggle.click()  # expand / collapse: changes made on this thread
                (row.buttons.get("pause") or row.buttons["resume"]).click()
        wait_until(lambda: all(m.job(n).runs > 0 for n in table.names))
        assert overlaps == []
    finally:
        m.close(timeout=5)


def test_close_unsubscribes_and_leaves_no_thread(manager):
    before = {t.ident for t in threading.enumerate()}
    table = JobTable(manager)
    thread = table._thread
    assert thread.is_alive() and thread.ident not in before and thread.name == "jobmanager_nb-dashboard"
    manager.add_job(lambda: None, name="one", at=3600, offloaded=False)
    wait_until(lambda: table.names == ["one"])
    table.close()
    assert not thread.is_alive() and table.closed
    assert [t for t in threading.enumerate() if t.name == "jobmanager_nb-dashboard" and t.ident not in before] == []
    assert table.widget.comm is None
    flushes = table.flushes
    manager.add_job(lambda: None, name="two", at=3600, offloaded=False)  # no subscriber any more
    assert table.flushes == flushes and table.names == []
    table.close()  # twice is fine


# ----------------------------------------------------------------------------- text


def test_render_text_and_repr(manager, open_table):
    def fail() -> None:
        raise RuntimeError("x")

    assert render_text(manager) == "No jobs."
    manager.add_job(lambda: None, name="hourly", at=3600, offloaded=False)
    manager.add_one_off_job(fail, name="once", offloaded=False)
    table = open_table(manager)
    wait_until(status_is(table, "once", "failed"))
    text = render_text(manager)
    lines = text.splitlines()
    assert lines[0].split() == ["NAME", "KIND", "SCHEDULE", "STATUS", "LAST", "RUN", "NEXT", "RUN", "RUNS"]
    assert set(lines[1]) <= {"-", " "}
    hourly = next(line for line in lines if line.startswith("hourly"))
    assert "scheduled" in hourly and ("in 59 min" in hourly or "in 1 h" in hourly)
    assert manager.job("hourly").schedule_description in hourly
    once = next(line for line in lines if line.startswith("once"))
    assert "inline · one-off" in once and "failed" in once
    assert lines[0].index("STATUS") == hourly.index("scheduled")  # columns line up
    assert repr(table).startswith("<JobTable 2 rows>\n") and text in repr(table)
    bundle = table._repr_mimebundle_()
    assert bundle["text/plain"] == text
    assert bundle["application/vnd.jupyter.widget-view+json"]["model_id"] == table.widget.model_id


def test_text_helpers():
    assert [countdown(s) for s in (0, 0.4, 3.6, 59, 61, 3599, 3600, 3660, 90000)] == [
        "due now",
        "due now",
        "in 4 s",
        "in 59 s",
        "in 1 min",
        "in 59 min",
        "in 1 h",
        "in 1 h 1 min",
        "in 1 d 1 h",
    ]
    assert [duration(s) for s in (0.0001, 0.042, 1.25, 42, 185, 7300)] == [
        "<1 ms",
        "42 ms",
        "1.2 s",
        "42 s",
        "3 min 5 s",
        "2 h 1 min",
    ]


def test_actions_for_reads_only_the_snapshot(manager):
    manager.add_job(lambda: None, name="r", at=3600, offloaded=False)
    assert actions_for(manager.job("r")) == ("run", "pause", "remove")


def test_table_defaults_to_the_session_manager(tmp_path, monkeypatch):
    from jobmanager_nb import session

    monkeypatch.chdir(tmp_path)
    manager = session.open_manager(store=None)
    try:
        table = JobTable()
        assert table.manager is manager
        table.close()
    finally:
        session.close_manager()
