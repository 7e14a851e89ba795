"""APScheduler 3 (``BackgroundScheduler``) as a benchmark peer: a Python scheduler jobmanager_nb could use.

Every run is a fresh ``python -c`` process that prints one JSON line per raw result; the parent pools them
(see ``benchmarks/_harness.py``). ``-c`` leaves ``__main__`` without a file, so the spawn children of
``ProcessPoolExecutor`` re-import nothing but what unpickling a job needs: APScheduler's ``run_job`` and
the job bodies in ``_apjobs.py``. Every scheduler passes ``misfire_grace_time=None``: the default (1 s)
silently drops queued jobs. ``ProcessPoolExecutor`` uses spawn, APScheduler 3.11's default.

One function per scenario returns pooled result dicts; each takes the number of runs, and runs its
variants interleaved, run by run. Without APScheduler 3 they raise ``PeerUnavailable``. Run as a script
to print JSON lines (stdout) and a table (stderr)::

    python benchmarks/peers/apscheduler_peer.py [scenario ...] [--runs N] [--duration S] [--offset MS]
"""

from __future__ import annotations

import importlib.util
import itertools
import json
import math
import random
import sys
import threading
import time
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path
from typing import Any

_HERE = Path(__file__).resolve().parent
if str(_HERE.parent) not in sys.path:
    sys.path.insert(0, str(_HERE.parent))

import _harness  # noqa: E402
from _harness import PeerUnavailable, Result  # noqa: E402

SPREADS = _harness.SPREAD_OF

_CHILD = "import sys; sys.path.insert(0, sys.argv[1]); import apscheduler_peer; apscheduler_peer._child()"


def _system(detail: str) -> str:
    return f"apscheduler {version('APScheduler')} {detail}".rstrip()


def _check_installed() -> None:
    if importlib.util.find_spec("apscheduler") is None:
        raise PeerUnavailable(
            "APScheduler peer skipped: APScheduler is not installed (pip install 'APScheduler>=3.10,<4')."
        )
    if not version("APScheduler").startswith("3."):
        raise PeerUnavailable(f"APScheduler peer skipped: found {version('APScheduler')}, these scenarios need 3.x.")


def run_child(task: str, timeout: float = 300.0, **params: Any) -> list[Result]:
    """Run one child task in a fresh Python process; return its parsed JSON lines."""
    _check_installed()
    cmd = [sys.executable, "-c", _CHILD, str(_HERE), task, json.dumps(params)]
    return _harness.run_for_results(cmd, f"APScheduler child {task} {params}", timeout=timeout)


# --- scenarios (parent side) ------------------------------------------------------------------------------


def inline_throughput(runs: int = 3, jobs: int = 10_000) -> list[Result]:
    """``add_job(fn)`` (no trigger) × ``jobs`` on ``ThreadPoolExecutor(3)``: jobs/s per run."""
    raw = [line for _ in range(runs) for line in run_child("inline_throughput", jobs=jobs)]
    return _harness.pool(raw, SPREADS)


def offloaded_latency(runs: int = 3, jobs: int = 20, new_scheduler: bool = True) -> list[Result]:
    """No-op jobs one at a time on ``ProcessPoolExecutor(1)``: ms from ``add_job`` to ``EVENT_JOB_EXECUTED``.

    Reused scheduler (warm: one untimed job first) and, if ``new_scheduler``, a new scheduler per job
    (built and started untimed; its worker process starts inside the timing; shutdown untimed).
    """
    raw = []
    for _ in range(runs):
        raw += run_child("latency_reused", jobs=jobs)
        if new_scheduler:
            raw += run_child("latency_new_scheduler", jobs=jobs)
    return _harness.pool(raw, SPREADS)


def offloaded_burst(runs: int = 3, jobs: int = 200) -> list[Result]:
    """``jobs`` no-op jobs at once on ``ProcessPoolExecutor(2)``, scheduler start included: ms per run."""
    raw = [line for _ in range(runs) for line in run_child("burst", jobs=jobs)]
    return _harness.pool(raw, SPREADS)


def punctuality(runs: int = 2, duration: float = 10.0, offset_ms: float | None = 400.0) -> list[Result]:
    """Cron ``second='*'`` for ``duration`` s, started ``offset_ms`` into a second (None: random).

    On ``ThreadPoolExecutor(3)`` and ``ProcessPoolExecutor(2)``; the body returns its start time (taken in
    the child for processes). Lateness = start time mod 1000 ms; jitter = tick interval − 1000 ms.
    """
    raw = []
    for _ in range(runs):
        for executor in ("thread", "process"):
            params = {"executor": executor, "duration": duration, "offset_ms": offset_ms}
            raw += run_child("punctuality", timeout=duration + 120, **params)
    return _harness.pool(raw, SPREADS)


def idle_memory(runs: int = 3, jobs: int = 1000, idle: float = 5.0) -> list[Result]:
    """``jobs`` interval jobs (every hour) on a started scheduler: RSS, and CPU ms over ``idle`` s."""
    raw = [line for _ in range(runs) for line in run_child("idle", timeout=idle + 300, jobs=jobs, idle=idle)]
    return _harness.pool(raw, SPREADS)


SCENARIOS: dict[str, Callable[..., list[Result]]] = {
    "inline_throughput": inline_throughput,
    "offloaded_latency": offloaded_latency,
    "offloaded_burst": offloaded_burst,
    "punctuality": punctuality,
    "idle_memory": idle_memory,
}


# --- child side: one task per fresh process -----------------------------------------------------------------


class _Completions:
    """A listener for ``EVENT_JOB_EXECUTED | EVENT_JOB_ERROR``: counts completions, keeps return values."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self.count = 0
        self.retvals: list[Any] = []
        self.errors: list[BaseException] = []

    def __call__(self, event: Any) -> None:
        with self._cond:
            if event.exception is not None:
                self.errors.append(event.exception)
            else:
                self.retvals.append(event.retval)
            self.count += 1
            self._cond.notify_all()

    def wait_for(self, count: int, timeout: float = 300.0) -> None:
        with self._cond:
            reached = self._cond.wait_for(lambda: self.count >= count, timeout)
        if self.errors:
            raise RuntimeError(f"a benchmark job failed: {self.errors[0]!r}")
        if not reached:
            raise TimeoutError(f"{self.count} of {count} jobs completed within {timeout} s")


def _scheduler(executor: Any, completions: _Completions | None = None) -> Any:
    from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_EXECUTED
    from apscheduler.schedulers.background import BackgroundScheduler

    scheduler = BackgroundScheduler(executors={"default": executor}, job_defaults={"misfire_grace_time": None})
    if completions is not None:
        scheduler.add_listener(completions, EVENT_JOB_EXECUTED | EVENT_JOB_ERROR)
    return scheduler


def _print(measurement: str, system: str, unit: str, **fields: Any) -> None:
    print(json.dumps({"measurement": measurement, "system": system, "unit": unit, **fields}), flush=True)


def _task_inline_throughput(jobs: int) -> None:
    import concurrent.futures

    import _apjobs
    from apscheduler.executors.pool import ThreadPoolExecutor

    scheduler = _scheduler(ThreadPoolExecutor(3))
    scheduler.start()
    _apjobs.arm(jobs)
    start = time.perf_counter()
    for _ in range(jobs):
        scheduler.add_job(_apjobs.count)
    if not _apjobs.finished.wait(300):
        raise TimeoutError(f"{jobs} inline jobs did not complete within 300 s")
    elapsed = time.perf_counter() - start
    scheduler.shutdown()
    _print("inline_throughput", _system("+ ThreadPoolExecutor(3)"), "jobs/s", value=jobs / elapsed, jobs=jobs)

    # Baseline, same process: the raw pool APScheduler dispatches to (this machine's thread hand-off).
    pool = concurrent.futures.ThreadPoolExecutor(3)
    start = time.perf_counter()
    concurrent.futures.wait([pool.submit(_apjobs.noop) for _ in range(jobs)])
    elapsed = time.perf_counter() - start
    pool.shutdown()
    system = "concurrent.futures ThreadPoolExecutor(3) (baseline)"
    _print("inline_throughput", system, "jobs/s", value=jobs / elapsed, jobs=jobs)


def _task_latency_reused(jobs: int) -> None:
    import _apjobs
    from apscheduler.executors.pool import ProcessPoolExecutor

    completions = _Completions()
    scheduler = _scheduler(ProcessPoolExecutor(1), completions)
    scheduler.start()
    scheduler.add_job(_apjobs.noop)  # warm-up, untimed: starts the worker process
    completions.wait_for(1)
    samples = []
    for i in range(jobs):
        start = time.perf_counter()
        scheduler.add_job(_apjobs.noop)
        completions.wait_for(i + 2)
        samples.append((time.perf_counter() - start) * 1000)
    scheduler.shutdown()
    _print("offloaded_latency", _system("+ ProcessPoolExecutor(1), reused"), "ms", samples=samples)


def _task_latency_new_scheduler(jobs: int) -> None:
    import _apjobs
    from apscheduler.executors.pool import ProcessPoolExecutor

    samples = []
    for _ in range(jobs):
        completions = _Completions()
        scheduler = _scheduler(ProcessPoolExecutor(1), completions)
        scheduler.start()
        start = time.perf_counter()
        scheduler.add_job(_apjobs.noop)
        completions.wait_for(1)
        samples.append((time.perf_counter() - start) * 1000)
        scheduler.shutdown()
    system = _system("+ ProcessPoolExecutor(1), new scheduler per job")
    _print("offloaded_latency", system, "ms", samples=samples)


def _task_burst(jobs: int) -> None:
    import _apjobs
    from apscheduler.executors.pool import ProcessPoolExecutor

    start = time.perf_counter()
    completions = _Completions()
    scheduler = _scheduler(ProcessPoolExecutor(2), completions)
    scheduler.start()
    for _ in range(jobs):
        scheduler.add_job(_apjobs.noop)
    completions.wait_for(jobs)
    elapsed = (time.perf_counter() - start) * 1000
    scheduler.shutdown()
    system = _system("+ ProcessPoolExecutor(2), incl. start")
    _print("offloaded_burst", system, "ms", value=elapsed, jobs=jobs)


def _wait_for_offset(offset_ms: float) -> None:
    """Return when the wall clock is ``offset_ms`` past a second boundary (sleep, then a short spin)."""
    now = time.time()
    target = math.floor(now) + offset_ms / 1000
    if target - now < 0.05:
        target += 1
    time.sleep(target - now - 0.02)
    while time.time() < target:
        pass


def _task_punctuality(executor: str, duration: float, offset_ms: float | None) -> None:
    import _apjobs
    from apscheduler.executors.pool import ProcessPoolExecutor, ThreadPoolExecutor

    pool, detail = (
        (ThreadPoolExecutor(3), "cron + ThreadPoolExecutor(3)")
        if executor == "thread"
        else (ProcessPoolExecutor(2), "cron + ProcessPoolExecutor(2)")
    )
    completions = _Completions()
    scheduler = _scheduler(pool, completions)
    start_offset = random.uniform(0, 1000) if offset_ms is None else offset_ms
    _wait_for_offset(start_offset)
    started = time.time()
    scheduler.start()
    scheduler.add_job(_apjobs.stamp, "cron", second="*")
    # ~0.3 s past `duration` (as in perf-anchors.md), so that a 10 s run collects 10 ticks.
    time.sleep(max(0.0, started + duration + 0.3 - time.time()))
    scheduler.shutdown()
    ticks = sorted(t * 1000 for t in completions.retvals)
    extra = {"duration_s": duration, "start_offset_ms": start_offset}
    lateness = [t % 1000 for t in ticks]
    jitter = [b - a - 1000 for a, b in itertools.pairwise(ticks)]
    _print("punctuality_lateness", _system(detail), "ms", samples=lateness, **extra)
    _print("punctuality_jitter", _system(detail), "ms", samples=jitter, **extra)


def _task_idle(jobs: int, idle: float) -> None:
    import _apjobs
    import psutil
    from apscheduler.executors.pool import ThreadPoolExecutor

    process = psutil.Process()
    scheduler = _scheduler(ThreadPoolExecutor(10))  # BackgroundScheduler's default executor
    scheduler.start()
    baseline = process.memory_info().rss
    start = time.perf_counter()
    for i in range(jobs):
        scheduler.add_job(_apjobs.noop, "interval", hours=1, id=f"idle-{i}")
    register_ms = (time.perf_counter() - start) * 1000
    rss = process.memory_info().rss
    cpu_before = time.process_time()  # all threads of the process
    time.sleep(idle)
    cpu_ms = (time.process_time() - cpu_before) * 1000
    scheduler.shutdown()
    system = _system("+ ThreadPoolExecutor(10), interval jobs")
    extra = {"jobs": jobs, "idle_s": idle}
    _print("idle_rss", system, "MB", value=rss / 2**20, **extra)
    _print("idle_rss_added", system, "MB", value=(rss - baseline) / 2**20, **extra)
    _print("idle_cpu", system, "ms", value=cpu_ms, **extra)
    _print("idle_register", system, "ms", value=register_ms, **extra)


_TASKS: dict[str, Callable[..., None]] = {
    "inline_throughput": _task_inline_throughput,
    "latency_reused": _task_latency_reused,
    "latency_new_scheduler": _task_latency_new_scheduler,
    "burst": _task_burst,
    "punctuality": _task_punctuality,
    "idle": _task_idle,
}


def _child() -> None:
    """Entry point of a child process: ``python -c ... <peers dir> <task> <params as JSON>``."""
    task, params = sys.argv[2], json.loads(sys.argv[3])
    _TASKS[task](**params)


if __name__ == "__main__":
    sys.exit(_harness.main(SCENARIOS, __doc__))
