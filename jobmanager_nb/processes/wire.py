"""Frames on the socket between the parent and a worker process (and its fork server).

A frame is an 8-byte big-endian length followed by that many bytes of pickle. Frames only ever
hold tuples of built-in values (strings, numbers, dicts, bytes); whatever the *job* sends or
receives (messages, results) travels inside them as pre-pickled ``bytes``, so that a value one
side cannot unpickle spoils that value only, never the stream.

The worker end (:class:`Channel`) does blocking reads and locked writes on a raw descriptor and
needs nothing beyond ``os``, ``pickle`` and ``threading``. The parent end reads whatever bytes
have arrived and lets :class:`FrameBuffer` cut them into frames, so it never blocks on a frame
that is still being written.
"""

from __future__ import annotations

import os
import pickle
import struct
import threading

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (workers stay light)
if TYPE_CHECKING:
    from typing import Any

__all__ = ["Channel", "FrameBuffer", "encode"]

_HEADER = struct.Struct("!Q")
_READ_CHUNK = 1 << 20


def encode(frame: Any) -> bytes:
    """The bytes of one frame holding ``frame``."""
    body = pickle.dumps(frame, protocol=pickle.HIGHEST_PROTOCOL)
    return _HEADER.pack(len(body)) + body


class FrameBuffer:
    """Collects bytes as they arrive and hands back every complete frame, in order."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[Any]:
        """Add ``data``; return the frames it completed (possibly none)."""
        buffer = self._buffer
        buffer += data
        frames: list[Any] = []
        start = 0
        size = len(buffer)
        while size - start >= _HEADER.size:
            (length,) = _HEADER.unpack_from(buffer, start)
            end = start + _HEADER.size + length
            if end > size:
                break
            frames.append(pickle.loads(memoryview(buffer)[start + _HEADER.size : end]))
            start = end
        if start:
            del buffer[:start]
        return frames


class Channel:
    """The worker's end of its parent socket: ``recv`` blocks, ``send`` is safe from any thread."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self._send_lock = threading.Lock()

    def send(self, frame: Any) -> None:
        """Write one frame; raises ``OSError`` when the parent is gone."""
        data = memoryview(encode(frame))
        with self._send_lock:
            while data:
                written = os.write(self.fd, data)
                data = data[written:]

    def recv(self) -> Any:
        """Read one frame; raises ``EOFError`` when the parent closed its end (or died)."""
        (length,) = _HEADER.unpack(self._read_exactly(_HEADER.size))
        return pickle.loads(self._read_exactly(length))

    def _read_exactly(self, count: int) -> bytes:
        chunks: list[bytes] = []
        remaining = count
        while remaining:
            chunk = os.read(self.fd, min(remaining, _READ_CHUNK))
            if not chunk:
                raise EOFError("the parent closed the connection")
            chunks.append(chunk)
            remaining -= len(chunk)
        return b"".join(chunks)
