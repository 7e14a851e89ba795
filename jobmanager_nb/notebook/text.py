"""The dashboard as plain text, and the wording every view of it shares.

:func:`render_text` is the job table as text: ``%job list``, ``%jobs`` in a terminal IPython, ``print(table)``
and the ``text/plain`` of the widget. One line per job: name, kind, schedule, status (with the progress a
worker reported), last run (start · duration · outcome), next run and run counts; long names and schedules
are clipped.

The same helpers fill the widget's cells (:mod:`jobmanager_nb.notebook.rows`), so the two views always say
the same thing: :func:`countdown` (``"in 4 s"``, ``"due now"``), :func:`duration` (``"42 ms"``,
``"3 min 5 s"``), clock times (``"14:05:09"`` today, ``"03 Dec 14:05"`` otherwise), a run's outcome, the run
and skip counts, a job's kind, and the progress clamped to 0..1. :func:`css_slug` is a job name made safe
for a CSS class (each row carries ``jm-row-<slug>``).

This module imports neither IPython nor ipywidgets: printing the table needs neither.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING

from jobmanager_nb.model import JobInfo, JobRun

if TYPE_CHECKING:
    from jobmanager_nb.manager import JobManager

__all__ = ["countdown", "css_slug", "duration", "render_text"]

_MAX_TEXT_CELL = 40


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


def render_text(manager: JobManager, earlier: Iterable[JobInfo] = ()) -> str:
    """The manager's jobs as a plain-text table (for terminals, logs and ``print``), then the rows of
    ``earlier`` (an earlier kernel's one-offs, which the store remembers), marked as such."""
    infos = [*manager.jobs, *earlier]
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
        if info.origin == "earlier kernel":  # a one-off only the store knows: ended, or going in another kernel
            status += " (another kernel)" if info.current_run is not None else " (earlier kernel)"
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
