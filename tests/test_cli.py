"""The CLI as a user runs it: real subprocesses on a real store directory."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from conftest import Run
from helpers import SEED_COMMAND, append_job, command_job, place, read_json, spawn, utc


def store_dir(tmp_path: Path) -> Path:
    root = tmp_path / "jobs"
    root.mkdir(exist_ok=True)
    return root


class TestTick:
    def test_it_runs_due_jobs_and_prints_a_one_line_summary(
        self, run_cli: Run, tmp_path: Path
    ) -> None:
        root = store_dir(tmp_path)
        place(root, "a.json", SEED_COMMAND)
        place(root, "bad.json", b"{")
        result = run_cli("tick", "--now", "2026-01-01T18:33:00Z")
        assert result.returncode == 0, result.stderr
        summary = result.stdout.strip()
        assert summary.startswith(
            "tick 2026-01-01T18:33:00Z: 2 jobs, 1 due, 1 ran, 0 failed, 1 invalid in "
        )
        assert "ran a.json (scheduled 2026-01-01T18:30:00Z): ok" in result.stderr
        assert (
            "invalid bad.json: invalid JSON: Expecting property name enclosed in double "
            "quotes at line 1 column 2 (skipped; file left as it is)" in result.stderr
        )
        assert read_json(root / "a.json")["last_run"] == "2026-01-01T18:33:00Z"

    def test_the_store_comes_from_the_flag_or_the_environment(
        self, run_cli: Run, tmp_path: Path
    ) -> None:
        other = tmp_path / "elsewhere"
        other.mkdir()
        place(other, "a.json", SEED_COMMAND)
        by_flag = run_cli("tick", "--store", str(other), "--now", "2026-01-01T18:31:00Z")
        assert "1 ran" in by_flag.stdout
        by_env = run_cli(
            "tick", "--now", "2026-01-02T18:31:00Z", env={"LAMBDACRON_STORE": str(other)}
        )
        assert "1 ran" in by_env.stdout

    def test_json_summary(self, run_cli: Run, tmp_path: Path) -> None:
        store_dir(tmp_path)
        result = run_cli("tick", "--now", "2026-01-01T00:00:00Z", "--json")
        summary = json.loads(result.stdout)
        # The time in the same Z form as the text summary and every field the runner writes.
        assert (summary["seen"], summary["ran"], summary["now"]) == (0, 0, "2026-01-01T00:00:00Z")
        text = run_cli("tick", "--now", "2026-01-01T00:00:00Z")
        assert text.stdout.startswith(f"tick {summary['now']}: ")

    def test_a_failing_job_still_exits_zero(self, run_cli: Run, tmp_path: Path) -> None:
        place(store_dir(tmp_path), "f.json", command_job("@hourly", ["false"]))
        result = run_cli("tick", "--now", "2026-01-01T01:00:00Z")
        assert result.returncode == 0 and "1 failed" in result.stdout

    def test_user_errors_are_one_line_and_exit_2(self, run_cli: Run, tmp_path: Path) -> None:
        cases = [
            (("tick",), "lambdacron: store "),  # ./jobs does not exist in the temp dir
            (("tick", "--store", str(tmp_path), "--now", "noon"), "lambdacron: --now: 'noon'"),
            (("tick", "--workers", "0"), "lambdacron: argument --workers: 0 must be at least 1"),
            (("tick", "--shards", "5000"), "lambdacron: argument --shards: 5000 must be at most"),
            (("frobnicate",), "lambdacron: argument command: invalid choice: 'frobnicate'"),
        ]
        for args, message in cases:
            result = run_cli(*args)
            assert result.returncode == 2, args
            assert result.stderr.startswith(message), (args, result.stderr)
            assert len(result.stderr.splitlines()) == 1 and "Traceback" not in result.stderr

    @pytest.mark.parametrize(
        ("variable", "value", "problem"),
        [
            ("LAMBDACRON_WORKERS", "abc", "'abc' is not a whole number"),
            ("LAMBDACRON_WORKERS", "0", "0 must be at least 1"),
            ("LAMBDACRON_SHARDS", "two", "'two' is not a whole number"),
            ("LAMBDACRON_SHARDS", "-1", "-1 must be at least 1"),
            ("LAMBDACRON_MAX_JOB_BYTES", "1e3", "'1e3' is not a whole number"),
            ("LAMBDACRON_INTERVAL", "5m", "'5m' is not a whole number"),
            # More digits than Python turns into an int, and more shards than a tick can
            # start processes (or a Lambda fan out invocations) for.
            ("LAMBDACRON_WORKERS", "9" * 5000, "a 5000-digit number is too large"),
            ("LAMBDACRON_MAX_JOB_BYTES", "1" * 4301, "a 4301-digit number is too large"),
            ("LAMBDACRON_INTERVAL", "7" * 9000, "a 9000-digit number is too large"),
            ("LAMBDACRON_SHARDS", "257", "257 must be at most 256"),
            ("LAMBDACRON_SHARDS", "9" * 400, "a 400-digit number is too large"),
        ],
    )
    def test_a_bad_setting_is_one_line_and_exit_2(
        self, run_cli: Run, tmp_path: Path, variable: str, value: str, problem: str
    ) -> None:
        place(store_dir(tmp_path), "h.json", command_job("@hourly", ["true"]))
        for command in (("tick",), ("tick", "--shards", "2"), ("ls",)):
            result = run_cli(*command, env={variable: value})
            assert result.returncode == 2, (command, result.stdout)
            assert result.stderr == f"lambdacron: {variable}: {problem}\n"

    def test_allowed_types_restrict_what_runs(self, run_cli: Run, tmp_path: Path) -> None:
        place(store_dir(tmp_path), "c.json", command_job("@hourly", ["true"]))
        result = run_cli(
            "tick",
            "--now",
            "2026-01-01T01:00:00Z",
            env={"LAMBDACRON_ALLOWED_TYPES": "python,lambda"},
        )
        assert "0 ran" in result.stdout and "1 invalid" in result.stdout
        assert "'command' is not allowed by this runner" in result.stderr


def claimed(job: dict[str, Any], scheduled: str, host: str, deadline: str) -> dict[str, Any]:
    """``job`` as a runner leaves it while it runs the occurrence ``scheduled``."""
    claim = {
        "id": "c0ffee",
        "scheduled": scheduled,
        "host": host,
        "pid": 4_000_000,
        "started": scheduled,
        "deadline": deadline,
    }
    return {**job, "execution_count": 1, "last_scheduled": scheduled, "claim": claim}


def snapshot(root: Path) -> dict[str, tuple[bytes, int]]:
    """Every file under the store, the runner's own included, with its bytes and mtime."""
    return {
        str(path.relative_to(root)): (path.read_bytes(), path.stat().st_mtime_ns)
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def in_future(**delta: float) -> str:
    return (datetime.now(UTC) + timedelta(**delta)).strftime("%Y-%m-%dT%H:%M:%SZ")


class TestFutureNowAndDryRun:
    @pytest.mark.parametrize("ahead", [{"minutes": 2}, {"days": 30}, {"days": 365 * 900}])
    def test_a_now_later_than_the_clock_is_refused_unless_allowed(
        self, run_cli: Run, tmp_path: Path, ahead: dict[str, float]
    ) -> None:
        root = store_dir(tmp_path)
        place(root, "h.json", command_job("@hourly", ["true"]))
        before = snapshot(root)
        future = in_future(**ahead)
        for extra in ((), ("--shards", "2"), ("--json",)):
            refused = run_cli("tick", "--now", future, *extra)
            assert refused.returncode == 2, (extra, refused.stdout)
            (line,) = refused.stderr.splitlines()
            assert line.startswith(f"lambdacron: --now: {future} is later than the clock (")
            assert "--allow-future" in line and "--dry-run" in line
        assert snapshot(root) == before  # nothing claimed, not even an index
        allowed = run_cli("tick", "--now", future, "--allow-future")
        assert allowed.returncode == 0 and "1 ran" in allowed.stdout

    @pytest.mark.parametrize(
        "now", ["9999-06-01T00:00:00Z", "9998-12-31T13:00:00Z", "1969-12-31T23:00:00Z"]
    )
    def test_a_now_no_job_file_can_record_is_refused_even_when_allowed(
        self, run_cli: Run, tmp_path: Path, now: str
    ) -> None:
        root = store_dir(tmp_path)
        place(root, "r.json", command_job("rate(1 minute)", ["true"]))
        before = snapshot(root)
        for extra in (("--allow-future",), ("--dry-run",), ("--allow-future", "--shards", "2")):
            refused = run_cli("tick", "--now", now, *extra)
            assert refused.returncode == 2, (extra, refused.stdout)
            assert refused.stderr.splitlines() == [
                f"lambdacron: --now: {now!r} is out of range: a tick's time must lie within"
                " 1970-01-01 to 9998-12-31 in UTC, the times a job file records"
            ]
        assert snapshot(root) == before

    def test_dry_run_says_what_would_run_and_why_and_changes_nothing(
        self, run_cli: Run, tmp_path: Path
    ) -> None:
        root = store_dir(tmp_path)
        out = tmp_path / "out.txt"
        place(root, "due.json", append_job("@hourly", out, "due"))
        place(root, "later.json", append_job("0 0 1 1 *", out, "later"))
        place(root, "bad.json", b"{")
        # A tick before any of it is due leaves the runner's index in the store.
        assert run_cli("tick", "--now", "2026-01-01T00:30:00Z").returncode == 0
        assert (root / ".lambdacron" / "index.json").exists()
        dead = claimed(
            append_job("@hourly", out, "dead"),
            "2026-01-01T05:00:00Z",
            "elsewhere/0",
            "2026-01-01T05:07:00Z",
        )
        place(root, "dead.json", dead)
        live = claimed(
            append_job("@hourly", out, "live"),
            "2026-06-01T12:00:00Z",
            "elsewhere/0",
            "2999-01-01T00:00:00Z",
        )
        place(root, "live.json", live)
        before = snapshot(root)

        now = "2026-06-01T12:30:00Z"
        result = run_cli("tick", "--dry-run", "--now", now)
        assert result.returncode == 0, result.stderr
        assert result.stdout.splitlines() == [
            "would refuse bad.json: invalid JSON: Expecting property name enclosed in double "
            "quotes at line 1 column 2",
            "would record interrupted dead.json (scheduled 2026-01-01T05:00:00Z): its claim is "
            "dead (runner elsewhere/0 pid 4000000, deadline 2026-01-01T05:07:00Z)",
            "would run dead.json (scheduled 2026-06-01T12:00:00Z): the latest occurrence of "
            "'@hourly' since the one it last ran for (2026-01-01T05:00:00Z)",
            "would run due.json (scheduled 2026-06-01T12:00:00Z): the latest occurrence of "
            "'@hourly' since it was placed or rescheduled (2026-01-01T00:00:00Z)",
            "would leave live.json (scheduled 2026-06-01T12:00:00Z): claimed by a run still "
            "going, which runs it",
            f"dry run {now}: 5 jobs, 2 would run; nothing claimed, run or written",
        ]
        as_json = json.loads(run_cli("tick", "--dry-run", "--now", now, "--json").stdout)
        assert (as_json["now"], as_json["seen"], as_json["would_run"]) == (now, 5, 2)
        assert [(j["key"], j["would"]) for j in as_json["jobs"]][1:3] == [
            ("dead.json", "record_interrupted"),
            ("dead.json", "run"),
        ]
        assert snapshot(root) == before and not out.exists()

        # What the tick then does is what the dry run said.
        tick = run_cli("tick", "--now", now)
        assert "5 jobs, 2 due, 2 ran, 0 failed, 1 invalid" in tick.stdout
        assert "1 interrupted, 1 taken" in tick.stdout and "skipped" not in tick.stdout
        assert sorted(out.read_text().split()) == ["dead", "due"]

    def test_dry_run_lines_show_what_the_file_holds_escaped(
        self, run_cli: Run, tmp_path: Path
    ) -> None:
        root = store_dir(tmp_path)
        host = "h\n\u202eforged\x1b[2K"
        place(
            root,
            "c.json",
            claimed(
                command_job("@hourly", ["true"]),
                "2026-01-01T05:00:00Z",
                host,
                "2026-01-01T05:07:00Z",
            ),
        )
        result = run_cli("tick", "--dry-run", "--now", "2026-01-01T05:30:00Z")
        assert result.returncode == 0, result.stderr
        first, *_ = lines = result.stdout.splitlines()
        assert all(line.startswith(("would ", "dry run ")) for line in lines)
        assert "(runner h\\n\\u202eforged\\x1b[2K pid " in first
        assert all(char.isprintable() for char in result.stdout.replace("\n", ""))

    def test_dry_run_may_look_ahead_without_allow_future(
        self, run_cli: Run, tmp_path: Path
    ) -> None:
        root = store_dir(tmp_path)
        place(root, "y.json", command_job("0 0 1 1 *", ["true"]))
        before = snapshot(root)
        future = in_future(days=400)
        result = run_cli("tick", "--dry-run", "--now", future)
        assert result.returncode == 0, result.stderr
        assert result.stdout.splitlines()[0].startswith("would run y.json (scheduled ")
        assert snapshot(root) == before


class TestLs:
    def test_a_status_written_into_the_file_cannot_drive_the_terminal(
        self, run_cli: Run, tmp_path: Path
    ) -> None:
        # last_result is the runner's field, but anyone who can write the file can forge it.
        root = store_dir(tmp_path)
        status = "\u202eko\x1b[2K\x00\r\nforged"
        place(root, "a.json", {**SEED_COMMAND, "last_result": {"status": status}})
        result = run_cli("ls")
        assert result.returncode == 0, result.stderr
        (_, row) = result.stdout.splitlines()
        assert row.split()[-1] == "\\u202eko\\x1b[2K\\x00\\r\\nforged"
        assert all(char.isprintable() for char in result.stdout.replace("\n", ""))

    def test_it_shows_schedule_next_and_last_run_runs_and_status(
        self, run_cli: Run, tmp_path: Path
    ) -> None:
        root = store_dir(tmp_path)
        place(root, "a.json", SEED_COMMAND)
        place(
            root,
            "b.json",
            {
                **SEED_COMMAND,
                "when": "0 9 * * *",
                "timezone": "Europe/Paris",
                "max_number_executions": 3,
                "enabled": False,
            },
        )
        place(root, "z.json", b"[]")
        run_cli("tick", "--now", "2026-01-01T18:31:00Z")
        rows = run_cli("ls", "--now", "2026-01-01T18:32:00Z").stdout.splitlines()
        assert rows[0].split() == [
            "KEY",
            "SCHEDULE",
            "NEXT",
            "RUN",
            "LAST",
            "RUN",
            "LATE",
            "RUNS",
            "STATUS",
        ]
        # The tick pretended 18:31 long ago: the run started that late after 18:30.
        late = read_json(root / "a.json")["last_result"]["lateness_ms"]
        assert late >= 300 * 86_400_000
        assert rows[1].split() == [
            "a.json",
            "30",
            "18",
            "*",
            "*",
            "*",
            "*",
            "*",
            "2026-01-02T18:30:00Z",
            "2026-01-01T18:31:00Z",
            f"{late // 86_400_000}d",
            "1/∞",
            "ok",
        ]
        assert rows[2].split()[:7] == ["b.json", "0", "9", "*", "*", "*", "(Europe/Paris)"]
        assert rows[2].split()[-2:] == ["0/3", "disabled"]
        assert rows[3].startswith("z.json") and rows[3].endswith(
            "invalid: a job must be a JSON object, got a list"
        )

    def test_json_output(self, run_cli: Run, tmp_path: Path) -> None:
        place(store_dir(tmp_path), "a.json", SEED_COMMAND)
        (row,) = json.loads(run_cli("ls", "--json", "--now", "2026-01-01T00:00:00Z").stdout)
        assert row["key"] == "a.json" and row["next_run"] == "2026-01-01T18:30:00Z"
        assert row["status"] == "never run" and row["runs"] == 0


class TestAddRmShowValidate:
    def test_add_validates_then_creates_and_never_overwrites(
        self, run_cli: Run, tmp_path: Path
    ) -> None:
        root = store_dir(tmp_path)
        job = tmp_path / "order.json"
        job.write_text(json.dumps(SEED_COMMAND))
        added = run_cli("add", str(job), "--key", "orders/1.json")
        assert (added.returncode, added.stdout) == (0, "added orders/1.json\n")
        assert read_json(root / "orders" / "1.json") == SEED_COMMAND
        again = run_cli("add", str(job), "--key", "orders/1.json")
        assert again.returncode == 2 and "already exists" in again.stderr
        escape = run_cli("add", str(job), "--key", "../x.json")
        assert (
            escape.returncode == 2
            and "must not contain '.', '..' or empty components" in escape.stderr
        )
        assert not (tmp_path / "x.json").exists()

    def test_add_refuses_an_invalid_job_and_names_the_problem(
        self, run_cli: Run, tmp_path: Path
    ) -> None:
        root = store_dir(tmp_path)
        job = tmp_path / "bad.json"
        job.write_text(json.dumps({**SEED_COMMAND, "when": "0 0 30 2 *"}))
        result = run_cli("add", str(job))
        assert result.returncode == 2
        assert result.stderr == (
            f"{job}: when: day-of-month: day 30 never occurs in FEB; this schedule never fires\n"
        )
        assert list(root.iterdir()) == []

    def test_add_reads_the_file_once_so_a_pipe_can_be_added(self, tmp_path: Path) -> None:
        root = store_dir(tmp_path)
        env = {k: v for k, v in os.environ.items() if not k.startswith("LAMBDACRON_")}
        added = subprocess.run(
            [sys.executable, "-m", "lambdacron", "add", "/dev/stdin", "--key", "piped.json"],
            input=json.dumps(SEED_COMMAND),
            capture_output=True,
            text=True,
            timeout=60,
            env=env,
            cwd=tmp_path,
        )
        assert (added.returncode, added.stdout, added.stderr) == (0, "added piped.json\n", "")
        assert read_json(root / "piped.json") == SEED_COMMAND

    def test_add_and_validate_hold_a_file_to_the_configured_size_limit(
        self, run_cli: Run, tmp_path: Path
    ) -> None:
        root = store_dir(tmp_path)
        job = tmp_path / "padded.json"
        job.write_text(json.dumps({**SEED_COMMAND, "note": "x" * 200}))
        size = job.stat().st_size
        env = {"LAMBDACRON_MAX_JOB_BYTES": "100"}
        result = run_cli("add", str(job), env=env)
        assert (result.returncode, result.stderr) == (
            2,
            f"{job}: {size} bytes is over the 100-byte limit\n",
        )
        assert list(root.iterdir()) == []
        checked = run_cli("validate", str(job), env=env)
        assert checked.returncode == 1
        assert checked.stdout == f"{job}: {size} bytes is over the 100-byte limit\n"
        assert run_cli("add", str(job), env={"LAMBDACRON_MAX_JOB_BYTES": str(size)}).returncode == 0

    def test_add_refuses_a_runners_claim_naming_the_file(
        self, run_cli: Run, tmp_path: Path
    ) -> None:
        root = store_dir(tmp_path)
        job = tmp_path / "copied.json"
        job.write_text(json.dumps({**SEED_COMMAND, "claim": {"id": 5}}))
        result = run_cli("add", str(job))
        assert result.returncode == 2
        assert result.stderr.splitlines()[0] == (
            f"{job}: claim: a new job must not carry a runner's claim"
        )
        assert list(root.iterdir()) == []

    def test_add_prints_the_warnings_and_adds_the_job(self, run_cli: Run, tmp_path: Path) -> None:
        root = store_dir(tmp_path)
        job = tmp_path / "typo.json"
        job.write_text(json.dumps({**SEED_COMMAND, "enabld": False}))
        result = run_cli("add", str(job))
        assert (result.returncode, result.stdout) == (0, "added typo.json\n")
        assert result.stderr == f"{job}: warning: enabld: unknown field; did you mean 'enabled'?\n"
        assert read_json(root / "typo.json") == {**SEED_COMMAND, "enabld": False}

    def test_a_field_name_with_a_line_break_is_still_one_line_per_problem(
        self, run_cli: Run, tmp_path: Path
    ) -> None:
        root = store_dir(tmp_path)
        odd = "x\nforged.json: ok\u202e"
        name = json.dumps(odd)
        body = (
            f'{{"when": "@hourly", {name}: 1, {name}: 2, "enabld\\n": 3,'
            ' "run": {"type": "command", "details": {"command": ["true"]}}}'
        )
        path = tmp_path / "d.json"
        path.write_text(body)
        place(root, "d.json", body)
        problem = "x\\nforged.json: ok\\u202e: is given more than once"
        warning = "warning: enabld\\n: unknown field; did you mean 'enabled'?"
        checked = run_cli("validate", str(path))
        assert checked.returncode == 1
        assert checked.stdout.splitlines() == [f"{path}: {problem}"]
        assert checked.stderr.splitlines() == [f"{path}: {warning}"]
        added = run_cli("add", str(path), "--key", "e.json")
        assert added.returncode == 2
        assert added.stderr.splitlines() == [f"{path}: {problem}", f"{path}: {warning}"]
        shown = run_cli("show", "d.json")
        assert (shown.returncode, shown.stderr) == (2, f"lambdacron: d.json: {problem}\n")

    def test_show_of_a_job_that_cannot_run_prints_it_and_says_why(
        self, run_cli: Run, tmp_path: Path
    ) -> None:
        document = {**SEED_COMMAND, "when": "61 * * * *", "timeout_seconds": -1}
        path = place(store_dir(tmp_path), "bad.json", document)
        body = path.read_bytes()
        for args in ((), ("--history",)):
            shown = run_cli("show", "bad.json", *args)
            assert shown.returncode == 1
            assert shown.stderr.splitlines() == [
                "lambdacron: bad.json: when: minute: 61 is out of range 0-59",
                "lambdacron: bad.json: timeout_seconds: must be more than 0 and at most"
                " 2592000 seconds (30 days), got -1",
            ]
        assert json.loads(run_cli("show", "bad.json").stdout) == document
        assert path.read_bytes() == body

    def test_show_and_rm(self, run_cli: Run, tmp_path: Path) -> None:
        place(store_dir(tmp_path), "a.json", SEED_COMMAND)
        shown = run_cli("show", "a.json")
        assert json.loads(shown.stdout) == SEED_COMMAND
        assert (shown.returncode, shown.stderr) == (0, "")
        assert run_cli("rm", "a.json").stdout == "removed a.json\n"
        missing = run_cli("rm", "a.json")
        assert (missing.returncode, missing.stderr) == (2, "lambdacron: a.json: no such job\n")

    def test_validate_prints_every_problem_with_file_and_field(
        self, run_cli: Run, tmp_path: Path
    ) -> None:
        good = tmp_path / "good.json"
        good.write_text(json.dumps(SEED_COMMAND))
        bad = tmp_path / "bad.json"
        bad.write_text(
            json.dumps(
                {
                    "when": "0 25 * * *",
                    "max_number_executions": -1,
                    "run": {"type": "command", "details": {"command": "ls -l"}},
                }
            )
        )
        old = tmp_path / "old.json"
        old.write_text(json.dumps({**SEED_COMMAND, "when": "0 0 1 1 * 2020"}))
        result = run_cli("validate", str(good), str(bad), str(old))
        assert result.returncode == 1
        assert result.stdout.splitlines() == [
            f"{good}: ok",
            f"{bad}: when: hour: 25 is out of range 0-23",
            f"{bad}: max_number_executions: must be 0 (unlimited) or more, got -1",
            f'{bad}: run.details.command: must be a list of arguments such as ["ls", "-Fal"], '
            'not a string; for shell syntax write ["bash", "-c", "ls -l"]',
            f"{old}: when: '0 0 1 1 * 2020' never fires after "
            + result.stdout.split("never fires after ")[1].splitlines()[0],
        ]
        assert run_cli("validate", str(good)).returncode == 0

    def test_validate_reports_every_file_even_past_an_unreadable_one(
        self, run_cli: Run, tmp_path: Path
    ) -> None:
        good = tmp_path / "a.json"
        good.write_text(json.dumps(SEED_COMMAND))
        bad = tmp_path / "b.json"
        bad.write_text(json.dumps({**SEED_COMMAND, "when": "0 25 * * *"}))
        folder = tmp_path / "dir.json"
        folder.mkdir()
        missing = tmp_path / "missing.json"
        long = "9" * 5000  # named whole, however long: the line starts with what was given
        files = [good, missing, folder, bad, long, good]
        result = run_cli("validate", *map(str, files))
        assert result.returncode == 1 and result.stderr == ""
        assert result.stdout.splitlines() == [
            f"{good}: ok",
            f"{missing}: cannot read: No such file or directory",
            f"{folder}: cannot read: Is a directory",
            f"{bad}: when: hour: 25 is out of range 0-23",
            f"{long}: cannot read: File name too long",
            f"{good}: ok",
        ]


class TestInitAndServe:
    def test_init_creates_a_store_with_a_job_that_validates(
        self, run_cli: Run, tmp_path: Path
    ) -> None:
        result = run_cli("init")
        assert result.returncode == 0 and "hello.json" in result.stdout
        assert run_cli("validate", str(tmp_path / "jobs" / "hello.json")).returncode == 0
        assert "already has hello.json" in run_cli("init").stdout

    def test_serve_catches_up_at_start_and_stops_cleanly_on_sigterm(self, tmp_path: Path) -> None:
        root = store_dir(tmp_path)
        out = tmp_path / "out.txt"
        place(
            root,
            "late.json",
            append_job("at(2026-01-01T00:00:00)", out, "caught up"),
            placed=utc(2026, 1, 1),
        )
        place(
            root,
            "slow.json",
            command_job("at(2026-01-01T00:00:00)", ["sh", "-c", f"sleep 1; echo slow >> {out}"]),
            placed=utc(2026, 1, 1),
        )
        env = {k: v for k, v in os.environ.items() if not k.startswith("LAMBDACRON_")}
        process = subprocess.Popen(
            [sys.executable, "-m", "lambdacron", "serve", "--store", str(root)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        try:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and "caught up" not in (
                out.read_text() if out.exists() else ""
            ):
                time.sleep(0.05)
            process.send_signal(signal.SIGTERM)  # while "slow" is still sleeping
            stdout, stderr = process.communicate(timeout=30)
        finally:
            process.kill()
        assert process.returncode == 0, stderr
        # The running job was allowed to finish before serve exited.
        assert sorted(out.read_text().splitlines()) == ["caught up", "slow"]
        assert "2 ran" in stdout
        assert "SIGTERM: stopping after running jobs end" in stderr
        assert stderr.rstrip().endswith("stopped")
        assert list(root.glob("*.json")) == []  # one-time jobs deleted after their run


class Output:
    """A process's output lines as they come, read by a thread, so a test can wait for one."""

    def __init__(self, stream: Any) -> None:
        self.lines: list[str] = []
        self._thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._thread.start()

    def _read(self, stream: Any) -> None:
        for line in stream:
            self.lines.append(line.rstrip("\n"))

    def wait_for(self, text: str, timeout: float = 60) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = [line for line in self.lines if text in line]
            if found:
                return found[0]
            time.sleep(0.02)
        raise AssertionError(f"no line with {text!r} in {self.lines}")

    def finish(self) -> list[str]:
        self._thread.join(timeout=30)
        return self.lines


class Serving:
    """``lambdacron serve ARGS`` as a real process, its stdout and stderr read as they come."""

    def __init__(self, *args: str) -> None:
        self.process = spawn("serve", *args)
        self.out = Output(self.process.stdout)
        self.err = Output(self.process.stderr)

    def signal(self, signum: int) -> None:
        self.process.send_signal(signum)

    def wait(self, timeout: float = 60) -> int:
        code = self.process.wait(timeout=timeout)
        self.out.finish()
        self.err.finish()
        return code

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            self.process.kill()


def lines_of(path: Path) -> list[str]:
    return path.read_text().split() if path.exists() else []


def wait_until(condition: Any, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def _live() -> Iterator[tuple[int, list[str]]]:
    # Each live (not zombie) process: its pid, and its /proc stat fields after the name.
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if fields[0] != "Z":
                yield int(stat.parent.name), fields


def running_in_group(pgid: int) -> list[int]:
    """The live (not zombie) processes of a process group."""
    return [pid for pid, fields in _live() if int(fields[2]) == pgid]


def children_of(pid: int) -> list[int]:
    """The live processes whose parent is ``pid``."""
    return [child for child, fields in _live() if int(fields[1]) == pid]


def waiting_job(started: Path, name: str, release: Path, *, trap: bool = False) -> dict[str, Any]:
    """A job due once, at once (and kept after its run), that notes its start (and its
    process group) and runs until ``release`` exists; with ``trap``, it ignores SIGTERM."""
    script = f"echo {name}:$$ >> {started}; until [ -e {release} ]; do sleep 0.05; done"
    argv = ["sh", "-c", ("trap '' TERM; " if trap else "") + script]
    return command_job("at(2020-01-01T00:00:00)", argv, max_number_executions=0)


class TestServeStopping:
    def test_the_first_signal_starts_no_queued_job_and_running_ones_finish(
        self, tmp_path: Path, run_cli: Run
    ) -> None:
        root = store_dir(tmp_path)
        started, release = tmp_path / "started.txt", tmp_path / "release"
        for i in range(12):
            place(root, f"j{i:02}.json", waiting_job(started, f"j{i:02}", release))
        serving = Serving("--store", str(root), "--workers", "2")
        try:
            wait_until(lambda: len(lines_of(started)) == 2)
            serving.signal(signal.SIGTERM)
            serving.err.wait_for("SIGTERM: stopping after running jobs end")
            release.touch()
            assert serving.wait() == 0, serving.err.lines
        finally:
            release.touch()
            serving.kill()
        ran = sorted(line.split(":")[0] for line in lines_of(started))
        assert len(ran) == 2  # the ten queued ones never started
        summary = "12 jobs, 12 due, 2 ran, 0 failed, 0 invalid, 10 skipped"
        assert any(summary in line for line in serving.out.lines), serving.out.lines
        for i in range(12):
            key = f"j{i:02}"
            state = read_json(root / f"{key}.json")
            assert "claim" not in state
            if key in ran:
                assert (state["execution_count"], state["last_result"]["status"]) == (1, "ok")
            else:  # untouched: the next runner runs it
                assert "last_scheduled" not in state and "execution_count" not in state
        assert serving.err.lines[-1].endswith(" stopped")
        after = run_cli("tick")
        assert "12 jobs, 10 due, 10 ran, 0 failed" in after.stdout, after.stderr

    @pytest.mark.parametrize("first", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
    def test_a_second_signal_stops_the_running_jobs_and_records_them_interrupted(
        self, tmp_path: Path, first: signal.Signals
    ) -> None:
        root = store_dir(tmp_path)
        started, release = tmp_path / "started.txt", tmp_path / "release"
        place(root, "a.json", waiting_job(started, "a", release))
        place(root, "b.json", waiting_job(started, "b", release, trap=True))  # needs SIGKILL
        place(root, "c.json", waiting_job(started, "c", release))  # queued
        serving = Serving("--store", str(root), "--workers", "2")
        try:
            wait_until(lambda: len(lines_of(started)) == 2)
            groups = [int(line.split(":")[1]) for line in lines_of(started)]
            serving.signal(first)
            serving.err.wait_for(f"{first.name}: stopping after running jobs end")
            serving.signal(signal.SIGTERM)
            assert serving.wait() == 0, serving.err.lines  # without release
        finally:
            release.touch()
            serving.kill()
        assert serving.err.wait_for("SIGTERM again: stopping the running jobs")
        assert [running_in_group(pgid) for pgid in groups] == [[], []]
        names = sorted(line.split(":")[0] for line in lines_of(started))
        assert names == ["a", "b"]
        for key in names:
            state = read_json(root / f"{key}.json")
            assert "claim" not in state
            assert state["last_result"]["status"] == "interrupted"
            assert "stopped" in state["last_result"]["error"]
        assert "execution_count" not in read_json(root / "c.json")

    def test_sighup_stops_like_sigterm_leaving_no_claim(self, tmp_path: Path) -> None:
        root = store_dir(tmp_path)
        started, release = tmp_path / "started.txt", tmp_path / "release"
        place(root, "a.json", waiting_job(started, "a", release))
        serving = Serving("--store", str(root))
        try:
            wait_until(lambda: lines_of(started) != [])
            serving.signal(signal.SIGHUP)  # the terminal was closed
            serving.err.wait_for("SIGHUP: stopping after running jobs end")
            release.touch()
            assert serving.wait() == 0, serving.err.lines
        finally:
            release.touch()
            serving.kill()
        state = read_json(root / "a.json")
        assert "claim" not in state and state["last_result"]["status"] == "ok"
        assert serving.err.lines[-1].endswith(" stopped")

    @pytest.mark.parametrize(
        ("value", "problem"),
        [
            ("99999999999", "99999999999 must be between 1 and 1440"),
            (str(10**20), f"{10**20} must be between 1 and 1440"),
            ("1441", "1441 must be between 1 and 1440"),
            ("0", "0 must be between 1 and 1440"),
            ("-5", "-5 must be between 1 and 1440"),
            ("1.5", "'1.5' is not a whole number"),
        ],
    )
    def test_the_interval_is_bounded(
        self, run_cli: Run, tmp_path: Path, value: str, problem: str
    ) -> None:
        store_dir(tmp_path)
        result = run_cli("serve", "--interval", value, timeout=30)
        assert result.returncode == 2
        assert result.stderr == f"lambdacron: argument --interval: {problem}\n"


def test_validate_warns_of_a_misspelt_field_without_failing(run_cli: Any, tmp_path: Path) -> None:
    path = tmp_path / "typo.json"
    path.write_text(json.dumps({**command_job("@hourly", ["true"]), "enabld": False, "mine": 1}))
    result = run_cli("validate", str(path))
    assert result.returncode == 0
    assert result.stdout.splitlines() == [f"{path}: ok"]
    assert result.stderr.splitlines() == [
        f"{path}: warning: enabld: unknown field; did you mean 'enabled'?"
    ]
