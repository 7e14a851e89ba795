"""One-off store throughput: state transitions per second, jobmanager_nb's stores against plain TinyDB.

A transition is one call: ``claim`` (→ queued), ``mark_started``, ``mark_finished``, each on a fresh name,
into a store that already holds 10, 1,000 or 10,000 finished records. The peer is what Ghost's
JobsRepository does on TinyDB's default ``JSONStorage``: read the record by name
(``get(Query().name == n)``), then ``insert`` it or ``update(..., doc_ids=[id])``. Every system runs in
the same process, interleaved within each run, each on a fresh file in a temporary folder.

    python benchmarks/bench_store.py [--runs 5] [--sizes 10 1000 10000]

Prints one JSON line per result (stdout; see ``_harness``), then a table and the speed-ups (stderr).
Also prints what one ``fsync`` of the file plus its folder costs on this disk, since that bounds the
crash-safe store's rate.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _harness import median, print_line, print_table, result

from jobmanager_nb.store import MemoryStore, OneOffRecord, TinyDBStore, current_owner
from jobmanager_nb.store.atomic import write_atomically

MEASUREMENT = "one-off transitions"
#: Timed transitions per run (a multiple of 3: claim, start, finish per name). Plain TinyDB takes
#: ~25 ms per transition at 1,000 records and ~280 ms at 10,000, so the larger sizes time fewer.
TRANSITIONS = {10: 300, 1_000: 150, 10_000: 30}
T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


def finished_docs(n: int) -> list[dict[str, Any]]:
    """``n`` finished records, as the JSON documents both systems store."""
    docs = []
    for i in range(n):
        start = T0 + timedelta(seconds=i)
        record = OneOffRecord(
            name=f"old-{i:05d}",
            status="finished",
            created_at=start,
            started_at=start,
            finished_at=start + timedelta(milliseconds=5),
            attempts=1,
            meta={"kind": "inline"},
        )
        docs.append(record.to_dict())
    return docs


def prefill_store_file(path: Path, docs: list[dict[str, Any]]) -> None:
    """Write a store file in the documented layout (faster than 3 × n crash-safe transitions)."""
    content = {
        "jobmanager_nb": {"1": {"schema": 1, "revision": "0" * 16}},
        "one_off_jobs": {str(i + 1): doc for i, doc in enumerate(docs)},
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(content, separators=(",", ":")))


def run_jobmanager(store: Any, names: list[str]) -> list[float]:
    owner = current_owner()
    lat: list[float] = []
    clock = time.perf_counter
    for name in names:
        t = clock()
        store.claim(name, owner, {"kind": "inline"})
        t1 = clock()
        store.mark_started(name, owner)
        t2 = clock()
        store.mark_finished(name)
        t3 = clock()
        lat += [t1 - t, t2 - t1, t3 - t2]
    return lat


def run_tinydb(db: Any, names: list[str]) -> list[float]:
    from tinydb import Query

    job = Query()
    lat: list[float] = []
    clock = time.perf_counter
    for name in names:
        now = datetime.now(timezone.utc).isoformat()
        t = clock()
        if db.get(job.name == name) is None:
            db.insert({"name": name, "status": "queued", "created_at": now, "meta": {"kind": "inline"}})
        t1 = clock()
        doc = db.get(job.name == name)
        db.update({"status": "started", "started_at": now}, doc_ids=[doc.doc_id])
        t2 = clock()
        doc = db.get(job.name == name)
        db.update({"status": "finished", "finished_at": now}, doc_ids=[doc.doc_id])
        t3 = clock()
        lat += [t1 - t, t2 - t1, t3 - t2]
    return lat


def one_run(system: str, size: int, docs: list[dict[str, Any]], folder: Path) -> list[float]:
    names = [f"new-{i:04d}" for i in range(TRANSITIONS[size] // 3)]
    path = folder / system / "jobs.json"
    if system == "jobmanager_nb TinyDBStore":
        prefill_store_file(path, docs)
        store = TinyDBStore(path)
        assert len(store.records()) == size
        return run_jobmanager(store, names)
    if system == "jobmanager_nb MemoryStore":
        memory = MemoryStore()
        owner = current_owner()
        for doc in docs:  # the same content, through the API (cheap in memory)
            memory.claim(doc["name"], owner)
            memory.mark_started(doc["name"], owner)
            memory.mark_finished(doc["name"])
        return run_jobmanager(memory, names)
    from tinydb import TinyDB

    path.parent.mkdir(parents=True, exist_ok=True)
    db = TinyDB(path)
    db.insert_multiple(docs)
    try:
        return run_tinydb(db, names)
    finally:
        db.close()


def fsync_cost(folder: Path, size: int, repeats: int = 50) -> dict[str, float]:
    """Median ms to replace a ``size``-byte file, with and without the file and folder fsyncs."""
    data = b"x" * size
    target = folder / "probe.json"
    with_sync = []
    for _ in range(repeats):
        t = time.perf_counter()
        write_atomically(target, data)
        with_sync.append(time.perf_counter() - t)
    without = []
    for _ in range(repeats):
        t = time.perf_counter()
        temp = folder / "probe.tmp"
        temp.write_bytes(data)
        os.replace(temp, target)
        without.append(time.perf_counter() - t)
    return {"fsync_ms": median(with_sync) * 1e3, "no_fsync_ms": median(without) * 1e3}


SYSTEMS = ("jobmanager_nb TinyDBStore", "tinydb JSONStorage get+update", "jobmanager_nb MemoryStore")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument(
        "--sizes", type=int, nargs="+", default=sorted(TRANSITIONS), choices=sorted(TRANSITIONS)
    )
    args = parser.parse_args(argv)

    docs = {size: finished_docs(size) for size in args.sizes}
    rates: dict[tuple[str, int], list[float]] = {}
    latencies: dict[tuple[str, int], list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-store-") as tmp:
        probe = Path(tmp) / "probe"
        probe.mkdir()
        for size in args.sizes:
            approx = len(json.dumps(docs[size])) + 100
            cost = fsync_cost(probe, approx)
            print(
                f"# atomic replace of a {approx:,}-byte file: {cost['fsync_ms']:.2f} ms with fsync "
                f"(file + folder), {cost['no_fsync_ms']:.2f} ms without",
                file=sys.stderr,
                flush=True,
            )
        for run in range(args.runs):
            for size in args.sizes:
                order = SYSTEMS if run % 2 == 0 else tuple(reversed(SYSTEMS))
                for system in order:
                    folder = Path(tmp) / f"run{run}-{size}"
                    lat = one_run(system, size, docs[size], folder)
                    rates.setdefault((system, size), []).append(len(lat) / sum(lat))
                    latencies.setdefault((system, size), []).extend(x * 1e3 for x in lat)
            print(f"# run {run + 1}/{args.runs} done", file=sys.stderr, flush=True)

    rows = []
    for size in args.sizes:
        for system in SYSTEMS:
            rate = result(
                MEASUREMENT,
                system,
                "transitions/s",
                samples=rates[(system, size)],
                spread="min",
                runs=args.runs,
                records=size,
                transitions_per_run=TRANSITIONS[size],
            )
            lat = result(
                f"{MEASUREMENT} latency",
                system,
                "ms",
                samples=latencies[(system, size)],
                spread="p95",
                runs=args.runs,
                records=size,
            )
            lat.pop("samples")
            for row in (rate, lat):
                row["measurement"] = f"{row['measurement']} @ {size:,} records"
                print_line(row)
                rows.append(row)
    print(file=sys.stderr)
    print_table(rows, file=sys.stderr)
    print(file=sys.stderr)
    for size in args.sizes:
        ours = median(rates[("jobmanager_nb TinyDBStore", size)])
        peer = median(rates[("tinydb JSONStorage get+update", size)])
        print(
            f"# {size:>6,} records: TinyDBStore / plain TinyDB = {ours / peer:.1f}x (medians)",
            file=sys.stderr,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
