"""Offloaded jobs for the run-lifecycle tests (workers import them by reference)."""

from __future__ import annotations

import pathlib
import time

from jobmanager_nb import worker


def touch(data):
    """Leaves a marker file: proof that the job's code ran."""
    pathlib.Path(data["marker"]).touch()
    return "touched"


def hold(data):
    """Posts "ready", then holds its slot until the flag file exists."""
    worker.post_message("ready")
    flag = pathlib.Path(data["flag"])
    deadline = time.monotonic() + 60
    while not flag.exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    return "released"


def slow_then_value_error(data):
    """Attempt 1 hangs past its timeout; attempt 2 raises its own ValueError."""
    if worker.run.attempt == 1:
        worker.cancelled.wait(60)
        time.sleep(60)  # ignores the cancel: killed after kill_grace
    raise ValueError("the second attempt's own error")


def own_timeout(data=None):
    """A job whose own code raises TimeoutError (a database driver's, say)."""
    raise TimeoutError("the database did not answer")


def post_pid_then_sleep(data=None):
    """Posts its pid, then sleeps until killed."""
    import os

    worker.post_message(os.getpid())
    time.sleep(120)


def stop_when_asked(data=None):
    """Posts "ready", then returns cleanly as soon as it sees the cancel."""
    worker.post_message("ready")
    worker.cancelled.wait(60)
    return "stopped"
