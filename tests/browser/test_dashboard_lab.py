"""The demo notebook in a real JupyterLab page at the default layout (file browser open, 1400x900; Debian
Chromium through Playwright): run it, see the table with a failed one-off, click its Rerun button, see it
finish. A job named as HTML shows as text. The screenshots of docs/dashboard.md come from this test, in the
light and the dark theme (``JOBMANAGER_SCREENSHOTS=1`` writes them into docs/img/)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from jupyter_ui import LIGHT, Notebook, expect, shoot

pytestmark = pytest.mark.browser  # a pytestmark in conftest.py would be ignored

XSS = "<img src=x onerror=alert(1)>"


def test_run_the_demo_then_rerun_the_failed_one_off(
    page: Any, server: Any, shot_dir: Path, docs_img: Path | None
) -> None:
    started = time.monotonic()
    marks: list[str] = []

    def mark(what: str) -> None:
        marks.append(f"{what} {time.monotonic() - started:.1f} s")

    nb = Notebook.open(page, server, "dashboard_demo.ipynb")
    assert nb.left_panel_open(), "the default layout has the file browser open"
    mark("kernel idle")
    nb.run_all()

    flaky = nb.row("flaky")
    rerun = flaky.locator(".jm-btn-rerun")
    expect(rerun).to_be_visible(timeout=60_000)  # the widget manager rendered the table
    expect(rerun).to_have_text("Rerun")
    expect(flaky.locator(".jm-status")).to_contain_text("failed")
    expect(flaky.locator(".jm-c-last")).to_contain_text("failed")
    mark("table shown")

    # a job named as HTML shows as text, and nothing ran
    evil = nb.row(XSS)
    expect(evil.locator(".jm-c-name")).to_have_text(XSS)
    assert page.locator(".jm-table img").count() == 0 and page.dialogs == []

    # live updates: the offloaded job's progress bar appears and moves while the kernel is idle
    progress = nb.row("crunch").locator(".jm-progress")
    expect(progress).to_be_visible(timeout=30_000)
    first = progress.evaluate("el => el.outerHTML")
    page.wait_for_function(
        "([el, first]) => el.isConnected ? el.outerHTML !== first : true",
        arg=[progress.element_handle(), first],
        timeout=10_000,
    )
    expect(nb.row("heartbeat").locator(".jm-c-next")).to_contain_text("in ")
    mark("progress moved")

    flaky.locator(".jm-toggle").click()  # expand: the failed run's output and traceback
    expect(flaky.locator(".jm-detail .jm-error")).to_contain_text("RuntimeError: dashboard_demo.flag does not exist")
    shoot(nb, nb.table(), "dashboard-failed", shot_dir, docs_img)

    rerun.click()  # a real click: comm message -> kernel -> manager.rerun
    expect(flaky.locator(".jm-status")).to_contain_text("finished", timeout=30_000)
    mark("rerun finished")
    expect(rerun).to_have_count(0)
    expect(flaky.locator(".jm-buttons .jm-btn")).to_have_text(["Remove"])
    expect(flaky.locator(".jm-detail .jm-output")).to_contain_text("found it")
    shoot(nb, nb.table(), "dashboard-rerun", shot_dir, docs_img, themes=(LIGHT,))
    assert page.dialogs == []
    assert page.js_errors == [], page.js_stacks
    mark("done")
    print("\nbrowser test:", ", ".join(marks))
