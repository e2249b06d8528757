"""``lambdacron next``, run as a real subprocess."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from conftest import Run


def test_it_prints_the_next_fire_times_one_per_line(run_cli: Run) -> None:
    result = run_cli("next", "30 18 * * * * *", "--after", "2026-11-27T00:00:00Z", "--count", "3")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "2026-11-27T18:30:00+00:00",
        "2026-11-28T18:30:00+00:00",
        "2026-11-29T18:30:00+00:00",
    ]


def test_the_default_count_is_five(run_cli: Run) -> None:
    result = run_cli("next", "@hourly", "--after", "2026-11-27T00:00:00Z")
    assert len(result.stdout.splitlines()) == 5


def test_times_are_printed_in_the_given_zone(run_cli: Run) -> None:
    result = run_cli(
        "next",
        "0 9 * * *",
        "--tz",
        "Europe/Berlin",
        "--after",
        "2026-11-27T00:00:00+01:00",
        "--count",
        "1",
    )
    assert result.stdout == "2026-11-27T09:00:00+01:00\n"


def test_an_at_schedule_prints_its_single_time(run_cli: Run) -> None:
    result = run_cli("next", "at(2026-12-01T18:30:00)", "--after", "2026-11-27T00:00:00Z")
    assert result.stdout == "2026-12-01T18:30:00+00:00\n"


def test_a_schedule_with_no_further_fire_time_prints_no_time_and_says_so(run_cli: Run) -> None:
    result = run_cli("next", "0 0 1 1 * 2020", "--after", "2026-11-27T00:00:00Z")
    assert (result.returncode, result.stdout) == (0, "")
    assert result.stderr == (
        "lambdacron: '0 0 1 1 * 2020' has no fire time after 2026-11-27T00:00:00+00:00\n"
    )


def test_an_invalid_expression_is_one_line_on_stderr_and_exit_2(run_cli: Run) -> None:
    result = run_cli("next", "75 * * * *")
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr == "lambdacron: minute: 75 is out of range 0-59\n"


def test_a_bad_after_or_zone_is_a_usage_error(run_cli: Run) -> None:
    bad_after = run_cli("next", "@daily", "--after", "soon")
    assert bad_after.returncode == 2
    assert "--after: 'soon' is not an ISO 8601 time" in bad_after.stderr
    bad_zone = run_cli("next", "@daily", "--tz", "Nowhere/Town")
    assert bad_zone.returncode == 2
    assert bad_zone.stderr == (
        "lambdacron: --tz: unknown time zone 'Nowhere/Town'"
        " (use an IANA name such as 'Europe/Berlin')\n"
    )
    assert "Traceback" not in bad_after.stderr + bad_zone.stderr


def test_without_after_it_starts_from_now(run_cli: Run) -> None:
    before = datetime.now(UTC)
    result = run_cli("next", "* * * * *", "--count", "1")
    (line,) = result.stdout.splitlines()
    fire = datetime.fromisoformat(line)
    after = datetime.now(UTC)
    assert before < fire <= after.replace(second=0, microsecond=0) + timedelta(minutes=1)
