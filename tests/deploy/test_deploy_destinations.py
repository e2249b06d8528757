"""Failure destinations (``--notify-arn``, ``--on-failure``) grant exactly one action on
exactly the destination, and the alarms of ``--alarm-topic`` watch metrics the runner
publishes, under the store name it publishes them with."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lambdacron.config import Settings
from lambdacron.deploy import DeployConfig, alarms, on_failure_destination, role_policy
from lambdacron.deploy.plan import queue_arn_of_url
from lambdacron.engine.report import TickReport
from lambdacron.errors import UsageError
from lambdacron.logs import emf_record

ACTIONS = {"sns": "sns:Publish", "sqs": "sqs:SendMessage", "lambda": "lambda:InvokeFunction"}
SIDS = {"sns": "NotifyTopics", "sqs": "NotifyQueues", "lambda": "NotifyFunctions"}

partitions = st.sampled_from(["aws", "aws-cn", "aws-us-gov"])
regions = st.sampled_from(["us-east-1", "eu-central-1", "ap-southeast-2", "us-gov-west-1"])
accounts = st.from_regex(r"\d{12}", fullmatch=True)
names = st.from_regex(r"[A-Za-z0-9_-]{1,20}", fullmatch=True)


@st.composite
def destination_arns(draw: st.DrawFn) -> tuple[str, str]:
    """(service, ARN) of an SNS topic, SQS queue or Lambda function."""
    service = draw(st.sampled_from(sorted(ACTIONS)))
    resource = draw(names)
    if service == "lambda":
        resource = f"function:{resource}" + draw(st.sampled_from(["", ":live", ":$LATEST"]))
    arn = f"arn:{draw(partitions)}:{service}:{draw(regions)}:{draw(accounts)}:{resource}"
    return service, arn


def granted(config: DeployConfig) -> dict[str, tuple[Any, Any]]:
    """Sid -> (Action, Resource) of the statements beyond the runner's own."""
    return {
        s["Sid"]: (s["Action"], s["Resource"])
        for s in role_policy(config)["Statement"]
        if s["Sid"] in (*SIDS.values(), "OnFailureDefault")
    }


@settings(max_examples=100, deadline=None)
@given(arns=st.lists(destination_arns(), unique_by=lambda d: d[1], max_size=5))
def test_each_notify_arn_is_granted_its_one_action_and_nothing_else(
    arns: list[tuple[str, str]],
) -> None:
    config = DeployConfig(bucket="b", notify_arns=tuple(arn for _, arn in arns))
    expected = {
        SIDS[service]: (ACTIONS[service], sorted(a for s, a in arns if s == service))
        for service in ACTIONS
        if any(s == service for s, _ in arns)
    }
    assert granted(config) == expected


@pytest.mark.parametrize(
    "arn",
    [
        "arn:aws:s3:::orders",
        "arn:aws:dynamodb:us-east-1:123456789012:table/orders",
        "arn:aws:iam::123456789012:role/admin",
        "arn:aws:sns:us-east-1:123456789012:*",
        "arn:aws:sqs:us-east-1:*:queue",
        "arn:aws:lambda:us-east-1:123456789012:layer:x:1",
        "arn:aws:lambda:us-east-1:123456789012:function:*",
        "sns:us-east-1:123456789012:topic",
        "https://sqs.us-east-1.amazonaws.com/123456789012/q",
        "",
    ],
)
def test_anything_but_a_topic_queue_or_function_arn_is_refused_in_one_line(arn: str) -> None:
    with pytest.raises(UsageError) as refused:
        DeployConfig(bucket="b", notify_arns=(arn,))
    assert str(refused.value) == (
        f"--notify-arn: {arn!r} is not the ARN of an SNS topic, an SQS queue or a Lambda function"
    )


@pytest.mark.parametrize(
    ("url", "arn"),
    [
        (
            "https://sqs.eu-central-1.amazonaws.com/123456789012/failures",
            "arn:aws:sqs:eu-central-1:123456789012:failures",
        ),
        (
            "https://eu-west-1.queue.amazonaws.com/123456789012/f.fifo",
            "arn:aws:sqs:eu-west-1:123456789012:f.fifo",
        ),
        (
            "https://sqs.cn-north-1.amazonaws.com.cn/123456789012/failures",
            "arn:aws-cn:sqs:cn-north-1:123456789012:failures",
        ),
        (
            "https://sqs.us-gov-west-1.amazonaws.com/123456789012/failures",
            "arn:aws-us-gov:sqs:us-gov-west-1:123456789012:failures",
        ),
    ],
)
def test_a_queue_url_on_failure_is_granted_on_the_queues_arn(url: str, arn: str) -> None:
    assert queue_arn_of_url(url) == arn
    config = DeployConfig(bucket="b", on_failure=json.dumps({"sqs": url}))
    assert granted(config) == {"OnFailureDefault": ("sqs:SendMessage", arn)}
    assert config.environment("")["LAMBDACRON_ON_FAILURE"] == json.dumps({"sqs": url})


@settings(max_examples=100, deadline=None)
@given(destination=destination_arns())
def test_an_on_failure_topic_or_function_is_granted_its_one_action(
    destination: tuple[str, str],
) -> None:
    service, arn = destination
    if service == "sqs":  # given as its URL; see above
        return
    text = json.dumps({service: arn})
    assert on_failure_destination(text)[0] == text
    config = DeployConfig(bucket="b", on_failure=text)
    assert granted(config) == {"OnFailureDefault": (ACTIONS[service], arn)}


FORMS = '{"sns": TOPIC_ARN}, {"sqs": QUEUE_URL} or {"lambda": FUNCTION_ARN}'


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("sns", "'sns' is not a JSON object with one key"),
        ("[1]", "'[1]' is not a JSON object with one key"),
        ("{}", "'{}' is not a JSON object with one key"),
        (
            '{"sns": "arn:aws:sns:us-east-1:123456789012:t", "sqs": "x"}',
            """'{"sns": "arn:aws:sns:us-east-1:123456789012:t", "sqs": "x"}' is not a JSON """
            "object with one key",
        ),
        ('{"email": "a@b"}', """'{"email": "a@b"}' names no destination"""),
        ('{"sns": 1}', """'{"sns": 1}' names no destination"""),
        (
            '{"sns": "arn:aws:sqs:us-east-1:123456789012:q"}',
            "sns: 'arn:aws:sqs:us-east-1:123456789012:q' is not the ARN of an SNS topic",
        ),
        (
            '{"lambda": "place-order"}',
            "lambda: 'place-order' is not the ARN of a Lambda function",
        ),
        (
            '{"sqs": "arn:aws:sqs:us-east-1:123456789012:q"}',
            "sqs: 'arn:aws:sqs:us-east-1:123456789012:q' is not an SQS queue URL",
        ),
    ],
)
def test_a_bad_on_failure_is_refused_in_one_line(text: str, why: str) -> None:
    with pytest.raises(UsageError) as refused:
        DeployConfig(bucket="b", on_failure=text)
    assert str(refused.value) == f"--on-failure: {why}; expected {FORMS}"


@settings(max_examples=200, deadline=None)
@given(
    text=st.one_of(
        st.text(max_size=40),
        st.dictionaries(st.text(max_size=6), st.text(max_size=30)).map(json.dumps),
    )
)
def test_no_on_failure_text_raises_anything_but_a_usage_error(text: str) -> None:
    try:
        on_failure_destination(text)
    except UsageError as exc:
        assert str(exc).startswith("--on-failure: ") and "\n" not in str(exc)


def test_an_alarm_topic_must_be_an_sns_topic() -> None:
    function = "arn:aws:lambda:us-east-1:123456789012:function:f"
    for arn in (function, "pager", "arn:aws:sns:us-east-1:123456789012:*"):
        with pytest.raises(UsageError) as refused:
            DeployConfig(bucket="b", alarm_topic=arn)
        assert str(refused.value) == f"--alarm-topic: {arn!r} is not an SNS topic ARN"
    with pytest.raises(UsageError, match=r"^--alarm-topic: CloudWatch cannot watch 3 intervals"):
        DeployConfig(bucket="b", interval=3361, alarm_topic="arn:aws:sns:us-east-1:123456789012:t")


@settings(max_examples=50, deadline=None)
@given(
    prefix=st.sampled_from(["", "jobs", "/jobs/", "orders/2026/"]),
    delivery=st.booleans(),
    interval=st.integers(1, 120),
)
def test_every_alarm_watches_a_metric_the_runner_publishes_under_its_store(
    prefix: str, delivery: bool, interval: int
) -> None:
    config = DeployConfig(
        bucket="orders",
        prefix=prefix,
        interval=interval,
        delivery_queue=delivery,
        alarm_topic="arn:aws:sns:us-east-1:123456789012:pager",
    )
    # The store the deployed function names in its metrics, from the environment deploy gives.
    store = Settings.from_env(config.environment("https://queue")).lambda_store()
    now = datetime(2026, 1, 1, tzinfo=UTC)
    record = emf_record(TickReport(now), store, now)
    (directive,) = record["_aws"]["CloudWatchMetrics"]
    published = {metric["Name"] for metric in directive["Metrics"]}
    ours = [a for a in alarms(config).values() if a["Namespace"] == directive["Namespace"]]
    assert {a["MetricName"] for a in ours} == {"Ticks", "Failed", "Missed", "StoreErrors"}
    for alarm in ours:
        assert alarm["MetricName"] in published
        assert directive["Dimensions"] == [["Store"]]
        assert alarm["Dimensions"] == [{"Name": "Store", "Value": record["Store"]}]
        assert alarm["Period"] == interval * 60
        assert alarm["AlarmActions"] == [config.alarm_topic]
    # A tick that ran reports itself: the dead-man alarm counts these.
    assert record["Ticks"] == 1
    dead_letters = [a for a in alarms(config).values() if a["Namespace"] == "AWS/SQS"]
    assert [a["Dimensions"] for a in dead_letters] == (
        [[{"Name": "QueueName", "Value": config.names.dlq}]] if delivery else []
    )
