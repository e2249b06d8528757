"""``package``, ``deploy`` and ``undeploy`` against moto's IAM, Lambda and EventBridge APIs."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import uuid
import zipfile
from pathlib import Path
from typing import Any

import pytest

from conftest import boto_client
from lambdacron.deploy import DeployConfig, Deployer, role_policy
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
        boto_client("iam"), boto_client("lambda"), boto_client("events"), log=lines.append
    )
    return deployer, Recorder(deployer.iam, deployer.lambda_, deployer.events), lines


def config(**overrides: Any) -> DeployConfig:
    base: dict[str, Any] = {
        "bucket": "orders-bucket",
        "prefix": "jobs/",
        "interval": 5,
        "function_name": f"lc-{uuid.uuid4().hex[:8]}",
    }
    return DeployConfig(**{**base, **overrides})


class TestPackage:
    def test_the_zip_is_reproducible_and_holds_the_runtime(self, zip_bytes: bytes) -> None:
        assert build_zip() == zip_bytes
        names = zipfile.ZipFile(io.BytesIO(zip_bytes)).namelist()
        assert names == sorted(names)
        assert "lambdacron/handler.py" in names and "lambdacron/job.schema.json" in names
        assert "cronsim/cronsim.py" in names
        assert "tzdata/zoneinfo/Europe/Berlin" in names
        assert not any(n.startswith(("boto3/", "botocore/")) or n.endswith(".pyc") for n in names)

    def test_the_zip_runs_a_tick_in_a_clean_virtualenv(
        self, zip_bytes: bytes, tmp_path: Path
    ) -> None:
        code = tmp_path / "code"
        zipfile.ZipFile(io.BytesIO(zip_bytes)).extractall(code)
        venv = tmp_path / "venv"
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
        jobs = tmp_path / "jobs"
        jobs.mkdir()
        (jobs / "tz.json").write_text(
            json.dumps(
                {
                    "when": "0 9 * * *",
                    "timezone": "Europe/Berlin",
                    "run": {"type": "python", "details": {"script": "print('from the zip')"}},
                }
            )
        )
        script = (
            "import sys, json; sys.path.insert(0, sys.argv[1])\n"
            "import lambdacron\n"
            "assert 'boto3' not in sys.modules\n"
            "print(json.dumps(lambdacron.lambda_handler({'time': '2099-01-01T08:00:00Z'}, None)))\n"
        )
        result = subprocess.run(
            [str(venv / "bin" / "python"), "-I", "-c", script, str(code)],
            capture_output=True,
            text=True,
            env={"LAMBDACRON_STORE": str(jobs), "PATH": "/usr/bin"},
            timeout=120,
        )
        assert result.returncode == 0, result.stderr
        summary = json.loads(result.stdout.strip().splitlines()[-1])
        assert summary["ran"] == 1
        state = json.loads((jobs / "tz.json").read_text())
        assert state["last_scheduled"] == "2099-01-01T08:00:00Z"  # 09:00 in Berlin
        assert state["last_result"]["output"] == "from the zip\n"


class TestDeploy:
    def test_a_dry_run_prints_the_plan_and_creates_nothing(self, aws: Any) -> None:
        deployer, recorder, lines = aws
        cfg = config()
        deployer.deploy(cfg, dry_run=True, zip_bytes=b"zip")
        assert recorder.writes == []
        assert lines == [
            f"role {cfg.role_name}: create (dry run)",
            f"role {cfg.role_name} policy: create (dry run)",
            f"function {cfg.function_name}: create (dry run)",
            f"rule {cfg.rule_name}: create (dry run)",
            f"rule {cfg.rule_name} target: create (dry run)",
            f"function {cfg.function_name} permission for the rule: create (dry run)",
        ]

    def test_deploy_creates_everything_configured_and_a_second_run_changes_nothing(
        self, aws: Any, zip_bytes: bytes
    ) -> None:
        deployer, recorder, lines = aws
        cfg = config(invoke_arns=("arn:aws:lambda:us-east-1:123456789012:function:place-order",))
        deployer.deploy(cfg, zip_bytes=zip_bytes)
        assert sorted(recorder.writes) == sorted(
            [
                "CreateRole",
                "PutRolePolicy",
                "CreateFunction",
                "PutRule",
                "PutTargets",
                "AddPermission",
            ]
        )

        iam, lam, events = deployer.iam, deployer.lambda_, deployer.events
        role = iam.get_role(RoleName=cfg.role_name)["Role"]
        trust = role["AssumeRolePolicyDocument"]
        trust = json.loads(trust) if isinstance(trust, str) else trust
        assert trust["Statement"][0]["Principal"] == {"Service": "lambda.amazonaws.com"}
        policy = iam.get_role_policy(RoleName=cfg.role_name, PolicyName="lambdacron")
        document = policy["PolicyDocument"]
        document = json.loads(document) if isinstance(document, str) else document
        assert document == role_policy(cfg)

        function = lam.get_function(FunctionName=cfg.function_name)["Configuration"]
        assert (
            function["Handler"],
            function["Runtime"],
            function["Timeout"],
            function["MemorySize"],
            function["Role"],
        ) == ("lambdacron.lambda_handler", "python3.12", 900, 512, role["Arn"])
        assert function["Environment"]["Variables"] == {
            "LAMBDACRON_BUCKET": "orders-bucket",
            "LAMBDACRON_PREFIX": "jobs/",
            "LAMBDACRON_INTERVAL": "5",
        }
        assert function["CodeSha256"] == code_sha256(zip_bytes)

        rule = events.describe_rule(Name=cfg.rule_name)
        assert (rule["ScheduleExpression"], rule["State"]) == ("rate(5 minutes)", "ENABLED")
        (target,) = events.list_targets_by_rule(Rule=cfg.rule_name)["Targets"]
        assert target["Arn"] == function["FunctionArn"]
        assert target["RetryPolicy"]["MaximumRetryAttempts"] == 0
        statement = json.loads(lam.get_policy(FunctionName=cfg.function_name)["Policy"])
        (grant,) = statement["Statement"]
        assert grant["Principal"] == {"Service": "events.amazonaws.com"}
        assert grant["Condition"]["ArnLike"]["AWS:SourceArn"] == rule["Arn"]

        recorder.writes.clear()
        lines.clear()
        deployer.deploy(cfg, zip_bytes=zip_bytes)
        assert recorder.writes == []
        assert all(line.endswith(": unchanged") for line in lines), lines

    def test_a_changed_interval_updates_the_rule_and_the_environment_only(
        self, aws: Any, zip_bytes: bytes
    ) -> None:
        deployer, recorder, _ = aws
        cfg = config()
        deployer.deploy(cfg, zip_bytes=zip_bytes)
        recorder.writes.clear()
        moved = DeployConfig(**{**cfg.__dict__, "interval": 1})
        deployer.deploy(moved, zip_bytes=zip_bytes)
        assert sorted(recorder.writes) == ["PutRule", "UpdateFunctionConfiguration"]
        rule = deployer.events.describe_rule(Name=cfg.rule_name)
        assert rule["ScheduleExpression"] == "rate(1 minute)"
        env = deployer.lambda_.get_function(FunctionName=cfg.function_name)["Configuration"]
        assert env["Environment"]["Variables"]["LAMBDACRON_INTERVAL"] == "1"

    def test_the_policy_has_no_invoke_right_unless_asked(self) -> None:
        statements = role_policy(config())["Statement"]
        assert all("lambda:InvokeFunction" not in json.dumps(s) for s in statements)
        listing = next(s for s in statements if s["Sid"] == "ListJobs")
        assert listing["Condition"] == {"StringLike": {"s3:prefix": ["jobs/*"]}}
        objects = next(s for s in statements if s["Sid"] == "ReadWriteJobs")
        assert objects["Resource"] == "arn:aws:s3:::orders-bucket/jobs/*"

    def test_undeploy_removes_what_deploy_made_and_never_the_jobs(
        self, aws: Any, zip_bytes: bytes, bucket: str
    ) -> None:
        deployer, _, lines = aws
        s3 = boto_client("s3")
        s3.put_object(Bucket=bucket, Key="jobs/a.json", Body=b"{}")
        cfg = config(bucket=bucket)
        deployer.deploy(cfg, zip_bytes=zip_bytes)
        lines.clear()
        deployer.undeploy(cfg.function_name)
        assert lines == [
            f"rule {cfg.rule_name} targets: delete",
            f"rule {cfg.rule_name}: delete",
            f"function {cfg.function_name}: delete",
            f"role {cfg.role_name} policy: delete",
            f"role {cfg.role_name}: delete",
        ]
        names = [f["FunctionName"] for f in deployer.lambda_.list_functions()["Functions"]]
        assert cfg.function_name not in names
        assert cfg.rule_name not in [r["Name"] for r in deployer.events.list_rules()["Rules"]]
        assert cfg.role_name not in [r["RoleName"] for r in deployer.iam.list_roles()["Roles"]]
        assert s3.get_object(Bucket=bucket, Key="jobs/a.json")["Body"].read() == b"{}"
        lines.clear()
        deployer.undeploy(cfg.function_name)
        assert all(line.endswith(": absent") for line in lines)


def test_the_cli_deploy_dry_run(moto_endpoint: str, run_cli: Any) -> None:
    result = run_cli(
        "deploy",
        "--bucket",
        "b",
        "--prefix",
        "jobs",
        "--interval",
        "5",
        "--function-name",
        "cli-dry-run",
        "--dry-run",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == "role cli-dry-run-role: create (dry run)"
    bad = run_cli("deploy", "--bucket", "b", "--timeout", "1000")
    assert (bad.returncode, bad.stderr) == (
        2,
        "lambdacron: --timeout must be 1-900 seconds (Lambda's limit)\n",
    )
