"""The fork server and worker processes SIGKILLed at random moments: every run ends (its wait returns,
finished or failed), the manager keeps working, and once it is closed nothing it started is left running.

Only processes that appeared during the test are ever killed: the fork server (a child of this process
running ``jobmanager_nb.processes.zygote``), the workers it forked (its children), and workers started by
``spawn`` (``jobmanager_nb.processes.child``), should the executor fall back to it.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections import Counter
from typing import Any

import fault_jobs
import psutil
from fault_helpers import QUICK, ProcessWatch, Trial, ended, keeps_working, still_alive, trials
from polling import wait_until

from jobmanager_nb import JobManager

SHARED_MANAGER_TRIALS = 24
CLOSING_TRIALS = 8


def fleet(since: set[int]) -> tuple[list[psutil.Process], list[psutil.Process]]:
    """This test's fork servers and workers that are alive now (never a process from before ``since``)."""
    servers: list[psutil.Process] = []
    workers: list[psutil.Process] = []
    me = os.getpid()
    for process in psutil.Process().children(recursive=True):
        if process.pid in since:
            continue
        try:
            command = " ".join(process.cmdline())
            parent = process.ppid()
            if process.status() == psutil.STATUS_ZOMBIE:
                continue
        except psutil.Error:
            continue
        if "jobmanager_nb.processes.zygote" in command and parent == me:
            servers.append(process)
        elif "jobmanager_nb.processes.zygote" in command or "jobmanager_nb.processes.child" in command:
            workers.append(process)  # forked by the server (same command line), or spawned
    return servers, workers


def kill(processes: list[psutil.Process]) -> int:
    killed = 0
    for process in processes:
        try:
            process.send_signal(signal.SIGKILL)  # psutil checks that the pid was not reused
            killed += 1
        except psutil.Error:
            pass
    return killed


def submit(m: JobManager, trial: Trial) -> list[str]:
    """A few offloaded runs (some print, some post messages, some fail, some retry) and an inline one."""
    rng = trial.rng
    names = []
    for i in range(rng.randrange(1, 5)):
        name = f"job{i}"
        what = rng.choice(["nap", "nap", "chatter", "fail"])
        retries = rng.choice([0, 0, 1])
        if what == "nap":
            m.add_job(fault_jobs.nap, name=name, data={"seconds": rng.uniform(0, 0.3)}, retries=retries)
        elif what == "chatter":
            m.add_job(fault_jobs.chatter, name=name, data={"messages": rng.randrange(1, 30)}, retries=retries)
        else:
            m.add_job(fault_jobs.fail, name=name, retries=retries)
        names.append(name)
    m.add_job(lambda: "inline", name="inline", offloaded=False)
    return [*names, "inline"]


def strike(trial: Trial, since: set[int]) -> str:
    """Kill, at a random moment, the fork server, some workers, or both; returns what was killed."""
    rng = trial.rng
    time.sleep(rng.uniform(0, 0.15))  # the random moment of the fault
    servers, workers = fleet(since)
    target = rng.choice(["server", "a worker", "every worker", "server and workers"])
    victims: list[psutil.Process] = []
    if "server" in target:
        victims += servers
    if target == "a worker" and workers:
        victims.append(rng.choice(workers))
    elif "workers" in target or target == "every worker":
        victims += workers
    killed = kill(victims)
    # A killed server's workers die with it (PR_SET_PDEATHSIG), a moment later: let the fault be over
    # before the trial goes on, so that a fresh run never meets a worker that is only about to die.
    doomed = victims + [w for w in workers if any(s.pid == _parent(w) for s in victims)]
    wait_until(lambda: not any(still_alive(p) for p in doomed), QUICK)
    return f"{target}: {killed} of {len(servers)} server(s) and {len(workers)} worker(s) killed"


def _parent(process: psutil.Process) -> int | None:
    try:
        return process.ppid()
    except psutil.Error:
        return None


def strike_into(struck: list[str], trial: Trial, since: set[int]) -> None:
    struck.append(strike(trial, since))


def test_killing_the_fork_server_and_workers_at_random_moments_ends_every_run_and_leaves_nothing() -> None:
    since = {p.pid for p in psutil.Process().children(recursive=True)}
    tally: Counter[str] = Counter()
    with ProcessWatch(interval=0.02) as watch:
        m = JobManager(log_failures=False, kill_grace=1.0, retry_backoff=0.01)
        try:
            for trial in trials("sigkill", SHARED_MANAGER_TRIALS):
                names = submit(m, trial)
                what = strike(trial, since)
                note = f"{trial} ({what})"
                for name in names:
                    run = ended(m, name)  # a TimeoutError here is a run that never ended
                    assert run.status in ("finished", "failed"), note
                    tally[run.outcome or "?"] += 1
                keeps_working(m, note)
        finally:
            m.close(timeout=QUICK)  # a TimeoutError here fails the test
        left = watch.left_running(since, timeout=5.0)
    assert left == [], f"still running after close(): {left}"
    assert tally["failed"] + tally["lost"] > 0, tally  # the kills did end runs


def test_killing_the_fork_server_and_workers_while_the_manager_closes_leaves_nothing() -> None:
    since = {p.pid for p in psutil.Process().children(recursive=True)}
    with ProcessWatch(interval=0.02) as watch:
        for trial in trials("sigkill while closing", CLOSING_TRIALS):
            m = JobManager(log_failures=False, kill_grace=1.0)
            names = submit(m, trial)
            struck: list[str] = []
            killer = threading.Thread(target=strike_into, args=(struck, trial, since))
            killer.start()
            time.sleep(trial.rng.uniform(0, 0.1))  # the kill comes before, while or after close() begins
            began = time.monotonic()
            m.close(timeout=QUICK)
            killer.join(QUICK)
            note = f"{trial} ({struck})"
            assert time.monotonic() - began < QUICK, note
            for name in names:
                run: Any = ended(m, name, timeout=1.0)
                assert run.status in ("finished", "failed"), note
        left = watch.left_running(since, timeout=5.0)
    assert left == [], f"still running after close(): {left}"
