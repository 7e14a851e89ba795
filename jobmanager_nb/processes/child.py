"""The first and only code a worker process runs: wait for one task, run it, report, exit.

A worker is started (by :mod:`jobmanager_nb.processes.zygote` or by a fresh interpreter) with fd 0 on
``/dev/null``, fds 1 and 2 on pipes, and one socket to the parent, and calls :func:`main` with
the socket's descriptor and the read ends of the two pipes. It then:

1. ignores SIGINT (the notebook's Interrupt button is not meant for jobs), makes ``sys.stdout`` and
   ``sys.stderr`` line-buffered writers on fds 1 and 2, enables :mod:`faulthandler`, starts the
   thread that forwards fds 1 and 2 to the parent (:mod:`jobmanager_nb.processes.output`), and its
   listener thread, parked until a task arrives;
2. blocks until the parent sends ``("task", spec)`` — a spare worker sleeps here; ``("stop",)``
   or end of file (the parent died) makes it exit quietly;
3. prepares the task without running any of the job's code: applies its environment, working
   directory and ``sys.path``, decodes its data, and loads its target (compiles the script, imports
   the function's module or unpickles the function); a failure here ends the run with an
   ``("end", outcome)`` frame before it started;
4. sends ``("ready", pid)`` and blocks until the parent answers: ``("go",)`` starts the job,
   ``("abort",)`` (the run was cancelled or killed before it started) or end of file makes the
   worker exit quietly with code 0, the job's code never having run;
5. after ``go``, lets the listener thread read the parent's messages for the rest of the run,
   delivering them to :mod:`jobmanager_nb.worker` and ending the whole process group at once when
   the parent goes away, and runs the script or calls the function;
6. waits for the job's non-daemon threads and ``atexit`` callbacks, as an interpreter exit would,
   forwards the remaining output, sends ``("end", outcome)`` and leaves with ``os._exit``.

A function job's module is imported in step 3, so its top-level code runs even for a run that is
then aborted; a script's top level and a function's body run only after ``go``.

The frames a worker sends are listed in ``docs/job-scripts.md`` ("The protocol").
"""

from __future__ import annotations

import faulthandler
import os
import pickle
import signal
import sys
import threading

from jobmanager_nb import worker
from jobmanager_nb.processes.exits import exit_code_reason
from jobmanager_nb.processes.output import OutputBudget, OutputPump
from jobmanager_nb.processes.wire import Channel

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (workers stay light)
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, NoReturn

__all__ = ["main"]

INTERNAL_ERROR = 70  # exit code when the worker machinery itself fails (EX_SOFTWARE)
_HERE = __file__


def main(conn_fd: int, out_fd: int, err_fd: int) -> NoReturn:
    """Run one task received on ``conn_fd`` and end the process (never returns). ``out_fd`` and
    ``err_fd`` are the read ends of the pipes on fds 1 and 2."""
    try:
        code = _serve(conn_fd, out_fd, err_fd)
    except BaseException:
        _print_internal_error()
        code = INTERNAL_ERROR
    os._exit(code)


def _serve(conn_fd: int, out_fd: int, err_fd: int) -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for fd in (conn_fd, out_fd, err_fd):
        os.set_inheritable(fd, False)
    _setup_stdio()
    faulthandler.enable()
    channel = Channel(conn_fd)
    budget = OutputBudget(1 << 20)
    pump = OutputPump({"stdout": out_fd, "stderr": err_fd}, channel, budget)
    pump.start()
    # The threads are started now, while this worker may still be a spare, because starting a
    # thread costs about a millisecond (much more on a busy machine) that a run should not wait for.
    # The listener waits behind ``gate`` until the task has been read.
    gate = threading.Lock()
    gate.acquire()
    threading.Thread(target=_listen, args=(channel, gate), name="jobmanager_nb-listener", daemon=True).start()
    try:
        frame = channel.recv()
    except (EOFError, OSError):
        return 0  # the parent went away while this spare was waiting
    if frame == ("stop",):
        return 0  # a spare that is no longer needed
    if not (isinstance(frame, tuple) and frame and frame[0] == "task"):
        raise RuntimeError(f"expected a task from the parent, got {frame!r:.200}")
    spec: dict[str, Any] = frame[1]
    budget.limit = spec.get("output_limit", budget.limit)
    outcome = _run_task(channel, spec, gate, pump.drain)
    if outcome is None:
        return 0  # the parent did not start it (cancelled or killed before it started)
    _wind_down()
    pump.drain()
    try:  # noqa: SIM105  (contextlib is one import more in every worker)
        channel.send(("end", outcome))
    except OSError:
        pass
    code: int = outcome["exit_code"]
    return code


def _setup_stdio() -> None:
    """Line-buffered text streams on fds 1 and 2, so prints reach the parent as lines are written."""
    worker._flush_stdio()
    out = open(1, "w", buffering=1, encoding="utf-8", errors="backslashreplace", closefd=False)  # noqa: SIM115
    err = open(2, "w", buffering=1, encoding="utf-8", errors="backslashreplace", closefd=False)  # noqa: SIM115
    sys.stdout = sys.__stdout__ = out  # type: ignore[misc]
    sys.stderr = sys.__stderr__ = err  # type: ignore[misc]


def _run_task(
    channel: Channel, spec: dict[str, Any], gate: threading.Lock, drain: Callable[[], None]
) -> dict[str, Any] | None:
    """Prepare the job, ask the parent whether to start it, and run it if told to.

    Returns the outcome dict that goes into the ``end`` frame, or None when the parent answered
    anything but ``go`` (then none of the job's code ran beyond its module's import).
    """
    try:
        job_data = _prepare(spec)
        worker._install(channel, job_data, _run_info(spec), drain)
        target = _load_target(spec)
    except BaseException as exc:
        return _ended_by(exc, spec["name"])
    if not _parent_says_go(channel):
        return None
    gate.release()  # from now on the listener thread delivers the parent's messages
    try:
        if spec["target_kind"] == "script":
            _run_script(spec["target"], target)
            result = None
        else:
            result = _call(target, job_data)
    except BaseException as exc:
        return _ended_by(exc, spec["name"])
    return _finished(result)


def _ended_by(exc: BaseException, name: str) -> dict[str, Any]:
    """The outcome of a job that raised ``exc`` (``SystemExit`` included, as an interpreter treats it)."""
    if isinstance(exc, SystemExit):
        code = _exit_status(exc)
        return _finished(None) if code == 0 else _failed(exit_code_reason(name, code), code)
    return _failed(_format_exception(exc), 1)


def _parent_says_go(channel: Channel) -> bool:
    """Tell the parent the job is ready and wait for its answer: True for ``("go",)`` only."""
    try:
        channel.send(("ready", os.getpid()))
        answer = channel.recv()
    except (EOFError, OSError):
        return False  # the parent is gone: nothing was started, nothing is left to do
    return bool(answer == ("go",))


def _prepare(spec: dict[str, Any]) -> Any:
    """Environment, working directory, ``sys.path`` and data of the task, as the parent had them."""
    _sync_environ(spec["env"])
    cwd = spec["cwd"]
    if cwd:
        try:
            os.chdir(cwd)
        except OSError as exc:
            raise RuntimeError(f'cannot enter the working directory "{cwd}": {exc}') from exc
    path = [*spec["sys_path"], *spec["parent_sys_path"], *sys.path]
    if spec["target_kind"] == "script":
        path.insert(0, os.path.dirname(spec["target"]))
        sys.argv = [spec["target"]]
    else:
        sys.argv = [spec["name"]]
    sys.path[:] = list(dict.fromkeys(path))
    data_json: str = spec["data_json"]
    if data_json == "null":
        return None
    import json

    return json.loads(data_json)


def _sync_environ(env: dict[str, str]) -> None:
    current = os.environ
    for key in [k for k in current if k not in env]:
        del current[key]
    for key, value in env.items():
        if current.get(key) != value:
            current[key] = value


def _run_info(spec: dict[str, Any]) -> dict[str, Any]:
    info = {"name": spec["name"], "run_id": spec["run_id"], "attempt": 1, "scheduled_for": None}
    info.update(spec["run_info"])
    return info


def _load_target(spec: dict[str, Any]) -> Any:
    """What :func:`_run_task` runs after ``go``: a script's compiled code (None for what only
    :mod:`runpy` can run: a directory, a zip file, a ``.pyc``), or the function to call."""
    if spec["target_kind"] != "script":
        return _load_callable(spec)
    path: str = spec["target"]
    if not os.path.exists(path):
        raise FileNotFoundError(
            f'job "{spec["name"]}": there is no script at "{path}"; check the path given to add_job '
            "(a relative path is taken from the job's cwd)"
        )
    if not (path.endswith(".py") and os.path.isfile(path)):
        return None
    import io

    with io.open_code(path) as file:
        source = file.read()
    return compile(source, path, "exec", dont_inherit=True)


def _run_script(path: str, code: Any) -> None:
    """Run a script as ``__main__``, as ``runpy.run_path(path, run_name="__main__")`` does."""
    if code is None:
        import runpy

        runpy.run_path(path, run_name="__main__")
        return
    module = type(sys)("__main__")
    module.__dict__.update(__file__=path, __cached__=None, __loader__=None, __package__="", __spec__=None)
    saved = sys.modules.get("__main__")
    sys.modules["__main__"] = module
    try:
        exec(code, module.__dict__)
    finally:
        if saved is not None:
            sys.modules["__main__"] = saved


def _load_callable(spec: dict[str, Any]) -> Any:
    target = spec["target"]
    if spec["target_kind"] == "pickled":
        # cloudpickle output is plain pickle that imports cloudpickle itself when it needs to
        return pickle.loads(target)
    module_name, _, qualname = str(target).partition(":")
    if not module_name or not qualname:
        raise ValueError(f'a job reference looks like "package.module:function", not "{target}"')
    import importlib

    obj: Any = importlib.import_module(module_name)
    for part in qualname.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise AttributeError(f'module "{module_name}" has no attribute "{qualname}"') from None
    return obj


def _call(func: Any, job_data: Any) -> Any:
    """``func()`` when there is no data and it takes no positional parameter, else ``func(data)``;
    an awaitable result (an ``async def`` job) is run to completion with ``asyncio.run``."""
    result = func() if job_data is None and _takes_no_positional(func) else func(job_data)
    if hasattr(result, "__await__"):
        import asyncio

        async def _await() -> Any:
            return await result

        result = asyncio.run(_await())
    return result


def _takes_no_positional(func: Any) -> bool:
    code = getattr(func, "__code__", None)
    if code is not None and type(func).__name__ == "function":
        return code.co_argcount == 0 and not code.co_flags & 0x04  # 0x04: CO_VARARGS
    import inspect

    try:
        parameters = inspect.signature(func).parameters.values()
    except (TypeError, ValueError):
        return False
    positional = (
        inspect.Parameter.POSITIONAL_ONLY,
        inspect.Parameter.POSITIONAL_OR_KEYWORD,
        inspect.Parameter.VAR_POSITIONAL,
    )
    return not any(p.kind in positional for p in parameters)


def _exit_status(exc: SystemExit) -> int:
    """The exit status ``sys.exit(code)`` would give; like Python, a non-integer code is printed."""
    code = exc.code
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)
    return 1


def _finished(result: Any) -> dict[str, Any]:
    return {"status": "finished", "result": _pickle_result(result), "error": None, "exit_code": 0}


def _failed(error: str, exit_code: int) -> dict[str, Any]:
    return {"status": "failed", "result": None, "error": error, "exit_code": exit_code}


def _pickle_result(result: Any) -> bytes | None:
    """The result as pickle bytes: plain pickle, else cloudpickle (classes defined in the job),
    else its ``repr()`` with a note on stderr."""
    if result is None:
        return None
    try:
        return pickle.dumps(result, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception as exc:
        first_error = exc
    try:
        import cloudpickle

        return bytes(cloudpickle.dumps(result, protocol=pickle.HIGHEST_PROTOCOL))
    except Exception:
        pass
    text = _safe_repr(result)
    print(
        f"[jobmanager_nb] the job's result ({type(result).__name__}) cannot be pickled "
        f"({type(first_error).__name__}: {first_error}); its repr() is the result instead",
        file=sys.stderr,
    )
    return pickle.dumps(text)


def _safe_repr(value: Any) -> str:
    try:
        return repr(value)
    except Exception as exc:
        return f"<{type(value).__name__} object; repr() failed: {exc!r}>"


def _format_exception(exc: BaseException) -> str:
    """The full traceback text, without the frames of this module and of runpy above the job; only
    the exception itself when no frame is the job's (a syntax error, a missing script or cwd)."""
    import traceback

    tb = exc.__traceback__
    runpy_file = getattr(sys.modules.get("runpy"), "__file__", None) or "<frozen runpy>"
    skip = {_HERE, runpy_file, "<frozen runpy>"}
    while tb is not None and tb.tb_frame.f_code.co_filename in skip:
        tb = tb.tb_next
    if tb is None:
        return "".join(traceback.format_exception_only(type(exc), exc)).rstrip("\n")
    return "".join(traceback.format_exception(type(exc), exc, tb)).rstrip("\n")


def _listen(channel: Channel, gate: threading.Lock) -> None:
    """Deliver the parent's messages; end the process group when the parent goes away."""
    gate.acquire()
    while True:
        try:
            frame = channel.recv()
        except (EOFError, OSError):
            _parent_gone()
        if frame[0] != "message":
            continue
        try:
            message = pickle.loads(frame[1])
        except Exception as exc:
            note = f"[jobmanager_nb] a message from the parent could not be unpickled: {exc!r}"
            print(note, file=sys.stderr)
            continue
        worker._deliver(message)


def _parent_gone() -> NoReturn:
    """The parent died (or dropped us): take this worker and what it started down with it."""
    try:
        if os.getpgrp() == os.getpid():
            os.killpg(os.getpid(), signal.SIGKILL)
    finally:
        os._exit(INTERNAL_ERROR)


def _wind_down() -> None:
    """What an interpreter exit does before it ends: join non-daemon threads, run atexit callbacks."""
    shutdown = getattr(threading, "_shutdown", None)
    try:
        if shutdown is not None:
            shutdown()
        else:
            for thread in threading.enumerate():
                if thread is not threading.current_thread() and not thread.daemon:
                    thread.join()
    except Exception:
        _print_internal_error()
    import atexit

    run_exitfuncs = getattr(atexit, "_run_exitfuncs", None)
    if run_exitfuncs is not None:
        run_exitfuncs()


def _print_internal_error() -> None:
    try:
        import traceback

        print("[jobmanager_nb] the worker process failed:", file=sys.stderr)
        traceback.print_exc()
        sys.stderr.flush()
    except BaseException:
        pass
