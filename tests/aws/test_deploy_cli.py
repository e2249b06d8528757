"""``lambdacron deploy`` as a user runs it: a subprocess against the suite's AWS server."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from conftest import boto_client


def function_name() -> str:
    return f"cli-{uuid.uuid4().hex[:8]}"


def deployed(name: str) -> tuple[dict[str, str], str]:
    """The function's environment and its rule's schedule."""
    function = boto_client("lambda").get_function(FunctionName=name)["Configuration"]
    rule = boto_client("events").describe_rule(Name=f"{name}-tick")
    return function["Environment"]["Variables"], rule["ScheduleExpression"]


def test_the_cli_deploy_dry_run(run_cli: Any, bucket: str) -> None:
    name = function_name()
    result = run_cli(
        "deploy", "--bucket", bucket, "--prefix", "jobs", "--interval", "5",
        "--function-name", name, "--dry-run",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        f"role {name}-role: create",
        f"role {name}-role policy: create",
        f"queue {name}-delivery-dlq: create",
        f"queue {name}-delivery: create",
        f"function {name}: create",
        f"event source mapping {name}-delivery → {name}: create",
        f"rule {name}-tick: create",
        f"rule {name}-tick target: create",
        f"function {name} permission for the rule: create",
        f"dry run: 9 changes for function {name}, none applied",
    ]
    bad = run_cli("deploy", "--bucket", bucket, "--timeout", "1000")
    assert (bad.returncode, bad.stderr) == (
        2,
        "lambdacron: --timeout must be 1-900 seconds (Lambda's limit)\n",
    )


def test_a_rerun_without_prefix_or_interval_keeps_the_deployed_ones(
    run_cli: Any, bucket: str
) -> None:
    name = function_name()
    first = run_cli(
        "deploy", "--bucket", bucket, "--prefix", "orders/", "--interval", "5",
        "--function-name", name,
    )  # fmt: skip
    assert first.returncode == 0, first.stderr
    again = run_cli("deploy", "--bucket", bucket, "--function-name", name)
    assert again.returncode == 0, again.stderr
    assert again.stdout == f"function {name}: up to date, nothing to change\n"
    env, schedule = deployed(name)
    assert (env["LAMBDACRON_PREFIX"], env["LAMBDACRON_INTERVAL"], schedule) == (
        "orders/",
        "5",
        "rate(5 minutes)",
    )


def test_a_dry_run_shows_each_change_as_old_and_new_and_applies_none(
    run_cli: Any, bucket: str
) -> None:
    name = function_name()
    run_cli("deploy", "--bucket", bucket, "--interval", "5", "--function-name", name)
    dry = run_cli("deploy", "--interval", "10", "--function-name", name, "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert dry.stdout.splitlines() == [
        f'function {name}: environment LAMBDACRON_INTERVAL "5" → "10"',
        f'rule {name}-tick: schedule "rate(5 minutes)" → "rate(10 minutes)"',
        f"dry run: 2 changes for function {name}, none applied",
    ]
    assert deployed(name)[1] == "rate(5 minutes)"


def test_a_bucket_that_does_not_exist_is_refused_in_one_line(run_cli: Any, bucket: str) -> None:
    name = function_name()
    missing = f"{bucket}-missing"
    result = run_cli("deploy", "--bucket", missing, "--function-name", name)
    assert (result.returncode, result.stdout, result.stderr) == (
        2,
        "",
        f"lambdacron: --bucket: no bucket named {missing!r}; deploy never creates one\n",
    )
    functions = boto_client("lambda").list_functions()["Functions"]
    assert name not in [f["FunctionName"] for f in functions]


def test_the_first_deploy_needs_a_bucket(run_cli: Any, moto_endpoint: str) -> None:
    name = function_name()
    result = run_cli("deploy", "--function-name", name)
    assert (result.returncode, result.stderr) == (
        2,
        f"lambdacron: --bucket is required: function {name} is not deployed yet\n",
    )


def test_a_bad_allowed_type_names_the_flag(run_cli: Any, bucket: str) -> None:
    result = run_cli("deploy", "--bucket", bucket, "--allowed-types", "shell", "--dry-run")
    assert (result.returncode, result.stdout, result.stderr) == (
        2,
        "",
        "lambdacron: --allowed-types: 'shell'; use a list of command, python, lambda\n",
    )


def test_bad_destinations_are_refused_in_one_line_naming_the_flag(
    run_cli: Any, bucket: str
) -> None:
    name = function_name()
    arn = "arn:aws:s3:::orders"
    result = run_cli("deploy", "--bucket", bucket, "--function-name", name, "--notify-arn", arn)
    assert (result.returncode, result.stdout, result.stderr) == (
        2,
        "",
        f"lambdacron: --notify-arn: {arn!r} is not the ARN of an SNS topic, an SQS queue or "
        "a Lambda function\n",
    )
    result = run_cli("deploy", "--bucket", bucket, "--function-name", name, "--on-failure", "{")
    assert (result.returncode, result.stdout, result.stderr) == (
        2,
        "",
        "lambdacron: --on-failure: '{' is not a JSON object with one key; expected "
        '{"sns": TOPIC_ARN}, {"sqs": QUEUE_URL} or {"lambda": FUNCTION_ARN}\n',
    )
    functions = boto_client("lambda").list_functions()["Functions"]
    assert name not in [f["FunctionName"] for f in functions]


def test_the_cli_deploys_tick_only_with_alarms_and_destinations(run_cli: Any, bucket: str) -> None:
    name = function_name()
    topic = "arn:aws:sns:us-east-1:123456789012:pager"
    on_failure = '{"lambda": "arn:aws:lambda:us-east-1:123456789012:function:report"}'
    args = (
        "deploy", "--bucket", bucket, "--function-name", name, "--no-delivery-queue",
        "--alarm-topic", topic, "--notify-arn", topic, "--on-failure", on_failure,
    )  # fmt: skip
    result = run_cli(*args)
    assert result.returncode == 0, result.stderr
    assert f"queue {name}-delivery: create" not in result.stdout
    env, _ = deployed(name)
    assert env["LAMBDACRON_ON_FAILURE"] == on_failure
    assert "LAMBDACRON_DELIVERY_QUEUE" not in env
    alarms = boto_client("cloudwatch").describe_alarms(AlarmNamePrefix=f"{name}-")["MetricAlarms"]
    assert sorted(a["AlarmName"] for a in alarms) == [
        f"{name}-{kind}" for kind in ("dead-man", "failed", "missed", "store-errors")
    ]
    again = run_cli(*args)
    assert again.stdout == f"function {name}: up to date, nothing to change\n", again.stderr


def test_the_cli_sets_keeps_and_removes_the_retry_and_the_deadline(
    run_cli: Any, bucket: str
) -> None:
    name = function_name()
    retry = (
        '{"attempts": 2, "backoff_seconds": 5, "max_backoff_seconds": 60, "on_interrupted": true}'
    )
    first = run_cli(
        "deploy", "--bucket", bucket, "--function-name", name,
        "--retry", '{"on_interrupted":true,"max_backoff_seconds":60,"attempts":2,'
        '"backoff_seconds":5}',
        "--deadline-seconds", "3600",
    )  # fmt: skip
    assert first.returncode == 0, first.stderr
    env, _ = deployed(name)
    assert (env["LAMBDACRON_RETRY"], env["LAMBDACRON_DEADLINE_SECONDS"]) == (retry, "3600")

    again = run_cli("deploy", "--function-name", name)
    assert again.stdout == f"function {name}: up to date, nothing to change\n", again.stderr

    dry = run_cli(
        "deploy", "--function-name", name, "--retry", '{"attempts": 4}',
        "--deadline-seconds", "", "--dry-run",
    )  # fmt: skip
    assert dry.returncode == 0, dry.stderr
    assert dry.stdout.splitlines() == [
        f'function {name}: environment LAMBDACRON_DEADLINE_SECONDS "3600" → (none)',
        f"function {name}: environment LAMBDACRON_RETRY {json.dumps(retry)} → "
        + json.dumps(
            '{"attempts": 4, "backoff_seconds": 30, "max_backoff_seconds": 900, '
            '"on_interrupted": false}'
        ),
        f"dry run: 2 changes for function {name}, none applied",
    ]
    assert deployed(name)[0] == env

    removed = run_cli("deploy", "--function-name", name, "--retry", "", "--deadline-seconds", "")
    assert removed.returncode == 0, removed.stderr
    env, _ = deployed(name)
    assert "LAMBDACRON_RETRY" not in env and "LAMBDACRON_DEADLINE_SECONDS" not in env


@pytest.mark.parametrize(
    ("flag", "value", "why"),
    [
        ("--retry", "{", "invalid JSON: Expecting property name enclosed in double quotes at "
         "line 1 column 2"),
        ("--retry", "3", 'expected a JSON object such as {"attempts": 3}'),
        ("--retry", '{"attempts": 200}', "attempts: must be 1 to 186 (1: no retry), got 200"),
        ("--retry", '{"backoff": 5}', "backoff: is not a field of retry (known: attempts, "
         "backoff_seconds, max_backoff_seconds, on_interrupted)"),
        ("--deadline-seconds", "0", "0 must be between 1 and 2592000"),
        ("--deadline-seconds", "2592001", "2592001 must be between 1 and 2592000"),
        ("--deadline-seconds", "1h", "'1h' is not a whole number"),
    ],
)  # fmt: skip
def test_a_bad_retry_or_deadline_is_refused_in_one_line_naming_the_flag(
    run_cli: Any, bucket: str, flag: str, value: str, why: str
) -> None:
    name = function_name()
    result = run_cli("deploy", "--bucket", bucket, "--function-name", name, flag, value)
    assert (result.returncode, result.stdout, result.stderr) == (
        2,
        "",
        f"lambdacron: {flag}: {why}\n",
    )
    functions = boto_client("lambda").list_functions()["Functions"]
    assert name not in [f["FunctionName"] for f in functions]
