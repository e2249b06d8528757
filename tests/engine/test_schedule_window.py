"""The window occurrences count from: only the schedule's own edits move it, never an edit
of anything else, and a schedule changed away and back still counts as changed."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from helpers import FakeClock, command_job, place, read_json, utc
from lambdacron.actions import default_registry
from lambdacron.engine import Engine, Outcome
from lambdacron.store import LocalStore


@pytest.fixture
def engine(root: Path) -> Iterator[Engine]:
    with Engine(LocalStore(root), default_registry(), clock=FakeClock(utc(2026, 3, 1))) as e:
        yield e


def edit(root: Path, key: str, at: Any, **changes: Any) -> None:
    """Edit a job as a user would: their fields change, the runner's are kept as they are."""
    place(root, key, {**read_json(root / key), **changes}, placed=at)


DAILY = command_job("30 18 * * *", ["true"])


class TestReEnablingNeverReplays:
    def test_a_job_disabled_then_re_enabled_does_not_run_what_it_missed(
        self, engine: Engine, root: Path
    ) -> None:
        place(root, "j.json", DAILY, placed=utc(2026, 3, 1, 8))
        assert engine.tick(utc(2026, 3, 1, 18, 31)).ran == 1
        edit(root, "j.json", utc(2026, 3, 2, 9), enabled=False)
        assert engine.tick(utc(2026, 3, 2, 9, 1)).ran == 0
        edit(root, "j.json", utc(2026, 3, 2, 20), enabled=True)
        assert engine.tick(utc(2026, 3, 2, 20, 1)).ran == 0  # the 18:30 it missed stays missed
        assert engine.tick(utc(2026, 3, 3, 18, 31)).ran == 1
        assert read_json(root / "j.json")["last_scheduled"] == "2026-03-03T18:30:00Z"

    @pytest.mark.parametrize(
        ("field", "away"), [("when", "45 18 * * *"), ("timezone", "Asia/Tokyo")]
    )
    def test_a_schedule_changed_away_and_back_does_not_replay(
        self, engine: Engine, root: Path, field: str, away: str
    ) -> None:
        place(root, "j.json", DAILY, placed=utc(2026, 3, 1, 8))
        assert engine.tick(utc(2026, 3, 1, 18, 31)).ran == 1
        original = read_json(root / "j.json").get(field, "UTC")
        edit(root, "j.json", utc(2026, 3, 2, 9), **{field: away})
        assert engine.tick(utc(2026, 3, 2, 9, 1)).ran == 0
        edit(root, "j.json", utc(2026, 3, 2, 20), **{field: original})
        assert engine.tick(utc(2026, 3, 2, 20, 1)).ran == 0

    def test_a_job_placed_disabled_and_enabled_later_starts_from_the_enabling(
        self, engine: Engine, root: Path
    ) -> None:
        place(root, "j.json", {**DAILY, "enabled": False}, placed=utc(2026, 3, 1, 8))
        assert engine.tick(utc(2026, 3, 1, 8, 1)).ran == 0
        edit(root, "j.json", utc(2026, 3, 1, 19), enabled=True)
        assert engine.tick(utc(2026, 3, 1, 19, 1)).ran == 0
        assert engine.tick(utc(2026, 3, 2, 18, 30)).ran == 1


class TestOtherEditsNeverMoveTheWindow:
    @pytest.mark.parametrize("ran_before", [False, True])
    def test_a_payload_edit_after_the_occurrence_does_not_drop_it(
        self, engine: Engine, root: Path, ran_before: bool
    ) -> None:
        place(root, "j.json", DAILY, placed=utc(2026, 3, 1, 10))
        if ran_before:
            assert engine.tick(utc(2026, 3, 1, 18, 31)).ran == 1
            day = 2
        else:
            assert engine.tick(utc(2026, 3, 1, 10, 1)).ran == 0
            day = 1
        # Edited after 18:30, before the tick that would run it (the runner was down).
        edit(root, "j.json", utc(2026, 3, day, 18, 45), note="extra napkins")
        report = engine.tick(utc(2026, 3, day, 19))
        assert report.ran == 1
        state = read_json(root / "j.json")
        assert state["last_scheduled"] == f"2026-03-0{day}T18:30:00Z"
        assert state["note"] == "extra napkins"

    def test_an_edit_of_the_command_keeps_the_window_too(self, engine: Engine, root: Path) -> None:
        place(root, "j.json", DAILY, placed=utc(2026, 3, 1, 10))
        engine.tick(utc(2026, 3, 1, 10, 1))
        document = read_json(root / "j.json")
        document["run"]["details"]["command"] = ["echo", "changed"]
        place(root, "j.json", document, placed=utc(2026, 3, 1, 18, 45))
        assert engine.tick(utc(2026, 3, 1, 19)).ran == 1


def test_a_schedule_edited_during_its_own_run_counts_from_the_edit(
    engine: Engine, root: Path
) -> None:
    path = root / "j.json"
    edited_at = utc(2026, 3, 1, 10, 2).timestamp()
    # The run moves its own schedule to 10:05, stamped as an edit made at 10:02.
    script = (
        f"import json, os; p = {str(path)!r}; d = json.load(open(p)); d['when'] = '5 10 * * *'; "
        "json.dump(d, open(p + '.tmp', 'w')); os.replace(p + '.tmp', p); "
        f"os.utime(p, ({edited_at}, {edited_at}))"
    )
    job = {"when": "0 10 * * *", "run": {"type": "python", "details": {"script": script}}}
    place(root, "j.json", job, placed=utc(2026, 3, 1, 9))
    assert engine.tick(utc(2026, 3, 1, 10)).ran == 1
    state = read_json(path)
    assert state["when"] == "5 10 * * *"
    assert state["scheduled_from"]["since"] == "2026-03-01T10:02:00Z"
    # 10:05 fell after the edit and before this tick: it runs.
    report = engine.tick(utc(2026, 3, 1, 10, 6))
    assert report.ran == 1
    assert read_json(path)["last_scheduled"] == "2026-03-01T10:05:00Z"


def test_a_raised_size_limit_is_not_overruled_by_a_saved_verdict(root: Path) -> None:
    path = place(root, "padded.json", command_job("@hourly", ["true"], pad="x" * 500))
    clock = FakeClock(utc(2026, 1, 1))
    with Engine(LocalStore(root, max_job_bytes=200), default_registry(), clock=clock) as small:
        report = small.tick(utc(2026, 1, 1, 1))
        assert [e.outcome for e in report.events if e.key == "padded.json"] == [Outcome.INVALID]
        small.index.dirty = True
    assert (root / ".lambdacron" / "index.json").exists()
    with Engine(LocalStore(root, max_job_bytes=10_000), default_registry(), clock=clock) as large:
        assert large.tick(utc(2026, 1, 1, 2)).ran == 1
    assert read_json(path)["execution_count"] == 1


def test_two_engines_in_one_process_never_take_each_others_runs_for_dead(root: Path) -> None:
    out = root.parent / "runs.txt"
    script = (
        "import os, time; time.sleep(1.5); "
        f"open({str(out)!r}, 'a').write(os.environ['LAMBDACRON_SCHEDULED_TIME'] + '\\n')"
    )
    place(
        root,
        "slow.json",
        {"when": "* * * * *", "run": {"type": "python", "details": {"script": script}}},
        placed=utc(2026, 1, 1),
    )
    clock = FakeClock(utc(2026, 1, 1, 0, 1))
    with (
        Engine(LocalStore(root), default_registry(), clock=clock) as first,
        Engine(LocalStore(root), default_registry(), clock=clock) as second,
    ):
        running = threading.Thread(target=first.tick, args=(utc(2026, 1, 1, 0, 1),))
        running.start()
        deadline = time.monotonic() + 10
        while "claim" not in json.loads((root / "slow.json").read_text()):
            assert time.monotonic() < deadline
            time.sleep(0.02)
        report = second.tick(utc(2026, 1, 1, 0, 2))
        running.join()
    assert [e.outcome for e in report.events if e.key == "slow.json"] == [Outcome.RUNNING]
    assert report.interrupted == 0
    state = read_json(root / "slow.json")
    assert state["last_result"]["status"] == "ok" and state["execution_count"] == 1
    assert out.read_text().splitlines() == ["2026-01-01T00:01:00Z"]


def test_an_edit_during_the_run_that_no_file_may_hold_is_left_as_written(
    engine: Engine, root: Path
) -> None:
    path = root / "j.json"
    # The run rewrites its own file with a number no job file may hold.
    script = (
        f"import os; p = {str(path)!r}; "
        "open(p + '.tmp', 'w').write('{\"when\": \"@hourly\", \"n\": ' + '9' * 5000 + ', "
        '"run": {"type": "command", "details": {"command": ["true"]}}}\'); '
        "os.replace(p + '.tmp', p)"
    )
    job = {"when": "@hourly", "run": {"type": "python", "details": {"script": script}}}
    place(root, "j.json", job, placed=utc(2026, 3, 1, 9))
    report = engine.tick(utc(2026, 3, 1, 10))
    assert (report.ran, report.internal_errors, report.store_errors) == (1, 0, 0)
    edited = path.read_bytes()
    assert b"9" * 5000 in edited and b"last_result" not in edited
    later = engine.tick(utc(2026, 3, 1, 11))
    assert [e.outcome for e in later.events] == [Outcome.INVALID]
    assert path.read_bytes() == edited
