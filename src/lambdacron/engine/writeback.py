"""Writing a run's result back into its job file, without losing anyone's edit.

The result goes onto the version the claim wrote. If the user edited the file during the
run, their version is kept and only the runner's fields are merged into it; a file deleted
meanwhile stays deleted; a result that arrives after a newer occurrence ran (its claim was
taken for dead) is dropped, so it never rolls that state back.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from ..errors import ConflictError, JobError, JobNotFoundError, ScheduleError, StoreError
from ..job import RUNNER_FIELDS, Claim, Job, fingerprint_of
from ..jobfile import JobFile, encode, load, with_runner_fields
from ..store.base import Document, Store, Version
from ..times import iso, parse_instant
from .outcomes import Ending, state_after

#: Conflicting writes (edits racing the write-back) tried before the result is given up.
WRITE_ATTEMPTS = 5
#: Store failures tried again, with backoff: the run has happened, its result is worth it.
STORE_RETRIES = 3
#: Pauses, in seconds, before each new look at a file that is not a JSON object. A save in
#: place (an editor's, or ``cat new > a.json``) empties the file before it writes the new
#: text; a result that gave up at that moment would leave the run claimed, to be taken for
#: interrupted (and, with ``on_interrupted``, run again).
UNFINISHED_SAVE_PAUSES = (0.05, 0.1, 0.2, 0.4, 0.8, 1.6)


class Unwritten(StrEnum):
    """Why a run's end was not written back: said in its log line, which must not blame an
    edit for a store that refused the write."""

    DELETED = "the job was deleted meanwhile"
    REPLACED = "the job was replaced or taken over meanwhile"
    NEWER = "a later occurrence has run meanwhile"
    NOT_A_JOB = "the file was edited meanwhile into one no job can be"
    KEPT_CHANGING = "the file kept changing"
    STORE = "the store refused the write"


@dataclass(frozen=True)
class Written:
    """A result that reached the store: the version it made and the job as it now stands."""

    version: Version
    body: bytes
    job: Job | None  # None when the user's merged edit is not a valid job any more
    merged: bool  # written into a version the user edited during the run
    document: dict[str, Any] = field(default_factory=dict)


def finished(job_file: JobFile, ending: Ending) -> tuple[dict[str, Any], Job]:
    """The claimed document with the attempt's end (result, retry, history) in place of
    the claim."""
    document = with_runner_fields(job_file.document, ending.fields)
    job = job_file.job
    return document, replace(job, state=state_after(job, ending))


def ran_later(document: dict[str, Any], scheduled: datetime) -> bool:
    """Whether ``document`` records a run of an occurrence after ``scheduled``."""
    value = document.get("last_scheduled")
    if not isinstance(value, str):
        return False
    try:
        return parse_instant(value, UTC) > scheduled
    except ScheduleError:
        return False


def write_back(
    store: Store,
    claimed: JobFile,
    claim: Claim,
    ending: Ending,
    *,
    remember: Callable[[JobFile, int], None],
    on_error: Callable[[str], None],
    sleep: Callable[[float], None] = time.sleep,
) -> Written | Unwritten:
    """Write the end of the run of ``claim``, or say why it was not written (the file was
    deleted, taken over, or the store kept failing: ``on_error`` was told)."""
    key = claimed.key
    current, finished_job = finished(claimed, ending)
    job: Job | None = finished_job
    version, merged, failures = claimed.version, False, 0
    for _ in range(WRITE_ATTEMPTS + STORE_RETRIES):
        try:
            body = encode(current)
        except JobError:
            # The user's edit holds what no job file may (a number past every bound, text
            # that is not Unicode): their version stays as they wrote it, and the next tick
            # reports it.
            return Unwritten.NOT_A_JOB
        try:
            new_version = store.write(key, body, version)
            if job is not None:
                remember(JobFile(key, current, job, new_version), len(body))
            return Written(new_version, body, job, merged, current)
        except (ConflictError, JobNotFoundError):
            pass
        except StoreError as exc:
            failures += 1
            if failures > STORE_RETRIES:
                on_error(str(exc))
                return Unwritten.STORE
            sleep(0.5 * 2 ** (failures - 1))
        try:
            fresh, fresh_job, fresh_document = _settled(store, key, sleep)
        except JobNotFoundError:
            return Unwritten.DELETED  # by the user during the run: not resurrected
        except StoreError:
            continue
        if fresh.body == body:
            # Landed; only its answer was lost.
            return Written(fresh.version, body, job, merged, current)
        if fresh.version.token == version.token:
            continue  # unchanged: the failure was the store's, try again
        if fresh_document is None:
            return Unwritten.NOT_A_JOB  # not even a JSON object; leave it be
        # The user edited the file during the run: keep their version and merge in only
        # the runner's fields.
        if not _still_this_job(fresh_document, claim):
            return Unwritten.REPLACED
        if ran_later(fresh_document, claim.scheduled):
            return Unwritten.NEWER  # its state is newer
        runner_fields = {
            name: claimed.document.get(name)
            for name in ("execution_count", "last_run", "last_scheduled", "scheduled_from")
        }
        fields = {**runner_fields, **ending.fields}
        if fingerprint_of(fresh_document) != fingerprint_of(claimed.document):
            # The schedule was edited during the run: its window starts at the edit, not at
            # this write-back, or an occurrence between the two would be lost.
            fields["scheduled_from"] = {
                "fingerprint": fingerprint_of(fresh_document),
                "since": iso(fresh.version.modified),
            }
        current = with_runner_fields(fresh_document, fields)
        job = _as_written(fresh_job, current, key)
        version, merged = fresh.version, True
    return Unwritten.KEPT_CHANGING


def _still_this_job(document: dict[str, Any], claim: Claim) -> bool:
    """Whether ``document`` is this job, edited during the run, rather than another
    runner's take-over or a new job placed under the key.

    Holding this run's claim is not required: an editor saves the buffer it opened, and a
    buffer opened before the claim was written holds none, or the claim of a run before
    (one that started before this one). Merging is what keeps such an edit from running the
    claimed occurrence a second time. A file no runner has written (no runner field at all:
    deleted and placed again, or copied over by a new job's file) is a new job, which must
    not inherit this one's count and history. A claim taken after this one is another
    runner's, which took the job over.
    """
    other = document.get("claim")
    if other is not None:
        if isinstance(other, dict) and other.get("id") == claim.id:
            return True
        if not _started_before(other, claim.started):
            return False
    return any(name in document for name in RUNNER_FIELDS)


def _started_before(other: object, started: datetime) -> bool:
    """Whether the claim ``other`` (as the file holds it) was taken before ``started``: a
    take-over comes only after this run's claim was written and presumed dead."""
    if not isinstance(other, dict) or not isinstance(other.get("started"), str):
        return False
    try:
        return parse_instant(other["started"], UTC) < started
    except ScheduleError:
        return False


def _settled(
    store: Store, key: str, sleep: Callable[[float], None]
) -> tuple[Document, Job | None, dict[str, Any] | None]:
    """The file as it stands, its job, and its document: None if, after the pauses of
    ``UNFINISHED_SAVE_PAUSES``, it is still not a JSON object."""
    pauses = iter(UNFINISHED_SAVE_PAUSES)
    while True:
        fresh = store.read(key)
        fresh_job, _, fresh_document = load(key, fresh.body)
        if isinstance(fresh_document, dict):
            return fresh, fresh_job, fresh_document
        pause = next(pauses, None)
        if pause is None:
            return fresh, fresh_job, None
        sleep(pause)  # perhaps a save in place, between emptying the file and writing


def _as_written(fresh_job: Job | None, document: dict[str, Any], key: str) -> Job | None:
    """The job a merged document holds: the user's edit decides its user fields, so it is
    validated again (once per edit, never for a write of our own)."""
    if fresh_job is None:
        return None
    merged, _, _ = load(key, encode(document))
    return merged
