"""Sharding on AWS: the Lambda fan-out. (The key layout, shard listings and ``tick --shards``
are tested in tests/store, without AWS.)"""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

import lambdacron
from helpers import command_job
from lambdacron.store.s3 import S3Store
from recording_lambda import RecordingLambda


def appender(out: Path) -> dict[str, Any]:
    return command_job("@hourly", ["sh", "-c", f'echo "$LAMBDACRON_JOB" >> {out}'])


@pytest.fixture
def fan_env(
    bucket: str,
    monkeypatch: pytest.MonkeyPatch,
    lambda_recorder: RecordingLambda,
    warm_engines: None,
) -> RecordingLambda:
    monkeypatch.setenv("LAMBDACRON_STORE", f"s3://{bucket}/jobs/")
    monkeypatch.setenv("LAMBDACRON_SHARDS", "4")
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "lambdacron")
    return lambda_recorder


def test_the_lambda_fans_out_one_invocation_per_shard(
    fan_env: RecordingLambda, bucket: str, tmp_path: Path
) -> None:
    store = S3Store(bucket, "jobs/")
    out = tmp_path / "out.txt"
    for _ in range(40):
        lambdacron.add(store, appender(out))  # generated, sharded keys
    moment = (datetime.now(UTC) + timedelta(hours=1)).replace(minute=0, second=0, microsecond=0)
    first = lambdacron.lambda_handler({"time": moment.strftime("%Y-%m-%dT%H:%M:%SZ")}, None)
    assert first == {"level": "INFO", "event": "fan_out", "now": moment.isoformat(), "shards": 4}
    assert [c.function for c in fan_env.seen] == ["lambdacron"] * 4
    assert all(c.headers["X-Amz-Invocation-Type"] == "Event" for c in fan_env.seen)
    payloads = [json.loads(c.body) for c in fan_env.seen]
    assert payloads == [{"time": moment.isoformat(), "shard": i, "shards": 4} for i in range(4)]
    # What Lambda then runs: each shard invocation ticks its own part of the store.
    results = [lambdacron.lambda_handler(p, None) for p in payloads]
    assert sum(r["ran"] for r in results) == 40
    assert all(r["seen"] < 40 for r in results)
    assert sorted(Counter(out.read_text().split()).values()) == [1] * 40


def test_a_bad_shard_is_a_clear_error(fan_env: RecordingLambda) -> None:
    with pytest.raises(lambdacron.LambdacronError) as caught:
        lambdacron.lambda_handler({"shard": 4, "shards": 4}, None)
    assert str(caught.value) == "shard: expected 0 <= shard < shards, got 4 of 4"
