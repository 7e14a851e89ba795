"""Crash-safe file replacement: a write either fully happens or not at all.

:func:`write_atomically` writes the new content to a temporary file in the same folder, forces it to
disk, renames it over the target (``os.replace`` is atomic on POSIX and Windows), then forces the
folder entry to disk. A process killed at any instant leaves either the old file or the new one,
never a mix; at worst a stray temporary file, which :func:`remove_stale_temp_files` clears.

An ``OSError`` before the rename (a full disk, a read-only or unwritable folder, an I/O error) leaves the
target exactly as it was and removes the temporary file. The rename is the point of no return: if only
the final sync of the folder fails, the new content is in place (every reader sees it) but might not
survive a power cut; that is logged as a warning on the ``jobmanager_nb`` logger, not raised, since
reporting a change that did happen as failed would mislead the caller.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import secrets
from pathlib import Path

__all__ = ["check_folder_writable", "remove_stale_temp_files", "stale_temp_files", "write_atomically"]

log = logging.getLogger("jobmanager_nb")

# A folder sync that fails with these means the file system cannot sync folders at all (some FUSE and
# network file systems): the rename is then as durable as it gets there, as on Windows.
_SYNC_UNSUPPORTED = frozenset({errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EBADF})

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)


def _temp_prefix(path: Path) -> str:
    return f".{path.name}."


def write_atomically(path: Path, data: bytes, *, mode: int = 0o600) -> os.stat_result:
    """Replace ``path`` with ``data``; the new file has permissions ``mode``.

    Returns the new file's ``stat`` (taken before the rename, which does not change it), so the
    caller can recognise its own write later without another system call. Raises the ``OSError`` of a
    failed write, in which case ``path`` is unchanged.
    """
    temp = path.with_name(f"{_temp_prefix(path)}{secrets.token_hex(6)}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW | _CLOEXEC, mode)
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
            written = os.fstat(fd)
        finally:
            os.close(fd)
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise
    try:
        _fsync_directory(path.parent)
    except OSError as exc:
        if exc.errno not in _SYNC_UNSUPPORTED:
            log.warning(
                "jobmanager_nb: %s was written, but syncing its folder failed (%s: %s), so the change might "
                "not survive a power cut or crash of the machine. Check the disk.",
                path,
                errno.errorcode.get(exc.errno or 0, exc.errno),
                exc.strerror or exc,
            )
    return written


def _fsync_directory(directory: Path) -> None:
    """Make a rename durable. Windows cannot open folders; there the rename is as durable as it gets."""
    if os.name == "nt":  # pragma: no cover - exercised on Windows only
        return
    fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | _CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def stale_temp_files(path: Path) -> list[Path]:
    """Temporary files that writers of ``path`` left behind when they were killed mid-write."""
    prefix = _temp_prefix(path)
    try:
        names = os.listdir(path.parent)
    except FileNotFoundError:
        return []
    return sorted(path.parent / n for n in names if n.startswith(prefix) and n.endswith(".tmp"))


def remove_stale_temp_files(path: Path) -> int:
    """Delete :func:`stale_temp_files`. Call it only while holding the writers' lock. Returns the count."""
    removed = 0
    for temp in stale_temp_files(path):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
            removed += 1
    return removed


def check_folder_writable(path: Path) -> None:
    """Raise the ``OSError`` that :func:`write_atomically` would meet creating its temporary file next to
    ``path``: create one such file (named as :func:`stale_temp_files` finds them) and remove it.

    Permission bits are not enough to tell (root ignores them; ACLs, read-only mounts), so this asks the
    file system. Call it only while holding the writers' lock.
    """
    temp = path.with_name(f"{_temp_prefix(path)}{secrets.token_hex(6)}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW | _CLOEXEC, 0o600)
    try:
        os.close(fd)
    finally:
        os.unlink(temp)
