"""The IPython face of jobmanager_nb: ``%load_ext jobmanager_nb`` and the ``%job``, ``%%job``, ``%%oneoff``
and ``%jobs`` magics.

Loading the extension opens the kernel's one :class:`~jobmanager_nb.manager.JobManager` (through
:mod:`jobmanager_nb.session`, with its one-off records in ``.jobmanager/jobs.json``), registers the magics
and a ``post_run_cell`` hook, and says in one line which one-off jobs an earlier kernel left interrupted.
``%unload_ext`` undoes all of it (manager closed, workers ended, magics, hook and configurable removed), so
``%reload_ext`` leaves exactly one scheduler. Settings are traitlets on :class:`JobManagerMagics`
(``%config JobManagerMagics.store = "path"``); changing ``store``, ``inline_concurrency`` or ``kill_grace``
after loading reopens the manager.

Each magic parses its line, makes one call to the manager and prints the outcome. A user mistake (an
unknown job, a bad schedule, a missing file, data that is not JSON, ...) raises ``UsageError``, which
IPython shows as one line with no traceback. This is the only module that imports IPython.
"""

from __future__ import annotations

import ast
import contextlib
import hashlib
import inspect
import json
import linecache
import os
import re
import shlex
import threading
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from pathlib import Path
from types import CodeType
from typing import TYPE_CHECKING, Any, TypeVar, cast

from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell
from IPython.core.magic import Magics, cell_magic, line_magic, magics_class, no_var_expand
from IPython.core.magic_arguments import MagicArgumentParser, argument, magic_arguments
from IPython.display import display
from traitlets import Bool, Float, Int, Unicode, observe

from jobmanager_nb import session
from jobmanager_nb.errors import (
    DuplicateJobError,
    JobFailedError,
    JobManagerError,
    JobNotFoundError,
    OneOffAlreadyExecutedError,
)
from jobmanager_nb.events import Event
from jobmanager_nb.jobs import _looks_like_path, resolve_target
from jobmanager_nb.manager import JobManager
from jobmanager_nb.model import JobInfo, JobRun
from jobmanager_nb.schedules import describe_schedule, next_fire_times
from jobmanager_nb.store import OneOffRecord
from jobmanager_nb.store.atomic import write_atomically

if TYPE_CHECKING:
    from jobmanager_nb.widgets import JobTable  # imported on first use (it imports ipywidgets)

__all__ = ["JobManagerMagics", "load_ipython_extension", "unload_ipython_extension"]

SUBCOMMANDS = ("list", "remove", "run", "cancel", "pause", "resume", "rerun", "log", "wait", "next")
"""The words ``%job`` treats as subcommands; anything else is a script path or a reference."""

LINE_MAGICS = ("job", "jobs")
CELL_MAGICS = ("job", "oneoff")

_F = TypeVar("_F", bound=Callable[..., Any])

_NUMBER = re.compile(r"^\d+(\.\d+)?$")
_ISO_MOMENT = re.compile(r"^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?)?(Z|[+-]\d{2}:?\d{2})?$")
_OPTION = re.compile(r"^--?[A-Za-z]")
_SLUG = re.compile(r"[^A-Za-z0-9_.-]")
_FRAME = re.compile(r'^  File "(.+?)", line \d+')
_PACKAGE_DIR = str(Path(__file__).resolve().parent) + os.sep


# ---------------------------------------------------------------------------------------------- parsing


def _usage(exc: BaseException) -> UsageError:
    """A core error as a one-line ``UsageError`` (its message already names the thing and the fix)."""
    return UsageError(" ".join(str(exc).split()))


@contextlib.contextmanager
def _usage_errors(*also: type[Exception]) -> Iterator[None]:
    """Turn a core error (or one of the ``also`` kinds) raised in the block into a one-line ``UsageError``."""
    kinds: tuple[type[Exception], ...] = (JobManagerError, *also)
    try:
        yield
    except kinds as exc:
        raise _usage(exc) from None


def _split(line: str) -> list[str]:
    """Shell-like words; quotes group words and are removed (``--data '{"a": 1}'``)."""
    try:
        return shlex.split(line, posix=True)
    except ValueError as exc:
        raise UsageError(f"Cannot read the arguments ({exc}): close the quote, or quote the whole value.") from None


def _gather(argv: Sequence[str], flag: str) -> list[str]:
    """Join the unquoted words of an option's value into one argument: ``--at every 5 minutes`` becomes
    ``--at "every 5 minutes"``. The value ends at the next option (a word starting with ``-`` and a letter)."""
    out: list[str] = []
    i = 0
    while i < len(argv):
        word = argv[i]
        if word == flag or word.startswith(flag + "="):
            words = [word[len(flag) + 1 :]] if word != flag else []
            i += 1
            while i < len(argv) and not _OPTION.match(argv[i]):
                words.append(argv[i])
                i += 1
            out += [flag, " ".join(w for w in words if w)]
            continue
        out.append(word)
        i += 1
    return out


def _at_value(text: str) -> Any:
    """What ``--at`` means: a number is an interval in seconds, an ISO date-time is one moment, anything
    else a cron expression or an English schedule."""
    text = text.strip()
    if not text:
        raise UsageError('--at needs a schedule, e.g. --at "every 5 minutes", --at "0 */5 * * * *" or --at 30.')
    if _NUMBER.match(text):
        return float(text) if "." in text else int(text)
    if _ISO_MOMENT.match(text):
        try:
            return datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith("Z") else text)
        except ValueError as exc:
            raise UsageError(f'--at "{text}" is not a valid date-time ({exc}); write it as 2026-12-01T09:30.') from None
    return text


def _check_future(at: Any, spec: str) -> None:
    with _usage_errors(ValueError, TypeError):
        upcoming = next_fire_times(at, 1)
    if not upcoming:
        raise UsageError(
            f'--at "{spec}" has passed, so the job would never run: give a moment in the future, or drop --at to '
            "run it now."
        )


def _data_value(text: str | None) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(
            f"--data is not JSON ({exc.msg} at column {exc.colno}): {text}. Quote the whole value, e.g. "
            "--data '{\"id\": 7}'."
        ) from None


def _arguments(name: str) -> Callable[[_F], _F]:
    """``magic_arguments(name)``, typed: builds the parser from the ``_argument`` lines below it and makes
    its help (usage, the docstring, the options) the magic's docstring, which ``%job?`` shows."""
    decorate: Callable[[_F], _F] = magic_arguments(name)  # type: ignore[no-untyped-call]
    return decorate


def _argument(*names: str, **options: Any) -> Callable[[_F], _F]:
    """``magic_arguments.argument``, typed."""
    decorate: Callable[[_F], _F] = argument(*names, **options)  # type: ignore[no-untyped-call]
    return decorate


def _line_magic(func: _F) -> _F:
    """``@line_magic``, typed (IPython declares it as returning a function or a decorator)."""
    return cast(_F, line_magic(func))


def _cell_magic(name: str) -> Callable[[_F], _F]:
    """``@cell_magic(name)``, typed."""
    return cast(Callable[[_F], _F], cell_magic(name))


def _parser_of(magic: Any) -> MagicArgumentParser:
    return cast(MagicArgumentParser, magic.parser)


def _parser(prog: str) -> MagicArgumentParser:
    parser: MagicArgumentParser = MagicArgumentParser(prog=prog, add_help=False)  # type: ignore[no-untyped-call]
    return parser


def _parse(parser: MagicArgumentParser, argv: Sequence[str]) -> Any:
    """Parsed options; an argparse complaint becomes one line that ends with the usage."""
    try:
        return parser.parse_args(list(argv))
    except UsageError as exc:
        usage = " ".join(parser.format_usage().replace("::", "").split())
        raise UsageError(f"{exc}. Usage: {usage}") from None


def _slug(name: str) -> str:
    """A file name for job ``name`` (unusual characters replaced, plus a hash to keep names apart)."""
    slug = _SLUG.sub("_", name)
    if slug != name or slug.startswith("."):
        slug = f"{slug.lstrip('.')}-{hashlib.sha1(name.encode()).hexdigest()[:8]}"
    return slug


def _write_atomically(path: Path, text: str) -> None:
    """Write a kept cell or recipe the way the store writes its file: whole or not at all."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(path, text.encode("utf-8"))


# ---------------------------------------------------------------------------------------------- rendering


def _when(moment: datetime | None) -> str:
    if moment is None:
        return "-"
    local = moment.astimezone()
    if local.date() == datetime.now().astimezone().date():
        return local.strftime("%H:%M:%S")
    return local.strftime("%Y-%m-%d %H:%M:%S")


def _seconds(value: float) -> str:
    if value < 10:
        return f"{value:.2f} s"
    minutes, secs = divmod(round(value), 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    parts = [f"{days} d" if days else "", f"{hours} h" if hours else "", f"{minutes} min" if minutes else ""]
    parts.append(f"{secs} s" if secs or not any(parts) else "")
    return " ".join(p for p in parts if p)


def _error_line(error: str | None) -> str:
    """The last line of a traceback: ``ValueError: bad row``."""
    lines = [line for line in (error or "failed").strip().splitlines() if line.strip()]
    return lines[-1].strip() if lines else "failed"


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


def _text_table(manager: JobManager) -> str:
    """The job table as text (the dashboard module's rendering; it imports ipywidgets, so only on use)."""
    from jobmanager_nb.widgets import render_text

    return render_text(manager)


def _has_widget_frontend(shell: InteractiveShell) -> bool:
    """True in a Jupyter kernel (widgets can be shown); False in a terminal IPython or a bare shell."""
    return type(shell).__name__ == "ZMQInteractiveShell" and getattr(shell, "kernel", None) is not None


# ---------------------------------------------------------------------------------------------- cell jobs


def _compile_cell(name: str, body: str, flags: int = 0) -> CodeType:
    """``body`` compiled as the cell of job ``name`` (file name ``<job NAME>``); a syntax error is a ``UsageError``."""
    try:
        code: CodeType = compile(body, f"<job {name}>", "exec", flags=flags)
    except SyntaxError as exc:
        raise UsageError(f"The cell of job {name!r} is not valid Python: {exc.msg} (line {exc.lineno}).") from None
    return code


def _cell_function(shell: InteractiveShell, name: str, body: str) -> Callable[..., Any]:
    """An inline job that runs ``body`` in the notebook's namespace (top-level ``await`` allowed).

    The source is registered with :mod:`linecache`, so tracebacks in ``%job log`` show the failing line.
    """
    code = _compile_cell(name, body, flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    filename = code.co_filename
    linecache.cache[filename] = (len(body), None, body.splitlines(keepends=True), filename)
    is_async = bool(code.co_flags & inspect.CO_COROUTINE)

    def notebook_cell(data: Any = None) -> Any:
        if is_async:
            return eval(code, shell.user_ns)  # a coroutine: the manager awaits it on the kernel's loop
        exec(code, shell.user_ns)
        return None

    notebook_cell.__module__ = "__main__"
    return notebook_cell


# ---------------------------------------------------------------------------------------------- the magics


@magics_class
class JobManagerMagics(Magics):
    """The ``%job``, ``%%job``, ``%%oneoff`` and ``%jobs`` magics, and the extension's settings.

    Settings (``%config JobManagerMagics.<name> = value``). Set before ``%load_ext``, they are used when the
    manager opens; changed afterwards, ``store``, ``inline_concurrency`` and ``kill_grace`` reopen the manager,
    which removes the jobs registered so far (and says which):

    - ``store``: the one-off records file (default ``.jobmanager/jobs.json``, relative to the kernel's
      working folder); ``""`` keeps them in memory only.
    - ``inline_concurrency``: inline runs that may be going at once (default 3).
    - ``kill_grace``: seconds a cancelled worker gets before it is killed (default 5).
    - ``notify_failures``: after each cell, one line per job that failed in the background (default on).
    """

    store = Unicode(
        ".jobmanager/jobs.json", help="File keeping one-off job records ('' keeps them in memory only)."
    ).tag(config=True)
    inline_concurrency = Int(3, help="How many inline runs may be going at once.").tag(config=True)
    kill_grace = Float(5.0, help="Seconds a cancelled worker gets to stop before it is killed.").tag(config=True)
    notify_failures = Bool(
        True, help="After each cell, say in one line which jobs failed in the background since the last one."
    ).tag(config=True)

    def __init__(self, shell: InteractiveShell, **kwargs: Any) -> None:
        self._active = False
        self._opened: JobManager | None = None
        self._unsubscribe: Callable[[], None] | None = None
        self._failures: deque[Event] = deque(maxlen=200)
        self._reported: deque[str] = deque(maxlen=200)
        self._table: JobTable | None = None
        self._table_lock = threading.Lock()
        super().__init__(shell, **kwargs)

    # -- the manager -------------------------------------------------------------------------------------

    def manager(self) -> JobManager:
        """The session manager; reopened with these settings if someone closed it."""
        current = session.current_manager()
        if current is None:
            return self.open()
        if current is not self._opened:
            self._watch(current)
        return current

    def open(self) -> JobManager:
        """Open (or reopen) the session manager with these settings; say which one-offs were interrupted."""
        self._detach()
        try:
            manager = session.open_manager(
                self.store or None,
                inline_concurrency=self.inline_concurrency,
                kill_grace=self.kill_grace,
                log_failures=False,  # failures are reported after each cell instead (notify_failures)
            )
        except JobManagerError as exc:
            raise _usage(exc) from None
        except ValueError as exc:
            raise UsageError(f"jobmanager_nb: cannot open the job manager: {exc}") from None
        self._watch(manager)
        if manager.reconciled:
            print(self._reconcile_message(manager.reconciled))
        return manager

    def _watch(self, manager: JobManager) -> None:
        self._detach()
        self._opened = manager
        self._unsubscribe = manager.subscribe(self._on_event)

    def _detach(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        self._opened = None
        self._failures.clear()
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
        self.open()
        where = f'store "{self.store}"' if self.store else "an in-memory store"
        dropped = f"; removed {len(names)} job(s) ({', '.join(names)}): run their cells again" if names else ""
        print(f"jobmanager_nb: reopened the job manager with {where}{dropped}")

    def _reconcile_message(self, records: list[OneOffRecord]) -> str:
        names = [r.name for r in records]
        one = len(names) == 1
        rerunnable = all(self._recipe_path(name).is_file() for name in names)
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

    def after_cell(self, result: Any = None) -> None:
        """``post_run_cell`` hook: one line per job that failed in the background since the last cell."""
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
    def job(self, line: str) -> None:
        """Register a job, or manage the registered ones.

        %job jobs/report.py --at "every 5 minutes"     an offloaded script on a schedule (quotes optional)
        %job mypkg.tasks:refresh --inline --at 30      a function run in the kernel every 30 seconds
        %job jobs/backup.py --oneoff --data '{"bucket": "b1"}'   runs once, ever (kept in the store)

        Without --at the job runs now. Re-running the same line replaces the job; a different job under a
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
            return self._list([])
        word = argv[0]
        if word in SUBCOMMANDS:
            handler: Callable[[list[str]], None] = getattr(self, f"_{word}")
            return handler(argv[1:])
        if not (word.startswith("-") or _looks_like_path(word) or ":" in word):  # an option, a script or a reference
            raise UsageError(
                f'Unknown %job subcommand "{word}". Use one of {", ".join(SUBCOMMANDS)}, or give a script '
                '(jobs/report.py) or a "module:function" reference; see %job? for help.'
            )
        return self._add(argv)

    def _add(self, argv: list[str]) -> None:
        args = _parse(_parser_of(self.job), _gather(_gather(argv, "--at"), "--data"))
        offloaded = not args.inline
        data = _data_value(args.data)
        if args.oneoff and args.at is not None:
            raise UsageError("A one-off job runs once, now: drop --at, or drop --oneoff for a scheduled job.")
        manager = self.manager()
        with _usage_errors(TypeError):
            target = resolve_target(args.target, args.name, offloaded=offloaded)
        job = args.target
        if not offloaded and args.timeout is not None and not inspect.iscoroutinefunction(target.func):
            raise UsageError(
                "--timeout cannot stop an inline script or a synchronous function: drop --inline to run it in a "
                "worker process (or make the function async)."
            )
        name = args.name or target.default_name
        if not name:
            raise UsageError(f'Give the job a name with --name (none can be derived from "{args.target}").')
        if args.oneoff:
            stored = str(target.path) if target.path is not None else args.target  # absolute: any later cwd
            recipe = {"target": stored, "offloaded": offloaded, "data": data, "timeout": args.timeout}
            return self._add_one_off(name, job, recipe)
        at = None if args.at is None else _at_value(args.at)
        if at is not None:
            _check_future(at, args.at)
        options = {"name": name, "at": at, "data": data, "offloaded": offloaded, "timeout": args.timeout}
        with _usage_errors():
            try:
                manager.add_job(job, replace=args.replace, **options)
            except DuplicateJobError:
                existing = manager.job(name)
                kind = "offloaded" if offloaded else "inline"
                if existing.target != target.label or existing.kind != kind:
                    raise UsageError(
                        f'A job named "{name}" is already registered ({existing.target}, {existing.kind}). Remove '
                        f"it first with %job remove {name}, choose another name with --name, or pass --replace."
                    ) from None
                manager.add_job(job, replace=True, **options)  # the same job again: re-running the cell
        print(_added_line(manager.job(name)))

    def _list(self, argv: list[str]) -> None:
        if argv:
            raise UsageError("%job list takes no arguments (%jobs shows the live dashboard).")
        print(_text_table(self.manager()))

    def _name_only(self, sub: str, argv: list[str]) -> str:
        parser = _parser(f"job {sub}")
        parser.add_argument("name", metavar="NAME")
        name: str = _parse(parser, argv).name
        return name

    def _remove(self, argv: list[str]) -> None:
        name = self._name_only("remove", argv)
        with _usage_errors():
            self.manager().remove_job(name)
        print(f'removed job "{name}"')

    def _run(self, argv: list[str]) -> None:
        name = self._name_only("run", argv)
        with _usage_errors():
            run = self.manager().run_now(name)
        if run is None:
            print(f'"{name}" is still running, so no new run was started (wait for it with %job wait {name})')
        else:
            print(f'started a run of "{name}" ({run.run_id}); see it with %job wait {name} or %job log {name}')

    def _cancel(self, argv: list[str]) -> None:
        name = self._name_only("cancel", argv)
        manager = self.manager()
        with _usage_errors():
            cancelled = manager.cancel(name)
            recurring = manager.job(name).recurring
        if cancelled:
            print(f'cancelled the current run of "{name}"' + (" (its schedule goes on)" if recurring else ""))
        else:
            print(f'"{name}" had no queued or running run to cancel')

    def _pause(self, argv: list[str]) -> None:
        name = self._name_only("pause", argv)
        with _usage_errors():
            self.manager().pause(name)
        print(f'paused "{name}" (a run in progress goes on); resume with %job resume {name}')

    def _resume(self, argv: list[str]) -> None:
        name = self._name_only("resume", argv)
        manager = self.manager()
        with _usage_errors():
            manager.resume(name)
            info = manager.job(name)
        print(f'resumed "{name}"; next run {_when(info.next_run)}')

    def _rerun(self, argv: list[str]) -> None:
        name = self._name_only("rerun", argv)
        manager = self.manager()
        try:
            info: JobInfo | None = manager.job(name)
        except JobNotFoundError:
            info = None
        if info is not None and not info.one_off:
            raise UsageError(f'"{name}" is not a one-off job; start a run now with %job run {name}.')
        with _usage_errors():
            if info is not None:
                manager.rerun(name)
            else:
                self._rerun_from_recipe(manager, name)
        print(f'rerunning one-off "{name}"; see it with %job wait {name} or %job log {name}')

    def _rerun_from_recipe(self, manager: JobManager, name: str) -> None:
        record = manager.store.get(name)
        if record is None:
            raise UsageError(f'No one-off job named "{name}" in this kernel or in the store; check the name.')
        try:
            recipe = json.loads(self._recipe_path(name).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            raise UsageError(
                f'One-off "{name}" is {record.status} in the store, but this kernel does not know its code: run the '
                "cell (or code) that adds it again."
            ) from None
        job: Any = recipe["target"]
        if recipe.get("cell") and not recipe["offloaded"]:
            body = Path(job).read_text(encoding="utf-8")
            job = _cell_function(self._shell(), name, body)
        manager.add_one_off_job(
            job, name=name, data=recipe.get("data"), offloaded=recipe["offloaded"], timeout=recipe.get("timeout")
        )

    def _log(self, argv: list[str]) -> None:
        name = self._name_only("log", argv)
        manager = self.manager()
        try:
            info = manager.job(name)
        except JobNotFoundError as exc:
            record = manager.store.get(name)
            if record is None:
                raise _usage(exc) from None
            print(_record_log(record))
            return
        print(_run_log(info))

    def _wait(self, argv: list[str]) -> None:
        parser = _parser("job wait")
        parser.add_argument("name", metavar="NAME", nargs="?")
        parser.add_argument("--timeout", metavar="S", type=float)
        args = _parse(parser, argv)
        manager = self.manager()
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
        self._reported.append(run.run_id)
        print(_outcome_line(run, info))

    def _next(self, argv: list[str]) -> None:
        parser = _parser("job next")
        parser.add_argument("spec", metavar="SPEC", nargs="+")
        parser.add_argument("-n", type=int, default=5, metavar="N")
        args = _parse(parser, argv)
        if args.n < 1:
            raise UsageError("-n must be at least 1.")
        spec = " ".join(args.spec)
        at = _at_value(spec)
        with _usage_errors(ValueError, TypeError):
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

    # -- %%job, %%oneoff, %jobs --------------------------------------------------------------------------

    @no_var_expand
    @_cell_magic("job")
    @_arguments("%job")
    @_argument("name", metavar="NAME", help="the job's name; re-running the cell replaces the job")
    @_argument("--at", metavar="SPEC", required=True, help='when: "every 5 minutes", "0 */5 * * * *", 30 (seconds)')
    @_argument("--offloaded", action="store_true", help="run the cell in a fresh worker process, not the kernel")
    def job_cell(self, line: str, cell: str) -> None:
        """Make the cell a recurring job.

        %%job refresh --at "every 5 minutes"
        prices = load_prices()        # runs in the kernel: reads and updates notebook variables

        Inline by default: the body runs on the kernel's event loop, never at the same moment as a cell, in
        the notebook's namespace (top-level ``await`` works). With --offloaded it runs in a fresh worker
        process instead (saved as .jobmanager/cells/NAME.py; notebook variables are not there, use files or
        --data with %job). Re-running the cell replaces the job, it never adds a second one. Its prints go to
        the run's log (%job log NAME), not to the notebook.
        """
        args = _parse(_parser_of(self.job_cell), _gather(_split(line), "--at"))
        at = _at_value(args.at)
        _check_future(at, args.at)
        manager = self.manager()
        job = self._cell_job(args.name, cell, args.offloaded)
        with _usage_errors():
            manager.add_job(job, name=args.name, at=at, offloaded=args.offloaded, replace=True)
        print(_added_line(manager.job(args.name)))

    @no_var_expand
    @_cell_magic("oneoff")
    @_arguments("%oneoff")
    @_argument("name", metavar="NAME", help="the one-off job's name: it runs once, ever, under this name")
    @_argument("--offloaded", action="store_true", help="run the cell in a fresh worker process, not the kernel")
    @_argument("--data", metavar="JSON", help="JSON handed to the job (worker.data, or current_run().data inline)")
    def oneoff(self, line: str, cell: str) -> None:
        """Run the cell once, ever, as a persisted one-off job.

        %%oneoff migrate-2026-11
        migrate(db)

        The record is kept in the store (.jobmanager/jobs.json), across kernel restarts. Running the cell again
        after the job finished only says so, in one line (so "Run All" does not stop there); after it failed it
        runs again (so does %job rerun NAME). Inline by default (in the notebook's namespace); --offloaded runs
        it in a fresh worker process.
        """
        args = _parse(_parser_of(self.oneoff), _gather(_split(line), "--data"))
        data = _data_value(args.data)
        self.manager()
        job = self._cell_job(args.name, cell, args.offloaded)
        path = self._cell_path(args.name)
        recipe = {"target": str(path), "cell": True, "offloaded": args.offloaded, "data": data, "timeout": None}
        if not args.offloaded:
            _write_atomically(path, cell)  # kept so that %job rerun works in a later kernel
        self._add_one_off(args.name, job, recipe)

    def _add_one_off(self, name: str, job: Any, recipe: dict[str, Any]) -> None:
        manager = self.manager()
        try:
            manager.add_one_off_job(
                job, name=name, data=recipe["data"], offloaded=recipe["offloaded"], timeout=recipe["timeout"]
            )
        except OneOffAlreadyExecutedError:
            print(_already_line(manager, name))
            return
        except JobManagerError as exc:
            raise _usage(exc) from None
        _write_atomically(self._recipe_path(name), json.dumps({"version": 1, "name": name, **recipe}, indent=1))
        kind = "offloaded" if recipe["offloaded"] else "inline"
        print(f'started one-off "{name}" ({kind}); see it with %job wait {name} or %job log {name}')

    @_line_magic
    def jobs(self, line: str) -> None:
        """Show the live dashboard of every job (status, next run, last run, a rerun button for failed one-offs).

        %jobs

        The table updates itself while jobs run; run %jobs again to show it further down the notebook. In a
        terminal IPython (no widgets) it prints the same table as text, like %job list.
        """
        if line.strip():
            raise UsageError("%jobs takes no arguments (for one job's output use %job log NAME).")
        manager = self.manager()
        if not _has_widget_frontend(self._shell()):
            print(_text_table(manager))
            return
        from jobmanager_nb.widgets import JobTable

        with self._table_lock:
            if self._table is None:
                self._table = JobTable(manager)
            table = self._table
        display(table)  # type: ignore[no-untyped-call]

    # -- helpers -----------------------------------------------------------------------------------------

    def _shell(self) -> InteractiveShell:
        shell = self.shell
        assert shell is not None
        return shell

    def _cells_dir(self) -> Path:
        path = getattr(self.manager().store, "path", None)
        folder = Path(path).parent if path is not None else Path(".jobmanager").absolute()
        return folder / "cells"

    def _cell_path(self, name: str) -> Path:
        return self._cells_dir() / f"{_slug(name)}.py"

    def _recipe_path(self, name: str) -> Path:
        return self._cells_dir() / f"{_slug(name)}.oneoff.json"

    def _cell_job(self, name: str, body: str, offloaded: bool) -> Any:
        if not name.strip():
            raise UsageError('The job needs a name, e.g. %%job refresh --at "every 5 minutes".')
        if not offloaded:
            return _cell_function(self._shell(), name, body)
        _compile_cell(name, body)  # only checked here: the worker compiles the saved script
        path = self._cell_path(name)
        _write_atomically(path, body)
        return str(path)


# ---------------------------------------------------------------------------------------------- lines


def _registered_names() -> list[str]:
    """The jobs the session manager would still run (none when no manager is open)."""
    current = session.current_manager()
    return sorted(info.name for info in current.jobs if info.registered) if current is not None else []


def _added_line(info: JobInfo) -> str:
    what = f"{info.target}, {info.kind}"
    if info.next_run is not None:
        return f'added job "{info.name}" ({what}): {info.schedule_description}; next run {_when(info.next_run)}'
    return f'started job "{info.name}" ({what}) now'


def _already_line(manager: JobManager, name: str) -> str:
    record = manager.store.get(name)
    if record is not None and record.status == "finished":
        when = _when(record.finished_at)
        return (
            f'one-off "{name}" already executed (finished {when}), so it was not run again; to run it once more, '
            "give it a new name"
        )
    if record is not None and record.owner is not None and record.owner.pid != os.getpid():
        return f'one-off "{name}" is already {record.status} in another kernel ({record.owner.describe()})'
    return f'one-off "{name}" is already running; wait for it with %job wait {name}'


def _outcome_line(run: JobRun, info: JobInfo) -> str:
    if run.status == "finished":
        took = f" in {_seconds(run.duration)}" if run.duration is not None else ""
        result = ""
        if run.result is not None:
            text = repr(run.result)
            result = f", result {text if len(text) <= 80 else text[:77] + '...'}"
        return f'"{run.name}" finished{took} ({run.run_id}{result})'
    if run.cancelled:
        return f'"{run.name}" was cancelled ({run.run_id})'
    hint = f"; rerun with %job rerun {run.name}" if info.one_off else ""
    return f'"{run.name}" failed ({run.run_id}): {_error_line(run.error)} - see %job log {run.name}{hint}'


def _run_log(info: JobInfo) -> str:
    run = info.last_run
    lines: list[str] = []
    if run is None and info.current_run is None:
        nxt = f"; next run {_when(info.next_run)}" if info.next_run is not None else ""
        return f'"{info.name}" has not run yet{nxt}'
    if run is None:
        assert info.current_run is not None
        run = info.current_run
        lines.append(f'"{info.name}" {run.run_id}: running since {_when(run.started_at)}, output so far:')
    else:
        took = f" after {_seconds(run.duration)}" if run.duration is not None else ""
        state = "cancelled" if run.cancelled else run.status
        lines.append(f'"{info.name}" {run.run_id} (attempt {run.attempt}): {state} at {_when(run.finished_at)}{took}')
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
    lines = [f'one-off "{record.name}" (from the store, not run by this kernel): {record.status} at {when}']
    if record.error:
        lines += ["error:", *("  " + line for line in record.error.rstrip("\n").splitlines())]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------- load / unload

_lock = threading.Lock()
_loaded: JobManagerMagics | None = None


def load_ipython_extension(shell: InteractiveShell) -> None:
    """``%load_ext jobmanager_nb``: open the kernel's manager, register the magics and the hook."""
    global _loaded
    with _lock:
        if _loaded is not None:
            _unload(_loaded)
        magics = JobManagerMagics(shell)
        earlier = _registered_names()  # a manager user code opened before loading: it is replaced
        try:
            magics.open()
        except BaseException:
            _forget(shell, magics)
            raise
        if earlier:
            print(
                f"jobmanager_nb: replaced the job manager opened before %load_ext; removed {len(earlier)} job(s) "
                f"({', '.join(earlier)}): add them again"
            )
        shell.register_magics(magics)
        shell.events.register("post_run_cell", magics.after_cell)
        magics._active = True
        _loaded = magics


def unload_ipython_extension(shell: InteractiveShell) -> None:
    """``%unload_ext jobmanager_nb``: the exact inverse of loading (a no-op when it is not loaded)."""
    global _loaded
    with _lock:
        if _loaded is not None:
            _unload(_loaded)
            _loaded = None


def _unload(magics: JobManagerMagics) -> None:
    shell = magics._shell()
    with contextlib.suppress(ValueError):
        shell.events.unregister("post_run_cell", magics.after_cell)
    _forget(shell, magics)
    magics.close()


def _forget(shell: InteractiveShell, magics: JobManagerMagics) -> None:
    """Take the magics and the configurable back out of the shell (IPython has no public call for it)."""
    manager = shell.magics_manager
    for kind, names in (("line", LINE_MAGICS), ("cell", CELL_MAGICS)):
        table = manager.magics[kind]
        for name in names:
            if getattr(table.get(name), "__self__", None) is magics:
                del table[name]
    if manager.registry.get(type(magics).__name__) is magics:
        del manager.registry[type(magics).__name__]
    configurables: list[Any] = shell.configurables
    if magics in configurables:
        configurables.remove(magics)
