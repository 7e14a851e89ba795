"""Driving a notebook in JupyterLab 4 or Notebook 7 from Playwright: open it, wait for its kernel, run
cells, restart the kernel, switch the theme and the window size, and find the dashboard in it.

Both front ends are started with ``expose_app_in_browser``, so the page has ``window.jupyterapp`` and the
tests run the front end's own commands (``notebook:run-cell``, ``apputils:change-theme`` ...), as its menus
and keyboard shortcuts do. Every wait is for a condition, with a timeout; nothing sleeps.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Any

import nbformat
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
WINDOW = {"width": 1400, "height": 900}
"""The default window: JupyterLab 4 with its file browser open leaves the notebook panel ~1070 px wide."""

LIGHT, DARK = "JupyterLab Light", "JupyterLab Dark"
LAB, NB7 = "lab", "notebook"


def require(what: str, present: bool) -> None:
    """Skip when ``what`` is missing, or fail when running in CI (which must have installed it)."""
    if present:
        return
    if os.environ.get("CI"):
        pytest.fail(f"{what} is missing, but CI is set: CI must install it (see .ci/run)", pytrace=False)
    pytest.skip(f"{what} is not installed")


def importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


def new_page(browser: Any) -> Any:
    """A page in its own context at the default window size, recording JavaScript errors (``js_errors``)
    and dismissing (and recording, ``dialogs``) any ``alert()``."""
    context = browser.new_context(viewport=dict(WINDOW))
    pg = context.new_page()
    pg.js_errors = []
    pg.dialogs = []
    pg.js_stacks = []
    pg.on("pageerror", lambda error: (pg.js_errors.append(error.message), pg.js_stacks.append(error.stack)))

    def on_dialog(dialog: Any) -> None:  # an alert() would mean a job name ran as HTML
        pg.dialogs.append(dialog.message)
        dialog.dismiss()

    pg.on("dialog", on_dialog)
    return pg


def expect(target: Any) -> Any:
    from playwright.sync_api import expect as playwright_expect

    return playwright_expect(target)


def write_notebook(path: Path, cells: list[str]) -> Path:
    """A notebook of code cells (a cell starting with ``# md`` is Markdown, without that line)."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
    for source in cells:
        if source.startswith("# md\n"):
            nb.cells.append(nbformat.v4.new_markdown_cell(source.removeprefix("# md\n")))
        else:
            nb.cells.append(nbformat.v4.new_code_cell(source))
    nbformat.write(nb, path)
    return path


class Notebook:
    """One notebook open in a page (``ui`` is :data:`LAB` or :data:`NB7`)."""

    def __init__(self, page: Any, server: Any, path: str, ui: str = LAB) -> None:
        self.page = page
        self.server = server
        self.path = path
        self.ui = ui

    # -- opening

    @classmethod
    def open(cls, page: Any, server: Any, path: str, *, ui: str = LAB, theme: str = LIGHT) -> Notebook:
        nb = cls(page, server, path, ui)
        if ui == LAB:  # ?reset: the default workspace (file browser open), never a remembered layout
            page.goto(f"{server['base']}/lab/tree/{path}?token={server['token']}&reset")
        else:
            page.goto(f"{server['base']}/notebooks/{path}?token={server['token']}")
        page.wait_for_function(
            "() => window.jupyterapp?.commands.hasCommand('notebook:run-all-cells')"
            " && window.jupyterapp.commands.hasCommand('apputils:change-theme')",
            timeout=60_000,
        )
        page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=60_000)
        nb.set_theme(theme)
        nb.wait_idle()
        return nb

    def _panel(self) -> str:
        return "window.jupyterapp.shell.currentWidget"

    def kernel_status(self) -> str:
        status: str = self.page.evaluate(f"() => {self._panel()}?.sessionContext?.session?.kernel?.status ?? ''")
        return status

    def wait_idle(self, timeout: float = 60_000) -> None:
        self.page.wait_for_function(
            f"() => {self._panel()}?.sessionContext?.session?.kernel?.status === 'idle'", timeout=timeout
        )

    # -- running

    def _command(self, command: str, args: dict[str, Any] | None = None) -> None:
        # never return the command's promise: some resolve only after a dialog is answered
        self.page.evaluate(
            "([command, args]) => { window.jupyterapp.commands.execute(command, args); }", [command, args or {}]
        )

    def _select(self, index: int) -> None:
        self.page.evaluate(
            f"(i) => {{ const nb = {self._panel()}.content; nb.mode = 'command'; nb.activeCellIndex = i;"
            " nb.deselectAll(); }",
            index,
        )
        self.page.wait_for_function(f"(i) => {self._panel()}.content.activeCellIndex === i", arg=index)

    def run_all(self) -> None:
        self._command("notebook:run-all-cells")

    def run_above(self, index: int) -> None:
        """Run the cells before cell ``index``."""
        self._select(index)
        self._command("notebook:run-all-above")

    def run_cell(self, index: int) -> None:
        self._select(index)
        self._command("notebook:run-cell")

    def restart_kernel(self) -> None:
        """Restart the kernel as the toolbar's ↻ does (answering its dialog), and wait until it is idle."""
        self.page.evaluate(
            "() => { window.__jmRestarted = false; window.jupyterapp.commands.execute('notebook:restart-kernel')"
            ".then(() => { window.__jmRestarted = true; }); }"
        )
        accept = self.page.locator(".jp-Dialog .jp-Dialog-button.jp-mod-accept")
        accept.click(timeout=30_000)
        self.page.wait_for_function("() => window.__jmRestarted === true", timeout=60_000)
        self.wait_idle()

    def cell(self, index: int) -> Any:
        return self.page.locator(".jp-Notebook .jp-Cell").nth(index)

    def output(self, index: int) -> Any:
        return self.cell(index).locator(".jp-OutputArea")

    # -- the dashboard

    def table(self, index: int | None = None) -> Any:
        """The dashboard in cell ``index`` (or the only one on the page)."""
        scope = self.output(index) if index is not None else self.page
        return scope.locator(".jm-table")

    def row(self, name: str, index: int | None = None) -> Any:
        from jobmanager_nb.notebook.text import css_slug

        return self.table(index).locator(f".jm-row-{css_slug(name)}")

    # -- the look

    def set_theme(self, theme: str) -> None:
        """Switch the theme as *Settings → Theme* does and wait until its colours are applied."""
        dark = theme == DARK
        if self.page.evaluate("() => document.body.dataset.jpThemeName") != theme:
            self._command("apputils:change-theme", {"theme": theme})
        self.page.wait_for_function(
            """([theme, dark]) => {
                if (document.body.dataset.jpThemeName !== theme) return false;
                const bg = getComputedStyle(document.body).getPropertyValue('--jp-layout-color0').trim();
                if (!bg) return false;
                const probe = document.createElement('div');
                probe.style.color = bg;
                document.body.appendChild(probe);
                const rgb = getComputedStyle(probe).color.match(/[\\d.]+/g).map(Number);
                probe.remove();
                const light = (rgb[0] + rgb[1] + rgb[2]) / 3 > 128;
                return light !== dark;
            }""",
            arg=[theme, dark],
            timeout=30_000,
        )
        # JupyterLab shows its splash screen while a theme loads and removes it 200 ms after; wait for that
        # (it covers the page, and a second theme change before it is gone makes JupyterLab throw)
        self.page.wait_for_function("() => !document.getElementById('jupyterlab-splash')", timeout=30_000)

    def panel_width(self) -> float:
        width: float = self.page.evaluate(
            "() => document.querySelector('.jp-NotebookPanel').getBoundingClientRect().width"
        )
        return width

    def set_window(self, width: int, height: int = 900) -> None:
        """Resize the window and wait until the notebook panel's width has settled (three frames alike)."""
        self.page.set_viewport_size({"width": width, "height": height})
        self.page.wait_for_function("(w) => window.innerWidth === w", arg=width)
        self.page.evaluate(
            """() => new Promise(resolve => {
                let last = -1, same = 0, frames = 0;
                const step = () => {
                    const w = document.querySelector('.jp-NotebookPanel').getBoundingClientRect().width;
                    same = w === last ? same + 1 : 0;
                    last = w;
                    if (same >= 3 || ++frames > 600) resolve(w); else requestAnimationFrame(step);
                };
                requestAnimationFrame(step);
            })"""
        )

    def fit_panel(self, width: float, window: int = 1400) -> None:
        """Size the window so that the notebook panel is ``width`` px wide (the side panels as they are)."""
        self.set_window(window)
        self.set_window(round(window - (self.panel_width() - width)))
        self.page.wait_for_function(
            "(w) => Math.abs(document.querySelector('.jp-NotebookPanel').getBoundingClientRect().width - w) < 1.5",
            arg=width,
            timeout=10_000,
        )

    def fit_output(self, table: Any, width: float, window: int = 1400) -> None:
        """Size the window so that the output area holding ``table`` is ``width`` px wide."""
        self.set_window(window)
        area = table.locator("xpath=ancestor::div[contains(@class, 'jp-OutputArea-output')][1]")
        now = area.evaluate("el => el.getBoundingClientRect().width")
        self.set_window(round(window - (now - width)))
        area.evaluate(
            """(el, w) => new Promise((resolve, reject) => {
                const until = performance.now() + 10000;
                const check = () => Math.abs(el.getBoundingClientRect().width - w) < 1.5 ? resolve(true)
                    : performance.now() > until
                    ? reject(new Error('the output area is ' + el.getBoundingClientRect().width + ' px'))
                    : requestAnimationFrame(check);
                check();
            })""",
            width,
        )

    def park_mouse(self) -> None:
        """Move the mouse off the notebook (to the top left corner), so nothing in it is hovered, and take the
        focus off the last clicked button (no focus ring)."""
        self.page.mouse.move(1, 1)
        self.page.evaluate("() => document.activeElement?.blur()")

    def left_panel_open(self) -> bool:
        is_open: bool = self.page.evaluate(
            "() => { const el = document.querySelector('#jp-left-stack');"
            " return !!el && el.checkVisibility() && el.getBoundingClientRect().width > 150; }"
        )
        return is_open

    def shut_down(self) -> None:
        """End this notebook's kernel (and so its workers) through the server's REST API."""
        for session in self.server.api("GET", "/api/sessions"):
            if session.get("path") == self.path or session.get("notebook", {}).get("path") == self.path:
                self.server.api("DELETE", f"/api/sessions/{session['id']}")


def shoot(
    nb: Notebook, table: Any, name: str, shot_dir: Path, docs_img: Path | None, themes: tuple[str, ...] = (LIGHT, DARK)
) -> None:
    """``<name>-light.png`` and ``<name>-dark.png`` of the table, into the artifacts (and ``docs/img/``)."""
    for theme, suffix in ((LIGHT, "light"), (DARK, "dark")):
        if theme not in themes:
            continue
        nb.set_theme(theme)
        nb.park_mouse()
        table.scroll_into_view_if_needed()
        for folder in (shot_dir, docs_img):
            if folder is not None:
                table.screenshot(path=str(folder / f"{name}-{suffix}.png"), animations="disabled")
    nb.set_theme(LIGHT)
