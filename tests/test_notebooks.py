"""Notebooks in a real kernel: the quickstart end to end (nbclient, and the README's `jupyter execute`
command), the scale-out notebook on a local Dask cluster, a user mistake as one line, and a kernel restart
ending the workers."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import nbformat
import psutil
import pytest
from jupyter_client.manager import KernelManager
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError
from polling import wait_until

ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = ROOT / "notebooks" / "quickstart.ipynb"
SCALE_OUT = ROOT / "notebooks" / "scale-out.ipynb"
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"


def execute(nb: Any, cwd: Path, *, allow_errors: bool = False) -> Any:
    NotebookClient(
        nb, timeout=60, kernel_name="python3", allow_errors=allow_errors, resources={"metadata": {"path": str(cwd)}}
    ).execute()
    return nb


def text_of(cell: Any, stream: str = "stdout") -> str:
    return "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream" and o.name == stream)


def result_of(cell: Any) -> str:
    return "".join(o.data["text/plain"] for o in cell.outputs if o.output_type == "execute_result")


def cell_with(nb: Any, source: str) -> Any:
    """The one code cell whose source contains ``source``."""
    (found,) = [c for c in nb.cells if c.cell_type == "code" and source in c.source]
    return found


def repo_files(*paths: str) -> str:
    """Files git sees under ``paths``, ignored ones included (to catch strays)."""
    out = subprocess.run(
        ["git", "status", "--porcelain", "--ignored", "--untracked-files=all", "--", *paths],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout


@pytest.fixture
def scratch_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Kernels started by the test put their temporary folders (the quickstart's scratch store) in tmp_path."""
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setenv("IPYTHONDIR", str(tmp_path / "ipython"))
    return tmp_path


def test_quickstart_shows_every_step_and_leaves_the_repo_clean(scratch_tmp: Path) -> None:
    before = repo_files("notebooks")
    nb = execute(nbformat.read(QUICKSTART, as_version=4), QUICKSTART.parent)  # timed by benchmarks/bench_notebook.py

    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert errors == [] and all(text_of(c, "stderr") == "" for c in nb.cells if c.cell_type == "code")
    # the refresh cell job ran in the kernel and updated a notebook variable
    refreshed = cell_with(nb, "%job wait refresh")
    assert text_of(refreshed).startswith('"refresh" finished in ')
    assert "'updated': '" in result_of(refreshed)
    # the offloaded script ran in a worker process with its data
    report = text_of(cell_with(nb, "%job log report"))
    assert report.startswith('"report" finished in ') and "output:\n  Oslo: " in report
    # %job next previews three fire times
    preview = text_of(cell_with(nb, "%job next")).splitlines()
    assert preview[0] == "at 09:00 on weekdays (Monday to Friday)" and len(preview) == 4
    # the dashboard was displayed once, and its final state is saved in the notebook
    shown = cell_with(nb, "%jobs").outputs
    views = [o.data[WIDGET_VIEW]["model_id"] for o in shown if WIDGET_VIEW in o.get("data", {})]
    assert len(views) == 1
    state = nb.metadata["widgets"][WIDGET_STATE]["state"]
    assert views[0] in state and state[views[0]]["model_name"] == "VBoxModel"
    html = " ".join(str(m["state"].get("value", "")) for m in state.values() if m["model_name"] == "HTMLModel")
    assert "refresh" in html and "report" in html
    # the one-off failed first, with its traceback in the log, and finished after %job rerun
    failed = text_of(cell_with(nb, "%job wait import-rows\n%job log import-rows"))
    assert failed.startswith('"import-rows" failed (r') and "rerun with %job rerun import-rows" in failed
    assert 'File "<job import-rows>", line 2' in failed and "FileNotFoundError" in failed
    rerun = cell_with(nb, "%job rerun import-rows")
    assert text_of(rerun).splitlines()[1].startswith('"import-rows" finished in ')
    assert result_of(rerun) == "42"
    # run again, the finished one-off says so instead of running; a paused schedule shows as paused
    again = text_of(cell_with(nb, "%%oneoff import-rows\nrows"))
    assert again.startswith('one-off "import-rows" already executed (finished ') and again.count("\n") == 1
    assert text_of(cell_with(nb, "%job pause refresh")).startswith('paused "refresh"')
    table = text_of(cell_with(nb, "%job list"))
    assert "import-rows  inline · one-off" in table
    assert [line for line in table.splitlines() if line.startswith("refresh ") and " paused " in line]
    assert repo_files("notebooks") == before  # no store, cell script or flag file left in the repo


def test_the_readme_headless_command_runs_the_quickstart(scratch_tmp: Path) -> None:
    before = repo_files("notebooks")
    done = subprocess.run(
        [sys.executable, "-m", "jupyter", "execute", "notebooks/quickstart.ipynb"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert repo_files("notebooks") == before


def test_the_scale_out_notebook_moves_a_heavy_job_to_a_local_dask_cluster_and_shows_where_it_ran(
    scratch_tmp: Path,
) -> None:
    before = repo_files("notebooks")
    nb = execute(nbformat.read(SCALE_OUT, as_version=4), SCALE_OUT.parent)

    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert errors == [] and all(text_of(c, "stderr") == "" for c in nb.cells if c.cell_type == "code")
    workers = ast.literal_eval(result_of(cell_with(nb, "cluster = LocalCluster(")))
    assert len(workers) == 2 and all(w.startswith("tcp://127.0.0.1:") for w in workers)
    # the heavy script ran locally, then, the same line with --executor dask, on the cluster
    here, there = (text_of(c) for c in nb.cells if c.cell_type == "code" and c.source.startswith("%job jobs/crunch"))
    assert "(jobs/crunch.py, offloaded) now" in here and '"crunch" finished in ' in here
    assert "(jobs/crunch.py, offloaded on dask) now" in there and '"crunch" finished in ' in there
    assert "1,270,607 primes below 20,000,000" in here and "1,270,607 primes below 20,000,000" in there
    squares = text_of(cell_with(nb, "%job wait squares"))
    assert squares.startswith('"squares" finished in ') and "sum of squares: 333,332,833,333,500,000" in squares
    # JobRun.location: where each run ran
    runs = ast.literal_eval(result_of(cell_with(nb, "[(run.name, run.status, run.location)")))
    assert runs[0] == ("crunch", "finished", "local")
    assert [(name, status) for name, status, _ in runs[1:]] == [("crunch", "finished"), ("squares", "finished")]
    assert all(location in workers for _, _, location in runs[1:])
    # the dashboard: the kind names the executor, and the opened row shows each run's place
    state = nb.metadata["widgets"][WIDGET_STATE]["state"]
    html = " ".join(str(m["state"].get("value", "")) for m in state.values() if m["model_name"] == "HTMLModel")
    words = re.sub(r"<[^>]*>", "", html)  # the executor's name may be a link to the Dask dashboard
    assert "offloaded on dask" in words and "offloaded on dask · one-off" in words
    places = re.findall(r'<span class="jm-run-where" title="([^"]*)">', html)
    assert places.count("local") == 1 and places.count(runs[1][2]) == 1
    # the last cell closed the table, the manager, the executor and the cluster without a word
    assert cell_with(nb, "cluster.close()").outputs == []
    assert repo_files("notebooks") == before  # no store, cell script or Dask scratch folder left in the repo


def test_a_user_mistake_in_a_notebook_is_one_line_not_a_traceback(scratch_tmp: Path) -> None:
    def notebook() -> Any:
        return nbformat.v4.new_notebook(
            cells=[nbformat.v4.new_code_cell("%load_ext jobmanager_nb"), nbformat.v4.new_code_cell("%job run nosuch")]
        )

    with pytest.raises(CellExecutionError) as error:
        execute(notebook(), scratch_tmp)
    assert error.value.ename == "UsageError"
    assert error.value.evalue == 'No job named "nosuch". Known jobs: none.'

    nb = execute(notebook(), scratch_tmp, allow_errors=True)
    outputs = nb.cells[1].outputs
    assert [o.output_type for o in outputs] == ["stream"]
    assert text_of(nb.cells[1], "stderr") == 'UsageError: No job named "nosuch". Known jobs: none.\n'


SLEEPER = """\
import os
from jobmanager_nb import worker
with open(worker.data["pidfile"], "w") as f:
    f.write(str(os.getpid()))
worker.cancelled.wait(120)
"""


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


@pytest.mark.parametrize("now", [False, True], ids=["graceful-restart", "killed-restart"])
def test_restarting_the_kernel_ends_its_workers(scratch_tmp: Path, now: bool) -> None:
    (scratch_tmp / "sleeper.py").write_text(SLEEPER)
    pidfile = scratch_tmp / "worker.pid"
    km = KernelManager(kernel_name="python3")
    km.start_kernel(cwd=str(scratch_tmp))
    client = km.client()
    client.start_channels()
    try:
        client.wait_for_ready(timeout=60)
        code = f"""%load_ext jobmanager_nb\n%job sleeper.py --data '{{"pidfile": "{pidfile}"}}'"""
        reply = client.execute_interactive(code, timeout=60)
        assert reply["content"]["status"] == "ok", reply["content"]
        pid = int(wait_until(lambda: pidfile.exists() and pidfile.read_text(), timeout=30))
        assert psutil.pid_exists(pid)

        km.restart_kernel(now=now)
        wait_until(lambda: _gone(pid), timeout=10)
    finally:
        client.stop_channels()
        km.shutdown_kernel(now=True)
