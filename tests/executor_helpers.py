"""Helpers for tests that run real worker processes: a recording listener and task builders."""

from __future__ import annotations

import contextlib
import itertools
import json
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil

from jobmanager_nb.executors import OffloadedTask, ProcessExecutor, RunHandle, RunOutcome, WorkerEvent

WAIT = 20.0
JOBS = Path(__file__).resolve().parent / "jobs"
_ids = itertools.count(1)


class Recorder:
    """A listener that keeps every event of one run and lets the test wait for them."""

    def __init__(self) -> None:
        self.events: list[WorkerEvent] = []
        self._changed = threading.Condition()

    def __call__(self, event: WorkerEvent) -> None:
        with self._changed:
            self.events.append(event)
            self._changed.notify_all()

    def wait_for(self, predicate: Callable[[WorkerEvent], bool], timeout: float = WAIT) -> WorkerEvent:
        """The first event matching ``predicate``, waiting up to ``timeout`` seconds for it."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for event in self.events:
                    if predicate(event):
                        return event
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    kinds = [(e.kind, e.payload) for e in self.events]
                    raise AssertionError(f"no matching event within {timeout} s; got {kinds}")
                self._changed.wait(remaining)

    def wait_message(self, predicate: Callable[[Any], bool], timeout: float = WAIT) -> Any:
        """The payload of the first message matching ``predicate``."""
        return self.wait_for(lambda e: e.kind == "message" and predicate(e.payload), timeout).payload

    def outcome(self, timeout: float = WAIT) -> RunOutcome:
        """How the run ended (waits for the ``exited`` event)."""
        event = self.wait_for(lambda e: e.kind == "exited", timeout)
        assert event.outcome is not None
        return event.outcome

    def kinds(self) -> list[str]:
        with self._changed:
            return [e.kind for e in self.events]

    def messages(self) -> list[Any]:
        with self._changed:
            return [e.payload for e in self.events if e.kind == "message"]

    def output(self, stream: str | None = None) -> str:
        with self._changed:
            return "".join(e.payload[1] for e in self.events if e.kind == "output" and stream in (None, e.payload[0]))


def reference(qualname: str, data: Any = None, name: str | None = None, **fields: Any) -> OffloadedTask:
    """A task calling ``jobs.fixture_jobs.<qualname>``."""
    return OffloadedTask(
        run_id=f"run-{next(_ids)}",
        name=name or qualname,
        target_kind="reference",
        target=f"jobs.fixture_jobs:{qualname}",
        data_json=json.dumps(data),
        **fields,
    )


def script(filename: str, data: Any = None, **fields: Any) -> OffloadedTask:
    """A task running ``tests/jobs/<filename>`` as a script."""
    return OffloadedTask(
        run_id=f"run-{next(_ids)}",
        name=Path(filename).stem,
        target_kind="script",
        target=str(JOBS / filename),
        data_json=json.dumps(data),
        **fields,
    )


def is_gone(pid: int) -> bool:
    """True when ``pid`` has exited (a zombie waiting to be reaped counts as gone)."""
    try:
        return psutil.Process(pid).status() in (psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD)
    except psutil.NoSuchProcess:
        return True


def wait_gone(pids: list[int], timeout: float = WAIT) -> list[int]:
    """Wait until every pid has exited; return those still alive after ``timeout``."""
    deadline = time.monotonic() + timeout
    alive = list(pids)
    while alive and time.monotonic() < deadline:
        alive = [pid for pid in alive if not is_gone(pid)]
        if alive:
            time.sleep(0.02)  # polling the OS process table: there is nothing to wait on
    return alive


def dask_cluster(n_workers: int = 2) -> Any:
    """A ``LocalCluster`` of ``n_workers`` worker processes, one thread each (one job slot each);
    use it as a context manager. Imported here so that the process-only tests never import Dask."""
    from distributed import LocalCluster

    return LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True, dashboard_address=None)


def count_files(directory: Path | str) -> int:
    """How many entries ``directory`` holds (the start markers of ``jobs.dask_jobs.mark_start``)."""
    return len(list(Path(directory).iterdir()))


class CountingExecutor(ProcessExecutor):
    """A real ProcessExecutor that also notes the name of each job submitted to it."""

    def __init__(self) -> None:
        super().__init__(spares=1)
        self.submitted: list[str] = []
        self._noted = threading.Lock()

    def submit(self, task: OffloadedTask, listener: Callable[[WorkerEvent], None]) -> RunHandle:
        with self._noted:
            self.submitted.append(task.name)
        return super().submit(task, listener)


def stop_process_tree(process: subprocess.Popen[bytes], *, at_once: bool = False, timeout: float = 15.0) -> None:
    """Stop ``process`` and every process it started (a dask nanny's worker), by pid: SIGTERM, then SIGKILL
    what is left after ``timeout`` s; with ``at_once``, SIGKILL straight away (a frozen one is woken first)."""
    try:
        family = [psutil.Process(process.pid), *psutil.Process(process.pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        family = []
    for member in family:
        with contextlib.suppress(psutil.NoSuchProcess):
            if at_once:
                member.send_signal(signal.SIGCONT)
                member.kill()
            else:
                member.send_signal(signal.SIGTERM)
    _, alive = psutil.wait_procs(family, timeout=timeout)
    for member in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            member.kill()
    psutil.wait_procs(alive, timeout=timeout)
    process.wait(timeout)
