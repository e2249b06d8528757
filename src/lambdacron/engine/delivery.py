"""Delivery: occurrences planned ahead by a tick and handed to a runner at their time.

A tick at ``now`` runs what is due, and also plans the occurrences of ``(now, now +
lookahead]``. A ``Delivery`` carries each one to a runner at its time: an in-process timer
queue in ``serve`` (``timer.py``), an SQS queue with a per-message delay on AWS
(``sqs.py``). The runner reads the job afresh and runs it only as a tick at that moment
would (``Engine.deliver``), so the claim stays the one guard against running twice: a
duplicate, late or stale delivery finds the occurrence taken, or the job changed, and does
nothing. A delivery that never arrives costs lateness only: the next tick runs the
occurrence as its catch-up.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum
from typing import Any

from ..errors import DeliveryError, LambdacronError, ScheduleError
from ..times import iso, parse_tick_time
from .report import TickReport

#: The most occurrences of one job a tick plans (``rate(1 second)`` over 15 minutes is 900).
MAX_PLANNED_PER_JOB = 1000


@dataclass(frozen=True, order=True)
class Occurrence:
    """One planned run: job ``key`` at time ``at``, as long as its schedule is still the one
    with ``fingerprint`` (an edit of ``when``, ``timezone`` or ``enabled`` cancels it)."""

    at: datetime
    key: str
    fingerprint: str

    def to_json(self) -> dict[str, str]:
        return {"key": self.key, "at": iso(self.at), "fingerprint": self.fingerprint}

    @classmethod
    def from_json(cls, value: object) -> Occurrence:
        """Raises ``LambdacronError`` naming the field when ``value`` is not one."""
        if not isinstance(value, Mapping):
            raise LambdacronError(f"expected a JSON object, got {type(value).__name__}")
        fields: dict[str, str] = {}
        for name in ("key", "at", "fingerprint"):
            item: Any = value.get(name)
            if not isinstance(item, str) or not item:
                raise LambdacronError(f"{name}: expected a non-empty string")
            fields[name] = item
        try:
            at = parse_tick_time(fields["at"], "at")
        except ScheduleError as exc:
            raise LambdacronError(str(exc)) from None
        return cls(at, fields["key"], fields["fingerprint"])


class Delivered(Enum):
    """What came of one delivered occurrence."""

    RAN = "ran"  # claimed and run (its result recorded, or reported)
    NOTHING = "nothing"  # nothing to run: taken already, or not due
    # Planned for a job that is gone, or whose schedule changed: nothing to run, nor for the
    # rest of that plan (the next tick plans the job as it stands).
    STALE = "stale"
    EARLY = "early"  # its time has not come: deliver it again then
    RETRY = "retry"  # the store failed before a claim: deliver it again


@dataclass(frozen=True)
class DeliveryResult:
    occurrence: Occurrence
    outcome: Delivered
    report: TickReport


class Delivery(ABC):
    """Where a tick hands the occurrences it plans."""

    #: How far past its own time a tick plans: at least until the next tick has planned.
    lookahead: timedelta

    @abstractmethod
    def plan(self, occurrences: Sequence[Occurrence]) -> None:
        """Deliver each occurrence at its time. Duplicates are allowed (ticks overlap).
        Raises ``DeliveryError`` when some could not be planned."""


__all__ = [
    "MAX_PLANNED_PER_JOB",
    "Delivered",
    "Delivery",
    "DeliveryError",
    "DeliveryResult",
    "Occurrence",
]
