"""The dashboard in a real JupyterLab page (Debian Chromium through Playwright): run the demo notebook,
see the table with a failed one-off, click its Rerun button, see it finish. A job named as HTML shows as text."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from jobmanager_nb.notebook.text import css_slug

pytestmark = pytest.mark.browser  # a pytestmark in conftest.py would be ignored

XSS = "<img src=x onerror=alert(1)>"


def open_notebook(page: Any, lab: dict[str, Any], name: str) -> None:
    page.goto(f"{lab['base']}/lab/tree/{name}?token={lab['token']}&reset")
    page.wait_for_selector(".jp-Notebook", timeout=60_000)
    page.wait_for_function("window.jupyterapp?.commands.hasCommand('notebook:run-all-cells')", timeout=60_000)
    expect(page.locator("#jp-main-statusbar")).to_contain_text("Idle", timeout=60_000)  # the kernel is ready


def shoot(page: Any, shot_dir: Path, name: str) -> None:
    """The table alone (``<name>.png``, as in docs/img/) and the whole page (``<name>-page.png``)."""
    table = page.locator(".jm-table")
    table.scroll_into_view_if_needed()
    table.screenshot(path=str(shot_dir / f"{name}.png"))
    page.screenshot(path=str(shot_dir / f"{name}-page.png"))


def expect(locator: Any) -> Any:
    from playwright.sync_api import expect as playwright_expect

    return playwright_expect(locator)


def test_run_the_demo_then_rerun_the_failed_one_off(page, lab_server, shot_dir):
    started = time.monotonic()
    marks: list[str] = []

    def mark(what: str) -> None:
        marks.append(f"{what} {time.monotonic() - started:.1f} s")

    open_notebook(page, lab_server, "dashboard_demo.ipynb")
    mark("kernel idle")
    page.evaluate("window.jupyterapp.commands.execute('application:toggle-left-area')")  # room for the table
    page.evaluate("window.jupyterapp.commands.execute('notebook:run-all-cells')")

    flaky = page.locator(".jm-row-flaky")
    rerun = flaky.locator(".jm-btn-rerun")
    expect(rerun).to_be_visible(timeout=60_000)  # the widget manager rendered the table
    expect(rerun).to_have_text("Rerun")
    expect(flaky.locator(".jm-status")).to_have_text("failed")
    expect(flaky.locator(".jm-c-last")).to_contain_text("failed")
    mark("table shown")

    # a job named as HTML shows as text, and nothing ran
    evil = page.locator(f".jm-row-{css_slug(XSS)}")
    expect(evil.locator(".jm-c-name")).to_have_text(XSS)
    assert page.locator(".jm-table img").count() == 0 and page.dialogs == []

    # live updates: the offloaded job's progress bar appears and moves while the kernel is idle
    bar = page.locator(".jm-row-crunch .jm-progress")
    expect(bar).to_be_visible(timeout=30_000)
    first = bar.get_attribute("data-label")
    expect(bar).not_to_have_attribute("data-label", first or "", timeout=10_000)
    expect(page.locator(".jm-row-heartbeat .jm-c-next")).to_contain_text("in ")
    mark("progress moved")

    flaky.locator(".jm-toggle").click()  # expand: the failed run's output and traceback
    expect(flaky.locator(".jm-detail .jm-error")).to_contain_text("RuntimeError: dashboard_demo.flag does not exist")
    shoot(page, shot_dir, "dashboard-failed")

    rerun.click()  # a real click: comm message -> kernel -> manager.rerun
    expect(flaky.locator(".jm-status")).to_have_text("finished", timeout=30_000)
    mark("rerun finished")
    expect(rerun).to_have_count(0)
    expect(flaky.locator(".jm-buttons .jm-btn")).to_have_text(["Remove"])
    expect(flaky.locator(".jm-detail .jm-output")).to_contain_text("found it")
    shoot(page, shot_dir, "dashboard-rerun")
    assert page.dialogs == []
    mark("done")
    print("\nbrowser test:", ", ".join(marks))
