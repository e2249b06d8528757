"""Running a child process with a timeout and bounded output.

Shared by the ``command`` and ``python`` actions. The child gets its own session, so the
whole process group can be killed on timeout (a shell's grandchildren too), and so a
Ctrl-C at the runner's terminal does not kill running jobs: ``serve`` lets them finish.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime

from ..job import Status
from .base import OUTPUT_LIMIT, Result

#: Kept beyond the recorded limit, so that redaction sees whole secrets at the cut.
_MARGIN = 1024

_CHUNK = 65536
#: After SIGTERM on timeout, how long the group gets before SIGKILL.
KILL_GRACE_SECONDS = 2.0


class _Tail:
    """Keeps only the last ``limit`` bytes of a stream: memory stays bounded."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.data = bytearray()

    def feed(self, chunk: bytes) -> None:
        self.data += chunk
        if len(self.data) > self.limit:
            del self.data[: len(self.data) - self.limit]

    def text(self) -> str:
        return self.data.decode("utf-8", errors="replace")


def _pump(stream: object, tail: _Tail) -> None:
    read = stream.read  # type: ignore[attr-defined]
    while chunk := read(_CHUNK):
        tail.feed(chunk)


def _kill_group(process: subprocess.Popen[bytes], sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, sig)


# The runs in progress in this process, so that a runner told to stop at once can stop them
# (``stop_running``); and the ones it stopped, so that each records why it ended.
_running_lock = threading.Lock()
_running: dict[int, subprocess.Popen[bytes]] = {}
_stopped: set[int] = set()


def stop_running(grace: float = KILL_GRACE_SECONDS) -> int:
    """Stop every run in progress in this process: SIGTERM to each one's process group,
    then, once their leaders exited or ``grace`` seconds passed, SIGKILL to the groups (what
    ignored SIGTERM). Each stopped run returns an ``interrupted`` result. Returns how many."""
    with _running_lock:
        targets = list(_running.values())
        _stopped.update(process.pid for process in targets)
    for process in targets:
        _kill_group(process, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while any(p.returncode is None for p in targets) and time.monotonic() < deadline:
        time.sleep(0.05)
    for process in targets:
        _kill_group(process, signal.SIGKILL)
    return len(targets)


def run_process(
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    timeout: float,
    started: datetime,
    cwd: str | None = None,
    stdin: bytes | None = None,
) -> Result:
    """Run ``argv`` to completion or timeout; never raises for the child's failures."""
    clock = time.monotonic()
    full_env = {**os.environ, **env}

    def elapsed_ms() -> int:
        return int((time.monotonic() - clock) * 1000)

    try:
        process = subprocess.Popen(
            list(argv),
            cwd=cwd,
            env=full_env,
            stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    except FileNotFoundError as exc:
        missing = argv[0] if exc.filename in (None, argv[0]) else exc.filename
        what = "working directory" if cwd and exc.filename == cwd else "executable"
        return Result(Status.ERROR, started, elapsed_ms(), error=f"{what} not found: {missing}")
    except (PermissionError, NotADirectoryError, OSError) as exc:
        return Result(
            Status.ERROR,
            started,
            elapsed_ms(),
            error=f"cannot start {argv[0]}: {exc.strerror or exc}",
        )

    with _running_lock:
        _running[process.pid] = process
    try:
        return _finish(process, stdin, timeout, started, elapsed_ms)
    finally:
        with _running_lock:
            del _running[process.pid]
            _stopped.discard(process.pid)


def _finish(
    process: subprocess.Popen[bytes],
    stdin: bytes | None,
    timeout: float,
    started: datetime,
    elapsed_ms: Callable[[], int],
) -> Result:
    tail = _Tail(OUTPUT_LIMIT + _MARGIN)
    reader = threading.Thread(target=_pump, args=(process.stdout, tail), daemon=True)
    reader.start()
    if stdin is not None:
        assert process.stdin is not None
        try:
            process.stdin.write(stdin)
            process.stdin.close()
        except BrokenPipeError:
            pass
    timed_out = False
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
        _kill_group(process, signal.SIGTERM)
        try:
            process.wait(timeout=KILL_GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            _kill_group(process, signal.SIGKILL)
            process.wait()
    # Kill stragglers that kept the pipe open (a backgrounded grandchild), then drain.
    reader.join(timeout=1.0)
    if reader.is_alive():
        _kill_group(process, signal.SIGKILL)
        reader.join(timeout=5.0)
    duration = elapsed_ms()
    output = tail.text()
    code = process.returncode
    with _running_lock:
        stopped = process.pid in _stopped
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
