"""Field terms mean what they say: A-B/S, A/S, */S, single-value ranges, names and lists,
against a brute-force oracle with its own reading of the terms."""

from __future__ import annotations

import calendar
from datetime import UTC, date, datetime, timedelta
from itertools import islice

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helpers import utc
from lambdacron.errors import ScheduleError
from lambdacron.schedule import parse

MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
DAYS = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")


def fires(expression: str, after: datetime, count: int) -> list[datetime]:
    return list(islice(parse(expression).iter_after(after), count))


class TestSingleValueRanges:
    def test_a_minute_range_of_one_value_with_a_step_is_that_minute(self) -> None:
        assert fires("10-10/2 5 * * *", utc(2026, 1, 1), 3) == [
            utc(2026, 1, 1, 5, 10),
            utc(2026, 1, 2, 5, 10),
            utc(2026, 1, 3, 5, 10),
        ]

    def test_a_day_name_range_of_one_day_with_a_step_is_that_day(self) -> None:
        got = fires("0 5 * * MON-MON/2", utc(2026, 1, 1), 3)
        assert got == [utc(2026, 1, 5, 5), utc(2026, 1, 12, 5), utc(2026, 1, 19, 5)]

    def test_a_month_name_range_of_one_month_with_a_step_is_that_month(self) -> None:
        got = fires("0 5 1 JAN-JAN/6 *", utc(2026, 1, 1), 3)
        assert got == [utc(2026, 1, 1, 5), utc(2027, 1, 1, 5), utc(2028, 1, 1, 5)]

    def test_the_latest_time_reads_the_range_the_same_way(self) -> None:
        assert parse("10-10/2 5 * * *").latest_at_or_before(utc(2026, 1, 1, 5, 59)) == utc(
            2026, 1, 1, 5, 10
        )


# --------------------------------------------------------------------------- the oracle


def expand(term: str, low: int, high: int, names: tuple[str, ...] = (), base: int = 0) -> set[int]:
    """The values of one term, read as Debian cron and docs/schedules.md read it."""

    def value(text: str) -> int:
        upper = text.upper()
        return names.index(upper) + base if upper in names else int(text)

    span, slash, step = term.partition("/")
    if span == "*":
        first, last = low, high
    elif "-" in span:
        first, last = (value(part) for part in span.split("-"))
    else:
        first = value(span)
        last = high if slash else first
    return set(range(first, last + 1, int(step) if slash else 1))


def values(field: str, low: int, high: int, names: tuple[str, ...] = (), base: int = 0) -> set[int]:
    return set().union(*(expand(term, low, high, names, base) for term in field.split(",")))


class Oracle:
    def __init__(self, expression: str) -> None:
        minute, hour, dom, month, dow = expression.split()
        self.times = sorted((h, m) for h in values(hour, 0, 23) for m in values(minute, 0, 59))
        self.doms = values(dom, 1, 31)
        self.months = values(month, 1, 12, MONTHS, 1)
        self.dows = {d % 7 for d in values(dow, 0, 7, DAYS)}
        self.both = dom.startswith("*") or dow.startswith("*")

    def day_fires(self, day: date) -> bool:
        if day.month not in self.months:
            return False
        by_date, by_weekday = day.day in self.doms, day.isoweekday() % 7 in self.dows
        return (by_date and by_weekday) if self.both else (by_date or by_weekday)

    def next_after(self, moment: datetime) -> datetime:
        day = moment.date()
        for _ in range(6000):  # some schedules fire once in eleven years
            if self.day_fires(day):
                for h, m in self.times:
                    found = datetime(day.year, day.month, day.day, h, m, tzinfo=UTC)
                    if found > moment:
                        return found
            day += timedelta(days=1)
        raise AssertionError("the oracle found nothing")

    def latest_at_or_before(self, moment: datetime) -> datetime:
        day = moment.date()
        for _ in range(6000):
            if self.day_fires(day):
                for h, m in reversed(self.times):
                    found = datetime(day.year, day.month, day.day, h, m, tzinfo=UTC)
                    if found <= moment:
                        return found
            day -= timedelta(days=1)
        raise AssertionError("the oracle found nothing")


@st.composite
def term(draw: st.DrawFn, low: int, high: int, names: tuple[str, ...] = (), base: int = 0) -> str:
    def as_text(number: int) -> str:
        if 0 <= number - base < len(names) and draw(st.booleans()):
            name = names[number - base]
            return name if draw(st.booleans()) else name.lower()
        return str(number)

    first = draw(st.integers(low, high))
    last = draw(st.integers(first, high))  # single-value ranges included
    step = draw(st.integers(1, high - low + 1))
    kind = draw(st.sampled_from(["A", "A-B", "A-B/S", "A/S", "*/S"]))
    if kind == "A":
        return as_text(first)
    if kind == "A-B":
        return f"{as_text(first)}-{as_text(last)}"
    if kind == "A-B/S":
        return f"{as_text(first)}-{as_text(last)}/{step}"
    if kind == "A/S":
        return f"{as_text(first)}/{step}"
    return f"*/{step}"


def field(
    low: int, high: int, names: tuple[str, ...] = (), base: int = 0
) -> st.SearchStrategy[str]:
    listed = st.lists(term(low, high, names, base), min_size=1, max_size=3).map(",".join)
    return st.one_of(st.just("*"), listed)


expressions = st.tuples(
    field(0, 59),
    field(0, 23),
    field(1, 28),  # every day here occurs in every month, so each expression fires
    field(1, 12, MONTHS, 1),
    field(0, 7, DAYS, 0),
).map(" ".join)
starts = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2060, 12, 31), timezones=st.just(UTC)
)
PROFILE = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROFILE
@given(expressions, starts)
def test_next_after_matches_the_oracle_for_every_kind_of_term(
    expression: str, start: datetime
) -> None:
    assert parse(expression).next_after(start) == Oracle(expression).next_after(start)


@PROFILE
@given(expressions, starts)
def test_latest_at_or_before_matches_the_oracle_for_every_kind_of_term(
    expression: str, moment: datetime
) -> None:
    assert parse(expression).latest_at_or_before(moment) == Oracle(expression).latest_at_or_before(
        moment
    )


# --------------------------------------------------------------------------- NW


def month_field(months: list[int]) -> str:
    return ",".join(MONTHS[m - 1] if m % 2 else str(m) for m in months)


@settings(max_examples=200, deadline=None)
@given(
    st.integers(1, 31),
    st.one_of(
        field(0, 7, DAYS, 0).filter(lambda text: text != "*"),
        # Restricted although they start with '*', which elsewhere only picks AND or OR.
        st.integers(1, 7).map(lambda step: f"*/{step}"),
        field(0, 7, DAYS, 0).map(lambda text: f"*,{text}"),
    ),
)
def test_a_nearest_weekday_refuses_any_day_of_week_but_star_or_question_mark(
    day: int, day_of_week: str
) -> None:
    # docs/schedules.md: NW "needs ? or * in day-of-week".
    with pytest.raises(ScheduleError) as info:
        parse(f"0 0 {day}W * {day_of_week}")
    assert str(info.value).startswith(f"day-of-month: '{day}W' cannot be combined with a")


@settings(max_examples=200, deadline=None)
@given(
    st.one_of(st.integers(29, 31), st.integers(1, 31)),
    # Months shorter than 31 days half of the time, so that both outcomes come up often.
    st.lists(
        st.one_of(st.sampled_from([2, 4, 6, 9, 11]), st.integers(1, 12)),
        min_size=1,
        max_size=4,
        unique=True,
    ),
    st.sampled_from(["*", "?"]),
)
def test_a_nearest_weekday_of_a_day_no_month_holds_is_refused_like_a_plain_day(
    day: int, months: list[int], day_of_week: str
) -> None:
    # "An expression that can never fire is refused: statically where the fields say so."
    longest = max(calendar.monthrange(2000, month)[1] for month in months)  # 2000: a leap year
    expression = f"0 0 {day}W {month_field(months)} {day_of_week}"
    if day > longest:
        names = ",".join(MONTHS[m - 1] for m in sorted(months))
        with pytest.raises(ScheduleError) as info:
            parse(expression)
        assert str(info.value) == (
            f"day-of-month: day {day} never occurs in {names}; this schedule never fires"
        )
    else:
        assert parse(expression).next_after(utc(1999, 12, 31)) is not None


# --------------------------------------------------------------------------- years


def fires_in(expression5: str, year: int) -> bool:
    """Whether a 5-field expression fires on some day of ``year``, by this file's own
    day-by-day reading of the fields (cronsim is no oracle here: before 2.8 it refused a
    day no month holds even where the day-of-week field lets the expression fire)."""
    oracle = Oracle(expression5)
    first = date(year, 1, 1)
    return any(
        oracle.day_fires(first + timedelta(days=n))
        for n in range(366 if calendar.isleap(year) else 365)
    )


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(["*", "1", "13", "29", "30", "31", "28-31", "29,31"]),
    st.sampled_from(["*", "2", "FEB", "2,4", "4,6,9,11", "JAN-MAR", "FEB/12"]),
    st.sampled_from(["*", "MON", "FRI", "MON-FRI", "SUN,SAT"]),
    st.lists(st.integers(1970, 2199), min_size=1, max_size=3, unique=True),
)
def test_years_that_hold_no_day_the_fields_name_are_refused_and_only_those(
    day: str, month: str, weekday: str, years: list[int]
) -> None:
    # "An expression that can never fire is refused: statically where the fields say so";
    # a year field is one of the fields (29 February in 2027 never comes).
    five = f"0 0 {day} {month} {weekday}"
    expression = f"{five} {','.join(map(str, years))}"
    if any(fires_in(five, year) for year in years):
        assert parse(expression).next_after(utc(1969, 12, 30)) is not None
    else:
        with pytest.raises(ScheduleError) as info:
            parse(expression)
        assert str(info.value).endswith("this schedule never fires")


def test_a_29_february_in_a_year_that_has_none_names_the_year_field() -> None:
    with pytest.raises(ScheduleError) as info:
        parse("0 0 29 2 * 2027")
    assert str(info.value) == (
        "year: no day of '2027' matches the other fields; this schedule never fires"
    )
    assert parse("0 0 29 2 * 2027,2028").next_after(utc(2026, 1, 1)) == utc(2028, 2, 29)
    # Years that did hold the day and are past are expired, not a mistake in the fields.
    assert parse("0 0 29 2 * 2020").next_after(utc(2026, 1, 1)) is None
