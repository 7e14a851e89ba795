"""The Dask-worker side of :class:`~jobmanager_nb.executors.dask.DaskExecutor` (imported there, never
by ``import jobmanager_nb``).

Each run is one Dask task, :func:`supervise`, that holds one worker thread until the run ends. It
does not run the job itself (Dask cannot stop a running task's thread): it hands the job to a
:class:`~jobmanager_nb.executors.local.ProcessExecutor` that lives in the Dask worker process
(created on first use, shut down when the worker closes, see :class:`JobProcesses`), so the job
runs in a fresh child process exactly as it would locally, and cancel, kill, grace periods, output
capture and the worker protocol are the local ones.

The supervising task:

1. checks what it can without running any of the job's code: the same Python minor version and
   the same jobmanager_nb and cloudpickle versions as the kernel, and (for a script) that the
   script is there; a failure ends the run before it started;
2. submits the job to the worker's ProcessExecutor *held* (``submit(..., hold=True)``): a process
   prepares it (environment, working directory, target loaded) but runs none of its code yet;
3. announces ``ready`` (a :meth:`distributed.Worker.log_event` on the executor's topic, naming this
   placement's token) and waits for the kernel's answer, which :func:`control` delivers: ``go``
   (the local run is released) for the first placement of a run only, ``no`` (the local run is
   cancelled: it never starts) for any other (Dask reran the task after a worker died, or
   recomputed it) and for a run cancelled meanwhile. So a job starts at most once. No answer
   within :data:`GATE_TIMEOUT`, or the kernel releasing the task, is a ``no`` too;
4. forwards the local run's events to the kernel (batched: a report goes at once, output alone at
   most every 20 ms) until ``exited``, and kills the local run if the kernel released the task
   meanwhile (its Client lost the scheduler, or it ended the run as lost: nobody would hear it);
   messages, cancel and kill from the kernel reach the local run through :func:`control`. Before
   ``go`` only an ``exited`` is forwarded (the job could not be prepared: a reference that does
   not import here, a bad pickle); output printed while a function's module was imported waits
   for ``go``.

Everything sent to the kernel is ``{"r": run key, "t": token, "a": worker address, ...}`` with
``"ready": True`` or ``"e"``: the cloudpickled list of :class:`WorkerEvent` objects.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pickle
import shutil
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import replace
from typing import Any

import cloudpickle
from distributed import get_worker
from distributed.diagnostics.plugin import WorkerPlugin
from distributed.worker import Worker

import jobmanager_nb
from jobmanager_nb.executors.base import OffloadedTask, RunHandle, RunOutcome, WorkerEvent
from jobmanager_nb.executors.local import ProcessExecutor
from jobmanager_nb.processes.exits import lost_reason

__all__ = ["JobProcesses", "control", "hello", "supervise", "version_problems", "versions"]

log = logging.getLogger("jobmanager_nb")

PLUGIN_NAME = "jobmanager_nb-processes"
GATE_TIMEOUT = 120.0
"""Seconds a placement waits for the kernel's ``go`` before it gives up (the kernel went away)."""

_OUTPUT_INTERVAL = 0.02  # output alone is forwarded at most this often ...
_OUTPUT_BATCH = 256 * 1024  # ... unless this many characters are waiting
_WANTED_CHECK = 1.0  # seconds between two looks at whether the kernel still wants a started run

_runs: dict[tuple[str, str], _Placement] = {}  # (run key, token) -> the placement waiting or running here
_runs_lock = threading.Lock()
_ended: dict[tuple[str, str], None] = {}  # the last placements that ended here (oldest first); under _runs_lock
_ENDED_KEPT = 10_000


def versions() -> dict[str, str]:
    """What must match between the kernel and the workers: Python's minor version, jobmanager_nb's
    and cloudpickle's versions (functions travel by value with cloudpickle)."""
    return {
        "Python": f"{sys.version_info.major}.{sys.version_info.minor}",
        "jobmanager_nb": str(jobmanager_nb.__version__),
        "cloudpickle": str(cloudpickle.__version__),
    }


def version_problems(kernel: dict[str, str], worker: dict[str, str]) -> list[str]:
    """``["jobmanager_nb 0.1.0 here, 0.2.0 there", ...]`` for each version that differs."""
    return [
        f"{name} {kernel.get(name)} in the kernel, {worker.get(name)} on the worker"
        for name in sorted(set(kernel) | set(worker))
        if kernel.get(name) != worker.get(name)
    ]


async def hello(kernel_versions: dict[str, str], dask_worker: Worker) -> dict[str, str]:
    """Run on every worker when a DaskExecutor connects (``Client.run``): say which versions the
    worker runs and, when they match the kernel's, start the worker's ProcessExecutor (its fork
    server and spares) ahead of the first run."""
    here = versions()
    if not version_problems(kernel_versions, here):
        plugin = await _ensure_plugin(dask_worker)
        plugin.executor(dask_worker)
    return here


class JobProcesses(WorkerPlugin):
    """The Dask worker's :class:`ProcessExecutor`, made on first use and shut down (its jobs killed)
    when the worker closes. Runs still going then end ``lost``: their worker went away."""

    def __init__(self) -> None:
        self._executor: ProcessExecutor | None = None
        self._lock = threading.Lock()
        self.closing = False

    def executor(self, worker: Worker) -> ProcessExecutor:
        """The worker's ProcessExecutor (started now if need be). Raises RuntimeError once closing."""
        with self._lock:
            if self.closing:
                raise RuntimeError(f"the Dask worker {worker.address} is closing")
            if self._executor is None:
                threads = max(1, int(worker.state.nthreads))
                self._executor = ProcessExecutor(max_workers=2 * threads + 2, spares=min(2, threads))
            return self._executor

    def teardown(self, worker: Worker) -> None:
        """The worker closes: kill the jobs still running here, stop the fork server and spares."""
        with self._lock:
            self.closing = True
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(timeout=0)


async def _ensure_plugin(worker: Worker) -> JobProcesses:
    """The worker's JobProcesses plugin, added now if need be (on the worker's event loop: the check
    and the addition happen with no await between them, so two callers never add two)."""
    plugin = worker.plugins.get(PLUGIN_NAME)
    if isinstance(plugin, JobProcesses):
        return plugin
    plugin = JobProcesses()
    await worker.plugin_add(plugin=plugin, name=PLUGIN_NAME, catch_errors=False)
    return plugin


def _job_processes(worker: Worker) -> JobProcesses:
    """The worker's JobProcesses plugin, from a task's thread."""
    plugin = worker.plugins.get(PLUGIN_NAME)
    if isinstance(plugin, JobProcesses):
        return plugin
    from distributed.utils import sync

    result: JobProcesses = sync(worker.loop, _ensure_plugin, worker)
    return result


def control(batch: dict[str, list[tuple[str, str, str, Any]]], dask_worker: Worker) -> list[bool]:
    """Deliver the kernel's instructions to the placements on this worker, in order (run by
    ``Client.run`` on the worker's event loop: never blocks). ``batch`` maps worker addresses to
    ``(run key, token, op, argument)`` with op ``go``, ``no``, ``message`` (pickle bytes),
    ``cancel`` (grace or None) or ``kill``. Returns, for each, whether its placement was here (a
    placement that ended by itself counts: its own events say how)."""
    delivered = []
    for key, token, op, argument in batch.get(dask_worker.address, ()):
        with _runs_lock:
            placement = _runs.get((key, token))
            ended = (key, token) in _ended
        if placement is not None:
            placement.control(op, argument)
        delivered.append(placement is not None or ended)
    return delivered


def supervise(spec: dict[str, Any]) -> str:
    """The Dask task of one run (see the module docstring). Returns how it ended here: ``ended``
    (its events, up to ``exited``, were forwarded), ``refused`` (not this placement), ``no-answer``
    (the kernel never answered), or ``failed`` (it could not start here, and the kernel was told)."""
    worker = get_worker()
    placement = _Placement(spec, worker)
    problem = placement.check()
    if problem is not None:
        placement.send([WorkerEvent("exited", spec["run_id"], outcome=RunOutcome("failed", error=problem))])
        return "failed"
    if not placement.prepare():
        return "failed"
    ident = (placement.key, placement.token)
    with _runs_lock:
        _runs[ident] = placement
    try:
        placement.announce()
        return placement.forward(GATE_TIMEOUT)
    finally:
        with _runs_lock:
            _runs.pop(ident, None)
            _ended[ident] = None
            while len(_ended) > _ENDED_KEPT:
                del _ended[next(iter(_ended))]
        placement.clean_up()


class _Placement:
    """One placement of one run on this worker: its gate, its local run, the events to forward."""

    def __init__(self, spec: dict[str, Any], worker: Worker) -> None:
        self.spec = spec
        self.task: OffloadedTask = spec["task"]
        self.key: str = spec["key"]
        self.topic: str = spec["topic"]
        self.token = uuid.uuid4().hex
        self.worker = worker
        self.address: str = worker.address
        self._changed = threading.Condition()  # guards what follows; notified on every change
        self._answer: str | None = None
        self._handle: Any = None  # the local run (held until "go")
        self._events: list[WorkerEvent] = []
        self._started = False
        self._plugin: JobProcesses | None = None
        self._temp_dir: str | None = None

    # --- before the gate ---------------------------------------------------------------------------

    def check(self) -> str | None:
        """Why the run cannot start on this worker (the text of its error), or None."""
        name = self.task.name
        problems = version_problems(self.spec["versions"], versions())
        if problems:
            return (
                f'job "{name}" cannot run on the Dask worker {self.address}: its versions differ from the '
                f"kernel's ({'; '.join(problems)}); install the same versions on the workers"
            )
        if self.task.target_kind == "script" and self.spec.get("source") is None:
            path = str(self.task.target)
            if not os.path.exists(path):
                return (
                    f'job "{name}": the script "{path}" does not exist on the Dask worker {self.address}; '
                    "copy it there at the same path, or create the executor with "
                    "DaskExecutor(..., ship_scripts=True) to send the script's source with each run"
                )
        return None

    def prepare(self) -> bool:
        """Hand the job to the worker's ProcessExecutor, held: a process gets it ready (its target
        loaded) while the kernel is asked, and starts it only on ``go``. False if that failed (and
        the kernel was told)."""
        try:
            self._plugin = _job_processes(self.worker)
            executor = self._plugin.executor(self.worker)
            self._handle = executor.submit(self._local_task(), self._on_local_event, hold=True)
        except Exception as exc:
            reason = f"the Dask worker {self.address} could not start the job's process: {type(exc).__name__}: {exc}"
            self.send([WorkerEvent("exited", self.task.run_id, outcome=RunOutcome("failed", error=reason))])
            return False
        return True

    def announce(self) -> None:
        self._log({"r": self.key, "t": self.token, "a": self.address, "ready": True})

    def control(self, op: str, argument: Any) -> None:
        """One instruction from the kernel (on the worker's event loop: the local run's methods
        never wait)."""
        handle = self._handle
        if op in ("go", "no"):
            with self._changed:
                if self._answer is not None:
                    return
                self._answer = op
                self._changed.notify()
            if op == "go":
                handle.release()
            else:
                handle.cancel()  # it never starts
            return
        _apply(handle, op, argument)

    # --- forwarding ----------------------------------------------------------------------------------

    def forward(self, timeout: float) -> str:
        """Forward the local run's events until its ``exited`` (returns ``ended``). Before ``go`` only
        an ``exited`` (it could not be prepared) is forwarded; ``no`` (``refused``), no answer within
        ``timeout`` seconds (``no-answer``) or a task the kernel released end the wait, and the
        local run with it."""
        deadline = time.monotonic() + timeout
        last = 0.0
        next_check = time.monotonic() + _WANTED_CHECK
        killed = False
        while True:
            with self._changed:
                while True:
                    now = time.monotonic()
                    answer = self._answer
                    if answer == "no":
                        return "refused"
                    events = self._events
                    if answer is None:
                        if any(e.kind == "exited" for e in events):
                            break
                        if now >= deadline or not self._still_wanted():
                            self._answer = "no"
                            self._handle.cancel()
                            return "no-answer" if now >= deadline else "refused"
                        self._changed.wait(0.25)
                        continue
                    if events and (
                        any(e.kind != "output" for e in events)
                        or now - last >= _OUTPUT_INTERVAL
                        or sum(len(e.payload[1]) for e in events) >= _OUTPUT_BATCH
                    ):
                        break
                    if not killed and now >= next_check:
                        next_check = now + _WANTED_CHECK
                        if not self._still_wanted():
                            # The kernel released the task (it lost the scheduler, or ended the run
                            # as lost): nobody hears this run any more, so it must not go on running.
                            killed = True
                            self._handle.kill()
                            continue
                    wait = next_check - now if not events else min(next_check - now, _OUTPUT_INTERVAL - (now - last))
                    self._changed.wait(max(0.0, wait))
                self._events = []
            last = time.monotonic()
            batch = [self._translate(e) for e in events]
            if answer is None:
                batch = [e for e in batch if e.kind == "exited"]
            self.send(batch)
            if any(e.kind == "exited" for e in batch):
                return "ended"

    def _still_wanted(self) -> bool:
        """False once the kernel released this run's task (it is not in the worker's tasks any more)."""
        state = getattr(self.worker, "state", None)
        tasks = getattr(state, "tasks", None)
        if not isinstance(tasks, dict):
            return True
        task = tasks.get(self.key)
        return task is not None and getattr(task, "state", None) not in ("cancelled", "released", "forgotten")

    def _local_task(self) -> OffloadedTask:
        """The task as this worker runs it: the kernel's working directory and ``sys.path`` entries
        where they exist here (else the worker's own), a shipped script written to a file here."""
        task = self.task
        cwd = task.cwd if task.cwd and os.path.isdir(task.cwd) else None
        sys_path = tuple(p for p in task.sys_path if p == "" or os.path.exists(p))
        target = task.target
        source: bytes | None = self.spec.get("source")
        if source is not None:
            target = self._place_script(str(task.target), source)
        return replace(task, cwd=cwd, sys_path=sys_path, target=target)

    def _place_script(self, path: str, source: bytes) -> str:
        """Where to run a shipped script: its own path when the same file is there, else a copy in a
        temporary directory (removed when the run ends)."""
        with contextlib.suppress(OSError), open(path, "rb") as existing:
            if existing.read() == source:
                return path
        self._temp_dir = tempfile.mkdtemp(prefix="jobmanager_nb-script-")
        copy = os.path.join(self._temp_dir, os.path.basename(path) or "script.py")
        with open(copy, "wb") as file:
            file.write(source)
        return copy

    def _on_local_event(self, event: WorkerEvent) -> None:
        """The local executor's listener (its I/O thread): queue the event for forwarding."""
        with self._changed:
            self._events.append(event)
            self._changed.notify()

    def _translate(self, event: WorkerEvent) -> WorkerEvent:
        """The local event as the kernel should see it: ``started`` says which Dask worker; a run
        ended by this worker closing is lost; a reference that did not import here says so."""
        if event.kind == "started":
            self._started = True
            return replace(event, location=self.address)
        if event.kind != "exited" or event.outcome is None:
            return event
        outcome = event.outcome
        name = self.task.name
        if self._plugin is not None and self._plugin.closing and outcome.status == "failed":
            if self._started:
                reason = lost_reason(name, f"the Dask worker {self.address} closed while the job ran")
                lost = RunOutcome("failed", error=reason, exit_code=outcome.exit_code, lost=True)
                return replace(event, outcome=lost)
            reason = f'Worker for job "{name}": the Dask worker {self.address} closed before the job started'
            return replace(event, outcome=RunOutcome("failed", error=reason))
        error = outcome.error or ""
        if not self._started and self.task.target_kind == "reference" and _is_import_error(error):
            last_line = error.rstrip().splitlines()[-1] if error.strip() else error
            error = (
                f'job "{name}": "{self.task.target!s}" does not import on the Dask worker {self.address} '
                f"({last_line}); install its module on the workers, or pass the function itself to add_job "
                "so that it travels by value"
            )
            return replace(event, outcome=replace(outcome, error=error))
        return event

    def send(self, events: list[WorkerEvent]) -> None:
        """Forward events to the kernel (in order: one worker's events on one topic keep their order)."""
        self._log({"r": self.key, "t": self.token, "a": self.address, "e": cloudpickle.dumps(events)})

    def _log(self, message: dict[str, Any]) -> None:
        try:
            self.worker.log_event(self.topic, message)
        except Exception:
            log.exception("jobmanager_nb: could not report job %r to the kernel", self.task.name)

    def clean_up(self) -> None:
        if self._temp_dir is not None:
            shutil.rmtree(self._temp_dir, ignore_errors=True)


def _apply(handle: RunHandle, op: str, argument: Any) -> None:
    try:
        if op == "message":
            handle.post_message(pickle.loads(argument))
        elif op == "cancel":
            handle.cancel(argument)
        elif op == "kill":
            handle.kill()
    except Exception:
        log.exception("jobmanager_nb: could not deliver %r to a job", op)


def _is_import_error(error: str) -> bool:
    last = error.rstrip().splitlines()[-1] if error.strip() else ""
    return last.startswith(("ModuleNotFoundError", "ImportError"))
