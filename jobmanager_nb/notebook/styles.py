"""How the dashboard looks: its stylesheet, its colours, and the layouts and styles every row shares.

**Layout.** The header and every row are CSS grids with the same columns: the ▸ toggle, the job (name, kind,
schedule, recent runs), the status, the timing (last run, next run) and the actions. Each column is a fraction of
the cell's width above a minimum (:data:`_COLUMN_SIZES`), never a fixed width, so the table fills any width and
the header stays aligned with the rows. Free text (names, schedules, kinds, hints, progress captions) may end in
"…" (its tooltip has it whole); numbers and state words never do, so their columns' minimums hold the longest
usual one. Container queries on the table fold the secondary parts away as the cell narrows (:data:`_FOLDS`):
kind below 1300 px, the last run's duration below 1250 px, the last run below 1130 px (the strip's newest mark
and its tooltip still say it), schedule below 1000 px (then in the next run's tooltip; the strip shows the last
12 runs), a narrower status and runs minimum below 880 px, next run below 800 px. So each row stays one line
from 600 px to full width; the actions keep their own column and wrap inside it rather than under the row.

A run on another machine (a Dask worker) shows where it runs after its state (``jm-where``), which gives way
before any state word does.

**Colours.** Every colour is a role (``--jm-fg``, ``--jm-ok``, ``--jm-fill-bad`` ...) set from one of the
front end's ``--jp-*`` theme variables, with a fallback for renderers that define none (VS Code's, for one):
:data:`PALETTE` (light) and :data:`DARK_PALETTE` (JupyterLab's dark themes, by ``data-jp-theme-light="false"``
on ``<body>``, and VS Code's dark themes, by ``body.vscode-dark``). The table paints its own background, so
each text colour is only ever seen on the backgrounds :data:`CONTRAST_PAIRS` lists, and
``tests/test_dashboard_colours.py`` checks every one of them reaches WCAG AA (4.5:1) in both themes.

:class:`_Shared` holds the ipywidgets layouts and styles of the rows: one model each, made once per table
rather than once per row (500 rows would otherwise add thousands of models). The layouts set nothing (the
stylesheet does the layout); each column's layout object names its column, and :meth:`_Shared.html` gives a
cell made with it the column's class (``jm-col-ident``, ``jm-col-status``, ...), at construction, which costs
no extra message.
"""

from __future__ import annotations

from typing import Any

import ipywidgets as W

__all__ = ["CONTRAST_PAIRS", "DARK_PALETTE", "NON_TEXT_PAIRS", "PALETTE"]

PALETTE: dict[str, tuple[str, str]] = {
    # role: (the theme variable it follows, the fallback where the variable is missing) -- light themes
    "bg": ("--jp-layout-color0", "#ffffff"),  # the table's own background
    "fg": ("--jp-ui-font-color1", "rgba(0, 0, 0, 0.87)"),  # text
    "muted": ("--jp-ui-font-color2", "rgba(0, 0, 0, 0.54)"),  # secondary text: titles, kind, "never"
    "hover": ("--jp-cell-editor-background", "#f5f5f5"),  # a hovered or expanded row
    "panel": ("--jp-layout-color2", "#eeeeee"),  # buttons, the output box, the progress bar's track
    "line": ("--jp-border-color2", "#e0e0e0"),  # between rows
    "edge": ("--jp-layout-color4", "#757575"),  # button and tag borders, the strip's axis (3:1 on any row)
    "accent": ("--jp-brand-color1", "#1976d2"),  # the expanded row's left bar
    "ok": ("--jp-success-color0", "#1b5e20"),  # "finished" as text, a finished run's mark
    "bad": ("--jp-error-color0", "#b71c1c"),  # "failed" as text, a failed run's mark, the message line
    "error-bg": ("--jp-rendermime-error-background", "#ffdddd"),  # the traceback box
    "on-fill": ("--jp-ui-inverse-font-color0", "#ffffff"),  # text on a filled badge or button
    "on-warn": ("--jp-ui-font-color0", "#000000"),  # text on the orange fill
    "fill-info": ("--jp-info-color0", "#006064"),  # scheduled
    "fill-brand": ("--jp-brand-color0", "#0d47a1"),  # started, the progress bar, Resume
    "fill-ok": ("--jp-success-color0", "#1b5e20"),  # finished
    "fill-bad": ("--jp-error-color0", "#b71c1c"),  # failed
    "fill-warn": ("--jp-warn-color0", "#e65100"),  # retrying, Rerun
    "fill-grey": ("--jp-inverse-layout-color3", "#616161"),  # paused
}
"""The colour roles in light themes: (theme variable, fallback)."""

DARK_PALETTE: dict[str, tuple[str, str]] = {
    "bg": ("--jp-layout-color0", "#111111"),
    "fg": ("--jp-ui-font-color1", "rgba(255, 255, 255, 0.87)"),
    "muted": ("--jp-ui-font-color2", "rgba(255, 255, 255, 0.54)"),
    "hover": ("--jp-cell-editor-background", "#212121"),
    "panel": ("--jp-layout-color2", "#424242"),
    "line": ("--jp-border-color2", "#424242"),
    "edge": ("--jp-layout-color4", "#757575"),
    "accent": ("--jp-brand-color1", "#2196f3"),
    "ok": ("--jp-success-color2", "#81c784"),  # dark themes' light shades: readable on a dark row
    "bad": ("--jp-error-color2", "#e57373"),
    "error-bg": ("--jp-rendermime-error-background", "rgba(244, 67, 54, 0.28)"),
    "on-fill": ("--jp-ui-inverse-font-color0", "#000000"),  # dark text on the brighter fills
    "on-warn": ("--jp-ui-inverse-font-color0", "#000000"),
    "fill-info": ("--jp-info-color1", "#00bcd4"),
    "fill-brand": ("--jp-brand-color1", "#2196f3"),
    "fill-ok": ("--jp-success-color1", "#4caf50"),
    "fill-bad": ("--jp-error-color1", "#f44336"),
    "fill-warn": ("--jp-warn-color1", "#ff9800"),
    "fill-grey": ("--jp-inverse-layout-color3", "#bdbdbd"),
}
"""The colour roles in dark themes: (theme variable, fallback)."""

CONTRAST_PAIRS: tuple[tuple[str, tuple[str, ...], str], ...] = (
    # (text role, the backgrounds under it from the bottom up, where it is seen); each must reach 4.5:1
    ("fg", ("bg",), "row text, summary, toggle, caption, tag"),
    ("fg", ("hover",), "text on a hovered or expanded row"),
    ("muted", ("bg",), "column titles, kind, never, idle"),
    ("ok", ("bg",), "finished (last run, summary)"),
    ("ok", ("hover",), "finished on a hovered or expanded row"),
    ("bad", ("bg",), "failed (last run, summary), the message line"),
    ("bad", ("hover",), "failed on a hovered or expanded row"),
    ("fg", ("hover", "panel"), "buttons and the output box (on any row)"),
    ("fg", ("hover", "error-bg"), "the traceback box of an expanded row"),
    ("fg", ("bg", "error-bg"), "the traceback box on the table's background"),
    ("on-fill", ("fill-info",), "the scheduled badge"),
    ("on-fill", ("fill-brand",), "the started badge, Resume"),
    ("on-fill", ("fill-ok",), "the finished badge"),
    ("on-fill", ("fill-bad",), "the failed badge"),
    ("on-warn", ("fill-warn",), "the retrying badge, Rerun"),
    ("on-fill", ("fill-grey",), "the paused badge"),
)
"""Every text colour on every background it can be seen on (normal, hovered and expanded rows). Secondary text is
``muted`` only on the table's background: a hovered or expanded row sets ``--jm-muted`` to ``--jm-fg``, since no
light theme's ``--jp-ui-font-color2`` reaches 4.5:1 on a visibly different background."""

NON_TEXT_PAIRS: tuple[tuple[str, tuple[str, ...], str], ...] = (
    # (colour, the backgrounds under it), each must reach 3:1 (WCAG 1.4.11, graphical objects and UI parts)
    ("edge", ("bg",), "button and tag borders, the strip's axis"),
    ("edge", ("hover",), "button borders on a hovered or expanded row"),
    ("ok", ("hover",), "a finished run's mark"),
    ("bad", ("hover",), "a failed run's mark"),
    ("muted", ("bg",), "a cancelled run's mark (on hovered and expanded rows it is fg)"),
    ("fill-brand", ("hover", "panel"), "the progress bar's fill on its track"),
    ("accent", ("hover",), "the expanded row's left bar"),
)
"""Colours that carry meaning without text, on what they are seen against."""

_DARK_SCOPES = (
    'body[data-jp-theme-light="false"] .jm-table',  # JupyterLab, Notebook 7, Voilà: a dark theme
    "body.vscode-dark .jm-table",  # VS Code's dark themes (no --jp-* variables there)
    "body.vscode-high-contrast:not(.vscode-high-contrast-light) .jm-table",
)


def _roles(palette: dict[str, tuple[str, str]]) -> str:
    return "\n".join(f"  --jm-{role}: var({variable}, {fallback});" for role, (variable, fallback) in palette.items())


# The grid's columns: (minimum in em, fraction of the rest). Free text (name, kind, schedule) may end in "…"
# and has no minimum; numbers and state words never do, so their columns' minimums hold the longest usual one
# in DejaVu Sans (the widest common UI font): "queued · waiting for the running cell" after its badge,
# "27 Nov 14:03 · 3 min 5 s · cancelled" (12.5em without the duration), "in 23 h 59 min", three buttons.
_GAP = 0.5
_COLUMN_SIZES: dict[str, tuple[float, float]] = {
    "name": (4.0, 1.6),
    "kind": (0.0, 0.95),
    "schedule": (0.0, 1.25),
    "runs": (7.5, 1.0),  # the count and "· 10 skipped" never shrink; the strip does (3em below 880 px)
    "status": (20.5, 2.8),
    "last": (17.7, 1.75),
    "next": (7.8, 0.85),
}
_IDENT_PARTS, _TIMING_PARTS = ("name", "kind", "schedule", "runs"), ("last", "next")
_ACTIONS = "minmax(17.2em, 1.6fr)"  # Run now, Resume and Remove on one line


def _track(minimum: float, fraction: float) -> str:
    return f"minmax({minimum:g}em, {fraction:g}fr)"


def _grid(hidden: frozenset[str], **sizes: tuple[float, float]) -> tuple[str, str, str]:
    """(the row's columns, the job cell's columns, the timing cell's columns) with ``hidden`` parts folded away
    and ``sizes`` overriding :data:`_COLUMN_SIZES`."""
    size = {**_COLUMN_SIZES, **sizes}

    def group(parts: tuple[str, ...]) -> tuple[str, str]:
        shown = [part for part in parts if part not in hidden]
        if not shown:
            return "", ""
        minimum = sum(size[part][0] for part in shown) + _GAP * (len(shown) - 1)
        outer = _track(minimum, sum(size[part][1] for part in shown))
        return outer, " ".join(_track(*size[part]) for part in shown)

    ident, ident_inner = group(_IDENT_PARTS)
    timing, timing_inner = group(_TIMING_PARTS)
    columns = " ".join(part for part in ("1.6em", ident, _track(*size["status"]), timing, _ACTIONS) if part)
    return columns, ident_inner, timing_inner


_FOLDS: tuple[tuple[int, frozenset[str], dict[str, tuple[float, float]], str], ...] = (
    # (below this container width, the parts hidden, sizes, extra rules): each width still holds the minimums
    (1300, frozenset({"kind"}), {}, ".jm-table .jm-c-kind { display: none; }"),
    (1250, frozenset({"kind"}), {"last": (12.5, 1.45)}, ".jm-table .jm-took { display: none; }"),
    (1130, frozenset({"kind", "last"}), {}, ".jm-table .jm-c-last { display: none; }"),
    (
        1000,
        frozenset({"kind", "last", "schedule"}),
        {},
        ".jm-table .jm-c-schedule { display: none; } .jm-table .jm-strip { max-width: calc(12 * 4px); }",
    ),
    (880, frozenset({"kind", "last", "schedule"}), {"status": (15.5, 3.1), "runs": (3.0, 0.8)}, ""),
    (
        800,
        frozenset({"kind", "last", "schedule", "next"}),
        {"status": (15.5, 3.1), "runs": (3.0, 0.8)},
        ".jm-table .jm-col-timing { display: none; }",
    ),
)


def _fold_rules() -> str:
    rules = []
    for width, hidden, sizes, extra in _FOLDS:
        columns, ident, timing = _grid(hidden, **sizes)
        lines = [
            f"@container jm-table (max-width: {width - 0.02}px) {{",
            f"  .jm-table .jm-header, .jm-table .jm-row {{ grid-template-columns: {columns}; }}",
            f"  .jm-table .jm-col-ident > .widget-html-content {{ grid-template-columns: {ident}; }}",
        ]
        if timing:
            lines.append(f"  .jm-table .jm-col-timing > .widget-html-content {{ grid-template-columns: {timing}; }}")
        if extra:
            lines.append(f"  {extra}")
        rules.append("\n".join([*lines, "}"]))
    return "\n".join(rules)


_COLUMNS, _IDENT, _TIMING = _grid(frozenset())

_CSS = f"""
<style>
.jm-table {{
{_roles(PALETTE)}
  container: jm-table / inline-size;
  background: var(--jm-bg); color: var(--jm-fg);
  font-family: var(--jp-ui-font-family, system-ui, -apple-system, "Segoe UI", Roboto, sans-serif);
  font-size: var(--jp-ui-font-size1, 13px); line-height: 1.4;
}}
{", ".join(_DARK_SCOPES)} {{
{_roles(DARK_PALETTE)}
}}
.jm-table .jupyter-widgets {{ margin: 0; color: var(--jm-fg); }}
.jm-table .widget-html {{ display: block; height: auto; min-width: 0; line-height: inherit; overflow: hidden; }}
.jm-table .widget-html > .widget-html-content {{ line-height: inherit; height: auto; min-width: 0; }}
.jm-table .jm-style {{ display: none; }}
.jm-table .jm-summary {{ font-weight: 600; padding: 2px 4px; }}
.jm-table .jm-message .widget-html-content {{ color: var(--jm-bad); padding: 0 4px; white-space: nowrap;
  overflow: hidden; text-overflow: ellipsis; }}
.jm-table .jm-body {{ overflow: visible; }}

/* the grid: the header and every row have the same columns */
.jm-table .jm-header, .jm-table .jm-row {{ display: grid; grid-template-columns: {_COLUMNS};
  column-gap: 0.5em; align-items: center; width: 100%; box-sizing: border-box; padding: 0 4px;
  overflow: visible; }}
.jm-table .jm-header {{ color: var(--jm-muted); font-weight: 600; border-bottom: 1px solid var(--jm-edge);
  min-height: 1.9em; }}
.jm-table .jm-header .jupyter-widgets {{ color: var(--jm-muted); }}
.jm-table .jm-row {{ border-bottom: 1px solid var(--jm-line); min-height: 2.15em; }}
.jm-table .jm-row:hover, .jm-table .jm-row:has(> .jm-detail) {{ background: var(--jm-hover);
  --jm-muted: var(--jm-fg); }}
.jm-table .jm-row:has(> .jm-detail) {{ box-shadow: inset 3px 0 0 var(--jm-accent); }}
.jm-table .jm-col-ident > .widget-html-content {{ display: grid; grid-template-columns: {_IDENT};
  column-gap: 0.5em; align-items: center; }}
.jm-table .jm-col-timing > .widget-html-content {{ display: grid; grid-template-columns: {_TIMING};
  column-gap: 0.5em; align-items: center; }}
.jm-table .jm-col-status > .widget-html-content {{ display: flex; align-items: center; gap: 0.4em;
  white-space: nowrap; overflow: hidden; }}
.jm-table .jm-c {{ display: block; min-width: 0; overflow: hidden; white-space: nowrap; text-overflow: ellipsis; }}
.jm-table .jm-c-name {{ font-weight: 600; }}
.jm-table .jm-tag {{ flex: none; font-size: 0.85em; font-weight: 400; line-height: 1.3; padding: 0 0.45em;
  border: 1px solid var(--jm-edge); border-radius: 0.7em; color: var(--jm-fg); }}
.jm-table .jm-c-kind, .jm-table .jm-muted {{ color: var(--jm-muted); }}
.jm-table .jm-c-next, .jm-table .jm-c-runs, .jm-table .jm-c-last, .jm-table .jm-cap {{
  font-variant-numeric: tabular-nums; }}
.jm-table .jm-c-hist {{ display: flex; align-items: center; gap: 0.4em; }}
.jm-table .jm-c-hist .jm-c-runs {{ flex: none; min-width: 2.2ch; text-align: right; overflow: visible; }}
.jm-table .jm-skipped {{ flex: 0 1 auto; min-width: 0; overflow: hidden; text-overflow: ellipsis; }}
.jm-table .jm-c-hist .jm-strip {{ flex-shrink: 1000; }}
.jm-table .jm-o-finished {{ color: var(--jm-ok); }}
.jm-table .jm-o-failed {{ color: var(--jm-bad); }}

/* the status: a badge, then a progress bar and the words after it */
.jm-table .jm-s {{ flex: none; padding: 0 0.5em; border-radius: 0.75em; font-weight: 600; line-height: 1.45;
  border: 1px solid transparent; color: var(--jm-on-fill); }}
.jm-table .jm-s-scheduled {{ background: var(--jm-fill-info); }}
.jm-table .jm-s-started {{ background: var(--jm-fill-brand); }}
.jm-table .jm-s-finished {{ background: var(--jm-fill-ok); }}
.jm-table .jm-s-failed {{ background: var(--jm-fill-bad); }}
.jm-table .jm-s-retrying {{ background: var(--jm-fill-warn); color: var(--jm-on-warn); }}
.jm-table .jm-s-paused {{ background: var(--jm-fill-grey); }}
.jm-table .jm-s-queued {{ color: var(--jm-fg); border: 1px dashed var(--jm-edge); }}
.jm-table .jm-s-cancelled {{ color: var(--jm-fg); border-color: var(--jm-edge); }}
.jm-table .jm-s-idle {{ color: var(--jm-muted); font-weight: 400; border: 1px dotted var(--jm-edge); }}
.jm-table .jm-cap {{ flex: 0 1 auto; min-width: 0; overflow: hidden; text-overflow: ellipsis; }}
/* where a run on another machine runs (a Dask worker's address): gives way first when the column is narrow */
.jm-table .jm-where {{ flex: 0 1000 auto; min-width: 0; overflow: hidden; white-space: nowrap;
  text-overflow: ellipsis; font-size: 0.85em; line-height: 1.3; padding: 0 0.45em; border: 1px solid var(--jm-edge);
  border-radius: 0.7em; color: var(--jm-fg); font-variant-numeric: tabular-nums; }}
.jm-table .jm-where a, .jm-table a.jm-link, .jm-table .jm-c-kind a {{ color: inherit; text-decoration: underline; }}
.jm-table .jm-prog {{ flex: 1 1 auto; min-width: 0; display: flex; flex-direction: column; gap: 2px; }}
.jm-table .jm-prog .jm-cap {{ line-height: 1.25; font-size: 0.92em; }}
.jm-table .jm-bar {{ display: block; width: 100%; height: 5px; background: var(--jm-panel);
  box-shadow: inset 0 0 0 1px var(--jm-edge); border-radius: 2px; overflow: hidden; }}
.jm-table .jm-bar > span {{ display: block; height: 100%; background: var(--jm-fill-brand); }}

/* recent runs: finished runs rise above the axis, failures hang below it, cancelled ones are a dash */
.jm-table .jm-strip {{ flex: 0 1 auto; min-width: 0; max-width: calc(20 * 4px); height: 1.4em; display: flex;
  justify-content: flex-end; gap: 1px; overflow: hidden; padding: 0 1px;
  background: linear-gradient(var(--jm-edge), var(--jm-edge)) center / 100% 1px no-repeat; }}
.jm-table .jm-m {{ flex: none; width: 3px; }}
.jm-table .jm-m-up {{ align-self: flex-end; margin-bottom: 0.7em; background: var(--jm-ok);
  border-radius: 1px 1px 0 0; }}
.jm-table .jm-m-down {{ align-self: flex-start; margin-top: 0.7em; background: var(--jm-bad);
  border-radius: 0 0 1px 1px; }}
.jm-table .jm-m-dash {{ align-self: center; height: 3px; background: var(--jm-muted); }}

/* buttons keep their own background and border on every row state */
.jm-table .jm-buttons {{ display: flex; flex-wrap: wrap; align-items: center; gap: 3px 0.3em; margin: 0;
  padding: 2px 0; min-width: 0; overflow: visible; }}
.jm-table .jm-btn {{ flex: none; width: auto; height: 1.8em; line-height: calc(1.8em - 2px); padding: 0 0.5em;
  margin: 0; font-size: 1em; border: 1px solid var(--jm-edge); border-radius: 3px; background: var(--jm-panel);
  color: var(--jm-fg); }}
.jm-table .jm-btn.jm-btn-rerun {{ background: var(--jm-fill-warn); color: var(--jm-on-warn); }}
.jm-table .jm-btn.jm-btn-resume {{ background: var(--jm-fill-brand); color: var(--jm-on-fill); }}
.jm-table .jm-hint-cell {{ flex: 1 1 0; min-width: 0; }}
.jm-table .jm-hint {{ display: block; color: var(--jm-fg); white-space: nowrap; overflow: hidden;
  text-overflow: ellipsis; }}
.jm-table .jm-toggle {{ width: 1.6em; height: 1.6em; padding: 0; margin: 0; display: inline-flex;
  align-items: center; justify-content: center; line-height: 1; font-size: 1em; background: transparent;
  color: var(--jm-fg); border: none; }}
.jm-table .jm-toggle:hover {{ background: var(--jm-panel); }}
.jm-table .jm-spacer {{ visibility: hidden; }}

/* the expanded run */
/* The expanded part is a pane that scrolls from its end: a column-reverse box starts at its bottom and stays
   there as the output grows, so the newest line is in view. Scrolled up, the browser's scroll anchoring keeps
   the lines in view where they are: the text's box (kept across updates, unlike what is inside it) is the
   anchor it picks. Near the end, the 1 px anchor box under the text is in view and is picked instead, so the
   pane follows the newest line again; a scroll that stops a little short of the end snaps to it. */
.jm-table .jm-detail {{ grid-column: 1 / -1; display: flex; flex-direction: column-reverse; max-height: 24em;
  overflow-x: hidden; overflow-y: auto; scroll-snap-type: y proximity; margin: 0; padding: 0 0 0 1.6em; }}
.jm-table .jm-detail > .jm-anchor {{ flex: none; height: 1px; overflow-anchor: auto; scroll-snap-align: end; }}
.jm-table .jm-detail > .jm-detail-text {{ flex: none; overflow: visible; overflow-anchor: auto; padding: 2px 0 5px 0; }}
.jm-table .jm-detail-text > .widget-html-content, .jm-table .jm-detail-text > .widget-html-content * {{
  overflow-anchor: none; }}
.jm-table .jm-detail pre {{ margin: 2px 0 6px 0; padding: 4px 6px;
  background: var(--jm-panel); color: var(--jm-fg); font-size: var(--jp-code-font-size, 12px);
  font-family: var(--jp-code-font-family, monospace); white-space: pre-wrap; border-radius: 2px; }}
.jm-table .jm-detail pre.jm-error {{ background: var(--jm-error-bg); color: var(--jm-fg);
  border-left: 3px solid var(--jm-bad); }}
/* The recent runs: a widget of its own above the text (re-rendered only when the runs change, so a run opened
   with its <details> stays open), never the scroll anchor: the text's box stays it. */
.jm-table .jm-detail > .jm-detail-runs {{ flex: none; overflow: visible; overflow-anchor: none; padding: 2px 0 0 0; }}
.jm-table .jm-detail-runs > .widget-html-content, .jm-table .jm-detail-runs > .widget-html-content * {{
  overflow-anchor: none; }}
.jm-table .jm-history {{ margin: 2px 0 6px 0; font-variant-numeric: tabular-nums; }}
.jm-table .jm-history .jm-run > summary {{ cursor: pointer; list-style: none; }}
.jm-table .jm-history .jm-run > summary::-webkit-details-marker {{ display: none; }}
.jm-table .jm-history .jm-run > summary::before, .jm-table .jm-history div.jm-run::before {{
  display: inline-block; width: 1.2em; content: ""; }}
.jm-table .jm-history details.jm-run > summary::before {{ content: "▸"; }}
.jm-table .jm-history details.jm-run[open] > summary::before {{ content: "▾"; }}
.jm-table .jm-history .jm-run > summary, .jm-table .jm-history div.jm-run {{ white-space: nowrap; overflow: hidden;
  text-overflow: ellipsis; }}
.jm-table .jm-history .jm-run-start, .jm-table .jm-history .jm-run-took, .jm-table .jm-history .jm-run-outcome {{
  display: inline-block; min-width: 6em; padding: 0 1em 0 0; }}
.jm-table .jm-history .jm-run-took {{ min-width: 4em; }}
.jm-table .jm-history .jm-run-where {{ display: inline-block; padding: 0 1em 0 0; }}
.jm-table .jm-detail pre.jm-run-error {{ background: var(--jm-error-bg); color: var(--jm-fg);
  border-left: 3px solid var(--jm-bad); }}

/* narrower cells: fold the secondary columns away */
{_fold_rules()}
</style>
"""


class _Shared:
    """Layouts and styles every row shares (one model each, not one per row). Each column's layout sets nothing
    (the stylesheet lays the grid out) but names the column: :meth:`html` gives a cell made with it the
    column's class, so the header's cells and the rows' cells share the grid's rules."""

    def __init__(self) -> None:
        self.row_layout = W.Layout()
        self.toggle_layout = W.Layout()
        self.ident_layout = W.Layout()
        self.status_layout = W.Layout()
        self.timing_layout = W.Layout()
        self.buttons_layout = W.Layout()
        self.button_layout = W.Layout()
        self.detail_layout = W.Layout()
        self.button_style = W.ButtonStyle()
        probe = W.HTML()  # ipywidgets does not export HTMLStyle: borrow the style of a throwaway HTML
        self.html_style = probe.style
        probe.close()
        self._column = {
            id(self.ident_layout): "jm-col-ident",
            id(self.status_layout): "jm-col-status",
            id(self.timing_layout): "jm-col-timing",
            id(self.buttons_layout): "jm-col-actions",
        }
        self.widgets: list[Any] = [
            self.row_layout,
            self.toggle_layout,
            self.ident_layout,
            self.status_layout,
            self.timing_layout,
            self.buttons_layout,
            self.button_layout,
            self.detail_layout,
            self.button_style,
            self.html_style,
        ]

    def column(self, layout: Any) -> tuple[str, ...]:
        """The class of the column ``layout`` stands for (none for other layouts)."""
        column = self._column.get(id(layout))
        return (column,) if column is not None else ()

    def html(self, layout: Any, *classes: str, value: str = "") -> Any:
        # classes passed to the constructor cost nothing; add_class() afterwards would send one more message
        return W.HTML(value=value, layout=layout, style=self.html_style, _dom_classes=(*self.column(layout), *classes))
