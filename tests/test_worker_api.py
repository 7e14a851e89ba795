"""``jobmanager_nb.worker``, the job-side API: what it promises outside a worker, and that it stays light."""

from __future__ import annotations

import subprocess
import sys
import threading

import pytest

from jobmanager_nb import worker
from jobmanager_nb.worker import RunInfo


def test_outside_a_worker_nothing_fails() -> None:
    assert worker.in_worker() is False
    assert worker.data is None and worker.run is None
    assert worker.post_message("done") is None  # quietly does nothing
    assert worker.post_message(threading.Lock()) is None  # not even pickled outside a worker
    assert worker.progress(0.5, "half") is None
    assert not worker.cancelled.is_set()


def test_on_message_returns_the_callback_so_it_works_as_a_decorator() -> None:
    @worker.on_message
    def handler(message: object) -> None:
        pass

    assert callable(handler)
    with pytest.raises(TypeError, match="callable"):
        worker.on_message("not callable")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("args", "error"),
    [
        ((1.5,), ValueError),
        ((-0.01,), ValueError),
        ((float("nan"),), ValueError),
        (("half",), TypeError),
        ((True,), TypeError),
        ((0.5, 3), TypeError),
    ],
)
def test_progress_checks_its_arguments_everywhere(args: tuple[object, ...], error: type[Exception]) -> None:
    with pytest.raises(error):
        worker.progress(*args)  # type: ignore[arg-type]


def test_progress_accepts_the_ends_and_integers() -> None:
    worker.progress(0)
    worker.progress(1)
    worker.progress(1.0, None)


def test_run_info_reads_like_an_object_and_a_mapping_and_is_frozen() -> None:
    info = RunInfo({"name": "x", "run_id": "r1", "attempt": 2, "scheduled_for": None})
    assert (info.name, info["run_id"], info.get("attempt"), info.get("missing", 7)) == ("x", "r1", 2, 7)
    assert list(info) == ["name", "run_id", "attempt", "scheduled_for"] == info.keys()
    assert "name" in info and len(info) == 4
    assert info == {"name": "x", "run_id": "r1", "attempt": 2, "scheduled_for": None}
    assert info.as_dict()["name"] == "x"
    assert "name='x'" in repr(info)
    with pytest.raises(AttributeError, match="read-only"):
        info.name = "y"
    with pytest.raises(AttributeError, match="no field"):
        _ = info.nope


# Neither the job-side API nor the worker's entry point may pull in what a worker does not need: every
# offloaded run pays for each import. (The notebook face and the store's dependencies are out too.)
NOT_IN_A_WORKER = ("IPython", "ipywidgets", "tinydb", "croniter", "psutil", "cloudpickle", "asyncio", "inspect")
NOT_IN_A_WORKER += ("socket", "selectors", "subprocess")


@pytest.mark.parametrize(
    ("module", "heavy"),
    [
        ("jobmanager_nb.worker", (*NOT_IN_A_WORKER, "json", "pickle")),
        ("jobmanager_nb.processes.child", (*NOT_IN_A_WORKER, "json", "runpy")),
    ],
)
def test_the_worker_side_imports_no_heavy_module(module: str, heavy: tuple[str, ...]) -> None:
    code = f"import sys, {module}\nprint(sorted(m for m in {heavy!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=_root())
    assert out.stdout.strip() == "[]", out.stderr


def _root() -> str:
    import jobmanager_nb

    return str(__import__("pathlib").Path(jobmanager_nb.__file__).resolve().parents[1])
