"""The parent's record of one worker process: its socket, its output pipes, its pid and fate.

A :class:`WorkerProcess` is created *before* the OS process exists: it makes the socket pair and
the two output pipes, and the launcher hands the child's ends to the new process. The worker
forwards its own output as frames (in order with its other reports), reading its pipes for as long
as it lives and dropping what is past the output limit, so they never fill up (after ``"done"``
too); the parent keeps a copy of the pipes' read ends only to collect what is left in them when the
worker dies (a bounded amount), and then closes them, so a process the job left behind that goes
on writing gets EPIPE instead of blocking. Everything here
is non-blocking for the I/O thread: the socket is non-blocking, read and cut into frames, output is
decoded incrementally as UTF-8 and bounded. Sending never blocks either: any thread appends frames
to the process's outgoing buffer (:meth:`enqueue`, under :attr:`send_lock`, which also guards
closing), and what the socket takes is written at once; the rest waits in the buffer, in order,
until the I/O thread sees the socket writable (:meth:`write_pending`). A worker that does not read
holds only its own bytes, never a thread.
"""

from __future__ import annotations

import codecs
import contextlib
import itertools
import os
import signal
import socket
import subprocess
import threading
from collections import deque
from typing import Any, Literal

from jobmanager_nb.processes.wire import FrameBuffer, encode

__all__ = ["Stream", "WorkerProcess"]

Stream = Literal["stdout", "stderr"]

_READ_SIZE = 1 << 16
_TRUNCATED_NOTE = "\n[output truncated: the job wrote more than {limit} bytes; the rest was dropped]\n"
_serial = itertools.count(1)


class WorkerProcess:
    """One worker process, from before its birth until it has been reaped."""

    def __init__(self, output_limit: int) -> None:
        self.serial = next(_serial)
        self.sock, child_sock = socket.socketpair()
        self.sock.setblocking(False)
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        os.set_blocking(out_r, False)
        os.set_blocking(err_r, False)
        self.child_fds: tuple[int, int, int] | None = (child_sock.detach(), out_w, err_w)
        self.outputs: dict[Stream, int] = {"stdout": out_r, "stderr": err_r}
        self._decoders = {
            "stdout": codecs.getincrementaldecoder("utf-8")("replace"),
            "stderr": codecs.getincrementaldecoder("utf-8")("replace"),
        }
        self.frames = FrameBuffer()
        self.send_lock = threading.RLock()  # (reentrant: a caller may queue several frames under it)
        # Frames not written yet, in order (the first one from ``_out_offset`` on): guarded by send_lock.
        self._out: deque[bytes] = deque()
        self._out_offset = 0
        self.want_write = False  # the selector watches the socket for writing too: I/O thread only
        self.pid: int | None = None
        self.popen: subprocess.Popen[bytes] | None = None
        self.pidfd: int | None = None
        self.returncode: int | None = None
        self.exited = False
        self.conn_open = True
        self.run: Any = None  # the executor's run object, once a task was handed over
        self.task_sent = False  # the run's task, then the start gate's answer: guarded by send_lock
        self.answer_sent = False
        self.kill_requested = False
        self.stopping = False
        self.deadline: float | None = None  # kill if still alive by then (linger after "done", stopping)
        self.stray_output = ""  # the tail of output that belongs to no run, for the log
        self._output_limit = output_limit
        self._output_bytes = 0
        self._truncated = False

    # --- birth -----------------------------------------------------------------------------

    def fds_for_child(self) -> tuple[int, int, int, int, int]:
        """What the new process gets: its socket end, the write ends of its stdout and stderr pipes,
        and their read ends (it forwards its own output; ours are for what is left when it dies)."""
        assert self.child_fds is not None
        return (*self.child_fds, self.outputs["stdout"], self.outputs["stderr"])

    def release_child_fds(self) -> None:
        """Close the parent's copies of the child's ends (once the launcher handed them over)."""
        fds, self.child_fds = self.child_fds, None
        for fd in fds or ():
            _close(fd)

    # --- talking -------------------------------------------------------------------------------

    def enqueue(self, data: bytes) -> bool:
        """Append encoded frame bytes to what goes to the worker, and write what the socket takes now
        without waiting. True when bytes are left for the I/O thread to write (it must be woken);
        nothing is kept once the process is gone."""
        with self.send_lock:
            if self.sock.fileno() < 0:
                return False
            self._out.append(data)
            return self._write_locked()

    def write_pending(self) -> bool:
        """Write what the socket takes of the outgoing buffer, without waiting; True if bytes are left."""
        with self.send_lock:
            return self._write_locked()

    @property
    def has_pending(self) -> bool:
        return bool(self._out)

    def _write_locked(self) -> bool:
        out = self._out
        while out:
            head = out[0]
            try:
                sent = self.sock.send(memoryview(head)[self._out_offset :] if self._out_offset else head)
            except (BlockingIOError, InterruptedError):
                return True
            except OSError:  # the worker is gone (EPIPE, closed): its exit is reported by the I/O thread
                self._drop_locked()
                return False
            self._out_offset += sent
            if self._out_offset >= len(head):
                out.popleft()
                self._out_offset = 0
        return False

    def _drop_locked(self) -> None:
        self._out.clear()
        self._out_offset = 0

    def drop_pending(self) -> None:
        """Forget what was not written (the worker is gone)."""
        with self.send_lock:
            self._drop_locked()

    def stop(self) -> bool:
        """Ask an idle spare to exit; True when bytes are left for the I/O thread to write."""
        self.stopping = True
        return self.enqueue(encode(("stop",)))

    def read_frames(self) -> tuple[list[Any], bool]:
        """Frames that have arrived so far, and whether the worker's end is closed."""
        frames: list[Any] = []
        while True:
            try:
                data = self.sock.recv(_READ_SIZE)
            except (BlockingIOError, InterruptedError):
                return frames, False
            except OSError:
                data = b""
            if not data:
                self.conn_open = False
                return frames, True
            frames.extend(self.frames.feed(data))
            if len(data) < _READ_SIZE:
                return frames, False

    # --- output --------------------------------------------------------------------------------

    def feed_output(self, stream: Stream, data: bytes) -> list[str]:
        """Decode output the worker forwarded (bounded like :meth:`read_output`)."""
        return self._bounded(stream, data)

    def read_output(self, stream: Stream, max_reads: int = 16) -> list[str]:
        """Decoded text read from ``stream``: what is in the pipe now, up to ``max_reads`` reads of
        64 KiB (a process the job started may go on writing into it; the caller closes the pipe with
        :meth:`close_output` after this, and such a writer then gets EPIPE). Past the output limit
        the text is dropped, after one note saying so.
        """
        fd = self.outputs.get(stream)
        if fd is None:
            return []
        chunks: list[bytes] = []
        eof = False
        for _ in range(max_reads):
            try:
                data = os.read(fd, _READ_SIZE)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                data = b""
            if not data:
                eof = True
                break
            chunks.append(data)
        texts: list[str] = []
        if chunks:
            texts = self._bounded(stream, b"".join(chunks))
        if eof:
            tail = self._decoders[stream].decode(b"", final=True)
            if tail and not self._truncated:
                texts.append(tail)
        return texts

    def _bounded(self, stream: Stream, data: bytes) -> list[str]:
        if self._truncated:
            return []
        room = self._output_limit - self._output_bytes
        self._output_bytes += len(data)
        if len(data) <= room:
            text = self._decoders[stream].decode(data)
            return [text] if text else []
        self._truncated = True
        text = self._decoders[stream].decode(data[: max(room, 0)], final=True)
        note = _TRUNCATED_NOTE.format(limit=self._output_limit)
        return [text, note] if text else [note]

    def close_output(self, stream: Stream) -> None:
        fd = self.outputs.pop(stream, None)
        if fd is not None:
            _close(fd)

    # --- death ---------------------------------------------------------------------------------

    def kill(self) -> None:
        """SIGKILL the worker and its process group (what the job started); once the pid is known."""
        self.kill_requested = True
        pid = self.pid
        if pid is None or self.exited:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)  # the worker leads its own session and group
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)  # in case it has not become a group leader yet

    def close(self) -> None:
        """Release every descriptor (after the process was reaped)."""
        self.release_child_fds()
        with self.send_lock:
            self.sock.close()
            self._drop_locked()
        for stream in list(self.outputs):
            self.close_output(stream)
        if self.pidfd is not None:
            _close(self.pidfd)
            self.pidfd = None

    def __repr__(self) -> str:
        state = "exited" if self.exited else "running" if self.run is not None else "idle"
        return f"<WorkerProcess #{self.serial} pid={self.pid} {state}>"


def _close(fd: int) -> None:
    with contextlib.suppress(OSError):
        os.close(fd)
