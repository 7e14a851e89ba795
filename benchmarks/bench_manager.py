"""JobManager benchmarks: jobmanager_nb against Ghost's job manager and APScheduler 3, in one invocation.

Scenarios (each run of each system is a fresh process; the systems are interleaved run by run, so every
row of one table comes from the same invocation):

* ``inline_throughput``: 10,000 no-op inline jobs, clock from the first ``add_job`` until all completed
  (``wait_all()``, or ``await all_settled()`` when the manager lives in a running asyncio loop). Ours in
  three forms: a plain script (the manager's own loop thread), inside ``asyncio.run`` (the notebook case),
  and one name per job (as Ghost's run adds them). Peers: Ghost, APScheduler + ``ThreadPoolExecutor(3)``.
* ``offloaded_latency``: 50 no-op offloaded jobs one at a time, each waited for. Ours reports add → job
  body running (wall clock read in the worker), add → ``started`` event in the parent, and add → the
  parent seeing the run finished (what the peers measure), for ``ProcessExecutor`` with its spares
  refilled between jobs, back to back, without spares, and with spawn; plus the first job of a fresh
  manager (cold). Peers: Ghost (a worker_thread per job), APScheduler + ``ProcessPoolExecutor(1)``.
* ``offloaded_burst``: 200 no-op offloaded jobs added at once, ms until all completed; ours from a
  fresh manager (the executor starts with the first job) and warm. Peers: Ghost, APScheduler.
* ``punctuality``: an every-second cron job (``* * * * * *``) for ``--duration`` s, added 400 ms into a
  second; lateness = wall-clock time at which the body starts, mod 1000 ms; jitter = tick interval minus
  1000 ms. Ours inline and offloaded (time read in the worker). Peers: Ghost (offloaded), APScheduler
  (threads, processes).
* ``idle_memory``: 1,000 registered recurring jobs (``every 1 hours``; inline and offloaded): RSS, its
  growth while registering, and CPU time used over 5 s of idling. Peers: Ghost, APScheduler.

::

    python benchmarks/bench_manager.py [scenario ...] [--runs N] [--duration S] [--offset MS] [--no-peers]

Defaults: 3 runs (punctuality: 1 run of 60 s per system, one after another); about 10 minutes in all.
Prints one JSON line per pooled result (stdout; see ``_harness``), then a table and the goals (stderr).
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path
from typing import Any

_HERE = Path(__file__).resolve().parent
if str(_HERE) not in sys.path:
    sys.path.insert(0, str(_HERE))

import _harness  # noqa: E402
from _harness import PeerUnavailable, Result  # noqa: E402

SCENARIOS = ("inline_throughput", "offloaded_latency", "offloaded_burst", "punctuality", "idle_memory")
INLINE_JOBS = 10_000
LATENCY_JOBS = 50
BURST_JOBS = 200
IDLE_JOBS = 1_000
IDLE_SECONDS = 5.0
IDLE_SPEC = "every 1 hours"

SPREADS = _harness.SPREAD_OF

# Inline variants: (mode, system detail).
INLINE_VARIANTS = (
    ("thread", "add_job(offloaded=False) + wait_all(), plain script"),
    ("asyncio", "same, inside a running asyncio loop + await all_settled()"),
    ("unique", "same, one name per job (as Ghost's run), plain script"),
)
# Offloaded latency variants: (start_method, spares, pause between jobs in s, system detail). With a pause,
# the next job waits until the executor counts ``spares`` idle workers again, then for the pause, so that
# the newest spare has finished starting (the executor does not report when a spare is ready; a forked
# one takes a few ms, a spawned one ~80 ms). Without one, each job is added as soon as the last finished.
LATENCY_VARIANTS = (
    ("forkserver", 2, 0.1, "ProcessExecutor(spares=2), spares refilled between jobs"),
    ("forkserver", 2, None, "ProcessExecutor(spares=2), back to back"),
    ("forkserver", 0, None, "ProcessExecutor(spares=0): fork on demand"),
    ("spawn", 2, 0.3, 'ProcessExecutor(start_method="spawn", spares=2), spares refilled'),
)

_CHILD = "import sys; sys.path.insert(0, sys.argv[1]); import bench_manager; bench_manager._child()"


def _system(detail: str) -> str:
    return f"jobmanager_nb {version('jobmanager_nb')} {detail}"


# --- parent side: one fresh process per run -------------------------------------------------------------


def run_child(task: str, timeout: float = 300.0, **params: Any) -> list[Result]:
    """Run one task of ours in a fresh Python process (``-c``: workers re-import no script); parse its lines.

    A child still running ``timeout`` - 30 s after its start prints every thread's stack and exits.
    """
    cmd = [sys.executable, "-c", _CHILD, str(_HERE), task, json.dumps(params), str(timeout - 30)]
    return _harness.run_for_results(cmd, f"child {task} {params}", timeout=timeout)


class Peer:
    """A peer module (``benchmarks/peers/<name>_peer.py``); skipped, with one message, if it cannot run."""

    def __init__(self, label: str, module_name: str) -> None:
        self.label = label
        self.module_name = module_name
        self.skipped = False

    def run(self, scenario: str, **params: Any) -> list[Result]:
        """One run of ``scenario`` (pooled result dicts), or ``[]`` when the peer is skipped or fails."""
        if self.skipped:
            return []
        peers_dir = str(_HERE / "peers")
        if peers_dir not in sys.path:
            sys.path.insert(0, peers_dir)
        try:
            module = __import__(self.module_name)
            results: list[Result] = getattr(module, scenario)(runs=1, **params)
        except PeerUnavailable as exc:
            print(f"{scenario}: {exc}", file=sys.stderr, flush=True)
            self.skipped = True
            return []
        except (RuntimeError, subprocess.TimeoutExpired) as exc:
            print(f"{scenario}: {self.label} run failed, left out: {exc}", file=sys.stderr, flush=True)
            return []
        return results


def _interleave(runs: int, steps: list[tuple[str, Callable[[], list[Result]]]], scenario: str) -> list[Result]:
    """Run every step once per run, rotating which system goes first; return all raw results."""
    raw: list[Result] = []
    for r in range(runs):
        shift = r % len(steps)
        for label, step in steps[shift:] + steps[:shift]:
            t = time.perf_counter()
            try:
                raw += step()
            except (RuntimeError, subprocess.TimeoutExpired) as exc:  # one lost run, not the whole invocation
                print(f"  {scenario} run {r + 1}/{runs}: {label} failed, left out: {exc}", file=sys.stderr)
                continue
            print(f"  {scenario} run {r + 1}/{runs}: {label} ({time.perf_counter() - t:.1f} s)", file=sys.stderr)
    return raw


def scenario_inline_throughput(runs: int, peers: list[Peer], **_: Any) -> list[Result]:
    steps: list[tuple[str, Callable[[], list[Result]]]] = [
        (f"ours {mode}", lambda mode=mode: run_child("inline", jobs=INLINE_JOBS, mode=mode))
        for mode, _detail in INLINE_VARIANTS
    ]
    steps += [(p.label, lambda p=p: p.run("inline_throughput", jobs=INLINE_JOBS)) for p in peers]
    return _interleave(runs, steps, "inline_throughput")


def scenario_offloaded_latency(runs: int, peers: list[Peer], **_: Any) -> list[Result]:
    steps: list[tuple[str, Callable[[], list[Result]]]] = [
        (
            f"ours {method} spares={spares}{' refilled' if pause is not None else ''}",
            lambda v=(method, spares, pause, i == 0): run_child(
                "latency", jobs=LATENCY_JOBS, start_method=v[0], spares=v[1], pause=v[2], cold=v[3]
            ),
        )
        for i, (method, spares, pause, _detail) in enumerate(LATENCY_VARIANTS)
    ]
    steps += [(p.label, lambda p=p: p.run("offloaded_latency", jobs=LATENCY_JOBS)) for p in peers]
    return _interleave(runs, steps, "offloaded_latency")


def scenario_offloaded_burst(runs: int, peers: list[Peer], **_: Any) -> list[Result]:
    steps: list[tuple[str, Callable[[], list[Result]]]] = [
        (f"ours {'warm' if warm else 'cold'}", lambda warm=warm: run_child("burst", jobs=BURST_JOBS, warm=warm))
        for warm in (False, True)
    ]
    steps += [(p.label, lambda p=p: p.run("offloaded_burst", jobs=BURST_JOBS)) for p in peers]
    return _interleave(runs, steps, "offloaded_burst")


def scenario_punctuality(runs: int, peers: list[Peer], duration: float, offset_ms: float, **_: Any) -> list[Result]:
    timeout = duration + 120
    params = {"duration": duration, "offset_ms": offset_ms}
    steps: list[tuple[str, Callable[[], list[Result]]]] = [
        (f"ours {mode}", lambda mode=mode: run_child("punctuality", timeout=timeout, mode=mode, **params))
        for mode in ("inline", "offloaded")
    ]
    steps += [(p.label, lambda p=p: p.run("punctuality", **params)) for p in peers]
    return _interleave(runs, steps, "punctuality")


def scenario_idle_memory(runs: int, peers: list[Peer], **_: Any) -> list[Result]:
    params = {"jobs": IDLE_JOBS, "idle": IDLE_SECONDS}
    steps: list[tuple[str, Callable[[], list[Result]]]] = [
        (f"ours {mode}", lambda mode=mode: run_child("idle", mode=mode, **params)) for mode in ("inline", "offloaded")
    ]
    steps += [(p.label, lambda p=p: p.run("idle_memory", **params)) for p in peers]
    return _interleave(runs, steps, "idle_memory")


_SCENARIO_FUNCS: dict[str, Callable[..., list[Result]]] = {
    "inline_throughput": scenario_inline_throughput,
    "offloaded_latency": scenario_offloaded_latency,
    "offloaded_burst": scenario_offloaded_burst,
    "punctuality": scenario_punctuality,
    "idle_memory": scenario_idle_memory,
}


# --- goals -----------------------------------------------------------------------------------------------


def _find(rows: list[Result], measurement: str, system_part: str) -> Result | None:
    for r in rows:
        if r["measurement"] == measurement and system_part in r["system"]:
            return r
    return None


def goals(rows: list[Result]) -> list[str]:
    """One line per goal that these rows can judge: met or not met, with the numbers."""
    out = []
    ghost = "ghost job-manager"

    def verdict(ok: bool) -> str:
        return "MET" if ok else "NOT MET"

    peer = _find(rows, "inline_throughput", ghost)
    # The plain script's worst run (its two threads used to fall into a lock convoy at random), and the
    # running loop's median, each against Ghost's median in the same invocation.
    for detail, figure, factor in ((INLINE_VARIANTS[0][1], "min", 2), (INLINE_VARIANTS[1][1], "value", 3)):
        ours = _find(rows, "inline_throughput", detail)
        if ours is not None and peer is not None:
            ratio = ours[figure] / peer["value"]
            what = "worst run" if figure == "min" else "median"
            out.append(
                f"inline throughput, {what} >= {factor}x Ghost's median ({detail}): {verdict(ratio >= factor)}: "
                f"{ours[figure]:,.0f} vs {peer['value']:,.0f} jobs/s = {ratio:.2f}x"
            )
    ours = _find(rows, "offloaded_start", LATENCY_VARIANTS[0][3])
    if ours is not None:
        out.append(
            f"offloaded start latency median <= 5 ms (add -> job body, spares refilled): "
            f"{verdict(ours['value'] <= 5)}: median {ours['value']:.2f} ms, p95 {ours['p95']:.2f} ms"
        )
    peer = _find(rows, "offloaded_burst", ghost)
    for detail in ("fresh manager", "warm executor"):
        ours = _find(rows, "offloaded_burst", detail)
        if ours is not None and peer is not None:
            out.append(
                f"200-job burst faster than Ghost ({detail}): {verdict(ours['value'] < peer['value'])}: "
                f"{ours['value']:,.0f} vs {peer['value']:,.0f} ms"
            )
    inline = _find(rows, "punctuality_lateness", "* inline (")
    if inline is not None:
        ok = inline["value"] <= 1 and inline["max"] <= 20
        out.append(
            f"inline punctuality median <= 1 ms and max <= 20 ms: {verdict(ok)}: "
            f"median {inline['value']:.2f} ms, max {inline['max']:.2f} ms"
        )
    offloaded = _find(rows, "punctuality_lateness", "* offloaded (")
    if offloaded is not None:
        out.append(
            f"offloaded punctuality median <= 10 ms: {verdict(offloaded['value'] <= 10)}: "
            f"median {offloaded['value']:.2f} ms, max {offloaded['max']:.2f} ms"
        )
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").strip().splitlines()[0])
    parser.add_argument("scenario", nargs="*", help=f"any of {', '.join(SCENARIOS)} (default: all)")
    parser.add_argument("--runs", type=int, help="fresh processes per system and scenario (default: 3; punctuality 1)")
    parser.add_argument("--duration", type=float, default=60.0, help="punctuality: seconds per run (default: 60)")
    parser.add_argument("--offset", type=float, default=400.0, help="punctuality: start, ms into a second")
    parser.add_argument("--no-peers", action="store_true", help="measure jobmanager_nb only")
    args = parser.parse_args(argv)
    unknown = [name for name in args.scenario if name not in SCENARIOS]
    if unknown:
        parser.error(f"unknown scenario {', '.join(unknown)}: choose from {', '.join(SCENARIOS)}")
    peers = [] if args.no_peers else [Peer("ghost", "ghost_peer"), Peer("apscheduler", "apscheduler_peer")]
    rows: list[Result] = []
    started = time.perf_counter()
    for name in args.scenario or SCENARIOS:
        runs = args.runs if args.runs is not None else (1 if name == "punctuality" else 3)
        raw = _SCENARIO_FUNCS[name](runs, peers, duration=args.duration, offset_ms=args.offset)
        pooled = _harness.pool(raw, SPREADS)
        for r in pooled:
            _harness.print_line(r)
        rows += pooled
    print(file=sys.stderr)
    _harness.print_table(rows, file=sys.stderr)
    lines = goals(rows)
    if lines:
        print("\nGoals:", file=sys.stderr)
        for line in lines:
            print(f"  {line}", file=sys.stderr)
    print(f"\n{time.perf_counter() - started:.0f} s in all", file=sys.stderr)
    return 0


# --- child side: one task per fresh process ---------------------------------------------------------------


def _print(measurement: str, system: str, unit: str, **fields: Any) -> None:
    print(json.dumps({"measurement": measurement, "system": system, "unit": unit, **fields}), flush=True)


def _task_inline(jobs: int, mode: str) -> None:
    import asyncio

    import _mjobs

    from jobmanager_nb import JobManager

    detail = dict(INLINE_VARIANTS)[mode]
    if mode == "asyncio":

        async def in_loop() -> float:
            manager = JobManager()
            start = time.perf_counter()
            for _ in range(jobs):
                manager.add_job(_mjobs.count, offloaded=False)
            await manager.all_settled(timeout=200)
            elapsed = time.perf_counter() - start
            await manager.shutdown()
            return elapsed

        elapsed = asyncio.run(in_loop())
    else:
        manager = JobManager()
        start = time.perf_counter()
        if mode == "unique":
            for i in range(jobs):
                manager.add_job(_mjobs.count, name=f"inline-{i}", offloaded=False)
        else:
            for _ in range(jobs):
                manager.add_job(_mjobs.count, offloaded=False)
        manager.wait_all(timeout=200)
        elapsed = time.perf_counter() - start
        manager.close()
    if _mjobs.completed != jobs:
        raise RuntimeError(f"{_mjobs.completed} of {jobs} inline jobs ran")
    _print("inline_throughput", _system(detail), "jobs/s", value=jobs / elapsed, jobs=jobs)


def _wait_for_spares(executor: Any, spares: int, pause: float, timeout: float = 5.0) -> None:
    """Return ``pause`` s after the executor counts ``spares`` idle workers (or after ``timeout``)."""
    idle = getattr(executor, "_idle", None)  # private; a benchmark may peek
    deadline = time.monotonic() + timeout
    while idle is not None and len(idle) < spares and time.monotonic() < deadline:
        time.sleep(0.002)
    time.sleep(pause)


def _task_latency(jobs: int, start_method: str, spares: int, pause: float | None, cold: bool) -> None:
    import _mjobs

    from jobmanager_nb import JobManager
    from jobmanager_nb.executors.local import ProcessExecutor

    detail = next(v[3] for v in LATENCY_VARIANTS if v[:3] == (start_method, spares, pause))
    seen_started: dict[str, float] = {}

    def on_event(event: Any) -> None:
        if event.kind == "started":
            seen_started[event.name] = time.time()

    if cold:  # the first offloaded job of a fresh manager: the executor starts with it
        manager = JobManager()
        t = time.time()
        manager.add_job(_mjobs.stamp, name="cold").wait(timeout=60)
        cold_ms = (time.time() - t) * 1000
        manager.close()
        _print("offloaded_latency_cold", _system("first job of a fresh manager, add → finished"), "ms", value=cold_ms)

    executor = ProcessExecutor(start_method=start_method, spares=spares)
    manager = JobManager(executor=executor)
    manager.subscribe(on_event)
    manager.add_job(_mjobs.noop, name="warm-up").wait(timeout=60)  # untimed: the fork server is up
    body, started, finished = [], [], []
    for i in range(jobs):
        if pause is not None:
            _wait_for_spares(executor, spares, pause)
        name = f"latency-{i}"
        t = time.time()
        run = manager.add_job(_mjobs.stamp, name=name).wait(timeout=60)
        done = time.time()
        body.append((run.result - t) * 1000)
        started.append((seen_started[name] - t) * 1000)
        finished.append((done - t) * 1000)
    manager.close()
    _print("offloaded_start", _system(f"{detail}, add → job body"), "ms", samples=body)
    _print("offloaded_started_event", _system(f"{detail}, add → started event"), "ms", samples=started)
    _print("offloaded_latency", _system(f"{detail}, add → finished"), "ms", samples=finished)


def _task_burst(jobs: int, warm: bool) -> None:
    import _mjobs

    from jobmanager_nb import JobManager
    from jobmanager_nb.executors.local import ProcessExecutor

    if warm:
        executor = ProcessExecutor()
        manager = JobManager(executor=executor)
        manager.add_job(_mjobs.noop, name="warm-up").wait(timeout=60)
        _wait_for_spares(executor, executor.spares, 0.1)
        detail = "warm executor (2 spares ready), all done"
    else:
        manager = JobManager()
        detail = "fresh manager (executor starts with the first job), all done"
    names = [f"burst-{i}" for i in range(jobs)]
    start = time.perf_counter()
    for name in names:
        manager.add_job(_mjobs.noop, name=name)
    manager.wait_all(timeout=200)
    elapsed = (time.perf_counter() - start) * 1000
    failed = [n for n in names if manager.job(n).failures]
    manager.close()
    if failed:
        raise RuntimeError(f"{len(failed)} of {jobs} burst jobs failed, e.g. {failed[0]}")
    _print("offloaded_burst", _system(detail), "ms", value=elapsed, jobs=jobs)


def _wait_for_offset(offset_ms: float) -> None:
    """Return when the wall clock is ``offset_ms`` past a second boundary (sleep, then a short spin)."""
    now = time.time()
    target = math.floor(now) + offset_ms / 1000
    if target - now < 0.05:
        target += 1
    time.sleep(target - now - 0.02)
    while time.time() < target:
        pass


def _task_punctuality(mode: str, duration: float, offset_ms: float) -> None:
    import _mjobs

    from jobmanager_nb import JobManager

    manager = JobManager()
    _wait_for_offset(offset_ms)
    started = time.time()
    manager.add_job(_mjobs.stamp, name="every-second", at="* * * * * *", offloaded=mode == "offloaded")
    # ~0.3 s past `duration`, as the peers do, so that a 10 s run collects 10 ticks.
    time.sleep(max(0.0, started + duration + 0.3 - time.time()))
    manager.pause("every-second")
    manager.wait_all(timeout=30)
    runs = manager.runs("every-second", limit=100_000)
    manager.close()
    failed = [r for r in runs if r.status != "finished"]
    if failed:
        raise RuntimeError(f"{len(failed)} of {len(runs)} ticks failed: {failed[0].error}")
    ticks = sorted(r.result * 1000 for r in runs)
    lateness = [t % 1000 for t in ticks]
    jitter = [b - a - 1000 for a, b in itertools.pairwise(ticks)]
    where = "time read in the worker" if mode == "offloaded" else "time read in the job"
    system = _system(f"cron * * * * * * {mode} ({where})")
    extra = {"duration_s": duration, "start_offset_ms": offset_ms, "first_tick_ms": lateness[0] if lateness else None}
    _print("punctuality_lateness", system, "ms", samples=lateness, **extra)
    _print("punctuality_jitter", system, "ms", samples=jitter, **extra)


def _task_idle(mode: str, jobs: int, idle: float) -> None:
    import _mjobs
    import psutil

    from jobmanager_nb import JobManager

    # "every 1 hours" fires on the hour: keep the registration and the idle window clear of it.
    to_the_hour = 3600 - time.time() % 3600
    if to_the_hour < idle + 60:
        time.sleep(to_the_hour + 1)
    process = psutil.Process()
    manager = JobManager()
    baseline = process.memory_info().rss
    start = time.perf_counter()
    for i in range(jobs):
        manager.add_job(_mjobs.noop, name=f"idle-{i}", at=IDLE_SPEC, offloaded=mode == "offloaded")
    register_ms = (time.perf_counter() - start) * 1000
    rss = process.memory_info().rss
    cpu_before = time.process_time()  # every thread of this process
    time.sleep(idle)
    cpu_ms = (time.process_time() - cpu_before) * 1000
    extra = {
        "jobs": jobs,
        "idle_s": idle,
        "spec": IDLE_SPEC,
        "threads": threading.active_count(),
        "child_processes": len(process.children(recursive=True)),
    }
    manager.close()
    system = _system(f'{mode} jobs, at="{IDLE_SPEC}"')
    _print("idle_rss", system, "MB", value=rss / 2**20, **extra)
    _print("idle_rss_added", system, "MB", value=(rss - baseline) / 2**20, **extra)
    _print("idle_cpu", system, "ms", value=cpu_ms, **extra)
    _print("idle_register", system, "ms", value=register_ms, **extra)


_TASKS: dict[str, Callable[..., None]] = {
    "inline": _task_inline,
    "latency": _task_latency,
    "burst": _task_burst,
    "punctuality": _task_punctuality,
    "idle": _task_idle,
}


def _child() -> None:
    """Entry point of a child process: ``python -c ... <benchmarks dir> <task> <params as JSON> <limit s>``."""
    import faulthandler

    task, params, limit = sys.argv[2], json.loads(sys.argv[3]), float(sys.argv[4])
    faulthandler.dump_traceback_later(limit, exit=True)  # a hang shows where every thread stood
    _TASKS[task](**params)
    faulthandler.cancel_dump_traceback_later()


if __name__ == "__main__":
    sys.exit(main())
