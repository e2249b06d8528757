"""``"type": "lambda"``: invoke another AWS Lambda function with the job's payload.

boto3 is imported only when a lambda job actually runs, so the local runner never needs
it. The client is injectable (a factory), which the tests use to point it at a local
Lambda API server.
"""

from __future__ import annotations

import base64
import codecs
import json
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from .. import aws
from ..fields import Problems, get
from .base import OUTPUT_LIMIT, Action, DetailsSpec, Result, RunContext, RunType, Spec, Status

#: Lambda's invocation payload limits (bytes): asynchronous and synchronous.
LAMBDA_PAYLOAD_LIMITS = {"Event": 1024 * 1024, "RequestResponse": 6 * 1024 * 1024}


def payload_bytes(payload: Any) -> bytes:
    """The request body for ``payload``: the one encoding both measured against the limit and
    sent, so a payload the file check accepts is one Lambda accepts. UTF-8 as it is, since
    ASCII escapes would make text beyond ASCII up to six times its size."""
    return json.dumps(payload, ensure_ascii=False).encode("utf-8")


class InvocationType(StrEnum):
    EVENT = "Event"
    REQUEST_RESPONSE = "RequestResponse"


@dataclass(frozen=True)
class LambdaSpec(Spec):
    function: str
    payload: Any = field(default_factory=dict)
    invocation_type: InvocationType = InvocationType.EVENT


def parse_details(details: Mapping[str, Any], problems: Problems) -> LambdaSpec | None:
    arn = get(details, "arn", str, "run.details.arn", problems)
    name = get(details, "function_name", str, "run.details.function_name", problems)
    if "arn" in details and "function_name" in details:
        problems.add("run.details", "give either arn or function_name, not both")
    function = arn or name
    if not function and "arn" not in details and "function_name" not in details:
        problems.add("run.details.arn", "is required (or function_name): the function to invoke")
    elif not function and (arn == "" or name == ""):
        problems.add(
            "run.details.arn" if arn == "" else "run.details.function_name", "must not be empty"
        )
    kind_text = get(
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
    size = len(payload_bytes(payload))
    limit = LAMBDA_PAYLOAD_LIMITS[kind.value]
    if size > limit:
        problems.add(
            "run.details.payload",
            f"is {size} bytes; Lambda accepts at most {limit} bytes for {kind.value}",
        )
    return LambdaSpec(function, payload, kind) if function else None


DETAILS = DetailsSpec(("arn", "function_name", "payload", "invocation_type"), parse_details)

ClientFactory = Callable[[], Any]
#: ClientContext is limited to 3,583 bytes of base64 by the Invoke API.
_CLIENT_CONTEXT_LIMIT = 3583


def default_lambda_client() -> Any:
    # An Invoke is never retried: after a timeout or a 5xx the function may have run, and a
    # retry would run it twice. The occurrence records the error; the next one tries again.
    # The read timeout covers the longest synchronous run Lambda allows (900 s).
    return aws.client("lambda", retries={"total_max_attempts": 1}, read_timeout=905)


class LambdaAction(Action):
    run_type = RunType.LAMBDA

    def __init__(self, client_factory: ClientFactory = default_lambda_client) -> None:
        self._factory = client_factory
        self._client: Any = None
        self._lock = threading.Lock()

    def _get_client(self) -> Any:
        with self._lock:  # boto3 clients are thread-safe; creating one is not
            if self._client is None:
                self._client = self._factory()
            return self._client

    @staticmethod
    def client_context(context: RunContext) -> str:
        custom = {
            "lambdacron_job": context.key,
            "lambdacron_scheduled_time": context.environment()["LAMBDACRON_SCHEDULED_TIME"],
            "lambdacron_execution": str(context.execution),
        }
        encoded = base64.b64encode(json.dumps({"custom": custom}).encode()).decode()
        if len(encoded) > _CLIENT_CONTEXT_LIMIT:  # a very long key: keep what dedup needs
            custom["lambdacron_job"] = custom["lambdacron_job"][-1024:]
            encoded = base64.b64encode(json.dumps({"custom": custom}).encode()).decode()
        return encoded

    def run(self, spec: Spec, context: RunContext) -> Result:
        assert isinstance(spec, LambdaSpec)
        begin = time.monotonic()

        def elapsed() -> int:
            return int((time.monotonic() - begin) * 1000)

        try:
            client = self._get_client()
            response = client.invoke(
                FunctionName=spec.function,
                InvocationType=spec.invocation_type.value,
                Payload=payload_bytes(spec.payload),
                ClientContext=self.client_context(context),
            )
        except ImportError:
            return Result(
                Status.ERROR,
                context.started,
                elapsed(),
                error="boto3 is not installed: pip install 'lambdacron[aws]'",
            )
        except Exception as exc:  # botocore raises many types; all are the job's result
            return Result(
                Status.ERROR,
                context.started,
                elapsed(),
                error=f"invoke {spec.function}: {type(exc).__name__}: {exc}"[:1000],
            )
        status_code = response.get("StatusCode")
        body = b""
        stream = response.get("Payload")
        if stream is not None:
            # Bounded: keep at most the output limit of the response.
            body = stream.read(OUTPUT_LIMIT + 1)
        # A character the limit cut through is dropped, not replaced: a replacement mark
        # would hide that the text before it may be the start of a secret, to be redacted.
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        output = decoder.decode(body[:OUTPUT_LIMIT], final=len(body) <= OUTPUT_LIMIT)
        function_error = response.get("FunctionError")
        if function_error:
            return Result(
                Status.FAILED,
                context.started,
                elapsed(),
                status_code,
                output,
                f"function error: {function_error}",
            )
        return Result(Status.OK, context.started, elapsed(), status_code, output)
