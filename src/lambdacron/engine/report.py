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
    LOST = "lost"  # the file kept changing while the runner tried to claim it
    TAKEN = "taken"  # another runner claimed the occurrence first, and runs it
    RAN = "ran"
    INVALID = "invalid"
    STORE_ERROR = "store_error"
    SKIPPED_DEADLINE = "skipped_deadline"  # not enough time left in this tick to start it
    INTERNAL_ERROR = "internal_error"  # a bug in lambdacron, confined to this one job
    NOT_STARTED = "not_started"  # the runner is stopping: left unclaimed for the next tick
    CANCELLED = "cancelled"  # a planned run whose schedule changed before its time
    MISSED = "missed"  # it could not start within its deadline: recorded, never run
    NOTIFIED = "notified"  # a failure notice was sent
    NOTICE_FAILED = "notice_failed"  # a failure notice could not be sent, after retries


#: The counter each outcome adds one to (a run, RAN, counts in several; see ``add``).
_COUNTED_AS = {
    Outcome.INVALID: "invalid",
    Outcome.STORE_ERROR: "store_errors",
    Outcome.INTERRUPTED: "interrupted",
    Outcome.INTERNAL_ERROR: "internal_errors",
    Outcome.CANCELLED: "cancelled",
    Outcome.MISSED: "missed",
    Outcome.NOTIFIED: "notices",
    Outcome.NOTICE_FAILED: "notices_failed",
    Outcome.LOST: "skipped",
    Outcome.TAKEN: "taken",
    Outcome.RUNNING: "skipped",
    Outcome.SKIPPED_DEADLINE: "skipped",
    Outcome.NOT_STARTED: "skipped",
}


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
    #: How long after its occurrence the run started (a RAN event), in milliseconds.
    lateness_ms: int | None = None
    #: A failed run whose occurrence is tried again (a RAN event).
    retrying: bool = False


#: The summary's counters shown even when zero: seen, due, ran, failed, invalid.
_ALWAYS_SHOWN = 5


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
    #: Occurrences planned ahead, for delivery at their time.
    planned: int = 0
    #: Planned runs not made because their schedule changed before their time.
    cancelled: int = 0
    #: Due occurrences another runner claimed first (overlapping ticks, a delivery): they
    #: run there, so they are not skipped.
    taken: int = 0
    missed: int = 0
    #: Runs whose failure is tried again later (each counted in ``failed`` too).
    retried: int = 0
    notices: int = 0
    notices_failed: int = 0
    duration_s: float = 0.0
    #: Why the store could not be listed (the pass saw none or only part of it); else None.
    listing_error: str | None = None
    events: list[JobEvent] = field(default_factory=list)
    #: The lateness of each run, in milliseconds, in the order they ended.
    lateness_ms: list[int] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, event: JobEvent) -> None:
        with self._lock:
            self.events.append(event)
            self.deleted += event.deleted
            match event.outcome:
                case Outcome.RAN:
                    self.ran += 1
                    if event.lateness_ms is not None:
                        self.lateness_ms.append(event.lateness_ms)
                    # A run stopped by its runner is told as interrupted, not as a failure.
                    stopped = event.status is Status.INTERRUPTED
                    self.interrupted += stopped
                    self.failed += not stopped and event.status is not Status.OK
                    self.retried += event.retrying
                case outcome if outcome in _COUNTED_AS:
                    name = _COUNTED_AS[outcome]
                    setattr(self, name, getattr(self, name) + 1)
                case _:
                    pass

    def forget(self) -> None:
        """A listed job vanished before it was read: it was not really seen."""
        with self._lock:
            self.seen -= 1

    def summary(self) -> str:
        stamp = self.now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        parts = [f"tick {stamp}: {self.seen} jobs"]
        for i, name in enumerate(self.COUNTERS[1:], start=1):
            value = getattr(self, name)
            # The first five always; the others when there is something to say.
            if i < _ALWAYS_SHOWN or value:
                parts.append(f"{value} {name.replace('_', ' ')}")
        return ", ".join(parts) + f" in {self.duration_s:.2f} s"

    #: The counters of a tick, in the order the summary and the JSON give them.
    COUNTERS = (
        "seen",
        "due",
        "ran",
        "failed",
        "invalid",
        "skipped",
        "deleted",
        "interrupted",
        "store_errors",
        "internal_errors",
        "planned",
        "cancelled",
        "taken",
        "missed",
        "retried",
        "notices",
        "notices_failed",
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
