"""The job file format: bytes to a validated job and back.

``load`` is the one way in: it never raises, and returns the job (or every problem, each
with its field path) and the decoded document. ``encode`` is the one way out. The runner
owns the fields in ``RUNNER_FIELDS`` and replaces only those (``with_runner_fields``);
everything else in a file is the user's and keeps its value and its place.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from .errors import JobError, ScheduleError
from .job import (
    DEFAULT_TIMEOUT_SECONDS,
    LAMBDA_PAYLOAD_LIMITS,
    MAX_NESTING,
    RUNNER_FIELDS,
    ActionSpec,
    Claim,
    CommandSpec,
    InvocationType,
    Job,
    LambdaSpec,
    PythonSpec,
    RunType,
    State,
)
from .schedule import get_zone, parse
from .store.base import Version
from .times import iso, parse_instant


@dataclass(frozen=True)
class JobFile:
    """One job on its way from the store to a run and back: the decoded document (what
    write-back keeps), the validated job, and the version both were read at."""

    key: str
    document: dict[str, Any]
    job: Job
    version: Version


# --------------------------------------------------------------------------- decoding

#: The bounds every value meets before anything uses it. A number or time outside them
#: cannot be stored in a datetime, a timedelta or a C int further on, so it is refused
#: here, where the field it stands in can still be named.
MAX_INT_DIGITS = 64
MAX_COUNT = 10**9
MAX_TIMEOUT_SECONDS = 30 * 86400
MAX_PID = 2**31 - 1
#: Instants a job file may hold: a datetime plus any offset, timeout or grace stays valid.
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(9998, 12, 31, tzinfo=UTC)
_SURROGATE = re.compile("[\ud800-\udfff]")


class _Refused:
    """A value the JSON reader met but refuses, kept in place so the walk that follows can
    report it with the path of the field it stands in."""

    __slots__ = ("reason",)

    def __init__(self, reason: str) -> None:
        self.reason = reason


class _Duplicates(dict[str, Any]):
    """An object that named some field more than once (JSON allows it; a job must not,
    because every reader keeps a different one of the two)."""

    duplicates: tuple[str, ...] = ()


def _int(text: str) -> Any:
    digits = len(text.lstrip("-"))
    if digits > MAX_INT_DIGITS:
        return _Refused(f"a number of {digits} digits; at most {MAX_INT_DIGITS} are accepted")
    return int(text)


def _float(text: str) -> Any:
    value = float(text)
    if not math.isfinite(value):
        return _Refused(f"the number {text[:40]} is too large to represent")
    return value


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) == len(pairs):
        return result
    seen: set[str] = set()
    twice = []
    for name, _ in pairs:
        if name in seen and name not in twice:
            twice.append(name)
        seen.add(name)
    marked = _Duplicates(pairs)
    marked.duplicates = tuple(twice)
    return marked


def _join(path: str, name: str | int) -> str:
    if isinstance(name, int):
        return f"{path}[{name}]"
    return f"{path}.{name}" if path else name


_Node = tuple[Any, "str | int", Any, int]  # (parent node, name in it, value, depth)
_LEAVES = (int, float, bool, type(None))
_LONE_SURROGATE = "holds a lone surrogate, which is not Unicode text"


def _path_of(node: _Node | None, name: str | int | None = None) -> str:
    """The dotted field path of a node of the walk (built only when a problem needs it)."""
    names: list[str | int] = [] if name is None else [name]
    while node is not None and node[0] is not None:
        names.append(node[1])
        node = node[0]
    path = ""
    for part in reversed(names):
        path = _join(path, part)
    return path


def _not_unicode(text: str) -> bool:
    return not text.isascii() and _SURROGATE.search(text) is not None


def _refused_values(document: Any) -> list[JobError]:
    """Every value of ``document`` that nothing may use, with its field path: numbers out of
    range, names given twice, text that is not Unicode (a lone surrogate passes the JSON
    reader, and then fails every write); and nesting deeper than ``MAX_NESTING``.

    One iterative walk (a hostile document cannot exhaust the stack), which builds a field
    path only for a problem: most documents have none, and are read at every run."""
    problems: list[JobError] = []
    stack: list[_Node] = [(None, "", document, 1)]
    while stack:
        node = stack.pop()
        value, depth = node[2], node[3]
        if depth > MAX_NESTING:
            raise JobError("", f"JSON nested too deeply (limit {MAX_NESTING})")
        if isinstance(value, dict):
            for name in getattr(value, "duplicates", ()):
                problems.append(JobError(_path_of(node, name), "is given more than once"))
            items: Any = value.items()
        elif isinstance(value, list):
            items = enumerate(value)
        elif isinstance(value, _Refused):
            problems.append(JobError(_path_of(node), value.reason))
            continue
        elif isinstance(value, str):
            if _not_unicode(value):
                problems.append(JobError(_path_of(node), _LONE_SURROGATE))
            continue
        else:
            continue
        for name, item in items:
            if type(name) is str and _not_unicode(name):
                message = "has a field name with a lone surrogate, which is not Unicode"
                problems.append(JobError(_path_of(node), message))
            elif type(item) is str:
                if _not_unicode(item):
                    problems.append(JobError(_path_of(node, name), _LONE_SURROGATE))
            elif not isinstance(item, _LEAVES):
                stack.append((node, name, item, depth + 1))
    problems.sort(key=lambda p: p.path)
    return problems


def _decode(body: bytes) -> tuple[Any, list[JobError]]:
    """Bytes to a JSON value and every problem of its values; raises JobError when the
    bytes are not JSON at all."""
    if not body.strip():
        raise JobError("", "the file is empty; a job is a JSON object")
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise JobError("", f"not UTF-8 text (byte {exc.start})") from None
    try:
        value = json.loads(
            text,
            parse_constant=_reject_constant,
            parse_int=_int,
            parse_float=_float,
            object_pairs_hook=_object,
        )
    except json.JSONDecodeError as exc:
        raise JobError(
            "", f"invalid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    except RecursionError:
        raise JobError("", f"JSON nested too deeply (limit {MAX_NESTING})") from None
    return value, _refused_values(value)


def decode(body: bytes) -> Any:
    """Bytes to a JSON value, raising JobError (with the field path) for the first problem."""
    value, problems = _decode(body)
    if problems:
        raise problems[0]
    return value


def _reject_constant(name: str) -> Any:
    raise JobError("", f"invalid JSON: {name} is not a JSON number")


def encode(document: Mapping[str, Any]) -> bytes:
    """The file's bytes. Raises JobError for what JSON cannot hold (NaN, infinities, text
    that is not Unicode), so nothing is ever written that no reader can read back."""
    # One field a line, each value on its line in compact JSON: as easy to read and diff as
    # an indented file, while the C encoder does all the work (json.dumps with an indent
    # runs the pure-Python encoder, and a runner encodes twice for every run).
    try:
        lines = []
        for name, value in document.items():
            if not isinstance(name, str):
                raise TypeError(f"field names must be strings, got {name!r}")
            lines.append(f"  {_compact(name)}: {_compact(value)}")
        return ("{\n" + ",\n".join(lines) + "\n}\n" if lines else "{}\n").encode("utf-8")
    except (ValueError, TypeError) as exc:  # UnicodeEncodeError is a ValueError
        raise JobError("", f"cannot be written as JSON: {exc}") from None
    except RecursionError:  # deeper than the encoder can go, so deeper than any reader
        raise JobError("", f"JSON nested too deeply (limit {MAX_NESTING})") from None


_compact = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(", ", ": ")).encode


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


def _count(
    doc: Mapping[str, Any], name: str, problems: _Problems, default: int | None, zero: str = "0"
) -> int | None:
    """A whole number from 0 to MAX_COUNT."""
    value = _get(doc, name, int, name, problems, default, "a whole number")
    if value is not None and value < 0:
        problems.add(name, f"must be {zero} or more, got {value}")
        return default
    if value is not None and value > MAX_COUNT:
        problems.add(name, f"must be at most {MAX_COUNT}, got {value}")
        return default
    return value  # type: ignore[no-any-return]


def _string_list(
    value: Any, path: str, problems: _Problems, argument: bool = False
) -> tuple[str, ...] | None:
    """A list of strings; ``argument``: each is a process argument, which cannot hold NUL."""
    if not isinstance(value, list):
        return None
    bad = False
    for i, item in enumerate(value):
        if not isinstance(item, str):
            problems.add(f"{path}[{i}]", f"must be a string, got {_type_name(item)}")
            bad = True
        elif argument and "\0" in item:
            problems.add(f"{path}[{i}]", _NUL)
            bad = True
    return None if bad else tuple(value)


_NUL = "contains a NUL character, which no process argument can hold"


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
    argv = _string_list(command, path, problems, argument=True)
    if argv is not None and not argv[0]:
        problems.add(f"{path}[0]", "the program name must not be empty")
    cwd = _get(details, "cwd", str, "run.details.cwd", problems)
    if cwd is not None and not cwd:
        problems.add("run.details.cwd", "must not be empty; leave it out for the runner's own")
    elif cwd is not None and "\0" in cwd:
        problems.add("run.details.cwd", _NUL)
    env = _string_map(details, "run.details", problems)
    return CommandSpec(argv, cwd, env) if argv else None


def _parse_python(details: Mapping[str, Any], problems: _Problems) -> PythonSpec | None:
    script = _get(details, "script", str, "run.details.script", problems)
    if "script" not in details:
        problems.add("run.details.script", "is required: the Python source to run")
    args: tuple[str, ...] | None = ()
    if "args" in details:
        args = _string_list(details["args"], "run.details.args", problems, argument=True)
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


#: The fields each ``run.type`` knows in ``run.details``; any other is a mistake (a typo
#: there would silently change what runs).
_DETAILS_FIELDS = {
    RunType.COMMAND: ("command", "cwd", "env"),
    RunType.PYTHON: ("script", "args", "env"),
    RunType.LAMBDA: ("arn", "function_name", "payload", "invocation_type"),
}

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
        # Files written by earlier versions hold naive UTC times.
        moment = parse_instant(value, UTC, path)
    except (ScheduleError, OverflowError) as exc:
        problems.add(path, str(exc).removeprefix(f"{path}: "))
        return None
    if not EARLIEST <= moment <= LATEST:
        problems.add(path, f"{value!r} is outside {EARLIEST.year}-{LATEST.year}")
        return None
    return moment


def _parse_state(doc: Mapping[str, Any], problems: _Problems) -> State:
    count = _count(doc, "execution_count", problems, 0) or 0
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
        or not 0 < pid <= MAX_PID
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
        except (ArithmeticError, ValueError) as exc:  # a time beyond what datetime holds
            problems.add("when", f"cannot be evaluated: {exc}")
    limit = _count(document, "max_number_executions", problems, None, "0 (unlimited)")
    enabled = _get(document, "enabled", bool, "enabled", problems, True)
    timeout = _get(
        document,
        "timeout_seconds",
        (int, float),
        "timeout_seconds",
        problems,
        DEFAULT_TIMEOUT_SECONDS,
    )
    if not 0 < timeout <= MAX_TIMEOUT_SECONDS:
        problems.add(
            "timeout_seconds",
            f"must be more than 0 and at most {MAX_TIMEOUT_SECONDS} seconds (30 days),"
            f" got {timeout:g}",
        )
        timeout = DEFAULT_TIMEOUT_SECONDS
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
    fields = _DETAILS_FIELDS[run_type]
    for name in details:
        if name not in fields:
            problems.add(
                f"run.details.{name}",
                f"is not a field of a {run_type.value} job (known: {', '.join(fields)})",
            )
    return run_type, _ACTION_PARSERS[run_type](details, problems)


def load(key: str, body: bytes) -> tuple[Job | None, list[JobError], Any]:
    """Decode and validate raw bytes: (job or None, problems, decoded document or None).

    The one way from bytes to a job: whatever the bytes hold, it returns; it never raises.
    """
    try:
        document, refused = _decode(body)
    except JobError as exc:
        return None, [exc], None
    if refused:
        return None, refused, document
    try:
        job, problems = problems_of(key, document)
    except Exception as exc:  # a validator bug must stay this one file's problem
        return None, [JobError("", f"cannot be validated: {type(exc).__name__}: {exc}")], document
    return job, problems, document


# --------------------------------------------------------------------------- write-back


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


#: The top-level fields lambdacron reads; any other is the user's own and kept as it is.
KNOWN_FIELDS = (
    "when",
    "timezone",
    "max_number_executions",
    "enabled",
    "timeout_seconds",
    "run",
    *RUNNER_FIELDS,
)


def warnings_of(document: Any) -> list[JobError]:
    """Unknown top-level fields that look like a misspelt known one (``enabld``). Unknown
    fields are allowed (they are the user's own), so these are warnings, not problems."""
    if not isinstance(document, dict):
        return []
    found = []
    for name in document:
        if name in KNOWN_FIELDS:
            continue
        close = [known for known in KNOWN_FIELDS if _distance(name, known) <= 2]
        if close:
            found.append(JobError(name, f"unknown field; did you mean {close[0]!r}?"))
    return found


def _distance(a: str, b: str) -> int:
    """Levenshtein distance, stopping early: only "at most 2" matters here."""
    if abs(len(a) - len(b)) > 2:
        return 3
    previous = list(range(len(b) + 1))
    for i, char_a in enumerate(a, 1):
        current = [i]
        for j, char_b in enumerate(b, 1):
            current.append(
                min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (char_a != char_b))
            )
        previous = current
    return previous[-1]


def describe_problems(source: str, problems: Sequence[JobError]) -> list[str]:
    """``SOURCE: field.path: message`` lines."""
    return [f"{source}: {p}" for p in problems]
