"""The role policy deploy writes grants exactly the job prefix, and invoke rights only where
asked (its own function when sharded); deploy/template.yaml writes the same policy."""

from __future__ import annotations

import functools
import json
import re
import string
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from lambdacron.config import Settings
from lambdacron.deploy import (
    DeployConfig,
    Service,
    alarms,
    on_failure_destination,
    retry_text,
    role_policy,
)
from lambdacron.deploy.plan import (
    DLQ_ATTRIBUTES,
    MAPPING_SETTINGS,
    MAX_DEADLINE_SECONDS,
    destination_arn,
    queue_attributes,
)

TEMPLATE = Path(__file__).resolve().parents[2] / "deploy" / "template.yaml"

# Keys and prefixes drawn from letters, the IAM wildcards, "$" and the braces of IAM's own
# escapes, so that a prefix can look like an escape, or like a wildcard next to one.
KEY_TEXT = st.text(alphabet="ab/*?${}", max_size=12)


def iam_matches(pattern: str, text: str) -> bool:
    """IAM's matching of a Resource or StringLike value: ``*`` any run, ``?`` one character,
    ``${*}``, ``${?}`` and ``${$}`` the literal characters, anything else itself."""
    regex = ""
    i = 0
    while i < len(pattern):
        escape = pattern[i : i + 4]
        if escape in ("${*}", "${?}", "${$}"):
            regex += re.escape(escape[2])
            i += 4
            continue
        char = pattern[i]
        regex += ".*" if char == "*" else "." if char == "?" else re.escape(char)
        i += 1
    return re.fullmatch(regex, text, re.DOTALL) is not None


def statement(policy: dict[str, Any], sid: str) -> dict[str, Any]:
    found: dict[str, Any] = next(s for s in policy["Statement"] if s["Sid"] == sid)
    return found


def granted_keys(config: DeployConfig) -> tuple[str, str]:
    """The object pattern (after the bucket ARN) and the listing pattern of the policy."""
    policy = role_policy(config)
    resource = statement(policy, "ReadWriteJobs")["Resource"]
    bucket_arn = f"arn:aws:s3:::{config.bucket}/"
    assert resource.startswith(bucket_arn)
    (listing,) = statement(policy, "ListJobs")["Condition"]["StringLike"]["s3:prefix"]
    return resource[len(bucket_arn) :], listing


def test_a_prefix_with_wildcards_is_written_escaped() -> None:
    objects, listing = granted_keys(DeployConfig(bucket="b", prefix="a*b?/"))
    assert objects == listing == "a${*}b${?}/*"
    assert iam_matches(objects, "a*b?/job.json")
    assert not iam_matches(objects, "aXXbY/job.json")


@settings(max_examples=300, deadline=None)
@given(prefix=KEY_TEXT, key=KEY_TEXT)
def test_the_policy_grants_exactly_the_keys_under_the_prefix(prefix: str, key: str) -> None:
    config = DeployConfig(bucket="b", prefix=prefix)
    objects, listing = granted_keys(config)
    under = key.startswith(config.clean_prefix)
    assert iam_matches(objects, key) == under
    assert iam_matches(listing, key) == under
    # Every literal "*", "?" and "$" of the prefix is escaped: only the final "*" is bare.
    bare = re.sub(r"\$\{[*?$]\}", "", objects)
    assert bare.count("*") == 1 and bare.endswith("*") and "?" not in bare and "$" not in bare


# -- deploy/template.yaml


class _Tag:
    def __init__(self, name: str, value: Any) -> None:
        self.name, self.value = name, value


class _Loader(yaml.SafeLoader):
    pass


def _construct(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> _Tag:
    if isinstance(node, yaml.ScalarNode):
        return _Tag(suffix, loader.construct_scalar(node))
    if isinstance(node, yaml.SequenceNode):
        return _Tag(suffix, loader.construct_sequence(node, deep=True))
    return _Tag(suffix, loader.construct_mapping(node, deep=True))  # type: ignore[arg-type]


_Loader.add_multi_constructor("!", _construct)


@functools.cache
def _template() -> Any:
    """The template, parsed once: nothing evaluating it changes it."""
    return yaml.load(TEMPLATE.read_text(), Loader=_Loader)


class Stack:
    """Evaluates the intrinsic functions the template uses, for given parameters."""

    def __init__(self, parameters: dict[str, Any], pseudo: dict[str, str]) -> None:
        self.template = _template()
        self.values: dict[str, Any] = {
            name: spec.get("Default") for name, spec in self.template["Parameters"].items()
        }
        self.values.update(parameters)
        self.values.update(pseudo)
        self.conditions: dict[str, Any] = {}
        for name, expr in self.template["Conditions"].items():  # each after those it names
            self.conditions[name] = self.eval(expr)

    def eval(self, value: Any) -> Any:
        if isinstance(value, dict):
            out = {k: self.eval(v) for k, v in value.items()}
            return {k: v for k, v in out.items() if v is not _NO_VALUE}
        if isinstance(value, list):
            return [v for v in (self.eval(item) for item in value) if v is not _NO_VALUE]
        if not isinstance(value, _Tag):
            return value
        name, arg = value.name, value.value
        if name == "Ref":
            if arg in self.template["Resources"]:
                return f"(the reference of {arg})"
            return _NO_VALUE if arg == "AWS::NoValue" else self.values[arg]
        if name == "Sub":
            return re.sub(r"\$\{([^}]+)\}", lambda m: str(self.values[m.group(1)]), arg)
        if name == "If":
            condition, then, otherwise = arg
            return self.eval(then if self.conditions[condition] else otherwise)
        if name == "Join":
            separator, items = arg
            return separator.join(str(i) for i in self.eval(items))
        if name == "Equals":
            left, right = (self.eval(a) for a in arg)
            return str(left) == str(right)
        if name == "Not":
            return not self.eval(arg[0])
        if name == "And":
            return all(self.eval(a) for a in arg)
        if name == "Condition":
            return self.conditions[arg]
        if name == "FindInMap":
            table, key, item = (self.eval(a) for a in arg)
            return self.template["Mappings"][table][key][item]
        if name == "GetAtt":
            # The attributes the template reads, as CloudFormation gives them.
            resource, attribute = arg.split(".")
            if attribute != "QueueName":
                return f"(the {attribute} of {resource})"
            return self.eval(self.template["Resources"][resource]["Properties"]["QueueName"])
        raise AssertionError(f"the test does not evaluate !{name}")

    def policy(self) -> Any:
        role = self.template["Resources"]["RunnerRole"]["Properties"]
        (policy,) = self.eval(role["Policies"])
        assert policy["PolicyName"] == "lambdacron"
        return policy["PolicyDocument"]

    def resources(self, kind: str) -> list[dict[str, Any]]:
        """The properties of the resources of type ``kind`` the stack creates."""
        return [
            self.eval(resource["Properties"])
            for resource in self.template["Resources"].values()
            if resource["Type"] == kind
            and self.conditions.get(resource.get("Condition"), True) is True
        ]


_NO_VALUE = object()

# deploy scopes the log group and the fan-out by name in any region and account (it cannot
# know the account before it creates the role); the stack pins both to its own.
ANY_REGION_AND_ACCOUNT = {"AWS::Partition": "aws", "AWS::Region": "*", "AWS::AccountId": "*"}


ACCOUNT = "123456789012"
TOPIC = f"arn:aws:sns:us-east-1:{ACCOUNT}:pager"
FAILURES_QUEUE = f"arn:aws:sqs:us-east-1:{ACCOUNT}:failures"
FUNCTIONS = tuple(f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:{n}" for n in "ab")
ON_FAILURE = {
    "": ("", ""),
    "sns": (f'{{"sns": "{TOPIC}"}}', TOPIC),
    "sqs": (f'{{"sqs": "https://sqs.us-east-1.amazonaws.com/{ACCOUNT}/failures"}}', FAILURES_QUEUE),
    "lambda": (f'{{"lambda": "{FUNCTIONS[0]}"}}', FUNCTIONS[0]),
}

configurations = st.builds(
    DeployConfig,
    bucket=st.just("orders-bucket"),
    prefix=st.sampled_from(["", "jobs/", "orders/2026/"]),
    function_name=st.sampled_from(["runner", "lambdacron"]),
    interval=st.sampled_from([1, 5, 60]),
    shards=st.sampled_from([1, 8]),
    invoke_arns=st.lists(st.sampled_from(FUNCTIONS), unique=True).map(tuple),
    delivery_queue=st.booleans(),
    alarm_topic=st.sampled_from(["", TOPIC]),
    notify_arns=st.lists(
        st.sampled_from([TOPIC, FAILURES_QUEUE, *FUNCTIONS]), unique=True, max_size=4
    ).map(tuple),
    on_failure=st.sampled_from(list(ON_FAILURE)).map(lambda k: ON_FAILURE[k][0]),
    retry=st.sampled_from(["", retry_text('{"attempts": 3, "backoff_seconds": 12.5}')]),
    deadline_seconds=st.sampled_from([0, 1, 600, MAX_DEADLINE_SECONDS]),
)


def stack_of(config: DeployConfig) -> Stack:
    """The stack given the parameters that say what ``config`` says."""
    notify = [destination_arn("--notify-arn", arn) for arn in config.notify_arns]

    def listed(service: Service) -> list[str]:
        return sorted(d.arn for d in notify if d.service is service) or [""]

    on_failure = on_failure_destination(config.on_failure)[1] if config.on_failure else None
    return Stack(
        {
            "JobBucket": config.bucket,
            "JobPrefix": config.clean_prefix,
            "FunctionName": config.function_name,
            "IntervalMinutes": config.interval,
            "AlarmPeriod": config.interval * 60,
            "Shards": config.shards,
            "InvokeFunctionArns": sorted(config.invoke_arns) or [""],
            "DeliveryQueueEnabled": "true" if config.delivery_queue else "false",
            "AlarmTopic": config.alarm_topic,
            "NotifyTopicArns": listed(Service.SNS),
            "NotifyQueueArns": listed(Service.SQS),
            "NotifyFunctionArns": listed(Service.LAMBDA),
            "OnFailure": config.on_failure,
            "OnFailureService": on_failure.service.value if on_failure else "sns",
            "OnFailureArn": on_failure.arn if on_failure else "",
            "Retry": config.retry,
            "DeadlineSeconds": str(config.deadline_seconds or ""),
        },
        ANY_REGION_AND_ACCOUNT,
    )


@settings(max_examples=150, deadline=None)
@given(config=configurations)
def test_the_template_writes_the_policy_deploy_writes(config: DeployConfig) -> None:
    assert stack_of(config).policy() == role_policy(config)


@settings(max_examples=60, deadline=None)
@given(config=configurations)
def test_the_template_makes_the_alarms_deploy_makes(config: DeployConfig) -> None:
    made = {
        alarm.pop("AlarmName"): alarm
        for alarm in stack_of(config).resources("AWS::CloudWatch::Alarm")
    }
    # CloudFormation reads the numbers of the template as numbers of the API.
    for alarm in made.values():
        alarm["Threshold"] = float(alarm["Threshold"])
    assert made == alarms(config)


@settings(max_examples=30, deadline=None)
@given(config=configurations)
def test_the_template_makes_the_queues_and_the_mapping_deploy_makes(config: DeployConfig) -> None:
    stack = stack_of(config)
    queues = {q["QueueName"]: q for q in stack.resources("AWS::SQS::Queue")}
    mappings = stack.resources("AWS::Lambda::EventSourceMapping")
    if not config.delivery_queue:
        assert (queues, mappings) == ({}, [])
        return
    names = config.names
    assert set(queues) == {names.queue, names.dlq}
    assert queues[names.dlq]["MessageRetentionPeriod"] == DLQ_ATTRIBUTES["MessageRetentionPeriod"]
    wanted = queue_attributes(config, "the DLQ's ARN")
    assert (
        queues[names.queue]["RedrivePolicy"]["maxReceiveCount"]
        == (wanted["RedrivePolicy"]["maxReceiveCount"])
    )
    # Six times the longest timeout there is: at least the function's, as a mapping needs.
    assert queues[names.queue]["VisibilityTimeout"] >= wanted["VisibilityTimeout"]
    (mapping,) = mappings
    assert {
        "BatchSize": mapping["BatchSize"],
        "FunctionResponseTypes": mapping["FunctionResponseTypes"],
        "Enabled": mapping["Enabled"],
    } == MAPPING_SETTINGS


# The variables both set only when there is a value, and with the same text.
STORE_WIDE = ("LAMBDACRON_ON_FAILURE", "LAMBDACRON_RETRY", "LAMBDACRON_DEADLINE_SECONDS")


@settings(max_examples=60, deadline=None)
@given(config=configurations)
def test_the_template_gives_the_function_the_defaults_deploy_gives(config: DeployConfig) -> None:
    (function,) = stack_of(config).resources("AWS::Lambda::Function")
    made = {k: str(v) for k, v in function["Environment"]["Variables"].items()}
    written = config.environment("")
    assert {k: made[k] for k in STORE_WIDE if k in made} == {
        k: written[k] for k in STORE_WIDE if k in written
    }
    assert Settings.from_env(made).policies == Settings.from_env(written).policies


TEMPLATE_PARAMETERS = Stack({}, ANY_REGION_AND_ACCOUNT).template["Parameters"]


DEADLINE_PATTERN = re.compile(TEMPLATE_PARAMETERS["DeadlineSeconds"]["AllowedPattern"])


def test_the_template_accepts_exactly_the_deadlines_the_runner_reads() -> None:
    accepted = [
        n for n in range(MAX_DEADLINE_SECONDS + 100_000) if DEADLINE_PATTERN.fullmatch(str(n))
    ]
    assert accepted == list(range(1, MAX_DEADLINE_SECONDS + 1))
    assert DEADLINE_PATTERN.fullmatch("") is not None  # none


@settings(max_examples=200, deadline=None)
@given(n=st.integers(MAX_DEADLINE_SECONDS + 1, 10**30))
def test_the_template_refuses_every_longer_deadline(n: int) -> None:
    assert DEADLINE_PATTERN.fullmatch(str(n)) is None


@pytest.mark.parametrize("text", ["0", "01", "+5", " 5", "5 ", "-1", "1e3", "5.0", "x"])
def test_the_template_refuses_a_deadline_in_any_other_spelling(text: str) -> None:
    # The runner would read "01" or "+5", but deploy writes the plain number only.
    assert DEADLINE_PATTERN.fullmatch(text) is None


PREFIX_TEXT = st.text(alphabet=string.ascii_lowercase[:3] + "/*?$-", max_size=10)


@settings(max_examples=200, deadline=None)
@given(prefix=PREFIX_TEXT)
def test_the_template_accepts_exactly_the_prefixes_it_can_grant_literally(prefix: str) -> None:
    """CloudFormation cannot escape a parameter for IAM, so the template refuses a prefix
    that IAM would read as a wildcard, and one deploy would have written differently."""
    spec = TEMPLATE_PARAMETERS["JobPrefix"]
    cleaned = DeployConfig(bucket="b", prefix=prefix).clean_prefix
    literal = not any(c in prefix for c in "*?$")
    accepted = re.fullmatch(spec["AllowedPattern"], prefix) is not None
    assert accepted == (literal and prefix == cleaned)


def test_the_policy_has_no_invoke_right_unless_asked() -> None:
    statements = role_policy(DeployConfig(bucket="orders-bucket", prefix="jobs/"))["Statement"]
    assert all("lambda:InvokeFunction" not in json.dumps(s) for s in statements)
    listing = next(s for s in statements if s["Sid"] == "ListJobs")
    assert listing["Condition"] == {"StringLike": {"s3:prefix": ["jobs/*"]}}
    objects = next(s for s in statements if s["Sid"] == "ReadWriteJobs")
    assert objects["Resource"] == "arn:aws:s3:::orders-bucket/jobs/*"


def test_deploy_with_shards_may_invoke_only_itself() -> None:
    config = DeployConfig(bucket="b", prefix="jobs", interval=1, function_name="lc", shards=8)
    assert config.environment("")["LAMBDACRON_SHARDS"] == "8"
    (fan,) = [s for s in role_policy(config)["Statement"] if s["Sid"] == "FanOutToShards"]
    assert fan["Resource"] == "arn:aws:lambda:*:*:function:lc"
