"""Daylight-saving changes of every size, in every zone: a brute-force oracle.

The oracle walks UTC minute by minute, reads the wall clock of the zone, matches the cron
fields against it and applies the rules of docs/schedules.md:

* minute or hour field starting with '*' (elapsed time): fire at every minute whose wall
  time matches, so on both passes of a repeated time and not at all for a skipped one;
* otherwise (a fixed time): fire when the wall clock first reaches a matching time, so on
  the first pass of a repeated time, and at the first real instant after a skipped one.
"""

from __future__ import annotations

import zoneinfo
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from functools import lru_cache
from itertools import islice

from helpers import utc
from lambdacron.schedule import parse

MINUTE = timedelta(minutes=1)
YEARS = (2025, 2027)


# --------------------------------------------------------------------------- transitions


def offset(zone: tzinfo, instant: datetime) -> timedelta:
    value = instant.astimezone(zone).utcoffset()
    assert value is not None
    return value


def transitions(zone: tzinfo) -> list[datetime]:
    """Every instant in YEARS where the zone's UTC offset changes: weekly samples, then a
    bisection to the second. No zone changes its offset there and back within a week."""
    found = []
    week = utc(YEARS[0], 1, 1)
    end = utc(YEARS[1] + 1, 1, 1)
    before = offset(zone, week)
    while week < end:
        following = week + timedelta(days=7)
        after = offset(zone, following)
        if after != before:
            low, high = int(week.timestamp()), int(following.timestamp())
            while high - low > 1:
                middle = (low + high) // 2
                if offset(zone, datetime.fromtimestamp(middle, UTC)) == before:
                    low = middle
                else:
                    high = middle
            found.append(datetime.fromtimestamp(high, UTC))
        week, before = following, after
    return found


def history(zone: tzinfo, found: list[datetime]) -> tuple[object, ...]:
    changes = ((moment, offset(zone, moment)) for moment in found)
    return (offset(zone, utc(YEARS[0], 1, 1)), *changes)


@lru_cache(maxsize=1)
def zones_with_transitions() -> dict[tuple[object, ...], tuple[str, list[datetime]]]:
    """Every tzdata zone with a transition in YEARS, one per distinct offset history.

    Evaluation depends on a zone only through its UTC offsets, so zones whose offsets are
    the same function of time over the years tested (all of the EU, say) give identical
    answers, and one of them stands for all.
    """
    chosen: dict[tuple[object, ...], tuple[str, list[datetime]]] = {}
    for name in sorted(zoneinfo.available_timezones()):
        zone = zoneinfo.ZoneInfo(name)
        found = transitions(zone)
        if not found:
            continue
        chosen.setdefault(history(zone, found), (name, found))
    return chosen


# --------------------------------------------------------------------------- the oracle


@dataclass(frozen=True)
class Case:
    expression: str
    minutes: frozenset[int]
    hours: frozenset[int]
    weekdays: frozenset[int] = frozenset(range(7))  # Monday = 0, as datetime counts

    @property
    def elapsed(self) -> bool:
        minute, hour = self.expression.split()[:2]
        return minute.startswith("*") or hour.startswith("*")

    def matches(self, wall: datetime) -> bool:
        return (
            wall.minute in self.minutes
            and wall.hour in self.hours
            and wall.weekday() in self.weekdays
        )


ALL_HOURS = frozenset(range(24))
CASES = [
    Case("0 */2 * * *", frozenset({0}), frozenset(range(0, 24, 2))),
    Case("30 * * * *", frozenset({30}), ALL_HOURS),
    Case("*/15 * * * *", frozenset({0, 15, 30, 45}), ALL_HOURS),
    Case("*/20 2 * * *", frozenset({0, 20, 40}), frozenset({2})),
    Case("0 2 * * *", frozenset({0}), frozenset({2})),
    Case("30 1 * * *", frozenset({30}), frozenset({1})),
    Case("45 3 * * *", frozenset({45}), frozenset({3})),
    # Most changes happen on a Sunday, so a day restriction meets them head on.
    Case("15,45 0-4 * * 0", frozenset({15, 45}), frozenset(range(5)), frozenset({6})),
]


Walls = list[tuple[datetime, datetime]]  # (UTC minute, naive wall time) in order
SPAN_DAYS = 8  # either side: every query's next and latest fire times of a weekly case
DAILY_SPAN_DAYS = 2  # the same for the cases that fire every day


def walls_around(zone: tzinfo, around: datetime) -> Walls:
    """Every UTC minute of the SPAN_DAYS either side of ``around``, with its wall time.

    An hour whose two ends have the same offset has it throughout (no zone changes there
    and back within an hour), so only hours holding a change are converted minute by minute.
    """
    start = around.replace(second=0, microsecond=0) - timedelta(days=SPAN_DAYS)
    walls: Walls = []
    for hour in range(2 * SPAN_DAYS * 24):
        begin = start + timedelta(hours=hour)
        steady = offset(zone, begin)
        if offset(zone, begin + timedelta(hours=1)) == steady:
            local = (begin + steady).replace(tzinfo=None)
            walls.extend((begin + MINUTE * i, local + MINUTE * i) for i in range(60))
        else:
            for i in range(60):
                moment = begin + MINUTE * i
                walls.append((moment, moment.astimezone(zone).replace(tzinfo=None)))
    return walls


def queries_around(around: datetime) -> list[datetime]:
    """Every minute of the two hours either side of a change, where the clock's jumps act,
    then every quarter of an hour out to twelve hours either side."""
    base = around.replace(second=0, microsecond=0)
    near = [base + MINUTE * i for i in range(-120, 121)]
    far = [base + MINUTE * i for i in range(-720, 721, 15) if abs(i) > 120]
    return sorted(near + far)


def oracle_fires(case: Case, walls: Walls) -> list[datetime]:
    """Fire instants among ``walls``, minute by minute."""
    fires = []
    elapsed, matches = case.elapsed, case.matches
    reached = walls[0][1] - MINUTE  # the highest wall time shown so far
    for moment, wall in walls:
        if elapsed or wall - reached == MINUTE:
            # Every time the clock shows a matching time; or, for a fixed time, the common
            # step to a wall time the clock has not shown before.
            if matches(wall):
                fires.append(moment)
        elif wall > reached:
            # A forward jump: every matching wall time it skipped fires now, once.
            probe = reached + MINUTE
            while probe <= wall:
                if matches(probe):
                    fires.append(moment)
                    break
                probe += MINUTE
        if wall > reached:
            reached = wall
    return fires


def disagreements(case: Case, name: str, walls: Walls, around: datetime) -> list[str]:
    """Compare next_after and latest_at_or_before with the oracle around ``around``."""
    if case.weekdays == frozenset(range(7)):
        trim = (SPAN_DAYS - DAILY_SPAN_DAYS) * 24 * 60
        walls = walls[trim:-trim]
    fires = oracle_fires(case, walls)
    schedule = parse(case.expression, name)
    problems = []
    index = 0  # fires[index] is the first fire time after the query
    for query in queries_around(around):
        while fires[index] <= query:
            index += 1
        assert index > 0, "the oracle's span must hold a fire time before every query"
        expected_next, expected_latest = fires[index], fires[index - 1]
        got_next = schedule.next_after(query)
        got_latest = schedule.latest_at_or_before(query)
        if got_next != expected_next or got_latest != expected_latest:
            problems.append(
                f"{case.expression!r} in {name} at {query:%Y-%m-%dT%H:%MZ}: next {got_next}"
                f" (oracle {expected_next}), latest {got_latest} (oracle {expected_latest})"
            )
    return problems


# --------------------------------------------------------------------------- the sweep


def test_every_zone_with_a_change_agrees_with_the_oracle_around_each_change() -> None:
    covered = zones_with_transitions()
    # The 30-minute shift of Lord Howe, the 12:45/13:45 offsets of Chatham, and the zones
    # that change at midnight (Cairo) or at 24:00 (Santiago) are all among them.
    for name in ("Australia/Lord_Howe", "Pacific/Chatham", "Africa/Cairo", "America/Santiago"):
        zone = zoneinfo.ZoneInfo(name)
        assert history(zone, transitions(zone)) in covered, name
    assert len(covered) > 20
    problems: list[str] = []
    for name, found in zones_with_transitions().values():
        zone = zoneinfo.ZoneInfo(name)
        for moment in found:
            walls = walls_around(zone, moment)
            for case in CASES:
                problems.extend(disagreements(case, name, walls, moment))
    assert not problems, f"{len(problems)} disagreements, first: " + "\n".join(problems[:10])


# --------------------------------------------------------------------------- named cases


def fires(expression: str, zone: str, after: datetime, count: int = 3) -> list[datetime]:
    return list(islice(parse(expression, zone).iter_after(after), count))


def test_every_two_hours_in_lord_howe_fires_at_2_after_the_half_hour_fall_back() -> None:
    # 2026-04-05 02:00 +11:00 -> 01:30 +10:30 (15:00 UTC). 02:00 +10:30 is 15:30 UTC.
    schedule = parse("0 */2 * * *", "Australia/Lord_Howe")
    assert fires("0 */2 * * *", "Australia/Lord_Howe", utc(2026, 4, 4, 13, 0), 2) == [
        utc(2026, 4, 4, 15, 30),
        utc(2026, 4, 4, 17, 30),
    ]
    assert schedule.latest_at_or_before(utc(2026, 4, 4, 16, 0)) == utc(2026, 4, 4, 15, 30)


def test_half_past_every_hour_in_lord_howe_fires_on_both_passes_of_1_30() -> None:
    # 01:30 +11:00 is 14:30 UTC; the clock then shows 01:30 again at +10:30, 15:00 UTC.
    assert fires("30 * * * *", "Australia/Lord_Howe", utc(2026, 4, 4, 14, 0), 3) == [
        utc(2026, 4, 4, 14, 30),
        utc(2026, 4, 4, 15, 0),
        utc(2026, 4, 4, 16, 0),
    ]


def test_half_past_every_hour_in_lord_howe_fires_at_2_30_when_the_clock_jumps_to_it() -> None:
    # 2026-10-04 02:00 +10:30 -> 02:30 +11:00 (15:30 UTC): 02:30 is shown, at 15:30 UTC.
    schedule = parse("30 * * * *", "Australia/Lord_Howe")
    assert fires("30 * * * *", "Australia/Lord_Howe", utc(2026, 10, 3, 14, 0), 3) == [
        utc(2026, 10, 3, 15, 0),
        utc(2026, 10, 3, 15, 30),
        utc(2026, 10, 3, 16, 30),
    ]
    assert schedule.latest_at_or_before(utc(2026, 10, 3, 16, 0)) == utc(2026, 10, 3, 15, 30)


def test_every_two_hours_in_chatham_fires_at_4_after_the_spring_forward() -> None:
    # 2026-09-27 02:45 +12:45 -> 03:45 +13:45. 03:50 +13:45 is 14:05 UTC; 04:00 is 14:15.
    schedule = parse("0 */2 * * *", "Pacific/Chatham")
    assert schedule.next_after(utc(2026, 9, 26, 14, 5)) == utc(2026, 9, 26, 14, 15)
    assert schedule.latest_at_or_before(utc(2026, 9, 26, 14, 20)) == utc(2026, 9, 26, 14, 15)


def test_the_latest_time_in_chatham_after_the_fall_back_is_found() -> None:
    # The catch-up of a tick at 2026-04-04T13:30Z (03:15 +13:45, before the 03:45 change):
    # the last even hour was 02:00 +13:45, 12:15 UTC.
    schedule = parse("0 */2 * * *", "Pacific/Chatham")
    assert schedule.latest_in(utc(2026, 4, 4, 11, 0), utc(2026, 4, 4, 13, 30)) == utc(
        2026, 4, 4, 12, 15
    )
