"""Running a child process with a timeout and bounded, redacted output.

Shared by the ``command`` and ``python`` actions. The child gets its own session, so
everything it starts that stays in that session can be killed on timeout and when the run
ends (a shell's grandchildren too, in whatever process group), and so a Ctrl-C at the
runner's terminal does not kill running jobs: ``serve`` lets them finish.

One loop in the calling thread does all the waiting: it reads the output, feeds stdin and
watches the deadline and the child's exit (a pidfd where the system has one). No reader
thread: a descendant that leaves the session and keeps the output pipe open cannot hold a
thread or a descriptor past the run.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime

from ..redact import StreamRedactor, secrets_in
from .base import OUTPUT_LIMIT, Result, Status

_CHUNK = 65536
#: After SIGTERM on timeout, how long the group gets before SIGKILL.
KILL_GRACE_SECONDS = 2.0
#: Once the main process has exited, how long the rest of its session may go on (and keep
#: the output open) before it is killed and the run ends.
DRAIN_SECONDS = 1.0
#: After that kill, how long the last words of the group get to arrive.
_LAST_WORDS_SECONDS = 0.2
#: How often to look when no descriptor can say it: a group emptying, or a child's exit
#: where there is no pidfd.
_POLL_SECONDS = 0.05
#: The longest one wait on the descriptors may be: epoll takes at most about 24.8 days in
#: one call, less than a job's longest timeout; a longer wait is several of these.
_LONGEST_WAIT_SECONDS = 3600.0
#: How many times the session gets SIGKILL before the run gives up on a member that lives.
_KILL_ROUNDS = 50


class _Tail:
    """The last ``limit`` bytes of the redacted stream: memory stays bounded."""

    def __init__(self, limit: int, secrets: Sequence[str]) -> None:
        self.limit = limit
        self.redactor = StreamRedactor(secrets)
        self.data = bytearray()
        self.cut = False

    def feed(self, chunk: bytes) -> None:
        self._keep(self.redactor.feed(chunk))

    def _keep(self, chunk: bytes) -> None:
        self.data += chunk
        if len(self.data) > self.limit:
            del self.data[: len(self.data) - self.limit]
            self.cut = True

    def text(self) -> str:
        self._keep(self.redactor.finish())
        data = bytes(self.data)
        if self.cut:  # do not start with the broken end of a character
            skip = 0
            while skip < min(3, len(data)) and 0x80 <= data[skip] < 0xC0:
                skip += 1
            data = data[skip:]
        return data.decode("utf-8", errors="replace")


def _session_groups(sid: int) -> set[int] | None:
    """The process groups of the live members of session ``sid``; None where the system
    cannot say (no ``/proc``). A member may have moved to a group of its own (``setpgid``,
    as a shell with job control does): killing the run's first group alone would miss it."""
    try:
        entries = os.listdir("/proc")
    except OSError:
        return None
    groups = set()
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as stat:
                fields = stat.read().rsplit(b")", 1)[1].split()
        except (OSError, IndexError):
            continue  # gone meanwhile
        # A zombie is dead already, and may wait long for a parent to reap it.
        if len(fields) > 3 and fields[0] != b"Z" and int(fields[3]) == sid:
            groups.add(int(fields[2]))
    return groups


def _signal_session(sid: int, sig: int) -> None:
    """``sig`` to every process group of the session (its first group, ``sid``, included)."""
    for pgid in (_session_groups(sid) or set()) | {sid}:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, sig)


def _session_gone(sid: int) -> bool:
    groups = _session_groups(sid)
    if groups is not None:
        return not groups
    try:  # without /proc, the first group stands for the session
        os.killpg(sid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def _end_session(sid: int) -> None:
    """SIGKILL to the session until no member is left; a member forking meanwhile, or moving
    to a new group, is caught by the next round. Bounded: a process the kernel cannot kill
    yet (in uninterruptible sleep) is left to die on its own."""
    for _ in range(_KILL_ROUNDS):
        _signal_session(sid, signal.SIGKILL)
        if _session_gone(sid):
            return
        time.sleep(_POLL_SECONDS / 5)


# The runs in progress in this process, so that a runner told to stop at once can stop them
# (``stop_running``); and the ones it stopped, so that each records why it ended.
_running_lock = threading.Lock()
_running: dict[int, subprocess.Popen[bytes]] = {}
_stopped: set[int] = set()


def stop_running(grace: float = KILL_GRACE_SECONDS) -> int:
    """Stop every run in progress in this process: SIGTERM to each one's session, then, once
    the sessions are empty or ``grace`` seconds passed, SIGKILL to what is left (what ignored
    SIGTERM). Each stopped run returns an ``interrupted`` result. Returns how many."""
    with _running_lock:
        targets = list(_running.values())
        _stopped.update(process.pid for process in targets)
    for process in targets:
        _signal_session(process.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and not all(_session_gone(p.pid) for p in targets):
        time.sleep(0.05)
    for process in targets:
        _end_session(process.pid)
    return len(targets)


def _shown(text: str) -> str:
    """A name for a message: as it is when plain, quoted when empty or unprintable."""
    return text if text and text.isprintable() else repr(text)


def _start_error(argv: Sequence[str], cwd: str | None, exc: Exception) -> str:
    program = _shown(argv[0]) if argv else "''"
    if isinstance(exc, OSError):
        reason = exc.strerror or str(exc)
        if cwd is not None and exc.filename == cwd:
            if isinstance(exc, FileNotFoundError):
                return f"working directory not found: {_shown(cwd)}"
            return f"cannot use working directory {_shown(cwd)}: {reason}"
        if isinstance(exc, FileNotFoundError):
            missing = argv[0] if exc.filename in (None, argv[0]) else str(exc.filename)
            return f"executable not found: {_shown(missing)}"
        return f"cannot start {program}: {reason}"
    return f"cannot start {program}: {exc}"


class _Supervisor:
    """Waits on one child: output, stdin, exit and deadline, all from the calling thread."""

    def __init__(self, process: subprocess.Popen[bytes], stdin: bytes | None, tail: _Tail):
        self.process = process
        self.sid = process.pid  # the leader of its own session and group
        self.tail = tail
        self.selector = selectors.DefaultSelector()
        self.eof = False
        self.exited = False
        assert process.stdout is not None
        self.stdout = process.stdout
        os.set_blocking(self.stdout.fileno(), False)
        self.selector.register(self.stdout, selectors.EVENT_READ, self._read)
        self.stdin = memoryview(stdin or b"")
        if process.stdin is not None:
            os.set_blocking(process.stdin.fileno(), False)
            self.selector.register(process.stdin, selectors.EVENT_WRITE, self._write)
        self.pidfd: int | None = None
        with contextlib.suppress(AttributeError, OSError):  # not every system has pidfds
            self.pidfd = os.pidfd_open(process.pid)
            self.selector.register(self.pidfd, selectors.EVENT_READ, self._reap)

    def close(self) -> None:
        self.selector.close()
        if self.pidfd is not None:
            os.close(self.pidfd)
        self._close_stdin()
        self.stdout.close()

    def _read(self) -> None:
        try:
            chunk = os.read(self.stdout.fileno(), _CHUNK)
        except BlockingIOError:
            return
        if chunk:
            self.tail.feed(chunk)
        else:
            self.eof = True
            self.selector.unregister(self.stdout)

    def _write(self) -> None:
        assert self.process.stdin is not None
        try:
            written = os.write(self.process.stdin.fileno(), self.stdin[:_CHUNK])
        except BlockingIOError:
            return
        except BrokenPipeError:
            written = len(self.stdin)  # the child closed its stdin: it wants no more
        self.stdin = self.stdin[written:]
        if not self.stdin:
            self._close_stdin()

    def _close_stdin(self) -> None:
        stdin = self.process.stdin
        if stdin is not None and not stdin.closed:
            with contextlib.suppress(KeyError):
                self.selector.unregister(stdin)
            with contextlib.suppress(BrokenPipeError):
                stdin.close()

    def _reap(self) -> None:
        if self.pidfd is not None:
            self.selector.unregister(self.pidfd)
        self.process.wait()
        self.exited = True

    def _leader_done(self) -> bool:
        if not self.exited and self.pidfd is None and self.process.poll() is not None:
            self.exited = True
        return self.exited

    def pump(self, until: float, done: Callable[[], bool], poll: bool = False) -> bool:
        """Serve the child's descriptors until ``done()`` or the ``until`` instant."""
        while not done():
            remaining = until - time.monotonic()
            if remaining <= 0:
                return False
            if poll or self.pidfd is None:
                remaining = min(remaining, _POLL_SECONDS)
            remaining = min(remaining, _LONGEST_WAIT_SECONDS)
            for key, _ in self.selector.select(remaining):
                key.data()
        return True

    def run(self, timeout: float) -> bool:
        """Wait for the run to end; whether it timed out."""
        timed_out = not self.pump(time.monotonic() + timeout, self._leader_done)
        if timed_out:
            self._close_stdin()
            _signal_session(self.sid, signal.SIGTERM)
            grace_end = time.monotonic() + KILL_GRACE_SECONDS
            # The session, not only its leader: a member that ignores SIGTERM gets SIGKILL.
            self.pump(grace_end, lambda: self._leader_done() and _session_gone(self.sid), True)
            _end_session(self.sid)
            if not self.exited:
                self.process.wait()
                self.exited = True
        self._close_stdin()
        # The rest of the session may finish what it writes; then it ends with the run.
        drained = self.pump(
            time.monotonic() + DRAIN_SECONDS, lambda: self.eof and _session_gone(self.sid), True
        )
        if not drained:
            _end_session(self.sid)
            self.pump(time.monotonic() + _LAST_WORDS_SECONDS, lambda: self.eof)
        # Whoever still holds the pipe now has left the session; the run ends without it.
        return timed_out


def run_process(
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    timeout: float,
    started: datetime,
    cwd: str | None = None,
    stdin: str | None = None,
) -> Result:
    """Run ``argv`` to completion or timeout.

    Never raises for the job's own problems: whatever stops the child from starting (a
    missing executable or directory, a NUL or an unencodable character in an argument)
    is an ``error`` result with one line saying what.
    """
    clock = time.monotonic()
    full_env = {**os.environ, **env}

    def elapsed_ms() -> int:
        return int((time.monotonic() - clock) * 1000)

    try:
        data = stdin.encode("utf-8") if stdin is not None else None
        process = subprocess.Popen(
            list(argv),
            cwd=cwd,
            env=full_env,
            stdin=subprocess.PIPE if data is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    except Exception as exc:  # every failure to start is the job's
        return Result(Status.ERROR, started, elapsed_ms(), error=_start_error(argv, cwd, exc))

    # What the child can print is its environment: the runner's and the job's own.
    tail = _Tail(OUTPUT_LIMIT, secrets_in(full_env))
    supervisor = _Supervisor(process, data, tail)
    with _running_lock:
        _running[process.pid] = process
    try:
        timed_out = supervisor.run(timeout)
    finally:
        supervisor.close()
        with _running_lock:
            del _running[process.pid]
            stopped = process.pid in _stopped
            _stopped.discard(process.pid)
    duration = elapsed_ms()
    output = tail.text()
    code = process.returncode
    if stopped:
        return Result(
            Status.INTERRUPTED,
            started,
            duration,
            code,
            output,
            "stopped: the runner was told to stop its running jobs",
        )
    if timed_out:
        return Result(
            Status.TIMEOUT,
            started,
            duration,
            code,
            output,
            f"killed after the {timeout:g}-second timeout",
        )
    if code != 0:
        reason = f"killed by signal {-code}" if code < 0 else f"exited with status {code}"
        return Result(Status.FAILED, started, duration, code, output, reason)
    return Result(Status.OK, started, duration, code, output)
