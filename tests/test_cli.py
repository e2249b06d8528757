"""The CLI as a user runs it: real subprocesses on a real store directory."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from conftest import Run
from helpers import SEED_COMMAND, append_job, command_job, place, read_json, utc


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
        assert (summary["seen"], summary["ran"], summary["now"]) == (
            0,
            0,
            "2026-01-01T00:00:00+00:00",
        )

    def test_a_failing_job_still_exits_zero(self, run_cli: Run, tmp_path: Path) -> None:
        place(store_dir(tmp_path), "f.json", command_job("@hourly", ["false"]))
        result = run_cli("tick", "--now", "2026-01-01T01:00:00Z")
        assert result.returncode == 0 and "1 failed" in result.stdout

    def test_user_errors_are_one_line_and_exit_2(self, run_cli: Run, tmp_path: Path) -> None:
        cases = [
            (("tick",), "lambdacron: store "),  # ./jobs does not exist in the temp dir
            (("tick", "--store", str(tmp_path), "--now", "noon"), "lambdacron: --now: 'noon'"),
            (("tick", "--workers", "0"), "lambdacron: argument --workers: 0 must be at least 1"),
            (("frobnicate",), "lambdacron: argument command: invalid choice: 'frobnicate'"),
        ]
        for args, message in cases:
            result = run_cli(*args)
            assert result.returncode == 2, args
            assert result.stderr.startswith(message), (args, result.stderr)
            assert len(result.stderr.splitlines()) == 1 and "Traceback" not in result.stderr

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


class TestLs:
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
            "RUNS",
            "STATUS",
        ]
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

    def test_show_and_rm(self, run_cli: Run, tmp_path: Path) -> None:
        place(store_dir(tmp_path), "a.json", SEED_COMMAND)
        shown = run_cli("show", "a.json")
        assert json.loads(shown.stdout) == SEED_COMMAND
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

    def test_validate_a_missing_file_is_exit_2(self, run_cli: Run, tmp_path: Path) -> None:
        result = run_cli("validate", str(tmp_path / "nope.json"))
        assert result.returncode == 2 and "cannot read: No such file" in result.stderr


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
