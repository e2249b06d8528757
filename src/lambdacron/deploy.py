"""``lambdacron deploy`` / ``undeploy``: the Lambda runner on AWS, idempotently.

deploy creates or updates four things and nothing else:

1. an IAM role with a least-privilege inline policy: list the job prefix; get, put and
   delete objects under it; invoke only the functions named with ``--invoke-arn``; write
   the function's own logs;
2. the Lambda function (handler ``lambdacron.lambda_handler``, the zip of ``package``);
3. an EventBridge rule ``rate(N minutes)`` targeting the function with retries off (the
   next tick is the retry, and a retried event would only re-evaluate the same window);
4. the permission for that rule to invoke the function.

Each step reads what exists and changes only what differs, so a second run changes
nothing. ``undeploy`` removes what deploy made and never touches the bucket or its jobs.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .errors import LambdacronError, UsageError
from .package import build_zip, code_sha256

HANDLER = "lambdacron.lambda_handler"
RUNTIME = "python3.12"
TARGET_ID = "lambdacron"
PERMISSION_SID = "lambdacron-eventbridge"
POLICY_NAME = "lambdacron"
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


class DeployError(LambdacronError):
    """AWS refused a deploy step."""


@dataclass(frozen=True)
class DeployConfig:
    bucket: str
    prefix: str
    interval: int
    function_name: str = "lambdacron"
    role_arn: str | None = None  # None: create and own a least-privilege role
    memory_mb: int = 512
    timeout_s: int = 900
    invoke_arns: tuple[str, ...] = ()
    allowed_types: tuple[str, ...] = ()
    runtime: str = RUNTIME
    shards: int = 1  # > 1: each tick fans out into this many shard invocations

    def __post_init__(self) -> None:
        if self.interval < 1:
            raise UsageError("--interval must be at least 1 minute")
        if not 1 <= self.timeout_s <= 900:
            raise UsageError("--timeout must be 1-900 seconds (Lambda's limit)")
        if not 128 <= self.memory_mb <= 10240:
            raise UsageError("--memory must be 128-10240 MB")
        if not 1 <= self.shards <= 256:
            raise UsageError("--shards must be 1-256")

    @property
    def role_name(self) -> str:
        return f"{self.function_name}-role"

    @property
    def rule_name(self) -> str:
        return f"{self.function_name}-tick"

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


def role_policy(config: DeployConfig, partition: str = "aws") -> dict[str, Any]:
    """The least-privilege policy of the runner's role."""
    bucket_arn = f"arn:{partition}:s3:::{config.bucket}"
    statements: list[dict[str, Any]] = [
        {
            "Sid": "ListJobs",
            "Effect": "Allow",
            "Action": "s3:ListBucket",
            "Resource": bucket_arn,
            "Condition": {"StringLike": {"s3:prefix": [f"{config.clean_prefix}*"]}},
        },
        {
            "Sid": "ReadWriteJobs",
            "Effect": "Allow",
            "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"],
            "Resource": f"{bucket_arn}/{config.clean_prefix}*",
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


@dataclass
class Step:
    resource: str
    action: str  # "create", "update ...", "unchanged", "delete", "absent"
    apply: Callable[[], Any] | None = None


@dataclass
class Deployer:
    """Plans and applies deploy/undeploy against injected boto3 clients."""

    iam: Any
    lambda_: Any
    events: Any
    log: Callable[[str], None] = print
    plan: list[Step] = field(default_factory=list)

    @classmethod
    def from_session(
        cls, region: str | None = None, log: Callable[[str], None] = print
    ) -> Deployer:
        import boto3
        from botocore.config import Config

        session = boto3.session.Session(region_name=region)
        config = Config(retries={"mode": "standard"})
        return cls(
            session.client("iam", config=config),
            session.client("lambda", config=config),
            session.client("events", config=config),
            log,
        )

    # -- helpers

    def _call(self, what: str, fn: Callable[..., Any], **kwargs: Any) -> Any:
        try:
            return fn(**kwargs)
        except Exception as exc:
            code = getattr(exc, "response", {}).get("Error", {}).get("Code", type(exc).__name__)
            raise DeployError(f"{what}: {code}: {exc}"[:600]) from exc

    @staticmethod
    def _missing(exc: Exception) -> bool:
        code = getattr(exc, "response", {}).get("Error", {}).get("Code", "")
        return code in ("NoSuchEntity", "ResourceNotFoundException", "NoSuchEntityException")

    def _get(self, fn: Callable[..., Any], **kwargs: Any) -> Any:
        """A read that returns None when the resource does not exist."""
        try:
            return fn(**kwargs)
        except Exception as exc:
            if self._missing(exc):
                return None
            raise DeployError(f"{getattr(fn, '__name__', 'read')}: {exc}"[:600]) from exc

    def _step(self, resource: str, action: str, apply: Callable[[], Any] | None = None) -> None:
        self.plan.append(Step(resource, action, apply))

    def run(self, dry_run: bool) -> list[Step]:
        for step in self.plan:
            self.log(
                f"{step.resource}: {step.action}" + (" (dry run)" if dry_run and step.apply else "")
            )
            if step.apply is not None and not dry_run:
                step.apply()
        return self.plan

    # -- deploy

    def deploy(
        self, config: DeployConfig, dry_run: bool = False, zip_bytes: bytes | None = None
    ) -> list[Step]:
        self.plan = []
        code = zip_bytes if zip_bytes is not None else build_zip()
        role_arn = config.role_arn or self._plan_role(config)
        function_arn = self._plan_function(config, role_arn, code)
        rule_arn = self._plan_rule(config, function_arn)
        self._plan_permission(config, rule_arn)
        return self.run(dry_run)

    def _plan_role(self, config: DeployConfig) -> str:
        name = config.role_name
        existing = self._get(self.iam.get_role, RoleName=name)
        policy = json.dumps(role_policy(config), sort_keys=True)

        def put_policy() -> Any:
            return self._call(
                "put role policy",
                self.iam.put_role_policy,
                RoleName=name,
                PolicyName=POLICY_NAME,
                PolicyDocument=policy,
            )

        if existing is None:
            self._step(
                f"role {name}",
                "create",
                lambda: self._call(
                    "create role",
                    self.iam.create_role,
                    RoleName=name,
                    AssumeRolePolicyDocument=json.dumps(TRUST_POLICY),
                    Description="lambdacron runner (managed by lambdacron deploy)",
                ),
            )
            self._step(f"role {name} policy", "create", put_policy)
            return f"arn:aws:iam::ACCOUNT:role/{name}"  # the real one exists after apply
        current = self._get(self.iam.get_role_policy, RoleName=name, PolicyName=POLICY_NAME)
        current_doc = current["PolicyDocument"] if current else None
        if isinstance(current_doc, str):
            current_doc = json.loads(current_doc)
        if current_doc is not None and json.dumps(current_doc, sort_keys=True) == policy:
            self._step(f"role {name}", "unchanged")
        else:
            self._step(f"role {name} policy", "update", put_policy)
        return str(existing["Role"]["Arn"])

    def _role_arn_now(self, config: DeployConfig, planned: str) -> str:
        # A role created in this run has its real ARN only after creation.
        if config.role_arn:
            return config.role_arn
        role = self._get(self.iam.get_role, RoleName=config.role_name)
        return str(role["Role"]["Arn"]) if role else planned

    def _plan_function(self, config: DeployConfig, role_arn: str, code: bytes) -> str:
        name = config.function_name
        wanted = {
            "Runtime": config.runtime,
            "Handler": HANDLER,
            "Timeout": config.timeout_s,
            "MemorySize": config.memory_mb,
            "Environment": {"Variables": config.environment()},
        }
        existing = self._get(self.lambda_.get_function, FunctionName=name)
        if existing is None:
            self._step(
                f"function {name}",
                "create",
                lambda: self._call(
                    "create function",
                    self.lambda_.create_function,
                    FunctionName=name,
                    Role=self._role_arn_now(config, role_arn),
                    Code={"ZipFile": code},
                    Description="lambdacron: runs due jobs on every tick",
                    Publish=False,
                    **wanted,
                ),
            )
            return f"arn:aws:lambda:REGION:ACCOUNT:function:{name}"
        current = existing["Configuration"]
        if current.get("CodeSha256") == code_sha256(code):
            self._step(f"function {name} code", "unchanged")
        else:
            self._step(
                f"function {name} code",
                "update",
                lambda: self._call(
                    "update function code",
                    self.lambda_.update_function_code,
                    FunctionName=name,
                    ZipFile=code,
                ),
            )
        differs = [k for k, v in wanted.items() if current.get(k) != v]
        if current.get("Role") != role_arn:
            differs.append("Role")
        if differs:
            self._step(
                f"function {name} configuration",
                "update " + ",".join(sorted(differs)),
                lambda: self._update_configuration(
                    name, self._role_arn_now(config, role_arn), wanted
                ),
            )
        else:
            self._step(f"function {name} configuration", "unchanged")
        return str(current["FunctionArn"])

    def _update_configuration(self, name: str, role_arn: str, wanted: dict[str, Any]) -> None:
        # A code update must finish before the configuration can change.
        waiter = self.lambda_.get_waiter("function_updated_v2")
        self._call("wait for the code update", waiter.wait, FunctionName=name)
        self._call(
            "update function configuration",
            self.lambda_.update_function_configuration,
            FunctionName=name,
            Role=role_arn,
            **wanted,
        )

    def _function_arn_now(self, config: DeployConfig, planned: str) -> str:
        function = self._get(self.lambda_.get_function, FunctionName=config.function_name)
        return str(function["Configuration"]["FunctionArn"]) if function else planned

    def _plan_rule(self, config: DeployConfig, function_arn: str) -> str:
        name = config.rule_name
        existing = self._get(self.events.describe_rule, Name=name)
        if (
            existing
            and existing.get("ScheduleExpression") == config.schedule_expression
            and existing.get("State") == "ENABLED"
        ):
            self._step(f"rule {name}", "unchanged")
        else:
            self._step(
                f"rule {name}",
                "create" if existing is None else "update",
                lambda: self._call(
                    "put rule",
                    self.events.put_rule,
                    Name=name,
                    ScheduleExpression=config.schedule_expression,
                    State="ENABLED",
                    Description=f"lambdacron tick every {config.interval} min",
                ),
            )
        targets = (
            []
            if existing is None
            else self._call("list targets", self.events.list_targets_by_rule, Rule=name).get(
                "Targets", []
            )
        )
        wanted_retry = {"MaximumRetryAttempts": 0, "MaximumEventAgeInSeconds": 60}
        ok = any(
            t.get("Id") == TARGET_ID
            and t.get("Arn") == function_arn
            and t.get("RetryPolicy") == wanted_retry
            for t in targets
        )
        if ok:
            self._step(f"rule {name} target", "unchanged")
        else:
            self._step(
                f"rule {name} target",
                "create" if not targets else "update",
                lambda: self._call(
                    "put targets",
                    self.events.put_targets,
                    Rule=name,
                    Targets=[
                        {
                            "Id": TARGET_ID,
                            "Arn": self._function_arn_now(config, function_arn),
                            "RetryPolicy": wanted_retry,
                        }
                    ],
                ),
            )
        if existing:
            return str(existing["Arn"])
        return f"arn:aws:events:REGION:ACCOUNT:rule/{name}"

    def _plan_permission(self, config: DeployConfig, rule_arn: str) -> None:
        name = config.function_name
        policy = self._get(self.lambda_.get_policy, FunctionName=name)
        statements = json.loads(policy["Policy"]).get("Statement", []) if policy else []
        if any(s.get("Sid") == PERMISSION_SID for s in statements):
            self._step(f"function {name} permission for the rule", "unchanged")
            return

        def add() -> None:
            rule = self._call("describe rule", self.events.describe_rule, Name=config.rule_name)
            self._call(
                "add permission",
                self.lambda_.add_permission,
                FunctionName=name,
                StatementId=PERMISSION_SID,
                Action="lambda:InvokeFunction",
                Principal="events.amazonaws.com",
                SourceArn=rule["Arn"],
            )

        self._step(f"function {name} permission for the rule", "create", add)

    # -- undeploy

    def undeploy(
        self, function_name: str, delete_role: bool = True, dry_run: bool = False
    ) -> list[Step]:
        self.plan = []
        config = DeployConfig(bucket="-", prefix="", interval=1, function_name=function_name)
        rule = config.rule_name
        if self._get(self.events.describe_rule, Name=rule) is not None:
            targets = self._call("list targets", self.events.list_targets_by_rule, Rule=rule).get(
                "Targets", []
            )
            if targets:
                ids = [t["Id"] for t in targets]
                self._step(
                    f"rule {rule} targets",
                    "delete",
                    lambda: self._call(
                        "remove targets", self.events.remove_targets, Rule=rule, Ids=ids
                    ),
                )
            self._step(
                f"rule {rule}",
                "delete",
                lambda: self._call("delete rule", self.events.delete_rule, Name=rule),
            )
        else:
            self._step(f"rule {rule}", "absent")
        if self._get(self.lambda_.get_function, FunctionName=function_name) is not None:
            self._step(
                f"function {function_name}",
                "delete",
                lambda: self._call(
                    "delete function", self.lambda_.delete_function, FunctionName=function_name
                ),
            )
        else:
            self._step(f"function {function_name}", "absent")
        role = config.role_name
        if delete_role and self._get(self.iam.get_role, RoleName=role) is not None:
            if self._get(self.iam.get_role_policy, RoleName=role, PolicyName=POLICY_NAME):
                self._step(
                    f"role {role} policy",
                    "delete",
                    lambda: self._call(
                        "delete role policy",
                        self.iam.delete_role_policy,
                        RoleName=role,
                        PolicyName=POLICY_NAME,
                    ),
                )
            self._step(
                f"role {role}",
                "delete",
                lambda: self._call("delete role", self.iam.delete_role, RoleName=role),
            )
        elif delete_role:
            self._step(f"role {role}", "absent")
        return self.run(dry_run)
