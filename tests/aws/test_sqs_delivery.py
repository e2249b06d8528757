"""Delivery at the second on AWS: the tick plans into SQS (moto over HTTP), the same handler
runs each SQS batch. A test poller stands in for Lambda's event source mapping.

Every case ends with the occurrence run exactly once or, where the job changed, not at all:
a delayed message, a duplicate, a lost one, a job deleted or rescheduled in between, and a
store failure that has the message delivered again.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from conftest import boto_client
from faultproxy import FaultProxy
from helpers import append_job
from lambdacron import handler
from sqs_poller import poll_once


class Context:
    def __init__(self, seconds: float = 900) -> None:
        self.deadline = time.monotonic() + seconds

    def get_remaining_time_in_millis(self) -> int:
        return int((self.deadline - time.monotonic()) * 1000)


@pytest.fixture
def queue(bucket: str, monkeypatch: pytest.MonkeyPatch, warm_engines: None) -> str:
    sqs = boto_client("sqs")
    # A short visibility timeout: a message the handler names as failed comes back soon.
    url = sqs.create_queue(
        QueueName=f"delivery-{uuid.uuid4().hex[:8]}", Attributes={"VisibilityTimeout": "2"}
    )["QueueUrl"]
    monkeypatch.setenv("LAMBDACRON_BUCKET", bucket)
    monkeypatch.setenv("LAMBDACRON_PREFIX", "jobs")
    monkeypatch.setenv("LAMBDACRON_DELIVERY_QUEUE", url)
    monkeypatch.setenv("LAMBDACRON_LOOKAHEAD", "60")
    return url


def put(bucket: str, key: str, document: Any) -> None:
    boto_client("s3").put_object(
        Bucket=bucket, Key=f"jobs/{key}", Body=json.dumps(document).encode()
    )


def get(bucket: str, key: str) -> Any:
    return json.loads(boto_client("s3").get_object(Bucket=bucket, Key=f"jobs/{key}")["Body"].read())


def tick(moment: datetime) -> dict[str, Any]:
    return handler.lambda_handler({"time": moment.strftime("%Y-%m-%dT%H:%M:%SZ")}, Context())


def soon(seconds: int) -> datetime:
    return (datetime.now(UTC) + timedelta(seconds=seconds + 1)).replace(microsecond=0)


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def counts(queue: str) -> dict[str, int]:
    """The queue's messages: visible ("ApproximateNumberOfMessages"), held by a receiver
    ("...NotVisible") and delayed ("...Delayed")."""
    names = [
        "ApproximateNumberOfMessages",
        "ApproximateNumberOfMessagesNotVisible",
        "ApproximateNumberOfMessagesDelayed",
    ]
    found = boto_client("sqs").get_queue_attributes(QueueUrl=queue, AttributeNames=names)
    return {
        name.removeprefix("ApproximateNumberOf"): int(found["Attributes"].get(name, "0"))
        for name in names
    }


def empty(queue: str) -> bool:
    """No message left: neither visible, nor delayed, nor held by a receiver."""
    return not any(counts(queue).values())


def new_queue(prefix: str) -> str:
    return boto_client("sqs").create_queue(QueueName=f"{prefix}-{uuid.uuid4().hex[:8]}")["QueueUrl"]


def deliver_all(queue: str, until: datetime, limit: float = 40) -> tuple[int, list[str]]:
    """Poll until the queue has been empty past ``until``: messages seen, ids failed."""
    sqs = boto_client("sqs")
    seen, failed = 0, list[str]()
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        count, failures = poll_once(sqs, queue, handler.lambda_handler, Context())
        seen, failed = seen + count, failed + failures
        if count == 0 and datetime.now(UTC) > until + timedelta(seconds=1) and empty(queue):
            break
    return seen, failed


def test_a_planned_occurrence_is_held_until_its_second_then_runs_once(
    bucket: str, queue: str, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    at = soon(4)
    put(bucket, "o.json", append_job(f"at({at.isoformat()})", out, "x", max_number_executions=0))
    report = tick(datetime.now(UTC))
    assert report["planned"] == 1 and report["ran"] == 0
    sqs = boto_client("sqs")
    # Delayed: nothing is visible before its time.
    assert sqs.receive_message(QueueUrl=queue, WaitTimeSeconds=0).get("Messages", []) == []
    seen, failed = deliver_all(queue, at)
    assert (seen, failed, lines(out)) == (1, [], ["x"])
    job = get(bucket, "o.json")
    assert job["last_scheduled"] == at.isoformat().replace("+00:00", "Z")
    started = datetime.fromisoformat(job["last_result"]["started"])
    assert started >= at and job["last_result"]["lateness_ms"] >= 0
    # The same message once more (SQS delivers at least once): found taken, not run.
    planned = {
        "key": "o.json",
        "at": at.isoformat(),
        "fingerprint": json.dumps([job["when"], "UTC", True]),
        "store": f"s3://{bucket}/jobs/",
    }
    sqs.send_message(QueueUrl=queue, MessageBody=json.dumps(planned))
    seen, failed = deliver_all(queue, at)
    assert (seen, failed, lines(out)) == (1, [], ["x"])
    assert get(bucket, "o.json")["execution_count"] == 1


def test_a_message_that_is_no_occurrence_of_this_store_is_failed_for_the_dead_letter_queue(
    bucket: str, queue: str
) -> None:
    sqs = boto_client("sqs")
    elsewhere = {"key": "o.json", "at": "2026-01-01T00:00:00Z", "fingerprint": "f"}
    ids = {
        sqs.send_message(QueueUrl=queue, MessageBody=body)["MessageId"]
        for body in (
            "not json",
            json.dumps({**elsewhere, "store": "s3://another/"}),
            json.dumps({"key": "o.json"}),
        )
    }
    seen, failed = 0, list[str]()
    while seen < 3:
        count, failures = poll_once(sqs, queue, handler.lambda_handler, Context())
        seen, failed = seen + count, failed + failures
    assert set(failed) == ids


def test_a_lost_message_costs_lateness_only(bucket: str, queue: str, tmp_path: Path) -> None:
    out = tmp_path / "out"
    at = soon(2)
    put(bucket, "o.json", append_job(f"at({at.isoformat()})", out, "x", max_number_executions=0))
    assert tick(datetime.now(UTC))["planned"] == 1
    boto_client("sqs").purge_queue(QueueUrl=queue)  # the message is lost
    time.sleep(max(0.0, (at - datetime.now(UTC)).total_seconds()) + 0.5)
    report = tick(datetime.now(UTC))  # the next tick's catch-up
    assert report["ran"] == 1 and lines(out) == ["x"]


def test_a_job_deleted_or_rescheduled_after_the_plan_is_not_run(
    bucket: str, queue: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    gone, moved = tmp_path / "gone", tmp_path / "moved"
    at = soon(3)
    put(bucket, "gone.json", append_job(f"at({at.isoformat()})", gone, "x"))
    put(bucket, "moved.json", append_job(f"at({at.isoformat()})", moved, "x"))
    assert tick(datetime.now(UTC))["planned"] == 2
    boto_client("s3").delete_object(Bucket=bucket, Key="jobs/gone.json")
    later = at + timedelta(hours=1)
    put(bucket, "moved.json", append_job(f"at({later.isoformat()})", moved, "x"))
    seen, failed = deliver_all(queue, at)
    assert (seen, failed, lines(gone), lines(moved)) == (2, [], [], [])
    logged = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert any(r.get("outcome") == "cancelled" and r.get("key") == "moved.json" for r in logged)


@pytest.fixture
def proxy(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[FaultProxy]:
    proxy = FaultProxy(moto_endpoint).start()
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", proxy.url)  # the handler's S3, not its SQS
    yield proxy
    proxy.stop()


def test_a_store_failure_has_the_message_delivered_again_and_it_runs_once(
    bucket: str, queue: str, proxy: FaultProxy, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    at = soon(2)
    put(bucket, "o.json", append_job(f"at({at.isoformat()})", out, "x", max_number_executions=0))
    assert tick(datetime.now(UTC))["planned"] == 1
    time.sleep(max(0.0, (at - datetime.now(UTC)).total_seconds()) + 0.2)
    proxy.inject("internal", method="GET", count=50)
    sqs = boto_client("sqs")
    count, failed = poll_once(sqs, queue, handler.lambda_handler, Context(), wait_seconds=5)
    assert count == 1 and len(failed) == 1 and lines(out) == []
    proxy.calm()
    seen, failed = deliver_all(queue, at)  # back after its visibility timeout
    assert (seen, failed, lines(out)) == (1, [], ["x"])


def test_an_occurrence_delivered_well_before_its_time_waits_in_the_queue_again(
    bucket: str, queue: str, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    at = soon(30)
    put(bucket, "o.json", append_job(f"at({at.isoformat()})", out, "x"))
    tick(datetime.now(UTC))
    boto_client("sqs").purge_queue(QueueUrl=queue)
    occurrence = {
        "key": "o.json",
        "at": at.isoformat(),
        "fingerprint": json.dumps([f"at({at.isoformat()})", "UTC", True]),
        "store": f"s3://{bucket}/jobs/",
    }
    early = {
        "Records": [{"messageId": "m1", "body": json.dumps(occurrence), "eventSource": "aws:sqs"}]
    }
    assert handler.lambda_handler(early, Context()) == {"batchItemFailures": []}
    assert lines(out) == []
    assert counts(queue)["MessagesDelayed"] == 1


def test_a_batch_of_deliveries_is_no_tick_to_the_dead_mans_alarm(
    bucket: str, queue: str, capsys: pytest.CaptureFixture[str]
) -> None:
    tick(datetime.now(UTC))
    records = {"Records": [{"messageId": "m", "body": "{}", "eventSource": "aws:sqs"}]}
    handler.lambda_handler(records, Context())
    logged = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["Ticks"] for r in logged if "Ticks" in r] == [1, 0]


def test_a_retry_is_delivered_through_the_queue_and_its_failure_told_over_sqs(
    bucket: str, queue: str, tmp_path: Path
) -> None:
    sqs = boto_client("sqs")
    told = new_queue("told")
    out = tmp_path / "out"
    script = f"open({str(out)!r}, 'a').write('x\\n'); raise SystemExit('vendor closed')"
    at = soon(1)
    document = {
        "when": f"at({at.isoformat()})",
        "retry": {"attempts": 2, "backoff_seconds": 2},
        "on_failure": {"sqs": told},
        "order": {"customer": 42},
        "run": {"type": "python", "details": {"script": script}},
    }
    put(bucket, "o.json", document)
    assert tick(datetime.now(UTC))["planned"] == 1
    seen, failed = deliver_all(queue, at + timedelta(seconds=3))
    # The occurrence, then its retry: each delivered through the queue at its time.
    assert (seen, failed, lines(out)) == (2, [], ["x", "x"])
    job = get(bucket, "o.json")  # kept: it failed
    assert job["last_result"]["attempt"] == 2 and job["last_result"]["status"] == "failed"
    assert [h.get("attempt", 1) for h in job["history"]] == [2, 1]
    (message,) = sqs.receive_message(QueueUrl=told, WaitTimeSeconds=1)["Messages"]
    notice = json.loads(message["Body"])
    assert (notice["reason"], notice["attempts"], notice["key"]) == ("failed", 2, "o.json")
    assert notice["run"] == document["run"] and notice["store"] == f"s3://{bucket}/jobs/"


def test_a_body_naming_a_field_twice_is_no_occurrence() -> None:
    from lambdacron.errors import LambdacronError
    from lambdacron.sqs import occurrence_of

    body = '{"key": "a.json", "key": "b.json", "at": "2026-01-01T00:00:00Z", "fingerprint": "f"}'
    with pytest.raises(LambdacronError, match="key"):
        occurrence_of(body + "", "s3://b/")


def test_a_plan_of_many_batches_sends_each_occurrence_once_with_its_delay(
    moto_endpoint: str,
) -> None:
    from lambdacron.engine.delivery import Occurrence
    from lambdacron.errors import DeliveryError
    from lambdacron.sqs import SqsDelivery

    url = new_queue("plan")
    now = datetime(2026, 6, 1, 12, tzinfo=UTC)
    occurrences = [
        Occurrence(now + timedelta(seconds=i % 3 * 100), f"k{i}.json", "f") for i in range(25)
    ]
    delivery = SqsDelivery(url, "s3://b/", timedelta(minutes=1), clock=lambda: now)
    delivery.plan(occurrences)
    # Those due now are visible at once; the others are delayed 100 or 200 seconds.
    assert (counts(url)["Messages"], counts(url)["MessagesDelayed"]) == (9, 16)
    gone = SqsDelivery(url + "-gone", "s3://b/", timedelta(minutes=1), clock=lambda: now)
    with pytest.raises(DeliveryError, match="25 of 25 messages not sent"):
        gone.plan(occurrences)


def test_a_warm_runner_sends_an_occurrence_once_however_many_plans_hold_it(
    moto_endpoint: str,
) -> None:
    from lambdacron.engine.delivery import Occurrence
    from lambdacron.errors import DeliveryError
    from lambdacron.sqs import SqsDelivery

    url = new_queue("plan")
    now = datetime(2026, 6, 1, 12, tzinfo=UTC)
    clock = [now]

    def held() -> int:
        return sum(counts(url).values())

    first = [Occurrence(now + timedelta(seconds=30 * i), "k.json", "f") for i in range(1, 5)]
    delivery = SqsDelivery(url, "s3://b/", timedelta(minutes=2), clock=lambda: clock[0])
    delivery.plan(first)
    assert held() == 4
    # The next tick's lookahead overlaps this one's: only what is new is sent.
    clock[0] = now + timedelta(minutes=1)
    later = [*first[2:], Occurrence(now + timedelta(seconds=150), "k.json", "f")]
    delivery.plan(later)
    assert held() == 5
    # A schedule edited since is another occurrence: sent.
    delivery.plan([Occurrence(first[3].at, "k.json", "g")])
    assert held() == 6
    # Another container knows nothing of these: it sends them again (a duplicate delivery
    # finds its occurrence taken).
    SqsDelivery(url, "s3://b/", timedelta(minutes=2), clock=lambda: clock[0]).plan(later)
    assert held() == 9
    # What could not be sent is not taken for sent: the next plan sends it.
    other = new_queue("plan")
    failing = SqsDelivery(other + "-gone", "s3://b/", timedelta(minutes=2), clock=lambda: now)
    with pytest.raises(DeliveryError):
        failing.plan(first)
    failing.queue_url = other
    failing.plan(first)
    assert counts(other)["MessagesDelayed"] == 4


def test_what_a_runner_sent_on_is_forgotten_once_its_time_has_passed(
    moto_endpoint: str,
) -> None:
    # The engine that consumes the queue, in a sharded deployment, sends on the messages
    # that came too early and never plans: what it remembers must not grow while it is warm.
    from lambdacron.engine.delivery import Occurrence
    from lambdacron.sqs import SqsDelivery

    url = new_queue("send")
    now = datetime(2026, 6, 1, 12, tzinfo=UTC)
    clock = [now]
    delivery = SqsDelivery(url, "s3://b/", timedelta(minutes=16), clock=lambda: clock[0])
    for round_ in range(6):
        clock[0] = now + timedelta(minutes=20 * round_)
        later = clock[0] + timedelta(seconds=960)
        delivery.send([Occurrence(later, f"j{i}.json", "f") for i in range(5)])
    # The last two rounds': the earlier ones are more than a lookahead past.
    assert len(delivery._sent) == 10


def test_a_tick_that_starts_late_sends_nothing_already_sent(moto_endpoint: str) -> None:
    # A tick's event may come late, or its tick overrun: it plans (tick time, + lookahead],
    # part of which the clock has passed and the previous tick already sent.
    from lambdacron.engine.delivery import Occurrence
    from lambdacron.sqs import SqsDelivery

    url = new_queue("late")
    now = datetime(2026, 6, 1, 12, tzinfo=UTC)
    clock = [now]
    delivery = SqsDelivery(url, "s3://b/", timedelta(minutes=2), clock=lambda: clock[0])
    every_10s = [Occurrence(now + timedelta(seconds=10 * i), "k.json", "f") for i in range(1, 13)]
    delivery.plan(every_10s)
    assert sum(counts(url).values()) == 12
    clock[0] = now + timedelta(seconds=100)  # the next tick, for now + 60 s, starts 40 s late
    delivery.plan([o for o in every_10s if o.at > now + timedelta(seconds=60)])
    assert sum(counts(url).values()) == 12


def test_a_wall_clock_slower_than_the_sleep_still_runs_the_occurrence_at_its_second(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # NTP slews a wall clock by up to 500 ppm: after sleeping out the fraction SQS's whole-
    # second delay left, the clock may still read a hair before the occurrence.
    from helpers import FakeClock, place
    from lambdacron.actions import default_registry
    from lambdacron.engine import Engine
    from lambdacron.engine.delivery import Occurrence
    from lambdacron.sqs import message_body
    from lambdacron.store import LocalStore

    root, out = tmp_path / "jobs", tmp_path / "out"
    at = datetime(2026, 6, 1, 12, 0, 30, 500_000, tzinfo=UTC)
    job = append_job(f"at({at.isoformat()})", out, "x", max_number_executions=0)
    place(root, "o.json", job, at - timedelta(hours=1))
    clock = FakeClock(at - timedelta(seconds=1.5))

    def slewed(seconds: float) -> None:
        clock.now += max(timedelta(microseconds=1), timedelta(seconds=seconds * 0.9995))

    with Engine(LocalStore(root), default_registry(), clock=clock) as engine:
        occurrence = Occurrence(at, "o.json", json.dumps([job["when"], "UTC", True]))
        record = {"messageId": "m", "body": message_body(occurrence, engine.store.url)}
        failures, report = handler.deliver_records(engine, [record], clock=clock, sleep=slewed)
    assert (failures, report.ran, lines(out)) == ([], 1, ["x"])
    assert clock.now >= at


@pytest.mark.parametrize("ahead", [timedelta(hours=1), timedelta(days=3000 * 365)])
def test_a_message_further_ahead_than_any_plan_is_refused_not_sent_round_forever(
    bucket: str, queue: str, capsys: pytest.CaptureFixture[str], ahead: timedelta
) -> None:
    # No runner plans past LAMBDACRON_LOOKAHEAD (at most SQS's 900 s delay), and a retry
    # further out is planned by the tick that reaches it: sent on, such a message would
    # come back every 15 minutes, for ever when it names the year 9998.
    at = min(datetime.now(UTC) + ahead, datetime(9998, 12, 30, tzinfo=UTC))
    body = json.dumps(
        {"key": "o.json", "at": at.isoformat(), "fingerprint": "f", "store": f"s3://{bucket}/jobs/"}
    )
    event = {"Records": [{"messageId": "m1", "body": body, "eventSource": "aws:sqs"}]}
    capsys.readouterr()
    assert handler.lambda_handler(event, Context()) == {
        "batchItemFailures": [{"itemIdentifier": "m1"}]
    }
    assert empty(queue)  # nothing sent on
    errors = [json.loads(x) for x in capsys.readouterr().out.splitlines() if '"ERROR"' in x]
    (error,) = errors
    assert error["message_id"] == "m1" and error["error"].startswith("at: ")
    assert "ahead" in error["error"]


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ("", "the message body: is empty; expected an occurrence, a JSON object"),
        ("  ", "the message body: is empty; expected an occurrence, a JSON object"),
        ("null", "the message body: expected an occurrence, a JSON object, got null"),
        ("[1]", "the message body: expected an occurrence, a JSON object, got a list"),
    ],
)
def test_a_body_that_is_no_object_is_refused_naming_the_message_body(
    body: str, problem: str
) -> None:
    from lambdacron.errors import LambdacronError
    from lambdacron.sqs import occurrence_of

    with pytest.raises(LambdacronError) as refused:
        occurrence_of(body, "s3://b/")
    assert str(refused.value) == problem
