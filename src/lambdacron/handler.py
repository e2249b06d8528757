"""AWS Lambda entry point. The function's handler is ``lambdacron.lambda_handler``.

One invocation is one tick. Its time is the scheduled time of the triggering EventBridge
event (``time``), not the wall clock, so a retried or duplicated event evaluates the same
window and the claims make it harmless. A manual invoke may pass ``{"now": "..."}``; an
event with neither uses the clock.

Configuration (the names of the original): ``LAMBDACRON_BUCKET`` and ``LAMBDACRON_PREFIX``,
or ``LAMBDACRON_STORE=s3://bucket/prefix/``; ``LAMBDACRON_INTERVAL`` (minutes, for the
record: EventBridge owns the schedule); ``LAMBDACRON_ALLOWED_TYPES``; ``LAMBDACRON_WORKERS``.
"""

from __future__ import annotations

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

_engines: dict[tuple[str, frozenset[str], int], Engine] = {}


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


def _engine(env: Mapping[str, str]) -> tuple[str, Engine]:
    # Reused across warm invocations: the S3 client, its connections and the worker pool.
    settings = Settings.from_env(env)
    name = store_name(env)
    workers = int(env.get("LAMBDACRON_WORKERS") or DEFAULT_WORKERS)
    cache_key = (name, frozenset(t.value for t in settings.allowed_types), workers)
    if cache_key not in _engines:
        store = open_store(name, max_job_bytes=settings.max_job_bytes)
        _engines[cache_key] = Engine(
            store,
            default_registry(settings.allowed_types),
            clock=_now,
            workers=workers,
            log=lambda event: _log(event_record(event)),
        )
    return name, _engines[cache_key]


def lambda_handler(event: Any, context: Any) -> dict[str, Any]:
    try:
        now = tick_time(event)
        name, engine = _engine(os.environ)
    except LambdacronError as exc:
        record = {"level": "ERROR", "event": "config", "error": str(exc)}
        _log(record)
        return record
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    time_left = (lambda: remaining() / 1000.0) if callable(remaining) else None
    report = engine.tick(now, time_left=time_left)
    _log(summary_record(report, name))
    _log(emf_record(report, name, _now()))
    return report.to_json()
