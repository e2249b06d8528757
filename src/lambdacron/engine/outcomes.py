"""What the end of an attempt leaves in its job file, and who must be told.

An occurrence ends once: ok, or not ok after its retries, or missed, or interrupted. Until
then a failed attempt schedules the next one (``retry_pending``), and the job waits for it
as it waits for a run still going. Each attempt adds a line to the file's ``history``.
Pure: time and randomness are passed in.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from ..job import Claim, Job, Retry, RetryPolicy, State, Status
from ..jobfile import claim_to_json, retry_to_json
from ..notify import Destination, NoticeReason
from ..times import iso, parse_instant

#: The statuses a retry is for; ``interrupted`` only with ``on_interrupted``.
RETRIED = frozenset({Status.FAILED, Status.TIMEOUT, Status.ERROR})
NO_RETRY = RetryPolicy()
#: Fields of a result kept in ``history``: the output stays in ``last_result`` only.
_HISTORY_FIELDS = ("status", "exit_code", "duration_ms", "lateness_ms", "attempt", "manual")


@dataclass(frozen=True)
class Policies:
    """The runner's defaults for jobs that set none of their own."""

    retry: RetryPolicy = NO_RETRY
    deadline_seconds: float | None = None
    on_failure: Destination | None = None

    def retry_of(self, job: Job) -> RetryPolicy:
        return job.retry if job.retry is not None else self.retry

    def deadline_of(self, job: Job) -> timedelta | None:
        seconds = job.deadline_seconds
        if seconds is None:
            seconds = self.deadline_seconds
        return timedelta(seconds=seconds) if seconds else None

    def destination_of(self, job: Job) -> Destination | None:
        return job.on_failure if job.on_failure is not None else self.on_failure


@dataclass(frozen=True)
class Ending:
    """The runner fields an attempt's end writes, the retry it schedules, and the notice
    it owes (None: nobody needs telling)."""

    fields: dict[str, Any]
    retry: Retry | None = None
    notice: NoticeReason | None = None
    attempts: int = 1
    history: list[dict[str, Any]] = field(default_factory=list)
    #: The claim the end leaves in the file, held until its notice is out (``telling``).
    holds: Claim | None = None

    def holding(self, claim: Claim) -> Ending:
        """This end, written with ``claim`` in place of none."""
        return replace(self, fields={**self.fields, "claim": claim_to_json(claim)}, holds=claim)


def backoff(policy: RetryPolicy, attempt: int, rng: random.Random) -> timedelta:
    """The wait after attempt ``attempt`` failed: full jitter over the exponential cap."""
    cap = min(policy.max_backoff_seconds, policy.backoff_seconds * 2.0 ** min(attempt - 1, 60))
    return timedelta(seconds=rng.uniform(0, cap))


def history_entry(scheduled: datetime, result: Mapping[str, Any]) -> dict[str, Any]:
    """One line of ``history``: the result, compact (its output is not kept)."""
    entry: dict[str, Any] = {"occurrence": iso(scheduled), "started": result.get("started")}
    for name in _HISTORY_FIELDS:
        if result.get(name) is not None:
            entry[name] = result[name]
    error = result.get("error")
    if isinstance(error, str) and error:
        entry["error"] = error.splitlines()[0][:200]
    return entry


def with_history(
    document: Mapping[str, Any], entry: dict[str, Any], limit: int
) -> list[dict[str, Any]] | None:
    """The file's history with ``entry`` first, at most ``limit`` long; None removes it."""
    if limit <= 0:
        return None
    earlier = document.get("history")
    kept = [e for e in earlier if isinstance(e, dict)] if isinstance(earlier, list) else []
    return [entry, *kept][:limit]


def ended(
    job: Job,
    document: Mapping[str, Any],
    claim: Claim,
    result: dict[str, Any],
    now: datetime,
    policies: Policies,
    rng: random.Random,
) -> Ending:
    """The end of attempt ``claim.attempt`` with ``result`` (as written in ``last_result``)."""
    status = Status(result["status"])
    result = {**result, "attempt": claim.attempt} if claim.attempt > 1 else result
    if claim.manual:
        result = {**result, "manual": True}
    history = with_history(document, history_entry(claim.scheduled, result), job.history_limit)
    fields: dict[str, Any] = {"last_result": result, "claim": None, "history": history}
    if claim.manual:
        # A run by hand is no attempt at the occurrence a retry waits for: the retry stays,
        # unless this run did the work (then a retry would do it twice). Whoever ran it
        # saw how it ended: no notice.
        retry = job.state.retry if status is not Status.OK else None
        fields["retry_pending"] = retry_to_json(retry) if retry else None
        return Ending(fields, retry, None, claim.attempt, history or [])
    policy = policies.retry_of(job)
    retried = status in RETRIED or (status is Status.INTERRUPTED and policy.on_interrupted)
    retry = None
    if retried and claim.attempt < policy.attempts:
        at = now + backoff(policy, claim.attempt, rng)
        deadline = policies.deadline_of(job)
        # A retry that could only be missed is none: the occurrence ends failed now, and
        # its notice says what the run did rather than that it was late.
        if deadline is None or at - claim.scheduled <= deadline:
            retry = Retry(claim.scheduled, claim.attempt + 1, at)
    fields["retry_pending"] = retry_to_json(retry) if retry else None
    notice = None if retry is not None else NoticeReason.for_status(status)
    return Ending(fields, retry, notice, claim.attempt, history or [])


def state_after(job: Job, ending: Ending) -> State:
    """The job's runner state once ``ending`` is written."""
    fields = ending.fields
    state = replace(job.state, retry=ending.retry)
    if "last_result" in fields:
        state = replace(state, last_result=fields["last_result"])
    if "claim" in fields:
        state = replace(state, claim=ending.holds)
    if "last_scheduled" in fields:
        state = replace(state, last_scheduled=parse_instant(fields["last_scheduled"], UTC))
    return state


def missed(
    job: Job,
    document: Mapping[str, Any],
    scheduled: datetime,
    now: datetime,
    attempt: int,
    deadline: timedelta,
) -> Ending:
    """An occurrence (or its retry) that could not start within its deadline: consumed,
    never run."""
    late = now - scheduled
    result: dict[str, Any] = {
        "status": Status.MISSED.value,
        "exit_code": None,
        "started": None,
        "duration_ms": None,
        "output": "",
        "error": f"not started: {late.total_seconds():.0f} s after its time is past its"
        f" deadline of {deadline.total_seconds():g} s",
        "lateness_ms": late // timedelta(milliseconds=1),
    }
    if attempt > 1:
        result["attempt"] = attempt
    history = with_history(document, history_entry(scheduled, result), job.history_limit)
    fields: dict[str, Any] = {
        "last_result": result,
        "last_scheduled": iso(max(scheduled, job.state.last_scheduled or scheduled)),
        "retry_pending": None,
        "history": history,
    }
    return Ending(fields, None, NoticeReason.MISSED, attempt - 1, history or [])


__all__ = [
    "NO_RETRY",
    "RETRIED",
    "Ending",
    "Policies",
    "backoff",
    "ended",
    "history_entry",
    "missed",
    "state_after",
    "with_history",
]
