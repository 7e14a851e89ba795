"""The dashboard in Voilà (0.5, its ``lab`` template), measured as in ``test_dashboard_layout.py``.

A small notebook (a store of its own, jobs finished, failed and scheduled, then ``%jobs``) is served by a
``voila`` process on 127.0.0.1, started and stopped by PID. It is opened in the light theme and, with
``?theme=dark`` (Voilà's ``allow_theme_override`` is ``YES`` by default), in the dark one, each at a 1400 px
and a 950 px wide window. The assertions reuse ``page_checks``: every row one line, no header cell wraps,
every button inside the table and its cell, nothing sticking out sideways, and WCAG AA contrast of every text
against the colour painted behind it.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from jupyter_ui import expect, importable, new_page, require, write_notebook
from page_checks import AA, contrast, geometry, low_contrast, one_line_problems

pytestmark = pytest.mark.browser  # a pytestmark in conftest.py would be ignored

CELLS = [
    """%load_ext jobmanager_nb
%config JobManagerMagics.store = {store!r}
from jobmanager_nb import get_manager

m = get_manager()


def report():
    print("report written")


def broken():
    raise RuntimeError("input.csv does not exist yet")


m.add_job(report, name="nightly-report", at="every day at 6:00", offloaded=False, replace=True)
m.add_job(report, name="heartbeat", at="every 5 minutes", offloaded=False, replace=True)
m.add_one_off_job(report, name="backup", offloaded=False)
m.add_one_off_job(broken, name="flaky", offloaded=False)
for name in ("backup", "flaky"):
    try:
        m.wait(name, timeout=30)
    except Exception:
        pass""",
    "%jobs",
]
NAMES = ("nightly-report", "heartbeat", "backup", "flaky")
THEMES = ("light", "dark")
WIDTHS = (1400, 950)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def voila(browser_tools: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``voila`` serving a folder with one notebook per theme (each with its own store); yields its base URL."""
    require("voila (pip install voila)", importable("voila"))
    run = tmp_path_factory.mktemp("voila")
    root = run / "root"
    root.mkdir()
    for theme in THEMES:
        write_notebook(root / f"{theme}.ipynb", [CELLS[0].format(store=str(root / f"{theme}.jobs.json")), CELLS[1]])
    env = dict(
        os.environ,
        JUPYTER_CONFIG_DIR=str(run / "config"),
        JUPYTER_RUNTIME_DIR=str(run / "runtime"),
        IPYTHONDIR=str(run / "ipython"),
    )
    port = _free_port()
    log = open(run / "voila.log", "w")  # noqa: SIM115 - closed in finally
    proc = subprocess.Popen(
        [sys.executable, "-m", "voila", str(root), "--no-browser", f"--port={port}", "--Voila.ip=127.0.0.1",
         "--Voila.port_retries=0"],
        stdout=log, stderr=subprocess.STDOUT, env=env, cwd=root,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"voila exited early with code {proc.returncode}: {(run / 'voila.log').read_text()}")
            try:
                with urllib.request.urlopen(f"{base}/voila/static/", timeout=2):
                    pass
                break
            except urllib.error.HTTPError:
                break  # it answers
            except OSError:
                if time.monotonic() > deadline:
                    raise TimeoutError("voila did not answer within 60 s") from None
                time.sleep(0.1)  # polling for the port, not waiting blindly
        yield base
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


class Pages:
    """One Voilà page per theme (each runs the notebook in its own kernel), measured once per width."""

    def __init__(self, browser: Any, base: str, shot_dir: Path) -> None:
        self.browser, self.base, self.shot_dir = browser, base, shot_dir
        self.pages: dict[str, Any] = {}
        self.facts: dict[tuple[str, int], dict[str, Any]] = {}

    def page(self, theme: str) -> Any:
        if theme not in self.pages:
            pg = new_page(self.browser)
            query = "?theme=dark" if theme == "dark" else ""
            pg.goto(f"{self.base}/voila/render/{theme}.ipynb{query}")
            rows = pg.locator(".jm-table .jm-row")
            expect(rows).to_have_count(len(NAMES), timeout=60_000)
            expect(pg.locator(".jm-table .jm-row-flaky .jm-btn-rerun")).to_be_visible(timeout=30_000)
            expect(pg.locator("body")).to_have_attribute("data-jp-theme-light", str(theme == "light").lower())
            self.pages[theme] = pg
        return self.pages[theme]

    def measure(self, theme: str, width: int, request: pytest.FixtureRequest) -> dict[str, Any]:
        pg = self.page(theme)
        request.node.shown_page = pg
        if (theme, width) not in self.facts:
            pg.set_viewport_size({"width": width, "height": 900})
            table = pg.locator(".jm-table")
            pg.wait_for_function(
                "w => document.querySelector('.jm-table').getBoundingClientRect().right <= w", arg=width
            )
            pg.mouse.move(1, 1)
            table.scroll_into_view_if_needed()
            facts: dict[str, Any] = {"collapsed": geometry(pg, table)}
            facts["contrast"] = contrast(pg, table)
            for name in NAMES:
                row = pg.locator(f".jm-table .jm-row-{name}")
                row.scroll_into_view_if_needed()
                facts["contrast"] += contrast(pg, row)
            toggle = pg.locator(".jm-table .jm-row-flaky .jm-toggle")
            toggle.click()
            expect(pg.locator(".jm-table .jm-row-flaky .jm-detail").first).to_be_visible()
            pg.mouse.move(1, 1)
            facts["expanded"] = geometry(pg, table)
            facts["contrast"] += contrast(pg, pg.locator(".jm-table .jm-row-flaky"))
            pg.screenshot(path=str(self.shot_dir / f"voila-{theme}-{width}.png"))
            toggle.click()
            expect(pg.locator(".jm-table .jm-row-flaky .jm-detail").first).to_be_hidden()
            unique = {(r["where"], r["text"], round(r["ratio"], 3)): r for r in facts["contrast"]}
            facts["contrast"] = list(unique.values())
            self.facts[(theme, width)] = facts
        return self.facts[(theme, width)]


@pytest.fixture(scope="module")
def pages(browser: Any, voila: str, shot_dir: Path) -> Iterator[Pages]:
    p = Pages(browser, voila, shot_dir)
    yield p
    for pg in p.pages.values():
        pg.context.close()


LAYOUT = pytest.mark.parametrize(("theme", "width"), [(t, w) for t in THEMES for w in WIDTHS])


@LAYOUT
def test_voila_rows_and_header_are_one_line(pages: Pages, theme: str, width: int, request: Any) -> None:
    facts = pages.measure(theme, width, request)
    rows = facts["collapsed"]["rows"]
    assert sorted(r["name"] for r in rows) == sorted(NAMES)
    problems = [p for row in rows for p in one_line_problems(row, use_box=True)]
    expanded = [row for row in facts["expanded"]["rows"] if row["expanded"]]
    assert [r["name"] for r in expanded] == ["flaky"]
    problems += [f"expanded {p}" for row in expanded for p in one_line_problems(row, use_box=False)]
    header = facts["collapsed"]["header"]
    assert header is not None, "the table has no visible header"
    problems += one_line_problems(header, use_box=True)
    heights = ", ".join(f"{r['name']} {r['height']}" for r in rows)
    print(f"\nvoila {theme} {width}: table {facts['collapsed']['table']['width']} px; rows (px) {heights}; "
          f"unit {rows[0]['unit']} px; header {header['height']} px")  # fmt: skip
    assert not problems, f"voila {theme} {width}:\n" + "\n".join(problems)


@LAYOUT
def test_voila_buttons_stay_inside_and_nothing_overflows(pages: Pages, theme: str, width: int, request: Any) -> None:
    facts = pages.measure(theme, width, request)
    problems = []
    for state in ("collapsed", "expanded"):
        assert facts[state]["buttons"], "no buttons measured"
        for b in facts[state]["buttons"]:
            where = f"{state} {b['row']} {b['text']!r} at {b['rect']}"
            for key, what in (("inTable", "outside the table"), ("inCell", "outside its cell"),
                              ("inRow", "outside its row")):  # fmt: skip
                if not b[key]:
                    problems.append(f"{where}: {what}")
            if b["clipped"]:
                problems.append(f"{where}: partly cut off")
            if b["onTop"] is False:
                problems.append(f"{where}: covered at its centre")
        problems += [f"{state}: {p}" for p in facts[state]["overflow"]]
        problems += [f"{state}: cut off {c['text']!r} ({c['shown']}%)" for c in facts[state]["cut"] if not c["allowed"]]
    assert not problems, f"voila {theme} {width}:\n" + "\n".join(problems[:30])


@LAYOUT
def test_voila_text_meets_wcag_aa(pages: Pages, theme: str, width: int, request: Any) -> None:
    results = pages.measure(theme, width, request)["contrast"]
    assert len(results) > 15, f"only {len(results)} texts measured"
    worst = min(results, key=lambda r: r["ratio"])
    print(f"\nvoila {theme} {width}: {len(results)} texts, worst {worst['ratio']:.2f}:1 {worst['text']!r} "
          f"({worst['fg']} on {worst['bg']})")  # fmt: skip
    failing = low_contrast(results)
    assert not failing, f"voila {theme} {width}: under {AA}:1\n" + "\n".join(failing[:30])


def test_voila_no_javascript_errors(pages: Pages) -> None:
    assert pages.pages, "no Voilà page was opened"
    errors = {theme: pg.js_errors for theme, pg in pages.pages.items()}
    assert all(not e for e in errors.values()), errors
