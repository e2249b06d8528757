"""The tick: list the store, decide for each job, hand the due ones to the runs, report.

The rooms around it: ``due.py`` says when a job is due, ``claims.py`` who holds an
occurrence and the state changes a runner writes, ``writeback.py`` how a result joins the
file, ``index.py`` what is remembered between ticks. A job travels as one ``JobFile``
(document, job, version) from its read to its write-back; every runner write returns the
next ``JobFile`` without decoding what it just encoded.
"""

from __future__ import annotations

import functools
import itertools
import os
import random
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import Enum

from ..actions.base import OUTPUT_LIMIT, ActionRegistry, Result, RunContext, RunType
from ..actions.process import KILL_GRACE_SECONDS, stop_running
from ..errors import (
    ConflictError,
    DeliveryError,
    InvalidKeyError,
    JobError,
    JobNotFoundError,
    StoreError,
    UnreadableJobError,
)
from ..job import Claim, Job, Status, Telling
from ..jobfile import JobFile, encode, load
from ..notify import Destination, NoticeReason, Notifier
from ..redact import redact_window, secrets_in, tail
from ..store.base import Document, Entry, Store, Version
from ..times import iso
from .claims import (
    CLAIM_GRACE,
    INFLIGHT,
    Change,
    Holder,
    adopted,
    claimed,
    host_identity,
    interrupted_reason,
    interrupted_result,
    pid_alive,
    settled,
    still_going,
    taken_over,
)
from .delivery import MAX_PLANNED_PER_JOB, Delivered, Delivery, DeliveryResult, Occurrence
from .due import ALWAYS, due_occurrence, next_due, upcoming
from .index import FileCache, Index, IndexEntry, IndexKeeper
from .notices import Teller
from .outcomes import Ending, Policies, ended, missed
from .pool import RunPool
from .report import JobEvent, Outcome, TickReport
from .writeback import WRITE_ATTEMPTS, Unwritten, Written, write_back

Clock = Callable[[], datetime]
DEFAULT_WORKERS = 8
DEFAULT_IO_WORKERS = 16
#: Listed entries taken at a time, decided on, and their due jobs handed to the runs.
CHUNK = 1000

__all__ = [
    "CHUNK",
    "CLAIM_GRACE",
    "DEFAULT_IO_WORKERS",
    "DEFAULT_WORKERS",
    "INFLIGHT",
    "Engine",
    "host_identity",
    "pid_alive",
]


class Verdict(Enum):
    """What a tick does with one job it has read."""

    REFUSE = "refuse"  # its run type is not allowed here
    RUNNING = "running"  # a live claim: its previous run is still going
    INTERRUPT = "interrupt"  # a dead claim: record that occurrence as interrupted first
    TELL = "tell"  # a dead claim held for a notice: send the notice, then release it
    ADOPT = "adopt"  # record when its schedule took effect first
    DUE = "due"  # run ``scheduled`` now
    MISS = "miss"  # ``scheduled`` is past its deadline: record it missed, never run it
    WAIT = "wait"  # nothing to do until ``due_at`` (None: until the file changes)


#: How recent a claim of this runner's own must be to be its delivery of the same second.
_SAME_SECOND = timedelta(seconds=5)


@dataclass(frozen=True)
class Decision:
    verdict: Verdict
    scheduled: datetime | None = None
    due_at: datetime | None = None
    attempt: int = 1


@dataclass(frozen=True)
class _Due:
    """A job to claim and run for occurrence ``scheduled``."""

    file: JobFile
    scheduled: datetime
    attempt: int = 1
    manual: bool = False

    @property
    def key(self) -> str:
        return self.file.key


def _internal_error(key: str, exc: Exception) -> JobEvent:
    return JobEvent(key, Outcome.INTERNAL_ERROR, f"internal error: {type(exc).__name__}: {exc}")


class Engine:
    """Runs ticks against one store. Safe to run ticks concurrently, in one process or many."""

    def __init__(
        self,
        store: Store,
        actions: ActionRegistry,
        *,
        clock: Clock,
        workers: int = DEFAULT_WORKERS,
        log: Callable[[JobEvent], None] | None = None,
        host: str | None = None,
        pid: int | None = None,
        is_alive: Callable[[int], bool] = pid_alive,
        time_left: Callable[[], float] | None = None,
        start_margin: float = 5.0,
        environ: Mapping[str, str] | None = None,
        shard: tuple[int, int] | None = None,
        io_workers: int = DEFAULT_IO_WORKERS,
        max_run_seconds: float | None = None,
        delivery: Delivery | None = None,
        policies: Policies | None = None,
        notifier: Notifier | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.store = store
        self.actions = actions
        self.clock = clock
        self.log = log or (lambda event: None)
        self.holder = Holder(host or host_identity(), os.getpid() if pid is None else pid, is_alive)
        self.time_left = time_left
        self.start_margin = start_margin
        #: The most time any run can ever get here (a Lambda's whole timeout); a job that
        #: needs more is recorded as an error at each occurrence instead of waiting forever.
        self.max_run_seconds = max_run_seconds
        #: The environment runs inherit; its credentials are redacted from results.
        self.environ = os.environ if environ is None else environ
        self._environ_secrets: tuple[str, ...] | None = None
        #: (i, n): this engine ticks shard i of n of the store; None: all of it.
        self.shard = shard
        #: Where a tick hands the occurrences it plans ahead; None: it plans nothing.
        self.delivery = delivery
        #: Retry, deadline and notice defaults for jobs that set none of their own.
        self.policies = policies or Policies()
        self.teller = Teller(
            store.url, self.policies, clock, notifier, commands=RunType.COMMAND in actions
        )
        self.rng = rng or random.Random()
        self._pool = RunPool(workers, eager=store.read_concurrency > 1)
        self._io = ThreadPoolExecutor(
            max_workers=min(io_workers, store.read_concurrency), thread_name_prefix="lambdacron-io"
        )
        self.keeper = IndexKeeper(store, self.index_name, [t.value for t in actions])
        self.files = FileCache()
        self._stopping = False

    @property
    def host(self) -> str:
        return self.holder.host

    @property
    def pid(self) -> int:
        return self.holder.pid

    @property
    def index_name(self) -> str:
        return (
            "index.json" if self.shard is None else f"index-{self.shard[0]}-of-{self.shard[1]}.json"
        )

    @property
    def index(self) -> Index:
        """The index this engine keeps (loaded from the store on first use)."""
        return self.keeper.index

    def close(self) -> None:
        """Wait for running jobs to finish (or time out), then release the workers."""
        self._pool.shutdown(wait=True)
        self._io.shutdown(wait=True)

    def stop_starting(self) -> None:
        """Start no more runs, in this tick or any later one. Runs in progress go on and are
        recorded; due occurrences not yet claimed stay unclaimed, for the next runner."""
        self._stopping = True

    def abort_running(self, grace: float = KILL_GRACE_SECONDS) -> int:
        """Stop starting, and stop the runs in progress now: each run's process group gets
        SIGTERM, then SIGKILL after ``grace`` seconds; each is recorded ``interrupted`` (its
        claim removed) as its run returns. Returns how many runs were stopped.

        Process groups are per process, not per engine: this stops every ``command`` and
        ``python`` run of this process. A ``lambda`` invocation in flight cannot be called
        back; it is recorded when it returns."""
        self.stop_starting()
        return stop_running(grace)

    @property
    def stopping(self) -> bool:
        return self._stopping

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ the tick

    def tick(self, now: datetime, *, time_left: Callable[[], float] | None = None) -> TickReport:
        """One pass over the store for time ``now``. ``time_left`` (seconds; a Lambda's
        remaining time) overrides the engine's for this tick: no job is started that could
        not finish within it."""
        begin = time.monotonic()
        report = TickReport(now=now)
        budget = time_left if time_left is not None else self.time_left
        # Once per tick, not per run: scanning the environment costs more than a no-op run.
        self._environ_secrets = secrets_in(self.environ)
        index = self.keeper.index
        listing = self.store.list(self.shard, splits=self.keeper.splits(self.shard is not None))
        listed: set[str] = set()
        runs: list[Future[None]] = []
        horizon = now + self.delivery.lookahead if self.delivery is not None else now
        planned: list[Occurrence] | None = [] if self.delivery is not None else None

        def consider(entry: Entry) -> _Due | None:
            try:
                return self._consider(entry, report, now, index, horizon, planned)
            except Exception as exc:  # whatever one job raises is that job's problem
                index.drop(entry.key)
                self._emit(report, _internal_error(entry.key, exc))
                return None

        parallel = self.store.read_concurrency > 1
        # Where listing waits on the network, the listing is consumed a chunk at a time,
        # and each chunk's due jobs are claimed and run while the rest is still being
        # listed: a steady tick costs about its listing, not its listing plus its runs. (A
        # key comes once in a listing, so a job written back meanwhile is not met again;
        # and every claim is conditional anyway.) Where listing is CPU work (a directory),
        # it goes first: overlapped, it would hold the GIL against the runs' every step.
        # Reads go through their own bounded pool a chunk at a time, so a cold tick of a
        # large store never holds a future per read.
        chunk_size = CHUNK if parallel else None
        try:
            while not self.stopping and (chunk := list(itertools.islice(listing, chunk_size))):
                report.seen += len(chunk)
                to_read = [e for e in chunk if self._needs_read(e, index, horizon, report, listed)]
                due = self._io.map(consider, to_read) if parallel else map(consider, to_read)
                for job in due:
                    if job is not None:
                        report.due += 1
                        runs.append(self._pool.submit(self._guarded, job, report, now, budget))
                if planned:
                    self._plan(planned, report)
                    planned.clear()
        except Exception as exc:  # StoreError, or a listing bug: the pass goes on regardless
            report.listing_error = str(exc)
            self._emit(report, JobEvent("", Outcome.STORE_ERROR, f"cannot list the store: {exc}"))
            listed.clear()  # a partial listing must not evict the unlisted from the index
        if self.stopping:
            listed.clear()  # the listing was cut short: what was not listed still exists
        for run in runs:
            run.result()
        if listed:
            index.keep_only(listed)
            self.files.keep_only(listed)
        self.keeper.save(
            lambda message: self._emit(report, JobEvent("", Outcome.STORE_ERROR, message))
        )
        report.duration_s = time.monotonic() - begin
        return report

    def _needs_read(
        self, entry: Entry, index: Index, horizon: datetime, report: TickReport, listed: set[str]
    ) -> bool:
        """Whether a listed entry must be read: not while the index vouches for it, that is
        while it cannot be due, or planned, before ``horizon``."""
        if entry.problem is not None:  # listed, but no job can be read there
            self._emit(report, JobEvent(entry.key, Outcome.INVALID, entry.problem))
            return False
        listed.add(entry.key)
        cached = index.get(entry.key)
        if cached is None or cached.token != entry.version.token:
            return True
        if cached.problem is not None:
            self._emit(report, JobEvent(entry.key, Outcome.INVALID, cached.problem))
            return False
        return cached.due_at is not None and cached.due_at <= horizon

    def _plan(self, planned: list[Occurrence], report: TickReport) -> None:
        assert self.delivery is not None
        try:
            self.delivery.plan(planned)
            report.planned += len(planned)
        except DeliveryError as exc:
            # Costs lateness only: each occurrence is run by the first tick after its time.
            message = f"cannot plan {len(planned)} occurrences ahead: {exc}"
            self._emit(report, JobEvent("", Outcome.STORE_ERROR, message))

    def _emit(self, report: TickReport, event: JobEvent) -> None:
        report.add(event)
        self.log(event)

    # ------------------------------------------------------------------ deliveries

    def submit_delivery(
        self, occurrence: Occurrence, *, time_left: Callable[[], float] | None = None
    ) -> Future[DeliveryResult]:
        """Run ``occurrence`` in the run pool as a tick at this moment would: read the job
        afresh, and claim and run what is due, unless its schedule changed since the plan.
        Nothing runs before its time (``Delivered.EARLY``)."""
        budget = time_left if time_left is not None else self.time_left
        return self._pool.submit(self._deliver_guarded, occurrence, budget)

    def deliver(
        self, occurrences: Sequence[Occurrence], *, time_left: Callable[[], float] | None = None
    ) -> list[DeliveryResult]:
        """``submit_delivery`` for each, waiting for them all; in the order given."""
        futures = [self.submit_delivery(o, time_left=time_left) for o in occurrences]
        return [future.result() for future in futures]

    def _deliver_guarded(
        self, occurrence: Occurrence, time_left: Callable[[], float] | None
    ) -> DeliveryResult:
        report = TickReport(now=self.clock())
        try:
            outcome = self._deliver(occurrence, report, time_left)
        except Exception as exc:  # a bug in lambdacron must not take the runner down
            self._emit(report, _internal_error(occurrence.key, exc))
            outcome = Delivered.RETRY
        return DeliveryResult(occurrence, outcome, report)

    def _deliver(
        self,
        occurrence: Occurrence,
        report: TickReport,
        time_left: Callable[[], float] | None,
    ) -> Delivered:
        now = report.now
        if now < occurrence.at:
            return Delivered.EARLY
        if self._environ_secrets is None:  # a delivery before any tick of this engine
            self._environ_secrets = secrets_in(self.environ)
        index = self.keeper.index
        report.seen = 1
        try:
            self.store.check_key(occurrence.key)
        except InvalidKeyError as exc:  # no job can ever be there: delivering again won't help
            self._emit(report, JobEvent(occurrence.key, Outcome.INVALID, str(exc)))
            return Delivered.NOTHING
        file = self._read(occurrence.key, report, index)
        if file is None:
            if report.store_errors:
                return Delivered.RETRY
            if report.events:  # a refused file is reported; repaired, it may run yet
                return Delivered.NOTHING
            message = "the job file is gone (deleted, or removed after its last run); not run"
            event = JobEvent(occurrence.key, Outcome.CANCELLED, message, occurrence.at)
            self._emit(report, event)
            return Delivered.STALE
        if file.job.fingerprint != occurrence.fingerprint:
            message = "its schedule changed since this run was planned; not run"
            self._emit(report, JobEvent(file.key, Outcome.CANCELLED, message, occurrence.at))
            return Delivered.STALE
        due = self._settle(file, report, now, index, now, None)
        if due is not None:
            report.due += 1
            self._claim_and_run(due, report, now, time_left)
        if report.ran:
            return Delivered.RAN
        if report.store_errors or report.internal_errors:
            return Delivered.RETRY
        return Delivered.NOTHING

    # ------------------------------------------------------------------ by hand

    def run_now(self, key: str) -> TickReport:
        """Run ``key`` once, now, out of its schedule (``lambdacron run``): claimed like any
        run, so never alongside another run of it; recorded with ``manual: true``. It counts
        as a run but takes no occurrence, so the schedule's window does not move; a job
        that used up its runs without success is deleted if this run ends ok. Raises
        ``JobNotFoundError`` when there is no such job, ``InvalidKeyError`` for a key no job
        can have."""
        now = self.clock()
        report = TickReport(now=now)
        if self._environ_secrets is None:
            self._environ_secrets = secrets_in(self.environ)
        self.store.check_key(key)  # InvalidKeyError, as a read would raise it
        report.seen = 1
        index = self.keeper.index
        file = self._read(key, report, index)
        if file is None and report.seen == 0:  # the read found nothing there (and forgot it)
            raise JobNotFoundError(f"{key}: no such job")
        while file is not None:
            decision = self.decide(file, now)
            claim = file.job.state.claim
            if decision.verdict is Verdict.REFUSE:
                problem = f"run.type: {file.job.run_type.value!r} is not allowed by this runner"
                self._refuse(report, index, key, file.version, problem)
                return report
            if decision.verdict is Verdict.RUNNING and claim is not None:
                message = still_going(claim, "a run of it is still going")
                self._emit(report, JobEvent(key, Outcome.RUNNING, message, claim.scheduled))
                return report
            if decision.verdict is Verdict.TELL:
                file = self._tell(file, report)
            elif decision.verdict is Verdict.INTERRUPT:
                file = self._interrupt(file, report, now)
            else:
                break
        if file is not None:
            index.drop(key)
            report.due = 1
            self._claim_and_run(_Due(file, now, manual=True), report, now, None)
        return report

    # ------------------------------------------------------------------ one job: decide

    def decide(self, file: JobFile, now: datetime) -> Decision:
        """What a tick at ``now`` does with this job as read. Pure but for the wall clock,
        which only tells whether a claim's deadline has passed."""
        job = file.job
        if job.run_type not in self.actions:
            return Decision(Verdict.REFUSE)
        claim = job.state.claim
        if claim is not None:
            if self.holder.is_live(claim, self.clock()):
                return Decision(Verdict.RUNNING)
            return Decision(Verdict.TELL if claim.telling is not None else Verdict.INTERRUPT)
        recorded = job.state.scheduled_from
        if recorded is None or recorded[0] != job.fingerprint:
            return Decision(Verdict.ADOPT)
        placed = file.version.modified
        due_at = next_due(job, placed)
        # Only a job whose earliest due time has come needs the (dearer) exact evaluation.
        if due_at is None or due_at > now:
            return Decision(Verdict.WAIT, due_at=due_at)
        scheduled = due_occurrence(job, placed, now)
        if scheduled is None:
            return Decision(Verdict.WAIT, due_at=due_at)
        attempt = job.state.retry.attempt if job.state.retry is not None else 1
        deadline = self.policies.deadline_of(job)
        if deadline is not None and now - scheduled > deadline:
            return Decision(Verdict.MISS, scheduled=scheduled, attempt=attempt)
        return Decision(Verdict.DUE, scheduled=scheduled, attempt=attempt)

    def _read(
        self, key: str, report: TickReport, index: Index, entry: Entry | None = None
    ) -> JobFile | None:
        if entry is not None and (kept := self.files.recall(key, entry.version)) is not None:
            return kept
        try:
            doc = self.store.read(key)
        except JobNotFoundError:
            index.drop(key)
            report.forget()  # deleted between the listing and the read
            return None
        except UnreadableJobError as exc:
            problem = str(exc).removeprefix(f"{key}: ")
            if entry is None:  # read without a listing: no version to remember it by
                index.drop(key)
                self._emit(report, JobEvent(key, Outcome.INVALID, problem))
            else:
                self._refuse(report, index, key, entry.version, problem)
            return None
        except StoreError as exc:
            index.drop(key)
            self._emit(report, JobEvent(key, Outcome.STORE_ERROR, str(exc)))
            return None
        file, problems = self._decoded(key, doc)
        if file is None:
            self._refuse(report, index, key, doc.version, "; ".join(map(str, problems)))
        return file

    def _decoded(self, key: str, doc: Document) -> tuple[JobFile | None, list[JobError]]:
        """The job in ``doc``, decoded and validated once per version: a version seen
        before, read or written by this engine, is taken from the file cache."""
        kept = self.files.recall(key, doc.version)
        if kept is not None:
            return kept, []
        job, problems, document = load(key, doc.body)
        if job is None:
            return None, problems
        file = JobFile(key, document, job, doc.version)
        self.files.remember(file, len(doc.body))
        return file, problems

    def _refuse(
        self, report: TickReport, index: Index, key: str, version: Version, problem: str
    ) -> None:
        index.put(key, IndexEntry(version.token, None, problem))
        self._emit(report, JobEvent(key, Outcome.INVALID, problem))

    def _consider(
        self,
        entry: Entry,
        report: TickReport,
        now: datetime,
        index: Index,
        horizon: datetime,
        planned: list[Occurrence] | None,
    ) -> _Due | None:
        """Read one job and decide."""
        file = self._read(entry.key, report, index, entry)
        if file is None:
            return None  # reported, and the index told, by the read
        return self._settle(file, report, now, index, horizon, planned)

    def _settle(
        self,
        file: JobFile,
        report: TickReport,
        now: datetime,
        index: Index,
        horizon: datetime,
        planned: list[Occurrence] | None,
    ) -> _Due | None:
        """Decide for a job as read: the run it is due for, or None. Records a dead claim,
        or when its schedule took effect, on the way (each a conditional write, after which
        the job is decided again); plans its occurrences up to ``horizon`` into ``planned``."""
        key = file.key
        while True:
            decision = self.decide(file, now)
            match decision.verdict:
                case Verdict.REFUSE:
                    problem = f"run.type: {file.job.run_type.value!r} is not allowed by this runner"
                    self._refuse(report, index, key, file.version, problem)
                    return None
                case Verdict.RUNNING:
                    claim = file.job.state.claim
                    assert claim is not None
                    index.put(key, IndexEntry(file.version.token, ALWAYS))
                    if holds_what_is_due(file, claim, now):
                        # Read just after the other runner's claim landed: the same race as
                        # a claim lost at the write, and nothing is held back.
                        event = JobEvent(key, Outcome.TAKEN, self._taken_by(file), claim.scheduled)
                    else:
                        message = still_going(claim, "the previous run is still going")
                        event = JobEvent(key, Outcome.RUNNING, message, claim.scheduled)
                    self._emit(report, event)
                    self._plan_ahead(file, now, horizon, planned)
                    return None
                case Verdict.INTERRUPT:
                    written = self._interrupt(file, report, now)
                case Verdict.TELL:
                    written = self._tell(file, report)
                case Verdict.MISS:
                    assert decision.scheduled is not None
                    written = self._miss(file, decision.scheduled, decision.attempt, report, now)
                case Verdict.ADOPT:
                    written = self._adopt(file, report)
                case Verdict.WAIT:
                    index.put(key, IndexEntry(file.version.token, decision.due_at))
                    if decision.due_at is not None and decision.due_at <= horizon:
                        self._plan_ahead(file, now, horizon, planned)
                    if not file.job.enabled:
                        self._emit(report, JobEvent(key, Outcome.DISABLED))
                    elif file.job.exhausted:
                        self._emit(report, JobEvent(key, Outcome.EXHAUSTED))
                    return None
                case Verdict.DUE:
                    assert decision.scheduled is not None
                    index.drop(key)  # the claim changes the file; the write-back records it
                    # Its next occurrences may come before the next tick, too.
                    self._plan_ahead(file, now, horizon, planned, running=1)
                    return _Due(file, decision.scheduled, decision.attempt)
            if written is None:
                index.drop(key)  # changed meanwhile: decided afresh at the next tick
                return None
            file = written

    @staticmethod
    def _plan_ahead(
        file: JobFile,
        now: datetime,
        horizon: datetime,
        planned: list[Occurrence] | None,
        running: int = 0,
    ) -> None:
        """Plan the job's occurrences in ``(now, horizon]``; ``running``: runs about to be
        claimed, which count against its ``max_number_executions``."""
        if planned is None or horizon <= now:
            return
        job = file.job
        if running:
            count = job.state.execution_count + running
            job = replace(job, state=replace(job.state, execution_count=count))
        found = upcoming(job, file.version.modified, now, horizon, MAX_PLANNED_PER_JOB)
        # list.extend is atomic under the GIL: reads of one chunk plan from many threads.
        planned.extend(Occurrence(at, file.key, job.fingerprint) for at in found)

    def _interrupt(self, file: JobFile, report: TickReport, now: datetime) -> JobFile | None:
        claim = file.job.state.claim
        assert claim is not None
        ending = ended(
            file.job,
            file.document,
            claim,
            interrupted_result(claim),
            self.clock(),
            self.policies,
            self.rng,
        )
        ending = self._owing(file, claim.scheduled, ending)
        try:
            written = self._write(
                file, settled(file.document, file.job, file.version.modified, ending), report
            )
            if written is not None:
                event = JobEvent(
                    file.key,
                    Outcome.INTERRUPTED,
                    interrupted_reason(claim) + self._retrying(ending),
                    claim.scheduled,
                    Status.INTERRUPTED,
                )
                self._emit(report, event)
                written = self._after(written, claim.scheduled, ending, report)
        finally:
            self._let_go(ending)
        return written

    def _adopt(self, file: JobFile, report: TickReport) -> JobFile | None:
        """Record when the job's schedule took effect. A retry still waiting belongs to the
        schedule that was, and is dropped with it: its occurrence has ended not ok, and is
        told of like every such end (with a claim held until the notice is out)."""
        change = adopted(file.document, file.job, file.version.modified)
        retry = file.job.state.retry
        if retry is None or change.state.retry == retry:
            return self._write(file, change, report)
        last = file.job.state.last_result
        ending = Ending(
            {"last_result": dict(last) if last else None},
            notice=NoticeReason.FAILED,
            attempts=retry.attempt - 1,
        )
        ending = self._owing(file, retry.scheduled, ending)
        if ending.holds is not None:
            change = change.holding(ending.holds)
        try:
            written = self._write(file, change, report)
            if written is None:
                return None
            message = (
                f"its schedule changed; attempt {retry.attempt} of this occurrence, due at"
                f" {iso(retry.at)}, is dropped"
            )
            self._emit(report, JobEvent(file.key, Outcome.CANCELLED, message, retry.scheduled))
            return self._after(written, retry.scheduled, ending, report)
        finally:
            self._let_go(ending)

    def _miss(
        self, file: JobFile, scheduled: datetime, attempt: int, report: TickReport, now: datetime
    ) -> JobFile | None:
        deadline = self.policies.deadline_of(file.job)
        assert deadline is not None
        ending = missed(file.job, file.document, scheduled, now, attempt, deadline)
        ending = self._owing(file, scheduled, ending)
        try:
            written = self._write(
                file, settled(file.document, file.job, file.version.modified, ending), report
            )
            if written is not None:
                message = str(ending.fields["last_result"]["error"])
                self._emit(report, JobEvent(file.key, Outcome.MISSED, message, scheduled))
                written = self._after(written, scheduled, ending, report)
        finally:
            self._let_go(ending)
        return written

    def _retrying(self, ending: Ending) -> str:
        retry = ending.retry
        if retry is None:
            return ""
        return f"; attempt {ending.attempts} failed, attempt {retry.attempt} at {iso(retry.at)}"

    def _after(
        self,
        file: JobFile,
        scheduled: datetime,
        ending: Ending,
        report: TickReport,
        *,
        valid: bool = True,
    ) -> JobFile | None:
        """What an attempt's end sets going once it is written: its retry's delivery, or
        the notice it owes and then the release of the claim held for it. The job as it
        then stands (None: changed meanwhile). ``valid``: False when the document written
        is no valid job (a user's edit merged into), ``file.job`` then the one that ran."""
        with self._pool.waiting():  # a queue, a topic, a function: the network
            # Only inside the lookahead: further out, the ticks plan it as every occurrence
            # (upcoming() holds it), and no message ever needs sending on past SQS's delay.
            retry, delivery = ending.retry, self.delivery
            if (
                retry is not None
                and delivery is not None
                and retry.at <= self.clock() + delivery.lookahead
            ):
                self._plan([Occurrence(retry.at, file.key, file.job.fingerprint)], report)
            if ending.notice is not None:
                self._notify(file, scheduled, ending, report)
        if ending.holds is not None:
            return self._release(file, ending.holds, report, valid=valid)
        return file if valid else None

    # ------------------------------------------------------------------ notices held

    def _owing(self, file: JobFile, scheduled: datetime, ending: Ending) -> Ending:
        """``ending``, holding a claim until its notice is out, when it owes one and someone
        is named to hear it. Without that claim a runner killed between writing the end
        and sending the notice would leave nobody told, and nothing to tell it from."""
        destination = self.policies.destination_of(file.job)
        if ending.notice is None or destination is None:
            return ending
        telling = Telling(ending.notice, ending.attempts, destination)
        claim = self.holder.telling_claim(scheduled, self.clock(), telling)
        INFLIGHT.add(claim.id)  # before its write: it is live from the moment it lands
        return ending.holding(claim)

    @staticmethod
    def _let_go(ending: Ending) -> None:
        if ending.holds is not None:
            INFLIGHT.discard(ending.holds.id)

    def _tell(self, file: JobFile, report: TickReport) -> JobFile | None:
        """Send the notice a dead claim was held for (its runner stopped before it was
        out), then release the claim. The claim is taken over first, with a conditional
        write, so that of the ticks finding it dead one tells."""
        claim = file.job.state.claim
        assert claim is not None and claim.telling is not None
        telling = claim.telling
        ours = self.holder.telling_claim(claim.scheduled, self.clock(), telling)
        INFLIGHT.add(ours.id)
        try:
            change = taken_over(file.document, file.job, file.version.modified, ours)
            written = self._write(file, change, report)
            if written is None:
                return None
            last = written.job.state.last_result
            ending = Ending(
                {"last_result": dict(last) if last else None},
                notice=telling.reason,
                attempts=telling.attempts,
            )
            with self._pool.waiting():
                self._notify(written, claim.scheduled, ending, report, to=telling.to)
            return self._release(written, ours, report)
        finally:
            INFLIGHT.discard(ours.id)

    def _release(
        self, file: JobFile, claim: Claim, report: TickReport, *, valid: bool = True
    ) -> JobFile | None:
        """Remove ``claim``, held for a notice now sent (or given up on), from the job:
        merged into the user's version if they edited it meanwhile, like a result. A
        document that is no valid job (``valid`` False) is not remembered as one."""
        written = write_back(
            self.store,
            file,
            claim,
            Ending({"claim": None}),
            remember=functools.partial(self.files.remember, ran=True) if valid else _forget,
            sleep=self._sleep,
            on_error=lambda message: self._emit(
                report, JobEvent(file.key, Outcome.STORE_ERROR, message)
            ),
        )
        index = self.keeper.index
        if not isinstance(written, Written) or written.job is None or not (valid or written.merged):
            index.drop(file.key)
            return None
        due_at = next_due(written.job, written.version.modified)
        index.put(file.key, IndexEntry(written.version.token, due_at))
        return JobFile(file.key, written.document, written.job, written.version)

    def _notify(
        self,
        file: JobFile,
        scheduled: datetime,
        ending: Ending,
        report: TickReport,
        to: Destination | None = None,
    ) -> None:
        event = self.teller.tell(file, scheduled, ending, to)
        if event is not None:
            self._emit(report, event)

    def _write(self, file: JobFile, change: Change, report: TickReport) -> JobFile | None:
        """Write a runner change conditionally; the new JobFile, or None if the file changed
        meanwhile (or vanished, or the store failed: then it is reported)."""
        body = encode(change.document)
        try:
            version = self.store.write(file.key, body, file.version)
        except JobNotFoundError:
            return None
        except ConflictError as exc:
            # Lost to another writer, unless an earlier attempt of this same write was sent
            # (its answer lost): only then may the bytes there be ours. Another runner's
            # identical write (two ticks recording the same dead claim) is not ours, or both
            # would tell of it.
            if not exc.retried:
                return None
            landed = self._holds(file.key, body)
            if landed is None:
                return None
            version = landed
        except StoreError as exc:
            # A write whose answer was lost is retried by botocore and then fails its own
            # precondition: it may be there all the same.
            landed = self._holds(file.key, body)
            if landed is None:
                self._emit(report, JobEvent(file.key, Outcome.STORE_ERROR, str(exc)))
                return None
            version = landed
        written = JobFile(file.key, change.document, change.applied_to(file.job), version)
        self.files.remember(written, len(body))
        return written

    def _holds(self, key: str, body: bytes) -> Version | None:
        """The version if the store holds exactly ``body``, else None."""
        try:
            doc = self.store.read(key)
        except StoreError:
            return None
        return doc.version if doc.body == body else None

    # ------------------------------------------------------------------ one job: run

    def _guarded(
        self,
        due: _Due,
        report: TickReport,
        now: datetime,
        time_left: Callable[[], float] | None,
    ) -> None:
        try:
            self._claim_and_run(due, report, now, time_left)
        except Exception as exc:  # a bug in lambdacron must not take the tick down with it
            self._emit(report, _internal_error(due.key, exc))

    def _claim_and_run(
        self,
        due: _Due,
        report: TickReport,
        now: datetime,
        time_left: Callable[[], float] | None,
    ) -> None:
        if self.stopping:  # checked right before the claim: a stopping runner starts nothing
            message = "the runner is stopping; left for the next tick"
            self._emit(report, JobEvent(due.key, Outcome.NOT_STARTED, message, due.scheduled))
            return
        taken = self._claim(due, now, report, time_left)
        if taken is None:
            return
        file, claim = taken  # in INFLIGHT since before its write
        try:
            self._run_and_record(file, claim, report)
        finally:
            INFLIGHT.discard(claim.id)

    def _claim(
        self,
        due: _Due,
        now: datetime,
        report: TickReport,
        time_left: Callable[[], float] | None,
    ) -> tuple[JobFile, Claim] | None:
        for _ in range(WRITE_ATTEMPTS):
            job = due.file.job
            # Checked when a worker takes the job, not when the tick starts: a queue of
            # long jobs must not start one the function cannot finish.
            if (
                time_left is not None
                and not self._never_fits(job)
                and time_left() < job.timeout_seconds + self.start_margin
            ):
                message = "not enough time left in this tick; runs at the next"
                event = JobEvent(due.key, Outcome.SKIPPED_DEADLINE, message, due.scheduled)
                self._emit(report, event)
                return None
            started = self.clock()
            deadline = self.policies.deadline_of(job)
            # The deadline is for the start: a tick's time may be behind the clock (a late
            # event), and a worker may take a due job long after the tick decided.
            if deadline is not None and not due.manual and started - due.scheduled > deadline:
                self._miss(due.file, due.scheduled, due.attempt, report, started)
                return None
            claim = self.holder.new_claim(job, due.scheduled, started, due.attempt, due.manual)
            change = claimed(due.file.document, job, due.file.version.modified, claim, now)
            body = encode(change.document)
            # Held before the write: from the instant the claim lands, another engine of this
            # process reading it must find it live. Released below unless the claim is ours.
            INFLIGHT.add(claim.id)
            try:
                version = self.store.write(due.key, body, due.file.version)
            except JobNotFoundError:
                INFLIGHT.discard(claim.id)
                return None  # deleted before it ran: nothing to do
            except StoreError as exc:
                # A write whose answer was lost is retried by botocore and then fails its
                # own precondition: check whether the claim that is there is ours.
                landed = self._landed(due.key, claim)
                if landed is not None:
                    return landed, claim
                INFLIGHT.discard(claim.id)
                if not isinstance(exc, ConflictError):
                    event = JobEvent(due.key, Outcome.STORE_ERROR, str(exc), due.scheduled)
                    self._emit(report, event)
                    return None
                if due.manual:
                    message = "the job changed while it was being claimed; run it again"
                    self._emit(report, JobEvent(due.key, Outcome.LOST, message, due.scheduled))
                    return None
                # Lost the race, or the user edited the file: decide again on fresh state.
                fresh, seen = self._reconsider(due.key, now)
                if fresh is None:
                    # The healthy race: another tick, or the delivery of the same second.
                    message = self._taken_by(seen)
                    self._emit(report, JobEvent(due.key, Outcome.TAKEN, message, due.scheduled))
                    return None
                due = fresh
                continue
            except BaseException:
                INFLIGHT.discard(claim.id)
                raise
            taken = JobFile(due.key, change.document, change.applied_to(job), version)
            self.files.remember(taken, len(body), ran=True)
            return taken, claim
        message = "the file keeps changing"
        self._emit(report, JobEvent(due.key, Outcome.LOST, message, due.scheduled))
        return None

    def _landed(self, key: str, claim: Claim) -> JobFile | None:
        """The job as stored if the store holds our claim, else None."""
        try:
            doc = self.store.read(key)
        except StoreError:
            return None
        file, _ = self._decoded(key, doc)
        there = file.job.state.claim if file is not None else None
        return file if there is not None and there.id == claim.id else None

    def _reconsider(self, key: str, now: datetime) -> tuple[_Due | None, JobFile | None]:
        """After a lost claim: the job read afresh, if the same decision still runs it; and
        the job as read."""
        try:
            doc = self.store.read(key)
        except StoreError:
            return None, None
        file, _ = self._decoded(key, doc)
        if file is None:
            return None, None
        decision = self.decide(file, now)
        if decision.verdict is not Verdict.DUE or decision.scheduled is None:
            return None, file
        return _Due(file, decision.scheduled, decision.attempt), file

    def _taken_by(self, seen: JobFile | None) -> str:
        claim = seen.job.state.claim if seen is not None else None
        if claim is not None and (claim.host, claim.pid) == (self.host, self.pid):
            # serve's own timer delivering the occurrence the tick also found due: one
            # runner, not two, which "another runner" would wrongly suggest. A claim taken
            # seconds ago is that delivery; an older one is this runner's run still going.
            if self.clock() - claim.started > _SAME_SECOND:
                return "claimed by this runner, whose run of it is still going"
            return "claimed first by this runner (its delivery of the same second), which runs it"
        return "claimed by another runner, which runs it"

    def _never_fits(self, job: Job) -> bool:
        limit = self.max_run_seconds
        return limit is not None and job.timeout_seconds + self.start_margin > limit

    def _run(self, file: JobFile, claim: Claim) -> Result:
        job = file.job
        if self._never_fits(job):
            return Result(
                Status.ERROR,
                claim.started,
                0,
                error=f"timeout_seconds is {job.timeout_seconds:g}, more than this runner can"
                f" ever give a run ({self.max_run_seconds:g} s less a {self.start_margin:g} s"
                " margin); lower it, or raise the function's timeout",
            )
        execution = job.state.execution_count  # counted by the claim: 1 for the first run
        context = RunContext(
            file.key, claim.scheduled, execution, job.timeout_seconds, claim.started
        )
        with self._pool.waiting():
            result = self.actions[job.run_type].run(job.action, context)
        job_env = job.action.env
        secrets = (
            secrets_in(self.environ, job_env)
            if job_env or self._environ_secrets is None
            else self._environ_secrets
        )
        return replace(
            result,
            # The output may be a window of a longer stream: a cut secret is redacted too.
            output=tail(redact_window(result.output, secrets), OUTPUT_LIMIT),
            # An error may quote a longer message cut to length (a Lambda's answer).
            error=redact_window(result.error, secrets) if result.error else result.error,
        )

    def _sleep(self, seconds: float) -> None:
        with self._pool.waiting():
            time.sleep(seconds)

    def _run_and_record(self, file: JobFile, claim: Claim, report: TickReport) -> None:
        # Lateness counts to the claim, the moment the runner took the occurrence to run it.
        lateness = (claim.started - claim.scheduled) // timedelta(milliseconds=1)
        result = replace(self._run(file, claim), lateness_ms=lateness)
        ending = ended(
            file.job, file.document, claim, result.to_json(), self.clock(), self.policies, self.rng
        )
        ending = self._owing(file, claim.scheduled, ending)
        try:
            self._record(file, claim, result, ending, report)
        finally:
            self._let_go(ending)

    def _record(
        self, file: JobFile, claim: Claim, result: Result, ending: Ending, report: TickReport
    ) -> None:
        written = write_back(
            self.store,
            file,
            claim,
            ending,
            remember=functools.partial(self.files.remember, ran=True),
            sleep=self._sleep,
            on_error=lambda message: self._emit(
                report, JobEvent(file.key, Outcome.STORE_ERROR, message)
            ),
        )
        landed = written if isinstance(written, Written) else None
        deleted = landed is not None and self._delete_if_done(file, landed, ending, report)
        index = self.keeper.index
        if deleted:
            index.drop(file.key)
        elif landed is not None and landed.job is not None:
            # Remember the new state, so the next tick need not read the job back.
            due_at = next_due(landed.job, landed.version.modified)
            index.put(file.key, IndexEntry(landed.version.token, due_at))
        message = (result.error or "") + (self._retrying(ending) if landed is not None else "")
        if isinstance(written, Unwritten):
            message = (message + "; " if message else "") + f"result not written: {written}"
        event = JobEvent(
            file.key,
            Outcome.RAN,
            message,
            claim.scheduled,
            result.status,
            deleted=deleted,
            output=result.output,
            lateness_ms=result.lateness_ms,
            retrying=landed is not None and ending.retry is not None,
        )
        self._emit(report, event)
        if landed is not None:
            # Merged into an edit that is no valid job, the end still holds its claim: the
            # claim must go once the notice is out, or the tick that finds the file repaired
            # takes it for dead and tells again.
            valid = landed.job is not None
            after = JobFile(file.key, landed.document, landed.job or file.job, landed.version)
            self._after(after, claim.scheduled, ending, report, valid=valid)
        elif ending.notice is not None:
            # The result could not be written (the file was deleted or taken over, or the
            # store failed): whoever must hear of a failure still does.
            with self._pool.waiting():
                self._notify(file, claim.scheduled, ending, report)

    def _delete_if_done(
        self, file: JobFile, written: Written, ending: Ending, report: TickReport
    ) -> bool:
        """Delete a job whose last run ended ok and reached max_number_executions, unless
        it was edited during the run. A job that used up its runs without success is
        kept, with its result, until someone removes it or runs it (``lambdacron run``)."""
        job = file.job
        limit = job.max_number_executions
        status = ending.fields["last_result"]["status"]
        if written.merged or limit <= 0 or job.state.execution_count < limit:
            return False
        if status != Status.OK.value or ending.retry is not None:
            return False
        try:
            self.store.delete(file.key, written.version)
            return True
        except (ConflictError, JobNotFoundError):
            return False  # edited or removed meanwhile: the user's version stands
        except StoreError as exc:
            self._emit(report, JobEvent(file.key, Outcome.STORE_ERROR, str(exc), claim_of(file)))
            return False


def _forget(file: JobFile, size: int) -> None:
    """Remember nothing: for a document that holds no valid job."""


def holds_what_is_due(file: JobFile, claim: Claim, now: datetime) -> bool:
    """Whether the live ``claim`` is on the very occurrence a runner at ``now`` would run: a
    run of the schedule (not by hand, nor a notice being sent), with no later occurrence
    due. Then nothing waits for it: the occurrence is taken by that runner, not skipped."""
    if claim.manual or claim.telling is not None:
        return False
    return due_occurrence(file.job, file.version.modified, now) is None


def claim_of(file: JobFile) -> datetime | None:
    claim = file.job.state.claim
    return claim.scheduled if claim is not None else None
