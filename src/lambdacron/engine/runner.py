"""Ways of driving an engine: ``serve`` (tick on every interval until told to stop),
``tick_shards`` (one tick split over a pool of processes) and ``dry_run`` (what a tick
would do, doing none of it)."""

from __future__ import annotations

import contextlib
import itertools
import multiprocessing
import os
import select
import signal
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from functools import partial
from multiprocessing.synchronize import Event as EventType
from types import FrameType
from typing import TypeVar

from ..errors import JobNotFoundError, StoreError
from ..job import Job
from ..jobfile import JobFile, load, with_runner_fields
from ..store.base import Entry
from ..times import iso
from .claims import Change, adopted, interrupted_result, settled, still_going
from .delivery import Delivered, DeliveryResult, Occurrence
from .due import schedule_since
from .outcomes import ended
from .report import TickReport
from .tick import Clock, Engine, Verdict, holds_what_is_due
from .timer import TimerQueue

# --------------------------------------------------------------------------- serve


class StopRequests:
    """Requests to stop, counted: the first stops new starts, the second stops the runs.

    ``request`` is safe in a signal handler: it takes no lock (a handler that waited on a
    lock the interrupted main thread holds would hang the runner) and only appends and
    writes a byte to a pipe, which wakes ``wait``.
    """

    def __init__(self) -> None:
        self._read, self._write = os.pipe()
        os.set_blocking(self._read, False)
        os.set_blocking(self._write, False)
        #: What asked, in order (a signal's name).
        self.names: list[str] = []

    @property
    def count(self) -> int:
        return len(self.names)

    def request(self, name: str) -> None:
        self.names.append(name)
        self.wake()

    def wake(self) -> None:
        """Wake a ``wait`` without asking anything (a tick has ended)."""
        with contextlib.suppress(BlockingIOError):  # full: a wake-up is pending anyway
            os.write(self._write, b"\0")

    def wait(self, timeout: float | None) -> int:
        """Wait until a request or a wake-up, or ``timeout`` seconds; the requests so far."""
        readable, _, _ = select.select([self._read], [], [], timeout)
        if readable:
            with contextlib.suppress(BlockingIOError):
                while os.read(self._read, 512):
                    pass
        return self.count

    @contextlib.contextmanager
    def signalled(self, signals: Iterable[int]) -> Iterator[None]:
        """In the block, each of ``signals`` is a request. Call it from the main thread.

        The signals' wake-up byte is written to the pipe by whichever thread the kernel
        hands a signal to. Without it, a signal taken by a worker thread (the kernel picks
        one when the main thread still has one pending) leaves its Python handler waiting
        until the main thread wakes for something else: a second Ctrl-C waited on the very
        runs it was to stop."""

        def on_signal(signum: int, frame: FrameType | None) -> None:
            self.request(signal.Signals(signum).name)

        previous = {signum: signal.signal(signum, on_signal) for signum in signals}
        wakeup = signal.set_wakeup_fd(self._write, warn_on_full_buffer=False)
        try:
            yield
        finally:
            signal.set_wakeup_fd(wakeup)
            for signum, handler in previous.items():
                signal.signal(signum, handler)

    def close(self) -> None:
        os.close(self._read)
        os.close(self._write)

    def __enter__(self) -> StopRequests:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


#: The furthest ``serve`` plans ahead: a day (planned runs are held in memory).
MAX_LOOKAHEAD_SECONDS = 86_400


def default_lookahead(interval_minutes: int) -> timedelta:
    """Until the next tick has planned: its interval, and a minute for it to list and read."""
    return timedelta(minutes=interval_minutes, seconds=60)


def next_boundary(moment: datetime, interval_minutes: int) -> datetime:
    """The first multiple of the interval (from the Unix epoch) after ``moment``."""
    period = interval_minutes * 60
    return datetime.fromtimestamp((int(moment.timestamp()) // period + 1) * period, UTC)


def serve(
    engine: Engine,
    interval: int,
    stop: StopRequests,
    *,
    clock: Clock,
    out: Callable[[str], None],
    say: Callable[[str], None],
    timer: TimerQueue | None = None,
) -> None:
    """Tick at once (to catch up), then on every interval boundary of ``clock``, until
    ``stop`` is requested. The first request starts nothing more: runs in progress finish
    and are recorded, due occurrences not yet claimed stay for the next runner. A second
    request stops the runs in progress (recorded ``interrupted``). Returns when every tick
    has ended. ``out`` gets each tick's summary, ``say`` what the runner is doing.

    With ``timer`` (the engine's delivery), the ticks plan ahead and each planned
    occurrence is run at its time, to the second, between the ticks."""
    ticks: list[threading.Event] = []
    # Deliveries in flight: a second stop request must reach their runs, as it does a tick's.
    delivering: set[Future[DeliveryResult]] = set()
    lock = threading.Lock()

    def delivered(done: Future[DeliveryResult]) -> None:
        with lock:
            delivering.discard(done)
        if timer is not None:
            _settle_plan(timer, done.result())
        stop.wake()

    def hand(occurrence: Occurrence) -> None:
        future = engine.submit_delivery(occurrence)
        with lock:
            delivering.add(future)
        future.add_done_callback(delivered)

    def start_tick(now: datetime) -> None:
        done = threading.Event()

        def work() -> None:
            try:
                out(engine.tick(now).summary())
            finally:
                done.set()
                stop.wake()

        ticks.append(done)
        threading.Thread(target=work, name=f"tick-{iso(now)}").start()
        ticks[:] = [t for t in ticks if not t.is_set()]

    ahead = ""
    if timer is not None:
        ahead = f", running jobs at their second ({timer.lookahead.total_seconds():g} s ahead)"
        timer.start(hand)
    say(f"serving {engine.store.url} every {interval} min{ahead} (Ctrl-C to stop)")
    start_tick(clock())
    boundary = next_boundary(clock(), interval)
    while stop.count == 0:
        remaining = (boundary - clock()).total_seconds()
        if remaining > 0:
            stop.wait(remaining)
            continue
        # Ticks may overlap when jobs run long; claims keep every occurrence single.
        start_tick(boundary)
        boundary = next_boundary(max(boundary, clock()), interval)
    engine.stop_starting()
    if timer is not None:
        timer.close()
    say(
        f"{stop.names[0]}: stopping after running jobs end; no new job starts "
        "(again to stop the running jobs now)"
    )
    aborted = False
    while True:
        if stop.count >= 2 and not aborted:
            aborted = True
            say(f"{stop.names[1]} again: stopping the running jobs")
            engine.abort_running()
        with lock:
            idle = not delivering
        if idle and all(t.is_set() for t in ticks):
            break
        stop.wait(None)
    say("stopped")


def _settle_plan(timer: TimerQueue, delivered: DeliveryResult) -> None:
    if delivered.outcome is Delivered.EARLY:
        # The engine's clock and the timer's are one clock; this guards a clock stepped back.
        timer.plan([delivered.occurrence])
    elif delivered.outcome is Delivered.STALE:
        timer.forget(delivered.occurrence)


# --------------------------------------------------------------------------- shards


#: What stops a runner: Ctrl-C, a service manager's stop, the terminal closed.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

_T = TypeVar("_T")


def stoppable(
    stop_starting: Callable[[], object],
    abort_running: Callable[[], object],
    work: Callable[[], _T],
    said: Callable[[int, list[str]], None] | None = None,
) -> tuple[_T, int | None]:
    """``work()`` (a tick, a run by hand) stopped by signals as ``serve`` is: the first
    calls ``stop_starting`` (no new job starts; the running ones finish and are recorded),
    the second ``abort_running`` (they are stopped, recorded ``interrupted``); ``said`` is
    told each (1 or 2, and the signals' names). Returns what ``work`` returned and the first
    signal. Call it from the main thread, where signals are handled.

    Without this, Ctrl-C raised wherever the main thread was, perhaps between a claim and
    its run, and said nothing while the running jobs went on; a second one left them
    running, their claims behind."""
    with StopRequests() as stop, stop.signalled(STOP_SIGNALS):
        result = _watched(stop, lambda: stop.count, stop_starting, abort_running, work, said)
        first = signal.Signals[stop.names[0]].value if stop.names else None
    return result, first


def _watched(
    stop: StopRequests,
    asked: Callable[[], int],
    stop_starting: Callable[[], object],
    abort_running: Callable[[], object],
    work: Callable[[], _T],
    said: Callable[[int, list[str]], None] | None,
) -> _T:
    # ``work`` runs in a thread of its own; this one acts on what is ``asked`` (0, 1 or 2)
    # whenever ``stop`` wakes it, and first of all before the work starts.
    done: list[tuple[_T | None, BaseException | None]] = []

    def body() -> None:
        try:
            done.append((work(), None))
        except BaseException as exc:  # raised again in the calling thread, as it was
            done.append((None, exc))
        finally:
            stop.wake()

    acted = 0

    def act() -> None:
        nonlocal acted
        level = asked()
        if level >= 1 and acted == 0:
            acted = 1
            stop_starting()
            if said is not None:
                said(1, stop.names)
        if level >= 2 and acted == 1:
            acted = 2
            if said is not None:
                said(2, stop.names)
            abort_running()

    act()
    thread = threading.Thread(target=body, name="lambdacron-work")
    thread.start()
    while not done:
        stop.wait(None)
        act()
    thread.join()
    ((result, error),) = done
    if error is not None:
        raise error
    return result  # type: ignore[return-value]  # None only with an error


class _Shard:
    """A shard process's stop requests. Its parent asks by setting events, a level that
    holds (asked twice, it is still asked once), not by signals: two signals close together
    are one to a Python handler, and a shard took a second Ctrl-C for the first and let
    its runs go on. A stop signal sent to the shard itself (a service manager stops the
    whole group) is at most the first request, which the parent hands on anyway."""

    def __init__(self, starting: EventType, running: EventType) -> None:
        self.starting, self.running = starting, running
        self.stop = StopRequests()
        # Held for the process's life (a pool's worker is a shard until it ends), and
        # referenced: a collected generator would run its ``finally`` and restore them.
        self._signalled = self.stop.signalled(STOP_SIGNALS)
        self._signalled.__enter__()

        def woken() -> None:
            for event in (starting, running):
                event.wait()
                self.stop.wake()

        threading.Thread(target=woken, name="lambdacron-shard-stop", daemon=True).start()

    def asked(self) -> int:
        if self.running.is_set():
            return 2
        return 1 if self.starting.is_set() or self.stop.count else 0


_shard: _Shard | None = None


def _start_shard(starting: EventType, running: EventType) -> None:
    global _shard
    # A terminal's Ctrl-C goes to its whole foreground group: were the shards in it, each
    # would get it from the terminal and again from the parent, twice where once was meant.
    os.setpgrp()
    _shard = _Shard(starting, running)
    # Blocked by the parent while it forked: only now can a stop signal be taken here.
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)


def _tick_one(
    make_engine: Callable[[tuple[int, int]], Engine], now: datetime, shard: tuple[int, int]
) -> dict[str, object]:
    assert _shard is not None, "a shard's tick runs in a process _start_shard started"
    with make_engine(shard) as engine:
        report = _watched(
            _shard.stop,
            _shard.asked,
            engine.stop_starting,
            engine.abort_running,
            partial(engine.tick, now),
            None,
        )
        return report.to_json()


def tick_shards(
    make_engine: Callable[[tuple[int, int]], Engine],
    now: datetime,
    shards: int,
    said: Callable[[int, list[str]], None] | None = None,
) -> tuple[TickReport, int | None]:
    """One tick at ``now``, the store split into ``shards`` shards (the split the Lambda
    fan-out uses), each ticked by an engine of its own in a pool of processes, stopped by
    signals as a one-shot tick is (each request is handed on to every shard). Returns the
    combined report and the first signal. ``make_engine`` is called in the worker process,
    so it must pickle."""
    begin = time.monotonic()
    context = multiprocessing.get_context()
    starting, running = context.Event(), context.Event()

    def abort() -> None:
        starting.set()
        running.set()

    # Forks nothing yet: the processes are forked by the first submit, below.
    pool = ProcessPoolExecutor(
        max_workers=shards,
        mp_context=context,
        initializer=_start_shard,
        initargs=(starting, running),
    )
    with pool:
        # A stop signal that reached a shard between its fork and its handlers would end it
        # as Python's defaults do (a KeyboardInterrupt in its start-up, the pool broken):
        # the shards start with them blocked, and unblock them once their handlers are set.
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
        try:
            # Submitted (and so the processes forked) from this thread before it takes the
            # signals over and another thread waits on the results.
            results = pool.map(
                _tick_one,
                itertools.repeat(make_engine, shards),
                itertools.repeat(now, shards),
                [(i, shards) for i in range(shards)],
            )
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
        parts, stopped_by = stoppable(starting.set, abort, lambda: list(results), said)
    total = TickReport.combine(now, parts)
    total.duration_s = time.monotonic() - begin
    return total, stopped_by


# --------------------------------------------------------------------------- dry run


class Would(StrEnum):
    """What a tick would do with a job."""

    RUN = "run"
    RECORD_INTERRUPTED = "record_interrupted"  # a dead claim would be recorded first
    RECORD_MISSED = "record_missed"  # past its deadline: recorded, never run
    TELL = "tell"  # a failure notice its runner did not send would be sent first
    SKIP = "skip"  # its previous run is still going
    LEAVE = "leave"  # the occurrence due is claimed by a run still going, which runs it
    REFUSE = "refuse"  # invalid, or of a type this runner does not accept
    FAIL = "fail"  # it cannot be read


@dataclass(frozen=True)
class Planned:
    key: str
    would: Would
    reason: str
    scheduled: datetime | None = None

    def to_json(self) -> dict[str, object]:
        return {
            "key": self.key,
            "would": self.would.value,
            "scheduled": iso(self.scheduled) if self.scheduled else None,
            "reason": self.reason,
        }


@dataclass
class DryRun:
    now: datetime
    seen: int = 0
    planned: list[Planned] = field(default_factory=list)
    #: Why the store could not be listed (the plan covers none or part of it); else None.
    listing_error: str | None = None

    @property
    def would_run(self) -> int:
        return sum(p.would is Would.RUN for p in self.planned)

    def to_json(self) -> dict[str, object]:
        return {
            "now": iso(self.now),
            "dry_run": True,
            "seen": self.seen,
            "would_run": self.would_run,
            "listing_error": self.listing_error,
            "jobs": [p.to_json() for p in self.planned],
        }


def _why_due(job: Job, placed: datetime) -> str:
    last = job.state.last_scheduled
    if job.schedule.one_time:
        return f"its one-time occurrence ({job.when}) has come and has not run"
    since = schedule_since(job, placed)
    if last is not None and last >= since:
        return f"the latest occurrence of {job.when!r} since the one it last ran for ({iso(last)})"
    return (
        f"the latest occurrence of {job.when!r} since it was placed or rescheduled ({iso(since)})"
    )


def _plan_one(engine: Engine, entry: Entry, now: datetime) -> Iterator[Planned]:
    """What a tick at ``now`` would do with one listed job: the tick's own ``decide``, with
    each runner write it would make applied in memory only; reads only."""
    key = entry.key
    try:
        document = engine.store.read(key)
    except JobNotFoundError:
        return  # deleted since the listing
    except StoreError as exc:
        yield Planned(key, Would.FAIL, str(exc).removeprefix(f"{key}: "))
        return
    job, problems, decoded = load(key, document.body)
    if job is None:
        yield Planned(key, Would.REFUSE, "; ".join(map(str, problems)))
        return
    file = JobFile(key, decoded, job, document.version)
    while True:
        decision = engine.decide(file, now)
        placed = file.version.modified
        match decision.verdict:
            case Verdict.REFUSE:
                message = f"run.type: {job.run_type.value!r} is not allowed by this runner"
                yield Planned(key, Would.REFUSE, message)
                return
            case Verdict.RUNNING | Verdict.INTERRUPT:
                claim = file.job.state.claim
                assert claim is not None
                if decision.verdict is Verdict.RUNNING:
                    if holds_what_is_due(file, claim, now):
                        message = "claimed by a run still going, which runs it"
                        yield Planned(key, Would.LEAVE, message, claim.scheduled)
                    else:
                        message = still_going(claim, "the previous run is still going")
                        yield Planned(key, Would.SKIP, message, claim.scheduled)
                    return
                yield Planned(
                    key,
                    Would.RECORD_INTERRUPTED,
                    f"its claim is dead (runner {claim.host} pid {claim.pid}, deadline "
                    f"{iso(claim.deadline)})",
                    claim.scheduled,
                )
                ending = ended(
                    file.job,
                    file.document,
                    claim,
                    interrupted_result(claim),
                    now,
                    engine.policies,
                    engine.rng,
                )
                file = _applied(file, settled(file.document, file.job, placed, ending))
            case Verdict.TELL:
                claim = file.job.state.claim
                assert claim is not None and claim.telling is not None
                yield Planned(
                    key,
                    Would.TELL,
                    f"its runner ({claim.host} pid {claim.pid}) stopped before sending its"
                    f" {claim.telling.reason.value} notice",
                    claim.scheduled,
                )
                released = Change(
                    with_runner_fields(file.document, {"claim": None}),
                    replace(file.job.state, claim=None),
                )
                file = _applied(file, released)
            case Verdict.MISS:
                assert decision.scheduled is not None
                deadline = engine.policies.deadline_of(file.job)
                yield Planned(
                    key,
                    Would.RECORD_MISSED,
                    f"it cannot start within its deadline ({deadline}) of its time",
                    decision.scheduled,
                )
                return
            case Verdict.ADOPT:
                file = _applied(file, adopted(file.document, file.job, placed))
            case Verdict.DUE:
                assert decision.scheduled is not None
                yield Planned(key, Would.RUN, _why_due(file.job, placed), decision.scheduled)
                return
            case Verdict.WAIT:
                return


def _applied(file: JobFile, change: Change) -> JobFile:
    """The job as a runner write would leave it, without writing."""
    return JobFile(file.key, change.document, change.applied_to(file.job), file.version)


def dry_run(engine: Engine, now: datetime) -> DryRun:
    """What ``engine.tick(now)`` would do, job by job, and why; claims, runs and writes
    nothing (not the index, not a dead claim)."""
    plan = DryRun(now=now)
    index = engine.index
    to_read: list[Entry] = []
    try:
        for entry in engine.store.list(engine.shard):
            plan.seen += 1
            if entry.problem is not None:
                plan.planned.append(Planned(entry.key, Would.REFUSE, entry.problem))
                continue
            cached = index.get(entry.key)
            if cached is not None and cached.token == entry.version.token:
                if cached.problem is not None:
                    plan.planned.append(Planned(entry.key, Would.REFUSE, cached.problem))
                    continue
                if cached.due_at is None or cached.due_at > now:
                    continue  # unchanged since the index saw it, and not due
            to_read.append(entry)
    except StoreError as exc:
        plan.listing_error = str(exc)
    workers = max(1, min(16, engine.store.read_concurrency))
    with ThreadPoolExecutor(max_workers=workers) as reads:
        for planned in reads.map(lambda e: list(_plan_one(engine, e, now)), to_read):
            plan.planned.extend(planned)
    return plan


__all__ = [
    "MAX_LOOKAHEAD_SECONDS",
    "DryRun",
    "Planned",
    "StopRequests",
    "Would",
    "default_lookahead",
    "dry_run",
    "next_boundary",
    "serve",
    "tick_shards",
]
