"""How worker processes are born: forked by jobmanager_nb's fork server, or as fresh interpreters.

Both give every worker the same start: a new session (so the notebook's Interrupt, which signals
the kernel's process group, never reaches it), ``/dev/null`` as stdin, the parent's pipes as
stdout and stderr from the first instruction on, and :func:`jobmanager_nb.processes.child.main` as its
only code.

* :class:`ForkServerLauncher` (``"forkserver"``): one :mod:`jobmanager_nb.processes.zygote` process per
  executor forks workers on request; asking costs the parent one ``sendmsg``, the pid and later
  the exit status come back on the control socket. The server's stderr is a pipe that the I/O
  thread drains whenever it is readable (:meth:`Launcher.drain_server_output`), so that a chatty
  preload module can never block the server; its last 8 KiB are kept for the log when it dies.
* :class:`SpawnLauncher` (``"spawn"``): ``subprocess.Popen`` of ``python -c``; the exit is seen
  through a pidfd on Linux, else through the worker's socket closing.

The I/O thread of the executor is the only caller.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import signal
import socket
import subprocess
import sys
from dataclasses import dataclass
from typing import Literal

import jobmanager_nb
from jobmanager_nb.processes.wire import FrameBuffer
from jobmanager_nb.processes.worker_process import WorkerProcess
from jobmanager_nb.processes.zygote import REQUEST

__all__ = ["ForkServerLauncher", "Launcher", "Notice", "SpawnLauncher", "package_root"]

log = logging.getLogger("jobmanager_nb")

_READ_SIZE = 1 << 16
_STDERR_TAIL = 8 << 10  # bytes of the fork server's stderr kept for the log when it dies


def package_root() -> str:
    """The directory that holds the ``jobmanager_nb`` package (put first on a new interpreter's path)."""
    return os.path.dirname(os.path.dirname(os.path.abspath(jobmanager_nb.__file__ or "")))


def _bootstrap(statement: str) -> list[str]:
    paths = [package_root(), *(p for p in sys.path if isinstance(p, str))]
    code = f"import sys; sys.path[:0] = {list(dict.fromkeys(paths))!r}; {statement}"
    if not sys.executable:
        raise RuntimeError("cannot start worker processes: sys.executable is empty in this interpreter")
    return [sys.executable, "-c", code]


@dataclass
class Notice:
    """Something the fork server reported about a worker."""

    kind: Literal["started", "exited", "lost"]
    process: WorkerProcess
    returncode: int | None = None
    reason: str | None = None


class Launcher:
    """Starts worker processes for one executor."""

    def launch(self, process: WorkerProcess) -> list[Notice]:
        """Start the OS process of ``process`` (the pid may become known later). Returns what it
        learnt on the way about other workers (``lost`` ones, when a helper turned out to be dead)."""
        raise NotImplementedError

    def control_socket(self) -> socket.socket | None:
        """A socket the I/O thread watches and passes to :meth:`on_control`, if any."""
        return None

    def on_control(self) -> list[Notice]:
        """Read what the control socket says."""
        return []

    def server_output(self) -> io.FileIO | None:
        """The read end of a helper process's stderr, which the I/O thread watches and drains with
        :meth:`drain_server_output` whenever it is readable; None when there is none. A new helper
        gets a new object (compare them by identity)."""
        return None

    def drain_server_output(self) -> None:
        """Read (and keep only a bounded tail of) what the helper wrote; close the pipe at its end."""

    def close(self, timeout: float = 1.0) -> list[Notice]:
        """Stop helper processes; returns a ``lost`` notice for every worker it still knew about."""
        return []


class SpawnLauncher(Launcher):
    """Each worker is a fresh interpreter: slower to start (tens of ms), no helper process."""

    def launch(self, process: WorkerProcess) -> list[Notice]:
        conn_fd, out_w, err_w, out_r, err_r = process.fds_for_child()
        statement = (
            "import signal; signal.signal(signal.SIGINT, signal.SIG_IGN); "
            f"from jobmanager_nb.processes.child import main; main({conn_fd}, {out_r}, {err_r})"
        )
        try:
            popen = subprocess.Popen(
                _bootstrap(statement),
                stdin=subprocess.DEVNULL,
                stdout=out_w,
                stderr=err_w,
                pass_fds=(conn_fd, out_r, err_r),
                close_fds=True,
                start_new_session=True,
            )
        finally:
            process.release_child_fds()
        process.popen = popen
        process.pid = popen.pid
        pidfd_open = getattr(os, "pidfd_open", None)
        if pidfd_open is not None:
            try:
                process.pidfd = pidfd_open(popen.pid)
            except OSError:
                process.pidfd = None
        return []


class ForkServerLauncher(Launcher):
    """Workers are forked from a preloaded, single-threaded server: a few ms per worker."""

    def __init__(self, preload: tuple[str, ...]) -> None:
        self._preload = preload
        self._server: subprocess.Popen[bytes] | None = None
        self._ctrl: socket.socket | None = None
        self._frames = FrameBuffer()
        self._waiting: dict[int, WorkerProcess] = {}  # request id -> process without a pid yet
        self._by_pid: dict[int, WorkerProcess] = {}
        self._next_request = 0
        self._ready = False
        self._stderr: io.FileIO | None = None  # read end of the server's stderr, drained by the I/O thread
        self._stderr_tail = bytearray()  # the last _STDERR_TAIL bytes of it
        self.failed_starts = 0  # servers in a row that died before saying "ready"

    def _start_server(self) -> socket.socket:
        try:
            ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        except (AttributeError, OSError):
            ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        statement = f"from jobmanager_nb.processes.zygote import main; main({theirs.fileno()}, {list(self._preload)!r})"
        err_r, err_w = os.pipe()
        try:
            self._server = subprocess.Popen(
                _bootstrap(statement),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=err_w,
                pass_fds=(theirs.fileno(),),
                close_fds=True,
                start_new_session=True,
            )
        except BaseException:
            os.close(err_r)
            ours.close()
            raise
        finally:
            theirs.close()
            os.close(err_w)
        os.set_blocking(err_r, False)
        self._stderr = open(err_r, "rb", buffering=0)  # noqa: SIM115  (closed by _close_stderr)
        self._stderr_tail.clear()
        self._ctrl = ours
        self._frames = FrameBuffer()
        self._ready = False
        return ours

    def launch(self, process: WorkerProcess) -> list[Notice]:
        """Ask the fork server for a worker (starting the server first if there is none). A server
        found dead here (killed before the I/O thread saw its socket close) is replaced at once,
        and its workers are returned as ``lost``."""
        notices: list[Notice] = []
        try:
            try:
                request = self._request(process)
            except (BrokenPipeError, ConnectionResetError):
                notices = self._server_lost()
                request = self._request(process)
        finally:
            process.release_child_fds()
        self._waiting[request] = process
        return notices

    def _request(self, process: WorkerProcess) -> int:
        ctrl = self._ctrl or self._start_server()
        request = self._next_request
        self._next_request += 1
        socket.send_fds(ctrl, [REQUEST.pack(request)], list(process.fds_for_child()))
        return request

    def control_socket(self) -> socket.socket | None:
        return self._ctrl

    def server_output(self) -> io.FileIO | None:
        return self._stderr

    def drain_server_output(self, limit: int = 16) -> None:
        """Read up to ``limit`` chunks of the server's stderr (the selector calls again if there is
        more), keeping the last 8 KiB; close the pipe at its end."""
        pipe = self._stderr
        if pipe is None:
            return
        tail = self._stderr_tail
        for _ in range(limit):
            try:
                data = pipe.read(_READ_SIZE)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                data = b""
            if data is None:
                return  # nothing more for now
            if not data:
                self._close_stderr()
                return
            tail += data
            if len(tail) > _STDERR_TAIL:
                del tail[:-_STDERR_TAIL]

    def _close_stderr(self) -> None:
        pipe, self._stderr = self._stderr, None
        if pipe is not None:
            with contextlib.suppress(OSError):
                pipe.close()

    def on_control(self) -> list[Notice]:
        ctrl = self._ctrl
        if ctrl is None:
            return []
        try:
            data = ctrl.recv(1 << 16, socket.MSG_DONTWAIT)
        except (BlockingIOError, InterruptedError):
            return []
        except OSError:
            data = b""
        if not data:
            return self._server_lost()
        notices: list[Notice] = []
        for frame in self._frames.feed(data):
            kind = frame[0]
            if kind == "ready":
                self._ready = True
                self.failed_starts = 0
            elif kind == "started":
                process = self._waiting.pop(frame[1], None)
                if process is not None:
                    process.pid = frame[2]
                    self._by_pid[frame[2]] = process
                    notices.append(Notice("started", process))
            elif kind == "exited":
                process = self._by_pid.pop(frame[1], None)
                if process is not None:
                    notices.append(Notice("exited", process, returncode=frame[2]))
            elif kind == "failed":
                process = self._waiting.pop(frame[1], None)
                if process is not None:
                    notices.append(Notice("lost", process, reason=f"could not start a worker: {frame[2]}"))
        return notices

    def _server_lost(self) -> list[Notice]:
        """The fork server died: its workers' exit statuses are lost (they die with it on Linux)."""
        if not self._ready:
            self.failed_starts += 1
        server = self._server
        code: int | None = None
        self.drain_server_output()  # in case it is still writing a last word as it exits
        if server is not None:
            try:
                code = server.wait(timeout=1.0)
            except subprocess.TimeoutExpired:
                server.kill()
                code = server.wait()
        self.drain_server_output(limit=4)  # the server is gone: the rest of its stderr is there to read
        self._close_stderr()
        detail = self._stderr_tail.decode("utf-8", "replace").strip()
        self._stderr_tail.clear()
        if server is not None:
            log.warning(
                "jobmanager_nb: the worker fork server (pid %s) ended with code %s%s",
                server.pid,
                code,
                f"; the end of its stderr:\n{detail}" if detail else "",
            )
        how = f" (pid {server.pid}, exit code {code})" if server is not None else ""
        notices = self._lose_all(f"the worker fork server died{how}, so how this worker ended is unknown")
        self._server = None
        return notices

    def _lose_all(self, reason: str) -> list[Notice]:
        """Forget every worker of the fork server (reporting each as lost) and its control socket.
        The process group of each worker whose pid is known is killed: a worker dies with its
        server (``PR_SET_PDEATHSIG``) before it can end what its job started."""
        notices = [Notice("lost", p, reason=reason) for p in [*self._waiting.values(), *self._by_pid.values()]]
        for pid in self._by_pid:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)
        self._waiting.clear()
        self._by_pid.clear()
        if self._ctrl is not None:
            self._ctrl.close()
        self._ctrl = None
        return notices

    def close(self, timeout: float = 1.0) -> list[Notice]:
        notices = self._lose_all("the worker fork server was stopped, so how this worker ended is unknown")
        self._close_stderr()  # first: a server busy writing to it gets EPIPE instead of blocking
        server, self._server = self._server, None
        if server is not None:
            try:
                server.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
        return notices
