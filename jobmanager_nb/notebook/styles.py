"""How the dashboard looks: its stylesheet, its column widths, and the layouts and styles every row shares.

``_CSS`` is one ``<style>`` block, shown once per table (an ``HTML`` widget with class ``jm-style``); every
rule is scoped under ``.jm-table``. Text, border and background colours come from the front end's
``--jp-*`` theme variables, with a fallback for renderers that have none; the status badges and outcomes
have fixed colours. The header and every row use the same column widths (``_W_*``, in px), so the
columns line up; a cell's text is clipped with an ellipsis rather than wrapped.

:class:`_Shared` holds the ipywidgets layouts and styles of the rows: one model each, made once per table
rather than once per row (500 rows would otherwise add thousands of models). Its :meth:`_Shared.html` makes
an ``HTML`` widget with its CSS classes given at construction, which costs no extra message.
"""

from __future__ import annotations

from typing import Any

import ipywidgets as W

# Column widths in px; the header and every row use the same ones, so columns line up.
_W_TOGGLE, _W_NAME, _W_KIND, _W_SCHEDULE = 28, 170, 110, 190
_W_STATUS, _W_LAST, _W_NEXT, _W_RUNS = 90, 200, 100, 90

_CSS = f"""
<style>
.jm-table {{ font-size: 12.5px; line-height: 1.35; }}
.jm-table .jm-summary {{ color: var(--jp-ui-font-color1, #222); font-weight: 600; }}
.jm-table .jm-message .widget-html-content {{ color: #b91c1c; white-space: nowrap; overflow: hidden;
  text-overflow: ellipsis; }}
.jm-table .jm-header {{ border-bottom: 1px solid var(--jp-border-color1, #bbb); font-weight: 600;
  color: var(--jp-ui-font-color2, #555); }}
.jm-table .jm-row {{ border-bottom: 1px solid var(--jp-border-color2, #e5e5e5); align-items: center; }}
.jm-table .jm-row:hover {{ background: var(--jp-layout-color2, #f6f6f6); }}
.jm-table .widget-html, .jm-table .widget-html-content {{ margin: 0; height: auto; line-height: 1.35; }}
.jm-table .jm-c {{ display: inline-block; vertical-align: middle; overflow: hidden; white-space: nowrap;
  text-overflow: ellipsis; padding-right: 8px; box-sizing: border-box; }}
.jm-table .jm-c-name {{ width: {_W_NAME}px; font-weight: 600; }}
.jm-table .jm-c-kind {{ width: {_W_KIND}px; color: var(--jp-ui-font-color2, #555); }}
.jm-table .jm-c-schedule {{ width: {_W_SCHEDULE}px; }}
.jm-table .jm-c-last {{ width: {_W_LAST}px; }}
.jm-table .jm-c-next {{ width: {_W_NEXT}px; font-variant-numeric: tabular-nums; }}
.jm-table .jm-c-runs {{ width: {_W_RUNS}px; font-variant-numeric: tabular-nums; }}
.jm-table .jm-muted {{ color: var(--jp-ui-font-color3, #888); }}
.jm-table .jm-s {{ display: inline-block; padding: 0 6px; border-radius: 8px; font-weight: 600;
  color: #fff; }}
.jm-table .jm-s-scheduled {{ background: #0e7490; }}
.jm-table .jm-s-queued {{ background: #6b7280; }}
.jm-table .jm-s-started {{ background: #1d4ed8; }}
.jm-table .jm-s-finished {{ background: #15803d; }}
.jm-table .jm-s-failed {{ background: #b91c1c; }}
.jm-table .jm-s-paused {{ background: #b45309; }}
.jm-table .jm-s-retrying {{ background: #6d28d9; }}
.jm-table .jm-s-cancelled {{ background: #4b5563; }}
.jm-table .jm-s-idle {{ background: #9ca3af; }}
.jm-table .jm-o-finished {{ color: #15803d; }}
.jm-table .jm-o-failed {{ color: #b91c1c; }}
.jm-table .jm-bar {{ position: relative; height: 12px; margin-top: 2px; width: {_W_STATUS - 10}px;
  background: var(--jp-layout-color3, #ddd); border-radius: 3px; overflow: hidden; }}
.jm-table .jm-bar > div {{ height: 100%; background: #1d4ed8; }}
.jm-table .jm-bar::after {{ content: attr(data-label); position: absolute; inset: 0; font-size: 10px;
  line-height: 12px; text-align: center; color: #111; }}
.jm-table .jm-btn {{ height: 24px; line-height: 22px; padding: 0 8px; margin: 1px 3px 1px 0;
  font-size: 12px; width: auto; }}
.jm-table .jm-toggle {{ width: {_W_TOGGLE - 4}px; height: 22px; padding: 0; margin: 0 4px 0 0;
  background: transparent; }}
.jm-table .jm-spacer {{ visibility: hidden; }}
.jm-table .jm-detail {{ width: 100%; }}
.jm-table .jm-detail pre {{ max-height: 18em; overflow: auto; margin: 2px 0 6px 0; padding: 4px 6px;
  background: var(--jp-layout-color2, #f3f3f3); font-size: 12px; white-space: pre-wrap; }}
.jm-table .jm-detail pre.jm-error {{ background: #fdecec; color: #7f1d1d; }}
</style>
"""


class _Shared:
    """Layouts and styles every row shares (one model each, not one per row)."""

    def __init__(self) -> None:
        self.row_layout = W.Layout(flex_flow="row wrap", align_items="center", width="100%", padding="2px 0")
        self.toggle_layout = W.Layout(width=f"{_W_TOGGLE - 4}px")
        self.ident_layout = W.Layout(width=f"{_W_NAME + _W_KIND + _W_SCHEDULE}px")
        self.status_layout = W.Layout(width=f"{_W_STATUS}px")
        self.timing_layout = W.Layout(width=f"{_W_LAST + _W_NEXT + _W_RUNS}px")
        self.buttons_layout = W.Layout(flex="1 1 auto", flex_flow="row wrap", align_items="center")
        self.button_layout = W.Layout(width="auto", height="24px")
        self.detail_layout = W.Layout(width="100%", padding="2px 0 4px 28px")
        self.button_style = W.ButtonStyle()
        probe = W.HTML()  # ipywidgets does not export HTMLStyle: borrow the style of a throwaway HTML
        self.html_style = probe.style
        probe.close()
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

    def html(self, layout: Any, *classes: str, value: str = "") -> Any:
        # classes passed to the constructor cost nothing; add_class() afterwards would send one more message
        return W.HTML(value=value, layout=layout, style=self.html_style, _dom_classes=classes)
