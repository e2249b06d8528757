"""SIGKILL the tick process at random moments, a few hundred times.

Each round: a new minute, every job due; a ``lambdacron tick`` process is killed after a
random delay (while importing, listing, claiming, running, or writing back); then a normal
tick for the same minute runs. After it: no job file lost, truncated or unparsable; no claim
left behind; every job has taken the occurrence (run, or visibly interrupted); and no
occurrence ran twice.
"""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from conftest import boto_client
from helpers import FakeClock, command_job, place, subprocess_env
from lambdacron.actions import default_registry
from lambdacron.engine import Engine
from lambdacron.jobfile import load
from lambdacron.store import open_store

JOBS = 8


TICK = (sys.executable, "-m", "lambdacron", "tick")


def stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def job(out: Path) -> dict[str, Any]:
    line = '"$LAMBDACRON_JOB@$LAMBDACRON_SCHEDULED_TIME"'
    return command_job("* * * * *", ["sh", "-c", f"echo {line} >> {out}; sleep 0.05"])


def campaign(
    name: str, rounds: int, out: Path, seed: int, delays: tuple[float, float]
) -> dict[str, int]:
    rng = random.Random(seed)
    store = open_store(name)
    base = (datetime.now(UTC) + timedelta(hours=3)).replace(second=0, microsecond=0)
    phases: Counter[str] = Counter()
    with Engine(store, default_registry(), clock=FakeClock(datetime.now(UTC))) as engine:
        for r in range(1, rounds + 1):
            now = base + timedelta(minutes=r)
            victim = subprocess.Popen(
                [*TICK, "--store", name, "--now", stamp(now), "--allow-future"],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                env=subprocess_env(),
            )
            time.sleep(rng.uniform(*delays))
            victim.send_signal(signal.SIGKILL)
            victim.wait()
            for entry in store.list():
                state = json.loads(store.read(entry.key).body)
                if "claim" in state:
                    phases["killed holding a claim"] += 1
                elif state.get("last_scheduled") == stamp(now):
                    phases["killed after the write-back"] += 1
                else:
                    phases["killed before claiming"] += 1
            report = engine.tick(now)
            phases["recorded as interrupted"] += report.interrupted
            phases["run by the following tick"] += report.ran
            for entry in store.list():
                job_, problems, document = load(entry.key, store.read(entry.key).body)
                assert job_ is not None, problems  # parses, valid: never torn or truncated
                assert "claim" not in document
                assert document["last_scheduled"] == stamp(now)
            assert len(list(store.list())) == JOBS  # nothing lost
    time.sleep(0.5)  # orphaned job processes of killed runners finish their line
    counts = Counter(out.read_text().split())
    assert set(counts.values()) == {1}, [k for k, v in counts.items() if v > 1]
    phases["kills"] = rounds
    phases["runs"] = len(counts)
    return dict(phases)


@pytest.mark.slow
def test_kills_on_the_local_store(tmp_path: Path) -> None:
    root = tmp_path / "jobs"
    out = tmp_path / "out.txt"
    for i in range(JOBS):
        place(root, f"j{i}.json", job(out), datetime.now(UTC))
    figures = campaign(str(root), 200, out, seed=7, delays=(0.05, 0.9))
    print(f"local: {figures}")
    assert figures["recorded as interrupted"] > 0  # the campaign did hit runs in flight


@pytest.mark.slow
def test_kills_on_s3(bucket: str, tmp_path: Path) -> None:
    out = tmp_path / "out.txt"
    s3 = boto_client("s3")
    for i in range(JOBS):
        s3.put_object(Bucket=bucket, Key=f"jobs/j{i}.json", Body=json.dumps(job(out)).encode())
    # The process needs longer to reach its claims here (boto3, HTTP), so it lives longer.
    figures = campaign(f"s3://{bucket}/jobs/", 60, out, seed=11, delays=(0.2, 1.4))
    print(f"s3: {figures}")
    assert figures["recorded as interrupted"] > 0
