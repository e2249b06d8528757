"""The ``lambda`` action: against moto's Lambda API, and a recording Invoke endpoint."""

from __future__ import annotations

import base64
import io
import json
import uuid
import zipfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import boto_client
from helpers import FakeClock, utc
from lambdacron.actions import default_registry
from lambdacron.actions.base import OUTPUT_LIMIT, RunContext, Status
from lambdacron.actions.lambda_ import (
    LAMBDA_PAYLOAD_LIMITS,
    InvocationType,
    LambdaAction,
    LambdaSpec,
    parse_details,
)
from lambdacron.engine import Engine
from lambdacron.fields import Problems
from lambdacron.store import LocalStore
from recording_lambda import RecordingLambda, Reply

CONTEXT = RunContext("orders/1234.json", utc(2026, 12, 1, 18, 30), 2, 30, utc(2026, 12, 1))


def tiny_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("app.py", "def handler(event, context):\n    return event\n")
    return buffer.getvalue()


@pytest.fixture
def function(moto_endpoint: str) -> str:
    name = f"place-order-{uuid.uuid4().hex[:8]}"
    role = boto_client("iam").create_role(
        RoleName=name,
        AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": []}),
    )
    boto_client("lambda").create_function(
        FunctionName=name,
        Runtime="python3.12",
        Role=role["Role"]["Arn"],
        Handler="app.handler",
        Code={"ZipFile": tiny_zip()},
    )
    return name


@pytest.fixture
def recorder(lambda_recorder: RecordingLambda) -> RecordingLambda:
    return lambda_recorder


class TestAgainstMotoLambda:
    def test_request_response_delivers_the_exact_payload_bytes(self, function: str) -> None:
        payload = {"order": 1234, "items": ["soup", "bread"], "note": "ünïcode", "n": 1.5}
        spec = LambdaSpec(function, payload, InvocationType.REQUEST_RESPONSE)
        result = LambdaAction().run(spec, CONTEXT)
        assert (result.status, result.exit_code) == (Status.OK, 200)
        # moto echoes what it received: the payload's JSON, its text as UTF-8.
        assert result.output == json.dumps(payload, ensure_ascii=False)

    def test_an_event_invocation_is_accepted(self, function: str) -> None:
        result = LambdaAction().run(LambdaSpec(function, {"x": 1}), CONTEXT)
        assert (result.status, result.exit_code) == (Status.OK, 202)


class TestWhatTheTargetReceives:
    def test_the_invocation_type_payload_and_client_context(
        self, recorder: RecordingLambda
    ) -> None:
        spec = LambdaSpec(
            "arn:aws:lambda:us-east-1:123456789012:function:place-order",
            {"order": 1234},
            InvocationType.EVENT,
        )
        result = LambdaAction().run(spec, CONTEXT)
        assert result.status is Status.OK
        (call,) = recorder.seen
        assert call.function in (
            "place-order",
            "arn%3Aaws%3Alambda%3Aus-east-1%3A123456789012%3Afunction%3Aplace-order",
        )
        assert call.headers["X-Amz-Invocation-Type"] == "Event"
        assert json.loads(call.body) == {"order": 1234}
        context = json.loads(base64.b64decode(call.headers["X-Amz-Client-Context"]))
        assert context == {
            "custom": {
                "lambdacron_job": "orders/1234.json",
                "lambdacron_scheduled_time": "2026-12-01T18:30:00Z",
                "lambdacron_execution": "2",
            }
        }

    def test_a_function_error_is_a_failed_run(self, recorder: RecordingLambda) -> None:
        recorder.reply = Reply(
            body=b'{"errorMessage": "vendor closed"}', function_error="Unhandled"
        )
        result = LambdaAction().run(
            LambdaSpec("place-order", {}, InvocationType.REQUEST_RESPONSE), CONTEXT
        )
        assert result.status is Status.FAILED
        assert result.error == "function error: Unhandled"
        assert result.output == '{"errorMessage": "vendor closed"}'

    def test_an_unknown_function_is_an_error_result(self, recorder: RecordingLambda) -> None:
        recorder.reply = Reply(
            status=404,
            body=b'{"Type": "User", "Message": "Function not found: nope"}',
            headers={"x-amzn-ErrorType": "ResourceNotFoundException"},
        )
        result = LambdaAction().run(LambdaSpec("nope", {}), CONTEXT)
        assert result.status is Status.ERROR
        assert result.error is not None
        assert result.error.startswith("invoke nope: ResourceNotFoundException: ")
        assert result.error.endswith("Function not found: nope")

    def test_an_invoke_is_never_retried(self, recorder: RecordingLambda) -> None:
        # A 5xx after the function may have started: retrying could run it twice.
        recorder.reply = Reply(
            status=500,
            body=b'{"message": "internal"}',
            headers={"x-amzn-ErrorType": "ServiceException"},
        )
        result = LambdaAction().run(LambdaSpec("place-order", {"order": 1}), CONTEXT)
        assert result.status is Status.ERROR
        assert len(recorder.seen) == 1

    def test_a_large_response_is_recorded_bounded(self, recorder: RecordingLambda) -> None:
        recorder.reply = Reply(body=b'"' + b"x" * 100_000 + b'"')
        result = LambdaAction().run(
            LambdaSpec("place-order", {}, InvocationType.REQUEST_RESPONSE), CONTEXT
        )
        assert len(result.output) == OUTPUT_LIMIT

    def test_a_lambda_job_end_to_end_through_the_engine(
        self, recorder: RecordingLambda, tmp_path: Path
    ) -> None:
        root = tmp_path / "jobs"
        root.mkdir()
        (root / "order.json").write_text(
            json.dumps(
                {
                    "when": "at(2026-12-01T18:30:00)",
                    "timezone": "Europe/Berlin",
                    "customer": 42,
                    "run": {
                        "type": "lambda",
                        "details": {"function_name": "place-order", "payload": {"order": 1234}},
                    },
                }
            )
        )
        with Engine(
            LocalStore(root), default_registry(), clock=FakeClock(datetime.now(UTC))
        ) as engine:
            report = engine.tick(utc(2026, 12, 1, 17, 31))
        assert (report.ran, report.deleted) == (1, 1)
        (call,) = recorder.seen
        assert json.loads(call.body) == {"order": 1234}
        custom = json.loads(base64.b64decode(call.headers["X-Amz-Client-Context"]))["custom"]
        assert custom == {
            "lambdacron_job": "order.json",
            "lambdacron_scheduled_time": "2026-12-01T17:30:00Z",
            "lambdacron_execution": "1",
        }
        assert not (root / "order.json").exists()


#: JSON a job file can hold as a payload: text without lone surrogates, whole numbers.
PAYLOADS = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.text(st.characters(blacklist_categories=("Cs",)), max_size=30),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.text(st.characters(blacklist_categories=("Cs",)), max_size=5), inner)
    ),
    max_leaves=12,
)


class TestThePayloadAsSent:
    """The limit the file is checked against holds for the bytes the target receives."""

    def test_a_payload_beyond_ascii_that_the_file_accepts_is_sent_within_the_limit(
        self, recorder: RecordingLambda
    ) -> None:
        limit = LAMBDA_PAYLOAD_LIMITS["Event"]
        payload = {"note": "é" * (limit // 2 - 100)}  # 2 bytes each in UTF-8, 6 as \u00e9
        problems = Problems()
        spec = parse_details({"function_name": "place-order", "payload": payload}, problems)
        assert problems.items == [] and spec is not None
        assert LambdaAction().run(spec, CONTEXT).status is Status.OK
        (call,) = recorder.seen
        assert len(call.body) <= limit
        assert json.loads(call.body) == payload

    @settings(
        max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
    )
    @given(PAYLOADS, st.sampled_from(InvocationType), st.integers(2, 120))
    def test_the_file_is_refused_exactly_when_the_bytes_sent_exceed_the_limit(
        self,
        recorder: RecordingLambda,
        monkeypatch: pytest.MonkeyPatch,
        payload: Any,
        kind: InvocationType,
        limit: int,
    ) -> None:
        monkeypatch.setitem(LAMBDA_PAYLOAD_LIMITS, kind.value, limit)
        problems = Problems()
        details = {"function_name": "f", "payload": payload, "invocation_type": kind.value}
        parse_details(details, problems)
        recorder.seen.clear()
        LambdaAction().run(LambdaSpec("f", payload, kind), CONTEXT)
        (call,) = recorder.seen
        assert json.loads(call.body) == payload
        assert bool(problems.items) == (len(call.body) > limit)


class TestTheJobsTimeout:
    def test_a_function_that_answers_after_the_timeout_is_a_timeout(
        self, recorder: RecordingLambda
    ) -> None:
        recorder.reply = Reply(delay=3)
        context = RunContext("slow.json", utc(2026, 12, 1), 1, 1, utc(2026, 12, 1))
        spec = LambdaSpec("place-order", {}, InvocationType.REQUEST_RESPONSE)
        result = LambdaAction().run(spec, context)
        assert (result.status, result.exit_code) == (Status.TIMEOUT, None)
        assert result.error == (
            "invoke place-order: no answer within the 1-second timeout; the function may"
            " still be running"
        )


def _lambda_job_output(root: Path, secret: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """The recorded result of one RequestResponse job, with ``secret`` in the runner's env."""
    monkeypatch.setenv("VENDOR_API_KEY", secret)
    root.mkdir(exist_ok=True)
    path = root / "echo.json"
    details = {"function_name": "echo", "invocation_type": "RequestResponse"}
    path.write_text(json.dumps({"when": "@hourly", "run": {"type": "lambda", "details": details}}))
    with Engine(LocalStore(root), default_registry(), clock=FakeClock(datetime.now(UTC))) as engine:
        engine.tick(utc(2026, 12, 1, 1))
    result: dict[str, Any] = json.loads(path.read_text())["last_result"]
    return result


#: Secrets that a JSON encoder writes otherwise than as they are: a quote, a backslash, a
#: slash (some encoders write ``\/``), a control character, text beyond ASCII.
ODD_SECRETS = ['pa"ss-word1', "back\\slash-99", "s/l/a/s/h/key", "tab\tin-secret", "pässwörd-123"]


class TestSecretsEchoedByTheTarget:
    """A RequestResponse result is the target's JSON: a secret it echoes comes back encoded."""

    @pytest.mark.parametrize("secret", [*ODD_SECRETS, "tok-😀-1234567"])
    def test_a_secret_echoed_in_json_is_redacted_however_it_is_encoded(
        self, recorder: RecordingLambda, tmp_path: Path, secret: str, monkeypatch: Any
    ) -> None:
        encodings = [
            json.dumps({"echo": secret}),  # the Python runtime's encoder: ASCII escapes
            json.dumps({"echo": secret}, ensure_ascii=False),  # Node.js's JSON.stringify
            json.dumps({"echo": secret}).replace("/", "\\/"),  # PHP's, Java's org.json
        ]
        recorder.reply = Reply(body=" ".join(encodings).encode())
        output = _lambda_job_output(tmp_path / "jobs", secret, monkeypatch)["output"]
        assert output == " ".join(['{"echo": "[redacted]"}'] * 3)

    @pytest.mark.parametrize("cut_inside", range(1, 4))
    def test_a_secret_cut_inside_a_character_by_the_output_limit_leaves_nothing(
        self, recorder: RecordingLambda, tmp_path: Path, cut_inside: int, monkeypatch: Any
    ) -> None:
        secret = "abcdefgh\U0001f600wxyz"
        head = b"abcdefgh" + "\U0001f600".encode()[:cut_inside]
        recorder.reply = Reply(body=b"x" * (OUTPUT_LIMIT - len(head)) + secret.encode())
        output = _lambda_job_output(tmp_path / "jobs", secret, monkeypatch)["output"]
        assert "abcd" not in output and output.startswith("x" * 100)

    @pytest.mark.parametrize("shift", [0, 9, 20, 33, 44])
    def test_a_secret_cut_by_the_error_length_leaves_nothing(
        self, recorder: RecordingLambda, tmp_path: Path, shift: int, monkeypatch: Any
    ) -> None:
        secret = "SECRETVALUE0123456789abcdefghijklmnopqrstuvwxyz"
        recorder.reply = Reply(
            status=400,
            # Longer than the error kept, so the cut goes through some occurrence.
            body=json.dumps({"Type": "User", "Message": "x" * shift + secret * 30}).encode(),
            headers={"x-amzn-ErrorType": "InvalidRequestContentException"},
        )
        error = _lambda_job_output(tmp_path / "jobs", secret, monkeypatch)["error"]
        assert error.startswith("invoke echo: InvalidRequestContentException")
        assert not [secret[i : i + 4] for i in range(len(secret) - 3) if secret[i : i + 4] in error]
