"""Persisted one-off job records: ``MemoryStore()`` or ``TinyDBStore(path)``, one small interface.

See ``docs/store.md`` for the file format, the guarantees, retention and what to do with a corrupt
file. Importing this package is cheap: psutil and filelock are imported on first use.
"""

from __future__ import annotations

from jobmanager_nb.store.base import DEFAULT_MAX_FINISHED, OneOffStore, StoreBase
from jobmanager_nb.store.memory import MemoryStore
from jobmanager_nb.store.ownership import current_owner, owner_state
from jobmanager_nb.store.records import (
    INTERRUPTED_ERROR,
    MAX_ERROR_CHARS,
    STATUSES,
    OneOffRecord,
    Owner,
    Status,
)
from jobmanager_nb.store.tinydb_store import DEFAULT_STORE_PATH, SCHEMA_VERSION, TinyDBStore

__all__ = [
    "DEFAULT_MAX_FINISHED",
    "DEFAULT_STORE_PATH",
    "INTERRUPTED_ERROR",
    "MAX_ERROR_CHARS",
    "SCHEMA_VERSION",
    "STATUSES",
    "MemoryStore",
    "OneOffRecord",
    "OneOffStore",
    "Owner",
    "Status",
    "StoreBase",
    "TinyDBStore",
    "current_owner",
    "owner_state",
]
