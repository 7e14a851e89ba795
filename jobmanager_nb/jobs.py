"""What a job *is*: turning the ``job`` argument into a runnable target, and running it inline.

A job is a callable (sync or async), a ``"package.module:function"`` reference, or a path to a
``.py`` script. :func:`resolve_target` checks it (before anything is registered or stored) and
:func:`offload_target` turns it into what a worker process can load. Nothing here schedules.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import importlib.util
import inspect
import json
import os
import re
import runpy
import sys
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from jobmanager_nb.errors import JobReferenceError

__all__ = ["JobTarget", "check_json_data", "offload_target", "resolve_target"]

_REFERENCE = re.compile(r"^[A-Za-z_][\w]*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")

TargetType = Literal["callable", "reference", "script"]


@dataclass(frozen=True)
class JobTarget:
    """A checked job. ``label`` is what users see (``mymod:func``, ``jobs/backup.py``, ``refresh()``)."""

    type: TargetType
    label: str
    default_name: str | None
    func: Callable[..., Any] | None = None
    reference: str | None = None
    path: Path | None = None

    def call_inline(self, data: Any) -> Any:
        """Run the job in this process; returns its result (an awaitable for async jobs)."""
        if self.type == "script":
            assert self.path is not None
            runpy.run_path(str(self.path), init_globals={"data": data}, run_name="__main__")
            return None
        func = self.func
        assert func is not None
        if data is None and not _accepts_argument(func):
            return func()
        return func(data)


def resolve_target(job: Any, name: str | None, *, offloaded: bool) -> JobTarget:
    """Check ``job`` and describe it; raises :class:`JobReferenceError` (or TypeError) with the fix."""
    who = f'Job "{name}"' if name else "The job"
    if isinstance(job, Path) or (isinstance(job, str) and _looks_like_path(job)):
        return _script_target(Path(job), who)
    if isinstance(job, str):
        if not _REFERENCE.match(job):
            raise JobReferenceError(
                f'{who}: "{job}" is neither a script path (ending in .py) nor a "package.module:function" '
                "reference. Pass a callable, a path such as \"jobs/refresh.py\", or a reference such as "
                '"mypackage.tasks:refresh".'
            )
        return _reference_target(job, who, import_now=not offloaded)
    if callable(job):
        try:
            return _TARGETS[job]
        except (KeyError, TypeError):
            pass
        target = _callable_target(job, name, who)
        if target.default_name is not None:
            with contextlib.suppress(TypeError):
                _TARGETS[job] = target
        return target
    raise TypeError(
        f"{who}: job must be a callable, a path to a .py script or a \"module:function\" string, "
        f"not {type(job).__name__}"
    )


def _looks_like_path(text: str) -> bool:
    return text.endswith(".py") or os.sep in text or (os.altsep is not None and os.altsep in text)


def _script_target(path: Path, who: str) -> JobTarget:
    absolute = path.expanduser().resolve()
    if absolute.suffix != ".py":
        raise JobReferenceError(f'{who}: script "{path}" must be a Python file ending in .py.')
    if not absolute.is_file():
        raise JobReferenceError(
            f'{who}: script file "{path}" does not exist (looked for {absolute}). Relative paths are '
            f"relative to the current folder, {Path.cwd()}; check the spelling or pass an absolute path."
        )
    return JobTarget(type="script", label=str(path), default_name=absolute.stem, path=absolute)


def _reference_target(reference: str, who: str, *, import_now: bool) -> JobTarget:
    module_name, _, qualname = reference.partition(":")
    try:
        spec = importlib.util.find_spec(module_name)
    except (ImportError, ValueError) as exc:
        spec = None
        cause: BaseException | None = exc
    else:
        cause = None
    if spec is None:
        raise JobReferenceError(
            f'{who}: cannot import module "{module_name}" from "{reference}". Check the spelling, and that '
            "its folder is on sys.path (or the package is installed)."
        ) from cause
    func: Callable[..., Any] | None = None
    if import_now:
        func = _load_reference(reference, who)
    return JobTarget(
        type="reference", label=reference, default_name=qualname.rsplit(".", 1)[-1], reference=reference, func=func
    )


def _load_reference(reference: str, who: str) -> Callable[..., Any]:
    module_name, _, qualname = reference.partition(":")
    try:
        obj: Any = importlib.import_module(module_name)
    except Exception as exc:
        raise JobReferenceError(
            f'{who}: importing module "{module_name}" failed with {type(exc).__name__}: {exc}. Fix the module '
            "so that it imports cleanly."
        ) from exc
    for part in qualname.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise JobReferenceError(
                f'{who}: module "{module_name}" has no attribute "{qualname}". Check the name after the colon.'
            ) from None
    if not callable(obj):
        raise JobReferenceError(f'{who}: "{reference}" is a {type(obj).__name__}, not a function.')
    return obj  # type: ignore[no-any-return]


def _callable_target(func: Callable[..., Any], name: str | None, who: str) -> JobTarget:
    fname = getattr(func, "__name__", None)
    if isinstance(func, functools.partial) or fname is None or fname == "<lambda>":
        if name is None:
            kind = "partial" if isinstance(func, functools.partial) else "lambda" if fname else "callable object"
            raise JobReferenceError(
                f'A {kind} job has no name of its own: pass one, e.g. add_job(..., name="refresh-prices").'
            )
        default = None
    else:
        default = fname
    module = getattr(func, "__module__", None)
    label = f"{module}:{getattr(func, '__qualname__', fname)}" if module not in (None, "__main__") else f"{fname}()"
    return JobTarget(type="callable", label=label, default_name=default, func=func)


def offload_target(target: JobTarget, name: str) -> tuple[Literal["script", "reference", "pickled"], str | bytes]:
    """How a worker process will load ``target``: a script path, an import reference, or the
    callable pickled by value (for functions defined in a notebook cell, lambdas, closures)."""
    if target.type == "script":
        assert target.path is not None
        return "script", str(target.path)
    if target.type == "reference":
        assert target.reference is not None
        return "reference", target.reference
    func = target.func
    assert func is not None
    reference = _importable_reference(func)
    if reference is not None:
        return "reference", reference
    try:
        import cloudpickle

        return "pickled", cloudpickle.dumps(func)
    except Exception as exc:
        raise JobReferenceError(
            f'Job "{name}": the function cannot be sent to a worker process ({type(exc).__name__}: {exc}). '
            "It probably refers to something that cannot be copied to another process (a widget, a lock, an "
            "open file or connection). Create that thing inside the function, move the function into a "
            "module, or run it inline with offloaded=False."
        ) from exc


def _importable_reference(func: Callable[..., Any]) -> str | None:
    module_name = getattr(func, "__module__", None)
    qualname = getattr(func, "__qualname__", None)
    if not module_name or not qualname or module_name == "__main__" or "<" in qualname:
        return None
    module = sys.modules.get(module_name)
    if module is None or getattr(module, "__spec__", None) is None:
        return None
    obj: Any = module
    for part in qualname.split("."):
        obj = getattr(obj, part, None)
    if obj is not func:
        return None
    return f"{module_name}:{qualname}"


def check_json_data(data: Any, name: str) -> str:
    """The JSON text of an offloaded job's ``data``; refuses what cannot cross a process boundary."""
    try:
        return json.dumps(data, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise JobReferenceError(
            f'Job "{name}": data for an offloaded job must be JSON (dict, list, str, int, float, bool, None); '
            f"{exc}. Pass an id or a file path instead of the object, or run the job inline with offloaded=False."
        ) from exc


_ACCEPTS: weakref.WeakKeyDictionary[Any, bool] = weakref.WeakKeyDictionary()
_TARGETS: weakref.WeakKeyDictionary[Any, JobTarget] = weakref.WeakKeyDictionary()


def _accepts_argument(func: Callable[..., Any]) -> bool:
    try:
        return _ACCEPTS[func]
    except (KeyError, TypeError):
        pass
    try:
        params = inspect.signature(func).parameters.values()
        accepts = any(
            p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.VAR_POSITIONAL) for p in params
        )
    except (TypeError, ValueError):
        accepts = True
    with contextlib.suppress(TypeError):
        _ACCEPTS[func] = accepts
    return accepts


def takes_no_argument(func: Callable[..., Any]) -> bool:
    """True when ``func`` cannot be called with one positional argument (so ``data`` cannot be passed)."""
    return not _accepts_argument(func)
