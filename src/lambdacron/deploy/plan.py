"""The pure half of deploy: what is wanted, what is deployed, and the difference.

Nothing here talks to AWS. :func:`plan_deploy` takes the wanted settings (the flags given;
``None`` for a flag not given) and the deployed state, read once, and returns the list of
changes; :func:`plan_undeploy` does the same for removal. A dry run prints the plan, a real
run hands it to :mod:`lambdacron.deploy.apply`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from enum import Enum
from typing import Any

from ..config import MAX_SHARDS, parse_retry
from ..errors import UsageError
from ..jobfile import MAX_TIMEOUT_SECONDS
from ..logs import NAMESPACE as ALARM_NAMESPACE

HANDLER = "lambdacron.lambda_handler"
RUNTIME = "python3.12"
TARGET_ID = "lambdacron"
PERMISSION_SID = "lambdacron-eventbridge"
POLICY_NAME = "lambdacron"
RULE_STATE = "ENABLED"
# The next tick is the retry, and a retried event would only re-evaluate the same window.
TARGET_RETRY = {"MaximumRetryAttempts": 0, "MaximumEventAgeInSeconds": 60}
TRUST_POLICY = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Principal": {"Service": "lambda.amazonaws.com"},
            "Action": "sts:AssumeRole",
        }
    ],
}

DEFAULT_PREFIX = ""
DEFAULT_INTERVAL = 1
DEFAULT_MEMORY_MB = 512
DEFAULT_TIMEOUT_S = 900
DEFAULT_SHARDS = 1

# The delivery queue: the tick plans occurrences into it, the function consumes it.
DELIVERY_ENV = "LAMBDACRON_DELIVERY_QUEUE"
ON_FAILURE_ENV = "LAMBDACRON_ON_FAILURE"
RETRY_ENV = "LAMBDACRON_RETRY"
DEADLINE_ENV = "LAMBDACRON_DEADLINE_SECONDS"
#: The longest store-wide deadline: a job's own deadline_seconds has the same bound.
MAX_DEADLINE_SECONDS = MAX_TIMEOUT_SECONDS
DELIVERY_BATCH_SIZE = 10
DELIVERY_RESPONSE_TYPES = ("ReportBatchItemFailures",)
MAX_RECEIVE_COUNT = 5
DLQ_RETENTION_S = 14 * 24 * 3600  # SQS's longest: time to look at what failed five times
# AWS asks for a visibility timeout of six times the function's timeout on a queue that feeds
# a function, so that a batch retried by the mapping is not delivered to a second poller.
VISIBILITY_PER_TIMEOUT = 6
MAX_VISIBILITY_S = 12 * 3600  # SQS's limit
# CloudWatch evaluates an alarm whose period is an hour or more over at most 7 days; the
# dead-man alarm watches three intervals.
DEAD_MAN_PERIODS = 3
MAX_ALARM_INTERVAL = 7 * 24 * 60 // DEAD_MAN_PERIODS

# IAM reads these as wildcards or the start of a policy variable; its own escapes for them
# (policy variables with fixed values) are valid in a Resource and in a StringLike value.
_IAM_LITERAL = {"*": "${*}", "?": "${?}", "$": "${$}"}


def iam_literal(text: str) -> str:
    """``text`` as IAM matches it literally, in an ARN or a condition value."""
    return "".join(_IAM_LITERAL.get(char, char) for char in text)


# -- failure destinations: where a failed run may be reported, and the right to report there


class Service(Enum):
    """The services a failure destination may be in, and the one action each needs."""

    SNS = "sns"
    SQS = "sqs"
    LAMBDA = "lambda"

    @property
    def action(self) -> str:
        return {
            Service.SNS: "sns:Publish",
            Service.SQS: "sqs:SendMessage",
            Service.LAMBDA: "lambda:InvokeFunction",
        }[self]

    @property
    def noun(self) -> str:
        return {Service.SNS: "an SNS topic", Service.SQS: "an SQS queue"}.get(
            self, "a Lambda function"
        )

    @property
    def sid(self) -> str:
        """The policy statement granting the destinations of ``--notify-arn`` here."""
        return {
            Service.SNS: "NotifyTopics",
            Service.SQS: "NotifyQueues",
            Service.LAMBDA: "NotifyFunctions",
        }[self]


# Names hold none of IAM's wildcard characters, so an ARN of this form grants itself only.
_ARN = re.compile(
    r"arn:(?P<partition>aws(?:-[a-z]+)*):(?P<service>sns|sqs|lambda):"
    r"(?P<region>[a-z]{2}(?:-[a-z]+)+-\d):\d{12}:(?P<resource>.+)"
)
_RESOURCE = {
    Service.SNS: re.compile(r"[A-Za-z0-9_-]{1,256}(?:\.fifo)?"),
    Service.SQS: re.compile(r"[A-Za-z0-9_-]{1,80}(?:\.fifo)?"),
    Service.LAMBDA: re.compile(r"function:[A-Za-z0-9_-]{1,64}(?::[A-Za-z0-9$_-]{1,128})?"),
}
_KINDS = "an SNS topic, an SQS queue or a Lambda function"


@dataclass(frozen=True)
class Destination:
    service: Service
    arn: str


def destination_arn(flag: str, text: str) -> Destination:
    """An SNS topic, SQS queue or Lambda function ARN, told apart by its service part."""
    match = _ARN.fullmatch(text)
    service = Service(match.group("service")) if match else None
    if match is None or service is None or not _RESOURCE[service].fullmatch(match["resource"]):
        raise UsageError(f"{flag}: {text!r} is not the ARN of {_KINDS}")
    return Destination(service, text)


# Both forms SQS has used for a queue's URL: sqs.REGION.amazonaws.com and REGION.queue....
_QUEUE_URL = re.compile(
    r"https://(?:sqs\.(?P<region>[a-z]{2}(?:-[a-z]+)+-\d)|(?P<legacy>[a-z]{2}(?:-[a-z]+)+-\d)"
    r"\.queue)\.amazonaws\.com(?P<china>\.cn)?/(?P<account>\d{12})/(?P<name>[A-Za-z0-9_-]{1,80}"
    r"(?:\.fifo)?)"
)


def queue_arn_of_url(url: str) -> str | None:
    """The ARN of the queue at ``url``: region from the host, account and name from the
    path; None when ``url`` is not an SQS queue URL."""
    match = _QUEUE_URL.fullmatch(url)
    if match is None:
        return None
    region = match["region"] or match["legacy"]
    partition = (
        "aws-cn" if match["china"] else "aws-us-gov" if region.startswith("us-gov-") else "aws"
    )
    return f"arn:{partition}:sqs:{region}:{match['account']}:{match['name']}"


_ON_FAILURE_FORMS = '{"sns": TOPIC_ARN}, {"sqs": QUEUE_URL} or {"lambda": FUNCTION_ARN}'


def on_failure_destination(text: str) -> tuple[str, Destination]:
    """The canonical JSON text of ``--on-failure`` and the destination it names."""

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        if len(items) != 1:
            raise ValueError("one key")
        return dict(items)

    def refuse(why: str) -> UsageError:
        return UsageError(f"--on-failure: {why}; expected {_ON_FAILURE_FORMS}")

    try:
        document = json.loads(text, object_pairs_hook=pairs)
    except ValueError:
        raise refuse(f"{text!r} is not a JSON object with one key") from None
    if not isinstance(document, dict):
        raise refuse(f"{text!r} is not a JSON object with one key")
    ((kind, value),) = document.items()
    if kind not in {service.value for service in Service} or not isinstance(value, str):
        raise refuse(f"{text!r} names no destination")
    service = Service(kind)
    if service is Service.SQS:
        arn = queue_arn_of_url(value)
        if arn is None:
            raise refuse(f"sqs: {value!r} is not an SQS queue URL")
    else:
        arn = value
        match = _ARN.fullmatch(value)
        if (
            match is None
            or match["service"] != kind
            or not _RESOURCE[service].fullmatch(match["resource"])
        ):
            raise refuse(f"{kind}: {value!r} is not the ARN of {service.noun}")
    return json.dumps({kind: value}), Destination(service, arn)


def retry_text(text: str) -> str:
    """The canonical JSON text of ``--retry``: every field, as the runner reads it back."""
    policy = parse_retry(text, "--retry")

    def seconds(value: float) -> int | float:
        # 30, not 30.0: the policy reads back the same, and the plan shows what was typed.
        return int(value) if value.is_integer() else value

    return json.dumps(
        {
            "attempts": policy.attempts,
            "backoff_seconds": seconds(policy.backoff_seconds),
            "max_backoff_seconds": seconds(policy.max_backoff_seconds),
            "on_interrupted": policy.on_interrupted,
        }
    )


class AlarmKind(Enum):
    """The alarms of ``--alarm-topic``; the value names the alarm after the function."""

    DEAD_MAN = "dead-man"  # no tick reported: the schedule, the function or its store broke
    FAILED = "failed"
    MISSED = "missed"
    STORE_ERRORS = "store-errors"
    DEAD_LETTERS = "dead-letters"  # deliveries that failed five times, in the DLQ


@dataclass(frozen=True)
class Names:
    """The names of everything deploy makes, all derived from the function's name."""

    function: str

    @property
    def role(self) -> str:
        return f"{self.function}-role"

    @property
    def rule(self) -> str:
        return f"{self.function}-tick"

    @property
    def queue(self) -> str:
        return f"{self.function}-delivery"

    @property
    def dlq(self) -> str:
        return f"{self.function}-delivery-dlq"

    def alarm(self, kind: AlarmKind) -> str:
        return f"{self.function}-{kind.value}"

    def is_managed_role(self, role_arn: str) -> bool:
        return role_arn.rsplit("/", 1)[-1] == self.role


@dataclass(frozen=True)
class Wanted:
    """The flags of one ``deploy`` run: ``None`` keeps the deployed value (or the default
    when nothing is deployed yet)."""

    function_name: str = "lambdacron"
    bucket: str | None = None
    prefix: str | None = None
    interval: int | None = None
    role_arn: str | None = None
    memory_mb: int | None = None
    timeout_s: int | None = None
    invoke_arns: tuple[str, ...] | None = None
    allowed_types: tuple[str, ...] | None = None
    shards: int | None = None
    delivery_queue: bool | None = None
    alarm_topic: str | None = None  # "": no alarms
    notify_arns: tuple[str, ...] | None = None
    on_failure: str | None = None  # JSON text; "": none
    retry: str | None = None  # JSON text; "": none
    deadline_seconds: int | None = None  # 0: none

    def __post_init__(self) -> None:
        # The flags given are checked before any AWS request, with the defaults standing in
        # for the rest: a mistake is named at once, not after the reads or behind a refused
        # connection. ``resolve`` checks the whole again against what is deployed.
        defaults: dict[str, Any] = {f.name: f.default for f in fields(DeployConfig)}
        values: dict[str, Any] = {
            f.name: defaults[f.name] if getattr(self, f.name) is None else getattr(self, f.name)
            for f in fields(self)
        }
        DeployConfig(**{**values, "bucket": self.bucket or ""})


@dataclass(frozen=True)
class DeployConfig:
    """One complete configuration: the flags given, the rest as deployed or by default."""

    bucket: str
    prefix: str = DEFAULT_PREFIX
    interval: int = DEFAULT_INTERVAL
    function_name: str = "lambdacron"
    role_arn: str | None = None  # None: create and own a least-privilege role
    memory_mb: int = DEFAULT_MEMORY_MB
    timeout_s: int = DEFAULT_TIMEOUT_S
    invoke_arns: tuple[str, ...] = ()
    allowed_types: tuple[str, ...] = ()
    runtime: str = RUNTIME
    shards: int = DEFAULT_SHARDS  # > 1: each tick fans out into this many shard invocations
    delivery_queue: bool = True  # False: tick-only, at the interval's resolution
    alarm_topic: str = ""  # an SNS topic ARN: the alarms notify it; "": no alarms
    notify_arns: tuple[str, ...] = ()  # failure destinations jobs may name
    on_failure: str = ""  # the store-wide failure destination, as canonical JSON
    retry: str = ""  # the store-wide retry policy, as canonical JSON
    deadline_seconds: int = 0  # the store-wide deadline of a run; 0: none

    def __post_init__(self) -> None:
        if self.interval < 1:
            raise UsageError("--interval must be at least 1 minute")
        if not 1 <= self.timeout_s <= 900:
            raise UsageError("--timeout must be 1-900 seconds (Lambda's limit)")
        if not 128 <= self.memory_mb <= 10240:
            raise UsageError("--memory must be 128-10240 MB")
        if not 1 <= self.shards <= MAX_SHARDS:
            raise UsageError(f"--shards must be 1-{MAX_SHARDS}")
        if self.alarm_topic:
            match = _ARN.fullmatch(self.alarm_topic)
            if (
                match is None
                or match["service"] != "sns"
                or not _RESOURCE[Service.SNS].fullmatch(match["resource"])
            ):
                raise UsageError(f"--alarm-topic: {self.alarm_topic!r} is not an SNS topic ARN")
            if self.interval > MAX_ALARM_INTERVAL:
                raise UsageError(
                    f"--alarm-topic: CloudWatch cannot watch {DEAD_MAN_PERIODS} intervals of "
                    f"{self.interval} minutes (at most {MAX_ALARM_INTERVAL} minutes each)"
                )
        for arn in self.notify_arns:
            destination_arn("--notify-arn", arn)
        if self.on_failure:
            on_failure_destination(self.on_failure)
        if self.retry:
            retry_text(self.retry)
        if not 0 <= self.deadline_seconds <= MAX_DEADLINE_SECONDS:
            raise UsageError(
                f"--deadline-seconds: {self.deadline_seconds} must be between 1 and "
                f"{MAX_DEADLINE_SECONDS}"
            )

    @property
    def names(self) -> Names:
        return Names(self.function_name)

    @property
    def clean_prefix(self) -> str:
        prefix = self.prefix.strip("/")
        return prefix + "/" if prefix else ""

    @property
    def schedule_expression(self) -> str:
        unit = "minute" if self.interval == 1 else "minutes"
        return f"rate({self.interval} {unit})"

    @property
    def store(self) -> str:
        """The store's URL as the function names it, the ``Store`` dimension of its metrics."""
        return f"s3://{self.bucket}/{self.clean_prefix}"

    @property
    def visibility_timeout_s(self) -> int:
        return min(VISIBILITY_PER_TIMEOUT * self.timeout_s, MAX_VISIBILITY_S)

    def environment(self, queue_url: str) -> dict[str, str]:
        """The function's environment; ``queue_url`` is the delivery queue's (unused when
        there is none)."""
        env = {
            "LAMBDACRON_BUCKET": self.bucket,
            "LAMBDACRON_PREFIX": self.clean_prefix,
            "LAMBDACRON_INTERVAL": str(self.interval),
        }
        if self.allowed_types:
            env["LAMBDACRON_ALLOWED_TYPES"] = ",".join(self.allowed_types)
        if self.shards > 1:
            env["LAMBDACRON_SHARDS"] = str(self.shards)
        if self.delivery_queue:
            env[DELIVERY_ENV] = queue_url
        if self.on_failure:
            env[ON_FAILURE_ENV] = self.on_failure
        if self.retry:
            env[RETRY_ENV] = self.retry
        if self.deadline_seconds:
            env[DEADLINE_ENV] = str(self.deadline_seconds)
        return env

    def function_configuration(self, queue_url: str) -> dict[str, Any]:
        """The fields of Lambda's function configuration deploy owns (the role aside)."""
        return {
            "Runtime": self.runtime,
            "Handler": HANDLER,
            "Timeout": self.timeout_s,
            "MemorySize": self.memory_mb,
            "Environment": {"Variables": self.environment(queue_url)},
        }


def role_policy(config: DeployConfig, partition: str = "aws") -> dict[str, Any]:
    """The least-privilege policy of the runner's role."""
    bucket_arn = f"arn:{partition}:s3:::{config.bucket}"
    # A prefix is literal text: a "*" or "?" in it must not widen the grant.
    prefix = iam_literal(config.clean_prefix)
    statements: list[dict[str, Any]] = [
        {
            "Sid": "ListJobs",
            "Effect": "Allow",
            "Action": "s3:ListBucket",
            "Resource": bucket_arn,
            "Condition": {"StringLike": {"s3:prefix": [f"{prefix}*"]}},
        },
        {
            "Sid": "ReadWriteJobs",
            "Effect": "Allow",
            "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"],
            "Resource": f"{bucket_arn}/{prefix}*",
        },
        {
            "Sid": "Logs",
            "Effect": "Allow",
            "Action": ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
            "Resource": f"arn:{partition}:logs:*:*:log-group:/aws/lambda/{config.function_name}*",
        },
    ]
    if config.shards > 1:
        statements.append(
            {
                "Sid": "FanOutToShards",
                "Effect": "Allow",
                "Action": "lambda:InvokeFunction",
                "Resource": f"arn:{partition}:lambda:*:*:function:{config.function_name}",
            }
        )
    if config.invoke_arns:
        statements.append(
            {
                "Sid": "InvokeTargets",
                "Effect": "Allow",
                "Action": "lambda:InvokeFunction",
                "Resource": sorted(config.invoke_arns),
            }
        )
    if config.delivery_queue:
        # By name in any region and account, as the logs: the role is written before the
        # queue exists. The dead-letter queue needs nothing: SQS itself moves messages there.
        queue = f"arn:{partition}:sqs:*:*:{config.names.queue}"
        statements += [
            {
                "Sid": "PlanDeliveries",
                "Effect": "Allow",
                "Action": "sqs:SendMessage",
                "Resource": queue,
            },
            {
                # What the event source mapping does with the function's role.
                "Sid": "ConsumeDeliveries",
                "Effect": "Allow",
                "Action": [
                    "sqs:ChangeMessageVisibility",
                    "sqs:DeleteMessage",
                    "sqs:GetQueueAttributes",
                    "sqs:ReceiveMessage",
                ],
                "Resource": queue,
            },
        ]
    destinations = [destination_arn("--notify-arn", arn) for arn in config.notify_arns]
    for service in Service:
        arns = sorted({d.arn for d in destinations if d.service is service})
        if arns:
            statements.append(
                {"Sid": service.sid, "Effect": "Allow", "Action": service.action, "Resource": arns}
            )
    if config.on_failure:
        _, default = on_failure_destination(config.on_failure)
        statements.append(
            {
                "Sid": "OnFailureDefault",
                "Effect": "Allow",
                "Action": default.service.action,
                "Resource": default.arn,
            }
        )
    return {"Version": "2012-10-17", "Statement": statements}


def queue_attributes(config: DeployConfig, dlq_arn: str) -> dict[str, Any]:
    """The attributes of the delivery queue deploy owns, as compared (numbers as numbers)."""
    return {
        "VisibilityTimeout": config.visibility_timeout_s,
        "RedrivePolicy": {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": MAX_RECEIVE_COUNT},
    }


DLQ_ATTRIBUTES: dict[str, Any] = {"MessageRetentionPeriod": DLQ_RETENTION_S}

MAPPING_SETTINGS: dict[str, Any] = {
    "BatchSize": DELIVERY_BATCH_SIZE,
    "FunctionResponseTypes": list(DELIVERY_RESPONSE_TYPES),
    "Enabled": True,
}


#: The fields of an alarm deploy owns: those it passes to PutMetricAlarm, the name aside.
ALARM_FIELDS = (
    "AlarmDescription",
    "Namespace",
    "MetricName",
    "Dimensions",
    "Statistic",
    "Period",
    "EvaluationPeriods",
    "DatapointsToAlarm",
    "Threshold",
    "ComparisonOperator",
    "TreatMissingData",
    "AlarmActions",
)


def alarms(config: DeployConfig) -> dict[str, dict[str, Any]]:
    """The alarms of ``--alarm-topic``, by name, each as the fields of PutMetricAlarm."""
    if not config.alarm_topic:
        return {}
    names = config.names
    period = config.interval * 60
    store = [{"Name": "Store", "Value": config.store}]

    def alarm(
        metric: str,
        comparison: str,
        threshold: float,
        description: str,
        *,
        periods: int = 1,
        missing: str = "notBreaching",
        namespace: str = ALARM_NAMESPACE,
        dimensions: list[dict[str, str]] = store,
        statistic: str = "Sum",
        seconds: int = period,
    ) -> dict[str, Any]:
        return {
            "AlarmDescription": f"lambdacron {names.function}: {description}",
            "Namespace": namespace,
            "MetricName": metric,
            "Dimensions": dimensions,
            "Statistic": statistic,
            "Period": seconds,
            "EvaluationPeriods": periods,
            "DatapointsToAlarm": periods,
            "Threshold": threshold,
            "ComparisonOperator": comparison,
            "TreatMissingData": missing,
            "AlarmActions": [config.alarm_topic],
        }

    above = "GreaterThanThreshold"
    specs = {
        AlarmKind.DEAD_MAN: alarm(
            "Ticks",
            "LessThanThreshold",
            1.0,
            f"no tick reported for {DEAD_MAN_PERIODS} intervals",
            periods=DEAD_MAN_PERIODS,
            missing="breaching",  # a runner that never runs reports nothing at all
        ),
        AlarmKind.FAILED: alarm("Failed", above, 0.0, "a job ran and failed"),
        AlarmKind.MISSED: alarm("Missed", above, 0.0, "an occurrence was missed"),
        AlarmKind.STORE_ERRORS: alarm(
            "StoreErrors",
            above,
            0.0,
            f"store errors for {DEAD_MAN_PERIODS} intervals in a row",
            # One is usually made good at the next tick; a run of them is not.
            periods=DEAD_MAN_PERIODS,
        ),
    }
    if config.delivery_queue:
        specs[AlarmKind.DEAD_LETTERS] = alarm(
            "ApproximateNumberOfMessagesVisible",
            above,
            0.0,
            f"deliveries failed {MAX_RECEIVE_COUNT} times, kept in {names.dlq}",
            namespace="AWS/SQS",
            dimensions=[{"Name": "QueueName", "Value": names.dlq}],
            statistic="Maximum",
            seconds=300,
        )
    return {names.alarm(kind): spec for kind, spec in specs.items()}


# -- the deployed state, as read from AWS


@dataclass(frozen=True)
class RoleState:
    arn: str
    policy: Mapping[str, Any] | None  # the inline policy deploy writes; None: absent


@dataclass(frozen=True)
class FunctionState:
    arn: str
    role: str
    code_sha256: str
    configuration: Mapping[str, Any]  # the fields of DeployConfig.function_configuration
    rule_permission: bool  # the rule's invoke permission (PERMISSION_SID) is present

    @property
    def environment(self) -> Mapping[str, str]:
        variables: Mapping[str, str] = self.configuration.get("Environment", {}).get(
            "Variables", {}
        )
        return variables


@dataclass(frozen=True)
class RuleState:
    arn: str
    schedule: str
    state: str
    targets: tuple[Mapping[str, Any], ...]


@dataclass(frozen=True)
class QueueState:
    url: str
    arn: str
    attributes: Mapping[str, Any]  # those deploy owns, as compared (see queue_attributes)


@dataclass(frozen=True)
class MappingState:
    uuid: str
    settings: Mapping[str, Any]  # the fields of MAPPING_SETTINGS


@dataclass(frozen=True)
class Current:
    """What exists now under the names of one function."""

    names: Names
    role: RoleState | None = None
    function: FunctionState | None = None
    rule: RuleState | None = None
    missing_buckets: frozenset[str] = frozenset()
    queue: QueueState | None = None
    dlq: QueueState | None = None
    mapping: MappingState | None = None  # the delivery queue's, to this function
    alarms: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # ours, by name


# -- the plan


class Op(Enum):
    """The API operations of a plan, declared in the order they must run: the role may
    consume the queue before the mapping is made, the queue exists before the function
    names it, and a mapping stops before its queue goes."""

    CREATE_ROLE = "create role"
    PUT_ROLE_POLICY = "put role policy"
    CREATE_DLQ = "create dead-letter queue"
    UPDATE_DLQ = "set dead-letter queue attributes"
    CREATE_QUEUE = "create queue"
    UPDATE_QUEUE = "set queue attributes"
    CREATE_FUNCTION = "create function"
    UPDATE_CODE = "update function code"
    UPDATE_CONFIGURATION = "update function configuration"
    CREATE_MAPPING = "create event source mapping"
    UPDATE_MAPPING = "update event source mapping"
    PUT_RULE = "put rule"
    PUT_TARGETS = "put targets"
    ADD_PERMISSION = "add permission"
    PUT_ALARMS = "put metric alarm"
    DELETE_ALARMS = "delete alarms"
    REMOVE_TARGETS = "remove targets"
    DELETE_RULE = "delete rule"
    DELETE_MAPPING = "delete event source mapping"
    DELETE_FUNCTION = "delete function"
    DELETE_QUEUE = "delete queue"
    DELETE_DLQ = "delete dead-letter queue"
    DELETE_ROLE_POLICY = "delete role policy"
    DELETE_ROLE = "delete role"


class Action(Enum):
    CREATE = "create"
    UPDATE = "update"
    DELETE = "delete"


_ABSENT = object()


@dataclass(frozen=True)
class Change:
    """One difference between wanted and deployed, and the operation that removes it."""

    resource: str
    action: Action
    op: Op
    field: str = ""
    old: Any = _ABSENT
    new: Any = _ABSENT
    name: str = ""  # the resource's own name, where one operation serves several (alarms)

    def __str__(self) -> str:
        if self.action is not Action.UPDATE:
            return f"{self.resource}: {self.action.value}"
        return f"{self.resource}: {self.field} {_show(self.old)} → {_show(self.new)}"


def _show(value: Any) -> str:
    return "(none)" if value is _ABSENT else json.dumps(value, sort_keys=True)


@dataclass(frozen=True)
class Plan:
    config: DeployConfig | None  # None for undeploy
    names: Names
    changes: tuple[Change, ...] = field(default_factory=tuple)

    @property
    def ops(self) -> list[Op]:
        """Each operation the changes need, once, in the order they must run."""
        needed = {change.op for change in self.changes}
        return [op for op in Op if op in needed]

    def names_for(self, op: Op) -> list[str]:
        """The resources ``op`` acts on, each once, in the plan's order."""
        return list(dict.fromkeys(c.name for c in self.changes if c.op is op and c.name))

    def summary(self, dry_run: bool) -> str:
        """The line that closes the printed plan."""
        what = f"function {self.names.function}"
        if not self.changes:
            if self.config is None:
                return f"{what}: nothing deployed, nothing to remove"
            return f"{what}: up to date, nothing to change"
        count = f"{len(self.changes)} change{'s' if len(self.changes) > 1 else ''}"
        if dry_run:
            return f"dry run: {count} for {what}, none applied"
        return f"{count} for {what} applied"


def _diff(resource: str, op: Op, old: Mapping[str, Any], new: Mapping[str, Any]) -> list[Change]:
    """One UPDATE per field that differs, in a stable order; a missing field is (none)."""
    return [
        Change(resource, Action.UPDATE, op, key, old.get(key, _ABSENT), new.get(key, _ABSENT))
        for key in sorted(set(old) | set(new))
        if old.get(key, _ABSENT) != new.get(key, _ABSENT)
    ]


def _flatten(value: Any, path: str = "") -> dict[str, Any]:
    """A policy document as ``path -> leaf``; statements are addressed by their Sid so that
    a change reads as the statement and field it touches."""
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for key, item in value.items():
            out.update(_flatten(item, f"{path}.{key}" if path else str(key)))
        return out
    if (
        isinstance(value, list)
        and value
        and all(isinstance(item, Mapping) and "Sid" in item for item in value)
    ):
        out = {}
        for item in value:
            rest = {k: v for k, v in item.items() if k != "Sid"}
            out.update(_flatten(rest, f"{path}[{item['Sid']}]"))
        return out
    return {path: value}


_RATE = re.compile(r"rate\((\d+) minutes?\)")


def _deployed_interval(current: Current) -> int | None:
    if current.rule is not None and (match := _RATE.fullmatch(current.rule.schedule)):
        return int(match.group(1))
    text = current.function.environment.get("LAMBDACRON_INTERVAL") if current.function else None
    return int(text) if text and text.isdigit() else None


def _granted(current: Current, *sids: str) -> tuple[str, ...] | None:
    """The resources of the deployed policy's statements ``sids``; None without a policy."""
    if current.role is None or current.role.policy is None:
        return None
    found: list[str] = []
    for statement in current.role.policy.get("Statement", []):
        if statement.get("Sid") in sids:
            resource = statement.get("Resource", [])
            found += [resource] if isinstance(resource, str) else resource
    return tuple(found)


def _deployed_alarm_topic(current: Current) -> str | None:
    for alarm in current.alarms.values():
        actions = alarm.get("AlarmActions") or []
        if actions:
            return str(actions[0])
    return None


def _deployed_delivery(current: Current) -> bool | None:
    if current.function is None:
        return None
    return DELIVERY_ENV in current.function.environment


def resolve(wanted: Wanted, current: Current) -> DeployConfig:
    """The complete configuration: each flag given wins; each one not given keeps what is
    deployed, and falls back to the default only when nothing is."""
    function = current.function
    env: Mapping[str, str] = function.environment if function else {}
    config = function.configuration if function else {}

    def first(*values: Any) -> Any:
        return next(v for v in values if v is not None)

    bucket = first(wanted.bucket, env.get("LAMBDACRON_BUCKET"), "")
    if not bucket:
        raise UsageError(
            f"--bucket is required: function {wanted.function_name} is not deployed yet"
        )
    if bucket in current.missing_buckets:
        if wanted.bucket is not None:
            raise UsageError(f"--bucket: no bucket named {bucket!r}; deploy never creates one")
        raise UsageError(
            f"the deployed bucket {bucket!r} of function {wanted.function_name} no longer "
            "exists; give --bucket"
        )
    allowed = env.get("LAMBDACRON_ALLOWED_TYPES")
    shards = env.get("LAMBDACRON_SHARDS", "")
    on_failure = first(wanted.on_failure, env.get(ON_FAILURE_ENV), "")
    retry = first(wanted.retry, env.get(RETRY_ENV), "")
    deadline = env.get(DEADLINE_ENV, "")
    deployed_role = function.role if function else None
    return DeployConfig(
        bucket=bucket,
        prefix=first(wanted.prefix, env.get("LAMBDACRON_PREFIX"), DEFAULT_PREFIX),
        interval=first(wanted.interval, _deployed_interval(current), DEFAULT_INTERVAL),
        function_name=wanted.function_name,
        role_arn=(
            wanted.role_arn
            if wanted.role_arn is not None
            else deployed_role
            if deployed_role and not current.names.is_managed_role(deployed_role)
            else None
        ),
        memory_mb=first(wanted.memory_mb, config.get("MemorySize"), DEFAULT_MEMORY_MB),
        timeout_s=first(wanted.timeout_s, config.get("Timeout"), DEFAULT_TIMEOUT_S),
        invoke_arns=first(wanted.invoke_arns, _granted(current, "InvokeTargets"), ()),
        allowed_types=first(
            wanted.allowed_types, tuple(allowed.split(",")) if allowed else None, ()
        ),
        shards=first(wanted.shards, int(shards) if shards.isdigit() else None, DEFAULT_SHARDS),
        # A function deployed without the queue (before it existed, or opted out) stays
        # tick-only until --delivery-queue is given.
        delivery_queue=first(wanted.delivery_queue, _deployed_delivery(current), True),
        alarm_topic=first(wanted.alarm_topic, _deployed_alarm_topic(current), ""),
        notify_arns=tuple(
            sorted(
                set(
                    first(
                        wanted.notify_arns,
                        _granted(current, *(service.sid for service in Service)),
                        (),
                    )
                )
            )
        ),
        on_failure=on_failure_destination(on_failure)[0] if on_failure else "",
        retry=retry_text(retry) if retry else "",
        deadline_seconds=first(
            wanted.deadline_seconds,
            # Text deploy never writes is read as none, and the plan shows it go.
            int(deadline) if re.fullmatch(r"[0-9]{1,8}", deadline) else None,
            0,
        ),
    )


def plan_deploy(wanted: Wanted, current: Current, code_sha256: str) -> Plan:
    """The changes that turn ``current`` into what ``wanted`` asks for."""
    config = resolve(wanted, current)
    names = current.names
    changes: list[Change] = []

    if config.role_arn is None:
        role = f"role {names.role}"
        policy = role_policy(config)
        if current.role is None:
            changes.append(Change(role, Action.CREATE, Op.CREATE_ROLE))
        if current.role is None or current.role.policy is None:
            changes.append(Change(f"{role} policy", Action.CREATE, Op.PUT_ROLE_POLICY))
        else:
            changes += _diff(
                f"{role} policy",
                Op.PUT_ROLE_POLICY,
                _flatten(current.role.policy),
                _flatten(policy),
            )

    changes += _plan_queues(config, current)
    queue_url = pending_queue_url(names) if current.queue is None else current.queue.url

    function = f"function {names.function}"
    if current.function is None:
        changes.append(Change(function, Action.CREATE, Op.CREATE_FUNCTION))
    else:
        deployed = current.function
        if deployed.code_sha256 != code_sha256:
            changes.append(
                Change(
                    function,
                    Action.UPDATE,
                    Op.UPDATE_CODE,
                    field="code",
                    old=deployed.code_sha256,
                    new=code_sha256,
                )
            )
        old = {k: v for k, v in deployed.configuration.items() if k != "Environment"}
        new = config.function_configuration(queue_url)
        del new["Environment"]
        # A role of the user's own is kept by resolve(), so only a new --role-arn moves it.
        if config.role_arn is not None:
            old["Role"], new["Role"] = deployed.role, config.role_arn
        old_env = {f"environment {k}": v for k, v in deployed.environment.items()}
        new_env = {f"environment {k}": v for k, v in config.environment(queue_url).items()}
        changes += _diff(function, Op.UPDATE_CONFIGURATION, old, new)
        changes += _diff(function, Op.UPDATE_CONFIGURATION, old_env, new_env)

    if config.delivery_queue:
        mapping = _mapping_label(names)
        if current.mapping is None:
            changes.append(Change(mapping, Action.CREATE, Op.CREATE_MAPPING))
        else:
            settings = current.mapping.settings
            changes += _diff(mapping, Op.UPDATE_MAPPING, settings, MAPPING_SETTINGS)

    rule = f"rule {names.rule}"
    target = f"{rule} target"
    if current.rule is None:
        changes.append(Change(rule, Action.CREATE, Op.PUT_RULE))
        changes.append(Change(target, Action.CREATE, Op.PUT_TARGETS))
    else:
        changes += _diff(
            rule,
            Op.PUT_RULE,
            {"schedule": current.rule.schedule, "state": current.rule.state},
            {"schedule": config.schedule_expression, "state": RULE_STATE},
        )
        ours = [t for t in current.rule.targets if t.get("Id") == TARGET_ID]
        if not ours:
            changes.append(Change(target, Action.CREATE, Op.PUT_TARGETS))
        elif current.function is None:
            # The function is created by this plan: its ARN is known only then, so the
            # target is written again rather than compared.
            changes.append(
                Change(target, Action.UPDATE, Op.PUT_TARGETS, "Arn", ours[0].get("Arn"), function)
            )
        else:
            changes += _diff(
                target,
                Op.PUT_TARGETS,
                {"Arn": ours[0].get("Arn"), "RetryPolicy": ours[0].get("RetryPolicy")},
                {"Arn": current.function.arn, "RetryPolicy": TARGET_RETRY},
            )

    if current.function is None or not current.function.rule_permission:
        changes.append(
            Change(f"{function} permission for the rule", Action.CREATE, Op.ADD_PERMISSION)
        )

    wanted_alarms = alarms(config)
    for name, spec in wanted_alarms.items():
        label = f"alarm {name}"
        if name not in current.alarms:
            changes.append(Change(label, Action.CREATE, Op.PUT_ALARMS, name=name))
        else:
            changes += [
                replace(change, name=name)
                for change in _diff(label, Op.PUT_ALARMS, current.alarms[name], spec)
            ]
    # Alarms of an earlier deploy that this one does not want (--alarm-topic '', or the
    # dead-letter alarm of a queue now gone) would watch nothing, or page for nothing.
    changes += [
        Change(f"alarm {name}", Action.DELETE, Op.DELETE_ALARMS, name=name)
        for name in current.alarms
        if name not in wanted_alarms
    ]
    if not config.delivery_queue:
        changes += _remove_delivery(current)
    return Plan(config, names, tuple(changes))


def _mapping_label(names: Names) -> str:
    return f"event source mapping {names.queue} → {names.function}"


def pending_queue_url(names: Names) -> str:
    """What a plan shows for the URL of a delivery queue it creates: SQS makes the URL."""
    return f"(the URL of the new queue {names.queue})"


def _sibling_arn(arn: str, name: str) -> str:
    """The ARN of the queue ``name`` in the region and account of the queue ``arn``."""
    return f"{arn.rsplit(':', 1)[0]}:{name}"


def _plan_queues(config: DeployConfig, current: Current) -> list[Change]:
    names = current.names
    if not config.delivery_queue:
        return []
    changes: list[Change] = []
    dlq = f"queue {names.dlq}"
    if current.dlq is None:
        changes.append(Change(dlq, Action.CREATE, Op.CREATE_DLQ))
    else:
        changes += _diff(dlq, Op.UPDATE_DLQ, current.dlq.attributes, DLQ_ATTRIBUTES)
    queue = f"queue {names.queue}"
    if current.queue is None:
        changes.append(Change(queue, Action.CREATE, Op.CREATE_QUEUE))
    else:
        # Both queues live in one region and account: the DLQ's ARN is known even while
        # this plan creates it.
        dlq_arn = (
            current.dlq.arn
            if current.dlq is not None
            else _sibling_arn(current.queue.arn, names.dlq)
        )
        changes += _diff(
            queue, Op.UPDATE_QUEUE, current.queue.attributes, queue_attributes(config, dlq_arn)
        )
    return changes


def _remove_delivery(current: Current) -> list[Change]:
    """The mapping first, so that nothing consumes a queue being deleted."""
    names = current.names
    changes: list[Change] = []
    if current.mapping is not None:
        changes.append(Change(_mapping_label(names), Action.DELETE, Op.DELETE_MAPPING))
    if current.queue is not None:
        changes.append(Change(f"queue {names.queue}", Action.DELETE, Op.DELETE_QUEUE))
    if current.dlq is not None:
        changes.append(Change(f"queue {names.dlq}", Action.DELETE, Op.DELETE_DLQ))
    return changes


def plan_undeploy(current: Current, delete_role: bool = True) -> Plan:
    """The changes that remove what deploy made under ``current.names``; never a bucket."""
    names = current.names
    changes: list[Change] = [
        Change(f"alarm {name}", Action.DELETE, Op.DELETE_ALARMS, name=name)
        for name in current.alarms
    ]
    if current.rule is not None:
        if current.rule.targets:
            changes.append(Change(f"rule {names.rule} targets", Action.DELETE, Op.REMOVE_TARGETS))
        changes.append(Change(f"rule {names.rule}", Action.DELETE, Op.DELETE_RULE))
    delivery = _remove_delivery(current)
    changes += [c for c in delivery if c.op is Op.DELETE_MAPPING]
    if current.function is not None:
        changes.append(Change(f"function {names.function}", Action.DELETE, Op.DELETE_FUNCTION))
    changes += [c for c in delivery if c.op is not Op.DELETE_MAPPING]
    if delete_role and current.role is not None:
        if current.role.policy is not None:
            changes.append(
                Change(f"role {names.role} policy", Action.DELETE, Op.DELETE_ROLE_POLICY)
            )
        changes.append(Change(f"role {names.role}", Action.DELETE, Op.DELETE_ROLE))
    return Plan(None, names, tuple(changes))
