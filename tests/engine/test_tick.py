"""The tick engine with a fake clock, the real local store and real subprocesses."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from helpers import (
    SEED_COMMAND,
    SEED_PYTHON,
    FakeClock,
    append_job,
    command_job,
    place,
    read_json,
    utc,
)
from lambdacron.actions import default_registry
from lambdacron.engine import Engine, JobEvent, Outcome
from lambdacron.job import RunType
from lambdacron.store import LocalStore


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(utc(2026, 6, 1))


@pytest.fixture
def engine(root: Path, clock: FakeClock) -> Iterator[Engine]:
    with Engine(LocalStore(root), default_registry(), clock=clock, workers=4) as e:
        yield e


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


class TestTheSeedSamples:
    def test_the_command_sample_runs_every_day_at_18_30(
        self, engine: Engine, root: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.chdir(root)  # commands run in the runner's working directory
        path = place(root, "ls.json", SEED_COMMAND, placed=utc(2026, 3, 1, 12))
        assert engine.tick(utc(2026, 3, 1, 18, 29)).ran == 0
        report = engine.tick(utc(2026, 3, 1, 18, 31))
        assert (report.due, report.ran, report.failed) == (1, 1, 0)
        state = read_json(path)
        assert state["execution_count"] == 1
        assert state["last_run"] == "2026-03-01T18:31:00Z"
        assert state["last_scheduled"] == "2026-03-01T18:30:00Z"
        assert state["last_result"]["status"] == "ok"
        assert "ls.json" in state["last_result"]["output"]
        assert engine.tick(utc(2026, 3, 1, 18, 40)).ran == 0
        assert engine.tick(utc(2026, 3, 2, 18, 30)).ran == 1
        assert read_json(path)["execution_count"] == 2

    def test_the_python_sample_runs_on_30_april_and_deletes_itself_after_3_runs(
        self, engine: Engine, root: Path
    ) -> None:
        path = place(root, "py.json", SEED_PYTHON, placed=utc(2026, 1, 1))
        for year in (2026, 2027):
            assert engine.tick(utc(year, 4, 30, 1, 0)).ran == 0
            assert engine.tick(utc(year, 4, 30, 1, 2)).ran == 1
        state = read_json(path)
        assert state["execution_count"] == 2
        assert state["last_result"]["output"].splitlines()[0] == '{"hello": "world"}'
        report = engine.tick(utc(2028, 4, 30, 1, 5))
        assert (report.ran, report.deleted) == (1, 1)
        assert not path.exists()


class TestWhenAJobRuns:
    def test_it_looks_to_the_past(self, engine: Engine, root: Path) -> None:
        out = root.parent / "out.txt"
        place(root, "j.json", append_job("30 3 * * *", out, "ran"), placed=utc(2026, 1, 2))
        ran = [engine.tick(utc(2026, 1, 2, 3, m)).ran for m in (23, 28, 33)]
        assert ran == [0, 0, 1]
        assert lines(out) == ["ran"]

    def test_occurrences_before_the_job_was_placed_do_not_count(
        self, engine: Engine, root: Path
    ) -> None:
        path = place(root, "j.json", SEED_COMMAND, placed=utc(2026, 3, 1, 19, 0))
        assert engine.tick(utc(2026, 3, 1, 19, 1)).ran == 0
        assert engine.tick(utc(2026, 3, 2, 18, 31)).ran == 1
        assert read_json(path)["last_scheduled"] == "2026-03-02T18:30:00Z"

    def test_a_one_time_job_placed_after_its_time_runs_at_the_next_tick(
        self, engine: Engine, root: Path
    ) -> None:
        out = root.parent / "out.txt"
        path = place(
            root,
            "at.json",
            append_job("at(2026-01-01T08:00:00)", out, "late"),
            placed=utc(2026, 2, 1),
        )
        report = engine.tick(utc(2026, 2, 1, 0, 1))
        assert (report.ran, report.deleted) == (1, 1)
        assert lines(out) == ["late"] and not path.exists()

    def test_a_one_time_job_with_unlimited_runs_stays_and_does_not_run_again(
        self, engine: Engine, root: Path
    ) -> None:
        out = root.parent / "out.txt"
        path = place(
            root,
            "at.json",
            append_job("at(2026-01-01T08:00:00)", out, "once", max_number_executions=0),
        )
        for hour in (9, 10, 11):
            engine.tick(utc(2026, 1, 1, hour))
        assert lines(out) == ["once"] and read_json(path)["execution_count"] == 1

    def test_missed_occurrences_are_coalesced_into_one_run(
        self, engine: Engine, root: Path
    ) -> None:
        out = root.parent / "out.txt"
        path = place(root, "j.json", append_job("*/10 * * * *", out, "run"))
        assert engine.tick(utc(2026, 1, 1, 0, 5)).ran == 0
        assert engine.tick(utc(2026, 1, 1, 1, 5)).ran == 1  # 00:10 ... 01:00 were missed
        assert lines(out) == ["run"]
        assert read_json(path)["last_scheduled"] == "2026-01-01T01:00:00Z"

    def test_a_disabled_job_is_not_run_and_re_enabling_does_not_replay(
        self, engine: Engine, root: Path
    ) -> None:
        out = root.parent / "out.txt"
        job = append_job("0 * * * *", out, "run", enabled=False)
        path = place(root, "j.json", job)
        assert engine.tick(utc(2026, 1, 1, 5, 1)).ran == 0
        place(root, "j.json", {**job, "enabled": True}, placed=utc(2026, 1, 1, 5, 30))
        assert engine.tick(utc(2026, 1, 1, 5, 31)).ran == 0
        assert engine.tick(utc(2026, 1, 1, 6, 0)).ran == 1
        assert read_json(path)["last_scheduled"] == "2026-01-01T06:00:00Z"

    def test_editing_the_schedule_restarts_its_window(self, engine: Engine, root: Path) -> None:
        out = root.parent / "out.txt"
        job = append_job("0 * * * *", out, "run")
        path = place(root, "j.json", job)
        assert engine.tick(utc(2026, 1, 1, 10, 0)).ran == 1
        edited = {**read_json(path), "when": "30 * * * *"}
        place(root, "j.json", edited, placed=utc(2026, 1, 1, 10, 40))
        assert engine.tick(utc(2026, 1, 1, 10, 45)).ran == 0  # 10:30 came before the edit
        assert engine.tick(utc(2026, 1, 1, 11, 30)).ran == 1
        assert lines(out) == ["run", "run"]

    def test_a_time_zone_moves_the_fire_time(self, engine: Engine, root: Path) -> None:
        path = place(
            root, "j.json", {**SEED_COMMAND, "when": "0 9 * * *", "timezone": "Asia/Tokyo"}
        )
        assert engine.tick(utc(2026, 1, 1, 23, 59)).ran == 0
        assert engine.tick(utc(2026, 1, 2, 0, 0)).ran == 1  # 09:00 in Tokyo
        assert read_json(path)["last_scheduled"] == "2026-01-02T00:00:00Z"


class TestResultsAndWriteBack:
    def test_unknown_fields_survive_write_back(self, engine: Engine, root: Path) -> None:
        job = {
            "customer": {"id": 42, "tags": ["vip"], "ratio": 0.5},
            "note": "ünïcödé",
            **SEED_COMMAND,
            "zz_last": None,
        }
        path = place(root, "j.json", job)
        engine.tick(utc(2026, 1, 1, 18, 31))
        state = read_json(path)
        for name, value in job.items():
            assert state[name] == value
        assert list(state)[:2] == ["customer", "note"]

    def test_a_failing_job_is_recorded_and_the_tick_goes_on(
        self, engine: Engine, root: Path
    ) -> None:
        bad = place(root, "bad.json", command_job("@hourly", ["sh", "-c", "echo oops; exit 7"]))
        missing = place(root, "missing.json", command_job("@hourly", ["no-such-binary-xyz"]))
        good = place(root, "good.json", command_job("@hourly", ["true"]))
        report = engine.tick(utc(2026, 1, 1, 1, 0))
        assert (report.seen, report.due, report.ran, report.failed) == (3, 3, 3, 2)
        result = read_json(bad)["last_result"]
        assert result | {"started": None, "duration_ms": None, "lateness_ms": None} == {
            "status": "failed",
            "exit_code": 7,
            "output": "oops\n",
            "error": "exited with status 7",
            "started": None,
            "duration_ms": None,
            "lateness_ms": None,
        }
        started = datetime.fromisoformat(result["started"])
        assert result["lateness_ms"] == (started - utc(2026, 1, 1, 1)) // timedelta(milliseconds=1)
        assert read_json(missing)["last_result"]["status"] == "error"
        assert read_json(good)["last_result"]["status"] == "ok"

    def test_a_timeout_is_recorded_as_timeout(self, engine: Engine, root: Path) -> None:
        path = place(
            root, "slow.json", command_job("@hourly", ["sleep", "30"], timeout_seconds=0.5)
        )
        engine.tick(utc(2026, 1, 1, 1, 0))
        assert read_json(path)["last_result"]["status"] == "timeout"

    def test_an_edit_during_the_run_is_kept_and_runner_fields_merged(
        self, engine: Engine, root: Path
    ) -> None:
        path = root / "j.json"
        # The job edits its own file while it runs, as a user might.
        script = (
            f"import json; p = {str(path)!r}; d = json.load(open(p)); "
            "d['note'] = 'edited'; d['run']['details']['args'] = ['x']; "
            "json.dump(d, open(p + '.tmp', 'w')); import os; os.replace(p + '.tmp', p)"
        )
        place(
            root,
            "j.json",
            {
                "when": "@hourly",
                "max_number_executions": 1,
                "run": {"type": "python", "details": {"script": script}},
            },
        )
        report = engine.tick(utc(2026, 1, 1, 1, 0))
        assert (report.ran, report.deleted) == (1, 0)  # edited meanwhile: not deleted
        state = read_json(path)
        assert state["note"] == "edited" and state["run"]["details"]["args"] == ["x"]
        assert state["execution_count"] == 1 and state["last_result"]["status"] == "ok"
        assert "claim" not in state

    def test_a_job_deleted_during_its_run_is_not_resurrected(
        self, engine: Engine, root: Path
    ) -> None:
        path = root / "j.json"
        script = f"import os; os.remove({str(path)!r})"
        place(
            root,
            "j.json",
            {"when": "@hourly", "run": {"type": "python", "details": {"script": script}}},
        )
        events: list[JobEvent] = []
        engine.log = events.append
        report = engine.tick(utc(2026, 1, 1, 1, 0))
        assert report.ran == 1
        assert not path.exists()
        (ran,) = [e for e in events if e.outcome is Outcome.RAN]
        assert ran.message == "result not written: the job was deleted meanwhile"

    @pytest.mark.parametrize("save", ["rename", "in place"])
    def test_an_edit_from_a_buffer_opened_before_the_run_is_still_an_edit(
        self, engine: Engine, root: Path, save: str
    ) -> None:
        # An editor holds the file as it was before the run's claim; the user saves a change
        # while the job runs. The saved file has no claim, yet it is this job, edited: the
        # run's result must be merged in, or the occurrence it ran for runs again.
        path, out, buffer = root / "j.json", root.parent / "out.txt", root.parent / "buffer"
        write = (
            f"os.replace({str(buffer)!r}, {str(path)!r})"
            if save == "rename"
            else f"open({str(path)!r}, 'w').write(open({str(buffer)!r}).read())"
        )
        script = (
            f"import os\nopen({str(out)!r}, 'a').write('ran\\n')\n"
            f"if os.path.exists({str(buffer)!r}):\n    {write}\n"
        )
        place(
            root,
            "j.json",
            {"when": "@hourly", "run": {"type": "python", "details": {"script": script}}},
        )
        assert engine.tick(utc(2026, 1, 1, 1, 0)).ran == 1
        opened = read_json(path)
        buffer.write_text(json.dumps({**opened, "note": "edited"}, indent=2))
        assert engine.tick(utc(2026, 1, 1, 2, 0)).ran == 1
        assert engine.tick(utc(2026, 1, 1, 2, 0, 30)).ran == 0  # 02:00 ran: never again
        assert lines(out) == ["ran", "ran"]
        state = read_json(path)
        assert state["note"] == "edited" and "claim" not in state
        assert state["execution_count"] == 2 and state["last_scheduled"] == "2026-01-01T02:00:00Z"
        assert state["last_result"]["status"] == "ok"

    def test_an_edit_from_a_buffer_opened_during_the_previous_run_is_still_an_edit(
        self, engine: Engine, root: Path, clock: FakeClock
    ) -> None:
        # Opened while the job ran before, the buffer holds that run's claim, long finished:
        # saved during this run, it is this job edited, not another runner's take-over.
        path, out, buffer = root / "j.json", root.parent / "out.txt", root.parent / "buffer"
        script = (
            f"import json, os\nopen({str(out)!r}, 'a').write('ran\\n')\n"
            f"if os.path.exists({str(buffer)!r}):\n"
            f"    os.replace({str(buffer)!r}, {str(path)!r})\n"
            f"else:\n    d = json.load(open({str(path)!r}))\n    d['note'] = 'edited'\n"
            f"    json.dump(d, open({str(buffer)!r}, 'w'))\n"
        )
        place(
            root,
            "j.json",
            {"when": "@hourly", "run": {"type": "python", "details": {"script": script}}},
        )
        for now in (utc(2026, 1, 1, 1, 0), utc(2026, 1, 1, 2, 0)):
            clock.now = now
            assert engine.tick(now).ran == 1
        clock.now = utc(2026, 1, 1, 2, 0, 30)
        assert engine.tick(clock.now).ran == 0  # 02:00 ran: never again
        assert lines(out) == ["ran", "ran"]
        state = read_json(path)
        assert state["note"] == "edited" and "claim" not in state
        assert state["execution_count"] == 2 and state["last_scheduled"] == "2026-01-01T02:00:00Z"
        assert state["last_result"]["status"] == "ok"

    @pytest.mark.parametrize("how", ["delete and place", "copy over"])
    def test_a_new_job_placed_under_the_key_during_the_run_is_its_own(
        self, engine: Engine, root: Path, clock: FakeClock, how: str
    ) -> None:
        # The order bot cancels an order while it runs and places a new one under the same
        # key: the new job must not inherit the old one's count, history or claim.
        path, out = root / "j.json", root.parent / "out.txt"
        new_job = {
            "when": "at(2026-01-01T05:00:00)",
            "max_number_executions": 1,
            "run": {"type": "command", "details": {"command": ["sh", "-c", f"echo new >> {out}"]}},
        }
        new_body = json.dumps(new_job, indent=1)
        (root.parent / "new.json").write_text(new_body)
        replace_it = (
            f"import os; os.remove({str(path)!r}); open({str(path)!r}, 'w').write(open("
            f"{str(root.parent / 'new.json')!r}).read())"
            if how == "delete and place"
            else f"import os; os.replace({str(root.parent / 'new.json')!r}, {str(path)!r})"
        )
        place(
            root,
            "j.json",
            {
                "when": "@hourly",
                "max_number_executions": 1,
                "run": {"type": "python", "details": {"script": replace_it}},
            },
        )
        report = engine.tick(utc(2026, 1, 1, 1, 0))
        assert report.ran == 1
        assert path.read_text() == new_body  # left as placed: no count, claim or result
        clock.now = utc(2026, 1, 1, 5, 0, 1)
        assert engine.tick(clock.now).ran == 1 and lines(out) == ["new"]
        assert not path.exists()  # its one run done, it deleted itself

    def test_a_bad_file_is_reported_and_left_byte_for_byte(
        self, engine: Engine, root: Path
    ) -> None:
        bodies = {
            "empty.json": b"",
            "broken.json": b'{"when": "@hourly",',
            "list.json": b"[1, 2]",
            "badwhen.json": b'{"when": "99 * * * *", "run": {"type": "command", '
            b'"details": {"command": ["true"]}}}',
            "type.json": b'{"when": "@hourly", "run": {"type": "ftp", "details": {}}}',
        }
        for name, body in bodies.items():
            place(root, name, body)
        good = place(root, "good.json", command_job("@hourly", ["true"]))
        before = {name: (root / name).stat().st_mtime_ns for name in bodies}
        report = engine.tick(utc(2026, 1, 1, 1, 0))
        assert (report.invalid, report.ran) == (5, 1)
        for name, body in bodies.items():
            assert (root / name).read_bytes() == body
            assert (root / name).stat().st_mtime_ns == before[name]
        messages = {e.key: e.message for e in report.events if e.outcome is Outcome.INVALID}
        assert messages["badwhen.json"] == "when: minute: 99 is out of range 0-59"
        assert messages["empty.json"] == "the file is empty; a job is a JSON object"
        assert read_json(good)["execution_count"] == 1

    def test_a_type_the_runner_does_not_allow_is_refused(
        self, root: Path, clock: FakeClock
    ) -> None:
        path = place(root, "cmd.json", command_job("@hourly", ["true"]))
        body = path.read_bytes()
        with Engine(LocalStore(root), default_registry([RunType.LAMBDA]), clock=clock) as engine:
            report = engine.tick(utc(2026, 1, 1, 1))
        assert report.invalid == 1 and report.ran == 0
        assert report.events[0].message == "run.type: 'command' is not allowed by this runner"
        assert path.read_bytes() == body


class TestClaims:
    def claim(self, **overrides: Any) -> dict[str, Any]:
        return {
            "id": "other",
            "scheduled": "2026-01-01T01:00:00Z",
            "host": "elsewhere",
            "pid": 1,
            "started": "2026-01-01T01:00:01Z",
            "deadline": "2026-01-01T01:10:00Z",
            **overrides,
        }

    def test_a_job_whose_previous_run_is_still_going_is_not_started_again(
        self, engine: Engine, root: Path, clock: FakeClock
    ) -> None:
        clock.now = utc(2026, 1, 1, 1, 5)
        out = root.parent / "out.txt"
        path = place(
            root,
            "j.json",
            {
                **append_job("* * * * *", out, "x"),
                "last_scheduled": "2026-01-01T01:00:00Z",
                "claim": self.claim(),
            },
        )
        body = path.read_bytes()
        report = engine.tick(utc(2026, 1, 1, 1, 5))
        assert [e.outcome for e in report.events] == [Outcome.RUNNING]
        assert path.read_bytes() == body and not out.exists()

    def test_a_claim_past_its_deadline_is_recorded_as_interrupted_and_later_runs_go_on(
        self, engine: Engine, root: Path, clock: FakeClock
    ) -> None:
        clock.now = utc(2026, 1, 1, 1, 11)
        out = root.parent / "out.txt"
        path = place(
            root,
            "j.json",
            {
                **append_job("*/5 * * * *", out, "x"),
                "execution_count": 1,
                "last_scheduled": "2026-01-01T01:00:00Z",
                "claim": self.claim(),
            },
        )
        report = engine.tick(utc(2026, 1, 1, 1, 11))
        assert (report.interrupted, report.ran) == (1, 1)
        state = read_json(path)
        assert state["last_scheduled"] == "2026-01-01T01:10:00Z"
        assert state["execution_count"] == 2
        assert lines(out) == ["x"]  # 01:00 is not run again

    def test_a_claim_of_a_dead_process_on_this_host_is_interrupted_at_once(
        self, root: Path, clock: FakeClock
    ) -> None:
        from lambdacron.engine.tick import host_identity

        clock.now = utc(2026, 1, 1, 1, 2)
        path = place(
            root,
            "j.json",
            {
                **command_job("@daily", ["true"]),
                "last_scheduled": "2026-01-01T00:00:00Z",
                "claim": self.claim(host=host_identity(), pid=99999),
            },
        )
        with Engine(
            LocalStore(root), default_registry(), clock=clock, is_alive=lambda pid: False
        ) as engine:
            report = engine.tick(utc(2026, 1, 1, 1, 2))
        assert report.interrupted == 1 and report.ran == 0
        state = read_json(path)
        assert state["last_result"]["status"] == "interrupted"
        assert "claim" not in state

    def test_two_engines_on_one_store_run_an_occurrence_once(
        self, root: Path, clock: FakeClock
    ) -> None:
        out = root.parent / "out.txt"
        for i in range(20):
            place(root, f"j{i:02}.json", append_job("@hourly", out, f"job{i}"))
        store_a, store_b = LocalStore(root), LocalStore(root)
        with (
            Engine(store_a, default_registry(), clock=clock, workers=8) as a,
            Engine(store_b, default_registry(), clock=clock, workers=8) as b,
        ):
            import threading

            reports = []
            threads = [
                threading.Thread(target=lambda e=e: reports.append(e.tick(utc(2026, 1, 1, 1))))
                for e in (a, b)
            ]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        assert sorted(lines(out)) == sorted(f"job{i}" for i in range(20))
        assert sum(r.ran for r in reports) == 20

    def test_another_engine_of_this_process_reading_a_claim_just_written_leaves_it_be(
        self, root: Path, clock: FakeClock
    ) -> None:
        # The instant after a claim lands, before its run starts: another engine of this
        # process (a handler thread) that reads the job then sees this pid's claim.
        out = root.parent / "out.txt"
        path = place(root, "j.json", append_job("@hourly", out, "ran"))
        seen: list[Any] = []
        with Engine(LocalStore(root), default_registry(), clock=clock) as other:

            class PeekingStore(LocalStore):
                def write(self, key: str, body: bytes, expected: Any) -> Any:
                    version = super().write(key, body, expected)
                    if b'"claim"' in body and not seen:
                        seen.append(other.tick(utc(2026, 1, 1, 1)))
                    return version

            with Engine(PeekingStore(root), default_registry(), clock=clock) as engine:
                report = engine.tick(utc(2026, 1, 1, 1))
        # Left be, and counted taken: the claim is on the very occurrence it came for.
        assert [e.outcome for e in seen[0].events] == [Outcome.TAKEN]
        assert report.ran == 1 and lines(out) == ["ran"]
        assert read_json(path)["last_result"]["status"] == "ok"

    def test_a_claim_of_this_runner_is_its_delivery_only_while_it_is_seconds_old(
        self, root: Path, clock: FakeClock
    ) -> None:
        # serve's tick reading its own claim: the timer's delivery of the same second, or
        # (once that run has gone on a while) a run of this runner still going.
        out = root.parent / "out.txt"
        place(root, "j.json", append_job("@hourly", out, "ran"))
        messages: list[str] = []
        with Engine(LocalStore(root), default_registry(), clock=clock) as other:

            class PeekingStore(LocalStore):
                def write(self, key: str, body: bytes, expected: Any) -> Any:
                    version = super().write(key, body, expected)
                    if b'"claim"' in body and not messages:
                        for late in (2, 30):
                            clock.now = claimed_at + timedelta(seconds=late)
                            (event,) = other.tick(utc(2026, 1, 1, 1)).events
                            messages.append(event.message)
                    return version

            claimed_at = clock.now
            with Engine(PeekingStore(root), default_registry(), clock=clock) as engine:
                assert engine.tick(utc(2026, 1, 1, 1)).ran == 1
        assert messages == [
            "claimed first by this runner (its delivery of the same second), which runs it",
            "claimed by this runner, whose run of it is still going",
        ]

    def test_a_tick_without_time_to_finish_a_job_leaves_it_due(
        self, root: Path, clock: FakeClock
    ) -> None:
        path = place(root, "j.json", command_job("@hourly", ["true"], timeout_seconds=60))
        with Engine(
            LocalStore(root), default_registry(), clock=clock, time_left=lambda: 30.0
        ) as engine:
            report = engine.tick(utc(2026, 1, 1, 1))
        assert [e.outcome for e in report.events] == [Outcome.SKIPPED_DEADLINE]
        assert "execution_count" not in read_json(path)
        with Engine(LocalStore(root), default_registry(), clock=clock) as engine:
            assert engine.tick(utc(2026, 1, 1, 1, 1)).ran == 1

    def test_a_job_needing_more_time_than_the_runner_ever_has_is_an_error_not_a_wait(
        self, root: Path, clock: FakeClock
    ) -> None:
        out = root.parent / "out.txt"
        path = place(root, "long.json", append_job("@hourly", out, "ran", timeout_seconds=900))
        fits = place(root, "fits.json", command_job("@hourly", ["true"], timeout_seconds=60))
        with Engine(
            LocalStore(root),
            default_registry(),
            clock=clock,
            time_left=lambda: 30.0,
            max_run_seconds=300.0,
        ) as engine:
            report = engine.tick(utc(2026, 1, 1, 1))
        outcomes = {e.key: e.outcome for e in report.events}
        assert outcomes == {"long.json": Outcome.RAN, "fits.json": Outcome.SKIPPED_DEADLINE}
        assert (report.ran, report.failed, report.skipped) == (1, 1, 1)
        result = read_json(path)["last_result"]
        assert result["status"] == "error"
        assert "timeout_seconds is 900, more than this runner can ever give" in result["error"]
        assert read_json(path)["last_scheduled"] == "2026-01-01T01:00:00Z"
        assert not out.exists()  # never started
        assert "execution_count" not in read_json(fits)


def test_the_tick_never_reads_the_clock_for_schedules(root: Path) -> None:
    """`now` decides what is due; the wall clock only stamps claims."""
    path = place(root, "j.json", SEED_COMMAND)
    far_future = FakeClock(utc(2099, 1, 1))
    with Engine(LocalStore(root), default_registry(), clock=far_future) as engine:
        assert engine.tick(utc(2026, 1, 1, 18, 29)).ran == 0
        assert engine.tick(utc(2026, 1, 1, 18, 30)).ran == 1
    assert json.loads(path.read_text())["last_scheduled"] == "2026-01-01T18:30:00Z"


def test_a_late_result_never_rolls_back_a_newer_occurrence(root: Path, tmp_path: Path) -> None:
    """Runner A's run outlives its claim; runner B records it interrupted and runs the next
    occurrence. When A finally writes back, B's newer state must stand."""
    import threading

    gates = tmp_path / "gates"
    gates.mkdir()
    out = tmp_path / "out.txt"
    script = (
        "import os, time\n"
        "t = os.environ['LAMBDACRON_SCHEDULED_TIME']\n"
        f"open({str(out)!r}, 'a').write(t + '\\n')\n"
        f"gate = os.path.join({str(gates)!r}, t)\n"
        "deadline = time.time() + 20\n"
        "while not os.path.exists(gate) and time.time() < deadline: time.sleep(0.01)\n"
    )
    path = place(
        root,
        "j.json",
        {
            "when": "*/5 * * * *",
            "timeout_seconds": 60,
            "run": {"type": "python", "details": {"script": script}},
        },
    )
    clock_a = FakeClock(utc(2026, 1, 1, 0, 5))
    clock_b = FakeClock(utc(2026, 1, 1, 0, 30))  # far past A's claim deadline
    with (
        Engine(LocalStore(root), default_registry(), clock=clock_a) as a,
        Engine(LocalStore(root), default_registry(), clock=clock_b, host="other") as b,
    ):
        reports = []
        thread = threading.Thread(target=lambda: reports.append(a.tick(utc(2026, 1, 1, 0, 5))))
        thread.start()
        deadline = time.monotonic() + 20
        while "claim" not in read_json(path) and time.monotonic() < deadline:
            time.sleep(0.01)
        (gates / "2026-01-01T00:10:00Z").touch()
        report_b = b.tick(utc(2026, 1, 1, 0, 10))
        assert (report_b.interrupted, report_b.ran) == (1, 1)
        (gates / "2026-01-01T00:05:00Z").touch()
        thread.join()
    state = read_json(path)
    assert state["last_scheduled"] == "2026-01-01T00:10:00Z"
    assert state["execution_count"] == 2
    assert lines(out) == ["2026-01-01T00:05:00Z", "2026-01-01T00:10:00Z"]
