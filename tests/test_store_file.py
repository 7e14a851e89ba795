"""TinyDBStore's file: format, permissions, caching, and refusing corrupt or foreign files untouched."""

from __future__ import annotations

import ast
import json
import os
import pickle
import stat
from pathlib import Path

import pytest

from jobmanager_nb.errors import CorruptStoreError, InvalidRecordError, StoreError
from jobmanager_nb.store import DEFAULT_STORE_PATH, SCHEMA_VERSION, TinyDBStore, current_owner
from jobmanager_nb.store.atomic import stale_temp_files


@pytest.fixture
def path(tmp_path):
    return tmp_path / "jobs.json"


@pytest.fixture
def owner():
    return current_owner()


def run_one(store, name, owner):
    store.claim(name, owner, {"kind": "inline"})
    store.mark_started(name, owner)
    return store.mark_finished(name)


def mode(p: Path) -> int:
    return stat.S_IMODE(os.stat(p).st_mode)


def test_default_path_is_a_hidden_folder_next_to_the_notebook(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    store = TinyDBStore()
    assert Path(".jobmanager/jobs.json") == DEFAULT_STORE_PATH
    assert store.path == tmp_path / ".jobmanager" / "jobs.json"
    assert store.path.is_file()


def test_new_file_and_folders_are_private_to_the_owner(tmp_path, owner):
    store = TinyDBStore(tmp_path / "a" / "b" / "jobs.json")
    run_one(store, "x", owner)
    assert mode(store.path) == 0o600
    assert mode(store.path.parent) == 0o700
    assert mode(Path(f"{store.path}.lock")) == 0o600


def test_file_is_json_with_a_schema_version_and_iso_utc_times(path, owner):
    store = TinyDBStore(path)
    record = run_one(store, "nightly", owner)
    content = json.loads(path.read_text())
    assert content["jobmanager_nb"]["1"]["schema"] == SCHEMA_VERSION
    (doc,) = content["one_off_jobs"].values()
    assert doc["name"] == "nightly" and doc["status"] == "finished"
    assert doc["finished_at"] == record.finished_at.isoformat()
    assert doc["finished_at"].endswith("+00:00")


def test_plain_tinydb_can_read_the_file(path, owner):
    from tinydb import Query, TinyDB

    store = TinyDBStore(path)
    run_one(store, "a", owner)
    store.claim("b", owner)
    with TinyDB(path, access_mode="r") as db:
        finished = db.table("one_off_jobs").search(Query().status == "finished")
    assert [doc["name"] for doc in finished] == ["a"]


def test_records_survive_reopening(path, owner):
    first = TinyDBStore(path)
    run_one(first, "a", owner)
    first.claim("b", owner, {"kind": "offloaded", "ref": "jobs/b.py"})
    assert TinyDBStore(path).records() == first.records()


def test_an_unchanged_file_is_not_parsed_again(path, owner):
    store = TinyDBStore(path)
    run_one(store, "a", owner)
    parsed = store.parse_count
    for _ in range(20):
        store.get("a")
        store.records()
    run_one(store, "b", owner)  # our own writes do not need a re-read either
    assert store.parse_count == parsed


def test_a_write_by_another_store_is_seen_at_once(path, owner):
    ours, theirs = TinyDBStore(path), TinyDBStore(path)
    parsed = ours.parse_count
    run_one(theirs, "a", owner)
    assert ours.get("a").status == "finished"
    assert ours.parse_count == parsed + 1
    with pytest.raises(Exception, match="already been executed"):
        ours.claim("a", owner)


def test_a_zero_byte_file_is_initialised(path, owner):
    path.touch()
    store = TinyDBStore(path)
    assert json.loads(path.read_text())["jobmanager_nb"]["1"]["schema"] == SCHEMA_VERSION
    run_one(store, "a", owner)


CORRUPT = [
    pytest.param(
        b'{"jobmanager_nb": {"1": {"schema": 1}},\n  "one_off_jobs": {\n    "1": {"na',
        r"not JSON \(.* at line 3",
        id="truncated",
    ),
    pytest.param(b"\xff\xfe\x00garbage", "not UTF-8 text", id="binary"),
    pytest.param(b'{"_default": {"1": {"name": "x"}}}', "JSON but not a jobmanager_nb store", id="tinydb"),
    pytest.param(b"[1, 2, 3]", "JSON but not a jobmanager_nb store", id="array"),
    pytest.param(b"{}", "JSON but not a jobmanager_nb store", id="empty-object"),
    pytest.param(b'{"jobmanager_nb": {"1": {"schema": 99}}}', "schema version 99, newer than", id="newer"),
    pytest.param(
        b'{"jobmanager_nb": {"1": {"schema": 1}}, "one_off_jobs": {"1": {"name": "a", "status": "running"}}}',
        "record 1 is invalid: status must be one of",
        id="bad-record",
    ),
    # pickles of a would-be store are refused as what they are (bytes, or text that is not JSON): never unpickled
    pytest.param(pickle.dumps({"jobmanager_nb": {"1": {"schema": 1}}}, protocol=5), "not UTF-8 text", id="pickle"),
    pytest.param(pickle.dumps({"jobmanager_nb": {"1": {"schema": 1}}}, protocol=0), "not JSON", id="pickle-text"),
]


@pytest.mark.parametrize(("content", "complaint"), CORRUPT)
def test_a_corrupt_or_foreign_file_is_refused_and_left_byte_identical(path, content, complaint):
    path.write_bytes(content)
    with pytest.raises(CorruptStoreError, match=complaint) as caught:
        TinyDBStore(path)
    message = str(caught.value)
    assert str(path) in message
    assert "left untouched" in message and "another path" in message
    assert path.read_bytes() == content
    assert stale_temp_files(path) == []


def test_a_file_corrupted_while_open_is_refused_and_not_overwritten(path, owner):
    store = TinyDBStore(path)
    run_one(store, "a", owner)
    path.write_bytes(b"oops")
    with pytest.raises(CorruptStoreError, match="not JSON"):
        store.claim("b", owner)
    with pytest.raises(CorruptStoreError):
        store.get("a")
    assert path.read_bytes() == b"oops"


def test_refused_meta_leaves_the_file_byte_identical(path, owner):
    store = TinyDBStore(path)
    run_one(store, "a", owner)
    before = path.read_bytes()
    with pytest.raises(InvalidRecordError):
        store.claim("b", owner, {"big": "x" * 10_000})
    assert path.read_bytes() == before


def test_a_deleted_file_is_recreated_on_the_next_write(path, owner):
    store = TinyDBStore(path)
    run_one(store, "a", owner)
    path.unlink()
    assert store.get("a") is None
    run_one(store, "a", owner)
    assert TinyDBStore(path).get("a").status == "finished"


def test_a_file_written_by_an_older_version_opens_and_its_owners_are_judged_by_their_start_time(path):
    """Owners without start_ticks and boot_id (written before they existed) fall back to create_time."""
    me = current_owner()
    old = {"pid": me.pid, "create_time": me.create_time, "hostname": me.hostname, "token": me.token}
    dead = {**old, "create_time": me.create_time - 3600, "token": "d" * 16}
    times = {"created_at": "2026-01-05T09:00:00+00:00", "started_at": "2026-01-05T09:00:01+00:00"}
    records = {
        str(i): {
            "name": name,
            "status": "started",
            **times,
            "finished_at": None,
            "attempts": 1,
            "error": None,
            "owner": owner,
            "meta": {},
        }
        for i, (name, owner) in enumerate((("mine", old), ("orphan", dead)), start=1)
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"jobmanager_nb": {"1": {"schema": 1}}, "one_off_jobs": records}))
    store = TinyDBStore(path)
    assert [r.name for r in store.reconciled] == ["orphan"]
    mine = store.get("mine")
    assert mine.status == "started" and (mine.owner.start_ticks, mine.owner.boot_id) == (None, None)
    assert store.mark_finished("mine").status == "finished"


def test_opening_removes_temporary_files_left_by_killed_writers(path):
    TinyDBStore(path)
    leftover = path.with_name(f".{path.name}.0123456789ab.tmp")
    leftover.write_bytes(b"half a wri")
    TinyDBStore(path)
    assert not leftover.exists()


def test_a_folder_in_place_of_the_file_is_refused(tmp_path):
    (tmp_path / "jobs.json").mkdir()
    with pytest.raises(StoreError, match="not a regular file"):
        TinyDBStore(tmp_path / "jobs.json")


def test_the_store_reads_only_json_and_imports_no_unpickler():
    package = Path(__file__).resolve().parents[1] / "jobmanager_nb" / "store"
    unpicklers = {"pickle", "cloudpickle", "marshal", "shelve", "dill"}
    for module in package.glob("*.py"):
        for node in ast.walk(ast.parse(module.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            assert not {n.split(".")[0] for n in names} & unpicklers, f"{module.name} imports {names}"


def test_a_write_is_synced_to_disk_before_the_rename_and_the_rename_after(tmp_path, monkeypatch):
    """What the kill test cannot see: the data reaches the disk before the new name does (fsync of the
    temporary file, then the atomic rename, then fsync of the folder that holds the name)."""
    from jobmanager_nb.store import atomic

    steps: list[tuple[str, str]] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        steps.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
        real_fsync(fd)

    def replace(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
        steps.append(("replace", f"{Path(src).name} -> {Path(dst).name}"))
        real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    target = tmp_path / "jobs.json"
    atomic.write_atomically(target, b"{}")
    monkeypatch.undo()

    assert [kind for kind, _ in steps] == ["fsync", "replace", "fsync"]
    temp = Path(steps[0][1]).name
    assert temp.startswith(".jobs.json.") and temp.endswith(".tmp")
    assert steps[1][1] == f"{temp} -> jobs.json"
    assert steps[2][1] == str(tmp_path)
    assert target.read_bytes() == b"{}" and stat.S_IMODE(target.stat().st_mode) == 0o600
