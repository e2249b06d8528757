"""The embedded default store: a directory of JSON files.

Writes are atomic (a temporary file, fsync, rename), so a reader sees the old file or the
new one, never a torn one. Conditional writes hold an exclusive ``flock`` on
``.lambdacron/lock`` while they compare the version and rename, so two runners on one
machine cannot both win a claim. The version token is inode, mtime and size: a rename
always makes a new inode, and a user's in-place edit changes mtime.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import secrets
import stat
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from ..errors import (
    ConflictError,
    InvalidKeyError,
    JobNotFoundError,
    JobTooLargeError,
    StoreError,
)
from .base import DEFAULT_MAX_JOB_BYTES, Document, Entry, Store, Version
from .keys import check_relative_key, shard_of

INTERNAL_DIR = ".lambdacron"
STALE_TEMP_SECONDS = 3600


def _version(st: os.stat_result) -> Version:
    return Version(f"{st.st_ino}:{st.st_mtime_ns}:{st.st_size}", st.st_mtime_ns / 1e9)


def _unlink_if_there(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


class LocalStore(Store):
    #: Reads are page-cache hits and CPU-bound: parallel threads would only fight the GIL.
    read_concurrency = 1

    def __init__(
        self, root: Path, *, create: bool = False, max_job_bytes: int = DEFAULT_MAX_JOB_BYTES
    ) -> None:
        self.max_job_bytes = max_job_bytes
        if create:
            try:
                root.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreError(f"store {str(root)!r}: cannot create it: {exc.strerror}") from exc
        if not root.is_dir():
            what = "is not a directory" if root.exists() else "does not exist"
            raise StoreError(f"store {str(root)!r} {what} (create it, or run 'lambdacron init')")
        self.root = root.resolve()
        # What every real path inside the store starts with. Compared as strings: pathlib's
        # ``parents`` cost more than the system calls of a read.
        self._inside = os.path.join(str(self.root), "")

    @property
    def url(self) -> str:
        return str(self.root)

    # -- keys

    def check_key(self, key: str) -> str:
        return check_relative_key(key)

    def _path(self, key: str) -> str:
        # Strings, not Path objects, on the way of every read and write: pathlib's joins and
        # conversions cost more than the system calls they lead to.
        path = self._inside + self.check_key(key)
        # A symlink (of the file or of a folder on the way) must not lead out of the store.
        real = os.path.realpath(path)
        if real != str(self.root) and not real.startswith(self._inside):
            raise InvalidKeyError(f"key {key!r}: leads outside the store through a symlink")
        return path

    # -- locking

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        internal = self.root / INTERNAL_DIR
        try:
            try:
                fd = os.open(internal / "lock", os.O_RDWR | os.O_CREAT, 0o600)
            except FileNotFoundError:  # the first lock of a new store
                internal.mkdir(exist_ok=True)
                fd = os.open(internal / "lock", os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise StoreError(f"store {self.url!r}: cannot lock: {exc.strerror}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing releases the flock

    # -- reading

    def list(
        self, shard: tuple[int, int] | None = None, *, splits: Sequence[str] = ()
    ) -> Iterator[Entry]:
        yield from self._walk(self.root, "", shard)

    def _walk(self, folder: Path, prefix: str, shard: tuple[int, int] | None) -> Iterator[Entry]:
        # scandir, not os.walk: its entries carry the stat of each file for free, and a
        # steady tick is little more than this listing.
        try:
            with os.scandir(folder) as scan:
                entries = sorted(scan, key=lambda e: e.name)
        except FileNotFoundError:
            if not prefix:  # the store itself is gone: that is no empty store
                raise StoreError(f"store {self.url!r} does not exist any more") from None
            return  # a folder removed while we walked
        except OSError as exc:
            raise StoreError(f"cannot list {str(folder)!r}: {exc.strerror}") from exc
        for entry in entries:
            name = entry.name
            if name.startswith("."):
                if name.endswith(".tmp"):
                    self._remove_stale_temp(Path(entry.path))
                continue  # the runner's own files, and names no job key can have
            if shard is not None and shard_of(name, shard[1]) != shard[0]:
                continue
            if entry.is_dir(follow_symlinks=False):
                yield from self._walk(Path(entry.path), f"{prefix}{name}/", None)
                continue
            if not name.endswith(".json") or not name.isprintable():
                continue
            key = prefix + name
            try:
                if entry.is_symlink():
                    st = os.stat(self._path(key))  # a link must resolve inside the store
                else:
                    st = entry.stat(follow_symlinks=False)
            except (InvalidKeyError, FileNotFoundError):
                continue  # a link out of the store, or deleted while we walked
            except OSError as exc:
                raise StoreError(f"{key}: cannot stat: {exc.strerror}") from exc
            if stat.S_ISREG(st.st_mode):
                yield Entry(key, _version(st), st.st_size)

    @staticmethod
    def _remove_stale_temp(path: Path) -> None:
        # A writer killed between writing its temporary file and the rename leaves it
        # behind. It is never a job (its name starts with '.'); after a while it is litter.
        try:
            if time.time() - path.stat().st_mtime > STALE_TEMP_SECONDS:
                path.unlink()
        except OSError:
            pass

    def _open_inside(self, key: str) -> int:
        """Open a job file for reading, refusing anything that resolves outside the store.

        The check is made on what was actually opened (the kernel's name for the open file),
        so it costs one readlink instead of a realpath of every path component, and no
        symlink swapped in between a check and the open can slip through.
        """
        path = self._inside + self.check_key(key)
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        try:
            try:
                real = os.readlink(f"/proc/self/fd/{fd}")
            except OSError:  # no /proc: resolve the name instead
                real = os.path.realpath(path)
            if not real.startswith(self._inside):
                raise InvalidKeyError(f"key {key!r}: leads outside the store through a symlink")
        except BaseException:
            os.close(fd)
            raise
        return fd

    def read(self, key: str) -> Document:
        try:
            fd = self._open_inside(key)
            try:
                st = os.fstat(fd)
                if stat.S_ISDIR(st.st_mode):
                    raise InvalidKeyError(f"{key}: is a directory")
                if not stat.S_ISREG(st.st_mode):
                    raise InvalidKeyError(f"{key}: not a regular file")
                if st.st_size > self.max_job_bytes:
                    raise JobTooLargeError(
                        f"{key}: {st.st_size} bytes is over the {self.max_job_bytes}-byte limit"
                    )
                body = self._read_to_end(fd, st.st_size)
            finally:
                os.close(fd)
        except StoreError:
            raise
        except FileNotFoundError:
            raise JobNotFoundError(f"{key}: no such job") from None
        except OSError as exc:
            raise StoreError(f"{key}: cannot read: {exc.strerror}") from exc
        if len(body) > self.max_job_bytes:  # grew while we read it
            raise JobTooLargeError(f"{key}: over the {self.max_job_bytes}-byte limit")
        return Document(key, body, _version(st))

    def _read_to_end(self, fd: int, size: int) -> bytes:
        """Up to one byte over the limit, sized by the file: reading into a buffer of the
        limit itself (8 MiB) would cost more than the rest of a read."""
        parts: list[bytes] = []
        total, want = 0, size + 1
        while total <= self.max_job_bytes and (part := os.read(fd, want)):
            parts.append(part)
            total += len(part)
            # Then small reads to the end (os.read allocates what it is asked for): the file
            # may have grown since fstat, and must still not be read past the limit.
            want = min(self.max_job_bytes + 1 - total, 65536)
        return b"".join(parts)

    # -- writing

    @staticmethod
    def _write_temp(path: str, body: bytes) -> str:
        folder, name = os.path.split(path)
        temp = os.path.join(folder, f".{name}.{secrets.token_hex(6)}.tmp")
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
        try:
            try:
                view = memoryview(body)
                while view:
                    view = view[os.write(fd, view) :]
                os.fsync(fd)
            finally:
                os.close(fd)
        except BaseException:
            _unlink_if_there(temp)
            raise
        return temp

    @staticmethod
    def _sync_dir(folder: str) -> None:
        fd = os.open(folder, os.O_RDONLY | os.O_CLOEXEC)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    @staticmethod
    def _current(key: str, path: str) -> os.stat_result:
        try:
            return os.stat(path)
        except FileNotFoundError:
            raise JobNotFoundError(f"{key}: no such job") from None

    def create(self, key: str, body: bytes) -> Version:
        path = self._path(key)
        try:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            temp = self._write_temp(path, body)
            try:
                # link() fails if the name exists, even for writers that take no lock.
                os.link(temp, path)
            except FileExistsError:
                raise ConflictError(f"{key}: a job with this key already exists") from None
            finally:
                _unlink_if_there(temp)
            self._sync_dir(os.path.dirname(path))
            return _version(os.stat(path))
        except OSError as exc:
            if isinstance(exc, StoreError):
                raise
            raise StoreError(f"{key}: cannot create: {exc.strerror}") from exc

    def write(self, key: str, body: bytes, expected: Version) -> Version:
        path = self._path(key)
        try:
            # The slow part (writing and syncing the new file) happens before the lock; the
            # lock covers only compare-and-rename, so concurrent writers barely wait.
            temp = self._write_temp(path, body)
        except OSError as exc:
            raise StoreError(f"{key}: cannot write: {exc.strerror}") from exc
        try:
            with self._locked():
                if _version(self._current(key, path)).token != expected.token:
                    raise ConflictError(f"{key}: changed since it was read")
                os.replace(temp, path)
                version = _version(os.stat(path))
        except OSError as exc:
            _unlink_if_there(temp)
            if isinstance(exc, StoreError):
                raise
            raise StoreError(f"{key}: cannot write: {exc.strerror}") from exc
        try:
            self._sync_dir(os.path.dirname(path))  # make the rename itself durable
        except OSError as exc:
            raise StoreError(f"{key}: cannot sync: {exc.strerror}") from exc
        return version

    def read_internal(self, name: str) -> bytes | None:
        try:
            return (self.root / INTERNAL_DIR / name).read_bytes()
        except OSError:
            return None

    def write_internal(self, name: str, body: bytes) -> None:
        internal = self.root / INTERNAL_DIR
        try:
            internal.mkdir(exist_ok=True)
            temp = self._write_temp(str(internal / name), body)
            os.replace(temp, internal / name)
        except OSError as exc:
            raise StoreError(f"{INTERNAL_DIR}/{name}: cannot write: {exc.strerror}") from exc

    def delete(self, key: str, expected: Version | None = None) -> None:
        path = self._path(key)
        with self._locked():
            current = _version(self._current(key, path))
            if expected is not None and current.token != expected.token:
                raise ConflictError(f"{key}: changed since it was read; not deleted")
            try:
                os.unlink(path)
            except FileNotFoundError:
                raise JobNotFoundError(f"{key}: no such job") from None
            except OSError as exc:
                raise StoreError(f"{key}: cannot delete: {exc.strerror}") from exc
