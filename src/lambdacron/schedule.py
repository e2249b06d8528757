"""Schedule expressions: parse a `when` string once, evaluate it with time passed in.

Forms (see docs/schedules.md for the full reference):

* ``M H DOM MON DOW``: Vixie/Debian cron, evaluated by cronsim.
* ``M H DOM MON DOW YEAR``: the same plus a year field (1970-2199).
* ``M H DOM MON DOW YEAR *``: the 7-field form of the seed README's sample jobs; the seventh
  field must be ``*``.
* ``@yearly`` ``@annually`` ``@monthly`` ``@weekly`` ``@daily`` ``@midnight`` ``@hourly``.
* EventBridge extras in the cron fields: ``?``, ``L``, ``NL``, ``DOW#N``, ``NW``, ``LW``.
* ``at(2026-12-01T18:30:00)``: one time; a naive time is wall-clock time in the job's zone.
* ``rate(N minutes|hours|days)``: every N units, aligned to the Unix epoch in UTC.

Every schedule answers two questions, both with aware datetimes in UTC:
``next_after(t)`` (the first fire time strictly after t) and
``latest_at_or_before(t)`` (the last fire time not after t).
"""

from __future__ import annotations

import calendar
import re
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, tzinfo
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError

from .errors import ScheduleError

YEAR_MIN, YEAR_MAX = 1970, 2199
_ONE_SECOND = timedelta(seconds=1)

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


@lru_cache(maxsize=512)
def get_zone(name: str) -> tzinfo:
    """Return the IANA zone ``name``; ``UTC`` maps to the fixed UTC offset."""
    if name in ("UTC", "Z", "Etc/UTC"):
        return UTC
    if not isinstance(name, str) or not name or name.startswith(("/", ".")) or ".." in name:
        raise ScheduleError(f"timezone: {name!r} is not an IANA time zone name")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError) as exc:
        raise ScheduleError(
            f"timezone: unknown time zone {name!r} (use an IANA name such as 'Europe/Berlin')"
        ) from exc


def _is_imaginary(local: datetime) -> bool:
    """True when a wall-clock time does not exist in its zone (skipped by a DST change)."""
    return local != local.astimezone(UTC).astimezone(local.tzinfo)


def _resolve_wall_time(local: datetime) -> datetime:
    # A wall time inside a spring-forward gap fires at the first real instant after it,
    # which is what Debian cron and cronsim do for fixed-time jobs.
    local = local.replace(fold=0)
    while _is_imaginary(local):
        local = (local + timedelta(minutes=1)).replace(second=0)
    return local


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
        ts = int(_to_utc(after).timestamp() // self.period + 1) * self.period
        return datetime.fromtimestamp(ts, UTC)

    def latest_at_or_before(self, moment: datetime) -> datetime | None:
        ts = int(_to_utc(moment).timestamp() // self.period) * self.period
        return datetime.fromtimestamp(ts, UTC)


# --------------------------------------------------------------------------- cron


@dataclass(frozen=True)
class CronSchedule(Schedule):
    """A cron expression; cronsim evaluates the five standard fields.

    The year field and ``NW`` (nearest weekday) are filters layered on top: when a
    candidate from cronsim falls in a wrong year or day, the search restarts at the
    next possible year or day, so a filter never walks minute by minute.
    """

    expression: str
    zone: tzinfo
    cron: str  # five canonical fields handed to cronsim
    years: frozenset[int] | None = None
    nearest_weekday: int | None = None  # N of "NW"
    _year_list: tuple[int, ...] = field(default=(), repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.years is not None:
            object.__setattr__(self, "_year_list", tuple(sorted(self.years)))

    # -- filters

    def _day_ok(self, day: date) -> bool:
        if self.nearest_weekday is None:
            return True
        return day.day == _nearest_weekday(day.year, day.month, self.nearest_weekday)

    def _year_after(self, year: int) -> int | None:
        return next((y for y in self._year_list if y > year), None)

    def _year_before(self, year: int) -> int | None:
        return next((y for y in reversed(self._year_list) if y < year), None)

    def _local_midnight(self, day: date) -> datetime:
        return datetime(day.year, day.month, day.day, tzinfo=self.zone)

    # -- evaluation

    def next_after(self, after: datetime) -> datetime | None:
        after_utc = _to_utc(after, "after")
        cursor = after_utc.astimezone(self.zone)
        while True:
            try:
                local = next(CronSim(self.cron, cursor))
            except StopIteration:  # cronsim found nothing within 50 years
                return None
            found = local.astimezone(UTC)
            if found.year > YEAR_MAX:
                return None
            if found <= after_utc:
                # cronsim works in naive wall time for fixed-time jobs, so a start inside
                # a repeated (fall-back) hour can yield the first pass, which is earlier.
                cursor = local
                continue
            if self.years is not None and local.year not in self.years:
                year = self._year_after(local.year)
                if year is None:
                    return None
                cursor = datetime(year, 1, 1, tzinfo=self.zone) - _ONE_SECOND
                continue
            if not self._day_ok(local.date()):
                cursor = self._local_midnight(local.date() + timedelta(days=1)) - _ONE_SECOND
                continue
            return found

    def latest_at_or_before(self, moment: datetime) -> datetime | None:
        moment_utc = _to_utc(moment, "moment")
        # cronsim's reverse mode yields times strictly before its start.
        cursor = (moment_utc.replace(microsecond=0) + _ONE_SECOND).astimezone(self.zone)
        candidate: datetime | None = None
        while True:
            try:
                local = next(CronSim(self.cron, cursor, reverse=True))
            except StopIteration:
                break
            found = local.astimezone(UTC)
            if found.year < YEAR_MIN:
                break
            if found > moment_utc:
                cursor = local
                continue
            if self.years is not None and local.year not in self.years:
                year = self._year_before(local.year)
                if year is None:
                    break
                cursor = datetime(year + 1, 1, 1, tzinfo=self.zone)
                continue
            if not self._day_ok(local.date()):
                cursor = self._local_midnight(local.date())
                continue
            candidate = found
            break
        if self.zone is UTC:
            return candidate
        # In a zone with DST, reverse search in naive wall time can miss the first pass of
        # a repeated hour; the forward search is authoritative, so walk it up to `moment`.
        probe = candidate if candidate is not None else moment_utc - timedelta(days=2)
        while (nxt := self.next_after(probe)) is not None and nxt <= moment_utc:
            candidate = probe = nxt
        return candidate


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


def _parse_range_term(spec: _Field, term: str) -> tuple[str, list[int]]:
    """Parse ``*``, ``*/S``, ``A``, ``A-B``, ``A-B/S`` or ``A/S``: canonical text and values."""
    base, slash, step_text = term.partition("/")
    step = 1
    if slash:
        if not step_text.isdigit() or not step_text.isascii():
            raise ScheduleError(f"{spec.name}: step {step_text!r} in {term!r} is not a number")
        step = int(step_text)
        if step < 1:
            raise ScheduleError(f"{spec.name}: step in {term!r} must be at least 1")
    if base == "*":
        start, end, text = spec.low, spec.high, "*"
    elif "-" in base:
        first, _, last = base.partition("-")
        if not first or not last:
            raise ScheduleError(f"{spec.name}: {term!r} is not a valid range (write A-B)")
        start, end = spec.value(first, term), spec.value(last, term)
        if end < start:
            raise ScheduleError(
                f"{spec.name}: range {term!r} runs backwards ({start} > {end}); ranges do not wrap"
            )
        text = f"{start}-{end}"
    else:
        if not base:
            raise ScheduleError(f"{spec.name}: {term!r} has no value before '/'")
        start = spec.value(base, term)
        end = spec.high if slash else start
        text = str(start)
    if slash:
        text += f"/{step}"
    return text, list(range(start, end + 1, step))


def _split_terms(spec: _Field, text: str) -> list[str]:
    terms = text.split(",")
    if any(not t for t in terms):
        raise ScheduleError(f"{spec.name}: empty item in list {text!r}")
    return terms


def _parse_plain(spec: _Field, text: str) -> tuple[str, set[int]]:
    canon: list[str] = []
    values: set[int] = set()
    for term in _split_terms(spec, text):
        c, v = _parse_range_term(spec, term)
        canon.append(c)
        values.update(v)
    return ",".join(canon), values


def _parse_dom(text: str) -> tuple[str, set[int], int | None]:
    """Day of month: plain terms, ``L``, ``LW``, or a lone ``NW``. Returns (canon, days, W)."""
    upper = text.upper()
    if upper in ("L", "LW"):
        return upper, set(), None
    if upper.endswith("W"):
        number = upper[:-1]
        if not number:
            raise ScheduleError("day-of-month: 'W' needs a day before it, e.g. 15W or LW")
        if "," in upper or "-" in upper or "/" in upper:
            raise ScheduleError(
                f"day-of-month: {text!r}: 'W' takes a single day (e.g. 15W), not a list or range"
            )
        return "*", set(), _DOM.value(number, text)
    canon: list[str] = []
    days: set[int] = set()
    for term in _split_terms(_DOM, text):
        if term.upper() in ("L", "LW"):
            canon.append(term.upper())
            continue
        if term.upper().endswith("W"):
            raise ScheduleError(f"day-of-month: {text!r}: 'W' cannot be used in a list")
        c, v = _parse_range_term(_DOM, term)
        canon.append(c)
        days.update(v)
    return ",".join(canon), days, None


def _parse_dow(text: str) -> str:
    canon = []
    for term in _split_terms(_DOW, text):
        upper = term.upper()
        if "#" in upper:
            day, _, nth = upper.partition("#")
            if not nth.isdigit() or not nth.isascii() or not 1 <= int(nth) <= 5:
                raise ScheduleError(f"day-of-week: {term!r}: the N of DAY#N must be 1-5")
            if not day or any(c in day for c in "-/*"):
                raise ScheduleError(f"day-of-week: {term!r}: DAY#N takes a single day, e.g. MON#2")
            canon.append(f"{_DOW.value(day, term)}#{int(nth)}")
        elif upper.endswith("L"):
            day = term[:-1]
            if not day or any(c in day for c in "-/*"):
                raise ScheduleError(
                    f"day-of-week: {term!r}: 'L' needs a single day before it, e.g. 5L or FRIL"
                    " (last Friday of the month)"
                )
            canon.append(f"{_DOW.value(day, term)}L")
        else:
            canon.append(_parse_range_term(_DOW, term)[0])
    return ",".join(canon)


def _check_can_fire(dom_canon: str, days: set[int], months: set[int], day_and: bool) -> None:
    if not day_and or not days or any(t in dom_canon.split(",") for t in ("L", "LW")):
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
    minute_c = _parse_plain(_MINUTE, minute)[0]
    hour_c = _parse_plain(_HOUR, hour)[0]
    month_c, months = _parse_plain(_MONTH, month)
    dom_c, days, nearest = ("*", set[int](), None) if dom == "?" else _parse_dom(dom)
    dow_c = "*" if dow == "?" else _parse_dow(dow)
    if nearest is not None and not dow_c.startswith("*"):
        raise ScheduleError(
            f"day-of-month: {dom!r} cannot be combined with a restricted day-of-week;"
            " write '?' in day-of-week"
        )
    # Debian cron: if either day field starts with '*', both must match; otherwise either.
    day_and = dom_c.startswith("*") or dow_c.startswith("*")
    _check_can_fire(dom_c, days, months, day_and)
    years: frozenset[int] | None = None
    if len(fields) == 6 and fields[5] not in ("*", "?"):
        years = frozenset(_parse_plain(_YEAR, fields[5])[1])
    cron = " ".join((minute_c, hour_c, dom_c, month_c, dow_c))
    try:
        CronSim(cron, datetime(2000, 1, 1, tzinfo=UTC))
    except CronSimError as exc:  # our own checks should have caught everything first
        raise ScheduleError(f"cannot evaluate {expression!r}: {exc}") from exc
    return CronSchedule(expression, zone, cron, years, nearest)


_RATE = re.compile(r"rate\(\s*(\d+)\s+(minute|minutes|hour|hours|day|days)\s*\)", re.IGNORECASE)
_RATE_UNITS = {"minute": 60, "hour": 3600, "day": 86400}
#: A longer period would put the next fire time past what a datetime can hold.
_RATE_MAX_SECONDS = 36500 * 86400


def _parse_rate(expression: str, zone: tzinfo) -> RateSchedule:
    match = _RATE.fullmatch(expression)
    if not match:
        raise ScheduleError(
            f"rate: {expression!r} is not of the form rate(N minutes|hours|days),"
            " e.g. rate(5 minutes)"
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
    """Parse ISO 8601; a naive value is wall-clock time in ``zone``. Returns UTC."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError as exc:
        raise ScheduleError(
            f"{what}: {text!r} is not an ISO 8601 time such as 2026-12-01T18:30:00 "
            "or 2026-12-01T18:30:00+01:00"
        ) from exc
    if moment.tzinfo is None:
        moment = _resolve_wall_time(moment.replace(tzinfo=zone))
    return moment.astimezone(UTC)


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
