"""Process identity for one-off records: who owns a record and whether that process is alive.

On Linux an owner is recognised by its boot-relative start (clock ticks since boot) and the boot id,
exactly; the wall-clock ``create_time`` only decides for records without those (older versions, no /proc),
within a tolerance that survives small clock steps."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import socket
import subprocess
import sys

import psutil
import pytest

from jobmanager_nb.store import Owner, current_owner, owner_state, ownership
from jobmanager_nb.store.ownership import CREATE_TIME_TOLERANCE

SHOW_OWNER = (
    "import json, sys; from jobmanager_nb.store import current_owner; "
    "print(json.dumps(current_owner().to_dict()), flush=True); sys.stdin.readline()"
)


def spawn_owner() -> tuple[subprocess.Popen[bytes], Owner]:
    from pathlib import Path

    import jobmanager_nb

    env = {**os.environ, "PYTHONPATH": str(Path(jobmanager_nb.__file__).resolve().parents[1])}
    proc = subprocess.Popen([sys.executable, "-c", SHOW_OWNER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)
    assert proc.stdout is not None
    line = proc.stdout.readline()  # the child prints at once; EOF if it crashed
    assert line, "the child printed nothing"
    return proc, Owner.from_dict(json.loads(line))


def proc_start_ticks(pid: int) -> int:
    """Field 22 of /proc/<pid>/stat, read independently of the code under test."""
    with open(f"/proc/{pid}/stat") as file:
        text = file.read()
    return int(text[text.rindex(")") + 2 :].split()[19])


def boot_id() -> str:
    with open("/proc/sys/kernel/random/boot_id") as file:
        return file.read().strip()


def old_format(owner: Owner) -> Owner:
    """``owner`` as a record written by an older version sees it: no start_ticks, no boot_id."""
    data = owner.to_dict()
    del data["start_ticks"], data["boot_id"], data["pid_ns"]
    return Owner.from_dict(data)


def test_current_owner_describes_this_process():
    owner = current_owner()
    assert (owner.pid, owner.hostname) == (os.getpid(), socket.gethostname())
    assert owner.create_time == psutil.Process().create_time()
    assert len(owner.token) == 16 and current_owner() is owner


def test_current_owner_records_the_start_in_ticks_since_boot_and_the_boot_id():
    owner = current_owner()
    assert owner.start_ticks == proc_start_ticks(os.getpid())
    assert owner.boot_id == boot_id()


def test_current_owner_records_its_pid_namespace_and_json_keeps_it_only_when_known():
    owner = current_owner()
    st = os.stat("/proc/self/ns/pid")
    assert owner.pid_ns == (st.st_dev, st.st_ino)
    assert owner.to_dict()["pid_ns"] == [st.st_dev, st.st_ino]
    assert Owner.from_dict(json.loads(json.dumps(owner.to_dict()))) == owner
    unknown = dataclasses.replace(owner, pid_ns=None)
    assert "pid_ns" not in unknown.to_dict() and Owner.from_dict(unknown.to_dict()) == unknown
    for bad in ([1], [1, -2], ["4", 5], [True, 5], 7, "4:5"):
        with pytest.raises(ValueError, match="pid_ns"):
            Owner.from_dict({**owner.to_dict(), "pid_ns": bad})


def test_this_process_is_alive():
    assert owner_state(current_owner()) == "alive"


def test_an_owner_whose_wall_clock_start_is_30_s_off_is_alive_when_its_ticks_and_boot_id_match():
    stepped = dataclasses.replace(current_owner(), create_time=current_owner().create_time + 30)
    assert owner_state(stepped) == "alive"


def test_a_wall_clock_step_that_moves_psutils_start_time_does_not_make_this_process_gone(monkeypatch):
    """What NTP stepping the clock does to psutil on Linux: boot time = now - uptime moves, and every
    process's create_time with it."""
    real = psutil.Process.create_time
    monkeypatch.setattr(psutil.Process, "create_time", lambda self: real(self) - 30.0)
    assert owner_state(current_owner()) == "alive"


def test_the_same_pid_with_other_start_ticks_is_a_reused_pid_so_gone():
    impostor = dataclasses.replace(current_owner(), start_ticks=current_owner().start_ticks + 1)
    assert owner_state(impostor) == "gone"


def test_an_owner_from_another_boot_is_gone():
    earlier_boot = dataclasses.replace(current_owner(), boot_id="00000000-0000-4000-8000-000000000000")
    assert owner_state(earlier_boot) == "gone"


def test_an_old_format_owner_is_judged_by_its_wall_clock_start_within_the_tolerance():
    owner = old_format(current_owner())
    assert (owner.start_ticks, owner.boot_id) == (None, None)
    assert owner_state(owner) == "alive"
    for step in (1.0, -1.0, CREATE_TIME_TOLERANCE - 0.5):  # small clock steps since it was recorded
        assert owner_state(dataclasses.replace(owner, create_time=owner.create_time + step)) == "alive"
    for reused in (CREATE_TIME_TOLERANCE + 1, -3600.0):  # another process with this pid
        assert owner_state(dataclasses.replace(owner, create_time=owner.create_time + reused)) == "gone"


@pytest.mark.parametrize("missing", ["boot_id", "stat"])
def test_without_proc_the_wall_clock_start_decides(monkeypatch, missing):
    if missing == "boot_id":
        monkeypatch.setattr(ownership, "_boot_id", lambda: None)
    else:
        monkeypatch.setattr(ownership, "_PROC", "/nonexistent-proc")
    me = current_owner()
    assert owner_state(me) == "alive"
    assert owner_state(dataclasses.replace(me, create_time=me.create_time - 3600)) == "gone"


def test_another_host_cannot_be_judged():
    """Another hostname with another boot id, or with no boot id to compare (another platform)."""
    other = dataclasses.replace(
        current_owner(), hostname="elsewhere.example", boot_id="00000000-0000-4000-8000-000000000000"
    )
    assert owner_state(other) == "elsewhere"
    assert owner_state(dataclasses.replace(other, boot_id=None, start_ticks=None, pid_ns=None)) == "elsewhere"


def test_a_child_that_exited_is_gone():
    proc, owner = spawn_owner()
    assert (owner.start_ticks, owner.boot_id) == (proc_start_ticks(proc.pid), boot_id())
    assert owner_state(owner) == "alive"
    proc.communicate(b"\n", timeout=30)
    assert owner_state(owner) == "gone"
    assert owner_state(old_format(owner)) == "gone"


def test_a_killed_child_not_yet_reaped_is_gone():
    proc, owner = spawn_owner()
    os.kill(proc.pid, signal.SIGKILL)
    os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOWAIT)  # dead, but still a zombie
    assert psutil.Process(proc.pid).status() == psutil.STATUS_ZOMBIE
    assert owner_state(owner) == "gone"
    proc.wait(timeout=30)
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.close()
    proc.stdout.close()


OTHER_NS = (4, 1)  # no real pid namespace has inode 1


def in_new_pid_namespace(code: str) -> subprocess.Popen[bytes] | None:
    """``code`` run by Python as pid 1 of a new pid namespace (``unshare``), or None if that is refused."""
    from pathlib import Path

    import jobmanager_nb

    env = {**os.environ, "PYTHONPATH": str(Path(jobmanager_nb.__file__).resolve().parents[1])}
    try:
        proc = subprocess.Popen(
            ["unshare", "--pid", "--fork", "--mount-proc", sys.executable, "-c", code],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=env,
        )
    except OSError:
        return None
    return proc


CLAIM_IN_NAMESPACE = (
    "import json, sys; from jobmanager_nb.store import TinyDBStore, current_owner; "
    "s = TinyDBStore(sys.argv[1]); s.claim('nightly', current_owner()); "
    "r = s.mark_started('nightly', current_owner()); "
    "print(json.dumps(r.owner.to_dict()), flush=True); sys.stdin.readline()"
)


def test_a_live_kernel_in_another_pid_namespace_is_elsewhere_and_its_one_off_does_not_run_twice(tmp_path):
    """A container sharing the host's hostname (UTS namespace), boot id and notebook folder, with its own
    pid namespace: its pid means another process here (pid 1 is this machine's init), so judging it by
    that pid would call it gone and run its one-off a second time."""
    from jobmanager_nb.errors import OneOffAlreadyExecutedError
    from jobmanager_nb.store import TinyDBStore

    path = tmp_path / "jobs.json"
    proc = in_new_pid_namespace(CLAIM_IN_NAMESPACE.replace("sys.argv[1]", repr(str(path))))
    line = proc.stdout.readline() if proc is not None and proc.stdout is not None else b""
    try:
        if line:
            owner = Owner.from_dict(json.loads(line))
            assert owner.pid == 1 and owner.hostname == socket.gethostname() and owner.boot_id == boot_id()
            assert owner.pid_ns is not None and owner.pid_ns != current_owner().pid_ns
        else:  # unshare refused (no privilege): the same owner, crafted
            owner = dataclasses.replace(current_owner(), pid=1, start_ticks=0, pid_ns=OTHER_NS)
            store = TinyDBStore(path)
            store.claim("nightly", owner)
            store.mark_started("nightly", owner)
        assert owner_state(owner) == "elsewhere"
        store = TinyDBStore(path)  # opening reconciles
        assert store.reconciled == [] and store.get("nightly").status == "started"
        with pytest.raises(OneOffAlreadyExecutedError):
            store.claim("nightly", current_owner())
        assert store.reconcile() == [] and not store.has_executed_successfully("other")
        assert store.has_executed_successfully("nightly")
    finally:
        if proc is not None:
            proc.communicate(b"\n", timeout=30)


def test_an_owner_recorded_in_another_pid_namespace_is_elsewhere_whatever_its_pid_shows():
    me = current_owner()
    assert owner_state(dataclasses.replace(me, pid_ns=OTHER_NS)) == "elsewhere"  # pid alive here
    assert owner_state(dataclasses.replace(me, pid=1, start_ticks=0, pid_ns=OTHER_NS)) == "elsewhere"
    assert owner_state(dataclasses.replace(old_format(me), pid_ns=OTHER_NS)) == "elsewhere"


def test_when_this_process_cannot_read_its_pid_namespace_an_owner_that_has_one_is_elsewhere(monkeypatch):
    proc, owner = spawn_owner()
    proc.communicate(b"\n", timeout=30)
    monkeypatch.setattr(ownership, "_PID_NS", "/nonexistent-proc/self/ns/pid")
    assert owner_state(owner) == "elsewhere"  # cannot tell: never fail it on a guess
    assert owner_state(dataclasses.replace(owner, pid_ns=None)) == "gone"


def test_a_hostname_changed_since_on_the_same_boot_is_the_same_machine():
    renamed = dataclasses.replace(current_owner(), hostname="before-the-rename.example")
    assert owner_state(renamed) == "alive"
    proc, owner = spawn_owner()
    proc.communicate(b"\n", timeout=30)
    assert owner_state(dataclasses.replace(owner, hostname="before-the-rename.example")) == "gone"


def test_another_boot_id_is_a_reboot_on_this_hostname_and_another_machine_on_another():
    other_boot = dataclasses.replace(current_owner(), boot_id="00000000-0000-4000-8000-000000000000")
    assert owner_state(other_boot) == "gone"
    assert owner_state(dataclasses.replace(other_boot, hostname="elsewhere.example")) == "elsewhere"


def test_an_owner_without_a_namespace_on_this_boot_with_another_hostname_is_elsewhere():
    """A record without ``pid_ns`` (an older version) from a container with its own hostname: the boot
    id matches, but its pid may be in another namespace, so it cannot be judged."""
    proc, owner = spawn_owner()
    proc.communicate(b"\n", timeout=30)
    no_ns = dataclasses.replace(owner, pid_ns=None)
    assert owner_state(no_ns) == "gone"
    assert owner_state(dataclasses.replace(no_ns, hostname="container.example")) == "elsewhere"
