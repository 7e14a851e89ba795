"""The dashboard at the layouts people use, measured as a person sees it (Debian Chromium + Playwright).

A gallery notebook makes jobs in most states (scheduled, running with progress, paused, retrying, finished,
failed, cancelled, skipped runs, a long name) and shows ``%jobs``. It is opened once in JupyterLab 4 with its
file browser open (the default workspace) and once in Notebook 7, and measured at:

- ``lab-*-1400``: a 1400x900 window (the notebook panel is ~1070 px, its output area ~970 px);
- ``lab-*-950``: a window sized so the notebook panel is 950 px;
- ``lab-light-600``: a window sized so the output area is 600 px (the narrowest cell the issue names);
- ``nb7-light-1400``: Notebook 7 in a 1400 px window,

in the light and the dark theme (switched as *Settings → Theme* does). The assertions are geometric (every
row one line, no header cell wraps, every button inside the table and its cell, nothing sticking out
sideways) and chromatic (WCAG AA contrast of every text against the colour painted behind it, on normal,
hovered and expanded rows). See ``page_checks.py`` for how each is measured.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from browser_notebooks import GALLERY, GALLERY_EXPANDED, GALLERY_NAMES
from jupyter_ui import DARK, LAB, LIGHT, NB7, WINDOW, Notebook, expect, importable, new_page, require, write_notebook
from page_checks import AA, affordance, contrast, geometry, low_contrast, one_line_problems

pytestmark = pytest.mark.browser  # a pytestmark in conftest.py would be ignored


@dataclass(frozen=True)
class Layout:
    ui: str
    theme: str
    window: int | None = None  # the window's width
    panel: float | None = None  # or: the notebook panel's width
    output: float | None = None  # or: the output area's width


LAYOUTS = {
    "lab-light-1400": Layout(LAB, LIGHT, window=1400),
    "lab-dark-1400": Layout(LAB, DARK, window=1400),
    "lab-light-950": Layout(LAB, LIGHT, panel=950),
    "lab-dark-950": Layout(LAB, DARK, panel=950),
    "lab-light-600": Layout(LAB, LIGHT, output=600),
    "nb7-light-1400": Layout(NB7, LIGHT, window=1400),
}
CONTRAST = {"lab-light": "lab-light-1400", "lab-dark": "lab-dark-1400", "nb7-light": "nb7-light-1400"}
STATES = ("normal", "hovered", "expanded")


class Gallery:
    """The gallery notebook, open once per front end; each layout is arranged and measured once."""

    def __init__(self, browser: Any, server: Any, shot_dir: Path, docs_img: Path | None) -> None:
        self.browser = browser
        self.server = server
        self.shot_dir = shot_dir
        self.docs_img = docs_img
        self.notebooks: dict[str, Notebook] = {}
        self.measured: dict[str, dict[str, Any]] = {}
        self.contrasts: dict[tuple[str, str], list[dict[str, Any]]] = {}
        self.buttons: dict[tuple[str, str], list[dict[str, Any]]] = {}

    def notebook(self, ui: str) -> Notebook:
        if ui not in self.notebooks:
            path = f"gallery-{ui}.ipynb"
            write_notebook(self.server["root"] / path, GALLERY)
            nb = Notebook.open(new_page(self.browser), self.server, path, ui=ui)
            nb.run_all()
            table = nb.table(len(GALLERY) - 1)
            expect(table.locator(".jm-row")).to_have_count(len(GALLERY_NAMES), timeout=60_000)
            expect(nb.row("flaky").locator(".jm-btn-rerun")).to_be_visible(timeout=30_000)
            expect(nb.row("crunch").locator(".jm-progress")).to_be_visible(timeout=30_000)
            expect(nb.row("import-rows").locator(".jm-btn-cancel")).to_have_count(0, timeout=30_000)
            expect(nb.row("backup-2026-11").locator(".jm-btn-rerun")).to_have_count(0)
            self.notebooks[ui] = nb
        return self.notebooks[ui]

    def arrange(self, name: str, request: pytest.FixtureRequest) -> Notebook:
        layout = LAYOUTS[name]
        nb = self.notebook(layout.ui)
        request.node.shown_page = nb.page
        nb.set_theme(layout.theme)
        table = nb.table()
        if layout.window is not None:
            nb.set_window(layout.window)
        elif layout.panel is not None:
            nb.fit_panel(layout.panel)
        elif layout.output is not None:
            nb.fit_output(table, layout.output)
        nb.park_mouse()
        return nb

    def table(self, nb: Notebook) -> Any:
        table = nb.table()
        table.scroll_into_view_if_needed()
        return table

    def expand(self, nb: Notebook, expanded: bool) -> None:
        for name in GALLERY_EXPANDED:
            row = nb.row(name)
            detail = row.locator(".jm-detail")
            if detail.first.is_visible() != expanded:
                row.locator(".jm-toggle").click()
            if expanded:
                expect(detail.first).to_be_visible()
            else:
                expect(detail.first).to_be_hidden()  # gone from the page, or hidden

    def measure(self, name: str, request: pytest.FixtureRequest) -> dict[str, Any]:
        """Geometry of the layout, with every row collapsed and with :data:`GALLERY_EXPANDED` expanded."""
        if name not in self.measured:
            nb = self.arrange(name, request)
            self.expand(nb, False)
            facts: dict[str, Any] = {"collapsed": geometry(nb.page, self.table(nb))}
            facts["panel"] = nb.panel_width()
            facts["left_panel_open"] = nb.left_panel_open()
            nb.page.screenshot(path=str(self.shot_dir / f"layout-{name}.png"))
            if name in ("lab-light-1400", "lab-dark-1400") and self.docs_img is not None:
                theme = "light" if LAYOUTS[name].theme == LIGHT else "dark"
                self.table(nb).screenshot(path=str(self.docs_img / f"dashboard-gallery-{theme}.png"))
                if theme == "light":
                    nb.page.screenshot(path=str(self.docs_img / "dashboard-window-light.png"))
            self.expand(nb, True)
            facts["expanded"] = geometry(nb.page, self.table(nb))
            nb.page.screenshot(path=str(self.shot_dir / f"layout-{name}-expanded.png"))
            self.expand(nb, False)
            self.measured[name] = facts
            print(f"\n{name}: panel {facts['panel']:.0f} px, table {facts['collapsed']['table']['width']} px wide")
        return self.measured[name]

    def contrast(self, which: str, state: str, request: pytest.FixtureRequest) -> list[dict[str, Any]]:
        key = (which, state)
        if key not in self.contrasts:
            nb = self.arrange(CONTRAST[which], request)
            results: list[dict[str, Any]] = []
            buttons: list[dict[str, Any]] = []
            if state == "normal":
                self.expand(nb, False)
                nb.park_mouse()
                results += contrast(nb.page, self.table(nb))
                for name in GALLERY_NAMES:  # rows below the fold
                    row = nb.row(name)
                    row.scroll_into_view_if_needed()
                    results += contrast(nb.page, row)
                    buttons += affordance(nb.page, row)
            elif state == "hovered":
                self.expand(nb, False)
                for name in GALLERY_NAMES:
                    self._hovered(nb, nb.row(name), results, buttons)
            else:
                self.expand(nb, True)
                for name in GALLERY_EXPANDED:
                    row = nb.row(name)
                    row.scroll_into_view_if_needed()
                    nb.park_mouse()
                    results += contrast(nb.page, row)
                    buttons += affordance(nb.page, row)
                    self._hovered(nb, row, results, buttons)
                self.expand(nb, False)
            unique = {(r["where"], r["text"], round(r["ratio"], 3)): r for r in results}
            self.contrasts[key] = list(unique.values())
            self.buttons[key] = buttons
        return self.contrasts[key]

    def _hovered(self, nb: Notebook, row: Any, results: list[Any], buttons: list[Any]) -> None:
        """The row with the mouse on its line (away from its buttons), then each of its buttons hovered."""
        row.scroll_into_view_if_needed()
        name = row.locator(".jm-c-name").first
        if name.count():
            name.hover()
        else:
            row.hover(position={"x": row.bounding_box()["width"] * 0.3, "y": 8})
        results += contrast(nb.page, row)
        buttons += affordance(nb.page, row)
        for button in row.locator("button:visible").all():
            button.hover()
            results += contrast(nb.page, button)
            buttons += [dict(b, hovered=True) for b in affordance(nb.page, button)]
        nb.park_mouse()


@pytest.fixture(scope="module")
def gallery(browser: Any, server: Any, shot_dir: Path, docs_img: Path | None) -> Gallery:
    return Gallery(browser, server, shot_dir, docs_img)


@pytest.fixture
def layout(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    if LAYOUTS[name].ui == NB7:
        require("notebook 7 (pip install notebook)", _has_notebook7())
    return name


def _has_notebook7() -> bool:
    return importable("notebook.app")


ALL = pytest.mark.parametrize("layout", list(LAYOUTS), indirect=True)


@ALL
def test_the_layout_is_the_default_one(gallery: Gallery, layout: str, request: pytest.FixtureRequest) -> None:
    """The layout is what it says: in JupyterLab the file browser is open, and the sizes are as named."""
    facts = gallery.measure(layout, request)
    spec = LAYOUTS[layout]
    if spec.ui == LAB:
        assert facts["left_panel_open"], "the file browser should be open (the default workspace)"
    if spec.window is not None:
        assert gallery.notebook(spec.ui).page.viewport_size["width"] == spec.window == WINDOW["width"]
    if spec.panel is not None:
        assert abs(facts["panel"] - spec.panel) < 1.5


@ALL
def test_every_row_is_one_line(gallery: Gallery, layout: str, request: pytest.FixtureRequest) -> None:
    facts = gallery.measure(layout, request)
    rows = facts["collapsed"]["rows"]
    assert len(rows) == len(GALLERY_NAMES)
    problems = [p for row in rows for p in one_line_problems(row, use_box=True)]
    expanded = [row for row in facts["expanded"]["rows"] if row["expanded"]]
    assert len(expanded) == len(GALLERY_EXPANDED)
    problems += [f"expanded {p}" for row in expanded for p in one_line_problems(row, use_box=False)]
    heights = ", ".join(f"{r['name']} {r['height']}" for r in rows)
    tallest = max(rows, key=lambda r: r["height"] / r["unit"])
    print(
        f"\n{layout}: rows {min(r['height'] for r in rows)}-{max(r['height'] for r in rows)} px high, "
        f"the tallest {tallest['height'] / tallest['unit']:.2f} line units ({tallest['name']}, unit "
        f"{tallest['unit']} px); header {facts['collapsed']['header']['height']} px"
    )
    assert not problems, f"{layout}: rows that are not one line (row heights in px: {heights}):\n" + "\n".join(problems)


@ALL
def test_no_header_cell_wraps(gallery: Gallery, layout: str, request: pytest.FixtureRequest) -> None:
    header = gallery.measure(layout, request)["collapsed"]["header"]
    assert header is not None, "the table has no visible header"
    problems = one_line_problems(header, use_box=True)
    assert not problems, f"{layout}: the header is not one line:\n" + "\n".join(problems)


@ALL
def test_every_button_is_inside_the_table_and_its_cell(
    gallery: Gallery, layout: str, request: pytest.FixtureRequest
) -> None:
    facts = gallery.measure(layout, request)
    problems = []
    for state in ("collapsed", "expanded"):
        buttons = facts[state]["buttons"]
        assert buttons, "no buttons measured"
        for b in buttons:
            where = f"{state} {b['row']} {b['text']!r} at {b['rect']}"
            if not b["inTable"]:
                problems.append(f"{where}: outside the table {facts[state]['table']}")
            if not b["inCell"]:
                problems.append(f"{where}: outside its cell {b['cell']}")
            if not b["inRow"]:
                problems.append(f"{where}: outside its row")
            if b["clipped"]:
                problems.append(f"{where}: partly cut off")
            if b["onTop"] is False:
                problems.append(f"{where}: covered by something else at its centre")
    assert not problems, f"{layout}:\n" + "\n".join(problems)


@ALL
def test_nothing_overflows_sideways(gallery: Gallery, layout: str, request: pytest.FixtureRequest) -> None:
    facts = gallery.measure(layout, request)
    problems = [f"{state}: {p}" for state in ("collapsed", "expanded") for p in facts[state]["overflow"]]
    assert not problems, f"{layout}:\n" + "\n".join(problems[:30])


@ALL
def test_no_number_or_state_word_is_cut_off(gallery: Gallery, layout: str, request: pytest.FixtureRequest) -> None:
    """Only free text (names, schedules, hints, progress captions; the skipped count below the default width)
    may end in an ellipsis: a cut countdown (``in 10 h 3…``) or outcome (``can…``) says something else."""
    facts = gallery.measure(layout, request)
    default = LAYOUTS[layout].window == WINDOW["width"]
    cut = [
        c
        for state in ("collapsed", "expanded")
        for c in facts[state]["cut"]
        if not c["allowed"] or (default and ".jm-skipped" in c["where"])
    ]
    unique = sorted({f"{c['row']}: {c['text']!r} ({c['shown']}% shown; {c['where']})" for c in cut})
    assert not unique, f"{layout}: texts cut off:\n" + "\n".join(unique)


@pytest.mark.parametrize("layout", ["lab-light-1400", "nb7-light-1400"], indirect=True)
def test_a_running_row_reads_like_tqdm(gallery: Gallery, layout: str, request: pytest.FixtureRequest) -> None:
    """The worker reporting progress: its percentage, its own words, the time it has run and an estimate of
    the time left, in view, over a bar wide enough to read (it was 80 px, the words only in a tooltip)."""
    nb = gallery.arrange(layout, request)
    gallery.table(nb)  # in view (JupyterLab does not lay out cells scrolled far away)
    status = nb.row("crunch").locator(".jm-status")
    expect(status).to_contain_text(re.compile(r"\d+%"))
    expect(status).to_contain_text(re.compile(r"step \d+ of 1000"))
    expect(status).to_contain_text(re.compile(r"\b\d+ s\b"))  # elapsed
    expect(status).to_contain_text(re.compile(r"left"))  # the estimate
    # Measured in one step inside the page: the cell's HTML is replaced a few times a second as the job reports
    # progress, so a bar found by one call may be gone by the next (bounding_box() then gives None).
    width = status.evaluate(
        "el => { const bar = el.querySelector('.jm-progress'); return bar ? bar.getBoundingClientRect().width : 0; }"
    )
    words = status.evaluate(
        """el => { const r = document.createRange(); r.selectNodeContents(el);
                   const box = el.getBoundingClientRect();
                   return [...r.getClientRects()].every(t => t.right <= box.right + 1 && t.left >= box.left - 1); }"""
    )
    print(f"\n{layout}: progress bar {width:.0f} px wide, status {status.inner_text()!r}")
    assert width >= 150, f"the progress bar is {width:.0f} px wide"
    assert words, f"the progress words are cut off: {status.inner_text()!r}"


@pytest.mark.parametrize("state", STATES)
@pytest.mark.parametrize("which", list(CONTRAST))
def test_every_text_meets_wcag_aa_contrast(
    gallery: Gallery, which: str, state: str, request: pytest.FixtureRequest
) -> None:
    if which.startswith("nb7"):
        require("notebook 7 (pip install notebook)", _has_notebook7())
    results = gallery.contrast(which, state, request)
    assert len(results) > 20, f"only {len(results)} texts measured"
    worst = min(results, key=lambda r: r["ratio"])
    failing = low_contrast(results)
    print(f"\n{which} {state}: {len(results)} text/background pairs, worst {worst['ratio']:.3f}:1 {worst['text']!r}")
    assert not failing, f"{which} {state}: {len(failing)} of {len(results)} texts under {AA}:1\n" + "\n".join(
        failing[:40]
    )


@pytest.mark.parametrize("state", STATES)
@pytest.mark.parametrize("which", list(CONTRAST))
def test_every_button_stands_out_from_its_row(
    gallery: Gallery, which: str, state: str, request: pytest.FixtureRequest
) -> None:
    """A button keeps looking like a button on every row state: its fill or its border is at least 3:1 against
    what is behind it (WCAG 1.4.11). The ▸ toggle is a glyph, held to the text contrast above instead."""
    if which.startswith("nb7"):
        require("notebook 7 (pip install notebook)", _has_notebook7())
    gallery.contrast(which, state, request)
    buttons = [b for b in gallery.buttons[(which, state)] if not b["toggle"]]
    assert len(buttons) >= 5, f"only {len(buttons)} buttons measured"
    flat = sorted(
        {
            f"{b['row']} {b['text']!r}{' (hovered)' if b.get('hovered') else ''}: fill {b['fill']:.2f}:1 "
            f"({b['fillColor']} on {b['behind']}), border {b['edge']:.2f}:1"
            for b in buttons
            if max(b["fill"], b["edge"]) < 3.0 and not b["shadow"]
        }
    )
    weakest = min(buttons, key=lambda b: max(b["fill"], b["edge"]))
    print(
        f"\n{which} {state}: {len(buttons)} buttons, the least distinct {max(weakest['fill'], weakest['edge']):.2f}:1"
    )
    assert not flat, f"{which} {state}: buttons that look like text:\n" + "\n".join(flat)


NOTEBOOK7_NOISE = (
    # Notebook 7's own start-up with JupyterLab's settings folder, with or without the dashboard
    "Cannot read properties of undefined (reading 'schema')",
    "Command 'filebrowser:open-path' not registered.",
)


def test_no_javascript_errors(gallery: Gallery) -> None:
    errors = {
        ui: [e for e in nb.page.js_errors if not (ui == NB7 and e in NOTEBOOK7_NOISE)]
        for ui, nb in gallery.notebooks.items()
    }
    assert errors, "the gallery was never opened"
    assert all(not e for e in errors.values()), errors
