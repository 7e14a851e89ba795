"""Cost of ``Schedule.next_after`` next to croniter's own ``get_next``, measured in the same run.

Each case walks forward from a fixed start, feeding every result back in (as the scheduler does),
for RUNS runs of CALLS calls; each call is timed on its own. croniter gets its iterator built once per
run, outside the timing, so only ``get_next`` is measured. All schedules follow Europe/Berlin.

    python benchmarks/bench_schedules.py            # table + one JSON line per result
    python benchmarks/bench_schedules.py --quick    # fewer calls, for a smoke test

Goal: our cron ``next_after`` costs at most 2x croniter's ``get_next`` (median per call).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from croniter import croniter

from jobmanager_nb.schedules import parse_schedule

ZONE = ZoneInfo("Europe/Berlin")
START = datetime(2026, 1, 5, 9, 2, 30, tzinfo=ZONE)
CASES = [
    ("cron 6-field", "0 */5 * * * *", True),
    ("cron 5-field", "30 9 * * 1-5", False),
    ("text", "every 5 minutes", None),
    ("text", "at 5:00 pm every weekday", None),
]


def _percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))]


def measure_ours(spec: str, runs: int, calls: int) -> list[float]:
    """Microseconds per ``next_after`` call, one sample per call."""
    schedule = parse_schedule(spec, ZONE)
    clock = time.perf_counter_ns
    samples: list[float] = []
    for _ in range(runs):
        moment: datetime | None = START
        for _ in range(calls):
            assert moment is not None
            before = clock()
            moment = schedule.next_after(moment)
            samples.append((clock() - before) / 1000)
    return samples


def measure_croniter(spec: str, with_seconds: bool, runs: int, calls: int) -> list[float]:
    """Microseconds per ``get_next`` call, one sample per call."""
    clock = time.perf_counter_ns
    samples: list[float] = []
    for _ in range(runs):
        iterator = croniter(spec, START, second_at_beginning=with_seconds, day_or=not with_seconds)
        for _ in range(calls):
            before = clock()
            iterator.get_next(datetime)
            samples.append((clock() - before) / 1000)
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--quick", action="store_true", help="3 runs of 200 calls")
    args = parser.parse_args()
    runs, calls = (3, 200) if args.quick else (args.runs, args.calls)

    results = []
    for case, spec, with_seconds in CASES:
        ours = measure_ours(spec, runs, calls)
        row = {"case": case, "spec": spec, "impl": "jobmanager_nb", "samples": ours}
        results.append(row)
        if with_seconds is not None:
            theirs = measure_croniter(spec, with_seconds, runs, calls)
            results.append({"case": case, "spec": spec, "impl": "croniter", "samples": theirs})

    croniter_median = {r["spec"]: statistics.median(r["samples"]) for r in results if r["impl"] == "croniter"}
    print(
        f"next_after vs croniter.get_next: {runs} runs x {calls} calls, zone {ZONE.key}, "
        f"Python {platform.python_version()}, {platform.machine()}"
    )
    print(f"{'case':<13} {'spec':<26} {'impl':<14} {'median µs':>10} {'p95 µs':>9} {'vs croniter':>12}")
    lines = []
    for row in results:
        samples = row["samples"]
        median = statistics.median(samples)
        p95 = _percentile(samples, 0.95)
        base = croniter_median.get(row["spec"])
        ratio = median / base if base else None
        ratio_text = f"{ratio:.2f}x" if ratio is not None else "-"
        print(
            f"{row['case']:<13} {row['spec']:<26} {row['impl']:<14} "
            f"{median:>10.1f} {p95:>9.1f} {ratio_text:>12}"
        )
        lines.append(
            {
                "benchmark": "schedules.next_after",
                "case": row["case"],
                "spec": row["spec"],
                "impl": row["impl"],
                "runs": runs,
                "calls": calls,
                "median_us": round(median, 2),
                "p95_us": round(p95, 2),
                "ratio_vs_croniter": None if ratio is None else round(ratio, 3),
            }
        )
    for line in lines:
        print(json.dumps(line))
    worst = max((line["ratio_vs_croniter"] or 0.0) for line in lines if line["impl"] == "jobmanager_nb")
    print(
        f"goal (cron next_after within 2x of croniter get_next): {'met' if worst <= 2 else 'NOT met'}"
        f" (worst ratio {worst:.2f})"
    )


if __name__ == "__main__":
    main()
