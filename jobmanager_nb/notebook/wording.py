"""How the magics word what they print: moments, durations and errors, the same in every subcommand.

:func:`_when` is a moment in the kernel's local time (``14:05:09`` today, ``2026-12-03 14:05:09`` on
another day, ``-`` for none); :func:`_seconds` the time until a moment, to the second (``0.42 s`` under ten
seconds, then ``2 d 5 h 3 min 9 s``), which ``%job next`` shows; :func:`_error_line` the last line of a
traceback (``ValueError: bad row``), which is what a one-line report of a failure shows. How long a run took
is worded as the dashboard words it (:func:`jobmanager_nb.notebook.text.duration`: ``3 ms``, ``1.2 s``).
"""

from __future__ import annotations

from datetime import datetime


def _when(moment: datetime | None) -> str:
    if moment is None:
        return "-"
    local = moment.astimezone()
    if local.date() == datetime.now().astimezone().date():
        return local.strftime("%H:%M:%S")
    return local.strftime("%Y-%m-%d %H:%M:%S")


def _seconds(value: float) -> str:
    if value < 10:
        return f"{value:.2f} s"
    minutes, secs = divmod(round(value), 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    parts = [f"{days} d" if days else "", f"{hours} h" if hours else "", f"{minutes} min" if minutes else ""]
    parts.append(f"{secs} s" if secs or not any(parts) else "")
    return " ".join(p for p in parts if p)


def _error_line(error: str | None) -> str:
    """The last line of a traceback: ``ValueError: bad row``."""
    lines = [line for line in (error or "failed").strip().splitlines() if line.strip()]
    return lines[-1].strip() if lines else "failed"
