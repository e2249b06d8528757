"""When a job is due: the rule, as pure functions of the job, its file's time and ``now``.

The rule (README, "Semantics"): at a tick with time ``now``, a job runs for the latest
occurrence ``t`` in the window ``(start, now]``, where ``start`` is the later of the last
occurrence it ran for and the time its schedule took effect (when the file was placed, or
its ``when``/``timezone``/``enabled`` last changed). Missed occurrences are coalesced into
that one run. A one-time ``at()`` job ignores the placement time, so a past ``at()`` still
runs once.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from ..job import Job

#: Just before the earliest instant a job may fire at (1970-01-01T00:00:00Z, which counts).
_BEFORE_ALL = datetime(1970, 1, 1, tzinfo=UTC) - timedelta(microseconds=1)
#: "Look at this job at every tick": a claim in flight, whose end the listing shows, but
#: whose death only a fresh read can tell.
ALWAYS = datetime.min.replace(tzinfo=UTC)


def schedule_since(job: Job, placed: datetime) -> datetime:
    """When the job's current schedule took effect: the recorded time while the schedule is
    unchanged, else ``placed`` (the file's modification time: its creation or last edit)."""
    if job.state.scheduled_from is not None:
        fingerprint, recorded = job.state.scheduled_from
        if fingerprint == job.fingerprint:
            return recorded
    return placed


def window_start(job: Job, placed: datetime) -> datetime | None:
    """The exclusive start of the window in which an occurrence of ``job`` is due."""
    last = job.state.last_scheduled
    if job.schedule.one_time:
        return last
    since = schedule_since(job, placed)
    return since if last is None else max(since, last)


def next_due(job: Job, placed: datetime) -> datetime | None:
    """The earliest tick time at which ``job`` can be due; None while it never can be.

    What the index remembers, so that an unchanged job is not read again before then.
    """
    if not job.enabled or job.exhausted:
        return None
    if job.state.claim is not None:
        return ALWAYS
    if job.state.retry is not None:
        return job.state.retry.at
    start = window_start(job, placed)
    return job.schedule.next_after(start if start is not None else _BEFORE_ALL)


def due_occurrence(job: Job, placed: datetime, now: datetime) -> datetime | None:
    """The occurrence this tick should run, or None. Pure: time is passed in. A retry
    waiting for its time holds the job: later occurrences wait for it, coalesced."""
    if not job.enabled or job.exhausted:
        return None
    retry = job.state.retry
    if retry is not None:
        return retry.scheduled if retry.at <= now else None
    return job.schedule.latest_in(window_start(job, placed), now)


def next_run(job: Job, placed: datetime, now: datetime) -> datetime | None:
    """What the next tick at or after ``now`` would run: an overdue occurrence, else the
    next one; None while the job cannot run (disabled, or used up its runs)."""
    if not job.enabled or job.exhausted:
        return None
    overdue = due_occurrence(job, placed, now)
    if overdue is not None:
        return overdue
    if job.state.retry is not None:
        return job.state.retry.at
    start = window_start(job, placed)
    return job.schedule.next_after(max(now, start) if start else now)


def upcoming(
    job: Job, placed: datetime, now: datetime, horizon: datetime, limit: int
) -> list[datetime]:
    """The occurrences in ``(now, horizon]`` that would run if each came in turn: at most
    ``limit``, and no more than the runs the job has left. A claim in progress is ignored,
    since its run may well end before the next of them."""
    if not job.enabled or job.exhausted:
        return []
    runs_left = job.max_number_executions - job.state.execution_count
    if job.max_number_executions > 0:
        limit = min(limit, runs_left)
    start = window_start(job, placed)
    found: list[datetime] = []
    after = max(now, start) if start is not None else now
    retry = job.state.retry
    if retry is not None:
        # The retry first; the occurrences before it wait for it (coalesced into the next
        # one after it), so planning goes on from its time. A retry is no new run.
        if now < retry.at <= horizon:
            found.append(retry.at)
            limit += 1
        after = max(after, retry.at)
    moment = job.schedule.next_after(after)
    while moment is not None and moment <= horizon and len(found) < limit:
        found.append(moment)
        moment = job.schedule.next_after(moment)
    return found
