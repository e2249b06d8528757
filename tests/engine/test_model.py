"""Exactly once, or you are told: the real engine against a model of the README's promise.

A hypothesis state machine drives the engine on a real directory store with a fake clock:
the clock moves by random amounts (nothing, a fraction of a second, minutes, hours), ticks
come, each run ends as drawn (ok, failed, timeout, or the action raising), and between
ticks the user edits the job file: its schedule, time zone, retry policy, deadline, limit,
payload, enabled; deletes it; places a new job under the same key; breaks it and repairs it.

Three stories in four give the engine a delivery, as ``serve`` and the SQS queue do: each
tick plans the occurrences of its lookahead, and the machine delivers them at their second,
late, twice (SQS delivers at least once), early, or never (lost), between ticks and edits.
Some stories start up to three hours before a daylight-saving change of Berlin, New York or
Lord Howe, with jobs in those zones or in Kathmandu's +05:45, and may tick each minute
across the change. The notice destination may fail a few
tries, refuse every try, or the runner may be killed between the write that ends an
occurrence and its notice (a ``BaseException`` out of the notifier, after which the runner
is replaced by a fresh one with another process id, as a dead process is).

Beside the engine, a model says on its own what every tick and every delivery must run and
whom it must tell: its schedules are matched minute by minute by brute force with
``zoneinfo``'s wall clock and the gap and fold rules of docs/schedules.md, never by
lambdacron's ``schedule``/``due`` code. After every step the runs the action saw, the
notices the notifier got or gave up on, what was planned and the file the store holds are
compared with it, and the promise is checked on its own terms as well: nothing runs before
its time, no occurrence of a job runs more often than its retries allow or again after it
ended, and each one that ended not ok is told (or its notice counted as failed) once.

Only the action and the notifier's transport are stand-ins (in-process, so a run costs no
process); the store, its files and their modification times are real.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import tempfile
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import Enum
from functools import cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from helpers import FakeClock, utc
from lambdacron.actions.base import Action, Result, RunContext, RunType, Spec, Status
from lambdacron.actions.command import CommandSpec
from lambdacron.engine import Engine
from lambdacron.engine.delivery import Delivered, Delivery, DeliveryResult, Occurrence
from lambdacron.engine.outcomes import Policies
from lambdacron.engine.report import Outcome, TickReport
from lambdacron.notify import Delivery as Sent
from lambdacron.notify import Destination, Notice, NoticeKind, Notifier
from lambdacron.store import LocalStore

KEY = "job.json"
START = utc(2026, 6, 1, 17, 58, 30)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
#: Where every notice goes: the runner's default, so no job needs its own ``on_failure``.
TELL = Destination(NoticeKind.COMMAND, ("model-notice",))
#: Instants a zone's clock changes (UTC): a story may start up to a few hours before one.
CHANGES = (
    ("Europe/Berlin", utc(2026, 3, 29, 1)),  # 02:00 -> 03:00
    ("Europe/Berlin", utc(2026, 10, 25, 1)),  # 03:00 -> 02:00
    ("America/New_York", utc(2026, 3, 8, 7)),  # 02:00 -> 03:00
    ("America/New_York", utc(2026, 11, 1, 6)),  # 02:00 -> 01:00
    ("Australia/Lord_Howe", utc(2026, 4, 4, 15)),  # 02:00 -> 01:30
    ("Australia/Lord_Howe", utc(2026, 10, 3, 15, 30)),  # 02:00 -> 02:30
)
#: A job's zone: none (UTC), the zone whose change the story starts before, or one of these.
HERE = "here"
ZONES = (
    None,
    HERE,
    HERE,
    "Europe/Berlin",
    "America/New_York",
    "Australia/Lord_Howe",
    "Asia/Kathmandu",
)
#: One-time jobs placed before and after their time, as offsets from the story's start.
AT_BEFORE, AT_AFTER = "at(start - 58m30s)", "at(start + 11m50s)"
#: Schedules the model matches itself, minute by minute (minute field, hour field): some
#: follow elapsed time (a field starting with ``*``), some a fixed time of day, in a gap or
#: a fold of some zone; one-time jobs, absolute or in the job's zone (in a gap of Berlin's
#: and of Lord Howe's).
WHENS = (
    "* * * * *",
    "* * * * *",
    "*/5 * * * *",
    "*/5 * * * *",
    "7,37 * * * *",
    "0 */2 * * *",
    "*/15 1-3 * * *",
    "0,30 0-23 * * *",
    "15,45 0-23 * * *",
    "30 2 * * *",
    "15 2 * * *",
    "45 1 * * *",
    AT_BEFORE,
    AT_AFTER,
    "at(2026-03-29T02:30:00)",
    "at(2026-10-04T02:15:00)",
)

#: (job identity, occurrence)
Occ = tuple[int, datetime]
#: (job identity, occurrence, reason, attempts)
Told = tuple[int, datetime, str, int]
#: (when, timezone, enabled): what a change of cancels a planned run
Schedule = tuple[str, str, bool]


class RunEnd(Enum):
    """How the stand-in action ends a run."""

    OK = "ok"
    FAILED = "failed"
    TIMEOUT = "timeout"
    RAISES = "raises"  # a bug of lambdacron's own, as far as the engine can tell


class ModelAction(Action):
    """The ``command`` action, in process: ends each run as told, and records it. The job's
    identity is its command's second argument."""

    run_type = RunType.COMMAND

    def __init__(self) -> None:
        self.end = RunEnd.OK
        self.runs: list[Occ] = []
        self.started: list[datetime] = []

    def run(self, spec: Spec, context: RunContext) -> Result:
        assert isinstance(spec, CommandSpec)
        self.runs.append((int(spec.argv[1]), context.scheduled))
        self.started.append(context.started)
        started = context.started
        match self.end:
            case RunEnd.OK:
                return Result(Status.OK, started, 0, exit_code=0)
            case RunEnd.FAILED:
                return Result(Status.FAILED, started, 0, exit_code=1, error="exit status 1")
            case RunEnd.TIMEOUT:
                return Result(Status.TIMEOUT, started, 0, exit_code=-9, error="timed out")
            case RunEnd.RAISES:
                raise RuntimeError("the action broke")


class Killed(BaseException):
    """The runner's process dies here: nothing after this point of the engine runs, and no
    ``except Exception`` of its catches it."""


class Destiny(Enum):
    """What becomes of the notices to come."""

    DELIVERED = 0  # at the first try
    FLAKY = 1  # the first try fails
    FLAKIER = 2  # the first two tries fail
    REFUSED = 99  # every try fails: given up on, logged and counted
    KILLED = -1  # the runner dies as it sends the next notice


class RecordingNotifier(Notifier):
    """The real notifier (its tries and its giving up), whose transport is a list: each try
    of a notice fails, succeeds, or kills the runner, as its destiny says."""

    def __init__(self) -> None:
        super().__init__(sleep=lambda seconds: None)
        self.destiny = Destiny.DELIVERED
        #: Each notice delivered or given up on, whether it was delivered, and its tries.
        self.sent: list[tuple[Notice, bool, int]] = []
        self._tries = 0

    def send(self, destination: Destination, notice: Notice) -> Sent:
        assert destination == TELL
        self._tries = 0
        sent = super().send(destination, notice)
        self.sent.append((notice, sent.delivered, self._tries))
        return sent

    def _deliver(self, destination: Destination, notice: Notice) -> None:
        self._tries += 1
        if self.destiny is Destiny.KILLED:
            self.destiny = Destiny.DELIVERED  # the next runner's notices go out
            raise Killed
        if self._tries <= self.destiny.value:
            raise OSError("the destination is down")


class Recorder(Delivery):
    """The delivery queue: keeps what each tick plans, for the machine to deliver."""

    def __init__(self, lookahead: timedelta) -> None:
        self.lookahead = lookahead
        self.planned: list[Occurrence] = []

    def plan(self, occurrences: Sequence[Occurrence]) -> None:
        self.planned.extend(occurrences)


# ---------------------------------------------------------------------- schedules, by hand

MINUTE = timedelta(minutes=1)


def _matches(field: str, value: int) -> bool:
    for part in field.split(","):
        span, _, step = part.partition("/")
        if span == "*":
            low, high = 0, 59
        elif "-" in span:
            low, high = (int(end) for end in span.split("-"))
        else:
            low = high = int(span)
        if low <= value <= high and (value - low) % int(step or 1) == 0:
            return True
    return False


def _shows(when: str, wall: datetime) -> bool:
    minutes, hours = when.split()[:2]
    return _matches(minutes, wall.minute) and _matches(hours, wall.hour)


def _elapsed(when: str) -> bool:
    """docs/schedules.md: a minute or hour field starting with ``*`` follows elapsed time."""
    minutes, hours = when.split()[:2]
    return minutes.startswith("*") or hours.startswith("*")


def _wall(moment: datetime, zone: ZoneInfo) -> datetime:
    return moment.astimezone(zone).replace(tzinfo=None)


def fires(when: str, zone: ZoneInfo, moment: datetime) -> bool:
    """Whether cron ``when`` fires at ``moment`` (a whole minute, UTC), by the rules of
    docs/schedules.md: elapsed time fires whenever the clock shows a matching time (both
    passes of a repeated one, never a skipped one); a fixed time fires on the first pass of
    a repeated time, and a skipped time fires at the first instant after its gap."""
    shown = moment.astimezone(zone)
    if _elapsed(when):
        return _shows(when, shown)
    if shown.fold == 0 and _shows(when, shown):
        return True
    skipped = _wall(moment - MINUTE, zone) + MINUTE
    while skipped < shown.replace(tzinfo=None):  # the wall times a jump forward skipped
        if _shows(when, skipped):
            return True
        skipped += MINUTE
    return False


@cache
def one_time(when: str, zone: ZoneInfo) -> datetime:
    """The instant ``at(...)`` fires at: absolute with ``Z``; else the wall time (a whole
    minute here) in ``zone``: the first instant that shows it, or the first instant after
    the gap it falls in."""
    moment = datetime.fromisoformat(when[3:-1])
    if moment.tzinfo is not None:
        return moment.astimezone(UTC)
    assert moment.second == moment.microsecond == 0
    probe = moment.replace(tzinfo=UTC) - timedelta(hours=16)  # before it, in every zone
    while _wall(probe, zone) < moment:
        probe += MINUTE
    return probe


def latest(when: str, zone: ZoneInfo, after: datetime | None, now: datetime) -> datetime | None:
    """The latest moment ``t`` with ``after < t <= now`` at which ``when`` fires."""
    if when.startswith("at("):
        moment = one_time(when, zone)
        return moment if (after is None or after < moment) and moment <= now else None
    assert after is not None
    moment = now.replace(second=0, microsecond=0)
    while moment > after:
        if fires(when, zone, moment):
            return moment
        moment -= MINUTE
    return None


def between(when: str, zone: ZoneInfo, after: datetime, until: datetime) -> list[datetime]:
    """Every moment in ``(after, until]`` at which ``when`` fires."""
    if when.startswith("at("):
        moment = one_time(when, zone)
        return [moment] if after < moment <= until else []
    found = []
    moment = after.replace(second=0, microsecond=0) + MINUTE
    while moment <= until:
        if fires(when, zone, moment):
            found.append(moment)
        moment += MINUTE
    return found


def instant(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


@dataclass
class Expected:
    """The model's job: what the user wrote, and what the runner must have made of it."""

    ident: int
    user: dict[str, Any]  # the user's fields, in their order
    placed: datetime  # the modification time of the user's last write
    seen: Schedule | None = None  # the schedule as a runner last recorded it
    since: datetime | None = None  # when that schedule took effect
    last: datetime | None = None  # the last occurrence taken
    count: int = 0
    retry: tuple[datetime, int, datetime] | None = None  # occurrence, attempt, at
    dead_claim: tuple[datetime, int] | None = None  # left by a run that raised
    telling: Told | None = None  # a claim held for a notice its runner died sending

    @property
    def schedule(self) -> Schedule:
        return (
            self.user["when"],
            self.user.get("timezone", "UTC"),
            self.user.get("enabled", True),
        )

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.schedule[1])


@dataclass(frozen=True)
class Planned:
    """An occurrence handed to the delivery, and the schedule of the job it was planned
    from: a change of that schedule by the time of its delivery cancels it."""

    occurrence: Occurrence
    schedule: Schedule


@dataclass
class Step:
    """What the model says one tick or delivery must do."""

    runs: list[Occ]
    told: list[Told]
    killed: bool = False
    cancelled: bool = False  # a delivery whose plan no longer holds


retries = st.one_of(
    st.none(),
    st.builds(
        lambda attempts, backoff, extra, on_interrupted: {
            "attempts": attempts,
            "backoff_seconds": backoff,
            "max_backoff_seconds": backoff + extra,
            "on_interrupted": on_interrupted,
        },
        st.integers(1, 4),
        st.sampled_from([0, 5, 90, 1200]),
        st.sampled_from([0, 30, 900]),
        st.booleans(),
    ),
)
# 60 and 600: an occurrence's deadline falls on a minute boundary, which ticks reach exactly.
deadlines = st.sampled_from([None, 0, 45, 60, 600, 7200])
limits = st.sampled_from([0, 0, 1, 2, 3])
zones = st.sampled_from(ZONES)
edits = st.one_of(
    st.tuples(st.just("when"), st.sampled_from(WHENS)),
    st.tuples(st.just("timezone"), zones),
    st.tuples(st.just("retry"), retries),
    st.tuples(st.just("deadline_seconds"), deadlines),
    st.tuples(st.just("enabled"), st.booleans()),
    st.tuples(st.just("max_number_executions"), limits),
    st.tuples(st.just("payload"), st.integers(0, 9)),
)
# Milliseconds: the same instant again, within a second, within minutes, up to hours.
steps = st.one_of(
    st.just(0),
    st.integers(1, 1_000),
    st.integers(1_000, 600_000),
    st.integers(1_000, 600_000),
    st.integers(600_000, 4 * 3_600_000),
)
# Where a story starts: a June evening in UTC, or up to three hours before a change.
starts = st.one_of(
    st.just(("UTC", START, None)),
    st.builds(
        lambda change, minutes, seconds: (
            change[0],
            change[1] - timedelta(minutes=minutes, seconds=seconds),
            change[1],
        ),
        st.sampled_from(CHANGES),
        st.integers(0, 180),
        st.sampled_from([0, 0, 30, 59]),
    ),
)
# How late a delivery comes after its time, in milliseconds (SQS's delay is exact to a few).
lateness = st.sampled_from([0, 0, 0, 3, 250, 999, 20_000, 90_000, 400_000])


class EngineAgainstModel(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.tmp = Path(tempfile.mkdtemp(prefix="lambdacron-model-"))
        self.root = self.tmp / "jobs"
        self.root.mkdir()
        self.start = START
        self.here = "UTC"
        self.change: datetime | None = None  # the DST change the story starts before
        self.clock = FakeClock(START)
        self.action = ModelAction()
        self.notifier = RecordingNotifier()
        self.recorder: Recorder | None = None
        self.seed = 0
        self.alive: set[int] = set()  # the process ids of runners still alive
        self.engine: Engine | None = None
        self.job: Expected | None = None
        self.invalid: bytes | None = None  # the bytes of a broken file in place
        self.before_break: bytes | None = None  # what the user repairs it to
        self.idents = 0
        self.writes = 0
        # Planned and not yet delivered (or lost); and delivered, to be delivered again.
        self.mailbox: list[Planned] = []
        self.delivered: list[Planned] = []
        # The promise on its own terms, over every job identity this run has seen.
        self.attempts_run: Counter[Occ] = Counter()
        self.most_attempts: dict[int, int] = {}
        self.ended_ok: set[Occ] = set()
        self.told: Counter[tuple[int, datetime, str]] = Counter()
        #: The times of the retries the model made in the step at hand: planned when near.
        self.retries_made: set[datetime] = set()

    @property
    def runner(self) -> Engine:
        assert self.engine is not None
        return self.engine

    def _engine(self) -> Engine:
        """A runner of its own process id: a claim of a runner replaced since is dead, as
        its process is gone."""
        self.seed += 1
        pid = 40_000 + self.seed
        self.alive = {pid}
        return Engine(
            LocalStore(self.root),
            {RunType.COMMAND: self.action},
            clock=self.clock,
            workers=2,
            pid=pid,
            is_alive=lambda pid: pid in self.alive,
            delivery=self.recorder,
            policies=Policies(on_failure=TELL),
            notifier=self.notifier,
            rng=random.Random(self.seed),
        )

    def teardown(self) -> None:
        if self.engine is not None:
            self.engine.close()
        shutil.rmtree(self.tmp, ignore_errors=True)

    # ------------------------------------------------------------------ the user's writes

    @property
    def path(self) -> Path:
        return self.root / KEY

    def _write(self, body: bytes) -> datetime:
        """Write the file as an editor that saves atomically does, stamped with the fake
        clock (plus a microsecond per write, so that no two versions share a stamp)."""
        self.writes += 1
        stamp = (self.clock.now - EPOCH) // timedelta(microseconds=1) + self.writes
        temp = self.root / f".edit-{self.writes}.tmp"
        temp.write_bytes(body)
        os.utime(temp, ns=(stamp * 1000, stamp * 1000))
        os.replace(temp, self.path)
        return datetime.fromtimestamp(os.stat(self.path).st_mtime_ns / 1e9, UTC)

    def _track_attempts(self) -> None:
        if self.job is not None:
            retry = self.job.user.get("retry")
            attempts = retry["attempts"] if retry else 1
            ident = self.job.ident
            self.most_attempts[ident] = max(self.most_attempts.get(ident, 1), attempts)

    def _edit(self, **changes: Any) -> None:
        """Read the file, change the user's fields, write it back: the runner's fields stay."""
        assert self.job is not None and self.invalid is None
        document = json.loads(self.path.read_bytes())
        for name, value in changes.items():
            for target in (document, self.job.user):
                if value is None:
                    target.pop(name, None)
                else:
                    target[name] = value
        self.job.placed = self._write(json.dumps(document, indent=2).encode())
        self._track_attempts()

    def _when(self, when: str) -> str:
        offsets = {AT_BEFORE: -timedelta(minutes=58, seconds=30), AT_AFTER: timedelta(0)}
        offsets[AT_AFTER] = timedelta(minutes=11, seconds=50)
        if when in offsets:
            return f"at({(self.start + offsets[when]).strftime('%Y-%m-%dT%H:%M:%SZ')})"
        return when

    def _zone(self, zone: str | None) -> str | None:
        return self.here if zone == HERE else zone

    # ------------------------------------------------------------------ rules

    @initialize(
        start=starts,
        lookahead=st.sampled_from([None, 70, 150, 900]),
        when=st.sampled_from(WHENS),
        zone=zones,
        retry=retries,
        deadline=deadlines,
        limit=limits,
    )
    def place_first(
        self,
        start: tuple[str, datetime, datetime | None],
        lookahead: int | None,
        when: str,
        zone: str | None,
        retry: dict[str, Any] | None,
        deadline: int | None,
        limit: int,
    ) -> None:
        """The story's start, and whether its runner plans ahead (``serve``, or a queue)."""
        self.here, self.start, self.change = start
        self.clock.now = self.start
        if lookahead is not None:
            self.recorder = Recorder(timedelta(seconds=lookahead))
        self.engine = self._engine()
        self.place_new(when, zone, retry, deadline, limit)

    @rule(when=st.sampled_from(WHENS), zone=zones, retry=retries, deadline=deadlines, limit=limits)
    def place_new(
        self,
        when: str,
        zone: str | None,
        retry: dict[str, Any] | None,
        deadline: int | None,
        limit: int,
    ) -> None:
        """A new job under the key: a file with none of the runner's fields."""
        self.idents += 1
        user: dict[str, Any] = {
            "when": self._when(when),
            "note": {"kept": [self.idents, "as is"], "x": 1.5},
            "max_number_executions": limit,
            "run": {"type": "command", "details": {"command": ["model", str(self.idents)]}},
        }
        if (timezone := self._zone(zone)) is not None:
            user["timezone"] = timezone
        if retry is not None:
            user["retry"] = retry
        if deadline is not None:
            user["deadline_seconds"] = deadline
        self.invalid = self.before_break = None
        placed = self._write(json.dumps(user, indent=2).encode())
        self.job = Expected(self.idents, user, placed)
        self._track_attempts()

    # With no job in place, most of what could happen is nothing: place one soon.
    @precondition(lambda self: self.job is None)
    @rule(
        when=st.sampled_from(WHENS),
        zone=zones,
        retry=retries,
        deadline=deadlines,
        limit=limits,
        then_tick=st.booleans(),
    )
    def place_again(
        self,
        when: str,
        zone: str | None,
        retry: dict[str, Any] | None,
        deadline: int | None,
        limit: int,
        then_tick: bool,
    ) -> None:
        self.place_new(when, zone, retry, deadline, limit)
        if then_tick:
            self.tick()

    @rule(milliseconds=steps)
    def advance(self, milliseconds: int) -> None:
        self.clock.advance(milliseconds=milliseconds)

    @rule(seconds=st.sampled_from([0, 0, 1, 30, 45]))
    def advance_to_the_next_minute(self, seconds: int) -> None:
        """To a minute's boundary exactly (or just after), where cron fires."""
        now = self.clock.now
        boundary = now.replace(second=0, microsecond=0) + timedelta(minutes=1)
        self.clock.now = boundary + timedelta(seconds=seconds)

    @rule(end=st.sampled_from(RunEnd))
    def runs_will_end(self, end: RunEnd) -> None:
        self.action.end = end

    @rule(destiny=st.sampled_from(Destiny))
    def notices_will_be(self, destiny: Destiny) -> None:
        """Delivered, after a failed try or two, refused at every try, or the runner killed
        between the write that ends the occurrence and its notice."""
        self.notifier.destiny = destiny

    @rule(end=st.sampled_from([RunEnd.FAILED, RunEnd.TIMEOUT]))
    def runs_will_fail_and_their_runner_die_telling(self, end: RunEnd) -> None:
        self.runs_will_end(end)
        self.notifier.destiny = Destiny.KILLED

    @rule()
    def restart_the_runner(self) -> None:
        """A new engine: no cache, the index read back from the store."""
        self.runner.close()
        self.engine = self._engine()

    @precondition(lambda self: self.job is not None and self.invalid is None)
    @rule(change=edits)
    def edit(self, change: tuple[str, Any]) -> None:
        """One of the user's fields changed (None: removed), the runner's fields kept."""
        assert self.job is not None
        name, value = change
        if name == "payload":
            argv = ["model", str(self.job.ident), f"payload {value}"]
            name, value = "run", {"type": "command", "details": {"command": argv}}
        elif name == "when":
            value = self._when(value)
        elif name == "timezone":
            value = self._zone(value)
        self._edit(**{name: value})

    @precondition(lambda self: self.job is not None or self.invalid is not None)
    @rule()
    def delete(self) -> None:
        self.path.unlink()
        self.job = None
        self.invalid = self.before_break = None

    @precondition(lambda self: self.job is not None and self.invalid is None)
    @rule(broken=st.sampled_from([b'{"when": ', "bogus", "timeout_seconds"]))
    def break_the_file(self, broken: bytes | str) -> None:
        self.before_break = self.path.read_bytes()
        if isinstance(broken, bytes):
            body = broken
        else:
            document = json.loads(self.before_break)
            if broken == "bogus":
                document["when"] = "every now and then"
            else:
                document["timeout_seconds"] = -1
            body = json.dumps(document).encode()
        self._write(body)
        self.invalid = body

    @precondition(lambda self: self.invalid is not None)
    @rule()
    def repair(self) -> None:
        assert self.job is not None and self.before_break is not None
        self.job.placed = self._write(self.before_break)
        self.invalid = self.before_break = None

    # Ticks come often, most after the clock has moved: that is where the engine decides.
    @rule(milliseconds=steps)
    def advance_and_tick(self, milliseconds: int) -> None:
        self.advance(milliseconds)
        self.tick()

    @rule(seconds=st.sampled_from([0, 0, 1, 30, 45]))
    def tick_after_the_next_minute(self, seconds: int) -> None:
        self.advance_to_the_next_minute(seconds)
        self.tick()

    @precondition(
        lambda self: (
            self.change is not None and self.clock.now <= self.change + timedelta(minutes=30)
        )
    )
    @rule(seconds=st.sampled_from([0, 0, 1, 30]))
    def tick_each_minute_across_the_change(self, seconds: int) -> None:
        """A tick at each minute from half an hour before the story's DST change to half an
        hour after it, where a skipped time fires at the gap's end and a repeated one once
        or twice (or, with a delivery, each occurrence at its second)."""
        assert self.change is not None
        moment = max(self.clock.now, self.change - timedelta(minutes=30))
        moment = moment.replace(second=seconds, microsecond=0)
        while moment <= self.change + timedelta(minutes=30):
            if moment >= self.clock.now:
                self.clock.now = moment
                if self.mailbox:
                    self.advance_delivering(0)
                self.tick()
            moment += MINUTE

    @rule()
    def tick(self) -> None:
        now = self.clock.now
        self._step(lambda: self.runner.tick(now))

    # ------------------------------------------------------------------ deliveries

    @precondition(lambda self: self.mailbox)
    @rule(data=st.data(), late=lateness)
    def deliver(self, data: st.DataObject, late: int) -> None:
        """One planned occurrence, at its time or late (or now, if the clock has passed
        that): SQS's delay, or serve's timer, and a queue that does not keep order."""
        planned = self.mailbox.pop(data.draw(st.integers(0, len(self.mailbox) - 1)))
        self.clock.now = max(self.clock.now, planned.occurrence.at + timedelta(milliseconds=late))
        self._deliver(planned)

    @precondition(lambda self: self.mailbox)
    @rule(milliseconds=steps)
    def advance_delivering(self, milliseconds: int) -> None:
        """The clock moves on, and each occurrence planned up to then is delivered at its
        second, in time order, as a queue that loses nothing does."""
        until = self.clock.now + timedelta(milliseconds=milliseconds)
        while due := [p for p in self.mailbox if p.occurrence.at <= until]:
            planned = min(due, key=lambda p: p.occurrence.at)
            self.mailbox.remove(planned)
            self.clock.now = max(self.clock.now, planned.occurrence.at)
            self._deliver(planned)
        self.clock.now = until

    @precondition(lambda self: self.delivered)
    @rule(data=st.data())
    def deliver_again(self, data: st.DataObject) -> None:
        """A duplicate: SQS delivers at least once, and overlapping plans send it twice."""
        self._deliver(data.draw(st.sampled_from(self.delivered)))

    @precondition(lambda self: self.mailbox)
    @rule(data=st.data())
    def deliver_early(self, data: st.DataObject) -> None:
        """Delivered before its time (a clock that runs behind): nothing may run yet, and
        it stays planned."""
        planned = data.draw(st.sampled_from(self.mailbox))
        if planned.occurrence.at > self.clock.now:
            before = self.path.read_bytes() if self.path.exists() else None
            self._deliver(planned)
            assert (self.path.read_bytes() if self.path.exists() else None) == before

    @precondition(lambda self: self.mailbox)
    @rule(data=st.data())
    def lose(self, data: st.DataObject) -> None:
        """A delivery that never arrives: the catch-up of the next tick runs it."""
        self.mailbox.pop(data.draw(st.integers(0, len(self.mailbox) - 1)))

    def _deliver(self, planned: Planned) -> None:
        self.delivered.append(planned)
        self._step(lambda: self.runner.deliver([planned.occurrence])[0], planned)

    # ------------------------------------------------------------------ one step

    def _step(
        self, act: Callable[[], TickReport | DeliveryResult], planned: Planned | None = None
    ) -> None:
        """A tick or a delivery by the engine, and the same by the model: compared."""
        now = self.clock.now
        ran_before, started_before = len(self.action.runs), len(self.action.started)
        sent_before = len(self.notifier.sent)
        planned_before = len(self.recorder.planned) if self.recorder is not None else 0
        destiny = self.notifier.destiny
        job_before = self.job
        retry_before = self.job.retry if self.job is not None else None
        self.retries_made = set()
        outcome: TickReport | DeliveryResult | None
        try:
            outcome = act()
        except Killed:
            outcome = None
            # The process is gone: its successor starts afresh, and its claims are dead.
            self.runner.close()
            self.engine = self._engine()
        ran = self.action.runs[ran_before:]
        for started, (_, scheduled) in zip(self.action.started[started_before:], ran, strict=True):
            assert scheduled <= started <= now, f"{scheduled} ran at {started}, now {now}"
        told: list[Told] = []
        refused: list[Told] = []
        for notice, delivered, tries in self.notifier.sent[sent_before:]:
            assert notice.run is not None
            about = (
                int(notice.run["details"]["command"][1]),
                notice.occurrence,
                notice.reason.value,
                notice.attempts,
            )
            (told if delivered else refused).append(about)
            # Given up on after 3 tries (README: "tried 3 times, then logged and counted").
            assert tries == (3 if not delivered else min(destiny.value, 3) + 1), tries
        raised = self.action.end is RunEnd.RAISES and bool(ran)

        self._check_the_promise(ran, told + refused)
        if planned is None:
            expected = self._model_tick(now, raised, destiny)
        else:
            expected = self._model_delivery(now, planned, raised, destiny)
        assert ran == expected.runs, f"ran {ran}, the model says {expected.runs}"
        assert sorted(told + refused) == sorted(expected.told), (
            f"told {told}, refused {refused}, the model says {expected.told}"
        )
        assert (outcome is None) == expected.killed, "the runner should have died, or not"
        # Refused at every try: logged and counted, and nothing else changes (the file is
        # checked against the model all the same).
        assert (told if destiny is Destiny.REFUSED else refused) == []
        if self.recorder is not None:
            fresh = self.recorder.planned[planned_before:]
            killed = outcome is None
            self._check_the_plan(now, fresh, planned is not None, job_before, retry_before, killed)
        if outcome is None:
            return
        report = outcome.report if isinstance(outcome, DeliveryResult) else outcome
        internal = [e for e in report.events if e.outcome is Outcome.INTERNAL_ERROR]
        assert len(internal) == (1 if raised else 0), internal
        assert (report.notices, report.notices_failed) == (len(told), len(refused))
        assert report.store_errors == 0, report.events
        if isinstance(outcome, DeliveryResult):
            assert planned is not None
            self._check_the_delivery(now, outcome, planned, expected, raised)

    def _check_the_delivery(
        self,
        now: datetime,
        outcome: DeliveryResult,
        planned: Planned,
        expected: Step,
        raised: bool,
    ) -> None:
        if now < planned.occurrence.at:
            wanted = Delivered.EARLY
        elif raised:
            wanted = Delivered.RETRY  # a bug of lambdacron's own: the queue tries again
        elif expected.runs:
            wanted = Delivered.RAN
        elif expected.cancelled:
            wanted = Delivered.STALE  # the job is gone or rescheduled: forget the plan's rest
        else:
            wanted = Delivered.NOTHING
        assert outcome.outcome is wanted, (outcome.outcome, wanted)
        cancelled = [
            e
            for e in outcome.report.events
            if e.outcome is Outcome.CANCELLED and e.scheduled == planned.occurrence.at
        ]
        assert bool(cancelled) == expected.cancelled, outcome.report.events

    def _check_the_plan(
        self,
        now: datetime,
        fresh: list[Occurrence],
        by_delivery: bool,
        job: Expected | None,
        retry_before: tuple[datetime, int, datetime] | None,
        killed: bool,
    ) -> None:
        """What a tick or delivery planned: each retry at its time, each occurrence of the
        schedule in the lookahead, nothing else; and, where no retry, limit or claim has a
        say, every occurrence of the lookahead after what the job has taken."""
        assert self.recorder is not None
        horizon = now + self.recorder.lookahead
        retries = self.retries_made | ({retry_before[2]} if retry_before else set())
        occurrences = []
        for occurrence in fresh:
            assert job is not None and occurrence.key == KEY, occurrence
            self.mailbox.append(Planned(occurrence, job.schedule))
            if occurrence.at in retries:
                continue
            assert not by_delivery, f"a delivery planned {occurrence}, which is no retry"
            occurrences.append(occurrence.at)
        if not occurrences and (
            killed or job is None or job is not self.job or self.invalid is not None
        ):
            return
        assert job is not None
        when, _, enabled = job.schedule
        fire_times = between(when, job.zone, now, horizon) if enabled else []
        assert set(occurrences) <= set(fire_times), (occurrences, fire_times)
        assert len(set(occurrences)) == len(occurrences), occurrences
        if (
            by_delivery
            or killed
            or job is not self.job
            or self.invalid is not None
            or job.user.get("max_number_executions", 0)
            or retry_before is not None
            or job.retry is not None
            or job.dead_claim is not None
            or job.telling is not None
        ):
            return
        assert job.since is not None
        start = job.last if when.startswith("at(") else max(job.since, job.last or job.since)
        after = now if start is None else max(now, start)
        wanted = between(when, job.zone, after, horizon) if enabled else []
        assert occurrences == wanted, f"planned {occurrences}, the model says {wanted}"

    # ------------------------------------------------------------------ the model

    def _model_delivery(
        self, now: datetime, planned: Planned, raised: bool, destiny: Destiny
    ) -> Step:
        """A delivery does what a tick at its moment would, unless its time has not come,
        or the job is gone, or its schedule changed since the plan (README, "On the
        second"); it plans nothing but retries."""
        if now < planned.occurrence.at:
            return Step([], [])
        if self.job is None:
            return Step([], [], cancelled=True)
        if self.invalid is None and self.job.schedule != planned.schedule:
            return Step([], [], cancelled=True)
        return self._model_tick(now, raised, destiny)

    def _model_tick(self, now: datetime, raised: bool, destiny: Destiny) -> Step:
        """What the tick at ``now`` must have run and told, updating the model's job."""
        job = self.job
        step = Step([], [])
        if job is None or self.invalid is not None:
            return step
        ident, user = job.ident, job.user
        when, _, enabled = job.schedule
        zone = job.zone
        deadline = user.get("deadline_seconds") or None
        limit = user.get("max_number_executions", 0)

        def tell(told: Told) -> bool:
            """Tell of it; False when the runner dies sending it, its claim left behind."""
            assert job is not None
            if destiny is Destiny.KILLED:
                job.telling = told
                step.killed = True
                return False
            step.told.append(told)
            return True

        for _ in range(8):  # a tick decides a few times at most before it runs or waits
            if job.telling is not None:
                # Its runner died before the notice was out: taken over, told, released.
                told, job.telling = job.telling, None
                self._takes_effect(job)
                if not tell(told):
                    return step
                continue
            if job.dead_claim is not None:
                # Its runner is gone: the occurrence ended interrupted, retried only if the
                # policy says so. Recording it records the schedule in effect, too.
                scheduled, attempt = job.dead_claim
                job.dead_claim = None
                self._takes_effect(job)
                job.retry = self._retry_after(job, scheduled, attempt, now, interrupted=True)
                if job.retry is None and not tell((ident, scheduled, "interrupted", attempt)):
                    return step
                continue
            if job.seen != job.schedule:
                dropped = job.retry if job.seen is not None else None
                job.retry = None
                self._takes_effect(job)
                # A retry belongs to the schedule it was made for.
                if dropped is not None and not tell((ident, dropped[0], "failed", dropped[1] - 1)):
                    return step
                continue
            if not enabled or (0 < limit <= job.count and job.retry is None):
                break
            if job.retry is not None:
                scheduled, attempt, at = job.retry
                if at > now:
                    break
            else:
                assert job.since is not None
                start: datetime | None = job.since if job.last is None else max(job.since, job.last)
                if when.startswith("at("):
                    # A one-time job's time counts however late it was placed: never dropped.
                    start = job.last
                found = latest(when, zone, start, now)
                if found is None:
                    break
                scheduled, attempt = found, 1
            if deadline is not None and now - scheduled > timedelta(seconds=deadline):
                job.last = scheduled if job.last is None else max(scheduled, job.last)
                job.retry = None
                if not tell((ident, scheduled, "missed", attempt - 1)):
                    return step
                continue
            job.retry = None
            if attempt == 1:
                job.count += 1
                job.last = scheduled
            step.runs.append((ident, scheduled))
            end = self.action.end
            if end is RunEnd.RAISES:
                job.dead_claim = (scheduled, attempt)
            elif end is RunEnd.OK:
                if 0 < limit <= job.count:
                    self.job = None  # its last run ended ok: the file is deleted
            else:
                job.retry = self._retry_after(job, scheduled, attempt, now, interrupted=False)
                if job.retry is None:
                    tell((ident, scheduled, "failed", attempt))
            break
        return step

    @staticmethod
    def _takes_effect(job: Expected) -> None:
        """A runner write records the schedule in effect: from the user's edit when it
        changed since a runner last recorded it."""
        if job.seen != job.schedule:
            job.seen = job.schedule
            job.since = job.placed

    def _retry_after(
        self,
        job: Expected,
        scheduled: datetime,
        attempt: int,
        now: datetime,
        *,
        interrupted: bool,
    ) -> tuple[datetime, int, datetime] | None:
        """The retry an attempt's end schedules, or None: the occurrence has ended. Its
        time is drawn by the engine; the model takes it from the file and checks it lies
        within the backoff."""
        policy = job.user.get("retry")
        if policy is None or attempt >= policy["attempts"]:
            return None
        if interrupted and not policy["on_interrupted"]:
            return None
        cap = min(
            float(policy["max_backoff_seconds"]),
            policy["backoff_seconds"] * 2.0 ** (attempt - 1),
        )
        deadline = job.user.get("deadline_seconds") or None
        pending = self._file_retry()
        if cap == 0:
            at = now
        elif pending is not None and pending[:2] == (scheduled, attempt + 1):
            at = pending[2]
            assert now <= at <= now + timedelta(seconds=cap), (pending, now, cap)
        else:
            # No retry in the file: only right if its time, drawn from the backoff, could
            # fall past the deadline.
            assert deadline is not None, "a retry is missing"
            assert now + timedelta(seconds=cap) - scheduled > timedelta(seconds=deadline)
            return None
        if deadline is not None and at - scheduled > timedelta(seconds=deadline):
            return None
        self.retries_made.add(at)
        return scheduled, attempt + 1, at

    def _file_retry(self) -> tuple[datetime, int, datetime] | None:
        if not self.path.exists():
            return None
        try:
            pending = json.loads(self.path.read_bytes()).get("retry_pending")
        except ValueError:
            return None
        if pending is None:
            return None
        scheduled, at = instant(pending["scheduled"]), instant(pending["at"])
        assert scheduled is not None and at is not None
        return scheduled, pending["attempt"], at

    # ------------------------------------------------------------------ the promise

    def _check_the_promise(self, ran: list[Occ], told: list[Told]) -> None:
        """The README's promise on its own terms, whatever the model says."""
        for occurrence in ran:
            assert occurrence not in self.ended_ok, f"{occurrence} ran again after it ended ok"
            assert not any(
                self.told[(*occurrence, r)] for r in ("failed", "missed", "interrupted")
            ), f"{occurrence} ran again after it ended not ok"
            self.attempts_run[occurrence] += 1
            allowed = self.most_attempts.get(occurrence[0], 1)
            assert self.attempts_run[occurrence] <= allowed, (
                f"{occurrence} ran {self.attempts_run[occurrence]} times, {allowed} allowed"
            )
            if self.action.end is RunEnd.OK:
                self.ended_ok.add(occurrence)
        for ident, moment, reason, _ in told:
            assert (ident, moment) not in self.ended_ok, f"told of {moment}, ended ok"
            self.told[(ident, moment, reason)] += 1
            ended = sum(self.told[(ident, moment, r)] for r in ("failed", "missed", "interrupted"))
            assert ended <= 1, f"told {ended} times of {(ident, moment)}"

    @invariant()
    def the_file_is_what_the_model_says(self) -> None:
        if self.invalid is not None:
            assert self.path.read_bytes() == self.invalid, "a broken file was touched"
            return
        job = self.job
        if job is None:
            assert not self.path.exists(), "the file should be gone"
            return
        assert self.path.exists(), "the file is gone"
        document = json.loads(self.path.read_bytes())
        for name, value in job.user.items():
            assert document.get(name) == value, f"{name}: {document.get(name)!r}"
        assert [name for name in document if name in job.user] == list(job.user)
        assert document.get("execution_count", 0) == job.count
        assert instant(document.get("last_scheduled")) == job.last
        assert self._file_retry() == job.retry
        claim = document.get("claim")
        if job.dead_claim is not None:
            assert claim is not None and instant(claim["scheduled"]) == job.dead_claim[0]
            assert "telling" not in claim, claim
        elif job.telling is not None:
            assert claim is not None and instant(claim["scheduled"]) == job.telling[1]
            telling = claim["telling"]
            assert (telling["reason"], telling["attempts"]) == job.telling[2:], claim
        else:
            assert claim is None, claim


EngineAgainstModel.TestCase.settings = settings(
    max_examples=200,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


class TestEngineAgainstModel(EngineAgainstModel.TestCase):
    pass


@pytest.mark.slow
def test_engine_against_model_longer() -> None:
    """The same machine, with more and longer stories."""
    longer = settings(
        max_examples=1000,
        stateful_step_count=60,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    run_state_machine_as_test(EngineAgainstModel, settings=longer)
