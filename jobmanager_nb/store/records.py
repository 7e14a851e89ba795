"""One-off job records as plain data, and the rules for moving them from one status to the next.

A record is a frozen :class:`OneOffRecord`; every change makes a new one. The functions here are pure:
they take the current record (or ``None``) and the time, and return the next record or raise. Stores
(:mod:`.memory`, :mod:`.tinydb_store`) only decide where records live; the rules are all here::

    (none) ── claim ──▶ queued ── start ──▶ started ── finish ──▶ finished
                          │                 │    ▲
                          │                 └────┘ start again (a retry, same owner)
                          └──── fail ───────┴──── fail ──▶ failed ── claim (a rerun) ──▶ queued

A ``queued`` or ``started`` record names its :class:`Owner`, the process that claimed it, so that a
later process can tell whether that owner is still alive (see :mod:`.ownership`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Literal, cast

from jobmanager_nb.errors import InvalidRecordError, OneOffAlreadyExecutedError

__all__ = [
    "ACTIVE_STATUSES",
    "ENDED_STATUSES",
    "INTERRUPTED_ERROR",
    "MAX_ERROR_CHARS",
    "MAX_META_CHARS",
    "STATUSES",
    "OneOffRecord",
    "Owner",
    "Status",
    "cap_error",
    "check_meta",
    "check_name",
    "claim_record",
    "fail_record",
    "finish_record",
    "interrupt_record",
    "start_record",
]

Status = Literal["queued", "started", "finished", "failed"]

STATUSES: tuple[Status, ...] = ("queued", "started", "finished", "failed")
ACTIVE_STATUSES: frozenset[str] = frozenset({"queued", "started"})
ENDED_STATUSES: frozenset[str] = frozenset({"finished", "failed"})

#: The error text of a record whose owning process went away while it was queued or started.
INTERRUPTED_ERROR = "interrupted: the kernel running it exited"

#: Error text longer than this keeps only its end (the end of a traceback says the most).
MAX_ERROR_CHARS = 20_000

#: ``meta`` is for a few display fields (job kind, a reference); its JSON may be at most this long.
MAX_META_CHARS = 8_192


@dataclass(frozen=True)
class Owner:
    """The process that claimed a record: enough to tell later whether it is still alive.

    ``pid`` alone is not enough (PIDs are reused), so the process start time is kept too; ``hostname``
    says which machine the pid belongs to, and ``token`` is random per process, so two owners are the
    same only when they are the same process.

    ``start_ticks`` (the start in clock ticks since boot) and ``boot_id`` (which boot of the machine) are
    the exact, clock-independent identity on Linux; they are ``None`` where ``/proc`` is missing and in
    records written by older versions, which then fall back to ``create_time`` (wall-clock seconds, also
    shown to people). ``pid_ns`` is the pid namespace the pid belongs to (``(st_dev, st_ino)`` of
    ``/proc/self/ns/pid``): a kernel in a container that shares the host's hostname and boot id counts
    its pids in another namespace. It is ``None`` where unknown (no ``/proc``, older records). See
    :func:`~jobmanager_nb.store.ownership.owner_state`.
    """

    pid: int
    create_time: float
    hostname: str
    token: str
    start_ticks: int | None = None
    boot_id: str | None = None
    pid_ns: tuple[int, int] | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data; the Linux identity fields appear only when known (older readers ignore them)."""
        data: dict[str, Any] = {
            "pid": self.pid,
            "create_time": self.create_time,
            "hostname": self.hostname,
            "token": self.token,
        }
        if self.start_ticks is not None:
            data["start_ticks"] = self.start_ticks
        if self.boot_id is not None:
            data["boot_id"] = self.boot_id
        if self.pid_ns is not None:
            data["pid_ns"] = list(self.pid_ns)
        return data

    @classmethod
    def from_dict(cls, data: Any) -> Owner:
        """The inverse of :meth:`to_dict`; accepts older forms without ``start_ticks``/``boot_id``/``pid_ns``."""
        if not isinstance(data, dict):
            raise ValueError(f"owner must be an object, not {type(data).__name__}")
        pid, create_time = data.get("pid"), data.get("create_time")
        hostname, token = data.get("hostname"), data.get("token")
        start_ticks, boot_id = data.get("start_ticks"), data.get("boot_id")
        if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
            raise ValueError(f"owner.pid must be a positive integer, not {pid!r}")
        if not isinstance(create_time, (int, float)) or isinstance(create_time, bool):
            raise ValueError(f"owner.create_time must be a number, not {create_time!r}")
        if not isinstance(hostname, str) or not isinstance(token, str):
            raise ValueError("owner.hostname and owner.token must be strings")
        if start_ticks is not None and (
            not isinstance(start_ticks, int) or isinstance(start_ticks, bool) or start_ticks < 0
        ):
            raise ValueError(f"owner.start_ticks must be a non-negative integer or null, not {start_ticks!r}")
        if boot_id is not None and (not isinstance(boot_id, str) or not boot_id):
            raise ValueError(f"owner.boot_id must be a non-empty string or null, not {boot_id!r}")
        pid_ns = _pid_ns_from_json(data.get("pid_ns"))
        return cls(
            pid=pid,
            create_time=float(create_time),
            hostname=hostname,
            token=token,
            start_ticks=start_ticks,
            boot_id=boot_id,
            pid_ns=pid_ns,
        )

    def describe(self) -> str:
        return f"pid {self.pid} on {self.hostname}"


def _pid_ns_from_json(value: Any) -> tuple[int, int] | None:
    """``owner.pid_ns`` as stored (``[st_dev, st_ino]`` or null) as a tuple; ValueError when malformed."""
    if value is None:
        return None
    if (
        isinstance(value, list)
        and len(value) == 2
        and all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value)
    ):
        return (value[0], value[1])
    raise ValueError(f"owner.pid_ns must be two non-negative integers or null, not {value!r}")


@dataclass(frozen=True)
class OneOffRecord:
    """What the store knows about one one-off job name. Times are aware UTC datetimes.

    ``attempts`` counts the runs that started; ``error`` is the last failure's text (``None`` unless
    ``failed``); ``owner`` is set while the record is ``queued`` or ``started``; ``meta`` is a small JSON
    dict the manager sets for display. Treat ``meta`` as read-only.
    """

    name: str
    status: Status
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    error: str | None = None
    attempts: int = 0
    owner: Owner | None = None
    meta: dict[str, Any] = field(default_factory=dict, hash=False)

    @property
    def has_executed_successfully(self) -> bool:
        """Ghost's rule: any record that is not ``failed`` counts (``queued`` and ``started`` too)."""
        return self.status != "failed"

    @property
    def is_active(self) -> bool:
        """``queued`` or ``started``: some process owns it right now."""
        return self.status in ACTIVE_STATUSES

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data; datetimes become ISO-8601 UTC strings."""
        return {
            "name": self.name,
            "status": self.status,
            "created_at": _iso(self.created_at),
            "started_at": _iso(self.started_at),
            "finished_at": _iso(self.finished_at),
            "attempts": self.attempts,
            "error": self.error,
            "owner": None if self.owner is None else self.owner.to_dict(),
            "meta": self.meta,
        }

    @classmethod
    def from_dict(cls, data: Any) -> OneOffRecord:
        """The inverse of :meth:`to_dict`; raises ``ValueError`` saying which field is wrong."""
        if not isinstance(data, dict):
            raise ValueError(f"a record must be an object, not {type(data).__name__}")
        name, status = data.get("name"), data.get("status")
        if not isinstance(name, str) or not name:
            raise ValueError(f"name must be a non-empty string, not {name!r}")
        if status not in STATUSES:
            raise ValueError(f"status must be one of {', '.join(STATUSES)}, not {status!r}")
        attempts = data.get("attempts", 0)
        if not isinstance(attempts, int) or isinstance(attempts, bool) or attempts < 0:
            raise ValueError(f"attempts must be a non-negative integer, not {attempts!r}")
        error = data.get("error")
        if error is not None and not isinstance(error, str):
            raise ValueError(f"error must be text or null, not {type(error).__name__}")
        meta = data.get("meta", {})
        if not isinstance(meta, dict):
            raise ValueError(f"meta must be an object, not {type(meta).__name__}")
        created_at = _parse_time(data.get("created_at"), "created_at")
        if created_at is None:
            raise ValueError("created_at is missing")
        owner_data = data.get("owner")
        return cls(
            name=name,
            status=cast(Status, status),
            created_at=created_at,
            started_at=_parse_time(data.get("started_at"), "started_at"),
            finished_at=_parse_time(data.get("finished_at"), "finished_at"),
            error=error,
            attempts=attempts,
            owner=None if owner_data is None else Owner.from_dict(owner_data),
            meta=meta,
        )


def _iso(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    if moment.tzinfo is None:
        raise ValueError(f"naive datetime {moment!r}: the store keeps aware UTC times only")
    return moment.astimezone(timezone.utc).isoformat()


def _parse_time(text: Any, what: str) -> datetime | None:
    if text is None:
        return None
    if not isinstance(text, str):
        raise ValueError(f"{what} must be an ISO-8601 string, not {type(text).__name__}")
    try:
        moment = datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith("Z") else text)
    except ValueError:
        raise ValueError(f"{what} is not an ISO-8601 time: {text!r}") from None
    if moment.tzinfo is None:
        raise ValueError(f"{what} has no UTC offset: {text!r}")
    return moment.astimezone(timezone.utc)


def _utc(now: datetime) -> datetime:
    if now.tzinfo is None:
        raise ValueError("the store needs timezone-aware times; the clock returned a naive datetime")
    return now.astimezone(timezone.utc)


# ---------------------------------------------------------------------------------------- input checks


def check_name(name: object) -> str:
    """A one-off name is a non-empty string."""
    if not isinstance(name, str) or not name.strip():
        raise InvalidRecordError(f"A one-off job name must be a non-empty string, not {name!r}.")
    return name


def check_meta(meta: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """Return a private JSON copy of ``meta``, or refuse it before anything is written."""
    if meta is None:
        return None
    if not isinstance(meta, Mapping):
        raise InvalidRecordError(f"meta must be a dict of JSON values, not {type(meta).__name__}.")
    try:
        text = json.dumps(dict(meta), allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        raise InvalidRecordError(
            f"meta cannot be stored as JSON ({exc}); use only str, int, float, bool, None, lists "
            "and dicts with string keys. Nothing was written."
        ) from None
    if len(text) > MAX_META_CHARS:
        raise InvalidRecordError(
            f"meta is {len(text)} characters of JSON; at most {MAX_META_CHARS} are kept per record. "
            "Keep only a few display fields there. Nothing was written."
        )
    copy = json.loads(text)
    assert isinstance(copy, dict)
    return copy


def cap_error(text: str, limit: int = MAX_ERROR_CHARS) -> str:
    """Keep at most ``limit`` characters: a note saying how much was dropped, then the end of the text."""
    if len(text) <= limit:
        return text
    # The note's length depends on the count it shows; size it for the largest possible count.
    keep = max(1, limit - len(_TRUNCATION_NOTE.format(len(text))))
    return _TRUNCATION_NOTE.format(len(text) - keep) + text[-keep:]


_TRUNCATION_NOTE = "[truncated: the first {} characters were dropped]\n"


# ---------------------------------------------------------------------------------------- transitions


def claim_record(
    existing: OneOffRecord | None,
    name: str,
    owner: Owner,
    meta: dict[str, Any] | None,
    now: datetime,
) -> OneOffRecord:
    """No record → a new ``queued`` one; a ``failed`` one → ``queued`` again (a rerun); else refuse."""
    now = _utc(now)
    if existing is None:
        return OneOffRecord(name=name, status="queued", created_at=now, owner=owner, meta=meta or {})
    if existing.status != "failed":
        raise OneOffAlreadyExecutedError(
            f'A "{name}" one off job has already been executed. Its record is "{existing.status}"; '
            "only a failed one-off job can be added again, so give it a new name to run it once more."
        )
    return OneOffRecord(
        name=name,
        status="queued",
        created_at=existing.created_at,
        attempts=existing.attempts,
        owner=owner,
        meta=existing.meta if meta is None else meta,
    )


def start_record(record: OneOffRecord, owner: Owner, now: datetime) -> OneOffRecord:
    """``queued`` → ``started``, by the process that claimed it; counts an attempt.

    ``started`` → ``started`` is a retry: the owner starts another attempt of the same run.
    """
    if record.status not in ACTIVE_STATUSES:
        raise InvalidRecordError(
            f'Cannot mark one-off job "{record.name}" started: it is {record.status}, and only a queued '
            "one can start (or a started one again, for a retry); claim it first."
        )
    if record.owner is not None and record.owner.token != owner.token:
        raise InvalidRecordError(
            f'Cannot mark one-off job "{record.name}" started: it was claimed by another process '
            f"({record.owner.describe()}), which is the one that may run it."
        )
    return OneOffRecord(
        name=record.name,
        status="started",
        created_at=record.created_at,
        started_at=_utc(now),
        attempts=record.attempts + 1,
        owner=owner,
        meta=record.meta,
    )


def finish_record(record: OneOffRecord, now: datetime) -> OneOffRecord:
    """``started`` → ``finished``; the owner is let go."""
    if record.status != "started":
        raise InvalidRecordError(
            f'Cannot mark one-off job "{record.name}" finished: it is {record.status}, '
            "and only a started one can finish."
        )
    return OneOffRecord(
        name=record.name,
        status="finished",
        created_at=record.created_at,
        started_at=record.started_at,
        finished_at=_utc(now),
        attempts=record.attempts,
        meta=record.meta,
    )


def fail_record(record: OneOffRecord, error: str, now: datetime) -> OneOffRecord:
    """``queued`` or ``started`` → ``failed``, keeping (the end of) the error text."""
    if record.status not in ACTIVE_STATUSES:
        raise InvalidRecordError(
            f'Cannot mark one-off job "{record.name}" failed: it is {record.status}, '
            "and only a queued or started one can fail."
        )
    if not isinstance(error, str):
        raise InvalidRecordError(
            f"error must be text, not {type(error).__name__}; pass str(exc) or a traceback."
        )
    return OneOffRecord(
        name=record.name,
        status="failed",
        created_at=record.created_at,
        started_at=record.started_at,
        finished_at=_utc(now),
        error=cap_error(error),
        attempts=record.attempts,
        meta=record.meta,
    )


def interrupt_record(record: OneOffRecord, now: datetime) -> OneOffRecord:
    """A ``queued``/``started`` record whose owner has gone: ``failed``, so that it can be rerun."""
    return fail_record(record, INTERRUPTED_ERROR, now)
