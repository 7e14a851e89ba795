"""Job functions the executor tests run by reference (``jobs.fixture_jobs:<name>``)."""

from __future__ import annotations

import asyncio
import ctypes
import os
import subprocess
import sys
import threading
import time
from typing import Any

from jobmanager_nb import worker


def noop() -> None:
    return None


def add(data: dict[str, int]) -> int:
    return data["a"] + data["b"]


def echo_data(data: Any) -> Any:
    return data


def no_parameters() -> str:
    return "called without data"


def optional_parameter(data: Any = "default") -> Any:
    return ("got", data)


def about_this_run() -> dict[str, Any]:
    assert worker.run is not None
    return {
        "in_worker": worker.in_worker(),
        "data": worker.data,
        "run": worker.run.as_dict(),
        "name_attr": worker.run.name,
        "pid": os.getpid(),
        "cwd": os.getcwd(),
        "env": os.environ.get("JOBMANAGER_NB_TEST_VAR"),
        "argv": sys.argv,
    }


async def async_add(data: dict[str, int]) -> int:
    await asyncio.sleep(0.01)
    return data["a"] + data["b"]


def returns_awaitable() -> Any:
    return async_add({"a": 20, "b": 22})


def raises() -> None:
    value = 42
    raise ValueError(f"bad value {value}")


def exits_zero() -> None:
    sys.exit()


def exits_three() -> None:
    sys.exit(3)


def exits_with_text() -> None:
    sys.exit("stopping with a message")


def hard_exit_three() -> None:
    os._exit(3)


def segfault() -> None:
    ctypes.string_at(0)


def pid_then_sleep() -> None:
    worker.post_message(("pid", os.getpid()))
    time.sleep(60)


def obey_cancel() -> str:
    worker.post_message("waiting")
    if worker.cancelled.wait(30):
        return "stopped"
    return "timed out"


def ignore_cancel() -> None:
    worker.post_message("waiting")
    time.sleep(60)


def answer_pings() -> None:
    """Report the pid, answer every "ping" with "pong", stop on "cancel"."""
    worker.on_message(lambda message: worker.post_message("pong") if message == "ping" else None)
    worker.post_message(("pid", os.getpid(), os.getpgrp()))
    worker.cancelled.wait(30)
    worker.post_message("cancelled")


def mixed_output() -> str:
    print("one")
    worker.progress(0.25, "a quarter")
    print("two", file=sys.stderr)
    os.write(1, b"three\n")
    worker.post_message("between")
    subprocess.run(["echo", "four"], check=True)
    worker.progress(1.0)
    print("five", end="")
    return "ok"


def flood() -> str:
    chunk = "x" * 1023 + "\n"
    for _ in range(3 * 1024):  # 3 MiB
        sys.stdout.write(chunk)
    return "flooded"


def done_then_linger() -> None:
    worker.post_message(("pid", os.getpid()))
    worker.post_message("done")
    time.sleep(60)


def unpicklable_result() -> Any:
    return threading.Lock()


def unpicklable_message() -> str:
    try:
        worker.post_message(threading.Lock())
    except TypeError as exc:
        return f"TypeError: {exc}"
    return "no error"


def bad_progress() -> list[str]:
    errors = []
    for args in ((1.5,), (-0.1,), (float("nan"),), ("half",), (True,), (0.5, 3)):
        try:
            worker.progress(*args)  # type: ignore[arg-type]
        except (TypeError, ValueError) as exc:
            errors.append(type(exc).__name__)
    return errors


def sleep_with_grandchild() -> None:
    child = subprocess.Popen(["sleep", "60"])
    worker.post_message(("pids", os.getpid(), child.pid))
    time.sleep(60)


def busy_python() -> None:
    worker.post_message(("pid", os.getpid()))
    deadline = time.monotonic() + 60
    n = 0
    while time.monotonic() < deadline:
        n += 1


def non_daemon_thread() -> str:
    results = []

    def later() -> None:
        time.sleep(0.2)
        results.append("thread finished")
        print("thread finished")

    threading.Thread(target=later).start()
    return "returned before the thread"
