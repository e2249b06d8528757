"""Instants as a job file writes and reads them: ISO 8601 in UTC, with a ``Z``.

``parse_instant`` reads what users and earlier versions wrote (an offset, a ``Z``, or a
naive wall-clock time in a zone); ``iso`` writes the one form the runner uses.
"""

from __future__ import annotations

from datetime import UTC, datetime

from .schedule import parse_instant


def iso(moment: datetime) -> str:
    """``2026-12-01T17:30:00Z``: an aware instant in UTC, the form every runner field uses."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


__all__ = ["iso", "parse_instant"]
