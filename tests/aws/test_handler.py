"""``lambdacron.lambda_handler`` with a real EventBridge event, a deadline, and S3 over HTTP."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

import lambdacron
from conftest import boto_client
from helpers import command_job
from lambdacron import handler


class Context:
    """What the Lambda runtime passes: here, only the remaining time matters.

    ``timeout``: the function's whole timeout, what the invocation had at its start, when
    it began ``seconds`` before its deadline (a long first part of the tick)."""

    def __init__(self, seconds: float, timeout: float | None = None) -> None:
        self.deadline = time.monotonic() + seconds
        self.timeout = timeout
        self.calls = 0

    def get_remaining_time_in_millis(self) -> int:
        self.calls += 1
        if self.calls == 1 and self.timeout is not None:
            return int(self.timeout * 1000)
        return int((self.deadline - time.monotonic()) * 1000)


def scheduled_event(moment: datetime) -> dict[str, Any]:
    return {
        "version": "0",
        "id": "53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa",
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": "123456789012",
        "time": moment.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": "us-east-1",
        "resources": ["arn:aws:events:us-east-1:123456789012:rule/lambdacron-tick"],
        "detail": {},
    }


@pytest.fixture
def env(bucket: str, monkeypatch: pytest.MonkeyPatch, warm_engines: None) -> str:
    monkeypatch.setenv("LAMBDACRON_BUCKET", bucket)
    monkeypatch.setenv("LAMBDACRON_PREFIX", "jobs")
    monkeypatch.setenv("LAMBDACRON_INTERVAL", "5")
    return bucket


def put(bucket: str, key: str, document: Any) -> None:
    boto_client("s3").put_object(
        Bucket=bucket, Key=f"jobs/{key}", Body=json.dumps(document).encode()
    )


def get(bucket: str, key: str) -> Any:
    return json.loads(boto_client("s3").get_object(Bucket=bucket, Key=f"jobs/{key}")["Body"].read())


def records(output: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in output.splitlines() if line.startswith("{")]


def next_hour() -> datetime:
    return (datetime.now(UTC) + timedelta(hours=1)).replace(minute=0, second=0, microsecond=0)


def test_a_scheduled_event_runs_one_tick_at_its_time(
    env: str, capsys: pytest.CaptureFixture[str]
) -> None:
    put(env, "hourly.json", command_job("@hourly", ["echo", "tick tock"]))
    moment = next_hour() + timedelta(minutes=2)
    result = lambdacron.lambda_handler(scheduled_event(moment), Context(600))
    assert (result["due"], result["ran"], result["failed"]) == (1, 1, 0)
    assert result["now"] == moment.strftime("%Y-%m-%dT%H:%M:%SZ")
    state = get(env, "hourly.json")
    assert state["last_run"] == moment.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert state["last_result"]["output"] == "tick tock\n"

    logged = records(capsys.readouterr().out)
    job_line = next(r for r in logged if r["event"] == "job")
    # The event's time is ahead of the clock here: the run started before it, by the clock.
    assert job_line["lateness_ms"] == state["last_result"]["lateness_ms"] < 0
    assert job_line | {"scheduled": None, "lateness_ms": None} == {
        "level": "INFO",
        "event": "job",
        "key": "hourly.json",
        "outcome": "ran",
        "status": "ok",
        "scheduled": None,
        "output_tail": "tick tock\n",
        "lateness_ms": None,
    }
    summary = next(r for r in logged if r.get("event") == "tick")
    assert summary["store"] == f"s3://{env}/jobs/" and summary["ran"] == 1
    emf = next(r for r in logged if "_aws" in r)
    (directive,) = emf["_aws"]["CloudWatchMetrics"]
    assert directive["Namespace"] == "lambdacron" and directive["Dimensions"] == [["Store"]]
    assert {m["Name"] for m in directive["Metrics"]} >= {"Due", "Ran", "Failed", "Invalid"}
    assert (emf["Due"], emf["Ran"], emf["Failed"], emf["Invalid"]) == (1, 1, 0, 0)


def test_a_duplicated_event_runs_nothing_twice(env: str) -> None:
    put(env, "hourly.json", command_job("@hourly", ["true"]))
    event = scheduled_event(next_hour())
    assert lambdacron.lambda_handler(event, Context(600))["ran"] == 1
    assert lambdacron.lambda_handler(event, Context(600))["ran"] == 0
    assert get(env, "hourly.json")["execution_count"] == 1


def test_a_failing_job_shows_in_the_metrics(env: str, capsys: pytest.CaptureFixture[str]) -> None:
    put(env, "bad.json", command_job("@hourly", ["false"]))
    lambdacron.lambda_handler(scheduled_event(next_hour()), Context(600))
    emf = next(r for r in records(capsys.readouterr().out) if "_aws" in r)
    assert emf["Failed"] == 1


def test_near_the_deadline_no_job_is_started_and_all_stay_due(env: str) -> None:
    for i in range(3):
        put(env, f"j{i}.json", command_job("@hourly", ["true"], timeout_seconds=120))
    event = scheduled_event(next_hour())
    starved = lambdacron.lambda_handler(event, Context(30, timeout=900))
    assert (starved["due"], starved["ran"], starved["skipped"]) == (3, 0, 3)
    assert all("execution_count" not in get(env, f"j{i}.json") for i in range(3))
    assert lambdacron.lambda_handler(event, Context(600))["ran"] == 3


def test_a_job_longer_than_the_function_timeout_is_an_error_at_each_occurrence(env: str) -> None:
    put(env, "long.json", command_job("@hourly", ["true"], timeout_seconds=120))
    put(env, "short.json", command_job("@hourly", ["true"], timeout_seconds=10))
    report = lambdacron.lambda_handler(scheduled_event(next_hour()), Context(60))
    assert (report["due"], report["ran"], report["failed"], report["skipped"]) == (2, 2, 1, 0)
    result = get(env, "long.json")["last_result"]
    assert result["status"] == "error" and "more than this runner can ever give" in result["error"]
    assert get(env, "short.json")["last_result"]["status"] == "ok"


def test_a_manual_invoke_may_pass_now(env: str) -> None:
    put(env, "hourly.json", command_job("@hourly", ["true"]))
    moment = next_hour() + timedelta(minutes=7)
    result = lambdacron.lambda_handler({"now": moment.isoformat()}, None)
    assert result["ran"] == 1 and result["now"] == moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def raised(event: Any, capsys: pytest.CaptureFixture[str]) -> tuple[Exception, list[Any]]:
    """What the handler raised for ``event``, and what it logged first."""
    with pytest.raises(lambdacron.LambdacronError) as caught:
        lambdacron.lambda_handler(event, None)
    output = capsys.readouterr().out
    assert "Traceback" not in output
    return caught.value, records(output)


def test_bad_input_raises_one_line_after_logging_it(
    env: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Raised, not returned: Lambda's Errors metric and its retries must see a broken runner.
    error, logged = raised({"now": "tomorrow"}, capsys)
    message = (
        "now: 'tomorrow' is not an ISO 8601 time such as 2026-12-01T18:30:00 or "
        "2026-12-01T18:30:00+01:00"
    )
    assert str(error) == message
    assert logged == [{"level": "ERROR", "event": "config", "error": message}]
    monkeypatch.delenv("LAMBDACRON_BUCKET")
    handler._engines.clear()
    error, logged = raised({}, capsys)
    assert str(error) == "set LAMBDACRON_BUCKET (and LAMBDACRON_PREFIX) or LAMBDACRON_STORE"
    assert logged[-1]["error"] == str(error)


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        (name, value, message)
        for name in (
            "LAMBDACRON_WORKERS",
            "LAMBDACRON_SHARDS",
            "LAMBDACRON_MAX_JOB_BYTES",
            "LAMBDACRON_INTERVAL",
        )
        for value, message in [
            ("abc", "'abc' is not a whole number"),
            ("two", "'two' is not a whole number"),
            ("1.5", "'1.5' is not a whole number"),
            ("-3", "-3 must be at least 1"),
            ("1_000", "'1_000' is not a whole number"),
            ("²", "'²' is not a whole number"),
            ("0", "0 must be at least 1"),
        ]
    ],
)
def test_every_setting_is_checked_with_one_line(
    env: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    variable: str,
    value: str,
    message: str,
) -> None:
    put(env, "hourly.json", command_job("@hourly", ["true"]))
    monkeypatch.setenv(variable, value)
    error, _ = raised(scheduled_event(next_hour()), capsys)
    assert str(error) == f"{variable}: {message}"
    assert "execution_count" not in get(env, "hourly.json")


@pytest.mark.parametrize(
    ("event", "message"),
    [
        ({"time": 1767225600}, "time: expected an ISO 8601 time as a string, got 1767225600"),
        ({"time": 1.5}, "time: expected an ISO 8601 time as a string, got 1.5"),
        ({"time": None}, "time: expected an ISO 8601 time as a string, got None"),
        ({"time": "9999-06-01T00:00:00Z"}, "time: '9999-06-01T00:00:00Z' is out of range"),
        ({"now": "1969-12-31T23:00:00Z"}, "now: '1969-12-31T23:00:00Z' is out of range"),
        ({"now": ["x"] * 40}, "now: expected an ISO 8601 time as a string, got ['x', "),
        ({"shard": True, "shards": 2}, "shard: expected 0 <= shard < shards, got True of 2"),
        ({"shard": 0, "shards": True}, "shard: expected 0 <= shard < shards, got 0 of True"),
        ({"shard": False, "shards": 2}, "shard: expected 0 <= shard < shards, got False of 2"),
        ({"shard": 1.0, "shards": 2}, "shard: expected 0 <= shard < shards, got 1.0 of 2"),
        ({"shard": "1", "shards": 2}, "shard: expected 0 <= shard < shards, got '1' of 2"),
        ({"shard": 0}, "shard: expected 0 <= shard < shards, got 0 of None"),
        # More shards than LAMBDACRON_SHARDS may ask for: each (shard, shards) keeps an
        # engine of its own in a warm function.
        ({"shard": 0, "shards": 257}, "shards: at most 256, got 257"),
        ({"shard": 3, "shards": 2**70}, f"shards: at most 256, got {2**70}"),
    ],
)
def test_a_malformed_event_is_refused_never_guessed(
    env: str, capsys: pytest.CaptureFixture[str], event: dict[str, Any], message: str
) -> None:
    put(env, "hourly.json", command_job("@hourly", ["true"]))
    error, _ = raised(event, capsys)
    assert str(error).startswith(message) and "\n" not in str(error)
    assert "execution_count" not in get(env, "hourly.json")


def test_a_store_that_cannot_be_listed_raises(
    env: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("LAMBDACRON_BUCKET", f"{env}-gone")
    with pytest.raises(lambdacron.StoreError) as caught:
        lambdacron.lambda_handler(scheduled_event(next_hour()), Context(600))
    assert str(caught.value) == (
        f"s3://{env}-gone/jobs/: cannot list the store: "
        f"s3://{env}-gone/jobs/: no such bucket '{env}-gone'"
    )
    logged = records(capsys.readouterr().out)
    # Still logged and counted as before, for the log search and the StoreErrors metric.
    summary = next(r for r in logged if r.get("event") == "tick")
    assert summary["store_errors"] == 1 and summary["listing_error"] is not None
    assert next(r for r in logged if "_aws" in r)["StoreErrors"] == 1


def test_the_store_may_be_named_in_one_variable(env: str, monkeypatch: pytest.MonkeyPatch) -> None:
    assert handler.store_name({"LAMBDACRON_STORE": "s3://b/p/"}) == "s3://b/p/"
    assert (
        handler.store_name({"LAMBDACRON_BUCKET": "b", "LAMBDACRON_PREFIX": "/a/b/"})
        == "s3://b/a/b/"
    )
    assert handler.store_name({"LAMBDACRON_BUCKET": "b"}) == "s3://b/"
