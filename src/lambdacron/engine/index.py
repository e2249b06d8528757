"""The tick's index: what it needs to know about each job, kept between ticks.

For every key: the version token it was computed from, and the earliest tick time at
which the job can be due (or None: never, until the file changes), or the problem that
makes it invalid. A tick lists the store, and reads a job only when its token changed or
its time has come; an unchanged, not-yet-due job costs nothing but its line in the
listing. The index lives in memory while the process lives (a warm Lambda container, a
``serve``), and is persisted in the store (under ``.lambdacron/``, never a job key) so a
cold start does not re-read everything.

It is a cache. Every decision to run is taken on the job as freshly read, and an entry is
trusted only while its token matches the listing, so a lost, stale or corrupt index costs
reads, never correctness.
"""

from __future__ import annotations

import json
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from .._version import __version__
from ..errors import StoreError
from ..jobfile import JobFile
from ..store.base import Store, Version
from .due import ALWAYS

FORMAT = 2
#: The index is saved when a twentieth of its entries changed, or when the saved copy is
#: this old.
_SAVE_MAX_AGE_S = 600.0
#: The decoded jobs this engine read or wrote last, kept so that an unchanged job is neither
#: read nor validated again: at most this many, holding at most this many bytes of bodies.
#: A decoded job takes five to seven times its body in memory, so this stays within a few
#: tens of megabytes, well inside a 128 MB function.
_FILE_CACHE_FILES = 4_000
_FILE_CACHE_BYTES = 4 * 1024 * 1024
#: How much later than a kept version the listing may time the same write: S3 times an
#: object to the second, and a write's answer carries no time finer than that either.
_SAME_WRITE_S = 1.0


@dataclass(frozen=True)
class IndexEntry:
    token: str
    due_at: datetime | None
    problem: str | None = None


class Index:
    """``context`` names what else the entries depend on (the run types this runner
    allows): an index saved under another context is not used."""

    def __init__(self, entries: dict[str, IndexEntry] | None = None, context: str = "") -> None:
        self._entries = entries or {}
        self.context = context
        self._lock = threading.Lock()
        self.dirty = False
        #: Keys whose entries changed since the index was last saved.
        self.changed: set[str] = set()

    def __len__(self) -> int:
        return len(self._entries)

    def keys(self) -> list[str]:
        with self._lock:
            return list(self._entries)

    def get(self, key: str) -> IndexEntry | None:
        return self._entries.get(key)

    def put(self, key: str, entry: IndexEntry) -> None:
        with self._lock:
            if self._entries.get(key) != entry:
                self._entries[key] = entry
                self.dirty = True
                self.changed.add(key)

    def drop(self, key: str) -> None:
        with self._lock:
            if self._entries.pop(key, None) is not None:
                self.dirty = True
                self.changed.add(key)

    def keep_only(self, keys: set[str]) -> None:
        with self._lock:
            gone = [k for k in self._entries if k not in keys]
            for key in gone:
                del self._entries[key]
            self.dirty = self.dirty or bool(gone)
            self.changed.update(gone)

    # -- persistence: compact JSON, one row per job

    def to_bytes(self) -> bytes:
        # Times as epoch seconds: formatting an ISO time per job would cost more than the JSON.
        with self._lock:
            rows = {
                key: [e.token, e.due_at.timestamp() if e.due_at else None, e.problem]
                for key, e in self._entries.items()
            }
        document = {"format": FORMAT, "context": self.context, "entries": rows}
        return json.dumps(document, separators=(",", ":")).encode()

    @classmethod
    def from_bytes(cls, body: bytes | None, context: str = "") -> Index:
        """An index from its persisted form; anything unreadable, or saved under another
        context, gives an empty index."""
        if not body:
            return cls(context=context)
        try:
            data: Any = json.loads(body)
            if data.get("format") != FORMAT or data.get("context") != context:
                return cls(context=context)
            entries = {
                str(key): IndexEntry(
                    str(token),
                    None if due is None else _from_stamp(float(due)),
                    str(problem) if problem is not None else None,
                )
                for key, (token, due, problem) in data["entries"].items()
            }
        except (ValueError, TypeError, KeyError, AttributeError):
            return cls(context=context)  # a cache: a damaged one is simply rebuilt
        return cls(entries, context)


def _from_stamp(stamp: float) -> datetime:
    return ALWAYS if stamp <= _ALWAYS_STAMP else datetime.fromtimestamp(stamp, UTC)


_ALWAYS_STAMP = ALWAYS.timestamp()


class IndexKeeper:
    """The index of one engine: where it is saved, when, and what it depends on.

    Saving costs a write of the whole index; a stale saved index costs only the reads of
    what changed since. So it is saved after real change, or now and then, not every tick.
    """

    def __init__(self, store: Store, name: str, run_types: list[str]) -> None:
        self.store = store
        self.name = name
        # Every input of a cached verdict: a different size limit, set of run types or
        # version of the rules must not inherit the old verdicts.
        types = ",".join(sorted(run_types))
        self.context = f"{types};max={store.max_job_bytes};rules={__version__}"
        self._index: Index | None = None
        self._lock = threading.Lock()
        self._saved_at = float("-inf")

    @property
    def index(self) -> Index:
        """The index (loaded from the store on first use)."""
        with self._lock:
            if self._index is None:
                self._index = Index.from_bytes(self.store.read_internal(self.name), self.context)
            return self._index

    def splits(self, sharded: bool) -> list[str]:
        """Keys from the last listing, about a page apart, for a paged store to list the
        ranges between them in parallel. Each range is cut a little short of a page, so
        that a few new jobs (and the runner's own objects) still fit in one request."""
        page = self.store.list_page_size
        index = self.index
        if page <= 0 or sharded or len(index) < 2 * page:
            return []
        step = page - page // 50
        return sorted(index.keys())[step - 1 :: step]

    def save(self, on_error: Callable[[str], None]) -> None:
        index = self.index
        with self._lock:
            age = time.monotonic() - self._saved_at
            enough = len(index.changed) >= max(2, len(index) // 20)
            if not index.dirty or not (enough or age >= _SAVE_MAX_AGE_S):
                return
            body = index.to_bytes()
            index.dirty = False
            index.changed.clear()
            self._saved_at = time.monotonic()
        try:
            self.store.write_internal(self.name, body)
        except StoreError as exc:
            index.dirty = True  # a cache: try again at the next tick
            self._saved_at = float("-inf")
            on_error(f"index not saved: {exc}")


class _Segment:
    """Least recently used ``JobFile``s, bounded by count and by bytes of bodies."""

    def __init__(self, files: int, size_bytes: int) -> None:
        self.files = files
        self.size_bytes = size_bytes
        self.kept: OrderedDict[str, tuple[JobFile, int]] = OrderedDict()
        self.bytes = 0

    def put(self, file: JobFile, size: int) -> None:
        self.pop(file.key)
        if size > self.size_bytes:
            return
        self.kept[file.key] = (file, size)
        self.bytes += size
        while len(self.kept) > self.files or self.bytes > self.size_bytes:
            _, (_, dropped) = self.kept.popitem(last=False)
            self.bytes -= dropped

    def get(self, key: str, version: Version) -> JobFile | None:
        kept = self.kept.get(key)
        if kept is None or kept[0].version.token != version.token:
            return None
        # An S3 ETag names the body only: a copy of the object onto itself (how the console
        # edits its metadata) keeps it. Such a copy is later than the kept version, by more
        # than the second both times are rounded to; read it, so that a write carries what
        # the copy set.
        if version.stamp > kept[0].version.stamp + _SAME_WRITE_S:
            return None
        self.kept.move_to_end(key)
        return kept[0]

    def pop(self, key: str) -> None:
        old = self.kept.pop(key, None)
        if old is not None:
            self.bytes -= old[1]


class FileCache:
    """The jobs this engine read or wrote last, decoded, by key and version.

    A job whose listed version is the one kept here is taken from here: no read, no
    validation. Safe for the same reason the index is: the version identifies the bytes (an
    ETag, or the inode, modification time and size of a file), and every claim is
    conditional on it, so if anyone changed the file the claim fails and the job is read
    afresh. Kept ``JobFile``s are shared, so nothing may change their documents (every state
    change builds a new one).

    Two parts, so that one pass over many jobs read once (a cold tick, a store of new jobs)
    does not push out the jobs that run: the files a run wrote (its claim, its result) keep
    three quarters of the room; whatever else was read or written shares the rest.
    """

    def __init__(self, files: int = _FILE_CACHE_FILES, size_bytes: int = _FILE_CACHE_BYTES) -> None:
        self._ran = _Segment(files - files // 4, size_bytes - size_bytes // 4)
        self._seen = _Segment(files // 4, size_bytes // 4)
        self._lock = threading.Lock()

    def remember(self, file: JobFile, size: int, *, ran: bool = False) -> None:
        """Keep ``file``, whose body is ``size`` bytes long; ``ran``: a run wrote it."""
        with self._lock:
            if ran:
                self._seen.pop(file.key)
                self._ran.put(file, size)
            else:
                self._ran.pop(file.key)
                self._seen.put(file, size)

    def recall(self, key: str, version: Version) -> JobFile | None:
        """The job kept for ``key``, if it is the one at ``version``."""
        with self._lock:
            return self._ran.get(key, version) or self._seen.get(key, version)

    def forget(self, key: str) -> None:
        with self._lock:
            self._ran.pop(key)
            self._seen.pop(key)

    def keep_only(self, keys: set[str]) -> None:
        """Forget every job not in ``keys`` (a whole listing). A job removed or renamed by
        someone else is never read or written here again, so least-recently-used order
        alone would keep it until the cache is full: in a long ``serve`` where jobs come and
        go, the cache grew with every key ever run, up to its bound, and so did memory."""
        with self._lock:
            for segment in (self._ran, self._seen):
                for key in [k for k in segment.kept if k not in keys]:
                    segment.pop(key)

    def __len__(self) -> int:
        return len(self._ran.kept) + len(self._seen.kept)
