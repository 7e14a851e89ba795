"""The run state machine as a table: every legal step is taken, every other one refused."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import get_args

import pytest

from jobmanager_nb.lifecycle import ACTIVE, FINAL, TRANSITIONS, InvalidTransition, Outcome, Phase, advance, run_status

PHASES: tuple[Phase, ...] = get_args(Phase)


@dataclass
class Run:
    phase: Phase
    run_id: str = "r1"


def test_the_table_is_the_documented_lifecycle() -> None:
    assert {
        ("queued", "dispatched"),
        ("queued", "ended"),
        ("dispatched", "started"),
        ("dispatched", "retrying"),
        ("dispatched", "ended"),
        ("started", "retrying"),
        ("started", "ended"),
        ("retrying", "queued"),
        ("retrying", "ended"),
        ("ended", "released"),
    } == TRANSITIONS
    assert set(PHASES) == ACTIVE | FINAL and not ACTIVE & FINAL


@pytest.mark.parametrize(("start", "to"), sorted(itertools.product(PHASES, PHASES)))
def test_each_step_is_taken_dropped_or_refused(start: Phase, to: Phase) -> None:
    run = Run(start)
    if (start, to) in TRANSITIONS:
        assert advance(run, to) is True and run.phase == to
    elif start in FINAL:  # ended is final: a late timer, retry, report or dispatch is dropped
        assert advance(run, to) is False and run.phase == start
    else:
        with pytest.raises(InvalidTransition, match=f"cannot go from {start} to {to}"):
            advance(run, to)
        assert run.phase == start


def test_release_happens_exactly_once() -> None:
    run = Run("ended")
    assert advance(run, "released") is True
    assert advance(run, "released") is False


@pytest.mark.parametrize(
    ("phase", "outcome", "status"),
    [
        ("queued", None, "queued"),
        ("dispatched", None, "queued"),
        ("retrying", None, "queued"),
        ("started", None, "started"),
        ("ended", "finished", "finished"),
        ("released", "finished", "finished"),
        ("ended", "failed", "failed"),
        ("ended", "cancelled", "failed"),
        ("ended", "timed_out", "failed"),
        ("released", "lost", "failed"),
    ],
)
def test_the_four_valued_status_derives_from_phase_and_outcome(
    phase: Phase, outcome: Outcome | None, status: str
) -> None:
    assert run_status(phase, outcome) == status
