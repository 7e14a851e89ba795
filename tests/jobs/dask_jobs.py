"""Job functions for the DaskExecutor tests (``jobs.dask_jobs:<name>``)."""

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
