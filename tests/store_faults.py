"""File-system faults for the store's tests: real ones on a small tmpfs, and injected ones where a real
one cannot be had.

Real faults (we are root here and in CI):

* :func:`small_tmpfs` mounts a tmpfs of a given size on a new temporary folder and always unmounts it
  (lazily if it is busy) and removes the folder, even when the body raises;
* :func:`fill` fills a file system until the kernel says ``ENOSPC``; deleting the file it returns frees
  the space again (:func:`disk_full` does both);
* :func:`remount_read_only` / :func:`remount_writable` turn a mount read-only (``EROFS``) and back
  (:func:`read_only` does both).

Injected faults: :func:`failing_writes` makes the OS-level calls the store writes with (``os.open`` for
writing, ``os.write``, ``os.fsync``, ``os.replace``, ``os.mkdir``, ``os.unlink``) fail with a given
errno, for paths under a folder. Use it where ``mount`` is refused, and for ``EACCES``, which root
never gets from permission bits.

:func:`write_fault` puts the two together for a test: a folder in which a fault can be switched on and
off, real when it can be (``ENOSPC``, ``EROFS``) and injected otherwise; it never skips.
"""

from __future__ import annotations

import contextlib
import errno as errnos
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, NoReturn

__all__ = [
    "MOUNT_PREFIX",
    "WRITE_SITES",
    "InjectedFaults",
    "MountRefused",
    "WriteFault",
    "disk_full",
    "failing_writes",
    "fill",
    "is_mounted",
    "mounts_left",
    "read_only",
    "remount_read_only",
    "remount_writable",
    "small_tmpfs",
    "write_fault",
]

#: The folders :func:`small_tmpfs` mounts on are named with this prefix (see :func:`mounts_left`).
MOUNT_PREFIX = "jobmanager-store-tmpfs-"

#: The OS-level write calls :func:`failing_writes` can make fail. ``open`` is an ``os.open`` that may
#: create or write (a read-only open always works); ``fsync`` is a file's, ``fsync_dir`` a folder's.
WRITE_SITES: tuple[str, ...] = ("mkdir", "open", "write", "fsync", "fsync_dir", "replace", "unlink")

_REFUSALS = ("permission denied", "not permitted", "must be superuser", "only root", "are not root")
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND


class MountRefused(Exception):
    """This machine does not let us mount (no ``mount`` program, not root, or no CAP_SYS_ADMIN)."""


# ---------------------------------------------------------------------------------------- real faults


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=60)


@contextlib.contextmanager
def small_tmpfs(size: int = 512 * 1024) -> Iterator[Path]:
    """Mount a real tmpfs of ``size`` bytes on a new temporary folder and yield that folder.

    On exit, whatever happened in the body, the tmpfs is unmounted (``umount -l`` if it is busy) and the
    folder removed. Raises :class:`MountRefused` when mounting is not allowed here, leaving nothing behind.
    """
    folder = Path(tempfile.mkdtemp(prefix=MOUNT_PREFIX))
    try:
        try:
            out = _run("mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(folder))
        except FileNotFoundError as exc:
            raise MountRefused("there is no mount program") from exc
        if out.returncode != 0:
            message = (out.stderr or out.stdout).strip()
            if os.geteuid() != 0 or any(r in message.lower() for r in _REFUSALS):
                raise MountRefused(f"mount -t tmpfs was refused: {message}")
            raise RuntimeError(f"mount -t tmpfs on {folder} failed: {message}")
    except BaseException:
        folder.rmdir()
        raise
    try:
        yield folder
    finally:
        _unmount(folder)


def _unmount(folder: Path) -> None:
    """Unmount ``folder`` (lazily if busy), then remove it; raise if it stays mounted."""
    if is_mounted(folder):
        out = _run("umount", str(folder))
        if out.returncode != 0 and is_mounted(folder):
            out = _run("umount", "-l", str(folder))
        if is_mounted(folder):
            raise RuntimeError(f"could not unmount the test tmpfs on {folder}: {out.stderr.strip()}")
    shutil.rmtree(folder, ignore_errors=True)


def _mount_points() -> list[str]:
    """Every mount point of this process's mount namespace, decoded from /proc/self/mountinfo."""
    with open("/proc/self/mountinfo", encoding="utf-8", errors="replace") as file:
        points = [line.split()[4] for line in file if line.strip()]
    # mountinfo escapes space, tab, newline and backslash as octal
    return [p.encode("latin-1", "replace").decode("unicode_escape") for p in points]


def is_mounted(folder: Path) -> bool:
    """Whether something is mounted on ``folder`` right now."""
    return str(Path(folder).resolve()) in _mount_points()


def mounts_left() -> list[str]:
    """Mount points made by :func:`small_tmpfs` that are still mounted (there should be none)."""
    return [p for p in _mount_points() if Path(p).name.startswith(MOUNT_PREFIX)]


def fill(folder: Path) -> Path:
    """Write a file in ``folder`` until its file system is full (a real ``ENOSPC``); return that file.

    Deleting the file frees the space. Raises ``RuntimeError`` if the file system never fills (not a
    small one).
    """
    filler = Path(folder) / "filler"
    chunk = b"\0" * 65536
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        written = 0
        while written < 1 << 30:
            try:
                written += os.write(fd, chunk)
            except OSError as exc:
                if exc.errno == errnos.ENOSPC:
                    return filler
                raise
    finally:
        os.close(fd)
    raise RuntimeError(f"{folder} took 1 GiB without filling up: fill() needs a small file system")


@contextlib.contextmanager
def disk_full(folder: Path) -> Iterator[Path]:
    """The file system of ``folder`` is full (:func:`fill`) inside the block, and has room again after it."""
    filler = fill(folder)
    try:
        yield filler
    finally:
        filler.unlink()


def remount_read_only(mount: Path) -> None:
    """Remount ``mount`` read-only: from now on every write on it fails with a real ``EROFS``."""
    out = _run("mount", "-o", "remount,ro", str(mount))
    if out.returncode != 0:
        raise RuntimeError(f"could not remount {mount} read-only: {out.stderr.strip()}")


def remount_writable(mount: Path) -> None:
    """Undo :func:`remount_read_only`."""
    out = _run("mount", "-o", "remount,rw", str(mount))
    if out.returncode != 0:
        raise RuntimeError(f"could not remount {mount} writable: {out.stderr.strip()}")


@contextlib.contextmanager
def read_only(mount: Path) -> Iterator[None]:
    """``mount`` is read-only inside the block and writable again after it."""
    remount_read_only(mount)
    try:
        yield
    finally:
        remount_writable(mount)


# ---------------------------------------------------------------------------------------- injected faults


class InjectedFaults:
    """What :func:`failing_writes` yields: the fault it injects and ``hits``, every call it made fail,
    as ``(site, path)`` pairs in order."""

    def __init__(self, err: int, sites: Iterable[str], under: str | os.PathLike[str] | None) -> None:
        unknown = set(sites) - set(WRITE_SITES)
        if unknown:
            raise ValueError(f"unknown write sites {sorted(unknown)}; the sites are {', '.join(WRITE_SITES)}")
        self.errno = err
        self.sites = frozenset(sites)
        self.under = None if under is None else os.path.abspath(under)
        self.hits: list[tuple[str, str]] = []
        self._fds: dict[int, str] = {}  # descriptors opened under ``under``, and their paths

    def _inside(self, path: Any) -> str | None:
        """The absolute path if ``path`` is one this injection covers, else None."""
        if isinstance(path, int):
            return None
        full = os.path.abspath(os.fsdecode(path))
        if self.under is None or full == self.under or full.startswith(self.under.rstrip(os.sep) + os.sep):
            return full
        return None

    def _fail(self, site: str, path: str, path2: str | None = None) -> NoReturn:
        self.hits.append((site, path))
        # OSError(errno, ...) builds the matching subclass (PermissionError for EACCES, ...), as the OS would
        raise OSError(self.errno, os.strerror(self.errno), path, None, path2)


@contextlib.contextmanager
def failing_writes(
    err: int,
    sites: Iterable[str] = WRITE_SITES,
    *,
    under: str | os.PathLike[str] | None = None,
) -> Iterator[InjectedFaults]:
    """Inside the block, the store's OS-level write calls on paths under ``under`` (everywhere if None)
    fail with ``OSError(err)``, the way the kernel would report it; ``sites`` picks which calls (see
    :data:`WRITE_SITES`). Reads keep working. Everything is restored on exit, however the block ends.

    It patches the ``os`` functions themselves, so it reaches every caller that looks them up at call
    time (the store, filelock); keep ``under`` narrow, and use it from one thread.
    """
    faults = InjectedFaults(err, sites, under)
    real = {name: getattr(os, name) for name in ("open", "close", "write", "fsync", "replace", "rename", "mkdir")}
    real_unlink, real_remove = os.unlink, os.remove

    def open_(path: Any, flags: int, mode: int = 0o777, *, dir_fd: int | None = None) -> int:
        full = faults._inside(path) if dir_fd is None else None
        if full is not None and flags & _WRITE_FLAGS and "open" in faults.sites:
            faults._fail("open", full)
        fd: int = real["open"](path, flags, mode, dir_fd=dir_fd)
        if full is not None:
            faults._fds[fd] = full
        return fd

    def close(fd: int) -> None:
        faults._fds.pop(fd, None)
        real["close"](fd)

    def write(fd: int, data: Any) -> int:
        if fd in faults._fds and "write" in faults.sites:
            faults._fail("write", faults._fds[fd])
        written: int = real["write"](fd, data)
        return written

    def fsync(fd: Any) -> None:
        path = faults._fds.get(fd) if isinstance(fd, int) else None
        if path is not None:
            site = "fsync_dir" if os.path.isdir(path) else "fsync"
            if site in faults.sites:
                faults._fail(site, path)
        real["fsync"](fd)

    def renamer(name: str) -> Any:
        def rename(src: Any, dst: Any, **kwargs: Any) -> None:
            full = faults._inside(src) or faults._inside(dst)
            if full is not None and "replace" in faults.sites:
                faults._fail("replace", os.path.abspath(os.fsdecode(src)), os.path.abspath(os.fsdecode(dst)))
            real[name](src, dst, **kwargs)

        return rename

    def mkdir(path: Any, mode: int = 0o777, *, dir_fd: int | None = None) -> None:
        full = faults._inside(path) if dir_fd is None else None
        if full is not None and "mkdir" in faults.sites:
            faults._fail("mkdir", full)
        real["mkdir"](path, mode, dir_fd=dir_fd)

    def unlinker(original: Any) -> Any:
        def unlink(path: Any, *, dir_fd: int | None = None) -> None:
            full = faults._inside(path) if dir_fd is None else None
            if full is not None and "unlink" in faults.sites:
                faults._fail("unlink", full)
            original(path, dir_fd=dir_fd)

        return unlink

    patches = {
        "open": open_,
        "close": close,
        "write": write,
        "fsync": fsync,
        "replace": renamer("replace"),
        "rename": renamer("rename"),
        "mkdir": mkdir,
        "unlink": unlinker(real_unlink),
        "remove": unlinker(real_remove),
    }
    originals = {**real, "unlink": real_unlink, "remove": real_remove}
    try:
        for name, function in patches.items():
            setattr(os, name, function)
        yield faults
    finally:
        for name, function in originals.items():
            setattr(os, name, function)


# ---------------------------------------------------------------------------------------- for a test


class WriteFault:
    """A folder (``folder``) in which a write fault can be switched on (:meth:`start`) and off
    (:meth:`clear`). ``real`` says whether the kernel makes it (a tmpfs that is full or read-only) or
    :func:`failing_writes` injects it; ``how`` says which, for messages."""

    def __init__(self, err: int, folder: Path, *, mount: Path | None, sites: Iterable[str] = WRITE_SITES) -> None:
        self.errno = err
        self.folder = folder
        self.real = mount is not None
        self._mount = mount
        self._sites = tuple(sites)
        self._active: contextlib.ExitStack | None = None
        self.injected: InjectedFaults | None = None
        kind = {errnos.ENOSPC: "a full tmpfs", errnos.EROFS: "a read-only tmpfs"}.get(err, "a tmpfs")
        name = errnos.errorcode.get(err, str(err))
        self.how = kind if self.real else f"injected {name} at {', '.join(self._sites)}"

    def start(self) -> None:
        """Switch the fault on: writes in ``folder`` now fail with ``errno``."""
        if self._active is not None:
            raise RuntimeError("the fault is already on")
        stack = contextlib.ExitStack()
        if self._mount is None:
            self.injected = stack.enter_context(failing_writes(self.errno, self._sites, under=self.folder))
        elif self.errno == errnos.ENOSPC:
            stack.enter_context(disk_full(self._mount))
        elif self.errno == errnos.EROFS:
            stack.enter_context(read_only(self._mount))
        else:  # pragma: no cover - write_fault only mounts for ENOSPC and EROFS
            raise ValueError(f"no real fault for {self.errno}")
        self._active = stack

    def clear(self) -> None:
        """Switch the fault off (free the space, remount writable, or stop injecting)."""
        if self._active is not None:
            stack, self._active = self._active, None
            stack.close()

    @property
    def active(self) -> bool:
        return self._active is not None


@contextlib.contextmanager
def write_fault(
    err: int,
    fallback_folder: Path,
    *,
    sites: Iterable[str] = WRITE_SITES,
    size: int = 512 * 1024,
) -> Iterator[WriteFault]:
    """A :class:`WriteFault` for ``err``, off at first.

    ``ENOSPC`` and ``EROFS`` are real, on a :func:`small_tmpfs` of ``size`` bytes, unless mounting is
    refused here; then, and for every other errno, they are injected with :func:`failing_writes` at
    ``sites`` under ``fallback_folder``. On exit the fault is cleared and the tmpfs unmounted.
    """
    with contextlib.ExitStack() as stack:
        mount: Path | None = None
        if err in (errnos.ENOSPC, errnos.EROFS):
            with contextlib.suppress(MountRefused):
                mount = stack.enter_context(small_tmpfs(size))
        fault = WriteFault(err, mount or Path(fallback_folder), mount=mount, sites=sites)
        stack.callback(fault.clear)  # runs before the unmount (last in, first out)
        yield fault
