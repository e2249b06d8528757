"""The command and python actions, with real subprocesses."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from helpers import utc
from lambdacron.actions.base import OUTPUT_LIMIT, RunContext
from lambdacron.actions.command import CommandAction
from lambdacron.actions.python import PythonAction
from lambdacron.job import CommandSpec, PythonSpec, Status


def running(pid: int) -> bool:
    """Alive and not a zombie (an orphan may wait for a reaper that never comes)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def context(timeout: float = 30) -> RunContext:
    return RunContext("orders/42.json", utc(2026, 12, 1, 18, 30), 3, timeout, utc(2026, 12, 1))


def command(*argv: str, **options: object) -> CommandSpec:
    return CommandSpec(tuple(argv), **options)  # type: ignore[arg-type]


class TestCommand:
    def test_a_successful_command_records_its_output_and_exit_code(self) -> None:
        result = CommandAction().run(command("echo", "hello"), context())
        assert (result.status, result.exit_code, result.output) == (Status.OK, 0, "hello\n")

    def test_stdout_and_stderr_are_both_captured(self) -> None:
        spec = command("sh", "-c", "echo out; echo err >&2")
        assert sorted(CommandAction().run(spec, context()).output.split()) == ["err", "out"]

    def test_a_non_zero_exit_is_a_failure(self) -> None:
        result = CommandAction().run(command("sh", "-c", "echo no; exit 3"), context())
        assert (result.status, result.exit_code, result.error) == (
            Status.FAILED,
            3,
            "exited with status 3",
        )

    def test_a_missing_executable_is_an_error_result(self) -> None:
        result = CommandAction().run(command("no-such-program-xyz"), context())
        assert result.status is Status.ERROR
        assert result.error == "executable not found: no-such-program-xyz"

    def test_no_shell_is_involved(self, tmp_path: Path) -> None:
        result = CommandAction().run(command("echo", "$HOME; rm -rf /"), context())
        assert result.output == "$HOME; rm -rf /\n"

    def test_cwd_and_env_are_applied_and_the_occurrence_is_passed(self, tmp_path: Path) -> None:
        spec = command(
            "sh",
            "-c",
            "pwd; echo $GREETING $LAMBDACRON_JOB $LAMBDACRON_SCHEDULED_TIME $LAMBDACRON_EXECUTION",
            cwd=str(tmp_path),
            env={"GREETING": "hi"},
        )
        lines = CommandAction().run(spec, context()).output.splitlines()
        assert lines == [str(tmp_path), "hi orders/42.json 2026-12-01T18:30:00Z 3"]

    def test_a_timeout_kills_the_whole_process_group(self, tmp_path: Path) -> None:
        marker = tmp_path / "grandchild.pid"
        # The shell starts a grandchild that would outlive a kill of the shell alone.
        script = f"sleep 60 & echo $! > {marker}; wait"
        begin = time.monotonic()
        result = CommandAction().run(command("sh", "-c", script), context(timeout=0.5))
        assert result.status is Status.TIMEOUT
        assert result.error == "killed after the 0.5-second timeout"
        assert time.monotonic() - begin < 10
        grandchild = int(marker.read_text())
        time.sleep(0.2)
        assert not running(grandchild)

    def test_output_is_bounded_to_the_last_4_kib(self) -> None:
        # 20 MB of output: the run keeps only the tail, never the whole stream.
        spec = command(
            sys.executable,
            "-c",
            "import sys\nfor i in range(200000): sys.stdout.write('%099d\\n' % i)\n"
            "print('THE END')",
        )
        result = CommandAction().run(spec, context())
        assert result.status is Status.OK
        # The action keeps a small margin past the recorded limit for redaction at the cut.
        assert len(result.output.encode()) == OUTPUT_LIMIT + 1024
        assert result.output.endswith("THE END\n")


class TestPython:
    def test_the_seed_script_runs_in_a_separate_interpreter(self) -> None:
        script = (
            'import json\n\ndata = {"hello": "world"}\n\nprint(json.dumps(data))\n'
            "\nfor x in range(1,10):\n    print(x)\n"
        )
        result = PythonAction().run(PythonSpec(script), context())
        assert result.status is Status.OK
        assert result.output.splitlines() == ['{"hello": "world"}', *map(str, range(1, 10))]

    def test_an_exception_is_a_failed_run_with_the_traceback(self) -> None:
        result = PythonAction().run(PythonSpec("raise ValueError('boom')"), context())
        assert result.status is Status.FAILED and result.exit_code == 1
        assert "ValueError: boom" in result.output

    def test_args_and_env_reach_the_script(self) -> None:
        spec = PythonSpec(
            "import os, sys; print(sys.argv[1:], os.environ['X'], "
            "os.environ['LAMBDACRON_EXECUTION'])",
            ("a", "b"),
            {"X": "y"},
        )
        assert PythonAction().run(spec, context()).output == "['a', 'b'] y 3\n"

    def test_a_large_script_is_not_limited_by_argv(self) -> None:
        script = "x = 0\n" + "x += 1\n" * 300_000 + "print(x)\n"  # about 2.4 MB
        assert PythonAction().run(PythonSpec(script), context()).output == "300000\n"

    def test_a_script_that_runs_too_long_times_out(self) -> None:
        result = PythonAction().run(PythonSpec("import time; time.sleep(60)"), context(0.5))
        assert result.status is Status.TIMEOUT
