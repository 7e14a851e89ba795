"""Ghost's ``@tryghost/job-manager`` 4.0.3 (the seed of jobmanager_nb) as a benchmark peer.

The Node scripts live in ``benchmarks/peers/ghost/``; each one is a single run in a fresh ``node`` process
and prints one JSON line per raw result. On first use, :func:`install` copies the committed
``package.json`` into the scratch folder ``<repo>/.bench-peers/ghost`` (git-ignored) and runs
``npm install --no-audit --no-fund`` there; the scripts then find the packages through ``NODE_PATH``.
Ghost's logger runs with ``LEVEL=error``: at its default ``info`` it costs ~35 % of inline throughput.

One function per scenario returns the pooled result dicts (see ``benchmarks/_harness.py``); each takes
the number of runs. Without Node.js or npm they raise :class:`PeerUnavailable`, whose message says that
the peer is skipped and why. Run as a script to print JSON lines (stdout) and a table (stderr)::

    python benchmarks/peers/ghost_peer.py [scenario ...] [--runs N] [--duration S] [--offset MS]
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

_HERE = Path(__file__).resolve().parent
if str(_HERE.parent) not in sys.path:
    sys.path.insert(0, str(_HERE.parent))

import _harness  # noqa: E402
from _harness import PeerUnavailable, Result  # noqa: E402

SCRIPTS = _HERE / "ghost"
PEER_DIR = _HERE.parents[1] / ".bench-peers" / "ghost"
VERSION = "4.0.3"

SPREADS = _harness.SPREAD_OF


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise PeerUnavailable(
            f"Ghost peer skipped: `{name}` is not on PATH (install Node.js 18 or newer, with npm, to run it)."
        )
    return path


def _installed_version() -> str | None:
    manifest = PEER_DIR / "node_modules" / "@tryghost" / "job-manager" / "package.json"
    try:
        return str(json.loads(manifest.read_text())["version"])
    except (OSError, ValueError, KeyError):
        return None


def install() -> Path:
    """Install the Node peer into :data:`PEER_DIR` unless it is already there; return that folder."""
    _tool("node")
    wanted = (SCRIPTS / "package.json").read_text()
    manifest = PEER_DIR / "package.json"
    if manifest.is_file() and manifest.read_text() == wanted and _installed_version() == VERSION:
        return PEER_DIR
    npm = _tool("npm")
    PEER_DIR.mkdir(parents=True, exist_ok=True)
    manifest.write_text(wanted)
    try:
        proc = subprocess.run(
            [npm, "install", "--no-audit", "--no-fund"],
            cwd=PEER_DIR,
            capture_output=True,
            text=True,
            timeout=600,
        )
    except subprocess.TimeoutExpired as exc:
        message = f"Ghost peer skipped: `npm install` in {PEER_DIR} took over 10 minutes."
        raise PeerUnavailable(message) from exc
    if proc.returncode != 0 or _installed_version() != VERSION:
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-5:])
        raise PeerUnavailable(
            f"Ghost peer skipped: `npm install` in {PEER_DIR} failed (exit {proc.returncode}):\n{tail}"
        )
    return PEER_DIR


def run_node(script: str, timeout: float = 300.0, **args: float | int) -> list[Result]:
    """Run ``ghost/<script>.js`` once in a fresh ``node`` process; return its parsed JSON lines."""
    peer = install()
    env = {**os.environ, "NODE_PATH": str(peer / "node_modules"), "LEVEL": "error"}
    cmd = [_tool("node"), str(SCRIPTS / f"{script}.js"), *(f"{k}={v}" for k, v in args.items())]
    # cwd: the peer folder, so that Ghost's logger finds no stray `loggingrc` configuration.
    return _harness.run_for_results(cmd, " ".join(cmd), timeout=timeout, cwd=peer, env=env)


def _repeat(script: str, runs: int, timeout: float = 300.0, **args: float | int) -> list[Result]:
    raw = [line for _ in range(runs) for line in run_node(script, timeout, **args)]
    return _harness.pool(raw, SPREADS)


def inline_throughput(runs: int = 3, jobs: int = 10_000) -> list[Result]:
    """``addJob({job: async no-op, name, offloaded: false})`` × ``jobs`` back to back: jobs/s per run."""
    return _repeat("inline_throughput", runs, jobs=jobs)


def offloaded_latency(runs: int = 3, jobs: int = 20) -> list[Result]:
    """Offloaded no-op jobs one at a time (a new worker_thread each): ms from ``addJob`` to 'done'."""
    return _repeat("offloaded_latency", runs, jobs=jobs)


def offloaded_burst(runs: int = 3, jobs: int = 200) -> list[Result]:
    """``jobs`` offloaded no-op jobs added at once: ms until all completed, and the peak RSS."""
    return _repeat("offloaded_burst", runs, jobs=jobs)


def punctuality(runs: int = 2, duration: float = 10.0, offset_ms: float | None = 400.0) -> list[Result]:
    """Cron ``* * * * * *`` (offloaded) for ``duration`` s, added ``offset_ms`` into a second (None: random).

    Lateness is the worker's start time mod 1000 ms; jitter is the tick interval minus 1000 ms.
    """
    offset = -1 if offset_ms is None else offset_ms
    return _repeat("punctuality", runs, timeout=duration + 120, duration=duration, offset=offset)


def idle_memory(runs: int = 3, jobs: int = 1000, idle: float = 5.0) -> list[Result]:
    """``jobs`` registered recurring offloaded jobs (cron far ahead): RSS, and CPU ms over ``idle`` s."""
    return _repeat("idle_memory", runs, timeout=idle + 300, jobs=jobs, idle=idle)


SCENARIOS: dict[str, Callable[..., list[Result]]] = {
    "inline_throughput": inline_throughput,
    "offloaded_latency": offloaded_latency,
    "offloaded_burst": offloaded_burst,
    "punctuality": punctuality,
    "idle_memory": idle_memory,
}


if __name__ == "__main__":
    sys.exit(_harness.main(SCENARIOS, __doc__))
