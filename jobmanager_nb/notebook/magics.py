"""The magics: :class:`JobManagerMagics`, its settings, and the kernel's manager it keeps.

It defines ``%job`` (a subcommand word goes to its family's module, anything else adds a job), ``%%job``,
``%%oneoff`` and ``%jobs``. Their docstrings are the help ``%job?`` shows; each body is one call into the module
of its family, which parses the line, makes one call to the manager and prints the outcome:

- :mod:`jobmanager_nb.notebook.adding`: ``%job PATH_OR_REF [options]`` and ``%%job``;
- :mod:`jobmanager_nb.notebook.control`: ``run``, ``cancel``, ``pause``, ``resume``, ``remove``;
- :mod:`jobmanager_nb.notebook.status`: ``%jobs``, ``list``, ``log``, ``wait``, ``next``;
- :mod:`jobmanager_nb.notebook.oneoffs`: ``%%oneoff``, ``%job ... --oneoff`` and ``rerun``.

The class keeps the session's :class:`~jobmanager_nb.manager.JobManager` (through
:mod:`jobmanager_nb.session`, with its one-off records in ``.jobmanager/jobs.json``): it opens it, says in
one line which one-off jobs an earlier kernel left interrupted, and reopens it when someone closed it. Settings
are traitlets (``%config JobManagerMagics.store = "path"``); changing ``store``, ``inline_concurrency`` or
``kill_grace`` after loading reopens the manager (keeping the executors added by name). It listens to the
manager's events so that :meth:`~JobManagerMagics.after_cell`, a ``post_run_cell`` hook, says in one line which
jobs failed in the background, and, once per job, which inline job held the kernel (its event loop) for longer than
``slow_inline_notice`` seconds, suggesting a worker process instead. How long a run held the loop is measured
by a callback queued on the loop when the run starts: it can only run once the loop is free again
(:meth:`~JobManagerMagics._probe`). Loading and unloading the extension is :mod:`jobmanager_nb.notebook.extension`.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell
from IPython.core.magic import Magics, magics_class, no_var_expand
from traitlets import Bool, Float, Int, Unicode, observe

from jobmanager_nb import session
from jobmanager_nb.errors import JobManagerError, JobNotFoundError
from jobmanager_nb.events import Event
from jobmanager_nb.executors.base import Executor
from jobmanager_nb.jobs import _looks_like_path
from jobmanager_nb.loops import running_loop
from jobmanager_nb.manager import JobManager
from jobmanager_nb.notebook import adding, control, oneoffs, status
from jobmanager_nb.notebook.parsing import _argument, _arguments, _cell_magic, _line_magic, _split, _usage
from jobmanager_nb.notebook.text import duration
from jobmanager_nb.notebook.wording import _error_line, _when
from jobmanager_nb.store import OneOffRecord

if TYPE_CHECKING:
    from jobmanager_nb.notebook.table import JobTable  # imported on first use (it imports ipywidgets)

__all__ = ["SUBCOMMANDS", "JobManagerMagics"]

_HANDLERS: dict[str, Callable[[JobManagerMagics, list[str]], None]] = {
    "list": status.list_jobs,
    "remove": control.remove,
    "run": control.run,
    "cancel": control.cancel,
    "pause": control.pause,
    "resume": control.resume,
    "rerun": oneoffs.rerun,
    "log": status.log,
    "wait": status.wait,
    "next": status.next_times,
}

SUBCOMMANDS = tuple(_HANDLERS)
"""The words ``%job`` treats as subcommands; anything else is a script path or a reference."""


def _registered_names() -> list[str]:
    """The jobs the session manager would still run (none when no manager is open)."""
    current = session.current_manager()
    return sorted(info.name for info in current.jobs if info.registered) if current is not None else []


@magics_class
class JobManagerMagics(Magics):
    """The ``%job``, ``%%job``, ``%%oneoff`` and ``%jobs`` magics, and the extension's settings.

    Settings (``%config JobManagerMagics.<name> = value``). Set before ``%load_ext``, they are used when the
    manager opens; changed afterwards, ``store``, ``inline_concurrency`` and ``kill_grace`` reopen the manager,
    which removes the jobs registered so far (and says which) and keeps the executors added by name:

    - ``store``: the one-off records file (default ``.jobmanager/jobs.json``, relative to the kernel's
      working folder); ``""`` keeps them in memory only.
    - ``inline_concurrency``: inline runs that may be going at once (default 3).
    - ``kill_grace``: seconds a cancelled worker gets before it is killed (default 5).
    - ``notify_failures``: after each cell, one line per job that failed in the background (default on).
    - ``slow_inline_notice``: seconds an inline run may hold the kernel before the line after the next cell
      suggests running it offloaded, once per job (default 3; 0 turns it off).
    """

    store = Unicode(
        ".jobmanager/jobs.json", help="File keeping one-off job records ('' keeps them in memory only)."
    ).tag(config=True)
    inline_concurrency = Int(3, help="How many inline runs may be going at once.").tag(config=True)
    kill_grace = Float(5.0, help="Seconds a cancelled worker gets to stop before it is killed.").tag(config=True)
    notify_failures = Bool(
        True, help="After each cell, say in one line which jobs failed in the background since the last one."
    ).tag(config=True)
    slow_inline_notice = Float(
        3.0,
        help="After a cell, say once per job which inline job held the kernel longer than this many seconds "
        "(and suggest a worker process); 0 turns it off.",
    ).tag(config=True)

    def __init__(self, shell: InteractiveShell, **kwargs: Any) -> None:
        self._active = False
        self._opened: JobManager | None = None
        self._unsubscribe: Callable[[], None] | None = None
        self._failures: deque[Event] = deque(maxlen=200)
        self._reported: deque[str] = deque(maxlen=200)
        self._home_loop: asyncio.AbstractEventLoop | None = None  # the kernel's loop, where inline jobs run
        self._held: deque[tuple[str, float]] = deque(maxlen=200)  # (job, seconds) of inline runs that held it
        self._told_held: set[str] = set()
        self._table: JobTable | None = None
        self._table_lock = threading.Lock()
        self._carried: dict[str, Executor] = {}  # the executors of a manager closed by an open that then failed
        super().__init__(shell, **kwargs)

    # -- the manager -------------------------------------------------------------------------------------

    def manager(self) -> JobManager:
        """The session manager; reopened with these settings if someone closed it."""
        current = session.current_manager()
        if current is None:
            return self.open()
        if current is not self._opened:
            self._watch(current, None)  # opened by code elsewhere: where its inline jobs run is not known here
        return current

    def open(self, executors: Mapping[str, Executor] | None = None) -> JobManager:
        """Open (or reopen) the session manager with these settings (and ``executors``, by name); say which
        one-offs were interrupted. When it cannot open (the previous manager is closed by then), the executors are
        kept for the next open (with None, it takes them)."""
        self._detach()
        loop = running_loop()  # the manager runs inline jobs on the loop running now (the kernel's), if any
        named = dict(self._carried if executors is None else executors)
        more: dict[str, Any] = {"executors": named} if named else {}
        self._carried = named  # until a manager has them
        try:
            manager = session.open_manager(
                self.store or None,
                inline_concurrency=self.inline_concurrency,
                kill_grace=self.kill_grace,
                log_failures=False,  # failures are reported after each cell instead (notify_failures)
                **more,
            )
        except JobManagerError as exc:
            raise _usage(exc) from None
        except ValueError as exc:
            raise UsageError(f"jobmanager_nb: cannot open the job manager: {exc}") from None
        self._carried = {}
        self._watch(manager, loop)
        if manager.reconciled:
            print(self._reconcile_message(manager, manager.reconciled))
        return manager

    def _watch(self, manager: JobManager, loop: asyncio.AbstractEventLoop | None) -> None:
        self._detach()
        self._opened = manager
        self._home_loop = loop
        self._unsubscribe = manager.subscribe(self._on_event)

    def _detach(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        self._opened = None
        self._home_loop = None
        self._failures.clear()
        self._held.clear()
        with self._table_lock:
            table, self._table = self._table, None
        if table is not None:
            table.close()

    def close(self) -> None:
        """Stop listening and close the session manager (workers ended, scheduler stopped)."""
        self._active = False
        self._detach()
        session.close_manager()

    @observe("store", "inline_concurrency", "kill_grace")
    def _settings_changed(self, change: dict[str, Any]) -> None:
        if not self._active:
            return  # still loading: the settings are read when the manager is first opened
        names = _registered_names()
        previous = session.current_manager()
        # the user's (closing never shut them down); without a manager, those a failed reopen kept
        executors = previous.executors if previous is not None else dict(self._carried)
        self.open(executors)
        where = f'store "{self.store}"' if self.store else "an in-memory store"
        dropped = f"; removed {len(names)} job(s) ({', '.join(names)}): run their cells again" if names else ""
        kept = f"; kept the executors {', '.join(sorted(executors))}" if executors else ""
        print(f"jobmanager_nb: reopened the job manager with {where}{dropped}{kept}")

    def _reconcile_message(self, manager: JobManager, records: list[OneOffRecord]) -> str:
        names = [r.name for r in records]
        one = len(names) == 1
        rerunnable = all(oneoffs.can_rerun(manager, record, has_shell=True) for record in records)
        if rerunnable:
            hint = f"rerun with %job rerun {names[0] if one else 'NAME'}"
        else:
            hint = "run the cell that adds it again to rerun it" if one else "run their cells again to rerun them"
        count = "1 one-off job was" if one else f"{len(names)} one-off jobs were"
        verb = "its kernel exited and is" if one else "their kernel exited and are"
        return f"jobmanager_nb: {count} interrupted when {verb} marked failed: {', '.join(names)} ({hint})"

    # -- background failures -----------------------------------------------------------------------------

    def _on_event(self, event: Event) -> None:
        if event.kind == "failed" and not event.data.get("retrying") and not event.data.get("cancelled"):
            self._failures.append(event)
        elif event.kind == "started" and self._home_loop is not None and event.name not in self._told_held:
            self._probe(event)

    def _probe(self, event: Event) -> None:
        """Measure how long the run that just started holds the kernel's loop (for an inline job): a callback
        queued on the loop now runs once the loop is free, so for a synchronous job only after it returned.
        A run that held it at least ``slow_inline_notice`` seconds is told after the next cell."""
        manager, loop, threshold = self._opened, self._home_loop, self.slow_inline_notice
        if manager is None or loop is None or threshold <= 0:
            return
        try:
            if manager.job(event.name).kind != "inline":
                return
        except JobNotFoundError:
            return
        began = time.monotonic()

        def check() -> None:
            held = time.monotonic() - began
            if held < threshold:
                return
            try:
                last = manager.job(event.name).last_run
            except JobNotFoundError:
                return
            # the run ended by now and took that long itself: it held the loop (not a cell, not a later job)
            if last is not None and last.run_id == event.run_id and (last.duration or 0.0) >= threshold:
                self._held.append((event.name, held))

        with contextlib.suppress(RuntimeError):  # the loop is closed: nothing runs on it any more
            loop.call_soon_threadsafe(check)

    def after_cell(self, result: Any = None) -> None:
        """``post_run_cell`` hook: one line per job that failed in the background since the last cell, and one
        line (once per job) for an inline job that held the kernel for a while."""
        self._tell_held()
        if not self.notify_failures or not self._failures:
            return
        failed: dict[str, list[Event]] = {}
        while self._failures:
            event = self._failures.popleft()
            if event.run_id in self._reported:
                continue
            failed.setdefault(event.name, []).append(event)
        for name, events in failed.items():
            last = events[-1]
            times = f" {len(events)} times" if len(events) > 1 else ""
            print(
                f"jobmanager_nb: job {name!r} failed{times} at {_when(last.at)}: "
                f"{_error_line(last.data.get('error'))} (see %job log {name})"
            )

    def _tell_held(self) -> None:
        while self._held:
            name, held = self._held.popleft()
            if name in self._told_held or self.slow_inline_notice <= 0:
                continue
            self._told_held.add(name)
            print(
                f"jobmanager_nb: inline job {name!r} held the kernel for {duration(held)} (cells wait while an "
                "inline job runs); run it in a worker process instead: add it with --offloaded (%%job, %%oneoff) "
                "or without --inline (%job)"
            )

    # -- %job --------------------------------------------------------------------------------------------

    @no_var_expand
    @_line_magic
    @_arguments("job")
    @_argument("target", metavar="PATH_OR_REF", help="a .py script, or a module:function reference")
    @_argument("--at", metavar="SPEC", help='when: "every 5 minutes", "0 */5 * * * *", 30 (seconds), 2026-12-01T09:30')
    @_argument("--name", metavar="N", help="the job's name (default: the script's file stem or the function's name)")
    @_argument("--data", metavar="JSON", help="JSON handed to the job (worker.data, or the function's argument)")
    @_argument("--inline", action="store_true", help="run in the kernel instead of a fresh worker process")
    @_argument("--timeout", metavar="S", type=float, help="stop a run that takes longer than S seconds")
    @_argument("--oneoff", action="store_true", help="a persisted one-off job: runs once, ever (not with --at)")
    @_argument("--replace", action="store_true", help="replace another job registered under the same name")
    @_argument(
        "--executor", metavar="NAME", help="run on this executor (one added with get_manager().add_executor)"
    )
    def job(self, line: str) -> None:
        """Register a job, or manage the registered ones.

        %job jobs/report.py --at "every 5 minutes"     an offloaded script on a schedule (quotes optional)
        %job mypkg.tasks:refresh --inline --at 30      a function run in the kernel every 30 seconds
        %job jobs/backup.py --oneoff --data '{"bucket": "b1"}'   runs once, ever (kept in the store)
        %job jobs/train.py --executor dask             on an executor added by name (see below)

        Without --at the job runs now. An offloaded job runs on the manager's default executor (local worker
        processes), or with --executor NAME on one added first with
        jobmanager_nb.get_manager().add_executor("NAME", executor) (a DaskExecutor, say); "local" always names the
        built-in one. Re-running the same line replaces the job; a different job under a
        registered name is refused (pass --replace). Subcommands:

        %job list              the jobs as a text table (%jobs shows the live dashboard)
        %job run NAME          start a run now, outside the schedule
        %job cancel NAME       cancel the queued or running run (the job stays registered)
        %job pause NAME        stop firing the schedule; %job resume NAME fires it again
        %job remove NAME       unregister the job (a running run is cancelled)
        %job rerun NAME        run a failed one-off job again (also one an earlier kernel left failed)
        %job log NAME          the captured output of the last run, and its error
        %job wait [NAME] [--timeout S]   block until the run of NAME (or every run) ends; say how it went
        %job next SPEC [-n 5]  the next fire times of a schedule, and what it means in English

        Mistakes (unknown job, bad schedule, missing file, data that is not JSON) are one-line errors.
        """
        argv = _split(line)
        if not argv:
            return status.list_jobs(self, [])
        word = argv[0]
        if word in SUBCOMMANDS:
            return _HANDLERS[word](self, argv[1:])
        if not (word.startswith("-") or _looks_like_path(word) or ":" in word):  # an option, a script or a reference
            raise UsageError(
                f'Unknown %job subcommand "{word}". Use one of {", ".join(SUBCOMMANDS)}, or give a script '
                '(jobs/report.py) or a "module:function" reference; see %job? for help.'
            )
        return adding.add(self, argv)

    # -- %%job, %%oneoff, %jobs --------------------------------------------------------------------------

    @no_var_expand
    @_cell_magic("job")
    @_arguments("%job")
    @_argument("name", metavar="NAME", help="the job's name; re-running the cell replaces the job")
    @_argument("--at", metavar="SPEC", required=True, help='when: "every 5 minutes", "0 */5 * * * *", 30 (seconds)')
    @_argument("--offloaded", action="store_true", help="run the cell in a fresh worker process, not the kernel")
    @_argument("--executor", metavar="NAME", help="with --offloaded: run on this executor (added by name)")
    def job_cell(self, line: str, cell: str) -> None:
        """Make the cell a recurring job.

        %%job refresh --at "every 5 minutes"
        prices = load_prices()        # runs in the kernel: reads and updates notebook variables

        Inline by default: the body runs on the kernel's event loop, never at the same moment as a cell, in
        the notebook's namespace (top-level ``await`` works). With --offloaded it runs in a fresh worker
        process instead (saved as .jobmanager/cells/NAME.py; notebook variables are not there, use files or
        --data with %job); --executor NAME sends it to an executor added with
        jobmanager_nb.get_manager().add_executor. Re-running the cell replaces the job, it never adds a second
        one. Its prints go to the run's log (%job log NAME), not to the notebook.
        """
        adding.add_cell(self, line, cell)

    @no_var_expand
    @_cell_magic("oneoff")
    @_arguments("%oneoff")
    @_argument("name", metavar="NAME", help="the one-off job's name: it runs once, ever, under this name")
    @_argument("--offloaded", action="store_true", help="run the cell in a fresh worker process, not the kernel")
    @_argument("--data", metavar="JSON", help="JSON handed to the job (worker.data, or current_run().data inline)")
    @_argument("--executor", metavar="NAME", help="with --offloaded: run on this executor (added by name)")
    def oneoff(self, line: str, cell: str) -> None:
        """Run the cell once, ever, as a persisted one-off job.

        %%oneoff migrate-2026-11
        migrate(db)

        The record is kept in the store (.jobmanager/jobs.json), across kernel restarts. Running the cell again
        after the job finished only says so, in one line (so "Run All" does not stop there); after it failed it
        runs again (so does %job rerun NAME). Inline by default (in the notebook's namespace); --offloaded runs
        it in a fresh worker process, on the executor --executor NAME names (kept for a rerun in a later kernel,
        which must add it too).
        """
        oneoffs.oneoff_cell(self, line, cell)

    @_line_magic
    def jobs(self, line: str) -> None:
        """Show the live dashboard of every job (status, next run, last run, a rerun button for failed one-offs).

        %jobs

        The table updates itself while jobs run; run %jobs again to show it further down the notebook. In a
        terminal IPython (no widgets) it prints the same table as text, like %job list.
        """
        status.show_dashboard(self, line)

    # -- helpers -----------------------------------------------------------------------------------------

    def _shell(self) -> InteractiveShell:
        shell = self.shell
        assert shell is not None
        return shell
