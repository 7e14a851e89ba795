"""``jobmanager_nb.worker`` inside a real worker process: data, run info, messages both ways, cancel."""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from executor_helpers import Recorder, reference, script

from jobmanager_nb.executors import OffloadedTask, ProcessExecutor

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="module")
def executor() -> Iterator[ProcessExecutor]:
    ex = ProcessExecutor(spares=1)
    yield ex
    ex.shutdown(timeout=5)


def _script(tmp_path: Path, body: str) -> OffloadedTask:
    path = tmp_path / "job.py"
    path.write_text(textwrap.dedent(body))
    task = script("simple.py")
    return OffloadedTask(task.run_id, "inline-script", "script", str(path), data_json='{"items": [1, 2, 3]}')


def test_a_script_sees_its_data_run_and_name_main(executor: ProcessExecutor, tmp_path: Path) -> None:
    task = _script(
        tmp_path,
        """
        import sys
        from jobmanager_nb import worker
        assert __name__ == "__main__"
        assert worker.in_worker()
        assert sys.path[0] == __file__.rsplit("/", 1)[0]
        worker.post_message((worker.data, worker.run.name, worker.run["run_id"], worker.run.attempt))
        """,
    )
    events = Recorder()
    executor.submit(task, events)
    assert events.outcome().status == "finished"
    assert events.messages() == [({"items": [1, 2, 3]}, "inline-script", task.run_id, 1)]


def messages_heard(executor: ProcessExecutor, tmp_path: Path, listeners: str, *messages: Any) -> Any:
    """Run a job whose ``listeners`` code registers callbacks that fill the list ``heard``; send it
    ``messages``, then cancel it; return ``heard`` as the job reported it."""
    body = "from jobmanager_nb import worker\nheard = []\n" + textwrap.dedent(listeners)
    body += 'worker.post_message("listening")\nworker.cancelled.wait(30)\nworker.post_message(heard)\n'
    events = Recorder()
    handle = executor.submit(_script(tmp_path, body), events)
    events.wait_message(lambda m: m == "listening")
    for message in messages:
        handle.post_message(message)
    handle.cancel(grace=10)
    assert events.outcome().status == "finished"
    return events.messages()[-1]


def test_on_message_hears_every_parent_message_and_cancel_sets_the_event(
    executor: ProcessExecutor, tmp_path: Path
) -> None:
    heard = messages_heard(executor, tmp_path, "worker.on_message(heard.append)\n", {"kind": "hello"}, 2)
    assert heard == [{"kind": "hello"}, 2, "cancel"]


def test_a_failing_message_callback_is_reported_on_stderr_and_others_still_run(
    executor: ProcessExecutor, tmp_path: Path
) -> None:
    task = _script(
        tmp_path,
        """
        from jobmanager_nb import worker

        @worker.on_message
        def broken(message):
            raise KeyError("callback bug")

        @worker.on_message
        def fine(message):
            worker.post_message(f"fine got {message}")

        worker.post_message("listening")
        worker.cancelled.wait(30)
        """,
    )
    events = Recorder()
    handle = executor.submit(task, events)
    events.wait_message(lambda m: m == "listening")
    handle.post_message("x")
    events.wait_message(lambda m: m == "fine got x")
    handle.cancel(grace=10)
    events.outcome()
    assert "KeyError: 'callback bug'" in events.output("stderr")


def test_progress_events_carry_fraction_and_text(executor: ProcessExecutor) -> None:
    events = Recorder()
    executor.submit(reference("mixed_output"), events)
    events.outcome()
    assert [e.payload for e in events.events if e.kind == "progress"] == [(0.25, "a quarter"), (1.0, None)]


def test_a_message_callback_may_register_another_callback(executor: ProcessExecutor, tmp_path: Path) -> None:
    listeners = """
        def second(message):
            heard.append(("second", message))

        def first(message):
            heard.append(("first", message))
            if message == "add":
                worker.on_message(second)  # from inside a delivery: must not deadlock the listener

        worker.on_message(first)
        """
    assert messages_heard(executor, tmp_path, listeners, "add", "after") == [
        ("first", "add"),
        ("first", "after"),
        ("second", "after"),
        ("first", "cancel"),
        ("second", "cancel"),
    ]
