"""Tiny shared helpers for the benchmarks: summaries, JSON result lines and a table for humans.

A *result* is one JSON-serialisable dict, printed as one line::

    {"measurement": "offloaded_latency", "system": "ghost job-manager 4.0.3", "unit": "ms", "runs": 3,
     "value": 22.4, "median": 22.4, "p95": 33.1, "min": 19.8, "max": 41.0, "n": 60,
     "spread": "p95", "spread_value": 33.1, "samples": [...]}

``value`` is the headline figure: the single measured value, or the median of ``samples``. ``spread`` names
the figure that shows the spread (``"p95"`` of pooled samples, ``"max"``, ``"min"``: the worst run of a
rate, or ``"absmax"``: the largest deviation from zero either way, for jitter), and ``spread_value`` holds
it. A single ``value`` has no summary fields. ``samples`` keeps the raw numbers so that results from several
invocations (e.g. peers and jobmanager_nb interleaved run by run) can be pooled with :func:`pool`.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, TextIO

Result = dict[str, Any]


class PeerUnavailable(RuntimeError):
    """A peer cannot run here (a missing tool or package); the message says it is skipped and why."""


SPREADS = ("p95", "max", "min", "absmax")

_RESULT_KEYS = frozenset(
    {"measurement", "system", "unit", "runs", "value", "spread", "spread_value", "samples"}
    | {"n", "median", "p95", "min", "max"}
)

# Spread kind per measurement: the worst run for rates, p95 for pooled per-job samples, else the max.
SPREAD_OF: dict[str, str] = {
    "inline_throughput": "min",
    "offloaded_latency": "p95",
    "offloaded_start": "p95",
    "offloaded_started_event": "p95",
    "offloaded_latency_cold": "max",
    "offloaded_burst": "max",
    "offloaded_burst_peak_rss": "max",
    "punctuality_lateness": "max",
    "punctuality_jitter": "absmax",
    "idle_rss": "max",
    "idle_rss_added": "max",
    "idle_cpu": "max",
    "idle_register": "max",
}


def median(samples: Sequence[float]) -> float:
    """The median of ``samples`` (the mean of the two middle values for an even count)."""
    if not samples:
        raise ValueError("median() of no samples")
    ordered = sorted(samples)
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return float(ordered[middle])
    return (ordered[middle - 1] + ordered[middle]) / 2


def p95(samples: Sequence[float]) -> float:
    """The 95th percentile of ``samples``, linearly interpolated between the closest ranks."""
    if not samples:
        raise ValueError("p95() of no samples")
    ordered = sorted(samples)
    rank = 0.95 * (len(ordered) - 1)
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def summarize(samples: Sequence[float]) -> dict[str, float]:
    """``n``, ``median``, ``p95``, ``min`` and ``max`` of ``samples``."""
    return {
        "n": len(samples),
        "median": median(samples),
        "p95": p95(samples),
        "min": float(min(samples)),
        "max": float(max(samples)),
    }


def _round(x: float) -> float:
    """Four significant decimals: enough for timings, short lines."""
    if x == 0 or not math.isfinite(x):
        return x
    digits = max(0, 3 - math.floor(math.log10(abs(x))))
    return round(x, digits)


def result(
    measurement: str,
    system: str,
    unit: str,
    value: float | None = None,
    samples: Sequence[float] | None = None,
    spread: str = "p95",
    runs: int | None = None,
    **extra: Any,
) -> Result:
    """Build one result dict from a single ``value`` or from raw ``samples`` (see the module docstring)."""
    if (value is None) == (samples is None):
        raise ValueError("give exactly one of value= or samples=")
    if spread not in SPREADS:
        raise ValueError(f"unknown spread {spread!r}: use one of {', '.join(SPREADS)}")
    out: Result = {"measurement": measurement, "system": system, "unit": unit, "runs": runs}
    if value is not None:
        out["value"] = _round(float(value))
    else:
        assert samples is not None
        if not samples:
            raise ValueError(f"{measurement} / {system}: no samples were collected")
        summary = summarize(samples)
        out["value"] = _round(summary["median"])
        out.update({k: v if k == "n" else _round(v) for k, v in summary.items()})
        out["spread"] = spread
        out["spread_value"] = max(-out["min"], out["max"]) if spread == "absmax" else out[spread]
        out["samples"] = [_round(float(s)) for s in samples]
    out.update(extra)
    return out


def emit(
    measurement: str,
    system: str,
    unit: str,
    value: float | None = None,
    samples: Sequence[float] | None = None,
    spread: str = "p95",
    runs: int | None = None,
    file: TextIO | None = None,
    **extra: Any,
) -> Result:
    """Print one result as a JSON line (to stdout by default) and return it."""
    out = result(measurement, system, unit, value, samples, spread, runs, **extra)
    print_line(out, file)
    return out


def print_line(out: Result, file: TextIO | None = None) -> None:
    """Print an already built result as one JSON line."""
    print(json.dumps(out), file=file or sys.stdout, flush=True)


def run_for_results(
    cmd: Sequence[str],
    what: str,
    *,
    timeout: float,
    cwd: str | Path | None = None,
    env: Mapping[str, str] | None = None,
    require: bool = True,
) -> list[Result]:
    """Run ``cmd`` (a benchmark child) and return the result dicts it printed, one JSON line each.

    Raises ``RuntimeError`` naming ``what`` with the child's stderr when it exits non-zero, or when it
    printed no result and ``require`` is true.
    """
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=cwd, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"{what} failed (exit {proc.returncode}):\n{proc.stderr.strip()}")
    lines = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    if require and not lines:
        raise RuntimeError(f"{what} printed no result:\n{proc.stderr.strip()}")
    return lines


def pool(results: Iterable[Result], spreads: Mapping[str, str] | None = None) -> list[Result]:
    """Pool results that share measurement, system and unit, keeping their first-seen order.

    Samples are concatenated; a result holding a single ``value`` adds one sample. ``runs`` are added up,
    counting a result without ``runs`` (one raw line per run) as one run. The spread kind comes from
    ``spreads[measurement]``, else from the first result, else ``"min"`` for rates (units ending in ``/s``)
    and ``"max"`` otherwise. Extra fields are taken from the first result.
    """
    groups: dict[tuple[str, str, str], list[Result]] = {}
    for r in results:
        groups.setdefault((r["measurement"], r["system"], r["unit"]), []).append(r)
    pooled = []
    for (measurement, system, unit), group in groups.items():
        samples: list[float] = []
        for r in group:
            samples.extend(r["samples"] if "samples" in r else [r["value"]])
        first = group[0]
        extra = {k: v for k, v in first.items() if k not in _RESULT_KEYS}
        runs = sum(r.get("runs") or 1 for r in group)
        spread = (spreads or {}).get(measurement) or first.get("spread")
        spread = spread or ("min" if unit.endswith("/s") else "max")
        pooled.append(result(measurement, system, unit, samples=samples, spread=spread, runs=runs, **extra))
    return pooled


def _fmt(x: float | None) -> str:
    if x is None:
        return ""
    if abs(x) >= 1000:
        return f"{x:,.0f}"
    if abs(x) >= 100:
        return f"{x:.0f}"
    if abs(x) >= 10:
        return f"{x:.1f}"
    return f"{x:.2f}"


def print_table(rows: Iterable[Result], file: TextIO | None = None) -> None:
    """Print results as an aligned text table: measurement, system, value, spread, unit, n, runs."""
    header = ("measurement", "system", "value", "spread", "unit", "n", "runs")
    lines = [header]
    for r in rows:
        spread = f"{r['spread']} {_fmt(r['spread_value'])}" if "spread" in r else ""
        lines.append(
            (
                str(r["measurement"]),
                str(r["system"]),
                _fmt(r["value"]),
                spread,
                str(r["unit"]),
                str(r.get("n", "")),
                str(r.get("runs") or ""),
            )
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    right = {2, 3, 5, 6}
    out = file or sys.stdout
    for k, line in enumerate(lines):
        pairs = enumerate(zip(line, widths, strict=True))
        cells = [c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in pairs]
        print("  ".join(cells).rstrip(), file=out)
        if k == 0:
            print("  ".join("-" * w for w in widths), file=out)


def main(
    scenarios: Mapping[str, Callable[..., list[Result]]],
    doc: str | None = None,
    argv: Sequence[str] | None = None,
) -> int:
    """Command line of a peer module: run scenarios, print JSON lines (stdout) and a table (stderr).

    ``[scenario ...] [--runs N] [--duration S] [--offset MS]``; no scenario runs them all. A scenario raising
    :class:`PeerUnavailable` prints "<scenario>: <reason>" and is skipped.
    """
    parser = argparse.ArgumentParser(description=(doc or "").strip().splitlines()[0] if doc else None)
    parser.add_argument("scenario", nargs="*", help=f"any of {', '.join(scenarios)} (default: all)")
    parser.add_argument("--runs", type=int, help="fresh processes per scenario (default: 3; punctuality 2)")
    parser.add_argument("--duration", type=float, default=10.0, help="punctuality: seconds per run")
    parser.add_argument("--offset", type=float, default=400.0, help="punctuality: start, ms into a second (-1: random)")
    args = parser.parse_args(argv)
    unknown = [name for name in args.scenario if name not in scenarios]
    if unknown:
        parser.error(f"unknown scenario {', '.join(unknown)}: choose from {', '.join(scenarios)}")
    rows: list[Result] = []
    for name in args.scenario or list(scenarios):
        kwargs: dict[str, Any] = {} if args.runs is None else {"runs": args.runs}
        if name == "punctuality":
            kwargs.update(duration=args.duration, offset_ms=None if args.offset < 0 else args.offset)
        try:
            results = scenarios[name](**kwargs)
        except PeerUnavailable as exc:
            print(f"{name}: {exc}", file=sys.stderr, flush=True)
            continue
        for r in results:
            print_line(r)
        rows.extend(results)
    if rows:
        print(file=sys.stderr)
        print_table(rows, file=sys.stderr)
    return 0
