"""The S3 store and the Lambda handler against what a careless or hostile user leaves in
the bucket or sends the function: every case against moto over HTTP."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from conftest import boto_client
from helpers import append_job
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
