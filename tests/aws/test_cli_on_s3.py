"""``lambdacron tick`` on an S3 store, as a real process against the moto server."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from conftest import Run, boto_client
from helpers import append_job

PAST = "at(2020-01-01T00:00:00)"


def put(bucket: str, key: str, document: Any) -> None:
    body = document if isinstance(document, bytes) else json.dumps(document).encode()
    boto_client("s3").put_object(Bucket=bucket, Key=f"jobs/{key}", Body=body)


def snapshot(bucket: str) -> dict[str, tuple[str, str, bytes]]:
    """Every object in the bucket (the runner's own included): ETag, time and body."""
    s3 = boto_client("s3")
    listed = s3.list_objects_v2(Bucket=bucket).get("Contents", [])
    return {
        item["Key"]: (
            item["ETag"],
            item["LastModified"].isoformat(),
            s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read(),
        )
        for item in listed
    }


def test_dry_run_on_s3_changes_no_object(run_cli: Run, bucket: str, tmp_path: Path) -> None:
    out = tmp_path / "out.txt"
    store = f"s3://{bucket}/jobs/"
    # Past one-time jobs, kept after their run: due at once, whenever the object was put.
    put(bucket, "due.json", append_job(PAST, out, "due", max_number_executions=0))
    put(bucket, "bad.json", b"[]")
    # A tick leaves the runner's state and its index in the bucket.
    first = run_cli("tick", "--store", store)
    assert "1 ran" in first.stdout, first.stderr
    assert any(key.startswith("jobs/.lambdacron/") for key in snapshot(bucket))
    put(bucket, "new.json", append_job(PAST, out, "new", max_number_executions=0))
    claim = {
        "id": "c0ffee",
        "scheduled": "2026-01-01T05:00:00Z",
        "host": "elsewhere/0",
        "pid": 1,
        "started": "2026-01-01T05:00:00Z",
        "deadline": "2026-01-01T05:07:00Z",
    }
    dead = {**append_job("@hourly", out, "dead"), "last_scheduled": "2026-01-01T05:00:00Z"}
    put(bucket, "dead.json", {**dead, "execution_count": 1, "claim": claim})
    before = snapshot(bucket)

    result = run_cli("tick", "--store", store, "--dry-run", "--json")
    assert result.returncode == 0, result.stderr
    plan = json.loads(result.stdout)
    assert [(job["key"], job["would"]) for job in plan["jobs"]] == [
        ("bad.json", "refuse"),
        ("dead.json", "record_interrupted"),
        ("new.json", "run"),
    ]
    assert snapshot(bucket) == before
    assert out.read_text().split() == ["due"]  # only the first tick's run


@pytest.mark.parametrize("extra", [(), ("--json",), ("--shards", "2"), ("--dry-run",)], ids=str)
def test_a_store_that_cannot_be_listed_exits_3(
    run_cli: Run, moto_endpoint: str, extra: tuple[str, ...]
) -> None:
    result = run_cli("tick", "--store", "s3://no-such-bucket-here/jobs/", *extra)
    assert result.returncode == 3, (result.stdout, result.stderr)
    assert "no such bucket 'no-such-bucket-here'" in result.stderr
    assert "Traceback" not in result.stderr
