"""Cell jobs: the body of a ``%%job`` or ``%%oneoff`` cell as something the manager can run, and the files
kept next to the store.

Inline, a cell becomes a function that runs its body in the notebook's namespace (:func:`_cell_function`:
top-level ``await`` allowed; the source is registered with :mod:`linecache`, so tracebacks show the failing
line, under the file name ``<job NAME>``). Offloaded, the body is only checked to compile here and saved as
``cells/NAME.py``, which the worker runs as a script. A syntax error is a ``UsageError``.

The folder is ``cells/`` next to the store's file (``.jobmanager/cells`` when the store is in memory).
Besides offloaded cells it holds, for each one-off the magics made, its recipe ``NAME.oneoff.json`` (what it
runs, inline or offloaded, its data and timeout) and, for an inline one-off cell, its body: what
``%job rerun`` needs in a later kernel. File names come from :func:`_slug` (unusual characters replaced,
plus a hash to keep names apart); files are written whole or not at all.
"""

from __future__ import annotations

import ast
import hashlib
import inspect
import linecache
import re
from collections.abc import Callable
from pathlib import Path
from types import CodeType
from typing import TYPE_CHECKING, Any

from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell

from jobmanager_nb.store.atomic import write_atomically

if TYPE_CHECKING:
    from jobmanager_nb.manager import JobManager
    from jobmanager_nb.notebook.magics import JobManagerMagics

_SLUG = re.compile(r"[^A-Za-z0-9_.-]")


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


def _cells_dir(manager: JobManager) -> Path:
    """``cells/`` next to ``manager``'s store file (``.jobmanager/cells`` for a store in memory)."""
    path = getattr(manager.store, "path", None)
    folder = Path(path).parent if path is not None else Path(".jobmanager").absolute()
    return folder / "cells"


def _cell_path(manager: JobManager, name: str) -> Path:
    return _cells_dir(manager) / f"{_slug(name)}.py"


def _recipe_path(manager: JobManager, name: str) -> Path:
    return _cells_dir(manager) / f"{_slug(name)}.oneoff.json"


def _cell_job(magics: JobManagerMagics, name: str, body: str, offloaded: bool) -> Any:
    if not name.strip():
        raise UsageError('The job needs a name, e.g. %%job refresh --at "every 5 minutes".')
    if not offloaded:
        return _cell_function(magics._shell(), name, body)
    _compile_cell(name, body)  # only checked here: the worker compiles the saved script
    path = _cell_path(magics.manager(), name)
    _write_atomically(path, body)
    return str(path)
