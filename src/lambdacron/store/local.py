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
import shlex
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
from .keys import listed_key, printable_key, shard_of, shortened

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
_OPEN_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
_OPEN_LOCK = os.O_RDWR | os.O_CREAT | os.O_CLOEXEC
_CREATE_TEMP = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
#: Enough for a new file: its size and blocks are synced, its times need not be.
_sync_data = getattr(os, "fdatasync", os.fsync)


def _not_regular(mode: int, through_link: bool = False) -> str:
    kind = _KINDS.get(stat.S_IFMT(mode), "a special file")
    return (
        f"a symbolic link to {kind}, not a regular file"
        if through_link
        else f"{kind}, not a regular file"
    )


#: What ``_write_temp``'s name adds to the job's: ``.NAME.HEX12.tmp``.
_TEMP_EXTRA = len("..") + 12 + len(".tmp")
#: The most of the job's name a temporary name keeps (to tell whose it was): a job file
#: whose name is near the file system's limit must still be written back.
_TEMP_STEM_BYTES = 200


def _pathconf(path: Path, name: str, default: int) -> int:
    try:
        value = os.pathconf(path, name)
    except (OSError, ValueError):  # not known for this file system, or on this platform
        return default
    return value if value > 0 else default  # -1: no limit known


def _unlink_if_there(path: str, folder: int | None = None) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path, dir_fd=folder)


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
        try:
            exists = root.exists()  # False for a missing one; a name too long, or a loop, raise
        except OSError as exc:
            raise StoreError(f"store {str(root)!r}: cannot open it: {exc.strerror}") from exc
        if exists and not root.is_dir():
            raise StoreError(f"store {str(root)!r} is not a directory")
        if not root.is_dir():
            # The store asked for, by name: a bare `init` would make the default one.
            init = shlex.join(["lambdacron", "init", "--store", str(root)])
            raise StoreError(f"store {str(root)!r} does not exist (create it, or run '{init}')")
        self.root = root.resolve()
        if self.root == Path(self.root.anchor):
            # A typo for ./ or a folder in it: the walk would read the whole machine, and the
            # runner would write its own folder there.
            raise StoreError(
                f"store {str(root)!r} is the file system's root; give the folder that holds "
                "the jobs"
            )
        # What every real path inside the store starts with. Compared as strings: pathlib's
        # ``parents`` cost more than the system calls of a read.
        self._inside = os.path.join(str(self.root), "")
        self._euid = os.geteuid()
        self._lock_path = self._inside + INTERNAL_DIR + "/lock"
        self._name_max = _pathconf(self.root, "PC_NAME_MAX", 255)
        self._path_max = _pathconf(self.root, "PC_PATH_MAX", 4096)

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
        try:
            try:
                fd = os.open(self._lock_path, _OPEN_LOCK, 0o600)
            except FileNotFoundError:  # the first lock of a new store
                os.makedirs(self._inside + INTERNAL_DIR, exist_ok=True)
                fd = os.open(self._lock_path, _OPEN_LOCK, 0o600)
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
    #
    # A write works in the key's folder through one descriptor, checked once to be inside
    # the store: every step after that (the temporary file, the comparison, the rename, the
    # folder's sync) names a file relative to it, with no path to resolve again, and the
    # rename lands in the very folder that was checked.

    def _open_folder(self, key: str) -> tuple[int, str, str]:
        """The key's folder, opened and checked to be inside the store (even if it is reached
        through a symbolic link); its real path; and the file's name in it."""
        folder, _, name = self.check_key(key).rpartition("/")
        fd, real = self._open_inside_folder(self._inside + folder, key)
        return fd, real, name

    def _open_inside_folder(self, path: str, key: str) -> tuple[int, str]:
        """The folder ``path``, opened, and its real path, checked (on the descriptor, so
        no rename can slip in between) to be inside the store."""
        fd = os.open(path, _OPEN_DIR)
        try:
            try:
                real = os.readlink(f"/proc/self/fd/{fd}")
            except OSError:  # no /proc: resolve the name instead
                real = os.path.realpath(path)
            if real != str(self.root) and not real.startswith(self._inside):
                raise InvalidKeyError(f"key {key!r}: leads outside the store through a symlink")
        except BaseException:
            os.close(fd)
            raise
        return fd, real

    @staticmethod
    def _write_temp(folder: int, name: str, body: bytes) -> tuple[str, os.stat_result]:
        """A synced temporary file beside ``name`` holding ``body``, and its stat: under its
        final name it has the same version (a rename or a link keeps inode, mtime and size)."""
        # In the file system's bytes: a name may hold undecodable bytes (surrogate escapes).
        stem = os.fsdecode(os.fsencode(name)[:_TEMP_STEM_BYTES])
        temp = f".{stem}.{secrets.token_hex(6)}.tmp"  # _TEMP_EXTRA
        fd = os.open(temp, _CREATE_TEMP, 0o644, dir_fd=folder)
        try:
            try:
                view = memoryview(body)
                while view:
                    view = view[os.write(fd, view) :]
                _sync_data(fd)
                st = os.fstat(fd)
            finally:
                os.close(fd)
        except BaseException:
            _unlink_if_there(temp, folder)
            raise
        return temp, st

    @staticmethod
    def _take_over(temp: str, folder: int, new: os.stat_result, old: os.stat_result) -> None:
        """Give ``temp`` the permissions and owner of the file it replaces: a job made
        private (its env may hold a credential) stays private after the runner's write.
        Neither changes the modification time, so the version stays the one computed."""
        if (new.st_uid, new.st_gid) != (old.st_uid, old.st_gid):
            try:
                os.chown(temp, old.st_uid, old.st_gid, dir_fd=folder)
            except PermissionError:  # not root: keep at least the group, if we are in it
                with contextlib.suppress(PermissionError):
                    os.chown(temp, -1, old.st_gid, dir_fd=folder)
        mode = stat.S_IMODE(old.st_mode)
        if mode != stat.S_IMODE(new.st_mode) or new.st_uid != old.st_uid:
            # chown clears set-id bits, so the mode is set after it.
            os.chmod(temp, mode, dir_fd=folder)

    def _target(self, key: str, action: str) -> tuple[int, str, str]:
        """The folder (opened and checked), real path and name of the file a write or delete
        of ``key`` acts on.

        A key that is a symbolic link to a job file inside the store acts on that file: a
        write replaces the file the link names, never the link, so the link stays a link and
        every name of the one file sees one state (one run per occurrence)."""
        folder, real, name = self._existing_folder(key, action)
        try:
            is_link = stat.S_ISLNK(os.stat(name, dir_fd=folder, follow_symlinks=False).st_mode)
        except OSError:
            return folder, real, name  # nothing there, or unreadable: the caller says which
        if not is_link:
            return folder, real, name
        os.close(folder)
        target = os.path.realpath(self._inside + self.check_key(key))
        if target == str(self.root) or not target.startswith(self._inside):
            raise InvalidKeyError(f"key {key!r}: leads outside the store through a symlink")
        where, _, final = target.rpartition("/")
        try:
            fd, opened = self._open_inside_folder(where, key)
        except (FileNotFoundError, NotADirectoryError):
            raise JobNotFoundError(f"{key}: no such job") from None
        except OSError as exc:
            if isinstance(exc, StoreError):
                raise
            raise StoreError(f"{key}: cannot {action}: {exc.strerror}") from exc
        return fd, opened, final

    def _current(self, key: str, folder: int, real: str, name: str) -> os.stat_result:
        """What the key names now, followed if it is a symbolic link that stays inside the
        store; InvalidKeyError if it leads out, JobNotFoundError if there is nothing."""
        try:
            st = os.stat(name, dir_fd=folder, follow_symlinks=False)
            if stat.S_ISLNK(st.st_mode):
                target = os.path.realpath(os.path.join(real, name))
                if target != str(self.root) and not target.startswith(self._inside):
                    raise InvalidKeyError(f"key {key!r}: leads outside the store through a symlink")
                st = os.stat(name, dir_fd=folder)
        except (FileNotFoundError, NotADirectoryError):
            raise JobNotFoundError(f"{key}: no such job") from None
        return st

    def create(self, key: str, body: bytes) -> Version:
        self._check_new_key(key)
        try:
            # The folders may not exist yet: resolve what does, so that none is made outside.
            path = self._path(key)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            folder, _, name = self._open_folder(key)
            try:
                temp, st = self._write_temp(folder, name, body)
                version = _version(st)
                try:
                    # link() fails if the name exists, even for writers that take no lock.
                    os.link(temp, name, src_dir_fd=folder, dst_dir_fd=folder)
                except FileExistsError:
                    raise ConflictError(f"{key}: a job with this key already exists") from None
                finally:
                    _unlink_if_there(temp, folder)
                os.fsync(folder)  # make the new name itself durable
            finally:
                os.close(folder)
            return version
        except OSError as exc:
            if isinstance(exc, StoreError):
                raise
            raise StoreError(f"{key}: cannot create: {exc.strerror}") from exc

    def _check_new_key(self, key: str) -> None:
        """Refuse, before any folder is made, a key this directory cannot hold as a job."""
        key = self.check_key(key)
        *folders, name = key.split("/")
        for folder in folders:
            if folder.endswith(".json"):
                # The folder would be listed as a job that is no file: invalid at every tick.
                raise InvalidKeyError(
                    f"key {shortened(key)!r}: the folder {shortened(folder)!r} ends in .json,"
                    " which the store would list as a job; name folders otherwise"
                )
            if len(os.fsencode(folder)) > self._name_max:
                raise InvalidKeyError(
                    f"key {shortened(key)!r}: a folder name of {len(os.fsencode(folder))} bytes;"
                    f" this file system takes at most {self._name_max}"
                )
        if len(os.fsencode(name)) > self._name_max:
            raise InvalidKeyError(
                f"key {shortened(key)!r}: a file name of {len(os.fsencode(name))} bytes;"
                f" this file system takes at most {self._name_max}"
            )
        size = len(os.fsencode(self._inside + key)) + _TEMP_EXTRA
        if size >= self._path_max:
            raise InvalidKeyError(
                f"key {shortened(key)!r}: a path of {size} bytes with the store's own;"
                f" this file system takes less than {self._path_max}"
            )

    def _existing_folder(self, key: str, action: str) -> tuple[int, str, str]:
        """``_open_folder`` for a job that must exist: no folder means no job."""
        try:
            return self._open_folder(key)
        except (FileNotFoundError, NotADirectoryError):
            # No folder to hold the file: the job (and its folder) is gone.
            raise JobNotFoundError(f"{key}: no such job") from None
        except OSError as exc:
            if isinstance(exc, StoreError):
                raise
            raise StoreError(f"{key}: cannot {action}: {exc.strerror}") from exc

    def write(self, key: str, body: bytes, expected: Version) -> Version:
        folder, real, name = self._target(key, "write")
        try:
            try:
                # The slow part (writing and syncing the new file) happens before the lock;
                # the lock covers only compare-and-rename, so concurrent writers barely wait.
                temp, new = self._write_temp(folder, name, body)
            except OSError as exc:
                raise StoreError(f"{key}: cannot write: {exc.strerror}") from exc
            version = _version(new)
            try:
                with self._locked():
                    current = self._current(key, folder, real, name)
                    if _version(current).token != expected.token:
                        raise ConflictError(f"{key}: changed since it was read")
                    self._take_over(temp, folder, new, current)
                    os.rename(temp, name, src_dir_fd=folder, dst_dir_fd=folder)
            except OSError as exc:
                _unlink_if_there(temp, folder)
                if isinstance(exc, StoreError):
                    raise
                raise StoreError(f"{key}: cannot write: {exc.strerror}") from exc
            try:
                os.fsync(folder)  # make the rename itself durable
            except OSError as exc:
                raise StoreError(f"{key}: cannot sync: {exc.strerror}") from exc
        finally:
            os.close(folder)
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
        try:
            os.makedirs(self._inside + INTERNAL_DIR, exist_ok=True)
            folder = os.open(self._inside + INTERNAL_DIR, _OPEN_DIR)
            try:
                temp, _ = self._write_temp(folder, name, body)
                try:
                    os.rename(temp, name, src_dir_fd=folder, dst_dir_fd=folder)
                except BaseException:
                    _unlink_if_there(temp, folder)
                    raise
            finally:
                os.close(folder)
        except OSError as exc:
            raise StoreError(f"{INTERNAL_DIR}/{name}: cannot write: {exc.strerror}") from exc

    def delete(self, key: str, expected: Version | None = None) -> None:
        folder, real, name = self._existing_folder(key, "delete")
        try:
            with self._locked():
                current = _version(self._current(key, folder, real, name))
                if expected is not None and current.token != expected.token:
                    raise ConflictError(f"{key}: changed since it was read; not deleted")
                try:
                    os.unlink(name, dir_fd=folder)
                except FileNotFoundError:
                    raise JobNotFoundError(f"{key}: no such job") from None
                except OSError as exc:
                    raise StoreError(f"{key}: cannot delete: {exc.strerror}") from exc
        finally:
            os.close(folder)
