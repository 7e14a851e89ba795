"""The dashboard with 500 jobs: how long building the table and applying bursts of events take.

Each run makes a fresh manager (driven by a fake clock, so nothing fires until the script says so) with
500 inline jobs and a fresh ``JobTable``, in this process (widgets without a frontend: what is measured
is our work on the widget models, which is what keeps a kernel busy). Measured per run:

- ``build_first``: the constructor, which builds the first rows; ``build_all``: until all 500 rows are
  shown; ``build_longest_flush``: the longest single update while the flusher builds the rest;
- ``burst_flush``: every job fires at once (2,000 events: queued, started, finished, scheduled), applied
  in one update; ``refresh``: re-reading all 500 jobs when nothing changed;
- ``pause_all``: 500 ``pause`` calls until every row shows its Resume button, and ``pause_longest_flush``;
- ``click_to_row``: a Resume button clicked (``button.click()``, what a frontend's click triggers in the
  kernel) until its row shows the Pause button instead, 20 clicks per run, one at a time;
- ``busy_per_second_at_10hz``: all 500 jobs report progress 10 times a second for 3 s (a new fraction and
  caption each, 15,000 events): the milliseconds per second the table's updates hold the kernel's
  interpreter (time spent applying updates), and ``updates_per_second`` (how often the rows changed).

The peer is the obvious hand-written dashboard: one ``ipywidgets.HTML`` table re-rendered from
``manager.jobs`` on every event, measured on the same 2,000-event burst.

    python benchmarks/bench_dashboard.py [--runs 5]

Prints one JSON line per result (stdout; see ``_harness``), then a table (stderr).
"""

from __future__ import annotations

import argparse
import html
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import ipywidgets as W
from _harness import Result, print_line, print_table, result

from jobmanager_nb import FakeClock, JobManager
from jobmanager_nb.events import Event
from jobmanager_nb.notebook.table import JobTable

JOBS = 500
CLICKS = 20  # Resume clicks per run, each timed until its row shows the Pause button
OURS = f"jobmanager_nb JobTable, {JOBS} jobs"
PEER = f"one HTML table re-rendered per event, {JOBS} jobs"


def noop() -> None:
    pass


def wait_until(predicate: Callable[[], object], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"condition not met within {timeout} s")
        time.sleep(0.002)


def manager_with_jobs(clock: FakeClock) -> JobManager:
    manager = JobManager(clock=clock)
    for i in range(JOBS):
        manager.add_job(noop, name=f"job{i:03d}", at=3600 + i, offloaded=False)
    return manager


def fire_everything(manager: JobManager, clock: FakeClock) -> None:
    clock.advance(3600 + JOBS)
    wait_until(lambda: all(info.runs == 1 for info in manager.jobs))


def one_run_of_ours() -> dict[str, Any]:
    clock = FakeClock()
    manager = manager_with_jobs(clock)
    figures: dict[str, Any] = {}
    try:
        started = time.perf_counter()
        table = JobTable(manager)
        figures["build_first"] = time.perf_counter() - started
        wait_until(lambda: len(table.names) == JOBS)
        figures["build_all"] = time.perf_counter() - started
        figures["build_longest_flush"] = table.max_flush_seconds

        flushes = table.flushes
        with table._lock:  # hold the flusher off until the whole burst is in: one update applies it
            fire_everything(manager, clock)
        wait_until(lambda: table.flushes > flushes and all(table.row(n).info.runs == 1 for n in table.names))
        figures["burst_flush"] = table.last_flush_seconds
        started = time.perf_counter()
        table.refresh()
        figures["refresh"] = time.perf_counter() - started

        table.max_flush_seconds = 0.0
        started = time.perf_counter()
        for name in table.names:
            manager.pause(name)
        wait_until(lambda: all("resume" in table.row(n).buttons for n in table.names))
        figures["pause_all"] = time.perf_counter() - started
        figures["pause_longest_flush"] = table.max_flush_seconds

        busy, updates = ten_hertz_of_progress(manager, table)
        figures["busy_per_second_at_10hz"] = busy
        figures["updates_per_second"] = updates

        for name in table.names[:CLICKS]:  # one click at a time, as a person clicks
            row = table.row(name)
            started = time.perf_counter()
            row.buttons["resume"].click()
            wait_until(lambda row=row: "pause" in row.buttons)
            figures.setdefault("click_to_row", []).append(time.perf_counter() - started)
        table.close()
    finally:
        manager.close(timeout=5)
    return figures


def ten_hertz_of_progress(manager: JobManager, table: JobTable, seconds: float = 3.0) -> tuple[float, float]:
    """Every job reports progress 10 times a second; returns (seconds of updates per second of wall time,
    updates per second). The progress is set as a worker's report sets it (the job's state, then an event)."""
    spent = [0.0]
    flush = table.flush

    def timed_flush() -> None:
        started = time.perf_counter()
        flush()
        spent[0] += time.perf_counter() - started

    table.flush = timed_flush  # type: ignore[method-assign]
    flushes = table.flushes
    started = time.perf_counter()
    tick = 0
    while time.perf_counter() - started < seconds:
        tick += 1
        fraction = (tick % 100) / 100
        for name in table.names:
            manager._jobs[name].progress = (fraction, f"step {tick}")
            manager._bus.publish(Event("progress", name, manager.clock.now(), None, {"fraction": fraction}))
        time.sleep(max(0.0, started + tick * 0.1 - time.perf_counter()))
    manager.flush_events(30)
    elapsed = time.perf_counter() - started
    table.flush = flush  # type: ignore[method-assign]
    return spent[0] / elapsed, (table.flushes - flushes) / elapsed


def render_html(manager: JobManager) -> str:
    rows = "".join(
        f"<tr><td>{html.escape(i.name)}</td><td>{i.status}</td><td>{i.runs}</td>"
        f"<td>{html.escape(str(i.next_run or ''))}</td></tr>"
        for i in manager.jobs
    )
    return f"<table><tr><th>job</th><th>status</th><th>runs</th><th>next run</th></tr>{rows}</table>"


def one_run_of_the_peer() -> float:
    """Seconds the re-render-per-event dashboard spends on the 2,000-event burst."""
    clock = FakeClock()
    manager = manager_with_jobs(clock)
    widget = W.HTML(value=render_html(manager))
    spent = [0.0]
    lock = threading.Lock()

    def on_event(event: Event) -> None:
        started = time.perf_counter()
        with lock:
            widget.value = render_html(manager)
        spent[0] += time.perf_counter() - started

    unsubscribe = manager.subscribe(on_event)
    try:
        fire_everything(manager, clock)
        manager.wait_all(timeout=60)
    finally:
        unsubscribe()
        manager.close(timeout=5)
        widget.close()
    return spent[0]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=5, help="fresh manager and table per run (default: 5)")
    parser.add_argument("--no-peer", action="store_true", help="skip the peer (about 40 s a run)")
    args = parser.parse_args()
    ours: dict[str, list[float]] = {}
    peer: list[float] = []
    for _ in range(args.runs):
        for key, seconds in one_run_of_ours().items():
            samples = seconds if isinstance(seconds, list) else [seconds]
            scale = 1 if key == "updates_per_second" else 1000
            ours.setdefault(key, []).extend(x * scale for x in samples)
        if not args.no_peer:
            peer.append(one_run_of_the_peer() * 1000)
    units = {"busy_per_second_at_10hz": "ms/s", "updates_per_second": "/s"}
    rows: list[Result] = [
        result(key, OURS, units.get(key, "ms"), samples=samples, spread="p95", runs=args.runs)
        for key, samples in ours.items()
    ]
    if peer:
        rows.append(result("burst_flush", PEER, "ms", samples=peer, spread="p95", runs=args.runs))
    for row in rows:
        print_line(row)
    print(file=sys.stderr)
    print_table(rows, file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
