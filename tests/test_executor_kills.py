"""SIGKILL at random moments, with real processes: whatever ProcessExecutor loses (its fork server, a
spare, a running worker, before or right after a submit or while the job runs), every submitted run
still gets exactly one ``exited`` event, the executor goes on running jobs, and once it is shut down
no process it started is left."""

from __future__ import annotations

import contextlib
import os
import random
import signal
from dataclasses import dataclass, field

import psutil
import pytest
from executor_helpers import WAIT, Recorder, is_gone, reference, wait_gone
from polling import wait_until

from jobmanager_nb.executors import ProcessExecutor, RunHandle

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


def fork_server(before: set[int]) -> psutil.Process | None:
    """The executor's fork server, if it is there now (a child of ours that was not there before)."""
    for child in psutil.Process().children():
        with contextlib.suppress(psutil.Error):
            if child.pid not in before and "jobmanager_nb._zygote" in " ".join(child.cmdline()):
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
            handles.append(ex.submit(reference("obey_cancel"), recorder))
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
        if hit_running:
            assert outcomes[0].lost, f"{trial}: {outcomes[0]}"
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
