"""Clicks while the kernel is busy (docs/dashboard.md, "Clicks while the kernel is busy").

In a real kernel, driven over jupyter_client the way a front end drives it: a click a front end sends on a
kernel subshell (as JupyterLab >= 4.4 does) is handled during a busy cell, on that subshell's thread and
without IPython's execute hooks; a click sent without one waits for the cell. In process: a clicked button
stops looking pending once handled, and a repeat of the same click queued behind the cell is dropped."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from polling import wait_until

from jobmanager_nb import JobManager
from jobmanager_nb.notebook import table as table_module
from jobmanager_nb.notebook.table import JobTable

jupyter_client = pytest.importorskip("jupyter_client")
from jupyter_client.manager import start_new_kernel  # noqa: E402

WAIT = 30.0


# ----------------------------------------------------------------------------- in process


@pytest.fixture
def manager() -> Iterator[JobManager]:
    m = JobManager(kill_grace=1.0)
    yield m
    m.close(timeout=10)


@pytest.fixture
def open_table(manager: JobManager) -> Iterator[Callable[[], JobTable]]:
    tables: list[JobTable] = []

    def make() -> JobTable:
        tables.append(JobTable(manager))
        return tables[-1]

    yield make
    for table in tables:
        table.close()


def test_a_clicked_button_looks_pending_until_the_kernel_handles_it(manager, open_table):
    style = open_table().widget.children[0].value
    assert "jm-pending" in style and ".jm-btn:focus:not(:focus-visible):not(.jm-done)" in style
    assert "prefers-reduced-motion" in style

    table = open_table()
    manager.add_job(lambda: None, name="tick", at=3600, offloaded=False)
    wait_until(lambda: "pause" in table.row("tick").buttons)
    pause = table.row("tick").buttons["pause"]
    assert "jm-done" not in pause._dom_classes  # what the browser shows while the click is on its way
    manager.remove_job("tick")  # the click is refused: the button stays on screen for a moment
    pause.click()
    assert "jm-done" in pause._dom_classes and table.message.startswith("⚠ Could not pause tick")


def test_a_button_shown_again_looks_pending_again_when_clicked(manager, open_table):
    table = open_table()
    manager.add_job(lambda: None, name="tick", at=3600, offloaded=False)
    wait_until(lambda: "pause" in table.row("tick").buttons)
    pause = table.row("tick").buttons["pause"]
    pause.click()
    wait_until(lambda: "resume" in table.row("tick").buttons)  # Pause is gone from the row: re-armed
    assert "jm-done" not in pause._dom_classes
    time.sleep(table_module._REPEAT_SECONDS)
    table.row("tick").buttons["resume"].click()
    wait_until(lambda: table.row("tick").buttons.get("pause") is pause and not manager.job("tick").paused)


def test_a_repeated_click_queued_behind_a_busy_cell_is_dropped(manager, open_table):
    runs: list[int] = []

    def flaky() -> None:
        runs.append(1)
        if len(runs) == 1:
            raise RuntimeError("first time fails")

    table = open_table()
    manager.add_one_off_job(flaky, name="flaky", offloaded=False)
    wait_until(lambda: table.row("flaky").status == "failed")
    rerun = table.row("flaky").buttons["rerun"]
    rerun.click()  # the user clicked during a busy cell, saw nothing happen, clicked again:
    rerun.click()  # both reach the kernel one after the other once the cell ends
    wait_until(lambda: table.row("flaky").status == "finished")
    assert table.message == "" and len(runs) == 2  # no "already executed" for the second click


def test_the_same_button_after_the_repeat_window_is_a_new_click(manager, open_table, monkeypatch):
    monkeypatch.setattr(table_module, "_REPEAT_SECONDS", 0.05)
    table = open_table()
    manager.add_job(lambda: None, name="gone", at=3600, offloaded=False)
    wait_until(lambda: "pause" in table.row("gone").buttons)
    pause = table.row("gone").buttons["pause"]
    manager.remove_job("gone")
    pause.click()
    table._say("")
    time.sleep(0.1)
    pause.click()
    assert table.message.startswith("⚠ Could not pause gone")  # not dropped: handled (and refused) again


# ----------------------------------------------------------------------------- in a kernel


@pytest.fixture(scope="module")
def kc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    cwd = tmp_path_factory.mktemp("kernel")
    km, client = start_new_kernel(kernel_name="python3", startup_timeout=60, cwd=str(cwd))
    yield client
    client.stop_channels()
    km.shutdown_kernel(now=False)


def execute(kc: Any, code: str, timeout: float = WAIT) -> str:
    out: list[str] = []

    def hook(msg: dict[str, Any]) -> None:
        if msg["msg_type"] == "stream":
            out.append(msg["content"]["text"])
        elif msg["msg_type"] == "error":
            raise AssertionError("\n".join(msg["content"]["traceback"]))

    reply = kc.execute_interactive(code, output_hook=hook, timeout=timeout)
    assert reply["content"]["status"] == "ok", reply["content"]
    return "".join(out)


def click(kc: Any, model_id: str, subshell_id: str | None) -> None:
    """What @jupyter-widgets/base sends for a Button click; JupyterLab >= 4.4 puts the subshell it opened for
    the widget comm target in the header."""
    msg = kc.session.msg("comm_msg", {"comm_id": model_id, "data": {"method": "custom", "content": {"event": "click"}}})
    if subshell_id is not None:
        msg["header"]["subshell_id"] = subshell_id
    kc.shell_channel.send(msg)


def busy_cell_with_clicks(kc: Any, clicks: list[tuple[str, str | None]]) -> None:
    """Run a 1.5 s cell that notes (in ``SEEN``) whether each job is paused at its end, and send ``clicks``
    while it runs."""
    busy = kc.execute(
        "T0 = time.monotonic(); time.sleep(1.5); T1 = time.monotonic()\n"
        "SEEN = {name: m.job(name).paused for name in ('tick', 'tock')}"
    )
    while True:  # the kernel announces the cell's code on IOPub just before it runs it
        msg = kc.get_iopub_msg(timeout=WAIT)
        if msg["msg_type"] == "execute_input" and msg["parent_header"].get("msg_id") == busy:
            break
    time.sleep(0.2)
    for model_id, subshell in clicks:
        click(kc, model_id, subshell)
    while True:
        reply = kc.get_shell_msg(timeout=WAIT)
        if reply["parent_header"].get("msg_id") == busy:
            break


def setup_table(kc: Any, tmp_path: Path) -> dict[str, str]:
    """Two recurring jobs in a displayed table (the constructor builds their rows); each Pause click also
    notes (job, time, thread) in ``CLICKS``, each ``post_execute`` hook its thread in ``HOOKS``; returns the
    Pause buttons' model ids."""
    execute(
        kc,
        f"""
import threading, time
from jobmanager_nb.session import open_manager
from jobmanager_nb.notebook.table import JobTable
m = open_manager({str(tmp_path / "jobs.json")!r})  # closes the manager of an earlier test
for name in ('tick', 'tock'):
    m.add_job(lambda: None, name=name, at=3600, offloaded=False)
table = JobTable(m)
display(table)
""",
    )
    tick, tock = execute(kc, "print(*(table.row(n).buttons['pause'].model_id for n in ('tick', 'tock')))").split()
    execute(
        kc,
        "CLICKS = []\nHOOKS = []\n"
        "for name in ('tick', 'tock'):\n"
        "    table.row(name).buttons['pause'].on_click(\n"
        "        lambda b, name=name: CLICKS.append((name, time.monotonic(), threading.current_thread().name)))\n"
        "get_ipython().events.register('post_execute', lambda: HOOKS.append(threading.current_thread().name))\n",
    )
    return {"tick": tick, "tock": tock}


def subshell(kc: Any) -> str:
    info = kc.kernel_info(reply=True, timeout=WAIT)["content"]
    assert "kernel subshells" in info.get("supported_features", [])
    kc.control_channel.send(kc.session.msg("create_subshell_request", {}))
    subshell_id: str = kc.control_channel.get_msg(timeout=WAIT)["content"]["subshell_id"]
    return subshell_id


def test_a_click_sent_on_a_subshell_is_handled_while_a_cell_runs(kc, tmp_path):
    sub = subshell(kc)  # as JupyterLab >= 4.4 does for the jupyter.widget comm target
    ids = setup_table(kc, tmp_path)
    execute(kc, "HOOKS.clear()")
    busy_cell_with_clicks(kc, [(ids["tick"], sub)])
    assert execute(kc, "print(SEEN['tick'], m.job('tick').paused)").split() == ["True", "True"]  # during the cell
    name, during, thread = execute(kc, "print(CLICKS[0][0], CLICKS[0][1] < T1, CLICKS[0][2])").split()
    assert (name, during) == ("tick", "True") and re.fullmatch(r"subshell-[0-9a-f-]+", thread), thread
    assert execute(kc, "print(sorted(set(HOOKS)))").strip() == "['MainThread']"  # no hook on the subshell


def test_a_click_sent_without_a_subshell_waits_for_the_cell(kc, tmp_path):
    ids = setup_table(kc, tmp_path)
    busy_cell_with_clicks(kc, [(ids["tock"], None)])  # Notebook < 7.4, VS Code, or commsOverSubshells off
    deadline = time.monotonic() + WAIT
    while execute(kc, "print(len(CLICKS))").strip() != "1" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert execute(kc, "print(SEEN['tock'], m.job('tock').paused)").split() == ["False", "True"]  # after it
    after, thread = execute(kc, "print(CLICKS[0][1] >= T1, CLICKS[0][2])").split()
    assert (after, thread) == ("True", "MainThread")
