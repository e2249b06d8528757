"""Job documents: validation with field paths, defaults, and write-back that keeps user fields."""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from helpers import SEED_COMMAND, SEED_PYTHON, places, utc
from lambdacron.actions.command import CommandSpec
from lambdacron.actions.lambda_ import InvocationType, LambdaSpec
from lambdacron.actions.python import PythonSpec
from lambdacron.errors import MAX_MESSAGE_CHARS, MAX_PATH_CHARS, JobError
from lambdacron.job import Job, RunType
from lambdacron.jobfile import (
    decode,
    describe_problems,
    encode,
    load,
    problems_of,
    warnings_of,
    with_runner_fields,
)
from lambdacron.logs import printable


def valid(key: str, document: Any) -> Job:
    job, found = problems_of(key, document)
    assert job is not None and not found, found
    return job


def problems(document: Any) -> list[str]:
    return [str(p) for p in problems_of("k.json", document)[1]]


def one_problem(document: Any) -> str:
    found = problems(document)
    assert len(found) == 1, found
    return found[0]


def run(kind: str, **details: Any) -> dict[str, Any]:
    return {"when": "@daily", "run": {"type": kind, "details": details}}


class TestTheSeedSamples:
    def test_the_command_sample_is_valid(self) -> None:
        job = valid("a.json", SEED_COMMAND)
        assert job.run_type is RunType.COMMAND
        assert job.action == CommandSpec(("ls", "-Fal"))
        assert job.max_number_executions == 0

    def test_the_python_sample_is_valid(self) -> None:
        job = valid("b.json", SEED_PYTHON)
        assert isinstance(job.action, PythonSpec) and "range(1,10)" in job.action.script
        assert job.max_number_executions == 3


class TestDefaults:
    def test_defaults_of_optional_fields(self) -> None:
        job = valid("a.json", {"when": "@daily", "run": SEED_COMMAND["run"]})
        assert (job.timezone, job.enabled, job.timeout_seconds, job.max_number_executions) == (
            "UTC",
            True,
            300.0,
            0,
        )

    def test_a_one_time_job_runs_once_unless_it_says_otherwise(self) -> None:
        at = {"when": "at(2026-12-01T18:30:00)", "run": SEED_COMMAND["run"]}
        assert valid("a.json", at).max_number_executions == 1
        assert valid("a.json", {**at, "max_number_executions": 0}).max_number_executions == 0

    def test_lambda_defaults_to_an_asynchronous_event(self) -> None:
        job = valid("a.json", run("lambda", function_name="place-order"))
        assert job.action == LambdaSpec("place-order", {}, InvocationType.EVENT)


class TestRunnerFields:
    def test_times_written_by_earlier_versions_are_read_as_utc(self) -> None:
        for stamp in ("2018-03-01T10:00:00.123456", "2018-03-01T10:00:00"):
            job = valid("a.json", {**SEED_COMMAND, "last_run": stamp, "execution_count": 2})
            assert job.state.last_run is not None
            assert job.state.last_run.replace(microsecond=0) == utc(2018, 3, 1, 10)
            assert job.state.execution_count == 2

    def test_write_back_keeps_every_user_field_and_its_order(self) -> None:
        document = {
            "note": "customer 42",
            "when": "@daily",
            "nested": {"a": [1, 2.5, None, True], "b": {"deep": "x"}},
            "run": SEED_COMMAND["run"],
            "big": 12345678901234567890,
            "float": 1.0,
            "last_run": "2018-03-01T10:00:00",
        }
        updated = with_runner_fields(
            document, {"last_run": "2026-01-01T00:00:00Z", "execution_count": 1}
        )
        round_trip = decode(encode(updated))
        for name, value in document.items():
            if name != "last_run":
                assert round_trip[name] == value
                assert type(round_trip[name]) is type(value)
        assert list(round_trip)[:4] == ["note", "when", "nested", "run"]
        assert round_trip["last_run"] == "2026-01-01T00:00:00Z"

    def test_only_runner_fields_can_be_replaced(self) -> None:
        with pytest.raises(ValueError, match="not runner-owned"):
            with_runner_fields({}, {"when": "@hourly"})


class TestBadInput:
    @pytest.mark.parametrize(
        ("document", "message"),
        [
            ([1, 2], "a job must be a JSON object, got a list"),
            ("x", "a job must be a JSON object, got a string"),
            ({"run": SEED_COMMAND["run"]}, 'when: is required: a schedule such as "30 18 * * *"'),
            ({**SEED_COMMAND, "when": 5}, "when: must be a string, got a number"),
            ({**SEED_COMMAND, "when": "61 * * * *"}, "when: minute: 61 is out of range 0-59"),
            ({**SEED_COMMAND, "timezone": "Mars/Base"}, "timezone: unknown time zone 'Mars/Base'"),
            ({**SEED_COMMAND, "timezone": 1}, "timezone: must be a string, got a number"),
            (
                {**SEED_COMMAND, "max_number_executions": -1},
                "max_number_executions: must be 0 (unlimited) or more, got -1",
            ),
            (
                {**SEED_COMMAND, "max_number_executions": 1.5},
                "max_number_executions: must be a whole number, got a number",
            ),
            (
                {**SEED_COMMAND, "max_number_executions": "3"},
                "max_number_executions: must be a whole number, got a string",
            ),
            (
                {**SEED_COMMAND, "max_number_executions": True},
                "max_number_executions: must be a whole number, got true/false",
            ),
            ({**SEED_COMMAND, "enabled": "yes"}, "enabled: must be true/false, got a string"),
            (
                {**SEED_COMMAND, "timeout_seconds": 0},
                "timeout_seconds: must be more than 0 and at most 2592000 seconds (30 days), got 0",
            ),
            (
                {**SEED_COMMAND, "timeout_seconds": "60"},
                "timeout_seconds: must be a number, got a string",
            ),
            ({"when": "@daily"}, 'run: is required: {"type": "command", "details": {...}}'),
            ({"when": "@daily", "run": []}, "run: must be an object, got a list"),
            (
                {"when": "@daily", "run": {"type": "ftp", "details": {}}},
                'run.type: must be one of command, python, lambda, got "ftp"',
            ),
            ({"when": "@daily", "run": {"type": "command"}}, "run.details: is required"),
            (
                run("command", command="ls -Fal"),
                'run.details.command: must be a list of arguments such as ["ls", "-Fal"], not a '
                'string; for shell syntax write ["bash", "-c", "ls -Fal"]',
            ),
            (run("command", command=[]), "run.details.command: must not be empty"),
            (run("command", command=["ls", 3]), "run.details.command[1]: must be a string, got a"),
            (run("command"), "run.details.command: is required"),
            (
                run("command", command=["ls"], env={"A": 1}),
                "run.details.env.A: must be a string, got a number",
            ),
            (run("command", command=["ls"], cwd=5), "run.details.cwd: must be a string"),
            (run("python"), "run.details.script: is required: the Python source to run"),
            (
                run("python", script="print(1)", args="x"),
                "run.details.args: must be a list of strings, got a string",
            ),
            (
                run("lambda", payload={}),
                "run.details.arn: is required (or function_name): the function to invoke",
            ),
            (
                run("lambda", arn="f", invocation_type="DryRun"),
                "run.details.invocation_type: must be Event or RequestResponse, got 'DryRun'",
            ),
            (
                {**SEED_COMMAND, "last_run": "yesterday"},
                "last_run: 'yesterday' is not an ISO 8601 time",
            ),
            ({**SEED_COMMAND, "last_scheduled": 7}, "last_scheduled: must be an ISO 8601 time"),
            ({**SEED_COMMAND, "execution_count": -2}, "execution_count: must be 0 or more, got -2"),
            (
                {**SEED_COMMAND, "execution_count": "2"},
                "execution_count: must be a whole number, got a string",
            ),
            ({**SEED_COMMAND, "last_result": "ok"}, "last_result: must be an object, got a string"),
            ({**SEED_COMMAND, "claim": {"id": 1}}, "claim: is damaged"),
        ],
    )
    def test_each_problem_names_the_field(self, document: Any, message: str) -> None:
        assert message in one_problem(document)

    def test_every_problem_is_reported_at_once(self) -> None:
        found = problems({"when": "99 * * * *", "enabled": 1, "run": {"type": "x"}})
        assert [p.split(":")[0] for p in found] == ["when", "enabled", "run.type"]

    @pytest.mark.parametrize(
        ("kind", "limit"), [("Event", 1024 * 1024), ("RequestResponse", 6 * 1024 * 1024)]
    )
    def test_a_payload_larger_than_lambda_accepts(self, kind: str, limit: int) -> None:
        fits = {"data": "x" * (limit - 20)}
        assert not problems(run("lambda", arn="f", invocation_type=kind, payload=fits))
        too_big = {"data": "x" * limit}
        assert f"Lambda accepts at most {limit} bytes for {kind}" in one_problem(
            run("lambda", arn="f", invocation_type=kind, payload=too_big)
        )

    @pytest.mark.parametrize(
        "function",
        [
            "f",
            "my-function_2.0",
            "arn:aws:lambda:us-east-1:123456789012:function:f",
            "arn:aws:lambda:us-east-1:123456789012:function:f:$LATEST",
            "123456789012:function:f:prod",
            "arn:aws-eusc:lambda:eusc-de-east-1:123456789012:function:f",  # a newer partition
        ],
    )
    def test_any_function_name_or_arn_invoke_takes_is_a_job(self, function: str) -> None:
        for field in ("arn", "function_name"):
            assert not problems(run("lambda", **{field: function}))

    @pytest.mark.parametrize(
        "function", ["my function", "a/b", "fünf", "f\n", "x" * 257, "arn:aws:lambda:*"]
    )
    def test_a_function_no_invoke_takes_names_its_field(self, function: str) -> None:
        for field in ("arn", "function_name"):
            found = one_problem(run("lambda", **{field: function}))
            assert found.startswith(f"run.details.{field}: ")
            assert "is no Lambda function's name or ARN" in found


class TestDecoding:
    @pytest.mark.parametrize(
        ("body", "message"),
        [
            (b"", "the file is empty; a job is a JSON object"),
            (b"  \n", "the file is empty"),
            (b'{"when": ', "invalid JSON: Expecting value at line 1 column 10"),
            (b'{"a": NaN}', "invalid JSON: NaN is not a JSON number"),
            (b"\xff\xfe", "not UTF-8 text"),
            (b"[" * 100_000 + b"]" * 100_000, "JSON nested too deeply (limit 64)"),
            (b"[" * 70 + b"]" * 70, "JSON nested too deeply (limit 64)"),
        ],
    )
    def test_bad_bytes_give_one_clear_problem(self, body: bytes, message: str) -> None:
        job, found, document = load("k.json", body)
        assert job is None and document is None
        assert len(found) == 1 and message in str(found[0])

    def test_a_byte_order_mark_is_accepted(self) -> None:
        job, found, _ = load("k.json", b"\xef\xbb\xbf" + json.dumps(SEED_COMMAND).encode())
        assert job is not None and not found

    def test_errors_are_job_errors_with_a_path(self) -> None:
        job, found = problems_of("k.json", {**SEED_COMMAND, "enabled": 0})
        assert job is None
        assert [(type(p), p.path) for p in found] == [(JobError, "enabled")]


#: JSON values, nested a little: the documents a job may hold in its own fields.
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.text(min_size=1, max_size=4), inner, max_size=3)
    ),
    max_leaves=8,
)
#: What no JSON file can hold, each as the encoder meets it.
_POISON = st.sampled_from([float("nan"), float("inf"), {1, 2}, b"x", object(), "\udc80", 1e400])


def _slots(value: Any, path: str) -> list[tuple[str, Any, Any]]:
    """Every place in ``value`` a value can be put: (its path, its container, the key)."""
    found: list[tuple[str, Any, Any]] = []
    items = value.items() if isinstance(value, dict) else enumerate(value)
    for name, item in list(items):
        inner = f"{path}[{name}]" if isinstance(value, list) else f"{path}.{name}" if path else name
        found.append((inner, value, name))
        if isinstance(item, dict | list) and item:
            found.extend(_slots(item, inner))
    return found


class TestEncoding:
    @settings(max_examples=150, deadline=None)
    @given(
        document=st.dictionaries(st.text(min_size=1, max_size=4), _JSON, min_size=1, max_size=4),
        poison=_POISON,
        data=st.data(),
    )
    def test_what_json_cannot_hold_is_refused_naming_its_field(
        self, document: dict[str, Any], poison: Any, data: st.DataObject
    ) -> None:
        # The oracle: the path of the one place the poison was put.
        path, container, name = data.draw(st.sampled_from(_slots(document, "")))
        container[name] = poison
        with pytest.raises(JobError) as caught:
            encode(document)
        assert caught.value.path == path, (document, str(caught.value))
        assert str(caught.value).startswith(f"{path}: cannot be written as JSON: ")


@pytest.fixture(scope="module")
def schema() -> Any:
    return json.loads(resources.files("lambdacron").joinpath("job.schema.json").read_text())


class TestTheJsonSchema:
    def test_it_is_a_valid_schema_and_accepts_the_seed_samples(self, schema: Any) -> None:
        from jsonschema import Draft202012Validator

        Draft202012Validator.check_schema(schema)
        validator = Draft202012Validator(schema)
        for sample in (SEED_COMMAND, SEED_PYTHON, run("lambda", arn="f", payload=[1])):
            assert not list(validator.iter_errors(sample))

    @pytest.mark.parametrize(
        "document",
        [
            {"run": SEED_COMMAND["run"]},
            run("command", command="ls -Fal"),
            run("command", command=[]),
            run("python"),
            run("lambda"),
            {**SEED_COMMAND, "max_number_executions": -1},
            {"when": "@daily", "run": {"type": "ftp", "details": {}}},
        ],
    )
    def test_it_rejects_what_the_validator_rejects(self, schema: Any, document: Any) -> None:
        from jsonschema import Draft202012Validator

        assert problems(document)
        assert list(Draft202012Validator(schema).iter_errors(document))


#: Valid jobs of each kind, with the optional fields that take text.
_RICH_JOBS: list[dict[str, Any]] = [
    {
        "when": "30 18 * * *",
        "timezone": "Europe/Berlin",
        "on_failure": {"sns": "arn:aws:sns:us-east-1:123456789012:t"},
        "retry": {"attempts": 2},
        "run": {"type": "command", "details": {"command": ["true"], "cwd": "/", "env": {"A": "1"}}},
    },
    {"when": "rate(5 minutes)", "run": {"type": "python", "details": {"script": "pass"}}},
    {
        "when": "at(2026-12-01T18:30:00)",
        "run": {
            "type": "lambda",
            "details": {"function_name": "f", "invocation_type": "Event", "payload": {"a": [1]}},
        },
    },
]


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_a_huge_value_or_name_anywhere_is_still_one_short_line(data: st.DataObject) -> None:
    # A file's values are quoted in the messages about them: a 100 KB `when` or field name
    # made a line nobody could read. Each line keeps the start and the end of what it says.
    document = json.loads(json.dumps(data.draw(st.sampled_from(_RICH_JOBS))))
    place = data.draw(st.sampled_from(places(document)))
    huge = data.draw(
        st.one_of(
            st.text(min_size=1, max_size=3).map(lambda s: s * 20_000),
            st.text(alphabet="0123456789 *,-/LW#?", min_size=2000, max_size=4000),
        )
    )
    *parents, last = place
    target = document
    for name in parents:
        target = target[name]
    if isinstance(target, dict) and data.draw(st.booleans()):
        target[huge] = 1  # as the name of a field
    else:
        target[last] = huge
    key = "a.json"
    _, problems, _ = load(key, encode(document))
    bound = len(key) + 2 + MAX_PATH_CHARS + 2 + MAX_MESSAGE_CHARS
    for problem in [*problems, *warnings_of(document)]:
        (said,) = describe_problems(key, [problem])
        assert len(said) <= bound, said[:200]
        # As a terminal or a log shows it: a control character becomes a visible escape of
        # at most 6 characters (\u2028), never a line break.
        line = printable(said)
        assert line.splitlines() == [line] and len(line) <= 6 * bound
