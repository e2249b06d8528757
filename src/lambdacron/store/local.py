"""The embedded default store: a directory of JSON files.

Writes are atomic (a temporary file, fsync, rename), so a reader sees the old file or the
new one, never a torn one. Conditional writes hold an exclusive ``flock`` on
``.lambdacron/lock`` while they compare the version and rename, so two runners on one
machine cannot both win a claim. The version token is inode, mtime and size: a rename
always makes a new inode, and a user's in-place edit changes mtime.
"""

from __future__ import annotations

import contextlib
import errno
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
from .keys import listed_key, printable_key, shard_of

INTERNAL_DIR = ".lambdacron"
STALE_TEMP_SECONDS = 3600


def _version(st: os.stat_result) -> Version:
    return Version(f"{st.st_ino}:{st.st_mtime_ns}:{st.st_size}", st.st_mtime_ns / 1e9)


#: What a name in a listing is, when it is not a regular file.
_KINDS = {
    stat.S_IFDIR: "a directory",
    stat.S_IFIFO: "a FIFO",
    stat.S_IFSOCK: "a socket",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
}
DIRECTORY = "a directory, not a regular file"
_OPEN_READ = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
_EFFECTIVE_IDS = os.access in os.supports_effective_ids


def _not_regular(mode: int, through_link: bool = False) -> str:
    kind = _KINDS.get(stat.S_IFMT(mode), "a special file")
    return (
        f"a symbolic link to {kind}, not a regular file"
        if through_link
        else f"{kind}, not a regular file"
    )


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
        self._euid = os.geteuid()

    @property
    def url(self) -> str:
        return str(self.root)

    # -- keys

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
        yield from self._walk(str(self.root), "", shard)

    def _walk(self, folder: str, prefix: str, shard: tuple[int, int] | None) -> Iterator[Entry]:
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
            if not prefix:
                raise StoreError(f"cannot list {folder!r}: {exc.strerror}") from exc
            # One folder the runner may not enter must not hide the rest of the store.
            why = (
                "a folder the runner may not list (permission denied)"
                if isinstance(exc, PermissionError)
                else f"a folder that cannot be listed ({exc.strerror})"
            )
            yield self._problem(folder, printable_key(prefix), why)
            return
        for entry in entries:
            name = entry.name
            if name.startswith("."):
                if name.endswith(".tmp"):
                    self._remove_stale_temp(Path(entry.path))
                continue  # the runner's own files, and names no job key can have
            if shard is not None and shard_of(name, shard[1]) != shard[0]:
                continue
            if entry.is_dir(follow_symlinks=False):
                if name.endswith(".json"):
                    yield self._problem(entry.path, *self._named(prefix + name, DIRECTORY))
                yield from self._walk(entry.path, f"{prefix}{name}/", None)
                continue
            listed = listed_key(prefix + name)
            if listed is None:
                continue
            key, problem = listed
            if problem is not None:
                yield self._problem(entry.path, key, problem)
                continue
            try:
                if entry.is_symlink():
                    st, problem = self._follow(entry.path)
                else:
                    st = entry.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue  # deleted while we walked
            except OSError as exc:
                yield self._problem(entry.path, key, f"cannot be examined ({exc.strerror})")
                continue
            if problem is None and st is not None:
                if not stat.S_ISREG(st.st_mode):
                    problem = _not_regular(st.st_mode, entry.is_symlink())
                elif not self._may_read(entry.path, st):
                    problem = "the runner may not read it (permission denied)"
                else:
                    yield Entry(key, _version(st), st.st_size)
                    continue
            yield self._problem(entry.path, key, problem or "cannot be examined")

    def _named(self, name: str, problem: str) -> tuple[str, str]:
        """The key to report ``name`` by, and its problem: the name's own, if it has one."""
        listed = listed_key(name)
        if listed is None or listed[1] is None:
            return printable_key(name), problem
        return listed[0], listed[1]

    @staticmethod
    def _problem(path: str, key: str, problem: str) -> Entry:
        try:
            st = os.lstat(path)
        except OSError:
            return Entry(key, Version("", 0.0), 0, problem)
        return Entry(key, _version(st), st.st_size, problem)

    def _follow(self, path: str) -> tuple[os.stat_result | None, str | None]:
        """The stat of what a symbolic link leads to, or why it leads to no job.
        FileNotFoundError if the link itself is gone."""
        real = os.path.realpath(path)
        if real != str(self.root) and not real.startswith(self._inside):
            return None, "a symbolic link that leads out of the store"
        try:
            return os.stat(path), None
        except FileNotFoundError:
            os.lstat(path)  # the link is still there: what it names is not
            return None, "a dangling symbolic link"
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                return None, "a symbolic link loop"
            return None, f"a symbolic link that cannot be followed ({exc.strerror})"

    def _may_read(self, path: str, st: os.stat_result) -> bool:
        # The mode bits answer for almost every file; the kernel is asked (one system call)
        # only about files neither readable by all nor ours, where groups and ACLs decide.
        mode = st.st_mode
        if (
            self._euid == 0
            or mode & stat.S_IROTH
            or (st.st_uid == self._euid and mode & stat.S_IRUSR)
        ):
            return True
        return os.access(path, os.R_OK, effective_ids=_EFFECTIVE_IDS)

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
        # O_NONBLOCK: opening a FIFO must not wait for a writer (regular files ignore it).
        fd = os.open(path, _OPEN_READ)
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
                if not stat.S_ISREG(st.st_mode):
                    raise InvalidKeyError(f"{key}: {_not_regular(st.st_mode)}")
                if st.st_size > self.max_job_bytes:
                    raise JobTooLargeError(
                        f"{key}: {st.st_size} bytes is over the {self.max_job_bytes}-byte limit"
                    )
                body = self._read_to_end(fd, st.st_size)
            finally:
                os.close(fd)
        except StoreError:
            raise
        except (FileNotFoundError, NotADirectoryError):  # a dangling link, a file as a folder
            raise JobNotFoundError(f"{key}: no such job") from None
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise InvalidKeyError(f"{key}: a symbolic link loop") from None
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
        except (FileNotFoundError, NotADirectoryError):
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
        except (FileNotFoundError, NotADirectoryError):
            # No folder to write the file into: the job (and its folder) is gone.
            raise JobNotFoundError(f"{key}: no such job") from None
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
            fd = os.open(os.path.join(self._inside + INTERNAL_DIR, name), _OPEN_READ)
        except OSError:
            return None
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                return None
            parts = []
            while part := os.read(fd, max(st.st_size + 1, 65536)):
                parts.append(part)
            return b"".join(parts)
        except OSError:
            return None
        finally:
            os.close(fd)

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
