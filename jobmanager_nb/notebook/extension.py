"""``%load_ext jobmanager_nb`` and ``%unload_ext jobmanager_nb``.

Loading makes one :class:`~jobmanager_nb.notebook.magics.JobManagerMagics`, which opens the kernel's one
manager (a manager that code opened before loading is replaced: its jobs are named in one line, and the executors
added to it by name are kept, as ``jobmanager_nb.get_manager().add_executor`` before ``%load_ext`` means), and
registers the magics and a ``post_run_cell`` hook; called again, it first undoes the earlier load.
Unloading is the exact inverse (manager closed, workers ended, magics, hook and configurable removed), so
``%reload_ext`` leaves exactly one scheduler thread. ``jobmanager_nb.load_ipython_extension`` imports this
module only when IPython calls it, so ``import jobmanager_nb`` never imports IPython.
"""

from __future__ import annotations

import contextlib
import threading
from typing import Any

from IPython.core.interactiveshell import InteractiveShell

from jobmanager_nb import session
from jobmanager_nb.notebook.magics import JobManagerMagics, _registered_names

__all__ = ["CELL_MAGICS", "LINE_MAGICS", "load_ipython_extension", "unload_ipython_extension"]

LINE_MAGICS = ("job", "jobs")
CELL_MAGICS = ("job", "oneoff")

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
        previous = session.current_manager()
        executors = previous.executors if previous is not None else {}  # the user's: closing it left them open
        try:
            magics.open(executors)
        except BaseException:
            _forget(shell, magics)
            raise
        kept = f"; kept the executors {', '.join(sorted(executors))}" if executors else ""
        if earlier:
            print(
                f"jobmanager_nb: replaced the job manager opened before %load_ext; removed {len(earlier)} job(s) "
                f"({', '.join(earlier)}): add them again{kept}"
            )
        elif executors:
            print(f"jobmanager_nb: replaced the job manager opened before %load_ext{kept}")
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
