"""The dashboard's live table: :class:`JobTable`, what it shows and how it follows the manager.

A table is a header, a one-line summary (``5 jobs · 1 started · 1 failed``), a one-line message (the last
refused click) and one :class:`~jobmanager_nb.notebook.rows.JobRow` per job, in the manager's order.

How it stays live without polling: the table subscribes to the manager's events, which only mark
rows dirty. One flusher thread per table re-reads the dirty jobs and applies the differences to the
widgets, at most once per ``interval`` (0.1 s); while some row counts down to a next run it also
wakes once per ``tick`` (1 s), and otherwise sleeps until an event comes. Output events only matter to
an expanded row. Rows are added and removed only when jobs appear and disappear; many dirty jobs (or new
ones) are read with one ``manager.jobs`` call. Making widgets is the slow part, so one update stops
making them after ~0.15 s and leaves the rest to the next (500 rows appear in a few steps). Every
widget mutation, from the flusher or from a click, happens under one lock. A click (on the kernel's
thread) calls the manager; a refusal shows as a one-line message above the rows.

An earlier kernel's one-offs are rows too: each full read (the first, and :meth:`JobTable.refresh`) also reads
the store once for the one-off records this manager did not add
(:func:`~jobmanager_nb.notebook.oneoffs.earlier_one_offs`), shown after the manager's jobs with
``origin="earlier kernel"``. Their Rerun is ``%job rerun``'s own code path
(:func:`~jobmanager_nb.notebook.oneoffs.rerun_one_off`); their Remove only hides the row in this table (the
record stays in the store). Once this kernel adds the name, the same row shows the live job.

Clicks while the kernel is busy. A click is a comm message, and ipykernel handles comm messages on the shell's
main thread, after the cell that is running. Front ends that send comm messages on a kernel subshell
(JupyterLab >= 4.4 and Notebook >= 7.4 with ipykernel >= 7) get them handled at once, on that subshell's
thread, if the kernel routes them there; ipykernel 7 routes a comm's messages to the subshell of the last
message the comm *sent* instead, which pins widgets made by a cell or by the flusher thread to the main shell.
So each button of the table follows the front end's choice (:func:`_follow_frontend_subshell`), and its
handler, there, skips IPython's ``pre_execute``/``post_execute`` hooks, which belong to the cell running
meanwhile. The handlers only call the thread-safe manager and take the table's lock. Where the front end
sends no subshell, a click waits for the cell. Either way a clicked button looks pending (CSS on the focused
button, :data:`_PENDING_CSS`) until its handler marks it ``jm-done``, and a second click of the same button
handled within :data:`_REPEAT_SECONDS` of the first (both queued behind a busy cell) is dropped.

Its text forms (``repr``, ``str`` and the ``text/plain`` of its display) are
:func:`~jobmanager_nb.notebook.text.render_text`.
"""

from __future__ import annotations

import html
import logging
import math
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

import ipywidgets as W
from IPython import get_ipython

from jobmanager_nb.errors import JobNotFoundError
from jobmanager_nb.events import Event
from jobmanager_nb.model import JobInfo
from jobmanager_nb.notebook import oneoffs
from jobmanager_nb.notebook.rows import JobRow, _esc, _set, actions_for, header_cells
from jobmanager_nb.notebook.styles import _CSS, _Shared
from jobmanager_nb.notebook.text import _one_line, render_text

if TYPE_CHECKING:
    from jobmanager_nb.manager import JobManager

__all__ = ["JobTable"]

log = logging.getLogger("jobmanager_nb")

_BULK = 64  # more dirty jobs than this: read them all with one manager.jobs call
_REPEAT_SECONDS = 1.0
"""A click on the button just handled, within this many seconds, is a repeat (queued behind a busy cell): dropped."""

_PENDING_CSS = """
<style>
/* A button the user clicked (focused by the mouse) and the kernel has not handled yet: it pulses, and the
   pointer says "working". The kernel adds jm-done when it handles the click. Browsers that do not focus a
   button on click (Safari, Firefox on macOS) show nothing. */
@keyframes jm-pending { 50% { opacity: 0.45; } }
.jm-table .jm-btn:focus:not(:focus-visible):not(.jm-done) {
  cursor: progress; animation: jm-pending 1.2s ease-in-out 0.25s infinite; }
@media (prefers-reduced-motion: reduce) {
  .jm-table .jm-btn:focus:not(:focus-visible):not(.jm-done) { animation: none; opacity: 0.6; } }
</style>
"""
_BUILD_SECONDS = 0.15  # a flush stops making new widgets after this long; the rest wait for the next flush
_LINK_SECONDS = 30.0
"""How long the table keeps an executor's web page (``JobManager.executor_link``) before asking again: the rows
that show it are re-worded every second, and asking a Dask client may mean a round trip to its scheduler."""


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
        self._earlier: dict[str, JobInfo] = {}  # the store's one-offs this manager did not add (last full read)
        self._hidden: set[str] = set()  # earlier kernel's rows removed from this table
        self._routed: set[int] = set()  # ids of the buttons whose clicks follow the front end's subshell
        self._last_click: tuple[str, str, float] | None = None  # (name, action, monotonic time) handled last
        self._links: dict[str, tuple[str | None, float]] = {}  # executor name: (its web page, when asked)
        self.flushes = 0
        """How many times the widgets were updated (a diagnostic)."""
        self.last_flush_seconds = 0.0
        """How long the last update took (a diagnostic)."""
        self.max_flush_seconds = 0.0
        """The longest update so far (a diagnostic; assign 0 to start measuring again)."""

        self._shared = _Shared()
        style = W.HTML(value=_CSS + _PENDING_CSS)
        style.add_class("jm-style")
        self._summary = self._shared.html(W.Layout(), "jm-summary")
        self._message = W.HTML(value="", layout=W.Layout(display="none"))
        self._message.add_class("jm-message")
        header = W.HBox(header_cells(self._shared), layout=W.Layout(width="100%"))
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
        return f"<JobTable {state}>\n{self._text()}"

    def __str__(self) -> str:
        return self._text()

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any] | None:
        bundle: dict[str, Any] | None = self.widget._repr_mimebundle_(**kwargs)
        if bundle is not None:
            bundle["text/plain"] = self._text()
        return bundle

    def _text(self) -> str:
        """The table as text, with the earlier kernel's rows it shows (from its last read of the store)."""
        with self._lock:
            earlier = list(self._earlier.values())
        return render_text(self._manager, earlier)

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
        earlier = self._earlier
        if everything:
            earlier = self._earlier = self._read_earlier()
        if everything or len(names) > _BULK or not names <= self._rows.keys():  # new rows: keep manager order
            infos = manager.jobs
            live = {info.name for info in infos}
            for name in live & earlier.keys():
                del earlier[name]  # added by this kernel since: its row shows the live job now
            infos += earlier.values()
            removed = [name for name in self._rows if name not in live and name not in earlier]
            if not everything:
                infos = [info for info in infos if info.name in names or info.name not in self._rows]
        else:
            infos = []
            for name in names:
                try:
                    infos.append(manager.job(name))
                except JobNotFoundError:
                    if name in earlier:
                        infos.append(earlier[name])
                    elif name in self._rows:
                        removed.append(name)
                else:
                    earlier.pop(name, None)
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
            self._clickable(row)
        if later:
            with self._pending_lock:
                self._dirty.update(later)
            self._wake.set()
        for name in removed:
            row = self._rows.pop(name)
            self._expanded_names.discard(name)
            for widget in row._widgets():
                self._routed.discard(id(widget))
                widget.close()
        if added or removed:
            self._body.children = tuple(row.widget for row in self._rows.values())
        countdowns = False
        for row in self._rows.values():
            if row._ticks():  # a countdown, or a run's elapsed time: its words move once a second
                countdowns = True
                if row.name not in names:
                    row._tick(now)
        self._countdowns = countdowns
        _set(self._summary, value=_summary_html(row.info for row in self._rows.values()))

    def _read_earlier(self) -> dict[str, JobInfo]:
        """The store's one-offs this manager did not add, by name (one read of the store); on a store error,
        the ones read last time."""
        try:
            infos = oneoffs.earlier_one_offs(self._manager, get_ipython(), self._hidden)
        except Exception:
            log.warning("jobmanager_nb: the dashboard could not read the one-off store", exc_info=True)
            return self._earlier
        return {info.name: info for info in infos}

    def _executor_link(self, executor: str | None) -> str | None:
        """The web page of the executor named ``executor`` (a Dask dashboard), asked of the manager at most once
        every :data:`_LINK_SECONDS`; None without one. Called with the table's lock held."""
        if not executor:
            return None
        now = time.monotonic()
        known = self._links.get(executor)
        if known is not None and now - known[1] < _LINK_SECONDS:
            return known[0]
        link = self._manager.executor_link(executor)
        self._links[executor] = (link, now)
        return link

    # -- clicks (on the kernel's thread)

    def _clickable(self, row: JobRow) -> None:
        """Route the clicks of the row's new buttons (▸ too) to the front end's subshell; re-arm the pending look
        of the buttons the row no longer shows (a button shown again is a new, unfocused view)."""
        shown = set(actions_for(row.info))
        for action, button in (("toggle", row.toggle), *row._buttons.items()):
            if id(button) not in self._routed:
                self._routed.add(id(button))
                _follow_frontend_subshell(button)
            if action not in shown and action != "toggle" and _DONE in button._dom_classes:
                _set(button, _dom_classes=tuple(c for c in button._dom_classes if c != _DONE))

    def _act(self, name: str, action: str) -> None:
        """A click on ``action`` of row ``name`` (on the kernel's main thread, or on the subshell the front end
        sent it on): the manager call, then the row marked for an update."""
        now = time.monotonic()
        with self._lock:
            row = self._rows.get(name)
            button = row._buttons.get(action) if row is not None else None
            if button is not None and _DONE not in button._dom_classes:
                _set(button, _dom_classes=(*button._dom_classes, _DONE))  # no longer looks pending
            last, self._last_click = self._last_click, (name, action, now)
        if last is not None and last[:2] == (name, action) and now - last[2] < _REPEAT_SECONDS:
            return  # the same button again at once: a repeat that waited behind a busy cell with the first
        manager = self._manager
        calls: dict[str, Callable[[str], object]] = {
            "run": manager.run_now,
            "rerun": self._rerun,
            "cancel": manager.cancel,
            "pause": manager.pause,
            "resume": manager.resume,
            "remove": manager.remove_job,
        }
        earlier = self._earlier.get(name)
        if earlier is not None and action == "remove":
            calls["remove"] = self._hide
        elif earlier is not None and action != "rerun":
            why = earlier.rerun_hint or "it is a one-off of an earlier kernel"
            calls[action] = lambda _name: _refuse(f"{why}.")
        try:
            calls[action](name)
        except Exception as exc:  # a refused click is a message, never a traceback
            log.debug("jobmanager_nb: %s %r refused", action, name, exc_info=True)
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            self._say(f"Could not {action} {name}: {first}")
        else:
            self._say("")
        self._mark(name)
        self.flush()  # show the click's effect now, not at the flusher's next turn (up to 0.1 s later)

    def _rerun(self, name: str) -> None:
        """The Rerun button: exactly ``%job rerun NAME`` (this kernel's one-off, or an earlier kernel's)."""
        earlier = self._earlier.get(name)
        if earlier is not None and earlier.rerun_hint:
            _refuse(f"{earlier.rerun_hint}.")
        oneoffs.rerun_one_off(self._manager, name, get_ipython())

    def _hide(self, name: str) -> None:
        """Remove on an earlier kernel's row: the row goes; the store keeps the record."""
        with self._lock:
            self._hidden.add(name)
            self._earlier.pop(name, None)

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


def _refuse(reason: str) -> None:
    raise JobNotFoundError(reason)


_DONE = "jm-done"  # a button's class once the kernel has handled its click (it stops looking pending)


def _follow_frontend_subshell(widget: Any) -> None:
    """Have ipykernel (>= 7) handle ``widget``'s messages on the subshell the front end sends them on, and
    there without IPython's ``pre_execute``/``post_execute`` hooks (they belong to the cell that runs on the
    main thread meanwhile: ipython/ipykernel#1564). A no-op outside ipykernel 7, or when the comm has no
    routing hook (``_reply_subshell_for``), whose default answer is the subshell of the comm's last sent
    message: the main shell for a widget made by a cell or by the flusher thread."""
    comm = getattr(widget, "comm", None)
    if comm is None or not hasattr(comm, "_reply_subshell_for") or not hasattr(comm, "_msg_callback"):
        return
    comm._reply_subshell_for = _frontends_choice
    with_hooks = comm.handle_msg

    def handle_msg(msg: dict[str, Any]) -> None:
        if threading.current_thread() is threading.main_thread():
            with_hooks(msg)
            return
        callback = comm._msg_callback
        if callback is not None:
            callback(msg)

    comm.handle_msg = handle_msg


def _frontends_choice(_data: Any, subshell_id: str | None) -> str | None:
    """The subshell the front end sent the message on (``None``: the main shell)."""
    return subshell_id


def _summary_html(infos: Iterable[JobInfo]) -> str:
    counts: dict[str, int] = {}
    total = earlier = 0
    for info in infos:
        total += 1
        earlier += info.origin == "earlier kernel"
        counts[info.status] = counts.get(info.status, 0) + 1
    if total == 0:
        return '<span class="jm-muted">No jobs yet.</span>'
    parts = [f"{total} job{'s' if total != 1 else ''}"]
    if earlier:
        parts[0] += f' <span class="jm-muted">({earlier} from an earlier kernel)</span>'
    for status in ("started", "queued", "retrying", "failed", "cancelled", "paused", "scheduled", "finished", "idle"):
        if counts.get(status):
            parts.append(f'<span class="jm-o-{status}">{counts[status]} {status}</span>')
    return " · ".join(parts)
