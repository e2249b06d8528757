"""``lambdacron serve`` runs each job at its second, between its ticks, as a real process.

The ticks here are an hour apart, so a run between them can only come from the plan. Each
run appends its occurrence and the moment it started; every occurrence must appear once,
never before its time, including across a SIGKILL between the plan and the delivery.
"""

from __future__ import annotations

import signal
import subprocess
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from helpers import place, read_json, spawn

# The run writes "<occurrence> <start>" (the occurrence from the runner's environment).
_SCRIPT = (
    "import os, time\n"
    "with open({out!r}, 'a') as f:\n"
    "    f.write(os.environ['LAMBDACRON_SCHEDULED_TIME'] + ' ' + repr(time.time()) + '\\n')\n"
)


def timed_job(out: Path, when: str, **fields: Any) -> dict[str, Any]:
    script = _SCRIPT.format(out=str(out))
    return {"when": when, **fields, "run": {"type": "python", "details": {"script": script}}}


def runs(out: Path) -> list[tuple[datetime, float]]:
    if not out.exists():
        return []
    found = []
    for line in out.read_text().splitlines():
        scheduled, started = line.split()
        found.append((datetime.fromisoformat(scheduled), float(started)))
    return found


def wait_for(predicate: Callable[[], bool], limit: float = 60) -> None:
    deadline = time.monotonic() + limit
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.05)


def stop(serve: subprocess.Popen[str]) -> str:
    serve.send_signal(signal.SIGTERM)
    _, log = serve.communicate(timeout=60)
    assert serve.returncode == 0, log
    return log


def test_serve_runs_each_occurrence_at_its_time_between_ticks(root: Path, tmp_path: Path) -> None:
    now = datetime.now(UTC)
    once, rate = tmp_path / "once.txt", tmp_path / "rate.txt"
    at = (now + timedelta(seconds=3)).replace(microsecond=0)
    place(root, "once.json", timed_job(once, f"at({at.isoformat()})", max_number_executions=0), now)
    place(root, "rate.json", timed_job(rate, "rate(2 seconds)"), now)
    serve = spawn("serve", "--store", str(root), "--interval", "60")
    try:
        wait_for(lambda: len(runs(once)) == 1 and len(runs(rate)) >= 3)
    finally:
        log = stop(serve)
    assert [scheduled for scheduled, _ in runs(once)] == [at], log
    timed = runs(rate)
    assert len(timed) >= 3, log
    # Never before its time, each occurrence once, and each on its 2-second grid.
    for scheduled, started in runs(once) + timed:
        assert started >= scheduled.timestamp(), (scheduled, started)
    occurrences = Counter(scheduled for scheduled, _ in timed)
    assert set(occurrences.values()) == {1}
    assert all(int(s.timestamp()) % 2 == 0 for s in occurrences)
    assert read_json(root / "once.json")["last_result"]["lateness_ms"] >= 0
    assert "ms late" in log or " s late" in log


@pytest.mark.parametrize("stop_signal", [signal.SIGKILL, signal.SIGINT], ids=["kill", "ctrl-c"])
def test_a_runner_stopped_between_plan_and_delivery_loses_and_repeats_nothing(
    root: Path, tmp_path: Path, stop_signal: signal.Signals
) -> None:
    now = datetime.now(UTC)
    out = tmp_path / "out.txt"
    at = (now + timedelta(seconds=4)).replace(microsecond=0)
    place(root, "o.json", timed_job(out, f"at({at.isoformat()})", max_number_executions=0), now)
    serve = spawn("serve", "--store", str(root), "--interval", "60")
    assert serve.stdout is not None
    summary = serve.stdout.readline()  # the first tick's summary: the run is planned
    assert "1 planned" in summary, summary
    serve.send_signal(stop_signal)  # the run waits in the timer, unclaimed
    _, log = serve.communicate(timeout=60)
    if stop_signal == signal.SIGINT:
        assert serve.returncode == 0 and "stopped" in log, log
    wait_for(lambda: datetime.now(UTC) > at + timedelta(seconds=1))
    # Planned in a process that is gone, and never claimed there.
    assert runs(out) == [] and "claim" not in read_json(root / "o.json")
    again = spawn("serve", "--store", str(root), "--interval", "60")
    try:
        wait_for(lambda: len(runs(out)) == 1)
        time.sleep(1)  # room for a duplicate, were there one
    finally:
        log = stop(again)
    assert [scheduled for scheduled, _ in runs(out)] == [at], log
    assert read_json(root / "o.json")["execution_count"] == 1
