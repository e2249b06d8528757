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
from datetime import UTC, date, datetime, time
from typing import Any, Literal

from .actions import SPECS
from .actions.base import RunType, Spec
from .errors import JobError, ScheduleError
from .fields import Problems, get, type_name
from .job import (
    DEFAULT_HISTORY_LIMIT,
    DEFAULT_TIMEOUT_SECONDS,
    MAX_NESTING,
    RUNNER_FIELDS,
    Claim,
    Job,
    Retry,
    RetryPolicy,
    State,
    Telling,
)
from .notify import Destination, NoticeReason, check_destination
from .schedule import AtSchedule, get_zone, parse
from .store.base import Version
from .times import RECORDABLE, iso, parse_instant, recordable


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
#: EventBridge Scheduler's most retry attempts, plus the first.
MAX_ATTEMPTS = 186
MAX_BACKOFF_SECONDS = 86_400
#: The most results a job file keeps in its history.
MAX_HISTORY = 100
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
_LONE_NAME = "a field name holds a lone surrogate, which is not Unicode text"


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
    except (ValueError, TypeError, RecursionError) as exc:  # UnicodeEncodeError: a ValueError
        # Named by the walk, which is iterative and bounded: naming the place must not
        # exhaust the stack the encoder just did, nor loop in a value that holds itself.
        raise unwritable(document) or JobError("", f"cannot be written as JSON: {exc}") from None


#: Python values that are their JSON values, subclasses included (an IntEnum is its int).
_JSON_LEAVES = (str, int, float, type(None))
_ISO_HINT = "; give it as ISO 8601 text"


def unwritable(document: Mapping[str, Any]) -> JobError | None:
    """The first part of ``document`` that is no JSON value as given, with its field path;
    None if every part is one.

    Stricter than the encoder where it would change the value: a field name that is not
    text (JSON writes ``1`` as ``"1"``, so the job read back would not be the one given).
    One iterative walk, at most ``MAX_NESTING`` deep, so a value that holds itself or is
    nested past any reader's reach is one error, not a RecursionError."""
    stack: list[_Node] = [(None, "", document, 1)]
    while stack:
        node = stack.pop()
        value, depth = node[2], node[3]
        if isinstance(value, Mapping if depth == 1 else dict):
            items: Any = value.items()
        elif isinstance(value, list | tuple) and depth > 1:
            items = enumerate(value)
        else:
            problem = _not_json(value)
            if problem is not None:
                return JobError(_path_of(node), f"cannot be written as JSON: {problem}")
            continue
        ancestor = node[0]
        while ancestor is not None and ancestor[2] is not value:
            ancestor = ancestor[0]
        if ancestor is not None:
            return JobError(_path_of(node), "holds itself (a circular reference)")
        if depth > MAX_NESTING:
            return JobError(_path_of(node), f"JSON nested too deeply (limit {MAX_NESTING})")
        children = []
        for name, item in items:
            if not isinstance(name, str) and isinstance(value, Mapping):
                return JobError(
                    _path_of(node),
                    f"cannot be written as JSON: field names must be text, got {name!r}"
                    f" ({type(name).__name__})",
                )
            if isinstance(name, str) and _not_unicode(name):
                return JobError(_path_of(node), f"cannot be written as JSON: {_LONE_NAME}")
            children.append((node, name, item, depth + 1))
        stack.extend(reversed(children))  # depth first, in order: the first problem is named
    return None


def _not_json(value: Any) -> str | None:
    """Why the leaf ``value`` is no JSON value; None if it is one."""
    if not isinstance(value, _JSON_LEAVES):
        kind = type(value).__name__
        hint = _ISO_HINT if isinstance(value, date | time) else ""
        return (
            f"type {kind} is not a JSON value (text, number, true/false, null, list, object){hint}"
        )
    if isinstance(value, str):
        return _LONE_SURROGATE if _not_unicode(value) else None
    if isinstance(value, float) and not math.isfinite(value):
        return f"{value!r} is not a number JSON can hold (NaN and infinities are not)"
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= _INT_CAP:
        return (
            f"a number of more than {MAX_INT_DIGITS} digits; at most {MAX_INT_DIGITS} are accepted"
        )
    return None


_INT_CAP = 10**MAX_INT_DIGITS


_compact = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(", ", ": ")).encode


def _count(
    doc: Mapping[str, Any], name: str, problems: Problems, default: int | None, zero: str = "0"
) -> int | None:
    """A whole number from 0 to MAX_COUNT."""
    value = get(doc, name, int, name, problems, default, "a whole number")
    if value is not None and value < 0:
        problems.add(name, f"must be {zero} or more, got {value}")
        return default
    if value is not None and value > MAX_COUNT:
        problems.add(name, f"must be at most {MAX_COUNT}, got {value}")
        return default
    return value  # type: ignore[no-any-return]


def _instant(
    doc: Mapping[str, Any], name: str, problems: Problems, path: str | None = None
) -> datetime | None:
    value = doc.get(name)
    if value is None:
        return None
    path = path or name
    if not isinstance(value, str):
        problems.add(path, f"must be an ISO 8601 time, got {type_name(value)}")
        return None
    try:
        # Files written by earlier versions hold naive UTC times.
        moment = parse_instant(value, UTC, path)
    except (ScheduleError, OverflowError) as exc:
        problems.add(path, str(exc).removeprefix(f"{path}: "))
        return None
    if not recordable(moment):
        problems.add(path, f"{value!r} is outside {RECORDABLE}")
        return None
    return moment


def _parse_state(doc: Mapping[str, Any], problems: Problems) -> State:
    count = _count(doc, "execution_count", problems, 0) or 0
    last_result = get(
        doc, "last_result", (dict, type(None)), "last_result", problems, None, "an object"
    )
    scheduled_from = None
    raw = get(doc, "scheduled_from", dict, "scheduled_from", problems, None, "an object")
    if raw is not None:
        since = _instant(raw, "since", problems, "scheduled_from.since")
        fingerprint = raw.get("fingerprint")
        if not isinstance(fingerprint, str) or since is None:
            problems.add("scheduled_from", "must hold a fingerprint and a since time")
        else:
            scheduled_from = (fingerprint, since)
    claim = None
    raw_claim = get(doc, "claim", (dict, type(None)), "claim", problems, None, "an object")
    if raw_claim is not None:
        claim = _parse_claim(raw_claim, problems)
    retry = None
    raw_retry = get(doc, "retry_pending", dict, "retry_pending", problems, None, "an object")
    if raw_retry is not None:
        scheduled = _instant(raw_retry, "scheduled", problems, "retry_pending.scheduled")
        at = _instant(raw_retry, "at", problems, "retry_pending.at")
        attempt = raw_retry.get("attempt")
        if (
            scheduled is None
            or at is None
            or not isinstance(attempt, int)
            or isinstance(attempt, bool)
            or not 2 <= attempt <= MAX_ATTEMPTS
            or at < scheduled  # a retry comes after its occurrence
        ):
            problems.add("retry_pending", "is damaged; remove it to drop the retry")
        else:
            retry = Retry(scheduled, attempt, at)
    history = doc.get("history")
    if history is not None and not (
        isinstance(history, list) and all(isinstance(entry, dict) for entry in history)
    ):
        problems.add("history", "must be a list of objects (the runner keeps it; remove it)")
    return State(
        execution_count=count,
        last_run=_instant(doc, "last_run", problems),
        last_scheduled=_instant(doc, "last_scheduled", problems),
        last_result=last_result,
        scheduled_from=scheduled_from,
        claim=claim,
        retry=retry,
    )


def _parse_claim(raw: Mapping[str, Any], problems: Problems) -> Claim | None:
    scheduled = _instant(raw, "scheduled", problems, "claim.scheduled")
    started = _instant(raw, "started", problems, "claim.started")
    deadline = _instant(raw, "deadline", problems, "claim.deadline")
    ident, host, pid = raw.get("id"), raw.get("host"), raw.get("pid")
    attempt, manual = raw.get("attempt", 1), raw.get("manual", False)
    telling = _parse_telling(raw.get("telling"))
    if (
        telling is False
        or not isinstance(attempt, int)
        or isinstance(attempt, bool)
        or not 1 <= attempt <= MAX_ATTEMPTS
        or not isinstance(manual, bool)
        or not isinstance(ident, str)
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
    return Claim(ident, scheduled, host, pid, started, deadline, attempt, manual, telling)


def _parse_telling(raw: Any) -> Telling | Literal[False] | None:
    """A claim's ``telling``; False when it is there but damaged."""
    if raw is None:
        return None
    if not isinstance(raw, dict):
        return False
    reason, attempts = raw.get("reason"), raw.get("attempts")
    to: Destination | None = None
    if "to" in raw:
        to = check_destination(raw["to"], Problems(), "claim.telling.to")
        if to is None:
            return False
    if (
        not isinstance(reason, str)
        or reason not in {member.value for member in NoticeReason}
        or not isinstance(attempts, int)
        or isinstance(attempts, bool)
        or not 0 <= attempts <= MAX_ATTEMPTS
    ):
        return False
    return Telling(NoticeReason(reason), attempts, to)


def _parse_retry(document: Mapping[str, Any], problems: Problems) -> RetryPolicy | None:
    raw = get(document, "retry", (dict, type(None)), "retry", problems, None, "an object")
    return None if raw is None else check_retry(raw, problems, "retry")


def check_retry(raw: Mapping[str, Any], problems: Problems, path: str) -> RetryPolicy | None:
    """A ``retry`` object (a job's, or ``LAMBDACRON_RETRY``), each problem with its path."""
    known = ("attempts", "backoff_seconds", "max_backoff_seconds", "on_interrupted")
    before = len(problems.items)
    for name in raw:
        if name not in known:
            problems.add(f"{path}.{name}", f"is not a field of retry (known: {', '.join(known)})")
    attempts = get(raw, "attempts", int, f"{path}.attempts", problems, 1, "a whole number")
    if not 1 <= attempts <= MAX_ATTEMPTS:
        problems.add(
            f"{path}.attempts", f"must be 1 to {MAX_ATTEMPTS} (1: no retry), got {attempts}"
        )
    seconds: list[float] = []
    for name, default in (("backoff_seconds", 30.0), ("max_backoff_seconds", 900.0)):
        value = get(raw, name, (int, float), f"{path}.{name}", problems, default, "a number")
        if not 0 <= value <= MAX_BACKOFF_SECONDS:
            problems.add(
                f"{path}.{name}", f"must be 0 to {MAX_BACKOFF_SECONDS} seconds, got {value:g}"
            )
            value = default
        seconds.append(float(value))
    on_interrupted = get(raw, "on_interrupted", bool, f"{path}.on_interrupted", problems, False)
    if len(problems.items) > before:
        return None
    return RetryPolicy(attempts, seconds[0], max(seconds), on_interrupted)


def problems_of(key: str, document: Any) -> tuple[Job | None, list[JobError]]:
    """Validate a decoded document. Returns the job (None if invalid) and every problem."""
    problems = Problems()
    if not isinstance(document, dict):
        problems.add("", f"a job must be a JSON object, got {type_name(document)}")
        return None, problems.items
    when = document.get("when")
    if "when" not in document:
        problems.add("when", 'is required: a schedule such as "30 18 * * *"')
    elif not isinstance(when, str):
        problems.add("when", f"must be a string, got {type_name(when)}")
        when = None
    timezone = get(document, "timezone", str, "timezone", problems, "UTC")
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
        # Its run records the time it fires at, which must read back as a valid file.
        if isinstance(schedule, AtSchedule) and not recordable(schedule.when):
            problems.add("when", f"fires at {iso(schedule.when)}, outside {RECORDABLE}")
            schedule = None
    limit = _count(document, "max_number_executions", problems, None, "0 (unlimited)")
    enabled = get(document, "enabled", bool, "enabled", problems, True)
    timeout = get(
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
    retry = _parse_retry(document, problems)
    deadline = get(
        document, "deadline_seconds", (int, float, type(None)), "deadline_seconds", problems, None
    )
    if deadline is not None and not 0 <= deadline <= MAX_TIMEOUT_SECONDS:
        problems.add(
            "deadline_seconds",
            f"must be 0 (none) to {MAX_TIMEOUT_SECONDS} seconds (30 days), got {deadline:g}",
        )
    history_limit = _count(document, "history_limit", problems, DEFAULT_HISTORY_LIMIT)
    if history_limit is not None and history_limit > MAX_HISTORY:
        problems.add("history_limit", f"must be at most {MAX_HISTORY}, got {history_limit}")
    on_failure = None
    if document.get("on_failure") is not None:
        on_failure = check_destination(document["on_failure"], problems)
    if problems.items or schedule is None or run_type is None or action is None:
        return None, problems.items
    if limit is None:
        limit = 1 if schedule.one_time else 0
    assert isinstance(when, str) and timezone is not None  # schedule parsed, so both are set
    return Job(
        key,
        when,
        timezone,
        schedule,
        run_type,
        action,
        limit,
        enabled,
        float(timeout),
        state,
        retry=retry,
        deadline_seconds=None if deadline is None else float(deadline),
        on_failure=on_failure,
        history_limit=DEFAULT_HISTORY_LIMIT if history_limit is None else history_limit,
    ), []


def _parse_run(
    document: Mapping[str, Any], problems: Problems
) -> tuple[RunType | None, Spec | None]:
    if "run" not in document:
        problems.add("run", 'is required: {"type": "command", "details": {...}}')
        return None, None
    run = get(document, "run", dict, "run", problems)
    if run is None:
        return None, None
    type_text = run.get("type")
    try:
        run_type = RunType(type_text)
    except ValueError:
        known = ", ".join(t.value for t in RunType)
        problems.add("run.type", f"must be one of {known}, got {json.dumps(type_text)}")
        return None, None
    details = get(run, "details", dict, "run.details", problems, None)
    if details is None:
        if "details" not in run:
            problems.add("run.details", "is required: an object")
        return run_type, None
    fields = SPECS[run_type].fields
    for name in details:
        if name not in fields:
            problems.add(
                f"run.details.{name}",
                f"is not a field of a {run_type.value} job (known: {', '.join(fields)})",
            )
    return run_type, SPECS[run_type].parse(details, problems)


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
    record: dict[str, Any] = {
        "id": claim.id,
        "scheduled": iso(claim.scheduled),
        "host": claim.host,
        "pid": claim.pid,
        "started": iso(claim.started),
        "deadline": iso(claim.deadline),
    }
    if claim.attempt != 1:
        record["attempt"] = claim.attempt
    if claim.manual:
        record["manual"] = True
    if claim.telling is not None:
        record["telling"] = {
            "reason": claim.telling.reason.value,
            "attempts": claim.telling.attempts,
        }
        if claim.telling.to is not None:
            record["telling"]["to"] = claim.telling.to.to_json()
    return record


def retry_to_json(retry: Retry) -> dict[str, Any]:
    return {"scheduled": iso(retry.scheduled), "attempt": retry.attempt, "at": iso(retry.at)}


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
    "retry",
    "deadline_seconds",
    "on_failure",
    "history_limit",
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
