"""The role policy deploy writes grants exactly the job prefix, and invoke rights only where
asked (its own function when sharded); deploy/template.yaml writes the same policy."""

from __future__ import annotations

import json
import re
import string
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from lambdacron.deploy import DeployConfig, role_policy

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


class Stack:
    """Evaluates the intrinsic functions the template uses, for given parameters."""

    def __init__(self, parameters: dict[str, Any], pseudo: dict[str, str]) -> None:
        self.template = yaml.load(TEMPLATE.read_text(), Loader=_Loader)
        self.values: dict[str, Any] = {
            name: spec.get("Default") for name, spec in self.template["Parameters"].items()
        }
        self.values.update(parameters)
        self.values.update(pseudo)
        self.conditions = {
            name: self.eval(expr) for name, expr in self.template["Conditions"].items()
        }

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
        raise AssertionError(f"the test does not evaluate !{name}")

    def policy(self) -> Any:
        role = self.template["Resources"]["RunnerRole"]["Properties"]
        (policy,) = self.eval(role["Policies"])
        assert policy["PolicyName"] == "lambdacron"
        return policy["PolicyDocument"]


_NO_VALUE = object()

# deploy scopes the log group and the fan-out by name in any region and account (it cannot
# know the account before it creates the role); the stack pins both to its own.
ANY_REGION_AND_ACCOUNT = {"AWS::Partition": "aws", "AWS::Region": "*", "AWS::AccountId": "*"}


@pytest.mark.parametrize(
    ("shards", "invoke_arns"),
    [
        (1, ()),
        (8, ()),
        (1, ("arn:aws:lambda:us-east-1:123456789012:function:place-order",)),
        (
            4,
            (
                "arn:aws:lambda:us-east-1:123456789012:function:a",
                "arn:aws:lambda:us-east-1:123456789012:function:b",
            ),
        ),
    ],
)
def test_the_template_writes_the_policy_deploy_writes(
    shards: int, invoke_arns: tuple[str, ...]
) -> None:
    config = DeployConfig(
        bucket="orders-bucket",
        prefix="jobs/",
        function_name="runner",
        shards=shards,
        invoke_arns=invoke_arns,
    )
    stack = Stack(
        {
            "JobBucket": config.bucket,
            "JobPrefix": config.clean_prefix,
            "FunctionName": config.function_name,
            "Shards": shards,
            "InvokeFunctionArns": sorted(invoke_arns) or [""],
        },
        ANY_REGION_AND_ACCOUNT,
    )
    assert stack.policy() == role_policy(config)


TEMPLATE_PARAMETERS = Stack({}, ANY_REGION_AND_ACCOUNT).template["Parameters"]
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
    assert config.environment()["LAMBDACRON_SHARDS"] == "8"
    (fan,) = [s for s in role_policy(config)["Statement"] if s["Sid"] == "FanOutToShards"]
    assert fan["Resource"] == "arn:aws:lambda:*:*:function:lc"
