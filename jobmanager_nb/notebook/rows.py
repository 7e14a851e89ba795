"""One job's row of the dashboard: :class:`JobRow`, the HTML of its cells, and the actions that apply to it.

A row is one ``HBox``: the ▸ toggle, an ``HTML`` cell with name, kind and schedule, one with the status (and a
progress bar while a worker reports progress), one with last run, next run and run counts, and a button for
each action of :func:`actions_for` (Run now, Rerun, Cancel, Pause, Resume, Remove, in the order of
:data:`ACTIONS`). Expanded, it also shows the current (or else the last) run's facts, the last ~20,000
characters of its output and its traceback. The text in the cells is worded by
:mod:`jobmanager_nb.notebook.text`, HTML-escaped here (:func:`_esc`).

A row's widgets are made once (a button when its action first applies) and then only updated:
:func:`_set` assigns just the traits whose value differs, several at once batched with ``hold_sync``.
The table (:mod:`jobmanager_nb.notebook.table`) owns its rows: it calls ``_update`` and ``_tick`` with its
lock held and handles their clicks.
"""

from __future__ import annotations

import html
from collections.abc import Iterator
from datetime import datetime
from typing import TYPE_CHECKING, Any

import ipywidgets as W

from jobmanager_nb.model import JobInfo
from jobmanager_nb.notebook.text import (
    _clock_time,
    _kind_text,
    _last_run_parts,
    _next_text,
    _outcome,
    _progress,
    _runs_text,
    css_slug,
    duration,
)

if TYPE_CHECKING:
    from jobmanager_nb.notebook.table import JobTable

__all__ = ["ACTIONS", "JobRow", "actions_for"]

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

_OUTPUT_TAIL = 20_000  # characters of output shown in an expanded row


def _esc(text: object) -> str:
    return html.escape(str(text), quote=True)


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
