"""The seed README's motivating use-case, end to end: an order bot schedules the
order-placing Lambda with each order's details; the Lambda runner invokes it at the chosen
time."""

from __future__ import annotations

import base64
import json

import pytest

import lambdacron
from lambdacron.errors import ConflictError, JobError, JobNotFoundError, UsageError
from recording_lambda import RecordingLambda

PLACE_ORDER = "arn:aws:lambda:us-east-1:123456789012:function:place-order"


@pytest.fixture
def vendor(lambda_recorder: RecordingLambda) -> RecordingLambda:
    return lambda_recorder


@pytest.fixture
def runner_env(bucket: str, monkeypatch: pytest.MonkeyPatch, warm_engines: None) -> str:
    monkeypatch.setenv("LAMBDACRON_STORE", f"s3://{bucket}/orders/")
    return bucket


def test_the_meal_order_bot(runner_env: str, vendor: RecordingLambda) -> None:
    store = lambdacron.open_store(f"s3://{runner_env}/orders/")
    # The order-taking bot: the customer wants the order placed at 18:30 Berlin time.
    key = lambdacron.schedule(
        store,
        when="at(2030-12-01T18:30:00)",
        timezone="Europe/Berlin",
        lambda_arn=PLACE_ORDER,
        payload={"order": 1234, "items": ["pho", "spring rolls"]},
        key="2030-12-01/order-1234.json",
        extra={"customer": "c-42"},
    )
    assert key == "2030-12-01/order-1234.json"
    assert lambdacron.get(store, key)["customer"] == "c-42"

    # Ticks before the time do nothing; the first tick at or after 17:30 UTC places it.
    early = lambdacron.lambda_handler({"time": "2030-12-01T17:25:00Z"}, None)
    assert early["ran"] == 0 and vendor.seen == []
    result = lambdacron.lambda_handler({"time": "2030-12-01T17:30:00Z"}, None)
    assert (result["ran"], result["deleted"]) == (1, 1)
    (call,) = vendor.seen
    assert json.loads(call.body) == {"order": 1234, "items": ["pho", "spring rolls"]}
    assert call.headers["X-Amz-Invocation-Type"] == "Event"
    custom = json.loads(base64.b64decode(call.headers["X-Amz-Client-Context"]))["custom"]
    assert custom["lambdacron_job"] == key
    assert custom["lambdacron_scheduled_time"] == "2030-12-01T17:30:00Z"
    # A one-time job deletes itself after its run.
    with pytest.raises(JobNotFoundError):
        lambdacron.get(store, key)
    assert lambdacron.lambda_handler({"time": "2030-12-01T17:35:00Z"}, None)["ran"] == 0


def test_schedule_is_create_only_and_generates_unique_keys(bucket: str) -> None:
    store = lambdacron.open_store(f"s3://{bucket}/orders/")
    first = lambdacron.schedule(store, "rate(5 minutes)", command=["true"])
    second = lambdacron.schedule(store, "rate(5 minutes)", command=["true"])
    assert first != second and first.endswith(".json")
    with pytest.raises(ConflictError, match="already exists"):
        lambdacron.schedule(store, "@daily", python="print(1)", key=first)
    assert lambdacron.get(store, first)["when"] == "rate(5 minutes)"  # not overwritten
    lambdacron.cancel(store, first)
    with pytest.raises(JobNotFoundError):
        lambdacron.cancel(store, first)


def test_schedule_validates_before_writing(bucket: str) -> None:
    store = lambdacron.open_store(f"s3://{bucket}/orders/")
    with pytest.raises(JobError, match="when: minute: 61 is out of range 0-59"):
        lambdacron.schedule(store, "61 * * * *", command=["true"])
    with pytest.raises(UsageError, match="exactly one of command, python, lambda_arn"):
        lambdacron.schedule(store, "@daily", command=["true"], python="print(1)")
    assert list(store.list()) == []
