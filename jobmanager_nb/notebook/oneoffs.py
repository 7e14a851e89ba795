"""One-off jobs: the ``%%oneoff NAME`` cell, ``%job ... --oneoff``, and ``%job rerun NAME``.

A one-off runs once, ever, under its name; its record is kept in the store (``.jobmanager/jobs.json``),
across kernel restarts. :func:`add_one_off` adds it; if it already finished, it only says so in one line (so
"Run All" does not stop there), and if it is going (here or in another kernel) it says where. Once added,
its recipe is written next to the store (:mod:`jobmanager_nb.notebook.cells`), so that a later kernel knows
what it ran. :func:`oneoff_cell` is the ``%%oneoff`` cell: inline by default, in the notebook's namespace,
with the cell kept for a rerun; ``--offloaded`` in a fresh worker process.

:func:`rerun` runs a failed one-off again: this kernel's through the manager, or one only the store knows
(an earlier kernel's) from its recipe; without a recipe it says to run the cell that adds it again. A job
that is not a one-off is pointed to ``%job run``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from IPython.core.error import UsageError

from jobmanager_nb.errors import JobManagerError, JobNotFoundError, OneOffAlreadyExecutedError
from jobmanager_nb.manager import JobManager
from jobmanager_nb.model import JobInfo
from jobmanager_nb.notebook.cells import _cell_function, _cell_job, _cell_path, _recipe_path, _write_atomically
from jobmanager_nb.notebook.parsing import (
    _data_value,
    _gather,
    _name_only,
    _parse,
    _parser_of,
    _split,
    _usage,
    _usage_errors,
)
from jobmanager_nb.notebook.wording import _when

if TYPE_CHECKING:
    from jobmanager_nb.notebook.magics import JobManagerMagics

__all__ = ["add_one_off", "oneoff_cell", "rerun"]


def oneoff_cell(magics: JobManagerMagics, line: str, cell: str) -> None:
    """``%%oneoff NAME [--offloaded] [--data JSON]``: the cell as a persisted one-off, run now."""
    args = _parse(_parser_of(magics.oneoff), _gather(_split(line), "--data"))
    data = _data_value(args.data)
    magics.manager()
    job = _cell_job(magics, args.name, cell, args.offloaded)
    path = _cell_path(magics, args.name)
    recipe = {"target": str(path), "cell": True, "offloaded": args.offloaded, "data": data, "timeout": None}
    if not args.offloaded:
        _write_atomically(path, cell)  # kept so that %job rerun works in a later kernel
    add_one_off(magics, args.name, job, recipe)


def add_one_off(magics: JobManagerMagics, name: str, job: Any, recipe: dict[str, Any]) -> None:
    manager = magics.manager()
    try:
        manager.add_one_off_job(
            job, name=name, data=recipe["data"], offloaded=recipe["offloaded"], timeout=recipe["timeout"]
        )
    except OneOffAlreadyExecutedError:
        print(_already_line(manager, name))
        return
    except JobManagerError as exc:
        raise _usage(exc) from None
    _write_atomically(_recipe_path(magics, name), json.dumps({"version": 1, "name": name, **recipe}, indent=1))
    kind = "offloaded" if recipe["offloaded"] else "inline"
    print(f'started one-off "{name}" ({kind}); see it with %job wait {name} or %job log {name}')


def rerun(magics: JobManagerMagics, argv: list[str]) -> None:
    name = _name_only("rerun", argv)
    manager = magics.manager()
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
            _rerun_from_recipe(magics, manager, name)
    print(f'rerunning one-off "{name}"; see it with %job wait {name} or %job log {name}')


def _rerun_from_recipe(magics: JobManagerMagics, manager: JobManager, name: str) -> None:
    record = manager.store.get(name)
    if record is None:
        raise UsageError(f'No one-off job named "{name}" in this kernel or in the store; check the name.')
    try:
        recipe = json.loads(_recipe_path(magics, name).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise UsageError(
            f'One-off "{name}" is {record.status} in the store, but this kernel does not know its code: run the '
            "cell (or code) that adds it again."
        ) from None
    job: Any = recipe["target"]
    if recipe.get("cell") and not recipe["offloaded"]:
        body = Path(job).read_text(encoding="utf-8")
        job = _cell_function(magics._shell(), name, body)
    manager.add_one_off_job(
        job, name=name, data=recipe.get("data"), offloaded=recipe["offloaded"], timeout=recipe.get("timeout")
    )


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
