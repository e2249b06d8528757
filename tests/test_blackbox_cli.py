"""lambdacron judged from the outside: the installed command against README and docs.

Every check drives the real ``lambdacron`` executable in a subprocess on a real store, and
compares what it did with an oracle computed here from ``zoneinfo`` alone, walking the clock
minute by minute. lambdacron is never imported: a shared helper could share a bug.

The oracle states docs/schedules.md's two daylight-saving rules directly:

- elapsed time (minute or hour field starts with ``*``): fire at every minute whose shown
  wall time matches;
- fixed time: fire when the clock first reaches a matching wall time, that is, at the minute
  where the highest wall time shown so far passes it (a skipped time is passed at the first
  instant after its gap, a repeated one was passed on its first pass).

and the runner's: a tick at ``now`` runs the latest occurrence in ``(since, now]`` not yet
run, where ``since`` is when the job was placed or its schedule last changed.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

LAMBDACRON = shutil.which("lambdacron", path=str(Path(sys.executable).parent)) or "lambdacron"
MINUTE = 60
HOUR = 3600
DAY = 86400

FAST = settings(
    max_examples=10,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# --------------------------------------------------------------------------- the command


def cli(*args: str, rc: int | None = 0) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LAMBDACRON_")}
    proc = subprocess.run([LAMBDACRON, *args], capture_output=True, text=True, timeout=120, env=env)
    assert "Traceback" not in proc.stdout + proc.stderr, proc.stderr
    if rc is not None:
        assert proc.returncode == rc, (args, proc.stdout, proc.stderr)
    return proc


def iso(instant: float) -> str:
    return datetime.fromtimestamp(instant, UTC).isoformat().replace("+00:00", "Z")


def instant_of(text: str) -> float:
    moment = datetime.fromisoformat(text)
    assert moment.tzinfo is not None, text
    return moment.timestamp()


def epoch(*fields: int) -> int:
    return int(datetime(*fields, tzinfo=UTC).timestamp())  # type: ignore[misc]


# --------------------------------------------------------------------------- the oracle


def wall(instant: float, zone: str) -> datetime:
    """What a clock in ``zone`` shows at ``instant`` (naive)."""
    return datetime.fromtimestamp(instant, ZoneInfo(zone)).replace(tzinfo=None)


NICKNAMES = {
    "@hourly": "0 * * * *",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@weekly": "0 0 * * 0",
    "@monthly": "0 0 1 * *",
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
}


def _values(text: str, low: int, high: int) -> frozenset[int]:
    values: set[int] = set()
    for item in text.split(","):
        span, _, step_text = item.partition("/")
        step = int(step_text) if step_text else 1
        if span in ("*", "?"):
            first, last = low, high
        elif "-" in span:
            first, last = (int(part) for part in span.split("-"))
        else:
            first = int(span)
            last = high if step_text else first
        values.update(range(first, last + 1, step))
    return frozenset(values)


@dataclass(frozen=True)
class Cron:
    """The numeric subset of cron, read as docs/schedules.md describes it."""

    minute: frozenset[int]
    hour: frozenset[int]
    day: frozenset[int]
    month: frozenset[int]
    weekday: frozenset[int]
    either_day: bool  # both day fields restricted: Debian cron fires on either
    elapsed: bool

    @classmethod
    def parse(cls, expression: str) -> Cron:
        fields = NICKNAMES.get(expression, expression).split()
        minute, hour, day, month, weekday = fields
        return cls(
            _values(minute, 0, 59),
            _values(hour, 0, 23),
            _values(day, 1, 31),
            _values(month, 1, 12),
            frozenset(value % 7 for value in _values(weekday, 0, 7)),
            not day.startswith(("*", "?")) and not weekday.startswith(("*", "?")),
            minute.startswith("*") or hour.startswith("*"),
        )

    def matches(self, shown: datetime) -> bool:
        if shown.minute not in self.minute or shown.hour not in self.hour:
            return False
        if shown.month not in self.month:
            return False
        on_day = shown.day in self.day
        on_weekday = (shown.weekday() + 1) % 7 in self.weekday
        return on_day or on_weekday if self.either_day else on_day and on_weekday


def fires(
    expression: str, zone: str, after: float, until: float, count: int | None = None
) -> list[int]:
    """The fire instants in ``(after, until]``, by walking the clock a minute at a time."""
    cron = Cron.parse(expression)
    first = (int(after) // MINUTE + 1) * MINUTE
    # Two days of warm-up put the high-water mark of the clock past any fold before `after`.
    instant = first - 2 * DAY
    highest = wall(instant - MINUTE, zone)
    found: list[int] = []
    while instant <= until:
        shown = wall(instant, zone)
        if cron.elapsed:
            hit = cron.matches(shown)
        else:
            hit = False
            probe = highest
            while probe < shown and not hit:
                probe += timedelta(minutes=1)
                hit = cron.matches(probe)
            highest = max(highest, shown)
        if hit and instant > after:
            found.append(instant)
            if count is not None and len(found) == count:
                break
        instant += MINUTE
    return found


def latest(expression: str, zone: str, since: float, now: float) -> int | None:
    window = fires(expression, zone, since, now)
    return window[-1] if window else None


def first_reached(shown: datetime, zone: str) -> float:
    """The first instant a clock in ``zone`` shows ``shown`` or later: an existing time's
    first pass, or the first instant after the gap that skipped it."""
    instant = int((shown.replace(tzinfo=UTC) - timedelta(days=1)).timestamp()) // MINUTE * MINUTE
    while True:
        here = wall(instant, zone)
        if here >= shown:
            return instant
        if here + timedelta(minutes=1) > shown:
            return instant + (shown - here).total_seconds()
        instant += MINUTE


@cache
def changes(zone: str, year: int) -> tuple[int, ...]:
    """Instants in ``year`` at which ``zone`` changes its UTC offset."""

    def offset(instant: int) -> timedelta | None:
        return datetime.fromtimestamp(instant, ZoneInfo(zone)).utcoffset()

    found = []
    start, end = epoch(year, 1, 1), epoch(year + 1, 1, 1)
    before = offset(start)
    for instant in range(start + HOUR, end + 1, HOUR):
        now = offset(instant)
        if now != before:
            low, high = instant - HOUR, instant
            while high - low > 1:
                middle = (low + high) // 2
                low, high = (middle, high) if offset(middle) == before else (low, middle)
            found.append(high)
        before = now
    return tuple(found)


# Zones with a change in these years, and what each brings: 30- and 45-minute offsets and
# shifts, southern DST, a whole skipped day, a backward link.
CHANGING = {
    "Australia/Lord_Howe": (2026, 2027),
    "Pacific/Chatham": (2026, 2027),
    "America/Santiago": (2026, 2027),
    "Australia/Sydney": (2027,),
    "Pacific/Apia": (2011,),
    "US/Pacific": (2027,),
    "Europe/Berlin": (2027,),
}
# Zones without a change: half-hour and 45-minute offsets, the inverted sign of Etc/GMT+5.
STEADY = ("Asia/Kolkata", "Asia/Kathmandu", "Etc/GMT+5", "Etc/GMT-14")


@st.composite
def moments(draw: st.DrawFn) -> tuple[str, int]:
    """A zone and an instant to test around: one of its offset changes, or any minute."""
    zone = draw(st.sampled_from(sorted(CHANGING) + list(STEADY)))
    if zone in CHANGING:
        year = draw(st.sampled_from(CHANGING[zone]))
        return zone, draw(st.sampled_from(changes(zone, year)))
    return zone, epoch(2027, 1, 1) + draw(st.integers(0, 364 * 1440)) * MINUTE


@st.composite
def expressions(draw: st.DrawFn, zone: str, instant: int) -> str:
    """Cron expressions whose fire times crowd the clock's change at ``instant``."""
    if draw(st.integers(0, 9)) == 0:
        return draw(st.sampled_from(["@hourly", "@daily", "0-59 0-23 * * *", "* * * * *"]))
    near = sorted({wall(instant + delta, zone).hour for delta in (-HOUR, -1, 0, HOUR)})
    minute_value = st.sampled_from([0, 1, 14, 15, 29, 30, 44, 45, 59]) | st.integers(0, 59)
    hour_value = st.sampled_from(near)

    def spread(values: st.SearchStrategy[int], step_max: int) -> str:
        kind = draw(st.sampled_from(["*", "*/S", "A", "A,B", "A-B", "A-B/S", "A/S"]))
        a, b = sorted((draw(values), draw(values)))
        step = draw(st.integers(1, step_max))
        return {
            "*": "*",
            "*/S": f"*/{step}",
            "A": f"{a}",
            "A,B": f"{a},{b}" if a != b else f"{a}",
            "A-B": f"{a}-{b}",
            "A-B/S": f"{a}-{b}/{step}",
            "A/S": f"{a}/{step}",
        }[kind]

    minute = spread(minute_value, 30)
    hour = spread(hour_value, 12)
    weekday = "*"
    if draw(st.integers(0, 4)) == 0:
        local = wall(instant, zone)
        weekday = str((local.weekday() + 1 + draw(st.integers(-1, 1))) % 7)
    return f"{minute} {hour} * * {weekday}"


# --------------------------------------------------------------------------- the store

LOGGER = 'printf "%s %s %s\\n" "$LAMBDACRON_JOB" "$LAMBDACRON_SCHEDULED_TIME" "$2" >> "$1"'


@dataclass
class Store:
    """A store directory whose jobs each append `KEY OCCURRENCE MARK` to one log."""

    home: Path
    read: int = 0
    root: Path = field(init=False)
    log: Path = field(init=False)

    def __post_init__(self) -> None:
        self.root = self.home / "jobs"
        self.root.mkdir()
        self.log = self.home / "runs.log"
        self.log.touch()

    def job(self, when: str, zone: str | None = None, mark: str = "-", **extra: Any) -> Any:
        document: dict[str, Any] = {"when": when}
        if zone is not None:
            document["timezone"] = zone
        command = ["sh", "-c", LOGGER, "sh", str(self.log), mark]
        document["run"] = {"type": "command", "details": {"command": command}}
        document.update(extra)
        return document

    def put(self, key: str, document: Any, placed: float) -> Path:
        path = self.root / key
        path.write_text(json.dumps(document, ensure_ascii=False))
        os.utime(path, (placed, placed))
        return path

    def tick(self, now: float, *more: str) -> subprocess.CompletedProcess[str]:
        return cli("tick", "--store", str(self.root), "--now", iso(now), "--allow-future", *more)

    def runs(self) -> list[tuple[str, float, str]]:
        """The runs logged since the last call, as (key, occurrence, mark)."""
        text = self.log.read_text()
        new, self.read = text[self.read :], len(text)
        found = []
        for line in new.splitlines():
            key, occurrence, mark = line.split(" ")
            found.append((key, instant_of(occurrence), mark))
        return sorted(found)

    def doc(self, key: str) -> Any:
        return json.loads((self.root / key).read_text())


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path)


@contextmanager
def fresh_store() -> Iterator[Store]:
    """A store per hypothesis example (function-scoped fixtures are shared by examples)."""
    with tempfile.TemporaryDirectory() as home:
        yield Store(Path(home))


def expect_ticks(
    store: Store, jobs: dict[str, tuple[str, str]], last: dict[str, float], ticks: list[float]
) -> None:
    """Tick at each time and check each job ran exactly the latest occurrence of its window.

    ``last`` holds where each job's window starts (when it was placed, then the occurrence
    it last ran for), and is updated as the ticks go.
    """
    for now in ticks:
        store.tick(now)
        expected = []
        for key, (when, zone) in jobs.items():
            occurrence = latest(when, zone, last[key], now)
            if occurrence is not None:
                expected.append((key, float(occurrence), "-"))
                last[key] = occurrence
        assert store.runs() == sorted(expected), (iso(now), jobs)
    return last


# --------------------------------------------------------------------------- time zones


class TestNextAgainstTheClock:
    """`lambdacron next` lists what the documented rules give, in any zone, at any change."""

    @pytest.mark.parametrize(
        ("when", "zone", "after", "expected"),
        [
            # Each example of docs/schedules.md, with the UTC instants it states or implies.
            ("30 * * * *", "America/New_York", "2026-11-01T05:00Z", ["05:30", "06:30"]),
            ("30 * * * *", "Australia/Lord_Howe", "2026-04-04T14:00Z", ["14:30", "15:00"]),
            ("30 * * * *", "Australia/Lord_Howe", "2026-10-03T15:00Z", ["15:30", "16:30"]),
            ("0 */2 * * *", "Australia/Lord_Howe", "2026-04-04T13:00Z", ["15:30"]),
            ("0 */2 * * *", "Pacific/Chatham", "2026-09-26T13:00Z", ["13:15", "14:15"]),
            ("30 2 * * *", "Europe/Berlin", "2027-03-27T12:00Z", ["28T01:00"]),
            ("30 2 * * *", "Europe/Berlin", "2026-10-24T12:00Z", ["25T00:30", "26T01:30"]),
            ("15 2 * * *", "Australia/Lord_Howe", "2026-10-03T12:00Z", ["15:30"]),
        ],
    )
    def test_the_documented_examples(
        self, when: str, zone: str, after: str, expected: list[str]
    ) -> None:
        printed = cli("next", when, "--tz", zone, "--after", after, "--count", "2").stdout
        got = [instant_of(line) for line in printed.split()][: len(expected)]
        # Each expected time is on the day of `after` unless it names its day.
        month = after[: len("2026-11-")]
        day = after[len(month) : len(month) + 2]
        wanted = [
            instant_of(f"{month}{text if 'T' in text else day + 'T' + text}:00Z")
            for text in expected
        ]
        assert got == wanted
        # The oracle reads the rules the same way, so its verdicts below mean something.
        start = instant_of(after)
        assert fires(when, zone, start, start + 3 * DAY, count=len(expected)) == wanted

    def test_etc_gmt_plus_five_is_five_hours_behind_utc(self) -> None:
        printed = cli("next", "0 12 * * *", "--tz", "Etc/GMT+5", "--after", "2027-01-01T00:00Z")
        assert printed.stdout.split()[0] == "2027-01-01T12:00:00-05:00"

    def test_a_backward_link_fires_as_its_zone(self) -> None:
        for when in ("30 2 * * *", "*/20 1-3 * * *", "30 1 * * *"):
            after = ("--after", "2027-03-13T12:00Z", "--count", "12")
            link = cli("next", when, "--tz", "US/Pacific", *after).stdout
            assert link == cli("next", when, "--tz", "America/Los_Angeles", *after).stdout
            after = ("--after", "2027-11-06T12:00Z", "--count", "12")
            link = cli("next", when, "--tz", "US/Pacific", *after).stdout
            assert link == cli("next", when, "--tz", "America/Los_Angeles", *after).stdout

    @settings(FAST, max_examples=40)
    @given(data=st.data())
    def test_next_fires_by_the_rules_around_every_change(self, data: st.DataObject) -> None:
        zone, instant = data.draw(moments())
        when = data.draw(expressions(zone, instant))
        after = instant - data.draw(st.integers(0, 3 * HOUR))
        printed = cli("next", when, "--tz", zone, "--after", iso(after), "--count", "4")
        got = [datetime.fromisoformat(line) for line in printed.stdout.split()]
        assert [moment.timestamp() for moment in got] == fires(
            when, zone, after, after + 40 * DAY, count=4
        )
        for moment in got:  # printed in the zone, with the offset it has then
            assert (
                moment.utcoffset()
                == datetime.fromtimestamp(moment.timestamp(), ZoneInfo(zone)).utcoffset()
            )


# The jobs of a minute-by-minute walk: each rule, with times in and around a change.
BATTERY = (
    "* * * * *",
    "*/15 * * * *",
    "0,30 * * * *",
    "45 * * * *",
    "30 */2 * * *",
    "0 */2 * * *",
    "0-59 0-23 * * *",
    "15 2 * * *",
    "0,15,45 2 * * *",
    "30 1 * * *",
    "45 1 * * *",
    "35 2 * * *",
    "0 0 * * *",
    "30 23 * * *",
)


def walk_minute_by_minute(store: Store, zone: str, change: int, reach: int) -> None:
    jobs = {f"j{number:02}.json": (when, zone) for number, when in enumerate(BATTERY)}
    placed = change - reach - HOUR
    for key, (when, _) in jobs.items():
        store.put(key, store.job(when, zone), placed)
    ticks = [float(change + minute * MINUTE) for minute in range(-reach // 60, reach // 60 + 1)]
    last = {key: float(placed) for key in jobs}
    expect_ticks(store, jobs, last, ticks)
    # `next` from the last tick names what the next tick at that time then runs.
    for key in ("j07.json", "j12.json"):
        when, _ = jobs[key]
        printed = cli("next", when, "--tz", zone, "--after", iso(ticks[-1]), "--count", "1")
        assert (
            instant_of(printed.stdout.strip())
            == fires(when, zone, ticks[-1], ticks[-1] + 2 * DAY, count=1)[0]
        )
    expect_ticks(store, jobs, last, [instant_of(printed.stdout.strip())])


def every_change() -> list[tuple[str, int]]:
    return [
        (zone, change) for zone, years in CHANGING.items() for change in changes(zone, years[-1])
    ]


class TestTicksAcrossAClockChange:
    """`tick --now` each minute over a change runs each occurrence as the rules say."""

    def test_minute_by_minute_over_lord_howes_half_hour_jump(self, store: Store) -> None:
        # 2027-10-03 02:00 +10:30 becomes 02:30 +11:00.
        change = changes("Australia/Lord_Howe", 2027)[1]
        assert wall(change, "Australia/Lord_Howe") == datetime(2027, 10, 3, 2, 30)
        walk_minute_by_minute(store, "Australia/Lord_Howe", change, 12 * MINUTE)

    @pytest.mark.slow
    @pytest.mark.parametrize(("zone", "change"), every_change())
    def test_minute_by_minute_over_every_change(self, store: Store, zone: str, change: int) -> None:
        walk_minute_by_minute(store, zone, change, 65 * MINUTE)

    @pytest.mark.slow
    def test_minute_by_minute_over_apias_skipped_day(self, store: Store) -> None:
        change = changes("Pacific/Apia", 2011)[-1]
        assert wall(change, "Pacific/Apia") == datetime(2011, 12, 31)
        walk_minute_by_minute(store, "Pacific/Apia", change, 65 * MINUTE)

    def sparse(self, data: st.DataObject) -> None:
        zone, change = data.draw(moments())
        whens = [data.draw(expressions(zone, change)) for _ in range(3)]
        jobs = {f"k{number}.json": (when, zone) for number, when in enumerate(whens)}
        placed = change - data.draw(st.integers(150 * MINUTE, 3 * DAY))
        near = sorted(
            {
                t
                for when in whens
                for t in fires(when, zone, change - 150 * MINUTE, change + 150 * MINUTE)
            }
        )
        ticks: set[float] = set()
        for _ in range(data.draw(st.integers(1, 4))):
            if near and data.draw(st.booleans()):
                at = data.draw(st.sampled_from(near)) + data.draw(st.sampled_from([-1, 0, 0, 59]))
            else:
                at = change + data.draw(st.integers(-150 * MINUTE, 150 * MINUTE))
            ticks.add(float(at))
        with fresh_store() as store:
            for key, (when, _) in jobs.items():
                store.put(key, store.job(when, zone), placed)
            ordered = sorted(ticks)
            last = {key: float(placed) for key in jobs}
            expect_ticks(store, jobs, last, ordered)
            # What `next` names after the last tick is what a tick at that time runs, and
            # what a dry run at that time says it would run.
            when = whens[0]
            printed = cli("next", when, "--tz", zone, "--after", iso(ordered[-1]), "--count", "1")
            following = instant_of(printed.stdout.strip())
            assert following == fires(when, zone, ordered[-1], ordered[-1] + 40 * DAY, count=1)[0]
            plan = json.loads(store.tick(following, "--dry-run", "--json").stdout)
            would = {job["key"]: instant_of(job["scheduled"]) for job in plan["jobs"]}
            wanted = {}
            for key, (each, _) in jobs.items():
                occurrence = latest(each, zone, last[key], following)
                if occurrence is not None:
                    wanted[key] = float(occurrence)
            assert would == wanted
            assert wanted["k0.json"] == following
            expect_ticks(store, jobs, last, [following])

    @settings(FAST, max_examples=6)
    @given(data=st.data())
    def test_ticks_around_a_change_run_the_latest_occurrence(self, data: st.DataObject) -> None:
        self.sparse(data)

    @pytest.mark.slow
    @settings(FAST, max_examples=80)
    @given(data=st.data())
    def test_ticks_around_a_change_run_the_latest_occurrence_more(
        self, data: st.DataObject
    ) -> None:
        self.sparse(data)
