"""One-off jobs: the ``%%oneoff NAME`` cell, ``%job ... --oneoff``, and ``%job rerun NAME``.

A one-off runs once, ever, under its name; its record is kept in the store (``.jobmanager/jobs.json``),
across kernel restarts. :func:`add_one_off` adds it; if it already finished, it only says so in one line (so
"Run All" does not stop there), and if it is going (here or in another kernel) it says where. Once added,
its recipe is written next to the store (:mod:`jobmanager_nb.notebook.cells`), so that a later kernel knows
what it ran. :func:`oneoff_cell` is the ``%%oneoff`` cell: inline by default, in the notebook's namespace,
with the cell kept for a rerun; ``--offloaded`` in a fresh worker process (``--executor NAME``: on an executor
added with ``jobmanager_nb.get_manager().add_executor``). The recipe keeps the executor's name.

:func:`rerun_one_off` runs a failed one-off again, for ``%job rerun NAME`` and the dashboard's Rerun button
alike: this kernel's through the manager; one only the store knows (an earlier kernel's) from its recipe, or,
for a script or ``module:function`` one-off, from its record. When neither says what it ran, it says to run
the cell that adds it again; when it ran on an executor this kernel has not added, how to add it. A job that
is not a one-off is pointed to ``%job run``.

:func:`earlier_one_offs` is the store's one-offs this kernel did not add, as the dashboard's rows
(``JobInfo`` with ``origin="earlier kernel"``): the record's status, times and error as the last run, and
``rerun_hint`` saying why one cannot be rerun from here (:func:`_why_not_rerunnable`, the same rule the
rerun follows).
"""

from __future__ import annotations

import json
import os
from collections.abc import Set
from pathlib import Path
from typing import TYPE_CHECKING, Any

from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell

from jobmanager_nb.errors import JobManagerError, JobNotFoundError, OneOffAlreadyExecutedError
from jobmanager_nb.lifecycle import Outcome
from jobmanager_nb.manager import JobManager
from jobmanager_nb.model import JobInfo, JobKind, JobRun, JobStatus, RunMark
from jobmanager_nb.notebook.cells import _cell_function, _cell_job, _cell_path, _recipe_path, _write_atomically
from jobmanager_nb.notebook.parsing import (
    _data_value,
    _executor_value,
    _gather,
    _name_only,
    _parse,
    _parser_of,
    _split,
    _usage,
    _usage_errors,
)
from jobmanager_nb.notebook.wording import _when
from jobmanager_nb.store import OneOffRecord

if TYPE_CHECKING:
    from jobmanager_nb.notebook.magics import JobManagerMagics

__all__ = [
    "add_one_off",
    "can_rerun",
    "earlier_one_offs",
    "oneoff_cell",
    "rerun",
    "rerun_one_off",
    "said_already_ran",
]


def oneoff_cell(magics: JobManagerMagics, line: str, cell: str) -> None:
    """``%%oneoff NAME [--offloaded [--executor NAME]] [--data JSON]``: the cell as a persisted one-off, run now."""
    args = _parse(_parser_of(magics.oneoff), _gather(_split(line), "--data"))
    data = _data_value(args.data)
    manager = magics.manager()
    try:
        executor = _executor_value(manager, args.executor, args.offloaded, "a cell without --offloaded")
    except UsageError:
        if args.offloaded and said_already_ran(manager, args.name):
            return  # Run All in a later kernel: it ran once, ever; nothing would run on that executor
        raise
    job = _cell_job(magics, args.name, cell, args.offloaded)
    path = _cell_path(manager, args.name)
    recipe = {
        "target": str(path),
        "cell": True,
        "offloaded": args.offloaded,
        "data": data,
        "timeout": None,
    }
    if not args.offloaded:
        _write_atomically(path, cell)  # kept so that %job rerun works in a later kernel
    add_one_off(magics, args.name, job, {**recipe, "executor": executor})


def said_already_ran(manager: JobManager, name: str) -> bool:
    """When one-off ``name`` ran already (or runs now: its record has not failed), say so in one line
    (:func:`_already_line`) and return True, so that a cell adding it again writes nothing and stops no "Run All";
    else False."""
    if not manager.has_executed_successfully(name):
        return False
    print(_already_line(manager, name))
    return True


def add_one_off(magics: JobManagerMagics, name: str, job: Any, recipe: dict[str, Any]) -> None:
    manager = magics.manager()
    try:
        manager.add_one_off_job(
            job,
            name=name,
            data=recipe["data"],
            offloaded=recipe["offloaded"],
            timeout=recipe["timeout"],
            executor=recipe.get("executor"),
        )
    except OneOffAlreadyExecutedError:
        print(_already_line(manager, name))
        return
    except JobManagerError as exc:
        raise _usage(exc) from None
    kept = {key: value for key, value in recipe.items() if key != "executor" or value is not None}
    _write_atomically(_recipe_path(manager, name), json.dumps({"version": 1, "name": name, **kept}, indent=1))
    kind = "offloaded" if recipe["offloaded"] else "inline"
    if recipe.get("executor"):
        kind += f" on {recipe['executor']}"
    print(f'started one-off "{name}" ({kind}); see it with %job wait {name} or %job log {name}')


def rerun(magics: JobManagerMagics, argv: list[str]) -> None:
    """``%job rerun NAME``: :func:`rerun_one_off`, then one line saying which attempt it is."""
    name = _name_only("rerun", argv)
    with _usage_errors():
        attempt = rerun_one_off(magics.manager(), name, magics._shell())
    print(f'rerunning one-off "{name}" ({_attempt_words(attempt)}); see it with %job wait {name} or %job log {name}')


def rerun_one_off(manager: JobManager, name: str, shell: InteractiveShell | None) -> int:
    """Run the failed one-off ``name`` again and return which attempt of it this is (the store's ``attempts``
    plus one). This kernel's one-off is rerun by the manager, with the definition it was added with; one only
    the store knows (an earlier kernel's) from the recipe kept next to the store, or from its record for a
    script or ``module:function`` one-off. An inline ``%%oneoff`` cell runs in ``shell``'s namespace.
    Raises ``UsageError`` (or the manager's error) saying what to do instead."""
    try:
        info: JobInfo | None = manager.job(name)
    except JobNotFoundError:
        info = None
    if info is not None and not info.one_off:
        raise UsageError(f'"{name}" is not a one-off job; start a run now with %job run {name}.')
    record = manager.store.get(name)
    attempt = (record.attempts if record is not None else 0) + 1
    if info is not None:
        manager.rerun(name)
        return attempt
    if record is None:
        raise UsageError(f'No one-off job named "{name}" in this kernel or in the store; check the name.')
    recipe = _read_recipe(manager, name)
    why = _why_not_rerunnable(record, recipe, shell is not None)
    if why is not None:
        raise UsageError(f'Cannot rerun one-off "{name}" ({record.status} in the store): {why}.')
    executor = (recipe or {}).get("executor") or record.meta.get("executor")
    if isinstance(executor, str) and executor not in manager.executor_names:
        raise UsageError(
            f'Cannot rerun one-off "{name}": it ran on the executor "{executor}", which this kernel has not added '
            f'(known: {", ".join(manager.executor_names)}). Add it first with '
            f'jobmanager_nb.get_manager().add_executor("{executor}", executor), then rerun it.'
        )
    if recipe is None:
        manager.rerun(name)  # a script or module:function one-off: its record says what it ran
        return attempt
    job: Any = recipe["target"]
    if recipe.get("cell") and not recipe["offloaded"]:
        assert shell is not None
        body = Path(job).read_text(encoding="utf-8")
        job = _cell_function(shell, name, body)
    manager.add_one_off_job(
        job,
        name=name,
        data=recipe.get("data"),
        offloaded=recipe["offloaded"],
        timeout=recipe.get("timeout"),
        executor=recipe.get("executor") if recipe["offloaded"] else None,
    )
    return attempt


def _attempt_words(attempt: int) -> str:
    """``attempt 1``, or ``attempt 3, a rerun``: how a one-off's attempt is worded (the store counts them)."""
    return "attempt 1" if attempt <= 1 else f"attempt {attempt}, a rerun"


def _read_recipe(manager: JobManager, name: str) -> dict[str, Any] | None:
    """The recipe a magic kept for one-off ``name`` next to the store, or None (none kept, or unreadable)."""
    try:
        recipe = json.loads(_recipe_path(manager, name).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(recipe, dict) or not isinstance(recipe.get("target"), str) or "offloaded" not in recipe:
        return None
    return recipe


def can_rerun(manager: JobManager, record: OneOffRecord, *, has_shell: bool) -> bool:
    """Whether :func:`rerun_one_off` can rerun ``record`` (a failed one-off whose code is known)."""
    return _why_not_rerunnable(record, _read_recipe(manager, record.name), has_shell) is None


def _why_not_rerunnable(record: OneOffRecord, recipe: dict[str, Any] | None, has_shell: bool) -> str | None:
    """Why one-off ``record`` cannot be rerun by this kernel (and what to do instead), or None when it can."""
    name = record.name
    if record.status in ("queued", "started"):
        where = f"another kernel ({record.owner.describe()})" if record.owner is not None else "another kernel"
        return f"it is {record.status} in {where}: wait for it there, or see it with %job log {name}"
    if record.status == "finished":
        return "it finished, and a one-off runs once, ever: give it a new name to run it again"
    if recipe is not None:
        if not Path(recipe["target"]).is_file():
            what = "cell" if recipe.get("cell") else "script"
            return f"its {what} file {recipe['target']} is gone: run the cell that adds it again"
        if recipe.get("cell") and not recipe["offloaded"] and not has_shell:
            return "its code is a notebook cell, which runs in an IPython kernel: rerun it from a notebook"
        return None
    meta = record.meta
    if meta.get("target_type") in ("script", "reference") and isinstance(meta.get("job"), str):
        return None
    target = str(meta.get("target") or "")
    if meta.get("target_type") == "callable" and target.endswith("()"):
        return "its code was a function defined in a notebook cell: run that cell again"
    if meta.get("target_type") == "callable":
        return f"its code was the function {target}, passed as an object: run the code that adds it again"
    return "this kernel does not know its code: run the cell (or code) that adds it again"


def earlier_one_offs(
    manager: JobManager, shell: InteractiveShell | None, hide: Set[str] = frozenset()
) -> list[JobInfo]:
    """The one-off records of ``manager``'s store that it did not add (an earlier kernel's, or another live
    kernel's), oldest first, as dashboard rows; names in ``hide`` are left out. Reads the store once."""
    added = manager.added_names
    views: list[JobInfo] = []
    for record in manager.one_off_records():
        if record.name in added or record.name in hide:
            continue
        recipe = _read_recipe(manager, record.name) if record.status == "failed" else None
        views.append(_earlier_view(record, _why_not_rerunnable(record, recipe, shell is not None)))
    return views


def _earlier_view(record: OneOffRecord, hint: str | None) -> JobInfo:
    """One-off ``record`` as a row: its status, its times and error as the last run (or the run going on in
    another kernel), ``kind`` and ``target`` from its ``meta``."""
    meta = record.meta
    kind: JobKind = "inline" if meta.get("kind") == "inline" else "offloaded"
    executor = meta.get("executor") if kind == "offloaded" and isinstance(meta.get("executor"), str) else None
    error = record.error
    cancelled = record.status == "failed" and (error or "").startswith("cancelled")
    outcome: Outcome | None = None
    status: JobStatus
    if record.status == "finished":
        status, outcome = "finished", "finished"
    elif record.status == "failed":
        status, outcome = ("cancelled", "cancelled") if cancelled else ("failed", "failed")
    else:
        status = record.status
    run = JobRun(
        name=record.name,
        run_id="stored",
        kind=kind,
        status=record.status,
        attempt=max(record.attempts, 1),
        queued_at=record.created_at,
        started_at=record.started_at,
        finished_at=record.finished_at,
        error=error,
        cancelled=cancelled,
        phase="ended" if outcome is not None else "started" if record.status == "started" else "queued",
        outcome=outcome,
    )
    ended = outcome is not None
    recent: tuple[RunMark, ...] = ()
    if outcome is not None:
        recent = (RunMark("stored", outcome, record.started_at, record.finished_at, _last_line(error)),)
    return JobInfo(
        name=record.name,
        kind=kind,
        one_off=True,
        target=str(meta.get("target") or ""),
        schedule="",
        schedule_description="once, in an earlier kernel" if ended else "once, in another kernel",
        status=status,
        next_run=None,
        last_run=run if ended else None,
        current_run=None if ended else run,
        runs=record.attempts if ended else max(record.attempts - 1, 0),
        failures=1 if record.status == "failed" else 0,
        skipped=0,
        paused=False,
        recurring=False,
        registered=False,
        recent=recent,
        origin="earlier kernel",
        rerun_hint=hint,
        executor=executor,
    )


def _last_line(error: str | None) -> str | None:
    lines = [line.strip() for line in (error or "").splitlines() if line.strip()]
    return lines[-1] if lines else None


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
