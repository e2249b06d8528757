"""Instants as a job file writes and reads them: ISO 8601 in UTC, with a ``Z``.

``parse_instant`` reads what users and earlier versions wrote (an offset, a ``Z``, or a
naive wall-clock time in a zone); ``iso`` writes the one form the runner uses.
"""

from __future__ import annotations

from datetime import UTC, datetime

from .errors import ScheduleError
from .schedule import parse_instant

#: The instants a job file may hold, and so the times a tick may have and a one-time job
#: may fire at, since a tick writes both into the file: a datetime plus any offset, timeout
#: or grace stays valid.
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(9998, 12, 31, tzinfo=UTC)
RECORDABLE = f"{EARLIEST.date()} to {LATEST.date()} in UTC"


def recordable(moment: datetime) -> bool:
    """Whether a job file may hold ``moment`` (an aware instant)."""
    return EARLIEST <= moment <= LATEST


def parse_tick_time(text: str, what: str) -> datetime:
    """A tick's time as given (``--now``, an event's ``time``): one a job file can record."""
    moment = parse_instant(text, UTC, what)
    if not recordable(moment):
        raise ScheduleError(
            f"{what}: {text!r} is out of range: a tick's time must lie within {RECORDABLE},"
            " the times a job file records"
        )
    return moment


def iso(moment: datetime) -> str:
    """``2026-12-01T17:30:00Z``: an aware instant in UTC, the form every runner field uses."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


__all__ = ["EARLIEST", "LATEST", "iso", "parse_instant", "parse_tick_time", "recordable"]
