"""A real SIGINT at each point of a cell's wait for an inline job, on the main thread's loop as in a kernel:
the run ends (finished, or cancelled when the interrupt reached the job), the next wait and ``wait_all``
return, and the manager keeps working.

The wait runs the loop re-entrantly, so the points include the inline queue's pump, the job, the run's
ending and the wait's own code. Each trial sends the signal at its ``n``-th checkpoint (see
``fault_helpers.InterruptAt``), with ``signal.default_int_handler`` installed, as ipykernel does while a
cell runs.
"""

from __future__ import annotations

import itertools
import random
import signal
from pathlib import Path

from fault_helpers import BASE_SEED, QUICK, InterruptAt, ended, keeps_working, on_the_main_thread_loop

from jobmanager_nb import JobFailedError, JobManager

PACKAGE = str(Path(__file__).resolve().parents[2] / "jobmanager_nb")
SAMPLED_POINTS = 80
"""How many checkpoints of the whole wait (the standard library's and asyncio's included) are tried."""


def ours(filename: str) -> bool:
    """jobmanager_nb's code and this file's job: every one of their checkpoints is tried."""
    return filename.startswith(PACKAGE) or filename == __file__


def one_wait(m: JobManager, name: str, injector: InterruptAt) -> str:
    """Add a sync inline job, wait for it with ``injector`` armed; then check that it ended and nothing is
    left running. Returns what the cell heard."""
    m.add_job(lambda: 7, name=name, offloaded=False)
    try:
        injector.call(m.wait, name, QUICK)
        heard = "returned"
    except KeyboardInterrupt:
        heard = "interrupted"
    except JobFailedError:
        heard = "failed"
    note = f"SIGINT at checkpoint {injector.n} ({injector.where}); the cell's wait {heard}"
    run = ended(m, name)  # a TimeoutError here: the run was dropped, or never ended or released
    assert run.outcome in ("finished", "cancelled"), f"{run.outcome} {run.error} {note}"
    if run.outcome == "finished":
        assert run.result == 7, note
    m.wait_all(QUICK)
    return heard


def test_a_sigint_at_any_point_of_a_cells_wait_for_an_inline_job_leaves_the_manager_working() -> None:
    heard: dict[str, int] = {}

    def body(m: JobManager) -> None:
        signal.signal(signal.SIGINT, signal.default_int_handler)
        names = (f"job-{i}" for i in itertools.count())
        calibration = [InterruptAt(None, only=ours) for _ in range(3)]
        for counter in calibration:
            one_wait(m, next(names), counter)
        points = min(counter.points for counter in calibration)
        assert points > 50, points
        fired = 0
        for n in range(1, points + 1):
            injector = InterruptAt(n, by_signal=True, only=ours)
            outcome = one_wait(m, next(names), injector)
            heard[outcome] = heard.get(outcome, 0) + 1
            fired += injector.fired
        assert fired >= points * 0.9, (fired, points)
        keeps_working(m, "after every point of jobmanager_nb's code")

        everything = InterruptAt(None)
        one_wait(m, next(names), everything)
        rng = random.Random(f"{BASE_SEED}:inline waits")
        for n in sorted(rng.sample(range(1, everything.points + 1), min(SAMPLED_POINTS, everything.points))):
            one_wait(m, next(names), InterruptAt(n, by_signal=True))
        keeps_working(m, "after the sampled points of the whole wait")

    on_the_main_thread_loop(body)
    assert heard.get("interrupted", 0) > 0, heard  # the signals did reach the cell
