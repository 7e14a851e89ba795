"""The magics, driven through a real IPython shell: every subcommand and option, and every user mistake
as a one-line UsageError."""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output
from magics_support import cell, fresh_shell, line, usage_error, write_script
from polling import wait_until

import jobmanager_nb
from jobmanager_nb import JobFailedError, JobManager
from jobmanager_nb.notebook import extension, status
from jobmanager_nb.notebook.text import duration

WAIT = 20.0

HELLO = """\
import os
from jobmanager_nb import worker
print("hello", worker.data, os.getpid())
"""

SLEEPER = """\
import os
from jobmanager_nb import worker
with open(worker.data["pidfile"], "w") as f:
    f.write(str(os.getpid()))
if worker.cancelled.wait(60):
    worker.post_message("cancelled")
"""

MODULE = """\
import asyncio
import os

def double(data):
    return data["n"] * 2

def whoami():
    return os.getpid()

async def slow(data=None):
    await asyncio.sleep(30)
"""


@pytest.fixture
def ip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    with fresh_shell(tmp_path, monkeypatch) as shell:
        yield shell


@pytest.fixture
def manager(ip: InteractiveShell) -> JobManager:
    assert ip.extension_manager.load_extension("jobmanager_nb") is None
    return jobmanager_nb.get_manager()


@pytest.fixture
def hello(tmp_path: Path) -> Path:
    return write_script(tmp_path, "jobs/hello.py", HELLO)


@pytest.fixture
def sleeper(tmp_path: Path) -> Path:
    return write_script(tmp_path, "jobs/sleeper.py", SLEEPER)


@pytest.fixture
def module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    write_script(tmp_path, "magic_jobs_mod.py", MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "magic_jobs_mod", raising=False)
    return "magic_jobs_mod"


# ------------------------------------------------------------------------------------------ help


def test_each_magic_has_help_text_saying_what_it_promises(ip: InteractiveShell, manager: JobManager) -> None:
    job_help = ip.find_line_magic("job").__doc__
    phrases = ("PATH_OR_REF", "--at SPEC", "--name N", "--data JSON", "--inline", "--timeout S")
    for phrase in (*phrases, "%job next", "%job rerun"):
        assert phrase in job_help
    assert "%%job" in ip.find_cell_magic("job").__doc__ and "replaces the job" in ip.find_cell_magic("job").__doc__
    assert "once, ever" in ip.find_cell_magic("oneoff").__doc__
    assert "live dashboard" in ip.find_line_magic("jobs").__doc__


# ------------------------------------------------------------------------------------------ %job PATH_OR_REF


def test_a_script_runs_now_in_a_worker_process_with_its_data(ip, manager, hello) -> None:
    out = line(ip, "job", """jobs/hello.py --data '{"n": 3}'""")
    assert out == 'started job "hello" (jobs/hello.py, offloaded) now\n'
    run = manager.wait("hello", WAIT)
    text, data, pid = run.output.split(" ", 2)
    assert (text, data) == ("hello", "{'n':") and int(pid.split()[-1]) != os.getpid()


def test_a_schedule_may_be_given_with_or_without_quotes(ip, manager, hello) -> None:
    line(ip, "job", "--name plain jobs/hello.py --at every 5 minutes")
    line(ip, "job", 'jobs/hello.py --at "0 */5 * * * *" --name cron')
    line(ip, "job", "jobs/hello.py --name eq --at=every 10 minutes")
    assert manager.job("plain").schedule == "every 5 minutes"
    assert manager.job("cron").schedule == "0 */5 * * * *"
    assert manager.job("eq").schedule == "every 10 minutes"
    assert all(manager.job(n).status == "scheduled" for n in ("plain", "cron", "eq"))


def test_a_number_is_an_interval_and_an_iso_time_is_one_moment(ip, manager, hello) -> None:
    out = line(ip, "job", "jobs/hello.py --at 30 --name every30")
    assert 'added job "every30"' in out and "every 30 seconds" in out
    line(ip, "job", "jobs/hello.py --at 2099-01-02T09:30:00+00:00 --name later")
    assert manager.job("later").next_run.isoformat() == "2099-01-02T09:30:00+00:00"


def test_inline_reference_runs_in_the_kernel_with_its_data(ip, manager, module) -> None:
    line(ip, "job", f"""{module}:double --inline --data '{{"n": 21}}'""")
    run = manager.wait("double", WAIT)
    assert (run.kind, run.result) == ("inline", 42)


@pytest.fixture
def package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A package that re-exports a function defined in one of its modules."""
    write_script(tmp_path, "magic_jobs_pk/__init__.py", "from magic_jobs_pk.impl import work\n")
    write_script(tmp_path, "magic_jobs_pk/impl.py", "def work():\n    return 'worked'\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in ("magic_jobs_pk", "magic_jobs_pk.impl"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    return "magic_jobs_pk"


def test_an_inline_reexported_function_keeps_its_reference_and_the_same_line_replaces_it(ip, manager, package) -> None:
    out = line(ip, "job", f"{package}:work --inline --at 60")
    assert out.startswith(f'added job "work" ({package}:work, inline): every minute')
    assert line(ip, "job", f"{package}:work --inline --at 60").startswith('added job "work"')
    assert [(j.name, j.target, j.kind) for j in manager.jobs] == [("work", f"{package}:work", "inline")]
    line(ip, "job", f"{package}:work --inline --oneoff --name once")
    assert manager.wait("once", WAIT).result == "worked"
    meta = manager.store.get("once").meta
    assert (meta["target_type"], meta["job"]) == ("reference", f"{package}:work")  # a later kernel can rerun it


def test_inline_data_for_a_function_without_a_parameter_is_refused_up_front(ip, manager, package) -> None:
    message = usage_error(ip, "job", f"""{package}:work --inline --data '{{"n": 1}}'""")
    assert message.startswith('Job "work": data was given but the function takes no argument.')
    assert manager.jobs == []


def test_an_inline_script_runs_in_the_kernel_process(ip, manager, hello) -> None:
    out = line(ip, "job", """jobs/hello.py --inline --name here --data '{"n": 1}'""")
    assert out == 'started job "here" (jobs/hello.py, inline) now\n'
    run = manager.wait("here", WAIT)
    assert run.kind == "inline" and run.output.split()[-1] == str(os.getpid())


def test_an_offloaded_reference_runs_in_another_process(ip, manager, module) -> None:
    line(ip, "job", f"{module}:whoami")
    assert manager.wait("whoami", WAIT).result != os.getpid()


def test_timeout_stops_a_run_that_takes_too_long(ip, manager, module) -> None:
    line(ip, "job", f"{module}:slow --inline --timeout 0.1")
    with pytest.raises(JobFailedError, match=r"timed out after 0\.1 s"):
        manager.wait("slow", WAIT)


def test_running_the_same_line_again_replaces_the_job(ip, manager, hello) -> None:
    line(ip, "job", "jobs/hello.py --at every 5 minutes")
    line(ip, "job", "jobs/hello.py --at every 10 minutes")
    assert [j.name for j in manager.jobs] == ["hello"]
    assert manager.job("hello").schedule == "every 10 minutes"


def test_another_job_under_a_registered_name_is_refused_unless_replace(ip, manager, hello, tmp_path) -> None:
    write_script(tmp_path, "jobs/other.py", "print('other')\n")
    line(ip, "job", "jobs/hello.py --at every 5 minutes --name shared")
    message = usage_error(ip, "job", "jobs/other.py --at every 5 minutes --name shared")
    assert message.startswith('A job named "shared" is already registered (jobs/hello.py, offloaded).')
    assert "%job remove shared" in message and "--replace" in message
    line(ip, "job", "jobs/other.py --at every 5 minutes --name shared --replace")
    assert manager.job("shared").target == "jobs/other.py"


def test_oneoff_flag_runs_a_script_once_ever(ip, manager, hello) -> None:
    out = line(ip, "job", "jobs/hello.py --oneoff --name once")
    assert out.startswith('started one-off "once" (offloaded)')
    manager.wait("once", WAIT)
    again = line(ip, "job", "jobs/hello.py --oneoff --name once")
    assert again.startswith('one-off "once" already executed (finished ')
    assert manager.job("once").runs == 1


# ------------------------------------------------------------------------------------------ subcommands


def test_job_list_and_bare_job_print_the_table_as_text(ip, manager, hello) -> None:
    line(ip, "job", "jobs/hello.py --at every 5 minutes")
    listing = line(ip, "job", "list")
    assert "hello" in listing and "every 5 minutes" in listing and "scheduled" in listing
    assert line(ip, "job") == listing


def test_job_run_starts_a_run_now(ip, manager, hello) -> None:
    line(ip, "job", "jobs/hello.py --at every 5 minutes")
    out = line(ip, "job", "run hello")
    assert out.startswith('started a run of "hello" (r')
    assert manager.wait("hello", WAIT).ok and manager.job("hello").status == "scheduled"


def test_job_run_while_a_run_is_going_says_so(ip, manager, sleeper, tmp_path) -> None:
    pidfile = tmp_path / "pid"
    line(ip, "job", f"""jobs/sleeper.py --at every 5 minutes --data '{{"pidfile": "{pidfile}"}}'""")
    line(ip, "job", "run sleeper")
    wait_until(pidfile.exists)
    assert line(ip, "job", "run sleeper").startswith('"sleeper" is still running, so no new run was started')
    assert line(ip, "job", "cancel sleeper") == 'cancelled the current run of "sleeper" (its schedule goes on)\n'


def test_job_cancel_stops_the_running_run_and_keeps_the_job(ip, manager, sleeper, tmp_path) -> None:
    pidfile = tmp_path / "pid"
    line(ip, "job", f"""jobs/sleeper.py --data '{{"pidfile": "{pidfile}"}}'""")
    wait_until(lambda: pidfile.exists() and pidfile.read_text())
    assert line(ip, "job", "cancel sleeper") == 'cancelled the current run of "sleeper"\n'
    with pytest.raises(JobFailedError) as failed:
        manager.wait("sleeper", WAIT)
    assert failed.value.run.cancelled and manager.job("sleeper").status == "cancelled"
    assert line(ip, "job", "wait sleeper") == '"sleeper" was cancelled (' + failed.value.run.run_id + ")\n"
    assert line(ip, "job", "cancel sleeper") == '"sleeper" had no queued or running run to cancel\n'


def test_job_pause_and_resume(ip, manager, hello) -> None:
    line(ip, "job", "jobs/hello.py --at every 5 minutes")
    assert line(ip, "job", "pause hello").startswith('paused "hello"')
    assert manager.job("hello").status == "paused"
    assert line(ip, "job", "resume hello").startswith('resumed "hello"; next run ')
    assert manager.job("hello").status == "scheduled"


def test_job_remove_unregisters_it(ip, manager, hello) -> None:
    line(ip, "job", "jobs/hello.py --at every 5 minutes")
    assert line(ip, "job", "remove hello") == 'removed job "hello"\n'
    assert "hello" not in [j.name for j in manager.jobs]
    assert usage_error(ip, "job", "remove hello").startswith('No job named "hello"')


def test_job_log_shows_output_and_the_users_part_of_the_traceback(ip, manager) -> None:
    ip.user_ns["rows"] = []
    cell(ip, "oneoff", "parse", "print('reading rows')\nrows.append(int('x'))\n")
    with pytest.raises(JobFailedError):
        manager.wait("parse", WAIT)
    log = line(ip, "job", "log parse")
    assert log.startswith('"parse" r') and "(attempt 1): failed at " in log
    assert "output:\n  reading rows\n" in log
    assert '  File "<job parse>", line 2, in <module>' in log and "rows.append(int('x'))" in log
    assert log.rstrip().endswith("ValueError: invalid literal for int() with base 10: 'x'")
    assert "manager.py" not in log and f"jobmanager_nb{os.sep}" not in log  # no frame of the package


def test_job_log_before_any_run_and_while_running(ip, manager, hello, sleeper, tmp_path) -> None:
    line(ip, "job", "jobs/hello.py --at every 5 minutes")
    assert line(ip, "job", "log hello").startswith('"hello" has not run yet; next run ')
    pidfile = tmp_path / "pid"
    line(ip, "job", f"""jobs/sleeper.py --data '{{"pidfile": "{pidfile}"}}'""")
    wait_until(pidfile.exists)
    assert "running since" in line(ip, "job", "log sleeper")


def test_job_wait_reports_success_failure_and_everything(ip, manager, hello) -> None:
    line(ip, "job", "jobs/hello.py")
    assert line(ip, "job", "wait hello --timeout 20").startswith('"hello" finished in ')
    cell(ip, "oneoff", "boom", "raise RuntimeError('no disk')\n")
    out = line(ip, "job", "wait boom --timeout 20")
    assert out.startswith('"boom" failed (r') and "RuntimeError: no disk - see %job log boom" in out
    assert out.rstrip().endswith("rerun with %job rerun boom")
    assert line(ip, "job", "wait --timeout 20") == "no job is queued or running\n"


def test_job_wait_timeout_is_a_one_line_error(ip, manager, sleeper, tmp_path) -> None:
    line(ip, "job", f"""jobs/sleeper.py --data '{{"pidfile": "{tmp_path / "pid"}"}}'""")
    assert usage_error(ip, "job", "wait sleeper --timeout 0.05") == ('Job "sleeper" did not complete within 0.05 s.')


def test_job_next_previews_a_schedule(ip, manager) -> None:
    out = line(ip, "job", "next every 5 minutes -n 3").splitlines()
    assert out[0] == "every 5 minutes" and len(out) == 4
    assert all(row.startswith("  ") and "(in " in row for row in out[1:])
    cron = line(ip, "job", 'next "0 */5 * * * *" -n 2').splitlines()
    assert cron[0].startswith("every 5 minutes") and len(cron) == 3
    assert line(ip, "job", "next 0 */5 * * * *").count("\n") == 6  # -n defaults to 5
    assert line(ip, "job", "next 2001-01-01T00:00").splitlines()[1] == "  no runs ahead: that moment has passed"


# ------------------------------------------------------------------------------------------ %%job


def test_cell_job_runs_inline_in_the_notebook_namespace(ip, manager) -> None:
    ip.user_ns["ticks"] = 0
    out = cell(ip, "job", "refresh --at 0.05", "ticks += 1\nlast = ticks\n")
    assert out.startswith('added job "refresh" (notebook_cell(), inline): every 0.05 seconds')
    wait_until(lambda: ip.user_ns["ticks"] >= 2)
    assert ip.user_ns["last"] >= 1


def test_rerunning_a_cell_job_replaces_it_never_duplicates_it(ip, manager) -> None:
    ip.user_ns["seen"] = []
    cell(ip, "job", "refresh --at 0.05", "seen.append('old')\n")
    wait_until(lambda: "old" in ip.user_ns["seen"])
    cell(ip, "job", "refresh --at 0.05", "seen.append('new')\n")
    manager.wait("refresh", WAIT)  # a run of the old body that was going has ended
    ip.user_ns["seen"].clear()
    wait_until(lambda: len(ip.user_ns["seen"]) >= 3)
    assert set(ip.user_ns["seen"]) == {"new"}
    assert [j.name for j in manager.jobs] == ["refresh"]


def test_cell_job_may_await_at_top_level(ip, manager) -> None:
    cell(ip, "job", "poll --at 0.05", "import asyncio\nawait asyncio.sleep(0)\npolled = True\n")
    wait_until(lambda: ip.user_ns.get("polled"))


def test_offloaded_cell_job_runs_in_a_worker_from_a_saved_script(ip, manager, tmp_path) -> None:
    cell(ip, "job", "probe --at 0.2 --offloaded", "import os\nprint('pid', os.getpid())\n")
    script = tmp_path / ".jobmanager" / "cells" / "probe.py"
    assert script.read_text() == "import os\nprint('pid', os.getpid())\n"
    run = manager.wait("probe", WAIT)
    assert run.kind == "offloaded" and int(run.output.split()[1]) != os.getpid()


def test_odd_job_names_get_distinct_safe_file_names(ip, manager, tmp_path) -> None:
    cell(ip, "job", "a/b --at 60 --offloaded", "pass\n")
    cell(ip, "job", "a_b --at 60 --offloaded", "pass\n")
    names = sorted(p.name for p in (tmp_path / ".jobmanager" / "cells").glob("*.py"))
    assert len(names) == 2 and "a_b.py" in names and all("/" not in n for n in names)


# ------------------------------------------------------------------------------------------ %%oneoff


def test_oneoff_cell_runs_once_and_says_already_executed_after_success(ip, manager) -> None:
    ip.user_ns["count"] = 0
    out = cell(ip, "oneoff", "migrate", "count += 1\n")
    assert out == 'started one-off "migrate" (inline); see it with %job wait migrate or %job log migrate\n'
    manager.wait("migrate", WAIT)
    again = cell(ip, "oneoff", "migrate", "count += 1\n")
    assert again.startswith('one-off "migrate" already executed (finished ')
    assert again.endswith("so it was not run again; to run it once more, give it a new name\n")
    assert again.count("\n") == 1 and ip.user_ns["count"] == 1


def test_oneoff_cell_runs_again_after_it_failed(ip, manager, tmp_path) -> None:
    body = "from pathlib import Path\nvalue = Path('flag').read_text()\n"
    cell(ip, "oneoff", "needs-flag", body)
    with pytest.raises(JobFailedError, match="FileNotFoundError"):
        manager.wait("needs-flag", WAIT)
    (tmp_path / "flag").write_text("ready")
    assert cell(ip, "oneoff", "needs-flag", body).startswith('started one-off "needs-flag"')
    assert manager.wait("needs-flag", WAIT).ok and ip.user_ns["value"] == "ready"


def test_job_rerun_reruns_a_failed_oneoff(ip, manager, tmp_path) -> None:
    cell(ip, "oneoff", "needs-flag", "from pathlib import Path\nvalue = Path('flag').read_text()\n")
    with pytest.raises(JobFailedError):
        manager.wait("needs-flag", WAIT)
    (tmp_path / "flag").write_text("ready")
    assert line(ip, "job", "rerun needs-flag").startswith('rerunning one-off "needs-flag"')
    assert manager.wait("needs-flag", WAIT).ok and manager.job("needs-flag").runs == 2
    message = usage_error(ip, "job", "rerun needs-flag")
    assert message.startswith('A "needs-flag" one off job has already been executed.')


def test_a_rerun_says_which_attempt_it_is_counted_by_the_store(ip, manager, tmp_path) -> None:
    body = "from pathlib import Path\nvalue = Path('flag').read_text()\n"
    cell(ip, "oneoff", "needs-flag", body)
    with pytest.raises(JobFailedError):
        manager.wait("needs-flag", WAIT)
    assert "(attempt 1): failed at " in line(ip, "job", "log needs-flag")
    assert line(ip, "job", "rerun needs-flag").startswith('rerunning one-off "needs-flag" (attempt 2, a rerun); ')
    with pytest.raises(JobFailedError):
        manager.wait("needs-flag", WAIT)
    assert manager.store.get("needs-flag").attempts == 2
    assert "(attempt 2, a rerun): failed at " in line(ip, "job", "log needs-flag")
    (tmp_path / "flag").write_text("ready")
    assert "(attempt 3, a rerun)" in line(ip, "job", "rerun needs-flag")
    assert manager.wait("needs-flag", WAIT).ok
    assert "(attempt 3, a rerun): finished at " in line(ip, "job", "log needs-flag")


def test_wait_and_log_word_a_duration_as_the_dashboard_does(ip, manager) -> None:
    cell(ip, "oneoff", "quick", "x = 1\n")
    out = line(ip, "job", "wait quick --timeout 20")
    took = re.fullmatch(r'"quick" finished in (\S+ ms|\S+ s) \(r\d+\)\n', out)
    assert took is not None, out
    assert took.group(1) == duration(manager.job("quick").last_run.duration)  # "3 ms", never "0.00 s"
    assert "0.00 s" not in out and f"after {took.group(1)}" in line(ip, "job", "log quick")


@pytest.mark.parametrize(
    ("spec", "days", "clock"),
    [
        ("tomorrow at 9am", 1, "09:00"),
        ("at 9:30 pm tomorrow", 1, "21:30"),
        ("tomorrow", 1, "09:00"),
        ("next monday", None, "09:00"),
        ("friday at noon", None, "12:00"),
    ],
)
def test_a_moment_in_words_is_refused_with_its_iso_form(ip, manager, hello, spec, days, clock) -> None:
    for magic, text, body in (("job", f"jobs/hello.py --at {spec}", None), ("job", f"x --at {spec}", "pass")):
        message = usage_error(ip, magic, text, body)
        assert message.startswith(f'Invalid schedule format: "{spec}"'), message
        iso = re.search(r"For one moment, give its date and time: --at (\d{4}-\d\d-\d\dT\d\d:\d\d)$", message)
        assert iso is not None, message
        moment = datetime.fromisoformat(iso.group(1))
        today = datetime.now().date()
        if days is not None:
            assert moment.date() == today + timedelta(days=days)
        else:
            assert today < moment.date() <= today + timedelta(days=7)
        assert moment.strftime("%H:%M") == clock
        assert line(ip, "job", f"next {iso.group(1)} -n 1").startswith("once at ")  # and the suggestion works
    assert "For one moment" not in usage_error(ip, "job", "next every 5 minuets")  # a repeating schedule: no


def test_oneoff_data_reaches_inline_and_offloaded_cells(ip, manager) -> None:
    body = "from jobmanager_nb import current_run\ngot = current_run().data\n"
    cell(ip, "oneoff", """inline-data --data '{"x": 1}'""", body)
    manager.wait("inline-data", WAIT)
    assert ip.user_ns["got"] == {"x": 1}
    body = "from jobmanager_nb import worker\nprint(worker.data)\n"
    cell(ip, "oneoff", """worker-data --offloaded --data '{"x": 2}'""", body)
    assert manager.wait("worker-data", WAIT).output == "{'x': 2}\n"


def test_a_failed_oneoff_from_an_earlier_session_reruns_from_its_saved_cell(
    ip: InteractiveShell, manager: JobManager, tmp_path: Path
) -> None:
    cell(ip, "oneoff", "later", "from pathlib import Path\nresult = Path('flag').read_text()\n")
    with pytest.raises(JobFailedError):
        manager.wait("later", WAIT)
    line(ip, "reload_ext", "jobmanager_nb")  # a new manager: it knows only the store's record
    fresh = jobmanager_nb.get_manager()
    assert fresh is not manager and fresh.store.get("later").status == "failed"
    (tmp_path / "flag").write_text("done")
    assert line(ip, "job", "rerun later").startswith('rerunning one-off "later"')
    assert fresh.wait("later", WAIT).ok and ip.user_ns["result"] == "done"


def test_log_of_a_oneoff_known_only_from_the_store(ip, manager) -> None:
    cell(ip, "oneoff", "old", "raise KeyError('gone')\n")
    with pytest.raises(JobFailedError):
        manager.wait("old", WAIT)
    line(ip, "reload_ext", "jobmanager_nb")
    log = line(ip, "job", "log old")
    assert log.startswith('one-off "old" (from the store, not run by this kernel; attempt 1): failed at ')
    assert "KeyError: 'gone'" in log


# ------------------------------------------------------------------------------------------ %jobs


def test_jobs_in_a_terminal_prints_the_table(ip, manager, hello) -> None:
    line(ip, "job", "jobs/hello.py --at every 5 minutes")
    assert line(ip, "jobs") == line(ip, "job", "list")


def test_jobs_with_a_widget_frontend_displays_one_live_table_per_call(
    ip: InteractiveShell, manager: JobManager, hello: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(status, "_has_widget_frontend", lambda shell: True)
    line(ip, "job", "jobs/hello.py --at every 5 minutes")
    views = []
    for _ in range(2):
        with capture_output() as cap:
            ip.run_line_magic("jobs", "")
        assert len(cap.outputs) == 1
        views.append(cap.outputs[0].data["application/vnd.jupyter.widget-view+json"]["model_id"])
    assert views[0] == views[1]  # the same live table, shown again
    table = extension._loaded._table
    assert table.names == ["hello"] and not table.closed
    line(ip, "unload_ext", "jobmanager_nb")
    assert table.closed


# ------------------------------------------------------------------------------------------ background failures


def test_a_background_failure_is_told_once_after_the_next_cell(ip, manager, caplog) -> None:
    cell(ip, "oneoff", "nightly", "raise OSError('disk full')\n")
    with pytest.raises(JobFailedError):
        manager.wait("nightly", WAIT)
    assert [r for r in caplog.records if "failed (run" in r.getMessage()] == []  # told below, not logged
    with capture_output() as cap:
        ip.run_cell("x = 1")
    assert cap.stdout.startswith("jobmanager_nb: job 'nightly' failed at ")
    assert cap.stdout.endswith(": OSError: disk full (see %job log nightly)\n")
    with capture_output() as cap:
        ip.run_cell("x = 2")
    assert cap.stdout == ""


def test_a_cancelled_run_is_not_told_as_a_failure_but_a_real_failure_still_is(ip, manager, sleeper, tmp_path) -> None:
    pidfile = tmp_path / "pid"
    line(ip, "job", f"""jobs/sleeper.py --data '{{"pidfile": "{pidfile}"}}'""")
    wait_until(lambda: pidfile.exists() and pidfile.read_text())
    cell(ip, "oneoff", "nap", "import asyncio\nawait asyncio.sleep(60)\n")
    wait_until(lambda: manager.job("nap").status == "started")
    for name in ("sleeper", "nap"):
        line(ip, "job", f"cancel {name}")
        with pytest.raises(JobFailedError) as failed:
            manager.wait(name, WAIT)
        assert failed.value.run.cancelled
    with capture_output() as cap:
        ip.run_cell("x = 1")
    assert cap.stdout == ""
    cell(ip, "oneoff", "broken", "raise OSError('disk full')\n")
    with pytest.raises(JobFailedError):
        manager.wait("broken", WAIT)
    with capture_output() as cap:
        ip.run_cell("x = 2")
    assert cap.stdout.startswith("jobmanager_nb: job 'broken' failed at ")
    assert cap.stdout.count("\n") == 1


def test_failures_already_reported_by_wait_or_switched_off_are_not_told(ip, manager) -> None:
    cell(ip, "oneoff", "a", "raise OSError('a')\n")
    line(ip, "job", "wait a --timeout 20")
    line(ip, "config", "JobManagerMagics.notify_failures = False")
    cell(ip, "oneoff", "b", "raise OSError('b')\n")
    with pytest.raises(JobFailedError):
        manager.wait("b", WAIT)
    with capture_output() as cap:
        ip.run_cell("x = 1")
    assert cap.stdout == ""


def after_a_cell(ip: InteractiveShell) -> str:
    """What the post_run_cell hooks print after a cell."""
    with capture_output() as cap:
        ip.run_cell("pass")
    return cap.stdout


HELD = re.compile(
    r"jobmanager_nb: inline job '(?P<name>[\w-]+)' held the kernel for (?P<took>\d+ ms|[\d.]+ s) \(cells wait while an "
    r"inline job runs\); run it in a worker process instead: add it with --offloaded \(%%job, %%oneoff\) or without "
    r"--inline \(%job\)\n"
)


def test_an_inline_run_that_holds_the_kernel_is_told_once_with_a_hint_to_offload_it(tmp_path, monkeypatch) -> None:
    async def in_a_kernel() -> None:  # the extension loads in a running loop, so inline jobs run on it, as in a kernel
        with fresh_shell(tmp_path, monkeypatch) as ip:
            line(ip, "config", "JobManagerMagics.slow_inline_notice = 0.3")
            line(ip, "load_ext", "jobmanager_nb")
            manager = jobmanager_nb.get_manager()
            cell(ip, "oneoff", "hog", "import time\ntime.sleep(0.5)\n")  # holds the loop for 0.5 s
            cell(ip, "oneoff", "waiter", "import asyncio\nawait asyncio.sleep(0.5)\n")  # as long, but awaits
            cell(ip, "oneoff", "quick", "x = 1\n")
            for name in ("hog", "waiter", "quick"):
                await manager.await_completion(name, WAIT)
            await asyncio.sleep(0.1)  # the loop is free: the callbacks that measured the runs have run
            told = after_a_cell(ip)
            assert [m.group("name") for m in HELD.finditer(told)] == ["hog"] and HELD.fullmatch(told), told
            assert after_a_cell(ip) == ""  # told once

            cell(ip, "job", "ticker --at 0.2", "import time\ntime.sleep(0.4)\n")  # a recurring one that holds it
            await asyncio.sleep(1.5)
            assert manager.job("ticker").runs >= 2
            assert [m.group("name") for m in HELD.finditer(after_a_cell(ip))] == ["ticker"]
            await asyncio.sleep(1.0)
            assert after_a_cell(ip) == ""  # once per job, however many of its runs hold the kernel

            line(ip, "config", "JobManagerMagics.slow_inline_notice = 0")
            cell(ip, "oneoff", "hog2", "import time\ntime.sleep(0.5)\n")
            await manager.await_completion("hog2", WAIT)
            await asyncio.sleep(0.1)
            assert after_a_cell(ip) == ""  # switched off

    asyncio.run(in_a_kernel())


def test_outside_a_kernel_inline_jobs_do_not_hold_the_shell_so_nothing_is_told(ip, manager) -> None:
    line(ip, "config", "JobManagerMagics.slow_inline_notice = 0.1")
    cell(ip, "oneoff", "hog", "import time\ntime.sleep(0.3)\n")  # runs on the manager's own loop thread
    assert manager.wait("hog", WAIT).ok
    assert after_a_cell(ip) == ""


# ------------------------------------------------------------------------------------------ mistakes


def test_a_mistake_in_a_cell_shows_one_line_and_no_traceback(ip, manager) -> None:
    with capture_output() as cap:
        result = ip.run_cell("%job run nosuch")
    assert isinstance(result.error_in_exec, UsageError)
    assert cap.stderr == 'UsageError: No job named "nosuch". Known jobs: none.\n'
    assert "Traceback" not in cap.stdout + cap.stderr


@pytest.mark.parametrize("sub", ["remove", "run", "cancel", "pause", "resume", "log", "wait"])
def test_an_unknown_job_name_is_one_line(ip, manager, sub) -> None:
    assert usage_error(ip, "job", f"{sub} nosuch").startswith('No job named "nosuch". Known jobs: none.')


def test_rerun_of_an_unknown_oneoff_is_one_line(ip, manager) -> None:
    assert usage_error(ip, "job", "rerun nosuch") == (
        'No one-off job named "nosuch" in this kernel or in the store; check the name.'
    )


@pytest.mark.parametrize(
    ("magic", "text", "body", "expected"),
    [
        ("job", "jobs/hello.py --at every 5 minuets", None, 'Invalid schedule format: "every 5 minuets"'),
        ("job", "next every 5 minuets", None, 'Invalid schedule format: "every 5 minuets"'),
        ("job", "refresh --at every 5 minuets", "pass", 'Invalid schedule format: "every 5 minuets"'),
        ("job", "jobs/missing.py", None, 'The job: script file "jobs/missing.py" does not exist'),
        ("job", "nosuchmodule:func", None, 'cannot import module "nosuchmodule"'),
        ("job", "jobs/hello.py --data {bad}", None, "--data is not JSON (Expecting property name"),
        ("job", 'jobs/hello.py --data {"id": 7}', None, "--data is not JSON (Expecting property name enclosed in"),
        ("job", "--at every 5 minutes jobs/hello.py", None, "the following arguments are required: PATH_OR_REF."),
        ("oneoff", "x --data [1,", "pass", "--data is not JSON (Expecting value at column 4): [1,."),
        ("job", "frobnicate", None, 'Unknown %job subcommand "frobnicate".'),
        ("job", "remove", None, "the following arguments are required: NAME. Usage: %job remove NAME"),
        ("job", "jobs/hello.py --at 'every 5", None, "Cannot read the arguments (No closing quotation)"),
        ("job", "jobs/hello.py --at 2001-01-01T00:00", None, '--at "2001-01-01T00:00" has passed'),
        ("job", "jobs/hello.py --at 2001-13-01T00:00", None, '--at "2001-13-01T00:00" is not a valid date-time'),
        ("job", "jobs/hello.py --at", None, "--at needs a schedule"),
        ("job", "jobs/hello.py --inline --timeout 5", None, "--timeout cannot stop an inline script or a synchronous"),
        ("job", "jobs/hello.py --oneoff --at 60", None, "A one-off job runs once, now: drop --at"),
        ("job", "jobs/hello.py --timeout soon", None, "argument --timeout: invalid float value: 'soon'"),
        ("job", "next every 5 minutes -n 0", None, "-n must be at least 1."),
        ("job", "refresh", "pass", "the following arguments are required: --at. Usage: %%job --at SPEC"),
        ("job", "refresh --at 60", "x = (", "The cell of job 'refresh' is not valid Python: '(' was never closed"),
        ("oneoff", "x --offloaded", "def (", "The cell of job 'x' is not valid Python: invalid syntax (line 1)."),
        ("jobs", "extra", None, "%jobs takes no arguments"),
        ("job", "list extra", None, "%job list takes no arguments"),
    ],
)
def test_user_mistakes_are_one_line_errors_that_say_what_to_do(ip, manager, hello, magic, text, body, expected) -> None:
    assert expected in usage_error(ip, magic, text, body)
    assert [j.name for j in manager.jobs] == []


def test_pausing_a_job_without_a_schedule_is_one_line(ip, manager, sleeper, tmp_path) -> None:
    line(ip, "job", f"""jobs/sleeper.py --data '{{"pidfile": "{tmp_path / "pid"}"}}'""")
    assert usage_error(ip, "job", "pause sleeper") == 'Job "sleeper" has no schedule to pause.'


def test_rerun_of_a_recurring_job_points_to_run(ip, manager, hello) -> None:
    line(ip, "job", "jobs/hello.py --at every 5 minutes")
    assert usage_error(ip, "job", "rerun hello") == '"hello" is not a one-off job; start a run now with %job run hello.'


def test_job_does_not_expand_variables_so_json_and_braces_survive(ip, manager, hello) -> None:
    ip.user_ns["n"] = 99
    line(ip, "job", """jobs/hello.py --data '{"n": 1, "s": "$n"}'""")
    assert manager.wait("hello", WAIT).output.startswith("hello {'n': 1, 's': '$n'}")


def test_the_recipe_of_a_oneoff_is_plain_json_next_to_the_store(ip, manager, tmp_path) -> None:
    cell(ip, "oneoff", """saved --data '{"k": "v"}'""", "pass\n")
    manager.wait("saved", WAIT)
    folder = tmp_path / ".jobmanager" / "cells"
    recipe = json.loads((folder / "saved.oneoff.json").read_text())
    assert recipe == {
        "version": 1,
        "name": "saved",
        "target": str(folder / "saved.py"),
        "cell": True,
        "offloaded": False,
        "data": {"k": "v"},
        "timeout": None,
    }
    assert (folder / "saved.py").read_text() == "pass\n"
