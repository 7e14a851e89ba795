"""Shared test setup: ``tests/`` is on ``sys.path`` so that job fixtures import as ``jobs.<module>``
(worker processes inherit the path, so they can import them too)."""

from __future__ import annotations

import faulthandler
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

TESTS = str(Path(__file__).resolve().parent)
if TESTS not in sys.path:
    sys.path.insert(0, TESTS)

DASHBOARD_THREAD = "jobmanager_nb-dashboard"

HARD_LIMIT = 480.0
"""Seconds after which a test that is still running ends the whole run, with every thread's stack.

pytest-timeout's own limit (300 s, a signal) fails a test that hangs, but it fires once: a test whose
clean-up then blocks again (a ``finally`` waiting for a lock its hung job holds) would hang the run until
CI's own limit, with nothing to show where. This backstop, ``faulthandler``'s timer in C, cannot be
caught or blocked."""


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item) -> Iterator[None]:
    faulthandler.dump_traceback_later(HARD_LIMIT, exit=True)
    try:
        yield
    finally:
        faulthandler.cancel_dump_traceback_later()


@pytest.fixture(autouse=True)
def _no_dashboard_thread_outlives_its_test() -> Iterator[None]:
    """A dashboard table left open would keep its flusher thread; fail the test that left it, not a later one."""
    before = {t.ident for t in threading.enumerate()}
    yield
    left = [t for t in threading.enumerate() if t.name == DASHBOARD_THREAD and t.ident not in before]
    for thread in left:
        thread.join(10.0)
    alive = [t for t in left if t.is_alive()]
    assert alive == [], f"this test left {len(alive)} dashboard table(s) open: close them with table.close()"
