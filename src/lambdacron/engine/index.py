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
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

FORMAT = 2
#: "Look at this job at every tick": a claim in flight, whose end the listing shows, but
#: whose death only a fresh read can tell.
ALWAYS = datetime.min.replace(tzinfo=UTC)


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
