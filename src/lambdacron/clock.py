"""The clock. Only the entry points (the CLI and the Lambda handler) read it; everything
else is given the time, so that it can be tested at any time and a retried tick evaluates
the same window."""

from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    """The current time, aware, in UTC."""
    return datetime.now(UTC)
