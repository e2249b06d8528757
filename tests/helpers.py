"""Shared test helpers: placing job files with a chosen modification time, a fake clock."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from lambdacron.engine.delivery import Delivery, Occurrence
from lambdacron.errors import DeliveryError

T0 = datetime(2026, 1, 1, tzinfo=UTC)

# The two sample jobs of the seed README, exactly as it shows them.
SEED_COMMAND = {
    "when": "30 18 * * * * *",
    "max_number_executions": 0,
    "run": {"type": "command", "details": {"command": ["ls", "-Fal"]}},
}
SEED_PYTHON = {
    "when": "01 01 30 04 * * *",
    "max_number_executions": 3,
    "run": {
        "type": "python",
        "details": {
            "script": 'import json\n\ndata = {"hello": "world"}\n\nprint(json.dumps(data))\n'
            "\nfor x in range(1,10):\n    print(x)\n"
        },
    },
}


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


def place(root: Path, key: str, document: Any, placed: datetime = T0) -> Path:
    """Write a job file as a user would, with its mtime set to ``placed``."""
    path = root / key
    path.parent.mkdir(parents=True, exist_ok=True)
    body = document if isinstance(document, (bytes, str)) else json.dumps(document, indent=2)
    if isinstance(body, str):
        body = body.encode()
    path.write_bytes(body)
    stamp = placed.timestamp()
    os.utime(path, (stamp, stamp))
    return path


def command_job(when: str, argv: list[str], **fields: Any) -> dict[str, Any]:
    return {"when": when, **fields, "run": {"type": "command", "details": {"command": argv}}}


def append_job(when: str, target: Path, line: str, **fields: Any) -> dict[str, Any]:
    """A job whose run appends one line to ``target``: the at-most-once probe."""
    script = f"with open({str(target)!r}, 'a') as f: f.write({line!r} + '\\n')"
    return {"when": when, **fields, "run": {"type": "python", "details": {"script": script}}}


class FakeClock:
    """The wall clock the engine sees for claims and deadlines."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


def dead_run(scheduled: datetime) -> dict[str, Any]:
    """The runner fields a runner on another host left when it died running occurrence
    ``scheduled``: its claim (deadline 10 minutes later), the count and the occurrence."""
    at = scheduled.strftime("%Y-%m-%dT%H:%M:%SZ")
    deadline = (scheduled + timedelta(minutes=10)).strftime("%Y-%m-%dT%H:%M:%SZ")
    claim = {"id": "c1", "scheduled": at, "host": "elsewhere", "pid": 1, "started": at}
    return {"claim": {**claim, "deadline": deadline}, "execution_count": 1, "last_scheduled": at}


def notices_to(path: Path) -> dict[str, Any]:
    """An ``on_failure`` command that appends each notice to ``path``, one a line."""
    return {"command": ["sh", "-c", f"cat >> {path}; echo >> {path}"]}


def notices(path: Path) -> list[dict[str, Any]]:
    """The notices ``notices_to(path)`` received, in order."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def read_json(path: Path) -> Any:
    return json.loads(path.read_text())


def subprocess_env() -> dict[str, str]:
    """The environment for a ``lambdacron`` subprocess: the session's, without any store.

    Read at call time: the session fixtures point AWS at the local test server."""
    return {k: v for k, v in os.environ.items() if not k.startswith("LAMBDACRON_")}


def spawn(*args: str, session: bool = False) -> subprocess.Popen[str]:
    """Start ``lambdacron ARGS`` as a real process, with pipes for its output; ``session``:
    in a session of its own, as a terminal's foreground job is (``os.killpg`` its pid)."""
    return subprocess.Popen(
        [sys.executable, "-m", "lambdacron", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=subprocess_env(),
        start_new_session=session,
    )


class Recorder(Delivery):
    """A delivery that keeps what it is given, for the test to deliver by hand; ``fail``:
    one whose queue refuses every plan."""

    def __init__(self, lookahead: timedelta, fail: bool = False) -> None:
        self.lookahead = lookahead
        self.fail = fail
        self.planned: list[Occurrence] = []

    def plan(self, occurrences: Sequence[Occurrence]) -> None:
        if self.fail:
            raise DeliveryError("the queue is down")
        self.planned.extend(occurrences)


def places(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every place in a JSON document below its root: each object's and list's members, at
    any depth, as the names and indices leading there."""
    found = [prefix] if prefix else []
    if isinstance(value, dict):
        for name, item in value.items():
            found += places(item, (*prefix, name))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            found += places(item, (*prefix, i))
    return found
