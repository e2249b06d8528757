"""The command and python actions, with real subprocesses."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from helpers import utc
from lambdacron.actions.base import OUTPUT_LIMIT, RunContext, Status
from lambdacron.actions.command import CommandAction, CommandSpec
from lambdacron.actions.python import PythonAction, PythonSpec
from lambdacron.jobfile import MAX_TIMEOUT_SECONDS


def running(pid: int) -> bool:
    """Alive and not a zombie (an orphan may wait for a reaper that never comes)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


#: Any character, NULs, lone surrogates and "=" often.
TEXT = st.sampled_from("\0\ud800=") | st.characters(blacklist_categories=())


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

    @settings(max_examples=10, deadline=None)
    @given(st.floats(min_value=1.0, max_value=MAX_TIMEOUT_SECONDS) | st.just(MAX_TIMEOUT_SECONDS))
    def test_every_timeout_a_job_may_have_is_one_a_run_can_wait(self, timeout: float) -> None:
        # 30 days is more than an epoll wait takes in one call (about 24.8 days).
        result = CommandAction().run(command("echo", "hello"), context(timeout))
        assert (result.status, result.output) == (Status.OK, "hello\n")
        spec = PythonSpec("print('hello')", (), env={})
        assert PythonAction().run(spec, context(timeout)).status is Status.OK

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
        # Redacted as a stream before the cut, so the action keeps exactly the limit.
        assert len(result.output.encode()) == OUTPUT_LIMIT
        assert result.output.endswith("THE END\n")


class TestPython:
    def test_the_seed_readme_sample_script_runs_in_a_separate_interpreter(self) -> None:
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
            env={"X": "y"},
        )
        assert PythonAction().run(spec, context()).output == "['a', 'b'] y 3\n"

    def test_a_large_script_is_not_limited_by_argv(self) -> None:
        script = "x = 0\n" + "x += 1\n" * 300_000 + "print(x)\n"  # about 2.4 MB
        assert PythonAction().run(PythonSpec(script), context()).output == "300000\n"

    def test_a_script_that_runs_too_long_times_out(self) -> None:
        result = PythonAction().run(PythonSpec("import time; time.sleep(60)"), context(0.5))
        assert result.status is Status.TIMEOUT


class TestARunThatCannotStart:
    """Whatever stops a run from starting is that job's error result, never an exception."""

    @pytest.mark.parametrize(
        ("spec", "expected"),
        [
            (command("ec\0ho"), "cannot start 'ec\\x00ho': embedded null byte"),
            (command("echo", "a\0b"), "cannot start echo: embedded null byte"),
            (command("echo", env={"X": "a\0b"}), "cannot start echo: embedded null byte"),
            (command("echo", env={"A=B": "x"}), "illegal environment variable name"),
            (command("echo", "\ud800"), "surrogates not allowed"),
            (command("echo", cwd=""), "working directory not found: ''"),
            (command("echo", cwd="/no/such/dir"), "working directory not found: /no/such/dir"),
            (command("echo", cwd="/etc/passwd"), "working directory /etc/passwd: Not a directory"),
            (command("echo", cwd="/tmp\0"), "embedded null byte"),
            (command(""), "cannot start '': Permission denied"),
            (command("/etc"), "cannot start /etc: Permission denied"),
        ],
    )
    def test_a_command_that_cannot_start(self, spec: CommandSpec, expected: str) -> None:
        result = CommandAction().run(spec, context())
        assert result.status is Status.ERROR and result.exit_code is None
        assert result.error is not None and "\n" not in result.error
        assert expected in result.error

    @pytest.mark.parametrize(
        "spec",
        [
            PythonSpec("print(1)", ("a\0",)),
            PythonSpec("print(1)", (), env={"X": "\0"}),
            PythonSpec("print('\ud800')"),
        ],
    )
    def test_a_python_script_that_cannot_start(self, spec: PythonSpec) -> None:
        result = PythonAction().run(spec, context())
        assert result.status is Status.ERROR and result.exit_code is None
        assert result.error is not None and result.error.startswith("cannot start ")

    @settings(max_examples=40, deadline=None)
    @given(
        st.lists(st.text(TEXT, max_size=8), max_size=3),
        st.dictionaries(st.text(TEXT, max_size=6), st.text(TEXT, max_size=6), max_size=3),
        st.none() | st.text(TEXT, max_size=8),
    )
    def test_no_argument_env_or_cwd_makes_the_action_raise(
        self, args: list[str], env: dict[str, str], cwd: str | None
    ) -> None:
        result = CommandAction().run(command("true", *args, cwd=cwd, env=env), context())
        assert result.status in (Status.OK, Status.ERROR)
        assert result.status is Status.OK or (result.error and "\n" not in result.error)


def group_members(pgid: int) -> list[int]:
    """The live (not zombie) processes of a process group.

    ``os.killpg(pgid, 0)`` would count zombies too, and an orphan here may wait for a reaper
    that never comes."""
    members = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            except (FileNotFoundError, ProcessLookupError):
                continue
            if int(fields[2]) == pgid and fields[0] != "Z":
                members.append(int(entry))
    return members


def kill_quietly(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


class TestWhatARunLeavesBehind:
    def test_a_member_that_ignores_sigterm_is_killed_at_the_end_of_the_grace(
        self, tmp_path: Path
    ) -> None:
        leader, sleeper = tmp_path / "leader.pid", tmp_path / "sleeper.pid"
        # The main process dies on SIGTERM; the sleeper ignores it and holds no pipe open.
        script = (
            f"echo $$ > {leader}; "
            f"(trap '' TERM; exec sleep 120) > /dev/null 2>&1 & echo $! > {sleeper}; wait"
        )
        try:
            result = CommandAction().run(command("sh", "-c", script), context(timeout=0.5))
            assert result.status is Status.TIMEOUT
            pgid = int(leader.read_text())
            deadline = time.monotonic() + 10
            while group_members(pgid) and time.monotonic() < deadline:
                time.sleep(0.05)
            assert group_members(pgid) == []
        finally:
            if sleeper.exists():
                kill_quietly(int(sleeper.read_text()))

    def test_a_daemon_child_holds_neither_a_thread_nor_a_descriptor_nor_the_run(
        self, tmp_path: Path
    ) -> None:
        # Forks, the child leaves the session and keeps stdout open; the parent exits.
        script = (
            "import os, sys, time\n"
            "if os.fork() == 0:\n"
            "    os.setsid()\n"
            "    print(os.getpid(), flush=True)\n"
            f"    open({str(tmp_path)!r} + '/' + str(os.getpid()), 'w').close()\n"
            "    time.sleep(30)\n"
            "    os._exit(0)\n"
            "time.sleep(0.2)\n"
            "print('parent done')\n"
        )
        before = (threading.active_count(), len(os.listdir("/proc/self/fd")))
        daemons: list[int] = []
        try:
            for _ in range(3):
                result = PythonAction().run(PythonSpec(script), context(timeout=60))
                daemons = [int(p.name) for p in tmp_path.iterdir()]
                assert result.status is Status.OK
                assert "parent done" in result.output
                # The run came back while the daemon still lives: it did not wait it out.
                assert all(running(pid) for pid in daemons)
                after = (threading.active_count(), len(os.listdir("/proc/self/fd")))
                assert after == before
        finally:
            for pid in daemons:
                kill_quietly(pid)
        assert len(daemons) == 3


def wait_until_gone(pids: list[int], seconds: float = 10) -> list[int]:
    """The ``pids`` still running after up to ``seconds``: a killed process takes a moment."""
    deadline = time.monotonic() + seconds
    while any(running(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    return [p for p in pids if running(p)]


#: A tree of processes that each write their pid to DIR, close the output and sleep: a member
#: that moves to a process group of its own (``setpgid``, as a shell with job control does)
#: stays in the run's session, and forks on. The main process sleeps too, or exits at once.
TREE = """
import os, sys, time
directory, depth, spread, own_group, main_sleeps = sys.argv[1:]
main = os.getpid()
for level in range(int(depth)):
    for i in range(int(spread)):
        if os.fork() == 0:
            if own_group[(level * int(spread) + i) % len(own_group)] == "1":
                os.setpgid(0, 0)
            open(os.path.join(directory, str(os.getpid())), "w").close()
            break
    else:
        break
os.close(1)
os.close(2)
if os.getpid() != main or main_sleeps == "1":
    time.sleep(60)
"""


class TestNothingInTheSessionOutlivesTheRun:
    """Whatever stays in the run's session ends with the run: its own process group or
    another, quiet or holding the output. Only leaving the session (``setsid``) escapes."""

    @settings(max_examples=8, deadline=None)
    @given(
        depth=st.integers(1, 3),
        spread=st.integers(1, 3),
        own_group=st.text("01", min_size=1, max_size=5),
        main_sleeps=st.booleans(),
    )
    def test_no_member_of_a_tree_of_processes_outlives_the_run(
        self,
        tmp_path_factory: pytest.TempPathFactory,
        depth: int,
        spread: int,
        own_group: str,
        main_sleeps: bool,
    ) -> None:
        directory = tmp_path_factory.mktemp("tree")
        argv = (str(directory), str(depth), str(spread), own_group, str(int(main_sleeps)))
        spec = command(sys.executable, "-c", TREE, *argv)
        result = CommandAction().run(spec, context(2 if main_sleeps else 30))
        pids = [int(p.name) for p in directory.iterdir()]
        try:
            assert result.status is (Status.TIMEOUT if main_sleeps else Status.OK)
            assert pids
            assert wait_until_gone(pids) == []
        finally:
            for pid in pids:
                kill_quietly(pid)

    def test_a_quiet_background_process_is_killed_when_the_main_process_exits(
        self, tmp_path: Path
    ) -> None:
        marker = tmp_path / "sleeper.pid"
        script = f"sleep 60 > /dev/null 2>&1 & echo $! > {marker}"
        result = CommandAction().run(command("sh", "-c", script), context())
        sleeper = int(marker.read_text())
        try:
            assert result.status is Status.OK
            assert wait_until_gone([sleeper]) == []
        finally:
            kill_quietly(sleeper)
