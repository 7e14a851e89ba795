"""TinyDBStore across real processes: writers killed mid-write, kernels racing for the same names,
and reconciliation of records whose owning kernel died. Children are ``python -c`` subprocesses that
report each confirmed write as a line on stdout; the parent waits on those lines (with timeouts)."""

from __future__ import annotations

import json
import os
import random
import select
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

import jobmanager_nb
from jobmanager_nb.store import INTERRUPTED_ERROR, SCHEMA_VERSION, OneOffRecord, TinyDBStore
from jobmanager_nb.store.atomic import stale_temp_files

REPO = Path(jobmanager_nb.__file__).resolve().parents[1]
TIMEOUT = 60.0


class Child:
    """A ``python -c code args...`` subprocess whose stdout lines are read with a timeout."""

    def __init__(self, code: str, *args: object) -> None:
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        self.proc = subprocess.Popen(
            [sys.executable, "-c", code, *map(str, args)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
        )
        assert self.proc.stdout is not None
        self._fd = self.proc.stdout.fileno()
        self._buffer = b""

    def line(self, timeout: float = TIMEOUT) -> str | None:
        """The next line, or None once the child has closed stdout (exited)."""
        deadline = time.monotonic() + timeout
        while b"\n" not in self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self.proc.kill()
                raise TimeoutError(f"no line from the child within {timeout} s; stderr: {self._stderr()}")
            ready, _, _ = select.select([self._fd], [], [], remaining)
            if not ready:
                continue
            chunk = os.read(self._fd, 1 << 16)
            if not chunk:
                # A last line without its newline was cut short by a kill: it confirms nothing.
                self._buffer = b""
                return None
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        return line.decode()

    def expect(self, text: str) -> None:
        line = self.line()
        assert line == text, f"expected {text!r} from the child, got {line!r}; stderr: {self._stderr()}"

    def rest(self) -> list[str]:
        """Every line still to come, up to EOF."""
        lines = []
        while (line := self.line()) is not None:
            lines.append(line)
        return lines

    def send(self, text: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(text.encode())
        self.proc.stdin.flush()

    def kill(self) -> None:
        os.kill(self.proc.pid, signal.SIGKILL)

    def finish(self) -> int:
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None:
                stream.close()
        code = self.proc.wait(timeout=TIMEOUT)
        self._stderr()
        return code

    def _stderr(self) -> str:
        if self.proc.poll() is None or self.proc.stderr is None or self.proc.stderr.closed:
            return "(still running)"
        text = self.proc.stderr.read().decode(errors="replace")
        self.proc.stderr.close()
        return text


# ------------------------------------------------------------------------------------------ crash safety

WRITER = """
import sys
from jobmanager_nb.store import TinyDBStore, current_owner
store, owner, prefix = TinyDBStore(sys.argv[1]), current_owner(), sys.argv[2]
print("ready", flush=True)
for i in range(10**6):
    name = f"{prefix}-{i}"
    store.claim(name, owner, {"round": prefix}); print("queued", name, flush=True)
    store.mark_started(name, owner); print("started", name, flush=True)
    if i % 4 == 3:
        store.mark_failed(name, "boom " * 40); print("failed", name, flush=True)
    else:
        store.mark_finished(name); print("finished", name, flush=True)
"""

# What a record may be after its write of status X was confirmed: the next write may have landed before
# the kill, and reconciliation (by the next writer) turns the dead writer's queued/started ones failed.
ALLOWED = {
    "queued": {"queued", "started", "finished", "failed"},
    "started": {"started", "finished", "failed"},
    "finished": {"finished"},
    "failed": {"failed"},
}
KILLS = 40


def check_file(path: Path, confirmed: dict[str, str]) -> None:
    content = json.loads(path.read_bytes())  # it parses ...
    assert content["jobmanager_nb"]["1"]["schema"] == SCHEMA_VERSION  # ... is a store ...
    records = [OneOffRecord.from_dict(doc) for doc in content["one_off_jobs"].values()]  # ... of valid records
    status = {r.name: r.status for r in records}
    missing = sorted(set(confirmed) - set(status))
    assert not missing, f"confirmed writes lost: {missing}"
    wrong = {n: (s, status[n]) for n, s in confirmed.items() if status[n] not in ALLOWED[s]}
    assert not wrong, f"confirmed status went backwards (confirmed, on disk): {wrong}"


def test_a_writer_killed_at_random_moments_always_leaves_a_valid_file_with_every_confirmed_write(tmp_path):
    path = tmp_path / "jobs.json"
    seed = random.randrange(2**32)
    rng = random.Random(seed)
    print(f"random seed {seed}")  # shown by pytest if the test fails
    confirmed: dict[str, str] = {}
    for kill in range(KILLS):
        child = Child(WRITER, path, f"k{kill}")
        child.expect("ready")
        for _ in range(rng.randint(1, 10)):
            status, name = child.line().split()  # type: ignore[union-attr]
            confirmed[name] = status
        if rng.random() < 0.5:
            time.sleep(rng.uniform(0, 0.004))  # a random kill moment (not synchronisation)
        child.kill()
        for line in child.rest():  # confirmations already in the pipe when it died
            status, name = line.split()
            confirmed[name] = status
        assert child.finish() == -signal.SIGKILL
        check_file(path, confirmed)
    store = TinyDBStore(path)
    assert all(not r.is_active for r in store.records())
    assert stale_temp_files(path) == []
    unconfirmed = {r.name for r in store.records()} - set(confirmed)
    assert len(unconfirmed) <= KILLS  # at most the one write each kill interrupted after it landed


# ------------------------------------------------------------------------------------------ several kernels

CLAIMER = """
import sys
from jobmanager_nb.errors import OneOffAlreadyExecutedError
from jobmanager_nb.store import TinyDBStore, current_owner
store, owner = TinyDBStore(sys.argv[1]), current_owner()
names = sys.argv[2].split(",")
print("ready", flush=True)
sys.stdin.readline()
for name in names:
    try:
        store.claim(name, owner)
    except OneOffAlreadyExecutedError:
        print("lost", name, flush=True)
        continue
    store.mark_started(name, owner)
    store.mark_finished(name)
    print("won", name, flush=True)
print("done", flush=True)
"""


def race(path: Path, name_lists: list[list[str]]) -> list[list[str]]:
    """Start one claimer per list, release them together, return each one's report lines."""
    children = [Child(CLAIMER, path, ",".join(names)) for names in name_lists]
    for child in children:
        child.expect("ready")
    for child in children:
        child.send("go\n")
    reports = []
    for child in children:
        lines = child.rest()
        assert lines[-1:] == ["done"], lines
        assert child.finish() == 0
        reports.append(lines[:-1])
    return reports


def test_kernels_racing_for_the_same_names_claim_each_exactly_once(tmp_path):
    path = tmp_path / "jobs.json"
    names = [f"job{i}" for i in range(50)]
    reports = race(path, [names] * 4)
    wins = Counter(line.split()[1] for report in reports for line in report if line.startswith("won"))
    assert wins == Counter(names), "every name won exactly once"
    assert all(len(report) == len(names) for report in reports)
    records = TinyDBStore(path).records()
    assert sorted(r.name for r in records) == sorted(names)
    assert {(r.status, r.attempts) for r in records} == {("finished", 1)}


def test_kernels_writing_at_the_same_time_lose_no_update(tmp_path):
    path = tmp_path / "jobs.json"
    name_lists = [[f"p{k}-{i}" for i in range(25)] for k in range(4)]
    reports = race(path, name_lists)
    assert all(line.startswith("won") for report in reports for line in report)
    records = {r.name: r for r in TinyDBStore(path).records()}
    assert sorted(records) == sorted(n for names in name_lists for n in names)
    assert {r.status for r in records.values()} == {"finished"}


def test_store_objects_in_threads_of_one_process_lose_no_update(tmp_path):
    import threading

    from jobmanager_nb.store import current_owner

    path = tmp_path / "jobs.json"
    owner = current_owner()
    shared = TinyDBStore(path)
    stores = [shared, shared, TinyDBStore(path), TinyDBStore(path)]
    barrier = threading.Barrier(len(stores))

    def work(k: int) -> None:
        barrier.wait(timeout=10)
        for i in range(15):
            stores[k].claim(f"t{k}-{i}", owner)
            stores[k].mark_started(f"t{k}-{i}", owner)
            stores[k].mark_finished(f"t{k}-{i}")

    threads = [threading.Thread(target=work, args=(k,)) for k in range(len(stores))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=TIMEOUT)
    assert len(TinyDBStore(path).records()) == 60


# ------------------------------------------------------------------------------------------ reconciliation

HOLDER = """
import sys
from jobmanager_nb.store import TinyDBStore, current_owner
store, owner = TinyDBStore(sys.argv[1]), current_owner()
store.claim("nightly", owner); store.mark_started("nightly", owner)
store.claim("waiting", owner)
print("holding", flush=True)
sys.stdin.readline()
"""


def test_records_of_a_killed_kernel_are_marked_failed_when_the_store_is_next_opened(tmp_path):
    path = tmp_path / "jobs.json"
    child = Child(HOLDER, path)
    child.expect("holding")
    child.kill()
    child.finish()
    store = TinyDBStore(path)
    assert sorted(r.name for r in store.reconciled) == ["nightly", "waiting"]
    nightly = store.get("nightly")
    assert (nightly.status, nightly.error, nightly.attempts) == ("failed", INTERRUPTED_ERROR, 1)
    assert store.claim("nightly", _me()).status == "queued"  # it can be rerun


def test_records_of_a_live_kernel_are_left_alone(tmp_path):
    path = tmp_path / "jobs.json"
    child = Child(HOLDER, path)
    child.expect("holding")
    store = TinyDBStore(path)
    assert store.reconciled == []
    assert store.get("nightly").status == "started"
    child.send("\n")  # let it exit without finishing: now its records are orphans
    assert child.finish() == 0
    assert sorted(r.name for r in store.reconcile()) == ["nightly", "waiting"]


def test_records_owned_by_this_process_survive_reconciliation(tmp_path):
    path = tmp_path / "jobs.json"
    TinyDBStore(path).claim("mine", _me())
    assert TinyDBStore(path).get("mine").status == "queued"


def _me():
    from jobmanager_nb.store import current_owner

    return current_owner()


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"start_ticks": -5}, "failed"),  # our pid, but an earlier process
        ({"boot_id": "00000000-0000-4000-8000-000000000000"}, "failed"),  # before the last reboot
        ({"hostname": "elsewhere.example"}, "queued"),
    ],
    ids=["pid-reused", "other-boot", "other-host"],
)
def test_reconciliation_fails_a_reused_pid_and_leaves_another_hosts_records(tmp_path, change, expected):
    import dataclasses

    me = _me()
    fields = {**change, "token": "e" * 16}
    if "start_ticks" in fields:
        fields["start_ticks"] = me.start_ticks + fields["start_ticks"]
    owner = dataclasses.replace(me, **fields)
    store = TinyDBStore(tmp_path / "jobs.json")
    store.claim("job", owner)
    store.reconcile()
    assert store.get("job").status == expected


# ------------------------------------------------------------------------------------------ reconcile on claim


def test_a_name_left_started_by_a_killed_kernel_is_rerun_when_claimed_in_an_already_open_store(tmp_path):
    path = tmp_path / "jobs.json"
    store = TinyDBStore(path)  # opened before the kernel dies: opening cannot have reconciled it
    child = Child(HOLDER, path)
    child.expect("holding")
    assert store.get("nightly").status == "started"
    child.kill()
    assert child.finish() == -signal.SIGKILL
    dead = store.get("nightly").owner
    record = store.claim("nightly", _me(), {"kind": "inline"})
    assert (record.status, record.owner, record.attempts, record.meta) == ("queued", _me(), 1, {"kind": "inline"})
    assert record.error is None and record.started_at is None
    assert TinyDBStore(path, reconcile=False).get("nightly") == record  # one write, on disk
    assert store.get("waiting").owner == dead  # only the claimed name is touched
    store.mark_started("nightly", _me())
    assert store.mark_finished("nightly").attempts == 2


def test_a_name_queued_by_a_killed_kernel_not_yet_reaped_is_rerun_when_claimed(tmp_path):
    path = tmp_path / "jobs.json"
    store = TinyDBStore(path)
    child = Child(HOLDER, path)
    child.expect("holding")
    child.kill()
    os.waitid(os.P_PID, child.proc.pid, os.WEXITED | os.WNOWAIT)  # dead, still a zombie
    assert store.claim("waiting", _me()).status == "queued"
    child.finish()


def test_a_name_held_by_a_live_kernel_is_still_refused_when_claimed(tmp_path):
    from jobmanager_nb.errors import OneOffAlreadyExecutedError

    path = tmp_path / "jobs.json"
    store = TinyDBStore(path)
    child = Child(HOLDER, path)
    child.expect("holding")
    before = path.read_bytes()
    for name, status in (("nightly", "started"), ("waiting", "queued")):
        with pytest.raises(OneOffAlreadyExecutedError, match=f'Its record is "{status}"'):
            store.claim(name, _me())
    assert path.read_bytes() == before
    child.send("\n")
    assert child.finish() == 0
    assert store.claim("nightly", _me()).status == "queued"  # now its kernel has exited


def test_a_name_held_on_another_host_is_still_refused_when_claimed(tmp_path):
    import dataclasses

    from jobmanager_nb.errors import OneOffAlreadyExecutedError

    store = TinyDBStore(tmp_path / "jobs.json")
    store.claim("job", dataclasses.replace(_me(), hostname="elsewhere.example", token="e" * 16))
    with pytest.raises(OneOffAlreadyExecutedError):
        store.claim("job", _me())
    assert store.get("job").owner.hostname == "elsewhere.example"
