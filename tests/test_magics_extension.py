"""The extension's lifecycle in a real IPython shell: load, unload (the exact inverse), reload (one
scheduler), %config, the reconcile message after a crashed kernel, and a plain `python` never importing IPython."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import psutil
import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output
from magics_support import cell, fresh_shell, line, write_script
from polling import wait_until

import jobmanager_nb
from jobmanager_nb import JobManager, JobManagerError, MemoryStore, TinyDBStore, session
from jobmanager_nb.notebook import extension
from jobmanager_nb.notebook.magics import JobManagerMagics
from jobmanager_nb.store import OneOffRecord

WAIT = 20.0

SLEEPER = """\
import os
from jobmanager_nb import worker
with open(worker.data["pidfile"], "w") as f:
    f.write(str(os.getpid()))
worker.cancelled.wait(60)
"""


@pytest.fixture
def ip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    with fresh_shell(tmp_path, monkeypatch) as shell:
        yield shell


def load(shell: InteractiveShell) -> str:
    """Load the extension; return what it printed."""
    with capture_output() as cap:
        assert shell.extension_manager.load_extension("jobmanager_nb") is None
    return cap.stdout


def shell_state(shell: InteractiveShell) -> tuple[Any, ...]:
    """Everything loading the extension may touch in the shell."""
    magics = shell.magics_manager
    return (
        sorted(magics.magics["line"]),
        sorted(magics.magics["cell"]),
        "JobManagerMagics" in magics.registry,
        [c for c in shell.configurables if isinstance(c, JobManagerMagics)],
        list(shell.events.callbacks["post_run_cell"]),
    )


def new_threads(before: set[threading.Thread]) -> list[str]:
    return sorted(t.name for t in threading.enumerate() if t not in before and t.name.startswith("jobmanager_nb-"))


def start_sleeper(shell: InteractiveShell, folder: Path, name: str = "sleeper") -> int:
    """Start an offloaded job that sleeps until cancelled; return its worker's pid."""
    write_script(folder, "jobs/sleeper.py", SLEEPER)
    pidfile = folder / f"{name}.pid"
    line(shell, "job", f"""jobs/sleeper.py --name {name} --data '{{"pidfile": "{pidfile}"}}'""")
    return int(wait_until(lambda: pidfile.exists() and pidfile.read_text()))


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


# ------------------------------------------------------------------------------------------ load


def test_load_opens_one_manager_with_its_store_in_the_working_folder(ip: InteractiveShell, tmp_path: Path) -> None:
    assert load(ip) == ""
    manager = jobmanager_nb.get_manager()
    assert manager is session.current_manager()
    assert manager.store.path == tmp_path / ".jobmanager" / "jobs.json"
    assert {"job", "jobs"} <= set(ip.magics_manager.magics["line"])
    assert {"job", "oneoff"} <= set(ip.magics_manager.magics["cell"])
    assert any(isinstance(c, JobManagerMagics) for c in ip.configurables)


def test_loading_twice_keeps_the_one_manager(ip: InteractiveShell) -> None:
    load(ip)
    manager = jobmanager_nb.get_manager()
    assert ip.extension_manager.load_extension("jobmanager_nb") == "already loaded"
    assert jobmanager_nb.get_manager() is manager


def test_calling_the_load_function_again_replaces_everything_once(ip: InteractiveShell) -> None:
    load(ip)
    first = jobmanager_nb.get_manager()
    jobmanager_nb.load_ipython_extension(ip)
    assert jobmanager_nb.get_manager() is not first
    assert sum(isinstance(c, JobManagerMagics) for c in ip.configurables) == 1
    assert len([cb for cb in ip.events.callbacks["post_run_cell"] if "JobManagerMagics" in repr(cb)]) == 1


def test_loading_replaces_a_manager_user_code_opened_and_says_what_it_removed(ip: InteractiveShell) -> None:
    early = jobmanager_nb.get_manager()
    early.add_job(print, name="tick", at=60, offloaded=False)
    assert load(ip) == (
        "jobmanager_nb: replaced the job manager opened before %load_ext; removed 1 job(s) (tick): add them again\n"
    )
    assert jobmanager_nb.get_manager() is not early


def test_importing_the_package_in_plain_python_never_imports_ipython(tmp_path: Path) -> None:
    code = "import sys, jobmanager_nb\nm = jobmanager_nb.get_manager()\nm.close()\nprint('IPython' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False", out.stderr


# ------------------------------------------------------------------------------------------ unload, reload


def test_unload_is_the_exact_inverse_of_load(ip: InteractiveShell, tmp_path: Path) -> None:
    before_state = shell_state(ip)
    before_threads = set(threading.enumerate())
    load(ip)
    manager = jobmanager_nb.get_manager()
    cell(ip, "job", "tick --at 0.05", "ticked = True\n")
    wait_until(lambda: ip.user_ns.get("ticked"))
    pid = start_sleeper(ip, tmp_path)
    assert new_threads(before_threads)

    line(ip, "unload_ext", "jobmanager_nb")

    assert shell_state(ip) == before_state
    assert new_threads(before_threads) == []
    assert session.current_manager() is None
    wait_until(lambda: gone(pid))
    with pytest.raises(JobManagerError, match="shut down"):
        manager.add_job(print, name="x")
    with capture_output() as cap:
        result = ip.run_cell("%job list")
    assert "UsageError: Line magic function `%job` not found." in cap.stderr and not result.success


def test_reload_leaves_exactly_one_scheduler(ip: InteractiveShell, tmp_path: Path) -> None:
    before = set(threading.enumerate())

    def busy() -> list[str]:
        cell(ip, "job", "tick --at 0.05", "ticked = True\n")
        wait_until(lambda: ip.user_ns.pop("ticked", None))
        start_sleeper(ip, tmp_path)
        return new_threads(before)

    load(ip)
    first = busy()
    for _ in range(2):
        line(ip, "reload_ext", "jobmanager_nb")
        assert busy() == first
    counts = Counter(first)
    assert counts["jobmanager_nb-timers"] == 1 and set(counts.values()) == {1}, counts


def test_unload_when_not_loaded_does_nothing(ip: InteractiveShell) -> None:
    state = shell_state(ip)
    jobmanager_nb.unload_ipython_extension(ip)
    assert shell_state(ip) == state


# ------------------------------------------------------------------------------------------ %config


def test_changing_the_store_reopens_the_manager_and_says_so(ip: InteractiveShell, tmp_path: Path) -> None:
    load(ip)
    old = jobmanager_nb.get_manager()
    cell(ip, "job", "refresh --at 60", "pass\n")
    out = line(ip, "config", 'JobManagerMagics.store = "other/jobs.json"')
    assert out == (
        'jobmanager_nb: reopened the job manager with store "other/jobs.json"; removed 1 job(s) (refresh): '
        "run their cells again\n"
    )
    new = jobmanager_nb.get_manager()
    assert new is not old and isinstance(new.store, TinyDBStore)
    assert new.store.path == tmp_path / "other" / "jobs.json" and new.jobs == []
    with pytest.raises(JobManagerError, match="shut down"):
        old.add_job(print, name="x")
    cell(ip, "oneoff", "where --offloaded", "pass\n")
    assert (tmp_path / "other" / "cells" / "where.py").exists()


def test_settings_given_before_loading_are_used(
    ip: InteractiveShell, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    opened: list[tuple[Any, dict[str, Any]]] = []
    real_open = session.open_manager

    def spy(store: Any = None, **options: Any) -> JobManager:
        opened.append((store, options))
        return real_open(store, **options)

    monkeypatch.setattr(session, "open_manager", spy)
    line(ip, "config", 'JobManagerMagics.store = "early/jobs.json"')
    line(ip, "config", "JobManagerMagics.inline_concurrency = 1")
    line(ip, "config", "JobManagerMagics.kill_grace = 0.5")
    assert load(ip) == ""
    settings = {"inline_concurrency": 1, "kill_grace": 0.5, "log_failures": False}  # failures: told after cells
    assert opened == [("early/jobs.json", settings)]
    assert jobmanager_nb.get_manager().store.path == tmp_path / "early" / "jobs.json"
    line(ip, "config", "JobManagerMagics.kill_grace = 2.0")
    assert opened[-1] == ("early/jobs.json", {**settings, "kill_grace": 2.0})


def test_an_empty_store_keeps_one_offs_in_memory(ip: InteractiveShell) -> None:
    load(ip)
    line(ip, "config", 'JobManagerMagics.store = ""')
    assert isinstance(jobmanager_nb.get_manager().store, MemoryStore)


def test_config_lists_the_settings(ip: InteractiveShell) -> None:
    load(ip)
    help_text = line(ip, "config", "JobManagerMagics")
    for name in ("store", "inline_concurrency", "kill_grace", "notify_failures"):
        assert f"JobManagerMagics.{name}" in help_text


def test_a_corrupt_store_is_a_one_line_error_and_loads_nothing(ip: InteractiveShell, tmp_path: Path) -> None:
    state = shell_state(ip)
    (tmp_path / ".jobmanager").mkdir()
    (tmp_path / ".jobmanager" / "jobs.json").write_text("this is not json")
    with pytest.raises(UsageError) as error:
        ip.run_line_magic("load_ext", "jobmanager_nb")
    assert "\n" not in str(error.value) and "jobs.json" in str(error.value)
    assert shell_state(ip) == state and "jobmanager_nb" not in ip.extension_manager.loaded


def test_the_manager_is_reopened_if_user_code_closed_it(ip: InteractiveShell) -> None:
    load(ip)
    session.close_manager()
    assert line(ip, "job", "list").startswith("No jobs")
    assert session.current_manager() is not None


# ------------------------------------------------------------------------------------------ an earlier kernel


CRASHING_KERNEL = textwrap.dedent(
    """\
    import time
    from IPython.core.interactiveshell import InteractiveShell
    from traitlets.config import Config

    config = Config()
    config.HistoryManager.hist_file = ":memory:"
    shell = InteractiveShell.instance(config=config)
    shell.run_line_magic("load_ext", "jobmanager_nb")
    shell.run_cell_magic("oneoff", "backup --offloaded", BODY)
    print("KERNEL READY", flush=True)
    time.sleep(120)
    """
)

BACKUP_BODY = """\
import os, pathlib, time
pathlib.Path("worker.pid").write_text(str(os.getpid()))
while not pathlib.Path("go").exists():
    time.sleep(0.02)
print("backed up")
"""


def test_a_oneoff_left_running_by_a_killed_kernel_is_reported_once_and_can_be_rerun(
    ip: InteractiveShell, tmp_path: Path
) -> None:
    script = CRASHING_KERNEL.replace("BODY", repr(BACKUP_BODY))
    env = dict(os.environ, IPYTHONDIR=str(tmp_path / "ipython"))
    kernel = subprocess.Popen([sys.executable, "-c", script], cwd=tmp_path, env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert kernel.stdout is not None
        assert "KERNEL READY\n" in iter(kernel.stdout.readline, "")  # reads up to that line
        store = TinyDBStore(tmp_path / ".jobmanager" / "jobs.json", reconcile=False)
        wait_until(lambda: (r := store.get("backup")) is not None and r.status == "started")
        pidfile = tmp_path / "worker.pid"
        worker_pid = int(wait_until(lambda: pidfile.exists() and pidfile.read_text()))
    finally:
        kernel.send_signal(signal.SIGKILL)
        kernel.wait(10)
        if kernel.stdout is not None:
            kernel.stdout.close()
    wait_until(lambda: gone(worker_pid))  # a worker ends when its kernel dies

    assert load(ip) == (
        "jobmanager_nb: 1 one-off job was interrupted when its kernel exited and is marked failed: backup "
        "(rerun with %job rerun backup)\n"
    )
    assert line(ip, "reload_ext", "jobmanager_nb") == ""  # told once
    record = jobmanager_nb.get_manager().store.get("backup")
    assert record.status == "failed" and record.error == "interrupted: the kernel running it exited"

    (tmp_path / "go").write_text("")
    assert line(ip, "job", "rerun backup").startswith('rerunning one-off "backup"')
    run = jobmanager_nb.get_manager().wait("backup", WAIT)
    assert run.ok and run.output == "backed up\n"


def test_the_reconcile_message_without_a_saved_cell_says_to_run_the_cell_again(ip: InteractiveShell) -> None:
    load(ip)
    magics = extension._loaded
    assert magics is not None
    when = datetime.now(timezone.utc)
    meta = {"kind": "inline", "target": "f()", "target_type": "callable"}  # a function from a cell: not kept
    records = [OneOffRecord(name, "failed", when, error="interrupted", meta=meta) for name in ("a", "b")]
    manager = jobmanager_nb.get_manager()
    assert magics._reconcile_message(manager, records[:1]) == (
        "jobmanager_nb: 1 one-off job was interrupted when its kernel exited and is marked failed: a "
        "(run the cell that adds it again to rerun it)"
    )
    assert magics._reconcile_message(manager, records) == (
        "jobmanager_nb: 2 one-off jobs were interrupted when their kernel exited and are marked failed: a, b "
        "(run their cells again to rerun them)"
    )
