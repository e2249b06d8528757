"""Hostile values in every field of a job file, runner-owned ones included.

The promise: whatever one file holds, it is either a valid job that runs, or it is reported
(one line naming the key and the field) and left byte for byte; and no value in one file
stops the tick for the others. Values are written as raw JSON text, so numbers JSON allows
but Python struggles with (5,000 digits, 1e400) reach the reader exactly as a user or an
attacker could write them.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from conftest import Run
from helpers import FakeClock, command_job, place, places, read_json, utc
from lambdacron.actions import default_registry
from lambdacron.engine import Engine, Outcome
from lambdacron.engine.inventory import inventory
from lambdacron.jobfile import load, problems_of
from lambdacron.store import LocalStore

NOW = utc(2026, 1, 1, 1)
PLACED = utc(2026, 1, 1)
_MARK = "\x00HOSTILE\x00"

#: Values as raw JSON text: numbers past every bound, text that is not Unicode, instants
#: that overflow a datetime once their offset is applied, and plain wrong types.
HOSTILE = [
    "1" + "0" * 400,
    "9" * 5000,
    "-" + "9" * 70,
    "1e300",
    "-1e300",
    "1e400",
    "1e-400",
    "NaN",
    "Infinity",
    "-Infinity",
    str(2**63),
    str(2**31),
    "-1",
    "0",
    "true",
    "null",
    "[]",
    "{}",
    '"\\ud800"',
    '"x\\udfff"',
    '"a\\u0000b"',
    '""',
    '"0001-01-01T00:00:00+01:00"',
    '"9999-12-31T23:59:59-01:00"',
    '"9999-12-31T23:59:59.999999"',
    '"0001-01-01T00:00:00"',
    '"at(9999-12-31T23:59:59-01:00)"',
    '"at(0001-01-01T00:00:00+14:00)"',
    '"rate(99999999999999999999 minutes)"',
]

COMMAND: dict[str, Any] = {
    "when": "@hourly",
    "timezone": "Europe/Berlin",
    "max_number_executions": 5,
    "enabled": True,
    "timeout_seconds": 30,
    "note": "the user's own",
    "retry": {"attempts": 2, "backoff_seconds": 0, "max_backoff_seconds": 5},
    "deadline_seconds": 3600,
    "on_failure": {"command": ["true", "told"]},
    "history_limit": 3,
    "run": {
        "type": "command",
        "details": {"command": ["true", "x"], "cwd": "/", "env": {"A": "1"}},
    },
    "execution_count": 1,
    "last_run": "2025-12-31T23:00:00Z",
    "last_scheduled": "2025-12-31T23:00:00Z",
    "last_result": {"status": "ok", "exit_code": 0},
    "scheduled_from": {
        "fingerprint": '["@hourly", "Europe/Berlin", true]',
        "since": "2025-12-01T00:00:00Z",
    },
    # A dead claim (another host, deadline passed): the tick records it interrupted.
    "claim": {
        "id": "c1",
        "scheduled": "2025-12-31T23:00:00Z",
        "host": "elsewhere",
        "pid": 4242,
        "started": "2025-12-31T23:00:00Z",
        "deadline": "2025-12-31T23:10:00Z",
    },
    "history": [{"occurrence": "2025-12-31T23:00:00Z", "status": "ok", "attempt": 1}],
}
#: A retry waiting for its time instead of a claim.
PYTHON: dict[str, Any] = {
    **{name: value for name, value in COMMAND.items() if name != "claim"},
    "retry": {"attempts": 3, "backoff_seconds": 1, "on_interrupted": True},
    "retry_pending": {
        "scheduled": "2025-12-31T23:00:00Z",
        "attempt": 2,
        "at": "2026-01-01T00:30:00Z",
    },
    "run": {"type": "python", "details": {"script": "pass", "args": ["a"], "env": {"B": "2"}}},
}
LAMBDA: dict[str, Any] = {
    **COMMAND,
    "run": {
        "type": "lambda",
        "details": {"arn": "f", "payload": {"order": 1}, "invocation_type": "Event"},
    },
}


TWICE = (
    b'{"when": "@hourly", "when": "@daily", '
    b'"run": {"type": "command", "details": {"command": ["true"]}}}'
)


BASES = [COMMAND, PYTHON, LAMBDA]
PATHS = [(b, path) for b, base in enumerate(BASES) for path in places(base)]


def hostile_body(base: dict[str, Any], substitutions: list[tuple[tuple[Any, ...], str]]) -> bytes:
    document = json.loads(json.dumps(base))
    raw: list[str] = []
    for path, text in substitutions:
        target = document
        try:
            for step in path[:-1]:
                target = target[step]
            target[path[-1]] = f"{_MARK}{len(raw)}"
        except (KeyError, IndexError, TypeError):
            continue  # an earlier substitution replaced the parent
        raw.append(text)
    body = json.dumps(document, indent=2)
    for i, text in enumerate(raw):
        body = body.replace(json.dumps(f"{_MARK}{i}"), text)
    return body.encode()


substitution = st.tuples(st.sampled_from(range(len(PATHS))), st.sampled_from(HOSTILE)).map(
    lambda pair: (PATHS[pair[0]], pair[1])
)


@settings(
    max_examples=250,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(st.lists(substitution, min_size=1, max_size=3))
def test_a_hostile_value_anywhere_is_reported_or_runs_and_never_stops_the_tick(
    tmp_path_factory: Any, substitutions: list[tuple[tuple[int, tuple[Any, ...]], str]]
) -> None:
    base = BASES[substitutions[0][0][0]]
    body = hostile_body(
        base, [(path, text) for (b, path), text in substitutions if BASES[b] is base]
    )
    root = tmp_path_factory.mktemp("jobs")
    path = root / "hostile.json"
    path.write_bytes(body)
    os.utime(path, (PLACED.timestamp(), PLACED.timestamp()))
    before = path.stat().st_mtime_ns
    good = place(root, "good.json", command_job("@hourly", ["true"]), PLACED)
    registry = default_registry(frozenset({"command", "python"}))  # type: ignore[arg-type]
    with Engine(LocalStore(root), registry, clock=FakeClock(NOW)) as engine:
        report = engine.tick(NOW)
        rows = {row.key: row for row in inventory(engine.store, NOW)}
    # The other job always runs, and nothing was a store or internal error.
    assert read_json(good)["execution_count"] == 1
    assert (report.store_errors, report.internal_errors) == (0, 0), report.events
    job, problems, _ = load("hostile.json", body)
    events = [e for e in report.events if e.key == "hostile.json"]
    if job is None or job.run_type.value == "lambda":
        assert path.read_bytes() == body and path.stat().st_mtime_ns == before
        (event,) = [e for e in events if e.outcome is Outcome.INVALID]
        assert "\n" not in event.message
        assert rows["hostile.json"].status == "invalid" if job is None else True
        for problem in problems:
            assert problem.path or problem.message.startswith(("invalid JSON", "JSON", "not UTF"))
    else:
        # Valid: it ran (or was not due), and what the runner wrote reads back as valid.
        after = path.read_bytes() if path.exists() else None
        if after is not None:
            assert load("hostile.json", after)[0] is not None
        assert not [e for e in events if e.outcome is Outcome.INVALID]


@pytest.mark.parametrize(
    ("field", "raw", "message"),
    [
        ("timeout_seconds", "1" + "0" * 400, "timeout_seconds: a number of 401 digits"),
        ("note", "9" * 5000, "note: a number of 5000 digits; at most 64 are accepted"),
        ("timeout_seconds", "1e300", "timeout_seconds: must be more than 0 and at most 2592000"),
        ("timeout_seconds", "1e400", "timeout_seconds: the number 1e400 is too large"),
        ("max_number_executions", str(10**12), "max_number_executions: must be at most"),
        ("execution_count", str(2**63), "execution_count: must be at most 1000000000"),
        ("last_run", '"0001-01-01T00:00:00+01:00"', "last_run: "),
        ("last_run", '"1969-12-31T23:59:59Z"', "last_run: '1969-12-31T23:59:59Z' is outside 1970"),
        ("last_run", '"0001-01-01T00:00:00"', "last_run: '0001-01-01T00:00:00' is out of range"),
        ("note", '"\\ud800"', "note: holds a lone surrogate"),
    ],
)
def test_each_hostile_value_names_its_field(field: str, raw: str, message: str) -> None:
    body = hostile_body(COMMAND, [((field,), raw)])
    job, problems, _ = load("k.json", body)
    assert job is None
    assert any(message in str(p) for p in problems), [str(p) for p in problems]


def test_a_name_given_twice_is_invalid_and_named() -> None:
    body = TWICE
    job, problems, _ = load("k.json", body)
    assert job is None and [str(p) for p in problems] == ["when: is given more than once"]


def test_a_name_given_twice_deep_inside_is_named_with_its_path() -> None:
    body = (
        b'{"when": "@hourly", "run": {"type": "command", "details": '
        b'{"command": ["true"], "env": {"A": "1", "A": "2"}}}}'
    )
    _, problems, _ = load("k.json", body)
    assert [str(p) for p in problems] == ["run.details.env.A: is given more than once"]


@pytest.mark.parametrize(
    ("details", "message"),
    [
        ({"command": ["tr\x00ue"]}, "run.details.command[0]: contains a NUL character"),
        ({"command": ["true", "a\x00"]}, "run.details.command[1]: contains a NUL character"),
        ({"command": ["true"], "cwd": "/tm\x00p"}, "run.details.cwd: contains a NUL character"),
        ({"command": ["true"], "cwd": ""}, "run.details.cwd: must not be empty"),
        (
            {"command": ["true"], "shell": True},
            "run.details.shell: is not a field of a command job",
        ),
    ],
)
def test_what_no_process_can_be_started_with_is_refused_at_decode(
    details: dict[str, Any], message: str
) -> None:
    document = {"when": "@hourly", "run": {"type": "command", "details": details}}
    job, problems = problems_of("k.json", document)
    assert job is None
    assert any(message in str(p) for p in problems), [str(p) for p in problems]


def test_python_args_with_a_nul_and_unknown_details_are_refused() -> None:
    document = {
        "when": "@hourly",
        "run": {"type": "python", "details": {"script": "", "args": ["\x00"], "scipt": "x"}},
    }
    _, problems = problems_of("k.json", document)
    assert {p.path for p in problems} == {"run.details.args[0]", "run.details.scipt"}


def test_the_cli_reports_hostile_files_in_one_line_each_and_never_a_traceback(
    run_cli: Run, tmp_path: Path
) -> None:
    root = tmp_path / "jobs"
    root.mkdir()
    bodies = {
        "digits.json": hostile_body(COMMAND, [(("timeout_seconds",), "9" * 5000)]),
        "zeros.json": hostile_body(COMMAND, [(("timeout_seconds",), "1" + "0" * 400)]),
        "huge.json": hostile_body(COMMAND, [(("timeout_seconds",), "1e300")]),
        "lastrun.json": hostile_body(COMMAND, [(("last_run",), '"0001-01-01T00:00:00+01:00"')]),
        "surrogate.json": hostile_body(COMMAND, [(("note",), '"\\ud800"')]),
        "twice.json": TWICE,
    }
    for name, body in bodies.items():
        (root / name).write_bytes(body)
    good = place(root, "good.json", command_job("@hourly", ["true"]), PLACED)
    for args in (
        ("tick", "--now", "2026-01-01T01:00:00Z"),
        ("ls", "--now", "2026-01-01T01:00:00Z"),
        ("validate", *(str(root / name) for name in bodies)),
        ("show", "digits.json"),
    ):
        result = run_cli(*args)
        assert "Traceback" not in result.stderr + result.stdout, (args, result.stderr)
        if args[0] == "tick":
            assert result.returncode == 0
            invalid = [line for line in result.stderr.splitlines() if " invalid " in line]
            assert sorted(line.split(" ")[2].rstrip(":") for line in invalid) == sorted(bodies)
        if args[0] == "validate":
            assert result.returncode == 1
            assert len(result.stdout.splitlines() + result.stderr.splitlines()) >= len(bodies)
    assert read_json(good)["execution_count"] == 1
    for name, body in bodies.items():
        assert (root / name).read_bytes() == body


def test_runner_fields_at_the_edge_of_time_are_refused_not_overflowed() -> None:
    for field in ("last_run", "last_scheduled"):
        for raw in ('"9999-12-31T23:59:59-01:00"', '"0001-01-01T00:00:00+14:00"'):
            job, problems, _ = load("k.json", hostile_body(COMMAND, [((field,), raw)]))
            assert job is None and problems[0].path == field
    assert datetime.max.replace(tzinfo=UTC).year == 9999  # the edge these values sit past


@pytest.mark.parametrize(
    "when",
    ["at(1969-12-31T23:59:59Z)", "at(1960-01-01T00:00:00)", "at(9999-06-01T00:00:00Z)"],
)
def test_a_one_time_job_firing_outside_the_times_a_file_records_is_refused(when: str) -> None:
    # Accepted, it would either never run (before 1970) or write a file that no longer reads.
    job, problems = problems_of("k.json", command_job(when, ["true"]))
    assert job is None
    assert [p.path for p in problems] == ["when"]
    assert "outside 1970-01-01 to 9998-12-31 in UTC" in str(problems[0])


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@example(datetime(1970, 1, 1), "UTC")  # the first instant a file records
@example(datetime(9998, 12, 31), "Z")  # and the last
@given(
    st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30)),
    st.sampled_from(["UTC", "Pacific/Kiritimati", "Pacific/Pago_Pago", "Z", "+14:00", "-12:00"]),
)
def test_a_valid_one_time_job_runs_once_and_leaves_a_file_that_reads_back(
    tmp_path_factory: Any, moment: datetime, zone: str
) -> None:
    text = moment.isoformat()
    job_fields: dict[str, Any] = {"max_number_executions": 0}
    if zone in ("Z", "+14:00", "-12:00"):
        text += zone
    else:
        job_fields["timezone"] = zone
    document = command_job(f"at({text})", ["true"], **job_fields)
    job, _ = problems_of("k.json", document)
    if job is None:
        return
    root = tmp_path_factory.mktemp("jobs")
    path = place(root, "once.json", document, PLACED)
    fires = job.schedule.next_after(datetime.min.replace(tzinfo=UTC))
    assert fires is not None
    now = max(fires, NOW)
    with Engine(LocalStore(root), default_registry(), clock=FakeClock(NOW)) as engine:
        report = engine.tick(now)
    assert report.ran == 1, report.events
    written, problems, _ = load("once.json", path.read_bytes())
    assert written is not None, problems
