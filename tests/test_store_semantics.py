"""Ghost's one-off rules (ghost-semantics.md §2, §4 items 12–16 and 21), retention and pruning, for both
stores: every test here runs against MemoryStore and TinyDBStore."""

from __future__ import annotations

import dataclasses
import threading
from datetime import timedelta

import pytest

from jobmanager_nb.clock import FakeClock
from jobmanager_nb.errors import InvalidRecordError, JobNotFoundError, OneOffAlreadyExecutedError
from jobmanager_nb.store import (
    MAX_ERROR_CHARS,
    MemoryStore,
    OneOffStore,
    TinyDBStore,
    current_owner,
    owner_state,
)


@pytest.fixture(params=["memory", "tinydb"])
def make_store(request, tmp_path):
    def make(**kwargs):
        if request.param == "memory":
            return MemoryStore(**kwargs)
        return TinyDBStore(tmp_path / "jobs.json", **kwargs)

    return make


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def store(make_store, clock):
    return make_store(clock=clock)


@pytest.fixture
def owner():
    return current_owner()


def test_both_stores_provide_the_one_off_store_interface(store):
    assert isinstance(store, OneOffStore)


# §4 item 12
def test_claiming_a_unique_name_inserts_a_queued_record(store, owner, clock):
    record = store.claim("backfill", owner, {"kind": "inline"})
    assert store.get("backfill") == record
    assert (record.status, record.created_at, record.attempts, record.owner) == (
        "queued",
        clock.now(),
        0,
        owner,
    )
    assert record.meta == {"kind": "inline"}


# §4 item 13
def test_claiming_a_finished_name_says_it_has_already_been_executed(store, owner):
    store.claim("backfill", owner)
    store.mark_started("backfill", owner)
    store.mark_finished("backfill")
    with pytest.raises(OneOffAlreadyExecutedError) as caught:
        store.claim("backfill", owner)
    assert str(caught.value).startswith('A "backfill" one off job has already been executed.')
    assert store.get("backfill").status == "finished"


@pytest.mark.parametrize("steps", [0, 1])
def test_claiming_a_queued_or_started_name_is_refused_too(store, owner, steps):
    store.claim("backfill", owner)
    if steps:
        store.mark_started("backfill", owner)
    with pytest.raises(OneOffAlreadyExecutedError):
        store.claim("backfill", owner)


# §4 item 14
def test_success_goes_queued_started_finished_with_timestamps(store, owner, clock):
    queued = store.claim("backfill", owner)
    clock.advance(1)
    started = store.mark_started("backfill", owner)
    clock.advance(2)
    finished = store.mark_finished("backfill")
    assert [queued.status, started.status, finished.status] == ["queued", "started", "finished"]
    assert started.started_at == queued.created_at + timedelta(seconds=1)
    assert finished.finished_at == started.started_at + timedelta(seconds=2)
    assert (finished.started_at, finished.attempts, finished.error) == (started.started_at, 1, None)
    assert store.get("backfill") == finished


# §4 item 15
def test_failure_goes_queued_started_failed_with_the_error(store, owner, clock):
    store.claim("backfill", owner)
    store.mark_started("backfill", owner)
    clock.advance(3)
    failed = store.mark_failed("backfill", "ZeroDivisionError: division by zero")
    assert (failed.status, failed.error, failed.finished_at) == (
        "failed",
        "ZeroDivisionError: division by zero",
        clock.now(),
    )
    assert store.get("backfill") == failed


# §4 item 16
def test_a_failed_name_can_be_claimed_again_and_fail_again(store, owner):
    store.claim("backfill", owner)
    store.mark_started("backfill", owner)
    store.mark_failed("backfill", "first")
    again = store.claim("backfill", owner)
    assert (again.status, again.error, again.attempts) == ("queued", None, 1)
    assert store.mark_started("backfill", owner).attempts == 2
    assert store.mark_failed("backfill", "second").error == "second"


def test_starting_again_while_started_is_a_retry_that_counts_an_attempt(store, owner, clock):
    store.claim("a", owner)
    store.mark_started("a", owner)
    clock.advance(5)
    retry = store.mark_started("a", owner)
    assert (retry.status, retry.attempts, retry.started_at) == ("started", 2, clock.now())


def test_a_rerun_keeps_meta_unless_new_meta_is_given(store, owner):
    store.claim("a", owner, {"kind": "inline"})
    store.mark_failed("a", "boom")
    assert store.claim("a", owner).meta == {"kind": "inline"}
    store.mark_failed("a", "boom")
    assert store.claim("a", owner, {"kind": "offloaded"}).meta == {"kind": "offloaded"}


# §4 item 21
def test_has_executed_successfully_follows_ghost(store, owner):
    assert store.has_executed_successfully("a") is False
    store.claim("a", owner)
    assert store.has_executed_successfully("a") is True  # queued counts, as in Ghost
    store.mark_started("a", owner)
    assert store.has_executed_successfully("a") is True
    store.mark_finished("a")
    assert store.has_executed_successfully("a") is True
    store.claim("b", owner)
    store.mark_failed("b", "boom")
    assert store.has_executed_successfully("b") is False


def test_has_executed_successfully_is_false_for_an_orphan_that_claim_would_rerun(store, owner):
    """A queued/started record whose owner is gone (a dead kernel): claim reruns it, so it has not run."""
    assert owner.start_ticks is not None
    gone = dataclasses.replace(owner, token="dead", start_ticks=owner.start_ticks + 1)  # a reused pid
    assert owner_state(gone) == "gone"
    store.claim("queued-by-the-dead", gone)
    store.claim("started-by-the-dead", gone)
    store.mark_started("started-by-the-dead", gone)
    for name in ("queued-by-the-dead", "started-by-the-dead"):
        assert store.has_executed_successfully(name) is False
        assert store.get(name).status in ("queued", "started")  # asking writes nothing
        assert store.claim(name, owner).status == "queued"  # and claim does rerun it
        assert store.get(name).owner == owner
    elsewhere = dataclasses.replace(gone, hostname="elsewhere.example", boot_id=None, pid_ns=None)
    store.claim("elsewhere", elsewhere)
    assert store.has_executed_successfully("elsewhere") is True  # cannot tell: it may be running


@pytest.mark.parametrize(
    ("prepare", "action", "complaint"),
    [
        ([], "finish", "only a started one can finish"),
        (["start", "finish"], "start", "only a queued one can start"),
        (["start", "finish"], "fail", "only a queued or started one can fail"),
        (["start", "finish"], "finish", "only a started one can finish"),
    ],
)
def test_an_illegal_transition_is_refused_and_changes_nothing(store, owner, prepare, action, complaint):
    store.claim("a", owner)
    steps = {
        "start": lambda: store.mark_started("a", owner),
        "finish": lambda: store.mark_finished("a"),
        "fail": lambda: store.mark_failed("a", "boom"),
    }
    for step in prepare:
        steps[step]()
    before = store.get("a")
    with pytest.raises(InvalidRecordError, match=complaint):
        steps[action]()
    assert store.get("a") == before


def test_changing_an_unknown_name_raises_a_lookup_error(store):
    with pytest.raises(JobNotFoundError, match='No one-off job record named "ghost"'):
        store.mark_finished("ghost")
    assert issubclass(JobNotFoundError, LookupError)


@pytest.mark.parametrize("already_started", [False, True])
def test_starting_a_record_claimed_by_another_process_is_refused(store, owner, already_started):
    store.claim("a", owner)
    if already_started:
        store.mark_started("a", owner)
    intruder = dataclasses.replace(owner, token="f" * 16)
    with pytest.raises(InvalidRecordError, match="claimed by another process"):
        store.mark_started("a", intruder)


def test_an_empty_name_is_refused(store, owner):
    with pytest.raises(InvalidRecordError, match="non-empty string"):
        store.claim("  ", owner)


def test_records_lists_every_record_in_claim_order(store, owner):
    for name in ["c", "a", "b"]:
        store.claim(name, owner)
    assert [r.name for r in store.records()] == ["c", "a", "b"]
    assert store.get("zzz") is None


def test_unserialisable_meta_is_refused_before_anything_is_written(store, owner):
    with pytest.raises(InvalidRecordError, match="cannot be stored as JSON"):
        store.claim("a", owner, {"callback": print})
    assert store.get("a") is None


def test_the_oldest_finished_records_beyond_max_finished_are_pruned(make_store, clock, owner):
    store = make_store(clock=clock, max_finished=3)
    for i in range(5):
        store.claim(f"job{i}", owner)
        store.mark_started(f"job{i}", owner)
        clock.advance(1)
        store.mark_finished(f"job{i}")
    names = [r.name for r in store.records()]
    assert len(names) <= 3 and names == sorted(names) and names[-1] == "job4"
    assert "job0" not in names and "job1" not in names
    store.claim("job0", owner)  # a pruned name can run again


def test_retention_prunes_down_to_one_percent_below_max_finished(owner, clock):
    store = MemoryStore(clock=clock, max_finished=200)
    for i in range(201):
        store.claim(f"job{i:03d}", owner)
        store.mark_started(f"job{i:03d}", owner)
        clock.advance(1)
        store.mark_finished(f"job{i:03d}")
    assert [r.name for r in store.records()] == [f"job{i:03d}" for i in range(3, 201)]


def test_failed_queued_and_started_records_are_never_pruned_by_retention(make_store, clock, owner):
    store = make_store(clock=clock, max_finished=1)
    store.claim("failed", owner)
    store.mark_failed("failed", "boom")
    store.claim("queued", owner)
    store.claim("started", owner)
    store.mark_started("started", owner)
    for i in range(3):
        store.claim(f"done{i}", owner)
        store.mark_started(f"done{i}", owner)
        clock.advance(1)
        store.mark_finished(f"done{i}")
    assert sorted(r.name for r in store.records()) == ["done2", "failed", "queued", "started"]


def test_error_text_is_capped(store, owner):
    store.claim("a", owner)
    record = store.mark_failed("a", "x" * (3 * MAX_ERROR_CHARS))
    assert len(record.error) <= MAX_ERROR_CHARS
    assert store.get("a").error == record.error


def test_prune_forgets_ended_records_older_than_the_cutoff(store, owner, clock):
    for name in ["old-finished", "old-failed", "old-queued"]:
        store.claim(name, owner)
    store.mark_started("old-finished", owner)
    store.mark_finished("old-finished")
    store.mark_failed("old-failed", "boom")
    clock.advance(timedelta(days=10))
    store.claim("new", owner)
    store.mark_started("new", owner)
    store.mark_finished("new")
    pruned = store.prune(older_than=timedelta(days=7))
    assert sorted(r.name for r in pruned) == ["old-failed", "old-finished"]
    assert [r.name for r in store.records()] == ["old-queued", "new"]
    assert store.claim("old-finished", owner).status == "queued"


def test_prune_refuses_a_negative_age(store):
    with pytest.raises(ValueError, match="must not be negative"):
        store.prune(timedelta(seconds=-1))


def test_threads_sharing_a_store_claim_each_name_exactly_once(store, owner):
    names = [f"job{i}" for i in range(30)]
    wins: list[str] = []
    start = threading.Barrier(6)

    def worker():
        start.wait(timeout=10)
        for name in names:
            try:
                store.claim(name, owner)
            except OneOffAlreadyExecutedError:
                continue
            wins.append(name)
            store.mark_started(name, owner)
            store.mark_finished(name)

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert sorted(wins) == sorted(names)
    assert {r.status for r in store.records()} == {"finished"}
