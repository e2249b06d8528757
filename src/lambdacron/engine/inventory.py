"""What ``lambdacron ls`` shows: every job with its schedule and state, valid or not."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from ..actions.base import Status
from ..errors import JobNotFoundError, StoreError
from ..jobfile import load
from ..store.base import Entry, Store
from ..times import iso
from .due import next_run

# The same bounds as the tick's: reads in flight at most, and keys read a chunk at a time.
from .tick import CHUNK, DEFAULT_IO_WORKERS


class Listed(StrEnum):
    """What a row shows instead of how the last run ended."""

    NEVER_RUN = "never run"
    RUNNING = "running"
    DISABLED = "disabled"
    INVALID = "invalid"
    UNREADABLE = "unreadable"  # the store could not read it (a permission, a network error)


#: Every status a row can have, as ``ls --status`` takes it.
STATUSES = (*(s.value for s in Status), *(s.value for s in Listed))


@dataclass(frozen=True)
class JobRow:
    key: str
    when: str | None = None
    timezone: str | None = None
    next_run: datetime | None = None
    last_run: datetime | None = None
    runs: int = 0
    max_runs: int = 0
    status: str = ""
    enabled: bool = True
    error: str | None = None
    #: How late the last run started, in milliseconds, when it was recorded.
    lateness_ms: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "when": self.when,
            "timezone": self.timezone,
            "next_run": iso(self.next_run) if self.next_run else None,
            "last_run": iso(self.last_run) if self.last_run else None,
            "runs": self.runs,
            "max_number_executions": self.max_runs,
            "status": self.status,
            "enabled": self.enabled,
            "error": self.error,
            "lateness_ms": self.lateness_ms,
        }


def inventory(store: Store, now: datetime) -> Iterator[JobRow]:
    """Every job in key order. Reads go through a pool as wide as the store reads well
    (the tick's I/O pool on S3, where each GET waits on the network; inline on a directory),
    a chunk of keys at a time, so a large bucket is neither read one GET after another nor
    held in memory."""
    entries = sorted(store.list(), key=lambda e: e.key)

    def row(entry: Entry) -> JobRow | None:
        return _row(store, entry, now)

    workers = min(DEFAULT_IO_WORKERS, store.read_concurrency)
    if workers <= 1:
        yield from (r for r in map(row, entries) if r is not None)
        return
    with ThreadPoolExecutor(workers, thread_name_prefix="lambdacron-ls") as pool:
        for start in range(0, len(entries), CHUNK):
            chunk = entries[start : start + CHUNK]
            yield from (r for r in pool.map(row, chunk) if r is not None)


def _row(store: Store, entry: Entry, now: datetime) -> JobRow | None:
    if entry.problem is not None:  # listed, but no job can be read there
        return JobRow(entry.key, status=Listed.INVALID, error=entry.problem)
    try:
        return _job_row(store, entry, now)
    except Exception as exc:  # one job's problem is its own row, never the whole listing
        return JobRow(
            entry.key, status=Status.ERROR, error=f"internal error: {type(exc).__name__}: {exc}"
        )


def _job_row(store: Store, entry: Entry, now: datetime) -> JobRow | None:
    try:
        doc = store.read(entry.key)
    except JobNotFoundError:
        return None  # deleted since the listing
    except StoreError as exc:
        return JobRow(entry.key, status=Listed.UNREADABLE, error=str(exc))
    job, problems, _ = load(entry.key, doc.body)
    if job is None:
        return JobRow(entry.key, status=Listed.INVALID, error="; ".join(map(str, problems)))
    state = job.state
    status = str(state.last_result.get("status", "")) if state.last_result else Listed.NEVER_RUN
    if state.claim is not None and state.claim.telling is None:
        status = Listed.RUNNING  # held for a notice, it has ended: its result says how
    late = state.last_result.get("lateness_ms") if state.last_result else None
    error = state.last_result.get("error") if state.last_result else None
    failed = (
        status not in (Status.OK, Listed.NEVER_RUN, Listed.RUNNING)
        and isinstance(error, str)
        and error
    )
    return JobRow(
        entry.key,
        job.when,
        job.timezone,
        next_run(job, doc.version.modified, now),
        state.last_run,
        state.execution_count,
        job.max_number_executions,
        status if job.enabled else Listed.DISABLED,
        job.enabled,
        # A number the runner wrote, though the file may hold anything there.
        # The last error's first line, for a job whose last run did not end ok.
        error=error.splitlines()[0][:200] if failed and isinstance(error, str) else None,
        lateness_ms=late if isinstance(late, int) and not isinstance(late, bool) else None,
    )
