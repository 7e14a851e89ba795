"""The notebooks the browser tests run, as lists of cell sources (written into the server's folder by
:func:`jupyter_ui.write_notebook`). Each keeps its one-off records in its own store (or in memory), so the
tests never share state through a store file."""

from __future__ import annotations

SETUP = """%load_ext jobmanager_nb
%config JobManagerMagics.store = {store!r}
import asyncio, time
from datetime import datetime, timedelta
from pathlib import Path
from jobmanager_nb import get_manager

m = get_manager()"""

GALLERY_NAMES = (
    "nightly-report",
    "heartbeat",
    "sync-prices",
    "weekly-cleanup-of-the-shared-archive-folder",
    "sync-invoices",
    "crunch",
    "import-rows",
    "send-mail",
    "backup-2026-11",
    "flaky",
)
"""The gallery's jobs, in the order they are added."""

GALLERY_EXPANDED = ("flaky", "crunch", "heartbeat", "import-rows")
"""Rows the layout tests expand: a traceback, a running worker's output, a finished run's, a cancelled run."""

GALLERY = [
    SETUP.format(store=""),
    """def report():
    print("report written to reports/daily.csv")


async def sync_prices():  # takes longer than its interval, so some ticks are skipped
    print("fetching prices")
    await asyncio.sleep(1.5)


def crunch():  # an offloaded job that reports progress
    from jobmanager_nb import worker

    for step in range(1, 1001):
        worker.progress(step / 1000, f"step {step} of 1000")
        print(f"step {step}: ok")
        if worker.cancelled.wait(0.25):
            return


def import_rows():
    from jobmanager_nb import worker

    worker.cancelled.wait(60)


def send_mail():
    raise ConnectionError("the mail server refused the connection")


def flaky():
    print("looking for input.csv")
    raise RuntimeError("input.csv does not exist yet")


# daily, half an hour ago: the widest countdown there is ("in 23 h 30 min"), whatever the time of day
daily = (datetime.now() - timedelta(minutes=30)).strftime("%H:%M")
m.add_job(report, name="nightly-report", at=f"every day at {daily}", offloaded=False, replace=True)
m.add_job(report, name="heartbeat", at=20, offloaded=False, replace=True)
m.add_job(sync_prices, name="sync-prices", at=1, offloaded=False, replace=True)
m.add_job(report, name="weekly-cleanup-of-the-shared-archive-folder", at="every monday at 6:00",
          offloaded=False, replace=True)
m.add_job(report, name="sync-invoices", at="every 5 minutes", offloaded=False, replace=True)
m.pause("sync-invoices")
m.add_job(crunch, name="crunch", replace=True)
m.add_job(import_rows, name="import-rows", replace=True)
m.add_job(send_mail, name="send-mail", retries=8, offloaded=False, replace=True)
m.add_one_off_job(report, name="backup-2026-11", offloaded=False)
m.add_one_off_job(flaky, name="flaky", offloaded=False)
m.run_now("heartbeat")
m.cancel("import-rows")
for name in ("backup-2026-11", "flaky"):
    try:
        m.wait(name, timeout=30)
    except Exception as error:
        print(str(error).splitlines()[0])""",
    "%jobs",
]

RESTART = [
    SETUP.format(store="restart.jobs.json") + '\nPath("restart.flag").unlink(missing_ok=True)',
    """%%oneoff comeback
from pathlib import Path

print("looking for restart.flag")
if not Path("restart.flag").exists():
    raise RuntimeError("restart.flag does not exist yet")
print("found restart.flag")""",
    """try:
    m.wait("comeback", timeout=30)
except Exception as error:
    print("failed as planned:", type(error).__name__)
Path("restart.flag").touch()  # from now on a rerun finishes""",
    """%load_ext jobmanager_nb
%config JobManagerMagics.store = "restart.jobs.json"
%jobs""",
]
"""Cells 0-2 fail the one-off ``comeback`` in one kernel; after a restart, cell 3 shows the dashboard."""

TAIL = [
    SETUP.format(store=""),
    """def chatter():  # a worker that prints a numbered line every 50 ms until cancelled
    from jobmanager_nb import worker

    for i in range(1, 100_000):
        print(f"line {i:05d}", flush=True)
        if worker.cancelled.wait(0.05):
            return


m.add_job(chatter, name="chatter", replace=True)""",
    "%jobs",
]

POLITE_SCRIPT = """from jobmanager_nb import worker

print("working until cancelled")
while not worker.cancelled.wait(0.1):
    pass
print("saw the cancel; returning cleanly")
"""

STATES = [
    SETUP.format(store="") + '\nPath("release").unlink(missing_ok=True)\nPath("release-2").unlink(missing_ok=True)',
    f"""Path("polite.py").write_text({POLITE_SCRIPT!r})


def steady():  # a long run of a recurring offloaded job
    from jobmanager_nb import worker

    worker.cancelled.wait(120)


def send_mail():
    raise ConnectionError("the mail server refused the connection")


def tidy():
    print("tidied")


m.add_job(steady, name="steady", at="every 1 hour", replace=True)
m.run_now("steady")
m.add_job(send_mail, name="send-mail", retries=8, offloaded=False, replace=True)
m.add_job(tidy, name="tidy", at="every 1 hour", offloaded=False, replace=True)
m.add_job(tidy, name="hourly", at="every 1 hour", offloaded=False, replace=True)""",
    "%job polite.py",
    "%jobs",
    """m.run_now("tidy")  # an inline run, due while this cell holds the kernel
while not Path("release").exists():  # the test creates it once it has seen the row
    time.sleep(0.05)""",
    """while not Path("release-2").exists():  # a busy cell, for a click made while it runs
    time.sleep(0.05)
print("paused:", m.job("hourly").paused)""",
]
"""Cells 0-3 show the dashboard; cells 4 and 5 are busy cells (the ``queued · waiting`` state; a click
during a cell), each held until the test creates its release file."""
