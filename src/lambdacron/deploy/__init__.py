"""``lambdacron deploy`` / ``undeploy``: the Lambda runner on AWS, idempotently.

deploy creates or updates these and nothing else:

1. an IAM role with a least-privilege inline policy: list the job prefix; get, put and
   delete objects under it; invoke only the functions named with ``--invoke-arn``; write
   the function's own logs; send to, and consume, its delivery queue; notify only the
   failure destinations named with ``--notify-arn`` and ``--on-failure``;
2. the delivery queue ``NAME-delivery`` (the tick plans occurrences into it, to the second)
   and its dead-letter queue ``NAME-delivery-dlq``, unless ``--no-delivery-queue``;
3. the Lambda function (handler ``lambdacron.lambda_handler``, the zip of ``package``);
4. the event source mapping from the delivery queue to the same function;
5. an EventBridge rule ``rate(N minutes)`` targeting the function with retries off (the
   next tick is the retry, and a retried event would only re-evaluate the same window);
6. the permission for that rule to invoke the function;
7. with ``--alarm-topic``, CloudWatch alarms on the runner's metrics, notifying the topic.

The function's environment carries the store-wide defaults of ``--on-failure``,
``--retry`` and ``--deadline-seconds``.

It reads what exists once, plans the difference to what is wanted (:mod:`.plan`, pure),
prints it and applies it (:mod:`.apply`); a second run finds no difference. A setting not
given keeps its deployed value. ``undeploy`` removes what deploy made and never touches
the bucket or its jobs.
"""

from ..errors import DeployError
from .apply import Deployer
from .plan import (
    Action,
    AlarmKind,
    Change,
    Current,
    DeployConfig,
    Names,
    Op,
    Plan,
    Service,
    Wanted,
    alarms,
    iam_literal,
    on_failure_destination,
    plan_deploy,
    plan_undeploy,
    resolve,
    retry_text,
    role_policy,
)

__all__ = [
    "Action",
    "AlarmKind",
    "Change",
    "Current",
    "DeployConfig",
    "DeployError",
    "Deployer",
    "Names",
    "Op",
    "Plan",
    "Service",
    "Wanted",
    "alarms",
    "iam_literal",
    "on_failure_destination",
    "plan_deploy",
    "plan_undeploy",
    "resolve",
    "retry_text",
    "role_policy",
]
