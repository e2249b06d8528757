"""S3 trouble between boto3 and the server: errors, dropped connections, lost answers."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from conftest import boto_client
from faultproxy import FaultProxy
from helpers import FakeClock, command_job
from lambdacron.actions import default_registry
from lambdacron.engine import Engine
from lambdacron.store.s3 import S3Store


@pytest.fixture
def proxy(moto_endpoint: str) -> Iterator[FaultProxy]:
    proxy = FaultProxy(moto_endpoint, delay_seconds=0.2).start()
    yield proxy
    proxy.stop()


def store_via(proxy: FaultProxy, bucket: str) -> S3Store:
    from botocore.config import Config

    client = boto_client(
        "s3",
        endpoint_url=proxy.url,
        config=Config(
            retries={"mode": "standard", "max_attempts": 5}, connect_timeout=5, read_timeout=10
        ),
    )
    return S3Store(bucket, "jobs/", client=client)


def put(bucket: str, key: str, document: Any) -> None:
    boto_client("s3").put_object(
        Bucket=bucket, Key=f"jobs/{key}", Body=json.dumps(document).encode()
    )


def get(bucket: str, key: str) -> Any:
    return json.loads(boto_client("s3").get_object(Bucket=bucket, Key=f"jobs/{key}")["Body"].read())


def appender(out: Path, when: str = "* * * * *", **fields: Any) -> dict[str, Any]:
    return command_job(
        when, ["sh", "-c", f'echo "$LAMBDACRON_JOB@$LAMBDACRON_SCHEDULED_TIME" >> {out}'], **fields
    )


def minute(offset: int) -> datetime:
    base = (datetime.now(UTC) + timedelta(hours=2)).replace(minute=0, second=0, microsecond=0)
    return base + timedelta(minutes=offset)


class TestAnswersLostAfterTheWriteTookEffect:
    def test_a_create_whose_answer_was_lost_still_succeeds(
        self, bucket: str, proxy: FaultProxy
    ) -> None:
        store = store_via(proxy, bucket)
        proxy.inject("lost", method="PUT")
        store.create("a.json", b'{"x": 1}')
        assert proxy.plan.injected == {"lost": 1}
        assert store.read("a.json").body == b'{"x": 1}'

    # A new job's first tick writes three times: the time its schedule took effect, the
    # claim, and the result.
    @pytest.mark.parametrize("write", ["schedule_from", "claim"])
    def test_a_first_write_whose_answer_was_lost_still_runs_once(
        self, bucket: str, proxy: FaultProxy, tmp_path: Path, write: str
    ) -> None:
        out = tmp_path / "out.txt"
        put(bucket, "j.json", appender(out))
        proxy.inject("lost", method="PUT", skip=["schedule_from", "claim"].index(write))
        with Engine(
            store_via(proxy, bucket), default_registry(), clock=FakeClock(datetime.now(UTC))
        ) as engine:
            report = engine.tick(minute(1))
        assert proxy.plan.injected == {"lost": 1}
        assert (report.ran, report.store_errors) == (1, 0)
        assert out.read_text().splitlines() == [f"j.json@{minute(1):%Y-%m-%dT%H:%M:%SZ}"]
        state = get(bucket, "j.json")
        assert state["execution_count"] == 1 and "claim" not in state

    def test_a_result_whose_answer_was_lost_is_recorded_and_max_still_deletes(
        self, bucket: str, proxy: FaultProxy, tmp_path: Path
    ) -> None:
        out = tmp_path / "out.txt"
        put(bucket, "j.json", appender(out, max_number_executions=1))
        proxy.inject("lost", method="PUT", skip=2)  # the write-back, after the claim
        with Engine(
            store_via(proxy, bucket), default_registry(), clock=FakeClock(datetime.now(UTC))
        ) as engine:
            report = engine.tick(minute(1))
        assert proxy.plan.injected == {"lost": 1}
        assert (report.ran, report.deleted) == (1, 1)
        listing = boto_client("s3").list_objects_v2(Bucket=bucket).get("Contents", [])
        assert [o["Key"] for o in listing if "/.lambdacron/" not in o["Key"]] == []


TICKS = 16


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2])
def test_many_ticks_through_a_faulty_network_lose_nothing_and_run_nothing_twice(
    bucket: str, proxy: FaultProxy, tmp_path: Path, seed: int
) -> None:
    out = tmp_path / "out.txt"
    jobs = 12
    for i in range(jobs):
        put(bucket, f"j{i:02}.json", appender(out))
    bodies_before = {f"j{i:02}.json": get(bucket, f"j{i:02}.json") for i in range(jobs)}
    proxy.chaos(0.2, seed=seed)
    reports = []
    with Engine(
        store_via(proxy, bucket), default_registry(), clock=FakeClock(datetime.now(UTC)), workers=4
    ) as engine:
        for m in range(1, TICKS):
            reports.append(engine.tick(minute(m)))  # never raises
        proxy.calm()
        final = engine.tick(minute(TICKS))
    injected = dict(proxy.plan.injected)
    assert sum(injected.values()) > 40, injected  # the network really was bad
    lines = out.read_text().split()
    counts = Counter(lines)
    assert set(counts.values()) == {1}, [k for k, v in counts.items() if v > 1]
    for i in range(jobs):
        key = f"j{i:02}.json"
        state = get(bucket, key)  # every job is still there and parses
        assert {k: v for k, v in state.items() if k in bodies_before[key]} == bodies_before[key]
        assert "claim" not in state
        # Everything due ran by the end: the last occurrence of each job ran exactly once.
        assert state["last_scheduled"] == f"{minute(TICKS):%Y-%m-%dT%H:%M:%SZ}"
        assert f"{key}@{minute(TICKS):%Y-%m-%dT%H:%M:%SZ}" in counts
        ran = sum(1 for line in lines if line.startswith(f"{key}@"))
        assert state["execution_count"] >= ran
    assert final.store_errors == 0
    errors = sum(r.store_errors for r in reports)
    print(
        f"seed {seed}: injected {injected}; store errors counted {errors}; "
        f"runs {len(lines)} of {jobs * TICKS} occurrences (the rest coalesced)"
    )
