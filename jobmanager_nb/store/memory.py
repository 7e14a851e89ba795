"""The in-memory store: one-off records that live as long as the process (the manager's default)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager

from jobmanager_nb.clock import Clock
from jobmanager_nb.store.base import DEFAULT_MAX_FINISHED, StoreBase
from jobmanager_nb.store.records import OneOffRecord

__all__ = ["MemoryStore"]


class MemoryStore(StoreBase):
    """One-off records in a dict, behind a lock. Same rules and retention as :class:`TinyDBStore`."""

    def __init__(self, *, clock: Clock | None = None, max_finished: int = DEFAULT_MAX_FINISHED) -> None:
        super().__init__(clock=clock, max_finished=max_finished)
        self._records: dict[str, OneOffRecord] = {}

    def _exclusive(self) -> AbstractContextManager[object]:
        return self._lock

    def _current(self) -> Mapping[str, OneOffRecord]:
        return self._records

    def _save(self, upserts: Sequence[OneOffRecord], deletes: Sequence[str]) -> None:
        for name in deletes:
            self._records.pop(name, None)
        for record in upserts:
            self._records[record.name] = record

    def __repr__(self) -> str:
        return f"MemoryStore({len(self._records)} records)"
