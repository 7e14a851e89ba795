"""The executor never blocks on a write to a worker: a worker that does not read (its
``worker.on_message`` handler stuck while the notebook posts megabytes, or a big task handed to a
worker the fork server has not forked yet) holds only its own bytes. ``post_message`` returns at
once, other runs start and end, and cancel deadlines and ``shutdown``'s timeout hold."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest
from executor_helpers import WAIT, Recorder, reference, wait_gone

from jobmanager_nb.executors import OffloadedTask, ProcessExecutor
from jobmanager_nb.executors.local import DEFAULT_PRELOAD

pytestmark = pytest.mark.timeout(90)

STUCK_READER = """\
import time
from jobmanager_nb import worker

def job():
    worker.on_message(lambda message: time.sleep(600))  # the first message stops all reading
    worker.post_message("ready")
    time.sleep(600)
"""

SLOW_PRELOAD = "import time\ntime.sleep(4)\n"


def test_a_worker_that_does_not_read_blocks_neither_post_message_nor_the_executor(tmp_path: Path) -> None:
    (tmp_path / "stuck_reader.py").write_text(STUCK_READER)
    ex = ProcessExecutor(spares=0)
    stuck = Recorder()
    handle = ex.submit(
        OffloadedTask("stuck", "stuck", "reference", "stuck_reader:job", sys_path=(str(tmp_path),)), stuck
    )
    stuck.wait_message(lambda m: m == "ready")
    pid = handle.pid
    assert pid is not None

    t0 = time.monotonic()
    for _ in range(8):  # 8 MiB: far more than a socket holds
        handle.post_message(b"x" * (1 << 20))
    assert time.monotonic() - t0 < 2.0, "post_message waited for the worker to read"

    other = Recorder()  # the I/O thread goes on serving the other runs meanwhile
    ex.submit(reference("add", data={"a": 2, "b": 3}), other)
    outcome = other.outcome(timeout=WAIT)
    assert (outcome.status, outcome.result) == ("finished", 5)
    assert not handle.done

    done = threading.Event()
    t0 = time.monotonic()
    threading.Thread(target=lambda: (ex.shutdown(timeout=1), done.set()), daemon=True).start()
    assert done.wait(10), "shutdown(timeout=1) did not return"
    assert time.monotonic() - t0 < 6.0
    stuck_outcome = stuck.outcome(timeout=1)
    assert stuck_outcome.status == "failed" and stuck_outcome.cancelled
    assert "killed" in (stuck_outcome.error or "")
    assert wait_gone([pid]) == []


def test_a_big_task_for_a_worker_not_forked_yet_does_not_hold_up_other_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "slow_preload.py").write_text(SLOW_PRELOAD)
    monkeypatch.syspath_prepend(str(tmp_path))  # the fork server starts with this process's sys.path
    ex = ProcessExecutor(spares=0, preload=["slow_preload", *DEFAULT_PRELOAD])
    try:
        first = Recorder()
        handle = ex.submit(reference("obey_cancel"), first)
        first.wait_message(lambda m: m == "waiting")
        time.sleep(0.3)  # the fork server is importing its slow preload now: it forks nothing for seconds
        big = Recorder()  # 4 MiB of data for a worker that cannot read it yet
        ex.submit(reference("echo_data", data="x" * (4 << 20)), big)
        time.sleep(0.3)
        t0 = time.monotonic()
        handle.cancel()
        outcome = first.outcome(timeout=WAIT)
        assert time.monotonic() - t0 < 2.0, "the run's end waited for a blocked write"
        assert outcome.result == "stopped"
        big_outcome = big.outcome(timeout=WAIT)  # and the big task gets through once its worker runs
        assert big_outcome.status == "finished"
        assert big_outcome.result == json.loads(json.dumps("x" * (4 << 20)))
    finally:
        ex.shutdown(timeout=5)
