"""The job side of an offloaded job: what a job script or function imports.

::

    from jobmanager_nb import worker

    for i, item in enumerate(worker.data["items"]):
        if worker.cancelled.is_set():          # the parent asked us to stop
            worker.post_message("cancelled")
            raise SystemExit(0)
        ...
        worker.progress((i + 1) / len(worker.data["items"]), f"item {i + 1}")
    worker.post_message("done")                # optional: returning normally also succeeds

Inside a worker process, :data:`data` is the job's data (decoded from JSON), :data:`run` describes
the run, :func:`post_message` and :func:`progress` report to the parent, :data:`cancelled` and
:func:`on_message` hear from it. Outside a worker (a script run by hand, a test, an inline job)
nothing here fails: :data:`data` and :data:`run` are ``None``, :func:`post_message` and
:func:`progress` do nothing (after checking their arguments), :data:`cancelled` is never set.

This module is imported by every worker process, so it imports only light standard modules.
"""

from __future__ import annotations

import sys
import threading

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (workers stay light)
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from typing import Any

    from jobmanager_nb.processes.wire import Channel

__all__ = ["RunInfo", "cancelled", "data", "in_worker", "on_message", "post_message", "progress", "run"]

data: Any = None
"""The job's data, decoded from JSON (``None`` when the job has none, and outside a worker)."""

run: RunInfo | None = None
"""What this run is: ``run.name``, ``run.run_id``, ``run.attempt``, ``run.scheduled_for``
(also as ``run["name"]`` ...). ``None`` outside a worker."""

cancelled = threading.Event()
"""Set when the parent sends ``"cancel"`` (on ``remove_job``, ``shutdown`` or a timeout). A job
that wants to stop cleanly checks it, tidies up, and returns or posts ``"cancelled"``."""

_channel: Channel | None = None
_before_report: Callable[[], None] | None = None  # forwards pending output first (set by the worker process)
_handlers: list[Callable[[Any], None]] = []
_backlog: list[Any] = []  # messages that arrived before the first callback was registered
_delivery_lock = threading.RLock()  # one message at a time, in order; a handler may call on_message


class RunInfo:
    """Read-only facts about the current run, by attribute (``run.name``) or key (``run["name"]``).

    Always has ``name``, ``run_id``, ``attempt`` and ``scheduled_for`` (an ISO 8601 string, or
    ``None`` when the run was not scheduled for a particular moment); the manager may add more.
    """

    __slots__ = ("_fields",)

    _fields: dict[str, Any]

    def __init__(self, fields: dict[str, Any]) -> None:
        object.__setattr__(self, "_fields", dict(fields))

    def __getattr__(self, key: str) -> Any:
        try:
            return self._fields[key]
        except KeyError:
            raise AttributeError(f"worker.run has no field {key!r}") from None

    def __setattr__(self, key: str, value: Any) -> None:
        raise AttributeError("worker.run is read-only")

    def __getitem__(self, key: str) -> Any:
        return self._fields[key]

    def __contains__(self, key: object) -> bool:
        return key in self._fields

    def __iter__(self) -> Iterator[str]:
        return iter(self._fields)

    def __len__(self) -> int:
        return len(self._fields)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, RunInfo):
            return self._fields == other._fields
        if isinstance(other, dict):
            return self._fields == other
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def get(self, key: str, default: Any = None) -> Any:
        """The field ``key``, or ``default``."""
        return self._fields.get(key, default)

    def keys(self) -> list[str]:
        """The field names."""
        return list(self._fields)

    def as_dict(self) -> dict[str, Any]:
        """A plain copy of the fields."""
        return dict(self._fields)

    def __repr__(self) -> str:
        inner = ", ".join(f"{k}={v!r}" for k, v in self._fields.items())
        return f"RunInfo({inner})"


def in_worker() -> bool:
    """True inside a worker process that is running a job."""
    return _channel is not None


def post_message(message: Any) -> None:
    """Send ``message`` (any picklable value) to the parent, after everything printed so far.

    ``"done"`` ends the run successfully at once: the parent settles it as finished and stops this
    process if it has not exited by itself about a second later. ``"cancelled"`` (the answer to a
    cancel) ends it as failed and cancelled. Every message, these two included, also reaches the
    manager's ``worker_message_handler``. A message that cannot be pickled raises ``TypeError``.
    Outside a worker this does nothing.
    """
    channel = _channel
    if channel is None:
        return
    payload = _pickle_message(message)
    _flush_output()
    try:  # noqa: SIM105  (contextlib is one import more in every worker)
        channel.send(("message", payload))
    except OSError:  # the parent is gone; the watcher thread ends this process
        pass


def progress(fraction: float, text: str | None = None) -> None:
    """Report how far the job is: ``fraction`` from 0.0 to 1.0, and an optional short ``text``.

    Raises ``TypeError``/``ValueError`` for a fraction that is not a number in [0, 1] or a text that
    is not a string (also outside a worker, where the call otherwise does nothing). Meant for a
    few updates per second, not one per loop iteration of a tight loop.
    """
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)):
        raise TypeError(f"worker.progress() needs a number from 0.0 to 1.0, not {type(fraction).__name__}")
    value = float(fraction)
    if not 0.0 <= value <= 1.0:  # also refuses NaN
        raise ValueError(f"worker.progress() needs a fraction from 0.0 to 1.0, got {fraction!r}")
    if text is not None and not isinstance(text, str):
        raise TypeError(f"worker.progress() text must be a string or None, not {type(text).__name__}")
    channel = _channel
    if channel is None:
        return
    _flush_output()
    try:  # noqa: SIM105
        channel.send(("progress", value, text))
    except OSError:
        pass


def on_message(callback: Callable[[Any], None]) -> Callable[[Any], None]:
    """Call ``callback(message)`` for every message the parent sends (``"cancel"`` included).

    Callbacks run one after another on a background thread of the worker; an exception in one is
    printed to the job's stderr and does not stop the others. Messages that arrived before the
    first callback was registered are kept and handed to that callback when it is registered (on
    the calling thread), so nothing sent early is lost. Returns ``callback``, so it also works as a
    decorator. Outside a worker the callback is kept but never called.
    """
    if not callable(callback):
        raise TypeError(f"worker.on_message() needs a callable, not {type(callback).__name__}")
    with _delivery_lock:
        _handlers.append(callback)
        backlog = list(_backlog)
        _backlog.clear()
        for message in backlog:
            _call_handler(callback, message)
    return callback


def _pickle_message(message: Any) -> bytes:
    import pickle

    try:
        return pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception as exc:
        raise TypeError(
            f"worker.post_message() needs a picklable message; this {type(message).__name__} "
            f"cannot be pickled ({type(exc).__name__}: {exc}). Send plain data (str, numbers, lists, dicts)."
        ) from exc


def _flush_output() -> None:
    """Forward everything the job wrote so far, so that it arrives before the next report."""
    assert _before_report is not None  # set together with _channel
    _before_report()


def _flush_stdio() -> None:
    """Push what the job printed with Python into the output pipes."""
    for stream in (sys.stdout, sys.stderr):
        try:
            if stream is not None:
                stream.flush()
        except Exception:
            pass


def _install(channel: Channel, job_data: Any, run_info: dict[str, Any], before_report: Callable[[], None]) -> None:
    """Called once by the worker process before the job starts (not part of the public API)."""
    global _channel, _before_report, data, run
    data = job_data
    run = RunInfo(run_info)
    _before_report = before_report
    _channel = channel


def _deliver(message: Any) -> None:
    """Hand a message from the parent to the job (called on the worker's listener thread)."""
    if isinstance(message, str) and message == "cancel":
        cancelled.set()
    with _delivery_lock:
        if not _handlers:
            _backlog.append(message)
            return
        handlers = list(_handlers)
        for handler in handlers:
            _call_handler(handler, message)


def _call_handler(handler: Callable[[Any], None], message: Any) -> None:
    try:
        handler(message)
    except Exception:
        import traceback

        print(f"[jobmanager_nb] worker.on_message callback {handler!r} raised:", file=sys.stderr)
        traceback.print_exc()
        _flush_stdio()
