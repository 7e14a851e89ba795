"""When worker processes cannot be started, with real processes: every run waiting for a worker
ends, failed with the reason named, and the executor goes on running jobs once workers can be
started again."""

from __future__ import annotations

import errno
import sys
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from executor_helpers import WAIT, Recorder, reference

import jobmanager_nb.executors.local as local
from jobmanager_nb.executors import ProcessExecutor, WorkerEvent

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def held() -> Iterator[tuple[ProcessExecutor, threading.Event]]:
    """A spawn executor without spares whose I/O thread is held by a running run's listener until the
    event is set, so that runs submitted meanwhile are all waiting for a worker at once."""
    ex = ProcessExecutor(spares=0, start_method="spawn")
    release = threading.Event()
    running = Recorder()

    def holding(event: WorkerEvent) -> None:
        running(event)
        if event.kind == "started":
            release.wait(WAIT)

    ex.submit(reference("obey_cancel"), holding)
    running.wait_for(lambda e: e.kind == "started")
    try:
        yield ex, release
    finally:
        release.set()
        ex.shutdown(timeout=5)


def test_every_run_waiting_for_a_worker_that_cannot_be_started_ends_failed(
    held: tuple[ProcessExecutor, threading.Event], monkeypatch: pytest.MonkeyPatch
) -> None:
    ex, release = held
    monkeypatch.setattr(sys, "executable", "")  # from now on no worker can be started
    recorders = [Recorder() for _ in range(3)]
    for number, recorder in enumerate(recorders):
        ex.submit(reference("add", data={"a": number, "b": 1}), recorder)
    release.set()
    for recorder in recorders:
        outcome = recorder.outcome()
        assert outcome.status == "failed" and not outcome.cancelled, outcome
        assert "could not start a worker process" in (outcome.error or ""), outcome
        assert "sys.executable is empty" in (outcome.error or ""), outcome
    monkeypatch.undo()
    fresh = Recorder()
    ex.submit(reference("add", data={"a": 1, "b": 1}), fresh)
    assert fresh.outcome().result == 2


def test_a_worker_that_cannot_be_made_fails_its_run_and_the_executor_goes_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Out of descriptors for a moment (EMFILE while making the worker's socket and pipes): that run
    fails naming it, not as "cancelled before it started", and the executor is still there."""
    real = local.WorkerProcess
    failures = [OSError(errno.EMFILE, "Too many open files")]

    def worker_process(*args: Any, **kwargs: Any) -> Any:
        if failures:
            raise failures.pop()
        return real(*args, **kwargs)

    monkeypatch.setattr(local, "WorkerProcess", worker_process)
    ex = ProcessExecutor(spares=0)
    try:
        failed = Recorder()
        ex.submit(reference("add", data={"a": 1, "b": 1}), failed)
        outcome = failed.outcome()
        assert outcome.status == "failed" and not outcome.cancelled, outcome
        assert "Too many open files" in (outcome.error or ""), outcome
        fresh = Recorder()
        ex.submit(reference("add", data={"a": 1, "b": 2}), fresh)
        assert fresh.outcome().result == 3
    finally:
        ex.shutdown(timeout=5)
