"""The CLI as a new user meets it: what a mistake says, what --help says, and Ctrl-C."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
from pathlib import Path

import pytest

from conftest import Run
from helpers import command_job, place, read_json, spawn
from lambdacron.cli import build_parser
from test_cli import (
    Output,
    children_of,
    lines_of,
    running_in_group,
    store_dir,
    wait_until,
    waiting_job,
)

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


class Ticking:
    """``lambdacron ARGS`` (a tick, a run) as a real process, its output read as it comes."""

    def __init__(self, *args: str, session: bool = False) -> None:
        self.process = spawn(*args, session=session)
        self.out = Output(self.process.stdout)
        self.err = Output(self.process.stderr)

    def wait(self, timeout: float = 60) -> int:
        code = self.process.wait(timeout=timeout)
        self.out.finish()
        self.err.finish()
        return code

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            self.process.kill()


class TestCtrlC:
    """Ctrl-C during a tick or a run by hand stops as serve does: the first starts nothing
    more and lets the running jobs finish, the second stops them; each is said, and the
    summary still printed."""

    def test_the_first_sigint_starts_no_queued_job_and_the_running_one_finishes(
        self, tmp_path: Path, run_cli: Run
    ) -> None:
        root = store_dir(tmp_path)
        started, release = tmp_path / "started.txt", tmp_path / "release"
        for name in ("a", "b", "c"):
            place(root, f"{name}.json", waiting_job(started, name, release))
        ticking = Ticking("tick", "--store", str(root), "--workers", "1")
        try:
            wait_until(lambda: len(lines_of(started)) == 1)
            ticking.process.send_signal(signal.SIGINT)
            ticking.err.wait_for("SIGINT: stopping after running jobs end")
            release.touch()
            assert ticking.wait() == 130, ticking.err.lines
        finally:
            release.touch()
            ticking.kill()
        (ran,) = (line.split(":")[0] for line in lines_of(started))
        (summary,) = ticking.out.lines
        assert "3 jobs, 3 due, 1 ran, 0 failed, 0 invalid, 2 skipped" in summary
        for name in ("a", "b", "c"):
            state = read_json(root / f"{name}.json")
            assert "claim" not in state
            if name == ran:
                assert state["last_result"]["status"] == "ok"
            else:  # untouched: the next tick runs it
                assert "execution_count" not in state
        after = run_cli("tick")
        assert "3 jobs, 2 due, 2 ran, 0 failed" in after.stdout, after.stderr

    @pytest.mark.parametrize("command", ["tick", "run"])
    def test_a_second_sigint_stops_the_running_job_and_records_it_interrupted(
        self, tmp_path: Path, command: str
    ) -> None:
        root = store_dir(tmp_path)
        started, release = tmp_path / "started.txt", tmp_path / "release"
        place(root, "a.json", waiting_job(started, "a", release, trap=True))  # needs SIGKILL
        args = ("a.json",) if command == "run" else ()
        ticking = Ticking(command, "--store", str(root), *args)
        try:
            wait_until(lambda: lines_of(started) != [])
            (group,) = (int(line.split(":")[1]) for line in lines_of(started))
            ticking.process.send_signal(signal.SIGINT)
            ticking.err.wait_for("SIGINT: stopping after running jobs end")
            ticking.process.send_signal(signal.SIGINT)
            code = ticking.wait()  # without release
        finally:
            release.touch()
            ticking.kill()
        assert code == 130, ticking.err.lines
        assert ticking.err.wait_for("SIGINT again: stopping the running jobs")
        assert running_in_group(group) == []
        state = read_json(root / "a.json")
        assert "claim" not in state
        assert state["last_result"]["status"] == "interrupted"
        assert "stopped" in state["last_result"]["error"]

    @pytest.mark.parametrize("signals", [1, 2])
    def test_a_sharded_tick_stops_on_a_terminals_ctrl_c_as_one_tick_does(
        self, tmp_path: Path, signals: int
    ) -> None:
        # A terminal sends Ctrl-C to its whole foreground group: each shard must hear it
        # once, from the tick that started it, and take the first for the first.
        root = store_dir(tmp_path)
        started, release = tmp_path / "started.txt", tmp_path / "release"
        names = [f"j{i}" for i in range(6)]
        for name in names:
            place(root, f"{name}.json", waiting_job(started, name, release, trap=True))
        args = ("tick", "--store", str(root), "--shards", "2", "--workers", "1")
        ticking = Ticking(*args, session=True)
        try:
            wait_until(lambda: lines_of(started) != [])
            os.killpg(ticking.process.pid, signal.SIGINT)
            ticking.err.wait_for("SIGINT: stopping after running jobs end")
            if signals == 2:
                os.killpg(ticking.process.pid, signal.SIGINT)
            else:
                release.touch()
            code = ticking.wait()
        finally:
            release.touch()
            ticking.kill()
        assert code == 130, ticking.err.lines
        said = [line for line in ticking.err.lines if " SIGINT" in line]
        assert len(said) == signals, said  # once, by the tick, not once per shard
        assert not any("Traceback" in line for line in ticking.err.lines), ticking.err.lines
        ran = {line.split(":")[0]: int(line.split(":")[1]) for line in lines_of(started)}
        (summary,) = ticking.out.lines
        assert f"6 jobs, 6 due, {len(ran)} ran" in summary
        assert f"{6 - len(ran)} skipped" in summary and "(2 shards)" in summary
        for name in names:
            state = read_json(root / f"{name}.json")
            assert "claim" not in state
            if name not in ran:
                assert "execution_count" not in state  # untouched: the next tick runs it
            elif signals == 1:
                assert state["last_result"]["status"] == "ok"
            else:
                assert state["last_result"]["status"] == "interrupted"
                assert running_in_group(ran[name]) == []

    def test_a_stop_sent_to_every_process_of_a_sharded_tick_is_one_request(
        self, tmp_path: Path
    ) -> None:
        # A service manager stops a unit by signalling each of its processes: the tick and
        # its shards. A shard that counted its own signal and the tick's hand-on as two
        # stopped its running jobs on a single stop.
        root = store_dir(tmp_path)
        started, release = tmp_path / "started.txt", tmp_path / "release"
        names = [f"j{i}" for i in range(6)]
        for name in names:
            place(root, f"{name}.json", waiting_job(started, name, release))
        args = ("tick", "--store", str(root), "--shards", "2", "--workers", "1")
        ticking = Ticking(*args, session=True)
        try:
            wait_until(lambda: len(lines_of(started)) == 2)
            shards = children_of(ticking.process.pid)
            assert len(shards) == 2, shards
            for pid in [ticking.process.pid, *shards]:
                os.kill(pid, signal.SIGTERM)
            ticking.err.wait_for("SIGTERM: stopping after running jobs end")
            release.touch()
            code = ticking.wait()
        finally:
            release.touch()
            ticking.kill()
        assert code == 128 + signal.SIGTERM, ticking.err.lines
        assert not any(" again:" in line for line in ticking.err.lines), ticking.err.lines
        ran = [line.split(":")[0] for line in lines_of(started)]
        assert len(ran) == 2  # one a shard: none started after the stop
        for name in names:
            state = read_json(root / f"{name}.json")
            assert "claim" not in state
            if name in ran:
                assert state["last_result"]["status"] == "ok"
            else:
                assert "execution_count" not in state


class TestNext:
    @pytest.mark.parametrize(
        "expression", ["0 0 1 1 * 2020-2022", "at(2021-06-01T12:00:00Z)", "59 23 31 12 * 2199"]
    )
    def test_an_expression_with_no_fire_time_left_says_so(
        self, run_cli: Run, expression: str
    ) -> None:
        after = "2199-12-31T23:59:00Z" if "2199" in expression else "2026-01-01T00:00:00Z"
        result = run_cli("next", expression, "--after", after)
        assert result.returncode == 0, result.stderr
        assert result.stdout == ""
        assert result.stderr == (
            f"lambdacron: {expression!r} has no fire time after {after.replace('Z', '+00:00')}\n"
        )
