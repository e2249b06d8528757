"""Overlapping runner processes and a runner killed mid-run, on a real store."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from helpers import command_job, place, read_json, spawn, subprocess_env, utc


def tick_process(root: Path, now: str, *extra: str) -> subprocess.Popen[str]:
    return spawn("tick", "--store", str(root), "--now", now, "--json", *extra)


def appender(when: str, out: Path, line: str) -> dict[str, object]:
    # O_APPEND writes of one short line are atomic, so concurrent jobs cannot interleave.
    return command_job(when, ["sh", "-c", f"echo {line} >> {out}"])


def test_concurrent_tick_processes_run_each_occurrence_exactly_once(tmp_path: Path) -> None:
    root = tmp_path / "jobs"
    out = tmp_path / "out.txt"
    jobs = 300
    for i in range(jobs):
        place(root, f"j/{i:03}.json", appender("@hourly", out, f"job{i}"))
    processes = [tick_process(root, "2026-01-01T01:00:00Z", "--workers", "8") for _ in range(6)]
    summaries = [json.loads(p.communicate(timeout=300)[0]) for p in processes]
    counts = Counter(out.read_text().split())
    assert len(counts) == jobs and set(counts.values()) == {1}
    assert sum(s["ran"] for s in summaries) == jobs
    assert all(read_json(root / f"j/{i:03}.json")["execution_count"] == 1 for i in range(jobs))


def test_ticks_for_different_times_racing_run_each_occurrence_once(tmp_path: Path) -> None:
    root = tmp_path / "jobs"
    out = tmp_path / "out.txt"
    for i in range(100):
        # Every 5 minutes; each run appends the job and the scheduled time.
        place(
            root,
            f"{i:03}.json",
            command_job(
                "*/5 * * * *", ["sh", "-c", f"echo job{i}@$LAMBDACRON_SCHEDULED_TIME >> {out}"]
            ),
        )
    nows = ["2026-01-01T00:05:00Z", "2026-01-01T00:07:00Z", "2026-01-01T00:10:00Z"] * 2
    processes = [tick_process(root, now) for now in nows]
    for p in processes:
        p.communicate(timeout=300)
    # An occurrence that found the previous run still going waits for the next tick.
    tick_process(root, "2026-01-01T00:10:00Z").communicate(timeout=300)
    counts = Counter(out.read_text().split())
    assert set(counts.values()) == {1}  # no occurrence twice
    for i in range(100):
        state = read_json(root / f"{i:03}.json")
        # Whatever order they ran in, the latest occurrence wins and nothing goes backwards.
        assert state["last_scheduled"] == "2026-01-01T00:10:00Z"
        assert f"job{i}@2026-01-01T00:10:00Z" in counts
        assert state["execution_count"] == sum(1 for k in counts if k.startswith(f"job{i}@"))


def test_a_runner_killed_mid_run_leaves_the_store_consistent(tmp_path: Path) -> None:
    root = tmp_path / "jobs"
    out = tmp_path / "out.txt"
    pid_file = tmp_path / "child.pid"
    path = place(
        root,
        "slow.json",
        command_job(
            "*/5 * * * *",
            ["sh", "-c", f"echo $$ > {pid_file}; echo started >> {out}; exec sleep 60"],
        ),
    )
    runner = tick_process(root, "2026-01-01T00:05:00Z")
    try:
        deadline = time.monotonic() + 30
        while not pid_file.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert pid_file.exists(), runner.stderr.read() if runner.stderr else ""
        runner.send_signal(signal.SIGKILL)
        runner.wait(timeout=10)
        claimed = read_json(path)  # parses: never torn
        assert claimed["claim"]["scheduled"] == "2026-01-01T00:05:00Z"
        assert claimed["execution_count"] == 1

        # The next tick for the same time: sees the dead claim, records it, runs nothing.
        again = tick_process(root, "2026-01-01T00:06:00Z")
        summary = json.loads(again.communicate(timeout=60)[0])
        assert (summary["interrupted"], summary["ran"]) == (1, 0)
        state = read_json(path)
        assert state["last_result"]["status"] == "interrupted"
        assert "claim" not in state
        listing = subprocess.run(
            [sys.executable, "-m", "lambdacron", "ls", "--store", str(root), "--json"],
            capture_output=True,
            text=True,
            env=subprocess_env(),
            check=True,
        )
        assert json.loads(listing.stdout)[0]["status"] == "interrupted"
    finally:
        if pid_file.exists():
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid_file.read_text()), signal.SIGKILL)
    # A later occurrence runs normally (with a fast command this time).
    place(
        root,
        "slow.json",
        {
            **read_json(path),
            "run": {
                "type": "command",
                "details": {"command": ["sh", "-c", f"echo later >> {out}"]},
            },
        },
        placed=utc(2026, 1, 1),
    )
    later = json.loads(tick_process(root, "2026-01-01T00:10:00Z").communicate(timeout=60)[0])
    assert later["ran"] == 1
    assert out.read_text().split() == ["started", "later"]
