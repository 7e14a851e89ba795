"""jobmanager_nb's fork server: a single-threaded process that forks fresh worker processes.

:class:`~jobmanager_nb.executors.local.ProcessExecutor` starts one per executor (a fresh
interpreter with the parent's ``sys.path``). It imports the worker code, then serves requests on
its control socket, importing the modules of its preload list one by one while no request is
waiting (the first worker does not wait for them; later ones find them loaded). Forking from
this clean, thread-free process is safe and takes a few milliseconds, where starting a new
interpreter takes tens of them; unlike :mod:`multiprocessing`'s fork server it never re-imports
the parent's ``__main__`` script, and each worker becomes the leader of its own session.

Requests (parent → server): 8 bytes (a request id) carrying five descriptors: the worker's end of
its parent socket, the write ends of its stdout and stderr pipes, and their read ends. Reports
(server → parent), as :mod:`jobmanager_nb.processes.wire` frames: ``("ready", server_pid)``,
``("started", request_id, pid)``, ``("failed", request_id, error_text)`` and
``("exited", pid, returncode)`` (negative: killed by that signal). The server exits when the
parent closes the control socket (or dies), killing the process group of every worker it has not
reaped (what their jobs started); on Linux the workers die with the server anyway
(``PR_SET_PDEATHSIG``), besides noticing the parent's end themselves.
"""

from __future__ import annotations

import gc
import os
import select
import signal
import socket
import struct
import sys

from jobmanager_nb.processes.wire import encode

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from typing import NoReturn

__all__ = ["REQUEST", "main"]

REQUEST = struct.Struct("!Q")
_PR_SET_PDEATHSIG = 1
_PR_SET_NAME = 15  # the short name that top and ps -o comm show


def main(ctrl_fd: int, preload: list[str]) -> None:
    """Serve fork requests on ``ctrl_fd`` until the parent closes it."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    import jobmanager_nb.processes.child  # noqa: F401  (the code every worker runs)

    gc.freeze()  # keep the collector off these objects, so that workers share their pages longer
    to_preload = list(preload)  # imported between requests, so that the first worker need not wait
    ctrl = socket.socket(fileno=ctrl_fd)
    ctrl.setblocking(True)
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_r, False)
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda signum, frame: None)
    devnull = os.open(os.devnull, os.O_RDWR)
    prctl = _load_prctl()
    if prctl is not None:
        prctl(_PR_SET_NAME, b"jobmanager-fsrv")  # type: ignore[operator]
    ctrl.sendall(encode(("ready", os.getpid())))
    pending = b""
    workers: set[int] = set()  # forked and not reaped yet
    while True:
        try:
            readable, _, _ = select.select([ctrl.fileno(), wake_r], [], [], 0 if to_preload else None)
        except InterruptedError:
            continue
        if not readable and to_preload:
            _preload(to_preload.pop(0))
            if not to_preload:
                gc.freeze()
            continue
        if wake_r in readable:
            try:
                while os.read(wake_r, 512):
                    pass
            except BlockingIOError:
                pass
        _reap(ctrl, workers)
        if ctrl.fileno() not in readable:
            continue
        message, fds, _, _ = socket.recv_fds(ctrl, REQUEST.size - len(pending), 5)
        if not message and not fds:
            _end_workers(workers)
            return  # the parent closed the socket or died
        pending += message
        if len(pending) < REQUEST.size or len(fds) != 5:
            for fd in fds:
                os.close(fd)
            if len(pending) >= REQUEST.size:
                pending = b""
            continue
        (request_id,) = REQUEST.unpack(pending)
        pending = b""
        pid = _fork_worker(ctrl, request_id, fds, devnull, (wake_r, wake_w), prctl)
        if pid is not None:
            workers.add(pid)


def _preload(name: str) -> None:
    try:  # noqa: SIM105
        __import__(name)
    except Exception:
        pass  # only a speed-up: a worker imports the module itself if its job needs it


def _fork_worker(
    ctrl: socket.socket, request_id: int, fds: list[int], devnull: int, wake: tuple[int, int], prctl: object
) -> int | None:
    server_pid = os.getpid()
    try:
        pid = os.fork()
    except OSError as exc:
        for fd in fds:
            os.close(fd)
        ctrl.sendall(encode(("failed", request_id, f"fork() failed: {exc}")))
        return None
    if pid == 0:
        _become_worker(ctrl, fds, devnull, wake, prctl, server_pid)
    for fd in fds:
        os.close(fd)
    ctrl.sendall(encode(("started", request_id, pid)))
    return pid


def _become_worker(
    ctrl: socket.socket, fds: list[int], devnull: int, wake: tuple[int, int], prctl: object, server_pid: int
) -> NoReturn:
    conn_fd, out_w, err_w, out_r, err_r = fds
    try:
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        ctrl.close()
        for fd in wake:
            os.close(fd)
        os.setsid()
        if prctl is not None:
            prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)  # type: ignore[operator]
            if os.getppid() != server_pid:  # the server died before the line above
                os._exit(0)
            prctl(_PR_SET_NAME, b"jobmanager-wkr")  # type: ignore[operator]
        os.dup2(devnull, 0)
        os.dup2(out_w, 1)
        os.dup2(err_w, 2)
        for fd in (out_w, err_w, devnull):
            os.close(fd)
        from jobmanager_nb.processes.child import main as worker_main

        worker_main(conn_fd, out_r, err_r)
    finally:
        os._exit(70)


def _reap(ctrl: socket.socket, workers: set[int]) -> None:
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        workers.discard(pid)
        ctrl.sendall(encode(("exited", pid, os.waitstatus_to_exitcode(status))))


def _end_workers(workers: set[int]) -> None:
    """The parent is gone: kill every worker's process group (what its job started) now, since
    ``PR_SET_PDEATHSIG`` kills the workers themselves as this server exits, before they could."""
    for pid in workers:
        try:  # noqa: SIM105  (contextlib is not imported here)
            os.killpg(pid, signal.SIGKILL)
        except OSError:
            pass


def _load_prctl() -> object:
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl
    except Exception:
        return None
