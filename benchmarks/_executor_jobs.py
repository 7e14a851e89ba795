"""No-op job bodies for ``bench_executor.py`` (imported by the worker processes)."""

import time


def noop() -> None:
    return None


def stamp() -> float:
    """The wall-clock time at which the job's body ran."""
    return time.time()


def echo() -> str:
    """Answers every message from the parent with the same message, until told ``"stop"``."""
    import threading

    from jobmanager_nb import worker

    stop = threading.Event()

    def on_message(message: object) -> None:
        if message == "stop":
            stop.set()
        else:
            worker.post_message(message)

    worker.on_message(on_message)
    worker.post_message("ready")
    stop.wait(120)
    return "stopped"


def note_and_wait(data: dict[str, str]) -> str:
    """Appends ``data["run"]`` to the file ``data["file"]`` (one line per start of this body), says so, then
    waits to be cancelled (at most 60 s)."""
    import os

    from jobmanager_nb import worker

    with open(data["file"], "a") as notes:
        notes.write(data["run"] + "\n")
        notes.flush()
        os.fsync(notes.fileno())
    worker.post_message("noted")
    worker.cancelled.wait(60)
    return "cancelled"
