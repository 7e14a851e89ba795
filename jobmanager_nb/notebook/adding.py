"""Adding jobs: ``%job PATH_OR_REF [options]`` and the ``%%job NAME --at SPEC`` cell.

:func:`add` registers a ``.py`` script or a ``module:function`` reference, offloaded unless ``--inline``,
on the ``--at`` schedule or, without it, to run now, on the ``--executor`` named (one added with
``jobmanager_nb.get_manager().add_executor``) or the manager's default; with ``--oneoff`` it hands the job to
:func:`jobmanager_nb.notebook.oneoffs.add_one_off` instead. :func:`add_cell` makes a cell a recurring job,
inline (in the notebook's namespace) or ``--offloaded`` (see :mod:`jobmanager_nb.notebook.cells`).

Re-running the same line or cell replaces the job, so it never runs twice; a different job under a
registered name is refused unless ``--replace``. A moment that has passed, a ``--timeout`` that an inline run
cannot honour and a job whose name cannot be derived are usage errors, found before anything is registered.
Each prints one line (:func:`_added_line`): the schedule in English and the next run, or that it started now.
"""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING

from IPython.core.error import UsageError

from jobmanager_nb.errors import DuplicateJobError
from jobmanager_nb.jobs import resolve_target
from jobmanager_nb.model import DEFAULT_EXECUTOR, LOCAL_EXECUTOR, JobInfo
from jobmanager_nb.notebook.cells import _cell_job
from jobmanager_nb.notebook.oneoffs import add_one_off, said_already_ran
from jobmanager_nb.notebook.parsing import (
    _at_value,
    _check_future,
    _data_value,
    _executor_value,
    _gather,
    _parse,
    _parser_of,
    _split,
    _usage_errors,
)
from jobmanager_nb.notebook.wording import _when

if TYPE_CHECKING:
    from jobmanager_nb.notebook.magics import JobManagerMagics

__all__ = ["add", "add_cell"]


def add(magics: JobManagerMagics, argv: list[str]) -> None:
    """``%job PATH_OR_REF [--at SPEC] [--name N] [--data JSON] [--inline] [--timeout S] [--oneoff] [--replace]
    [--executor NAME]``."""
    args = _parse(_parser_of(magics.job), _gather(_gather(argv, "--at"), "--data"))
    offloaded = not args.inline
    data = _data_value(args.data)
    if args.oneoff and args.at is not None:
        raise UsageError("A one-off job runs once, now: drop --at, or drop --oneoff for a scheduled job.")
    manager = magics.manager()
    executor_error: UsageError | None = None
    try:
        executor = _executor_value(manager, args.executor, offloaded, "--inline")
    except UsageError as exc:
        if not (args.oneoff and offloaded):
            raise
        executor, executor_error = None, exc  # an unknown name: an error, unless the one-off ran already (below)
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
        if executor_error is not None:
            if said_already_ran(manager, name):
                return None  # it ran once, ever: nothing would run on that executor
            raise executor_error
        stored = str(target.path) if target.path is not None else args.target  # absolute: any later cwd
        recipe = {"target": stored, "offloaded": offloaded, "data": data, "timeout": args.timeout, "executor": executor}
        return add_one_off(magics, name, job, recipe)
    at = None if args.at is None else _at_value(args.at)
    if at is not None:
        _check_future(at, args.at)
    options = {
        "name": name,
        "at": at,
        "data": data,
        "offloaded": offloaded,
        "timeout": args.timeout,
        "executor": executor,
    }
    with _usage_errors():
        try:
            manager.add_job(job, replace=args.replace, **options)
        except DuplicateJobError:
            existing = manager.job(name)
            kind = "offloaded" if offloaded else "inline"
            if existing.target != target.label or existing.kind != kind:  # another executor: the same job
                raise UsageError(
                    f'A job named "{name}" is already registered ({existing.target}, {existing.kind}). Remove '
                    f"it first with %job remove {name}, choose another name with --name, or pass --replace."
                ) from None
            manager.add_job(job, replace=True, **options)  # the same job again: re-running the cell
    print(_added_line(manager.job(name)))


def add_cell(magics: JobManagerMagics, line: str, cell: str) -> None:
    """``%%job NAME --at SPEC [--offloaded [--executor NAME]]``: the cell as a recurring job, replacing an earlier
    version."""
    args = _parse(_parser_of(magics.job_cell), _gather(_split(line), "--at"))
    at = _at_value(args.at)
    _check_future(at, args.at)
    manager = magics.manager()
    executor = _executor_value(manager, args.executor, args.offloaded, "a cell without --offloaded")
    job = _cell_job(magics, args.name, cell, args.offloaded)
    with _usage_errors():
        manager.add_job(job, name=args.name, at=at, offloaded=args.offloaded, replace=True, executor=executor)
    print(_added_line(manager.job(args.name)))


def _added_line(info: JobInfo) -> str:
    what = f"{info.target}, {info.kind}{_on_executor(info.executor)}"
    if info.next_run is not None:
        return f'added job "{info.name}" ({what}): {info.schedule_description}; next run {_when(info.next_run)}'
    return f'started job "{info.name}" ({what}) now'


def _on_executor(executor: str | None) -> str:
    """`` on NAME`` for a job sent to an executor added by name; ``""`` for the default and the built-in one."""
    return "" if executor in (None, LOCAL_EXECUTOR, DEFAULT_EXECUTOR) else f" on {executor}"
