"""AWS Lambda entry point. The function's handler is ``lambdacron.lambda_handler``.

One invocation is one tick. Its time is the scheduled time of the triggering EventBridge
event (``time``), not the wall clock, so a retried or duplicated event evaluates the same
window and the claims make it harmless. A manual invoke may pass ``{"now": "..."}``; an
event with neither uses the clock.

Configuration (the names of the original): ``LAMBDACRON_BUCKET`` and ``LAMBDACRON_PREFIX``,
or ``LAMBDACRON_STORE=s3://bucket/prefix/``; ``LAMBDACRON_INTERVAL`` (minutes, for the
record: EventBridge owns the schedule); ``LAMBDACRON_ALLOWED_TYPES``; ``LAMBDACRON_WORKERS``;
``LAMBDACRON_SHARDS`` (N > 1: the scheduled invocation fans out into N shard invocations).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from .actions import default_registry
from .config import Settings
from .engine.tick import DEFAULT_WORKERS, Engine
from .errors import LambdacronError, UsageError
from .logs import emf_record, event_record, line, summary_record
from .schedule import parse_instant
from .store import open_store

_engines: dict[tuple[str, frozenset[str], int, tuple[int, int] | None], Engine] = {}


def _now() -> datetime:
    return datetime.now(UTC)


def store_name(env: Mapping[str, str]) -> str:
    if env.get("LAMBDACRON_STORE"):
        return env["LAMBDACRON_STORE"]
    bucket = env.get("LAMBDACRON_BUCKET")
    if not bucket:
        raise UsageError("set LAMBDACRON_BUCKET (and LAMBDACRON_PREFIX) or LAMBDACRON_STORE")
    prefix = env.get("LAMBDACRON_PREFIX", "").strip("/")
    return f"s3://{bucket}/{prefix + '/' if prefix else ''}"


def tick_time(event: Any, clock: Callable[[], datetime] = _now) -> datetime:
    if isinstance(event, Mapping):
        for field in ("now", "time"):
            value = event.get(field)
            if isinstance(value, str):
                return parse_instant(value, UTC, field)
    return clock()


def _log(record: dict[str, Any]) -> None:
    print(line(record), file=sys.stdout, flush=True)


def _engine(env: Mapping[str, str], shard: tuple[int, int] | None = None) -> tuple[str, Engine]:
    # Reused across warm invocations: the S3 client, its connections, the worker pools and
    # the index.
    settings = Settings.from_env(env)
    name = store_name(env)
    workers = int(env.get("LAMBDACRON_WORKERS") or DEFAULT_WORKERS)
    cache_key = (name, frozenset(t.value for t in settings.allowed_types), workers, shard)
    if cache_key not in _engines:
        store = open_store(name, max_job_bytes=settings.max_job_bytes)
        _engines[cache_key] = Engine(
            store,
            default_registry(settings.allowed_types),
            clock=_now,
            workers=workers,
            log=lambda event: _log(event_record(event)),
            shard=shard,
        )
    return name, _engines[cache_key]


def _shard_of_event(event: Any, env: Mapping[str, str]) -> tuple[int, int] | None:
    if isinstance(event, Mapping) and "shard" in event:
        shard, shards = event.get("shard"), event.get("shards")
        if not isinstance(shard, int) or not isinstance(shards, int) or not 0 <= shard < shards:
            raise UsageError(f"shard: expected 0 <= shard < shards, got {shard!r} of {shards!r}")
        return shard, shards
    return None


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
    try:
        now = tick_time(event)
        shard = _shard_of_event(event, os.environ)
        shards = int(os.environ.get("LAMBDACRON_SHARDS") or 1)
        if shard is None and shards > 1:
            function = getattr(context, "invoked_function_arn", None) or os.environ.get(
                "AWS_LAMBDA_FUNCTION_NAME"
            )
            if not function:
                raise UsageError("LAMBDACRON_SHARDS needs the function's own name to fan out")
            fan_out(now, shards, function)
            record = {"level": "INFO", "event": "fan_out", "now": now.isoformat(), "shards": shards}
            _log(record)
            return record
        name, engine = _engine(os.environ, shard)
    except LambdacronError as exc:
        record = {"level": "ERROR", "event": "config", "error": str(exc)}
        _log(record)
        return record
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    time_left = (lambda: remaining() / 1000.0) if callable(remaining) else None
    report = engine.tick(now, time_left=time_left)
    label = name if shard is None else f"{name}#{shard[0]}/{shard[1]}"
    _log(summary_record(report, label))
    _log(emf_record(report, name, _now()))
    return report.to_json()
