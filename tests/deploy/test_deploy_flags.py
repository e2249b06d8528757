"""``deploy``'s flags are checked before any AWS request: a mistake is named in one line at
once, not after the reads, and not hidden behind an error of the connection."""

from __future__ import annotations

import pytest

from conftest import AWS_ENV, Run

#: Nothing listens here: a request would fail with a connection error, not a flag's line.
CLOSED = {**AWS_ENV, "AWS_ENDPOINT_URL": "http://127.0.0.1:9", "AWS_MAX_ATTEMPTS": "1"}


@pytest.mark.parametrize(
    ("flags", "named"),
    [
        (["--memory", "5"], "--memory must be 128-10240 MB"),
        (["--memory", "20000"], "--memory must be 128-10240 MB"),
        (["--timeout", "901"], "--timeout must be 1-900 seconds"),
        (["--retry", "{"], "--retry: invalid JSON"),
        (["--retry", '{"attempts": 0}'], "--retry: "),
        (["--on-failure", "[]"], "--on-failure: '[]' is not a JSON object"),
        (["--alarm-topic", "x"], "--alarm-topic: 'x' is not an SNS topic ARN"),
        (["--notify-arn", "y"], "--notify-arn: 'y' is not the ARN of"),
        (
            ["--interval", "100000", "--alarm-topic", "arn:aws:sns:us-east-1:123456789012:t"],
            "--alarm-topic: CloudWatch cannot watch",
        ),
    ],
)
def test_a_bad_flag_is_refused_before_any_request(
    run_cli: Run, flags: list[str], named: str
) -> None:
    result = run_cli("deploy", "--bucket", "b", *flags, env=CLOSED)
    assert result.returncode == 2, result.stderr
    (line,) = result.stderr.splitlines()
    assert named in line
    assert "Endpoint" not in line and "connect" not in line


def test_good_flags_go_on_to_aws(run_cli: Run) -> None:
    # The check stands in defaults for the flags not given: it refuses none of these.
    flags = ["--memory", "256", "--timeout", "60", "--retry", '{"attempts": 2}']
    result = run_cli("deploy", "--bucket", "b", *flags, env=CLOSED)
    assert result.returncode != 0
    assert "Could not connect to the endpoint URL" in result.stderr
