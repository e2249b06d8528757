"""Exactly once, or you are told: retries, deadlines, notices, history and kept failures.

Real files and real processes; the clock is fake and the jitter seeded, so each attempt's
time is known. Notices go to a real command that appends what it reads on stdin.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from helpers import FakeClock, dead_run, notices, notices_to, place, read_json, utc
from lambdacron.actions import default_registry
from lambdacron.config import Settings
from lambdacron.engine import Engine
from lambdacron.engine.outcomes import Policies, backoff
from lambdacron.engine.report import Outcome
from lambdacron.errors import UsageError
from lambdacron.job import RetryPolicy
from lambdacron.jobfile import load
from lambdacron.notify import Notifier, parse_destination
from lambdacron.store import LocalStore

T = utc(2026, 6, 1, 18, 30)


def flaky(marker: Path, fails: int) -> dict[str, Any]:
    """A python run that fails its first ``fails`` runs, then succeeds."""
    script = (
        "import pathlib, sys\n"
        f"m = pathlib.Path({str(marker)!r})\n"
        "n = int(m.read_text()) if m.exists() else 0\n"
        "m.write_text(str(n + 1))\n"
        f"sys.exit(1 if n < {fails} else 0)\n"
    )
    return {"type": "python", "details": {"script": script}}


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T)


@pytest.fixture
def engine(root: Path, clock: FakeClock) -> Iterator[Engine]:
    with Engine(
        LocalStore(root), default_registry(), clock=clock, workers=2, rng=random.Random(7)
    ) as e:
        yield e


def job(tmp_path: Path, fails: int, **fields: Any) -> dict[str, Any]:
    return {"when": "30 18 * * *", "run": flaky(tmp_path / "marker", fails), **fields}


class TestRetries:
    def test_a_failed_run_is_tried_again_after_its_backoff_and_succeeds_on_attempt_2(
        self, engine: Engine, root: Path, tmp_path: Path, clock: FakeClock
    ) -> None:
        told = tmp_path / "told.jsonl"
        retry = {"attempts": 3, "backoff_seconds": 10}
        path = place(root, "o.json", job(tmp_path, 1, retry=retry, on_failure=notices_to(told)), T)
        engine.tick(T)  # adopts, then nothing due: placed at 18:30
        clock.now = T + timedelta(days=1)
        first = engine.tick(clock.now)
        assert (first.ran, first.failed, first.retried) == (1, 1, 1)
        state = read_json(path)
        pending = state["retry_pending"]
        assert pending["attempt"] == 2 and state["last_result"]["status"] == "failed"
        # Backoff with full jitter: within [0, 10] s of the failure.
        retry_at = datetime.fromisoformat(pending["at"])
        assert clock.now <= retry_at <= clock.now + timedelta(seconds=10)
        # Before its time, the retry waits; the job waits with it.
        clock.now = retry_at - timedelta(milliseconds=1)
        assert engine.tick(clock.now).ran == 0
        clock.now = retry_at
        second = engine.tick(clock.now)
        assert (second.ran, second.failed, second.retried) == (1, 0, 0)
        state = read_json(path)
        assert state["last_result"]["status"] == "ok" and state["last_result"]["attempt"] == 2
        assert "retry_pending" not in state
        assert state["execution_count"] == 1  # one occurrence, two attempts
        assert state["last_scheduled"] == "2026-06-02T18:30:00Z"
        assert [(h["status"], h.get("attempt", 1)) for h in state["history"]] == [
            ("ok", 2),
            ("failed", 1),
        ]
        assert notices(told) == []  # it ended ok: nobody to tell

    def test_retries_used_up_send_one_notice_with_the_attempts_and_the_run(
        self, engine: Engine, root: Path, tmp_path: Path, clock: FakeClock
    ) -> None:
        told = tmp_path / "told.jsonl"
        document = job(
            tmp_path, 99, retry={"attempts": 2, "backoff_seconds": 0}, on_failure=notices_to(told)
        )
        document["order"] = {"customer": 42}
        path = place(root, "o.json", document, T - timedelta(days=1))
        report = engine.tick(T)
        assert (report.ran, report.retried, report.notices) == (1, 1, 0)
        report = engine.tick(T)  # backoff 0: the retry is due at once
        assert (report.ran, report.failed, report.retried, report.notices) == (1, 1, 0, 1)
        (notice,) = notices(told)
        assert notice["lambdacron_notice"] == 1 and notice["reason"] == "failed"
        assert notice["key"] == "o.json" and notice["occurrence"] == "2026-06-01T18:30:00Z"
        assert notice["attempts"] == 2 and notice["last_result"]["status"] == "failed"
        assert notice["run"] == document["run"]
        assert engine.tick(T).ran == 0  # nothing more: the occurrence has ended
        assert len(notices(told)) == 1
        assert "retry_pending" not in read_json(path)

    def test_an_interrupted_run_is_retried_only_with_on_interrupted(
        self, root: Path, tmp_path: Path, clock: FakeClock
    ) -> None:
        told = tmp_path / "told.jsonl"
        for key, on_interrupted in (("plain.json", False), ("again.json", True)):
            retry = {"attempts": 2, "backoff_seconds": 0, "on_interrupted": on_interrupted}
            document = {
                **job(tmp_path, 0, retry=retry, on_failure=notices_to(told)),
                **dead_run(T),
            }
            place(root, key, document, T)
        clock.now = T + timedelta(minutes=11)
        with Engine(LocalStore(root), default_registry(), clock=clock, rng=random.Random(1)) as e:
            report = e.tick(clock.now)
        assert report.interrupted == 2
        assert [n["key"] for n in notices(told)] == ["plain.json"]
        assert notices(told)[0]["reason"] == "interrupted"
        plain, again = read_json(root / "plain.json"), read_json(root / "again.json")
        assert "retry_pending" not in plain
        assert again["last_result"]["status"] == "ok"  # its retry ran at once (backoff 0)
        assert again["last_result"]["attempt"] == 2


class TestDeadlines:
    def test_an_occurrence_past_its_deadline_after_downtime_is_missed_and_told(
        self, engine: Engine, root: Path, tmp_path: Path, clock: FakeClock
    ) -> None:
        told = tmp_path / "told.jsonl"
        document = job(tmp_path, 0, deadline_seconds=600, on_failure=notices_to(told))
        path = place(root, "order.json", document, T - timedelta(days=1))
        clock.now = T + timedelta(hours=3)  # the runner was down from 18:00 to 21:30
        report = engine.tick(clock.now)
        assert (report.ran, report.missed, report.notices) == (0, 1, 1)
        assert not (tmp_path / "marker").exists()  # never run
        state = read_json(path)
        assert state["last_result"]["status"] == "missed"
        assert state["last_scheduled"] == "2026-06-01T18:30:00Z"
        assert state["history"][0]["status"] == "missed"
        (notice,) = notices(told)
        assert notice["reason"] == "missed" and notice["occurrence"] == "2026-06-01T18:30:00Z"
        # The next occurrence, on time, runs.
        clock.now = T + timedelta(days=1, seconds=5)
        assert engine.tick(clock.now).ran == 1

    def test_within_its_deadline_a_late_occurrence_still_runs(
        self, engine: Engine, root: Path, tmp_path: Path, clock: FakeClock
    ) -> None:
        place(root, "o.json", job(tmp_path, 0, deadline_seconds=600), T - timedelta(days=1))
        clock.now = T + timedelta(seconds=599)
        report = engine.tick(clock.now)
        assert (report.ran, report.missed) == (1, 0)

    def test_the_runners_default_deadline_applies_to_a_job_without_one(
        self, root: Path, tmp_path: Path, clock: FakeClock
    ) -> None:
        place(root, "o.json", job(tmp_path, 0), T - timedelta(days=1))
        clock.now = T + timedelta(hours=1)
        policies = Policies(deadline_seconds=60)
        with Engine(LocalStore(root), default_registry(), clock=clock, policies=policies) as e:
            assert e.tick(clock.now).missed == 1


class TestKeptFailures:
    def test_a_one_time_job_that_failed_is_kept_and_one_that_succeeded_is_deleted(
        self, engine: Engine, root: Path, tmp_path: Path
    ) -> None:
        at = {"when": "at(2026-06-01T18:00:00)"}
        bad = place(root, "bad.json", {**at, "run": flaky(tmp_path / "m1", 99)})
        good = place(root, "good.json", {**at, "run": flaky(tmp_path / "m2", 0)})
        report = engine.tick(T)
        assert (report.ran, report.failed, report.deleted) == (2, 1, 1)
        assert not good.exists()
        kept = read_json(bad)
        assert kept["last_result"]["status"] == "failed" and kept["execution_count"] == 1
        assert engine.tick(T + timedelta(days=1)).ran == 0  # it never runs again by itself


class TestHistory:
    @pytest.mark.parametrize("limit", [0, 1, 3])
    def test_the_history_keeps_the_newest_results_up_to_its_limit(
        self, engine: Engine, root: Path, tmp_path: Path, clock: FakeClock, limit: int
    ) -> None:
        document = {
            "when": "rate(1 minute)",
            "run": flaky(tmp_path / "m", 2),
            "history_limit": limit,
        }
        path = place(root, "r.json", document, T)
        for minute in range(1, 6):
            clock.now = T + timedelta(minutes=minute)
            engine.tick(clock.now)
        state = read_json(path)
        if limit == 0:
            assert "history" not in state
            return
        history = state["history"]
        expected = ["2026-06-01T18:35:00Z", "2026-06-01T18:34:00Z", "2026-06-01T18:33:00Z"]
        assert [h["occurrence"] for h in history] == expected[:limit]
        assert all("output" not in h for h in history)
        assert history[0]["status"] == "ok" and "lateness_ms" in history[0]


@settings(max_examples=200, deadline=None)
@given(
    base=st.floats(0, 3600),
    cap=st.floats(0, 86_400),
    attempt=st.integers(1, 186),
    seed=st.integers(0, 2**32),
)
def test_backoff_is_full_jitter_under_the_exponential_cap(
    base: float, cap: float, attempt: int, seed: int
) -> None:
    policy = RetryPolicy(attempts=186, backoff_seconds=base, max_backoff_seconds=max(base, cap))
    wait = backoff(policy, attempt, random.Random(seed)).total_seconds()
    bound = min(max(base, cap), base * 2.0 ** (attempt - 1))
    assert 0 <= wait <= bound + 1e-6


def test_a_notice_whose_destination_is_down_is_counted_and_the_job_state_is_kept(
    root: Path, tmp_path: Path, clock: FakeClock
) -> None:
    down = {"command": ["sh", "-c", "exit 3"]}
    path = place(root, "o.json", job(tmp_path, 99, on_failure=down), T - timedelta(days=1))
    notifier = Notifier(attempts=2, sleep=lambda seconds: None)
    with Engine(LocalStore(root), default_registry(), clock=clock, notifier=notifier) as e:
        report = e.tick(T)
    assert (report.ran, report.failed, report.notices, report.notices_failed) == (1, 1, 0, 1)
    (event,) = [ev for ev in report.events if ev.outcome is Outcome.NOTICE_FAILED]
    assert "on_failure.command" in event.message
    assert read_json(path)["last_result"]["status"] == "failed"
    assert parse_destination(down).kind.value == "command"


class TestStoreDefaults:
    def test_the_variables_give_the_runners_retry_and_deadline(self) -> None:
        settings = Settings.from_env(
            {
                "LAMBDACRON_RETRY": '{"attempts": 4, "backoff_seconds": 5, "on_interrupted": true}',
                "LAMBDACRON_DEADLINE_SECONDS": "900",
            }
        )
        policies = settings.policies
        assert policies.retry == RetryPolicy(4, 5.0, 900.0, True)
        assert policies.deadline_seconds == 900
        assert Settings.from_env({}).policies == Policies()

    @pytest.mark.parametrize(
        ("name", "value", "problem"),
        [
            (
                "LAMBDACRON_RETRY",
                '{"attempts": 0}',
                "attempts: must be 1 to 186 (1: no retry), got 0",
            ),
            ("LAMBDACRON_RETRY", '{"atempts": 2}', "atempts: is not a field of retry"),
            ("LAMBDACRON_RETRY", "[]", 'expected a JSON object such as {"attempts": 3}'),
            ("LAMBDACRON_RETRY", "  ", 'empty; expected a JSON object such as {"attempts": 3}'),
            ("LAMBDACRON_RETRY", '{"attempts": NaN}', "invalid JSON"),
            ("LAMBDACRON_DEADLINE_SECONDS", "0", "0 must be between 1 and 2592000"),
            ("LAMBDACRON_DEADLINE_SECONDS", "soon", "'soon' is not a whole number"),
        ],
    )
    def test_a_bad_value_is_one_line_naming_the_variable(
        self, name: str, value: str, problem: str
    ) -> None:
        with pytest.raises(UsageError) as caught:
            Settings.from_env({name: value})
        assert str(caught.value).startswith(f"{name}: {problem}"), str(caught.value)

    def test_a_job_of_its_own_overrides_the_runners_policies(self, tmp_path: Path) -> None:
        document = job(tmp_path, 0, retry={"attempts": 1}, deadline_seconds=0)
        own, _, _ = load("o.json", json.dumps(document).encode())
        assert own is not None
        policies = Policies(RetryPolicy(5), 60, None)
        assert policies.retry_of(own) == RetryPolicy(1)
        assert policies.deadline_of(own) is None  # 0: no deadline, whatever the default


def test_a_retry_pending_before_its_own_occurrence_is_damaged(tmp_path: Path) -> None:
    document = {
        **job(tmp_path, 0),
        "retry_pending": {
            "scheduled": "2026-06-01T18:30:00Z",
            "attempt": 2,
            "at": "2026-06-01T18:29:59Z",
        },
    }
    found, problems, _ = load("o.json", json.dumps(document).encode())
    assert found is None
    assert [str(p) for p in problems] == ["retry_pending: is damaged; remove it to drop the retry"]
