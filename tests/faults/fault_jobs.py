"""Offloaded jobs of the fault-injection suite: workers import them by reference (``fault_jobs.<name>``)."""

from __future__ import annotations

import os
import time

from jobmanager_nb import worker


def add(data):
    return data["a"] + data["b"]


def nap(data):
    """Sleeps ``data["seconds"]``, printing as it goes, then returns ``data.get("value")``; stops early,
    returning "cancelled", when the manager cancels it."""
    deadline = time.monotonic() + data["seconds"]
    while time.monotonic() < deadline:
        print("napping")
        if worker.cancelled.wait(0.005):
            return "cancelled"
    return data.get("value")


def chatter(data):
    """Posts ``data["messages"]`` messages (numbered from 0), then returns how many it posted."""
    for i in range(data["messages"]):
        worker.post_message(i)
        if i % 3 == 0:
            time.sleep(0.001)
    return data["messages"]


def fail(data=None):
    raise ValueError("offloaded failure")


def record(data):
    """Appends one line to ``data["log"]`` (proof that the job's code ran), then fails if ``data["fail"]``."""
    fd = os.open(data["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        os.write(fd, f"{data['name']}\n".encode())
    finally:
        os.close(fd)
    if data.get("fail"):
        raise RuntimeError(f"{data['name']} fails on purpose")
    return data["name"]
