"""Job functions added with DaskExecutor, for its tests, the conformance suite and the held-run tests
(``jobs.dask_jobs:<name>``)."""

from __future__ import annotations

import os
import time
import uuid
from typing import Any

from jobmanager_nb import worker


def mark_start(data: dict[str, Any]) -> str:
    """Leave one file in ``data["dir"]`` per start (so a test can count starts), report the pid, then
    sleep ``data["sleep"]`` seconds (60 by default)."""
    with open(os.path.join(data["dir"], uuid.uuid4().hex), "w") as marker:
        marker.write(str(os.getpid()))
    worker.post_message(("pid", os.getpid()))
    time.sleep(data.get("sleep", 60))
    return "slept"


def print_then_wait_for_cancel() -> str:
    """Print a line at once, then wait (up to 30 s) for "cancel": its output must arrive while it runs."""
    print("printed while running", flush=True)
    if worker.cancelled.wait(30):
        return "stopped"
    return "timed out"
