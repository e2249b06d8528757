"""Scheduling from code: create, read and cancel jobs in a store.

The order bot of the seed README's example schedules the order-placing Lambda for the
time the customer chose::

    from lambdacron import open_store, schedule
    store = open_store("s3://my-bucket/jobs/")
    key = schedule(store, when="at(2026-12-01T18:30:00)", timezone="Europe/Berlin",
                   lambda_arn="arn:aws:lambda:eu-central-1:123456789012:function:place-order",
                   payload={"order": 1234})

``lambdacron rm`` and ``show`` are these same functions; ``lambdacron add`` checks the file
with :func:`check`, the rules of :func:`add`.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

from .clock import utcnow
from .errors import ConflictError, JobError, ScheduleError, UsageError
from .job import RUNNER_FIELDS, Job
from .jobfile import decode, encode, load, unwritable
from .schedule import validate
from .store.base import Store
from .store.keys import new_key

_CLAIMED = "a new job must not carry a runner's claim"


def add(store: Store, document: Mapping[str, Any], key: str | None = None) -> str:
    """Validate ``document`` and create it as a new job. Returns the key.

    Create-only: an existing key raises ConflictError rather than being overwritten, on
    every store, even when the existing job is the same. Without ``key`` a unique one is
    generated in the sharded layout ``HH/HEX32.json``.

    Refused with JobError, as ``lambdacron add`` refuses it: a document invalid as the
    runner will read it (it is encoded, then decoded and validated, so NaN, infinities,
    numbers or times out of range and text that is not Unicode are refused here, not
    discovered by every later tick), or a recurring schedule that never fires after now
    (``0 0 1 1 * 2020-2022``), or a file larger than the store's size limit (every tick
    would refuse to read it).
    """
    _check_store(store, "add")
    if not isinstance(document, Mapping):
        raise JobError("", f"a job must be a JSON object, got {type(document).__name__}")
    key = store.check_key(key if key is not None else new_key())
    # Before encoding: the encoder would write a field name 1 as "1" and a tuple as a list
    # without a word, and what get() gave back would not be what was given.
    problem = unwritable(document)
    if problem is not None:
        raise problem
    body = encode(document)
    if len(body) > store.max_job_bytes:
        limit = store.max_job_bytes
        raise JobError("", f"{len(body)} bytes is over the store's {limit}-byte limit")
    job, problems, _ = check(key, body)
    if problems:
        raise problems[0]
    if job is not None:
        # The rule `lambdacron add` and `validate` apply: a recurring schedule must fire again.
        try:
            validate(job.when, job.timezone, utcnow())
        except ScheduleError as exc:
            raise JobError("when", str(exc)) from exc
    store.create(key, body)
    return key


def check(key: str, body: bytes) -> tuple[Job | None, list[JobError], Any]:
    """``body`` as a new job: (the job or None, every problem, the decoded document or None).

    The problems are those the runner would find (:func:`lambdacron.job.load`'s), and a
    runner's claim, which a new job must not carry. Never raises.
    """
    job, problems, document = load(key, body)
    if isinstance(document, dict) and "claim" in document:
        return None, [JobError("claim", _CLAIMED), *problems], document
    return job, problems, document


def schedule(
    store: Store,
    when: str,
    *,
    command: Sequence[str] | None = None,
    python: str | None = None,
    lambda_arn: str | None = None,
    payload: Any = None,
    invocation_type: str = "Event",
    timezone: str = "UTC",
    max_number_executions: int | None = None,
    timeout_seconds: float | None = None,
    key: str | None = None,
    extra: Mapping[str, Any] | None = None,
) -> str:
    """Build a job from arguments and :func:`add` it. Give exactly one of command, python,
    lambda_arn; ``command`` is an argument list (``["sh", "-c", "..."]`` for shell syntax), a
    single string is refused with UsageError. ``extra`` fields are stored as they are (your
    own bookkeeping)."""
    _check_store(store, "schedule")
    given = [
        name
        for name, value in (("command", command), ("python", python), ("lambda_arn", lambda_arn))
        if value is not None
    ]
    if len(given) != 1:
        raise UsageError("schedule(): give exactly one of command, python, lambda_arn")
    if isinstance(command, str | bytes | bytearray):
        # A string is a sequence too, of one-letter strings: it would become the argument
        # list ["e", "c", "h", "o", ...], a job that runs something else entirely.
        raise UsageError(
            f"schedule(): command must be a list of arguments, not a string: {command!r}"[:200]
        )
    if command is not None and not isinstance(command, Sequence):
        # A set would run its arguments in hash order, a dict its keys, an iterator whatever
        # is left of it: none is the argument list meant.
        raise UsageError(
            "schedule(): command must be a list of arguments (a list or a tuple),"
            f" got {type(command).__name__}"
        )
    if lambda_arn is None:
        # Dropped in silence, an order's payload would reach nothing.
        wrong = [
            name
            for name, is_given in (
                ("payload", payload is not None),
                ("invocation_type", invocation_type != "Event"),
            )
            if is_given
        ]
        if wrong:
            raise UsageError(
                f"schedule(): {' and '.join(wrong)}: only for a lambda_arn job, not for {given[0]}"
            )
    if extra is not None and not isinstance(extra, Mapping):
        raise UsageError(
            f"schedule(): extra must be a mapping of fields, got {type(extra).__name__}"
        )
    details: dict[str, Any]
    if command is not None:
        run_type, details = "command", {"command": list(command)}
    elif python is not None:
        run_type, details = "python", {"script": python}
    else:
        run_type = "lambda"
        details = {
            "arn": lambda_arn,
            "payload": {} if payload is None else payload,
            "invocation_type": invocation_type,
        }
    set_here = {"when", "timezone", "run", "max_number_executions", "timeout_seconds"}
    overlap = set(extra or {}) & set_here
    if overlap:
        raise UsageError(
            f"schedule(): extra must not set {sorted(overlap)}; pass them as arguments"
        )
    document: dict[str, Any] = {
        **(extra or {}),
        "when": when,
        "timezone": timezone,
        "run": {"type": run_type, "details": details},
    }
    if max_number_executions is not None:
        document["max_number_executions"] = max_number_executions
    if timeout_seconds is not None:
        document["timeout_seconds"] = timeout_seconds
    clash = set(document) & set(RUNNER_FIELDS)
    if clash:
        raise UsageError(f"schedule(): extra must not set runner fields {sorted(clash)}")
    return add(store, document, key)


def get(store: Store, key: str) -> Any:
    """The job's document as stored (runner fields included)."""
    _check_store(store, "get")
    return decode(store.read(store.check_key(key)).body)


#: Conditional deletes tried before cancel() gives up on a job that keeps changing.
_CANCEL_ATTEMPTS = 20


def cancel(store: Store, key: str) -> None:
    """Delete the job. JobNotFoundError if there is none.

    Final for the caller: a tick writing the job at the same moment (a claim, a result)
    makes the conditional delete fail, and cancel tries again until the job is gone. A
    run already under way is not stopped; its result is not written back, and the job is
    not recreated.
    """
    _check_store(store, "cancel")
    key = store.check_key(key)
    for attempt in range(_CANCEL_ATTEMPTS):
        try:
            store.delete(key)
            return
        except ConflictError:
            time.sleep(min(0.5, 0.01 * 2**attempt))
    raise ConflictError(f"{key}: could not be cancelled; it kept changing")


def _check_store(store: Any, function: str) -> None:
    if not isinstance(store, Store):
        # A path or a URL is the likely mistake: say how to make a store of it.
        raise UsageError(
            f"{function}(): store must be a Store from lambdacron.open_store(NAME),"
            f" got {type(store).__name__}"
        )
