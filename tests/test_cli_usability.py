"""The CLI as a new user meets it: what a mistake says, what --help says, and Ctrl-C."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from conftest import Run
from helpers import command_job, place
from lambdacron.cli import build_parser

#: Every status an ``ls`` row can have: how the last run ended, or why there is none.
STATUSES = (
    "ok",
    "failed",
    "timeout",
    "error",
    "interrupted",
    "missed",
    "running",
    "disabled",
    "invalid",
    "unreadable",
    "never run",
)


def store_dir(tmp_path: Path) -> Path:
    root = tmp_path / "jobs"
    root.mkdir(exist_ok=True)
    return root


class TestLsStatus:
    def test_a_status_no_job_can_have_is_a_usage_error_and_every_real_one_is_accepted(
        self, run_cli: Run, tmp_path: Path
    ) -> None:
        root = store_dir(tmp_path)
        place(root, "ok.json", command_job("* * * * *", ["true"]))
        place(root, "failed.json", command_job("* * * * *", ["false"]))
        place(root, "off.json", command_job("* * * * *", ["true"], enabled=False))
        place(root, "new.json", command_job("0 0 1 1 *", ["true"]))
        place(root, "bad.json", b"{")
        run_cli("tick", "--now", "2026-01-01T00:05:00Z")
        # A typo ("faild") must not read as "no job failed".
        for typo in ("faild", "never-run", "OK", ""):
            result = run_cli("ls", "--status", typo)
            assert result.returncode == 2, (typo, result.stdout)
            assert result.stdout == ""
            (line,) = result.stderr.splitlines()
            assert line.startswith(f"lambdacron: argument --status: {typo!r} is not a status")
            assert all(status in line for status in STATUSES)
        shown = {row["key"]: row["status"] for row in _ls_json(run_cli)}
        assert shown == {
            "bad.json": "invalid",
            "failed.json": "failed",
            "new.json": "never run",
            "off.json": "disabled",
            "ok.json": "ok",
        }
        for status in STATUSES:
            result = run_cli("ls", "--status", status, "--json")
            assert result.returncode == 0, (status, result.stderr)
            keys = [k for k, s in sorted(shown.items()) if s == status]
            assert [row["key"] for row in _json(result.stdout)] == keys


def _ls_json(run_cli: Run) -> list[dict[str, str]]:
    return _json(run_cli("ls", "--json").stdout)


def _json(text: str) -> list[dict[str, str]]:
    rows: list[dict[str, str]] = json.loads(text)
    return rows


class TestMissingStore:
    def test_the_hint_creates_the_store_that_was_asked_for(
        self, run_cli: Run, tmp_path: Path
    ) -> None:
        result = run_cli("ls", "--store", "nowhere")
        assert result.returncode == 2
        assert result.stderr == (
            "lambdacron: store 'nowhere' does not exist "
            "(create it, or run 'lambdacron init --store nowhere')\n"
        )
        assert run_cli("init", "--store", "nowhere").returncode == 0
        assert run_cli("ls", "--store", "nowhere").returncode == 0

    def test_a_store_that_is_a_file_gets_no_hint_to_init_it(
        self, run_cli: Run, tmp_path: Path
    ) -> None:
        (tmp_path / "jobs").write_text("not a folder")
        result = run_cli("ls")
        assert result.returncode == 2
        assert result.stderr == "lambdacron: store 'jobs' is not a directory\n"


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    raise AssertionError("no subcommands")


class TestHelp:
    def test_every_command_says_what_it_does_on_its_own_help_page(self) -> None:
        for name, sub in _subcommands(build_parser()).items():
            assert sub.description, f"lambdacron {name} --help says nothing of what it does"

    def test_every_argument_says_what_it_is(self) -> None:
        for name, sub in _subcommands(build_parser()).items():
            for action in sub._actions:
                if isinstance(action, argparse._HelpAction):
                    continue
                assert action.help, f"lambdacron {name} {action.dest}: no help text"

    @pytest.mark.parametrize("command", ["ls", "tick", "add", "rm", "show", "run", "init"])
    def test_the_store_flag_says_a_bucket_works_too(self, command: str) -> None:
        sub = _subcommands(build_parser())[command]
        (store,) = [a for a in sub._actions if a.dest == "store"]
        assert store.help is not None and "s3://BUCKET/PREFIX/" in store.help
