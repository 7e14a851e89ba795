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
    proc = subprocess.Popen(
        [sys.executable, "-c", SHOW_OWNER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env
    )
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
    del data["start_ticks"], data["boot_id"]
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
    assert owner_state(dataclasses.replace(current_owner(), hostname="elsewhere.example")) == "elsewhere"


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
