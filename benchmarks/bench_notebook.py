"""How long the quickstart notebook takes to run top to bottom in a fresh kernel.

The README promises a new user sees everything in under a minute; most of that is reading. This
measures the machine's part: ``notebooks/quickstart.ipynb`` executed headless by nbclient (what
``jupyter execute`` does), a fresh kernel per run, kernel start included, in the notebook's own folder
as a user runs it. The notebook keeps its store in a temporary folder of its own, so runs do not
affect each other (tests/test_notebooks.py checks it leaves the repository clean). There is no peer:
the figure is ours alone.

    python benchmarks/bench_notebook.py [--runs 3]

Prints one JSON line per result (stdout; see ``_harness``), then a table (stderr).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import nbformat
from _harness import print_line, print_table, result
from nbclient import NotebookClient

QUICKSTART = Path(__file__).resolve().parents[1] / "notebooks" / "quickstart.ipynb"


def one_run() -> float:
    """Seconds from kernel start to the last cell's output."""
    nb = nbformat.read(QUICKSTART, as_version=4)
    started = time.perf_counter()
    NotebookClient(
        nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(QUICKSTART.parent)}}
    ).execute()
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=3, help="fresh kernels (default: 3)")
    args = parser.parse_args()
    samples = [one_run() for _ in range(args.runs)]
    row = result(
        "quickstart_run",
        "jobmanager_nb notebooks/quickstart.ipynb, nbclient",
        "s",
        samples=samples,
        spread="p95",
        runs=args.runs,
    )
    print_line(row)
    print(file=sys.stderr)
    print_table([row], file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
