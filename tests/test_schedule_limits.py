"""Schedules at their edges: evaluation always ends, years are local years, never-firing
schedules are refused everywhere, and instants stay inside the calendar."""

from __future__ import annotations

import dataclasses
import re
from datetime import UTC, datetime, timedelta, tzinfo
from pathlib import Path

import pytest

import lambdacron
from conftest import Run
from helpers import command_job, place, utc
from lambdacron.errors import JobError, ScheduleError
from lambdacron.schedule import CronSchedule, parse, parse_instant, validate


class EveryTimeIsSkipped(tzinfo):
    """A hostile zone: every wall time lies in a gap (fold 0 reads UTC, fold 1 reads +1h)."""

    def utcoffset(self, dt: datetime | None) -> timedelta:
        return timedelta(hours=1) if dt is not None and dt.fold else timedelta(0)

    def dst(self, dt: datetime | None) -> timedelta:
        return timedelta(0)

    def tzname(self, dt: datetime | None) -> str:
        return "hostile"

    def fromutc(self, dt: datetime) -> datetime:
        return dt.replace(tzinfo=self)


class TestEvaluationAlwaysEnds:
    def test_a_search_that_finds_no_instant_stops_with_a_schedule_error(self) -> None:
        every_minute = parse("* * * * *")
        assert isinstance(every_minute, CronSchedule)
        schedule = dataclasses.replace(every_minute, zone=EveryTimeIsSkipped())
        with pytest.raises(ScheduleError, match=r"'\* \* \* \* \*'.*step limit"):
            schedule.next_after(utc(2026, 1, 1))
        with pytest.raises(ScheduleError, match="step limit"):
            schedule.latest_at_or_before(utc(2026, 1, 1))

    def test_a_coalesced_catch_up_across_chatham_s_fall_back_ends(
        self, run_cli: Run, tmp_path: Path
    ) -> None:
        # Placed 2026-04-04T11:00Z; the tick at 13:30Z looks back over the even hours.
        root = tmp_path / "jobs"
        root.mkdir()
        job = command_job("0 */2 * * *", ["true"], timezone="Pacific/Chatham")
        place(root, "chatham.json", job, utc(2026, 4, 4, 11, 0))
        ticked = run_cli("tick", "--now", "2026-04-04T13:30:00Z", timeout=60)
        assert ticked.returncode == 0, ticked.stderr
        assert "1 ran" in ticked.stdout
        listed = run_cli("ls", "--now", "2026-04-04T13:31:00Z", timeout=60)
        assert listed.returncode == 0, listed.stderr
        assert "chatham.json" in listed.stdout


class TestYearsAreLocal:
    def test_the_last_minute_of_2199_in_honolulu_fires(self) -> None:
        # 2199-12-31 23:59 HST is 2200-01-01 09:59 UTC: a local 2199, which is in range.
        schedule = parse("59 23 31 12 * 2199", "Pacific/Honolulu")
        assert schedule.next_after(utc(2199, 1, 1)) == utc(2200, 1, 1, 9, 59)
        assert schedule.latest_at_or_before(utc(2201, 1, 1)) == utc(2200, 1, 1, 9, 59)

    def test_without_a_year_field_the_last_local_year_is_2199(self) -> None:
        schedule = parse("0 20 31 12 *", "Pacific/Honolulu")
        assert schedule.next_after(utc(2199, 12, 31)) == utc(2200, 1, 1, 6)
        assert schedule.next_after(utc(2200, 1, 1, 6)) is None

    def test_validation_accepts_a_local_2199(self) -> None:
        validate("59 23 31 12 * 2199", "Pacific/Honolulu", utc(2199, 6, 1))

    def test_next_prints_the_last_minute_of_2199_in_honolulu(self, run_cli: Run) -> None:
        result = run_cli(
            "next", "59 23 31 12 * 2199", "--tz", "Pacific/Honolulu", "--after", "2199-01-01"
        )
        assert result.returncode == 0, result.stderr
        assert result.stdout == "2199-12-31T23:59:00-10:00\n"


class TestNeverFiringSchedulesAreRefusedEverywhere:
    def test_api_add_refuses_past_years_like_the_cli(self, run_cli: Run, tmp_path: Path) -> None:
        store = lambdacron.open_store(str(tmp_path / "jobs"), create=True)
        document = command_job("0 0 1 1 * 2020-2022", ["true"])
        with pytest.raises(JobError) as info:
            lambdacron.add(store, document)
        assert info.value.path == "when"
        assert str(info.value).startswith("when: '0 0 1 1 * 2020-2022' never fires after ")
        assert list(store.list()) == []
        # The CLI says the same of the same document.
        path = place(tmp_path, "old.json", document, datetime.now(UTC))
        checked = run_cli("validate", str(path))
        assert checked.returncode == 1
        assert f"{path}: when: '0 0 1 1 * 2020-2022' never fires after " in checked.stdout

    def test_api_schedule_refuses_it_too_but_not_a_past_one_time_job(self, tmp_path: Path) -> None:
        store = lambdacron.open_store(str(tmp_path / "jobs"), create=True)
        with pytest.raises(JobError, match="never fires after"):
            lambdacron.schedule(store, "0 0 1 1 * 2020-2022", command=["true"])
        lambdacron.schedule(store, "at(2020-01-01T00:00:00)", command=["true"])
        lambdacron.schedule(store, "0 0 1 1 * 2100", command=["true"])
        assert len(list(store.list())) == 2


class TestInstantsStayInsideTheCalendar:
    @pytest.mark.parametrize(
        "text",
        [
            "9999-12-31T23:59:59-01:00",
            "0001-01-01T00:00:00+01:00",
            "9999-12-31T23:59:59",
            "0001-01-01T00:00:00",
        ],
    )
    def test_an_instant_too_near_the_ends_is_a_schedule_error_naming_it(self, text: str) -> None:
        message = re.escape(f"at: '{text}' is out of range")
        with pytest.raises(ScheduleError, match=message):
            parse_instant(text, UTC, "at")
        with pytest.raises(ScheduleError, match=message):
            parse(f"at({text})", "Pacific/Kiritimati")

    def test_instants_a_day_inside_the_ends_are_accepted(self) -> None:
        assert parse_instant("9999-12-30T00:00:00Z", UTC) == datetime(9999, 12, 30, tzinfo=UTC)
        assert parse_instant("0001-01-02T12:00:00", UTC) == datetime(1, 1, 2, 12, tzinfo=UTC)

    def test_next_with_such_an_instant_prints_one_line_and_exits_2(self, run_cli: Run) -> None:
        for args in (
            ("next", "at(9999-12-31T23:59:59-01:00)"),
            ("next", "0 0 * * *", "--after", "9999-12-31T23:59:59-01:00"),
        ):
            result = run_cli(*args)
            assert result.returncode == 2
            assert result.stdout == ""
            assert result.stderr.count("\n") == 1
            assert "'9999-12-31T23:59:59-01:00' is out of range" in result.stderr

    def test_a_rate_stops_at_the_end_of_the_calendar(self, run_cli: Run) -> None:
        result = run_cli(
            "next", "rate(1 day)", "--after", "9999-12-29T00:00:00Z", "--tz", "Pacific/Kiritimati"
        )
        assert result.returncode == 0, result.stderr
        assert result.stdout == "9999-12-30T14:00:00+14:00\n"
