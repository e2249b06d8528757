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
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from ..config import MAX_SHARDS
from ..errors import UsageError

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

# IAM reads these as wildcards or the start of a policy variable; its own escapes for them
# (policy variables with fixed values) are valid in a Resource and in a StringLike value.
_IAM_LITERAL = {"*": "${*}", "?": "${?}", "$": "${$}"}


def iam_literal(text: str) -> str:
    """``text`` as IAM matches it literally, in an ARN or a condition value."""
    return "".join(_IAM_LITERAL.get(char, char) for char in text)


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

    def __post_init__(self) -> None:
        if self.interval < 1:
            raise UsageError("--interval must be at least 1 minute")
        if not 1 <= self.timeout_s <= 900:
            raise UsageError("--timeout must be 1-900 seconds (Lambda's limit)")
        if not 128 <= self.memory_mb <= 10240:
            raise UsageError("--memory must be 128-10240 MB")
        if not 1 <= self.shards <= MAX_SHARDS:
            raise UsageError(f"--shards must be 1-{MAX_SHARDS}")

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

    def environment(self) -> dict[str, str]:
        env = {
            "LAMBDACRON_BUCKET": self.bucket,
            "LAMBDACRON_PREFIX": self.clean_prefix,
            "LAMBDACRON_INTERVAL": str(self.interval),
        }
        if self.allowed_types:
            env["LAMBDACRON_ALLOWED_TYPES"] = ",".join(self.allowed_types)
        if self.shards > 1:
            env["LAMBDACRON_SHARDS"] = str(self.shards)
        return env

    def function_configuration(self) -> dict[str, Any]:
        """The fields of Lambda's function configuration deploy owns (the role aside)."""
        return {
            "Runtime": self.runtime,
            "Handler": HANDLER,
            "Timeout": self.timeout_s,
            "MemorySize": self.memory_mb,
            "Environment": {"Variables": self.environment()},
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
    return {"Version": "2012-10-17", "Statement": statements}


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
class Current:
    """What exists now under the names of one function."""

    names: Names
    role: RoleState | None = None
    function: FunctionState | None = None
    rule: RuleState | None = None
    missing_buckets: frozenset[str] = frozenset()


# -- the plan


class Op(Enum):
    """The API operations of a plan, declared in the order they must run."""

    CREATE_ROLE = "create role"
    PUT_ROLE_POLICY = "put role policy"
    CREATE_FUNCTION = "create function"
    UPDATE_CODE = "update function code"
    UPDATE_CONFIGURATION = "update function configuration"
    PUT_RULE = "put rule"
    PUT_TARGETS = "put targets"
    ADD_PERMISSION = "add permission"
    REMOVE_TARGETS = "remove targets"
    DELETE_RULE = "delete rule"
    DELETE_FUNCTION = "delete function"
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


def _deployed_invoke_arns(current: Current) -> tuple[str, ...] | None:
    if current.role is None or current.role.policy is None:
        return None
    for statement in current.role.policy.get("Statement", []):
        if statement.get("Sid") == "InvokeTargets":
            resource = statement.get("Resource", [])
            return tuple([resource] if isinstance(resource, str) else resource)
    return ()


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
        invoke_arns=first(wanted.invoke_arns, _deployed_invoke_arns(current), ()),
        allowed_types=first(
            wanted.allowed_types, tuple(allowed.split(",")) if allowed else None, ()
        ),
        shards=first(wanted.shards, int(shards) if shards.isdigit() else None, DEFAULT_SHARDS),
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
        new = config.function_configuration()
        del new["Environment"]
        # A role of the user's own is kept by resolve(), so only a new --role-arn moves it.
        if config.role_arn is not None:
            old["Role"], new["Role"] = deployed.role, config.role_arn
        old_env = {f"environment {k}": v for k, v in deployed.environment.items()}
        new_env = {f"environment {k}": v for k, v in config.environment().items()}
        changes += _diff(function, Op.UPDATE_CONFIGURATION, old, new)
        changes += _diff(function, Op.UPDATE_CONFIGURATION, old_env, new_env)

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
    return Plan(config, names, tuple(changes))


def plan_undeploy(current: Current, delete_role: bool = True) -> Plan:
    """The changes that remove what deploy made under ``current.names``; never a bucket."""
    names = current.names
    changes: list[Change] = []
    if current.rule is not None:
        if current.rule.targets:
            changes.append(Change(f"rule {names.rule} targets", Action.DELETE, Op.REMOVE_TARGETS))
        changes.append(Change(f"rule {names.rule}", Action.DELETE, Op.DELETE_RULE))
    if current.function is not None:
        changes.append(Change(f"function {names.function}", Action.DELETE, Op.DELETE_FUNCTION))
    if delete_role and current.role is not None:
        if current.role.policy is not None:
            changes.append(
                Change(f"role {names.role} policy", Action.DELETE, Op.DELETE_ROLE_POLICY)
            )
        changes.append(Change(f"role {names.role}", Action.DELETE, Op.DELETE_ROLE))
    return Plan(None, names, tuple(changes))
