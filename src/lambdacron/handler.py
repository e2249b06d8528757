"""AWS Lambda entry point. The function's handler is ``lambdacron.lambda_handler``.

One invocation is one tick. Its time is the scheduled time of the triggering EventBridge
event (``time``), not the wall clock, so a retried or duplicated event evaluates the same
window and the claims make it harmless. A manual invoke may pass ``{"now": "..."}``; an
event with neither uses the clock.

Configuration, read by ``config.Settings``:
``LAMBDACRON_BUCKET`` and ``LAMBDACRON_PREFIX``, or ``LAMBDACRON_STORE=s3://bucket/prefix/``;
``LAMBDACRON_INTERVAL`` (minutes, for the record: EventBridge owns the schedule);
``LAMBDACRON_ALLOWED_TYPES``; ``LAMBDACRON_WORKERS``; ``LAMBDACRON_MAX_JOB_BYTES``;
``LAMBDACRON_SHARDS`` (N > 1: the scheduled invocation fans out into N shard invocations).

A bad setting, a malformed event or a store that cannot be listed raises (after its log
line), so Lambda's Errors metric and retries see it.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, TypeGuard

from .actions import default_registry
from .clock import utcnow
from .config import MAX_SHARDS, Settings
from .engine.tick import Engine
from .errors import LambdacronError, StoreError, UsageError
from .logs import emf_record, event_record, line, summary_record
from .store import open_store
from .times import parse_tick_time

_engines: dict[tuple[str, frozenset[str], int, int, tuple[int, int] | None], Engine] = {}


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
    cache_key = (name, allowed, settings.workers, settings.max_job_bytes, shard)
    if cache_key not in _engines:
        store = open_store(name, max_job_bytes=settings.max_job_bytes)
        _engines[cache_key] = Engine(
            store,
            default_registry(settings.allowed_types),
            clock=utcnow,
            workers=settings.workers,
            log=lambda event: _log(event_record(event)),
            shard=shard,
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
        import boto3
        from botocore.config import Config

        client = boto3.client("lambda", config=Config(retries={"mode": "standard"}))
    stamp = now.isoformat()
    for shard in range(shards):
        payload = {"time": stamp, "shard": shard, "shards": shards}
        client.invoke(
            FunctionName=function, InvocationType="Event", Payload=json.dumps(payload).encode()
        )


def lambda_handler(event: Any, context: Any) -> dict[str, Any]:
    """One tick. Raises (after logging one line) when the function is misconfigured, the
    event is malformed or the store cannot be listed, so that Lambda's Errors metric and
    its retries see it; a job's own failure is a result, never an exception."""
    try:
        settings = Settings.from_env(os.environ)
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
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    time_left = (lambda: remaining() / 1000.0) if callable(remaining) else None
    if time_left is not None:
        # At the start of an invocation the time left is the function's whole timeout: the
        # most any run here can ever get.
        engine.max_run_seconds = time_left()
    report = engine.tick(now, time_left=time_left)
    label = name if shard is None else f"{name}#{shard[0]}/{shard[1]}"
    _log(summary_record(report, label))
    _log(emf_record(report, name, utcnow()))
    if report.listing_error is not None:
        raise StoreError(f"{label}: cannot list the store: {report.listing_error}")
    return report.to_json()
