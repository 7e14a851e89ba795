"""Offloaded jobs in local worker processes: one fresh process per run, started in milliseconds.

:class:`ProcessExecutor` keeps a few *spare* workers that are already running and asleep on their
socket (forked from a preloaded fork server, see :mod:`jobmanager_nb.processes.zygote`); a new run is handed
to a spare at once and a replacement is started behind it. No process ever runs two jobs. At most
``max_workers`` runs are running at a time; the rest wait in FIFO order.

One background I/O thread watches every worker's socket, output pipes and exit, and calls each
run's listener, in order: ``started``, then ``message`` / ``progress`` / ``output`` as they happen,
and exactly one ``exited`` last.

Starting is a gate: the worker prepares the task (environment, working directory, ``sys.path``,
target loaded), says ``ready`` and waits; the I/O thread answers ``go`` (and only then emits
``started``) unless the run was cancelled or killed in the meantime, in which case it answers
``abort`` and the job's code never runs. So a cancel that arrives before ``started`` always means
"never started", and one after it is a cancel of a running job.

``submit``, :class:`RunHandle` methods and ``shutdown`` may be called from any thread (a listener
included); they never wait for a process to start.

Worker processes ignore SIGINT and live in their own session, so the notebook's Interrupt button
does not reach them; they end themselves when this process dies, spares included.
"""

from __future__ import annotations

import collections
import contextlib
import functools
import logging
import os
import pickle
import select
import selectors
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, Literal

from jobmanager_nb.executors.base import Executor, OffloadedTask, RunHandle, RunOutcome, WorkerEvent, pickle_message
from jobmanager_nb.processes.exits import external_signal_reason, is_self_inflicted, lost_reason, returncode_reason
from jobmanager_nb.processes.launchers import ForkServerLauncher, Launcher, Notice, SpawnLauncher
from jobmanager_nb.processes.wire import encode
from jobmanager_nb.processes.worker_process import Stream, WorkerProcess

__all__ = ["DEFAULT_PRELOAD", "ProcessExecutor"]

log = logging.getLogger("jobmanager_nb")

DEFAULT_PRELOAD: tuple[str, ...] = ("cloudpickle", "json", "traceback", "runpy", "inspect", "asyncio")
"""Modules the fork server imports (in this order, while it has nothing else to do), so that the workers
forked from it need not: cloudpickle for functions defined in a notebook, json for data, traceback
for errors, runpy for scripts, inspect and asyncio for some callables and ``async def`` jobs."""

_STREAMS: tuple[Stream, ...] = ("stdout", "stderr")
_SPARE_DEATHS_TOLERATED = 3
_STOP_GRACE = 1.0


class _Run(RunHandle):
    """One submitted run: its task, its listener, and where it stands."""

    def __init__(self, executor: ProcessExecutor, task: OffloadedTask, listener: Callable[[WorkerEvent], None]) -> None:
        self.run_id = task.run_id
        self.name = task.name
        self.listener = listener
        self.task_frame = encode(("task", executor._task_spec(task)))
        self.outbox: collections.deque[bytes] = collections.deque()
        self.process: WorkerProcess | None = None
        # The start gate: None until decided (under the executor's lock), then "go" or "abort";
        # the worker is told once it has the task (see ProcessExecutor._flush).
        self.answer: Literal["go", "abort"] | None = None
        self.abort_outcome: RunOutcome | None = None  # how an aborted run ends, unless it was killed
        self.started = False  # answer == "go"
        self.settled = False
        self.cancel_sent = False
        self.cancel_deadline: float | None = None
        self.cancel_grace: float | None = None
        self.cancel_timed_out = False
        self.kill_reason: str | None = None
        # A worker that dies before the job starts (a spare killed while idle) is replaced: enough
        # times to get past every spare that may have died at the same moment.
        self.retries_left = executor.spares + 1
        self.handing_over = False  # handed to a worker that has not been told "go" yet
        # A held run (submit(..., hold=True)) is prepared but not told "go" until release(); its
        # worker's "ready" is noted here meanwhile. Guarded by the executor's lock.
        self.held = False
        self.ready: tuple[WorkerProcess, int] | None = None
        self._executor = executor
        self._done = threading.Event()

    def post_message(self, message: Any) -> None:
        """Send ``message`` to the job's ``worker.on_message`` callbacks (held here until the job is
        started, then sent in order). Raises ``TypeError`` if it cannot be pickled; does nothing once
        the run ended."""
        payload = pickle_message(self.name, message)
        if self.settled:
            return
        self.outbox.append(encode(("message", payload)))
        self._executor._flush(self)

    def cancel(self, grace: float | None = None) -> None:
        """Send ``"cancel"`` to the running job; with a ``grace`` in seconds, kill the worker if it is
        still running then. A run not started yet (waiting for a free slot, or its worker still
        preparing it) ends at once, failed and cancelled ("cancelled before it started"), and none
        of its job's code runs."""
        self._executor._cancel(self, grace)

    def kill(self) -> None:
        """SIGKILL the worker (and what it started) now; the run fails with "was killed" (or "was
        killed before it started", and then none of its job's code ran)."""
        self._executor._kill(self)

    def release(self) -> None:
        """Let a run submitted with ``hold=True`` start: its worker is told ``go`` as soon as it is
        ready (at once if it is already waiting). Does nothing for a run not held, or released."""
        self._executor._release(self)

    @property
    def done(self) -> bool:
        """True once the ``exited`` event has been delivered."""
        return self._done.is_set()

    @property
    def pid(self) -> int | None:
        """The worker's process id, once it is known (``None`` while queued)."""
        process = self.process
        return process.pid if process is not None else None

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the ``exited`` event has been delivered; False on timeout."""
        return self._done.wait(timeout)

    def __repr__(self) -> str:
        state = "done" if self.done else "running" if self.process is not None else "queued"
        return f"<RunHandle {self.name!r} run_id={self.run_id!r} {state}>"


class ProcessExecutor(Executor):
    """Runs each offloaded run in a fresh local process.

    ``max_workers``: runs running at once (default: twice the CPU count); the rest queue, FIFO.
    ``spares``: idle workers kept started ahead of need, so a run starts in about a millisecond;
    0 starts each worker on demand. ``start_method``: ``"forkserver"`` (the default on POSIX;
    workers are forked from a preloaded server, a few ms each) or ``"spawn"`` (a fresh interpreter
    per worker, tens of ms). ``output_limit``: bytes of stdout+stderr forwarded per run; beyond it
    one note says the rest was dropped. ``linger``: seconds a worker may keep running after it
    posted ``"done"`` or ``"cancelled"`` (or returned) before it is killed. ``preload``: modules
    the fork server imports once for all workers (see :data:`DEFAULT_PRELOAD`).

    Creating the executor starts its I/O thread, the fork server and the spares in the background.
    Call :meth:`shutdown` when done with it (they also end by themselves when this process dies).
    """

    def __init__(
        self,
        *,
        max_workers: int | None = None,
        spares: int = 2,
        start_method: str | None = None,
        output_limit: int = 1 << 20,
        linger: float = 1.0,
        preload: Sequence[str] | None = None,
    ) -> None:
        if os.name != "posix":
            raise NotImplementedError(
                "ProcessExecutor needs a POSIX system (Linux, macOS); run jobs inline with offloaded=False"
            )
        if max_workers is None:
            max_workers = max(2, (os.cpu_count() or 1) * 2)
        if not isinstance(max_workers, int) or max_workers < 1:
            raise ValueError(f"max_workers must be a positive integer, not {max_workers!r}")
        if not isinstance(spares, int) or spares < 0:
            raise ValueError(f"spares must be 0 or a positive integer, not {spares!r}")
        if start_method is None:
            start_method = "forkserver" if hasattr(os, "fork") else "spawn"
        if start_method not in ("forkserver", "spawn"):
            raise ValueError(f'start_method must be "forkserver" or "spawn", not {start_method!r}')
        if output_limit < 0:
            raise ValueError(f"output_limit must be 0 or more bytes, not {output_limit!r}")
        self.max_workers = max_workers
        self.spares = spares
        self.start_method = start_method
        self._output_limit = output_limit
        self._linger = float(linger)
        self._launcher: Launcher = (
            ForkServerLauncher(tuple(DEFAULT_PRELOAD if preload is None else preload))
            if start_method == "forkserver"
            else SpawnLauncher()
        )

        self._lock = threading.Lock()
        self._queue: collections.deque[_Run] = collections.deque()  # guarded by _lock
        self._idle: collections.deque[WorkerProcess] = collections.deque()  # guarded by _lock
        self._running = 0  # processes holding a run, until they exit; guarded by _lock
        self._commands: list[Callable[[], None]] = []  # work for the I/O thread; guarded by _lock
        self._closing = False  # guarded by _lock
        self._spare_target = spares
        self._spare_deaths = 0
        self._handing_over = 0  # runs handed to a worker that has not said "started" yet; guarded by _lock

        self._processes: set[WorkerProcess] = set()  # I/O thread only
        self._selector = selectors.DefaultSelector()
        self._control: Any = None  # what the launcher gave the selector to watch (see _watch_launcher)
        self._server_output: Any = None
        wake_r, wake_w = os.pipe()
        os.set_blocking(wake_r, False)
        os.set_blocking(wake_w, False)
        self._wake_r: int | None = wake_r
        self._wake_w: int | None = wake_w
        self._selector.register(wake_r, selectors.EVENT_READ, (self._on_wake, None))
        self._thread = threading.Thread(target=self._loop, name="jobmanager_nb-executor", daemon=True)
        self._thread.start()

    # --- public API --------------------------------------------------------------------------------

    def submit(self, task: OffloadedTask, listener: Callable[[WorkerEvent], None], *, hold: bool = False) -> _Run:
        """Queue ``task`` and return its handle at once; ``listener`` gets its events in order,
        from the executor's I/O thread. Raises ``RuntimeError`` after :meth:`shutdown`.

        ``hold=True`` prepares the run in a worker (environment, target loaded: a failure there ends
        it) but starts none of its job's code until ``handle.release()``; cancelling or killing it
        before then ends it as never started. (DaskExecutor overlaps this with its own start gate.)"""
        _check_task(task)
        try:
            run = _Run(self, task, listener)
        except Exception as exc:
            raise TypeError(
                f'job "{task.name}": its task cannot be sent to a worker ({type(exc).__name__}: {exc})'
            ) from exc
        run.held = hold
        with self._lock:
            if self._closing:
                raise RuntimeError("this ProcessExecutor has been shut down; create a new one")
            self._queue.append(run)
            to_flush = self._dispatch_locked()
        for queued in to_flush:
            self._flush(queued)
        self._wake()
        return run

    def shutdown(self, timeout: float | None = None) -> None:
        """Cancel every run (queued ones end at once), wait up to ``timeout`` seconds for running
        ones (``None``: as long as they take), kill what is left, stop the spares and the fork
        server, and return when every process has gone. Idempotent; raises nothing for job
        failures. Called from a listener, it starts all this and returns without waiting."""
        with self._lock:
            first = not self._closing
            self._closing = True
            queued = list(self._queue) if first else []
            self._queue.clear()
            if first:
                for run in queued:
                    self._commands.append(functools.partial(self._settle, run, _cancelled_before_start()))
                self._commands.append(lambda: self._cancel_running(timeout))
        self._wake()
        if threading.current_thread() is self._thread:
            return
        self._thread.join()

    def __repr__(self) -> str:
        with self._lock:
            state = "shut down" if self._closing else "running"
            queued, running, idle = len(self._queue), self._running, len(self._idle)
        return (
            f"<ProcessExecutor {self.start_method} {state}: {running} running, {queued} queued, "
            f"{idle} spare, max_workers={self.max_workers}>"
        )

    # --- called by run handles (any thread) ------------------------------------------------------

    def _task_spec(self, task: OffloadedTask) -> dict[str, Any]:
        try:
            cwd = os.path.abspath(task.cwd) if task.cwd else os.getcwd()
        except OSError:
            cwd = None  # this process's directory was deleted: the worker stays where it is
        target = task.target
        if task.target_kind == "script":
            target = os.path.abspath(os.path.join(cwd or "", os.fspath(target)))  # type: ignore[arg-type]
        return {
            "run_id": task.run_id,
            "name": task.name,
            "target_kind": task.target_kind,
            "target": target,
            "data_json": task.data_json,
            "run_info": dict(task.run_info),
            "cwd": cwd,
            "sys_path": [p for p in task.sys_path if isinstance(p, str)],
            "parent_sys_path": [p for p in sys.path if isinstance(p, str)],
            "env": dict(os.environ),
            "output_limit": self._output_limit,
        }

    def _flush(self, run: _Run) -> None:
        """Queue what the run's worker has not been sent yet, in order: the task, the start gate's
        answer once decided, and, after ``go`` only, the messages posted to the run. A run aborted
        before its task was sent sends ``stop`` instead, so its worker never sees the task.

        Never waits for the worker to read (any thread, the I/O thread included): the frames go to
        the process's outgoing buffer, what the socket takes is written at once, and the I/O thread
        is woken to write the rest when the socket is writable.

        What was queued is recorded on the process (under its send lock), not on the run: a run
        whose worker died before it started is handed to another one, while a thread may still be
        flushing it to the first."""
        process = run.process
        if process is None:
            return
        frames: list[bytes] = []
        with process.send_lock:
            if process.run is not run or process.sock.fileno() < 0:
                return
            if not process.task_sent:
                if run.answer == "abort":
                    frames.append(encode(("stop",)))
                    process.task_sent = process.answer_sent = True
                else:
                    frames.append(run.task_frame)
                    process.task_sent = True
            if run.answer is not None and not process.answer_sent:
                frames.append(encode((run.answer,)))
                process.answer_sent = True
            if run.answer == "go":
                while run.outbox:
                    frames.append(run.outbox.popleft())
            left = False
            for frame in frames:  # (under the reentrant send lock: in order against other threads)
                left = process.enqueue(frame)
        if left and threading.current_thread() is not self._thread:
            self._wake()  # the I/O thread writes the rest (it looks at every process after each step)

    def _cancel(self, run: _Run, grace: float | None) -> None:
        if grace is not None and grace < 0:
            raise ValueError(f"grace must be 0 or more seconds, not {grace!r}")
        send = flush = False
        with self._lock:
            if run.settled:
                return
            if run.process is None:  # still queued: it never starts
                if run in self._queue:
                    self._queue.remove(run)
                    self._commands.append(functools.partial(self._settle, run, _cancelled_before_start()))
            elif run.answer is None:  # handed to a worker that has not been told "go": it never starts
                self._abort_locked(run, _cancelled_before_start())
                self._commands.append(functools.partial(self._settle, run, _cancelled_before_start()))
                flush = True
            elif run.answer == "go":
                send = not run.cancel_sent
                run.cancel_sent = True
                if grace is not None:
                    deadline = time.monotonic() + grace
                    if run.cancel_deadline is None or deadline < run.cancel_deadline:
                        run.cancel_deadline = deadline
                        run.cancel_grace = grace
        if flush:
            self._flush(run)
        if send:
            run.post_message("cancel")
        self._wake()

    def _kill(self, run: _Run) -> None:
        flush = False
        with self._lock:
            if run.settled:
                return
            process = run.process
            if process is None:
                if run in self._queue:
                    self._queue.remove(run)
                    error = f'Worker for job "{run.name}" was killed before it started'
                    self._commands.append(functools.partial(self._settle, run, RunOutcome("failed", error=error)))
            elif run.kill_reason is None:
                if run.answer is None:
                    self._abort_locked(run, None)
                    flush = True
                before = "" if run.started else " before it started"
                run.kill_reason = f'Worker for job "{run.name}" was killed{before}'
                self._commands.append(process.kill)
        if flush:
            self._flush(run)
        self._wake()

    def _release(self, run: _Run) -> None:
        with self._lock:
            if not run.held:
                return
            run.held = False
            ready, run.ready = run.ready, None
            if ready is not None:  # its worker waits for the answer: the I/O thread gives it
                process, pid = ready
                self._commands.append(functools.partial(self._open_released, process, run, pid))
        self._wake()

    def _open_released(self, process: WorkerProcess, run: _Run, pid: int) -> None:
        if run.process is process and not run.settled and not process.exited:
            self._open_gate(process, run, pid)

    def _abort_locked(self, run: _Run, outcome: RunOutcome | None) -> None:
        """Close the start gate of a handed-over run for good: its worker is told ``abort`` (or
        ``stop``) and the job's code never runs. ``outcome`` is how the run ends (None: by its kill)."""
        run.answer = "abort"
        run.abort_outcome = outcome

    def _wake(self) -> None:
        with self._lock:
            if self._wake_w is None:
                return
            with contextlib.suppress(OSError):  # a full pipe means it is awake already
                os.write(self._wake_w, b"\0")

    # --- the I/O thread ----------------------------------------------------------------------------

    def _loop(self) -> None:
        try:
            while True:
                try:
                    self._step()
                except Exception:
                    log.exception("jobmanager_nb: internal error in the executor")
                if self._finished():
                    break
                for key, _ in self._selector.select(self._next_timeout()):
                    handler, argument = key.data
                    try:
                        handler(argument)
                    except Exception:
                        log.exception("jobmanager_nb: internal error while watching a worker")
                        if isinstance(argument, WorkerProcess):
                            self._fail_process(argument, "internal error while watching the worker")
        except BaseException:
            log.critical("jobmanager_nb: the executor's I/O thread failed; killing its workers", exc_info=True)
        finally:
            self._teardown()

    def _step(self) -> None:
        """Everything that is not a reaction to a descriptor: commands, deadlines, launching."""
        with self._lock:
            commands, self._commands = self._commands, []
        for command in commands:
            try:
                command()
            except Exception:
                log.exception("jobmanager_nb: internal error in the executor")
        now = time.monotonic()
        for process in list(self._processes):
            run = process.run
            cancel_deadline = _cancel_deadline(process)
            if run is not None and cancel_deadline is not None and now >= cancel_deadline:
                run.kill_reason = (
                    f'Worker for job "{run.name}" did not stop within {run.cancel_grace:g} s after cancel; killed'
                )
                run.cancel_timed_out = True
                process.kill()
            deadline = _linger_deadline(process)
            if deadline is not None and now >= deadline:
                process.kill()
        self._launch_and_dispatch()
        for process in list(self._processes):
            self._pump(process)

    def _pump(self, process: WorkerProcess) -> None:
        """Write what the socket takes of the process's outgoing bytes (never waiting), and watch it
        for writing while bytes are left, only then (I/O thread)."""
        left = process.write_pending() if process.has_pending else False
        if left != process.want_write and process.conn_open and not process.exited:
            events = selectors.EVENT_READ | (selectors.EVENT_WRITE if left else 0)
            with contextlib.suppress(KeyError, ValueError, OSError):
                self._selector.modify(process.sock, events, (self._on_conn, process))
                process.want_write = left

    def _launch_and_dispatch(self) -> None:
        with self._lock:
            closing = self._closing
            if closing:
                for spare in self._idle:
                    if not spare.stopping:
                        spare.stop()
                        spare.deadline = time.monotonic() + _STOP_GRACE
                return
            to_flush = self._dispatch_locked()
            free = self.max_workers - self._running
            # Replacing a spare that was just handed a run waits until that run has started: forking
            # competes for the CPU with the job's own start, which is what spares are there to speed up.
            spares = 0 if self._handing_over else self._spare_target
            wanted = spares + min(len(self._queue), free)
            room = self.max_workers + self.spares - len(self._processes)
            launches = max(0, min(wanted - len(self._idle), room))
        for run in to_flush:
            self._flush(run)
        for _ in range(launches):
            process = self._launch()
            if process is None:
                break
            with self._lock:
                self._idle.append(process)
                to_flush = self._dispatch_locked()
            for run in to_flush:
                self._flush(run)

    def _dispatch_locked(self) -> list[_Run]:
        assigned = []
        while self._queue and self._idle and self._running < self.max_workers:
            run = self._queue.popleft()
            self._assign(self._idle.popleft(), run)
            assigned.append(run)
        return assigned

    def _assign(self, process: WorkerProcess, run: _Run) -> None:
        process.run = run
        run.process = process
        self._running += 1
        run.handing_over = True
        self._handing_over += 1

    def _handed_over(self, run: _Run) -> None:
        """The run started (or ended, or went back to the queue): its hand-over is over."""
        with self._lock:
            if run.handing_over:
                run.handing_over = False
                self._handing_over -= 1

    def _launch(self) -> WorkerProcess | None:
        """Start one worker; None if it cannot be (then the runs waiting for one have failed)."""
        try:
            process = WorkerProcess(self._output_limit)  # its socket and pipes: out of descriptors?
        except Exception as exc:
            self._launch_failed(exc)
            return None
        try:
            notices = self._launcher.launch(process)
        except Exception as exc:
            process.close()
            if isinstance(self._launcher, ForkServerLauncher):
                log.warning("jobmanager_nb: the worker fork server failed (%s); using spawn instead", exc)
                self._use_spawn()
                return self._launch()
            self._launch_failed(exc)
            return None
        self._processes.add(process)
        watched = True
        try:
            self._selector.register(process.sock, selectors.EVENT_READ, (self._on_conn, process))
            if process.pidfd is not None:
                self._selector.register(process.pidfd, selectors.EVENT_READ, (self._on_pidfd, process))
        except Exception as exc:  # the worker cannot be watched: it is stopped, never used
            watched = False
            process.stopping = True
            process.kill()  # (a fork server's worker whose pid is not known yet: once it is)
            if process.popen is not None:
                self._on_exit(process, process.popen.wait())
            else:
                self._unregister(process.sock)  # its exit comes as the fork server's notice
            self._launch_failed(exc)
        self._watch_launcher()
        for notice in notices:
            self._on_notice(notice)
        return process if watched else None

    def _launch_failed(self, exc: Exception) -> None:
        """No worker could be started: fail every queued run that was waiting for one now (the others
        wait for a slot, and ask for a worker again when one frees up), so that each run ends."""
        reason = f"could not start a worker process: {type(exc).__name__}: {exc}"
        log.error("jobmanager_nb: %s", reason)
        with self._lock:
            count = min(len(self._queue), max(0, self.max_workers - self._running))
            failed = [self._queue.popleft() for _ in range(count)]
        for run in failed:
            self._settle(run, RunOutcome("failed", error=f'Worker for job "{run.name}": {reason}'))

    def _watch_launcher(self) -> None:
        """Make the selector watch the launcher's control socket and helper stderr of the moment
        (and no longer any previous ones); called after every launcher call that may change them."""
        control = self._launcher.control_socket()
        if control is not self._control:
            if self._control is not None:
                self._unregister(self._control)
            self._control = control
            if control is not None:
                self._selector.register(control, selectors.EVENT_READ, (self._on_control, None))
        output = self._launcher.server_output()
        if output is not self._server_output:
            if self._server_output is not None:
                self._unregister(self._server_output)
            self._server_output = output
            if output is not None:
                self._selector.register(output, selectors.EVENT_READ, (self._on_server_output, None))

    def _use_spawn(self) -> None:
        old = self._launcher
        self._launcher = SpawnLauncher()
        self.start_method = "spawn"
        self._watch_launcher()  # before the old launcher closes what the selector watched
        for notice in old.close(timeout=0.5):
            self._on_notice(notice)

    def _cancel_running(self, grace: float | None) -> None:
        for process in list(self._processes):
            run = process.run
            if run is not None and not run.settled:
                self._cancel(run, grace)

    # --- reactions ---------------------------------------------------------------------------------

    def _on_wake(self, _: object) -> None:
        assert self._wake_r is not None
        try:
            while os.read(self._wake_r, 4096):
                pass
        except BlockingIOError:
            pass

    def _on_server_output(self, _: object) -> None:
        self._launcher.drain_server_output()
        self._watch_launcher()

    def _on_control(self, _: object) -> None:
        notices = self._launcher.on_control()
        self._watch_launcher()
        for notice in notices:
            self._on_notice(notice)
        launcher = self._launcher
        if isinstance(launcher, ForkServerLauncher) and launcher.failed_starts >= 2:
            log.warning("jobmanager_nb: the worker fork server does not start; using spawn instead")
            self._use_spawn()

    def _on_notice(self, notice: Notice) -> None:
        process = notice.process
        if notice.kind == "started":
            if process.kill_requested:
                process.kill()
        elif notice.kind == "exited":
            self._on_exit(process, notice.returncode)
        else:
            self._on_exit(process, None, lost=notice.reason)

    def _on_pidfd(self, process: WorkerProcess) -> None:
        assert process.popen is not None
        self._on_exit(process, process.popen.wait())

    def _on_conn(self, process: WorkerProcess) -> None:
        if process.has_pending:
            self._pump(process)
        frames, eof = process.read_frames()
        for frame in frames:
            self._on_frame(process, frame)
        if eof:
            process.drop_pending()
            process.want_write = False
            self._unregister(process.sock)
            if process.popen is not None and process.pidfd is None:
                self._on_exit(process, process.popen.wait())

    def _collect_leftover_output(self, process: WorkerProcess) -> None:
        """What a worker wrote but did not forward before it died (a crash report, for instance)."""
        for stream in _STREAMS:
            texts = process.read_output(stream)
            self._emit_output(process, stream, texts)

    def _emit_output(self, process: WorkerProcess, stream: Stream, texts: list[str]) -> None:
        run = process.run
        if run is None or run.settled:
            if texts:  # a spare's start-up trouble, or output after "done": kept for the log only
                process.stray_output = (process.stray_output + "".join(texts))[-2000:]
            return
        for text in texts:
            self._emit(run, WorkerEvent("output", run.run_id, payload=(stream, text)))

    def _on_frame(self, process: WorkerProcess, frame: Any) -> None:
        kind = frame[0]
        if kind == "output":
            self._emit_output(process, frame[1], process.feed_output(frame[1], frame[2]))
            return
        run = process.run
        if run is None or run.settled:
            return
        if kind == "ready":
            self._open_gate(process, run, frame[1])
        elif kind == "message":
            message = self._unpickle(run, frame[1], "message")
            self._emit(run, WorkerEvent("message", run.run_id, payload=message))
            if isinstance(message, str) and message == "done":
                self._settle(run, RunOutcome("finished"))
            elif isinstance(message, str) and message == "cancelled":
                self._settle(run, _cancelled_outcome())
        elif kind == "progress":
            self._emit(run, WorkerEvent("progress", run.run_id, payload=(frame[1], frame[2])))
        elif kind == "end":
            if run.answer == "abort":
                return  # its preparation failed after all; the abort (or the kill) settles it
            end = frame[1]
            result = None if end["result"] is None else self._unpickle(run, end["result"], "result")
            self._settle(
                run,
                RunOutcome(end["status"], result=result, error=end["error"], exit_code=end["exit_code"]),
            )

    def _open_gate(self, process: WorkerProcess, run: _Run, pid: int) -> None:
        """The worker has prepared ``run`` and waits: answer ``go`` and emit ``started``, unless the
        run was cancelled or killed before (then it was answered ``abort`` already) or the executor
        is shutting down (then it is aborted now, as a cancelled run). A worker that died after it
        said ``ready`` (its frame read only now) is answered nothing: the run never started, and
        its exit hands it to another worker."""
        if run.answer is None and _has_exited(process):
            return
        with self._lock:
            if run.answer is None:
                if self._closing:
                    self._abort_locked(run, _cancelled_before_start())
                elif run.held:
                    run.ready = (process, pid)  # answered by release()
                    return
                else:
                    run.answer = "go"
                    run.started = True
            go = run.started
        self._flush(run)
        if go:
            self._handed_over(run)
            self._emit(run, WorkerEvent("started", run.run_id, payload=pid, location="local"))
        elif run.abort_outcome is not None:
            self._settle(run, run.abort_outcome)

    def _unpickle(self, run: _Run, data: bytes, what: str) -> Any:
        try:
            return pickle.loads(data)
        except Exception as exc:
            note = f"<the job's {what} could not be unpickled here: {type(exc).__name__}: {exc}>"
            self._emit(run, WorkerEvent("output", run.run_id, payload=("stderr", f"[jobmanager_nb] {note}\n")))
            return note

    def _on_exit(self, process: WorkerProcess, returncode: int | None, lost: str | None = None) -> None:
        with self._lock:
            if process.exited:
                return
            process.exited = True
            process.returncode = returncode
            if process in self._idle:
                self._idle.remove(process)
            run = process.run
        if lost is not None or returncode != 0:
            # What the job started is in the worker's process group (the worker leads it), and
            # nothing else will end it now: the worker's own clean-up on losing us did not run.
            _kill_group(process.pid)
        if process.conn_open:
            frames, _ = process.read_frames()
            for frame in frames:
                self._on_frame(process, frame)
        self._collect_leftover_output(process)
        retry = False
        if run is not None and not run.settled:
            self._handed_over(run)
            with self._lock:
                retry = (
                    run.answer is None
                    and run.retries_left > 0
                    and run.kill_reason is None
                    and not run.cancel_sent
                    and not self._closing
                )
                if retry:
                    run.retries_left -= 1
                    run.process = None
                    self._queue.appendleft(run)
            if retry:
                log.warning(
                    'jobmanager_nb: the worker for job "%s" ended before the job started (%s); trying another one',
                    run.name,
                    lost or returncode_reason(run.name, returncode if returncode is not None else -1),
                )
            else:
                self._settle(run, self._exit_outcome(run, returncode, lost, process.kill_requested))
        with self._lock:
            if run is not None:
                self._running -= 1
        self._forget(process)
        if run is None and not process.stopping and not self._closing and lost is None:
            # (a spare lost with its fork server says nothing about spares: the server is replaced)
            self._spare_deaths += 1
            log.warning(
                "jobmanager_nb: a spare worker (pid %s) ended with code %s%s",
                process.pid,
                returncode,
                f"; its last output:\n{process.stray_output}" if process.stray_output else "",
            )
            if self._spare_deaths >= _SPARE_DEATHS_TOLERATED and self._spare_target:
                log.warning("jobmanager_nb: spare workers keep dying; starting workers on demand from now on")
                self._spare_target = 0
        elif run is not None and run.started:
            self._spare_deaths = 0

    def _exit_outcome(
        self, run: _Run, returncode: int | None, lost: str | None, killed_by_us: bool = False
    ) -> RunOutcome:
        """How ``run`` ended, from its worker's exit (``returncode``: negative for a signal, None when
        unknown, and then ``lost`` says why). The one place that tells a lost run from a failed one."""
        if run.kill_reason is not None:
            return RunOutcome("failed", error=run.kill_reason, exit_code=returncode, cancelled=run.cancel_timed_out)
        if run.abort_outcome is not None:
            return run.abort_outcome
        if lost is not None or returncode is None:
            reason = lost or "its exit status never came back"
            if not run.started:
                return RunOutcome("failed", error=f'Worker for job "{run.name}" ended before the job started: {reason}')
            return RunOutcome("failed", error=lost_reason(run.name, reason), lost=True)
        if returncode == 0 and run.started:
            return RunOutcome("finished", exit_code=0)
        if run.started and returncode < 0 and not killed_by_us and not is_self_inflicted(-returncode):
            return RunOutcome(
                "failed", error=external_signal_reason(run.name, -returncode), exit_code=returncode, lost=True
            )
        error = returncode_reason(run.name, returncode)
        if not run.started:
            error += " before the job started"
        return RunOutcome("failed", error=error, exit_code=returncode)

    def _settle(self, run: _Run, outcome: RunOutcome) -> None:
        if run.settled:
            return
        run.settled = True
        self._handed_over(run)
        self._emit(run, WorkerEvent("exited", run.run_id, outcome=outcome))
        run._done.set()
        process = run.process
        if process is not None and not process.exited and process.deadline is None:
            process.deadline = time.monotonic() + self._linger

    def _emit(self, run: _Run, event: WorkerEvent) -> None:
        try:
            run.listener(event)
        except Exception:
            log.exception("jobmanager_nb: the listener of job %r raised on its %r event", run.name, event.kind)

    def _fail_process(self, process: WorkerProcess, reason: str) -> None:
        run = process.run
        if run is not None and run.kill_reason is None:
            run.kill_reason = f'Worker for job "{run.name}" was killed: {reason}'
        process.kill()
        self._unregister(process.sock)
        if process.popen is not None and process.pidfd is None:
            self._on_exit(process, process.popen.wait())

    # --- bookkeeping -------------------------------------------------------------------------------

    def _next_timeout(self) -> float | None:
        deadlines = [d for p in self._processes for d in (_linger_deadline(p), _cancel_deadline(p)) if d is not None]
        if not deadlines:
            return None
        return max(0.0, min(deadlines) - time.monotonic())

    def _finished(self) -> bool:
        with self._lock:
            return self._closing and not self._processes and not self._queue and not self._commands

    def _unregister(self, fileobj: Any) -> None:
        with contextlib.suppress(KeyError, ValueError):
            self._selector.unregister(fileobj)

    def _forget(self, process: WorkerProcess) -> None:
        self._unregister(process.sock)
        if process.pidfd is not None:
            self._unregister(process.pidfd)
        process.close()
        self._processes.discard(process)

    def _teardown(self) -> None:
        for process in list(self._processes):
            process.kill()
            run = process.run
            if run is not None and not run.settled:
                error = f'Worker for job "{run.name}" was killed: the executor stopped'
                self._settle(run, RunOutcome("failed", error=error))
            if process.popen is not None:
                with contextlib.suppress(Exception):
                    process.popen.wait(timeout=_STOP_GRACE)
            self._forget(process)
        with self._lock:
            queued, self._queue = list(self._queue), collections.deque()
            self._closing = True
        for run in queued:  # (shutdown() ends the queued runs itself: these were left by a failure)
            self._settle(run, RunOutcome("failed", error=f'Worker for job "{run.name}": the executor failed'))
        try:
            self._launcher.close()
        except Exception:
            log.exception("jobmanager_nb: could not stop the worker fork server")
        self._selector.close()
        with self._lock:
            fds = (self._wake_r, self._wake_w)
            self._wake_r = self._wake_w = None
        for fd in fds:
            if fd is not None:
                os.close(fd)


def _has_exited(process: WorkerProcess) -> bool:
    """Whether the worker is known to have exited, or has exited by now (asked of the OS where it
    can tell without reaping: a pidfd, Linux only)."""
    if process.exited or not process.conn_open:
        return True
    try:  # a worker waiting for go sends nothing more: end of file on its socket means it is gone
        if process.sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b"":
            return True
    except (BlockingIOError, InterruptedError):
        pass  # nothing to read: it is still there, waiting
    except OSError:
        return True  # the connection is broken
    if process.popen is not None:
        return process.popen.poll() is not None
    if process.pid is not None and _is_zombie(process.pid):
        return True  # dead, not yet reaped by its fork server (a pidfd may not say so yet)
    pidfd_open = getattr(os, "pidfd_open", None)
    if process.pid is None or pidfd_open is None:
        return False
    try:
        pidfd = pidfd_open(process.pid)
    except OSError:
        return True  # no such process: it has been reaped already
    try:
        return bool(select.select([pidfd], [], [], 0)[0])  # a pidfd is readable once its process exited
    finally:
        os.close(pidfd)


def _is_zombie(pid: int) -> bool:
    """True when ``pid`` has exited and waits to be reaped (Linux ``/proc``; False where it cannot tell)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            fields = stat.read().rsplit(b")", 1)[-1].split()
    except OSError:
        return False  # reaped already (the pidfd check says so), or no /proc here: the other checks decide
    return bool(fields) and fields[0] in (b"Z", b"X")


def _kill_group(pid: int | None) -> None:
    """SIGKILL the process group led by the worker ``pid`` (what its job started), if it is there.

    A worker leads its own session from its start, and its pid stays reserved while its group has
    members, so after the worker was reaped this reaches only what it left behind."""
    if pid is None:
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def _cancel_deadline(process: WorkerProcess) -> float | None:
    """When the process's run is to be killed for ignoring a cancel, if that is still pending."""
    run: _Run | None = process.run
    if run is None or run.settled or run.kill_reason is not None:
        return None
    return run.cancel_deadline


def _linger_deadline(process: WorkerProcess) -> float | None:
    """When the process is to be killed for lingering (or a stopped spare for not stopping)."""
    return None if process.kill_requested else process.deadline


def _cancelled_before_start() -> RunOutcome:
    """How a run ends that was cancelled before its job's code ran (queued, or being handed over)."""
    return RunOutcome("failed", error="cancelled before it started", cancelled=True)


def _cancelled_outcome() -> RunOutcome:
    """How a run ends whose job answered a cancel with ``"cancelled"``."""
    return RunOutcome("failed", error="cancelled", cancelled=True)


def _check_task(task: OffloadedTask) -> None:
    if not isinstance(task, OffloadedTask):
        raise TypeError(f"submit() needs an OffloadedTask, not {type(task).__name__}")
    if task.target_kind == "pickled":
        if not isinstance(task.target, (bytes, bytearray)):
            raise TypeError("a pickled task's target must be the cloudpickle bytes of a callable")
    elif task.target_kind in ("script", "reference"):
        if not isinstance(task.target, str):
            raise TypeError(f"a {task.target_kind} task's target must be a string")
    else:
        raise ValueError(f'target_kind must be "script", "reference" or "pickled", not {task.target_kind!r}')
