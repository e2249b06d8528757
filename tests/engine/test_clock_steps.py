"""A clock stepped back (an NTP correction, a VM restored from a snapshot, a host whose clock
was wrong) must not run an occurrence twice, nor one whose time has not come."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from helpers import FakeClock, place, utc
from lambdacron.actions import default_registry
from lambdacron.engine import Engine
from lambdacron.store import LocalStore

T0 = utc(2026, 11, 28, 9, 0)


def recording_job(when: str, out: Path, *, fails: bool = False) -> dict[str, object]:
    script = (
        "import os, sys\n"
        f"open({str(out)!r}, 'a').write(os.environ['LAMBDACRON_SCHEDULED_TIME'] + '\\n')\n"
        f"sys.exit({int(fails)})"
    )
    job: dict[str, object] = {
        "when": when,
        "run": {"type": "python", "details": {"script": script}},
    }
    if fails:
        job["retry"] = {"attempts": ATTEMPTS, "backoff_seconds": 300}
    return job


ATTEMPTS = 3


def lines(path: Path) -> list[str]:
    return path.read_text().split() if path.exists() else []


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    moves=st.lists(st.integers(-90, 90), min_size=2, max_size=8),
    when=st.sampled_from(["*/10 * * * *", "rate(7 minutes)", "at(2026-11-28T09:30:00Z)"]),
)
def test_ticks_back_and_forth_in_time_run_each_occurrence_once_never_early(
    tmp_path_factory: pytest.TempPathFactory, moves: list[int], when: str
) -> None:
    base = tmp_path_factory.mktemp("steps")
    root, out, tried = base / "jobs", base / "ran.txt", base / "tried.txt"
    place(root, "j.json", recording_job(when, out), placed=T0)
    place(root, "failing.json", recording_job(when, tried, fails=True), placed=T0)
    now, clock = T0, FakeClock(T0)
    seen: list[str] = []
    seen_tried: list[str] = []
    with Engine(LocalStore(root), default_registry(), clock=clock) as engine:
        for minutes in moves:
            now += timedelta(minutes=minutes)
            clock.now = now
            engine.tick(now)
            ran, attempts = lines(out), lines(tried)
            for scheduled in ran[len(seen) :] + attempts[len(seen_tried) :]:
                at = datetime.fromisoformat(scheduled.replace("Z", "+00:00"))
                assert T0 < at <= now, (scheduled, now)  # never before its time
            seen, seen_tried = ran, attempts
    assert len(seen) == len(set(seen)), seen  # never twice
    assert seen == sorted(seen), seen  # nor one older than a run already made
    attempts = lines(tried)
    assert all(attempts.count(t) <= ATTEMPTS for t in attempts), attempts
    assert attempts == sorted(attempts), attempts
    event(f"runs: {min(len(seen), 3)}+" if len(seen) >= 3 else f"runs: {len(seen)}")
