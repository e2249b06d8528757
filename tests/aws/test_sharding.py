"""Sharding: the key layout, shard listings, ``tick --shards`` and the Lambda fan-out."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

import lambdacron
from conftest import Run
from helpers import command_job, place, utc
from lambdacron.deploy import DeployConfig, role_policy
from lambdacron.store import LocalStore, Store
from lambdacron.store.keys import new_key, shard_of
from lambdacron.store.s3 import S3Store
from recording_lambda import RecordingLambda


def appender(out: Path) -> dict[str, Any]:
    return command_job("@hourly", ["sh", "-c", f'echo "$LAMBDACRON_JOB" >> {out}'])


def test_generated_keys_spread_evenly_over_shards() -> None:
    keys = [new_key() for _ in range(4000)]
    assert all(k[2] == "/" and k.endswith(".json") for k in keys)
    per_shard = Counter(shard_of(k, 4) for k in keys)
    assert set(per_shard) == {0, 1, 2, 3}
    assert min(per_shard.values()) > 700  # 1000 each on average


@pytest.mark.parametrize("kind", ["local", "s3"])
def test_shard_listings_partition_the_store(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    store: Store
    if kind == "local":
        store = LocalStore(tmp_path / "jobs", create=True)
    else:
        store = S3Store(request.getfixturevalue("bucket"), "jobs/")
    names = [new_key() for _ in range(60)] + ["top.json", "orders/2026/a.json", "orders/b.json"]
    for name in names:
        store.create(name, b"{}")
    whole = sorted(e.key for e in store.list())
    parts = [sorted(e.key for e in store.list((i, 3))) for i in range(3)]
    assert sorted(k for part in parts for k in part) == whole == sorted(names)
    for i, part in enumerate(parts):
        assert all(shard_of(k, 3) == i for k in part)
    # A folder is never split: all of orders/ is in one shard.
    assert sum("orders/2026/a.json" in p and "orders/b.json" in p for p in parts) == 1


def test_tick_with_shards_runs_every_due_job_once(run_cli: Run, tmp_path: Path) -> None:
    root = tmp_path / "jobs"
    out = tmp_path / "out.txt"
    for _ in range(80):
        place(root, new_key(), appender(out), utc(2026, 1, 1))
    result = run_cli("tick", "--shards", "4", "--now", "2026-01-01T01:00:00Z")
    assert result.returncode == 0, result.stderr
    assert "80 jobs, 80 due, 80 ran, 0 failed, 0 invalid" in result.stdout
    assert result.stdout.strip().endswith("(4 shards)")
    assert sorted(Counter(out.read_text().split()).values()) == [1] * 80
    # Each shard keeps its own index.
    assert sorted(p.name for p in (root / ".lambdacron").glob("index-*.json")) == [
        f"index-{i}-of-4.json" for i in range(4)
    ]


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


def test_deploy_with_shards_may_invoke_only_itself() -> None:
    config = DeployConfig(bucket="b", prefix="jobs", interval=1, function_name="lc", shards=8)
    assert config.environment()["LAMBDACRON_SHARDS"] == "8"
    (fan,) = [s for s in role_policy(config)["Statement"] if s["Sid"] == "FanOutToShards"]
    assert fan["Resource"] == "arn:aws:lambda:*:*:function:lc"
