"""Failure notices to AWS destinations: SNS, SQS and Lambda on the moto server over HTTP,
Lambda's Invoke through the recording endpoint, and destinations that are down."""

from __future__ import annotations

import json
import uuid
from dataclasses import replace
from typing import Any

import pytest

from conftest import boto_client
from helpers import utc
from lambdacron.notify import (
    DeliveryOutcome,
    Destination,
    Notice,
    NoticeKind,
    NoticeReason,
    Notifier,
    parse_destination,
)
from recording_lambda import RecordingLambda, Reply

NOTICE = Notice(
    key="orders/1234.json",
    store="s3://my-jobs/jobs/",
    occurrence=utc(2026, 12, 1, 18, 30),
    reason=NoticeReason.FAILED,
    attempts=1,
    last_result={"status": "timeout", "exit_code": -9, "output": "", "error": "killed"},
    run={"type": "command", "details": {"command": ["place-order", "1234"]}},
    sent_at=utc(2026, 12, 1, 18, 36),
)


class Sleeps:
    def __init__(self) -> None:
        self.seen: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.seen.append(seconds)


def make_queue(name: str | None = None, **attributes: str) -> str:
    name = name or f"alerts-{uuid.uuid4().hex[:8]}"
    url: str = boto_client("sqs").create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
    return url


def receive(url: str, wait: int = 5) -> list[dict[str, Any]]:
    response = boto_client("sqs").receive_message(
        QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=wait
    )
    messages: list[dict[str, Any]] = response.get("Messages", [])
    return messages


@pytest.mark.usefixtures("moto_endpoint")
class TestDelivered:
    def test_sns_publishes_the_notice_with_a_subject(self) -> None:
        queue = make_queue()
        queue_arn = boto_client("sqs").get_queue_attributes(
            QueueUrl=queue, AttributeNames=["QueueArn"]
        )["Attributes"]["QueueArn"]
        sns = boto_client("sns")
        topic = sns.create_topic(Name=f"alerts-{uuid.uuid4().hex[:8]}")["TopicArn"]
        sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)

        delivery = Notifier().send(parse_destination({"sns": topic}), NOTICE)

        assert (delivery.outcome, delivery.attempts, delivery.error) == (
            DeliveryOutcome.DELIVERED,
            1,
            None,
        )
        (message,) = receive(queue)
        envelope = json.loads(message["Body"])  # SNS wraps what it delivers to a queue
        assert envelope["TopicArn"] == topic
        assert envelope["Subject"] == "lambdacron: orders/1234.json failed"
        assert json.loads(envelope["Message"]) == NOTICE.to_json()

    def test_sqs_receives_the_notice_as_the_body(self) -> None:
        queue = make_queue()
        delivery = Notifier().send(parse_destination({"sqs": queue}), NOTICE)
        assert delivery.delivered
        (message,) = receive(queue)
        assert json.loads(message["Body"]) == NOTICE.to_json()

    def test_a_fifo_queue_drops_a_second_send_of_the_same_occurrence(self) -> None:
        queue = make_queue(f"alerts-{uuid.uuid4().hex[:8]}.fifo", FifoQueue="true")
        notifier = Notifier()
        destination = parse_destination({"sqs": queue})
        later = replace(NOTICE, sent_at=utc(2026, 12, 1, 18, 37))
        other = replace(NOTICE, occurrence=utc(2026, 12, 2, 18, 30))
        assert all(notifier.send(destination, n).delivered for n in (NOTICE, later, other))
        bodies = [json.loads(m["Body"]) for m in receive(queue, wait=1)]
        assert sorted(b["occurrence"] for b in bodies) == [
            "2026-12-01T18:30:00Z",
            "2026-12-02T18:30:00Z",
        ]

    def test_lambda_is_invoked_asynchronously_with_the_notice(
        self, lambda_recorder: RecordingLambda
    ) -> None:
        lambda_recorder.reply = Reply(status=202, body=b"")
        destination = parse_destination({"lambda": "on-call"})
        delivery = Notifier().send(destination, NOTICE)
        assert delivery.delivered
        (call,) = lambda_recorder.seen
        assert call.function == "on-call"
        assert call.headers["X-Amz-Invocation-Type"] == "Event"
        assert json.loads(call.body) == NOTICE.to_json()


class TestUndelivered:
    @pytest.mark.usefixtures("moto_endpoint")
    def test_a_topic_that_does_not_exist(self) -> None:
        topic = "arn:aws:sns:us-east-1:123456789012:no-such-topic"
        sleeps = Sleeps()
        delivery = Notifier(attempts=3, sleep=sleeps).send(
            Destination(NoticeKind.SNS, topic), NOTICE
        )
        assert delivery.outcome is DeliveryOutcome.UNDELIVERED
        assert (delivery.attempts, sleeps.seen) == (3, [0.5, 1.0])
        assert delivery.error is not None
        assert delivery.error.startswith(f"on_failure.sns: could not publish to {topic}: NotFound")
        assert delivery.error.endswith("(3 attempts)")
        assert "\n" not in delivery.error

    def test_an_sqs_endpoint_on_a_closed_port(self, monkeypatch: pytest.MonkeyPatch) -> None:
        # Outside the moto tests every AWS endpoint is a closed loopback port; botocore's own
        # retries are cut to one so the test waits on no backoff of its own.
        monkeypatch.setenv("AWS_ENDPOINT_URL_SQS", "http://127.0.0.1:9")
        monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
        queue = "https://sqs.us-east-1.amazonaws.com/123456789012/alerts"
        sleeps = Sleeps()
        delivery = Notifier(attempts=2, sleep=sleeps).send(
            Destination(NoticeKind.SQS, queue), NOTICE
        )
        assert (delivery.outcome, delivery.attempts) == (DeliveryOutcome.UNDELIVERED, 2)
        assert sleeps.seen == [0.5]
        assert delivery.error is not None
        assert delivery.error.startswith(
            f"on_failure.sqs: could not send to {queue}: EndpointConnectionError: "
        )

    def test_a_lambda_that_refuses_the_invoke(self, lambda_recorder: RecordingLambda) -> None:
        lambda_recorder.reply = Reply(
            status=404,
            body=b'{"Type": "User", "Message": "Function not found: on-call"}',
            headers={"x-amzn-ErrorType": "ResourceNotFoundException"},
        )
        delivery = Notifier(attempts=2, sleep=Sleeps()).send(
            Destination(NoticeKind.LAMBDA, "on-call"), NOTICE
        )
        assert delivery.outcome is DeliveryOutcome.UNDELIVERED
        assert len(lambda_recorder.seen) == 2
        assert delivery.error == (
            "on_failure.lambda: could not invoke on-call: ResourceNotFoundException: An error"
            " occurred (ResourceNotFoundException) when calling the Invoke operation:"
            " Function not found: on-call (2 attempts)"
        )
