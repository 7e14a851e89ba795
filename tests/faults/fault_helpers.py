"""What the fault-injection trials share: seeded trials, a KeyboardInterrupt injector, the check that a manager
still works after a fault, and the processes this test process started.

Every trial draws its choices from its own ``random.Random``, seeded from ``JOBMANAGER_FAULT_SEED`` (a fixed
default), the trial's kind and its number; every assertion message carries :attr:`Trial.note`, which names
the seed, so a failure can be replayed.
"""

from __future__ import annotations

import asyncio
import contextlib
import dis
import itertools
import os
import random
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import CodeType, FrameType
from typing import Any, TypeVar

import psutil

from jobmanager_nb import JobFailedError, JobManager
from jobmanager_nb.model import JobRun

FAULTS = Path(__file__).resolve().parent
if str(FAULTS) not in sys.path:
    sys.path.insert(0, str(FAULTS))  # workers import fault_jobs by reference: they inherit this path
import fault_jobs  # noqa: E402

BASE_SEED = int(os.environ.get("JOBMANAGER_FAULT_SEED", "20261127"))
"""Set ``JOBMANAGER_FAULT_SEED`` to replay (or vary) every trial's choices."""

QUICK = 10.0
"""Seconds within which a job that must complete does so (they take milliseconds when all is well)."""

T = TypeVar("T")


class Trial:
    """One trial: ``rng`` for its choices and ``note`` for its assertion messages."""

    def __init__(self, kind: str, index: int) -> None:
        self.index = index
        self.seed = f"{BASE_SEED}:{kind}:{index}"
        self.rng = random.Random(self.seed)
        self.note = f"[{kind} trial {index}, seed {self.seed!r}: replay with JOBMANAGER_FAULT_SEED={BASE_SEED}]"

    def __str__(self) -> str:
        return self.note


def trials(kind: str, count: int) -> Iterator[Trial]:
    for index in range(count):
        yield Trial(kind, index)


def ended(manager: JobManager, name: str, timeout: float = QUICK) -> JobRun:
    """The run of ``name`` that ``manager.wait`` reports, failed or not (a timeout propagates)."""
    try:
        return manager.wait(name, timeout)
    except JobFailedError as failed:
        return failed.run


_checks = itertools.count()


def keeps_working(manager: JobManager, note: object, *, timeout: float = QUICK) -> None:
    """A fresh inline job and a fresh offloaded job complete within ``timeout`` seconds, and then nothing
    is left queued or running (``wait_all`` returns)."""
    tag = next(_checks)
    began = time.monotonic()
    manager.add_job(lambda: tag, name="check-inline", offloaded=False)
    manager.add_job(fault_jobs.add, name="check-offloaded", data={"a": tag, "b": 1})
    assert manager.wait("check-inline", timeout).result == tag, note
    assert manager.wait("check-offloaded", timeout).result == tag + 1, note
    manager.wait_all(timeout)
    assert manager.flush_events(timeout), f"events still undelivered after {timeout} s {note}"
    assert time.monotonic() - began < timeout, note


# ------------------------------------------------------------------------------------------ interrupts


def on_the_main_thread_loop(body: Any, **options: Any) -> None:
    """Run ``body(manager)`` in ``asyncio.run`` with a manager made inside it: the home loop is the main
    thread's running loop, as in a kernel; waits in ``body`` run it re-entrantly, like a cell's."""

    async def main() -> None:
        manager = JobManager(**options)
        try:
            body(manager)
        finally:
            await manager.shutdown(timeout=QUICK)  # a TimeoutError here fails the test

    previous = signal.getsignal(signal.SIGINT)
    try:
        asyncio.run(main())
    finally:
        signal.signal(signal.SIGINT, previous)


_CHECKING = {dis.opmap[name] for name in ("RESUME", "JUMP_BACKWARD", "JUMP_ABSOLUTE") if name in dis.opmap}
_CALLING = {
    dis.opmap[name]
    for name in ("CALL", "CALL_FUNCTION", "CALL_METHOD", "CALL_FUNCTION_KW", "CALL_FUNCTION_EX")
    if name in dis.opmap
}
_checkpoints: dict[CodeType, frozenset[int]] = {}


def checkpoints(code: CodeType) -> frozenset[int]:
    """The offsets in ``code`` at which the interpreter may raise a SIGINT's ``KeyboardInterrupt``: where it
    checks for pending signals (a function's start, a loop's jump back) and right after a call returns.

    After a call, CPython raises the interrupt *at the call* (its eval-breaker check ends the CALL
    instruction), so the exception handler that applies is the call's. A tracer can only raise at the next
    instruction, so that one counts only where the same handler covers it: after the last call of a
    ``with`` block that returns (``return f()`` inside ``with lock:``) the next instruction lies outside
    the block's handler, and raising there would leave the lock held, which no real signal can do."""
    points = _checkpoints.get(code)
    if points is None:
        handler = _handlers(code)
        found: set[int] = set()
        call_at: int | None = None
        for instruction in dis.get_instructions(code):
            offset = instruction.offset
            if instruction.opcode in _CHECKING or (call_at is not None and handler.get(call_at) == handler.get(offset)):
                found.add(offset)
            call_at = offset if instruction.opcode in _CALLING else None
        points = _checkpoints[code] = frozenset(found)
    return points


def _handlers(code: CodeType) -> dict[int, tuple[int, int]]:
    """Offset -> (handler target, stack depth) of the exception-table entry covering it (Python 3.11+;
    older versions have no table and report none)."""
    covered: dict[int, tuple[int, int]] = {}
    for entry in getattr(dis.Bytecode(code), "exception_entries", ()):
        for offset in range(entry.start, entry.end, 2):
            covered[offset] = (entry.target, entry.depth)
    return covered


class InterruptAt:
    """Runs code under ``sys.settrace`` on this thread and raises ``KeyboardInterrupt`` at its ``n``-th
    *checkpoint*, in whatever it calls (jobmanager_nb's code, the standard library): an interrupt at an
    arbitrary point, reproducibly. ``n=None`` only counts the checkpoints (to choose ``n`` among them).

    A checkpoint is an instruction at which CPython may raise the ``KeyboardInterrupt`` of a real SIGINT
    (see :func:`checkpoints`), traced opcode by opcode. Raising at any line instead would interrupt code
    where no signal ever can, such as between a ``with`` block's last line and the call that releases
    its lock, and report bugs that cannot happen."""

    def __init__(self, n: int | None, *, by_signal: bool = False, only: Callable[[str], bool] | None = None) -> None:
        self.n = n
        self.only = only
        """Count only the checkpoints of code whose file name passes this test (None: all code)."""
        self.by_signal = by_signal
        """Send this process a real SIGINT there instead (main thread only): the handler installed then
        decides, as it would for a Ctrl-C (``default_int_handler`` raises; code that holds SIGINT back
        delivers it later)."""
        self.points = 0
        self.where: str | None = None
        """Where it fired (file:line in function), or None if the code passed fewer than ``n`` checkpoints."""

    @property
    def fired(self) -> bool:
        return self.where is not None

    def _trace(self, frame: FrameType, event: str, arg: Any) -> Any:
        if self.where is not None:  # fired already
            return None
        if event == "call":
            if self.only is not None and not self.only(frame.f_code.co_filename):
                return None  # not this frame's instructions; what it calls is still traced
            frame.f_trace_opcodes = True
            frame.f_trace_lines = False
        elif event == "opcode" and frame.f_lasti in checkpoints(frame.f_code):
            self.points += 1
            if self.points == self.n:
                code = frame.f_code
                self.where = f"{Path(code.co_filename).name}:{frame.f_lineno} in {code.co_name}"
                if not self.by_signal:
                    raise KeyboardInterrupt  # CPython turns tracing off when a trace function raises
                signal.raise_signal(signal.SIGINT)  # its handler runs right here, at this checkpoint
                # It did not raise: the handler holds the interrupt back for later. Tracing stays on, inert,
                # until call() ends: sys.settrace(None) from inside the trace function, when it runs in a
                # weakref callback of a garbage collection, corrupted CPython 3.11's state (a segfault, or the
                # rest of the traced function not run: a run left ended but never released).
                return None
        return self._trace

    def call(self, function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        sys.settrace(self._trace)
        try:
            return function(*args, **kwargs)
        finally:
            sys.settrace(None)


def checkpoint_count(function: Callable[..., Any], *args: Any) -> int:
    """How many checkpoints ``function(*args)`` passes (a dry run: its result is dropped)."""
    counter = InterruptAt(None)
    counter.call(function, *args)
    return counter.points


# ------------------------------------------------------------------------------------------ processes


def descendants() -> list[psutil.Process]:
    """Every process this one started, directly or not, that is still alive (zombies are gone)."""
    alive = []
    for process in psutil.Process().children(recursive=True):
        with contextlib.suppress(psutil.Error):
            if process.status() != psutil.STATUS_ZOMBIE:
                alive.append(process)
    return alive


def still_alive(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


class ProcessWatch:
    """Notes every descendant process that appears while it runs (every few milliseconds), so that one that
    is orphaned later (its fork server killed) is still checked; ``seen`` maps pid to process."""

    def __init__(self, interval: float = 0.005) -> None:
        self.seen: dict[int, psutil.Process] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._interval = interval
        self._thread = threading.Thread(target=self._watch, name="fault-suite-process-watch", daemon=True)

    def __enter__(self) -> ProcessWatch:
        self.sample()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5.0)

    def sample(self) -> list[psutil.Process]:
        now = descendants()
        with self._lock:
            for process in now:
                self.seen.setdefault(process.pid, process)
        return now

    def _watch(self) -> None:
        while not self._stop.wait(self._interval):
            with contextlib.suppress(psutil.Error):
                self.sample()

    def left_running(self, since: set[int], timeout: float) -> list[str]:
        """Processes seen that were not running before (``since``: pids) and are still alive after up to
        ``timeout`` seconds (described, for the assertion message)."""
        deadline = time.monotonic() + timeout
        while True:
            self.sample()
            with self._lock:
                new = [p for pid, p in self.seen.items() if pid not in since]
            left = [p for p in new if still_alive(p)]
            if not left or time.monotonic() > deadline:
                return [_describe(p) for p in left]
            time.sleep(0.01)


def _describe(process: psutil.Process) -> str:
    try:
        return f"pid {process.pid} ({' '.join(process.cmdline())[:120]}; {process.status()})"
    except psutil.Error:
        return f"pid {process.pid}"
