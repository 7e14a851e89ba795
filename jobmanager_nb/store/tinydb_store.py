"""The file store: one-off records in a JSON file laid out as a TinyDB database, shared by kernels.

Layout (plain TinyDB can read it: tables of documents keyed by id)::

    {"jobmanager_nb": {"1": {"schema": 1, "revision": "<16 hex digits>"}},
     "one_off_jobs": {"1": {<record>}, "2": {<record>}, ...}}

Every change is a read-modify-write under an inter-process lock (``<file>.lock``, via filelock) and an
in-process ``RLock``, and ends with one crash-safe replacement of the file (:mod:`.atomic`). The parsed
file is cached: a file whose ``(st_ino, st_mtime_ns, st_size)`` and header revision (a random token
renewed by each write) are unchanged is not parsed again, and each record's JSON text is kept, so a
change re-encodes one record, not all of them. The file is read and written here, not through TinyDB:
its JSONStorage rewrites the file in place (a kill mid-write truncates it) and does not lock. TinyDB can
still read the file.

Any ``OSError`` while creating the folder or file, taking the lock or writing becomes a
:class:`~jobmanager_nb.errors.StoreWriteError` naming the file, the OS error and the fix; one while
reading the file (opening, ``fstat``, ``read``, ``lseek``) a :class:`~jobmanager_nb.errors.StoreError`
(not a ``StoreWriteError``) naming the file and the OS error. A failed change
leaves the file as it was and the cache as it was (the cache only follows a write that landed), so the
same call succeeds once the fault is gone.
"""

from __future__ import annotations

import errno
import json
import os
import secrets
import stat
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jobmanager_nb.clock import Clock
from jobmanager_nb.errors import CorruptStoreError, StoreError, StoreWriteError
from jobmanager_nb.store.atomic import check_folder_writable, remove_stale_temp_files, write_atomically
from jobmanager_nb.store.base import DEFAULT_MAX_FINISHED, StoreBase
from jobmanager_nb.store.records import OneOffRecord

if TYPE_CHECKING:
    from filelock import BaseFileLock

__all__ = ["DEFAULT_STORE_PATH", "HEADER_TABLE", "RECORDS_TABLE", "SCHEMA_VERSION", "TinyDBStore"]

#: Where a notebook keeps its one-off records: relative, so next to the notebook (the kernel's cwd).
DEFAULT_STORE_PATH = Path(".jobmanager/jobs.json")

#: The file format version this package writes and understands.
SCHEMA_VERSION = 1

HEADER_TABLE = "jobmanager_nb"
RECORDS_TABLE = "one_off_jobs"

_HEAD_BYTES = 96  # the header, revision included, always fits here
_FILE_MODE = 0o600
_DIR_MODE = 0o700

_FileKey = tuple[int, int, int]


class TinyDBStore(StoreBase):
    """One-off records in a JSON file several kernels can share; survives crashes and restarts.

    Opening it creates the file (mode 0o600) and its folder (0o700) when missing, refuses a corrupt or
    foreign file with :class:`~jobmanager_nb.errors.CorruptStoreError` (leaving it untouched), and, with
    ``reconcile=True``, marks records whose owning process has exited as ``failed``. It needs write
    access to the folder (for the lock file and for the renames that replace the file): a folder or file
    that cannot be created or written raises :class:`~jobmanager_nb.errors.StoreWriteError` at open (an
    existing file is checked by creating and removing a temporary file next to it), as does any change
    that cannot be written, leaving the file unchanged.
    """

    def __init__(
        self,
        path: str | os.PathLike[str] = DEFAULT_STORE_PATH,
        *,
        clock: Clock | None = None,
        max_finished: int = DEFAULT_MAX_FINISHED,
        lock_timeout: float = 30.0,
        reconcile: bool = True,
    ) -> None:
        super().__init__(clock=clock, max_finished=max_finished)
        self._path = Path(path).absolute()
        self._lock_timeout = lock_timeout
        # the cache: what the file held when we last read or wrote it
        self._key: _FileKey | None = None
        self._marker = b""
        self._records: dict[str, OneOffRecord] = {}
        self._ids: dict[str, int] = {}
        self._parts: list[bytes] | None = None  # each record's JSON text, in file order (built lazily)
        self._slots: dict[str, int] = {}  # name -> index in self._parts
        self._next_id = 1
        self._parses = 0
        self.reconciled: list[OneOffRecord] = []
        """What opening the store marked ``failed`` because the owning process was gone."""

        self._opening = True
        try:
            if not self._path.parent.is_dir():
                # os.makedirs, not Path.mkdir: one OS-level call site for every Python version
                os.makedirs(self._path.parent, mode=_DIR_MODE, exist_ok=True)
            self._file_lock = _make_file_lock(self._path, lock_timeout)
        except OSError as exc:
            raise self._write_error(exc) from exc
        with self._exclusive():
            self._refresh()
            try:
                if self._key is None:
                    self._save([], [])  # a write: proves the folder writable
                else:
                    # An existing, writable file and lock file do not make the folder writable, and
                    # every change renames a new file into it: find out now, not at the first claim.
                    check_folder_writable(self._path)
                remove_stale_temp_files(self._path)
            except OSError as exc:
                raise self._write_error(exc) from exc
            if reconcile:
                self.reconciled = self.reconcile()
        self._opening = False

    @property
    def path(self) -> Path:
        """The JSON file (absolute)."""
        return self._path

    @property
    def parse_count(self) -> int:
        """How many times this store has parsed the file (a diagnostic: unchanged files are not re-read)."""
        return self._parses

    def __repr__(self) -> str:
        return f"TinyDBStore({str(self._path)!r}, {len(self._records)} records)"

    # -- StoreBase hooks -------------------------------------------------------------------------------

    @contextmanager
    def _exclusive(self) -> Iterator[None]:
        from filelock import Timeout

        with self._lock:
            try:
                self._file_lock.acquire()
            except Timeout:
                raise StoreError(
                    f"Timed out after {self._lock_timeout} s waiting for {self._file_lock.lock_file}: "
                    f"another process is holding the lock on the one-off store {self._path}. The lock "
                    "is released when its holder exits; if a kernel hangs there, restart that kernel."
                ) from None
            except OSError as exc:  # the lock file cannot be created or opened for writing
                raise self._write_error(exc) from exc
            try:
                yield
            finally:
                self._file_lock.release()

    def _current(self) -> Mapping[str, OneOffRecord]:
        self._refresh()
        return self._records

    def _save(self, upserts: Sequence[OneOffRecord], deletes: Sequence[str]) -> None:
        parts, slots = self._encoded()
        new_ids: dict[str, int] = {}
        next_id = self._next_id
        if deletes:
            dropped = set(deletes)
            kept = [name for name in slots if name not in dropped]
            parts = [parts[slots[name]] for name in kept]
            slots = {name: i for i, name in enumerate(kept)}
        else:
            parts = parts.copy()
            slots = slots.copy()
        for record in upserts:
            doc_id = self._ids.get(record.name) or new_ids.get(record.name)
            if doc_id is None:
                doc_id = new_ids[record.name] = next_id
                next_id += 1
            fragment = _fragment(doc_id, record)
            slot = slots.get(record.name)
            if slot is None:
                slots[record.name] = len(parts)
                parts.append(fragment)
            else:
                parts[slot] = fragment
        revision = secrets.token_hex(8)
        data = b"".join((_header(revision), b",".join(parts), b"}}"))
        try:
            written = write_atomically(self._path, data, mode=_FILE_MODE)
        except OSError as exc:
            raise self._write_error(exc) from exc
        # The file now holds the change: bring the cache in line with it.
        for name in deletes:
            self._records.pop(name, None)
            self._ids.pop(name, None)
        for record in upserts:
            self._records[record.name] = record
        self._ids.update(new_ids)
        self._parts, self._slots = parts, slots
        self._next_id = next_id
        self._key = (written.st_ino, written.st_mtime_ns, written.st_size)
        self._marker = _marker(revision)

    def _encoded(self) -> tuple[list[bytes], dict[str, int]]:
        """Each record's JSON text (``"<id>":{...}``) in file order, and each name's slot in that list."""
        if self._parts is None:
            self._parts = [_fragment(self._ids[name], record) for name, record in self._records.items()]
            self._slots = {name: i for i, name in enumerate(self._records)}
        return self._parts, self._slots

    # -- reading -----------------------------------------------------------------------------------------

    def _refresh(self) -> None:
        """Make the cache match the file, parsing it only when it changed since we last saw it."""
        try:
            fd = os.open(self._path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        except FileNotFoundError:
            self._forget()
            return
        except OSError as exc:
            raise self._read_error(exc) from exc
        try:
            try:
                st = os.fstat(fd)
                if not stat.S_ISREG(st.st_mode):
                    raise StoreError(f"Cannot use {self._path} as a one-off job store: it is not a regular file.")
                key = (st.st_ino, st.st_mtime_ns, st.st_size)
                if key == self._key and self._marker in os.read(fd, _HEAD_BYTES):
                    return
                os.lseek(fd, 0, os.SEEK_SET)
                data = _read_all(fd, st.st_size)
            finally:
                os.close(fd)
        except OSError as exc:  # EIO and the like, on fstat, read, lseek or close
            raise self._read_error(exc) from exc
        if not data:  # a 0-byte file (e.g. `touch`ed): treat as a new store
            self._forget()
            return
        self._parse(data, key)

    def _forget(self) -> None:
        self._key = None
        self._marker = b""
        self._records, self._ids = {}, {}
        self._parts, self._slots = None, {}
        self._next_id = 1

    def _parse(self, data: bytes, key: _FileKey) -> None:
        self._parses += 1
        content = self._decode(data)
        header_table = content.get(HEADER_TABLE)
        header = header_table.get("1") if isinstance(header_table, dict) else None
        if not isinstance(header, dict) or "schema" not in header:
            raise self._corrupt(
                f'it is JSON but not a jobmanager_nb store (no "{HEADER_TABLE}" header with a schema version)'
            )
        schema = header.get("schema")
        if not isinstance(schema, int) or isinstance(schema, bool) or schema < 1:
            raise self._corrupt(f"its schema version {schema!r} is not a positive whole number")
        if schema > SCHEMA_VERSION:
            raise self._corrupt(
                f"it uses schema version {schema}, newer than this jobmanager_nb understands "
                f"(up to {SCHEMA_VERSION})",
                fix="It was left untouched: upgrade jobmanager_nb in this kernel, or pass another path.",
            )
        table = content.get(RECORDS_TABLE, {})
        if not isinstance(table, dict):
            raise self._corrupt(f'its "{RECORDS_TABLE}" table is not a JSON object')
        records: dict[str, OneOffRecord] = {}
        ids: dict[str, int] = {}
        for doc_key, doc in table.items():
            if not doc_key.isdigit():
                raise self._corrupt(f'record key "{doc_key}" is not a document id')
            try:
                record = OneOffRecord.from_dict(doc)
            except ValueError as exc:
                raise self._corrupt(f"record {doc_key} is invalid: {exc}") from None
            if record.name in records:
                raise self._corrupt(f'two records are named "{record.name}"')
            records[record.name] = record
            ids[record.name] = int(doc_key)
        revision = header.get("revision")
        self._records, self._ids = records, ids
        self._parts, self._slots = None, {}
        self._next_id = max(ids.values(), default=0) + 1
        self._key = key
        self._marker = _marker(revision) if isinstance(revision, str) and revision else b"\0no revision"

    def _decode(self, data: bytes) -> dict[str, Any]:
        try:
            content = json.loads(data.decode("utf-8"))
        except UnicodeDecodeError as exc:
            raise self._corrupt(f"it is not UTF-8 text (bad byte at offset {exc.start})") from None
        except json.JSONDecodeError as exc:
            raise self._corrupt(
                f"it is not JSON ({exc.msg} at line {exc.lineno}, column {exc.colno})"
            ) from None
        if not isinstance(content, dict):
            raise self._corrupt(
                f"it is JSON but not a jobmanager_nb store (a {type(content).__name__}, not an object)"
            )
        return content

    def _write_error(self, exc: OSError) -> StoreWriteError:
        """The :class:`StoreWriteError` for ``exc``: the file, the OS error, the fix, and what became of it."""
        return StoreWriteError(_write_error_message(self._path, exc, opening=self._opening), self._path, exc)

    def _read_error(self, exc: OSError) -> StoreError:
        """The :class:`StoreError` for a failed read: the file, the OS error and the fix for its kind."""
        if exc.errno in _READ_ONLY_ERRNOS:
            fix = "Check that this user may read it, or choose another path with JobManager(store=...)."
        else:
            fix = "Check the disk holding it, or choose another path with JobManager(store=...)."
        return StoreError(f"Could not read the one-off store {self._path} ({_os_error_text(exc)}). {fix}")

    def _corrupt(self, what: str, *, fix: str = "") -> CorruptStoreError:
        fix = fix or (
            "It was left untouched: move it aside (e.g. rename it to jobs.json.bad) to start an empty store "
            "there, or pass another path."
        )
        return CorruptStoreError(f"Cannot use {self._path} as a one-off job store: {what}. {fix}")


_READ_ONLY_ERRNOS = frozenset({errno.EROFS, errno.EACCES, errno.EPERM})
_FULL_ERRNOS = frozenset({errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)})


def _write_error_message(path: Path, exc: OSError, *, opening: bool = False) -> str:
    """What a :class:`StoreWriteError` says: the store file, the OS error (errno name and text, and the
    file it hit when that is not a temporary one), the fix for its kind, and that nothing changed."""
    hit = Path(os.fsdecode(exc.filename)) if exc.filename is not None else None
    # the folder we could not list, or the one in which a file or folder could not be made
    folder = path.parent if hit is None else hit if os.path.isdir(hit) else hit.parent
    temp = hit is not None and hit.name.startswith(f".{path.name}.") and hit.name.endswith(".tmp")
    on = f" on {hit}" if hit is not None and hit != path and not temp else ""
    if exc.errno in _READ_ONLY_ERRNOS:
        fix = (
            f"the folder {folder} is read-only or not writable by this user. Choose a writable path with "
            "JobManager(store=...) or fix the folder's permissions."
        )
    elif exc.errno in _FULL_ERRNOS:
        fix = (
            f"the disk holding {folder} is full (or this user's disk quota is used up). Free some space "
            "there, or choose a path on another disk with JobManager(store=...)."
        )
    else:
        fix = f"check the disk holding {folder}, or choose another path with JobManager(store=...)."
    if opening:
        doing, outcome = "open", "The store was not opened."
    else:
        doing = "write"
        outcome = "Nothing was changed: the file is as it was, so the same call can be retried once this is fixed."
    return f"Could not {doing} the one-off store {path} ({_os_error_text(exc)}{on}): {fix} {outcome}"


def _os_error_text(exc: OSError) -> str:
    """``EACCES: Permission denied``: the errno's name and the system's text for it."""
    if exc.errno is None:
        return str(exc)
    name = errno.errorcode.get(exc.errno, f"errno {exc.errno}")
    return f"{name}: {exc.strerror or os.strerror(exc.errno)}"


def _make_file_lock(path: Path, timeout: float) -> BaseFileLock:
    from filelock import FileLock  # imported here: filelock takes ~0.1 s to import

    return FileLock(f"{path}.lock", timeout=timeout, mode=_FILE_MODE, thread_local=False, poll_interval=0.002)


def _header(revision: str) -> bytes:
    return (
        f'{{"{HEADER_TABLE}":{{"1":{{"schema":{SCHEMA_VERSION},"revision":"{revision}"}}}},'
        f'"{RECORDS_TABLE}":{{'
    ).encode()


def _marker(revision: str) -> bytes:
    return f'"revision":"{revision}"'.encode()


def _fragment(doc_id: int, record: OneOffRecord) -> bytes:
    body = json.dumps(record.to_dict(), ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    return f'"{doc_id}":{body}'.encode()


def _read_all(fd: int, size_hint: int) -> bytes:
    chunks = []
    while chunk := os.read(fd, max(size_hint, 1 << 16)):
        chunks.append(chunk)
    return b"".join(chunks)
