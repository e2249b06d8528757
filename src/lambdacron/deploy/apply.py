"""The AWS half of deploy: read the deployed state once, and carry out a plan."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .. import aws
from ..errors import DeployError
from ..package import build_zip, code_sha256
from .plan import (
    ALARM_FIELDS,
    DLQ_ATTRIBUTES,
    MAPPING_SETTINGS,
    PERMISSION_SID,
    POLICY_NAME,
    RULE_STATE,
    TARGET_ID,
    TARGET_RETRY,
    TRUST_POLICY,
    AlarmKind,
    Current,
    DeployConfig,
    FunctionState,
    MappingState,
    Names,
    Op,
    Plan,
    QueueState,
    RoleState,
    RuleState,
    Wanted,
    alarms,
    plan_deploy,
    plan_undeploy,
    queue_attributes,
    role_policy,
)

# The function configuration fields deploy owns; the rest (layers, VPC...) it leaves alone.
_OWNED_CONFIGURATION = ("Runtime", "Handler", "Timeout", "MemorySize", "Environment")
_NOT_FOUND = (
    "NoSuchEntity",
    "ResourceNotFoundException",
    "AWS.SimpleQueueService.NonExistentQueue",
    "QueueDoesNotExist",
)
# Operations that remove something, whether undeploy or deploy plans them.
_REMOVALS = frozenset(
    {
        Op.DELETE_ALARMS,
        Op.REMOVE_TARGETS,
        Op.DELETE_RULE,
        Op.DELETE_MAPPING,
        Op.DELETE_FUNCTION,
        Op.DELETE_QUEUE,
        Op.DELETE_DLQ,
        Op.DELETE_ROLE_POLICY,
        Op.DELETE_ROLE,
    }
)


def _code(exc: Exception) -> str:
    return str(getattr(exc, "response", {}).get("Error", {}).get("Code", type(exc).__name__))


@dataclass
class _Arns:
    """ARNs known before the run, and those of resources the run creates."""

    role: str | None
    function: str | None
    rule: str | None
    queue_url: str | None
    queue_arn: str | None
    dlq_url: str | None
    dlq_arn: str | None
    mapping: str | None  # the event source mapping's UUID


@dataclass
class Deployer:
    """Reads the deployed state and applies plans, through injected boto3 clients."""

    iam: Any
    lambda_: Any
    events: Any
    s3: Any
    sqs: Any
    cloudwatch: Any
    log: Callable[[str], None] = print

    @classmethod
    def from_session(
        cls, region: str | None = None, log: Callable[[str], None] = print
    ) -> Deployer:
        return cls(
            aws.client("iam", region_name=region),
            aws.client("lambda", region_name=region),
            aws.client("events", region_name=region),
            aws.client("s3", region_name=region),
            aws.client("sqs", region_name=region),
            aws.client("cloudwatch", region_name=region),
            log,
        )

    # -- calls

    def _call(self, what: str, fn: Callable[..., Any], **kwargs: Any) -> Any:
        try:
            return fn(**kwargs)
        except Exception as exc:
            raise DeployError(f"{what}: {_code(exc)}: {exc}"[:600]) from exc

    def _get(self, what: str, fn: Callable[..., Any], **kwargs: Any) -> Any:
        """A read that returns None when the resource does not exist."""
        try:
            return fn(**kwargs)
        except Exception as exc:
            if _code(exc) in _NOT_FOUND:
                return None
            raise DeployError(f"{what}: {_code(exc)}: {exc}"[:600]) from exc

    # -- reading

    def read(self, names: Names, bucket: str | None = None) -> Current:
        """Everything deploy owns under ``names``, and whether the bucket the jobs live in
        (``bucket``, else the deployed one) exists."""
        role = self._read_role(names)
        function = self._read_function(names)
        rule = self._read_rule(names)
        check = bucket or (function.environment.get("LAMBDACRON_BUCKET") if function else None)
        missing = frozenset([check]) if check and self._bucket_missing(check) else frozenset()
        return Current(
            names,
            role,
            function,
            rule,
            missing,
            queue=self._read_queue(names.queue, ("VisibilityTimeout", "RedrivePolicy")),
            dlq=self._read_queue(names.dlq, tuple(DLQ_ATTRIBUTES)),
            mapping=self._read_mapping(names) if function else None,
            alarms=self._read_alarms(names),
        )

    def _read_queue(self, name: str, owned_keys: tuple[str, ...]) -> QueueState | None:
        found = self._get("get queue url", self.sqs.get_queue_url, QueueName=name)
        if found is None:
            return None
        url = str(found["QueueUrl"])
        read = self._get(
            "get queue attributes",
            self.sqs.get_queue_attributes,
            QueueUrl=url,
            AttributeNames=["All"],
        )
        if read is None:  # deleted since
            return None
        attributes = read.get("Attributes", {})
        owned: dict[str, Any] = {}
        for key in ("VisibilityTimeout", "MessageRetentionPeriod"):
            if key in attributes:
                owned[key] = int(attributes[key])
        if attributes.get("RedrivePolicy"):
            redrive = json.loads(attributes["RedrivePolicy"])
            owned["RedrivePolicy"] = {
                "deadLetterTargetArn": str(redrive.get("deadLetterTargetArn")),
                "maxReceiveCount": int(redrive.get("maxReceiveCount", 0)),
            }
        # Only the attributes deploy sets on this queue are compared.
        owned = {k: v for k, v in owned.items() if k in owned_keys}
        return QueueState(url, str(attributes.get("QueueArn", "")), owned)

    def _read_mapping(self, names: Names) -> MappingState | None:
        pages = self.lambda_.get_paginator("list_event_source_mappings").paginate(
            FunctionName=names.function
        )
        try:
            mappings = [m for page in pages for m in page.get("EventSourceMappings", [])]
        except Exception as exc:
            if _code(exc) in _NOT_FOUND:
                return None
            raise DeployError(f"list event source mappings: {_code(exc)}: {exc}"[:600]) from exc
        for mapping in mappings:
            if str(mapping.get("EventSourceArn", "")).rsplit(":", 1)[-1] == names.queue:
                return MappingState(
                    str(mapping["UUID"]),
                    {
                        "BatchSize": mapping.get("BatchSize"),
                        "FunctionResponseTypes": list(mapping.get("FunctionResponseTypes", [])),
                        "Enabled": mapping.get("State") not in ("Disabled", "Disabling"),
                    },
                )
        return None

    def _read_alarms(self, names: Names) -> dict[str, dict[str, Any]]:
        found = self._call(
            "describe alarms",
            self.cloudwatch.describe_alarms,
            AlarmNames=[names.alarm(kind) for kind in AlarmKind],
        )
        return {
            str(alarm["AlarmName"]): {k: alarm[k] for k in ALARM_FIELDS if k in alarm}
            for alarm in found.get("MetricAlarms", [])
        }

    def _read_role(self, names: Names) -> RoleState | None:
        role = self._get("get role", self.iam.get_role, RoleName=names.role)
        if role is None:
            return None
        policy = self._get(
            "get role policy", self.iam.get_role_policy, RoleName=names.role, PolicyName=POLICY_NAME
        )
        document = policy["PolicyDocument"] if policy else None
        if isinstance(document, str):
            document = json.loads(document)
        return RoleState(str(role["Role"]["Arn"]), document)

    def _read_function(self, names: Names) -> FunctionState | None:
        function = self._get("get function", self.lambda_.get_function, FunctionName=names.function)
        if function is None:
            return None
        conf = function["Configuration"]
        grants = self._get("get policy", self.lambda_.get_policy, FunctionName=names.function)
        statements = json.loads(grants["Policy"]).get("Statement", []) if grants else []
        return FunctionState(
            arn=str(conf["FunctionArn"]),
            role=str(conf["Role"]),
            code_sha256=str(conf.get("CodeSha256", "")),
            configuration={k: conf[k] for k in _OWNED_CONFIGURATION if k in conf},
            rule_permission=any(s.get("Sid") == PERMISSION_SID for s in statements),
        )

    def _read_rule(self, names: Names) -> RuleState | None:
        rule = self._get("describe rule", self.events.describe_rule, Name=names.rule)
        if rule is None:
            return None
        targets = self._call("list targets", self.events.list_targets_by_rule, Rule=names.rule)
        return RuleState(
            arn=str(rule["Arn"]),
            schedule=str(rule.get("ScheduleExpression", "")),
            state=str(rule.get("State", "")),
            targets=tuple(targets.get("Targets", [])),
        )

    def _bucket_missing(self, bucket: str) -> bool:
        try:
            self.s3.head_bucket(Bucket=bucket)
        except Exception as exc:
            code = _code(exc)
            if code in ("404", "NoSuchBucket"):
                return True
            if code in ("403", "AccessDenied"):
                return False  # it exists; whether the runner's role may read it is its policy's
            raise DeployError(f"head bucket {bucket}: {code}: {exc}"[:600]) from exc
        return False

    # -- deploy and undeploy

    def deploy(self, wanted: Wanted, dry_run: bool = False, zip_bytes: bytes | None = None) -> Plan:
        current = self.read(Names(wanted.function_name), wanted.bucket)
        code = zip_bytes if zip_bytes is not None else build_zip()
        plan = plan_deploy(wanted, current, code_sha256(code))
        self._run(plan, current, code, dry_run)
        return plan

    def undeploy(self, function_name: str, delete_role: bool = True, dry_run: bool = False) -> Plan:
        current = self.read(Names(function_name))
        plan = plan_undeploy(current, delete_role)
        self._run(plan, current, b"", dry_run)
        return plan

    def _run(self, plan: Plan, current: Current, code: bytes, dry_run: bool) -> None:
        for change in plan.changes:
            self.log(str(change))
        if not dry_run:
            self.apply(plan, current, code)
        self.log(plan.summary(dry_run))

    def apply(self, plan: Plan, current: Current, code: bytes) -> None:
        """Carries out the plan's operations in order; ``current`` is the state it was
        planned against."""
        config = plan.config
        arns = _Arns(
            role=(config.role_arn if config else None)
            or (current.role.arn if current.role else None),
            function=current.function.arn if current.function else None,
            rule=current.rule.arn if current.rule else None,
            queue_url=current.queue.url if current.queue else None,
            queue_arn=current.queue.arn if current.queue else None,
            dlq_url=current.dlq.url if current.dlq else None,
            dlq_arn=current.dlq.arn if current.dlq else None,
            mapping=current.mapping.uuid if current.mapping else None,
        )
        if arns.dlq_arn is None and arns.queue_arn is not None:
            arns.dlq_arn = f"{arns.queue_arn.rsplit(':', 1)[0]}:{plan.names.dlq}"
        for op in plan.ops:
            if op in _REMOVALS:
                self._remove(op, plan, current)
            else:
                assert config is not None, f"{op} in a plan without a configuration"
                self._make(op, plan, config, arns, code)

    def _create_queue(self, op: Op, name: str, attributes: dict[str, Any]) -> tuple[str, str]:
        created = self._call(
            op.value, self.sqs.create_queue, QueueName=name, Attributes=_sqs(attributes)
        )
        url = str(created["QueueUrl"])
        read = self._call(
            "get queue attributes",
            self.sqs.get_queue_attributes,
            QueueUrl=url,
            AttributeNames=["QueueArn"],
        )
        return url, str(read["Attributes"]["QueueArn"])

    def _make(self, op: Op, plan: Plan, config: DeployConfig, arns: _Arns, code: bytes) -> None:
        names = config.names
        if op is Op.CREATE_DLQ:
            arns.dlq_url, arns.dlq_arn = self._create_queue(op, names.dlq, DLQ_ATTRIBUTES)
        elif op is Op.UPDATE_DLQ:
            self._call(
                op.value,
                self.sqs.set_queue_attributes,
                QueueUrl=arns.dlq_url,
                Attributes=_sqs(DLQ_ATTRIBUTES),
            )
        elif op is Op.CREATE_QUEUE:
            attributes = queue_attributes(config, str(arns.dlq_arn))
            arns.queue_url, arns.queue_arn = self._create_queue(op, names.queue, attributes)
        elif op is Op.UPDATE_QUEUE:
            self._call(
                op.value,
                self.sqs.set_queue_attributes,
                QueueUrl=arns.queue_url,
                Attributes=_sqs(queue_attributes(config, str(arns.dlq_arn))),
            )
        elif op is Op.CREATE_MAPPING:
            self._call(
                op.value,
                self.lambda_.create_event_source_mapping,
                EventSourceArn=arns.queue_arn,
                FunctionName=names.function,
                **MAPPING_SETTINGS,
            )
        elif op is Op.UPDATE_MAPPING:
            self._call(
                op.value,
                self.lambda_.update_event_source_mapping,
                UUID=arns.mapping,
                FunctionName=names.function,
                **MAPPING_SETTINGS,
            )
        elif op is Op.PUT_ALARMS:
            specs = alarms(config)
            for name in plan.names_for(op):
                self._call(
                    op.value, self.cloudwatch.put_metric_alarm, AlarmName=name, **specs[name]
                )
        else:
            self._make_runner(op, config, arns, code)

    def _make_runner(self, op: Op, config: DeployConfig, arns: _Arns, code: bytes) -> None:
        names = config.names
        # The plan creates the queue before the function, whenever it wants one.
        queue_url = arns.queue_url or ""
        if op is Op.CREATE_ROLE:
            created = self._call(
                op.value,
                self.iam.create_role,
                RoleName=names.role,
                AssumeRolePolicyDocument=json.dumps(TRUST_POLICY),
                Description="lambdacron runner (managed by lambdacron deploy)",
            )
            arns.role = str(created["Role"]["Arn"])
        elif op is Op.PUT_ROLE_POLICY:
            self._call(
                op.value,
                self.iam.put_role_policy,
                RoleName=names.role,
                PolicyName=POLICY_NAME,
                PolicyDocument=json.dumps(role_policy(config), sort_keys=True),
            )
        elif op is Op.CREATE_FUNCTION:
            created = self._call(
                op.value,
                self.lambda_.create_function,
                FunctionName=names.function,
                Role=arns.role,
                Code={"ZipFile": code},
                Description="lambdacron: runs due jobs on every tick",
                Publish=False,
                **config.function_configuration(queue_url),
            )
            arns.function = str(created["FunctionArn"])
        elif op is Op.UPDATE_CODE:
            self._call(
                op.value,
                self.lambda_.update_function_code,
                FunctionName=names.function,
                ZipFile=code,
            )
        elif op is Op.UPDATE_CONFIGURATION:
            # A code update (or a create still settling) must finish before the
            # configuration can change.
            waiter = self.lambda_.get_waiter("function_updated_v2")
            self._call("wait for the function update", waiter.wait, FunctionName=names.function)
            self._call(
                op.value,
                self.lambda_.update_function_configuration,
                FunctionName=names.function,
                Role=arns.role,
                **config.function_configuration(queue_url),
            )
        elif op is Op.PUT_RULE:
            put = self._call(
                op.value,
                self.events.put_rule,
                Name=names.rule,
                ScheduleExpression=config.schedule_expression,
                State=RULE_STATE,
                Description=f"lambdacron tick every {config.interval} min",
            )
            arns.rule = str(put["RuleArn"])
        elif op is Op.PUT_TARGETS:
            self._call(
                op.value,
                self.events.put_targets,
                Rule=names.rule,
                Targets=[{"Id": TARGET_ID, "Arn": arns.function, "RetryPolicy": TARGET_RETRY}],
            )
        elif op is Op.ADD_PERMISSION:
            self._call(
                op.value,
                self.lambda_.add_permission,
                FunctionName=names.function,
                StatementId=PERMISSION_SID,
                Action="lambda:InvokeFunction",
                Principal="events.amazonaws.com",
                SourceArn=arns.rule,
            )
        else:
            raise AssertionError(f"{op} is not a deploy operation")

    def _remove(self, op: Op, plan: Plan, current: Current) -> None:
        names = plan.names
        if op is Op.DELETE_ALARMS:
            self._call(op.value, self.cloudwatch.delete_alarms, AlarmNames=plan.names_for(op))
        elif op is Op.DELETE_MAPPING:
            assert current.mapping is not None
            self._call(
                op.value, self.lambda_.delete_event_source_mapping, UUID=current.mapping.uuid
            )
        elif op is Op.DELETE_QUEUE:
            assert current.queue is not None
            self._call(op.value, self.sqs.delete_queue, QueueUrl=current.queue.url)
        elif op is Op.DELETE_DLQ:
            assert current.dlq is not None
            self._call(op.value, self.sqs.delete_queue, QueueUrl=current.dlq.url)
        elif op is Op.REMOVE_TARGETS:
            ids = [t["Id"] for t in current.rule.targets] if current.rule else []
            self._call(op.value, self.events.remove_targets, Rule=names.rule, Ids=ids)
        elif op is Op.DELETE_RULE:
            self._call(op.value, self.events.delete_rule, Name=names.rule)
        elif op is Op.DELETE_FUNCTION:
            self._call(op.value, self.lambda_.delete_function, FunctionName=names.function)
        elif op is Op.DELETE_ROLE_POLICY:
            self._call(
                op.value, self.iam.delete_role_policy, RoleName=names.role, PolicyName=POLICY_NAME
            )
        elif op is Op.DELETE_ROLE:
            self._call(op.value, self.iam.delete_role, RoleName=names.role)
        else:
            raise AssertionError(f"{op} is not an undeploy operation")


def _sqs(attributes: dict[str, Any]) -> dict[str, str]:
    """Queue attributes as SQS takes them: every value a string, a policy as JSON."""
    return {
        key: json.dumps(value) if isinstance(value, dict) else str(value)
        for key, value in attributes.items()
    }
