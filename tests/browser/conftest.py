"""Fixtures for the real-browser tests: a loopback JupyterLab server started and stopped by PID, and
pages of Debian's Chromium driven by Playwright (never a downloaded browser).

Locally, a missing Chromium, Playwright or JupyterLab skips these tests; when ``CI`` is set it fails them,
since CI installs all three. Screenshots go to ``$SHOT_DIR`` (default ``.ci-artifacts/``): the tests save
theirs, and a failing test leaves ``FAILED-<test>.png``.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROME_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
TOKEN = "jobmanager-nb-browser-test"
NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
SHOT_DIR = Path(os.environ.get("SHOT_DIR", ".ci-artifacts"))


def require(what: str, present: bool) -> None:
    """Skip when ``what`` is missing, or fail when running in CI (which must have installed it)."""
    if present:
        return
    if os.environ.get("CI"):
        pytest.fail(f"{what} is missing, but CI is set: CI must install it (see .ci/run)", pytrace=False)
    pytest.skip(f"{what} is not installed")


@pytest.fixture(scope="session")
def shot_dir() -> Path:
    """Where screenshots go (``$SHOT_DIR``, default ``.ci-artifacts/``): a CI artifact."""
    SHOT_DIR.mkdir(parents=True, exist_ok=True)
    return SHOT_DIR


@pytest.fixture(scope="session")
def browser_tools() -> None:
    require(f"chromium ({CHROMIUM})", shutil.which(CHROMIUM) is not None)
    require("playwright (pip install playwright; never `playwright install`)", _importable("playwright"))
    require("jupyterlab", _importable("jupyterlab"))


def _importable(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _wait_http(url: str, proc: subprocess.Popen[bytes], timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"jupyter lab exited early with code {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                return json.load(response)
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"jupyter lab did not answer {url} within {timeout} s")


@pytest.fixture(scope="module")
def lab_server(browser_tools: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """``jupyter lab`` on 127.0.0.1 with a token and throwaway config, settings and workspaces; its root
    is a temporary folder holding copies of the notebooks (the repository's are never touched)."""
    run = tmp_path_factory.mktemp("lab")
    root = run / "root"
    root.mkdir()
    shutil.copy(NOTEBOOKS / "dashboard_demo.ipynb", root)
    settings = run / "settings" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True)
    (settings / "notification.jupyterlab-settings").write_text('{"fetchNews": "false", "checkForUpdates": false}')
    env = dict(
        os.environ,
        JUPYTER_CONFIG_DIR=str(run / "config"),
        JUPYTER_RUNTIME_DIR=str(run / "runtime"),
        JUPYTERLAB_SETTINGS_DIR=str(run / "settings"),
        JUPYTERLAB_WORKSPACES_DIR=str(run / "workspaces"),
        IPYTHONDIR=str(run / "ipython"),
    )
    port = _free_port()
    log = open(run / "lab.log", "w")  # noqa: SIM115 - closed in finally
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "jupyterlab",
            "--no-browser",
            "--allow-root",
            f"--port={port}",
            "--ServerApp.ip=127.0.0.1",
            f"--ServerApp.token={TOKEN}",
            f"--ServerApp.root_dir={root}",
            "--ServerApp.port_retries=0",
            "--LabApp.news_url=None",
            "--LabApp.extension_manager=readonly",
            "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
            "--LabApp.expose_app_in_browser=True",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
        cwd=root,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_http(f"{base}/api/status?token={TOKEN}", proc)
        yield {"base": base, "token": TOKEN, "root": root, "pid": proc.pid, "log": run / "lab.log"}
    finally:
        proc.send_signal(signal.SIGTERM)  # by PID: the server shuts its kernels down
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


@pytest.fixture(scope="module")
def browser(browser_tools: None) -> Iterator[Any]:
    """Module scope, not session: while Playwright's sync API is started, the main thread has a "running"
    asyncio loop, and a JobManager made in a later test would take it as its home loop and never run an
    inline job. Stopping Playwright after the browser tests gives the main thread back."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROME_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Any, request: pytest.FixtureRequest) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1500, "height": 1000})
    pg = context.new_page()
    pg.js_errors = []
    pg.dialogs = []
    pg.on("pageerror", lambda error: pg.js_errors.append(str(error)))

    def on_dialog(dialog: Any) -> None:  # an alert() would mean a job name ran as HTML
        pg.dialogs.append(dialog.message)
        dialog.dismiss()

    pg.on("dialog", on_dialog)
    yield pg
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        SHOT_DIR.mkdir(parents=True, exist_ok=True)
        pg.screenshot(path=str(SHOT_DIR / f"FAILED-{request.node.name}.png"), full_page=True)
    context.close()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    setattr(item, f"rep_{report.when}", report)
