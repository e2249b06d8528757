"""Schedule expressions: parse a `when` string once, evaluate it with time passed in.

Forms (see docs/schedules.md for the full reference):

* ``M H DOM MON DOW``: Vixie/Debian cron.
* ``M H DOM MON DOW YEAR``: the same plus a year field (1970-2199, the local year).
* ``M H DOM MON DOW YEAR *``: the 7-field form of the seed README's sample jobs; the seventh
  field must be ``*``.
* ``@yearly`` ``@annually`` ``@monthly`` ``@weekly`` ``@daily`` ``@midnight`` ``@hourly``.
* EventBridge extras in the cron fields: ``?``, ``L``, ``NL``, ``DOW#N``, ``NW``, ``LW``.
* ``at(2026-12-01T18:30:00)``: one time; a naive time is wall-clock time in the job's zone.
* ``rate(N seconds|minutes|hours|days)``: every N units, aligned to the Unix epoch in UTC.

Every schedule answers two questions, both with aware datetimes in UTC:
``next_after(t)`` (the first fire time strictly after t) and
``latest_at_or_before(t)`` (the last fire time not after t).

Cron expressions are evaluated here, from the parsed value sets: every search walks
matching wall-clock times in order and has a fixed bound, so evaluation cannot loop.
"""

from __future__ import annotations

import calendar
import math
import re
from abc import ABC, abstractmethod
from bisect import bisect_left, bisect_right
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, tzinfo
from functools import lru_cache
from importlib.resources import files
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .errors import ScheduleError

YEAR_MIN, YEAR_MAX = 1970, 2199

NICKNAMES = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_FORMS = (
    "expected 5 fields (minute hour day-of-month month day-of-week), 6 with a year, "
    "or 7 with a year and a final '*'"
)
_MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
_DAYS = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")
_DAYS_IN_MONTH = (0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


# --------------------------------------------------------------------------- zones


@lru_cache(maxsize=1)
def _iana_names() -> frozenset[str]:
    """The zones and links of the IANA database, as the tzdata dependency lists them.

    A host's zoneinfo directory loads more names than these: ``localtime`` (the host's own
    zone), ``posixrules``, ``posix/...``, ``right/...``. A job in one of them would fire at
    other times on another host, or not load there, so only this list counts.
    """
    listed = files("tzdata").joinpath("zones").read_text(encoding="utf-8")
    return frozenset(listed.split())


@lru_cache(maxsize=512)
def get_zone(name: str) -> tzinfo:
    """Return the IANA zone ``name``; ``UTC`` maps to the fixed UTC offset."""
    if name in ("UTC", "Etc/UTC"):
        return UTC
    if not isinstance(name, str) or not name or name.startswith(("/", ".")) or ".." in name:
        raise ScheduleError(f"timezone: {name!r} is not an IANA time zone name")
    unknown = ScheduleError(
        f"timezone: unknown time zone {name!r} (use an IANA name such as 'Europe/Berlin')"
    )
    if name not in _iana_names():
        raise unknown
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError) as exc:
        raise unknown from exc


# Wall times are limited to local years YEAR_MIN..YEAR_MAX and no UTC offset reaches a
# day, so instants outside this span can be clamped to it without changing any answer, and
# converting them to a zone can never overflow.
_EVAL_FROM = datetime(YEAR_MIN - 1, 12, 30, tzinfo=UTC)
_EVAL_TO = datetime(YEAR_MAX + 1, 1, 3, tzinfo=UTC)
# Instants a user may give: a day inside what datetime can hold, so that applying any UTC
# offset to them stays representable.
_EARLIEST = datetime.min.replace(tzinfo=UTC) + timedelta(days=1)
_LATEST = datetime.max.replace(tzinfo=UTC) - timedelta(days=1)
_UNIX_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_EARLIEST_TS = -((_UNIX_EPOCH - _EARLIEST) // timedelta(seconds=1))  # exact, unlike floats
_LATEST_TS = (_LATEST - _UNIX_EPOCH) // timedelta(seconds=1)
_ONE_MINUTE = timedelta(minutes=1)
_NO_SHIFT = timedelta(0)


def _offset_of(moment: datetime) -> timedelta:
    offset = moment.utcoffset()
    if offset is None:  # only a broken tzinfo answers None for an aware time
        raise ScheduleError(f"timezone: {moment.tzinfo} gives no UTC offset for {moment}")
    return offset


def _offsets(wall: datetime) -> tuple[timedelta, timedelta]:
    """The offsets of a wall time (aware, in its zone) read as its first and second pass.

    Equal: the wall time occurs once. First larger: it occurs twice (the clock went back).
    First smaller: it never occurs (the clock jumped over it).
    """
    return _offset_of(wall.replace(fold=0)), _offset_of(wall.replace(fold=1))


def _gap_end(zone: tzinfo, before: datetime, after: datetime) -> datetime:
    """The first instant of ``(before, after]`` (UTC) whose offset differs from ``before``'s.

    ``before`` lies inside a spring-forward gap's offset and ``after`` past it, so this is the
    instant the gap ends. Bisection over whole seconds: at most 64 halvings of a span that is
    shorter than a day.
    """
    base = _offset_of(before.astimezone(zone))
    low, high = math.floor(before.timestamp()), math.ceil(after.timestamp())
    for _ in range(64):
        if high - low <= 1:
            break
        middle = (low + high) // 2
        if _offset_of(datetime.fromtimestamp(middle, UTC).astimezone(zone)) == base:
            low = middle
        else:
            high = middle
    return datetime.fromtimestamp(high, UTC)


def _wall_instants(wall: datetime, elapsed: bool) -> tuple[datetime, ...]:
    """The UTC instants at which a wall time (aware, in its zone, fold 0) fires, in order.

    ``elapsed`` (the minute or hour field starts with '*'): every instant the clock shows
    it, so both passes of a repeated time and none of a skipped one. Otherwise once: the
    first pass of a repeated time, and the first real instant after a skipped one. See
    docs/schedules.md.
    """
    zone = wall.tzinfo
    if zone is UTC:
        return (wall,)
    first_offset = wall.utcoffset()
    second_offset = wall.replace(fold=1).utcoffset()
    if first_offset == second_offset:
        return (wall.astimezone(UTC),)
    if first_offset is None or second_offset is None:  # only a broken tzinfo does this
        raise ScheduleError(f"timezone: {zone} gives no UTC offset for {wall}")
    first = (wall - first_offset).replace(tzinfo=UTC)
    if first_offset > second_offset:
        return (first, (wall - second_offset).replace(tzinfo=UTC)) if elapsed else (first,)
    if elapsed or zone is None:
        return ()
    return (_gap_end(zone, (wall - second_offset).replace(tzinfo=UTC), first),)


def _repeat_length(local: datetime) -> timedelta:
    """How far the clock went back, if this wall time (aware) is repeated; zero otherwise."""
    if local.tzinfo is UTC:
        return _NO_SHIFT
    first_offset, second_offset = _offsets(local)
    return max(first_offset - second_offset, _NO_SHIFT)


def _to_utc(moment: datetime, what: str = "time") -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{what} must be timezone-aware, got {moment!r}")
    return moment.astimezone(UTC)


# --------------------------------------------------------------------------- the interface


class Schedule(ABC):
    """A parsed, immutable schedule. Time is always passed in."""

    expression: str
    zone: tzinfo

    #: True when the schedule fires at most once (``at(...)``).
    one_time: bool = False

    @abstractmethod
    def next_after(self, after: datetime) -> datetime | None:
        """The first fire time strictly after ``after`` (UTC), or None if there is none."""

    @abstractmethod
    def latest_at_or_before(self, moment: datetime) -> datetime | None:
        """The last fire time at or before ``moment`` (UTC), or None if there is none."""

    def latest_in(self, start: datetime | None, end: datetime) -> datetime | None:
        """The last fire time in the half-open window ``(start, end]``, or None."""
        if start is not None:
            # Most checks find nothing due; one forward step answers those cheaply.
            first = self.next_after(start)
            if first is None or first > _to_utc(end, "end"):
                return None
        return self.latest_at_or_before(end)

    def iter_after(self, after: datetime) -> Iterator[datetime]:
        """Fire times strictly after ``after``, in order."""
        current: datetime | None = after
        while current is not None:
            current = self.next_after(current)
            if current is not None:
                yield current


# --------------------------------------------------------------------------- at() and rate()


@dataclass(frozen=True)
class AtSchedule(Schedule):
    """``at(ISO8601)``: fires exactly once."""

    expression: str
    zone: tzinfo
    when: datetime  # UTC
    one_time: bool = True

    def next_after(self, after: datetime) -> datetime | None:
        return self.when if self.when > _to_utc(after) else None

    def latest_at_or_before(self, moment: datetime) -> datetime | None:
        return self.when if self.when <= _to_utc(moment) else None


def _whole_seconds(moment: datetime) -> int:
    """Whole seconds since the Unix epoch, floored, exactly: a float timestamp rounds a
    microsecond before a boundary onto it, which would skip that occurrence."""
    return (_to_utc(moment) - _UNIX_EPOCH) // timedelta(seconds=1)


@dataclass(frozen=True)
class RateSchedule(Schedule):
    """``rate(N unit)``: every ``period`` seconds, aligned to the Unix epoch in UTC.

    Alignment makes the schedule stateless: rate(5 minutes) fires at every minute
    divisible by 5, whoever evaluates it and whenever the job was created.
    """

    expression: str
    zone: tzinfo
    period: int  # seconds

    def next_after(self, after: datetime) -> datetime | None:
        return self._instant((_whole_seconds(after) // self.period + 1) * self.period)

    def latest_at_or_before(self, moment: datetime) -> datetime | None:
        return self._instant(_whole_seconds(moment) // self.period * self.period)

    @staticmethod
    def _instant(ts: int) -> datetime | None:
        # Past the instants a user may give there is nothing to fire (and no calendar).
        if not _EARLIEST_TS <= ts <= _LATEST_TS:
            return None
        return datetime.fromtimestamp(ts, UTC)


# --------------------------------------------------------------------------- cron


# Bounds that make every search finite. A search visits at most this many months (more
# than YEAR_MIN..YEAR_MAX holds, so the year limit always ends it first) and at most this many
# matching wall times (more than the matches of a day, the longest jump tzdata has).
_MAX_MONTHS = (YEAR_MAX - YEAR_MIN + 2) * 12
_MAX_WALLS = 4 * 24 * 60
_MONTH_CACHE = 4096


@dataclass(frozen=True)
class _Days:
    """Which days of a month fire: day-of-month and day-of-week, combined as Debian cron does."""

    dom: frozenset[int]  # plain days of the month
    dow: frozenset[int]  # plain days of the week, Sunday = 0
    last: bool = False  # L
    last_weekday: bool = False  # LW
    nearest: int | None = None  # N of NW
    nth: frozenset[tuple[int, int]] = frozenset()  # (weekday, N) of DAY#N
    last_of: frozenset[int] = frozenset()  # weekdays of NL
    both: bool = True  # either field starts with '*': both must match; else either

    def in_month(self, year: int, month: int) -> tuple[int, ...]:
        length = calendar.monthrange(year, month)[1]
        first_weekday = (date(year, month, 1).weekday() + 1) % 7  # Sunday = 0
        nearest = _nearest_weekday(year, month, self.nearest) if self.nearest is not None else None
        last_wd = (first_weekday + length - 1) % 7
        last_weekday_day = length - (1 if last_wd == 6 else 2 if last_wd == 0 else 0)
        found = []
        for day in range(1, length + 1):
            weekday = (first_weekday + day - 1) % 7
            dom_ok = (
                day in self.dom
                or (self.last and day == length)
                or (self.last_weekday and day == last_weekday_day)
                or day == nearest
            )
            dow_ok = (
                weekday in self.dow
                or (weekday, (day - 1) // 7 + 1) in self.nth
                or (weekday in self.last_of and day + 7 > length)
            )
            if (dom_ok and dow_ok) if self.both else (dom_ok or dow_ok):
                found.append(day)
        return tuple(found)


@dataclass(frozen=True)
class CronSchedule(Schedule):
    """A cron expression, evaluated over naive wall-clock times in the job's zone.

    The wall-time searches step month by month and bisect sorted value lists, so a filter
    (year, day) never walks minute by minute. Each matching wall time is then mapped to its
    UTC instants by the daylight-saving rules of docs/schedules.md.
    """

    expression: str
    zone: tzinfo
    times: tuple[int, ...]  # minutes of the day (hour * 60 + minute), ascending
    months: tuple[int, ...]  # ascending
    days: _Days
    years: frozenset[int] | None = None  # local years; None: any of YEAR_MIN..YEAR_MAX
    elapsed: bool = False  # minute or hour starts with '*': follow real elapsed time
    _year_list: tuple[int, ...] = field(default=(), repr=False, compare=False)
    _month_days: dict[int, tuple[int, ...]] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.years is not None:
            object.__setattr__(self, "_year_list", tuple(sorted(self.years)))

    def _days_of(self, year: int, month: int) -> tuple[int, ...]:
        key = year * 12 + month
        days = self._month_days.get(key)
        if days is None:
            if len(self._month_days) >= _MONTH_CACHE:
                self._month_days.clear()
            days = self._month_days[key] = self.days.in_month(year, month)
        return days

    def _gave_up(self, moment: datetime) -> ScheduleError:
        return ScheduleError(
            f"{self.expression!r} in {self.zone}: evaluation stopped at its step limit near"
            f" {moment.isoformat()}"
        )

    # -- naive wall-clock searches

    def _wall_at_or_after(self, start: datetime) -> datetime | None:
        """The first matching wall time at or after the wall time ``start``, or None.

        Only the fields of ``start`` are read; the result is in the zone, fold 0.
        """
        year, month, day = start.year, start.month, start.day
        # A start between whole minutes rounds up; 1440 (past the day's end) moves to the next.
        clock = start.hour * 60 + start.minute + bool(start.second or start.microsecond)
        times, zone = self.times, self.zone
        for _ in range(_MAX_MONTHS):
            if year > YEAR_MAX:
                return None
            if year < YEAR_MIN:
                year, month, day, clock = YEAR_MIN, 1, 1, 0
            if self.years is not None and year not in self.years:
                index = bisect_right(self._year_list, year)
                if index == len(self._year_list):
                    return None
                year, month, day, clock = self._year_list[index], 1, 1, 0
                continue
            index = bisect_left(self.months, month)
            if index == len(self.months):
                year, month, day, clock = year + 1, 1, 1, 0
                continue
            if self.months[index] != month:
                month, day, clock = self.months[index], 1, 0
            days = self._days_of(year, month)
            at = bisect_left(days, day)
            if at < len(days) and days[at] == day:
                slot = bisect_left(times, clock)
                if slot < len(times):
                    return datetime(year, month, day, *divmod(times[slot], 60), tzinfo=zone)
                at += 1
            if at < len(days):
                return datetime(year, month, days[at], *divmod(times[0], 60), tzinfo=zone)
            day, clock = 1, 0
            year, month = (year + 1, 1) if month == 12 else (year, month + 1)
        raise self._gave_up(start)

    def _wall_at_or_before(self, end: datetime) -> datetime | None:
        """The last matching wall time at or before the wall time ``end``, or None.

        Only the fields of ``end`` are read; the result is in the zone, fold 0.
        """
        year, month, day = end.year, end.month, end.day
        clock = end.hour * 60 + end.minute
        times, zone = self.times, self.zone
        for _ in range(_MAX_MONTHS):
            if year < YEAR_MIN:
                return None
            if year > YEAR_MAX:
                year, month, day, clock = YEAR_MAX, 12, 31, 1439
            if self.years is not None and year not in self.years:
                index = bisect_left(self._year_list, year) - 1
                if index < 0:
                    return None
                year, month, day, clock = self._year_list[index], 12, 31, 1439
                continue
            index = bisect_right(self.months, month) - 1
            if index < 0:
                year, month, day, clock = year - 1, 12, 31, 1439
                continue
            if self.months[index] != month:
                month, day, clock = self.months[index], 31, 1439
            days = self._days_of(year, month)
            at = bisect_right(days, day) - 1
            if at >= 0 and days[at] == day:
                slot = bisect_right(times, clock) - 1
                if slot >= 0:
                    return datetime(year, month, day, *divmod(times[slot], 60), tzinfo=zone)
                at -= 1
            if at >= 0:
                return datetime(year, month, days[at], *divmod(times[-1], 60), tzinfo=zone)
            day, clock = 31, 1439
            year, month = (year - 1, 12) if month == 1 else (year, month - 1)
        raise self._gave_up(end)

    # -- evaluation

    def next_after(self, after: datetime) -> datetime | None:
        moment = _to_utc(after, "after")
        if moment >= _EVAL_TO:
            return None
        moment = max(moment, _EVAL_FROM)
        local = moment.astimezone(self.zone)
        lower = local
        if self.elapsed and local.fold == 0:
            # On the first pass of a repeated hour, the wall times already shown come round
            # again, and an elapsed-time schedule fires on that second pass too.
            lower = local - _repeat_length(local)
        best: datetime | None = None
        candidate = self._wall_at_or_after(lower)
        for _ in range(_MAX_WALLS):
            if candidate is None:
                return best
            instants = _wall_instants(candidate, self.elapsed)
            for instant in instants:
                if instant > moment and (best is None or instant < best):
                    best = instant
            # Every later wall time fires after this one's first instant.
            if instants and instants[0] > moment:
                return best
            candidate = self._wall_at_or_after(candidate + _ONE_MINUTE)
        raise self._gave_up(moment)

    def latest_at_or_before(self, moment: datetime) -> datetime | None:
        moment = _to_utc(moment, "moment")
        if moment < _EVAL_FROM:
            return None
        moment = min(moment, _EVAL_TO)
        local = moment.astimezone(self.zone)
        upper = local
        if local.fold == 1:
            # On the second pass of a repeated hour, the wall times up to its end were all
            # shown already, on the first pass.
            upper = local + _repeat_length(local)
        best: datetime | None = None
        candidate = self._wall_at_or_before(upper)
        for _ in range(_MAX_WALLS):
            if candidate is None:
                return best
            instants = _wall_instants(candidate, self.elapsed)
            for instant in instants:
                if instant <= moment and (best is None or instant > best):
                    best = instant
            # Every earlier wall time fires before this one's last instant.
            if instants and instants[-1] <= moment:
                return best
            candidate = self._wall_at_or_before(candidate - _ONE_MINUTE)
        raise self._gave_up(moment)


def _nearest_weekday(year: int, month: int, day: int) -> int | None:
    """The day of the month of the weekday nearest to ``day`` (Quartz/EventBridge ``W``)."""
    last = calendar.monthrange(year, month)[1]
    if day > last:
        return None
    weekday = date(year, month, day).weekday()  # Monday = 0
    if weekday == 5:  # Saturday: Friday before, unless that leaves the month
        return day - 1 if day > 1 else day + 2
    if weekday == 6:  # Sunday: Monday after, unless that leaves the month
        return day + 1 if day < last else day - 2
    return day


# --------------------------------------------------------------------------- parsing


_NAME_HINTS = {"month": " or a month name (JAN-DEC)", "day-of-week": " or a day name (SUN-SAT)"}


@dataclass(frozen=True)
class _Field:
    name: str
    low: int
    high: int
    names: tuple[str, ...] = ()
    name_base: int = 0  # value of names[0]

    def value(self, text: str, term: str) -> int:
        upper = text.upper()
        if self.names and upper in self.names:
            return self.names.index(upper) + self.name_base
        if not text.isdigit() or not text.isascii():
            extra = _NAME_HINTS.get(self.name, "")
            where = f" in {term!r}" if term != text else ""
            raise ScheduleError(f"{self.name}: {text!r}{where} is not a number{extra}")
        number = int(text)
        if not self.low <= number <= self.high:
            raise ScheduleError(f"{self.name}: {number} is out of range {self.low}-{self.high}")
        return number


_MINUTE = _Field("minute", 0, 59)
_HOUR = _Field("hour", 0, 23)
_DOM = _Field("day-of-month", 1, 31)
_MONTH = _Field("month", 1, 12, tuple(_MONTHS), 1)
_DOW = _Field("day-of-week", 0, 7, tuple(_DAYS), 0)
_YEAR = _Field("year", YEAR_MIN, YEAR_MAX)


def _parse_range_term(spec: _Field, term: str) -> list[int]:
    """Parse ``*``, ``*/S``, ``A``, ``A-B``, ``A-B/S`` or ``A/S`` into its values."""
    base, slash, step_text = term.partition("/")
    step = 1
    if slash:
        if not step_text.isdigit() or not step_text.isascii():
            raise ScheduleError(f"{spec.name}: step {step_text!r} in {term!r} is not a number")
        step = int(step_text)
        if step < 1:
            raise ScheduleError(f"{spec.name}: step in {term!r} must be at least 1")
    if base == "*":
        start, end = spec.low, spec.high
    elif "-" in base:
        first, _, last = base.partition("-")
        if not first or not last:
            raise ScheduleError(f"{spec.name}: {term!r} is not a valid range (write A-B)")
        start, end = spec.value(first, term), spec.value(last, term)
        if end < start:
            raise ScheduleError(
                f"{spec.name}: range {term!r} runs backwards ({start} > {end}); ranges do not wrap"
            )
    else:
        if not base:
            raise ScheduleError(f"{spec.name}: {term!r} has no value before '/'")
        start = spec.value(base, term)
        end = spec.high if slash else start
    return list(range(start, end + 1, step))


def _split_terms(spec: _Field, text: str) -> list[str]:
    terms = text.split(",")
    if any(not t for t in terms):
        raise ScheduleError(f"{spec.name}: empty item in list {text!r}")
    return terms


def _parse_plain(spec: _Field, text: str) -> set[int]:
    values: set[int] = set()
    for term in _split_terms(spec, text):
        values.update(_parse_range_term(spec, term))
    return values


@dataclass
class _DayOfMonth:
    days: set[int]
    last: bool = False
    last_weekday: bool = False
    nearest: int | None = None


def _parse_dom(text: str) -> _DayOfMonth:
    """Day of month: plain terms, ``L``, ``LW`` (also in a list), or a lone ``NW``."""
    upper = text.upper()
    if upper.endswith("W") and upper != "LW":
        number = upper[:-1]
        if not number:
            raise ScheduleError("day-of-month: 'W' needs a day before it, e.g. 15W or LW")
        if "," in upper or "-" in upper or "/" in upper:
            raise ScheduleError(
                f"day-of-month: {text!r}: 'W' takes a single day (e.g. 15W), not a list or range"
            )
        return _DayOfMonth(set(), nearest=_DOM.value(number, text))
    parsed = _DayOfMonth(set())
    for term in _split_terms(_DOM, text):
        upper = term.upper()
        if upper == "L":
            parsed.last = True
        elif upper == "LW":
            parsed.last_weekday = True
        elif upper.endswith("W"):
            raise ScheduleError(f"day-of-month: {text!r}: 'W' cannot be used in a list")
        else:
            parsed.days.update(_parse_range_term(_DOM, term))
    return parsed


@dataclass
class _DayOfWeek:
    days: set[int] = field(default_factory=set)  # Sunday = 0
    nth: set[tuple[int, int]] = field(default_factory=set)
    last_of: set[int] = field(default_factory=set)


def _parse_dow(text: str) -> _DayOfWeek:
    parsed = _DayOfWeek()
    for term in _split_terms(_DOW, text):
        upper = term.upper()
        if "#" in upper:
            day, _, nth = upper.partition("#")
            if not nth.isdigit() or not nth.isascii() or not 1 <= int(nth) <= 5:
                raise ScheduleError(f"day-of-week: {term!r}: the N of DAY#N must be 1-5")
            if not day or any(c in day for c in "-/*"):
                raise ScheduleError(f"day-of-week: {term!r}: DAY#N takes a single day, e.g. MON#2")
            parsed.nth.add((_DOW.value(day, term) % 7, int(nth)))
        elif upper.endswith("L"):
            day = term[:-1]
            if not day or any(c in day for c in "-/*"):
                raise ScheduleError(
                    f"day-of-week: {term!r}: 'L' needs a single day before it, e.g. 5L or FRIL"
                    " (last Friday of the month)"
                )
            parsed.last_of.add(_DOW.value(day, term) % 7)
        else:
            parsed.days.update(value % 7 for value in _parse_range_term(_DOW, term))
    return parsed


def _check_can_fire(dom: _DayOfMonth, months: set[int], day_and: bool) -> None:
    # NW fires only on a day its month holds, so day N bounds it as a plain N does.
    days = dom.days if dom.nearest is None else {*dom.days, dom.nearest}
    if not day_and or not days or dom.last or dom.last_weekday:
        return
    longest = max(_DAYS_IN_MONTH[m] for m in months)
    if min(days) > longest:
        names = ",".join(_MONTHS[m - 1] for m in sorted(months))
        raise ScheduleError(
            f"day-of-month: day {min(days)} never occurs in {names}; this schedule never fires"
        )


def _parse_cron(expression: str, fields: list[str], zone: tzinfo) -> CronSchedule:
    if len(fields) == 7:
        if fields[6] != "*":
            raise ScheduleError(
                f"field 7: must be '*', got {fields[6]!r}; the 7-field form is"
                " 'minute hour day-of-month month day-of-week year *' (there is no seconds field)"
            )
        fields = fields[:6]
    if len(fields) not in (5, 6):
        raise ScheduleError(f"{_FORMS}; got {len(fields)}: {expression!r}")
    minute, hour, dom, month, dow = fields[:5]
    for name, text in (("minute", minute), ("hour", hour), ("month", month)):
        if "?" in text:
            raise ScheduleError(f"{name}: '?' is only allowed in day-of-month or day-of-week")
    if dom == "?" and dow == "?":
        raise ScheduleError("day-of-month: '?' may stand in day-of-month or day-of-week, not both")
    minutes = _parse_plain(_MINUTE, minute)
    hours = _parse_plain(_HOUR, hour)
    months = _parse_plain(_MONTH, month)
    day_of_month = _DayOfMonth(set(range(1, 32))) if dom == "?" else _parse_dom(dom)
    day_of_week = _DayOfWeek(set(range(7))) if dow == "?" else _parse_dow(dow)
    dow_open = dow == "?" or dow.startswith("*")
    # '*/2' or '*,MON' start with '*' but restrict the days all the same.
    if day_of_month.nearest is not None and dow not in ("*", "?"):
        raise ScheduleError(
            f"day-of-month: {dom!r} cannot be combined with a restricted day-of-week;"
            " write '?' in day-of-week"
        )
    # Debian cron: if either day field starts with '*', both must match; otherwise either.
    # '?' and a lone NW count as '*' here.
    day_and = dow_open or dom == "?" or dom.startswith("*") or day_of_month.nearest is not None
    _check_can_fire(day_of_month, months, day_and)
    years: frozenset[int] | None = None
    if len(fields) == 6 and fields[5] not in ("*", "?"):
        years = frozenset(_parse_plain(_YEAR, fields[5]))
    days = _Days(
        frozenset(day_of_month.days),
        frozenset(day_of_week.days),
        day_of_month.last,
        day_of_month.last_weekday,
        day_of_month.nearest,
        frozenset(day_of_week.nth),
        frozenset(day_of_week.last_of),
        day_and,
    )
    schedule = CronSchedule(
        expression,
        zone,
        tuple(sorted(h * 60 + m for h in hours for m in minutes)),
        tuple(sorted(months)),
        days,
        years,
        # Debian cron's rule: a job whose minute or hour starts with '*' is not a fixed time.
        elapsed=minute.startswith("*") or hour.startswith("*"),
    )
    # Listed years can hold none of the days the other fields name (29 February in 2027, a
    # fifth Monday of a February): as static a mistake as day 30 of February, though only
    # the calendar knows it. Past years that did hold such a day are only expired.
    if years is not None and schedule.next_after(_EVAL_FROM) is None:
        raise ScheduleError(
            f"year: no day of {fields[5]!r} matches the other fields; this schedule never fires"
        )
    return schedule


_RATE = re.compile(
    r"rate\(\s*(\d+)\s+(second|seconds|minute|minutes|hour|hours|day|days)\s*\)", re.IGNORECASE
)
_RATE_UNITS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}
#: A longer period would put the next fire time past what a datetime can hold.
_RATE_MAX_SECONDS = 36500 * 86400


def _parse_rate(expression: str, zone: tzinfo) -> RateSchedule:
    match = _RATE.fullmatch(expression)
    if not match:
        raise ScheduleError(
            f"rate: {expression!r} is not of the form rate(N seconds|minutes|hours|days),"
            " e.g. rate(5 minutes) or rate(30 seconds)"
        )
    count = int(match.group(1))
    if count < 1:
        raise ScheduleError(f"rate: the number in {expression!r} must be at least 1")
    period = count * _RATE_UNITS[match.group(2).lower().rstrip("s")]
    if period > _RATE_MAX_SECONDS:
        raise ScheduleError(
            f"rate: {expression!r} is longer than {_RATE_MAX_SECONDS // 86400} days;"
            " use a cron expression with a year field for rarer schedules"
        )
    return RateSchedule(expression, zone, period)


def parse_instant(text: str, zone: tzinfo, what: str = "time") -> datetime:
    """Parse ISO 8601; a naive value is wall-clock time in ``zone``. Returns UTC.

    A naive time inside a spring-forward gap is the first real instant after the gap. An
    instant within a day of the ends of datetime's range is refused: applying a UTC offset
    to it, anywhere later, would overflow.
    """
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError as exc:
        raise ScheduleError(
            f"{what}: {text!r} is not an ISO 8601 time such as 2026-12-01T18:30:00 "
            "or 2026-12-01T18:30:00+01:00"
        ) from exc
    try:
        if moment.tzinfo is None:
            instant = _wall_instants(moment.replace(tzinfo=zone), elapsed=False)[0]
        else:
            instant = moment.astimezone(UTC)
    except (OverflowError, ValueError):
        instant = None
    if instant is None or not _EARLIEST <= instant <= _LATEST:
        raise ScheduleError(
            f"{what}: {text!r} is out of range: times must lie between"
            f" {_EARLIEST.date()} and {_LATEST.date()} in UTC"
        )
    return instant


def _parse_at(expression: str, zone: tzinfo) -> AtSchedule:
    inner = expression.strip()[3:-1]
    return AtSchedule(expression, zone, parse_instant(inner, zone, "at"))


@lru_cache(maxsize=8192)
def parse(expression: str, timezone_name: str = "UTC") -> Schedule:
    """Parse ``expression`` for jobs in ``timezone_name``. Cached: many jobs share few forms.

    Raises ScheduleError with a message naming the field, the value and the allowed form.
    """
    if not isinstance(expression, str):
        raise ScheduleError(f"expected a string, got {type(expression).__name__}")
    zone = get_zone(timezone_name)
    text = expression.strip()
    if not text:
        raise ScheduleError("empty schedule; " + _FORMS)
    lowered = text.lower()
    if lowered.startswith("at(") and lowered.endswith(")"):
        return _parse_at(text, zone)
    if lowered.startswith("rate("):
        return _parse_rate(text, zone)
    if lowered.startswith("cron("):
        raise ScheduleError(
            "write the cron fields without 'cron(...)': EventBridge numbers days 1-7 from"
            " Sunday, lambdacron uses cron's 0-7 (0 and 7 are Sunday)"
        )
    if text.startswith("@"):
        if lowered not in NICKNAMES:
            known = " ".join(NICKNAMES)
            raise ScheduleError(f"unknown nickname {text!r}; known: {known}")
        return _parse_cron(text, NICKNAMES[lowered].split(), zone)
    return _parse_cron(text, text.split(), zone)


def validate(expression: str, timezone_name: str, now: datetime) -> Schedule:
    """Parse and also reject a recurring schedule that can never fire again after ``now``.

    A one-time ``at()`` in the past is valid: the engine runs it at the next tick.
    """
    schedule = parse(expression, timezone_name)
    if not schedule.one_time and schedule.next_after(now) is None:
        raise ScheduleError(f"{expression!r} never fires after {now.isoformat()}")
    return schedule
