"""Offloaded jobs on a Dask cluster: :class:`DaskExecutor` (``pip install 'jobmanager_nb[dask]'``).

::

    from jobmanager_nb.executors.dask import DaskExecutor

    executor = DaskExecutor("tcp://head:8786")          # or a Client, a cluster object, or None
    manager = JobManager(executor=executor)

The contract is the local one (:class:`~jobmanager_nb.executors.local.ProcessExecutor`): every run
is a fresh process, the whole worker protocol works (``worker.data``, ``post_message`` both ways,
``"done"``, ``"cancel"``, ``on_message``, ``cancelled``, ``progress``), output is captured live,
return values and tracebacks come back, cell functions travel by value (cloudpickle), and cancel,
kill and grace periods behave the same. Each run is one Dask task that holds one Dask worker
thread until the run ends, so a worker's ``--nthreads`` is its number of job slots; the task runs
the job as a child process of the Dask worker (see :mod:`jobmanager_nb.executors.dask_worker`).

**Where a run runs.** ``started`` events carry ``location=`` the Dask worker's address. The job
sees the *worker's* environment variables (the kernel's are not shipped: ``PATH``, ``HOME`` and
friends differ between machines; set what jobs need when starting the workers, or pass it as the
job's data). Its working directory is the kernel's when that directory exists on the worker (a
shared file system, a LocalCluster), else the Dask worker's own. The kernel's ``sys.path`` entries
that exist on the worker come first on the job's ``sys.path``, then the worker's. A script path is
made absolute against the kernel's working directory at submit; the script must exist at that path
on the worker (a clear error says so, naming the worker), unless the executor was created with
``ship_scripts=True``: then the script's source is read at submit and travels with the run (only
that file: modules next to it must be importable on the worker; when the worker has the same file
at the same path it runs in place, else from a temporary copy). A ``"module:function"`` reference
must import on the worker; a cell function travels by value and needs nothing there.

**Versions.** On connect every worker must run the kernel's Python minor version and the same
jobmanager_nb and cloudpickle versions, else the constructor raises an error naming the worker and
the versions; a worker that joins later is checked by each run placed on it.

**At most once.** Dask reruns the tasks of a worker that died (``allowed-failures``) and recomputes
lost results. So the task prepares the job's process (held, nothing of the job run yet), announces
``ready`` and waits; the kernel answers ``go`` to the first placement of a run only and ``no`` to
any other and to a run cancelled meanwhile, and releases the run's future when the run ends. A run
whose Dask worker died after ``go`` was sent ends failed and ``lost`` (``Worker for job "x" was
lost: the Dask worker tcp://... died while the job ran``), also when the worker died with the
``go`` on its way (whether it arrived is unknown); it is never retried here (retrying is the
manager's decision). A worker that dies before its ``ready`` costs nothing: Dask places the task
elsewhere. The scheduler's ``remove-worker`` events (its ``all`` topic, watched once per Client)
tell a dead worker, so a run ends even when no worker is left.

**Messages.** Worker to kernel: ``Worker.log_event`` on a topic of the executor's own, which the
Client delivers in order (its handler only queues them: a thread of the executor calls the
listeners, in order). Kernel to worker (``go``/``no``, messages, cancel, kill): ``Client.run`` on
the run's worker, issued on the Client's event loop, in order for each worker and never making one
worker wait for another (a message to a worker that just died can take the connect timeout).

**Losing the scheduler.** The kernel's Client carries every event, so a run cannot outlive its
connection: when the Client loses the scheduler (Dask then cancels the Client's futures and the
scheduler forgets its tasks and topics), when it is closed under the executor, or when the
scheduler has not answered a small probe (sent every second while runs are in flight) for
``distributed.comm.timeouts.connect`` (30 s by default), every run in flight ends at once: lost once
its job was told to start (``Worker for job "x" was lost: the connection to the Dask scheduler at
tcp://... was lost while the job ran on the Dask worker tcp://...; check that ...``), failed if it
had not; submits fail the same way until the scheduler answers again. The job itself does not go on:
its Dask worker closes when it loses the scheduler, and a supervising task whose task the kernel
released kills its job. After the Client reconnects, the executor subscribes its topics again.

Limits: a job's output and result travel through the scheduler's event log, which keeps the last
events of each topic in memory, so very large results are better written to storage.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import logging
import os
import pickle
import queue
import threading
import time
import uuid
import weakref
from collections.abc import Callable
from typing import Any, ClassVar

try:
    import distributed
    from distributed import Client
except ImportError as _missing:  # pragma: no cover - exercised where distributed is absent
    raise ImportError(
        "DaskExecutor needs Dask's distributed package, which is not installed: pip install 'jobmanager_nb[dask]'"
    ) from _missing

from jobmanager_nb.executors import dask_worker
from jobmanager_nb.executors.base import Executor, OffloadedTask, RunHandle, RunOutcome, WorkerEvent, pickle_message
from jobmanager_nb.executors.local import _cancelled_before_start, _check_task
from jobmanager_nb.processes.exits import lost_reason

__all__ = ["DaskExecutor"]

log = logging.getLogger("jobmanager_nb")

_SHUTDOWN_KILL_WAIT = 5.0  # seconds shutdown waits for killed runs to report before giving up on them
_PROBE_INTERVAL = 1.0  # seconds between two looks at the Client's connection while runs are in flight


class _DaskRun(RunHandle):
    """One submitted run: its task, its listener, its Dask future and where it stands.

    Its fields change under the executor's lock; its events are emitted by the executor's
    dispatcher thread only, so a listener sees them in order."""

    def __init__(self, executor: DaskExecutor, task: OffloadedTask, listener: Callable[[WorkerEvent], None]) -> None:
        self.key = f"{task.name}-{uuid.uuid4().hex}"
        self.run_id = task.run_id
        self.name = task.name
        self.task = task
        self.listener = listener
        self.future: Any = None  # a distributed.Future (partly untyped)
        self.placement: tuple[str, str] | None = None  # (worker address, token) told "go"
        self.held: list[bytes] = []  # messages posted before "go"
        self.cancel_sent = False
        self.kill_sent = False
        self.started = False
        self.pid: int | None = None
        self.location: str | None = None
        self.settled = False  # the exited event has been (or is being) delivered
        self.closed = False  # decided: it will never be told "go" (cancelled, killed, ended)
        self._executor = executor
        self._done = threading.Event()

    def post_message(self, message: Any) -> None:
        """Send ``message`` to the job's ``worker.on_message`` callbacks (held until the job has been
        told to start, then sent in order). Raises ``TypeError`` if it cannot be pickled; does
        nothing once the run ended."""
        payload = pickle_message(self.name, message)
        self._executor._post(self, payload)

    def cancel(self, grace: float | None = None) -> None:
        """Send ``"cancel"`` to the running job; with a ``grace`` in seconds, its process is killed if
        it is still running then. A run not started yet (queued on the scheduler, or waiting for its
        ``go``) ends at once, failed and cancelled, and none of its job's code runs."""
        if grace is not None and grace < 0:
            raise ValueError(f"grace must be 0 or more seconds, not {grace!r}")
        self._executor._cancel(self, grace)

    def kill(self) -> None:
        """Kill the job's process (and what it started) now; the run fails with "was killed" (or "was
        killed before it started", and then none of its job's code ran)."""
        self._executor._kill(self)

    @property
    def done(self) -> bool:
        """True once the ``exited`` event has been delivered."""
        return self._done.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the ``exited`` event has been delivered; False on timeout."""
        return self._done.wait(timeout)

    def __repr__(self) -> str:
        state = "done" if self.done else "running" if self.started else "queued"
        return f"<RunHandle {self.name!r} run_id={self.run_id!r} {state} on Dask>"


class DaskExecutor(Executor):
    """Runs each offloaded run as a fresh process on a Dask worker (see the module docstring).

    ``cluster``: a scheduler address (``"tcp://head:8786"``), a :class:`distributed.Client`, a
    cluster object (``LocalCluster``, dask-jobqueue, ...: anything with ``scheduler_address``), or
    None to start a ``LocalCluster`` of this executor's own. A Client or cluster passed in is never
    closed here; what the executor created, it closes in :meth:`shutdown`.
    ``ship_scripts``: send a script job's source with each run instead of expecting the file on
    the worker. ``executor.client`` is the Client it submits with; ``dashboard_link`` the Dask
    dashboard's address (None without one). A run's handle also has ``pid`` and ``location`` once
    it started, and ``wait(timeout)``.

    Raises ``RuntimeError`` when a worker runs other versions of Python, jobmanager_nb or
    cloudpickle than this kernel, and ``TypeError`` for a ``cluster`` it cannot use.
    """

    def __init__(self, cluster: Any = None, *, ship_scripts: bool = False) -> None:
        self.ship_scripts = bool(ship_scripts)
        self._cluster = cluster
        self._dashboard: object = _UNKNOWN
        self._own_cluster: Any = None
        self._own_client: Any = None
        self._client: Any = self._connect(cluster)  # a distributed.Client (partly untyped)
        try:
            self._check_workers()
        except BaseException:
            self._close_owned()
            raise
        self._address = str(getattr(self._client.scheduler, "address", "?"))
        self._topic = f"jobmanager_nb-{uuid.uuid4().hex}"
        self._lock = threading.Lock()
        self._runs: dict[str, _DaskRun] = {}  # by key; guarded by _lock
        self._removed: collections.deque[str] = collections.deque(maxlen=1000)  # dispatcher only
        self._closing = False  # guarded by _lock
        self._inbox: queue.SimpleQueue[tuple[Any, ...]] = queue.SimpleQueue()
        self._courier = _Courier(self._client, self._on_sent)
        self._dispatcher = threading.Thread(target=self._dispatch_loop, name="jobmanager_nb-dask-events", daemon=True)
        self._shut_down = threading.Event()
        # The connection to the scheduler (dispatcher thread only, but _disconnected: under _lock).
        self._lost_after = _connect_timeout()
        # When the oldest probe the scheduler has not answered yet was sent (None: all answered); set
        # here, cleared on the Client's loop by an answer. Only an unanswered probe counts, never the
        # time this thread spent elsewhere (in a slow listener).
        self._unanswered_since: float | None = None
        self._probing = False  # a probe is in flight (set here, cleared on the Client's loop)
        self._comm = getattr(self._client, "scheduler_comm", None)  # the Client's connection; _subscribing
        self._subscribing = threading.Lock()
        self._disconnected: str | None = None  # why the connection counts as lost, while it does
        self._dispatcher.start()
        self._client.subscribe_topic(self._topic, self._on_topic_event)
        _RemovedWorkers.watch(self._client, self)

    # --- connecting ----------------------------------------------------------------------------------

    def _connect(self, cluster: Any) -> Any:
        if isinstance(cluster, Client):
            if cluster.asynchronous:
                address = getattr(cluster.scheduler, "address", None) or "tcp://scheduler:8786"
                raise TypeError(
                    "DaskExecutor needs a synchronous Client, not one made with asynchronous=True (its own threads "
                    f'call the Client): pass the scheduler\'s address instead, DaskExecutor("{address}"), and the '
                    "executor connects a Client of its own"
                )
            if cluster.status not in ("running", "connecting", "newly-created"):
                raise RuntimeError(f"this Dask Client is {cluster.status}; pass a connected one")
            return cluster
        if cluster is None:
            from distributed import LocalCluster

            new_cluster: Any = LocalCluster
            self._own_cluster = new_cluster(processes=True)
            self._own_client = _new_client(self._own_cluster, set_as_default=False)
            return self._own_client
        if isinstance(cluster, str) or hasattr(cluster, "scheduler_address"):
            address = cluster if isinstance(cluster, str) else cluster.scheduler_address
            if not isinstance(address, str):
                raise TypeError(f"the cluster's scheduler_address is not an address: {address!r}")
            security = getattr(cluster, "security", None)
            kwargs: dict[str, Any] = {"set_as_default": False}
            if security is not None:
                kwargs["security"] = security
            self._own_client = _new_client(address, **kwargs)
            return self._own_client
        raise TypeError(
            "DaskExecutor(cluster=...) takes a scheduler address, a distributed.Client, a cluster object "
            f"(with a scheduler_address) or None, not {type(cluster).__name__}"
        )

    def _check_workers(self) -> None:
        """Every worker runs the kernel's Python minor version, jobmanager_nb and cloudpickle versions
        (and starts its process machinery ahead of the first run)."""
        kernel = dask_worker.versions()
        limit = _connect_timeout()
        try:
            answers = self._client.run(dask_worker.hello, kernel, on_error="return", callback_timeout=limit)
        except (TimeoutError, asyncio.TimeoutError):
            raise RuntimeError(
                f"DaskExecutor: the Dask workers did not all answer the version check within {limit:g} s "
                "(distributed.comm.timeouts.connect): a worker is frozen, overloaded or unreachable. Check the "
                "workers (the Dask dashboard lists them), restart the stuck one, and create the DaskExecutor again."
            ) from None
        problems = []
        for address, answer in sorted(answers.items()):
            if isinstance(answer, BaseException):
                problems.append(f"{address} could not be asked ({type(answer).__name__}: {answer})")
                continue
            differences = dask_worker.version_problems(kernel, answer)
            if differences:
                problems.append(f"{address}: {'; '.join(differences)}")
        if problems:
            raise RuntimeError(
                "DaskExecutor: these Dask workers cannot run this kernel's jobs: "
                + " | ".join(problems)
                + ". Install the same Python minor version, jobmanager_nb and cloudpickle versions on the "
                "workers as in the kernel."
            )

    # --- public API -----------------------------------------------------------------------------------

    @property
    def client(self) -> Any:
        """The :class:`distributed.Client` this executor submits with."""
        return self._client

    @property
    def dashboard_link(self) -> str | None:
        """The Dask dashboard's address, or None when the scheduler serves none (asked once, waiting
        at most a few seconds: None, and asked again next time, when the scheduler does not answer)."""
        with self._lock:
            if self._dashboard is not _UNKNOWN:
                return self._dashboard  # type: ignore[return-value]
        if self._status_problem() is not None:
            return None
        client = self._client

        async def identity() -> Any:
            return await asyncio.wait_for(client.scheduler.identity(n_workers=0), min(5.0, self._lost_after))

        link: str | None = None
        try:
            services = client.sync(identity).get("services") or {}
            if "dashboard" in services:
                # (a cluster object knows its link without asking; Client.dashboard_link would ask the
                # scheduler again, with no time limit)
                cluster = self._own_cluster or getattr(client, "cluster", None) or self._cluster
                found = None if isinstance(cluster, (str, Client)) else getattr(cluster, "dashboard_link", None)
                if not found:
                    from distributed.utils import format_dashboard_link as _format

                    format_dashboard_link: Callable[[str, Any], str] = _format  # (untyped)
                    host = self._address.split("://", 1)[-1].rsplit(":", 1)[0]
                    found = format_dashboard_link(
                        "localhost" if self._address.startswith("inproc") else host, services["dashboard"]
                    )
                link = str(found) if found else None
        except Exception:
            return None  # (asked again next time)
        with self._lock:
            self._dashboard = link
        return link

    def submit(self, task: OffloadedTask, listener: Callable[[WorkerEvent], None]) -> _DaskRun:
        """Queue ``task`` on the Dask scheduler and return its handle at once; ``listener`` gets its
        events in order, from the executor's dispatcher thread. Raises ``RuntimeError`` after
        :meth:`shutdown`."""
        _check_task(task)
        run = _DaskRun(self, task, listener)
        spec, failure = self._spec(run)
        self._follow_reconnect()  # (before the task goes out: its events need the subscription)
        with self._lock:
            if self._closing:
                raise RuntimeError("this DaskExecutor has been shut down; create a new one")
            self._runs[run.key] = run
            problem = self._disconnected or self._status_problem()
            if failure is None and problem is not None:
                failure = f'job "{run.name}" was not submitted: {problem}; {self._advice(problem)}'
            if failure is not None:
                run.closed = True
        if failure is not None:
            self._inbox.put(("settle", run, RunOutcome("failed", error=failure)))
            return run
        try:
            future = self._client.submit(dask_worker.supervise, spec, key=run.key, pure=False)
        except Exception as exc:
            with self._lock:
                run.closed = True
            error = f'job "{run.name}" could not be submitted to Dask: {type(exc).__name__}: {exc}'
            self._inbox.put(("settle", run, RunOutcome("failed", error=error)))
            return run
        with self._lock:
            run.future = future
            release = run.settled  # (ended while being submitted: it is not needed any more)
        if release:
            future.release()
        else:
            future.add_done_callback(lambda f, run=run: self._on_future_done(run, f))
        return run

    def shutdown(self, timeout: float | None = None) -> None:
        """Cancel every run (queued ones end at once), wait up to ``timeout`` seconds for running ones
        (``None``: as long as they take), kill what is left, stop the executor's threads and close
        the Client and cluster it created (never one passed in). Idempotent; raises nothing for job
        failures. Called from a listener, it starts all this and returns without waiting."""
        with self._lock:
            first = not self._closing
            self._closing = True
        if first:
            threading.Thread(target=self._shutdown, args=(timeout,), name="jobmanager_nb-dask-shutdown").start()
        if threading.current_thread() is self._dispatcher:
            return
        self._shut_down.wait()

    def __repr__(self) -> str:
        with self._lock:
            state = "shut down" if self._closing else "running"
            running = sum(1 for r in self._runs.values() if r.started)
            queued = len(self._runs) - running
        return f"<DaskExecutor {self._address} {state}: {running} running, {queued} queued>"

    # --- called by run handles (any thread) ------------------------------------------------------

    def _spec(self, run: _DaskRun) -> tuple[dict[str, Any], str | None]:
        """What the supervising task gets, and why the run cannot be submitted (None if it can)."""
        task = run.task
        cwd = task.cwd
        if cwd is None:
            try:
                cwd = os.getcwd()
            except OSError:
                cwd = None
        source: bytes | None = None
        failure = None
        if task.target_kind == "script":
            path = os.path.abspath(os.path.join(cwd or "", str(task.target)))
            task = _replace(task, target=path)
            if self.ship_scripts:
                try:
                    with open(path, "rb") as file:
                        source = file.read()
                except OSError as exc:
                    failure = (
                        f'job "{run.name}": cannot read the script "{path}" to send it to the Dask worker '
                        f"({exc.strerror or exc}); check the path given to add_job (a relative path is taken "
                        "from the job's cwd)"
                    )
        task = _replace(task, cwd=cwd)
        spec = {
            "key": run.key,
            "run_id": run.run_id,
            "topic": self._topic,
            "task": task,
            "source": source,
            "versions": dask_worker.versions(),
        }
        return spec, failure

    def _post(self, run: _DaskRun, payload: bytes) -> None:
        with self._lock:
            if run.settled or (run.closed and run.placement is None):
                return
            if run.placement is None:
                run.held.append(payload)
                return
            self._send_locked(run, "message", payload)

    def _cancel(self, run: _DaskRun, grace: float | None) -> None:
        with self._lock:
            if run.settled:
                return
            if run.placement is None:
                if not run.closed:
                    run.closed = True
                    self._inbox.put(("settle", run, _cancelled_before_start()))
                return
            if not run.cancel_sent or grace is not None:
                run.cancel_sent = True
                self._send_locked(run, "cancel", grace)

    def _kill(self, run: _DaskRun) -> None:
        with self._lock:
            if run.settled:
                return
            if run.placement is None:
                if not run.closed:
                    run.closed = True
                    error = f'Worker for job "{run.name}" was killed before it started'
                    self._inbox.put(("settle", run, RunOutcome("failed", error=error)))
                return
            if not run.kill_sent:
                run.kill_sent = True
                self._send_locked(run, "kill", None)

    def _send_locked(self, run: _DaskRun, op: str, argument: Any) -> None:
        assert run.placement is not None
        address, token = run.placement
        self._send(address, run.key, token, op, argument)

    def _send(self, address: str, key: str, token: str, op: str, argument: Any) -> None:
        self._courier.send(address, (key, token, op, argument))

    # --- what the Client reports (on its event loop: only queue it) ----------------------------------

    def _on_topic_event(self, event: tuple[float, Any]) -> None:
        self._inbox.put(("topic", event[1]))

    def _on_worker_removed(self, address: str) -> None:
        self._courier.forget(address)
        self._inbox.put(("removed", address))

    def _on_sent(self, address: str, batch: list[tuple[str, str, str, Any]], delivered: list[bool]) -> None:
        """Whether instructions reached their placements (on the Client's loop): what matters is a ``go``."""
        results = []
        with self._lock:
            for (key, _token, op, _), ok in zip(batch, delivered, strict=True):
                run = self._runs.get(key)
                if op == "go" and run is not None:
                    results.append((run, ok))
        if results:
            self._inbox.put(("sent", results))

    def _on_future_done(self, run: _DaskRun, future: Any) -> None:
        """The run's Dask task ended (on Dask's callback thread). Nothing to do when the run was
        settled by then (the usual case: its events come first); else find out why."""
        with self._lock:
            if run.settled:
                return
        status = future.status
        detail = ""
        try:
            if status == "error":
                exc = future.exception(timeout=10)
                detail = f"{type(exc).__name__}: {exc}"
            elif status == "finished":
                detail = str(future.result(timeout=10))
            elif status == "cancelled":
                future.result(timeout=10)
        except distributed.client.FutureCancelledError as exc:
            detail = str(exc.reason)
        except Exception as exc:
            detail = f"(its result could not be read: {type(exc).__name__}: {exc})"
        self._inbox.put(("future", run, status, detail))

    # --- the dispatcher thread: every decision and every listener call --------------------------------

    def _dispatch_loop(self) -> None:
        next_check = time.monotonic() + _PROBE_INTERVAL
        while True:
            try:
                item: tuple[Any, ...] | None = self._inbox.get(timeout=_PROBE_INTERVAL)
            except queue.Empty:
                item = None
            if item is not None and item[0] == "stop":
                return
            try:
                if item is not None:
                    self._dispatch(item)
                if time.monotonic() >= next_check:
                    next_check = time.monotonic() + _PROBE_INTERVAL
                    self._check_connection()
            except Exception:
                log.exception("jobmanager_nb: internal error in the DaskExecutor")

    def _dispatch(self, item: tuple[Any, ...]) -> None:
        kind = item[0]
        if kind == "topic":
            message = item[1]
            if message.get("ready"):
                self._on_ready(message["r"], message["a"], message["t"])
            elif "e" in message:
                self._on_events(message["r"], message["a"], message["t"], message["e"])
        elif kind == "settle":
            self._settle(item[1], item[2])
        elif kind == "removed":
            self._on_removed(item[1])
        elif kind == "sent":
            for run, ok in item[1]:
                self._on_go_sent(run, ok)
        elif kind == "future":
            self._on_future(item[1], item[2], item[3])
        elif kind == "call":
            item[1]()

    def _on_ready(self, key: str, address: str, token: str) -> None:
        """The start gate: ``go`` to the first placement of a run that is still wanted, else ``no``."""
        with self._lock:
            run = self._runs.get(key)
            go = (
                run is not None
                and not run.closed
                and run.placement is None
                and not self._closing
                and address not in self._removed
            )
            if not go:
                self._send(address, key, token, "no", None)
                return
            assert run is not None
            run.placement = (address, token)
            run.closed = True
            self._send(address, key, token, "go", None)
            for payload in run.held:
                self._send(address, key, token, "message", payload)
            run.held.clear()

    def _on_events(self, key: str, address: str, token: str, data: bytes) -> None:
        with self._lock:
            run = self._runs.get(key)
            if run is None or run.settled:
                return
            ours = run.placement == (address, token)
        try:
            events: list[WorkerEvent] = pickle.loads(data)
        except Exception as exc:
            note = f"[jobmanager_nb] events of this job could not be unpickled here: {type(exc).__name__}: {exc}\n"
            events = [WorkerEvent("output", run.run_id, payload=("stderr", note))]
        for event in events:
            if not ours and not (event.kind == "exited" and run.placement is None):
                continue  # another placement's events; only a failure before any "go" counts
            if event.kind == "exited":
                assert event.outcome is not None
                if not ours:
                    with self._lock:
                        run.closed = True
                self._settle(run, event.outcome)
                return
            if event.kind == "started":
                run.started = True
                run.pid = event.payload
                run.location = event.location
            self._emit(run, event)

    def _on_removed(self, address: str) -> None:
        """A Dask worker left the cluster: its runs that were told ``go`` are lost (also those whose
        ``go`` was still on its way: whether it arrived is unknown, so the job may have started)."""
        self._removed.append(address)
        lost = []
        with self._lock:
            for run in self._runs.values():
                if run.settled or run.placement is None or run.placement[0] != address:
                    continue
                lost.append(run)
        for run in lost:
            self._settle(run, self._lost(run, address))

    def _on_go_sent(self, run: _DaskRun, ok: bool) -> None:
        """Whether a run's ``go`` reached its worker. If it did not, whether the worker got it before
        the connection failed is unknown: the job may have started, so the run is lost (it is never
        offered to another placement: a job starts at most once)."""
        with self._lock:
            if run.settled or run.placement is None:
                return
            address = run.placement[0]
        if not ok:
            reason = f"the Dask worker {address} could not be reached to start the job (it may have started)"
            self._settle(run, RunOutcome("failed", error=lost_reason(run.name, reason), lost=True))

    def _on_future(self, run: _DaskRun, status: str, detail: str) -> None:
        """The run's Dask task ended and the run has not: say why it ended."""
        with self._lock:
            if run.settled:
                return
            placement = run.placement
        if status == "cancelled" and (detail == "scheduler-connection-lost" or self._status_problem() is not None):
            # The Client cancels all its futures when it loses the scheduler: every run is concerned
            # (unless it reconnected already: then each cancelled future ends its own run).
            problem = self._status_problem()
            if problem is not None:
                self._check_connection(problem)
            if not run.settled:
                self._settle(run, self._cut_off(run, problem or self._down()))
            return
        if placement is not None:
            # Told "go", and its task ended without this placement's "exited": the task ran again
            # elsewhere (another placement refused, gave up or failed there), so this worker died.
            outcome = self._lost(run, placement[0])
        elif status == "error":
            outcome = RunOutcome(
                "failed", error=f'Worker for job "{run.name}": its Dask task failed before the job started ({detail})'
            )
        elif status == "cancelled":
            outcome = RunOutcome("failed", error=f'Worker for job "{run.name}": its Dask task was cancelled')
        elif detail == "no-answer":
            outcome = RunOutcome(
                "failed",
                error=f'Worker for job "{run.name}": the Dask worker gave up waiting for this kernel to start the job',
            )
        else:
            outcome = RunOutcome(
                "failed", error=f'Worker for job "{run.name}": its Dask task ended without running the job ({detail})'
            )
        self._settle(run, outcome)

    # --- the connection to the scheduler (dispatcher thread) --------------------------------------------

    def _check_connection(self, reason: str | None = None) -> None:
        """Look at the Client's connection (every :data:`_PROBE_INTERVAL` seconds, and when its futures
        were cancelled): a Client that lost its scheduler (Dask cancels its futures and the scheduler
        forgets its tasks and topics), was closed, or whose scheduler has not answered for the connect
        timeout ends every run in flight, and submits fail until it is connected again. A Client that
        reconnected gets the executor's topics subscribed again (the new connection has none)."""
        now = time.monotonic()
        client = self._client
        if reason is None:
            self._follow_reconnect()
        _RemovedWorkers.ensure(client)
        with self._lock:
            in_flight = [run for run in self._runs.values() if not run.settled]
            disconnected = self._disconnected
        if reason is None:
            reason = self._status_problem()
        if reason is None:
            if in_flight or disconnected is not None:
                self._probe()
            elif not self._probing:
                self._unanswered_since = None  # nothing to watch: the scheduler owes no answer
            since = self._unanswered_since
            if since is not None and now - since > self._lost_after:
                reason = f"{self._down()} (it has not answered for {now - since:.0f} s)"
        with self._lock:
            self._disconnected = reason
        if reason is None:
            if disconnected is not None:
                log.warning("jobmanager_nb: the DaskExecutor is connected to the scheduler at %s again", self._address)
            return
        if disconnected is None:
            log.warning("jobmanager_nb: %s; the DaskExecutor's runs in flight end lost", reason)
        for run in in_flight:
            self._settle(run, self._cut_off(run, reason))

    def _follow_reconnect(self) -> None:
        """When the Client is connected on a new connection (it reconnected), subscribe the executor's
        topics again and count the connection as back (any thread: the dispatcher's check, submit)."""
        client = self._client
        with self._subscribing:
            comm = getattr(client, "scheduler_comm", None)
            if self._status_problem() is not None or comm is None or comm is self._comm:
                return
            self._comm = comm
            with contextlib.suppress(Exception):
                client.subscribe_topic(self._topic, self._on_topic_event)
            _RemovedWorkers.resubscribe(client)
            self._unanswered_since = None
            with self._lock:
                self._disconnected = None

    def _probe(self) -> None:
        """Ask the scheduler something small on the Client's loop; its answer is a sign of life."""
        if self._probing:
            return
        self._probing = True
        if self._unanswered_since is None:
            self._unanswered_since = time.monotonic()

        async def probe() -> None:
            try:
                await asyncio.wait_for(self._client.scheduler.identity(n_workers=0), self._lost_after)
                self._unanswered_since = None
            except Exception as exc:
                log.debug("jobmanager_nb: the Dask scheduler did not answer: %r", exc)
            finally:
                self._probing = False

        try:
            self._client.loop.add_callback(probe)
        except Exception:
            self._probing = False

    def _status_problem(self) -> str | None:
        """Why the Client cannot reach the scheduler now, from its status alone (any thread)."""
        status = str(getattr(self._client, "status", "closed"))
        if status in ("closing", "closed"):
            return f"the Dask Client connected to {self._address} was closed"
        if status != "running":
            return self._down()
        return None

    def _down(self) -> str:
        return f"the connection to the Dask scheduler at {self._address} was lost"

    def _advice(self, reason: str) -> str:
        if "was closed" in reason:
            return "create a new DaskExecutor with a connected Client"
        return (
            "check that the scheduler is running and reachable from this kernel, then run the job again (the "
            "Client reconnects by itself when the scheduler is back at that address within "
            f"distributed.comm.timeouts.connect, {self._lost_after:g} s; after that create a new DaskExecutor)"
        )

    def _cut_off(self, run: _DaskRun, reason: str) -> RunOutcome:
        """How a run ends when the kernel lost the scheduler: lost once it was told to start (the job
        may have run, and may still run until its Dask worker loses the scheduler too), else failed."""
        advice = self._advice(reason)
        if run.placement is None:
            return RunOutcome("failed", error=f'job "{run.name}" did not start: {reason} before it started; {advice}')
        when = "while the job ran" if run.started else "after it was told to start the job"
        where = f"on the Dask worker {run.placement[0]}"
        text = f"{reason} {when} {where}, whose events cannot reach this kernel any more; {advice}"
        return RunOutcome("failed", error=lost_reason(run.name, text), lost=True)

    def _lost(self, run: _DaskRun, address: str) -> RunOutcome:
        when = "while the job ran" if run.started else "after it was told to start the job"
        return RunOutcome("failed", error=lost_reason(run.name, f"the Dask worker {address} died {when}"), lost=True)

    def _settle(self, run: _DaskRun, outcome: RunOutcome) -> None:
        with self._lock:
            if run.settled:
                return
            run.settled = run.closed = True
            future, run.future = run.future, None
        self._emit(run, WorkerEvent("exited", run.run_id, outcome=outcome))
        run._done.set()
        with self._lock:
            self._runs.pop(run.key, None)
        if future is not None:
            future.release()  # a task Dask would rerun or recompute is not wanted any more

    def _emit(self, run: _DaskRun, event: WorkerEvent) -> None:
        try:
            run.listener(event)
        except Exception:
            log.exception("jobmanager_nb: the listener of job %r raised on its %r event", run.name, event.kind)

    # --- shutting down ---------------------------------------------------------------------------------

    def _shutdown(self, timeout: float | None) -> None:
        try:
            with self._lock:
                runs = list(self._runs.values())
            for run in runs:
                run.cancel(timeout)
            # (a job that ignores the cancel is killed on its worker after the grace: a little longer here)
            deadline = None if timeout is None else time.monotonic() + timeout + 2.0
            for run in runs:
                if not run.wait(None if deadline is None else max(0.0, deadline - time.monotonic())):
                    break
            with self._lock:
                left = [r for r in self._runs.values() if not r.settled]
            for run in left:
                run.kill()
            deadline = time.monotonic() + _SHUTDOWN_KILL_WAIT
            for run in left:
                if not run.wait(max(0.0, deadline - time.monotonic())):
                    error = f'Worker for job "{run.name}" was killed: the executor stopped (it did not report back)'
                    self._inbox.put(("settle", run, RunOutcome("failed", error=error)))
            done = threading.Event()
            self._inbox.put(("call", done.set))
            done.wait(_SHUTDOWN_KILL_WAIT)
            self._inbox.put(("stop",))
            with contextlib.suppress(Exception):
                self._client.unsubscribe_topic(self._topic)
            _RemovedWorkers.forget(self._client, self)
            self._close_owned()
        except Exception:
            log.exception("jobmanager_nb: the DaskExecutor did not shut down cleanly")
        finally:
            self._shut_down.set()

    def _close_owned(self) -> None:
        client, self._own_client = self._own_client, None
        cluster, self._own_cluster = self._own_cluster, None
        if client is not None:
            try:
                client.close()
            except Exception:
                log.exception("jobmanager_nb: could not close the DaskExecutor's Client")
        if cluster is not None:
            try:
                cluster.close()
            except Exception:
                log.exception("jobmanager_nb: could not close the DaskExecutor's LocalCluster")


class _Courier:
    """Delivers the kernel's instructions to Dask workers with ``Client.run``, on the Client's event
    loop: in order for each worker (one call at a time per worker, whatever is waiting goes in one
    call), and never making one worker wait for another (connecting to a worker that just died can
    take the whole connect timeout). ``on_result(address, batch, delivered)`` hears which instructions
    reached their placement (on the loop: it must only queue work)."""

    def __init__(
        self, client: Any, on_result: Callable[[str, list[tuple[str, str, str, Any]], list[bool]], None]
    ) -> None:
        self._client = client
        self._on_result = on_result
        self._waiting: dict[str, list[tuple[str, str, str, Any]]] = {}  # by address; loop only
        self._busy: set[str] = set()  # addresses with a call in flight; loop only
        self._tasks: set[asyncio.Task[None]] = set()

    def send(self, address: str, item: tuple[str, str, str, Any]) -> None:
        """Queue ``(run key, token, op, argument)`` for the worker at ``address`` (any thread; lost
        when the Client's loop has stopped: the Client was closed under the executor)."""
        try:
            self._client.loop.add_callback(self._queue, address, item)
        except RuntimeError:
            log.warning("jobmanager_nb: the Dask Client was closed; %r for a job was not sent", item[2])

    def forget(self, address: str) -> None:
        """The worker is gone: drop what waits for it (any thread)."""
        with contextlib.suppress(RuntimeError):
            self._client.loop.add_callback(self._waiting.pop, address, None)

    def _queue(self, address: str, item: tuple[str, str, str, Any]) -> None:
        self._waiting.setdefault(address, []).append(item)
        if address not in self._busy:
            self._busy.add(address)
            task = asyncio.ensure_future(self._drain(address))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _drain(self, address: str) -> None:
        try:
            while self._waiting.get(address):
                batch = self._waiting.pop(address)
                delivered = await self._deliver(address, batch)
                try:
                    self._on_result(address, batch, delivered)
                except Exception:
                    log.exception("jobmanager_nb: internal error in the DaskExecutor")
        finally:
            self._busy.discard(address)

    async def _deliver(self, address: str, batch: list[tuple[str, str, str, Any]]) -> list[bool]:
        try:
            answers = await self._client.run(
                dask_worker.control, {address: batch}, workers=[address], on_error="return", asynchronous=True
            )
        except Exception as exc:
            answers = {address: exc}
        answer = answers.get(address) if isinstance(answers, dict) else None
        if isinstance(answer, list) and len(answer) == len(batch):
            return [bool(ok) for ok in answer]
        log.debug("jobmanager_nb: could not reach the Dask worker %s: %r", address, answer)
        return [False] * len(batch)


class _RemovedWorkers:
    """One subscription per Client to the scheduler's ``all`` topic, where it announces a removed
    worker; shared by every DaskExecutor on that Client (a Client keeps one handler per topic), and
    calling the handler that was there before, which is put back when the last executor leaves.

    A handler set for ``all`` after it (by the user, by another library) would replace it: each
    executor looks every second (:meth:`ensure`) and puts it back in front, calling that handler in
    turn. Which handler the Client has is read from its private ``_event_handlers`` (Dask offers no
    public way); without that attribute the watcher cannot chain or notice a replacement. Nor can
    it notice ``client.unsubscribe_topic("all")``, which keeps the Client's handler. In both cases
    a dead worker's run still ends lost, only later: when Dask's rerun of its task is refused (which
    needs a worker left)."""

    _lock: ClassVar[threading.Lock] = threading.Lock()
    _by_client: ClassVar[weakref.WeakKeyDictionary[Any, _RemovedWorkers]] = weakref.WeakKeyDictionary()

    def __init__(self, client: Any) -> None:
        self.client: Any = client
        self.executors: list[weakref.ref[DaskExecutor]] = []
        self.previous: Callable[[Any], Any] | None = _all_handler(client)

    @classmethod
    def watch(cls, client: Any, executor: DaskExecutor) -> None:
        with cls._lock:
            watcher = cls._by_client.get(client)
            if watcher is None:
                watcher = cls._by_client[client] = cls(client)
                client.subscribe_topic("all", watcher.on_event)
            watcher.executors.append(weakref.ref(executor))

    @classmethod
    def forget(cls, client: Any, executor: DaskExecutor) -> None:
        with cls._lock:
            watcher = cls._by_client.get(client)
            if watcher is None:
                return
            watcher.executors = [r for r in watcher.executors if r() not in (None, executor)]
            if watcher.executors:
                return
            del cls._by_client[client]
        if _all_handler(client) not in (watcher.on_event, None):
            return  # someone else's handler came after this watcher: leave it there
        with contextlib.suppress(Exception):
            if watcher.previous is not None:
                client.subscribe_topic("all", watcher.previous)
            else:
                client.unsubscribe_topic("all")

    @classmethod
    def ensure(cls, client: Any) -> None:
        """Put the watcher back in front when another handler replaced it (any thread but the loop)."""
        with cls._lock:
            watcher = cls._by_client.get(client)
        handlers = getattr(client, "_event_handlers", None)
        if watcher is None or not isinstance(handlers, dict):
            return  # (no way to tell)
        current = handlers.get("all")
        if current == watcher.on_event:
            return
        watcher.previous = current if callable(current) else None  # (None: the Client has none now)
        with contextlib.suppress(Exception):
            client.subscribe_topic("all", watcher.on_event)

    @classmethod
    def resubscribe(cls, client: Any) -> None:
        """The Client reconnected: its new connection knows no topic; subscribe ``all`` again with
        the handler the Client has for it now (this watcher's, or one set after it)."""
        with cls._lock:
            watcher = cls._by_client.get(client)
        if watcher is None:
            return
        current = _all_handler(client)
        with contextlib.suppress(Exception):
            client.subscribe_topic("all", current if current is not None else watcher.on_event)

    def on_event(self, event: tuple[float, Any]) -> Any:
        """On the Client's event loop: pass a removed worker's address on, nothing else."""
        message = event[1]
        if isinstance(message, dict) and message.get("action") == "remove-worker" and "worker" in message:
            for ref in list(self.executors):
                executor = ref()
                if executor is not None:
                    executor._on_worker_removed(message["worker"])
        if self.previous is not None:
            return self.previous(event)
        return None


_new_client: Any = Client  # (its constructor is untyped)


def _all_handler(client: Any) -> Callable[[Any], Any] | None:
    """The Client's handler for the ``all`` topic, read from its private ``_event_handlers``; None
    when it has none or the attribute is not there (another distributed version)."""
    handlers = getattr(client, "_event_handlers", None)
    handler = handlers.get("all") if isinstance(handlers, dict) else None
    return handler if callable(handler) else None


def _connect_timeout() -> float:
    """Dask's ``distributed.comm.timeouts.connect`` in seconds (30 by default): how long the Client
    tries to reconnect, and how long a scheduler may stay silent before its runs count as lost."""
    import dask.config
    from dask.utils import parse_timedelta

    seconds = parse_timedelta(dask.config.get("distributed.comm.timeouts.connect"), default="s")
    return float(seconds) if seconds else 30.0


_UNKNOWN = object()


def _replace(task: OffloadedTask, **changes: Any) -> OffloadedTask:
    return dataclasses.replace(task, **changes)


_ = distributed  # (imported first so that a missing distributed gives the message above)
