"""The AWS half of deploy: read the deployed state once, and carry out a plan."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..errors import DeployError
from ..package import build_zip, code_sha256
from .plan import (
    PERMISSION_SID,
    POLICY_NAME,
    RULE_STATE,
    TARGET_ID,
    TARGET_RETRY,
    TRUST_POLICY,
    Current,
    DeployConfig,
    FunctionState,
    Names,
    Op,
    Plan,
    RoleState,
    RuleState,
    Wanted,
    plan_deploy,
    plan_undeploy,
    role_policy,
)

# The function configuration fields deploy owns; the rest (layers, VPC...) it leaves alone.
_OWNED_CONFIGURATION = ("Runtime", "Handler", "Timeout", "MemorySize", "Environment")


def _code(exc: Exception) -> str:
    return str(getattr(exc, "response", {}).get("Error", {}).get("Code", type(exc).__name__))


@dataclass
class _Arns:
    """ARNs known before the run, and those of resources the run creates."""

    role: str | None
    function: str | None
    rule: str | None


@dataclass
class Deployer:
    """Reads the deployed state and applies plans, through injected boto3 clients."""

    iam: Any
    lambda_: Any
    events: Any
    s3: Any
    log: Callable[[str], None] = print

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
            session.client("s3", config=config),
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
            if _code(exc) in ("NoSuchEntity", "ResourceNotFoundException"):
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
        return Current(names, role, function, rule, missing)

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
        )
        for op in plan.ops:
            if config is None:
                self._remove(op, plan.names, current)
            else:
                self._make(op, config, arns, code)

    def _make(self, op: Op, config: DeployConfig, arns: _Arns, code: bytes) -> None:
        names = config.names
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
                **config.function_configuration(),
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
                **config.function_configuration(),
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

    def _remove(self, op: Op, names: Names, current: Current) -> None:
        if op is Op.REMOVE_TARGETS:
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
