"""ProcessExecutor benchmarks: start method and spares, against Ghost's job manager, in one invocation.

Configurations (``start_method`` + ``spares``): forkserver+2, forkserver+1, forkserver+0, spawn+2, spawn+0.
Each run of each configuration is a fresh process with a fresh executor (warmed with 3 untimed jobs,
then given 0.5 s to start its spares); configurations are interleaved run by run, and Ghost's offloaded
rows (``peers/ghost_peer.py``, when Node.js is available) are measured in the same loop.

* ``executor_start``: 50 no-op jobs one at a time, each waited for: ms from ``submit`` to the job's body
  running (wall clock read in the worker), to the ``started`` event, and to the ``exited`` event.
* ``executor_burst``: 200 no-op jobs submitted at once (default ``max_workers``): ms until the last
  ``exited`` event.

The runs have bytecode caching on (``PYTHONDONTWRITEBYTECODE`` is removed from their environment), so
that a fresh worker loads the job module's ``.pyc`` instead of compiling it, as in a default setup.

::

    python benchmarks/bench_executor.py [--runs N] [--no-ghost]

Prints one JSON line per pooled result (stdout; see ``_harness``), then a table (stderr). About 2 minutes
with the default 3 runs (the spawn bursts dominate).
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from pathlib import Path

_HERE = Path(__file__).resolve().parent
for _path in (_HERE, _HERE.parent):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

import _harness  # noqa: E402
from _harness import PeerUnavailable, Result  # noqa: E402

CONFIGS = ("forkserver+2", "forkserver+1", "forkserver+0", "spawn+2", "spawn+0")
LATENCY_JOBS = 50
BURST_JOBS = 200
SPREADS = {"executor_start": "p95", "executor_burst": "max", "offloaded_latency": "p95", "offloaded_burst": "max"}


def _measure(config: str) -> list[Result]:
    """One run of one configuration, in this (fresh) process."""
    from jobmanager_nb.executors import OffloadedTask, ProcessExecutor, WorkerEvent

    method, spares = config.split("+")
    executor = ProcessExecutor(start_method=method, spares=int(spares))
    system = f"ProcessExecutor {method}, spares={spares}"

    def one(run_id: str) -> tuple[float, float, float]:
        marks: dict[str, float] = {}
        finished = threading.Event()

        def listener(event: WorkerEvent) -> None:
            marks.setdefault(event.kind, time.perf_counter())
            if event.kind == "exited":
                marks["body"] = event.outcome.result if event.outcome else 0.0
                finished.set()

        wall, start = time.time(), time.perf_counter()
        executor.submit(OffloadedTask(run_id, "stamp", "reference", "_executor_jobs:stamp"), listener)
        if not finished.wait(60):
            raise RuntimeError(f"{system}: a job did not finish within 60 s")
        return (marks["body"] - wall) * 1e3, (marks["started"] - start) * 1e3, (marks["exited"] - start) * 1e3

    try:
        for i in range(3):
            one(f"warm-{i}")
        time.sleep(0.5)  # let the spares start: the state a notebook is in between jobs
        samples = [one(f"latency-{i}") for i in range(LATENCY_JOBS)]
        time.sleep(0.5)
        done = threading.Event()
        count = [0]
        lock = threading.Lock()

        def burst_listener(event: WorkerEvent) -> None:
            if event.kind == "exited":
                with lock:
                    count[0] += 1
                    if count[0] == BURST_JOBS:
                        done.set()

        start = time.perf_counter()
        for i in range(BURST_JOBS):
            executor.submit(OffloadedTask(f"burst-{i}", "noop", "reference", "_executor_jobs:noop"), burst_listener)
        if not done.wait(300):
            raise RuntimeError(f"{system}: the burst did not finish within 300 s")
        burst = (time.perf_counter() - start) * 1e3
    finally:
        executor.shutdown(timeout=5)
    return [
        _harness.result("executor_start", f"{system}: submit → job body", "ms", samples=[s[0] for s in samples]),
        _harness.result("executor_start", f"{system}: submit → started", "ms", samples=[s[1] for s in samples]),
        _harness.result("executor_start", f"{system}: submit → exited", "ms", samples=[s[2] for s in samples]),
        _harness.result(
            "executor_burst",
            f"{system}, max_workers={executor.max_workers}",
            "ms",
            value=burst,
            spread="max",
            jobs=BURST_JOBS,
        ),
    ]


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
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        for line in _measure(args.child):
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
    pooled = _harness.pool(raw, SPREADS)
    for line in pooled:
        _harness.print_line(line)
    print(file=sys.stderr)
    _harness.print_table(pooled, file=sys.stderr)


if __name__ == "__main__":
    main()
