"""Exactly once, or you are told: the real engine against a model of the README's promise.

A hypothesis state machine drives the engine on a real directory store with a fake clock:
the clock moves by random amounts (nothing, a fraction of a second, minutes, hours), ticks
come, each run ends as drawn (ok, failed, timeout, or the action raising), and between
ticks the user edits the job file: its schedule, retry policy, deadline, limit, payload,
enabled; deletes it; places a new job under the same key; breaks it and repairs it.

Beside the engine, a model says on its own what every tick must run and whom it must tell:
its schedules are matched minute by minute by brute force, never by lambdacron's
``schedule``/``due`` code. After every step the runs the action saw, the notices the
notifier got and the file the store holds are compared with it, and the promise is
checked on its own terms as well: no occurrence of a job runs more often than its retries
allow or again after it ended ok, and each one that ended not ok is told exactly once.

Only the action and the notifier are stand-ins (in-process, so a run costs no process);
the store, its files and their modification times are real.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import tempfile
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import Enum
from pathlib import Path
from typing import Any

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
from lambdacron.engine.outcomes import Policies
from lambdacron.engine.report import Outcome
from lambdacron.notify import Delivery, DeliveryOutcome, Destination, Notice, NoticeKind, Notifier
from lambdacron.store import LocalStore

KEY = "job.json"
START = utc(2026, 6, 1, 17, 58, 30)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
#: Where every notice goes: the runner's default, so no job needs its own ``on_failure``.
TELL = Destination(NoticeKind.COMMAND, ("model-notice",))
#: Schedules the model matches itself, minute by minute (minute field, hour field), and
#: one-time jobs: one placed after its time, one before.
WHENS = (
    "* * * * *",
    "*/5 * * * *",
    "7,37 * * * *",
    "0 */2 * * *",
    "at(2026-06-01T17:00:00Z)",
    "at(2026-06-01T18:10:20Z)",
)

#: (job identity, occurrence)
Occ = tuple[int, datetime]
#: (job identity, occurrence, reason, attempts)
Told = tuple[int, datetime, str, int]


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

    def run(self, spec: Spec, context: RunContext) -> Result:
        assert isinstance(spec, CommandSpec)
        self.runs.append((int(spec.argv[1]), context.scheduled))
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


class RecordingNotifier(Notifier):
    """Delivers every notice at once, into a list."""

    def __init__(self) -> None:
        super().__init__(attempts=1, sleep=lambda seconds: None)
        self.told: list[Notice] = []

    def send(self, destination: Destination, notice: Notice) -> Delivery:
        assert destination == TELL
        self.told.append(notice)
        return Delivery(DeliveryOutcome.DELIVERED, destination, 1)


def _matches(field: str, value: int) -> bool:
    if field == "*":
        return True
    if field.startswith("*/"):
        return value % int(field[2:]) == 0
    return value in {int(part) for part in field.split(",")}


def fires(when: str, minute: datetime) -> bool:
    minutes, hours = when.split()[:2]
    return _matches(minutes, minute.minute) and _matches(hours, minute.hour)


def latest(when: str, after: datetime | None, now: datetime) -> datetime | None:
    """The latest moment ``t`` with ``after < t <= now`` at which ``when`` fires."""
    if when.startswith("at("):
        moment = datetime.fromisoformat(when[3:-1])
        return moment if (after is None or after < moment) and moment <= now else None
    assert after is not None
    moment = now.replace(second=0, microsecond=0)
    while moment > after:
        if fires(when, moment):
            return moment
        moment -= timedelta(minutes=1)
    return None


def instant(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


@dataclass
class Expected:
    """The model's job: what the user wrote, and what the runner must have made of it."""

    ident: int
    user: dict[str, Any]  # the user's fields, in their order
    placed: datetime  # the modification time of the user's last write
    seen: tuple[str, bool] | None = None  # (when, enabled) as a tick last saw them
    since: datetime | None = None  # when that schedule took effect
    last: datetime | None = None  # the last occurrence taken
    count: int = 0
    retry: tuple[datetime, int, datetime] | None = None  # occurrence, attempt, at
    dead_claim: tuple[datetime, int] | None = None  # left by a run that raised

    @property
    def schedule(self) -> tuple[str, bool]:
        return self.user["when"], self.user.get("enabled", True)


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
edits = st.one_of(
    st.tuples(st.just("when"), st.sampled_from(WHENS)),
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


class EngineAgainstModel(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.tmp = Path(tempfile.mkdtemp(prefix="lambdacron-model-"))
        self.root = self.tmp / "jobs"
        self.root.mkdir()
        self.clock = FakeClock(START)
        self.action = ModelAction()
        self.notifier = RecordingNotifier()
        self.seed = 0
        self.engine = self._engine()
        self.job: Expected | None = None
        self.invalid: bytes | None = None  # the bytes of a broken file in place
        self.before_break: bytes | None = None  # what the user repairs it to
        self.idents = 0
        self.writes = 0
        # The promise on its own terms, over every job identity this run has seen.
        self.attempts_run: Counter[Occ] = Counter()
        self.most_attempts: dict[int, int] = {}
        self.ended_ok: set[Occ] = set()
        self.told: Counter[tuple[int, datetime, str]] = Counter()

    def _engine(self) -> Engine:
        self.seed += 1
        return Engine(
            LocalStore(self.root),
            {RunType.COMMAND: self.action},
            clock=self.clock,
            workers=2,
            policies=Policies(on_failure=TELL),
            notifier=self.notifier,
            rng=random.Random(self.seed),
        )

    def teardown(self) -> None:
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

    # ------------------------------------------------------------------ rules

    @initialize(when=st.sampled_from(WHENS), retry=retries, deadline=deadlines, limit=limits)
    def place_first(
        self, when: str, retry: dict[str, Any] | None, deadline: int | None, limit: int
    ) -> None:
        self.place_new(when, retry, deadline, limit)

    @rule(when=st.sampled_from(WHENS), retry=retries, deadline=deadlines, limit=limits)
    def place_new(
        self, when: str, retry: dict[str, Any] | None, deadline: int | None, limit: int
    ) -> None:
        """A new job under the key: a file with none of the runner's fields."""
        self.idents += 1
        user: dict[str, Any] = {
            "when": when,
            "note": {"kept": [self.idents, "as is"], "x": 1.5},
            "max_number_executions": limit,
            "run": {"type": "command", "details": {"command": ["model", str(self.idents)]}},
        }
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
    @rule(when=st.sampled_from(WHENS), retry=retries, deadline=deadlines, limit=limits)
    def place_again(
        self, when: str, retry: dict[str, Any] | None, deadline: int | None, limit: int
    ) -> None:
        self.place_new(when, retry, deadline, limit)

    @precondition(lambda self: self.job is None)
    @rule(when=st.sampled_from(WHENS), retry=retries, deadline=deadlines, limit=limits)
    def place_again_and_tick(
        self, when: str, retry: dict[str, Any] | None, deadline: int | None, limit: int
    ) -> None:
        self.place_new(when, retry, deadline, limit)
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

    @rule()
    def restart_the_runner(self) -> None:
        """A new engine: no cache, the index read back from the store."""
        self.engine.close()
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

    @rule()
    def tick(self) -> None:
        now = self.clock.now
        ran_before, told_before = len(self.action.runs), len(self.notifier.told)
        report = self.engine.tick(now)
        ran = self.action.runs[ran_before:]
        told = [
            (int(n.run["details"]["command"][1]), n.occurrence, n.reason.value, n.attempts)
            for n in self.notifier.told[told_before:]
            if n.run is not None
        ]
        assert len(told) == len(self.notifier.told) - told_before
        raised = self.action.end is RunEnd.RAISES and bool(ran)
        internal = [e for e in report.events if e.outcome is Outcome.INTERNAL_ERROR]
        assert len(internal) == (1 if raised else 0), internal

        self._check_the_promise(ran, told)
        expected_runs, expected_told = self._model_tick(now, raised)
        assert ran == expected_runs, f"ran {ran}, the model says {expected_runs}"
        assert sorted(told) == sorted(expected_told), f"told {told}, the model says {expected_told}"

    # ------------------------------------------------------------------ the model

    def _model_tick(self, now: datetime, raised: bool) -> tuple[list[Occ], list[Told]]:
        """What the tick at ``now`` must have run and told, updating the model's job."""
        job = self.job
        runs: list[Occ] = []
        told: list[Told] = []
        if job is None or self.invalid is not None:
            return runs, told
        ident, user = job.ident, job.user
        when, enabled = job.schedule
        deadline = user.get("deadline_seconds") or None
        limit = user.get("max_number_executions", 0)
        for _ in range(8):  # a tick decides a few times at most before it runs or waits
            if job.dead_claim is not None:
                # Its runner is gone: the occurrence ended interrupted, retried only if the
                # policy says so. Recording it records the schedule in effect, too.
                scheduled, attempt = job.dead_claim
                job.dead_claim = None
                self._takes_effect(job)
                retry = self._retry_after(job, scheduled, attempt, now, interrupted=True)
                if retry is None:
                    told.append((ident, scheduled, "interrupted", attempt))
                job.retry = retry
                continue
            if job.seen != job.schedule:
                if job.seen is not None and job.retry is not None:
                    # A retry belongs to the schedule it was made for.
                    scheduled, attempt, _ = job.retry
                    told.append((ident, scheduled, "failed", attempt - 1))
                    job.retry = None
                self._takes_effect(job)
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
                found = latest(when, start, now)
                if found is None:
                    break
                scheduled, attempt = found, 1
            if deadline is not None and now - scheduled > timedelta(seconds=deadline):
                told.append((ident, scheduled, "missed", attempt - 1))
                job.last = scheduled if job.last is None else max(scheduled, job.last)
                job.retry = None
                continue
            job.retry = None
            if attempt == 1:
                job.count += 1
                job.last = scheduled
            runs.append((ident, scheduled))
            end = self.action.end
            if end is RunEnd.RAISES:
                job.dead_claim = (scheduled, attempt)
            elif end is RunEnd.OK:
                if 0 < limit <= job.count:
                    self.job = None  # its last run ended ok: the file is deleted
            else:
                job.retry = self._retry_after(job, scheduled, attempt, now, interrupted=False)
                if job.retry is None:
                    told.append((ident, scheduled, "failed", attempt))
            break
        return runs, told

    @staticmethod
    def _takes_effect(job: Expected) -> None:
        """A runner write records the schedule in effect: from the user's edit when it
        changed since a tick last saw it."""
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
        for ident, occurrence, reason, _ in told:
            assert (ident, occurrence) not in self.ended_ok, f"told of {occurrence}, ended ok"
            self.told[(ident, occurrence, reason)] += 1
            ended = sum(
                self.told[(ident, occurrence, r)] for r in ("failed", "missed", "interrupted")
            )
            assert ended <= 1, f"told {ended} times of {(ident, occurrence)}"

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
        if job.dead_claim is None:
            assert claim is None, claim
        else:
            assert claim is not None and instant(claim["scheduled"]) == job.dead_claim[0]


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
