"""Write failures of the one-off store: real full and read-only file systems (a small tmpfs), injected
permission errors, at every write site and when opening. Each failure is a StoreWriteError that names the
file, the OS error and the fix; it leaves the file byte for byte as it was and the store object as it
was, so the same call succeeds once the fault is gone. See tests/store_faults.py for the faults."""

from __future__ import annotations

import dataclasses
import errno
import logging
import os
import pickle
import tempfile
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from store_faults import (
    MOUNT_PREFIX,
    WRITE_SITES,
    MountRefused,
    disk_full,
    failing_writes,
    is_mounted,
    mounts_left,
    read_only,
    small_tmpfs,
    write_fault,
)

from jobmanager_nb.clock import FakeClock
from jobmanager_nb.errors import StoreError, StoreWriteError
from jobmanager_nb.store import Owner, TinyDBStore, current_owner
from jobmanager_nb.store.atomic import stale_temp_files

READ_ONLY_FIX = "is read-only or not writable by this user. Choose a writable path with JobManager(store=...)"
FULL_FIX = "is full (or this user's disk quota is used up). Free some space there"


@pytest.fixture(autouse=True)
def _no_tmpfs_outlives_its_test() -> Iterator[None]:
    """A tmpfs left mounted would outlive the test run: fail the test that left it, and unmount it."""
    before = set(mounts_left())
    yield
    left = [m for m in mounts_left() if m not in before]
    for mount in left:
        os.system(f"umount -l '{mount}'")
    assert left == [], f"this test left tmpfs mounted on {left}"


def dead_owner() -> Owner:
    """An owner on this host whose process is gone: this pid, but started at another moment."""
    me = current_owner()
    return dataclasses.replace(
        me,
        token="d" * 16,
        create_time=me.create_time - 3600,
        start_ticks=None if me.start_ticks is None else me.start_ticks + 1,
    )


# Each write site: how to bring "job" to the state the call needs, the call, and the status it leaves.
Step = Callable[[TinyDBStore, FakeClock], object]


def _claimed(store: TinyDBStore, clock: FakeClock) -> None:
    store.claim("job", current_owner())


def _started(store: TinyDBStore, clock: FakeClock) -> None:
    _claimed(store, clock)
    store.mark_started("job", current_owner())


def _finished_long_ago(store: TinyDBStore, clock: FakeClock) -> None:
    _started(store, clock)
    store.mark_finished("job")
    clock.advance(timedelta(days=2))


def _orphaned(store: TinyDBStore, clock: FakeClock) -> None:
    store.claim("job", dead_owner(), {"kind": "inline"})


SITES: dict[str, tuple[Step, Step, str | None]] = {
    "claim": (lambda s, c: None, lambda s, c: s.claim("job", current_owner()), "queued"),
    "mark_started": (_claimed, lambda s, c: s.mark_started("job", current_owner()), "started"),
    "mark_finished": (_started, lambda s, c: s.mark_finished("job"), "finished"),
    "mark_failed": (_started, lambda s, c: s.mark_failed("job", "boom"), "failed"),
    "prune": (_finished_long_ago, lambda s, c: s.prune(timedelta(days=1)), None),
    "reconcile": (_orphaned, lambda s, c: s.reconcile(), "failed"),
    "claim-of-an-orphan": (_orphaned, lambda s, c: s.claim("job", current_owner()), "queued"),
}


def check_refused_write(
    store: TinyDBStore,
    clock: FakeClock,
    site: str,
    err: int,
    fault_on: Callable[[], None],
    fault_off: Callable[[], None],
) -> StoreWriteError:
    """Set ``site`` up, switch the fault on, and check the refused write; then clear it and retry."""
    setup, call, status = SITES[site]
    setup(store, clock)
    path = store.path
    before_bytes, before_records = path.read_bytes(), store.records()
    fault_on()
    try:
        with pytest.raises(StoreWriteError) as caught:
            call(store, clock)
        assert path.read_bytes() == before_bytes, "a failed write changed the file"
        assert store.records() == before_records, "a failed write changed what the store reports"
    finally:
        fault_off()
    assert stale_temp_files(path) == [], "a failed write left its temporary file behind"
    error = caught.value
    assert isinstance(error, StoreError) and not isinstance(error, OSError)
    assert error.path == path and isinstance(error.os_error, OSError)
    assert error.os_error.errno == err
    assert str(path) in str(error) and errno.errorcode[err] in str(error)
    assert os.strerror(err) in str(error)
    assert "Nothing was changed" in str(error)

    call(store, clock)  # the same call, now that the fault is gone
    record = TinyDBStore(path, clock=clock, reconcile=False).get("job")  # another store sees it on disk
    assert (record.status if record else None) == status
    return error


# ---------------------------------------------------------------------------------------- real faults


@pytest.mark.parametrize("site", list(SITES))
def test_a_full_disk_refuses_the_write_names_the_fix_and_the_retry_succeeds(tmp_path, site):
    clock = FakeClock()
    with write_fault(errno.ENOSPC, tmp_path) as fault:
        store = TinyDBStore(fault.folder / "jobs.json", clock=clock)
        error = check_refused_write(store, clock, site, errno.ENOSPC, fault.start, fault.clear)
    assert FULL_FIX in str(error), fault.how
    assert f"the disk holding {store.path.parent} is full" in str(error)


@pytest.mark.parametrize("site", list(SITES))
def test_a_read_only_file_system_refuses_the_write_names_the_fix_and_the_retry_succeeds(tmp_path, site):
    clock = FakeClock()
    with write_fault(errno.EROFS, tmp_path) as fault:
        store = TinyDBStore(fault.folder / "jobs.json", clock=clock)
        error = check_refused_write(store, clock, site, errno.EROFS, fault.start, fault.clear)
    assert f"the folder {store.path.parent} {READ_ONLY_FIX}" in str(error), fault.how


@pytest.mark.parametrize("site", list(SITES))
@pytest.mark.parametrize("call", ["open", "replace"], ids=["creating-files", "renaming"])
def test_permission_denied_refuses_the_write_names_the_fix_and_the_retry_succeeds(tmp_path, site, call):
    """Root ignores permission bits, so EACCES is injected: at the lock and temporary files' creation
    (``open``), or at the rename that would replace the file (``replace``, after the data was written)."""
    clock = FakeClock()
    store = TinyDBStore(tmp_path / "jobs.json", clock=clock)
    with write_fault(errno.EACCES, tmp_path, sites=[call]) as fault:
        error = check_refused_write(store, clock, site, errno.EACCES, fault.start, fault.clear)
    assert isinstance(error.os_error, PermissionError)
    assert f"the folder {tmp_path} {READ_ONLY_FIX}" in str(error)


def test_the_full_and_read_only_faults_are_real_where_mounting_is_allowed(tmp_path):
    """The two tests above use a real tmpfs wherever this machine lets us mount one (as root in CI)."""
    can_mount = _can_mount()
    for err in (errno.ENOSPC, errno.EROFS):
        with write_fault(err, tmp_path) as fault:
            assert fault.real == can_mount, fault.how


def _can_mount() -> bool:
    try:
        with small_tmpfs():
            return True
    except MountRefused:
        return False


# ---------------------------------------------------------------------------------------- opening


def test_opening_on_a_read_only_file_system_is_a_store_error_naming_the_path(tmp_path):
    with write_fault(errno.EROFS, tmp_path, sites=["mkdir", "open"]) as fault:
        path = fault.folder / "notebooks" / ".jobmanager" / "jobs.json"
        fault.start()
        with pytest.raises(StoreWriteError) as caught:
            TinyDBStore(path)
        fault.clear()
        assert not path.parent.exists()
        error = caught.value
        assert error.path == path and error.os_error is not None and error.os_error.errno == errno.EROFS
        assert str(error).startswith(f"Could not open the one-off store {path} (EROFS: ")
        assert f"the folder {fault.folder} {READ_ONLY_FIX}" in str(error), fault.how
        assert TinyDBStore(path).records() == []  # and it opens once the folder is writable


@pytest.mark.parametrize(
    ("sites", "made"),
    [(["mkdir"], "the folder"), (["open"], "the lock file"), (["replace"], "the file")],
    ids=["folder", "lock-file", "store-file"],
)
def test_opening_where_this_user_may_not_write_is_a_store_error_not_a_permission_error(tmp_path, sites, made):
    path = tmp_path / ".jobmanager" / "jobs.json"
    if made != "the folder":
        path.parent.mkdir()
    with failing_writes(errno.EACCES, sites, under=tmp_path) as injected, pytest.raises(StoreWriteError) as caught:
        TinyDBStore(path)
    assert injected.hits, "the fault never fired"
    error = caught.value
    assert isinstance(error.os_error, PermissionError) and error.path == path
    assert str(error).startswith(f"Could not open the one-off store {path} (EACCES: Permission denied")
    assert READ_ONLY_FIX in str(error)
    assert not path.exists() and stale_temp_files(path) == []
    assert TinyDBStore(path).records() == []


def test_a_real_permission_denied_folder_is_refused_at_open_with_a_store_error(tmp_path):
    """A real EACCES from permission bits, which root ignores: a child process opens one store (so that
    everything is imported), then, if it is root, drops to an ordinary user and opens a store in a folder
    that user may not write."""
    import shutil
    import subprocess
    import sys

    import jobmanager_nb

    folder = Path(tempfile.mkdtemp(prefix="jobmanager-readonly-"))  # in /tmp, which any user can enter
    try:
        folder.chmod(0o555)
        path = folder / "jobs.json"
        code = (
            "import os, sys\n"
            "from jobmanager_nb.errors import StoreWriteError\n"
            "from jobmanager_nb.store import TinyDBStore\n"
            "TinyDBStore(sys.argv[2])\n"
            "if os.geteuid() == 0:\n"
            "    os.setgroups([]); os.setgid(65534); os.setuid(65534)\n"
            "try:\n"
            "    TinyDBStore(sys.argv[1])\n"
            "except StoreWriteError as exc:\n"
            "    print(type(exc.os_error).__name__, exc.path, exc, sep='\\n')\n"
        )
        repo = str(Path(jobmanager_nb.__file__).resolve().parents[1])
        out = subprocess.run(
            [sys.executable, "-c", code, str(path), str(tmp_path / "warm-up" / "jobs.json")],
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, "PYTHONPATH": repo},
        )
        assert out.returncode == 0, out.stderr
        kind, named, message = out.stdout.split("\n", 2)
        assert (kind, named) == ("PermissionError", str(path))
        assert f"(EACCES: Permission denied on {path}.lock)" in message
        assert f"the folder {folder} {READ_ONLY_FIX}" in message
        assert os.listdir(folder) == []
    finally:
        folder.chmod(0o700)
        shutil.rmtree(folder)


def test_a_writable_file_in_a_folder_this_user_may_not_write_is_refused_at_open_not_at_the_first_claim(tmp_path):
    """The file and its lock file exist and are writable by everyone, but the folder (0755, root's) is
    not this user's: every change renames a new file into the folder, so opening must refuse it, not
    the first claim. A child drops to an ordinary user when it is root (root ignores permission bits);
    otherwise the folder's EACCES is injected."""
    import shutil
    import subprocess
    import sys

    import jobmanager_nb

    folder = Path(tempfile.mkdtemp(prefix="jobmanager-notmine-"))  # in /tmp, which any user can enter
    try:
        path = folder / "jobs.json"
        TinyDBStore(path)
        for made in (path, Path(f"{path}.lock")):
            made.chmod(0o666)
        folder.chmod(0o755)
        before = path.read_bytes()
        if os.geteuid() == 0:
            code = (
                "import os, sys\n"
                "from jobmanager_nb.errors import StoreWriteError\n"
                "from jobmanager_nb.store import TinyDBStore, current_owner\n"
                "TinyDBStore(sys.argv[2]); current_owner()\n"
                "os.setgroups([]); os.setgid(65534); os.setuid(65534)\n"
                "try:\n"
                "    store = TinyDBStore(sys.argv[1])\n"
                "except StoreWriteError as exc:\n"
                "    print(type(exc.os_error).__name__, exc.path, exc, sep='\\n')\n"
                "else:\n"
                "    print('opened'); store.claim('job', current_owner())\n"
            )
            repo = str(Path(jobmanager_nb.__file__).resolve().parents[1])
            out = subprocess.run(
                [sys.executable, "-c", code, str(path), str(tmp_path / "warm-up" / "jobs.json")],
                capture_output=True,
                text=True,
                timeout=60,
                env={**os.environ, "PYTHONPATH": repo},
            )
            assert out.returncode == 0, out.stdout + out.stderr
            kind, named, message = out.stdout.split("\n", 2)
        else:  # pragma: no cover - CI runs as root
            with failing_writes(errno.EACCES, ["open"], under=folder), pytest.raises(StoreWriteError) as caught:
                TinyDBStore(path)
            kind, named, message = type(caught.value.os_error).__name__, str(caught.value.path), str(caught.value)
        assert (kind, named) == ("PermissionError", str(path))
        assert message.startswith(f"Could not open the one-off store {path} (EACCES: Permission denied)")
        assert f"the folder {folder} {READ_ONLY_FIX}" in message and "The store was not opened." in message
        assert path.read_bytes() == before and stale_temp_files(path) == []
    finally:
        folder.chmod(0o700)
        shutil.rmtree(folder)


def test_opening_an_existing_store_checks_the_folder_with_one_temporary_file_it_removes(tmp_path, monkeypatch):
    path = tmp_path / "jobs.json"
    TinyDBStore(path)
    made: list[str] = []
    real_open = os.open

    def recording_open(file: str | os.PathLike[str], flags: int, *args: int, **kwargs: object) -> int:
        if flags & os.O_CREAT:
            made.append(os.fspath(file))
        return real_open(file, flags, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "open", recording_open)
    TinyDBStore(path, reconcile=False)
    temps = [m for m in made if not m.endswith(".lock")]
    assert len(temps) == 1 and Path(temps[0]).parent == tmp_path and Path(temps[0]).name.startswith(".jobs.json.")
    assert stale_temp_files(path) == [] and sorted(os.listdir(tmp_path)) == ["jobs.json", "jobs.json.lock"]


# ---------------------------------------------------------------------------------------- the messages


@pytest.mark.parametrize(
    ("err", "says"),
    [
        (errno.EPERM, READ_ONLY_FIX),
        (errno.EDQUOT, FULL_FIX),
        (errno.EIO, "check the disk holding"),
    ],
    ids=["EPERM", "EDQUOT", "EIO"],
)
def test_each_kind_of_failure_says_its_own_fix(tmp_path, err, says):
    store = TinyDBStore(tmp_path / "jobs.json")
    with failing_writes(err, ["write"], under=tmp_path), pytest.raises(StoreWriteError) as caught:
        store.claim("job", current_owner())
    assert says in str(caught.value) and errno.errorcode[err] in str(caught.value)
    assert store.get("job") is None
    assert store.claim("job", current_owner()).status == "queued"


def test_a_failed_fsync_of_the_data_is_a_failed_write(tmp_path):
    store = TinyDBStore(tmp_path / "jobs.json")
    before = store.path.read_bytes()
    with failing_writes(errno.EIO, ["fsync"], under=tmp_path) as injected, pytest.raises(StoreWriteError):
        store.claim("job", current_owner())
    assert [site for site, _ in injected.hits] == ["fsync"]
    assert store.path.read_bytes() == before and stale_temp_files(store.path) == []


def test_a_failed_folder_sync_after_the_rename_keeps_the_change_and_warns(tmp_path, caplog):
    """The rename is the point of no return: the change is made and seen by all; only its durability
    across a power cut is in doubt, which is logged rather than reported as a failed change."""
    store = TinyDBStore(tmp_path / "jobs.json")
    with (
        caplog.at_level(logging.WARNING, logger="jobmanager_nb"),
        failing_writes(errno.EIO, ["fsync_dir"], under=tmp_path) as injected,
    ):
        record = store.claim("job", current_owner())
    assert [site for site, _ in injected.hits] == ["fsync_dir"]
    assert TinyDBStore(store.path).get("job") == record
    assert "syncing its folder failed (EIO" in caplog.text and str(store.path) in caplog.text


def test_store_write_error_is_a_store_error_with_path_and_os_error_that_pickles():
    cause = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), "/x/jobs.json")
    error = StoreWriteError("Could not write /x/jobs.json", Path("/x/jobs.json"), cause)
    copy = pickle.loads(pickle.dumps(error))
    assert isinstance(copy, StoreError) and str(copy) == str(error)
    assert copy.path == Path("/x/jobs.json") and copy.os_error.errno == errno.ENOSPC
    bare = StoreWriteError("memory")
    assert (bare.path, bare.os_error) == (None, None)


# ---------------------------------------------------------------------------------------- the helpers


def test_small_tmpfs_is_unmounted_and_removed_even_when_the_test_fails_on_a_busy_mount():
    fd = -1
    try:
        with pytest.raises(RuntimeError, match="the test failed"), small_tmpfs() as mount:
            assert is_mounted(mount)
            (mount / "file").write_bytes(b"x")
            fd = os.open(mount / "file", os.O_RDONLY)  # busy: a plain umount refuses, umount -l detaches
            raise RuntimeError("the test failed")
    except MountRefused:  # nothing was mounted, and the folder made for it is gone
        assert not list(Path(tempfile.gettempdir()).glob(f"{MOUNT_PREFIX}*"))
        return
    finally:
        if fd >= 0:
            os.close(fd)
    assert not is_mounted(mount) and not mount.exists()


def test_a_filled_tmpfs_refuses_writes_with_enospc_until_the_filler_goes():
    try:
        with small_tmpfs(256 * 1024) as mount:
            with disk_full(mount), pytest.raises(OSError) as caught:
                (mount / "more").write_bytes(b"x" * 8192)
            assert caught.value.errno == errno.ENOSPC
            (mount / "more").write_bytes(b"x" * 8192)
            with read_only(mount), pytest.raises(OSError) as caught:
                (mount / "other").write_bytes(b"x")
            assert caught.value.errno == errno.EROFS
            (mount / "other").write_bytes(b"x")
    except MountRefused:
        return  # nothing to check: this machine uses failing_writes instead


def test_failing_writes_covers_only_its_folder_and_its_sites_and_restores_os(tmp_path):
    inside, outside = tmp_path / "inside", tmp_path / "outside"
    inside.mkdir()
    outside.mkdir()
    originals = [getattr(os, n) for n in ("open", "write", "fsync", "replace", "mkdir", "unlink")]
    with failing_writes(errno.EACCES, ["open"], under=inside) as injected:
        with pytest.raises(PermissionError):
            os.open(inside / "a", os.O_WRONLY | os.O_CREAT, 0o600)
        os.close(os.open(outside / "a", os.O_WRONLY | os.O_CREAT, 0o600))  # another folder
        (inside / "b").mkdir()  # another site
        os.close(os.open(inside / "b", os.O_RDONLY))  # a read
    assert injected.hits == [("open", str(inside / "a"))]
    assert [getattr(os, n) for n in ("open", "write", "fsync", "replace", "mkdir", "unlink")] == originals
    assert set(WRITE_SITES) >= {"open", "write", "fsync", "fsync_dir", "replace", "mkdir", "unlink"}


@pytest.mark.parametrize("call", ["fstat", "read", "lseek", "close"])
@pytest.mark.parametrize("cached", [True, False], ids=["cache-up-to-date", "changed-by-another-store"])
def test_an_io_error_reading_the_file_is_a_store_error_naming_the_file_and_the_os_error(
    tmp_path, monkeypatch, call, cached
):
    """Every OS call of a read, not only the open: an EIO is a StoreError naming the file and the error
    (a read is not a write: never a StoreWriteError), the file is unchanged and the retry succeeds."""
    store = TinyDBStore(tmp_path / "jobs.json")
    store.claim("job", current_owner())
    if not cached:  # another store's write: this one must re-read the whole file (lseek and read)
        TinyDBStore(store.path).claim("other", current_owner())
    before = store.path.read_bytes()
    real = getattr(os, call)
    hits: list[str] = []

    def failing(fd: int, *args: object) -> object:
        if os.readlink(f"/proc/self/fd/{fd}") == str(store.path):
            hits.append(call)
            if call == "close":
                real(fd)  # the fd is closed (as the kernel does even when close reports EIO)
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        return real(fd, *args)

    monkeypatch.setattr(os, call, failing)
    if call == "lseek" and cached:
        # an up-to-date cache reads only the header: no lseek to fail
        assert store.get("job") is not None and hits == []
        return
    attempts: list[Callable[[], object]] = [
        lambda: store.get("job"),
        store.records,
        lambda: store.claim("new", current_owner()),
    ]
    for attempt in attempts:
        hits.clear()
        with pytest.raises(StoreError) as caught:
            attempt()
        assert hits and not isinstance(caught.value, StoreWriteError)
        assert str(store.path) in str(caught.value) and "EIO: Input/output error" in str(caught.value)
        assert "Check the disk holding it" in str(caught.value)
        assert isinstance(caught.value.__cause__, OSError)
    monkeypatch.undo()
    assert store.path.read_bytes() == before
    assert store.get("job") is not None and store.claim("new", current_owner()).status == "queued"
