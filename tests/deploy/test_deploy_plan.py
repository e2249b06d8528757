"""The pure plan of deploy: wanted settings against a deployed state, no AWS involved."""

from __future__ import annotations

import json
from dataclasses import fields, replace
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from lambdacron.deploy import (
    Current,
    DeployConfig,
    Names,
    Op,
    Wanted,
    plan_deploy,
    plan_undeploy,
    resolve,
    retry_text,
    role_policy,
)
from lambdacron.deploy.plan import (
    DLQ_ATTRIBUTES,
    MAPPING_SETTINGS,
    TARGET_ID,
    TARGET_RETRY,
    FunctionState,
    MappingState,
    QueueState,
    RoleState,
    RuleState,
    alarms,
    queue_attributes,
)

CODE = "code-sha"
ACCOUNT = "123456789012"
INVOKE = st.sampled_from(
    [f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:{n}" for n in ("a", "b", "c")]
)


TOPIC = f"arn:aws:sns:us-east-1:{ACCOUNT}:pager"
RETRY = retry_text('{"attempts": 3}')


def queue_url(name: str) -> str:
    return f"https://sqs.us-east-1.amazonaws.com/{ACCOUNT}/{name}"


def queue_arn(name: str) -> str:
    return f"arn:aws:sqs:us-east-1:{ACCOUNT}:{name}"


def state_of(config: DeployConfig, code: str = CODE) -> Current:
    """What AWS holds after deploying ``config``."""
    names = config.names
    role_arn = config.role_arn or f"arn:aws:iam::{ACCOUNT}:role/{names.role}"
    function_arn = f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:{names.function}"
    delivery = config.delivery_queue
    return Current(
        names,
        role=None if config.role_arn else RoleState(role_arn, role_policy(config)),
        function=FunctionState(
            function_arn,
            role_arn,
            code,
            config.function_configuration(queue_url(names.queue)),
            rule_permission=True,
        ),
        queue=QueueState(
            queue_url(names.queue),
            queue_arn(names.queue),
            queue_attributes(config, queue_arn(names.dlq)),
        )
        if delivery
        else None,
        dlq=QueueState(queue_url(names.dlq), queue_arn(names.dlq), DLQ_ATTRIBUTES)
        if delivery
        else None,
        mapping=MappingState("uuid", MAPPING_SETTINGS) if delivery else None,
        alarms=alarms(config),
        rule=RuleState(
            f"arn:aws:events:us-east-1:{ACCOUNT}:rule/{names.rule}",
            config.schedule_expression,
            "ENABLED",
            ({"Id": TARGET_ID, "Arn": function_arn, "RetryPolicy": TARGET_RETRY},),
        ),
    )


configs = st.builds(
    DeployConfig,
    bucket=st.sampled_from(["jobs-a", "jobs-b"]),
    prefix=st.sampled_from(["", "jobs", "jobs/", "a*b?/", "orders/2026/"]),
    interval=st.integers(1, 60),
    function_name=st.just("runner"),
    role_arn=st.sampled_from([None, f"arn:aws:iam::{ACCOUNT}:role/theirs"]),
    memory_mb=st.sampled_from([128, 512, 1024]),
    timeout_s=st.sampled_from([60, 300, 900]),
    invoke_arns=st.lists(INVOKE, unique=True, max_size=2).map(lambda a: tuple(sorted(a))),
    allowed_types=st.sampled_from([(), ("lambda",), ("command", "python")]),
    shards=st.sampled_from([1, 4]),
    delivery_queue=st.booleans(),
    alarm_topic=st.sampled_from(["", TOPIC]),
    notify_arns=st.lists(
        st.sampled_from(
            [TOPIC, queue_arn("failures"), f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:a"]
        ),
        unique=True,
        max_size=2,
    ).map(lambda a: tuple(sorted(a))),
    on_failure=st.sampled_from(["", f'{{"sns": "{TOPIC}"}}', f'{{"sqs": "{queue_url("f")}"}}']),
    retry=st.sampled_from(["", RETRY, retry_text('{"attempts": 5, "on_interrupted": true}')]),
    deadline_seconds=st.sampled_from([0, 600, 2_592_000]),
)
SETTINGS = [f.name for f in fields(Wanted) if f.name != "function_name"]


@st.composite
def flags(draw: st.DrawFn) -> Wanted:
    """Some flags given (drawn from another configuration), the rest not."""
    other = draw(configs)
    given_ = draw(st.sets(st.sampled_from(SETTINGS)))
    values = {name: getattr(other, name) for name in given_ if name != "role_arn"}
    if "role_arn" in given_ and other.role_arn:
        values["role_arn"] = other.role_arn
    return Wanted(function_name="runner", **values)


def effective(config: DeployConfig) -> tuple[Any, ...]:
    """What deploying ``config`` puts into AWS."""
    return (
        config.role_arn,
        None if config.role_arn else role_policy(config),
        config.function_configuration(queue_url(config.names.queue)),
        config.schedule_expression,
        config.delivery_queue and queue_attributes(config, queue_arn(config.names.dlq)),
        alarms(config),
    )


@settings(max_examples=200, deadline=None)
@given(deployed=configs, wanted=flags())
def test_a_flag_not_given_keeps_its_deployed_value(deployed: DeployConfig, wanted: Wanted) -> None:
    config = resolve(wanted, state_of(deployed))
    given_ = {n: getattr(wanted, n) for n in SETTINGS if getattr(wanted, n) is not None}
    # Compared as deployed: "jobs" is deployed as "jobs/", and with a role of the user's own
    # the invoke rights are theirs to grant, not deploy's.
    assert effective(config) == effective(replace(deployed, **given_))


@settings(max_examples=200, deadline=None)
@given(deployed=configs, wanted=flags())
def test_the_plan_is_empty_exactly_when_nothing_deployed_would_change(
    deployed: DeployConfig, wanted: Wanted
) -> None:
    plan = plan_deploy(wanted, state_of(deployed), CODE)
    assert plan.config is not None
    assert (plan.changes == ()) == (effective(plan.config) == effective(deployed))
    # Applying it reaches a state with nothing left to change.
    assert plan_deploy(wanted, state_of(plan.config), CODE).changes == ()


def test_nothing_deployed_plans_every_creation_in_order() -> None:
    plan = plan_deploy(Wanted(bucket="b"), Current(Names("lambdacron")), CODE)
    assert plan.ops == [
        Op.CREATE_ROLE,
        Op.PUT_ROLE_POLICY,
        Op.CREATE_DLQ,
        Op.CREATE_QUEUE,
        Op.CREATE_FUNCTION,
        Op.CREATE_MAPPING,
        Op.PUT_RULE,
        Op.PUT_TARGETS,
        Op.ADD_PERMISSION,
    ]
    assert plan.config == DeployConfig(bucket="b")
    tick_only = plan_deploy(
        Wanted(bucket="b", delivery_queue=False), Current(Names("lambdacron")), CODE
    )
    assert tick_only.ops == [
        Op.CREATE_ROLE,
        Op.PUT_ROLE_POLICY,
        Op.CREATE_FUNCTION,
        Op.PUT_RULE,
        Op.PUT_TARGETS,
        Op.ADD_PERMISSION,
    ]


def test_a_lost_permission_or_new_code_is_planned_back() -> None:
    config = DeployConfig(bucket="b", prefix="jobs/")
    current = state_of(config, code="old")
    assert current.function is not None
    current = replace(current, function=replace(current.function, rule_permission=False))
    plan = plan_deploy(Wanted(), current, CODE)
    assert plan.ops == [Op.UPDATE_CODE, Op.ADD_PERMISSION]


def test_undeploy_plans_from_the_names_alone() -> None:
    assert plan_undeploy(Current(Names("runner"))).changes == ()
    current = state_of(DeployConfig(bucket="b", function_name="runner"))
    assert plan_undeploy(current).ops == [
        Op.REMOVE_TARGETS,
        Op.DELETE_RULE,
        Op.DELETE_MAPPING,
        Op.DELETE_FUNCTION,
        Op.DELETE_QUEUE,
        Op.DELETE_DLQ,
        Op.DELETE_ROLE_POLICY,
        Op.DELETE_ROLE,
    ]
    assert Op.DELETE_ROLE not in plan_undeploy(current, delete_role=False).ops
    alarmed = state_of(DeployConfig(bucket="b", function_name="runner", alarm_topic=TOPIC))
    removal = plan_undeploy(alarmed)
    assert removal.ops[0] is Op.DELETE_ALARMS
    assert removal.names_for(Op.DELETE_ALARMS) == [
        "runner-dead-man",
        "runner-failed",
        "runner-missed",
        "runner-store-errors",
        "runner-dead-letters",
    ]


def test_opting_out_of_the_delivery_queue_removes_it_its_mapping_and_its_rights() -> None:
    deployed = DeployConfig(bucket="b", function_name="runner", alarm_topic=TOPIC)
    plan = plan_deploy(
        Wanted(function_name="runner", delivery_queue=False), state_of(deployed), CODE
    )
    assert plan.ops == [
        Op.PUT_ROLE_POLICY,
        Op.UPDATE_CONFIGURATION,
        Op.DELETE_ALARMS,
        Op.DELETE_MAPPING,
        Op.DELETE_QUEUE,
        Op.DELETE_DLQ,
    ]
    assert plan.names_for(Op.DELETE_ALARMS) == ["runner-dead-letters"]
    assert [str(c) for c in plan.changes if c.op is Op.UPDATE_CONFIGURATION] == [
        "function runner: environment LAMBDACRON_DELIVERY_QUEUE "
        f'"{queue_url("runner-delivery")}" → (none)'
    ]
    assert plan.config is not None
    sids = [s["Sid"] for s in role_policy(plan.config)["Statement"]]
    assert "PlanDeliveries" not in sids and "ConsumeDeliveries" not in sids


def test_a_function_deployed_without_the_queue_keeps_without_it_until_asked() -> None:
    before = state_of(DeployConfig(bucket="b", function_name="runner", delivery_queue=False))
    assert plan_deploy(Wanted(function_name="runner"), before, CODE).changes == ()
    plan = plan_deploy(Wanted(function_name="runner", delivery_queue=True), before, CODE)
    assert plan.ops == [
        Op.PUT_ROLE_POLICY,
        Op.CREATE_DLQ,
        Op.CREATE_QUEUE,
        Op.UPDATE_CONFIGURATION,
        Op.CREATE_MAPPING,
    ]
    # SQS makes the URL: the plan can only name the queue it will come from.
    assert (
        "function runner: environment LAMBDACRON_DELIVERY_QUEUE (none) → "
        '"(the URL of the new queue runner-delivery)"' in [str(c) for c in plan.changes]
    )


def test_alarms_are_kept_until_removed_with_an_empty_topic() -> None:
    deployed = state_of(DeployConfig(bucket="b", function_name="runner", alarm_topic=TOPIC))
    assert plan_deploy(Wanted(function_name="runner"), deployed, CODE).changes == ()
    plan = plan_deploy(Wanted(function_name="runner", alarm_topic=""), deployed, CODE)
    assert plan.ops == [Op.DELETE_ALARMS]
    assert len(plan.names_for(Op.DELETE_ALARMS)) == 5


def test_a_changed_visibility_or_redrive_is_put_back_on_the_queue() -> None:
    config = DeployConfig(bucket="b", function_name="runner", timeout_s=60)
    current = state_of(config)
    assert current.queue is not None
    changed = replace(
        current,
        queue=replace(current.queue, attributes={"VisibilityTimeout": 30}),
        dlq=None,
    )
    plan = plan_deploy(Wanted(function_name="runner"), changed, CODE)
    assert plan.ops == [Op.CREATE_DLQ, Op.UPDATE_QUEUE]
    assert [str(c) for c in plan.changes if c.op is Op.UPDATE_QUEUE] == [
        "queue runner-delivery: RedrivePolicy (none) → "
        f'{{"deadLetterTargetArn": "{queue_arn("runner-delivery-dlq")}", "maxReceiveCount": 5}}',
        "queue runner-delivery: VisibilityTimeout 30 → 360",
    ]


def test_store_wide_defaults_are_kept_until_removed_and_shown_old_to_new() -> None:
    deployed = state_of(
        DeployConfig(bucket="b", function_name="runner", retry=RETRY, deadline_seconds=600)
    )
    assert plan_deploy(Wanted(function_name="runner"), deployed, CODE).changes == ()
    # The same policy, typed another way, is no change.
    same = Wanted(function_name="runner", retry='{ "attempts": 3, "backoff_seconds": 30.0 }')
    assert plan_deploy(same, deployed, CODE).changes == ()
    changed = Wanted(function_name="runner", retry='{"attempts": 4}', deadline_seconds=60)
    plan = plan_deploy(changed, deployed, CODE)
    assert plan.ops == [Op.UPDATE_CONFIGURATION]
    assert [str(c) for c in plan.changes] == [
        'function runner: environment LAMBDACRON_DEADLINE_SECONDS "600" → "60"',
        "function runner: environment LAMBDACRON_RETRY "
        + json.dumps(RETRY)
        + " → "
        + json.dumps(RETRY.replace('"attempts": 3', '"attempts": 4')),
    ]
    removed = plan_deploy(
        Wanted(function_name="runner", retry="", deadline_seconds=0), deployed, CODE
    )
    assert [str(c) for c in removed.changes] == [
        'function runner: environment LAMBDACRON_DEADLINE_SECONDS "600" → (none)',
        f"function runner: environment LAMBDACRON_RETRY {json.dumps(RETRY)} → (none)",
    ]
