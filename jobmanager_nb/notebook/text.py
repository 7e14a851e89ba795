"""The dashboard as plain text, and the wording every view of it shares.

:func:`render_text` is the job table as text: ``%job list``, ``%jobs`` in a terminal IPython, ``print(table)``
and the ``text/plain`` of the widget. One line per job: name, kind, schedule, state (:func:`state_text`), last
run (start · duration · outcome), next run, and the run count with the last runs' outcomes (``12 ✓✓✗✗✗``);
long names and schedules are clipped. The kind says which executor an offloaded job goes to (``offloaded on
dask``), and a run going somewhere other than this machine says where (``started · 12 s · on 10.0.0.5:40331``).

The same helpers fill the widget's cells (:mod:`jobmanager_nb.notebook.rows`), so the two views always say
the same thing:

- :func:`state_text`: what a job is doing, from its run's phase (:mod:`jobmanager_nb.lifecycle`):
  ``started · 42% · loading 3/7 · 12 s · ~16 s left``, ``queued · waiting for the running cell``,
  ``retrying in 4 s``, ``paused · running``, ``failed · timed out``, ``cancelled``. :func:`_ticks` says whether
  those words change as time passes (countdowns, elapsed time), so the table knows which rows to re-word.
- :func:`countdown` (``"in 4 s"``, ``"due now"``), :func:`duration` (``"42 ms"``, ``"3 min 5 s"``), elapsed
  time (``"12 s"``), clock times (``"14:05:09"`` today, ``"03 Dec 14:05"`` otherwise), a run's outcome, the run
  and skip counts, a job's kind, the progress clamped to 0..1.
- :func:`_marks`: the job's recent runs (``JobInfo.recent``) as marks for the strip: outcome, duration relative
  to the job's slowest recent run, and the words for hovering.
- :func:`user_traceback`: a traceback without the frames of jobmanager_nb's plumbing and IPython's own files
  (IPython's ``_modified_open`` wrapper around ``open``).
- :func:`summary_counts`: the jobs counted by status, each job once (the summary line above the rows).
- :func:`_where`: where a run ran (``JobRun.location``) shortened for a cell, and :func:`_is_remote`, whether
  that is somewhere other than this machine (a Dask worker), which the running row then says.

:func:`css_slug` is a job name made safe for a CSS class (each row carries ``jm-row-<slug>``). This module
imports neither IPython nor ipywidgets: printing the table needs neither.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import math
import os
import re
from collections.abc import Iterable, Sequence
from datetime import date, datetime
from typing import TYPE_CHECKING

from jobmanager_nb.model import INLINE_LOCATION, JobInfo, JobRun, RunMark

if TYPE_CHECKING:
    from jobmanager_nb.manager import JobManager

__all__ = ["countdown", "css_slug", "duration", "render_text", "state_text", "summary_counts", "user_traceback"]

_MAX_TEXT_CELL = 40
_TEXT_MARKS = 10  # recent outcomes shown in the text table's RUNS column

STATUS_ORDER = ("started", "queued", "retrying", "failed", "cancelled", "paused", "scheduled", "finished", "idle")
"""Every ``JobInfo.status``, in the order the summary line counts them."""

OUTCOME_WORDS = {
    "finished": "finished",
    "failed": "failed",
    "cancelled": "cancelled",
    "timed_out": "timed out",
    "lost": "worker lost",
}
"""How each run outcome (:data:`jobmanager_nb.lifecycle.Outcome`) is worded."""

_TEXT_MARK = {"finished": "✓", "failed": "✗", "timed_out": "✗", "lost": "✗", "cancelled": "–"}


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


def _elapsed(seconds: float) -> str:
    """Time so far, in whole seconds (it moves once a second): ``"0 s"``, ``"12 s"``, ``"3 min 5 s"``."""
    seconds = max(seconds, 0.0)
    return f"{int(seconds)} s" if seconds < 60 else duration(seconds)


def _estimate(seconds: float) -> str:
    """A time still to go, as coarse as an estimate is: ``"<1 s"``, ``"~16 s"``, ``"~9 min"``, ``"~2 h 5 min"``."""
    if seconds < 1:
        return "<1 s"
    if seconds < 60:
        return f"~{round(seconds)} s"
    if seconds < 3600:
        return f"~{round(seconds / 60)} min"
    hours, minutes = divmod(round(seconds / 60), 60)
    return f"~{hours} h {minutes} min" if minutes else f"~{hours} h"


def _clock_time(moment: datetime, now: datetime) -> str:
    local = moment.astimezone()
    if local.date() == _local_date(now):
        return local.strftime("%H:%M:%S")
    return local.strftime("%d %b %H:%M")


@functools.lru_cache(maxsize=8)
def _local_date(now: datetime) -> date:
    """``now``'s date in the machine's zone (one update words hundreds of times against the same ``now``)."""
    return now.astimezone().date()


def _outcome(run: JobRun) -> str:
    """How ``run`` ended, in words (``finished``, ``failed``, ``cancelled``, ``timed out``, ``worker lost``)."""
    if run.outcome is not None:
        return OUTCOME_WORDS[run.outcome]
    return "cancelled" if run.cancelled else run.status


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
    """``inline``, or ``offloaded on NAME`` (the job's executor), then `` · one-off`` for a one-off."""
    kind = f"{info.kind} on {info.executor}" if info.kind == "offloaded" and info.executor else info.kind
    return f"{kind} · one-off" if info.one_off else kind


_SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*://")
_HERE = frozenset({"local", INLINE_LOCATION})  # the locations on this machine: a local worker process, the kernel


def _where(location: str | None) -> str:
    """A run's location for a cell: a Dask worker's address without its scheme (``10.0.0.5:40331``), ``local``,
    ``kernel``; ``""`` when unknown."""
    return _SCHEME.sub("", location) if location else ""


def _is_remote(run: JobRun | None) -> bool:
    """Whether ``run`` is going (started) somewhere other than this machine: the running row then says where."""
    return run is not None and run.phase == "started" and bool(run.location) and run.location not in _HERE


def _origin_tag(info: JobInfo) -> str | None:
    """``earlier kernel`` for a one-off only the store knows (``another kernel`` while it runs there), or None."""
    if info.origin != "earlier kernel":
        return None
    return "another kernel" if info.current_run is not None else "earlier kernel"


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


def _running_parts(info: JobInfo, run: JobRun, now: datetime) -> list[str]:
    """A started run, like tqdm: ``["42%", "loading 3/7", "12 s", "~16 s left"]`` (percent, caption, elapsed,
    estimate) with progress; ``["12 s"]`` (elapsed) without. The estimate assumes the rate so far holds."""
    elapsed = (now - run.started_at).total_seconds() if run.started_at is not None else None
    parts: list[str] = []
    progress = _progress(info)
    if progress is not None:
        _fraction, percent, label = progress
        parts.append(percent)
        if label and label.strip():
            parts.append(_one_line(label))
    if elapsed is not None:
        parts.append(_elapsed(elapsed))
        if progress is not None and 0 < progress[0] < 1:
            left = elapsed * (1 - progress[0]) / progress[0]
            parts.append(f"{_estimate(left)} left")
    return parts


def _waiting_words(run: JobRun, busy_inline: Sequence[str], kernel_loop: bool) -> str | None:
    """Why a run handed over (``dispatched``) has not started. An inline run waits for the inline queue, which
    runs on the manager's event loop (the kernel's, in a notebook): only other inline jobs or a busy cell hold
    it. An offloaded run waits for the executor to start a worker (or for a free one)."""
    if run.phase != "dispatched":
        return None
    if run.kind == "offloaded":
        return "waiting for a worker"
    if busy_inline:
        more = f" and {len(busy_inline) - 1} more" if len(busy_inline) > 1 else ""
        return f"waiting for {_clip(_one_line(busy_inline[0]), 30)}{more}"
    return "waiting for the running cell" if kernel_loop else "waiting for the inline queue"


def _state(
    info: JobInfo, now: datetime, busy_inline: Sequence[str] = (), kernel_loop: bool = True
) -> tuple[str, str, list[str]]:
    """(badge, words after it, details): the job's state as :func:`state_text` words it. The badge is a
    ``JobInfo.status`` value (or ``paused`` for a paused job whose run still goes); the words after it are
    ``" in 4 s"`` for a retry countdown or ``""``; the details follow, each after ``" · "``."""
    run = info.current_run
    if run is None:
        last = info.last_run
        if info.status == "failed" and last is not None and last.outcome in ("timed_out", "lost"):
            return "failed", "", [OUTCOME_WORDS[last.outcome]]
        return info.status, "", []
    if run.phase == "retrying":
        badge, after, details = "retrying", "", []
        if run.retry_at is not None:
            left = countdown((run.retry_at - now).total_seconds())
            after = " now" if left == "due now" else f" {left}"
    elif run.phase == "started":
        badge, after, details = "started", "", _running_parts(info, run, now)
    else:
        badge, after = "queued", ""
        waiting = _waiting_words(run, busy_inline, kernel_loop)
        details = [waiting] if waiting else []
    if info.paused:
        going = "running" if badge == "started" else badge
        return "paused", "", [going + after, *details]
    return badge, after, details


def state_text(info: JobInfo, now: datetime, busy_inline: Sequence[str] = (), kernel_loop: bool = True) -> str:
    """What the job is doing, in words, as the dashboard's status cell shows it: its status, and for a run going
    what the run state machine knows (``queued · waiting for the running cell``, ``retrying in 4 s``,
    ``paused · running``, ``started · 42% · loading 3/7 · 12 s · ~16 s left``). ``busy_inline`` names the other
    inline jobs that hold the inline queue now (:func:`_inline_holders`); ``kernel_loop`` says whether the manager
    runs inline jobs on the kernel's loop."""
    badge, after, details = _state(info, now, busy_inline, kernel_loop)
    return " · ".join([badge + after, *details])


def _ticks(info: JobInfo) -> bool:
    """Whether the job's words change as time passes: a countdown to its next run, or a run going (elapsed
    time, a retry's countdown)."""
    return info.current_run is not None or (info.next_run is not None and not info.paused)


def _kernel_loop(manager: JobManager) -> bool:
    """Whether ``manager`` runs inline jobs on a loop it was given (the kernel's, in a notebook) rather than
    on a private loop thread of its own."""
    return getattr(manager, "_loop_thread", None) is None


def _busy_inline(infos: Iterable[JobInfo]) -> list[str]:
    """The inline jobs whose run has started."""
    return [
        info.name
        for info in infos
        if info.kind == "inline" and info.current_run is not None and info.current_run.phase == "started"
    ]


def _inline_holders(manager: JobManager, infos: Iterable[JobInfo]) -> list[str]:
    """The inline jobs that hold ``manager``'s inline queue now, so that a run handed to it cannot start: a
    synchronous job running on the loop (``InlineRunner.running_sync``), or the started ones when they fill every
    slot (``inline_concurrency``). Empty when none does: then only the loop itself (a busy cell) holds the run."""
    runner = getattr(manager, "_inline", None)
    sync = getattr(runner, "running_sync", None)
    if sync is not None:
        return [sync.job.name]
    started = _busy_inline(infos)
    slots = getattr(runner, "_concurrency", None)
    return started if isinstance(slots, int) and len(started) >= slots else []


def _mark_title(mark: RunMark, now: datetime) -> str:
    start = _clock_time(mark.started_at, now) if mark.started_at is not None else "never started"
    took = duration(mark.duration) if mark.duration is not None else "–"
    text = f"{start} · {took} · {OUTCOME_WORDS[mark.outcome]}"
    if mark.error_line:
        text += f"\n{_clip(_one_line(mark.error_line), 200)}"
    return text


def _marks(info: JobInfo, now: datetime) -> list[tuple[str, float, str]]:
    """The job's recent runs, oldest first, as (outcome, duration relative to the slowest of them (0..1),
    words for hovering)."""
    durations = [mark.duration or 0.0 for mark in info.recent]
    longest = max(durations, default=0.0)
    return [
        (mark.outcome, (took / longest) if longest > 0 else 0.0, _mark_title(mark, now))
        for mark, took in zip(info.recent, durations, strict=True)
    ]


def _text_marks(info: JobInfo) -> str:
    """The last outcomes as characters, oldest first: ``✓`` finished, ``✗`` failed (or timed out, or lost),
    ``–`` cancelled."""
    return "".join(_TEXT_MARK[mark.outcome] for mark in info.recent[-_TEXT_MARKS:])


def summary_counts(infos: Iterable[JobInfo]) -> tuple[int, list[tuple[str, int]]]:
    """(how many jobs, [(status, count), ...]) in :data:`STATUS_ORDER`, each job counted once, under its
    ``JobInfo.status``: the counts add up to the total."""
    counts: dict[str, int] = {}
    total = 0
    for info in infos:
        total += 1
        counts[info.status] = counts.get(info.status, 0) + 1
    order = [*STATUS_ORDER, *sorted(set(counts) - set(STATUS_ORDER))]
    return total, [(status, counts[status]) for status in order if counts.get(status)]


def _ipython_dir() -> str | None:
    """IPython's package folder, found without importing IPython (None when it is not installed)."""
    try:
        spec = importlib.util.find_spec("IPython")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return os.path.realpath(next(iter(spec.submodule_search_locations))) + os.sep


_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep  # jobmanager_nb/
_FRAME = re.compile(r'^\s*File "(.+?)", line \d+')
_plumbing_dirs: tuple[str, ...] | None = None


def _is_plumbing(path: str) -> bool:
    global _plumbing_dirs
    if _plumbing_dirs is None:
        ipython = _ipython_dir()
        _plumbing_dirs = (_PACKAGE_DIR,) if ipython is None else (_PACKAGE_DIR, ipython)
    if path.startswith(_plumbing_dirs):
        return True
    real = os.path.realpath(path) if os.path.isabs(path) else path
    return real.startswith(_plumbing_dirs)


def user_traceback(error: str) -> str:
    """``error`` (a formatted traceback) without the frames that are not the job's: jobmanager_nb's own
    plumbing around the job, and IPython's files (such as the ``_modified_open`` wrapper IPython puts around
    ``open`` in a notebook's namespace). Other lines, and every frame of the job's code, are kept."""
    out: list[str] = []
    skipping = False
    for line in error.rstrip("\n").splitlines():
        frame = _FRAME.match(line)
        if frame:
            skipping = _is_plumbing(frame.group(1))
        elif skipping and not line.startswith("    "):
            skipping = False
        if not skipping:
            out.append(line)
    return "\n".join(out)


def render_text(manager: JobManager, earlier: Iterable[JobInfo] = ()) -> str:
    """The manager's jobs as a plain-text table (for terminals, logs and ``print``), then the rows of
    ``earlier`` (an earlier kernel's one-offs, which the store remembers), marked as such."""
    infos = [*manager.jobs, *earlier]
    if not infos:
        return "No jobs."
    now = manager.clock.now()
    busy = _inline_holders(manager, infos)
    kernel_loop = _kernel_loop(manager)
    header = ("NAME", "KIND", "SCHEDULE", "STATUS", "LAST RUN", "NEXT RUN", "RUNS")
    rows: list[tuple[str, ...]] = []
    for info in infos:
        last = " · ".join(_last_run_parts(info.last_run, now)) if info.last_run is not None else "–"
        status = state_text(info, now, [name for name in busy if name != info.name], kernel_loop)
        tag = _origin_tag(info)
        if tag is not None:  # a one-off only the store knows: ended, or going in another kernel
            status += f" ({tag})"
        if _is_remote(info.current_run):
            assert info.current_run is not None
            status += f" · on {_where(info.current_run.location)}"
        marks = _text_marks(info)
        rows.append(
            (
                _clip(_one_line(info.name), _MAX_TEXT_CELL),
                _kind_text(info),
                _clip(_one_line(info.schedule_description), _MAX_TEXT_CELL),
                _clip(status, 56),
                last,
                _next_text(info, now),
                f"{_runs_text(info)} {marks}" if marks else _runs_text(info),
            )
        )
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header))]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in (header, *rows)
    ]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)
