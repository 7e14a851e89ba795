"""The live dashboard: :class:`JobTable`, an ipywidgets table of a manager's jobs, and
:func:`render_text`, the same table as plain text for terminals and ``print``.

One row per job: name, kind, schedule, status (coloured, with a progress bar while a worker reports
progress), last run, a live countdown to the next run, run counts, and the buttons that apply now
(Run now, Cancel, Rerun, Pause, Resume, Remove). A row's ▸ toggle shows its run's output and traceback.

How it stays live without polling: the table subscribes to the manager's events, which only mark
rows dirty. One flusher thread per table re-reads the dirty jobs and applies the differences to the
widgets, at most once per ``interval`` (0.1 s); while some row counts down to a next run it also
wakes once per ``tick`` (1 s), and otherwise sleeps until an event comes. Widgets are built once per
job and then only their traits change (several at once batched with ``hold_sync``); rows are added
and removed only when jobs appear and disappear. Making widgets is the slow part, so one update stops
making them after ~0.15 s and leaves the rest to the next (500 rows appear in a few steps). Every
widget mutation, from the flusher or from a click, happens under one lock. A click calls the
manager; a refusal shows as a one-line message above the rows.

This is the only module of the package that imports ipywidgets.
"""

from __future__ import annotations

import hashlib
import html
import logging
import math
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from typing import TYPE_CHECKING, Any

import ipywidgets as W

from jobmanager_nb.errors import JobNotFoundError
from jobmanager_nb.events import Event
from jobmanager_nb.model import JobInfo, JobRun

if TYPE_CHECKING:
    from jobmanager_nb.manager import JobManager

__all__ = ["ACTIONS", "JobRow", "JobTable", "actions_for", "countdown", "css_slug", "duration", "render_text"]

log = logging.getLogger("jobmanager_nb")

ACTIONS = ("run", "rerun", "cancel", "pause", "resume", "remove")
"""Every row action, in the order the buttons appear."""

_LABELS = {
    "run": ("Run now", "Start a run of {name} now", ""),
    "rerun": ("Rerun", "Run the failed one-off job {name} again", "warning"),
    "cancel": ("Cancel", "Cancel the queued or running run of {name}", ""),
    "pause": ("Pause", "Stop firing the schedule of {name} until resumed", ""),
    "resume": ("Resume", "Fire the schedule of {name} again", "info"),
    "remove": ("Remove", "Unregister {name} (a running run is cancelled)", ""),
}

_BULK = 64  # more dirty jobs than this: read them all with one manager.jobs call
_BUILD_SECONDS = 0.15  # a flush stops making new widgets after this long; the rest wait for the next flush
_OUTPUT_TAIL = 20_000  # characters of output shown in an expanded row
_MAX_TEXT_CELL = 40

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


# ----------------------------------------------------------------------------- formatting


def _esc(text: object) -> str:
    return html.escape(str(text), quote=True)


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: max(width - 1, 0)] + "…"


def css_slug(name: str) -> str:
    """A CSS-class-safe form of ``name``: the name itself when it is only ASCII letters, digits, ``_``
    and ``-``; otherwise those characters plus a short hash, so different names never collide."""
    if re.fullmatch(r"[A-Za-z0-9_-]+", name):
        return name
    base = re.sub(r"[^A-Za-z0-9_-]+", "-", name).strip("-")[:40]
    digest = hashlib.sha1(name.encode("utf-8", "surrogatepass")).hexdigest()[:8]
    return f"{base}-{digest}" if base else f"x-{digest}"


def countdown(seconds: float) -> str:
    """``"in 4 s"``, ``"in 3 min"``, ``"in 2 h 5 min"``, ``"in 3 d 4 h"``; ``"due now"`` when half a second
    or less is left (or the moment has passed)."""
    if seconds <= 0.5:
        return "due now"
    if seconds < 60:
        return f"in {math.ceil(seconds - 0.5)} s" if seconds >= 1 else "in 1 s"
    minutes = int(seconds // 60)
    if minutes < 60:
        return f"in {minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"in {hours} h {minutes} min" if minutes else f"in {hours} h"
    days, hours = divmod(hours, 24)
    return f"in {days} d {hours} h" if hours else f"in {days} d"


def duration(seconds: float) -> str:
    """``"<1 ms"``, ``"42 ms"``, ``"1.2 s"``, ``"42 s"``, ``"3 min 5 s"``, ``"2 h 1 min"``."""
    if seconds < 0.0005:
        return "<1 ms"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 10:
        return f"{seconds:.1f} s"
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


def _clock_time(moment: datetime, now: datetime) -> str:
    local, today = moment.astimezone(), now.astimezone()
    if local.date() == today.date():
        return local.strftime("%H:%M:%S")
    return local.strftime("%d %b %H:%M")


def _outcome(run: JobRun) -> str:
    if run.cancelled:
        return "cancelled"
    return run.status


def _last_run_parts(run: JobRun, now: datetime) -> tuple[str, str, str]:
    """(start, duration, outcome) of a finished run."""
    start = _clock_time(run.started_at, now) if run.started_at is not None else "not started"
    took = duration(run.duration) if run.duration is not None else "–"
    return start, took, _outcome(run)


def _next_text(info: JobInfo, now: datetime) -> str:
    if info.paused:
        return "paused"
    if info.next_run is None:
        return "–"
    return countdown((info.next_run - now).total_seconds())


def _runs_text(info: JobInfo) -> str:
    text = str(info.runs)
    if info.skipped:
        text += f" · {info.skipped} skipped"
    return text


def _kind_text(info: JobInfo) -> str:
    return f"{info.kind} · one-off" if info.one_off else info.kind


def actions_for(info: JobInfo) -> tuple[str, ...]:
    """The row actions that apply to ``info`` now, in button order (see :data:`ACTIONS`)."""
    busy = info.current_run is not None
    failed = info.last_run is not None and info.last_run.status == "failed"
    applies = {
        "run": not busy and not info.one_off and info.registered,
        "rerun": not busy and info.one_off and failed,
        "cancel": busy,
        "pause": info.recurring and not info.paused,
        "resume": info.paused,
        "remove": True,
    }
    return tuple(action for action in ACTIONS if applies[action])


def _progress(info: JobInfo) -> tuple[float, str, str | None] | None:
    """The progress a running job reported: (fraction clamped to 0..1, ``"42%"``, label), or None."""
    if info.progress is None or info.current_run is None:
        return None
    fraction, label = info.progress
    fraction = max(0.0, min(1.0, fraction))
    return fraction, f"{fraction * 100:.0f}%", label


def _progress_text(info: JobInfo) -> str:
    progress = _progress(info)
    if progress is None:
        return ""
    _fraction, percent, label = progress
    return f"{percent} {_one_line(label)}" if label else percent


def render_text(manager: JobManager) -> str:
    """The manager's jobs as a plain-text table (for terminals, logs and ``print``)."""
    infos = manager.jobs
    if not infos:
        return "No jobs."
    now = manager.clock.now()
    header = ("NAME", "KIND", "SCHEDULE", "STATUS", "LAST RUN", "NEXT RUN", "RUNS")
    rows: list[tuple[str, ...]] = []
    for info in infos:
        last = " · ".join(_last_run_parts(info.last_run, now)) if info.last_run is not None else "–"
        status: str = info.status
        progress = _progress_text(info)
        if progress:
            status += f" {progress}"
        rows.append(
            (
                _clip(_one_line(info.name), _MAX_TEXT_CELL),
                _kind_text(info),
                _clip(_one_line(info.schedule_description), _MAX_TEXT_CELL),
                _clip(status, 30),
                last,
                _next_text(info, now),
                _runs_text(info),
            )
        )
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header))]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in (header, *rows)
    ]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


# ----------------------------------------------------------------------------- shared widget parts


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


# ----------------------------------------------------------------------------- rows


class JobRow:
    """One job's row, from :meth:`JobTable.row`. ``status`` is its status text and ``buttons`` maps each
    action that applies now to its ``ipywidgets.Button``. Its widgets: ``widget`` (the row's box, classes
    ``jm-row`` and ``jm-row-<slug>``), ``toggle`` (▸), ``ident`` (name, kind, schedule), ``status_html``
    (``jm-status``), ``timing`` (last run, next run, runs), ``buttons_box`` and, once expanded, ``detail``.
    Read them in tests and scripts; the table owns them (do not change them yourself)."""

    def __init__(self, table: JobTable, info: JobInfo) -> None:
        shared = table._shared
        self.name = info.name
        self.slug = css_slug(info.name)
        self._table = table
        self._shared = shared
        self._info = info
        self._buttons: dict[str, Any] = {}
        self._expanded = False
        self._detail: Any = None
        self.toggle = W.Button(
            description="▸",
            tooltip="Show the run's output",
            layout=shared.toggle_layout,
            style=shared.button_style,
            _dom_classes=("jm-toggle",),
        )
        self.toggle.on_click(lambda _button: table._toggle(self.name))
        self.ident = shared.html(shared.ident_layout, "jm-ident")
        self.status_html = shared.html(shared.status_layout, "jm-status")
        self.timing = shared.html(shared.timing_layout, "jm-timing")
        self.buttons_box = W.HBox([], layout=shared.buttons_layout, _dom_classes=("jm-buttons",))
        self.widget = W.HBox(
            [self.toggle, self.ident, self.status_html, self.timing, self.buttons_box],
            layout=shared.row_layout,
            _dom_classes=("jm-row", f"jm-row-{self.slug}"),
        )

    # -- public, read-only view

    @property
    def info(self) -> JobInfo:
        """The job snapshot the row shows now."""
        return self._info

    @property
    def status(self) -> str:
        """The status text shown: ``queued``, ``started``, ``finished``, ``failed``, ``scheduled``,
        ``paused`` or ``idle``."""
        return self._info.status

    @property
    def buttons(self) -> dict[str, Any]:
        """Each action that applies now (``run``, ``cancel``, ``rerun``, ``pause``, ``resume``,
        ``remove``) mapped to its button, in display order."""
        return {action: self._buttons[action] for action in self._actions()}

    @property
    def expanded(self) -> bool:
        return self._expanded

    @property
    def detail(self) -> Any:
        """The HTML widget with the run's output and traceback (None until first expanded)."""
        return self._detail

    @property
    def css_class(self) -> str:
        """The row's own CSS class, ``jm-row-<slug>``."""
        return f"jm-row-{self.slug}"

    def expand(self) -> None:
        """Show the output and traceback of the current (or else the last) run."""
        self._table._set_expanded(self.name, True)

    def collapse(self) -> None:
        self._table._set_expanded(self.name, False)

    def __repr__(self) -> str:
        return f"<JobRow {self.name!r} {self.status} buttons={list(self.buttons)}>"

    # -- updates (called by the table with its lock held)

    def _actions(self) -> tuple[str, ...]:
        return actions_for(self._info)

    def _button(self, action: str) -> Any:
        button = self._buttons.get(action)
        if button is None:
            label, tip, style = _LABELS[action]
            button = W.Button(
                description=label,
                tooltip=tip.format(name=self.name),
                button_style=style,
                layout=self._shared.button_layout,
                style=self._shared.button_style,
                _dom_classes=("jm-btn", f"jm-btn-{action}"),
            )
            button.on_click(lambda _button, action=action: self._table._act(self.name, action))
            self._buttons[action] = button
        return button

    def _needs_widgets(self, info: JobInfo) -> bool:
        return any(action not in self._buttons for action in actions_for(info))

    def _update(self, info: JobInfo, now: datetime) -> None:
        """Show ``info`` (only traits whose value differs are sent)."""
        self._info = info
        _set(self.ident, value=_ident_html(info))
        _set(self.status_html, value=_status_html(info))
        self._tick(now)
        _set(self.buttons_box, children=tuple(self._button(action) for action in actions_for(info)))
        if self._expanded:
            _set(self._detail, value=_detail_html(info, now))

    def _tick(self, now: datetime) -> None:
        _set(self.timing, value=_timing_html(self._info, now))

    def _set_expanded(self, expanded: bool, info: JobInfo | None, now: datetime) -> None:
        shown = info or self._info
        self._expanded = expanded
        if expanded and self._detail is None:
            self._detail = self._shared.html(self._shared.detail_layout, "jm-detail")
        if expanded:
            _set(self._detail, value=_detail_html(shown, now))
        children: tuple[Any, ...] = (self.toggle, self.ident, self.status_html, self.timing, self.buttons_box)
        _set(self.widget, children=(*children, self._detail) if expanded else children)
        _set(self.toggle, description="▾" if expanded else "▸", tooltip="Hide" if expanded else "Show the run's output")

    def _widgets(self) -> Iterator[Any]:
        yield from (self.widget, self.toggle, self.ident, self.status_html, self.timing, self.buttons_box)
        yield from self._buttons.values()
        if self._detail is not None:
            yield self._detail


def _set(widget: Any, **traits: Any) -> None:
    """Assign the traits whose value differs, batched into one message with ``hold_sync``."""
    changed = {key: value for key, value in traits.items() if getattr(widget, key) != value}
    if len(changed) == 1:
        ((key, value),) = changed.items()
        setattr(widget, key, value)
    elif changed:
        with widget.hold_sync():
            for key, value in changed.items():
                setattr(widget, key, value)


def _ident_html(info: JobInfo) -> str:
    name, schedule = info.name, info.schedule_description
    return (
        f'<span class="jm-c jm-c-name" title="{_esc(name)} — {_esc(info.target)}">{_esc(name)}</span>'
        f'<span class="jm-c jm-c-kind">{_esc(_kind_text(info))}</span>'
        f'<span class="jm-c jm-c-schedule" title="{_esc(info.schedule or schedule)}">{_esc(schedule)}</span>'
    )


def _status_html(info: JobInfo) -> str:
    text = f'<span class="jm-s jm-s-{_esc(info.status)}">{_esc(info.status)}</span>'
    progress = _progress(info)
    if progress is not None:
        fraction, percent, label = progress
        tip = f"{percent} {label}" if label else percent
        text += (
            f'<div class="jm-bar jm-progress" data-label="{_esc(percent)}" title="{_esc(tip)}">'
            f'<div style="width:{fraction * 100:.1f}%"></div></div>'
        )
    return text


def _timing_html(info: JobInfo, now: datetime) -> str:
    run = info.last_run
    if run is None:
        last = '<span class="jm-muted">never</span>'
    else:
        start, took, outcome = _last_run_parts(run, now)
        last = f'{_esc(start)} · {_esc(took)} · <span class="jm-o-{_esc(run.status)}">{_esc(outcome)}</span>'
    next_title = _esc(_clock_time(info.next_run, now)) if info.next_run is not None else ""
    runs_title = f"{info.runs} runs, {info.failures} failed, {info.skipped} skipped"
    return (
        f'<span class="jm-c jm-c-last">{last}</span>'
        f'<span class="jm-c jm-c-next" title="{next_title}">{_esc(_next_text(info, now))}</span>'
        f'<span class="jm-c jm-c-runs" title="{runs_title}">{_esc(_runs_text(info))}</span>'
    )


def _detail_html(info: JobInfo, now: datetime) -> str:
    run = info.current_run or info.last_run
    if run is None:
        return '<span class="jm-muted">No run yet.</span>'
    facts = [f"run {run.run_id}", f"attempt {run.attempt}", _outcome(run)]
    if run.started_at is not None:
        facts.append(f"started {_clock_time(run.started_at, now)}")
    if run.duration is not None:
        facts.append(f"took {duration(run.duration)}")
    parts = [f'<div class="jm-muted">{_esc(" · ".join(facts))}</div>']
    output = run.output
    if output:
        skipped = len(output) - _OUTPUT_TAIL
        if skipped > 0:
            output = output[skipped:]
            parts.append(f'<div class="jm-muted">… {skipped} earlier characters not shown</div>')
        parts.append(f'<pre class="jm-output">{_esc(output)}</pre>')
    else:
        parts.append('<div class="jm-muted">No output.</div>')
    if run.error:
        parts.append(f'<pre class="jm-error">{_esc(run.error)}</pre>')
    return "".join(parts)


# ----------------------------------------------------------------------------- the table


class JobTable:
    """A live table of ``manager``'s jobs (the session manager when omitted). Display it (it is the
    last expression of a cell, or ``display(table)``); call :meth:`close` when done with it.

    ``interval`` is the shortest time between two updates of the widgets (0.1 s: at most ten a
    second, however many events arrive); ``tick`` how often countdowns move while a row has one.
    """

    def __init__(self, manager: JobManager | None = None, *, interval: float = 0.1, tick: float = 1.0) -> None:
        if manager is None:
            from jobmanager_nb.session import get_manager

            manager = get_manager()
        if interval <= 0 or tick <= 0:
            raise ValueError("interval and tick must be positive numbers of seconds")
        self._manager = manager
        self._interval = interval
        self._tick_every = tick
        self._lock = threading.RLock()  # every widget mutation happens under it
        self._pending_lock = threading.Lock()
        self._dirty: set[str] = set()
        self._dirty_all = True
        self._expanded_names: set[str] = set()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._closed = False
        self._countdowns = False
        self._rows: dict[str, JobRow] = {}
        self.flushes = 0
        """How many times the widgets were updated (a diagnostic)."""
        self.last_flush_seconds = 0.0
        """How long the last update took (a diagnostic)."""
        self.max_flush_seconds = 0.0
        """The longest update so far (a diagnostic; assign 0 to start measuring again)."""

        self._shared = _Shared()
        style = W.HTML(value=_CSS)
        style.add_class("jm-style")
        self._summary = self._shared.html(W.Layout(), "jm-summary")
        self._message = W.HTML(value="", layout=W.Layout(display="none"))
        self._message.add_class("jm-message")
        header = W.HBox(
            [
                W.Button(  # an invisible twin of the rows' toggles, so the columns line up exactly
                    layout=self._shared.toggle_layout,
                    style=self._shared.button_style,
                    disabled=True,
                    _dom_classes=("jm-toggle", "jm-spacer"),
                ),
                self._shared.html(
                    self._shared.ident_layout,
                    value='<span class="jm-c jm-c-name">job</span><span class="jm-c jm-c-kind">kind</span>'
                    '<span class="jm-c jm-c-schedule">schedule</span>',
                ),
                self._shared.html(self._shared.status_layout, value="status"),
                self._shared.html(
                    self._shared.timing_layout,
                    value='<span class="jm-c jm-c-last">last run</span><span class="jm-c jm-c-next">next run</span>'
                    '<span class="jm-c jm-c-runs">runs</span>',
                ),
                self._shared.html(self._shared.buttons_layout, value="actions"),
            ],
            layout=W.Layout(width="100%", padding="2px 0"),
        )
        header.add_class("jm-header")
        self._body = W.VBox([], layout=W.Layout(width="100%"))
        self._body.add_class("jm-body")
        self.widget = W.VBox([style, self._summary, self._message, header, self._body], layout=W.Layout(width="100%"))
        self.widget.add_class("jm-table")
        self._frame = [style, self._summary, self._message, header, *header.children, self._body, self.widget]

        self._unsubscribe = manager.subscribe(self._on_event)
        self.flush()
        self._thread = threading.Thread(target=self._run, name="jobmanager_nb-dashboard", daemon=True)
        self._thread.start()

    # -- public

    @property
    def manager(self) -> JobManager:
        return self._manager

    @property
    def names(self) -> list[str]:
        """The jobs shown, in row order."""
        with self._lock:
            return list(self._rows)

    def row(self, name: str) -> JobRow:
        """The row of job ``name`` (``JobNotFoundError``, a ``LookupError``, when it has none)."""
        with self._lock:
            row = self._rows.get(name)
        if row is None:
            raise JobNotFoundError(f'The table has no row for "{name}". Rows: {", ".join(self.names) or "none"}.')
        return row

    @property
    def message(self) -> str:
        """The one-line message shown above the rows (the last refused click), or ``""``."""
        return html.unescape(re.sub(r"<[^>]*>", "", self._message.value))

    @property
    def closed(self) -> bool:
        return self._closed

    def flush(self) -> None:
        """Apply the pending changes now (the flusher thread does this by itself)."""
        with self._lock:
            if self._closed:
                return
            with self._pending_lock:
                names, everything = self._dirty, self._dirty_all
                self._dirty, self._dirty_all = set(), False
            started = time.perf_counter()
            try:
                self._apply(names, everything)
            except BaseException:
                with self._pending_lock:
                    self._dirty_all = True  # the next update re-reads everything
                raise
            self.last_flush_seconds = took = time.perf_counter() - started
            self.max_flush_seconds = max(self.max_flush_seconds, took)
            self.flushes += 1

    def refresh(self) -> None:
        """Re-read every job from the manager and update the table now."""
        with self._pending_lock:
            self._dirty_all = True
        self.flush()

    def close(self) -> None:
        """Unsubscribe from the manager, stop the flusher thread and close the widgets."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._unsubscribe()
        self._stop.set()
        self._wake.set()
        if self._thread is not threading.current_thread():
            self._thread.join(30.0)  # only a widget observer that never returns can hold it this long
            if self._thread.is_alive():
                log.warning("jobmanager_nb: the dashboard's update thread is stuck in a widget observer; left running")
        with self._lock:
            for widget in self._all_widgets():
                if widget is not None:
                    widget.close()  # closing a shared layout twice is harmless
            self._rows.clear()

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"{len(self._rows)} rows"
        return f"<JobTable {state}>\n{render_text(self._manager)}"

    def __str__(self) -> str:
        return render_text(self._manager)

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any] | None:
        bundle: dict[str, Any] | None = self.widget._repr_mimebundle_(**kwargs)
        if bundle is not None:
            bundle["text/plain"] = render_text(self._manager)
        return bundle

    # -- events and the flusher

    def _on_event(self, event: Event) -> None:
        """Called by the manager from any thread: only marks the row dirty and wakes the flusher."""
        if event.kind == "output" and event.name not in self._expanded_names:  # a set lookup: atomic
            return  # output is only shown in an expanded row (expanding re-reads the job)
        self._mark(event.name)

    def _mark(self, name: str) -> None:
        with self._pending_lock:
            self._dirty.add(name)
        self._wake.set()

    def _run(self) -> None:
        last = -math.inf
        while True:
            timeout = max(0.0, last + self._tick_every - time.monotonic()) if self._countdowns else None
            self._wake.wait(timeout)
            if self._stop.is_set():
                return
            pause = last + self._interval - time.monotonic()
            if pause > 0 and self._stop.wait(pause):
                return
            self._wake.clear()
            try:
                self.flush()
            except Exception:
                log.exception("jobmanager_nb: the dashboard could not update")
            last = time.monotonic()

    def _apply(self, names: set[str], everything: bool) -> None:
        manager = self._manager
        removed: list[str] = []
        if everything or len(names) > _BULK or not names <= self._rows.keys():  # new rows: keep manager order
            infos = manager.jobs
            present = {info.name for info in infos}
            removed = [name for name in self._rows if name not in present]
            if not everything:
                infos = [info for info in infos if info.name in names or info.name not in self._rows]
        else:
            infos = []
            for name in names:
                try:
                    infos.append(manager.job(name))
                except JobNotFoundError:
                    if name in self._rows:
                        removed.append(name)
        now = manager.clock.now()
        added = 0
        later: list[str] = []
        build_until = time.perf_counter() + _BUILD_SECONDS
        for info in infos:
            row = self._rows.get(info.name)
            if (row is None or row._needs_widgets(info)) and time.perf_counter() > build_until:
                later.append(info.name)  # making widgets is the slow part: keep each flush (and the lock) short
                continue
            if row is None:
                row = self._rows[info.name] = JobRow(self, info)
                added += 1
            row._update(info, now)
        if later:
            with self._pending_lock:
                self._dirty.update(later)
            self._wake.set()
        for name in removed:
            row = self._rows.pop(name)
            self._expanded_names.discard(name)
            for widget in row._widgets():
                widget.close()
        if added or removed:
            self._body.children = tuple(row.widget for row in self._rows.values())
        countdowns = False
        for row in self._rows.values():
            shown = row.info
            if shown.next_run is not None and not shown.paused:
                countdowns = True
                if shown.name not in names:
                    row._tick(now)
        self._countdowns = countdowns
        _set(self._summary, value=_summary_html(row.info for row in self._rows.values()))

    # -- clicks (on the kernel's thread)

    def _act(self, name: str, action: str) -> None:
        manager = self._manager
        calls: dict[str, Callable[[str], object]] = {
            "run": manager.run_now,
            "rerun": manager.rerun,
            "cancel": manager.cancel,
            "pause": manager.pause,
            "resume": manager.resume,
            "remove": manager.remove_job,
        }
        try:
            calls[action](name)
        except Exception as exc:  # a refused click is a message, never a traceback
            log.debug("jobmanager_nb: %s %r refused", action, name, exc_info=True)
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            self._say(f"Could not {action} {name}: {first}")
        else:
            self._say("")
        self._mark(name)

    def _say(self, text: str) -> None:
        with self._lock:
            if self._closed:
                return
            _set(self._message, value=f"⚠ {_esc(_one_line(text))}" if text else "")
            _set(self._message.layout, display=None if text else "none")

    def _toggle(self, name: str) -> None:
        with self._lock:
            row = self._rows.get(name)
            expanded = row is not None and row.expanded
        self._set_expanded(name, not expanded)

    def _set_expanded(self, name: str, expanded: bool) -> None:
        try:
            info: JobInfo | None = self._manager.job(name)
        except JobNotFoundError:
            info = None
        with self._lock:
            row = self._rows.get(name)
            if row is None or self._closed:
                return
            if expanded:
                self._expanded_names.add(name)
            else:
                self._expanded_names.discard(name)
            row._set_expanded(expanded, info, self._manager.clock.now())

    def _all_widgets(self) -> Iterator[Any]:
        for row in self._rows.values():
            yield from row._widgets()
        for widget in self._frame:
            yield from (widget, widget.layout, getattr(widget, "style", None))
        yield from self._shared.widgets


def _summary_html(infos: Iterable[JobInfo]) -> str:
    counts: dict[str, int] = {}
    total = 0
    for info in infos:
        total += 1
        counts[info.status] = counts.get(info.status, 0) + 1
    if total == 0:
        return '<span class="jm-muted">No jobs yet.</span>'
    parts = [f"{total} job{'s' if total != 1 else ''}"]
    for status in ("started", "queued", "retrying", "failed", "cancelled", "paused", "scheduled"):
        if counts.get(status):
            parts.append(f'<span class="jm-o-{status}">{counts[status]} {status}</span>')
    return " · ".join(parts)
