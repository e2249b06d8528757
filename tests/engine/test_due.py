"""The due-time rule as pure functions: time is passed in, no store, no engine."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from helpers import utc
from lambdacron.engine.due import due_occurrence, next_due, schedule_since, window_start
from lambdacron.engine.index import ALWAYS
from lambdacron.job import Job, fingerprint_of
from lambdacron.jobfile import load

PLACED = utc(2026, 3, 1, 12, 0)


def job(when: str, **fields: Any) -> Job:
    document = {"when": when, "run": {"type": "command", "details": {"command": ["true"]}}}
    document.update(fields)
    loaded, problems, _ = load("j.json", json.dumps(document).encode())
    assert loaded is not None, problems
    return loaded


def since(when: str, at: str, timezone: str = "UTC") -> dict[str, str]:
    return {"fingerprint": fingerprint_of({"when": when, "timezone": timezone}), "since": at}


class TestTheWindow:
    def test_a_new_job_counts_from_when_its_file_was_placed(self) -> None:
        assert window_start(job("0 * * * *"), PLACED) == PLACED

    def test_the_last_occurrence_run_moves_the_start_forward(self) -> None:
        ran = job("0 * * * *", last_scheduled="2026-03-01T15:00:00Z")
        assert window_start(ran, PLACED) == utc(2026, 3, 1, 15)

    def test_a_placement_after_the_last_run_wins(self) -> None:
        # The user rewrote the file (an edit of the schedule): it counts from the edit.
        ran = job("0 * * * *", last_scheduled="2026-03-01T09:00:00Z")
        assert window_start(ran, PLACED) == PLACED

    def test_a_recorded_schedule_start_stands_while_the_schedule_is_unchanged(self) -> None:
        kept = job("0 * * * *", scheduled_from=since("0 * * * *", "2026-02-01T00:00:00Z"))
        assert schedule_since(kept, PLACED) == utc(2026, 2, 1)

    def test_an_edited_schedule_falls_back_to_the_placement_time(self) -> None:
        edited = job("30 * * * *", scheduled_from=since("0 * * * *", "2026-02-01T00:00:00Z"))
        assert schedule_since(edited, PLACED) == PLACED

    def test_a_changed_time_zone_is_an_edit_too(self) -> None:
        moved = job(
            "0 * * * *",
            timezone="Asia/Tokyo",
            scheduled_from=since("0 * * * *", "2026-02-01T00:00:00Z"),
        )
        assert schedule_since(moved, PLACED) == PLACED

    def test_a_one_time_job_ignores_its_placement(self) -> None:
        assert window_start(job("at(2026-01-01T08:00:00)"), PLACED) is None


class TestTheOccurrence:
    def test_the_latest_occurrence_in_the_window_is_the_one_that_runs(self) -> None:
        hourly = job("0 * * * *")
        assert due_occurrence(hourly, PLACED, utc(2026, 3, 1, 15, 30)) == utc(2026, 3, 1, 15)

    def test_the_window_is_open_at_its_start_and_closed_at_now(self) -> None:
        hourly = job("0 * * * *")
        assert due_occurrence(hourly, utc(2026, 3, 1, 15), utc(2026, 3, 1, 15)) is None
        assert due_occurrence(hourly, PLACED, utc(2026, 3, 1, 13)) == utc(2026, 3, 1, 13)

    def test_a_past_one_time_job_placed_late_is_still_due(self) -> None:
        late = job("at(2026-01-01T08:00:00)")
        assert due_occurrence(late, PLACED, PLACED) == utc(2026, 1, 1, 8)

    def test_a_one_time_job_that_ran_is_never_due_again(self) -> None:
        done = job("at(2026-01-01T08:00:00)", last_scheduled="2026-01-01T08:00:00Z")
        assert due_occurrence(done, PLACED, utc(2030, 1, 1)) is None
        assert next_due(done, PLACED) is None

    def test_a_disabled_job_is_never_due(self) -> None:
        off = job("* * * * *", enabled=False)
        assert due_occurrence(off, PLACED, utc(2026, 3, 2)) is None
        assert next_due(off, PLACED) is None

    def test_a_job_that_used_up_its_runs_is_never_due(self) -> None:
        spent = job("* * * * *", max_number_executions=2, execution_count=2)
        assert due_occurrence(spent, PLACED, utc(2026, 3, 2)) is None
        assert next_due(spent, PLACED) is None

    def test_a_claimed_job_must_be_looked_at_every_tick(self) -> None:
        claimed = job(
            "0 0 1 1 *",
            claim={
                "id": "c",
                "scheduled": "2026-01-01T00:00:00Z",
                "host": "h",
                "pid": 1,
                "started": "2026-01-01T00:00:00Z",
                "deadline": "2026-01-01T00:07:00Z",
            },
        )
        assert next_due(claimed, PLACED) == ALWAYS

    def test_the_next_due_time_of_a_waiting_job_is_its_next_occurrence(self) -> None:
        assert next_due(job("0 9 * * *"), PLACED) == utc(2026, 3, 2, 9)

    def test_a_time_zone_moves_the_occurrence(self) -> None:
        tokyo = job("0 9 * * *", timezone="Asia/Tokyo")
        assert next_due(tokyo, PLACED) == utc(2026, 3, 2, 0)


# Kept small: each example builds a job and evaluates cron over a few days.
EXPRESSIONS = [
    "* * * * *",
    "*/7 * * * *",
    "30 2 * * *",  # a nonexistent local time on the spring-forward day
    "30 1 * * *",  # an ambiguous local time on the fall-back day
    "0 0 29 2 *",
    "15 10 * * 1-5",
    "rate(90 minutes)",
    "at(2026-03-08T02:30:00)",
    "at(2026-11-01T01:30:00)",
]


class TestTheIndexPromise:
    """The index skips a job until ``next_due``; that must be exactly when it becomes due,
    or a tick would either skip a due run or read jobs for nothing."""

    @settings(max_examples=300, deadline=None)
    @given(
        when=st.sampled_from(EXPRESSIONS),
        timezone=st.sampled_from(["UTC", "America/New_York", "Europe/London"]),
        placed_minutes=st.integers(0, 400 * 24 * 60),
        ran_minutes=st.one_of(st.none(), st.integers(-3 * 24 * 60, 3 * 24 * 60)),
        later_minutes=st.integers(0, 3 * 24 * 60),
    )
    def test_a_job_is_due_exactly_from_its_next_due_time(
        self,
        when: str,
        timezone: str,
        placed_minutes: int,
        ran_minutes: int | None,
        later_minutes: int,
    ) -> None:
        placed = utc(2025, 10, 1) + timedelta(minutes=placed_minutes)
        fields: dict[str, Any] = {"timezone": timezone}
        if ran_minutes is not None:
            ran = placed + timedelta(minutes=ran_minutes)
            fields["last_scheduled"] = ran.isoformat().replace("+00:00", "Z")
        subject = job(when, **fields)
        now = placed + timedelta(minutes=later_minutes)
        due_at = next_due(subject, placed)
        occurrence = due_occurrence(subject, placed, now)
        assert (occurrence is not None) == (due_at is not None and due_at <= now)
        if occurrence is not None:
            assert due_at is not None and due_at <= occurrence <= now
            start = window_start(subject, placed)
            assert start is None or occurrence > start
        if due_at is not None:  # the boundary itself: due at it, not an instant before
            assert due_occurrence(subject, placed, due_at) == due_at
            assert due_occurrence(subject, placed, due_at - timedelta(microseconds=1)) is None


def test_due_times_are_aware_utc() -> None:
    due_at = next_due(job("0 9 * * *", timezone="Asia/Tokyo"), PLACED)
    assert isinstance(due_at, datetime) and due_at.utcoffset() == timedelta(0)
