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
    worker.post_message("ready")
    worker.cancelled.wait(30)
    worker.post_message("cancelled")


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
