"""Property tests: lambdacron's schedules against independent evaluators."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from croniter import croniter
from cronsim import CronSim
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lambdacron.schedule import parse

DST_ZONES = ["America/New_York", "Europe/London", "Australia/Lord_Howe"]
# cronsim misplaces fire times around the 30-minute shifts of Lord Howe (docs/schedules.md
# states the rules; test_schedule_dst.py checks them in every zone against an oracle), so it
# is a reference only where clocks move by whole hours.
WHOLE_HOUR_DST_ZONES = ["America/New_York", "Europe/London"]


def _term(low: int, high: int, allow_star_step: bool = True) -> st.SearchStrategy[str]:
    value = st.integers(low, high)
    single = value.map(str)
    # croniter 7 reads a one-value range such as "0-0" in day-of-week as "*", so ranges
    # here always span at least two values; single values cover the rest.
    pair = st.tuples(value, value).filter(lambda p: p[0] != p[1])
    rng = pair.map(lambda p: f"{min(p)}-{max(p)}")
    stepped = st.tuples(pair, st.integers(1, max(1, high - low))).map(
        lambda p: f"{min(p[0])}-{max(p[0])}/{p[1]}"
    )
    options = [single, rng, stepped]
    if allow_star_step:
        options.append(st.integers(1, high - low + 1).map(lambda s: f"*/{s}"))
    return st.one_of(*options)


def _field(low: int, high: int, allow_star_step: bool = True) -> st.SearchStrategy[str]:
    listed = st.lists(_term(low, high, allow_star_step), min_size=1, max_size=3).map(",".join)
    return st.one_of(st.just("*"), listed)


# Day fields never start with "*/": croniter reads "*/2" in a day field as a restriction
# (OR with the other day field) where Debian cron reads it as unrestricted (AND).
expressions = st.tuples(
    _field(0, 59),
    _field(0, 23),
    _field(1, 28, allow_star_step=False),
    _field(1, 12),
    _field(0, 6, allow_star_step=False),
).map(" ".join)

starts = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2060, 12, 31), timezones=st.just(UTC)
)
PROFILE = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROFILE
@given(expressions, starts)
def test_next_matches_croniter_in_utc(expression: str, start: datetime) -> None:
    ours = parse(expression).next_after(start)
    theirs = croniter(expression, start).get_next(datetime)
    assert ours == theirs


@PROFILE
@given(expressions, starts, st.sampled_from(WHOLE_HOUR_DST_ZONES))
def test_next_matches_cronsim_in_zones_with_whole_hour_dst(
    expression: str, start: datetime, zone: str
) -> None:
    ours = parse(expression, zone).next_after(start)
    cursor = start.astimezone(ZoneInfo(zone))
    theirs = next(CronSim(expression, cursor)).astimezone(UTC)
    while theirs <= start:  # cronsim may return the first pass of a repeated hour
        cursor = next(CronSim(expression, cursor))
        theirs = next(CronSim(expression, cursor)).astimezone(UTC)
    assert ours == theirs


@PROFILE
@given(expressions, starts, st.sampled_from(["UTC", *DST_ZONES]))
def test_latest_and_next_bracket_every_moment(expression: str, moment: datetime, zone: str) -> None:
    schedule = parse(expression, zone)
    latest = schedule.latest_at_or_before(moment)
    assert latest is not None and latest <= moment
    following = schedule.next_after(latest)
    assert following is not None and following > moment


@PROFILE
@given(expressions, starts, st.sets(st.integers(2000, 2070), min_size=1, max_size=4))
def test_the_year_field_keeps_exactly_the_fire_times_in_those_years(
    expression: str, start: datetime, years: set[int]
) -> None:
    with_year = parse(f"{expression} {','.join(map(str, sorted(years)))}")
    plain = parse(expression)
    got = with_year.next_after(start)
    # Oracle: walk the plain schedule year by year to the first fire time in a chosen year.
    expected = None
    for year in sorted(y for y in years if y >= start.year):
        probe = max(start, datetime(year, 1, 1, tzinfo=UTC) - timedelta(seconds=1))
        candidate = plain.next_after(probe)
        if candidate is not None and candidate.year == year:
            expected = candidate
            break
    assert got == expected


@PROFILE
@given(st.integers(1, 1440), starts)
def test_rate_fires_on_epoch_multiples_and_nothing_between(minutes: int, start: datetime) -> None:
    schedule = parse(f"rate({minutes} minutes)")
    got = schedule.next_after(start)
    assert got is not None
    assert int(got.timestamp()) % (minutes * 60) == 0
    assert start < got <= start + timedelta(minutes=minutes)


@PROFILE
@given(st.integers(1, 100_000), starts, st.integers(0, 999_999))
def test_rate_in_seconds_agrees_with_integer_arithmetic(
    seconds: int, start: datetime, micro: int
) -> None:
    start = start.replace(microsecond=micro)
    schedule = parse(f"rate({seconds} seconds)")
    whole = (start - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(seconds=1)
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    assert schedule.next_after(start) == epoch + timedelta(seconds=(whole // seconds + 1) * seconds)
    assert schedule.latest_at_or_before(start) == epoch + timedelta(
        seconds=whole // seconds * seconds
    )
