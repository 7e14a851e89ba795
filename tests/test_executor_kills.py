"""SIGKILL at random moments, with real processes: whatever ProcessExecutor loses (its fork server, a
spare, a running worker, before or right after a submit or while the job runs), every submitted run
still gets exactly one ``exited`` event, the executor goes on running jobs, and once it is shut down
no process it started is left."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import random
import signal
import subprocess
import sys
from dataclasses import dataclass, field

import psutil
import pytest
from executor_helpers import WAIT, Recorder, is_gone, reference, wait_gone
from polling import wait_until

from jobmanager_nb.executors import OffloadedTask, ProcessExecutor, RunHandle

pytestmark = pytest.mark.timeout(120)

SEED = 20251127
TRIALS = 30
MOMENTS = ("before submit", "right after submit", "while running")
TARGETS = ("fork server", "worker", "both")


@dataclass
class Trial:
    """One randomised trial: what to kill, when, and what the executor looked like."""

    number: int
    moment: str
    target: str
    spares: int
    runs: int
    seen: set[int] = field(default_factory=set)  # every pid of the executor's processes the test saw

    def __str__(self) -> str:
        return (
            f"trial {self.number}: kill the {self.target} {self.moment} "
            f"(spares={self.spares}, {self.runs} run(s), seed {SEED})"
        )


def trials() -> list[Trial]:
    rng = random.Random(SEED)
    return [
        Trial(i, rng.choice(MOMENTS), rng.choice(TARGETS), spares=rng.choice((0, 1, 2)), runs=rng.choice((1, 2, 3)))
        for i in range(TRIALS)
    ]


def grandchild_then_obey_cancel() -> str:
    """The trials' job (run in the worker, imported from this module): start a ``sleep 60``, post
    ``("pids", worker pid, its pid)`` then ``"waiting"``, and on a cancel stop the sleep and return."""
    from jobmanager_nb import worker

    child = subprocess.Popen(["sleep", "60"])
    worker.post_message(("pids", os.getpid(), child.pid))
    worker.post_message("waiting")
    stopped = worker.cancelled.wait(30)
    child.kill()
    child.wait()
    return "stopped" if stopped else "timed out"


def trial_task() -> OffloadedTask:
    task = reference("obey_cancel")
    return dataclasses.replace(task, target="test_executor_kills:grandchild_then_obey_cancel")


def posted_pids(recorder: Recorder) -> list[int]:
    """The pids a ``grandchild_then_obey_cancel`` run posted (its worker and its ``sleep``)."""
    return [pid for m in recorder.messages() if isinstance(m, tuple) and m[0] == "pids" for pid in m[1:]]


def fork_server(before: set[int]) -> psutil.Process | None:
    """The executor's fork server, if it is there now (a child of ours that was not there before)."""
    for child in psutil.Process().children():
        with contextlib.suppress(psutil.Error):
            if child.pid not in before and "jobmanager_nb.processes.zygote" in " ".join(child.cmdline()):
                return child
    return None


def workers_of(server: psutil.Process | None) -> list[int]:
    """The live workers the fork server has forked (spares and running ones)."""
    if server is None:
        return []
    with contextlib.suppress(psutil.Error):
        return [p.pid for p in server.children() if not is_gone(p.pid)]
    return []


def sigkill(pids: list[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def kill(trial: Trial, before: set[int], handles: list[RunHandle]) -> bool:
    """Kill what the trial says; True if the worker of one of ``handles`` was killed itself.

    (A worker whose fork server is killed dies too, but only once the server is gone: a job that
    is quick to answer a cancel may still end normally in between, so that is not counted.)"""
    server = fork_server(before)
    victims: list[int] = []
    if trial.target in ("fork server", "both") and server is not None:
        victims.append(server.pid)
    hit = False
    if trial.target in ("worker", "both"):
        pids = [h.pid for h in handles if h.pid is not None]  # type: ignore[attr-defined]
        victims.extend(pids or workers_of(server))  # before submit: the spares
        hit = bool(pids)
    trial.seen.update(victims, workers_of(server))
    sigkill(victims)
    return hit


@pytest.mark.parametrize("trial", trials(), ids=str)
def test_sigkill_at_a_random_moment_leaves_one_exit_per_run_and_no_process(trial: Trial) -> None:
    me = psutil.Process()
    before = {p.pid for p in me.children(recursive=True)}
    ex = ProcessExecutor(max_workers=2, spares=trial.spares)
    recorders: list[Recorder] = []
    handles: list[RunHandle] = []
    try:
        if trial.spares:  # the spares are started in the background; let them be there to be killed
            wait_until(lambda: len(workers_of(fork_server(before))) >= trial.spares, WAIT)
        if trial.moment == "before submit":
            kill(trial, before, handles)
        for _ in range(trial.runs):
            recorder = Recorder()
            handles.append(ex.submit(trial_task(), recorder))
            recorders.append(recorder)
        hit_running = False
        if trial.moment == "right after submit":
            kill(trial, before, handles)
        elif trial.moment == "while running":
            recorders[0].wait_for(lambda e: e.kind == "started")
            recorders[0].wait_message(lambda m: m == "waiting")
            hit_running = kill(trial, before, handles[:1])  # the first run's job is running
        for handle in handles:
            trial.seen.update(p for p in [handle.pid] if p is not None)  # type: ignore[attr-defined]
            handle.cancel(grace=2)  # whatever survived ends now
        outcomes = [recorder.outcome(timeout=WAIT) for recorder in recorders]
        for recorder in recorders:  # what the jobs started: once a run ended, none of it may be left
            pids = posted_pids(recorder)
            trial.seen.update(pids)
            assert wait_gone(pids, timeout=5) == [], f"{trial}: a process of an ended run survived"
        if hit_running:
            assert outcomes[0].lost, f"{trial}: {outcomes[0]}"
        for number, (outcome, recorder) in enumerate(zip(outcomes, recorders, strict=True)):
            # a worker that dies before its run started is replaced: a run is "lost" only once it started (the
            # start may come after the kill was sent: a worker outlives its fork server for a moment)
            started = "started" in recorder.kinds()
            assert started or not outcome.lost, f"{trial}: run {number} never started, yet ended lost: {outcome}"
        fresh = Recorder()
        ex.submit(reference("add", data={"a": trial.number, "b": 1}), fresh)
        assert fresh.outcome(timeout=WAIT).result == trial.number + 1, str(trial)
        assert ex.start_method == "forkserver", f"{trial}: a killed fork server is replaced, not given up on"
        trial.seen.update(workers_of(fork_server(before)))
    finally:
        ex.shutdown(timeout=5)
    for recorder in recorders:  # every event has been delivered once shutdown returned
        assert recorder.kinds().count("exited") == 1, f"{trial}: {recorder.kinds()}"
        assert recorder.kinds()[-1] == "exited", f"{trial}: {recorder.kinds()}"
    left = [p.pid for p in me.children(recursive=True) if p.pid not in before and not is_gone(p.pid)]
    assert left == [], f"{trial}: processes left after shutdown: {left}"
    assert wait_gone(sorted(trial.seen), timeout=5) == [], f"{trial}: a process the executor started survived"


def test_a_fork_server_killed_again_and_again_is_replaced_with_its_spares() -> None:
    """Spares that die with their fork server are not taken for spares that keep dying (after
    which the executor would stop keeping spares)."""
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    ex = ProcessExecutor(spares=2)
    try:
        for _ in range(3):
            server: psutil.Process = wait_until(lambda: fork_server(before), WAIT)
            wait_until(lambda s=server: len(workers_of(s)) >= 2, WAIT)  # its spares are there (again)
            before.add(server.pid)  # the next one is a new server
            server.kill()
        wait_until(lambda: len(workers_of(fork_server(before))) >= 2, WAIT)  # spares are still kept
        recorder = Recorder()
        ex.submit(reference("add", data={"a": 1, "b": 1}), recorder)
        assert recorder.outcome().result == 2
        assert ex.start_method == "forkserver"
    finally:
        ex.shutdown(timeout=5)


@pytest.mark.parametrize("target", ["worker", "fork server"])
def test_what_a_lost_worker_started_is_killed_when_its_run_ends(target: str) -> None:
    """A job's own subprocess (a grandchild, reparented to pid 1 once its worker died, so no
    ``children()`` listing sees it) is killed with its worker's process group when the worker is
    lost, whether the worker itself or its fork server was killed."""
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    ex = ProcessExecutor(spares=1)
    grandchild = None
    try:
        recorder = Recorder()
        ex.submit(reference("sleep_with_grandchild"), recorder)
        _, worker_pid, grandchild = recorder.wait_message(lambda m: isinstance(m, tuple) and m[0] == "pids")
        victim = worker_pid if target == "worker" else fork_server(before)
        sigkill([victim if isinstance(victim, int) else victim.pid])  # type: ignore[union-attr]
        assert recorder.outcome().lost
        assert wait_gone([grandchild], timeout=5) == [], "the job's subprocess survived its lost worker"
    finally:
        ex.shutdown(timeout=5)
        if grandchild is not None:
            sigkill([grandchild] if not is_gone(grandchild) else [])


PARENT = """
import sys
from executor_helpers import Recorder, reference
from jobmanager_nb.executors import ProcessExecutor

recorder = Recorder()
ProcessExecutor(spares=0).submit(reference("sleep_with_grandchild"), recorder)
_, worker_pid, grandchild = recorder.wait_message(lambda m: isinstance(m, tuple) and m[0] == "pids")
print(worker_pid, grandchild, flush=True)
sys.stdin.read()
"""


def test_what_a_job_started_dies_with_the_process_that_ran_the_executor() -> None:
    """The executor's own process killed: the fork server kills each worker's process group as it
    goes (its workers die with it at once, before their own clean-up could)."""
    tests = os.path.dirname(os.path.abspath(__file__))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([os.path.dirname(tests), tests])}
    parent = subprocess.Popen(
        [sys.executable, "-c", PARENT], env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    pids: list[int] = []
    try:
        assert parent.stdout is not None
        pids = [int(word) for word in parent.stdout.readline().split()]
        assert len(pids) == 2
        parent.kill()
        parent.wait(WAIT)
        assert wait_gone(pids, timeout=5) == [], "a process of the dead executor's job survived"
    finally:
        parent.kill()
        parent.wait(WAIT)
        sigkill([pid for pid in pids if not is_gone(pid)])
