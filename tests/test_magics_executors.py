"""``--executor NAME`` on ``%job``, ``%%job --offloaded`` and ``%%oneoff --offloaded``, through a real IPython shell:
the job goes to the executor added with ``jobmanager_nb.get_manager().add_executor``; an unknown name or an inline
job is a one-line usage error that writes nothing; ``%job list`` says each job's executor; a one-off's recipe keeps
the name, and a later kernel's rerun without that executor says how to add it. The named executor is a real
``ProcessExecutor`` (standing in for a Dask one)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from executor_helpers import CountingExecutor
from IPython.core.interactiveshell import InteractiveShell
from magics_support import cell, fresh_shell, line, usage_error, write_script

import jobmanager_nb
from jobmanager_nb import JobFailedError, JobManager, session

WAIT = 20.0

HELLO = """\
from jobmanager_nb import worker
print("hello", worker.data)
"""

NEEDS_ROWS = "from pathlib import Path\nprint(int(Path('rows.txt').read_text()))\n"


@pytest.fixture
def spare() -> Iterator[CountingExecutor]:
    executor = CountingExecutor()
    yield executor
    executor.shutdown(timeout=5)


@contextmanager
def kernel(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[InteractiveShell, JobManager]]:
    """One kernel's life: a shell with the extension loaded, its manager on ``tmp_path/.jobmanager/jobs.json``."""
    with fresh_shell(tmp_path, monkeypatch) as ip:
        line(ip, "load_ext", "jobmanager_nb")
        yield ip, jobmanager_nb.get_manager()


@pytest.fixture
def ip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[InteractiveShell]:
    with kernel(tmp_path, monkeypatch) as (shell, _manager):
        yield shell


@pytest.fixture
def manager(ip: InteractiveShell, spare: CountingExecutor) -> JobManager:
    ip.run_cell("import jobmanager_nb")
    ip.user_ns["spare"] = spare
    result = ip.run_cell('jobmanager_nb.get_manager().add_executor("spare", spare)')  # as a notebook cell does
    assert result.success
    return jobmanager_nb.get_manager()


@pytest.fixture
def hello(tmp_path: Path) -> Path:
    return write_script(tmp_path, "jobs/hello.py", HELLO)


def test_job_with_executor_runs_the_script_on_that_executor(ip, manager, spare, hello):
    out = line(ip, "job", "jobs/hello.py --executor spare --data 7")
    assert out == 'started job "hello" (jobs/hello.py, offloaded on spare) now\n'
    run = manager.wait("hello", WAIT)
    assert (run.output, run.location) == ("hello 7\n", "local")
    assert spare.submitted == ["hello"]
    assert manager.job("hello").executor == "spare"


def test_job_list_shows_each_jobs_executor(ip, manager, hello):
    line(ip, "job", "jobs/hello.py --name there --executor spare --at every 1 hour")
    line(ip, "job", "jobs/hello.py --name here --at every 1 hour")
    line(ip, "job", "jobs/hello.py --name kernel --inline --at every 1 hour")
    rows = {row.split()[0]: row for row in line(ip, "job", "list").splitlines()[2:]}
    assert "offloaded on spare" in rows["there"]
    assert "offloaded on local" in rows["here"]
    assert "inline" in rows["kernel"] and "offloaded" not in rows["kernel"]


def test_a_job_cell_with_executor_is_registered_on_it(ip, manager, spare):
    out = cell(ip, "job", "nightly --at every 1 hour --offloaded --executor spare", "print('hi')\n")
    assert out.startswith('added job "nightly" (') and "offloaded on spare)" in out
    assert manager.job("nightly").executor == "spare"
    manager.run_now("nightly")
    assert manager.wait("nightly", WAIT).output == "hi\n"
    assert spare.submitted == ["nightly"]


def test_a_oneoff_cell_with_executor_runs_on_it_and_its_recipe_keeps_the_name(ip, manager, spare, tmp_path):
    out = cell(ip, "oneoff", "migrate --offloaded --executor spare", "print('moved')\n")
    assert out.startswith('started one-off "migrate" (offloaded on spare)')
    assert manager.wait("migrate", WAIT).output == "moved\n"
    assert spare.submitted == ["migrate"]
    recipe = json.loads((tmp_path / ".jobmanager" / "cells" / "migrate.oneoff.json").read_text())
    assert (recipe["executor"], recipe["offloaded"]) == ("spare", True)
    assert manager.store.get("migrate").meta["executor"] == "spare"


def test_job_oneoff_with_executor_keeps_the_name_in_its_recipe(ip, manager, spare, hello, tmp_path):
    line(ip, "job", "jobs/hello.py --oneoff --executor spare")
    manager.wait("hello", WAIT)
    recipe = json.loads((tmp_path / ".jobmanager" / "cells" / "hello.oneoff.json").read_text())
    assert recipe["executor"] == "spare" and spare.submitted == ["hello"]


def test_local_names_the_built_in_executor(ip, manager, spare, hello):
    line(ip, "job", "jobs/hello.py --executor local")
    assert manager.wait("hello", WAIT).location == "local"
    assert spare.submitted == [] and manager.job("hello").executor == "local"


def test_an_unknown_executor_is_one_line_that_says_how_to_add_it_and_writes_nothing(ip, manager, hello, tmp_path):
    expected = (
        'No executor named "dask" (known: default, local, spare). Add it first with '
        'jobmanager_nb.get_manager().add_executor("dask", executor), then run this again.'
    )
    assert usage_error(ip, "job", "jobs/hello.py --executor dask") == expected
    assert usage_error(ip, "job", "jobs/hello.py --oneoff --executor dask") == expected
    assert usage_error(ip, "job", "nightly --at every 1 hour --offloaded --executor dask", "pass\n") == expected
    assert usage_error(ip, "oneoff", "migrate --offloaded --executor dask", "pass\n") == expected
    assert manager.jobs == [] and manager.one_off_records() == []
    assert not (tmp_path / ".jobmanager" / "cells").exists()  # no cell file, no recipe


def test_executor_on_an_inline_job_is_one_line(ip, manager, hello, tmp_path):
    message = usage_error(ip, "job", "jobs/hello.py --inline --executor spare")
    assert message.startswith("--executor spare sends the job's runs to a worker, and --inline runs it in the kernel")
    assert message.endswith("drop --executor, or drop --inline.")
    for magic, args in (("job", "nightly --at every 1 hour --executor spare"), ("oneoff", "migrate --executor spare")):
        message = usage_error(ip, magic, args, "pass\n")
        assert "a cell without --offloaded runs it in the kernel" in message
        assert message.endswith("drop --executor, or add --offloaded.")
    assert manager.jobs == [] and manager.one_off_records() == []
    assert not (tmp_path / ".jobmanager" / "cells").exists()


def test_the_help_names_executor(ip, manager):
    assert "--executor NAME" in ip.find_line_magic("job").__doc__
    assert "--executor NAME" in ip.find_cell_magic("job").__doc__
    assert "--executor NAME" in ip.find_cell_magic("oneoff").__doc__


def test_a_later_kernels_rerun_without_the_executor_says_how_to_add_it(tmp_path, monkeypatch, spare):
    with kernel(tmp_path, monkeypatch) as (ip, manager):
        manager.add_executor("spare", spare)
        cell(ip, "oneoff", "import-rows --offloaded --executor spare", NEEDS_ROWS)
        with pytest.raises(JobFailedError):
            manager.wait("import-rows", WAIT)

    with kernel(tmp_path, monkeypatch) as (ip, manager):
        (tmp_path / "rows.txt").write_text("42")
        message = usage_error(ip, "job", "rerun import-rows")
        assert message == (
            'Cannot rerun one-off "import-rows": it ran on the executor "spare", which this kernel has not added '
            '(known: default, local). Add it first with jobmanager_nb.get_manager().add_executor("spare", executor), '
            "then rerun it."
        )
        assert manager.store.get("import-rows").status == "failed" and spare.submitted == ["import-rows"]

        manager.add_executor("spare", spare)
        out = line(ip, "job", "rerun import-rows")
        assert out.startswith('rerunning one-off "import-rows" (attempt 2, a rerun)')
        assert manager.wait("import-rows", WAIT).output == "42\n"
        assert spare.submitted == ["import-rows", "import-rows"]
        assert manager.job("import-rows").executor == "spare"


def test_a_later_kernels_rerun_of_a_script_oneoff_without_a_recipe_needs_its_executor_too(
    tmp_path, monkeypatch, spare
):
    script = write_script(tmp_path, "jobs/fails.py", "raise SystemExit('no rows yet')\n")
    with kernel(tmp_path, monkeypatch) as (_ip, manager):
        manager.add_executor("spare", spare)
        manager.add_one_off_job(str(script), name="fails", executor="spare")  # from code: no recipe
        with pytest.raises(JobFailedError):
            manager.wait("fails", WAIT)

    with kernel(tmp_path, monkeypatch) as (ip, manager):
        message = usage_error(ip, "job", "rerun fails")
        assert message.startswith('Cannot rerun one-off "fails": it ran on the executor "spare"')
        assert 'add_executor("spare", executor)' in message


def test_reopening_the_manager_for_new_settings_keeps_the_executors_added_by_name(ip, manager, spare, hello):
    out = line(ip, "config", "JobManagerMagics.kill_grace = 2.0")
    assert out.endswith('with store ".jobmanager/jobs.json"; kept the executors spare\n')
    reopened = jobmanager_nb.get_manager()
    assert reopened is not manager and reopened.executors == {"spare": spare}
    line(ip, "job", "jobs/hello.py --executor spare")
    assert reopened.wait("hello", WAIT).ok and spare.submitted == ["hello"]  # closing the old one left it running


def test_job_log_says_where_the_run_ran(ip, manager, hello):
    line(ip, "job", "jobs/hello.py --executor spare")
    manager.wait("hello", WAIT)
    first = line(ip, "job", "log hello").splitlines()[0]
    assert first.startswith('"hello" r') and "finished at " in first and first.endswith(" on local")
    cell(ip, "oneoff", "here", "print('in the kernel')\n")
    manager.wait("here", WAIT)
    assert line(ip, "job", "log here").splitlines()[0].endswith(" on kernel")


def test_loading_the_extension_keeps_the_executors_added_before_it(tmp_path, monkeypatch, spare, hello):
    with fresh_shell(tmp_path, monkeypatch) as ip:
        jobmanager_nb.get_manager().add_executor("spare", spare)  # a cell run before %load_ext
        out = line(ip, "load_ext", "jobmanager_nb")
        manager = jobmanager_nb.get_manager()
        assert manager.executors == {"spare": spare}
        assert out == "jobmanager_nb: replaced the job manager opened before %load_ext; kept the executors spare\n"
        line(ip, "job", "jobs/hello.py --executor spare")
        assert manager.wait("hello", WAIT).ok and spare.submitted == ["hello"]


def test_a_reopen_that_fails_keeps_the_executors_for_the_next_one(ip, manager, spare, hello, tmp_path):
    (tmp_path / "afile").write_text("not a folder")
    line(ip, "config", 'JobManagerMagics.store = "afile/jobs.json"')  # the store cannot open (%config logs why)
    assert session.current_manager() is None  # the old manager is closed, and no new one opened
    out = line(ip, "config", 'JobManagerMagics.store = "elsewhere/jobs.json"')
    assert out.endswith("; kept the executors spare\n")
    reopened = jobmanager_nb.get_manager()
    assert reopened.executors == {"spare": spare}
    line(ip, "job", "jobs/hello.py --executor spare")
    assert reopened.wait("hello", WAIT).ok and spare.submitted == ["hello"]


def test_a_finished_oneoff_on_an_executor_this_kernel_lacks_only_says_it_finished(tmp_path, monkeypatch, spare, hello):
    """Run All in a later kernel: a one-off runs once, ever, so the cell says so in one line and does not stop the
    run, whether or not this kernel added its executor (nothing would run there)."""
    with kernel(tmp_path, monkeypatch) as (ip, manager):
        manager.add_executor("spare", spare)
        cell(ip, "oneoff", "migrate --offloaded --executor spare", "print('moved')\n")
        line(ip, "job", "jobs/hello.py --oneoff --executor spare")
        assert manager.wait("migrate", WAIT).ok and manager.wait("hello", WAIT).ok

    with kernel(tmp_path, monkeypatch) as (ip, manager):
        out = cell(ip, "oneoff", "migrate --offloaded --executor spare", "print('moved')\n")
        assert out.startswith('one-off "migrate" already executed (finished ')
        out = line(ip, "job", "jobs/hello.py --oneoff --executor spare")
        assert out.startswith('one-off "hello" already executed (finished ')
        assert spare.submitted == ["migrate", "hello"]
        message = usage_error(ip, "oneoff", "fresh --offloaded --executor spare", "pass\n")  # a new one: the error
        assert message.startswith('No executor named "spare"')
