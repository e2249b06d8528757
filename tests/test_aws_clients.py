"""Every boto3 client lambdacron makes takes its region the documented way: AWS_REGION,
else AWS_DEFAULT_REGION, else the profile's; with none, one line, not a traceback.

Making a client sends no request, so no server is needed."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from helpers import subprocess_env
from lambdacron import aws
from lambdacron.actions.lambda_ import default_lambda_client
from lambdacron.deploy.apply import Deployer
from lambdacron.errors import UsageError
from lambdacron.handler import fan_out
from lambdacron.notify import default_client
from lambdacron.sqs import SqsDelivery
from lambdacron.store.s3 import make_s3_client


def deployer_clients() -> list[Any]:
    deployer = Deployer.from_session()
    return [deployer.iam, deployer.lambda_, deployer.events, deployer.s3, deployer.sqs]


MAKERS: dict[str, Callable[[], list[Any]]] = {
    "s3 store": lambda: [make_s3_client()],
    "lambda action": lambda: [default_lambda_client()],
    "notices": lambda: [default_client("sns"), default_client("sqs"), default_client("lambda")],
    "sqs delivery": lambda: [
        SqsDelivery("https://sqs.x/1/q", "s3://b/", timedelta(minutes=1), clock=datetime.now).client
    ],
    "deploy": deployer_clients,
}


@pytest.fixture
def no_region(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    empty = tmp_path / "aws-config"
    empty.write_text("")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(empty))


@pytest.mark.parametrize("maker", MAKERS, ids=str)
def test_aws_region_alone_gives_every_client_its_region(
    no_region: None, monkeypatch: pytest.MonkeyPatch, maker: str
) -> None:
    monkeypatch.setenv("AWS_REGION", "eu-west-3")
    assert {c.meta.region_name for c in MAKERS[maker]()} == {"eu-west-3"}


@pytest.mark.parametrize("maker", MAKERS, ids=str)
def test_aws_region_comes_before_aws_default_region(
    no_region: None, monkeypatch: pytest.MonkeyPatch, maker: str
) -> None:
    monkeypatch.setenv("AWS_REGION", "eu-west-3")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "ap-south-1")
    assert {c.meta.region_name for c in MAKERS[maker]()} == {"eu-west-3"}


def test_aws_default_region_and_then_the_profile_are_the_fallbacks(
    no_region: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "ap-south-1")
    assert aws.client("sqs").meta.region_name == "ap-south-1"
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    config = tmp_path / "config"
    config.write_text("[default]\nregion = sa-east-1\n")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    assert aws.client("sqs").meta.region_name == "sa-east-1"


def test_with_no_region_anywhere_a_client_is_refused_in_one_line(no_region: None) -> None:
    with pytest.raises(UsageError) as caught:
        aws.client("sns")
    assert str(caught.value) == (
        "sns: no AWS region; set AWS_REGION (e.g. eu-central-1) or give your AWS profile a region"
    )


def test_deploy_without_a_region_says_so_in_one_line(tmp_path: Path) -> None:
    env = {
        k: v
        for k, v in subprocess_env().items()
        if k not in ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE")
    }
    env["AWS_CONFIG_FILE"] = str(tmp_path / "none")
    result = subprocess.run(
        [sys.executable, "-m", "lambdacron", "deploy", "--bucket", "b"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=60,
    )
    assert result.returncode == 2, result.stderr
    (line,) = result.stderr.splitlines()
    assert line.startswith("lambdacron: ")
    assert line.endswith(
        ": no AWS region; set AWS_REGION (e.g. eu-central-1) or give your AWS profile a region"
    )


def test_the_fan_out_client_is_made_the_same_way(
    no_region: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_REGION", "eu-west-3")
    made: list[Any] = []
    real = aws.client

    def spy(service: str, **options: Any) -> Any:
        made.append(real(service, **options))
        return _Recorder()

    monkeypatch.setattr(aws, "client", spy)
    fan_out(datetime(2026, 1, 1), 2, "f")
    assert [c.meta.region_name for c in made] == ["eu-west-3"]


class _Recorder:
    def invoke(self, **_: Any) -> dict[str, Any]:
        return {}
