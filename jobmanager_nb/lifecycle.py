"""The life of one run: a table of legal steps and the one function that takes them.

A run moves through these phases::

    queued ──► dispatched ──► started ──► ended ──► released
      │            │  │          │          ▲
      │            │  └──────────┼──► retrying ──► queued (next attempt)
      └────────────┴─────────────┴──────────┘     └──► ended (cancelled during the backoff)

- ``queued``: the manager made the run; nothing runs it yet.
- ``dispatched``: handed to the inline queue or an executor, which has not started the job's code.
- ``started``: the job's code runs.
- ``retrying``: an attempt failed and the next one waits for its backoff timer.
- ``ended``: final. How it ended is the run's :data:`Outcome`: ``finished``, ``failed``, ``cancelled``,
  ``timed_out`` or ``lost`` (the worker died of something nobody asked for). A timer, retry, executor
  report or dispatch that arrives for an ended run is dropped.
- ``released``: its events have reached every subscriber and its waiters were told, exactly once.

:func:`advance` is the only code that changes a run's phase. It returns False for a step out of a
final phase (a late report: "ended is final") and raises :class:`InvalidTransition` for any other step
the table does not list (a bug in the caller, never a user error). This module holds no locks and
does no I/O; the manager calls it under its lock.
"""

from __future__ import annotations

from typing import Literal, Protocol

__all__ = [
    "ACTIVE",
    "FINAL",
    "TRANSITIONS",
    "InvalidTransition",
    "Outcome",
    "Phase",
    "advance",
    "run_status",
]

Phase = Literal["queued", "dispatched", "started", "retrying", "ended", "released"]
Outcome = Literal["finished", "failed", "cancelled", "timed_out", "lost"]

TRANSITIONS: frozenset[tuple[Phase, Phase]] = frozenset(
    {
        ("queued", "dispatched"),
        ("queued", "ended"),  # cancelled, removed or shut down before it was handed over
        ("dispatched", "started"),
        ("dispatched", "retrying"),  # the executor could not start it and attempts are left
        ("dispatched", "ended"),  # cancelled in the executor, or it could not start
        ("started", "retrying"),
        ("started", "ended"),
        ("retrying", "queued"),  # the backoff timer fired
        ("retrying", "ended"),  # cancelled, removed or shut down during the backoff
        ("ended", "released"),
    }
)
"""Every legal (from, to) step; nothing else is."""

FINAL: frozenset[Phase] = frozenset({"ended", "released"})
"""Phases a run never leaves (except ended → released)."""
ACTIVE: frozenset[Phase] = frozenset({"queued", "dispatched", "started", "retrying"})
"""Phases in which a run still counts as queued or running."""


class InvalidTransition(RuntimeError):
    """A step the table does not list: a bug in jobmanager_nb, reported with the run and both phases."""


class _Run(Protocol):
    run_id: str
    phase: Phase


def advance(run: _Run, to: Phase) -> bool:
    """Move ``run`` to phase ``to``. True when it moved; False when ``run`` is already final (the
    step comes too late and is dropped); :class:`InvalidTransition` for any other illegal step."""
    start = run.phase
    if (start, to) in TRANSITIONS:
        run.phase = to
        return True
    if start in FINAL:
        return False
    raise InvalidTransition(f"run {run.run_id} cannot go from {start} to {to}")


def run_status(phase: Phase, outcome: Outcome | None) -> Literal["queued", "started", "finished", "failed"]:
    """The four-valued status a :class:`~jobmanager_nb.model.JobRun` and a one-off record show.

    Waiting phases (queued, dispatched, retrying) are ``queued``; an ended run is ``finished`` only when
    its outcome is ``finished``, otherwise ``failed`` (the outcome says why).
    """
    if phase == "started":
        return "started"
    if phase in FINAL:
        return "finished" if outcome == "finished" else "failed"
    return "queued"
