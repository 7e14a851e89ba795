"""Soak: 100,000 mixed runs in one JobManager; RSS, open file descriptors and threads sampled throughout.

One manager (default ``ProcessExecutor``, ``kill_grace=0.25``, an ``error_handler`` and a subscriber that
count, as a dashboard would) runs batches of 1,000 runs, each batch added at once and then waited for
with ``wait_all()``. Per 1,000 runs (:data:`MIX`; the kinds are spread evenly through each batch):

* inline, 970: 780 synchronous no-ops and 100 that print one line, under one name each (the common
  ``add_job(fn)`` case), 20 async no-ops, 30 failing with a 10 MB local variable alive in the failing
  frame, 10 printing 1 MB, 15 async sleepers cancelled with ``cancel(name)`` once the batch is added
  (some running, some still queued), 15 async sleepers with ``timeout=0.01``;
* offloaded, 30 (a fresh worker process each): 10 no-ops, 5 failing with 10 MB alive, 5 printing 1 MB,
  5 sleepers cancelled (they stop on ``worker.cancelled``), 3 sleepers with ``timeout=0.05`` that stop
  when asked and 2 that ignore it and are killed after ``kill_grace``.

Every other run has a name of its own, so the job table, the name set and the history budget are
exercised. Every :data:`SAMPLE_EVERY` runs (at a batch boundary, after ``wait_all()``) it samples RSS,
open fds (``psutil.Process().num_fds()``), OS threads, child processes and the sizes of the manager's
tables, and prints one table row (stderr). At the end it prints the summary and one JSON line per figure
(stdout, see ``_harness``):

* RSS at the end against RSS after warm-up (the first 10 % of the runs); goal: grows < 50 MB;
* fds, threads and child processes at the end against the baseline, both taken at rest: after
  ``wait_all()`` once the executor has its spares idle and nothing running (a condition polled for at
  most 10 s, never a blind sleep); goal: back to the baseline;
* the outcome of every run, per kind, against the expected one.

No peer: this measures only whether jobmanager_nb holds steady; the machine and Python are printed
first. ``--runs`` for a quick check; ``--trace`` adds tracemalloc snapshots (after warm-up and at the
end) and prints the lines that grew most (several times slower); past ``--max-rss`` MB (default 3,000)
the soak stops early and says so, so that a leak cannot take a shared machine down.

::

    python benchmarks/bench_soak.py [--runs N] [--trace] [--max-rss MB]

About a minute for the default 100,000 runs on 2 shared cores (``--trace``: about 4 minutes).
"""

from __future__ import annotations

import argparse
import collections
import os
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

_HERE = Path(__file__).resolve().parent
if str(_HERE) not in sys.path:
    sys.path.insert(0, str(_HERE))

import _harness  # noqa: E402

RUNS = 100_000
BATCH = 1_000
SAMPLE_EVERY = 2_000
WARM_UP = 0.10
RSS_GOAL_MB = 50.0
SETTLE_TIMEOUT = 10.0
MAX_RSS_MB = 3_000.0
"""Past this RSS the soak stops early and says so: a leak must not take a shared machine down."""
KILL_GRACE = 0.25


@dataclass(frozen=True)
class Kind:
    """One kind of run in the mix: how many per batch, how to add it, and how it must end."""

    key: str
    per_batch: int
    func: str
    offloaded: bool
    expected: str  # the outcome every run of this kind must end with
    timeout: float | None = None
    shared_name: bool = False  # one name for every run of the kind (re-added while still queued)
    cancel: bool = False  # cancelled with cancel(name) once the batch is added


MIX = (
    Kind("inline ok", 780, "ok", False, "finished", shared_name=True),
    Kind("inline print a line", 100, "print_line", False, "finished", shared_name=True),
    Kind("inline async ok", 20, "ok_async", False, "finished"),
    Kind("inline fail, 10 MB in frame", 30, "fail_big", False, "failed"),
    Kind("inline print 1 MB", 10, "print_big", False, "finished"),
    Kind("inline async cancelled", 15, "sleep_async", False, "cancelled", cancel=True),
    Kind("inline async timeout=0.01", 15, "sleep_async", False, "timed_out", timeout=0.01),
    Kind("offloaded ok", 10, "ok", True, "finished"),
    Kind("offloaded fail, 10 MB in frame", 5, "fail_big", True, "failed"),
    Kind("offloaded print 1 MB", 5, "print_big", True, "finished"),
    Kind("offloaded cancelled", 5, "sleep_until_cancelled", True, "cancelled", cancel=True),
    Kind("offloaded timeout=0.05, stops", 3, "sleep_until_cancelled", True, "timed_out", timeout=0.05),
    Kind("offloaded timeout=0.05, killed", 2, "sleep_stubbornly", True, "timed_out", timeout=0.05),
)
assert sum(k.per_batch for k in MIX) == BATCH


def batch_order() -> list[Kind]:
    """The kinds of one batch, each spread evenly through it (a fixed order, the same every batch)."""
    slots: list[tuple[float, int, Kind]] = []
    for index, kind in enumerate(MIX):
        step = BATCH / kind.per_batch
        slots += [((i + 0.5) * step, index, kind) for i in range(kind.per_batch)]
    return [kind for _, _, kind in sorted(slots, key=lambda s: (s[0], s[1]))]


# --- measuring ---------------------------------------------------------------------------------------------


@dataclass
class Sample:
    runs: int
    seconds: float
    rss_mb: float
    fds: int
    threads: int
    children: int
    jobs: int
    names: int
    history: int
    with_output: int


def _sample(process: Any, manager: Any, runs: int, start: float) -> Sample:
    return Sample(
        runs=runs,
        seconds=time.perf_counter() - start,
        rss_mb=process.memory_info().rss / 2**20,
        fds=process.num_fds(),
        threads=process.num_threads(),
        children=len(process.children(recursive=True)),
        # private tables, peeked at to tell where growth would come from
        jobs=len(manager._jobs),
        names=len(manager._names),
        history=len(manager._history),
        with_output=len(manager._with_output),
    )


def _at_rest(executor: Any) -> bool:
    """The executor has its spares started and idle, and holds no run (private fields: a benchmark may peek)."""
    with executor._lock:
        return not executor._queue and executor._running == 0 and len(executor._idle) >= executor.spares


def _settle(executor: Any) -> tuple[bool, float]:
    """Wait (at most :data:`SETTLE_TIMEOUT` s) until ``executor`` (None: none was started) is at rest."""
    if executor is None:
        return True, 0.0
    return _wait_until(lambda: _at_rest(executor), SETTLE_TIMEOUT)


def _wait_until(condition: Callable[[], bool], timeout: float) -> tuple[bool, float]:
    """Poll ``condition`` every 10 ms for at most ``timeout`` s; (whether it held, seconds waited)."""
    start = time.perf_counter()
    while True:
        if condition():
            return True, time.perf_counter() - start
        if time.perf_counter() - start > timeout:
            return False, time.perf_counter() - start
        time.sleep(0.01)


def _row(s: Sample) -> str:
    return (
        f"{s.runs:>8,}  {s.seconds:>7.1f}  {s.rss_mb:>7.1f}  {s.fds:>4}  {s.threads:>7}  {s.children:>8}  "
        f"{s.jobs:>5}  {s.names:>6}  {s.history:>7}  {s.with_output:>6}"
    )


HEADER = "    runs        s  RSS MB   fds  threads  children   jobs   names  history  output"


def soak(runs: int, trace: bool, max_rss: float = MAX_RSS_MB) -> int:
    import _soakjobs
    import psutil

    from jobmanager_nb import JobManager

    if trace:
        import tracemalloc

        tracemalloc.start(8)
    process = psutil.Process()
    events: collections.Counter[str] = collections.Counter()
    outcomes: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    handled = [0]

    def on_event(event: Any) -> None:
        events[event.kind] += 1
        if event.kind in ("finished", "failed") and not event.data.get("retrying"):
            outcomes[event.name.rsplit("#", 1)[0]][event.data.get("outcome", "?")] += 1

    def on_error(error: BaseException, meta: dict[str, Any]) -> None:
        handled[0] += 1

    print(
        f"bench_soak: {runs:,} runs, jobmanager_nb {version('jobmanager_nb')}, Python {platform.python_version()} "
        f"({platform.python_implementation()}), {platform.platform()}, {os.cpu_count()} CPUs, "
        f"load average {' / '.join(f'{x:.2f}' for x in os.getloadavg())}",
        file=sys.stderr,
        flush=True,
    )
    first = _sample_process(process)
    manager = JobManager(error_handler=on_error, kill_grace=KILL_GRACE)
    manager.subscribe(on_event)
    order = batch_order()
    funcs = {kind.func: getattr(_soakjobs, kind.func) for kind in MIX}
    warm_up_runs = max(BATCH, round(runs * WARM_UP / BATCH) * BATCH)
    samples: list[Sample] = []
    baseline: Sample | None = None
    warm: Sample | None = None
    snapshot_warm: Any = None
    done = 0
    serial = 0
    stopped = ""
    start = time.perf_counter()
    print(HEADER, file=sys.stderr, flush=True)
    while done < runs and not stopped:
        to_cancel: list[str] = []
        for kind in order[: runs - done]:
            serial += 1
            name = kind.key if kind.shared_name else f"{kind.key}#{serial}"
            manager.add_job(funcs[kind.func], name=name, offloaded=kind.offloaded, timeout=kind.timeout, replace=False)
            if kind.cancel:
                to_cancel.append(name)
        for name in to_cancel:
            manager.cancel(name)
        manager.wait_all(timeout=300)
        done += min(BATCH, runs - done)
        rss = process.memory_info().rss / 2**20
        if rss > max_rss:
            stopped = f"STOPPED EARLY after {done:,} runs: RSS {rss:,.0f} MB is over --max-rss {max_rss:,.0f} MB"
        if done % SAMPLE_EVERY == 0 or done in (runs, warm_up_runs) or stopped:
            sample = _sample(process, manager, done, start)
            samples.append(sample)
            print(_row(sample), file=sys.stderr, flush=True)
            if done == warm_up_runs:
                warm = sample
                _settle(manager._executor)
                baseline = _sample(process, manager, done, start)
                if trace:
                    snapshot_warm = tracemalloc.take_snapshot()
    elapsed = time.perf_counter() - start
    manager.flush_events()
    end = samples[-1]

    # At rest again: the executor's spares back, then the fds and threads back to the baseline (bounded).
    rest_ok, rest_s = _settle(manager._executor)
    base = baseline or samples[0]
    back, settle_s = _wait_until(
        lambda: process.num_fds() <= base.fds and process.num_threads() <= base.threads, SETTLE_TIMEOUT
    )
    settled = _sample(process, manager, done, start)
    snapshot_end = tracemalloc.take_snapshot() if trace else None
    manager.close()
    closed = _sample_process(process)

    print(file=sys.stderr)
    if stopped:
        print(stopped, file=sys.stderr)
        runs = done
    _summary(runs, elapsed, samples, warm or samples[0], base, settled, first, closed, rest_ok, rest_s, back, settle_s)
    _check_outcomes(runs, outcomes, events, handled[0])
    if trace and snapshot_warm is not None and snapshot_end is not None:
        print("\ntracemalloc: lines that grew most between warm-up and the end", file=sys.stderr)
        for stat in snapshot_end.compare_to(snapshot_warm, "traceback")[:10]:
            print(
                f"  {stat.size_diff / 2**20:+8.2f} MB  {stat.count_diff:+7}  {stat.traceback.format()[-1]}",
                file=sys.stderr,
            )
    _emit(runs, warm or samples[0], end, base, settled, elapsed)
    return 0


def _sample_process(process: Any) -> dict[str, float]:
    return {
        "rss_mb": process.memory_info().rss / 2**20,
        "fds": process.num_fds(),
        "threads": process.num_threads(),
        "children": len(process.children(recursive=True)),
    }


def _summary(
    runs: int,
    elapsed: float,
    samples: list[Sample],
    warm: Sample,
    base: Sample,
    settled: Sample,
    first: dict[str, float],
    closed: dict[str, float],
    rest_ok: bool,
    rest_s: float,
    back: bool,
    settle_s: float,
) -> None:
    end = samples[-1]
    growth = end.rss_mb - warm.rss_mb
    peak = max(s.rss_mb for s in samples)
    out = sys.stderr
    print(f"{runs:,} runs in {elapsed:.0f} s ({runs / elapsed:,.0f} runs/s, batches of {BATCH:,})", file=out)
    print(
        f"RSS: {warm.rss_mb:.1f} MB after warm-up ({warm.runs:,} runs), {end.rss_mb:.1f} MB at the end, "
        f"peak {peak:.1f} MB: grew {growth:+.1f} MB (goal < {RSS_GOAL_MB:.0f} MB: "
        f"{'MET' if growth < RSS_GOAL_MB else 'NOT MET'}); before the manager: {first['rss_mb']:.1f} MB",
        file=out,
    )
    rest = f"executor at rest after {rest_s:.2f} s" if rest_ok else f"executor NOT at rest after {rest_s:.1f} s"
    print(
        f"at rest ({rest}; fds and threads {'back' if back else 'NOT back'} after {settle_s:.2f} s more):",
        file=out,
    )
    for what in ("fds", "threads", "children"):
        b, e = getattr(base, what), getattr(settled, what)
        verdict = "" if what == "children" else f"  {'MET' if e <= b else 'NOT MET'}"
        print(f"  {what:<9} baseline {b:>4} (after warm-up), end {e:>4}{verdict}", file=out)
    print(
        f"  before the manager: {first['fds']:.0f} fds, {first['threads']:.0f} threads; after close(): "
        f"{closed['fds']:.0f} fds, {closed['threads']:.0f} threads, {closed['children']:.0f} children, "
        f"{closed['rss_mb']:.1f} MB",
        file=out,
    )


def _check_outcomes(
    runs: int, outcomes: dict[str, collections.Counter[str]], events: collections.Counter[str], handled: int
) -> None:
    expected: collections.Counter[str] = collections.Counter()
    for kind in batch_order()[: runs % BATCH] if runs % BATCH else []:
        expected[kind.key] += 1
    for kind in MIX:
        expected[kind.key] += kind.per_batch * (runs // BATCH)
    out = sys.stderr
    print("\noutcomes (every run's last finished/failed event):", file=out)
    wrong = 0
    for kind in MIX:
        seen = outcomes.get(kind.key, collections.Counter())
        ok = seen[kind.expected]
        others = ", ".join(f"{n:,} {o}" for o, n in seen.items() if o != kind.expected)
        wrong += sum(seen.values()) - ok
        mark = "" if ok == expected[kind.key] and not others else "   <-- unexpected"
        print(
            f"  {kind.key:<32} {ok:>7,} {kind.expected:<9} of {expected[kind.key]:>7,}"
            f"{'; ' + others if others else ''}{mark}",
            file=out,
        )
    print(f"  events delivered: {dict(events)}; error_handler calls: {handled:,}", file=out)
    if wrong:
        print(f"  {wrong:,} runs ended otherwise than expected", file=out)


def _emit(runs: int, warm: Sample, end: Sample, base: Sample, settled: Sample, elapsed: float) -> None:
    system = f"jobmanager_nb {version('jobmanager_nb')}, {runs:,} mixed runs"
    extra = {"runs_total": runs, "python": platform.python_version()}
    _harness.emit("soak_rss_warm", system, "MB", value=warm.rss_mb, **extra)
    _harness.emit("soak_rss_end", system, "MB", value=end.rss_mb, **extra)
    _harness.emit("soak_rss_growth", system, "MB", value=end.rss_mb - warm.rss_mb, **extra)
    _harness.emit("soak_fds", system, "fds", value=settled.fds, baseline=base.fds, **extra)
    _harness.emit("soak_threads", system, "threads", value=settled.threads, baseline=base.threads, **extra)
    _harness.emit("soak_elapsed", system, "s", value=elapsed, **extra)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").strip().splitlines()[0])
    parser.add_argument("--runs", type=int, default=RUNS, help=f"runs in all (default {RUNS:,}; at least {BATCH:,})")
    parser.add_argument("--trace", action="store_true", help="tracemalloc: print the lines that grew most")
    parser.add_argument("--max-rss", type=float, default=MAX_RSS_MB, help="MB of RSS past which the soak stops early")
    args = parser.parse_args(argv)
    if args.runs < BATCH:
        parser.error(f"--runs must be at least {BATCH:,} (one batch holds every kind)")
    return soak(args.runs, args.trace, args.max_rss)


if __name__ == "__main__":
    sys.exit(main())
