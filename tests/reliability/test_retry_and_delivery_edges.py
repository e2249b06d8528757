"""The edges of "fire on the second" and "exactly once, or you are told": racing runners
telling of one occurrence, a retry meeting a schedule edit, a run by hand or a deadline,
planning around a retry, and serve stopped twice while a delivered run goes on.

Real files, real processes; where two runners must interleave, the store is a real
``LocalStore`` whose reads of one key wait for each other (a barrier), so both runners read
the same version before either writes.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from helpers import FakeClock, Recorder, dead_run, place, read_json, spawn, subprocess_env, utc
from lambdacron.actions import default_registry
from lambdacron.clock import utcnow
from lambdacron.engine import Engine
from lambdacron.engine.delivery import Occurrence
from lambdacron.engine.report import Outcome
from lambdacron.store import LocalStore
from lambdacron.store.base import Document
from lambdacron.times import iso

T = utc(2026, 6, 1, 18, 30)


def notices_to(folder: Path) -> dict[str, Any]:
    """A notice command writing each notice into a file of its own in ``folder`` (two
    runners may tell at once)."""
    folder.mkdir(exist_ok=True)
    return {"command": ["sh", "-c", f'cat > "$(mktemp -p {folder})"']}


def notices(folder: Path) -> list[dict[str, Any]]:
    if not folder.exists():
        return []
    return [json.loads(path.read_text()) for path in sorted(folder.iterdir())]


def counting(marker: Path, exit_code: int) -> dict[str, Any]:
    """A python run that appends a line per run to ``marker`` and exits ``exit_code``."""
    script = (
        "import os, sys\n"
        f"open({str(marker)!r}, 'a').write(os.environ['LAMBDACRON_SCHEDULED_TIME'] + '\\n')\n"
        f"sys.exit({exit_code})\n"
    )
    return {"type": "python", "details": {"script": script}}


def failing_order(runs: Path, attempts: int, **fields: Any) -> dict[str, Any]:
    """The 18:30 order whose every run fails, tried ``attempts`` times a minute apart."""
    retry = {"attempts": attempts, "backoff_seconds": 60}
    return {"when": "30 18 * * *", "run": counting(runs, 1), "retry": retry, **fields}


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


class MeetingStore(LocalStore):
    """A real local store whose reads of ``key`` wait until ``parties`` readers have read
    it: the runners sharing the barrier all see the same version before any of them writes."""

    def __init__(self, root: Path, key: str, barrier: threading.Barrier) -> None:
        super().__init__(root)
        self._key = key
        self._barrier = barrier
        self._met = False

    def read(self, key: str) -> Document:
        document = super().read(key)
        if key == self._key and not self._met:
            self._met = True  # only the first read of each runner meets the other
            with contextlib.suppress(threading.BrokenBarrierError):
                self._barrier.wait(timeout=10)
        return document


def race_ticks(root: Path, key: str, now: Any, clock: FakeClock, **engine: Any) -> None:
    """Two engines (two runners) tick ``now`` at once on one store, meeting at the read."""
    barrier = threading.Barrier(2)
    engines = [
        Engine(MeetingStore(root, key, barrier), default_registry(), clock=clock, **engine)
        for _ in range(2)
    ]
    threads = [threading.Thread(target=e.tick, args=(now,)) for e in engines]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    barrier.abort()
    for e in engines:
        e.close()


# --------------------------------------------------------------------------- notices twice


class TestNoticesTwice:
    """One occurrence, one notice: the runner that loses the conditional write must not
    take the winner's identical bytes for its own write and tell again."""

    def test_a_dead_claim_found_by_two_ticks_at_once_is_told_once(
        self, root: Path, tmp_path: Path
    ) -> None:
        told = tmp_path / "told"
        document = {
            "when": "30 18 * * *",
            "run": counting(tmp_path / "runs", 0),
            "on_failure": notices_to(told),
            **dead_run(T),
        }
        place(root, "o.json", document, T)
        clock = FakeClock(T + timedelta(minutes=11))
        race_ticks(root, "o.json", clock.now, clock)
        assert read_json(root / "o.json")["last_result"]["status"] == "interrupted"
        assert [n["reason"] for n in notices(told)] == ["interrupted"]

    def test_a_missed_occurrence_found_by_two_ticks_of_one_event_is_told_once(
        self, root: Path, tmp_path: Path
    ) -> None:
        # On AWS a duplicated EventBridge event ticks the same time twice, at once.
        told = tmp_path / "told"
        document = {
            "when": "30 18 * * *",
            "run": counting(tmp_path / "runs", 0),
            "on_failure": notices_to(told),
            "deadline_seconds": 60,
        }
        place(root, "o.json", document, T - timedelta(days=1))
        now = T + timedelta(hours=3)
        race_ticks(root, "o.json", now, FakeClock(now))
        assert read_json(root / "o.json")["last_result"]["status"] == "missed"
        assert lines(tmp_path / "runs") == []
        assert [n["reason"] for n in notices(told)] == ["missed"]


# --------------------------------------------------------------------------- retries


def engine_at(root: Path, clock: FakeClock, **kwargs: Any) -> Engine:
    return Engine(LocalStore(root), default_registry(), clock=clock, rng=random.Random(3), **kwargs)


def edit(path: Path, placed: Any, **fields: Any) -> None:
    """A user's edit of a job file, made at ``placed``."""
    document = read_json(path)
    document.update(fields)
    place(path.parent, path.name, document, placed)


class TestRetryAndScheduleChanges:
    """A change of ``when``, ``timezone`` or ``enabled`` cancels what was planned for the old
    schedule, and re-enabling never replays what the job missed while disabled. A retry
    waiting for its time is planned for the old schedule too."""

    def test_re_enabling_a_job_does_not_replay_the_retry_of_an_occurrence_before_it(
        self, root: Path, tmp_path: Path
    ) -> None:
        runs = tmp_path / "runs"
        document = failing_order(runs, 3)
        path = place(root, "order.json", document, T - timedelta(days=1))
        clock = FakeClock(T)
        with engine_at(root, clock) as engine:
            engine.tick(T)  # attempt 1 of the 18:30 order fails: its retry waits
            assert "retry_pending" in read_json(path)
            # The user disables the job before the retry, and re-enables it days later.
            edit(path, T + timedelta(seconds=1), enabled=False)
            clock.now = T + timedelta(minutes=10)
            engine.tick(clock.now)
            edit(path, T + timedelta(days=3), enabled=True)
            clock.now = T + timedelta(days=3, minutes=1)
            engine.tick(clock.now)
        # The 18:30 order of three days ago must not be placed now.
        assert lines(runs) == ["2026-06-01T18:30:00Z"]

    def test_an_edit_of_when_cancels_the_pending_retry_as_it_cancels_its_delivery(
        self, root: Path, tmp_path: Path
    ) -> None:
        runs = tmp_path / "runs"
        document = failing_order(runs, 2)
        path = place(root, "order.json", document, T - timedelta(days=1))
        clock = FakeClock(T)
        recorder = Recorder(timedelta(minutes=2))
        with engine_at(root, clock, delivery=recorder) as engine:
            engine.tick(T)  # attempt 1 fails; its retry is planned for delivery
            (retry,) = recorder.planned
            edit(path, T + timedelta(seconds=1), when="0 9 * * *")
            clock.now = retry.at
            (delivered,) = engine.deliver([retry])
            cancelled = [e.outcome.value for e in delivered.report.events]
            assert cancelled == ["cancelled"]  # the delivery honours the edit...
            clock.now = retry.at + timedelta(minutes=1)
            engine.tick(clock.now)  # ...and the tick must agree with it
        assert lines(runs) == ["2026-06-01T18:30:00Z"]


class TestManualRunAndPendingRetry:
    def test_a_run_by_hand_does_not_swallow_an_occurrences_pending_retry(
        self, root: Path, tmp_path: Path
    ) -> None:
        told = tmp_path / "told"
        runs = tmp_path / "runs"
        document = failing_order(runs, 2, on_failure=notices_to(told))
        path = place(root, "order.json", document, T - timedelta(days=1))
        clock = FakeClock(T)
        with engine_at(root, clock) as engine:
            engine.tick(T)  # attempt 1 of 18:30 fails; attempt 2 waits
            clock.now = T + timedelta(seconds=5)
            engine.run_now("order.json")  # someone runs it by hand meanwhile; it fails
            for minute in range(1, 20):  # the retry's time comes and goes
                clock.now = T + timedelta(minutes=minute)
                engine.tick(clock.now)
        state = read_json(path)
        # The 18:30 occurrence ends once: after its second attempt, not ok, and told.
        assert [n["reason"] for n in notices(told)] == ["failed"], state


# --------------------------------------------------------------------------- deadlines


class TestDeadlineAtTheStart:
    """``deadline_seconds``: an occurrence that cannot *start* within it is missed, never
    run. The start is the claim; the check is made against the tick's time instead."""

    def test_a_run_that_waits_for_a_worker_past_its_deadline_is_missed_not_run(
        self, root: Path, tmp_path: Path
    ) -> None:
        runs = tmp_path / "runs"
        due = utcnow() - timedelta(milliseconds=200)
        # Both due now; one worker: the order waits for the 6 s job before it can start.
        slow = {
            "when": f"at({iso(due)})",
            "run": {"type": "command", "details": {"command": ["sleep", "6"]}},
        }
        # It fails, so its file (and the lateness it records) is kept.
        order = {"when": f"at({iso(due)})", "run": counting(runs, 1), "deadline_seconds": 3}
        place(root, "1-slow.json", slow, due)
        path = place(root, "2-order.json", order, due)
        done = subprocess.run(
            [sys.executable, "-m", "lambdacron", "tick", "--store", str(root), "--workers", "1"],
            capture_output=True,
            text=True,
            timeout=60,
            env=subprocess_env(),
        )
        assert done.returncode == 0, done.stderr
        result = read_json(path)["last_result"]
        # Missed, or started within its deadline of its time: never run later than that.
        assert result["status"] == "missed" or result["lateness_ms"] <= 3000, done.stderr

    def test_a_tick_for_a_past_time_does_not_start_an_occurrence_past_its_deadline(
        self, root: Path, tmp_path: Path
    ) -> None:
        # On AWS the tick's time is the EventBridge event's: an invocation that starts an
        # hour late (throttled, queued) evaluates 18:30:01 while the wall clock says 19:30.
        runs = tmp_path / "runs"
        document = {"when": "30 18 * * *", "run": counting(runs, 0), "deadline_seconds": 60}
        path = place(root, "order.json", document, T - timedelta(days=1))
        clock = FakeClock(T + timedelta(hours=1))
        with engine_at(root, clock) as engine:
            engine.tick(T + timedelta(seconds=1))
        state = read_json(path)
        assert lines(runs) == [], state["last_result"]
        assert state["last_result"]["status"] == "missed"


# --------------------------------------------------------------------------- serve


def wait_for(predicate: Any, limit: float = 60) -> bool:
    deadline = time.monotonic() + limit
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.05)
    return bool(predicate())


class TestServeStoppedTwice:
    def test_a_second_signal_stops_a_run_started_by_a_delivery(
        self, root: Path, tmp_path: Path
    ) -> None:
        started = tmp_path / "started"
        # Records its process group, then runs far longer than the test waits.
        script = (
            "import os, time\n"
            f"open({str(started)!r}, 'w').write(str(os.getpgid(0)))\n"
            "time.sleep(120)\n"
        )
        now = datetime.now(UTC)
        at = (now + timedelta(seconds=3)).replace(microsecond=0)
        document = {
            "when": f"at({at.isoformat()})",
            "timeout_seconds": 600,
            "run": {"type": "python", "details": {"script": script}},
        }
        path = place(root, "long.json", document, now)
        serve = spawn("serve", "--store", str(root), "--interval", "60")
        try:
            assert wait_for(lambda: started.exists() and started.read_text() != "")
            serve.send_signal(signal.SIGTERM)
            time.sleep(1)
            serve.send_signal(signal.SIGTERM)  # again: stop the running jobs now
            stopped = wait_for(lambda: serve.poll() is not None, limit=15)
        finally:
            if serve.poll() is None:
                serve.kill()
            serve.communicate(timeout=60)
            if started.exists() and started.read_text():
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(int(started.read_text()), signal.SIGKILL)
        assert stopped, "serve still waited for the delivered run after a second signal"
        assert read_json(path)["last_result"]["status"] == "interrupted"


# --------------------------------------------------------------------------- planning


class TestPlanningAroundARetry:
    def test_the_occurrences_after_a_retry_are_still_delivered_at_their_second(
        self, root: Path, tmp_path: Path
    ) -> None:
        runs = tmp_path / "runs"
        now = utc(2026, 6, 1, 12)
        document = {
            "when": "rate(10 seconds)",
            "run": counting(runs, 0),
            "retry": {"attempts": 3, "backoff_seconds": 10},
            # Attempt 1 of 11:59:50 failed; its retry comes at 12:00:05.
            "execution_count": 1,
            "last_scheduled": "2026-06-01T11:59:50Z",
            "retry_pending": {
                "scheduled": "2026-06-01T11:59:50Z",
                "attempt": 2,
                "at": iso(now + timedelta(seconds=5)),
            },
        }
        place(root, "r.json", document, now - timedelta(hours=1))
        clock = FakeClock(now)
        recorder = Recorder(timedelta(minutes=1))
        with engine_at(root, clock, delivery=recorder) as engine:
            engine.tick(now)
            # Serve's timer: each planned occurrence delivered at its time, until the next
            # tick (a minute later).
            delivered: set[Occurrence] = set()
            for second in range(1, 60):
                clock.now = now + timedelta(seconds=second)
                due = [o for o in recorder.planned if o.at <= clock.now and o not in delivered]
                delivered.update(due)
                engine.deliver(sorted(due))
        expected = ["2026-06-01T11:59:50Z"] + [
            iso(now + timedelta(seconds=s)) for s in (10, 20, 30, 40, 50)
        ]
        assert lines(runs) == expected


class TestRetryPastTheDeadline:
    def test_a_retry_that_cannot_start_before_the_deadline_ends_the_occurrence_failed(
        self, root: Path, tmp_path: Path
    ) -> None:
        told = tmp_path / "told"
        runs = tmp_path / "runs"
        document = {
            "when": "30 18 * * *",
            "deadline_seconds": 60,
            "retry": {"attempts": 3, "backoff_seconds": 3600, "max_backoff_seconds": 3600},
            "on_failure": notices_to(told),
            "run": counting(runs, 1),
        }
        path = place(root, "o.json", document, T - timedelta(days=1))
        clock = FakeClock(T)
        with Engine(
            LocalStore(root), default_registry(), clock=clock, rng=random.Random(5)
        ) as engine:
            engine.tick(T)
            # This seed's backoff lands past the deadline: no retry is scheduled at all.
            assert "retry_pending" not in read_json(path)
            for hours in (1, 2, 3):
                clock.now = T + timedelta(hours=hours)
                engine.tick(clock.now)
        assert lines(runs) == ["2026-06-01T18:30:00Z"]
        (notice,) = notices(told)
        # The occurrence ran and failed: whoever handles the notice needs that result.
        assert (notice["reason"], notice["last_result"]["status"]) == ("failed", "failed")


# --------------------------------------------------------------------------- the race at a second


def test_an_occurrence_claimed_by_another_runner_is_counted_taken_not_skipped(
    root: Path, tmp_path: Path
) -> None:
    runs = tmp_path / "runs"
    now = utc(2026, 6, 1, 12)
    place(root, "r.json", {"when": "* * * * *", "run": counting(runs, 0)}, now - timedelta(hours=1))
    clock = FakeClock(now)
    with engine_at(root, clock) as first:
        first.tick(now - timedelta(minutes=1))  # adopts the job; runs the 11:59 occurrence
    barrier = threading.Barrier(2)
    engines = [
        Engine(MeetingStore(root, "r.json", barrier), default_registry(), clock=clock)
        for _ in range(2)
    ]
    reports: list[Any] = []
    threads = [threading.Thread(target=lambda e=e: reports.append(e.tick(now))) for e in engines]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    for e in engines:
        e.close()
    assert lines(runs).count("2026-06-01T12:00:00Z") == 1
    assert sorted((r.ran, r.taken, r.skipped) for r in reports) == [(0, 1, 0), (1, 0, 0)]
    # Both engines are this process: the loser says so, rather than blame another runner.
    (taken,) = [e for r in reports for e in r.events if e.outcome is Outcome.TAKEN]
    assert taken.message.startswith("claimed first by this runner")
