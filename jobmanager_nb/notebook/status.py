"""Looking at jobs and waiting for them: ``%jobs``, ``%job list``, ``%job log``, ``%job wait`` and ``%job next``.

- :func:`show_dashboard` (``%jobs``) displays the kernel's one live :class:`~jobmanager_nb.notebook.table.JobTable`
  (made on first use, shown again by each ``%jobs``; ipywidgets is imported only then). In a terminal IPython,
  where widgets cannot be shown, it prints the text table instead.
- :func:`list_jobs` (``%job list``, and ``%job`` alone) prints the table as text
  (:func:`~jobmanager_nb.notebook.text.render_text`).
- :func:`log` (``%job log NAME``) prints the last run's captured output and its traceback without the frames of
  jobmanager_nb itself (:func:`_user_traceback`), or what is known so far of a run still going, and where it ran.
  A one-off that only the store knows (an earlier kernel's) shows its stored status and error.
- :func:`wait` (``%job wait [NAME] [--timeout S]``) blocks until the run of NAME, or every run, ends and says in
  one line how it went (:func:`_outcome_line`); a failure it reports is not reported again after the cell.
- :func:`next_times` (``%job next SPEC [-n 5]``) says what a schedule means in English and when it fires next.
"""

from __future__ import annotations

import os
import re
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell
from IPython.display import display

from jobmanager_nb.errors import JobFailedError, JobManagerError, JobNotFoundError
from jobmanager_nb.model import JobInfo, JobRun
from jobmanager_nb.notebook.oneoffs import _attempt_words, earlier_one_offs
from jobmanager_nb.notebook.parsing import _at_value, _name_only, _parse, _parser, _schedule_errors, _usage
from jobmanager_nb.notebook.text import duration, render_text
from jobmanager_nb.notebook.wording import _error_line, _seconds, _when
from jobmanager_nb.schedules import describe_schedule, next_fire_times
from jobmanager_nb.store import OneOffRecord

if TYPE_CHECKING:
    from jobmanager_nb.notebook.magics import JobManagerMagics

__all__ = ["list_jobs", "log", "next_times", "show_dashboard", "wait"]

_FRAME = re.compile(r'^  File "(.+?)", line \d+')
_PACKAGE_DIR = str(Path(__file__).resolve().parents[1]) + os.sep  # jobmanager_nb/, not jobmanager_nb/notebook/


def show_dashboard(magics: JobManagerMagics, line: str) -> None:
    """``%jobs``: the live table (or, without a widget front end, the text table)."""
    if line.strip():
        raise UsageError("%jobs takes no arguments (for one job's output use %job log NAME).")
    manager = magics.manager()
    if not _has_widget_frontend(magics._shell()):
        print(render_text(manager, earlier_one_offs(manager, magics._shell())))
        return
    from jobmanager_nb.notebook.table import JobTable  # imports ipywidgets: only when a table is shown

    with magics._table_lock:
        if magics._table is None:
            magics._table = JobTable(manager)
        table = magics._table
    display(table)  # type: ignore[no-untyped-call]


def _has_widget_frontend(shell: InteractiveShell) -> bool:
    """True in a Jupyter kernel (widgets can be shown); False in a terminal IPython or a bare shell."""
    return type(shell).__name__ == "ZMQInteractiveShell" and getattr(shell, "kernel", None) is not None


def list_jobs(magics: JobManagerMagics, argv: list[str]) -> None:
    if argv:
        raise UsageError("%job list takes no arguments (%jobs shows the live dashboard).")
    manager = magics.manager()
    print(render_text(manager, earlier_one_offs(manager, magics._shell())))


def log(magics: JobManagerMagics, argv: list[str]) -> None:
    name = _name_only("log", argv)
    manager = magics.manager()
    try:
        info = manager.job(name)
    except JobNotFoundError as exc:
        record = manager.store.get(name)
        if record is None:
            raise _usage(exc) from None
        print(_record_log(record))
        return
    record = manager.store.get(name) if info.one_off else None
    print(_run_log(info, record.attempts if record is not None else None))


def wait(magics: JobManagerMagics, argv: list[str]) -> None:
    parser = _parser("job wait")
    parser.add_argument("name", metavar="NAME", nargs="?")
    parser.add_argument("--timeout", metavar="S", type=float)
    args = _parse(parser, argv)
    manager = magics.manager()
    if args.name is None:
        try:
            manager.wait_all(args.timeout)
        except TimeoutError as exc:
            raise _usage(exc) from None
        print("no job is queued or running")
        return
    try:
        info = manager.job(args.name)
        run = manager.wait(args.name, args.timeout)
    except JobFailedError as exc:
        run = exc.run
    except (TimeoutError, JobManagerError) as exc:
        raise _usage(exc) from None
    magics._reported.append(run.run_id)
    print(_outcome_line(run, info))


def next_times(magics: JobManagerMagics, argv: list[str]) -> None:
    parser = _parser("job next")
    parser.add_argument("spec", metavar="SPEC", nargs="+")
    parser.add_argument("-n", type=int, default=5, metavar="N")
    args = _parse(parser, argv)
    if args.n < 1:
        raise UsageError("-n must be at least 1.")
    spec = " ".join(args.spec)
    at = _at_value(spec)
    with _schedule_errors(spec):
        description = describe_schedule(at)
        times = next_fire_times(at, args.n)
    now = datetime.now().astimezone()
    lines = [description]
    for moment in times:
        local = moment.astimezone()
        lines.append(f"  {local:%a %Y-%m-%d %H:%M:%S %Z}  (in {_seconds((local - now).total_seconds())})")
    if not times:
        lines.append("  no runs ahead: that moment has passed")
    print("\n".join(lines))


def _outcome_line(run: JobRun, info: JobInfo) -> str:
    if run.status == "finished":
        took = f" in {duration(run.duration)}" if run.duration is not None else ""
        result = ""
        if run.result is not None:
            text = repr(run.result)
            result = f", result {text if len(text) <= 80 else text[:77] + '...'}"
        return f'"{run.name}" finished{took} ({run.run_id}{result})'
    if run.cancelled:
        return f'"{run.name}" was cancelled ({run.run_id})'
    hint = f"; rerun with %job rerun {run.name}" if info.one_off else ""
    return f'"{run.name}" failed ({run.run_id}): {_error_line(run.error)} - see %job log {run.name}{hint}'


def _run_log(info: JobInfo, stored_attempts: int | None = None) -> str:
    """The last run of ``info`` (or the one going on); ``stored_attempts`` is a one-off's ``attempts`` in the
    store, which counts its reruns too (a run's own ``attempt`` starts at 1 each time)."""
    run = info.last_run
    lines: list[str] = []
    if run is None and info.current_run is None:
        nxt = f"; next run {_when(info.next_run)}" if info.next_run is not None else ""
        return f'"{info.name}" has not run yet{nxt}'
    if run is None:
        assert info.current_run is not None
        run = info.current_run
        where = f" on {run.location}" if run.location else ""
        lines.append(f'"{info.name}" {run.run_id}: running since {_when(run.started_at)}{where}, output so far:')
    else:
        took = f" after {duration(run.duration)}" if run.duration is not None else ""
        state = "cancelled" if run.cancelled else run.status
        attempt = _attempt_words(stored_attempts) if stored_attempts else f"attempt {run.attempt}"
        where = f" on {run.location}" if run.location else ""
        lines.append(f'"{info.name}" {run.run_id} ({attempt}): {state} at {_when(run.finished_at)}{took}{where}')
    lines.append("output:" if run.output else "output: (none)")
    lines += ["  " + line for line in run.output.rstrip("\n").splitlines()]
    if run.error:
        lines.append("error:")
        lines += ["  " + line for line in _user_traceback(run.error).splitlines()]
    if info.current_run is not None and info.current_run.run_id != run.run_id:
        lines.append(f"(a run is going now: %job wait {info.name})")
    return "\n".join(lines)


def _record_log(record: OneOffRecord) -> str:
    when = _when(record.finished_at or record.started_at or record.created_at)
    took = ""
    if record.started_at is not None and record.finished_at is not None:
        took = f" after {duration((record.finished_at - record.started_at).total_seconds())}"
    lines = [
        f'one-off "{record.name}" (from the store, not run by this kernel; {_attempt_words(record.attempts)}): '
        f"{record.status} at {when}{took}"
    ]
    if record.error:
        lines += ["error:", *("  " + line for line in record.error.rstrip("\n").splitlines())]
    return "\n".join(lines)


def _user_traceback(error: str) -> str:
    """``error`` without the frames of jobmanager_nb itself (the manager and worker plumbing around the job)."""
    out: list[str] = []
    skipping = False
    for line in error.rstrip("\n").splitlines():
        frame = _FRAME.match(line)
        if frame:
            skipping = frame.group(1).startswith(_PACKAGE_DIR)
        elif not (skipping and line.startswith("    ")):
            skipping = False
        if not skipping:
            out.append(line)
    return "\n".join(out)
