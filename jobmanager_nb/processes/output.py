"""Inside a worker: forward what the job writes to fds 1 and 2 to the parent, in order with its reports.

fds 1 and 2 of a worker are pipes, so everything the job writes reaches them: ``print``, C code,
``os.write(1, ...)``, and the child processes it starts. An :class:`OutputPump` reads both on a
daemon thread and sends ``("output", stream, bytes)`` frames. Before the worker sends any
other frame it calls :func:`drain_all`, which forwards everything already in the pipes, so that the
parent sees output, messages and progress in the order the job produced them.

The parent keeps its own copy of each pipe's read end, untouched while the worker lives, to collect
whatever is left there if the worker dies suddenly (a segfault report, for instance).
"""

from __future__ import annotations

import os
import select
import threading

from jobmanager_nb.processes.wire import Channel
from jobmanager_nb.worker import _flush_stdio as flush_python_streams

__all__ = ["OutputBudget", "OutputPump"]

_READ_SIZE = 1 << 16


class OutputBudget:
    """How many more bytes of output this worker may forward (shared by stdout and stderr).

    The parent adds the "[output truncated]" note; past the limit the pumps keep reading the pipes
    (so the job never blocks on a full pipe) but forward nothing more.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._used = 0
        self._lock = threading.Lock()

    def take(self, size: int) -> int:
        """How many of ``size`` bytes may be forwarded (one byte past the limit tells the parent)."""
        with self._lock:
            allowed = max(0, min(size, self.limit + 1 - self._used))
            self._used += allowed
            return allowed


class OutputPump:
    """Reads the worker's output pipes on one daemon thread and forwards them as frames."""

    def __init__(self, fds: dict[str, int], channel: Channel, budget: OutputBudget) -> None:
        self._open = dict(fds)  # stream name -> read end, until end of file
        self._channel = channel
        self._budget = budget
        self._lock = threading.Lock()  # held while reading and forwarding, so drain() is exact
        self._poll = select.poll()
        for fd in fds.values():
            self._poll.register(fd, select.POLLIN)

    def start(self) -> None:
        threading.Thread(target=self._run, name="jobmanager_nb-output", daemon=True).start()

    def drain(self) -> None:
        """Flush the job's Python-level buffers, then forward everything written to the pipes so far."""
        flush_python_streams()
        with self._lock:
            for stream in list(self._open):
                self._forward_available(stream)

    def _run(self) -> None:
        while self._open:
            try:
                ready = self._poll.poll()
            except InterruptedError:
                continue
            with self._lock:
                for stream, fd in list(self._open.items()):
                    if any(ready_fd == fd for ready_fd, _ in ready):
                        self._forward_available(stream)

    def _forward_available(self, stream: str) -> None:
        fd = self._open[stream]
        while True:
            try:
                data = os.read(fd, _READ_SIZE)
            except BlockingIOError:
                return
            except OSError:
                data = b""
            if not data:
                self._poll.unregister(fd)
                del self._open[stream]
                return
            allowed = self._budget.take(len(data))
            if allowed:
                try:
                    self._channel.send(("output", stream, data[:allowed]))
                except OSError:
                    return  # the parent is gone; the listener thread ends this process
