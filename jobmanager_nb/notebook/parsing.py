"""How the magics read their arguments, and how a user's mistake becomes a one-line ``UsageError``.

A line is split like a shell line (:func:`_split`: quotes group words and are removed); an option's unquoted
words are joined back into one value (:func:`_gather`: ``--at every 5 minutes``). The options are parsed
by IPython's ``magic_arguments``: :func:`_arguments` and :func:`_argument` are its decorators, typed, and
the parser they build is also the magic's ``%job?`` help; a subcommand builds a small parser of its own
(:func:`_parser`, :func:`_name_only`). An argparse complaint ends with the usage (:func:`_parse`).

What the values mean: :func:`_at_value` reads ``--at`` (a number is an interval in seconds, an ISO
date-time one moment, anything else a cron expression or an English schedule) and :func:`_check_future`
refuses a moment that has passed; :func:`_data_value` reads ``--data`` as JSON; :func:`_executor_value` checks
``--executor`` against the manager's executors (and that the job is offloaded) before anything is written.

A core error (a ``JobManagerError``: unknown job, bad schedule, missing file, ...) raised by the one call a
magic makes becomes a ``UsageError`` with the same message (:func:`_usage`, :func:`_usage_errors`), which
IPython shows as one line with no traceback.
"""

from __future__ import annotations

import contextlib
import json
import re
import shlex
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime, timedelta
from typing import Any, TypeVar, cast

from IPython.core.error import UsageError
from IPython.core.magic import cell_magic, line_magic
from IPython.core.magic_arguments import MagicArgumentParser, argument, magic_arguments

from jobmanager_nb.errors import JobManagerError
from jobmanager_nb.manager import JobManager
from jobmanager_nb.schedules import next_fire_times

_F = TypeVar("_F", bound=Callable[..., Any])

_NUMBER = re.compile(r"^\d+(\.\d+)?$")
_ISO_MOMENT = re.compile(r"^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?)?(Z|[+-]\d{2}:?\d{2})?$")
_OPTION = re.compile(r"^--?[A-Za-z]")


def _usage(exc: BaseException) -> UsageError:
    """A core error as a one-line ``UsageError`` (its message already names the thing and the fix)."""
    return UsageError(" ".join(str(exc).split()))


@contextlib.contextmanager
def _usage_errors(*also: type[Exception]) -> Iterator[None]:
    """Turn a core error (or one of the ``also`` kinds) raised in the block into a one-line ``UsageError``."""
    kinds: tuple[type[Exception], ...] = (JobManagerError, *also)
    try:
        yield
    except kinds as exc:
        raise _usage(exc) from None


def _split(line: str) -> list[str]:
    """Shell-like words; quotes group words and are removed (``--data '{"a": 1}'``)."""
    try:
        return shlex.split(line, posix=True)
    except ValueError as exc:
        raise UsageError(f"Cannot read the arguments ({exc}): close the quote, or quote the whole value.") from None


def _gather(argv: Sequence[str], flag: str) -> list[str]:
    """Join the unquoted words of an option's value into one argument: ``--at every 5 minutes`` becomes
    ``--at "every 5 minutes"``. The value ends at the next option (a word starting with ``-`` and a letter)."""
    out: list[str] = []
    i = 0
    while i < len(argv):
        word = argv[i]
        if word == flag or word.startswith(flag + "="):
            words = [word[len(flag) + 1 :]] if word != flag else []
            i += 1
            while i < len(argv) and not _OPTION.match(argv[i]):
                words.append(argv[i])
                i += 1
            out += [flag, " ".join(w for w in words if w)]
            continue
        out.append(word)
        i += 1
    return out


def _at_value(text: str) -> Any:
    """What ``--at`` means: a number is an interval in seconds, an ISO date-time is one moment, anything
    else a cron expression or an English schedule."""
    text = text.strip()
    if not text:
        raise UsageError('--at needs a schedule, e.g. --at "every 5 minutes", --at "0 */5 * * * *" or --at 30.')
    if _NUMBER.match(text):
        return float(text) if "." in text else int(text)
    if _ISO_MOMENT.match(text):
        try:
            return datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith("Z") else text)
        except ValueError as exc:
            raise UsageError(f'--at "{text}" is not a valid date-time ({exc}); write it as 2026-12-01T09:30.') from None
    return text


def _check_future(at: Any, spec: str) -> None:
    with _schedule_errors(spec):
        upcoming = next_fire_times(at, 1)
    if not upcoming:
        raise UsageError(
            f'--at "{spec}" has passed, so the job would never run: give a moment in the future, or drop --at to '
            "run it now."
        )


@contextlib.contextmanager
def _schedule_errors(spec: str) -> Iterator[None]:
    """A schedule the block cannot read becomes a one-line ``UsageError``; when ``spec`` reads like one moment
    (``tomorrow at 9am``, ``next friday``, ``in 2 hours``), it ends with that moment as an ISO date-time."""
    try:
        yield
    except (JobManagerError, ValueError, TypeError) as exc:
        message = _usage(exc)
        moment = _moment_suggestion(spec, datetime.now().astimezone())
        if moment is None:
            raise message from None
        text = str(message).rstrip(".")
        raise UsageError(f"{text}. For one moment, give its date and time: --at {moment:%Y-%m-%dT%H:%M}") from None


_WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_UNITS = {"second": 1, "sec": 1, "minute": 60, "min": 60, "hour": 3600, "day": 86400, "week": 604800}
_CLOCK = re.compile(r"\b(\d{1,2})(?:[:.](\d{2}))?\s*(am|pm)\b|\b(\d{1,2})[:.](\d{2})\b")
_IN = re.compile(r"\bin\s+(\d+(?:\.\d+)?)\s*(second|sec|minute|min|hour|day|week)s?\b")


def _moment_suggestion(spec: str, now: datetime) -> datetime | None:
    """The moment ``spec`` seems to mean when it reads like one moment rather than a repeating schedule
    (``tomorrow at 9am`` → tomorrow 09:00, ``next friday`` → Friday 09:00, ``in 2 hours``), or None."""
    text = " ".join(spec.lower().split())
    if re.search(r"\b(every|each|daily|hourly|weekly|monthly|weekdays?|weekends?)\b", text):
        return None
    ahead = _IN.search(text)
    if ahead:
        return now + timedelta(seconds=float(ahead.group(1)) * _UNITS[ahead.group(2)])
    day: datetime | None = None
    if re.search(r"\b(today|tonight)\b", text):
        day = now
    elif re.search(r"\btomorrow\b", text):
        day = now + timedelta(days=1)
    else:
        for index, weekday in enumerate(_WEEKDAYS):
            if re.search(rf"\b{weekday[:3]}(?:{weekday[3:]})?\b", text):
                day = now + timedelta(days=(index - now.weekday() - 1) % 7 + 1)
                break
    hour, minute = 9, 0
    clock = _CLOCK.search(text)
    if clock:
        if clock.group(3):
            hour, minute = int(clock.group(1)) % 12 + (12 if clock.group(3) == "pm" else 0), int(clock.group(2) or 0)
        else:
            hour, minute = int(clock.group(4)), int(clock.group(5))
    elif "noon" in text:
        hour = 12
    elif "midnight" in text:
        hour = 0
    elif "tonight" in text:
        hour = 20
    if not (0 <= hour < 24 and 0 <= minute < 60) or (day is None and not re.search(r"\b(next|at|on)\b", text)):
        return None
    moment = (day or now).replace(hour=hour, minute=minute, second=0, microsecond=0)
    if day is None and moment <= now:
        moment += timedelta(days=1)
    return moment


def _data_value(text: str | None) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(
            f"--data is not JSON ({exc.msg} at column {exc.colno}): {text}. Quote the whole value, e.g. "
            "--data '{\"id\": 7}'."
        ) from None


def _executor_value(manager: JobManager, name: str | None, offloaded: bool, inline_flag: str) -> str | None:
    """``--executor NAME`` checked: None without it; a ``UsageError`` for a job that runs in the kernel
    (``inline_flag`` says how it was made inline) or a name the manager does not know, saying how to add it."""
    if name is None:
        return None
    if not offloaded:
        raise UsageError(
            f"--executor {name} sends the job's runs to a worker, and {inline_flag} runs it in the kernel: drop "
            f"--executor, or {'drop --inline' if inline_flag == '--inline' else 'add --offloaded'}."
        )
    known = manager.executor_names
    if name not in known:
        raise UsageError(
            f'No executor named "{name}" (known: {", ".join(known)}). Add it first with '
            f'jobmanager_nb.get_manager().add_executor("{name}", executor), then run this again.'
        )
    return name


def _arguments(name: str) -> Callable[[_F], _F]:
    """``magic_arguments(name)``, typed: builds the parser from the ``_argument`` lines below it and makes
    its help (usage, the docstring, the options) the magic's docstring, which ``%job?`` shows."""
    decorate: Callable[[_F], _F] = magic_arguments(name)  # type: ignore[no-untyped-call]
    return decorate


def _argument(*names: str, **options: Any) -> Callable[[_F], _F]:
    """``magic_arguments.argument``, typed."""
    decorate: Callable[[_F], _F] = argument(*names, **options)  # type: ignore[no-untyped-call]
    return decorate


def _line_magic(func: _F) -> _F:
    """``@line_magic``, typed (IPython declares it as returning a function or a decorator)."""
    return cast(_F, line_magic(func))


def _cell_magic(name: str) -> Callable[[_F], _F]:
    """``@cell_magic(name)``, typed."""
    return cast(Callable[[_F], _F], cell_magic(name))


def _parser_of(magic: Any) -> MagicArgumentParser:
    return cast(MagicArgumentParser, magic.parser)


def _parser(prog: str) -> MagicArgumentParser:
    parser: MagicArgumentParser = MagicArgumentParser(prog=prog, add_help=False)  # type: ignore[no-untyped-call]
    return parser


def _parse(parser: MagicArgumentParser, argv: Sequence[str]) -> Any:
    """Parsed options; an argparse complaint becomes one line that ends with the usage."""
    try:
        return parser.parse_args(list(argv))
    except UsageError as exc:
        usage = " ".join(parser.format_usage().replace("::", "").split())
        raise UsageError(f"{exc}. Usage: {usage}") from None


def _name_only(sub: str, argv: list[str]) -> str:
    """The one ``NAME`` argument of ``%job SUB NAME``."""
    parser = _parser(f"job {sub}")
    parser.add_argument("name", metavar="NAME")
    name: str = _parse(parser, argv).name
    return name
