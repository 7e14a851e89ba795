"""What a user does with the dashboard, in a real JupyterLab page (Debian Chromium + Playwright), at the
default layout (file browser open, 1400x900):

- a failed ``%%oneoff``, a kernel restart, and the rerun from the button of its row "from an earlier kernel";
- the output pane of an expanded running row follows its newest line, unless the user scrolled up;
- each truthful state text: ``cancelled`` after Cancel on a script that returns cleanly once it sees
  ``worker.cancelled``; ``paused · running``; ``retrying in N s``; ``queued · waiting for the running cell``
  while a ``time.sleep`` cell holds the kernel;
- a click made while a cell holds the kernel takes effect at once (JupyterLab sends it on a subshell).
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from browser_notebooks import RESTART, STATES, TAIL
from jupyter_ui import WINDOW, Notebook, expect, new_page, shoot, write_notebook
from page_checks import geometry

pytestmark = pytest.mark.browser  # a pytestmark in conftest.py would be ignored

RUNNING = re.compile(r"started|running", re.IGNORECASE)


def test_restart_then_rerun_the_failed_one_off_from_its_button(
    page: Any, server: Any, shot_dir: Path, docs_img: Path | None
) -> None:
    write_notebook(server["root"] / "restart.ipynb", RESTART)
    nb = Notebook.open(page, server, "restart.ipynb")
    assert nb.left_panel_open()
    nb.run_above(3)  # the one-off fails in this kernel
    expect(nb.output(2)).to_contain_text("failed as planned", timeout=60_000)

    nb.restart_kernel()
    nb.run_cell(3)  # %load_ext jobmanager_nb + %jobs in the new kernel
    row = nb.row("comeback", 3)
    expect(row).to_be_visible(timeout=60_000)
    expect(row).to_contain_text(re.compile(r"earlier kernel", re.IGNORECASE))
    expect(row.locator(".jm-status")).to_contain_text("failed")
    rerun = row.locator(".jm-btn-rerun")
    expect(rerun).to_be_visible()
    expect(rerun).to_have_text("Rerun")
    shoot(nb, nb.table(3), "dashboard-earlier-kernel", shot_dir, docs_img)

    rerun.click()  # a real click: comm message -> kernel -> the same path as %job rerun
    expect(row.locator(".jm-status")).to_contain_text("finished", timeout=30_000)
    expect(rerun).to_have_count(0)
    row.locator(".jm-toggle").click()
    expect(row.locator(".jm-detail")).to_contain_text("found restart.flag")
    assert page.js_errors == []
    nb.shut_down()


# -- the output pane follows its tail

_PANE = r"""
// The output pane of the row `selector`: the element of its expanded part that scrolls vertically, and where
// its text is, by geometry (so any way of scrolling works, column-reverse included): `gap`, how far the
// newest character is below the visible area (<= 0: in view); `start`, whether the first character is in
// view (the pane shows its top); `first`, the line at the top of the visible area.
window.__jmPane = (selector) => {
  const row = document.querySelector(selector);
  if (!row) return null;
  let pane = null;
  for (const e of row.querySelectorAll('.jm-detail, .jm-detail *')) {
    const cs = getComputedStyle(e);
    if ((cs.overflowY === 'auto' || cs.overflowY === 'scroll') && e.scrollHeight > e.clientHeight + 2) {
      pane = e;
      break;
    }
  }
  if (!pane) return null;
  const box = pane.getBoundingClientRect();
  const top = box.top + pane.clientTop, bottom = top + pane.clientHeight;
  const walker = document.createTreeWalker(pane, NodeFilter.SHOW_TEXT);
  let firstNode = null, lastNode = null;
  while (walker.nextNode()) {
    if (!walker.currentNode.textContent.trim()) continue;
    if (!firstNode) firstNode = walker.currentNode;
    lastNode = walker.currentNode;
  }
  if (!lastNode) return null;
  const range = document.createRange();
  const text = lastNode.textContent.replace(/\s+$/, '');
  range.setStart(lastNode, Math.max(0, text.length - 1));
  range.setEnd(lastNode, text.length);
  const lastRect = range.getBoundingClientRect();
  range.setStart(firstNode, 0);
  range.setEnd(firstNode, 1);
  const firstRect = range.getBoundingClientRect();
  let first = '';
  const caret = document.caretRangeFromPoint(box.left + pane.clientLeft + 10, top + 3);
  if (caret && pane.contains(caret.startContainer)) {
    const t = caret.startContainer.textContent, at = caret.startOffset;
    first = t.slice(t.lastIndexOf('\n', at - 1) + 1, t.indexOf('\n', at) < 0 ? undefined : t.indexOf('\n', at));
  }
  const lines = text.split('\n');
  return {x: box.left + box.width / 2, y: top + pane.clientHeight / 2, gap: lastRect.bottom - bottom,
          start: firstRect.top >= top - 1, scrollable: pane.scrollHeight - pane.clientHeight,
          last: lines[lines.length - 1], first};
};
"""

_SAMPLE = r"""
async ([selector, seconds]) => {
  const frames = [];
  const until = performance.now() + seconds * 1000;
  await new Promise(resolve => {
    const step = () => {
      frames.push(window.__jmPane(selector));
      if (performance.now() < until) requestAnimationFrame(step); else resolve();
    };
    requestAnimationFrame(step);
  });
  return frames;
}
"""


def _soon(page: Any, condition: str, arg: Any, timeout: float = 10_000) -> bool:
    """Whether ``condition`` holds within ``timeout`` ms (False rather than an error, so that the test can
    report every way the pane fails)."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    try:
        page.wait_for_function(condition, arg=arg, timeout=timeout)
    except PlaywrightTimeout:
        return False
    return True


def _distinct(values: list[str]) -> int:
    return len({v for v in values})


def _longest_run(flags: list[bool]) -> int:
    longest = run = 0
    for flag in flags:
        run = run + 1 if flag else 0
        longest = max(longest, run)
    return longest


def _follows(frames: list[dict[str, Any] | None]) -> list[str]:
    """Why the pane did not follow its newest line in these frames ([] when it did)."""
    problems = []
    if any(f is None for f in frames):
        problems.append(f"the pane was missing (or not scrollable) in {sum(f is None for f in frames)} frames")
    shown = [f for f in frames if f is not None]
    if _distinct([f["last"] for f in shown]) < 3:
        problems.append("fewer than 3 new lines arrived while sampling")
    off = [f["gap"] > 4 for f in shown]
    if _longest_run(off) > 3:
        worst = max(f["gap"] for f in shown)
        problems.append(
            f"off the bottom for {_longest_run(off)} frames in a row ({sum(off)} of {len(shown)} frames; "
            f"up to {worst:.0f} px above the end)"
        )
    if any(f["start"] and f["scrollable"] > 50 for f in shown):
        problems.append(f"showed its first line (jumped to the top) in {sum(f['start'] for f in shown)} frames")
    if shown and shown[-1]["gap"] > 4:
        problems.append(f"ended {shown[-1]['gap']:.0f} px above the newest line")
    return problems


def test_the_output_pane_follows_its_newest_line_unless_scrolled_up(page: Any, server: Any) -> None:
    write_notebook(server["root"] / "tail.ipynb", TAIL)
    nb = Notebook.open(page, server, "tail.ipynb")
    nb.run_all()
    row = nb.row("chatter", 2)
    expect(row.locator(".jm-btn-cancel")).to_be_visible(timeout=60_000)
    row.locator(".jm-toggle").click()
    expect(row.locator(".jm-detail")).to_contain_text("line 0", timeout=30_000)
    selector = ".jm-row-chatter"
    page.evaluate(_PANE)
    page.wait_for_function("(s) => window.__jmPane(s) !== null", arg=selector, timeout=30_000)  # it scrolls
    row.scroll_into_view_if_needed()
    nb.park_mouse()

    frames = page.evaluate(_SAMPLE, [selector, 2.0])
    problems = [f"while following: {p}" for p in _follows(frames)]

    # the user scrolls up with the mouse wheel: the pane stays where they put it
    box = page.evaluate("(s) => window.__jmPane(s)", selector)
    page.mouse.move(box["x"], box["y"])
    page.mouse.wheel(0, -120)
    if not _soon(page, "(s) => window.__jmPane(s)?.gap > 40", selector):
        problems.append("scrolling up with the wheel did not take the newest line out of view")
    held = [f for f in page.evaluate(_SAMPLE, [selector, 2.0]) if f is not None]
    if _distinct([f["last"] for f in held]) < 3:
        problems.append("scrolled up: fewer than 3 new lines arrived while sampling")
    firsts = sorted({f["first"] for f in held})
    if not held or len(firsts) > 1 or any(f["start"] for f in held):
        problems.append(f"scrolled up: the pane moved (lines at its top: {firsts[:6]})")

    # back at the bottom, it follows again
    page.mouse.wheel(0, 100_000)
    if not _soon(page, "(s) => window.__jmPane(s)?.gap <= 4", selector):
        problems.append("scrolled back to the bottom with the wheel: the newest line never showed in 10 s")
    nb.park_mouse()
    problems += [f"after scrolling back down: {p}" for p in _follows(page.evaluate(_SAMPLE, [selector, 1.5]))]

    row.locator(".jm-btn-cancel").click()
    expect(row.locator(".jm-btn-cancel")).to_have_count(0, timeout=30_000)
    nb.shut_down()
    assert not problems, "\n".join(problems)


# -- truthful states


@pytest.fixture(scope="module")
def states(browser: Any, server: Any) -> Iterator[Notebook]:
    """The states notebook, open once for the state tests: cells 0-3 run, the dashboard shown."""
    write_notebook(server["root"] / "states.ipynb", STATES)
    nb = Notebook.open(new_page(browser), server, "states.ipynb")
    nb.run_above(4)
    table = nb.table(3)
    expect(table.locator(".jm-row")).to_have_count(5, timeout=60_000)
    yield nb
    nb.page.context.close()


def test_cancel_of_a_script_that_returns_cleanly_says_cancelled(states: Notebook, request: Any) -> None:
    request.node.shown_page = states.page
    row = states.row("polite", 3)
    status = row.locator(".jm-status")
    expect(status).to_contain_text(RUNNING, timeout=30_000)
    row.locator(".jm-toggle").click()
    expect(row.locator(".jm-detail")).to_contain_text("working until cancelled", timeout=30_000)  # it runs
    row.locator(".jm-btn-cancel").click()
    expect(row.locator(".jm-detail")).to_contain_text("saw the cancel; returning cleanly", timeout=30_000)
    expect(status).to_have_text(re.compile(r"^\s*cancelled\b"), timeout=30_000)
    expect(status).not_to_contain_text("finished")
    expect(row.locator(".jm-btn-cancel")).to_have_count(0)


def test_pause_during_a_run_says_paused_running(states: Notebook, request: Any) -> None:
    request.node.shown_page = states.page
    row = states.row("steady", 3)
    status = row.locator(".jm-status")
    expect(status).to_contain_text(RUNNING, timeout=30_000)
    row.locator(".jm-btn-pause").click()
    expect(status).to_have_text(re.compile(r"paused\s*·\s*running"), timeout=30_000)
    expect(row.locator(".jm-btn-cancel")).to_be_visible()  # the run goes on, and can still be cancelled
    expect(row.locator(".jm-btn-resume")).to_be_visible()


def test_a_failed_run_waiting_to_retry_says_retrying_in_n_s(states: Notebook, request: Any) -> None:
    request.node.shown_page = states.page
    status = states.row("send-mail", 3).locator(".jm-status")
    expect(status).to_have_text(re.compile(r"retrying in \d+ s"), timeout=30_000)


def test_an_inline_run_behind_a_busy_cell_says_queued_waiting_for_the_running_cell(
    states: Notebook, server: Any, request: Any
) -> None:
    request.node.shown_page = states.page
    row = states.row("tidy", 3)
    states.run_cell(4)  # run_now("tidy"), then hold the kernel until the test releases it
    states.page.wait_for_function(
        "() => window.jupyterapp.shell.currentWidget.sessionContext.session.kernel.status === 'busy'"
    )
    status = row.locator(".jm-status")
    try:
        expect(status).to_have_text(re.compile(r"queued\s*·\s*waiting for the running cell"), timeout=30_000)
        assert states.kernel_status() == "busy", "the cell should still hold the kernel"
        # every state of this notebook is on the page now (cancelled, paused · running, retrying in N s,
        # queued · waiting for the running cell): none of their words may be cut, even in a 600 px cell
        cut = {}
        for width in (None, 600):
            table = states.table(3)
            if width is not None:
                states.fit_output(table, width)
            table.scroll_into_view_if_needed()
            cut[width or "default"] = [c for c in geometry(states.page, table)["cut"] if not c["allowed"]]
        states.set_window(WINDOW["width"])
    finally:
        (server["root"] / "release").touch()  # the cell ends; the inline run goes ahead
    states.wait_idle(30_000)
    expect(row.locator(".jm-timing, .jm-c-last").first).to_contain_text("finished", timeout=30_000)
    expect(status).not_to_contain_text("queued")
    states.cut_while_queued = cut  # type: ignore[attr-defined]  # for the next test


def test_no_state_word_is_cut_off_even_in_a_600_px_cell(states: Notebook) -> None:
    """Measured by the test above while its cell held the kernel, when every state of this notebook was on the
    page (cancelled, paused · running, retrying in N s, queued · waiting for the running cell): at the
    default layout no state word ends in an ellipsis; in a 600 px cell the badge and its countdown never do,
    while the explanation after the badge ("· waiting for the running cell") may, with its tooltip whole:
    three buttons, a name and that sentence do not fit in 600 px on one line."""
    cut = getattr(states, "cut_while_queued", None)
    assert cut is not None, "not measured: the queued test above did not get that far"
    problems = [
        f"{w}: {c['row']}: {c['text']!r} ({c['shown']}% shown; {c['where']})"
        for w, cs in cut.items()
        for c in cs
        if not (str(w) == "600" and str(c["text"]).startswith("· ") and "jm-cap" in str(c["where"]))
    ]
    assert not problems, "state words cut off:\n" + "\n".join(problems)


def test_a_click_during_a_busy_cell_takes_effect_while_the_cell_runs(
    states: Notebook, server: Any, request: Any
) -> None:
    """JupyterLab 4.4+ sends widget messages on a kernel subshell: Pause, clicked while a cell holds the
    kernel, pauses the job at once (the row shows Resume), and the cell sees it paused."""
    request.node.shown_page = states.page
    row = states.row("hourly", 3)
    prompt = states.cell(5).locator(".jp-InputPrompt")
    states.run_cell(5)
    expect(prompt).to_contain_text("*", timeout=30_000)  # the cell runs (held until release-2 exists)
    try:
        clicked = time.monotonic()
        row.locator(".jm-btn-pause").click()
        expect(row.locator(".jm-btn-resume")).to_be_visible(timeout=5_000)
        took = time.monotonic() - clicked
        expect(prompt).to_contain_text("*")  # the cell still holds the kernel
    finally:
        (server["root"] / "release-2").touch()
    expect(prompt).to_contain_text(re.compile(r"\[\d+\]"), timeout=30_000)
    expect(states.output(5)).to_contain_text("paused: True")
    print(f"\nPause during a busy cell: Resume shown {took:.2f} s after the click")
