"""Claims: which runner holds an occurrence, and whether that runner still lives.

At most once rests on the claim. Before running, a runner writes ``last_scheduled = t`` and
a ``claim`` into the job file with a conditional write; whoever loses the write re-reads
and sees the occurrence taken. A runner that dies after claiming leaves its claim behind; a
later tick finds it dead (past its deadline, or its process gone on this host) and records
the run as ``interrupted``. That occurrence is never run again.

The state changes here are pure: each returns the new document and the new runner state,
so a write never has to decode what it just encoded.
"""

from __future__ import annotations

import os
import socket
import threading
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from ..job import Claim, Job, State, Status, Telling
from ..jobfile import claim_to_json, with_runner_fields
from ..notify import LONGEST_NOTICE_SECONDS
from ..times import iso
from .due import schedule_since
from .outcomes import Ending, state_after

#: A claim outlives its run's timeout by this much before it is presumed dead.
CLAIM_GRACE = timedelta(seconds=120)
#: A claim held for a notice is presumed dead after this long: a minute more than the
#: longest the notice's tries can take, so that no runner tells while its holder still may.
TELLING_GRACE = timedelta(seconds=LONGEST_NOTICE_SECONDS + 60)


def host_identity() -> str:
    """This machine, for telling whether a claim's process can be checked here.

    The hostname alone is not enough: Lambda execution environments can share one, while
    their process ids overlap. The kernel's boot id tells machines (and microVMs) apart.
    """
    try:
        with open("/proc/sys/kernel/random/boot_id") as handle:
            boot = handle.read().strip()[:8]
    except OSError:
        boot = ""
    name = socket.gethostname()
    return f"{name}/{boot}" if boot else name


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError, ValueError):
        return False
    except PermissionError:
        return True
    return True


class _Inflight:
    """The claims this process holds right now, whichever engine took them.

    Process-wide, not per engine: a claim carrying this host and this pid is live exactly
    when some engine of this process is running it. Two engines in one process (two
    handler threads, or direct use) must not take each other's live runs for dead, and a
    claim with our pid that no engine holds was abandoned (its write-back failed)."""

    def __init__(self) -> None:
        self._ids: set[str] = set()
        self._lock = threading.Lock()

    def add(self, claim_id: str) -> None:
        with self._lock:
            self._ids.add(claim_id)

    def discard(self, claim_id: str) -> None:
        with self._lock:
            self._ids.discard(claim_id)

    def __contains__(self, claim_id: object) -> bool:
        with self._lock:
            return claim_id in self._ids


INFLIGHT = _Inflight()


@dataclass(frozen=True)
class Holder:
    """This runner, as its claims name it, and how it tells whether another one lives."""

    host: str
    pid: int
    is_alive: Callable[[int], bool] = pid_alive

    def is_live(self, claim: Claim, wall: datetime) -> bool:
        """Whether the run behind ``claim`` may still be going at wall-clock time ``wall``."""
        if wall > claim.deadline:
            return False
        if claim.host != self.host:
            return True  # another machine: only the deadline can tell
        if claim.pid == self.pid:
            return claim.id in INFLIGHT
        return self.is_alive(claim.pid)

    def new_claim(
        self,
        job: Job,
        scheduled: datetime,
        started: datetime,
        attempt: int = 1,
        manual: bool = False,
    ) -> Claim:
        deadline = started + timedelta(seconds=job.timeout_seconds) + CLAIM_GRACE
        return Claim(
            uuid.uuid4().hex, scheduled, self.host, self.pid, started, deadline, attempt, manual
        )

    def telling_claim(self, scheduled: datetime, now: datetime, telling: Telling) -> Claim:
        """A claim on ``scheduled`` held only until its notice is sent: written with the
        occurrence's end, so that a runner killed before the notice is out leaves a record
        that a later tick finds (dead) and tells from."""
        attempt = max(1, telling.attempts)
        return Claim(
            uuid.uuid4().hex,
            scheduled,
            self.host,
            self.pid,
            now,
            now + TELLING_GRACE,
            attempt,
            telling=telling,
        )


@dataclass(frozen=True)
class Change:
    """A runner write: the document to write and the job's runner state once it is."""

    document: dict[str, Any]
    state: State

    def applied_to(self, job: Job) -> Job:
        return replace(job, state=self.state)

    def holding(self, claim: Claim) -> Change:
        """This write with ``claim`` in the file as well."""
        document = with_runner_fields(self.document, {"claim": claim_to_json(claim)})
        return Change(document, replace(self.state, claim=claim))


def _since(job: Job, placed: datetime) -> tuple[dict[str, str], tuple[str, datetime]]:
    """When the job's current schedule took effect, as written and as held in State."""
    since = schedule_since(job, placed)
    return {"fingerprint": job.fingerprint, "since": iso(since)}, (job.fingerprint, since)


def adopted(document: Mapping[str, Any], job: Job, placed: datetime) -> Change:
    """Record when the schedule took effect, the first time a tick sees it (or sees it
    changed): the file's modification time says when it was placed only until the next
    edit of any field. A retry still waiting belongs to the schedule that was: when the
    schedule changed, it is dropped with it (the caller tells of it), as a changed schedule
    replays nothing."""
    written, held = _since(job, placed)
    fields: dict[str, Any] = {"scheduled_from": written}
    retry = job.state.retry
    if rescheduled(job):
        fields["retry_pending"] = retry = None
    return Change(
        with_runner_fields(document, fields),
        replace(job.state, scheduled_from=held, retry=retry),
    )


def rescheduled(job: Job) -> bool:
    """Whether the job's ``when``, ``timezone`` or ``enabled`` changed since a runner last
    recorded them (not: never recorded)."""
    recorded = job.state.scheduled_from
    return recorded is not None and recorded[0] != job.fingerprint


def claimed(
    document: Mapping[str, Any], job: Job, placed: datetime, claim: Claim, tick: datetime
) -> Change:
    """Take occurrence ``claim.scheduled`` for a run starting now, at the tick ``tick``.

    A retry takes the occurrence its first attempt counted; a manual run counts as a run
    but takes no occurrence, so it moves no schedule window. Every runner write records
    when the schedule took effect, because the write itself moves the file's modification
    time."""
    written, held = _since(job, placed)
    retry = claim.attempt > 1
    count = job.state.execution_count + (0 if retry else 1)
    last_scheduled = job.state.last_scheduled if retry or claim.manual else claim.scheduled
    fields: dict[str, Any] = {
        "execution_count": count,
        "last_run": iso(tick),
        "last_scheduled": iso(last_scheduled) if last_scheduled else None,
        "scheduled_from": written,
        "claim": claim_to_json(claim),
    }
    pending = job.state.retry
    if not claim.manual:  # a run by hand leaves a waiting retry to its end (outcomes.ended)
        fields["retry_pending"] = pending = None
    state = replace(
        job.state,
        execution_count=count,
        last_run=tick,
        last_scheduled=last_scheduled,
        scheduled_from=held,
        claim=claim,
        retry=pending,
    )
    return Change(with_runner_fields(document, fields), state)


def taken_over(document: Mapping[str, Any], job: Job, placed: datetime, claim: Claim) -> Change:
    """Take over a dead claim that was held for a notice, to send that notice: ``claim``
    in its place, and (as every runner write) when the schedule took effect."""
    written, held = _since(job, placed)
    state = replace(job.state, scheduled_from=held)
    return Change(with_runner_fields(document, {"scheduled_from": written}), state).holding(claim)


def still_going(claim: Claim, run_message: str) -> str:
    """Why a live claim holds its job: ``run_message`` for a run still going."""
    return "its failure notice is being sent" if claim.telling is not None else run_message


def interrupted_reason(claim: Claim) -> str:
    return (
        f"no result was recorded: the runner ({claim.host} pid {claim.pid}) stopped, "
        "or could not write to the store"
    )


def interrupted_result(claim: Claim) -> dict[str, Any]:
    return {
        "status": Status.INTERRUPTED.value,
        "exit_code": None,
        "started": iso(claim.started),
        "duration_ms": None,
        "output": "",
        "error": interrupted_reason(claim),
    }


def settled(document: Mapping[str, Any], job: Job, placed: datetime, ending: Ending) -> Change:
    """Record an attempt's end that no run writes back: a dead claim's (interrupted, and
    never run again unless its retry policy retries interrupted runs), or a missed one."""
    written, held = _since(job, placed)
    fields = {**ending.fields, "scheduled_from": written}
    state = replace(state_after(job, ending), scheduled_from=held)
    return Change(with_runner_fields(document, fields), state)
