"""A user's mistake never produces a traceback, tested as a class.

The grammar is read from the CLI's own argparse parser, so a flag added tomorrow is fuzzed
too: every subcommand, every flag, every positional, each given either a value that works
or a hostile one (empty, huge, negative, NaN, unicode, paths that are missing, files where
folders belong and folders where files belong, odd times and zones, JSON that is no
object). Whatever comes of it, the exit code is one the README documents, nothing on stderr
is a traceback, a usage error is one line naming the flag, value or file at fault, and what
is printed can be written to a strict UTF-8 terminal.

Every ``LAMBDACRON_*`` variable the settings read, set to garbage, gives one line naming
the variable, for ``tick``, ``ls``, ``serve`` and the Lambda handler.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import zipfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lambdacron import config, handler
from lambdacron.cli import build_parser, main
from lambdacron.errors import LambdacronError
from lambdacron.logs import printable

#: The exit codes the README's tables give: ok, problems (validate, run), usage, store.
#: 130 (Ctrl-C) only comes of a signal, which no example here sends but ``serve``'s stop.
EXIT_CODES = {0, 1, 2, 3}
#: Nothing answers there, whichever test ran before: once a test has started the AWS test
#: server, the session points AWS at it, and `deploy` would then get far enough to answer
#: otherwise (a flag it requires rather than the endpoint it cannot reach).
NO_AWS = {"AWS_ENDPOINT_URL": "http://127.0.0.1:9"}
#: Commands that talk to AWS: a closed port costs about a second each, so only the
#: subprocess runs take them.
NETWORK = {"deploy", "undeploy"}
#: Runs until stopped: only as a subprocess, stopped with SIGINT.
LONG_RUNNING = {"serve"}
#: A log line of a run (``tick``, ``run``), not an error: a UTC stamp, then the event.
_LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ ")

HELLO = {
    "when": "* * * * *",
    "run": {"type": "command", "details": {"command": ["echo", "hi"]}},
}
ONCE = {
    "when": "at(2026-01-01T00:00:00Z)",
    "run": {"type": "python", "details": {"script": "print(1)"}},
}


# --------------------------------------------------------------------------- the grammar


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    (commands,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(commands.choices)


@dataclass(frozen=True)
class Slot:
    """One argument of a subcommand: a flag (``option`` set) or a positional."""

    dest: str
    shown: str  # as the usage line names it: FILE, key, --now
    option: str | None
    takes_value: bool
    many: bool  # a positional of nargs "+"


def _slots(parser: argparse.ArgumentParser) -> list[Slot]:
    slots = []
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        if action.option_strings:
            # The long form, as a person types it; BooleanOptionalAction lists --no-x too.
            for option in action.option_strings:
                if option.startswith("--"):
                    takes_value = action.nargs != 0
                    slots.append(Slot(action.dest, option, option, takes_value, many=False))
        else:
            shown = str(action.metavar or action.dest)
            slots.append(Slot(action.dest, shown, None, True, many=action.nargs == "+"))
    return slots


GRAMMAR = {name: _slots(sub) for name, sub in _subparsers(build_parser()).items()}


class Sandbox:
    """Real files for one example: a store with jobs, and every kind of wrong path."""

    def __init__(self, base: Path) -> None:
        # One level down: what ".." leads to (an output file, a store) stays in ``base``.
        self.base = base / "here"
        self.base.mkdir()
        base = self.base
        self.store = base / "jobs"
        self.store.mkdir()
        (self.store / "hello.json").write_text(json.dumps(HELLO))
        (self.store / "once.json").write_text(json.dumps(ONCE))
        (self.store / "broken.json").write_text("{")
        self.job = base / "job.json"
        self.job.write_text(json.dumps(HELLO))
        self.a_file = base / "a-file.json"
        self.a_file.write_text(json.dumps(HELLO))
        self.a_dir = base / "a-dir.json"
        self.a_dir.mkdir()
        self.unreadable = base / "secret.json"
        self.unreadable.write_text(json.dumps(HELLO))
        self.unreadable.chmod(0)  # unreadable unless the tests run as root
        self.not_object = base / "list.json"
        self.not_object.write_text("[1, 2]")
        self.precious = base / "passwd"
        self.precious.write_text("root:x:0:0:root:/root:/bin/bash\n")
        (base / "localtime").write_bytes(b"TZif")
        self.not_utf8 = base / "latin1.json"
        self.not_utf8.write_bytes(b'{"when": "caf\xe9"}')

    def good(self, dest: str) -> list[str]:
        """Values that work for the argument ``dest``; none for one not known here."""
        return {
            "store": [str(self.store)],
            "now": ["2026-01-01T00:00:30Z", "2025-06-01T12:00:00+02:00"],
            "after": ["2026-01-01T00:00:00Z"],
            "tz": ["UTC", "Europe/Berlin"],
            "workers": ["1", "2"],
            "count": ["1", "3"],
            "shards": ["1", "2"],
            "interval": ["1"],
            "lookahead": ["0", "5"],
            "status": ["ok", "never run", "invalid"],
            "key": ["hello.json", "once.json", "broken.json"],
            "file": [str(self.job)],
            "files": [str(self.job), str(self.store / "broken.json")],
            "expression": ["* * * * *", "rate(5 minutes)", "0 9 ? * MON#2"],
            "output": [str(self.base / "out.zip")],
        }.get(dest, [])

    def hostile_paths(self) -> list[str]:
        return [
            str(self.base / "missing" / "x.json"),
            str(self.a_file),  # a file where a folder belongs
            str(self.a_dir),  # a folder where a file belongs
            str(self.a_file / "x.json"),  # a path through a file
            str(self.unreadable),
            str(self.not_object),
            str(self.not_utf8),
            str(self.base / ("n" * 300 + ".json")),  # a name too long for the file system
            ".",
            "..",  # the temporary folder: "/" as a store is walked whole, too slow here
            "/dev/null",
            "s3://",
            "s3:///prefix/",
            "s3://no such bucket/",
            "file:///tmp",
            "../escape.json",
            # Outside the store, somebody else's file: inside ``base`` all the same, since
            # a command that writes (package -o, init, add) must never reach a real one.
            str(self.precious),
        ]


HOSTILE = [
    # empty, blank, and what looks like a flag
    "",
    " ",
    "-",
    "--",
    "--store",
    # numbers no count takes
    "0",
    "-1",
    "-5",
    "+3",
    " 3 ",
    "1.5",
    "1e3",
    "0x10",
    "1_000",
    "١٢",
    "nan",
    "NaN",
    "inf",
    "-inf",
    "99999999999999999999",
    "9" * 5000,
    # unicode, controls, bytes that were not UTF-8 (as Python's argv holds them)
    "é",
    "日本",
    "😀",
    "\u202eevil",
    "\x1b[2J",
    "a\tb",
    "\udcff",
    "caf\udce9.json",
    # times, odd and out of range, and zones
    "2026-02-30T00:00:00Z",
    "2026-01-01T25:00:00Z",
    "0001-01-01T00:00:00Z",
    "9999-12-31T23:59:59Z",
    "1969-12-31T23:59:59Z",
    "1970-01-01T00:00:00+23:59",
    "2026-01-01T00:00:00+24:00",
    "2026-01-01T00:00:00-23:59",
    "2026-03-29T02:30:00",
    "2026-01-01T00:00:00Z[Europe/Berlin]",
    "2026-01-01 00:00",
    "1700000000",
    "2026-W01-1",
    "2026-01-01T00:00:00.9999999Z",
    "Mars/Phobos",
    "Europe/Berlin/x",
    "../here/passwd",
    "../here/localtime",
    "Etc/GMT+13",
    "utc",
    # JSON that is not an object, or not JSON
    "[]",
    "{",
    "null",
    '"x"',
    '{"attempts": 0}',
    '{"sns": 5}',
    # schedules
    "* * * * * * 5",
    "rate(0 seconds)",
    "rate(99999999999999999999999 days)",
    "at(9999-12-31T23:59:59)",
    "@reboot",
    "60 * * * *",
    "0 0 30 2 *",
    "0 0 29 2 * 2027",
]

#: Text as argv can hold it: no NUL, and of the surrogates only those that stand for bytes
#: that were not UTF-8 (U+DC80 to U+DCFF).
_ARGV_TEXT = st.text(
    st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00")
    | st.characters(min_codepoint=0xDC80, max_codepoint=0xDCFF),
    max_size=12,
)


@st.composite
def argvs(draw: st.DrawFn, box: Sandbox, commands: list[str]) -> list[str]:
    """A command line of one subcommand: its positionals, and some of its flags, each with
    a working value or a hostile one."""
    command = draw(st.sampled_from(commands))
    hostile = st.sampled_from(HOSTILE) | st.sampled_from(box.hostile_paths()) | _ARGV_TEXT

    def value(slot: Slot) -> str:
        good = box.good(slot.dest)
        choices = (st.sampled_from(good) | hostile) if good else hostile
        return draw(choices)

    argv = [command]
    slots = GRAMMAR[command]
    for slot in slots:
        if slot.option is None:
            count = draw(st.integers(1, 3)) if slot.many else 1
            argv += [value(slot) for _ in range(count)]
    flags = [s for s in slots if s.option is not None]
    for slot in draw(st.lists(st.sampled_from(flags), max_size=4, unique=True)) if flags else []:
        assert slot.option is not None
        argv += [slot.option, value(slot)] if slot.takes_value else [slot.option]
    if "store" in {s.dest for s in slots} and "--store" not in argv:
        argv += ["--store", str(box.store)]  # never the test's working directory's ./jobs
    return argv


# --------------------------------------------------------------------------- the property


def _names(argv: list[str], env: Mapping[str, str]) -> set[str]:
    """What an error line may name to say what is at fault: a flag or a variable given, a
    value given (as typed, or as the line shows it), or the part of a schedule expression
    that is wrong."""
    names = {a for a in argv if a.startswith("-") and len(a) > 1} | set(env)
    names |= {s.shown for s in GRAMMAR.get(argv[0], []) if s.option is None}
    for text in [*argv[1:], *env.values()]:
        for shown in (text, printable(text), repr(text)[1:-1], text.strip()):
            if shown.strip():
                names.add(shown.strip()[:40])
        if not text.strip():
            names.add(repr(text))  # a blank value can only be shown quoted
    if argv[0] in NETWORK:
        # Nothing answers on the test's AWS port: the line names the step that needed it.
        names.add("Could not connect to the endpoint URL")
    if argv[0] == "next":
        # A schedule's error names the field of the expression at fault (`minute: 75 is
        # out of range`), the form (`rate:`, `at:`), or what the expression lacks.
        names |= {"schedule", "nickname", "fields", "minute", "hour", "day", "month", "year"}
        names |= {"rate", "at:", "timezone", "fire time"}
    return names


def check_outcome(
    argv: list[str], code: int, out: str, err: str, env: Mapping[str, str] | None = None
) -> None:
    """The property every run of the CLI keeps, whatever it was given."""
    env = env or {}
    context = f"argv={argv!r} env={dict(env)!r}\nexit {code}\nstdout: {out}\nstderr: {err}"
    assert code in EXIT_CODES, context
    assert "Traceback" not in err and "Traceback" not in out, context
    for text in (out, err):
        text.encode("utf-8")  # a strict UTF-8 terminal takes every character printed
    problems = [line for line in err.splitlines() if not _LOG_LINE.match(line)]
    if code == 2:
        assert len(problems) >= 1, context
        if argv[0] != "add":  # add lists every problem of the file, each naming it
            assert len(problems) == 1, context
        names = _names(argv, env)
        for line in problems:
            assert any(name in line for name in names), context
    if argv[0] == "validate" and code == 1:
        # One line per problem, each starting with the file it is about.
        # A blank name can only be shown quoted.
        files = {printable(f) if f.strip() else repr(f) for f in argv[1:]}
        listed = [line for line in out.splitlines() if not line.endswith(": ok")]
        assert listed and all(any(line.startswith(f + ":") for f in files) for line in listed)


@contextlib.contextmanager
def environment(changes: Mapping[str, str]) -> Iterator[None]:
    """``os.environ`` with no ``LAMBDACRON_*`` but ``changes``, restored after."""
    saved = dict(os.environ)
    for name in [n for n in os.environ if n.startswith("LAMBDACRON_")]:
        del os.environ[name]
    os.environ.update(NO_AWS, **changes)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def run_in_process(
    argv: list[str], cwd: Path, env: Mapping[str, str] | None = None
) -> tuple[int, str, str]:
    """``main(argv)`` as the ``lambdacron`` script calls it; an exception it lets out is
    the traceback a user would see, and fails the test as it is."""
    out, err = io.StringIO(), io.StringIO()
    before = Path.cwd()
    os.chdir(cwd)
    try:
        with (
            environment(env or {}),
            contextlib.redirect_stdout(out),
            contextlib.redirect_stderr(err),
        ):
            try:
                code = main(argv)
            except SystemExit as exc:  # --help or --version, as argparse ends them
                code = exc.code if isinstance(exc.code, int) else 2
    finally:
        os.chdir(before)
    return code, out.getvalue(), err.getvalue()


def run_subprocess(
    argv: list[str], cwd: Path, env: Mapping[str, str] | None = None, stop_after: float = 0.0
) -> tuple[int, str, str]:
    """The installed command as a process; ``stop_after`` > 0: a Ctrl-C that long after it
    first writes, if it is still running (``serve``). stdout and stderr are strict UTF-8, as
    on a terminal whose locale is."""
    full = {k: v for k, v in os.environ.items() if not k.startswith("LAMBDACRON_")}
    full.update(NO_AWS, **(env or {}), PYTHONIOENCODING="utf-8")
    process = subprocess.Popen(
        [sys.executable, "-m", "lambdacron", *argv],
        cwd=cwd,
        env=full,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert process.stdout is not None and process.stderr is not None
    spoke = threading.Event()
    chunks: dict[str, list[bytes]] = {"out": [], "err": []}

    def drain(name: str, stream: IO[bytes]) -> None:
        while chunk := stream.read1(65536):
            chunks[name].append(chunk)
            spoke.set()

    readers = [
        threading.Thread(target=drain, args=("out", process.stdout), daemon=True),
        threading.Thread(target=drain, args=("err", process.stderr), daemon=True),
    ]
    for reader in readers:
        reader.start()
    # A Ctrl-C before the command has started (a loaded machine takes seconds to import)
    # is Python's KeyboardInterrupt, not the command's: only a command that has spoken, and
    # so is running, is interrupted.
    if stop_after and spoke.wait(120) and process.poll() is None:
        try:
            process.wait(stop_after)
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGINT)
            process.wait(60)
            assert process.returncode == 0, chunks["err"]  # serve stops on its first Ctrl-C
    process.wait(120)
    for reader in readers:
        reader.join(60)
    out, err = (b"".join(chunks[name]).decode(errors="replace") for name in ("out", "err"))
    return process.returncode, out, err


IN_PROCESS = sorted(set(GRAMMAR) - NETWORK - LONG_RUNNING)


def test_the_grammar_covers_every_subcommand_and_flag() -> None:
    """The fuzz follows the parser: every subcommand, and the flags each one has."""
    assert {"tick", "serve", "ls", "add", "rm", "show", "run", "validate", "next"} <= set(GRAMMAR)
    assert {"--now", "--dry-run", "--allow-future", "--json", "--shards", "--workers"} <= {
        s.option for s in GRAMMAR["tick"]
    }
    assert set(IN_PROCESS) | NETWORK | LONG_RUNNING == set(GRAMMAR)


@settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(data=st.data())
def test_no_command_line_gives_a_traceback(data: st.DataObject) -> None:
    with tempfile.TemporaryDirectory() as base:
        box = Sandbox(Path(base))
        argv = data.draw(argvs(box, IN_PROCESS), label="argv")
        code, out, err = run_in_process(argv, box.base)
        check_outcome(argv, code, out, err)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_no_command_line_gives_a_traceback_as_a_process(data: st.DataObject) -> None:
    """A few as real processes, every command included: the script's own entry, real
    argv bytes, a strict UTF-8 terminal, and ``serve`` stopped by Ctrl-C."""
    with tempfile.TemporaryDirectory() as base:
        box = Sandbox(Path(base))
        argv = data.draw(argvs(box, sorted(GRAMMAR)), label="argv")
        code, out, err = run_subprocess(
            argv, box.base, stop_after=3.0 if argv[0] in LONG_RUNNING else 0.0
        )
        check_outcome(argv, code, out, err)


# --------------------------------------------------------------------------- settings


def _variables_read() -> set[str]:
    """Every ``LAMBDACRON_*`` name the settings read, found in their source."""
    source = Path(config.__file__).read_text()
    return set(re.findall(r"\"(LAMBDACRON_[A-Z_]+)\"", source))


_NUMBERS = ["nan", "-1", "1e3", "1.5", "x", "١٢", "1_000", "0x10", "9" * 200, "\x1b[2J"]
_JSON = [" ", "[]", "{", "NaN", "null", '"x"', "1", '{"x": 1}', "\udcff"]

#: Garbage for each variable: values it can never mean. The CLI reads all of them but the
#: Lambda runner's own (its bucket, prefix and queue), which only the handler reads.
GARBAGE: dict[str, list[str]] = {
    "LAMBDACRON_STORE": ["s3://", "s3:///x/", "file:///tmp", "/nonexistent/jobs", "s3://a b/"],
    "LAMBDACRON_BUCKET": ["a b", "s3://b", "b/c", "\x1b[2J", "-"],
    "LAMBDACRON_PREFIX": ["../", "a//b/", "./x", "\udcff/", "a\tb/"],
    "LAMBDACRON_INTERVAL": [*_NUMBERS, "0"],
    "LAMBDACRON_ALLOWED_TYPES": ["shell", ",", " ", "command;python", "\x1b"],
    "LAMBDACRON_WORKERS": [*_NUMBERS, "0"],
    "LAMBDACRON_MAX_JOB_BYTES": [*_NUMBERS, "0"],
    "LAMBDACRON_SHARDS": [*_NUMBERS, "0", "257"],
    "LAMBDACRON_DELIVERY_QUEUE": ["not a url", "ftp://q", "https://", "nan", "http://[::1"],
    "LAMBDACRON_LOOKAHEAD": [*_NUMBERS, "901"],
    "LAMBDACRON_ON_FAILURE": [*_JSON, '{"sns": 5}'],
    "LAMBDACRON_RETRY": [*_JSON, '{"attempts": 0}'],
    "LAMBDACRON_DEADLINE_SECONDS": [*_NUMBERS, "0", "2592001"],
}
LAMBDA_ONLY = {"LAMBDACRON_BUCKET", "LAMBDACRON_PREFIX", "LAMBDACRON_DELIVERY_QUEUE"}


def test_every_variable_the_settings_read_has_garbage_here() -> None:
    assert _variables_read() == set(GARBAGE)


def _garbage() -> st.SearchStrategy[tuple[str, str]]:
    return st.sampled_from(sorted(GARBAGE)).flatmap(
        lambda name: st.tuples(st.just(name), st.sampled_from(GARBAGE[name]))
    )


def _one_line_naming(name: str, code: int, out: str, err: str, argv: list[str]) -> None:
    context = f"{name} with {argv!r}: exit {code}\nstdout: {out}\nstderr: {err}"
    assert code == 2, context
    assert "Traceback" not in err, context
    (line,) = err.splitlines()
    assert line.startswith(f"lambdacron: {name}: "), context
    line.encode("utf-8")


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(garbage=_garbage(), command=st.sampled_from(["tick", "ls"]))
def test_a_bad_setting_is_one_line_naming_it(garbage: tuple[str, str], command: str) -> None:
    name, value = garbage
    if name in LAMBDA_ONLY:
        return  # the CLI does not read it: covered by the handler's test
    with tempfile.TemporaryDirectory() as base:
        box = Sandbox(Path(base))
        argv = [command] if name == "LAMBDACRON_STORE" else [command, "--store", str(box.store)]
        code, out, err = run_in_process(argv, box.base, {name: value})
        _one_line_naming(name, code, out, err, argv)


@pytest.mark.parametrize("name", sorted(set(GARBAGE) - LAMBDA_ONLY))
def test_serve_with_a_bad_setting_is_one_line_naming_it(name: str, tmp_path: Path) -> None:
    box = Sandbox(tmp_path)
    value = GARBAGE[name][0]
    argv = ["serve"] if name == "LAMBDACRON_STORE" else ["serve", "--store", str(box.store)]
    # Stopped by Ctrl-C should it start: a setting it took for good is the failure then.
    code, out, err = run_subprocess(argv, tmp_path, {name: value}, stop_after=10.0)
    _one_line_naming(name, code, out, err, argv)


class Context:
    """What the Lambda runtime passes: the function's name and the time it has left."""

    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:lambdacron"

    def get_remaining_time_in_millis(self) -> int:
        return 600_000


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(garbage=_garbage(), sqs=st.booleans())
def test_the_handler_with_a_bad_setting_logs_one_line_naming_it(
    garbage: tuple[str, str], sqs: bool
) -> None:
    """The invocation fails (Lambda's Errors metric counts it) after one ERROR record that
    names the variable, and with the runner's own exception, never another."""
    name, value = garbage
    with tempfile.TemporaryDirectory() as base:
        box = Sandbox(Path(base))
        env = {name: value}
        if name == "LAMBDACRON_PREFIX":
            env["LAMBDACRON_BUCKET"] = "jobs"
        elif name != "LAMBDACRON_BUCKET" and name != "LAMBDACRON_STORE":
            env["LAMBDACRON_STORE"] = str(box.store)
        event: dict[str, Any] = (
            {"Records": [{"eventSource": "aws:sqs", "messageId": "m", "body": "{}"}]}
            if sqs
            else {"time": "2026-01-01T00:00:00Z"}
        )
        out = io.StringIO()
        handler._engines.clear()
        with (
            environment(env),
            contextlib.redirect_stdout(out),
            pytest.raises(LambdacronError),
        ):
            handler.lambda_handler(event, Context())
        handler._engines.clear()
    records = [json.loads(line) for line in out.getvalue().splitlines()]
    errors = [r for r in records if r.get("level") == "ERROR"]
    assert len(errors) == 1, (env, records)
    (error,) = errors
    assert error["event"] == "config", (env, records)
    assert name in error["error"] and "\n" not in error["error"], (env, error)


# --------------------------------------------------------------------------- found by it


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        # islice refused a count past sys.maxsize with a traceback.
        (["next", "* * * * *", "--count", "99999999999999999999"], "argument --count: "),
        # int() took Arabic-Indic digits and "1_000", which no setting takes.
        (["tick", "--workers", "١٢"], "argument --workers: '١٢' is not a whole number"),
        (["tick", "--workers", "1_000"], "argument --workers: '1_000' is not a whole number"),
        # The output file's OSError came out as a traceback.
        (["package", "-o", ""], "--output '': cannot write: Is a directory"),
        (["package", "-o", "{base}"], "cannot write: Is a directory"),
        (["package", "-o", "{base}/missing/x.zip"], "cannot write: No such file or directory"),
        # Any file at all was replaced by the zip: a job, or /etc/passwd for root.
        (["package", "-o", "{base}/jobs/hello.json"], "exists and is no zip file; not replaced"),
        # Path.exists() raises for a name too long: a traceback.
        (["ls", "--store", "{base}/" + "n" * 300], "cannot open it: File name too long"),
        # An empty --store fell back to ./jobs and ran the jobs there.
        (["tick", "--store", ""], "--store: empty"),
        # Path("") is the working directory: ": cannot read: Is a directory".
        (["validate", ""], "'': a blank argument names no file"),
        (["add", " ", "--store", "{base}/jobs"], "' ': a blank argument names no file"),
        # botocore's InvalidRegionError came out as a traceback.
        (["undeploy", "--region", " "], "--region: ' ' is not an AWS region name"),
        (["ls", "--store", "s3://a b/"], "bucket 'a b' is not a bucket name"),
        (["ls", "--store", "s3://jobs/a//b/"], "prefix 'a//b/' must not contain"),
    ],
)
def test_a_mistake_the_fuzz_found_is_one_line(
    argv: list[str], expected: str, tmp_path: Path
) -> None:
    (tmp_path / "jobs").mkdir()
    (tmp_path / "jobs" / "hello.json").write_text(json.dumps(HELLO))
    argv = [a.replace("{base}", str(tmp_path)) for a in argv]
    code, out, err = run_in_process(argv, tmp_path)
    check_outcome(argv, code, out, err)
    # validate reports a file's problem on stdout and exits 1, as for any file.
    (line,) = (out if argv[0] == "validate" else err).splitlines()
    assert code == (1 if argv[0] == "validate" else 2), err
    assert expected in line


def test_a_name_that_is_not_utf8_prints_on_a_strict_utf8_terminal(tmp_path: Path) -> None:
    """A file name's byte that is not UTF-8 is shown as the byte, as the store's keys are:
    printed raw, it made a strict UTF-8 stdout raise."""
    code, out, err = run_subprocess(["validate", "caf\udce9.json"], tmp_path)
    assert (code, err) == (1, "")
    assert out == "caf\\xe9.json: cannot read: No such file or directory\n"


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        # Named nothing: "store '/nonexistent/jobs' does not exist".
        ("LAMBDACRON_STORE", "/nonexistent/jobs", "store '/nonexistent/jobs' does not exist"),
        ("LAMBDACRON_STORE", "s3://", "expected s3://BUCKET/PREFIX/"),
        # Separators alone allowed no run type at all, silently.
        ("LAMBDACRON_ALLOWED_TYPES", ",", "',' names no run type"),
        # Said "the file is empty; a job is a JSON object".
        ("LAMBDACRON_ON_FAILURE", " ", 'empty; expected a JSON object such as {"sns"'),
    ],
)
def test_a_bad_setting_the_fuzz_found_is_one_line_naming_it(
    name: str, value: str, expected: str, tmp_path: Path
) -> None:
    box = Sandbox(tmp_path)
    argv = ["tick"] if name == "LAMBDACRON_STORE" else ["tick", "--store", str(box.store)]
    code, out, err = run_in_process(argv, tmp_path, {name: value})
    _one_line_naming(name, code, out, err, argv)
    assert expected in err


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        # Each went on to the first listing or planning, and failed there naming nothing.
        ({"LAMBDACRON_BUCKET": "a b"}, "LAMBDACRON_BUCKET: bucket 'a b' is not a bucket name"),
        (
            {"LAMBDACRON_BUCKET": "jobs", "LAMBDACRON_PREFIX": "a//b"},
            "LAMBDACRON_PREFIX: prefix 'a//b' must not contain",
        ),
        (
            {"LAMBDACRON_STORE": "{store}", "LAMBDACRON_DELIVERY_QUEUE": "not a url"},
            "LAMBDACRON_DELIVERY_QUEUE: 'not a url' is not an SQS queue URL",
        ),
        (
            {"LAMBDACRON_STORE": "/nonexistent/jobs"},
            "LAMBDACRON_STORE: store '/nonexistent/jobs' does not exist",
        ),
    ],
)
def test_the_handler_names_the_bad_setting_the_fuzz_found(
    env: dict[str, str], expected: str, tmp_path: Path, warm_engines: None
) -> None:
    box = Sandbox(tmp_path)
    env = {k: v.replace("{store}", str(box.store)) for k, v in env.items()}
    out = io.StringIO()
    with (
        environment(env),
        contextlib.redirect_stdout(out),
        pytest.raises(LambdacronError, match=r"^LAMBDACRON_"),
    ):
        handler.lambda_handler({"time": "2026-01-01T00:00:00Z"}, Context())
    (record,) = [json.loads(line) for line in out.getvalue().splitlines()]
    assert (record["level"], record["event"]) == ("ERROR", "config")
    assert record["error"].startswith(expected)


def test_the_fuzz_leaves_every_file_outside_its_folder_alone(tmp_path: Path) -> None:
    """What the commands are given stays inside the example's folder: run as root, a
    hostile path such as /etc/passwd handed to ``package -o`` replaced the system's."""
    box = Sandbox(tmp_path)
    outside = [p for p in [*box.hostile_paths(), *HOSTILE] if p.startswith("/")]
    assert all(Path(p).resolve().is_relative_to(tmp_path) or p == "/dev/null" for p in outside)


def test_a_package_rebuilt_replaces_the_last_one_and_nothing_else(tmp_path: Path) -> None:
    job = tmp_path / "hello.json"
    job.write_text(json.dumps(HELLO))
    code, out, err = run_in_process(["package", "-o", str(job)], tmp_path)
    assert code == 2 and json.loads(job.read_text()) == HELLO, err
    assert (
        err == f"lambdacron: --output {str(job)!r}: exists and is no zip file; not replaced"
        " (remove it first, or name another file)\n"
    )
    zipped = tmp_path / "lambdacron.zip"
    for _ in range(2):  # written, then rebuilt over the first
        code, out, err = run_in_process(["package", "-o", str(zipped)], tmp_path)
        assert code == 0 and out.startswith(f"wrote {zipped} "), err
        assert zipfile.ZipFile(zipped).testzip() is None


def test_the_aws_commands_meet_the_closed_port_even_after_the_aws_test_server_started(
    moto_endpoint: str, tmp_path: Path
) -> None:
    """Which test ran before must not change what the fuzz sees."""
    code, out, err = run_subprocess(["deploy"], tmp_path)
    check_outcome(["deploy"], code, out, err)
    assert "Could not connect to the endpoint URL" in err
