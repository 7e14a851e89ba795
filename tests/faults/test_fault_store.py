"""One-off store writes that fail with ENOSPC, EROFS or EACCES at each write site, inline and offloaded.

The sites are a one-off's claim (``add_one_off_job``), its ``started`` write (just before its code runs) and its
``finished`` / ``failed`` write (just after). ENOSPC and EROFS are real (a full or read-only tmpfs) where
mounting is allowed, EACCES is injected at the store's OS write calls (see tests/store_faults.py; its
``write_fault`` always unmounts its tmpfs); the fault is switched on right after the write before the site
lands, so it hits exactly that site. Whatever happens: no record is lost, a one-off whose job succeeded never
runs again (not from this manager, not from a second one, not from another process, once the fault is gone),
and every wait returns.
"""

from __future__ import annotations

import asyncio
import errno
import json
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import fault_jobs
import pytest
from fault_helpers import QUICK, Trial
from polling import wait_until
from store_faults import WriteFault, write_fault

from jobmanager_nb import JobFailedError, JobManager, StoreWriteError
from jobmanager_nb.errors import OneOffAlreadyExecutedError, StoreError
from jobmanager_nb.store import OneOffRecord, TinyDBStore

FAULTS = {"ENOSPC": errno.ENOSPC, "EROFS": errno.EROFS, "EACCES": errno.EACCES}


class OneOffs:
    """One-off jobs of one kind (inline or offloaded) that leave proof of each run in ``log``."""

    def __init__(self, manager: JobManager, offloaded: bool, log: Path) -> None:
        self.manager = manager
        self.offloaded = offloaded
        self.log = log

    def add(self, name: str, *, fail: bool = False) -> None:
        data = {"log": str(self.log), "name": name, "fail": fail}
        m = self.manager
        if self.offloaded:
            m.add_one_off_job(fault_jobs.record, name=name, data=data)
        else:
            m.add_one_off_job(lambda: fault_jobs.record(data), name=name, offloaded=False)

    def ran(self, name: str) -> int:
        """How many times the job's code ran."""
        if not self.log.exists():
            return 0
        return self.log.read_text().splitlines().count(name)


def after(manager: JobManager, method: str, fault: WriteFault) -> Callable[[], None]:
    """Switch ``fault`` on right after the store's next ``method`` call lands; returns the undo."""
    store: Any = manager.store
    real = getattr(store, method)

    def patched(*args: Any, **kwargs: Any) -> Any:
        result = real(*args, **kwargs)
        del store.__dict__[method]  # once
        fault.start()
        return result

    store.__dict__[method] = patched
    return lambda: store.__dict__.pop(method, None)


def stored(path: Path, name: str) -> OneOffRecord | None:
    """``name``'s record as a store newly opened on ``path`` reads it."""
    return TinyDBStore(path, reconcile=False).get(name)


def status(manager: JobManager, name: str) -> str | None:
    found = manager.store.get(name)
    return None if found is None else found.status


SECOND_PROCESS = """
import json, sys
from jobmanager_nb import JobManager
from jobmanager_nb.errors import OneOffAlreadyExecutedError
m = JobManager(sys.argv[1])
answers = {}
for name in json.loads(sys.argv[2]):
    try:
        m.add_one_off_job(lambda: None, name=name, offloaded=False)
        answers[name] = "ran"
    except OneOffAlreadyExecutedError:
        answers[name] = "refused"
m.close(timeout=10)
print(json.dumps(answers))
"""


def answers_of_another_process(path: Path, names: list[str]) -> dict[str, str]:
    """What a manager in a new process says when asked to add each of ``names`` as a one-off."""
    out = subprocess.run(
        [sys.executable, "-c", SECOND_PROCESS, str(path), json.dumps(names)], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    answers: dict[str, str] = json.loads(out.stdout)
    return answers


def refused_elsewhere(path: Path, names: list[str], note: object) -> None:
    """A second manager in this process, and one in another process, refuse to run ``names`` again."""
    second = JobManager(path)
    try:
        for name in names:
            with pytest.raises(OneOffAlreadyExecutedError):
                second.add_one_off_job(lambda: None, name=name, offloaded=False)
    finally:
        second.close(timeout=QUICK)
    assert answers_of_another_process(path, names) == dict.fromkeys(names, "refused"), note


def outcome_of(wait: Callable[[], Any]) -> Any:
    """What a wait returned, or the exception it raised (it must do one or the other within its timeout)."""
    try:
        return wait()
    except (JobFailedError, StoreError) as error:
        return error


@pytest.mark.parametrize("kind", ["inline", "offloaded"])
@pytest.mark.parametrize("fault_name", list(FAULTS))
def test_a_store_fault_at_each_write_site_loses_no_record_runs_nothing_twice_and_every_wait_returns(
    tmp_path: Path, fault_name: str, kind: str
) -> None:
    trial = Trial(f"store {fault_name} {kind}", 0)
    heard: list[dict[str, Any]] = []
    handled = trial.rng.random() < 0.5  # with an error_handler, which hears of an unwritten ending instead
    (tmp_path / "store").mkdir()
    with write_fault(FAULTS[fault_name], tmp_path / "store") as fault:
        path = fault.folder / "jobmanager" / "jobs.json"
        note = f"{trial} ({fault.how}, error_handler: {handled})"
        m = JobManager(path, error_handler=(lambda error, meta: heard.append(meta)) if handled else None)
        jobs = OneOffs(m, kind == "offloaded", tmp_path / "ran.log")
        try:
            # 1. the claim: add_one_off_job raises, and no record is left
            fault.start()
            with pytest.raises(StoreWriteError) as refused:
                jobs.add("claim")
            assert str(path) in str(refused.value), note
            assert status(m, "claim") is None, note
            fault.clear()
            assert status(m, "claim") is None, note
            jobs.add("claim")
            assert m.wait("claim", QUICK).result == "claim", note
            assert (status(m, "claim"), jobs.ran("claim")) == ("finished", 1), note

            # 2. the started write: the run ends failed without running; its waits answer from memory
            undo = after(m, "claim", fault)
            jobs.add("started")
            undo()
            with pytest.raises(JobFailedError) as failed:
                m.wait("started", QUICK)
            assert "did not run" in (failed.value.run.error or "") and str(path) in failed.value.run.error, note
            with pytest.raises(JobFailedError):
                m.wait_one_off("started", QUICK)
            with pytest.raises(JobFailedError):
                asyncio.run(m.await_one_off_completion("started", QUICK))
            m.wait_all(QUICK)
            assert (status(m, "started"), jobs.ran("started")) == ("queued", 0), note
            fault.clear()
            jobs.add("started")  # a rerun: the failed ending is written first
            assert m.wait("started", QUICK).result == "started", note
            assert (status(m, "started"), jobs.ran("started")) == ("finished", 1), note

            # 3. the finished write: retried, then kept and written once the store takes writes again
            undo = after(m, "mark_started", fault)
            jobs.add("finished")
            ending = outcome_of(lambda: m.wait("finished", QUICK))
            undo()
            if handled:
                assert getattr(ending, "result", None) == "finished", f"{ending!r} {note}"
                assert m.flush_events(QUICK) and heard and heard[-1]["name"] == "finished", note
                assert str(path) in str(heard[-1]["store_error"]), note
            else:
                assert isinstance(ending, StoreError) and str(path) in str(ending), f"{ending!r} {note}"
            answer = outcome_of(lambda: m.wait_one_off("finished", QUICK))  # from memory
            if handled:
                assert getattr(answer, "status", None) == "finished", f"{answer!r} {note}"
            else:
                assert isinstance(answer, StoreError) and str(path) in str(answer), f"{answer!r} {note}"
            m.wait_all(QUICK)
            assert (status(m, "finished"), jobs.ran("finished")) == ("started", 1), note
            with pytest.raises((OneOffAlreadyExecutedError, StoreWriteError)):
                jobs.add("finished")  # running now or refused by the store: never a second run
            fault.clear()
            refused_elsewhere(path, ["finished"], note)  # the record says started, by a live owner
            assert jobs.ran("finished") == 1, note

            # 4. the failed write: the failure is kept too, and the one-off may then be rerun
            undo = after(m, "mark_started", fault)  # this write also lands the ending kept in step 3
            jobs.add("failed", fail=True)
            ending = outcome_of(lambda: m.wait("failed", QUICK))
            undo()
            assert status(m, "finished") == "finished", note
            assert isinstance(ending, JobFailedError), f"{ending!r} {note}"
            with pytest.raises(JobFailedError):
                m.wait_one_off("failed", QUICK)
            assert (status(m, "failed"), jobs.ran("failed")) == ("started", 1), note
            fault.clear()
            wait_until(lambda: status(m, "failed") == "failed", QUICK)  # the manager's retry timer
            jobs.add("failed")
            assert m.wait("failed", QUICK).result == "failed", note
            assert (status(m, "failed"), jobs.ran("failed")) == ("finished", 2), note
        finally:
            fault.clear()
            m.close(timeout=QUICK)
        names = ["claim", "started", "finished", "failed"]
        assert {name: getattr(stored(path, name), "status", None) for name in names} == dict.fromkeys(
            names, "finished"
        ), note
        refused_elsewhere(path, names, note)
        assert [jobs.ran(name) for name in names] == [1, 1, 1, 2], note


@pytest.mark.parametrize("fault_name", list(FAULTS))
def test_close_while_the_store_still_refuses_raises_a_store_error_and_nothing_runs_twice(
    tmp_path: Path, fault_name: str
) -> None:
    trial = Trial(f"store at close {fault_name}", 0)
    kind = trial.rng.choice(["inline", "offloaded"])
    (tmp_path / "store").mkdir()
    with write_fault(FAULTS[fault_name], tmp_path / "store") as fault:
        path = fault.folder / "jobmanager" / "jobs.json"
        note = f"{trial} ({fault.how}, {kind})"
        m = JobManager(path, error_handler=lambda error, meta: None)
        jobs = OneOffs(m, kind == "offloaded", tmp_path / "ran.log")
        undo = after(m, "mark_started", fault)
        jobs.add("unwritten")
        assert m.wait("unwritten", QUICK).result == "unwritten", note
        undo()
        waiting: list[Any] = []
        waiter = threading.Thread(target=lambda: waiting.append(outcome_of(lambda: m.wait_one_off("unwritten"))))
        waiter.start()  # a wait without a timeout: answered from memory, never polling for ever
        waiter.join(QUICK)
        assert not waiter.is_alive() and getattr(waiting[0], "status", None) == "finished", f"{waiting} {note}"
        with pytest.raises(StoreError) as refused:
            m.close(timeout=QUICK)
        assert "unwritten" in str(refused.value) and str(path) in str(refused.value), note
        assert m.wait("unwritten", QUICK).status == "finished", note  # waits still answer after close
        fault.clear()
        assert getattr(stored(path, "unwritten"), "status", None) == "started", note
        refused_elsewhere(path, ["unwritten"], note)  # its owner (this process) is alive: not orphaned
        assert jobs.ran("unwritten") == 1, note


def test_the_other_process_would_run_a_one_off_that_may_run_again(tmp_path: Path) -> None:
    """The other process's answer is real: a failed one-off is run there (so the checks above can fail)."""
    path = tmp_path / "jobs.json"
    m = JobManager(path, log_failures=False)
    try:
        m.add_one_off_job(lambda: 1 / 0, name="failing", offloaded=False)
        with pytest.raises(JobFailedError):
            m.wait("failing", QUICK)
    finally:
        m.close(timeout=QUICK)
    assert answers_of_another_process(path, ["failing"]) == {"failing": "ran"}
    assert getattr(stored(path, "failing"), "status", None) == "finished"
