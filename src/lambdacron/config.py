"""Settings read from the environment, in one place. Only entry points call ``from_env``.

Every ``LAMBDACRON_*`` variable a runner reads is read here, so that a bad value is one
clear line (naming the variable) wherever it is used, never a traceback.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import urlsplit

from .engine.outcomes import NO_RETRY, Policies
from .engine.tick import DEFAULT_WORKERS
from .errors import JobError, StoreError, UsageError
from .job import RetryPolicy, RunType
from .notify import Destination, parse_destination
from .store import DEFAULT_STORE, open_store
from .store.base import DEFAULT_MAX_JOB_BYTES, Store

#: The longest master interval, in minutes: a day. A runner ticks at least daily.
MAX_INTERVAL_MINUTES = 1440
#: The furthest a Lambda tick plans ahead: SQS delays a message at most 900 seconds.
MAX_LAMBDA_LOOKAHEAD_SECONDS = 900
#: The most shards a tick splits into: one per top-level folder of generated keys. Each is
#: a process of ``tick --shards`` or an invocation of the Lambda fan-out, at every tick.
MAX_SHARDS = 256


def parse_allowed_types(text: str, name: str = "LAMBDACRON_ALLOWED_TYPES") -> frozenset[RunType]:
    """``"command,lambda"`` to run types; an unknown name is a usage error naming ``name``,
    the setting the text came from."""
    names = [n.strip().lower() for n in text.split(",") if n.strip()]
    known = ", ".join(t.value for t in RunType)
    if text and not names:
        # Separators alone would allow no type at all: every job refused, nothing said why.
        raise UsageError(f"{name}: {text!r} names no run type; use a list of {known}")
    try:
        return frozenset(RunType(n) for n in names)
    except ValueError:
        raise UsageError(f"{name}: {text!r}; use a list of {known}") from None


def parse_count(name: str, text: str, *, low: int = 1, high: int | None = None) -> int:
    """A whole number in ``low..high`` from the variable (or flag) ``name``."""
    # ASCII digits only: int() would also take "١٢" and "1_000".
    if not re.fullmatch(r"[+-]?[0-9]+", text.strip()):
        raise UsageError(f"{name}: {text!r} is not a whole number")
    digits = len(text.strip().lstrip("+-").lstrip("0"))
    if digits > _MAX_DIGITS:  # no setting means that much; int() refuses past 4,300 digits
        raise UsageError(f"{name}: a {digits}-digit number is too large")
    number = int(text)
    if number < low or (high is not None and number > high):
        bound = f"at least {low}" if high is None else f"between {low} and {high}"
        raise UsageError(f"{name}: {number} must be {bound}")
    return number


_MAX_DIGITS = 100


def parse_queue_url(text: str, name: str = "LAMBDACRON_DELIVERY_QUEUE") -> str:
    """An SQS queue URL (``https://sqs.REGION.amazonaws.com/ACCOUNT/NAME``, or a local
    endpoint's ``http://HOST:PORT/ACCOUNT/NAME``), checked before any tick plans into it:
    an http(s) URL with a host, which is all botocore needs to send to it."""
    try:
        parts = urlsplit(text)
        host = parts.hostname
    except ValueError:  # "http://[::1": an unclosed IPv6 address
        host = None
    if not host or parts.scheme not in ("http", "https") or text != text.strip():
        raise UsageError(
            f"{name}: {text!r} is not an SQS queue URL such as "
            "https://sqs.eu-central-1.amazonaws.com/123456789012/lambdacron-delivery"
        )
    return text


def parse_on_failure(text: str, name: str = "LAMBDACRON_ON_FAILURE") -> Destination:
    """A JSON destination (``{"sns": "arn:..."}``) from the variable ``name``."""
    from .jobfile import decode  # the job file's reader: no NaN, no field named twice

    if not text.strip():
        raise UsageError(f'{name}: empty; expected a JSON object such as {{"sns": TOPIC_ARN}}')
    try:
        return parse_destination(decode(text.encode("utf-8", "surrogatepass")), path="")
    except JobError as exc:
        raise UsageError(f"{name}: {exc}") from None


def parse_retry(text: str, name: str = "LAMBDACRON_RETRY") -> RetryPolicy:
    """A JSON retry policy (``{"attempts": 3, "backoff_seconds": 30}``) from ``name``."""
    from .fields import Problems
    from .jobfile import check_retry, decode

    problems = Problems()
    if not text.strip():
        raise UsageError(f'{name}: empty; expected a JSON object such as {{"attempts": 3}}')
    try:
        value = decode(text.encode("utf-8", "surrogatepass"))
    except JobError as exc:
        raise UsageError(f"{name}: {exc}") from None
    if not isinstance(value, dict):
        raise UsageError(f'{name}: expected a JSON object such as {{"attempts": 3}}')
    policy = check_retry(value, problems, "")
    if policy is None:
        raise UsageError(f"{name}: {problems.items[0]}".replace(": .", ": "))
    return policy


@dataclass(frozen=True)
class Settings:
    #: ``LAMBDACRON_STORE``; None when unset (the CLI then uses ``./jobs``).
    store_variable: str | None = None
    #: ``LAMBDACRON_BUCKET`` and ``LAMBDACRON_PREFIX``: the Lambda runner's store.
    bucket: str | None = None
    prefix: str = ""
    #: ``LAMBDACRON_INTERVAL`` (minutes): informational, EventBridge owns the schedule.
    interval: int | None = None
    #: Run types this runner accepts; a job of another type is reported, never run.
    allowed_types: frozenset[RunType] = frozenset(RunType)
    max_job_bytes: int = DEFAULT_MAX_JOB_BYTES
    workers: int = DEFAULT_WORKERS
    #: Shards a scheduled Lambda invocation fans out into; 1: none.
    shards: int = 1
    #: ``LAMBDACRON_DELIVERY_QUEUE``: the SQS queue URL the Lambda tick plans occurrences
    #: into, to run each at its second; None: jobs run at the ticks only.
    delivery_queue: str | None = None
    #: ``LAMBDACRON_LOOKAHEAD`` (seconds): how far past its time a Lambda tick plans; by
    #: default the interval and a minute, at most SQS's 900-second delay.
    lookahead_seconds: int | None = None

    @property
    def lookahead(self) -> timedelta:
        if self.lookahead_seconds is not None:
            return timedelta(seconds=self.lookahead_seconds)
        return timedelta(seconds=min(MAX_LAMBDA_LOOKAHEAD_SECONDS, (self.interval or 1) * 60 + 60))

    #: ``LAMBDACRON_ON_FAILURE``: where a job without its own ``on_failure`` sends notices.
    on_failure: Destination | None = None
    #: ``LAMBDACRON_RETRY``: the retry policy of a job without its own ``retry``.
    retry: RetryPolicy | None = None
    #: ``LAMBDACRON_DEADLINE_SECONDS``: the deadline of a job without ``deadline_seconds``.
    deadline_seconds: int | None = None

    @property
    def policies(self) -> Policies:
        return Policies(self.retry or NO_RETRY, self.deadline_seconds, self.on_failure)

    @property
    def store(self) -> str:
        """The store a command works on when ``--store`` is not given."""
        return self.store_variable or DEFAULT_STORE

    def open_store(self, given: str | None = None, *, create: bool = False) -> Store:
        """The CLI's store: ``given`` (``--store``), else ``LAMBDACRON_STORE``, else
        ``./jobs``. A store named by the variable that cannot be opened says so, since
        nothing on the command line names it."""
        if given == "":  # `--store "$UNSET"` must not fall back to ./jobs and run its jobs
            raise UsageError("--store: empty; give a directory or s3://BUCKET/PREFIX/")
        if given is not None:
            return open_store(given, create=create, max_job_bytes=self.max_job_bytes)
        return self._opened(self.store, "LAMBDACRON_STORE" if self.store_variable else None, create)

    def open_lambda_store(self) -> Store:
        """The Lambda runner's store, named by its variables."""
        origin = "LAMBDACRON_STORE" if self.store_variable else None
        return self._opened(self.lambda_store(), origin, create=False)

    def _opened(self, name: str, origin: str | None, create: bool) -> Store:
        try:
            return open_store(name, create=create, max_job_bytes=self.max_job_bytes)
        except (UsageError, StoreError) as exc:
            if origin is None:
                raise
            raise type(exc)(f"{origin}: {exc}") from None

    def lambda_store(self) -> str:
        """The store of the Lambda runner, which has no default."""
        from .store.s3 import bucket_problem, prefix_problem

        if self.store_variable:
            return self.store_variable
        if not self.bucket:
            raise UsageError("set LAMBDACRON_BUCKET (and LAMBDACRON_PREFIX) or LAMBDACRON_STORE")
        prefix = self.prefix.strip("/")
        for name, problem in (
            ("LAMBDACRON_BUCKET", bucket_problem(self.bucket)),
            ("LAMBDACRON_PREFIX", prefix_problem(prefix)),
        ):
            if problem:
                raise UsageError(f"{name}: {problem}")
        return f"s3://{self.bucket}/{prefix + '/' if prefix else ''}"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ

        def count(name: str, default: int, high: int | None = None) -> int:
            text = env.get(name)
            number = default if not text else parse_count(name, text)
            if high is not None and number > high:
                raise UsageError(f"{name}: {number} must be at most {high}")
            return number

        allowed = env.get("LAMBDACRON_ALLOWED_TYPES")
        interval = env.get("LAMBDACRON_INTERVAL")
        lookahead = env.get("LAMBDACRON_LOOKAHEAD")
        on_failure = env.get("LAMBDACRON_ON_FAILURE")
        retry = env.get("LAMBDACRON_RETRY")
        deadline = env.get("LAMBDACRON_DEADLINE_SECONDS")
        queue = env.get("LAMBDACRON_DELIVERY_QUEUE")  # checked by the runner that plans into it
        return cls(
            store_variable=env.get("LAMBDACRON_STORE") or None,
            bucket=env.get("LAMBDACRON_BUCKET") or None,
            prefix=env.get("LAMBDACRON_PREFIX", ""),
            interval=parse_count("LAMBDACRON_INTERVAL", interval) if interval else None,
            allowed_types=parse_allowed_types(allowed) if allowed else frozenset(RunType),
            max_job_bytes=count("LAMBDACRON_MAX_JOB_BYTES", DEFAULT_MAX_JOB_BYTES),
            workers=count("LAMBDACRON_WORKERS", DEFAULT_WORKERS),
            shards=count("LAMBDACRON_SHARDS", 1, MAX_SHARDS),
            delivery_queue=queue or None,
            lookahead_seconds=(
                parse_count(
                    "LAMBDACRON_LOOKAHEAD", lookahead, low=0, high=MAX_LAMBDA_LOOKAHEAD_SECONDS
                )
                if lookahead
                else None
            ),
            on_failure=parse_on_failure(on_failure) if on_failure else None,
            retry=parse_retry(retry) if retry else None,
            deadline_seconds=(
                parse_count("LAMBDACRON_DEADLINE_SECONDS", deadline, high=30 * 86_400)
                if deadline
                else None
            ),
        )
