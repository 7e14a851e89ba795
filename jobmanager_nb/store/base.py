"""The one-off store interface, and the shared implementation both stores build on.

:class:`OneOffStore` is what the manager relies on: seven methods. :class:`StoreBase` implements them
once, over three hooks a backend provides (where the records live, how to lock them, how to save a
change), and applies the retention rule; the status rules come from :mod:`.records`.

A record is *orphaned* when it is ``queued`` or ``started`` and its owner is gone
(:func:`~jobmanager_nb.store.ownership.owner_state`). :meth:`StoreBase.reconcile` marks every orphan
``failed``; :meth:`StoreBase.claim` does the same to the one orphan it meets, in the same locked change,
and then claims the name as a rerun, so a name left behind by a dead kernel can be claimed again at once.
"""

from __future__ import annotations

import heapq
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from datetime import datetime, timedelta
from typing import Any, Protocol, runtime_checkable

from jobmanager_nb.clock import Clock, SystemClock
from jobmanager_nb.errors import JobNotFoundError
from jobmanager_nb.store.ownership import owner_state
from jobmanager_nb.store.records import (
    OneOffRecord,
    Owner,
    check_meta,
    check_name,
    claim_record,
    fail_record,
    finish_record,
    interrupt_record,
    start_record,
)

__all__ = ["DEFAULT_MAX_FINISHED", "OneOffStore", "StoreBase"]

#: Finished records kept before the oldest are pruned (each is what makes its name "already executed").
DEFAULT_MAX_FINISHED = 10_000


@runtime_checkable
class OneOffStore(Protocol):
    """Where one-off job records live. Every method is thread-safe."""

    def claim(self, name: str, owner: Owner, meta: Mapping[str, Any] | None = None) -> OneOffRecord:
        """Insert ``queued`` or requeue a ``failed`` (or orphaned) record; else ``OneOffAlreadyExecutedError``."""
        ...

    def mark_started(self, name: str, owner: Owner) -> OneOffRecord: ...

    def mark_finished(self, name: str) -> OneOffRecord: ...

    def mark_failed(self, name: str, error: str) -> OneOffRecord: ...

    def get(self, name: str) -> OneOffRecord | None: ...

    def records(self) -> list[OneOffRecord]: ...

    def prune(self, older_than: timedelta) -> list[OneOffRecord]:
        """Forget finished and failed records that ended more than ``older_than`` ago; return them."""
        ...


class StoreBase(ABC):
    """The store rules over three hooks: :meth:`_exclusive`, :meth:`_current` and :meth:`_save`."""

    def __init__(self, *, clock: Clock | None = None, max_finished: int = DEFAULT_MAX_FINISHED) -> None:
        if max_finished < 1:
            raise ValueError(f"max_finished must be at least 1, not {max_finished}")
        self._clock: Clock = clock if clock is not None else SystemClock()
        self._max_finished = max_finished
        self._lock = threading.RLock()

    # -- hooks -------------------------------------------------------------------------------------

    @abstractmethod
    def _exclusive(self) -> AbstractContextManager[object]:
        """Hold every lock a read-modify-write needs (at least ``self._lock``)."""

    @abstractmethod
    def _current(self) -> Mapping[str, OneOffRecord]:
        """The up-to-date records by name, in insertion order. Called with ``self._lock`` held."""

    @abstractmethod
    def _save(self, upserts: Sequence[OneOffRecord], deletes: Sequence[str]) -> None:
        """Persist the change completely, then make :meth:`_current` show it; or raise, changing nothing."""

    # -- the interface -------------------------------------------------------------------------------

    def claim(self, name: str, owner: Owner, meta: Mapping[str, Any] | None = None) -> OneOffRecord:
        """A new ``queued`` record for ``name``, owned by ``owner``; or a rerun of a ``failed`` one.

        A ``queued``/``started`` record whose owner is gone is first marked ``failed`` (as
        :meth:`reconcile` would) and then claimed as a rerun, in one locked change; one whose owner is
        alive, or on another host, raises ``OneOffAlreadyExecutedError``, as a finished one does.
        """
        check_name(name)
        meta_copy = check_meta(meta)

        def step(existing: OneOffRecord | None, now: datetime) -> OneOffRecord:
            if existing is not None and _orphaned(existing):
                existing = interrupt_record(existing, now)
            return claim_record(existing, name, owner, meta_copy, now)

        return self._change(name, step)

    def mark_started(self, name: str, owner: Owner) -> OneOffRecord:
        return self._change(name, lambda rec, now: start_record(_found(rec, name), owner, now))

    def mark_finished(self, name: str) -> OneOffRecord:
        return self._change(name, lambda rec, now: finish_record(_found(rec, name), now))

    def mark_failed(self, name: str, error: str) -> OneOffRecord:
        return self._change(name, lambda rec, now: fail_record(_found(rec, name), error, now))

    def get(self, name: str) -> OneOffRecord | None:
        with self._lock:
            return self._current().get(name)

    def records(self) -> list[OneOffRecord]:
        with self._lock:
            return list(self._current().values())

    def prune(self, older_than: timedelta) -> list[OneOffRecord]:
        if older_than < timedelta(0):
            raise ValueError(f"older_than must not be negative, not {older_than}")
        with self._exclusive():
            cutoff = self._clock.now() - older_than
            gone = [
                r
                for r in self._current().values()
                if not r.is_active and r.finished_at is not None and r.finished_at <= cutoff
            ]
            if gone:
                self._save([], [r.name for r in gone])
            return gone

    # -- helpers beyond the interface ---------------------------------------------------------------

    def has_executed_successfully(self, name: str) -> bool:
        """True when a record exists and is not ``failed`` (``queued`` and ``started`` count too), and is
        not orphaned: a ``queued``/``started`` record whose owner is gone is what :meth:`claim` would
        rerun, so it answers False, as a ``failed`` one does (it is not written ``failed`` here)."""
        record = self.get(name)
        return record is not None and record.has_executed_successfully and not _orphaned(record)

    def reconcile(self) -> list[OneOffRecord]:
        """Mark ``queued``/``started`` records whose owning process is gone as ``failed``; return them.

        Records owned by a process on another host are left alone: this process cannot see it.
        """
        with self._exclusive():
            now = self._clock.now()
            orphans = [interrupt_record(r, now) for r in self._current().values() if _orphaned(r)]
            if orphans:
                self._save(orphans, [])
            return orphans

    @property
    def max_finished(self) -> int:
        return self._max_finished

    # -- internals ------------------------------------------------------------------------------------

    def _change(
        self,
        name: str,
        step: Callable[[OneOffRecord | None, datetime], OneOffRecord],
    ) -> OneOffRecord:
        with self._exclusive():
            records = self._current()
            new = step(records.get(name), self._clock.now())
            deletes = self._over_retention(records, new) if new.status == "finished" else []
            self._save([new], deletes)
            return new

    def _over_retention(self, records: Mapping[str, OneOffRecord], new: OneOffRecord) -> list[str]:
        """Names of the oldest finished records to drop once ``new`` is saved, if there are too many.

        Past ``max_finished``, the oldest are dropped down to 1 % below it, so the scan for the oldest
        runs once per 1 % of finishes rather than on every write.
        """
        if len(records) < self._max_finished:  # cheap bound: there cannot be too many finished ones
            return []
        count = 1 + sum(1 for r in records.values() if r.status == "finished" and r.name != new.name)
        if count <= self._max_finished:
            return []
        keep = self._max_finished - max(1, self._max_finished // 100)
        finished = (r for r in records.values() if r.status == "finished" and r.name != new.name)
        oldest = heapq.nsmallest(count - keep, finished, key=_finish_order)
        return [r.name for r in oldest]


def _orphaned(record: OneOffRecord) -> bool:
    """``queued``/``started``, and its owner is gone (or unknown): nobody will ever finish it."""
    return record.is_active and (record.owner is None or owner_state(record.owner) == "gone")


def _finish_order(record: OneOffRecord) -> datetime:
    return record.finished_at or record.created_at


def _found(record: OneOffRecord | None, name: str) -> OneOffRecord:
    if record is None:
        raise JobNotFoundError(f'No one-off job record named "{name}"; claim it first.')
    return record
