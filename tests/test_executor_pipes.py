"""Every pipe of ProcessExecutor is drained, with real processes: a fork server whose preload module
floods its stderr keeps forking workers, and a worker that writes far more than ``output_limit``
(while running, after ``"done"``, or through a process it started) never blocks on a full pipe."""

from __future__ import annotations

import json
import logging
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from executor_helpers import WAIT, Recorder, reference, wait_gone
from polling import wait_until

from jobmanager_nb.executors import OffloadedTask, ProcessExecutor
from jobmanager_nb.executors.local import DEFAULT_PRELOAD

pytestmark = pytest.mark.timeout(90)

FLOOD = 300 * 1024  # far more than a pipe holds (64 KiB on Linux)

CHATTY_PRELOAD = f"""\
import pathlib
import sys

for i in range({FLOOD // 1024}):
    sys.stderr.write(f"{{i:05d}} " + "x" * 1017 + "\\n")
sys.stderr.write("the last line of the chatty preload\\n")
sys.stderr.flush()
pathlib.Path(__file__).with_suffix(".imported").touch()
"""


@pytest.fixture
def chatty_executor(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ProcessExecutor]:
    """An executor whose fork server imports a module that writes 300 KiB to its stderr."""
    (tmp_path / "chatty_preload.py").write_text(CHATTY_PRELOAD)
    monkeypatch.syspath_prepend(str(tmp_path))  # the fork server starts with this process's sys.path
    ex = ProcessExecutor(spares=1, preload=["chatty_preload", *DEFAULT_PRELOAD])
    yield ex
    ex.shutdown(timeout=5)


def test_a_preload_that_floods_stderr_does_not_block_the_fork_server(
    chatty_executor: ProcessExecutor, tmp_path: Path
) -> None:
    for i in range(20):
        recorder = Recorder()
        chatty_executor.submit(reference("add", data={"a": i, "b": 1}), recorder)
        outcome = recorder.outcome(timeout=5)
        assert (outcome.status, outcome.result) == ("finished", i + 1)
    # The server imports its preload list while idle, so it may not be through yet; it gets through.
    wait_until((tmp_path / "chatty_preload.imported").exists, WAIT)
    assert chatty_executor.start_method == "forkserver"


def test_the_end_of_a_dead_fork_servers_stderr_is_logged_bounded(
    chatty_executor: ProcessExecutor, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    recorder = Recorder()
    chatty_executor.submit(reference("add", data={"a": 1, "b": 1}), recorder)
    assert recorder.outcome(timeout=5).result == 2
    wait_until((tmp_path / "chatty_preload.imported").exists, WAIT)  # the flood is over
    server = chatty_executor._launcher._server  # type: ignore[attr-defined]
    with caplog.at_level(logging.WARNING, logger="jobmanager_nb"):
        server.send_signal(signal.SIGKILL)
        recorder = Recorder()
        chatty_executor.submit(reference("add", data={"a": 2, "b": 2}), recorder)  # forked by a new server
        assert recorder.outcome(timeout=10).result == 4
        messages = wait_until(lambda: [m for m in caplog.messages if "fork server" in m and "ended with" in m], WAIT)
    (message,) = messages
    assert "the last line of the chatty preload" in message
    assert len(message) < 9 * 1024  # the last 8 KiB only


# --- the workers' pipes ----------------------------------------------------------------------------

FLOODING_SCRIPT = """\
import os
import sys

from jobmanager_nb import worker

line = "y" * 1023 + "\\n"
for _ in range(2560):  # 2.5 MiB through sys.stdout
    sys.stdout.write(line)
for _ in range(2560):  # 2.5 MiB straight to fd 2
    os.write(2, line.encode())
print("the end")
"""

DONE_THEN_FLOOD_SCRIPT = """\
import os
import sys

from jobmanager_nb import worker

worker.post_message(("pid", os.getpid()))
worker.post_message("done")
line = "z" * 1023 + "\\n"
for _ in range(5 * 1024):  # 5 MiB after the run was settled, while the worker lingers
    sys.stdout.write(line)
"""

GRANDCHILD_SCRIPT = """\
import os
import subprocess

from jobmanager_nb import worker

# A process that inherits the worker's stdout and goes on writing after the worker has exited.
child = subprocess.Popen(["sh", "-c", "head -c 5000000 /dev/zero; sleep 0.2; head -c 5000000 /dev/zero"])
worker.post_message(("pid", os.getpid(), child.pid))
"""


def script_task(tmp_path: Path, source: str, name: str) -> OffloadedTask:
    path = tmp_path / f"{name}.py"
    path.write_text(source)
    return OffloadedTask(f"run-{name}", name, "script", str(path), data_json=json.dumps({}))


@pytest.fixture
def small_limit() -> Iterator[ProcessExecutor]:
    ex = ProcessExecutor(spares=1, output_limit=1000, linger=30.0)
    yield ex
    ex.shutdown(timeout=5)


def test_a_worker_writing_5_mib_past_a_small_output_limit_ends_normally(
    small_limit: ProcessExecutor, tmp_path: Path
) -> None:
    recorder = Recorder()
    small_limit.submit(script_task(tmp_path, FLOODING_SCRIPT, "flood"), recorder)
    outcome = recorder.outcome(timeout=WAIT)
    assert (outcome.status, outcome.exit_code) == ("finished", 0)
    text = recorder.output()
    assert text.count("[output truncated") == 1
    assert len(text) <= 1000 + 200


def test_a_worker_writing_5_mib_after_done_exits_by_itself(small_limit: ProcessExecutor, tmp_path: Path) -> None:
    recorder = Recorder()
    handle = small_limit.submit(script_task(tmp_path, DONE_THEN_FLOOD_SCRIPT, "done_then_flood"), recorder)
    assert recorder.outcome(timeout=WAIT).status == "finished"  # settled at "done"
    process = handle.process  # type: ignore[attr-defined]
    wait_until(lambda: process.exited, WAIT)  # well before the 30 s linger
    assert (process.returncode, process.kill_requested) == (0, False)


def test_output_of_a_process_left_behind_never_blocks_anything(small_limit: ProcessExecutor, tmp_path: Path) -> None:
    recorder = Recorder()
    small_limit.submit(script_task(tmp_path, GRANDCHILD_SCRIPT, "grandchild"), recorder)
    _, pid, grandchild = recorder.wait_message(lambda m: isinstance(m, tuple))
    assert recorder.outcome(timeout=WAIT).status == "finished"
    assert wait_gone([pid, grandchild], timeout=WAIT) == []
    recorder = Recorder()
    small_limit.submit(reference("add", data={"a": 1, "b": 2}), recorder)
    assert recorder.outcome(timeout=5).result == 3
