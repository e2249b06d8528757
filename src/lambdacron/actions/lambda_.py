"""``"type": "lambda"``: invoke another AWS Lambda function with the job's payload.

boto3 is imported only when a lambda job actually runs, so the local runner never needs
it. The client is injectable (a factory), which the tests use to point it at a local
Lambda API server.
"""

from __future__ import annotations

import base64
import codecs
import json
import math
import re
import threading
import time
from collections import OrderedDict
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


#: What Invoke takes as a function: a name, a partial or a full ARN, a qualifier. Only the
#: characters and the length are checked: AWS adds partitions and qualifier forms over time,
#: and a name that merely looks wrong to an older pattern must still run. A space, a slash or
#: a letter beyond ASCII is no function's name anywhere: refused when the file is read, not
#: met as an AWS error at every occurrence.
_FUNCTION = re.compile(r"[A-Za-z0-9_.:$-]{1,256}")


def parse_details(details: Mapping[str, Any], problems: Problems) -> LambdaSpec | None:
    arn = get(details, "arn", str, "run.details.arn", problems)
    name = get(details, "function_name", str, "run.details.function_name", problems)
    if "arn" in details and "function_name" in details:
        problems.add("run.details", "give either arn or function_name, not both")
    function = arn or name
    if function and not _FUNCTION.fullmatch(function):
        problems.add(
            "run.details.arn" if arn else "run.details.function_name",
            f"{function!r} is no Lambda function's name or ARN (at most 256 of A-Z a-z 0-9"
            " - _ . : $)",
        )
        function = None
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

#: Makes a client that waits at most the given number of seconds for an answer.
ClientFactory = Callable[[float], Any]
#: ClientContext is limited to 3,583 bytes of base64 by the Invoke API.
_CLIENT_CONTEXT_LIMIT = 3583
#: The longest wait for an answer: the longest synchronous run Lambda allows (900 s) and a
#: margin; a job's timeout_seconds shortens it.
_LONGEST_ANSWER_SECONDS = 905
#: Clients kept, one per distinct wait; each holds its own connection pool.
_CLIENTS_KEPT = 8


def default_lambda_client(read_timeout: float = _LONGEST_ANSWER_SECONDS) -> Any:
    # An Invoke is never retried: after a timeout or a 5xx the function may have run, and a
    # retry would run it twice. The occurrence records the error; the next one tries again.
    return aws.client(
        "lambda",
        retries={"total_max_attempts": 1},
        read_timeout=read_timeout,
        connect_timeout=min(60, read_timeout),
    )


def _wait(timeout: float) -> int:
    """How long an invocation waits for its answer, for a job's ``timeout_seconds``."""
    return min(max(1, math.ceil(timeout)), _LONGEST_ANSWER_SECONDS)


def _is_read_timeout(exc: Exception) -> bool:
    try:
        from botocore.exceptions import ReadTimeoutError
    except ImportError:
        return False
    return isinstance(exc, ReadTimeoutError)


class LambdaAction(Action):
    run_type = RunType.LAMBDA

    def __init__(self, client_factory: ClientFactory = default_lambda_client) -> None:
        self._factory = client_factory
        self._clients: OrderedDict[int, Any] = OrderedDict()
        self._lock = threading.Lock()

    def _get_client(self, timeout: float) -> Any:
        """A client that gives up waiting for the answer at the job's timeout, so a runner
        that starts a job only with ``timeout_seconds`` left is not outlived by the call."""
        wait = _wait(timeout)
        with self._lock:  # boto3 clients are thread-safe; creating one is not
            client = self._clients.get(wait)
            if client is None:
                client = self._clients[wait] = self._factory(wait)
                while len(self._clients) > _CLIENTS_KEPT:
                    self._clients.popitem(last=False)
            self._clients.move_to_end(wait)
            return client

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
            client = self._get_client(context.timeout)
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
            if _is_read_timeout(exc):
                return Result(
                    Status.TIMEOUT,
                    context.started,
                    elapsed(),
                    error=f"invoke {spec.function}: no answer within the"
                    f" {_wait(context.timeout):g}-second timeout; the function may still be"
                    " running",
                )
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
