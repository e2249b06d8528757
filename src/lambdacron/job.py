"""Job documents: JSON at the edge, frozen dataclasses inside.

A job file is a JSON object. The user owns every field except the runner-owned ones in
``RUNNER_FIELDS``; write-back replaces only those and keeps everything else as it was,
unknown fields included.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from .errors import JobError, ScheduleError
from .schedule import Schedule, get_zone, parse, parse_instant

#: Fields the runner writes. Everything else belongs to the user.
RUNNER_FIELDS = (
    "execution_count",
    "last_run",
    "last_scheduled",
    "last_result",
    "scheduled_from",
    "claim",
)
DEFAULT_TIMEOUT_SECONDS = 300.0
#: Lambda's invocation payload limits (bytes): asynchronous and synchronous.
LAMBDA_PAYLOAD_LIMITS = {"Event": 1024 * 1024, "RequestResponse": 6 * 1024 * 1024}
MAX_NESTING = 64


class RunType(StrEnum):
    COMMAND = "command"
    PYTHON = "python"
    LAMBDA = "lambda"


class Status(StrEnum):
    """How a run ended, as recorded in ``last_result.status``."""

    OK = "ok"
    FAILED = "failed"  # the action ran and reported failure (non-zero exit, FunctionError)
    TIMEOUT = "timeout"  # killed after timeout_seconds
    ERROR = "error"  # the action could not be started (missing executable, AWS error)
    INTERRUPTED = "interrupted"  # the runner died after claiming the occurrence


class InvocationType(StrEnum):
    EVENT = "Event"
    REQUEST_RESPONSE = "RequestResponse"


@dataclass(frozen=True)
class CommandSpec:
    argv: tuple[str, ...]
    cwd: str | None = None
    env: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class PythonSpec:
    script: str
    args: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class LambdaSpec:
    function: str
    payload: Any = field(default_factory=dict)
    invocation_type: InvocationType = InvocationType.EVENT


ActionSpec = CommandSpec | PythonSpec | LambdaSpec


@dataclass(frozen=True)
class Claim:
    """An occurrence taken by a runner that has not written its result yet."""

    id: str
    scheduled: datetime
    host: str
    pid: int
    started: datetime
    deadline: datetime


@dataclass(frozen=True)
class State:
    """The runner-owned part of a job."""

    execution_count: int = 0
    last_run: datetime | None = None
    last_scheduled: datetime | None = None
    last_result: Mapping[str, Any] | None = None
    #: The schedule fingerprint and the time from which its occurrences count.
    scheduled_from: tuple[str, datetime] | None = None
    claim: Claim | None = None


@dataclass(frozen=True)
class Job:
    key: str
    when: str
    timezone: str
    schedule: Schedule
    run_type: RunType
    action: ActionSpec
    max_number_executions: int = 0
    enabled: bool = True
    timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS
    state: State = State()

    @property
    def fingerprint(self) -> str:
        return fingerprint_of(
            {"when": self.when, "timezone": self.timezone, "enabled": self.enabled}
        )

    @property
    def exhausted(self) -> bool:
        limit = self.max_number_executions
        return limit > 0 and self.state.execution_count >= limit


def fingerprint_of(document: Mapping[str, Any]) -> str:
    """What makes a schedule "edited": a change resets the window its occurrences count from.

    ``enabled`` is part of it, so re-enabling a job does not replay what it missed.
    """
    return json.dumps(
        [document.get("when"), document.get("timezone", "UTC"), document.get("enabled", True)]
    )


# --------------------------------------------------------------------------- decoding


def decode(body: bytes) -> Any:
    """Bytes to a JSON value, raising JobError with a clear message."""
    if not body.strip():
        raise JobError("", "the file is empty; a job is a JSON object")
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise JobError("", f"not UTF-8 text (byte {exc.start})") from None
    try:
        value = json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise JobError(
            "", f"invalid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    except RecursionError:
        raise JobError("", f"JSON nested too deeply (limit {MAX_NESTING})") from None
    if _depth(value) > MAX_NESTING:
        raise JobError("", f"JSON nested too deeply (limit {MAX_NESTING})")
    return value


def _reject_constant(name: str) -> Any:
    raise JobError("", f"invalid JSON: {name} is not a JSON number")


def _depth(value: Any) -> int:
    # Iterative, so a hostile document cannot exhaust the stack here either.
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        deepest = max(deepest, depth)
        if deepest > MAX_NESTING:
            return deepest
        if isinstance(item, dict):
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)
    return deepest


def encode(document: Mapping[str, Any]) -> bytes:
    return (json.dumps(document, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


class _Problems:
    """Collects every problem of a document, so `validate` can report them all at once."""

    def __init__(self) -> None:
        self.items: list[JobError] = []

    def add(self, path: str, message: str) -> None:
        self.items.append(JobError(path, message))


def _type_name(value: Any) -> str:
    return {
        dict: "an object",
        list: "a list",
        str: "a string",
        bool: "true/false",
        int: "a number",
        float: "a number",
        type(None): "null",
    }.get(type(value), type(value).__name__)


def _get(
    doc: Mapping[str, Any],
    name: str,
    kind: type | tuple[type, ...],
    path: str,
    problems: _Problems,
    default: Any = None,
    describe: str = "",
) -> Any:
    if name not in doc:
        return default
    value = doc[name]
    kinds = kind if isinstance(kind, tuple) else (kind,)
    # bool is an int in Python, never in a job file.
    if (isinstance(value, bool) and bool not in kinds) or not isinstance(value, kinds):
        problems.add(path, f"must be {describe or _type_name(kinds[0]())}, got {_type_name(value)}")
        return default
    return value


def _string_list(value: Any, path: str, problems: _Problems) -> tuple[str, ...] | None:
    if not isinstance(value, list):
        return None
    bad = [i for i, item in enumerate(value) if not isinstance(item, str)]
    for i in bad:
        problems.add(f"{path}[{i}]", f"must be a string, got {_type_name(value[i])}")
    return None if bad else tuple(value)


def _string_map(doc: Mapping[str, Any], path: str, problems: _Problems) -> dict[str, str]:
    env = _get(doc, "env", dict, f"{path}.env", problems, {}, "an object of strings")
    result: dict[str, str] = {}
    for name, value in env.items():
        if not isinstance(value, str):
            problems.add(f"{path}.env.{name}", f"must be a string, got {_type_name(value)}")
        elif not name or "=" in name or "\0" in name or "\0" in value:
            problems.add(f"{path}.env", f"{name!r} is not a valid environment variable")
        else:
            result[name] = value
    return result


def _parse_command(details: Mapping[str, Any], problems: _Problems) -> CommandSpec | None:
    path = "run.details.command"
    if "command" not in details:
        problems.add(path, 'is required: an argument list such as ["ls", "-Fal"]')
        return None
    command = details["command"]
    if isinstance(command, str):
        problems.add(
            path,
            f'must be a list of arguments such as ["ls", "-Fal"], not a string; for shell syntax '
            f'write ["bash", "-c", {json.dumps(command)}]',
        )
        return None
    if not isinstance(command, list):
        problems.add(path, f"must be a list of strings, got {_type_name(command)}")
        return None
    if not command:
        problems.add(path, "must not be empty")
        return None
    argv = _string_list(command, path, problems)
    if argv is not None and not argv[0]:
        problems.add(f"{path}[0]", "the program name must not be empty")
    cwd = _get(details, "cwd", str, "run.details.cwd", problems)
    env = _string_map(details, "run.details", problems)
    return CommandSpec(argv, cwd, env) if argv else None


def _parse_python(details: Mapping[str, Any], problems: _Problems) -> PythonSpec | None:
    script = _get(details, "script", str, "run.details.script", problems)
    if "script" not in details:
        problems.add("run.details.script", "is required: the Python source to run")
    args: tuple[str, ...] | None = ()
    if "args" in details:
        args = _string_list(details["args"], "run.details.args", problems)
        if not isinstance(details["args"], list):
            problems.add(
                "run.details.args", f"must be a list of strings, got {_type_name(details['args'])}"
            )
    env = _string_map(details, "run.details", problems)
    if script is None or args is None:
        return None
    return PythonSpec(script, args, env)


def _parse_lambda(details: Mapping[str, Any], problems: _Problems) -> LambdaSpec | None:
    arn = _get(details, "arn", str, "run.details.arn", problems)
    name = _get(details, "function_name", str, "run.details.function_name", problems)
    if "arn" in details and "function_name" in details:
        problems.add("run.details", "give either arn or function_name, not both")
    function = arn or name
    if not function and "arn" not in details and "function_name" not in details:
        problems.add("run.details.arn", "is required (or function_name): the function to invoke")
    elif not function and (arn == "" or name == ""):
        problems.add(
            "run.details.arn" if arn == "" else "run.details.function_name", "must not be empty"
        )
    kind_text = _get(
        details, "invocation_type", str, "run.details.invocation_type", problems, "Event"
    )
    try:
        kind = InvocationType(kind_text)
    except ValueError:
        problems.add(
            "run.details.invocation_type", f"must be Event or RequestResponse, got {kind_text!r}"
        )
        kind = InvocationType.EVENT
    payload = details.get("payload", {})
    size = len(json.dumps(payload, ensure_ascii=False).encode("utf-8"))
    limit = LAMBDA_PAYLOAD_LIMITS[kind.value]
    if size > limit:
        problems.add(
            "run.details.payload",
            f"is {size} bytes; Lambda accepts at most {limit} bytes for {kind.value}",
        )
    return LambdaSpec(function, payload, kind) if function else None


_ACTION_PARSERS = {
    RunType.COMMAND: _parse_command,
    RunType.PYTHON: _parse_python,
    RunType.LAMBDA: _parse_lambda,
}


def _instant(
    doc: Mapping[str, Any], name: str, problems: _Problems, path: str | None = None
) -> datetime | None:
    value = doc.get(name)
    if value is None:
        return None
    path = path or name
    if not isinstance(value, str):
        problems.add(path, f"must be an ISO 8601 time, got {_type_name(value)}")
        return None
    try:
        # Files written by the original implementation hold naive UTC times.
        return parse_instant(value, UTC, path)
    except ScheduleError as exc:
        problems.add(path, str(exc).removeprefix(f"{path}: "))
        return None


def _parse_state(doc: Mapping[str, Any], problems: _Problems) -> State:
    count = _get(doc, "execution_count", int, "execution_count", problems, 0, "a whole number")
    if count < 0:
        problems.add("execution_count", f"must not be negative, got {count}")
        count = 0
    last_result = _get(
        doc, "last_result", (dict, type(None)), "last_result", problems, None, "an object"
    )
    scheduled_from = None
    raw = _get(doc, "scheduled_from", dict, "scheduled_from", problems, None, "an object")
    if raw is not None:
        since = _instant(raw, "since", problems, "scheduled_from.since")
        fingerprint = raw.get("fingerprint")
        if not isinstance(fingerprint, str) or since is None:
            problems.add("scheduled_from", "must hold a fingerprint and a since time")
        else:
            scheduled_from = (fingerprint, since)
    claim = None
    raw_claim = _get(doc, "claim", (dict, type(None)), "claim", problems, None, "an object")
    if raw_claim is not None:
        claim = _parse_claim(raw_claim, problems)
    return State(
        execution_count=count,
        last_run=_instant(doc, "last_run", problems),
        last_scheduled=_instant(doc, "last_scheduled", problems),
        last_result=last_result,
        scheduled_from=scheduled_from,
        claim=claim,
    )


def _parse_claim(raw: Mapping[str, Any], problems: _Problems) -> Claim | None:
    scheduled = _instant(raw, "scheduled", problems, "claim.scheduled")
    started = _instant(raw, "started", problems, "claim.started")
    deadline = _instant(raw, "deadline", problems, "claim.deadline")
    ident, host, pid = raw.get("id"), raw.get("host"), raw.get("pid")
    if (
        not isinstance(ident, str)
        or not isinstance(host, str)
        or not isinstance(pid, int)
        or isinstance(pid, bool)
        or scheduled is None
        or started is None
        or deadline is None
    ):
        problems.add("claim", "is damaged; remove the claim field to release the job")
        return None
    return Claim(ident, scheduled, host, pid, started, deadline)


def problems_of(key: str, document: Any) -> tuple[Job | None, list[JobError]]:
    """Validate a decoded document. Returns the job (None if invalid) and every problem."""
    problems = _Problems()
    if not isinstance(document, dict):
        problems.add("", f"a job must be a JSON object, got {_type_name(document)}")
        return None, problems.items
    when = document.get("when")
    if "when" not in document:
        problems.add("when", 'is required: a schedule such as "30 18 * * *"')
    elif not isinstance(when, str):
        problems.add("when", f"must be a string, got {_type_name(when)}")
        when = None
    timezone = _get(document, "timezone", str, "timezone", problems, "UTC")
    schedule = None
    try:
        get_zone(timezone)
    except ScheduleError as exc:
        problems.add("timezone", str(exc).removeprefix("timezone: "))
        timezone = None
    if isinstance(when, str) and timezone is not None:
        try:
            schedule = parse(when, timezone)
        except ScheduleError as exc:
            problems.add("when", str(exc))
    limit = _get(
        document,
        "max_number_executions",
        int,
        "max_number_executions",
        problems,
        None,
        "a whole number",
    )
    if limit is not None and limit < 0:
        problems.add("max_number_executions", f"must be 0 (unlimited) or more, got {limit}")
    enabled = _get(document, "enabled", bool, "enabled", problems, True)
    timeout = _get(
        document,
        "timeout_seconds",
        (int, float),
        "timeout_seconds",
        problems,
        DEFAULT_TIMEOUT_SECONDS,
    )
    if not (0 < timeout < math.inf):
        problems.add("timeout_seconds", f"must be a positive number of seconds, got {timeout}")
    run_type, action = _parse_run(document, problems)
    state = _parse_state(document, problems)
    if problems.items or schedule is None or run_type is None or action is None:
        return None, problems.items
    if limit is None:
        limit = 1 if schedule.one_time else 0
    assert isinstance(when, str) and timezone is not None  # schedule parsed, so both are set
    return Job(
        key, when, timezone, schedule, run_type, action, limit, enabled, float(timeout), state
    ), []


def _parse_run(
    document: Mapping[str, Any], problems: _Problems
) -> tuple[RunType | None, ActionSpec | None]:
    if "run" not in document:
        problems.add("run", 'is required: {"type": "command", "details": {...}}')
        return None, None
    run = _get(document, "run", dict, "run", problems)
    if run is None:
        return None, None
    type_text = run.get("type")
    try:
        run_type = RunType(type_text)
    except ValueError:
        known = ", ".join(t.value for t in RunType)
        problems.add("run.type", f"must be one of {known}, got {json.dumps(type_text)}")
        return None, None
    details = _get(run, "details", dict, "run.details", problems, None)
    if details is None:
        if "details" not in run:
            problems.add("run.details", "is required: an object")
        return run_type, None
    return run_type, _ACTION_PARSERS[run_type](details, problems)


def parse_job(key: str, document: Any) -> Job:
    """Validate and return the job, or raise the first problem as JobError."""
    job, problems = problems_of(key, document)
    if job is None:
        raise problems[0]
    return job


def load(key: str, body: bytes) -> tuple[Job | None, list[JobError], Any]:
    """Decode and validate raw bytes: (job or None, problems, decoded document or None)."""
    try:
        document = decode(body)
    except JobError as exc:
        return None, [exc], None
    job, problems = problems_of(key, document)
    return job, problems, document


# --------------------------------------------------------------------------- write-back


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def claim_to_json(claim: Claim) -> dict[str, Any]:
    return {
        "id": claim.id,
        "scheduled": iso(claim.scheduled),
        "host": claim.host,
        "pid": claim.pid,
        "started": iso(claim.started),
        "deadline": iso(claim.deadline),
    }


def with_runner_fields(document: Mapping[str, Any], fields: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``document`` with runner-owned fields replaced; ``None`` removes a field.

    User fields keep their values and their order.
    """
    unknown = set(fields) - set(RUNNER_FIELDS)
    if unknown:
        raise ValueError(f"not runner-owned fields: {sorted(unknown)}")
    result = dict(document)
    for name, value in fields.items():
        if value is None:
            result.pop(name, None)
        else:
            result[name] = value
    return result


def describe_problems(source: str, problems: Sequence[JobError]) -> list[str]:
    """``SOURCE: field.path: message`` lines."""
    return [f"{source}: {p}" for p in problems]
