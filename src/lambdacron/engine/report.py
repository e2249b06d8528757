"""What a tick did: per-job outcomes and the summary counts."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum

from ..job import Status
from ..times import iso


class Outcome(StrEnum):
    INTERRUPTED = "interrupted"  # a dead claim was found; its occurrence recorded, not rerun
    DISABLED = "disabled"
    EXHAUSTED = "exhausted"  # reached max_number_executions but could not be deleted
    RUNNING = "running"  # a previous run of this job is still going
    LOST = "lost"  # another runner claimed the occurrence first
    RAN = "ran"
    INVALID = "invalid"
    STORE_ERROR = "store_error"
    SKIPPED_DEADLINE = "skipped_deadline"  # not enough time left in this tick to start it
    INTERNAL_ERROR = "internal_error"  # a bug in lambdacron, confined to this one job
    NOT_STARTED = "not_started"  # the runner is stopping: left unclaimed for the next tick


@dataclass(frozen=True)
class JobEvent:
    """One line of the tick's log."""

    key: str
    outcome: Outcome
    message: str = ""
    scheduled: datetime | None = None
    status: Status | None = None
    deleted: bool = False
    output: str = ""  # the tail of the run's output


@dataclass
class TickReport:
    now: datetime
    seen: int = 0
    due: int = 0
    ran: int = 0
    failed: int = 0
    invalid: int = 0
    store_errors: int = 0
    deleted: int = 0
    interrupted: int = 0
    skipped: int = 0
    internal_errors: int = 0
    #: Occurrences that passed without a run (counted by the engine; alarmed by deploy).
    missed: int = 0
    duration_s: float = 0.0
    #: Why the store could not be listed (the pass saw none or only part of it); else None.
    listing_error: str | None = None
    events: list[JobEvent] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, event: JobEvent) -> None:
        with self._lock:
            self.events.append(event)
            self.deleted += event.deleted
            match event.outcome:
                case Outcome.RAN:
                    self.ran += 1
                    # A run stopped by its runner is told as interrupted, not as a failure.
                    stopped = event.status is Status.INTERRUPTED
                    self.interrupted += stopped
                    self.failed += not stopped and event.status is not Status.OK
                case Outcome.INVALID:
                    self.invalid += 1
                case Outcome.STORE_ERROR:
                    self.store_errors += 1
                case Outcome.INTERRUPTED:
                    self.interrupted += 1
                case Outcome.INTERNAL_ERROR:
                    self.internal_errors += 1
                case (
                    Outcome.LOST | Outcome.RUNNING | Outcome.SKIPPED_DEADLINE | Outcome.NOT_STARTED
                ):
                    self.skipped += 1
                case _:
                    pass

    def forget(self) -> None:
        """A listed job vanished before it was read: it was not really seen."""
        with self._lock:
            self.seen -= 1

    def summary(self) -> str:
        stamp = self.now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        parts = [
            f"tick {stamp}: {self.seen} jobs",
            f"{self.due} due",
            f"{self.ran} ran",
            f"{self.failed} failed",
            f"{self.invalid} invalid",
        ]
        for name in ("skipped", "deleted", "interrupted", "store_errors", "internal_errors"):
            value = getattr(self, name)
            if value:
                parts.append(f"{value} {name.replace('_', ' ')}")
        return ", ".join(parts) + f" in {self.duration_s:.2f} s"

    #: The counters of a tick, in the order the summary and the JSON give them.
    COUNTERS = (
        "seen",
        "due",
        "ran",
        "failed",
        "invalid",
        "store_errors",
        "deleted",
        "interrupted",
        "skipped",
        "internal_errors",
        "missed",
    )

    def to_json(self) -> dict[str, object]:
        return {
            "now": iso(self.now),
            **{name: getattr(self, name) for name in self.COUNTERS},
            "duration_s": round(self.duration_s, 3),
            "listing_error": self.listing_error,
        }

    @classmethod
    def combine(cls, now: datetime, parts: list[dict[str, object]]) -> TickReport:
        """One report from the JSON of several (the shards of one tick)."""
        total = cls(now=now)
        for part in parts:
            for name in cls.COUNTERS:
                setattr(total, name, getattr(total, name) + int(str(part[name])))
            if part.get("listing_error") is not None and total.listing_error is None:
                total.listing_error = str(part["listing_error"])
        return total
