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
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

LAMBDACRON = shutil.which("lambdacron", path=str(Path(sys.executable).parent)) or "lambdacron"
MINUTE = 60
HOUR = 3600
DAY = 86400

# Each example runs subprocesses, so the runs are bounded and a failure is reported as found
# rather than shrunk for minutes (the draws are printed).
FAST = settings(
    max_examples=10,
    deadline=None,
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
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


#: Walked minute by minute in the slow run (each walk is some 130 processes), by the index
#: of the change in its year: Lord Howe's half-hour fold (its jump is walked in the fast
#: run), Santiago's gap at midnight, Berlin's hour-long fold; the rest get sampled tests.
WALKED = {"Australia/Lord_Howe": 0, "America/Santiago": -1, "Europe/Berlin": -1}


def every_change() -> list[tuple[str, int]]:
    return [(zone, changes(zone, CHANGING[zone][-1])[index]) for zone, index in WALKED.items()]


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
    @settings(FAST, max_examples=25)
    @given(data=st.data())
    def test_ticks_around_a_change_run_the_latest_occurrence_more(
        self, data: st.DataObject
    ) -> None:
        self.sparse(data)


# --------------------------------------------------------------------------- at(...)


def at_instant(text: str, zone: str) -> float:
    """When `at(text)` fires in `zone`: an offset is absolute, a naive time is the zone's."""
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is not None:
        return moment.timestamp()
    return first_reached(moment, zone)


class TestOneTimeJobs:
    @settings(FAST, max_examples=30)
    @given(data=st.data())
    def test_next_fires_an_at_where_the_docs_say(self, data: st.DataObject) -> None:
        zone, change = data.draw(moments())
        shown = wall(change, zone) + timedelta(
            seconds=data.draw(st.integers(-90 * MINUTE, 90 * MINUTE))
        )
        form = data.draw(st.sampled_from(["naive", "naive", "Z", "offset"]))
        text = shown.isoformat()
        if form == "Z":
            text += "Z"
        elif form == "offset":
            minutes = data.draw(st.integers(-12 * 60, 14 * 60))
            text += f"{'-' if minutes < 0 else '+'}{abs(minutes) // 60:02}:{abs(minutes) % 60:02}"
        fire = at_instant(text, zone)
        after = iso(fire - DAY)
        printed = cli("next", f"at({text})", "--tz", zone, "--after", after, "--count", "3")
        assert [instant_of(line) for line in printed.stdout.split()] == [fire]

    def test_an_at_job_runs_once_at_its_instant_and_is_deleted(self, store: Store) -> None:
        jobs = {
            "apia-skipped-day.json": ("2011-12-30T12:00:00", "Pacific/Apia"),
            "berlin-gap.json": ("2027-03-28T02:30:00", "Europe/Berlin"),
            "berlin-gap-offset.json": ("2027-03-28T02:30:00+01:00", "Europe/Berlin"),
            "lord-howe-gap.json": ("2027-10-03T02:15:00", "Australia/Lord_Howe"),
            "lord-howe-fold.json": ("2027-04-04T01:45:00", "Australia/Lord_Howe"),
            "chatham-fold.json": ("2027-04-04T02:50:30", "Pacific/Chatham"),
            "berlin-fold-utc.json": ("2027-10-31T02:30:00Z", "Europe/Berlin"),
            "santiago-midnight-gap.json": ("2027-09-05T00:30:00", "America/Santiago"),
            "kathmandu.json": ("2027-06-01T00:00:00", "Asia/Kathmandu"),
        }
        fire = {key: at_instant(text, zone) for key, (text, zone) in jobs.items()}
        # Independent of the oracle: the documented cases by hand.
        assert fire["apia-skipped-day.json"] == epoch(2011, 12, 30, 10)
        assert fire["berlin-gap.json"] == epoch(2027, 3, 28, 1)
        assert fire["lord-howe-gap.json"] == epoch(2027, 10, 2, 15, 30)
        assert fire["lord-howe-fold.json"] == epoch(2027, 4, 3, 14, 45)  # first pass, +11:00
        for key, (text, zone) in jobs.items():
            store.put(key, store.job(f"at({text})", zone), epoch(2011, 1, 1))
            printed = cli("next", f"at({text})", "--tz", zone, "--after", "2011-01-01T00:00Z")
            assert [instant_of(line) for line in printed.stdout.split()] == [fire[key]]
        for key in sorted(jobs, key=fire.__getitem__):
            store.tick(fire[key] - 1)
            assert store.runs() == []
            assert (store.root / key).exists()
            store.tick(fire[key])
            assert store.runs() == [(key, fire[key], "-")]
            assert not (store.root / key).exists()  # its one run ended ok

    def test_an_at_already_past_when_placed_runs_at_the_next_tick(self, store: Store) -> None:
        fire = at_instant("2027-03-28T02:30:00", "Europe/Berlin")
        store.put("late.json", store.job("at(2027-03-28T02:30:00)", "Europe/Berlin"), fire + DAY)
        store.tick(fire + DAY + 1)
        assert store.runs() == [("late.json", fire, "-")]


# --------------------------------------------------------------------------- user edits

KNOWN_FIELDS = {
    "when", "timezone", "max_number_executions", "enabled", "timeout_seconds", "retry",
    "deadline_seconds", "on_failure", "history_limit", "run", "execution_count", "last_run",
    "last_scheduled", "last_result", "history", "retry_pending", "scheduled_from", "claim",
}  # fmt: skip

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(10**63) + 1, 10**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(st.characters(exclude_categories=["Cs"]), max_size=12),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.text(st.characters(exclude_categories=["Cs"]), max_size=6), inner)
    ),
    max_leaves=8,
)
user_keys = st.text(st.characters(exclude_categories=["Cs"]), max_size=8).filter(
    lambda key: key not in KNOWN_FIELDS
)


def same(a: Any, b: Any) -> bool:
    """Equal as JSON values, number types and key order included."""
    if type(a) is not type(b):
        return False
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    return bool(a == b)


def pairs(path: Path) -> list[tuple[str, Any]]:
    """The top-level fields in the file's order (a dict keeps it; no key is given twice)."""
    return list(json.loads(path.read_text()).items())


REMOVE = object()
STEPS = ("none", "when", "zone", "payload", "note", "rename", "readd", "break", "run")
SCHEDULES = ("*/10 * * * *", "*/7 * * * *", "5,35 * * * *", "0 * * * *", "30 1 * * *")
ZONES = ("UTC", "Europe/Berlin", "Australia/Lord_Howe", "Asia/Kathmandu", "Etc/GMT+5")


@dataclass
class Model:
    """What README says the job is after each step, by its own reading."""

    key: str
    when: str
    zone: str
    mark: str
    since: float  # placed, or its schedule last changed
    seen: bool = False  # a tick has read it as a job since it was placed
    written: float = 0.0  # when the user last wrote the file
    last: float | None = None  # the occurrence it last ran for
    runs: int = 0
    broken: bool = False
    notes: dict[str, Any] = field(default_factory=dict)

    def due(self, now: float) -> int | None:
        return latest(self.when, self.zone, max(self.since, self.last or self.since), now)


class TestEditsBetweenTicks:
    """README's Semantics for edits, checked over random sequences of edits and ticks."""

    def edit(self, store: Store, model: Model, at: float, change: dict[str, Any]) -> None:
        path = store.root / model.key
        document = json.loads(path.read_text())
        for name, value in change.items():
            if value is REMOVE:
                document.pop(name, None)
            else:
                document[name] = value
        store.put(model.key, document, at)
        model.written = at

    def sequence(self, data: st.DataObject) -> None:
        zone, start = data.draw(moments())
        model = Model("a.json", data.draw(st.sampled_from(SCHEDULES)), zone, "m0", start)
        model.written = start
        with fresh_store() as store:
            store.put(model.key, store.job(model.when, model.zone, model.mark), start)
            now = float(start)
            for step in range(data.draw(st.integers(2, 6))):
                kind = data.draw(st.sampled_from(STEPS))
                edited = now + data.draw(st.integers(1, 40 * MINUTE))
                if model.broken:
                    kind = "repair"
                if kind == "when":
                    when = data.draw(st.sampled_from(SCHEDULES))
                    self.edit(store, model, edited, {"when": when})
                    if when != model.when:
                        model.when, model.since = when, edited
                elif kind == "zone":
                    zone = data.draw(st.sampled_from(ZONES))
                    self.edit(store, model, edited, {"timezone": zone})
                    if zone != model.zone:
                        model.zone, model.since = zone, edited
                elif kind == "payload":
                    model.mark = f"m{step + 1}"
                    job = store.job(model.when, model.zone, model.mark)
                    self.edit(store, model, edited, {"run": job["run"]})
                elif kind == "note":
                    name, value = data.draw(user_keys), data.draw(json_values)
                    model.notes[name] = value
                    self.edit(store, model, edited, {name: value})
                elif kind == "rename":
                    key = data.draw(st.sampled_from(["b.json", "sub/c.json", "d/e/f.json"]))
                    if key != model.key:
                        (store.root / key).parent.mkdir(parents=True, exist_ok=True)
                        os.rename(store.root / model.key, store.root / key)  # keeps its mtime
                        model.key = key
                elif kind == "readd":
                    root = str(store.root)
                    cli("rm", model.key, "--store", root)
                    fresh = store.home / "fresh.json"
                    fresh.write_text(
                        json.dumps(store.job(model.when, model.zone, model.mark, **model.notes))
                    )
                    cli("add", str(fresh), "--key", model.key, "--store", root)
                    os.utime(store.root / model.key, (edited, edited))
                    model.since, model.last, model.runs, model.seen = edited, None, 0, False
                    model.written = edited
                elif kind == "break":
                    self.edit(store, model, edited, {"timeout_seconds": 0})
                    model.broken = True
                elif kind == "repair":
                    # Not a schedule change: the window stays, so what it missed catches up.
                    self.edit(store, model, edited, {"timeout_seconds": REMOVE})
                    model.broken = False
                elif kind == "run":
                    proc = cli("run", model.key, "--store", str(store.root))
                    [(key, _, mark)] = store.runs()
                    assert (key, mark) == (model.key, model.mark), proc.stderr
                    model.runs += 1  # a run, but no occurrence taken
                now = edited + data.draw(st.integers(1, 40 * MINUTE))
                path = store.root / model.key
                before = (path.read_bytes(), path.stat().st_mtime_ns)
                proc = store.tick(now)
                if model.broken:
                    assert store.runs() == []
                    assert (path.read_bytes(), path.stat().st_mtime_ns) == before
                    [line] = [line for line in proc.stderr.splitlines() if model.key in line]
                    assert f"invalid {model.key}: timeout_seconds:" in line
                    continue
                if not model.seen:
                    # Placed when the user last wrote it before a runner read it as a job:
                    # a file invalid when put there, and repaired later, is placed by the
                    # repair; a runner's own write (a run by hand) places nothing.
                    model.since, model.seen = model.written, True
                due = model.due(now)
                if due is None:
                    assert store.runs() == [], (model, iso(now))
                    continue
                assert store.runs() == [(model.key, float(due), model.mark)], (model, iso(now))
                model.last = due
                model.runs += 1
            if model.broken:
                return
            shown = json.loads(cli("show", model.key, "--store", str(store.root)).stdout)
            assert shown.get("execution_count", 0) == model.runs
            if model.last is not None:
                assert instant_of(shown["last_scheduled"]) == model.last
            written = dict(pairs(store.root / model.key))
            for name, value in model.notes.items():
                assert same(written[name], json.loads(json.dumps(value))), name

    @settings(FAST, max_examples=8)
    @given(data=st.data())
    def test_edits_between_ticks_take_effect_as_documented(self, data: st.DataObject) -> None:
        self.sequence(data)

    @pytest.mark.slow
    @settings(FAST, max_examples=20)
    @given(data=st.data())
    def test_edits_between_ticks_take_effect_as_documented_more(self, data: st.DataObject) -> None:
        self.sequence(data)

    @settings(FAST, max_examples=15)
    @given(
        notes=st.lists(st.tuples(user_keys, json_values), max_size=4, unique_by=lambda p: p[0]),
        spots=st.lists(st.integers(0, 3), min_size=4, max_size=4),
    )
    def test_unknown_fields_keep_their_value_and_place(
        self, notes: list[tuple[str, Any]], spots: list[int]
    ) -> None:
        with fresh_store() as store:
            known = list(store.job("*/5 * * * *", "Asia/Kathmandu").items())
            fields = list(known)
            for (name, value), spot in zip(notes, spots, strict=False):
                fields.insert(min(spot, len(fields)), (name, value))
            # Written by hand so that the order is the one drawn.
            text = "{" + ", ".join(f"{json.dumps(k)}: {json.dumps(v)}" for k, v in fields) + "}"
            path = store.root / "notes.json"
            path.write_text(text)
            placed = epoch(2027, 1, 1)
            os.utime(path, (placed, placed))
            store.tick(placed + 10 * MINUTE)
            assert len(store.runs()) == 1
            written = pairs(path)
            order = [name for name, _ in written if name not in KNOWN_FIELDS]
            assert order == [name for name, _ in fields if name not in KNOWN_FIELDS]
            # The user's fields, known and unknown, in their order and with their values.
            assert [name for name, _ in written][: len(fields)] == [name for name, _ in fields]
            for (name, value), (_, kept) in zip(fields, written, strict=False):
                assert same(kept, json.loads(json.dumps(value))), name


# Each way to break a job, with the field its one line must name.
BREAKAGES: list[tuple[str, dict[str, Any], str]] = [
    ("minute", {"when": "61 * * * *"}, "when"),
    ("never", {"when": "0 0 30 2 *"}, "when"),
    ("seconds", {"when": "0 30 18 * * * 0"}, "when"),
    ("localtime", {"timezone": "localtime"}, "timezone"),
    ("posixrules", {"timezone": "posixrules"}, "timezone"),
    ("right", {"timezone": "right/UTC"}, "timezone"),
    ("posix", {"timezone": "posix/Europe/Berlin"}, "timezone"),
    ("zulu-letter", {"timezone": "Z"}, "timezone"),
    ("offset", {"timezone": "+01:00"}, "timezone"),
    ("mars", {"timezone": "Mars/Olympus"}, "timezone"),
    ("empty-zone", {"timezone": ""}, "timezone"),
    ("path-zone", {"timezone": "../../etc/passwd"}, "timezone"),
    ("number-zone", {"timezone": 5}, "timezone"),
    ("gmt15", {"timezone": "Etc/GMT+15"}, "timezone"),
    ("enabled", {"enabled": "yes"}, "enabled"),
    ("timeout", {"timeout_seconds": 0}, "timeout_seconds"),
    ("executions", {"max_number_executions": -1}, "max_number_executions"),
    ("history", {"history_limit": -1}, "history_limit"),
    ("type", {"run": {"type": "shell", "details": {}}}, "run.type"),
    ("command", {"run": {"type": "command", "details": {"command": "ls"}}}, "run.details.command"),
    ("at-gap-year", {"when": "at(1969-12-31T23:59:59Z)"}, "when"),
]


class TestBrokenFiles:
    def test_each_broken_file_is_one_line_and_left_byte_for_byte(self, store: Store) -> None:
        placed = epoch(2027, 1, 1)
        store.put("ok.json", store.job("*/5 * * * *", "Asia/Kolkata"), placed)
        files = {}
        for name, change, _ in BREAKAGES:
            document = store.job("*/5 * * * *", "Asia/Kolkata")
            document.update(change)
            files[f"{name}.json"] = store.put(f"{name}.json", document, placed)
        duplicate = store.root / "twice.json"
        duplicate.write_text(json.dumps(store.job("*/5 * * * *"))[:-1] + ', "when": "* * * * *"}')
        os.utime(duplicate, (placed, placed))
        files["twice.json"] = duplicate
        paths = {key: "when" for key in ["twice.json"]}
        paths.update({f"{name}.json": path for name, _, path in BREAKAGES})
        before = {key: (p.read_bytes(), p.stat().st_mtime_ns) for key, p in files.items()}

        dry = store.tick(placed + 10 * MINUTE, "--dry-run")
        proc = store.tick(placed + 10 * MINUTE)  # exit 0: broken files are not the store's
        assert store.runs() == [("ok.json", placed + 10 * MINUTE, "-")]
        listed = cli("ls", "--store", str(store.root)).stdout
        checked = cli("validate", *map(str, files.values()), rc=1).stdout
        for key, path in files.items():
            assert (path.read_bytes(), path.stat().st_mtime_ns) == before[key], key
            [line] = [line for line in proc.stderr.splitlines() if key in line]
            assert f"invalid {key}: {paths[key]}:" in line
            [line] = [line for line in dry.stdout.splitlines() if key in line]
            assert line.startswith(f"would refuse {key}: {paths[key]}:")
            [line] = [line for line in listed.splitlines() if key in line]
            assert f"invalid: {paths[key]}:" in line
            [line] = [line for line in checked.splitlines() if line.startswith(f"{path}:")]
            assert line.startswith(f"{path}: {paths[key]}:")
        assert json.loads(store.tick(placed + 10 * MINUTE, "--json").stdout)["invalid"] == len(
            files
        )


# --------------------------------------------------------------------------- the command line


class TestHostileCommandLine:
    @pytest.mark.parametrize(
        "now",
        [
            "2026-03-29T02:30[Europe/Berlin]",
            "2026-03-29T02:30+24:00",
            "2026-02-30T00:00Z",
            "",
            "tomorrow",
            "1969-12-31T23:59:59Z",
            "1970-01-01T00:30+01:00",
            "9999-06-01T00:00Z",
        ],
    )
    def test_a_bad_now_is_one_line_naming_the_flag(self, store: Store, now: str) -> None:
        path = store.put("a.json", store.job("* * * * *"), epoch(2026, 1, 1))
        before = (path.read_bytes(), path.stat().st_mtime_ns)
        root = str(store.root)
        for extra in ([], ["--dry-run"]):
            proc = cli("tick", "--store", root, "--now", now, "--allow-future", *extra, rc=2)
            assert proc.stderr.count("\n") == 1 and "--now" in proc.stderr, proc.stderr
        assert (path.read_bytes(), path.stat().st_mtime_ns) == before
        assert store.runs() == []

    def test_a_now_without_offset_is_utc_and_with_one_is_absolute(self, store: Store) -> None:
        # 2026-03-29 02:30 is in Berlin's gap; a naive --now is not read in any job's zone.
        placed = epoch(2026, 3, 28, 12)
        store.put("berlin.json", store.job("30 2 * * *", "Europe/Berlin"), placed)
        store.put("utc.json", store.job("30 * * * *", "UTC"), placed)
        root = str(store.root)
        cli("tick", "--store", root, "--now", "2026-03-29T02:30+02:00")  # 00:30 UTC
        assert store.runs() == [("utc.json", epoch(2026, 3, 29, 0, 30), "-")]
        cli("tick", "--store", root, "--now", "2026-03-29T02:30")  # 02:30 UTC = 04:30 CEST
        assert store.runs() == [
            ("berlin.json", epoch(2026, 3, 29, 1), "-"),
            ("utc.json", epoch(2026, 3, 29, 2, 30), "-"),
        ]

    @pytest.mark.parametrize(
        ("after", "expected"),
        [
            ("2027-03-28T01:00", "2027-03-28T01:00:00Z"),  # 01:00 CET is 00:00 UTC
            ("2027-03-28T02:30", "2027-03-29T00:30:00Z"),  # in the gap: from 03:00 CEST on
            ("2027-10-31T02:30", "2027-11-01T01:30:00Z"),  # repeated: from its first pass on
            ("2027-10-31T00:29:59Z", "2027-10-31T00:30:00Z"),
        ],
    )
    def test_a_naive_after_is_a_wall_time_in_the_zone(self, after: str, expected: str) -> None:
        printed = cli("next", "30 2 * * *", "--tz", "Europe/Berlin", "--after", after)
        assert instant_of(printed.stdout.split()[0]) == instant_of(expected)

    @pytest.mark.parametrize(
        "zone",
        ["localtime", "posixrules", "right/UTC", "posix/Europe/Berlin", "", "Z", "UTC ",
         "Europe/berlin", "../../etc/passwd", "/usr/share/zoneinfo/UTC", "+01:00"],
    )  # fmt: skip
    def test_a_zone_that_is_no_iana_name_is_refused_by_next(self, zone: str) -> None:
        proc = cli("next", "0 0 * * *", "--tz", zone, "--after", "2027-01-01T00:00Z", rc=2)
        assert proc.stdout == "" and proc.stderr.count("\n") == 1, proc.stderr
        assert "time zone" in proc.stderr
