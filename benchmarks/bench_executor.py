"""Executor benchmarks: ProcessExecutor's start methods and spares, and DaskExecutor on a local cluster,
against Ghost's job manager, in one invocation.

Configurations: ``forkserver+2``, ``forkserver+1``, ``forkserver+0``, ``spawn+2``, ``spawn+0`` (ProcessExecutor:
``start_method`` + ``spares``) and ``dask`` (``DaskExecutor`` on a 2-worker ``LocalCluster(n_workers=2,
threads_per_worker=1, processes=True, dashboard_address=None)``, started in the run's process, outside the
timing). Each run of each configuration is a fresh process with a fresh executor (warmed with 3 untimed jobs,
then given 0.5 s to start its spares); configurations are interleaved run by run, and Ghost's offloaded rows
(``peers/ghost_peer.py``, when Node.js is available) are measured in the same loop.

* ``executor_start``: 50 no-op jobs one at a time, each waited for: ms from ``submit`` to the job's body
  running (wall clock read in the worker), to the ``started`` event, and to the ``exited`` event; then 50 more
  with 30 ms of quiet before each (``submit`` → ``started``), as between scheduled runs.
* ``executor_burst``: 200 no-op jobs submitted at once (default ``max_workers``; Dask: one job slot per
  worker thread, so 2): ms until the last ``exited`` event.
* ``executor_round_trip``: one running job that echoes every message; 50 times, ms from
  ``RunHandle.post_message`` to the echo's ``message`` event.
* The floors under the Dask rows, on the same cluster, measured by Dask alone (no job process): 50
  ``client.submit(time.time)`` → result, one at a time; 200 tasks of ``client.map`` until all are done; 50
  ``client.run`` on one worker (the path DaskExecutor's messages to a job take).
* ``dask_kill_trials`` (``--kill-trials N``, Dask only, not by default): N times, a job that notes each start
  of its body in a file is started, its Dask worker is SIGKILLed (the nanny starts a new one; Dask places the
  task again), and the run must end ``failed`` and lost (``Worker for job ... was lost: the Dask worker ...
  died ...``); reports how many runs saw their body start twice (the at-most-once promise: 0), and how many
  ended otherwise.

The runs have bytecode caching on (``PYTHONDONTWRITEBYTECODE`` is removed from their environment), so
that a fresh worker loads the job module's ``.pyc`` instead of compiling it, as in a default setup.

::

    python benchmarks/bench_executor.py [--runs N] [--no-ghost] [--configs C ...] [--kill-trials N]

Prints one JSON line per pooled result (stdout; see ``_harness``), then a table (stderr). About 3 minutes
with the default 3 runs (the spawn bursts dominate).
"""

from __future__ import annotations

import argparse
import os
import queue
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

_HERE = Path(__file__).resolve().parent
for _path in (_HERE, _HERE.parent):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

import _harness  # noqa: E402
from _harness import PeerUnavailable, Result  # noqa: E402

if TYPE_CHECKING:
    from jobmanager_nb.executors import Executor

CONFIGS = ("forkserver+2", "forkserver+1", "forkserver+0", "spawn+2", "spawn+0", "dask")
LATENCY_JOBS = 50
BURST_JOBS = 200
ROUND_TRIPS = 50
IDLE_PAUSE = 0.03
"""Seconds of quiet before each job of the idle start rows: longer than the Dask Client's batching window (its
stream to the scheduler sends at most every 10 ms), as between scheduled runs."""
SPREADS = {
    "executor_start": "p95",
    "executor_burst": "max",
    "executor_round_trip": "p95",
    "offloaded_latency": "p95",
    "offloaded_burst": "max",
}
DASK_WORKERS = 2


def _task(run_id: str, function: str) -> Any:
    from jobmanager_nb.executors import OffloadedTask

    # cwd and sys_path as the manager gives them, so that a Dask worker's job process finds the job module
    return OffloadedTask(
        run_id, function, "reference", f"_executor_jobs:{function}", cwd=str(_HERE), sys_path=(str(_HERE),)
    )


@contextmanager
def _executor(config: str) -> Iterator[tuple[Executor, str, Any]]:
    """The configuration's executor, its row label and its Dask cluster (None for ProcessExecutor); the executor
    (and the cluster) shut down after."""
    if config == "dask":
        from distributed import LocalCluster

        from jobmanager_nb.executors.dask import DaskExecutor

        with LocalCluster(
            n_workers=DASK_WORKERS, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster:
            executor = DaskExecutor(cluster)
            try:
                yield executor, f"DaskExecutor, LocalCluster {DASK_WORKERS} workers × 1 thread", cluster
            finally:
                executor.shutdown(timeout=5)
        return
    from jobmanager_nb.executors import ProcessExecutor

    method, spares = config.split("+")
    process_executor = ProcessExecutor(start_method=method, spares=int(spares))
    try:
        yield process_executor, f"ProcessExecutor {method}, spares={spares}", None
    finally:
        process_executor.shutdown(timeout=5)


def _measure(config: str) -> list[Result]:
    """One run of one configuration, in this (fresh) process."""
    from jobmanager_nb.executors import WorkerEvent

    with _executor(config) as (executor, system, cluster):

        def one(run_id: str) -> tuple[float, float, float]:
            marks: dict[str, float] = {}
            finished = threading.Event()

            def listener(event: WorkerEvent) -> None:
                marks.setdefault(event.kind, time.perf_counter())
                if event.kind == "exited":
                    marks["body"] = event.outcome.result if event.outcome else 0.0
                    finished.set()

            wall, start = time.time(), time.perf_counter()
            executor.submit(_task(run_id, "stamp"), listener)
            if not finished.wait(60):
                raise RuntimeError(f"{system}: a job did not finish within 60 s")
            if not isinstance(marks["body"], float):
                raise RuntimeError(f"{system}: the job failed: {marks['body']!r}")
            return (marks["body"] - wall) * 1e3, (marks["started"] - start) * 1e3, (marks["exited"] - start) * 1e3

        for i in range(3):
            one(f"warm-{i}")
        time.sleep(0.5)  # let the spares start: the state a notebook is in between jobs
        samples = [one(f"latency-{i}") for i in range(LATENCY_JOBS)]
        idle = []
        for i in range(LATENCY_JOBS):
            time.sleep(IDLE_PAUSE)  # the method: an idle moment before each job, as between scheduled runs
            idle.append(one(f"idle-{i}"))
        time.sleep(0.5)
        done = threading.Event()
        count = [0]
        failed: list[Any] = []
        lock = threading.Lock()

        def burst_listener(event: WorkerEvent) -> None:
            if event.kind == "exited":
                with lock:
                    count[0] += 1
                    if event.outcome is None or event.outcome.status != "finished":
                        failed.append(event.outcome)
                    if count[0] == BURST_JOBS:
                        done.set()

        start = time.perf_counter()
        for i in range(BURST_JOBS):
            executor.submit(_task(f"burst-{i}", "noop"), burst_listener)
        if not done.wait(300):
            raise RuntimeError(f"{system}: the burst did not finish within 300 s")
        burst = (time.perf_counter() - start) * 1e3
        if failed:
            raise RuntimeError(f"{system}: {len(failed)} burst jobs failed, the first: {failed[0]!r}")
        slots = executor.max_workers if hasattr(executor, "max_workers") else DASK_WORKERS
        round_trips = _round_trips(executor, system)
        floors = _dask_floors(cluster) if cluster is not None else []
    return [
        *floors,
        _harness.result("executor_start", f"{system}: submit → job body", "ms", samples=[s[0] for s in samples]),
        _harness.result("executor_start", f"{system}: submit → started", "ms", samples=[s[1] for s in samples]),
        _harness.result("executor_start", f"{system}: submit → exited", "ms", samples=[s[2] for s in samples]),
        _harness.result(
            "executor_start",
            f"{system}: submit → started, {IDLE_PAUSE * 1e3:.0f} ms idle before each",
            "ms",
            samples=[s[1] for s in idle],
        ),
        _harness.result(
            "executor_burst", f"{system}, {slots} job slots", "ms", value=burst, spread="max", jobs=BURST_JOBS
        ),
        _harness.result("executor_round_trip", f"{system}: post_message → echo", "ms", samples=round_trips),
    ]


def _dask_floors(cluster: Any) -> list[Result]:
    """What Dask itself takes on the same cluster, with no job process: the floor under DaskExecutor's rows."""
    from distributed import Client, wait

    system = f"Dask alone, LocalCluster {DASK_WORKERS} workers × 1 thread"
    with Client(cluster) as client:
        (worker, *_) = client.scheduler_info()["workers"]
        for _ in range(3):
            client.submit(time.time, pure=False).result()
        submits, runs = [], []
        for _ in range(LATENCY_JOBS):
            start = time.perf_counter()
            client.submit(time.time, pure=False).result()
            submits.append((time.perf_counter() - start) * 1e3)
        for _ in range(ROUND_TRIPS):
            start = time.perf_counter()
            client.run(time.time, workers=[worker])
            runs.append((time.perf_counter() - start) * 1e3)
        start = time.perf_counter()
        wait(client.map(int, range(BURST_JOBS), pure=False), timeout=300)
        burst = (time.perf_counter() - start) * 1e3
    return [
        _harness.result("executor_start", f"{system}: client.submit(time.time) → result", "ms", samples=submits),
        _harness.result("executor_burst", f"{system}: {BURST_JOBS} client.map tasks", "ms", value=burst, spread="max"),
        _harness.result("executor_round_trip", f"{system}: client.run on one worker", "ms", samples=runs),
    ]


def _round_trips(executor: Executor, system: str) -> list[float]:
    """ROUND_TRIPS message round trips with one running echo job: post_message → the echo's event."""
    from jobmanager_nb.executors import WorkerEvent

    arrived: queue.SimpleQueue[tuple[Any, float]] = queue.SimpleQueue()
    exited = threading.Event()

    def listener(event: WorkerEvent) -> None:
        if event.kind == "message":
            arrived.put((event.payload, time.perf_counter()))
        elif event.kind == "exited":
            exited.set()
            arrived.put((event.outcome, time.perf_counter()))

    handle = executor.submit(_task("echo", "echo"), listener)
    first, _ = arrived.get(timeout=60)
    if first != "ready":
        raise RuntimeError(f"{system}: the echo job did not start: {first!r}")
    samples = []
    for i in range(ROUND_TRIPS):
        start = time.perf_counter()
        handle.post_message(i)
        answer, at = arrived.get(timeout=30)
        if answer != i:
            raise RuntimeError(f"{system}: sent {i}, got {answer!r}")
        samples.append((at - start) * 1e3)
    handle.post_message("stop")
    if not exited.wait(30):
        raise RuntimeError(f"{system}: the echo job did not stop")
    return samples


KILLS_PER_CLUSTER = 10
"""Worker kills per LocalCluster. A LocalCluster closes a worker's nanny for good when no worker of that name is
back ``distributed.deploy.lost-worker-timeout`` (15 s) after a removal, a check that can fall between a kill and
its restart: after 20 to 30 kills one of its workers is gone (plain ``client.submit`` tasks too). So the trials
take a fresh cluster every 10 kills."""


def _kill_trials(trials: int) -> list[Result]:
    """``trials`` worker kills on the Dask configuration (see the module docstring), in this process."""
    import tempfile

    notes = Path(tempfile.mkdtemp(prefix="bench-kills-")) / "starts.txt"
    endings: list[str] = []
    orphans = 0
    system = ""
    for first in range(0, trials, KILLS_PER_CLUSTER):
        batch = range(first, min(first + KILLS_PER_CLUSTER, trials))
        system, batch_endings, batch_orphans = _kill_batch(batch, notes)
        endings += batch_endings
        orphans += batch_orphans
    starts = notes.read_text().split()
    double = sum(1 for trial in range(trials) if starts.count(f"kill-{trial}") > 1)
    other = [e for e in endings if e != "lost"]
    if other:
        print(f"{len(other)} kill trials did not end lost, the first: {other[0]}", file=sys.stderr)
    return [
        _harness.result(
            "dask_kill_trials",
            f"{system}: runs whose body started twice, of {trials} worker kills",
            "runs",
            value=double,
            trials=trials,
        ),
        _harness.result(
            "dask_kill_trials",
            f"{system}: runs not ended failed and lost, of {trials} worker kills",
            "runs",
            value=len(other),
            trials=trials,
        ),
        _harness.result(
            "dask_kill_trials",
            f"{system}: job processes alive 5 s after their worker's kill, of {trials}",
            "processes",
            value=orphans,
            trials=trials,
        ),
    ]


def _kill_batch(batch: range, notes: Path) -> tuple[str, list[str], int]:
    """The trials of ``batch`` on one fresh cluster: how each run ended, and how many job processes outlived
    their killed worker by 5 s."""
    import json
    import random
    import signal

    import psutil
    from distributed import Client

    from jobmanager_nb.executors import OffloadedTask, WorkerEvent

    endings: list[str] = []
    job_pids: list[int] = []
    with _executor("dask") as (executor, system, cluster), Client(cluster) as client:
        rng = random.Random(batch.start)
        for trial in batch:
            client.wait_for_workers(DASK_WORKERS, timeout=60)
            events: queue.SimpleQueue[WorkerEvent] = queue.SimpleQueue()
            run_id = f"kill-{trial}"
            data = json.dumps({"file": str(notes), "run": run_id})
            job = "_executor_jobs:note_and_wait"
            task = OffloadedTask(run_id, "note", "reference", job, data, cwd=str(_HERE), sys_path=(str(_HERE),))
            executor.submit(task, events.put)
            started = events.get(timeout=60)
            if started.kind != "started":
                raise RuntimeError(f"{system}: expected started, got {started!r}")
            job_pids.append(started.payload)
            if rng.random() < 0.5:  # half the kills land once the body has noted its start, half at once
                noted = events.get(timeout=60)
                if noted.payload != "noted":
                    raise RuntimeError(f"{system}: expected the job's note, got {noted!r}")
            pids = client.run(os.getpid)
            os.kill(pids[started.location], signal.SIGKILL)
            while (event := events.get(timeout=60)).kind != "exited":
                pass
            outcome = event.outcome
            lost = outcome is not None and outcome.status == "failed" and outcome.lost
            endings.append("lost" if lost and "was lost:" in str(outcome.error) else repr(outcome))
        # A re-run would be a job holding a worker thread (it waits 60 s to be cancelled): wait until the
        # restarted workers are back and idle, then count each run's starts.
        client.wait_for_workers(DASK_WORKERS, timeout=60)
        deadline = time.monotonic() + 30
        while any(client.processing().values()):
            if time.monotonic() > deadline:
                raise RuntimeError(f"{system}: tasks still running 30 s after the last kill: {client.processing()}")
            time.sleep(0.05)
    deadline = time.monotonic() + 5
    while (alive := [pid for pid in job_pids if _running(psutil, pid)]) and time.monotonic() < deadline:
        time.sleep(0.05)
    return system, endings, len(alive)


def _running(psutil: Any, pid: int) -> bool:
    try:
        return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False


def _run_child(config: str) -> list[Result]:
    # Bytecode caching on, as in a default Python setup: the rows should time the executor, not the
    # compilation of the job module's source in every fresh worker (PYTHONDONTWRITEBYTECODE=1 does that).
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    cmd = [sys.executable, __file__, "--child", config]
    return _harness.run_for_results(cmd, config, timeout=900, cwd=_HERE, env=env, require=False)


def _ghost(runs_done: int) -> list[Result]:
    try:
        import peers.ghost_peer as ghost

        return [*ghost.offloaded_latency(runs=1), *ghost.offloaded_burst(runs=1)]
    except PeerUnavailable as exc:
        if runs_done == 0:
            print(str(exc), file=sys.stderr)
        return []


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--no-ghost", action="store_true", help="skip Ghost's rows")
    parser.add_argument("--configs", nargs="*", default=list(CONFIGS), choices=CONFIGS)
    parser.add_argument("--kill-trials", type=int, default=0, help="Dask worker-kill trials, in one extra process")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        results = (
            _kill_trials(int(args.child.split(":")[1])) if args.child.startswith("kills:") else _measure(args.child)
        )
        for line in results:
            _harness.print_line(line)
        return
    raw: list[Result] = []
    for run in range(args.runs):
        for config in args.configs:
            print(f"run {run + 1}/{args.runs}: {config}", file=sys.stderr, flush=True)
            raw.extend(_run_child(config))
        if not args.no_ghost:
            print(f"run {run + 1}/{args.runs}: Ghost", file=sys.stderr, flush=True)
            raw.extend(_ghost(run))
    if args.kill_trials:
        print(f"Dask worker-kill trials: {args.kill_trials}", file=sys.stderr, flush=True)
        try:
            raw.extend(_run_child(f"kills:{args.kill_trials}"))
        except RuntimeError as exc:  # report it, and still print the timings measured above
            print(f"the worker-kill trials failed: {exc}", file=sys.stderr, flush=True)
    pooled = _harness.pool(raw, SPREADS)
    for line in pooled:
        _harness.print_line(line)
    print(file=sys.stderr)
    _harness.print_table(pooled, file=sys.stderr)


if __name__ == "__main__":
    main()
