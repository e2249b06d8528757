"""The S3 store and the Lambda handler against what a careless or hostile user leaves in
the bucket or sends the function: every case against moto over HTTP."""

from __future__ import annotations

import contextlib
import io
import json
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from conftest import boto_client
from helpers import append_job
from lambdacron import handler
from lambdacron.actions import default_registry
from lambdacron.engine import Engine
from lambdacron.store.s3 import S3Store

#: What a user may set on a job object beside its body, and how S3 answers it back.
PROPERTIES: dict[str, Any] = {
    "Metadata": {"owner": "alice", "ticket": "ORD-17"},
    "CacheControl": "no-cache",
    "ContentDisposition": "attachment; filename=order.json",
    "ContentEncoding": "identity",
    "ContentLanguage": "en",
    "StorageClass": "STANDARD_IA",
}


class Context:
    """What the Lambda runtime passes: here, only the remaining time matters."""

    def get_remaining_time_in_millis(self) -> int:
        return 600_000


def engine_on(store: S3Store) -> Engine:
    return Engine(store, default_registry(), clock=lambda: datetime.now(UTC), workers=2)


def properties(bucket: str, key: str) -> dict[str, Any]:
    head = boto_client("s3").head_object(Bucket=bucket, Key=key)
    return {name: head.get(name) for name in PROPERTIES}


class TestWritesKeepTheObjectsProperties:
    """A runner's write replaces the object: what the user set on it besides the body (user
    metadata, headers, storage class) must not be dropped by it."""

    def test_a_run_keeps_them(self, bucket: str, tmp_path: Path) -> None:
        job = append_job("@hourly", tmp_path / "ran.txt", "m", note={"kept": True})
        boto_client("s3").put_object(
            Bucket=bucket, Key="jobs/m.json", Body=json.dumps(job).encode(), **PROPERTIES
        )
        assert properties(bucket, "jobs/m.json") == PROPERTIES
        with engine_on(S3Store(bucket, "jobs/")) as engine:
            # The first tick records when the schedule took effect, claims, runs and writes
            # the result: three writes; the second runs again from its own last write.
            for hours in (1, 2):
                report = engine.tick(datetime.now(UTC) + timedelta(hours=hours))
                assert report.ran == 1
        assert (tmp_path / "ran.txt").read_text() == "m\nm\n"
        assert properties(bucket, "jobs/m.json") == PROPERTIES
        stored = json.loads(
            boto_client("s3").get_object(Bucket=bucket, Key="jobs/m.json")["Body"].read()
        )
        assert stored["note"] == {"kept": True} and stored["execution_count"] == 2

    def test_an_edit_during_the_run_keeps_the_edits_own(self, bucket: str) -> None:
        # The job rewrites its own object, with other metadata, while it runs: the result is
        # merged into that version, and its metadata is the one kept.
        script = (
            "import boto3, json\n"
            "s3 = boto3.client('s3')\n"
            f"bucket, key = {bucket!r}, 'jobs/e.json'\n"
            "doc = json.loads(s3.get_object(Bucket=bucket, Key=key)['Body'].read())\n"
            "doc['note'] = 'edited'\n"
            "s3.put_object(Bucket=bucket, Key=key, Body=json.dumps(doc).encode(),\n"
            "              Metadata={'owner': 'bob'}, CacheControl='max-age=60')\n"
        )
        job = {"when": "@hourly", "run": {"type": "python", "details": {"script": script}}}
        boto_client("s3").put_object(
            Bucket=bucket, Key="jobs/e.json", Body=json.dumps(job).encode(), **PROPERTIES
        )
        with engine_on(S3Store(bucket, "jobs/")) as engine:
            report = engine.tick(datetime.now(UTC) + timedelta(hours=1))
        assert (report.ran, report.failed) == (1, 0)
        head = boto_client("s3").head_object(Bucket=bucket, Key="jobs/e.json")
        assert (head["Metadata"], head["CacheControl"]) == ({"owner": "bob"}, "max-age=60")
        stored = json.loads(
            boto_client("s3").get_object(Bucket=bucket, Key="jobs/e.json")["Body"].read()
        )
        assert stored["note"] == "edited" and stored["last_result"]["status"] == "ok"


class TestATickAndADeliveryOfOneOccurrence:
    """The tick and the SQS delivery of the same second race on one occurrence. Whoever
    comes second, whether its claim loses the write or it reads the winner's claim, has
    nothing held back: the occurrence is taken, not skipped (the ``Skipped`` alarm is for
    jobs that are not being started)."""

    @pytest.fixture
    def queue(self, bucket: str, monkeypatch: pytest.MonkeyPatch, warm_engines: None) -> str:
        url = boto_client("sqs").create_queue(QueueName=f"delivery-{uuid.uuid4().hex[:8]}")
        monkeypatch.setenv("LAMBDACRON_BUCKET", bucket)
        monkeypatch.setenv("LAMBDACRON_PREFIX", "jobs")
        monkeypatch.setenv("LAMBDACRON_DELIVERY_QUEUE", url["QueueUrl"])
        return str(url["QueueUrl"])

    def test_the_tick_that_finds_the_delivery_running_it_counts_it_taken(
        self, bucket: str, queue: str, tmp_path: Path
    ) -> None:
        at = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=1)
        release, out = tmp_path / "release", tmp_path / "out"
        script = (
            "import pathlib, time\n"
            f"while not pathlib.Path({str(release)!r}).exists(): time.sleep(0.02)\n"
            f"open({str(out)!r}, 'a').write('ran\\n')\n"
        )
        when = f"at({at.isoformat()})"
        job = {"when": when, "run": {"type": "python", "details": {"script": script}}}
        s3 = boto_client("s3")
        s3.put_object(Bucket=bucket, Key="jobs/o.json", Body=json.dumps(job).encode())
        occurrence = {
            "key": "o.json",
            "at": at.isoformat(),
            "fingerprint": json.dumps([when, "UTC", True]),
            "store": f"s3://{bucket}/jobs/",
        }
        event = {
            "Records": [
                {"messageId": "m", "body": json.dumps(occurrence), "eventSource": "aws:sqs"}
            ]
        }
        answers: list[Any] = []
        delivering = threading.Thread(
            target=lambda: answers.append(handler.lambda_handler(event, Context()))
        )
        delivering.start()
        try:
            deadline = time.monotonic() + 20
            while "claim" not in json.loads(
                s3.get_object(Bucket=bucket, Key="jobs/o.json")["Body"].read()
            ):
                assert time.monotonic() < deadline
                time.sleep(0.05)
            # The tick of that second, and a later one while the run still goes on.
            reports = [
                handler.lambda_handler({"time": moment.strftime("%Y-%m-%dT%H:%M:%SZ")}, Context())
                for moment in (at, at + timedelta(minutes=1))
            ]
        finally:
            release.touch()
            delivering.join(timeout=60)
        assert answers == [{"batchItemFailures": []}]
        assert out.read_text() == "ran\n"
        for report in reports:
            assert (report["ran"], report["taken"], report["skipped"]) == (0, 1, 0)

    def test_duplicated_messages_of_one_occurrence_run_it_once_and_skip_nothing(
        self, bucket: str, queue: str, tmp_path: Path
    ) -> None:
        at = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=1)
        when = f"at({at.isoformat()})"
        out = tmp_path / "out"
        # Long enough that every duplicate reads the job while its run is going.
        script = f"import time; time.sleep(1); open({str(out)!r}, 'a').write('ran\\n')"
        job = {"when": when, "run": {"type": "python", "details": {"script": script}}}
        boto_client("s3").put_object(
            Bucket=bucket, Key="jobs/o.json", Body=json.dumps(job).encode()
        )
        occurrence = {
            "key": "o.json",
            "at": at.isoformat(),
            "fingerprint": json.dumps([when, "UTC", True]),
            "store": f"s3://{bucket}/jobs/",
        }
        # The tick before it, which planned it, recorded when its schedule took effect.
        before = (at - timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
        assert handler.lambda_handler({"time": before}, Context())["ran"] == 0
        record = {"body": json.dumps(occurrence), "eventSource": "aws:sqs"}
        event = {"Records": [{**record, "messageId": f"m{i}"} for i in range(10)]}
        with_output = io.StringIO()
        with contextlib.redirect_stdout(with_output):
            assert handler.lambda_handler(event, Context()) == {"batchItemFailures": []}
        assert out.read_text() == "ran\n"
        (summary,) = [
            json.loads(line)
            for line in with_output.getvalue().splitlines()
            if '"event":"deliver"' in line
        ]
        assert (summary["ran"], summary["taken"], summary["skipped"]) == (1, 9, 0)
