"""AWS Lambda entry point. The function's handler is ``lambdacron.lambda_handler``.

An invocation is one tick, or a batch of planned occurrences delivered by SQS. A tick's time
is the scheduled time of the triggering EventBridge event (``time``), not the wall clock, so
a retried or duplicated event evaluates the same window and the claims make it harmless. A
manual invoke may pass ``{"now": "..."}``; an event with neither uses the clock.

Configuration, read by ``config.Settings``:
``LAMBDACRON_BUCKET`` and ``LAMBDACRON_PREFIX``, or ``LAMBDACRON_STORE=s3://bucket/prefix/``;
``LAMBDACRON_INTERVAL`` (minutes, for the record: EventBridge owns the schedule);
``LAMBDACRON_ALLOWED_TYPES``; ``LAMBDACRON_WORKERS``; ``LAMBDACRON_MAX_JOB_BYTES``;
``LAMBDACRON_SHARDS`` (N > 1: the scheduled invocation fans out into N shard invocations);
``LAMBDACRON_DELIVERY_QUEUE`` (an SQS queue URL: each tick also plans the occurrences of the
next ``LAMBDACRON_LOOKAHEAD`` seconds into it, and the function, subscribed to the queue,
runs each at its second).

A bad setting, a malformed event or a store that cannot be listed raises (after its log
line), so Lambda's Errors metric and retries see it.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, TypeGuard

from . import aws
from .actions import default_registry
from .clock import utcnow
from .config import MAX_SHARDS, Settings, parse_queue_url
from .engine.delivery import Delivered, Occurrence
from .engine.report import TickReport
from .engine.tick import Engine
from .errors import LambdacronError, StoreError, UsageError
from .logs import emf_lateness_records, emf_record, event_record, line, summary_record
from .sqs import MAX_DELAY_SECONDS, SqsDelivery, occurrence_of
from .times import iso, parse_tick_time

_engines: dict[tuple[Any, ...], Engine] = {}
#: A delivered occurrence further ahead than this is sent on again rather than waited for.
_EARLY_LIMIT_S = 2.0
#: A delivered occurrence further ahead than this is no plan of any runner's (none plans past
#: SQS's longest delay, and a retry further out is planned by the tick that reaches it); the
#: margin is for clocks that disagree. Sent on, it would come back every 15 minutes.
_FURTHEST_S = 2.0 * MAX_DELAY_SECONDS


def store_name(env: Mapping[str, str]) -> str:
    return Settings.from_env(env).lambda_store()


def _brief(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def tick_time(event: Any, clock: Callable[[], datetime] = utcnow) -> datetime:
    if isinstance(event, Mapping):
        for field in ("now", "time"):
            if field in event:
                value = event[field]
                # Never the clock instead: a retried event must evaluate its own window.
                if not isinstance(value, str):
                    raise UsageError(
                        f"{field}: expected an ISO 8601 time as a string, got {_brief(value)}"
                    )
                return parse_tick_time(value, field)
    return clock()


def _log(record: dict[str, Any]) -> None:
    print(line(record), file=sys.stdout, flush=True)


def _engine(settings: Settings, shard: tuple[int, int] | None = None) -> tuple[str, Engine]:
    # Reused across warm invocations: the S3 client, its connections, the worker pools and
    # the index.
    name = settings.lambda_store()
    allowed = frozenset(t.value for t in settings.allowed_types)
    cache_key = (
        name,
        allowed,
        settings.workers,
        settings.max_job_bytes,
        shard,
        settings.delivery_queue,
        settings.lookahead,
        settings.policies,
    )
    if cache_key not in _engines:
        queue = parse_queue_url(settings.delivery_queue) if settings.delivery_queue else None
        store = settings.open_lambda_store()
        delivery = None
        if queue:
            delivery = SqsDelivery(queue, store.url, settings.lookahead, clock=utcnow)
        _engines[cache_key] = Engine(
            store,
            default_registry(settings.allowed_types),
            clock=utcnow,
            workers=settings.workers,
            log=lambda event: _log(event_record(event)),
            shard=shard,
            delivery=delivery,
            policies=settings.policies,
        )
    return name, _engines[cache_key]


def _whole(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)  # JSON true is no shard


def _shard_of_event(event: Any) -> tuple[int, int] | None:
    if not isinstance(event, Mapping) or "shard" not in event:
        return None
    shard, shards = event.get("shard"), event.get("shards")
    if _whole(shard) and _whole(shards) and 0 <= shard < shards:
        if shards > MAX_SHARDS:  # each (shard, shards) keeps its own engine while warm
            raise UsageError(f"shards: at most {MAX_SHARDS}, got {_brief(shards)}")
        return shard, shards
    raise UsageError(
        f"shard: expected 0 <= shard < shards, got {_brief(shard)} of {_brief(shards)}"
    )


def fan_out(now: datetime, shards: int, function: str, client: Any = None) -> None:
    """Invoke this function once per shard, asynchronously, for the same tick time.

    The distributed engine is Lambda itself: each shard is an ordinary invocation with its
    own time budget, its own index, and a listing of only its own folders.
    """
    if client is None:
        client = aws.client("lambda")
    stamp = now.isoformat()
    for shard in range(shards):
        payload = {"time": stamp, "shard": shard, "shards": shards}
        client.invoke(
            FunctionName=function, InvocationType="Event", Payload=json.dumps(payload).encode()
        )


def _is_sqs(event: Any) -> bool:
    records = event.get("Records") if isinstance(event, Mapping) else None
    return (
        isinstance(records, list)
        and bool(records)
        and all(isinstance(r, Mapping) and r.get("eventSource") == "aws:sqs" for r in records)
    )


def deliver_records(
    engine: Engine,
    records: list[Mapping[str, Any]],
    *,
    time_left: Callable[[], float] | None = None,
    clock: Callable[[], datetime] = utcnow,
    sleep: Callable[[float], None] = time.sleep,
) -> tuple[list[str], TickReport]:
    """Run the occurrences an SQS batch carries, each at its second. Returns the message
    ids to deliver again (the store failed before a claim, or the body is not an
    occurrence: after the queue's redrive limit, the dead-letter queue keeps it), and the
    batch's report."""
    delivery = engine.delivery
    store = engine.store.url
    failures: list[str] = []
    ready: list[tuple[str, Occurrence]] = []
    later: list[tuple[str, Occurrence]] = []
    for record in records:
        message_id = str(record.get("messageId", ""))
        try:
            occurrence = occurrence_of(str(record.get("body", "")), store)
        except LambdacronError as exc:
            _log(
                {"level": "ERROR", "event": "delivery", "message_id": message_id, "error": str(exc)}
            )
            failures.append(message_id)
            continue
        ahead = (occurrence.at - clock()).total_seconds()
        if ahead > _FURTHEST_S:
            problem = (
                f"at: {iso(occurrence.at)} is {ahead:.0f} s ahead, further than any runner"
                f" plans ({MAX_DELAY_SECONDS} s); not run, not sent on"
            )
            _log(
                {"level": "ERROR", "event": "delivery", "message_id": message_id, "error": problem}
            )
            failures.append(message_id)
            continue
        if ahead > _EARLY_LIMIT_S:
            later.append((message_id, occurrence))  # past SQS's longest delay: queued again
        else:
            ready.append((message_id, occurrence))
    if later:
        try:
            if not isinstance(delivery, SqsDelivery):
                raise LambdacronError("LAMBDACRON_DELIVERY_QUEUE is not set")
            delivery.send([occurrence for _, occurrence in later])
        except LambdacronError as exc:
            _log({"level": "ERROR", "event": "delivery", "error": f"cannot queue again: {exc}"})
            failures.extend(message_id for message_id, _ in later)
    ready.sort(key=lambda pair: pair[1].at)
    futures = []
    for message_id, occurrence in ready:
        # SQS delays by whole seconds: never run before the time. Looked at again after
        # each sleep, since a wall clock being slewed runs slower than the sleep's.
        while (wait := (occurrence.at - clock()).total_seconds()) > 0:
            sleep(wait)
        futures.append((message_id, engine.submit_delivery(occurrence, time_left=time_left)))
    reports = []
    for message_id, future in futures:
        delivered = future.result()
        reports.append(delivered.report)
        if delivered.outcome in (Delivered.RETRY, Delivered.EARLY):
            failures.append(message_id)
    return failures, _combined(reports, clock())


def _combined(reports: list[TickReport], now: datetime) -> TickReport:
    total = TickReport.combine(now, [r.to_json() for r in reports])
    for report in reports:
        total.lateness_ms.extend(report.lateness_ms)
    return total


def lambda_handler(event: Any, context: Any) -> dict[str, Any]:
    """One tick, or one batch of planned occurrences from SQS (answered with the standard
    partial-batch reply, ``batchItemFailures``). Raises (after logging one line) when the
    function is misconfigured, the event is malformed or the store cannot be listed, so
    that Lambda's Errors metric and its retries see it; a job's own failure is a result,
    never an exception."""
    try:
        settings = Settings.from_env(os.environ)
        sqs = _is_sqs(event)
        if sqs:
            name, engine = _engine(settings)
    except LambdacronError as exc:
        _log({"level": "ERROR", "event": "config", "error": str(exc)})
        raise
    if not sqs:
        return _tick(event, context, settings)
    time_left = _time_left(context, engine)
    failures, report = deliver_records(engine, event["Records"], time_left=time_left)
    _log({"level": "INFO", "event": "deliver", "store": name, **report.to_json()})
    _log(emf_record(report, name, utcnow(), tick=False))
    for record in emf_lateness_records(report, name, utcnow()):
        _log(record)
    return {"batchItemFailures": [{"itemIdentifier": m} for m in failures]}


def _time_left(context: Any, engine: Engine) -> Callable[[], float] | None:
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    time_left = (lambda: remaining() / 1000.0) if callable(remaining) else None
    if time_left is not None:
        # At the start of an invocation the time left is the function's whole timeout: the
        # most any run here can ever get.
        engine.max_run_seconds = time_left()
    return time_left


def _tick(event: Any, context: Any, settings: Settings) -> dict[str, Any]:
    try:
        now = tick_time(event)
        shard = _shard_of_event(event)
        if shard is None and settings.shards > 1:
            function = getattr(context, "invoked_function_arn", None) or os.environ.get(
                "AWS_LAMBDA_FUNCTION_NAME"
            )
            if not function:
                raise UsageError("LAMBDACRON_SHARDS needs the function's own name to fan out")
            fan_out(now, settings.shards, function)
            record = {
                "level": "INFO",
                "event": "fan_out",
                "now": now.isoformat(),
                "shards": settings.shards,
            }
            _log(record)
            return record
        name, engine = _engine(settings, shard)
    except LambdacronError as exc:
        _log({"level": "ERROR", "event": "config", "error": str(exc)})
        raise
    time_left = _time_left(context, engine)
    report = engine.tick(now, time_left=time_left)
    label = name if shard is None else f"{name}#{shard[0]}/{shard[1]}"
    _log(summary_record(report, label))
    _log(emf_record(report, name, utcnow()))
    for record in emf_lateness_records(report, name, utcnow()):
        _log(record)
    if report.listing_error is not None:
        raise StoreError(f"{label}: cannot list the store: {report.listing_error}")
    return report.to_json()
