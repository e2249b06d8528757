"""What the runner protects: credentials, the shell, the types an operator allows."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers import FakeClock, command_job, place, read_json, utc
from lambdacron.actions import default_registry
from lambdacron.actions.base import OUTPUT_LIMIT
from lambdacron.engine import Engine
from lambdacron.store import LocalStore

SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"


@pytest.fixture
def engine(root: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Engine]:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    with Engine(LocalStore(root), default_registry(), clock=FakeClock(utc(2026, 1, 1))) as e:
        yield e


def test_credentials_printed_by_a_job_never_reach_the_job_file(engine: Engine, root: Path) -> None:
    path = place(root, "env.json", command_job("@hourly", ["sh", "-c", "env; echo done"]))
    engine.tick(utc(2026, 1, 1, 1))
    recorded = path.read_text()
    assert os.environ["AWS_SECRET_ACCESS_KEY"] == SECRET  # the job did see it
    assert SECRET not in recorded
    assert "AWS_SECRET_ACCESS_KEY=[redacted]" in read_json(path)["last_result"]["output"]


def test_a_credential_set_after_the_runner_started_is_redacted_from_the_next_tick(
    engine: Engine, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine.tick(utc(2026, 1, 1, 0, 30))
    monkeypatch.setenv("GITHUB_TOKEN", "ghp-0123456789abcdef")
    path = place(root, "late.json", command_job("@hourly", ["sh", "-c", "echo $GITHUB_TOKEN"]))
    engine.tick(utc(2026, 1, 1, 1))
    assert read_json(path)["last_result"]["output"] == "[redacted]\n"


def test_secrets_of_the_job_own_env_are_redacted_too(engine: Engine, root: Path) -> None:
    job = command_job("@hourly", ["sh", "-c", "echo token is $API_TOKEN; exit 1"])
    job["run"]["details"]["env"] = {"API_TOKEN": "tok-1234567890"}
    path = place(root, "tok.json", job)
    engine.tick(utc(2026, 1, 1, 1))
    assert read_json(path)["last_result"]["output"] == "token is [redacted]\n"


def test_a_secret_cut_by_the_output_limit_is_still_redacted(engine: Engine, root: Path) -> None:
    # The secret straddles the 4 KiB boundary of what is recorded.
    filler = f"{sys.executable} -c \"print('x' * {OUTPUT_LIMIT - 10}, end='')\""
    script = f"printf '%s' \"$AWS_SECRET_ACCESS_KEY\"; {filler}"
    path = place(root, "cut.json", command_job("@hourly", ["sh", "-c", script]))
    engine.tick(utc(2026, 1, 1, 1))
    output = read_json(path)["last_result"]["output"]
    assert len(output.encode()) == OUTPUT_LIMIT
    assert SECRET[-10:] not in output and output.endswith("x" * 100)


def test_the_recorded_output_is_the_last_4_kib(engine: Engine, root: Path) -> None:
    script = "for i in $(seq 1 5000); do echo line $i; done"
    path = place(root, "chatty.json", command_job("@hourly", ["sh", "-c", script]))
    engine.tick(utc(2026, 1, 1, 1))
    output = read_json(path)["last_result"]["output"]
    assert len(output.encode()) == OUTPUT_LIMIT and output.endswith("line 5000\n")


def test_shell_syntax_in_an_argument_is_not_interpreted(engine: Engine, root: Path) -> None:
    marker = root.parent / "pwned"
    path = place(root, "inj.json", command_job("@hourly", ["echo", f"; touch {marker}"]))
    engine.tick(utc(2026, 1, 1, 1))
    assert not marker.exists()
    assert read_json(path)["last_result"]["output"] == f"; touch {marker}\n"
