"""``lambdacron deploy`` / ``undeploy``: the Lambda runner on AWS, idempotently.

deploy creates or updates four things and nothing else:

1. an IAM role with a least-privilege inline policy: list the job prefix; get, put and
   delete objects under it; invoke only the functions named with ``--invoke-arn``; write
   the function's own logs;
2. the Lambda function (handler ``lambdacron.lambda_handler``, the zip of ``package``);
3. an EventBridge rule ``rate(N minutes)`` targeting the function with retries off (the
   next tick is the retry, and a retried event would only re-evaluate the same window);
4. the permission for that rule to invoke the function.

It reads what exists once, plans the difference to what is wanted (:mod:`.plan`, pure),
prints it and applies it (:mod:`.apply`); a second run finds no difference. A setting not
given keeps its deployed value. ``undeploy`` removes what deploy made and never touches
the bucket or its jobs.
"""

from ..errors import DeployError
from .apply import Deployer
from .plan import (
    Action,
    Change,
    Current,
    DeployConfig,
    Names,
    Op,
    Plan,
    Wanted,
    iam_literal,
    plan_deploy,
    plan_undeploy,
    resolve,
    role_policy,
)

__all__ = [
    "Action",
    "Change",
    "Current",
    "DeployConfig",
    "DeployError",
    "Deployer",
    "Names",
    "Op",
    "Plan",
    "Wanted",
    "iam_literal",
    "plan_deploy",
    "plan_undeploy",
    "resolve",
    "role_policy",
]
