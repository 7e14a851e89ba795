"""Controlling registered jobs: ``%job run``, ``%job cancel``, ``%job pause``, ``%job resume`` and ``%job remove``.

Each takes one job name, makes one call to the manager and says in one line what it did (or, for ``run`` and
``cancel``, that there was nothing to do: a run still going, no run to cancel). An unknown name is a one-line
usage error that names the jobs there are.

- ``run NAME`` starts a run now, outside the schedule.
- ``cancel NAME`` cancels the queued or running run; the job stays registered and its schedule goes on.
- ``pause NAME`` stops firing the schedule (a run in progress goes on); ``resume NAME`` fires it again and
  says when the next run is.
- ``remove NAME`` unregisters the job (a running run is cancelled).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from jobmanager_nb.notebook.parsing import _name_only, _usage_errors
from jobmanager_nb.notebook.wording import _when

if TYPE_CHECKING:
    from jobmanager_nb.notebook.magics import JobManagerMagics

__all__ = ["cancel", "pause", "remove", "resume", "run"]


def remove(magics: JobManagerMagics, argv: list[str]) -> None:
    name = _name_only("remove", argv)
    with _usage_errors():
        magics.manager().remove_job(name)
    print(f'removed job "{name}"')


def run(magics: JobManagerMagics, argv: list[str]) -> None:
    name = _name_only("run", argv)
    with _usage_errors():
        started = magics.manager().run_now(name)
    if started is None:
        print(f'"{name}" is still running, so no new run was started (wait for it with %job wait {name})')
    else:
        print(f'started a run of "{name}" ({started.run_id}); see it with %job wait {name} or %job log {name}')


def cancel(magics: JobManagerMagics, argv: list[str]) -> None:
    name = _name_only("cancel", argv)
    manager = magics.manager()
    with _usage_errors():
        cancelled = manager.cancel(name)
        recurring = manager.job(name).recurring
    if cancelled:
        print(f'cancelled the current run of "{name}"' + (" (its schedule goes on)" if recurring else ""))
    else:
        print(f'"{name}" had no queued or running run to cancel')


def pause(magics: JobManagerMagics, argv: list[str]) -> None:
    name = _name_only("pause", argv)
    with _usage_errors():
        magics.manager().pause(name)
    print(f'paused "{name}" (a run in progress goes on); resume with %job resume {name}')


def resume(magics: JobManagerMagics, argv: list[str]) -> None:
    name = _name_only("resume", argv)
    manager = magics.manager()
    with _usage_errors():
        manager.resume(name)
        info = manager.job(name)
    print(f'resumed "{name}"; next run {_when(info.next_run)}')
