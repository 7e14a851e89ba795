"""OneOffRecord as plain data, and the pure status rules of jobmanager_nb.store.records."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import jobmanager_nb
from jobmanager_nb.errors import InvalidRecordError, OneOffAlreadyExecutedError
from jobmanager_nb.store.records import (
    MAX_ERROR_CHARS,
    OneOffRecord,
    Owner,
    cap_error,
    check_meta,
    claim_record,
    fail_record,
    finish_record,
    start_record,
)

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=timezone.utc)
OWNER = Owner(pid=4242, create_time=1_700_000_000.25, hostname="box", token="a" * 16)
LINUX_OWNER = dataclasses.replace(OWNER, start_ticks=123_456, boot_id="4ee41f0f-6afd-42e8-94f6-2be46d8dde11")

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=10,
)
aware_times = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(timezone.utc)
)


@settings(max_examples=60, deadline=None)
@given(
    name=st.text(min_size=1, max_size=30).filter(str.strip),
    status=st.sampled_from(["queued", "started", "finished", "failed"]),
    created=aware_times,
    started=st.none() | aware_times,
    error=st.none() | st.text(max_size=50),
    attempts=st.integers(0, 1000),
    owner=st.none() | st.just(OWNER) | st.just(LINUX_OWNER),
    meta=st.dictionaries(st.text(max_size=8), json_values, max_size=4),
)
def test_record_survives_a_json_round_trip(name, status, created, started, error, attempts, owner, meta):
    record = OneOffRecord(name, status, created, started, None, error, attempts, owner, meta)
    text = json.dumps(record.to_dict())
    assert OneOffRecord.from_dict(json.loads(text)) == record


def test_datetimes_are_iso_utc_strings_in_json_and_aware_in_python():
    berlin = timezone(timedelta(hours=1))
    record = OneOffRecord("a", "queued", datetime(2026, 1, 5, 10, 0, tzinfo=berlin))
    data = record.to_dict()
    assert data["created_at"] == "2026-01-05T09:00:00+00:00"
    back = OneOffRecord.from_dict(data)
    assert back.created_at.tzinfo is not None and back.created_at.utcoffset() == timedelta(0)


def test_from_dict_accepts_a_z_suffix():
    record = OneOffRecord.from_dict({"name": "a", "status": "queued", "created_at": "2026-01-05T09:00:00Z"})
    assert record.created_at == T0


@pytest.mark.parametrize(
    ("change", "complaint"),
    [
        ({"status": "running"}, "status must be one of"),
        ({"name": ""}, "name must be a non-empty string"),
        ({"created_at": "2026-01-05T09:00:00"}, "no UTC offset"),
        ({"created_at": "yesterday"}, "not an ISO-8601 time"),
        ({"attempts": -1}, "attempts must be a non-negative integer"),
        ({"meta": [1]}, "meta must be an object"),
        ({"owner": {"pid": "x"}}, "owner.pid"),
        ({"owner": {**OWNER.to_dict(), "start_ticks": -1}}, "owner.start_ticks"),
        ({"owner": {**OWNER.to_dict(), "start_ticks": 1.5}}, "owner.start_ticks"),
        ({"owner": {**OWNER.to_dict(), "boot_id": 7}}, "owner.boot_id"),
    ],
)
def test_from_dict_names_the_bad_field(change, complaint):
    data = {"name": "a", "status": "queued", "created_at": "2026-01-05T09:00:00+00:00", **change}
    with pytest.raises(ValueError, match=complaint):
        OneOffRecord.from_dict(data)


def test_an_owner_written_by_an_older_version_reads_without_the_linux_identity():
    old = {"pid": 4242, "create_time": 1_700_000_000.25, "hostname": "box", "token": "a" * 16}
    owner = Owner.from_dict(old)
    assert owner == OWNER and (owner.start_ticks, owner.boot_id) == (None, None)
    assert owner.to_dict() == old  # and it is written back unchanged


def test_an_owner_with_the_linux_identity_keeps_it_in_json():
    data = json.loads(json.dumps(LINUX_OWNER.to_dict()))
    assert (data["start_ticks"], data["boot_id"]) == (123_456, LINUX_OWNER.boot_id)
    assert Owner.from_dict(data) == LINUX_OWNER


def test_record_is_frozen_and_hashable():
    record = OneOffRecord("a", "queued", T0, owner=OWNER, meta={"kind": "inline"})
    with pytest.raises(dataclasses.FrozenInstanceError):
        record.status = "started"  # type: ignore[misc]
    assert hash(record) == hash(dataclasses.replace(record))


def test_claim_of_a_new_name_is_queued_and_owned():
    record = claim_record(None, "a", OWNER, {"kind": "inline"}, T0)
    assert (record.status, record.created_at, record.owner, record.attempts) == ("queued", T0, OWNER, 0)


@pytest.mark.parametrize("status", ["queued", "started", "finished"])
def test_claim_refuses_a_name_that_is_not_failed(status):
    existing = OneOffRecord("a", status, T0)
    with pytest.raises(OneOffAlreadyExecutedError) as caught:
        claim_record(existing, "a", OWNER, None, T0)
    assert str(caught.value).startswith('A "a" one off job has already been executed.')
    assert "only a failed one-off job can be added again" in str(caught.value)


def test_rerun_keeps_attempts_and_creation_time_and_clears_the_error():
    failed = OneOffRecord("a", "failed", T0, T0, T0, "boom", attempts=2, meta={"k": 1})
    later = T0 + timedelta(hours=1)
    record = claim_record(failed, "a", OWNER, None, later)
    assert (record.status, record.attempts, record.error, record.created_at) == ("queued", 2, None, T0)
    assert (record.started_at, record.finished_at, record.meta) == (None, None, {"k": 1})


def test_start_by_another_process_than_the_claimer_is_refused():
    queued = claim_record(None, "a", OWNER, None, T0)
    other = dataclasses.replace(OWNER, token="b" * 16)
    with pytest.raises(InvalidRecordError, match="claimed by another process"):
        start_record(queued, other, T0)


def test_finish_clears_the_owner_and_keeps_the_start():
    started = start_record(claim_record(None, "a", OWNER, None, T0), OWNER, T0 + timedelta(seconds=1))
    done = finish_record(started, T0 + timedelta(seconds=2))
    assert (done.owner, done.started_at, done.finished_at) == (
        None,
        T0 + timedelta(seconds=1),
        T0 + timedelta(seconds=2),
    )


def test_naive_times_are_refused():
    with pytest.raises(ValueError, match="timezone-aware"):
        claim_record(None, "a", OWNER, None, datetime(2026, 1, 1))


def test_long_error_text_keeps_its_end_and_says_it_was_cut():
    text = "".join(f"line {i}\n" for i in range(10_000))
    failed = fail_record(claim_record(None, "a", OWNER, None, T0), text, T0)
    assert failed.error is not None and len(failed.error) <= MAX_ERROR_CHARS
    assert failed.error.startswith("[truncated: the first ")
    assert failed.error.endswith("line 9999\n")
    dropped = int(failed.error.split()[3])
    assert failed.error.split("\n", 1)[1] == text[dropped:]


def test_short_error_text_is_kept_whole():
    assert cap_error("boom") == "boom"


@pytest.mark.parametrize("meta", [{"when": datetime.now()}, {"x": float("nan")}, {1: {2: object()}}])
def test_meta_that_is_not_json_is_refused(meta):
    with pytest.raises(InvalidRecordError, match="cannot be stored as JSON"):
        check_meta(meta)


def test_meta_is_copied_so_later_changes_do_not_leak_in():
    meta = {"tags": ["a"]}
    copy = check_meta(meta)
    meta["tags"].append("b")
    assert copy == {"tags": ["a"]}


def test_importing_the_store_package_leaves_heavy_modules_out():
    repo = Path(jobmanager_nb.__file__).resolve().parents[1]
    code = (
        "import sys, jobmanager_nb.store\n"
        "heavy = ('psutil', 'filelock', 'tinydb', 'IPython', 'ipywidgets')\n"
        "print(sorted(m for m in heavy if m in sys.modules))"
    )
    env = {**os.environ, "PYTHONPATH": str(repo)}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
