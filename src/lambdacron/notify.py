"""Failure notices: telling someone when an occurrence did not end well.

A job (or the whole store, through ``LAMBDACRON_ON_FAILURE``) names one destination in
``on_failure``: an SNS topic, an SQS queue, a Lambda function, or a local command that reads
the notice on stdin. ``parse_destination`` reads that field the way the job file reads every
other one (a problem names its field path); ``Notice`` is the one versioned document sent
(see docs/notices.md); ``Notifier.send`` delivers it, retrying a few times, and reports the
outcome instead of raising, since a notice that cannot be sent must never break the tick
that noticed the failure.

boto3 is imported only when an AWS destination is used, so the local runner never needs it.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from . import aws
from .actions.base import Status
from .fields import NUL, Problems, type_name
from .times import iso

# --------------------------------------------------------------------------- destinations


class NoticeKind(StrEnum):
    """Where a notice goes; the value is the key a user writes in ``on_failure``."""

    SNS = "sns"
    SQS = "sqs"
    LAMBDA = "lambda"
    COMMAND = "command"


@dataclass(frozen=True)
class Destination:
    """One parsed ``on_failure``: ``target`` is the ARN, URL or function for AWS kinds, the
    argument list for ``command``."""

    kind: NoticeKind
    target: str | tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        """The form a user writes: ``{"sns": "arn:..."}``, ``{"command": [...]}``."""
        target = list(self.target) if isinstance(self.target, tuple) else self.target
        return {self.kind.value: target}

    def describe(self) -> str:
        """The target as a message names it."""
        if isinstance(self.target, tuple):
            return json.dumps(list(self.target))
        return self.target


_PARTITION = r"arn:(?:aws|aws-cn|aws-us-gov)"
_REGION = r"[a-z]{2}(?:-[a-z]+)+-[0-9]+"
_ACCOUNT = r"[0-9]{12}"
_SNS_ARN = re.compile(rf"{_PARTITION}:sns:{_REGION}:{_ACCOUNT}:[A-Za-z0-9_-]{{1,256}}(?:\.fifo)?")
# Any host: the queue URL is what CreateQueue returned, and an SQS-compatible server (or a
# VPC endpoint) answers with its own host; the account and queue name have AWS's shape.
_SQS_URL = re.compile(
    rf"https?://[A-Za-z0-9.-]+(?::[0-9]{{1,5}})?/{_ACCOUNT}/[A-Za-z0-9_-]{{1,80}}(?:\.fifo)?"
)
_LAMBDA_NAME = r"[A-Za-z0-9_-]{1,64}(?::(?:\$LATEST|[A-Za-z0-9_-]{1,128}))?"
_LAMBDA = re.compile(rf"(?:{_PARTITION}:lambda:{_REGION}:{_ACCOUNT}:function:)?{_LAMBDA_NAME}")

_EXPECTED = {
    NoticeKind.SNS: (_SNS_ARN, "an SNS topic ARN (arn:aws:sns:REGION:ACCOUNT:NAME)"),
    NoticeKind.SQS: (_SQS_URL, "an SQS queue URL (https://sqs.REGION.amazonaws.com/ACCOUNT/NAME)"),
    NoticeKind.LAMBDA: (
        _LAMBDA,
        "a Lambda function name or ARN (arn:aws:lambda:REGION:ACCOUNT:function:NAME)",
    ),
}
_KIND_NAMES = frozenset(kind.value for kind in NoticeKind)
_KINDS = ", ".join(kind.value for kind in NoticeKind)
_FORM = '{"sns": TOPIC_ARN}, {"sqs": QUEUE_URL}, {"lambda": FUNCTION} or {"command": [...]}'


def _shown(value: object) -> str:
    """A bad value as a message quotes it: strings by repr, others by their JSON type,
    each cut short, since a value may be a whole document."""
    text = repr(value) if isinstance(value, str) else type_name(value)
    return text if len(text) <= 120 else text[:117] + "..."


def check_destination(
    value: object, problems: Problems, path: str = "on_failure"
) -> Destination | None:
    """Read an ``on_failure`` value, adding each problem (with its field path under
    ``path``) to ``problems``, as the job file's other fields do; None if it is invalid."""
    if not isinstance(value, dict):
        problems.add(path, f"must be an object such as {_FORM}, got {type_name(value)}")
        return None
    unknown = [name for name in value if name not in _KIND_NAMES]
    for name in unknown:
        problems.add(_join(path, name), f"is not a destination (known: {_KINDS})")
    given = [NoticeKind(name) for name in value if name in _KIND_NAMES]
    if len(given) != 1:
        if not given and not unknown:
            problems.add(path, f"must name one destination: {_FORM}")
        elif len(given) > 1:
            names = " and ".join(kind.value for kind in given)
            problems.add(path, f"names {names}; give exactly one destination")
        return None
    kind = given[0]
    raw = value[kind.value]
    sub = _join(path, kind.value)
    if unknown:
        return None
    if kind is NoticeKind.COMMAND:
        command = _command(raw, sub, problems)
        return None if command is None else Destination(kind, command)
    pattern, expected = _EXPECTED[kind]
    if not isinstance(raw, str) or not pattern.fullmatch(raw):
        problems.add(sub, f"expected {expected}, got {_shown(raw)}")
        return None
    return Destination(kind, raw)


def _command(raw: object, path: str, problems: Problems) -> tuple[str, ...] | None:
    if not isinstance(raw, list) or not raw:
        got = "an empty list" if raw == [] else _shown(raw)
        problems.add(path, f'expected a non-empty list of arguments ["prog", ...], got {got}')
        return None
    count = len(problems.items)
    for i, item in enumerate(raw):
        if not isinstance(item, str):
            problems.add(f"{path}[{i}]", f"must be a string, got {type_name(item)}")
        elif not item:
            problems.add(f"{path}[{i}]", "must not be empty")
        elif "\0" in item:
            problems.add(f"{path}[{i}]", NUL)
    return tuple(raw) if len(problems.items) == count else None


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def parse_destination(value: object, path: str = "on_failure") -> Destination:
    """An ``on_failure`` value to its destination; raises JobError (a LambdacronError whose
    ``path`` is the field path, e.g. ``on_failure.sns``) for the first problem."""
    problems = Problems()
    destination = check_destination(value, problems, path)
    if destination is None:
        raise problems.items[0]
    return destination


def destination_for(
    job_value: Destination | None, default: Destination | None
) -> Destination | None:
    """Where a job's notice goes: its own ``on_failure``, else the store-wide default."""
    return job_value if job_value is not None else default


# --------------------------------------------------------------------------- the notice


class NoticeReason(StrEnum):
    """Why an occurrence is noticed."""

    FAILED = "failed"  # it ran, and ended not ok (failed, timeout, error) after its retries
    MISSED = "missed"  # its deadline passed before it could start
    INTERRUPTED = "interrupted"  # its runner stopped or died while it ran

    @classmethod
    def for_status(cls, status: Status) -> NoticeReason | None:
        """The reason a run that ended with ``status`` is noticed for; None when it is ok."""
        if status is Status.OK:
            return None
        return cls.INTERRUPTED if status is Status.INTERRUPTED else cls.FAILED


#: The version of the notice's shape, its ``lambdacron_notice`` field. A change that could
#: break a reader (a field renamed, removed or given another meaning) bumps it.
NOTICE_VERSION = 1
#: The most a notice may encode to: SNS's and SQS's message limit (256 KiB) is the smallest
#: of the destinations'. Only ``run`` can approach it (a lambda job's payload).
MAX_NOTICE_BYTES = 256 * 1024


@dataclass(frozen=True)
class Notice:
    """What is sent about one occurrence. ``run`` is the job's ``run`` object as in its
    file, ``last_result`` the run's result as recorded (None when it never started)."""

    key: str
    store: str
    occurrence: datetime
    reason: NoticeReason
    attempts: int
    last_result: Mapping[str, Any] | None
    run: Mapping[str, Any] | None
    sent_at: datetime

    def to_json(self) -> dict[str, Any]:
        return {
            "lambdacron_notice": NOTICE_VERSION,
            "reason": self.reason.value,
            "key": self.key,
            "store": self.store,
            "occurrence": iso(self.occurrence),
            "attempts": self.attempts,
            "last_result": None if self.last_result is None else dict(self.last_result),
            "run": None if self.run is None else dict(self.run),
            "sent_at": iso(self.sent_at),
        }

    def encode(self) -> str:
        """The notice as sent: ASCII JSON (which every destination accepts as it is), within
        ``MAX_NOTICE_BYTES``: ``run`` becomes null when it alone would exceed that."""
        document = self.to_json()
        text = json.dumps(document, allow_nan=False)
        if len(text) > MAX_NOTICE_BYTES:
            document["run"] = None
            text = json.dumps(document, allow_nan=False)
        return text

    def subject(self) -> str:
        """An SNS subject: printable ASCII, under 100 characters (SNS refuses others)."""
        text = f"lambdacron: {self.key} {self.reason.value}"
        text = "".join(c if " " <= c <= "~" else "?" for c in text)
        return text if len(text) < 100 else text[:96] + "..."

    def identity(self) -> str:
        """Equal for every send of the notice of one occurrence, whatever its ``sent_at``:
        what a FIFO queue or topic de-duplicates on, and what a reader may too."""
        parts = json.dumps([self.store, self.key, iso(self.occurrence), self.reason.value])
        return hashlib.sha256(parts.encode()).hexdigest()


# --------------------------------------------------------------------------- delivery


class DeliveryOutcome(StrEnum):
    DELIVERED = "delivered"
    UNDELIVERED = "undelivered"


@dataclass(frozen=True)
class Delivery:
    """How one send ended. ``error``: for UNDELIVERED, one line naming the destination and
    the last failure (``on_failure.sns: could not publish to arn:...: reason``)."""

    outcome: DeliveryOutcome
    destination: Destination
    attempts: int
    error: str | None = None

    @property
    def delivered(self) -> bool:
        return self.outcome is DeliveryOutcome.DELIVERED


#: Attempts per notice, and the pause before the second; it doubles after each failure.
DEFAULT_ATTEMPTS = 3
DEFAULT_BACKOFF_SECONDS = 0.5
#: How long a notice command may run before its process group is killed.
COMMAND_TIMEOUT_SECONDS = 30.0
#: Bounds on one AWS call, so an unreachable endpoint costs seconds, not botocore's minutes:
#: its attempts (botocore's standard retries, the first included), each within its timeouts.
AWS_CALL_ATTEMPTS = 3
_CONNECT_TIMEOUT = 5
_READ_TIMEOUT = 15
#: Standard mode's pause before attempt n + 1 is at most 2 ** n seconds.
_AWS_CALL_PAUSES = sum(2**n for n in range(1, AWS_CALL_ATTEMPTS))
#: The longest one notice's sending can take: every try at its longest (an AWS call's
#: attempts, or a command's timeout) and the pauses between tries.
LONGEST_NOTICE_SECONDS = DEFAULT_ATTEMPTS * max(
    COMMAND_TIMEOUT_SECONDS,
    AWS_CALL_ATTEMPTS * (_CONNECT_TIMEOUT + _READ_TIMEOUT) + _AWS_CALL_PAUSES,
) + DEFAULT_BACKOFF_SECONDS * (2 ** (DEFAULT_ATTEMPTS - 1) - 1)
_ERROR_LIMIT = 500

ClientFactory = Callable[[str], Any]


def default_client(service: str) -> Any:
    """A boto3 client configured the standard way (credentials, ``AWS_REGION``,
    ``AWS_ENDPOINT_URL`` and ``AWS_ENDPOINT_URL_<SERVICE>``), with botocore's standard
    retries for throttling and 5xx."""
    return aws.client(
        service,
        retries={"mode": "standard", "max_attempts": AWS_CALL_ATTEMPTS},
        connect_timeout=_CONNECT_TIMEOUT,
        read_timeout=_READ_TIMEOUT,
    )


class _Undelivered(Exception):
    """A command that ran and did not succeed (a non-zero exit, a timeout)."""


_VERBS = {
    NoticeKind.SNS: "publish to",
    NoticeKind.SQS: "send to",
    NoticeKind.LAMBDA: "invoke",
    NoticeKind.COMMAND: "run",
}


class Notifier:
    """Sends notices. Thread-safe: the engine's workers may share one.

    ``clients``: boto3 clients by service name (``sns``, ``sqs``, ``lambda``), else made
    by ``client_factory`` on first use. ``attempts``, ``backoff`` and ``sleep`` shape the
    retries (tests pass a sleep that does not wait)."""

    def __init__(
        self,
        clients: Mapping[str, Any] | None = None,
        *,
        client_factory: ClientFactory = default_client,
        attempts: int = DEFAULT_ATTEMPTS,
        backoff: float = DEFAULT_BACKOFF_SECONDS,
        sleep: Callable[[float], None] = time.sleep,
        command_timeout: float = COMMAND_TIMEOUT_SECONDS,
    ) -> None:
        if attempts < 1:
            raise ValueError(f"attempts must be at least 1, got {attempts}")
        self._clients: dict[str, Any] = dict(clients or {})
        self._factory = client_factory
        self._attempts = attempts
        self._backoff = backoff
        self._sleep = sleep
        self._command_timeout = command_timeout
        self._lock = threading.Lock()

    def _client(self, service: str) -> Any:
        with self._lock:  # boto3 clients are thread-safe; creating one is not
            if service not in self._clients:
                self._clients[service] = self._factory(service)
            return self._clients[service]

    def send(self, destination: Destination, notice: Notice) -> Delivery:
        """Deliver ``notice``; never raises. Each failed attempt is retried after a pause,
        up to ``attempts``; a retry after a lost answer may deliver the notice twice (see
        ``Notice.identity``)."""
        pause = self._backoff
        reason = ""
        for attempt in range(1, self._attempts + 1):
            try:
                self._deliver(destination, notice)
                return Delivery(DeliveryOutcome.DELIVERED, destination, attempt)
            except ImportError:  # no attempt can succeed
                reason = "boto3 is not installed: pip install 'lambdacron[aws]'"
                return self._undelivered(destination, attempt, reason)
            except Exception as exc:  # boto3, botocore and OS errors are many types
                reason = _reason(exc)
            if attempt < self._attempts:
                self._sleep(pause)
                pause *= 2
        return self._undelivered(destination, self._attempts, reason)

    @staticmethod
    def _undelivered(destination: Destination, attempts: int, reason: str) -> Delivery:
        kind = destination.kind
        line = (
            f"on_failure.{kind.value}: could not {_VERBS[kind]} {destination.describe()}:"
            f" {reason} ({attempts} attempt{'s' if attempts != 1 else ''})"
        )
        return Delivery(DeliveryOutcome.UNDELIVERED, destination, attempts, line)

    def _deliver(self, destination: Destination, notice: Notice) -> None:
        body = notice.encode()
        target = destination.target
        if destination.kind is NoticeKind.COMMAND:
            assert isinstance(target, tuple)
            self._run_command(target, body, notice.sent_at)
            return
        assert isinstance(target, str)
        fifo = target.endswith(".fifo")
        if destination.kind is NoticeKind.SNS:
            extra = _fifo_fields(notice) if fifo else {}
            self._client("sns").publish(
                TopicArn=target, Message=body, Subject=notice.subject(), **extra
            )
        elif destination.kind is NoticeKind.SQS:
            extra = _fifo_fields(notice) if fifo else {}
            self._client("sqs").send_message(QueueUrl=target, MessageBody=body, **extra)
        else:
            # Any answer botocore does not raise for means the event was accepted.
            self._client("lambda").invoke(
                FunctionName=target, InvocationType="Event", Payload=body.encode("utf-8")
            )

    def _run_command(self, argv: tuple[str, ...], body: str, started: datetime) -> None:
        from .actions.process import run_process  # the action's: group kill, redacted output

        result = run_process(
            argv, env={}, timeout=self._command_timeout, started=started, stdin=body
        )
        if result.status is Status.OK:
            return
        output = result.output.strip().splitlines()
        tail = f": {output[-1]}" if output else ""
        raise _Undelivered(f"{result.error}{tail}")


def _fifo_fields(notice: Notice) -> dict[str, str]:
    """A FIFO topic or queue requires a group and, unless it de-duplicates by content, an
    id: one group per job keeps its notices in order, and the id makes a retried send of
    the same occurrence's notice a duplicate the queue drops."""
    group = hashlib.sha256(json.dumps([notice.store, notice.key]).encode()).hexdigest()
    return {"MessageGroupId": group, "MessageDeduplicationId": notice.identity()}


def _reason(exc: BaseException) -> str:
    text = str(exc) if isinstance(exc, _Undelivered) else f"{type(exc).__name__}: {exc}"
    # One line: the reason ends up in a log line, which a newline would split.
    text = " ".join(text.split())
    return text if len(text) <= _ERROR_LIMIT else text[: _ERROR_LIMIT - 3] + "..."


__all__ = [
    "COMMAND_TIMEOUT_SECONDS",
    "MAX_NOTICE_BYTES",
    "NOTICE_VERSION",
    "Delivery",
    "DeliveryOutcome",
    "Destination",
    "Notice",
    "NoticeKind",
    "NoticeReason",
    "Notifier",
    "check_destination",
    "default_client",
    "destination_for",
    "parse_destination",
]
