"""The tick: find the jobs whose time has come (the rule is in ``due.py``), claim, run,
write back.

At most once: before running, the runner records ``last_scheduled = t`` and a ``claim`` with
a conditional write. Whoever loses the write re-reads and sees the occurrence taken. A runner
that dies after claiming leaves the claim behind; a later tick finds it dead (past its
deadline, or its process gone on this host) and records the run as ``interrupted``. It is
never run again.
"""

from __future__ import annotations

import itertools
import os
import socket
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from .._version import __version__
from ..actions.base import OUTPUT_LIMIT, ActionRegistry, Result, RunContext
from ..actions.process import KILL_GRACE_SECONDS, stop_running
from ..errors import ConflictError, JobNotFoundError, JobTooLargeError, ScheduleError, StoreError
from ..job import (
    Claim,
    Job,
    Status,
    claim_to_json,
    encode,
    fingerprint_of,
    iso,
    load,
    with_runner_fields,
)
from ..redact import redact, redact_window, secrets_in, tail
from ..schedule import parse_instant
from ..store.base import Document, Entry, Store, Version
from .due import due_occurrence, next_due, schedule_since
from .index import ALWAYS, Index, IndexEntry
from .report import JobEvent, Outcome, TickReport

Clock = Callable[[], datetime]
#: A claim outlives its run's timeout by this much before it is presumed dead.
CLAIM_GRACE = timedelta(seconds=120)
DEFAULT_WORKERS = 8
_WRITE_ATTEMPTS = 5
DEFAULT_IO_WORKERS = 16
#: Listed entries taken at a time, decided on, and their due jobs handed to the runs.
_CHUNK = 1000
#: Bodies of jobs this engine wrote last, kept to claim their next run without a read.
_BODY_CACHE = 20_000
#: The index is saved when a twentieth of its entries changed, or when the saved copy is
#: this old.
_SAVE_MAX_AGE_S = 600.0
_STORE_RETRIES = 3


def host_identity() -> str:
    """This machine, for telling whether a claim's process can be checked here.

    The hostname alone is not enough: Lambda execution environments can share one, while
    their process ids overlap. The kernel's boot id tells machines (and microVMs) apart.
    """
    try:
        with open("/proc/sys/kernel/random/boot_id") as handle:
            boot = handle.read().strip()[:8]
    except OSError:
        boot = ""
    name = socket.gethostname()
    return f"{name}/{boot}" if boot else name


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError, ValueError):
        return False
    except PermissionError:
        return True
    return True


class _Inflight:
    """The claims this process holds right now, whichever engine took them.

    Process-wide, not per engine: a claim carrying this host and this pid is live exactly
    when some engine of this process is running it. Two engines in one process (two
    handler threads, or direct use) must not take each other's live runs for dead, and a
    claim with our pid that no engine holds was abandoned (its write-back failed)."""

    def __init__(self) -> None:
        self._ids: set[str] = set()
        self._lock = threading.Lock()

    def add(self, claim_id: str) -> None:
        with self._lock:
            self._ids.add(claim_id)

    def discard(self, claim_id: str) -> None:
        with self._lock:
            self._ids.discard(claim_id)

    def __contains__(self, claim_id: object) -> bool:
        with self._lock:
            return claim_id in self._ids


INFLIGHT = _Inflight()


def _ran_later(document: dict[str, Any], scheduled: datetime) -> bool:
    value = document.get("last_scheduled")
    if not isinstance(value, str):
        return False
    try:
        return parse_instant(value, UTC) > scheduled
    except ScheduleError:
        return False


def _internal_error(key: str, exc: Exception) -> JobEvent:
    return JobEvent(key, Outcome.INTERNAL_ERROR, f"internal error: {type(exc).__name__}: {exc}")


@dataclass
class _Candidate:
    key: str
    document: dict[str, Any]
    version: Version
    job: Job
    scheduled: datetime


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
    ) -> None:
        self.store = store
        self.actions = actions
        self.clock = clock
        self.log = log or (lambda event: None)
        self.host = host or host_identity()
        self.pid = os.getpid() if pid is None else pid
        self.is_alive = is_alive
        self.time_left = time_left
        self.start_margin = start_margin
        #: The most time any run can ever get here (a Lambda's whole timeout); a job that
        #: needs more is recorded as an error at each occurrence instead of waiting forever.
        self.max_run_seconds = max_run_seconds
        #: The environment runs inherit; its credentials are redacted from results.
        self.environ = os.environ if environ is None else environ
        self._environ_secrets: tuple[str, ...] = ()
        #: (i, n): this engine ticks shard i of n of the store; None: all of it.
        self.shard = shard
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="lambdacron-run")
        self._io = ThreadPoolExecutor(
            max_workers=min(io_workers, store.read_concurrency), thread_name_prefix="lambdacron-io"
        )
        self._index: Index | None = None
        self._index_lock = threading.Lock()
        self._index_saved_at = float("-inf")
        self._bodies: OrderedDict[str, tuple[str, bytes]] = OrderedDict()
        self._bodies_lock = threading.Lock()
        self._stopping = threading.Event()

    def close(self) -> None:
        """Wait for running jobs to finish (or time out), then release the workers."""
        self._pool.shutdown(wait=True)
        self._io.shutdown(wait=True)

    def stop_starting(self) -> None:
        """Start no more runs, in this tick or any later one. Runs in progress go on and are
        recorded; due occurrences not yet claimed stay unclaimed, for the next runner."""
        self._stopping.set()

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
        return self._stopping.is_set()

    def claim_is_live(self, claim: Claim) -> bool:
        """Whether a tick now would leave this claim be (its run may still be going)."""
        return self._claim_is_live(claim)

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
        budget = time_left if time_left is not None else self.time_left
        report = TickReport(now=now)
        # Once per tick, not per run: scanning the environment costs more than a no-op run.
        self._environ_secrets = secrets_in(self.environ)
        index = self._load_index()
        listing = self.store.list(self.shard, splits=self._splits(index))
        listed: set[str] = set()
        futures: list[Future[None]] = []

        def consider(entry: Entry) -> _Candidate | None:
            try:
                return self._consider(entry, report, now, index)
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
        chunk_size = _CHUNK if parallel else None
        try:
            while not self.stopping and (chunk := list(itertools.islice(listing, chunk_size))):
                report.seen += len(chunk)
                to_read: list[Entry] = []
                for entry in chunk:
                    if entry.problem is not None:  # listed, but no job can be read there
                        self._emit(report, JobEvent(entry.key, Outcome.INVALID, entry.problem))
                        continue
                    listed.add(entry.key)
                    cached = index.get(entry.key)
                    if cached is not None and cached.token == entry.version.token:
                        if cached.problem is not None:
                            self._emit(report, JobEvent(entry.key, Outcome.INVALID, cached.problem))
                            continue
                        if cached.due_at is None or cached.due_at > now:
                            continue  # unchanged and not due: no read at all
                    to_read.append(entry)
                candidates = self._io.map(consider, to_read) if parallel else map(consider, to_read)
                for candidate in candidates:
                    if candidate is not None:
                        report.due += 1
                        futures.append(
                            self._pool.submit(self._guarded, candidate, report, now, budget)
                        )
        except Exception as exc:  # StoreError, or a listing bug: the pass goes on regardless
            report.listing_error = str(exc)
            self._emit(report, JobEvent("", Outcome.STORE_ERROR, f"cannot list the store: {exc}"))
            listed.clear()  # a partial listing must not evict the unlisted from the index
        if self.stopping:
            listed.clear()  # the listing was cut short: what was not listed still exists
        for future in futures:
            future.result()
        if listed:
            index.keep_only(listed)
        self._save_index(index, report)
        report.duration_s = time.monotonic() - begin
        return report

    # ------------------------------------------------------------------ the index

    @property
    def index_name(self) -> str:
        return (
            "index.json" if self.shard is None else f"index-{self.shard[0]}-of-{self.shard[1]}.json"
        )

    def _splits(self, index: Index) -> list[str]:
        """Keys from the last listing, about a page apart, for a paged store to list the
        ranges between them in parallel. Each range is cut a little short of a page, so
        that a few new jobs (and the runner's own objects) still fit in one request."""
        page = self.store.list_page_size
        if page <= 0 or self.shard is not None or len(index) < 2 * page:
            return []
        step = page - page // 50
        return sorted(index.keys())[step - 1 :: step]

    # ------------------------------------------------------------------ written bodies

    def _remember(self, key: str, body: bytes, version: Version) -> None:
        """Keep what we just wrote: the job's next run can claim it without reading it back.

        Safe because the claim is conditional on this version: if anyone changed the file
        since, the claim fails, and the job is read afresh.
        """
        with self._bodies_lock:
            self._bodies[key] = (version.token, body)
            self._bodies.move_to_end(key)
            while len(self._bodies) > _BODY_CACHE:
                self._bodies.popitem(last=False)

    def _recall(self, entry: Entry) -> Document | None:
        with self._bodies_lock:
            kept = self._bodies.pop(entry.key, None)
        if kept is None or kept[0] != entry.version.token:
            return None
        return Document(entry.key, kept[1], entry.version)

    @property
    def index(self) -> Index:
        """The index this engine keeps (loaded from the store on first use)."""
        return self._load_index()

    def _load_index(self) -> Index:
        with self._index_lock:
            if self._index is None:
                # Every input of a cached verdict: a different limit, set of run types or
                # version of the rules must not inherit the old verdicts.
                types = ",".join(sorted(t.value for t in self.actions))
                context = f"{types};max={self.store.max_job_bytes};rules={__version__}"
                self._index = Index.from_bytes(self.store.read_internal(self.index_name), context)
            return self._index

    def _save_index(self, index: Index, report: TickReport) -> None:
        # Saving costs a write of the whole index; a stale saved index costs only the reads
        # of what changed since. So save after real change, or now and then, not every tick.
        with self._index_lock:
            age = time.monotonic() - self._index_saved_at
            enough = len(index.changed) >= max(2, len(index) // 20)
            if not index.dirty or not (enough or age >= _SAVE_MAX_AGE_S):
                return
            body = index.to_bytes()
            index.dirty = False
            index.changed.clear()
            self._index_saved_at = time.monotonic()
        try:
            self.store.write_internal(self.index_name, body)
        except StoreError as exc:
            index.dirty = True  # a cache: try again at the next tick
            self._index_saved_at = float("-inf")
            self._emit(report, JobEvent("", Outcome.STORE_ERROR, f"index not saved: {exc}"))

    def _emit(self, report: TickReport, event: JobEvent) -> None:
        report.add(event)
        self.log(event)

    def _claim_is_live(self, claim: Claim) -> bool:
        if self.clock() > claim.deadline:
            return False
        if claim.host != self.host:
            return True  # another machine: only the deadline can tell
        if claim.pid == self.pid:
            return claim.id in INFLIGHT
        return self.is_alive(claim.pid)

    def _consider(
        self, entry: Entry, report: TickReport, now: datetime, index: Index
    ) -> _Candidate | None:
        """Read one job and decide; records a dead claim as interrupted on the way."""
        key = entry.key
        try:
            doc = self._recall(entry) or self.store.read(key)
        except JobNotFoundError:
            index.drop(key)
            report.forget()  # deleted between the listing and the read
            return None
        except JobTooLargeError as exc:
            problem = str(exc).removeprefix(f"{key}: ")
            index.put(key, IndexEntry(entry.version.token, None, problem))
            self._emit(report, JobEvent(key, Outcome.INVALID, problem))
            return None
        except StoreError as exc:
            index.drop(key)
            self._emit(report, JobEvent(key, Outcome.STORE_ERROR, str(exc)))
            return None
        job, problems, document = load(key, doc.body)
        if job is None or job.run_type not in self.actions:
            problem = (
                "; ".join(map(str, problems))
                if job is None
                else f"run.type: {job.run_type.value!r} is not allowed by this runner"
            )
            index.put(key, IndexEntry(doc.version.token, None, problem))
            self._emit(report, JobEvent(key, Outcome.INVALID, problem))
            return None
        version = doc.version
        claim = job.state.claim
        if claim is not None:
            if self._claim_is_live(claim):
                index.put(key, IndexEntry(version.token, ALWAYS))
                self._emit(
                    report,
                    JobEvent(
                        key, Outcome.RUNNING, "the previous run is still going", claim.scheduled
                    ),
                )
                return None
            marked = self._mark_interrupted(job, document, version, claim, report)
            if marked is None:
                index.drop(key)
                return None
            document, version = marked
            job, _, _ = load(key, encode(document))
            assert job is not None  # only runner fields changed
        recorded = job.state.scheduled_from
        if recorded is None or recorded[0] != job.fingerprint:
            adopted = self._adopt(job, document, version, report)
            if adopted is None:
                index.drop(key)  # changed meanwhile: decided afresh at the next tick
                return None
            job, document, version = adopted
        due_at = next_due(job, version.modified)
        # Only a job whose earliest due time has come needs the (dearer) exact evaluation.
        scheduled = (
            None if due_at is None or due_at > now else (due_occurrence(job, version.modified, now))
        )
        if scheduled is None:
            index.put(key, IndexEntry(version.token, due_at))
            if not job.enabled:
                report.add(JobEvent(key, Outcome.DISABLED))
            elif job.exhausted:
                report.add(JobEvent(key, Outcome.EXHAUSTED))
            return None
        index.drop(key)  # the claim changes the file; the write-back records the new state
        return _Candidate(key, document, version, job, scheduled)

    @staticmethod
    def _scheduled_from(job: Job, version: Version) -> dict[str, str]:
        return {"fingerprint": job.fingerprint, "since": iso(schedule_since(job, version.modified))}

    def _adopt(
        self, job: Job, document: dict[str, Any], version: Version, report: TickReport
    ) -> tuple[Job, dict[str, Any], Version] | None:
        """Record when the job's current schedule took effect, the first time a tick sees it.

        The file's modification time says when it was placed only until the next edit of
        any field. Recorded while it is still true, a later edit of the payload does not
        move the window, and a schedule changed away and back (disabled, then re-enabled)
        is seen as changed, so what it missed meanwhile is not replayed.
        """
        since = schedule_since(job, version.modified)
        fields = {"scheduled_from": {"fingerprint": job.fingerprint, "since": iso(since)}}
        adopted = with_runner_fields(document, fields)
        body = encode(adopted)
        try:
            new_version = self.store.write(job.key, body, version)
        except JobNotFoundError:
            return None
        except StoreError as exc:
            # A write whose answer was lost is retried by botocore and then fails its own
            # precondition: it may be there all the same.
            landed = self._landed_body(job.key, body)
            if landed is None:
                if not isinstance(exc, ConflictError):
                    self._emit(report, JobEvent(job.key, Outcome.STORE_ERROR, str(exc)))
                return None
            new_version = landed
        self._remember(job.key, body, new_version)
        state = replace(job.state, scheduled_from=(job.fingerprint, since))
        return replace(job, state=state), adopted, new_version

    def _mark_interrupted(
        self, job: Job, document: dict[str, Any], version: Version, claim: Claim, report: TickReport
    ) -> tuple[dict[str, Any], Version] | None:
        key = job.key
        reason = (
            f"no result was recorded: the runner ({claim.host} pid {claim.pid}) stopped, "
            "or could not write to the store"
        )
        result = {
            "status": Status.INTERRUPTED.value,
            "exit_code": None,
            "started": iso(claim.started),
            "duration_ms": None,
            "output": "",
            "error": reason,
        }
        # Every runner write records when the schedule took effect, because the write
        # itself moves the file's modification time.
        fields = {
            "last_result": result,
            "claim": None,
            "scheduled_from": self._scheduled_from(job, version),
        }
        updated = with_runner_fields(document, fields)
        try:
            new_version = self.store.write(key, encode(updated), version)
        except (ConflictError, JobNotFoundError):
            return None  # someone else got there first; the next tick sees their state
        except StoreError as exc:
            self._emit(report, JobEvent(key, Outcome.STORE_ERROR, str(exc)))
            return None
        self._emit(
            report,
            JobEvent(
                key,
                Outcome.NOT_DUE,
                reason,
                claim.scheduled,
                Status.INTERRUPTED,
                interrupted=True,
            ),
        )
        return updated, new_version

    # ------------------------------------------------------------------ one run

    def _guarded(
        self,
        candidate: _Candidate,
        report: TickReport,
        now: datetime,
        time_left: Callable[[], float] | None,
    ) -> None:
        try:
            self._claim_and_run(candidate, report, now, time_left)
        except Exception as exc:  # a bug in lambdacron must not take the tick down with it
            self._emit(report, _internal_error(candidate.key, exc))

    def _claim(
        self,
        c: _Candidate,
        now: datetime,
        report: TickReport,
        time_left: Callable[[], float] | None,
    ) -> tuple[_Candidate, Claim, dict[str, Any], Version] | None:
        for _ in range(_WRITE_ATTEMPTS):
            # Checked when a worker takes the job, not when the tick starts: a queue of
            # long jobs must not start one the function cannot finish.
            if (
                time_left is not None
                and not self._never_fits(c.job)
                and time_left() < c.job.timeout_seconds + self.start_margin
            ):
                self._emit(
                    report,
                    JobEvent(
                        c.key,
                        Outcome.SKIPPED_DEADLINE,
                        "not enough time left in this tick; runs at the next",
                        c.scheduled,
                    ),
                )
                return None
            started = self.clock()
            claim = Claim(
                uuid.uuid4().hex,
                c.scheduled,
                self.host,
                self.pid,
                started,
                started + timedelta(seconds=c.job.timeout_seconds) + CLAIM_GRACE,
            )
            fields = {
                "execution_count": c.job.state.execution_count + 1,
                "last_run": iso(now),
                "last_scheduled": iso(c.scheduled),
                "scheduled_from": self._scheduled_from(c.job, c.version),
                "claim": claim_to_json(claim),
            }
            claimed = with_runner_fields(c.document, fields)
            try:
                version = self.store.write(c.key, encode(claimed), c.version)
                return c, claim, claimed, version
            except JobNotFoundError:
                return None  # deleted before it ran: nothing to do
            except ConflictError:
                # A write whose answer was lost is retried by botocore and then fails its
                # own precondition: check whether the claim that is there is ours.
                landed = self._landed(c.key, claim)
                if landed is not None:
                    return c, claim, landed[0], landed[1]
                # Lost the race, or the user edited the file: decide again on fresh state.
                fresh = self._reconsider(c.key, now)
                if fresh is None:
                    self._emit(
                        report,
                        JobEvent(c.key, Outcome.LOST, "claimed by another runner", c.scheduled),
                    )
                    return None
                c = fresh
            except StoreError as exc:
                landed = self._landed(c.key, claim)
                if landed is not None:
                    return c, claim, landed[0], landed[1]
                self._emit(report, JobEvent(c.key, Outcome.STORE_ERROR, str(exc), c.scheduled))
                return None
        self._emit(report, JobEvent(c.key, Outcome.LOST, "the file keeps changing", c.scheduled))
        return None

    def _never_fits(self, job: Job) -> bool:
        limit = self.max_run_seconds
        return limit is not None and job.timeout_seconds + self.start_margin > limit

    def _landed_body(self, key: str, body: bytes) -> Version | None:
        """The version if the store holds exactly ``body``, else None."""
        try:
            doc = self.store.read(key)
        except StoreError:
            return None
        return doc.version if doc.body == body else None

    def _landed(self, key: str, claim: Claim) -> tuple[dict[str, Any], Version] | None:
        """The document and version if the store holds our claim, else None."""
        try:
            doc = self.store.read(key)
        except StoreError:
            return None
        _, _, document = load(key, doc.body)
        if isinstance(document, dict):
            held = document.get("claim")
            if isinstance(held, dict) and held.get("id") == claim.id:
                return document, doc.version
        return None

    def _reconsider(self, key: str, now: datetime) -> _Candidate | None:
        try:
            doc = self.store.read(key)
        except StoreError:
            return None
        job, _, document = load(key, doc.body)
        if job is None or job.state.claim is not None or job.run_type not in self.actions:
            return None
        scheduled = due_occurrence(job, doc.version.modified, now)
        if scheduled is None:
            return None
        return _Candidate(key, document, doc.version, job, scheduled)

    def _claim_and_run(
        self,
        candidate: _Candidate,
        report: TickReport,
        now: datetime,
        time_left: Callable[[], float] | None,
    ) -> None:
        if self.stopping:  # checked right before the claim: a stopping runner starts nothing
            self._emit(
                report,
                JobEvent(
                    candidate.key,
                    Outcome.NOT_STARTED,
                    "the runner is stopping; left for the next tick",
                    candidate.scheduled,
                ),
            )
            return
        claimed = self._claim(candidate, now, report, time_left)
        if claimed is None:
            return
        c, claim, document, version = claimed
        INFLIGHT.add(claim.id)
        try:
            self._run_and_record(c, claim, document, version, report)
        finally:
            INFLIGHT.discard(claim.id)

    def _run_and_record(
        self,
        c: _Candidate,
        claim: Claim,
        document: dict[str, Any],
        version: Version,
        report: TickReport,
    ) -> None:
        execution = c.job.state.execution_count + 1
        context = RunContext(c.key, c.scheduled, execution, c.job.timeout_seconds, claim.started)
        if self._never_fits(c.job):
            result = Result(
                Status.ERROR,
                claim.started,
                0,
                error=f"timeout_seconds is {c.job.timeout_seconds:g}, more than this runner can"
                f" ever give a run ({self.max_run_seconds:g} s less a {self.start_margin:g} s"
                " margin); lower it, or raise the function's timeout",
            )
        else:
            result = self.actions[c.job.run_type].run(c.job.action, context)
        job_env = getattr(c.job.action, "env", {})
        secrets = secrets_in(self.environ, job_env) if job_env else self._environ_secrets
        result = replace(
            result,
            # The output may be a window of a longer stream: a cut secret is redacted too.
            output=tail(redact_window(result.output, secrets), OUTPUT_LIMIT),
            error=redact(result.error, secrets) if result.error else result.error,
        )
        fields = {
            name: document.get(name)
            for name in ("execution_count", "last_run", "last_scheduled", "scheduled_from")
        }
        fields.update({"last_result": result.to_json(), "claim": None})
        written = self._write_back(c.key, document, version, claim, fields, report)
        deleted = False
        if (
            written is not None
            and not written[1]
            and c.job.max_number_executions > 0
            and execution >= c.job.max_number_executions
        ):
            try:
                self.store.delete(c.key, written[0])
                deleted = True
            except (ConflictError, JobNotFoundError):
                pass  # edited or removed meanwhile: the user's version stands
            except StoreError as exc:
                self._emit(report, JobEvent(c.key, Outcome.STORE_ERROR, str(exc), c.scheduled))
        if deleted:
            self._load_index().drop(c.key)
        elif written is not None:
            # Remember the new state, so the next tick need not read the job back.
            written_job, _, _ = load(c.key, written[2])
            if written_job is not None:
                self._load_index().put(
                    c.key, IndexEntry(written[0].token, next_due(written_job, written[0].modified))
                )
        message: str = result.error or ""
        if written is None:
            message = (
                message + "; " if message else ""
            ) + "job changed meanwhile; result not written"
        self._emit(
            report,
            JobEvent(
                c.key,
                Outcome.RAN,
                message,
                c.scheduled,
                result.status,
                deleted=deleted,
                output=result.output,
            ),
        )

    def _write_back(
        self,
        key: str,
        document: dict[str, Any],
        version: Version,
        claim: Claim,
        fields: dict[str, Any],
        report: TickReport,
    ) -> tuple[Version, bool, bytes] | None:
        """Write the result: (new version, merged into a user's edit, the body written),
        or None when it was not written."""
        current, merged, failures = document, False, 0
        for _ in range(_WRITE_ATTEMPTS + _STORE_RETRIES):
            intended = with_runner_fields(current, fields)
            try:
                body = encode(intended)
                new_version = self.store.write(key, body, version)
                self._remember(key, body, new_version)
                return new_version, merged, body
            except (ConflictError, JobNotFoundError):
                pass
            except StoreError as exc:
                # The run has happened; its result is worth a few more tries.
                failures += 1
                if failures > _STORE_RETRIES:
                    self._emit(report, JobEvent(key, Outcome.STORE_ERROR, str(exc)))
                    return None
                time.sleep(0.5 * 2 ** (failures - 1))
            try:
                fresh = self.store.read(key)
            except JobNotFoundError:
                return None  # deleted by the user during the run: not resurrected
            except StoreError:
                continue
            _, _, fresh_document = load(key, fresh.body)
            if fresh_document == intended:
                return fresh.version, merged, fresh.body  # it landed; only its answer was lost
            if fresh.version.token == version.token:
                continue  # unchanged: the failure was the store's, try again
            # The user edited the file during the run: keep their version and merge in only
            # the runner's fields.
            if not isinstance(fresh_document, dict):
                return None  # their edit is not even a JSON object; leave it be
            other = fresh_document.get("claim")
            if isinstance(other, dict) and other.get("id") != claim.id:
                return None  # another runner has taken the job over since
            if _ran_later(fresh_document, claim.scheduled):
                return None  # a later occurrence has run meanwhile; its state is newer
            if fingerprint_of(fresh_document) != fingerprint_of(document):
                # The schedule was edited during the run: its window starts at the edit,
                # not at this write-back, or an occurrence between the two would be lost.
                since = {
                    "fingerprint": fingerprint_of(fresh_document),
                    "since": iso(fresh.version.modified),
                }
                fields = {**fields, "scheduled_from": since}
            current, version, merged = fresh_document, fresh.version, True
        return None
