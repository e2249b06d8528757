"""Failure notices: the ``on_failure`` parser, the notice's shape, and local delivery by a
real command. The AWS destinations are in tests/aws/test_notify_aws.py."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import Run
from helpers import utc
from lambdacron.actions.base import Status
from lambdacron.config import Settings
from lambdacron.errors import JobError, LambdacronError, UsageError
from lambdacron.fields import Problems
from lambdacron.notify import (
    MAX_NOTICE_BYTES,
    DeliveryOutcome,
    Destination,
    Notice,
    NoticeKind,
    NoticeReason,
    Notifier,
    check_destination,
    destination_for,
    parse_destination,
)

TOPIC = "arn:aws:sns:us-east-1:123456789012:alerts"
QUEUE = "https://sqs.us-east-1.amazonaws.com/123456789012/alerts"

VALID = [
    {"sns": TOPIC},
    {"sns": "arn:aws-cn:sns:cn-north-1:123456789012:alerts.fifo"},
    {"sns": "arn:aws-us-gov:sns:us-gov-west-1:123456789012:a_b-c"},
    {"sqs": QUEUE},
    {"sqs": "https://sqs.cn-north-1.amazonaws.com.cn/123456789012/q.fifo"},
    {"sqs": "http://127.0.0.1:4566/000000000000/local-queue"},
    {"lambda": "notify-me"},
    {"lambda": "notify-me:$LATEST"},
    {"lambda": "arn:aws:lambda:eu-central-1:123456789012:function:notify-me"},
    {"lambda": "arn:aws:lambda:eu-central-1:123456789012:function:notify-me:prod"},
    {"command": ["mail", "-s", "lambdacron", "ops@example.com"]},
    {"command": ["/usr/local/bin/pager duty"]},
]

ARN_SHAPE = "expected an SNS topic ARN (arn:aws:sns:REGION:ACCOUNT:NAME)"
QUEUE_SHAPE = "expected an SQS queue URL (https://sqs.REGION.amazonaws.com/ACCOUNT/NAME)"
FUNCTION_SHAPE = (
    "expected a Lambda function name or ARN (arn:aws:lambda:REGION:ACCOUNT:function:NAME)"
)
ONE_OF = '{"sns": TOPIC_ARN}, {"sqs": QUEUE_URL}, {"lambda": FUNCTION} or {"command": [...]}'


class TestParseDestination:
    @pytest.mark.parametrize("value", VALID, ids=lambda v: json.dumps(v)[:50])
    def test_each_valid_form_parses_and_gives_back_what_was_written(self, value: Any) -> None:
        destination = parse_destination(value)
        (name,) = value
        assert destination.kind is NoticeKind(name)
        expected = tuple(value[name]) if name == "command" else value[name]
        assert destination.target == expected
        assert destination.to_json() == value

    @pytest.mark.parametrize(
        ("value", "message"),
        [
            ({"sns": "foo"}, f"on_failure.sns: {ARN_SHAPE}, got 'foo'"),
            # another service's ARN, another partition, a short account, no name
            (
                {"sns": "arn:aws:sqs:us-east-1:123456789012:q"},
                f"on_failure.sns: {ARN_SHAPE}, got 'arn:aws:sqs:us-east-1:123456789012:q'",
            ),
            (
                {"sns": "arn:aws-xx:sns:us-east-1:123456789012:t"},
                f"on_failure.sns: {ARN_SHAPE}, got 'arn:aws-xx:sns:us-east-1:123456789012:t'",
            ),
            (
                {"sns": "arn:aws:sns:us-east-1:1234:t"},
                f"on_failure.sns: {ARN_SHAPE}, got 'arn:aws:sns:us-east-1:1234:t'",
            ),
            ({"sns": 12}, f"on_failure.sns: {ARN_SHAPE}, got a number"),
            ({"sns": None}, f"on_failure.sns: {ARN_SHAPE}, got null"),
            (
                {"sqs": "arn:aws:sqs:us-east-1:123456789012:q"},
                f"on_failure.sqs: {QUEUE_SHAPE}, got 'arn:aws:sqs:us-east-1:123456789012:q'",
            ),
            (
                {"sqs": "https://sqs.us-east-1.amazonaws.com/q"},
                f"on_failure.sqs: {QUEUE_SHAPE}, got 'https://sqs.us-east-1.amazonaws.com/q'",
            ),
            ({"lambda": ""}, f"on_failure.lambda: {FUNCTION_SHAPE}, got ''"),
            ({"lambda": "has space"}, f"on_failure.lambda: {FUNCTION_SHAPE}, got 'has space'"),
            (
                {"lambda": "arn:aws:lambda:us-east-1:123456789012:layer:x"},
                f"on_failure.lambda: {FUNCTION_SHAPE},"
                " got 'arn:aws:lambda:us-east-1:123456789012:layer:x'",
            ),
            (
                {"command": "mail ops@example.com"},
                'on_failure.command: expected a non-empty list of arguments ["prog", ...],'
                " got 'mail ops@example.com'",
            ),
            (
                {"command": []},
                'on_failure.command: expected a non-empty list of arguments ["prog", ...],'
                " got an empty list",
            ),
            ({"command": ["mail", 3]}, "on_failure.command[1]: must be a string, got a number"),
            ({"command": [""]}, "on_failure.command[0]: must not be empty"),
            (
                {"command": ["a\0b"]},
                "on_failure.command[0]: contains a NUL character, which no process argument"
                " can hold",
            ),
            ({}, f"on_failure: must name one destination: {ONE_OF}"),
            ({"sns": TOPIC, "sqs": QUEUE}, "on_failure: names sns and sqs; give exactly one"),
            (
                {"email": "ops@example.com"},
                "on_failure.email: is not a destination (known: sns, sqs, lambda, command)",
            ),
            (
                {"sns": TOPIC, "emial": "x"},
                "on_failure.emial: is not a destination (known: sns, sqs, lambda, command)",
            ),
            (TOPIC, f"on_failure: must be an object such as {ONE_OF}, got a string"),
            (None, f"on_failure: must be an object such as {ONE_OF}, got null"),
            ([{"sns": TOPIC}], f"on_failure: must be an object such as {ONE_OF}, got a list"),
        ],
    )
    def test_a_bad_value_names_the_field_and_the_problem(self, value: Any, message: str) -> None:
        with pytest.raises(JobError) as caught:
            parse_destination(value)
        assert str(caught.value).startswith(message)
        assert caught.value.path == message.split(": ")[0]

    def test_a_long_bad_value_is_quoted_short(self) -> None:
        with pytest.raises(JobError) as caught:
            parse_destination({"sns": "x" * 10_000})
        assert len(str(caught.value)) < 250

    def test_every_problem_is_collected_with_its_path(self) -> None:
        problems = Problems()
        found = check_destination({"command": ["ok", 1, "", "n\0ul"]}, problems, "jobs.on_failure")
        assert found is None
        assert [p.path for p in problems.items] == [
            "jobs.on_failure.command[1]",
            "jobs.on_failure.command[2]",
            "jobs.on_failure.command[3]",
        ]

    def test_a_valid_value_adds_no_problem(self) -> None:
        problems = Problems()
        assert check_destination({"sqs": QUEUE}, problems) == Destination(NoticeKind.SQS, QUEUE)
        assert problems.items == []

    def test_the_job_default_or_the_store_default(self) -> None:
        own = Destination(NoticeKind.SNS, TOPIC)
        store = Destination(NoticeKind.SQS, QUEUE)
        assert destination_for(own, store) is own
        assert destination_for(None, store) is store
        assert destination_for(None, None) is None


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(["sns", "sqs", "lambda", "command", "x"]) | st.text(max_size=5),
            children,
            max_size=3,
        )
    ),
    max_leaves=12,
)

valid_values = st.one_of(
    st.builds(
        lambda part, name: {"sns": f"arn:{part}:sns:eu-west-1:123456789012:{name}"},
        st.sampled_from(["aws", "aws-cn", "aws-us-gov"]),
        st.from_regex(r"[A-Za-z0-9_-]{1,40}(\.fifo)?", fullmatch=True),
    ),
    st.builds(
        lambda name: {"sqs": f"https://sqs.eu-west-1.amazonaws.com/123456789012/{name}"},
        st.from_regex(r"[A-Za-z0-9_-]{1,40}", fullmatch=True),
    ),
    st.builds(lambda name: {"lambda": name}, st.from_regex(r"[A-Za-z0-9_-]{1,64}", fullmatch=True)),
    st.builds(
        lambda argv: {"command": argv},
        st.lists(st.text(min_size=1).filter(lambda s: "\0" not in s), min_size=1, max_size=5),
    ),
)


class TestParserProperties:
    @settings(max_examples=300, deadline=None)
    @given(json_values)
    def test_any_json_value_parses_or_is_one_lambdacron_error(self, value: Any) -> None:
        try:
            destination = parse_destination(value)
        except JobError as exc:
            assert isinstance(exc, LambdacronError)
            assert exc.path == "on_failure" or exc.path.startswith(("on_failure.", "on_failure["))
            return
        assert parse_destination(destination.to_json()) == destination
        assert destination.to_json() == value

    @settings(max_examples=200, deadline=None)
    @given(valid_values)
    def test_every_valid_form_round_trips(self, value: dict[str, Any]) -> None:
        destination = parse_destination(value)
        assert destination.to_json() == value
        assert parse_destination(json.loads(json.dumps(destination.to_json()))) == destination


RESULT = {
    "status": "failed",
    "exit_code": 3,
    "started": "2026-12-01T18:30:01Z",
    "duration_ms": 120,
    "output": "vendor closed",
    "error": "exited with status 3",
}
RUN = {"type": "command", "details": {"command": ["place-order", "1234"]}}


def notice(**changes: Any) -> Notice:
    fields: dict[str, Any] = {
        "key": "orders/1234.json",
        "store": "s3://my-jobs/jobs/",
        "occurrence": utc(2026, 12, 1, 18, 30),
        "reason": NoticeReason.FAILED,
        "attempts": 1,
        "last_result": RESULT,
        "run": RUN,
        "sent_at": utc(2026, 12, 1, 18, 31, 5),
    }
    fields.update(changes)
    return Notice(**fields)


class TestNotice:
    def test_the_documented_shape(self) -> None:
        assert notice().to_json() == {
            "lambdacron_notice": 1,
            "reason": "failed",
            "key": "orders/1234.json",
            "store": "s3://my-jobs/jobs/",
            "occurrence": "2026-12-01T18:30:00Z",
            "attempts": 1,
            "last_result": RESULT,
            "run": RUN,
            "sent_at": "2026-12-01T18:31:05Z",
        }

    def test_the_example_in_the_docs_is_this_shape(self) -> None:
        docs = (Path(__file__).parents[1] / "docs" / "notices.md").read_text()
        blocks = [part.split("```", 1)[0] for part in docs.split("```json\n")[1:]]
        (example,) = [json.loads(b) for b in blocks if '"lambdacron_notice"' in b]
        shape = notice().to_json()
        assert list(example) == list(shape)
        assert {k: type(v) for k, v in example.items()} == {k: type(v) for k, v in shape.items()}

    def test_a_missed_occurrence_has_no_result(self) -> None:
        document = notice(reason=NoticeReason.MISSED, attempts=0, last_result=None).to_json()
        assert (document["reason"], document["last_result"]) == ("missed", None)

    @pytest.mark.parametrize(
        ("status", "reason"),
        [
            (Status.OK, None),
            (Status.FAILED, NoticeReason.FAILED),
            (Status.TIMEOUT, NoticeReason.FAILED),
            (Status.ERROR, NoticeReason.FAILED),
            (Status.INTERRUPTED, NoticeReason.INTERRUPTED),
        ],
    )
    def test_the_reason_for_each_status(self, status: Status, reason: NoticeReason | None) -> None:
        assert NoticeReason.for_status(status) is reason

    def test_a_huge_run_is_left_out_so_the_notice_fits_every_destination(self) -> None:
        payload = {"blob": "x" * (MAX_NOTICE_BYTES + 1)}
        big = notice(run={"type": "lambda", "details": {"function_name": "f", "payload": payload}})
        text = big.encode()
        assert len(text.encode()) <= MAX_NOTICE_BYTES
        assert json.loads(text) == {**big.to_json(), "run": None}
        assert json.loads(notice().encode()) == notice().to_json()

    def test_the_encoding_is_ascii(self) -> None:
        text = notice(key="bestellungen/ä\u2028.json").encode()
        assert text.isascii()
        assert json.loads(text)["key"] == "bestellungen/ä\u2028.json"

    def test_the_subject_is_short_printable_ascii(self) -> None:
        subject = notice(key="ä\n/" + "k" * 300 + ".json").subject()
        assert len(subject) < 100 and subject.isascii() and subject.isprintable()
        assert subject.startswith("lambdacron: ?")

    def test_the_identity_is_the_occurrence_not_the_send(self) -> None:
        first = notice()
        assert first.identity() == notice(sent_at=utc(2026, 12, 1, 19)).identity()
        assert first.identity() != notice(occurrence=utc(2026, 12, 1, 18, 31)).identity()
        assert first.identity() != notice(reason=NoticeReason.INTERRUPTED).identity()


class Sleeps:
    def __init__(self) -> None:
        self.seen: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.seen.append(seconds)


def python_command(code: str) -> Destination:
    return Destination(NoticeKind.COMMAND, (sys.executable, "-c", code))


class TestCommandDestination:
    def test_the_notice_is_the_commands_stdin(self, tmp_path: Path) -> None:
        out = tmp_path / "notice.json"
        code = f"import sys; open({str(out)!r}, 'w').write(sys.stdin.read())"
        delivery = Notifier().send(python_command(code), notice())
        assert delivery.outcome is DeliveryOutcome.DELIVERED
        assert (delivery.attempts, delivery.error) == (1, None)
        assert json.loads(out.read_text()) == notice().to_json()

    def test_no_shell_reads_the_arguments(self, tmp_path: Path) -> None:
        out = tmp_path / "argv.json"
        code = f"import json, sys; open({str(out)!r}, 'w').write(json.dumps(sys.argv[1:]))"
        argv = (sys.executable, "-c", code, "$HOME", "a; rm -rf /", "`x`")
        assert Notifier().send(Destination(NoticeKind.COMMAND, argv), notice()).delivered
        assert json.loads(out.read_text()) == ["$HOME", "a; rm -rf /", "`x`"]

    def test_a_failing_command_is_retried_then_undelivered_with_its_last_words(
        self, tmp_path: Path
    ) -> None:
        count = tmp_path / "count"
        code = (
            f"import sys; open({str(count)!r}, 'a').write('x')\n"
            "sys.stderr.write('first line\\nmailbox full\\n'); sys.exit(3)"
        )
        sleeps = Sleeps()
        destination = python_command(code)
        delivery = Notifier(attempts=3, sleep=sleeps).send(destination, notice())
        assert delivery.outcome is DeliveryOutcome.UNDELIVERED
        assert delivery.attempts == 3
        assert count.read_text() == "xxx"
        assert sleeps.seen == [0.5, 1.0]
        assert delivery.error == (
            f"on_failure.command: could not run {destination.describe()}:"
            " exited with status 3: mailbox full (3 attempts)"
        )

    def test_a_command_that_fails_once_is_delivered_by_the_retry(self, tmp_path: Path) -> None:
        count = tmp_path / "count"
        code = (
            "import os, sys\n"
            f"p = {str(count)!r}\n"
            "n = os.path.getsize(p) if os.path.exists(p) else 0\n"
            "open(p, 'a').write('x')\n"
            "sys.exit(1 if n == 0 else 0)"
        )
        delivery = Notifier(sleep=Sleeps()).send(python_command(code), notice())
        assert (delivery.outcome, delivery.attempts) == (DeliveryOutcome.DELIVERED, 2)

    def test_a_missing_program_is_undelivered_not_raised(self, tmp_path: Path) -> None:
        missing = str(tmp_path / "no-such-program")
        destination = Destination(NoticeKind.COMMAND, (missing,))
        delivery = Notifier(attempts=2, sleep=Sleeps()).send(destination, notice())
        assert delivery.outcome is DeliveryOutcome.UNDELIVERED
        assert delivery.error == (
            f'on_failure.command: could not run ["{missing}"]:'
            f" executable not found: {missing} (2 attempts)"
        )

    def test_a_command_past_its_timeout_is_killed_and_undelivered(self) -> None:
        notifier = Notifier(attempts=1, command_timeout=0.5)
        delivery = notifier.send(python_command("import time; time.sleep(60)"), notice())
        assert delivery.outcome is DeliveryOutcome.UNDELIVERED
        assert delivery.error is not None
        assert "killed after the 0.5-second timeout" in delivery.error

    def test_a_secret_the_command_prints_is_not_in_the_error(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("PAGER_API_KEY", "s3cr3t-value-123")
        code = "import os, sys; print(os.environ['PAGER_API_KEY']); sys.exit(1)"
        delivery = Notifier(attempts=1).send(python_command(code), notice())
        assert delivery.error is not None
        assert "s3cr3t" not in delivery.error and "[redacted]" in delivery.error


def test_notices_and_settings_import_without_boto3() -> None:
    # The local runner reads its settings, and so this module, without boto3 installed.
    code = (
        "import sys, lambdacron.config, lambdacron.notify\n"
        "assert not any(m.split('.')[0] in ('boto3', 'botocore') for m in sys.modules)"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


class TestStoreDefault:
    def test_the_variable_is_a_json_destination(self) -> None:
        settings = Settings.from_env({"LAMBDACRON_ON_FAILURE": json.dumps({"sns": TOPIC})})
        assert settings.on_failure == Destination(NoticeKind.SNS, TOPIC)
        assert Settings.from_env({}).on_failure is None

    @pytest.mark.parametrize(
        ("value", "problem"),
        [
            ('{"sns": "foo"}', f"sns: {ARN_SHAPE}, got 'foo'"),
            ("arn:aws:sns:us-east-1:123456789012:t", "invalid JSON: Expecting value at line 1"),
            ('{"sns": "a", "sns": "b"}', "sns: is given more than once"),
            ('{"command": []}', 'command: expected a non-empty list of arguments ["prog", ...]'),
            ("[]", f"must be an object such as {ONE_OF}, got a list"),
        ],
    )
    def test_a_bad_value_is_a_usage_error_naming_the_variable(
        self, value: str, problem: str
    ) -> None:
        with pytest.raises(UsageError) as caught:
            Settings.from_env({"LAMBDACRON_ON_FAILURE": value})
        assert str(caught.value).startswith(f"LAMBDACRON_ON_FAILURE: {problem}")

    def test_the_cli_says_it_in_one_line(self, run_cli: Run) -> None:
        result = run_cli("ls", env={"LAMBDACRON_ON_FAILURE": '{"sqs": "q"}'})
        assert result.returncode == 2
        assert result.stderr == f"lambdacron: LAMBDACRON_ON_FAILURE: sqs: {QUEUE_SHAPE}, got 'q'\n"
