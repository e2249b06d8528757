"""Bad input, through the real CLI: one clear line naming the file and the problem, and the
file left byte for byte as it was. Plus arbitrary documents thrown at the validator and
the tick."""

from __future__ import annotations

import json
import os
import string
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import Run
from helpers import FakeClock, command_job, place, read_json, utc
from lambdacron.actions import default_registry
from lambdacron.engine import Engine, Outcome
from lambdacron.jobfile import decode, problems_of
from lambdacron.store import LocalStore

RUN = {"type": "command", "details": {"command": ["true"]}}


def doc(**fields: Any) -> bytes:
    return json.dumps({"when": "@hourly", "run": RUN, **fields}).encode()


def details(kind: str, **fields: Any) -> bytes:
    return json.dumps({"when": "@hourly", "run": {"type": kind, "details": fields}}).encode()


# (file name, bytes, what its one line must say)
CASES: list[tuple[str, bytes, str]] = [
    ("empty.json", b"", "the file is empty; a job is a JSON object"),
    ("invalid.json", b'{"when": "@hourly",', "invalid JSON: Expecting property name enclosed"),
    ("not-object.json", b'["@hourly"]', "a job must be a JSON object, got a list"),
    ("deep.json", b"[" * 50_000 + b"]" * 50_000, "JSON nested too deeply (limit 64)"),
    (
        "big.json",
        b'{"pad": "' + b"x" * (50 * 1024 * 1024) + b'"}',
        "52428811 bytes is over the 8388608-byte limit",
    ),
    ("no-when.json", json.dumps({"run": RUN}).encode(), "when: is required"),
    ("minute.json", doc(when="75 * * * *"), "when: minute: 75 is out of range 0-59"),
    ("range.json", doc(when="0 5-1 * * *"), "when: hour: range '5-1' runs backwards"),
    ("seventh.json", doc(when="0 30 18 * * * 5"), "when: field 7: must be '*', got '5'"),
    ("fields.json", doc(when="* * *"), "when: expected 5 fields"),
    ("nick.json", doc(when="@reboot"), "when: unknown nickname '@reboot'"),
    ("at.json", doc(when="at(soon)"), "when: at: 'soon' is not an ISO 8601 time"),
    ("rate.json", doc(when="rate(0 minutes)"), "when: rate: the number in 'rate(0 minutes)'"),
    ("never.json", doc(when="0 0 30 2 *"), "when: day-of-month: day 30 never occurs in FEB"),
    ("question.json", doc(when="0 0 ? * ?"), "may stand in day-of-month or day-of-week, not both"),
    (
        "type.json",
        json.dumps({"when": "@hourly", "run": {"type": "ftp", "details": {}}}).encode(),
        'run.type: must be one of command, python, lambda, got "ftp"',
    ),
    (
        "cmd-string.json",
        details("command", command="ls -l"),
        'run.details.command: must be a list of arguments such as ["ls", "-Fal"], not a string',
    ),
    ("cmd-empty.json", details("command", command=[]), "run.details.command: must not be empty"),
    (
        "cmd-items.json",
        details("command", command=["ls", 1]),
        "run.details.command[1]: must be a string, got a number",
    ),
    ("py-script.json", details("python"), "run.details.script: is required"),
    ("lambda-fn.json", details("lambda", payload={}), "run.details.arn: is required"),
    (
        "payload.json",
        details("lambda", arn="f", payload={"x": "y" * (1024 * 1024)}),
        "run.details.payload: is 1048585 bytes; Lambda accepts at most 1048576 bytes for Event",
    ),
    (
        "max-negative.json",
        doc(max_number_executions=-1),
        "max_number_executions: must be 0 (unlimited) or more, got -1",
    ),
    (
        "max-float.json",
        doc(max_number_executions=2.5),
        "max_number_executions: must be a whole number, got a number",
    ),
    ("when-type.json", doc(when=["@hourly"]), "when: must be a string, got a list"),
    ("tz-type.json", doc(timezone=1), "timezone: must be a string, got a number"),
    (
        "tz-unknown.json",
        doc(timezone="Europe/Atlantis"),
        "timezone: unknown time zone 'Europe/Atlantis'",
    ),
    ("enabled-type.json", doc(enabled="no"), "enabled: must be true/false, got a string"),
    ("timeout-type.json", doc(timeout_seconds="5"), "timeout_seconds: must be a number"),
    (
        "run-type.json",
        json.dumps({"when": "@hourly", "run": "ls"}).encode(),
        "run: must be an object, got a string",
    ),
    (
        "details-type.json",
        json.dumps({"when": "@hourly", "run": {"type": "command", "details": []}}).encode(),
        "run.details: must be an object, got a list",
    ),
    ("cwd-type.json", details("command", command=["ls"], cwd=1), "run.details.cwd: must be a"),
    ("env-type.json", details("command", command=["ls"], env=["A=1"]), "run.details.env: must be"),
    ("args-type.json", details("python", script="", args="a"), "run.details.args: must be a list"),
    (
        "invocation.json",
        details("lambda", arn="f", invocation_type=1),
        "run.details.invocation_type: must be a string, got a number",
    ),
    ("last-run.json", doc(last_run="yesterday"), "last_run: 'yesterday' is not an ISO 8601 time"),
    ("count.json", doc(execution_count="3"), "execution_count: must be a whole number"),
    ("result.json", doc(last_result=[]), "last_result: must be an object, got a list"),
    ("claim.json", doc(claim={"id": 5}), "claim: is damaged; remove the claim field"),
    ("from.json", doc(scheduled_from={"since": "x"}), "scheduled_from.since: 'x' is not an ISO"),
]


def test_every_bad_file_gets_one_line_and_stays_byte_for_byte(run_cli: Run, tmp_path: Path) -> None:
    root = tmp_path / "jobs"
    root.mkdir()
    for name, body, _ in CASES:
        (root / name).write_bytes(body)
    outside = tmp_path / "outside.json"
    outside.write_bytes(doc())
    (root / "link.json").symlink_to(outside)  # leads out of the store: named, never read
    good = place(root, "good.json", command_job("@hourly", ["true"]), utc(2026, 1, 1))
    before = {name: (root / name).stat() for name, _, _ in CASES}
    result = run_cli("tick", "--now", "2026-01-01T01:00:00Z")
    assert result.returncode == 0
    assert "Traceback" not in result.stderr
    lines = {
        line.split(" ", 2)[2].split(":", 1)[0]: line
        for line in result.stderr.splitlines()
        if " invalid " in line
    }
    for name, body, message in CASES:
        line = lines[name]
        assert line.endswith("(skipped; file left as it is)"), line
        assert message in line, (name, line)
        assert (root / name).read_bytes() == body
        assert (root / name).stat().st_mtime_ns == before[name].st_mtime_ns
    assert lines["link.json"].endswith(
        "invalid link.json: a symbolic link that leads out of the store"
        " (skipped; file left as it is)"
    )
    bad = len(CASES) + 1
    assert f"{bad + 1} jobs, 1 due, 1 ran, 0 failed, {bad} invalid" in result.stdout
    assert read_json(good)["execution_count"] == 1
    assert outside.read_bytes() == doc()


def test_the_size_limit_is_a_setting(run_cli: Run, tmp_path: Path) -> None:
    root = tmp_path / "jobs"
    root.mkdir()
    (root / "padded.json").write_bytes(doc(pad="x" * 2000))
    result = run_cli(
        "tick", "--now", "2026-01-01T01:00:00Z", env={"LAMBDACRON_MAX_JOB_BYTES": "1000"}
    )
    assert "invalid padded.json: 2" in result.stderr and "over the 1000-byte limit" in result.stderr


# --------------------------------------------------------------------------- properties

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=20,
)
field_names = st.sampled_from(
    [
        "when",
        "timezone",
        "max_number_executions",
        "enabled",
        "timeout_seconds",
        "run",
        "execution_count",
        "last_run",
        "last_scheduled",
        "last_result",
        "claim",
        "scheduled_from",
    ]
)
# Documents that look like jobs: known fields with arbitrary values, the likeliest mistakes.
job_like = st.dictionaries(
    field_names, json_values | st.text(string.printable, max_size=30), max_size=8
)
documents = st.one_of(
    json_values, job_like, job_like.map(lambda d: {"when": "@hourly", "run": RUN, **d})
)
PROFILE = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


@PROFILE
@given(documents)
def test_the_validator_never_raises_on_any_json(document: Any) -> None:
    job, problems = problems_of("k.json", document)
    assert (job is None) == bool(problems)
    for problem in problems:
        assert str(problem) and "\n" not in str(problem)


@PROFILE
@given(st.binary(max_size=300) | st.text(max_size=300).map(str.encode))
def test_decoding_never_raises_on_any_bytes(body: bytes) -> None:
    try:
        decode(body)
    except ValueError as exc:  # JobError is a ValueError; nothing else may escape
        assert type(exc).__name__ == "JobError"


@PROFILE
@given(documents)
def test_the_tick_survives_any_document_and_still_runs_valid_jobs(
    tmp_path_factory: Any, document: Any
) -> None:
    root = tmp_path_factory.mktemp("jobs")
    body = json.dumps(document).encode()
    path = root / "any.json"
    path.write_bytes(body)
    stamp = datetime(2026, 1, 1, tzinfo=UTC).timestamp()
    os.utime(path, (stamp, stamp))
    good = place(root, "good.json", command_job("@hourly", ["true"]), utc(2026, 1, 1))
    with Engine(LocalStore(root), default_registry(), clock=FakeClock(utc(2026, 1, 1))) as engine:
        report = engine.tick(utc(2026, 1, 1, 1))
    assert read_json(good)["execution_count"] == 1
    job, _ = problems_of("any.json", document)
    if job is None:
        assert path.read_bytes() == body
        assert any(e.key == "any.json" and e.outcome is Outcome.INVALID for e in report.events)
    assert report.store_errors == 0
