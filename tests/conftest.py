from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from lambdacron.store import Store

Run = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def run_cli(tmp_path: Path) -> Run:
    """Run ``python -m lambdacron ARGS`` as a real subprocess in a temp working directory."""

    def run(
        *args: str, env: dict[str, str] | None = None, timeout: float = 60, cwd: Path | None = None
    ) -> subprocess.CompletedProcess[str]:
        # The caller's environment must not leak a store into the test.
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("LAMBDACRON_")}
        full_env.update(env or {})
        return subprocess.run(
            [sys.executable, "-m", "lambdacron", *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=full_env,
            cwd=cwd or tmp_path,
        )

    return run


AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_REGION": "us-east-1",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
}


@pytest.fixture(scope="session", autouse=True)
def no_real_aws() -> Iterator[None]:
    """No test may reach AWS: until a test asks for the local server, every AWS endpoint is a
    closed loopback port, and the credentials are fake."""
    saved = dict(os.environ)
    os.environ.update(AWS_ENV, AWS_ENDPOINT_URL="http://127.0.0.1:9")
    for name in ("AWS_PROFILE", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"):
        os.environ.pop(name, None)
    os.environ["AWS_CONFIG_FILE"] = os.devnull
    os.environ["AWS_SHARED_CREDENTIALS_FILE"] = os.devnull
    yield
    os.environ.clear()
    os.environ.update(saved)


@pytest.fixture(scope="session")
def moto_endpoint(no_real_aws: None) -> Iterator[str]:
    """A real AWS API over HTTP on a free loopback port; boto3 reaches it via AWS_ENDPOINT_URL.

    The environment is set for the whole session, so CLI subprocesses reach it too and no
    test can fall through to real AWS.
    """
    script = Path(__file__).with_name("moto_serial.py")
    server = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    assert server.stdout is not None
    port = int(server.stdout.readline())
    endpoint = f"http://127.0.0.1:{port}"
    # Lambda functions without Docker: moto's simple backend echoes the payload it got.
    request = urllib.request.Request(
        f"{endpoint}/moto-api/config",
        data=json.dumps({"lambda": {"use_docker": False}}).encode(),
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    urllib.request.urlopen(request, timeout=10).close()
    saved = {k: os.environ.get(k) for k in [*AWS_ENV, "AWS_ENDPOINT_URL"]}
    os.environ.update(AWS_ENV, AWS_ENDPOINT_URL=endpoint)
    try:
        yield endpoint
    finally:
        server.terminate()
        server.wait(timeout=10)
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def boto_client(service: str, **kwargs: Any) -> Any:
    import boto3

    return boto3.client(service, **kwargs)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A test that starts the moto server is an ``aws`` test, so ``-m "not aws"`` runs
    without moto. Tests that ask for it by ``getfixturevalue`` carry the marker themselves
    (the ``bucket`` fixture checks)."""
    for item in items:
        if "moto_endpoint" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.aws)


@pytest.fixture
def bucket(moto_endpoint: str, request: pytest.FixtureRequest) -> str:
    """A fresh, empty bucket for one test."""
    if request.node.get_closest_marker("aws") is None:
        pytest.fail(f"{request.node.nodeid} uses moto: mark it (or its parameter) aws")
    name = f"test-{uuid.uuid4().hex[:12]}"
    boto_client("s3").create_bucket(Bucket=name)
    return name


@pytest.fixture
def lambda_recorder(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A recording Invoke endpoint; boto3's Lambda client reaches it via AWS_ENDPOINT_URL_LAMBDA."""
    from recording_lambda import RecordingLambda

    recording = RecordingLambda()
    monkeypatch.setenv("AWS_ENDPOINT_URL_LAMBDA", recording.url)
    yield recording
    recording.stop()


@pytest.fixture
def warm_engines() -> Iterator[None]:
    """The handler's engines, kept between invocations as in a warm Lambda container: none
    at the start of the test, all closed at its end."""
    from lambdacron import handler

    handler._engines.clear()
    yield
    for engine in handler._engines.values():
        engine.close()
    handler._engines.clear()


@pytest.fixture(params=["local", pytest.param("s3", marks=pytest.mark.aws)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """An empty store of each kind, a directory and an S3 prefix on moto: a test taking it
    runs once on each. A module with a ``store`` of its own uses that one instead."""
    if request.param == "local":
        from lambdacron.store import LocalStore

        yield LocalStore(tmp_path / "jobs", create=True)
    else:
        from lambdacron.store.s3 import S3Store

        yield S3Store(request.getfixturevalue("bucket"), "jobs/")


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """An empty local store."""
    path = tmp_path / "jobs"
    path.mkdir()
    return path
