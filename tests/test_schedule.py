"""Schedule expressions, grouped by concern. Hand-written cases; properties live in
test_schedule_properties.py."""

from __future__ import annotations

import zoneinfo
from datetime import UTC, datetime, timedelta
from importlib.resources import files
from itertools import islice, pairwise
from pathlib import Path

import pytest

from lambdacron.errors import ScheduleError
from lambdacron.schedule import parse, validate


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


def fires(expr: str, after: datetime, count: int = 3, tz: str = "UTC") -> list[datetime]:
    return list(islice(parse(expr, tz).iter_after(after), count))


class TestTheSeedSamples:
    def test_30_18_fires_every_day_at_18_30(self) -> None:
        assert fires("30 18 * * * * *", utc(2026, 11, 27, 18, 30)) == [
            utc(2026, 11, 28, 18, 30),
            utc(2026, 11, 29, 18, 30),
            utc(2026, 11, 30, 18, 30),
        ]

    def test_01_01_30_04_fires_at_01_01_on_30_april_every_year(self) -> None:
        assert fires("01 01 30 04 * * *", utc(2026, 1, 1)) == [
            utc(2026, 4, 30, 1, 1),
            utc(2027, 4, 30, 1, 1),
            utc(2028, 4, 30, 1, 1),
        ]

    def test_a_seventh_field_other_than_star_is_rejected_with_the_form(self) -> None:
        with pytest.raises(ScheduleError, match=r"field 7: must be '\*', got '0'.*year \*"):
            parse("0 30 18 * * * 0")


class TestStandardFields:
    def test_lists_ranges_and_steps(self) -> None:
        got = fires("10-50/20,55 9 * * *", utc(2026, 1, 1), count=4)
        assert [t.minute for t in got] == [10, 30, 50, 55]

    def test_a_start_with_step_runs_to_the_end_of_the_range(self) -> None:
        assert [t.minute for t in fires("40/7 9 * * *", utc(2026, 1, 1))] == [40, 47, 54]

    def test_month_and_day_names_in_any_case(self) -> None:
        assert parse("0 9 * jan-Mar mon-FRI").next_after(utc(2026, 3, 31, 10)) == utc(2027, 1, 1, 9)

    def test_zero_and_seven_are_both_sunday(self) -> None:
        sunday = utc(2026, 11, 29, 9)
        assert parse("0 9 * * 0").next_after(utc(2026, 11, 27)) == sunday
        assert parse("0 9 * * 7").next_after(utc(2026, 11, 27)) == sunday

    def test_when_both_day_fields_are_restricted_either_may_match(self) -> None:
        # The 13th or any Friday: Friday 2026-11-27, then Sunday 2026-12-13 ... and Fridays.
        got = fires("0 0 13 * 5", utc(2026, 11, 26), count=4)
        assert got == [utc(2026, 11, 27), utc(2026, 12, 4), utc(2026, 12, 11), utc(2026, 12, 13)]

    def test_a_day_field_starting_with_star_makes_both_required(self) -> None:
        # Debian cron: "*/2" day-of-month starts with '*', so odd days that are Mondays.
        got = fires("0 0 */2 * 1", utc(2026, 11, 1), count=2)
        assert got == [utc(2026, 11, 9), utc(2026, 11, 23)]
        assert all(t.day % 2 == 1 and t.weekday() == 0 for t in got)

    def test_results_are_strictly_after_the_start(self) -> None:
        assert parse("30 18 * * *").next_after(utc(2026, 1, 1, 18, 30)) == utc(2026, 1, 2, 18, 30)
        assert parse("30 18 * * *").next_after(utc(2026, 1, 1, 18, 29, 59, 999999)) == utc(
            2026, 1, 1, 18, 30
        )


class TestYearField:
    def test_a_single_year(self) -> None:
        assert fires("0 12 1 1 * 2028", utc(2026, 1, 1)) == [utc(2028, 1, 1, 12)]

    def test_a_year_range_ends(self) -> None:
        assert fires("0 0 1 6 * 2026-2028", utc(2026, 1, 1), count=5) == [
            utc(2026, 6, 1),
            utc(2027, 6, 1),
            utc(2028, 6, 1),
        ]

    def test_a_year_step_and_a_list(self) -> None:
        assert [t.year for t in fires("0 0 1 1 * */2", utc(2026, 6, 1))] == [2028, 2030, 2032]
        assert [t.year for t in fires("0 0 1 1 * 2027,2031", utc(2026, 6, 1))] == [2027, 2031]

    def test_the_leap_day_with_a_year_fires_once(self) -> None:
        assert fires("0 0 29 2 * 2028", utc(2026, 1, 1)) == [utc(2028, 2, 29)]

    def test_the_leap_day_without_a_year_fires_every_leap_year(self) -> None:
        assert fires("0 0 29 2 *", utc(2026, 1, 1)) == [
            utc(2028, 2, 29),
            utc(2032, 2, 29),
            utc(2036, 2, 29),
        ]

    def test_a_leap_day_in_a_year_without_one_is_refused_as_never_firing(self) -> None:
        with pytest.raises(ScheduleError, match="this schedule never fires"):
            parse("0 0 29 2 * 2027")

    def test_the_latest_fire_time_respects_the_year(self) -> None:
        schedule = parse("0 0 1 1 * 2026-2028")
        assert schedule.latest_at_or_before(utc(2030, 5, 5)) == utc(2028, 1, 1)
        assert schedule.latest_at_or_before(utc(2025, 5, 5)) is None


class TestNicknames:
    @pytest.mark.parametrize(
        ("nickname", "expected"),
        [
            ("@yearly", utc(2027, 1, 1)),
            ("@annually", utc(2027, 1, 1)),
            ("@monthly", utc(2026, 12, 1)),
            ("@weekly", utc(2026, 11, 29)),
            ("@daily", utc(2026, 11, 28)),
            ("@midnight", utc(2026, 11, 28)),
            ("@hourly", utc(2026, 11, 27, 13)),
            ("@DAILY", utc(2026, 11, 28)),
        ],
    )
    def test_each_nickname(self, nickname: str, expected: datetime) -> None:
        assert parse(nickname).next_after(utc(2026, 11, 27, 12, 30)) == expected

    def test_reboot_is_not_a_schedule(self) -> None:
        with pytest.raises(ScheduleError, match="unknown nickname '@reboot'"):
            parse("@reboot")


class TestEventBridgeExtras:
    def test_question_mark_means_no_restriction(self) -> None:
        assert fires("0 9 ? * MON", utc(2026, 11, 27), 1) == [utc(2026, 11, 30, 9)]
        assert fires("0 9 1 * ?", utc(2026, 11, 27), 1) == [utc(2026, 12, 1, 9)]

    def test_l_is_the_last_day_of_the_month(self) -> None:
        assert fires("0 0 L * ?", utc(2028, 1, 31, 1)) == [
            utc(2028, 2, 29),
            utc(2028, 3, 31),
            utc(2028, 4, 30),
        ]

    def test_5l_is_the_last_friday(self) -> None:
        assert fires("0 9 ? * 5L", utc(2026, 11, 1)) == [
            utc(2026, 11, 27, 9),
            utc(2026, 12, 25, 9),
            utc(2027, 1, 29, 9),
        ]

    def test_hash_is_the_nth_weekday(self) -> None:
        assert fires("0 9 ? * MON#2", utc(2026, 11, 1), 2) == [
            utc(2026, 11, 9, 9),
            utc(2026, 12, 14, 9),
        ]

    def test_w_is_the_nearest_weekday_within_the_month(self) -> None:
        # 2026-11-15 is a Sunday -> Monday 16th; 2026-08-15 is a Saturday -> Friday 14th;
        # 2026-08-01 is a Saturday -> Monday 3rd (Friday would leave the month).
        assert parse("0 9 15W * ?").next_after(utc(2026, 11, 1)) == utc(2026, 11, 16, 9)
        assert parse("0 9 15W * ?").next_after(utc(2026, 8, 1)) == utc(2026, 8, 14, 9)
        assert parse("0 9 1W * ?").next_after(utc(2026, 7, 31)) == utc(2026, 8, 3, 9)

    def test_31w_skips_months_without_a_31st(self) -> None:
        got = fires("0 0 31W * ?", utc(2026, 3, 1), 2)
        assert [(t.month, t.day) for t in got] == [(3, 31), (5, 29)]  # May 31 2026 is a Sunday

    def test_lw_is_the_last_weekday(self) -> None:
        assert parse("0 0 LW * ?").next_after(utc(2026, 5, 1)) == utc(2026, 5, 29)


class TestAt:
    def test_a_naive_time_is_wall_clock_time_in_the_zone(self) -> None:
        schedule = parse("at(2026-12-01T18:30:00)", "Europe/Berlin")
        assert schedule.next_after(utc(2026, 1, 1)) == utc(2026, 12, 1, 17, 30)

    @pytest.mark.parametrize("stamp", ["2026-12-01T18:30:00Z", "2026-12-01T19:30:00+01:00"])
    def test_an_offset_or_z_is_absolute(self, stamp: str) -> None:
        assert parse(f"at({stamp})", "Asia/Tokyo").next_after(utc(2026, 1, 1)) == utc(
            2026, 12, 1, 18, 30
        )

    def test_it_fires_once(self) -> None:
        schedule = parse("at(2026-12-01T18:30:00)")
        assert schedule.one_time
        assert fires("at(2026-12-01T18:30:00)", utc(2026, 1, 1), 5) == [utc(2026, 12, 1, 18, 30)]
        assert schedule.latest_at_or_before(utc(2026, 12, 1, 18, 29)) is None
        assert schedule.latest_at_or_before(utc(2027, 1, 1)) == utc(2026, 12, 1, 18, 30)

    def test_a_date_alone_is_its_midnight_in_the_zone(self) -> None:
        schedule = parse("at(2026-12-01)", "Europe/Berlin")
        assert schedule.next_after(utc(2026, 1, 1)) == utc(2026, 11, 30, 23)

    def test_a_fraction_of_a_second_is_kept(self) -> None:
        schedule = parse("at(2026-12-01T18:30:00.5)")
        at = utc(2026, 12, 1, 18, 30) + timedelta(milliseconds=500)
        assert schedule.next_after(utc(2026, 1, 1)) == at
        assert schedule.latest_at_or_before(utc(2026, 12, 1, 18, 30)) is None

    @pytest.mark.parametrize(
        "text",
        [
            "AT(2026-12-01T18:30:00Z)",
            "at(20261201T1830Z)",
            "at( 2026-12-01 18:30 )",
            "At(2026-W49-2T18:30:00Z)",  # ISO week 49's Tuesday
        ],
    )
    def test_any_iso_8601_form_and_any_case(self, text: str) -> None:
        assert parse(text).next_after(utc(2026, 1, 1)) == utc(2026, 12, 1, 18, 30)

    def test_a_time_in_a_spring_forward_gap_fires_after_the_gap(self) -> None:
        # Europe/Berlin skips 02:00-03:00 on 2027-03-28; 03:00 CEST is 01:00 UTC.
        schedule = parse("at(2027-03-28T02:30:00)", "Europe/Berlin")
        assert schedule.next_after(utc(2027, 1, 1)) == utc(2027, 3, 28, 1)


class TestRate:
    def test_minutes_align_to_the_epoch(self) -> None:
        assert fires("rate(5 minutes)", utc(2026, 11, 27, 12, 1, 30)) == [
            utc(2026, 11, 27, 12, 5),
            utc(2026, 11, 27, 12, 10),
            utc(2026, 11, 27, 12, 15),
        ]

    def test_hours_and_days(self) -> None:
        assert parse("rate(2 hours)").next_after(utc(2026, 11, 27, 13)) == utc(2026, 11, 27, 14)
        assert parse("rate(1 day)").next_after(utc(2026, 11, 27, 13)) == utc(2026, 11, 28)

    def test_the_time_zone_does_not_move_a_rate(self) -> None:
        assert parse("rate(1 hour)", "Asia/Kolkata").next_after(utc(2026, 1, 1)) == utc(
            2026, 1, 1, 1
        )

    def test_seconds_align_to_the_epoch(self) -> None:
        assert fires("rate(20 seconds)", utc(2026, 11, 27, 12, 1, 30)) == [
            utc(2026, 11, 27, 12, 1, 40),
            utc(2026, 11, 27, 12, 2),
            utc(2026, 11, 27, 12, 2, 20),
        ]
        assert parse("rate(1 second)").next_after(utc(2026, 1, 1)) == utc(2026, 1, 1, 0, 0, 1)

    def test_an_instant_a_microsecond_before_a_boundary_is_before_it(self) -> None:
        # Far from the epoch a float timestamp has no microseconds left to round with.
        before = utc(9000, 1, 1) - timedelta(microseconds=1)
        assert parse("rate(1 minute)").next_after(before) == utc(9000, 1, 1)
        assert parse("rate(1 second)").latest_at_or_before(before) == utc(8999, 12, 31, 23, 59, 59)

    def test_latest_is_the_last_aligned_instant(self) -> None:
        assert parse("rate(15 minutes)").latest_at_or_before(utc(2026, 1, 1, 0, 44)) == utc(
            2026, 1, 1, 0, 30
        )


class TestTimeZones:
    def test_cron_fields_are_local_wall_clock_times(self) -> None:
        assert parse("0 9 * * *", "Asia/Tokyo").next_after(utc(2026, 1, 1)) == utc(2026, 1, 2, 0)

    def test_a_fixed_time_skipped_by_spring_forward_fires_once_after_the_gap(self) -> None:
        # Berlin: 2027-03-28 02:00 CET -> 03:00 CEST. 02:30 does not exist that day.
        got = fires("30 2 * * *", utc(2027, 3, 27, 12), 2, "Europe/Berlin")
        assert got == [utc(2027, 3, 28, 1, 0), utc(2027, 3, 29, 0, 30)]

    def test_a_fixed_time_repeated_by_fall_back_fires_once(self) -> None:
        # Berlin: 2026-10-25 03:00 CEST -> 02:00 CET. 02:30 happens twice; run the first.
        got = fires("30 2 * * *", utc(2026, 10, 24, 12), 2, "Europe/Berlin")
        assert got == [utc(2026, 10, 25, 0, 30), utc(2026, 10, 26, 1, 30)]

    def test_starting_inside_the_repeated_hour_does_not_go_back(self) -> None:
        # 01:30 EST (second pass, 06:30 UTC) on 2026-11-01 in New York: 01:45 EDT is past.
        schedule = parse("45 1 * * *", "America/New_York")
        assert schedule.next_after(utc(2026, 11, 1, 6, 30)) == utc(2026, 11, 2, 6, 45)
        assert schedule.latest_at_or_before(utc(2026, 11, 1, 6, 40)) == utc(2026, 11, 1, 5, 45)

    def test_a_wildcard_hour_follows_elapsed_time_through_fall_back(self) -> None:
        got = fires("30 * * * *", utc(2026, 11, 1, 4, 45), 4, "America/New_York")
        assert got == [
            utc(2026, 11, 1, 5, 30),
            utc(2026, 11, 1, 6, 30),
            utc(2026, 11, 1, 7, 30),
            utc(2026, 11, 1, 8, 30),
        ]

    def test_lord_howe_half_hour_shift(self) -> None:
        # Lord Howe: 2026-10-04 02:00 +10:30 -> 02:30 +11:00. 02:15 does not exist.
        got = fires("15 2 * * *", utc(2026, 10, 3, 0), 2, "Australia/Lord_Howe")
        assert got == [utc(2026, 10, 3, 15, 30), utc(2026, 10, 4, 15, 15)]

    def test_results_are_aware_and_in_utc(self) -> None:
        moment = parse("0 9 * * *", "Europe/London").next_after(utc(2026, 7, 1))
        assert moment is not None and moment.tzinfo is UTC and moment == utc(2026, 7, 1, 8)

    def test_an_unknown_zone_is_a_schedule_error(self) -> None:
        with pytest.raises(ScheduleError, match="timezone: unknown time zone 'Mars/Olympus'"):
            parse("0 0 * * *", "Mars/Olympus")

    def test_exactly_the_names_of_the_iana_database_are_zones_on_every_host(self) -> None:
        # The names IANA's own source defines (its zones and links), read from the tzdata
        # that lambdacron depends on. A host's zoneinfo directory holds more that load
        # ("localtime": the host's own zone; "posixrules", "posix/...", "right/..."), and a
        # job in one of them would fire at other times, or not load, on another runner.
        source = files("tzdata").joinpath("zoneinfo", "tzdata.zi").read_text(encoding="utf-8")
        # "Z NAME OFFSET ..." defines a zone, "L TARGET NAME" a link.
        lines = [line.split() for line in source.splitlines()]
        iana = {f[1] for f in lines if f[0] == "Z"} | {f[2] for f in lines if f[0] == "L"}
        loadable = set(iana)
        for directory in map(Path, zoneinfo.TZPATH):
            for path in directory.rglob("*") if directory.is_dir() else ():
                if path.is_file() and path.open("rb").read(4) == b"TZif":
                    loadable.add(path.relative_to(directory).as_posix())
        accepted = set()
        for name in loadable:
            try:
                parse("0 0 * * *", name)
            except ScheduleError as error:
                assert str(error).startswith(f"timezone: unknown time zone {name!r}")
            else:
                accepted.add(name)
        assert accepted == iana


class TestLatestInWindow:
    def test_the_latest_of_several_missed_occurrences(self) -> None:
        schedule = parse("*/10 * * * *")
        assert schedule.latest_in(utc(2026, 1, 1, 0, 0), utc(2026, 1, 1, 0, 35)) == utc(
            2026, 1, 1, 0, 30
        )

    def test_the_window_is_open_at_the_start_and_closed_at_the_end(self) -> None:
        schedule = parse("30 3 * * *")
        assert schedule.latest_in(utc(2026, 1, 1, 3, 30), utc(2026, 1, 1, 3, 33)) is None
        assert schedule.latest_in(utc(2026, 1, 1, 3, 23), utc(2026, 1, 1, 3, 30)) == utc(
            2026, 1, 1, 3, 30
        )

    def test_a_tick_looks_back_to_the_previous_tick(self) -> None:
        # Ticks at 03:23, 03:28, 03:33: a 03:30 job is due at 03:33.
        schedule = parse("30 3 * * *")
        ticks = [utc(2026, 1, 1, 3, 23) + timedelta(minutes=5 * i) for i in range(3)]
        due = [schedule.latest_in(a, b) for a, b in pairwise(ticks)]
        assert due == [None, utc(2026, 1, 1, 3, 30)]


class TestErrors:
    @pytest.mark.parametrize(
        ("expression", "message"),
        [
            ("75 * * * *", "minute: 75 is out of range 0-59"),
            ("0 24 * * *", "hour: 24 is out of range 0-23"),
            ("0 0 0 * *", "day-of-month: 0 is out of range 1-31"),
            ("0 0 * 13 *", "month: 13 is out of range 1-12"),
            ("0 0 * * 8", "day-of-week: 8 is out of range 0-7"),
            ("0 0 * * * 1969", "year: 1969 is out of range 1970-2199"),
            ("0 0 * FOO *", "month: 'FOO' is not a number or a month name (JAN-DEC)"),
            ("0 0 * * MONDAY", "day-of-week: 'MONDAY' is not a number or a day name (SUN-SAT)"),
            ("x * * * *", "minute: 'x' is not a number"),
            ("0 5-1 * * *", "hour: range '5-1' runs backwards (5 > 1); ranges do not wrap"),
            ("*/0 * * * *", "minute: step in '*/0' must be at least 1"),
            ("*/x * * * *", "minute: step 'x' in '*/x' is not a number"),
            ("1,,2 * * * *", "minute: empty item in list '1,,2'"),
            ("1- * * * *", "minute: '1-' is not a valid range (write A-B)"),
            ("? * * * *", "minute: '?' is only allowed in day-of-month or day-of-week"),
            ("0 0 ? * ?", "day-of-month: '?' may stand in day-of-month or day-of-week, not both"),
            ("0 0 W * ?", "day-of-month: 'W' needs a day before it, e.g. 15W or LW"),
            ("0 0 15W * MON", "day-of-month: '15W' cannot be combined with a restricted"),
            ("0 0 1-5W * ?", "day-of-month: '1-5W': 'W' takes a single day"),
            ("0 0 ? * MON#6", "day-of-week: 'MON#6': the N of DAY#N must be 1-5"),
            ("0 0 ? * L", "day-of-week: 'L': 'L' needs a single day before it"),
            ("0 0 30 2 *", "day-of-month: day 30 never occurs in FEB; this schedule never fires"),
            ("0 0 31 4,6 *", "day-of-month: day 31 never occurs in APR,JUN"),
            ("* * * *", "expected 5 fields (minute hour day-of-month month day-of-week), 6 with"),
            ("* * * * * * * *", "got 8"),
            ("", "empty schedule"),
            ("rate(5 fortnights)", "rate: 'rate(5 fortnights)' is not of the form rate(N seconds"),
            ("rate(0 minutes)", "rate: the number in 'rate(0 minutes)' must be at least 1"),
            ("at(tomorrow)", "at: 'tomorrow' is not an ISO 8601 time"),
            ("cron(0 12 * * ? *)", "without 'cron(...)'"),
        ],
    )
    def test_each_message_names_the_field_and_the_problem(
        self, expression: str, message: str
    ) -> None:
        with pytest.raises(ScheduleError) as info:
            parse(expression)
        assert message in str(info.value)

    def test_errors_are_value_errors_too(self) -> None:
        with pytest.raises(ValueError):
            parse("61 * * * *")

    def test_a_year_range_wholly_in_the_past_never_fires_and_validation_says_so(self) -> None:
        schedule = parse("0 0 1 1 * 2020-2022")
        assert schedule.next_after(utc(2026, 1, 1)) is None
        with pytest.raises(ScheduleError, match="never fires after 2026-01-01"):
            validate("0 0 1 1 * 2020-2022", "UTC", utc(2026, 1, 1))

    def test_a_past_one_time_schedule_is_still_valid(self) -> None:
        assert validate("at(2020-01-01T00:00:00)", "UTC", utc(2026, 1, 1)).one_time

    def test_parsing_is_cached_by_expression_and_zone(self) -> None:
        assert parse("0 9 * * *", "Europe/Paris") is parse("0 9 * * *", "Europe/Paris")
        assert parse("0 9 * * *", "Europe/Paris") is not parse("0 9 * * *", "Europe/Rome")
