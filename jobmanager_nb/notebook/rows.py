"""One job's row of the dashboard: :class:`JobRow`, the HTML of its cells, and the actions that apply to it.

A row is one ``HBox`` laid out as a grid (:mod:`jobmanager_nb.notebook.styles`): the ▸ toggle; an ``HTML`` cell
with the name (and an ``earlier kernel`` tag for a one-off only the store knows), kind, schedule and the recent
runs as a strip of marks; one with the state (a badge, then what the run state machine knows: a progress bar
with percent, caption, elapsed time and estimate, why a queued run waits, a retry's countdown); one with the
last run and the next; and a button for each action of :func:`actions_for` (Run now, Rerun, Cancel, Pause,
Resume, Remove, in the order of :data:`ACTIONS`), or for an earlier kernel's one-off that cannot be rerun, the
reason. :func:`header_cells` are the column titles, in the same grid. Expanded, a row also shows the current
(or else the last) run's facts, the last ~20,000 characters of its output and its traceback (without IPython's
and jobmanager_nb's own frames), and above them the recent runs as a list, where each run whose output or error
the manager still keeps (``JobManager.runs``) opens (an HTML ``<details>``) to show them. The list is its own
widget, re-rendered only when the job's ended runs change, so an opened run stays open while the live run's
output streams in.

Where runs run: the kind says the job's executor (``offloaded on dask``); a run going somewhere other than this
machine (a Dask worker) shows its address after the state (``jm-where``, a link to the executor's dashboard page
when it has one, ``Executor.dashboard_link``), and the badge's tooltip says where any started run runs. Expanded,
the run's facts say where it ran and on which executor (with that link), and each recent run says where it ran.

The words are :mod:`jobmanager_nb.notebook.text`'s, HTML-escaped here (:func:`_esc`).

The strip: one mark per recent run (``JobInfo.recent``), oldest on the left; a finished run rises above the
axis, a failed one (also timed out or lost) hangs below it, a cancelled one is a dash on it, so the outcome
reads without colour; a mark's height is the run's duration relative to the job's slowest recent run; hover
gives its start, duration, outcome and error line.

A row's widgets are made once (a button when its action first applies) and then only updated:
:func:`_set` assigns just the traits whose value differs, several at once batched with ``hold_sync``.
The table (:mod:`jobmanager_nb.notebook.table`) owns its rows: it calls ``_update`` and, once a second for the
rows whose words move with time (``_ticks``), ``_tick``, with its lock held, and handles their clicks.
"""

from __future__ import annotations

import html
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

import ipywidgets as W

from jobmanager_nb.model import JobInfo, JobRun, RunMark
from jobmanager_nb.notebook.text import (
    OUTCOME_WORDS,
    _clock_time,
    _inline_holders,
    _is_remote,
    _kernel_loop,
    _kind_text,
    _last_run_parts,
    _marks,
    _next_text,
    _origin_tag,
    _outcome,
    _progress,
    _state,
    _ticks,
    _where,
    css_slug,
    duration,
    user_traceback,
)

if TYPE_CHECKING:
    from jobmanager_nb.notebook.styles import _Shared
    from jobmanager_nb.notebook.table import JobTable

__all__ = ["ACTIONS", "JobRow", "actions_for", "header_cells"]

ACTIONS = ("run", "rerun", "cancel", "pause", "resume", "remove")
"""Every row action, in the order the buttons appear."""

_LABELS = {
    "run": ("Run now", "Start a run of {name} now", ""),
    "rerun": ("Rerun", "Run the one-off job {name} again", "warning"),
    "cancel": ("Cancel", "Cancel the queued or running run of {name}", ""),
    "pause": ("Pause", "Stop firing the schedule of {name} until resumed", ""),
    "resume": ("Resume", "Fire the schedule of {name} again", "info"),
    "remove": ("Remove", "Unregister {name} (a running run is cancelled)", ""),
}
_EARLIER_REMOVE_TIP = "Hide {name} from this table (the store keeps its record)"

_OUTPUT_TAIL = 20_000  # characters of output shown in an expanded row, and of each past run's
_HISTORY_RUNS = 20  # ended runs read from the manager for an expanded row's list (JobInfo.recent keeps as many)

_MARK_SHAPE = {"finished": "jm-m-up", "failed": "jm-m-down", "timed_out": "jm-m-down", "lost": "jm-m-down"}
_MARK_LOW, _MARK_HIGH = 8, 48  # a mark's height, in % of the strip (half of it is one side of the axis)


def _esc(text: object) -> str:
    return html.escape(str(text), quote=True)


def actions_for(info: JobInfo) -> tuple[str, ...]:
    """The row actions that apply to ``info`` now, in button order (see :data:`ACTIONS`).

    An earlier kernel's one-off (``info.origin == "earlier kernel"``) is not this manager's job: it gets Rerun
    when it ended failed or cancelled and can be rerun from here (``rerun_hint`` is None), and Remove, which
    hides its row; one still going in another kernel gets only Remove."""
    busy = info.current_run is not None
    ended_badly = info.last_run is not None and info.last_run.status == "failed"
    if info.origin == "earlier kernel":
        rerun = not busy and ended_badly and info.rerun_hint is None
        return ("rerun", "remove") if rerun else ("remove",)
    applies = {
        "run": not busy and not info.one_off and info.registered,
        "rerun": not busy and info.one_off and ended_badly,
        "cancel": busy,
        "pause": info.recurring and not info.paused,
        "resume": info.paused,
        "remove": True,
    }
    return tuple(action for action in ACTIONS if applies[action])


def header_cells(shared: _Shared) -> list[Any]:
    """The column titles, as the cells of the header's grid (the same columns as every row)."""
    return [
        W.Button(  # an invisible twin of the rows' toggles
            layout=shared.toggle_layout,
            style=shared.button_style,
            disabled=True,
            _dom_classes=("jm-toggle", "jm-spacer"),
        ),
        shared.html(
            shared.ident_layout,
            value='<span class="jm-c jm-c-name">job</span><span class="jm-c jm-c-kind">kind</span>'
            '<span class="jm-c jm-c-schedule">schedule</span><span class="jm-c jm-c-hist">runs</span>',
        ),
        shared.html(shared.status_layout, value='<span class="jm-c">status</span>'),
        shared.html(
            shared.timing_layout,
            value='<span class="jm-c jm-c-last">last run</span><span class="jm-c jm-c-next">next run</span>',
        ),
        shared.html(shared.buttons_layout, value='<span class="jm-c">actions</span>'),
    ]


class JobRow:
    """One job's row, from :meth:`JobTable.row`. ``status`` is the job's status (``JobInfo.status``), ``state``
    the words its status cell shows, and ``buttons`` maps each action that applies now to its
    ``ipywidgets.Button``. Its widgets: ``widget`` (the row's box, classes ``jm-row`` and ``jm-row-<slug>``),
    ``toggle`` (▸), ``ident`` (name, kind, schedule, recent runs), ``status_html`` (``jm-status``), ``timing``
    (last run, next run), ``buttons_box`` and, once expanded, ``detail``. Read them in tests and scripts; the
    table owns them (do not change them yourself)."""

    def __init__(self, table: JobTable, info: JobInfo) -> None:
        shared = table._shared
        self.name = info.name
        self.slug = css_slug(info.name)
        self._table = table
        self._shared = shared
        self._info = info
        self._state_text = ""
        self._worded: tuple[JobInfo, datetime] | None = None  # what _tick last worded, and for when
        self._buttons: dict[str, Any] = {}
        self._hint: Any = None
        self._expanded = False
        self._detail: Any = None
        self._pane: Any = None
        self._history: Any = None
        self._history_key: tuple[str, ...] | None = None  # the run ids self._history shows
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
        self.buttons_box = W.HBox(
            [], layout=shared.buttons_layout, _dom_classes=(*shared.column(shared.buttons_layout), "jm-buttons")
        )
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
        """The job's status, ``JobInfo.status``: ``scheduled``, ``queued``, ``started``, ``retrying``,
        ``finished``, ``failed``, ``cancelled``, ``paused`` or ``idle``."""
        return self._info.status

    @property
    def state(self) -> str:
        """The words of the status cell, as :func:`~jobmanager_nb.notebook.text.state_text` gives them:
        ``failed``, ``queued · waiting for the running cell``, ``retrying in 4 s``, ``paused · running``,
        ``started · 42% · loading 3/7 · 12 s · ~16 s left`` ..."""
        return self._state_text

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
    def history(self) -> Any:
        """The HTML widget with the recent runs (class ``jm-detail-runs``, above :attr:`detail`), newest first,
        each one whose output or error is kept in a ``<details>`` that opens to show them (None until first
        expanded). It is re-rendered only when the job's ended runs change."""
        return self._history

    @property
    def pane(self) -> Any:
        """The expanded part's box (class ``jm-detail``), in the row while expanded: it scrolls, from its end,
        and holds :attr:`history` and :attr:`detail` (None until first expanded)."""
        return self._pane

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
            if action == "remove" and self._info.origin == "earlier kernel":
                tip = _EARLIER_REMOVE_TIP
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

    def _hint_widget(self, hint: str | None) -> tuple[Any, ...]:
        """The reason an earlier kernel's one-off cannot be rerun from here, shown before its buttons."""
        if not hint:
            return ()
        text = f'<span class="jm-hint" title="{_esc(hint)}">{_esc(hint)}</span>'
        if self._hint is None:
            self._hint = self._shared.html(self._shared.button_layout, "jm-hint-cell", value=text)
        else:
            _set(self._hint, value=text)
        return (self._hint,)

    def _needs_widgets(self, info: JobInfo) -> bool:
        return any(action not in self._buttons for action in actions_for(info))

    def _ticks(self) -> bool:
        """Whether the row's words move with time (a countdown, a run's elapsed time): the table then calls
        :meth:`_tick` once a second."""
        return _ticks(self._info)

    def _update(self, info: JobInfo, now: datetime) -> None:
        """Show ``info`` (only traits whose value differs are sent)."""
        self._info = info
        _set(self.ident, value=_ident_html(info, now, self._link(info) if info.kind == "offloaded" else None))
        self._tick(now)
        hint = info.rerun_hint if info.origin == "earlier kernel" and "rerun" not in actions_for(info) else None
        buttons = tuple(self._button(action) for action in actions_for(info))
        _set(self.buttons_box, children=(*self._hint_widget(hint), *buttons))
        if self._expanded:
            _set(self._detail, value=_detail_html(info, now, self._link(info)))
            self._show_history(info, now)

    def _tick(self, now: datetime) -> None:
        """Re-word what moves with time: the status (elapsed time, countdowns) and the timing cell."""
        info = self._info
        if self._worded is not None and self._worded[0] is info and self._worded[1] == now:
            return  # worded already in this update
        self._worded = (info, now)
        busy: list[str] = []
        run = info.current_run
        if run is not None and run.phase == "dispatched" and run.kind == "inline":  # what holds it, by name
            shown = (row.info for row in self._table._rows.values())
            busy = [name for name in _inline_holders(self._table.manager, shown) if name != self.name]
        badge, after, details = _state(info, now, busy, _kernel_loop(self._table.manager))
        self._state_text = " · ".join([badge + after, *details])
        link = self._table._executor_link(info.executor) if _is_remote(run) else None
        _set(self.status_html, value=_status_html(info, badge, after, details, link))
        _set(self.timing, value=_timing_html(info, now))

    def _set_expanded(self, expanded: bool, info: JobInfo | None, now: datetime) -> None:
        shown = info or self._info
        self._expanded = expanded
        if expanded and self._detail is None:
            self._detail = self._shared.html(self._shared.detail_layout, "jm-detail-text")
            anchor = self._shared.html(self._shared.detail_layout, "jm-anchor")  # see the stylesheet's .jm-detail
            self._history = self._shared.html(self._shared.detail_layout, "jm-detail-runs")
            self._pane = W.VBox(  # column-reverse: the anchor at the bottom, the list of runs on top
                [anchor, self._detail, self._history], layout=self._shared.detail_layout, _dom_classes=("jm-detail",)
            )
        if expanded:
            _set(self._detail, value=_detail_html(shown, now, self._link(shown)))
            self._show_history(shown, now)
        children: tuple[Any, ...] = (self.toggle, self.ident, self.status_html, self.timing, self.buttons_box)
        _set(self.widget, children=(*children, self._pane) if expanded else children)
        _set(self.toggle, description="▾" if expanded else "▸", tooltip="Hide" if expanded else "Show the run's output")

    def _link(self, info: JobInfo) -> str | None:
        """The web page of the job's executor (a Dask dashboard), or None."""
        return self._table._executor_link(info.executor)

    def _show_history(self, info: JobInfo, now: datetime) -> None:
        """Re-render the list of recent runs when the runs it lists changed (not on the live run's output: that
        would close a run the user opened); only then are the runs read from the manager."""
        marks = _history_marks(info)
        key = tuple(mark.run_id for mark in marks)
        if key == self._history_key:
            return
        runs = self._table.manager.runs(self.name, limit=_HISTORY_RUNS) if marks else []
        _set(self._history, value=_history_html(marks, runs, now))
        self._history_key = key

    def _widgets(self) -> Iterator[Any]:
        yield from (self.widget, self.toggle, self.ident, self.status_html, self.timing, self.buttons_box)
        yield from self._buttons.values()
        if self._hint is not None:
            yield self._hint
        if self._pane is not None:
            yield from (self._pane, *self._pane.children)


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


def _ident_html(info: JobInfo, now: datetime, link: str | None = None) -> str:
    """The name, the kind (``offloaded on dask``: the executor's name links to ``link``, its web page, when there
    is one), the schedule, and the run count with the strip of recent runs."""
    name, schedule = info.name, info.schedule_description
    runs_title = f"{info.runs} runs, {info.failures} failed, {info.skipped} skipped"
    skipped = f'<span class="jm-skipped">· {info.skipped} skipped</span>' if info.skipped else ""
    return (
        f'<span class="jm-c jm-c-name" title="{_esc(name)} — {_esc(info.target)}">{_esc(name)}</span>'
        f'<span class="jm-c jm-c-kind">{_kind_html(info, link)}</span>'
        f'<span class="jm-c jm-c-schedule" title="{_esc(info.schedule or schedule)}">{_esc(schedule)}</span>'
        f'<span class="jm-c jm-c-hist" title="{runs_title}"><span class="jm-c jm-c-runs">{info.runs}</span>'
        f"{_strip_html(info, now)}{skipped}</span>"
    )


def _kind_html(info: JobInfo, link: str | None) -> str:
    """:func:`_kind_text`, escaped, with the executor's name a link to its web page when it has one."""
    text = _esc(_kind_text(info))
    if not link or not info.executor:
        return text
    name = _esc(info.executor)
    anchor = f'<a href="{_esc(link)}" target="_blank" rel="noopener" title="{_esc(link)}">{name}</a>'
    return text.replace(f"on {name}", f"on {anchor}", 1)


def _strip_html(info: JobInfo, now: datetime) -> str:
    """The recent runs as marks: up for finished, down for failed, a dash for cancelled; height by duration."""
    marks = []
    for outcome, relative, title in _marks(info, now):
        shape = _MARK_SHAPE.get(outcome)
        if shape is None:  # cancelled
            marks.append(f'<i class="jm-m jm-m-dash jm-m-{outcome}" title="{_esc(title)}"></i>')
            continue
        height = _MARK_LOW + (_MARK_HIGH - _MARK_LOW) * relative
        marks.append(f'<i class="jm-m {shape} jm-m-{outcome}" style="height:{height:.0f}%" title="{_esc(title)}"></i>')
    if not marks:
        return ""
    label = f"the last {len(marks)} runs" if len(marks) > 1 else "the last run"
    return f'<span class="jm-strip" role="img" aria-label="{label}">{"".join(marks)}</span>'


def _status_html(info: JobInfo, badge: str, after: str, details: list[str], link: str | None = None) -> str:
    """The badge and the words after it (``in 4 s`` after a retrying badge, the details after ``·``), then an
    earlier kernel's tag, then where a run going on another machine runs (``jm-where``: a link to ``link``, its
    executor's page, when there is one). A run reporting progress shows, instead of a ``started`` badge, its words
    over a bar as wide as the column (a paused one keeps its ``paused`` badge before them). The cell's text is the
    state's words (without the ``started`` of a run with a bar); the badge's tooltip (the bar's, for a run with one)
    says where the run runs."""
    progress = _progress(info) if badge in ("started", "paused") else None
    run = info.current_run
    where = _where(run.location) if run is not None and run.phase == "started" else ""
    parts = []
    if progress is None or badge != "started":
        title = f' title="{_esc(badge)} · on {_esc(where)}"' if where else ""
        parts.append(f'<span class="jm-s jm-s-{_esc(badge)}"{title}>{_esc(badge)}</span>')
    if progress is not None:
        fraction, percent, _label = progress
        words = " · ".join(details)
        title = f"{words} · on {where}" if where and badge == "started" else words  # the bar stands for the badge
        parts.append(
            f'<span class="jm-prog" title="{_esc(title)}"><span class="jm-cap">{_esc(words)}</span>'
            f'<span class="jm-bar jm-progress" data-label="{_esc(percent)}">'
            f'<span style="width:{fraction * 100:.1f}%"></span></span></span>'
        )
    else:
        words = " · ".join([after.strip(), *details]) if after.strip() else " · ".join(["", *details]).strip()
        if words:
            parts.append(f'<span class="jm-cap" title="{_esc(words.lstrip("· "))}">{_esc(words)}</span>')
    tag = _origin_tag(info)
    if tag is not None:
        parts.append(f'<span class="jm-tag">{_esc(tag)}</span>')
    if _is_remote(run):
        assert run is not None
        title = f"on {run.location} (executor {info.executor})" if info.executor else f"on {run.location}"
        text = _esc(where)
        if link:
            title += f" · open {link}"
            text = f'<a href="{_esc(link)}" target="_blank" rel="noopener">{text}</a>'
        parts.append(f'<span class="jm-where" title="{_esc(title)}">{text}</span>')
    return " ".join(parts)


def _timing_html(info: JobInfo, now: datetime) -> str:
    run = info.last_run
    if run is None:
        last = '<span class="jm-muted">never</span>'
        last_title = ""
    else:
        start, took, outcome = _last_run_parts(run, now)
        last = (
            f'{_esc(start)}<span class="jm-took"> · {_esc(took)}</span> · '
            f'<span class="jm-o-{_outcome_class(run.outcome, run.status)}">{_esc(outcome)}</span>'
        )
        last_title = _esc(f"{start} · {took} · {outcome}")
    next_title = _esc(_clock_time(info.next_run, now)) if info.next_run is not None else ""
    if info.schedule_description:
        next_title = _esc(info.schedule_description) + (f" · {next_title}" if next_title else "")
    return (
        f'<span class="jm-c jm-c-last" title="{last_title}">{last}</span>'
        f'<span class="jm-c jm-c-next" title="{next_title}">{_esc(_next_text(info, now))}</span>'
    )


def _outcome_class(outcome: str | None, status: str) -> str:
    """The CSS class suffix of an outcome's colour: ``finished`` (green), ``cancelled`` (plain), else ``failed``."""
    if outcome in ("finished", "cancelled"):
        return outcome
    return "finished" if outcome is None and status == "finished" else "failed"


def _history_marks(info: JobInfo) -> tuple[RunMark, ...]:
    """The ended runs the expanded row lists: none when the only one is the last run, which the pane shows."""
    if len(info.recent) < 2 and info.current_run is None:
        return ()
    return info.recent


def _history_html(marks: Sequence[RunMark], runs: Sequence[JobRun], now: datetime) -> str:
    """The recent runs as a list, newest first: start, duration, outcome, error line; a run whose output or error
    is known (in ``runs``, by run id) is a ``<details>`` that opens to show them."""
    if not marks:
        return ""
    by_id = {run.run_id: run for run in runs}
    items = []
    for mark in reversed(marks):
        start = _clock_time(mark.started_at, now) if mark.started_at is not None else "not started"
        took = duration(mark.duration) if mark.duration is not None else "–"
        css = _outcome_class(mark.outcome, "failed")
        where = _where(mark.location)
        line = (
            f'<span class="jm-run-start">{_esc(start)}</span><span class="jm-run-took">{_esc(took)}</span>'
            f'<span class="jm-run-outcome jm-o-{css}">{_esc(OUTCOME_WORDS[mark.outcome])}</span>'
            f'<span class="jm-run-where" title="{_esc(mark.location or "")}">{_esc(where)}</span>'
            f'<span class="jm-run-line">{_esc(mark.error_line or "")}</span>'
        )
        run = by_id.get(mark.run_id)
        body = _run_body(run) if run is not None else ""
        data = f'class="jm-run" data-run="{_esc(mark.run_id)}"'
        items.append(
            f"<details {data}><summary>{line}</summary>{body}</details>" if body else f"<div {data}>{line}</div>"
        )
    return f'<div class="jm-muted">Recent runs, newest first:</div><div class="jm-history">{"".join(items)}</div>'


def _run_body(run: JobRun) -> str:
    """A past run's output (its last :data:`_OUTPUT_TAIL` characters) and traceback, or "" when neither is kept."""
    parts = []
    output = run.output or ""
    skipped = len(output) - _OUTPUT_TAIL
    if skipped > 0:
        output = output[skipped:]
        parts.append(f'<div class="jm-muted">… {skipped} earlier characters not shown</div>')
    if output:
        parts.append(f'<pre class="jm-run-output">{_esc(output)}</pre>')
    if run.error:
        parts.append(f'<pre class="jm-run-error">{_esc(user_traceback(run.error))}</pre>')
    return "".join(parts)


def _detail_html(info: JobInfo, now: datetime, link: str | None = None) -> str:
    """The expanded part: the run's facts (where it ran, on which executor, and a link to ``link``, the executor's
    page, when there is one), the output, the traceback (the recent runs are :func:`_history_html`'s, in a widget of
    their own above). Its newest line is last, so the pane, which scrolls from its end, shows it (see the
    stylesheet's ``.jm-detail``)."""
    run = info.current_run or info.last_run
    if run is None:
        return '<span class="jm-muted">No run yet.</span>'
    facts = [f"run {run.run_id}"]
    if run.attempt > 1:  # a retry of the same run (a rerun is a new run, at attempt 1)
        facts.append(f"attempt {run.attempt}")
    facts.append(run.phase if run is info.current_run else _outcome(run))
    if run.started_at is not None:
        facts.append(f"started {_clock_time(run.started_at, now)}")
    if run.duration is not None:
        facts.append(f"took {duration(run.duration)}")
    if run.location:
        facts.append(f"on {run.location}")
    if info.executor:
        facts.append(f"executor {info.executor}")
    page = ""
    if link:
        anchor = f'<a class="jm-link" href="{_esc(link)}" target="_blank" rel="noopener">'
        page = f" · {anchor}{_esc(info.executor)} dashboard</a>"
    parts = [f'<div class="jm-muted jm-facts">{_esc(" · ".join(facts))}{page}</div>']
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
        parts.append(f'<pre class="jm-error">{_esc(user_traceback(run.error))}</pre>')
    return "".join(parts)
