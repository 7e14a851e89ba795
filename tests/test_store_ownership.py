"""Process identity for one-off records: who owns a record and whether that process is alive."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import socket
import subprocess
import sys

import psutil

from jobmanager_nb.store import Owner, current_owner, owner_state

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


def test_current_owner_describes_this_process():
    owner = current_owner()
    assert (owner.pid, owner.hostname) == (os.getpid(), socket.gethostname())
    assert owner.create_time == psutil.Process().create_time()
    assert len(owner.token) == 16 and current_owner() is owner


def test_this_process_is_alive():
    assert owner_state(current_owner()) == "alive"


def test_a_reused_pid_is_recognised_by_its_start_time():
    impostor = dataclasses.replace(current_owner(), create_time=current_owner().create_time - 3600)
    assert owner_state(impostor) == "gone"


def test_another_host_cannot_be_judged():
    assert owner_state(dataclasses.replace(current_owner(), hostname="elsewhere.example")) == "elsewhere"


def test_a_child_that_exited_is_gone():
    proc, owner = spawn_owner()
    assert owner_state(owner) == "alive"
    proc.communicate(b"\n", timeout=30)
    assert owner_state(owner) == "gone"


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
