"""The dashboard after a kernel restart: the store's one-offs that this kernel did not add are rows too, marked as
an earlier kernel's (or another live kernel's), with a Rerun button that works exactly like ``%job rerun``.

A restart is a new IPython shell and a new manager on the same store file, in the same folder."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from IPython.core.interactiveshell import InteractiveShell
from magics_support import cell, fresh_shell, line, usage_error, write_script
from polling import wait_until

import jobmanager_nb
from jobmanager_nb import JobFailedError, JobManager
from jobmanager_nb.notebook import oneoffs
from jobmanager_nb.notebook.table import JobTable
from jobmanager_nb.notebook.text import render_text

WAIT = 20.0

NEEDS_ROWS = "from pathlib import Path\nrows = int(Path('rows.txt').read_text())\n"


@contextmanager
def kernel(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[InteractiveShell, JobManager]]:
    """One kernel's life: a shell with the extension loaded, its manager on ``tmp_path/.jobmanager/jobs.json``."""
    with fresh_shell(tmp_path, monkeypatch) as ip:
        line(ip, "load_ext", "jobmanager_nb")
        yield ip, jobmanager_nb.get_manager()


@contextmanager
def dashboard(manager: JobManager) -> Iterator[JobTable]:
    table = JobTable(manager)
    try:
        yield table
    finally:
        table.close()


def failed_oneoff_cell(ip: InteractiveShell, manager: JobManager, name: str, body: str = NEEDS_ROWS) -> None:
    cell(ip, "oneoff", name, body)
    with pytest.raises(JobFailedError):
        manager.wait(name, WAIT)


def test_after_a_restart_the_failed_oneoff_is_a_row_whose_rerun_button_reruns_it(tmp_path, monkeypatch):
    with kernel(tmp_path, monkeypatch) as (ip, manager):
        failed_oneoff_cell(ip, manager, "import-rows")

    with kernel(tmp_path, monkeypatch) as (ip, manager):
        text = line(ip, "jobs")  # a terminal IPython: %jobs prints the table as text
        assert "No jobs" not in text
        row_text = next(row for row in text.splitlines() if row.startswith("import-rows"))
        assert "inline · one-off" in row_text and "failed (earlier kernel)" in row_text
        assert line(ip, "job", "list") == text

        with dashboard(manager) as table:
            assert table.names == ["import-rows"]
            row = table.row("import-rows")
            info = row.info
            assert (info.origin, info.status, info.one_off, info.kind) == ("earlier kernel", "failed", True, "inline")
            assert info.rerun_hint is None and info.last_run is not None
            assert "FileNotFoundError" in (info.last_run.error or "") and info.last_run.finished_at is not None
            assert "from an earlier kernel" in table._summary.value and "No jobs yet" not in table._summary.value
            assert "failed (earlier kernel)" in table._repr_mimebundle_()["text/plain"]
            assert "rerun" in row.buttons

            (tmp_path / "rows.txt").write_text("42")
            row.buttons["rerun"].click()
            assert table.message == ""
            assert manager.wait("import-rows", WAIT).ok and ip.user_ns["rows"] == 42
            wait_until(lambda: table.row("import-rows").info.origin == "this kernel")
            wait_until(lambda: table.row("import-rows").status == "finished")
            assert table.row("import-rows") is row and table.names == ["import-rows"]  # the same row, now live
            assert "rerun" not in row.buttons
            assert manager.store.get("import-rows").attempts == 2
            table.refresh()  # a full read: the record is this kernel's now, so no second row
            assert table.names == ["import-rows"] and table.row("import-rows").info.origin == "this kernel"


def test_running_the_cell_again_turns_the_earlier_row_into_the_live_one(tmp_path, monkeypatch):
    with kernel(tmp_path, monkeypatch) as (ip, manager):
        failed_oneoff_cell(ip, manager, "first")
        failed_oneoff_cell(ip, manager, "second")

    with kernel(tmp_path, monkeypatch) as (ip, manager), dashboard(manager) as table:
        assert table.names == ["first", "second"]
        second = table.row("second")
        (tmp_path / "rows.txt").write_text("7")
        cell(ip, "oneoff", "second", NEEDS_ROWS)  # the user runs the cell again
        assert manager.wait("second", WAIT).ok
        wait_until(lambda: second.info.origin == "this kernel" and second.status == "finished")
        assert table.names == ["first", "second"] and table.row("second") is second
        assert table.row("first").info.origin == "earlier kernel"


def test_a_oneoff_whose_code_a_new_kernel_cannot_get_back_says_why_instead_of_rerunning(tmp_path, monkeypatch):
    with kernel(tmp_path, monkeypatch) as (ip, manager):
        ip.run_cell("def flaky():\n    raise RuntimeError('first time fails')\n")
        ip.run_cell("import jobmanager_nb\njobmanager_nb.get_manager().add_one_off_job(flaky, name='flaky')")
        with pytest.raises(JobFailedError):
            manager.wait("flaky", WAIT)
        cell(ip, "oneoff", "done-once", "x = 1\n")
        assert manager.wait("done-once", WAIT).ok

    with kernel(tmp_path, monkeypatch) as (ip, manager), dashboard(manager) as table:
        flaky = table.row("flaky").info
        assert flaky.status == "failed" and flaky.target == "flaky()"
        assert flaky.rerun_hint == "its code was a function defined in a notebook cell: run that cell again"
        done = table.row("done-once").info
        assert done.status == "finished" and done.last_run is not None and done.last_run.ok
        assert done.rerun_hint is not None and "runs once, ever" in done.rerun_hint

        table._act("flaky", "rerun")  # what the button does, whether or not the row shows one
        assert table.message == (
            "⚠ Could not rerun flaky: its code was a function defined in a notebook cell: run that cell again."
        )
        assert usage_error(ip, "job", "rerun flaky") == (
            'Cannot rerun one-off "flaky" (failed in the store): its code was a function defined in a notebook '
            "cell: run that cell again."
        )
        assert "flaky" not in {info.name for info in manager.jobs}  # nothing was added


def test_a_script_oneoff_added_by_code_is_rerunnable_from_its_record(tmp_path, monkeypatch):
    body = "from pathlib import Path\nprint(Path('input.txt').read_text())\n"
    script = write_script(tmp_path, "jobs/report.py", body)
    with kernel(tmp_path, monkeypatch) as (_ip, manager):
        manager.add_one_off_job(str(script), name="report")  # no magic: no recipe, only the record's meta
        with pytest.raises(JobFailedError):
            manager.wait("report", WAIT)

    with kernel(tmp_path, monkeypatch) as (_ip, manager), dashboard(manager) as table:
        row = table.row("report")
        assert row.info.kind == "offloaded" and row.info.target == str(script) and row.info.rerun_hint is None
        (tmp_path / "input.txt").write_text("ok")
        row.buttons["rerun"].click()
        assert table.message == "" and manager.wait("report", WAIT).output == "ok\n"


def test_the_button_and_the_magic_take_the_same_rerun_path(tmp_path, monkeypatch):
    with kernel(tmp_path, monkeypatch) as (ip, manager):
        failed_oneoff_cell(ip, manager, "a")
        failed_oneoff_cell(ip, manager, "b")

    calls: list[str] = []
    real = oneoffs.rerun_one_off

    def spy(manager: JobManager, name: str, shell: InteractiveShell | None) -> int:
        calls.append(name)
        return real(manager, name, shell)

    monkeypatch.setattr(oneoffs, "rerun_one_off", spy)
    (tmp_path / "rows.txt").write_text("1")
    with kernel(tmp_path, monkeypatch) as (ip, manager), dashboard(manager) as table:
        table.row("a").buttons["rerun"].click()
        assert line(ip, "job", "rerun b").startswith('rerunning one-off "b" (attempt 2, a rerun); ')
        assert calls == ["a", "b"]
        assert manager.wait("a", WAIT).ok and manager.wait("b", WAIT).ok
        assert [manager.store.get(name).attempts for name in ("a", "b")] == [2, 2]


def test_remove_on_an_earlier_row_hides_it_and_keeps_the_record(tmp_path, monkeypatch):
    with kernel(tmp_path, monkeypatch) as (ip, manager):
        failed_oneoff_cell(ip, manager, "old")

    with kernel(tmp_path, monkeypatch) as (_ip, manager), dashboard(manager) as table:
        table.row("old").buttons["remove"].click()
        assert table.message == ""
        wait_until(lambda: table.names == [])
        table.refresh()
        assert table.names == [] and manager.store.get("old").status == "failed"


def test_the_store_is_read_once_per_refresh_not_per_event(tmp_path, monkeypatch):
    with kernel(tmp_path, monkeypatch) as (ip, manager):
        failed_oneoff_cell(ip, manager, "old")

    with kernel(tmp_path, monkeypatch) as (_ip, manager):
        reads: list[int] = []
        real = manager.one_off_records

        def counting() -> list:
            reads.append(1)
            return real()

        monkeypatch.setattr(manager, "one_off_records", counting)
        with dashboard(manager) as table:
            assert len(reads) == 1 and table.names == ["old"]
            for i in range(30):
                manager.add_job(lambda: None, name=f"job{i}", offloaded=False)
            wait_until(lambda: len(table.names) == 31)
            wait_until(lambda: all(table.row(f"job{i}").status == "finished" for i in range(30)))
            assert len(reads) == 1  # 30 jobs' events, each row updated, and no store read
            table.refresh()
            assert len(reads) == 2 and table.names[0] == "old"


OTHER_KERNEL = textwrap.dedent(
    """\
    import pathlib, time
    from jobmanager_nb import JobManager

    def nightly():
        while not pathlib.Path("go").exists():
            time.sleep(0.02)

    with JobManager(".jobmanager/jobs.json") as manager:
        manager.add_one_off_job(nightly, name="nightly", offloaded=False)
        manager.wait("nightly", 60)
    """
)


def test_a_oneoff_running_in_another_live_kernel_is_shown_as_such(tmp_path, monkeypatch):
    other = subprocess.Popen([sys.executable, "-c", OTHER_KERNEL], cwd=tmp_path)
    try:
        with kernel(tmp_path, monkeypatch) as (ip, manager):
            wait_until(lambda: (r := manager.store.get("nightly")) is not None and r.status == "started", WAIT)
            with dashboard(manager) as table:
                info = table.row("nightly").info
                assert info.origin == "earlier kernel" and info.status == "started"
                assert info.current_run is not None and info.last_run is None
                assert info.rerun_hint is not None and f"in another kernel (pid {other.pid} on " in info.rerun_hint
                shown = next(row for row in str(table).splitlines() if row.startswith("nightly"))
                assert "started" in shown and "(another kernel)" in shown
                table._act("nightly", "cancel")
                assert table.message.startswith("⚠ Could not cancel nightly: it is started in another kernel (pid")
                assert usage_error(ip, "job", "rerun nightly").startswith(
                    'Cannot rerun one-off "nightly" (started in the store): it is started in another kernel'
                )
                (tmp_path / "go").write_text("")
                assert other.wait(WAIT) == 0
                table.refresh()
                info = table.row("nightly").info
                assert info.status == "finished" and info.current_run is None and "(earlier kernel)" in str(table)
    finally:
        other.kill()
        other.wait(10)


def test_render_text_lists_the_earlier_rows_after_the_jobs(tmp_path, monkeypatch):
    with kernel(tmp_path, monkeypatch) as (ip, manager):
        failed_oneoff_cell(ip, manager, "old")

    with kernel(tmp_path, monkeypatch) as (ip, manager):
        manager.add_job(lambda: None, name="hourly", at=3600, offloaded=False)
        earlier = oneoffs.earlier_one_offs(manager, ip)
        assert [info.name for info in earlier] == ["old"]
        lines = render_text(manager, earlier).splitlines()
        assert [row.split()[0] for row in lines[2:]] == ["hourly", "old"]
        assert "failed (earlier kernel)" in lines[3] and "(earlier kernel)" not in lines[2]
        assert render_text(manager).count("old") == 0  # the parameter is what adds them
