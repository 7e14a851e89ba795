"""Importable job functions for the manager's offloaded tests (workers import this by reference)."""

from __future__ import annotations

import os
import time

from jobmanager_nb import worker


def add(data):
    return data["a"] + data["b"]


def fail(data=None):
    raise ValueError("offloaded failure")


def echo_messages(data=None):
    """Answers every parent message with ("echo", message) until told "stop"."""
    import threading

    stop = threading.Event()

    def on_message(message):
        if message == "stop":
            stop.set()
        else:
            worker.post_message(("echo", message))

    worker.on_message(on_message)
    worker.post_message("ready")
    stop.wait(30)
    return "stopped"


def sleep_forever(data=None):
    worker.post_message("ready")
    while True:
        time.sleep(0.05)


def graceful(data=None):
    """Answers "cancelled" when the parent cancels it; never cancelled, it succeeds (so a lost cancel shows)."""
    worker.post_message("ready")
    if worker.cancelled.wait(30):
        worker.post_message("cancelled")
    return "never cancelled"


def ignore_cancel(data=None):
    worker.post_message("ready")
    while True:
        time.sleep(0.05)


def report(data=None):
    return {"pid": os.getpid(), "run": str(worker.run)}


def chatty(data=None):
    print("to stdout")
    os.write(2, b"raw to stderr\n")
    worker.progress(0.5, "half way")
    return "said"


def crash(data=None):
    os._exit(3)


def wait_for_verdict(data=None):
    """Posts "ready", then waits for the parent's verdict: "done" ends the run by posting done, "fail" raises."""
    import queue

    verdicts: queue.Queue = queue.Queue()
    worker.on_message(verdicts.put)
    worker.post_message("ready")
    if verdicts.get(timeout=30) == "fail":
        raise RuntimeError("told to fail")
    worker.post_message("done")


def fail_first_attempt(data=None):
    """Fails on attempt 1; a retry returns what the run knows about itself."""
    if worker.run.attempt == 1:
        raise RuntimeError("first attempt fails")
    return worker.run.as_dict()
