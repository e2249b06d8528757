"""A stand-in for Lambda's SQS event source mapping, for the tests and the benchmark.

moto stores an event source mapping but never runs it, so this long-polls the queue, hands
each batch to the handler as the standard SQS event, and deletes what the handler's
partial-batch reply does not name, as the mapping with ``ReportBatchItemFailures`` does. A
named failure stays in the queue and comes back after its visibility timeout.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Handler = Callable[[dict[str, Any], Any], dict[str, Any]]


def sqs_event(messages: list[dict[str, Any]], queue_arn: str) -> dict[str, Any]:
    return {
        "Records": [
            {
                "messageId": m["MessageId"],
                "receiptHandle": m["ReceiptHandle"],
                "body": m["Body"],
                "attributes": m.get("Attributes", {}),
                "messageAttributes": {},
                "md5OfBody": m.get("MD5OfBody", ""),
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": "us-east-1",
            }
            for m in messages
        ]
    }


def poll_once(
    sqs: Any, queue_url: str, handler: Handler, context: Any = None, wait_seconds: int = 1
) -> tuple[int, list[str]]:
    """One receive and one invocation: how many messages came, and the ids it failed."""
    arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    answer = sqs.receive_message(
        QueueUrl=queue_url,
        MaxNumberOfMessages=10,
        WaitTimeSeconds=wait_seconds,
        AttributeNames=["All"],
    )
    messages = answer.get("Messages", [])
    if not messages:
        return 0, []
    reply = handler(sqs_event(messages, arn), context)
    failed = [item["itemIdentifier"] for item in reply.get("batchItemFailures", [])]
    done = [m for m in messages if m["MessageId"] not in failed]
    if done:
        sqs.delete_message_batch(
            QueueUrl=queue_url,
            Entries=[
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(done)
            ],
        )
    return len(messages), failed
