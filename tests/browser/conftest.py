"""Fixtures for the real-browser tests: one loopback Jupyter server for the whole run (JupyterLab 4 at
``/lab``, and Notebook 7 at ``/notebooks`` from the same server), started and stopped by PID, and pages of
Debian's Chromium driven by Playwright (never a downloaded browser).

Locally, a missing Chromium, Playwright, JupyterLab or notebook skips these tests; when ``CI`` is set it
fails them, since CI installs all of them. Screenshots go to ``$SHOT_DIR`` (default ``.ci-artifacts/``): the
tests save theirs, and a failing test leaves ``FAILED-<test>.png``. With ``JOBMANAGER_SCREENSHOTS=1`` the
tests also write the screenshots of ``docs/dashboard.md`` into ``docs/img/`` (CI leaves it unset, so a CI
run never changes the tree).
"""

from __future__ import annotations

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
from jupyter_ui import CHROME_ARGS, CHROMIUM, importable, new_page, require

TOKEN = "jobmanager-nb-browser-test"
REPO = Path(__file__).resolve().parents[2]
NOTEBOOKS = REPO / "notebooks"
SHOT_DIR = Path(os.environ.get("SHOT_DIR", ".ci-artifacts"))
DOCS_IMG = REPO / "docs" / "img"


@pytest.fixture(scope="session")
def shot_dir() -> Path:
    """Where screenshots go (``$SHOT_DIR``, default ``.ci-artifacts/``): a CI artifact."""
    SHOT_DIR.mkdir(parents=True, exist_ok=True)
    return SHOT_DIR


@pytest.fixture(scope="session")
def docs_img() -> Path | None:
    """``docs/img/`` when ``JOBMANAGER_SCREENSHOTS=1`` (regenerate the documentation's screenshots), else None."""
    return DOCS_IMG if os.environ.get("JOBMANAGER_SCREENSHOTS") == "1" else None


@pytest.fixture(scope="session")
def browser_tools() -> None:
    require(f"chromium ({CHROMIUM})", shutil.which(CHROMIUM) is not None)
    require("playwright (pip install playwright; never `playwright install`)", importable("playwright"))
    require("jupyterlab", importable("jupyterlab"))


@pytest.fixture(scope="session")
def notebook7(browser_tools: None) -> None:
    require("notebook 7 (pip install notebook)", importable("notebook.app"))


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


class Server(dict[str, Any]):
    """The running server: ``base``, ``token``, ``root`` (its folder, where tests write notebooks), ``pid``
    and ``log``; :meth:`api` calls its REST API."""

    def api(self, method: str, path: str) -> Any:
        request = urllib.request.Request(
            f"{self['base']}{path}", method=method, headers={"Authorization": f"token {self['token']}"}
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            body = response.read()
        return json.loads(body) if body else None

    process: subprocess.Popen[bytes] | None = None
    log_file: Any = None

    def stop(self) -> None:
        """Stop the server by its PID (it shuts its kernels down); a second call does nothing."""
        proc, self.process = self.process, None
        if proc is None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        self.log_file.close()

    def shut_down_kernels(self) -> None:
        """End every session (and its kernel, which ends the kernel's workers)."""
        for session in self.api("GET", "/api/sessions"):
            self.api("DELETE", f"/api/sessions/{session['id']}")
        for kernel in self.api("GET", "/api/kernels"):
            self.api("DELETE", f"/api/kernels/{kernel['id']}")


@pytest.fixture(scope="session")
def lab_server(browser_tools: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """``jupyter lab`` on 127.0.0.1 with a token and throwaway config, settings and workspaces; its root
    is a temporary folder holding a copy of the demo notebook (the repository's are never touched). With
    the ``notebook`` package installed, the same server serves Notebook 7 at ``/notebooks/<path>``."""
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
            "--JupyterNotebookApp.expose_app_in_browser=True",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
        cwd=root,
    )
    base = f"http://127.0.0.1:{port}"
    server = Server(base=base, token=TOKEN, root=root, pid=proc.pid, log=run / "lab.log")
    server.process, server.log_file = proc, log
    try:
        _wait_http(f"{base}/api/status?token={TOKEN}", proc)
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def server(lab_server: Server, request: pytest.FixtureRequest) -> Iterator[Server]:
    """The session's server, for one test module: the module's kernels (and their workers) end with it,
    so modules never load each other. After the session's last browser test module the server stops (not
    at the end of the whole run, which may go on for minutes with other tests)."""
    yield lab_server
    lab_server.shut_down_kernels()
    here = Path(__file__).parent
    browser_modules = [item.path for item in request.session.items if item.path.parent == here]
    if browser_modules and browser_modules[-1] == request.path:
        lab_server.stop()


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
    pg = new_page(browser)
    request.node.shown_page = pg
    yield pg
    pg.context.close()


@pytest.fixture(autouse=True)
def _screenshot_on_failure(request: pytest.FixtureRequest) -> Iterator[None]:
    """A failing test leaves ``FAILED-<test>.png`` of the page it used (its own ``page``, or a module's
    shared page that the test named as ``request.node.shown_page``)."""
    yield
    report = getattr(request.node, "rep_call", None)
    pg = getattr(request.node, "shown_page", None)
    if report is not None and report.failed and pg is not None and not pg.is_closed():
        SHOT_DIR.mkdir(parents=True, exist_ok=True)
        name = "".join(c if c.isalnum() or c in "-_[]." else "_" for c in request.node.name)
        try:
            pg.screenshot(path=str(SHOT_DIR / f"FAILED-{name}.png"), full_page=True)
        except Exception as error:  # evidence is best effort; the test's own failure is what matters
            print(f"no failure screenshot: {error}")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    setattr(item, f"rep_{report.when}", report)
