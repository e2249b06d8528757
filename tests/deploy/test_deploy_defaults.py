"""The store-wide defaults of ``--retry`` and ``--deadline-seconds``: written into the
function's environment in one canonical form, which the runner reads back as given."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lambdacron.config import Settings, parse_retry
from lambdacron.deploy import DeployConfig, retry_text
from lambdacron.deploy.plan import MAX_DEADLINE_SECONDS
from lambdacron.errors import UsageError
from lambdacron.jobfile import MAX_ATTEMPTS, MAX_BACKOFF_SECONDS

seconds = st.one_of(
    st.integers(0, MAX_BACKOFF_SECONDS),
    st.floats(0, MAX_BACKOFF_SECONDS, allow_nan=False),
)
policies = st.fixed_dictionaries(
    {},
    optional={
        "attempts": st.integers(1, MAX_ATTEMPTS),
        "backoff_seconds": seconds,
        "max_backoff_seconds": seconds,
        "on_interrupted": st.booleans(),
    },
)


@settings(max_examples=200, deadline=None)
@given(policy=policies, indent=st.sampled_from([None, 0, 2]))
def test_a_retry_policy_is_stored_in_one_form_the_runner_reads_as_given(
    policy: dict[str, Any], indent: int | None
) -> None:
    text = json.dumps(policy, indent=indent)
    canonical = retry_text(text)
    assert retry_text(canonical) == canonical
    assert list(json.loads(canonical)) == [
        "attempts",
        "backoff_seconds",
        "max_backoff_seconds",
        "on_interrupted",
    ]
    env = DeployConfig(bucket="b", retry=canonical).environment("")
    assert env["LAMBDACRON_RETRY"] == canonical
    assert Settings.from_env(env).retry == parse_retry(text)


@settings(max_examples=200, deadline=None)
@given(
    text=st.one_of(
        st.text(max_size=40),
        st.dictionaries(
            st.sampled_from(["attempts", "backoff_seconds", "on_interrupted", "tries"]),
            st.one_of(st.integers(-5, 300), st.booleans(), st.text(max_size=3), st.none()),
        ).map(json.dumps),
    )
)
def test_no_retry_text_raises_anything_but_a_usage_error_naming_the_flag(text: str) -> None:
    if text == "":  # none: the flag's way to remove the policy
        return
    try:
        retry_text(text)
    except UsageError as exc:
        assert str(exc).startswith("--retry: ")
        with pytest.raises(UsageError) as refused:
            DeployConfig(bucket="b", retry=text)
        assert str(refused.value) == str(exc)


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("{", "invalid JSON: Expecting property name enclosed in double quotes at line 1 column 2"),
        ("[3]", 'expected a JSON object such as {"attempts": 3}'),
        ('{"attempts": 0}', "attempts: must be 1 to 186 (1: no retry), got 0"),
        ('{"tries": 3}', "tries: is not a field of retry (known: attempts, backoff_seconds, "
         "max_backoff_seconds, on_interrupted)"),
    ],
)  # fmt: skip
def test_a_bad_retry_is_refused_in_one_line(text: str, why: str) -> None:
    with pytest.raises(UsageError) as refused:
        DeployConfig(bucket="b", retry=text)
    assert str(refused.value) == f"--retry: {why}"


@settings(max_examples=100, deadline=None)
@given(deadline=st.integers(1, MAX_DEADLINE_SECONDS))
def test_a_deadline_is_stored_as_the_runner_reads_it(deadline: int) -> None:
    env = DeployConfig(bucket="b", deadline_seconds=deadline).environment("")
    assert env["LAMBDACRON_DEADLINE_SECONDS"] == str(deadline)
    assert Settings.from_env(env).deadline_seconds == deadline


def test_no_default_writes_no_variable() -> None:
    env = DeployConfig(bucket="b").environment("")
    assert "LAMBDACRON_RETRY" not in env and "LAMBDACRON_DEADLINE_SECONDS" not in env
    assert Settings.from_env(env).policies == Settings().policies


@pytest.mark.parametrize("deadline", [-1, MAX_DEADLINE_SECONDS + 1])
def test_a_deadline_out_of_range_is_refused_in_one_line(deadline: int) -> None:
    with pytest.raises(UsageError) as refused:
        DeployConfig(bucket="b", deadline_seconds=deadline)
    assert str(refused.value) == f"--deadline-seconds: {deadline} must be between 1 and 2592000"
