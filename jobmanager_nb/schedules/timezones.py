"""Time zones for schedules: what "local time" means, and how a wall-clock reading becomes an instant.

Calendar schedules (cron and text) are matched against the wall clock of a zone. Most wall-clock
readings name exactly one instant; around a daylight-saving change some name none (the spring-forward
gap) and some name two (the fall-back overlap). :func:`classify` tells which, using the ``fold``
attribute of PEP 495, and :func:`transition` finds the instant the clocks changed.

All instants here are *naive UTC* datetimes: comparing and subtracting them is exact, whereas two
aware datetimes that share a ``tzinfo`` compare by wall time and ignore ``fold``.
"""

from __future__ import annotations

import difflib
import os
from datetime import datetime, timedelta, timezone, tzinfo
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from jobmanager_nb.errors import InvalidScheduleError

__all__ = [
    "UTC",
    "Resolution",
    "classify",
    "from_utc",
    "local_zone",
    "resolve_tz",
    "to_utc",
    "transition",
    "tz_label",
    "wall_of",
]

UTC = timezone.utc
_SECOND = timedelta(seconds=1)
_ZONEINFO_ROOTS = ("/usr/share/zoneinfo/", "/usr/lib/zoneinfo/", "/usr/share/lib/zoneinfo/")


def _zone_named(name: str) -> ZoneInfo | None:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return None


def _zone_from_localtime_link() -> ZoneInfo | None:
    try:
        target = os.path.realpath("/etc/localtime")
    except OSError:
        return None
    marker = "zoneinfo/"
    if marker in target:
        return _zone_named(target.split(marker, 1)[1])
    return None


def _zone_from_etc_timezone() -> ZoneInfo | None:
    try:
        with open("/etc/timezone", encoding="utf-8") as handle:
            name = handle.read().strip()
    except OSError:
        return None
    return _zone_named(name) if name else None


def _zone_from_localtime_file() -> ZoneInfo | None:
    try:
        with open("/etc/localtime", "rb") as handle:
            return ZoneInfo.from_file(handle, key="localtime")
    except (OSError, ValueError):
        return None


def _zone_from_tz_variable(value: str) -> ZoneInfo | None:
    name = value[1:] if value.startswith(":") else value
    if name.startswith("/"):
        for root in _ZONEINFO_ROOTS:
            if name.startswith(root):
                return _zone_named(name[len(root) :])
        try:
            with open(name, "rb") as handle:
                return ZoneInfo.from_file(handle, key=name)
        except (OSError, ValueError):
            return None
    return _zone_named(name) if name else None


def local_zone() -> tzinfo:
    """The machine's zone as a real IANA zone, so that daylight saving is right.

    Tried in order: the ``TZ`` environment variable, the target of the ``/etc/localtime`` symlink,
    ``/etc/timezone``, the contents of ``/etc/localtime``; UTC when none of them gives a zone.
    The answer is remembered per value of ``TZ`` (the system files are read once per process).
    """
    value = os.environ.get("TZ")
    zone = _LOCAL_ZONES.get(value)
    if zone is None:
        zone = _LOCAL_ZONES[value] = _find_local_zone(value)
    return zone


_LOCAL_ZONES: dict[str | None, tzinfo] = {}


def _find_local_zone(value: str | None) -> tzinfo:
    if value:
        zone = _zone_from_tz_variable(value)
        if zone is not None:
            return zone
    for finder in (_zone_from_localtime_link, _zone_from_etc_timezone, _zone_from_localtime_file):
        zone = finder()
        if zone is not None:
            return zone
    return UTC


@lru_cache(maxsize=1)
def _zone_names() -> tuple[str, ...]:
    return tuple(sorted(available_timezones()))


def resolve_tz(tz: object) -> tzinfo:
    """``None`` or ``"local"`` → :func:`local_zone`; an IANA name → its ``ZoneInfo``; a tzinfo → itself.

    An unknown name raises :class:`InvalidScheduleError` (with the closest known name, if any);
    anything else raises ``TypeError``.
    """
    if tz is None:
        return local_zone()
    if isinstance(tz, str):
        name = tz.strip()
        if name.lower() == "local":
            return local_zone()
        zone = _zone_named(name) if name else None
        if zone is None:
            close = difflib.get_close_matches(name, _zone_names(), n=1, cutoff=0.6)
            hint = f' (did you mean "{close[0]}"?)' if close else ""
            raise InvalidScheduleError(
                f'Invalid schedule format: unknown timezone "{tz}"{hint}; use an IANA name such as '
                '"Europe/Berlin" or "UTC", or "local"'
            )
        return zone
    if isinstance(tz, tzinfo):
        if hasattr(tz, "localize"):
            raise TypeError(
                "pytz timezones are not supported (they ignore fold and daylight saving in datetime "
                "arithmetic); pass zoneinfo.ZoneInfo(name) or the zone's name instead"
            )
        return tz
    raise TypeError(
        f"tz must be None, an IANA timezone name (str) or a tzinfo such as zoneinfo.ZoneInfo, "
        f"not {type(tz).__name__}"
    )


def tz_label(tz: tzinfo) -> str:
    """A short name for a zone: the IANA key of a ``ZoneInfo``, else its ``str()``."""
    key = getattr(tz, "key", None)
    return key if isinstance(key, str) else str(tz)


def to_utc(moment: datetime) -> datetime:
    """An aware datetime as a naive UTC datetime."""
    return moment.astimezone(UTC).replace(tzinfo=None)


def from_utc(instant: datetime, tz: tzinfo) -> datetime:
    """A naive UTC datetime as an aware datetime in ``tz`` (``fold`` set for repeated wall times)."""
    return instant.replace(tzinfo=UTC).astimezone(tz)


def wall_of(instant: datetime, tz: tzinfo) -> tuple[datetime, int]:
    """The wall-clock reading (naive) of a naive UTC instant in ``tz``, and its ``fold``."""
    local = from_utc(instant, tz)
    return local.replace(tzinfo=None, fold=0), local.fold


class Resolution:
    """What a wall-clock reading is in a zone: unique, repeated (fall-back) or missing (spring-forward).

    ``first`` is the earliest instant showing this reading (naive UTC); for a missing reading it is the
    first instant after the gap. ``second`` is the later instant of a repeated reading, else ``first``.
    """

    __slots__ = ("first", "offset_after", "offset_before", "second")

    def __init__(self, wall: datetime, offset_before: timedelta, offset_after: timedelta) -> None:
        self.offset_before = offset_before  # the fold=0 offset
        self.offset_after = offset_after  # the fold=1 offset
        self.first = wall - offset_before
        self.second = wall - offset_after

    @property
    def is_unique(self) -> bool:
        return self.offset_before == self.offset_after

    @property
    def is_repeated(self) -> bool:
        return self.offset_before > self.offset_after

    @property
    def is_missing(self) -> bool:
        return self.offset_before < self.offset_after


def classify(wall: datetime, tz: tzinfo) -> Resolution:
    """Resolve a naive wall-clock reading in ``tz``; see :class:`Resolution`."""
    aware = wall.replace(tzinfo=tz, fold=0)
    before = aware.utcoffset()
    after = aware.replace(fold=1).utcoffset()
    if before is None or after is None:  # a tzinfo that does not know its offset: treat as UTC
        zero = timedelta(0)
        return Resolution(wall, zero, zero)
    resolution = Resolution(wall, before, after)
    if resolution.is_missing:
        resolution.first = transition(resolution.second, resolution.first, tz)
        resolution.second = resolution.first
    return resolution


def transition(low: datetime, high: datetime, tz: tzinfo) -> datetime:
    """The instant (naive UTC) in ``(low, high]`` at which ``tz`` switches to the offset it has at ``high``.

    Assumes one change in between (true for the short spans around a single daylight-saving change).
    Zone changes happen on whole seconds, so a binary search over seconds finds it exactly.
    """
    target = _offset_at(high, tz)
    lo = low.replace(microsecond=0)
    hi = high.replace(microsecond=0)
    if _offset_at(hi, tz) != target:
        hi += _SECOND
    while hi - lo > _SECOND:
        mid = lo + timedelta(seconds=int((hi - lo).total_seconds()) // 2)
        if _offset_at(mid, tz) == target:
            hi = mid
        else:
            lo = mid
    return hi


def _offset_at(instant: datetime, tz: tzinfo) -> timedelta | None:
    return from_utc(instant, tz).utcoffset()
