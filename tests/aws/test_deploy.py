"""``deploy`` and ``undeploy`` against moto's IAM, Lambda, EventBridge, SQS and CloudWatch
APIs. (The zip of ``package``, the plan and the policy are tested in tests/deploy, without
AWS.)"""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from conftest import boto_client
from lambdacron.config import Settings
from lambdacron.deploy import Deployer, Names, Wanted, role_policy
from lambdacron.engine.outcomes import Policies
from lambdacron.job import RetryPolicy
from lambdacron.package import build_zip, code_sha256

READ_PREFIXES = ("Get", "List", "Describe")


@pytest.fixture(scope="module")
def zip_bytes() -> bytes:
    return build_zip()


class Recorder:
    """Counts the API calls that change something, at the botocore client."""

    def __init__(self, *clients: Any) -> None:
        self.writes: list[str] = []
        for client in clients:
            client.meta.events.register("before-call", self._seen)

    def _seen(self, model: Any, **_: Any) -> None:
        if not model.name.startswith(READ_PREFIXES):
            self.writes.append(model.name)


@pytest.fixture
def aws(moto_endpoint: str) -> tuple[Deployer, Recorder, list[str]]:
    lines: list[str] = []
    deployer = Deployer(
        boto_client("iam"),
        boto_client("lambda"),
        boto_client("events"),
        boto_client("s3"),
        boto_client("sqs"),
        boto_client("cloudwatch"),
        log=lines.append,
    )
    recorder = Recorder(
        deployer.iam, deployer.lambda_, deployer.events, deployer.sqs, deployer.cloudwatch
    )
    return deployer, recorder, lines


def wanted(bucket: str, **overrides: Any) -> Wanted:
    base: dict[str, Any] = {
        "bucket": bucket,
        "prefix": "jobs/",
        "interval": 5,
        "function_name": f"lc-{uuid.uuid4().hex[:8]}",
    }
    return Wanted(**{**base, **overrides})


class TestDeploy:
    def test_a_dry_run_prints_the_plan_and_creates_nothing(self, aws: Any, bucket: str) -> None:
        deployer, recorder, lines = aws
        want = wanted(bucket)
        names = Names(want.function_name)
        deployer.deploy(want, dry_run=True, zip_bytes=b"zip")
        assert recorder.writes == []
        assert lines == [
            f"role {names.role}: create",
            f"role {names.role} policy: create",
            f"queue {names.dlq}: create",
            f"queue {names.queue}: create",
            f"function {names.function}: create",
            f"event source mapping {names.queue} → {names.function}: create",
            f"rule {names.rule}: create",
            f"rule {names.rule} target: create",
            f"function {names.function} permission for the rule: create",
            f"dry run: 9 changes for function {names.function}, none applied",
        ]

    def test_deploy_creates_everything_configured_and_a_second_run_changes_nothing(
        self, aws: Any, zip_bytes: bytes, bucket: str
    ) -> None:
        deployer, recorder, lines = aws
        want = wanted(
            bucket, invoke_arns=("arn:aws:lambda:us-east-1:123456789012:function:place-order",)
        )
        names = Names(want.function_name)
        plan = deployer.deploy(want, zip_bytes=zip_bytes)
        assert sorted(recorder.writes) == sorted(
            [
                "CreateRole",
                "PutRolePolicy",
                "CreateQueue",
                "CreateQueue",
                "CreateFunction",
                "CreateEventSourceMapping",
                "PutRule",
                "PutTargets",
                "AddPermission",
            ]
        )
        assert lines[-1] == f"9 changes for function {names.function} applied"

        iam, lam, events = deployer.iam, deployer.lambda_, deployer.events
        role = iam.get_role(RoleName=names.role)["Role"]
        trust = role["AssumeRolePolicyDocument"]
        trust = json.loads(trust) if isinstance(trust, str) else trust
        assert trust["Statement"][0]["Principal"] == {"Service": "lambda.amazonaws.com"}
        assert written_policy(deployer, names) == role_policy(plan.config)

        function = lam.get_function(FunctionName=names.function)["Configuration"]
        assert (
            function["Handler"],
            function["Runtime"],
            function["Timeout"],
            function["MemorySize"],
            function["Role"],
        ) == ("lambdacron.lambda_handler", "python3.12", 900, 512, role["Arn"])
        queue_url = deployer.sqs.get_queue_url(QueueName=names.queue)["QueueUrl"]
        assert function["Environment"]["Variables"] == {
            "LAMBDACRON_BUCKET": bucket,
            "LAMBDACRON_PREFIX": "jobs/",
            "LAMBDACRON_INTERVAL": "5",
            "LAMBDACRON_DELIVERY_QUEUE": queue_url,
        }
        assert function["CodeSha256"] == code_sha256(zip_bytes)
        queue, dlq = delivery_queues(deployer, names)
        # Six times the function's timeout: a batch the mapping retries is not seen twice.
        assert queue["VisibilityTimeout"] == "5400"
        assert json.loads(queue["RedrivePolicy"]) == {
            "deadLetterTargetArn": dlq["QueueArn"],
            "maxReceiveCount": 5,
        }
        assert dlq["MessageRetentionPeriod"] == str(14 * 24 * 3600)
        assert "RedrivePolicy" not in dlq
        (mapping,) = lam.list_event_source_mappings(FunctionName=names.function)[
            "EventSourceMappings"
        ]
        assert (
            mapping["EventSourceArn"],
            mapping["FunctionArn"],
            mapping["BatchSize"],
            mapping["FunctionResponseTypes"],
            mapping["State"],
        ) == (
            queue["QueueArn"],
            function["FunctionArn"],
            10,
            ["ReportBatchItemFailures"],
            "Enabled",
        )

        rule = events.describe_rule(Name=names.rule)
        assert (rule["ScheduleExpression"], rule["State"]) == ("rate(5 minutes)", "ENABLED")
        (target,) = events.list_targets_by_rule(Rule=names.rule)["Targets"]
        assert target["Arn"] == function["FunctionArn"]
        assert target["RetryPolicy"]["MaximumRetryAttempts"] == 0
        statement = json.loads(lam.get_policy(FunctionName=names.function)["Policy"])
        (grant,) = statement["Statement"]
        assert grant["Principal"] == {"Service": "events.amazonaws.com"}
        assert grant["Condition"]["ArnLike"]["AWS:SourceArn"] == rule["Arn"]

        recorder.writes.clear()
        lines.clear()
        deployer.deploy(want, zip_bytes=zip_bytes)
        assert recorder.writes == []
        assert lines == [f"function {names.function}: up to date, nothing to change"]

    def test_a_changed_interval_updates_the_rule_and_the_environment_only(
        self, aws: Any, zip_bytes: bytes, bucket: str
    ) -> None:
        deployer, recorder, lines = aws
        want = wanted(bucket)
        names = Names(want.function_name)
        deployer.deploy(want, zip_bytes=zip_bytes)
        recorder.writes.clear()
        lines.clear()
        deployer.deploy(Wanted(function_name=names.function, interval=1), zip_bytes=zip_bytes)
        assert sorted(recorder.writes) == ["PutRule", "UpdateFunctionConfiguration"]
        assert lines == [
            f'function {names.function}: environment LAMBDACRON_INTERVAL "5" → "1"',
            f'rule {names.rule}: schedule "rate(5 minutes)" → "rate(1 minute)"',
            f"2 changes for function {names.function} applied",
        ]
        rule = deployer.events.describe_rule(Name=names.rule)
        assert rule["ScheduleExpression"] == "rate(1 minute)"
        env = deployer.lambda_.get_function(FunctionName=names.function)["Configuration"]
        assert env["Environment"]["Variables"]["LAMBDACRON_INTERVAL"] == "1"
        assert env["Environment"]["Variables"]["LAMBDACRON_PREFIX"] == "jobs/"

    def test_a_run_without_flags_keeps_every_deployed_setting(
        self, aws: Any, zip_bytes: bytes, bucket: str
    ) -> None:
        deployer, recorder, lines = aws
        want = wanted(
            bucket,
            prefix="orders/",
            interval=7,
            memory_mb=1024,
            timeout_s=300,
            invoke_arns=("arn:aws:lambda:us-east-1:123456789012:function:place-order",),
            allowed_types=("lambda",),
            shards=4,
        )
        first = deployer.deploy(want, zip_bytes=zip_bytes)
        recorder.writes.clear()
        lines.clear()
        again = deployer.deploy(Wanted(function_name=want.function_name), zip_bytes=zip_bytes)
        assert again.config == first.config
        assert recorder.writes == []
        assert lines == [f"function {want.function_name}: up to date, nothing to change"]

    def test_a_changed_prefix_prints_each_change_as_old_and_new(
        self, aws: Any, zip_bytes: bytes, bucket: str
    ) -> None:
        deployer, recorder, lines = aws
        want = wanted(bucket)
        names = Names(want.function_name)
        deployer.deploy(want, zip_bytes=zip_bytes)
        moved = Wanted(function_name=names.function, prefix="orders")
        expected = [
            f"role {names.role} policy: Statement[ListJobs].Condition.StringLike.s3:prefix "
            '["jobs/*"] → ["orders/*"]',
            f"role {names.role} policy: Statement[ReadWriteJobs].Resource "
            f'"arn:aws:s3:::{bucket}/jobs/*" → "arn:aws:s3:::{bucket}/orders/*"',
            f'function {names.function}: environment LAMBDACRON_PREFIX "jobs/" → "orders/"',
        ]
        recorder.writes.clear()
        lines.clear()
        deployer.deploy(moved, dry_run=True, zip_bytes=zip_bytes)
        assert recorder.writes == []
        assert lines == [
            *expected,
            f"dry run: 3 changes for function {names.function}, none applied",
        ]

        lines.clear()
        plan = deployer.deploy(moved, zip_bytes=zip_bytes)
        assert sorted(recorder.writes) == ["PutRolePolicy", "UpdateFunctionConfiguration"]
        assert lines == [*expected, f"3 changes for function {names.function} applied"]
        assert written_policy(deployer, names) == role_policy(plan.config)

    def test_the_code_and_a_lost_target_are_put_back(
        self, aws: Any, zip_bytes: bytes, bucket: str
    ) -> None:
        deployer, recorder, lines = aws
        want = wanted(bucket)
        names = Names(want.function_name)
        deployer.deploy(want, zip_bytes=b"older code")
        deployer.events.remove_targets(Rule=names.rule, Ids=["lambdacron"])
        recorder.writes.clear()
        lines.clear()
        deployer.deploy(Wanted(function_name=names.function), zip_bytes=zip_bytes)
        assert sorted(recorder.writes) == ["PutTargets", "UpdateFunctionCode"]
        assert lines == [
            f'function {names.function}: code "{code_sha256(b"older code")}" → '
            f'"{code_sha256(zip_bytes)}"',
            f"rule {names.rule} target: create",
            f"2 changes for function {names.function} applied",
        ]

    def test_the_policy_deploy_writes_escapes_wildcards_in_the_prefix(
        self, aws: Any, zip_bytes: bytes, bucket: str
    ) -> None:
        deployer, _, _ = aws
        want = wanted(bucket, prefix="a*b?/")
        deployer.deploy(want, zip_bytes=zip_bytes)
        document = written_policy(deployer, Names(want.function_name))
        listing = next(s for s in document["Statement"] if s["Sid"] == "ListJobs")
        objects = next(s for s in document["Statement"] if s["Sid"] == "ReadWriteJobs")
        assert listing["Condition"]["StringLike"]["s3:prefix"] == ["a${*}b${?}/*"]
        assert objects["Resource"] == f"arn:aws:s3:::{bucket}/a${{*}}b${{?}}/*"

    def test_undeploy_removes_what_deploy_made_and_never_the_jobs(
        self, aws: Any, zip_bytes: bytes, bucket: str
    ) -> None:
        deployer, _, lines = aws
        s3 = boto_client("s3")
        s3.put_object(Bucket=bucket, Key="jobs/a.json", Body=b"{}")
        want = wanted(bucket)
        names = Names(want.function_name)
        deployer.deploy(want, zip_bytes=zip_bytes)
        lines.clear()
        deployer.undeploy(names.function, dry_run=True)
        assert lines[-1] == f"dry run: 8 changes for function {names.function}, none applied"
        assert deployer.lambda_.get_function(FunctionName=names.function)
        lines.clear()
        deployer.undeploy(names.function)
        assert lines == [
            f"rule {names.rule} targets: delete",
            f"rule {names.rule}: delete",
            f"event source mapping {names.queue} → {names.function}: delete",
            f"function {names.function}: delete",
            f"queue {names.queue}: delete",
            f"queue {names.dlq}: delete",
            f"role {names.role} policy: delete",
            f"role {names.role}: delete",
            f"8 changes for function {names.function} applied",
        ]
        assert queue_names(deployer) & {names.queue, names.dlq} == set()
        functions = [f["FunctionName"] for f in deployer.lambda_.list_functions()["Functions"]]
        assert names.function not in functions
        assert names.rule not in [r["Name"] for r in deployer.events.list_rules()["Rules"]]
        assert names.role not in [r["RoleName"] for r in deployer.iam.list_roles()["Roles"]]
        assert s3.get_object(Bucket=bucket, Key="jobs/a.json")["Body"].read() == b"{}"
        lines.clear()
        deployer.undeploy(names.function)
        assert lines == [f"function {names.function}: nothing deployed, nothing to remove"]


TOPIC = "arn:aws:sns:us-east-1:123456789012:pager"
FAILURES_URL = "https://sqs.us-east-1.amazonaws.com/123456789012/failures"


class TestAlarmsAndDestinations:
    def test_alarms_destinations_and_their_rights_are_made_once_and_removed(
        self, aws: Any, zip_bytes: bytes, bucket: str
    ) -> None:
        deployer, recorder, lines = aws
        place_order = "arn:aws:lambda:us-east-1:123456789012:function:place-order"
        want = wanted(
            bucket,
            alarm_topic=TOPIC,
            notify_arns=(TOPIC, "arn:aws:sqs:us-east-1:123456789012:audit", place_order),
            on_failure=f'{{"sqs": "{FAILURES_URL}"}}',
        )
        names = Names(want.function_name)
        deployer.deploy(want, dry_run=True, zip_bytes=zip_bytes)
        assert recorder.writes == []
        assert [line for line in lines if line.startswith("alarm ")] == [
            f"alarm {names.function}-{kind}: create"
            for kind in ("dead-man", "failed", "missed", "store-errors", "dead-letters")
        ]
        deployer.deploy(want, zip_bytes=zip_bytes)
        assert recorder.writes.count("PutMetricAlarm") == 5

        described = deployer.cloudwatch.describe_alarms(AlarmNamePrefix=f"{names.function}-")
        found = {
            a["AlarmName"].removeprefix(f"{names.function}-"): a for a in described["MetricAlarms"]
        }
        assert set(found) == {"dead-man", "failed", "missed", "store-errors", "dead-letters"}
        store = [{"Name": "Store", "Value": f"s3://{bucket}/jobs/"}]
        summary = {
            kind: (
                a["Namespace"],
                a["MetricName"],
                a["Dimensions"],
                a["Statistic"],
                a["Period"],
                a["EvaluationPeriods"],
                a["Threshold"],
                a["ComparisonOperator"],
                a["TreatMissingData"],
                a["AlarmActions"],
            )
            for kind, a in found.items()
        }
        above, below = "GreaterThanThreshold", "LessThanThreshold"

        def runner(metric: str, periods: int, threshold: float, op: str, missing: str) -> Any:
            return (
                "lambdacron",
                metric,
                store,
                "Sum",
                300,
                periods,
                threshold,
                op,
                missing,
                [TOPIC],
            )

        queue_dimension = [{"Name": "QueueName", "Value": names.dlq}]
        assert summary == {
            "dead-man": runner("Ticks", 3, 1.0, below, "breaching"),
            "failed": runner("Failed", 1, 0.0, above, "notBreaching"),
            "missed": runner("Missed", 1, 0.0, above, "notBreaching"),
            "store-errors": runner("StoreErrors", 3, 0.0, above, "notBreaching"),
            "dead-letters": (
                "AWS/SQS",
                "ApproximateNumberOfMessagesVisible",
                queue_dimension,
                "Maximum",
                300,
                1,
                0.0,
                above,
                "notBreaching",
                [TOPIC],
            ),
        }

        env = deployer.lambda_.get_function(FunctionName=names.function)["Configuration"][
            "Environment"
        ]["Variables"]
        assert env["LAMBDACRON_ON_FAILURE"] == f'{{"sqs": "{FAILURES_URL}"}}'
        policy = written_policy(deployer, names)
        extra = {
            s["Sid"]: (s["Action"], s["Resource"])
            for s in policy["Statement"]
            if s["Sid"] not in ("ListJobs", "ReadWriteJobs", "Logs")
        }
        delivery = f"arn:aws:sqs:*:*:{names.queue}"
        assert extra == {
            "PlanDeliveries": ("sqs:SendMessage", delivery),
            "ConsumeDeliveries": (
                [
                    "sqs:ChangeMessageVisibility",
                    "sqs:DeleteMessage",
                    "sqs:GetQueueAttributes",
                    "sqs:ReceiveMessage",
                ],
                delivery,
            ),
            "NotifyTopics": ("sns:Publish", [TOPIC]),
            "NotifyQueues": ("sqs:SendMessage", ["arn:aws:sqs:us-east-1:123456789012:audit"]),
            "NotifyFunctions": ("lambda:InvokeFunction", [place_order]),
            "OnFailureDefault": ("sqs:SendMessage", "arn:aws:sqs:us-east-1:123456789012:failures"),
        }
        # The dead-letter queue is SQS's own business: nothing in the role names it.
        assert names.dlq not in json.dumps(policy)

        recorder.writes.clear()
        lines.clear()
        deployer.deploy(Wanted(function_name=names.function), zip_bytes=zip_bytes)
        assert recorder.writes == []
        assert lines == [f"function {names.function}: up to date, nothing to change"]

        lines.clear()
        deployer.undeploy(names.function)
        assert lines[0] == f"alarm {names.function}-dead-man: delete"
        described = deployer.cloudwatch.describe_alarms(AlarmNamePrefix=f"{names.function}-")
        assert described["MetricAlarms"] == []
        assert queue_names(deployer) & {names.queue, names.dlq} == set()

    def test_an_empty_alarm_topic_removes_the_alarms(
        self, aws: Any, zip_bytes: bytes, bucket: str
    ) -> None:
        deployer, recorder, _ = aws
        want = wanted(bucket, alarm_topic=TOPIC, delivery_queue=False)
        names = Names(want.function_name)
        deployer.deploy(want, zip_bytes=zip_bytes)
        described = deployer.cloudwatch.describe_alarms(AlarmNamePrefix=f"{names.function}-")
        assert len(described["MetricAlarms"]) == 4  # no queue, no dead-letter alarm
        recorder.writes.clear()
        deployer.deploy(Wanted(function_name=names.function, alarm_topic=""), zip_bytes=zip_bytes)
        assert recorder.writes == ["DeleteAlarms"]
        described = deployer.cloudwatch.describe_alarms(AlarmNamePrefix=f"{names.function}-")
        assert described["MetricAlarms"] == []


class TestStoreWideDefaults:
    def test_retry_and_deadline_are_set_kept_shown_and_removed(
        self, aws: Any, zip_bytes: bytes, bucket: str
    ) -> None:
        deployer, recorder, lines = aws
        want = wanted(bucket, retry='{"attempts": 3, "backoff_seconds": 10}', deadline_seconds=600)
        names = Names(want.function_name)
        retry = (
            '{"attempts": 3, "backoff_seconds": 10, "max_backoff_seconds": 900, '
            '"on_interrupted": false}'
        )

        def environment() -> dict[str, str]:
            function = deployer.lambda_.get_function(FunctionName=names.function)
            variables: dict[str, str] = function["Configuration"]["Environment"]["Variables"]
            return variables

        deployer.deploy(want, zip_bytes=zip_bytes)
        env = environment()
        assert (env["LAMBDACRON_RETRY"], env["LAMBDACRON_DEADLINE_SECONDS"]) == (retry, "600")
        assert Settings.from_env(env).policies == Policies(
            RetryPolicy(3, 10.0, 900.0, False), 600, None
        )

        recorder.writes.clear()
        lines.clear()
        deployer.deploy(Wanted(function_name=names.function), zip_bytes=zip_bytes)
        assert (recorder.writes, lines) == (
            [],
            [f"function {names.function}: up to date, nothing to change"],
        )

        removal = Wanted(function_name=names.function, retry="", deadline_seconds=0)
        deployer.deploy(removal, dry_run=True, zip_bytes=zip_bytes)
        assert recorder.writes == []
        assert lines[1:] == [
            f'function {names.function}: environment LAMBDACRON_DEADLINE_SECONDS "600" → (none)',
            f"function {names.function}: environment LAMBDACRON_RETRY {json.dumps(retry)} → (none)",
            f"dry run: 2 changes for function {names.function}, none applied",
        ]
        assert environment() == env

        deployer.deploy(removal, zip_bytes=zip_bytes)
        assert recorder.writes == ["UpdateFunctionConfiguration"]
        env = environment()
        assert "LAMBDACRON_RETRY" not in env and "LAMBDACRON_DEADLINE_SECONDS" not in env
        assert env["LAMBDACRON_BUCKET"] == bucket


class TestOptingOutOfTheDeliveryQueue:
    def test_no_delivery_queue_removes_the_queues_the_mapping_and_the_variable(
        self, aws: Any, zip_bytes: bytes, bucket: str
    ) -> None:
        deployer, recorder, lines = aws
        want = wanted(bucket)
        names = Names(want.function_name)
        deployer.deploy(want, zip_bytes=zip_bytes)
        recorder.writes.clear()
        lines.clear()
        deployer.deploy(
            Wanted(function_name=names.function, delivery_queue=False), zip_bytes=zip_bytes
        )
        assert sorted(recorder.writes) == sorted(
            [
                "PutRolePolicy",
                "UpdateFunctionConfiguration",
                "DeleteEventSourceMapping",
                "DeleteQueue",
                "DeleteQueue",
            ]
        )
        lam = deployer.lambda_
        assert (
            lam.list_event_source_mappings(FunctionName=names.function)["EventSourceMappings"] == []
        )
        assert queue_names(deployer) & {names.queue, names.dlq} == set()
        env = lam.get_function(FunctionName=names.function)["Configuration"]["Environment"]
        assert "LAMBDACRON_DELIVERY_QUEUE" not in env["Variables"]
        assert "sqs:" not in json.dumps(written_policy(deployer, names))

        # Tick-only stays so without the flag, and --delivery-queue brings it all back.
        recorder.writes.clear()
        deployer.deploy(Wanted(function_name=names.function), zip_bytes=zip_bytes)
        assert recorder.writes == []
        deployer.deploy(
            Wanted(function_name=names.function, delivery_queue=True), zip_bytes=zip_bytes
        )
        queue, _ = delivery_queues(deployer, names)
        env = lam.get_function(FunctionName=names.function)["Configuration"]["Environment"]
        assert (
            env["Variables"]["LAMBDACRON_DELIVERY_QUEUE"]
            == deployer.sqs.get_queue_url(QueueName=names.queue)["QueueUrl"]
        )
        (mapping,) = lam.list_event_source_mappings(FunctionName=names.function)[
            "EventSourceMappings"
        ]
        assert mapping["EventSourceArn"] == queue["QueueArn"]

    def test_a_queue_changed_by_hand_and_a_lost_mapping_are_put_back(
        self, aws: Any, zip_bytes: bytes, bucket: str
    ) -> None:
        deployer, recorder, lines = aws
        want = wanted(bucket, timeout_s=60)
        names = Names(want.function_name)
        deployer.deploy(want, zip_bytes=zip_bytes)
        url = deployer.sqs.get_queue_url(QueueName=names.queue)["QueueUrl"]
        deployer.sqs.set_queue_attributes(
            QueueUrl=url, Attributes={"VisibilityTimeout": "30", "RedrivePolicy": ""}
        )
        (mapping,) = deployer.lambda_.list_event_source_mappings(FunctionName=names.function)[
            "EventSourceMappings"
        ]
        deployer.lambda_.update_event_source_mapping(UUID=mapping["UUID"], BatchSize=1)
        recorder.writes.clear()
        lines.clear()
        deployer.deploy(Wanted(function_name=names.function), zip_bytes=zip_bytes)
        assert sorted(recorder.writes) == ["SetQueueAttributes", "UpdateEventSourceMapping"]
        queue, dlq = delivery_queues(deployer, names)
        assert queue["VisibilityTimeout"] == "360"
        assert json.loads(queue["RedrivePolicy"])["deadLetterTargetArn"] == dlq["QueueArn"]
        (mapping,) = deployer.lambda_.list_event_source_mappings(FunctionName=names.function)[
            "EventSourceMappings"
        ]
        assert mapping["BatchSize"] == 10
        recorder.writes.clear()
        deployer.deploy(Wanted(function_name=names.function), zip_bytes=zip_bytes)
        assert recorder.writes == []


def written_policy(deployer: Deployer, names: Names) -> Any:
    policy = deployer.iam.get_role_policy(RoleName=names.role, PolicyName="lambdacron")
    document = policy["PolicyDocument"]
    return json.loads(document) if isinstance(document, str) else document


def delivery_queues(deployer: Deployer, names: Names) -> tuple[dict[str, str], dict[str, str]]:
    """The attributes of the delivery queue and of its dead-letter queue."""
    found = []
    for name in (names.queue, names.dlq):
        url = deployer.sqs.get_queue_url(QueueName=name)["QueueUrl"]
        read = deployer.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])
        found.append(read["Attributes"])
    return found[0], found[1]


def queue_names(deployer: Deployer) -> set[str]:
    urls = deployer.sqs.list_queues().get("QueueUrls", [])
    return {url.rsplit("/", 1)[-1] for url in urls}
