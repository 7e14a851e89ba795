"""Helpers for the magics tests: a real IPython shell per test, output capture, polling with a timeout."""

from __future__ import annotations

import atexit
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output
from traitlets.config import Config

from jobmanager_nb import session
from jobmanager_nb.capture import reinstate

EXTENSION = "jobmanager_nb"


@contextmanager
def fresh_shell(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[InteractiveShell]:
    """A real ``InteractiveShell`` working in ``tmp_path`` (history in memory, IPYTHONDIR in tmp), torn down
    completely afterwards: extension unloaded, session manager closed, singleton cleared."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("IPYTHONDIR", str(tmp_path / "ipython"))
    config = Config()
    config.HistoryManager.hist_file = ":memory:"
    InteractiveShell.clear_instance()
    shell = InteractiveShell.instance(config=config)
    try:
        yield shell
    finally:
        if EXTENSION in shell.extension_manager.loaded:
            shell.extension_manager.unload_extension(EXTENSION)
        session.close_manager()
        import ipywidgets

        ipywidgets.Widget.close_all()
        InteractiveShell.clear_instance()
        # each shell registers an atexit reset (a gc.collect each): dozens of them add seconds to pytest's exit
        atexit.unregister(shell.atexit_operations)


def line(shell: InteractiveShell, magic: str, text: str = "") -> str:
    """Run ``%magic text`` and return what it printed (a ``UsageError`` propagates).

    pytest swaps ``sys.stdout`` between a test's phases, which drops the manager's output routing; a
    kernel never does. Put it back first, so that an inline job that starts while ``capture_output`` is
    active (it runs on the manager's own thread here) still prints into its run, not into this capture."""
    reinstate()
    with capture_output() as cap:
        shell.run_line_magic(magic, text)
    return cap.stdout


def cell(shell: InteractiveShell, magic: str, text: str, body: str) -> str:
    """Run ``%%magic text`` with ``body`` and return what it printed (a ``UsageError`` propagates);
    the routing is put back first, as in :func:`line`."""
    reinstate()
    with capture_output() as cap:
        shell.run_cell_magic(magic, text, body)
    return cap.stdout


def usage_error(shell: InteractiveShell, magic: str, text: str, body: str | None = None) -> str:
    """The message of the ``UsageError`` that ``%magic text`` (or ``%%magic``) raises; it is one line."""
    with pytest.raises(UsageError) as info:
        if body is None:
            shell.run_line_magic(magic, text)
        else:
            shell.run_cell_magic(magic, text, body)
    message = str(info.value)
    assert "\n" not in message, message
    return message


def our_threads() -> list[str]:
    """Names of the live threads jobmanager_nb started."""
    return sorted(t.name for t in threading.enumerate() if t.name.startswith("jobmanager_nb-"))


def write_script(folder: Path, name: str, body: str) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(body)
    return path
