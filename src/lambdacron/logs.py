"""Structured logs and CloudWatch metrics (Embedded Metric Format) for the Lambda runner.

A Lambda that catches every job error never trips Lambda's own Errors metric, so the tick
publishes its counts as metrics: an alarm on ``Failed > 0`` is how a failing job pages
someone. EMF is a log line of JSON that CloudWatch turns into metrics; no API call needed.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from .engine.report import JobEvent, TickReport
from .job import iso

NAMESPACE = "lambdacron"
_METRICS = (
    ("Due", "due"),
    ("Ran", "ran"),
    ("Failed", "failed"),
    ("Invalid", "invalid"),
    ("StoreErrors", "store_errors"),
    ("Skipped", "skipped"),
    ("Interrupted", "interrupted"),
    ("InternalErrors", "internal_errors"),
)


def event_record(event: JobEvent) -> dict[str, Any]:
    record: dict[str, Any] = {
        "level": "INFO",
        "event": "job",
        "key": event.key,
        "outcome": event.outcome.value,
    }
    if event.scheduled is not None:
        record["scheduled"] = iso(event.scheduled)
    if event.status is not None:
        record["status"] = event.status.value
        if event.status.value != "ok":
            record["level"] = "WARNING"
    if event.message:
        record["message"] = event.message
    if event.output:
        record["output_tail"] = event.output[-512:]
    if event.deleted:
        record["deleted"] = True
    if event.outcome.value in ("invalid", "store_error", "internal_error"):
        record["level"] = "ERROR"
    return record


def summary_record(report: TickReport, store: str) -> dict[str, Any]:
    return {"level": "INFO", "event": "tick", "store": store, **report.to_json()}


def emf_record(report: TickReport, store: str, timestamp: datetime) -> dict[str, Any]:
    return {
        "_aws": {
            "Timestamp": int(timestamp.timestamp() * 1000),
            "CloudWatchMetrics": [
                {
                    "Namespace": NAMESPACE,
                    "Dimensions": [["Store"]],
                    "Metrics": [{"Name": name, "Unit": "Count"} for name, _ in _METRICS],
                }
            ],
        },
        "Store": store,
        **{name: getattr(report, attribute) for name, attribute in _METRICS},
    }


def line(record: dict[str, Any]) -> str:
    return json.dumps(record, separators=(",", ":"), default=str)
