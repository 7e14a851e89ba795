"""A parent process for the "no orphans" test: starts jobs in a ProcessExecutor, says which pids it
started, then waits to be killed. Usage: python orphan_parent.py <tests dir>."""

import json
import os
import queue
import sys
import time

sys.path.insert(0, sys.argv[1])

from jobmanager_nb.executors import OffloadedTask, ProcessExecutor

executor = ProcessExecutor(spares=2)
events: queue.Queue = queue.Queue()
for name in ("sleep_with_grandchild", "busy_python"):
    executor.submit(OffloadedTask(name, name, "reference", f"jobs.fixture_jobs:{name}"), events.put)
pids = []
while len(pids) < 3:
    event = events.get(timeout=30)
    if event.kind == "message":
        pids.extend(event.payload[1:])
    elif event.kind == "exited":
        raise SystemExit(f"a job ended early: {event.outcome}")
print(json.dumps({"parent": os.getpid(), "jobs": pids}), flush=True)
time.sleep(60)
