"""Overlapping runners on one store: every occurrence runs exactly once."""

from __future__ import annotations

import json
import signal
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from conftest import boto_client
from helpers import command_job, place, spawn

Put = Callable[[str, dict[str, Any]], None]


lambdacron = spawn


@pytest.fixture(params=["local", pytest.param("s3", marks=pytest.mark.aws)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, Put]:
    if request.param == "local":
        root = tmp_path / "jobs"
        root.mkdir()
        return str(root), lambda key, doc: place(root, key, doc, datetime.now(UTC)) and None
    bucket = request.getfixturevalue("bucket")
    s3 = boto_client("s3")

    def put(key: str, doc: dict[str, Any]) -> None:
        s3.put_object(Bucket=bucket, Key=f"jobs/{key}", Body=json.dumps(doc).encode())

    return f"s3://{bucket}/jobs/", put


def appender(out: Path, when: str, **fields: Any) -> dict[str, Any]:
    line = '"$LAMBDACRON_JOB@$LAMBDACRON_SCHEDULED_TIME"'
    return command_job(when, ["sh", "-c", f"echo {line} >> {out}"], **fields)


def stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.mark.slow
def test_eight_ticks_at_once_on_500_due_jobs(store: tuple[str, Put], tmp_path: Path) -> None:
    name, put = store
    out = tmp_path / "out.txt"
    for i in range(500):
        put(f"j/{i:03}.json", appender(out, "@hourly"))
    now = (datetime.now(UTC) + timedelta(hours=2)).replace(minute=1, second=0, microsecond=0)
    ticks = [
        lambdacron(
            "tick",
            "--store",
            name,
            "--now",
            stamp(now),
            "--allow-future",
            "--json",
            "--workers",
            "8",
        )
        for _ in range(8)
    ]
    summaries = [json.loads(t.communicate(timeout=600)[0]) for t in ticks]
    counts = Counter(out.read_text().split())
    assert len(counts) == 500 and set(counts.values()) == {1}
    assert sum(s["ran"] for s in summaries) == 500
    print(
        f"{name.split(':')[0]}: runs per tick {[s['ran'] for s in summaries]}, "
        f"lost races {sum(s['taken'] for s in summaries)}"
    )


def test_ticks_for_different_times_racing(store: tuple[str, Put], tmp_path: Path) -> None:
    name, put = store
    out = tmp_path / "out.txt"
    for i in range(60):
        put(f"{i:02}.json", appender(out, "*/5 * * * *"))
    base = (datetime.now(UTC) + timedelta(hours=2)).replace(minute=0, second=0, microsecond=0)
    nows = [base + timedelta(minutes=m) for m in (5, 7, 10, 10, 5, 12)]
    ticks = [
        lambdacron("tick", "--store", name, "--now", stamp(now), "--allow-future") for now in nows
    ]
    for t in ticks:
        t.communicate(timeout=600)
    # An occurrence that found the previous run still going runs at the next tick.
    lambdacron(
        "tick", "--store", name, "--now", stamp(base + timedelta(minutes=12)), "--allow-future"
    ).communicate(timeout=600)
    counts = Counter(out.read_text().split())
    assert set(counts.values()) == {1}
    final = stamp(base + timedelta(minutes=10))
    assert {f"{i:02}.json@{final}" for i in range(60)} <= set(counts)


def test_serve_and_manual_ticks_together(store: tuple[str, Put], tmp_path: Path) -> None:
    name, put = store
    out = tmp_path / "out.txt"
    for i in range(150):
        # Past one-time jobs kept after their run: due at once, exactly one run each.
        put(f"{i:03}.json", appender(out, "at(2020-01-01T00:00:00)", max_number_executions=0))
    serve = lambdacron("serve", "--store", name)
    manual = [lambdacron("tick", "--store", name) for _ in range(4)]
    for t in manual:
        t.communicate(timeout=600)
    deadline = time.monotonic() + 120
    while (
        time.monotonic() < deadline and len(out.read_text().split() if out.exists() else []) < 150
    ):
        time.sleep(0.1)
    serve.send_signal(signal.SIGTERM)
    _, serve_log = serve.communicate(timeout=120)
    assert serve.returncode == 0, serve_log
    counts = Counter(out.read_text().split())
    assert len(counts) == 150 and set(counts.values()) == {1}
