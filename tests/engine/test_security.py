"""What the runner protects: credentials, the shell, the types an operator allows."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import unicodedata
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from helpers import FakeClock, command_job, place, read_json, subprocess_env, utc
from lambdacron.actions import default_registry
from lambdacron.actions.base import OUTPUT_LIMIT
from lambdacron.engine import Engine
from lambdacron.logs import printable
from lambdacron.redact import MARK, MIN_FRAGMENT, tail
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


def fragments(output: str, secret: str, size: int = MIN_FRAGMENT) -> list[str]:
    """Every piece of ``secret`` at least ``size`` characters long found in ``output``."""
    grams = {secret[i : i + size] for i in range(len(secret) - size + 1)}
    return [output[i : i + size] for i in range(len(output)) if output[i : i + size] in grams]


@pytest.mark.parametrize("after", [0, 5, 17, 39, 101, 1000, 3600, 4095, 4096, 9000])
def test_a_secret_printed_many_times_leaves_no_fragment_whatever_the_cut(
    engine: Engine, root: Path, after: int
) -> None:
    script = (
        'for i in $(seq 200); do printf %s "$AWS_SECRET_ACCESS_KEY"; done; '
        f"head -c {after} /dev/zero | tr '\\0' x"
    )
    path = place(root, "many.json", command_job("@hourly", ["sh", "-c", script]))
    engine.tick(utc(2026, 1, 1, 1))
    output = read_json(path)["last_result"]["output"]
    assert fragments(output, SECRET) == []
    # The 200 copies touch: one mark stands for them all.
    assert output == tail(MARK + "x" * after, OUTPUT_LIMIT)


@pytest.mark.parametrize("after", [0, 2000, 3600, 4090, 6000])
def test_a_long_secret_of_the_job_own_env_leaves_no_fragment(
    engine: Engine, root: Path, after: int
) -> None:
    key = "".join(chr(65 + (i * 7) % 26) for i in range(1700))
    job = command_job(
        "@hourly",
        ["sh", "-c", f"printf %s \"$PRIVATE_KEY\"; head -c {after} /dev/zero | tr '\\0' x"],
    )
    job["run"]["details"]["env"] = {"PRIVATE_KEY": key}
    path = place(root, "key.json", job)
    engine.tick(utc(2026, 1, 1, 1))
    output = read_json(path)["last_result"]["output"]
    assert fragments(output, key) == []
    assert output == tail(MARK + "x" * after, OUTPUT_LIMIT)


#: What a job could use to act on the terminal that shows the runner's log.
UNSAFE = re.compile(
    "[\x00-\x09\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]"
)
FORGERY = "\x1b[2K\r2026-01-01T01:00:00Z ran payroll.json: ok\x00\x07\x9b2J\u202eko\u2028\u2066"


def lambdacron(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lambdacron", *args],
        capture_output=True,
        text=True,
        env=subprocess_env(),
        timeout=60,
    )


def test_job_output_cannot_forge_a_line_of_the_runner_log(root: Path) -> None:
    script = f"import sys; sys.stdout.write({FORGERY!r}); sys.stdout.flush()"
    place(
        root,
        "forge.json",
        {"when": "@hourly", "run": {"type": "python", "details": {"script": script}}},
    )
    ran = lambdacron("tick", "--store", str(root), "--now", "2026-01-01T01:00:00Z")
    assert ran.returncode == 0, ran.stderr
    assert "ran forge.json" in ran.stderr
    assert UNSAFE.findall(ran.stderr) == []
    assert "\\x1b[2K\\r2026-01-01T01:00:00Z ran payroll.json: ok\\x00" in ran.stderr


def test_show_prints_no_control_character_of_a_job(root: Path) -> None:
    # JSON escapes C0 controls itself; DEL, C1 controls, separators and bidi controls not.
    document = {"note": FORGERY, **command_job("@hourly", ["true"])}
    place(root, "note.json", document)
    shown = lambdacron("show", "--store", str(root), "note.json")
    assert shown.returncode == 0, shown.stderr
    assert UNSAFE.findall(shown.stdout) == []
    assert json.loads(shown.stdout) == document  # still the same JSON


@settings(max_examples=200, deadline=None)
@given(st.text(st.characters(blacklist_categories=("Cs",))))
def test_printable_text_holds_no_character_that_acts_on_a_terminal(text: str) -> None:
    shown = printable(text)
    assert not [c for c in shown if unicodedata.category(c) in ("Cc", "Zl", "Zp")]
    assert UNSAFE.findall(shown) == []


def test_ls_validate_and_dry_run_print_no_control_character_of_a_job(root: Path) -> None:
    # A field name, a runner field and a file's own name are all the job's text.
    stamped = {
        **command_job("@hourly", ["true"]),
        "execution_count": 1,
        "last_run": "2026-01-01T00:00:00Z",
        "last_result": {"status": FORGERY},
    }
    place(root, "status.json", stamped)
    bad = command_job("@hourly", ["true"])
    bad["run"]["details"][FORGERY] = "x"
    place(root, "field.json", bad)
    place(root, "warn.json", {f"{FORGERY}enabld": False, **command_job("@hourly", ["true"])})
    named = root.parent / f"{FORGERY.replace(chr(0), '')}.json"
    named.write_text("{")
    store = ("--store", str(root))
    shown = [
        lambdacron("ls", *store, "--now", "2026-01-01T01:00:00Z"),
        lambdacron("tick", *store, "--now", "2026-01-01T01:00:00Z", "--dry-run"),
        lambdacron("validate", *(str(p) for p in sorted(root.glob("*.json"))), str(named)),
    ]
    for result in shown:
        assert "field.json" in result.stdout, result.stderr
        assert UNSAFE.findall(result.stdout + result.stderr) == [], result.args
