"""An async inline job interrupted on the main thread's loop: the cell hears the Interrupt once, and asyncio
logs nothing afterwards (no 'Task exception was never retrieved' for the job's task or the wait's)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent(
    """
    import asyncio, gc
    from jobmanager_nb import JobManager

    async def job():
        await asyncio.sleep(0)
        raise KeyboardInterrupt  # what a Ctrl-C inside the job's code amounts to

    async def main():
        m = JobManager()
        m.add_job(job, name="a", offloaded=False)
        try:
            m.wait("a", 10)
        except KeyboardInterrupt:
            print("the cell was interrupted")
        print("outcome:", m.runs("a")[-1].outcome)
        await m.shutdown(timeout=10)

    asyncio.run(main())
    gc.collect()
    """
)


def test_an_interrupted_async_inline_job_leaves_no_never_retrieved_task_behind() -> None:
    done = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "the cell was interrupted" in done.stdout and "outcome: cancelled" in done.stdout, done.stdout
    assert "never retrieved" not in done.stderr, done.stderr
