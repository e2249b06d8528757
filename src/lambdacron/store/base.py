"""The job store interface. The engine touches jobs only through it.

A store maps keys (``orders/2026/abc.json``) to JSON documents. Every read returns a
version token; writes and deletes are conditional on it, which is how overlapping runners
agree on who claimed an occurrence: the second writer gets ConflictError, never a
silent overwrite.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import NamedTuple

from .keys import check_relative_key

#: Default cap on a job file's size; larger files are refused before they are read whole.
DEFAULT_MAX_JOB_BYTES = 8 * 1024 * 1024


class Version(NamedTuple):
    """An opaque token that changes whenever the document changes, and when it changed
    (``stamp``, seconds since the epoch: a listing of 100,000 files builds no datetimes).

    Named tuples, not frozen dataclasses: a listing makes two of these per job, and a
    tuple is cheaper to build (measured in docs/scaling.md)."""

    token: str
    stamp: float

    @property
    def modified(self) -> datetime:
        return datetime.fromtimestamp(self.stamp, UTC)


class Entry(NamedTuple):
    """One job as a listing sees it, without its body.

    ``problem`` is None for a job. Otherwise the listing met something meant as a job (a
    name ending in ``.json``) that cannot be read as one, and says why in a few words (``a
    symbolic link loop``, ``the key has an empty path segment; lambdacron cannot address
    it``); ``key`` then names it as one printable line (see ``keys.printable_key``), and may
    be no valid key at all: it is for reporting, never for ``read`` or ``write``."""

    key: str
    version: Version
    size: int
    problem: str | None = None


@dataclass(frozen=True)
class Document:
    key: str
    body: bytes
    version: Version


class Store(ABC):
    """Where job files live. Implementations: LocalStore (a directory), S3Store."""

    max_job_bytes: int = DEFAULT_MAX_JOB_BYTES
    #: How many reads a tick should have in flight at once: high where each waits on the
    #: network, 1 where reads are CPU-bound.
    read_concurrency: int = 16
    #: Keys per listing request where a listing comes in pages (S3: 1,000); 0 where it
    #: does not. The engine then passes split points, so that ranges can list in parallel.
    list_page_size: int = 0

    @property
    @abstractmethod
    def url(self) -> str:
        """How a person names this store (a path, ``s3://bucket/prefix/``)."""

    def check_key(self, key: str) -> str:
        """Return the key in normal form, or raise InvalidKeyError saying what is wrong.

        The rules are the same in every store (``keys.check_relative_key``): a key read from
        one store can be written to another."""
        return check_relative_key(key)

    @abstractmethod
    def list(
        self, shard: tuple[int, int] | None = None, *, splits: Sequence[str] = ()
    ) -> Iterator[Entry]:
        """Every job key with its version, in no particular order; with ``shard=(i, n)``
        only the keys of shard i of n (see ``keys.shard_of``), listing only their folders.

        ``splits``, sorted keys, is a hint: they cut the key space into ranges of about
        ``list_page_size`` keys each (the engine takes them from its last listing), which a
        store may list in parallel. Any split points give the same entries, in the same order.

        What is meant as a job but cannot be one is listed too, with ``Entry.problem`` set,
        never dropped in silence nor allowed to end the listing: a name ending in ``.json``
        that no key can address (``keys.listed_key``: an empty, '.' or '..' path segment, a
        character that is not printable, a name that is not UTF-8, a backslash); and in a
        directory, a symbolic link that loops, dangles or leads out of the store, a FIFO, a
        socket, a device or a directory so named, a file the runner may not read, and a
        folder it may not list (its key ends in '/'). Names starting with '.' are reserved
        and never listed. Raises StoreError only if the store itself cannot be listed."""

    @abstractmethod
    def read(self, key: str) -> Document:
        """The document, read without ever blocking (a FIFO is refused, not opened to wait).

        Raises InvalidKeyError if ``key`` is not a job key, or leads to something that is not
        a regular file inside the store (a symbolic link out of it, a directory, a FIFO);
        JobNotFoundError if there is no such job; JobTooLargeError if it is larger than
        ``max_job_bytes`` (it is then not read), UnreadableJobError if it cannot be a job as
        stored otherwise (an S3 object stored compressed); StoreError if the store fails
        otherwise."""

    @abstractmethod
    def create(self, key: str, body: bytes) -> Version:
        """Create a new job and return its version.

        Raises InvalidKeyError if ``key`` is not a job key (or leads out of the store);
        ConflictError if the key exists; StoreError if the store fails otherwise."""

    @abstractmethod
    def write(self, key: str, body: bytes, expected: Version) -> Version:
        """Replace the job if it is still at ``expected``, and return its new version.

        Raises InvalidKeyError if ``key`` is not a job key (or leads out of the store);
        ConflictError if the job changed since ``expected``; JobNotFoundError if it was
        deleted (it is not created again); StoreError if the store fails otherwise."""

    @abstractmethod
    def delete(self, key: str, expected: Version | None = None) -> None:
        """Delete the job; when ``expected`` is given, only if it is still at that version.

        Raises InvalidKeyError if ``key`` is not a job key (or leads out of the store);
        JobNotFoundError if there is no such job; ConflictError if it changed since
        ``expected`` (it is kept); StoreError if the store fails otherwise."""

    # The runner's own files (the index), kept where no job key can be: under ".lambdacron/".

    @abstractmethod
    def read_internal(self, name: str) -> bytes | None:
        """The runner's file ``name``, or None if there is none or it cannot be read: they
        are caches, rebuilt when missing. Never blocks, never raises."""

    @abstractmethod
    def write_internal(self, name: str, body: bytes) -> None:
        """Replace the runner's file ``name``; StoreError if that fails."""
