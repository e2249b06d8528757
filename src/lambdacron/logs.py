"""The runner's logs: lines for a person (the CLI), and for the Lambda runner structured
records and CloudWatch metrics (Embedded Metric Format).

A Lambda that catches every job error never trips Lambda's own Errors metric, so the tick
publishes its counts as metrics: an alarm on ``Failed > 0`` is how a failing job pages
someone. EMF is a log line of JSON that CloudWatch turns into metrics; no API call needed.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from .engine.report import JobEvent, Outcome, TickReport
from .times import iso

NAMESPACE = "lambdacron"
#: Published as 1 by every tick report: a dead-man alarm pages when it stops coming.
TICKS = "Ticks"
_METRICS = (
    ("Due", "due"),
    ("Ran", "ran"),
    ("Failed", "failed"),
    ("Invalid", "invalid"),
    ("StoreErrors", "store_errors"),
    ("Skipped", "skipped"),
    ("Interrupted", "interrupted"),
    ("InternalErrors", "internal_errors"),
    ("Planned", "planned"),
    ("Missed", "missed"),
    ("Retried", "retried"),
    ("NoticesFailed", "notices_failed"),
)
#: EMF takes at most this many values of one metric in one record.
_EMF_MAX_VALUES = 100


#: Characters that act on a terminal or on how the text around them reads: the C0 and C1
#: controls and DEL (Unicode category Cc), the line and paragraph separators, and the
#: bidirectional controls. Job output and job files may hold any of them.
_UNSAFE = [
    *range(0x00, 0x20),
    *range(0x7F, 0xA0),
    0x061C,
    0x200E,
    0x200F,
    0x2028,
    0x2029,
    *range(0x202A, 0x202F),
    *range(0x2066, 0x206A),
]
_NAMED = {0x09: "\\t", 0x0A: "\\n", 0x0D: "\\r"}
_VISIBLE = {c: _NAMED.get(c, f"\\x{c:02x}" if c < 0x100 else f"\\u{c:04x}") for c in _UNSAFE}
# A lone surrogate has no UTF-8 form: a terminal whose encoding is strict would refuse the
# whole line. Those of U+DC80 to U+DCFF stand for bytes that were not UTF-8 (a file name or
# argument, as Python decodes it) and are shown as the byte, as a key's listing shows it.
_VISIBLE |= {
    c: f"\\x{c - 0xDC00:02x}" if 0xDC80 <= c <= 0xDCFF else f"\\u{c:04x}"
    for c in range(0xD800, 0xE000)
}
_JSON_ESCAPES = {c: f"\\u{c:04x}" for c in _UNSAFE if c >= 0x20}


def printable(text: str) -> str:
    """``text`` safe to show a person: every unsafe character as a visible escape (``\\x1b``).

    A job's output, its key or a message quoting its file could otherwise move the cursor,
    erase a line or reorder what a log line says, and so forge lines of the runner's log.
    """
    return text.translate(_VISIBLE)


def json_for_terminal(text: str) -> str:
    """JSON text with the unsafe characters JSON leaves raw written as ``\\u`` escapes.

    Those characters can only stand inside strings, where the escape means the same."""
    return text.translate(_JSON_ESCAPES)


def lateness(milliseconds: int) -> str:
    """``12 ms late``, ``3.4 s late``, ``2 min late``: how late a run started. Negative only
    for a tick given a ``--now`` ahead of the clock: ``82.3 s early``."""
    if milliseconds < 0:
        return _duration(-milliseconds, " ") + " early"
    return _duration(milliseconds, " ") + " late"


def short_duration(milliseconds: int) -> str:
    """``12ms``, ``3.4s``, ``2min``, ``5h``, ``3d``: a duration in one word, for a table."""
    return _duration(milliseconds, "")


def _duration(milliseconds: int, space: str) -> str:
    if milliseconds < 0:
        return "-" + _duration(-milliseconds, space)
    if milliseconds < 1000:
        return f"{milliseconds}{space}ms"
    if milliseconds < 59_950:  # below what rounds to 60.0 s
        return f"{milliseconds / 1000:.1f}{space}s"
    if milliseconds < 3_600_000:
        return f"{milliseconds // 60_000}{space}min"
    if milliseconds < 2 * 86_400_000:
        return f"{milliseconds // 3_600_000}{space}h"
    return f"{milliseconds // 86_400_000}{space}d"


def stamp(moment: datetime | None) -> str:
    """A time as a person reads it in a log line: UTC, to the second; ``-`` for none."""
    if moment is None:
        return "-"
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def render_event(event: JobEvent) -> str | None:
    """One log line per interesting event; quiet outcomes (not due, disabled) print nothing.

    Keys, messages and output come from jobs: escaped, they cannot forge a line of the log.
    """
    line = _render_event(event)
    return None if line is None else printable(line)


def _render_event(event: JobEvent) -> str | None:
    scheduled = f" (scheduled {stamp(event.scheduled)})" if event.scheduled else ""
    match event.outcome:
        case Outcome.RAN:
            status = event.status.value if event.status else "?"
            line = f"ran {event.key}{scheduled}: {status}"
            if event.lateness_ms is not None:
                line += f", {lateness(event.lateness_ms)}"
            if event.message:
                line += f": {event.message}"
            if event.deleted:
                line += "; reached max_number_executions, deleted"
            last_line = event.output.strip().rsplit("\n", 1)[-1][:160]
            return line + (f" | {last_line}" if last_line else "")
        case Outcome.INVALID:
            return f"invalid {event.key}: {event.message} (skipped; file left as it is)"
        case Outcome.STORE_ERROR:
            # A store's errors name their key already: said once, after "store error".
            message = event.message.removeprefix(f"{event.key}: ") if event.key else event.message
            return f"store error {event.key}: {message}".replace("error : ", "error: ")
        case Outcome.INTERNAL_ERROR:
            message = event.message.removeprefix("internal error: ")
            return f"internal error {event.key}{scheduled}: {message}"
        case Outcome.INTERRUPTED:
            return f"interrupted {event.key}{scheduled}: {event.message}"
        case Outcome.RUNNING | Outcome.LOST | Outcome.SKIPPED_DEADLINE | Outcome.NOT_STARTED:
            return f"skipped {event.key}{scheduled}: {event.message}"
        case Outcome.CANCELLED:
            return f"cancelled {event.key}{scheduled}: {event.message}"
        case Outcome.TAKEN:
            return f"taken {event.key}{scheduled}: {event.message}"
        case Outcome.MISSED:
            return f"missed {event.key}{scheduled}: {event.message}"
        case Outcome.NOTIFIED:
            return f"told {event.key}{scheduled}: {event.message}"
        case Outcome.NOTICE_FAILED:
            return f"notice failed {event.key}{scheduled}: {event.message}"
        case _:
            return None


#: Outcomes logged at level ERROR: the job's file, the store or lambdacron itself failed.
_ERROR_OUTCOMES = frozenset(
    {Outcome.INVALID, Outcome.STORE_ERROR, Outcome.INTERNAL_ERROR, Outcome.NOTICE_FAILED}
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
    if event.lateness_ms is not None:
        record["lateness_ms"] = event.lateness_ms
    if event.outcome is Outcome.MISSED:
        record["level"] = "WARNING"
    if event.outcome in _ERROR_OUTCOMES:
        record["level"] = "ERROR"
    return record


def summary_record(report: TickReport, store: str) -> dict[str, Any]:
    return {"level": "INFO", "event": "tick", "store": store, **report.to_json()}


def emf_record(
    report: TickReport, store: str, timestamp: datetime, *, tick: bool = True
) -> dict[str, Any]:
    """The report's counts as metrics. ``Ticks`` is 1 for a tick and 0 for a batch of
    deliveries, so the dead-man's alarm on it sees only the ticks, which plan everything."""
    return {
        "_aws": {
            "Timestamp": int(timestamp.timestamp() * 1000),
            "CloudWatchMetrics": [
                {
                    "Namespace": NAMESPACE,
                    "Dimensions": [["Store"]],
                    "Metrics": [
                        {"Name": name, "Unit": "Count"}
                        for name in (TICKS, *(name for name, _ in _METRICS))
                    ],
                }
            ],
        },
        "Store": store,
        TICKS: int(tick),
        **{name: getattr(report, attribute) for name, attribute in _METRICS},
    }


def line(record: dict[str, Any]) -> str:
    return json_for_terminal(json.dumps(record, separators=(",", ":"), default=str))


def emf_lateness_records(
    report: TickReport, store: str, timestamp: datetime
) -> list[dict[str, Any]]:
    """The lateness of each run as the ``Lateness`` metric (milliseconds), so CloudWatch
    can chart its p50 and p99; as many records as EMF's limit of values per record needs."""
    values = report.lateness_ms
    return [
        {
            "_aws": {
                "Timestamp": int(timestamp.timestamp() * 1000),
                "CloudWatchMetrics": [
                    {
                        "Namespace": NAMESPACE,
                        "Dimensions": [["Store"]],
                        "Metrics": [{"Name": "Lateness", "Unit": "Milliseconds"}],
                    }
                ],
            },
            "Store": store,
            "Lateness": values[start : start + _EMF_MAX_VALUES],
        }
        for start in range(0, len(values), _EMF_MAX_VALUES)
    ]
