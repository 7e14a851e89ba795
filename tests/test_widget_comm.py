"""The dashboard in a real kernel, driven over jupyter_client the way a frontend drives it: a Rerun click
sent as a comm message, and widget updates read back from IOPub. (What happens to a click while a cell runs:
tests/test_dashboard_busy.py.)"""

from __future__ import annotations

import queue
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

jupyter_client = pytest.importorskip("jupyter_client")
from jupyter_client.manager import start_new_kernel  # noqa: E402

WAIT = 30.0


@pytest.fixture(scope="module")
def kc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """One kernel for the module; each test opens its own session manager (and store) in it."""
    cwd = tmp_path_factory.mktemp("kernel")
    km, client = start_new_kernel(kernel_name="python3", startup_timeout=60, cwd=str(cwd))
    yield client
    client.stop_channels()
    km.shutdown_kernel(now=False)


def execute(kc: Any, code: str, timeout: float = WAIT) -> str:
    """Run ``code`` in the kernel; returns its stdout and raises on an error."""
    out: list[str] = []

    def hook(msg: dict[str, Any]) -> None:
        kind, content = msg["msg_type"], msg["content"]
        if kind == "stream":
            out.append(content["text"])
        elif kind == "error":
            raise AssertionError("\n".join(content["traceback"]))

    reply = kc.execute_interactive(code, output_hook=hook, timeout=timeout)
    assert reply["content"]["status"] == "ok", reply["content"]
    return "".join(out)


def kernel_wait(kc: Any, expression: str, expected: str, timeout: float = WAIT) -> None:
    """Poll ``print(expression)`` in the kernel until it prints ``expected``."""
    deadline = time.monotonic() + timeout
    seen = ""
    while time.monotonic() < deadline:
        seen = execute(kc, f"print({expression})").strip()
        if seen == expected:
            return
        time.sleep(0.05)
    raise AssertionError(f"{expression} is {seen!r}, not {expected!r}, after {timeout} s")


def click(kc: Any, model_id: str, subshell_id: str | None = None) -> None:
    """Exactly what @jupyter-widgets/base sends when a Button view is clicked (JupyterLab >= 4.4 adds
    the subshell it opened for the widget comm target to the header)."""
    msg = kc.session.msg("comm_msg", {"comm_id": model_id, "data": {"method": "custom", "content": {"event": "click"}}})
    if subshell_id is not None:
        msg["header"]["subshell_id"] = subshell_id
    kc.shell_channel.send(msg)


def setup_flaky(kc: Any, tmp_path: Path) -> None:
    execute(
        kc,
        f"""
import pathlib, threading, time
from jobmanager_nb.session import open_manager
from jobmanager_nb.notebook.table import JobTable
FLAG = pathlib.Path({str(tmp_path / "flag")!r})
m = open_manager({str(tmp_path / "jobs.json")!r})  # closes the manager of an earlier test

def flaky():
    if not FLAG.exists():
        raise RuntimeError("the flag file is missing")
    print("flag found")

m.add_one_off_job(flaky, name="flaky", offloaded=False)
""",
    )
    kernel_wait(kc, "m.job('flaky').status", "failed")
    execute(kc, "table = JobTable(m)\ndisplay(table)")
    kernel_wait(kc, "table.row('flaky').status", "failed")


def test_rerun_clicked_over_comm_reruns_and_the_frontend_sees_finished(kc, tmp_path):
    setup_flaky(kc, tmp_path)
    button, status = execute(
        kc, "print(table.row('flaky').buttons['rerun'].model_id, table.row('flaky').status_html.model_id)"
    ).split()
    (tmp_path / "flag").touch()
    while True:  # forget what IOPub said so far
        try:
            kc.get_iopub_msg(timeout=0.2)
        except queue.Empty:
            break
    click(kc, button)
    deadline, seen = time.monotonic() + WAIT, []
    while time.monotonic() < deadline:  # the flusher thread's update of the status cell reaches IOPub
        try:
            msg = kc.get_iopub_msg(timeout=1)
        except queue.Empty:
            continue
        content = msg["content"]
        if msg["msg_type"] == "comm_msg" and content["comm_id"] == status:
            value = content["data"].get("state", {}).get("value", "")
            seen.append(value)
            if "jm-s-finished" in value:
                break
    else:
        raise AssertionError(f"no update to 'finished' reached IOPub; saw {seen}")
    kernel_wait(kc, "table.row('flaky').status", "finished")
    assert execute(kc, "print(m.store.get('flaky').status, list(table.row('flaky').buttons))").split() == [
        "finished",
        "['remove']",
    ]
